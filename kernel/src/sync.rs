//! The runtime's blocking primitives and CSP channels, bound to Tenfold's
//! threads: [`KernelThreads`] implements `tenfold_runtime::sync::Platform`
//! with the scheduler's park/unpark and interrupt masking, and the aliases
//! below fix the platform so kernel code writes `sync::channel(4)`.

use tenfold_runtime::sync as rt;

use crate::arch::cpu;
use crate::sched::{self, ThreadRef};
use crate::time;

/// Kernel threads as the runtime's platform.
pub struct KernelThreads;

impl rt::Platform for KernelThreads {
    type Thread = ThreadRef;

    fn current() -> ThreadRef {
        sched::current()
    }

    fn park(deadline_ns: Option<u64>) {
        sched::park(deadline_ns);
    }

    fn unpark(thread: &ThreadRef) {
        sched::unpark(*thread);
    }

    fn now_ns() -> u64 {
        time::now_ns()
    }

    fn critical<R>(f: impl FnOnce() -> R) -> R {
        cpu::without_interrupts(f)
    }
}

pub type Mutex<T> = rt::Mutex<KernelThreads, T>;
pub type Condvar = rt::Condvar<KernelThreads>;
pub type Semaphore = rt::Semaphore<KernelThreads>;
pub type Event = rt::Event<KernelThreads>;
pub type Sender<T> = rt::Sender<KernelThreads, T>;
pub type Receiver<T> = rt::Receiver<KernelThreads, T>;
pub type Select<'a, R> = rt::Select<'a, KernelThreads, R>;

/// A bounded channel between kernel threads (capacity 0: rendezvous).
pub fn channel<T: Send>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    rt::channel(capacity)
}
