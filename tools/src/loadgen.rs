//! A host-side load generator for the echo server: request/response
//! ("ping-pong") rate and latency, and bulk throughput, every echoed byte
//! checked. Plain std threads and non-blocking sockets polled with
//! `poll(2)`; no async runtime.
//!
//! Model:
//! - Connections are opened one at a time, each confirmed by a 1-byte echo
//!   before the next ([`connect_paced`]): slirp's host-side listener has a
//!   backlog of 1 and the guest defers SYNs beyond its own backlog, so this
//!   is the pace the target can take. Setup is not part of the measurement.
//! - Ping-pong is closed-loop with one outstanding request per connection:
//!   every connection sends a fresh random message, and as soon as its echo
//!   is complete (and matches) the latency is recorded and the next request
//!   goes out on that connection. With N connections, N requests are in
//!   flight at once, so the rate reflects the server's concurrency. The
//!   connections are shared round-robin by a pool of at most
//!   [`MAX_THREADS`] poll loops. One: the host has 2 cores and QEMU needs
//!   both (the vCPU thread, and the main loop that moves frames between
//!   slirp or the tap and the card). A second load thread starved the main
//!   loop and, at 1000 connections, cut the measured rate about tenfold in
//!   most runs (frames trickled in ~1.4 per guest loop iteration instead of
//!   ~11, measured with the shell's `net`).
//! - Bulk streams pseudo-random data on every connection from one poll loop
//!   that writes and reads all of them, with at most a window of unechoed
//!   bytes per connection (so the drain at the end is short); the echo is
//!   compared with what was sent, byte by byte.
//!
//! Everything is bounded: setup by [`SETUP_TIMEOUT`], the measurement by the
//! caller's duration, the drain after it by [`DRAIN_TIMEOUT`], and a
//! connection that makes no progress for [`STALL_TIMEOUT`] is an error.
//! Targets are limited to loopback, or any address from a thread inside a
//! private network namespace (see [`crate::netns`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Bound on opening all connections of a run.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one connect or the 1-byte echo that confirms it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on collecting the outstanding echoes after the measured duration.
/// Longer than two of slirp's longest retransmission intervals (12 s), so a
/// segment lost to or from the guest is not mistaken for a lost echo.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A run in which no connection progresses for this long has failed.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most poll-loop threads a ping-pong run uses.
pub const MAX_THREADS: usize = 1;
/// Connections per ping-pong thread before a second one is used.
const CONNECTIONS_PER_THREAD: usize = 512;
/// Most connections one run opens.
pub const MAX_CONNECTIONS: usize = 4096;

/// What a ping-pong run measured.
#[derive(Clone, Debug, Default)]
pub struct PingPongResult {
    /// Connections opened.
    pub connections: usize,
    /// Requests whose echo came back complete and exact (drain included).
    pub requests: u64,
    /// Of `requests`, those completed within the measured duration.
    pub in_window: u64,
    /// The measured duration (requests go out only within it).
    pub window_seconds: f64,
    /// Failed requests or connections (resets, EOFs, timeouts, mismatches).
    pub errors: u64,
    /// Of `errors`, echoes that differed from what was sent.
    pub mismatches: u64,
    /// Of `errors`, requests still unanswered when the drain (or stall)
    /// bound ran out.
    pub timeouts: u64,
    /// Round-trip time of every completed request, in µs.
    pub latencies: Vec<f64>,
    /// From the first request to the last echo (drain included).
    pub seconds: f64,
    /// The first few errors, described.
    pub error_samples: Vec<String>,
}

impl PingPongResult {
    /// Requests completed per second of the measured duration (late echoes
    /// collected in the drain count in the latencies, not in the rate).
    pub fn rate(&self) -> f64 {
        if self.window_seconds > 0.0 { self.in_window as f64 / self.window_seconds } else { 0.0 }
    }

    /// Latency percentile (0..=100) in µs; NaN without samples.
    pub fn latency_percentile(&self, percent: f64) -> f64 {
        crate::scenario::percentile(&mut self.latencies.clone(), percent)
    }

    fn merge(&mut self, other: PingPongResult) {
        self.requests += other.requests;
        self.in_window += other.in_window;
        self.errors += other.errors;
        self.mismatches += other.mismatches;
        self.timeouts += other.timeouts;
        self.latencies.extend(other.latencies);
        self.seconds = self.seconds.max(other.seconds);
        for sample in other.error_samples {
            note(&mut self.error_samples, sample);
        }
    }
}

/// What a bulk run measured.
#[derive(Clone, Debug, Default)]
pub struct BulkResult {
    /// Connections opened.
    pub connections: usize,
    /// Bytes echoed back and verified (each also went out: the data crossed
    /// the server twice).
    pub bytes: u64,
    /// From the first write to the last echoed byte.
    pub seconds: f64,
    /// Failed connections (resets, EOFs, timeouts, mismatches).
    pub errors: u64,
    /// Of `errors`, echoes that differed from what was sent.
    pub mismatches: u64,
    /// Of `errors`, connections whose echo was still incomplete when the
    /// drain (or stall) bound ran out.
    pub timeouts: u64,
    /// The first few errors, described.
    pub error_samples: Vec<String>,
}

impl BulkResult {
    /// Echoed megabytes (10^6 bytes) per second.
    pub fn megabytes_per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.bytes as f64 / 1e6 / self.seconds } else { 0.0 }
    }
}

fn note(samples: &mut Vec<String>, error: String) {
    if samples.len() < 5 {
        samples.push(error);
    }
}

/// Refuses targets outside loopback unless the calling thread is inside a
/// private network namespace (one that [`crate::netns`] made).
pub fn check_target(addr: SocketAddr) -> Result<()> {
    if addr.ip().is_loopback() || crate::netns::in_private_namespace() {
        return Ok(());
    }
    bail!(
        "refusing to load {addr}: only loopback, or addresses reached from inside a private network namespace"
    )
}

/// Raises this process's open-file limit towards `wanted` (QEMU inherits
/// it: slirp holds a host socket per guest connection).
pub fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A small xorshift generator: payloads need to be unpredictable to the
/// server, not cryptographic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}

/// Connects to `addr` and waits for the echo of one byte, so the next
/// connection is not opened before this one was accepted. The stream is
/// blocking with `TCP_NODELAY`.
pub fn connect_paced(addr: SocketAddr) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    stream.write_all(b"!")?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    if byte != *b"!" {
        bail!("the connection's first echo was {:?}, not b'!'", byte[0] as char);
    }
    Ok(stream)
}

/// Opens `count` paced connections, all non-blocking, within
/// [`SETUP_TIMEOUT`].
pub fn open(addr: SocketAddr, count: usize) -> Result<Vec<TcpStream>> {
    check_target(addr)?;
    if count == 0 || count > MAX_CONNECTIONS {
        bail!("{count} connections: expected 1..={MAX_CONNECTIONS}");
    }
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    for index in 0..count {
        if started.elapsed() > SETUP_TIMEOUT {
            bail!("opened only {index} of {count} connections to {addr} within {SETUP_TIMEOUT:?}");
        }
        let stream = connect_paced(addr).with_context(|| format!("opening connection {index} to {addr}"))?;
        stream.set_nonblocking(true)?;
        streams.push(stream);
    }
    Ok(streams)
}

fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> Result<usize> {
    let millis = timeout.as_millis().clamp(1, 1000) as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd for the
    // length passed.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if ready < 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() == ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(error).context("poll");
    }
    Ok(ready as usize)
}

/// 64-byte (or `message_size`) request/response on `connections`
/// connections for `duration` (closed loop, one request in flight per
/// connection; see the module notes).
pub fn ping_pong(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    message_size: usize,
) -> Result<PingPongResult> {
    ping_pong_sampled(addr, connections, duration, message_size, &|| None).map(|(result, _)| result)
}

/// [`ping_pong`], also returning how much of `sample` (a cumulative CPU
/// time, e.g. the server process's) was used within the measured window.
pub fn ping_pong_sampled(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    message_size: usize,
    sample: &(dyn Fn() -> Option<Duration> + Sync),
) -> Result<(PingPongResult, Option<Duration>)> {
    if message_size == 0 || message_size > 64 * 1024 {
        bail!("message size {message_size}: expected 1..=65536 bytes");
    }
    let streams = open(addr, connections)?;
    let threads = connections.div_ceil(CONNECTIONS_PER_THREAD).clamp(1, MAX_THREADS);
    let mut groups: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for (index, stream) in streams.into_iter().enumerate() {
        groups[index % threads].push(stream);
    }
    let seed = seed();
    let start = Instant::now();
    let mut used = None;
    let results: Vec<Result<PingPongResult>> = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let before = sample()?;
            std::thread::sleep((start + duration).saturating_duration_since(Instant::now()));
            Some(sample()?.saturating_sub(before))
        });
        let handles: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(index, group)| {
                scope.spawn(move || {
                    ping_pong_loop(
                        group,
                        start,
                        duration,
                        message_size,
                        seed.wrapping_add(index as u64 * 7919),
                    )
                })
            })
            .collect();
        let results =
            handles.into_iter().map(|handle| handle.join().expect("ping-pong thread panicked")).collect();
        used = sampler.join().expect("sampler thread panicked");
        results
    });
    let mut total =
        PingPongResult { connections, window_seconds: duration.as_secs_f64(), ..PingPongResult::default() };
    for result in results {
        total.merge(result?);
    }
    Ok((total, used))
}

/// What went wrong with a request or connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The echo differed from what was sent.
    Mismatch,
    /// Unanswered when the time bound ran out.
    Timeout,
    /// Reset, EOF, or another socket error.
    Broken,
}

/// Counts a failed request and retires its connection.
fn fail(result: &mut PingPongResult, exchange: &mut Exchange, failure: Failure, what: String) {
    result.errors += 1;
    result.mismatches += u64::from(failure == Failure::Mismatch);
    result.timeouts += u64::from(failure == Failure::Timeout);
    note(&mut result.error_samples, what);
    exchange.busy = false;
}

struct Exchange {
    stream: TcpStream,
    rng: Rng,
    message: Vec<u8>,
    sent: usize,
    received: usize,
    started: Instant,
    /// A request is in flight (false once the connection failed: it is
    /// not used again).
    busy: bool,
}

impl Exchange {
    fn begin(&mut self) {
        self.rng.fill(&mut self.message);
        self.sent = 0;
        self.received = 0;
        self.started = Instant::now();
        self.busy = true;
    }
}

fn ping_pong_loop(
    streams: Vec<TcpStream>,
    start: Instant,
    duration: Duration,
    size: usize,
    seed: u64,
) -> Result<PingPongResult> {
    let mut result = PingPongResult { window_seconds: duration.as_secs_f64(), ..PingPongResult::default() };
    let mut fds: Vec<libc::pollfd> =
        streams.iter().map(|_| libc::pollfd { fd: -1, events: 0, revents: 0 }).collect();
    let mut exchanges: Vec<Exchange> = streams
        .into_iter()
        .enumerate()
        .map(|(index, stream)| Exchange {
            stream,
            rng: Rng::new(seed ^ (index as u64).wrapping_mul(0x100_0000_01B3)),
            message: vec![0; size],
            sent: 0,
            received: 0,
            started: start,
            busy: false,
        })
        .collect();
    let deadline = start + duration;
    let drain_deadline = deadline + DRAIN_TIMEOUT;
    let mut scratch = vec![0u8; size];
    let mut last_progress = Instant::now();
    for exchange in &mut exchanges {
        exchange.begin();
    }
    loop {
        let now = Instant::now();
        let outstanding = exchanges.iter().filter(|e| e.busy).count();
        if outstanding == 0 {
            break;
        }
        if now >= drain_deadline || now.duration_since(last_progress) >= STALL_TIMEOUT {
            let why = if now >= drain_deadline { "not echoed by the end of the drain" } else { "stalled" };
            for exchange in exchanges.iter_mut().filter(|e| e.busy) {
                let what = format!("request {why} ({} of {size} bytes back)", exchange.received);
                fail(&mut result, exchange, Failure::Timeout, what);
            }
            break;
        }
        for (fd, exchange) in fds.iter_mut().zip(&exchanges) {
            // Idle and failed connections are left out (a negative fd is
            // ignored), so a hang-up on one cannot make poll spin.
            fd.fd = if exchange.busy { exchange.stream.as_raw_fd() } else { -1 };
            fd.events = if exchange.sent < size { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
            fd.revents = 0;
        }
        if poll(&mut fds, drain_deadline.saturating_duration_since(now))? == 0 {
            continue;
        }
        for (fd, exchange) in fds.iter().zip(exchanges.iter_mut()) {
            if fd.revents == 0 || !exchange.busy {
                continue;
            }
            if exchange.sent < size {
                match exchange.stream.write(&exchange.message[exchange.sent..]) {
                    Ok(written) => exchange.sent += written,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(error) => {
                        fail(&mut result, exchange, Failure::Broken, format!("write: {error}"));
                        continue;
                    }
                }
            }
            if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                continue;
            }
            let want = size - exchange.received;
            match exchange.stream.read(&mut scratch[..want]) {
                Ok(0) => {
                    fail(&mut result, exchange, Failure::Broken, "EOF before the echo was complete".into())
                }
                Ok(count) => {
                    let expected = &exchange.message[exchange.received..exchange.received + count];
                    if scratch[..count] != *expected {
                        let at = exchange.received
                            + scratch.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(0);
                        fail(
                            &mut result,
                            exchange,
                            Failure::Mismatch,
                            format!("echo differs at byte {at} of a {size}-byte message"),
                        );
                        continue;
                    }
                    exchange.received += count;
                    last_progress = Instant::now();
                    if exchange.received == size {
                        if exchange.sent < size {
                            fail(
                                &mut result,
                                exchange,
                                Failure::Mismatch,
                                "echo arrived before the request was sent".into(),
                            );
                            continue;
                        }
                        result.requests += 1;
                        result.in_window += u64::from(Instant::now() <= deadline);
                        result.latencies.push(exchange.started.elapsed().as_secs_f64() * 1e6);
                        result.seconds = start.elapsed().as_secs_f64();
                        exchange.busy = false;
                        if Instant::now() < deadline {
                            exchange.begin();
                            // Usually goes out at once; else POLLOUT finishes it.
                            match exchange.stream.write(&exchange.message) {
                                Ok(written) => exchange.sent = written,
                                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                                Err(error) => {
                                    fail(&mut result, exchange, Failure::Broken, format!("write: {error}"))
                                }
                            }
                        }
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => fail(&mut result, exchange, Failure::Broken, format!("read: {error}")),
            }
        }
    }
    Ok(result)
}

/// Bytes of the repeating pseudo-random stream every bulk connection sends
/// from its own offset: a prime period, so it never lines up with segment
/// or buffer sizes (a dropped, duplicated or reordered segment shows).
const PATTERN_PERIOD: usize = 1_048_573;
/// Largest single write or read.
const CHUNK: usize = 64 * 1024;

/// Streams pseudo-random data on `connections` connections, up to
/// `bytes_per_connection` each or until `duration_limit` has passed, and
/// verifies every echoed byte.
pub fn bulk(
    addr: SocketAddr,
    connections: usize,
    bytes_per_connection: u64,
    duration_limit: Duration,
) -> Result<BulkResult> {
    let streams = open(addr, connections)?;
    // Unechoed bytes per connection: enough to keep the server busy, small
    // enough that what is in flight at the deadline drains quickly.
    let window = ((2 << 20) / connections as u64).clamp(32 * 1024, 512 * 1024);
    let mut rng = Rng::new(seed());
    let mut pattern = vec![0u8; PATTERN_PERIOD + CHUNK];
    rng.fill(&mut pattern[..PATTERN_PERIOD]);
    pattern.copy_within(..CHUNK, PATTERN_PERIOD);
    let slice = |offset: u64, length: usize| {
        let at = (offset % PATTERN_PERIOD as u64) as usize;
        &pattern[at..at + length]
    };
    struct Flow {
        stream: TcpStream,
        origin: u64,
        target: u64,
        sent: u64,
        received: u64,
        dead: bool,
    }
    let mut flows: Vec<Flow> = streams
        .into_iter()
        .map(|stream| Flow {
            stream,
            origin: rng.next_u64() % PATTERN_PERIOD as u64,
            target: bytes_per_connection,
            sent: 0,
            received: 0,
            dead: false,
        })
        .collect();
    let mut fds: Vec<libc::pollfd> =
        flows.iter().map(|_| libc::pollfd { fd: -1, events: 0, revents: 0 }).collect();
    let mut result = BulkResult { connections, ..BulkResult::default() };
    let mut buffer = vec![0u8; CHUNK];
    let start = Instant::now();
    let deadline = start + duration_limit;
    let drain_deadline = deadline + DRAIN_TIMEOUT;
    let mut last_progress = start;
    let mut stopped = false;
    loop {
        let now = Instant::now();
        if !stopped && now >= deadline {
            // Time is up: send nothing more, collect what is in flight.
            for flow in &mut flows {
                flow.target = flow.sent;
            }
            stopped = true;
        }
        let live = |f: &Flow| !f.dead && (f.sent < f.target || f.received < f.sent);
        if !flows.iter().any(live) {
            break;
        }
        if now >= drain_deadline || now.duration_since(last_progress) >= STALL_TIMEOUT {
            let why = if now >= drain_deadline { "not echoed by the end of the drain" } else { "stalled" };
            for flow in flows.iter_mut().filter(|f| live(f)) {
                result.errors += 1;
                result.timeouts += 1;
                note(
                    &mut result.error_samples,
                    format!("{why}: {} of {} bytes back", flow.received, flow.sent),
                );
                flow.dead = true;
            }
            break;
        }
        for (fd, flow) in fds.iter_mut().zip(&flows) {
            fd.fd = if live(flow) { flow.stream.as_raw_fd() } else { -1 };
            fd.events = libc::POLLIN;
            if flow.sent < flow.target && flow.sent - flow.received < window {
                fd.events |= libc::POLLOUT;
            }
            fd.revents = 0;
        }
        let wait = if stopped { drain_deadline } else { deadline }.saturating_duration_since(now);
        if poll(&mut fds, wait)? == 0 {
            continue;
        }
        for (fd, flow) in fds.iter().zip(flows.iter_mut()) {
            if fd.revents == 0 || flow.dead {
                continue;
            }
            if fd.revents & libc::POLLOUT != 0 {
                let room =
                    (flow.target - flow.sent).min(window - (flow.sent - flow.received)).min(CHUNK as u64);
                match flow.stream.write(slice(flow.origin + flow.sent, room as usize)) {
                    Ok(written) => flow.sent += written as u64,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(error) => {
                        result.errors += 1;
                        note(&mut result.error_samples, format!("write: {error}"));
                        flow.dead = true;
                        continue;
                    }
                }
            }
            if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                continue;
            }
            match flow.stream.read(&mut buffer) {
                Ok(0) => {
                    result.errors += 1;
                    note(
                        &mut result.error_samples,
                        format!("EOF after {} of {} bytes", flow.received, flow.sent),
                    );
                    flow.dead = true;
                }
                Ok(count) => {
                    let expected = slice(flow.origin + flow.received, count);
                    if flow.received + count as u64 > flow.sent || buffer[..count] != *expected {
                        let at = flow.received
                            + buffer.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(0) as u64;
                        result.errors += 1;
                        result.mismatches += 1;
                        note(&mut result.error_samples, format!("echo differs at byte {at}"));
                        flow.dead = true;
                        continue;
                    }
                    flow.received += count as u64;
                    result.bytes += count as u64;
                    last_progress = Instant::now();
                    result.seconds = start.elapsed().as_secs_f64();
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => {
                    result.errors += 1;
                    note(&mut result.error_samples, format!("read: {error}"));
                    flow.dead = true;
                }
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A loopback echo server, one thread per connection; `corrupt` flips
    /// one byte at a time of the stream (at byte 1000).
    fn echo_server(corrupt: bool) -> (SocketAddr, Arc<AtomicBool>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut stream) = stream else { break };
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 4096];
                    let mut total = 0usize;
                    while let Ok(count) = stream.read(&mut buffer) {
                        if count == 0 {
                            break;
                        }
                        if corrupt && total <= 1000 && 1000 < total + count {
                            buffer[1000 - total] ^= 0x40;
                        }
                        total += count;
                        if stream.write_all(&buffer[..count]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, stop)
    }

    #[test]
    fn ping_pong_counts_exact_round_trips() {
        let (addr, _stop) = echo_server(false);
        let result = ping_pong(addr, 8, Duration::from_millis(300), 64).unwrap();
        assert_eq!((result.errors, result.connections), (0, 8), "{:?}", result.error_samples);
        assert!(result.requests > 50, "{}", result.requests);
        assert_eq!(result.latencies.len() as u64, result.requests);
        assert!(result.latency_percentile(50.0) > 0.0 && result.rate() > 0.0);
    }

    #[test]
    fn bulk_verifies_every_byte() {
        let (addr, _stop) = echo_server(false);
        let result = bulk(addr, 3, 3_000_000, Duration::from_secs(20)).unwrap();
        assert_eq!(result.errors, 0, "{:?}", result.error_samples);
        assert_eq!(result.bytes, 9_000_000);
        assert!(result.megabytes_per_second() > 0.0);
    }

    #[test]
    fn a_changed_byte_is_a_mismatch() {
        let (addr, _stop) = echo_server(true);
        let result = bulk(addr, 2, 100_000, Duration::from_secs(20)).unwrap();
        assert_eq!((result.mismatches, result.errors), (2, 2), "{:?}", result.error_samples);
        // Ping-pong: the corrupted byte is in request 16 (64-byte messages, after the 1-byte probe).
        let result = ping_pong(addr, 2, Duration::from_millis(300), 64).unwrap();
        assert_eq!((result.mismatches, result.errors), (2, 2), "{:?}", result.error_samples);
    }

    #[test]
    fn only_loopback_from_the_host_namespace() {
        assert!(check_target("127.0.0.1:7".parse().unwrap()).is_ok());
        if !crate::netns::in_private_namespace() {
            assert!(check_target("10.0.2.15:7".parse().unwrap()).is_err());
            assert!(ping_pong("192.0.2.1:7".parse().unwrap(), 1, Duration::from_millis(1), 64).is_err());
        }
    }
}
