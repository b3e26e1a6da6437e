//! The smallest task: prints, uses the heap, sleeps, yields, reads the
//! clock, exits 0.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use tenfold_user::{abi, println};

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let argument = tenfold_user::argument(&mut buffer);
    if argument == "bench" {
        return bench();
    }
    println!("hello from ring 3 (ABI {}), argument `{argument}`", abi::ABI_VERSION);
    let squares: Vec<u64> = (0..1000).map(|n| n * n).collect();
    println!("hello: heap holds {} squares, sum {}", squares.len(), squares.iter().sum::<u64>());
    let start = tenfold_user::clock_ns();
    if tenfold_user::sleep_ns(10_000_000).is_err() {
        return 1;
    }
    tenfold_user::yield_now();
    let slept = tenfold_user::clock_ns() - start;
    println!("hello: slept {} us, bye", slept / 1000);
    0
}

/// The cost of a null system call (`abi_version`), round trip from ring 3.
fn bench() -> i64 {
    const CALLS: u64 = 100_000;
    let start = tenfold_user::clock_ns();
    for _ in 0..CALLS {
        tenfold_user::syscall3(abi::Sys::AbiVersion as u64, 0, 0, 0);
    }
    let elapsed = tenfold_user::clock_ns() - start;
    println!("hello: null system call {} ns ({CALLS} calls)", elapsed / CALLS);
    0
}
