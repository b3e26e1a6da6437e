//! [`WaitQueue`]: the FIFO of parked threads under every blocking primitive,
//! and the protocol (documented on the type) that keeps wake-ups from getting
//! lost; [`Wakeups`]: the threads to unpark once a lock is released.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::Platform;

/// Identifies one registration in one [`WaitQueue`]; valid until removed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct WaiterId(u64);

struct Waiter<P: Platform> {
    id: WaiterId,
    thread: P::Thread,
    notified: bool,
}

/// A FIFO of threads waiting for one condition. Not synchronised itself: it is
/// meant to sit inside the state it waits on, behind that state's lock.
///
/// # Protocol
///
/// A queue lives inside the state it guards, behind that state's spin lock, so
/// "check the condition" and "register as a waiter" are one atomic step:
///
/// 1. Under the lock, check the condition. If it holds, act and leave
///    (removing a registration left from an earlier round).
/// 2. Otherwise [`register`](WaitQueue::register) (first round) or
///    [`rearm`](WaitQueue::rearm) (later rounds: keeps the FIFO position),
///    then release the lock.
/// 3. [`Platform::park`], then go back to 1.
///
/// A waker changes the state and marks waiters notified under the same lock,
/// collecting their threads in [`Wakeups`], and unparks them only after
/// releasing the lock (a woken thread that preempted the waker at once would
/// otherwise spin on the lock the waker still holds). A notification that
/// lands between 2 and 3 is not lost: `unpark` is a permit, so the `park`
/// returns at once. A late `unpark` to a thread that already saw its flag only
/// leaves a stale permit, i.e. one spurious return, which costs a re-check.
///
/// A notified waiter stays in the queue, flagged, until it runs and removes or
/// re-arms itself; [`wake_one`](WaitQueue::wake_one) skips flagged waiters, so
/// back-to-back notifications reach distinct threads. Primitives that hand a
/// resource to the woken thread (mutex, semaphore) use the flag as "you own it
/// now". Primitives where any thread may take what the notification was for
/// (channels) keep this invariant instead: *at least as many waiters are
/// notified as could proceed* (values to take, free slots; capped by the
/// number of waiters). They restore it after every state change, so a notified
/// waiter that leaves without using its notification (timeout, another
/// `select` arm fired) passes it on, and one new value wakes one thread, not a
/// herd.
pub struct WaitQueue<P: Platform> {
    /// Ordered by id (ids only grow, removal keeps order), so lookups are
    /// binary searches.
    waiters: VecDeque<Waiter<P>>,
    /// How many of `waiters` are notified.
    notified: usize,
    next_id: u64,
}

impl<P: Platform> WaitQueue<P> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self { waiters: VecDeque::new(), notified: 0, next_id: 0 }
    }

    /// Registered waiters, notified or not.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Registered waiters that are notified and have not re-checked yet.
    pub fn notified(&self) -> usize {
        self.notified
    }

    /// Appends `thread` as an un-notified waiter.
    pub fn register(&mut self, thread: P::Thread) -> WaiterId {
        let id = WaiterId(self.next_id);
        self.next_id += 1;
        self.waiters.push_back(Waiter { id, thread, notified: false });
        id
    }

    fn position(&self, id: WaiterId) -> Option<usize> {
        self.waiters.binary_search_by_key(&id, |waiter| waiter.id).ok()
    }

    /// Whether `id` is registered and has been notified since it registered
    /// or was last re-armed.
    pub fn is_notified(&self, id: WaiterId) -> bool {
        self.position(id).is_some_and(|index| self.waiters[index].notified)
    }

    /// Clears `id`'s notification, keeping its place in line. Only for a
    /// waiter that has just re-checked its condition under the lock and found
    /// it still false.
    pub fn rearm(&mut self, id: WaiterId) {
        if let Some(index) = self.position(id) {
            let waiter = &mut self.waiters[index];
            if waiter.notified {
                waiter.notified = false;
                self.notified -= 1;
            }
        }
    }

    /// Unregisters `id`; returns whether it had been notified (false if it was
    /// not registered).
    pub fn remove(&mut self, id: WaiterId) -> bool {
        let removed = self.position(id).and_then(|index| self.waiters.remove(index));
        let was_notified = removed.is_some_and(|waiter| waiter.notified);
        if was_notified {
            self.notified -= 1;
        }
        was_notified
    }

    /// Notifies the first waiter not yet notified (its thread goes to
    /// `wakeups`); returns whether there was one.
    pub fn wake_one(&mut self, wakeups: &mut Wakeups<P>) -> bool {
        match self.waiters.iter_mut().find(|waiter| !waiter.notified) {
            Some(waiter) => {
                waiter.notified = true;
                self.notified += 1;
                wakeups.push(waiter.thread.clone());
                true
            }
            None => false,
        }
    }

    /// Notifies the waiter `id` (again, if already notified); returns whether
    /// it is registered.
    pub fn wake(&mut self, id: WaiterId, wakeups: &mut Wakeups<P>) -> bool {
        match self.position(id) {
            Some(index) => {
                let waiter = &mut self.waiters[index];
                if !waiter.notified {
                    waiter.notified = true;
                    self.notified += 1;
                }
                wakeups.push(waiter.thread.clone());
                true
            }
            None => false,
        }
    }

    /// Notifies every waiter not yet notified; returns how many.
    pub fn wake_all(&mut self, wakeups: &mut Wakeups<P>) -> usize {
        let mut woken = 0;
        for waiter in self.waiters.iter_mut().filter(|waiter| !waiter.notified) {
            waiter.notified = true;
            wakeups.push(waiter.thread.clone());
            woken += 1;
        }
        self.notified += woken;
        woken
    }
}

/// Threads notified under a lock, to be unparked once it is released.
///
/// A few fit inline, so the common case (waking one or two threads) does not
/// allocate inside the critical section.
pub struct Wakeups<P: Platform> {
    inline: [Option<P::Thread>; INLINE_WAKEUPS],
    overflow: Vec<P::Thread>,
}

const INLINE_WAKEUPS: usize = 4;

impl<P: Platform> Wakeups<P> {
    /// Nobody to wake yet.
    pub const fn new() -> Self {
        Self { inline: [const { None }; INLINE_WAKEUPS], overflow: Vec::new() }
    }

    /// Adds `thread` to the threads to unpark.
    pub fn push(&mut self, thread: P::Thread) {
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(thread),
            None => self.overflow.push(thread),
        }
    }

    /// Whether nobody is to be woken.
    pub fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }

    /// Unparks every collected thread. Call with no internal lock held.
    pub fn unpark_all(self) {
        for thread in self.inline.iter().flatten().chain(&self.overflow) {
            P::unpark(thread);
        }
    }
}

impl<P: Platform> Default for Wakeups<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for Wakeups<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.inline.iter().flatten().chain(&self.overflow)).finish()
    }
}

impl<P: Platform> Default for WaitQueue<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for WaitQueue<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let notified = self.waiters.iter().filter(|waiter| waiter.notified).count();
        f.debug_struct("WaitQueue")
            .field("waiters", &self.waiters.len())
            .field("notified", &notified)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::std_platform::{StdPlatform, bounded};
    use super::*;

    type Queue = WaitQueue<StdPlatform>;

    #[test]
    fn wake_one_notifies_in_fifo_order_and_skips_notified() {
        let mut queue = Queue::new();
        let mut wakeups = Wakeups::new();
        let first = queue.register(StdPlatform::current());
        let second = queue.register(StdPlatform::current());
        assert!(queue.wake_one(&mut wakeups));
        assert!(queue.is_notified(first) && !queue.is_notified(second));
        assert!(queue.wake_one(&mut wakeups));
        assert!(queue.is_notified(second));
        assert!(!queue.wake_one(&mut wakeups), "everyone is already notified");
        assert_eq!(queue.notified(), 2);
        assert!(queue.remove(first));
        assert_eq!((queue.len(), queue.notified()), (1, 1));
        assert!(!wakeups.is_empty());
        wakeups.unpark_all();
    }

    #[test]
    fn rearm_keeps_position_and_remove_reports_notification() {
        let mut queue = Queue::new();
        let mut wakeups = Wakeups::new();
        let first = queue.register(StdPlatform::current());
        let second = queue.register(StdPlatform::current());
        assert_eq!(queue.wake_all(&mut wakeups), 2);
        queue.rearm(first);
        assert!(!queue.is_notified(first));
        assert!(queue.remove(second), "second was notified");
        assert!(!queue.remove(second), "already gone");
        assert!(queue.wake_one(&mut wakeups));
        assert!(queue.is_notified(first), "re-armed waiter is still first in line");
        assert!(queue.wake(first, &mut wakeups) && !queue.wake(second, &mut wakeups));
        for _ in 0..6 {
            queue.register(StdPlatform::current());
        }
        assert_eq!(queue.wake_all(&mut wakeups), 6, "spills past the inline slots");
        assert_eq!((queue.len(), queue.notified()), (7, 7));
        wakeups.unpark_all();
    }

    #[test]
    fn protocol_loses_no_wakeup_when_notified_before_park() {
        // The notification lands after registration but before park: the
        // permit makes park return, and the re-check sees the flag.
        bounded(|| {
            let queue = std::sync::Arc::new(spin::Mutex::new(Queue::new()));
            let id = queue.lock().register(StdPlatform::current());
            let waker = {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    let mut wakeups = Wakeups::new();
                    let woke = queue.lock().wake_one(&mut wakeups);
                    wakeups.unpark_all();
                    woke
                })
            };
            assert!(waker.join().unwrap());
            while !queue.lock().is_notified(id) {
                StdPlatform::park(None);
            }
            assert!(queue.lock().remove(id));
        });
    }
}
