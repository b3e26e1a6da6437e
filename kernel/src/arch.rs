//! The one place that picks the CPU architecture. The rest of the kernel
//! names `arch::…` and never a chip.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
