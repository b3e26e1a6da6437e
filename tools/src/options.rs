//! The runner's machine options, shared by `cargo run -- …`, `cargo lab
//! boot-time`, the demos and the integration tests.

use clap::{Args, CommandFactory, Parser};

use crate::accel::Accel;

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
    /// Start QEMU halted with a gdb stub on 127.0.0.1:1234 and print the gdb command.
    #[arg(long)]
    pub gdb: bool,
    /// Boot through UEFI (OVMF) instead of BIOS.
    #[arg(long)]
    pub uefi: bool,
    /// Kernel parameter key=value, passed through fw_cfg (repeatable), e.g. --param log=debug.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<String>,
    /// How the virtio-net card reaches the host. Not a command-line flag:
    /// tap needs a network namespace with the device in it, which the
    /// callers that use it (`cargo lab bench echo`, tests/tap.rs) create
    /// with [`crate::netns::Namespace`].
    #[arg(skip)]
    pub network: Network,
}

/// The backend of the guest's virtio-net card.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// QEMU user networking (slirp): the guest is 10.0.2.15 behind a NAT,
    /// and `port` forwards host 127.0.0.1:N to its echo port.
    #[default]
    User,
    /// A tap device `ifname` inside the network namespace `netns`; QEMU runs
    /// in that namespace (`ip netns exec`), whose side of the link is
    /// 10.0.2.2/24. `port` does not apply.
    Tap { netns: String, ifname: String },
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
    /// The kernel command line these options produce.
    pub fn cmdline(&self) -> String {
        self.params.join(" ")
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
        assert!(!options.gdb && !options.uefi);
        assert_eq!(options.network, Network::User);
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
        assert_eq!(options.cmdline(), "log=debug test=all");
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
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn valid_options_lists_every_flag() {
        let list = valid_options();
        for flag in ["--accel", "--smp", "--memory", "--port", "--gdb", "--uefi", "--param"] {
            assert!(list.contains(flag), "{list}");
        }
    }
}
