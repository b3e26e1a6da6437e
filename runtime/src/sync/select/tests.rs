//! Host tests of `Select` on `std` threads.

use std::time::{Duration, Instant};

use super::super::std_platform::{StdPlatform, bounded, wait_for};
use super::super::{RecvTimeoutError, channel};
use super::*;

type Sel<'a, R> = Select<'a, StdPlatform, R>;

fn chan<T>(capacity: usize) -> (Sender<StdPlatform, T>, Receiver<StdPlatform, T>) {
    channel(capacity)
}

#[derive(Debug, PartialEq)]
enum Fired {
    A(Result<u32, Disconnected>),
    B(Result<&'static str, Disconnected>),
    Sent(Result<(), SendError<u32>>),
}

#[test]
fn picks_the_ready_arm() {
    let (_a_sender, a) = chan::<u32>(1);
    let (b_sender, b) = chan(1);
    b_sender.send("ready").unwrap();
    let fired = Sel::new().recv(&a, Fired::A).recv(&b, Fired::B).run();
    assert_eq!(fired, Ok(Fired::B(Ok("ready"))));
    assert_eq!((a.blocked_receivers(), b.blocked_receivers()), (0, 0));
}

#[test]
fn exactly_one_arm_fires_when_several_are_ready() {
    let (a_sender, a) = chan(1);
    let (b_sender, b) = chan(1);
    a_sender.send(1).unwrap();
    b_sender.send("b").unwrap();
    let fired = Sel::new().recv(&a, Fired::A).recv(&b, Fired::B).run().unwrap();
    match fired {
        Fired::A(Ok(1)) => assert_eq!((a.len(), b.len()), (0, 1)),
        Fired::B(Ok("b")) => assert_eq!((a.len(), b.len()), (1, 0)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn times_out_when_nothing_is_ready() {
    bounded(|| {
        let (_a_sender, a) = chan::<u32>(1);
        let (_b_sender, b) = chan::<&str>(0);
        let start = Instant::now();
        let fired = Sel::new().recv(&a, Fired::A).recv(&b, Fired::B).timeout(Duration::from_millis(40)).run();
        let waited = start.elapsed();
        assert_eq!(fired, Err(SelectTimeout));
        assert!(waited >= Duration::from_millis(40) && waited < Duration::from_secs(2), "{waited:?}");
        assert_eq!((a.blocked_receivers(), b.blocked_receivers()), (0, 0), "registrations left behind");
        assert_eq!(Sel::<()>::new().timeout(Duration::ZERO).run(), Err(SelectTimeout));
        assert_eq!(Sel::<()>::new().run(), Err(SelectTimeout), "empty select does not block forever");
    });
}

#[test]
fn parks_until_an_arm_becomes_ready() {
    bounded(|| {
        let (_a_sender, a) = chan::<u32>(1);
        let (b_sender, b) = chan(0);
        std::thread::scope(|scope| {
            let selecting = scope.spawn(|| Sel::new().recv(&a, Fired::A).recv(&b, Fired::B).run());
            wait_for("select to register", || a.blocked_receivers() == 1 && b.blocked_receivers() == 1);
            // Rendezvous: the select counts as a waiting receiver.
            b_sender.try_send("late").unwrap();
            assert_eq!(selecting.join().unwrap(), Ok(Fired::B(Ok("late"))));
        });
        assert_eq!((a.blocked_receivers(), b.blocked_receivers()), (0, 0));
    });
}

#[test]
fn picks_fairly_among_ready_arms() {
    bounded(|| {
        const ROUNDS: usize = 1_000;
        let (a_sender, a) = chan(1);
        let (b_sender, b) = chan(1);
        let mut picks = [0_usize; 2];
        for _ in 0..ROUNDS {
            // Both always ready: refill whichever was taken.
            let _ = a_sender.try_send(0);
            let _ = b_sender.try_send(1);
            let picked = Sel::new().recv(&a, |v| v.unwrap()).recv(&b, |v| v.unwrap()).run().unwrap();
            picks[picked] += 1;
        }
        assert!(picks.iter().all(|&count| count * 10 >= ROUNDS * 3), "unfair: {picks:?}");
    });
}

#[test]
fn send_arm_fires_when_there_is_room() {
    let (_a_sender, a) = chan::<u32>(1);
    let (sender, receiver) = chan(1);
    let fired = Sel::new().recv(&a, Fired::A).send(&sender, 5, Fired::Sent).run();
    assert_eq!(fired, Ok(Fired::Sent(Ok(()))));
    assert_eq!(receiver.try_recv(), Ok(5));
}

#[test]
fn send_arm_waits_for_room_and_unsent_values_are_dropped() {
    bounded(|| {
        let (sender, receiver) = chan(1);
        let (_a_sender, a) = chan::<u32>(1);
        sender.send(1).unwrap();
        std::thread::scope(|scope| {
            let selecting = scope.spawn(|| Sel::new().send(&sender, 2, Fired::Sent).recv(&a, Fired::A).run());
            wait_for("select to register", || receiver.blocked_senders() == 1);
            assert_eq!(receiver.recv(), Ok(1));
            assert_eq!(selecting.join().unwrap(), Ok(Fired::Sent(Ok(()))));
        });
        assert_eq!(receiver.try_recv(), Ok(2));

        // Full channel, the other arm ready: the value is not sent.
        sender.send(3).unwrap();
        let (a_sender, a) = chan(1);
        a_sender.send(9).unwrap();
        let fired = Sel::new().send(&sender, 4, Fired::Sent).recv(&a, Fired::A).run();
        assert_eq!(fired, Ok(Fired::A(Ok(9))));
        assert_eq!(receiver.try_iter().collect::<Vec<_>>(), [3]);
    });
}

#[test]
fn rendezvous_send_arm_meets_a_blocked_receiver() {
    bounded(|| {
        let (sender, receiver) = chan(0);
        std::thread::scope(|scope| {
            let selecting = scope.spawn(|| Sel::new().send(&sender, 11, Fired::Sent).run());
            wait_for("select to register", || receiver.blocked_senders() == 1);
            assert_eq!(receiver.recv_timeout(Duration::from_secs(5)), Ok(11));
            assert_eq!(selecting.join().unwrap(), Ok(Fired::Sent(Ok(()))));
        });
    });
}

#[test]
fn sees_disconnection_as_ready() {
    bounded(|| {
        let (a_sender, a) = chan::<u32>(1);
        let (_b_sender, b) = chan::<&str>(1);
        std::thread::scope(|scope| {
            let selecting = scope.spawn(|| Sel::new().recv(&a, Fired::A).recv(&b, Fired::B).run());
            wait_for("select to register", || a.blocked_receivers() == 1);
            drop(a_sender);
            assert_eq!(selecting.join().unwrap(), Ok(Fired::A(Err(Disconnected))));
        });

        let (sender, receiver) = chan(0);
        drop(receiver);
        let fired = Sel::new().send(&sender, 8, Fired::Sent).timeout(Duration::from_secs(5)).run();
        assert_eq!(fired, Ok(Fired::Sent(Err(SendError(8)))));
    });
}

#[test]
fn concurrent_selects_lose_and_duplicate_nothing() {
    // Two producers feed A and B; two consumers select over both until both
    // are disconnected; every value arrives exactly once.
    bounded(|| {
        const ITEMS: u32 = 2_000;
        for capacity in [2, 0] {
            let (a_sender, a) = chan(capacity);
            let (b_sender, b) = chan(capacity);
            let mut received = std::thread::scope(|scope| {
                scope.spawn(move || (0..ITEMS).for_each(|item| a_sender.send(item).unwrap()));
                scope.spawn(move || (ITEMS..2 * ITEMS).for_each(|item| b_sender.send(item).unwrap()));
                let consumers: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut got = Vec::new();
                            let (mut a_open, mut b_open) = (true, true);
                            while a_open || b_open {
                                let mut select = Sel::new();
                                if a_open {
                                    select = select.recv(&a, |item| item.map_err(|_| 'a'));
                                }
                                if b_open {
                                    select = select.recv(&b, |item| item.map_err(|_| 'b'));
                                }
                                match select.timeout(Duration::from_secs(5)).run().expect("select stalled") {
                                    Ok(item) => got.push(item),
                                    Err('a') => a_open = false,
                                    Err(_) => b_open = false,
                                }
                            }
                            got
                        })
                    })
                    .collect();
                consumers.into_iter().flat_map(|consumer| consumer.join().unwrap()).collect::<Vec<_>>()
            });
            received.sort_unstable();
            assert!(received.into_iter().eq(0..2 * ITEMS), "capacity {capacity}: lost or duplicated");
            assert_eq!(a.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Disconnected));
        }
    });
}
