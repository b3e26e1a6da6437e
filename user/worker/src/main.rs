//! A long-lived task for supervision trees: it works in rounds (a little
//! computation, then a sleep of the period in its argument, default 10 ms)
//! and never exits on its own. With the argument `spin` it is a runaway
//! instead — a busy loop with no system call — which only the CPU-budget
//! watchdog can stop.
#![no_std]
#![no_main]

use tenfold_user::println;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 32];
    let argument = tenfold_user::argument(&mut buffer);
    if argument == "spin" {
        println!("worker: spinning without end");
        let mut turns = 0u64;
        loop {
            turns = core::hint::black_box(turns.wrapping_add(1));
        }
    }
    let period_ms: u64 = argument.parse().unwrap_or(10);
    let mut checksum = 0u64;
    for round in 0u64.. {
        // A unit of work whose result is checked: a corrupted task shows.
        checksum = (0..1000u64).fold(checksum, |sum, n| sum.wrapping_mul(31).wrapping_add(n ^ round));
        if tenfold_user::sleep_ns(period_ms * 1_000_000).is_err() {
            println!("worker: sleep refused after {round} rounds (checksum {checksum:#x})");
            return 1;
        }
    }
    0
}
