//! The demos and benchmarks run to the end on the kernel under test (their
//! figures are printed, not asserted: speed is reported, never a test
//! verdict; the scenario's own checks fail the run if it did not happen).

use tenfold_lab::demos::{self, Bench, Demo};
use tenfold_lab::options::MachineOptions;
use tenfold_tests::boot_image;

#[test]
fn scheduler_demo_runs() {
    demos::run_demo(boot_image(), Demo::Scheduler, &MachineOptions::default()).unwrap();
}

#[test]
fn fairness_demo_runs() {
    demos::run_demo(boot_image(), Demo::Fairness, &MachineOptions::default()).unwrap();
}

#[test]
fn sched_bench_runs() {
    demos::run_bench(boot_image(), Bench::Sched, &MachineOptions::default(), None, 1).unwrap();
}

#[test]
fn idle_bench_runs() {
    demos::run_bench(boot_image(), Bench::Idle, &MachineOptions::default(), None, 1).unwrap();
}

#[test]
fn multiplexing_demo_runs() {
    demos::run_demo(boot_image(), Demo::Multiplexing, &MachineOptions::default()).unwrap();
}

#[test]
fn backpressure_demo_runs() {
    demos::run_demo(boot_image(), Demo::Backpressure, &MachineOptions::default()).unwrap();
}

#[test]
fn bounding_demo_runs() {
    demos::run_demo(boot_image(), Demo::Bounding, &MachineOptions::default()).unwrap();
}
