//! The network stack: one smoltcp interface over a [`FrameDevice`], its
//! sockets, the readiness registry of its TCP sockets, and the TCP
//! settings Tenfold uses.
//!
//! **O(1) per packet.** smoltcp's own `Interface::poll` matches each
//! incoming segment against every socket and visits every socket on each
//! egress pass and each `poll_at`, so its cost per request grows with the
//! connections held. Here each TCP socket has a set of its own
//! ([`crate::sockets`]); a frame is demultiplexed by its connection in a hash
//! table ([`crate::flows`]) and handed to smoltcp with just that socket
//! (`poll_ingress_single`), and egress runs only for the sockets touched
//! since (by a frame or by their owner) or whose deadline came (`poll_egress`
//! and `poll_at` over one socket). Measured over the bench's 1 to 1000
//! connections (README): 2–4 sockets visited per received frame.
//! The one O(N) event is an ARP frame: the neighbour cache may have learned
//! an address that sockets wait for, so every socket gets an egress pass
//! (a few times a minute; counted as `neighbor_sweeps`).
//!
//! The stock smoltcp is used as is (no fork): its per-socket state lives in
//! the `SocketSet`, which makes sets of one socket work with the public API.
//!
//! smoltcp's defaults suit a bulk sender, not an echo
//! server: Nagle's algorithm would hold back the echo of a partial segment
//! until the client's (delayed) ACK of the previous one, and acknowledging
//! at once makes every request cost a pure ACK before its echo. Measured
//! side by side (`cargo lab bench echo`, README): no ACK delay gives a p99
//! of ~2.9 s at 1000 connections against ~0.15 s with 1 ms; 1 ms against
//! smoltcp's 10 ms shows no consistent difference in closed-loop ping-pong.

use core::time::Duration as CoreDuration;

use alloc::vec::Vec;

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle as SetHandle, SocketSet,
};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::device::FrameDevice;
use crate::flows::{Admission, AdmissionStats, FlowTable, FrameKind, PortCounts, Route};
use crate::readiness::{Event, Interest, Poller, WatchError};
pub use crate::sockets::SocketHandle;
use crate::sockets::SocketTable;

/// TCP settings applied to every socket the stack creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTuning {
    pub rx_buffer: usize,
    pub tx_buffer: usize,
    /// Sockets created while the stack holds this many or more (closing
    /// ones aside: they go within a round trip or two) get
    /// `small_buffer`-byte buffers each way instead: under memory pressure
    /// (many connections) every connection keeps a window, as Linux's
    /// `tcp_mem` pressure mode shrinks buffers, while the first ones — the
    /// few fast streams of a bulk transfer — get full windows.
    pub full_buffer_sockets: usize,
    pub small_buffer: usize,
    pub nagle: bool,
    /// `None`: acknowledge at once.
    pub ack_delay: Option<CoreDuration>,
    /// Idle connections are dropped after this long without any segment.
    pub idle_timeout: Option<CoreDuration>,
    /// A handshake not completed this long after the SYN is dropped (SYNs
    /// from clients that never answer must not hold a socket for the idle
    /// timeout); the connection gets the idle timeout once accepted.
    pub handshake_timeout: Option<CoreDuration>,
}

impl Default for TcpTuning {
    fn default() -> Self {
        TcpTuning {
            rx_buffer: 16 * 1024,
            tx_buffer: 16 * 1024,
            full_buffer_sockets: 128,
            small_buffer: 4 * 1024,
            nagle: false,
            ack_delay: Some(CoreDuration::from_millis(1)),
            idle_timeout: Some(CoreDuration::from_secs(120)),
            handshake_timeout: Some(CoreDuration::from_secs(10)),
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
    /// Seeds TCP initial sequence numbers and the connection table's hash:
    /// give each boot a random one (predictable ISNs let an off-path
    /// attacker inject segments).
    pub seed: u64,
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
            seed: 0,
        }
    }
}

/// Counters of the stack.
#[derive(Clone, Copy, Debug, Default)]
pub struct StackStats {
    pub polls: u64,
    pub state_changes: u64,
    /// Frames handed to smoltcp (each with at most one socket).
    pub frames: u64,
    /// Frames dropped unseen (deferred SYNs).
    pub frames_dropped: u64,
    /// Sockets given an egress pass.
    pub egress_visits: u64,
    /// Egress passes over every socket (after ARP frames).
    pub neighbor_sweeps: u64,
    /// Deadlines (retransmission, delayed ACK, timeouts) that came due.
    pub deadlines_fired: u64,
    /// Half-open connections dropped for newer SYNs (SYN cache full).
    pub half_open_evicted: u64,
}

/// The interface, its sockets, and the readiness registry every TCP socket
/// is entered in from its creation to its removal (so a socket is never
/// removed while the registry still names it).
pub struct NetStack {
    interface: Interface,
    sockets: SocketTable,
    flows: FlowTable,
    /// Sockets of other kinds (ICMP, DHCP): few, sharing one set.
    misc: SocketSet<'static>,
    misc_dirty: bool,
    misc_due: Option<Instant>,
    /// No sockets: a segment for no connection meets smoltcp's reset here.
    no_sockets: SocketSet<'static>,
    readiness: Poller,
    pub device: FrameDevice,
    config: NetConfig,
    /// The DHCP client's socket, with `dhcp`.
    dhcp: Option<SetHandle>,
    /// The dirty queue being worked through (kept for its capacity).
    egress: Vec<SocketHandle>,
    /// Released sockets still closing (they go soon: not load).
    closing: usize,
    pub stats: StackStats,
}

/// Egress for `set` until it has nothing more to send or the device is full
/// (smoltcp emits at most one packet per socket per pass); whether any was
/// sent.
fn drain_egress(
    interface: &mut Interface,
    device: &mut FrameDevice,
    set: &mut SocketSet<'static>,
    now: Instant,
) -> bool {
    let mut sent = false;
    while interface.poll_egress(now, device, set) == PollResult::SocketStateChanged {
        sent = true;
    }
    sent
}

fn millis(duration: CoreDuration) -> Duration {
    Duration::from_micros(duration.as_micros() as u64)
}

impl NetStack {
    pub fn new(config: NetConfig, mut device: FrameDevice, now: Instant) -> Self {
        let hardware = HardwareAddress::Ethernet(EthernetAddress(config.mac));
        let mut interface_config = Config::new(hardware);
        interface_config.random_seed = config.seed;
        let mut interface = Interface::new(interface_config, &mut device, now);
        let mut misc = SocketSet::new(Vec::new());
        let dhcp = if config.dhcp {
            Some(misc.add(dhcpv4::Socket::new()))
        } else {
            Self::configure(&mut interface, Some(config.address), config.gateway);
            None
        };
        NetStack {
            interface,
            sockets: SocketTable::new(),
            flows: FlowTable::new(config.seed.rotate_left(17) ^ 0x7e6f_6c64),
            misc_dirty: true,
            misc_due: None,
            misc,
            no_sockets: SocketSet::new(Vec::new()),
            readiness: Poller::new(),
            device,
            config,
            dhcp,
            egress: Vec::new(),
            closing: 0,
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
        match self.misc.get_mut::<dhcpv4::Socket>(handle).poll() {
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

    /// Processes received frames, due deadlines and pending output, then
    /// wakes the tasks whose sockets became ready (the I/O phase of the
    /// event loop). Returns whether any socket changed state.
    pub fn poll(&mut self, now: Instant) -> bool {
        self.stats.polls += 1;
        let mut changed = self.ingress(now);
        self.stats.deadlines_fired += self.sockets.fire_deadlines(now);
        changed |= self.egress(now);
        if changed {
            self.stats.state_changes += 1;
        }
        self.apply_dhcp();
        self.readiness.dispatch(&mut self.sockets);
        changed
    }

    /// Hands each received frame to smoltcp with the one socket it is for.
    fn ingress(&mut self, now: Instant) -> bool {
        let mut changed = false;
        // A frame may need a reply: take one only while it could be sent.
        while self.device.can_reply() {
            let Some(frame) = self.device.peek_received() else { break };
            let kind = crate::flows::classify(frame);
            let sockets = &self.sockets;
            let half_open = |handle| sockets.get(handle).is_some_and(|entry| entry.half_open);
            let route = self.flows.route(kind, half_open);
            // The listening socket a SYN goes to: a half-open one taken over
            // (listening again), or one made for it now, sized for the load.
            let listener = match route {
                Route::Evict(handle) => {
                    self.relisten(handle);
                    self.stats.half_open_evicted += 1;
                    Some(handle)
                }
                Route::Open(port) => self.new_listening_socket(port),
                _ => None,
            };
            let (set, handle) = match route {
                Route::Drop => {
                    self.device.discard_received();
                    self.stats.frames_dropped += 1;
                    continue;
                }
                Route::Misc => {
                    self.misc_dirty = true;
                    (&mut self.misc, None)
                }
                Route::Refuse => (&mut self.no_sockets, None),
                Route::Connection(handle) => match self.sockets.get_mut(handle) {
                    Some(entry) => (&mut entry.set, Some(handle)),
                    None => (&mut self.no_sockets, None),
                },
                Route::Evict(_) | Route::Open(_) => {
                    match listener.and_then(|h| Some((h, self.sockets.get_mut(h)?))) {
                        Some((handle, entry)) => (&mut entry.set, Some(handle)),
                        None => (&mut self.no_sockets, None),
                    }
                }
            };
            let result = self.interface.poll_ingress_single(now, &mut self.device, set);
            self.stats.frames += 1;
            changed |= result == PollIngressSingleResult::SocketStateChanged;
            if let Some(handle) = handle {
                self.sockets.mark_dirty(handle);
                if let (Some(_), FrameKind::Tcp { key, .. }) = (listener, kind) {
                    self.file_listener(handle, key);
                } else {
                    self.settle(handle);
                }
            }
            if kind == FrameKind::Arp && self.sockets.len() > 0 {
                self.sockets.mark_all_dirty();
                self.stats.neighbor_sweeps += 1;
            }
        }
        changed
    }

    /// A new TCP socket listening on `port`, for a SYN that took a slot.
    fn new_listening_socket(&mut self, port: u16) -> Option<SocketHandle> {
        let handle = self.new_tcp_socket();
        let timeout = self.config.tcp.handshake_timeout.map(millis);
        let entry = self.sockets.get_mut(handle)?;
        let socket = entry.tcp();
        socket.set_timeout(timeout);
        if socket.listen(port).is_err() {
            self.remove_socket(handle);
            return None;
        }
        entry.listen_port = Some(port);
        Some(handle)
    }

    /// Drops the half-open connection of listening socket `handle` and
    /// makes it listen again, to take a newer SYN at once (the SYN cache is
    /// full; see [`crate::flows`]).
    fn relisten(&mut self, handle: SocketHandle) {
        let Some(entry) = self.sockets.get_mut(handle) else { return };
        let Some(port) = entry.listen_port else { return };
        let flow = entry.flow.take();
        let was_half_open = core::mem::replace(&mut entry.half_open, false);
        let socket = entry.tcp();
        // `listen` forgets the peer, so no reset is sent: a real peer gets
        // one when its next segment meets no connection.
        socket.abort();
        if socket.listen(port).is_err() {
            log::warn!("tcp: a listening socket would not listen again");
            return;
        }
        // A fresh set entry: smoltcp keeps per-socket egress state beside the
        // socket (e.g. "silent until the neighbour answers", set while it
        // tried a spoofed peer), which must not delay its next peer.
        entry.renew();
        self.flows.disconnect(flow, handle);
        if was_half_open {
            self.flows.end_half_open(port, handle, false);
        }
    }

    /// Removes listening socket `handle`, whose handshake failed (reset,
    /// timed out, or its SYN not taken), and gives its slot back.
    fn drop_listening_socket(&mut self, handle: SocketHandle) {
        let Some(port) = self.sockets.get(handle).and_then(|entry| entry.listen_port) else { return };
        self.remove_socket(handle);
        self.flows.add_slots(port, 1);
        self.flows.wake(port);
    }

    /// Files listening socket `handle` after it was handed a SYN for `key`.
    fn file_listener(&mut self, handle: SocketHandle, key: crate::flows::FlowKey) {
        let Some(entry) = self.sockets.get_mut(handle) else { return };
        let Some(port) = entry.listen_port else { return };
        match entry.tcp_ref().state() {
            // Not taken (not for us).
            tcp::State::Listen => self.drop_listening_socket(handle),
            tcp::State::SynReceived => {
                entry.flow = Some(key);
                entry.half_open = true;
                self.flows.connected(key, handle);
                let sockets = &self.sockets;
                self.flows.add_half_open(port, handle, |other| {
                    sockets.get(other).is_some_and(|entry| entry.half_open)
                });
            }
            _ => {
                entry.flow = Some(key);
                self.flows.connected(key, handle);
                self.flows.end_half_open(port, handle, true);
            }
        }
    }

    /// Files a socket whose state may have changed: a handshake that ended,
    /// a released socket that finished closing (removed now).
    fn settle(&mut self, handle: SocketHandle) {
        let Some(entry) = self.sockets.get_mut(handle) else { return };
        let state = entry.tcp_ref().state();
        if entry.released {
            if matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
                let port = entry.listen_port;
                self.remove_socket(handle);
                if let Some(port) = port {
                    self.flows.closing_done(port);
                }
            }
            return;
        }
        if !entry.half_open || state == tcp::State::SynReceived {
            return;
        }
        let Some(port) = entry.listen_port else { return };
        match state {
            // Reset or timed out in the handshake.
            tcp::State::Listen | tcp::State::Closed => self.drop_listening_socket(handle),
            _ => {
                entry.half_open = false;
                self.flows.end_half_open(port, handle, true);
            }
        }
    }

    /// Egress for the sockets queued (touched or due), and the misc set.
    fn egress(&mut self, now: Instant) -> bool {
        let mut changed = false;
        if self.misc_dirty || self.misc_due.is_some_and(|due| due <= now) {
            self.misc_dirty = false;
            changed |= drain_egress(&mut self.interface, &mut self.device, &mut self.misc, now);
            self.misc_due = self.interface.poll_at(now, &self.misc);
            if self.misc_due.is_some_and(|due| due <= now) {
                self.misc_dirty = true;
            }
        }
        let mut queue = core::mem::take(&mut self.egress);
        self.sockets.take_dirty(&mut queue);
        for &handle in &queue {
            let Some(entry) = self.sockets.get_mut(handle) else { continue };
            self.stats.egress_visits += 1;
            changed |= drain_egress(&mut self.interface, &mut self.device, &mut entry.set, now);
            let due = self.interface.poll_at(now, &entry.set);
            if due.is_some_and(|due| due <= now) {
                // More to send than the device took: first in the next pass.
                self.sockets.mark_dirty(handle);
            } else {
                self.sockets.schedule(handle, due);
            }
            // Timers end handshakes and closes too.
            self.settle(handle);
        }
        self.egress = queue;
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
    pub fn wait(&mut self, events: &mut Vec<Event>) {
        self.readiness.wait(&self.sockets, events);
    }

    /// Sockets the last poll examined for readiness, and tasks woken in all.
    pub fn readiness_stats(&self) -> (usize, u64) {
        (self.readiness.last_examined, self.readiness.tasks_woken)
    }

    /// When the stack next needs a poll without new input (output queued,
    /// retransmission, delayed ACK, keep-alive); `None`: only on input.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        if self.misc_dirty || self.sockets.has_dirty() {
            return Some(now);
        }
        match (self.sockets.next_deadline(), self.misc_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A new TCP socket with the stack's tuning.
    pub fn new_tcp_socket(&mut self) -> SocketHandle {
        let tuning = self.config.tcp;
        let load = self.sockets.len().saturating_sub(self.closing);
        let (rx_size, tx_size) = if load < tuning.full_buffer_sockets {
            (tuning.rx_buffer, tuning.tx_buffer)
        } else {
            (tuning.small_buffer.min(tuning.rx_buffer), tuning.small_buffer.min(tuning.tx_buffer))
        };
        let rx = tcp::SocketBuffer::new(alloc::vec![0; rx_size]);
        let tx = tcp::SocketBuffer::new(alloc::vec![0; tx_size]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_nagle_enabled(tuning.nagle);
        socket.set_ack_delay(tuning.ack_delay.map(millis));
        socket.set_timeout(tuning.idle_timeout.map(millis));
        let handle = self.sockets.add(socket);
        if let Some(entry) = self.sockets.get_mut(handle) {
            self.readiness.register(handle, entry);
        }
        handle
    }

    /// Opens `count` more listening slots on `port`: that many SYNs will
    /// each get a new socket (the listener bounds them).
    pub fn add_listen_slots(&mut self, port: u16, count: usize) {
        self.flows.add_slots(port, count);
    }

    /// Closes one free listening slot of `port`; `false` if none is free.
    pub fn take_listen_slot(&mut self, port: u16) -> bool {
        self.flows.take_slot(port)
    }

    /// What the listener on `port` wants done with SYNs when none of its
    /// sockets is free (see [`crate::flows`]).
    pub fn set_admission(&mut self, port: u16, admission: Admission) {
        self.flows.set_admission(port, admission);
    }

    /// Forgets `port` once its listener is gone and nothing is left on it
    /// (see [`crate::flows::FlowTable::forget_port`]).
    pub fn forget_port(&mut self, port: u16) -> bool {
        self.flows.forget_port(port)
    }

    /// Ports the demultiplexer keeps a record for.
    pub fn port_records(&self) -> usize {
        self.flows.port_records()
    }

    /// What became of SYNs for `port` that found no free listening socket.
    pub fn admission_stats(&self, port: u16) -> AdmissionStats {
        self.flows.admission_stats(port)
    }

    /// Adds a socket of another kind (ICMP); TCP sockets come from
    /// [`NetStack::new_tcp_socket`].
    pub fn add_socket<T: smoltcp::socket::AnySocket<'static>>(&mut self, socket: T) -> SetHandle {
        self.misc_dirty = true;
        self.misc.add(socket)
    }

    /// A socket of another kind, by the handle `add_socket` gave; must exist.
    pub fn socket_mut<T: smoltcp::socket::AnySocket<'static>>(&mut self, handle: SetHandle) -> &mut T {
        self.misc_dirty = true;
        self.misc.get_mut::<T>(handle)
    }

    /// Removes a socket of another kind.
    pub fn remove_other_socket(&mut self, handle: SetHandle) {
        self.misc.remove(handle);
    }

    /// Removes a TCP socket at once, and its readiness registration first.
    pub fn remove_socket(&mut self, handle: SocketHandle) {
        self.readiness.deregister(handle);
        if let Some(entry) = self.sockets.remove(handle) {
            self.closing -= usize::from(entry.released);
            self.flows.disconnect(entry.flow, handle);
            if let Some(port) = entry.listen_port {
                self.flows.forget(port, handle, entry.half_open);
            }
        }
    }

    /// Closes TCP socket `handle` (a FIN after the data buffered) and
    /// removes it once the close completes (TIME-WAIT counts as complete:
    /// the peer has everything), so closing sockets cost nothing after.
    pub fn release(&mut self, handle: SocketHandle) {
        let Some(entry) = self.sockets.get_mut(handle) else { return };
        if core::mem::replace(&mut entry.released, true) {
            return;
        }
        entry.tcp().close();
        self.closing += 1;
        if let Some(port) = entry.listen_port {
            self.flows.closing_started(port);
        }
        self.sockets.mark_dirty(handle);
        self.settle(handle);
    }

    /// The oldest connection on `port` whose handshake is over, if any.
    pub fn accept(&mut self, port: u16) -> Option<SocketHandle> {
        while let Some(handle) = self.flows.take_completed(port) {
            if self.sockets.get(handle).is_some() {
                return Some(handle);
            }
        }
        None
    }

    /// The sockets of listening port `port` by stage.
    pub fn port_counts(&self, port: u16) -> PortCounts {
        self.flows.counts(port)
    }

    /// Wakes `waker` when a socket of `port` changes stage (a SYN taken, a
    /// handshake over, a close finished).
    pub fn wait_port(&mut self, port: u16, waker: &core::task::Waker) {
        self.flows.set_waker(port, waker);
    }

    /// Starts connecting TCP socket `handle` to `remote`.
    pub fn connect(
        &mut self,
        handle: SocketHandle,
        remote: smoltcp::wire::IpEndpoint,
        local_port: u16,
    ) -> Result<(), tcp::ConnectError> {
        // IPv6 is compiled in (smoltcp's segmentation offload needs it) but
        // the stack is configured for IPv4 only.
        #[allow(irrefutable_let_patterns)]
        let smoltcp::wire::IpAddress::Ipv4(remote_address) = remote.addr else {
            return Err(tcp::ConnectError::Unaddressable);
        };
        let entry = self.sockets.get_mut(handle).ok_or(tcp::ConnectError::InvalidState)?;
        entry.tcp().connect(self.interface.context(), remote, local_port)?;
        let key = crate::flows::FlowKey { local_port, remote_address, remote_port: remote.port };
        entry.flow = Some(key);
        self.flows.connected(key, handle);
        self.sockets.mark_dirty(handle);
        Ok(())
    }

    /// Gives an established connection the configured idle timeout (the
    /// listener uses a short one for the handshake).
    pub fn apply_idle_timeout(&mut self, handle: SocketHandle) {
        let timeout = self.config.tcp.idle_timeout.map(millis);
        self.tcp(handle).set_timeout(timeout);
    }

    /// The TCP socket `handle`, which must exist, for reading and writing:
    /// it gets an egress pass at the next poll.
    pub fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.mark_dirty(handle);
        self.sockets.get_mut(handle).expect("a live TCP socket handle").tcp()
    }

    /// The TCP socket `handle` for reading and writing, if it exists (it
    /// gets an egress pass at the next poll).
    pub fn try_tcp(&mut self, handle: SocketHandle) -> Option<&mut tcp::Socket<'static>> {
        self.sockets.mark_dirty(handle);
        Some(self.sockets.get_mut(handle)?.tcp())
    }

    /// The TCP socket `handle` (which must exist), to look at.
    pub fn tcp_ref(&self, handle: SocketHandle) -> &tcp::Socket<'static> {
        self.sockets.get(handle).expect("a live TCP socket handle").tcp_ref()
    }

    /// Every TCP socket, for listings (O(sockets): not for the packet path).
    pub fn tcp_sockets(&self) -> impl Iterator<Item = (SocketHandle, &tcp::Socket<'static>)> {
        self.sockets.iter().map(|(handle, entry)| (handle, entry.tcp_ref()))
    }

    /// TCP sockets, and connections in the demultiplexing table.
    pub fn socket_counts(&self) -> (usize, usize) {
        (self.sockets.len(), self.flows.connections())
    }

    /// Bytes buffered in all TCP sockets (receive + send): the memory that
    /// backpressure keeps bounded.
    pub fn buffered_bytes(&self) -> usize {
        self.tcp_sockets().map(|(_, tcp)| tcp.recv_queue() + tcp.send_queue()).sum()
    }
}
