//! The kernel boots, prints its banner and becomes ready; bad kernel
//! parameters are reported and do not stop the boot.

use std::time::Duration;

use tenfold_lab::image::Firmware;
use tenfold_lab::options::MachineOptions;
use tenfold_tests::{BOOT_TIMEOUT, boot, boot_with, build_image};

#[test]
fn banner_names_tenfold_version_and_boot_time() {
    let mut guest = boot(&[]);
    let banner = guest.wait_for("Tenfold", BOOT_TIMEOUT).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(banner.text.contains(&format!("Tenfold {version} booted in ")), "{}", banner.text);
    let ms: f64 = banner.text.split("booted in ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(ms > 0.0 && ms < 10_000.0, "implausible boot time {ms} ms");
    guest.wait_for("kernel ready", Duration::from_secs(30)).unwrap();
}

#[test]
fn bad_kernel_parameters_are_reported_and_ignored() {
    let mut guest = boot(&["log=loud", "frobnicate=1", "heap_max_mib=-3"]);
    for word in ["log=loud", "frobnicate=1", "heap_max_mib=-3"] {
        let line = guest.wait_for(&format!("ignoring `{word}`"), BOOT_TIMEOUT).unwrap();
        assert!(line.text.contains("valid: log="), "{}", line.text);
    }
    guest.wait_for("kernel ready", Duration::from_secs(30)).unwrap();
}

#[test]
fn log_level_parameter_takes_effect() {
    let mut guest = boot(&["log=debug"]);
    guest.wait_for("DEBUG memory::heap", BOOT_TIMEOUT).unwrap();
    guest.wait_for("kernel ready", Duration::from_secs(30)).unwrap();
}

#[test]
fn uefi_boot_reaches_the_banner() {
    let image = build_image(Firmware::Uefi);
    let options = MachineOptions { uefi: true, ..MachineOptions::default() };
    let mut guest = boot_with(&image, options, &[]);
    guest.wait_for("Tenfold", BOOT_TIMEOUT).unwrap();
    guest.wait_for("kernel ready", Duration::from_secs(30)).unwrap();
}
