//! The I/O APIC: routes device interrupt lines (GSIs) to vectors on a CPU.
//! All lines start masked; drivers route the ones they use. QEMU's `pc`
//! machine has one I/O APIC at the standard address with ISA IRQs on GSIs
//! 0–15 identity-mapped (except the timer on GSI 2).

use core::ptr::{read_volatile, write_volatile};

use super::{IrqLock, paging};

/// The I/O APIC's physical address on QEMU `pc`.
pub const PHYSICAL_BASE: u64 = 0xFEC0_0000;

const REG_SELECT: usize = 0x00;
const REG_WINDOW: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;
const MASKED: u32 = 1 << 16;

/// The I/O APIC's select/window register pair. One register access is a
/// select then a window access, which must not interleave with another, so
/// the pair lives behind an `IrqLock` (drivers mask their lines from
/// interrupt handlers).
struct IoApic {
    /// Where the registers are mapped (0 before `init`).
    base: usize,
    /// Redirection entries (0 before `init`, so no line is routed early).
    lines: u32,
}

static IO_APIC: IrqLock<IoApic> = IrqLock::new(IoApic { base: 0, lines: 0 });

impl IoApic {
    fn read(&mut self, register: u32) -> u32 {
        // SAFETY: `base` maps the I/O APIC's registers uncached (`init` sets
        // it before any other access); `&mut self` is the locked pair, so no
        // other select/window access interleaves.
        unsafe {
            write_volatile((self.base + REG_SELECT) as *mut u32, register);
            read_volatile((self.base + REG_WINDOW) as *const u32)
        }
    }

    fn write(&mut self, register: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            write_volatile((self.base + REG_SELECT) as *mut u32, register);
            write_volatile((self.base + REG_WINDOW) as *mut u32, value);
        }
    }
}

/// Maps the I/O APIC at `virt` and masks every line. Returns the number of
/// lines.
pub fn init(virt: u64, allocate_frame: &mut dyn FnMut() -> Option<u64>) -> u32 {
    paging::map_mmio(virt, PHYSICAL_BASE, 1, allocate_frame).expect("mapping the I/O APIC");
    let mut io_apic = IO_APIC.lock();
    io_apic.base = virt as usize;
    let lines = ((io_apic.read(REG_VERSION) >> 16) & 0xFF) + 1;
    for line in 0..lines {
        io_apic.write(REG_REDIRECTION + 2 * line, MASKED);
        io_apic.write(REG_REDIRECTION + 2 * line + 1, 0);
    }
    io_apic.lines = lines;
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
    let mut io_apic = IO_APIC.lock();
    if gsi >= io_apic.lines {
        return false;
    }
    let mode = if trigger == Trigger::Level { LEVEL_TRIGGERED } else { 0 };
    io_apic.write(REG_REDIRECTION + 2 * gsi + 1, apic_id << 24);
    io_apic.write(REG_REDIRECTION + 2 * gsi, u32::from(vector) | mode);
    true
}

/// Masks or unmasks a routed line (a level-triggered device is masked
/// while its driver drains it, then unmasked: NAPI-style).
pub fn set_masked(gsi: u32, masked: bool) {
    let mut io_apic = IO_APIC.lock();
    if gsi >= io_apic.lines {
        return;
    }
    let low = io_apic.read(REG_REDIRECTION + 2 * gsi);
    io_apic.write(REG_REDIRECTION + 2 * gsi, if masked { low | MASKED } else { low & !MASKED });
}
