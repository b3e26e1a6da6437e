//! Ring 3 on x86_64: the `syscall` entry, per-CPU data reached through GS,
//! protection features (SMEP, SMAP, NX), the first frame of a ring-3
//! thread, and the one window through which the kernel touches user memory
//! ([`with_user_access`], `stac`/`clac`).
//!
//! GS discipline: in the kernel GS_BASE points at this CPU's [`PerCpu`]; in
//! ring 3 KERNEL_GS_BASE does. Every entry from ring 3 (`syscall` here, traps
//! in `idt.rs`) starts with `swapgs`, every return to it ends with one. The
//! `syscall` entry switches to the thread's kernel stack (`PerCpu.kernel_rsp`,
//! the same value as TSS `rsp0`), builds the same [`TrapFrame`] a trap from
//! ring 3 would, and returns through the common `iretq` path: `sysret`
//! would be faster, but with a non-canonical RCX it faults in ring 0 on
//! the user's stack (the Intel `sysret` bug); `iretq` with a checked RIP has
//! no such case. RFLAGS is masked on entry (IF, TF, DF, AC off).

use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

use super::gdt;
use super::idt::TrapFrame;

/// Most CPUs the per-CPU table holds.
pub const MAX_CPUS: usize = 16;

/// What the entry paths need per CPU, at fixed offsets (the assembly uses
/// them): the kernel stack of the running thread and a scratch slot for the
/// user RSP during `syscall` entry.
#[repr(C)]
pub struct PerCpu {
    /// This structure's own address (offset 0).
    this: u64,
    /// Top of the running thread's kernel stack (offset 8).
    kernel_rsp: u64,
    /// The user RSP while the entry switches stacks (offset 16).
    user_rsp: u64,
    /// The CPU's index (offset 24).
    cpu: u64,
}

static mut PER_CPU: [PerCpu; MAX_CPUS] =
    [const { PerCpu { this: 0, kernel_rsp: 0, user_rsp: 0, cpu: 0 } }; MAX_CPUS];

/// The frame `vector` of a system call (beyond the 256 vectors).
pub const SYSCALL_VECTOR: u64 = 0x100;

const IA32_STAR: u32 = 0xC000_0081;
const IA32_LSTAR: u32 = 0xC000_0082;
const IA32_FMASK: u32 = 0xC000_0084;
const IA32_GS_BASE: u32 = 0xC000_0101;
const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;
/// RFLAGS bits cleared on `syscall`: TF, IF, DF, AC.
const SYSCALL_RFLAGS_MASK: u64 = 0x100 | 0x200 | 0x400 | 0x4_0000;

static SMAP: AtomicBool = AtomicBool::new(false);
static SMEP: AtomicBool = AtomicBool::new(false);
static SYSCALL_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// What the kernel does with a system call: gets the caller's frame (number
/// in `rax`, arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`), sets the
/// result in `rax`, returns the frame to resume.
pub type SyscallHandler = fn(&mut TrapFrame) -> *mut TrapFrame;

/// Sets up CPU `cpu` for ring 3: per-CPU data in GS, `syscall` MSRs, SMEP
/// and SMAP where the CPU has them. Returns (SMEP, SMAP).
pub fn init(cpu: usize, handler: SyscallHandler) -> (bool, bool) {
    SYSCALL_HANDLER.store(handler as usize, Ordering::Release);
    // SAFETY: boot of this CPU, interrupts off: nothing else uses its slot.
    let per_cpu = unsafe {
        let table = &raw mut PER_CPU;
        let slot = &mut (*table)[cpu];
        slot.this = slot as *mut PerCpu as u64;
        slot.cpu = cpu as u64;
        slot.this
    };
    // SAFETY: the MSRs are architectural; GS_BASE points at this CPU's data
    // while in the kernel (the GS discipline above); STAR's selectors are
    // the GDT's (asserted in gdt::init); LSTAR is the entry below; the
    // mask keeps interrupts off until the entry has switched stacks.
    unsafe {
        Msr::new(IA32_GS_BASE).write(per_cpu);
        Msr::new(IA32_KERNEL_GS_BASE).write(0);
        Msr::new(IA32_STAR).write(gdt::STAR_USER_BASE << 48 | gdt::STAR_KERNEL_BASE << 32);
        Msr::new(IA32_LSTAR).write(syscall_entry as *const () as u64);
        Msr::new(IA32_FMASK).write(SYSCALL_RFLAGS_MASK);
        Efer::update(|flags| flags.insert(EferFlags::SYSTEM_CALL_EXTENSIONS | EferFlags::NO_EXECUTE_ENABLE));
    }
    let features = core::arch::x86_64::__cpuid_count(7, 0);
    let smep = features.ebx & (1 << 7) != 0;
    let smap = features.ebx & (1 << 20) != 0;
    // SAFETY: setting SMEP/SMAP only where CPUID reports them; the kernel
    // never executes user pages and reaches user data only inside
    // `with_user_access`.
    unsafe {
        Cr4::update(|flags| {
            flags.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, smep);
            flags.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, smap);
        })
    };
    SMEP.store(smep, Ordering::Relaxed);
    SMAP.store(smap, Ordering::Relaxed);
    (smep, smap)
}

/// Makes `kernel_stack_top` the stack ring 3 enters on (TSS `rsp0` and the
/// `syscall` entry's per-CPU slot). Called by the scheduler, interrupts off.
pub fn set_kernel_stack(kernel_stack_top: u64) {
    gdt::set_kernel_stack(kernel_stack_top);
    // SAFETY: this CPU's slot (CPU 0 is the only one running threads),
    // written with interrupts off; read only by this CPU's `syscall` entry.
    unsafe { PER_CPU[0].kernel_rsp = kernel_stack_top };
}

/// Runs `f` with SMAP lifted (`stac` … `clac`) and interrupts off, so the
/// window is as small as `f`. The only way kernel code may touch user
/// pages; callers must have checked that the pages are mapped user with the
/// access they make, in the active address space (`task::usercopy`).
pub fn with_user_access<R>(f: impl FnOnce() -> R) -> R {
    super::cpu::without_interrupts(|| {
        let smap = SMAP.load(Ordering::Relaxed);
        if smap {
            // SAFETY: sets RFLAGS.AC; SMAP is on, so the instruction exists.
            unsafe { core::arch::asm!("stac", options(nomem, nostack)) };
        }
        let result = f();
        if smap {
            // SAFETY: clears RFLAGS.AC again.
            unsafe { core::arch::asm!("clac", options(nomem, nostack)) };
        }
        result
    })
}

/// The first frame of a ring-3 thread, at the top of its kernel stack: the
/// first switch to the thread "returns" to `entry` in ring 3 with `rsp` as
/// its stack and interrupts on.
pub fn new_user_frame(kernel_stack_top: u64, entry: u64, rsp: u64) -> *mut TrapFrame {
    let (cs, ss) = (u64::from(gdt::USER_CODE), u64::from(gdt::USER_DATA));
    // Interrupts on (IF) in ring 3; the vector marks a system-call frame.
    let frame = TrapFrame::resume_at(entry, rsp, cs, ss, 0x202, 0, SYSCALL_VECTOR);
    let pointer = (kernel_stack_top - size_of::<TrapFrame>() as u64) as *mut TrapFrame;
    // SAFETY: the top of a freshly mapped kernel stack the caller owns; a
    // trap from ring 3 later builds its frame in this same place.
    unsafe { pointer.write(frame) };
    pointer
}

/// Whether `rip` may be returned to in ring 3: canonical and in the user
/// half (below the last page, see `tenfold_abi::layout::USER_END`).
pub fn user_rip_ok(rip: u64) -> bool {
    rip < tenfold_abi::layout::USER_END
}

/// The `syscall` entry (LSTAR). Interrupts are off (FMASK); RCX holds the
/// user RIP, R11 the user RFLAGS.
#[unsafe(naked)]
unsafe extern "C" fn syscall_entry() -> ! {
    naked_asm!(
        "swapgs",
        "mov gs:[16], rsp",
        "mov rsp, gs:[8]",
        // The CPU's part of a trap frame, as an interrupt from ring 3 pushes it.
        "push {user_data}",
        "push qword ptr gs:[16]",
        "push r11",
        "push {user_code}",
        "push rcx",
        "push 0",
        "push {vector}",
        super::idt::save_registers_and_call!(),
        user_data = const gdt::USER_DATA,
        user_code = const gdt::USER_CODE,
        vector = const SYSCALL_VECTOR,
        dispatch = sym syscall_dispatch,
        trap_return = sym super::idt::trap_return,
    )
}

extern "C" fn syscall_dispatch(frame: &mut TrapFrame) -> *mut TrapFrame {
    let raw = SYSCALL_HANDLER.load(Ordering::Acquire);
    assert_ne!(raw, 0, "a system call before the handler was installed");
    // SAFETY: set in `init` from a `SyscallHandler`.
    let handler = unsafe { core::mem::transmute::<usize, SyscallHandler>(raw) };
    handler(frame)
}
