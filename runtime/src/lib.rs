//! Tenfold's concurrency runtime: the logic of scheduling and blocking,
//! written once, arch-neutral, and unit-tested on the host.
//!
//! - [`sched`]: the scheduling policy (who runs next, for how long) and the
//!   per-thread accounting. The kernel supplies the mechanism (timer,
//!   context switch) in `kernel/src/arch/`.
//! - [`sync`]: blocking primitives and CSP channels over the [`sync::Platform`]
//!   trait — the kernel's threads in Tenfold, `std` threads in the host tests.
//! - [`executor`]: the event loop (reactor model): a single-threaded async
//!   executor with explicit phases, timers, join handles and cancellation.
//! - [`chaos`]: the markers (`TENFOLD-CRASH`, `-BLOCK`, `-SPIN`) a
//!   `chaos=on` server misbehaves on, found across reads (used by kernel
//!   threads and ring-3 handlers alike).
//! - [`supervise`]: OTP supervision (strategies, restart types, intensity,
//!   back-off) as a state machine its host — the kernel — drives.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod chaos;
pub mod executor;
pub mod sched;
pub mod supervise;
pub mod sync;
