//! Mailboxes between isolated tasks, through the programs in `user/`:
//! per-sender FIFO and content over a ping-pong and over 100 000 messages
//! from four senders, selective receive, backpressure (try fails, a
//! blocking send parks until the receiver drains), page transfer (the
//! receiver reads the pages, the sender's next touch faults), ids that stay
//! dead after close and after their owner dies, and reclamation: every
//! mailbox, message, page and parked waiter of a dead task comes back.

use std::time::{Duration, Instant};

use tenfold_lab::qemu::Guest;
use tenfold_tests::{
    BOOT_TIMEOUT, assert_kernel_healthy, assert_repeat_back_to_baseline, boot, number_after, run_task,
    start_server, thread_state,
};

const ANSWER: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(240);

fn guest() -> Guest {
    let mut guest = boot(&[]);
    guest.wait_for("Tenfold shell: type `help`", BOOT_TIMEOUT).unwrap();
    guest
}

const NOTHING_LEFT: &str =
    "mailboxes: 0 live, 0 messages queued (0 bytes, 0 pages), 0 parked, 0 tasks using them";

/// The `mailboxes` line, once nothing is left: dead tasks are reaped at a
/// later switch, so it is read again (a bounded number of times) until it
/// shows the baseline.
fn assert_nothing_left(guest: &mut Guest) {
    let deadline = Instant::now() + ANSWER;
    loop {
        guest.send("mailboxes\r").unwrap();
        let line = guest.wait_for_new("mailboxes:", ANSWER).unwrap().text;
        if line.contains(NOTHING_LEFT) {
            return;
        }
        assert!(Instant::now() < deadline, "not back to baseline: {line}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pingpong_keeps_order_and_content_and_ids_stay_dead() {
    let mut guest = guest();
    let (_, id) = start_server(&mut guest, "pingpong");
    run_task(&mut guest, "pingpong", &format!("{id}:2000"));
    let line = guest.wait_for_new("round trips with task", LONG).unwrap();
    eprintln!("{}", line.text);
    assert!(
        line.text.contains("pingpong: 2000 round trips") && line.text.contains("order and content intact")
    );
    let line = guest.wait_for_new("pingpong: selective receive", ANSWER).unwrap();
    assert!(line.text.contains("sent Ok(()) Ok(()), tag 8 first -> Ok(8), then -> Ok(7)"), "{}", line.text);
    let line = guest.wait_for_new("pingpong: closed mailbox", ANSWER).unwrap();
    assert!(
        line.text.contains(
            "closed mailbox -> no such mailbox; slot reused: true, old id -> no such mailbox, new id -> Ok"
        ),
        "{}",
        line.text
    );
    guest.wait_for("pingpong: served 2000 pings", ANSWER).unwrap();
    assert_nothing_left(&mut guest);
    let console = guest.transcript();
    assert_eq!(console.matches("exited with code 0").count(), 2, "{console}");
    assert_kernel_healthy(&mut guest);
}

#[test]
fn four_senders_keep_their_own_fifo_over_100000_messages() {
    let mut guest = guest();
    run_task(&mut guest, "ordering", "receive:4:25000");
    let line = guest.wait_for_new("ordering: receiving on mailbox", ANSWER).unwrap();
    let id = number_after(&line.text, "mailbox");
    for index in 0..4 {
        run_task(&mut guest, "ordering", &format!("send:{id}:{index}:25000"));
    }
    let line = guest.wait_for_new("messages from 4 senders", LONG).unwrap();
    eprintln!("{}", line.text);
    assert!(
        line.text.contains("ordering: 100000 messages from 4 senders, per-sender FIFO held"),
        "{}",
        line.text
    );
    // Interleaved, not one sender after another (that would be 3 switches).
    let switches = number_after(&line.text, "FIFO held;");
    assert!(switches > 3, "{}", line.text);
    // Each sender says it is done (before or after the receiver's line).
    let deadline = Instant::now() + ANSWER;
    while guest.transcript().matches("sent 25000").count() < 4 {
        assert!(Instant::now() < deadline, "not every sender finished: {}", guest.transcript());
        let _ = guest.wait_for_new("sent 25000", Duration::from_millis(500));
    }
    assert_nothing_left(&mut guest);
    assert!(!guest.transcript().contains("FIFO VIOLATED"));
    assert_kernel_healthy(&mut guest);
}

#[test]
fn a_full_mailbox_pushes_back_and_the_sender_resumes_when_it_drains() {
    let mut guest = guest();
    run_task(&mut guest, "backpressure", "receive");
    let line = guest.wait_for_new("backpressure: data mailbox", ANSWER).unwrap();
    let (data, control) = (number_after(&line.text, "data mailbox"), number_after(&line.text, "control"));
    run_task(&mut guest, "backpressure", &format!("send:{data}:{control}"));
    let line = guest.wait_for_new("backpressure: try_send on a full mailbox", ANSWER).unwrap();
    eprintln!("{}", line.text);
    assert!(line.text.contains("-> Full; send with a 10 ms timeout -> Full after"), "{}", line.text);
    guest.wait_for("backpressure: drained 20 messages in order", ANSWER).unwrap();
    guest.wait_for("backpressure: sent 20", ANSWER).unwrap();
    assert_nothing_left(&mut guest);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn page_transfer_moves_the_pages_and_the_senders_touch_faults() {
    let mut guest = guest();
    run_task(&mut guest, "pagexfer", "receive");
    let line = guest.wait_for_new("pagexfer: receiving on mailbox", ANSWER).unwrap();
    let id = number_after(&line.text, "mailbox");
    run_task(&mut guest, "pagexfer", &format!("send:{id}"));
    let line = guest.wait_for_new("pagexfer: send to no mailbox", ANSWER).unwrap();
    assert!(line.text.contains("-> NoSuchMailbox, pages kept: true"), "{}", line.text);
    let line = guest.wait_for_new("pagexfer: sent 2 pages from", ANSWER).unwrap();
    let address = line.text.split("from ").nth(1).unwrap().split(';').next().unwrap().to_string();
    let fault = guest.wait_for_new("!!! USER FAULT", ANSWER).unwrap();
    assert!(
        fault.text.contains("page fault (#PF") && fault.text.contains("in user task `pagexfer`"),
        "{}",
        fault.text
    );
    let cause = guest.wait_for_new("cause:", ANSWER).unwrap();
    assert!(cause.text.contains(&format!("read from non-present page at {address}")), "{}", cause.text);
    let line = guest.wait_for("pagexfer: received 2 pages at", ANSWER).unwrap();
    eprintln!("{}", line.text);
    assert!(line.text.contains("pattern intact"), "{}", line.text);
    assert_nothing_left(&mut guest);
    assert_kernel_healthy(&mut guest);
}

/// `(free frames change, heap change)` from a `repeat` report line.
#[test]
fn everything_a_dead_task_held_in_mailboxes_comes_back() {
    let mut guest = guest();
    // First use of the table, the logger and the scheduler's buffers.
    guest.send("repeat 1 ipcdie exit\r").unwrap();
    guest.wait_for_new("repeat: 1 runs", ANSWER).unwrap();
    let line = guest.wait_for("ipcdie: 16 mailboxes", ANSWER).unwrap();
    assert!(
        line.text.contains("(one more -> Some(OutOfQuota))") && line.text.ends_with("then Some(OutOfQuota)"),
        "{}",
        line.text
    );
    for (mode, exited, killed) in [("exit", 100, 0), ("crash", 0, 100)] {
        guest.send(&format!("repeat 100 ipcdie {mode}\r")).unwrap();
        let line = guest.wait_for_new("repeat: 100 runs", LONG).unwrap();
        eprintln!("{}", line.text);
        assert!(line.text.contains(&format!("{exited} exited, {killed} killed")), "{}", line.text);
        assert_repeat_back_to_baseline(&line.text);
        assert_nothing_left(&mut guest);
    }
    // Killed while parked in a receive, and in a send.
    for mode in ["park-receive", "park-send"] {
        let task = run_task(&mut guest, "ipcdie", mode);
        guest.wait_for_new(&format!("ipcdie: parked in {}", &mode[5..]), ANSWER).unwrap();
        // It says so just before it parks: wait until it has.
        let deadline = Instant::now() + ANSWER;
        while thread_state(&mut guest, task).as_deref() != Some("blocked") {
            assert!(Instant::now() < deadline, "task {task} never parked");
            std::thread::sleep(Duration::from_millis(50));
        }
        guest.send(&format!("kill {task}\r")).unwrap();
        guest
            .wait_for_new(&format!("kill: task {task} was waiting in the kernel; stopped there"), ANSWER)
            .unwrap();
        assert_nothing_left(&mut guest);
    }
    // A sender parked on a mailbox whose owner dies fails cleanly.
    run_task(&mut guest, "ipcdie", "hold");
    let line = guest.wait_for_new("ipcdie: holding mailbox", ANSWER).unwrap();
    let id = number_after(&line.text, "mailbox");
    run_task(&mut guest, "ipcdie", &format!("flood:{id}"));
    let line = guest.wait_for_new("ipcdie: flooder sent", ANSWER).unwrap();
    assert!(line.text.ends_with("then its parked send -> NoSuchMailbox"), "{}", line.text);
    assert_nothing_left(&mut guest);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn fuzzed_mailbox_calls_never_fault_and_leave_nothing_behind() {
    let mut guest = guest();
    guest.send("run fuzz 100000\r").unwrap();
    guest.wait_for_new("task `fuzz`", LONG).unwrap();
    let transcript = guest.transcript();
    assert!(!transcript.contains("USER FAULT"), "the fuzzer died: {transcript}");
    assert!(
        transcript.contains("fuzz: 100000 calls") && transcript.contains("exited with code 0"),
        "{transcript}"
    );
    guest.send("mailboxes\r").unwrap();
    let line = guest.wait_for_new("mailboxes:", ANSWER).unwrap();
    eprintln!("{}", line.text);
    assert!(number_after(&line.text, "; ") > 0, "the fuzzer made no mailbox: {}", line.text);
    assert_nothing_left(&mut guest);
    assert_kernel_healthy(&mut guest);
}

/// Copy vs page transfer by size and the round trip, printed for the
/// record (figures belong in the report, not in assertions).
#[test]
fn ipc_bench_reports_copy_and_page_transfer() {
    let mut guest = guest();
    let (_, id) = start_server(&mut guest, "ipcbench");
    run_task(&mut guest, "ipcbench", &id.to_string());
    guest.wait_for_new("ipcbench: round trip", LONG).unwrap();
    for line in guest.transcript().lines().filter(|line| line.contains("ipcbench:")) {
        eprintln!("{line}");
    }
    let console = guest.transcript();
    assert_eq!(console.matches("ipcbench: copy").count(), 5, "{console}");
    assert_eq!(console.matches("ipcbench: pages").count(), 4, "{console}");
    assert_nothing_left(&mut guest);
    assert_kernel_healthy(&mut guest);
}
