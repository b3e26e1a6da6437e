//! The kernel command line: space-separated `key=value` words (`cargo run --
//! --param key=value`), which the host passes as the PVH command line
//! (QEMU's `-append`) or, for the BIOS/UEFI images, which have none, through
//! QEMU's fw_cfg file `opt/tenfold/cmdline`. Bad words are reported and ignored; the kernel boots
//! with defaults rather than failing on a typo.

use log::LevelFilter;
use spin::Once;

use crate::arch::fw_cfg;

const CMDLINE_FILE: &str = "opt/tenfold/cmdline";
const CMDLINE_MAX: usize = 1024;

/// The keys the kernel understands, for error messages and `help`.
pub const KEYS: &str = "log=off|error|warn|info|debug|trace, test=all|<name>, crash=<kind>, \
heap_max_mib=<N>, preempt=on|off, demo=<name>, bench=<name>, ip=<a.b.c.d/n>|dhcp, gateway=<a.b.c.d>, \
max_connections=<N>, backlog=<N>, echo=bounded|unbounded, nagle=on|off, ack_delay_ms=<N>, \
tcp_rx_kib=<N>, tcp_tx_kib=<N>, idle_timeout_s=<N>, model=reactor|csp|actor, chaos=on|off, \
actor_restart_period_s=<N>";

/// Which echo server serves port 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// The event loop on the network thread (the default).
    Reactor,
    /// A kernel thread per connection with blocking calls (socket service).
    Csp,
    /// An isolated ring-3 handler task per connection under a supervisor.
    Actor,
}

/// Deliberate failures, for the failing-path tests of the fault reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    PageFault,
    Panic,
    StackOverflow,
    HeapExhaustion,
    InvalidOpcode,
    /// A spawned thread overflows its stack: reported, killed, kernel lives on.
    ThreadStackOverflow,
}

impl Crash {
    pub const ALL: [(&'static str, Crash); 6] = [
        ("page-fault", Crash::PageFault),
        ("panic", Crash::Panic),
        ("stack-overflow", Crash::StackOverflow),
        ("heap-exhaustion", Crash::HeapExhaustion),
        ("invalid-opcode", Crash::InvalidOpcode),
        ("thread-stack-overflow", Crash::ThreadStackOverflow),
    ];
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub log_level: LevelFilter,
    /// Run the in-kernel self-tests whose names match (`all` for every one).
    pub test: Option<&'static str>,
    pub crash: Option<Crash>,
    /// Upper bound of the kernel heap; default half of usable memory.
    pub heap_max_mib: Option<u64>,
    /// Time-slice preemption (`preempt=off`: threads run until they block).
    pub preemption: bool,
    /// A lab scenario: (`demo` or `bench`, name).
    pub lab: Option<(&'static str, &'static str)>,
    /// Interface address (`ip=10.0.2.15/24`) and gateway (`gateway=10.0.2.2`),
    /// checked by the network module.
    pub ip: Option<&'static str>,
    pub gateway: Option<&'static str>,
    /// Echo server bounds: concurrent connections and listen backlog.
    pub max_connections: Option<usize>,
    pub backlog: Option<usize>,
    /// `echo=unbounded`: the backpressure demo's counter-example.
    pub echo_unbounded: bool,
    /// TCP tuning overrides, to measure smoltcp's defaults against ours:
    /// `nagle=on|off`, `ack_delay_ms=N` (0 = acknowledge at once).
    pub nagle: Option<bool>,
    pub ack_delay_ms: Option<u64>,
    /// Per-connection TCP buffer sizes in KiB (`tcp_rx_kib=`, `tcp_tx_kib=`).
    pub tcp_rx_kib: Option<usize>,
    pub tcp_tx_kib: Option<usize>,
    /// `idle_timeout_s=N`: a connection silent this long is reset (0 = never).
    pub idle_timeout_s: Option<u64>,
    /// `model=`: the echo server's model.
    pub model: Model,
    /// `chaos=on`: a connection whose data holds `TENFOLD-CRASH` makes the
    /// code serving it fault (a real CPU exception); `TENFOLD-BLOCK` makes
    /// it make a 300 ms blocking call, `TENFOLD-SPIN` run a 300 ms CPU-bound
    /// loop (the lab's blocking and fairness demos).
    pub chaos: bool,
    /// `actor_restart_period_s=N`: the actor model restarts a connection's
    /// handler at most 3 times within N seconds, then gives the connection
    /// up (default 5).
    pub actor_restart_period_s: Option<u64>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            log_level: LevelFilter::Info,
            test: None,
            crash: None,
            heap_max_mib: None,
            preemption: true,
            lab: None,
            ip: None,
            gateway: None,
            max_connections: None,
            backlog: None,
            echo_unbounded: false,
            nagle: None,
            ack_delay_ms: None,
            tcp_rx_kib: None,
            tcp_tx_kib: None,
            idle_timeout_s: None,
            model: Model::Reactor,
            chaos: false,
            actor_restart_period_s: None,
        }
    }
}

/// A word of the command line that was not understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadWord {
    pub word: &'static str,
    pub reason: &'static str,
}

/// Parses a command line; calls `on_error` for each word it ignores.
pub fn parse(cmdline: &'static str, mut on_error: impl FnMut(BadWord)) -> Params {
    let mut params = Params::default();
    for word in cmdline.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            on_error(BadWord { word, reason: "expected key=value" });
            continue;
        };
        let result = match key {
            "log" => parse_level(value).map(|level| params.log_level = level),
            "test" if !value.is_empty() => {
                params.test = Some(value);
                Ok(())
            }
            "crash" => Crash::ALL
                .iter()
                .find(|(name, _)| *name == value)
                .map(|&(_, crash)| params.crash = Some(crash))
                .ok_or("unknown crash kind (page-fault|panic|stack-overflow|heap-exhaustion|invalid-opcode|thread-stack-overflow)"),
            "heap_max_mib" => match value.parse::<u64>() {
                Ok(mib) if mib > 0 => {
                    params.heap_max_mib = Some(mib);
                    Ok(())
                }
                _ => Err("expected a positive number of MiB"),
            },
            "ip" if !value.is_empty() => {
                params.ip = Some(value);
                Ok(())
            }
            "gateway" if !value.is_empty() => {
                params.gateway = Some(value);
                Ok(())
            }
            "max_connections" | "backlog" => match value.parse::<usize>() {
                Ok(count) if (1..=100_000).contains(&count) => {
                    if key == "backlog" {
                        params.backlog = Some(count);
                    } else {
                        params.max_connections = Some(count);
                    }
                    Ok(())
                }
                _ => Err("expected a number from 1 to 100000"),
            },
            "tcp_rx_kib" | "tcp_tx_kib" => match value.parse::<usize>() {
                // smoltcp's window scaling covers up to 1 GiB; 4 MiB is plenty here.
                Ok(kib) if (1..=4096).contains(&kib) => {
                    if key == "tcp_rx_kib" {
                        params.tcp_rx_kib = Some(kib);
                    } else {
                        params.tcp_tx_kib = Some(kib);
                    }
                    Ok(())
                }
                _ => Err("expected KiB from 1 to 4096"),
            },
            "nagle" => match value {
                "on" | "off" => {
                    params.nagle = Some(value == "on");
                    Ok(())
                }
                _ => Err("expected on|off"),
            },
            "idle_timeout_s" => match value.parse::<u64>() {
                Ok(seconds) if seconds <= 86_400 => {
                    params.idle_timeout_s = Some(seconds);
                    Ok(())
                }
                _ => Err("expected seconds from 0 to 86400"),
            },
            "actor_restart_period_s" => match value.parse::<u64>() {
                Ok(seconds) if (1..=3600).contains(&seconds) => {
                    params.actor_restart_period_s = Some(seconds);
                    Ok(())
                }
                _ => Err("expected seconds from 1 to 3600"),
            },
            "ack_delay_ms" => match value.parse::<u64>() {
                Ok(millis) if millis <= 1000 => {
                    params.ack_delay_ms = Some(millis);
                    Ok(())
                }
                _ => Err("expected milliseconds from 0 to 1000"),
            },
            "echo" => match value {
                "bounded" => {
                    params.echo_unbounded = false;
                    Ok(())
                }
                "unbounded" => {
                    params.echo_unbounded = true;
                    Ok(())
                }
                _ => Err("expected bounded|unbounded"),
            },
            "model" => [("reactor", Model::Reactor), ("csp", Model::Csp), ("actor", Model::Actor)]
                .iter()
                .find(|(name, _)| *name == value)
                .map(|&(_, model)| params.model = model)
                .ok_or("expected reactor|csp|actor"),
            "chaos" => match value {
                "on" | "off" => {
                    params.chaos = value == "on";
                    Ok(())
                }
                _ => Err("expected on|off"),
            },
            "demo" | "bench" if !value.is_empty() => {
                params.lab = Some((key, value));
                Ok(())
            }
            "preempt" => match value {
                "on" => {
                    params.preemption = true;
                    Ok(())
                }
                "off" => {
                    params.preemption = false;
                    Ok(())
                }
                _ => Err("expected on|off"),
            },
            _ => Err("unknown key"),
        };
        if let Err(reason) = result {
            on_error(BadWord { word, reason });
        }
    }
    params
}

/// A log level by name.
pub fn parse_level(value: &str) -> Result<LevelFilter, &'static str> {
    match value {
        "off" => Ok(LevelFilter::Off),
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err("expected off|error|warn|info|debug|trace"),
    }
}

static CMDLINE: Once<([u8; CMDLINE_MAX], usize)> = Once::new();

/// Parses the boot path's command line (PVH: QEMU's `-append`), or, when
/// the boot path has none (the bootloader images), the one in fw_cfg.
pub fn load(boot_cmdline: Option<&'static [u8]>) -> Params {
    let bytes = boot_cmdline.unwrap_or_else(|| {
        let (bytes, length) = CMDLINE.call_once(|| {
            let mut buffer = [0; CMDLINE_MAX];
            let length = fw_cfg::read_file(CMDLINE_FILE, &mut buffer).unwrap_or(0);
            (buffer, length)
        });
        &bytes[..*length]
    });
    let cmdline = match core::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            log::error!("kernel command line is not UTF-8; ignoring it");
            ""
        }
    };
    if !cmdline.is_empty() {
        log::info!("command line: {cmdline}");
    }
    parse(cmdline, |bad| {
        log::error!("command line: ignoring `{}`: {} (valid: {KEYS})", bad.word, bad.reason);
    })
}
