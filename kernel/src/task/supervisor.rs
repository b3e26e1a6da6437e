//! The supervisor thread: runs the supervision trees of [`super::tree`]
//! with the OTP semantics of `tenfold_runtime::supervise` (that module
//! decides; this one starts and stops tasks as it asks).
//!
//! One kernel thread owns every running tree, like an Erlang supervisor
//! owns its children: the scheduler tells it when a ring-3 thread dies
//! ([`sched::watch_task_deaths`]), the shell sends it requests (start or
//! stop a tree), and it publishes a text snapshot for `tree`. Nobody else
//! touches its state, so it needs no lock but the two queues.
//!
//! Instances are named by ids that are never reused: a task's is its
//! thread reference (slot and a thread id that only grows), a supervisor's
//! a counter with [`SUPERVISOR_ID`] set. A death or a stop aimed at an id
//! that has since been restarted matches nothing and changes nothing.
//!
//! Restart latency is the time from the kernel's noticing a child's death
//! (the thread marked dead) to its replacement being loaded and runnable;
//! back-off, when a tree declares one, is part of it.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use tenfold_runtime::sched::Priority;
use tenfold_runtime::supervise::{Action, ChildSpec, Exit, Restart, Strategy, Supervisor};

use super::tree::{self, ChildDecl, ChildKind, TreeSpec};
use super::{Limits, RunError};
use crate::arch::IrqLock;
use crate::sched::{self, Death, ThreadRef};
use crate::time;

/// Marks a supervisor's instance id (a task's never has bit 63: it is a
/// 16-bit slot above a 32-bit thread id).
const SUPERVISOR_ID: u64 = 1 << 63;

/// Restart latencies kept for the percentiles.
const LATENCY_SAMPLES: usize = 4096;

/// What the shell asks of the supervisor thread.
enum Request {
    Start(&'static TreeSpec),
    Stop(String),
}

static REQUESTS: IrqLock<VecDeque<Request>> = IrqLock::new(VecDeque::new());
static THREAD: IrqLock<Option<ThreadRef>> = IrqLock::new(None);
static SNAPSHOT: IrqLock<Option<String>> = IrqLock::new(None);

/// Why a tree could not be started (the shell prints it with `Debug`).
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug")]
pub enum SuperviseError {
    NoSuchTree,
    AlreadyRunning,
    Spawn(sched::SpawnError),
}

/// Starts the tree called `name` (starting the supervisor thread first if
/// need be). The tree's own start is reported on the console and in `tree`.
pub fn start(name: &str) -> Result<(), SuperviseError> {
    let spec = tree::find(name).ok_or(SuperviseError::NoSuchTree)?;
    if snapshot().is_some_and(|text| text.contains(&format!("tree `{name}`:"))) {
        return Err(SuperviseError::AlreadyRunning);
    }
    send(Request::Start(spec))
}

/// Stops the running tree called `name`: every task in it is killed, every
/// supervisor ends.
pub fn stop(name: &str) -> Result<(), SuperviseError> {
    tree::find(name).ok_or(SuperviseError::NoSuchTree)?;
    send(Request::Stop(String::from(name)))
}

/// The text `tree` prints: the running trees, or `None` before any started.
pub fn snapshot() -> Option<String> {
    SNAPSHOT.lock().clone()
}

fn send(request: Request) -> Result<(), SuperviseError> {
    REQUESTS.lock().push_back(request);
    let mut thread = THREAD.lock();
    match *thread {
        Some(thread) => sched::unpark(thread),
        None => {
            let spawned = sched::spawn("supervisor", Priority::HIGHEST, 32 * 1024, run)
                .map_err(SuperviseError::Spawn)?;
            *thread = Some(spawned);
        }
    }
    Ok(())
}

/// The supervisor thread's loop.
fn run() {
    sched::watch_task_deaths(sched::current());
    let mut forest = Forest { latencies: VecDeque::with_capacity(LATENCY_SAMPLES), ..Forest::default() };
    loop {
        let requests: Vec<Request> = REQUESTS.lock().drain(..).collect();
        for request in requests {
            match request {
                Request::Start(spec) => forest.start_root(spec),
                Request::Stop(name) => forest.stop_root(&name),
            }
        }
        let (deaths, dropped) = sched::take_deaths();
        if dropped > 0 {
            log::error!("supervisor: {dropped} task deaths were dropped before it could take them");
        }
        for death in deaths {
            forest.on_death(death);
        }
        forest.poll();
        *SNAPSHOT.lock() = Some(forest.render());
        sched::park(forest.next_deadline());
    }
}

/// One running supervisor (a tree's root or a subtree).
struct Node {
    spec: &'static TreeSpec,
    machine: Supervisor<&'static ChildDecl, u64>,
    parent: Option<u64>,
    /// Instances started and not yet ended: tasks and subtrees.
    live: BTreeSet<u64>,
    /// Asked to stop by its parent or the shell; ends once `live` is empty.
    stopping: bool,
    /// Gave up (restart intensity exceeded); ends once `live` is empty.
    gave_up: bool,
}

#[derive(Default)]
struct Forest {
    /// Every running supervisor, by id.
    nodes: BTreeMap<u64, Node>,
    /// Root ids in start order.
    roots: Vec<u64>,
    /// Which supervisor a running task belongs to.
    task_owner: BTreeMap<u64, u64>,
    /// (supervisor, child) → when that child died, until it is restarted.
    died_at: BTreeMap<(u64, usize), u64>,
    next_supervisor: u64,
    latencies: VecDeque<u64>,
    restarts: u64,
    /// How the last roots ended, for `tree`.
    ended: Vec<String>,
}

impl Forest {
    fn start_root(&mut self, spec: &'static TreeSpec) {
        if self.roots.iter().any(|root| self.nodes[root].spec.name == spec.name) {
            log::warn!("supervisor: tree `{}` is already running", spec.name);
            return;
        }
        let id = self.new_node(spec, None);
        self.roots.push(id);
        log::info!("supervisor: started tree `{}`", spec.name);
        let actions = self.node(id).machine.start();
        self.apply(id, actions);
    }

    fn stop_root(&mut self, name: &str) {
        let Some(&root) = self.roots.iter().find(|&&root| self.nodes[&root].spec.name == name) else {
            log::warn!("supervisor: no tree `{name}` is running");
            return;
        };
        self.stop_node(root);
    }

    fn new_node(&mut self, spec: &'static TreeSpec, parent: Option<u64>) -> u64 {
        self.next_supervisor += 1;
        let id = SUPERVISOR_ID | self.next_supervisor;
        let children = spec
            .children
            .iter()
            .map(|decl| ChildSpec { name: decl.name, restart: decl.restart, start: decl })
            .collect();
        let machine = Supervisor::new(spec.strategy, spec.intensity, spec.backoff, children);
        let node = Node { spec, machine, parent, live: BTreeSet::new(), stopping: false, gave_up: false };
        self.nodes.insert(id, node);
        id
    }

    fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).expect("a live supervisor")
    }

    /// Carries out what supervisor `id` asked, and what that leads to.
    fn apply(&mut self, id: u64, actions: Vec<Action<u64>>) {
        self.run(actions.into_iter().map(|action| (id, action)).collect());
    }

    /// Ends supervisor `id` if it is done, and carries out what its parent
    /// then asks (see [`Forest::finish_if_done`]).
    fn finish(&mut self, id: u64) {
        if let Some(more) = self.finish_if_done(id) {
            self.run(more.into());
        }
    }

    /// Carries out `(supervisor, action)` pairs in order, and the actions
    /// they lead to.
    fn run(&mut self, mut work: VecDeque<(u64, Action<u64>)>) {
        while let Some((id, action)) = work.pop_front() {
            if !self.nodes.contains_key(&id) {
                continue;
            }
            let now = time::now_ns();
            match action {
                Action::Start { .. } if self.node(id).stopping => {}
                Action::Start { child } => {
                    let decl: &'static ChildDecl = self.node(id).machine.spec(child).start;
                    let instance = self.start_child(id, decl);
                    if let (Some(_), Some(died)) = (instance, self.died_at.remove(&(id, child))) {
                        self.restarts += 1;
                        if self.latencies.len() == LATENCY_SAMPLES {
                            self.latencies.pop_front();
                        }
                        self.latencies.push_back(time::now_ns().saturating_sub(died));
                    }
                    let more = self.node(id).machine.started(child, instance, now);
                    work.extend(more.into_iter().map(|action| (id, action)));
                    if let Some(sub) = instance.filter(|&instance| instance & SUPERVISOR_ID != 0) {
                        let start = self.node(sub).machine.start();
                        work.extend(start.into_iter().map(|action| (sub, action)));
                    }
                }
                Action::Stop { id: instance, .. } => self.stop_instance(instance),
                Action::Terminate => {
                    let node = self.node(id);
                    node.gave_up = true;
                    log::warn!(
                        "supervisor `{}`: more than {} restarts in {} ms; it stops its children and gives up",
                        node.spec.name,
                        node.spec.intensity.max_restarts,
                        node.spec.intensity.period_ns / 1_000_000
                    );
                }
            }
            if let Some(more) = self.finish_if_done(id) {
                work.extend(more);
            }
        }
    }

    /// Starts one child of supervisor `id`; its instance id, or `None`.
    fn start_child(&mut self, id: u64, decl: &'static ChildDecl) -> Option<u64> {
        let instance = match decl.kind {
            ChildKind::Task { program, argument, cpu_budget_ms } => {
                let limits =
                    Limits { cpu_budget_ns: cpu_budget_ms.map(|ms| ms * 1_000_000), ..Limits::DEFAULT };
                match super::run_limited(decl.name, program, argument, limits) {
                    Ok(thread) => {
                        let instance = thread.to_bits();
                        self.task_owner.insert(instance, id);
                        instance
                    }
                    Err(error) => {
                        log_start_failure(decl.name, &error);
                        return None;
                    }
                }
            }
            ChildKind::Supervisor(spec) => self.new_node(spec, Some(id)),
        };
        self.node(id).live.insert(instance);
        Some(instance)
    }

    /// Stops a task (killed outright: a supervisor's brutal kill) or a
    /// subtree; its end is reported to its supervisor like any other.
    fn stop_instance(&mut self, instance: u64) {
        if instance & SUPERVISOR_ID != 0 {
            if self.nodes.contains_key(&instance) {
                self.stop_node(instance);
            }
        } else {
            // Already dead is fine: its death is on its way.
            let _ = sched::kill(ThreadRef::from_bits(instance).tid());
        }
    }

    fn stop_node(&mut self, id: u64) {
        let node = self.node(id);
        node.stopping = true;
        let live: Vec<u64> = node.live.iter().copied().collect();
        for instance in live {
            self.stop_instance(instance);
        }
        self.finish(id);
    }

    fn on_death(&mut self, death: Death) {
        let instance = death.thread.to_bits();
        // Not ours (a task the shell ran), or already handled.
        let Some(owner) = self.task_owner.remove(&instance) else { return };
        if !self.nodes.contains_key(&owner) {
            return;
        }
        let exit = if death.exit_code == Some(0) { Exit::Normal } else { Exit::Abnormal };
        self.child_ended(owner, instance, exit, death.at_ns);
    }

    /// Instance `instance` of supervisor `owner` ended at `at_ns`.
    fn child_ended(&mut self, owner: u64, instance: u64, exit: Exit, at_ns: u64) {
        let node = self.node(owner);
        node.live.remove(&instance);
        // Kept until the child's next start (the restart latency sample),
        // whether that comes at once or after a back-off.
        if let Some(child) = node.machine.child_of(instance) {
            self.died_at.insert((owner, child), at_ns);
        }
        let actions = self.node(owner).machine.exited(instance, exit, time::now_ns());
        // A supervisor being stopped restarts nothing: it waits for the rest.
        if !self.node(owner).stopping {
            self.apply(owner, actions);
        }
        self.finish(owner);
    }

    /// A supervisor that was stopped or gave up and has nothing running
    /// ends: it leaves the forest and its parent hears of it. Returns the
    /// parent's resulting actions.
    fn finish_if_done(&mut self, id: u64) -> Option<Vec<(u64, Action<u64>)>> {
        let node = self.nodes.get(&id)?;
        if !(node.stopping || node.gave_up) || !node.live.is_empty() {
            return None;
        }
        let node = self.nodes.remove(&id).expect("checked above");
        self.died_at.retain(|&(owner, _), _| owner != id);
        match node.parent {
            Some(parent) if self.nodes.contains_key(&parent) => {
                let exit = if node.gave_up { Exit::Abnormal } else { Exit::Normal };
                let parent_node = self.node(parent);
                parent_node.live.remove(&id);
                let child = parent_node.machine.child_of(id);
                let actions = parent_node.machine.exited(id, exit, time::now_ns());
                if let Some(child) = child
                    && node.gave_up
                {
                    self.died_at.insert((parent, child), time::now_ns());
                }
                let mut more: Vec<(u64, Action<u64>)> =
                    actions.into_iter().map(|action| (parent, action)).collect();
                if let Some(after) = self.finish_if_done(parent) {
                    more.extend(after);
                }
                Some(more)
            }
            Some(_) => Some(Vec::new()),
            None => {
                self.roots.retain(|&root| root != id);
                let how = if node.gave_up { "gave up (restart intensity exceeded)" } else { "was stopped" };
                log::warn!("supervisor: tree `{}` {how}; it has ended", node.spec.name);
                self.ended.push(format!("tree `{}` ended: it {how}", node.spec.name));
                if self.ended.len() > 8 {
                    self.ended.remove(0);
                }
                Some(Vec::new())
            }
        }
    }

    /// Restarts whose back-off has ended.
    fn poll(&mut self) {
        let now = time::now_ns();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(node) = self.nodes.get_mut(&id) {
                let actions = node.machine.poll(now);
                if !actions.is_empty() {
                    self.apply(id, actions);
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.nodes.values().filter_map(|node| node.machine.next_deadline()).min()
    }

    /// The text of `tree`.
    fn render(&self) -> String {
        let mut text = String::new();
        for &root in &self.roots {
            let node = &self.nodes[&root];
            let _ = writeln!(text, "tree `{}`:", node.spec.name);
            self.render_node(&mut text, root, 1);
        }
        if self.roots.is_empty() {
            let _ = writeln!(text, "no supervision tree is running");
        }
        for line in &self.ended {
            let _ = writeln!(text, "{line}");
        }
        let mut sorted: Vec<u64> = self.latencies.iter().copied().collect();
        sorted.sort_unstable();
        let percentile = |p: usize| sorted.get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)));
        match (percentile(50), percentile(99), sorted.last()) {
            (Some(p50), Some(p99), Some(max)) => {
                let _ = writeln!(
                    text,
                    "restarts: {}; restart latency (death -> replacement runnable) p50 {} us, p99 {} us, max {} us over the last {}",
                    self.restarts,
                    p50 / 1000,
                    p99 / 1000,
                    max / 1000,
                    sorted.len()
                );
            }
            _ => {
                let _ = writeln!(text, "restarts: {}", self.restarts);
            }
        }
        text
    }

    fn render_node(&self, text: &mut String, id: u64, depth: usize) {
        let node = &self.nodes[&id];
        let indent = "  ".repeat(depth);
        let _ = writeln!(
            text,
            "{indent}supervisor `{}`: {}, at most {} restarts in {} ms{}{}",
            node.spec.name,
            strategy_name(node.spec.strategy),
            node.spec.intensity.max_restarts,
            node.spec.intensity.period_ns / 1_000_000,
            if node.spec.backoff.initial_ns > 0 {
                format!(
                    ", back-off {}..{} ms",
                    node.spec.backoff.initial_ns / 1_000_000,
                    node.spec.backoff.max_ns / 1_000_000
                )
            } else {
                String::new()
            },
            if node.gave_up {
                ", GAVE UP"
            } else if node.stopping {
                ", stopping"
            } else {
                ""
            }
        );
        for child in node.machine.children() {
            let restart = restart_name(child.restart);
            match child.running {
                Some(sub) if sub & SUPERVISOR_ID != 0 && self.nodes.contains_key(&sub) => {
                    let _ =
                        writeln!(text, "{indent}  {} ({restart}, restarts {})", child.name, child.restarts);
                    self.render_node(text, sub, depth + 2);
                }
                Some(task) => {
                    let _ = writeln!(
                        text,
                        "{indent}  {} task {} ({restart}, restarts {})",
                        child.name,
                        ThreadRef::from_bits(task).tid(),
                        child.restarts
                    );
                }
                None => {
                    let _ = writeln!(
                        text,
                        "{indent}  {} not running ({restart}, restarts {})",
                        child.name, child.restarts
                    );
                }
            }
        }
    }
}

fn log_start_failure(name: &str, error: &RunError) {
    log::error!("supervisor: could not start `{name}`: {error:?}");
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::OneForOne => "one_for_one",
        Strategy::OneForAll => "one_for_all",
        Strategy::RestForOne => "rest_for_one",
    }
}

fn restart_name(restart: Restart) -> &'static str {
    match restart {
        Restart::Permanent => "permanent",
        Restart::Transient => "transient",
        Restart::Temporary => "temporary",
    }
}
