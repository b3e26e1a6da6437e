//! Global descriptor table and task-state segment.
//!
//! The TSS carries the interrupt stack table: double fault, NMI and machine
//! check run on stacks of their own, so a kernel stack overflow (which makes
//! the page-fault push itself fault) still reaches a handler that can report.
//! User segments are laid out for `sysret` (user data before user code).
//! The TSS's `rsp0` — the stack the CPU switches to when ring 3 is
//! interrupted — is set per thread by [`set_kernel_stack`].

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

/// The TSS of CPU 0 (one per CPU once more CPUs run threads). In a
/// `static mut` because `rsp0` changes with every switch to a ring-3
/// thread; written only with interrupts off, by the CPU that owns it.
static mut TSS: TaskStateSegment = TaskStateSegment::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

pub fn init() {
    // SAFETY: boot, before interrupts and before any other CPU runs: this
    // is the only access to the TSS.
    let tss: &'static TaskStateSegment = unsafe {
        let pointer = &raw mut TSS;
        let tss = &mut *pointer;
        for slot in [DOUBLE_FAULT_IST, NMI_IST, MACHINE_CHECK_IST] {
            let stack = &raw mut IST_STACKS[slot];
            let top = VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64;
            tss.interrupt_stack_table[slot] = top;
        }
        tss
    };
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        // Ring-3 segments, in the order `sysret` expects (data, then code).
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        assert_eq!((user_code.0, user_data.0), (USER_CODE, USER_DATA));
        assert_eq!((kernel_code.0 as u64, kernel_data.0 as u64 - 8), (STAR_KERNEL_BASE, STAR_KERNEL_BASE));
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

/// Sets the stack the CPU loads when ring 3 is interrupted (TSS `rsp0`).
pub fn set_kernel_stack(top: u64) {
    // SAFETY: a plain store to this CPU's TSS, made with interrupts off (the
    // scheduler's switch path); the CPU reads the field only on a ring change.
    unsafe { TSS.privilege_stack_table[0] = VirtAddr::new(top) };
}

/// Selectors of the ring-3 segments (with RPL 3): (code, data).
pub const USER_CODE: u16 = 0x20 | 3;
pub const USER_DATA: u16 = 0x18 | 3;
/// `STAR`'s selector bases: `syscall` loads CS from bits 32..48 (SS = +8);
/// `sysret` loads SS from bits 48..64 + 8 and CS from + 16.
pub const STAR_KERNEL_BASE: u64 = 0x08;
pub const STAR_USER_BASE: u64 = 0x10;

/// The kernel code selector, for interrupt gates.
pub fn kernel_code_selector() -> u16 {
    GDT.get().expect("GDT loaded").1.kernel_code.0
}
