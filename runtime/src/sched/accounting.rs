//! Per-thread accounting, kept by the run queue as it makes decisions: CPU
//! time, context switches by cause, and time spent runnable but waiting for
//! a CPU (the scheduler's own latency, visible per thread in `ps`).

/// What a thread has used and waited, in nanoseconds and counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Time on a CPU.
    pub cpu_ns: u64,
    /// Times the thread gave up the CPU itself (blocked, slept, yielded, exited).
    pub voluntary_switches: u64,
    /// Times it was preempted (slice used up, or a waking thread had a better claim).
    pub involuntary_switches: u64,
    /// Time runnable but not running.
    pub wait_ns: u64,
    /// Longest single wait while runnable: the starvation bound, observed.
    pub max_wait_ns: u64,
    /// Times it was picked to run.
    pub runs: u64,
}
