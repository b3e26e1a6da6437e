//! Scheduling policy: which runnable thread runs next and for how long, and
//! what each thread has used. The kernel owns the mechanism (timer interrupt,
//! context switch, per-CPU state) and asks this policy at every decision.
//!
//! - [`priority`]: priority levels and the CPU-share weight of each.
//! - [`fair`]: the per-CPU run queue, a weighted fair queue ordered by
//!   virtual runtime, with its guarantees.
//! - [`accounting`]: per-thread CPU time, switches and wait time.

pub mod accounting;
pub mod fair;
pub mod priority;

pub use accounting::ThreadStats;
pub use fair::{Enqueue, FairQueue, SchedConfig, SchedEntity, Switch};
pub use priority::Priority;
