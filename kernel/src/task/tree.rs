//! The supervision trees, declared in one place. Each tree is a supervisor
//! (strategy, restart intensity, back-off) over children that are isolated
//! tasks (a program from the initrd, its argument, its CPU budget) or other
//! supervisors. `supervise <tree>` in the shell starts one; `tree` shows
//! them running, with restart counts.
//!
//! - `demo`: the three strategies side by side under one root — `workers`
//!   (one_for_one), `pipeline` (rest_for_one), `group` (one_for_all) — plus
//!   a transient task that exits normally and is not restarted.
//! - `crashloop`: a child that divides by zero as soon as it starts, under
//!   a supervisor without a restart limit: the reclamation check over
//!   thousands of crash/restart cycles.
//! - `escalation`: a crashing child whose supervisor gives up (3 restarts
//!   in 1 s), is restarted once by the root, gives up again, and the root
//!   gives up in turn (1 restart in 10 s), stopping its other child.
//! - `runaway`: a task in an endless loop without system calls beside a
//!   steady one: the CPU-budget watchdog kills the runaway, its supervisor
//!   restarts it with growing back-off.

use tenfold_runtime::supervise::{Backoff, Intensity, Restart, Strategy};

/// A supervisor and its children.
pub struct TreeSpec {
    pub name: &'static str,
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub backoff: Backoff,
    pub children: &'static [ChildDecl],
}

/// One child as declared.
pub struct ChildDecl {
    pub name: &'static str,
    pub restart: Restart,
    pub kind: ChildKind,
}

pub enum ChildKind {
    Task { program: &'static str, argument: &'static str, cpu_budget_ms: Option<u64> },
    Supervisor(&'static TreeSpec),
}

/// The trees `supervise` can start.
pub static TREES: &[&TreeSpec] = &[&DEMO, &CRASHLOOP, &ESCALATION, &RUNAWAY];

/// The tree (or subtree) called `name`.
pub fn find(name: &str) -> Option<&'static TreeSpec> {
    TREES.iter().copied().find(|tree| tree.name == name)
}

const fn per_second(max_restarts: u32) -> Intensity {
    Intensity { max_restarts, period_ns: 1_000_000_000 }
}

const fn worker(name: &'static str, restart: Restart) -> ChildDecl {
    ChildDecl {
        name,
        restart,
        kind: ChildKind::Task { program: "worker", argument: "10", cpu_budget_ms: None },
    }
}

static DEMO: TreeSpec = TreeSpec {
    name: "demo",
    strategy: Strategy::OneForOne,
    intensity: per_second(10),
    backoff: Backoff::NONE,
    children: &[
        ChildDecl { name: "workers", restart: Restart::Permanent, kind: ChildKind::Supervisor(&WORKERS) },
        ChildDecl { name: "pipeline", restart: Restart::Permanent, kind: ChildKind::Supervisor(&PIPELINE) },
        ChildDecl { name: "group", restart: Restart::Permanent, kind: ChildKind::Supervisor(&GROUP) },
        ChildDecl {
            name: "greeter",
            restart: Restart::Transient,
            kind: ChildKind::Task { program: "hello", argument: "supervised", cpu_budget_ms: None },
        },
    ],
};

static WORKERS: TreeSpec = TreeSpec {
    name: "workers",
    strategy: Strategy::OneForOne,
    intensity: per_second(5),
    backoff: Backoff::NONE,
    children: &[
        worker("worker-a", Restart::Permanent),
        worker("worker-b", Restart::Permanent),
        worker("worker-c", Restart::Permanent),
    ],
};

static PIPELINE: TreeSpec = TreeSpec {
    name: "pipeline",
    strategy: Strategy::RestForOne,
    intensity: per_second(5),
    backoff: Backoff::NONE,
    children: &[
        worker("stage-1", Restart::Permanent),
        worker("stage-2", Restart::Permanent),
        worker("stage-3", Restart::Permanent),
    ],
};

static GROUP: TreeSpec = TreeSpec {
    name: "group",
    strategy: Strategy::OneForAll,
    intensity: per_second(5),
    backoff: Backoff::NONE,
    children: &[worker("member-1", Restart::Permanent), worker("member-2", Restart::Permanent)],
};

static CRASHLOOP: TreeSpec = TreeSpec {
    name: "crashloop",
    strategy: Strategy::OneForOne,
    intensity: Intensity { max_restarts: u32::MAX, period_ns: 1_000_000_000 },
    backoff: Backoff::NONE,
    children: &[ChildDecl {
        name: "crasher",
        restart: Restart::Permanent,
        kind: ChildKind::Task { program: "crasher", argument: "divide", cpu_budget_ms: None },
    }],
};

static ESCALATION: TreeSpec = TreeSpec {
    name: "escalation",
    strategy: Strategy::OneForOne,
    intensity: Intensity { max_restarts: 1, period_ns: 10_000_000_000 },
    backoff: Backoff::NONE,
    children: &[
        ChildDecl { name: "flaky", restart: Restart::Permanent, kind: ChildKind::Supervisor(&FLAKY) },
        worker("bystander", Restart::Permanent),
    ],
};

static FLAKY: TreeSpec = TreeSpec {
    name: "flaky",
    strategy: Strategy::OneForOne,
    intensity: per_second(3),
    backoff: Backoff { initial_ns: 1_000_000, max_ns: 8_000_000 },
    children: &[ChildDecl {
        name: "crasher",
        restart: Restart::Permanent,
        kind: ChildKind::Task { program: "crasher", argument: "divide", cpu_budget_ms: None },
    }],
};

static RUNAWAY: TreeSpec = TreeSpec {
    name: "runaway",
    strategy: Strategy::OneForOne,
    intensity: per_second(5),
    backoff: Backoff { initial_ns: 100_000_000, max_ns: 400_000_000 },
    children: &[
        ChildDecl {
            name: "spinner",
            restart: Restart::Permanent,
            kind: ChildKind::Task { program: "worker", argument: "spin", cpu_budget_ms: Some(50) },
        },
        worker("steady", Restart::Permanent),
    ],
};
