//! Builds Tenfold's boot images from a kernel ELF with the `bootloader` crate.
//!
//! Usage: `tenfold-imager <kernel-elf> bios|uefi <image-out>`
//!
//! The bootloader's own logging is switched off: it costs ~0.4 s of boot time
//! under TCG and draws on a framebuffer nobody looks at (`-nodefaults`). The
//! kernel prints its own banner on the serial port as soon as it runs.
use std::path::PathBuf;
use std::process::ExitCode;

use bootloader::{BootConfig, DiskImageBuilder};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kernel, firmware, out] = args.as_slice() else {
        eprintln!("usage: tenfold-imager <kernel-elf> bios|uefi <image-out>");
        return ExitCode::from(2);
    };
    let mut config = BootConfig::default();
    config.frame_buffer_logging = false;
    config.serial_logging = false;
    let mut builder = DiskImageBuilder::new(PathBuf::from(kernel));
    builder.set_boot_config(&config);
    let out = PathBuf::from(out);
    let result = match firmware.as_str() {
        "bios" => builder.create_bios_image(&out),
        "uefi" => builder.create_uefi_image(&out),
        other => {
            eprintln!("tenfold-imager: unknown firmware `{other}` (expected bios or uefi)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tenfold-imager: {error:#}");
            ExitCode::FAILURE
        }
    }
}
