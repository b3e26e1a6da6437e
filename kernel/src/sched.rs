//! The thread mechanism: kernel threads, context switches, sleeping,
//! parking, preemption, tickless idle. The *policy* (who runs next, for how
//! long, the accounting) is `tenfold_runtime::sched::FairQueue`; this module
//! applies it to real CPU state.
//!
//! Every switch goes through the trap path: the APIC timer interrupt
//! (preemption, sleep deadlines) and the yield vector `int 0x81` (a thread
//! blocks, sleeps, yields or exits) both hand the interrupted thread's
//! [`TrapFrame`] to [`Scheduler::switch`], which saves it with the FPU/SSE
//! state (eager `fxsave`/`fxrstor`) and returns the next thread's frame.
//!
//! Tickless: the timer is programmed for the next event only — the end of
//! the running thread's slice if another thread waits, else the earliest
//! sleep deadline, else nothing. With nothing runnable the idle thread halts
//! the CPU.
//!
//! Bounds: at most [`MAX_THREADS`] threads and [`STACK_BUDGET`] bytes of
//! thread stacks; `spawn` beyond them returns an error. Thread references
//! carry a never-reused id, so a stale reference to a dead thread's slot
//! cannot touch its successor.

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use tenfold_abi::task::{
    CAUSE_EXITED, CAUSE_FAULT, CAUSE_KILLED, CAUSE_PARENT_ENDED, CAUSE_WATCHDOG, MAX_CHILDREN, MAX_SPAWNED,
};
use tenfold_runtime::sched::{Enqueue, FairQueue, Priority, SchedConfig, SchedEntity, Switch, ThreadStats};

use crate::arch::cpu::{self, FpuState};
use crate::arch::interrupts::{self, vector};
use crate::arch::paging;
use crate::arch::traps::{self, FaultHooks};
use crate::arch::{self, IrqLock, TrapFrame, apic};
use crate::stack::{self, KernelStack};
use crate::task::Task;
use crate::{console, time};

/// Most threads that can exist at once (the slots of the thread table):
/// room for the CSP echo server's thread per connection at the default cap
/// of 1024 connections, beside the kernel's own threads. A slot's stack
/// window costs a page table once used (4 KiB, kept).
pub const MAX_THREADS: usize = 1280;
/// Stack windows whose page tables are made at boot (1 MiB for 256): the
/// slots tasks and everyday threads use. Beyond, a window gets its table on
/// first use and keeps it (1000 csp connection threads).
const PREMAPPED_STACK_WINDOWS: usize = 256;
/// Most bytes of thread stacks mapped at once.
pub const STACK_BUDGET: u64 = 64 << 20;

const BOOT_SLOT: usize = 0;
const IDLE_SLOT: usize = 1;

/// A reference to a thread that stays safe after the thread is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThreadRef {
    slot: u16,
    tid: u32,
}

impl ThreadRef {
    /// The thread id shown by `ps` and taken by `kill`.
    pub fn tid(self) -> u32 {
        self.tid
    }

    /// Packs the reference into a word (for an atomic).
    pub fn to_bits(self) -> u64 {
        u64::from(self.slot) << 32 | u64::from(self.tid)
    }

    pub fn from_bits(bits: u64) -> ThreadRef {
        ThreadRef { slot: (bits >> 32) as u16, tid: bits as u32 }
    }
}

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Ready,
    /// Parked (waiting for an unpark or a deadline).
    Blocked,
    Sleeping,
    Dead,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Ready => "ready",
            State::Blocked => "blocked",
            State::Sleeping => "sleeping",
            State::Dead => "dead",
        }
    }
}

/// Why `spawn` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    TooManyThreads,
    StackBudgetExceeded,
    StackTooLarge,
    OutOfMemory,
    /// The parent task has [`MAX_CHILDREN`] live children, or tasks have
    /// started [`MAX_SPAWNED`] live tasks in all.
    TooManyChildren,
}

/// Who is told when a ring-3 thread dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The death watcher (the kernel's supervisor thread), if any.
    Watcher,
    /// This kernel thread ([`take_monitored_deaths`]); the watcher if it is
    /// gone.
    Monitor(ThreadRef),
    /// This ring-3 thread, the task's parent (the `spawn` system call): the
    /// child counts against its children and ends with it; the death is
    /// told by the child task's drop, as a notice to the mailbox it was
    /// given (`task::mailbox::deliver_notice`), never to the watcher.
    Parent(ThreadRef),
}

/// Why `kill` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillError {
    NoSuchThread,
    /// The boot and idle threads cannot be killed.
    Essential,
    /// Crashes are injected only into ring-3 tasks.
    NotATask,
}

/// How [`inject_crash`] stopped a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// Its next instruction in ring 3 is at [`CRASH_ADDRESS`], which is never
    /// mapped: it dies of a real page fault, reported like any other.
    NextInstructionFaults,
    /// It was blocked in the kernel (a system call waiting for an event):
    /// stopped there. (A sleeping task is woken and faults.)
    StoppedInKernel,
}

/// Where an injected crash sends a task: below `USER_START`, never mapped.
pub const CRASH_ADDRESS: u64 = 0;

/// A ring-3 thread that ended, for the supervisor (see [`watch_task_deaths`]).
#[derive(Clone, Copy, Debug)]
pub struct Death {
    pub thread: ThreadRef,
    /// The code it passed to `exit`; `None` if it was killed (a fault, the
    /// watchdog, `kill`).
    pub exit_code: Option<i64>,
    pub at_ns: u64,
}

/// Deaths kept for the watcher; beyond, the oldest are dropped (counted).
const DEATH_QUEUE: usize = 4096;

struct Thread {
    tid: u32,
    name: String,
    state: State,
    entity: SchedEntity,
    /// Saved trap frame while not running.
    frame: usize,
    fpu: Box<FpuState>,
    /// `None` for the boot thread, which runs on the bootloader's stack.
    stack: Option<KernelStack>,
    stack_bounds: (u64, u64),
    /// An unpark that arrived while the thread was not parked.
    permit: bool,
    /// Wake-up deadline while blocked or sleeping.
    deadline: Option<u64>,
    essential: bool,
    /// What a spawned thread runs; taken when it first runs, or by `kill`
    /// if it never did.
    entry: Option<Entry>,
    /// For a ring-3 thread: its task (address space, quota), freed when the
    /// thread is reaped.
    task: Option<Box<Task>>,
    /// A crash was injected: a sleep ends at once, so the task returns to
    /// ring 3 and faults there.
    doomed: bool,
    /// A CPU fault in this kernel thread kills it (instead of the kernel)
    /// and is reported to this thread, which restarts what it belonged to.
    supervisor: Option<ThreadRef>,
    /// Faults of threads this one supervises, not yet taken.
    faults_reported: u32,
    /// For a ring-3 thread: the thread its death is told to instead of the
    /// death watcher (the kernel thread that spawned and supervises it).
    monitor: Option<ThreadRef>,
    /// Deaths of the tasks this thread monitors, not yet taken
    /// ([`take_monitored_deaths`]); at most [`DEATH_QUEUE`].
    monitored_deaths: VecDeque<Death>,
    /// For a ring-3 thread a task spawned: that task's thread.
    parent: Option<ThreadRef>,
    /// Live ring-3 threads this one spawned (at most [`MAX_CHILDREN`]).
    children: u32,
    /// Why it is being killed, if not by a fault of its own (a
    /// `tenfold_abi::task::CAUSE_` value), for its death notice.
    kill_cause: Option<u64>,
}

/// A spawned thread's entry closure.
type Entry = Box<dyn FnOnce() + Send>;

/// A snapshot of one thread, for the shell and the tests.
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    pub tid: u32,
    pub name: String,
    pub state: State,
    pub priority: Priority,
    pub stats: ThreadStats,
    pub stack_bytes: u64,
    /// A ring-3 task's frames in use and quota (frames), or `None` for a
    /// kernel thread.
    pub user: Option<(u64, u64)>,
}

/// Scheduler-wide counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedStats {
    pub threads: usize,
    pub runnable: usize,
    pub switches: u64,
    pub timer_interrupts: u64,
    pub idle_ns: u64,
    pub stack_bytes: u64,
    pub preemption: bool,
}

struct Scheduler {
    threads: Vec<Option<Thread>>,
    queue: FairQueue,
    current: usize,
    /// (deadline, slot, tid) of blocked and sleeping threads with a deadline.
    timers: BTreeSet<(u64, usize, u32)>,
    slice_end: u64,
    next_tid: u32,
    stack_bytes: u64,
    zombies: Vec<usize>,
    idle_ns: u64,
    idle_since: Option<u64>,
    switches: u64,
    timer_interrupts: u64,
    /// Why the next `int 0x81` happens.
    yield_reason: Switch,
    /// Off: threads run until they block or yield (the "cooperative" demo).
    preemption: bool,
    /// How late recent slice-end preemptions fired (ns), bounded.
    lateness: Vec<u64>,
    /// A thread woken outside the timer path should preempt the running one.
    resched: bool,
    /// The thread told about ring-3 deaths (the supervisor), and the deaths
    /// it has not taken yet; `deaths_dropped` counts overflow.
    watcher: Option<ThreadRef>,
    deaths: VecDeque<Death>,
    deaths_dropped: u64,
    /// Tasks the CPU-budget watchdog killed.
    watchdog_kills: u64,
    /// Live ring-3 threads spawned by tasks (at most [`MAX_SPAWNED`]), the
    /// most at once, and spawns refused for the bounds.
    spawned_by_tasks: u64,
    spawned_peak: u64,
    spawns_refused: u64,
    /// Tasks of dead threads, to drop once the lock is released.
    #[allow(clippy::vec_box, reason = "a task stays where it was made: its address keys its mailboxes")]
    dead_tasks: Vec<Box<Task>>,
}

/// How soon the watchdog looks again at a task that spent its budget while
/// in the kernel (it is killed only when interrupted in ring 3).
const WATCHDOG_RECHECK_NS: u64 = 1_000_000;

/// Lateness samples kept for `preemption_lateness`.
const LATENESS_SAMPLES: usize = 4096;

/// The scheduler: taken by threads and by the timer and yield handlers (an
/// `IrqLock`, so a thread holding it is never interrupted by them); the fault
/// hooks only `try_lock` it, since the faulting context may hold it.
static SCHED: IrqLock<Option<Scheduler>> = IrqLock::new(None);

fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    f(SCHED.lock().as_mut().expect("scheduler initialised"))
}

/// [`with`] for the paths that switch threads (and so may reap one): the
/// tasks of reaped threads are dropped after the lock is released, since a
/// task's end wakes other threads (senders parked on its mailboxes), which
/// takes the lock.
fn with_switch(f: impl FnOnce(&mut Scheduler) -> *mut TrapFrame) -> *mut TrapFrame {
    let next = with(f);
    drop_reaped_tasks();
    next
}

fn drop_reaped_tasks() {
    while TASKS_TO_DROP.load(Ordering::Relaxed) {
        let task = with(|scheduler| {
            let task = scheduler.dead_tasks.pop();
            TASKS_TO_DROP.store(!scheduler.dead_tasks.is_empty(), Ordering::Relaxed);
            task
        });
        drop(task);
    }
}

/// Whether `Scheduler::dead_tasks` has any (read without the lock).
static TASKS_TO_DROP: AtomicBool = AtomicBool::new(false);

/// Makes the running code (kernel_main on the boot stack `bottom..top`) the
/// boot thread, starts the idle thread and installs the timer, yield and
/// fault handlers. Interrupts are enabled by the caller afterwards.
pub fn init(boot_stack: (u64, u64), preemption: bool) {
    let now = time::now_ns();
    let mut scheduler = Scheduler {
        threads: (0..MAX_THREADS).map(|_| None).collect(),
        queue: FairQueue::new(SchedConfig::default()),
        current: BOOT_SLOT,
        timers: BTreeSet::new(),
        slice_end: 0,
        next_tid: 0,
        stack_bytes: 0,
        zombies: Vec::new(),
        idle_ns: 0,
        idle_since: None,
        switches: 0,
        timer_interrupts: 0,
        yield_reason: Switch::Voluntary,
        preemption,
        // Its whole bound at once: a buffer that doubled as samples came
        // in would make the heap move long after boot.
        lateness: Vec::with_capacity(LATENESS_SAMPLES),
        resched: false,
        watcher: None,
        // Room for every thread dying before the watcher runs, from boot:
        // bursts (a killed tree, a fork bomb) then never grow the heap.
        deaths: VecDeque::with_capacity(MAX_THREADS),
        deaths_dropped: 0,
        watchdog_kills: 0,
        spawned_by_tasks: 0,
        spawned_peak: 0,
        spawns_refused: 0,
        // Room for every thread, so reaping never allocates (or keeps a
        // grown buffer after many tasks die at once).
        dead_tasks: Vec::with_capacity(MAX_THREADS),
    };
    let mut boot = scheduler.new_thread("boot", Priority::NORMAL, None, boot_stack);
    boot.essential = true;
    boot.state = State::Running;
    scheduler.queue.enqueue(BOOT_SLOT as u32, &mut boot.entity, now, Enqueue::New);
    let slice = scheduler.queue.start_running(BOOT_SLOT as u32, &mut boot.entity, now);
    scheduler.slice_end = now + slice;
    scheduler.threads[BOOT_SLOT] = Some(boot);

    stack::init(PREMAPPED_STACK_WINDOWS).expect("page tables of the stack windows");
    let idle_stack = KernelStack::allocate(IDLE_SLOT, stack::MIN_STACK).expect("idle stack");
    scheduler.stack_bytes += idle_stack.size();
    let bounds = (idle_stack.bottom, idle_stack.top);
    let frame = arch::new_thread_frame(idle_stack.top, idle_entry, 0);
    let mut idle = scheduler.new_thread("idle", Priority::LOWEST, Some(idle_stack), bounds);
    idle.essential = true;
    idle.frame = frame as usize;
    scheduler.threads[IDLE_SLOT] = Some(idle);
    *SCHED.lock() = Some(scheduler);

    interrupts::set_handler(vector::TIMER, on_timer);
    interrupts::set_handler(vector::YIELD, on_yield);
    traps::set_fault_hooks(FaultHooks {
        describe_current,
        guard_page_hit,
        kill_current,
        describe_user_address,
        contain_fault,
    });
}

extern "C" fn idle_entry(_: usize) -> ! {
    cpu::idle_forever()
}

extern "C" fn thread_start(_: usize) -> ! {
    let entry = with(|scheduler| {
        let slot = scheduler.current;
        scheduler.thread_mut(slot).entry.take()
    });
    entry.expect("a spawned thread has an entry")();
    exit()
}

/// Starts a kernel thread running `entry`.
pub fn spawn(
    name: &str,
    priority: Priority,
    stack_size: u64,
    entry: impl FnOnce() + Send + 'static,
) -> Result<ThreadRef, SpawnError> {
    if stack_size > stack::MAX_STACK {
        return Err(SpawnError::StackTooLarge);
    }
    let mut entry: Option<Entry> = Some(Box::new(entry));
    let name = String::from(name);
    let fpu = Box::new(FpuState::initial());
    // On failure `entry` stays here and is dropped after the lock is released
    // (it may own anything, e.g. a channel end whose drop unparks a thread).
    let size = stack_size.max(stack::MIN_STACK).next_multiple_of(4096);
    with(|scheduler| {
        scheduler.add_thread(
            name,
            priority,
            fpu,
            size,
            |top| arch::new_thread_frame(top, thread_start, 0),
            |thread| {
                thread.entry = entry.take();
            },
        )
    })
}

/// Starts a kernel thread like [`spawn`] whose CPU faults are contained: a
/// fault kills just this thread and is reported to `supervisor` (which
/// [`take_faults`] tells, after an unpark). What the thread held stays as it
/// was, so the supervisor must end whatever the thread belonged to: this is
/// for programs whose threads share nothing the rest of the kernel needs
/// (their locks are only ever held with interrupts off, never at a fault).
pub fn spawn_supervised(
    name: &str,
    priority: Priority,
    stack_size: u64,
    supervisor: ThreadRef,
    entry: impl FnOnce() + Send + 'static,
) -> Result<ThreadRef, SpawnError> {
    let thread = spawn(name, priority, stack_size, entry)?;
    with(|scheduler| {
        if let Some(spawned) =
            scheduler.threads[usize::from(thread.slot)].as_mut().filter(|t| t.tid == thread.tid)
        {
            spawned.supervisor = Some(supervisor);
        }
    });
    Ok(thread)
}

/// Faults of the threads the caller supervises since the last call.
pub fn take_faults() -> u32 {
    with(|scheduler| {
        let slot = scheduler.current;
        core::mem::take(&mut scheduler.thread_mut(slot).faults_reported)
    })
}

/// Starts a ring-3 thread for `task`: the first switch to it enters ring 3
/// at `entry` with the stack pointer `rsp`, in the task's address space.
/// Its death is told to `owner`. On failure the task comes back with the
/// error.
pub fn spawn_user(
    name: &str,
    priority: Priority,
    task: Box<Task>,
    entry: u64,
    rsp: u64,
    owner: Owner,
) -> Result<ThreadRef, (SpawnError, Box<Task>)> {
    let name = String::from(name);
    let fpu = Box::new(FpuState::initial());
    let mut task = Some(task);
    let result = with(|scheduler| {
        let parent = match owner {
            Owner::Parent(parent) => {
                let slot = scheduler.live_slot(parent).ok_or(SpawnError::TooManyChildren)?;
                if !scheduler.may_spawn(slot) {
                    scheduler.spawns_refused += 1;
                    return Err(SpawnError::TooManyChildren);
                }
                Some((slot, parent))
            }
            _ => None,
        };
        let frame = |top| arch::user::new_user_frame(top, entry, rsp);
        let spawned = scheduler.add_thread(name, priority, fpu, USER_KERNEL_STACK, frame, |thread| {
            let mut child = task.take().expect("the task is spawned once");
            child.bind_thread(thread.tid);
            thread.task = Some(child);
            thread.monitor = match owner {
                Owner::Monitor(monitor) => Some(monitor),
                _ => None,
            };
            thread.parent = parent.map(|(_, parent)| parent);
        })?;
        if let Some((slot, _)) = parent {
            scheduler.thread_mut(slot).children += 1;
            scheduler.spawned_by_tasks += 1;
            scheduler.spawned_peak = scheduler.spawned_peak.max(scheduler.spawned_by_tasks);
        }
        Ok(spawned)
    });
    result.map_err(|error| (error, task.take().expect("the task stays with a failed spawn")))
}

/// Whether the running thread may spawn another child task now (a cheap
/// check before loading one; [`spawn_user`] checks again).
pub fn may_spawn_child() -> bool {
    with(|scheduler| {
        let may = scheduler.may_spawn(scheduler.current);
        if !may {
            scheduler.spawns_refused += 1;
        }
        may
    })
}

/// Tasks started by tasks: (live now, the most at once, spawns refused for
/// the bounds) since boot.
pub fn spawned_by_tasks() -> (u64, u64, u64) {
    with(|scheduler| (scheduler.spawned_by_tasks, scheduler.spawned_peak, scheduler.spawns_refused))
}

/// Crashes the running task's live child `tid` like [`inject_crash`];
/// `NoSuchThread` for any thread that is not one.
pub fn kill_child(tid: u32) -> Result<Injected, KillError> {
    with(|scheduler| {
        let parent =
            ThreadRef { slot: scheduler.current as u16, tid: scheduler.thread(scheduler.current).tid };
        let slot = scheduler
            .threads
            .iter()
            .position(|t| {
                t.as_ref().is_some_and(|t| t.tid == tid && t.state != State::Dead && t.parent == Some(parent))
            })
            .ok_or(KillError::NoSuchThread)?;
        Ok(scheduler.crash_slot(slot, CAUSE_KILLED, time::now_ns()))
    })
}

/// The kernel stack of a ring-3 thread: system calls and traps run on it.
pub const USER_KERNEL_STACK: u64 = 32 * 1024;

/// The running thread's task, if it is a ring-3 thread.
///
/// The task lives as long as its thread: it is freed only when the thread
/// has died and been reaped, so the running thread may use it until it
/// exits. Only that thread may touch its task's mutable state.
pub fn current_task() -> Option<&'static Task> {
    with(|scheduler| {
        let slot = scheduler.current;
        let task: *const Task = scheduler.thread(slot).task.as_deref()?;
        // SAFETY: see above: the box outlives every use by its own thread,
        // which is the only caller that gets here with this slot current.
        Some(unsafe { &*task })
    })
}

/// Whether the thread `tid` is alive (not yet exited or killed).
pub fn is_alive(tid: u32) -> bool {
    with(|scheduler| scheduler.threads.iter().flatten().any(|t| t.tid == tid && t.state != State::Dead))
}

/// The running thread.
pub fn current() -> ThreadRef {
    with(|scheduler| {
        let slot = scheduler.current;
        ThreadRef { slot: slot as u16, tid: scheduler.thread(slot).tid }
    })
}

// `yield_now`, `exit`, `sleep` and `park` keep interrupts off from their
// state change (made under the scheduler lock) until `int 0x81` enters the
// switch path, so no interrupt runs the scheduler in between: this section
// spans the lock and the software interrupt, which is why it is not just the
// lock's guard.

/// Gives the CPU to another runnable thread, if any.
pub fn yield_now() {
    cpu::without_interrupts(|| {
        with(|scheduler| scheduler.yield_reason = Switch::Voluntary);
        arch::raise_yield();
    });
}

/// Ends the running thread.
pub fn exit() -> ! {
    cpu::without_interrupts(|| {
        with(|scheduler| {
            let slot = scheduler.current;
            // The running thread has taken its entry already.
            let _ = scheduler.kill_slot(slot, time::now_ns());
            scheduler.yield_reason = Switch::Voluntary;
        });
        arch::raise_yield();
    });
    unreachable!("a dead thread was resumed")
}

/// Sleeps for at least `duration`; only the caller stops.
pub fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let deadline = time::now_ns().saturating_add(nanos);
    while time::now_ns() < deadline && !with(|scheduler| scheduler.thread(scheduler.current).doomed) {
        cpu::without_interrupts(|| {
            with(|scheduler| scheduler.block_current(State::Sleeping, Some(deadline)));
            arch::raise_yield();
        });
    }
}

/// Blocks until [`unpark`] or `deadline_ns` (a permit from an earlier
/// unpark returns at once). May return spuriously.
pub fn park(deadline_ns: Option<u64>) {
    cpu::without_interrupts(|| {
        let blocked = with(|scheduler| {
            let slot = scheduler.current;
            let thread = scheduler.thread_mut(slot);
            if thread.doomed {
                // A crash was injected while it ran in the kernel: it would
                // not reach ring 3 until this wait ends, so it is stopped
                // here, as `inject_crash` stops a task already waiting.
                let _ = scheduler.kill_slot(slot, time::now_ns());
                scheduler.yield_reason = Switch::Voluntary;
                return true;
            }
            if core::mem::take(&mut thread.permit) {
                return false;
            }
            if deadline_ns.is_some_and(|deadline| deadline <= time::now_ns()) {
                return false;
            }
            scheduler.block_current(State::Blocked, deadline_ns);
            true
        });
        if blocked {
            arch::raise_yield();
        }
    });
}

/// Wakes a parked thread (or leaves it a permit). Safe from interrupt
/// context: if the woken thread should preempt the running one, the timer is
/// fired at once rather than switching here.
pub fn unpark(thread: ThreadRef) {
    with(|scheduler| {
        let now = time::now_ns();
        let slot = usize::from(thread.slot);
        let Some(target) = scheduler.threads[slot].as_mut().filter(|t| t.tid == thread.tid) else { return };
        if target.state == State::Blocked {
            if scheduler.wake(slot, now) {
                // Switch at the next interrupt boundary (this may be an
                // interrupt handler, or a thread holding no switch point).
                scheduler.resched = true;
                apic::arm_timer(0);
            } else {
                // Not urgent, but the timer must cover the new waiter's turn.
                scheduler.arm_timer(now);
            }
        } else {
            target.permit = true;
        }
    });
}

/// [`unpark`] from an interrupt handler that returns the frame to resume:
/// if the woken thread should run now, the switch happens on this
/// interrupt's return, where `unpark` would fire the timer for a second
/// interrupt to make it (under TCG, an interrupt and an APIC timer write
/// saved per wake-up of the network thread).
pub fn unpark_from_interrupt(thread: ThreadRef, frame: &mut TrapFrame) -> *mut TrapFrame {
    with_switch(|scheduler| {
        let now = time::now_ns();
        let slot = usize::from(thread.slot);
        let Some(target) = scheduler.threads[slot].as_mut().filter(|t| t.tid == thread.tid) else {
            return frame as *mut TrapFrame;
        };
        if target.state != State::Blocked {
            target.permit = true;
            return frame as *mut TrapFrame;
        }
        let preempts = scheduler.wake(slot, now);
        if preempts && (scheduler.current == IDLE_SLOT || scheduler.preemption) {
            scheduler.switch(frame, Switch::Involuntary, now)
        } else {
            scheduler.arm_timer(now);
            frame as *mut TrapFrame
        }
    })
}

/// Kills the thread with id `tid`. Killing oneself is `exit`. The thread
/// does not unwind (the kernel aborts on panic): a lock it holds stays held,
/// so `kill` is for stuck or runaway threads, not for cancellation — the
/// event loop's tasks are cancelled through the executor instead. A thread
/// that never ran has its entry closure dropped here, in the caller's context.
pub fn kill(tid: u32) -> Result<(), KillError> {
    let outcome = with(|scheduler| {
        let slot = scheduler
            .threads
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| t.tid == tid && t.state != State::Dead))
            .ok_or(KillError::NoSuchThread)?;
        if scheduler.thread(slot).essential {
            return Err(KillError::Essential);
        }
        if slot == scheduler.current {
            return Ok(None);
        }
        let thread = scheduler.thread_mut(slot);
        thread.kill_cause = thread.kill_cause.or(Some(CAUSE_KILLED));
        Ok(Some(scheduler.kill_slot(slot, time::now_ns())))
    })?;
    match outcome {
        None => exit(),
        // Dropped with the scheduler unlocked and interrupts as the caller
        // had them: the closure's captures may take locks or unpark threads.
        Some(entry) => drop(entry),
    }
    Ok(())
}

/// Makes `thread` the one told (unparked) when a ring-3 thread dies; the
/// deaths collect for [`take_deaths`] from then on.
pub fn watch_task_deaths(thread: ThreadRef) {
    with(|scheduler| scheduler.watcher = Some(thread));
}

/// The ring-3 deaths since the last call, oldest first, and how many were
/// dropped because nobody took them in time.
pub fn take_deaths() -> (Vec<Death>, u64) {
    with(|scheduler| (scheduler.deaths.drain(..).collect(), core::mem::take(&mut scheduler.deaths_dropped)))
}

/// The deaths of the tasks the calling thread monitors (spawned with it as
/// their monitor) since the last call, oldest first.
pub fn take_monitored_deaths() -> Vec<Death> {
    with(|scheduler| {
        let slot = scheduler.current;
        scheduler.thread_mut(slot).monitored_deaths.drain(..).collect()
    })
}

/// Tasks killed by the CPU-budget watchdog since boot.
pub fn watchdog_kills() -> u64 {
    with(|scheduler| scheduler.watchdog_kills)
}

/// Crashes the ring-3 task whose thread is `tid` by a real CPU fault: its
/// saved user frame (at the top of its kernel stack, where every entry from
/// ring 3 saves it) is sent to [`CRASH_ADDRESS`]. A task blocked in the
/// kernel would not return to ring 3 until its wait ends, so it is stopped
/// where it waits instead; either way it is reclaimed like any dead task.
pub fn inject_crash(tid: u32) -> Result<Injected, KillError> {
    with(|scheduler| {
        let slot = scheduler
            .threads
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| t.tid == tid && t.state != State::Dead))
            .ok_or(KillError::NoSuchThread)?;
        let thread = scheduler.thread(slot);
        if thread.task.is_none() || slot == scheduler.current {
            return Err(KillError::NotATask);
        }
        Ok(scheduler.crash_slot(slot, CAUSE_KILLED, time::now_ns()))
    })
}

/// All threads, for `ps`.
pub fn threads() -> Vec<ThreadInfo> {
    with(|scheduler| {
        let now = time::now_ns();
        let current = scheduler.current;
        scheduler
            .threads
            .iter()
            .enumerate()
            .filter_map(|(slot, thread)| {
                let thread = thread.as_ref()?;
                let mut stats = thread.entity.stats;
                if slot == current && slot != IDLE_SLOT {
                    stats.cpu_ns += thread.entity.running_for(now);
                }
                if slot == IDLE_SLOT {
                    stats.cpu_ns = scheduler.idle_ns
                        + if current == IDLE_SLOT {
                            now.saturating_sub(scheduler.idle_since.unwrap_or(now))
                        } else {
                            0
                        };
                }
                Some(ThreadInfo {
                    tid: thread.tid,
                    name: thread.name.clone(),
                    state: thread.state,
                    priority: thread.entity.priority(),
                    stats,
                    stack_bytes: thread.stack_bounds.1 - thread.stack_bounds.0,
                    user: thread.task.as_ref().map(|task| (task.frames(), task.quota_frames())),
                })
            })
            .collect()
    })
}

/// Scheduler-wide counters.
pub fn stats() -> SchedStats {
    with(|scheduler| SchedStats {
        threads: scheduler.threads.iter().flatten().filter(|t| t.state != State::Dead).count(),
        runnable: scheduler.queue.len(),
        switches: scheduler.switches,
        timer_interrupts: scheduler.timer_interrupts,
        idle_ns: scheduler.idle_ns,
        stack_bytes: scheduler.stack_bytes,
        preemption: scheduler.preemption,
    })
}

/// Takes the recorded lateness of slice-end preemptions (ns).
pub fn preemption_lateness() -> Vec<u64> {
    let fresh = Vec::with_capacity(LATENESS_SAMPLES);
    with(|scheduler| core::mem::replace(&mut scheduler.lateness, fresh))
}

/// Turns preemption on or off. Off, a running thread keeps the CPU until it
/// blocks, sleeps, yields or exits (cooperative scheduling).
pub fn set_preemption(enabled: bool) {
    with(|scheduler| scheduler.preemption = enabled);
}

fn on_timer(frame: &mut TrapFrame) -> *mut TrapFrame {
    apic::end_of_interrupt();
    with_switch(|scheduler| {
        let now = time::now_ns();
        scheduler.timer_interrupts += 1;
        if frame.is_user_mode() && scheduler.over_budget(now).is_some() {
            return scheduler.kill_over_budget(frame, now);
        }
        let woken_preempts = scheduler.wake_expired(now) || core::mem::take(&mut scheduler.resched);
        let running_alone = scheduler.queue.is_empty();
        let slice_over = now >= scheduler.slice_end;
        let preempt = if scheduler.current == IDLE_SLOT {
            !running_alone
        } else if !scheduler.preemption {
            false // cooperative: the running thread keeps the CPU until it blocks
        } else {
            woken_preempts || (slice_over && !running_alone)
        };
        if slice_over && scheduler.current != IDLE_SLOT {
            if preempt && scheduler.lateness.len() < LATENESS_SAMPLES {
                let late = now - scheduler.slice_end;
                scheduler.lateness.push(late);
            }
            if !preempt {
                scheduler.slice_end = now + scheduler.queue.config().target_latency_ns;
            }
        }
        if preempt {
            scheduler.switch(frame, Switch::Involuntary, now)
        } else {
            scheduler.arm_timer(now);
            frame as *mut TrapFrame
        }
    })
}

fn on_yield(frame: &mut TrapFrame) -> *mut TrapFrame {
    with_switch(|scheduler| {
        let why = core::mem::replace(&mut scheduler.yield_reason, Switch::Voluntary);
        scheduler.switch(frame, why, time::now_ns())
    })
}

fn describe_current(out: &mut dyn Write) {
    match SCHED.try_lock() {
        Some(guard) => match guard.as_ref().and_then(|s| s.threads[s.current].as_ref()) {
            Some(thread) => {
                let kind = if thread.task.is_some() { "user task" } else { "kernel thread" };
                let _ = write!(out, "{kind} `{}` (tid {})", thread.name, thread.tid);
            }
            None => {
                let _ = write!(out, "kernel thread `boot`");
            }
        },
        None => {
            let _ = write!(out, "the kernel (scheduler lock held)");
        }
    }
}

fn describe_user_address(out: &mut dyn Write, address: u64) {
    let Some(guard) = SCHED.try_lock() else { return };
    let Some(task) = guard.as_ref().and_then(|s| s.threads[s.current].as_ref()?.task.as_deref()) else {
        return;
    };
    crate::task::symbols::describe(out, task.image(), address);
}

fn guard_page_hit(address: u64) -> Option<u64> {
    let guard = SCHED.try_lock()?;
    let scheduler = guard.as_ref()?;
    // The boot thread (while it lives) runs on the bootloader's stack.
    if let Some(boot) = scheduler.threads[BOOT_SLOT].as_ref().filter(|t| t.stack.is_none()) {
        let (bottom, _) = boot.stack_bounds;
        if (bottom.saturating_sub(4096)..bottom + 64).contains(&address) {
            return Some(bottom - 4096);
        }
    }
    stack::guard_page_hit(address, |slot| {
        scheduler.threads.get(slot)?.as_ref()?.stack.as_ref().map(|stack| stack.bottom)
    })
}

fn kill_current() -> Option<*mut TrapFrame> {
    let mut guard = SCHED.try_lock()?;
    let scheduler = guard.as_mut()?;
    let slot = scheduler.current;
    if scheduler.thread(slot).essential {
        return None;
    }
    let now = time::now_ns();
    // The running thread has taken its entry already.
    let _ = scheduler.kill_slot(slot, now);
    // The dead thread's frame is never resumed; any valid pointer will do.
    let frame = scheduler.thread(slot).frame as *mut TrapFrame;
    let next = scheduler.switch(frame, Switch::Involuntary, now);
    drop(guard);
    drop_reaped_tasks();
    Some(next)
}

/// Contains a CPU fault of a supervised kernel thread (see
/// [`spawn_supervised`]): reports it to the supervisor, kills the thread and
/// returns the frame to run instead; `None` if the thread has no supervisor.
fn contain_fault() -> Option<*mut TrapFrame> {
    let mut guard = SCHED.try_lock()?;
    let scheduler = guard.as_mut()?;
    let slot = scheduler.current;
    let supervisor = scheduler.thread(slot).supervisor?;
    let now = time::now_ns();
    let supervisor_slot = usize::from(supervisor.slot);
    if let Some(target) = scheduler.threads[supervisor_slot].as_mut().filter(|t| t.tid == supervisor.tid) {
        target.faults_reported += 1;
        if target.state == State::Blocked {
            scheduler.wake(supervisor_slot, now);
        } else {
            target.permit = true;
        }
    }
    let _ = scheduler.kill_slot(slot, now);
    let frame = scheduler.thread(slot).frame as *mut TrapFrame;
    Some(scheduler.switch(frame, Switch::Involuntary, now))
}

impl Scheduler {
    fn new_thread(
        &mut self,
        name: &str,
        priority: Priority,
        stack: Option<KernelStack>,
        bounds: (u64, u64),
    ) -> Thread {
        self.new_thread_named(String::from(name), priority, stack, bounds, Box::new(FpuState::initial()))
    }

    fn new_thread_named(
        &mut self,
        name: String,
        priority: Priority,
        stack: Option<KernelStack>,
        stack_bounds: (u64, u64),
        fpu: Box<FpuState>,
    ) -> Thread {
        self.next_tid += 1;
        Thread {
            tid: self.next_tid - 1,
            name,
            state: State::Ready,
            entity: SchedEntity::new(priority),
            frame: 0,
            fpu,
            stack,
            stack_bounds,
            permit: false,
            deadline: None,
            essential: false,
            entry: None,
            task: None,
            doomed: false,
            supervisor: None,
            faults_reported: 0,
            monitor: None,
            monitored_deaths: VecDeque::new(),
            parent: None,
            children: 0,
            kill_cause: None,
        }
    }

    /// Makes a ready thread with a kernel stack of `size` bytes whose first
    /// frame `frame` builds below the stack's top; `fill` adds what the kind
    /// of thread needs. Refuses beyond the thread and stack bounds.
    fn add_thread(
        &mut self,
        name: String,
        priority: Priority,
        fpu: Box<FpuState>,
        size: u64,
        frame: impl FnOnce(u64) -> *mut TrapFrame,
        fill: impl FnOnce(&mut Thread),
    ) -> Result<ThreadRef, SpawnError> {
        let slot = self.threads.iter().position(Option::is_none).ok_or(SpawnError::TooManyThreads)?;
        if self.stack_bytes + size > STACK_BUDGET {
            return Err(SpawnError::StackBudgetExceeded);
        }
        let stack = KernelStack::allocate(slot, size).map_err(|_| SpawnError::OutOfMemory)?;
        self.stack_bytes += stack.size();
        let bounds = (stack.bottom, stack.top);
        let first_frame = frame(stack.top);
        let mut thread = self.new_thread_named(name, priority, Some(stack), bounds, fpu);
        thread.frame = first_frame as usize;
        fill(&mut thread);
        let now = time::now_ns();
        self.queue.enqueue(slot as u32, &mut thread.entity, now, Enqueue::New);
        let reference = ThreadRef { slot: slot as u16, tid: thread.tid };
        self.threads[slot] = Some(thread);
        self.arm_timer(now);
        Ok(reference)
    }

    fn thread(&self, slot: usize) -> &Thread {
        self.threads[slot].as_ref().expect("live thread slot")
    }

    fn thread_mut(&mut self, slot: usize) -> &mut Thread {
        self.threads[slot].as_mut().expect("live thread slot")
    }

    /// The slot of `thread` if it is still alive.
    fn live_slot(&self, thread: ThreadRef) -> Option<usize> {
        let slot = usize::from(thread.slot);
        self.threads.get(slot)?.as_ref().filter(|t| t.tid == thread.tid && t.state != State::Dead)?;
        Some(slot)
    }

    /// Whether the thread in `slot` may spawn a child task now.
    fn may_spawn(&self, slot: usize) -> bool {
        let thread = self.thread(slot);
        thread.task.is_some()
            && u64::from(thread.children) < MAX_CHILDREN
            && self.spawned_by_tasks < MAX_SPAWNED
    }

    /// Crashes the live ring-3 thread in `slot` (not the running one) by a
    /// real CPU fault, for `cause`: see [`inject_crash`].
    fn crash_slot(&mut self, slot: usize, cause: u64, now: u64) -> Injected {
        let thread = self.thread_mut(slot);
        thread.kill_cause = thread.kill_cause.or(Some(cause));
        if thread.state == State::Blocked {
            // A ring-3 thread's entry was taken when it was spawned.
            let _ = self.kill_slot(slot, now);
            return Injected::StoppedInKernel;
        }
        let frame = (thread.stack_bounds.1 - size_of::<TrapFrame>() as u64) as *mut TrapFrame;
        // SAFETY: the thread is not running (one CPU, and the caller is),
        // and the top of its mapped kernel stack holds its ring-3 frame
        // (`arch::user::new_user_frame`; every entry from ring 3 saves it
        // there); the scheduler lock keeps it from running while this is
        // written.
        unsafe { (*frame).rip = CRASH_ADDRESS };
        thread.doomed = true;
        if thread.state == State::Sleeping && self.wake(slot, now) {
            self.resched = true;
        }
        Injected::NextInstructionFaults
    }

    /// Marks the running thread blocked or sleeping until `deadline`.
    fn block_current(&mut self, state: State, deadline: Option<u64>) {
        let slot = self.current;
        let thread = self.thread_mut(slot);
        thread.state = state;
        thread.deadline = deadline;
        let tid = thread.tid;
        if let Some(deadline) = deadline {
            self.timers.insert((deadline, slot, tid));
        }
        self.yield_reason = Switch::Voluntary;
    }

    /// Makes a blocked or sleeping thread runnable; returns whether it
    /// should preempt the running thread.
    fn wake(&mut self, slot: usize, now: u64) -> bool {
        let current = self.current;
        let thread = self.threads[slot].as_mut().expect("live thread slot");
        if let Some(deadline) = thread.deadline.take() {
            self.timers.remove(&(deadline, slot, thread.tid));
        }
        thread.state = State::Ready;
        self.queue.enqueue(slot as u32, &mut thread.entity, now, Enqueue::Wakeup);
        if current == IDLE_SLOT {
            return true;
        }
        let woken = &self.threads[slot].as_ref().expect("just woken").entity;
        let running = &self.threads[current].as_ref().expect("running thread").entity;
        self.queue.wakeup_preempts(running, woken, now)
    }

    /// Wakes the threads whose deadlines have passed; returns whether one
    /// should preempt the running thread.
    fn wake_expired(&mut self, now: u64) -> bool {
        let mut preempt = false;
        while let Some(&(deadline, slot, tid)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.pop_first();
            let live = self.threads[slot]
                .as_ref()
                .is_some_and(|t| t.tid == tid && matches!(t.state, State::Blocked | State::Sleeping));
            if live {
                preempt |= self.wake(slot, now);
            }
        }
        preempt
    }

    /// Marks a thread dead for `reap`, and crashes the tasks it spawned
    /// (theirs in turn, as they die). Returns its entry closure if it never
    /// ran, for the caller to drop outside the lock: `reap` runs in the
    /// switch path, where dropping arbitrary captures could deadlock.
    #[must_use]
    fn kill_slot(&mut self, slot: usize, now: u64) -> Option<Entry> {
        let (entry, orphaned) = self.kill_one(slot, now);
        // A worklist, not recursion: a chain of tasks may be long.
        let mut parents: Vec<ThreadRef> = orphaned.into_iter().collect();
        while let Some(parent) = parents.pop() {
            for child in 0..self.threads.len() {
                let is_child = self.threads[child]
                    .as_ref()
                    .is_some_and(|t| t.parent == Some(parent) && t.state != State::Dead);
                if !is_child {
                    continue;
                }
                let blocked = self.thread(child).state == State::Blocked;
                let grandparent = ThreadRef { slot: child as u16, tid: self.thread(child).tid };
                let had_children = self.thread(child).children > 0;
                let _ = self.crash_slot(child, CAUSE_PARENT_ENDED, now);
                // One stopped at once ends its own children here; one that
                // will fault does so when it dies.
                if blocked && had_children {
                    parents.push(grandparent);
                }
            }
        }
        entry
    }

    /// [`Scheduler::kill_slot`] for one thread: its entry closure, and its
    /// reference if it has live children to end.
    fn kill_one(&mut self, slot: usize, now: u64) -> (Option<Entry>, Option<ThreadRef>) {
        let thread = self.threads[slot].as_mut().expect("live thread slot");
        match thread.state {
            State::Ready => {
                self.queue.remove(slot as u32, &mut thread.entity, now);
            }
            State::Blocked | State::Sleeping => {
                if let Some(deadline) = thread.deadline.take() {
                    self.timers.remove(&(deadline, slot, thread.tid));
                }
            }
            State::Running | State::Dead => {}
        }
        thread.state = State::Dead;
        let entry = thread.entry.take();
        let this = ThreadRef { slot: slot as u16, tid: thread.tid };
        let death = thread.task.as_ref().map(|task| {
            let cause = match task.exit_code() {
                Some(_) => CAUSE_EXITED,
                None => thread.kill_cause.unwrap_or(CAUSE_FAULT),
            };
            task.record_death(cause, now);
            Death { thread: this, exit_code: task.exit_code(), at_ns: now }
        });
        let (monitor, parent) = (thread.monitor, thread.parent);
        let orphaned = (thread.children > 0).then_some(this);
        self.zombies.push(slot);
        if let Some(parent) = parent {
            self.spawned_by_tasks -= 1;
            if let Some(parent_slot) = self.live_slot(parent) {
                self.thread_mut(parent_slot).children -= 1;
            }
        }
        // A task's child is told of by its own task's drop (see `Owner`).
        if let Some(death) = death
            && parent.is_none()
            && !monitor.is_some_and(|monitor| self.tell_monitor(monitor, death, now))
        {
            self.tell_watcher(death, now);
        }
        (entry, orphaned)
    }

    /// Queues a ring-3 death for the thread that monitors the task and
    /// wakes it; `false` if that thread is gone (the watcher gets it then).
    fn tell_monitor(&mut self, monitor: ThreadRef, death: Death, now: u64) -> bool {
        let slot = usize::from(monitor.slot);
        let Some(thread) =
            self.threads[slot].as_mut().filter(|t| t.tid == monitor.tid && t.state != State::Dead)
        else {
            return false;
        };
        if thread.monitored_deaths.len() == DEATH_QUEUE {
            thread.monitored_deaths.pop_front();
            self.deaths_dropped += 1;
        }
        thread.monitored_deaths.push_back(death);
        if thread.state == State::Blocked {
            if self.wake(slot, now) {
                self.resched = true;
            }
        } else {
            thread.permit = true;
        }
        true
    }

    /// Queues a ring-3 death for the watcher and wakes it.
    fn tell_watcher(&mut self, death: Death, now: u64) {
        let Some(watcher) = self.watcher else { return };
        if self.deaths.len() == DEATH_QUEUE {
            self.deaths.pop_front();
            self.deaths_dropped += 1;
        }
        self.deaths.push_back(death);
        let slot = usize::from(watcher.slot);
        match self.threads[slot].as_mut().filter(|t| t.tid == watcher.tid) {
            Some(thread) if thread.state == State::Blocked => {
                if self.wake(slot, now) {
                    self.resched = true;
                }
            }
            Some(thread) => thread.permit = true,
            None => self.watcher = None,
        }
    }

    /// For the running ring-3 thread with a CPU budget: `(used, budget)`.
    fn budget_use(&self, now: u64) -> Option<(u64, u64)> {
        let thread = self.threads[self.current].as_ref()?;
        let budget = thread.task.as_ref()?.cpu_budget_ns()?;
        Some((thread.entity.stats.cpu_ns + thread.entity.running_for(now), budget))
    }

    /// CPU time the running ring-3 thread has left of its budget, if it has one.
    fn budget_left(&self, now: u64) -> Option<u64> {
        self.budget_use(now).map(|(used, budget)| budget.saturating_sub(used))
    }

    /// [`Scheduler::budget_use`], once all of the budget is used.
    fn over_budget(&self, now: u64) -> Option<(u64, u64)> {
        self.budget_use(now).filter(|&(used, budget)| used >= budget)
    }

    /// The watchdog: reports and kills the running task (interrupted in ring
    /// 3, so it holds nothing in the kernel), then runs the next thread.
    fn kill_over_budget(&mut self, frame: &mut TrapFrame, now: u64) -> *mut TrapFrame {
        let (used, budget) = self.over_budget(now).expect("checked by the caller");
        let slot = self.current;
        let thread = self.thread(slot);
        let (name, tid) = (thread.name.clone(), thread.tid);
        console::emergency(|out| {
            let _ = write!(
                out,
                "\n!!! USER FAULT: CPU budget exceeded in user task `{name}` (tid {tid})\n    cause: used {} ms of CPU, its budget is {} ms\n    rip {:#018x}  rsp {:#018x}\n!!! task killed by the watchdog; the kernel and the other threads run on\n",
                used / 1_000_000,
                budget / 1_000_000,
                frame.rip,
                frame.rsp
            );
        });
        self.watchdog_kills += 1;
        self.thread_mut(slot).kill_cause = Some(CAUSE_WATCHDOG);
        let _ = self.kill_slot(slot, now);
        self.switch(frame, Switch::Involuntary, now)
    }

    /// Leaves the thread whose trap frame is `frame` and returns the frame of
    /// the next one.
    fn switch(&mut self, frame: *mut TrapFrame, why: Switch, now: u64) -> *mut TrapFrame {
        let previous = self.current;
        self.resched = false;
        {
            let thread = self.threads[previous].as_mut().expect("running thread");
            thread.frame = frame as usize;
            thread.fpu.save();
            if previous == IDLE_SLOT {
                thread.state = State::Ready;
                self.idle_ns += now.saturating_sub(self.idle_since.take().unwrap_or(now));
            } else {
                self.queue.stop_running(&mut thread.entity, now, why);
                if thread.state == State::Running {
                    thread.state = State::Ready;
                    self.queue.enqueue(previous as u32, &mut thread.entity, now, Enqueue::Requeue);
                }
            }
        }
        let next = match self.queue.peek_next() {
            Some(id) => {
                let slot = id as usize;
                let thread = self.threads[slot].as_mut().expect("queued thread");
                let slice = self.queue.start_running(id, &mut thread.entity, now);
                self.slice_end = now + slice;
                slot
            }
            None => {
                self.idle_since = Some(now);
                IDLE_SLOT
            }
        };
        self.current = next;
        if next != previous {
            self.switches += 1;
        }
        // Still on `previous`'s stack until the trap path switches: it can
        // only be freed by a later switch.
        self.reap(previous);
        let thread = self.threads[next].as_mut().expect("next thread");
        thread.state = State::Running;
        thread.fpu.restore();
        // Ring-3 threads run in their task's address space and enter the
        // kernel on their own stack. Kernel threads run on whatever tables
        // are loaded (every space maps the kernel half; SMAP and SMEP keep
        // them off the user half), as Linux's lazy TLB does: a handler →
        // network thread → same handler round trip then writes CR3 not at
        // all, and each write costs a full TLB flush (under TCG a large
        // one). A space is never freed while loaded: `UserSpace::destroy`
        // loads the kernel's tables first.
        if let Some(task) = &thread.task {
            arch::user::set_kernel_stack(thread.stack_bounds.1);
            paging::switch_to(task.level_4());
        }
        let frame = thread.frame as *mut TrapFrame;
        // A thread that has just died will not run again, so its task can
        // go at once (its tables, if still loaded, are swapped for the
        // kernel's as they are freed; its kernel stack only at a later
        // reap: this code still runs on it).
        if let Some(dead) = self.threads[previous].as_mut().filter(|thread| thread.state == State::Dead)
            && let Some(task) = dead.task.take()
        {
            self.dead_tasks.push(task);
            TASKS_TO_DROP.store(true, Ordering::Relaxed);
        }
        self.arm_timer(now);
        frame
    }

    /// Frees the stacks and slots of dead threads, except the one whose stack
    /// this code is running on and the one about to run.
    fn reap(&mut self, running_on: usize) {
        let current = self.current;
        let mut index = 0;
        while index < self.zombies.len() {
            let slot = self.zombies[index];
            if slot == current || slot == running_on {
                index += 1;
                continue;
            }
            self.zombies.swap_remove(index);
            if let Some(thread) = self.threads[slot].take() {
                if let Some(stack) = thread.stack {
                    self.stack_bytes -= stack.size();
                    stack.release();
                }
                if let Some(task) = thread.task {
                    self.dead_tasks.push(task);
                    TASKS_TO_DROP.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Programs the timer for the next event, or turns it off.
    fn arm_timer(&mut self, now: u64) {
        let mut next = self.timers.first().map(|&(deadline, _, _)| deadline);
        if self.current != IDLE_SLOT && !self.queue.is_empty() && self.preemption {
            next = Some(next.map_or(self.slice_end, |deadline| deadline.min(self.slice_end)));
        }
        if let Some(left) = self.budget_left(now) {
            // Spent but in the kernel (a system call): look again in 1 ms.
            let check = now + left.max(WATCHDOG_RECHECK_NS);
            next = Some(next.map_or(check, |deadline| deadline.min(check)));
        }
        match next {
            Some(deadline) => apic::arm_timer(deadline.saturating_sub(now)),
            None => apic::disarm_timer(),
        }
    }
}
