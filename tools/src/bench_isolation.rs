//! `cargo lab bench isolation`: what an isolated ring-3 task costs beside a
//! kernel thread and an async task — null system call, address-space
//! switch, spawn and teardown, memory per unit, how many fit. Runs the
//! guest scenario `bench=isolation` (kernel/src/lab/isolation.rs, with the
//! ring-3 loops in user/sysbench) and tabulates its `@lab` records here.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::image::BootImage;
use crate::options::MachineOptions;
use crate::scenario::{self, Record};

/// Bytes in a frame (the kernel's page size).
const FRAME: f64 = 4096.0;

/// A fill: units spawned until refused, and memory before, full, after.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    pub spawned: u64,
    pub refused: String,
    /// Bytes per unit: frames taken (stacks, page tables, pages, heap
    /// growth) plus heap bytes in use.
    pub bytes_per_unit: f64,
    pub heap_bytes_per_unit: f64,
    /// How many would fit in the memory free before the fill, by division.
    pub fit_by_memory: f64,
    /// Free frames and heap in use came back to where they were.
    pub reclaimed: bool,
}

/// Spawn cost and spawn → reclaimed, p50 and p99 in µs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lifecycle {
    pub spawn_us: (f64, f64),
    pub whole_us: (f64, f64),
}

/// The whole bench, in µs and bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IsolationBench {
    pub null_syscall_us: (f64, f64),
    pub kernel_switch_us: f64,
    pub task_switch_us: f64,
    /// Task switches counted / yields made (1.0: every yield switched).
    pub task_switch_share: f64,
    pub cr3_write_us: (f64, f64),
    pub task_user_frames: u64,
    pub task_table_frames: u64,
    pub task_kernel_stack: u64,
    pub task: Lifecycle,
    pub thread: Lifecycle,
    pub future: Lifecycle,
    pub task_fill: Fill,
    pub thread_fill: Fill,
    pub async_fill: Fill,
}

impl IsolationBench {
    /// The task switch minus a null system call and a kernel-thread switch:
    /// what a change of address space adds (CR3 write and TLB refills).
    pub fn address_space_switch_us(&self) -> f64 {
        self.task_switch_us - self.null_syscall_us.0 - self.kernel_switch_us
    }

    /// Reads the records of one `bench=isolation` run; every row must be there.
    pub fn from_records(records: &[Record]) -> Result<IsolationBench> {
        let tsc_hz = find(records, "clock", None)?.number("tsc_hz")?;
        if tsc_hz <= 0.0 {
            bail!("no TSC frequency");
        }
        let us = |cycles: f64| cycles / tsc_hz * 1e6;
        let bench = |name: &str| -> Result<(f64, f64)> {
            let record = find(records, "bench", Some(name))?;
            Ok((us(record.number("p50")?), us(record.number("p99")?)))
        };
        let lifecycle = |unit: &str| -> Result<Lifecycle> {
            Ok(Lifecycle {
                spawn_us: bench(&format!("{unit}-spawn"))?,
                whole_us: bench(&format!("{unit}-spawn-to-reclaimed"))?,
            })
        };
        let yields: Vec<&Record> = records.iter().filter(|r| r.kind == "task-yield").collect();
        if yields.len() != 2 {
            bail!("bench isolation: {} of the 2 yielding tasks reported", yields.len());
        }
        let rounds = yields[0].number("rounds")?;
        let slowest = yields.iter().map(|r| r.number("cycles")).collect::<Result<Vec<_>>>()?;
        let slowest = slowest.into_iter().fold(0.0, f64::max);
        let switches = find(records, "switches", Some("task-switch"))?.number("count")?;
        let memory = records
            .iter()
            .find(|r| r.kind == "memory" && r.text("unit").ok() == Some("task"))
            .context("bench isolation did not report `memory unit=task`")?;
        Ok(IsolationBench {
            null_syscall_us: bench("null-syscall")?,
            kernel_switch_us: bench("kernel-thread-switch")?.0,
            task_switch_us: us(slowest / (2.0 * rounds)),
            task_switch_share: switches / (2.0 * rounds),
            cr3_write_us: bench("cr3-write")?,
            task_user_frames: memory.number("user_frames")? as u64,
            task_table_frames: memory.number("table_frames")? as u64,
            task_kernel_stack: memory.number("kernel_stack_bytes")? as u64,
            task: lifecycle("task")?,
            thread: lifecycle("thread")?,
            future: lifecycle("async")?,
            task_fill: fill(records, "task")?,
            thread_fill: fill(records, "thread")?,
            async_fill: fill(records, "async")?,
        })
    }

    /// The table and the notes under it.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let row = |out: &mut String, name: &str, cells: [String; 3]| {
            out.push_str(&format!("{name:<30} {:>30} {:>24} {:>24}\n", cells[0], cells[1], cells[2]));
        };
        let p50_p99 = |(p50, p99): (f64, f64)| format!("{p50:.1} / {p99:.1} µs");
        row(&mut out, "measurement", ["isolated task".into(), "kernel thread".into(), "async task".into()]);
        row(
            &mut out,
            "null system call p50 / p99",
            [p50_p99(self.null_syscall_us), "— (a call)".into(), "— (a call)".into()],
        );
        row(
            &mut out,
            "switch to a yielding peer",
            [
                format!("{:.1} µs", self.task_switch_us),
                format!("{:.1} µs", self.kernel_switch_us),
                "— (no switch: a poll)".into(),
            ],
        );
        row(
            &mut out,
            "address-space switch",
            [format!("{:.1} µs", self.address_space_switch_us()), "none".into(), "none".into()],
        );
        row(&mut out, "CR3 write alone p50 / p99", [p50_p99(self.cr3_write_us), "".into(), "".into()]);
        row(
            &mut out,
            "spawn p50 / p99",
            [p50_p99(self.task.spawn_us), p50_p99(self.thread.spawn_us), p50_p99(self.future.spawn_us)],
        );
        row(
            &mut out,
            "spawn → exit → reclaimed p50/p99",
            [p50_p99(self.task.whole_us), p50_p99(self.thread.whole_us), p50_p99(self.future.whole_us)],
        );
        let bytes = |fill: &Fill| human_bytes(fill.bytes_per_unit);
        row(
            &mut out,
            "memory per unit (measured)",
            [bytes(&self.task_fill), bytes(&self.thread_fill), bytes(&self.async_fill)],
        );
        let spawned = |fill: &Fill| format!("{} ({})", fill.spawned, fill.refused);
        row(
            &mut out,
            "spawned until refused",
            [spawned(&self.task_fill), spawned(&self.thread_fill), spawned(&self.async_fill)],
        );
        let fit = |fill: &Fill| format!("{:.0}", fill.fit_by_memory);
        row(
            &mut out,
            "fit in free memory (division)",
            [fit(&self.task_fill), fit(&self.thread_fill), fit(&self.async_fill)],
        );
        let back = |fill: &Fill| if fill.reclaimed { "yes" } else { "NO" }.to_string();
        row(
            &mut out,
            "memory back after teardown",
            [back(&self.task_fill), back(&self.thread_fill), back(&self.async_fill)],
        );
        let pages = self.task_user_frames - self.task_table_frames;
        out.push_str(&format!(
            "\nA task (sysbench, the smallest program) holds {} user frames ({} page tables + {pages} pages: image and 64 KiB stack) \
             and a {} KiB kernel stack, plus {:.1} KiB of kernel heap (thread, task, FPU state); a kernel thread its 16 KiB stack \
             plus {:.1} KiB of heap; an async task (a future that never completes) {:.0} bytes of heap.\n",
            self.task_user_frames,
            self.task_table_frames,
            self.task_kernel_stack / 1024,
            self.task_fill.heap_bytes_per_unit / 1024.0,
            self.thread_fill.heap_bytes_per_unit / 1024.0,
            self.async_fill.heap_bytes_per_unit,
        ));
        out.push_str(&format!(
            "Address-space switch, by difference: two tasks yielding to each other from ring 3 ({:.1} µs per switch, {:.0}% of yields switched) \
             minus a null system call ({:.1} µs, the ring crossing) minus two kernel threads yielding ({:.1} µs, the same switch path \
             in one address space) leaves {:.1} µs for the CR3 write and the TLB refills after it; the CR3 write alone \
             (to a task's tables and back, interrupts off) is {:.1} µs. Under TCG a CR3 write flushes QEMU's software TLB, \
             so the refills weigh more than on hardware.\n",
            self.task_switch_us,
            self.task_switch_share * 100.0,
            self.null_syscall_us.0,
            self.kernel_switch_us,
            self.address_space_switch_us(),
            self.cr3_write_us.0,
        ));
        out.push_str(
            "Spawned until refused: tasks and threads share the scheduler's 256-slot thread table, which refuses \
             before memory runs out; \"fit\" divides the memory free before the fill (frames; the kernel heap's cap \
             for async tasks) by the measured cost per unit.\n",
        );
        out
    }

    /// The one line at the end.
    pub fn headline(&self) -> String {
        format!(
            "bench isolation: null syscall {:.2} µs; address-space switch {:.1} µs (task switch {:.1} − kernel-thread switch {:.1} − syscall {:.2}; CR3 write alone {:.1}); \
             spawn→reclaimed task {:.0} µs / thread {:.0} µs / async {:.1} µs; memory task {} / thread {} / async {}; \
             {} tasks ran at once (refused: {}), {:.0} fit by memory",
            self.null_syscall_us.0,
            self.address_space_switch_us(),
            self.task_switch_us,
            self.kernel_switch_us,
            self.null_syscall_us.0,
            self.cr3_write_us.0,
            self.task.whole_us.0,
            self.thread.whole_us.0,
            self.future.whole_us.0,
            human_bytes(self.task_fill.bytes_per_unit),
            human_bytes(self.thread_fill.bytes_per_unit),
            human_bytes(self.async_fill.bytes_per_unit),
            self.task_fill.spawned,
            self.task_fill.refused,
            self.task_fill.fit_by_memory,
        )
    }
}

fn find<'a>(records: &'a [Record], kind: &str, name: Option<&str>) -> Result<&'a Record> {
    records
        .iter()
        .find(|r| r.kind == kind && name.is_none_or(|name| r.text("name").ok() == Some(name)))
        .with_context(|| {
            format!(
                "bench isolation did not report `{kind}{}`",
                name.map(|n| format!(" {n}")).unwrap_or_default()
            )
        })
}

fn fill(records: &[Record], unit: &str) -> Result<Fill> {
    let record = records
        .iter()
        .find(|r| r.kind == "fill" && r.text("unit").ok() == Some(unit))
        .with_context(|| format!("bench isolation did not report `fill unit={unit}`"))?;
    let spawned = record.number("spawned")?;
    if spawned < 1.0 {
        bail!("the {unit} fill spawned nothing (refused: {})", record.text("refused")?);
    }
    let free_before = record.number("free_frames_before")?;
    let frames = free_before - record.number("free_frames_full")?;
    let heap = record.number("heap_full")? - record.number("heap_before")?;
    let heap_per_unit = heap / spawned;
    // Async tasks live in the heap, which grows in steps: count their heap
    // bytes only (the frames it took are those bytes, rounded up).
    let bytes_per_unit =
        if unit == "async" { heap_per_unit } else { frames * FRAME / spawned + heap_per_unit };
    let room = if unit == "async" { record.number("heap_max")? } else { free_before * FRAME };
    // The heap does not give frames back; its bytes in use do come back.
    let heap_back = record.number("heap_after")? <= record.number("heap_before")? + 4096.0;
    let frames_back = unit == "async" || record.number("free_frames_after")? == free_before;
    Ok(Fill {
        spawned: spawned as u64,
        refused: record.text("refused")?.to_string(),
        bytes_per_unit,
        heap_bytes_per_unit: heap_per_unit,
        fit_by_memory: room / bytes_per_unit.max(1.0),
        reclaimed: heap_back && frames_back,
    })
}

pub(crate) fn human_bytes(bytes: f64) -> String {
    if bytes >= 1024.0 { format!("{:.1} KiB", bytes / 1024.0) } else { format!("{bytes:.0} B") }
}

/// Runs the scenario (`quick`: small counts, for the test) and reads it.
pub fn measure(boot: &BootImage, options: &MachineOptions, quick: bool) -> Result<IsolationBench> {
    let param = if quick { "bench=isolation-quick" } else { "bench=isolation" };
    let records = scenario::run(boot, param, options, Duration::from_secs(900))?;
    IsolationBench::from_records(&records)
}

/// `cargo lab bench isolation`.
pub fn run(boot: &BootImage, options: &MachineOptions) -> Result<()> {
    let bench = measure(boot, options, false)?;
    print!("{}", bench.table());
    println!("{}", bench.headline());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's records, as the guest printed them (TSC 2.5 GHz: 2500 cycles = 1 µs).
    const RUN: &str = "\
@lab clock tsc_hz=2500000000
@lab bench name=null-syscall unit=cycles samples=100000 p50=1500 p99=5000 max=9 mean=9
@lab bench name=kernel-thread-switch unit=cycles samples=4000 p50=40000 p99=40000 max=40000 mean=40000 switches=3000
@lab task-yield rounds=2000 cycles=380000000
[    0.1] INFO  task::syscalls: task `sysbench` (tid 5) exited with code 0
@lab task-yield rounds=2000 cycles=400000000
@lab switches name=task-switch count=3800 rounds=2000
@lab bench name=cr3-write unit=cycles samples=2000 p50=12500 p99=35000 max=9 mean=9
@lab memory unit=task user_frames=28 table_frames=7 kernel_stack_bytes=32768
@lab bench name=task-spawn unit=cycles samples=100 p50=2500000 p99=5000000 max=9 mean=9
@lab bench name=task-spawn-to-reclaimed unit=cycles samples=100 p50=5000000 p99=7500000 max=9 mean=9
@lab bench name=thread-spawn unit=cycles samples=100 p50=25000 p99=50000 max=9 mean=9
@lab bench name=thread-spawn-to-reclaimed unit=cycles samples=100 p50=75000 p99=175000 max=9 mean=9
@lab bench name=async-spawn unit=cycles samples=100 p50=5000 p99=500000 max=9 mean=9
@lab bench name=async-spawn-to-reclaimed unit=cycles samples=100 p50=25000 p99=600000 max=9 mean=9
@lab fill unit=task spawned=254 refused=Spawn(TooManyThreads) free_frames_before=64000 free_frames_full=54856 free_frames_after=64000 heap_before=60000 heap_full=568000 heap_after=60000 heap_max=133000000
@lab fill unit=thread spawned=254 refused=TooManyThreads free_frames_before=64000 free_frames_full=62984 free_frames_after=64000 heap_before=60000 heap_full=187000 heap_after=60100 heap_max=133000000
@lab fill unit=async spawned=100000 refused=TooManyTasks free_frames_before=64000 free_frames_full=55000 free_frames_after=53000 heap_before=90000 heap_full=33090000 heap_after=60000 heap_max=133000000
@lab done
";

    fn records(text: &str) -> Vec<Record> {
        text.lines().filter_map(Record::parse).collect()
    }

    #[test]
    fn reads_every_row_in_microseconds_and_bytes() {
        let bench = IsolationBench::from_records(&records(RUN)).unwrap();
        assert_eq!(bench.null_syscall_us, (0.6, 2.0));
        assert_eq!(bench.kernel_switch_us, 16.0);
        // The slower task's loop over both tasks' yields.
        assert_eq!(bench.task_switch_us, 40.0);
        assert_eq!(bench.task_switch_share, 0.95);
        assert!((bench.address_space_switch_us() - 23.4).abs() < 1e-9);
        assert_eq!(bench.cr3_write_us, (5.0, 14.0));
        assert_eq!(
            (bench.task_user_frames, bench.task_table_frames, bench.task_kernel_stack),
            (28, 7, 32768)
        );
        assert_eq!(bench.task.whole_us, (2000.0, 3000.0));
        assert_eq!(bench.thread.spawn_us, (10.0, 20.0));
        assert_eq!(bench.future.whole_us, (10.0, 240.0));
        // 36 frames and 2000 heap bytes per task.
        assert_eq!(bench.task_fill.bytes_per_unit, 36.0 * 4096.0 + 2000.0);
        assert_eq!(bench.task_fill.spawned, 254);
        assert_eq!(bench.task_fill.refused, "Spawn(TooManyThreads)");
        assert_eq!(bench.task_fill.fit_by_memory, 64000.0 * 4096.0 / (36.0 * 4096.0 + 2000.0));
        assert!(bench.task_fill.reclaimed && bench.thread_fill.reclaimed && bench.async_fill.reclaimed);
        assert_eq!(bench.async_fill.bytes_per_unit, 330.0);
        assert_eq!(bench.async_fill.fit_by_memory, 133_000_000.0 / 330.0);
    }

    #[test]
    fn a_missing_row_is_an_error_naming_it() {
        for (dropped, named) in [
            ("name=cr3-write", "cr3-write"),
            ("unit=thread", "fill unit=thread"),
            ("@lab memory", "memory unit=task"),
            ("name=async-spawn-to", "async-spawn-to-reclaimed"),
        ] {
            let text: String =
                RUN.lines().filter(|line| !line.contains(dropped)).map(|l| format!("{l}\n")).collect();
            let error = IsolationBench::from_records(&records(&text)).unwrap_err();
            assert!(format!("{error:#}").contains(named), "{dropped}: {error:#}");
        }
        let one_yield = RUN.replacen("@lab task-yield rounds=2000 cycles=380000000\n", "", 1);
        assert!(IsolationBench::from_records(&records(&one_yield)).is_err());
    }

    #[test]
    fn memory_not_given_back_shows_in_the_table() {
        let leaky = RUN.replace(
            "free_frames_full=54856 free_frames_after=64000",
            "free_frames_full=54856 free_frames_after=63990",
        );
        let bench = IsolationBench::from_records(&records(&leaky)).unwrap();
        assert!(!bench.task_fill.reclaimed);
        let table = bench.table();
        assert!(
            table.lines().any(|line| line.starts_with("memory back after teardown") && line.contains("NO")),
            "{table}"
        );
        assert!(
            bench
                .headline()
                .starts_with("bench isolation: null syscall 0.60 µs; address-space switch 23.4 µs")
        );
    }
}
