//! A bounded mailbox pushes back. `run backpressure receive` makes a data
//! mailbox of 4 messages and a control mailbox and prints both ids; `run
//! backpressure send:<data>:<control>` fills the data mailbox, sees
//! `try_send` and a send with a 10 ms timeout fail with `Full`, tells the
//! receiver so, then parks in a blocking send until the receiver — which
//! waits a moment first — drains, and sends the rest; the receiver checks
//! that all arrive in order.
#![no_std]
#![no_main]

use tenfold_user::abi::Error;
use tenfold_user::mailbox::{Address, Mailbox};
use tenfold_user::{clock_ns, println, sleep_ns};

const CAPACITY: u64 = 4;
const MESSAGES: u64 = 20;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    let mut parts = argument.split(':');
    match (parts.next(), parts.next().and_then(Address::parse), parts.next().and_then(Address::parse)) {
        (Some("receive"), None, None) => receive(),
        (Some("send"), Some(data), Some(control)) => send(data, control),
        _ => {
            println!("backpressure: expected `receive` or `send:<data id>:<control id>`");
            2
        }
    }
}

fn receive() -> i64 {
    let (Ok(data), Ok(control)) = (Mailbox::create(CAPACITY), Mailbox::create(1)) else { return 1 };
    println!("backpressure: data mailbox {} control {}", data.address(), control.address());
    let mut message = [0u8; 8];
    if control.recv(&mut message).is_err() {
        return 1;
    }
    // Let the sender park on the full mailbox before making room.
    let _ = sleep_ns(50_000_000);
    for expected in 0..MESSAGES {
        match data.recv(&mut message) {
            Ok(_) if u64::from_le_bytes(message) == expected => {}
            other => {
                println!("backpressure: message {expected} wrong: {other:?}");
                return 1;
            }
        }
    }
    println!("backpressure: drained {MESSAGES} messages in order");
    0
}

fn send(data: Address, control: Address) -> i64 {
    for sequence in 0..CAPACITY {
        if let Err(error) = data.try_send(1, &sequence.to_le_bytes()) {
            println!("backpressure: try_send {sequence} into an empty slot failed: {error:?}");
            return 1;
        }
    }
    let when_full = data.try_send(1, &CAPACITY.to_le_bytes());
    let start = clock_ns();
    let with_timeout = data.send_timeout(1, &CAPACITY.to_le_bytes(), 10_000_000);
    let waited = clock_ns() - start;
    if when_full != Err(Error::Full) || with_timeout != Err(Error::Full) {
        println!("backpressure: full mailbox accepted: {when_full:?} {with_timeout:?}");
        return 1;
    }
    let _ = control.send(1, b"full");
    let start = clock_ns();
    for sequence in CAPACITY..MESSAGES {
        if let Err(error) = data.send(1, &sequence.to_le_bytes()) {
            println!("backpressure: blocking send {sequence} failed: {error:?}");
            return 1;
        }
        if sequence == CAPACITY {
            let parked = clock_ns() - start;
            println!(
                "backpressure: try_send on a full mailbox -> Full; send with a 10 ms timeout -> Full after {} us; blocking send parked {} us until the receiver made room",
                waited / 1000,
                parked / 1000
            );
        }
    }
    println!("backpressure: sent {MESSAGES}");
    0
}
