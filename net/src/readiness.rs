//! Readiness in the spirit of epoll: register sockets with the events you
//! care about, then `wait` returns only the sockets that are ready — found
//! through smoltcp's per-socket wakers, so the cost is proportional to the
//! ready sockets, not to all registered ones.
//!
//! Semantics are level-triggered: a socket is reported while it is readable
//! (data or end of stream), writable (send-buffer room) or hung up; one
//! reported and still ready is reported again on the next `wait`.

use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::task::Waker;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use spin::Mutex;

use crate::stack::NetStack;

/// What a registration watches, and what an event reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    pub const BOTH: Interest = Interest { readable: true, writable: true };
}

/// A ready socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub token: usize,
    pub handle: SocketHandle,
    pub readable: bool,
    pub writable: bool,
    /// The connection is finished or reset (always reported).
    pub hang_up: bool,
}

struct TokenWaker {
    token: usize,
    woken: Arc<Mutex<BTreeSet<usize>>>,
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        self.woken.lock().insert(self.token);
    }
}

struct Registration {
    handle: SocketHandle,
    interest: Interest,
    waker: Waker,
}

/// The registry and the set of sockets whose wakers fired.
pub struct Poller {
    registrations: Vec<Option<Registration>>,
    woken: Arc<Mutex<BTreeSet<usize>>>,
    /// Reported last time and maybe still ready (level-triggered).
    carried: Vec<usize>,
    /// Sockets examined by the last `wait` (to show the cost is O(ready)).
    pub last_examined: usize,
}

impl Default for Poller {
    fn default() -> Self {
        Self::new()
    }
}

impl Poller {
    pub fn new() -> Self {
        Poller {
            registrations: Vec::new(),
            woken: Arc::new(Mutex::new(BTreeSet::new())),
            carried: Vec::new(),
            last_examined: 0,
        }
    }

    /// Watches `handle`; returns its token. The socket is examined on the
    /// first `wait`.
    pub fn register(&mut self, stack: &mut NetStack, handle: SocketHandle, interest: Interest) -> usize {
        let token = self.registrations.iter().position(Option::is_none).unwrap_or(self.registrations.len());
        let waker = Waker::from(Arc::new(TokenWaker { token, woken: self.woken.clone() }));
        let registration = Registration { handle, interest, waker };
        Self::arm(stack, &registration);
        if token == self.registrations.len() {
            self.registrations.push(Some(registration));
        } else {
            self.registrations[token] = Some(registration);
        }
        self.woken.lock().insert(token);
        token
    }

    /// Stops watching `token`.
    pub fn deregister(&mut self, token: usize) {
        if let Some(slot) = self.registrations.get_mut(token) {
            *slot = None;
        }
        self.woken.lock().remove(&token);
        self.carried.retain(|&carried| carried != token);
    }

    /// Registered sockets.
    pub fn len(&self) -> usize {
        self.registrations.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn arm(stack: &mut NetStack, registration: &Registration) {
        let socket = stack.tcp(registration.handle);
        if registration.interest.readable {
            socket.register_recv_waker(&registration.waker);
        }
        if registration.interest.writable {
            socket.register_send_waker(&registration.waker);
        }
    }

    /// The ready sockets, after the stack was polled. Examines only sockets
    /// whose wakers fired or that were ready last time.
    pub fn wait(&mut self, stack: &mut NetStack, events: &mut Vec<Event>) {
        events.clear();
        let mut candidates: BTreeSet<usize> = core::mem::take(&mut *self.woken.lock());
        candidates.extend(self.carried.drain(..));
        self.last_examined = candidates.len();
        for token in candidates {
            let Some(Some(registration)) = self.registrations.get(token) else { continue };
            let socket = stack.tcp(registration.handle);
            let state = socket.state();
            let hang_up =
                matches!(state, State::Closed | State::TimeWait | State::CloseWait | State::LastAck)
                    && !socket.can_recv();
            let peer_finished =
                !socket.may_recv() && !crate::tcp::handshaking(state) && state != State::Listen;
            let readable = registration.interest.readable && (socket.can_recv() || peer_finished);
            let writable = registration.interest.writable && socket.can_send();
            // Re-arm: smoltcp's wakers fire once.
            Self::arm(stack, registration);
            if readable || writable || hang_up {
                events.push(Event { token, handle: registration.handle, readable, writable, hang_up });
                self.carried.push(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::Listener;
    use crate::stack::TcpTuning;
    use crate::testing::Pair;

    #[test]
    fn wait_examines_only_ready_sockets_and_is_level_triggered() {
        let mut pair = Pair::new(TcpTuning::default());
        let mut listener = Listener::new(&mut pair.server.borrow_mut(), 7, 64, 200).unwrap();
        let clients: Vec<_> = (0..50).map(|i| pair.connect(7, 51_000 + i)).collect();
        let mut accepted = Vec::new();
        pair.run_until(5000, |pair| {
            while let Some(handle) = listener.accept(&mut pair.server.borrow_mut()) {
                accepted.push(handle);
            }
            accepted.len() == 50
                && accepted.iter().all(|&h| pair.server.borrow_mut().tcp(h).state() == State::Established)
        });
        assert_eq!(accepted.len(), 50);
        let mut poller = Poller::new();
        let mut events = Vec::new();
        {
            let mut stack = pair.server.borrow_mut();
            for &handle in &accepted {
                poller.register(&mut stack, handle, Interest::READABLE);
            }
            poller.wait(&mut stack, &mut events); // first wait examines all once
            poller.wait(&mut stack, &mut events);
        }
        assert!(events.is_empty(), "nothing is readable yet");
        assert_eq!(poller.last_examined, 0, "idle sockets cost nothing");
        // One client speaks.
        pair.client_socket(clients[17], |s| s.send_slice(b"ping").unwrap());
        pair.step();
        pair.step();
        let mut stack = pair.server.borrow_mut();
        poller.wait(&mut stack, &mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].handle, accepted[17]);
        assert!(events[0].readable);
        assert!(poller.last_examined <= 2, "examined {}", poller.last_examined);
        // Level-triggered: still readable until read.
        poller.wait(&mut stack, &mut events);
        assert_eq!(events.len(), 1);
        stack.tcp(accepted[17]).recv(|b| (b.len(), ())).unwrap();
        poller.wait(&mut stack, &mut events);
        assert!(events.is_empty());
    }
}
