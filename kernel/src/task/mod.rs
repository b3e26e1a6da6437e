//! Isolated tasks: ring-3 programs from the initrd, each in an address
//! space of its own, with a memory quota, run by one scheduler thread each.
//!
//! - [`initrd`]: the programs, read from the PVH boot module (cpio newc).
//! - [`loader`]: ELF validation and loading into a fresh [`UserSpace`].
//! - [`usercopy`]: the only way the kernel reads or writes task memory.
//! - [`syscalls`]: the system calls (ABI in `tenfold-abi`).
//! - [`symbols`]: names for addresses in a task's program (fault reports).
//! - [`tree`]: the supervision trees, declared in one place.
//! - [`supervisor`]: the thread that runs them (OTP semantics from
//!   `tenfold_runtime::supervise`), restarting tasks as they die.
//! - [`mailbox`]: mailboxes between tasks (copy and page transfer).
//! - [`socket`]: each task's TCP sockets (over the kernel's socket service).
//! - [`spawn`]: tasks starting, monitoring and killing child tasks.
//!
//! A task's memory — every page and page table of its user half — is counted
//! against its quota and freed when its thread is reaped, whether it exited
//! or was killed by a fault.

pub mod initrd;
pub mod loader;
pub mod mailbox;
pub mod socket;
pub mod spawn;
pub mod supervisor;
pub mod symbols;
pub mod syscalls;
pub mod tree;
pub mod usercopy;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tenfold_abi::{layout, task::NONE};
use tenfold_runtime::sched::Priority;

use crate::arch::paging::UserSpace;
use crate::memory::frames;
use crate::sched::{self, Owner, SpawnError, ThreadRef};

/// Most regions a task may `map` at once.
pub const MAX_REGIONS: usize = 64;

/// Frames a task may hold (pages and page tables): 4 MiB.
pub const DEFAULT_QUOTA_FRAMES: u64 = 1024;

/// Frames held by all live tasks, and tasks started / exited / killed.
static USER_FRAMES: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicU64 = AtomicU64::new(0);
static EXITED: AtomicU64 = AtomicU64::new(0);
static KILLED: AtomicU64 = AtomicU64::new(0);

/// What a task may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Frames (pages and page tables).
    pub quota_frames: u64,
    /// CPU time over its life; past it, the watchdog kills the task.
    pub cpu_budget_ns: Option<u64>,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { quota_frames: DEFAULT_QUOTA_FRAMES, cpu_budget_ns: None };
}

/// `exit_code` before the task called `exit`.
const NOT_EXITED: i64 = i64::MIN;

/// One isolated task.
pub struct Task {
    name: String,
    argument: String,
    /// The program's ELF image in the initrd (for symbols in fault reports).
    image: &'static [u8],
    quota_frames: u64,
    cpu_budget_ns: Option<u64>,
    /// The code it passed to `exit`, or [`NOT_EXITED`]; read by the
    /// scheduler when the thread dies (supervisors tell exits from crashes).
    exit_code: AtomicI64,
    /// The space's level-4 table, read by the scheduler at every switch to
    /// the task (a copy, so that it never reads `inner`).
    level_4: u64,
    /// Mirror of the space's frame count, readable by `ps` at any time.
    frames: AtomicU64,
    /// Its thread's id (its task id), set when the thread is made.
    tid: u32,
    /// The mailbox its death notice goes to (`NONE`: none), with room
    /// reserved there (see `mailbox::reserve_notice`).
    notify: AtomicU64,
    /// How and when it ended (`tenfold_abi::task::CAUSE_`), set by the
    /// scheduler when the thread dies, for the notice.
    cause: AtomicU64,
    died_at_ns: AtomicU64,
    /// Touched only by the task's own thread while it runs, by its creator
    /// before the thread starts, and by the reaper after it died.
    inner: UnsafeCell<Inner>,
}

struct Inner {
    space: Option<UserSpace>,
    /// Where the next `map` goes (a bump pointer in the map window).
    map_next: u64,
    /// Regions `map` made: (start, pages); at most [`MAX_REGIONS`].
    regions: Vec<(u64, u64)>,
    /// Its sockets (at most `tenfold_abi::socket::MAX_SOCKETS`).
    sockets: socket::SocketTable,
    exited: bool,
}

// SAFETY: `inner` is reached by one thread at a time (see its comment); the
// rest is immutable or atomic.
unsafe impl Sync for Task {}
// SAFETY: as above; a task moves between threads only while nobody uses it.
unsafe impl Send for Task {}

impl Task {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn argument(&self) -> &str {
        &self.argument
    }

    pub fn image(&self) -> &'static [u8] {
        self.image
    }

    pub fn quota_frames(&self) -> u64 {
        self.quota_frames
    }

    pub fn cpu_budget_ns(&self) -> Option<u64> {
        self.cpu_budget_ns
    }

    /// The code it exited with; `None` if it did not call `exit` (killed).
    pub fn exit_code(&self) -> Option<i64> {
        Some(self.exit_code.load(Ordering::Relaxed)).filter(|&code| code != NOT_EXITED)
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn level_4(&self) -> u64 {
        self.level_4
    }

    /// The task's mutable state. Only the task's running thread calls this
    /// (from its system calls).
    #[allow(clippy::mut_from_ref)]
    fn inner(&self) -> &mut Inner {
        // SAFETY: see `inner`'s field comment: one user at a time, and the
        // system-call paths that call this never hold two results at once.
        unsafe { &mut *self.inner.get() }
    }

    fn sync_frames(&self, space: &UserSpace) {
        let old = self.frames.swap(space.frames(), Ordering::Relaxed);
        USER_FRAMES.fetch_add(space.frames(), Ordering::Relaxed);
        USER_FRAMES.fetch_sub(old, Ordering::Relaxed);
    }

    /// Called by the scheduler as it makes the task's thread, before the
    /// thread can run.
    pub fn bind_thread(&mut self, tid: u32) {
        self.tid = tid;
    }

    /// Called by the scheduler as the thread dies.
    pub fn record_death(&self, cause: u64, at_ns: u64) {
        self.cause.store(cause, Ordering::Relaxed);
        self.died_at_ns.store(at_ns, Ordering::Relaxed);
    }

    /// Its death is to be told to mailbox `id` (room for the notice is
    /// reserved there).
    pub fn set_notify(&self, id: u64) {
        self.notify.store(id, Ordering::Relaxed);
    }

    /// A task that never ran: no exit to count as a kill, nobody to tell.
    fn abandon(&self) {
        self.mark_exited(0);
        self.notify.store(NONE, Ordering::Relaxed);
    }

    /// Records an exit with `code` (a killed task never gets here).
    fn mark_exited(&self, code: i64) {
        self.inner().exited = true;
        self.exit_code.store(code.max(NOT_EXITED + 1), Ordering::Relaxed);
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // Its mailboxes, their messages and pages, its parked registration.
        mailbox::release_task(self);
        let inner = self.inner.get_mut();
        // Its sockets: closed (FIN) after an exit, reset after a kill.
        socket::release(&mut inner.sockets, inner.exited);
        if inner.exited {
            EXITED.fetch_add(1, Ordering::Relaxed);
        } else {
            KILLED.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(space) = inner.space.take() {
            let held = space.frames();
            let freed = space.destroy(&mut frames::free);
            if freed != held {
                log::error!("task `{}`: freed {freed} frames but counted {held}", self.name);
            }
            USER_FRAMES.fetch_sub(self.frames.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        // Last, once everything it held is back: a supervisor told of the
        // death may start a successor at once.
        let notify = self.notify.load(Ordering::Relaxed);
        if notify != NONE {
            let down = tenfold_abi::task::Down {
                task: u64::from(self.tid),
                exit_code: self.exit_code().unwrap_or(0),
                cause: self.cause.load(Ordering::Relaxed),
                at_ns: self.died_at_ns.load(Ordering::Relaxed),
            };
            mailbox::deliver_notice(notify, &down);
        }
    }
}

/// Why a program could not be started (the shell prints it with `Debug`).
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug")]
pub enum RunError {
    NoSuchProgram,
    Load(loader::LoadError),
    Spawn(SpawnError),
    /// The caller's preparation of the task failed.
    Setup(tenfold_abi::Error),
}

/// Loads `program` from the initrd into a new address space and starts it
/// with `argument`.
pub fn run(program: &str, argument: &str) -> Result<ThreadRef, RunError> {
    run_limited(program, program, argument, Limits::DEFAULT)
}

/// [`run`] under `limits`, the task (and its thread) called `name`.
pub fn run_limited(name: &str, program: &str, argument: &str, limits: Limits) -> Result<ThreadRef, RunError> {
    run_with(name, program, limits, Owner::Watcher, |_| Ok(String::from(argument)))
}

/// Starts a task like [`run_limited`]; `setup` prepares it before its
/// thread exists (e.g. lends it a socket) and returns its argument. Its
/// death is told to `owner` (see [`sched::Owner`]).
pub fn run_with(
    name: &str,
    program: &str,
    limits: Limits,
    owner: Owner,
    setup: impl FnOnce(&Task) -> Result<String, tenfold_abi::Error>,
) -> Result<ThreadRef, RunError> {
    let image = initrd::find(program).ok_or(RunError::NoSuchProgram)?;
    let loaded = loader::load(image, limits.quota_frames).map_err(RunError::Load)?;
    let mut task = Box::new(Task {
        name: String::from(name),
        argument: String::new(),
        image,
        quota_frames: limits.quota_frames,
        cpu_budget_ns: limits.cpu_budget_ns,
        exit_code: AtomicI64::new(NOT_EXITED),
        level_4: loaded.space.level_4(),
        frames: AtomicU64::new(0),
        tid: 0,
        notify: AtomicU64::new(NONE),
        cause: AtomicU64::new(0),
        died_at_ns: AtomicU64::new(0),
        inner: UnsafeCell::new(Inner {
            space: None,
            map_next: layout::MAP_START,
            regions: Vec::with_capacity(MAX_REGIONS),
            sockets: socket::SocketTable::default(),
            exited: false,
        }),
    });
    task.sync_frames(&loaded.space);
    task.inner().space = Some(loaded.space);
    match setup(&task) {
        Ok(argument) => task.argument = argument,
        Err(error) => {
            task.abandon();
            return Err(RunError::Setup(error));
        }
    }
    // As after a `call`: RSP ≡ 8 (mod 16) at the entry point.
    let rsp = layout::STACK_TOP - 8;
    match sched::spawn_user(name, Priority::NORMAL, task, loaded.entry, rsp, owner) {
        Ok(thread) => {
            STARTED.fetch_add(1, Ordering::Relaxed);
            Ok(thread)
        }
        Err((error, task)) => {
            task.abandon();
            drop(task);
            Err(RunError::Spawn(error))
        }
    }
}

/// Counters of isolated tasks, for `mem`.
#[derive(Clone, Copy, Debug)]
pub struct TaskStats {
    pub frames: u64,
    pub started: u64,
    pub exited: u64,
    pub killed: u64,
}

pub fn stats() -> TaskStats {
    TaskStats {
        frames: USER_FRAMES.load(Ordering::Relaxed),
        started: STARTED.load(Ordering::Relaxed),
        exited: EXITED.load(Ordering::Relaxed),
        killed: KILLED.load(Ordering::Relaxed),
    }
}
