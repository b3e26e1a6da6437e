//! The runner's machine options, shared by `cargo run -- …`, `cargo lab
//! boot-time`, the demos and the integration tests.

use clap::{Args, CommandFactory, Parser};

use crate::accel::Accel;
use crate::image::Firmware;

/// How to set up the virtual machine.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct MachineOptions {
    /// QEMU accelerator: auto uses KVM only where it can run the guest.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Number of virtual CPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub memory: u32,
    /// Forward host 127.0.0.1:N to the guest's TCP echo port 7.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Attach the guest's NIC to an existing tap device IF (give the guest
    /// an address on its network with --param ip=… --param gateway=…).
    #[arg(long, value_name = "IF", conflicts_with = "port")]
    pub tap: Option<String>,
    /// `none`: boot without a network card (default: user networking, or the
    /// tap given by --tap).
    #[arg(long, value_enum, value_name = "none", conflicts_with_all = ["port", "tap"])]
    pub net: Option<NoNetwork>,
    /// Start QEMU halted with a gdb stub on 127.0.0.1:1234 and print the gdb command.
    #[arg(long)]
    pub gdb: bool,
    /// Boot the bootloader crate's BIOS disk image instead of the direct PVH
    /// boot (QEMU -kernel).
    #[arg(long, conflicts_with = "uefi")]
    pub bios: bool,
    /// Boot the bootloader crate's UEFI disk image through OVMF.
    #[arg(long)]
    pub uefi: bool,
    /// Build and boot the release kernel (the benchmarks always do).
    #[arg(long)]
    pub release: bool,
    /// The echo server's model on port 7: reactor (the event loop), csp (a
    /// kernel thread per connection over the socket service), actor (an
    /// isolated ring-3 task per connection under a supervisor). Passed as
    /// the kernel parameter model=. `all` (bench echo only): every model
    /// that serves, side by side in one run.
    #[arg(long, value_enum, default_value_t = Model::Reactor)]
    pub model: Model,
    /// Kernel parameter key=value (repeatable), e.g. --param log=debug.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<String>,
    /// A tap inside a network namespace this tool created (the benchmarks
    /// and tests/tap.rs, through [`crate::netns::Namespace`]): not a flag.
    #[arg(skip)]
    pub namespace: Option<String>,
    /// More host ports forwarded to guest ports over user networking,
    /// (host, guest) — for ring-3 tasks' own listeners (tests/sockets.rs):
    /// not a flag.
    #[arg(skip)]
    pub forwards: Vec<(u16, u16)>,
}

/// The echo server's concurrency model (`--model`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Reactor,
    Csp,
    Actor,
    /// Every model that serves echo, side by side (`cargo lab bench echo`
    /// only: a guest runs one model).
    All,
}

impl Model {
    /// The models that serve echo today (the suite runs each).
    pub const SERVING: [Model; 3] = [Model::Reactor, Model::Csp, Model::Actor];

    /// The name, as `--model` and the kernel's `model=` take it.
    pub fn name(self) -> &'static str {
        match self {
            Model::Reactor => "reactor",
            Model::Csp => "csp",
            Model::Actor => "actor",
            Model::All => "all",
        }
    }

    /// The console line that says this model's echo server serves.
    pub fn ready_line(self) -> &'static str {
        match self {
            Model::Csp => "csp: listening",
            Model::Actor => "actor: listening",
            Model::Reactor | Model::All => "echo server (event loop)",
        }
    }
}

/// The only value of `--net`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoNetwork {
    None,
}

/// The backend of the guest's virtio-net card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// QEMU user networking (slirp): the guest is 10.0.2.15 behind a NAT,
    /// and `port` forwards host 127.0.0.1:N to its echo port.
    User,
    /// The tap device `ifname`; QEMU runs inside the network namespace
    /// `netns` (`ip netns exec`) when one is given, else in the caller's.
    Tap { ifname: String, netns: Option<String> },
    /// No network card.
    None,
}

impl Default for MachineOptions {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            options: MachineOptions,
        }
        Defaults::parse_from(["defaults"]).options
    }
}

impl MachineOptions {
    /// The guest's network backend these options ask for.
    pub fn network(&self) -> Network {
        match (&self.net, &self.tap) {
            (Some(NoNetwork::None), _) => Network::None,
            (None, Some(ifname)) => Network::Tap { ifname: ifname.clone(), netns: self.namespace.clone() },
            (None, None) => Network::User,
        }
    }

    /// Puts the NIC on `ifname` inside the network namespace `netns`.
    pub fn on_tap_in(mut self, netns: &str, ifname: &str) -> Self {
        self.tap = Some(ifname.to_string());
        self.namespace = Some(netns.to_string());
        self.port = None;
        self
    }

    /// What the kernel boots through: PVH unless `--bios` or `--uefi`.
    pub fn firmware(&self) -> Firmware {
        if self.uefi {
            Firmware::Uefi
        } else if self.bios {
            Firmware::Bios
        } else {
            Firmware::Pvh
        }
    }

    /// The kernel build profile these options ask for.
    pub fn profile(&self) -> crate::workspace::Profile {
        if self.release { crate::workspace::Profile::Release } else { crate::workspace::Profile::Dev }
    }

    /// The kernel command line these options produce.
    pub fn cmdline(&self) -> String {
        let model = (self.model != Model::Reactor).then(|| format!("model={}", self.model.name()));
        model.into_iter().chain(self.params.iter().cloned()).collect::<Vec<_>>().join(" ")
    }

    /// Adds a kernel parameter.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.params.push(param.into());
        self
    }
}

fn parse_param(value: &str) -> Result<String, String> {
    match value.split_once('=') {
        Some((key, _)) if !key.is_empty() && !value.contains(char::is_whitespace) => Ok(value.to_string()),
        _ => Err(format!("`{value}` is not key=value without spaces")),
    }
}

/// One line listing every machine option, for "unknown option" errors.
pub fn valid_options() -> String {
    #[derive(Parser)]
    struct All {
        #[command(flatten)]
        options: MachineOptions,
    }
    All::command()
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(|long| (long, arg.get_value_names().map(|n| n[0].to_string()))))
        .map(|(long, value)| match value {
            Some(value) => format!("--{long} <{value}>"),
            None => format!("--{long}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        options: MachineOptions,
    }

    fn parse(args: &[&str]) -> Result<MachineOptions, clap::Error> {
        Cli::try_parse_from(std::iter::once("boot").chain(args.iter().copied())).map(|cli| cli.options)
    }

    #[test]
    fn defaults_are_one_cpu_256_mib_auto() {
        let options = MachineOptions::default();
        assert_eq!((options.smp, options.memory, options.accel), (1, 256, Accel::Auto));
        assert_eq!(options.port, None);
        assert!(!options.gdb && !options.uefi && !options.bios && !options.release);
        assert_eq!(options.network(), Network::User);
        assert_eq!(options.firmware(), Firmware::Pvh);
    }

    #[test]
    fn all_options_parse() {
        let options = parse(&[
            "--accel",
            "tcg",
            "--smp",
            "2",
            "--memory",
            "512",
            "--port",
            "17777",
            "--gdb",
            "--uefi",
            "--param",
            "log=debug",
            "--param",
            "test=all",
        ])
        .unwrap();
        assert_eq!(options.accel, Accel::Tcg);
        assert_eq!((options.smp, options.memory, options.port), (2, 512, Some(17777)));
        assert!(options.gdb && options.uefi);
        assert_eq!(options.firmware(), Firmware::Uefi);
        assert_eq!(options.cmdline(), "log=debug test=all");
        let tap = parse(&["--tap", "tap7", "--bios", "--release"]).unwrap();
        assert_eq!(tap.network(), Network::Tap { ifname: "tap7".into(), netns: None });
        assert_eq!(tap.firmware(), Firmware::Bios);
        assert_eq!(tap.profile(), crate::workspace::Profile::Release);
        assert_eq!(parse(&["--net", "none"]).unwrap().network(), Network::None);
        let csp = parse(&["--model", "csp", "--param", "chaos=on"]).unwrap();
        assert_eq!((csp.model, csp.cmdline().as_str()), (Model::Csp, "model=csp chaos=on"));
        assert_eq!(parse(&["--model", "actor"]).unwrap().cmdline(), "model=actor");
    }

    #[test]
    fn bad_values_are_rejected() {
        for args in [
            &["--accel", "hvf"][..],
            &["--smp", "0"],
            &["--memory", "8"],
            &["--port", "0"],
            &["--port", "70000"],
            &["--param", "nokey"],
            &["--param", "a=b c"],
            &["--frobnicate"],
            &["--tap", "tap0", "--port", "1"],
            &["--net", "none", "--port", "1"],
            &["--net", "user"],
            &["--bios", "--uefi"],
            &["--model", "goroutines"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn valid_options_lists_every_flag() {
        let list = valid_options();
        for flag in [
            "--accel",
            "--smp",
            "--memory",
            "--port",
            "--tap",
            "--net",
            "--model",
            "--gdb",
            "--bios",
            "--uefi",
            "--release",
            "--param",
        ] {
            assert!(list.contains(flag), "{list}");
        }
    }
}
