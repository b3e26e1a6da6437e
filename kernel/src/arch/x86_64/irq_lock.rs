//! [`IrqLock`]: the kernel's one lock for data that an interrupt handler
//! may also touch (or that is locked on the way there: the heap, the frame
//! allocator, the page tables, the console, the scheduler, device register
//! windows).
//!
//! It owns a spin lock and the interrupt flag around it. Locking saves the
//! CPU's interrupt flag, disables interrupts and then spins; dropping the
//! guard releases the lock and then restores the saved flag. So while a
//! guard lives no interrupt handler can run on this CPU, and a handler that
//! takes the same lock can never spin on a lock its own CPU holds: that
//! deadlock is excluded by construction, not by every caller remembering
//! `without_interrupts`. Inside an interrupt handler (interrupts already
//! off) the guard saves "off" and restores "off", so it never enables
//! interrupts early.
//!
//! Nesting rule: guards must be dropped in the reverse order of locking
//! (which scoped guards do on their own; beware `drop(outer)` before
//! `inner`). The outermost guard is the one that saved "interrupts on". If
//! it is dropped first, interrupts come back on while the inner lock is
//! still held (an interrupt handler taking that lock then deadlocks), and
//! the inner guard, dropped last, restores the "off" it saved and leaves
//! interrupts disabled after all locks are gone. Debug builds catch this:
//! a guard dropped while interrupts are on panics.
//!
//! A guard is neither `Send` nor `Sync`: the flag it saved belongs to the
//! CPU that locked. Never hold one across `park`, `sleep` or a yield: the
//! next thread would spin, interrupts off, on a lock nobody can release.

use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

use x86_64::instructions::interrupts;

/// A spin lock whose guard keeps interrupts off on this CPU.
pub struct IrqLock<T> {
    inner: spin::Mutex<T>,
}

/// Access to an [`IrqLock`]'s data; interrupts stay off until it drops.
#[must_use = "the lock is released (and interrupts restored) when the guard drops"]
pub struct IrqLockGuard<'a, T> {
    guard: ManuallyDrop<spin::MutexGuard<'a, T>>,
    /// The interrupt flag before locking, restored after unlocking.
    interrupts_were_enabled: bool,
    /// Not `Send`: the saved flag belongs to the CPU that locked.
    _not_send: PhantomData<*mut ()>,
}

impl<T> IrqLock<T> {
    pub const fn new(value: T) -> Self {
        IrqLock { inner: spin::Mutex::new(value) }
    }

    /// Disables interrupts, then spins until the lock is free.
    pub fn lock(&self) -> IrqLockGuard<'_, T> {
        let interrupts_were_enabled = disable_interrupts();
        IrqLockGuard {
            guard: ManuallyDrop::new(self.inner.lock()),
            interrupts_were_enabled,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock if it is free, without waiting (for fault and panic
    /// paths, which must not spin on a lock the faulting context may hold).
    /// On failure the interrupt flag is as it was.
    pub fn try_lock(&self) -> Option<IrqLockGuard<'_, T>> {
        let interrupts_were_enabled = disable_interrupts();
        match self.inner.try_lock() {
            Some(guard) => Some(IrqLockGuard {
                guard: ManuallyDrop::new(guard),
                interrupts_were_enabled,
                _not_send: PhantomData,
            }),
            None => {
                restore_interrupts(interrupts_were_enabled);
                None
            }
        }
    }
}

/// Turns interrupts off; returns whether they were on.
fn disable_interrupts() -> bool {
    let enabled = interrupts::are_enabled();
    if enabled {
        interrupts::disable();
    }
    enabled
}

fn restore_interrupts(enabled: bool) {
    if enabled {
        interrupts::enable();
    }
}

impl<T> Deref for IrqLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for IrqLockGuard<'_, T> {
    fn drop(&mut self) {
        debug_assert!(
            !interrupts::are_enabled(),
            "an IrqLock guard outlived the interrupts-off section it needs: \
             guards dropped out of order, or interrupts enabled while a lock was held"
        );
        // SAFETY: `guard` is dropped here once and never touched again (this
        // is the guard's own drop), so the lock is released exactly once.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        restore_interrupts(self.interrupts_were_enabled);
    }
}
