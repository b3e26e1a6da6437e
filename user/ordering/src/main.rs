//! Several senders, one mailbox: per-sender FIFO holds, order across
//! senders does not exist. `run ordering receive:<senders>:<each>` prints
//! its mailbox id and takes `senders × each` numbered messages, checking
//! that each sender's numbers arrive in order and counting how often the
//! arrival switches between senders (the interleaving); `run ordering
//! send:<id>:<index>:<count>` is one sender.
#![no_std]
#![no_main]

use tenfold_user::mailbox::{Address, Mailbox};
use tenfold_user::{clock_ns, println};

const MAX_SENDERS: usize = 8;
const DATA: u32 = 1;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    let mut parts = argument.split(':');
    let mode = parts.next().unwrap_or("");
    let mut number = || parts.next().and_then(|n| n.parse::<u64>().ok());
    match (mode, number(), number(), number()) {
        ("receive", Some(senders), Some(each), None) if (1..=MAX_SENDERS as u64).contains(&senders) => {
            receive(senders as usize, each)
        }
        ("send", Some(id), Some(index), Some(count)) => send(Address(id), index, count),
        _ => {
            println!("ordering: expected receive:<senders>:<each> or send:<id>:<index>:<count>");
            2
        }
    }
}

fn send(to: Address, index: u64, count: u64) -> i64 {
    let mut message = [0u8; 16];
    message[..8].copy_from_slice(&index.to_le_bytes());
    for sequence in 0..count {
        message[8..].copy_from_slice(&sequence.to_le_bytes());
        if let Err(error) = to.send(DATA, &message) {
            println!("ordering: sender {index} failed at {sequence}: {error:?}");
            return 1;
        }
    }
    println!("ordering: sender {index} sent {count}");
    0
}

fn receive(senders: usize, each: u64) -> i64 {
    let Ok(mailbox) = Mailbox::create(64) else { return 1 };
    println!("ordering: receiving on mailbox {}", mailbox.address());
    // Per sender index: its task id and the next number expected.
    let mut next = [(0u64, 0u64); MAX_SENDERS];
    let mut arrival = [0u8; 24];
    let (mut switches, mut last) = (0u64, usize::MAX);
    let total = senders as u64 * each;
    let mut message = [0u8; 16];
    let mut start = 0;
    for received_count in 0..total {
        let received = match mailbox.recv(&mut message) {
            Ok(received) => received,
            Err(error) => {
                println!("ordering: receive failed: {error:?}");
                return 1;
            }
        };
        if received_count == 0 {
            start = clock_ns();
        }
        let index = u64::from_le_bytes(message[..8].try_into().unwrap()) as usize;
        let sequence = u64::from_le_bytes(message[8..].try_into().unwrap());
        if index >= senders || received.length != 16 {
            println!("ordering: a message from no sender of ours ({index}, {} bytes)", received.length);
            return 1;
        }
        let (task, expected) = &mut next[index];
        if *expected == 0 {
            *task = received.sender;
        }
        if sequence != *expected || received.sender != *task {
            println!(
                "ordering: FIFO VIOLATED: sender {index} (task {}) sent {sequence}, expected {expected}",
                received.sender
            );
            return 1;
        }
        *expected += 1;
        if last != index {
            switches += u64::from(last != usize::MAX);
            last = index;
        }
        if let Some(slot) = arrival.get_mut(received_count as usize) {
            *slot = b'0' + index as u8;
        }
    }
    let elapsed = clock_ns() - start;
    let shown = core::str::from_utf8(&arrival[..(total as usize).min(arrival.len())]).unwrap_or("");
    println!(
        "ordering: {total} messages from {senders} senders, per-sender FIFO held; {switches} switches between senders; first arrivals {shown}; {} ns per message",
        elapsed / total.max(1)
    );
    0
}
