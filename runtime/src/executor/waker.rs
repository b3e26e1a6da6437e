//! The only part of the executor shared across threads: task wakers, the
//! ready queue they feed, and the counters they move. Owns [`Shared`] and
//! [`TaskWaker`].
//!
//! A task's atomic state is the truth about its readiness; the queue only
//! records the order in which tasks became ready. Neither side ever waits for
//! the queue's lock (`try_lock`), and wakers never allocate: when the queue is
//! busy or full, a waker sets `rescan` and the loop thread looks at every
//! task's state instead. So a waker called from an interrupt handler cannot
//! deadlock against the loop thread it interrupted.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, AtomicU64, Ordering};

use super::state::TaskId;

/// Most queue entries preallocated, whatever `max_tasks` says; beyond that
/// the loop thread falls back to scanning.
const QUEUE_PREALLOC_MAX: usize = 4096;

/// Task state bits. `NOTIFIED`: woken and not yet taken for a poll. `DEAD`:
/// the task is gone; wakes are ignored.
const NOTIFIED: u8 = 1;
const DEAD: u8 = 2;

/// State reachable from wakers, hence `Send + Sync`.
pub(super) struct Shared {
    /// Tasks in the order they became ready. May hold stale or duplicate ids:
    /// an entry counts only if its task's state is still `NOTIFIED`.
    queue: spin::Mutex<VecDeque<TaskId>>,
    /// The queue never grows beyond this (its preallocated room).
    queue_room: usize,
    /// Some ready task may be missing from the queue: scan all tasks.
    rescan: AtomicBool,
    /// Tasks in state `NOTIFIED`. Signed: the loop thread may take a task
    /// (decrement) before its waker got to count it (increment).
    notified: AtomicIsize,
    wakeups: AtomicU64,
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl Shared {
    pub(super) fn new(max_tasks: usize, notify: Arc<dyn Fn() + Send + Sync>) -> Self {
        let queue_room = max_tasks.clamp(1, QUEUE_PREALLOC_MAX);
        Self {
            queue: spin::Mutex::new(VecDeque::with_capacity(queue_room)),
            queue_room,
            rescan: AtomicBool::new(false),
            notified: AtomicIsize::new(0),
            wakeups: AtomicU64::new(0),
            notify,
        }
    }

    /// Calls the host's notifier.
    pub(super) fn notify(&self) {
        (self.notify)();
    }

    /// Tasks ready to be polled.
    pub(super) fn ready_count(&self) -> usize {
        usize::try_from(self.notified.load(Ordering::Acquire)).unwrap_or(0)
    }

    pub(super) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Moves the queued ids into `out`. Returns whether `out` may miss ready
    /// tasks (queue busy, or a waker found it busy or full): then the caller
    /// must also consider every task.
    pub(super) fn drain_into(&self, out: &mut alloc::vec::Vec<TaskId>) -> bool {
        let drained = match self.queue.try_lock() {
            Some(mut queue) => {
                out.extend(queue.drain(..));
                true
            }
            None => false,
        };
        // Always clear the flag: this drain or the full scan covers its cause.
        self.rescan.swap(false, Ordering::AcqRel) || !drained
    }

    #[cfg(test)]
    pub(super) fn queue_for_test(&self) -> &spin::Mutex<VecDeque<TaskId>> {
        &self.queue
    }

    fn enqueue(&self, id: TaskId) {
        let queued = match self.queue.try_lock() {
            Some(mut queue) if queue.len() < self.queue_room => {
                queue.push_back(id);
                true
            }
            _ => false,
        };
        if !queued {
            self.rescan.store(true, Ordering::Release);
        }
    }
}

/// A task's waker, and its readiness state.
pub(super) struct TaskWaker {
    id: TaskId,
    state: AtomicU8,
    shared: Arc<Shared>,
}

impl TaskWaker {
    /// The waker of a new task, which starts ready (and is queued).
    pub(super) fn new_ready(id: TaskId, shared: Arc<Shared>) -> Arc<Self> {
        shared.notified.fetch_add(1, Ordering::AcqRel);
        shared.enqueue(id);
        Arc::new(Self { id, state: AtomicU8::new(NOTIFIED), shared })
    }

    /// Takes the task's readiness for a poll: whether it was ready.
    pub(super) fn take_notified(&self) -> bool {
        // Acquire: what the waker wrote before waking is visible to the poll.
        let taken = self.state.compare_exchange(NOTIFIED, 0, Ordering::AcqRel, Ordering::Acquire).is_ok();
        if taken {
            self.shared.notified.fetch_sub(1, Ordering::AcqRel);
        }
        taken
    }

    /// Marks the task gone: later wakes do nothing.
    pub(super) fn retire(&self) {
        if self.state.swap(DEAD, Ordering::AcqRel) == NOTIFIED {
            self.shared.notified.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A read-modify-write even when the bit is already set, so every
        // waker's prior writes are released to the poll that takes the bit.
        if self.state.fetch_or(NOTIFIED, Ordering::AcqRel) != 0 {
            return; // already ready, or gone
        }
        self.shared.notified.fetch_add(1, Ordering::AcqRel);
        self.shared.wakeups.fetch_add(1, Ordering::Relaxed);
        self.shared.enqueue(self.id);
        self.shared.notify();
    }
}
