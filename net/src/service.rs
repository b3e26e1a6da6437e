//! The socket service: TCP sockets usable from any thread, with blocking
//! semantics (a blocking call parks only its caller), over a stack that
//! only the network thread ever touches.
//!
//! **Design: staging buffers completed by the network thread.** Each socket
//! has a small receive and send *staging* buffer in a table shared by the
//! callers and the network thread. A caller copies bytes out of (into) its
//! socket's staging buffer under the table's lock; if there is nothing to
//! read (no room to write) it leaves its thread in the socket's waiters,
//! drops the lock and parks. The network thread's [`ServiceEngine`] moves
//! bytes between the staging buffers and smoltcp's socket buffers whenever
//! a socket becomes ready (the stack's readiness registry names it) or a
//! caller *kicks* it (wrote, drained a full buffer, shut down, closed), and
//! unparks the waiters whose condition it changed.
//!
//! Why not the stack under a lock taken by callers: the reactor and the
//! packet path would pay for that lock on every borrow (today the stack is
//! a plain `RefCell` on one thread), a caller preempted while holding it
//! would stall the packet path, and the stack's readiness wakers would run
//! on arbitrary threads. Here the packet path is untouched: with no service
//! socket the engine costs one empty check per loop iteration. Why not one
//! request message per operation: an echo would cost a request *and* a
//! reply round trip through the network thread for every read and every
//! write; with staging, a read that finds bytes and a write that finds room
//! complete in the caller, without a switch. The price is the staging
//! memory and one copy more per byte. A staging buffer starts at 1/8 of
//! its socket's TCP buffer (at least 512 bytes), which request-sized
//! traffic never outgrows, and grows (doubling) up to half of it while a
//! stream keeps it full — more bytes per thread switch for bulk transfers —
//! only while the heap keeps its reserve beyond the growth
//! ([`MemoryBudget`]); refused, the stream goes on in the room it has.
//!
//! **Locking.** One spin lock over the whole table, taken only inside
//! [`Platform::critical`] (interrupts off in the kernel), for a bounded
//! copy, and never across a park: on one CPU a finer lock would buy nothing.
//! Threads to wake are collected and unparked after the lock is released.
//! The stack itself is never locked: only the engine touches it.
//!
//! **Fairness.** The engine serves the kicked and ready sockets in the order
//! they were queued, each at most once per pass, and moves at most one
//! staging buffer's worth per socket and direction per pass.
//!
//! **Handles** ([`SocketId`]) carry a generation: once a socket is closed its
//! handle fails with [`SocketError::NoSuchSocket`], also after the slot is
//! reused. Every error is a value; nothing a caller or a peer does panics.
//!
//! The API is independent of who calls it: a caller names its thread
//! through [`Platform::current`] and copies its own bytes in and out, so the
//! same service backs kernel threads now and ring-3 system calls later.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::task::Waker;

use smoltcp::socket::tcp::State;
use tenfold_runtime::sync::{Platform, Wakeups};

use crate::listener::{Listener, MemoryBudget};
use crate::sockets::SocketHandle;
use crate::stack::NetStack;
use crate::tcp::{StreamError, receive_ended, send_ended};

/// A socket of the service: a listener or a connection. Stale once closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId {
    index: u32,
    generation: u32,
}

impl SocketId {
    /// Packs the handle into a word (for a system call's return value).
    pub fn to_bits(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.index)
    }

    pub fn from_bits(bits: u64) -> SocketId {
        SocketId { index: bits as u32, generation: (bits >> 32) as u32 }
    }
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketError {
    /// The handle names no open socket (closed, or never was).
    NoSuchSocket,
    /// A stream operation on a listener, or the other way round.
    WrongKind,
    /// The peer reset the connection (or it timed out in the stack).
    Reset,
    /// Writing after shutdown, or to a connection the peer closed.
    Closed,
    /// The deadline passed first.
    TimedOut,
    /// Another listener has the port.
    AddressInUse,
    /// The port cannot be listened on (port 0).
    InvalidPort,
}

/// What a socket is ready for, from [`SocketService::wait`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A read would not block (data, end of stream, or an error).
    pub readable: bool,
    /// A write would not block (room, or an error).
    pub writable: bool,
    /// The connection was reset or both directions are finished.
    pub hang_up: bool,
}

/// What to wait for in [`SocketService::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

/// Counters of the service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Connections accepted into the service, and closed by their owner.
    pub accepted: u64,
    pub closed: u64,
    /// Caller operations (accept, read, write, shutdown, close, wait), and
    /// how many of them parked at least once.
    pub operations: u64,
    pub parked: u64,
    /// Times a caller kicked the network thread, and sockets it synced.
    pub kicks: u64,
    pub syncs: u64,
    /// Connections aborted by [`SocketService::close_group`] or
    /// [`SocketService::reset`].
    pub aborted: u64,
    /// Staging buffers grown for a bulk stream, and attempts to grow one
    /// refused to keep the heap's reserve.
    pub staging_grown: u64,
    pub staging_refused: u64,
    /// Connections accepted and alive: one that was reset (by the peer or
    /// the idle timeout) stops counting at once, before its handle closes.
    pub open: usize,
}

enum ListenState {
    /// Asked for; the engine has not set it up yet.
    Pending {
        backlog: usize,
        max_connections: usize,
    },
    /// Set up on the stack (the bounds kept to set it up again on a new
    /// stack, see [`ServiceEngine::stack_lost`]).
    Listening {
        backlog: usize,
        max_connections: usize,
    },
    Failed(SocketError),
}

struct ListenCell<P: Platform> {
    port: u16,
    state: ListenState,
    /// Connections accepted by the engine, not yet taken by a caller.
    accepted: VecDeque<SocketId>,
    acceptors: Vec<P::Thread>,
}

struct StreamCell<P: Platform> {
    /// Staged bytes, and the most the buffer may grow to hold.
    rx: VecDeque<u8>,
    rx_capacity: usize,
    tx: VecDeque<u8>,
    tx_capacity: usize,
    /// Nothing more will arrive: `Ok(())` end of stream, `Err` reset.
    rx_end: Option<Result<(), SocketError>>,
    /// Nothing more can be sent.
    tx_error: Option<SocketError>,
    /// The owner shut its write side down (FIN after the staged bytes).
    shutdown: bool,
    readers: Vec<P::Thread>,
    writers: Vec<P::Thread>,
}

impl<P: Platform> StreamCell<P> {
    /// The engine cannot stage more received bytes without the reader
    /// draining some (at its limit, or at its allocation with growth
    /// refused).
    fn rx_full(&self) -> bool {
        self.rx.len() >= self.rx_capacity.min(self.rx.capacity())
    }

    /// A write cannot stage a byte without growing the buffer: with growth
    /// refused it would park (and a caller polling wait → try-write would
    /// spin), so `wait` does not call it writable.
    fn tx_full(&self) -> bool {
        self.tx.len() >= self.tx_capacity.min(self.tx.capacity())
    }

    /// The connection is gone under its owner (the stack lost the socket):
    /// both directions end with [`SocketError::Reset`] and every thread
    /// waiting on it is woken to find out.
    fn reset(&mut self, wakeups: &mut Wakeups<P>) {
        self.rx_end.get_or_insert(Err(SocketError::Reset));
        self.tx_error.get_or_insert(SocketError::Reset);
        self.readers.drain(..).chain(self.writers.drain(..)).for_each(|thread| wakeups.push(thread));
    }
}

enum Kind<P: Platform> {
    Listen(ListenCell<P>),
    Stream(StreamCell<P>),
}

struct Cell<P: Platform> {
    kind: Kind<P>,
    /// A program's sockets share a group, so they can be closed together.
    group: u32,
    /// Queued for the engine already.
    kicked: bool,
    /// Closed by its owner (the handle is already stale): the engine
    /// releases it; `abort` resets it instead of a FIN.
    closed: bool,
    abort: bool,
}

struct Slot<P: Platform> {
    generation: u32,
    /// `Some` from creation until the engine has released the socket (a
    /// closed socket stays until then, under a newer generation).
    cell: Option<Cell<P>>,
}

struct Table<P: Platform> {
    slots: Vec<Slot<P>>,
    free: Vec<u32>,
    /// Slots kicked by callers, for the engine.
    kicked: Vec<u32>,
    stats: ServiceStats,
    /// What staging growth must leave free (none: grow freely).
    budget: Option<MemoryBudget>,
}

impl<P: Platform> Table<P> {
    fn cell(&mut self, id: SocketId) -> Result<&mut Cell<P>, SocketError> {
        let slot = self.slots.get_mut(id.index as usize).ok_or(SocketError::NoSuchSocket)?;
        match &mut slot.cell {
            Some(cell) if slot.generation == id.generation && !cell.closed => Ok(cell),
            _ => Err(SocketError::NoSuchSocket),
        }
    }

    fn insert(&mut self, cell: Cell<P>) -> SocketId {
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.cell = Some(cell);
                SocketId { index, generation: slot.generation }
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 sockets");
                self.slots.push(Slot { generation: 0, cell: Some(cell) });
                SocketId { index, generation: 0 }
            }
        }
    }

    /// Queues slot `index` for the engine; whether the engine must be
    /// notified (it was not queued yet).
    fn kick(&mut self, index: u32) -> bool {
        let Some(cell) = self.slots.get_mut(index as usize).and_then(|slot| slot.cell.as_mut()) else {
            return false;
        };
        if core::mem::replace(&mut cell.kicked, true) {
            return false;
        }
        self.kicked.push(index);
        self.stats.kicks += 1;
        true
    }

    /// Marks `index` closed by its owner: its handle goes stale at once,
    /// every thread waiting on it wakes (to find it gone), the engine is
    /// kicked to release it. Returns whether it was a connection.
    fn close_slot(&mut self, index: u32, abort: bool, wakeups: &mut Wakeups<P>) -> bool {
        let slot = &mut self.slots[index as usize];
        let Some(cell) = slot.cell.as_mut().filter(|cell| !cell.closed) else { return false };
        slot.generation = slot.generation.wrapping_add(1);
        cell.closed = true;
        cell.abort = abort;
        let stream = match &mut cell.kind {
            Kind::Listen(listen) => {
                listen.acceptors.drain(..).for_each(|thread| wakeups.push(thread));
                false
            }
            Kind::Stream(stream) => {
                stream
                    .readers
                    .drain(..)
                    .chain(stream.writers.drain(..))
                    .for_each(|thread| wakeups.push(thread));
                true
            }
        };
        self.kick(index);
        stream
    }
}

struct Shared<P: Platform> {
    table: spin::Mutex<Table<P>>,
    /// Wakes the network thread.
    notify: Arc<dyn Fn() + Send + Sync>,
}

/// The callers' side: cheap to clone, usable from any thread.
pub struct SocketService<P: Platform> {
    shared: Arc<Shared<P>>,
}

impl<P: Platform> Clone for SocketService<P> {
    fn clone(&self) -> Self {
        SocketService { shared: self.shared.clone() }
    }
}

/// What a blocking step concluded: done, or wait and try again.
enum Step<T> {
    Done(T),
    Wait,
}

fn add_waiter<P: Platform>(waiters: &mut Vec<P::Thread>, thread: P::Thread) {
    if !waiters.contains(&thread) {
        waiters.push(thread);
    }
}

fn remove_waiter<P: Platform>(waiters: &mut Vec<P::Thread>, thread: &P::Thread) {
    waiters.retain(|waiter| waiter != thread);
}

/// Removes `thread` from whichever waiter list of `cell` holds it.
fn forget_waiter<P: Platform>(cell: &mut Cell<P>, thread: &P::Thread) {
    match &mut cell.kind {
        Kind::Listen(listen) => remove_waiter::<P>(&mut listen.acceptors, thread),
        Kind::Stream(stream) => {
            remove_waiter::<P>(&mut stream.readers, thread);
            remove_waiter::<P>(&mut stream.writers, thread);
        }
    }
}

impl<P: Platform> SocketService<P> {
    /// A service whose engine `notify` wakes (the network thread's unpark).
    pub fn new(notify: Arc<dyn Fn() + Send + Sync>) -> (SocketService<P>, ServiceEngine<P>) {
        let table = Table {
            slots: Vec::new(),
            free: Vec::new(),
            kicked: Vec::new(),
            stats: ServiceStats::default(),
            budget: None,
        };
        let shared = Arc::new(Shared { table: spin::Mutex::new(table), notify });
        let engine = ServiceEngine {
            shared: shared.clone(),
            entries: Vec::new(),
            listeners: Vec::new(),
            ready: Arc::new(spin::Mutex::new(Vec::new())),
            work: Vec::new(),
        };
        (SocketService { shared }, engine)
    }

    /// Runs `f` on the table under its lock (interrupts off), then unparks
    /// the threads it collected and notifies the engine if `f` kicked it.
    fn with_table<R>(&self, f: impl FnOnce(&mut Table<P>, &mut Wakeups<P>) -> R) -> R {
        let mut wakeups = Wakeups::new();
        let (result, notify) = P::critical(|| {
            let mut table = self.shared.table.lock();
            let kicks = table.stats.kicks;
            let result = f(&mut table, &mut wakeups);
            (result, table.stats.kicks != kicks)
        });
        wakeups.unpark_all();
        if notify {
            (self.shared.notify)();
        }
        result
    }

    /// The blocking loop of every operation: `attempt` either finishes or
    /// registers the caller as a waiter; then park until woken or the
    /// deadline (monotonic ns), and try again.
    fn block<T>(
        &self,
        id: SocketId,
        deadline_ns: Option<u64>,
        mut attempt: impl FnMut(&mut Table<P>, &mut Wakeups<P>, P::Thread) -> Result<Step<T>, SocketError>,
    ) -> Result<T, SocketError> {
        let me = P::current();
        let mut parked = false;
        loop {
            let step = self.with_table(|table, wakeups| {
                if parked {
                    table.stats.parked += 1;
                    parked = false;
                }
                match attempt(table, wakeups, me.clone()) {
                    Ok(Step::Wait) if deadline_ns.is_some_and(|deadline| P::now_ns() >= deadline) => {
                        if let Ok(cell) = table.cell(id) {
                            forget_waiter::<P>(cell, &me);
                        }
                        Err(SocketError::TimedOut)
                    }
                    other => other,
                }
            })?;
            match step {
                Step::Done(value) => return Ok(value),
                Step::Wait => {
                    P::park(deadline_ns);
                    parked = true;
                }
            }
        }
    }

    fn count_operation(&self) {
        P::critical(|| self.shared.table.lock().stats.operations += 1);
    }

    /// Listens on `port` with the listener's `backlog` and connection cap
    /// (see [`crate::listener`]); the sockets it accepts join `group`.
    /// Waits until the network thread has set it up.
    pub fn listen(
        &self,
        port: u16,
        backlog: usize,
        max_connections: usize,
        group: u32,
    ) -> Result<SocketId, SocketError> {
        let id = self.with_table(|table, _| {
            let cell = Cell {
                kind: Kind::Listen(ListenCell {
                    port,
                    state: ListenState::Pending { backlog, max_connections },
                    accepted: VecDeque::new(),
                    acceptors: Vec::new(),
                }),
                group,
                kicked: false,
                closed: false,
                abort: false,
            };
            let id = table.insert(cell);
            table.kick(id.index);
            id
        });
        let result = self.block(id, None, |table, _, me| {
            let Kind::Listen(listen) = &mut table.cell(id)?.kind else { return Err(SocketError::WrongKind) };
            match listen.state {
                ListenState::Listening { .. } => Ok(Step::Done(())),
                ListenState::Failed(error) => Err(error),
                ListenState::Pending { .. } => {
                    add_waiter::<P>(&mut listen.acceptors, me);
                    Ok(Step::Wait)
                }
            }
        });
        match result {
            Ok(()) => Ok(id),
            Err(error) => {
                self.close(id).ok();
                Err(error)
            }
        }
    }

    /// The next connection of listener `id`; waits until one comes or
    /// `deadline_ns` (monotonic) passes.
    pub fn accept(&self, id: SocketId, deadline_ns: Option<u64>) -> Result<SocketId, SocketError> {
        self.count_operation();
        self.block(id, deadline_ns, |table, _, me| {
            let Kind::Listen(listen) = &mut table.cell(id)?.kind else { return Err(SocketError::WrongKind) };
            if let Some(stream) = listen.accepted.pop_front() {
                return Ok(Step::Done(stream));
            }
            add_waiter::<P>(&mut listen.acceptors, me);
            Ok(Step::Wait)
        })
    }

    /// Reads into `buffer`: at least one byte, or `Ok(0)` once the peer
    /// finished sending and everything was read; waits for data until
    /// `deadline_ns`.
    pub fn read(
        &self,
        id: SocketId,
        buffer: &mut [u8],
        deadline_ns: Option<u64>,
    ) -> Result<usize, SocketError> {
        self.count_operation();
        self.block(id, deadline_ns, |table, _, me| {
            let Kind::Stream(stream) = &mut table.cell(id)?.kind else { return Err(SocketError::WrongKind) };
            if buffer.is_empty() {
                return Ok(Step::Done(0));
            }
            if !stream.rx.is_empty() {
                let was_full = stream.rx_full();
                let count = stream.rx.len().min(buffer.len());
                let (front, back) = stream.rx.as_slices();
                let from_front = front.len().min(count);
                buffer[..from_front].copy_from_slice(&front[..from_front]);
                buffer[from_front..count].copy_from_slice(&back[..count - from_front]);
                stream.rx.drain(..count);
                // The engine stopped pulling from the socket: it may now.
                if was_full {
                    table.kick(id.index);
                }
                return Ok(Step::Done(count));
            }
            match stream.rx_end {
                Some(Ok(())) => Ok(Step::Done(0)),
                Some(Err(error)) => Err(error),
                None => {
                    add_waiter::<P>(&mut stream.readers, me);
                    Ok(Step::Wait)
                }
            }
        })
    }

    /// Writes some of `data` (at least one byte, as much as the staging
    /// buffer has room for); waits for room until `deadline_ns`.
    pub fn write(&self, id: SocketId, data: &[u8], deadline_ns: Option<u64>) -> Result<usize, SocketError> {
        self.count_operation();
        self.block(id, deadline_ns, |table, _, me| {
            let budget = table.budget;
            let Kind::Stream(stream) = &mut table.cell(id)?.kind else { return Err(SocketError::WrongKind) };
            if let Some(error) = stream.tx_error {
                return Err(error);
            }
            if stream.shutdown {
                return Err(SocketError::Closed);
            }
            if data.is_empty() {
                return Ok(Step::Done(0));
            }
            let (room, grown) = staging_room(&mut stream.tx, stream.tx_capacity, data.len(), budget);
            let step = if room == 0 {
                add_waiter::<P>(&mut stream.writers, me);
                Step::Wait
            } else {
                stream.tx.extend(&data[..room]);
                table.kick(id.index);
                Step::Done(room)
            };
            table.stats.count_growth(grown);
            Ok(step)
        })
    }

    /// Writes all of `data`, waiting for room as needed.
    pub fn write_all(
        &self,
        id: SocketId,
        mut data: &[u8],
        deadline_ns: Option<u64>,
    ) -> Result<(), SocketError> {
        while !data.is_empty() {
            let written = self.write(id, data, deadline_ns)?;
            data = &data[written..];
        }
        Ok(())
    }

    /// Finishes the write side: a FIN follows the bytes already written.
    pub fn shutdown(&self, id: SocketId) -> Result<(), SocketError> {
        self.count_operation();
        self.with_table(|table, _| {
            let Kind::Stream(stream) = &mut table.cell(id)?.kind else { return Err(SocketError::WrongKind) };
            stream.shutdown = true;
            table.kick(id.index);
            Ok(())
        })
    }

    /// Closes the socket: a connection gets a FIN once its staged bytes are
    /// sent, a listener stops taking connections (and resets the ones not
    /// yet accepted). The handle is stale at once; threads waiting on it
    /// wake with [`SocketError::NoSuchSocket`].
    pub fn close(&self, id: SocketId) -> Result<(), SocketError> {
        self.count_operation();
        self.with_table(|table, wakeups| {
            table.cell(id)?;
            if table.close_slot(id.index, false, wakeups) {
                table.stats.closed += 1;
            }
            Ok(())
        })
    }

    /// Closes the socket with a reset instead of a FIN (its owner died):
    /// staged bytes are dropped; the handle is stale at once.
    pub fn reset(&self, id: SocketId) -> Result<(), SocketError> {
        self.count_operation();
        self.with_table(|table, wakeups| {
            table.cell(id)?;
            if table.close_slot(id.index, true, wakeups) {
                table.stats.aborted += 1;
            }
            Ok(())
        })
    }

    /// Resets every socket of `group` (a program that died); returns how
    /// many connections were open.
    pub fn close_group(&self, group: u32) -> usize {
        self.with_table(|table, wakeups| {
            let members: Vec<u32> = (0..table.slots.len() as u32)
                .filter(|&index| {
                    let cell = table.slots[index as usize].cell.as_ref();
                    cell.is_some_and(|cell| cell.group == group && !cell.closed)
                })
                .collect();
            let connections =
                members.into_iter().filter(|&index| table.close_slot(index, true, wakeups)).count();
            table.stats.aborted += connections as u64;
            connections
        })
    }

    /// Waits until socket `id` is ready for `interest` (or hung up), or
    /// `deadline_ns` passes.
    pub fn wait(
        &self,
        id: SocketId,
        interest: Interest,
        deadline_ns: Option<u64>,
    ) -> Result<Readiness, SocketError> {
        self.count_operation();
        self.block(id, deadline_ns, |table, _, me| {
            let Kind::Stream(stream) = &mut table.cell(id)?.kind else {
                return Err(SocketError::WrongKind);
            };
            let hang_up = matches!(stream.rx_end, Some(Err(_)))
                || (stream.rx_end.is_some() && stream.tx_error.is_some());
            let ready = Readiness {
                readable: !stream.rx.is_empty() || stream.rx_end.is_some(),
                writable: stream.tx_error.is_some() || (!stream.shutdown && !stream.tx_full()),
                hang_up,
            };
            if hang_up || (interest.readable && ready.readable) || (interest.writable && ready.writable) {
                return Ok(Step::Done(ready));
            }
            if interest.readable {
                add_waiter::<P>(&mut stream.readers, me.clone());
            }
            if interest.writable {
                add_waiter::<P>(&mut stream.writers, me);
            }
            Ok(Step::Wait)
        })
    }

    pub fn stats(&self) -> ServiceStats {
        P::critical(|| self.shared.table.lock().stats)
    }

    /// Connections open in the service (accepted, not yet released).
    pub fn connections(&self) -> usize {
        self.stats().open
    }
}

/// Marks a slot ready for the engine when the stack's readiness registry
/// fires (a socket became readable or writable, changed state, or a port
/// has a connection to accept).
struct SlotWaker {
    index: u32,
    ready: Arc<spin::Mutex<Vec<u32>>>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.lock().push(self.index);
    }
}

enum Owned {
    Listener {
        listener: Listener,
        waker: Waker,
    },
    Stream {
        handle: SocketHandle,
        listener: Option<SocketId>,
        waker: Waker,
        fin_sent: bool,
        /// Reset by `close_group` before this stack poll: released once a
        /// poll has sent the reset.
        reset_before_poll: Option<u64>,
        /// The connection died (reset by the peer, or by the idle timeout)
        /// and its socket went back to the stack before the owner closed
        /// the handle: the handle is never used on the stack again.
        released: bool,
    },
}

/// Port records the demultiplexer keeps for closed listeners before it
/// drops idle ones (see `sync_listener`).
const KEPT_PORT_RECORDS: usize = 64;

/// The network thread's side: owns the stack's sockets behind the service's
/// handles and moves bytes between them and the staging buffers.
pub struct ServiceEngine<P: Platform> {
    shared: Arc<Shared<P>>,
    /// By slot index.
    entries: Vec<Option<Owned>>,
    listeners: Vec<u32>,
    ready: Arc<spin::Mutex<Vec<u32>>>,
    /// The slots to sync this pass (kept for its capacity).
    work: Vec<u32>,
}

/// What one socket's sync works on: the table (locked), the stack, and the
/// threads to wake once the lock is released.
struct Pass<'a, P: Platform> {
    table: &'a mut Table<P>,
    stack: &'a mut NetStack,
    wakeups: &'a mut Wakeups<P>,
}

/// The bytes a staging buffer holds at first for a socket buffer of
/// `capacity` (what a connection is admitted with).
fn staging_for(capacity: usize) -> usize {
    (capacity / 8).max(512)
}

/// The most a staging buffer grows to for a socket buffer of `capacity`:
/// half of it, and at most 64 KiB (a growth copies the staged bytes with
/// interrupts off).
fn staging_limit(capacity: usize) -> usize {
    (capacity / 2).min(64 * 1024).max(staging_for(capacity))
}

/// How many of `wanted` bytes `buffer` can take now without holding more
/// than `limit`: its spare allocation, first grown (at least doubled, at
/// most to `limit`) if that is too small and the heap keeps `budget`'s
/// reserve beyond the growth. Also says whether it grew (`Some(true)`) or
/// growth was refused (`Some(false)`).
fn staging_room(
    buffer: &mut VecDeque<u8>,
    limit: usize,
    wanted: usize,
    budget: Option<MemoryBudget>,
) -> (usize, Option<bool>) {
    let room = limit.saturating_sub(buffer.len()).min(wanted);
    let mut grown = None;
    if room > buffer.capacity() - buffer.len() {
        let target = (buffer.capacity() * 2).max(buffer.len() + room).min(limit);
        let extra = target.saturating_sub(buffer.capacity());
        let allowed = budget.is_none_or(|budget| (budget.headroom)() >= budget.reserve.saturating_add(extra));
        grown = Some(allowed && buffer.try_reserve_exact(target - buffer.len()).is_ok());
    }
    (room.min(buffer.capacity() - buffer.len()), grown)
}

impl ServiceStats {
    fn count_growth(&mut self, grown: Option<bool>) {
        match grown {
            Some(true) => self.staging_grown += 1,
            Some(false) => self.staging_refused += 1,
            None => {}
        }
    }
}

/// Staging bytes (both directions) for a connection whose TCP buffers are
/// `rx` and `tx` bytes: what the service adds per connection when it is
/// admitted (a bulk stream's growth is bounded by the heap's reserve
/// instead).
pub fn staging_bytes(rx: usize, tx: usize) -> usize {
    staging_for(rx) + staging_for(tx)
}

impl<P: Platform> ServiceEngine<P> {
    /// Bounds the listeners set up from now on by memory as well as by count.
    pub fn set_budget(&mut self, budget: MemoryBudget) {
        P::critical(|| self.shared.table.lock().budget = Some(budget));
    }

    /// Whether a caller kicked a socket or a socket became ready since the
    /// last [`ServiceEngine::run`].
    pub fn has_work(&self) -> bool {
        !self.ready.lock().is_empty() || P::critical(|| !self.shared.table.lock().kicked.is_empty())
    }

    /// The stack this engine served is gone (the network thread died and a
    /// new one runs a new stack): every connection is lost — its readers
    /// and writers wake to [`SocketError::Reset`], connections not yet
    /// accepted are reset — and every listener is set up again on the new
    /// stack at the next [`ServiceEngine::run`], under the same handle.
    /// Handles stay valid (and stale ones stale): no caller can reach a
    /// socket that is not its own through a restart. Returns the
    /// connections lost.
    pub fn stack_lost(&mut self) -> usize {
        let mut wakeups = Wakeups::<P>::new();
        let mut lost = 0;
        self.ready.lock().clear();
        self.listeners.clear();
        P::critical(|| {
            let mut table = self.shared.table.lock();
            let table = &mut *table;
            for (index, entry) in self.entries.iter_mut().enumerate() {
                let Some(owned) = entry else { continue };
                let Some(cell) = table.slots[index].cell.as_mut() else {
                    *entry = None;
                    continue;
                };
                match (owned, &mut cell.kind) {
                    (Owned::Stream { released, .. }, Kind::Stream(stream)) => {
                        if !core::mem::replace(released, true) {
                            stream.reset(&mut wakeups);
                            table.stats.open -= 1;
                            lost += 1;
                        }
                    }
                    (Owned::Listener { .. }, Kind::Listen(listen)) => {
                        if let ListenState::Listening { backlog, max_connections } = listen.state {
                            listen.state = ListenState::Pending { backlog, max_connections };
                        }
                        // Accepted on the old stack, never taken: gone with it.
                        for orphan in core::mem::take(&mut listen.accepted) {
                            table.close_slot(orphan.index, true, &mut wakeups);
                        }
                        *entry = None;
                    }
                    _ => *entry = None,
                }
                // The next pass sets listeners up again and retires what
                // the owners already closed.
                table.kick(index as u32);
            }
        });
        wakeups.unpark_all();
        lost
    }

    /// One pass: sets up and tears down what callers asked for, accepts
    /// connections, and syncs every socket that was kicked or became ready.
    /// Call after each stack poll (and poll again if it returns `true`: it
    /// wrote to sockets).
    pub fn run(&mut self, stack: &mut NetStack) -> bool {
        let mut work = core::mem::take(&mut self.work);
        work.clear();
        work.append(&mut self.ready.lock());
        P::critical(|| {
            let mut table = self.shared.table.lock();
            let table = &mut *table;
            for &index in &table.kicked {
                if let Some(cell) = table.slots[index as usize].cell.as_mut() {
                    cell.kicked = false;
                }
            }
            work.append(&mut table.kicked);
        });
        // Listeners re-arm as memory frees up, and accept on every pass.
        work.extend_from_slice(&self.listeners);
        let did = !work.is_empty();
        let mut wakeups = Wakeups::<P>::new();
        for &index in &work {
            self.sync(index, stack, &mut wakeups);
        }
        wakeups.unpark_all();
        self.work = work;
        did
    }

    fn sync(&mut self, index: u32, stack: &mut NetStack, wakeups: &mut Wakeups<P>) {
        let slot = index as usize;
        if self.entries.len() <= slot {
            self.entries.resize_with(slot + 1, || None);
        }
        let shared = self.shared.clone();
        P::critical(|| {
            let mut table = shared.table.lock();
            table.stats.syncs += 1;
            let is_listener = matches!(
                table.slots.get(slot).and_then(|slot| slot.cell.as_ref()),
                Some(Cell { kind: Kind::Listen(_), .. })
            );
            if is_listener {
                self.sync_listener(index, Pass { table: &mut table, stack, wakeups });
            } else {
                self.sync_stream(index, Pass { table: &mut table, stack, wakeups });
            }
        });
    }

    /// Frees slot `index` for reuse (its socket is released).
    /// A stream's connection must have been released (and counted off
    /// `open`) before.
    fn retire(&mut self, index: u32, table: &mut Table<P>) {
        table.slots[index as usize].cell.take();
        table.free.push(index);
        self.entries[index as usize] = None;
        self.listeners.retain(|&listener| listener != index);
    }

    fn sync_listener(&mut self, index: u32, pass: Pass<'_, P>) {
        let Pass { table, stack, wakeups } = pass;
        let slot = index as usize;
        let Some(cell) = table.slots[slot].cell.as_mut() else { return };
        let (group, closed) = (cell.group, cell.closed);
        let Kind::Listen(listen) = &mut cell.kind else { return };
        let port = listen.port;
        if closed {
            // No new connections on the port: its free slots go, SYNs are
            // reset (an admission at the cap) until someone listens again.
            if self.entries[slot].is_some() {
                while stack.take_listen_slot(port) {}
                stack.set_admission(
                    port,
                    crate::flows::Admission {
                        at_cap: true,
                        out_of_memory: false,
                        half_open_limit: crate::listener::HALF_OPEN_LIMIT,
                    },
                );
                // A task listening on port after port must not grow the
                // demultiplexer's table: beyond a few records, a closed
                // port's goes once nothing is left on it. (Below that they
                // stay, as a listened-on port's always did: a port listened
                // on again and again keeps one steady record.)
                if stack.port_records() > KEPT_PORT_RECORDS {
                    stack.forget_port(port);
                }
            }
            let orphans: Vec<SocketId> = listen.accepted.drain(..).collect();
            for orphan in orphans {
                table.close_slot(orphan.index, true, wakeups);
            }
            self.retire(index, table);
            return;
        }
        if let ListenState::Pending { backlog, max_connections } = listen.state {
            let taken = self.listeners.iter().any(|&other| {
                matches!(&table.slots[other as usize].cell, Some(Cell { kind: Kind::Listen(l), .. }) if l.port == port)
            });
            let Some(Cell { kind: Kind::Listen(listen), .. }) = table.slots[slot].cell.as_mut() else {
                return;
            };
            listen.state = if taken {
                ListenState::Failed(SocketError::AddressInUse)
            } else {
                match Listener::new(stack, port, backlog, max_connections) {
                    Ok(mut listener) => {
                        if let Some(budget) = table.budget {
                            listener.set_budget(stack, budget);
                        }
                        let waker = Waker::from(Arc::new(SlotWaker { index, ready: self.ready.clone() }));
                        self.entries[slot] = Some(Owned::Listener { listener, waker });
                        self.listeners.push(index);
                        ListenState::Listening { backlog, max_connections }
                    }
                    Err(_) => ListenState::Failed(SocketError::InvalidPort),
                }
            };
            listen.acceptors.drain(..).for_each(|thread| wakeups.push(thread));
            if !matches!(listen.state, ListenState::Listening { .. }) {
                return;
            }
        }
        let Some(Owned::Listener { listener, waker }) = self.entries[slot].as_mut() else { return };
        listener.refresh(stack);
        let mut accepted = Vec::new();
        while let Some(handle) = listener.accept(stack) {
            accepted.push(handle);
        }
        stack.wait_port(port, waker);
        for handle in accepted {
            let Some(socket) = stack.try_tcp(handle) else { continue };
            let (rx_buffer, tx_buffer) = (socket.recv_capacity(), socket.send_capacity());
            if socket.state() == State::Established {
                stack.apply_idle_timeout(handle);
            }
            let id = table.insert(Cell {
                kind: Kind::Stream(StreamCell {
                    rx: VecDeque::with_capacity(staging_for(rx_buffer)),
                    rx_capacity: staging_limit(rx_buffer),
                    tx: VecDeque::with_capacity(staging_for(tx_buffer)),
                    tx_capacity: staging_limit(tx_buffer),
                    rx_end: None,
                    tx_error: None,
                    shutdown: false,
                    readers: Vec::new(),
                    writers: Vec::new(),
                }),
                group,
                kicked: false,
                closed: false,
                abort: false,
            });
            let stream_slot = id.index as usize;
            if self.entries.len() <= stream_slot {
                self.entries.resize_with(stream_slot + 1, || None);
            }
            let waker = Waker::from(Arc::new(SlotWaker { index: id.index, ready: self.ready.clone() }));
            let owner = SocketId { index, generation: table.slots[slot].generation };
            self.entries[stream_slot] = Some(Owned::Stream {
                handle,
                listener: Some(owner),
                waker,
                fin_sent: false,
                reset_before_poll: None,
                released: false,
            });
            table.stats.accepted += 1;
            table.stats.open += 1;
            // Data may have come with the handshake: pull it now.
            self.ready.lock().push(id.index);
            if let Some(Cell { kind: Kind::Listen(listen), .. }) = table.slots[slot].cell.as_mut() {
                listen.accepted.push_back(id);
                listen.acceptors.drain(..).for_each(|thread| wakeups.push(thread));
            }
        }
    }

    fn sync_stream(&mut self, index: u32, pass: Pass<'_, P>) {
        let Pass { table, stack, wakeups } = pass;
        let slot = index as usize;
        let Some(Owned::Stream { handle, listener, fin_sent, reset_before_poll, released, .. }) =
            self.entries[slot].as_mut()
        else {
            return;
        };
        let (handle, owner, mut fin) = (*handle, *listener, *fin_sent);
        let Some(cell) = table.slots[slot].cell.as_mut() else { return };
        let (closed, abort) = (cell.closed, cell.abort);
        let Kind::Stream(stream) = &mut cell.kind else { return };
        if *released {
            // Dead and off the stack: only the owner's close is left.
            if closed {
                self.retire(index, table);
            }
            return;
        }
        let polls = stack.stats.polls;
        if abort && reset_before_poll.is_none_or(|poll| polls <= poll) {
            // The reset leaves at the next poll; the socket is released at
            // a pass after it (releasing a closed socket removes it at once).
            reset_before_poll.get_or_insert(polls);
            if let Some(socket) = stack.try_tcp(handle) {
                socket.abort();
            }
            self.ready.lock().push(index);
            return;
        }
        let Some(socket) = stack.try_tcp(handle) else {
            // The stack no longer has it (cannot happen for an owned
            // socket; handled rather than trusted).
            stream.reset(wakeups);
            table.stats.open -= 1;
            if closed {
                self.retire(index, table);
            } else if let Some(Owned::Stream { released, .. }) = self.entries[slot].as_mut() {
                *released = true;
            }
            return;
        };
        let (readers_wake, writers_wake) =
            transfer(stream, socket, &mut fin, closed && !abort, table.budget, &mut table.stats);
        if readers_wake {
            stream.readers.drain(..).for_each(|thread| wakeups.push(thread));
        }
        if writers_wake {
            stream.writers.drain(..).for_each(|thread| wakeups.push(thread));
        }
        let finished = closed && (stream.tx.is_empty() || stream.tx_error.is_some() || abort);
        // A connection that is dead (reset, or timed out idle) with nothing
        // left to read stops counting against its listener's cap now, not
        // when its owner thread gets round to closing the handle: a client
        // that sees the reset and connects again finds the slot free, as it
        // would with the event loop, which releases in the same pass.
        let dead = socket.state() == State::Closed && !socket.can_recv() && stream.rx_end.is_some();
        if finished || dead {
            // Its listener, if it is still the one that accepted it (the
            // slot may hold a newer listener by now).
            let listener =
                owner.filter(|owner| table.slots[owner.index as usize].generation == owner.generation);
            match listener.and_then(|owner| self.entries.get_mut(owner.index as usize)) {
                Some(Some(Owned::Listener { listener, .. })) => listener.release(stack, handle),
                _ => stack.release(handle),
            }
            table.stats.open -= 1;
            if finished {
                self.retire(index, table);
            } else if let Some(Owned::Stream { released, .. }) = self.entries[slot].as_mut() {
                *released = true;
            }
            return;
        }
        // Full (growth refused or at its limit): the reader's drain kicks.
        let wait_read = stream.rx_end.is_none() && !stream.rx_full();
        let wait_write = stream.tx_error.is_none() && !stream.tx.is_empty();
        let Some(Owned::Stream { waker, fin_sent, .. }) = self.entries[slot].as_mut() else { return };
        *fin_sent = fin;
        // Wait for the socket again where the staging buffer needs it.
        if wait_read {
            stack.readiness().wait_readable(handle, waker);
        }
        if wait_write {
            stack.readiness().wait_writable(handle, waker);
        }
    }
}

/// Moves bytes between a connection's staging buffers and its socket, and
/// notes the ends of the stream; sends our FIN once the staged bytes are
/// out if the owner shut down or closed (`closing`). Returns whether
/// readers and writers should wake.
fn transfer<P: Platform>(
    stream: &mut StreamCell<P>,
    socket: &mut smoltcp::socket::tcp::Socket<'static>,
    fin_sent: &mut bool,
    closing: bool,
    budget: Option<MemoryBudget>,
    stats: &mut ServiceStats,
) -> (bool, bool) {
    let mut readers_wake = false;
    while stream.rx.len() < stream.rx_capacity && socket.can_recv() {
        let (room, grown) = staging_room(&mut stream.rx, stream.rx_capacity, socket.recv_queue(), budget);
        stats.count_growth(grown);
        if room == 0 {
            break;
        }
        let taken = socket.recv(|bytes| {
            let count = bytes.len().min(room);
            stream.rx.extend(&bytes[..count]);
            (count, count)
        });
        match taken {
            Ok(0) | Err(_) => break,
            Ok(_) => readers_wake = true,
        }
    }
    if stream.rx_end.is_none()
        && let Some(end) = receive_ended(socket)
    {
        stream.rx_end = Some(end.map(|_| ()).map_err(|_| SocketError::Reset));
        readers_wake = true;
    }
    let mut writers_wake = false;
    if stream.tx_error.is_none()
        && let Some(error) = send_ended(socket)
    {
        stream.tx_error = Some(match error {
            StreamError::Reset => SocketError::Reset,
            StreamError::Closed => SocketError::Closed,
        });
        stream.tx.clear();
        writers_wake = true;
    }
    while stream.tx_error.is_none() && !stream.tx.is_empty() && socket.can_send() {
        let (front, _) = stream.tx.as_slices();
        match socket.send_slice(front) {
            Ok(0) | Err(_) => break,
            Ok(count) => {
                stream.tx.drain(..count);
                writers_wake = true;
            }
        }
    }
    if stream.tx.is_empty() && (stream.shutdown || closing) && !*fin_sent {
        socket.close();
        *fin_sent = true;
    }
    (readers_wake, writers_wake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::TcpTuning;
    use crate::testing::{Pair, payload};
    use std::thread;
    use tenfold_runtime::sync::std_platform::StdPlatform;

    type Service = SocketService<StdPlatform>;
    type Engine = ServiceEngine<StdPlatform>;

    const PORT: u16 = 7;

    fn service() -> (Service, Engine) {
        Service::new(Arc::new(|| {}))
    }

    /// Steps the pair and the engine (on this thread, as the network thread
    /// would) until `done` or `limit` steps.
    fn drive(
        pair: &mut Pair,
        engine: &mut Engine,
        limit: usize,
        mut done: impl FnMut(&mut Pair) -> bool,
    ) -> bool {
        for _ in 0..limit {
            pair.step();
            engine.run(&mut pair.server.borrow_mut());
            if done(pair) {
                return true;
            }
            thread::yield_now();
        }
        false
    }

    /// A deadline `millis` of real time from now.
    fn after_ms(millis: u64) -> Option<u64> {
        Some(StdPlatform::now_ns() + millis * 1_000_000)
    }

    /// Listens from another thread (the call waits for the engine).
    fn listen(pair: &mut Pair, engine: &mut Engine, service: &Service, group: u32) -> SocketId {
        let caller = service.clone();
        let listening = thread::spawn(move || caller.listen(PORT, 4, 16, group));
        assert!(drive(pair, engine, 10_000, |_| listening.is_finished()), "listen never completed");
        listening.join().unwrap().unwrap()
    }

    /// A client's step: sends what the socket takes of `data` after `sent`,
    /// and half-closes once all of it is sent (the server echoes the rest,
    /// then its FIN).
    fn send_then_close(socket: &mut smoltcp::socket::tcp::Socket<'_>, data: &[u8], sent: &mut usize) {
        if socket.can_send() && *sent < data.len() {
            *sent += socket.send_slice(&data[*sent..]).unwrap();
            if *sent == data.len() {
                socket.close();
            }
        }
    }

    /// The CSP echo: an acceptor thread, a thread per connection doing
    /// blocking reads and writes.
    fn serve_echo(service: &Service, listener: SocketId, connections: usize) -> thread::JoinHandle<Vec<u64>> {
        let service = service.clone();
        thread::spawn(move || {
            let workers: Vec<_> = (0..connections)
                .map(|_| {
                    let stream = service.accept(listener, after_ms(10_000)).unwrap();
                    let service = service.clone();
                    thread::spawn(move || {
                        let mut buffer = [0u8; 700];
                        let mut echoed = 0u64;
                        loop {
                            match service.read(stream, &mut buffer, after_ms(10_000)) {
                                Ok(0) => break,
                                Ok(count) => {
                                    service.write_all(stream, &buffer[..count], after_ms(10_000)).unwrap();
                                    echoed += count as u64;
                                }
                                Err(error) => panic!("read failed: {error:?}"),
                            }
                        }
                        service.shutdown(stream).unwrap();
                        service.close(stream).unwrap();
                        echoed
                    })
                })
                .collect();
            workers.into_iter().map(|worker| worker.join().unwrap()).collect()
        })
    }

    #[test]
    fn threads_echo_byte_exact_through_blocking_calls() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let listener = listen(&mut pair, &mut engine, &service, 1);
        let server = serve_echo(&service, listener, 3);
        let data: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 20_000 + 3_001 * i as usize)).collect();
        let sockets: Vec<_> = (0..3).map(|i| pair.connect(PORT, 50_000 + i)).collect();
        let mut sent = [0usize; 3];
        let mut received: Vec<Vec<u8>> = vec![Vec::new(); 3];
        let done = drive(&mut pair, &mut engine, 200_000, |pair| {
            for (index, &socket) in sockets.iter().enumerate() {
                pair.client_socket(socket, |socket| {
                    send_then_close(socket, &data[index], &mut sent[index]);
                    while socket.can_recv() {
                        socket.recv(|bytes| (bytes.len(), received[index].extend_from_slice(bytes))).unwrap();
                    }
                });
            }
            server.is_finished()
        });
        assert!(done, "echo incomplete: {:?}", received.iter().map(Vec::len).collect::<Vec<_>>());
        let echoed = server.join().unwrap();
        assert_eq!(echoed.iter().sum::<u64>(), data.iter().map(|d| d.len() as u64).sum::<u64>());
        // The FINs and the last bytes reach the clients.
        assert!(drive(&mut pair, &mut engine, 10_000, |pair| {
            for (index, &socket) in sockets.iter().enumerate() {
                pair.client_socket(socket, |socket| {
                    while socket.can_recv() {
                        socket.recv(|bytes| (bytes.len(), received[index].extend_from_slice(bytes))).unwrap();
                    }
                });
            }
            sockets.iter().all(|&socket| pair.client_socket(socket, |s| !s.may_recv()))
        }));
        assert_eq!(received, data);
        assert_eq!(service.connections(), 0, "every connection was released");
        let stats = service.stats();
        assert_eq!((stats.accepted, stats.closed), (3, 3), "{stats:?}");
    }

    /// Sends `data` from a client on `local_port` (then half-closes) through
    /// the csp echo and returns what came back once the echo has ended.
    fn echo_one(
        pair: &mut Pair,
        engine: &mut Engine,
        service: &Service,
        data: &[u8],
        local_port: u16,
    ) -> Vec<u8> {
        // A port of its own: the listener stays open.
        let port = local_port - 50_000 + 1_000;
        let caller = service.clone();
        let listening = thread::spawn(move || caller.listen(port, 4, 16, 1));
        assert!(drive(pair, engine, 10_000, |_| listening.is_finished()), "listen never completed");
        let server = serve_echo(service, listening.join().unwrap().unwrap(), 1);
        let socket = pair.connect(port, local_port);
        let (mut sent, mut received) = (0, Vec::new());
        let done = drive(pair, engine, 400_000, |pair| {
            pair.client_socket(socket, |socket| {
                send_then_close(socket, data, &mut sent);
                while socket.can_recv() {
                    socket.recv(|bytes| (bytes.len(), received.extend_from_slice(bytes))).unwrap();
                }
                server.is_finished() && !socket.may_recv()
            })
        });
        assert!(done, "echo incomplete: {} of {} bytes back", received.len(), data.len());
        server.join().unwrap();
        received
    }

    #[test]
    fn a_bulk_stream_grows_its_staging_and_small_requests_do_not() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let small = payload(1, 64);
        assert_eq!(echo_one(&mut pair, &mut engine, &service, &small, 50_200), small);
        assert_eq!(service.stats().staging_grown, 0, "{:?}", service.stats());
        let bulk = payload(2, 300_000);
        assert!(echo_one(&mut pair, &mut engine, &service, &bulk, 50_201) == bulk, "bulk echo differs");
        let stats = service.stats();
        assert!(stats.staging_grown > 0, "{stats:?}");
        assert_eq!(stats.staging_refused, 0, "{stats:?}");
    }

    #[test]
    fn a_stream_whose_growth_is_refused_goes_on_in_the_room_it_has() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        // The heap is at its reserve: no staging buffer may grow.
        engine.set_budget(MemoryBudget { headroom: || 1 << 20, per_connection: 0, reserve: 1 << 20 });
        let bulk = payload(3, 300_000);
        assert!(echo_one(&mut pair, &mut engine, &service, &bulk, 50_300) == bulk, "bulk echo differs");
        let stats = service.stats();
        assert!(stats.staging_refused > 0, "{stats:?}");
        assert_eq!(stats.staging_grown, 0, "{stats:?}");
    }

    /// The engine stops taking bytes when growth is refused and the buffer's
    /// allocation is full; only the reader's drain can start it again (no
    /// write of the reader's kicks it here).
    #[test]
    fn a_reader_that_drains_a_full_staging_buffer_restarts_the_engine() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        engine.set_budget(MemoryBudget { headroom: || 1 << 20, per_connection: 0, reserve: 1 << 20 });
        let listener = listen(&mut pair, &mut engine, &service, 1);
        let (stream, client) = one_connection(&mut pair, &mut engine, &service, listener, 50_400);
        let data = payload(4, 100_000);
        let caller = service.clone();
        let reader = thread::spawn(move || {
            let (mut buffer, mut received) = ([0u8; 100], Vec::new());
            loop {
                match caller.read(stream, &mut buffer, after_ms(10_000)) {
                    Ok(0) => return received,
                    Ok(count) => received.extend_from_slice(&buffer[..count]),
                    Err(error) => panic!("read failed: {error:?}"),
                }
            }
        });
        let mut sent = 0;
        let done = drive(&mut pair, &mut engine, 400_000, |pair| {
            pair.client_socket(client, |socket| send_then_close(socket, &data, &mut sent));
            reader.is_finished()
        });
        assert!(done, "the reader stalled after {sent} bytes sent");
        assert!(reader.join().unwrap() == data, "received bytes differ");
        assert!(service.stats().staging_refused > 0, "{:?}", service.stats());
    }

    #[test]
    fn staging_room_grows_by_doubling_up_to_its_limit_and_only_within_the_budget() {
        let mut buffer: VecDeque<u8> = VecDeque::with_capacity(512);
        buffer.extend([7u8; 500]);
        // Fits in the spare allocation: no growth.
        assert_eq!(staging_room(&mut buffer, 4096, 12, None), (12, None));
        // Does not fit: doubled.
        let (room, grown) = staging_room(&mut buffer, 4096, 100, None);
        assert_eq!((room, grown), (100, Some(true)));
        assert!(buffer.capacity() >= 1024, "{}", buffer.capacity());
        // Never beyond the limit, however much is wanted.
        let (room, _) = staging_room(&mut buffer, 4096, 1 << 20, None);
        assert_eq!(room, 4096 - 500);
        // Refused: only the spare allocation, whatever the limit.
        let mut tight: VecDeque<u8> = VecDeque::with_capacity(512);
        // Wrapped around: the front is drained, the back refilled.
        tight.extend([1u8; 512]);
        tight.drain(..300);
        tight.extend([2u8; 200]);
        let refuse = MemoryBudget { headroom: || 0, per_connection: 0, reserve: 1 };
        let spare = tight.capacity() - tight.len();
        assert_eq!(staging_room(&mut tight, 4096, 1000, Some(refuse)), (spare, Some(false)));
        let allow = MemoryBudget { headroom: || 1 << 30, per_connection: 0, reserve: 1 };
        let (room, grown) = staging_room(&mut tight, 4096, 1000, Some(allow));
        assert_eq!((room, grown), (1000, Some(true)));
        tight.extend(core::iter::repeat_n(3u8, room));
        assert_eq!(tight.len(), 412 + 1000);
        assert!(
            tight.iter().take(212).all(|&byte| byte == 1) && tight.iter().skip(412).all(|&byte| byte == 3)
        );
        // A limit below what it holds: no room, no panic.
        assert_eq!(staging_room(&mut tight, 100, 10, None).0, 0);
    }

    /// Accepts one connection (the client connects from `local_port`).
    fn one_connection(
        pair: &mut Pair,
        engine: &mut Engine,
        service: &Service,
        listener: SocketId,
        local_port: u16,
    ) -> (SocketId, crate::sockets::SocketHandle) {
        let client = pair.connect(PORT, local_port);
        let caller = service.clone();
        let accepting = thread::spawn(move || caller.accept(listener, after_ms(10_000)));
        assert!(drive(pair, engine, 10_000, |_| accepting.is_finished()));
        (accepting.join().unwrap().unwrap(), client)
    }

    #[test]
    fn a_closed_handle_is_stale_even_after_its_slot_is_reused() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let listener = listen(&mut pair, &mut engine, &service, 1);
        let (first, _) = one_connection(&mut pair, &mut engine, &service, listener, 50_100);
        service.close(first).unwrap();
        let mut buffer = [0u8; 8];
        assert_eq!(service.read(first, &mut buffer, None), Err(SocketError::NoSuchSocket));
        assert_eq!(service.close(first), Err(SocketError::NoSuchSocket));
        drive(&mut pair, &mut engine, 100, |_| false);
        let (second, _) = one_connection(&mut pair, &mut engine, &service, listener, 50_101);
        assert_eq!(second.index, first.index, "the slot is reused");
        assert_eq!(service.write(first, b"x", None), Err(SocketError::NoSuchSocket));
        assert_eq!(service.read(listener, &mut buffer, None), Err(SocketError::WrongKind));
        assert_eq!(service.accept(second, None), Err(SocketError::WrongKind));
        assert_eq!(
            service.read(SocketId::from_bits(u64::MAX), &mut buffer, None),
            Err(SocketError::NoSuchSocket)
        );
        let caller = service.clone();
        let again = thread::spawn(move || caller.listen(PORT, 4, 16, 1));
        assert!(drive(&mut pair, &mut engine, 10_000, |_| again.is_finished()));
        assert_eq!(again.join().unwrap(), Err(SocketError::AddressInUse));
    }

    #[test]
    fn a_read_with_a_deadline_times_out_and_a_reset_is_reported() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let listener = listen(&mut pair, &mut engine, &service, 1);
        let (stream, client) = one_connection(&mut pair, &mut engine, &service, listener, 50_200);
        let mut buffer = [0u8; 8];
        assert_eq!(service.read(stream, &mut buffer, after_ms(30)), Err(SocketError::TimedOut));
        let caller = service.clone();
        let reader = thread::spawn(move || {
            let mut buffer = [0u8; 8];
            caller.read(stream, &mut buffer, after_ms(10_000))
        });
        drive(&mut pair, &mut engine, 20, |_| false);
        pair.client_socket(client, |socket| socket.abort());
        assert!(drive(&mut pair, &mut engine, 10_000, |_| reader.is_finished()), "the reader never woke");
        assert_eq!(reader.join().unwrap(), Err(SocketError::Reset));
        assert_eq!(service.write(stream, b"late", None), Err(SocketError::Reset));
        let ready = service.wait(stream, Interest { readable: true, writable: false }, None).unwrap();
        assert!(ready.hang_up && ready.readable, "{ready:?}");
    }

    #[test]
    fn a_reset_connection_frees_its_place_under_the_cap_before_its_handle_closes() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let caller = service.clone();
        let listening = thread::spawn(move || caller.listen(PORT, 1, 1, 1));
        assert!(drive(&mut pair, &mut engine, 10_000, |_| listening.is_finished()));
        let listener = listening.join().unwrap().unwrap();
        let (first, client) = one_connection(&mut pair, &mut engine, &service, listener, 50_250);
        assert_eq!(service.connections(), 1);
        // The peer resets; the owner has not looked at its handle yet.
        pair.client_socket(client, |socket| socket.abort());
        assert!(
            drive(&mut pair, &mut engine, 10_000, |_| service.connections() == 0),
            "a dead connection still counts against the cap"
        );
        // A new client gets the one place while the dead handle is open.
        let (second, _) = one_connection(&mut pair, &mut engine, &service, listener, 50_251);
        assert_eq!(service.connections(), 1);
        let mut buffer = [0u8; 8];
        assert_eq!(service.read(first, &mut buffer, None), Err(SocketError::Reset));
        service.close(first).unwrap();
        drive(&mut pair, &mut engine, 100, |_| false);
        assert_eq!(service.connections(), 1, "closing the dead handle counted the live one off");
        assert_eq!(service.close(first), Err(SocketError::NoSuchSocket));
        service.close(second).unwrap();
        assert!(drive(&mut pair, &mut engine, 10_000, |_| service.connections() == 0));
    }

    #[test]
    fn a_lost_stack_resets_every_connection_and_listeners_serve_on_the_new_one() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let listener = listen(&mut pair, &mut engine, &service, 1);
        let (stream, _) = one_connection(&mut pair, &mut engine, &service, listener, 50_300);
        let (closed, _) = one_connection(&mut pair, &mut engine, &service, listener, 50_301);
        service.close(closed).unwrap();
        let _unaccepted = pair.connect(PORT, 50_302);
        drive(&mut pair, &mut engine, 200, |_| false);
        assert_eq!(service.connections(), 2, "one accepted and open, one waiting to be accepted");
        let caller = service.clone();
        let reader = thread::spawn(move || {
            let mut buffer = [0u8; 8];
            caller.read(stream, &mut buffer, after_ms(10_000))
        });
        drive(&mut pair, &mut engine, 20, |_| false);
        // The network thread died: a new stack, the same engine.
        let mut pair = Pair::new(TcpTuning::default());
        assert_eq!(engine.stack_lost(), 2, "the open connection and the unaccepted one");
        assert!(drive(&mut pair, &mut engine, 10_000, |_| reader.is_finished()), "the reader never woke");
        assert_eq!(reader.join().unwrap(), Err(SocketError::Reset));
        assert_eq!(service.write(stream, b"late", None), Err(SocketError::Reset));
        assert_eq!(service.connections(), 0);
        // The listener's handle serves on the new stack.
        let (fresh, _) = one_connection(&mut pair, &mut engine, &service, listener, 50_303);
        assert_eq!(service.connections(), 1);
        assert_eq!(service.accept(listener, after_ms(20)), Err(SocketError::TimedOut), "the orphan is gone");
        service.close(stream).unwrap();
        service.close(fresh).unwrap();
        assert!(drive(&mut pair, &mut engine, 10_000, |_| service.connections() == 0));
        let stats = service.stats();
        assert_eq!(stats.open, 0, "{stats:?}");
    }

    #[test]
    fn a_writer_facing_a_client_that_never_reads_blocks_with_bounded_memory() {
        use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let listener = listen(&mut pair, &mut engine, &service, 1);
        let (stream, _client) = one_connection(&mut pair, &mut engine, &service, listener, 50_300);
        let written = Arc::new(AtomicUsize::new(0));
        let (caller, progress) = (service.clone(), written.clone());
        let writer = thread::spawn(move || {
            let chunk = payload(5, 1000);
            loop {
                match caller.write(stream, &chunk, None) {
                    Ok(count) => progress.fetch_add(count, Relaxed),
                    Err(error) => return error,
                };
            }
        });
        assert!(
            drive(&mut pair, &mut engine, 100_000, |_| written.load(Relaxed) > 0),
            "the writer never wrote"
        );
        // 5 s of simulated time (below the idle timeout): the writer stalls.
        drive(&mut pair, &mut engine, 5000, |_| false);
        let stalled = written.load(Relaxed);
        drive(&mut pair, &mut engine, 500, |_| false);
        assert_eq!(written.load(Relaxed), stalled, "the writer still progresses");
        assert!(!writer.is_finished(), "the writer is parked, not failed");
        let tuning = TcpTuning::default();
        let bound = 64 * 1024 + tuning.tx_buffer + staging_limit(tuning.tx_buffer);
        assert!(stalled <= bound, "{stalled} bytes written into a stalled connection (bound {bound})");
        assert!(pair.server.borrow().buffered_bytes() <= tuning.rx_buffer + tuning.tx_buffer);
        // Closing the socket wakes its blocked writer with a clean error.
        service.close(stream).unwrap();
        assert!(drive(&mut pair, &mut engine, 10_000, |_| writer.is_finished()));
        assert_eq!(writer.join().unwrap(), SocketError::NoSuchSocket);
    }

    #[test]
    fn listening_on_many_ports_and_closing_leaves_a_bounded_number_of_records() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let before = pair.server.borrow().port_records();
        for port in 2000..2200u16 {
            let caller = service.clone();
            let listening = thread::spawn(move || caller.listen(port, 4, 16, 1));
            assert!(drive(&mut pair, &mut engine, 10_000, |_| listening.is_finished()));
            let listener = listening.join().unwrap().unwrap();
            service.close(listener).unwrap();
        }
        drive(&mut pair, &mut engine, 100, |_| false);
        let records = pair.server.borrow().port_records();
        assert!(records <= before + KEPT_PORT_RECORDS + 1, "{records} port records left behind");
        // A port no longer listened on refuses; one listened on again serves.
        let refused = pair.connect(2000, 50_499);
        let closed = drive(&mut pair, &mut engine, 10_000, |pair| {
            pair.client_socket(refused, |s| s.state() == State::Closed)
        });
        assert!(closed, "a SYN to a forgotten port was not refused");
        let listener = listen(&mut pair, &mut engine, &service, 2);
        assert_serves(&mut pair, &mut engine, &service, listener, 50_500);
    }

    /// A new connection to `listener` from `local_port` gets its bytes read.
    fn assert_serves(
        pair: &mut Pair,
        engine: &mut Engine,
        service: &Service,
        listener: SocketId,
        local_port: u16,
    ) {
        let (stream, client) = one_connection(pair, engine, service, listener, local_port);
        pair.client_socket(client, |s| s.send_slice(b"served").unwrap());
        let caller = service.clone();
        let reader = thread::spawn(move || {
            let mut buffer = [0u8; 16];
            let count = caller.read(stream, &mut buffer, after_ms(10_000)).unwrap();
            buffer[..count].to_vec()
        });
        assert!(drive(pair, engine, 10_000, |_| reader.is_finished()));
        assert_eq!(reader.join().unwrap(), b"served");
    }

    #[test]
    fn closing_a_group_resets_its_connections_and_frees_the_port() {
        let mut pair = Pair::new(TcpTuning::default());
        let (service, mut engine) = service();
        let listener = listen(&mut pair, &mut engine, &service, 9);
        let clients: Vec<_> = (0..3)
            .map(|i| one_connection(&mut pair, &mut engine, &service, listener, 50_400 + i).1)
            .collect();
        assert_eq!(service.close_group(9), 3);
        let reset = drive(&mut pair, &mut engine, 10_000, |pair| {
            clients.iter().all(|&c| pair.client_socket(c, |s| s.state() == State::Closed))
        });
        let states: Vec<_> = clients.iter().map(|&c| pair.client_socket(c, |s| s.state())).collect();
        assert!(reset, "the clients were not reset: {states:?}");
        assert_eq!(service.connections(), 0);
        // The port can be listened on again, and serves.
        let listener = listen(&mut pair, &mut engine, &service, 10);
        assert_serves(&mut pair, &mut engine, &service, listener, 50_450);
    }
}
