//! Zero-copy page transfer between two tasks. `run pagexfer receive`
//! prints its mailbox id, receives a page message and checks its bytes;
//! `run pagexfer send:<id>` fills two pages, first shows that a failed
//! transfer leaves them with the sender, then moves them and touches them
//! again — which must fault: the kernel kills it with a report naming the
//! address (a line with NOT STOPPED means the mapping survived).
#![no_std]
#![no_main]

use tenfold_user::abi::mailbox::{FOREVER, TRY};
use tenfold_user::mailbox::{Address, Mailbox, Pages};
use tenfold_user::println;

const PAGES: u64 = 2;

fn pattern(index: usize) -> u8 {
    (index as u8).wrapping_mul(7).wrapping_add(3)
}

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    match argument.split_once(':') {
        None if argument == "receive" => receive(),
        Some(("send", id)) if Address::parse(id).is_some() => send(Address::parse(id).unwrap()),
        _ => {
            println!("pagexfer: expected `receive` or `send:<id>`");
            2
        }
    }
}

fn receive() -> i64 {
    let Ok(mailbox) = Mailbox::create(2) else { return 1 };
    println!("pagexfer: receiving on mailbox {}", mailbox.address());
    let received = match mailbox.recv(&mut []) {
        Ok(received) => received,
        Err(error) => {
            println!("pagexfer: receive failed: {error:?}");
            return 1;
        }
    };
    let Some(pages) = received.pages else {
        println!("pagexfer: expected pages, got {} copied bytes", received.length);
        return 1;
    };
    let intact = pages.bytes().iter().enumerate().all(|(index, &byte)| byte == pattern(index));
    println!(
        "pagexfer: received {} pages at {:#x} from task {}, pattern {}",
        pages.len() / 4096,
        pages.address(),
        received.sender,
        if intact { "intact" } else { "CORRUPT" }
    );
    if intact { 0 } else { 1 }
}

fn send(to: Address) -> i64 {
    let Ok(mut pages) = Pages::map(PAGES) else { return 1 };
    for (index, byte) in pages.bytes_mut().iter_mut().enumerate() {
        *byte = pattern(index);
    }
    // A transfer that fails leaves the pages where they were.
    let pages = match Address(u64::MAX).send_pages(1, pages, TRY) {
        Ok(()) => {
            println!("pagexfer: a send to no mailbox succeeded");
            return 1;
        }
        Err((error, pages)) => {
            let kept = pages.bytes().iter().enumerate().all(|(index, &byte)| byte == pattern(index));
            println!("pagexfer: send to no mailbox -> {error:?}, pages kept: {kept}");
            pages
        }
    };
    let address = pages.address();
    if let Err((error, _)) = to.send_pages(1, pages, FOREVER) {
        println!("pagexfer: send failed: {error:?}");
        return 1;
    }
    println!("pagexfer: sent {PAGES} pages from {address:#x}; touching them now");
    // SAFETY: none: the pages are gone from this task, so this read must fault.
    let value = unsafe { core::ptr::read_volatile(address as *const u8) };
    println!("pagexfer: read {value} after the transfer: NOT STOPPED");
    1
}
