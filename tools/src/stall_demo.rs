//! `cargo lab demo blocking` and the per-model half of `demo fairness`:
//! one connection's handler stalls for 300 ms — a blocking call
//! (`TENFOLD-BLOCK`) or a CPU-bound loop that never yields
//! (`TENFOLD-SPIN`), both under `chaos=on` — while healthy clients
//! ping-pong beside it. The same stall in each model that serves echo:
//! the event loop runs the handler on its only thread, so every other
//! connection waits it out (Node's "blocking is catastrophic", "one handler
//! starves all others"); a csp connection thread parks alone on a blocking
//! call and is preempted out of a busy loop (Go's "blocking is safe",
//! "fairness is enforced").
//!
//! Measured from the host: the healthy clients' round trips that overlap
//! the stall (the longest, and how many completed), beside their p99 before
//! it, and the stalled connection's own echo time (which shows the stall
//! really happened: a model that ignored the marker fails the run).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::image::BootImage;
use crate::lab_report::{Concept, Finding};
use crate::options::{MachineOptions, Model};
use crate::progress::Progress;
use crate::qemu::Guest;
use crate::say;
use crate::scenario::percentile;

/// Healthy clients beside the stalled one.
const CLIENTS: usize = 4;
/// Ping-pong before the stall, and after it.
const BEFORE: Duration = Duration::from_millis(1500);
const AFTER: Duration = Duration::from_millis(1000);
/// The kernel's stall (`tenfold_net::chaos::STALL_MS`).
const STALL_MS: f64 = 300.0;
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Which stall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// A blocking call (`TENFOLD-BLOCK`).
    Block,
    /// A CPU-bound loop (`TENFOLD-SPIN`).
    Spin,
}

impl Stall {
    fn marker(self) -> &'static [u8] {
        match self {
            Stall::Block => b"TENFOLD-BLOCK",
            Stall::Spin => b"TENFOLD-SPIN",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stall::Block => "blocking call",
            Stall::Spin => "CPU-bound loop",
        }
    }
}

/// One model's run.
#[derive(Clone, Debug)]
pub struct StallRow {
    pub model: Model,
    pub stall: Stall,
    /// The stalled connection's echo of its marker, ms.
    pub stalled_echo_ms: f64,
    /// Healthy round trips before the stall: p99, ms.
    pub before_p99_ms: f64,
    /// Healthy round trips overlapping the stall: the longest, ms, and how
    /// many completed inside the stall's window.
    pub during_max_ms: f64,
    pub during_completed: usize,
    /// Healthy clients whose echo came back byte-exact throughout.
    pub clients_ok: usize,
}

/// A healthy client's round trips: (start, latency).
type Trips = Vec<(Instant, Duration)>;

fn client(mut stream: TcpStream, id: u8, stop: Arc<AtomicBool>) -> Result<Trips> {
    let message = [id; 64];
    let mut echo = [0u8; 64];
    let mut trips = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut echo)?;
        if echo != message {
            bail!("client {id}: the echo differs");
        }
        trips.push((start, start.elapsed()));
    }
    Ok(trips)
}

/// One stall in one model, on its own guest.
pub fn run_one(boot: &BootImage, options: &MachineOptions, model: Model, stall: Stall) -> Result<StallRow> {
    let port = crate::qemu::free_local_port()?;
    let options = MachineOptions { port: Some(port), model, ..options.clone() }.with_param("chaos=on");
    let mut guest = Guest::spawn(boot, &options)?;
    guest.wait_for(model.ready_line(), Duration::from_secs(90))?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let connect = || -> Result<TcpStream> {
        let stream = crate::loadgen::connect_paced(address)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(stream)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (stream, stop) = (connect()?, stop.clone());
            Ok(std::thread::spawn(move || client(stream, id as u8, stop)))
        })
        .collect::<Result<_>>()?;
    let mut stalled = connect()?;
    std::thread::sleep(BEFORE);
    let marker = stall.marker();
    let stall_start = Instant::now();
    stalled.write_all(marker)?;
    let mut echo = vec![0u8; marker.len()];
    stalled.read_exact(&mut echo).context("the stalled connection's echo")?;
    let stall_end = Instant::now();
    std::thread::sleep(AFTER);
    stop.store(true, Ordering::Relaxed);
    let mut trips = Vec::new();
    let mut clients_ok = 0;
    for client in clients {
        match client.join() {
            Ok(Ok(found)) => {
                clients_ok += 1;
                trips.extend(found);
            }
            Ok(Err(error)) => eprintln!("lab: a healthy client failed: {error:#}"),
            Err(_) => eprintln!("lab: a healthy client panicked"),
        }
    }
    guest.kill();
    if echo != marker {
        bail!("the stalled connection's echo differs");
    }
    let stalled_echo_ms = (stall_end - stall_start).as_secs_f64() * 1e3;
    if stalled_echo_ms < STALL_MS * 0.9 {
        bail!(
            "{}: the marker came back in {stalled_echo_ms:.0} ms: the server did not stall (does it handle the marker?)",
            model.name()
        );
    }
    let mut before: Vec<f64> = trips
        .iter()
        .filter(|(start, _)| *start < stall_start)
        .map(|(_, latency)| latency.as_secs_f64() * 1e3)
        .collect();
    let overlapping: Vec<&(Instant, Duration)> = trips
        .iter()
        .filter(|(start, latency)| *start < stall_end && *start + *latency > stall_start)
        .collect();
    let during_max_ms =
        overlapping.iter().map(|(_, latency)| latency.as_secs_f64() * 1e3).fold(0.0, f64::max);
    let during_completed = trips
        .iter()
        .filter(|(start, latency)| *start >= stall_start && *start + *latency <= stall_end)
        .count();
    Ok(StallRow {
        model,
        stall,
        stalled_echo_ms,
        before_p99_ms: percentile(&mut before, 99.0),
        during_max_ms,
        during_completed,
        clients_ok,
    })
}

/// Every model that serves echo, one stall kind; prints the table.
pub fn run_all(boot: &BootImage, options: &MachineOptions, stall: Stall) -> Result<Vec<StallRow>> {
    let progress = Progress::steps(Model::SERVING.len() as u64, &format!("a 300 ms {}", stall.name()));
    let mut rows = Vec::new();
    for model in Model::SERVING {
        progress.start(format!("{} server", model.name()));
        rows.push(run_one(boot, options, model, stall)?);
        progress.step();
    }
    drop(progress);
    say!(
        "{:<8} {:<16} {:>16} {:>18} {:>20} {:>22} {:>8}",
        "model",
        "stall",
        "stalled echo ms",
        "others p99 before",
        "others longest RTT",
        "others' RTTs finished",
        "clients"
    );
    say!(
        "{:<8} {:<16} {:>16} {:>18} {:>20} {:>22} {:>8}",
        "",
        "",
        "",
        "ms",
        "in the stall, ms",
        "in the stall",
        "ok"
    );
    for row in &rows {
        say!(
            "{:<8} {:<16} {:>16.0} {:>18.1} {:>20.1} {:>22} {:>8}",
            row.model.name(),
            row.stall.name(),
            row.stalled_echo_ms,
            row.before_p99_ms,
            row.during_max_ms,
            row.during_completed,
            format!("{}/{CLIENTS}", row.clients_ok)
        );
    }
    if let Some(row) = rows.iter().find(|row| row.clients_ok < CLIENTS) {
        bail!("{}: {} of {CLIENTS} healthy clients failed", row.model.name(), CLIENTS - row.clients_ok);
    }
    Ok(rows)
}

/// One cell's text for a row.
fn cell(row: &StallRow) -> String {
    let stalled = row.during_max_ms >= STALL_MS * 0.5;
    format!(
        "300 ms {} in one handler: {} (others' longest RTT {:.0} ms, {} RTTs done meanwhile; {:.1} ms p99 before)",
        row.stall.name(),
        if stalled { "every other connection waited" } else { "the others kept echoing" },
        row.during_max_ms,
        row.during_completed,
        row.before_p99_ms
    )
}

/// `cargo lab demo blocking`.
pub fn blocking(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let rows = run_all(boot, options, Stall::Block)?;
    say!("{}", headline("blocking", &rows));
    Ok(rows.iter().map(|row| Finding::new(Concept::Blocking, row.model, cell(row))).collect())
}

/// The per-model rows of `cargo lab demo fairness`: a CPU-bound handler.
pub fn fairness(boot: &BootImage, options: &MachineOptions) -> Result<(Vec<StallRow>, Vec<Finding>)> {
    let rows = run_all(boot, options, Stall::Spin)?;
    let findings = rows.iter().map(|row| Finding::new(Concept::Fairness, row.model, cell(row))).collect();
    Ok((rows, findings))
}

/// The line that sums `rows` up.
pub fn headline(what: &str, rows: &[StallRow]) -> String {
    let parts: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{} — the other {CLIENTS} connections' longest round trip {:.0} ms ({} finished meanwhile)",
                row.model.name(),
                row.during_max_ms,
                row.during_completed
            )
        })
        .collect();
    let stall = rows.first().map_or("stall", |row| row.stall.name());
    format!("{what}: a 300 ms {stall} in one connection's handler: {}", parts.join("; "))
}
