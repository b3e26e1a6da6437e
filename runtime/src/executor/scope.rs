//! Structured concurrency: [`Scope`] and its [`JoinAll`] future.
//!
//! The executor keeps the ownership tree: a scope's tasks, and for each task
//! the scopes it created. Cancelling walks the tree, so it reaches
//! grandchildren at once, wherever the nested [`Scope`] values are.

use alloc::rc::Rc;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::SpawnError;
use super::join::JoinHandle;
use super::state::{self, Core, Node, ScopeId};

/// A group of tasks cancelled together. Dropping it cancels every task still
/// running in it (and what those tasks own); the tasks are dropped in the
/// close phase. Made by [`Handle::scope`](super::Handle::scope).
#[must_use = "dropping a Scope cancels its tasks"]
pub struct Scope {
    core: Rc<RefCell<Core>>,
    id: ScopeId,
}

impl Scope {
    pub(super) fn new(core: Rc<RefCell<Core>>, id: ScopeId) -> Self {
        Self { core, id }
    }

    /// Spawns a task in this scope; fails with [`SpawnError::ScopeCancelled`]
    /// once the scope is cancelled.
    pub fn spawn<F>(&self, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        state::spawn(&self.core, Some(self.id), future)
    }

    /// Cancels every task still running in the scope, and the scopes they
    /// created, down the tree. Final: later spawns fail.
    pub fn cancel(&self) {
        state::cancel(&self.core, Node::Scope(self.id));
    }

    pub fn is_cancelled(&self) -> bool {
        self.core.borrow().scope_is_cancelled(self.id)
    }

    /// Tasks of this scope not yet dropped (cancelled ones count until the
    /// close phase drops them).
    pub fn len(&self) -> usize {
        self.core.borrow().scope_len(self.id)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A future that completes once every task of this scope (spawned before
    /// or while it waits) has completed or been cancelled and dropped.
    pub fn join_all(&self) -> JoinAll<'_> {
        JoinAll { scope: self }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        state::cancel(&self.core, Node::Scope(self.id));
        let wakers = self.core.borrow_mut().remove_scope(self.id);
        drop(wakers); // outside the borrow: foreign code
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").field("len", &self.len()).field("cancelled", &self.is_cancelled()).finish()
    }
}

/// The future of [`Scope::join_all`].
#[must_use = "futures do nothing unless polled"]
pub struct JoinAll<'a> {
    scope: &'a Scope,
}

impl Future for JoinAll<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let empty = self.scope.core.borrow_mut().poll_scope_empty(self.scope.id, cx.waker());
        if empty { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl fmt::Debug for JoinAll<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinAll").field("scope", self.scope).finish()
    }
}
