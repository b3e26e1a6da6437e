//! A listen backlog and a connection cap, which smoltcp lacks (a listening
//! socket becomes the connection, so one listening socket accepts one
//! connection at a time). The listener keeps up to `backlog` sockets
//! listening on the port and hands out those that left the listen state;
//! the number listening is also limited by the cap, so at `max_connections`
//! none is listening and smoltcp answers new SYNs with a reset — a clean
//! refusal — while established connections are served as before.

use alloc::vec::Vec;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{ListenError, State};

use crate::stack::NetStack;

/// Counters of a listener.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListenerStats {
    pub accepted: u64,
    pub closed: u64,
    /// Times a connection could not be accepted because the cap was reached.
    pub at_cap: u64,
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
            stats: ListenerStats::default(),
        };
        listener.rearm(stack)?;
        Ok(listener)
    }

    pub fn port(&self) -> u16 {
        self.port
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
        while self.listening.len() < allowed {
            let handle = stack.new_tcp_socket();
            if let Err(error) = stack.tcp(handle).listen(self.port) {
                stack.sockets.remove(handle);
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
                stack.sockets.remove(handle);
            }
            !done
        });
        self.stats.closed += (before - self.closing.len()) as u64;
        let _ = self.rearm(stack);
    }
}
