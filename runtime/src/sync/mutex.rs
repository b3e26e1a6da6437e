//! [`Mutex`] and its RAII [`MutexGuard`]: a blocking lock whose contended
//! lockers park, with FIFO hand-off.

use core::ops::{Deref, DerefMut};
use core::time::Duration;

use super::platform::deadline_after;
use super::{Platform, Semaphore};

/// A blocking mutual-exclusion lock.
///
/// Logical ownership is a one-permit [`Semaphore`], so contended lockers park
/// (no spinning beyond the internal lock's few instructions) and fairness is
/// its strict FIFO hand-off: unlock passes the lock straight to the longest
/// waiter, nobody barges, nobody starves. The data sits in a `spin::Mutex`
/// that only the logical owner ever locks, so that lock is always free when
/// taken; the guard holds it for as long as it lives (this is how the data is
/// reached without `unsafe`). No poisoning.
pub struct Mutex<P: Platform, T> {
    gate: Semaphore<P>,
    data: spin::Mutex<T>,
}

impl<P: Platform, T> Mutex<P, T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self { gate: Semaphore::new(1), data: spin::Mutex::new(value) }
    }

    /// Locks, parking while another thread holds the lock.
    pub fn lock(&self) -> MutexGuard<'_, P, T> {
        self.gate.acquire();
        self.guard()
    }

    /// Locks if free (and nobody waits), without blocking.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, P, T>> {
        self.gate.try_acquire().then(|| self.guard())
    }

    /// Locks, parking at most `timeout`; `None` if the lock was not obtained.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<MutexGuard<'_, P, T>> {
        self.lock_until(Some(deadline_after::<P>(timeout)))
    }

    pub(crate) fn lock_until(&self, deadline: Option<u64>) -> Option<MutexGuard<'_, P, T>> {
        self.gate.acquire_until(deadline).then(|| self.guard())
    }

    /// Threads blocked in `lock` right now (including one already handed the
    /// lock that has not run yet).
    pub fn waiting(&self) -> usize {
        self.gate.waiting()
    }

    /// Builds the guard once the gate is owned.
    fn guard(&self) -> MutexGuard<'_, P, T> {
        MutexGuard { data: self.data.lock(), ownership: Ownership { mutex: self } }
    }

    /// The data, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<P: Platform, T: Default> Default for Mutex<P, T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<P: Platform, T> core::fmt::Debug for Mutex<P, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mutex").field("locked", &(self.gate.available_permits() == 0)).finish_non_exhaustive()
    }
}

/// Proof of owning a [`Mutex`]; derefs to the data; unlocks on drop.
pub struct MutexGuard<'a, P: Platform, T> {
    // Fields drop in declaration order: the data cell is released before the
    // ownership moves on, so the next owner never finds it taken.
    data: spin::MutexGuard<'a, T>,
    ownership: Ownership<'a, P, T>,
}

/// Hands the lock on (or frees it) when dropped.
struct Ownership<'a, P: Platform, T> {
    mutex: &'a Mutex<P, T>,
}

impl<P: Platform, T> Drop for Ownership<'_, P, T> {
    fn drop(&mut self) {
        self.mutex.gate.release();
    }
}

impl<'a, P: Platform, T> MutexGuard<'a, P, T> {
    /// The mutex this guard locks (for [`Condvar`](super::Condvar), which
    /// unlocks and relocks it).
    pub(crate) fn mutex(&self) -> &'a Mutex<P, T> {
        self.ownership.mutex
    }
}

impl<P: Platform, T> Deref for MutexGuard<'_, P, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

impl<P: Platform, T> DerefMut for MutexGuard<'_, P, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

impl<P: Platform, T: core::fmt::Debug> core::fmt::Debug for MutexGuard<'_, P, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::super::std_platform::{StdPlatform, bounded, wait_for};
    use super::*;

    type M<T> = Mutex<StdPlatform, T>;

    fn assert_sync<S: Sync + Send>() {}

    #[test]
    fn is_sync_for_send_data() {
        assert_sync::<M<std::cell::Cell<u32>>>();
    }

    #[test]
    fn mutual_exclusion_under_contention() {
        bounded(|| {
            const THREADS: u64 = 4;
            const INCREMENTS: u64 = 10_000;
            let counter = M::new(0_u64);
            let inside = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                // Every thread starts blocked on a held lock, so the parking
                // and hand-off path runs for certain, not only when the
                // short critical sections happen to collide.
                let held = counter.lock();
                for _ in 0..THREADS {
                    scope.spawn(|| {
                        for _ in 0..INCREMENTS {
                            let mut guard = counter.lock();
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two threads inside");
                            // A torn read-modify-write would lose increments.
                            let seen = *guard;
                            *guard = seen + 1;
                            inside.fetch_sub(1, Ordering::SeqCst);
                        }
                    });
                }
                wait_for("every thread to block", || counter.waiting() == THREADS as usize);
                drop(held);
            });
            assert_eq!(counter.into_inner(), THREADS * INCREMENTS);
        });
    }

    #[test]
    fn try_lock_and_lock_timeout_fail_while_held() {
        bounded(|| {
            let mutex = M::new(5);
            let guard = mutex.lock();
            assert!(mutex.try_lock().is_none());
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let start = Instant::now();
                    assert!(mutex.lock_timeout(Duration::from_millis(40)).is_none());
                    let waited = start.elapsed();
                    assert!(
                        waited >= Duration::from_millis(40) && waited < Duration::from_secs(2),
                        "{waited:?}"
                    );
                });
            });
            drop(guard);
            assert_eq!(*mutex.try_lock().expect("free again"), 5);
        });
    }

    #[test]
    fn lock_timeout_gets_a_lock_released_in_time() {
        bounded(|| {
            let mutex = Arc::new(M::new(Vec::new()));
            let released = Arc::new(AtomicBool::new(false));
            let guard = mutex.lock();
            let waiter = {
                let (mutex, released) = (mutex.clone(), released.clone());
                std::thread::spawn(move || {
                    let mut guard = mutex.lock_timeout(Duration::from_secs(5)).expect("released in time");
                    assert!(released.load(Ordering::SeqCst), "got the lock while it was held");
                    guard.push("waiter");
                })
            };
            // Release only once the waiter is blocked on the lock: a late
            // waiter would otherwise find it free and never wait at all.
            wait_for("waiter to block on the held lock", || mutex.waiting() == 1);
            released.store(true, Ordering::SeqCst);
            drop(guard);
            waiter.join().unwrap();
            assert_eq!(*mutex.lock(), ["waiter"]);
        });
    }
}
