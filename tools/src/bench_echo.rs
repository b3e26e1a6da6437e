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
//!
//! `--vs linux` runs the identical matrix against the Linux reference guest
//! ([`crate::linux_guest`]) on the same QEMU machine, the two servers
//! alternating run by run (`--runs N`), and prints Tenfold / Linux per row:
//! medians, with the spread of the per-run ratios.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::image::BootImage;
use crate::linux_guest::{self, LinuxGuest};
use crate::loadgen::{self, BulkResult, PingPongResult};
use crate::netns::{self, Namespace};
use crate::options::{MachineOptions, Model};
use crate::progress::Progress;
use crate::qemu::{ECHO_PORT, Guest};

/// Each measurement's duration (setup and drain excluded).
const MEASURE: Duration = Duration::from_secs(3);
/// Bulk streams stop after this many bytes per connection or [`MEASURE`].
const BULK_BYTES: u64 = 256 << 20;
const MESSAGE_SIZE: usize = 64;
/// A pause after each scenario, so the next starts on a quiet server: the
/// last one's connections have finished closing (1000 FIN exchanges take a
/// few hundred ms under TCG, and a server that sizes buffers by load would
/// otherwise see them as load).
const SETTLE: Duration = Duration::from_secs(1);
const PING_PONG_CONNECTIONS: [usize; 3] = [1, 64, 1000];
const BULK_CONNECTIONS: [usize; 2] = [1, 64];
/// Room above the 1000-connection run for connections still closing.
const MAX_CONNECTIONS_PARAM: &str = "max_connections=1100";
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

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PingPong => "ping-pong",
            Kind::Bulk => "bulk",
        }
    }
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
    /// Host CPU seconds (the QEMU process: vCPU, device emulation, slirp)
    /// per million requests answered in the window (ping-pong only).
    cpu_per_million: Option<f64>,
}

impl Measured {
    fn ping_pong((result, cpu): (PingPongResult, Option<Duration>)) -> Measured {
        let requests = result.in_window;
        let cpu_per_million =
            cpu.filter(|_| requests > 0).map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64);
        Measured { cpu_per_million, ..Measured::from(result) }
    }
}

impl From<PingPongResult> for Measured {
    fn from(result: PingPongResult) -> Measured {
        Measured {
            cpu_per_million: None,
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
            cpu_per_million: None,
        }
    }
}

/// Every scenario against `addr`, from the calling thread's namespace;
/// `server` is the QEMU process whose CPU time is sampled.
fn scenarios(transport: Transport, addr: SocketAddr, server: u32) -> Vec<Row> {
    let cpu = move || crate::qemu::process_cpu_time(server);
    let mut rows = Vec::new();
    let total = PING_PONG_CONNECTIONS.len() + BULK_CONNECTIONS.len();
    let progress = Progress::steps(total as u64, &format!("bench echo over {}", transport.name()));
    for connections in PING_PONG_CONNECTIONS {
        progress.start(format!("{} ping-pong, {connections} connection(s)", transport.name()));
        let outcome = loadgen::ping_pong_sampled(addr, connections, MEASURE, MESSAGE_SIZE, &cpu)
            .map(Measured::ping_pong)
            .map_err(|error| format!("{error:#}"));
        rows.push(Row { transport, kind: Kind::PingPong, connections, outcome });
        progress.step();
        std::thread::sleep(SETTLE);
    }
    for connections in BULK_CONNECTIONS {
        progress.start(format!("{} bulk, {connections} connection(s)", transport.name()));
        let outcome = loadgen::bulk(addr, connections, BULK_BYTES, MEASURE)
            .map(Measured::from)
            .map_err(|error| format!("{error:#}"));
        rows.push(Row { transport, kind: Kind::Bulk, connections, outcome });
        progress.step();
        std::thread::sleep(SETTLE);
    }
    rows
}

/// The echo server under test.
#[derive(Clone, Copy)]
enum Server<'a> {
    Tenfold(&'a BootImage, Model),
    Linux(&'a LinuxGuest),
}

impl Server<'_> {
    fn name(self) -> String {
        match self {
            Server::Tenfold(_, model) => format!("Tenfold ({})", model.name()),
            Server::Linux(_) => linux_guest::LABEL.to_string(),
        }
    }

    /// The name in a table's column heading.
    fn short(self) -> &'static str {
        match self {
            Server::Tenfold(_, model) => model.name(),
            Server::Linux(_) => "Linux",
        }
    }

    fn column(self) -> String {
        match self {
            Server::Tenfold(_, model) => format!("Tenfold {}", model.name()),
            Server::Linux(_) => "Linux".into(),
        }
    }

    /// Boots the server on `options`' network and waits until it serves.
    fn boot(self, options: &MachineOptions) -> Result<Guest> {
        let (mut guest, ready) = match self {
            Server::Tenfold(image, model) => (
                Guest::spawn(
                    image,
                    &MachineOptions { model, ..options.clone() }.with_param(MAX_CONNECTIONS_PARAM),
                )?,
                model.ready_line(),
            ),
            Server::Linux(linux) => (linux.spawn(options)?, linux_guest::READY_MARKER),
        };
        guest.wait_for(ready, BOOT_TIMEOUT)?;
        Ok(guest)
    }

    /// Tenfold's own accounting of the run: its shell's `net` cost and time
    /// lines (loop iterations, stack polls, sockets visited, task polls, NIC
    /// interrupts and allocations per received frame; the network thread's
    /// time per frame by layer).
    fn print_costs(self, guest: &mut Guest, transport: Transport) {
        if let Server::Tenfold(..) = self
            && guest.send("net\r").is_ok()
        {
            for label in ["cost:", "time:"] {
                if let Ok(line) = guest.wait_for_new(label, Duration::from_secs(10)) {
                    let text =
                        line.text.split_once(label).map_or(line.text.as_str(), |(_, rest)| rest.trim());
                    println!("Tenfold over {}, whole run: {text}", transport.name());
                }
            }
        }
    }
}

fn over_user_net(server: Server, options: &MachineOptions) -> Result<Vec<Row>> {
    let port = crate::qemu::free_local_port()?;
    let options = MachineOptions { port: Some(port), tap: None, net: None, ..options.clone() };
    let mut guest = server.boot(&options)?;
    let rows = scenarios(Transport::User, SocketAddr::from(([127, 0, 0, 1], port)), guest.pid());
    server.print_costs(&mut guest, Transport::User);
    Ok(rows)
}

fn over_tap(server: Server, options: &MachineOptions) -> Result<Vec<Row>> {
    // Declared first, dropped last: QEMU is gone before the namespace is.
    let namespace = Namespace::create("tenfold")?;
    let options = namespace.machine(options);
    let mut guest = server.boot(&options)?;
    let addr = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    let pid = guest.pid();
    let rows = namespace.run_in(|| scenarios(Transport::Tap, addr, pid));
    server.print_costs(&mut guest, Transport::Tap);
    Ok(rows)
}

/// One pass of the whole matrix against `server`: its rows, and what failed
/// to run at all.
fn matrix(server: Server, options: &MachineOptions, tap_skipped: &Option<String>) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    match over_user_net(server, options) {
        Ok(found) => rows.extend(found),
        Err(error) => failures.push(format!("{} user-net: {error:#}", server.name())),
    }
    if tap_skipped.is_none() {
        match over_tap(server, options) {
            Ok(found) => rows.extend(found),
            Err(error) => failures.push(format!("{} tap: {error:#}", server.name())),
        }
    }
    (rows, failures)
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

/// Host CPU seconds per million requests.
fn cpu(value: Option<f64>) -> String {
    value.filter(|v| v.is_finite()).map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

fn us(value: Option<f64>) -> String {
    value.filter(|v| v.is_finite()).map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

/// The reference a benchmark compares Tenfold with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Reference {
    /// The Linux reference guest (Debian's kernel, an epoll echo server).
    Linux,
}

/// `cargo lab bench echo [--vs linux] [--runs N]`.
pub fn run(boot: &BootImage, options: &MachineOptions, vs: Option<Reference>, runs: u32) -> Result<()> {
    // 1000 client sockets here, and as many host sockets in slirp (QEMU
    // inherits the limit).
    loadgen::raise_fd_limit(8192);
    let tap_skipped = netns::unavailable();
    if let Some(reason) = &tap_skipped {
        eprintln!("lab: skipping the tap measurements: {reason}");
    }
    let models: Vec<Model> =
        if options.model == Model::All { Model::SERVING.to_vec() } else { vec![options.model] };
    let linux = match vs {
        Some(Reference::Linux) => Some(linux_guest::prepare()?),
        None => None,
    };
    let mut servers: Vec<Server> = models.iter().map(|&model| Server::Tenfold(boot, model)).collect();
    servers.extend(linux.as_ref().map(Server::Linux));
    if let [server] = servers[..] {
        let mut rows = Vec::new();
        let mut failures = Vec::new();
        for _ in 0..runs.max(1) {
            let (found, failed) = matrix(server, options, &tap_skipped);
            rows.push(found);
            failures.extend(failed);
        }
        return report(median_rows(rows), failures, options, &tap_skipped, runs.max(1));
    }
    // Against Linux when it runs, else against the first model (reactor).
    let baseline = if linux.is_some() { servers.len() - 1 } else { 0 };
    side_by_side(&servers, baseline, options, runs.max(1), &tap_skipped)
}

/// Row by row, the run with the median rate (failed runs left out; a row
/// that never ran keeps its error).
fn median_rows(mut runs: Vec<Vec<Row>>) -> Vec<Row> {
    let Some(first) = runs.first() else { return Vec::new() };
    let keys: Vec<(Transport, Kind, usize)> =
        first.iter().map(|r| (r.transport, r.kind, r.connections)).collect();
    let mut out = Vec::new();
    for (transport, kind, connections) in keys {
        let mut candidates: Vec<Row> = Vec::new();
        for run in runs.iter_mut() {
            if let Some(index) = run
                .iter()
                .position(|r| r.transport == transport && r.kind == kind && r.connections == connections)
            {
                candidates.push(run.swap_remove(index));
            }
        }
        let (mut ok, failed): (Vec<Row>, Vec<Row>) = candidates.into_iter().partition(|r| r.outcome.is_ok());
        ok.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        let middle = ok.len() / 2;
        match (ok.len(), failed.into_iter().next()) {
            (0, Some(failed)) => out.push(failed),
            (0, None) => {}
            _ => out.push(ok.swap_remove(middle)),
        }
    }
    out
}

fn rate(row: &Row) -> f64 {
    row.outcome.as_ref().map(|m| m.rate).unwrap_or(f64::NAN)
}

fn report(
    rows: Vec<Row>,
    mut failures: Vec<String>,
    options: &MachineOptions,
    tap_skipped: &Option<String>,
    runs: u32,
) -> Result<()> {
    let mut warnings: Vec<String> = Vec::new();

    println!(
        "{:<9} {:<10} {:>11} {:>14} {:>9} {:>9} {:>7} {:>12}",
        "transport", "scenario", "connections", "rate", "p50 µs", "p99 µs", "errors", "CPU s/Mreq"
    );
    for row in &rows {
        let scenario = row.kind.name();
        match &row.outcome {
            Ok(m) => {
                let rate = match row.kind {
                    Kind::PingPong => format!("{:.0} req/s", m.rate),
                    Kind::Bulk => format!("{:.2} MB/s", m.rate),
                };
                println!(
                    "{:<9} {:<10} {:>11} {:>14} {:>9} {:>9} {:>7} {:>12}",
                    row.transport.name(),
                    scenario,
                    row.connections,
                    rate,
                    us(m.p50),
                    us(m.p99),
                    m.errors,
                    cpu(m.cpu_per_million)
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
                    "{:<9} {:<10} {:>11} {:>14} {:>9} {:>9} {:>7} {:>12}",
                    row.transport.name(),
                    scenario,
                    row.connections,
                    "did not run",
                    "-",
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
        "({}{})",
        conditions(options),
        if runs > 1 { format!("; medians of {runs} runs") } else { String::new() }
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
    if let Some(reason) = tap_skipped {
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

/// What every figure was measured under.
fn conditions(options: &MachineOptions) -> String {
    format!(
        "echo model {}; ping-pong: {MESSAGE_SIZE}-byte messages, one in flight per connection, {} s each; bulk: echoed MB (10^6 bytes) per second, {} s each; {:?}, {} vCPU, {} MiB, release kernel",
        options.model.name(),
        MEASURE.as_secs(),
        MEASURE.as_secs(),
        crate::accel::resolve(options.accel, &crate::accel::HostFacts::probe()).unwrap_or(options.accel),
        options.smp,
        options.memory
    )
}

/// The same matrix against several servers (Tenfold in one or more models,
/// and the Linux reference guest), `runs` times each, alternating server
/// by server within a run; every row is compared with the server at
/// `baseline` (Linux when it runs, else the first model).
fn side_by_side(
    servers: &[Server],
    baseline: usize,
    options: &MachineOptions,
    runs: u32,
    tap_skipped: &Option<String>,
) -> Result<()> {
    let mut results: Vec<Vec<Vec<Row>>> = servers.iter().map(|_| Vec::new()).collect();
    let mut failures = Vec::new();
    for run in 1..=runs {
        for (index, &server) in servers.iter().enumerate() {
            eprintln!("lab: run {run} of {runs}: {}", server.name());
            let (rows, failed) = matrix(server, options, tap_skipped);
            results[index].push(rows);
            failures.extend(failed);
        }
    }
    for (runs, server) in results.iter().zip(servers) {
        for row in runs.iter().flatten() {
            let Ok(m) = row.outcome.as_ref() else { continue };
            if m.errors > m.timeouts {
                failures.push(format!(
                    "{} {} {} {} connections: {} errors, e.g. {}",
                    server.name(),
                    row.transport.name(),
                    row.kind.name(),
                    row.connections,
                    m.errors,
                    m.samples.join("; ")
                ));
            }
        }
    }
    let base = servers[baseline];
    let others: Vec<usize> = (0..servers.len()).filter(|&index| index != baseline).collect();
    let mut header = format!("{:<9} {:<10} {:>5} {:>14}", "transport", "scenario", "conns", base.column());
    for &index in &others {
        header += &format!(" {:>14} {:>7} {:>12}", servers[index].column(), "ratio", "ratio range");
    }
    header += &format!(" {:>11}", format!("p99 {}", base.short()));
    for &index in &others {
        header += &format!(" {:>11} {:>7}", format!("p99 {}", servers[index].short()), "p99 ×");
    }
    header += "  CPU s/Mreq";
    println!("{header}");
    let mut headline: Vec<Vec<String>> = vec![Vec::new(); servers.len()];
    let keys: Vec<(Transport, Kind, usize)> = results[baseline]
        .first()
        .map(|rows| rows.iter().map(|r| (r.transport, r.kind, r.connections)).collect())
        .unwrap_or_default();
    for (transport, kind, connections) in keys {
        let per_run: Vec<Vec<&Measured>> = results
            .iter()
            .map(|runs| {
                runs.iter()
                    .filter_map(|rows| {
                        rows.iter()
                            .find(|r| {
                                r.transport == transport && r.kind == kind && r.connections == connections
                            })
                            .and_then(|r| r.outcome.as_ref().ok())
                    })
                    .collect()
            })
            .collect();
        let rates: Vec<Option<f64>> = per_run.iter().map(|ms| median(ms.iter().map(|m| m.rate))).collect();
        let p99s: Vec<Option<f64>> =
            per_run.iter().map(|ms| median(ms.iter().filter_map(|m| m.p99))).collect();
        let cpus: Vec<Option<f64>> =
            per_run.iter().map(|ms| median(ms.iter().filter_map(|m| m.cpu_per_million))).collect();
        let Some(base_rate) = rates[baseline] else {
            failures.push(format!(
                "{} {} {} {connections} connections: no run to compare with",
                base.name(),
                transport.name(),
                kind.name()
            ));
            continue;
        };
        let format_rate = |value: Option<f64>| match (kind, value) {
            (_, None) => "did not run".to_string(),
            (Kind::PingPong, Some(value)) => format!("{value:.0} req/s"),
            (Kind::Bulk, Some(value)) => format!("{value:.1} MB/s"),
        };
        let mut line = format!(
            "{:<9} {:<10} {:>5} {:>14}",
            transport.name(),
            kind.name(),
            connections,
            format_rate(Some(base_rate))
        );
        let in_headline = transport == Transport::Tap || tap_skipped.is_some();
        for &index in &others {
            let Some(rate) = rates[index] else {
                line += &format!(" {:>14} {:>7} {:>12}", "did not run", "-", "-");
                failures.push(format!(
                    "{} {} {} {connections} connections: no comparable run",
                    servers[index].name(),
                    transport.name(),
                    kind.name()
                ));
                continue;
            };
            // Ratios of runs paired in time (run i of each), for the spread.
            let ratios: Vec<f64> =
                per_run[index].iter().zip(&per_run[baseline]).map(|(a, b)| a.rate / b.rate).collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ratio = rate / base_rate;
            line += &format!(
                " {:>14} {:>6.2}× {:>12}",
                format_rate(Some(rate)),
                ratio,
                format!("{low:.2}–{high:.2}×")
            );
            if in_headline {
                let p99 = p99s[index]
                    .zip(p99s[baseline])
                    .map(|(a, b)| format!(", p99 {:.2}×", a / b))
                    .unwrap_or_default();
                let cpu = cpus[index]
                    .zip(cpus[baseline])
                    .map(|(a, b)| format!(", CPU/req {:.2}×", a / b))
                    .unwrap_or_default();
                headline[index].push(format!("{} {connections}: {ratio:.2}×{p99}{cpu}", kind.name()));
            }
        }
        line += &format!(" {:>11}", readable(p99s[baseline]));
        for &index in &others {
            let ratio = p99s[index].zip(p99s[baseline]).map(|(a, b)| format!("{:.2}×", a / b));
            line += &format!(" {:>11} {:>7}", readable(p99s[index]), ratio.unwrap_or_else(|| "-".into()));
        }
        let cpu_column: Vec<String> = cpus.iter().map(|&value| cpu(value)).collect();
        line += &format!("  {}", cpu_column.join(" / "));
        println!("{line}");
    }
    let linux = servers.iter().find_map(|server| match server {
        Server::Linux(linux) => Some(linux.kernel_release.as_str()),
        Server::Tenfold(..) => None,
    });
    println!(
        "({}{}; {runs} run(s) each, alternating; ratio = median / median {}, range = per-run ratios; CPU = the QEMU process's host CPU seconds per million requests, {})",
        conditions(options),
        linux.map(|release| format!("; Linux {release} by PVH")).unwrap_or_default(),
        base.short(),
        servers.iter().map(|server| server.short()).collect::<Vec<_>>().join(" / ")
    );
    let transport = if tap_skipped.is_some() { "user-net" } else { "tap" };
    let parts: Vec<String> = others
        .iter()
        .map(|&index| {
            format!("{} / {}: {}", servers[index].short(), base.short(), headline[index].join("; "))
        })
        .collect();
    let command = if options.model == Model::All { "--model all" } else { "--vs linux" };
    println!("bench echo {command}: over {transport}, {}", parts.join(" | "));
    if !failures.is_empty() {
        bail!("{} problem(s):\n  {}", failures.len(), failures.join("\n  "));
    }
    Ok(())
}

/// The median of the finite `values`, `None` if there are none.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    Some(crate::scenario::percentile(&mut values, 50.0)).filter(|median| median.is_finite())
}
