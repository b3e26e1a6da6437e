//! Boot images. The default (PVH) boots the kernel ELF as it is: QEMU's
//! `-kernel` loads its segments (not its debug info) and enters it
//! directly. For `--bios`/`--uefi`, strip the ELF (debug info makes the BIOS
//! stages load it 5–10× slower under TCG; the unstripped ELF stays for gdb
//! and the symboliser) and wrap it with the `bootloader` crate's stages.
//!
//! The image builder lives in its own workspace (`tools/imager`) with its own
//! target directory, because building the bootloader's stages needs
//! `RUSTC_BOOTSTRAP=1`, which would otherwise invalidate this workspace's
//! build cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{prereq, workspace};

/// What the image boots through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's direct kernel boot (Xen PVH entry): the image is the ELF.
    Pvh,
    Bios,
    Uefi,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Pvh => "pvh",
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

fn imager_dir() -> PathBuf {
    workspace::root().join("tools/imager")
}

fn imager_target_dir() -> PathBuf {
    workspace::target_dir().join("imager")
}

/// Builds (if stale) and returns the image builder binary.
pub fn imager() -> Result<PathBuf> {
    prereq::ensure_components()?;
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let binary = imager_target_dir().join(host).join("release/tenfold-imager");
    if !binary.exists() {
        eprintln!("lab: building the boot image builder (first time only, about 3-5 minutes)...");
    }
    // An explicit host target: the root .cargo/config.toml names the kernel's.
    let status = Command::new(workspace::cargo())
        .current_dir(imager_dir())
        .args(["build", "--quiet", "--release", "--target", "host-tuple", "--target-dir"])
        .arg(imager_target_dir())
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .context("running cargo to build tools/imager")?;
    if !status.success() {
        bail!("building the image builder (tools/imager) failed ({status})");
    }
    Ok(binary)
}

/// A kernel ready to boot: the image, plus the ELF that has its symbols.
#[derive(Clone, Debug)]
pub struct BootImage {
    pub image: PathBuf,
    pub kernel_elf: PathBuf,
    pub firmware: Firmware,
    /// The user programs' archive, handed to the kernel as a PVH boot
    /// module (QEMU `-initrd`); the BIOS/UEFI images carry none yet.
    pub initrd: Option<PathBuf>,
}

/// The bootable form of `kernel_elf` for `firmware`: the ELF itself for
/// PVH; else a stripped copy wrapped in a disk image built next to it.
pub fn build(kernel_elf: &Path, firmware: Firmware) -> Result<BootImage> {
    let kernel_elf =
        kernel_elf.canonicalize().with_context(|| format!("kernel ELF {}", kernel_elf.display()))?;
    if firmware == Firmware::Pvh {
        let initrd = Some(workspace::initrd()).filter(|path| path.exists());
        return Ok(BootImage { image: kernel_elf.clone(), kernel_elf, firmware, initrd });
    }
    let stem = kernel_elf.file_name().context("kernel path has a file name")?.to_string_lossy().into_owned();
    let out_dir = kernel_elf.parent().context("kernel path has a parent")?.join("boot");
    std::fs::create_dir_all(&out_dir)?;
    let stripped = out_dir.join(format!("{stem}.stripped"));
    let image = out_dir.join(format!("{stem}-{}.img", firmware.name()));

    let status = Command::new(prereq::llvm_objcopy()?)
        .arg("--strip-debug")
        .arg(&kernel_elf)
        .arg(&stripped)
        .status()
        .context("running llvm-objcopy")?;
    if !status.success() {
        bail!("stripping {} failed ({status})", kernel_elf.display());
    }
    let status = Command::new(imager()?)
        .arg(&stripped)
        .arg(firmware.name())
        .arg(&image)
        .status()
        .context("running the image builder")?;
    if !status.success() {
        bail!("building the {} image failed ({status})", firmware.name());
    }
    Ok(BootImage { image, kernel_elf, firmware, initrd: None })
}
