//! The [`Platform`] trait: the only contact between the blocking primitives and
//! whatever runs threads, plus the small deadline and locking helpers built on it.

use core::time::Duration;

use super::Wakeups;

/// What the blocking primitives need from whatever runs threads: the kernel's
/// scheduler in Tenfold, `std` threads in host tests.
///
/// The primitives call [`Platform::current`] inside [`Platform::critical`]
/// while holding an internal spin lock, so it must neither block nor switch.
/// [`Platform::unpark`] is called after the lock and the critical section
/// are left, possibly for a thread that has meanwhile stopped waiting: that
/// must be harmless (a stale permit, i.e. one spurious `park` return).
pub trait Platform: 'static {
    /// A handle to a thread that can be unparked.
    type Thread: Clone + PartialEq + Send + Sync + core::fmt::Debug;

    /// The calling thread.
    fn current() -> Self::Thread;

    /// Blocks the calling thread until it is unparked or the monotonic clock
    /// reaches `deadline_ns`. Unpark is a permit: an `unpark` that comes before
    /// `park` makes the next `park` return at once. Spurious returns are
    /// allowed; callers re-check their condition.
    fn park(deadline_ns: Option<u64>);

    /// Makes `thread` runnable again (or gives it the permit).
    fn unpark(thread: &Self::Thread);

    /// Monotonic time in nanoseconds.
    fn now_ns() -> u64;

    /// Runs `f` so that no other thread of this platform runs on this CPU
    /// meanwhile (the kernel disables interrupts). Internal spin locks are only
    /// ever taken inside this, so a preempted lock holder can never make
    /// another thread spin for a whole time slice.
    fn critical<R>(f: impl FnOnce() -> R) -> R;
}

/// The monotonic instant `timeout` from now, saturating instead of wrapping.
pub(crate) fn deadline_after<P: Platform>(timeout: Duration) -> u64 {
    let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    P::now_ns().saturating_add(timeout_ns)
}

/// Whether `deadline` (if any) has been reached.
pub(crate) fn deadline_passed<P: Platform>(deadline: Option<u64>) -> bool {
    deadline.is_some_and(|deadline| P::now_ns() >= deadline)
}

/// Runs `f` on the state behind `lock`, taking the spin lock only inside
/// [`Platform::critical`] (see there for why), then unparks the threads `f`
/// notified, with the lock released.
pub(crate) fn with_lock<P: Platform, S, R>(
    lock: &spin::Mutex<S>,
    f: impl FnOnce(&mut S, &mut Wakeups<P>) -> R,
) -> R {
    let mut wakeups = Wakeups::new();
    let result = P::critical(|| f(&mut lock.lock(), &mut wakeups));
    wakeups.unpark_all();
    result
}
