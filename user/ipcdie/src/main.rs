//! Holds as much mailbox state as a task may, then dies — for the
//! reclamation tests (everything must come back). Modes:
//! - `exit` / `crash`: 16 mailboxes (a 17th is refused), copies and pages
//!   queued in them, bytes up to the queued-bytes quota; then exit 0, or
//!   a null read (killed by a fault).
//! - `park-receive` / `park-send`: parks for ever in a receive, or in a
//!   send to its own full mailbox (for `kill <tid>`).
//! - `hold`: prints its mailbox id, waits for a flooder's hello, gives it
//!   time to park on the full mailbox, then faults; `flood:<id>`: fills
//!   that mailbox and parks in a send, which must fail with
//!   `NoSuchMailbox` when the holder dies.
#![no_std]
#![no_main]

use tenfold_user::abi::mailbox::FOREVER;
use tenfold_user::abi::{Error, MAX_MAILBOXES, MAX_MESSAGE};
use tenfold_user::mailbox::{Address, Mailbox, Pages};
use tenfold_user::{println, sleep_ns};

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    match argument.split_once(':') {
        Some(("flood", id)) => return flood(Address::parse(id).unwrap_or(Address(0))),
        Some(_) => return 2,
        None => {}
    }
    match argument {
        "exit" => {
            fill();
            0
        }
        "crash" => {
            fill();
            // SAFETY: none: this read must fault (address 0 is never mapped).
            unsafe { core::ptr::read_volatile(core::ptr::null::<u8>()) as i64 }
        }
        "park-receive" => {
            let Ok(mailbox) = Mailbox::create(1) else { return 1 };
            println!("ipcdie: parked in receive");
            let _ = mailbox.recv(&mut [0u8; 8]);
            1
        }
        "park-send" => {
            let Ok(mailbox) = Mailbox::create(1) else { return 1 };
            let _ = mailbox.address().try_send(1, b"fills it");
            println!("ipcdie: parked in send");
            let _ = mailbox.address().send(1, b"never fits");
            1
        }
        "hold" => hold(),
        _ => {
            println!("ipcdie: unknown mode `{argument}`");
            2
        }
    }
}

/// Every mailbox a task may have, messages of both kinds in them, and
/// bytes up to the queued-bytes quota.
fn fill() {
    let mut mailboxes = Vec::new();
    while let Ok(mailbox) = Mailbox::create(16) {
        mailboxes.push(mailbox);
    }
    let refused = Mailbox::create(16).err();
    let mut queued = 0;
    for (index, mailbox) in mailboxes.iter().enumerate().skip(2) {
        for _ in 0..4 {
            let sent = if index % 2 == 0 {
                mailbox.address().try_send(1, &[index as u8; 1024])
            } else {
                match Pages::map(1) {
                    Ok(pages) => mailbox.address().send_pages(2, pages, 0).map_err(|(error, _)| error),
                    Err(error) => Err(error),
                }
            };
            queued += u64::from(sent.is_ok());
        }
    }
    // 64 KiB copies into the first two until the quota refuses.
    let big = vec![0u8; MAX_MESSAGE as usize];
    let mut stop = None;
    for round in 0..64 {
        match mailboxes[round % 2].address().try_send(3, &big) {
            Ok(()) => queued += 1,
            Err(error) => {
                stop = Some(error);
                break;
            }
        }
    }
    println!(
        "ipcdie: {} mailboxes (one more -> {refused:?}), {queued} messages queued, then {stop:?}",
        mailboxes.len()
    );
    if mailboxes.len() as u64 != MAX_MAILBOXES {
        println!("ipcdie: expected {MAX_MAILBOXES} mailboxes");
    }
    // Dying with all of it: the kernel must take it back.
    core::mem::forget(mailboxes);
}

fn hold() -> i64 {
    let Ok(mailbox) = Mailbox::create(2) else { return 1 };
    println!("ipcdie: holding mailbox {}", mailbox.address());
    let mut hello = [0u8; 8];
    if mailbox.recv_tagged(9, &mut hello, FOREVER).is_err() {
        return 1;
    }
    let _ = sleep_ns(50_000_000);
    println!("ipcdie: holder dies now");
    // SAFETY: none: this read must fault.
    unsafe { core::ptr::read_volatile(core::ptr::null::<u8>()) as i64 }
}

fn flood(to: Address) -> i64 {
    if let Err(error) = to.send(9, b"hello") {
        println!("ipcdie: hello failed: {error:?}");
        return 1;
    }
    let mut sent = 0;
    let outcome = loop {
        match to.send(1, b"flood") {
            Ok(()) => sent += 1,
            Err(error) => break error,
        }
        if sent > 100 {
            println!("ipcdie: the mailbox never filled");
            return 1;
        }
    };
    println!("ipcdie: flooder sent {sent}, then its parked send -> {outcome:?}");
    if outcome == Error::NoSuchMailbox { 0 } else { 1 }
}
