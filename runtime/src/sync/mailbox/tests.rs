//! Host tests of the mailboxes on `std` threads.

use std::time::Duration;

use super::super::std_platform::{StdPlatform, bounded, wait_for};
use super::*;

fn boxed<T>(capacity: usize) -> (Mailbox<StdPlatform, T>, Address<StdPlatform, T>) {
    mailbox(capacity)
}

fn message(from: u64, tag: u32, body: u32) -> Envelope<u32> {
    Envelope { from, tag, body }
}

#[test]
fn endpoints_are_send_and_sync() {
    fn assert_send_sync<S: Send + Sync>() {}
    assert_send_sync::<Mailbox<StdPlatform, Vec<u8>>>();
    assert_send_sync::<Address<StdPlatform, Vec<u8>>>();
}

#[test]
fn each_senders_messages_arrive_in_order_and_senders_interleave() {
    bounded(|| {
        let (mailbox, address) = boxed(8);
        let senders: Vec<_> = (0..4u64)
            .map(|sender| {
                let address = address.clone();
                std::thread::spawn(move || {
                    for body in 0..5_000 {
                        address.send(message(sender, 0, body)).unwrap();
                    }
                })
            })
            .collect();
        drop(address);
        let mut next = [0u32; 4];
        let mut switches = 0;
        let mut last = None;
        while let Ok(envelope) = mailbox.receive() {
            assert_eq!(envelope.body, next[envelope.from as usize], "sender {} out of order", envelope.from);
            next[envelope.from as usize] += 1;
            switches += usize::from(last.is_some_and(|last| last != envelope.from));
            last = Some(envelope.from);
        }
        senders.into_iter().for_each(|sender| sender.join().unwrap());
        assert_eq!(next, [5_000; 4]);
        // No order across senders: their messages interleave.
        assert!(switches > 0, "the senders' messages never interleaved");
    });
}

#[test]
fn a_full_mailbox_refuses_try_send_and_parks_send_until_there_is_room() {
    bounded(|| {
        let (mailbox, address) = boxed(2);
        address.try_send(message(1, 0, 1)).unwrap();
        address.try_send(message(1, 0, 2)).unwrap();
        assert_eq!(address.try_send(message(1, 0, 3)), Err(DeliveryError::Full(message(1, 0, 3))));
        assert_eq!(
            address.send_timeout(message(1, 0, 3), Duration::from_millis(20)),
            Err(DeliveryError::Full(message(1, 0, 3)))
        );
        let sender = std::thread::spawn(move || address.send(message(1, 0, 3)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!sender.is_finished(), "send waits for room");
        assert_eq!(mailbox.receive().unwrap().body, 1);
        sender.join().unwrap().unwrap();
        assert_eq!(mailbox.depth(), (2, 2));
    });
}

#[test]
fn selective_receive_takes_the_oldest_match_and_keeps_the_rest_in_order() {
    let (mailbox, address) = boxed(8);
    for (tag, body) in [(1, 10), (2, 20), (1, 11), (3, 30)] {
        address.try_send(message(7, tag, body)).unwrap();
    }
    let wanted = mailbox.receive_matching(|envelope| envelope.tag == 3, None).unwrap();
    assert_eq!(wanted.body, 30);
    let wanted = mailbox.receive_matching(|envelope| envelope.tag == 1, None).unwrap();
    assert_eq!(wanted.body, 10);
    let rest: Vec<u32> = (0..2).map(|_| mailbox.receive().unwrap().body).collect();
    assert_eq!(rest, [20, 11]);
    assert_eq!(
        mailbox.receive_matching(|envelope| envelope.tag == 9, Some(Duration::from_millis(10))),
        Err(ReceiveError::Timeout)
    );
}

#[test]
fn selective_receive_waits_for_a_match_that_arrives_later() {
    bounded(|| {
        let (mailbox, address) = boxed(4);
        address.try_send(message(1, 1, 1)).unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            address.send(message(1, 2, 2)).unwrap();
        });
        let wanted = mailbox.receive_matching(|envelope| envelope.tag == 2, None).unwrap();
        assert_eq!(wanted.body, 2);
        sender.join().unwrap();
        assert_eq!(mailbox.receive().unwrap().body, 1, "the unmatched one is still there");
    });
}

#[test]
fn a_full_mailbox_of_unmatched_messages_starves_instead_of_deadlocking() {
    let (mailbox, address) = boxed(2);
    address.try_send(message(1, 1, 1)).unwrap();
    address.try_send(message(1, 1, 2)).unwrap();
    assert_eq!(mailbox.receive_matching(|envelope| envelope.tag == 2, None), Err(ReceiveError::Starved));
}

#[test]
fn owner_gone_fails_senders_and_senders_gone_ends_receives() {
    bounded(|| {
        let (mailbox, address) = boxed(1);
        address.try_send(message(1, 0, 1)).unwrap();
        let blocked = {
            let address = address.clone();
            std::thread::spawn(move || address.send(message(1, 0, 2)))
        };
        wait_for("the sender to park", || mailbox.shared.state.lock().senders.len() == 1);
        drop(mailbox);
        assert_eq!(blocked.join().unwrap(), Err(DeliveryError::Closed(message(1, 0, 2))));
        assert_eq!(address.try_send(message(1, 0, 3)), Err(DeliveryError::Closed(message(1, 0, 3))));

        let (mailbox, address) = boxed::<u32>(1);
        address.try_send(message(1, 0, 1)).unwrap();
        drop(address);
        assert_eq!(mailbox.receive().unwrap().body, 1, "what was sent is still delivered");
        assert_eq!(mailbox.receive(), Err(ReceiveError::Disconnected));
    });
}

#[test]
fn a_retired_id_never_reaches_the_slots_next_owner() {
    let mut registry: Registry<StdPlatform, u32> = Registry::default();
    let (first_box, first) = boxed(4);
    let first_id = registry.register(first);
    registry.try_send(first_id, message(1, 0, 1)).unwrap();
    assert_eq!(first_box.receive().unwrap().body, 1);
    registry.retire(first_id);
    drop(first_box);
    let (second_box, second) = boxed(4);
    let second_id = registry.register(second);
    assert_eq!(second_id.slot, first_id.slot, "the slot is reused");
    assert_ne!(second_id, first_id);
    assert_eq!(
        registry.try_send(first_id, message(1, 0, 2)),
        Err(DeliveryError::NoSuchMailbox(message(1, 0, 2)))
    );
    registry.try_send(second_id, message(1, 0, 3)).unwrap();
    assert_eq!(second_box.receive().unwrap().body, 3, "only the message for the new owner arrived");
    assert_eq!(second_box.depth().0, 0);
}
