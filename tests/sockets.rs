//! TCP sockets for ring-3 tasks (system calls 14–20), through the
//! `sockets` program in `user/`: a task serves echo byte-exact with
//! blocking reads and writes; hostile arguments (forged, stale and foreign
//! handles, bad and kernel pointers, huge lengths, bad ports and bounds, a
//! full table) get errors and never fault the kernel; a task killed while
//! parked in a read has its connection reset; and 200 tasks that die by a
//! fault holding open connections give every connection, frame and heap
//! byte back.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tenfold_lab::options::MachineOptions;
use tenfold_lab::qemu::Guest;
use tenfold_tests::{
    BOOT_TIMEOUT, assert_kernel_healthy, assert_repeat_back_to_baseline, boot_image, boot_with, echo_client,
    number_after, payload, run_task,
};

const ANSWER: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(600);

/// A guest at its shell whose guest ports `ports` are reachable from the
/// host; returns the host port for each.
fn guest(ports: &[u16]) -> (Guest, Vec<u16>) {
    let forwards: Vec<(u16, u16)> =
        ports.iter().map(|&guest| (tenfold_lab::qemu::free_local_port().unwrap(), guest)).collect();
    let hosts = forwards.iter().map(|&(host, _)| host).collect();
    let options = MachineOptions { forwards, ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &[]);
    guest.wait_for("Tenfold shell: type `help`", BOOT_TIMEOUT).unwrap();
    (guest, hosts)
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Connections the socket service holds open, from the shell's `net`,
/// once it is `wanted` (dead sockets are released by the network thread a
/// moment later), or the last count seen.
fn service_open(guest: &mut Guest, wanted: u64) -> u64 {
    let mut open = u64::MAX;
    for _ in 0..50 {
        guest.send("net\r").unwrap();
        let line = guest.wait_for_new("service:", ANSWER).unwrap();
        open = number_after(&line.text, "service:");
        if open == wanted {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    open
}

#[test]
fn a_task_serves_echo_through_the_system_calls_byte_exact() {
    let (mut guest, hosts) = guest(&[7100]);
    run_task(&mut guest, "sockets", "echo,7100,3");
    guest.wait_for_new("sockets: listening on 7100", ANSWER).unwrap();
    // A large payload both ways at once, then ping-pong, then a half-close.
    echo_client::echo_large(local(hosts[0]), 1, 300_000);
    let mut stream = echo_client::connect(local(hosts[0]));
    for round in 0..50 {
        let data = payload(100 + round, 1 + round as usize * 97);
        assert!(echo_client::round_trip(&mut stream, &data) == data, "round {round}");
    }
    drop(stream);
    let mut stream = echo_client::connect(local(hosts[0]));
    let data = payload(7, 50_000);
    stream.write_all(&data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    assert!(echoed == data, "got {} of {} bytes before EOF", echoed.len(), data.len());
    let sent: u64 = 300_000 + (0..50).map(|round| 1 + round * 97).sum::<u64>() + 50_000;
    let line = guest.wait_for_new("sockets: echoed", ANSWER).unwrap();
    assert_eq!(number_after(&line.text, "echoed"), sent, "{}", line.text);
    guest.wait_for_new("exited with code 0", ANSWER).unwrap();
    assert_eq!(service_open(&mut guest, 0), 0, "connections left open");
    assert_kernel_healthy(&mut guest);
}

#[test]
fn hostile_arguments_get_errors_and_a_killed_reader_is_cleaned_up() {
    let (mut guest, hosts) = guest(&[7100, 7300]);
    let owner = run_task(&mut guest, "sockets", "echo,7100,1");
    let line = guest.wait_for_new("sockets: listening on 7100", ANSWER).unwrap();
    let foreign = number_after(&line.text, "handle");
    run_task(&mut guest, "sockets", &format!("hostile,7200,{foreign}"));
    let line = guest.wait_for_new("hostile checks done", LONG).unwrap();
    let transcript = guest.transcript();
    assert!(
        line.text.contains("64 listeners held at once") && line.text.contains(", 0 failed"),
        "{transcript}"
    );
    assert!(!transcript.contains("sockets: FAILED"), "{transcript}");
    // The other task's listener was not touched: it still serves.
    let mut stream = echo_client::connect(local(hosts[0]));
    assert_eq!(echo_client::round_trip(&mut stream, b"untouched"), b"untouched");
    drop(stream);
    guest.wait_for_new(&format!("task `sockets` (tid {owner}) exited with code 0"), ANSWER).unwrap();
    // Killed while parked in a read: its connection is reset, its sockets
    // are released, the kernel runs on.
    let reader = run_task(&mut guest, "sockets", "echo,7300,1");
    guest.wait_for_new("sockets: listening on 7300", ANSWER).unwrap();
    let mut parked = echo_client::connect(local(hosts[1]));
    assert_eq!(echo_client::round_trip(&mut parked, b"once"), b"once");
    assert_eq!(service_open(&mut guest, 1), 1);
    guest.send(&format!("kill {reader}\r")).unwrap();
    // Parked in its read: stopped there (if it was just woken, it faults at
    // its next instruction in ring 3 instead).
    let killed = guest.wait_for_new(&format!("kill: task {reader}"), ANSWER).unwrap();
    eprintln!("{}", killed.text);
    parked.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buffer = [0u8; 8];
    match parked.read(&mut buffer) {
        Ok(0) | Err(_) => {}
        Ok(count) => panic!("{count} bytes from a dead task's connection"),
    }
    assert_eq!(service_open(&mut guest, 0), 0, "the dead reader's connection is still open");
    guest.send("run fuzz 20000\r").unwrap();
    guest.wait_for_new("fuzz: 20000 calls", LONG).unwrap();
    assert_kernel_healthy(&mut guest);
}

#[test]
fn two_hundred_crashes_holding_connections_give_everything_back() {
    let (mut guest, hosts) = guest(&[7400]);
    // Clients that keep connecting: each run of `hold` accepts two, reads a
    // byte from each and dies with them open.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let address = local(hosts[0]);
            std::thread::spawn(move || {
                let mut served = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(5)) else {
                        continue;
                    };
                    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    if stream.write_all(b"x").is_err() {
                        continue;
                    }
                    let mut buffer = [0u8; 16];
                    // Ends with the task's death (reset) or the guest refusing.
                    while let Ok(count) = stream.read(&mut buffer) {
                        if count == 0 {
                            break;
                        }
                    }
                    served += 1;
                }
                served
            })
        })
        .collect();
    guest.send("repeat 3 sockets hold,7400,2\r").unwrap();
    guest.wait_for_new("repeat: 3 runs", LONG).unwrap();
    guest.send("repeat 200 sockets hold,7400,2\r").unwrap();
    let line = guest.wait_for_new("repeat: 200 runs", LONG).unwrap();
    stop.store(true, Ordering::Relaxed);
    eprintln!("{}", line.text);
    assert!(line.text.contains("0 exited, 200 killed"), "{}", line.text);
    assert_repeat_back_to_baseline(&line.text);
    let connections: u64 = clients.into_iter().map(|client| client.join().unwrap()).sum();
    assert!(connections >= 400, "only {connections} client connections for 200 runs of two");
    assert_eq!(service_open(&mut guest, 0), 0, "connections of dead tasks still open");
    assert_kernel_healthy(&mut guest);
}
