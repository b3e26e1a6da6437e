//! The network stack: one smoltcp interface over a [`FrameDevice`], its
//! socket set, the readiness registry of its TCP sockets, and the TCP
//! settings Tenfold uses. smoltcp's defaults suit a bulk sender, not an echo
//! server: Nagle's algorithm would hold back the echo of a partial segment
//! until the client's (delayed) ACK of the previous one, and acknowledging
//! at once makes every request cost a pure ACK before its echo. Measured
//! side by side (`cargo lab bench echo`, README): no ACK delay gives a p99
//! of ~2.9 s at 1000 connections against ~0.15 s with 1 ms; 1 ms against
//! smoltcp's 10 ms shows no consistent difference in closed-loop ping-pong.

use core::time::Duration as CoreDuration;

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::device::FrameDevice;
use crate::readiness::{Event, Interest, Poller, WatchError};

/// TCP settings applied to every socket the stack creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTuning {
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    pub nagle: bool,
    /// `None`: acknowledge at once.
    pub ack_delay: Option<CoreDuration>,
    /// Idle connections are dropped after this long without any segment.
    pub idle_timeout: Option<CoreDuration>,
}

impl Default for TcpTuning {
    fn default() -> Self {
        TcpTuning {
            rx_buffer: 16 * 1024,
            tx_buffer: 16 * 1024,
            nagle: false,
            ack_delay: Some(CoreDuration::from_millis(1)),
            idle_timeout: Some(CoreDuration::from_secs(120)),
        }
    }
}

/// Addressing and TCP settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    pub mac: [u8; 6],
    pub address: Ipv4Cidr,
    pub gateway: Option<Ipv4Address>,
    /// Ask a DHCP server instead (`address` and `gateway` are then unused):
    /// the interface has no address until the lease arrives, and loses it
    /// if the lease is lost.
    pub dhcp: bool,
    pub tcp: TcpTuning,
}

impl NetConfig {
    /// QEMU user networking: 10.0.2.15/24 behind the gateway 10.0.2.2.
    pub fn qemu_user_net(mac: [u8; 6]) -> Self {
        NetConfig {
            mac,
            address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
            gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
            dhcp: false,
            tcp: TcpTuning::default(),
        }
    }
}

/// Counters of the stack.
#[derive(Clone, Copy, Debug, Default)]
pub struct StackStats {
    pub polls: u64,
    pub state_changes: u64,
}

/// The interface, its sockets, and the readiness registry every TCP socket
/// is entered in from its creation to its removal (so a socket is never
/// removed while the registry still names it).
pub struct NetStack {
    pub interface: Interface,
    sockets: SocketSet<'static>,
    readiness: Poller,
    pub device: FrameDevice,
    config: NetConfig,
    /// The DHCP client's socket, with `dhcp`.
    dhcp: Option<SocketHandle>,
    pub stats: StackStats,
}

fn millis(duration: CoreDuration) -> Duration {
    Duration::from_micros(duration.as_micros() as u64)
}

impl NetStack {
    pub fn new(config: NetConfig, mut device: FrameDevice, now: Instant) -> Self {
        let hardware = HardwareAddress::Ethernet(EthernetAddress(config.mac));
        let mut interface = Interface::new(Config::new(hardware), &mut device, now);
        let mut sockets = SocketSet::new(alloc::vec::Vec::new());
        let dhcp = if config.dhcp {
            Some(sockets.add(dhcpv4::Socket::new()))
        } else {
            Self::configure(&mut interface, Some(config.address), config.gateway);
            None
        };
        NetStack {
            interface,
            sockets,
            readiness: Poller::new(),
            device,
            config,
            dhcp,
            stats: StackStats::default(),
        }
    }

    /// Sets (or with `None` clears) the interface address and default route.
    fn configure(interface: &mut Interface, address: Option<Ipv4Cidr>, gateway: Option<Ipv4Address>) {
        interface.update_ip_addrs(|addresses| {
            addresses.clear();
            if let Some(address) = address {
                let _ = addresses.push(IpCidr::Ipv4(address));
            }
        });
        match gateway {
            Some(gateway) => {
                let _ = interface.routes_mut().add_default_ipv4_route(gateway);
            }
            None => {
                interface.routes_mut().remove_default_ipv4_route();
            }
        }
    }

    /// The interface's address now (`None` while DHCP has no lease).
    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.interface.ip_addrs().iter().find_map(|cidr| match cidr {
            IpCidr::Ipv4(cidr) => Some(*cidr),
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }

    /// Applies what the DHCP client learned since the last poll.
    fn apply_dhcp(&mut self) {
        let Some(handle) = self.dhcp else { return };
        match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => {}
            Some(dhcpv4::Event::Configured(lease)) => {
                let (address, router) = (lease.address, lease.router);
                log::info!("dhcp: leased {address}, gateway {router:?}, from {}", lease.server.address);
                Self::configure(&mut self.interface, Some(address), router);
            }
            // Also reported once at the start, before any lease.
            Some(dhcpv4::Event::Deconfigured) => {
                if self.address().is_some() {
                    log::warn!("dhcp: lease lost; the interface has no address");
                }
                Self::configure(&mut self.interface, None, None);
            }
        }
    }

    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Processes received frames, timers and pending output, then wakes the
    /// tasks whose sockets became ready (the I/O phase of the event loop).
    /// Returns whether any socket changed state.
    pub fn poll(&mut self, now: Instant) -> bool {
        self.stats.polls += 1;
        let changed =
            self.interface.poll(now, &mut self.device, &mut self.sockets) == PollResult::SocketStateChanged;
        if changed {
            self.stats.state_changes += 1;
        }
        self.apply_dhcp();
        self.readiness.dispatch(&mut self.sockets);
        changed
    }

    /// The readiness registry (tasks leave their wakers there).
    pub fn readiness(&mut self) -> &mut Poller {
        &mut self.readiness
    }

    /// Reports TCP socket `handle` to [`NetStack::wait`] with `interest`
    /// (epoll's `EPOLL_CTL_ADD`/`MOD`); a removed socket's watch ends.
    pub fn watch(&mut self, handle: SocketHandle, interest: Interest) -> Result<(), WatchError> {
        self.readiness.watch(handle, interest)
    }

    /// Stops reporting `handle` (epoll's `EPOLL_CTL_DEL`).
    pub fn unwatch(&mut self, handle: SocketHandle) {
        self.readiness.unwatch(handle);
    }

    /// The watched sockets that are ready after the last poll,
    /// level-triggered (see [`crate::readiness`]); the caller waits for the
    /// next poll (interrupt or [`NetStack::poll_at`]) between calls.
    pub fn wait(&mut self, events: &mut alloc::vec::Vec<Event>) {
        self.readiness.wait(&mut self.sockets, events);
    }

    /// Sockets the last poll examined for readiness, and tasks woken in all.
    pub fn readiness_stats(&self) -> (usize, u64) {
        (self.readiness.last_examined, self.readiness.tasks_woken)
    }

    /// When smoltcp next needs a poll without new input (retransmission,
    /// delayed ACK, keep-alive); `None`: only on input.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.interface.poll_at(now, &self.sockets)
    }

    /// A new TCP socket with the stack's tuning.
    pub fn new_tcp_socket(&mut self) -> SocketHandle {
        let tuning = self.config.tcp;
        let rx = tcp::SocketBuffer::new(alloc::vec![0; tuning.rx_buffer]);
        let tx = tcp::SocketBuffer::new(alloc::vec![0; tuning.tx_buffer]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_nagle_enabled(tuning.nagle);
        socket.set_ack_delay(tuning.ack_delay.map(millis));
        socket.set_timeout(tuning.idle_timeout.map(millis));
        let handle = self.sockets.add(socket);
        self.readiness.register(&mut self.sockets, handle);
        handle
    }

    /// Adds a socket of another kind (ICMP); TCP sockets come from
    /// [`NetStack::new_tcp_socket`].
    pub fn add_socket<T: smoltcp::socket::AnySocket<'static>>(&mut self, socket: T) -> SocketHandle {
        self.sockets.add(socket)
    }

    /// Removes a socket, and its readiness registration first.
    pub fn remove_socket(&mut self, handle: SocketHandle) {
        self.readiness.deregister(handle);
        self.sockets.remove(handle);
    }

    /// Starts connecting TCP socket `handle` to `remote`.
    pub fn connect(
        &mut self,
        handle: SocketHandle,
        remote: smoltcp::wire::IpEndpoint,
        local_port: u16,
    ) -> Result<(), tcp::ConnectError> {
        self.sockets.get_mut::<tcp::Socket>(handle).connect(self.interface.context(), remote, local_port)
    }

    /// Gives an established connection the configured idle timeout (the
    /// listener uses a short one for the handshake).
    pub fn apply_idle_timeout(&mut self, handle: SocketHandle) {
        let timeout = self.config.tcp.idle_timeout.map(millis);
        self.tcp(handle).set_timeout(timeout);
    }

    /// The TCP socket `handle`, which must exist.
    pub fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Any socket by handle (ICMP and the like); must exist.
    pub fn socket_mut<T: smoltcp::socket::AnySocket<'static>>(&mut self, handle: SocketHandle) -> &mut T {
        self.sockets.get_mut::<T>(handle)
    }

    /// All sockets, for listings.
    pub fn sockets(&self) -> &SocketSet<'static> {
        &self.sockets
    }

    /// Bytes buffered in all TCP sockets (receive + send): the memory that
    /// backpressure keeps bounded.
    pub fn buffered_bytes(&self) -> usize {
        self.sockets
            .iter()
            .filter_map(|(_, socket)| match socket {
                smoltcp::socket::Socket::Tcp(tcp) => Some(tcp.recv_queue() + tcp.send_queue()),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .sum()
    }
}
