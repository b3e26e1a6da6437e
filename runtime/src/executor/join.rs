//! Task results: [`JoinHandle`], and the [`JoinCell`] it shares with its task.

use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use super::Cancelled;
use super::state::{self, Core, Node, TaskId};

enum Outcome<T> {
    Running,
    Done(T),
    Cancelled,
    /// The result went to the [`JoinHandle`].
    Taken,
}

/// Where a task leaves its result for its [`JoinHandle`].
pub(super) struct JoinCell<T> {
    outcome: RefCell<Outcome<T>>,
    /// The joiner to wake when the outcome is known.
    waker: Cell<Option<Waker>>,
}

/// The executor's untyped view of a [`JoinCell`].
pub(super) trait Completion {
    /// Records that the task was cancelled and dropped, unless it completed;
    /// returns the joiner to wake.
    fn cancel(&self) -> Option<Waker>;
}

impl<T> JoinCell<T> {
    pub(super) fn new() -> Self {
        Self { outcome: RefCell::new(Outcome::Running), waker: Cell::new(None) }
    }

    /// Called by the task with its output.
    pub(super) fn complete(&self, value: T) {
        *self.outcome.borrow_mut() = Outcome::Done(value);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn is_running(&self) -> bool {
        matches!(*self.outcome.borrow(), Outcome::Running)
    }
}

impl<T> Completion for JoinCell<T> {
    fn cancel(&self) -> Option<Waker> {
        let mut outcome = self.outcome.borrow_mut();
        if !matches!(*outcome, Outcome::Running) {
            return None;
        }
        *outcome = Outcome::Cancelled;
        self.waker.take()
    }
}

/// Awaits a task's output: `Ok(output)`, or `Err(Cancelled)` once a cancelled
/// task has been dropped. Dropping the handle detaches the task, which keeps
/// running. Like any future, it must not be polled again after it completed
/// (it would then stay pending).
#[must_use = "dropping a JoinHandle detaches the task"]
pub struct JoinHandle<T> {
    id: TaskId,
    cell: Rc<JoinCell<T>>,
    core: Rc<RefCell<Core>>,
}

impl<T> JoinHandle<T> {
    pub(super) fn new(id: TaskId, cell: Rc<JoinCell<T>>, core: Rc<RefCell<Core>>) -> Self {
        Self { id, cell, core }
    }

    /// The task's identity.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Cancels the task (and the scopes it created): it is not polled again and
    /// is dropped in the close phase of this turn (of the next, if called
    /// between turns). No effect once it has completed.
    pub fn abort(&self) {
        if self.cell.is_running() {
            state::cancel(&self.core, Node::Task(self.id));
        }
    }

    /// Whether the task has completed, or been cancelled and dropped.
    pub fn is_finished(&self) -> bool {
        !self.cell.is_running()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = self.cell.outcome.replace(Outcome::Taken);
        match outcome {
            Outcome::Done(value) => Poll::Ready(Ok(value)),
            Outcome::Cancelled => Poll::Ready(Err(Cancelled)),
            Outcome::Taken => Poll::Pending,
            Outcome::Running => {
                *self.cell.outcome.borrow_mut() = Outcome::Running;
                self.cell.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).field("finished", &self.is_finished()).finish()
    }
}
