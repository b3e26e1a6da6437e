//! `demo=ordering`: what order the event loop's executor and the CSP
//! channels promise, and what they do not.
//!
//! - Executor: tasks run in the order they became ready, turn after turn
//!   (Node's FIFO job queues): every task is spawned, then each yields once;
//!   both rounds must come out in spawn order.
//! - Channel: several sender threads on one bounded channel — each
//!   sender's messages arrive in the order it sent them (a channel is FIFO),
//!   while the senders' messages interleave (no order across senders).
//! - Across channels: one sender alternates between two channels with a
//!   rising sequence number; a receiver `select`s over both. Go's failure
//!   mode "assuming ordering across channels": the receiver sees numbers
//!   out of order (inversions), though each channel alone stays FIFO.
//!
//! Records `@lab ordering unit=… messages=… fifo=held|violated …`.

use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::time::Duration;

use tenfold_runtime::executor::{Executor, Limits, yield_now};

use crate::sync::{self, Select};
use crate::time;

const TASKS: u32 = 10_000;
const SENDERS: u64 = 4;
const PER_SENDER: u64 = 250_000;
const CROSS_MESSAGES: u64 = 100_000;
const CAPACITY: usize = 64;

pub fn demo() -> bool {
    executor_fifo() && channel_fifo() && across_channels()
}

fn executor_fifo() -> bool {
    let mut executor = Executor::new(Limits { max_tasks: TASKS as usize + 16 }, Arc::new(|| {}));
    let handle = executor.handle();
    let order: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(Vec::with_capacity(2 * TASKS as usize)));
    for index in 0..TASKS {
        let order = order.clone();
        let spawned = handle.spawn(async move {
            order.borrow_mut().push(index);
            yield_now().await;
            order.borrow_mut().push(index);
        });
        if spawned.is_err() {
            log::error!("ordering: cannot spawn task {index}");
            return false;
        }
    }
    let start = time::now_ns();
    let mut turns = 0u64;
    loop {
        let turn = executor.turn(time::now_ns(), &mut |_| {});
        turns += 1;
        if !turn.more_ready && turn.ran == 0 {
            break;
        }
    }
    let elapsed = time::now_ns() - start;
    let order = order.borrow();
    let expected = (0..TASKS).chain(0..TASKS);
    let out_of_order = order.iter().zip(expected).filter(|(got, want)| **got != *want).count();
    let fifo = out_of_order == 0 && order.len() == 2 * TASKS as usize;
    record!(
        "ordering unit=executor messages={} fifo={} out_of_order={out_of_order} turns={turns} ns_per_message={}",
        order.len(),
        if fifo { "held" } else { "violated" },
        elapsed / (2 * u64::from(TASKS))
    );
    true
}

fn channel_fifo() -> bool {
    let (sender, receiver) = sync::channel::<u64>(CAPACITY);
    let start = time::now_ns();
    let mut tids = Vec::new();
    for index in 0..SENDERS {
        let sender = sender.clone();
        let spawned = super::spawn_helper("order-send", move || {
            for sequence in 0..PER_SENDER {
                if sender.send(index << 32 | sequence).is_err() {
                    return;
                }
            }
        });
        let Some(tid) = spawned else { return false };
        tids.push(tid);
    }
    drop(sender);
    let mut next = [0u64; SENDERS as usize];
    let (mut violations, mut switches, mut last, mut received) = (0u64, 0u64, u64::MAX, 0u64);
    while let Ok(message) = receiver.recv() {
        let (index, sequence) = (message >> 32, message & 0xffff_ffff);
        let expected = &mut next[index as usize];
        if sequence != *expected {
            violations += 1;
        }
        *expected = sequence + 1;
        if index != last {
            switches += u64::from(last != u64::MAX);
            last = index;
        }
        received += 1;
    }
    let elapsed = time::now_ns() - start;
    super::wait_gone(&tids);
    record!(
        "ordering unit=channel messages={received} senders={SENDERS} fifo={} violations={violations} switches={switches} ns_per_message={}",
        if violations == 0 && received == SENDERS * PER_SENDER { "held" } else { "violated" },
        elapsed / received.max(1)
    );
    true
}

fn across_channels() -> bool {
    let (even_sender, evens) = sync::channel::<u64>(CAPACITY);
    let (odd_sender, odds) = sync::channel::<u64>(CAPACITY);
    let spawned = super::spawn_helper("order-alternate", move || {
        for sequence in 0..CROSS_MESSAGES {
            let sent = if sequence % 2 == 0 { even_sender.send(sequence) } else { odd_sender.send(sequence) };
            if sent.is_err() {
                return;
            }
        }
    });
    let Some(tid) = spawned else { return false };
    // Per channel: the last number seen (each must rise); across both: how
    // often a number arrives after a larger one did.
    let (mut last_even, mut last_odd) = (None::<u64>, None::<u64>);
    let (mut inversions, mut channel_violations, mut highest, mut received) = (0u64, 0u64, None::<u64>, 0u64);
    let mut open = (true, true);
    while open.0 || open.1 {
        let mut select = Select::new();
        if open.0 {
            select = select.recv(&evens, |got| (true, got.ok()));
        }
        if open.1 {
            select = select.recv(&odds, |got| (false, got.ok()));
        }
        let Ok((even, got)) = select.timeout(Duration::from_secs(10)).run() else {
            log::error!("ordering: the alternating sender stalled");
            return false;
        };
        let Some(sequence) = got else {
            if even {
                open.0 = false;
            } else {
                open.1 = false;
            }
            continue;
        };
        let last = if even { &mut last_even } else { &mut last_odd };
        if last.is_some_and(|last| sequence <= last) {
            channel_violations += 1;
        }
        *last = Some(sequence);
        if highest.is_some_and(|highest| sequence < highest) {
            inversions += 1;
        }
        highest = highest.max(Some(sequence));
        received += 1;
    }
    super::wait_gone(&[tid]);
    record!(
        "ordering unit=two-channels messages={received} fifo={} violations={channel_violations} inversions={inversions}",
        if channel_violations == 0 && received == CROSS_MESSAGES { "held" } else { "violated" }
    );
    true
}
