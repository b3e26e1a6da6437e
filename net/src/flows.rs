//! Demultiplexing: which socket an incoming frame is for, found in O(1).
//!
//! A TCP segment is looked up by its connection (local port, remote address,
//! remote port) in a hash table; a SYN for no connection goes to one of the
//! sockets listening on its port. What is left — a segment for no connection
//! and no free listener — is decided here too, which is where a listen
//! backlog and a connection cap take effect:
//!
//! - a listening socket is free: the SYN goes to it;
//! - none is free, and the port's half-open connections (SYN received,
//!   the handshake's last ACK not yet) fill the SYN cache or hold the port
//!   at its cap: the oldest half-open connection is **evicted** and its
//!   socket takes the SYN. A flood of SYNs from spoofed addresses that never
//!   answer thus only ever evicts its own entries, while a real client
//!   completes its handshake within a round trip, long before hundreds of
//!   newer SYNs push it out. Memory stays bounded and legitimate clients
//!   get through — without SYN cookies, which need control of the initial
//!   sequence number that smoltcp keeps to itself;
//! - the port is at its connection cap, or memory cannot hold another
//!   connection: the SYN is **refused** (smoltcp answers it with a reset,
//!   a clean, immediate refusal);
//! - otherwise every listening socket is busy with a handshake (a burst of
//!   SYNs): the SYN is **deferred** — dropped, so the client retransmits it
//!   a moment later, as when a Linux accept queue is full;
//! - a non-SYN segment for no connection, or a SYN for a port nobody listens
//!   on, is answered with a reset (RFC 9293).
//!
//! The table's hash is keyed with the stack's random seed, so remote peers
//! cannot aim colliding connections at one bucket.

use alloc::collections::{BTreeMap, VecDeque};
use core::hash::{BuildHasher, Hasher};
use core::task::Waker;

use hashbrown::HashMap;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket};

use crate::sockets::SocketHandle;

/// A TCP connection as seen from this host (the local address is the
/// interface's one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local_port: u16,
    pub remote_address: Ipv4Address,
    pub remote_port: u16,
}

/// What an incoming frame is, as far as demultiplexing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A TCP segment; `opens`: SYN without ACK or RST (a connection request).
    Tcp { key: FlowKey, opens: bool },
    /// ARP: the neighbour cache may learn an address sockets wait for.
    Arp,
    /// Anything else (ICMP, UDP, malformed): the misc sockets and the
    /// interface itself deal with it.
    Other,
}

/// Classifies a frame by its headers (checked lengths; malformed is Other,
/// and smoltcp then drops it).
pub fn classify(frame: &[u8]) -> FrameKind {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else { return FrameKind::Other };
    match ethernet.ethertype() {
        EthernetProtocol::Arp => return FrameKind::Arp,
        EthernetProtocol::Ipv4 => {}
        _ => return FrameKind::Other,
    }
    let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else { return FrameKind::Other };
    if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
        return FrameKind::Other;
    }
    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else { return FrameKind::Other };
    let key =
        FlowKey { local_port: tcp.dst_port(), remote_address: ip.src_addr(), remote_port: tcp.src_port() };
    FrameKind::Tcp { key, opens: tcp.syn() && !tcp.ack() && !tcp.rst() }
}

/// How SYNs that find no free listening socket are treated (see the
/// module docs); set by the port's listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub at_cap: bool,
    pub out_of_memory: bool,
    /// With this many half-open connections, a SYN evicts the oldest.
    pub half_open_limit: usize,
}

/// What became of SYNs that found no free listening socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Half-open connections dropped for a newer SYN (SYN cache full).
    pub evicted: u64,
    pub deferred: u64,
    pub refused_at_cap: u64,
    pub refused_for_memory: u64,
}

/// The sockets of a listening port, by stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounts {
    /// Listening slots free for a SYN (a socket is made when one comes).
    pub free: usize,
    /// SYN received, handshake not finished.
    pub half_open: usize,
    /// Handshake finished, not yet accepted.
    pub completed: usize,
    /// Released by their owner, still closing.
    pub closing: usize,
}

#[derive(Default)]
struct Port {
    /// Listening slots: SYNs the listener will take; each gets a socket
    /// made for it when it comes, sized for the load at that moment.
    free: usize,
    /// Half-open sockets, oldest first; entries whose handshake ended since
    /// are skipped (and compacted away).
    half_open: VecDeque<SocketHandle>,
    half_open_count: usize,
    completed: VecDeque<SocketHandle>,
    closing: usize,
    /// The listener's task, woken when a stage changes.
    waker: Option<Waker>,
    admission: Admission,
    stats: AdmissionStats,
}

impl Port {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To this connection's socket.
    Connection(SocketHandle),
    /// To a new socket listening on the port (a SYN, taking a slot).
    Open(u16),
    /// To this listening socket, whose half-open connection must be dropped
    /// first (a SYN when the SYN cache is full).
    Evict(SocketHandle),
    /// To no socket: smoltcp answers a TCP segment with a reset.
    Refuse,
    /// Dropped unseen (a deferred SYN).
    Drop,
    /// To the misc sockets.
    Misc,
}

/// A SipHash-free keyed hasher: FxHash-style multiply-rotate over the key's
/// words, seeded per stack. Fast in emulated CPUs, and the seed keeps the
/// bucket of a connection unpredictable from outside.
#[derive(Clone, Copy)]
pub struct KeyedHash {
    seed: u64,
}

pub struct KeyedHasher {
    state: u64,
}

impl BuildHasher for KeyedHash {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { state: self.seed }
    }
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u16(&mut self, value: u16) {
        self.write_u64(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.state = (self.state.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        // Final avalanche (murmur3's fmix64) so the seed reaches every bit.
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// Connections by 4-tuple, and the listening ports' sockets by stage.
pub struct FlowTable {
    connections: HashMap<FlowKey, SocketHandle, KeyedHash>,
    ports: BTreeMap<u16, Port>,
}

impl FlowTable {
    pub fn new(seed: u64) -> Self {
        FlowTable { connections: HashMap::with_hasher(KeyedHash { seed }), ports: BTreeMap::new() }
    }

    /// Where a frame of `kind` goes. A listening socket handed out is taken
    /// off its port's free list, and the caller files it again by its new
    /// stage. `half_open` tells whether a socket is still in its handshake.
    pub fn route(&mut self, kind: FrameKind, half_open: impl Fn(SocketHandle) -> bool) -> Route {
        let (key, opens) = match kind {
            FrameKind::Tcp { key, opens } => (key, opens),
            FrameKind::Arp | FrameKind::Other => return Route::Misc,
        };
        if let Some(&handle) = self.connections.get(&key) {
            return Route::Connection(handle);
        }
        if !opens {
            return Route::Refuse;
        }
        let Some(port) = self.ports.get_mut(&key.local_port) else { return Route::Refuse };
        if port.free > 0 {
            port.free -= 1;
            return Route::Open(key.local_port);
        }
        // The SYN cache is full, or the half-open connections are what
        // holds the port at its cap: the oldest gives way.
        let cache_full = port.half_open_count >= port.admission.half_open_limit.max(1);
        if cache_full || port.admission.at_cap {
            while let Some(handle) = port.half_open.pop_front() {
                if half_open(handle) {
                    port.stats.evicted += 1;
                    return Route::Evict(handle);
                }
            }
        }
        if port.admission.at_cap {
            port.stats.refused_at_cap += 1;
            Route::Refuse
        } else if port.admission.out_of_memory {
            port.stats.refused_for_memory += 1;
            Route::Refuse
        } else {
            port.stats.deferred += 1;
            Route::Drop
        }
    }

    /// `handle` now carries connection `key` (its handshake started).
    pub fn connected(&mut self, key: FlowKey, handle: SocketHandle) {
        self.connections.insert(key, handle);
    }

    /// Forgets connection `key` if `handle` still carries it.
    pub fn disconnect(&mut self, key: Option<FlowKey>, handle: SocketHandle) {
        if let Some(key) = key
            && self.connections.get(&key) == Some(&handle)
        {
            self.connections.remove(&key);
        }
    }

    fn port(&mut self, port: u16) -> &mut Port {
        self.ports.entry(port).or_default()
    }

    /// Adds `count` listening slots to `port`.
    pub fn add_slots(&mut self, port: u16, count: usize) {
        self.port(port).free += count;
    }

    /// Takes a listening slot of `port` back; `false` if none is free.
    pub fn take_slot(&mut self, port: u16) -> bool {
        let Some(port) = self.ports.get_mut(&port) else { return false };
        let taken = port.free > 0;
        port.free -= usize::from(taken);
        taken
    }

    /// Listening socket `handle` of `port` took a SYN: evictable while its
    /// handshake lasts. `half_open` tells which queued entries still are.
    pub fn add_half_open(
        &mut self,
        port: u16,
        handle: SocketHandle,
        half_open: impl Fn(SocketHandle) -> bool,
    ) {
        let port = self.port(port);
        port.half_open.push_back(handle);
        port.half_open_count += 1;
        if port.half_open.len() > 2 * port.half_open_count + 16 {
            port.half_open.retain(|&other| half_open(other));
        }
        port.wake();
    }

    /// The handshake of `handle` is over: `completed`, it waits to be
    /// accepted; else it failed (the caller makes it listen again).
    pub fn end_half_open(&mut self, port: u16, handle: SocketHandle, completed: bool) {
        let port = self.port(port);
        port.half_open_count = port.half_open_count.saturating_sub(1);
        if completed {
            port.completed.push_back(handle);
        }
        port.wake();
    }

    /// Wakes the listener of `port`.
    pub fn wake(&mut self, port: u16) {
        self.port(port).wake();
    }

    /// The oldest connection of `port` whose handshake is over.
    pub fn take_completed(&mut self, port: u16) -> Option<SocketHandle> {
        self.ports.get_mut(&port)?.completed.pop_front()
    }

    /// A socket of `port` was released and is closing.
    pub fn closing_started(&mut self, port: u16) {
        self.port(port).closing += 1;
    }

    /// A closing socket of `port` finished.
    pub fn closing_done(&mut self, port: u16) {
        let port = self.port(port);
        port.closing = port.closing.saturating_sub(1);
        port.wake();
    }

    /// Forgets socket `handle` of listening port `port` in every stage.
    pub fn forget(&mut self, port: u16, handle: SocketHandle, was_half_open: bool) {
        let Some(port) = self.ports.get_mut(&port) else { return };
        port.completed.retain(|&other| other != handle);
        if was_half_open {
            port.half_open_count = port.half_open_count.saturating_sub(1);
        }
    }

    /// Wakes `waker` when a socket of `port` changes stage.
    pub fn set_waker(&mut self, port: u16, waker: &Waker) {
        crate::readiness::set_waker(&mut self.port(port).waker, waker);
    }

    pub fn counts(&self, port: u16) -> PortCounts {
        self.ports.get(&port).map_or_else(PortCounts::default, |port| PortCounts {
            free: port.free,
            half_open: port.half_open_count,
            completed: port.completed.len(),
            closing: port.closing,
        })
    }

    pub fn set_admission(&mut self, port: u16, admission: Admission) {
        self.port(port).admission = admission;
    }

    /// Drops the record of `port` if nothing is left on it (no listening
    /// slot, no socket in or after its handshake): a port whose listener
    /// closed then costs nothing, and SYNs to it are refused as for any port
    /// without a record. Returns whether it was dropped (a port with sockets
    /// still closing keeps its record, at its cap, until listened on again).
    pub fn forget_port(&mut self, port: u16) -> bool {
        let idle = self.ports.get(&port).is_some_and(|record| {
            record.free == 0
                && record.half_open_count == 0
                && record.completed.is_empty()
                && record.closing == 0
        });
        if idle {
            self.ports.remove(&port);
        }
        idle
    }

    /// Ports with a record (listened on, or with sockets left from a
    /// listener).
    pub fn port_records(&self) -> usize {
        self.ports.len()
    }

    pub fn admission_stats(&self, port: u16) -> AdmissionStats {
        self.ports.get(&port).map(|port| port.stats).unwrap_or_default()
    }

    /// Connections in the table.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::SocketTable;
    use smoltcp::socket::tcp;

    fn handles(count: usize) -> Vec<SocketHandle> {
        let mut table = SocketTable::new();
        (0..count)
            .map(|_| {
                table.add(tcp::Socket::new(
                    tcp::SocketBuffer::new(Vec::new()),
                    tcp::SocketBuffer::new(Vec::new()),
                ))
            })
            .collect()
    }

    fn key(remote_port: u16) -> FlowKey {
        FlowKey { local_port: 7, remote_address: Ipv4Address::new(10, 0, 2, 2), remote_port }
    }

    #[test]
    fn syns_take_slots_then_evict_the_oldest_half_open_or_wait() {
        let h = handles(4);
        let mut flows = FlowTable::new(1);
        let limit = Admission { half_open_limit: 2, ..Admission::default() };
        flows.set_admission(7, limit);
        flows.add_slots(7, 2);
        let syn = |port| FrameKind::Tcp { key: key(port), opens: true };
        let half_open = |_| true;
        assert_eq!(flows.route(syn(1000), half_open), Route::Open(7));
        flows.connected(key(1000), h[1]);
        flows.add_half_open(7, h[1], half_open);
        assert_eq!(flows.route(syn(1001), half_open), Route::Open(7));
        flows.connected(key(1001), h[0]);
        flows.add_half_open(7, h[0], half_open);
        // The cache is full: the oldest half-open connection gives way.
        assert_eq!(flows.route(syn(1002), half_open), Route::Evict(h[1]));
        // Its handshake over, a connection waits to be accepted.
        flows.end_half_open(7, h[0], true);
        assert_eq!(flows.counts(7), PortCounts { free: 0, half_open: 1, completed: 1, closing: 0 });
        assert_eq!(flows.take_completed(7), Some(h[0]));
        // Below the half-open limit, a SYN with no free slot waits...
        assert_eq!(flows.route(syn(1003), |_| false), Route::Drop, "deferred");
        // ...unless the port is at its cap or out of memory.
        flows.set_admission(7, Admission { at_cap: true, ..limit });
        assert_eq!(flows.route(syn(1003), |_| false), Route::Refuse);
        flows.set_admission(7, Admission { out_of_memory: true, ..limit });
        assert_eq!(flows.route(syn(1003), |_| false), Route::Refuse);
        let stats = flows.admission_stats(7);
        assert_eq!(
            (stats.evicted, stats.deferred, stats.refused_at_cap, stats.refused_for_memory),
            (1, 1, 1, 1)
        );
        // The connection's segments, retransmitted SYN included, reach it.
        assert_eq!(flows.route(syn(1000), |_| false), Route::Connection(h[1]));
        assert_eq!(
            flows.route(FrameKind::Tcp { key: key(1000), opens: false }, |_| false),
            Route::Connection(h[1])
        );
        // Strays and closed ports are refused.
        assert_eq!(flows.route(FrameKind::Tcp { key: key(5), opens: false }, |_| false), Route::Refuse);
        let other_port = FlowKey { local_port: 8, ..key(1) };
        assert_eq!(flows.route(FrameKind::Tcp { key: other_port, opens: true }, |_| false), Route::Refuse);
        flows.disconnect(Some(key(1000)), h[1]);
        flows.disconnect(Some(key(1001)), h[0]);
        assert_eq!(flows.connections(), 0);
        flows.add_slots(7, 1);
        assert!(flows.take_slot(7));
        assert!(!flows.take_slot(7));
    }

    #[test]
    fn removing_a_stale_key_leaves_its_new_owner() {
        let h = handles(2);
        let mut flows = FlowTable::new(1);
        flows.connected(key(1), h[0]);
        flows.connected(key(1), h[1]); // the tuple was reused
        flows.disconnect(Some(key(1)), h[0]);
        assert_eq!(
            flows.route(FrameKind::Tcp { key: key(1), opens: false }, |_| false),
            Route::Connection(h[1])
        );
    }

    #[test]
    fn finished_handshakes_do_not_pile_up_in_the_half_open_queue() {
        let h = handles(1);
        let mut flows = FlowTable::new(1);
        for _ in 0..1000 {
            flows.add_half_open(7, h[0], |_| false);
            flows.end_half_open(7, h[0], false);
        }
        assert!(flows.ports[&7].half_open.len() <= 18, "{}", flows.ports[&7].half_open.len());
    }

    #[test]
    fn frames_are_classified_by_their_headers() {
        assert_eq!(classify(&[0; 10]), FrameKind::Other);
        let mut frame = alloc::vec![0u8; 14 + 20 + 20];
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&frame), FrameKind::Arp);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut frame[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 2, 2]);
        let tcp = &mut frame[34..];
        tcp[0..2].copy_from_slice(&4000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&7u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02; // SYN
        let expected =
            FlowKey { local_port: 7, remote_address: Ipv4Address::new(10, 0, 2, 2), remote_port: 4000 };
        assert_eq!(classify(&frame), FrameKind::Tcp { key: expected, opens: true });
        frame[34 + 13] = 0x12; // SYN+ACK
        assert_eq!(classify(&frame), FrameKind::Tcp { key: expected, opens: false });
        frame[14 + 6] = 0x20; // more fragments: not demultiplexed by port
        assert_eq!(classify(&frame), FrameKind::Other);
    }
}
