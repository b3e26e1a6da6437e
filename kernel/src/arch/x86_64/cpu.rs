//! Small CPU primitives: timestamp counter, halting, interrupt masking,
//! control registers.

use x86_64::instructions::{hlt, interrupts};

/// Reads the timestamp counter (invariant TSC on every CPU QEMU models).
#[inline]
pub fn timestamp_counter() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A seed for what must not be predictable from outside (TCP initial
/// sequence numbers, hash keys): RDRAND where the CPU has it, else the
/// timestamp counter mixed (weak, and said so in the log).
pub fn random_seed() -> u64 {
    if let Some(rdrand) = x86_64::instructions::random::RdRand::new()
        && let Some(value) = rdrand.get_u64()
    {
        return value;
    }
    log::warn!("no RDRAND: seeding from the timestamp counter (predictable to a patient attacker)");
    let mut x = timestamp_counter();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 29)
}

/// Runs `f` with maskable interrupts off, restoring the previous state.
#[inline]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Lets maskable interrupts in (once their handlers are installed).
pub fn enable_interrupts() {
    interrupts::enable();
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

/// Enables SSE (and `fxsave`/`fxrstor`) so that threads may carry FPU/SSE
/// state. The kernel itself is built soft-float and never touches it.
pub fn enable_sse() {
    use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
    // SAFETY: clearing EM and setting MP/OSFXSR/OSXMMEXCPT is the documented
    // way to enable SSE; no code relies on them being in another state.
    unsafe {
        Cr0::update(|flags| {
            flags.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            flags.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|flags| flags.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

/// A thread's saved FPU/SSE state (the 512-byte `fxsave` area).
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state of a fresh thread: what `fninit` and the default MXCSR give.
    pub fn initial() -> Self {
        let mut area = [0u8; 512];
        area[0..2].copy_from_slice(&0x037Fu16.to_le_bytes()); // FCW: all exceptions masked
        area[24..28].copy_from_slice(&0x1F80u32.to_le_bytes()); // MXCSR: all masked
        FpuState(area)
    }

    /// Saves this CPU's FPU/SSE registers here.
    pub fn save(&mut self) {
        // SAFETY: the area is 512 bytes, 16-byte aligned, as fxsave requires;
        // SSE was enabled at boot.
        unsafe {
            core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack, preserves_flags))
        };
    }

    /// Loads this state into the CPU's FPU/SSE registers.
    pub fn restore(&self) {
        // SAFETY: the area holds a state written by `save` or `initial`
        // (reserved bits zero), 16-byte aligned.
        unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, preserves_flags))
        };
    }
}
