//! `echo-actor`: the actor echo server's handler, one task per connection
//! (`kernel/src/net/actor.rs` starts it). Its argument is the id of the
//! mailbox the kernel made for it, then `,chaos` under `chaos=on`; the
//! connection it serves arrives there as a kernel message (tag
//! `CONNECTION_TAG`, the lent socket's handle), taken by selective receive. It
//! echoes with blocking reads and writes until end of stream, shuts its
//! side down and exits 0 — also when the peer reset the connection (the
//! connection is over, which is a normal end). Under chaos, a stream
//! carrying `TENFOLD-CRASH` makes it fault for real in ring 3: a write to
//! an address nothing is mapped at; the kernel reports the fault and the
//! supervisor starts a new handler on the same connection. `TENFOLD-BLOCK`
//! makes it sleep 300 ms (a blocking call: only this task waits) and
//! `TENFOLD-SPIN` loop 300 ms without a system call (only the timer takes
//! the CPU from it) — the lab's blocking and fairness demos.
#![no_std]
#![no_main]

use tenfold_runtime::chaos::{Marker, MarkerScanner, STALL_MS};
use tenfold_user::abi::Error;
use tenfold_user::abi::mailbox::{CONNECTION_TAG, KERNEL_SENDER};
use tenfold_user::mailbox::Mailbox;
use tenfold_user::println;
use tenfold_user::socket::Socket;

/// Bytes per read: one system call's most.
const BUFFER: usize = tenfold_user::abi::socket::MAX_IO as usize;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut argument = [0u8; 64];
    let argument = tenfold_user::argument(&mut argument);
    let mut words = argument.split(',');
    let Some(mailbox) = words.next().and_then(|word| word.parse::<u64>().ok()) else {
        println!("echo-actor: expected a mailbox id, got `{argument}`");
        return 2;
    };
    let chaos = words.next() == Some("chaos");
    let Some(connection) = take_connection(&Mailbox::given(mailbox)) else { return 2 };
    let mut buffer = [0u8; BUFFER];
    let mut scanner = MarkerScanner::default();
    loop {
        let count = match connection.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            // The peer is gone: nothing left to serve.
            Err(Error::Reset | Error::Closed) => return 0,
            Err(error) => {
                println!("echo-actor: read failed: {}", error.name());
                return 3;
            }
        };
        if chaos {
            match scanner.feed(&buffer[..count]) {
                Some(Marker::Crash) => crash(),
                Some(Marker::Block) => {
                    let _ = tenfold_user::sleep_ns(STALL_MS * 1_000_000);
                }
                Some(Marker::Spin) => {
                    let until = tenfold_user::clock_ns() + STALL_MS * 1_000_000;
                    while tenfold_user::clock_ns() < until {
                        core::hint::spin_loop();
                    }
                }
                None => {}
            }
        }
        match connection.write_all(&buffer[..count]) {
            Ok(()) => {}
            Err(Error::Reset | Error::Closed) => return 0,
            Err(error) => {
                println!("echo-actor: write failed: {}", error.name());
                return 3;
            }
        }
    }
    let _ = connection.shutdown();
    // Dropping it closes it: a FIN after the echo.
    drop(connection);
    0
}

/// The connection the kernel handed over in `mailbox` (it is queued
/// before this task runs, so waiting a second is only a bound).
fn take_connection(mailbox: &Mailbox) -> Option<Socket> {
    let mut body = [0u8; 8];
    match mailbox.recv_tagged(CONNECTION_TAG, &mut body, 1_000_000_000) {
        Ok(got) if got.sender == KERNEL_SENDER && got.length == body.len() => {
            Some(Socket::lent(u64::from_le_bytes(body)))
        }
        Ok(got) => {
            println!("echo-actor: a malformed handoff ({} bytes from {})", got.length, got.sender);
            None
        }
        Err(error) => {
            println!("echo-actor: no connection handed over: {}", error.name());
            None
        }
    }
}

/// A real CPU fault in ring 3: a write to an address nothing is mapped at.
fn crash() -> ! {
    let address = 0x0000_dead_0000 as *mut u64;
    // SAFETY: none is possible — this write faults on purpose (the address
    // is in the user half, never mapped); the kernel kills this task only.
    unsafe { address.write_volatile(1) };
    unreachable!("the write above faults")
}
