//! Misbehaves on purpose, in the way its argument names; the kernel must stop
//! each attempt (a fault that kills only this task, or an error code).
#![no_std]
#![no_main]

use tenfold_user::{abi, println};

/// An address in the kernel's half (its physical-memory window).
const KERNEL_ADDRESS: u64 = 0xffff_8000_0010_0000;
/// The kernel image, linked in the top 2 GiB.
const KERNEL_TEXT: u64 = 0xffff_ffff_8020_0000;

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 64];
    let how = tenfold_user::argument(&mut buffer);
    println!("crasher: {how}");
    match how {
        "read-kernel" => {
            // SAFETY: none: this read must fault (the kernel half is supervisor-only).
            let value = unsafe { core::ptr::read_volatile(KERNEL_ADDRESS as *const u64) };
            println!("crasher: read {value:#x} from the kernel: NOT STOPPED");
        }
        "write-kernel" => {
            // SAFETY: none: this write must fault.
            unsafe { core::ptr::write_volatile(KERNEL_TEXT as *mut u64, 0) };
            println!("crasher: wrote the kernel: NOT STOPPED");
        }
        "write-code" => {
            let code = task_main as *const () as usize as *mut u8;
            // SAFETY: none: code pages are mapped read+execute, so this must fault.
            unsafe { core::ptr::write_volatile(code, 0xC3) };
            println!("crasher: wrote its own code: NOT STOPPED");
        }
        "exec-stack" => {
            let code = [0xC3u8; 16]; // `ret`
            // SAFETY: none: the stack is no-execute, so the call must fault.
            let function: extern "C" fn() = unsafe { core::mem::transmute(code.as_ptr()) };
            function();
            println!("crasher: executed its stack: NOT STOPPED");
        }
        "exec-heap" => {
            let Ok(page) = tenfold_user::map(4096, abi::MAP_WRITE) else { return 2 };
            // SAFETY: the page was just mapped writable for this task.
            unsafe { core::ptr::write_volatile(page as *mut u8, 0xC3) };
            // SAFETY: none: mapped memory is no-execute, so the call must fault.
            let function: extern "C" fn() = unsafe { core::mem::transmute(page as usize) };
            function();
            println!("crasher: executed mapped memory: NOT STOPPED");
        }
        "divide" => {
            let zero = core::hint::black_box(0u64);
            // SAFETY: none: `div` by zero raises #DE, which must kill the task.
            unsafe {
                core::arch::asm!("div {}", in(reg) zero, inout("rax") 1u64 => _, inout("rdx") 0u64 => _)
            };
            println!("crasher: divided by zero: NOT STOPPED");
        }
        "invalid-opcode" => {
            // SAFETY: none: `ud2` raises #UD, which must kill the task.
            unsafe { core::arch::asm!("ud2") };
        }
        "privileged" => {
            // SAFETY: none: `hlt` in ring 3 raises #GP, which must kill the task.
            unsafe { core::arch::asm!("hlt") };
            println!("crasher: halted the CPU: NOT STOPPED");
        }
        "null" => {
            // SAFETY: none: page 0 is never mapped.
            let value = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
            println!("crasher: read {value} at null: NOT STOPPED");
        }
        "stack-overflow" => return recurse(1) as i64,
        "kernel-pointer" => {
            // The kernel must refuse a pointer into its half, not copy from it.
            let result = tenfold_user::write_raw(KERNEL_TEXT, 16);
            let mapped = tenfold_user::map(1 << 40, abi::MAP_WRITE);
            let straddle = tenfold_user::write_raw(abi::layout::USER_END - 8, 64);
            let code = task_main as *const () as usize as u64;
            // Writing into code (read-only) must be refused as well.
            let into_code = tenfold_user::syscall3(abi::Sys::Argument as u64, code, 8, 0);
            println!(
                "crasher: kernel pointer -> {result:?}, 1 TiB map -> {mapped:?}, straddling -> {straddle:?}, argument into code -> {into_code}"
            );
            let refused = result.is_err() && mapped.is_err() && straddle.is_err() && into_code < 0;
            return if refused { 0 } else { 3 };
        }
        "panic" => panic!("deliberate panic in ring 3"),
        _ => {
            println!("crasher: unknown way `{how}`");
            return 2;
        }
    }
    1
}

#[inline(never)]
#[allow(unconditional_recursion)] // overflowing the stack is the point
fn recurse(depth: u64) -> u64 {
    let mut pad = [depth; 64];
    core::hint::black_box(&mut pad);
    recurse(depth + 1) + pad[3]
}
