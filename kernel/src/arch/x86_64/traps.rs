//! Trap dispatch: what happens after the entry path saved a [`TrapFrame`].
//!
//! A CPU exception in ring 3 kills only that task: the report names the
//! task, the exception, the cause, the address and RIP, and the scheduler
//! runs another thread (the task's memory is reclaimed when its thread is
//! reaped). CPU exceptions in the kernel are fatal: the report names the exception,
//! the error code decoded, RIP, CR2, the context that faulted, all
//! registers and a stack trace of return addresses (the host runner
//! symbolises them), then the run ends with a failure status — except a
//! stack overflow in a thread the kernel can lose, and any fault of a
//! supervised thread (`sched::spawn_supervised`): the report is printed,
//! that thread is killed (its supervisor told) and the others run on. A breakpoint (`int3`) is
//! logged and execution continues. Interrupts go to the handlers registered
//! in [`super::interrupts`].

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

use super::idt::{TrapFrame, vector};
use super::{backtrace, cpu, interrupts, qemu};
use crate::console;

/// Names of the architectural exceptions, by vector.
const EXCEPTIONS: [(&str, &str); 32] = [
    ("#DE", "divide error"),
    ("#DB", "debug"),
    ("NMI", "non-maskable interrupt"),
    ("#BP", "breakpoint"),
    ("#OF", "overflow"),
    ("#BR", "bound range exceeded"),
    ("#UD", "invalid opcode"),
    ("#NM", "device not available"),
    ("#DF", "double fault"),
    ("-", "coprocessor segment overrun"),
    ("#TS", "invalid TSS"),
    ("#NP", "segment not present"),
    ("#SS", "stack-segment fault"),
    ("#GP", "general protection fault"),
    ("#PF", "page fault"),
    ("-", "reserved (15)"),
    ("#MF", "x87 floating-point error"),
    ("#AC", "alignment check"),
    ("#MC", "machine check"),
    ("#XM", "SIMD floating-point error"),
    ("#VE", "virtualization exception"),
    ("#CP", "control protection"),
    ("-", "reserved (22)"),
    ("-", "reserved (23)"),
    ("-", "reserved (24)"),
    ("-", "reserved (25)"),
    ("-", "reserved (26)"),
    ("-", "reserved (27)"),
    ("#HV", "hypervisor injection"),
    ("#VC", "VMM communication"),
    ("#SX", "security exception"),
    ("-", "reserved (31)"),
];

/// What the kernel above tells the fault path about its threads.
#[derive(Clone, Copy)]
pub struct FaultHooks {
    /// Writes the name of the running context (must not block).
    pub describe_current: fn(&mut dyn Write),
    /// If `address` lies in a thread stack's guard region, the guard page.
    pub guard_page_hit: fn(u64) -> Option<u64>,
    /// Kills the running thread after a stack overflow and returns the frame
    /// of the thread to run instead; `None` if it must not be killed.
    pub kill_current: fn() -> Option<*mut TrapFrame>,
    /// Writes where a ring-3 address lies in the running task's program
    /// (`function+offset`), if it can tell.
    pub describe_user_address: fn(&mut dyn Write, u64),
    /// Kills the running thread if it is supervised (its faults are
    /// contained and reported to its supervisor) and returns the frame of
    /// the thread to run instead; `None` if the fault is the kernel's.
    pub contain_fault: fn() -> Option<*mut TrapFrame>,
}

static HOOKS: Once<FaultHooks> = Once::new();

/// Breakpoints (`int3`) handled since boot.
static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

/// How many breakpoints the trap path has handled and resumed from, so a
/// self-test can tell that its `int3` reached the handler exactly once.
pub fn breakpoints_handled() -> u64 {
    BREAKPOINTS.load(Ordering::Relaxed)
}

/// Ring-3 faults contained since boot, and the TSC cycles from each fault's
/// entry to the next thread's frame being handed back (the report printed,
/// the task killed, the switch made): the last [`CONTAINMENT_SAMPLES`] in a
/// ring, without allocating in the fault path.
static CONTAINED: AtomicU64 = AtomicU64::new(0);
pub const CONTAINMENT_SAMPLES: usize = 256;
static CONTAINMENT_CYCLES: [AtomicU64; CONTAINMENT_SAMPLES] =
    [const { AtomicU64::new(0) }; CONTAINMENT_SAMPLES];

/// Ring-3 faults contained since boot, and the cycles (fault entry → next
/// thread's frame) of the most recent of them, at most
/// [`CONTAINMENT_SAMPLES`], oldest first.
pub fn containment() -> (u64, alloc::vec::Vec<u64>) {
    let count = CONTAINED.load(Ordering::Acquire);
    let kept = count.min(CONTAINMENT_SAMPLES as u64);
    let samples = (count - kept..count)
        .map(|index| CONTAINMENT_CYCLES[index as usize % CONTAINMENT_SAMPLES].load(Ordering::Relaxed))
        .collect();
    (count, samples)
}

/// Installs the kernel's fault hooks (once the scheduler exists).
pub fn set_fault_hooks(hooks: FaultHooks) {
    HOOKS.call_once(|| hooks);
}

/// Called by the entry path with interrupts off. Returns the frame to resume.
pub extern "C" fn dispatch(frame: &mut TrapFrame) -> *mut TrapFrame {
    let vector = frame.vector as u8;
    if vector == vector::BREAKPOINT {
        BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        log::warn!("breakpoint at {:#x}", frame.rip);
    } else if vector < vector::FIRST_INTERRUPT {
        return fault(frame);
    } else if let Some(handler) = interrupts::handler(vector) {
        return handler(frame);
    } else if vector != interrupts::vector::SPURIOUS {
        log::warn!("unexpected interrupt on vector {vector}");
        // Leaving it in service would block every lower-priority vector.
        super::apic::end_of_interrupt();
    }
    frame
}

fn fault(frame: &TrapFrame) -> *mut TrapFrame {
    if frame.is_user_mode() {
        return user_fault(frame);
    }
    let vector = frame.vector as u8;
    let (mnemonic, name) = EXCEPTIONS[usize::from(vector)];
    let cr2 = cpu::page_fault_address();
    let overflow = match vector {
        vector::PAGE_FAULT => guard_page_hit(cr2),
        vector::DOUBLE_FAULT => guard_page_hit(frame.rsp),
        _ => None,
    };
    console::emergency(|out| {
        let _ = write!(out, "\n!!! FAULT: {name} ({mnemonic}, vector {vector}) in ");
        describe_context(out, frame);
        let _ = writeln!(out);
        let _ = write!(out, "    cause: ");
        let _ = write_cause(out, frame, cr2);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "    rip {:#018x}  error code {:#x}  cr2 {:#018x}",
            frame.rip, frame.error_code, cr2
        );
        let _ = write_registers(out, frame);
        let _ = backtrace::write(out, frame.rip, frame.rbp);
        let _ = writeln!(out, "!!! end of fault report");
    });
    if overflow.is_some()
        && let Some(next) = HOOKS.get().and_then(|hooks| (hooks.kill_current)())
    {
        log::error!("killed the thread whose stack overflowed; the others run on");
        return next;
    }
    if let Some(next) = HOOKS.get().and_then(|hooks| (hooks.contain_fault)()) {
        log::error!("contained: the faulting thread was killed and its supervisor told; the kernel runs on");
        return next;
    }
    qemu::exit(qemu::ExitCode::Failure)
}

/// Ring 3 faulted: report it and kill the task (its thread), never the kernel.
fn user_fault(frame: &TrapFrame) -> *mut TrapFrame {
    let entered = cpu::timestamp_counter();
    let vector = frame.vector as u8;
    let (mnemonic, name) = EXCEPTIONS[usize::from(vector)];
    let cr2 = cpu::page_fault_address();
    console::emergency(|out| {
        let _ = write!(out, "\n!!! USER FAULT: {name} ({mnemonic}, vector {vector}) in ");
        describe_running(out);
        let _ = writeln!(out);
        let _ = write!(out, "    cause: ");
        let _ = write_cause(out, frame, cr2);
        let guard = tenfold_abi::layout::STACK_TOP - tenfold_abi::layout::STACK_SIZE - 4096;
        if vector == vector::PAGE_FAULT && (guard..guard + 4096).contains(&cr2) {
            let _ = write!(out, " — user stack overflow (guard page at {guard:#x})");
        }
        let _ = writeln!(out);
        let address = if vector == vector::PAGE_FAULT { cr2 } else { frame.rip };
        let _ = writeln!(
            out,
            "    address {address:#018x}  rip {:#018x}  rsp {:#018x}  error code {:#x}",
            frame.rip, frame.rsp, frame.error_code
        );
        if let Some(hooks) = HOOKS.get() {
            (hooks.describe_user_address)(out, frame.rip);
        }
        let _ = write_registers(out, frame);
        let _ = writeln!(out, "!!! task killed; the kernel and the other threads run on");
    });
    let next = kill_running_task(frame);
    // One CPU and interrupts off: nobody else writes the ring meanwhile.
    let index = CONTAINED.load(Ordering::Relaxed);
    CONTAINMENT_CYCLES[index as usize % CONTAINMENT_SAMPLES]
        .store(cpu::timestamp_counter() - entered, Ordering::Relaxed);
    CONTAINED.store(index + 1, Ordering::Release);
    next
}

/// Kills the running ring-3 thread (a fault, or a return address the kernel
/// refuses) and returns the frame of the thread to run instead.
pub fn kill_running_task(frame: &TrapFrame) -> *mut TrapFrame {
    match HOOKS.get().and_then(|hooks| (hooks.kill_current)()) {
        Some(next) => next,
        None => {
            log::error!("a ring-3 fault at {:#x} could not be contained", frame.rip);
            qemu::exit(qemu::ExitCode::Failure)
        }
    }
}

/// Writes the name of the interrupted context.
pub fn describe_context(out: &mut dyn Write, frame: &TrapFrame) {
    if frame.is_user_mode() {
        let _ = write!(out, "user mode");
    } else {
        describe_running(out);
    }
}

/// Writes the name of the running kernel thread.
pub fn describe_running(out: &mut dyn Write) {
    match HOOKS.get() {
        Some(hooks) => (hooks.describe_current)(out),
        None => {
            let _ = write!(out, "kernel thread `boot`");
        }
    }
}

fn write_cause(out: &mut dyn Write, frame: &TrapFrame, cr2: u64) -> core::fmt::Result {
    match frame.vector as u8 {
        vector::PAGE_FAULT => {
            let code = frame.error_code;
            let access = if code & (1 << 4) != 0 {
                "instruction fetch from"
            } else if code & (1 << 1) != 0 {
                "write to"
            } else {
                "read from"
            };
            let page = if code & 1 != 0 { "protection violation on" } else { "non-present page" };
            let mode = if code & (1 << 2) != 0 { "user" } else { "supervisor" };
            let access = if code & (1 << 4) != 0 && code & 1 != 0 && code & (1 << 2) != 0 {
                "instruction fetch (no-execute) from"
            } else {
                access
            };
            write!(out, "{access} {page} at {cr2:#x} ({mode} access")?;
            if code & (1 << 3) != 0 {
                write!(out, ", reserved bit set in a page-table entry")?;
            }
            write!(out, ")")?;
            if let Some(guard) = guard_page_hit(cr2) {
                write!(out, " — kernel stack overflow (guard page at {guard:#x})")?;
            }
            Ok(())
        }
        vector::DOUBLE_FAULT => match guard_page_hit(frame.rsp) {
            Some(guard) => write!(
                out,
                "kernel stack overflow: rsp {:#x} ran into the guard page at {guard:#x}",
                frame.rsp
            ),
            None => write!(out, "an exception while delivering another exception"),
        },
        0xA..=0xD if frame.error_code != 0 => {
            write!(out, "segment selector error code {:#x}", frame.error_code)
        }
        _ => write!(out, "{} at {:#x}", EXCEPTIONS[frame.vector as usize].1, frame.rip),
    }
}

/// The guard page `address` falls in, if it belongs to a known stack.
fn guard_page_hit(address: u64) -> Option<u64> {
    (HOOKS.get()?.guard_page_hit)(address)
}

fn write_registers(out: &mut dyn Write, f: &TrapFrame) -> core::fmt::Result {
    writeln!(out, "    cs {:#x} ss {:#x} rflags {:#x} rsp {:#018x}", f.cs, f.ss, f.rflags, f.rsp)?;
    let registers = [
        ("rax", f.rax),
        ("rbx", f.rbx),
        ("rcx", f.rcx),
        ("rdx", f.rdx),
        ("rsi", f.rsi),
        ("rdi", f.rdi),
        ("rbp", f.rbp),
        ("r8 ", f.r8),
        ("r9 ", f.r9),
        ("r10", f.r10),
        ("r11", f.r11),
        ("r12", f.r12),
        ("r13", f.r13),
        ("r14", f.r14),
        ("r15", f.r15),
    ];
    for row in registers.chunks(4) {
        write!(out, "   ")?;
        for (name, value) in row {
            write!(out, " {name} {value:#018x}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}
