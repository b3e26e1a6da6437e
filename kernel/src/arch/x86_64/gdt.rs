//! Global descriptor table and task-state segment.
//!
//! The TSS carries the interrupt stack table: double fault, NMI and machine
//! check run on stacks of their own, so a kernel stack overflow (which makes
//! the page-fault push itself fault) still reaches a handler that can report.
//! User segments are laid out for `sysret` (user data before user code).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slots (0-based, as the TSS counts them).
pub const DOUBLE_FAULT_IST: usize = 0;
pub const NMI_IST: usize = 1;
pub const MACHINE_CHECK_IST: usize = 2;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static mut IST_STACKS: [IstStack; 3] = [const { IstStack([0; IST_STACK_SIZE]) }; 3];

struct Selectors {
    kernel_code: SegmentSelector,
    kernel_data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for slot in [DOUBLE_FAULT_IST, NMI_IST, MACHINE_CHECK_IST] {
            // SAFETY: only the address is taken; the stacks are used by the CPU alone.
            let stack = unsafe { &raw mut IST_STACKS[slot] };
            let top = VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64;
            tss.interrupt_stack_table[slot] = top;
        }
        tss
    });
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        // Ring-3 segments, in the order `sysret` expects (data, then code).
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { kernel_code, kernel_data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which
    // lives for the rest of the run.
    unsafe {
        CS::set_reg(selectors.kernel_code);
        SS::set_reg(selectors.kernel_data);
        DS::set_reg(selectors.kernel_data);
        ES::set_reg(selectors.kernel_data);
        load_tss(selectors.tss);
    }
}

/// The kernel code selector, for interrupt gates.
pub fn kernel_code_selector() -> u16 {
    GDT.get().expect("GDT loaded").1.kernel_code.0
}
