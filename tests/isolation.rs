//! Isolated ring-3 tasks: programs from the initrd run in address spaces of
//! their own; every way a task can misbehave — touching kernel memory,
//! writing its code, executing data, faulting, passing bad pointers to
//! system calls, being a malformed ELF — is stopped without harm to the
//! kernel, the shell or the echo server, and all its memory comes back.

use std::time::Duration;

use tenfold_lab::qemu::Guest;
use tenfold_tests::{assert_echoes, assert_kernel_healthy, assert_repeat_back_to_baseline, shell_guest};

const ANSWER: Duration = Duration::from_secs(30);

/// Frames the live tasks hold, from `mem`.
fn task_frames(guest: &mut Guest) -> u64 {
    guest.send("mem\r").unwrap();
    let line = guest.wait_for_new("tasks:", ANSWER).unwrap();
    line.text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", line.text))
}

/// Polls `mem` until the tasks hold no frames (a dead task's frames come
/// back when the scheduler next drops it); fails after [`ANSWER`].
fn assert_no_task_frames(guest: &mut Guest) {
    let deadline = std::time::Instant::now() + ANSWER;
    while task_frames(guest) != 0 {
        assert!(std::time::Instant::now() < deadline, "tasks still hold frames: {}", guest.transcript());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hello_runs_in_ring_3_and_gives_its_memory_back() {
    let (mut guest, _port) = shell_guest();
    guest.wait_for("SMEP on, SMAP on", ANSWER).unwrap();
    guest.send("run hello world\r").unwrap();
    guest.wait_for_new("hello from ring 3 (ABI 4), argument `world`", ANSWER).unwrap();
    guest.wait_for_new("hello: heap holds 1000 squares, sum 332833500", ANSWER).unwrap();
    guest.wait_for_new("hello: slept", ANSWER).unwrap();
    guest.wait_for_new("task `hello` (tid", ANSWER).unwrap();
    let console = guest.transcript();
    assert!(console.contains("exited with code 0"), "{console}");
    assert_no_task_frames(&mut guest);
    // The null system call, measured from ring 3 (printed for the record).
    guest.send("run hello bench\r").unwrap();
    let line = guest.wait_for_new("null system call", ANSWER).unwrap();
    eprintln!("{}", line.text);
    assert_kernel_healthy(&mut guest);
}

/// Each way of misbehaving, and what the kernel must report.
const CRASHES: &[(&str, &[&str])] = &[
    (
        "read-kernel",
        &[
            "page fault (#PF, vector 14)",
            "read from protection violation on at 0xffff800000100000 (user access)",
        ],
    ),
    (
        "write-kernel",
        &["page fault (#PF", "write to protection violation on at 0xffffffff80200000 (user access)"],
    ),
    ("write-code", &["page fault (#PF", "write to protection violation on at 0x4"]),
    (
        "exec-stack",
        &["page fault (#PF", "instruction fetch (no-execute) from protection violation on at 0x7ffe"],
    ),
    (
        "exec-heap",
        &["page fault (#PF", "instruction fetch (no-execute) from protection violation on at 0x100000000000"],
    ),
    ("divide", &["divide error (#DE, vector 0)"]),
    ("invalid-opcode", &["invalid opcode (#UD, vector 6)"]),
    ("privileged", &["general protection fault (#GP, vector 13)"]),
    ("null", &["page fault (#PF", "read from non-present page at 0x0 (user access)"]),
    ("stack-overflow", &["page fault (#PF", "user stack overflow (guard page at 0x7ffefffef000)"]),
];

#[test]
fn every_misbehaving_task_is_stopped_and_the_kernel_serves_on() {
    let (mut guest, port) = shell_guest();
    for (way, expected) in CRASHES {
        guest.send(&format!("run crasher {way}\r")).unwrap();
        let fault = guest.wait_for_new("!!! USER FAULT", ANSWER).unwrap();
        assert!(
            fault.text.contains(expected[0]) && fault.text.contains("in user task `crasher`"),
            "{way}: {}",
            fault.text
        );
        let cause = guest.wait_for_new("cause:", ANSWER).unwrap();
        for detail in &expected[1..] {
            assert!(cause.text.contains(detail), "{way}: {}", cause.text);
        }
        let address = guest.wait_for_new("    address", ANSWER).unwrap();
        assert!(address.text.contains("rip 0x0000"), "{way}: {}", address.text);
        if *way == "divide" {
            // Named from the program's own symbol table.
            guest.wait_for_new("    in task_main+0x", ANSWER).unwrap();
        }
        guest.wait_for_new("!!! task killed; the kernel and the other threads run on", ANSWER).unwrap();
    }
    // A kernel pointer, a huge map, a range straddling the end of the user
    // half and a copy into read-only code: each refused with an error code.
    guest.send("run crasher kernel-pointer\r").unwrap();
    let line = guest.wait_for_new("crasher: kernel pointer ->", ANSWER).unwrap();
    assert!(
        line.text.contains("kernel pointer -> Err(BadAddress), 1 TiB map -> Err(BadLength), straddling -> Err(BadAddress), argument into code -> -2"),
        "{}",
        line.text
    );
    guest.wait_for_new("exited with code 0", ANSWER).unwrap();
    // A panicking task reports and exits with 101.
    guest.send("run crasher panic\r").unwrap();
    guest.wait_for_new("task panicked: deliberate panic in ring 3", ANSWER).unwrap();
    guest.wait_for_new("exited with code 101", ANSWER).unwrap();
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
    assert_no_task_frames(&mut guest);
}

#[test]
fn syscall_fuzzing_never_faults_the_kernel() {
    let (mut guest, port) = shell_guest();
    guest.send("run fuzz 100000\r").unwrap();
    // Its exit or its fault report, whichever comes: both name the task.
    guest.wait_for_new("task `fuzz`", Duration::from_secs(240)).unwrap();
    let transcript = guest.transcript();
    assert!(!transcript.contains("USER FAULT"), "the fuzzer died: {transcript}");
    let line = transcript
        .lines()
        .find(|line| line.contains("fuzz: 100000 calls"))
        .unwrap_or_else(|| panic!("{transcript}"));
    eprintln!("{line}");
    assert!(transcript.contains("exited with code 0"), "{transcript}");
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
    assert_no_task_frames(&mut guest);
}

#[test]
fn a_thousand_crash_and_restart_cycles_return_memory_to_baseline() {
    let (mut guest, port) = shell_guest();
    // One round first: the scheduler's and the logger's first-use
    // allocations are not the tasks'.
    guest.send("repeat 1 crasher divide\r").unwrap();
    guest.wait_for_new("repeat: 1 runs", ANSWER).unwrap();
    guest.send("repeat 1000 crasher divide\r").unwrap();
    let line = guest.wait_for_new("repeat: 1000 runs", Duration::from_secs(240)).unwrap();
    eprintln!("{}", line.text);
    assert!(line.text.contains("0 exited, 1000 killed"), "{}", line.text);
    assert_repeat_back_to_baseline(&line.text);
    assert!(line.text.ends_with("task frames 0"), "{}", line.text);
    // And as many clean exits.
    guest.send("repeat 200 hello\r").unwrap();
    let line = guest.wait_for_new("repeat: 200 runs", Duration::from_secs(240)).unwrap();
    eprintln!("{}", line.text);
    assert!(line.text.contains("200 exited, 0 killed"), "{}", line.text);
    assert_repeat_back_to_baseline(&line.text);
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}

#[test]
fn mutated_elf_images_are_refused_never_fault() {
    let (mut guest, port) = shell_guest();
    for (program, seed) in [("hello", 1), ("crasher", 2), ("fuzz", 3)] {
        guest.send(&format!("elfcheck {program} 3000 {seed}\r")).unwrap();
        let line = guest.wait_for_new("elfcheck: 3000 mutants", Duration::from_secs(240)).unwrap();
        eprintln!("{program}: {}", line.text);
        let refused: u64 = line
            .text
            .split("mutants: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next()?.parse().ok())
            .unwrap();
        assert!(refused > 1000, "{}", line.text);
        let frames = line.text.split("free frames ").nth(1).unwrap().split(';').next().unwrap();
        let (before, after) = frames.split_once(" -> ").unwrap();
        assert_eq!(before, after, "{}", line.text);
    }
    // Every loader check was reached by some mutant.
    guest.send("run hello after\r").unwrap();
    guest.wait_for_new("argument `after`", ANSWER).unwrap();
    assert_echoes(port);
    assert_kernel_healthy(&mut guest);
}
