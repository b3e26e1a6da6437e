//! The event loop: a single-threaded async executor in the Node/libuv reactor
//! model. Owns [`Executor`] (the loop), [`Handle`] (spawning, timers and
//! scopes from inside tasks), [`JoinHandle`], [`Scope`], the timer futures
//! [`Sleep`] and [`Timeout`], and their errors.
//!
//! The executor never blocks, never reads a clock and never parks. The host
//! (one kernel thread) calls [`Executor::turn`] with the current monotonic
//! time, then parks until [`Turn::next_timer_ns`] or until the `notify`
//! callback given to [`Executor::new`] unparks it. Tasks are `!Send` futures
//! and live on the loop thread; only their [`Waker`](core::task::Waker)s may
//! cross threads.
//!
//! # The turn
//!
//! Each [`Executor::turn`] runs four phases, in this order:
//!
//! 1. **Timers**: every [`Sleep`] (and [`Timeout`]) whose deadline is at or
//!    before `now` wakes its task.
//! 2. **Poll I/O**: the host's `io(now)` hook runs once; it polls the network
//!    stack, whose wakers make socket tasks ready.
//! 3. **Run ready tasks**: every task that is ready when this phase starts is
//!    polled at most once, in the order it became ready.
//! 4. **Close**: cancelled and completed tasks are dropped, the join handles
//!    of cancelled tasks resolve to `Err(Cancelled)`, then the close callbacks
//!    registered before this phase ([`Handle::on_close`]) run.
//!
//! So a task sleeping until `t` runs in the first turn whose `now >= t`, and
//! it runs after that turn's I/O poll.
//!
//! # Fairness
//!
//! Phase 3 works on a snapshot: a task woken while phase 3 runs (by itself, by
//! another task, or by a spawn) is polled in the next turn, never in this one.
//! A turn therefore polls each task at most once and always ends, so a task
//! that wakes itself forever gets one poll per turn and cannot starve other
//! ready tasks, timers or the I/O hook. [`Turn::more_ready`] tells the host to
//! turn again before parking.
//!
//! # Cancellation
//!
//! [`JoinHandle::abort`], [`Scope::cancel`] and dropping a [`Scope`] only mark
//! tasks: a cancelled task is never polled again, and its future is dropped
//! (running its destructors, e.g. closing sockets) in the close phase of the
//! turn in which it was cancelled, or of the next turn if cancelled between
//! turns; never while it is being polled. Only after that drop does its
//! [`JoinHandle`] resolve to `Err(Cancelled)`, so a joiner that sees the error
//! knows the task's resources are released. A task that completes in the same
//! poll that cancels it has completed: its handle yields `Ok`.
//!
//! Scopes make cancellation structured: cancelling a scope cancels its tasks
//! and, through them, every scope those tasks created and their tasks, down the
//! whole tree, at once (not only when the nested [`Scope`] values get dropped).
//! A task spawned with [`Handle::spawn`] belongs to no scope (it is detached
//! from whoever spawned it) but still owns the scopes it creates.
//!
//! # Threads
//!
//! Waking is the only operation that may happen on another thread (kernel
//! threads, the interrupt path). A waker flips its task's atomic "notified"
//! flag, which is the truth about readiness, and appends the task to the ready
//! queue as an ordering hint with `try_lock` into preallocated room: it never
//! spins and never allocates, so it cannot deadlock against the loop thread it
//! interrupted. When the queue is busy or full it sets a flag that makes the
//! next phase 3 scan every task's flag instead. The loop thread takes the
//! queue with `try_lock` too, under the same fallback. Each wakeup of an idle
//! task calls `notify` once.
//!
//! # Time
//!
//! `now` is monotonic: a turn given an earlier time than the previous turn
//! keeps the previous `now`. Deadlines saturate at `u64::MAX`.
//!
//! # Resource bounds
//!
//! [`Limits::max_tasks`] bounds the tasks alive; a task holds its slot until it
//! is dropped in a close phase. Timers cost one map entry per pending
//! [`Sleep`], removed when it fires or is dropped. The ready queue is
//! preallocated and never grows.

mod join;
mod scope;
mod state;
mod timer;
mod waker;

#[cfg(test)]
mod tests;

use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::task::{Context, Waker};

use state::{Core, TaskFuture};
use waker::Shared;

pub use join::JoinHandle;
pub use scope::{JoinAll, Scope};
pub use state::{Handle, TaskId};
pub use timer::{Sleep, Timeout, YieldNow, yield_now};

/// Resource bounds of an [`Executor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most tasks alive at once; spawning beyond fails with
    /// [`SpawnError::TooManyTasks`].
    pub max_tasks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_tasks: 1024 }
    }
}

/// What one [`Executor::turn`] did, and what the host should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Turn {
    /// Tasks polled in phase 3.
    pub ran: usize,
    /// Work is already due (tasks woken during the turn, close callbacks
    /// registered during the close phase): turn again before parking.
    pub more_ready: bool,
    /// The earliest pending timer deadline: park at most until then.
    pub next_timer_ns: Option<u64>,
}

/// Counters of an [`Executor`], for observability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutorStats {
    /// Tasks holding a slot (including those waiting to be dropped).
    pub tasks_alive: usize,
    /// Tasks ever spawned.
    pub tasks_spawned: u64,
    /// Tasks ever cancelled.
    pub tasks_cancelled: u64,
    /// Task polls ever made.
    pub polls: u64,
    /// Wakeups that made an idle task ready (repeated wakes of a task already
    /// ready count once).
    pub wakeups: u64,
    /// [`Sleep`]s waiting for their deadline.
    pub timers_pending: usize,
    /// Tasks ready to be polled now.
    pub ready: usize,
    /// Turns run.
    pub turns: u64,
}

/// Why spawning failed; the future was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// [`Limits::max_tasks`] tasks are alive.
    TooManyTasks,
    /// The [`Scope`] has been cancelled.
    ScopeCancelled,
    /// The [`Executor`] is being dropped.
    ShutDown,
}

/// The task was cancelled before it completed; its future has been dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

/// The deadline of a [`Timeout`] passed first; the inner future was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

/// The event loop. Not `Send`: it lives on the thread that calls
/// [`turn`](Self::turn). Dropping it drops every task (their join handles
/// resolve to `Err(Cancelled)`) and every pending timer and close callback.
pub struct Executor {
    core: Rc<RefCell<Core>>,
    shared: Arc<Shared>,
    /// Phase 3's snapshot, kept to reuse its allocation.
    batch: Vec<TaskId>,
    /// The future being polled, and its waker. Kept here, not in locals,
    /// so that if the poll never returns — the thread died of a CPU fault
    /// in it and its supervisor drops the executor — they and all they own
    /// are still dropped with the executor.
    in_flight: Option<(TaskFuture, Waker)>,
}

impl Executor {
    /// An executor with no tasks and `now = 0`. `notify` is called whenever a
    /// waker makes an idle task ready (and when tasks are spawned or cancelled
    /// between turns), so the host can unpark the loop thread; it may be called
    /// from any thread, interrupt context included, and must be cheap.
    pub fn new(limits: Limits, notify: Arc<dyn Fn() + Send + Sync>) -> Self {
        let shared = Arc::new(Shared::new(limits.max_tasks, notify));
        let core = Rc::new(RefCell::new(Core::new(limits, Arc::clone(&shared))));
        Self { core, shared, batch: Vec::new(), in_flight: None }
    }

    /// A handle for spawning tasks, sleeping and making scopes.
    pub fn handle(&self) -> Handle {
        Handle::new(Rc::clone(&self.core))
    }

    /// Runs one turn at time `now_ns`: timers, `io(now)`, ready tasks, close
    /// (see the module docs). Never blocks.
    pub fn turn(&mut self, now_ns: u64, io: &mut dyn FnMut(u64)) -> Turn {
        let now = self.core.borrow_mut().begin_turn(now_ns);

        // Phase 1: timers. Woken outside the borrow: a waker is foreign code.
        let due = self.core.borrow_mut().take_due_timers();
        due.into_values().for_each(|waker| waker.wake());

        // Phase 2: I/O.
        io(now);

        // Phase 3: the tasks ready now, each polled once.
        let ran = self.run_ready();

        // Phase 4: close.
        self.close_phase();

        let mut core = self.core.borrow_mut();
        core.end_turn();
        Turn {
            ran,
            more_ready: self.shared.ready_count() > 0 || core.has_close_work(),
            next_timer_ns: core.next_timer(),
        }
    }

    /// Whether dropping the executor now is sound: `false` only if a thread
    /// died inside one of the executor's own operations, holding its state
    /// (a task dying in its poll leaves it droppable).
    pub fn can_drop(&self) -> bool {
        self.core.try_borrow_mut().is_ok()
    }

    /// The executor's counters now.
    pub fn stats(&self) -> ExecutorStats {
        let core = self.core.borrow();
        let mut stats = core.stats();
        stats.wakeups = self.shared.wakeups();
        stats.ready = self.shared.ready_count();
        stats
    }

    fn run_ready(&mut self) -> usize {
        self.core.borrow_mut().take_ready(&mut self.batch);
        let mut ran = 0;
        for &id in &self.batch {
            // The future leaves the core while polled: it may spawn, sleep or
            // cancel, all of which need the core.
            let Some(polled) = self.core.borrow_mut().start_poll(id) else { continue };
            let (future, waker) = self.in_flight.insert(polled);
            let done = future.as_mut().poll(&mut Context::from_waker(waker)).is_ready();
            let (future, _) = self.in_flight.take().expect("put there just now");
            self.core.borrow_mut().finish_poll(id, future, done);
            ran += 1;
        }
        ran
    }

    fn close_phase(&mut self) {
        // Callbacks registered during this phase (e.g. by destructors) wait for
        // the next turn, so a callback that registers itself cannot spin here.
        let mut callbacks = Some(self.core.borrow_mut().take_close_callbacks());
        loop {
            let closed = self.core.borrow_mut().remove_closing();
            if !closed.is_empty() {
                // Dropping a future may cancel more tasks (its scopes): loop.
                closed.finish();
            } else if let Some(callbacks) = callbacks.take() {
                callbacks.into_iter().for_each(|callback| callback());
            } else {
                break;
            }
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Left only by a poll that never returned (see `in_flight`).
        drop(self.in_flight.take());
        self.core.borrow_mut().shut_down();
        // Dropping futures may cancel or (vainly) spawn more; repeat until empty.
        loop {
            let closed = {
                let mut core = self.core.borrow_mut();
                core.cancel_all();
                core.remove_closing()
            };
            if closed.is_empty() {
                break;
            }
            closed.finish();
        }
        // Timers and callbacks hold wakers and closures: foreign code, dropped
        // outside the borrow.
        let leftovers = self.core.borrow_mut().take_leftovers();
        drop(leftovers);
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor").field("stats", &self.stats()).finish()
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooManyTasks => "too many tasks",
            Self::ScopeCancelled => "spawning in a cancelled scope",
            Self::ShutDown => "the executor is shutting down",
        })
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task cancelled")
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl core::error::Error for SpawnError {}
impl core::error::Error for Cancelled {}
impl core::error::Error for Elapsed {}
