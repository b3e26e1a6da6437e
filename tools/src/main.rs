//! `cargo lab`: the host-side command of Tenfold, and what `cargo run` runs.
//! Without a subcommand it installs what is missing (the kernel's rustup
//! target, QEMU), builds the kernel and boots it: `cargo run -- [options]`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, error::ErrorKind};

use tenfold_lab::image::{self, Firmware};
use tenfold_lab::options::{self, MachineOptions};
use tenfold_lab::qemu::{self, Guest, GuestExit};
use tenfold_lab::symbolize::Symbolizer;
use tenfold_lab::workspace::{self, Profile};
use tenfold_lab::{demos, scenario};

#[derive(Parser)]
#[command(
    name = "cargo lab",
    about = "Tenfold's host-side tool: boot, measure, test",
    long_about = "Tenfold's host-side tool. Without a subcommand (`cargo run -- [options]`) it builds \
                  the kernel, installing what is missing, and boots it with the console on this terminal.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    #[command(flatten)]
    options: MachineOptions,
}

#[derive(Subcommand)]
enum Commands {
    /// Boot a kernel in QEMU with the console on this terminal (what
    /// `cargo run -- [options]` does without a subcommand).
    Boot {
        /// A kernel ELF to boot instead of building the workspace's.
        #[arg(long)]
        kernel: Option<PathBuf>,
        #[command(flatten)]
        options: MachineOptions,
    },
    /// Boot N times; report QEMU start → banner and → kernel ready.
    BootTime {
        /// Number of boots.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        #[command(flatten)]
        options: MachineOptions,
    },
    /// Show a concept working, measured in the guest: table, plot, headline.
    Demo {
        #[arg(value_enum)]
        concept: demos::Demo,
        #[command(flatten)]
        options: MachineOptions,
    },
    /// Benchmark a subsystem in the guest: table and headline.
    Bench {
        #[arg(value_enum)]
        what: demos::Bench,
        #[command(flatten)]
        options: MachineOptions,
    },
    /// Symbolise the stack traces in a saved console log (stdin by default).
    Symbolize {
        /// The unstripped kernel ELF of the run that printed the log.
        #[arg(long, default_value_os_t = workspace::kernel_elf(Profile::Dev))]
        kernel: PathBuf,
        /// The log file.
        log: Option<PathBuf>,
    },
    /// Run every test: host unit tests, in-kernel self-tests and the
    /// integration tests that boot the kernel (the README's test command).
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let unknown = error.kind() == ErrorKind::UnknownArgument;
            let _ = error.print();
            if unknown {
                eprintln!("\nvalid runner options: {}", options::valid_options());
            }
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let command = cli.command.unwrap_or(Commands::Boot { kernel: None, options: cli.options });
    match run(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lab: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Commands) -> Result<ExitCode> {
    match command {
        Commands::Boot { kernel, options } => boot(kernel, &options),
        Commands::BootTime { runs, options } => boot_time(runs, &options),
        Commands::Symbolize { kernel, log } => symbolize(&kernel, log),
        Commands::Demo { concept, options } => {
            let boot = scenario::boot_image(&options)?;
            demos::run_demo(&boot, concept, &options).map(|()| ExitCode::SUCCESS)
        }
        Commands::Bench { what, options } => {
            let boot = scenario::boot_image(&options)?;
            demos::run_bench(&boot, what, &options).map(|()| ExitCode::SUCCESS)
        }
        Commands::Test { cargo_test_args } => test(&cargo_test_args),
    }
}

fn boot(kernel: Option<PathBuf>, options: &MachineOptions) -> Result<ExitCode> {
    let kernel = match kernel {
        Some(kernel) => kernel,
        None => workspace::build_kernel(options.profile())?,
    };
    let boot = image::build(&kernel, Firmware::of(options))?;
    let exit = qemu::run_interactive(&boot, options)?;
    Ok(match exit {
        GuestExit::Success => ExitCode::SUCCESS,
        GuestExit::Reset => {
            // Status 0 is both "QEMU was told to quit" (Ctrl-C) and a triple
            // fault under -no-reboot; the kernel prints a report for every
            // fault it can catch, so say which it might be.
            eprintln!("\nlab: QEMU exited (Ctrl-C, or a guest reset/triple fault)");
            ExitCode::SUCCESS
        }
        GuestExit::Failure => {
            eprintln!("\nlab: the kernel reported a failure (exit status 35)");
            ExitCode::FAILURE
        }
        GuestExit::Other(code) => {
            eprintln!("\nlab: QEMU exited with status {code}");
            ExitCode::FAILURE
        }
        GuestExit::Signal => {
            eprintln!("\nlab: QEMU was killed by a signal");
            ExitCode::FAILURE
        }
    })
}

/// Milliseconds of a duration, one decimal.
fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

fn boot_time(runs: u32, options: &MachineOptions) -> Result<ExitCode> {
    let release = options.release;
    let kernel = workspace::build_kernel(options.profile())?;
    let boot = image::build(&kernel, Firmware::of(options))?;
    let (_, accel) = qemu::command(&boot, options)?;
    let mut banners = Vec::new();
    let mut readies = Vec::new();
    println!("{:>4} {:>16} {:>16} {:>18}", "run", "start→banner ms", "start→ready ms", "kernel entry→ready");
    for run in 1..=runs {
        let mut guest = Guest::spawn(&boot, options)?;
        let banner = guest.wait_for("Tenfold", Duration::from_secs(60))?;
        let ready = guest.wait_for("kernel ready", Duration::from_secs(30))?;
        guest.kill();
        let in_kernel = ready.text.split('(').nth(1).and_then(|rest| rest.split(' ').next()).unwrap_or("?");
        println!("{run:>4} {:>16} {:>16} {:>15} ms", ms(banner.at), ms(ready.at), in_kernel);
        banners.push(banner.at);
        readies.push(ready.at);
    }
    let summary = |name: &str, values: &mut Vec<Duration>| {
        values.sort();
        let median = values[values.len() / 2];
        println!(
            "{name:<22} min {:>8}  median {:>8}  max {:>8}",
            ms(values[0]),
            ms(median),
            ms(values[values.len() - 1])
        );
        median
    };
    println!();
    let banner_median = summary("QEMU start → banner", &mut banners);
    let ready_median = summary("QEMU start → ready", &mut readies);
    println!(
        "boot-time: QEMU start → banner median {} ms, → kernel ready {} ms ({accel:?}, {}, {} MiB, {} runs, {} kernel)",
        ms(banner_median),
        ms(ready_median),
        Firmware::of(options).name(),
        options.memory,
        runs,
        if release { "release" } else { "dev" },
    );
    Ok(ExitCode::SUCCESS)
}

fn symbolize(kernel: &std::path::Path, log: Option<PathBuf>) -> Result<ExitCode> {
    let symbolizer = Symbolizer::new(kernel)?;
    let text = match log {
        Some(path) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        None => std::io::read_to_string(std::io::stdin())?,
    };
    for line in text.lines() {
        println!("{line}");
        for extra in symbolizer.annotate(line) {
            println!("{extra}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn test(cargo_test_args: &[String]) -> Result<ExitCode> {
    // Build the kernel first, so a build failure shows up once, here; the
    // integration tests boot this ELF (plain `cargo test` builds it too).
    let kernel = workspace::build_kernel(Profile::Dev)?;
    let status = Command::new(workspace::cargo())
        .current_dir(workspace::root())
        .args(["test", "--workspace"])
        .args(cargo_test_args)
        .env("TENFOLD_KERNEL_ELF", &kernel)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(ExitCode::SUCCESS)
}
