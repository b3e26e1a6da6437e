//! `cargo lab bench fuzz`: the long system-call fuzz run (the suite runs
//! 100 000 calls; this runs [`RUNS`] × [`CALLS`]). The shell's `repeat`
//! starts the ring-3 `fuzz` program (random call numbers, pointers,
//! lengths, ids and handles) one run after another while echo clients
//! ping-pong with the guest; the shell then reports how each run ended and
//! whether free frames and heap came back. Any kernel fault, a fuzzer that
//! died (the kernel must answer every call, not kill it), frames not back
//! or the heap grown by more than [`HEAP_SLACK`], or an echo client cut off
//! fails the bench. (Its first run found a leak: every port a task listened
//! on kept a record in the demultiplexer after the listener closed.)

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::image::BootImage;
use crate::net_demos::number_before;
use crate::options::MachineOptions;
use crate::progress::Progress;
use crate::qemu::Guest;

/// Fuzzer runs, and calls per run.
const RUNS: u64 = 10;
const CALLS: u64 = 1_000_000;
/// Heap growth over the runs that still counts as "back" (see the check).
const HEAP_SLACK: i64 = 256 * 1024;
/// Echo clients beside the fuzzer.
const CLIENTS: u8 = 2;

/// One client's ping-pong until `stop`; its requests, or the error.
fn ping_pong(address: SocketAddr, id: u8, stop: Arc<AtomicBool>, requests: Arc<AtomicU64>) -> Result<()> {
    let mut stream = crate::loadgen::connect_paced(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let message = [id; 64];
    let mut echo = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        stream.write_all(&message)?;
        stream.read_exact(&mut echo)?;
        if echo != message {
            bail!("client {id}: the echo differs");
        }
        requests.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// `cargo lab bench fuzz`.
pub fn run(boot: &BootImage, options: &MachineOptions) -> Result<()> {
    let port = crate::qemu::free_local_port()?;
    let options = MachineOptions { port: Some(port), ..options.clone() };
    let mut guest = Guest::spawn(boot, &options)?;
    guest.wait_for("Tenfold shell", Duration::from_secs(90))?;
    guest.wait_for(options.model.ready_line(), Duration::from_secs(60))?;
    // Two runs first: first-use allocations (tables reaching their working
    // size, the scheduler's sample buffer) are not the fuzzer's.
    guest.send("repeat 2 fuzz 200000\r")?;
    guest.wait_for_new("repeat: 2 runs", Duration::from_secs(300))?;
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || ping_pong(address, id, stop, requests))
        })
        .collect();
    let waiting = Progress::spinner(&format!("{RUNS} × {CALLS} fuzzed system calls"));
    guest.send(&format!("repeat {RUNS} fuzz {CALLS}\r"))?;
    let report = guest.wait_for_new(&format!("repeat: {RUNS} runs"), Duration::from_secs(3600));
    drop(waiting);
    stop.store(true, Ordering::Relaxed);
    let mut clients_ok = 0;
    for client in clients {
        match client.join() {
            Ok(Ok(())) => clients_ok += 1,
            Ok(Err(error)) => eprintln!("lab: an echo client failed: {error:#}"),
            Err(_) => eprintln!("lab: an echo client panicked"),
        }
    }
    let transcript = guest.transcript();
    guest.kill();
    let report = report.context("the fuzz runs did not finish")?.text;
    let runs: Vec<&str> =
        transcript.lines().filter(|line| line.contains(&format!("fuzz: {CALLS} calls"))).collect();
    let refused: f64 = runs.iter().map(|line| number_before(line, " refused").unwrap_or(0.0)).sum();
    let ns_per_call: Vec<f64> =
        runs.iter().filter_map(|line| number_before(line, " ns per call").ok()).collect();
    let elapsed_ms = number_before(&report, " ms:")?;
    let exited = number_before(&report, " exited")?;
    let killed = number_before(&report, " killed")?;
    // "(+N)" after frames and heap: the changes since before the runs.
    let deltas: Vec<i64> =
        report.split('(').skip(1).filter_map(|part| part.split(')').next()?.parse().ok()).collect();
    let (frames, heap) = match deltas[..] {
        [frames, heap] => (frames, heap),
        _ => bail!("unparsable repeat report: {report}"),
    };
    let kernel_faults = transcript.matches("!!! FAULT").count() + transcript.matches("!!! PANIC").count();
    let calls = runs.len() as u64 * CALLS;
    println!("{:<40} {:>14}", "measurement", "value");
    println!("{:<40} {:>14}", "fuzzer runs (exited 0 / killed)", format!("{exited:.0} / {killed:.0}"));
    println!("{:<40} {:>14}", "system calls made", calls);
    println!("{:<40} {:>14.0}", "of them refused with an error", refused);
    println!("{:<40} {:>14.1}", "seconds", elapsed_ms / 1e3);
    println!(
        "{:<40} {:>14.0}",
        "ns per call (mean of runs)",
        ns_per_call.iter().sum::<f64>() / ns_per_call.len().max(1) as f64
    );
    println!("{:<40} {:>14}", "kernel faults", kernel_faults);
    println!("{:<40} {:>14}", "free frames / heap bytes after", format!("{frames:+} / {heap:+}"));
    println!(
        "{:<40} {:>14}",
        "echo clients kept (requests)",
        format!("{clients_ok}/{CLIENTS} ({})", requests.load(Ordering::Relaxed))
    );
    println!(
        "bench fuzz: {calls} random system calls from ring 3 in {:.0} s, {refused:.0} refused with an error, {kernel_faults} kernel faults, {killed:.0} fuzzers killed; frames {frames:+}, heap {heap:+} bytes after; {clients_ok}/{CLIENTS} echo clients served throughout ({} requests)",
        elapsed_ms / 1e3,
        requests.load(Ordering::Relaxed)
    );
    if kernel_faults > 0 || killed > 0.0 || exited != RUNS as f64 || calls != RUNS * CALLS {
        bail!("the fuzz run did not end clean: {report}");
    }
    // Frames must come back exactly; the heap may keep the working size
    // its tables grew to (the scheduler's 32 KiB of lateness samples fill
    // during a long run), far below a leak's: before the listener's port
    // records were dropped, 10 runs left 3.3 MB behind.
    if frames.abs() > 2 || heap.abs() > HEAP_SLACK {
        bail!("memory did not come back: {report}");
    }
    if clients_ok != usize::from(CLIENTS) {
        bail!("an echo client was cut off during the fuzz run");
    }
    Ok(())
}
