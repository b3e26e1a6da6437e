//! The actor model's scheduler, for `demo=scheduler` (after the threads)
//! and `demo=scheduler-tasks` (alone): isolated ring-3 tasks are preempted
//! like BEAM processes — no task keeps the CPU, whatever its code does —
//! and one that runs away is killed by the CPU-budget watchdog.
//!
//! 1. Shares: three `worker spin` tasks (busy loops in ring 3 that never
//!    make a system call) and one `worker 5` task (a little work, then a
//!    5 ms sleep, over and over), all at the tasks' one priority: their CPU
//!    time sampled every 100 ms for 2 s, and the sleeper's waits to run
//!    once woken (the scheduler counts them: total and longest).
//! 2. The failure mode, a runaway: a `worker spin` task with a CPU budget
//!    beside two without one. The watchdog kills it once its budget is
//!    spent; how much CPU it had used when it died (its CPU at the last
//!    look, plus the wall time since, less what every other thread used
//!    meanwhile: every nanosecond is some thread's, the idle thread's
//!    included), and the others' shares while it ran and after.
//!
//! Records `@lab task-sample …`, `@lab task …`, `@lab runaway …` and
//! `@lab runaway-share …`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::sched::{self, Owner};
use crate::task::{self, Limits};
use crate::time;

/// The ring-3 program: `spin` is a runaway loop, a number a period in ms.
const PROGRAM: &str = "worker";
/// The sleeper's period (ms).
const SLEEPER_PERIOD_MS: u64 = 5;
/// The runaway's CPU budget.
const BUDGET: Duration = Duration::from_millis(300);
/// Most wall time the runaway may live (3 tasks share the CPU: ~3 × budget).
const RUNAWAY_PATIENCE: Duration = Duration::from_secs(10);
/// How often the runaway's CPU time is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(5);

pub fn demo() -> bool {
    match shares().and_then(|()| runaway()) {
        Ok(()) => true,
        Err(error) => {
            log::error!("demo scheduler (tasks): {error}");
            false
        }
    }
}

fn start(name: &str, argument: &str, limits: Limits, owner: Owner) -> Result<u32, String> {
    task::run_with(name, PROGRAM, limits, owner, |_| Ok(String::from(argument)))
        .map(|thread| thread.tid())
        .map_err(|error| format!("cannot start `{PROGRAM} {argument}` as `{name}`: {error:?}"))
}

/// Kills `tids` and waits until they are gone.
fn end(tids: &[u32]) -> Result<(), String> {
    for &tid in tids {
        sched::kill(tid).map_err(|error| format!("kill {tid}: {error:?}"))?;
    }
    super::wait_gone(tids);
    match tids.iter().any(|&tid| sched::is_alive(tid)) {
        true => Err(String::from("tasks still alive 10 s after being killed")),
        false => Ok(()),
    }
}

/// A look at the threads: when, and each one's CPU time by thread id.
type Look = (u64, BTreeMap<u32, u64>);

/// A look now.
fn cpu_by_thread() -> Look {
    let threads = sched::threads();
    let now = time::now_ns();
    (now, threads.into_iter().map(|thread| (thread.tid, thread.stats.cpu_ns)).collect())
}

/// CPU time used between two looks by the threads `counted` accepts
/// (threads born meanwhile from 0; threads gone meanwhile not at all).
fn cpu_between(from: &Look, to: &Look, counted: impl Fn(u32) -> bool) -> u64 {
    to.1.iter()
        .filter(|&(&tid, _)| counted(tid))
        .map(|(tid, &cpu)| cpu.saturating_sub(from.1.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Three runaway loops and a sleeper, all preempted in turn.
fn shares() -> Result<(), String> {
    // The sleeper first: its waits are then wake-ups, not its first run
    // queued behind the loops.
    let period = format!("{SLEEPER_PERIOD_MS}");
    let sleeper = (String::from("sleeper"), start("sleeper", &period, Limits::DEFAULT, Owner::Watcher)?);
    sched::sleep(Duration::from_millis(20));
    let hogs: Vec<(String, u32)> = (1..=3)
        .map(|index| {
            let name = format!("spin-{index}");
            start(&name, "spin", Limits::DEFAULT, Owner::Watcher).map(|tid| (name, tid))
        })
        .collect::<Result<_, _>>()?;
    let all: Vec<&(String, u32)> = hogs.iter().chain([&sleeper]).collect();
    let start_ns = time::now_ns();
    for _ in 0..20 {
        sched::sleep(Duration::from_millis(100));
        let t_ms = (time::now_ns() - start_ns) / 1_000_000;
        let (_, cpu) = cpu_by_thread();
        for (name, tid) in &all {
            let cpu_ns = cpu.get(tid).ok_or_else(|| format!("task `{name}` died"))?;
            record!("task-sample t_ms={t_ms} name={name} cpu_ns={cpu_ns}");
        }
    }
    for thread in sched::threads() {
        let Some((name, _)) = all.iter().find(|(_, tid)| *tid == thread.tid) else { continue };
        let stats = thread.stats;
        record!(
            "task name={name} role={} cpu_ns={} max_wait_ns={} wait_ns={} runs={} involuntary={} voluntary={}",
            if *name == sleeper.0 { "sleeper" } else { "spin" },
            stats.cpu_ns,
            stats.max_wait_ns,
            stats.wait_ns,
            stats.runs,
            stats.involuntary_switches,
            stats.voluntary_switches
        );
    }
    let tids: Vec<u32> = all.iter().map(|(_, tid)| *tid).collect();
    end(&tids)
}

/// A runaway with a CPU budget beside two loops without one.
fn runaway() -> Result<(), String> {
    let others = [
        start("other-1", "spin", Limits::DEFAULT, Owner::Watcher)?,
        start("other-2", "spin", Limits::DEFAULT, Owner::Watcher)?,
    ];
    let budget_ns = BUDGET.as_nanos() as u64;
    let limits = Limits { cpu_budget_ns: Some(budget_ns), ..Limits::DEFAULT };
    let kills_before = sched::watchdog_kills();
    let monitor = Owner::Monitor(sched::current());
    let (start_ns, at_start) = cpu_by_thread();
    let runaway = start("runaway", "spin", limits, monitor)?;
    // The last two looks with the runaway alive, and the first after its death.
    let mut last = (start_ns, at_start.clone());
    let mut before_last = last.clone();
    let first_dead = loop {
        sched::sleep(LOOK_EVERY);
        let look = cpu_by_thread();
        if !sched::is_alive(runaway) {
            break look;
        }
        if look.0 - start_ns > RUNAWAY_PATIENCE.as_nanos() as u64 {
            end(&others)?;
            let _ = end(&[runaway]);
            return Err(format!("the runaway still ran after {} s", RUNAWAY_PATIENCE.as_secs()));
        }
        before_last = core::mem::replace(&mut last, look);
    };
    let death = sched::take_monitored_deaths().into_iter().find(|death| death.thread.tid() == runaway);
    let death = death.ok_or("the runaway's death was not reported")?;
    let watchdog_kills = sched::watchdog_kills() - kills_before;
    // Its CPU time at death: what it had at the last look, plus the wall
    // time since then less what every other thread used meanwhile.
    let others_meanwhile = cpu_between(&last, &first_dead, |tid| tid != runaway);
    let wall_meanwhile = first_dead.0 - last.0;
    let at_last = last.1.get(&runaway).copied().unwrap_or(0);
    let cpu_at_kill = (at_last + wall_meanwhile).saturating_sub(others_meanwhile);
    // How well that holds: wall time less every thread's CPU time between
    // the last two looks (0 if every nanosecond was counted).
    let unaccounted = (last.0 - before_last.0) as i64 - cpu_between(&before_last, &last, |_| true) as i64;
    record!(
        "runaway budget_ns={budget_ns} cpu_at_kill_ns={cpu_at_kill} cpu_at_last_look_ns={at_last} look_gap_ns={wall_meanwhile} unaccounted_ns={unaccounted} lived_ns={} exit_code={} watchdog_kills={watchdog_kills}",
        death.at_ns.saturating_sub(start_ns),
        death.exit_code.map_or(String::from("none"), |code| format!("{code}"))
    );
    // The others while it ran, then for as long again without it.
    sched::sleep(Duration::from_nanos(death.at_ns.saturating_sub(start_ns)));
    let after = cpu_by_thread();
    for (index, tid) in others.iter().enumerate() {
        let cpu = |look: &Look| look.1.get(tid).copied().unwrap_or(0);
        record!(
            "runaway-share phase=with name=other-{} cpu_ns={} wall_ns={}",
            index + 1,
            cpu(&last).saturating_sub(at_start.get(tid).copied().unwrap_or(0)),
            last.0 - start_ns
        );
        record!(
            "runaway-share phase=after name=other-{} cpu_ns={} wall_ns={} alive={}",
            index + 1,
            cpu(&after) - cpu(&first_dead),
            after.0 - first_dead.0,
            sched::is_alive(*tid)
        );
    }
    end(&others)
}
