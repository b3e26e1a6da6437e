//! [`Condvar`]: condition variables for [`Mutex`](super::Mutex).

use core::time::Duration;

use super::platform::{deadline_after, deadline_passed, with_lock};
use super::{MutexGuard, Platform, WaitQueue};

/// A condition variable: parks threads until notified, atomically releasing a
/// [`Mutex`](super::Mutex) meanwhile.
///
/// The waiter registers before it unlocks, so a notification made under the
/// mutex after the waiter's check cannot be missed. Waits return only when
/// notified (or timed out): there are no spurious wake-ups, though callers
/// should still re-check their condition (another thread may have changed it
/// before the waiter relocked) — [`wait_while`](Condvar::wait_while) does that.
pub struct Condvar<P: Platform> {
    waiters: spin::Mutex<WaitQueue<P>>,
}

impl<P: Platform> Condvar<P> {
    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        Self { waiters: spin::Mutex::new(WaitQueue::new()) }
    }

    /// Unlocks `guard`'s mutex, parks until notified, relocks.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, P, T>) -> MutexGuard<'a, P, T> {
        self.wait_until(guard, None).0
    }

    /// Like [`wait`](Self::wait) for at most `timeout`; the flag says whether
    /// it timed out rather than being notified.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, P, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, P, T>, bool) {
        self.wait_until(guard, Some(deadline_after::<P>(timeout)))
    }

    /// Waits while `condition` holds on the data.
    pub fn wait_while<'a, T>(
        &self,
        mut guard: MutexGuard<'a, P, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, P, T> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Waits while `condition` holds, for at most `timeout` in total; the flag
    /// says whether it gave up with the condition still holding.
    pub fn wait_timeout_while<'a, T>(
        &self,
        mut guard: MutexGuard<'a, P, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, P, T>, bool) {
        let deadline = Some(deadline_after::<P>(timeout));
        while condition(&mut guard) {
            if deadline_passed::<P>(deadline) {
                return (guard, true);
            }
            guard = self.wait_until(guard, deadline).0;
        }
        (guard, false)
    }

    fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, P, T>,
        deadline: Option<u64>,
    ) -> (MutexGuard<'a, P, T>, bool) {
        let mutex = guard.mutex();
        // Register first, unlock second: a notifier that takes the mutex after
        // us must find us in the queue.
        let id = with_lock::<P, _, _>(&self.waiters, |waiters, _| waiters.register(P::current()));
        drop(guard);
        let timed_out = loop {
            P::park(deadline);
            let timed_out = deadline_passed::<P>(deadline);
            let outcome = with_lock::<P, _, _>(&self.waiters, |waiters, _| {
                if waiters.is_notified(id) {
                    waiters.remove(id);
                    Some(false)
                } else if timed_out {
                    waiters.remove(id);
                    Some(true)
                } else {
                    None
                }
            });
            if let Some(timed_out) = outcome {
                break timed_out;
            }
        };
        // Relocking has no deadline, as with `std`: the guard must come back.
        (mutex.lock(), timed_out)
    }

    /// Threads waiting right now (including notified ones that have not run yet).
    pub fn waiting(&self) -> usize {
        with_lock::<P, _, _>(&self.waiters, |waiters, _| waiters.len())
    }

    /// Wakes the longest-waiting thread not yet notified, if any.
    pub fn notify_one(&self) {
        with_lock::<P, _, _>(&self.waiters, |waiters, wakeups| waiters.wake_one(wakeups));
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        with_lock::<P, _, _>(&self.waiters, |waiters, wakeups| waiters.wake_all(wakeups));
    }
}

impl<P: Platform> Default for Condvar<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for Condvar<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::Mutex;
    use super::super::std_platform::{StdPlatform, bounded, wait_for};
    use super::*;

    type M<T> = Mutex<StdPlatform, T>;
    type Cv = Condvar<StdPlatform>;

    #[test]
    fn notify_one_wakes_a_waiter() {
        bounded(|| {
            let pair = Arc::new((M::new(false), Cv::new()));
            let waiter = {
                let pair = pair.clone();
                std::thread::spawn(move || {
                    let (ready, condvar) = &*pair;
                    let guard = condvar.wait_while(ready.lock(), |ready| !*ready);
                    assert!(*guard);
                })
            };
            let (ready, condvar) = &*pair;
            // Notify only once the waiter waits: a late one would find the
            // flag set and never wait.
            wait_for("waiter to wait", || condvar.waiting() == 1);
            *ready.lock() = true;
            condvar.notify_one();
            waiter.join().unwrap();
        });
    }

    #[test]
    fn notify_all_wakes_every_waiter() {
        bounded(|| {
            let state = Arc::new((M::new((false, 0_u32)), Cv::new()));
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let state = state.clone();
                    std::thread::spawn(move || {
                        let (data, condvar) = &*state;
                        let mut guard = data.lock();
                        guard.1 += 1;
                        let mut guard = condvar.wait_while(guard, |(go, _)| !*go);
                        guard.1 -= 1;
                    })
                })
                .collect();
            let (data, condvar) = &*state;
            wait_for("all three to wait", || data.lock().1 == 3);
            data.lock().0 = true;
            condvar.notify_all();
            for waiter in waiters {
                waiter.join().unwrap();
            }
            assert_eq!(data.lock().1, 0);
        });
    }

    #[test]
    fn wait_timeout_times_out_and_releases_the_mutex_meanwhile() {
        bounded(|| {
            let mutex = M::new(0);
            let condvar = Cv::new();
            std::thread::scope(|scope| {
                let start = Instant::now();
                let waiter = scope.spawn(|| {
                    let (guard, timed_out) = condvar.wait_timeout(mutex.lock(), Duration::from_millis(50));
                    (*guard, timed_out)
                });
                // The mutex is free while the waiter waits (not merely before
                // it took the lock).
                wait_for("waiter to wait with the mutex released", || {
                    condvar.waiting() == 1 && mutex.try_lock().is_some_and(|guard| *guard == 0)
                });
                let (seen, timed_out) = waiter.join().unwrap();
                let waited = start.elapsed();
                assert!(timed_out && seen == 0);
                assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(2), "{waited:?}");
            });
            let (guard, timed_out) =
                condvar.wait_timeout_while(mutex.lock(), Duration::from_millis(10), |_| true);
            assert!(timed_out && *guard == 0);
        });
    }
}
