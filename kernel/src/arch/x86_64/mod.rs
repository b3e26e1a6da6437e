//! x86_64 support: descriptor tables, trap entry, CPU helpers, firmware and
//! QEMU interfaces, paging.

pub mod apic;
pub mod backtrace;
pub mod cpu;
pub mod fw_cfg;
mod gdt;
mod idt;
pub mod interrupts;
pub mod ioapic;
pub mod irq_lock;
pub mod paging;
pub mod pci_config;
mod pic;
pub mod qemu;
pub mod traps;
pub mod tsc;
pub mod user;

pub use idt::TrapFrame;
pub use irq_lock::IrqLock;

/// Loads the GDT/TSS and IDT and silences the legacy PICs: from here on
/// every CPU exception is reported.
pub fn init() {
    gdt::init();
    idt::init();
    pic::remap_and_mask();
    cpu::enable_sse();
}

/// Where the interrupt controllers' registers are mapped.
const LOCAL_APIC_VIRT: u64 = 0xffff_b000_0000_0000;
const IO_APIC_VIRT: u64 = LOCAL_APIC_VIRT + 0x1000;

/// Brings up the local APIC (timer calibrated against the TSC) and the I/O
/// APIC (all lines masked). Returns the APIC timer's ticks per millisecond.
pub fn init_interrupt_controllers(tsc_hz: u64, allocate_frame: &mut dyn FnMut() -> Option<u64>) -> u64 {
    use interrupts::vector;
    let ticks = apic::init(LOCAL_APIC_VIRT, vector::SPURIOUS, vector::TIMER, tsc_hz, allocate_frame);
    let lines = ioapic::init(IO_APIC_VIRT, allocate_frame);
    log::info!("APIC timer: {} ticks/ms (calibrated against the TSC); I/O APIC: {lines} lines", ticks);
    ticks
}

/// Builds the initial trap frame of a new kernel thread at the top of its
/// stack: the first switch to it "returns" into `entry(argument)` with
/// interrupts enabled and the stack aligned as after a call.
pub fn new_thread_frame(stack_top: u64, entry: extern "C" fn(usize) -> !, argument: usize) -> *mut TrapFrame {
    use x86_64::instructions::segmentation::{CS, SS, Segment};
    let frame_address = (stack_top - 64 - size_of::<TrapFrame>() as u64) & !0xF;
    let frame = TrapFrame::resume_at(
        entry as usize as u64,
        (stack_top - 8) & !0xF | 0x8, // as after a `call`: rsp ≡ 8 (mod 16)
        u64::from(CS::get_reg().0),
        u64::from(SS::get_reg().0),
        0x202, // IF set, reserved bit 1
        argument as u64,
        0,
    );
    let pointer = frame_address as *mut TrapFrame;
    // SAFETY: the caller passes the top of a freshly mapped stack it owns;
    // the frame fits below the top with room to spare.
    unsafe { pointer.write(frame) };
    pointer
}

/// Gives up the CPU: raises the yield vector, whose handler (the scheduler)
/// returns the frame of the thread to run next.
pub fn raise_yield() {
    // SAFETY: the yield vector's gate exists (all 256 have stubs); its
    // handler saves and restores this context like any interrupt.
    unsafe { core::arch::asm!("int 0x81") };
}
