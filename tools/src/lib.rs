//! The host side of Tenfold: building boot images, launching QEMU, reading
//! the serial console, symbolising fault reports, and (in `main.rs`) the
//! `cargo lab` commands. The integration tests in `tests/` use the same
//! library, so what they boot is exactly what `cargo run` boots.

pub mod accel;
pub mod bench_echo;
pub mod bench_fuzz;
pub mod bench_isolation;
pub mod boot_time;
pub mod demos;
pub mod image;
pub mod initrd;
pub mod isolation_demo;
pub mod lab_report;
pub mod linux_guest;
pub mod loadgen;
pub mod net_demos;
pub mod netns;
pub mod options;
pub mod plot;
pub mod prereq;
pub mod progress;
pub mod qemu;
pub mod scenario;
pub mod stall_demo;
pub mod supervision_tree;
pub mod symbolize;
pub mod synflood;
pub mod workspace;
