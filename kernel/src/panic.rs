//! The panic handler: a report in the same shape as a CPU fault report
//! (context, cause, location, stack trace), then the run ends with a failure
//! status. A panic while reporting a panic exits at once.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::{backtrace, cpu, qemu, traps};
use crate::console;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        qemu::exit(qemu::ExitCode::Failure);
    }
    console::emergency(|out| {
        let _ = write!(out, "\n!!! PANIC in ");
        traps::describe_running(out);
        let _ = writeln!(out);
        let _ = writeln!(out, "    cause: {}", info.message());
        if let Some(location) = info.location() {
            let _ = writeln!(out, "    at {}:{}:{}", location.file(), location.line(), location.column());
        }
        let _ = backtrace::write(out, cpu::instruction_pointer(), cpu::frame_pointer());
        let _ = writeln!(out, "!!! end of fault report");
    });
    qemu::exit(qemu::ExitCode::Failure)
}
