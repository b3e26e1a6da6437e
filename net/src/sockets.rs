//! The socket table: every TCP socket in a smoltcp `SocketSet` of its own,
//! so the stack can hand smoltcp exactly the socket a frame is for, and run
//! egress for exactly the sockets that have something to do. smoltcp's
//! `Interface` walks every socket of the set it is given — on each incoming
//! segment, each egress pass and each `poll_at` — so with one shared set the
//! cost per packet grows with the number of connections; with a set per
//! socket it does not. The table owns:
//!
//! - **handles with a generation**: a slot is reused after its socket is
//!   removed, but a handle to the old socket never reaches the new one;
//! - **the dirty queue**: sockets touched by a frame or by their owner since
//!   their last egress (each queued once);
//! - **deadlines**: when each socket next needs egress without new input
//!   (retransmission, delayed ACK, keep-alive, timeouts), in a min-heap.
//!   A socket keeps at most one live entry; superseded entries are skipped
//!   when they surface, and the heap is rebuilt from the live ones when the
//!   stale entries outnumber them, so it stays O(sockets) in size.
//!
//! Sockets of other kinds (ICMP, DHCP) are few and share one set, the
//! stack's "misc" set; they are not in this table.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Reverse;

use smoltcp::iface::{SocketHandle as SetHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use crate::flows::FlowKey;

/// A TCP socket of a [`crate::stack::NetStack`]. Stale once the socket is
/// removed: the slot's next socket gets another generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketHandle {
    index: u32,
    generation: u32,
}

impl SocketHandle {
    /// The slot, dense from 0: tables indexed by socket use it.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl core::fmt::Display for SocketHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// One socket and its scheduling state.
pub(crate) struct Entry {
    /// A set holding just this socket.
    pub set: SocketSet<'static>,
    pub inner: SetHandle,
    /// The connection it is filed under in the demultiplexing table.
    pub flow: Option<FlowKey>,
    /// The port it was put to listen on, if it came from a listener.
    pub listen_port: Option<u16>,
    /// In its port's SYN cache (handshake in progress, evictable).
    pub half_open: bool,
    /// Its owner is done with it: removed once closed.
    pub released: bool,
    /// In the dirty queue.
    dirty: bool,
    /// The deadline of its live heap entry, if any.
    scheduled: Option<Instant>,
}

impl Entry {
    pub fn tcp(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(self.inner)
    }

    pub fn tcp_ref(&self) -> &tcp::Socket<'static> {
        self.set.get::<tcp::Socket>(self.inner)
    }

    /// Re-enters the socket in its set, dropping smoltcp's per-socket
    /// metadata (the socket itself, its state and wakers, stay).
    pub fn renew(&mut self) {
        let socket = self.set.remove(self.inner);
        self.inner = self.set.add(socket);
    }
}

struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// Counters of the table.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableStats {
    /// Times the deadline heap was rebuilt without its stale entries.
    pub heap_rebuilds: u64,
}

pub(crate) struct SocketTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    dirty: Vec<SocketHandle>,
    /// (deadline, handle); an entry is live iff the socket still exists and
    /// its `scheduled` equals the deadline.
    deadlines: BinaryHeap<Reverse<(Instant, SocketHandle)>>,
    pub stats: TableStats,
}

impl SocketTable {
    pub fn new() -> Self {
        SocketTable {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            dirty: Vec::new(),
            deadlines: BinaryHeap::new(),
            stats: TableStats::default(),
        }
    }

    /// Adds `socket` in a set of its own; it starts dirty (a socket that
    /// was just set up may have something to send).
    pub fn add(&mut self, socket: tcp::Socket<'static>) -> SocketHandle {
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let inner = set.add(socket);
        let entry = Entry {
            set,
            inner,
            flow: None,
            listen_port: None,
            half_open: false,
            released: false,
            dirty: false,
            scheduled: None,
        };
        let handle = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.entry = Some(entry);
                SocketHandle { index, generation: slot.generation }
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 sockets");
                self.slots.push(Slot { generation: 0, entry: Some(entry) });
                SocketHandle { index, generation: 0 }
            }
        };
        self.live += 1;
        self.mark_dirty(handle);
        handle
    }

    /// Removes the socket; its handle goes stale.
    pub fn remove(&mut self, handle: SocketHandle) -> Option<Entry> {
        let slot = self.slots.get_mut(handle.index())?;
        if slot.generation != handle.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(handle.index);
        self.live -= 1;
        // Queued entries of the old socket are skipped as stale.
        Some(entry)
    }

    pub fn get(&self, handle: SocketHandle) -> Option<&Entry> {
        let slot = self.slots.get(handle.index())?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.entry.as_ref()
    }

    pub fn get_mut(&mut self, handle: SocketHandle) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(handle.index())?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// Sockets in the table.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Every socket, for listings and sums (never on the packet path).
    pub fn iter(&self) -> impl Iterator<Item = (SocketHandle, &Entry)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let entry = slot.entry.as_ref()?;
            Some((SocketHandle { index: index as u32, generation: slot.generation }, entry))
        })
    }

    /// Queues the socket for the next egress pass (once).
    pub fn mark_dirty(&mut self, handle: SocketHandle) {
        if let Some(entry) = self.get_mut(handle)
            && !core::mem::replace(&mut entry.dirty, true)
        {
            self.dirty.push(handle);
        }
    }

    /// Queues every socket (after the neighbour cache learned an address a
    /// socket may be waiting for). O(sockets): only for rare events.
    pub fn mark_all_dirty(&mut self) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Some(entry) = &mut slot.entry
                && !core::mem::replace(&mut entry.dirty, true)
            {
                self.dirty.push(SocketHandle { index: index as u32, generation: slot.generation });
            }
        }
    }

    /// Moves the deadlines due at `now` into the dirty queue; returns how
    /// many came due.
    pub fn fire_deadlines(&mut self, now: Instant) -> u64 {
        let mut fired = 0;
        while let Some(&Reverse((at, handle))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(entry) = self.get_mut(handle) else { continue };
            if entry.scheduled != Some(at) {
                continue; // superseded
            }
            entry.scheduled = None;
            fired += 1;
            self.mark_dirty(handle);
        }
        fired
    }

    /// Takes the dirty queue (into `into`, cleared first); each socket's
    /// flag is cleared, so touching it again queues it anew.
    pub fn take_dirty(&mut self, into: &mut Vec<SocketHandle>) {
        into.clear();
        core::mem::swap(into, &mut self.dirty);
        for &handle in into.iter() {
            if let Some(entry) = self.get_mut(handle) {
                entry.dirty = false;
            }
        }
    }

    /// Whether some socket waits for egress now.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Records when `handle` next needs egress (`None`: only on input). A
    /// later deadline than the one scheduled keeps the earlier entry: it
    /// fires early, the egress finds nothing to do and reschedules — cheaper
    /// than a heap entry per change.
    pub fn schedule(&mut self, handle: SocketHandle, at: Option<Instant>) {
        let Some(entry) = self.get_mut(handle) else { return };
        let Some(at) = at else { return };
        if entry.scheduled.is_some_and(|scheduled| scheduled <= at) {
            return;
        }
        entry.scheduled = Some(at);
        self.deadlines.push(Reverse((at, handle)));
        if self.deadlines.len() > 2 * self.live + 64 {
            self.rebuild_deadlines();
        }
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, handle))) = self.deadlines.peek() {
            if self.get(handle).is_some_and(|entry| entry.scheduled == Some(at)) {
                return Some(at);
            }
            self.deadlines.pop();
        }
        None
    }

    fn rebuild_deadlines(&mut self) {
        let live: Vec<_> = self
            .iter()
            .filter_map(|(handle, entry)| entry.scheduled.map(|at| Reverse((at, handle))))
            .collect();
        self.deadlines = BinaryHeap::from(live);
        self.stats.heap_rebuilds += 1;
    }

    /// Entries in the deadline heap, live and stale (for tests).
    #[cfg(test)]
    pub fn heap_len(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(alloc::vec![0; 64]),
            tcp::SocketBuffer::new(alloc::vec![0; 64]),
        )
    }

    #[test]
    fn a_removed_sockets_handle_never_reaches_the_slots_next_socket() {
        let mut table = SocketTable::new();
        let first = table.add(socket());
        assert!(table.remove(first).is_some());
        let second = table.add(socket());
        assert_eq!(first.index(), second.index(), "the slot is reused");
        assert_ne!(first, second);
        assert!(table.get(first).is_none());
        assert!(table.remove(first).is_none());
        assert!(table.get(second).is_some());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn each_socket_is_queued_once_and_stale_entries_are_skipped() {
        let mut table = SocketTable::new();
        let a = table.add(socket());
        let b = table.add(socket());
        table.mark_dirty(a);
        let mut dirty = Vec::new();
        table.take_dirty(&mut dirty);
        assert_eq!(dirty, [a, b]);
        table.mark_dirty(b);
        table.mark_dirty(b);
        table.remove(b);
        table.take_dirty(&mut dirty);
        assert_eq!(dirty, [b], "queued once");
        assert!(table.get(dirty[0]).is_none(), "and the caller finds it gone");
    }

    #[test]
    fn deadlines_fire_in_order_and_later_ones_keep_the_earlier_entry() {
        let mut table = SocketTable::new();
        let a = table.add(socket());
        let b = table.add(socket());
        let mut dirty = Vec::new();
        table.take_dirty(&mut dirty);
        table.schedule(a, Some(Instant::from_millis(30)));
        table.schedule(b, Some(Instant::from_millis(10)));
        table.schedule(a, Some(Instant::from_millis(50))); // later: no new entry
        assert_eq!(table.heap_len(), 2);
        assert_eq!(table.next_deadline(), Some(Instant::from_millis(10)));
        table.schedule(a, Some(Instant::from_millis(5))); // earlier: supersedes
        assert_eq!(table.next_deadline(), Some(Instant::from_millis(5)));
        assert_eq!(table.fire_deadlines(Instant::from_millis(10)), 2);
        table.take_dirty(&mut dirty);
        assert_eq!(dirty, [a, b]);
        assert_eq!(table.next_deadline(), None, "the superseded 30 ms entry is stale");
    }

    #[test]
    fn the_heap_stays_proportional_to_the_sockets() {
        let mut table = SocketTable::new();
        let handles: Vec<_> = (0..10).map(|_| table.add(socket())).collect();
        for round in 0..10_000i64 {
            // Ever earlier deadlines: each supersedes the last.
            for &handle in &handles {
                table.schedule(handle, Some(Instant::from_millis(1_000_000 - round)));
            }
        }
        assert!(table.heap_len() <= 2 * handles.len() + 64 + 1, "{}", table.heap_len());
        assert!(table.stats.heap_rebuilds > 0);
        assert_eq!(table.next_deadline(), Some(Instant::from_millis(1_000_000 - 9_999)));
    }
}
