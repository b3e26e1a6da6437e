//! The kernel boots, prints its banner and becomes ready; bad kernel
//! parameters are reported and do not stop the boot.

use std::time::Duration;

use tenfold_lab::image::Firmware;
use tenfold_lab::options::{MachineOptions, NoNetwork};
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
fn the_default_boot_is_pvh_with_the_command_line_from_qemu() {
    let mut guest = boot(&["log=debug"]);
    guest.wait_for("booted by PVH", BOOT_TIMEOUT).unwrap();
    // The parameters arrive by the PVH command line (QEMU's -append).
    guest.wait_for("command line: log=debug", BOOT_TIMEOUT).unwrap();
    guest.wait_for("kernel ready", Duration::from_secs(30)).unwrap();
}

#[test]
fn bios_image_boots_with_parameters_from_fw_cfg() {
    let image = build_image(Firmware::Bios);
    let options = MachineOptions { bios: true, ..MachineOptions::default() };
    let mut guest = boot_with(&image, options, &["log=debug"]);
    guest.wait_for("booted by bootloader", BOOT_TIMEOUT).unwrap();
    guest.wait_for("command line: log=debug", BOOT_TIMEOUT).unwrap();
    guest.wait_for("kernel ready", Duration::from_secs(30)).unwrap();
}

#[test]
fn boots_without_a_network_card() {
    let options = MachineOptions { net: Some(NoNetwork::None), ..MachineOptions::default() };
    let mut guest = boot_with(tenfold_tests::boot_image(), options, &[]);
    guest.wait_for("kernel ready", BOOT_TIMEOUT).unwrap();
    let transcript = guest.transcript();
    assert!(!transcript.contains("virtio-net at"), "{transcript}");
}

#[test]
fn more_cpus_are_reported_on_every_boot_path() {
    for (firmware, bios) in [(Firmware::Pvh, false), (Firmware::Bios, true)] {
        let image = build_image(firmware);
        let options =
            MachineOptions { smp: 2, bios, net: Some(NoNetwork::None), ..MachineOptions::default() };
        let mut guest = boot_with(&image, options, &[]);
        guest.wait_for("2 CPUs present", BOOT_TIMEOUT).unwrap();
        guest.wait_for("kernel ready", Duration::from_secs(30)).unwrap();
    }
}

#[test]
fn memory_beyond_4_gib_is_usable_by_pvh() {
    // 5 GiB: the PC machine puts RAM above 4 GiB, which the PVH stub's
    // 2 MiB pages do not cover; the kernel maps it with 1 GiB pages.
    let options = MachineOptions { memory: 5120, net: Some(NoNetwork::None), ..MachineOptions::default() };
    let mut guest = boot_with(tenfold_tests::boot_image(), options, &[]);
    let banner = guest.wait_for("Tenfold", BOOT_TIMEOUT).unwrap();
    let mib: u64 =
        banner.text.split(" MiB usable").next().unwrap().rsplit('(').next().unwrap().parse().unwrap();
    assert!(mib > 4900, "only {mib} MiB usable of 5120: {}", banner.text);
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
