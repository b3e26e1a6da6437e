//! Host tests of the channels on `std` threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::super::std_platform::{StdPlatform, bounded, wait_for};
use super::*;

fn chan<T>(capacity: usize) -> (Sender<StdPlatform, T>, Receiver<StdPlatform, T>) {
    channel(capacity)
}

fn assert_within(waited: Duration, at_least: Duration) {
    assert!(waited >= at_least && waited < at_least + Duration::from_secs(2), "waited {waited:?}");
}

#[test]
fn endpoints_are_send_and_sync() {
    fn assert_send_sync<S: Send + Sync>() {}
    assert_send_sync::<Sender<StdPlatform, Vec<u8>>>();
    assert_send_sync::<Receiver<StdPlatform, Vec<u8>>>();
}

#[test]
fn fifo_with_a_single_producer() {
    bounded(|| {
        let (sender, receiver) = chan(4);
        let producer = std::thread::spawn(move || {
            for item in 0..10_000_u32 {
                sender.send(item).unwrap();
            }
        });
        let received: Vec<u32> = receiver.iter().collect();
        producer.join().unwrap();
        assert!(received.iter().copied().eq(0..10_000), "out of order or missing");
    });
}

#[test]
fn per_producer_order_is_preserved_with_many_producers() {
    bounded(|| {
        const PRODUCERS: usize = 4;
        const ITEMS: u32 = 2_000;
        let (sender, receiver) = chan(8);
        std::thread::scope(|scope| {
            for producer in 0..PRODUCERS {
                let sender = sender.clone();
                scope.spawn(move || {
                    for item in 0..ITEMS {
                        sender.send((producer, item)).unwrap();
                    }
                });
            }
            drop(sender);
            let mut next = [0_u32; PRODUCERS];
            for (producer, item) in receiver.iter() {
                assert_eq!(item, next[producer], "producer {producer} out of order");
                next[producer] += 1;
            }
            assert_eq!(next, [ITEMS; PRODUCERS]);
        });
    });
}

#[test]
fn send_blocks_while_full_until_a_receive() {
    bounded(|| {
        let (sender, receiver) = chan(2);
        sender.send(1).unwrap();
        sender.send(2).unwrap();
        assert_eq!(sender.try_send(3), Err(TrySendError::Full(3)));
        let sent = Arc::new(AtomicBool::new(false));
        let blocked_sender = {
            let (sender, sent) = (sender.clone(), sent.clone());
            std::thread::spawn(move || {
                sender.send(3).unwrap();
                sent.store(true, Ordering::SeqCst);
                Instant::now()
            })
        };
        wait_for("sender to block", || sender.blocked_senders() == 1);
        std::thread::sleep(Duration::from_millis(30));
        assert!(!sent.load(Ordering::SeqCst), "send completed on a full channel");
        assert_eq!(receiver.len(), 2);
        let received_at = Instant::now();
        assert_eq!(receiver.recv(), Ok(1));
        let sent_at = blocked_sender.join().unwrap();
        assert!(sent_at >= received_at, "send finished before room was made");
        assert_eq!(receiver.try_iter().collect::<Vec<_>>(), [2, 3]);
    });
}

#[test]
fn rendezvous_send_completes_only_when_taken() {
    bounded(|| {
        let (sender, receiver) = chan(0);
        let taken = Arc::new(AtomicBool::new(false));
        let blocked_sender = {
            let taken = taken.clone();
            std::thread::spawn(move || {
                sender.send(7).unwrap();
                assert!(taken.load(Ordering::SeqCst), "send returned before the value was taken");
            })
        };
        wait_for("sender to offer", || receiver.blocked_senders() == 1);
        assert_eq!(receiver.len(), 1, "the offer is in the channel");
        std::thread::sleep(Duration::from_millis(30));
        assert!(!blocked_sender.is_finished(), "rendezvous send returned with no receiver");
        taken.store(true, Ordering::SeqCst);
        assert_eq!(receiver.recv(), Ok(7));
        blocked_sender.join().unwrap();
    });
}

#[test]
fn rendezvous_try_send_needs_a_waiting_receiver() {
    bounded(|| {
        let (sender, receiver) = chan(0);
        assert_eq!(sender.try_send(1), Err(TrySendError::Full(1)), "no receiver");
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| receiver.recv());
            wait_for("receiver to wait", || sender.blocked_receivers() == 1);
            assert_eq!(sender.try_send(2), Ok(()));
            assert_eq!(sender.try_send(3), Err(TrySendError::Full(3)), "the receiver is already matched");
            assert_eq!(waiting.join().unwrap(), Ok(2));
        });
    });
}

#[test]
fn rendezvous_send_timeout_returns_the_value() {
    bounded(|| {
        let (sender, receiver) = chan(0);
        let start = Instant::now();
        assert_eq!(
            sender.send_timeout(String::from("unsent"), Duration::from_millis(30)),
            Err(SendTimeoutError::Timeout("unsent".into()))
        );
        assert_within(start.elapsed(), Duration::from_millis(30));
        assert_eq!(receiver.len(), 0, "the offer was withdrawn");
        assert_eq!(receiver.blocked_senders(), 0);
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn buffered_send_timeout_returns_the_value() {
    let (sender, _receiver) = chan(1);
    sender.send(1).unwrap();
    let start = Instant::now();
    assert_eq!(sender.send_timeout(2, Duration::from_millis(20)), Err(SendTimeoutError::Timeout(2)));
    assert_within(start.elapsed(), Duration::from_millis(20));
    assert_eq!(sender.blocked_senders(), 0);
}

#[test]
fn recv_timeout_times_out_within_bounds() {
    let (_sender, receiver) = chan::<u8>(3);
    let start = Instant::now();
    assert_eq!(receiver.recv_timeout(Duration::from_millis(50)), Err(RecvTimeoutError::Timeout));
    assert_within(start.elapsed(), Duration::from_millis(50));
    assert_eq!(receiver.blocked_receivers(), 0);
}

#[test]
fn dropping_all_receivers_returns_values_to_senders() {
    bounded(|| {
        // Not blocked: the value comes straight back.
        let (sender, receiver) = chan(1);
        let second_receiver = receiver.clone();
        drop(receiver);
        assert!(!sender.is_disconnected(), "one receiver is left");
        drop(second_receiver);
        assert!(sender.is_disconnected());
        assert_eq!(sender.send(vec![1]), Err(SendError(vec![1])));
        assert_eq!(sender.try_send(vec![2]), Err(TrySendError::Disconnected(vec![2])));

        // Blocked on a full buffered channel, and blocked offering on a
        // rendezvous channel: both are woken with their value.
        for capacity in [1, 0] {
            let (sender, receiver) = chan(capacity);
            if capacity == 1 {
                sender.send(0).unwrap();
            }
            std::thread::scope(|scope| {
                let blocked = scope.spawn(|| sender.send(42));
                wait_for("sender to block", || receiver.blocked_senders() == 1);
                drop(receiver);
                assert_eq!(blocked.join().unwrap(), Err(SendError(42)), "capacity {capacity}");
            });
        }
    });
}

#[test]
fn dropping_all_senders_lets_receivers_drain_then_disconnect() {
    bounded(|| {
        let (sender, receiver) = chan(4);
        sender.send(1).unwrap();
        sender.send(2).unwrap();
        drop(sender);
        assert!(receiver.is_disconnected());
        assert_eq!(receiver.recv(), Ok(1));
        assert_eq!(receiver.try_recv(), Ok(2));
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(receiver.recv_timeout(Duration::from_secs(1)), Err(RecvTimeoutError::Disconnected));

        // A blocked receiver is woken by the last sender leaving.
        let (sender, receiver) = chan::<u8>(0);
        let second_sender = sender.clone();
        std::thread::scope(|scope| {
            let blocked = scope.spawn(|| receiver.recv());
            wait_for("receiver to block", || receiver.blocked_receivers() == 1);
            drop(sender);
            std::thread::sleep(Duration::from_millis(10));
            assert!(!blocked.is_finished(), "one sender is left");
            drop(second_sender);
            assert_eq!(blocked.join().unwrap(), Err(Disconnected));
        });
    });
}

#[test]
fn close_stops_sends_but_lets_receivers_drain() {
    bounded(|| {
        let (sender, receiver) = chan(2);
        sender.send('a').unwrap();
        std::thread::scope(|scope| {
            sender.send('b').unwrap();
            let blocked = scope.spawn(|| sender.send('c'));
            wait_for("sender to block", || sender.blocked_senders() == 1);
            receiver.close();
            assert_eq!(blocked.join().unwrap(), Err(SendError('c')));
        });
        assert_eq!(sender.try_send('d'), Err(TrySendError::Disconnected('d')));
        assert_eq!(receiver.iter().collect::<String>(), "ab");
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn counters_report_the_state() {
    let (sender, receiver) = chan::<u8>(3);
    assert_eq!((sender.capacity(), receiver.capacity()), (3, 3));
    assert!(receiver.is_empty());
    sender.send(1).unwrap();
    sender.send(2).unwrap();
    assert_eq!((sender.len(), receiver.len()), (2, 2));
    assert_eq!((receiver.blocked_senders(), receiver.blocked_receivers()), (0, 0));
    assert_eq!(format!("{receiver:?}"), "Receiver { capacity: 3, len: 2 }");
}

/// 4 producers × 2500 items, 3 consumers: every item exactly once, and each
/// consumer sees each producer's items in order.
fn mpmc_stress(capacity: usize) {
    const PRODUCERS: u32 = 4;
    const ITEMS: u32 = 2_500;
    let (sender, receiver) = chan(capacity);
    let mut received = std::thread::scope(|scope| {
        for producer in 0..PRODUCERS {
            let sender = sender.clone();
            scope.spawn(move || {
                for item in 0..ITEMS {
                    sender.send(producer * ITEMS + item).unwrap();
                }
            });
        }
        drop(sender);
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let receiver = receiver.clone();
                scope.spawn(move || {
                    let got: Vec<u32> = receiver.iter().collect();
                    for producer in 0..PRODUCERS {
                        let mine = got.iter().filter(|&&item| item / ITEMS == producer);
                        assert!(mine.clone().zip(mine.skip(1)).all(|(a, b)| a < b), "producer order broken");
                    }
                    got
                })
            })
            .collect();
        consumers.into_iter().flat_map(|consumer| consumer.join().unwrap()).collect::<Vec<_>>()
    });
    received.sort_unstable();
    assert!(received.into_iter().eq(0..PRODUCERS * ITEMS), "an item was lost or duplicated");
}

#[test]
fn mpmc_stress_buffered() {
    bounded(|| mpmc_stress(4));
}

#[test]
fn mpmc_stress_rendezvous() {
    bounded(|| mpmc_stress(0));
}

#[test]
fn mpmc_stress_with_timeouts_loses_nothing() {
    // Senders and receivers with tiny timeouts race withdrawals against takes
    // on a rendezvous channel: still exactly once.
    bounded(|| {
        const ITEMS: u32 = 500;
        let (sender, receiver) = chan(0);
        let mut received = std::thread::scope(|scope| {
            for producer in 0..2 {
                let sender = sender.clone();
                scope.spawn(move || {
                    for item in (0..ITEMS).map(|item| producer * ITEMS + item) {
                        let mut value = item;
                        while let Err(error) = sender.send_timeout(value, Duration::from_micros(50)) {
                            value = error.into_inner();
                        }
                    }
                });
            }
            drop(sender);
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let receiver = receiver.clone();
                    scope.spawn(move || {
                        let mut got = Vec::new();
                        loop {
                            match receiver.recv_timeout(Duration::from_micros(70)) {
                                Ok(item) => got.push(item),
                                Err(RecvTimeoutError::Timeout) => {}
                                Err(RecvTimeoutError::Disconnected) => return got,
                            }
                        }
                    })
                })
                .collect();
            consumers.into_iter().flat_map(|consumer| consumer.join().unwrap()).collect::<Vec<_>>()
        });
        received.sort_unstable();
        assert!(received.into_iter().eq(0..2 * ITEMS), "an item was lost or duplicated");
    });
}

#[test]
fn causality_across_channels() {
    // The producer sends i on A, then i on B. Having received i from B, the
    // consumer must find i already in A.
    bounded(|| {
        const ROUNDS: u32 = 5_000;
        let (a_sender, a_receiver) = chan(16);
        let (b_sender, b_receiver) = chan(16);
        let producer = std::thread::spawn(move || {
            for round in 0..ROUNDS {
                a_sender.send(round).unwrap();
                b_sender.send(round).unwrap();
            }
        });
        for round in 0..ROUNDS {
            assert_eq!(b_receiver.recv(), Ok(round));
            assert_eq!(a_receiver.try_recv(), Ok(round), "B's value arrived before A's");
        }
        producer.join().unwrap();
    });
}

#[test]
fn causality_across_channels_through_a_rendezvous() {
    // A is a rendezvous channel: once B's value exists, A's value of the same
    // round has already been taken, so A can only offer later rounds.
    bounded(|| {
        const ROUNDS: u32 = 1_000;
        let (a_sender, a_receiver) = chan(0);
        let (b_sender, b_receiver) = chan(4);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    a_sender.send(round).unwrap();
                    b_sender.send(round).unwrap();
                }
            });
            let a_drain = a_receiver.clone();
            scope.spawn(move || a_drain.iter().count());
            for round in 0..ROUNDS {
                assert_eq!(b_receiver.recv(), Ok(round));
                if let Ok(offered) = a_receiver.try_recv() {
                    assert!(offered > round, "A still offered round {offered} after B's round {round}");
                }
            }
        });
    });
}
