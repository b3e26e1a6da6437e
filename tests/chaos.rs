//! Failure modes by model, with `chaos=on`: a connection carrying
//! `TENFOLD-CRASH` makes the code serving it fault (a real CPU exception).
//! Reactor: the fault kills the one event loop — every connection in
//! flight is lost — the kernel survives, and the loop's supervisor starts
//! it again with the same card (and gets its memory back). CSP: the fault ends the whole server — every thread, every connection —
//! the kernel survives, and the supervisor starts it again. Actor: the
//! fault kills one ring-3 handler; its connection is kept and served by a
//! restarted handler, every other connection loses nothing, and past the
//! restart intensity only that connection is given up.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tenfold_lab::options::{MachineOptions, Model};
use tenfold_lab::qemu::Guest;
use tenfold_tests::{BOOT_TIMEOUT, boot_image, boot_with, echo_client, memory, payload};

/// Whether `stream` is dead: the guest reset or closed it.
fn is_lost(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = stream.write_all(b"still there?");
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Err(error) => matches!(error.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        Ok(_) => false,
    }
}

/// Five connections, each served one round trip.
fn healthy_connections(address: SocketAddr, run: u64) -> Vec<TcpStream> {
    let mut healthy: Vec<TcpStream> = (0..5).map(|_| echo_client::connect_paced(address)).collect();
    for (index, stream) in healthy.iter_mut().enumerate() {
        let data = payload(run * 10 + index as u64, 2000);
        assert!(echo_client::round_trip(stream, &data) == data, "run {run}: connection {index} not served");
    }
    healthy
}

/// Sends `TENFOLD-CRASH` on a new connection and waits for `report`: the
/// whole server died of a real, contained CPU fault and lost all six
/// connections (the crasher's and the five healthy ones). Returns the
/// crasher's connection.
fn crash_whole_server(guest: &mut Guest, address: SocketAddr, report: &str, run: u64) -> TcpStream {
    let mut crasher = echo_client::connect_paced(address);
    crasher.write_all(b"hello TENFOLD-CRASH").unwrap();
    let report = guest.wait_for_new(report, BOOT_TIMEOUT).unwrap();
    eprintln!("run {run}: {}", report.text);
    assert!(report.text.contains("6 connections lost"), "run {run}: {}", report.text);
    let transcript = guest.transcript();
    assert!(transcript.contains("!!! FAULT: page fault"), "a real CPU fault: {transcript}");
    assert!(transcript.contains("contained: the faulting thread was killed"), "{transcript}");
    crasher
}

/// A new client is served, byte-exact.
fn assert_fresh_client_served(address: SocketAddr, run: u64) {
    let mut fresh = echo_client::connect_paced(address);
    let data = payload(100 + run, 5000);
    assert!(echo_client::round_trip(&mut fresh, &data) == data, "run {run}: not served after the restart");
}

#[test]
fn reactor_a_fault_in_the_event_loop_loses_every_connection_and_the_loop_is_restarted() {
    let port = tenfold_lab::qemu::free_local_port().unwrap();
    let options = MachineOptions { port: Some(port), model: Model::Reactor, ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &["chaos=on"]);
    guest.wait_for("(run 1)", BOOT_TIMEOUT).unwrap();
    guest.wait_for("Tenfold shell", BOOT_TIMEOUT).unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut baseline = None;
    for run in 1..=5u64 {
        let mut healthy = healthy_connections(address, run);
        // Memory with 5 connections open, before the first crash.
        let now = memory(&mut guest);
        eprintln!("run {run}: frames {}, heap {} bytes with 5 connections open", now.0, now.1);
        baseline.get_or_insert(now);
        // Node's failure mode: the one event loop and every connection.
        let mut crasher = crash_whole_server(&mut guest, address, "the event loop died", run);
        guest.wait_for(&format!("(run {})", run + 1), BOOT_TIMEOUT).unwrap();
        for (index, stream) in healthy.iter_mut().enumerate() {
            assert!(is_lost(stream), "run {run}: connection {index} survived its event loop");
        }
        assert!(is_lost(&mut crasher), "run {run}: the crashing connection survived");
        // Restarted, with the same card.
        assert_fresh_client_served(address, run);
    }
    // Each dead loop's stack, tasks and buffers were given back: measured
    // with the same 5 connections open as at the baseline.
    let mut same: Vec<TcpStream> = (0..5).map(|_| echo_client::connect_paced(address)).collect();
    for stream in &mut same {
        assert!(echo_client::round_trip(stream, b"back") == b"back");
    }
    let (frames_before, heap_before) = baseline.unwrap();
    let (frames_after, heap_after) = memory(&mut guest);
    eprintln!(
        "after 5 crashes: frames {frames_before} -> {frames_after}, heap {heap_before} -> {heap_after} bytes"
    );
    assert!(
        heap_after - heap_before < 16 * 1024,
        "the dead loops' memory was not given back: heap {heap_before} -> {heap_after} bytes"
    );
    assert!(frames_before - frames_after < 16, "frames {frames_before} -> {frames_after}");
    // The kernel lives on: the shell answers and the run has not ended.
    guest.send("uptime\r").unwrap();
    guest.wait_for_new("context switches", Duration::from_secs(20)).unwrap();
}

#[test]
fn csp_a_fault_in_one_connection_ends_the_whole_server_which_is_restarted() {
    let port = tenfold_lab::qemu::free_local_port().unwrap();
    let options = MachineOptions { port: Some(port), model: Model::Csp, ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &["chaos=on"]);
    guest.wait_for("csp: listening (run 1)", BOOT_TIMEOUT).unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    for run in 1..=2u64 {
        let mut healthy = healthy_connections(address, run);
        // Whole-program termination: every connection of the server.
        crash_whole_server(&mut guest, address, "csp: the server crashed", run);
        for (index, stream) in healthy.iter_mut().enumerate() {
            assert!(is_lost(stream), "run {run}: connection {index} survived its server");
        }
        guest.wait_for(&format!("csp: listening (run {})", run + 1), BOOT_TIMEOUT).unwrap();
        assert_fresh_client_served(address, run);
    }
    // The kernel lives on: the shell answers and the run has not ended.
    guest.send("uptime\r").unwrap();
    guest.wait_for_new("context switches", Duration::from_secs(20)).unwrap();
}

/// The number just before `label` in `text` (`… 3 restarts, …`).
fn count_before(text: &str, label: &str) -> u64 {
    let head = text.split(label).next().unwrap_or_else(|| panic!("no `{label}` in `{text}`"));
    let digits: String = head
        .trim_end()
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("no number before `{label}` in `{text}`"))
}

/// The `actor:` line of the shell's `net`.
fn actor_line(guest: &mut tenfold_lab::qemu::Guest) -> String {
    guest.send("net\r").unwrap();
    guest.wait_for_new("handlers alive", Duration::from_secs(20)).unwrap().text
}

#[test]
fn actor_a_crash_costs_only_the_crashing_connection_which_is_served_again() {
    let port = tenfold_lab::qemu::free_local_port().unwrap();
    let options = MachineOptions { port: Some(port), model: Model::Actor, ..MachineOptions::default() };
    // A restart period far longer than the test, so that the fourth crash
    // falls inside it however slowly the machine runs the first three.
    let mut guest = boot_with(boot_image(), options, &["chaos=on", "actor_restart_period_s=600"]);
    guest
        .wait_for(
            "actor: listening; a connection's handler restarts at most 3 times within 600 s",
            BOOT_TIMEOUT,
        )
        .unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    // Healthy connections echo continuously, every byte checked, while one
    // connection crashes its handler again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let healthy: Vec<_> = (0..5u64)
        .map(|index| {
            let mut stream = echo_client::connect_paced(address);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut bytes = 0u64;
                for round in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let data = payload(index * 1_000_000 + round, 1000 + (round as usize * 37) % 3000);
                    let echoed = echo_client::round_trip(&mut stream, &data);
                    assert!(echoed == data, "healthy connection {index}: round {round} differs");
                    bytes += data.len() as u64;
                }
                bytes
            })
        })
        .collect();
    let mut crasher = echo_client::connect_paced(address);
    for crash in 1..=3u64 {
        crasher.write_all(b"TENFOLD-CRASH").unwrap();
        guest.wait_for_new("!!! USER FAULT", BOOT_TIMEOUT).unwrap();
        let mut line = actor_line(&mut guest);
        for _ in 0..50 {
            if count_before(&line, " restarts") >= crash {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            line = actor_line(&mut guest);
        }
        assert_eq!(count_before(&line, " restarts"), crash, "{line}");
        // Lost: what the dead handler had read and not written (at most
        // the marker); the connection itself is served by its successor.
        crasher.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut stray = [0u8; 64];
        let leftover = crasher.read(&mut stray).unwrap_or(0);
        assert!(leftover < b"TENFOLD-CRASH".len(), "crash {crash}: {leftover} bytes after the crash");
        crasher.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let data = payload(500 + crash, 20_000);
        assert!(
            echo_client::round_trip(&mut crasher, &data) == data,
            "crash {crash}: not served after the restart"
        );
    }
    // A fourth crash within the intensity period: that connection is given
    // up (reset), and only that one.
    crasher.write_all(b"TENFOLD-CRASH").unwrap();
    assert!(is_lost(&mut crasher), "the connection past its restart intensity was kept");
    let line = actor_line(&mut guest);
    stop.store(true, Ordering::Relaxed);
    let echoed: Vec<u64> = healthy.into_iter().map(|thread| thread.join().unwrap()).collect();
    assert!(echoed.iter().all(|&bytes| bytes > 0), "a healthy connection made no progress: {echoed:?}");
    eprintln!("{line}\nhealthy connections echoed {echoed:?} bytes, 0 lost");
    assert_eq!(count_before(&line, " connections given up"), 1, "{line}");
    assert_eq!(count_before(&line, " restarts"), 3, "{line}");
    assert_eq!(count_before(&line, " connections open"), 5, "the healthy five stay open: {line}");
    let transcript = guest.transcript();
    assert!(transcript.contains("!!! USER FAULT: page fault"), "a real CPU fault in ring 3: {transcript}");
    assert!(!transcript.contains("!!! FAULT") && !transcript.contains("!!! PANIC"), "{transcript}");
    // A fresh connection is served; the kernel is healthy.
    let mut fresh = echo_client::connect_paced(address);
    let data = payload(900, 5000);
    assert!(echo_client::round_trip(&mut fresh, &data) == data);
    guest.send("uptime\r").unwrap();
    guest.wait_for_new("context switches", Duration::from_secs(20)).unwrap();
}
