//! The contract between the Tenfold kernel and its isolated (ring-3) tasks:
//! system-call numbers, error codes, the user address-space layout and the
//! flags of each call. Plain types and constants only, shared by the kernel
//! (`kernel/`) and the task side (`user/lib`), the way Hubris keeps
//! `sys/abi`.
//!
//! Calling convention (`syscall` instruction): the number in `rax`,
//! arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`; the result comes back
//! in `rax`: a non-negative value on success, a negative [`Error`] on
//! failure. `rcx` and `r11` are clobbered (the CPU uses them); every other
//! register is preserved.
#![cfg_attr(not(test), no_std)]

/// Bumped whenever a number, an error code or an argument's meaning changes.
/// A task can ask the kernel for its version ([`Sys::AbiVersion`]).
pub const ABI_VERSION: u32 = 4;

/// System-call numbers.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sys {
    /// `exit(code: i64) -> !`: ends the task with `code`.
    Exit = 0,
    /// `yield() -> 0`: gives the CPU to another runnable thread.
    Yield = 1,
    /// `sleep(nanos: u64) -> 0`: sleeps at least `nanos` (at most
    /// [`MAX_SLEEP_NS`]).
    Sleep = 2,
    /// `clock() -> nanos`: nanoseconds since boot.
    Clock = 3,
    /// `write(ptr, len) -> len`: writes bytes to the console (at most
    /// [`MAX_WRITE`] per call).
    Write = 4,
    /// `map(len, flags) -> address`: maps `len` bytes (rounded up to pages)
    /// of zeroed anonymous memory, readable, writable if `flags` has
    /// [`MAP_WRITE`], never executable; counted against the task's quota.
    Map = 5,
    /// `unmap(address, len) -> 0`: unmaps pages a `map` made.
    Unmap = 6,
    /// `argument(ptr, len) -> length`: copies the task's argument string
    /// (up to `len` bytes) and returns its full length.
    Argument = 7,
    /// `abi_version() -> ABI_VERSION`.
    AbiVersion = 8,
    /// `mailbox_create(capacity) -> id`: a mailbox of `capacity` messages
    /// (1..=[`MAX_MAILBOX_CAPACITY`]) that only the caller receives from.
    /// At most [`MAX_MAILBOXES`] per task ([`Error::OutOfQuota`]). See
    /// [`mailbox`] for the rules.
    MailboxCreate = 9,
    /// `mailbox_send(id, tag, ptr, len, timeout_ns) -> 0`: copies `len`
    /// bytes (at most [`MAX_MESSAGE`]) into a message tagged `tag` (a
    /// `u32`). `timeout_ns`: [`mailbox::TRY`], a number of nanoseconds, or
    /// [`mailbox::FOREVER`].
    MailboxSend = 10,
    /// `mailbox_receive(id, filter, ptr, len, timeout_ns, info) -> length`:
    /// takes the oldest message (whose tag is `filter`, unless `filter` is
    /// [`mailbox::ANY_TAG`]) from a mailbox the caller owns, copies its body
    /// into `ptr` (at most `len` bytes, else [`Error::BadLength`] and the
    /// message stays) or, for a page message, maps its pages in the map
    /// window; fills a [`mailbox::ReceiveInfo`] at `info`.
    MailboxReceive = 11,
    /// `mailbox_close(id) -> 0`: the owner retires its mailbox; queued
    /// messages are dropped, parked senders fail with
    /// [`Error::NoSuchMailbox`].
    MailboxClose = 12,
    /// `mailbox_send_pages(id, tag, address, pages, timeout_ns) -> 0`: moves
    /// a whole `map` region of `pages` pages (at most [`MAX_TRANSFER_PAGES`])
    /// into a message without copying. On success the caller no longer has
    /// them (a later touch faults); on failure it keeps them.
    MailboxSendPages = 13,
    /// `socket_listen(port, backlog, max_connections) -> socket`: listens
    /// on TCP `port` (not 0, not the kernel's echo port 7) with a listen
    /// `backlog` (1..=[`socket::MAX_BACKLOG`]) and a cap on open
    /// connections (1..=[`socket::MAX_CONNECTIONS`]); the listener goes in
    /// the caller's socket table. See [`socket`] for the rules.
    SocketListen = 14,
    /// `socket_accept(listener, timeout_ns) -> socket`: the listener's next
    /// connection, into the caller's socket table; waits up to `timeout_ns`
    /// ([`socket::TRY`], nanoseconds, or [`socket::FOREVER`]).
    SocketAccept = 15,
    /// `socket_read(socket, ptr, len, timeout_ns) -> count`: reads at most
    /// `len` bytes (at most [`socket::MAX_IO`] per call) into `ptr`; at least
    /// one, or 0 once the peer finished sending and everything was read
    /// (end of stream). Waits for data up to `timeout_ns`.
    SocketRead = 16,
    /// `socket_write(socket, ptr, len, timeout_ns) -> count`: writes some of
    /// `len` bytes (at most [`socket::MAX_IO`]) from `ptr`: at least one,
    /// as many as there is room for; waits for room up to `timeout_ns`.
    SocketWrite = 17,
    /// `socket_shutdown(socket) -> 0`: finishes the write side (a FIN
    /// follows the bytes written).
    SocketShutdown = 18,
    /// `socket_close(socket) -> 0`: closes the socket (a FIN after the
    /// bytes written; a listener stops taking connections); the handle is
    /// stale at once.
    SocketClose = 19,
    /// `socket_wait(socket, interest, timeout_ns) -> readiness`: waits until
    /// the connection is ready for `interest` ([`socket::READABLE`] |
    /// [`socket::WRITABLE`]) or hung up; returns the readiness bits
    /// (those two and [`socket::HANG_UP`]).
    SocketWait = 20,
    /// `spawn(name_ptr, name_len, arg_ptr, arg_len, notify) -> task id`:
    /// starts the initrd program `name` (1..=[`task::MAX_NAME`] bytes) as a
    /// new isolated task, a *child* of the caller, with the argument
    /// (at most [`task::MAX_ARGUMENT`] bytes, UTF-8) and the default limits.
    /// With `notify` a mailbox the caller owns (not [`task::NONE`]) the
    /// child is monitored: its end is told there by a [`task::Down`]
    /// notice. See [`task`] for the rules.
    Spawn = 21,
    /// `kill(task) -> 0`: crashes a live child of the caller's by a real CPU
    /// fault (as the shell's `kill`); any other id fails with
    /// [`Error::NoSuchTask`].
    Kill = 22,
}

impl Sys {
    /// The call with number `number`, if there is one.
    pub fn from_number(number: u64) -> Option<Sys> {
        Some(match number {
            0 => Sys::Exit,
            1 => Sys::Yield,
            2 => Sys::Sleep,
            3 => Sys::Clock,
            4 => Sys::Write,
            5 => Sys::Map,
            6 => Sys::Unmap,
            7 => Sys::Argument,
            8 => Sys::AbiVersion,
            9 => Sys::MailboxCreate,
            10 => Sys::MailboxSend,
            11 => Sys::MailboxReceive,
            12 => Sys::MailboxClose,
            13 => Sys::MailboxSendPages,
            14 => Sys::SocketListen,
            15 => Sys::SocketAccept,
            16 => Sys::SocketRead,
            17 => Sys::SocketWrite,
            18 => Sys::SocketShutdown,
            19 => Sys::SocketClose,
            20 => Sys::SocketWait,
            21 => Sys::Spawn,
            22 => Sys::Kill,
            _ => return None,
        })
    }
}

/// Why a call failed: returned negated in `rax`.
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such system call.
    NoSuchCall = -1,
    /// A pointer or range is not in the task's half, not mapped, or not
    /// mapped with the access the call needs.
    BadAddress = -2,
    /// A length is out of range.
    BadLength = -3,
    /// Some other argument is invalid (flags, alignment).
    BadArgument = -4,
    /// The task's memory quota does not cover the request.
    OutOfQuota = -5,
    /// The kernel has no memory left for the request.
    OutOfMemory = -6,
    /// The mailbox is full: a `try` send, or the timeout passed while full.
    Full = -7,
    /// The id names no live mailbox: never made, closed, or its owner died
    /// or was restarted (ids carry a generation, so a slot's next mailbox
    /// never answers to an old id).
    NoSuchMailbox = -8,
    /// Nothing (that matched) arrived before the timeout.
    Timeout = -9,
    /// Selective receive on a full mailbox none of whose messages match:
    /// the one wanted can never get in (returned instead of deadlocking).
    Starved = -10,
    /// The handle names no socket of the caller's: never made, closed, the
    /// slot reused (handles carry a generation), or another task's.
    NoSuchSocket = -11,
    /// The peer reset the connection (or it timed out in the stack).
    Reset = -12,
    /// Writing after shutdown, or to a connection the peer closed.
    Closed = -13,
    /// Another listener has the port.
    AddressInUse = -14,
    /// The kernel has no network (no card, or not up yet).
    NoNetwork = -15,
    /// `spawn`: the initrd has no program of that name.
    NoSuchProgram = -16,
    /// `kill`: the id names no live child of the caller's (never one, or it
    /// ended; ids are never reused, so an old child's id stays dead).
    NoSuchTask = -17,
}

impl Error {
    /// The error a negative return value stands for.
    pub fn from_return(value: i64) -> Option<Error> {
        Some(match value {
            -1 => Error::NoSuchCall,
            -2 => Error::BadAddress,
            -3 => Error::BadLength,
            -4 => Error::BadArgument,
            -5 => Error::OutOfQuota,
            -6 => Error::OutOfMemory,
            -7 => Error::Full,
            -8 => Error::NoSuchMailbox,
            -9 => Error::Timeout,
            -10 => Error::Starved,
            -11 => Error::NoSuchSocket,
            -12 => Error::Reset,
            -13 => Error::Closed,
            -14 => Error::AddressInUse,
            -15 => Error::NoNetwork,
            -16 => Error::NoSuchProgram,
            -17 => Error::NoSuchTask,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Error::NoSuchCall => "no such call",
            Error::BadAddress => "bad address",
            Error::BadLength => "bad length",
            Error::BadArgument => "bad argument",
            Error::OutOfQuota => "out of quota",
            Error::OutOfMemory => "out of memory",
            Error::Full => "mailbox full",
            Error::NoSuchMailbox => "no such mailbox",
            Error::Timeout => "timed out",
            Error::Starved => "starved",
            Error::NoSuchSocket => "no such socket",
            Error::Reset => "connection reset",
            Error::Closed => "connection closed",
            Error::AddressInUse => "address in use",
            Error::NoNetwork => "no network",
            Error::NoSuchProgram => "no such program",
            Error::NoSuchTask => "no such task",
        }
    }
}

/// `map` flag: the pages are writable.
pub const MAP_WRITE: u64 = 1;
/// Longest console write per call.
pub const MAX_WRITE: u64 = 4096;
/// Longest sleep per call (10 s): a task sleeps longer by calling again.
pub const MAX_SLEEP_NS: u64 = 10_000_000_000;

/// Most mailboxes a task may own at once.
pub const MAX_MAILBOXES: u64 = 16;
/// Most messages one mailbox holds.
pub const MAX_MAILBOX_CAPACITY: u64 = 1024;
/// Longest copied message.
pub const MAX_MESSAGE: u64 = 64 * 1024;
/// Most pages one page message moves (256 KiB).
pub const MAX_TRANSFER_PAGES: u64 = 64;
/// Most bytes a task may have queued in mailboxes (sent, not yet received;
/// a page counts 4096): beyond it a send fails with
/// [`Error::OutOfQuota`].
pub const MAX_QUEUED_BYTES: u64 = 1 << 20;

/// Mailboxes between tasks: the rules of calls 9 to 13.
///
/// - **Ids.** An id is `generation << 32 | slot`. Closing a mailbox, or the
///   death of its owner, retires the id: every later call with it fails
///   with [`Error::NoSuchMailbox`] — also when the slot holds a new mailbox
///   (of a restarted task), whose generation differs.
/// - **Backpressure.** A mailbox holds at most its capacity. A send to a
///   full mailbox parks the sender (only its thread) until a receive makes
///   room or the timeout passes ([`Error::Full`]); with timeout [`TRY`] it
///   fails with [`Error::Full`] at once. A sender's bytes in flight are
///   bounded by [`MAX_QUEUED_BYTES`](super::MAX_QUEUED_BYTES)
///   ([`Error::OutOfQuota`], never parks).
/// - **Order.** Messages from one sender to one mailbox are received in the
///   order sent (FIFO); messages of different senders interleave in arrival
///   order, and nothing more is promised across senders. Selective receive
///   takes the oldest matching message and leaves the others in order.
/// - **Ownership.** A copy message owns a kernel copy of the bytes; a page
///   message owns the frames themselves: the sender's mapping is removed
///   when the send succeeds, the receiver gets them at a fresh address in
///   its map window (a region it may `unmap`). No page is ever mapped in two
///   tasks.
/// - **Death.** When a task ends (exit or fault), its mailboxes are retired,
///   their queued messages and pages freed, and senders parked on them fail
///   with [`Error::NoSuchMailbox`]; its own messages queued elsewhere stay
///   deliverable.
/// - **Kernel messages.** Tags from [`KERNEL_TAGS`] up are the kernel's: a
///   task's send with one fails with [`Error::BadArgument`], so a message
///   tagged [`DOWN_TAG`] (sender [`KERNEL_SENDER`]) is always a real death
///   notice ([`super::task`]).
pub mod mailbox {
    /// Timeout: do not wait.
    pub const TRY: u64 = 0;
    /// Timeout: wait as long as it takes.
    pub const FOREVER: u64 = u64::MAX;
    /// Receive filter: any tag.
    pub const ANY_TAG: u64 = u64::MAX;
    /// The first tag only the kernel sends.
    pub const KERNEL_TAGS: u32 = 0xffff_0000;
    /// A death notice ([`super::task::Down`]) of a monitored child.
    pub const DOWN_TAG: u32 = KERNEL_TAGS;
    /// A connection handed to the receiving task by the kernel (the actor
    /// echo server's handoff): the body is the socket handle, already in
    /// the task's socket table, as 8 bytes little-endian.
    pub const CONNECTION_TAG: u32 = KERNEL_TAGS + 1;
    /// The sender of kernel messages (the boot thread's id, never a task's).
    pub const KERNEL_SENDER: u64 = 0;

    /// What `mailbox_receive` reports besides the length.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ReceiveInfo {
        pub tag: u64,
        /// Body length in bytes (pages × 4096 for a page message).
        pub length: u64,
        /// The sending task's id.
        pub sender: u64,
        /// Where a page message's pages were mapped (0 for a copy).
        pub pages_address: u64,
    }

    /// The slot and generation packed in an id.
    pub const fn split_id(id: u64) -> (u32, u32) {
        (id as u32, (id >> 32) as u32)
    }

    pub const fn make_id(slot: u32, generation: u32) -> u64 {
        (generation as u64) << 32 | slot as u64
    }
}

/// TCP sockets for tasks: the rules of calls 14 to 20.
///
/// - **Table.** Each task has its own socket table of at most
///   [`MAX_SOCKETS`] handles; a listen or accept beyond it fails with
///   [`Error::OutOfQuota`](super::Error::OutOfQuota). A handle is
///   `generation << 32 | slot` in the caller's table: a closed socket's
///   handle fails with [`Error::NoSuchSocket`](super::Error::NoSuchSocket),
///   also after its slot is reused, and a task can never name another
///   task's socket (the same number in its own table is its own, or
///   nothing).
/// - **Blocking.** A read that finds nothing, a write that finds no room,
///   an accept with no connection and a wait park only the caller's thread,
///   until the condition or the timeout ([`Error::Timeout`](super::Error::Timeout)).
///   Bytes move through the kernel's socket service (small staging buffers
///   per connection), so memory per connection is bounded whatever the
///   peer or the task does.
/// - **Death.** When a task ends, its sockets are closed: with a FIN after
///   an `exit`, with a reset when it was killed (a fault, `kill`, the
///   watchdog). A socket *lent* to a task by the kernel (the actor echo
///   server's connection handed to its handler) goes back to the lender
///   instead, which decides.
pub mod socket {
    /// Timeout: do not wait.
    pub const TRY: u64 = 0;
    /// Timeout: wait as long as it takes.
    pub const FOREVER: u64 = u64::MAX;
    /// Most sockets (listeners and connections) a task holds at once.
    pub const MAX_SOCKETS: u64 = 64;
    /// Most bytes one read or write moves.
    pub const MAX_IO: u64 = 4096;
    /// Largest listen backlog.
    pub const MAX_BACKLOG: u64 = 64;
    /// Largest connection cap of one listener.
    pub const MAX_CONNECTIONS: u64 = 1024;
    /// `socket_wait` interest and readiness: a read would not block.
    pub const READABLE: u64 = 1;
    /// A write would not block.
    pub const WRITABLE: u64 = 2;
    /// Readiness only: reset, or both directions finished.
    pub const HANG_UP: u64 = 4;

    /// The slot and generation packed in a handle.
    pub const fn split_handle(handle: u64) -> (u32, u32) {
        (handle as u32, (handle >> 32) as u32)
    }

    pub const fn make_handle(slot: u32, generation: u32) -> u64 {
        (generation as u64) << 32 | slot as u64
    }
}

/// Tasks starting tasks: the rules of calls 21 and 22 (Erlang's `spawn`,
/// `monitor` and `exit(Pid, kill)`).
///
/// - **Ids.** A task id is its thread id (what `ps` and the shell's `kill`
///   show, and a message's sender): never reused, so an id of a child that
///   ended never names its successor.
/// - **Children.** A task has at most [`MAX_CHILDREN`] live children, and
///   at most [`MAX_SPAWNED`] tasks started by tasks live at once in the
///   whole system; beyond, `spawn` fails with
///   [`Error::OutOfQuota`](super::Error::OutOfQuota) (a fork bomb is
///   refused, never a kernel failure). Each child has the default limits
///   (memory quota) of the shell's `run`.
/// - **Monitors.** A child spawned with a `notify` mailbox is monitored:
///   when it ends, for any reason, exactly one [`Down`] notice (tag
///   [`mailbox::DOWN_TAG`](super::mailbox::DOWN_TAG), sender
///   [`mailbox::KERNEL_SENDER`](super::mailbox::KERNEL_SENDER), body
///   [`Down::SIZE`] bytes) is queued there, after the child's memory was
///   given back. Room for it is *reserved* at `spawn`: a mailbox's
///   capacity covers its queued messages plus the notices it is promised,
///   so a notice is never refused for a full mailbox (a send finds it full
///   earlier instead), and `spawn` fails with
///   [`Error::Full`](super::Error::Full) when no room is left to promise.
///   A notice for a mailbox closed (or whose owner died) by then is
///   dropped.
/// - **Kill.** `kill` reaches only the caller's own live children (else
///   [`Error::NoSuchTask`](super::Error::NoSuchTask)). The child dies of a
///   real CPU fault at its next instruction in ring 3, reported like any
///   fault; one waiting in the kernel is stopped there.
/// - **A parent's end.** When a task ends (exit, fault, kill), its live
///   children are killed the same way (cause [`CAUSE_PARENT_ENDED`]), and
///   theirs in turn: like a supervisor's shutdown, nothing a task started
///   outlives it.
pub mod task {
    /// `spawn`'s `notify`: no monitor.
    pub const NONE: u64 = u64::MAX;
    /// Most live children of one task.
    pub const MAX_CHILDREN: u64 = 32;
    /// Most live tasks started by tasks, system-wide.
    pub const MAX_SPAWNED: u64 = 256;
    /// Longest program name.
    pub const MAX_NAME: u64 = 64;
    /// Longest argument.
    pub const MAX_ARGUMENT: u64 = 1024;

    /// [`Down::cause`]: it called `exit` ([`Down::exit_code`] has the code).
    pub const CAUSE_EXITED: u64 = 0;
    /// A CPU fault of its own (or a panic that faulted).
    pub const CAUSE_FAULT: u64 = 1;
    /// Killed: by its parent's `kill`, or the shell's.
    pub const CAUSE_KILLED: u64 = 2;
    /// The CPU-budget watchdog killed it.
    pub const CAUSE_WATCHDOG: u64 = 3;
    /// Its parent ended, so it was killed.
    pub const CAUSE_PARENT_ENDED: u64 = 4;

    /// A death notice (Erlang's `'DOWN'` message): four little-endian
    /// `u64`s in this order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Down {
        /// The child's task id.
        pub task: u64,
        /// Its exit code if [`Down::cause`] is [`CAUSE_EXITED`], else 0.
        pub exit_code: i64,
        /// One of the `CAUSE_` constants.
        pub cause: u64,
        /// When the kernel saw it end (nanoseconds since boot).
        pub at_ns: u64,
    }

    impl Down {
        pub const SIZE: usize = 32;

        pub fn to_bytes(&self) -> [u8; Self::SIZE] {
            let mut bytes = [0u8; Self::SIZE];
            let words = [self.task, self.exit_code as u64, self.cause, self.at_ns];
            for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            bytes
        }

        /// A notice from a message body; `None` if it is not [`Down::SIZE`]
        /// bytes.
        pub fn from_bytes(bytes: &[u8]) -> Option<Down> {
            if bytes.len() != Self::SIZE {
                return None;
            }
            let word = |index: usize| {
                let mut chunk = [0u8; 8];
                chunk.copy_from_slice(&bytes[index * 8..index * 8 + 8]);
                u64::from_le_bytes(chunk)
            };
            Some(Down { task: word(0), exit_code: word(1) as i64, cause: word(2), at_ns: word(3) })
        }

        /// Whether it ended by `exit(0)`.
        pub fn normal(&self) -> bool {
            self.cause == CAUSE_EXITED && self.exit_code == 0
        }

        pub fn cause_name(&self) -> &'static str {
            match self.cause {
                CAUSE_EXITED => "exited",
                CAUSE_FAULT => "fault",
                CAUSE_KILLED => "killed",
                CAUSE_WATCHDOG => "watchdog",
                CAUSE_PARENT_ENDED => "parent ended",
                _ => "unknown",
            }
        }
    }
}

/// The user half of every task's address space.
pub mod layout {
    /// Lowest address a task may use (the first 64 KiB stay unmapped, so
    /// null and small offsets from it fault).
    pub const USER_START: u64 = 0x1_0000;
    /// One past the highest user address. The last page of the canonical
    /// lower half is left out, so a `syscall` in the last mapped page can
    /// never return to a non-canonical address.
    pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
    /// Where programs are linked (their image must lie below
    /// [`IMAGE_END`]).
    pub const IMAGE_BASE: u64 = 0x40_0000;
    pub const IMAGE_END: u64 = 0x1000_0000_0000;
    /// Anonymous mappings (`map`) are placed in this window.
    pub const MAP_START: u64 = 0x1000_0000_0000;
    pub const MAP_END: u64 = 0x7000_0000_0000;
    /// The stack: `STACK_SIZE` bytes below `STACK_TOP`, with an unmapped
    /// guard page below it.
    pub const STACK_TOP: u64 = 0x7fff_0000_0000;
    pub const STACK_SIZE: u64 = 64 * 1024;

    // The regions, in order, without overlap (checked when this compiles).
    const _: () = {
        assert!(USER_START < IMAGE_BASE && IMAGE_BASE < IMAGE_END);
        assert!(IMAGE_END <= MAP_START && MAP_START < MAP_END);
        assert!(MAP_END < STACK_TOP - STACK_SIZE - 4096 && STACK_TOP < USER_END);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_errors_round_trip() {
        for number in 0..32 {
            if let Some(call) = Sys::from_number(number) {
                assert_eq!(call as u64, number);
            }
        }
        assert_eq!(Sys::from_number(22), Some(Sys::Kill));
        assert_eq!(Sys::from_number(23), None);
        for value in -18..0 {
            if let Some(error) = Error::from_return(value) {
                assert_eq!(error as i64, value);
            }
        }
        assert_eq!(Error::from_return(0), None);
        assert_eq!(Error::from_return(-10), Some(Error::Starved));
        assert_eq!(Error::from_return(-15), Some(Error::NoNetwork));
        assert_eq!(Error::from_return(-17), Some(Error::NoSuchTask));
        assert_eq!(Error::from_return(-18), None);
        let down = task::Down { task: 42, exit_code: -3, cause: task::CAUSE_EXITED, at_ns: 7 };
        assert_eq!(task::Down::from_bytes(&down.to_bytes()), Some(down));
        assert_eq!(task::Down::from_bytes(&[0; 31]), None);
        assert_eq!(socket::split_handle(socket::make_handle(63, 9)), (63, 9));
        let id = mailbox::make_id(7, 3);
        assert_eq!(mailbox::split_id(id), (7, 3));
    }
}
