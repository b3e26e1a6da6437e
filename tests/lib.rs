//! Shared by the integration tests: the boot image under test and a way to
//! boot it with kernel parameters. `cargo lab test` builds the kernel and
//! image once and passes them in `TENFOLD_KERNEL_ELF`/`TENFOLD_BOOT_IMAGE`;
//! run directly (`cargo test -p tenfold-tests --target host-tuple`), the
//! first test builds them.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tenfold_lab::image::{self, BootImage, Firmware};
use tenfold_lab::options::MachineOptions;
use tenfold_lab::qemu::Guest;
use tenfold_lab::workspace::{self, Profile};

/// Deadline for a boot to reach the banner under TCG on a loaded 2-core host.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The BIOS boot image of the dev kernel.
pub fn boot_image() -> &'static BootImage {
    static IMAGE: OnceLock<BootImage> = OnceLock::new();
    static BUILD: Mutex<()> = Mutex::new(());
    IMAGE.get_or_init(|| {
        let _serialise = BUILD.lock().unwrap();
        match (std::env::var_os("TENFOLD_KERNEL_ELF"), std::env::var_os("TENFOLD_BOOT_IMAGE")) {
            (Some(kernel_elf), Some(image)) => BootImage {
                kernel_elf: PathBuf::from(kernel_elf),
                image: PathBuf::from(image),
                firmware: Firmware::Bios,
            },
            _ => {
                let kernel = workspace::build_kernel(Profile::Dev).expect("building the kernel");
                image::build(&kernel, Firmware::Bios).expect("building the boot image")
            }
        }
    })
}

/// Boots the kernel under TCG with the given kernel parameters.
pub fn boot(params: &[&str]) -> Guest {
    let mut options = MachineOptions { accel: tenfold_lab::accel::Accel::Auto, ..MachineOptions::default() };
    for param in params {
        options = options.with_param(*param);
    }
    Guest::spawn(boot_image(), &options).expect("starting QEMU")
}
