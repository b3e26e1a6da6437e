//! [`StdPlatform`]: the [`Platform`] of the host tests, on `std` threads, and
//! the test helpers shared by the `sync` tests.

use std::sync::OnceLock;
#[cfg(test)]
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::Platform;

/// `std` threads: `park_timeout` / `unpark`, and a process-wide monotonic clock.
#[derive(Debug)]
pub struct StdPlatform;

/// A `std` thread handle, compared by thread id.
#[derive(Clone, Debug)]
pub struct StdThread(thread::Thread);

impl PartialEq for StdThread {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl Platform for StdPlatform {
    type Thread = StdThread;

    fn current() -> StdThread {
        StdThread(thread::current())
    }

    fn park(deadline_ns: Option<u64>) {
        match deadline_ns {
            None => thread::park(),
            Some(deadline) => {
                let now = Self::now_ns();
                if deadline > now {
                    thread::park_timeout(Duration::from_nanos(deadline - now));
                }
            }
        }
    }

    fn unpark(thread: &StdThread) {
        thread.0.unpark();
    }

    fn now_ns() -> u64 {
        u64::try_from(clock_base().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn critical<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

#[cfg(test)]
/// How long any single test body may run before it counts as hung.
const TEST_CAP: Duration = Duration::from_secs(10);

/// Runs `body` on its own thread and fails the test if it has not finished
/// within [`TEST_CAP`], so a deadlock or lost wake-up fails instead of hanging.
#[cfg(test)]
pub(crate) fn bounded<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (done_tx, done_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = done_tx.send(body());
    });
    match done_rx.recv_timeout(TEST_CAP) {
        Ok(result) => {
            let _ = worker.join();
            result
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test body still running after {TEST_CAP:?}: deadlock or lost wake-up")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("test body ended without a result"),
        },
    }
}

/// Polls `condition` until it holds; panics after [`TEST_CAP`]. Used to wait
/// for another thread to reach a blocked state observable through counters.
#[cfg(test)]
pub(crate) fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < TEST_CAP, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}
