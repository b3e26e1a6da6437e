//! Copy versus page transfer between two tasks, by message size, and the
//! round trip. `run ipcbench serve` prints its mailbox id and consumes
//! what arrives (copies into a 64 KiB buffer; pages are unmapped);
//! `run ipcbench <id>` streams messages of each size at it — copies from
//! one buffer, page transfers of freshly mapped and written pages (what a
//! producer that hands its buffers away does) — and prints ns per message
//! and MB/s, each stream ended by a sync round trip; then 8-byte
//! ping-pongs for the round-trip time.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;

use tenfold_user::abi::Error;
use tenfold_user::abi::mailbox::FOREVER;
use tenfold_user::mailbox::{Address, Mailbox, Pages};
use tenfold_user::{PAGE_SIZE, clock_ns, println};

const DATA: u32 = 1;
const SYNC: u32 = 2;
const STOP: u32 = 3;
const ACK: u32 = 4;
/// Bytes streamed per size (fewer messages for the big ones).
const BUDGET: u64 = 4 << 20;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    if argument == "serve" {
        return serve();
    }
    match Address::parse(argument) {
        Some(server) => client(server),
        None => {
            println!("ipcbench: expected `serve` or a mailbox id");
            2
        }
    }
}

fn serve() -> i64 {
    let Ok(mailbox) = Mailbox::create(16) else { return 1 };
    println!("ipcbench: serving on mailbox {}", mailbox.address());
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let received = match mailbox.recv(&mut buffer) {
            Ok(received) => received,
            Err(error) => {
                println!("ipcbench: receive failed: {error:?}");
                return 1;
            }
        };
        match received.tag {
            // Pages (if any) are unmapped as `received` drops.
            DATA => {}
            SYNC => {
                let reply = Address(u64::from_le_bytes(buffer[..8].try_into().unwrap()));
                if reply.send(ACK, &[]).is_err() {
                    return 1;
                }
            }
            STOP => return 0,
            _ => return 1,
        }
    }
}

fn sync(server: Address, replies: &Mailbox) -> bool {
    let mut answer = [0u8; 8];
    server.send(SYNC, &replies.address().0.to_le_bytes()).is_ok()
        && replies.recv(&mut answer).is_ok_and(|received| received.tag == ACK)
}

fn report(kind: &str, size: u64, messages: u64, elapsed: u64) {
    let per_message = elapsed / messages.max(1);
    let mb_per_s = (size * messages * 1000) / elapsed.max(1);
    println!(
        "ipcbench: {kind} {size:>6} B: {messages:>5} messages, {per_message:>7} ns each, {mb_per_s:>5} MB/s"
    );
}

fn client(server: Address) -> i64 {
    let Ok(replies) = Mailbox::create(4) else { return 1 };
    let data = vec![0x5au8; 64 * 1024];
    for size in [64u64, 1024, 4096, 16384, 65536] {
        let messages = (BUDGET / size).min(4000);
        let start = clock_ns();
        for _ in 0..messages {
            if server.send(DATA, &data[..size as usize]).is_err() {
                return 1;
            }
        }
        if !sync(server, &replies) {
            return 1;
        }
        report("copy ", size, messages, clock_ns() - start);
    }
    for pages in [1u64, 4, 16, 64] {
        let size = pages * PAGE_SIZE;
        let messages = (BUDGET / size).min(4000);
        let start = clock_ns();
        for _ in 0..messages {
            // Pages in flight still count against this task's quota (or
            // its 64 regions) until the server takes them: when it lags,
            // wait for it as the send does, a bounded number of times.
            let mut buffer = match map_waiting(pages) {
                Ok(buffer) => buffer,
                Err(error) => {
                    println!("ipcbench: mapping {pages} pages failed: {error:?}");
                    return 1;
                }
            };
            // Produce into it: one write per page (the payload's owner
            // would fill it; touching each page is the least it costs).
            for page in buffer.bytes_mut().chunks_mut(PAGE_SIZE as usize) {
                page[0] = 0x5a;
            }
            // Over the queued-bytes quota the send fails instead of
            // parking: the pages come back, and we let the server catch up.
            let mut pending = buffer;
            loop {
                match server.send_pages(DATA, pending, FOREVER) {
                    Ok(()) => break,
                    Err((Error::OutOfQuota, back)) => {
                        pending = back;
                        tenfold_user::yield_now();
                    }
                    Err((error, _)) => {
                        println!("ipcbench: page send failed: {error:?}");
                        return 1;
                    }
                }
            }
        }
        if !sync(server, &replies) {
            return 1;
        }
        report("pages", size, messages, clock_ns() - start);
    }
    let rounds = 2000;
    let start = clock_ns();
    for _ in 0..rounds {
        if !sync(server, &replies) {
            return 1;
        }
    }
    println!("ipcbench: round trip {} ns ({rounds} rounds of 8 bytes)", (clock_ns() - start) / rounds);
    let _ = server.send(STOP, &[]);
    0
}

/// `Pages::map`, retried after a yield while it is refused (up to 100 000
/// times): the server unmapping what it took gives the room back.
fn map_waiting(pages: u64) -> Result<Pages, Error> {
    let mut tries = 0;
    loop {
        match Pages::map(pages) {
            Ok(buffer) => return Ok(buffer),
            Err(error) if tries == 100_000 => return Err(error),
            Err(_) => {
                tries += 1;
                tenfold_user::yield_now();
            }
        }
    }
}
