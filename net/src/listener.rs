//! A listen backlog and a connection cap, which smoltcp lacks (a listening
//! socket becomes the connection, so one listening socket accepts one
//! connection at a time). The listener keeps up to `backlog` sockets
//! listening on the port and hands out those that left the listen state;
//! the number listening is also limited by the cap, so at `max_connections`
//! none is listening and smoltcp answers new SYNs with a reset — a clean
//! refusal — while established connections are served as before.
//!
//! Below the cap, a burst of SYNs larger than the listening sockets would
//! also be reset by smoltcp, where a real backlog makes the late ones wait.
//! The stack's demultiplexer restores that ([`crate::flows`]): the listener
//! tells it whether the port is at its cap or out of memory, and otherwise
//! SYNs beyond the free listening sockets are dropped, so the client
//! retransmits them a moment later (as when a Linux accept queue is full).
//!
//! Memory bounds connections too: with a [`MemoryBudget`], a socket is armed
//! (its buffers allocated) only while the allocator's headroom covers one
//! more connection above a reserve. Below that nothing listens and new SYNs
//! are refused with a reset, exactly as at the cap, so a connection flood
//! can never exhaust the heap; established connections keep being served,
//! and arming resumes as soon as memory is free again.

use alloc::vec::Vec;

use smoltcp::socket::tcp::{ListenError, State};

use crate::flows::Admission;
use crate::sockets::SocketHandle;
use crate::stack::NetStack;

/// How long a connection may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT_SECS: u64 = 10;

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

pub struct Listener {
    port: u16,
    backlog: usize,
    max_connections: usize,
    listening: Vec<SocketHandle>,
    /// Handed out and not yet released.
    active: usize,
    /// Released by their owners; removed once closed.
    closing: Vec<SocketHandle>,
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
            listening: Vec::new(),
            active: 0,
            closing: Vec::new(),
            budget: None,
            memory_limited: false,
            stats: ListenerStats::default(),
        };
        listener.rearm(stack)?;
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
        while self.listening.len() > 1 && !budget.allows_another() {
            if let Some(handle) = self.listening.pop() {
                stack.remove_socket(handle);
            }
        }
        let _ = self.rearm(stack);
    }

    /// Connections handed out and not yet released.
    pub fn active(&self) -> usize {
        self.active
    }

    pub fn listening(&self) -> &[SocketHandle] {
        &self.listening
    }

    /// Released sockets still closing (they hold a slot until closed).
    pub fn closing(&self) -> &[SocketHandle] {
        &self.closing
    }

    /// Tops up the listening sockets to `min(backlog, cap - active)`.
    fn rearm(&mut self, stack: &mut NetStack) -> Result<(), ListenError> {
        let allowed = self.backlog.min(self.max_connections.saturating_sub(self.active + self.closing.len()));
        self.memory_limited = false;
        while self.listening.len() < allowed {
            if self.budget.is_some_and(|budget| !budget.allows_another()) {
                self.memory_limited = true;
                self.stats.memory_limited += 1;
                break;
            }
            let handle = stack.new_tcp_socket();
            // A handshake that does not complete soon frees its slot (SYNs
            // from clients that never answer must not hold the cap for the
            // whole idle timeout); the stream restores the idle timeout once
            // established.
            stack.tcp(handle).set_timeout(Some(smoltcp::time::Duration::from_secs(HANDSHAKE_TIMEOUT_SECS)));
            if let Err(error) = stack.listen(handle, self.port) {
                stack.remove_socket(handle);
                self.publish_admission(stack);
                return Err(error);
            }
            self.listening.push(handle);
        }
        self.publish_admission(stack);
        Ok(())
    }

    /// A socket that left the listen state (a connection, possibly still
    /// completing its handshake), if any. Also reaps released sockets.
    pub fn accept(&mut self, stack: &mut NetStack) -> Option<SocketHandle> {
        self.reap(stack);
        let index =
            self.listening.iter().position(|&handle| stack.tcp_ref(handle).state() != State::Listen)?;
        let handle = self.listening.swap_remove(index);
        self.active += 1;
        self.stats.accepted += 1;
        if self.active + self.closing.len() >= self.max_connections {
            self.stats.at_cap += 1;
        }
        let _ = self.rearm(stack);
        Some(handle)
    }

    /// The owner is done with `handle`: it is closed (FIN) if still open and
    /// removed from the stack once the close completes.
    pub fn release(&mut self, stack: &mut NetStack, handle: SocketHandle) {
        stack.tcp(handle).close();
        self.active = self.active.saturating_sub(1);
        self.closing.push(handle);
        self.reap(stack);
    }

    /// Removes released sockets whose close has completed (TIME-WAIT counts
    /// as complete: the peer has everything) and re-arms.
    fn reap(&mut self, stack: &mut NetStack) {
        let before = self.closing.len();
        self.closing.retain(|&handle| {
            let done = matches!(stack.tcp_ref(handle).state(), State::Closed | State::TimeWait);
            if done {
                stack.remove_socket(handle);
            }
            !done
        });
        self.stats.closed += (before - self.closing.len()) as u64;
        let _ = self.rearm(stack);
    }
}

impl Listener {
    /// Tries again to arm the sockets memory had not allowed (memory may
    /// have been freed since); called by the event loop each iteration.
    pub fn refresh(&mut self, stack: &mut NetStack) {
        if self.memory_limited {
            let _ = self.rearm(stack);
        }
    }

    /// Tells the stack how to treat SYNs no listening socket is free for.
    fn publish_admission(&self, stack: &mut NetStack) {
        let at_cap = self.active + self.closing.len() >= self.max_connections;
        stack.set_admission(self.port, Admission { at_cap, out_of_memory: self.memory_limited });
    }
}
