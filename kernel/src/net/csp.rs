//! The CSP echo server (`model=csp`), Go style: an acceptor thread takes
//! connections from the socket service and hands each over a **bounded
//! channel** to a connection thread, which echoes it with blocking reads
//! and writes — a blocked call parks only that thread.
//!
//! **Threads: an elastic pool capped at the connection cap.** A connection
//! thread serves one connection at a time, then waits on the channel for
//! the next; the acceptor spawns a new one only when none is idle, and a
//! thread idle for [`IDLE_EXIT`] exits. So there is a thread per open
//! connection (as with a goroutine per connection: a slow connection never
//! holds up another) but no spawn per connection under steady churn, and
//! never more threads than `max_connections`. `idle` counts idle threads
//! not yet promised a connection; the acceptor claims one before it sends,
//! and a thread exits only if it can take itself off that count, so every
//! connection sent has a thread that will receive it. The channel's
//! capacity is the listen backlog: if it fills, the acceptor blocks and the
//! listener's backlog and cap take over (backpressure is implicit).
//!
//! **Memory per connection**: a [`CONNECTION_STACK`] stack (frames, not
//! heap) with the read buffer on it, the thread's table entry and FPU
//! state ([`THREAD_HEAP_BYTES`] of heap), and the service's staging buffers.
//!
//! **Failure isolation (chaos)**: every thread of the server is spawned
//! supervised. A CPU fault in any of them (with `chaos=on`, a connection
//! carrying `TENFOLD-CRASH`) kills that thread and wakes the supervisor,
//! which then terminates the *whole* program, as an unrecovered panic ends
//! a Go program: it kills the program's other threads, resets every
//! connection it had (counted as lost), and starts it again. The kernel and
//! the network thread run on. The killed threads held no lock (the
//! service's and the heap's locks are only held with interrupts off, so a
//! thread is never stopped inside them); what they owned on the heap
//! (their channel ends) is leaked, a few hundred bytes per crash.
//!
//! `TENFOLD-BLOCK` and `TENFOLD-SPIN` ([`super::stall`]) block or spin the
//! connection's own thread: the others keep being served.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use tenfold_net::chaos::MarkerScanner;
use tenfold_net::echo::ECHO_PORT;
use tenfold_net::service::{SocketError, SocketId};
use tenfold_runtime::sched::Priority;

use super::{Bounds, Service};
use crate::arch::IrqLock;
use crate::sched::{self, ThreadRef};
use crate::sync;

/// A connection thread's stack: its frames and a [`READ_BUFFER`].
pub const CONNECTION_STACK: u64 = 16 * 1024;
/// Heap a connection thread takes: its thread table entry, FPU save area
/// and name (measured with the shell's `mem`: see the README).
pub const THREAD_HEAP_BYTES: usize = 1024;
/// Bytes one read takes (on the connection thread's stack).
const READ_BUFFER: usize = 2048;
/// An idle connection thread exits after this long.
const IDLE_EXIT: Duration = Duration::from_secs(5);
/// Priority of the server's threads (the network thread has 28).
const PRIORITY: u8 = 20;

/// The server's counters for the shell's `net`.
#[derive(Clone)]
pub struct Counters(Service);

impl Counters {
    /// Connections open and accepted in all (across restarts).
    pub fn connections(&self) -> (usize, u64) {
        let stats = self.0.stats();
        (stats.open, stats.accepted)
    }
}

/// Starts the supervisor, which starts the server (and restarts it after a
/// crash).
pub fn start(service: Service, bounds: Bounds, chaos: bool) -> Counters {
    let counters = Counters(service.clone());
    let spawned =
        sched::spawn("csp-supervisor", Priority::new(PRIORITY).expect("valid"), 32 * 1024, move || {
            supervise(service, bounds, chaos)
        });
    if let Err(error) = spawned {
        log::error!("csp: cannot start the supervisor: {error:?}");
    }
    counters
}

/// One run of the server program: its threads and its sockets' group.
struct Program {
    service: Service,
    bounds: Bounds,
    chaos: bool,
    /// The sockets' group: the run's number.
    group: u32,
    supervisor: ThreadRef,
    /// Ids of the program's live threads.
    threads: IrqLock<Vec<u32>>,
    /// Connection threads alive, and idle ones not promised a connection.
    live: AtomicUsize,
    idle: AtomicUsize,
}

impl Program {
    fn spawn(self: &Arc<Self>, name: &str, entry: impl FnOnce() + Send + 'static) -> bool {
        let priority = Priority::new(PRIORITY).expect("valid");
        // Registered under the lock the supervisor kills under, so no
        // thread of a dead program escapes it.
        let mut threads = self.threads.lock();
        match sched::spawn_supervised(name, priority, CONNECTION_STACK, self.supervisor, entry) {
            Ok(thread) => {
                threads.push(thread.tid());
                true
            }
            Err(error) => {
                log::warn!("csp: cannot start a thread: {error:?}");
                false
            }
        }
    }

    fn forget_current(&self) {
        let me = sched::current().tid();
        self.threads.lock().retain(|&tid| tid != me);
    }

    /// Takes one idle thread off the count (it will get a connection).
    fn claim_idle(&self) -> bool {
        self.idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |idle| idle.checked_sub(1)).is_ok()
    }
}

fn supervise(service: Service, bounds: Bounds, chaos: bool) {
    let supervisor = sched::current();
    let mut restarts = 0u32;
    loop {
        let program = Arc::new(Program {
            service: service.clone(),
            bounds,
            chaos,
            group: restarts + 1,
            supervisor,
            threads: IrqLock::new(Vec::new()),
            live: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
        });
        let acceptor = program.clone();
        if !program.spawn("csp-accept", move || accept_loop(acceptor)) {
            return;
        }
        while sched::take_faults() == 0 {
            sched::park(None);
        }
        // Whole-program termination: every thread, every connection.
        let threads = core::mem::take(&mut *program.threads.lock());
        let killed = threads.iter().filter(|&&tid| sched::kill(tid).is_ok()).count();
        let lost = service.close_group(program.group);
        restarts += 1;
        log::error!(
            "csp: the server crashed (a fault in one of its threads): {} threads ended, {lost} connections lost; restart {restarts}",
            killed + 1
        );
    }
}

fn accept_loop(program: Arc<Program>) {
    let Bounds { max_connections, backlog } = program.bounds;
    let service = &program.service;
    // A restart may find the dead run's listener still being torn down.
    let mut tries = 0;
    let listener = loop {
        match service.listen(ECHO_PORT, backlog, max_connections, program.group) {
            Ok(listener) => break listener,
            Err(SocketError::AddressInUse) if tries < 100 => {
                tries += 1;
                sched::sleep(Duration::from_millis(10));
            }
            Err(error) => {
                log::error!("csp: cannot listen on port {ECHO_PORT}: {error:?}");
                program.forget_current();
                return;
            }
        }
    };
    log::info!("csp: listening (run {})", program.group);
    let (connections, waiting) = sync::channel::<SocketId>(backlog);
    loop {
        let stream = match service.accept(listener, None) {
            Ok(stream) => stream,
            Err(error) => {
                log::error!("csp: accept failed: {error:?}");
                break;
            }
        };
        if !program.claim_idle() {
            let started = program.live.load(Ordering::Acquire) < max_connections && {
                let (worker, receiver) = (program.clone(), waiting.clone());
                program.spawn("csp-conn", move || connection_thread(worker, receiver))
            };
            if !started {
                log::warn!("csp: no thread for another connection; closed");
                let _ = service.close(stream);
                continue;
            }
            program.live.fetch_add(1, Ordering::AcqRel);
        }
        // Blocks while the channel is full: the listener's backlog and
        // cap hold the rest.
        if let Err(error) = connections.send(stream) {
            let _ = service.close(error.0);
        }
    }
    program.forget_current();
}

fn connection_thread(program: Arc<Program>, connections: sync::Receiver<SocketId>) {
    loop {
        match connections.recv_timeout(IDLE_EXIT) {
            Ok(stream) => {
                echo(&program, stream);
                program.idle.fetch_add(1, Ordering::AcqRel);
            }
            // Exit only if no connection was promised to an idle thread
            // meanwhile (this one may be the thread it goes to).
            Err(tenfold_runtime::sync::RecvTimeoutError::Timeout) if !program.claim_idle() => {}
            Err(_) => break,
        }
    }
    program.live.fetch_sub(1, Ordering::AcqRel);
    program.forget_current();
}

/// Echoes one connection with blocking calls until the peer finishes (then
/// our FIN follows the echo) or the connection fails.
fn echo(program: &Program, stream: SocketId) {
    let service = &program.service;
    let mut buffer = [0u8; READ_BUFFER];
    let mut scanner = MarkerScanner::default();
    loop {
        let count = match service.read(stream, &mut buffer, None) {
            Ok(0) | Err(_) => break,
            Ok(count) => count,
        };
        if program.chaos
            && let Some(marker) = scanner.feed(&buffer[..count])
            && !super::stall::stall(marker)
        {
            super::stall::crash("connection thread");
        }
        if service.write_all(stream, &buffer[..count], None).is_err() {
            break;
        }
    }
    let _ = service.shutdown(stream);
    let _ = service.close(stream);
}
