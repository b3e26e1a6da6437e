//! The contract between the Tenfold kernel and its isolated (ring-3) tasks:
//! system-call numbers, error codes, the user address-space layout and the
//! flags of each call. Plain types and constants only, shared by the kernel
//! (`kernel/`) and the task side (`user/lib`), the way Hubris keeps
//! `sys/abi`.
//!
//! Calling convention (`syscall` instruction): the number in `rax`,
//! arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`; the result comes back
//! in `rax`: a non-negative value on success, a negative [`Error`] on
//! failure. `rcx` and `r11` are clobbered (the CPU uses them); every other
//! register is preserved.
#![cfg_attr(not(test), no_std)]

/// Bumped whenever a number, an error code or an argument's meaning changes.
/// A task can ask the kernel for its version ([`Sys::AbiVersion`]).
pub const ABI_VERSION: u32 = 1;

/// System-call numbers.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sys {
    /// `exit(code: i64) -> !`: ends the task with `code`.
    Exit = 0,
    /// `yield() -> 0`: gives the CPU to another runnable thread.
    Yield = 1,
    /// `sleep(nanos: u64) -> 0`: sleeps at least `nanos` (at most
    /// [`MAX_SLEEP_NS`]).
    Sleep = 2,
    /// `clock() -> nanos`: nanoseconds since boot.
    Clock = 3,
    /// `write(ptr, len) -> len`: writes bytes to the console (at most
    /// [`MAX_WRITE`] per call).
    Write = 4,
    /// `map(len, flags) -> address`: maps `len` bytes (rounded up to pages)
    /// of zeroed anonymous memory, readable, writable if `flags` has
    /// [`MAP_WRITE`], never executable; counted against the task's quota.
    Map = 5,
    /// `unmap(address, len) -> 0`: unmaps pages a `map` made.
    Unmap = 6,
    /// `argument(ptr, len) -> length`: copies the task's argument string
    /// (up to `len` bytes) and returns its full length.
    Argument = 7,
    /// `abi_version() -> ABI_VERSION`.
    AbiVersion = 8,
}

impl Sys {
    /// The call with number `number`, if there is one.
    pub fn from_number(number: u64) -> Option<Sys> {
        Some(match number {
            0 => Sys::Exit,
            1 => Sys::Yield,
            2 => Sys::Sleep,
            3 => Sys::Clock,
            4 => Sys::Write,
            5 => Sys::Map,
            6 => Sys::Unmap,
            7 => Sys::Argument,
            8 => Sys::AbiVersion,
            _ => return None,
        })
    }
}

/// Why a call failed: returned negated in `rax`.
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such system call.
    NoSuchCall = -1,
    /// A pointer or range is not in the task's half, not mapped, or not
    /// mapped with the access the call needs.
    BadAddress = -2,
    /// A length is out of range.
    BadLength = -3,
    /// Some other argument is invalid (flags, alignment).
    BadArgument = -4,
    /// The task's memory quota does not cover the request.
    OutOfQuota = -5,
    /// The kernel has no memory left for the request.
    OutOfMemory = -6,
}

impl Error {
    /// The error a negative return value stands for.
    pub fn from_return(value: i64) -> Option<Error> {
        Some(match value {
            -1 => Error::NoSuchCall,
            -2 => Error::BadAddress,
            -3 => Error::BadLength,
            -4 => Error::BadArgument,
            -5 => Error::OutOfQuota,
            -6 => Error::OutOfMemory,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Error::NoSuchCall => "no such call",
            Error::BadAddress => "bad address",
            Error::BadLength => "bad length",
            Error::BadArgument => "bad argument",
            Error::OutOfQuota => "out of quota",
            Error::OutOfMemory => "out of memory",
        }
    }
}

/// `map` flag: the pages are writable.
pub const MAP_WRITE: u64 = 1;
/// Longest console write per call.
pub const MAX_WRITE: u64 = 4096;
/// Longest sleep per call (10 s): a task sleeps longer by calling again.
pub const MAX_SLEEP_NS: u64 = 10_000_000_000;

/// The user half of every task's address space.
pub mod layout {
    /// Lowest address a task may use (the first 64 KiB stay unmapped, so
    /// null and small offsets from it fault).
    pub const USER_START: u64 = 0x1_0000;
    /// One past the highest user address. The last page of the canonical
    /// lower half is left out, so a `syscall` in the last mapped page can
    /// never return to a non-canonical address.
    pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
    /// Where programs are linked (their image must lie below
    /// [`IMAGE_END`]).
    pub const IMAGE_BASE: u64 = 0x40_0000;
    pub const IMAGE_END: u64 = 0x1000_0000_0000;
    /// Anonymous mappings (`map`) are placed in this window.
    pub const MAP_START: u64 = 0x1000_0000_0000;
    pub const MAP_END: u64 = 0x7000_0000_0000;
    /// The stack: `STACK_SIZE` bytes below `STACK_TOP`, with an unmapped
    /// guard page below it.
    pub const STACK_TOP: u64 = 0x7fff_0000_0000;
    pub const STACK_SIZE: u64 = 64 * 1024;

    // The regions, in order, without overlap (checked when this compiles).
    const _: () = {
        assert!(USER_START < IMAGE_BASE && IMAGE_BASE < IMAGE_END);
        assert!(IMAGE_END <= MAP_START && MAP_START < MAP_END);
        assert!(MAP_END < STACK_TOP - STACK_SIZE - 4096 && STACK_TOP < USER_END);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_errors_round_trip() {
        for number in 0..16 {
            if let Some(call) = Sys::from_number(number) {
                assert_eq!(call as u64, number);
            }
        }
        assert_eq!(Sys::from_number(9), None);
        for value in -10..0 {
            if let Some(error) = Error::from_return(value) {
                assert_eq!(error as i64, value);
            }
        }
        assert_eq!(Error::from_return(0), None);
    }
}
