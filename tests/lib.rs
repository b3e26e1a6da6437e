//! Shared by the integration tests: the kernel under test and ways to boot
//! it. Plain `cargo test` builds the dev kernel from the first test that
//! needs it (installing the kernel's target and QEMU if they are missing);
//! `cargo lab test` builds it beforehand and passes it in
//! `TENFOLD_KERNEL_ELF`. Guests boot by PVH (QEMU `-kernel`) unless a test
//! builds a BIOS or UEFI image with [`build_image`].

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tenfold_lab::image::{self, BootImage, Firmware};
use tenfold_lab::options::MachineOptions;
use tenfold_lab::qemu::Guest;
use tenfold_lab::workspace::{self, Profile};

/// Deadline for a boot to reach the banner under TCG on a loaded 2-core host.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The unstripped dev kernel ELF.
pub fn kernel_elf() -> &'static PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| match std::env::var_os("TENFOLD_KERNEL_ELF") {
        Some(path) => PathBuf::from(path),
        None => workspace::build_kernel(Profile::Dev).expect("building the kernel"),
    })
}

/// The dev kernel, booted by PVH.
pub fn boot_image() -> &'static BootImage {
    static IMAGE: OnceLock<BootImage> = OnceLock::new();
    IMAGE.get_or_init(|| build_image(Firmware::Pvh))
}

/// The dev kernel's boot image for `firmware`, built once per test process:
/// rebuilding an image file while another test's QEMU reads it (with
/// `snapshot=on`, lazily) would hand that guest a torn disk.
pub fn build_image(firmware: Firmware) -> BootImage {
    static IMAGES: Mutex<Vec<BootImage>> = Mutex::new(Vec::new());
    let mut images = IMAGES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(image) = images.iter().find(|image| image.firmware == firmware) {
        return image.clone();
    }
    let image = image::build(kernel_elf(), firmware).expect("building the boot image");
    images.push(image.clone());
    image
}

/// Boots `image` under `options` plus the kernel parameters `params`.
pub fn boot_with(image: &BootImage, mut options: MachineOptions, params: &[&str]) -> Guest {
    for param in params {
        options = options.with_param(*param);
    }
    Guest::spawn(image, &options).expect("starting QEMU")
}

/// Deterministic pseudo-random bytes for echo payloads.
/// A guest at its shell prompt, serving echo on a free host port.
pub fn shell_guest() -> (Guest, u16) {
    let port = tenfold_lab::qemu::free_local_port().unwrap();
    let options = MachineOptions { port: Some(port), ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &[]);
    guest.wait_for("Tenfold shell: type `help`", BOOT_TIMEOUT).unwrap();
    (guest, port)
}

/// The echo server on `port` still answers, byte for byte.
pub fn assert_echoes(port: u16) {
    let mut stream = echo_client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(echo_client::round_trip(&mut stream, b"still serving"), b"still serving");
}

/// The shell still answers, no kernel fault or panic was reported, and no
/// task reported a forbidden access that succeeded.
pub fn assert_kernel_healthy(guest: &mut Guest) {
    guest.send("uptime\r").unwrap();
    guest.wait_for_new("context switches", Duration::from_secs(30)).unwrap();
    let console = guest.transcript();
    assert!(!console.contains("!!! FAULT") && !console.contains("!!! PANIC"), "kernel fault:\n{console}");
    assert!(!console.contains("NOT STOPPED"), "a forbidden access succeeded:\n{console}");
}

/// Frames and heap after a shell `repeat` are where they were before,
/// within what the rest of the kernel may take meanwhile (the scheduler's
/// sample buffers, a heap page): a leak of one frame, or 8 heap bytes, per
/// run is far outside it over the 100–1000 runs the tests make.
pub fn assert_repeat_back_to_baseline(line: &str) {
    // `(free frames change, heap change)`: the two parenthesised numbers.
    let deltas: Vec<i64> =
        line.split('(').skip(1).filter_map(|part| part.split(')').next()?.parse().ok()).collect();
    assert_eq!(deltas.len(), 2, "unparsable: {line}");
    let (frames, heap) = (deltas[0], deltas[1]);
    assert!(frames.abs() <= 2 && heap.abs() <= 1024, "frames or heap not back to baseline: {line}");
}

pub fn payload(seed: u64, length: usize) -> Vec<u8> {
    let mut bytes = vec![0; length];
    tenfold_lab::loadgen::Rng::new(seed).fill(&mut bytes);
    bytes
}

pub use tenfold_lab::loadgen::raise_fd_limit;

/// Echo clients shared by the user-net and tap tests.
pub mod echo_client {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use super::payload;

    const IO_TIMEOUT: Duration = Duration::from_secs(60);

    /// A blocking connection with generous timeouts and `TCP_NODELAY`.
    pub fn connect(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// A connection confirmed by a 1-byte echo before it is returned: the
    /// pace slirp's host listener (backlog 1) and the guest's backlog take.
    pub fn connect_paced(addr: SocketAddr) -> TcpStream {
        let mut stream = connect(addr);
        assert_eq!(round_trip(&mut stream, b"!"), b"!");
        stream
    }

    /// Writes `data` and reads as many bytes back.
    pub fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
        stream.write_all(data).unwrap();
        let mut echoed = vec![0; data.len()];
        stream.read_exact(&mut echoed).unwrap();
        echoed
    }

    /// One connection: a writer thread streams `size` bytes while this one reads.
    pub fn echo_large(addr: SocketAddr, seed: u64, size: usize) {
        let mut stream = connect(addr);
        let data = payload(seed, size);
        let writer = {
            let mut stream = stream.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || stream.write_all(&data).unwrap())
        };
        let mut echoed = vec![0; data.len()];
        stream.read_exact(&mut echoed).unwrap();
        writer.join().unwrap();
        assert!(echoed == data, "echo of {size} bytes differs");
    }

    /// `count` connections open at once, each sent `size` bytes, then all read.
    pub fn echo_concurrent(addr: SocketAddr, count: usize, size: usize) {
        let mut streams: Vec<TcpStream> = (0..count).map(|_| connect_paced(addr)).collect();
        let payloads: Vec<Vec<u8>> = (0..count).map(|i| payload(1000 + i as u64, size)).collect();
        for (stream, data) in streams.iter_mut().zip(&payloads) {
            stream.write_all(data).unwrap();
        }
        for (index, (stream, data)) in streams.iter_mut().zip(&payloads).enumerate() {
            let mut echoed = vec![0; data.len()];
            stream.read_exact(&mut echoed).unwrap_or_else(|error| panic!("connection {index}: {error}"));
            assert!(echoed == *data, "connection {index}: echo differs");
        }
    }
}

/// Boots the dev kernel by PVH with default machine options and `params`.
pub fn boot(params: &[&str]) -> Guest {
    boot_with(boot_image(), MachineOptions::default(), params)
}

/// Ends a test that cannot run here, on a line the test runner shows even
/// when it captures output: libtest captures `print!`/`eprint!`, not writes
/// to the stderr handle itself. With `TENFOLD_REQUIRE_ALL=1` (CI) a skip is a
/// failure instead, so a machine that lacks something cannot pass silently.
/// Callers return right after it.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    if std::env::var_os("TENFOLD_REQUIRE_ALL").is_some_and(|value| value == "1") {
        panic!("{test} cannot run here: {reason}; TENFOLD_REQUIRE_ALL=1 forbids skipping it");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {reason}");
}

/// The echo server's counters, as the shell's `net` command prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoCounters {
    pub open: u64,
    pub accepted: u64,
    pub refused_at_cap: u64,
    pub refused_for_memory: u64,
    pub syns_deferred: u64,
}

impl EchoCounters {
    /// Parses the `echo:` line of `net`, e.g. `echo:   3 connections open,
    /// 7 accepted, 1 refused at the cap, 0 refused for memory, 0 SYNs
    /// deferred (backlog full), …`.
    pub fn parse(line: &str) -> Option<Self> {
        let fields = line.split_once("echo:")?.1;
        let count = |label: &str| -> Option<u64> {
            let field = fields.split(',').map(str::trim).find(|field| field.ends_with(label))?;
            field.strip_suffix(label)?.trim().parse().ok()
        };
        Some(Self {
            open: count("connections open")?,
            accepted: count("accepted")?,
            refused_at_cap: count("refused at the cap")?,
            refused_for_memory: count("refused for memory")?,
            syns_deferred: count("SYNs deferred (backlog full)")?,
        })
    }
}

/// Asks the guest's shell for `net` and returns the echo server's counters.
pub fn echo_counters(guest: &mut Guest) -> EchoCounters {
    guest.send("net\r").unwrap();
    let line = guest.wait_for_new("echo:", Duration::from_secs(20)).unwrap();
    EchoCounters::parse(&line.text).unwrap_or_else(|| panic!("unparsable `net` echo line: {}", line.text))
}

/// The number right after `prefix` in `text`.
pub fn number_after(text: &str, prefix: &str) -> u64 {
    let rest = text.split(prefix).nth(1).unwrap_or_else(|| panic!("no `{prefix}` in `{text}`"));
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after `{prefix}` in `{text}`"))
}

/// Runs `program argument` from the guest's shell; returns its task id.
/// What the task prints counts as new even if it came before the shell's
/// `started` line ([`Guest::run_task`]).
pub fn run_task(guest: &mut Guest, program: &str, argument: &str) -> u64 {
    guest.run_task(program, argument).unwrap()
}

/// Runs `program serve` from the guest's shell; returns its task id and
/// the mailbox it serves on.
pub fn start_server(guest: &mut Guest, program: &str) -> (u64, u64) {
    let task = run_task(guest, program, "serve");
    let line =
        guest.wait_for_new(&format!("{program}: serving on mailbox"), Duration::from_secs(30)).unwrap();
    (task, number_after(&line.text, "mailbox"))
}

/// The state `ps` shows for thread `tid` (`ready`, `blocked`, …), or
/// `None` if `ps` does not list it.
pub fn thread_state(guest: &mut Guest, tid: u64) -> Option<String> {
    const ANSWER: Duration = Duration::from_secs(30);
    guest.send("ps\r").unwrap();
    guest.wait_for_new("TID", ANSWER).unwrap();
    // The table has ended once the next command's answer is out.
    guest.send("uptime\r").unwrap();
    guest.wait_for_new("context switches", ANSWER).unwrap();
    let transcript = guest.transcript();
    let table = transcript.rsplit("TID").next().unwrap_or_default();
    table.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == tid.to_string()).then(|| words.nth(1).map(str::to_string))?
    })
}

/// `(free frames, heap bytes in use)` from the shell's `mem`.
pub fn memory(guest: &mut Guest) -> (i64, i64) {
    guest.send("mem\r").unwrap();
    let heap = guest.wait_for_new("heap:", Duration::from_secs(30)).unwrap().text;
    let frames = guest.wait_for_new("frames:", Duration::from_secs(30)).unwrap().text;
    let number = |text: &str, after: &str| -> i64 {
        text.split(after).nth(1).and_then(|rest| rest.split_whitespace().next()?.parse().ok()).unwrap()
    };
    (number(&frames, "frames:"), number(&heap, "heap:") * 1024)
}

/// KiB of heap in use, from the shell's `mem`.
pub fn heap_in_use_kib(guest: &mut Guest) -> u64 {
    guest.send("mem\r").unwrap();
    let line = guest.wait_for_new("heap:", Duration::from_secs(20)).unwrap();
    let field = line.text.split_once("heap:").and_then(|(_, rest)| rest.split_whitespace().next());
    field.and_then(|kib| kib.parse().ok()).unwrap_or_else(|| panic!("unparsable `mem` line: {}", line.text))
}

#[cfg(test)]
mod tests {
    use super::EchoCounters;

    #[test]
    fn echo_counters_parse_the_net_line_and_reject_others() {
        let line = "echo:   3 connections open, 1007 accepted, 1 refused at the cap, 5 refused for memory, \
                    2 SYNs deferred (backlog full), 4096 bytes buffered in sockets";
        let counters = EchoCounters {
            open: 3,
            accepted: 1007,
            refused_at_cap: 1,
            refused_for_memory: 5,
            syns_deferred: 2,
        };
        assert_eq!(EchoCounters::parse(line), Some(counters));
        assert_eq!(EchoCounters::parse("echo:   3 connections open, many accepted"), None);
        assert_eq!(EchoCounters::parse("nic:    rx 3 frames"), None);
    }
}
