//! The echo server (RFC 862, TCP port 7) in the event-loop model: one task
//! accepts, one task per connection echoes. A connection's task owns no
//! buffer: each time its socket is ready it moves what was received straight
//! into the socket's send buffer (through a chunk on the network thread's
//! stack), never more than the send buffer has room for. A client that stops
//! reading therefore stops the server reading from it — its send buffer
//! fills, the receive buffer fills, and TCP's window closes on the client:
//! memory stays bounded by the two socket buffers however much the client
//! sends. When the client shuts down its write side, the server echoes what
//! is left and then closes.

use alloc::boxed::Box;
use alloc::vec;
use core::future::Future;
use core::pin::Pin;

use crate::chaos::{Marker, MarkerScanner};
use crate::tcp::{StreamError, TcpListener, TcpStream};

/// The echo port.
pub const ECHO_PORT: u16 = 7;

/// How one connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoOutcome {
    pub bytes: u64,
    pub error: Option<StreamError>,
}

/// The most bytes one echo step moves; it lives on the polling thread's
/// stack for the step only.
pub const ECHO_CHUNK: usize = 4096;

/// What the server does when a connection carries one of the lab's
/// markers (`chaos=on`): the kernel's function, called on the event loop's
/// thread from inside this connection's task — so what it does (block,
/// spin) it does to the whole loop, as a handler would in Node.
pub type OnMarker = fn(Marker);

/// Echoes one connection, moving at most `chunk` bytes per step from the
/// socket's receive buffer to its send buffer (see the module docs).
pub async fn echo_connection(
    mut stream: TcpStream,
    chunk: usize,
    on_marker: Option<OnMarker>,
) -> EchoOutcome {
    let mut bytes = 0u64;
    let mut scanner = MarkerScanner::default();
    loop {
        let mut marker = None;
        let step = core::future::poll_fn(|cx| {
            let mut scratch = [0u8; ECHO_CHUNK];
            let size = chunk.clamp(1, ECHO_CHUNK);
            stream.poll_echo(cx, &mut scratch[..size], |seen| {
                if on_marker.is_some() {
                    marker = marker.or(scanner.feed(seen));
                }
            })
        })
        .await;
        if let (Some(on_marker), Some(marker)) = (on_marker, marker) {
            on_marker(marker);
        }
        match step {
            Ok(0) => break,
            Ok(count) => bytes += count as u64,
            Err(error) => return EchoOutcome { bytes, error: Some(error) },
        }
    }
    // Half-close honoured: everything received was echoed; now our FIN.
    stream.shutdown_write();
    EchoOutcome { bytes, error: None }
}

/// The echo **without** the bound, for the backpressure demo only: it reads
/// whatever arrives into a buffer that grows without limit and writes it
/// back as the client allows. A client that never reads makes this task's
/// memory grow as fast as the client can send — the failure mode the
/// bounded [`echo_connection`] prevents.
pub async fn echo_connection_unbounded(mut stream: TcpStream) -> EchoOutcome {
    let mut pending: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    let mut chunk = vec![0u8; 4096];
    let mut bytes = 0u64;
    let mut finished = false;
    core::future::poll_fn(|cx| {
        loop {
            let mut progress = false;
            while !finished {
                match stream.poll_read(cx, &mut chunk) {
                    core::task::Poll::Ready(Ok(0)) => finished = true,
                    core::task::Poll::Ready(Ok(count)) => {
                        pending.extend_from_slice(&chunk[..count]);
                        progress = true;
                    }
                    core::task::Poll::Ready(Err(error)) => {
                        return core::task::Poll::Ready(EchoOutcome { bytes, error: Some(error) });
                    }
                    core::task::Poll::Pending => break,
                }
            }
            if !pending.is_empty() {
                match stream.poll_write(cx, &pending) {
                    core::task::Poll::Ready(Ok(count)) => {
                        pending.drain(..count);
                        bytes += count as u64;
                        progress = true;
                    }
                    core::task::Poll::Ready(Err(error)) => {
                        return core::task::Poll::Ready(EchoOutcome { bytes, error: Some(error) });
                    }
                    core::task::Poll::Pending => {}
                }
            }
            if finished && pending.is_empty() {
                stream.shutdown_write();
                return core::task::Poll::Ready(EchoOutcome { bytes, error: None });
            }
            if !progress {
                return core::task::Poll::Pending;
            }
        }
    })
    .await
}

/// A task to run: the accept loop hands each connection's task to `spawn`,
/// which returns `false` if it cannot take it (the connection is then
/// closed at once).
pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// How each connection is echoed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoMode {
    /// In place, bounded by the socket buffers, moving at most `buffer`
    /// bytes per step (the server).
    Bounded { buffer: usize },
    /// No bound (the backpressure demo's counter-example).
    Unbounded,
}

/// Accepts forever, one echo task per connection.
pub async fn serve(
    listener: TcpListener,
    mode: EchoMode,
    on_marker: Option<OnMarker>,
    mut spawn: impl FnMut(Task) -> bool,
) {
    loop {
        let stream = listener.accept().await;
        let task: Task = Box::pin(async move {
            let outcome = match mode {
                EchoMode::Bounded { buffer } => echo_connection(stream, buffer, on_marker).await,
                EchoMode::Unbounded => echo_connection_unbounded(stream).await,
            };
            if let Some(error) = outcome.error {
                log::debug!("echo: connection ended after {} bytes: {error:?}", outcome.bytes);
            }
        });
        if !spawn(task) {
            log::warn!("echo: no room for another task; connection closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::TcpTuning;
    use crate::tcp::TcpListener;
    use crate::testing::{Pair, payload};
    use alloc::vec::Vec;
    use smoltcp::socket::tcp::State;

    const BUFFER: usize = 2048;

    fn server(pair: &mut Pair, backlog: usize, max: usize) -> TcpListener {
        let listener = TcpListener::bind(&pair.server, ECHO_PORT, backlog, max).unwrap();
        let spawn = pair.spawner();
        pair.spawn(Box::pin(serve(listener.clone(), EchoMode::Bounded { buffer: BUFFER }, None, spawn)));
        listener
    }

    /// Connects from each port in turn, one new connection per step (as
    /// clients arriving over time do; a burst beyond the free listening
    /// sockets is refused, see `listener`).
    fn connect_paced(pair: &mut Pair, ports: &[u16]) -> Vec<crate::sockets::SocketHandle> {
        ports
            .iter()
            .map(|&port| {
                let socket = pair.connect(ECHO_PORT, port);
                pair.step();
                pair.step();
                socket
            })
            .collect()
    }

    /// Sends a small `data` on an established client `socket` and runs up to
    /// `steps` steps until exactly it has come back.
    fn round_trip(pair: &mut Pair, socket: crate::sockets::SocketHandle, data: &[u8], steps: usize) -> bool {
        pair.client_socket(socket, |s| s.send_slice(data).unwrap());
        let mut echoed = Vec::new();
        pair.run_until(steps, |pair| {
            pair.client_socket(socket, |s| {
                while s.can_recv() {
                    s.recv(|bytes| (bytes.len(), echoed.extend_from_slice(bytes))).unwrap();
                }
            });
            echoed.len() >= data.len()
        }) && echoed == data
    }

    /// Sends `data` from a client and collects the echo.
    fn exchange(pair: &mut Pair, handles: &[u16], data: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let sockets = connect_paced(pair, handles);
        let mut sent = alloc::vec![0usize; sockets.len()];
        let mut received: Vec<Vec<u8>> = alloc::vec![Vec::new(); sockets.len()];
        let done = pair.run_until(200_000, |pair| {
            for (index, &socket) in sockets.iter().enumerate() {
                pair.client_socket(socket, |socket| {
                    if socket.can_send() && sent[index] < data[index].len() {
                        sent[index] += socket.send_slice(&data[index][sent[index]..]).unwrap();
                    }
                    while socket.can_recv() {
                        socket.recv(|bytes| (bytes.len(), received[index].extend_from_slice(bytes))).unwrap();
                    }
                });
            }
            received.iter().zip(data).all(|(got, want)| got.len() >= want.len())
        });
        assert!(
            done,
            "echo did not complete: got {:?} of {:?}; client states {:?}, server port {:?}, {:?}",
            received.iter().map(Vec::len).collect::<Vec<_>>(),
            data.iter().map(Vec::len).collect::<Vec<_>>(),
            sockets.iter().map(|&s| pair.client_socket(s, |s| s.state())).collect::<Vec<_>>(),
            pair.server.borrow().port_counts(ECHO_PORT),
            pair.server.borrow().admission_stats(ECHO_PORT)
        );
        received
    }

    #[test]
    fn a_marker_calls_the_servers_handler_once_and_the_echo_stays_exact() {
        use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        static SPINS: AtomicUsize = AtomicUsize::new(0);
        static OTHERS: AtomicUsize = AtomicUsize::new(0);
        fn on_marker(marker: Marker) {
            match marker {
                Marker::Spin => SPINS.fetch_add(1, Relaxed),
                _ => OTHERS.fetch_add(1, Relaxed),
            };
        }
        let mut pair = Pair::new(TcpTuning::default());
        let listener = TcpListener::bind(&pair.server, ECHO_PORT, 4, 16).unwrap();
        let spawn = pair.spawner();
        pair.spawn(Box::pin(serve(listener, EchoMode::Bounded { buffer: BUFFER }, Some(on_marker), spawn)));
        let data = [payload(1, 5000), b"..TENFOLD-SPIN..".to_vec(), payload(2, 5000)].concat();
        let echoed = exchange(&mut pair, &[50_900], core::slice::from_ref(&data));
        assert!(echoed[0] == data, "the echo differs");
        assert_eq!((SPINS.load(Relaxed), OTHERS.load(Relaxed)), (1, 0));
    }

    /// The reactor wakes only the task whose socket is ready: with 100 idle
    /// connections open, one request costs a handful of task polls.
    #[test]
    fn one_request_among_idle_connections_wakes_only_its_task() {
        let mut pair = Pair::new(TcpTuning::default());
        let _listener = server(&mut pair, 8, 200);
        let ports: Vec<u16> = (0..100).map(|i| 50_000 + i).collect();
        let sockets = connect_paced(&mut pair, &ports);
        let established = pair.run_until(1000, |pair| {
            sockets.iter().all(|&s| pair.client.borrow_mut().tcp(s).state() == State::Established)
        });
        assert!(established, "not all 100 idle connections were established");
        for _ in 0..50 {
            pair.step(); // let the handshakes' last wake-ups settle
        }
        let idle_polls = pair.polls;
        for _ in 0..50 {
            pair.step();
        }
        assert_eq!(pair.polls, idle_polls, "idle connections cost no task polls");
        let before = pair.server.borrow().stats;
        assert!(round_trip(&mut pair, sockets[42], b"ping", 1000));
        let polls = pair.polls - idle_polls;
        assert!(polls <= 4, "one request took {polls} task polls among 100 connections");
        let (examined, _) = pair.server.borrow().readiness_stats();
        assert!(examined <= 2, "the last poll examined {examined} sockets");
        // The stack's work is O(1) too: each frame reaches one socket, and
        // egress visits only the socket that has something to send.
        let after = pair.server.borrow().stats;
        let frames = after.frames - before.frames;
        let visits = after.egress_visits - before.egress_visits;
        assert!((1..=3).contains(&frames), "{frames} frames");
        assert!(visits <= 2 * frames + 2, "{visits} egress visits for {frames} frames among 100 sockets");
    }

    static HEADROOM: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(usize::MAX);

    /// With memory short, the sockets already armed (their buffers are
    /// allocated) still take connections, no new ones are armed, and the
    /// next connection is refused with a reset while the established one is
    /// served; with memory back, connections are accepted again.
    #[test]
    fn the_memory_budget_refuses_new_connections_and_serves_the_rest() {
        use core::sync::atomic::Ordering::Relaxed;
        let mut pair = Pair::new(TcpTuning::default());
        let listener = server(&mut pair, 4, 64);
        listener.set_budget(crate::listener::MemoryBudget {
            headroom: || HEADROOM.load(Relaxed),
            per_connection: 1000,
            reserve: 1000,
        });
        let first = alloc::vec![payload(1, 5000)];
        assert_eq!(exchange(&mut pair, &[50_600], &first), first);
        HEADROOM.store(1999, Relaxed);
        let armed: Vec<u16> = (0..4).map(|i| 50_610 + i).collect();
        let sockets = connect_paced(&mut pair, &armed);
        let refused = connect_paced(&mut pair, &[50_620])[0];
        let settled = pair.run_until(20_000, |pair| {
            let mut client = pair.client.borrow_mut();
            sockets.iter().all(|&s| client.tcp(s).state() == State::Established)
                && client.tcp(refused).state() == State::Closed
        });
        assert!(settled, "the armed sockets took their connections and the next one was refused");
        assert!(listener.stats().memory_limited > 0);
        // An established connection is still served.
        assert!(round_trip(&mut pair, sockets[0], b"still here", 20_000));
        // Memory back: the driver's next SYN gate re-arms the listener.
        HEADROOM.store(usize::MAX, Relaxed);
        listener.refresh(&mut pair.server.borrow_mut());
        let later = alloc::vec![payload(3, 4000)];
        assert_eq!(exchange(&mut pair, &[50_640], &later), later, "admission resumes with memory");
        assert_eq!(listener.stats().accepted, 6);
    }

    #[test]
    fn one_connection_is_echoed_byte_exact() {
        let mut pair = Pair::new(TcpTuning::default());
        let _listener = server(&mut pair, 4, 16);
        let data = alloc::vec![payload(1, 200_000)];
        assert_eq!(exchange(&mut pair, &[50_000], &data), data);
    }

    #[test]
    fn many_concurrent_connections_are_echoed() {
        let mut pair = Pair::new(TcpTuning::default());
        let listener = server(&mut pair, 8, 64);
        let ports: Vec<u16> = (0..40).map(|i| 50_000 + i).collect();
        let data: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 3000 + 97 * i as usize)).collect();
        assert_eq!(exchange(&mut pair, &ports, &data), data);
        assert_eq!(listener.stats().accepted, 40);
    }

    #[test]
    fn half_close_echoes_the_rest_then_closes() {
        let mut pair = Pair::new(TcpTuning::default());
        let listener = server(&mut pair, 4, 16);
        let socket = pair.connect(ECHO_PORT, 50_100);
        let data = payload(7, 30_000);
        let mut sent = 0;
        let mut received = Vec::new();
        let closed = pair.run_until(100_000, |pair| {
            pair.client_socket(socket, |socket| {
                if socket.can_send() && sent < data.len() {
                    sent += socket.send_slice(&data[sent..]).unwrap();
                    if sent == data.len() {
                        socket.close(); // our FIN: no more data from us
                    }
                }
                while socket.can_recv() {
                    socket.recv(|bytes| (bytes.len(), received.extend_from_slice(bytes))).unwrap();
                }
                !socket.may_recv() && received.len() == data.len()
            })
        });
        assert!(closed, "server did not finish echoing and close: {} of {}", received.len(), data.len());
        assert_eq!(received, data);
        assert!(pair.run_until(10_000, |_| listener.active() == 0), "the server released the connection");
    }

    #[test]
    fn a_client_that_stops_reading_is_throttled_and_memory_stays_bounded() {
        let tuning = TcpTuning::default();
        let mut pair = Pair::new(tuning);
        let _listener = server(&mut pair, 4, 16);
        let socket = pair.connect(ECHO_PORT, 50_200);
        let chunk = payload(3, 8192);
        let mut pushed = 0usize;
        let mut peak_buffered = 0;
        for _ in 0..20_000 {
            pair.client_socket(socket, |socket| {
                if socket.can_send() {
                    pushed += socket.send_slice(&chunk).unwrap();
                }
            });
            pair.step();
            peak_buffered = peak_buffered.max(pair.server.borrow().buffered_bytes());
        }
        let bound = tuning.rx_buffer + tuning.tx_buffer;
        assert!(peak_buffered <= bound, "server buffered {peak_buffered} bytes, bound {bound}");
        // The client could not push more than the windows and buffers hold.
        let client_buffers = 64 * 1024;
        assert!(
            pushed <= bound + BUFFER + 2 * client_buffers,
            "client pushed {pushed} bytes into a stalled server"
        );
        let stalled = pair.client_socket(socket, |socket| !socket.can_send());
        assert!(stalled, "the client's send buffer should be full: the window closed");
        // Reading again drains everything.
        let mut received = 0;
        let drained = pair.run_until(200_000, |pair| {
            pair.client_socket(socket, |socket| {
                while socket.can_recv() {
                    received += socket.recv(|bytes| (bytes.len(), bytes.len())).unwrap();
                }
            });
            received == pushed
        });
        assert!(drained, "received {received} of {pushed}");
    }

    #[test]
    fn without_the_bound_memory_grows_with_what_the_client_sends() {
        let mut pair = Pair::new(TcpTuning::default());
        let listener = TcpListener::bind(&pair.server, ECHO_PORT, 4, 16).unwrap();
        let spawn = pair.spawner();
        pair.spawn(Box::pin(serve(listener, EchoMode::Unbounded, None, spawn)));
        let socket = pair.connect(ECHO_PORT, 50_500);
        let chunk = payload(4, 8192);
        let mut pushed = 0usize;
        for _ in 0..5000 {
            pair.client_socket(socket, |socket| {
                if socket.can_send() {
                    pushed += socket.send_slice(&chunk).unwrap();
                }
            });
            pair.step();
        }
        // The client never read, yet it kept sending: the server took it all
        // into memory (the socket buffers alone would have stopped it at 32 KiB).
        let bound = TcpTuning::default().rx_buffer + TcpTuning::default().tx_buffer + 64 * 1024;
        assert!(pushed > 4 * bound, "the unbounded echo took only {pushed} bytes");
    }

    /// A SYN from `source` (an address that will never answer) to the
    /// server's echo port.
    fn spoofed_syn(source: smoltcp::wire::Ipv4Address, port: u16) -> Vec<u8> {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{
            EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet,
            Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
        };
        let tcp = TcpRepr {
            src_port: port,
            dst_port: ECHO_PORT,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(i32::from(port) * 7919),
            ack_number: None,
            window_len: 64_240,
            window_scale: None,
            max_seg_size: Some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let server = Ipv4Address::new(10, 0, 2, 15);
        let ip = Ipv4Repr {
            src_addr: source,
            dst_addr: server,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = alloc::vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
        let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
        ethernet.set_dst_addr(EthernetAddress([0x02, 0, 0, 0, 0, 1]));
        ethernet.set_src_addr(EthernetAddress([0x02, 0, 0, 0, 0, 0x99]));
        ethernet.set_ethertype(EthernetProtocol::Ipv4);
        let checksums = ChecksumCapabilities::default();
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..]), &checksums);
        let (src, dst) = (IpAddress::Ipv4(source), IpAddress::Ipv4(server));
        tcp.emit(&mut TcpPacket::new_unchecked(&mut frame[34..]), &src, &dst, &checksums);
        frame
    }

    /// A flood of SYNs from addresses that never answer fills the SYN cache
    /// and then only evicts its own entries: it holds no connection slot,
    /// and clients arriving during the flood connect and are echoed.
    #[test]
    fn a_spoofed_syn_flood_does_not_lock_out_real_clients() {
        let mut pair = Pair::new(TcpTuning::default());
        let listener = server(&mut pair, 4, 64);
        let mut echoed = 0;
        for round in 0..20u16 {
            // 100 spoofed SYNs per round, 2000 in all: far beyond the cap of
            // 64, and beyond the 256 half-open connections kept.
            for index in 0..100u16 {
                let n = round * 100 + index;
                let source = smoltcp::wire::Ipv4Address::new(10, 0, 2, 100 + (n % 100) as u8);
                pair.server.borrow_mut().device.push_received(&spoofed_syn(source, 1024 + n));
                if index % 25 == 0 {
                    pair.step();
                }
            }
            let data = alloc::vec![payload(u64::from(round), 300)];
            assert_eq!(
                exchange(&mut pair, &[51_000 + round], &data),
                data,
                "round {round}: a real client lost"
            );
            echoed += 1;
        }
        assert_eq!(echoed, 20);
        // Simulated time, 1 ms per step: no client needed to retransmit its
        // SYN (the first retransmission comes after a second).
        assert!(pair.now < 1000, "the 20 clients took {} simulated ms", pair.now);
        let server = pair.server.borrow();
        let counts = server.port_counts(ECHO_PORT);
        assert!(counts.half_open <= crate::listener::HALF_OPEN_LIMIT, "{counts:?}");
        assert!(server.admission_stats(ECHO_PORT).evicted > 1000, "{:?}", server.admission_stats(ECHO_PORT));
        assert!(
            listener.stats().accepted == 20,
            "only the real clients were accepted: {:?}",
            listener.stats()
        );
        assert!(
            server.socket_counts().0 <= crate::listener::HALF_OPEN_LIMIT + 64 + 8,
            "{:?}",
            server.socket_counts()
        );
    }

    /// A handshake whose last ACK never comes holds no connection slot, and
    /// its socket listens again after the handshake timeout.
    #[test]
    fn a_handshake_that_never_completes_holds_no_slot() {
        let mut pair = Pair::new(TcpTuning::default());
        let listener = server(&mut pair, 2, 2);
        let source = smoltcp::wire::Ipv4Address::new(10, 0, 2, 77);
        pair.server.borrow_mut().device.push_received(&spoofed_syn(source, 4000));
        assert!(pair.run_until(100, |pair| pair.server.borrow().port_counts(ECHO_PORT).half_open == 1));
        assert_eq!(listener.active(), 0, "a half-open connection is not a connection");
        let relistened =
            pair.run_until(30_000, |pair| pair.server.borrow().port_counts(ECHO_PORT).half_open == 0);
        assert!(relistened, "the half-open socket never listened again");
        assert!(pair.now < 20_000, "freed only after {} ms", pair.now);
        let data = alloc::vec![payload(13, 1000), payload(14, 1000)];
        assert_eq!(exchange(&mut pair, &[50_701, 50_702], &data), data, "both slots serve");
    }

    #[test]
    fn garbage_frames_are_survived_and_service_continues() {
        use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol, Ipv4Address, Ipv4Packet};
        let mut pair = Pair::new(TcpTuning::default());
        let _listener = server(&mut pair, 4, 16);
        let noise = payload(77, 2_000_000);
        let mut offset = 0;
        for round in 0..4000usize {
            let length = 14 + (noise[offset] as usize * 7 + round) % 1500;
            let mut frame = noise[offset..offset + length].to_vec();
            offset = (offset + length) % (noise.len() - 2000);
            // Half of them look like IPv4 to the server, with random headers
            // and payloads: truncated, bad checksums, bogus lengths, TCP junk.
            if round % 2 == 0 {
                let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
                ethernet.set_dst_addr(EthernetAddress([0x02, 0, 0, 0, 0, 1]));
                ethernet.set_ethertype(EthernetProtocol::Ipv4);
                if round % 4 == 0 && length > 14 + 20 {
                    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
                    ip.set_version(4);
                    ip.set_header_len(20);
                    ip.set_dst_addr(Ipv4Address::new(10, 0, 2, 15));
                    ip.set_next_header(smoltcp::wire::IpProtocol::Tcp);
                    ip.fill_checksum();
                }
            }
            pair.server.borrow_mut().device.push_received(&frame);
            if round % 16 == 0 {
                pair.step();
            }
        }
        let data = alloc::vec![payload(12, 20_000)];
        assert_eq!(exchange(&mut pair, &[50_600], &data), data, "the server stopped serving after garbage");
    }

    #[test]
    fn a_reset_mid_stream_frees_the_connection() {
        let mut pair = Pair::new(TcpTuning::default());
        let listener = server(&mut pair, 4, 16);
        let socket = pair.connect(ECHO_PORT, 50_300);
        let data = payload(9, 50_000);
        let established =
            pair.run_until(1000, |pair| pair.client_socket(socket, |s| s.state() == State::Established));
        assert!(established, "the connection to reset was never established");
        pair.client_socket(socket, |socket| socket.send_slice(&data).unwrap());
        for _ in 0..5 {
            pair.step();
        }
        assert_eq!(listener.active(), 1, "the connection holds a slot before the reset");
        pair.client_socket(socket, |socket| socket.abort());
        assert!(pair.run_until(10_000, |_| listener.active() == 0), "connection not released after RST");
        // And the server still serves.
        let data = alloc::vec![payload(10, 5000)];
        assert_eq!(exchange(&mut pair, &[50_301], &data), data);
    }

    #[test]
    fn beyond_the_cap_connections_are_refused_and_the_others_keep_working() {
        let mut pair = Pair::new(TcpTuning::default());
        let listener = server(&mut pair, 2, 3);
        let kept = connect_paced(&mut pair, &[50_400, 50_401, 50_402]);
        assert!(pair.run_until(2000, |pair| {
            kept.iter().all(|&s| pair.client_socket(s, |s| s.state() == State::Established))
        }));
        assert!(pair.run_until(2000, |_| listener.active() == 3));
        let refused = pair.connect(ECHO_PORT, 50_450);
        let was_refused =
            pair.run_until(2000, |pair| pair.client_socket(refused, |s| s.state() == State::Closed));
        assert!(was_refused, "a connection beyond the cap was not refused");
        // The three established connections still echo.
        let message = b"still here";
        for &socket in &kept {
            pair.client_socket(socket, |s| s.send_slice(message).unwrap());
        }
        let mut got = alloc::vec![0usize; 3];
        assert!(pair.run_until(5000, |pair| {
            for (index, &socket) in kept.iter().enumerate() {
                pair.client_socket(socket, |s| {
                    while s.can_recv() {
                        got[index] += s.recv(|b| (b.len(), b.len())).unwrap();
                    }
                });
            }
            got.iter().all(|&n| n == message.len())
        }));
        // Closing one frees a slot for a newcomer once the close completes.
        pair.client_socket(kept[0], |s| s.close());
        assert!(pair.run_until(5000, |pair| {
            listener.active() == 2 && pair.server.borrow().port_counts(ECHO_PORT).closing == 0
        }));
        let newcomer = pair.connect(ECHO_PORT, 50_460);
        assert!(
            pair.run_until(5000, |pair| pair.client_socket(newcomer, |s| s.state() == State::Established))
        );
    }
}
