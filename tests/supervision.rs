//! OTP supervision of isolated tasks (`kernel/src/task/supervisor.rs`, the
//! trees in `kernel/src/task/tree.rs`): each strategy restarts what it
//! should and nothing else, a stale task id reaches nothing, restart
//! intensity escalates up the tree, the CPU watchdog stops a runaway, and
//! a thousand crash/restart cycles give every frame and heap byte back —
//! while the shell and the echo server go on.

use std::time::Duration;

use tenfold_lab::qemu::Guest;
use tenfold_lab::supervision_tree;
use tenfold_tests::{assert_echoes, assert_kernel_healthy, memory, shell_guest};

const ANSWER: Duration = Duration::from_secs(30);

/// The task id of child `name` in a `tree` text.
fn task_id(tree: &str, name: &str) -> u32 {
    supervision_tree::task_id(tree, name).unwrap()
}

/// The total from the `restarts:` line.
fn restarts(tree: &str) -> u64 {
    supervision_tree::restarts(tree).unwrap()
}

/// Polls `tree` until `done` holds for it (or panics after `within`).
fn tree_until(guest: &mut Guest, within: Duration, done: impl Fn(&str) -> bool) -> String {
    supervision_tree::wait_until(guest, within, Duration::from_millis(100), done).unwrap()
}

#[test]
fn each_strategy_restarts_what_it_should_and_a_stale_id_reaches_nothing() {
    let (mut guest, port) = shell_guest();
    guest.send("supervise demo\r").unwrap();
    // The greeter says hello and ends normally: wait for the tree to show
    // it gone, not just started.
    let before = tree_until(&mut guest, ANSWER, |tree| {
        tree.contains("member-2 task") && tree.contains("greeter not running")
    });
    assert!(before.contains("greeter not running (transient, restarts 0)"), "{before}");
    let id = |tree: &str, name: &str| task_id(tree, name);

    // one_for_one: only the crashed child is restarted.
    let victim = id(&before, "worker-b");
    let mark = guest.transcript().len();
    guest.send(&format!("kill {victim}\r")).unwrap();
    // The shell's answer and the task's fault report come in either order
    // (the task may fault before the shell prints).
    guest.wait_for_new("will fault at its next instruction", ANSWER).unwrap();
    let fault = "instruction fetch from non-present page at 0x0";
    if !guest.transcript()[mark..].contains(fault) {
        guest.wait_for_new(fault, ANSWER).unwrap();
    }
    let after = tree_until(&mut guest, ANSWER, |tree| {
        tree.contains("worker-b task") && id(tree, "worker-b") != victim
    });
    assert!(after.contains("worker-b task") && after.contains("(permanent, restarts 1)"), "{after}");
    assert_eq!(id(&after, "worker-a"), id(&before, "worker-a"), "{after}");
    assert_eq!(id(&after, "worker-c"), id(&before, "worker-c"), "{after}");
    assert!(after.contains("restart latency"), "{after}");

    // The old id names nobody now: a kill aimed at it reaches no successor.
    guest.send(&format!("kill {victim}\r")).unwrap();
    guest.wait_for_new(&format!("kill {victim}: NoSuchThread"), ANSWER).unwrap();

    // rest_for_one: the crashed stage and the ones after it.
    let stage_2 = id(&after, "stage-2");
    guest.send(&format!("kill {stage_2}\r")).unwrap();
    let after = tree_until(&mut guest, ANSWER, |tree| {
        tree.contains("stage-2 task") && tree.contains("stage-3 task") && id(tree, "stage-2") != stage_2
    });
    assert_eq!(id(&after, "stage-1"), id(&before, "stage-1"), "{after}");
    assert_ne!(id(&after, "stage-3"), id(&before, "stage-3"), "{after}");

    // one_for_all: every member.
    let member_1 = id(&after, "member-1");
    guest.send(&format!("kill {member_1}\r")).unwrap();
    let after = tree_until(&mut guest, ANSWER, |tree| {
        tree.contains("member-1 task") && tree.contains("member-2 task") && id(tree, "member-1") != member_1
    });
    assert_ne!(id(&after, "member-2"), id(&before, "member-2"), "{after}");
    // The other subtrees saw nothing.
    assert_eq!(id(&after, "worker-a"), id(&before, "worker-a"), "{after}");
    assert_eq!(id(&after, "stage-1"), id(&before, "stage-1"), "{after}");
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn a_thousand_supervised_crash_restart_cycles_return_memory_to_baseline() {
    let (mut guest, port) = shell_guest();
    // A first round: the supervisor's thread, buffers and first-use
    // allocations are not the cycles'.
    guest.send("supervise crashloop\r").unwrap();
    tree_until(&mut guest, ANSWER, |tree| restarts(tree) >= 20);
    guest.send("unsupervise crashloop\r").unwrap();
    guest.wait_for_new("tree `crashloop` was stopped; it has ended", ANSWER).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (frames_before, heap_before) = memory(&mut guest);
    // The snapshot after the stop, so no restart of the first round is missed.
    let stopped =
        tree_until(&mut guest, ANSWER, |tree| tree.contains("tree `crashloop` ended: it was stopped"));
    let restarts_before = restarts(&stopped);

    guest.send("supervise crashloop\r").unwrap();
    let text =
        tree_until(&mut guest, Duration::from_secs(240), |tree| restarts(tree) >= restarts_before + 1000);
    eprintln!("{}", text.lines().last().unwrap());
    guest.send("unsupervise crashloop\r").unwrap();
    guest.wait_for_new("tree `crashloop` was stopped; it has ended", ANSWER).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (frames_after, heap_after) = memory(&mut guest);
    eprintln!("free frames {frames_before} -> {frames_after}, heap {heap_before} -> {heap_after} bytes");
    // Within what the rest of the kernel takes meanwhile; a leak of a frame
    // or a few bytes per cycle is far outside it. (`mem` shows heap in KiB.)
    assert!((frames_after - frames_before).abs() <= 2, "frames {frames_before} -> {frames_after}");
    assert!((heap_after - heap_before).abs() <= 2048, "heap {heap_before} -> {heap_after}");
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn restart_intensity_escalates_until_the_root_gives_up() {
    let (mut guest, port) = shell_guest();
    guest.send("supervise escalation\r").unwrap();
    guest.wait_for_new("tree `escalation` gave up (restart intensity exceeded)", ANSWER).unwrap();
    let console = guest.transcript();
    let flaky = "supervisor `flaky`: more than 3 restarts in 1000 ms";
    assert_eq!(console.matches(flaky).count(), 2, "the root restarts `flaky` once:\n{console}");
    assert!(console.contains("supervisor `escalation`: more than 1 restarts in 10000 ms"), "{console}");
    // `tree` is the snapshot the supervisor publishes after handling the
    // deaths, a moment after it logs: wait for it to show the end.
    let text = tree_until(&mut guest, ANSWER, |tree| tree.contains("tree `escalation` ended: it gave up"));
    assert!(!text.contains("bystander task"), "{text}");
    // Stopped, and gone from the thread table once reaped (a moment later
    // under load): poll `ps` rather than read it once.
    let deadline = std::time::Instant::now() + ANSWER;
    loop {
        guest.send("ps\r").unwrap();
        guest.wait_for_new("TID", ANSWER).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let transcript = guest.transcript();
        let table = transcript.rsplit_once("TID").map_or("", |(_, rows)| rows);
        let rows: Vec<&str> = table.lines().filter(|line| line.contains(" bystander ")).collect();
        if rows.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bystander survives: {rows:?}");
    }
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn the_watchdog_stops_a_runaway_and_its_supervisor_restarts_it() {
    let (mut guest, port) = shell_guest();
    guest.send("supervise runaway\r").unwrap();
    let first = tree_until(&mut guest, ANSWER, |tree| tree.contains("steady task"));
    let steady = task_id(&first, "steady");
    for _ in 0..2 {
        guest.wait_for_new("CPU budget exceeded in user task `spinner`", ANSWER).unwrap();
    }
    guest.wait_for_new("its budget is 50 ms", ANSWER).unwrap();
    let after = tree_until(&mut guest, ANSWER, |tree| restarts(tree) >= 2);
    assert_eq!(task_id(&after, "steady"), steady, "the steady task was not touched:\n{after}");
    guest.send("mem\r").unwrap();
    let line = guest.wait_for_new("by the CPU watchdog", ANSWER).unwrap();
    let kills: u64 =
        line.text.split(" killed (").nth(1).and_then(|rest| rest.split(' ').next()?.parse().ok()).unwrap();
    assert!(kills >= 2, "{}", line.text);
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}
