//! Shared by the integration tests: the boot image under test and ways to
//! boot it. `cargo lab test` builds the kernel and BIOS image once and passes
//! them in `TENFOLD_KERNEL_ELF`/`TENFOLD_BOOT_IMAGE`; run directly
//! (`cargo test -p tenfold-tests --target host-tuple`), the first test
//! builds them.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tenfold_lab::image::{self, BootImage, Firmware};
use tenfold_lab::options::MachineOptions;
use tenfold_lab::qemu::Guest;
use tenfold_lab::workspace::{self, Profile};

/// Deadline for a boot to reach the banner under TCG on a loaded 2-core host.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The unstripped dev kernel ELF.
pub fn kernel_elf() -> &'static PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| match std::env::var_os("TENFOLD_KERNEL_ELF") {
        Some(path) => PathBuf::from(path),
        None => workspace::build_kernel(Profile::Dev).expect("building the kernel"),
    })
}

/// The BIOS boot image of the dev kernel.
pub fn boot_image() -> &'static BootImage {
    static IMAGE: OnceLock<BootImage> = OnceLock::new();
    IMAGE.get_or_init(|| match std::env::var_os("TENFOLD_BOOT_IMAGE") {
        Some(image) => BootImage {
            kernel_elf: kernel_elf().clone(),
            image: PathBuf::from(image),
            firmware: Firmware::Bios,
        },
        None => build_image(Firmware::Bios),
    })
}

/// Builds a boot image of the dev kernel (one build at a time: they share
/// output files).
pub fn build_image(firmware: Firmware) -> BootImage {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    image::build(kernel_elf(), firmware).expect("building the boot image")
}

/// Boots `image` under `options` plus the kernel parameters `params`.
pub fn boot_with(image: &BootImage, mut options: MachineOptions, params: &[&str]) -> Guest {
    for param in params {
        options = options.with_param(*param);
    }
    Guest::spawn(image, &options).expect("starting QEMU")
}

/// Deterministic pseudo-random bytes for echo payloads.
pub fn payload(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Raises this process's open-file limit (QEMU inherits it: slirp holds a
/// host socket per guest connection).
pub fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Boots the BIOS image with default machine options and `params`.
pub fn boot(params: &[&str]) -> Guest {
    boot_with(boot_image(), MachineOptions::default(), params)
}
