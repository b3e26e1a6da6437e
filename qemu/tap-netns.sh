#!/bin/sh
# A private network namespace holding a tap device for the guest, so the
# guest is reached over the host kernel's real TCP/IP path without touching
# the host's own network configuration. The lab and the tests make their
# namespaces with this script; by hand (as root):
#
#   qemu/tap-netns.sh up tenfold
#   ip netns exec tenfold qemu-system-x86_64 -readconfig qemu/tenfold.cfg \
#       -readconfig qemu/virtio-net.cfg \
#       -netdev tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=off \
#       -kernel target/x86_64-unknown-none/debug/tenfold \
#       -accel tcg -cpu max -m 256 -nodefaults -display none -serial stdio -no-reboot
#   ip netns exec tenfold nc 10.0.2.15 7          # in another terminal
#   qemu/tap-netns.sh down tenfold
#
# Inside the namespace the tap is 10.0.2.2/24, the guest's default gateway;
# the guest is 10.0.2.15 (its default ip=). vhost=off: vhost-net is not
# available everywhere.
set -eu
PATH="$PATH:/usr/sbin:/sbin"
TAP=tap0
HOST_ADDRESS=10.0.2.2/24

usage() { echo "usage: $0 up|down NAME" >&2; exit 2; }
[ $# -eq 2 ] || usage
name=$2

case "$1" in
up)
    ip netns add "$name"
    # Leave nothing half-made behind.
    trap 'ip netns delete "$name" 2>/dev/null' EXIT
    ip -n "$name" link set lo up
    ip -n "$name" tuntap add dev "$TAP" mode tap
    ip -n "$name" addr add "$HOST_ADDRESS" dev "$TAP"
    ip -n "$name" link set "$TAP" up
    trap - EXIT
    ;;
down)
    ip netns delete "$name"
    ;;
*)
    usage
    ;;
esac
