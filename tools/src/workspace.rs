//! Where things are: the workspace root, the target directory, the kernel
//! ELF for a profile, and building the kernel with cargo — together with the
//! ring-3 programs (`user/`, a workspace of its own) and the initrd that
//! carries them to the kernel as a PVH boot module.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The kernel's target triple.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
const KERNEL_PACKAGE: &str = "tenfold-kernel";
const KERNEL_BINARY: &str = "tenfold";

/// The repository root (the parent of `tools/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tools/ has a parent").to_path_buf()
}

/// cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("target"),
    }
}

/// Cargo build profile of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

/// The kernel ELF that `cargo build` produces for `profile`.
pub fn kernel_elf(profile: Profile) -> PathBuf {
    let dir = match profile {
        Profile::Dev => "debug",
        Profile::Release => "release",
    };
    target_dir().join(KERNEL_TARGET).join(dir).join(KERNEL_BINARY)
}

/// The kernel's own workspace (it builds for [`KERNEL_TARGET`]).
pub fn kernel_dir() -> PathBuf {
    root().join("kernel")
}

/// Builds the kernel (cargo decides what is stale) and returns its ELF.
/// Installs the kernel's rustup target first if it is missing. The user
/// programs and their initrd ([`initrd`]) are built with it, so every boot
/// has them.
pub fn build_kernel(profile: Profile) -> Result<PathBuf> {
    crate::prereq::ensure_kernel_target()?;
    let mut command = Command::new(cargo());
    command.current_dir(kernel_dir()).args(["build", "-p", KERNEL_PACKAGE, "--target", KERNEL_TARGET]);
    quiet_unless_terminal(&mut command);
    command.arg("--target-dir").arg(target_dir());
    if profile == Profile::Release {
        command.arg("--release");
    }
    let status = command.status().context("running cargo to build the kernel")?;
    if !status.success() {
        bail!("building the kernel failed ({status})");
    }
    build_user_programs()?;
    Ok(kernel_elf(profile))
}

/// Progress on a terminal (the first build takes minutes); quiet in tests
/// and CI.
fn quiet_unless_terminal(command: &mut Command) {
    if !std::io::stderr().is_terminal() {
        command.arg("--quiet");
    }
}

/// The ring-3 programs the initrd carries, by name (`user/<name>`).
pub const USER_PROGRAMS: &[&str] = &[
    "hello",
    "crasher",
    "fuzz",
    "worker",
    "sysbench",
    "pingpong",
    "ordering",
    "backpressure",
    "pagexfer",
    "ipcbench",
    "ipcdie",
    "sockets",
    "actor",
    "spawner",
    "supervisor",
];

/// The user programs' own workspace.
pub fn user_dir() -> PathBuf {
    root().join("user")
}

/// Their target directory: apart from the kernel's, since they build for
/// the same triple with other flags (user/.cargo/config.toml).
fn user_target_dir() -> PathBuf {
    target_dir().join("user")
}

/// The initrd handed to the kernel as a boot module: a cpio (newc) archive
/// of the user programs, written by [`build_user_programs`].
pub fn initrd() -> PathBuf {
    user_target_dir().join("initrd.cpio")
}

/// Builds the user programs (release: small and fast; nothing to debug in
/// them yet) and packs them into [`initrd`].
pub fn build_user_programs() -> Result<PathBuf> {
    let mut command = Command::new(cargo());
    command.current_dir(user_dir()).args(["build", "--release", "--target", KERNEL_TARGET]);
    quiet_unless_terminal(&mut command);
    command.arg("--target-dir").arg(user_target_dir());
    let status = command.status().context("running cargo to build the user programs")?;
    if !status.success() {
        bail!("building the user programs (user/) failed ({status})");
    }
    let dir = user_target_dir().join(KERNEL_TARGET).join("release");
    let programs = USER_PROGRAMS
        .iter()
        .map(|name| {
            let path = dir.join(name);
            std::fs::read(&path)
                .with_context(|| format!("reading {}", path.display()))
                .map(|bytes| (*name, bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    let archive = crate::initrd::pack(&programs)?;
    let path = initrd();
    // Written whole and renamed, so a guest booting meanwhile never reads a
    // half-written archive.
    let partial = path.with_extension("cpio.partial");
    std::fs::write(&partial, archive).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The cargo that runs us, else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
