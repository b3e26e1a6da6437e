//! The echo server over a tap device in a private network namespace: the
//! host kernel's TCP talks straight to the guest's virtio-net card at
//! 10.0.2.15 (no slirp in between). Byte-exact echo on one connection
//! (256 KiB) and on 100 concurrent connections (4 KiB each). Needs root and
//! `ip`; without them the test says why and passes without running.

use std::net::SocketAddr;
use std::time::Duration;

use tenfold_lab::netns::{self, Namespace};
use tenfold_lab::options::MachineOptions;
use tenfold_lab::qemu::ECHO_PORT;
use tenfold_tests::{BOOT_TIMEOUT, boot_image, boot_with, echo_client};

#[test]
fn echo_over_tap_in_a_namespace() {
    if let Some(reason) = netns::unavailable() {
        eprintln!("SKIPPED echo_over_tap_in_a_namespace: {reason}");
        return;
    }
    // Declared before the guest, so dropped after it (QEMU runs inside).
    let namespace = Namespace::create("tenfold").expect("creating a network namespace");
    let options = namespace.machine(&MachineOptions::default());
    let mut guest = boot_with(boot_image(), options, &[]);
    guest.wait_for("echo server (event loop)", BOOT_TIMEOUT).unwrap();
    let addr = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    namespace.run_in(|| {
        echo_client::echo_large(addr, 7, 256 * 1024);
        echo_client::echo_concurrent(addr, 100, 4096);
    });
    guest.send("net\r").unwrap();
    let line = guest.wait_for_new("connections", Duration::from_secs(20)).unwrap();
    assert!(line.text.contains("accepted"), "{}", line.text);
    // ARP and ICMP both ways: the guest pings the namespace's side of the tap.
    guest.send("ping 10.0.2.2 2\r").unwrap();
    guest.wait_for_new("reply from 10.0.2.2: icmp_seq=", Duration::from_secs(20)).unwrap();
}
