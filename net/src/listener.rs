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
//! [`SynGate`] restores that: the driver asks it about each incoming frame
//! and drops the SYNs beyond the free listening sockets, so the client
//! retransmits them a moment later (as when a Linux accept queue is full).
//!
//! Memory bounds connections too: with a [`MemoryBudget`], a socket is armed
//! (its buffers allocated) only while the allocator's headroom covers one
//! more connection above a reserve. Below that nothing listens and new SYNs
//! are refused with a reset, exactly as at the cap, so a connection flood
//! can never exhaust the heap; established connections keep being served,
//! and arming resumes as soon as memory is free again.

use alloc::vec::Vec;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{ListenError, State};

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
            if let Err(error) = stack.tcp(handle).listen(self.port) {
                stack.remove_socket(handle);
                return Err(error);
            }
            self.listening.push(handle);
        }
        Ok(())
    }

    /// A socket that left the listen state (a connection, possibly still
    /// completing its handshake), if any. Also reaps released sockets.
    pub fn accept(&mut self, stack: &mut NetStack) -> Option<SocketHandle> {
        self.reap(stack);
        let index = self.listening.iter().position(|&handle| stack.tcp(handle).state() != State::Listen)?;
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
            let done = matches!(stack.tcp(handle).state(), State::Closed | State::TimeWait);
            if done {
                stack.remove_socket(handle);
            }
            !done
        });
        self.stats.closed += (before - self.closing.len()) as u64;
        let _ = self.rearm(stack);
    }
}

/// Decides, frame by frame, which new connections a batch of incoming frames
/// may start (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct SynGate {
    port: u16,
    /// Listening sockets free for this batch.
    free: usize,
    /// At the cap every SYN is let through, to be refused with a reset.
    at_cap: bool,
    /// Out of memory with nothing listening: refused like at the cap.
    out_of_memory: bool,
    pub deferred: u64,
    /// SYNs let through at the cap: each is answered with a reset.
    pub refused: u64,
    /// SYNs refused because memory could not hold another connection.
    pub refused_for_memory: u64,
}

impl SynGate {
    /// Whether to hand `frame` to the stack.
    pub fn admit(&mut self, frame: &[u8]) -> bool {
        use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};
        let Ok(ethernet) = EthernetFrame::new_checked(frame) else { return true };
        if ethernet.ethertype() != EthernetProtocol::Ipv4 {
            return true;
        }
        let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else { return true };
        if ip.next_header() != IpProtocol::Tcp {
            return true;
        }
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else { return true };
        if !tcp.syn() || tcp.ack() || tcp.dst_port() != self.port {
            return true;
        }
        if self.at_cap {
            self.refused += 1;
            return true;
        }
        if self.free == 0 && self.out_of_memory {
            self.refused_for_memory += 1;
            return true;
        }
        if self.free > 0 {
            self.free -= 1;
            true
        } else {
            self.deferred += 1;
            false
        }
    }
}

impl Listener {
    /// A gate for the next batch of incoming frames. Tries first to arm the
    /// sockets memory had not allowed (memory may have been freed since).
    pub fn syn_gate(&mut self, stack: &mut NetStack) -> SynGate {
        if self.memory_limited {
            let _ = self.rearm(stack);
        }
        SynGate {
            port: self.port,
            free: self.listening.len(),
            at_cap: self.active + self.closing.len() >= self.max_connections,
            out_of_memory: self.memory_limited,
            deferred: 0,
            refused: 0,
            refused_for_memory: 0,
        }
    }
}
