//! x86_64 support: descriptor tables, trap entry, CPU helpers, firmware and
//! QEMU interfaces, paging.

pub mod backtrace;
pub mod cpu;
pub mod fw_cfg;
mod gdt;
mod idt;
pub mod paging;
mod pic;
pub mod qemu;
pub mod traps;
pub mod tsc;

/// Loads the GDT/TSS and IDT and silences the legacy PICs: from here on
/// every CPU exception is reported.
pub fn init() {
    gdt::init();
    idt::init();
    pic::remap_and_mask();
}
