//! The I/O APIC: routes device interrupt lines (GSIs) to vectors on a CPU.
//! All lines start masked; drivers route the ones they use. QEMU's `pc`
//! machine has one I/O APIC at the standard address with ISA IRQs on GSIs
//! 0–15 identity-mapped (except the timer on GSI 2).

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use super::paging;

/// The I/O APIC's physical address on QEMU `pc`.
pub const PHYSICAL_BASE: u64 = 0xFEC0_0000;

const REG_SELECT: usize = 0x00;
const REG_WINDOW: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;
const MASKED: u32 = 1 << 16;

static BASE: AtomicU64 = AtomicU64::new(0);
static LINES: AtomicU64 = AtomicU64::new(0);

fn read(register: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed) as usize;
    // SAFETY: BASE maps the I/O APIC's registers uncached; interrupts are off
    // on this (single) CPU while the select/window pair is used.
    unsafe {
        write_volatile((base + REG_SELECT) as *mut u32, register);
        read_volatile((base + REG_WINDOW) as *const u32)
    }
}

fn write(register: u32, value: u32) {
    let base = BASE.load(Ordering::Relaxed) as usize;
    // SAFETY: as in `read`.
    unsafe {
        write_volatile((base + REG_SELECT) as *mut u32, register);
        write_volatile((base + REG_WINDOW) as *mut u32, value);
    }
}

/// Maps the I/O APIC at `virt` and masks every line. Returns the number of
/// lines.
pub fn init(virt: u64, allocate_frame: &mut dyn FnMut() -> Option<u64>) -> u32 {
    paging::map_mmio(virt, PHYSICAL_BASE, 1, allocate_frame).expect("mapping the I/O APIC");
    BASE.store(virt, Ordering::Relaxed);
    let lines = ((read(REG_VERSION) >> 16) & 0xFF) + 1;
    LINES.store(u64::from(lines), Ordering::Relaxed);
    for line in 0..lines {
        write(REG_REDIRECTION + 2 * line, MASKED);
        write(REG_REDIRECTION + 2 * line + 1, 0);
    }
    lines
}

/// How a line signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// ISA devices (the UART).
    Edge,
    /// PCI INTx lines (active high at the I/O APIC on QEMU `pc`).
    Level,
}

const LEVEL_TRIGGERED: u32 = 1 << 15;

/// Routes `gsi` to `vector` on the CPU with APIC id `apic_id`, unmasked.
/// Returns false for a line that does not exist.
pub fn route(gsi: u32, vector: u8, apic_id: u32, trigger: Trigger) -> bool {
    if u64::from(gsi) >= LINES.load(Ordering::Relaxed) {
        return false;
    }
    let mode = if trigger == Trigger::Level { LEVEL_TRIGGERED } else { 0 };
    super::cpu::without_interrupts(|| {
        write(REG_REDIRECTION + 2 * gsi + 1, apic_id << 24);
        write(REG_REDIRECTION + 2 * gsi, u32::from(vector) | mode);
    });
    true
}

/// Masks or unmasks a routed line (a level-triggered device is masked
/// while its driver drains it, then unmasked: NAPI-style).
pub fn set_masked(gsi: u32, masked: bool) {
    if u64::from(gsi) >= LINES.load(Ordering::Relaxed) {
        return;
    }
    super::cpu::without_interrupts(|| {
        let low = read(REG_REDIRECTION + 2 * gsi);
        write(REG_REDIRECTION + 2 * gsi, if masked { low | MASKED } else { low & !MASKED });
    });
}
