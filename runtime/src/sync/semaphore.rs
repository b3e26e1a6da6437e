//! [`Semaphore`]: a counting semaphore with strict FIFO hand-off; also the
//! ownership gate under [`Mutex`](super::Mutex).

use core::time::Duration;

use super::platform::{deadline_after, deadline_passed, with_lock};
use super::{Platform, WaitQueue};

/// A counting semaphore.
///
/// Fairness: strict FIFO. `release` hands its permit directly to the longest
/// waiting thread (the permit never becomes available in between), and
/// `try_acquire` / a new `acquire` only take a free permit, which exists only
/// while nobody waits. So no thread can overtake a waiter, and none starves.
/// The price is the classic convoy: a handed-over permit is unusable until its
/// new owner gets scheduled.
pub struct Semaphore<P: Platform> {
    state: spin::Mutex<SemaphoreState<P>>,
}

struct SemaphoreState<P: Platform> {
    /// Free permits. Invariant: non-zero only while every waiter is already
    /// notified (i.e. already owns a permit).
    permits: usize,
    /// A notified waiter owns the permit handed to it.
    waiters: WaitQueue<P>,
}

impl<P: Platform> Semaphore<P> {
    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Self {
        Self { state: spin::Mutex::new(SemaphoreState { permits, waiters: WaitQueue::new() }) }
    }

    /// Takes a permit if one is free, without blocking.
    #[must_use = "if this returns true a permit is held and must be released"]
    pub fn try_acquire(&self) -> bool {
        with_lock::<P, _, _>(&self.state, |state, _| {
            let free = state.permits > 0;
            if free {
                state.permits -= 1;
            }
            free
        })
    }

    /// Takes a permit, parking until one is handed over.
    pub fn acquire(&self) {
        let acquired = self.acquire_until(None);
        debug_assert!(acquired, "acquire without deadline cannot time out");
    }

    /// Takes a permit, parking at most `timeout`; returns whether it got one.
    #[must_use = "if this returns true a permit is held and must be released"]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_until(Some(deadline_after::<P>(timeout)))
    }

    pub(crate) fn acquire_until(&self, deadline: Option<u64>) -> bool {
        let registration = with_lock::<P, _, _>(&self.state, |state, _| {
            if state.permits > 0 {
                state.permits -= 1;
                None
            } else {
                Some(state.waiters.register(P::current()))
            }
        });
        let Some(id) = registration else { return true };
        loop {
            P::park(deadline);
            let timed_out = deadline_passed::<P>(deadline);
            let outcome = with_lock::<P, _, _>(&self.state, |state, _| {
                // Ownership is decided under the lock: a hand-off that beats
                // the timeout wins, and a timed-out waiter held no permit.
                if state.waiters.is_notified(id) {
                    state.waiters.remove(id);
                    Some(true)
                } else if timed_out {
                    state.waiters.remove(id);
                    Some(false)
                } else {
                    None
                }
            });
            if let Some(acquired) = outcome {
                return acquired;
            }
        }
    }

    /// Returns a permit: to the longest waiting thread if any, else to the pool
    /// (saturating at `usize::MAX`).
    pub fn release(&self) {
        with_lock::<P, _, _>(&self.state, |state, wakeups| {
            if !state.waiters.wake_one(wakeups) {
                state.permits = state.permits.saturating_add(1);
            }
        });
    }

    /// Free permits right now.
    pub fn available_permits(&self) -> usize {
        with_lock::<P, _, _>(&self.state, |state, _| state.permits)
    }

    /// Threads blocked in `acquire` right now (including ones already handed a
    /// permit that have not run yet).
    pub fn waiting(&self) -> usize {
        with_lock::<P, _, _>(&self.state, |state, _| state.waiters.len())
    }
}

impl<P: Platform> core::fmt::Debug for Semaphore<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .field("waiting", &self.waiting())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::super::std_platform::{StdPlatform, bounded, wait_for};
    use super::*;

    type Sem = Semaphore<StdPlatform>;

    #[test]
    fn bounds_concurrency_to_the_permit_count() {
        bounded(|| {
            const PERMITS: usize = 2;
            let semaphore = Sem::new(PERMITS);
            let inside = AtomicUsize::new(0);
            let most_inside = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for _ in 0..6 {
                    scope.spawn(|| {
                        for _ in 0..200 {
                            semaphore.acquire();
                            let now_inside = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most_inside.fetch_max(now_inside, Ordering::SeqCst);
                            std::thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            semaphore.release();
                        }
                    });
                }
            });
            let most_inside = most_inside.load(Ordering::SeqCst);
            assert!((1..=PERMITS).contains(&most_inside), "{most_inside} threads inside at once");
            assert_eq!(semaphore.available_permits(), PERMITS);
        });
    }

    #[test]
    fn try_acquire_and_acquire_timeout() {
        bounded(|| {
            let semaphore = Sem::new(1);
            assert!(semaphore.try_acquire());
            assert!(!semaphore.try_acquire());
            let start = Instant::now();
            assert!(!semaphore.acquire_timeout(Duration::from_millis(30)));
            let waited = start.elapsed();
            assert!(waited >= Duration::from_millis(30) && waited < Duration::from_secs(2), "{waited:?}");
            assert_eq!(semaphore.waiting(), 0, "timed-out waiter unregistered");
            semaphore.release();
            assert!(semaphore.acquire_timeout(Duration::from_millis(30)));
        });
    }

    #[test]
    fn release_hands_the_permit_to_waiters_in_fifo_order() {
        bounded(|| {
            let semaphore = Arc::new(Sem::new(0));
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut waiters = Vec::new();
            for number in 0..3 {
                let (waiter_semaphore, waiter_order) = (semaphore.clone(), order.clone());
                waiters.push(std::thread::spawn(move || {
                    waiter_semaphore.acquire();
                    waiter_order.lock().unwrap().push(number);
                }));
                wait_for("waiter to block", || semaphore.waiting() == number + 1);
            }
            for released in 1..=3 {
                semaphore.release();
                // Handed over, not pooled: a newcomer cannot barge in.
                assert!(!semaphore.try_acquire());
                wait_for("woken waiter to record itself", || order.lock().unwrap().len() == released);
            }
            for waiter in waiters {
                waiter.join().unwrap();
            }
            assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
            assert_eq!(semaphore.available_permits(), 0);
        });
    }
}
