//! One-shot signalling: [`Event`], a set-once flag threads wait on, and
//! [`oneshot`], a single-value channel.

use core::time::Duration;

use super::channel::{RecvTimeoutError, TryRecvError, TrySendError};
use super::platform::{deadline_after, deadline_passed, with_lock};
use super::{Disconnected, Platform, Receiver, SendError, Sender, WaitQueue, channel};

/// A flag that is set once and stays set; waiters park until it is.
pub struct Event<P: Platform> {
    state: spin::Mutex<EventState<P>>,
}

struct EventState<P: Platform> {
    set: bool,
    waiters: WaitQueue<P>,
}

impl<P: Platform> Event<P> {
    /// An event not set yet.
    pub const fn new() -> Self {
        Self { state: spin::Mutex::new(EventState { set: false, waiters: WaitQueue::new() }) }
    }

    /// Sets the event, waking every waiter; later calls do nothing.
    pub fn set(&self) {
        with_lock::<P, _, _>(&self.state, |state, wakeups| {
            if !state.set {
                state.set = true;
                state.waiters.wake_all(wakeups);
            }
        });
    }

    /// Whether the event is set.
    pub fn is_set(&self) -> bool {
        with_lock::<P, _, _>(&self.state, |state, _| state.set)
    }

    /// Threads waiting right now (including woken ones that have not run yet).
    pub fn waiting(&self) -> usize {
        with_lock::<P, _, _>(&self.state, |state, _| state.waiters.len())
    }

    /// Parks until the event is set.
    pub fn wait(&self) {
        let set = self.wait_until(None);
        debug_assert!(set, "wait without deadline cannot time out");
    }

    /// Parks until the event is set or `timeout` passes; returns whether it is set.
    #[must_use = "false means the event was not set"]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Some(deadline_after::<P>(timeout)))
    }

    fn wait_until(&self, deadline: Option<u64>) -> bool {
        let mut registration = None;
        loop {
            let timed_out = deadline_passed::<P>(deadline);
            let outcome = with_lock::<P, _, _>(&self.state, |state, _| {
                if state.set || timed_out {
                    if let Some(id) = registration {
                        state.waiters.remove(id);
                    }
                    return Some(state.set);
                }
                match registration {
                    Some(id) => state.waiters.rearm(id),
                    None => registration = Some(state.waiters.register(P::current())),
                }
                None
            });
            if let Some(set) = outcome {
                return set;
            }
            P::park(deadline);
        }
    }
}

impl<P: Platform> Default for Event<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for Event<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}

/// A channel for exactly one value: `(sender, receiver)`. Dropping the sender
/// without sending makes the receiver get [`Disconnected`].
pub fn oneshot<P: Platform, T>() -> (OneshotSender<P, T>, OneshotReceiver<P, T>) {
    let (sender, receiver) = channel(1);
    (OneshotSender { sender }, OneshotReceiver { receiver })
}

/// The sending half of a [`oneshot`]; `send` consumes it.
pub struct OneshotSender<P: Platform, T> {
    sender: Sender<P, T>,
}

impl<P: Platform, T> OneshotSender<P, T> {
    /// Delivers `value` without blocking; gives it back if the receiver is gone.
    pub fn send(self, value: T) -> Result<(), SendError<T>> {
        // Capacity 1 and a single, consumed sender: never full.
        self.sender
            .try_send(value)
            .map_err(|(TrySendError::Full(value) | TrySendError::Disconnected(value))| SendError(value))
    }

    /// Whether the receiver is gone (a send would fail).
    pub fn is_disconnected(&self) -> bool {
        self.sender.is_disconnected()
    }
}

/// The receiving half of a [`oneshot`].
pub struct OneshotReceiver<P: Platform, T> {
    receiver: Receiver<P, T>,
}

impl<P: Platform, T> OneshotReceiver<P, T> {
    /// Parks until the value arrives; `Disconnected` if the sender was dropped
    /// without sending.
    pub fn recv(self) -> Result<T, Disconnected> {
        self.receiver.recv()
    }

    /// The value if it has arrived, without blocking. After the value has been
    /// taken, further calls report `Disconnected`.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.receiver.try_recv()
    }

    /// Parks at most `timeout` for the value.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.receiver.recv_timeout(timeout)
    }
}

impl<P: Platform, T> core::fmt::Debug for OneshotSender<P, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OneshotSender").finish_non_exhaustive()
    }
}

impl<P: Platform, T> core::fmt::Debug for OneshotReceiver<P, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OneshotReceiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::std_platform::{StdPlatform, bounded, wait_for};
    use super::*;

    type Ev = Event<StdPlatform>;

    #[test]
    fn set_wakes_every_waiter_and_stays_set() {
        bounded(|| {
            let event = Arc::new(Ev::new());
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let event = event.clone();
                    std::thread::spawn(move || event.wait())
                })
                .collect();
            // Set only once all three are blocked, so each is woken by `set`.
            wait_for("three waiters to block", || event.waiting() == 3);
            assert!(!event.is_set());
            event.set();
            for waiter in waiters {
                waiter.join().unwrap();
            }
            assert!(event.is_set());
            event.wait();
            assert!(event.wait_timeout(Duration::ZERO));
        });
    }

    #[test]
    fn wait_timeout_times_out_when_not_set() {
        bounded(|| {
            let event = Ev::new();
            let start = Instant::now();
            assert!(!event.wait_timeout(Duration::from_millis(30)));
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(30) && waited < Duration::from_secs(2), "{waited:?}");
        });
    }

    #[test]
    fn oneshot_delivers_across_threads() {
        bounded(|| {
            let (sender, receiver) = oneshot::<StdPlatform, String>();
            assert_eq!(receiver.try_recv(), Err(TryRecvError::Empty));
            let sending = std::thread::spawn(move || sender.send("hello".into()));
            assert_eq!(receiver.recv_timeout(Duration::from_secs(5)).as_deref(), Ok("hello"));
            assert!(sending.join().unwrap().is_ok());
            assert_eq!(receiver.try_recv(), Err(TryRecvError::Disconnected), "only one value ever");
        });
    }

    #[test]
    fn oneshot_sender_dropped_without_sending_disconnects() {
        bounded(|| {
            let (sender, receiver) = oneshot::<StdPlatform, u32>();
            let dropping = std::thread::spawn(move || {
                // Drop only once the receiver is blocked: its wake-up is the point.
                wait_for("receiver to block", || sender.sender.blocked_receivers() == 1);
                drop(sender);
            });
            assert_eq!(receiver.recv(), Err(Disconnected));
            dropping.join().unwrap();
        });
    }

    #[test]
    fn oneshot_send_to_dropped_receiver_returns_the_value() {
        let (sender, receiver) = oneshot::<StdPlatform, Vec<u8>>();
        drop(receiver);
        assert!(sender.is_disconnected());
        assert_eq!(sender.send(vec![1, 2]), Err(SendError(vec![1, 2])));
    }

    #[test]
    fn oneshot_recv_timeout_times_out() {
        let (_sender, receiver) = oneshot::<StdPlatform, u8>();
        assert_eq!(receiver.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
    }
}
