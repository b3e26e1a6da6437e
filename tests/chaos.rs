//! Failure modes by model, with `chaos=on`: a connection carrying
//! `TENFOLD-CRASH` makes the code serving it fault (a real CPU exception).
//! CSP: the fault ends the whole server — every thread, every connection —
//! the kernel survives, and the supervisor starts it again. And a model
//! that is not built (`actor`) is refused at boot, never replaced.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tenfold_lab::options::{MachineOptions, Model};
use tenfold_lab::qemu::GuestExit;
use tenfold_tests::{BOOT_TIMEOUT, boot_image, boot_with, echo_client, payload};

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

#[test]
fn csp_a_fault_in_one_connection_ends_the_whole_server_which_is_restarted() {
    let port = tenfold_lab::qemu::free_local_port().unwrap();
    let options = MachineOptions { port: Some(port), model: Model::Csp, ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &["chaos=on"]);
    guest.wait_for("csp: listening (run 1)", BOOT_TIMEOUT).unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    for run in 1..=2u64 {
        let mut healthy: Vec<TcpStream> = (0..5).map(|_| echo_client::connect_paced(address)).collect();
        for (index, stream) in healthy.iter_mut().enumerate() {
            let data = payload(run * 10 + index as u64, 2000);
            assert!(
                echo_client::round_trip(stream, &data) == data,
                "run {run}: connection {index} not served"
            );
        }
        let mut crasher = echo_client::connect_paced(address);
        crasher.write_all(b"hello TENFOLD-CRASH").unwrap();
        let report = guest.wait_for_new("csp: the server crashed", BOOT_TIMEOUT).unwrap();
        eprintln!("run {run}: {}", report.text);
        // Whole-program termination: the crasher and the five healthy ones.
        assert!(report.text.contains("6 connections lost"), "run {run}: {}", report.text);
        let transcript = guest.transcript();
        assert!(transcript.contains("!!! FAULT: page fault"), "a real CPU fault: {transcript}");
        assert!(transcript.contains("contained: the faulting thread was killed"), "{transcript}");
        for (index, stream) in healthy.iter_mut().enumerate() {
            assert!(is_lost(stream), "run {run}: connection {index} survived its server");
        }
        // Restarted: new clients are served.
        guest.wait_for(&format!("csp: listening (run {})", run + 1), BOOT_TIMEOUT).unwrap();
        let mut fresh = echo_client::connect_paced(address);
        let data = payload(100 + run, 5000);
        assert!(
            echo_client::round_trip(&mut fresh, &data) == data,
            "run {run}: not served after the restart"
        );
    }
    // The kernel lives on: the shell answers and the run has not ended.
    guest.send("uptime\r").unwrap();
    guest.wait_for_new("context switches", Duration::from_secs(20)).unwrap();
}

#[test]
fn model_actor_is_refused_at_boot_with_a_clear_error() {
    let options = MachineOptions { model: Model::Actor, ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &[]);
    let exit = guest.wait_exit(BOOT_TIMEOUT * 2).unwrap();
    let console = guest.transcript();
    assert_eq!(exit, GuestExit::Failure, "{console}");
    assert!(console.contains("model=actor: the actor echo server is not built yet"), "{console}");
    assert!(!console.contains("echo server ("), "served another model instead: {console}");
}
