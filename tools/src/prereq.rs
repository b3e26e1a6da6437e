//! Making sure the host has what booting needs: the kernel's rustup target,
//! QEMU, for the BIOS/UEFI images OVMF and the rustup components the image
//! builder and the stripping step use, and the Debian tools the Linux
//! reference guest is built with. Missing pieces are installed when that is
//! possible (root with apt-get, rustup); otherwise the error names the exact
//! command to run. This is what lets `cargo run` work on a machine with
//! nothing but rustup and a stable toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const QEMU: &str = "qemu-system-x86_64";
const OVMF_CANDIDATES: &[&str] =
    &["/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF.fd", "/usr/share/qemu/OVMF.fd"];

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Installs Debian packages if we are root with apt-get; else fails with the
/// command the user should run.
fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    let command = format!("apt-get install -y {}", packages.join(" "));
    if !is_root() || which("apt-get").is_none() {
        bail!("{why} is missing; install it with:\n    sudo {command}");
    }
    eprintln!("lab: {why} is missing; running `apt-get update && {command}`");
    let status = Command::new("sh")
        .args(["-c", &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive {command}")])
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("`{command}` failed ({status}); run it by hand and retry");
    }
    Ok(())
}

/// The QEMU binary, installed on demand.
pub fn qemu() -> Result<PathBuf> {
    program(QEMU, "qemu-system-x86")
}

/// `program` from PATH, installing the Debian `package` that provides it
/// when it is missing (as root with apt-get; otherwise the error names the
/// command to run).
pub fn program(program: &str, package: &str) -> Result<PathBuf> {
    if let Some(path) = which(program) {
        return Ok(path);
    }
    apt_install(&[package], &format!("`{program}` (Debian package {package})"))?;
    which(program).with_context(|| format!("`{program}` still not on PATH after installing {package}"))
}

/// A file that the Debian `package` installs at `path` (e.g. a static
/// library), installed on demand like [`program`].
pub fn package_file(path: &str, package: &str) -> Result<PathBuf> {
    let path = PathBuf::from(path);
    if path.is_file() {
        return Ok(path);
    }
    apt_install(&[package], &format!("{} (Debian package {package})", path.display()))?;
    if !path.is_file() {
        bail!("{} still missing after installing {package}", path.display());
    }
    Ok(path)
}

/// The OVMF firmware image for `--uefi`, installed on demand.
pub fn ovmf() -> Result<PathBuf> {
    let find = || OVMF_CANDIDATES.iter().map(PathBuf::from).find(|path| path.is_file());
    if let Some(path) = find() {
        return Ok(path);
    }
    apt_install(&["ovmf"], "UEFI firmware (OVMF)")?;
    find().context("OVMF.fd not found after installing ovmf")
}

/// The active toolchain's sysroot.
pub fn sysroot() -> Result<PathBuf> {
    let output =
        Command::new("rustc").args(["--print", "sysroot"]).current_dir(crate::workspace::root()).output()?;
    if !output.status.success() {
        bail!("`rustc --print sysroot` failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// `llvm-objcopy` from the llvm-tools component.
pub fn llvm_objcopy() -> Result<PathBuf> {
    ensure_components()?;
    Ok(llvm_bin(&sysroot()?, "llvm-objcopy"))
}

fn llvm_bin(sysroot: &Path, tool: &str) -> PathBuf {
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    sysroot.join("lib/rustlib").join(host).join("bin").join(tool)
}

/// The kernel's target (`x86_64-unknown-none`: prebuilt core and alloc).
pub fn ensure_kernel_target() -> Result<()> {
    let target = crate::workspace::KERNEL_TARGET;
    if sysroot()?.join("lib/rustlib").join(target).join("lib").is_dir() {
        return Ok(());
    }
    rustup(&["target", "add", target], &format!("the {target} target (the kernel's)"))
}

/// Runs `rustup args…` in the workspace (so it acts on the toolchain
/// rust-toolchain.toml names), or fails with the command to run.
fn rustup(args: &[&str], what: &str) -> Result<()> {
    let command = format!("rustup {}", args.join(" "));
    if which("rustup").is_none() {
        bail!("{what} is missing and rustup is not on PATH; install it with:\n    {command}");
    }
    eprintln!("lab: {what} is missing; running `{command}`");
    let status = Command::new("rustup").args(args).current_dir(crate::workspace::root()).status()?;
    if !status.success() {
        bail!("`{command}` failed ({status})");
    }
    Ok(())
}

/// rust-src and llvm-tools: the bootloader builds its stages from source,
/// and the runner strips the kernel with llvm-objcopy.
pub fn ensure_components() -> Result<()> {
    let sysroot = sysroot()?;
    let has_src = sysroot.join("lib/rustlib/src/rust/library/core").is_dir();
    let has_llvm_tools = llvm_bin(&sysroot, "llvm-objcopy").is_file();
    if has_src && has_llvm_tools {
        return Ok(());
    }
    rustup(&["component", "add", "rust-src", "llvm-tools"], "the rust-src and llvm-tools components")
}
