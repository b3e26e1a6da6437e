//! x86_64 support: descriptor tables, trap entry, CPU helpers, firmware and
//! QEMU interfaces, paging.

pub mod backtrace;
pub mod cpu;
pub mod fw_cfg;
mod gdt;
mod idt;
pub mod paging;
pub mod qemu;
pub mod tsc;
pub mod traps;


/// Loads the GDT/TSS and IDT: from here on every CPU exception is reported.
pub fn init() {
    gdt::init();
    idt::init();
}
