//! The ring-3 side of `cargo lab bench isolation` (kernel/src/lab.rs
//! starts it): loops timed from ring 3 with the TSC, reported as `@lab`
//! lines the host tabulates. Its argument picks the loop:
//!
//! - `null <batches> <calls>`: null system calls (`abi_version`), timed per
//!   batch; reports cycles per call.
//! - `yield <rounds> <start_ns>`: sleeps until `start_ns` (so two tasks
//!   start together), then yields `rounds` times; with a peer task doing
//!   the same every yield is a switch between address spaces.
//! - `sleep`: sleeps until killed (the memory fill).
//! - `exit`: returns at once (spawn and teardown cost).
//!
//! No heap: the smallest program, so its memory is what any task costs.
#![no_std]
#![no_main]

use tenfold_user::{abi, println};

/// Most batches `null` keeps samples for (on the stack: 8 KiB).
const MAX_BATCHES: usize = 1000;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    let mut words = argument.split_whitespace();
    let mode = words.next().unwrap_or("");
    let mut number = || words.next().and_then(|word| word.parse::<u64>().ok());
    match mode {
        "null" => match (number(), number()) {
            (Some(batches), Some(calls)) if (1..=MAX_BATCHES as u64).contains(&batches) && calls > 0 => {
                null_calls(batches as usize, calls)
            }
            _ => usage(argument),
        },
        "yield" => match (number(), number()) {
            (Some(rounds), Some(start_ns)) => yields(rounds, start_ns),
            _ => usage(argument),
        },
        "sleep" => loop {
            let _ = tenfold_user::sleep_ns(abi::MAX_SLEEP_NS);
        },
        "exit" => 0,
        _ => usage(argument),
    }
}

fn usage(argument: &str) -> i64 {
    println!(
        "sysbench: bad argument `{argument}` (null <batches> <calls> | yield <rounds> <start_ns> | sleep | exit)"
    );
    2
}

/// The time-stamp counter (user mode may read it: CR4.TSD is clear).
fn cycles() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `rdtsc` reads a counter into edx:eax and touches nothing else.
    unsafe { core::arch::asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack)) };
    u64::from(high) << 32 | u64::from(low)
}

fn null_calls(batches: usize, calls: u64) -> i64 {
    let mut per_call = [0u64; MAX_BATCHES];
    for sample in per_call.iter_mut().take(batches) {
        let start = cycles();
        for _ in 0..calls {
            core::hint::black_box(tenfold_user::syscall3(abi::Sys::AbiVersion as u64, 0, 0, 0));
        }
        *sample = (cycles() - start) / calls;
    }
    let samples = &mut per_call[..batches];
    samples.sort_unstable();
    let rank = |percent: usize| samples[(batches - 1) * percent / 100];
    let mean = samples.iter().sum::<u64>() / batches as u64;
    println!(
        "@lab bench name=null-syscall unit=cycles samples={} p50={} p99={} max={} mean={mean}",
        batches as u64 * calls,
        rank(50),
        rank(99),
        samples[batches - 1]
    );
    0
}

fn yields(rounds: u64, start_ns: u64) -> i64 {
    let now = tenfold_user::clock_ns();
    if start_ns > now && tenfold_user::sleep_ns(start_ns - now).is_err() {
        return 3;
    }
    let start = cycles();
    for _ in 0..rounds {
        tenfold_user::yield_now();
    }
    println!("@lab task-yield rounds={rounds} cycles={}", cycles() - start);
    0
}
