//! `cargo lab`: the host-side command of Tenfold, and what `cargo run` runs.
//! Without a subcommand it installs what is missing (the kernel's rustup
//! target, QEMU), builds the kernel and boots it: `cargo run -- [options]`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, error::ErrorKind};

use tenfold_lab::accel::{self, HostFacts};
use tenfold_lab::boot_time::{self, BootTarget};
use tenfold_lab::image::{self, Firmware};
use tenfold_lab::options::{self, MachineOptions};
use tenfold_lab::qemu::{self, GuestExit};
use tenfold_lab::symbolize::Symbolizer;
use tenfold_lab::workspace::{self, Profile};
use tenfold_lab::{demos, linux_guest, scenario};

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
    /// Boot Tenfold and the Linux reference guest N times each, on a tap;
    /// report QEMU start → banner and → first echo.
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
        /// Run the same benchmark against a reference on the same machine
        /// and print the ratios (echo only).
        #[arg(long, value_enum)]
        vs: Option<tenfold_lab::bench_echo::Reference>,
        /// Repeat the measurement; figures are medians (echo only).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
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
    let one_model = |options: &MachineOptions| -> Result<()> {
        if options.model == options::Model::All {
            bail!("--model all applies to `cargo lab bench echo` only (a guest runs one model)");
        }
        Ok(())
    };
    match &command {
        Commands::Boot { options, .. }
        | Commands::BootTime { options, .. }
        | Commands::Demo { options, .. } => one_model(options)?,
        Commands::Bench { what, options, .. } if *what != demos::Bench::Echo => one_model(options)?,
        _ => {}
    }
    match command {
        Commands::Boot { kernel, options } => boot(kernel, &options),
        Commands::BootTime { runs, options } => boot_time(runs, &options),
        Commands::Symbolize { kernel, log } => symbolize(&kernel, log),
        Commands::Demo { concept, options } => {
            let boot = scenario::boot_image(&options)?;
            demos::run_demo(&boot, concept, &options).map(|_| ExitCode::SUCCESS)
        }
        Commands::Bench { what, vs, runs, options } => {
            // Benchmarks measure the release kernel, always.
            let options = MachineOptions { release: true, ..options };
            eprintln!("lab: benchmarks run the release kernel");
            let boot = scenario::boot_image(&options)?;
            demos::run_bench(&boot, what, &options, vs, runs).map(|()| ExitCode::SUCCESS)
        }
        Commands::Test { cargo_test_args } => test(&cargo_test_args),
    }
}

fn boot(kernel: Option<PathBuf>, options: &MachineOptions) -> Result<ExitCode> {
    let kernel = match kernel {
        Some(kernel) => kernel,
        None => workspace::build_kernel(options.profile())?,
    };
    let boot = image::build(&kernel, options.firmware())?;
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

fn boot_time(runs: u32, options: &MachineOptions) -> Result<ExitCode> {
    // Tenfold by each of its boot paths and the Linux reference guest, on
    // the same machine, runs interleaved.
    let kernel = workspace::build_kernel(options.profile())?;
    let pvh = image::build(&kernel, Firmware::Pvh)?;
    let bios = image::build(&kernel, Firmware::Bios)?;
    let linux = linux_guest::prepare()?;
    let kernel_release = linux.kernel_release.clone();
    let targets = [
        BootTarget::tenfold("Tenfold BIOS", bios, options.clone()),
        BootTarget::tenfold("Tenfold PVH", pvh, options.clone()),
        BootTarget::linux(linux, options.clone()),
    ];
    let table = boot_time::measure(&targets, runs)?;
    table.print();
    let accel = accel::resolve(options.accel, &HostFacts::probe()).map_err(anyhow::Error::msg)?;
    let context = format!(
        "{accel:?}, {} vCPU, {} MiB, {runs} runs each; Tenfold {} kernel, Linux {kernel_release} by PVH",
        options.smp,
        options.memory,
        if options.release { "release" } else { "dev" },
    );
    // One headline, for the default boot (PVH, listed last); the other
    // ratios are printed above it.
    let mut headlines = table.headlines(linux_guest::LABEL, &context);
    let headline = headlines.pop().context("no guest reached its first echo")?;
    for line in headlines {
        println!("  {line}");
    }
    println!("boot-time: {headline}");
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
