//! `bench=isolation`: what an isolated ring-3 task costs beside the two
//! other execution units, a kernel thread and an async task on the
//! executor — null system call, address-space switch, spawn and teardown,
//! memory per unit and how many fit. The ring-3 loops run in the `sysbench`
//! program (user/sysbench), which prints its own `@lab` lines; everything
//! else is timed here. Figures are TSC cycles unless a record says `ns`.
//!
//! The address-space switch is measured two ways: by difference (two tasks
//! yielding to each other, minus a null system call, minus two kernel
//! threads yielding to each other: what remains is the CR3 switch and the
//! TLB refills after it; the host does the subtraction), and directly (a
//! CR3 write to a task's tables and back, here).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use tenfold_runtime::executor::{Executor, Limits};
use tenfold_runtime::sched::Priority;

use super::report;
use crate::arch::cpu;
use crate::arch::paging;
use crate::memory::{self, frames};
use crate::{sched, stack, task, time};

/// The program every task here runs.
const PROGRAM: &str = "sysbench";

/// How much of everything to do: the full bench, or a quick pass for the
/// test that checks every row is produced.
pub struct Scale {
    /// Yields per thread or task in the switch measurements.
    rounds: u64,
    /// Null system calls: batches, and calls per batch.
    null_batches: u64,
    null_calls: u64,
    /// Spawn-to-reclaimed cycles per kind of unit.
    spawns: u32,
    /// Most async tasks spawned in the fill (its executor's `max_tasks`).
    futures: usize,
}

impl Scale {
    pub const FULL: Scale =
        Scale { rounds: 2000, null_batches: 1000, null_calls: 100, spawns: 100, futures: 100_000 };
    pub const QUICK: Scale =
        Scale { rounds: 200, null_batches: 50, null_calls: 100, spawns: 10, futures: 2000 };
}

/// Most threads or tasks the fills try before giving up without a refusal
/// (above the thread table, so a refusal always comes first today).
const FILL_BOUND: usize = 4096;
/// How long any one wait in here may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// One part of the bench: its records, or why it could not run.
type Part = fn(&Scale) -> Result<(), String>;

/// Runs the bench; `false` if a part could not run (logged).
pub fn bench(scale: Scale) -> bool {
    let parts: [(&str, Part); 7] = [
        ("null system call", null_syscall),
        ("kernel thread switch", kernel_thread_switch),
        ("task switch", task_switch),
        ("CR3 write and task memory", cr3_write_and_memory),
        ("spawn and teardown", spawn_teardown),
        ("thread and task fill", fills),
        ("async task fill", async_fill),
    ];
    for (name, part) in parts {
        if let Err(error) = part(&scale) {
            log::error!("bench isolation: {name}: {error}");
            return false;
        }
    }
    true
}

fn start_task(argument: &str) -> Result<u32, String> {
    task::run(PROGRAM, argument)
        .map(|thread| thread.tid())
        .map_err(|error| format!("cannot start `{PROGRAM} {argument}`: {error:?}"))
}

/// Sleeps until `done`, at most [`PATIENCE`].
fn wait_until(what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let deadline = time::now_ns() + PATIENCE.as_nanos() as u64;
    while !done() {
        if time::now_ns() > deadline {
            return Err(format!("{what}: still waiting after {} s", PATIENCE.as_secs()));
        }
        sched::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn wait_dead(tids: &[u32]) -> Result<(), String> {
    wait_until("threads to end", || tids.iter().all(|&tid| !sched::is_alive(tid)))
}

/// Null system calls, timed in ring 3 (the task prints the record).
fn null_syscall(scale: &Scale) -> Result<(), String> {
    let tid = start_task(&format!("null {} {}", scale.null_batches, scale.null_calls))?;
    wait_dead(&[tid])
}

/// Two kernel threads yielding to each other: every yield is a switch
/// (no address-space change: both run in the kernel's tables). At the
/// priority tasks get, so the two measurements differ only in the ring and
/// the address space.
fn kernel_thread_switch(scale: &Scale) -> Result<(), String> {
    super::yielding_pair("kernel-thread-switch", Priority::NORMAL, scale.rounds);
    Ok(())
}

/// Two tasks yielding to each other from ring 3 (each prints its loop's
/// cycles); the switches counted here show every yield was one.
fn task_switch(scale: &Scale) -> Result<(), String> {
    // Both sleep until the same instant, so one timer interrupt wakes both.
    let start_ns = time::now_ns() + 50_000_000;
    let argument = format!("yield {} {start_ns}", scale.rounds);
    let switches_before = sched::stats().switches;
    let tids = [start_task(&argument)?, start_task(&argument)?];
    wait_dead(&tids)?;
    let switches = sched::stats().switches - switches_before;
    record!("switches name=task-switch count={switches} rounds={}", scale.rounds);
    Ok(())
}

/// A CR3 write to the tables of a freshly loaded (never run) task and back
/// to the kernel's, and the memory that task holds.
fn cr3_write_and_memory(scale: &Scale) -> Result<(), String> {
    let image = task::initrd::find(PROGRAM).ok_or("no sysbench in the initrd")?;
    let loaded =
        task::loader::load(image, task::DEFAULT_QUOTA_FRAMES).map_err(|error| format!("load: {error:?}"))?;
    let user = loaded.space.level_4();
    let kernel = paging::kernel_level_4();
    // Interrupts off: no switch may happen while the task's tables are
    // live, and none adds to a sample.
    let mut samples: Vec<u64> = cpu::without_interrupts(|| {
        (0..scale.rounds)
            .map(|_| {
                let start = cpu::timestamp_counter();
                paging::switch_to(user);
                paging::switch_to(kernel);
                (cpu::timestamp_counter() - start) / 2
            })
            .collect()
    });
    report("cr3-write", "cycles", &mut samples);
    record!(
        "memory unit=task user_frames={} table_frames={} kernel_stack_bytes={}",
        loaded.space.frames(),
        loaded.space.table_frames(),
        sched::USER_KERNEL_STACK
    );
    loaded.space.destroy(&mut frames::free);
    Ok(())
}

/// Spawn cost and spawn → run to the end → reclaimed, for each unit.
fn spawn_teardown(scale: &Scale) -> Result<(), String> {
    let deadline = || time::now_ns() + PATIENCE.as_nanos() as u64;
    // Isolated task: loaded, run (it exits at once), its memory freed.
    let (mut spawn, mut whole) = (Vec::new(), Vec::new());
    let frames_before = task::stats().frames;
    let stacks_before = sched::stats().stack_bytes;
    for _ in 0..scale.spawns {
        let start = cpu::timestamp_counter();
        let tid = start_task("exit")?;
        spawn.push(cpu::timestamp_counter() - start);
        let give_up = deadline();
        // Yield, not sleep: the wait must not round the figure up to a tick.
        // Reclaimed means its frames (freed when it leaves the CPU) and its
        // kernel stack (freed when the thread is reaped, later) are back.
        while sched::is_alive(tid)
            || task::stats().frames != frames_before
            || sched::stats().stack_bytes != stacks_before
        {
            if time::now_ns() > give_up {
                return Err(format!("task {tid} not reclaimed"));
            }
            sched::yield_now();
        }
        whole.push(cpu::timestamp_counter() - start);
    }
    report("task-spawn", "cycles", &mut spawn);
    report("task-spawn-to-reclaimed", "cycles", &mut whole);

    // Kernel thread: its stack mapped, the thread run (an empty closure),
    // the stack unmapped.
    let (mut spawn, mut whole) = (Vec::new(), Vec::new());
    let stacks_before = sched::stats().stack_bytes;
    for _ in 0..scale.spawns {
        let start = cpu::timestamp_counter();
        let thread = sched::spawn("spawned", Priority::NORMAL, stack::MIN_STACK, || {})
            .map_err(|error| format!("spawn: {error:?}"))?;
        spawn.push(cpu::timestamp_counter() - start);
        let give_up = deadline();
        while sched::is_alive(thread.tid()) || sched::stats().stack_bytes != stacks_before {
            if time::now_ns() > give_up {
                return Err(format!("thread {} not reclaimed", thread.tid()));
            }
            sched::yield_now();
        }
        whole.push(cpu::timestamp_counter() - start);
    }
    report("thread-spawn", "cycles", &mut spawn);
    report("thread-spawn-to-reclaimed", "cycles", &mut whole);

    // Async task: spawned on an executor driven by this thread, polled to
    // completion, dropped in the close phase.
    let (mut spawn, mut whole) = (Vec::new(), Vec::new());
    let mut executor = Executor::new(Limits::default(), Arc::new(|| {}));
    let handle = executor.handle();
    for _ in 0..scale.spawns {
        let start = cpu::timestamp_counter();
        let join = handle.spawn(async {}).map_err(|error| format!("spawn: {error:?}"))?;
        spawn.push(cpu::timestamp_counter() - start);
        drop(join);
        let mut turns = 0;
        while executor.stats().tasks_alive != 0 {
            turns += 1;
            if turns > 16 {
                return Err("an async task did not finish in 16 turns".into());
            }
            executor.turn(time::now_ns(), &mut |_| {});
        }
        whole.push(cpu::timestamp_counter() - start);
    }
    report("async-spawn", "cycles", &mut spawn);
    report("async-spawn-to-reclaimed", "cycles", &mut whole);
    Ok(())
}

/// Memory now: (free frames, heap bytes in use).
fn memory_now() -> (u64, u64) {
    let stats = memory::stats();
    (stats.frames.free_frames(), stats.heap.in_use_bytes)
}

fn record_fill(
    unit: &str,
    spawned: usize,
    refused: &str,
    before: (u64, u64),
    full: (u64, u64),
    after: (u64, u64),
) {
    record!(
        "fill unit={unit} spawned={spawned} refused={refused} free_frames_before={} free_frames_full={} free_frames_after={} heap_before={} heap_full={} heap_after={} heap_max={}",
        before.0,
        full.0,
        after.0,
        before.1,
        full.1,
        after.1,
        memory::stats().heap.max_bytes
    );
}

/// Spawns sleeping tasks, then sleeping kernel threads, until refused
/// (bounded), measures what they hold, and tears them all down.
fn fills(_: &Scale) -> Result<(), String> {
    // Isolated tasks, each asleep in ring 3 until killed.
    let before = memory_now();
    let mut tids = Vec::new();
    let refused = loop {
        if tids.len() == FILL_BOUND {
            break String::from("never");
        }
        match task::run(PROGRAM, "sleep") {
            Ok(thread) => tids.push(thread.tid()),
            Err(error) => break format!("{error:?}"),
        }
    };
    // Let each one reach its sleep, so it holds all it will hold.
    sched::sleep(Duration::from_millis(50));
    let full = memory_now();
    for &tid in &tids {
        sched::kill(tid).map_err(|error| format!("kill {tid}: {error:?}"))?;
    }
    wait_dead(&tids)?;
    wait_until("task memory to come back", || task::stats().frames == 0)?;
    // The last one is reaped at a later switch.
    sched::sleep(Duration::from_millis(5));
    record_fill("task", tids.len(), &refused, before, full, memory_now());

    // Kernel threads with the smallest stack, each asleep until told.
    let stop = Arc::new(AtomicBool::new(false));
    let before = memory_now();
    let mut tids = Vec::new();
    let refused = loop {
        if tids.len() == FILL_BOUND {
            break String::from("never");
        }
        let stop = stop.clone();
        let spawned = sched::spawn("filler", Priority::NORMAL, stack::MIN_STACK, move || {
            while !stop.load(Ordering::Relaxed) {
                sched::sleep(Duration::from_millis(20));
            }
        });
        match spawned {
            Ok(thread) => tids.push(thread.tid()),
            Err(error) => break format!("{error:?}"),
        }
    };
    sched::sleep(Duration::from_millis(50));
    let full = memory_now();
    stop.store(true, Ordering::Relaxed);
    wait_dead(&tids)?;
    sched::sleep(Duration::from_millis(5));
    record_fill("thread", tids.len(), &refused, before, full, memory_now());
    Ok(())
}

/// Async tasks (the smallest future: one that never completes) spawned
/// until the executor's bound refuses one, then dropped with the executor.
fn async_fill(scale: &Scale) -> Result<(), String> {
    let mut executor = Executor::new(Limits { max_tasks: scale.futures }, Arc::new(|| {}));
    let handle = executor.handle();
    // After the executor's own (preallocated) room.
    let before = memory_now();
    let mut joins = Vec::with_capacity(scale.futures);
    let heap_of_joins = memory_now().1 - before.1;
    let refused = loop {
        if joins.len() > scale.futures {
            break String::from("never");
        }
        match handle.spawn(core::future::pending::<()>()) {
            Ok(join) => joins.push(join),
            Err(error) => break format!("{error:?}"),
        }
    };
    // One turn polls each once (each parks with its waker registered).
    executor.turn(time::now_ns(), &mut |_| {});
    let mut full = memory_now();
    // The join handles' vector is this bench's, not the tasks'.
    full.1 -= heap_of_joins;
    let spawned = joins.len();
    drop(joins);
    drop(handle);
    drop(executor);
    record_fill("async", spawned, &refused, before, full, memory_now());
    Ok(())
}
