//! `cargo lab demo isolation`: failure isolation, measured. Echo clients
//! ping-pong with the guest while the same CPU fault (a divide by zero) is
//! taken in two places:
//!
//! 1. in a kernel-mode handler (the shell's `crash handler`: a kernel
//!    thread): the kernel stops with a fault report, QEMU exits, every
//!    client loses its connection and what it had in flight;
//! 2. in isolated ring-3 tasks (`crasher divide`, started at a fixed rate by
//!    the shell's `every`): only they die; the clients' request rate during
//!    the crashes is set beside the rate without, and the kernel reports the
//!    time from each fault to the next thread running.
//!
//! 3. in one isolated task under an OTP supervisor (`supervise demo`,
//!    `kill` injecting a real page fault into `worker-b` again and again):
//!    only that task dies and is restarted — restart latency p50/p99 from
//!    the supervisor's own measure — while its siblings keep their task ids
//!    (never restarted) and the clients keep echoing.
//!
//! 4. in a connection's task of the event-loop server (`--model reactor`,
//!    `chaos=on`, a connection sending `TENFOLD-CRASH`): Node's failure
//!    mode, the one event loop dies and every connection with it; the
//!    kernel runs on and the loop's supervisor restarts it with the NIC.
//!
//! 5. in a connection thread of the csp server (`--model csp`, `chaos=on`,
//!    a connection sending `TENFOLD-CRASH`): Go's failure mode, an
//!    unrecovered panic ends the whole program — every connection of the
//!    server is lost, the kernel runs on and restarts the server.
//!
//! 6. in the actor server's handler of one connection (`--model actor`,
//!    `chaos=on`): Erlang's answer — only that connection's isolated task
//!    dies, its supervisor restarts a handler on the same connection, and
//!    every other connection keeps echoing without losing a byte.
//!
//! Each scenario is one row of one table ([`SCENARIOS`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::image::BootImage;
use crate::lab_report::{Concept, Finding};
use crate::options::{MachineOptions, Model};
use crate::progress::Progress;
use crate::qemu::Guest;
use crate::say;
use crate::supervision_tree::{restart_latency_us, task_id};

/// Echo clients running through every scenario.
const CLIENTS: usize = 4;
/// The measuring window before the faults.
const BASELINE: Duration = Duration::from_secs(3);
/// Ring-3 crashes: one every this many ms, this many times.
const CRASH_INTERVAL_MS: u64 = 50;
const CRASHES: u32 = 60;
const SHELL: Duration = Duration::from_secs(30);

/// One row of the demo's table. `None` shows as "—".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub scenario: String,
    /// Faults taken (and by whom).
    pub faults: String,
    /// What became of the kernel.
    pub kernel: String,
    /// Clients still connected at the end, of [`CLIENTS`].
    pub clients_kept: usize,
    /// Echo requests per second, all clients, before the faults and while
    /// they happened.
    pub rate_before: f64,
    pub rate_during: Option<f64>,
    /// Bytes the clients sent that never came back.
    pub bytes_lost: u64,
    /// Fault → next thread running, p50 / p99, µs.
    pub fault_to_next_us: Option<(f64, f64)>,
    /// Crash → the task running again under its supervisor, p50 / p99, µs
    /// (the second half of the demo).
    pub restart_us: Option<(f64, f64)>,
}

/// A scenario boots its own guest and returns its row.
pub type Scenario = fn(&BootImage, &MachineOptions) -> Result<Row>;

/// The scenarios, in the order the table shows them.
pub const SCENARIOS: &[Scenario] = &[
    kernel_handler_faults,
    isolated_tasks_fault,
    supervised_task_faults,
    reactor_server_faults,
    csp_server_faults,
    actor_server_faults,
];

/// The echo servers' scenarios: each row's name and model.
const REACTOR_SCENARIO: &str = "reactor server (chaos=on)";
const CSP_SCENARIO: &str = "csp server (chaos=on)";
const ACTOR_SCENARIO: &str = "actor server (chaos=on)";
const SERVER_SCENARIOS: [(&str, Model); 3] =
    [(REACTOR_SCENARIO, Model::Reactor), (CSP_SCENARIO, Model::Csp), (ACTOR_SCENARIO, Model::Actor)];

/// The echo server's model, if `row` is one of their scenarios.
fn server_model(row: &Row) -> Option<Model> {
    SERVER_SCENARIOS.iter().find(|(name, _)| row.scenario == *name).map(|&(_, model)| model)
}

/// What the fault did to an echo server's row, in words and figures: the
/// same words in the report's cell and the headline.
fn server_summary(row: &Row, model: Model) -> String {
    let cut = CLIENTS - row.clients_kept;
    let (p50, p99) = row.restart_us.unwrap_or((f64::NAN, f64::NAN));
    match model {
        Model::Csp => format!(
            "a fault in one connection thread ended the whole server — {cut}/{CLIENTS} other clients cut off, {} bytes lost; server back in {:.0} ms",
            row.bytes_lost,
            p50 / 1e3
        ),
        Model::Actor => format!(
            "{ACTOR_CRASHES} faults in one connection's handler, each restarted on the same connection in p50 {:.1} / p99 {:.1} ms; the other {}/{CLIENTS} clients kept, {} bytes lost",
            p50 / 1e3,
            p99 / 1e3,
            row.clients_kept,
            row.bytes_lost
        ),
        Model::Reactor | Model::All => format!(
            "a fault in one connection's handler killed the one event loop — {cut}/{CLIENTS} other clients cut off, {} bytes lost; its supervisor restarted it with the NIC in {:.0} ms",
            row.bytes_lost,
            p50 / 1e3
        ),
    }
}

/// Crashes sent on one connection of the actor server (its supervisor
/// allows 3 restarts in 5 s per connection).
const ACTOR_CRASHES: u32 = 3;

/// Supervised crashes: one every this many ms, this many times.
/// Slower than `workers` allows restarts (5 in 1 s): faster, and that
/// supervisor would rightly give up and take worker-a and worker-c along.
const KILL_INTERVAL_MS: u64 = 300;
const KILLS: u32 = 20;

/// Runs every scenario, prints the table and the headline.
pub fn run(boot: &BootImage, options: &MachineOptions) -> Result<Vec<Finding>> {
    let progress = Progress::steps(SCENARIOS.len() as u64, "isolation");
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        rows.push(scenario(boot, options)?);
        progress.step();
    }
    drop(progress);
    say!("{}", table(&rows).trim_end());
    say!("{}", headline(&rows)?);
    Ok(findings(&rows))
}

/// The report's cells: each echo server's chaos row in its model (the
/// kernel-mode fault stands for the event loop when its row is missing),
/// else the supervised isolated task for the actor.
pub fn findings(rows: &[Row]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for row in rows {
        let Some(model) = server_model(row) else { continue };
        let strength = match model {
            Model::Csp => "weak",
            Model::Actor => "strong (MMU + supervisor)",
            Model::Reactor | Model::All => "none",
        };
        findings.push(Finding::new(
            Concept::Isolation,
            model,
            format!("{strength}: {}", server_summary(row, model)),
        ));
    }
    let has = |findings: &[Finding], model: Model| findings.iter().any(|finding| finding.model == model);
    if !has(&findings, Model::Reactor)
        && let Some(kernel) = rows.first()
    {
        findings.push(Finding::new(
            Concept::Isolation,
            Model::Reactor,
            format!(
                "none: a fault in a handler in the kernel's thread stops everything — {}/{CLIENTS} clients cut off, {} bytes lost",
                CLIENTS - kernel.clients_kept,
                kernel.bytes_lost
            ),
        ));
    }
    if !has(&findings, Model::Actor)
        && let Some(supervised) =
            rows.iter().find(|row| row.restart_us.is_some() && server_model(row).is_none())
    {
        let (p50, p99) = supervised.restart_us.unwrap_or_default();
        findings.push(Finding::new(
            Concept::Isolation,
            Model::Actor,
            format!(
                "MMU + supervisor: one task crashed by a real page fault {} times, restarted in p50 {:.1} / p99 {:.1} ms; {}/{CLIENTS} clients kept, {} bytes lost",
                supervised.faults.split_whitespace().next().unwrap_or("?"),
                p50 / 1e3,
                p99 / 1e3,
                supervised.clients_kept,
                supervised.bytes_lost
            ),
        ));
    }
    findings
}

/// The table of `rows`.
pub fn table(rows: &[Row]) -> String {
    let dash = || "—".to_string();
    let pair =
        |value: Option<(f64, f64)>| value.map_or_else(dash, |(p50, p99)| format!("{p50:.0} / {p99:.0} µs"));
    let mut out = format!(
        "{:<28} {:<26} {:<44} {:>9} {:>10} {:>10} {:>10} {:>22} {:>22}\n",
        "scenario",
        "faults",
        "kernel",
        "clients",
        "req/s",
        "req/s",
        "bytes",
        "fault → next thread",
        "restart (supervised)"
    );
    out.push_str(&format!(
        "{:<28} {:<26} {:<44} {:>9} {:>10} {:>10} {:>10} {:>22} {:>22}\n",
        "", "", "", "kept", "before", "during", "lost", "p50 / p99", "p50 / p99"
    ));
    for row in rows {
        out.push_str(&format!(
            "{:<28} {:<26} {:<44} {:>9} {:>10.0} {:>10} {:>10} {:>22} {:>22}\n",
            row.scenario,
            row.faults,
            row.kernel,
            format!("{}/{CLIENTS}", row.clients_kept),
            row.rate_before,
            row.rate_during.map_or_else(dash, |rate| format!("{rate:.0}")),
            row.bytes_lost,
            pair(row.fault_to_next_us),
            pair(row.restart_us),
        ));
    }
    out
}

/// The line at the end, from the first two rows (kernel mode, ring 3) and
/// the supervised row's restart latency when there is one.
pub fn headline(rows: &[Row]) -> Result<String> {
    let [kernel, tasks, rest @ ..] = rows else { bail!("the isolation demo needs both its scenarios") };
    let (p50, p99) = tasks.fault_to_next_us.unwrap_or((f64::NAN, f64::NAN));
    let during = tasks.rate_during.unwrap_or(f64::NAN);
    let supervised = rest
        .iter()
        .filter(|row| server_model(row).is_none())
        .find_map(|row| {
            let (p50, p99) = row.restart_us?;
            Some(format!("; under a supervisor restarted in p50 {p50:.0} µs / p99 {p99:.0} µs, {}/{CLIENTS} clients kept", row.clients_kept))
        })
        .unwrap_or_default();
    let servers: String = rest
        .iter()
        .filter_map(|row| {
            let model = server_model(row)?;
            Some(format!("; in the {} server {}", model.name(), server_summary(row, model)))
        })
        .collect();
    Ok(format!(
        "isolation: a divide by zero in a kernel-mode handler stopped the kernel and cut off {}/{CLIENTS} echo clients ({} bytes lost); \
         the same fault in isolated tasks ({}) kept {}/{CLIENTS} clients echoing at {during:.0} req/s ({:.0}% of {:.0} without crashes), {} bytes lost, \
         fault → next thread p50 {p50:.0} µs / p99 {p99:.0} µs",
        CLIENTS - kernel.clients_kept,
        kernel.bytes_lost,
        tasks.faults,
        tasks.clients_kept,
        100.0 * during / tasks.rate_before,
        tasks.rate_before,
        tasks.bytes_lost,
    ) + &supervised
        + &servers)
}

/// What `every` reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EverySummary {
    pub runs: u64,
    pub exited: u64,
    pub killed: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub timed: u64,
}

/// Parses the shell's `every: N runs of `p` in T ms: E exited, K killed;
/// fault to next thread p50 A us p99 B us max C us (F faults timed)`.
pub fn parse_every(line: &str) -> Result<EverySummary> {
    let text = line.split_once("every: ").with_context(|| format!("not an `every` report: {line}"))?.1;
    let number = |suffix: &str| crate::net_demos::number_before(text, suffix);
    let after = |prefix: &str| -> Result<f64> {
        let word = text
            .split_once(prefix)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .with_context(|| format!("no `{prefix}` in `{text}`"))?;
        word.parse().with_context(|| format!("`{word}` after `{prefix}` is not a number"))
    };
    Ok(EverySummary {
        runs: number(" runs of")? as u64,
        exited: number(" exited")? as u64,
        killed: number(" killed")? as u64,
        p50_us: after("p50 ")?,
        p99_us: after("p99 ")?,
        timed: after("(")? as u64,
    })
}

/// A guest serving echo on a free host port; fails at once if it has no
/// echo server (e.g. booted with `--net none`), since there is nothing to
/// show then.
fn echo_guest(boot: &BootImage, options: &MachineOptions) -> Result<(Guest, u16)> {
    if options.network() != crate::options::Network::User {
        bail!(
            "the isolation demo drives the echo server over user networking; it cannot run with --net none or --tap"
        );
    }
    let port = crate::qemu::free_local_port()?;
    let options = MachineOptions { port: Some(port), ..options.clone() };
    let mut guest = Guest::spawn(boot, &options)?;
    guest.wait_for("Tenfold shell", Duration::from_secs(90))?;
    // The network thread may announce the server after the shell's prompt.
    if guest.wait_for(options.model.ready_line(), Duration::from_secs(60)).is_err() {
        guest.kill();
        bail!("the guest has no echo server (no network card?): the isolation demo needs one");
    }
    Ok((guest, port))
}

/// Echo clients ping-ponging 64 bytes until stopped or cut off.
struct Clients {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    threads: Vec<JoinHandle<ClientEnd>>,
}

/// How one client ended: bytes sent that never came back, and whether the
/// connection failed (reset, EOF, timeout, a wrong byte).
struct ClientEnd {
    lost: u64,
    failed: bool,
}

impl Clients {
    fn start(port: u16) -> Result<Clients> {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for client in 0..CLIENTS {
            let mut stream = crate::loadgen::connect_paced(SocketAddr::from(([127, 0, 0, 1], port)))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.set_write_timeout(Some(Duration::from_secs(10)))?;
            let (stop, requests) = (stop.clone(), requests.clone());
            threads.push(std::thread::spawn(move || ping_pong(&mut stream, client as u8, &stop, &requests)));
        }
        Ok(Clients { stop, requests, threads })
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests per second over `window`.
    fn rate_over(&self, window: Duration) -> f64 {
        let before = self.requests();
        std::thread::sleep(window);
        (self.requests() - before) as f64 / window.as_secs_f64()
    }

    /// Stops the clients; returns (clients still connected, bytes lost).
    fn finish(self) -> (usize, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let ends: Vec<ClientEnd> = self
            .threads
            .into_iter()
            .map(|thread| thread.join().unwrap_or(ClientEnd { lost: 0, failed: true }))
            .collect();
        (ends.iter().filter(|end| !end.failed).count(), ends.iter().map(|end| end.lost).sum())
    }
}

/// Bounded by the stop flag and the socket timeouts.
fn ping_pong(stream: &mut TcpStream, client: u8, stop: &AtomicBool, requests: &AtomicU64) -> ClientEnd {
    let message = [client; 64];
    let mut echo = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        if stream.write_all(&message).is_err() {
            return ClientEnd { lost: message.len() as u64, failed: true };
        }
        let mut got = 0;
        while got < echo.len() {
            match stream.read(&mut echo[got..]) {
                Ok(0) | Err(_) => return ClientEnd { lost: (message.len() - got) as u64, failed: true },
                Ok(count) => got += count,
            }
        }
        if echo != message {
            return ClientEnd { lost: 0, failed: true };
        }
        requests.fetch_add(1, Ordering::Relaxed);
    }
    ClientEnd { lost: 0, failed: false }
}

/// Scenario 1: a kernel thread takes the fault.
pub fn kernel_handler_faults(boot: &BootImage, options: &MachineOptions) -> Result<Row> {
    let (mut guest, port) = echo_guest(boot, options)?;
    let clients = Clients::start(port)?;
    let rate_before = clients.rate_over(BASELINE);
    let sent = Instant::now();
    guest.send("crash handler\r")?;
    let exit = guest.wait_exit(Duration::from_secs(60))?;
    let stopped_after = sent.elapsed();
    let (kept, lost) = clients.finish();
    let transcript = guest.transcript();
    if !transcript.contains("!!! FAULT: divide error") {
        bail!("the kernel-mode fault did not happen ({exit:?}); console:\n{transcript}");
    }
    Ok(Row {
        scenario: "kernel-mode handler".into(),
        faults: "1 (kernel thread)".into(),
        kernel: format!("stopped: fault report, QEMU exit {exit:?} in {} ms", stopped_after.as_millis()),
        clients_kept: kept,
        rate_before,
        rate_during: None,
        bytes_lost: lost,
        fault_to_next_us: None,
        restart_us: None,
    })
}

/// Scenario 2: isolated tasks take the fault, [`CRASHES`] times.
pub fn isolated_tasks_fault(boot: &BootImage, options: &MachineOptions) -> Result<Row> {
    let (mut guest, port) = echo_guest(boot, options)?;
    let clients = Clients::start(port)?;
    let rate_before = clients.rate_over(BASELINE);
    let requests_before = clients.requests();
    let started = Instant::now();
    guest.send(&format!("every {CRASH_INTERVAL_MS} {CRASHES} crasher divide\r"))?;
    let report = guest.wait_for_new("every: ", Duration::from_secs(120))?;
    let rate_during = (clients.requests() - requests_before) as f64 / started.elapsed().as_secs_f64();
    let summary = parse_every(&report.text)?;
    // The kernel is still there: the shell answers, no kernel fault.
    guest.send("uptime\r")?;
    guest.wait_for_new("context switches", SHELL)?;
    let (kept, lost) = clients.finish();
    let transcript = guest.transcript();
    guest.kill();
    if transcript.contains("!!! FAULT") || transcript.contains("!!! PANIC") {
        bail!("the kernel faulted; console:\n{transcript}");
    }
    if summary.killed != u64::from(CRASHES) {
        bail!("{} of {CRASHES} crasher tasks were killed by their fault: {}", summary.killed, report.text);
    }
    Ok(Row {
        scenario: "isolated ring-3 tasks".into(),
        faults: format!("{} ({}/s, ring 3)", summary.killed, 1000 / CRASH_INTERVAL_MS),
        kernel: "ran on: shell and echo answered".into(),
        clients_kept: kept,
        rate_before,
        rate_during: Some(rate_during),
        bytes_lost: lost,
        fault_to_next_us: Some((summary.p50_us, summary.p99_us)),
        restart_us: None,
    })
}

/// A guest serving echo in `model` with `chaos=on`, on a free host port.
fn chaos_guest(boot: &BootImage, options: &MachineOptions, model: Model) -> Result<(Guest, u16)> {
    let port = crate::qemu::free_local_port()?;
    let options = MachineOptions { port: Some(port), model, ..options.clone() }.with_param("chaos=on");
    let mut guest = Guest::spawn(boot, &options)?;
    guest.wait_for(model.ready_line(), Duration::from_secs(90))?;
    guest.wait_for("Tenfold shell", SHELL)?;
    Ok((guest, port))
}

/// Scenario 4: a connection's task in the event loop faults for real.
pub fn reactor_server_faults(boot: &BootImage, options: &MachineOptions) -> Result<Row> {
    whole_server_faults(boot, options, Model::Reactor)
}

/// Scenario 5: a connection thread of the csp server faults for real.
pub fn csp_server_faults(boot: &BootImage, options: &MachineOptions) -> Result<Row> {
    whole_server_faults(boot, options, Model::Csp)
}

/// A server whose one fault ends it whole (the event loop, the csp
/// program): one connection sends `TENFOLD-CRASH` while the clients echo;
/// the time until the server listens again is its restart.
fn whole_server_faults(boot: &BootImage, options: &MachineOptions, model: Model) -> Result<Row> {
    let (died, restarted, scenario) = match model {
        Model::Csp => ("csp: the server crashed", "csp: listening (run 2)", CSP_SCENARIO),
        _ => ("the event loop died", "(run 2)", REACTOR_SCENARIO),
    };
    let (mut guest, port) = chaos_guest(boot, options, model)?;
    let clients = Clients::start(port)?;
    let rate_before = clients.rate_over(BASELINE);
    let mut crasher = crate::loadgen::connect_paced(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let sent = Instant::now();
    crasher.write_all(b"TENFOLD-CRASH")?;
    let report = guest.wait_for_new(died, Duration::from_secs(60))?;
    guest.wait_for(restarted, Duration::from_secs(60))?;
    let restart_us = sent.elapsed().as_secs_f64() * 1e6;
    // The clients find their connections reset.
    std::thread::sleep(Duration::from_secs(1));
    guest.send("uptime\r")?;
    guest.wait_for_new("context switches", SHELL)?;
    let (kept, lost) = clients.finish();
    let transcript = guest.transcript();
    guest.kill();
    if transcript.contains("!!! PANIC") {
        bail!("the kernel panicked; console:\n{transcript}");
    }
    let (faults, kernel) = match model {
        Model::Csp => {
            let ended = report.text.split_once("crashed").map_or("", |(_, rest)| rest);
            let threads = crate::net_demos::number_before(ended, " threads ended")?;
            (
                format!("1 (a connection thread; {threads:.0} threads ended)"),
                "ran on: the whole server restarted",
            )
        }
        _ => {
            let lost = crate::net_demos::number_before(&report.text, " connections lost")?;
            (
                format!("1 (a connection's task; {lost:.0} connections lost)"),
                "ran on: the event loop restarted",
            )
        }
    };
    Ok(Row {
        scenario: scenario.into(),
        faults,
        kernel: kernel.into(),
        clients_kept: kept,
        rate_before,
        rate_during: None,
        bytes_lost: lost,
        fault_to_next_us: None,
        restart_us: Some((restart_us, restart_us)),
    })
}

/// Scenario 6: one connection's handler in the actor server faults for
/// real, [`ACTOR_CRASHES`] times, while the clients echo beside it.
pub fn actor_server_faults(boot: &BootImage, options: &MachineOptions) -> Result<Row> {
    let (mut guest, port) = chaos_guest(boot, options, Model::Actor)?;
    let clients = Clients::start(port)?;
    let rate_before = clients.rate_over(BASELINE);
    let requests_before = clients.requests();
    let started = Instant::now();
    let mut crasher = crate::loadgen::connect_paced(SocketAddr::from(([127, 0, 0, 1], port)))?;
    crasher.set_read_timeout(Some(Duration::from_secs(20)))?;
    for crash in 1..=ACTOR_CRASHES {
        crasher.write_all(b"TENFOLD-CRASH")?;
        guest.wait_for_new("!!! USER FAULT", Duration::from_secs(60))?;
        // The connection survives its handler: a restarted one echoes.
        let probe = format!("after crash {crash}");
        crasher.write_all(probe.as_bytes())?;
        let mut echo = vec![0u8; probe.len()];
        crasher.read_exact(&mut echo).context("the crashing connection after its handler's restart")?;
        if echo != probe.as_bytes() {
            bail!("the crashing connection's echo after restart {crash} differs");
        }
    }
    let rate_during = (clients.requests() - requests_before) as f64 / started.elapsed().as_secs_f64();
    guest.send("net\r")?;
    let line = guest.wait_for_new("actor:  ", SHELL)?.text;
    let (kept, lost) = clients.finish();
    let transcript = guest.transcript();
    guest.kill();
    if transcript.contains("!!! PANIC") || transcript.contains("!!! FAULT") {
        bail!("the kernel faulted; console:\n{transcript}");
    }
    let after = |prefix: &str| -> Result<f64> {
        let word = line.split_once(prefix).and_then(|(_, rest)| rest.split_whitespace().next());
        word.with_context(|| format!("no `{prefix}` in `{line}`"))?.parse().with_context(|| line.clone())
    };
    let restarts = crate::net_demos::number_before(&line, " restarts")?;
    if restarts < f64::from(ACTOR_CRASHES) {
        bail!("{restarts} restarts for {ACTOR_CRASHES} crashes: {line}");
    }
    Ok(Row {
        scenario: ACTOR_SCENARIO.into(),
        faults: format!("{ACTOR_CRASHES} (one connection's handler, ring 3)"),
        kernel: "ran on; that connection kept, handler restarted".into(),
        clients_kept: kept,
        rate_before,
        rate_during: Some(rate_during),
        bytes_lost: lost,
        fault_to_next_us: None,
        restart_us: Some((after("restart latency p50 ")?, after("p99 ")?)),
    })
}

/// Polls the shell's `tree` until `done` holds (at most 30 s).
fn wait_tree(guest: &mut Guest, done: impl Fn(&str) -> bool) -> Result<String> {
    crate::supervision_tree::wait_until(guest, SHELL, Duration::from_millis(20), done)
}

/// Scenario 3: the fault injected into one supervised task, [`KILLS`] times.
pub fn supervised_task_faults(boot: &BootImage, options: &MachineOptions) -> Result<Row> {
    let (mut guest, port) = echo_guest(boot, options)?;
    guest.send("supervise demo\r")?;
    let first = wait_tree(&mut guest, |tree| tree.contains("member-2 task"))?;
    let clients = Clients::start(port)?;
    let rate_before = clients.rate_over(BASELINE);
    let requests_before = clients.requests();
    let started = Instant::now();
    let mut tree = first.clone();
    for _ in 0..KILLS {
        let victim = task_id(&tree, "worker-b")?;
        guest.send(&format!("kill {victim}\r"))?;
        guest.wait_for_new(&format!("kill: task {victim}"), SHELL)?;
        std::thread::sleep(Duration::from_millis(KILL_INTERVAL_MS));
        tree = wait_tree(&mut guest, |tree| task_id(tree, "worker-b").is_ok_and(|id| id != victim))?;
    }
    let rate_during = (clients.requests() - requests_before) as f64 / started.elapsed().as_secs_f64();
    let (kept, lost) = clients.finish();
    let transcript = guest.transcript();
    guest.kill();
    if transcript.contains("!!! FAULT") || transcript.contains("!!! PANIC") {
        bail!("the kernel faulted; console:\n{transcript}");
    }
    let siblings = ["worker-a", "worker-c", "stage-1", "stage-2", "stage-3", "member-1", "member-2"];
    let untouched =
        siblings.iter().filter(|name| task_id(&first, name).ok() == task_id(&tree, name).ok()).count();
    let restart_us = restart_latency_us(&tree).context("the supervisor reported no restart latency")?;
    Ok(Row {
        scenario: "supervised ring-3 task".into(),
        faults: format!("{KILLS} (kill: a real #PF, every {KILL_INTERVAL_MS} ms)"),
        kernel: format!(
            "ran on; worker-b restarted {KILLS}×, {untouched}/{} siblings untouched",
            siblings.len()
        ),
        clients_kept: kept,
        rate_before,
        rate_during: Some(rate_during),
        bytes_lost: lost,
        fault_to_next_us: None,
        restart_us: Some(restart_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_every_report() {
        let line = "every: 60 runs of `crasher` in 3012 ms: 0 exited, 60 killed; fault to next thread p50 812 us p99 1490 us max 1502 us (60 faults timed)";
        let summary = parse_every(line).unwrap();
        assert_eq!(
            summary,
            EverySummary { runs: 60, exited: 0, killed: 60, p50_us: 812.0, p99_us: 1490.0, timed: 60 }
        );
        assert!(parse_every("every: expected an interval in ms and a count").is_err());
        assert!(parse_every("ps").is_err());
    }

    fn rows() -> Vec<Row> {
        vec![
            Row {
                scenario: "kernel-mode handler".into(),
                faults: "1 (kernel thread)".into(),
                kernel: "stopped".into(),
                clients_kept: 0,
                rate_before: 4000.0,
                bytes_lost: 256,
                ..Row::default()
            },
            Row {
                scenario: "isolated ring-3 tasks".into(),
                faults: "60 (20/s, ring 3)".into(),
                kernel: "ran on".into(),
                clients_kept: 4,
                rate_before: 4000.0,
                rate_during: Some(3000.0),
                fault_to_next_us: Some((800.0, 1500.0)),
                ..Row::default()
            },
        ]
    }

    #[test]
    fn the_table_has_a_row_per_scenario_and_dashes_for_what_it_did_not_measure() {
        let mut rows = rows();
        // The second half adds a row with restart figures.
        rows.push(Row {
            scenario: "supervised tasks".into(),
            restart_us: Some((900.0, 2100.0)),
            ..rows[1].clone()
        });
        let table = table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + 3, "{table}");
        assert!(lines[2].starts_with("kernel-mode handler") && lines[2].contains("0/4"), "{table}");
        assert!(lines[2].matches('—').count() == 3, "{table}");
        assert!(
            lines[3].contains("4/4") && lines[3].contains("800 / 1500 µs") && lines[3].ends_with('—'),
            "{table}"
        );
        assert!(lines[4].ends_with("900 / 2100 µs"), "{table}");
    }

    #[test]
    fn the_headline_sets_the_two_failure_modes_side_by_side() {
        let line = headline(&rows()).unwrap();
        assert!(line.contains("cut off 4/4 echo clients (256 bytes lost)"), "{line}");
        assert!(
            line.contains(
                "kept 4/4 clients echoing at 3000 req/s (75% of 4000 without crashes), 0 bytes lost"
            ),
            "{line}"
        );
        assert!(line.ends_with("p50 800 µs / p99 1500 µs"), "{line}");
        assert!(headline(&rows()[..1]).is_err());
    }

    #[test]
    fn each_echo_server_row_gives_its_model_one_cell_and_one_headline_fragment() {
        let mut rows = rows();
        for (name, kept, lost) in [(REACTOR_SCENARIO, 0, 256), (CSP_SCENARIO, 0, 192), (ACTOR_SCENARIO, 4, 0)]
        {
            rows.push(Row {
                scenario: name.into(),
                clients_kept: kept,
                bytes_lost: lost,
                restart_us: Some((15_000.0, 15_000.0)),
                ..Row::default()
            });
        }
        let findings = findings(&rows);
        let cell = |model: Model| {
            let cells: Vec<&Finding> = findings.iter().filter(|finding| finding.model == model).collect();
            assert_eq!(cells.len(), 1, "{findings:?}");
            cells[0].text.clone()
        };
        assert!(
            cell(Model::Reactor)
                .starts_with("none: a fault in one connection's handler killed the one event loop — 4/4")
        );
        assert!(
            cell(Model::Reactor).ends_with("restarted it with the NIC in 15 ms"),
            "{}",
            cell(Model::Reactor)
        );
        assert!(cell(Model::Csp).starts_with("weak: ") && cell(Model::Csp).contains("192 bytes lost"));
        assert!(
            cell(Model::Actor).starts_with("strong (MMU + supervisor): ")
                && cell(Model::Actor).contains("4/4 clients kept, 0 bytes lost")
        );
        let line = headline(&rows).unwrap();
        for model in ["reactor", "csp", "actor"] {
            assert_eq!(line.matches(&format!("; in the {model} server ")).count(), 1, "{line}");
        }
        // Without the server rows, the kernel-mode fault stands for the event loop.
        assert!(
            findings_of(&rows[..2], Model::Reactor)
                .starts_with("none: a fault in a handler in the kernel's thread")
        );
    }

    fn findings_of(rows: &[Row], model: Model) -> String {
        findings(rows)
            .into_iter()
            .find(|finding| finding.model == model)
            .map(|finding| finding.text)
            .unwrap_or_default()
    }
}
