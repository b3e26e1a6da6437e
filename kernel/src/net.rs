//! The network thread: the event loop (reactor model) that serves TCP echo.
//!
//! One kernel thread owns the NIC, the smoltcp stack and an executor. Each
//! iteration: acknowledge the card, move received frames into the stack's
//! device, run one executor turn (timers → poll the stack → run the tasks the
//! socket wakers made ready → close), poll again so the tasks' writes leave,
//! hand frames to the card. With nothing to do it unmasks the card's
//! interrupt and parks until the interrupt, a waker from another thread, or
//! the earliest deadline (an executor timer or smoltcp's `poll_at`: a
//! retransmission, a keep-alive). Nothing polls on a fixed tick.
//!
//! The loop runs the socket service's engine (`tenfold_net::service`)
//! after each stack poll, whatever the model: the service backs the
//! sockets of ring-3 tasks (`task::socket`) and, with `model=csp` and
//! `model=actor`, the echo server itself — the CSP server ([`csp`]) on
//! kernel threads of its own, the actor server ([`actor`]) on a ring-3 task
//! per connection. Then the loop serves no echo tasks itself.
//!
//! **Supervised.** The network thread is started by a supervisor thread
//! (`net-sup`) that owns everything the loop uses ([`EventLoop`]); the loop
//! only borrows it. A CPU fault in the loop (with `chaos=on` and the
//! reactor, a connection carrying `TENFOLD-CRASH` faults inside its echo
//! task) kills the network thread — Node's failure mode: the one event
//! loop dies and every connection in flight with it. The supervisor then
//! drops that run's stack, tasks and buffers, tells the socket service its
//! connections are gone, and starts a new loop with the same card; at most
//! [`MAX_RESTARTS`] times in [`RESTART_WINDOW_NS`], then networking stays off
//! and the kernel runs on.

mod actor;
mod csp;
mod stall;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::str::FromStr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tenfold_net::device::{DeviceStats, FrameDevice, QueueLimits};
use tenfold_net::echo::{self, ECHO_PORT, EchoMode};
use tenfold_net::smoltcp::time::Instant;
use tenfold_net::smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use tenfold_net::stack::{NetConfig, NetStack, StackStats};
use tenfold_net::tcp::TcpListener;
use tenfold_runtime::executor::{Executor, Limits};
use tenfold_runtime::sched::Priority;

use crate::arch::IrqLock;
use crate::drivers::virtio_net::{NicStats, VirtioNic};
use crate::params::{Model, Params};
use crate::{sched, time};

/// Defaults for the echo server's bounds.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
const DEFAULT_BACKLOG: usize = 16;
/// The most bytes one echo step moves (on the network thread's stack).
const ECHO_BUFFER: usize = tenfold_net::echo::ECHO_CHUNK;

/// What the shell's `net` shows, refreshed by the network thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    pub nic: NicStats,
    pub device: DeviceStats,
    pub polls: u64,
    pub loop_iterations: u64,
    pub tasks: usize,
    pub connections: usize,
    pub accepted: u64,
    pub buffered_bytes: usize,
    /// The stack's counters (frames, egress visits, deadlines, sweeps).
    pub stack: StackStats,
    /// The network thread's cycles by layer.
    pub phases: PhaseCycles,
    /// TCP sockets, and connections in the demultiplexing table.
    pub sockets: usize,
    pub flows: usize,
    /// Handshakes in progress on the echo port (the SYN cache).
    pub half_open: usize,
    /// SYNs held back because every listening socket was taken (backlog full).
    pub deferred_syns: u64,
    /// SYNs refused (reset) because the connection cap was reached.
    pub refused_syns: u64,
    /// SYNs refused (reset) because memory could not hold another connection.
    pub refused_for_memory: u64,
    /// Executor task polls and turns: polls per turn shows the cost per wake-up.
    pub task_polls: u64,
    pub turns: u64,
    /// Tasks the readiness layer woke because their socket became ready.
    pub readiness_wakes: u64,
    /// The interface address (`None` while waiting for DHCP).
    pub address: Option<Ipv4Cidr>,
    pub dhcp: bool,
}

static STATS: IrqLock<Option<NetStats>> = IrqLock::new(None);
static ITERATIONS: AtomicU64 = AtomicU64::new(0);
/// The network thread (slot << 32 | tid, plus one; 0 before it starts).
static NET_THREAD: AtomicU64 = AtomicU64::new(0);

/// The socket service, as kernel threads and system calls call it.
pub type Service = tenfold_net::service::SocketService<crate::sync::KernelThreads>;

/// The service, once the network thread runs (`None` without a network).
static SERVICE: IrqLock<Option<Service>> = IrqLock::new(None);

/// The socket service, if networking is up.
pub fn service() -> Option<Service> {
    SERVICE.lock().clone()
}

/// The actor server's counters (the `actor:` line of `net`), if it runs.
pub fn actor_stats() -> Option<impl core::fmt::Display> {
    actor::stats()
}

/// One TCP socket, for the shell's `sockets`.
#[derive(Clone, Debug)]
pub struct SocketInfo {
    /// A listening port's summary rather than a socket.
    pub port_summary: bool,
    pub state: &'static str,
    pub local: String,
    pub remote: String,
    /// Bytes received and not yet read by the server, and their buffer size.
    pub rx_queued: usize,
    pub rx_capacity: usize,
    /// Bytes written and not yet acknowledged by the peer.
    pub tx_queued: usize,
    pub tx_capacity: usize,
}

/// A ping asked for by the shell: target and count; the probes' lines come
/// back through `PING_LINES` (`None` marks the end).
static PING_REQUEST: IrqLock<Option<(Ipv4Address, u16)>> = IrqLock::new(None);
static PING_LINES: IrqLock<alloc::collections::VecDeque<Option<String>>> =
    IrqLock::new(alloc::collections::VecDeque::new());

/// The network thread, once it runs (networking is off before and without it).
fn net_thread() -> Option<sched::ThreadRef> {
    let thread = NET_THREAD.load(Ordering::Acquire);
    (thread != 0).then(|| sched::ThreadRef::from_bits(thread - 1))
}

/// Starts pinging `target` from the network thread; `false` if networking is off.
pub fn ping(target: Ipv4Address, count: u16) -> bool {
    let Some(thread) = net_thread() else { return false };
    {
        // Both at once: the network thread sees the request with no stale lines.
        let mut lines = PING_LINES.lock();
        lines.clear();
        *PING_REQUEST.lock() = Some((target, count));
    }
    sched::unpark(thread);
    true
}

/// The next line of the running ping: `Some(Some(line))`, `Some(None)` at
/// the end, `None` if nothing new yet.
pub fn ping_line() -> Option<Option<String>> {
    PING_LINES.lock().pop_front()
}

/// The event loop's clock for network tasks.
struct LoopTimer(tenfold_runtime::executor::Handle);

impl tenfold_net::ping::Timer for LoopTimer {
    fn now_us(&self) -> u64 {
        time::now_ns() / 1000
    }

    fn sleep_us(&self, micros: u64) -> impl core::future::Future<Output = ()> {
        self.0.sleep(core::time::Duration::from_micros(micros))
    }
}

fn start_ping(handle: &tenfold_runtime::executor::Handle, stack: &Rc<RefCell<NetStack>>) {
    let Some((target, count)) = PING_REQUEST.lock().take() else {
        return;
    };
    let timer = LoopTimer(handle.clone());
    let task = tenfold_net::ping::ping(stack.clone(), target, count, timer, move |probe| {
        let line = probe.describe(target);
        PING_LINES.lock().push_back(Some(line));
    });
    let spawned = handle.spawn(async move {
        task.await;
        PING_LINES.lock().push_back(None);
    });
    if spawned.is_err() {
        let mut lines = PING_LINES.lock();
        lines.push_back(Some(String::from("ping: no room for another task")));
        lines.push_back(None);
    }
}

/// A request from another thread, served by the network thread at its next
/// iteration (the stack belongs to that thread alone).
static SOCKETS_REQUESTED: AtomicBool = AtomicBool::new(false);
static SOCKETS: IrqLock<Option<Vec<SocketInfo>>> = IrqLock::new(None);

/// The TCP sockets, asked of the network thread; `None` if it does not
/// answer within a second (or networking is off).
pub fn sockets() -> Option<Vec<SocketInfo>> {
    let thread = net_thread()?;
    *SOCKETS.lock() = None;
    SOCKETS_REQUESTED.store(true, Ordering::Release);
    sched::unpark(thread);
    let deadline = time::now_ns() + 1_000_000_000;
    while time::now_ns() < deadline {
        if let Some(list) = SOCKETS.lock().take() {
            return Some(list);
        }
        sched::sleep(core::time::Duration::from_millis(1));
    }
    None
}

fn answer_sockets(stack: &NetStack) {
    // The listening port first: its free slots have no socket yet (one is
    // made for each SYN), its half-open and unaccepted ones are listed below.
    let port = stack.port_counts(ECHO_PORT);
    let listening = SocketInfo {
        port_summary: true,
        state: "LISTEN",
        local: format!("*:{ECHO_PORT}"),
        remote: format!(
            "{} slots free, {} half-open, {} to accept",
            port.free, port.half_open, port.completed
        ),
        rx_queued: 0,
        rx_capacity: 0,
        tx_queued: 0,
        tx_capacity: 0,
    };
    let list: Vec<SocketInfo> = core::iter::once(listening)
        .chain(stack.tcp_sockets().map(|(_, tcp)| SocketInfo {
            port_summary: false,
            state: state_name(tcp.state()),
            local: tcp.local_endpoint().map_or_else(|| format!("*:{ECHO_PORT}"), |e| format!("{e}")),
            remote: tcp.remote_endpoint().map_or_else(|| String::from("-"), |e| format!("{e}")),
            rx_queued: tcp.recv_queue(),
            rx_capacity: tcp.recv_capacity(),
            tx_queued: tcp.send_queue(),
            tx_capacity: tcp.send_capacity(),
        }))
        .collect();
    *SOCKETS.lock() = Some(list);
}

fn state_name(state: tenfold_net::smoltcp::socket::tcp::State) -> &'static str {
    use tenfold_net::smoltcp::socket::tcp::State;
    match state {
        State::Closed => "CLOSED",
        State::Listen => "LISTEN",
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RCVD",
        State::Established => "ESTABLISHED",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::CloseWait => "CLOSE-WAIT",
        State::Closing => "CLOSING",
        State::LastAck => "LAST-ACK",
        State::TimeWait => "TIME-WAIT",
    }
}

/// The last snapshot of the network counters, if networking is up.
pub fn stats() -> Option<NetStats> {
    *STATS.lock()
}

fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
}

fn config(params: &Params, mac: [u8; 6]) -> NetConfig {
    let mut config = NetConfig::qemu_user_net(mac);
    config.seed = crate::arch::cpu::random_seed();
    if let Some(text) = params.ip {
        match Ipv4Cidr::from_str(text) {
            _ if text == "dhcp" => config.dhcp = true,
            Ok(cidr) => config.address = cidr,
            Err(()) => log::error!("ip={text}: expected a.b.c.d/prefix; using {}", config.address),
        }
    }
    if let Some(text) = params.gateway {
        match Ipv4Address::from_str(text) {
            Ok(gateway) => config.gateway = Some(gateway),
            Err(_) => log::error!("gateway={text}: expected a.b.c.d; using {:?}", config.gateway),
        }
    }
    if let Some(nagle) = params.nagle {
        config.tcp.nagle = nagle;
    }
    if let Some(kib) = params.tcp_rx_kib {
        config.tcp.rx_buffer = kib * 1024;
    }
    if let Some(kib) = params.tcp_tx_kib {
        config.tcp.tx_buffer = kib * 1024;
    }
    if let Some(seconds) = params.idle_timeout_s {
        config.tcp.idle_timeout = (seconds > 0).then(|| core::time::Duration::from_secs(seconds));
    }
    if let Some(millis) = params.ack_delay_ms {
        config.tcp.ack_delay = (millis > 0).then(|| core::time::Duration::from_millis(millis));
    }
    config
}

/// Brings up the NIC and starts the network supervisor, which starts the
/// network thread; without a card the kernel runs on, networking off.
pub fn start(params: &Params) {
    let Some(nic) = VirtioNic::probe() else {
        log::warn!("no virtio-net card found: networking is off");
        return;
    };
    let config = config(params, nic.mac());
    let max_connections = params.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let backlog = params.backlog.unwrap_or(DEFAULT_BACKLOG);
    let mode = if params.echo_unbounded {
        log::warn!("echo=unbounded: per-connection memory is NOT bounded (backpressure demo)");
        EchoMode::Unbounded
    } else {
        EchoMode::Bounded { buffer: ECHO_BUFFER }
    };
    let server = Server {
        model: params.model,
        bounds: Bounds { max_connections, backlog },
        mode,
        chaos: params.chaos,
        actor_restart_period_s: params.actor_restart_period_s.unwrap_or(actor::DEFAULT_RESTART_PERIOD_S),
    };
    let spawned = sched::spawn("net-sup", Priority::new(28).expect("valid"), 128 * 1024, move || {
        supervise(nic, config, server)
    });
    if let Err(error) = spawned {
        log::error!("cannot start the network supervisor: {error:?}");
    }
}

/// The interface address as the server's log line gives it.
fn address_text(config: &NetConfig) -> String {
    if config.dhcp { String::from("(address by DHCP)") } else { format!("{}", config.address) }
}

/// The event loop's restart intensity (OTP's): more than this many
/// restarts within [`RESTART_WINDOW_NS`] and the supervisor gives up —
/// networking stays off, the kernel runs on.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW_NS: u64 = 10_000_000_000;

/// Everything the event loop owns, on the heap and owned by its
/// supervisor; the network thread only borrows it. When the loop dies of a
/// CPU fault its thread's stack is gone but this is not: the supervisor
/// drops the run (its tasks, the stack: every connection in flight is lost,
/// as when a Node process dies) and starts a new loop with the card and the
/// socket service's engine, which outlive runs.
struct EventLoop {
    nic: VirtioNic,
    engine: Engine,
    run: Option<Run>,
}

/// One run of the event loop. Fields drop in order: the tasks (which hold
/// the stack and the listener) before the listener, the stack last.
struct Run {
    executor: Executor,
    /// Kept here, not on the thread's stack: a dead thread's locals are
    /// never dropped, and a handle keeps the executor's core alive.
    handle: tenfold_runtime::executor::Handle,
    echo: Echo,
    stack: Rc<RefCell<NetStack>>,
}

/// The event loop's state as the supervisor hands it to a new network thread.
struct LoopPointer(*mut EventLoop);

// SAFETY: the state is used by one thread at a time — the network thread
// while it lives, the supervisor only once that thread is dead.
unsafe impl Send for LoopPointer {}

pub type Engine = tenfold_net::service::ServiceEngine<crate::sync::KernelThreads>;

/// The network supervisor: sets up what outlives the event loop (the socket
/// service, the csp or actor server on it), then runs the loop on a
/// supervised thread and, each time a fault kills it, recovers its state
/// and starts it again.
fn supervise(nic: VirtioNic, config: NetConfig, server: Server) {
    let me = sched::current();
    let notify = Arc::new(|| {
        if let Some(thread) = net_thread() {
            sched::unpark(thread);
        }
    });
    let (service, mut engine) = tenfold_net::service::SocketService::new(notify);
    let budget = memory_budget(&config.tcp, server.model);
    engine.set_budget(budget);
    *SERVICE.lock() = Some(service.clone());
    let address = address_text(&config);
    let Bounds { max_connections, backlog } = server.bounds;
    let counters = match server.model {
        Model::Csp => {
            log::info!(
                "echo server (csp) on {address} port {ECHO_PORT}: backlog {backlog}, at most {max_connections} connections, a thread each, {:?}",
                config.tcp
            );
            Some(ServerCounters::Csp(csp::start(service, server.bounds, server.chaos)))
        }
        Model::Actor => {
            log::info!(
                "echo server (actor) on {address} port {ECHO_PORT}: backlog {backlog}, at most {max_connections} connections, a ring-3 task each, {:?}",
                config.tcp
            );
            Some(ServerCounters::Actor(actor::start(
                service,
                server.bounds,
                server.chaos,
                server.actor_restart_period_s,
            )))
        }
        Model::Reactor => None,
    };
    let state = Box::into_raw(Box::new(EventLoop { nic, engine, run: None }));
    let mut restarts: VecDeque<u64> = VecDeque::new();
    for run in 1u64.. {
        let pointer = LoopPointer(state);
        let counters = counters.clone();
        let spawned =
            sched::spawn_supervised("net", Priority::new(28).expect("valid"), 512 * 1024, me, move || {
                let pointer = pointer;
                // SAFETY: the supervisor does not touch the state while this
                // thread lives (it parks until the thread has died).
                run_loop(unsafe { &mut *pointer.0 }, Setup { config, server, budget, counters }, run);
            });
        if let Err(error) = spawned {
            return log::error!("cannot start the network thread: {error:?}; networking is off");
        }
        while sched::take_faults() == 0 {
            sched::park(None);
        }
        // The fault was contained by killing the thread before it was
        // counted: the state is the supervisor's alone now.
        NET_THREAD.store(0, Ordering::Release);
        let died = time::now_ns();
        // SAFETY: as above; the network thread is dead.
        let lost = recover(unsafe { &mut *state });
        while restarts.front().is_some_and(|&at| died - at > RESTART_WINDOW_NS) {
            restarts.pop_front();
        }
        restarts.push_back(died);
        if restarts.len() > MAX_RESTARTS {
            return log::error!(
                "the event loop died (a fault in its thread), {lost} connections lost; more than {MAX_RESTARTS} restarts in {} s: networking is off",
                RESTART_WINDOW_NS / 1_000_000_000
            );
        }
        log::error!("the event loop died (a fault in its thread): {lost} connections lost; restart {run}");
    }
}

/// Takes back a dead loop's state: drops its run and tells the engine its
/// stack is gone. Returns the connections lost.
fn recover(state: &mut EventLoop) -> usize {
    let mut lost = 0;
    if let Some(run) = state.run.take() {
        // Dropping runs destructors that borrow the stack and the executor.
        // A thread that died inside such a borrow left it taken for good;
        // dropping would then panic, so that run is leaked (and said so).
        if run.stack.try_borrow_mut().is_err() || !run.executor.can_drop() {
            log::error!("the event loop died inside the stack or its executor: its memory is leaked");
            core::mem::forget(run);
        } else {
            if let Echo::Reactor(listener) = &run.echo {
                lost += listener.active();
            }
            drop(run);
        }
    }
    lost + state.engine.stack_lost()
}

/// Hands queued frames to the card (with each frame's segmentation request)
/// until it is full, then rings its doorbell once for the batch.
fn flush(nic: &mut VirtioNic, stack: &mut NetStack) {
    while let Some(frame) = stack.device.pop_transmit() {
        if nic.transmit(&frame, frame.segment_size()) {
            stack.device.recycle(frame);
        } else {
            stack.device.unpop_transmit(frame);
            break;
        }
    }
    nic.notify_transmit();
}

/// The echo server's bounds, in every model.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_connections: usize,
    pub backlog: usize,
}

/// The echo server the network thread sets up, and its bounds.
#[derive(Clone, Copy, Debug)]
struct Server {
    model: Model,
    bounds: Bounds,
    mode: EchoMode,
    chaos: bool,
    actor_restart_period_s: u64,
}

/// The csp or actor server's counters: they outlive the event loop's runs.
#[derive(Clone)]
enum ServerCounters {
    Csp(csp::Counters),
    Actor(actor::Counters),
}

impl ServerCounters {
    /// Connections open, and accepted in all.
    fn connections(&self) -> (usize, u64) {
        match self {
            ServerCounters::Csp(counters) => counters.connections(),
            ServerCounters::Actor(counters) => counters.connections(),
        }
    }
}

/// How the echo server counts, for `net`: the reactor's listener (this
/// run's), or the csp or actor server's on the socket service.
enum Echo {
    Reactor(TcpListener),
    Service(ServerCounters),
}

/// What every run of the event loop starts from, as the supervisor set it
/// up: the stack's configuration, the server and its memory budget, and
/// the csp or actor server's counters (`None`: the reactor's listener and
/// tasks are each run's own).
struct Setup {
    config: NetConfig,
    server: Server,
    budget: tenfold_net::listener::MemoryBudget,
    counters: Option<ServerCounters>,
}

/// The event loop: run `run` of the network thread, on the supervisor's
/// `state`.
fn run_loop(state: &mut EventLoop, setup: Setup, run: u64) {
    let Setup { config, server, budget, counters } = setup;
    let Server { model, bounds: Bounds { max_connections, backlog }, mode, chaos, .. } = server;
    let me = sched::current();
    let EventLoop { nic, engine, run: slot } = state;
    nic.set_waiter(me);
    NET_THREAD.store(me.to_bits() + 1, Ordering::Release);
    let address = address_text(&config);
    let stack = Rc::new(RefCell::new(NetStack::new(
        config,
        FrameDevice::with_offloads(QueueLimits::default(), nic.offloads()),
        instant(time::now_ns()),
    )));
    let executor =
        Executor::new(Limits { max_tasks: max_connections + 16 }, Arc::new(move || sched::unpark(me)));
    let handle = executor.handle();
    let echo = match counters {
        Some(counters) => Echo::Service(counters),
        None => {
            let listener = match TcpListener::bind(&stack, ECHO_PORT, backlog, max_connections) {
                Ok(listener) => listener,
                Err(error) => return log::error!("echo: cannot listen on port {ECHO_PORT}: {error:?}"),
            };
            listener.set_budget(budget);
            let spawner = handle.clone();
            let on_marker = chaos.then_some(stall::on_reactor_marker as echo::OnMarker);
            let server =
                echo::serve(listener.clone(), mode, on_marker, move |task| spawner.spawn(task).is_ok());
            if let Err(error) = handle.spawn(server) {
                return log::error!("echo: cannot start the accept task: {error:?}");
            }
            log::info!(
                "echo server (event loop) on {address} port {ECHO_PORT} (run {run}): backlog {backlog}, at most {max_connections} connections, {mode:?}, {:?}",
                stack.borrow().config().tcp
            );
            Echo::Reactor(listener)
        }
    };
    drop(address);
    let Run { executor, handle, echo, stack } = slot.insert(Run { executor, handle, echo, stack });
    let (handle, echo, stack) = (&*handle, &*echo, &*stack);
    let mut phases = PhaseCycles::default();
    loop {
        ITERATIONS.fetch_add(1, Ordering::Relaxed);
        let started = cycles();
        nic.acknowledge();
        {
            let mut net = stack.borrow_mut();
            if let Echo::Reactor(listener) = &echo {
                listener.refresh(&mut net);
            }
            // Only what the stack's queue can take; the rest waits in the ring.
            let room = net.device.receive_room();
            nic.receive(room, |frame| {
                net.device.push_received(frame);
            });
        }
        let received = cycles();
        phases.driver += received - started;
        let now = time::now_ns();
        // Cycles in stack polls and in flushes, inside and after the turn.
        let mut io = PhaseCycles::default();
        let turn = executor.turn(now, &mut |now| {
            poll_and_flush(&mut stack.borrow_mut(), nic, instant(now), &mut io);
        });
        phases.tasks += (cycles() - received).saturating_sub(io.stack + io.driver);
        let poll_at = {
            let mut net = stack.borrow_mut();
            let now = instant(time::now_ns());
            // Tasks wrote or closed something: let it leave now.
            if turn.ran > 0 {
                poll_and_flush(&mut net, nic, now, &mut io);
            }
            // The socket service's callers: staging buffers to and from the
            // sockets, then whatever that wrote leaves too.
            // The echo server's sockets are the service's in csp and actor
            // (a pass every iteration, as the listeners need); with the
            // reactor only tasks' sockets are, synced when they have work.
            if model != Model::Reactor || engine.has_work() {
                let started = cycles();
                let wrote = engine.run(&mut net);
                phases.tasks += cycles() - started;
                if wrote {
                    poll_and_flush(&mut net, nic, now, &mut io);
                }
            }
            net.poll_at(now)
        };
        phases.stack += io.stack;
        phases.driver += io.driver;
        phases.busy += cycles() - started;
        publish(nic, &stack.borrow(), executor, echo, phases);
        if SOCKETS_REQUESTED.swap(false, Ordering::AcqRel) {
            answer_sockets(&stack.borrow());
        }
        start_ping(handle, stack);
        // Frames still in the ring: go on only if the stack can take them
        // (else the transmit-completion interrupt will wake us).
        let room_left = stack.borrow().device.receive_room() > 0;
        let service_work = engine.has_work();
        if turn.more_ready || service_work || (nic.has_received() && room_left) {
            continue;
        }
        let now = time::now_ns();
        let stack_deadline = poll_at.map(|at| (at.total_micros().max(0) as u64) * 1000);
        let deadline = match (turn.next_timer_ns, stack_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if deadline.is_some_and(|deadline| deadline <= now) {
            continue;
        }
        nic.unmask_interrupt();
        sched::park(deadline);
    }
}

/// What a connection costs and what must stay free, for the listener's
/// memory bound: the two socket buffers and about 4 KiB for the echo task,
/// smoltcp's socket state and the readiness entry (the echo itself holds no
/// buffer) — in the CSP model the service's staging buffers and the
/// connection thread's heap part instead of the task; 1/16 of the heap (at
/// least 2 MiB) stays for frames in flight and everything else.
fn memory_budget(tcp: &tenfold_net::stack::TcpTuning, model: Model) -> tenfold_net::listener::MemoryBudget {
    let heap_max = crate::memory::stats().heap.max_bytes as usize;
    let server = match model {
        Model::Csp => {
            tenfold_net::service::staging_bytes(tcp.rx_buffer, tcp.tx_buffer) + csp::THREAD_HEAP_BYTES
        }
        Model::Actor => {
            tenfold_net::service::staging_bytes(tcp.rx_buffer, tcp.tx_buffer) + actor::TASK_HEAP_BYTES
        }
        Model::Reactor => 0,
    };
    tenfold_net::listener::MemoryBudget {
        headroom: || crate::memory::allocatable_bytes() as usize,
        per_connection: tcp.rx_buffer + tcp.tx_buffer + 4096 + server,
        reserve: (heap_max / 16).max(2 << 20),
    }
}

/// The network thread's CPU time by layer, in TSC cycles: where a request's
/// cost goes (the shell's `net` divides it per received frame).
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseCycles {
    /// Acknowledging the card, moving frames from and to its rings.
    pub driver: u64,
    /// smoltcp and the demultiplexer (stack polls).
    pub stack: u64,
    /// The echo tasks and the executor.
    pub tasks: u64,
    /// Every loop iteration, from its start to the park (the three above,
    /// the counters and the bookkeeping).
    pub busy: u64,
}

fn cycles() -> u64 {
    crate::arch::cpu::timestamp_counter()
}

/// Polls the stack, then hands its frames to the card, adding the cycles
/// each took to `phases`.
fn poll_and_flush(net: &mut NetStack, nic: &mut VirtioNic, now: Instant, phases: &mut PhaseCycles) {
    let started = cycles();
    net.poll(now);
    let polled = cycles();
    flush(nic, net);
    phases.stack += polled - started;
    phases.driver += cycles() - polled;
}

/// Publishes the counters for the shell. Summing the socket buffers visits
/// every socket, so that part is refreshed at most every 100 ms.
fn publish(nic: &VirtioNic, stack: &NetStack, executor: &Executor, echo: &Echo, phases: PhaseCycles) {
    let (connections, accepted) = match echo {
        Echo::Reactor(listener) => (listener.active(), listener.stats().accepted),
        Echo::Service(counters) => counters.connections(),
    };
    static BUFFERED: AtomicU64 = AtomicU64::new(0);
    static BUFFERED_AT: AtomicU64 = AtomicU64::new(0);
    let now = time::now_ns();
    if now - BUFFERED_AT.load(Ordering::Relaxed) > 100_000_000 {
        BUFFERED.store(stack.buffered_bytes() as u64, Ordering::Relaxed);
        BUFFERED_AT.store(now, Ordering::Relaxed);
    }
    let tasks = executor.stats();
    let syns = stack.admission_stats(ECHO_PORT);
    let (sockets, flows) = stack.socket_counts();
    let snapshot = NetStats {
        nic: nic.stats,
        device: stack.device.stats,
        polls: stack.stats.polls,
        loop_iterations: ITERATIONS.load(Ordering::Relaxed),
        tasks: tasks.tasks_alive,
        task_polls: tasks.polls,
        turns: tasks.turns,
        connections,
        accepted,
        buffered_bytes: BUFFERED.load(Ordering::Relaxed) as usize,
        stack: stack.stats,
        phases,
        sockets,
        flows,
        half_open: stack.port_counts(ECHO_PORT).half_open,
        deferred_syns: syns.deferred,
        refused_syns: syns.refused_at_cap,
        refused_for_memory: syns.refused_for_memory,
        readiness_wakes: stack.readiness_stats().1,
        address: stack.address(),
        dhcp: stack.config().dhcp,
    };
    *STATS.lock() = Some(snapshot);
}
