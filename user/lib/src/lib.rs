//! The task side of Tenfold: system-call wrappers over the `syscall`
//! instruction (ABI in `tenfold-abi`), console output (`print!`,
//! `println!`), the task entry (`_start` calls the program's `task_main`
//! and exits with what it returns), a heap for `alloc` over the `map` call
//! ([`heap`]) and a panic handler that reports the panic on the console and
//! exits with code 101; mailboxes between tasks ([`mailbox`]); TCP
//! sockets ([`socket`]); child tasks ([`task`]).
#![no_std]

pub mod heap;
pub mod mailbox;
pub mod socket;
pub mod task;

use core::fmt::{self, Write};

pub use tenfold_abi as abi;
use tenfold_abi::{Error, Sys};

/// Raw system call with up to three arguments. Returns `rax` as the kernel
/// left it (negative: an [`Error`]).
#[inline(always)]
pub fn syscall3(number: u64, a: u64, b: u64, c: u64) -> i64 {
    let result: i64;
    // SAFETY: `syscall` enters the kernel, which validates every argument
    // and touches no user memory except through its checked copies; it
    // clobbers only rcx and r11 (declared) besides rax.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number as i64 => result,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    result
}

/// Raw system call with six arguments (for the fuzzer).
#[inline(always)]
pub fn syscall6(number: u64, args: [u64; 6]) -> i64 {
    let result: i64;
    // SAFETY: as in `syscall3`.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number as i64 => result,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    result
}

/// The page size of `map` and of page transfers.
pub const PAGE_SIZE: u64 = 4096;

fn check(value: i64) -> Result<u64, Error> {
    if value < 0 { Err(Error::from_return(value).unwrap_or(Error::BadArgument)) } else { Ok(value as u64) }
}

/// Ends the task with `code`.
pub fn exit(code: i64) -> ! {
    syscall3(Sys::Exit as u64, code as u64, 0, 0);
    // The kernel never returns from exit; if it did, fault rather than run on.
    loop {
        core::hint::spin_loop();
    }
}

pub fn yield_now() {
    syscall3(Sys::Yield as u64, 0, 0, 0);
}

pub fn sleep_ns(nanos: u64) -> Result<(), Error> {
    check(syscall3(Sys::Sleep as u64, nanos, 0, 0)).map(|_| ())
}

/// Nanoseconds since boot.
pub fn clock_ns() -> u64 {
    syscall3(Sys::Clock as u64, 0, 0, 0) as u64
}

/// Writes raw bytes to the console; returns how many were written.
pub fn write_raw(pointer: u64, length: u64) -> Result<u64, Error> {
    check(syscall3(Sys::Write as u64, pointer, length, 0))
}

/// Writes `bytes` to the console, in chunks the kernel accepts.
pub fn write(bytes: &[u8]) -> Result<(), Error> {
    for chunk in bytes.chunks(abi::MAX_WRITE as usize) {
        write_raw(chunk.as_ptr() as u64, chunk.len() as u64)?;
    }
    Ok(())
}

/// Maps `length` bytes of zeroed memory; returns its address.
pub fn map(length: u64, flags: u64) -> Result<u64, Error> {
    check(syscall3(Sys::Map as u64, length, flags, 0))
}

pub fn unmap(address: u64, length: u64) -> Result<(), Error> {
    check(syscall3(Sys::Unmap as u64, address, length, 0)).map(|_| ())
}

/// Copies the task's argument into `buffer`; returns it as a string (empty
/// if it does not fit or is not UTF-8).
pub fn argument(buffer: &mut [u8]) -> &str {
    let length = syscall3(Sys::Argument as u64, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0);
    match usize::try_from(length) {
        Ok(length) if length <= buffer.len() => core::str::from_utf8(&buffer[..length]).unwrap_or(""),
        _ => "",
    }
}

/// The console as a `fmt::Write`, buffered: formatted pieces collect in a
/// stack buffer that goes out in one `write` (when full, or at `flush`), so
/// a line printed at once reaches the console whole instead of piece by
/// piece between other threads' output.
pub struct Console {
    buffer: [u8; 512],
    length: usize,
}

impl Console {
    pub const fn new() -> Self {
        Console { buffer: [0; 512], length: 0 }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<(), Error> {
        let pending = core::mem::take(&mut self.length);
        write(&self.buffer[..pending])
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut bytes = text.as_bytes();
        while !bytes.is_empty() {
            if self.length == self.buffer.len() {
                self.flush().map_err(|_| fmt::Error)?;
            }
            let room = self.buffer.len() - self.length;
            let taken = room.min(bytes.len());
            self.buffer[self.length..self.length + taken].copy_from_slice(&bytes[..taken]);
            self.length += taken;
            bytes = &bytes[taken..];
        }
        Ok(())
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let mut console = $crate::Console::new();
        let _ = core::fmt::Write::write_fmt(&mut console, format_args!($($arg)*));
        let _ = console.flush();
    }};
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut console = $crate::Console::new();
        let _ = core::fmt::Write::write_fmt(&mut console, format_args!("{}\n", format_args!($($arg)*)));
        let _ = console.flush();
    }};
}

unsafe extern "Rust" {
    /// The program's entry, defined by each program with `#[unsafe(no_mangle)]`.
    safe fn task_main() -> i64;
}

/// Where the kernel starts a task: the stack is set up, no argument.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text._start")]
extern "C" fn _start() -> ! {
    exit(task_main())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("task panicked: {}", info.message());
    if let Some(location) = info.location() {
        println!("    at {}:{}", location.file(), location.line());
    }
    exit(101)
}
