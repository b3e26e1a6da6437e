//! Failing paths: deliberate faults and panics are reported with their cause,
//! the faulting context and a symbolised stack trace, and fail the run
//! (QEMU exit status 35, never 0 or 33).

use tenfold_lab::qemu::GuestExit;
use tenfold_tests::{BOOT_TIMEOUT, boot};

/// Boots with `crash=<kind>` and returns the symbolised console.
fn crash(kind: &str, extra: &[&str]) -> String {
    let param = format!("crash={kind}");
    let mut params = vec![param.as_str()];
    params.extend_from_slice(extra);
    let mut guest = boot(&params);
    let exit = guest.wait_exit(BOOT_TIMEOUT * 2).unwrap();
    let console = guest.transcript();
    assert_eq!(exit, GuestExit::Failure, "crash={kind} did not fail the run:\n{console}");
    assert!(console.contains("!!! end of fault report"), "{console}");
    console
}

#[test]
fn page_fault_names_address_access_and_code() {
    let console = crash("page-fault", &[]);
    assert!(console.contains("!!! FAULT: page fault (#PF, vector 14) in kernel thread `boot`"), "{console}");
    assert!(
        console.contains("cause: write to non-present page at 0xdead0000 (supervisor access)"),
        "{console}"
    );
    assert!(console.contains("cr2 0x00000000dead0000"), "{console}");
    assert!(console.contains("in tenfold::selftest::crash at kernel/src/selftest.rs"), "{console}");
    assert!(console.contains("in tenfold::kernel_main at kernel/src/main.rs"), "{console}");
}

#[test]
fn panic_names_message_location_and_callers() {
    let console = crash("panic", &[]);
    assert!(console.contains("!!! PANIC in kernel thread `boot`"), "{console}");
    assert!(console.contains("cause: deliberate panic (crash=panic)"), "{console}");
    assert!(console.contains("at kernel/src/selftest.rs:"), "{console}");
    assert!(console.contains("in tenfold::selftest::crash at kernel/src/selftest.rs"), "{console}");
}

#[test]
fn stack_overflow_is_caught_on_the_double_fault_stack() {
    let console = crash("stack-overflow", &[]);
    assert!(console.contains("double fault (#DF, vector 8)"), "{console}");
    assert!(console.contains("kernel stack overflow"), "{console}");
    assert!(console.contains("in tenfold::selftest::recurse"), "{console}");
}

#[test]
fn heap_exhaustion_is_reported_not_hung() {
    let console = crash("heap-exhaustion", &["heap_max_mib=8"]);
    assert!(console.contains("ERROR memory::heap: heap: allocation of 1048576 bytes"), "{console}");
    assert!(console.contains("cause: memory allocation of 1048576 bytes failed"), "{console}");
}

#[test]
fn invalid_opcode_is_reported() {
    let console = crash("invalid-opcode", &[]);
    assert!(console.contains("!!! FAULT: invalid opcode (#UD, vector 6)"), "{console}");
    assert!(console.contains("in tenfold::selftest::crash"), "{console}");
}

#[test]
fn a_thread_stack_overflow_kills_only_that_thread() {
    let mut guest = boot(&["crash=thread-stack-overflow"]);
    let survived = guest.wait_for("kernel survived", BOOT_TIMEOUT * 2);
    let console = guest.transcript();
    survived.unwrap_or_else(|error| panic!("{error}"));
    assert!(
        console.contains("!!! FAULT: double fault (#DF, vector 8) in kernel thread `overflow`"),
        "{console}"
    );
    assert!(console.contains("cause: kernel stack overflow"), "{console}");
    assert!(console.contains("in tenfold::selftest::recurse"), "{console}");
    assert!(console.contains("killed the thread whose stack overflowed"), "{console}");
    guest.wait_for("kernel ready", std::time::Duration::from_secs(30)).unwrap();
}
