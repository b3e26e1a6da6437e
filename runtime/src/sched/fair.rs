//! The run queue: weighted fair queueing by virtual runtime (the policy of
//! Linux's CFS, reduced to what Tenfold needs).
//!
//! Every thread carries a *virtual runtime*: CPU time scaled by
//! `NORMAL weight / own weight`, so a thread with twice the weight ages half
//! as fast. The queue always runs the runnable thread with the smallest
//! virtual runtime, for a slice of the target latency proportional to its
//! weight (never less than the minimum granularity).
//!
//! Guarantees (tested in this module, observed in the kernel's self-tests):
//! - **Proportional share.** CPU-bound threads that stay runnable get CPU
//!   in proportion to their weights; equal priorities get equal shares.
//! - **No starvation.** A runnable thread of weight `w` waits at most
//!   `max(P, s × W / w)`, where `P = max(target latency, n × g)` is the
//!   period for `n` runnable threads, `g` the minimum granularity, `s` the
//!   slice it last ran (`g`, plus the timer's lateness) and `W` the other
//!   runnable threads' total weight. With the weights of [`Priority`],
//!   priority 0 against three priority-39 hogs waits ≈ 250 ms (2 ms
//!   granularity); equal priorities wait at most one period.
//! - **Bounded sleeper credit.** A thread that wakes after sleeping is placed
//!   at most half a target latency behind the queue's minimum, so sleeping
//!   cannot bank CPU time, while an interactive thread still runs promptly
//!   (and preempts a CPU hog when its claim is better by the wake-up
//!   granularity).
//!
//! Per-CPU design: one `FairQueue` per CPU, each with its own minimum
//! virtual runtime. Work stealing moves a thread with [`FairQueue::steal`]
//! and [`FairQueue::enqueue`] on the thief, re-basing its virtual runtime.

use alloc::collections::BTreeSet;

use super::accounting::ThreadStats;
use super::priority::Priority;

/// Identifies a thread within the kernel's thread table.
pub type ThreadId = u32;

/// Tunables, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    /// Period in which every runnable thread should run once.
    pub target_latency_ns: u64,
    /// Shortest slice, however many threads share the CPU.
    pub min_granularity_ns: u64,
    /// How much better a waking thread's claim must be to preempt.
    pub wakeup_granularity_ns: u64,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            target_latency_ns: 12_000_000,
            min_granularity_ns: 2_000_000,
            wakeup_granularity_ns: 1_000_000,
        }
    }
}

/// Why a thread enters the run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueue {
    /// Just spawned.
    New,
    /// Was blocked or sleeping.
    Wakeup,
    /// Was running and remains runnable (preempted or yielded).
    Requeue,
    /// Moved here from another CPU's queue.
    Migrated,
}

/// Why a thread leaves the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// It blocked, slept, yielded or exited.
    Voluntary,
    /// Its slice ended or a waking thread preempted it.
    Involuntary,
}

/// The policy's per-thread state, stored in the kernel's thread record.
#[derive(Clone, Debug)]
pub struct SchedEntity {
    priority: Priority,
    vruntime: u64,
    /// When it became runnable (for wait accounting), while queued.
    queued_at: Option<u64>,
    /// When it started running, while running.
    running_since: Option<u64>,
    pub stats: ThreadStats,
}

impl SchedEntity {
    pub fn new(priority: Priority) -> Self {
        SchedEntity {
            priority,
            vruntime: 0,
            queued_at: None,
            running_since: None,
            stats: ThreadStats::default(),
        }
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    pub fn vruntime(&self) -> u64 {
        self.vruntime
    }

    pub fn is_queued(&self) -> bool {
        self.queued_at.is_some()
    }

    /// How long it has been running, if it is (not yet in `stats.cpu_ns`).
    pub fn running_for(&self, now: u64) -> u64 {
        self.running_since.map_or(0, |since| now.saturating_sub(since))
    }
}

/// One CPU's run queue.
#[derive(Debug)]
pub struct FairQueue {
    config: SchedConfig,
    /// Runnable, not running: ordered by (virtual runtime, id).
    queue: BTreeSet<(u64, ThreadId)>,
    queued_weight: u64,
    /// Never decreases: the floor for placing new and waking threads.
    min_vruntime: u64,
    /// The running thread: its virtual runtime when it started, since when,
    /// and its weight — so the floor can follow it while it runs.
    running: Option<Running>,
}

#[derive(Clone, Copy, Debug)]
struct Running {
    vruntime: u64,
    since: u64,
    weight: u64,
}

impl Running {
    fn vruntime_at(&self, now: u64) -> u64 {
        self.vruntime + now.saturating_sub(self.since) * Priority::NORMAL.weight() / self.weight
    }
}

impl FairQueue {
    pub fn new(config: SchedConfig) -> Self {
        FairQueue { config, queue: BTreeSet::new(), queued_weight: 0, min_vruntime: 0, running: None }
    }

    pub fn config(&self) -> SchedConfig {
        self.config
    }

    /// Runnable threads waiting for this CPU.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn min_vruntime(&self) -> u64 {
        self.min_vruntime
    }

    /// Makes `id` runnable on this CPU.
    pub fn enqueue(&mut self, id: ThreadId, entity: &mut SchedEntity, now: u64, why: Enqueue) {
        debug_assert!(!entity.is_queued(), "thread {id} enqueued twice");
        self.update_min_vruntime(now);
        let floor = self.min_vruntime;
        entity.vruntime = match why {
            // Start level with the others: no head start, no penalty.
            Enqueue::New | Enqueue::Migrated => floor.max(entity.vruntime.min(floor)),
            // Sleep earns at most half a latency of credit.
            Enqueue::Wakeup => entity.vruntime.max(floor.saturating_sub(self.config.target_latency_ns / 2)),
            Enqueue::Requeue => entity.vruntime,
        };
        entity.queued_at = Some(now);
        self.queue.insert((entity.vruntime, id));
        self.queued_weight += entity.priority.weight();
    }

    /// Takes a queued thread out (it was killed, or is being migrated).
    /// Returns whether it was queued here.
    pub fn remove(&mut self, id: ThreadId, entity: &mut SchedEntity, now: u64) -> bool {
        if !self.queue.remove(&(entity.vruntime, id)) {
            return false;
        }
        self.queued_weight -= entity.priority.weight();
        Self::account_wait(entity, now);
        true
    }

    /// The thread that should run next (it stays queued until
    /// [`FairQueue::start_running`]).
    pub fn peek_next(&self) -> Option<ThreadId> {
        self.queue.first().map(|&(_, id)| id)
    }

    /// Dequeues `id` (the thread [`FairQueue::peek_next`] named) to run now;
    /// returns its slice in nanoseconds. `running_weight` is the weight of
    /// threads running elsewhere that share this CPU's period (0 on one CPU).
    pub fn start_running(&mut self, id: ThreadId, entity: &mut SchedEntity, now: u64) -> u64 {
        let removed = self.remove(id, entity, now);
        debug_assert!(removed, "thread {id} started without being queued");
        entity.running_since = Some(now);
        entity.stats.runs += 1;
        self.running =
            Some(Running { vruntime: entity.vruntime, since: now, weight: entity.priority.weight() });
        self.update_min_vruntime(now);
        self.slice_for(entity)
    }

    /// Accounts the CPU time of a thread that leaves the CPU. A thread that
    /// stays runnable must then be put back with `Enqueue::Requeue`.
    pub fn stop_running(&mut self, entity: &mut SchedEntity, now: u64, why: Switch) {
        if let Some(since) = entity.running_since.take() {
            let ran = now.saturating_sub(since);
            entity.stats.cpu_ns += ran;
            entity.vruntime += ran * Priority::NORMAL.weight() / entity.priority.weight();
        }
        match why {
            Switch::Voluntary => entity.stats.voluntary_switches += 1,
            Switch::Involuntary => entity.stats.involuntary_switches += 1,
        }
        self.update_min_vruntime(now);
        self.running = None;
    }

    /// Whether the running thread has used up its slice: true once it has run
    /// `slice` and someone else is waiting.
    pub fn slice_expired(&self, running: &SchedEntity, now: u64) -> bool {
        let Some(since) = running.running_since else { return false };
        !self.queue.is_empty() && now.saturating_sub(since) >= self.slice_for(running)
    }

    /// Whether a thread that just woke (and was enqueued) should preempt the
    /// running one: its virtual runtime is lower by more than the wake-up
    /// granularity (scaled to the running thread's weight), counting the
    /// running thread's time so far.
    pub fn wakeup_preempts(&self, running: &SchedEntity, woken: &SchedEntity, now: u64) -> bool {
        let running_vruntime = Running {
            vruntime: running.vruntime,
            since: running.running_since.unwrap_or(now),
            weight: running.priority.weight(),
        }
        .vruntime_at(now);
        let granularity =
            self.config.wakeup_granularity_ns * Priority::NORMAL.weight() / running.priority.weight();
        woken.vruntime + granularity < running_vruntime
    }

    /// Picks a thread to give to another CPU: the one that would run last
    /// here. The caller enqueues it there with `Enqueue::Migrated`.
    pub fn steal(&mut self, entity_of: impl Fn(ThreadId) -> bool) -> Option<ThreadId> {
        self.queue.iter().rev().map(|&(_, id)| id).find(|&id| entity_of(id))
    }

    /// Slice: the target latency shared by weight, at least the minimum
    /// granularity.
    fn slice_for(&self, entity: &SchedEntity) -> u64 {
        let weight = entity.priority.weight();
        let total = self.queued_weight + weight;
        let runnable = self.queue.len() as u64 + 1;
        let period = self.config.target_latency_ns.max(runnable * self.config.min_granularity_ns);
        (period * weight / total).max(self.config.min_granularity_ns)
    }

    fn update_min_vruntime(&mut self, now: u64) {
        let running = self.running.map(|running| running.vruntime_at(now));
        let leftmost = self.queue.first().map(|&(vruntime, _)| vruntime);
        let candidate = match (running, leftmost) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return,
        };
        self.min_vruntime = self.min_vruntime.max(candidate);
    }

    fn account_wait(entity: &mut SchedEntity, now: u64) {
        if let Some(since) = entity.queued_at.take() {
            let waited = now.saturating_sub(since);
            entity.stats.wait_ns += waited;
            entity.stats.max_wait_ns = entity.stats.max_wait_ns.max(waited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const MS: u64 = 1_000_000;

    /// A one-CPU simulation: threads that are always runnable, a timer that
    /// checks the slice every `tick` ns.
    struct Sim {
        queue: FairQueue,
        threads: Vec<SchedEntity>,
        running: Option<ThreadId>,
        now: u64,
    }

    impl Sim {
        fn new(priorities: &[Priority]) -> Sim {
            let mut sim = Sim {
                queue: FairQueue::new(SchedConfig::default()),
                threads: priorities.iter().map(|&p| SchedEntity::new(p)).collect(),
                running: None,
                now: 0,
            };
            for id in 0..priorities.len() {
                sim.queue.enqueue(id as ThreadId, &mut sim.threads[id], 0, Enqueue::New);
            }
            sim
        }

        fn switch(&mut self, why: Switch, requeue: bool) {
            if let Some(id) = self.running.take() {
                let entity = &mut self.threads[id as usize];
                self.queue.stop_running(entity, self.now, why);
                if requeue {
                    self.queue.enqueue(id, entity, self.now, Enqueue::Requeue);
                }
            }
            if let Some(next) = self.queue.peek_next() {
                self.queue.start_running(next, &mut self.threads[next as usize], self.now);
                self.running = Some(next);
            }
        }

        /// Runs for `duration` with a timer tick of `tick`.
        fn run(&mut self, duration: u64, tick: u64) {
            if self.running.is_none() {
                self.switch(Switch::Voluntary, false);
            }
            let end = self.now + duration;
            while self.now < end {
                self.now += tick;
                let id = self.running.unwrap();
                if self.queue.slice_expired(&self.threads[id as usize], self.now) {
                    self.switch(Switch::Involuntary, true);
                }
            }
        }

        fn cpu(&self, id: usize) -> u64 {
            let entity = &self.threads[id];
            let running = if self.running == Some(id as ThreadId) {
                self.now - entity.running_since.unwrap()
            } else {
                0
            };
            entity.stats.cpu_ns + running
        }
    }

    #[test]
    fn equal_priorities_share_equally() {
        let mut sim = Sim::new(&[Priority::NORMAL; 4]);
        sim.run(4000 * MS, MS);
        for id in 0..4 {
            let share = sim.cpu(id) as f64 / sim.now as f64;
            assert!((share - 0.25).abs() < 0.01, "thread {id}: share {share}");
        }
    }

    #[test]
    fn shares_follow_weights_and_nobody_starves() {
        let priorities = [Priority::HIGHEST, Priority::NORMAL, Priority::LOWEST];
        let mut sim = Sim::new(&priorities);
        sim.run(20_000 * MS, MS);
        let total: u64 = priorities.iter().map(|p| p.weight()).sum();
        for (id, priority) in priorities.iter().enumerate() {
            let expected = priority.weight() as f64 / total as f64;
            let share = sim.cpu(id) as f64 / sim.now as f64;
            // Minimum granularity gives the lowest a little more than its weight.
            assert!(share >= expected * 0.9, "thread {id}: share {share}, expected {expected}");
            assert!(sim.cpu(id) > 0, "thread {id} starved");
        }
        // The lowest priority's longest wait obeys the documented bound
        // max(P, s × W_others / w), not the length of the run; s is at most
        // the granularity plus one tick.
        let config = SchedConfig::default();
        let others = priorities[0].weight() + priorities[1].weight();
        let slice = config.min_granularity_ns + MS;
        let bound = config.target_latency_ns.max(slice * others / priorities[2].weight());
        let lowest_wait = sim.threads[2].stats.max_wait_ns;
        assert!(lowest_wait <= bound + MS, "lowest waited {lowest_wait} ns, bound {bound}");
        assert!(bound < 150 * MS, "bound {bound}");
    }

    #[test]
    fn waits_are_bounded_with_many_threads() {
        let mut sim = Sim::new(&[Priority::NORMAL; 20]);
        sim.run(2000 * MS, MS / 4);
        let config = SchedConfig::default();
        let round = config.target_latency_ns.max(20 * config.min_granularity_ns);
        for thread in &sim.threads {
            assert!(thread.stats.max_wait_ns <= round, "waited {} > {round}", thread.stats.max_wait_ns);
        }
    }

    #[test]
    fn slices_shrink_to_the_minimum_granularity() {
        let mut queue = FairQueue::new(SchedConfig::default());
        let mut threads: Vec<SchedEntity> = (0..100).map(|_| SchedEntity::new(Priority::NORMAL)).collect();
        for (id, thread) in threads.iter_mut().enumerate() {
            queue.enqueue(id as ThreadId, thread, 0, Enqueue::New);
        }
        let next = queue.peek_next().unwrap();
        let slice = queue.start_running(next, &mut threads[next as usize], 0);
        assert_eq!(slice, SchedConfig::default().min_granularity_ns);
    }

    #[test]
    fn a_lone_thread_is_never_preempted() {
        let mut sim = Sim::new(&[Priority::NORMAL]);
        sim.run(100 * MS, MS);
        assert_eq!(sim.threads[0].stats.involuntary_switches, 0);
    }

    #[test]
    fn sleepers_get_bounded_credit_and_preempt_hogs() {
        let config = SchedConfig::default();
        let mut sim = Sim::new(&[Priority::NORMAL, Priority::NORMAL]);
        // Thread 1 sleeps for a long time while thread 0 hogs the CPU.
        sim.run(config.target_latency_ns, MS / 2);
        let sleeper = 1;
        if sim.running == Some(sleeper) {
            sim.switch(Switch::Voluntary, false);
        } else {
            let entity = &mut sim.threads[sleeper as usize];
            assert!(sim.queue.remove(sleeper, entity, sim.now));
        }
        sim.run(1000 * MS, MS);
        // It wakes: placed at most half a latency behind, not 1 s behind.
        let entity = &mut sim.threads[sleeper as usize];
        sim.queue.enqueue(sleeper, entity, sim.now, Enqueue::Wakeup);
        let floor = sim.queue.min_vruntime();
        assert!(floor - sim.threads[1].vruntime() <= config.target_latency_ns / 2);
        let hog = &sim.threads[0];
        assert!(sim.queue.wakeup_preempts(hog, &sim.threads[1], sim.now), "an interactive thread preempts");
        // After its credit is used up, the two share equally again.
        let before = (sim.cpu(0), sim.cpu(1));
        sim.switch(Switch::Involuntary, true);
        sim.run(2000 * MS, MS);
        let gained = (sim.cpu(0) - before.0, sim.cpu(1) - before.1);
        let share = gained.1 as f64 / (gained.0 + gained.1) as f64;
        assert!((0.45..0.56).contains(&share), "sleeper share after waking: {share}");
    }

    #[test]
    fn a_thread_that_just_ran_does_not_preempt() {
        let mut queue = FairQueue::new(SchedConfig::default());
        let mut running = SchedEntity::new(Priority::NORMAL);
        let mut woken = SchedEntity::new(Priority::NORMAL);
        queue.enqueue(0, &mut running, 0, Enqueue::New);
        queue.start_running(0, &mut running, 0);
        queue.enqueue(1, &mut woken, 0, Enqueue::Wakeup);
        // Both at the floor: no preemption until the runner is ahead by the granularity.
        assert!(!queue.wakeup_preempts(&running, &woken, MS / 2));
        assert!(queue.wakeup_preempts(&running, &woken, 2 * MS));
    }

    #[test]
    fn accounting_counts_switches_and_waits() {
        let mut sim = Sim::new(&[Priority::NORMAL, Priority::NORMAL]);
        sim.run(100 * MS, MS);
        let a = sim.threads[0].stats;
        let b = sim.threads[1].stats;
        assert!(a.involuntary_switches + b.involuntary_switches >= 8, "{a:?} {b:?}");
        assert!(a.wait_ns > 0 && b.wait_ns > 0);
        assert_eq!(sim.cpu(0) + sim.cpu(1), sim.now, "every nanosecond is accounted to someone");
    }

    #[test]
    fn steal_takes_the_thread_that_would_run_last() {
        let mut queue = FairQueue::new(SchedConfig::default());
        let mut threads: Vec<SchedEntity> = (0..3).map(|_| SchedEntity::new(Priority::NORMAL)).collect();
        threads[2].vruntime = 0;
        for (id, thread) in threads.iter_mut().enumerate() {
            queue.enqueue(id as ThreadId, thread, 0, Enqueue::New);
        }
        let victim = queue.steal(|_| true).unwrap();
        assert_eq!(victim, 2);
        assert!(queue.remove(victim, &mut threads[2], 0));
        let mut other = FairQueue::new(SchedConfig::default());
        other.enqueue(victim, &mut threads[2], 0, Enqueue::Migrated);
        assert_eq!(other.peek_next(), Some(2));
        assert_eq!(queue.len(), 2);
    }
}
