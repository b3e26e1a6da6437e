//! Self-tests of blocking and CSP on kernel threads: channel FIFO and
//! causality, backpressure that parks only the sender, rendezvous hand-off,
//! disconnection both ways, select with timeout, mutual exclusion.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use tenfold_runtime::sched::Priority;
use tenfold_runtime::sync::{RecvTimeoutError, SelectTimeout};

use super::threads::{ticker, wait_until};
use crate::sync::{self, Mutex, Select};
use crate::{sched, time};

const STACK: u64 = 32 * 1024;

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    sched::spawn(name, Priority::NORMAL, STACK, f).expect("spawn");
}

pub fn channel_is_fifo_across_threads() {
    let (tx, rx) = sync::channel::<u32>(4);
    spawn("producer", move || {
        for value in 0..1000 {
            tx.send(value).expect("receiver alive");
        }
    });
    for expected in 0..1000 {
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(expected));
    }
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Err(RecvTimeoutError::Disconnected));
}

pub fn a_full_channel_parks_only_the_sender() {
    let (tx, rx) = sync::channel::<u32>(2);
    let sent = Arc::new(AtomicU64::new(0));
    let progress = sent.clone();
    spawn("eager-sender", move || {
        for value in 0..10 {
            tx.send(value).expect("receiver alive");
            progress.fetch_add(1, Ordering::SeqCst);
        }
    });
    let bystander = ticker("bystander");
    let parked = wait_until(Duration::from_secs(5), || rx.blocked_senders() == 1);
    assert!(parked, "the sender never parked on the full channel");
    assert_eq!(sent.load(Ordering::SeqCst), 2, "the sender went past a full channel");
    assert_eq!(rx.len(), 2);
    // While the sender stays parked, everyone else runs.
    let ticks_before = bystander.count();
    sched::sleep(Duration::from_millis(50));
    assert_eq!(rx.blocked_senders(), 1, "the sender left without room");
    assert_eq!(sent.load(Ordering::SeqCst), 2, "the sender went past a full channel");
    let ticks = bystander.count() - ticks_before;
    assert!(ticks >= 10, "a bystander thread kept running ({ticks} ticks)");
    let received: Vec<u32> =
        (0..10).map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("value")).collect();
    assert_eq!(received, (0..10).collect::<Vec<_>>());
    assert!(wait_until(Duration::from_secs(2), || sent.load(Ordering::SeqCst) == 10));
}

pub fn rendezvous_send_waits_for_the_receiver() {
    let (tx, rx) = sync::channel::<u32>(0);
    let delivered = Arc::new(AtomicBool::new(false));
    let flag = delivered.clone();
    spawn("rendezvous", move || {
        tx.send(7).expect("receiver alive");
        flag.store(true, Ordering::SeqCst);
    });
    let offered = wait_until(Duration::from_secs(5), || rx.blocked_senders() == 1);
    assert!(offered, "the rendezvous sender never parked with its offer");
    // Give a broken send the chance to return without a receiver.
    sched::sleep(Duration::from_millis(30));
    assert!(!delivered.load(Ordering::SeqCst), "send returned before anyone received");
    assert_eq!(rx.blocked_senders(), 1, "the sender stopped waiting with nobody receiving");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(7));
    assert!(wait_until(Duration::from_secs(2), || delivered.load(Ordering::SeqCst)));
}

pub fn disconnection_is_seen_both_ways() {
    let (tx, rx) = sync::channel::<u32>(1);
    drop(rx);
    let error = tx.send(5).expect_err("no receiver");
    assert_eq!(error.into_inner(), 5, "the value comes back");

    let (tx, rx) = sync::channel::<u32>(4);
    tx.send(1).expect("room");
    drop(tx);
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(1), "buffered values drain first");
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Err(RecvTimeoutError::Disconnected));
}

pub fn select_takes_the_ready_channel_or_times_out() {
    let (tx_a, rx_a) = sync::channel::<u32>(1);
    let (tx_b, rx_b) = sync::channel::<u32>(1);
    let start = time::now_ns();
    let outcome = Select::new()
        .recv(&rx_a, |value| value.map(|v| ('a', v)))
        .recv(&rx_b, |value| value.map(|v| ('b', v)))
        .timeout(Duration::from_millis(30))
        .run();
    assert!(matches!(outcome, Err(SelectTimeout)));
    assert!(time::now_ns() - start >= 30_000_000, "timed out early");

    spawn("late-sender", move || {
        // Send only once the select below is parked on both channels, so it
        // is the wake-up that delivers; otherwise drop the sender, which
        // turns the expected outcome into a disconnection and fails.
        if wait_until(Duration::from_secs(5), || tx_b.blocked_receivers() == 1) {
            tx_b.send(42).expect("receiver alive");
        }
    });
    let outcome = Select::new()
        .recv(&rx_a, |value| value.map(|v| ('a', v)))
        .recv(&rx_b, |value| value.map(|v| ('b', v)))
        .timeout(Duration::from_secs(5))
        .run();
    assert_eq!(outcome.ok().and_then(Result::ok), Some(('b', 42)));
    drop(tx_a);
}

pub fn mutex_excludes_under_preemption() {
    let counter = Arc::new(Mutex::new(0u64));
    let done = Arc::new(AtomicU64::new(0));
    for _ in 0..4 {
        let counter = counter.clone();
        let done = done.clone();
        spawn("incrementer", move || {
            for round in 0..500 {
                let mut value = counter.lock();
                let read = *value;
                if round % 50 == 0 {
                    sched::yield_now(); // hand the CPU over inside the critical section
                }
                *value = read + 1;
            }
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    assert!(wait_until(Duration::from_secs(20), || done.load(Ordering::SeqCst) == 4));
    assert_eq!(*counter.lock(), 2000, "lost updates");
}

pub fn order_across_channels_is_causal() {
    let (tx_a, rx_a) = sync::channel::<u32>(8);
    let (tx_b, rx_b) = sync::channel::<u32>(8);
    spawn("two-channels", move || {
        for value in 0..100 {
            tx_a.send(value).expect("a alive");
            tx_b.send(value).expect("b alive");
        }
    });
    for value in 0..100 {
        assert_eq!(rx_b.recv_timeout(Duration::from_secs(5)), Ok(value));
        // A's value was sent before B's, so it is already there.
        assert_eq!(rx_a.try_recv().ok(), Some(value), "causal order across channels broken");
    }
}

pub fn semaphore_bounds_concurrency() {
    let permits = Arc::new(sync::Semaphore::new(2));
    let inside = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    for _ in 0..5 {
        let (permits, inside, most, done) = (permits.clone(), inside.clone(), most.clone(), done.clone());
        spawn("permit-taker", move || {
            for _ in 0..5 {
                permits.acquire();
                let now_inside = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now_inside, Ordering::SeqCst);
                sched::sleep(Duration::from_millis(1));
                inside.fetch_sub(1, Ordering::SeqCst);
                permits.release();
            }
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    assert!(wait_until(Duration::from_secs(10), || done.load(Ordering::SeqCst) == 5));
    assert_eq!(most.load(Ordering::SeqCst), 2, "never more than 2 inside, and 2 did get in");
    assert_eq!(permits.available_permits(), 2, "every permit came back");
}

pub fn condvar_and_event_wake_waiters() {
    const WAKE_DEADLINE: Duration = Duration::from_secs(10);
    let pair = Arc::new((Mutex::new(false), sync::Condvar::new()));
    let event = Arc::new(sync::Event::new());
    let (pair2, event2) = (pair.clone(), event.clone());
    // The notifier acts only once the boot thread is parked on each, so the
    // waits below must be woken, never satisfied on their first check. A lost
    // wake-up (or a notifier that gave up) shows as a wait that lasted until
    // its deadline.
    spawn("notifier", move || {
        let (lock, condvar) = &*pair2;
        if wait_until(Duration::from_secs(5), || condvar.waiting() == 1) {
            *lock.lock() = true;
            condvar.notify_all();
        }
        if wait_until(Duration::from_secs(5), || event2.waiting() == 1) {
            event2.set();
        }
    });
    let (lock, condvar) = &*pair;
    // One wait, no loop: the condvar has no spurious wake-ups, and a lost
    // notification must not be papered over by a re-check of the flag.
    let (ready, timed_out) = condvar.wait_timeout(lock.lock(), WAKE_DEADLINE);
    assert!(!timed_out && *ready, "the condvar waiter was not notified");
    drop(ready);
    let start = time::now_ns();
    assert!(event.wait_timeout(WAKE_DEADLINE), "the event was never set");
    let waited = Duration::from_nanos(time::now_ns() - start);
    assert!(waited < WAKE_DEADLINE, "the event waiter slept to its deadline: set() did not wake it");
    let never = sync::Event::new();
    let start = time::now_ns();
    assert!(!never.wait_timeout(Duration::from_millis(20)), "an unset event times out");
    assert!(time::now_ns() - start >= 20_000_000);
    let (_guard, timed_out) = condvar.wait_timeout(lock.lock(), Duration::from_millis(5));
    assert!(timed_out, "nobody notifies: the wait times out");
}

/// A thread woken by a CPU-bound thread (not by the timer) gets the CPU
/// within a bounded time, even when its claim is too weak to preempt at once.
pub fn a_thread_woken_by_a_spinner_is_not_starved() {
    let (to_woken, from_spinner) = sync::channel::<u64>(1);
    let (to_boot, replies) = sync::channel::<u64>(1);
    spawn("woken", move || {
        // Run a while first: a high virtual runtime, so waking it later
        // does not preempt the spinner (the path that once left the timer off).
        let end = time::now_ns() + 30_000_000;
        while time::now_ns() < end {
            core::hint::spin_loop();
        }
        if let Ok(sent_at) = from_spinner.recv() {
            let _ = to_boot.send(time::now_ns() - sent_at);
        }
    });
    // Start the spinner only once the woken thread is parked in `recv`: then
    // the spinner's send is what wakes it.
    let parked = wait_until(Duration::from_secs(5), || to_woken.blocked_receivers() == 1);
    assert!(parked, "the thread to be woken never parked in recv");
    spawn("spinner", move || {
        to_woken.send(time::now_ns()).expect("woken thread alive");
        let end = time::now_ns() + 1_000_000_000;
        while time::now_ns() < end {
            core::hint::spin_loop();
        }
    });
    let delay = replies.recv_timeout(Duration::from_secs(5)).expect("the woken thread never ran");
    log::info!("woken by a spinning thread, ran after {} µs", delay / 1000);
    // The bug this guards made it wait the spinner's whole second.
    assert!(delay < 500_000_000, "the woken thread waited {} ms behind a spinner", delay / 1_000_000);
}
