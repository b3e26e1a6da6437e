//! A listen backlog and a connection cap, which smoltcp lacks (a listening
//! socket becomes the connection, so one listening socket accepts one
//! connection at a time). The listener keeps up to `backlog` listening
//! *slots* open on the port: the stack makes a socket for a SYN that takes
//! a slot, sized for the load at that moment, so a free slot costs no
//! memory. A socket that took a SYN is half-open (in the SYN cache, see
//! [`crate::flows`]) until its handshake is over; the listener hands out
//! only finished handshakes. Slots are also limited by the cap, which
//! counts every connection accepted, waiting, closing or half-open: at
//! `max_connections` no slot is open and new SYNs are answered with a reset
//! — a clean refusal — while established connections are served as before.
//!
//! Below the cap, a burst of SYNs larger than the free slots would also be
//! reset by smoltcp, where a real backlog makes the late ones wait. The
//! stack's demultiplexer restores that: the listener tells it whether the
//! port is at its cap or out of memory, and otherwise SYNs beyond the free
//! slots are dropped, so the client retransmits them a moment later (as
//! when a Linux accept queue is full).
//!
//! Memory bounds connections too: with a [`MemoryBudget`], a slot is opened
//! only while the allocator's headroom covers one more connection above a
//! reserve. Below that no slot is open and new SYNs are refused with a
//! reset, exactly as at the cap, so a connection flood can never exhaust
//! the heap; established connections keep being served, and slots open
//! again as soon as memory is free.

use smoltcp::socket::tcp::ListenError;

use crate::flows::Admission;
use crate::sockets::SocketHandle;
use crate::stack::NetStack;

/// Counters of a listener.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListenerStats {
    pub accepted: u64,
    pub closed: u64,
    /// Times a connection could not be accepted because the cap was reached.
    pub at_cap: u64,
    /// Times arming a listening socket was refused by the memory budget.
    pub memory_limited: u64,
}

/// What memory is left and what a connection costs (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct MemoryBudget {
    /// Bytes the allocator can still hand out (including what it can grow by).
    pub headroom: fn() -> usize,
    /// Bytes one more connection takes: its socket buffers, its task and
    /// the stack's per-socket state.
    pub per_connection: usize,
    /// Bytes kept for everything else: frames in flight, timers, the shell.
    pub reserve: usize,
}

impl MemoryBudget {
    /// Whether one more connection fits.
    pub fn allows_another(&self) -> bool {
        (self.headroom)() >= self.reserve.saturating_add(self.per_connection)
    }
}

/// Half-open connections a port keeps before a new SYN evicts the oldest
/// (the SYN cache; see [`crate::flows`]). More than the frames that can wait
/// ahead of a real client's ACK (the card's 256 receive descriptors and the
/// stack's 256-frame queue), so a flood queued in front of that ACK cannot
/// push its handshake out (with 256, one real client in ~2 400 was reset
/// during a 10 000 SYN/s flood over tap). At ~10 KiB each (small buffers),
/// ~10 MiB at most; the cap and the memory budget bound them as well.
pub const HALF_OPEN_LIMIT: usize = 1024;

pub struct Listener {
    port: u16,
    backlog: usize,
    max_connections: usize,
    /// Handed out and not yet released.
    active: usize,
    budget: Option<MemoryBudget>,
    /// The last re-arm stopped short for lack of memory.
    memory_limited: bool,
    pub stats: ListenerStats,
}

impl Listener {
    pub fn new(
        stack: &mut NetStack,
        port: u16,
        backlog: usize,
        max_connections: usize,
    ) -> Result<Self, ListenError> {
        let mut listener = Listener {
            port,
            backlog: backlog.max(1),
            max_connections,
            active: 0,
            budget: None,
            memory_limited: false,
            stats: ListenerStats::default(),
        };
        if port == 0 {
            return Err(ListenError::Unaddressable);
        }
        listener.rearm(stack);
        Ok(listener)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bounds the connections by memory as well as by count.
    pub fn set_budget(&mut self, stack: &mut NetStack, budget: MemoryBudget) {
        self.budget = Some(budget);
        // Sockets armed before the budget count like any other: drop the
        // ones it would not have allowed.
        while stack.port_counts(self.port).free > 1 && !budget.allows_another() {
            stack.take_listen_slot(self.port);
        }
        self.rearm(stack);
    }

    /// Connections handed out and not yet released.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Tops up the free listening sockets to `backlog`, within the cap
    /// (connections accepted, waiting, closing or half-open all count) and
    /// the half-open limit, then tells the stack how to treat SYNs beyond.
    fn rearm(&mut self, stack: &mut NetStack) {
        let counts = stack.port_counts(self.port);
        let held = self.active + counts.completed + counts.closing + counts.half_open;
        let mut free = counts.free;
        let target = if counts.half_open >= HALF_OPEN_LIMIT {
            0
        } else {
            self.backlog.min(self.max_connections.saturating_sub(held))
        };
        self.memory_limited = false;
        while free < target {
            if self.budget.is_some_and(|budget| !budget.allows_another()) {
                self.memory_limited = true;
                self.stats.memory_limited += 1;
                break;
            }
            stack.add_listen_slots(self.port, 1);
            free += 1;
        }
        // Slots back from failed handshakes can outnumber the backlog.
        while free > self.backlog.max(target) && stack.take_listen_slot(self.port) {
            free -= 1;
        }
        let at_cap = held + free >= self.max_connections;
        let admission =
            Admission { at_cap, out_of_memory: self.memory_limited, half_open_limit: HALF_OPEN_LIMIT };
        stack.set_admission(self.port, admission);
    }

    /// The oldest connection whose handshake is over (or one that timed
    /// out, which its owner finds reset), if any.
    pub fn accept(&mut self, stack: &mut NetStack) -> Option<SocketHandle> {
        let handle = stack.accept(self.port);
        if handle.is_some() {
            self.active += 1;
            self.stats.accepted += 1;
            let counts = stack.port_counts(self.port);
            if self.active + counts.completed + counts.closing >= self.max_connections {
                self.stats.at_cap += 1;
            }
        }
        self.rearm(stack);
        handle
    }

    /// The owner is done with `handle`: it is closed (FIN) if still open and
    /// removed from the stack once the close completes.
    pub fn release(&mut self, stack: &mut NetStack, handle: SocketHandle) {
        stack.release(handle);
        self.active = self.active.saturating_sub(1);
        self.stats.closed += 1;
        self.rearm(stack);
    }

    /// Tries again to arm the sockets memory had not allowed (memory may
    /// have been freed since); called by the event loop each iteration.
    pub fn refresh(&mut self, stack: &mut NetStack) {
        if self.memory_limited {
            self.rearm(stack);
        }
    }
}
