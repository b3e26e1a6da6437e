//! Readiness in the spirit of epoll: register sockets with the events you
//! care about, then learn which are ready — found through smoltcp's
//! per-socket wakers, so the cost is proportional to the ready sockets, not
//! to all registered ones.
//!
//! A [`Poller`] is used in one of two ways:
//!
//! - **`wait`**, the epoll form: returns the ready sockets as [`Event`]s.
//!   Level-triggered: a socket is reported while it is readable (data or end
//!   of stream), writable (send-buffer room) or hung up; one reported and
//!   still ready is reported again on the next `wait`.
//! - **`dispatch`**, the reactor form the async [`crate::tcp`] types sit on:
//!   a task that found its socket not ready leaves its waker with
//!   [`Poller::wait_readable`] / [`Poller::wait_writable`]; after each stack
//!   poll, `dispatch` examines the sockets whose wakers fired and wakes the
//!   tasks waiting on a direction that became ready (or on any state change,
//!   e.g. a listening socket that now holds a connection). Edge-triggered:
//!   a task always tries its socket before waiting, so nothing is carried.
//!
//! The poller owns the socket's smoltcp wakers: nothing else may register
//! wakers on a socket it watches.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::task::Waker;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
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

/// Why a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The socket is registered already (as epoll's `EEXIST`).
    AlreadyRegistered,
    /// The handle names no TCP socket of this stack.
    NoSuchSocket,
}

/// The tokens whose smoltcp wakers fired, each once, in firing order. Kept
/// allocation-free on the hot path (the vectors keep their capacity): the
/// heap allocator walks a free list, which grows with fragmentation.
#[derive(Default)]
struct WokenTokens {
    order: Vec<usize>,
    queued: Vec<bool>,
}

impl WokenTokens {
    fn insert(&mut self, token: usize) {
        if token >= self.queued.len() {
            self.queued.resize(token + 1, false);
        }
        if !core::mem::replace(&mut self.queued[token], true) {
            self.order.push(token);
        }
    }

    fn remove(&mut self, token: usize) {
        if let Some(queued) = self.queued.get_mut(token)
            && core::mem::replace(queued, false)
        {
            self.order.retain(|&other| other != token);
        }
    }

    /// Moves the queued tokens into `into` (cleared first).
    fn drain_into(&mut self, into: &mut Vec<usize>) {
        into.clear();
        core::mem::swap(into, &mut self.order);
        for &token in into.iter() {
            self.queued[token] = false;
        }
    }
}

struct TokenWaker {
    token: usize,
    woken: Arc<Mutex<WokenTokens>>,
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.lock().insert(self.token);
    }
}

struct Registration {
    handle: SocketHandle,
    interest: Interest,
    /// Left with smoltcp; marks the token woken.
    socket_waker: Waker,
    /// The state when last examined: a change wakes both waiters.
    last_state: State,
    /// Tasks waiting for the socket (dispatch form).
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// What one examination found.
#[derive(Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    hang_up: bool,
    state_changed: bool,
}

/// The registry and the set of sockets whose wakers fired.
pub struct Poller {
    registrations: Vec<Option<Registration>>,
    free_tokens: Vec<usize>,
    tokens: BTreeMap<SocketHandle, usize>,
    woken: Arc<Mutex<WokenTokens>>,
    /// The tokens being examined (kept for its capacity).
    candidates: Vec<usize>,
    /// Reported last time and maybe still ready (level-triggered `wait`).
    carried: Vec<usize>,
    /// Sockets examined by the last `wait` or `dispatch` (the cost is O(ready)).
    pub last_examined: usize,
    /// Tasks woken by `dispatch`, in total.
    pub tasks_woken: u64,
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
            free_tokens: Vec::new(),
            tokens: BTreeMap::new(),
            woken: Arc::new(Mutex::new(WokenTokens::default())),
            candidates: Vec::new(),
            carried: Vec::new(),
            last_examined: 0,
            tasks_woken: 0,
        }
    }

    /// Watches `handle` of `stack`; returns its token. The socket is
    /// examined on the next `wait`.
    pub fn register(
        &mut self,
        stack: &mut NetStack,
        handle: SocketHandle,
        interest: Interest,
    ) -> Result<usize, RegisterError> {
        if !stack.has_tcp(handle) {
            return Err(RegisterError::NoSuchSocket);
        }
        self.register_in(stack.sockets_mut(), handle, interest)
    }

    /// [`Poller::register`] over the socket set itself (for the stack's own
    /// registry). `handle` must name a TCP socket of `sockets`.
    pub(crate) fn register_in(
        &mut self,
        sockets: &mut SocketSet<'static>,
        handle: SocketHandle,
        interest: Interest,
    ) -> Result<usize, RegisterError> {
        if self.tokens.contains_key(&handle) {
            return Err(RegisterError::AlreadyRegistered);
        }
        let token = self.free_tokens.pop().unwrap_or(self.registrations.len());
        let socket_waker = Waker::from(Arc::new(TokenWaker { token, woken: self.woken.clone() }));
        let socket = sockets.get_mut::<tcp::Socket>(handle);
        let registration = Registration {
            handle,
            interest,
            socket_waker,
            last_state: socket.state(),
            reader: None,
            writer: None,
        };
        Self::arm(socket, &registration);
        if token == self.registrations.len() {
            self.registrations.push(Some(registration));
        } else {
            self.registrations[token] = Some(registration);
        }
        self.tokens.insert(handle, token);
        self.woken.lock().insert(token);
        Ok(token)
    }

    /// Stops watching `token`; unknown tokens are ignored.
    pub fn deregister(&mut self, token: usize) {
        let Some(registration) = self.registrations.get_mut(token).and_then(Option::take) else { return };
        self.tokens.remove(&registration.handle);
        self.free_tokens.push(token);
        self.woken.lock().remove(token);
        self.carried.retain(|&carried| carried != token);
        // Whoever waited learns of it by finding the socket gone.
        registration.reader.into_iter().chain(registration.writer).for_each(Waker::wake);
    }

    /// Stops watching `handle`, if watched.
    pub fn deregister_handle(&mut self, handle: SocketHandle) {
        if let Some(&token) = self.tokens.get(&handle) {
            self.deregister(token);
        }
    }

    /// Whether `handle` is watched.
    pub fn is_registered(&self, handle: SocketHandle) -> bool {
        self.tokens.contains_key(&handle)
    }

    /// Registered sockets.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Wakes `waker` once `handle` is readable, hung up or changes state.
    /// Returns `false` (and keeps nothing) if `handle` is not registered.
    pub fn wait_readable(&mut self, handle: SocketHandle, waker: &Waker) -> bool {
        self.with_registration(handle, |registration| set_waker(&mut registration.reader, waker))
    }

    /// Wakes `waker` once `handle` is writable, hung up or changes state.
    pub fn wait_writable(&mut self, handle: SocketHandle, waker: &Waker) -> bool {
        self.with_registration(handle, |registration| set_waker(&mut registration.writer, waker))
    }

    fn with_registration(&mut self, handle: SocketHandle, f: impl FnOnce(&mut Registration)) -> bool {
        let Some(&token) = self.tokens.get(&handle) else { return false };
        match self.registrations.get_mut(token) {
            Some(Some(registration)) => {
                f(registration);
                true
            }
            _ => false,
        }
    }

    fn arm(socket: &mut tcp::Socket<'static>, registration: &Registration) {
        if registration.interest.readable {
            socket.register_recv_waker(&registration.socket_waker);
        }
        if registration.interest.writable {
            socket.register_send_waker(&registration.socket_waker);
        }
    }

    /// Examines one socket and re-arms its wakers (smoltcp's fire once).
    fn examine(socket: &mut tcp::Socket<'static>, registration: &mut Registration) -> Readiness {
        let state = socket.state();
        let hang_up = matches!(state, State::Closed | State::TimeWait | State::CloseWait | State::LastAck)
            && !socket.can_recv();
        let peer_finished = !socket.may_recv() && !crate::tcp::handshaking(state) && state != State::Listen;
        let readiness = Readiness {
            readable: registration.interest.readable && (socket.can_recv() || peer_finished),
            writable: registration.interest.writable && socket.can_send(),
            hang_up,
            state_changed: state != registration.last_state,
        };
        registration.last_state = state;
        Self::arm(socket, registration);
        readiness
    }

    /// The ready sockets, after the stack was polled (the epoll form).
    /// Examines only sockets whose wakers fired or that were ready last
    /// time; a registration whose socket is gone is dropped.
    pub fn wait(&mut self, stack: &mut NetStack, events: &mut Vec<Event>) {
        events.clear();
        let mut candidates = core::mem::take(&mut self.candidates);
        {
            let mut woken = self.woken.lock();
            for token in self.carried.drain(..) {
                woken.insert(token);
            }
            woken.drain_into(&mut candidates);
        }
        self.last_examined = candidates.len();
        for &token in &candidates {
            let Some(Some(registration)) = self.registrations.get_mut(token) else { continue };
            let handle = registration.handle;
            let Some(socket) = stack.try_tcp(handle) else {
                self.deregister(token);
                continue;
            };
            let ready = Self::examine(socket, registration);
            if ready.readable || ready.writable || ready.hang_up {
                let (readable, writable, hang_up) = (ready.readable, ready.writable, ready.hang_up);
                events.push(Event { token, handle, readable, writable, hang_up });
                self.carried.push(token);
            }
        }
        self.candidates = candidates;
    }

    /// Wakes the tasks whose sockets became ready (the reactor form); returns
    /// how many. Only sockets whose smoltcp wakers fired are examined.
    /// `sockets` must be the set every registration was made in.
    pub(crate) fn dispatch(&mut self, sockets: &mut SocketSet<'static>) -> usize {
        let mut candidates = core::mem::take(&mut self.candidates);
        self.woken.lock().drain_into(&mut candidates);
        self.last_examined = candidates.len();
        let mut woken = 0;
        for &token in &candidates {
            let Some(Some(registration)) = self.registrations.get_mut(token) else { continue };
            let socket = sockets.get_mut::<tcp::Socket>(registration.handle);
            let ready = Self::examine(socket, registration);
            let any = ready.hang_up || ready.state_changed;
            if ready.readable || any {
                woken += registration.reader.take().map(Waker::wake).is_some() as usize;
            }
            if ready.writable || any {
                woken += registration.writer.take().map(Waker::wake).is_some() as usize;
            }
        }
        self.candidates = candidates;
        self.tasks_woken += woken as u64;
        woken
    }
}

/// Keeps `waker` in `slot`, cloning only if it would wake another task.
fn set_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(current) if current.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
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
                poller.register(&mut stack, handle, Interest::READABLE).unwrap();
            }
            assert_eq!(
                poller.register(&mut stack, accepted[0], Interest::READABLE),
                Err(RegisterError::AlreadyRegistered)
            );
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

    #[test]
    fn a_socket_removed_behind_the_pollers_back_is_dropped_not_a_panic() {
        let mut pair = Pair::new(TcpTuning::default());
        let handle = pair.connect(7, 50_000);
        let mut poller = Poller::new();
        let mut events = Vec::new();
        let mut stack = pair.server.borrow_mut();
        let server_socket = stack.new_tcp_socket();
        let token = poller.register(&mut stack, server_socket, Interest::BOTH).unwrap();
        stack.remove_socket(server_socket);
        poller.wait(&mut stack, &mut events);
        assert!(events.is_empty());
        assert!(poller.is_empty(), "the stale registration is gone");
        poller.deregister(token); // twice: ignored
        poller.deregister(9999);
        // A handle naming no socket of this stack (here: the client's) is refused.
        assert_eq!(poller.register(&mut stack, handle, Interest::BOTH), Err(RegisterError::NoSuchSocket));
        assert!(!poller.wait_readable(server_socket, Waker::noop()));
    }
}
