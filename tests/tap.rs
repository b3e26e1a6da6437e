//! The echo server over a tap device in a private network namespace: the
//! host kernel's TCP talks straight to the guest's virtio-net card at
//! 10.0.2.15 (no slirp in between). Byte-exact echo on one connection
//! (256 KiB) and on 100 concurrent connections (4 KiB each); the namespace
//! itself (tap address, entering it, removal). Needs root and `ip`; without
//! them each test says why and passes without running (fails under
//! `TENFOLD_REQUIRE_ALL=1`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tenfold_lab::netns::{self, Namespace};
use tenfold_lab::options::MachineOptions;
use tenfold_lab::qemu::ECHO_PORT;
use tenfold_tests::{
    BOOT_TIMEOUT, boot_image, boot_with, echo_client, echo_counters, heap_in_use_kib, raise_fd_limit, skip,
};

#[test]
fn a_namespace_has_a_tap_and_goes_away_on_drop() {
    if let Some(reason) = netns::unavailable() {
        return skip("a_namespace_has_a_tap_and_goes_away_on_drop", &reason);
    }
    let ip = netns::ip_program().unwrap();
    let namespace = Namespace::create("tenfold-unit").unwrap();
    let name = namespace.name().to_string();
    let addresses = Command::new(&ip)
        .args(["-n", &name, "-4", "addr", "show", "dev", netns::TAP_IFNAME])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&addresses.stdout).contains("10.0.2.2/24"));
    assert!(!netns::in_private_namespace());
    assert!(namespace.run_in(netns::in_private_namespace));
    // A socket made inside binds the namespace's address, which the
    // host's namespace does not have.
    let bound = namespace.run_in(|| std::net::TcpListener::bind("10.0.2.2:0").is_ok());
    assert!(bound);
    drop(namespace);
    let listed = Command::new(&ip).args(["netns", "list"]).output().unwrap();
    assert!(listed.status.success());
    let still_listed = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|line| line.split_whitespace().next() == Some(&name));
    assert!(!still_listed, "namespace {name} still exists after drop");
}

#[test]
fn echo_over_tap_in_a_namespace() {
    if let Some(reason) = netns::unavailable() {
        return skip("echo_over_tap_in_a_namespace", &reason);
    }
    // Declared before the guest, so dropped after it (QEMU runs inside).
    let namespace = Namespace::create("tenfold").expect("creating a network namespace");
    let options = namespace.machine(&MachineOptions::default());
    let mut guest = boot_with(boot_image(), options, &[]);
    guest.wait_for("echo server (event loop)", BOOT_TIMEOUT).unwrap();
    let addr = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    namespace.run_in(|| {
        echo_client::echo_large(addr, 7, 256 * 1024);
        echo_client::echo_concurrent(addr, 100, 4096);
    });
    let counters = echo_counters(&mut guest);
    assert_eq!(counters.accepted, 101, "one large and 100 concurrent connections: {counters:?}");
    assert_eq!(counters.refused_at_cap, 0, "{counters:?}");
    // ARP and ICMP both ways: the guest pings the namespace's side of the tap.
    guest.send("ping 10.0.2.2 2\r").unwrap();
    guest.wait_for_new("reply from 10.0.2.2: icmp_seq=", Duration::from_secs(20)).unwrap();
}

/// Ten thousand connections held open at once in a 256 MiB guest, every one
/// answered byte-exact; the heap per idle connection is reported (and
/// bounded: they must fit). Needs the O(1) packet path — with one shared
/// socket set, opening them took minutes.
#[test]
fn ten_thousand_concurrent_connections_echo_byte_exact() {
    const CONNECTIONS: usize = 10_000;
    if let Some(reason) = netns::unavailable() {
        return skip("ten_thousand_concurrent_connections_echo_byte_exact", &reason);
    }
    raise_fd_limit(CONNECTIONS as u64 + 256);
    let namespace = Namespace::create("tenfold-10k").expect("creating a network namespace");
    let options = namespace.machine(&MachineOptions::default());
    assert_eq!(options.memory, 256);
    let mut guest = boot_with(boot_image(), options, &["max_connections=10100"]);
    guest.wait_for("echo server (event loop)", BOOT_TIMEOUT).unwrap();
    let before_kib = heap_in_use_kib(&mut guest);
    let addr = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    let started = Instant::now();
    let mut streams = namespace.run_in(|| {
        (0..CONNECTIONS)
            .map(|index| {
                assert!(started.elapsed() < Duration::from_secs(600), "opened only {index} in 10 minutes");
                tenfold_lab::loadgen::connect_paced(addr)
                    .unwrap_or_else(|error| panic!("connection {index}: {error:#}"))
            })
            .collect::<Vec<_>>()
    });
    let opened_in = started.elapsed();
    let held_kib = heap_in_use_kib(&mut guest);
    let counters = echo_counters(&mut guest);
    assert_eq!(counters.open, CONNECTIONS as u64, "{counters:?}");
    assert_eq!((counters.refused_at_cap, counters.refused_for_memory), (0, 0), "{counters:?}");
    // Every connection, still open, echoes its own message.
    for (index, stream) in streams.iter_mut().enumerate() {
        stream.write_all(format!("connection {index:05} of {CONNECTIONS}").as_bytes()).unwrap();
    }
    for (index, stream) in streams.iter_mut().enumerate() {
        let expected = format!("connection {index:05} of {CONNECTIONS}");
        let mut echoed = vec![0; expected.len()];
        stream.read_exact(&mut echoed).unwrap_or_else(|error| panic!("connection {index}: {error}"));
        assert_eq!(echoed, expected.as_bytes(), "connection {index}");
    }
    let per_connection = (held_kib.saturating_sub(before_kib) as f64) / CONNECTIONS as f64;
    eprintln!(
        "10000 connections: opened in {:.1} s, all echoed in {:.1} s; heap {before_kib} KiB idle -> {held_kib} KiB, {per_connection:.1} KiB per idle connection",
        opened_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(streams);
}

/// 40 000 SYNs from spoofed addresses that never answer, while real
/// clients keep connecting: every real client is served, none is refused.
/// The guest's SYN cache evicts the flood's half-open connections; before
/// it, half-open connections held the connection slots for the 10 s
/// handshake timeout and every new client was reset.
#[test]
fn a_spoofed_syn_flood_over_tap_does_not_deny_service() {
    if let Some(reason) = netns::unavailable() {
        return skip("a_spoofed_syn_flood_over_tap_does_not_deny_service", &reason);
    }
    let namespace = Namespace::create("tenfold-flood").expect("creating a network namespace");
    let mut guest = boot_with(boot_image(), namespace.machine(&MachineOptions::default()), &[]);
    guest.wait_for("echo server (event loop)", BOOT_TIMEOUT).unwrap();
    let addr = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    let target = std::net::SocketAddrV4::new(netns::GUEST_ADDRESS.into(), ECHO_PORT);
    let (report, served, slowest) = namespace.run_in(|| {
        std::thread::scope(|scope| {
            let flood = scope
                .spawn(|| tenfold_lab::synflood::flood(target, 40_000, 10_000, Duration::from_secs(30), 7));
            let mut served = 0;
            let mut slowest = Duration::ZERO;
            // Real clients, one after another, for as long as the flood lasts.
            while !flood.is_finished() || served < 5 {
                let started = Instant::now();
                let mut stream = echo_client::connect(addr);
                let message = format!("real client {served}");
                stream.write_all(message.as_bytes()).unwrap();
                let mut echoed = vec![0; message.len()];
                stream.read_exact(&mut echoed).unwrap_or_else(|error| panic!("client {served}: {error}"));
                assert_eq!(echoed, message.as_bytes());
                slowest = slowest.max(started.elapsed());
                served += 1;
                assert!(served < 100_000, "bounded");
            }
            (flood.join().unwrap(), served, slowest)
        })
    });
    let report = report.expect("flooding (needs root for a raw socket)");
    eprintln!(
        "SYN flood: {} spoofed SYNs in {:.1} s; {served} real clients served meanwhile, slowest in {} ms",
        report.sent,
        report.elapsed.as_secs_f64(),
        slowest.as_millis()
    );
    assert_eq!(report.sent, 40_000);
    // Without the SYN cache's eviction, half-open connections hold every
    // slot for the handshake timeout: 5 clients in 4 s, the slowest after
    // 11 s. With it, thousands; 20 is a margin no denial gets near.
    assert!(
        served >= 20,
        "only {served} real clients served during a {:.1} s flood",
        report.elapsed.as_secs_f64()
    );
    let counters = echo_counters(&mut guest);
    assert_eq!((counters.refused_at_cap, counters.refused_for_memory), (0, 0), "{counters:?}");
    assert_eq!(counters.accepted, served as u64, "only real clients become connections: {counters:?}");
}
