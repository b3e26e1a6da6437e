//! The serial shell answers over the console, also while other threads spin.

use std::time::Duration;

use tenfold_tests::{BOOT_TIMEOUT, boot};

const ANSWER: Duration = Duration::from_secs(20);

#[test]
fn shell_lists_threads_and_survives_a_cpu_hog() {
    let mut guest = boot(&[]);
    guest.wait_for("Tenfold shell: type `help`", BOOT_TIMEOUT).unwrap();
    guest.send("spin 3000 30\r").unwrap();
    guest.wait_for("spinning for 3000 ms as thread", ANSWER).unwrap();
    guest.send("ps\r").unwrap();
    let header = guest.wait_for("TID NAME", ANSWER).unwrap();
    assert!(
        header.text.contains("CPU ms") && header.text.contains("INVOL") && header.text.contains("WAIT ms")
    );
    guest.wait_for(" shell ", ANSWER).unwrap();
    guest.wait_for(" spin ", ANSWER).unwrap();
    guest.send("uptime\r").unwrap();
    guest.wait_for("context switches", ANSWER).unwrap();
    guest.send("mem\r").unwrap();
    guest.wait_for("heap:", ANSWER).unwrap();
    guest.wait_for("frames:", ANSWER).unwrap();
    guest.send("sockets\r").unwrap();
    guest.wait_for("LISTEN", ANSWER).unwrap();
    guest.wait_for(" TCP sockets", ANSWER).unwrap();
    guest.send("net\r").unwrap();
    guest.wait_for("nic:", ANSWER).unwrap();
    guest.wait_for("task polls", ANSWER).unwrap();
    guest.send("ping 10.0.2.2 2\r").unwrap();
    guest.wait_for("reply from 10.0.2.2: icmp_seq=", ANSWER).unwrap();
    guest.send("ping nowhere\r").unwrap();
    guest.wait_for("is not an IPv4 address", ANSWER).unwrap();
    guest.send("kill 1\r").unwrap();
    guest.wait_for("kill 1: Essential", ANSWER).unwrap();
    guest.send("log loud\r").unwrap();
    guest.wait_for("log: expected off|error|warn|info|debug|trace", ANSWER).unwrap();
    guest.send("frobnicate\r").unwrap();
    guest.wait_for("unknown command `frobnicate`", ANSWER).unwrap();
    guest.send("shutdown\r").unwrap();
    let exit = guest.wait_exit(ANSWER).unwrap();
    assert_eq!(exit, tenfold_lab::qemu::GuestExit::Success, "{}", guest.transcript());
}
