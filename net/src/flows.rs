//! Demultiplexing: which socket an incoming frame is for, found in O(1).
//!
//! A TCP segment is looked up by its connection (local port, remote address,
//! remote port) in a hash table; a SYN for no connection goes to one of the
//! sockets listening on its port. What is left — a segment for no connection
//! and no free listener — is decided here too, which is where a listen
//! backlog and a connection cap take effect:
//!
//! - a listening socket is free: the SYN goes to it;
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

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::hash::{BuildHasher, Hasher};

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

/// Whether new connections on a port may be refused outright (see the
/// module docs); set by the port's listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub at_cap: bool,
    pub out_of_memory: bool,
}

/// What became of SYNs that found no free listening socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    pub deferred: u64,
    pub refused_at_cap: u64,
    pub refused_for_memory: u64,
}

#[derive(Default)]
struct Port {
    /// Sockets in the listen state, free for a SYN.
    listening: Vec<SocketHandle>,
    admission: Admission,
    stats: AdmissionStats,
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To this connection's socket.
    Connection(SocketHandle),
    /// To this listening socket (a SYN).
    Listener(SocketHandle),
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

pub struct FlowTable {
    connections: HashMap<FlowKey, SocketHandle, KeyedHash>,
    ports: BTreeMap<u16, Port>,
}

impl FlowTable {
    pub fn new(seed: u64) -> Self {
        FlowTable { connections: HashMap::with_hasher(KeyedHash { seed }), ports: BTreeMap::new() }
    }

    /// Where a frame of `kind` goes. A listening socket handed out is taken
    /// off its port's free list; the caller reports back with
    /// [`FlowTable::connected`] or [`FlowTable::add_listening`].
    pub fn route(&mut self, kind: FrameKind) -> Route {
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
        if let Some(handle) = port.listening.pop() {
            return Route::Listener(handle);
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

    /// `handle` listens on `port` (again).
    pub fn add_listening(&mut self, port: u16, handle: SocketHandle) {
        let listening = &mut self.ports.entry(port).or_default().listening;
        if !listening.contains(&handle) {
            listening.push(handle);
        }
    }

    /// Forgets `handle`: as a connection under `key`, and as a listener.
    pub fn remove(&mut self, key: Option<FlowKey>, port: Option<u16>, handle: SocketHandle) {
        if let Some(key) = key
            && self.connections.get(&key) == Some(&handle)
        {
            self.connections.remove(&key);
        }
        if let Some(port) = port.and_then(|port| self.ports.get_mut(&port)) {
            port.listening.retain(|&listening| listening != handle);
        }
    }

    pub fn set_admission(&mut self, port: u16, admission: Admission) {
        self.ports.entry(port).or_default().admission = admission;
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
    fn syns_take_listeners_then_are_deferred_or_refused_by_admission() {
        let h = handles(3);
        let mut flows = FlowTable::new(1);
        flows.add_listening(7, h[0]);
        flows.add_listening(7, h[0]); // once
        let syn = |port| FrameKind::Tcp { key: key(port), opens: true };
        assert_eq!(flows.route(syn(1000)), Route::Listener(h[0]));
        flows.connected(key(1000), h[0]);
        assert_eq!(flows.route(syn(1001)), Route::Drop, "busy listeners: deferred");
        flows.set_admission(7, Admission { at_cap: true, out_of_memory: false });
        assert_eq!(flows.route(syn(1001)), Route::Refuse);
        flows.set_admission(7, Admission { at_cap: false, out_of_memory: true });
        assert_eq!(flows.route(syn(1001)), Route::Refuse);
        let stats = flows.admission_stats(7);
        assert_eq!((stats.deferred, stats.refused_at_cap, stats.refused_for_memory), (1, 1, 1));
        // The connection's segments, retransmitted SYN included, reach it.
        assert_eq!(flows.route(syn(1000)), Route::Connection(h[0]));
        assert_eq!(flows.route(FrameKind::Tcp { key: key(1000), opens: false }), Route::Connection(h[0]));
        // Strays and closed ports are refused.
        assert_eq!(flows.route(FrameKind::Tcp { key: key(5), opens: false }), Route::Refuse);
        let other_port = FlowKey { local_port: 8, ..key(1) };
        assert_eq!(flows.route(FrameKind::Tcp { key: other_port, opens: true }), Route::Refuse);
        flows.remove(Some(key(1000)), None, h[0]);
        assert_eq!(flows.connections(), 0);
    }

    #[test]
    fn removing_a_stale_key_leaves_its_new_owner() {
        let h = handles(2);
        let mut flows = FlowTable::new(1);
        flows.connected(key(1), h[0]);
        flows.connected(key(1), h[1]); // the tuple was reused
        flows.remove(Some(key(1)), None, h[0]);
        assert_eq!(flows.route(FrameKind::Tcp { key: key(1), opens: false }), Route::Connection(h[1]));
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
