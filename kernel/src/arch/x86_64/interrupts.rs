//! Interrupt vectors above the exceptions: the fixed assignments, and the
//! table through which the kernel's upper layers (scheduler, drivers)
//! register what runs for each — so arch code never names them.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::idt::TrapFrame;

/// Vector assignments.
pub mod vector {
    /// Local APIC timer: preemption and sleeping.
    pub const TIMER: u8 = 0x20;
    /// First vector for I/O APIC lines (GSI n → DEVICE_BASE + n).
    pub const DEVICE_BASE: u8 = 0x30;
    /// Software interrupt a thread raises to give up the CPU (`int 0x81`).
    pub const YIELD: u8 = 0x81;
    /// Local APIC spurious interrupts (must end in 0xF on old APICs).
    pub const SPURIOUS: u8 = 0xFF;
}

/// An interrupt handler: gets the interrupted thread's frame, returns the
/// frame to resume (the same, or another thread's).
pub type Handler = fn(&mut TrapFrame) -> *mut TrapFrame;

static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Installs `handler` for `vector` (replacing any earlier one).
pub fn set_handler(vector: u8, handler: Handler) {
    HANDLERS[usize::from(vector)].store(handler as usize, Ordering::Release);
}

/// The handler registered for `vector`.
pub fn handler(vector: u8) -> Option<Handler> {
    let raw = HANDLERS[usize::from(vector)].load(Ordering::Acquire);
    // SAFETY: nonzero entries were stored from a `Handler` in `set_handler`.
    (raw != 0).then(|| unsafe { core::mem::transmute::<usize, Handler>(raw) })
}
