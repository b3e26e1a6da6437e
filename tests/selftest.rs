//! The in-kernel self-tests pass (QEMU exit status 33), and asking for a
//! test that does not exist fails the run instead of passing vacuously.

use std::sync::Mutex;
use std::time::Duration;

use tenfold_lab::qemu::GuestExit;
use tenfold_tests::{BOOT_TIMEOUT, boot};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The self-tests measure scheduling against the guest clock, which runs on
/// in host time while the emulator thread is descheduled: boot one guest at
/// a time so this binary's own guests do not compete for the two cores.
static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn all_in_kernel_tests_pass() {
    let _alone = ONE_GUEST_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut guest = boot(&["test=all"]);
    let exit = guest.wait_exit(BOOT_TIMEOUT + RUN_TIMEOUT).unwrap();
    let console = guest.transcript();
    assert_eq!(exit, GuestExit::Success, "{console}");
    assert!(console.contains("selftest: all "), "{console}");
    assert!(!console.contains("!!!"), "{console}");
}

#[test]
fn an_unknown_test_name_fails_the_run() {
    let _alone = ONE_GUEST_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut guest = boot(&["test=no_such_test"]);
    let exit = guest.wait_exit(BOOT_TIMEOUT + RUN_TIMEOUT).unwrap();
    let console = guest.transcript();
    assert_eq!(exit, GuestExit::Failure, "{console}");
    assert!(console.contains("no test matches `no_such_test`"), "{console}");
}
