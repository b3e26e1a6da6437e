//! Tasks starting tasks, tried from ring 3 (calls 21 and 22, rules in
//! `tenfold_abi::task`):
//!
//! - `hostile:<foreign mailbox>:<foreign task>`: every bad argument of
//!   `spawn` and `kill` (pointers, lengths, names, mailboxes and task ids
//!   that are not its own, stale ids, forged notices, a mailbox with no room
//!   left to promise) gets its error; each notice arrives once, with the
//!   right cause. Ends with `spawner: hostile: all refused as they should
//!   be` (exit 0) or names what went wrong (exit 1).
//! - `bomb:<rounds>`: a fork bomb, repeated: each round it spawns `storm`
//!   children until refused; each of them spawns `storm` children until
//!   refused, and so on; then it kills its children, whose ends take their
//!   descendants along, and waits for a notice per child.
//! - `storm`: spawns itself until refused, then sleeps until killed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use tenfold_user::abi::mailbox::{DOWN_TAG, make_id};
use tenfold_user::abi::{Error, task::MAX_NAME};
use tenfold_user::mailbox::Mailbox;
use tenfold_user::println;
use tenfold_user::task::{self, CAUSE_EXITED, CAUSE_KILLED, Down, NONE};

/// How long a notice may take to come (TCG on a loaded host).
const NOTICE_TIMEOUT_NS: u64 = 20_000_000_000;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 128];
    let argument = tenfold_user::argument(&mut buffer);
    let mut parts = argument.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("hostile"), Some(mailbox), Some(task)) => match (mailbox.parse(), task.parse()) {
            (Ok(mailbox), Ok(task)) => hostile(mailbox, task),
            _ => usage(argument),
        },
        (Some("bomb"), Some(rounds), None) => match rounds.parse() {
            Ok(rounds) => bomb(rounds),
            Err(_) => usage(argument),
        },
        (Some("storm"), None, None) => storm(),
        _ => usage(argument),
    }
}

fn usage(argument: &str) -> i64 {
    println!("spawner: unknown argument `{argument}` (hostile:<mailbox>:<task>, bomb:<rounds>, storm)");
    2
}

/// Waits for the next death notice in `mailbox`.
fn next_down(mailbox: &Mailbox) -> Result<Down, Error> {
    let mut body = [0u8; Down::SIZE];
    let received = mailbox.recv_tagged(DOWN_TAG, &mut body, NOTICE_TIMEOUT_NS)?;
    task::down(&received, &body).ok_or(Error::BadArgument)
}

/// Checks one outcome; prints it and counts a mismatch.
struct Checks {
    wrong: u32,
}

impl Checks {
    fn expect<T: core::fmt::Debug>(&mut self, case: &str, got: Result<T, Error>, want: Result<(), Error>) {
        let ok = match (&got, want) {
            (Ok(_), Ok(())) => true,
            (Err(got), Err(want)) => *got == want,
            _ => false,
        };
        if ok {
            println!("spawner: {case} -> {got:?}");
        } else {
            self.wrong += 1;
            println!("spawner: {case} -> {got:?}, expected {want:?}: WRONG");
        }
    }
}

/// A condition as an outcome: `BadArgument` stands for "not so".
fn holds(condition: Result<bool, Error>) -> Result<(), Error> {
    condition.and_then(|right| if right { Ok(()) } else { Err(Error::BadArgument) })
}

fn raw(name: (u64, u64), argument: (u64, u64), notify: u64) -> Result<u64, Error> {
    task::spawn_raw([name.0, name.1, argument.0, argument.1, notify, 0])
}

fn hostile(foreign_mailbox: u64, foreign_task: u64) -> i64 {
    let mut checks = Checks { wrong: 0 };
    let hello = "hello";
    let name = (hello.as_ptr() as u64, hello.len() as u64);
    let empty = (0, 0);

    // Pointers and lengths.
    checks.expect("null name", raw((0, 5), empty, NONE), Err(Error::BadAddress));
    checks.expect("kernel name", raw((0xffff_8000_0000_0000, 5), empty, NONE), Err(Error::BadAddress));
    checks.expect("name wraps", raw((u64::MAX - 2, 5), empty, NONE), Err(Error::BadAddress));
    checks.expect("empty name", raw((name.0, 0), empty, NONE), Err(Error::BadLength));
    let long = [b'a'; MAX_NAME as usize + 1];
    checks.expect(
        "over-long name",
        raw((long.as_ptr() as u64, long.len() as u64), empty, NONE),
        Err(Error::BadLength),
    );
    checks.expect("huge name length", raw((name.0, u64::MAX), empty, NONE), Err(Error::BadLength));
    checks.expect("huge argument length", raw(name, (name.0, 1 << 40), NONE), Err(Error::BadLength));
    checks.expect("bad argument pointer", raw(name, (8, 10), NONE), Err(Error::BadAddress));
    let invalid = [0xffu8, 0xfe];
    checks.expect("name not UTF-8", raw((invalid.as_ptr() as u64, 2), empty, NONE), Err(Error::BadArgument));
    checks.expect(
        "argument not UTF-8",
        raw(name, (invalid.as_ptr() as u64, 2), NONE),
        Err(Error::BadArgument),
    );
    checks.expect("unknown program", task::spawn("no-such-program", "", None), Err(Error::NoSuchProgram));

    // Mailboxes that are not its own, or gone.
    let foreign = raw(name, empty, foreign_mailbox);
    checks.expect("another task's mailbox", foreign, Err(Error::BadArgument));
    checks.expect("a mailbox never made", raw(name, empty, make_id(4000, 77)), Err(Error::NoSuchMailbox));
    let Ok(closed) = Mailbox::create(1) else { return 3 };
    let closed_id = closed.address().0;
    let _ = closed.close();
    checks.expect("a closed mailbox", raw(name, empty, closed_id), Err(Error::NoSuchMailbox));

    // Task ids that are not its children's.
    checks.expect("kill another task", task::kill(foreign_task), Err(Error::NoSuchTask));
    checks.expect("kill the boot thread", task::kill(0), Err(Error::NoSuchTask));
    checks.expect("kill a huge id", task::kill(u64::MAX), Err(Error::NoSuchTask));
    let Ok(mailbox) = Mailbox::create(4) else { return 3 };
    let _ = mailbox.address().send(1, b"me");
    let mut body = [0u8; Down::SIZE];
    let me = mailbox.recv(&mut body).map(|received| received.sender).unwrap_or(0);
    checks.expect("kill itself", task::kill(me), Err(Error::NoSuchTask));

    // A forged notice is refused.
    checks.expect(
        "send with the notice tag",
        mailbox.address().try_send(DOWN_TAG, &[0; 32]),
        Err(Error::BadArgument),
    );

    // A monitored child that exits: one notice, then its id is stale.
    let child = task::spawn("hello", "monitored", Some(&mailbox));
    checks.expect("spawn hello monitored", child, Ok(()));
    let down = next_down(&mailbox);
    let exited =
        down.map(|down| down.task == child.unwrap_or(0) && down.cause == CAUSE_EXITED && down.normal());
    checks.expect("its notice: exited with 0", holds(exited), Ok(()));
    checks.expect("kill it after its end", task::kill(child.unwrap_or(0)), Err(Error::NoSuchTask));
    checks.expect(
        "no second notice",
        mailbox.recv_tagged(DOWN_TAG, &mut body, 100_000_000),
        Err(Error::Timeout),
    );

    // A child killed by its parent.
    let child = task::spawn("worker", "50", Some(&mailbox));
    checks.expect("spawn worker monitored", child, Ok(()));
    checks.expect("kill it", task::kill(child.unwrap_or(0)), Ok(()));
    let down = next_down(&mailbox);
    let killed = down.map(|down| down.task == child.unwrap_or(0) && down.cause == CAUSE_KILLED);
    checks.expect("its notice: killed", holds(killed), Ok(()));
    checks.expect("kill it again", task::kill(child.unwrap_or(0)), Err(Error::NoSuchTask));

    // Room is promised: two notices fill a mailbox of two, a third child
    // cannot be monitored there, and a task's message finds it full.
    let Ok(small) = Mailbox::create(2) else { return 3 };
    let first = task::spawn("worker", "50", Some(&small));
    let second = task::spawn("worker", "50", Some(&small));
    checks.expect("two children monitored in a mailbox of two", first.and(second), Ok(()));
    checks.expect("a third", task::spawn("worker", "50", Some(&small)), Err(Error::Full));
    checks.expect("a message to it", small.address().try_send(1, b"x"), Err(Error::Full));
    let _ = task::kill(first.unwrap_or(0));
    let _ = task::kill(second.unwrap_or(0));
    let both = next_down(&small).and_then(|a| next_down(&small).map(|b| (a.task, b.task)));
    let expected = (first.unwrap_or(0), second.unwrap_or(0));
    let right = both.map(|(a, b)| (a, b) == expected || (b, a) == expected);
    checks.expect("both notices", holds(right), Ok(()));

    // The per-task bound.
    let mut children = Vec::new();
    let refused = loop {
        match task::spawn("worker", "50", None) {
            Ok(child) => children.push(child),
            Err(error) => break error,
        }
    };
    let bounded = if children.len() as u64 == task::MAX_CHILDREN { Err(refused) } else { Ok(children.len()) };
    checks.expect("spawn until refused", bounded, Err(Error::OutOfQuota));
    for child in children {
        let _ = task::kill(child);
    }
    if checks.wrong == 0 {
        println!("spawner: hostile: all refused as they should be");
        0
    } else {
        println!("spawner: hostile: {} WRONG", checks.wrong);
        1
    }
}

fn bomb(rounds: u32) -> i64 {
    let Ok(mailbox) = Mailbox::create(64) else { return 3 };
    for round in 1..=rounds {
        let mut children = Vec::new();
        let refused = loop {
            match task::spawn("spawner", "storm", Some(&mailbox)) {
                Ok(child) => children.push(child),
                Err(error) => break error,
            }
        };
        // Let the storm reach the system-wide bound.
        let _ = tenfold_user::sleep_ns(500_000_000);
        for &child in &children {
            let _ = task::kill(child);
        }
        let mut notices = 0;
        let mut killed = 0;
        while notices < children.len() {
            match next_down(&mailbox) {
                Ok(down) => {
                    notices += 1;
                    killed += u32::from(down.cause == CAUSE_KILLED);
                }
                Err(error) => {
                    println!("spawner: bomb round {round}: waiting for notices: {}", error.name());
                    return 1;
                }
            }
        }
        println!(
            "spawner: bomb round {round}: {} children, then {}; {notices} notices ({killed} killed)",
            children.len(),
            refused.name()
        );
    }
    println!("spawner: bomb done");
    0
}

fn storm() -> i64 {
    while task::spawn("spawner", "storm", None).is_ok() {}
    loop {
        let _ = tenfold_user::sleep_ns(10_000_000_000);
    }
}
