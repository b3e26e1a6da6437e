//! Readiness in the spirit of epoll, over one registry per stack: every TCP
//! socket is entered when the stack creates it and leaves when the stack
//! removes it, and the registry alone owns the socket's smoltcp wakers
//! (registering another waker would silently replace it). After each stack
//! poll, only the sockets whose wakers fired are examined, so the cost is
//! proportional to the ready sockets, not to all of them. Two forms:
//!
//! - **Task wake-up**, which the async [`crate::tcp`] types sit on: a task
//!   that found its socket not ready leaves its waker with
//!   [`Poller::wait_readable`] / [`Poller::wait_writable`], and is woken when
//!   that direction becomes ready or the socket changes state (e.g. a
//!   listening socket now holds a connection). Edge-triggered: a task always
//!   tries its socket before waiting, so nothing is carried.
//! - **Watch and wait**, the epoll form ([`crate::stack::NetStack::watch`],
//!   [`crate::stack::NetStack::wait`]): watched sockets with their interests
//!   are reported as [`Event`]s. Level-triggered: a socket is reported while
//!   it is readable (data or end of stream), writable (send-buffer room) or
//!   hung up; one reported and still ready is reported again on the next
//!   `wait`. Sockets are named by handle, as epoll names them by fd; a
//!   removed socket's watch ends with it.

use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::task::Waker;

use smoltcp::socket::tcp::{self, State};
use spin::Mutex;

use crate::sockets::{Entry, SocketHandle, SocketTable};

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
    pub handle: SocketHandle,
    pub readable: bool,
    pub writable: bool,
    /// The connection is finished or reset (always reported).
    pub hang_up: bool,
}

/// Why a watch was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchError {
    /// The handle names no TCP socket of this stack (as epoll's `EBADF`).
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

/// One TCP socket; both of its smoltcp wakers are always armed.
struct Registration {
    handle: SocketHandle,
    /// Left with smoltcp; marks the token woken.
    socket_waker: Waker,
    /// The state when last examined: a change wakes both waiters.
    last_state: State,
    /// Tasks waiting for the socket (wake-up form).
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// What the watch-and-wait form reports for this socket, if watched.
    watch: Option<Interest>,
    /// Queued in `Poller::reportable` already.
    reportable: bool,
}

/// What a socket is ready for.
#[derive(Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    hang_up: bool,
}

/// The registry of one stack's TCP sockets and the set of those whose
/// wakers fired, indexed like the socket table (a socket's token is its
/// slot). Owned by [`crate::stack::NetStack`].
pub struct Poller {
    registrations: Vec<Option<Registration>>,
    woken: Arc<Mutex<WokenTokens>>,
    /// The tokens being examined (kept for its capacity).
    candidates: Vec<usize>,
    /// Watched sockets that were ready at an examination or last `wait`,
    /// for the next `wait` to report (level-triggered).
    reportable: Vec<usize>,
    /// Sockets examined by the last `dispatch` (the cost is O(ready)).
    pub last_examined: usize,
    /// Tasks woken by `dispatch`, in total.
    pub tasks_woken: u64,
}

impl Poller {
    pub(crate) fn new() -> Self {
        Poller {
            registrations: Vec::new(),
            woken: Arc::new(Mutex::new(WokenTokens::default())),
            candidates: Vec::new(),
            reportable: Vec::new(),
            last_examined: 0,
            tasks_woken: 0,
        }
    }

    /// Enters the new TCP socket `handle`, held by `entry` (both directions).
    pub(crate) fn register(&mut self, handle: SocketHandle, entry: &mut Entry) {
        let token = handle.index();
        let socket_waker = Waker::from(Arc::new(TokenWaker { token, woken: self.woken.clone() }));
        let socket = entry.tcp();
        let registration = Registration {
            handle,
            socket_waker,
            last_state: socket.state(),
            reader: None,
            writer: None,
            watch: None,
            reportable: false,
        };
        socket.register_recv_waker(&registration.socket_waker);
        socket.register_send_waker(&registration.socket_waker);
        if token >= self.registrations.len() {
            self.registrations.resize_with(token + 1, || None);
        }
        debug_assert!(self.registrations[token].is_none(), "a slot's socket is registered once");
        self.registrations[token] = Some(registration);
    }

    /// Removes `handle`'s registration (the socket is being removed); its
    /// waiting tasks are woken to find it gone.
    pub(crate) fn deregister(&mut self, handle: SocketHandle) {
        let Some((token, _)) = self.registration_mut(handle) else { return };
        let Some(registration) = self.registrations[token].take() else { return };
        self.woken.lock().remove(token);
        if registration.reportable {
            self.reportable.retain(|&queued| queued != token);
        }
        registration.reader.into_iter().chain(registration.writer).for_each(Waker::wake);
    }

    /// Reports `handle` to `wait` with `interest` from now on (a second
    /// watch changes the interest); its present readiness is reported too.
    pub(crate) fn watch(&mut self, handle: SocketHandle, interest: Interest) -> Result<(), WatchError> {
        let (token, registration) = self.registration_mut(handle).ok_or(WatchError::NoSuchSocket)?;
        registration.watch = Some(interest);
        if !core::mem::replace(&mut registration.reportable, true) {
            self.reportable.push(token);
        }
        Ok(())
    }

    /// Stops reporting `handle` to `wait`; unknown handles are ignored.
    pub(crate) fn unwatch(&mut self, handle: SocketHandle) {
        if let Some((_, registration)) = self.registration_mut(handle) {
            registration.watch = None;
        }
    }

    /// Wakes `waker` once `handle` is readable, hung up or changes state.
    /// Returns `false` (and keeps nothing) if `handle` is not registered.
    pub fn wait_readable(&mut self, handle: SocketHandle, waker: &Waker) -> bool {
        self.registration_mut(handle)
            .map(|(_, registration)| set_waker(&mut registration.reader, waker))
            .is_some()
    }

    /// Wakes `waker` once `handle` is writable, hung up or changes state.
    pub fn wait_writable(&mut self, handle: SocketHandle, waker: &Waker) -> bool {
        self.registration_mut(handle)
            .map(|(_, registration)| set_waker(&mut registration.writer, waker))
            .is_some()
    }

    /// `handle`'s token and registration, if it is registered.
    fn registration_mut(&mut self, handle: SocketHandle) -> Option<(usize, &mut Registration)> {
        let token = handle.index();
        let registration = self.registrations.get_mut(token)?.as_mut()?;
        (registration.handle == handle).then_some((token, registration))
    }

    /// What `socket` is ready for, as `interest` sees it.
    fn readiness(socket: &tcp::Socket<'static>, interest: Interest) -> Readiness {
        let state = socket.state();
        let hang_up = matches!(state, State::Closed | State::TimeWait | State::CloseWait | State::LastAck)
            && !socket.can_recv();
        let peer_finished = !socket.may_recv() && !crate::tcp::handshaking(state) && state != State::Listen;
        Readiness {
            readable: interest.readable && (socket.can_recv() || peer_finished),
            writable: interest.writable && socket.can_send(),
            hang_up,
        }
    }

    /// Examines one socket whose waker fired and re-arms its wakers
    /// (smoltcp's fire once): its readiness, and whether its state changed
    /// since the last examination.
    fn examine(socket: &mut tcp::Socket<'static>, registration: &mut Registration) -> (Readiness, bool) {
        let state = socket.state();
        let state_changed = state != registration.last_state;
        registration.last_state = state;
        socket.register_recv_waker(&registration.socket_waker);
        socket.register_send_waker(&registration.socket_waker);
        (Self::readiness(socket, Interest::BOTH), state_changed)
    }

    /// The watched sockets that are ready, after the stack was polled (the
    /// epoll form, level-triggered). Looks only at sockets reported ready
    /// by the stack's examinations or by the previous `wait`.
    pub(crate) fn wait(&mut self, sockets: &SocketTable, events: &mut Vec<Event>) {
        events.clear();
        let queued = core::mem::take(&mut self.reportable);
        for &token in &queued {
            let Some(Some(registration)) = self.registrations.get_mut(token) else { continue };
            registration.reportable = false;
            let Some(interest) = registration.watch else { continue };
            let Some(entry) = sockets.get(registration.handle) else { continue };
            let ready = Self::readiness(entry.tcp_ref(), interest);
            if ready.readable || ready.writable || ready.hang_up {
                let (readable, writable, hang_up) = (ready.readable, ready.writable, ready.hang_up);
                events.push(Event { handle: registration.handle, readable, writable, hang_up });
                registration.reportable = true;
                self.reportable.push(token);
            }
        }
    }

    /// Examines the sockets whose smoltcp wakers fired: wakes the tasks
    /// waiting on a direction that became ready, and queues watched ready
    /// sockets for `wait`. Returns how many tasks it woke. `sockets` must be
    /// the table every registration was made in.
    pub(crate) fn dispatch(&mut self, sockets: &mut SocketTable) -> usize {
        let mut candidates = core::mem::take(&mut self.candidates);
        self.woken.lock().drain_into(&mut candidates);
        self.last_examined = candidates.len();
        let mut woken = 0;
        for &token in &candidates {
            let Some(Some(registration)) = self.registrations.get_mut(token) else { continue };
            let Some(entry) = sockets.get_mut(registration.handle) else { continue };
            let (ready, state_changed) = Self::examine(entry.tcp(), registration);
            if let Some(interest) = registration.watch
                && !registration.reportable
                && ((interest.readable && ready.readable)
                    || (interest.writable && ready.writable)
                    || ready.hang_up)
            {
                registration.reportable = true;
                self.reportable.push(token);
            }
            let any = ready.hang_up || state_changed;
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
pub(crate) fn set_waker(slot: &mut Option<Waker>, waker: &Waker) {
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
    fn wait_reports_only_ready_sockets_and_is_level_triggered() {
        let mut pair = Pair::new(TcpTuning::default());
        let mut listener = Listener::new(&mut pair.server.borrow_mut(), 7, 64, 200).unwrap();
        let clients: Vec<_> = (0..50).map(|i| pair.connect(7, 51_000 + i)).collect();
        let mut accepted = Vec::new();
        let established = pair.run_until(5000, |pair| {
            while let Some(handle) = listener.accept(&mut pair.server.borrow_mut()) {
                accepted.push(handle);
            }
            accepted.len() == 50
                && accepted.iter().all(|&h| pair.server.borrow_mut().tcp(h).state() == State::Established)
        });
        assert!(established, "accepted {} of 50, not all established", accepted.len());
        let mut events = Vec::new();
        {
            let mut stack = pair.server.borrow_mut();
            for &handle in &accepted {
                stack.watch(handle, Interest::READABLE).unwrap();
            }
            stack.wait(&mut events); // the watch checks each once
            assert!(events.is_empty(), "nothing is readable yet");
            stack.wait(&mut events);
            assert!(events.is_empty());
        }
        pair.step();
        assert_eq!(pair.server.borrow().readiness_stats().0, 0, "idle sockets cost nothing");
        // One client speaks.
        pair.client_socket(clients[17], |s| s.send_slice(b"ping").unwrap());
        pair.step();
        pair.step();
        let mut stack = pair.server.borrow_mut();
        let speaker = *accepted
            .iter()
            .find(|&&h| stack.tcp_ref(h).remote_endpoint().is_some_and(|end| end.port == 51_017))
            .expect("client 17's connection");
        stack.wait(&mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].handle, speaker);
        assert!(events[0].readable);
        // Level-triggered: still readable until read.
        stack.wait(&mut events);
        assert_eq!(events.len(), 1);
        stack.tcp(speaker).recv(|b| (b.len(), ())).unwrap();
        stack.wait(&mut events);
        assert!(events.is_empty());
    }

    #[test]
    fn a_removed_socket_ends_its_watch_and_its_reused_handle_is_not_watched() {
        let pair = Pair::new(TcpTuning::default());
        let mut events = Vec::new();
        let mut stack = pair.server.borrow_mut();
        let first = stack.new_tcp_socket();
        stack.watch(first, Interest::BOTH).unwrap();
        stack.remove_socket(first);
        stack.wait(&mut events);
        assert!(events.is_empty());
        assert_eq!(stack.watch(first, Interest::BOTH), Err(WatchError::NoSuchSocket));
        stack.unwatch(first); // ignored
        // The slot is reused under another generation: the old handle does
        // not name the new socket, and nobody watches it.
        let second = stack.new_tcp_socket();
        assert_eq!(second.index(), first.index());
        assert_ne!(second, first);
        assert_eq!(stack.watch(first, Interest::BOTH), Err(WatchError::NoSuchSocket));
        stack.tcp(second).listen(7).unwrap();
        stack.wait(&mut events);
        assert!(events.is_empty(), "{events:?}");
    }
}
