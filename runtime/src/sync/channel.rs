//! CSP channels: bounded, multi-producer multi-consumer, FIFO; capacity 0 is a
//! rendezvous. Owns [`channel`], [`Sender`], [`Receiver`] and their errors.
//!
//! Values live in one `VecDeque` of slots numbered in send order. A blocking
//! send on a rendezvous channel *offers* its value: the slot names the sender,
//! the receiver that takes it wakes exactly that sender, and a sender that
//! gives up (timeout, no receivers left) withdraws its slot by number if it is
//! still there; if it is not, a receiver has it and the send succeeded.
//! Either way each value ends up in exactly one place.
//!
//! Every blocking send and receive, with or without a timeout, runs the same
//! wait loop (`block_until`): try, else stay registered in a wait queue and
//! park until woken or the deadline, then try again.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::fmt;
use core::ops::ControlFlow;
use core::time::Duration;

use super::platform::{deadline_after, deadline_passed, with_lock};
use super::{Platform, WaitQueue, WaiterId, Wakeups};

/// Creates a channel holding at most `capacity` values; `(sender, receiver)`.
///
/// Capacity 0 makes a rendezvous channel (Go's unbuffered channel): a blocking
/// [`send`](Sender::send) returns only once a receiver has taken the value.
pub fn channel<P: Platform, T>(capacity: usize) -> (Sender<P, T>, Receiver<P, T>) {
    let state = State {
        capacity,
        items: VecDeque::new(),
        next_seq: 0,
        senders: 1,
        receivers: 1,
        closed: false,
        send_waiters: WaitQueue::new(),
        offer_waiters: WaitQueue::new(),
        recv_waiters: WaitQueue::new(),
    };
    let shared = Arc::new(Shared { capacity, state: spin::Mutex::new(state) });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

struct Shared<P: Platform, T> {
    /// Immutable copy of `state.capacity`, readable without the lock.
    capacity: usize,
    state: spin::Mutex<State<P, T>>,
}

impl<P: Platform, T> Shared<P, T> {
    fn lock<R>(&self, f: impl FnOnce(&mut State<P, T>, &mut Wakeups<P>) -> R) -> R {
        with_lock::<P, _, _>(&self.state, f)
    }
}

/// One value in the channel.
struct Slot<T> {
    /// Send order; strictly increasing along `items`.
    seq: u64,
    /// The blocked rendezvous sender waiting for this value to be taken.
    offerer: Option<WaiterId>,
    value: T,
}

struct State<P: Platform, T> {
    capacity: usize,
    /// Buffered values; on a rendezvous channel, values offered by blocked
    /// senders or handed to waiting receivers.
    items: VecDeque<Slot<T>>,
    next_seq: u64,
    senders: usize,
    receivers: usize,
    closed: bool,
    /// Senders waiting for room (buffered) or for an unmatched waiting
    /// receiver (rendezvous `select` send arms).
    send_waiters: WaitQueue<P>,
    /// Rendezvous senders waiting for their offered value to be taken.
    offer_waiters: WaitQueue<P>,
    /// Receivers (and `select` receive arms) waiting for a value.
    recv_waiters: WaitQueue<P>,
}

impl<P: Platform, T> State<P, T> {
    /// No value can be sent any more.
    fn send_disconnected(&self) -> bool {
        self.closed || self.receivers == 0
    }

    /// No new value can arrive any more (buffered ones may remain).
    fn recv_disconnected(&self) -> bool {
        self.closed || self.senders == 0
    }

    /// How many values can be committed without waiting: free buffer slots,
    /// or on a rendezvous channel waiting receivers not yet matched with a
    /// value.
    fn room(&self) -> usize {
        let limit = if self.capacity == 0 { self.recv_waiters.len() } else { self.capacity };
        limit.saturating_sub(self.items.len())
    }

    fn push(&mut self, value: T, offerer: Option<WaiterId>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.items.push_back(Slot { seq, offerer, value });
        seq
    }

    fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        if self.send_disconnected() {
            Err(TrySendError::Disconnected(value))
        } else if self.room() > 0 {
            self.push(value, None);
            Ok(())
        } else {
            Err(TrySendError::Full(value))
        }
    }

    fn try_recv(&mut self, wakeups: &mut Wakeups<P>) -> Result<T, TryRecvError> {
        match self.items.pop_front() {
            Some(slot) => {
                if let Some(offerer) = slot.offerer {
                    self.offer_waiters.wake(offerer, wakeups);
                }
                Ok(slot.value)
            }
            None if self.recv_disconnected() => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Takes back the value numbered `seq`; `None` if a receiver took it.
    fn withdraw(&mut self, seq: u64) -> Option<T> {
        let index = self.items.binary_search_by_key(&seq, |slot| slot.seq).ok()?;
        self.items.remove(index).map(|slot| slot.value)
    }

    fn holds(&self, seq: u64) -> bool {
        self.items.binary_search_by_key(&seq, |slot| slot.seq).is_ok()
    }

    /// Restores the wait-queue invariant (see [`WaitQueue`]): as many
    /// receivers notified as there are values, as many senders as there is
    /// room; everyone once disconnected. Called at the end of every critical
    /// section that changed the state or a registration.
    fn notify_ready(&mut self, wakeups: &mut Wakeups<P>) {
        if self.recv_disconnected() {
            self.recv_waiters.wake_all(wakeups);
        } else {
            while self.recv_waiters.notified() < self.items.len() && self.recv_waiters.wake_one(wakeups) {}
        }
        if self.send_disconnected() {
            self.send_waiters.wake_all(wakeups);
        } else {
            while self.send_waiters.notified() < self.room() && self.send_waiters.wake_one(wakeups) {}
        }
    }
}

/// Registers the calling thread in `queue`, or re-arms its registration.
fn wait_in<P: Platform>(queue: &mut WaitQueue<P>, registration: &mut Option<WaiterId>) {
    match *registration {
        Some(id) => queue.rearm(id),
        None => *registration = Some(queue.register(P::current())),
    }
}

/// Removes a registration, if any (the caller re-establishes the invariant).
fn leave<P: Platform>(queue: &mut WaitQueue<P>, registration: &mut Option<WaiterId>) {
    if let Some(id) = registration.take() {
        queue.remove(id);
    }
}

/// The wait loop of every blocking send and receive. `attempt` is told
/// whether the caller may still wait (the deadline has not passed) and either
/// finishes with the outcome (`Break`), or leaves the caller registered to be
/// woken and hands back what it holds (`Continue`); then the caller parks
/// until woken or the deadline, and attempts again. Giving up on timeout is
/// `attempt`'s to do: it may need the lock for that (to withdraw an offer).
fn block_until<P: Platform, H, R>(
    deadline: Option<u64>,
    mut held: H,
    mut attempt: impl FnMut(H, bool) -> ControlFlow<R, H>,
) -> R {
    loop {
        match attempt(held, !deadline_passed::<P>(deadline)) {
            ControlFlow::Break(outcome) => return outcome,
            ControlFlow::Continue(still_held) => held = still_held,
        }
        P::park(deadline);
    }
}

/// How far a blocking rendezvous send got.
enum Offer<T> {
    /// Not offered yet.
    Unmade(T),
    /// In the channel as slot `seq`, the sender registered as `offerer`
    /// among the offer waiters.
    Made { seq: u64, offerer: WaiterId },
}

/// One step of a blocking rendezvous send (see [`block_until`]).
type OfferStep<T> = ControlFlow<Result<(), SendTimeoutError<T>>, Offer<T>>;

/// Result of one non-blocking send attempt that may leave a registration.
pub(super) enum SendPoll<T> {
    /// Sent, or failed for good (disconnected).
    Done(Result<(), SendError<T>>),
    /// No room; the value comes back and the caller is registered (if it asked).
    Pending(T),
}

/// The sending end of a channel. Clone it for more producers.
pub struct Sender<P: Platform, T> {
    shared: Arc<Shared<P, T>>,
}

impl<P: Platform, T> Sender<P, T> {
    /// Sends `value`, parking while the channel is full (this is the
    /// backpressure). On a rendezvous channel it returns once a receiver has
    /// taken the value. Fails, returning the value, when the channel is
    /// disconnected before the value got in.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.send_until(value, None).map_err(
            |(SendTimeoutError::Timeout(value) | SendTimeoutError::Disconnected(value))| SendError(value),
        )
    }

    /// Sends without blocking. On a rendezvous channel this succeeds only if a
    /// receiver is waiting that no other value is already meant for; the value
    /// is then committed to the channel: if that receiver gives up (timeout,
    /// another `select` arm), the value waits for the next receiver.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.shared.lock(|state, wakeups| {
            let outcome = state.try_send(value);
            state.notify_ready(wakeups);
            outcome
        })
    }

    /// Like [`send`](Self::send), parking at most `timeout`; on timeout the
    /// value comes back (on a rendezvous channel: withdrawn, never received).
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_until(value, Some(deadline_after::<P>(timeout)))
    }

    fn send_until(&self, value: T, deadline: Option<u64>) -> Result<(), SendTimeoutError<T>> {
        if self.shared.capacity == 0 {
            return self.send_rendezvous(value, deadline);
        }
        let mut registration = None;
        block_until::<P, _, _>(deadline, value, |value, may_wait| {
            match self.poll_send(value, &mut registration, may_wait) {
                SendPoll::Done(outcome) => ControlFlow::Break(
                    outcome.map_err(|SendError(value)| SendTimeoutError::Disconnected(value)),
                ),
                SendPoll::Pending(value) if may_wait => ControlFlow::Continue(value),
                SendPoll::Pending(value) => ControlFlow::Break(Err(SendTimeoutError::Timeout(value))),
            }
        })
    }

    /// Offers `value` and parks until a receiver takes it; withdraws it on
    /// timeout or when the last receiver goes.
    fn send_rendezvous(&self, value: T, deadline: Option<u64>) -> Result<(), SendTimeoutError<T>> {
        // The offer is made even if the deadline has passed; the first check
        // after parking then withdraws it, unless a receiver took it.
        block_until::<P, _, _>(deadline, Offer::Unmade(value), |offer, may_wait| match offer {
            Offer::Unmade(value) => self.offer(value),
            Offer::Made { seq, offerer } => self.poll_offer(seq, offerer, !may_wait),
        })
    }

    /// Puts `value` in the channel as an offer, registering the caller to be
    /// woken when a receiver takes it.
    fn offer(&self, value: T) -> OfferStep<T> {
        self.shared.lock(|state, wakeups| {
            if state.send_disconnected() {
                return ControlFlow::Break(Err(SendTimeoutError::Disconnected(value)));
            }
            let offerer = state.offer_waiters.register(P::current());
            let seq = state.push(value, Some(offerer));
            state.notify_ready(wakeups);
            ControlFlow::Continue(Offer::Made { seq, offerer })
        })
    }

    /// Whether offer `seq` was taken; withdraws it when `timed_out` or the
    /// last receiver is gone, else keeps `offerer` registered.
    fn poll_offer(&self, seq: u64, offerer: WaiterId, timed_out: bool) -> OfferStep<T> {
        self.shared.lock(|state, wakeups| {
            // Closing does not cancel an offer: it is already in the
            // channel, and receivers drain the channel.
            let give_up: Option<fn(T) -> SendTimeoutError<T>> = if state.receivers == 0 {
                Some(SendTimeoutError::Disconnected)
            } else if timed_out {
                Some(SendTimeoutError::Timeout)
            } else {
                None
            };
            match give_up {
                None if state.holds(seq) => {
                    state.offer_waiters.rearm(offerer);
                    ControlFlow::Continue(Offer::Made { seq, offerer })
                }
                None => {
                    state.offer_waiters.remove(offerer);
                    ControlFlow::Break(Ok(()))
                }
                Some(error) => {
                    state.offer_waiters.remove(offerer);
                    let withdrawn = state.withdraw(seq);
                    state.notify_ready(wakeups);
                    // Not there any more: a receiver took it first.
                    ControlFlow::Break(withdrawn.map_or(Ok(()), |value| Err(error(value))))
                }
            }
        })
    }

    /// One attempt to commit `value` (the `select` send arm and buffered
    /// sends). When not done: with `may_wait`, leaves the caller registered
    /// among the send waiters; without, removes any registration.
    pub(super) fn poll_send(
        &self,
        value: T,
        registration: &mut Option<WaiterId>,
        may_wait: bool,
    ) -> SendPoll<T> {
        self.shared.lock(|state, wakeups| {
            let outcome = state.try_send(value);
            if may_wait && matches!(outcome, Err(TrySendError::Full(_))) {
                wait_in(&mut state.send_waiters, registration);
            } else {
                leave(&mut state.send_waiters, registration);
            }
            state.notify_ready(wakeups);
            match outcome {
                Ok(()) => SendPoll::Done(Ok(())),
                Err(TrySendError::Disconnected(value)) => SendPoll::Done(Err(SendError(value))),
                Err(TrySendError::Full(value)) => SendPoll::Pending(value),
            }
        })
    }

    /// Removes a registration left by [`poll_send`](Self::poll_send), passing
    /// on a notification it may have received.
    pub(super) fn unregister(&self, registration: &mut Option<WaiterId>) {
        if let Some(id) = registration.take() {
            self.shared.lock(|state, wakeups| {
                if state.send_waiters.remove(id) {
                    state.notify_ready(wakeups);
                }
            });
        }
    }

    /// Closes the channel for everyone: see [`Receiver::close`].
    pub fn close(&self) {
        close(&self.shared);
    }

    /// Whether sends fail now (closed, or every receiver dropped).
    pub fn is_disconnected(&self) -> bool {
        self.shared.lock(|state, _| state.send_disconnected())
    }

    /// Values in the channel now (see [`Receiver::len`]).
    pub fn len(&self) -> usize {
        self.shared.lock(|state, _| state.items.len())
    }

    /// Whether the channel holds no value now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity fixed at construction (0: rendezvous).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Threads blocked sending now (including `select` send arms).
    pub fn blocked_senders(&self) -> usize {
        self.shared.lock(|state, _| state.send_waiters.len() + state.offer_waiters.len())
    }

    /// Threads blocked receiving now (including `select` receive arms).
    pub fn blocked_receivers(&self) -> usize {
        self.shared.lock(|state, _| state.recv_waiters.len())
    }
}

/// The receiving end of a channel. Clone it for more consumers.
pub struct Receiver<P: Platform, T> {
    shared: Arc<Shared<P, T>>,
}

impl<P: Platform, T> Receiver<P, T> {
    /// Takes the oldest value, parking while the channel is empty. After
    /// disconnection, drains what is left, then reports `Disconnected`.
    pub fn recv(&self) -> Result<T, Disconnected> {
        self.recv_until(None).map_err(|_| Disconnected)
    }

    /// Takes the oldest value if there is one, without blocking. On a
    /// rendezvous channel this takes a value a sender is blocked offering.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.shared.lock(|state, wakeups| {
            let outcome = state.try_recv(wakeups);
            state.notify_ready(wakeups);
            outcome
        })
    }

    /// Like [`recv`](Self::recv), parking at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(deadline_after::<P>(timeout)))
    }

    fn recv_until(&self, deadline: Option<u64>) -> Result<T, RecvTimeoutError> {
        let mut registration = None;
        block_until::<P, _, _>(deadline, (), |(), may_wait| {
            match self.poll_recv(&mut registration, may_wait) {
                Some(outcome) => {
                    ControlFlow::Break(outcome.map_err(|Disconnected| RecvTimeoutError::Disconnected))
                }
                None if may_wait => ControlFlow::Continue(()),
                None => ControlFlow::Break(Err(RecvTimeoutError::Timeout)),
            }
        })
    }

    /// One receive attempt (the `select` receive arm and `recv`). `None`: empty;
    /// then with `may_wait` the caller is left registered among the receive
    /// waiters, without it any registration is removed.
    pub(super) fn poll_recv(
        &self,
        registration: &mut Option<WaiterId>,
        may_wait: bool,
    ) -> Option<Result<T, Disconnected>> {
        self.shared.lock(|state, wakeups| {
            let outcome = match state.try_recv(wakeups) {
                Ok(value) => Some(Ok(value)),
                Err(TryRecvError::Disconnected) => Some(Err(Disconnected)),
                Err(TryRecvError::Empty) => None,
            };
            if may_wait && outcome.is_none() {
                wait_in(&mut state.recv_waiters, registration);
            } else {
                leave(&mut state.recv_waiters, registration);
            }
            // Also tells rendezvous `select` senders that a receiver arrived.
            state.notify_ready(wakeups);
            outcome
        })
    }

    /// Removes a registration left by [`poll_recv`](Self::poll_recv), passing
    /// on a notification it may have received.
    pub(super) fn unregister(&self, registration: &mut Option<WaiterId>) {
        if let Some(id) = registration.take() {
            self.shared.lock(|state, wakeups| {
                if state.recv_waiters.remove(id) {
                    state.notify_ready(wakeups);
                }
            });
        }
    }

    /// A blocking iterator: yields values until the channel is disconnected
    /// and drained.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        core::iter::from_fn(move || self.recv().ok())
    }

    /// Yields the values available now, without blocking.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        core::iter::from_fn(move || self.try_recv().ok())
    }

    /// Closes the channel for everyone: sends fail from now on (returning
    /// their value); receivers still get every value already in the channel
    /// (including values offered by senders blocked on a rendezvous channel),
    /// then `Disconnected`.
    pub fn close(&self) {
        close(&self.shared);
    }

    /// Whether no new value can arrive (closed, or every sender dropped);
    /// values already in the channel may remain.
    pub fn is_disconnected(&self) -> bool {
        self.shared.lock(|state, _| state.recv_disconnected())
    }

    /// Values in the channel now: buffered ones; on a rendezvous channel,
    /// values offered by blocked senders or handed to waiting receivers.
    pub fn len(&self) -> usize {
        self.shared.lock(|state, _| state.items.len())
    }

    /// Whether the channel holds no value now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity fixed at construction (0: rendezvous).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Threads blocked sending now (including `select` send arms).
    pub fn blocked_senders(&self) -> usize {
        self.shared.lock(|state, _| state.send_waiters.len() + state.offer_waiters.len())
    }

    /// Threads blocked receiving now (including `select` receive arms).
    pub fn blocked_receivers(&self) -> usize {
        self.shared.lock(|state, _| state.recv_waiters.len())
    }
}

fn close<P: Platform, T>(shared: &Shared<P, T>) {
    shared.lock(|state, wakeups| {
        state.closed = true;
        state.notify_ready(wakeups);
    });
}

impl<P: Platform, T> Clone for Sender<P, T> {
    fn clone(&self) -> Self {
        self.shared.lock(|state, _| state.senders += 1);
        Self { shared: self.shared.clone() }
    }
}

impl<P: Platform, T> Clone for Receiver<P, T> {
    fn clone(&self) -> Self {
        self.shared.lock(|state, _| state.receivers += 1);
        Self { shared: self.shared.clone() }
    }
}

impl<P: Platform, T> Drop for Sender<P, T> {
    fn drop(&mut self) {
        self.shared.lock(|state, wakeups| {
            state.senders -= 1;
            state.notify_ready(wakeups);
        });
    }
}

impl<P: Platform, T> Drop for Receiver<P, T> {
    fn drop(&mut self) {
        self.shared.lock(|state, wakeups| {
            state.receivers -= 1;
            if state.receivers == 0 {
                // Blocked rendezvous senders withdraw their values.
                state.offer_waiters.wake_all(wakeups);
            }
            state.notify_ready(wakeups);
        });
    }
}

impl<P: Platform, T> fmt::Debug for Sender<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("capacity", &self.capacity()).field("len", &self.len()).finish()
    }
}

impl<P: Platform, T> fmt::Debug for Receiver<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("capacity", &self.capacity()).field("len", &self.len()).finish()
    }
}

/// Receiving failed for good: the channel is disconnected and drained.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Disconnected;

/// Sending failed for good (the channel is disconnected); the value is returned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] failed; the value is returned either way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// No room (rendezvous: no unmatched waiting receiver).
    Full(T),
    /// The channel is disconnected.
    Disconnected(T),
}

/// Why [`Sender::send_timeout`] failed; the value is returned either way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// Still no room (rendezvous: not taken) when the timeout passed.
    Timeout(T),
    /// The channel is disconnected.
    Disconnected(T),
}

/// Why [`Receiver::try_recv`] failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TryRecvError {
    /// Nothing to take now.
    Empty,
    /// Disconnected and drained.
    Disconnected,
}

/// Why [`Receiver::recv_timeout`] failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecvTimeoutError {
    /// Still nothing when the timeout passed.
    Timeout,
    /// Disconnected and drained.
    Disconnected,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Disconnected(value) => value,
        }
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Timeout(value) | Self::Disconnected(value) => value,
        }
    }
}

// Debug without `T: Debug`, so `unwrap` works for any payload (as in `std`).
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full(_) => "Full(..)",
            Self::Disconnected(_) => "Disconnected(..)",
        })
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout(_) => "Timeout(..)",
            Self::Disconnected(_) => "Disconnected(..)",
        })
    }
}

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("channel disconnected")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a disconnected channel")
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full(_) => "sending on a full channel",
            Self::Disconnected(_) => "sending on a disconnected channel",
        })
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout(_) => "timed out sending on a channel",
            Self::Disconnected(_) => "sending on a disconnected channel",
        })
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "receiving on an empty channel",
            Self::Disconnected => "channel disconnected",
        })
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out receiving on a channel",
            Self::Disconnected => "channel disconnected",
        })
    }
}

impl core::error::Error for Disconnected {}
impl<T> core::error::Error for SendError<T> {}
impl<T> core::error::Error for TrySendError<T> {}
impl<T> core::error::Error for SendTimeoutError<T> {}
impl core::error::Error for TryRecvError {}
impl core::error::Error for RecvTimeoutError {}

#[cfg(test)]
mod tests;
