//! A supervisor in ring 3: runs one declared tree of child tasks with the
//! same OTP state machine as the kernel's supervisor thread
//! (`tenfold_runtime::supervise::Supervisor`), driven by the death notices
//! its children leave in its mailbox (`spawn` with a monitor).
//!
//! Argument: `<strategy>:<max restarts>/<period ms>:<child>,<child>,…`,
//! with `strategy` one of `one_for_one`, `one_for_all`, `rest_for_one` and
//! each child `program` or `program=argument` (permanent children), e.g.
//! `one_for_one:5/1000:worker,worker,crasher=divide`.
//!
//! It prints each start (`supervisor: child <n> <program> is task <id>`),
//! each restart with its latency (from the kernel's seeing the death to the
//! successor's start) and running count, and when the restart intensity is
//! exceeded it stops the remaining children, waits for their notices and
//! exits with code 1 — so its own parent sees it fail. Its bump heap never
//! frees, so it suits a bounded number of restarts (a few tens of bytes per
//! event, within the task's 4 MiB quota for tens of thousands).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use tenfold_runtime::supervise::{
    Action, Backoff, ChildSpec, Exit, Intensity, Restart, Strategy, Supervisor,
};
use tenfold_user::abi::mailbox::FOREVER;
use tenfold_user::mailbox::Mailbox;
use tenfold_user::println;
use tenfold_user::task::{self, Down, MAX_CHILDREN};

/// Notices promised at most (each child's instance holds one until it ends).
const MAILBOX_CAPACITY: u64 = 2 * MAX_CHILDREN;

/// A child as declared: its program and argument.
#[derive(Clone, Copy)]
struct Program {
    name: &'static str,
    argument: &'static str,
}

struct Tree {
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<ChildSpec<Program>>,
}

fn parse(text: &'static str) -> Option<Tree> {
    let mut parts = text.splitn(3, ':');
    let strategy = match parts.next()? {
        "one_for_one" => Strategy::OneForOne,
        "one_for_all" => Strategy::OneForAll,
        "rest_for_one" => Strategy::RestForOne,
        _ => return None,
    };
    let (restarts, period_ms) = parts.next()?.split_once('/')?;
    let intensity = Intensity {
        max_restarts: restarts.parse().ok()?,
        period_ns: period_ms.parse::<u64>().ok()? * 1_000_000,
    };
    let children: Vec<ChildSpec<Program>> = parts
        .next()?
        .split(',')
        .map(|child| {
            let (name, argument) = child.split_once('=').unwrap_or((child, ""));
            ChildSpec { name, restart: Restart::Permanent, start: Program { name, argument } }
        })
        .collect();
    let fits = !children.is_empty() && children.len() as u64 <= MAX_CHILDREN;
    fits.then_some(Tree { strategy, intensity, children })
}

/// The host side of the state machine: starts and stops tasks as it asks.
struct Host {
    machine: Supervisor<Program, u64>,
    mailbox: Mailbox,
    /// Children started whose notice has not come yet.
    live: u32,
    /// child index → when its previous instance died (for the latency).
    died_at: Vec<Option<u64>>,
    restarts: u32,
    gave_up: bool,
}

impl Host {
    fn apply(&mut self, actions: Vec<Action<u64>>) {
        let mut work: VecDeque<Action<u64>> = actions.into();
        while let Some(action) = work.pop_front() {
            match action {
                Action::Start { child } => {
                    let program = self.machine.spec(child).start;
                    let started = task::spawn(program.name, program.argument, Some(&self.mailbox));
                    let now = tenfold_user::clock_ns();
                    match started {
                        Ok(id) => {
                            self.live += 1;
                            match self.died_at[child].take() {
                                Some(died) => {
                                    self.restarts += 1;
                                    println!(
                                        "supervisor: restarted child {child} {} as task {id} in {} us (restarts: {})",
                                        program.name,
                                        now.saturating_sub(died) / 1000,
                                        self.restarts
                                    );
                                }
                                None => println!("supervisor: child {child} {} is task {id}", program.name),
                            }
                        }
                        Err(error) => {
                            println!("supervisor: child {child} {}: {}", program.name, error.name())
                        }
                    }
                    work.extend(self.machine.started(child, started.ok(), now));
                }
                Action::Stop { id, .. } => {
                    // Already ended is fine: its notice is on the way.
                    let _ = task::kill(id);
                }
                Action::Terminate => self.gave_up = true,
            }
        }
    }

    fn on_down(&mut self, down: Down) {
        self.live = self.live.saturating_sub(1);
        let exit = if down.normal() { Exit::Normal } else { Exit::Abnormal };
        if let Some(child) = self.machine.child_of(down.task) {
            println!("supervisor: child {child} (task {}) ended: {}", down.task, down.cause_name());
            self.died_at[child] = Some(down.at_ns);
        }
        let actions = self.machine.exited(down.task, exit, tenfold_user::clock_ns());
        self.apply(actions);
    }
}

#[unsafe(no_mangle)]
fn task_main() -> i64 {
    let mut buffer = [0u8; 512];
    let argument = String::from(tenfold_user::argument(&mut buffer));
    let Some(tree) = parse(argument.leak()) else {
        println!("supervisor: expected <strategy>:<restarts>/<period ms>:<program[=argument]>,…");
        return 2;
    };
    let Ok(mailbox) = Mailbox::create(MAILBOX_CAPACITY) else { return 3 };
    let count = tree.children.len();
    let machine = Supervisor::new(tree.strategy, tree.intensity, Backoff::NONE, tree.children);
    let mut host =
        Host { machine, mailbox, live: 0, died_at: alloc::vec![None; count], restarts: 0, gave_up: false };
    println!(
        "supervisor: {count} children, at most {} restarts in {} ms",
        tree.intensity.max_restarts,
        tree.intensity.period_ns / 1_000_000
    );
    let start = host.machine.start();
    host.apply(start);
    let mut body = [0u8; Down::SIZE];
    while !(host.gave_up && host.live == 0) {
        let timeout = match host.machine.next_deadline() {
            Some(at) => at.saturating_sub(tenfold_user::clock_ns()),
            None => FOREVER,
        };
        match host.mailbox.recv_timeout(&mut body, timeout) {
            Ok(received) => match task::down(&received, &body) {
                Some(down) => host.on_down(down),
                None => println!("supervisor: ignored a message tagged {}", received.tag),
            },
            Err(tenfold_user::abi::Error::Timeout) => {}
            Err(error) => {
                println!("supervisor: receive failed: {}", error.name());
                return 4;
            }
        }
        let due = host.machine.poll(tenfold_user::clock_ns());
        host.apply(due);
    }
    println!(
        "supervisor: restart intensity exceeded after {} restarts; children stopped, exiting with 1",
        host.restarts
    );
    1
}
