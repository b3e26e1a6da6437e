//! Mailboxes between isolated tasks: system calls 9–13, whose rules
//! (backpressure, order, ids with generations, page transfer, what a task's
//! death does) are written down in `tenfold_abi::mailbox`. Owns the table
//! of every task's mailboxes, the messages queued in them (copies and
//! pages), the parked senders and receivers, and the per-task accounting.
//!
//! Built from the runtime's actor mailboxes (`tenfold_runtime::sync`):
//! its [`Envelope`] (sender, tag, body), [`MailboxId`] (slot and
//! generation, as its `Registry` names mailboxes) and [`WaitQueue`] with
//! its lost-wake-up protocol; the same bound, per-sender FIFO and
//! `Starved` rule as its `Mailbox`. Not its `Mailbox`/`Address` types
//! themselves: those park holding the message and an `Address` on the
//! caller's stack, and a task can be killed while parked, so here a parked
//! thread owns nothing — its registration lives in the table, where the
//! end of its task finds and removes it.
//!
//! A task's end ([`release_task`], from the task's drop) retires its
//! mailboxes, frees their messages and pages, wakes the senders parked on
//! them (they fail with `NoSuchMailbox`) and withdraws its own parked
//! registration, passing on a wake-up it got but will never use. Its
//! messages queued elsewhere stay deliverable; their bytes stop counting
//! against anyone.
//!
//! Death notices of monitored children (`tenfold_abi::task`) are kernel
//! messages: room for one is reserved when the child is spawned
//! ([`reserve_notice`]) — a mailbox's capacity covers its queued messages
//! plus the notices it was promised — so [`deliver_notice`] never finds it
//! full, and the number of notices is bounded by the capacity.
//!
//! One `IrqLock` guards the table; user memory is copied outside it (the
//! copy into a message before the send takes the lock, the copy out of one
//! after the receive dropped it), so the lock is held for queue operations
//! and page-table edits only.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use tenfold_abi::mailbox::{
    ANY_TAG, DOWN_TAG, FOREVER, KERNEL_SENDER, KERNEL_TAGS, ReceiveInfo, TRY, make_id, split_id,
};
use tenfold_abi::task::Down;
use tenfold_abi::{
    Error, MAX_MAILBOX_CAPACITY, MAX_MAILBOXES, MAX_MESSAGE, MAX_QUEUED_BYTES, MAX_TRANSFER_PAGES,
};
use tenfold_runtime::sync::{Envelope, MailboxId, WaitQueue, WaiterId, Wakeups};

use super::usercopy::{check_writable, copy_from_user, copy_to_user};
use super::{Task, syscalls};
use crate::arch::IrqLock;
use crate::arch::paging::{PAGE_SIZE, UserAccess};
use crate::memory::frames;
use crate::sched::{self, ThreadRef};
use crate::sync::KernelThreads;
use crate::time;

type Queue = WaitQueue<KernelThreads>;

/// Identifies a task in the table while it lives: its `Task`'s address
/// (boxed, so stable). A later task may get the same address, so a message
/// names its sender's record by key *and* serial.
type TaskKey = usize;

fn key(task: &Task) -> TaskKey {
    task as *const Task as usize
}

/// What a message carries.
enum Body {
    Copy(Vec<u8>),
    /// Frames taken out of the sender's address space, in page order.
    Pages(Vec<u64>),
}

impl Body {
    fn bytes(&self) -> u64 {
        match self {
            Body::Copy(data) => data.len() as u64,
            Body::Pages(frames) => frames.len() as u64 * PAGE_SIZE,
        }
    }

    /// Gives the memory back (pages to the frame allocator).
    fn free(self) {
        if let Body::Pages(pages) = self {
            pages.into_iter().for_each(frames::free);
        }
    }
}

struct Message {
    /// `from` is the sender's thread id, as the receiver learns it.
    envelope: Envelope<Body>,
    /// Whose bytes-in-flight this message counts against.
    charged: (TaskKey, u64),
}

struct Mailbox {
    owner: TaskKey,
    capacity: usize,
    queue: VecDeque<Message>,
    /// Death notices promised (room kept for them): `queue.len() +
    /// reserved <= capacity` always.
    reserved: usize,
    senders: Queue,
    receiver: Queue,
}

struct Slot {
    generation: u32,
    mailbox: Option<Mailbox>,
}

/// Where a task's thread is parked: at most one place at a time.
#[derive(Clone, Copy)]
struct Parked {
    mailbox: MailboxId,
    as_sender: bool,
    waiter: WaiterId,
}

/// What the table keeps per task that has used a mailbox.
struct TaskRecord {
    serial: u64,
    mailboxes: u64,
    queued_bytes: u64,
    parked: Option<Parked>,
}

#[derive(Default)]
struct Totals {
    created: u64,
    sent: u64,
    pages_sent: u64,
    received: u64,
    closed: u64,
    retired_by_exit: u64,
    refused_full: u64,
    notices: u64,
}

impl Mailbox {
    /// Whether a task's message can get in now.
    fn has_room(&self) -> bool {
        self.queue.len() + self.reserved < self.capacity
    }

    /// Queues a kernel message (sender `KERNEL_SENDER`, charged to nobody:
    /// key 0 is never a task's) and wakes the receiver. Room is the
    /// caller's to check or to have reserved.
    fn push_kernel_message(&mut self, tag: u32, body: Vec<u8>, wakeups: &mut Wakeups<KernelThreads>) {
        let envelope = Envelope { from: KERNEL_SENDER, tag, body: Body::Copy(body) };
        self.queue.push_back(Message { envelope, charged: (0, 0) });
        self.receiver.wake_one(wakeups);
    }
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    tasks: BTreeMap<TaskKey, TaskRecord>,
    next_serial: u64,
    totals: Totals,
}

static TABLE: IrqLock<Table> = IrqLock::new(Table {
    slots: Vec::new(),
    free: Vec::new(),
    tasks: BTreeMap::new(),
    next_serial: 1,
    totals: Totals {
        created: 0,
        sent: 0,
        pages_sent: 0,
        received: 0,
        closed: 0,
        retired_by_exit: 0,
        refused_full: 0,
        notices: 0,
    },
});

impl Table {
    fn record(&mut self, task: TaskKey) -> &mut TaskRecord {
        let serial = &mut self.next_serial;
        self.tasks.entry(task).or_insert_with(|| {
            *serial += 1;
            TaskRecord { serial: *serial - 1, mailboxes: 0, queued_bytes: 0, parked: None }
        })
    }

    fn mailbox(&mut self, id: MailboxId) -> Option<&mut Mailbox> {
        self.slots.get_mut(id.slot as usize).filter(|slot| slot.generation == id.generation)?.mailbox.as_mut()
    }

    /// A message left the queues: its bytes stop counting against its sender
    /// (if that sender still lives).
    fn uncharge(&mut self, (task, serial): (TaskKey, u64), bytes: u64) {
        if let Some(record) = self.tasks.get_mut(&task).filter(|record| record.serial == serial) {
            record.queued_bytes -= bytes;
        }
    }

    /// Withdraws `task`'s parked registration, if any; a wake-up it was given
    /// passes to the next waiter (it would have been used for room or a
    /// message that is still there).
    fn unpark_registration(&mut self, task: TaskKey, wakeups: &mut Wakeups<KernelThreads>) {
        let Some(parked) = self.tasks.get_mut(&task).and_then(|record| record.parked.take()) else { return };
        if let Some(mailbox) = self.mailbox(parked.mailbox) {
            let queue = if parked.as_sender { &mut mailbox.senders } else { &mut mailbox.receiver };
            if queue.remove(parked.waiter) {
                queue.wake_one(wakeups);
            }
        }
    }

    /// Registers `task`'s thread as waiting on `id` (first round), or keeps
    /// its place and clears its notification (later rounds).
    fn park_on(&mut self, task: TaskKey, thread: ThreadRef, id: MailboxId, as_sender: bool) {
        let parked = self.tasks.get(&task).and_then(|record| record.parked);
        let Some(mailbox) = self.mailbox(id) else { return };
        let queue = if as_sender { &mut mailbox.senders } else { &mut mailbox.receiver };
        let waiter = match parked {
            Some(parked) => {
                queue.rearm(parked.waiter);
                parked.waiter
            }
            None => queue.register(thread),
        };
        self.record(task).parked = Some(Parked { mailbox: id, as_sender, waiter });
    }

    /// Retires `id`'s mailbox: the id names nothing from now on; messages
    /// are freed and everyone parked on it is woken (to find it gone).
    fn retire(&mut self, id: MailboxId, wakeups: &mut Wakeups<KernelThreads>) {
        let Some(slot) = self.slots.get_mut(id.slot as usize).filter(|slot| slot.generation == id.generation)
        else {
            return;
        };
        let Some(mut mailbox) = slot.mailbox.take() else { return };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.slot);
        mailbox.senders.wake_all(wakeups);
        mailbox.receiver.wake_all(wakeups);
        for message in mailbox.queue.drain(..) {
            let bytes = message.envelope.body.bytes();
            if let Some(record) =
                self.tasks.get_mut(&message.charged.0).filter(|record| record.serial == message.charged.1)
            {
                record.queued_bytes -= bytes;
            }
            message.envelope.body.free();
        }
        if let Some(record) = self.tasks.get_mut(&mailbox.owner) {
            record.mailboxes -= 1;
        }
    }
}

/// When a wait ends: `None` waits for ever.
fn deadline(timeout_ns: u64) -> Option<u64> {
    match timeout_ns {
        TRY => Some(0),
        FOREVER => None,
        nanos => Some(time::now_ns().saturating_add(nanos)),
    }
}

fn passed(deadline: Option<u64>) -> bool {
    deadline.is_some_and(|deadline| time::now_ns() >= deadline)
}

fn parse_id(id: u64) -> MailboxId {
    let (slot, generation) = split_id(id);
    MailboxId { slot, generation }
}

fn tag_of(tag: u64) -> Result<u32, Error> {
    u32::try_from(tag).map_err(|_| Error::BadArgument)
}

/// A tag a task may send with: the kernel's own are refused, so a notice
/// cannot be forged.
fn send_tag(tag: u64) -> Result<u32, Error> {
    tag_of(tag).ok().filter(|&tag| tag < KERNEL_TAGS).ok_or(Error::BadArgument)
}

/// `mailbox_create(capacity) -> id`.
pub fn create(task: &Task, capacity: u64) -> Result<u64, Error> {
    if capacity == 0 || capacity > MAX_MAILBOX_CAPACITY {
        return Err(Error::BadArgument);
    }
    let mut table = TABLE.lock();
    let record = table.record(key(task));
    if record.mailboxes >= MAX_MAILBOXES {
        return Err(Error::OutOfQuota);
    }
    record.mailboxes += 1;
    let mailbox = Mailbox {
        owner: key(task),
        capacity: capacity as usize,
        queue: VecDeque::new(),
        reserved: 0,
        senders: Queue::new(),
        receiver: Queue::new(),
    };
    let slot = match table.free.pop() {
        Some(slot) => slot,
        None => {
            table.slots.push(Slot { generation: 1, mailbox: None });
            table.slots.len() as u32 - 1
        }
    };
    let entry = &mut table.slots[slot as usize];
    entry.mailbox = Some(mailbox);
    let id = make_id(slot, entry.generation);
    table.totals.created += 1;
    Ok(id)
}

/// `mailbox_close(id) -> 0`: only the owner may.
pub fn close(task: &Task, id: u64) -> Result<u64, Error> {
    let id = parse_id(id);
    let mut wakeups = Wakeups::new();
    {
        let mut table = TABLE.lock();
        let mailbox = table.mailbox(id).ok_or(Error::NoSuchMailbox)?;
        if mailbox.owner != key(task) {
            return Err(Error::BadArgument);
        }
        table.retire(id, &mut wakeups);
        table.totals.closed += 1;
    }
    wakeups.unpark_all();
    Ok(0)
}

/// What a send delivers.
enum Payload {
    /// Bytes at a user address (copied in before each attempt).
    Copy { address: u64, length: u64 },
    /// A whole `map` region of the sender's: (start, pages).
    Pages { start: u64, pages: u64 },
}

impl Payload {
    fn bytes(&self) -> u64 {
        match *self {
            Payload::Copy { length, .. } => length,
            Payload::Pages { pages, .. } => pages * PAGE_SIZE,
        }
    }
}

/// `mailbox_send(id, tag, pointer, length, timeout) -> 0`.
pub fn send(
    task: &Task,
    id: u64,
    tag: u64,
    address: u64,
    length: u64,
    timeout_ns: u64,
) -> Result<u64, Error> {
    if length > MAX_MESSAGE {
        return Err(Error::BadLength);
    }
    deliver(task, id, send_tag(tag)?, Payload::Copy { address, length }, deadline(timeout_ns))
}

/// `mailbox_send_pages(id, tag, address, pages, timeout) -> 0`.
pub fn send_pages(
    task: &Task,
    id: u64,
    tag: u64,
    start: u64,
    pages: u64,
    timeout_ns: u64,
) -> Result<u64, Error> {
    if pages == 0 || pages > MAX_TRANSFER_PAGES {
        return Err(Error::BadLength);
    }
    let tag = send_tag(tag)?;
    match task.inner().regions.iter().find(|&&(region, _)| region == start) {
        Some(&(_, region_pages)) if region_pages == pages => {}
        Some(_) => return Err(Error::BadLength),
        None => return Err(Error::BadAddress),
    }
    deliver(task, id, tag, Payload::Pages { start, pages }, deadline(timeout_ns))
}

fn deliver(task: &Task, id: u64, tag: u32, payload: Payload, deadline: Option<u64>) -> Result<u64, Error> {
    let id = parse_id(id);
    let me = key(task);
    let thread = sched::current();
    let from = u64::from(thread.tid());
    let bytes = payload.bytes();
    loop {
        // Copied afresh each round: a parked sender holds nothing.
        let mut copy = match payload {
            Payload::Copy { address, length } => {
                let mut data = vec![0u8; length as usize];
                let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
                copy_from_user(space, address, &mut data)?;
                Some(data)
            }
            Payload::Pages { .. } => None,
        };
        let mut wakeups = Wakeups::new();
        let outcome = {
            let mut table = TABLE.lock();
            let table = &mut *table;
            let sender_serial = table.record(me).serial;
            match table.mailbox(id) {
                None => {
                    if let Some(record) = table.tasks.get_mut(&me) {
                        record.parked = None;
                    }
                    Some(Err(Error::NoSuchMailbox))
                }
                Some(mailbox) if mailbox.has_room() => {
                    let record = table.record(me);
                    if record.queued_bytes + bytes > MAX_QUEUED_BYTES {
                        table.unpark_registration(me, &mut wakeups);
                        Some(Err(Error::OutOfQuota))
                    } else {
                        record.queued_bytes += bytes;
                        // Our registration, if any, is used up: leave the line.
                        if let Some(parked) = record.parked.take()
                            && let Some(mailbox) = table.mailbox(parked.mailbox)
                        {
                            mailbox.senders.remove(parked.waiter);
                        }
                        let body = match payload {
                            Payload::Copy { .. } => Body::Copy(copy.take().expect("copied above")),
                            Payload::Pages { start, pages } => Body::Pages(take_region(task, start, pages)),
                        };
                        let mailbox = table.mailbox(id).expect("checked above");
                        let envelope = Envelope { from, tag, body };
                        mailbox.queue.push_back(Message { envelope, charged: (me, sender_serial) });
                        mailbox.receiver.wake_one(&mut wakeups);
                        // Room left: a parked sender may take it.
                        if mailbox.has_room() {
                            mailbox.senders.wake_one(&mut wakeups);
                        }
                        table.totals.sent += 1;
                        if matches!(payload, Payload::Pages { .. }) {
                            table.totals.pages_sent += bytes / PAGE_SIZE;
                        }
                        Some(Ok(0))
                    }
                }
                Some(_) if passed(deadline) => {
                    table.unpark_registration(me, &mut wakeups);
                    table.totals.refused_full += 1;
                    Some(Err(Error::Full))
                }
                Some(_) => {
                    table.park_on(me, thread, id, true);
                    None
                }
            }
        };
        wakeups.unpark_all();
        match outcome {
            Some(result) => return result,
            None => {
                drop(copy);
                sched::park(deadline);
            }
        }
    }
}

/// Unmaps the sender's region (validated by the caller) and returns its
/// frames: from here the sender has no mapping of them.
fn take_region(task: &Task, start: u64, pages: u64) -> Vec<u64> {
    let inner = task.inner();
    let space = inner.space.as_mut().expect("a task sending has its space");
    let taken: Vec<u64> = (0..pages).filter_map(|page| space.unmap(start + page * PAGE_SIZE)).collect();
    inner.regions.retain(|&(region, _)| region != start);
    task.sync_frames(space);
    taken
}

/// Maps a page message's `frames` at a fresh address of `task`'s map
/// window, as a region it may `unmap`; on failure the frames stay the
/// message's.
fn map_region(task: &Task, frames: &[u64]) -> Result<u64, Error> {
    let access = UserAccess { write: true, execute: false };
    syscalls::map_region(task, frames.len() as u64, access, |index| Ok(frames[index as usize]), |_| {})
}

/// `mailbox_receive(id, filter, pointer, length, timeout, info) -> length`.
pub fn receive(task: &Task, args: [u64; 6]) -> Result<u64, Error> {
    let [id, filter, address, length, timeout_ns, info_address] = args;
    let id = parse_id(id);
    let wanted = match filter {
        ANY_TAG => None,
        tag => Some(tag_of(tag)?),
    };
    let info_size = core::mem::size_of::<ReceiveInfo>() as u64;
    {
        // Checked before a message leaves the queue, so the copies after it
        // cannot fail (only this task's own thread changes its mappings).
        let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
        check_writable(space, address, length.min(MAX_MESSAGE))?;
        check_writable(space, info_address, info_size)?;
    }
    let deadline = deadline(timeout_ns);
    let me = key(task);
    let thread = sched::current();
    loop {
        let mut wakeups = Wakeups::new();
        let outcome = {
            let mut table = TABLE.lock();
            let table = &mut *table;
            let mailbox = match table.mailbox(id) {
                Some(mailbox) if mailbox.owner == me => mailbox,
                Some(_) => return Err(Error::BadArgument),
                None => {
                    if let Some(record) = table.tasks.get_mut(&me) {
                        record.parked = None;
                    }
                    return Err(Error::NoSuchMailbox);
                }
            };
            let found =
                mailbox.queue.iter().position(|message| wanted.is_none_or(|tag| message.envelope.tag == tag));
            // Nothing that matches can get in: no room for a task's message,
            // and no notice promised that would match.
            let notice_may_come = mailbox.reserved > 0 && wanted.is_none_or(|tag| tag == DOWN_TAG);
            let full = !mailbox.has_room() && !notice_may_come;
            match found {
                Some(index) => {
                    let envelope = &mailbox.queue[index].envelope;
                    let mut info = ReceiveInfo {
                        tag: u64::from(envelope.tag),
                        length: envelope.body.bytes(),
                        sender: envelope.from,
                        pages_address: 0,
                    };
                    let taken = match &envelope.body {
                        Body::Copy(data) if data.len() as u64 > length => Err(Error::BadLength),
                        Body::Copy(_) => Ok(()),
                        Body::Pages(frames) => map_region(task, frames).map(|at| info.pages_address = at),
                    };
                    let message = match taken {
                        Ok(()) => {
                            let message = mailbox.queue.remove(index).expect("found above");
                            mailbox.senders.wake_one(&mut wakeups);
                            Some(message)
                        }
                        Err(_) => None,
                    };
                    table.unpark_registration(me, &mut wakeups);
                    if let Some(message) = &message {
                        table.uncharge(message.charged, info.length);
                        table.totals.received += 1;
                    }
                    Some((taken, Some(info), message))
                }
                None if full || passed(deadline) => {
                    table.unpark_registration(me, &mut wakeups);
                    Some((Err(if full { Error::Starved } else { Error::Timeout }), None, None))
                }
                None => {
                    table.park_on(me, thread, id, false);
                    None
                }
            }
        };
        wakeups.unpark_all();
        let Some((taken, info, message)) = outcome else {
            sched::park(deadline);
            continue;
        };
        let space = task.inner().space.as_ref().ok_or(Error::BadAddress)?;
        let Some(info) = info else { return taken.map(|()| 0) };
        copy_to_user(space, info_address, &info_bytes(&info))?;
        taken?;
        if let Some(Message { envelope: Envelope { body: Body::Copy(data), .. }, .. }) = message {
            copy_to_user(space, address, &data)?;
        }
        // A page message's frames now belong to this task's space.
        return Ok(info.length);
    }
}

fn info_bytes(info: &ReceiveInfo) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (chunk, value) in
        bytes.chunks_exact_mut(8).zip([info.tag, info.length, info.sender, info.pages_address])
    {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// The end of `task` (exit or fault): see the module doc. Called when the
/// task is dropped, outside the scheduler lock (it wakes threads).
pub fn release_task(task: &Task) {
    let me = key(task);
    let mut wakeups = Wakeups::new();
    {
        let mut table = TABLE.lock();
        if !table.tasks.contains_key(&me) {
            return;
        }
        table.unpark_registration(me, &mut wakeups);
        let owned: Vec<MailboxId> = table
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.mailbox.as_ref().is_some_and(|mailbox| mailbox.owner == me))
            .map(|(index, slot)| MailboxId { slot: index as u32, generation: slot.generation })
            .collect();
        for id in owned {
            table.retire(id, &mut wakeups);
            table.totals.retired_by_exit += 1;
        }
        table.tasks.remove(&me);
    }
    wakeups.unpark_all();
}

/// Reserves room in `task`'s mailbox `id` for one death notice (for a
/// child about to be spawned). `Full` if none is left to promise.
pub fn reserve_notice(task: &Task, id: u64) -> Result<(), Error> {
    let mut table = TABLE.lock();
    let mailbox = table.mailbox(parse_id(id)).ok_or(Error::NoSuchMailbox)?;
    if mailbox.owner != key(task) {
        return Err(Error::BadArgument);
    }
    if !mailbox.has_room() {
        return Err(Error::Full);
    }
    mailbox.reserved += 1;
    Ok(())
}

/// Gives back a reservation whose child was never started.
pub fn cancel_notice(id: u64) {
    let mut table = TABLE.lock();
    if let Some(mailbox) = table.mailbox(parse_id(id)) {
        mailbox.reserved = mailbox.reserved.saturating_sub(1);
    }
}

/// Queues a child's death notice in mailbox `id`, in the room reserved for
/// it, and wakes the receiver; dropped if the mailbox is gone (closed, or
/// its owner died). Called once per monitored child, from its task's drop.
pub fn deliver_notice(id: u64, down: &Down) {
    let mut wakeups = Wakeups::new();
    {
        let mut table = TABLE.lock();
        let Some(mailbox) = table.mailbox(parse_id(id)) else { return };
        mailbox.reserved = mailbox.reserved.saturating_sub(1);
        mailbox.push_kernel_message(DOWN_TAG, down.to_bytes().to_vec(), &mut wakeups);
        table.totals.notices += 1;
    }
    wakeups.unpark_all();
}

/// Queues a kernel message (`tag` at or above `KERNEL_TAGS`, sender
/// `KERNEL_SENDER`) in mailbox `id` and wakes its receiver: a handoff from
/// the kernel, charged to nobody. `Full` if the mailbox has no room (the
/// kernel never waits on a task), `NoSuchMailbox` if it is gone.
pub fn deliver_kernel_message(id: u64, tag: u32, body: &[u8]) -> Result<(), Error> {
    if tag < KERNEL_TAGS || body.len() as u64 > MAX_MESSAGE {
        return Err(Error::BadArgument);
    }
    let mut wakeups = Wakeups::new();
    {
        let mut table = TABLE.lock();
        let mailbox = table.mailbox(parse_id(id)).ok_or(Error::NoSuchMailbox)?;
        if !mailbox.has_room() {
            return Err(Error::Full);
        }
        mailbox.push_kernel_message(tag, body.to_vec(), &mut wakeups);
        table.totals.sent += 1;
    }
    wakeups.unpark_all();
    Ok(())
}

/// What the mailboxes hold now, and totals since boot (the shell's
/// `mailboxes` line; the reclamation tests read it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub live: u64,
    pub messages: u64,
    pub bytes: u64,
    pub pages: u64,
    pub parked: u64,
    pub tasks: u64,
    pub created: u64,
    pub sent: u64,
    pub pages_sent: u64,
    pub received: u64,
    pub closed: u64,
    pub retired_by_exit: u64,
    pub refused_full: u64,
    /// Death notices promised now, and delivered since boot.
    pub reserved: u64,
    pub notices: u64,
}

pub fn stats() -> Stats {
    let table = TABLE.lock();
    let mut stats = Stats {
        tasks: table.tasks.len() as u64,
        created: table.totals.created,
        sent: table.totals.sent,
        pages_sent: table.totals.pages_sent,
        received: table.totals.received,
        closed: table.totals.closed,
        retired_by_exit: table.totals.retired_by_exit,
        refused_full: table.totals.refused_full,
        notices: table.totals.notices,
        ..Stats::default()
    };
    for mailbox in table.slots.iter().filter_map(|slot| slot.mailbox.as_ref()) {
        stats.live += 1;
        stats.messages += mailbox.queue.len() as u64;
        stats.reserved += mailbox.reserved as u64;
        stats.parked += (mailbox.senders.len() + mailbox.receiver.len()) as u64;
        for message in &mailbox.queue {
            stats.bytes += message.envelope.body.bytes();
            if let Body::Pages(frames) = &message.envelope.body {
                stats.pages += frames.len() as u64;
            }
        }
    }
    stats
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mailboxes: {} live, {} messages queued ({} bytes, {} pages), {} parked, {} tasks using them; \
             {} created, {} closed, {} retired at task end; {} sent ({} pages), {} received, {} refused full; \
             {} death notices promised, {} delivered",
            self.live,
            self.messages,
            self.bytes,
            self.pages,
            self.parked,
            self.tasks,
            self.created,
            self.closed,
            self.retired_by_exit,
            self.sent,
            self.pages_sent,
            self.received,
            self.refused_full,
            self.reserved,
            self.notices
        )
    }
}
