//! QEMU's `isa-debug-exit` device (iobase 0xf4): ends the run with a status
//! the host can read. QEMU exits with `(code << 1) | 1`, so success is 33 and
//! failure 35; a triple fault under `-no-reboot` exits 0, which the host
//! treats as failure.

use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What the guest reports to the host when it ends the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// QEMU exit status 33.
    Success = 0x10,
    /// QEMU exit status 35.
    Failure = 0x11,
}

/// Ends the QEMU run. Without the exit device (a real machine) the CPU halts.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is QEMU's debug-exit device in every machine profile
    // Tenfold boots; on other hardware the write is ignored.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    super::cpu::halt_forever()
}
