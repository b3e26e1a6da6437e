//! Sockets from ring 3 (system calls 14–20), for `tests/sockets.rs`:
//!
//! The argument is one word (the shell's `run` passes one): the mode and
//! its numbers separated by commas.
//!
//! - `echo,<port>,<n>`: listens on `port`, serves `n` connections one after
//!   another with blocking reads and writes until each peer finishes, then
//!   shuts down and closes; prints the bytes echoed.
//! - `hostile,<port>,<foreign>`: every kind of bad argument — forged and
//!   stale handles, `foreign` (another task's handle), bad, kernel and
//!   read-only pointers, huge lengths, bad ports and bounds, a full table —
//!   must come back as the right error; prints each check and exits 0 only
//!   if all held.
//! - `hold,<port>,<n>`: accepts `n` connections, reads a byte from each,
//!   then faults with them open (the kernel must reset them and reclaim
//!   everything).
#![no_std]
#![no_main]

use tenfold_user::abi::socket::{MAX_BACKLOG, MAX_CONNECTIONS, MAX_IO, MAX_SOCKETS, TRY, make_handle};
use tenfold_user::abi::{Error, Sys, layout};
use tenfold_user::socket::Socket;
use tenfold_user::{println, syscall3, syscall6};

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut argument = [0u8; 96];
    let argument = tenfold_user::argument(&mut argument);
    let mut words = argument.split(',');
    let mode = words.next().unwrap_or("");
    let port: u16 = words.next().and_then(|word| word.parse().ok()).unwrap_or(7100);
    let number: u64 = words.next().and_then(|word| word.parse().ok()).unwrap_or(1);
    match mode {
        "echo" => echo(port, number),
        "hostile" => hostile(port, number),
        "hold" => hold(port, number),
        _ => {
            println!("sockets: expected echo|hostile|hold,<port>,<n>, got `{argument}`");
            2
        }
    }
}

/// Listens on `port`; a port just released by a task that died may take
/// the network thread a moment to free.
fn listen(port: u16, max_connections: u64) -> Result<Socket, Error> {
    let mut tries = 0;
    loop {
        match Socket::listen(port, 4, max_connections) {
            Err(Error::AddressInUse) if tries < 100 => {
                tries += 1;
                let _ = tenfold_user::sleep_ns(10_000_000);
            }
            other => return other,
        }
    }
}

fn echo(port: u16, connections: u64) -> i64 {
    let listener = match listen(port, connections) {
        Ok(listener) => listener,
        Err(error) => {
            println!("sockets: listen failed: {}", error.name());
            return 1;
        }
    };
    println!("sockets: listening on {port} (handle {})", listener.handle());
    let mut buffer = [0u8; MAX_IO as usize];
    let mut echoed = 0u64;
    for _ in 0..connections {
        let connection = match listener.accept() {
            Ok(connection) => connection,
            Err(error) => {
                println!("sockets: accept failed: {}", error.name());
                return 1;
            }
        };
        loop {
            match connection.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => {
                    if let Err(error) = connection.write_all(&buffer[..count]) {
                        println!("sockets: write failed: {}", error.name());
                        return 1;
                    }
                    echoed += count as u64;
                }
                Err(error) => {
                    println!("sockets: read failed: {}", error.name());
                    return 1;
                }
            }
        }
        let _ = connection.shutdown();
        if let Err(error) = connection.close() {
            println!("sockets: close failed: {}", error.name());
            return 1;
        }
    }
    println!("sockets: echoed {echoed} bytes on {connections} connections");
    0
}

fn hold(port: u16, connections: u64) -> i64 {
    let Ok(listener) = listen(port, connections) else { return 1 };
    let mut held = [const { None }; 8];
    let mut byte = [0u8; 1];
    for slot in held.iter_mut().take(connections as usize) {
        let Ok(connection) = listener.accept() else { return 1 };
        let _ = connection.read(&mut byte);
        *slot = Some(connection);
    }
    core::hint::black_box(&held);
    // SAFETY: none is possible — a write to an address never mapped, on
    // purpose: the task dies holding its sockets.
    unsafe { (0x0000_dead_0000 as *mut u64).write_volatile(1) };
    0
}

/// One hostile call and the error it must get.
fn expect(what: &str, result: i64, wanted: Error, failures: &mut u32) {
    if result == wanted as i64 {
        println!("sockets: ok: {what} -> {}", wanted.name());
    } else {
        *failures += 1;
        let got = Error::from_return(result).map_or("success", Error::name);
        println!("sockets: FAILED: {what} -> {got} ({result}), expected {}", wanted.name());
    }
}

fn call(number: Sys, args: [u64; 4]) -> i64 {
    syscall6(number as u64, [args[0], args[1], args[2], args[3], 0, 0])
}

fn hostile(port: u16, foreign: u64) -> i64 {
    let mut failures = 0;
    let f = &mut failures;
    let mut buffer = [0u8; 64];
    let buf = buffer.as_mut_ptr() as u64;
    // Another task's handle names nothing here (the table is empty).
    expect(
        "read with another task's handle",
        call(Sys::SocketRead, [foreign, buf, 64, TRY]),
        Error::NoSuchSocket,
        f,
    );
    expect("close another task's handle", call(Sys::SocketClose, [foreign, 0, 0, 0]), Error::NoSuchSocket, f);
    expect(
        "accept on another task's handle",
        call(Sys::SocketAccept, [foreign, TRY, 0, 0]),
        Error::NoSuchSocket,
        f,
    );
    for forged in [0, u64::MAX, make_handle(63, 1), make_handle(1_000_000, 1), make_handle(0, 0)] {
        expect(
            "write with a forged handle",
            call(Sys::SocketWrite, [forged, buf, 8, TRY]),
            Error::NoSuchSocket,
            f,
        );
    }
    // Bad ports and bounds.
    expect("listen on port 0", syscall3(Sys::SocketListen as u64, 0, 4, 4), Error::BadArgument, f);
    expect("listen on port 70000", syscall3(Sys::SocketListen as u64, 70_000, 4, 4), Error::BadArgument, f);
    expect("listen on the echo port", syscall3(Sys::SocketListen as u64, 7, 4, 4), Error::AddressInUse, f);
    let port64 = u64::from(port);
    expect("listen with backlog 0", syscall3(Sys::SocketListen as u64, port64, 0, 4), Error::BadArgument, f);
    expect(
        "listen with a huge backlog",
        syscall3(Sys::SocketListen as u64, port64, MAX_BACKLOG + 1, 4),
        Error::BadArgument,
        f,
    );
    expect(
        "listen with a huge cap",
        syscall3(Sys::SocketListen as u64, port64, 4, MAX_CONNECTIONS + 1),
        Error::BadArgument,
        f,
    );
    // A real listener, then bad memory with it.
    let listener = match listen(port, 4) {
        Ok(listener) => listener,
        Err(error) => {
            println!("sockets: FAILED: listen -> {}", error.name());
            return 1;
        }
    };
    let l = listener.handle();
    expect(
        "listen on a port taken",
        syscall3(Sys::SocketListen as u64, port64, 4, 4),
        Error::AddressInUse,
        f,
    );
    expect("accept with nobody connecting", call(Sys::SocketAccept, [l, TRY, 0, 0]), Error::Timeout, f);
    expect("read into null", call(Sys::SocketRead, [l, 0, 16, TRY]), Error::BadAddress, f);
    expect(
        "read into the kernel",
        call(Sys::SocketRead, [l, 0xffff_8000_0000_0000, 16, TRY]),
        Error::BadAddress,
        f,
    );
    expect(
        "read into the kernel image",
        call(Sys::SocketRead, [l, 0xffff_ffff_8020_0000, 16, TRY]),
        Error::BadAddress,
        f,
    );
    let code = task_main as *const () as usize as u64;
    expect("read into read-only code", call(Sys::SocketRead, [l, code, 16, TRY]), Error::BadAddress, f);
    expect(
        "read into the last user page",
        call(Sys::SocketRead, [l, layout::USER_END - 8, 16, TRY]),
        Error::BadAddress,
        f,
    );
    expect(
        "read with a wrapping range",
        call(Sys::SocketRead, [l, u64::MAX - 4, 16, TRY]),
        Error::BadAddress,
        f,
    );
    expect(
        "write from the kernel",
        call(Sys::SocketWrite, [l, 0xffff_8000_0000_0000, 16, TRY]),
        Error::BadAddress,
        f,
    );
    expect(
        "write a huge length from null",
        call(Sys::SocketWrite, [l, 0, u64::MAX, TRY]),
        Error::BadAddress,
        f,
    );
    expect("read from a listener", call(Sys::SocketRead, [l, buf, 16, TRY]), Error::BadArgument, f);
    expect("wait with unknown interest", call(Sys::SocketWait, [l, 0x80, TRY, 0]), Error::BadArgument, f);
    expect("shut a listener down", call(Sys::SocketShutdown, [l, 0, 0, 0]), Error::BadArgument, f);
    // Stale: closed, then its slot reused.
    if let Err(error) = listener.close() {
        println!("sockets: FAILED: close -> {}", error.name());
        *f += 1;
    }
    expect("accept on a closed handle", call(Sys::SocketAccept, [l, TRY, 0, 0]), Error::NoSuchSocket, f);
    let again = listen(port, 4);
    if let Ok(again) = &again
        && again.handle() != l
        && again.handle() as u32 == l as u32
    {
        println!("sockets: ok: the slot was reused under a new generation");
    } else {
        println!("sockets: FAILED: the second listener {again:?} (first {l:#x})");
        *f += 1;
    }
    expect("close a stale handle", call(Sys::SocketClose, [l, 0, 0, 0]), Error::NoSuchSocket, f);
    drop(again);
    // A full table.
    let mut many = [const { None }; MAX_SOCKETS as usize];
    let mut opened = 0;
    for (index, slot) in many.iter_mut().enumerate() {
        match Socket::listen(port + 1 + index as u16, 1, 1) {
            Ok(socket) => {
                *slot = Some(socket);
                opened += 1;
            }
            Err(error) => {
                println!("sockets: FAILED: listener {index} -> {}", error.name());
                *f += 1;
                break;
            }
        }
    }
    let beyond = port64 + 1 + MAX_SOCKETS;
    expect(
        "one socket more than the table holds",
        syscall3(Sys::SocketListen as u64, beyond, 1, 1),
        Error::OutOfQuota,
        f,
    );
    drop(many);
    println!("sockets: {opened} listeners held at once; hostile checks done, {failures} failed");
    i64::from(failures != 0)
}
