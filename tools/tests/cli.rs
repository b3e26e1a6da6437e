//! The `cargo lab` command line: unknown options get an error that lists the
//! valid ones, without building or booting anything.

use std::process::Command;

fn lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lab")).args(args).output().expect("running lab")
}

#[test]
fn unknown_runner_option_lists_the_valid_ones() {
    // `cargo run -- --frobnicate`: options without a subcommand boot.
    let output = lab(&["--frobnicate"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--frobnicate"), "{stderr}");
    assert!(stderr.contains("valid runner options: --accel <ACCEL>, --smp"), "{stderr}");
    assert!(
        stderr.contains("--port <N>") && stderr.contains("--gdb") && stderr.contains("--uefi"),
        "{stderr}"
    );
    let output = lab(&["boot", "--kernel", "kernel.elf", "--frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn contradictory_options_are_refused_before_anything_is_built() {
    for args in
        [&["--tap", "tap0", "--port", "1"][..], &["--net", "none", "--port", "1"], &["--bios", "--uefi"]]
    {
        let output = lab(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("cannot be used with"), "{args:?}: {stderr}");
    }
}

#[test]
fn bad_option_values_are_explained() {
    let output = lab(&["--accel", "hvf"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("possible values: tcg, kvm, auto"), "{stderr}");
}

#[test]
fn help_lists_the_lab_commands() {
    let output = lab(&["--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for command in ["boot", "boot-time", "symbolize", "test"] {
        assert!(stdout.contains(command), "{stdout}");
    }
}

#[test]
fn model_all_is_for_bench_echo_only() {
    for args in [
        &["--model", "all"][..],
        &["demo", "scheduler", "--model", "all"],
        &["bench", "sched", "--model", "all"],
    ] {
        let output = lab(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("--model all applies to `cargo lab bench echo` only"), "{args:?}: {stderr}");
    }
}
