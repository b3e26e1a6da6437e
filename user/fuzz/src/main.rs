//! Calls the kernel with random system-call numbers, pointers and lengths
//! (N calls, N from the argument, default 100 000) and prints how many it
//! made and how many were refused. It never calls `exit` or sleeps long,
//! never writes its own memory to the console (that would only print
//! noise), and never lets a call that stores into task memory (`argument`,
//! `mailbox_receive`) aim at its own image or stack: the kernel would
//! rightly do it, and the fuzzer would overwrite its own GOT or return
//! addresses and die of it — such calls go to a scratch buffer instead.
//! Mailbox and socket calls get ids and handles it made as often as random
//! ones, and timeouts of at most 1 ms (a send to its own full mailbox may
//! wait that long). `spawn` gets random names (never, in practice, one
//! the initrd has) and `kill` random ids (it has no children to hit).
//! Everything else goes.
#![no_std]
#![no_main]

use tenfold_user::abi::{self, Sys, layout};
use tenfold_user::println;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An address that is interesting to the kernel's checks.
    fn pointer(&mut self, own: u64) -> u64 {
        match self.next() % 10 {
            0 => 0,
            1 => self.next(),
            2 => 0xffff_8000_0000_0000 + (self.next() % (1 << 32)),
            3 => 0xffff_ffff_8020_0000 + (self.next() % (1 << 20)),
            4 => layout::USER_END - (self.next() % 8192),
            5 => 0x0000_8000_0000_0000 - (self.next() % 64),
            6 => own + (self.next() % 65536),
            7 => layout::STACK_TOP - layout::STACK_SIZE - (self.next() % 8192),
            8 => layout::MAP_START + (self.next() % (1 << 24)),
            _ => u64::MAX - (self.next() % 4096),
        }
    }

    fn length(&mut self) -> u64 {
        match self.next() % 6 {
            0 => 0,
            1 => self.next() % 64,
            2 => self.next() % 65536,
            3 => u64::MAX - (self.next() % 16),
            4 => 1 << (self.next() % 64),
            _ => self.next(),
        }
    }
}

/// Whether `[pointer, pointer + length)` may touch this task's own memory,
/// which the fuzzer must not print.
fn own_memory(pointer: u64, length: u64) -> bool {
    let end = pointer.saturating_add(length.min(abi::MAX_WRITE));
    pointer < layout::USER_END && end > layout::USER_START && length != 0
}

/// Whether a store of at most `length` bytes at `pointer` could land in the
/// fuzzer's image (code, data, GOT) or stack — memory it runs on. The
/// `map` window is fair game: the fuzzer keeps nothing there.
fn runs_on(pointer: u64, length: u64, most: u64) -> bool {
    let end = pointer.saturating_add(length.min(most));
    let image = pointer < layout::IMAGE_END && end > layout::IMAGE_BASE;
    let stack = pointer < layout::USER_END && end > layout::STACK_TOP - layout::STACK_SIZE;
    length != 0 && (image || stack)
}

/// The most the kernel stores for `argument` (the shell's argument is short).
const ARGUMENT_MAX: u64 = 256;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 32];
    let calls: u64 = tenfold_user::argument(&mut buffer).parse().unwrap_or(100_000);
    let mut scratch = [0u8; ARGUMENT_MAX as usize];
    let mut message = [0u8; 4096];
    // Mailbox ids this task made (some closed since).
    let mut ids = [0u64; 8];
    // Socket handles this task made (some closed since).
    let mut sockets = [0u64; 8];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ tenfold_user::clock_ns());
    let own = task_main as *const () as usize as u64;
    let (mut refused, mut succeeded) = (0u64, 0u64);
    let start = tenfold_user::clock_ns();
    while succeeded + refused < calls {
        let number = match rng.next() % 8 {
            0 => rng.next(),
            1 => 23 + rng.next() % 1000,
            2 => 9 + rng.next() % 5,
            3 => 14 + rng.next() % 9,
            _ => rng.next() % 23,
        };
        let mut args =
            [rng.pointer(own), rng.length(), rng.next(), rng.next(), rng.pointer(own), rng.length()];
        match Sys::from_number(number) {
            Some(Sys::Exit) => continue,
            Some(Sys::Sleep) => args[0] %= 1000,
            Some(Sys::Write) if own_memory(args[0], args[1]) => args[0] = !args[0],
            Some(Sys::Argument) if runs_on(args[0], args[1], ARGUMENT_MAX) => {
                args[0] = scratch.as_mut_ptr() as u64 + args[0] % 16;
                args[1] %= ARGUMENT_MAX - 16;
            }
            Some(Sys::Map) => args[0] %= 1 << 24,
            Some(Sys::MailboxCreate) => args[0] %= 2 * abi::MAX_MAILBOX_CAPACITY,
            Some(
                call @ (Sys::MailboxSend | Sys::MailboxSendPages | Sys::MailboxReceive | Sys::MailboxClose),
            ) => {
                if rng.next().is_multiple_of(2) {
                    args[0] = ids[(rng.next() % ids.len() as u64) as usize];
                }
                args[1] = match rng.next() % 3 {
                    0 => rng.next() % 4,
                    1 => abi::mailbox::ANY_TAG,
                    _ => rng.next(),
                };
                args[3] = rng.length();
                // Mostly no wait, so the run stays short.
                args[4] = if rng.next().is_multiple_of(4) { args[4] % 1_000_000 } else { 0 };
                if call == Sys::MailboxSend && own_memory(args[2], args[3]) && rng.next().is_multiple_of(2) {
                    // Sometimes a valid message (from the scratch buffer).
                    args[2] = scratch.as_ptr() as u64;
                    args[3] %= ARGUMENT_MAX;
                }
                if call == Sys::MailboxReceive {
                    if runs_on(args[2], args[3], abi::MAX_MESSAGE) {
                        args[2] = message.as_mut_ptr() as u64;
                        args[3] %= message.len() as u64;
                    }
                    if runs_on(args[5], 32, 32) {
                        args[5] = scratch.as_mut_ptr() as u64;
                    }
                }
            }
            Some(
                call @ (Sys::SocketListen
                | Sys::SocketAccept
                | Sys::SocketRead
                | Sys::SocketWrite
                | Sys::SocketShutdown
                | Sys::SocketClose
                | Sys::SocketWait),
            ) => {
                if call == Sys::SocketListen {
                    // Mostly valid ports and bounds, so listeners get made.
                    args[0] %= 1 << 17;
                    args[1] %= 2 * abi::socket::MAX_BACKLOG;
                    args[2] %= 2 * abi::socket::MAX_CONNECTIONS;
                } else if rng.next().is_multiple_of(2) {
                    args[0] = sockets[(rng.next() % sockets.len() as u64) as usize];
                }
                // Every wait at most 1 ms, so the run stays short.
                let timeout = if rng.next().is_multiple_of(4) { rng.next() % 1_000_000 } else { 0 };
                match call {
                    Sys::SocketAccept => args[1] = timeout,
                    Sys::SocketWait => args[2] = timeout,
                    Sys::SocketRead | Sys::SocketWrite => {
                        args[3] = timeout;
                        if call == Sys::SocketRead && runs_on(args[1], args[2], abi::socket::MAX_IO) {
                            args[1] = message.as_mut_ptr() as u64;
                            args[2] %= message.len() as u64;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        let result = tenfold_user::syscall6(number, args);
        if result < 0 {
            refused += 1;
        } else {
            succeeded += 1;
            if number == Sys::MailboxCreate as u64 {
                ids[(rng.next() % ids.len() as u64) as usize] = result as u64;
            }
            if number == Sys::SocketListen as u64 || number == Sys::SocketAccept as u64 {
                sockets[(rng.next() % sockets.len() as u64) as usize] = result as u64;
            }
        }
    }
    core::hint::black_box(&scratch);
    core::hint::black_box(&message);
    let elapsed = tenfold_user::clock_ns() - start;
    println!(
        "fuzz: {} calls, {succeeded} succeeded, {refused} refused, {} ns per call",
        succeeded + refused,
        elapsed / (succeeded + refused).max(1)
    );
    0
}
