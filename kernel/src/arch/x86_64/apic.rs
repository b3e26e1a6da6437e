//! The local APIC (xAPIC, memory-mapped): end-of-interrupt, and the timer in
//! one-shot mode, which is all a tickless scheduler needs — it programs the
//! next deadline each time instead of taking a periodic tick. The timer is
//! calibrated against the TSC (itself calibrated against the PIT).
//!
//! (QEMU 7.2's TCG has neither x2APIC nor the TSC-deadline mode, so the
//! memory-mapped one-shot timer is the portable choice.)

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use super::cpu::timestamp_counter;
use super::paging;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;

const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xB0;
const REG_SPURIOUS: usize = 0xF0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0b0011;

static BASE: AtomicU64 = AtomicU64::new(0);
/// Timer ticks per millisecond (after the divider).
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

fn read(register: usize) -> u32 {
    // SAFETY: BASE maps the APIC's register page uncached; registers are
    // 32-bit at 16-byte aligned offsets.
    unsafe { read_volatile((BASE.load(Ordering::Relaxed) as usize + register) as *const u32) }
}

fn write(register: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { write_volatile((BASE.load(Ordering::Relaxed) as usize + register) as *mut u32, value) }
}

/// Maps and enables the local APIC at `virt`, spurious interrupts on
/// `spurious_vector`, timer interrupts on `timer_vector`; calibrates the timer
/// against the TSC (`tsc_hz`) and returns its frequency in ticks per
/// millisecond.
pub fn init(
    virt: u64,
    spurious_vector: u8,
    timer_vector: u8,
    tsc_hz: u64,
    allocate_frame: &mut dyn FnMut() -> Option<u64>,
) -> u64 {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting the global
    // enable bit keeps the base address.
    let physical = unsafe {
        let value = msr.read();
        msr.write(value | APIC_GLOBAL_ENABLE);
        value & 0x000f_ffff_ffff_f000
    };
    paging::map_mmio(virt, physical, 1, allocate_frame).expect("mapping the local APIC");
    BASE.store(virt, Ordering::Relaxed);
    write(REG_SPURIOUS, 0x100 | u32::from(spurious_vector));
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, u32::from(timer_vector) | LVT_MASKED);

    // Count down from the maximum for 10 ms of TSC time.
    let window = tsc_hz / 100;
    write(REG_TIMER_INITIAL, u32::MAX);
    let start = timestamp_counter();
    while timestamp_counter() - start < window {
        core::hint::spin_loop();
    }
    let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INITIAL, 0);
    let ticks_per_ms = (u64::from(elapsed) / 10).max(1);
    TICKS_PER_MS.store(ticks_per_ms, Ordering::Relaxed);
    write(REG_LVT_TIMER, u32::from(timer_vector)); // one-shot, unmasked
    ticks_per_ms
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Signals end of interrupt for the interrupt being handled.
pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// Fires the timer interrupt once, `nanos` from now (at least one tick;
/// long delays are capped at the counter's range and simply fire early).
pub fn arm_timer(nanos: u64) {
    let ticks_per_ms = TICKS_PER_MS.load(Ordering::Relaxed);
    let ticks = (u128::from(nanos) * u128::from(ticks_per_ms) / 1_000_000).clamp(1, u128::from(u32::MAX));
    write(REG_TIMER_INITIAL, ticks as u32);
}

/// Cancels a pending timer interrupt.
pub fn disarm_timer() {
    write(REG_TIMER_INITIAL, 0);
}
