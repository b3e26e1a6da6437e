//! The echo server over QEMU user networking (`--port`): byte-exact echo at
//! 1, 100 and 1000 concurrent connections, a slow reader, a reset in the
//! middle of a stream, the connection cap, clients that connect and then
//! say nothing, and an address leased by DHCP. Connections are opened one
//! after another: slirp's host-side listener has a backlog of 1.
//!
//! Every scenario runs for every model that serves echo (`--model reactor`,
//! `--model csp` and `--model actor`): the tests `reactor::x`, `csp::x` and
//! `actor::x` all call `x`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tenfold_lab::options::{MachineOptions, Model};
use tenfold_lab::qemu::Guest;
use tenfold_tests::{
    BOOT_TIMEOUT, boot_image, boot_with, echo_client, echo_counters, heap_in_use_kib, payload, raise_fd_limit,
};

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A guest serving echo in `model` on a free host port.
fn echo_guest(model: Model, params: &[&str]) -> (Guest, u16) {
    let port = tenfold_lab::qemu::free_local_port().unwrap();
    let options = MachineOptions { port: Some(port), model, ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, params);
    guest.wait_for(model.ready_line(), BOOT_TIMEOUT).unwrap();
    (guest, port)
}

/// A `#[test]` per model for each scenario `fn name(model: Model)`.
macro_rules! for_each_model {
    ($($name:ident),* $(,)?) => {
        mod reactor {
            $(#[test]
            fn $name() {
                super::$name(tenfold_lab::options::Model::Reactor)
            })*
        }
        mod csp {
            $(#[test]
            fn $name() {
                super::$name(tenfold_lab::options::Model::Csp)
            })*
        }
        mod actor {
            $(#[test]
            fn $name() {
                super::$name(tenfold_lab::options::Model::Actor)
            })*
        }
    };
}

for_each_model!(
    one_connection_echoes_a_large_payload_byte_exact,
    a_hundred_concurrent_connections_echo_byte_exact,
    a_thousand_concurrent_connections_echo_byte_exact,
    half_close_gets_the_rest_of_the_echo_then_eof,
    a_client_that_stops_reading_is_throttled,
    a_reset_mid_stream_leaves_the_server_serving,
    connections_beyond_the_cap_are_refused_while_the_others_are_served,
    a_connection_flood_is_bounded_by_memory_not_by_a_heap_panic,
    idle_connections_cannot_hold_the_cap_past_the_idle_timeout,
);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn connect(port: u16) -> TcpStream {
    echo_client::connect(local(port))
}

fn connect_paced(port: u16) -> TcpStream {
    echo_client::connect_paced(local(port))
}

fn one_connection_echoes_a_large_payload_byte_exact(model: Model) {
    let (_guest, port) = echo_guest(model, &[]);
    echo_client::echo_large(local(port), 42, 512 * 1024);
}

fn a_hundred_concurrent_connections_echo_byte_exact(model: Model) {
    let (_guest, port) = echo_guest(model, &[]);
    echo_client::echo_concurrent(local(port), 100, 4096);
}

fn a_thousand_concurrent_connections_echo_byte_exact(model: Model) {
    raise_fd_limit(4096);
    let (mut guest, port) = echo_guest(model, &[]);
    let idle_kib = heap_in_use_kib(&mut guest);
    let streams: Vec<TcpStream> = (0..1000).map(|_| echo_client::connect_paced(local(port))).collect();
    // What 1000 connections cost the guest: the socket buffers (full ones
    // for the first 128 sockets, 4 KiB each way after), smoltcp's state and
    // the echo tasks.
    let held_kib = heap_in_use_kib(&mut guest) - idle_kib;
    eprintln!("{}: 1000 connections hold {held_kib} KiB of heap", model.name());
    assert!(held_kib <= 16 << 10, "1000 idle connections take {held_kib} KiB (more than 16 MiB)");
    drop(streams);
    // Closing is asynchronous (csp threads and actor tasks end one by one):
    // the second thousand must not meet the first one's leftovers at the cap.
    let deadline = Instant::now() + Duration::from_secs(120);
    while echo_counters(&mut guest).open != 0 {
        assert!(Instant::now() < deadline, "the first 1000 connections never closed");
        std::thread::sleep(Duration::from_millis(200));
    }
    echo_client::echo_concurrent(local(port), 1000, 512);
    let counters = echo_counters(&mut guest);
    assert_eq!(counters.accepted, 2000, "one accept per connection: {counters:?}");
    assert_eq!(counters.refused_at_cap, 0, "below the cap of 1024: {counters:?}");
}

fn half_close_gets_the_rest_of_the_echo_then_eof(model: Model) {
    let (_guest, port) = echo_guest(model, &[]);
    let mut stream = connect(port);
    let data = payload(5, 40_000);
    stream.write_all(&data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    assert!(echoed == data, "got {} of {} bytes before EOF", echoed.len(), data.len());
}

fn a_client_that_stops_reading_is_throttled(model: Model) {
    let (_guest, port) = echo_guest(model, &[]);
    let mut stream = connect(port);
    stream.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let chunk = payload(8, 16 * 1024);
    let mut pushed = 0usize;
    let start = Instant::now();
    // Write without reading until writes stall (the guest's window closed
    // and every buffer on the way is full), bounded in time and volume.
    loop {
        // Continue the cycle where a partial write stopped.
        match stream.write(&chunk[pushed % chunk.len()..]) {
            Ok(written) => pushed += written,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(error) => panic!("write failed: {error}"),
        }
        assert!(pushed < 64 << 20, "64 MiB accepted without reading: no backpressure");
        assert!(start.elapsed() < Duration::from_secs(120), "writes never stalled");
    }
    // Everything that was accepted comes back.
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut echoed = vec![0; pushed];
    stream.read_exact(&mut echoed).unwrap();
    let expected: Vec<u8> = chunk.iter().cycle().take(pushed).copied().collect();
    assert!(echoed == expected, "echo differs after the stall");
    eprintln!("stalled after {pushed} bytes");
}

fn a_reset_mid_stream_leaves_the_server_serving(model: Model) {
    let (mut guest, port) = echo_guest(model, &[]);
    for round in 0..5 {
        let mut stream = connect(port);
        stream.write_all(&payload(round, 100_000)).unwrap();
        // SO_LINGER 0 would be the classic; dropping with unread data makes
        // the host stack send a reset too.
        drop(stream);
    }
    let mut stream = connect(port);
    let data = payload(99, 10_000);
    assert!(echo_client::round_trip(&mut stream, &data) == data);
    let counters = echo_counters(&mut guest);
    assert_eq!(counters.accepted, 6, "five reset connections and this one: {counters:?}");
    assert_eq!(counters.refused_at_cap, 0, "{counters:?}");
}

fn connections_beyond_the_cap_are_refused_while_the_others_are_served(model: Model) {
    let (mut guest, port) = echo_guest(model, &["max_connections=4", "backlog=2"]);
    let mut kept: Vec<TcpStream> = (0..4).map(|_| connect_paced(port)).collect();
    for (index, stream) in kept.iter_mut().enumerate() {
        let data = payload(index as u64, 1000);
        assert!(echo_client::round_trip(stream, &data) == data);
    }
    // The fifth: slirp accepts on the host, the guest resets, slirp closes.
    let mut extra = connect(port);
    extra.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = extra.write_all(b"anyone?");
    let mut buffer = [0u8; 16];
    match extra.read(&mut buffer) {
        Ok(0) => {}
        Err(error) if matches!(error.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        other => panic!("a connection beyond the cap was served: {other:?}"),
    }
    for (index, stream) in kept.iter_mut().enumerate() {
        let data = payload(100 + index as u64, 1000);
        assert!(echo_client::round_trip(stream, &data) == data, "established connection {index} disturbed");
    }
    // The guest's own account: the fifth was refused at the cap, not
    // accepted and then dropped.
    let counters = echo_counters(&mut guest);
    assert_eq!((counters.open, counters.accepted), (4, 4), "{counters:?}");
    assert_eq!(counters.refused_at_cap, 1, "{counters:?}");
}

/// Opens a connection and echoes one byte: `None` if the guest refused it
/// (slirp accepts on the host, the guest resets, slirp closes).
fn try_connection(port: u16) -> Option<TcpStream> {
    let mut stream = connect(port);
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(b"?").ok()?;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(1) if byte == *b"?" => Some(stream),
        Ok(0) => None,
        Err(error) if matches!(error.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => None,
        other => panic!("unexpected answer from the echo server: {other:?}"),
    }
}

fn a_connection_flood_is_bounded_by_memory_not_by_a_heap_panic(model: Model) {
    raise_fd_limit(4096);
    // An 8 MiB heap and a cap far above what it holds: memory is the bound.
    let (mut guest, port) = echo_guest(model, &["heap_max_mib=8", "max_connections=5000"]);
    let mut kept = Vec::new();
    let mut refused = 0;
    for _ in 0..600 {
        match try_connection(port) {
            Some(stream) => kept.push(stream),
            None => {
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
        }
    }
    assert_eq!(refused, 20, "600 connections all fit in an 8 MiB heap? {} kept", kept.len());
    assert!(kept.len() >= 20, "memory for only {} connections", kept.len());
    // Every connection that was let in is still served, byte-exact.
    for (index, stream) in kept.iter_mut().enumerate() {
        let data = payload(index as u64, 700);
        assert!(echo_client::round_trip(stream, &data) == data, "connection {index} disturbed");
    }
    let counters = echo_counters(&mut guest);
    println!("{} connections fit, then refused: {counters:?}", kept.len());
    assert_eq!(counters.open, kept.len() as u64, "{counters:?}");
    assert!(counters.refused_for_memory >= 20, "{counters:?}");
    assert_eq!(counters.refused_at_cap, 0, "{counters:?}");
    // Memory comes back with closed connections, and so does admission.
    let before = kept.len();
    kept.truncate(before / 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        if let Some(stream) = try_connection(port) {
            break stream;
        }
        assert!(Instant::now() < deadline, "no connection admitted after {} closed", before - before / 2);
        std::thread::sleep(Duration::from_millis(200));
    };
    kept.push(again);
    assert!(!guest.transcript().contains("panicked"), "{}", guest.transcript());
}

fn idle_connections_cannot_hold_the_cap_past_the_idle_timeout(model: Model) {
    let (mut guest, port) = echo_guest(model, &["max_connections=6", "idle_timeout_s=8"]);
    // Connect and then say nothing: they take every slot.
    let idle: Vec<TcpStream> = (0..6).map(|_| connect_paced(port)).collect();
    let idle_since = Instant::now();
    let mut refused = connect(port);
    refused.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = refused.write_all(b"hello");
    let mut buffer = [0u8; 16];
    assert!(!matches!(refused.read(&mut buffer), Ok(n) if n > 0), "served beyond the cap");
    // The server resets each idle connection after the timeout, not before.
    for mut stream in idle {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("an idle connection was not closed: {other:?}"),
        }
    }
    let held = idle_since.elapsed();
    assert!(held >= Duration::from_secs(7), "idle connections dropped after only {held:?}");
    // The slots are free again.
    let mut fresh = connect_paced(port);
    assert_eq!(echo_client::round_trip(&mut fresh, b"after the idlers"), b"after the idlers");
    let counters = echo_counters(&mut guest);
    assert_eq!(counters.accepted, 7, "six idlers and the fresh one: {counters:?}");
    assert_eq!(counters.refused_at_cap, 1, "the one beyond the cap: {counters:?}");
    assert_eq!(counters.open, 1, "the idlers were closed, the fresh one is open: {counters:?}");
}

#[test]
fn with_dhcp_the_guest_leases_its_address_and_serves() {
    let (mut guest, port) = echo_guest(Model::Reactor, &["ip=dhcp"]);
    // slirp's DHCP server hands out 10.0.2.15 first, behind 10.0.2.2.
    let lease = guest.wait_for("dhcp: leased", BOOT_TIMEOUT).unwrap();
    assert!(lease.text.contains("10.0.2.15/24") && lease.text.contains("10.0.2.2"), "{}", lease.text);
    let mut stream = connect_paced(port);
    let data = payload(7, 20_000);
    assert!(echo_client::round_trip(&mut stream, &data) == data);
    guest.send("net\r").unwrap();
    let address = guest.wait_for_new("addr:", Duration::from_secs(20)).unwrap();
    assert!(address.text.contains("10.0.2.15/24 (DHCP lease)"), "{}", address.text);
}

/// The actor model's price per connection: a handler task's frames, the
/// heap a connection takes (socket buffers and staging included) and the
/// handoff — spawning the handler with the socket lent to it.
#[test]
fn actor_costs_per_connection() {
    let (mut guest, port) = echo_guest(Model::Actor, &[]);
    let mem = |guest: &mut Guest| -> (u64, u64) {
        let heap = heap_in_use_kib(guest);
        let line = guest.wait_for_new("tasks:", Duration::from_secs(20)).unwrap();
        let frames = line.text.split_once("tasks:").and_then(|(_, rest)| rest.split_whitespace().next());
        (heap, frames.and_then(|frames| frames.parse().ok()).unwrap_or_else(|| panic!("{}", line.text)))
    };
    let (heap_before, frames_before) = mem(&mut guest);
    const CONNECTIONS: u64 = 100;
    let streams: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect_paced(port)).collect();
    let (heap_after, frames_after) = mem(&mut guest);
    let frames = (frames_after - frames_before) as f64 / CONNECTIONS as f64;
    let heap = (heap_after - heap_before) as f64 / CONNECTIONS as f64;
    guest.send("net\r").unwrap();
    let actor = guest.wait_for_new("handlers alive", Duration::from_secs(20)).unwrap();
    println!(
        "actor: per connection {frames:.1} task frames ({:.1} KiB) + a 32 KiB kernel stack + {heap:.1} KiB heap (socket buffers and staging included)\n{}",
        frames * 4.0,
        actor.text
    );
    assert!((20.0..=64.0).contains(&frames), "{frames} frames per handler (quota 64)");
    assert!(heap < 64.0, "{heap} KiB of heap per connection");
    assert!(actor.text.contains(&format!("{CONNECTIONS} handlers alive")), "{}", actor.text);
    drop(streams);
}
