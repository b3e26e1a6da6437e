//! Monotonic time since kernel entry, from the timestamp counter calibrated
//! against the PIT at boot.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use crate::arch;

static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(FALLBACK_HZ);
const FALLBACK_HZ: u64 = 2_000_000_000;

/// Calibrates the TSC; `entry_tsc` is the counter read at kernel entry.
pub fn init(entry_tsc: u64) {
    ENTRY_TSC.store(entry_tsc, Ordering::Relaxed);
    let hz = arch::tsc::calibrate_hz().unwrap_or_else(|| {
        log::warn!("TSC calibration failed (no PIT?); assuming {FALLBACK_HZ} Hz");
        FALLBACK_HZ
    });
    TSC_HZ.store(hz, Ordering::Relaxed);
    log::debug!("TSC calibrated against the PIT: {} MHz", hz / 1_000_000);
}

/// The TSC frequency measured at boot.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Converts a TSC delta to a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = u128::from(tsc_hz());
    Duration::from_nanos((u128::from(ticks) * 1_000_000_000 / hz) as u64)
}

/// Time since kernel entry.
pub fn since_entry() -> Duration {
    let now = arch::cpu::timestamp_counter();
    ticks_to_duration(now.saturating_sub(ENTRY_TSC.load(Ordering::Relaxed)))
}

/// Displays a duration as milliseconds with one decimal, e.g. `12.3`.
pub struct Millis(pub Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let tenths = self.0.as_micros() / 100;
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

/// Monotonic nanoseconds since kernel entry.
pub fn now_ns() -> u64 {
    since_entry().as_nanos() as u64
}
