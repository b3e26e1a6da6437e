//! The loop thread's state: tasks, timers, scopes and the close list, plus the
//! [`Handle`] that reaches it from inside tasks. Owns [`Core`].
//!
//! `Core` sits in a `RefCell` shared by the executor and every handle. Its
//! borrows are short and never span foreign code (polls, drops of futures,
//! wakers or closures, wakes): such values are moved out and dealt with after
//! the borrow ends, so foreign code can always use a [`Handle`].

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::Waker;
use core::time::Duration;

use super::join::{Completion, JoinCell, JoinHandle};
use super::scope::Scope;
use super::timer::{Sleep, Timeout};
use super::waker::{Shared, TaskWaker};
use super::{ExecutorStats, Limits, SpawnError};

pub(super) type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;
pub(super) type CloseCallback = Box<dyn FnOnce()>;
/// Timers ordered by deadline, then by creation (`seq` keeps keys unique).
pub(super) type TimerKey = (u64, u64);

/// A task's identity; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(u64);

/// A scope's identity; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ScopeId(u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// May be polled.
    Live,
    /// Cancelled; listed in `closing`, never polled again.
    Cancelling,
    /// Its future returned `Ready`; listed in `closing`.
    Finished,
}

struct Task {
    /// `None` only while the task is being polled.
    future: Option<TaskFuture>,
    waker: Waker,
    wake_state: Arc<TaskWaker>,
    completion: Rc<dyn Completion>,
    /// The scope it was spawned in, if any.
    scope: Option<ScopeId>,
    /// The scopes it created: cancelling it cancels them.
    owned_scopes: Vec<ScopeId>,
    status: Status,
}

struct ScopeState {
    /// The task that created the scope, while that task is alive.
    owner: Option<TaskId>,
    /// Its tasks still alive.
    tasks: BTreeSet<TaskId>,
    cancelled: bool,
    /// [`JoinAll`](super::JoinAll)s waiting for `tasks` to empty.
    join_wakers: Vec<Waker>,
}

/// What to cancel: a task (and the scopes it owns) or a scope (and its tasks).
#[derive(Clone, Copy)]
pub(super) enum Node {
    Task(TaskId),
    Scope(ScopeId),
}

/// Tasks removed in a close phase, to be dropped outside the borrow.
pub(super) struct Closed {
    tasks: Vec<(Option<TaskFuture>, Rc<dyn Completion>)>,
    join_wakers: Vec<Waker>,
}

impl Closed {
    pub(super) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Drops the futures, then resolves the cancelled tasks' join handles and
    /// wakes the scopes' joiners: whoever learns that a task is gone can rely
    /// on its destructors having run.
    pub(super) fn finish(self) {
        let mut wakers = self.join_wakers;
        for (future, completion) in self.tasks {
            drop(future);
            wakers.extend(completion.cancel());
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

pub(super) struct Core {
    limits: Limits,
    shared: Arc<Shared>,
    now: u64,
    in_turn: bool,
    shut_down: bool,
    /// The task being polled.
    current: Option<TaskId>,
    next_id: u64,
    tasks: BTreeMap<TaskId, Task>,
    /// Cancelled or finished tasks, dropped in the next close phase.
    closing: Vec<TaskId>,
    timers: BTreeMap<TimerKey, Waker>,
    scopes: BTreeMap<ScopeId, ScopeState>,
    close_callbacks: Vec<CloseCallback>,
    stats: ExecutorStats,
}

impl Core {
    pub(super) fn new(limits: Limits, shared: Arc<Shared>) -> Self {
        Self {
            limits,
            shared,
            now: 0,
            in_turn: false,
            shut_down: false,
            current: None,
            next_id: 0,
            tasks: BTreeMap::new(),
            closing: Vec::new(),
            timers: BTreeMap::new(),
            scopes: BTreeMap::new(),
            close_callbacks: Vec::new(),
            stats: ExecutorStats::default(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn now(&self) -> u64 {
        self.now
    }

    /// Starts a turn; returns its `now` (never earlier than the last one).
    pub(super) fn begin_turn(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.in_turn = true;
        self.stats.turns += 1;
        self.now
    }

    pub(super) fn end_turn(&mut self) {
        self.in_turn = false;
    }

    /// Spawns and cancellations between turns must unpark the loop thread
    /// (not while it is dropping the executor).
    fn needs_notify(&self) -> bool {
        !self.in_turn && !self.shut_down
    }

    pub(super) fn stats(&self) -> ExecutorStats {
        ExecutorStats { tasks_alive: self.tasks.len(), timers_pending: self.timers.len(), ..self.stats }
    }

    // --- Tasks ---

    fn check_spawn(&self, scope: Option<ScopeId>) -> Result<(), SpawnError> {
        if self.shut_down {
            Err(SpawnError::ShutDown)
        } else if scope.is_some_and(|scope| self.scopes.get(&scope).is_none_or(|state| state.cancelled)) {
            Err(SpawnError::ScopeCancelled)
        } else if self.tasks.len() >= self.limits.max_tasks {
            Err(SpawnError::TooManyTasks)
        } else {
            Ok(())
        }
    }

    fn insert_task(
        &mut self,
        future: TaskFuture,
        completion: Rc<dyn Completion>,
        scope: Option<ScopeId>,
    ) -> TaskId {
        let id = TaskId(self.next_id());
        let wake_state = TaskWaker::new_ready(id, Arc::clone(&self.shared));
        let waker = Waker::from(Arc::clone(&wake_state));
        let task = Task {
            future: Some(future),
            waker,
            wake_state,
            completion,
            scope,
            owned_scopes: Vec::new(),
            status: Status::Live,
        };
        self.tasks.insert(id, task);
        if let Some(state) = scope.and_then(|scope| self.scopes.get_mut(&scope)) {
            state.tasks.insert(id);
        }
        self.stats.tasks_spawned += 1;
        id
    }

    /// Fills `batch` with the tasks to poll in this phase 3, taking their
    /// readiness: wakes from now on are for the next turn.
    pub(super) fn take_ready(&mut self, batch: &mut Vec<TaskId>) {
        batch.clear();
        if self.shared.drain_into(batch) {
            batch.extend(self.tasks.keys());
        }
        let tasks = &self.tasks;
        // `take_notified` succeeds once per wake, which also drops duplicates.
        batch.retain(|id| {
            tasks.get(id).is_some_and(|task| task.wake_state.take_notified() && task.status == Status::Live)
        });
    }

    /// Takes a ready task's future (and a waker for it) out for polling.
    pub(super) fn start_poll(&mut self, id: TaskId) -> Option<(TaskFuture, Waker)> {
        // An earlier task of this phase may have cancelled it.
        let task = self.tasks.get_mut(&id).filter(|task| task.status == Status::Live)?;
        let future = task.future.take()?;
        self.current = Some(id);
        self.stats.polls += 1;
        Some((future, task.waker.clone()))
    }

    pub(super) fn finish_poll(&mut self, id: TaskId, future: TaskFuture, done: bool) {
        self.current = None;
        let Some(task) = self.tasks.get_mut(&id) else { return };
        task.future = Some(future);
        if done && task.status == Status::Live {
            task.status = Status::Finished;
            self.closing.push(id);
        }
    }

    /// Cancels `root` and everything below it: a task's owned scopes, a
    /// scope's tasks. Returns whether anything was newly cancelled.
    pub(super) fn cancel(&mut self, root: Node) -> bool {
        let mut work = alloc::vec![root];
        let mut any = false;
        while let Some(node) = work.pop() {
            match node {
                Node::Task(id) => {
                    if let Some(task) = self.tasks.get_mut(&id)
                        && task.status == Status::Live
                    {
                        task.status = Status::Cancelling;
                        self.closing.push(id);
                        self.stats.tasks_cancelled += 1;
                        any = true;
                        work.extend(task.owned_scopes.iter().copied().map(Node::Scope));
                    }
                }
                Node::Scope(id) => {
                    if let Some(scope) = self.scopes.get_mut(&id)
                        && !scope.cancelled
                    {
                        scope.cancelled = true;
                        work.extend(scope.tasks.iter().copied().map(Node::Task));
                    }
                }
            }
        }
        any
    }

    /// Removes the tasks listed for closing (whose futures the caller drops).
    pub(super) fn remove_closing(&mut self) -> Closed {
        let mut closed = Closed { tasks: Vec::new(), join_wakers: Vec::new() };
        for id in core::mem::take(&mut self.closing) {
            let Some(task) = self.tasks.remove(&id) else { continue };
            task.wake_state.retire();
            if let Some(scope) = task.scope.and_then(|scope| self.scopes.get_mut(&scope)) {
                scope.tasks.remove(&id);
                if scope.tasks.is_empty() {
                    closed.join_wakers.append(&mut scope.join_wakers);
                }
            }
            for scope in &task.owned_scopes {
                if let Some(scope) = self.scopes.get_mut(scope) {
                    scope.owner = None;
                }
            }
            closed.tasks.push((task.future, task.completion));
        }
        closed
    }

    // --- Shutdown ---

    pub(super) fn shut_down(&mut self) {
        self.shut_down = true;
    }

    pub(super) fn cancel_all(&mut self) {
        let live: Vec<TaskId> =
            self.tasks.iter().filter(|(_, task)| task.status == Status::Live).map(|(&id, _)| id).collect();
        for id in live {
            self.cancel(Node::Task(id));
        }
    }

    /// Everything still holding foreign values once the tasks are gone.
    pub(super) fn take_leftovers(&mut self) -> (BTreeMap<TimerKey, Waker>, Vec<CloseCallback>) {
        (core::mem::take(&mut self.timers), core::mem::take(&mut self.close_callbacks))
    }

    // --- Close callbacks ---

    pub(super) fn take_close_callbacks(&mut self) -> Vec<CloseCallback> {
        core::mem::take(&mut self.close_callbacks)
    }

    /// Work that makes another turn due at once.
    pub(super) fn has_close_work(&self) -> bool {
        !self.closing.is_empty() || !self.close_callbacks.is_empty()
    }

    // --- Timers ---

    /// Removes and returns the timers due at `now`.
    pub(super) fn take_due_timers(&mut self) -> BTreeMap<TimerKey, Waker> {
        match self.now.checked_add(1) {
            Some(after) => {
                let later = self.timers.split_off(&(after, 0));
                core::mem::replace(&mut self.timers, later)
            }
            None => core::mem::take(&mut self.timers),
        }
    }

    pub(super) fn next_timer(&self) -> Option<u64> {
        self.timers.first_key_value().map(|(&(deadline, _), _)| deadline)
    }

    /// Registers (or updates) the timer `key` for `deadline`; returns its key
    /// and the waker it replaced, for dropping outside the borrow.
    pub(super) fn set_timer(
        &mut self,
        key: Option<TimerKey>,
        deadline: u64,
        waker: &Waker,
    ) -> (TimerKey, Option<Waker>) {
        if let Some(key) = key
            && let Some(slot) = self.timers.get_mut(&key)
        {
            if slot.will_wake(waker) {
                return (key, None);
            }
            return (key, Some(core::mem::replace(slot, waker.clone())));
        }
        let key = (deadline, self.next_id());
        self.timers.insert(key, waker.clone());
        (key, None)
    }

    pub(super) fn remove_timer(&mut self, key: TimerKey) -> Option<Waker> {
        self.timers.remove(&key)
    }

    // --- Scopes ---

    /// A new scope, owned by the task being polled (if any). Born cancelled if
    /// that task already is.
    fn new_scope(&mut self) -> ScopeId {
        let id = ScopeId(self.next_id());
        let owner = self.current.and_then(|current| self.tasks.get_mut(&current).map(|task| (current, task)));
        let (owner, cancelled) = match owner {
            Some((owner, task)) => {
                task.owned_scopes.push(id);
                (Some(owner), task.status != Status::Live)
            }
            None => (None, false),
        };
        let state = ScopeState { owner, tasks: BTreeSet::new(), cancelled, join_wakers: Vec::new() };
        self.scopes.insert(id, state);
        id
    }

    /// Forgets a dropped scope (after cancelling it); returns its joiners'
    /// wakers for dropping outside the borrow.
    pub(super) fn remove_scope(&mut self, id: ScopeId) -> Vec<Waker> {
        let Some(state) = self.scopes.remove(&id) else { return Vec::new() };
        if let Some(owner) = state.owner.and_then(|owner| self.tasks.get_mut(&owner)) {
            owner.owned_scopes.retain(|&scope| scope != id);
        }
        state.join_wakers
    }

    pub(super) fn scope_is_cancelled(&self, id: ScopeId) -> bool {
        self.scopes.get(&id).is_none_or(|state| state.cancelled)
    }

    pub(super) fn scope_len(&self, id: ScopeId) -> usize {
        self.scopes.get(&id).map_or(0, |state| state.tasks.len())
    }

    /// Whether the scope's tasks are all gone; if not, `waker` will be woken
    /// when they are.
    pub(super) fn poll_scope_empty(&mut self, id: ScopeId, waker: &Waker) -> bool {
        let Some(state) = self.scopes.get_mut(&id) else { return true };
        if state.tasks.is_empty() {
            return true;
        }
        if !state.join_wakers.iter().any(|known| known.will_wake(waker)) {
            state.join_wakers.push(waker.clone());
        }
        false
    }
}

/// A cloneable handle to an [`Executor`](super::Executor), for use inside its
/// tasks (or by the host on the loop thread): spawning, timers, scopes. Not
/// `Send`. It stays usable after the executor is dropped, but spawning then
/// fails with [`SpawnError::ShutDown`] and timers never fire.
#[derive(Clone)]
pub struct Handle {
    core: Rc<RefCell<Core>>,
}

impl Handle {
    pub(super) fn new(core: Rc<RefCell<Core>>) -> Self {
        Self { core }
    }

    /// Spawns a detached task (in no scope), ready to run in the next phase 3
    /// (the next turn's, if spawned during phase 3 or the close phase).
    pub fn spawn<F>(&self, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn(&self.core, None, future)
    }

    /// A future that completes in the first turn whose `now` is at least
    /// [`now_ns`](Self::now_ns)` + duration`.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now_ns().saturating_add(duration_ns(duration)))
    }

    /// A future that completes in the first turn whose `now >= deadline_ns`.
    pub fn sleep_until(&self, deadline_ns: u64) -> Sleep {
        Sleep::new(Rc::clone(&self.core), deadline_ns)
    }

    /// Runs `future` for at most `duration`: `Err(Elapsed)` (with `future`
    /// dropped) if it has not completed by then.
    pub fn timeout<F: Future>(&self, duration: Duration, future: F) -> Timeout<F> {
        Timeout::new(self.sleep(duration), future)
    }

    /// [`timeout`](Self::timeout) with an absolute deadline.
    pub fn timeout_at<F: Future>(&self, deadline_ns: u64, future: F) -> Timeout<F> {
        Timeout::new(self.sleep_until(deadline_ns), future)
    }

    /// The `now` of the current (or last) turn.
    pub fn now_ns(&self) -> u64 {
        self.core.borrow().now()
    }

    /// A new scope. Created inside a task, it belongs to that task: cancelling
    /// the task (or a scope the task is in) cancels the scope's tasks too.
    pub fn scope(&self) -> Scope {
        let id = self.core.borrow_mut().new_scope();
        Scope::new(Rc::clone(&self.core), id)
    }

    /// Runs `callback` in the next close phase, after that phase has dropped
    /// its closed tasks (libuv's close callbacks). Dropped unrun if the
    /// executor is dropped first.
    pub fn on_close(&self, callback: impl FnOnce() + 'static) {
        self.core.borrow_mut().close_callbacks.push(Box::new(callback));
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("now_ns", &self.now_ns()).finish()
    }
}

/// Spawns `future` into `scope` (or detached).
pub(super) fn spawn<F>(
    core: &Rc<RefCell<Core>>,
    scope: Option<ScopeId>,
    future: F,
) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let mut state = core.borrow_mut();
    if let Err(error) = state.check_spawn(scope) {
        // Release the borrow before `future` is dropped: its destructor is
        // foreign code and may use a handle.
        drop(state);
        return Err(error);
    }
    let cell = Rc::new(JoinCell::new());
    let output = Rc::clone(&cell);
    let task: TaskFuture = Box::pin(async move { output.complete(future.await) });
    let id = state.insert_task(task, Rc::clone(&cell) as Rc<dyn Completion>, scope);
    let notify = state.needs_notify();
    let shared = Arc::clone(&state.shared);
    drop(state);
    if notify {
        shared.notify();
    }
    Ok(JoinHandle::new(id, cell, Rc::clone(core)))
}

/// Cancels `node`; between turns, also wakes the loop thread to close it.
pub(super) fn cancel(core: &Rc<RefCell<Core>>, node: Node) {
    let mut state = core.borrow_mut();
    if state.cancel(node) && state.needs_notify() {
        let shared = Arc::clone(&state.shared);
        drop(state);
        shared.notify();
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
