//! Debugging: `--gdb` starts QEMU halted with a gdb stub, and the gdb
//! command the runner prints loads the kernel's symbols at the right place —
//! a hardware breakpoint on `kernel_main` is hit with source lines.

use std::process::Command;
use std::time::Duration;

use tenfold_lab::options::MachineOptions;
use tenfold_lab::prereq::which;
use tenfold_lab::qemu::gdb_arguments;
use tenfold_tests::{boot_image, boot_with, skip};

#[test]
fn gdb_breaks_in_kernel_main_with_symbols() {
    if which("gdb").is_none() {
        return skip("gdb_breaks_in_kernel_main_with_symbols", "gdb is not installed (apt-get install gdb)");
    }
    let options = MachineOptions { gdb: true, ..MachineOptions::default() };
    let mut guest = boot_with(boot_image(), options, &[]);
    // QEMU is halted until gdb continues it; give the stub a moment to listen.
    std::thread::sleep(Duration::from_millis(500));
    let output = Command::new("timeout")
        .arg("120")
        .arg("gdb")
        .arg("-batch")
        .args(gdb_arguments(&boot_image().kernel_elf))
        .args(["-ex", "hbreak tenfold::kernel_main", "-ex", "continue", "-ex", "bt 1", "-ex", "kill"])
        .output()
        .expect("running gdb");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("tenfold::kernel_main (boot="), "gdb output:\n{stdout}");
    assert!(stdout.contains("src/main.rs:"), "gdb output:\n{stdout}");
    guest.kill();
}
