//! `cargo lab boot-time`: how long guests take from QEMU's start to their
//! banner and to the first TCP echo, measured the same way for every guest
//! (Tenfold's images, the Linux reference guest), side by side.
//!
//! Each boot gets a fresh network namespace with a tap ([`Namespace`]): the
//! guest's card is on the tap, and a thread inside the namespace connects
//! to 10.0.2.15:7 every few milliseconds until one byte comes back. A
//! refused or unanswered attempt is retried; every wait is bounded. The
//! namespace's ARP retry interval is cut from 1 s to 10 ms first, or the
//! host would ask for the guest's MAC once a second and the measurement
//! would round up to that.
//!
//! Runs are interleaved (run 1 of every target, then run 2, …), so a busy
//! spell on the host falls on all targets alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::image::BootImage;
use crate::linux_guest::{self, LinuxGuest};
use crate::netns::{self, Namespace};
use crate::options::MachineOptions;
use crate::progress::Progress;
use crate::qemu::{ECHO_PORT, Guest};

/// Bound on one boot: QEMU start → banner and → first echo.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The banner Tenfold prints first.
pub const TENFOLD_BANNER: &str = "Tenfold";
/// Bound on one connection attempt (a SYN sent while the guest's card was
/// not yet up is lost; a fresh attempt sends a fresh one).
const CONNECT_ATTEMPT: Duration = Duration::from_millis(25);
/// Pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// Bound on the echo once connected.
const ECHO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most connection attempts in one boot (besides the time bound).
const MAX_ATTEMPTS: u32 = 20_000;
const PROBE: &[u8] = b"?";
const NAMESPACE_PREFIX: &str = "tenfold-boot";
/// The namespace's ARP retry interval while the guest is not answering.
const NEIGHBOUR_RETRY_MS: &str = "10";

/// Starts a guest with its card on the namespace's tap.
pub type SpawnOnTap = Box<dyn Fn(&Namespace) -> Result<Guest>>;

/// A guest to time: how to start it on a namespace's tap, and the console
/// line that is its banner.
pub struct BootTarget {
    pub label: String,
    pub banner: String,
    pub spawn: SpawnOnTap,
}

impl BootTarget {
    /// Tenfold from `boot` on the machine `options` describe (its network
    /// replaced by the namespace's tap).
    pub fn tenfold(label: &str, boot: BootImage, options: MachineOptions) -> BootTarget {
        BootTarget {
            label: label.into(),
            banner: TENFOLD_BANNER.into(),
            spawn: Box::new(move |namespace| {
                let options = namespace.machine(&options);
                Guest::spawn(&boot, &options)
            }),
        }
    }

    /// The Linux reference guest on the machine `options` describe.
    pub fn linux(guest: LinuxGuest, options: MachineOptions) -> BootTarget {
        BootTarget {
            label: linux_guest::LABEL.into(),
            banner: linux_guest::READY_MARKER.into(),
            spawn: Box::new(move |namespace| {
                let options = namespace.machine(&options);
                guest.spawn(&options)
            }),
        }
    }
}

/// One boot's times since QEMU was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootSample {
    pub banner: Duration,
    pub first_echo: Duration,
}

/// Boots `target` once in a fresh namespace and times its banner and its
/// first echo, both within `timeout`; QEMU and the namespace are gone when
/// this returns.
pub fn first_echo(target: &BootTarget, timeout: Duration) -> Result<BootSample> {
    // Declared first, dropped last: QEMU is gone before the namespace is.
    let namespace = Namespace::create(NAMESPACE_PREFIX)?;
    namespace.run_in(shorten_neighbour_retries)?;
    let mut guest = (target.spawn)(&namespace).with_context(|| format!("starting {}", target.label))?;
    let started = guest.started;
    let deadline = started + timeout;
    let stop = AtomicBool::new(false);
    let address = SocketAddr::from((netns::GUEST_ADDRESS, ECHO_PORT));
    let (banner, echo) = std::thread::scope(|scope| {
        let echo = scope.spawn(|| namespace.run_in(|| poll_echo(address, started, deadline, &stop)));
        let banner = guest.wait_for(&target.banner, timeout);
        if banner.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let echo = echo.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the echo poller panicked")));
        (banner, echo)
    });
    let result = match (banner, echo) {
        (Ok(banner), Ok(first_echo)) => Ok(BootSample { banner: banner.at, first_echo }),
        (Err(error), _) => Err(error.context(format!("{}: no banner `{}`", target.label, target.banner))),
        (Ok(_), Err(error)) => Err(error.context(format!(
            "{}: banner seen, no echo; console:\n{}",
            target.label,
            guest.transcript()
        ))),
    };
    guest.kill();
    drop(namespace);
    result
}

/// Cuts the ARP retry interval on the namespace's tap (run inside it).
fn shorten_neighbour_retries() -> Result<()> {
    let knob = format!("/proc/sys/net/ipv4/neigh/{}/retrans_time_ms", netns::TAP_IFNAME);
    std::fs::write(&knob, NEIGHBOUR_RETRY_MS).with_context(|| format!("writing {knob}"))
}

/// Connects and echoes one byte until it works; the time since `started`
/// when it did. Runs inside the namespace.
fn poll_echo(
    address: SocketAddr,
    started: Instant,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Duration> {
    crate::loadgen::check_target(address)?;
    let mut last_error = None;
    let mut attempts = 0;
    while attempts < MAX_ATTEMPTS && Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        attempts += 1;
        match echo_once(address) {
            Ok(()) => return Ok(started.elapsed()),
            Err(error) => last_error = Some(error),
        }
        std::thread::sleep(RETRY_PAUSE);
    }
    let last = last_error.map_or_else(|| "none".to_string(), |error| error.to_string());
    bail!(
        "no echo from {address} after {attempts} attempts ({:?} since QEMU started); last error: {last}",
        started.elapsed()
    )
}

fn echo_once(address: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&address, CONNECT_ATTEMPT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(ECHO_TIMEOUT))?;
    stream.set_write_timeout(Some(ECHO_TIMEOUT))?;
    stream.write_all(PROBE)?;
    let mut echoed = [0u8; PROBE.len()];
    stream.read_exact(&mut echoed)?;
    if echoed != PROBE {
        return Err(std::io::Error::other(format!("echo {echoed:?} differs from {PROBE:?}")));
    }
    Ok(())
}

/// One target's samples.
#[derive(Clone, Debug)]
pub struct TargetTimes {
    pub label: String,
    pub samples: Vec<BootSample>,
}

/// Min, median and max of some durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
}

impl Spread {
    /// `None` for no values; the median of an even count is the upper one.
    pub fn of(values: impl IntoIterator<Item = Duration>) -> Option<Spread> {
        let mut values: Vec<Duration> = values.into_iter().collect();
        values.sort();
        Some(Spread { min: *values.first()?, median: values[values.len() / 2], max: *values.last()? })
    }
}

impl TargetTimes {
    pub fn banner(&self) -> Option<Spread> {
        Spread::of(self.samples.iter().map(|sample| sample.banner))
    }

    pub fn first_echo(&self) -> Option<Spread> {
        Spread::of(self.samples.iter().map(|sample| sample.first_echo))
    }
}

/// Every target's samples from [`measure`].
#[derive(Clone, Debug)]
pub struct Table {
    pub targets: Vec<TargetTimes>,
}

/// Boots every target `runs` times, interleaved, printing each boot as it
/// ends; the first failed boot ends the measurement with its error.
pub fn measure(targets: &[BootTarget], runs: u32) -> Result<Table> {
    let mut table = Table {
        targets: targets
            .iter()
            .map(|t| TargetTimes { label: t.label.clone(), samples: Vec::new() })
            .collect(),
    };
    let width = label_width(&table);
    println!("{:>4}  {:<width$} {:>16} {:>20}", "run", "guest", "start→banner ms", "start→first echo ms");
    let progress = Progress::steps(u64::from(runs) * targets.len() as u64, "boot-time");
    for run in 1..=runs {
        for (target, times) in targets.iter().zip(&mut table.targets) {
            progress.message(format!("run {run}: {}", target.label));
            let sample = first_echo(target, BOOT_TIMEOUT)
                .with_context(|| format!("run {run} of {runs} of {}", target.label))?;
            progress.println(format_args!(
                "{run:>4}  {:<width$} {:>16} {:>20}",
                target.label,
                ms(sample.banner),
                ms(sample.first_echo)
            ));
            progress.step();
            times.samples.push(sample);
        }
    }
    Ok(table)
}

fn label_width(table: &Table) -> usize {
    table.targets.iter().map(|t| t.label.chars().count()).max().unwrap_or(0).max(5)
}

/// Milliseconds, one decimal.
fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

impl Table {
    /// Min/median/max per target, for the banner and the first echo.
    pub fn print(&self) {
        let width = label_width(self);
        println!();
        println!(
            "{:<width$}  {:^28}  {:^28}",
            "", "QEMU start → banner (ms)", "QEMU start → first echo (ms)"
        );
        println!(
            "{:<width$}  {:>8} {:>9} {:>9}  {:>8} {:>9} {:>9}",
            "guest", "min", "median", "max", "min", "median", "max"
        );
        for target in &self.targets {
            let (Some(banner), Some(echo)) = (target.banner(), target.first_echo()) else { continue };
            println!(
                "{:<width$}  {:>8} {:>9} {:>9}  {:>8} {:>9} {:>9}",
                target.label,
                ms(banner.min),
                ms(banner.median),
                ms(banner.max),
                ms(echo.min),
                ms(echo.median),
                ms(echo.max)
            );
        }
    }

    /// For each target other than `reference`: `<label> boot → first echo
    /// is X× <reference>'s (median A ms vs B ms; <context>)`.
    pub fn headlines(&self, reference: &str, context: &str) -> Vec<String> {
        let Some(base) = self.targets.iter().find(|t| t.label == reference).and_then(TargetTimes::first_echo)
        else {
            return Vec::new();
        };
        self.targets
            .iter()
            .filter(|target| target.label != reference)
            .filter_map(|target| {
                let echo = target.first_echo()?;
                let ratio = echo.median.as_secs_f64() / base.median.as_secs_f64();
                Some(format!(
                    "{} boot → first echo is {ratio:.2}× {reference}'s (median {} ms vs {} ms; {context})",
                    target.label,
                    ms(echo.median),
                    ms(base.median)
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(banner_ms: u64, echo_ms: u64) -> BootSample {
        BootSample { banner: Duration::from_millis(banner_ms), first_echo: Duration::from_millis(echo_ms) }
    }

    #[test]
    fn spread_is_min_median_max() {
        let ms = Duration::from_millis;
        assert_eq!(
            Spread::of([ms(30), ms(10), ms(20)]),
            Some(Spread { min: ms(10), median: ms(20), max: ms(30) })
        );
        assert_eq!(Spread::of([]), None);
    }

    #[test]
    fn headlines_compare_medians_with_the_reference() {
        let table = Table {
            targets: vec![
                TargetTimes { label: "Tenfold".into(), samples: vec![sample(900, 1000), sample(1100, 1200)] },
                TargetTimes { label: "Linux".into(), samples: vec![sample(1900, 2400), sample(1800, 2000)] },
            ],
        };
        assert_eq!(
            table.headlines("Linux", "TCG"),
            ["Tenfold boot → first echo is 0.50× Linux's (median 1200.0 ms vs 2400.0 ms; TCG)"]
        );
        assert!(table.headlines("BSD", "TCG").is_empty());
    }
}
