//! The kernel console: COM1 (16550 UART at I/O port 0x3F8), shared by the
//! logger, the fault reports and (later) the serial shell.
//!
//! The port and the input buffer are `IrqLock`s (interrupts off while
//! held), so an interrupt handler that logs can never spin on a lock its own
//! CPU holds. Fault and panic reports go through [`emergency`], which never
//! waits.
//!
//! Input is interrupt-driven: the UART's receive interrupt (IRQ 4, routed
//! through the I/O APIC) moves bytes into a bounded buffer and unparks the
//! reader; a reader that finds the buffer empty parks. Bytes beyond the
//! buffer are dropped and counted (a paste flood cannot grow memory).

use core::fmt::{self, Write};

use alloc::collections::VecDeque;

use uart_16550::SerialPort;

use crate::arch::cpu::without_interrupts;
use crate::arch::interrupts::{self, vector};
use crate::arch::{IrqLock, TrapFrame, apic, ioapic};
use crate::sched::{self, ThreadRef};

const COM1: u16 = 0x3F8;

// SAFETY: COM1 is the standard PC serial port; only this module touches it.
static SERIAL: IrqLock<SerialPort> = IrqLock::new(unsafe { SerialPort::new(COM1) });

pub fn init() {
    SERIAL.lock().init();
}

/// Writes formatted text to the console (the `print!` of the kernel).
pub fn write_fmt(args: fmt::Arguments) {
    let _ = SERIAL.lock().write_fmt(args);
}

/// Writes bytes a task handed over: printable ASCII, newlines and tabs as
/// they are, every other byte as `.` (a task cannot send terminal control
/// sequences or break the line structure tests read).
pub fn write_untrusted(bytes: &[u8]) {
    let mut serial = SERIAL.lock();
    for &byte in bytes {
        let byte = match byte {
            b'\n' | b'\t' | 0x20..=0x7E => byte,
            _ => b'.',
        };
        serial.send(byte);
    }
}

/// Runs `report` with exclusive access to the console, even if the lock is
/// held by the context that just faulted: that context will not run again,
/// and an interleaved line is better than a lost report.
pub fn emergency(report: impl FnOnce(&mut dyn Write)) {
    match SERIAL.try_lock() {
        Some(mut serial) => report(&mut *serial),
        // Interrupts off here too (no lock to do it): a handler's log lines
        // must not cut into the report.
        None => without_interrupts(|| {
            // SAFETY: a second handle to the same UART; the holder of the
            // lock is the interrupted (dying) context on this CPU or a
            // writer on another CPU whose bytes may interleave with ours.
            let mut serial = unsafe { SerialPort::new(COM1) };
            report(&mut serial);
        }),
    }
}

/// COM1's interrupt line.
const COM1_GSI: u32 = 4;
/// Bytes buffered between the interrupt and the reader.
const INPUT_CAPACITY: usize = 256;

struct Input {
    bytes: VecDeque<u8>,
    reader: Option<ThreadRef>,
    dropped: u64,
}

static INPUT: IrqLock<Input> = IrqLock::new(Input { bytes: VecDeque::new(), reader: None, dropped: 0 });

/// Routes the UART's receive interrupt to the input buffer.
pub fn enable_input() {
    let vector = vector::DEVICE_BASE + COM1_GSI as u8;
    interrupts::set_handler(vector, on_receive);
    INPUT.lock().bytes.reserve(INPUT_CAPACITY);
    ioapic::route(COM1_GSI, vector, apic::id(), ioapic::Trigger::Edge);
    // Bytes that arrived while the line was masked raised an edge nobody
    // saw, and the UART raises no new one until they are read: read them.
    take_received_bytes(&mut SERIAL.lock());
}

/// Moves every byte the UART holds into the input buffer.
fn take_received_bytes(serial: &mut SerialPort) {
    let mut input = INPUT.lock();
    while let Ok(byte) = serial.try_receive() {
        if input.bytes.len() < INPUT_CAPACITY {
            input.bytes.push_back(byte);
        } else {
            input.dropped += 1;
        }
    }
}

fn on_receive(frame: &mut TrapFrame) -> *mut TrapFrame {
    take_received_bytes(&mut SERIAL.lock());
    let reader = INPUT.lock().reader.take();
    apic::end_of_interrupt();
    if let Some(reader) = reader {
        sched::unpark(reader);
    }
    frame
}

/// The next input byte, waiting (parked) for it; `None` once `deadline_ns`
/// passes.
pub fn read_byte(deadline_ns: Option<u64>) -> Option<u8> {
    loop {
        let byte = {
            let mut input = INPUT.lock();
            let byte = input.bytes.pop_front();
            if byte.is_none() {
                input.reader = Some(sched::current());
            }
            byte
        };
        if byte.is_some() {
            return byte;
        }
        if deadline_ns.is_some_and(|deadline| crate::time::now_ns() >= deadline) {
            return None;
        }
        sched::park(deadline_ns);
    }
}

/// Input bytes dropped because the buffer was full.
pub fn dropped_input() -> u64 {
    INPUT.lock().dropped
}
