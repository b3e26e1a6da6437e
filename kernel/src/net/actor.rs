//! The actor echo server (`model=actor`), Erlang style: **a process per
//! connection**. As ranch and cowboy do it: an acceptor thread takes
//! connections from the socket service, and a connection supervisor starts
//! for each one an isolated ring-3 `echo-actor` task (the `actor` program
//! of the initrd) that echoes with blocking `socket_read`/`socket_write`
//! system calls until end of stream, shuts down and exits 0.
//!
//! **The connection is lent, not given, by message.** The socket enters
//! the handler's socket table before its thread exists
//! (`task::socket::lend`), and its handle arrives as a kernel message
//! (tag `CONNECTION_TAG`) in a mailbox made for the handler, whose id is
//! the task's argument — as ranch hands a connection process its socket in
//! a message; the handler takes it by selective receive. The supervisor
//! keeps ownership. When the handler
//! exits normally the supervisor closes whatever it left open. When it dies
//! abnormally (a fault, `kill`, the watchdog, a non-zero exit) the
//! connection is *not* reset: a new handler is started on the same socket —
//! an OTP transient child (restarted only after an abnormal exit), one
//! `tenfold_runtime::supervise::Supervisor` per connection with a restart
//! intensity of [`MAX_RESTARTS`] within a period; past it the supervisor gives up and resets
//! that connection only. A crash thus costs the crashing connection the
//! bytes its handler had read and not yet written, and no other connection
//! anything.
//!
//! **Why a task per connection** rather than a supervised pool of isolated
//! workers each serving many connections: Erlang's semantics (a crash
//! touches exactly one connection and its restart is that connection's
//! business), and no head-of-line blocking (a worker blocked on one slow
//! connection never holds up another). The price is a task spawn — an ELF
//! load and a fresh address space — per connection, and a task's memory
//! per open connection (the README gives the figures).
//!
//! **Deaths** of the handlers go to the supervisor thread alone: the
//! handlers are spawned with it as their monitor (`sched::take_monitored_deaths`),
//! so the shell's supervision trees never see them.
//!
//! **Bounds.** One handler per open connection, so at most the listener's
//! `max_connections`; a handler that cannot be started (no memory, thread
//! table full) costs that one connection, which is reset and counted.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use tenfold_abi::mailbox::CONNECTION_TAG;
use tenfold_net::echo::ECHO_PORT;
use tenfold_net::service::{SocketError, SocketId};
use tenfold_runtime::sched::Priority;
use tenfold_runtime::supervise::{
    Action, Backoff, ChildSpec, Exit, Intensity, Restart, Strategy, Supervisor,
};

use super::{Bounds, Service};
use crate::arch::IrqLock;
use crate::sched::{self, ThreadRef};
use crate::task::{self, Limits};
use crate::time;

/// The handler program in the initrd, and its tasks' name.
const PROGRAM: &str = "actor";
const HANDLER_NAME: &str = "echo-actor";
/// Per connection: at most 3 restarts within a period, 5 s unless the
/// kernel parameter `actor_restart_period_s` says otherwise; past it the
/// connection is given up (reset).
pub const MAX_RESTARTS: u32 = 3;
pub const DEFAULT_RESTART_PERIOD_S: u64 = 5;
/// A handler's memory quota: 64 frames (256 KiB); it needs 28.
const HANDLER_QUOTA_FRAMES: u64 = 64;
/// The handler's mailbox: the connection's handoff, and room to spare.
const HANDLER_MAILBOX: u64 = 4;
/// Kernel heap a handler and its connection's bookkeeping take beyond the
/// staging buffers (task record, thread entry and FPU area, its socket
/// table, the per-connection supervisor): measured with the shell's `mem`
/// (see the README), rounded up. Used by the listener's memory admission.
pub const TASK_HEAP_BYTES: usize = 4096;
/// Priority of the acceptor and the supervisor (the network thread has 28).
const PRIORITY: u8 = 20;
/// Restart latencies kept for p50/p99.
const LATENCY_SAMPLES: usize = 4096;

/// What the server counts, shared by its two threads and the shell.
struct Shared {
    service: Service,
    chaos: bool,
    /// Each connection's restart intensity.
    intensity: Intensity,
    /// Connections accepted and not yet given a handler.
    pending: IrqLock<VecDeque<SocketId>>,
    /// The supervisor thread (bits of its `ThreadRef`, plus one; 0 before).
    supervisor: AtomicU64,
    accepted: AtomicU64,
    handlers_alive: AtomicU64,
    handlers_started: AtomicU64,
    normal_exits: AtomicU64,
    restarts: AtomicU64,
    given_up: AtomicU64,
    spawn_failures: AtomicU64,
    /// Restart latencies (ns): handler marked dead → its successor runnable.
    latencies: IrqLock<Vec<u64>>,
    /// Handoff cost of new connections (ns): the supervisor takes the
    /// socket → its handler is loaded, holds the socket and is runnable.
    spawns: IrqLock<Vec<u64>>,
}

static SERVER: IrqLock<Option<Arc<Shared>>> = IrqLock::new(None);

/// The server's counters for the echo line of `net`.
#[derive(Clone)]
pub struct Counters(Arc<Shared>);

impl Counters {
    /// Connections open and accepted in all.
    pub fn connections(&self) -> (usize, u64) {
        (self.0.service.stats().open, self.0.accepted.load(Ordering::Relaxed))
    }
}

/// The `actor:` line of the shell's `net`.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub open: usize,
    pub accepted: u64,
    pub handlers_alive: u64,
    pub handlers_started: u64,
    pub normal_exits: u64,
    pub restarts: u64,
    pub given_up: u64,
    pub spawn_failures: u64,
    pub restart_p50_us: u64,
    pub restart_p99_us: u64,
    pub spawn_p50_us: u64,
    pub spawn_p99_us: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "actor:  {} connections open, {} accepted, {} handlers alive ({} started, {} exited normally), {} restarts, {} connections given up, {} spawn failures; restart latency p50 {} µs, p99 {} µs; handoff (spawn) per connection p50 {} µs, p99 {} µs",
            self.open,
            self.accepted,
            self.handlers_alive,
            self.handlers_started,
            self.normal_exits,
            self.restarts,
            self.given_up,
            self.spawn_failures,
            self.restart_p50_us,
            self.restart_p99_us,
            self.spawn_p50_us,
            self.spawn_p99_us
        )
    }
}

/// The actor server's counters, if it runs.
pub fn stats() -> Option<Stats> {
    let shared = SERVER.lock().clone()?;
    let (restart_p50_us, restart_p99_us) = percentiles_us(&shared.latencies);
    let (spawn_p50_us, spawn_p99_us) = percentiles_us(&shared.spawns);
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    Some(Stats {
        open: shared.service.stats().open,
        accepted: load(&shared.accepted),
        handlers_alive: load(&shared.handlers_alive),
        handlers_started: load(&shared.handlers_started),
        normal_exits: load(&shared.normal_exits),
        restarts: load(&shared.restarts),
        given_up: load(&shared.given_up),
        spawn_failures: load(&shared.spawn_failures),
        restart_p50_us,
        restart_p99_us,
        spawn_p50_us,
        spawn_p99_us,
    })
}

/// p50 and p99 of the samples (ns), in µs.
fn percentiles_us(samples: &IrqLock<Vec<u64>>) -> (u64, u64) {
    let mut samples = samples.lock().clone();
    samples.sort_unstable();
    let percentile =
        |p: usize| if samples.is_empty() { 0 } else { samples[(samples.len() - 1) * p / 100] / 1000 };
    (percentile(50), percentile(99))
}

/// Keeps a sample, up to [`LATENCY_SAMPLES`].
fn record(samples: &IrqLock<Vec<u64>>, nanos: u64) {
    let mut samples = samples.lock();
    if samples.len() < LATENCY_SAMPLES {
        samples.push(nanos);
    }
}

/// Starts the supervisor and the acceptor.
pub fn start(service: Service, bounds: Bounds, chaos: bool, restart_period_s: u64) -> Counters {
    let shared = Arc::new(Shared {
        service,
        chaos,
        intensity: Intensity { max_restarts: MAX_RESTARTS, period_ns: restart_period_s * 1_000_000_000 },
        pending: IrqLock::new(VecDeque::new()),
        supervisor: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        handlers_alive: AtomicU64::new(0),
        handlers_started: AtomicU64::new(0),
        normal_exits: AtomicU64::new(0),
        restarts: AtomicU64::new(0),
        given_up: AtomicU64::new(0),
        spawn_failures: AtomicU64::new(0),
        latencies: IrqLock::new(Vec::new()),
        spawns: IrqLock::new(Vec::new()),
    });
    *SERVER.lock() = Some(shared.clone());
    let priority = Priority::new(PRIORITY).expect("valid");
    let supervisor = shared.clone();
    match sched::spawn("actor-sup", priority, 32 * 1024, move || supervise(supervisor)) {
        Ok(thread) => shared.supervisor.store(thread.to_bits() + 1, Ordering::Release),
        Err(error) => log::error!("actor: cannot start the supervisor: {error:?}"),
    }
    let acceptor = shared.clone();
    if let Err(error) =
        sched::spawn("actor-accept", priority, 32 * 1024, move || accept_loop(acceptor, bounds))
    {
        log::error!("actor: cannot start the acceptor: {error:?}");
    }
    Counters(shared)
}

/// ranch's acceptor: takes connections and hands them to the supervisor.
fn accept_loop(shared: Arc<Shared>, bounds: Bounds) {
    let Bounds { max_connections, backlog } = bounds;
    let listener = match shared.service.listen(ECHO_PORT, backlog, max_connections, 0) {
        Ok(listener) => listener,
        Err(error) => return log::error!("actor: cannot listen on port {ECHO_PORT}: {error:?}"),
    };
    log::info!(
        "actor: listening; a connection's handler restarts at most {} times within {} s",
        shared.intensity.max_restarts,
        shared.intensity.period_ns / 1_000_000_000
    );
    loop {
        let stream = match shared.service.accept(listener, None) {
            Ok(stream) => stream,
            Err(error) => return log::error!("actor: accept failed: {error:?}"),
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        // Bounded by the listener's cap: one entry per open connection.
        shared.pending.lock().push_back(stream);
        let supervisor = shared.supervisor.load(Ordering::Acquire);
        if supervisor != 0 {
            sched::unpark(ThreadRef::from_bits(supervisor - 1));
        }
    }
}

/// One connection under supervision: its socket and its handler.
struct Connection {
    socket: SocketId,
    /// One transient child: the handler.
    policy: Supervisor<(), u32>,
}

/// The connection supervisor: starts a handler for each new connection,
/// and decides on each handler's death.
fn supervise(shared: Arc<Shared>) {
    // By the running handler's task id.
    let mut connections: BTreeMap<u32, Connection> = BTreeMap::new();
    loop {
        for death in sched::take_monitored_deaths() {
            let Some(mut connection) = connections.remove(&death.thread.tid()) else { continue };
            shared.handlers_alive.fetch_sub(1, Ordering::Relaxed);
            let exit = if death.exit_code == Some(0) { Exit::Normal } else { Exit::Abnormal };
            let now = time::now_ns();
            let mut actions = connection.policy.exited(death.thread.tid(), exit, now);
            actions.extend(connection.policy.poll(now));
            if actions.contains(&Action::Terminate) {
                shared.given_up.fetch_add(1, Ordering::Relaxed);
                log::warn!("actor: a connection's handler crashed too often; connection reset");
                let _ = shared.service.reset(connection.socket);
            } else if actions.iter().any(|action| matches!(action, Action::Start { .. })) {
                if let Some(tid) = start_handler(&shared, &mut connection, now) {
                    shared.restarts.fetch_add(1, Ordering::Relaxed);
                    record(&shared.latencies, time::now_ns().saturating_sub(death.at_ns));
                    connections.insert(tid, connection);
                }
            } else {
                // A normal end: close what the handler left open (a stale
                // handle if it closed the socket itself).
                shared.normal_exits.fetch_add(1, Ordering::Relaxed);
                match shared.service.close(connection.socket) {
                    Ok(()) | Err(SocketError::NoSuchSocket) => {}
                    Err(error) => log::warn!("actor: closing a connection: {error:?}"),
                }
            }
        }
        loop {
            let Some(socket) = shared.pending.lock().pop_front() else { break };
            let spec = ChildSpec { name: HANDLER_NAME, restart: Restart::Transient, start: () };
            let policy = Supervisor::new(Strategy::OneForOne, shared.intensity, Backoff::NONE, vec![spec]);
            let mut connection = Connection { socket, policy };
            connection.policy.start();
            let taken = time::now_ns();
            if let Some(tid) = start_handler(&shared, &mut connection, taken) {
                record(&shared.spawns, time::now_ns() - taken);
                connections.insert(tid, connection);
            }
        }
        // A death or a connection since the checks above left a permit.
        sched::park(None);
    }
}

/// Starts a handler task on `connection`'s socket; on failure the
/// connection is reset and counted.
fn start_handler(shared: &Shared, connection: &mut Connection, now: u64) -> Option<u32> {
    let socket = connection.socket;
    let limits = Limits { quota_frames: HANDLER_QUOTA_FRAMES, cpu_budget_ns: None };
    let chaos = if shared.chaos { ",chaos" } else { "" };
    let started =
        task::run_with(HANDLER_NAME, PROGRAM, limits, sched::Owner::Monitor(sched::current()), |task| {
            // Its mailbox first, then the connection in it: a message
            // from the kernel the handler takes by selective receive.
            let mailbox = task::mailbox::create(task, HANDLER_MAILBOX)?;
            let handle = task::socket::lend(task, socket)?;
            task::mailbox::deliver_kernel_message(mailbox, CONNECTION_TAG, &handle.to_le_bytes())?;
            Ok(format!("{mailbox}{chaos}"))
        });
    match started {
        Ok(thread) => {
            connection.policy.started(0, Some(thread.tid()), now);
            shared.handlers_started.fetch_add(1, Ordering::Relaxed);
            shared.handlers_alive.fetch_add(1, Ordering::Relaxed);
            Some(thread.tid())
        }
        Err(error) => {
            shared.spawn_failures.fetch_add(1, Ordering::Relaxed);
            log::warn!("actor: no handler for a connection ({error:?}); connection reset");
            let _ = shared.service.reset(socket);
            None
        }
    }
}
