//! Tasks starting tasks (`spawn`, `kill`, death notices; ABI 4) and the
//! ring-3 supervisor (`user/supervisor`, the runtime's OTP state machine
//! driven by notices): a crashed child is restarted and its siblings keep
//! their ids; past its restart intensity the supervisor exits non-zero and
//! its children are gone; a parent's end takes its children along; every
//! hostile argument is an error code; a fork bomb is refused at the bounds
//! and everything it took comes back.

use std::time::Duration;

use tenfold_lab::qemu::Guest;
use tenfold_tests::{
    assert_echoes, assert_kernel_healthy, memory, number_after, run_task, shell_guest, start_server,
    thread_state,
};

const ANSWER: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(240);

/// The task id the supervisor printed for child `index` at its start.
fn child_id(guest: &mut Guest, index: usize) -> u64 {
    let line = guest.wait_for(&format!("supervisor: child {index} worker is task"), ANSWER).unwrap();
    number_after(&line.text, "is task")
}

/// Whether `ps` lists a thread with id `tid`.
fn alive(guest: &mut Guest, tid: u64) -> bool {
    thread_state(guest, tid).is_some()
}

#[test]
fn a_ring3_supervisor_restarts_a_crashed_child_and_its_siblings_keep_their_ids() {
    let (mut guest, port) = shell_guest();
    let supervisor = run_task(&mut guest, "supervisor", "one_for_one:5/1000:worker,worker,worker");
    let ids: Vec<u64> = (0..3).map(|index| child_id(&mut guest, index)).collect();
    guest.send(&format!("kill {}\r", ids[1])).unwrap();
    guest.wait_for_new("instruction fetch from non-present page at 0x0", ANSWER).unwrap();
    guest.wait_for_new(&format!("supervisor: child 1 (task {}) ended: killed", ids[1]), ANSWER).unwrap();
    let line = guest.wait_for_new("supervisor: restarted child 1 worker as task", ANSWER).unwrap();
    eprintln!("{}", line.text);
    assert!(line.text.contains("(restarts: 1)"), "{}", line.text);
    let successor = number_after(&line.text, "as task");
    assert_ne!(successor, ids[1]);
    // one_for_one: the siblings were neither stopped nor restarted.
    let console = guest.transcript();
    assert!(!console.contains("restarted child 0") && !console.contains("restarted child 2"), "{console}");
    assert!(alive(&mut guest, ids[0]) && alive(&mut guest, ids[2]) && alive(&mut guest, successor));
    assert!(!alive(&mut guest, ids[1]));

    // The supervisor's end takes its children along.
    guest.send(&format!("kill {supervisor}\r")).unwrap();
    guest.wait_for_new(&format!("kill: task {supervisor}"), ANSWER).unwrap();
    let mut gone = false;
    for _ in 0..20 {
        if [ids[0], ids[2], successor, supervisor].iter().all(|&id| !alive(&mut guest, id)) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "children outlived their parent:\n{}", guest.transcript());
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn past_its_restart_intensity_the_supervisor_exits_nonzero_and_its_children_are_gone() {
    let (mut guest, port) = shell_guest();
    run_task(&mut guest, "supervisor", "one_for_one:3/1000:worker,crasher=divide");
    let worker = child_id(&mut guest, 0);
    let line = guest.wait_for("supervisor: restart intensity exceeded after 3 restarts", LONG).unwrap();
    eprintln!("{}", line.text);
    guest.wait_for_new("exited with code 1", ANSWER).unwrap();
    let console = guest.transcript();
    assert_eq!(console.matches("supervisor: restarted child 1 crasher").count(), 3, "{console}");
    assert!(console.contains(&format!("supervisor: child 0 (task {worker}) ended: killed")), "{console}");
    assert!(!alive(&mut guest, worker));
    assert!(!guest.transcript().rsplit("TID").next().unwrap().contains("worker"), "a child survived");
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn hostile_spawn_and_kill_arguments_are_errors_and_notices_arrive_once() {
    let (mut guest, port) = shell_guest();
    let (server, mailbox) = start_server(&mut guest, "pingpong");
    run_task(&mut guest, "spawner", &format!("hostile:{mailbox}:{server}"));
    let line = guest.wait_for_new("spawner: hostile:", LONG).unwrap();
    let console = guest.transcript();
    assert!(line.text.contains("all refused as they should be"), "{console}");
    assert!(!console.contains("WRONG"), "{console}");
    guest.wait_for_new("exited with code 0", ANSWER).unwrap();
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

/// The numbers of `mem`'s `spawned:` line: (live, peak, refused).
fn spawned(guest: &mut Guest) -> (u64, u64, u64) {
    guest.send("mem\r").unwrap();
    let line = guest.wait_for_new("spawned:", ANSWER).unwrap().text;
    (number_after(&line, "spawned:"), number_after(&line, "(peak"), number_after(&line, "per task),"))
}

/// The last descendants of a bomb die as they next run: polls `spawned`
/// (bounded, 5 s) until none is live; returns the last counts.
fn wait_for_no_spawned(guest: &mut Guest) -> (u64, u64, u64) {
    let deadline = std::time::Instant::now() + ANSWER;
    let mut counts = spawned(guest);
    while counts.0 != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        counts = spawned(guest);
    }
    counts
}

#[test]
fn a_fork_bomb_is_refused_at_the_bounds_and_everything_comes_back() {
    let (mut guest, port) = shell_guest();
    // A first run: the scheduler's and the stack windows' first-use
    // allocations (beyond 256 threads) and its sample buffers' growth are
    // not the bomb's (the scheduler keeps up to 4096 lateness samples).
    run_task(&mut guest, "spawner", "bomb:6");
    guest.wait_for_new("spawner: bomb done", LONG).unwrap();
    guest.wait_for_new("exited with code 0", ANSWER).unwrap();
    // Its last descendants too are gone before the baseline is taken.
    assert_eq!(wait_for_no_spawned(&mut guest).0, 0, "the first run's descendants lived on");
    std::thread::sleep(Duration::from_millis(300));
    let (frames_before, heap_before) = memory(&mut guest);

    run_task(&mut guest, "spawner", "bomb:3");
    guest.wait_for_new("spawner: bomb done", LONG).unwrap();
    guest.wait_for_new("exited with code 0", ANSWER).unwrap();
    let console = guest.transcript();
    let rounds: Vec<&str> = console.lines().filter(|line| line.contains("spawner: bomb round")).collect();
    eprintln!("{}", rounds.join("\n"));
    assert_eq!(rounds.len(), 9, "{console}");
    for round in &rounds {
        assert!(round.contains("then out of quota"), "{round}");
        // `spawner: bomb round <n>: <children> children, then …`
        let children: u64 = round.split(": ").nth(2).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!((1..=32).contains(&children), "{round}");
        assert!(round.contains(&format!("{children} notices ({children} killed)")), "{round}");
    }
    let (live, peak, refused) = wait_for_no_spawned(&mut guest);
    if live != 0 {
        guest.send("ps\r").unwrap();
        guest.wait_for_new("TID", ANSWER).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        guest.send("uptime\r").unwrap();
        guest.wait_for_new("context switches", ANSWER).unwrap();
        eprintln!("{}", guest.transcript().rsplit("TID").next().unwrap());
    }
    eprintln!("spawned by tasks: {live} live, peak {peak}, {refused} refused");
    assert_eq!(live, 0);
    assert!(peak <= 256 && refused >= 4, "peak {peak}, refused {refused}");
    let (frames_after, heap_after) = memory(&mut guest);
    eprintln!("free frames {frames_before} -> {frames_after}, heap {heap_before} -> {heap_after} bytes");
    assert!((frames_after - frames_before).abs() <= 2, "frames {frames_before} -> {frames_after}");
    assert!((heap_after - heap_before).abs() <= 2048, "heap {heap_before} -> {heap_after}");
    guest.send("mailboxes\r").unwrap();
    let line = guest.wait_for_new("mailboxes:", ANSWER).unwrap().text;
    assert!(
        line.contains("0 live, 0 messages queued") && line.contains("0 death notices promised"),
        "{line}"
    );
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn a_ring3_supervisor_restarts_a_crash_loop_up_to_its_intensity_and_reports_latency() {
    let (mut guest, port) = shell_guest();
    run_task(&mut guest, "supervisor", "one_for_one:100/60000:crasher=divide");
    guest.wait_for("supervisor: restart intensity exceeded after 100 restarts", LONG).unwrap();
    guest.wait_for_new("exited with code 1", ANSWER).unwrap();
    let console = guest.transcript();
    let mut latencies: Vec<u64> = console
        .lines()
        .filter(|line| line.contains("supervisor: restarted child 0 crasher"))
        .map(|line| number_after(line, " in "))
        .collect();
    assert_eq!(latencies.len(), 100, "{console}");
    latencies.sort_unstable();
    eprintln!(
        "ring-3 supervisor restart latency (death seen by the kernel to successor started): p50 {} us, p99 {} us, max {} us",
        latencies[49], latencies[98], latencies[99]
    );
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}
