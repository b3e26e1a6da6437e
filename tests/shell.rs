//! The serial shell answers over the console, also while other threads spin.

use std::time::Duration;

use tenfold_lab::qemu::Guest;
use tenfold_tests::{BOOT_TIMEOUT, boot};

const ANSWER: Duration = Duration::from_secs(20);

/// The `ps` row of the thread `name`, split into its columns
/// (`TID NAME STATE PRIO CPU-ms …`).
fn ps_row(guest: &mut Guest, name: &str) -> Vec<String> {
    guest.send("ps\r").unwrap();
    let header = guest.wait_for_new("TID NAME", ANSWER).unwrap();
    assert!(
        header.text.contains("CPU ms") && header.text.contains("INVOL") && header.text.contains("WAIT ms"),
        "{}",
        header.text
    );
    let row = guest.wait_for_new(&format!(" {name} "), ANSWER).unwrap();
    let columns: Vec<String> = row.text.split_whitespace().map(String::from).collect();
    assert!(columns.len() > 4 && columns[1] == name, "not the row of `{name}`: {}", row.text);
    columns
}

#[test]
fn shell_lists_threads_and_survives_a_cpu_hog() {
    let mut guest = boot(&[]);
    guest.wait_for("Tenfold shell: type `help`", BOOT_TIMEOUT).unwrap();
    // The hog outlives every command below; the shell is shut down with it
    // still spinning.
    guest.send("spin 60000 30\r").unwrap();
    guest.wait_for("spinning for 60000 ms as thread", ANSWER).unwrap();
    // Answers are awaited with `wait_for_new`: the shell echoes what is
    // typed, so an echoed command line (`tenfold> spin 60000 30`) would
    // otherwise satisfy a check meant for the answer.
    assert_eq!(ps_row(&mut guest, "shell")[2], "running", "the shell runs `ps`");
    let spin = ps_row(&mut guest, "spin");
    assert!(["ready", "running"].contains(&spin[2].as_str()) && spin[3] == "30", "{spin:?}");
    guest.send("uptime\r").unwrap();
    guest.wait_for_new("context switches", ANSWER).unwrap();
    guest.send("mem\r").unwrap();
    guest.wait_for_new("heap:", ANSWER).unwrap();
    guest.wait_for_new("frames:", ANSWER).unwrap();
    guest.send("sockets\r").unwrap();
    guest.wait_for_new("LISTEN", ANSWER).unwrap();
    guest.wait_for_new(" TCP sockets", ANSWER).unwrap();
    guest.send("net\r").unwrap();
    guest.wait_for_new("nic:", ANSWER).unwrap();
    guest.wait_for_new("task polls", ANSWER).unwrap();
    guest.wait_for_new("cost:   per received frame", ANSWER).unwrap();
    guest.send("ping 10.0.2.2 2\r").unwrap();
    guest.wait_for_new("reply from 10.0.2.2: icmp_seq=", ANSWER).unwrap();
    guest.send("ping nowhere\r").unwrap();
    guest.wait_for_new("is not an IPv4 address", ANSWER).unwrap();
    guest.send("kill 1\r").unwrap();
    guest.wait_for_new("kill 1: Essential", ANSWER).unwrap();
    guest.send("log loud\r").unwrap();
    guest.wait_for_new("log: expected off|error|warn|info|debug|trace", ANSWER).unwrap();
    guest.send("frobnicate\r").unwrap();
    guest.wait_for_new("unknown command `frobnicate`", ANSWER).unwrap();
    // The hog got the CPU between the commands, and the shell still answered.
    let spin = ps_row(&mut guest, "spin");
    let hog_cpu_ms: f64 = spin[4].parse().unwrap();
    assert!(hog_cpu_ms > 0.0, "the hog never ran while the shell answered: {spin:?}");
    guest.send("shutdown\r").unwrap();
    let exit = guest.wait_exit(ANSWER).unwrap();
    assert_eq!(exit, tenfold_lab::qemu::GuestExit::Success, "{}", guest.transcript());
}
