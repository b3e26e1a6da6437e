//! Supervision with OTP semantics, as a state machine its host drives: the
//! kernel (isolated tasks) or a host test (fake tasks). The supervisor never
//! starts or stops anything itself; it answers each event with the
//! [`Action`]s the host must take, so the policy is written once and tested
//! here, on the host, with a clock the test controls.
//!
//! - **Strategies** ([`Strategy`]): `OneForOne` restarts the child that
//!   exited; `OneForAll` stops every other child (in reverse start order)
//!   and restarts all in start order; `RestForOne` does that for the child
//!   and those started after it.
//! - **Restart types** ([`Restart`]): `Permanent` children are always
//!   restarted, `Transient` ones only after an abnormal exit, `Temporary`
//!   ones never (they are dropped from the supervisor when they exit).
//! - **Restart intensity** ([`Intensity`]): at most `max_restarts` restarts
//!   within `period_ns`; one more and the supervisor gives up — it stops
//!   every child and reports [`Action::Terminate`], and its own supervisor
//!   (the host passes the exit up) decides.
//! - **Back-off** ([`Backoff`]): a child that crashes again soon after a
//!   restart waits longer before the next one (doubling up to a cap); a
//!   child that ran for a whole intensity period starts from the initial
//!   delay again.
//! - **Stale ids**: the host names running children by id (a task id that
//!   carries a generation); an event for an id that is not the child's
//!   current instance — an old incarnation, a child being stopped — changes
//!   nothing.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Which children a restart takes along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    OneForOne,
    OneForAll,
    RestForOne,
}

/// When a child is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Permanent,
    Transient,
    Temporary,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It finished on its own (exit code 0).
    Normal,
    /// A fault, a panic, a non-zero exit, a budget overrun.
    Abnormal,
}

/// At most `max_restarts` restarts within `period_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub period_ns: u64,
}

/// Delay before a restart: `initial_ns`, doubled for each restart in a row
/// that came within an intensity period of the last, up to `max_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ns: u64,
    pub max_ns: u64,
}

impl Backoff {
    pub const NONE: Backoff = Backoff { initial_ns: 0, max_ns: 0 };

    fn delay(&self, in_a_row: u32) -> u64 {
        let doublings = in_a_row.saturating_sub(1).min(32);
        self.initial_ns.saturating_mul(1u64 << doublings).min(self.max_ns.max(self.initial_ns))
    }
}

/// One child as declared.
#[derive(Clone, Debug)]
pub struct ChildSpec<S> {
    pub name: &'static str,
    pub restart: Restart,
    /// What the host needs to start it (a program name, an entry point).
    pub start: S,
}

/// What the supervisor asks of its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<I> {
    /// Start child `child` (an index into the declared children) and report
    /// the new instance's id with [`Supervisor::started`].
    Start { child: usize },
    /// Stop the running instance `id` of child `child`; its exit is then
    /// reported like any other (and expected).
    Stop { child: usize, id: I },
    /// The supervisor gave up (restart intensity exceeded) after stopping
    /// every child: its own supervisor decides.
    Terminate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildState<I> {
    /// Not running: never started, exited (temporary, or not to be
    /// restarted), or waiting for its restart time.
    Idle,
    /// Asked to start; no id yet.
    Starting,
    Running(I),
    /// Asked to stop; its exit is expected.
    Stopping(I),
    /// To be started at this time (back-off).
    RestartAt(u64),
}

struct Child<S, I> {
    spec: ChildSpec<S>,
    state: ChildState<I>,
    /// Restarts so far, for the tree view.
    restarts: u32,
    /// Restarts in a row (each within an intensity period of the last).
    in_a_row: u32,
    last_restart_ns: Option<u64>,
    /// Dropped for good (a temporary child that exited).
    gone: bool,
}

/// A child as the tree view shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildStatus<I> {
    pub name: &'static str,
    pub restart: Restart,
    pub running: Option<I>,
    pub restarts: u32,
}

/// A supervisor over `S`-described children whose instances are named `I`.
pub struct Supervisor<S, I> {
    strategy: Strategy,
    intensity: Intensity,
    backoff: Backoff,
    children: Vec<Child<S, I>>,
    /// When the restarts within the intensity period happened.
    recent_restarts: VecDeque<u64>,
    /// Children to start once the ones being stopped have exited, in order.
    pending_group: Vec<usize>,
    terminated: bool,
}

impl<S, I: Copy + Eq> Supervisor<S, I> {
    pub fn new(
        strategy: Strategy,
        intensity: Intensity,
        backoff: Backoff,
        children: Vec<ChildSpec<S>>,
    ) -> Self {
        Supervisor {
            strategy,
            intensity,
            backoff,
            children: children
                .into_iter()
                .map(|spec| Child {
                    spec,
                    state: ChildState::Idle,
                    restarts: 0,
                    in_a_row: 0,
                    last_restart_ns: None,
                    gone: false,
                })
                .collect(),
            recent_restarts: VecDeque::new(),
            pending_group: Vec::new(),
            terminated: false,
        }
    }

    /// Starts every child, in declaration order.
    pub fn start(&mut self) -> Vec<Action<I>> {
        let mut actions = Vec::new();
        for index in 0..self.children.len() {
            self.children[index].state = ChildState::Starting;
            actions.push(Action::Start { child: index });
        }
        actions
    }

    /// What child `child` is declared as.
    pub fn spec(&self, child: usize) -> &ChildSpec<S> {
        &self.children[child].spec
    }

    /// The host started child `child` as `id` (or could not: `None`, which
    /// counts as an abnormal exit).
    pub fn started(&mut self, child: usize, id: Option<I>, now_ns: u64) -> Vec<Action<I>> {
        let Some(entry) = self.children.get_mut(child) else { return Vec::new() };
        if entry.state != ChildState::Starting {
            return Vec::new();
        }
        match id {
            Some(id) => {
                entry.state = ChildState::Running(id);
                Vec::new()
            }
            None => {
                entry.state = ChildState::Idle;
                self.after_exit(child, Exit::Abnormal, now_ns)
            }
        }
    }

    /// Instance `id` exited. An id that is not a child's current instance
    /// (stale) changes nothing.
    pub fn exited(&mut self, id: I, exit: Exit, now_ns: u64) -> Vec<Action<I>> {
        let Some(child) = self.child_of(id) else {
            return Vec::new();
        };
        let expected = matches!(self.children[child].state, ChildState::Stopping(_));
        self.children[child].state = ChildState::Idle;
        if expected {
            // A stop we asked for: the group restart waits for the last one.
            return self.start_pending_group_if_stopped(now_ns);
        }
        if self.terminated {
            return Vec::new();
        }
        self.after_exit(child, exit, now_ns)
    }

    /// The restarts whose back-off ended by `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> Vec<Action<I>> {
        let mut actions = Vec::new();
        for (index, child) in self.children.iter_mut().enumerate() {
            if let ChildState::RestartAt(at) = child.state
                && at <= now_ns
            {
                child.state = ChildState::Starting;
                actions.push(Action::Start { child: index });
            }
        }
        actions
    }

    /// When [`Supervisor::poll`] next has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.children
            .iter()
            .filter_map(|child| match child.state {
                ChildState::RestartAt(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// The child whose current instance is `id` (running or being stopped).
    pub fn child_of(&self, id: I) -> Option<usize> {
        self.children.iter().position(|child| match child.state {
            ChildState::Running(current) | ChildState::Stopping(current) => current == id,
            _ => false,
        })
    }

    /// Whether the supervisor gave up.
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    /// Every declared child still supervised, for the tree view.
    pub fn children(&self) -> impl Iterator<Item = ChildStatus<I>> + '_ {
        self.children.iter().filter(|child| !child.gone).map(|child| ChildStatus {
            name: child.spec.name,
            restart: child.spec.restart,
            running: match child.state {
                ChildState::Running(id) => Some(id),
                _ => None,
            },
            restarts: child.restarts,
        })
    }

    fn after_exit(&mut self, child: usize, exit: Exit, now_ns: u64) -> Vec<Action<I>> {
        let restart = match self.children[child].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => exit == Exit::Abnormal,
            Restart::Temporary => false,
        };
        if !restart {
            if self.children[child].spec.restart == Restart::Temporary {
                self.children[child].gone = true;
            }
            return Vec::new();
        }
        // Restart intensity: one more restart within the period than allowed
        // and the supervisor gives up.
        while self
            .recent_restarts
            .front()
            .is_some_and(|&at| now_ns.saturating_sub(at) >= self.intensity.period_ns)
        {
            self.recent_restarts.pop_front();
        }
        if self.recent_restarts.len() as u32 >= self.intensity.max_restarts {
            return self.terminate();
        }
        self.recent_restarts.push_back(now_ns);
        let group: Vec<usize> = match self.strategy {
            Strategy::OneForOne => alloc::vec![child],
            Strategy::OneForAll => (0..self.children.len()).collect(),
            Strategy::RestForOne => (child..self.children.len()).collect(),
        };
        let group: Vec<usize> = group.into_iter().filter(|&index| !self.children[index].gone).collect();
        // Stop the group's other running members, last started first.
        let mut actions = Vec::new();
        for &index in group.iter().rev() {
            if let ChildState::Running(id) = self.children[index].state {
                self.children[index].state = ChildState::Stopping(id);
                actions.push(Action::Stop { child: index, id });
            } else if let ChildState::RestartAt(_) = self.children[index].state {
                self.children[index].state = ChildState::Idle;
            }
        }
        self.pending_group = group;
        // The child that exited is counted as restarted, with its back-off.
        let entry = &mut self.children[child];
        let within_period =
            entry.last_restart_ns.is_some_and(|last| now_ns.saturating_sub(last) < self.intensity.period_ns);
        entry.in_a_row = if within_period { entry.in_a_row + 1 } else { 1 };
        entry.last_restart_ns = Some(now_ns);
        entry.restarts += 1;
        actions.extend(self.start_pending_group_if_stopped(now_ns));
        actions
    }

    /// Once no member of the pending group is still stopping, schedules its
    /// members in start order: at once, or after the back-off of the child
    /// whose exit caused the restart (the group's members share it).
    fn start_pending_group_if_stopped(&mut self, now_ns: u64) -> Vec<Action<I>> {
        if self.pending_group.is_empty()
            || self
                .pending_group
                .iter()
                .any(|&index| matches!(self.children[index].state, ChildState::Stopping(_)))
        {
            return Vec::new();
        }
        let group = core::mem::take(&mut self.pending_group);
        let delay = group
            .iter()
            .map(|&index| self.children[index].in_a_row)
            .max()
            .map_or(0, |n| self.backoff.delay(n));
        let mut actions = Vec::new();
        for index in group {
            let child = &mut self.children[index];
            if child.gone || child.state != ChildState::Idle {
                continue;
            }
            if delay == 0 {
                child.state = ChildState::Starting;
                actions.push(Action::Start { child: index });
            } else {
                child.state = ChildState::RestartAt(now_ns + delay);
            }
        }
        actions
    }

    /// Gives up: stops every running child (last started first).
    fn terminate(&mut self) -> Vec<Action<I>> {
        self.terminated = true;
        self.pending_group.clear();
        let mut actions = Vec::new();
        for (index, child) in self.children.iter_mut().enumerate().rev() {
            match child.state {
                ChildState::Running(id) => {
                    child.state = ChildState::Stopping(id);
                    actions.push(Action::Stop { child: index, id });
                }
                ChildState::RestartAt(_) | ChildState::Starting => child.state = ChildState::Idle,
                _ => {}
            }
        }
        actions.push(Action::Terminate);
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// Fake tasks: ids are (child, incarnation), a generation per start.
    struct Host {
        supervisor: Supervisor<(), (usize, u32)>,
        next_generation: u32,
        running: Vec<(usize, u32)>,
        log: Vec<alloc::string::String>,
        terminated: bool,
    }

    impl Host {
        fn new(strategy: Strategy, restarts: &[Restart], intensity: Intensity, backoff: Backoff) -> Host {
            let names = ["a", "b", "c", "d"];
            let specs = restarts
                .iter()
                .enumerate()
                .map(|(index, &restart)| ChildSpec { name: names[index], restart, start: () })
                .collect();
            let mut host = Host {
                supervisor: Supervisor::new(strategy, intensity, backoff, specs),
                next_generation: 0,
                running: Vec::new(),
                log: Vec::new(),
                terminated: false,
            };
            let actions = host.supervisor.start();
            host.apply(actions, 0);
            host.log.clear();
            host
        }

        /// Carries the actions out the way a kernel would: starts succeed,
        /// stopped tasks report their exit right away.
        fn apply(&mut self, actions: Vec<Action<(usize, u32)>>, now: u64) {
            let mut queue: VecDeque<_> = actions.into();
            while let Some(action) = queue.pop_front() {
                match action {
                    Action::Start { child } => {
                        self.next_generation += 1;
                        let id = (child, self.next_generation);
                        self.running.push(id);
                        self.log.push(alloc::format!("start {}", self.supervisor.spec(child).name));
                        queue.extend(self.supervisor.started(child, Some(id), now));
                    }
                    Action::Stop { child, id } => {
                        self.running.retain(|&other| other != id);
                        self.log.push(alloc::format!("stop {}", self.supervisor.spec(child).name));
                        queue.extend(self.supervisor.exited(id, Exit::Abnormal, now));
                    }
                    Action::Terminate => {
                        self.log.push("terminate".into());
                        self.terminated = true;
                    }
                }
            }
        }

        fn id_of(&self, child: usize) -> (usize, u32) {
            *self.running.iter().find(|id| id.0 == child).expect("running")
        }

        fn crash(&mut self, child: usize, now: u64) {
            self.exit(child, Exit::Abnormal, now);
        }

        fn exit(&mut self, child: usize, exit: Exit, now: u64) {
            let id = self.id_of(child);
            self.running.retain(|&other| other != id);
            let actions = self.supervisor.exited(id, exit, now);
            self.apply(actions, now);
        }

        fn take_log(&mut self) -> Vec<alloc::string::String> {
            core::mem::take(&mut self.log)
        }
    }

    const LOOSE: Intensity = Intensity { max_restarts: 100, period_ns: SECOND };
    const PERMANENT3: [Restart; 3] = [Restart::Permanent; 3];

    #[test]
    fn one_for_one_restarts_only_the_child_that_crashed() {
        let mut host = Host::new(Strategy::OneForOne, &PERMANENT3, LOOSE, Backoff::NONE);
        let before = host.id_of(1);
        host.crash(1, 10);
        assert_eq!(host.take_log(), ["start b"]);
        assert_ne!(host.id_of(1), before, "a new incarnation");
        assert_eq!(host.running.len(), 3);
    }

    #[test]
    fn one_for_all_stops_the_others_last_first_then_restarts_all_in_order() {
        let mut host = Host::new(Strategy::OneForAll, &PERMANENT3, LOOSE, Backoff::NONE);
        host.crash(1, 10);
        assert_eq!(host.take_log(), ["stop c", "stop a", "start a", "start b", "start c"]);
        assert_eq!(host.running.len(), 3);
    }

    #[test]
    fn rest_for_one_restarts_the_child_and_those_started_after_it() {
        let mut host = Host::new(Strategy::RestForOne, &PERMANENT3, LOOSE, Backoff::NONE);
        host.crash(1, 10);
        assert_eq!(host.take_log(), ["stop c", "start b", "start c"]);
        let a = host.id_of(0);
        host.crash(2, 20);
        assert_eq!(host.take_log(), ["start c"]);
        assert_eq!(host.id_of(0), a, "the first child was never touched");
    }

    #[test]
    fn restart_types_decide_which_exits_restart() {
        let restarts = [Restart::Permanent, Restart::Transient, Restart::Temporary];
        let mut host = Host::new(Strategy::OneForOne, &restarts, LOOSE, Backoff::NONE);
        host.exit(0, Exit::Normal, 1);
        assert_eq!(host.take_log(), ["start a"], "permanent: even after a normal exit");
        host.exit(1, Exit::Normal, 2);
        assert!(host.take_log().is_empty(), "transient: not after a normal exit");
        assert!(host.supervisor.children().any(|child| child.name == "b" && child.running.is_none()));
        host.crash(2, 3);
        assert!(host.take_log().is_empty(), "temporary: never");
        assert!(host.supervisor.children().all(|child| child.name != "c"), "and dropped");
    }

    #[test]
    fn a_transient_child_is_restarted_after_a_crash() {
        let mut host = Host::new(Strategy::OneForOne, &[Restart::Transient], LOOSE, Backoff::NONE);
        host.crash(0, 1);
        assert_eq!(host.take_log(), ["start a"]);
    }

    #[test]
    fn too_many_restarts_in_the_period_terminate_the_supervisor() {
        let intensity = Intensity { max_restarts: 3, period_ns: 5 * SECOND };
        let mut host = Host::new(Strategy::OneForOne, &PERMANENT3, intensity, Backoff::NONE);
        for time in 1..=3 {
            host.crash(0, time * SECOND);
        }
        assert!(!host.terminated, "3 restarts in 5 s are allowed");
        assert_eq!(host.supervisor.children().next().unwrap().restarts, 3);
        host.crash(0, 4 * SECOND);
        assert!(host.terminated);
        assert_eq!(host.take_log().last().map(|s| s.as_str()), Some("terminate"));
        assert!(host.running.is_empty(), "every child stopped: {:?}", host.running);
        assert!(host.supervisor.terminated());
    }

    #[test]
    fn restarts_spread_over_time_never_reach_the_limit() {
        let intensity = Intensity { max_restarts: 3, period_ns: 5 * SECOND };
        let mut host = Host::new(Strategy::OneForOne, &PERMANENT3, intensity, Backoff::NONE);
        for time in 1..=100 {
            host.crash(0, time * 2 * SECOND);
        }
        assert!(!host.terminated);
        assert_eq!(host.supervisor.children().next().unwrap().restarts, 100);
    }

    #[test]
    fn back_off_doubles_for_crashes_in_a_row_and_resets_after_a_quiet_period() {
        let backoff = Backoff { initial_ns: 10, max_ns: 40 };
        let intensity = Intensity { max_restarts: 100, period_ns: SECOND };
        let mut host = Host::new(Strategy::OneForOne, &PERMANENT3, intensity, backoff);
        let mut now = 1000;
        let mut delays = Vec::new();
        for _ in 0..4 {
            host.crash(0, now);
            let due = host.supervisor.next_deadline().expect("a restart is scheduled");
            delays.push(due - now);
            assert!(host.supervisor.poll(due - 1).is_empty(), "not before its time");
            let actions = host.supervisor.poll(due);
            host.apply(actions, due);
            now = due + 1;
        }
        assert_eq!(delays, [10, 20, 40, 40]);
        // A whole period without a crash: back to the initial delay.
        now += 2 * SECOND;
        host.crash(0, now);
        assert_eq!(host.supervisor.next_deadline(), Some(now + 10));
    }

    #[test]
    fn a_stale_id_changes_nothing() {
        let mut host = Host::new(Strategy::OneForOne, &PERMANENT3, LOOSE, Backoff::NONE);
        let old = host.id_of(2);
        host.crash(2, 1);
        host.take_log();
        let actions = host.supervisor.exited(old, Exit::Abnormal, 2);
        assert!(actions.is_empty(), "the old incarnation's exit is ignored");
        assert_eq!(host.supervisor.children().nth(2).unwrap().restarts, 1);
    }

    #[test]
    fn a_child_that_cannot_start_counts_as_a_crash() {
        let intensity = Intensity { max_restarts: 2, period_ns: SECOND };
        let mut supervisor: Supervisor<(), u32> = Supervisor::new(
            Strategy::OneForOne,
            intensity,
            Backoff::NONE,
            alloc::vec![ChildSpec { name: "x", restart: Restart::Permanent, start: () }],
        );
        assert_eq!(supervisor.start(), [Action::Start { child: 0 }]);
        assert_eq!(supervisor.started(0, None, 1), [Action::Start { child: 0 }]);
        assert_eq!(supervisor.started(0, None, 2), [Action::Start { child: 0 }]);
        assert_eq!(supervisor.started(0, None, 3), [Action::Terminate]);
    }
}
