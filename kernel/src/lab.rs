//! Lab scenarios, run inside the guest for `cargo lab demo …` and
//! `cargo lab bench …` (kernel parameters `demo=<name>`, `bench=<name>`).
//! Each prints its measurements as `@lab <kind> key=value …` lines for the
//! host to tabulate and plot, then `@lab done`, and ends the run with
//! success; an unknown name ends it with failure.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use tenfold_runtime::sched::Priority;

use crate::arch::cpu::{self, FpuState};
use crate::arch::qemu;
use crate::{sched, time};

const SMALL_STACK: u64 = 16 * 1024;

macro_rules! record {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("@lab {}\n", format_args!($($arg)*))) };
}

mod isolation;
mod ordering;
mod ownership;
mod task_scheduler;

/// Names accepted by `demo=` and `bench=`.
pub const DEMOS: &[&str] =
    &["scheduler", "scheduler-tasks", "fairness", "ordering", "ownership", "ownership-reactor"];
pub const BENCHES: &[&str] = &["sched", "isolation", "isolation-quick"];

/// Runs the named scenario and ends the run.
pub fn run(kind: &str, name: &str) -> ! {
    record!("clock tsc_hz={}", time::tsc_hz());
    let known = match (kind, name) {
        ("demo", "scheduler") => demo_scheduler() && task_scheduler::demo(),
        ("demo", "scheduler-tasks") => task_scheduler::demo(),
        ("demo", "fairness") => demo_fairness(),
        ("demo", "ordering") => ordering::demo(),
        ("demo", "ownership") => ownership::demo(),
        ("demo", "ownership-reactor") => ownership::demo_reactor(),
        ("bench", "sched") => bench_sched(),
        ("bench", "isolation") => isolation::bench(isolation::Scale::FULL),
        ("bench", "isolation-quick") => isolation::bench(isolation::Scale::QUICK),
        _ => false,
    };
    if !known {
        log::error!("unknown {kind} `{name}` (demos: {DEMOS:?}, benches: {BENCHES:?})");
        qemu::exit(qemu::ExitCode::Failure);
    }
    record!("done");
    qemu::exit(qemu::ExitCode::Success)
}

/// A thread that spins until `stop` or for at most `limit`.
fn spinner(name: &str, priority: Priority, stop: &Arc<AtomicBool>, limit: Duration) -> u32 {
    let stop = stop.clone();
    let end = time::now_ns() + limit.as_nanos() as u64;
    sched::spawn(name, priority, SMALL_STACK, move || {
        while !stop.load(Ordering::Relaxed) && time::now_ns() < end {
            core::hint::spin_loop();
        }
    })
    .expect("spawn spinner")
    .tid()
}

/// Spawns a scenario's helper thread at normal priority; its id, or `None`
/// (logged) if the thread table refused it.
fn spawn_helper(name: &str, body: impl FnOnce() + Send + 'static) -> Option<u32> {
    match sched::spawn(name, Priority::NORMAL, SMALL_STACK, body) {
        Ok(thread) => Some(thread.tid()),
        Err(error) => {
            log::error!("lab: cannot spawn `{name}`: {error:?}");
            None
        }
    }
}

fn wait_gone(tids: &[u32]) {
    let deadline = time::now_ns() + 10_000_000_000;
    while time::now_ns() < deadline && sched::threads().iter().any(|t| tids.contains(&t.tid)) {
        sched::sleep(Duration::from_millis(2));
    }
}

/// Three CPU-bound threads at priorities 10, 20, 30: their CPU time sampled
/// every 100 ms for 2 s.
fn demo_scheduler() -> bool {
    let stop = Arc::new(AtomicBool::new(false));
    let levels = [10u8, 20, 30];
    let tids: Vec<u32> = levels
        .iter()
        .map(|&level| {
            let priority = Priority::new(level).expect("valid level");
            spinner(&alloc::format!("hog-p{level}"), priority, &stop, Duration::from_secs(10))
        })
        .collect();
    let start = time::now_ns();
    for _ in 0..20 {
        sched::sleep(Duration::from_millis(100));
        let t_ms = (time::now_ns() - start) / 1_000_000;
        for thread in sched::threads().iter().filter(|t| tids.contains(&t.tid)) {
            record!(
                "sample t_ms={t_ms} name={} prio={} cpu_ns={}",
                thread.name,
                thread.priority,
                thread.stats.cpu_ns
            );
        }
    }
    for thread in sched::threads().iter().filter(|t| tids.contains(&t.tid)) {
        let stats = thread.stats;
        record!(
            "thread name={} prio={} weight={} cpu_ns={} max_wait_ns={} involuntary={} voluntary={}",
            thread.name,
            thread.priority,
            thread.priority.weight(),
            stats.cpu_ns,
            stats.max_wait_ns,
            stats.involuntary_switches,
            stats.voluntary_switches
        );
    }
    stop.store(true, Ordering::Relaxed);
    wait_gone(&tids);
    true
}

/// An interactive thread wakes every 5 ms and records how late it woke:
/// alone, next to a CPU hog of the same priority with preemption, and next
/// to the hog without preemption.
fn demo_fairness() -> bool {
    let scenarios =
        [("alone", false, true), ("hog-preemptive", true, true), ("hog-cooperative", true, false)];
    for (scenario, with_hog, preemption) in scenarios {
        sched::set_preemption(preemption);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let interactive = {
            let done = done.clone();
            sched::spawn("interactive", Priority::NORMAL, SMALL_STACK, move || {
                let start = time::now_ns();
                while time::now_ns() - start < 1_000_000_000 {
                    let target = time::now_ns() + 5_000_000;
                    sched::sleep(Duration::from_millis(5));
                    let late_us = (time::now_ns() - target) / 1000;
                    record!(
                        "latency scenario={scenario} t_ms={} us={late_us}",
                        (time::now_ns() - start) / 1_000_000
                    );
                }
                done.store(true, Ordering::Relaxed);
            })
            .expect("spawn interactive")
            .tid()
        };
        // The interactive thread is in its loop before the hog arrives.
        sched::sleep(Duration::from_millis(20));
        // Bounded: without preemption the hog gives the CPU back only when it ends.
        let hog = with_hog.then(|| spinner("hog", Priority::NORMAL, &stop, Duration::from_millis(1200)));
        while !done.load(Ordering::Relaxed) {
            sched::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let mut tids = alloc::vec![interactive];
        tids.extend(hog);
        wait_gone(&tids);
    }
    sched::set_preemption(true);
    true
}

/// Two kernel threads at `priority` yield to each other `rounds` times each
/// (every yield a switch); records the cycles per switch as `name`, with
/// the switches the scheduler counted meanwhile.
fn yielding_pair(name: &str, priority: Priority, rounds: u64) {
    let finished = Arc::new(AtomicU64::new(0));
    let start_flag = Arc::new(AtomicBool::new(false));
    let spent = Arc::new(AtomicU64::new(0));
    let tids: Vec<u32> = (0..2)
        .map(|_| {
            let finished = finished.clone();
            let start_flag = start_flag.clone();
            let spent = spent.clone();
            sched::spawn("yielder", priority, SMALL_STACK, move || {
                while !start_flag.load(Ordering::Acquire) {
                    sched::yield_now();
                }
                let start = cpu::timestamp_counter();
                for _ in 0..rounds {
                    sched::yield_now();
                }
                spent.fetch_max(cpu::timestamp_counter() - start, Ordering::Relaxed);
                finished.fetch_add(1, Ordering::Release);
            })
            .expect("spawn yielder")
            .tid()
        })
        .collect();
    let switches_before = sched::stats().switches;
    start_flag.store(true, Ordering::Release);
    while finished.load(Ordering::Acquire) < 2 {
        sched::sleep(Duration::from_millis(5));
    }
    let switches = sched::stats().switches - switches_before;
    wait_gone(&tids);
    let per_switch = spent.load(Ordering::Relaxed) / (2 * rounds);
    record!(
        "bench name={name} unit=cycles samples={} p50={per_switch} p99={per_switch} max={per_switch} mean={per_switch} switches={switches}",
        2 * rounds
    );
}

fn report(name: &str, unit: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    let count = samples.len().max(1);
    let rank = |percent: usize| samples[(samples.len() - 1) * percent / 100];
    let mean = samples.iter().sum::<u64>() / count as u64;
    record!(
        "bench name={name} unit={unit} samples={} p50={} p99={} max={} mean={mean}",
        samples.len(),
        rank(50),
        rank(99),
        samples[samples.len() - 1]
    );
}

/// Context-switch cost, FPU state cost, timer latency, preemption jitter,
/// spawn cost.
fn bench_sched() -> bool {
    const ROUNDS: u64 = 2000;
    // 1. The yield path with nobody else runnable (no switch happens).
    let mut alone = Vec::new();
    for _ in 0..ROUNDS {
        let start = cpu::timestamp_counter();
        sched::yield_now();
        alone.push(cpu::timestamp_counter() - start);
    }
    report("yield-no-switch", "cycles", &mut alone);

    // 2. Two threads yielding to each other: every yield is a switch.
    yielding_pair("thread-switch", Priority::HIGHEST, ROUNDS);

    // 3. The FPU/SSE part of a switch (eager fxsave + fxrstor).
    let mut area = FpuState::initial();
    let mut fpu = Vec::new();
    for _ in 0..ROUNDS {
        let start = cpu::timestamp_counter();
        area.save();
        area.restore();
        fpu.push(cpu::timestamp_counter() - start);
    }
    report("fxsave+fxrstor", "cycles", &mut fpu);

    // 4. Timer latency: how late a 1 ms sleep wakes (tickless one-shot timer).
    let mut late = Vec::new();
    for _ in 0..300 {
        let target = time::now_ns() + 1_000_000;
        sched::sleep(Duration::from_millis(1));
        late.push(time::now_ns() - target);
    }
    report("timer-wake-latency", "ns", &mut late);

    // 5. Preemption jitter: how late slice-end preemptions fire with two hogs.
    sched::preemption_lateness();
    let stop = Arc::new(AtomicBool::new(false));
    let hogs = [
        spinner("jitter-a", Priority::NORMAL, &stop, Duration::from_secs(5)),
        spinner("jitter-b", Priority::NORMAL, &stop, Duration::from_secs(5)),
    ];
    sched::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    wait_gone(&hogs);
    let mut jitter = sched::preemption_lateness();
    if jitter.is_empty() {
        log::error!("no preemption happened in 1 s with two CPU hogs");
        return false;
    }
    report("preemption-jitter", "ns", &mut jitter);

    // 6. Spawn: the cost of `spawn` and the delay until the thread first runs.
    let mut spawn_cost = Vec::new();
    let mut first_run = Vec::new();
    for _ in 0..100 {
        let started = Arc::new(AtomicU64::new(0));
        let flag = started.clone();
        let start = cpu::timestamp_counter();
        let thread = sched::spawn("spawned", Priority::HIGHEST, SMALL_STACK, move || {
            flag.store(cpu::timestamp_counter(), Ordering::Release);
        })
        .expect("spawn");
        spawn_cost.push(cpu::timestamp_counter() - start);
        while started.load(Ordering::Acquire) == 0 {
            sched::yield_now();
        }
        first_run.push(started.load(Ordering::Acquire) - start);
        wait_gone(&[thread.tid()]);
    }
    report("spawn", "cycles", &mut spawn_cost);
    report("spawn-to-first-run", "cycles", &mut first_run);
    true
}
