//! The serial shell: a line-editing command interpreter on the console,
//! running as an ordinary kernel thread (so it keeps answering while other
//! threads spin — that is the scheduler's job, and the shell is its witness).
//!
//! Commands: `help`, `ps`, `top`, `uptime`, `mem`, `log <level>`,
//! `kill <tid>`, `preempt on|off`, `spin <ms> [priority]`, `shutdown`, and
//! for isolated tasks `programs`, `run <program> [argument]`,
//! `repeat <n> <program> [argument]`, `every <ms> <n> <program> [argument]`
//! and `elfcheck <program> <n> [seed]`; `crash handler` faults a kernel
//! thread on purpose (fatal: the counter-example isolation exists for).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use tenfold_runtime::sched::Priority;

use crate::arch::qemu;
use crate::{console, memory, sched, time};

const PROMPT: &str = "tenfold> ";
const MAX_LINE: usize = 200;

macro_rules! say {
    ($($arg:tt)*) => { console::write_fmt(format_args!($($arg)*)) };
}

/// Starts the shell thread.
pub fn start() -> Result<(), sched::SpawnError> {
    console::enable_input();
    sched::spawn("shell", Priority::new(30).expect("valid priority"), 64 * 1024, run).map(|_| ())
}

fn run() {
    say!("Tenfold shell: type `help`\n");
    let mut previous = String::new();
    loop {
        say!("{PROMPT}");
        let line = read_line(&previous);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        execute(line);
        previous = String::from(line);
    }
}

/// Reads a line with editing: backspace, Ctrl-U (erase), Ctrl-C (cancel),
/// up arrow (the previous line); other escape sequences are ignored.
fn read_line(previous: &str) -> String {
    let mut line = String::new();
    let mut escape = 0u8;
    loop {
        let Some(byte) = console::read_byte(None) else { continue };
        match (escape, byte) {
            (0, 0x1B) => escape = 1,
            (1, b'[') => escape = 2,
            (2, b'A') => {
                escape = 0;
                erase(&mut line);
                line.push_str(previous);
                say!("{line}");
            }
            (1 | 2, _) => escape = 0,
            (_, b'\r' | b'\n') => {
                say!("\n");
                return line;
            }
            (_, 0x7F | 0x08) if line.pop().is_some() => say!("\x08 \x08"),
            (_, 0x15) => erase(&mut line),
            (_, 0x03) => {
                say!("^C\n");
                return String::new();
            }
            (_, byte @ 0x20..=0x7E) if line.len() < MAX_LINE => {
                line.push(byte as char);
                say!("{}", byte as char);
            }
            _ => {}
        }
    }
}

fn erase(line: &mut String) {
    for _ in 0..line.len() {
        say!("\x08 \x08");
    }
    line.clear();
}

fn execute(line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["help"] => help(),
        ["ps"] => ps(),
        ["top"] => top(),
        ["uptime"] => uptime(),
        ["mem"] => mem(),
        ["net"] => net(),
        ["sockets"] => sockets(),
        ["ping", target] => ping(target, "4"),
        ["ping", target, count] => ping(target, count),
        ["log", level] => match crate::params::parse_level(level) {
            Ok(filter) => {
                crate::logger::set_level(filter);
                say!("log level: {level}\n");
            }
            Err(expected) => say!("log: {expected}\n"),
        },
        ["kill", tid] => match tid.parse::<u32>() {
            Ok(tid) => kill(tid),
            Err(_) => say!("kill: expected a thread id (see `ps`)\n"),
        },
        ["tree"] => match crate::task::supervisor::snapshot() {
            Some(text) => say!("{text}"),
            None => say!("no supervision tree is running (try `supervise demo`)\nrestarts: 0\n"),
        },
        ["supervise", name] => match crate::task::supervisor::start(name) {
            Ok(()) => say!("supervise: starting tree `{name}`\n"),
            Err(error) => say!("supervise {name}: {error:?} (trees: {})\n", tree_names()),
        },
        ["unsupervise", name] => match crate::task::supervisor::stop(name) {
            Ok(()) => say!("unsupervise: stopping tree `{name}`\n"),
            Err(error) => say!("unsupervise {name}: {error:?}\n"),
        },
        ["preempt", setting @ ("on" | "off")] => {
            sched::set_preemption(*setting == "on");
            say!("time-slice preemption {setting}\n");
        }
        ["spin", millis] | ["spin", millis, _] => spin(millis, words.get(2).copied()),
        ["programs"] => programs(),
        ["mailboxes"] => say!("{}\n", crate::task::mailbox::stats()),
        ["run", program] => run_program(program, ""),
        ["run", program, argument] => run_program(program, argument),
        ["repeat", count, program] => repeat(count, program, ""),
        ["repeat", count, program, argument] => repeat(count, program, argument),
        ["every", interval, count, program] => every(interval, count, program, ""),
        ["every", interval, count, program, argument] => every(interval, count, program, argument),
        ["crash", "handler"] => crash_handler(),
        ["elfcheck", program, count] => elfcheck(program, count, "1"),
        ["elfcheck", program, count, seed] => elfcheck(program, count, seed),
        ["shutdown"] => {
            say!("shutting down\n");
            qemu::exit(qemu::ExitCode::Success);
        }
        _ => say!("unknown command `{line}`; try `help`\n"),
    }
}

fn help() {
    say!(
        "commands:\n\
         \x20 ps                    threads: state, priority, CPU time, switches, wait\n\
         \x20 top                   ps with CPU %, refreshed every second until a key\n\
         \x20 uptime                time since boot, idle share, switches, timer interrupts\n\
         \x20 mem                   heap, physical frames, thread stacks\n\
         \x20 net                   NIC and stack counters, connections\n\
         \x20 sockets               TCP sockets: state, endpoints, buffer fill\n\
         \x20 ping <addr> [count]   ICMP echo from the guest (e.g. ping 10.0.2.2)\n\
         \x20 log <level>           off|error|warn|info|debug|trace\n\
         \x20 kill <tid>            crash a task by a real fault (a kernel thread: stop it)\n\
         \x20 supervise <tree>      start a supervision tree (demo, crashloop, escalation, runaway)\n\
         \x20 unsupervise <tree>    stop it: its tasks are killed, its supervisors end\n\
         \x20 tree                  the running trees: children, task ids, restarts, restart latency\n\
         \x20 preempt on|off        time-slice preemption\n\
         \x20 spin <ms> [priority]  start a CPU-bound thread for <ms> (0..39, default 20)\n\
         \x20 programs              the ring-3 programs in the initrd\n\
         \x20 run <prog> [arg]      start a program from the initrd as an isolated task\n\
         \x20 repeat <n> <prog> [arg]  run it n times, one after the other; memory before/after\n\
         \x20 elfcheck <prog> <n> [seed]  load n mutated copies of its ELF; all must be refused or load cleanly\n\
         \x20 shutdown              end the run (QEMU exits)\n"
    );
}

fn ms(nanos: u64) -> String {
    let mut text = String::new();
    let _ = write!(text, "{}.{}", nanos / 1_000_000, (nanos / 100_000) % 10);
    text
}

fn ps() {
    print_threads(None);
}

/// Prints the thread table; with `previous` (cpu ns per tid and the
/// interval), adds a CPU % column.
fn print_threads(previous: Option<(&[(u32, u64)], u64)>) {
    say!(
        "{:>4} {:<12} {:<8} {:>4} {:>10} {:>6} {:>7} {:>10} {:>9} {:>6} {:>14}{}\n",
        "TID",
        "NAME",
        "STATE",
        "PRIO",
        "CPU ms",
        "VOL",
        "INVOL",
        "WAIT ms",
        "MAXW ms",
        "STACK",
        "USER KiB/QUOTA",
        if previous.is_some() { "   CPU%" } else { "" }
    );
    for thread in sched::threads() {
        let stats = thread.stats;
        let mut share = String::new();
        if let Some((before, interval)) = previous {
            let old = before.iter().find(|(tid, _)| *tid == thread.tid).map_or(0, |(_, cpu)| *cpu);
            let percent = (stats.cpu_ns.saturating_sub(old)) * 1000 / interval.max(1);
            let _ = write!(share, " {:>4}.{}", percent / 10, percent % 10);
        }
        let mut user = String::from("kernel");
        if let Some((frames, quota)) = thread.user {
            user.clear();
            let _ = write!(user, "{}/{}", frames * 4, quota * 4);
        }
        say!(
            "{:>4} {:<12} {:<8} {:>4} {:>10} {:>6} {:>7} {:>10} {:>9} {:>5}K {:>14}{}\n",
            thread.tid,
            thread.name,
            thread.state.name(),
            thread.priority,
            ms(stats.cpu_ns),
            stats.voluntary_switches,
            stats.involuntary_switches,
            ms(stats.wait_ns),
            ms(stats.max_wait_ns),
            thread.stack_bytes >> 10,
            user,
            share
        );
    }
}

fn top() {
    let mut before: Vec<(u32, u64)> = Vec::new();
    let mut last = time::now_ns();
    loop {
        let now = time::now_ns();
        say!("\x1b[2J\x1b[H");
        uptime();
        print_threads(Some((&before, now - last)));
        say!("(any key ends top)\n");
        before = sched::threads().iter().map(|t| (t.tid, t.stats.cpu_ns)).collect();
        last = now;
        if console::read_byte(Some(time::now_ns() + 1_000_000_000)).is_some() {
            return;
        }
    }
}

fn uptime() {
    let now = time::now_ns();
    let stats = sched::stats();
    let idle_permille = stats.idle_ns * 1000 / now.max(1);
    say!(
        "up {}.{:03} s, {} threads ({} runnable), idle {}.{}%, {} context switches, {} timer interrupts, preemption {}\n",
        now / 1_000_000_000,
        (now / 1_000_000) % 1000,
        stats.threads,
        stats.runnable,
        idle_permille / 10,
        idle_permille % 10,
        stats.switches,
        stats.timer_interrupts,
        if stats.preemption { "on" } else { "off" }
    );
}

fn mem() {
    let stats = memory::stats();
    let heap = stats.heap;
    say!(
        "heap:   {} KiB in use (peak {} KiB), {} KiB mapped of max {} KiB, {} allocations, {} failed\n",
        heap.in_use_bytes >> 10,
        heap.peak_bytes >> 10,
        heap.mapped_bytes >> 10,
        heap.max_bytes >> 10,
        heap.allocations,
        heap.failed_allocations
    );
    say!(
        "frames: {} of {} free ({} MiB usable)\n",
        stats.frames.free_frames(),
        stats.frames.usable_frames,
        stats.frames.usable_bytes() >> 20
    );
    say!(
        "stacks: {} KiB mapped for threads (budget {} MiB)\n",
        sched::stats().stack_bytes >> 10,
        sched::STACK_BUDGET >> 20
    );
    let tasks = crate::task::stats();
    let (calls, refused) = crate::task::syscalls::counters();
    say!(
        "tasks:  {} frames held by isolated tasks; {} started, {} exited, {} killed ({} by the CPU watchdog); {} system calls, {} refused\n",
        tasks.frames,
        tasks.started,
        tasks.exited,
        tasks.killed,
        sched::watchdog_kills(),
        calls,
        refused
    );
    let (live, peak, refused) = sched::spawned_by_tasks();
    say!(
        "spawned: {live} tasks started by tasks live (peak {peak}, at most {}; at most {} per task), {refused} spawns refused\n",
        tenfold_abi::task::MAX_SPAWNED,
        tenfold_abi::task::MAX_CHILDREN
    );
    say!("console input: {} bytes dropped (buffer full)\n", console::dropped_input());
}

fn spin(millis: &str, priority: Option<&str>) {
    let Ok(millis) = millis.parse::<u64>() else {
        return say!("spin: expected milliseconds\n");
    };
    let priority = match priority.map(|p| p.parse::<u8>().ok().and_then(Priority::new)) {
        None => Priority::NORMAL,
        Some(Some(priority)) => priority,
        Some(None) => return say!("spin: priority must be 0..39\n"),
    };
    let result = sched::spawn("spin", priority, 16 * 1024, move || {
        let end = time::now_ns().saturating_add(millis.saturating_mul(1_000_000));
        while time::now_ns() < end {
            core::hint::spin_loop();
        }
    });
    match result {
        Ok(thread) => say!("spinning for {millis} ms as thread {}\n", thread.tid()),
        Err(error) => say!("spin: {error:?}\n"),
    }
}

fn net() {
    let Some(stats) = crate::net::stats() else {
        return say!("networking is off (no virtio-net card)\n");
    };
    let nic = stats.nic;
    match stats.address {
        Some(address) => say!("addr:   {address}{}\n", if stats.dhcp { " (DHCP lease)" } else { "" }),
        None => say!("addr:   none yet (waiting for a DHCP lease)\n"),
    }
    say!(
        "nic:    rx {} frames / {} bytes, tx {} frames / {} bytes, {} interrupts, tx ring full {}x, rx errors {}\n",
        nic.rx_frames,
        nic.rx_bytes,
        nic.tx_frames,
        nic.tx_bytes,
        nic.interrupts,
        nic.tx_full,
        nic.rx_errors
    );
    say!(
        "offload: {} frames gathered from merged buffers, {} TCP checksums verified here ({} bad, dropped), {} sent with checksum offload ({} segmented by the card), {} too large dropped\n",
        nic.rx_merged,
        nic.rx_checksum_verified,
        nic.rx_checksum_bad,
        nic.tx_checksum_offloaded,
        nic.tx_segmented,
        nic.tx_dropped
    );
    say!(
        "stack:  {} polls in {} loop iterations; device queue drops {}, transmit refusals {}\n",
        stats.polls,
        stats.loop_iterations,
        stats.device.rx_dropped,
        stats.device.tx_refused
    );
    let stack = stats.stack;
    say!(
        "demux:  {} TCP sockets, {} connections by 4-tuple, {} half-open ({} evicted by newer SYNs); {} frames to smoltcp, {} dropped (deferred SYNs), {} socket egress passes, {} deadlines fired, {} ARP sweeps\n",
        stats.sockets,
        stats.flows,
        stats.half_open,
        stack.half_open_evicted,
        stack.frames,
        stack.frames_dropped,
        stack.egress_visits,
        stack.deadlines_fired,
        stack.neighbor_sweeps
    );
    say!(
        "echo:   {} connections open, {} accepted, {} refused at the cap, {} refused for memory, {} SYNs deferred (backlog full), {} bytes buffered in sockets\n",
        stats.connections,
        stats.accepted,
        stats.refused_syns,
        stats.refused_for_memory,
        stats.deferred_syns,
        stats.buffered_bytes
    );
    if let Some(service) = crate::net::service() {
        let service = service.stats();
        say!(
            "service: {} connections open, {} accepted, {} closed, {} reset by their owner's end; {} calls, {} parked, {} kicks to the network thread, {} socket syncs; staging grown {} times for bulk streams, {} refused for memory\n",
            service.open,
            service.accepted,
            service.closed,
            service.aborted,
            service.operations,
            service.parked,
            service.kicks,
            service.syncs,
            service.staging_grown,
            service.staging_refused
        );
    }
    if let Some(actor) = crate::net::actor_stats() {
        say!("{actor}\n");
    }
    say!(
        "loop:   {} tasks, {} task polls in {} turns; readiness woke {} tasks\n",
        stats.tasks,
        stats.task_polls,
        stats.turns,
        stats.readiness_wakes
    );
    // What one received frame costs, on average since boot: the figures the
    // packet path's O(1) and no-allocation claims are checked against.
    let frames = nic.rx_frames.max(1) as f64;
    let allocations = crate::memory::stats().heap.allocations as f64;
    say!(
        "cost:   per received frame {:.2} loop iterations, {:.2} stack polls, {:.2} sockets visited, {:.2} task polls, {:.2} NIC interrupts, {:.2} heap allocations (all threads)\n",
        stats.loop_iterations as f64 / frames,
        stats.polls as f64 / frames,
        (stack.frames + stack.egress_visits) as f64 / frames,
        stats.task_polls as f64 / frames,
        nic.interrupts as f64 / frames,
        allocations / frames
    );
    // Where the network thread's time goes, per received frame.
    let phases = stats.phases;
    let us = |cycles: u64| cycles as f64 * 1e6 / crate::time::tsc_hz().max(1) as f64 / frames;
    say!(
        "time:   per received frame {:.1} µs busy in the network thread: driver {:.1}, stack {:.1}, tasks {:.1}, other {:.1}\n",
        us(phases.busy),
        us(phases.driver),
        us(phases.stack),
        us(phases.tasks),
        us(phases.busy.saturating_sub(phases.driver + phases.stack + phases.tasks))
    );
}

fn sockets() {
    let Some(list) = crate::net::sockets() else {
        return say!("networking is off, or the network thread did not answer\n");
    };
    say!("{:<12} {:<22} {:<22} {:>14} {:>14}\n", "STATE", "LOCAL", "REMOTE", "RX queued", "TX queued");
    let (ports, sockets): (Vec<_>, Vec<_>) = list.iter().partition(|socket| socket.port_summary);
    for port in ports {
        say!("{:<12} {:<22} {}\n", port.state, port.local, port.remote);
    }
    for socket in &sockets {
        say!(
            "{:<12} {:<22} {:<22} {:>6}/{:<7} {:>6}/{:<7}\n",
            socket.state,
            socket.local,
            socket.remote,
            socket.rx_queued,
            socket.rx_capacity,
            socket.tx_queued,
            socket.tx_capacity
        );
    }
    say!("{} TCP sockets\n", sockets.len());
}

fn ping(target: &str, count: &str) {
    use core::str::FromStr;
    let Ok(address) = tenfold_net::smoltcp::wire::Ipv4Address::from_str(target) else {
        return say!("ping: `{target}` is not an IPv4 address\n");
    };
    let count = match count.parse::<u16>() {
        Ok(count) if (1..=100).contains(&count) => count,
        _ => return say!("ping: count must be 1..100\n"),
    };
    if !crate::net::ping(address, count) {
        return say!("ping: networking is off\n");
    }
    say!("PING {address}: {count} probes\n");
    let deadline = time::now_ns() + (u64::from(count) + 3) * 1_000_000_000;
    while time::now_ns() < deadline {
        match crate::net::ping_line() {
            Some(Some(line)) => say!("{line}\n"),
            Some(None) => return,
            None => crate::sched::sleep(core::time::Duration::from_millis(10)),
        }
    }
    say!("ping: the network thread did not finish in time\n");
}

fn programs() {
    for (name, image) in crate::task::initrd::programs() {
        say!("{name:<12} {} bytes\n", image.len());
    }
}

/// `kill`: a task gets a real crash injected (its supervisor, if any, sees
/// a fault); a kernel thread is stopped outright.
fn kill(tid: u32) {
    match sched::inject_crash(tid) {
        Ok(sched::Injected::NextInstructionFaults) => say!(
            "kill: task {tid} will fault at its next instruction in ring 3 (sent to {:#x})\n",
            sched::CRASH_ADDRESS
        ),
        Ok(sched::Injected::StoppedInKernel) => {
            say!("kill: task {tid} was waiting in the kernel; stopped there\n")
        }
        Err(sched::KillError::NotATask) => match sched::kill(tid) {
            Ok(()) => say!("killed {tid}\n"),
            Err(error) => say!("kill {tid}: {error:?}\n"),
        },
        Err(error) => say!("kill {tid}: {error:?}\n"),
    }
}

fn tree_names() -> alloc::string::String {
    let names: Vec<&str> = crate::task::tree::TREES.iter().map(|tree| tree.name).collect();
    names.join(", ")
}

fn run_program(program: &str, argument: &str) {
    match crate::task::run(program, argument) {
        Ok(thread) => say!("started `{program}` as task {}\n", thread.tid()),
        Err(error) => say!("run {program}: {error:?}\n"),
    }
}

/// Runs `program` `count` times, each after the previous one ended, and
/// compares free frames and heap in use before and after (the reclamation
/// check: a task that exits or is killed must give everything back).
fn repeat(count: &str, program: &str, argument: &str) {
    let Ok(count) = count.parse::<u32>() else {
        return say!("repeat: expected a count\n");
    };
    let before = memory::stats();
    let tasks_before = crate::task::stats();
    let start = time::now_ns();
    for _ in 0..count {
        let thread = match crate::task::run(program, argument) {
            Ok(thread) => thread,
            Err(error) => return say!("repeat {program}: {error:?}\n"),
        };
        while sched::is_alive(thread.tid()) {
            sched::sleep(core::time::Duration::from_millis(1));
        }
    }
    // Let the scheduler reap the last one (it frees at a later switch).
    sched::sleep(core::time::Duration::from_millis(5));
    let elapsed = time::now_ns() - start;
    let after = memory::stats();
    let tasks_after = crate::task::stats();
    say!(
        "repeat: {count} runs of `{program}` in {} ms: {} exited, {} killed; free frames {} -> {} ({:+}), heap in use {} -> {} bytes ({:+}), task frames {}\n",
        elapsed / 1_000_000,
        tasks_after.exited - tasks_before.exited,
        tasks_after.killed - tasks_before.killed,
        before.frames.free_frames(),
        after.frames.free_frames(),
        after.frames.free_frames() as i64 - before.frames.free_frames() as i64,
        before.heap.in_use_bytes,
        after.heap.in_use_bytes,
        after.heap.in_use_bytes as i64 - before.heap.in_use_bytes as i64,
        tasks_after.frames
    );
}

/// Runs `program` `count` times, one start every `interval` ms (each after
/// the previous one ended), then reports how they ended and, for those
/// killed by a fault, the time from the fault to the next thread running
/// (report printed, task killed, switch made; see `arch::traps`).
fn every(interval: &str, count: &str, program: &str, argument: &str) {
    let (Ok(interval), Ok(count)) = (interval.parse::<u64>(), count.parse::<u32>()) else {
        return say!("every: expected an interval in ms and a count\n");
    };
    if interval > 60_000 || count > 100_000 {
        return say!("every: at most 60000 ms apart and 100000 runs\n");
    }
    let (faults_before, _) = crate::arch::traps::containment();
    let tasks_before = crate::task::stats();
    let start = time::now_ns();
    for run in 0..u64::from(count) {
        let due = start + run * interval * 1_000_000;
        if let Some(wait) = due.checked_sub(time::now_ns()) {
            sched::sleep(core::time::Duration::from_nanos(wait));
        }
        let thread = match crate::task::run(program, argument) {
            Ok(thread) => thread,
            Err(error) => return say!("every {program}: {error:?}\n"),
        };
        // Bounded: a task still running after 10 s is killed.
        let give_up = time::now_ns() + 10_000_000_000;
        while sched::is_alive(thread.tid()) {
            if time::now_ns() > give_up {
                let _ = sched::kill(thread.tid());
            }
            sched::sleep(core::time::Duration::from_millis(1));
        }
    }
    let elapsed = time::now_ns() - start;
    let tasks_after = crate::task::stats();
    let (faults_after, samples) = crate::arch::traps::containment();
    let new = ((faults_after - faults_before) as usize).min(samples.len());
    let tsc_hz = u128::from(time::tsc_hz().max(1));
    let mut micros: Vec<u64> = samples[samples.len() - new..]
        .iter()
        .map(|&cycles| (u128::from(cycles) * 1_000_000 / tsc_hz) as u64)
        .collect();
    micros.sort_unstable();
    let rank =
        |percent: usize| micros.get(micros.len().saturating_sub(1) * percent / 100).copied().unwrap_or(0);
    say!(
        "every: {count} runs of `{program}` in {} ms: {} exited, {} killed; fault to next thread p50 {} us p99 {} us max {} us ({} faults timed)\n",
        elapsed / 1_000_000,
        tasks_after.exited - tasks_before.exited,
        tasks_after.killed - tasks_before.killed,
        rank(50),
        rank(99),
        rank(100),
        micros.len()
    );
}

/// The fault `crasher divide` takes in ring 3, taken by a kernel thread:
/// kernel mode has no one to contain it, so the report ends the run.
fn crash_handler() {
    let spawned = sched::spawn("handler", Priority::NORMAL, 16 * 1024, || {
        let zero = core::hint::black_box(0u64);
        // SAFETY: none — `div` by zero raises #DE on purpose; in a kernel
        // thread that fault is fatal, which is what this command shows.
        unsafe { core::arch::asm!("div {}", in(reg) zero, inout("rax") 1u64 => _, inout("rdx") 0u64 => _) };
    });
    match spawned {
        Ok(thread) => say!("crash: kernel thread `handler` (tid {}) divides by zero\n", thread.tid()),
        Err(error) => say!("crash: {error:?}\n"),
    }
}

fn elfcheck(program: &str, count: &str, seed: &str) {
    let (Ok(count), Ok(seed)) = (count.parse::<u32>(), seed.parse::<u64>()) else {
        return say!("elfcheck: expected a count and a seed\n");
    };
    let Some(image) = crate::task::initrd::find(program) else {
        return say!("elfcheck: no program `{program}`\n");
    };
    let report = crate::task::loader::mutation_check(image, count, seed);
    say!("{report}\n");
}
