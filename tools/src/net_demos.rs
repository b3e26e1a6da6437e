//! The network demos: `cargo lab demo multiplexing | backpressure |
//! bounding`. Each boots the guest with the echo port forwarded to a free
//! host port, drives it from this process, reads the guest's own counters
//! from its serial shell (`net`, `mem`), prints a table, writes a plot and
//! ends with a headline line.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::demos::plot_path;
use crate::image::BootImage;
use crate::lab_report::{Concept, Finding};
use crate::options::{MachineOptions, Model};
use crate::plot::{LineChart, Series};
use crate::progress::Progress;
use crate::qemu::Guest;
use crate::say;
use crate::scenario::percentile;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const SHELL_TIMEOUT: Duration = Duration::from_secs(20);

/// A guest serving echo on a free host port.
fn echo_guest(boot: &BootImage, options: &MachineOptions, params: &[&str]) -> Result<(Guest, u16)> {
    let port = crate::qemu::free_local_port()?;
    let mut options = MachineOptions { port: Some(port), ..options.clone() };
    for param in params {
        options = options.with_param(*param);
    }
    let mut guest = Guest::spawn(boot, &options)?;
    guest.wait_for(options.model.ready_line(), Duration::from_secs(90))?;
    guest.wait_for("Tenfold shell", Duration::from_secs(30))?;
    Ok((guest, port))
}

/// A paced connection (see `loadgen::connect_paced`) with this demo's
/// longer I/O timeouts.
fn connect_paced(port: u16) -> Result<TcpStream> {
    let stream = crate::loadgen::connect_paced(SocketAddr::from(([127, 0, 0, 1], port)))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Round trips of 64 bytes on `stream`; returns latencies in µs.
fn ping_pong(stream: &mut TcpStream, rounds: usize) -> Result<Vec<f64>> {
    let message: Vec<u8> = (0..64u8).collect();
    let mut echo = [0u8; 64];
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut echo)?;
        if echo[..] != message[..] {
            bail!("echo differs");
        }
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(latencies)
}

/// The number just before `suffix` in `text` (e.g. "12 accepted").
pub(crate) fn number_before(text: &str, suffix: &str) -> Result<f64> {
    let head = text
        .split(suffix)
        .next()
        .filter(|_| text.contains(suffix))
        .with_context(|| format!("no `{suffix}` in `{text}`"))?;
    let word = head.trim_end().rsplit([' ', ',', '(']).next().unwrap_or_default();
    word.parse().with_context(|| format!("`{word}` before `{suffix}` is not a number"))
}

/// The guest's network and memory counters, read from its shell.
#[derive(Clone, Copy, Debug, Default)]
struct GuestCounters {
    connections: f64,
    refused: f64,
    buffered: f64,
    task_polls: f64,
    turns: f64,
    heap_kib: f64,
    /// The socket service's calls that parked, and its socket syncs.
    parked: f64,
    syncs: f64,
}

fn counters(guest: &mut Guest) -> Result<GuestCounters> {
    guest.send("net\r")?;
    let echo = guest.wait_for_new("echo:", SHELL_TIMEOUT)?.text;
    // The socket service (the csp and actor servers' sockets) runs in every
    // model; its line comes before the loop's.
    let service = guest.wait_for_new("service:", SHELL_TIMEOUT)?.text;
    let (parked, syncs) = (number_before(&service, " parked")?, number_before(&service, " socket syncs")?);
    let looped = guest.wait_for_new("loop:", SHELL_TIMEOUT)?.text;
    guest.send("mem\r")?;
    let heap = guest.wait_for_new("heap:", SHELL_TIMEOUT)?.text;
    Ok(GuestCounters {
        connections: number_before(&echo, " connections open")?,
        refused: number_before(&echo, " refused at the cap")?,
        buffered: number_before(&echo, " bytes buffered")?,
        task_polls: number_before(&looped, " task polls")?,
        turns: number_before(&looped, " turns")?,
        parked,
        syncs,
        heap_kib: number_before(&heap, " KiB in use")?,
    })
}

/// Idle connections held open beside the measured one.
const IDLE: [usize; 3] = [0, 100, 400];

/// Per model: how the work per request grows with idle connections.
pub fn multiplexing(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    say!(
        "{:<8} {:>17} {:>12} {:>22} {:>20} {:>12} {:>12}",
        "model",
        "idle connections",
        "connections",
        "network work/request",
        "wake-ups/request",
        "RTT p50 µs",
        "RTT p99 µs"
    );
    let mut series = Vec::new();
    let mut findings = Vec::new();
    for model in Model::SERVING {
        let rows = multiplexing_run(boot, &MachineOptions { model, ..options.clone() })?;
        let (first, last) = (&rows[0], &rows[rows.len() - 1]);
        let work = match model {
            Model::Reactor => "task polls",
            _ => "socket syncs",
        };
        findings.push(Finding::new(
            Concept::Multiplexing,
            model,
            format!(
                "{}: {:.2} {work} per request beside {} idle connections ({:.2} beside {}); RTT p50 {:.0} → {:.0} µs",
                match model {
                    Model::Reactor => "readiness wakes only the ready task",
                    Model::Csp => "a blocked read parks its thread; the network thread syncs only kicked or ready sockets",
                    _ => "a blocked read system call parks its task; the network thread syncs only kicked or ready sockets",
                },
                last.work,
                last.idle,
                first.work,
                first.idle,
                first.p50,
                last.p50
            ),
        ));
        series.push(Series {
            name: format!("{} ({work})", model.name()),
            points: rows.iter().map(|row| (row.idle as f64, row.work)).collect(),
        });
    }
    series.push(Series {
        name: "select()-style scan".into(),
        points: IDLE.iter().map(|&idle| (idle as f64, idle as f64 + 1.0)).collect(),
    });
    let chart = LineChart {
        title: "Network-side work per request vs idle connections".into(),
        x_label: "idle connections".into(),
        y_label: "work per request".into(),
        series,
    };
    let written = chart.write(&plot_path("multiplexing"))?;
    say!("plot: {written}");
    let parts: Vec<String> = findings.iter().map(|f| format!("{} — {}", f.model.name(), f.text)).collect();
    say!(
        "multiplexing: work per request stays flat as idle connections grow, O(ready) where a select()-style loop would scan {} sockets per request; {}",
        IDLE[IDLE.len() - 1] + 1,
        parts.join("; ")
    );
    Ok(findings)
}

/// One row of the multiplexing table.
struct MultiplexingRow {
    idle: usize,
    /// Network-side work per request: task polls (reactor) or socket syncs (csp).
    work: f64,
    p50: f64,
}

fn multiplexing_run(boot: &BootImage, options: &MachineOptions) -> Result<Vec<MultiplexingRow>> {
    let model = options.model;
    let (mut guest, port) = echo_guest(boot, options, &[])?;
    let mut active = connect_paced(port)?;
    let mut idle: Vec<TcpStream> = Vec::new();
    const ROUNDS: usize = 200;
    let mut rows = Vec::new();
    let progress = Progress::steps(IDLE.len() as u64, &format!("multiplexing ({})", model.name()));
    for target in IDLE {
        while idle.len() < target {
            progress.message(format!("opening idle connections: {}/{target}", idle.len()));
            idle.push(connect_paced(port)?);
        }
        progress.message(format!("{ROUNDS} requests beside {target} idle connections"));
        let before = counters(&mut guest)?;
        let mut latencies = ping_pong(&mut active, ROUNDS)?;
        let after = counters(&mut guest)?;
        let per_request = |a: f64, b: f64| (a - b) / ROUNDS as f64;
        let (work, wakes) = match model {
            Model::Reactor => {
                (per_request(after.task_polls, before.task_polls), per_request(after.turns, before.turns))
            }
            _ => (per_request(after.syncs, before.syncs), per_request(after.parked, before.parked)),
        };
        let (p50, p99) = (percentile(&mut latencies, 50.0), percentile(&mut latencies, 99.0));
        say!(
            "{:<8} {target:>17} {:>12} {work:>22.2} {wakes:>20.2} {p50:>12.0} {p99:>12.0}",
            model.name(),
            after.connections
        );
        progress.step();
        rows.push(MultiplexingRow { idle: target, work, p50 });
    }
    Ok(rows)
}

/// One backpressure run: a client that writes and never reads, sampled.
fn slow_reader_run(
    boot: &BootImage,
    options: &MachineOptions,
    unbounded: bool,
) -> Result<Vec<(f64, f64, f64, f64)>> {
    let params: &[&str] = if unbounded { &["echo=unbounded"] } else { &[] };
    let (mut guest, port) = echo_guest(boot, options, params)?;
    let stream = connect_paced(port)?;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = stream.try_clone()?;
        stream.set_write_timeout(Some(Duration::from_millis(200)))?;
        let (sent, stop) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let chunk = vec![0x5Au8; 16 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match stream.write(&chunk) {
                    Ok(count) => {
                        sent.fetch_add(count as u64, Ordering::Relaxed);
                    }
                    Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        })
    };
    let start = Instant::now();
    let mut samples = Vec::new();
    // Bounded in time, and in guest memory for the unbounded variant.
    while start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(250));
        let counters = counters(&mut guest)?;
        let t = start.elapsed().as_secs_f64();
        samples.push((
            t,
            sent.load(Ordering::Relaxed) as f64 / 1024.0,
            counters.heap_kib,
            counters.buffered / 1024.0,
        ));
        if counters.heap_kib > 32.0 * 1024.0 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    drop(stream);
    Ok(samples)
}

pub fn backpressure(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let csp_options = MachineOptions { model: Model::Csp, ..options.clone() };
    let progress = Progress::steps(4, "backpressure");
    progress.start("a client that never reads, bounded echo (event loop)");
    let bounded = slow_reader_run(boot, options, false)?;
    progress.step();
    progress.start("a client that never reads, unbounded echo (event loop)");
    let unbounded = slow_reader_run(boot, options, true)?;
    progress.step();
    progress.start("a client that never reads, csp server");
    let csp = slow_reader_run(boot, &csp_options, false)?;
    progress.step();
    progress.start("a client that never reads, actor server");
    let actor = slow_reader_run(boot, &MachineOptions { model: Model::Actor, ..options.clone() }, false)?;
    drop(progress);
    say!(
        "{:<18} {:>6} {:>16} {:>15} {:>18}",
        "variant",
        "t s",
        "client sent KiB",
        "guest heap KiB",
        "socket buffers KiB"
    );
    let variants = [
        ("reactor bounded", &bounded),
        ("reactor unbounded", &unbounded),
        ("csp (blocking)", &csp),
        ("actor (blocking)", &actor),
    ];
    for (name, samples) in variants {
        for &(t, sent, heap, buffered) in samples.iter() {
            say!("{name:<18} {t:>6.2} {sent:>16.0} {heap:>15.0} {buffered:>18.1}");
        }
    }
    let chart = LineChart {
        title: "A client that never reads: guest heap in use".into(),
        x_label: "seconds".into(),
        y_label: "guest heap in use (KiB)".into(),
        series: variants
            .iter()
            .map(|(name, samples)| Series {
                name: (*name).into(),
                points: samples.iter().map(|s| (s.0, s.2)).collect(),
            })
            .collect(),
    };
    let written = chart.write(&plot_path("backpressure"))?;
    say!("plot: {written}");
    let (Some(first), Some(last_bounded), Some(last_unbounded), Some(last_csp), Some(last_actor)) =
        (bounded.first(), bounded.last(), unbounded.last(), csp.last(), actor.last())
    else {
        bail!("no samples");
    };
    // A writer that failed at once would leave a flat, meaningless plot.
    if [last_bounded, last_unbounded, last_csp, last_actor].iter().any(|last| last.1 == 0.0) {
        bail!("the client that never reads sent nothing: the scenario did not run");
    }
    let growth = |samples: &[(f64, f64, f64, f64)]| samples.last().unwrap().2 - samples.first().unwrap().2;
    say!(
        "backpressure: a client that never reads got {:.0} KiB into the event loop before its window closed and the guest heap moved {:.0} KiB (socket buffers {:.0} KiB); without the bound the guest took {:.0} KiB and its heap grew {:.0} KiB in {:.1} s; the csp server's blocked write took {:.0} KiB (heap {:+.0} KiB), the actor's {:.0} KiB (heap {:+.0} KiB)",
        last_bounded.1,
        growth(&bounded),
        last_bounded.3,
        last_unbounded.1,
        growth(&unbounded),
        last_unbounded.0 - first.0.min(last_unbounded.0),
        last_csp.1,
        growth(&csp),
        last_actor.1,
        growth(&actor)
    );
    Ok(vec![
        Finding::new(
            Concept::Backpressure,
            Model::Reactor,
            format!(
                "explicit: a client that never reads gets {:.0} KiB in, then its window closes (heap +{:.0} KiB); without the bound the heap grew {:.0} KiB",
                last_bounded.1,
                growth(&bounded),
                growth(&unbounded)
            ),
        ),
        Finding::new(
            Concept::Backpressure,
            Model::Csp,
            format!(
                "implicit: the connection thread blocks in write; a client that never reads gets {:.0} KiB in (heap {:+.0} KiB)",
                last_csp.1,
                growth(&csp)
            ),
        ),
        Finding::new(
            Concept::Backpressure,
            Model::Actor,
            format!(
                "implicit, per process: the handler task blocks in its write system call; a client that never reads gets {:.0} KiB in (heap {:+.0} KiB)",
                last_actor.1,
                growth(&actor)
            ),
        ),
    ])
}

const CAP: usize = 32;
const FLOOD: usize = 100;

/// A connect flood beyond the cap, in each model that serves echo.
pub fn bounding(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for model in Model::SERVING {
        say!("{} server:", model.name());
        findings.push(bounding_run(boot, &MachineOptions { model, ..options.clone() })?);
    }
    let parts: Vec<String> = findings.iter().map(|f| format!("{} — {}", f.model.name(), f.text)).collect();
    say!("bounding: {}", parts.join("; "));
    Ok(findings)
}

fn bounding_run(boot: &BootImage, options: &MachineOptions) -> Result<Finding> {
    let cap = format!("max_connections={CAP}");
    let (mut guest, port) = echo_guest(boot, options, &[cap.as_str(), "backlog=4"])?;
    let mut kept: Vec<TcpStream> = (0..CAP).map(|_| connect_paced(port)).collect::<Result<_>>()?;
    let before = counters(&mut guest)?;
    let mut rtt_before = ping_pong(&mut kept[0], 100)?;

    // Measure an established connection while the flood runs.
    let mut watched = kept[1].try_clone()?;
    let flooding = Arc::new(AtomicBool::new(true));
    let watcher = {
        let flooding = flooding.clone();
        std::thread::spawn(move || -> Result<Vec<f64>> {
            let mut latencies = Vec::new();
            while flooding.load(Ordering::Relaxed) {
                latencies.extend(ping_pong(&mut watched, 5)?);
            }
            Ok(latencies)
        })
    };
    let mut refused = 0;
    let start = Instant::now();
    let progress = Progress::steps(FLOOD as u64, "connect flood");
    for _ in 0..FLOOD {
        progress.step();
        // slirp accepts on the host, then the guest answers with a reset.
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
            refused += 1;
            continue;
        };
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let _ = stream.write_all(b"let me in");
        let mut buffer = [0u8; 16];
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => refused += 1,
            Ok(_) => {}
        }
    }
    let flood_seconds = start.elapsed().as_secs_f64();
    drop(progress);
    flooding.store(false, Ordering::Relaxed);
    let mut rtt_during = watcher.join().map_err(|_| anyhow::anyhow!("watcher panicked"))??;
    let after = counters(&mut guest)?;
    for stream in kept.iter_mut() {
        ping_pong(stream, 1).context("an established connection stopped echoing")?;
    }
    let (b50, d50, d99) = (
        percentile(&mut rtt_before, 50.0),
        percentile(&mut rtt_during, 50.0),
        percentile(&mut rtt_during, 99.0),
    );
    say!(
        "{:<14} {:>6} {:>16} {:>15} {:>10} {:>14}",
        "phase",
        "open",
        "refused (client)",
        "refused (guest)",
        "heap KiB",
        "RTT p50 µs"
    );
    say!(
        "{:<14} {:>6} {:>16} {:>15} {:>10} {:>14.0}",
        "before flood",
        before.connections,
        0,
        before.refused,
        before.heap_kib,
        b50
    );
    say!(
        "{:<14} {:>6} {:>16} {:>15} {:>10} {:>14.0}",
        "after flood",
        after.connections,
        refused,
        after.refused - before.refused,
        after.heap_kib,
        d50
    );
    let chart = LineChart {
        title: "Echo RTT of an established connection during a connect flood".into(),
        x_label: "request".into(),
        y_label: "RTT (µs)".into(),
        series: vec![Series {
            name: "during the flood".into(),
            points: rtt_during.iter().enumerate().map(|(i, &v)| (i as f64, v)).collect(),
        }],
    };
    let written = chart.write(&plot_path(&format!("bounding-{}", options.model.name())))?;
    say!("plot: {written}");
    if refused < FLOOD {
        bail!("only {refused} of {FLOOD} connections beyond the cap were refused");
    }
    say!(
        "  {}: {refused}/{FLOOD} connections beyond the cap of {CAP} were refused in {flood_seconds:.1} s, guest heap {:.0} → {:.0} KiB, the {CAP} established connections kept echoing (RTT p50 {b50:.0} µs before, {d50:.0} µs during, p99 {d99:.0} µs)",
        options.model.name(),
        before.heap_kib,
        after.heap_kib
    );
    Ok(Finding::new(
        Concept::Bounding,
        options.model,
        format!(
            "connection cap {CAP}: {refused}/{FLOOD} beyond it refused, heap {:.0} → {:.0} KiB, established RTT p50 {b50:.0} → {d50:.0} µs",
            before.heap_kib, after.heap_kib
        ),
    ))
}
