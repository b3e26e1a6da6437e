//! The echo server over a tap device in a private network namespace: the
//! host kernel's TCP talks straight to the guest's virtio-net card at
//! 10.0.2.15 (no slirp in between). Byte-exact echo on one connection
//! (256 KiB) and on 100 concurrent connections (4 KiB each). Needs root and
//! `ip`; without them the test says why and passes without running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tenfold_lab::netns::{self, Namespace};
use tenfold_lab::options::MachineOptions;
use tenfold_lab::qemu::ECHO_PORT;
use tenfold_tests::{BOOT_TIMEOUT, boot_image, boot_with, payload};

const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// One connection: a writer thread streams 256 KiB while this one reads.
fn one_large(addr: SocketAddr) {
    let mut stream = connect(addr);
    let data = payload(7, 256 * 1024);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || stream.write_all(&data).unwrap())
    };
    let mut echoed = vec![0; data.len()];
    stream.read_exact(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(echoed == data, "256 KiB echo differs");
}

/// 100 connections open at once (each confirmed by a 1-byte echo before the
/// next: the guest's listen backlog is finite), all written, then all read.
fn hundred_concurrent(addr: SocketAddr) {
    let mut streams: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = connect(addr);
            stream.write_all(b"!").unwrap();
            let mut byte = [0u8];
            stream.read_exact(&mut byte).unwrap();
            assert_eq!(&byte, b"!");
            stream
        })
        .collect();
    let payloads: Vec<Vec<u8>> = (0..streams.len()).map(|i| payload(1000 + i as u64, 4096)).collect();
    for (stream, data) in streams.iter_mut().zip(&payloads) {
        stream.write_all(data).unwrap();
    }
    for (index, (stream, data)) in streams.iter_mut().zip(&payloads).enumerate() {
        let mut echoed = vec![0; data.len()];
        stream.read_exact(&mut echoed).unwrap_or_else(|error| panic!("connection {index}: {error}"));
        assert!(echoed == *data, "connection {index}: echo differs");
    }
}

#[test]
fn echo_over_tap_in_a_namespace() {
    if let Some(reason) = netns::unavailable() {
        eprintln!("SKIPPED echo_over_tap_in_a_namespace: {reason}");
        return;
    }
    // Declared before the guest, so dropped after it (QEMU runs inside).
    let namespace = Namespace::create("tenfold").expect("creating a network namespace");
    let options = MachineOptions { network: namespace.tap_network(), ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &[]);
    guest.wait_for("echo server (event loop)", BOOT_TIMEOUT).unwrap();
    let addr = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    namespace.run_in(|| {
        one_large(addr);
        hundred_concurrent(addr);
    });
    guest.send("net\r").unwrap();
    let line = guest.wait_for_new("connections", Duration::from_secs(20)).unwrap();
    assert!(line.text.contains("accepted"), "{}", line.text);
}
