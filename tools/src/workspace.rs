//! Where things are: the workspace root, the target directory, the kernel
//! ELF for a profile, and building the kernel with cargo.

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
/// Installs the kernel's rustup target first if it is missing.
pub fn build_kernel(profile: Profile) -> Result<PathBuf> {
    crate::prereq::ensure_kernel_target()?;
    let mut command = Command::new(cargo());
    command.current_dir(kernel_dir()).args(["build", "-p", KERNEL_PACKAGE, "--target", KERNEL_TARGET]);
    // Progress on a terminal (the first build takes minutes); quiet in
    // tests and CI.
    if !std::io::stderr().is_terminal() {
        command.arg("--quiet");
    }
    command.arg("--target-dir").arg(target_dir());
    if profile == Profile::Release {
        command.arg("--release");
    }
    let status = command.status().context("running cargo to build the kernel")?;
    if !status.success() {
        bail!("building the kernel failed ({status})");
    }
    Ok(kernel_elf(profile))
}

/// The cargo that runs us, else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
