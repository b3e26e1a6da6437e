//! Two tasks exchanging messages through mailboxes. `run pingpong serve`
//! prints its mailbox id and answers every ping with a pong carrying the
//! same bytes; `run pingpong <id>:<n>` sends `n` numbered pings, each
//! with its own reply mailbox, and checks that every pong comes back in
//! order with its content intact (per sender→receiver FIFO), then prints
//! the round-trip time. The client also shows selective receive and that a
//! closed mailbox's id stays dead when its slot is reused.
#![no_std]
#![no_main]

use tenfold_user::abi::Error;
use tenfold_user::abi::mailbox::FOREVER;
use tenfold_user::mailbox::{Address, Mailbox};
use tenfold_user::{clock_ns, println};

const PING: u32 = 1;
const PONG: u32 = 2;
const STOP: u32 = 3;
const MESSAGE: usize = 64;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    if argument == "serve" {
        return serve();
    }
    let mut parts = argument.split(':');
    let server = parts.next().and_then(Address::parse);
    let count = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    match server {
        Some(server) => client(server, count),
        None => {
            println!("pingpong: expected `serve` or `<mailbox id>:<count>`");
            2
        }
    }
}

fn serve() -> i64 {
    let Ok(mailbox) = Mailbox::create(8) else { return 1 };
    println!("pingpong: serving on mailbox {}", mailbox.address());
    let mut message = [0u8; MESSAGE];
    let mut served = 0u64;
    loop {
        let received = match mailbox.recv(&mut message) {
            Ok(received) => received,
            Err(error) => {
                println!("pingpong: receive failed: {error:?}");
                return 1;
            }
        };
        match received.tag {
            PING => {
                let reply = Address(u64::from_le_bytes(message[8..16].try_into().unwrap()));
                if let Err(error) = reply.send(PONG, &message[..received.length]) {
                    println!("pingpong: reply failed: {error:?}");
                    return 1;
                }
                served += 1;
            }
            STOP => {
                println!("pingpong: served {served} pings");
                return 0;
            }
            tag => println!("pingpong: unexpected tag {tag}"),
        }
    }
}

/// The bytes of ping `sequence`: its number, the reply id, then a pattern.
fn ping(sequence: u64, reply: Address) -> [u8; MESSAGE] {
    let mut message = [0u8; MESSAGE];
    message[..8].copy_from_slice(&sequence.to_le_bytes());
    message[8..16].copy_from_slice(&reply.0.to_le_bytes());
    for (index, byte) in message[16..].iter_mut().enumerate() {
        *byte = (sequence as u8).wrapping_mul(31).wrapping_add(index as u8);
    }
    message
}

fn client(server: Address, count: u64) -> i64 {
    let Ok(replies) = Mailbox::create(8) else { return 1 };
    let mut answer = [0u8; MESSAGE];
    let mut server_task = None;
    let start = clock_ns();
    for sequence in 0..count {
        let sent = ping(sequence, replies.address());
        if let Err(error) = server.send(PING, &sent) {
            println!("pingpong: send {sequence} failed: {error:?}");
            return 1;
        }
        let received = match replies.recv(&mut answer) {
            Ok(received) => received,
            Err(error) => {
                println!("pingpong: receive {sequence} failed: {error:?}");
                return 1;
            }
        };
        let from = *server_task.get_or_insert(received.sender);
        if received.tag != PONG || received.length != MESSAGE || answer != sent || received.sender != from {
            println!(
                "pingpong: pong {sequence} wrong (tag {}, {} bytes, from {})",
                received.tag, received.length, received.sender
            );
            return 1;
        }
    }
    let elapsed = clock_ns() - start;
    let _ = server.send(STOP, &[]);
    println!(
        "pingpong: {count} round trips with task {}, order and content intact, {} ns per round trip",
        server_task.unwrap_or(0),
        elapsed / count.max(1)
    );
    selective_receive(&replies);
    stale_ids();
    0
}

/// Two messages to ourselves; asking for the younger one's tag takes it
/// first, and the older one is still there.
fn selective_receive(mailbox: &Mailbox) {
    let me = mailbox.address();
    let (first, second) = (me.try_send(7, b"older"), me.try_send(8, b"younger"));
    let mut buffer = [0u8; 16];
    let tagged = mailbox.recv_tagged(8, &mut buffer, 0).map(|r| r.tag);
    let next = mailbox.try_recv(&mut buffer).map(|r| r.tag);
    println!(
        "pingpong: selective receive: sent {first:?} {second:?}, tag 8 first -> {tagged:?}, then -> {next:?}"
    );
}

/// A closed mailbox's id fails cleanly, also after its slot is reused.
fn stale_ids() {
    let Ok(old) = Mailbox::create(1) else { return };
    let stale = old.address();
    let _ = old.close();
    let after_close = stale.try_send(1, b"x");
    let Ok(new) = Mailbox::create(1) else { return };
    let same_slot = new.address().0 as u32 == stale.0 as u32;
    let stale_again = stale.try_send(1, b"x");
    let fresh = new.address().send_timeout(1, b"x", FOREVER);
    let shown = |result: Result<(), Error>| match result {
        Ok(()) => "Ok",
        Err(error) => error.name(),
    };
    println!(
        "pingpong: closed mailbox -> {}; slot reused: {same_slot}, old id -> {}, new id -> {}",
        shown(after_close),
        shown(stale_again),
        shown(fresh)
    );
}
