//! Time-based futures: [`Sleep`], [`Timeout`], and [`yield_now`].
//!
//! Time is the executor's `now`, which only moves at the start of a turn; a
//! timer entry exists while a [`Sleep`] waits and is removed when it fires or
//! the `Sleep` is dropped.

use alloc::boxed::Box;
use alloc::rc::Rc;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::Elapsed;
use super::state::{Core, TimerKey};

/// Completes in the first turn whose `now` reaches its deadline. Made by
/// [`Handle::sleep`](super::Handle::sleep) and
/// [`Handle::sleep_until`](super::Handle::sleep_until).
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    core: Rc<RefCell<Core>>,
    deadline: u64,
    /// Its entry in the timer map, once polled.
    key: Option<TimerKey>,
}

impl Sleep {
    pub(super) fn new(core: Rc<RefCell<Core>>, deadline: u64) -> Self {
        Self { core, deadline, key: None }
    }

    /// The deadline, in the executor's nanoseconds.
    pub fn deadline_ns(&self) -> u64 {
        self.deadline
    }

    /// Removes its timer entry, if any.
    fn disarm(&mut self) {
        if let Some(key) = self.key.take() {
            let waker = self.core.borrow_mut().remove_timer(key);
            drop(waker); // outside the borrow: foreign code
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut core = self.core.borrow_mut();
        if core.now() >= self.deadline {
            drop(core);
            self.disarm();
            return Poll::Ready(());
        }
        let (key, replaced) = core.set_timer(self.key, self.deadline, cx.waker());
        drop(core);
        self.key = Some(key);
        drop(replaced);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline_ns", &self.deadline).finish()
    }
}

/// Runs a future against a deadline: `Ok(output)` if it completes first,
/// otherwise `Err(Elapsed)` with the future already dropped. If both happen
/// in the same turn, the output wins. Made by
/// [`Handle::timeout`](super::Handle::timeout).
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    sleep: Sleep,
    /// Boxed to pin it without `unsafe`; `None` once resolved.
    future: Option<Pin<Box<F>>>,
}

impl<F: Future> Timeout<F> {
    pub(super) fn new(sleep: Sleep, future: F) -> Self {
        Self { sleep, future: Some(Box::pin(future)) }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(future) = this.future.as_mut() else { return Poll::Pending };
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            this.future = None;
            this.sleep.disarm();
            return Poll::Ready(Ok(output));
        }
        if Pin::new(&mut this.sleep).poll(cx).is_ready() {
            this.future = None;
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("deadline_ns", &self.sleep.deadline).finish()
    }
}

/// Gives way once: the task is woken at once but polled again only in the
/// next turn (see the module docs on fairness).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
