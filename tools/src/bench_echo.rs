//! `cargo lab bench echo`: the echo server measured from the host with
//! [`crate::loadgen`], over QEMU user networking (slirp, through the host
//! loopback) and over a tap device in a private network namespace (the host
//! kernel's TCP straight to the guest's card). For each: 64-byte ping-pong
//! rate and p50/p99 latency at 1, 64 and 1000 connections, and bulk echo
//! throughput at 1 and 64 connections. Every byte is checked. A mismatched
//! byte, a reset or early EOF, or a scenario that did not run fails the
//! bench; an echo still outstanding when the loadgen's drain bound runs out
//! (the guest dropped frames and the sender's retransmission backoff grew)
//! is counted in the errors column and warned about, but is slow rather
//! than wrong.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::image::BootImage;
use crate::loadgen::{self, BulkResult, PingPongResult};
use crate::netns::{self, Namespace};
use crate::options::MachineOptions;
use crate::progress::Progress;
use crate::qemu::{ECHO_PORT, Guest};

/// Each measurement's duration (setup and drain excluded).
const MEASURE: Duration = Duration::from_secs(3);
/// Bulk streams stop after this many bytes per connection or [`MEASURE`].
const BULK_BYTES: u64 = 256 << 20;
const MESSAGE_SIZE: usize = 64;
const PING_PONG_CONNECTIONS: [usize; 3] = [1, 64, 1000];
const BULK_CONNECTIONS: [usize; 2] = [1, 64];
/// Room above the 1000-connection run for connections still closing.
const MAX_CONNECTIONS_PARAM: &str = "max_connections=1100";
const READY: &str = "echo server (event loop)";
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    User,
    Tap,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::User => "user-net",
            Transport::Tap => "tap",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    PingPong,
    Bulk,
}

/// One row of the table.
struct Row {
    transport: Transport,
    kind: Kind,
    connections: usize,
    outcome: Result<Measured, String>,
}

struct Measured {
    /// Requests/s or MB/s.
    rate: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    errors: u64,
    mismatches: u64,
    /// Of `errors`: unanswered when the loadgen's drain bound ran out.
    timeouts: u64,
    samples: Vec<String>,
}

impl From<PingPongResult> for Measured {
    fn from(result: PingPongResult) -> Measured {
        Measured {
            rate: result.rate(),
            p50: Some(result.latency_percentile(50.0)),
            p99: Some(result.latency_percentile(99.0)),
            errors: result.errors,
            mismatches: result.mismatches,
            timeouts: result.timeouts,
            samples: result.error_samples,
        }
    }
}

impl From<BulkResult> for Measured {
    fn from(result: BulkResult) -> Measured {
        Measured {
            rate: result.megabytes_per_second(),
            p50: None,
            p99: None,
            errors: result.errors,
            mismatches: result.mismatches,
            timeouts: result.timeouts,
            samples: result.error_samples,
        }
    }
}

/// Every scenario against `addr`, from the calling thread's namespace.
fn scenarios(transport: Transport, addr: SocketAddr) -> Vec<Row> {
    let mut rows = Vec::new();
    let total = PING_PONG_CONNECTIONS.len() + BULK_CONNECTIONS.len();
    let progress = Progress::steps(total as u64, &format!("bench echo over {}", transport.name()));
    for connections in PING_PONG_CONNECTIONS {
        progress.start(format!("{} ping-pong, {connections} connection(s)", transport.name()));
        let outcome = loadgen::ping_pong(addr, connections, MEASURE, MESSAGE_SIZE)
            .map(Measured::from)
            .map_err(|error| format!("{error:#}"));
        rows.push(Row { transport, kind: Kind::PingPong, connections, outcome });
        progress.step();
    }
    for connections in BULK_CONNECTIONS {
        progress.start(format!("{} bulk, {connections} connection(s)", transport.name()));
        let outcome = loadgen::bulk(addr, connections, BULK_BYTES, MEASURE)
            .map(Measured::from)
            .map_err(|error| format!("{error:#}"));
        rows.push(Row { transport, kind: Kind::Bulk, connections, outcome });
        progress.step();
    }
    rows
}

fn boot(boot: &BootImage, options: &MachineOptions) -> Result<Guest> {
    let mut guest = Guest::spawn(boot, options)?;
    guest.wait_for(READY, BOOT_TIMEOUT)?;
    Ok(guest)
}

fn over_user_net(image: &BootImage, options: &MachineOptions) -> Result<Vec<Row>> {
    let port = crate::qemu::free_local_port()?;
    let options = MachineOptions { port: Some(port), tap: None, net: None, ..options.clone() }
        .with_param(MAX_CONNECTIONS_PARAM);
    let _guest = boot(image, &options)?;
    Ok(scenarios(Transport::User, SocketAddr::from(([127, 0, 0, 1], port))))
}

fn over_tap(image: &BootImage, options: &MachineOptions) -> Result<Vec<Row>> {
    // Declared first, dropped last: QEMU is gone before the namespace is.
    let namespace = Namespace::create("tenfold")?;
    let options = namespace.machine(options).with_param(MAX_CONNECTIONS_PARAM);
    let _guest = boot(image, &options)?;
    let addr = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    Ok(namespace.run_in(|| scenarios(Transport::Tap, addr)))
}

/// A latency for the headline: µs, ms or s, whichever reads best.
fn readable(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        None => "-".into(),
        Some(us) if us < 10_000.0 => format!("{us:.0} µs"),
        Some(us) if us < 1_000_000.0 => format!("{:.1} ms", us / 1e3),
        Some(us) => format!("{:.2} s", us / 1e6),
    }
}

fn us(value: Option<f64>) -> String {
    value.filter(|v| v.is_finite()).map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

pub fn run(boot: &BootImage, options: &MachineOptions) -> Result<()> {
    // 1000 client sockets here, and as many host sockets in slirp (QEMU
    // inherits the limit).
    loadgen::raise_fd_limit(8192);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    match over_user_net(boot, options) {
        Ok(found) => rows.extend(found),
        Err(error) => failures.push(format!("user-net: {error:#}")),
    }
    let tap_skipped = netns::unavailable();
    match &tap_skipped {
        Some(reason) => eprintln!("lab: skipping the tap measurements: {reason}"),
        None => match over_tap(boot, options) {
            Ok(found) => rows.extend(found),
            Err(error) => failures.push(format!("tap: {error:#}")),
        },
    }

    println!(
        "{:<9} {:<10} {:>11} {:>14} {:>9} {:>9} {:>7}",
        "transport", "scenario", "connections", "rate", "p50 µs", "p99 µs", "errors"
    );
    for row in &rows {
        let scenario = match row.kind {
            Kind::PingPong => "ping-pong",
            Kind::Bulk => "bulk",
        };
        match &row.outcome {
            Ok(m) => {
                let rate = match row.kind {
                    Kind::PingPong => format!("{:.0} req/s", m.rate),
                    Kind::Bulk => format!("{:.2} MB/s", m.rate),
                };
                println!(
                    "{:<9} {:<10} {:>11} {:>14} {:>9} {:>9} {:>7}",
                    row.transport.name(),
                    scenario,
                    row.connections,
                    rate,
                    us(m.p50),
                    us(m.p99),
                    m.errors
                );
                let what = format!("{} {scenario} {} connections", row.transport.name(), row.connections);
                if m.errors > m.timeouts {
                    // A wrong byte, a reset or an early EOF: the echo failed.
                    failures.push(format!(
                        "{what}: {} errors ({} mismatched echoes, {} timeouts), e.g. {}",
                        m.errors,
                        m.mismatches,
                        m.timeouts,
                        m.samples.join("; ")
                    ));
                } else if m.timeouts > 0 {
                    // Slow, not wrong: echoes still due when the bound ran out.
                    warnings.push(format!(
                        "{what}: {} requests/connections unanswered {} s after the measurement (counted as errors), e.g. {}",
                        m.timeouts,
                        loadgen::DRAIN_TIMEOUT.as_secs(),
                        m.samples.join("; ")
                    ));
                }
            }
            Err(error) => {
                println!(
                    "{:<9} {:<10} {:>11} {:>14} {:>9} {:>9} {:>7}",
                    row.transport.name(),
                    scenario,
                    row.connections,
                    "did not run",
                    "-",
                    "-",
                    "-"
                );
                failures.push(format!(
                    "{} {scenario} {} connections: {error}",
                    row.transport.name(),
                    row.connections
                ));
            }
        }
    }
    println!(
        "(ping-pong: {MESSAGE_SIZE}-byte messages, one in flight per connection, {} s each; bulk: echoed MB (10^6 bytes) per second, {} s each; {:?}, {} vCPU, {} MiB)",
        MEASURE.as_secs(),
        MEASURE.as_secs(),
        crate::accel::resolve(options.accel, &crate::accel::HostFacts::probe()).unwrap_or(options.accel),
        options.smp,
        options.memory
    );

    for warning in &warnings {
        println!("warning: {warning}");
    }

    let find = |transport: Transport, kind: Kind, connections: usize| {
        rows.iter()
            .find(|r| r.transport == transport && r.kind == kind && r.connections == connections)
            .and_then(|r| r.outcome.as_ref().ok())
    };
    let summary = |transport: Transport| -> Option<String> {
        let ping = |n: usize| find(transport, Kind::PingPong, n);
        let (one, many, most) = (ping(1)?, ping(64)?, ping(1000)?);
        let (bulk_one, bulk_many) = (find(transport, Kind::Bulk, 1)?, find(transport, Kind::Bulk, 64)?);
        Some(format!(
            "{}: ping-pong 1 conn {:.0} req/s (p50 {}), 64 conns {:.0} req/s (p99 {}), 1000 conns {:.0} req/s (p99 {}); bulk 1 conn {:.2} MB/s, 64 conns {:.2} MB/s",
            transport.name(),
            one.rate,
            readable(one.p50),
            many.rate,
            readable(many.p99),
            most.rate,
            readable(most.p99),
            bulk_one.rate,
            bulk_many.rate
        ))
    };
    let mut parts: Vec<String> = [Transport::User, Transport::Tap].into_iter().filter_map(summary).collect();
    if let Some(reason) = &tap_skipped {
        parts.push(format!("tap skipped ({reason})"));
    }
    let errors: u64 = rows.iter().filter_map(|r| r.outcome.as_ref().ok()).map(|m| m.errors).sum();
    if errors > 0 {
        parts.push(format!("{errors} errors"));
    }
    println!(
        "bench echo: {}",
        if parts.is_empty() { "no scenario completed".to_string() } else { parts.join(" | ") }
    );
    if !failures.is_empty() {
        bail!("{} problem(s):\n  {}", failures.len(), failures.join("\n  "));
    }
    let expected =
        (PING_PONG_CONNECTIONS.len() + BULK_CONNECTIONS.len()) * if tap_skipped.is_some() { 1 } else { 2 };
    if rows.len() != expected {
        bail!("only {} of {expected} scenarios ran", rows.len());
    }
    Ok(())
}
