//! What `TENFOLD-BLOCK` and `TENFOLD-SPIN` (`chaos=on`) make the code
//! serving a connection do, in whichever model serves it: a blocking call
//! ([`tenfold_net::chaos::STALL_MS`] of sleep: the thread parks) or a
//! CPU-bound loop as long that never yields (only the timer can take the
//! CPU away). The same code in every model, so what differs in the lab's
//! figures is the model: on the event loop's thread either one stalls every
//! connection; on a connection thread of its own, only that connection.

use core::time::Duration;

use tenfold_net::chaos::{Marker, STALL_MS};

use crate::{sched, time};

/// Blocks or spins for a marker; `false` for a marker it does not handle
/// (a crash is each model's own business).
pub fn stall(marker: Marker) -> bool {
    let tid = sched::current().tid();
    match marker {
        Marker::Block => {
            log::info!("chaos: TENFOLD-BLOCK in thread {tid}: a {STALL_MS} ms blocking call");
            sched::sleep(Duration::from_millis(STALL_MS));
            true
        }
        Marker::Spin => {
            log::info!("chaos: TENFOLD-SPIN in thread {tid}: a {STALL_MS} ms CPU-bound loop");
            let until = time::now_ns() + STALL_MS * 1_000_000;
            while time::now_ns() < until {
                core::hint::spin_loop();
            }
            true
        }
        Marker::Crash => false,
    }
}

/// The event loop's marker handler: it runs on the network thread, inside
/// the connection's task, so a crash takes the whole loop down (its
/// supervisor restarts it; see [`super::supervise`]).
pub fn on_reactor_marker(marker: Marker) {
    if !stall(marker) {
        crash("event loop");
    }
}

/// `TENFOLD-CRASH`: a real CPU fault (a read of an address nothing is
/// mapped at) in a supervised kernel thread, `what` serves the connection.
pub fn crash(what: &str) -> ! {
    log::warn!("chaos: TENFOLD-CRASH seen; the {what} serving it faults now");
    let address = 0x0000_dead_0000 as *const u64;
    // SAFETY: none needed — this read faults on purpose (nothing is mapped
    // there); every thread that calls this is supervised, so the fault
    // kills the thread and its supervisor takes over.
    unsafe { address.read_volatile() };
    unreachable!("the read above faults")
}
