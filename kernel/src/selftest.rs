//! In-kernel tests and deliberate crashes.
//!
//! The self-tests ship in the image users boot and run only when the kernel
//! command line says `test=<name>|all`, so the tests exercise exactly the
//! binary that runs in production. A test passes by returning; it fails by
//! panicking (or faulting), which the panic handler and the fault report turn
//! into QEMU exit status 35. After all selected tests pass the kernel exits
//! with status 33. `crash=<kind>` provokes a fault on purpose so the host
//! tests can check the reports.

mod channels;
mod threads;

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::arch::{cpu, paging, qemu, traps};
use crate::memory::{frames, heap};
use crate::params::{self, Crash};
use crate::time;
use tenfold_runtime::sched::Priority;

struct Case {
    name: &'static str,
    run: fn(),
}

const CASES: &[Case] = &[
    Case { name: "heap_counts_bytes_in_use", run: heap_counts_bytes_in_use },
    Case { name: "heap_grows_on_demand", run: heap_grows_on_demand },
    Case { name: "frames_are_reused_after_free", run: frames_are_reused_after_free },
    Case { name: "breakpoint_resumes", run: breakpoint_resumes },
    Case { name: "clock_is_monotonic_and_calibrated", run: clock_is_monotonic_and_calibrated },
    Case { name: "params_parse_and_reject", run: params_parse_and_reject },
    Case { name: "page_tables_report_mappings", run: page_tables_report_mappings },
    Case { name: "threads_run_exit_and_are_reaped", run: threads::threads_run_exit_and_are_reaped },
    Case {
        name: "a_spinning_thread_cannot_starve_others",
        run: threads::a_spinning_thread_cannot_starve_others,
    },
    Case {
        name: "equal_priorities_share_within_ten_percent",
        run: threads::equal_priorities_share_within_ten_percent,
    },
    Case {
        name: "priorities_are_honoured_without_starvation",
        run: threads::priorities_are_honoured_without_starvation,
    },
    Case { name: "sleep_is_accurate", run: threads::sleep_is_accurate },
    Case {
        name: "spawning_beyond_the_caps_fails_cleanly",
        run: threads::spawning_beyond_the_caps_fails_cleanly,
    },
    Case { name: "kill_stops_a_thread_and_frees_it", run: threads::kill_stops_a_thread_and_frees_it },
    Case {
        name: "killing_a_thread_that_never_ran_drops_its_closure",
        run: threads::killing_a_thread_that_never_ran_drops_its_closure,
    },
    Case { name: "channel_is_fifo_across_threads", run: channels::channel_is_fifo_across_threads },
    Case {
        name: "a_full_channel_parks_only_the_sender",
        run: channels::a_full_channel_parks_only_the_sender,
    },
    Case {
        name: "rendezvous_send_waits_for_the_receiver",
        run: channels::rendezvous_send_waits_for_the_receiver,
    },
    Case { name: "disconnection_is_seen_both_ways", run: channels::disconnection_is_seen_both_ways },
    Case {
        name: "select_takes_the_ready_channel_or_times_out",
        run: channels::select_takes_the_ready_channel_or_times_out,
    },
    Case { name: "mutex_excludes_under_preemption", run: channels::mutex_excludes_under_preemption },
    Case { name: "order_across_channels_is_causal", run: channels::order_across_channels_is_causal },
    Case { name: "semaphore_bounds_concurrency", run: channels::semaphore_bounds_concurrency },
    Case { name: "condvar_and_event_wake_waiters", run: channels::condvar_and_event_wake_waiters },
    Case {
        name: "a_thread_woken_by_a_spinner_is_not_starved",
        run: channels::a_thread_woken_by_a_spinner_is_not_starved,
    },
];

/// Runs the tests whose name contains `filter` (`all`: every test) and ends
/// the run.
pub fn run(filter: &str) -> ! {
    let selected = CASES.iter().filter(|case| filter == "all" || case.name.contains(filter));
    let mut passed = 0;
    for case in selected {
        log::info!("selftest {} ...", case.name);
        let start = time::since_entry();
        (case.run)();
        log::info!("selftest {} ok ({} ms)", case.name, time::Millis(time::since_entry() - start));
        passed += 1;
    }
    if passed == 0 {
        log::error!("selftest: no test matches `{filter}`");
        qemu::exit(qemu::ExitCode::Failure);
    }
    log::info!("selftest: all {passed} passed");
    qemu::exit(qemu::ExitCode::Success)
}

/// Provokes the failure `kind` on purpose. Returns only for the failures
/// the kernel survives.
pub fn crash(kind: Crash) {
    log::warn!("crashing on purpose: {kind:?}");
    match kind {
        Crash::PageFault => {
            let address = 0x0000_dead_0000 as *mut u64;
            // SAFETY: none — this write faults on purpose (nothing is mapped
            // at that address) to exercise the page-fault report.
            unsafe { address.write_volatile(42) };
            unreachable!("the write above faults");
        }
        Crash::Panic => panic!("deliberate panic (crash=panic)"),
        Crash::StackOverflow => {
            recurse(0);
            unreachable!("recursion overflows the stack");
        }
        Crash::HeapExhaustion => {
            let mut hoard: Vec<Box<[u8]>> = Vec::new();
            loop {
                hoard.push(alloc::vec![0xA5; 1 << 20].into_boxed_slice());
            }
        }
        Crash::InvalidOpcode => {
            // SAFETY: none — `ud2` raises #UD on purpose.
            unsafe { core::arch::asm!("ud2") };
            unreachable!("ud2 faults");
        }
        Crash::ThreadStackOverflow => {
            let bystander = threads::ticker("bystander");
            let victim = crate::sched::spawn("overflow", Priority::NORMAL, 16 * 1024, || {
                recurse(0);
            })
            .expect("spawn the overflowing thread");
            let gone = threads::wait_until(core::time::Duration::from_secs(10), || {
                !crate::sched::threads().iter().any(|t| t.tid == victim.tid())
            });
            assert!(gone, "the overflowing thread is still alive");
            let before = bystander.count();
            crate::sched::sleep(core::time::Duration::from_millis(20));
            let after = bystander.count();
            assert!(after > before, "the bystander thread stopped");
            log::info!("kernel survived: thread `overflow` was killed, the bystander ran {after} times");
        }
    }
}

#[inline(never)]
#[allow(unconditional_recursion)] // the point: overflow the stack
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    core::hint::black_box(&frame);
    recurse(depth + 1) + core::hint::black_box(frame[3])
}

fn heap_counts_bytes_in_use() {
    let before = heap::stats();
    let block = core::hint::black_box(Box::new([7u8; 4000]));
    let during = heap::stats();
    assert_eq!(during.in_use_bytes, before.in_use_bytes + 4000);
    assert!(during.peak_bytes >= during.in_use_bytes);
    assert_eq!(during.allocations, before.allocations + 1);
    drop(block);
    assert_eq!(heap::stats().in_use_bytes, before.in_use_bytes);
}

fn heap_grows_on_demand() {
    let before = heap::stats();
    let big = alloc::vec![1u8; (before.mapped_bytes + (1 << 20)) as usize];
    let after = heap::stats();
    assert!(after.mapped_bytes > before.mapped_bytes, "heap did not grow");
    assert!(big.iter().all(|&b| b == 1));
    assert_eq!(after.failed_allocations, before.failed_allocations);
}

fn frames_are_reused_after_free() {
    let before = frames::stats();
    let first = frames::allocate().expect("a free frame");
    assert_eq!(first % paging::PAGE_SIZE, 0);
    assert_eq!(frames::stats().allocated_frames, before.allocated_frames + 1);
    frames::free(first);
    assert_eq!(frames::allocate(), Some(first), "freed frame is handed out first");
    frames::free(first);
    assert_eq!(frames::stats().allocated_frames, before.allocated_frames);
}

/// `int3` reaches the #BP handler exactly once and execution resumes at the
/// next instruction with the registers the trap path saved.
fn breakpoint_resumes() {
    const SENTINEL: u64 = 0x5eed_0000_1234;
    let handled_before = traps::breakpoints_handled();
    let mut value = SENTINEL;
    // SAFETY: `int3` traps to the breakpoint handler, which returns to the
    // instruction after it; `add` changes only the register it is given.
    unsafe { core::arch::asm!("int3", "add {value}, 1", value = inout(reg) value) };
    let handled = traps::breakpoints_handled() - handled_before;
    assert_eq!(handled, 1, "the #BP handler ran {handled} times for one int3");
    assert_eq!(value, SENTINEL + 1, "the instruction after int3 did not run once on intact registers");
}

fn clock_is_monotonic_and_calibrated() {
    let hz = time::tsc_hz();
    assert!(hz > 100_000_000, "TSC at {hz} Hz is implausible");
    let mut last = time::since_entry();
    for _ in 0..1000 {
        let now = time::since_entry();
        assert!(now >= last);
        last = now;
    }
    let start = cpu::timestamp_counter();
    assert!(cpu::timestamp_counter() > start);
}

fn params_parse_and_reject() {
    let mut errors = Vec::new();
    let params = params::parse("log=debug test=heap crash=panic heap_max_mib=8", |bad| errors.push(bad));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(params.log_level, log::LevelFilter::Debug);
    assert_eq!(params.test, Some("heap"));
    assert_eq!(params.crash, Some(Crash::Panic));
    assert_eq!(params.heap_max_mib, Some(8));

    let params =
        params::parse("log=loud bogus=1 noequals heap_max_mib=0 crash=meteor", |bad| errors.push(bad));
    let words: Vec<&str> = errors.iter().map(|bad| bad.word).collect();
    assert_eq!(words, ["log=loud", "bogus=1", "noequals", "heap_max_mib=0", "crash=meteor"]);
    assert_eq!(params, params::Params::default());
}

fn page_tables_report_mappings() {
    let local = 0u64;
    assert!(paging::is_mapped(&local as *const u64 as u64), "the stack is mapped");
    assert!(paging::is_mapped(page_tables_report_mappings as fn() as usize as u64), "code is mapped");
    assert!(!paging::is_mapped(0x0000_dead_0000), "a hole is not mapped");
    assert!(!paging::is_mapped(0x8000_0000_0000), "a non-canonical address is not mapped");
}
