//! `cargo lab demo <concept>` and `cargo lab bench <what>`: run a scenario
//! in the guest (see kernel/src/lab.rs), print a table, write a plot to
//! `target/lab/`, and end with one headline line. Each demo also returns
//! its figures per model ([`Finding`]s) for `demo all`'s report
//! ([`crate::lab_report`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::image::BootImage;
use crate::lab_report::{self, Concept, Finding, Section};
use crate::options::{MachineOptions, Model};
use crate::plot::{LineChart, Series};
use crate::scenario::{self, Record, percentile};
use crate::stall_demo;
use crate::{say, workspace};

/// Concepts with a demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Demo {
    /// CPU shares of threads at three priorities over time; ring-3 tasks preempted in turn, and a runaway killed by the CPU watchdog.
    Scheduler,
    /// Wake-up latency of an interactive thread beside a CPU hog, with and without preemption; then a CPU-bound echo handler in each model.
    Fairness,
    /// Event-loop work per request as idle connections grow: O(ready), not O(connections).
    Multiplexing,
    /// A client that never reads: guest memory and client progress over time, bounded vs unbounded echo.
    Backpressure,
    /// A connect flood beyond the connection cap: refusals, memory, established connections unaffected.
    Bounding,
    /// Spawn time, teardown and memory of a future, a kernel thread and an isolated task, and how many fit.
    ExecutionUnits,
    /// A 300 ms blocking call in one connection's handler, in each model: what the other connections see.
    Blocking,
    /// FIFO where each model promises it (executor queue, channel, mailbox per sender) and no order across channels or senders.
    Ordering,
    /// Handing data over: by reference vs copied between futures and closures that keep buffers alive (reactor), moved vs copied through a channel (csp), copied vs page transfer between isolated tasks (actor), by size.
    Ownership,
    /// The same CPU fault in a kernel-mode handler (the kernel stops, every client is cut off) and in isolated ring-3 tasks (only they die).
    Isolation,
    /// Every demo above, one after another, and the 10 × 3 report in target/lab/report.md.
    All,
}

impl Demo {
    /// The single demos, in the order `all` runs them.
    pub const EACH: [Demo; 10] = [
        Demo::Scheduler,
        Demo::Fairness,
        Demo::Multiplexing,
        Demo::Backpressure,
        Demo::Bounding,
        Demo::ExecutionUnits,
        Demo::Blocking,
        Demo::Ordering,
        Demo::Ownership,
        Demo::Isolation,
    ];
}

/// Benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bench {
    /// Context switch, FPU state, timer latency, preemption jitter, spawn.
    Sched,
    /// Host CPU used by an idle guest, and its timer interrupts (tickless idle).
    Idle,
    /// Echo request rate, latency and bulk throughput over user-net and tap.
    Echo,
    /// Null syscall, address-space switch, spawn/teardown and memory of an isolated task, beside a kernel thread and an async task.
    Isolation,
    /// 10 × 1 000 000 random system calls from ring 3 while echo clients are served: kernel faults, memory back, echo kept.
    Fuzz,
}

/// `target/lab/<name>`: where a chart's `.svg` and `.png` go.
pub(crate) fn plot_path(name: &str) -> PathBuf {
    workspace::target_dir().join("lab").join(name)
}

fn of_kind<'a>(records: &'a [Record], kind: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
    records.iter().filter(move |record| record.kind == kind)
}

/// Runs a demo on `boot` (see [`scenario::boot_image`]); its figures.
pub fn run_demo(boot: &BootImage, demo: Demo, options: &MachineOptions) -> Result<Vec<Finding>> {
    match demo {
        Demo::Scheduler => scheduler(boot, options),
        Demo::Fairness => fairness(boot, options),
        Demo::Multiplexing => crate::net_demos::multiplexing(boot, options),
        Demo::Backpressure => crate::net_demos::backpressure(boot, options),
        Demo::Bounding => crate::net_demos::bounding(boot, options),
        Demo::ExecutionUnits => execution_units(boot, options),
        Demo::Blocking => stall_demo::blocking(boot, options),
        Demo::Ordering => ordering(boot, options),
        Demo::Ownership => ownership(boot, options),
        Demo::Isolation => crate::isolation_demo::run(boot, options),
        Demo::All => all(boot, options),
    }
}

/// Runs every demo, capturing what each prints; a demo that fails is
/// reported and the rest still run. Writes the report with the 10 × 3
/// table first and prints the table.
fn all(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let mut failed = Vec::new();
    let mut findings = Vec::new();
    let mut sections = Vec::new();
    for demo in Demo::EACH {
        println!("\n== demo {demo:?}");
        lab_report::start_capture();
        let outcome = run_demo(boot, demo, options);
        let output = lab_report::take_capture();
        let error = match outcome {
            Ok(found) => {
                findings.extend(found);
                None
            }
            Err(error) => {
                eprintln!("lab: demo {demo:?} failed: {error:#}");
                failed.push(format!("{demo:?}"));
                Some(format!("{error:#}"))
            }
        };
        sections.push(Section { title: format!("demo {}", demo_name(demo)), output, error });
    }
    let conditions = format!(
        "{:?}, {} vCPU, {} MiB, {} kernel",
        crate::accel::resolve(options.accel, &crate::accel::HostFacts::probe()).unwrap_or(options.accel),
        options.smp,
        options.memory,
        if options.release { "release" } else { "dev" }
    );
    let report = lab_report::write(&sections, &findings, &conditions)?;
    println!("\n{}", lab_report::concept_table(&findings));
    let measured = findings.len();
    let ran = Demo::EACH.len() - failed.len();
    if failed.is_empty() {
        println!(
            "demo all: {ran} of {} demos ran, {measured} concept × model figures; report: {}",
            Demo::EACH.len(),
            report.display()
        );
        Ok(findings)
    } else {
        println!(
            "demo all: {ran} of {} demos ran; failed: {}; report: {}",
            Demo::EACH.len(),
            failed.join(", "),
            report.display()
        );
        anyhow::bail!("{} demo(s) did not run: {}", failed.len(), failed.join(", "))
    }
}

/// The name `cargo lab demo` takes.
fn demo_name(demo: Demo) -> String {
    use clap::ValueEnum;
    demo.to_possible_value().map_or_else(|| format!("{demo:?}"), |value| value.get_name().to_string())
}

/// Runs a benchmark on `boot`.
pub fn run_bench(
    boot: &BootImage,
    bench: Bench,
    options: &MachineOptions,
    vs: Option<crate::bench_echo::Reference>,
    runs: u32,
) -> Result<()> {
    if bench != Bench::Echo && (vs.is_some() || runs != 1) {
        anyhow::bail!("--vs and --runs apply to `bench echo` only");
    }
    match bench {
        Bench::Sched => sched(boot, options),
        Bench::Idle => idle(boot, options),
        Bench::Echo => crate::bench_echo::run(boot, options, vs, runs),
        Bench::Isolation => crate::bench_isolation::run(boot, options),
        Bench::Fuzz => crate::bench_fuzz::run(boot, options),
    }
}

/// CPU share (%) per named unit in each sampling interval, from samples of
/// its CPU time (`t_ms`, `name`, `cpu_ns`): its CPU time since its previous
/// sample over all the units' in that interval.
fn share_series<'a>(samples: impl Iterator<Item = &'a Record>) -> Result<BTreeMap<String, Vec<(f64, f64)>>> {
    let mut last_cpu: BTreeMap<String, f64> = BTreeMap::new();
    let mut deltas = Vec::new();
    for sample in samples {
        let (name, t, cpu) =
            (sample.text("name")?.to_string(), sample.number("t_ms")?, sample.number("cpu_ns")?);
        let previous = last_cpu.insert(name.clone(), cpu).unwrap_or(0.0);
        deltas.push((name, t, cpu - previous));
    }
    let mut interval_total: BTreeMap<u64, f64> = BTreeMap::new();
    for (_, t, delta) in &deltas {
        *interval_total.entry(*t as u64).or_default() += delta;
    }
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (name, t, delta) in deltas {
        let total = interval_total[&(t as u64)].max(1.0);
        series.entry(name).or_default().push((t, 100.0 * delta / total));
    }
    Ok(series)
}

/// Kernel threads at three priorities (csp), then isolated tasks (actor):
/// the guest's `demo=scheduler` runs both.
fn scheduler(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let records = scenario::run(boot, "demo=scheduler", options, Duration::from_secs(180))?;
    let series = share_series(of_kind(&records, "sample"))?;
    let threads: Vec<&Record> = of_kind(&records, "thread").collect();
    if threads.len() != 3 {
        bail!("the scheduler demo reported {} of its 3 threads", threads.len());
    }
    let weight_sum: f64 = threads.iter().map(|t| t.number("weight").unwrap_or(0.0)).sum();
    let cpu_sum: f64 = threads.iter().map(|t| t.number("cpu_ns").unwrap_or(0.0)).sum();
    say!(
        "{:<10} {:>4} {:>7} {:>14} {:>14} {:>10} {:>13} {:>8}",
        "thread",
        "prio",
        "weight",
        "expected share",
        "measured share",
        "CPU ms",
        "max wait ms",
        "preempted"
    );
    let mut worst_error: f64 = 0.0;
    let mut parts = Vec::new();
    for thread in &threads {
        let expected = 100.0 * thread.number("weight")? / weight_sum;
        let measured = 100.0 * thread.number("cpu_ns")? / cpu_sum;
        worst_error = worst_error.max((measured - expected).abs());
        say!(
            "{:<10} {:>4} {:>7} {:>13.1}% {:>13.1}% {:>10.0} {:>13.1} {:>8}",
            thread.text("name")?,
            thread.text("prio")?,
            thread.text("weight")?,
            expected,
            measured,
            thread.number("cpu_ns")? / 1e6,
            thread.number("max_wait_ns")? / 1e6,
            thread.text("involuntary")?
        );
        parts.push((
            thread.text("prio")?.to_string(),
            measured,
            expected,
            thread.number("max_wait_ns")? / 1e6,
        ));
    }
    let chart = LineChart {
        title: "CPU share per thread (priorities 10, 20, 30), per 100 ms".into(),
        x_label: "time since start (ms)".into(),
        y_label: "CPU share (%)".into(),
        series: series.into_iter().map(|(name, points)| Series { name, points }).collect(),
    };
    let written = chart.write(&plot_path("scheduler"))?;
    say!("plot: {written}");
    let lowest_wait = parts.iter().map(|p| p.3).fold(0.0, f64::max);
    let shares: Vec<String> =
        parts.iter().map(|(p, m, e, _)| format!("p{p} {m:.1}% (weights: {e:.1}%)")).collect();
    say!(
        "scheduler: CPU shares follow priority weights within {worst_error:.1} points — {}; longest wait of any hog {lowest_wait:.1} ms",
        shares.join(", ")
    );
    let csp = Finding::new(
        Concept::Scheduler,
        Model::Csp,
        format!(
            "preemptive, weighted: 3 CPU-bound threads get their weights' shares within {worst_error:.1} points; longest wait {lowest_wait:.1} ms"
        ),
    );
    say!("");
    let tasks = TaskScheduling::from_records(&records)?;
    tasks.show()?;
    Ok(vec![csp, tasks.finding()])
}

/// The actor model's scheduler, measured by the guest's
/// `demo=scheduler-tasks` (also the second half of `demo=scheduler`):
/// ring-3 busy loops that never yield, preempted in turn, beside a task
/// that sleeps 5 ms at a time; then a runaway with a CPU budget beside two
/// loops without one, killed by the watchdog.
#[derive(Clone, Debug)]
pub struct TaskScheduling {
    /// Each busy loop's share (%) of the CPU time the loops used together.
    pub spin_shares: Vec<(String, f64)>,
    /// The sleeper's mean and longest wait to run once woken (ms).
    pub sleeper_mean_wait_ms: f64,
    pub sleeper_max_wait_ms: f64,
    /// How often the sleeper went to sleep (its voluntary switches).
    pub sleeper_sleeps: u64,
    /// The runaway's CPU budget and the CPU it had used when killed (ms).
    pub budget_ms: f64,
    pub cpu_at_kill_ms: f64,
    /// Wall time from its start to its death (ms).
    pub lived_ms: f64,
    /// How far the CPU accounting behind `cpu_at_kill_ms` was off in the
    /// window before: wall time less every thread's CPU time (ms).
    pub unaccounted_ms: f64,
    /// Watchdog kills while it ran (must be 1: the runaway).
    pub watchdog_kills: u64,
    /// The two other loops' shares of wall time (%) while the runaway ran,
    /// and for as long again after.
    pub others_with: Vec<f64>,
    pub others_after: Vec<f64>,
    /// Whether both were still alive at the end.
    pub others_alive: bool,
    /// CPU share (%) per task over time, for the plot.
    series: BTreeMap<String, Vec<(f64, f64)>>,
}

impl TaskScheduling {
    /// Boots the guest with `demo=scheduler-tasks` and reads its records.
    pub fn measure(boot: &BootImage, options: &MachineOptions) -> Result<TaskScheduling> {
        let records = scenario::run(boot, "demo=scheduler-tasks", options, Duration::from_secs(180))?;
        TaskScheduling::from_records(&records)
    }

    /// Reads the records; fails if the scenario did not happen: a task
    /// missing, the runaway not killed by the watchdog or killed before its
    /// budget was spent, or the others not running on.
    pub fn from_records(records: &[Record]) -> Result<TaskScheduling> {
        let tasks: Vec<&Record> = of_kind(records, "task").collect();
        let role = |wanted: &'static str| {
            tasks.iter().copied().filter(move |task| task.text("role").is_ok_and(|role| role == wanted))
        };
        let spins: Vec<&Record> = role("spin").collect();
        let sleeper = role("sleeper").next().context("the task scheduler demo reported no sleeper")?;
        if spins.len() != 3 {
            bail!("the task scheduler demo reported {} of its 3 busy loops", spins.len());
        }
        let spin_total: f64 = spins.iter().map(|task| task.number("cpu_ns").unwrap_or(0.0)).sum();
        let spin_shares = spins
            .iter()
            .map(|task| {
                Ok((task.text("name")?.to_string(), 100.0 * task.number("cpu_ns")? / spin_total.max(1.0)))
            })
            .collect::<Result<Vec<_>>>()?;
        let runaway =
            of_kind(records, "runaway").next().context("the task scheduler demo reported no runaway")?;
        let shares = |phase: &str| -> Result<Vec<f64>> {
            of_kind(records, "runaway-share")
                .filter(|share| share.text("phase").is_ok_and(|p| p == phase))
                .map(|share| Ok(100.0 * share.number("cpu_ns")? / share.number("wall_ns")?.max(1.0)))
                .collect()
        };
        let measured = TaskScheduling {
            spin_shares,
            sleeper_mean_wait_ms: sleeper.number("wait_ns")? / sleeper.number("runs")?.max(1.0) / 1e6,
            sleeper_max_wait_ms: sleeper.number("max_wait_ns")? / 1e6,
            sleeper_sleeps: sleeper.number("voluntary")? as u64,
            budget_ms: runaway.number("budget_ns")? / 1e6,
            cpu_at_kill_ms: runaway.number("cpu_at_kill_ns")? / 1e6,
            lived_ms: runaway.number("lived_ns")? / 1e6,
            unaccounted_ms: runaway.number("unaccounted_ns")? / 1e6,
            watchdog_kills: runaway.number("watchdog_kills")? as u64,
            others_with: shares("with")?,
            others_after: shares("after")?,
            others_alive: of_kind(records, "runaway-share")
                .filter(|share| share.text("phase").is_ok_and(|p| p == "after"))
                .all(|share| share.text("alive").is_ok_and(|alive| alive == "true")),
            series: share_series(of_kind(records, "task-sample"))?,
        };
        if measured.watchdog_kills != 1 || runaway.text("exit_code")? != "none" {
            bail!("the runaway was not killed by the watchdog: {runaway:?}");
        }
        if measured.cpu_at_kill_ms < measured.budget_ms * 0.99 {
            bail!("the runaway was killed before its budget was spent: {runaway:?}");
        }
        if measured.others_with.len() != 2 || measured.others_after.len() != 2 || !measured.others_alive {
            bail!("the other loops did not run on beside the runaway: {measured:?}");
        }
        if measured.others_with.iter().chain(&measured.others_after).any(|&share| share <= 0.0) {
            bail!("another loop got no CPU beside the runaway: {measured:?}");
        }
        Ok(measured)
    }

    /// The runaway's CPU past its budget when the watchdog killed it (ms).
    pub fn kill_overshoot_ms(&self) -> f64 {
        self.cpu_at_kill_ms - self.budget_ms
    }

    /// Prints the tables, writes the plot and prints the headline.
    pub fn show(&self) -> Result<()> {
        let equal = 100.0 / self.spin_shares.len() as f64;
        say!("{:<10} {:<34} {:>14} {:>14}", "task", "what", "measured share", "equal share");
        for (name, share) in &self.spin_shares {
            say!("{name:<10} {:<34} {share:>13.1}% {equal:>13.1}%", "ring-3 loop, no system call");
        }
        say!(
            "{:<10} {:<34} wait to run once woken: mean {:.2} ms, longest {:.2} ms ({} sleeps)",
            "sleeper",
            "5 ms sleeps beside the loops",
            self.sleeper_mean_wait_ms,
            self.sleeper_max_wait_ms,
            self.sleeper_sleeps
        );
        say!("");
        say!("{:<34} {:>10}", "runaway (CPU budget, never yields)", "value");
        say!("{:<34} {:>9.1} ms", "CPU budget", self.budget_ms);
        say!("{:<34} {:>9.3} ms", "CPU used when killed", self.cpu_at_kill_ms);
        say!("{:<34} {:>9.3} ms", "past its budget", self.kill_overshoot_ms());
        say!("{:<34} {:>9.3} ms", "  (accounting gap in 5 ms before)", self.unaccounted_ms);
        say!("{:<34} {:>9.1} ms", "start → killed (wall)", self.lived_ms);
        say!("{:<34} {:>10}", "watchdog kills", self.watchdog_kills);
        for (index, (with, after)) in self.others_with.iter().zip(&self.others_after).enumerate() {
            say!("{:<34} {with:>9.1} %", format!("other-{} share while it ran", index + 1));
            say!("{:<34} {after:>9.1} %", format!("other-{} share after the kill", index + 1));
        }
        let chart = LineChart {
            title: "CPU share per ring-3 task (3 busy loops, a 5 ms sleeper), per 100 ms".into(),
            x_label: "time since start (ms)".into(),
            y_label: "CPU share (%)".into(),
            series: self
                .series
                .iter()
                .map(|(name, points)| Series { name: name.clone(), points: points.clone() })
                .collect(),
        };
        let written = chart.write(&plot_path("scheduler-tasks"))?;
        say!("plot: {written}");
        say!("tasks: {} (equal share: {equal:.1}%)", self.summary());
        Ok(())
    }

    /// What was measured, in one sentence: the headline and the cell.
    fn summary(&self) -> String {
        let shares = percents(&self.spin_shares.iter().map(|(_, share)| *share).collect::<Vec<_>>());
        format!(
            "3 ring-3 loops that never yield get {shares} of the CPU; a 5 ms sleeper beside them waits {:.2} ms on average, at most {:.2} ms, to run; a runaway is killed by the CPU watchdog {:.2} ms of CPU past its {:.0} ms budget, the other 2 get {} meanwhile, {} after",
            self.sleeper_mean_wait_ms,
            self.sleeper_max_wait_ms,
            self.kill_overshoot_ms(),
            self.budget_ms,
            percents(&self.others_with),
            percents(&self.others_after)
        )
    }

    /// The 10 × 3 table's cell.
    pub fn finding(&self) -> Finding {
        Finding::new(
            Concept::Scheduler,
            Model::Actor,
            format!("preemptive per task (BEAM-like): {}", self.summary()),
        )
    }
}

/// `33.3/33.4/33.3%`.
fn percents(values: &[f64]) -> String {
    let each: Vec<String> = values.iter().map(|value| format!("{value:.1}")).collect();
    format!("{}%", each.join("/"))
}

fn fairness(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let records = scenario::run(boot, "demo=fairness", options, Duration::from_secs(180))?;
    let mut by_scenario: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for record in of_kind(&records, "latency") {
        by_scenario
            .entry(record.text("scenario")?.to_string())
            .or_default()
            .push((record.number("t_ms")?, record.number("us")? / 1000.0));
    }
    let order = ["alone", "hog-preemptive", "hog-cooperative"];
    say!("{:<16} {:>8} {:>10} {:>10} {:>10}", "scenario", "wakeups", "p50 ms", "p99 ms", "max ms");
    let mut p99 = BTreeMap::new();
    for name in order {
        let Some(points) = by_scenario.get(name) else { bail!("scenario `{name}` reported nothing") };
        let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
        let (p50, p99v, max) =
            (percentile(&mut values, 50.0), percentile(&mut values, 99.0), percentile(&mut values, 100.0));
        say!("{name:<16} {:>8} {p50:>10.2} {p99v:>10.2} {max:>10.2}", values.len());
        p99.insert(name, (p99v, max));
    }
    let chart = LineChart {
        title: "Interactive thread wake-up lateness (5 ms sleeps)".into(),
        x_label: "time since start (ms)".into(),
        y_label: "lateness (ms)".into(),
        series: order
            .iter()
            .map(|name| Series { name: (*name).into(), points: by_scenario[*name].clone() })
            .collect(),
    };
    let written = chart.write(&plot_path("fairness"))?;
    say!("plot: {written}");
    say!(
        "threads: beside a CPU hog the interactive thread wakes within p99 {:.2} ms with preemption, but waits up to {:.0} ms without (alone: p99 {:.2} ms)",
        p99["hog-preemptive"].0,
        p99["hog-cooperative"].1,
        p99["alone"].0
    );
    let mut findings = vec![Finding::new(
        Concept::Scheduler,
        Model::Reactor,
        format!(
            "cooperative (no preemption): beside a CPU-bound task a 5 ms sleeper wakes up to {:.0} ms late (preemptive: p99 {:.2} ms)",
            p99["hog-cooperative"].1, p99["hog-preemptive"].0
        ),
    )];
    // The same lesson in the echo servers: a CPU-bound handler.
    say!("");
    let (rows, stalls) = stall_demo::fairness(boot, options)?;
    findings.extend(stalls);
    say!("{}", stall_demo::headline("fairness", &rows));
    Ok(findings)
}

/// Each model's execution unit — a future (reactor), a kernel thread
/// (csp), an isolated task (actor) — from the isolation bench's quick run.
fn execution_units(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let bench = crate::bench_isolation::measure(boot, options, true)?;
    let units = [
        (Model::Reactor, "future (async task)", &bench.future, &bench.async_fill),
        (Model::Csp, "kernel thread", &bench.thread, &bench.thread_fill),
        (Model::Actor, "isolated task", &bench.task, &bench.task_fill),
    ];
    say!(
        "{:<8} {:<20} {:>14} {:>20} {:>14} {:>16} {:>12}",
        "model",
        "execution unit",
        "spawn p50 µs",
        "spawn→reclaimed µs",
        "memory each",
        "fit in memory",
        "spawned"
    );
    let mut findings = Vec::new();
    for (model, unit, life, fill) in units {
        say!(
            "{:<8} {:<20} {:>14.1} {:>20.1} {:>14} {:>16.0} {:>12}",
            model.name(),
            unit,
            life.spawn_us.0,
            life.whole_us.0,
            crate::bench_isolation::human_bytes(fill.bytes_per_unit),
            fill.fit_by_memory,
            format!("{} ({})", fill.spawned, fill.refused)
        );
        findings.push(Finding::new(
            Concept::ExecutionUnits,
            model,
            format!(
                "{} {unit}: spawn→reclaimed {:.1} µs, {} each, {:.0} fit by memory",
                if unit.starts_with('i') { "an" } else { "a" },
                life.whole_us.0,
                crate::bench_isolation::human_bytes(fill.bytes_per_unit),
                fill.fit_by_memory
            ),
        ));
    }
    say!(
        "execution units: a future costs {} and {:.1} µs to spawn and reclaim, a kernel thread {} and {:.1} µs, an isolated task {} and {:.0} µs ({} MiB guest)",
        crate::bench_isolation::human_bytes(bench.async_fill.bytes_per_unit),
        bench.future.whole_us.0,
        crate::bench_isolation::human_bytes(bench.thread_fill.bytes_per_unit),
        bench.thread.whole_us.0,
        crate::bench_isolation::human_bytes(bench.task_fill.bytes_per_unit),
        bench.task.whole_us.0,
        options.memory
    );
    Ok(findings)
}

/// Mailbox messages in the actor half: senders × each.
const MAILBOX_SENDERS: u32 = 4;
const MAILBOX_EACH: u32 = 25_000;

/// FIFO where each model promises it, and no order where it does not: the
/// executor's ready queue and CSP channels in the guest's `demo=ordering`,
/// then isolated tasks' mailboxes (the `ordering` program, from the shell).
fn ordering(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let records = scenario::run(boot, "demo=ordering", options, Duration::from_secs(300))?;
    let unit = |name: &str| -> Result<&Record> {
        of_kind(&records, "ordering")
            .find(|record| record.text("unit").is_ok_and(|unit| unit == name))
            .with_context(|| format!("demo ordering reported no `{name}` row"))
    };
    let (executor, channel, across) = (unit("executor")?, unit("channel")?, unit("two-channels")?);
    let mailbox = mailbox_ordering(boot, options)?;
    say!(
        "{:<8} {:<38} {:>10} {:>8} {:>16} {:>22} {:>12}",
        "model",
        "what",
        "messages",
        "FIFO",
        "out of order",
        "interleaving",
        "ns/message"
    );
    let row =
        |model: &str, what: &str, record: &Record, out_of_order: &str, interleaving: &str| -> Result<()> {
            say!(
                "{model:<8} {what:<38} {:>10} {:>8} {:>16} {:>22} {:>12}",
                record.text("messages")?,
                record.text("fifo")?,
                out_of_order,
                interleaving,
                record.text("ns_per_message").unwrap_or("-")
            );
            Ok(())
        };
    row("reactor", "executor: ready tasks, 2 turns", executor, executor.text("out_of_order")?, "-")?;
    row(
        "csp",
        &format!("channel: {} senders", channel.text("senders")?),
        channel,
        channel.text("violations")?,
        &format!("{} switches", channel.text("switches")?),
    )?;
    row(
        "csp",
        "two channels, one sender, select",
        across,
        across.text("violations")?,
        &format!("{} inversions", across.text("inversions")?),
    )?;
    say!(
        "{:<8} {:<38} {:>10} {:>8} {:>16} {:>22} {:>12}",
        "actor",
        format!("mailbox: {MAILBOX_SENDERS} sender tasks"),
        mailbox.messages,
        if mailbox.fifo { "held" } else { "violated" },
        if mailbox.fifo { "0" } else { "yes" },
        format!("{} switches", mailbox.switches),
        mailbox.ns_per_message
    );
    let held = |record: &Record| record.text("fifo").is_ok_and(|fifo| fifo == "held");
    if !(held(executor) && held(channel) && held(across) && mailbox.fifo) {
        bail!("a FIFO promise was broken: see the table");
    }
    let inversions = across.number("inversions")?;
    say!(
        "ordering: FIFO held in every model — {} executor polls in ready order, {} channel messages from {} senders per sender, {} mailbox messages from {MAILBOX_SENDERS} tasks per sender — while order across senders ({} and {} switches) and across two channels ({inversions:.0} inversions in {}) does not exist",
        executor.text("messages")?,
        channel.text("messages")?,
        channel.text("senders")?,
        mailbox.messages,
        channel.text("switches")?,
        mailbox.switches,
        across.text("messages")?
    );
    Ok(vec![
        Finding::new(
            Concept::Ordering,
            Model::Reactor,
            format!(
                "strict: {} task polls over 2 turns in ready (FIFO) order, {} out of order",
                executor.text("messages")?,
                executor.text("out_of_order")?
            ),
        ),
        Finding::new(
            Concept::Ordering,
            Model::Csp,
            format!(
                "per channel: {} messages from {} senders FIFO per sender ({} switches); across 2 channels {inversions:.0} of {} arrive after a later one",
                channel.text("messages")?,
                channel.text("senders")?,
                channel.text("switches")?,
                across.text("messages")?
            ),
        ),
        Finding::new(
            Concept::Ordering,
            Model::Actor,
            format!(
                "per sender: {} mailbox messages from {MAILBOX_SENDERS} tasks FIFO per sender, {} switches between senders (no order across them)",
                mailbox.messages, mailbox.switches
            ),
        ),
    ])
}

/// `@lab ownership` records of `unit`: (size, mode) → ns per message.
fn handovers(records: &[Record], unit: &str) -> Result<BTreeMap<(u64, String), f64>> {
    let mut figures = BTreeMap::new();
    for record in of_kind(records, "ownership").filter(|record| record.text("unit").is_ok_and(|u| u == unit))
    {
        figures.insert(
            (record.number("size")? as u64, record.text("mode")?.to_string()),
            record.number("ns_per_message")?,
        );
    }
    Ok(figures)
}

/// The figure for `size` and `mode` in [`handovers`]' map.
fn handover_at(map: &BTreeMap<(u64, String), f64>, size: u64, mode: &str) -> Result<f64> {
    map.get(&(size, mode.to_string())).copied().with_context(|| format!("no {mode} row for {size} B"))
}

/// Moving vs copying through a channel, and passing by reference vs
/// copying between futures with the retention failure mode (the guest's
/// `demo=ownership`), and copying vs moving pages between isolated tasks
/// (`ipcbench`, from the shell), by message size.
fn ownership(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let records = scenario::run(boot, "demo=ownership", options, Duration::from_secs(300))?;
    let channel = handovers(&records, "channel")?;
    let reactor = ReactorOwnership::from_records(&records)?;
    let mailbox = mailbox_transfers(boot, options)?;
    say!("{:<8} {:<34} {:>10} {:>14} {:>12}", "model", "how", "size B", "ns/message", "MB/s");
    let mb_per_s = |size: u64, ns: f64| size as f64 * 1e3 / ns;
    for ((size, mode), ns) in &reactor.handovers {
        let how = if mode == "share" {
            "future → future: by reference (Rc)"
        } else {
            "future → future: copied"
        };
        say!("{:<8} {how:<34} {size:>10} {ns:>14.0} {:>12.0}", "reactor", mb_per_s(*size, *ns));
    }
    for ((size, mode), ns) in &channel {
        let how = if mode == "move" { "channel: moved (ownership)" } else { "channel: copied" };
        say!("{:<8} {how:<34} {size:>10} {ns:>14.0} {:>12.0}", "csp", mb_per_s(*size, *ns));
    }
    for ((kind, size), ns) in &mailbox {
        let how = if kind == "pages" { "mailbox: page transfer" } else { "mailbox: copied" };
        say!("{:<8} {how:<34} {size:>10} {ns:>14.0} {:>12.0}", "actor", mb_per_s(*size, *ns));
    }
    let get = handover_at;
    let mailbox_map: BTreeMap<(u64, String), f64> =
        mailbox.iter().map(|((kind, size), ns)| ((*size, kind.clone()), *ns)).collect();
    const BIG: u64 = 64 * 1024;
    let (moved, copied) = (get(&channel, BIG, "move")?, get(&channel, BIG, "copy")?);
    let (pages, copies) = (get(&mailbox_map, BIG, "pages")?, get(&mailbox_map, BIG, "copy")?);
    reactor.show_retention();
    say!(
        "ownership: 64 KiB handed over — csp: moved through a channel {:.1} µs, copied {:.1} µs ({:.1}×); actor: between address spaces by page transfer {:.1} µs, copied {:.1} µs ({:.1}×)",
        moved / 1e3,
        copied / 1e3,
        copied / moved,
        pages / 1e3,
        copies / 1e3,
        copies / pages
    );
    say!("{}", reactor.headline()?);
    Ok(vec![
        reactor.finding()?,
        Finding::new(
            Concept::Ownership,
            Model::Csp,
            format!(
                "shared heap, ownership moved: a 64 KiB buffer through a channel in {:.1} µs, a copy {:.1} µs",
                moved / 1e3,
                copied / 1e3
            ),
        ),
        Finding::new(
            Concept::Ownership,
            Model::Actor,
            format!(
                "nothing shared: 64 KiB between address spaces by page transfer {:.1} µs (the sender loses the pages), copied {:.1} µs",
                pages / 1e3,
                copies / 1e3
            ),
        ),
    ])
}

/// The event loop's memory ownership, measured by the guest's
/// `demo=ownership-reactor` (also part of `demo=ownership`): every future
/// shares one heap, so buffers pass by reference (`Rc`) or are copied; and
/// the failure mode, buffers kept alive by closures left registered.
#[derive(Clone, Debug)]
pub struct ReactorOwnership {
    /// (size, `share`|`copy`) → ns per message between two futures.
    pub handovers: BTreeMap<(u64, String), f64>,
    /// Finished connections' callbacks left on the long-lived list.
    pub kept: Retention,
    /// The same with each callback removed as its connection ends.
    pub removed: Retention,
}

/// One run of the retention scenario (kernel heap in bytes).
#[derive(Clone, Debug)]
pub struct Retention {
    pub connections: u64,
    pub buffer_bytes: u64,
    /// Callbacks still registered once every connection had finished.
    pub registered: u64,
    pub heap_before: u64,
    /// Once every connection had finished.
    pub heap_after: u64,
    /// Once the list itself was dropped too.
    pub heap_list_dropped: u64,
}

impl Retention {
    fn from_record(record: &Record) -> Result<Retention> {
        let count = |key: &str| -> Result<u64> { Ok(record.number(key)? as u64) };
        if count("finished")? != count("connections")? || count("tasks_alive")? != 0 {
            bail!("not every connection future finished: {record:?}");
        }
        Ok(Retention {
            connections: count("connections")?,
            buffer_bytes: count("buffer_bytes")?,
            registered: count("registered")?,
            heap_before: count("heap_before")?,
            heap_after: count("heap_after")?,
            heap_list_dropped: count("heap_list_dropped")?,
        })
    }

    /// Heap growth once every connection had finished (bytes; negative if it shrank).
    pub fn growth(&self) -> i64 {
        self.heap_after as i64 - self.heap_before as i64
    }

    /// What the connections' buffers add up to (bytes).
    pub fn buffers(&self) -> u64 {
        self.connections * self.buffer_bytes
    }
}

impl ReactorOwnership {
    /// Boots the guest with `demo=ownership-reactor` and reads its records.
    pub fn measure(boot: &BootImage, options: &MachineOptions) -> Result<ReactorOwnership> {
        let records = scenario::run(boot, "demo=ownership-reactor", options, Duration::from_secs(180))?;
        ReactorOwnership::from_records(&records)
    }

    /// Reads the records; fails if a row is missing or a connection did
    /// not finish.
    pub fn from_records(records: &[Record]) -> Result<ReactorOwnership> {
        let run = |callbacks: &str| -> Result<Retention> {
            let record = of_kind(records, "retention")
                .find(|record| record.text("callbacks").is_ok_and(|c| c == callbacks))
                .with_context(|| {
                    format!("demo ownership reported no retention run with callbacks {callbacks}")
                })?;
            Retention::from_record(record)
        };
        let handovers = handovers(records, "executor")?;
        if handovers.len() < 8 {
            bail!("demo ownership reported {} of the event loop's 8 handover rows", handovers.len());
        }
        Ok(ReactorOwnership { handovers, kept: run("kept")?, removed: run("removed")? })
    }

    /// 64 KiB between two futures: (by reference, copied), ns per message.
    fn big_handover(&self) -> Result<(f64, f64)> {
        Ok((
            handover_at(&self.handovers, 64 * 1024, "share")?,
            handover_at(&self.handovers, 64 * 1024, "copy")?,
        ))
    }

    fn show_retention(&self) {
        say!("");
        say!(
            "{:<44} {:>11} {:>12} {:>14} {:>14} {:>16}",
            "reactor: finished connections' callbacks",
            "registered",
            "buffers KiB",
            "heap before KiB",
            "heap growth KiB",
            "list dropped KiB"
        );
        for (what, run) in
            [("left on a long-lived list (leak)", &self.kept), ("removed as each ends", &self.removed)]
        {
            say!(
                "{what:<44} {:>11} {:>12} {:>14} {:>+14} {:>+16}",
                run.registered,
                run.buffers() / 1024,
                run.heap_before / 1024,
                run.growth() / 1024,
                (run.heap_list_dropped as i64 - run.heap_before as i64) / 1024
            );
        }
    }

    /// What was measured, in one sentence: the headline and the cell.
    fn summary(&self) -> Result<String> {
        let (shared, copied) = self.big_handover()?;
        Ok(format!(
            "a 64 KiB buffer between two futures by reference (`Rc`) in {:.1} µs, a copy {:.1} µs; closures left registered keep {} finished futures' buffers alive: heap +{} KiB ({} × {} KiB), callbacks removed: {:+} KiB",
            shared / 1e3,
            copied / 1e3,
            self.kept.connections,
            self.kept.growth() / 1024,
            self.kept.connections,
            self.kept.buffer_bytes / 1024,
            self.removed.growth() / 1024
        ))
    }

    fn headline(&self) -> Result<String> {
        Ok(format!("reactor: one shared heap — {}", self.summary()?))
    }

    /// The 10 × 3 table's cell.
    pub fn finding(&self) -> Result<Finding> {
        Ok(Finding::new(Concept::Ownership, Model::Reactor, format!("one shared heap: {}", self.summary()?)))
    }
}

/// `ipcbench`'s figures: (copy|pages, size) → ns per message.
fn mailbox_transfers(boot: &BootImage, options: &MachineOptions) -> Result<BTreeMap<(String, u64), f64>> {
    const ANSWER: Duration = Duration::from_secs(30);
    let mut guest = crate::qemu::Guest::spawn(boot, options)?;
    guest.wait_for("Tenfold shell", Duration::from_secs(90))?;
    guest.send("run ipcbench serve\r")?;
    let line = guest.wait_for_new("ipcbench: serving on mailbox", ANSWER)?;
    let id = line.text.rsplit(' ').next().unwrap_or_default().trim().to_string();
    guest.send(&format!("run ipcbench {id}\r"))?;
    guest.wait_for_new("ipcbench: round trip", Duration::from_secs(300))?;
    let transcript = guest.transcript();
    guest.kill();
    let mut figures = BTreeMap::new();
    for line in transcript.lines() {
        // "ipcbench: copy   4096 B:  1024 messages,   12345 ns each, 331 MB/s"
        let Some(rest) = line.split_once("ipcbench: ").map(|(_, rest)| rest) else { continue };
        let mut words = rest.split_whitespace();
        let (Some(kind @ ("copy" | "pages")), Some(size)) = (words.next(), words.next()) else { continue };
        let size: u64 = size.parse().with_context(|| line.to_string())?;
        figures.insert((kind.to_string(), size), crate::net_demos::number_before(rest, " ns each")?);
    }
    if figures.len() < 9 {
        bail!("ipcbench reported {} of its 9 rows:\n{transcript}", figures.len());
    }
    Ok(figures)
}

/// What the `ordering` program reported.
struct MailboxOrdering {
    messages: u64,
    fifo: bool,
    switches: u64,
    ns_per_message: u64,
}

/// 4 sender tasks, one receiver task's mailbox, from the shell.
fn mailbox_ordering(boot: &BootImage, options: &MachineOptions) -> Result<MailboxOrdering> {
    const ANSWER: Duration = Duration::from_secs(30);
    let mut guest = crate::qemu::Guest::spawn(boot, options)?;
    guest.wait_for("Tenfold shell", Duration::from_secs(90))?;
    guest.send(&format!("run ordering receive:{MAILBOX_SENDERS}:{MAILBOX_EACH}\r"))?;
    let line = guest.wait_for_new("ordering: receiving on mailbox", ANSWER)?;
    let id = line.text.rsplit(' ').next().unwrap_or_default().trim().to_string();
    for index in 0..MAILBOX_SENDERS {
        guest.run_task("ordering", &format!("send:{id}:{index}:{MAILBOX_EACH}"))?;
    }
    let line =
        guest.wait_for_new(&format!("messages from {MAILBOX_SENDERS} senders"), Duration::from_secs(300))?;
    guest.kill();
    let text = line.text;
    let after = |prefix: &str| -> Result<u64> {
        let word = text.split_once(prefix).and_then(|(_, rest)| rest.split_whitespace().next());
        word.with_context(|| format!("no `{prefix}` in `{text}`"))?.parse().with_context(|| text.clone())
    };
    Ok(MailboxOrdering {
        messages: crate::net_demos::number_before(&text, " messages from")? as u64,
        fifo: text.contains("per-sender FIFO held"),
        switches: after("FIFO held; ").or_else(|_| after("switches"))?,
        ns_per_message: crate::net_demos::number_before(&text, " ns per message")? as u64,
    })
}

fn sched(boot: &BootImage, options: &MachineOptions) -> Result<()> {
    let records = scenario::run(boot, "bench=sched", options, Duration::from_secs(180))?;
    let tsc_hz = of_kind(&records, "clock").next().map(|r| r.number("tsc_hz")).transpose()?.unwrap_or(0.0);
    println!(
        "{:<20} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "measurement", "samples", "p50", "p99", "max", "mean"
    );
    let mut headline = BTreeMap::new();
    for record in of_kind(&records, "bench") {
        let unit = record.text("unit")?;
        let as_us = |key: &str| -> Result<f64> {
            let value = record.number(key)?;
            Ok(if unit == "cycles" { value / tsc_hz * 1e6 } else { value / 1000.0 })
        };
        let name = record.text("name")?;
        println!(
            "{:<20} {:>8} {:>10.2}µs {:>10.2}µs {:>10.2}µs {:>10.2}µs{}",
            name,
            record.text("samples")?,
            as_us("p50")?,
            as_us("p99")?,
            as_us("max")?,
            as_us("mean")?,
            if unit == "cycles" { format!("   ({} cycles p50)", record.text("p50")?) } else { String::new() }
        );
        headline.insert(name.to_string(), (as_us("p50")?, as_us("p99")?, as_us("max")?));
    }
    // A measurement that did not run must fail the run, not print NaN.
    const MEASUREMENTS: [&str; 7] = [
        "yield-no-switch",
        "thread-switch",
        "fxsave+fxrstor",
        "timer-wake-latency",
        "preemption-jitter",
        "spawn",
        "spawn-to-first-run",
    ];
    let missing: Vec<&str> = MEASUREMENTS.into_iter().filter(|name| !headline.contains_key(*name)).collect();
    if !missing.is_empty() {
        bail!("bench sched did not report {}", missing.join(", "));
    }
    let get = |name: &str| headline[name];
    println!(
        "bench sched: thread switch {:.1} µs, timer wake latency p50 {:.0} µs / p99 {:.0} µs, preemption jitter p50 {:.0} µs / p99 {:.0} µs, spawn {:.1} µs (TSC {:.2} GHz{})",
        get("thread-switch").0,
        get("timer-wake-latency").0,
        get("timer-wake-latency").1,
        get("preemption-jitter").0,
        get("preemption-jitter").1,
        get("spawn").0,
        tsc_hz / 1e9,
        match options.accel {
            crate::accel::Accel::Kvm => ", KVM",
            _ => ", TCG where KVM is unusable",
        }
    );
    Ok(())
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn process_cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// The timer-interrupt count from the shell's `uptime`.
fn timer_interrupts(guest: &mut crate::qemu::Guest) -> Result<u64> {
    guest.send("uptime\r")?;
    let line = guest.wait_for_new("timer interrupts", Duration::from_secs(20))?;
    let count = line.text.split(" timer interrupts").next().and_then(|head| head.rsplit(' ').next());
    count.context("no interrupt count in `uptime`")?.parse().context("interrupt count")
}

fn idle(boot: &BootImage, options: &MachineOptions) -> Result<()> {
    const WINDOW: Duration = Duration::from_secs(5);
    let waiting = crate::progress::Progress::spinner("bench idle: booting, then a quiet window");
    let mut guest = crate::qemu::Guest::spawn(boot, options)?;
    guest.wait_for("Tenfold shell: type `help`", Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(1));
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let interrupts_before = timer_interrupts(&mut guest)?;
    let cpu_before = process_cpu_ticks(guest.pid())?;
    std::thread::sleep(WINDOW);
    let cpu_after = process_cpu_ticks(guest.pid())?;
    let interrupts_after = timer_interrupts(&mut guest)?;
    guest.kill();
    drop(waiting);
    let percent = (cpu_after - cpu_before) as f64 / ticks_per_second / WINDOW.as_secs_f64() * 100.0;
    let interrupts = interrupts_after - interrupts_before;
    println!("{:<34} {:>10}", "measurement", "value");
    println!("{:<34} {:>9.1}%", "QEMU host CPU while guest idles", percent);
    println!("{:<34} {:>10}", "guest timer interrupts in window", interrupts);
    println!("{:<34} {:>9.1}s", "window", WINDOW.as_secs_f64());
    println!(
        "bench idle: an idle guest costs {percent:.1}% of a host core and takes {interrupts} timer interrupts in {:.0} s (tickless)",
        WINDOW.as_secs_f64()
    );
    Ok(())
}
