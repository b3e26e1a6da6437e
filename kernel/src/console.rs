//! The kernel console: COM1 (16550 UART at I/O port 0x3F8), shared by the
//! logger, the fault reports and (later) the serial shell.
//!
//! Writers hold the port's lock with interrupts off, so an interrupt handler
//! that logs can never spin on a lock its own CPU holds. Fault and panic
//! reports go through [`emergency`], which never waits.

use core::fmt::{self, Write};

use spin::Mutex;
use uart_16550::SerialPort;

use crate::arch::cpu::without_interrupts;

const COM1: u16 = 0x3F8;

// SAFETY: COM1 is the standard PC serial port; only this module touches it.
static SERIAL: Mutex<SerialPort> = Mutex::new(unsafe { SerialPort::new(COM1) });

pub fn init() {
    SERIAL.lock().init();
}

/// Writes formatted text to the console (the `print!` of the kernel).
pub fn write_fmt(args: fmt::Arguments) {
    without_interrupts(|| {
        let _ = SERIAL.lock().write_fmt(args);
    });
}

/// Runs `report` with exclusive access to the console, even if the lock is
/// held by the context that just faulted: that context will not run again,
/// and an interleaved line is better than a lost report.
pub fn emergency(report: impl FnOnce(&mut dyn Write)) {
    without_interrupts(|| match SERIAL.try_lock() {
        Some(mut serial) => report(&mut *serial),
        None => {
            // SAFETY: a second handle to the same UART; the holder of the
            // lock is the interrupted (dying) context on this CPU or a
            // writer on another CPU whose bytes may interleave with ours.
            let mut serial = unsafe { SerialPort::new(COM1) };
            report(&mut serial);
        }
    });
}
