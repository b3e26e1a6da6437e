//! [`Select`]: wait on several channel operations at once and perform exactly
//! one of them, Go-style.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use super::channel::SendPoll;
use super::platform::{deadline_after, deadline_passed};
use super::{Disconnected, Platform, Receiver, SendError, Sender, WaiterId};

/// Performs exactly one of several channel operations ("arms"), parking until
/// one can proceed or the timeout passes.
///
/// Each arm has a handler; the handler of the arm that fires gets the outcome
/// and its return value (common type `R`) is what [`run`](Self::run) returns:
///
/// ```text
/// let reply = Select::new()
///     .recv(&requests, |request| Reply::Request(request))
///     .recv(&control, |command| Reply::Control(command))
///     .send(&log, line, |sent| Reply::Logged(sent.is_ok()))
///     .timeout(Duration::from_millis(10))
///     .run();   // Ok(reply) or Err(SelectTimeout)
/// ```
///
/// - An arm is ready when its operation can complete now, or when its channel
///   is disconnected (the handler then gets `Err`: [`Disconnected`] for a
///   receive, [`SendError`] with the value back for a send).
/// - Fairness: each `run` tries the arms in a fresh pseudo-random order, so
///   when several are ready each is equally likely to fire; no arm starves.
/// - Exactly one arm fires; the values of send arms that did not fire are
///   dropped with the `Select`.
/// - A send arm on a rendezvous channel fires only when a receiver is blocked
///   waiting (as with [`Sender::try_send`]), not for a receiver's `try_recv`:
///   a `select` cannot offer a value and wait for it to be taken, since it
///   could not withdraw the offer atomically when another arm fires. Do not
///   put both ends of one rendezvous channel in the same `select`: its own
///   receive registration would count as the waiting receiver.
/// - Waiting: the thread registers with every arm's channel, parks, and on
///   wake-up tries again; registrations are kept (and re-armed) across rounds
///   and removed when `run` returns, passing on any notification not used.
#[must_use = "a Select does nothing until `run`"]
pub struct Select<'a, P: Platform, R> {
    arms: Vec<Box<dyn Arm<'a, R> + 'a>>,
    timeout: Option<Duration>,
    platform: PhantomData<fn() -> P>,
}

/// Returned by [`Select::run`] when no arm fired before the timeout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SelectTimeout;

impl core::fmt::Display for SelectTimeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("no select arm became ready before the timeout")
    }
}

impl core::error::Error for SelectTimeout {}

impl<'a, P: Platform, R: 'a> Select<'a, P, R> {
    /// A select with no arms and no timeout.
    pub fn new() -> Self {
        Self { arms: Vec::new(), timeout: None, platform: PhantomData }
    }

    /// Adds an arm receiving from `receiver`.
    pub fn recv<T: 'a>(
        mut self,
        receiver: &'a Receiver<P, T>,
        handler: impl FnOnce(Result<T, Disconnected>) -> R + 'a,
    ) -> Self {
        self.arms.push(Box::new(RecvArm { receiver, handler: Some(handler), registration: None }));
        self
    }

    /// Adds an arm sending `value` on `sender`.
    pub fn send<T: 'a>(
        mut self,
        sender: &'a Sender<P, T>,
        value: T,
        handler: impl FnOnce(Result<(), SendError<T>>) -> R + 'a,
    ) -> Self {
        self.arms.push(Box::new(SendArm { sender, pending: Some((value, handler)), registration: None }));
        self
    }

    /// Gives up after `timeout` (`Duration::ZERO`: only try once, never park).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Fires exactly one ready arm, parking until one is ready; returns its
    /// handler's result, or `SelectTimeout` if the timeout passed first. With
    /// no arms there is nothing to wait for: it waits out the timeout, and
    /// without one returns `SelectTimeout` at once instead of blocking forever.
    pub fn run(mut self) -> Result<R, SelectTimeout> {
        if self.arms.is_empty() && self.timeout.is_none() {
            return Err(SelectTimeout);
        }
        let deadline = self.timeout.map(deadline_after::<P>);
        let order = shuffled_order(self.arms.len());
        loop {
            let may_wait = !deadline_passed::<P>(deadline);
            let fired = order.iter().find_map(|&index| self.arms[index].poll(may_wait));
            if let Some(complete) = fired {
                for arm in &mut self.arms {
                    arm.unregister();
                }
                // The handler runs with no registration left behind.
                return Ok(complete());
            }
            if !may_wait {
                // Polling without `may_wait` removed every registration.
                return Err(SelectTimeout);
            }
            P::park(deadline);
        }
    }
}

impl<'a, P: Platform, R: 'a> Default for Select<'a, P, R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform, R> core::fmt::Debug for Select<'_, P, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Select").field("arms", &self.arms.len()).field("timeout", &self.timeout).finish()
    }
}

/// One arm, type-erased over its channel's item type.
trait Arm<'a, R> {
    /// One attempt under the channel's lock. Ready: the operation is done and
    /// the returned closure runs the handler. Not ready: with `may_wait` the
    /// thread is left registered with the channel, without it unregistered.
    /// An arm whose handler already ran is never ready.
    fn poll(&mut self, may_wait: bool) -> Option<Box<dyn FnOnce() -> R + 'a>>;

    /// Removes this arm's registration, if any.
    fn unregister(&mut self);
}

struct RecvArm<'a, P: Platform, T, F> {
    receiver: &'a Receiver<P, T>,
    handler: Option<F>,
    registration: Option<WaiterId>,
}

impl<'a, P: Platform, T: 'a, R, F> Arm<'a, R> for RecvArm<'a, P, T, F>
where
    F: FnOnce(Result<T, Disconnected>) -> R + 'a,
{
    fn poll(&mut self, may_wait: bool) -> Option<Box<dyn FnOnce() -> R + 'a>> {
        let handler = self.handler.take()?;
        match self.receiver.poll_recv(&mut self.registration, may_wait) {
            Some(outcome) => Some(Box::new(move || handler(outcome))),
            None => {
                self.handler = Some(handler);
                None
            }
        }
    }

    fn unregister(&mut self) {
        self.receiver.unregister(&mut self.registration);
    }
}

struct SendArm<'a, P: Platform, T, F> {
    sender: &'a Sender<P, T>,
    pending: Option<(T, F)>,
    registration: Option<WaiterId>,
}

impl<'a, P: Platform, T: 'a, R, F> Arm<'a, R> for SendArm<'a, P, T, F>
where
    F: FnOnce(Result<(), SendError<T>>) -> R + 'a,
{
    fn poll(&mut self, may_wait: bool) -> Option<Box<dyn FnOnce() -> R + 'a>> {
        let (value, handler) = self.pending.take()?;
        match self.sender.poll_send(value, &mut self.registration, may_wait) {
            SendPoll::Done(outcome) => Some(Box::new(move || handler(outcome))),
            SendPoll::Pending(value) => {
                self.pending = Some((value, handler));
                None
            }
        }
    }

    fn unregister(&mut self) {
        self.sender.unregister(&mut self.registration);
    }
}

/// `0..len` in a pseudo-random order (Fisher–Yates). Not cryptographic; it
/// only has to keep any one arm from being favoured.
fn shuffled_order(len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    for last in (1..len).rev() {
        // Modulo bias is negligible for select-sized `len`.
        let pick = (next_random() % (last as u64 + 1)) as usize;
        order.swap(last, pick);
    }
    order
}

/// SplitMix64 over a global Weyl sequence: every call, from any thread, gets
/// a distinct, well-mixed number without locking.
fn next_random() -> u64 {
    const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    static WEYL: AtomicU64 = AtomicU64::new(0);
    let mut z = WEYL.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed).wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
