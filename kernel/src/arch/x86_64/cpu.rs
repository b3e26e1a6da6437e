//! Small CPU primitives: timestamp counter, halting, interrupt masking,
//! control registers.

use x86_64::instructions::{hlt, interrupts};

/// Reads the timestamp counter (invariant TSC on every CPU QEMU models).
#[inline]
pub fn timestamp_counter() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Runs `f` with maskable interrupts off, restoring the previous state.
#[inline]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Halts until the next interrupt, forever. The idle state of a CPU.
pub fn idle_forever() -> ! {
    loop {
        interrupts::enable_and_hlt();
    }
}

/// Stops this CPU for good (interrupts off): the last resort after QEMU's
/// exit device failed to end the run.
pub fn halt_forever() -> ! {
    loop {
        interrupts::disable();
        hlt();
    }
}

/// The faulting linear address of the last page fault.
pub fn page_fault_address() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// The current frame pointer, the start of a stack walk.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reading RBP has no side effects.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The address of the caller's next instruction.
#[inline(always)]
pub fn instruction_pointer() -> u64 {
    let rip: u64;
    // SAFETY: LEA of RIP reads no memory.
    unsafe { core::arch::asm!("lea {}, [rip]", out(reg) rip, options(nomem, nostack, preserves_flags)) };
    rip
}
