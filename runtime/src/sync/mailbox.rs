//! Actor mailboxes: bounded, tagged, with Erlang's selective receive, and a
//! registry whose addresses carry a generation. Owns [`mailbox`],
//! [`Mailbox`], [`Address`], [`Envelope`], [`Registry`] and their errors.
//!
//! - **Bounded, with backpressure.** A mailbox holds at most `capacity`
//!   messages (fixed when it is made). A full mailbox parks a blocking
//!   [`Address::send`] until the owner takes a message, or fails
//!   [`Address::try_send`] with the message handed back — where Erlang's
//!   unbounded mailboxes grow until memory runs out.
//! - **Order.** Messages from one sender arrive in the order sent (one queue,
//!   appended in send order); messages from different senders interleave in
//!   arrival order, and nothing more is promised across senders.
//! - **Selective receive.** [`Mailbox::receive_matching`] takes the oldest
//!   message that matches, leaving the others in place (Erlang's `receive`
//!   with patterns). A full mailbox whose messages all fail to match can
//!   never receive the one wanted — the senders are parked — so that
//!   receive fails with [`ReceiveError::Starved`] instead of deadlocking.
//! - **Generations.** A [`Registry`] names mailboxes by [`MailboxId`]: a
//!   slot and a generation. Retiring an id (its task died) bumps the slot's
//!   generation, so a message for the dead task fails with
//!   [`DeliveryError::NoSuchMailbox`] and never reaches its successor.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use super::platform::{deadline_after, deadline_passed, with_lock};
use super::{Platform, WaitQueue};

/// One message with its sender and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<T> {
    /// Who sent it (an id the sender chose, e.g. its task id).
    pub from: u64,
    /// What kind of message (matched by selective receive).
    pub tag: u32,
    pub body: T,
}

/// Why a send failed; the envelope comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum DeliveryError<T> {
    /// The mailbox is full (`try_send`) or stayed full until the deadline.
    Full(Envelope<T>),
    /// Its owner is gone.
    Closed(Envelope<T>),
    /// The id names no live mailbox: its owner died or was restarted.
    NoSuchMailbox(Envelope<T>),
}

/// Why a receive returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiveError {
    /// Nothing (that matched) arrived before the deadline.
    Timeout,
    /// The mailbox is full of messages that do not match: the one wanted
    /// can never get in.
    Starved,
    /// Every address is gone and nothing (that matches) is left.
    Disconnected,
}

struct State<P: Platform, T> {
    capacity: usize,
    queue: VecDeque<Envelope<T>>,
    closed: bool,
    addresses: usize,
    senders: WaitQueue<P>,
    receiver: WaitQueue<P>,
    /// Messages ever delivered, for statistics.
    delivered: u64,
    /// Highest queue length seen.
    peak: usize,
}

struct Shared<P: Platform, T> {
    state: spin::Mutex<State<P, T>>,
}

/// Creates a mailbox of `capacity` messages (at least 1); `(owner, address)`.
pub fn mailbox<P: Platform, T>(capacity: usize) -> (Mailbox<P, T>, Address<P, T>) {
    let state = State {
        capacity: capacity.max(1),
        queue: VecDeque::new(),
        closed: false,
        addresses: 1,
        senders: WaitQueue::new(),
        receiver: WaitQueue::new(),
        delivered: 0,
        peak: 0,
    };
    let shared = Arc::new(Shared { state: spin::Mutex::new(state) });
    (Mailbox { shared: shared.clone() }, Address { shared })
}

/// The receiving end, owned by one task.
pub struct Mailbox<P: Platform, T> {
    shared: Arc<Shared<P, T>>,
}

/// A sending end; clone it to hand it out.
pub struct Address<P: Platform, T> {
    shared: Arc<Shared<P, T>>,
}

impl<P: Platform, T> Clone for Address<P, T> {
    fn clone(&self) -> Self {
        with_lock::<P, _, _>(&self.shared.state, |state, _| state.addresses += 1);
        Address { shared: self.shared.clone() }
    }
}

impl<P: Platform, T> Drop for Address<P, T> {
    fn drop(&mut self) {
        with_lock::<P, _, _>(&self.shared.state, |state, wakeups| {
            state.addresses -= 1;
            if state.addresses == 0 {
                state.receiver.wake_all(wakeups);
            }
        });
    }
}

impl<P: Platform, T> Drop for Mailbox<P, T> {
    fn drop(&mut self) {
        with_lock::<P, _, _>(&self.shared.state, |state, wakeups| {
            state.closed = true;
            state.queue.clear();
            state.senders.wake_all(wakeups);
        });
    }
}

impl<P: Platform, T> Address<P, T> {
    /// Sends, parking while the mailbox is full.
    pub fn send(&self, envelope: Envelope<T>) -> Result<(), DeliveryError<T>> {
        self.send_until(envelope, None)
    }

    /// Sends if there is room now; a full mailbox hands the envelope back.
    pub fn try_send(&self, envelope: Envelope<T>) -> Result<(), DeliveryError<T>> {
        self.send_until(envelope, Some(0))
    }

    /// Sends, parking at most `timeout` while the mailbox is full.
    pub fn send_timeout(&self, envelope: Envelope<T>, timeout: Duration) -> Result<(), DeliveryError<T>> {
        self.send_until(envelope, Some(deadline_after::<P>(timeout)))
    }

    fn send_until(&self, envelope: Envelope<T>, deadline: Option<u64>) -> Result<(), DeliveryError<T>> {
        let mut envelope = Some(envelope);
        let mut waiter = None;
        loop {
            let outcome = with_lock::<P, _, _>(&self.shared.state, |state, wakeups| {
                let Some(message) = envelope.take() else {
                    unreachable!("the envelope is held until it goes")
                };
                if state.closed {
                    if let Some(id) = waiter.take() {
                        state.senders.remove(id);
                    }
                    return Some(Err(DeliveryError::Closed(message)));
                }
                if state.queue.len() < state.capacity {
                    if let Some(id) = waiter.take() {
                        state.senders.remove(id);
                    }
                    state.queue.push_back(message);
                    state.delivered += 1;
                    state.peak = state.peak.max(state.queue.len());
                    state.receiver.wake_all(wakeups);
                    return Some(Ok(()));
                }
                if deadline_passed::<P>(deadline) {
                    if let Some(id) = waiter.take() {
                        state.senders.remove(id);
                        // Pass on a wake-up this sender will not use.
                        state.senders.wake_one(wakeups);
                    }
                    return Some(Err(DeliveryError::Full(message)));
                }
                match waiter {
                    Some(id) => state.senders.rearm(id),
                    None => waiter = Some(state.senders.register(P::current())),
                }
                envelope = Some(message);
                None
            });
            if let Some(outcome) = outcome {
                return outcome;
            }
            P::park(deadline);
        }
    }
}

impl<P: Platform, T> Mailbox<P, T> {
    /// The oldest message, parking until one arrives.
    pub fn receive(&self) -> Result<Envelope<T>, ReceiveError> {
        self.receive_until(|_| true, None)
    }

    /// The oldest message, waiting at most `timeout`.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Envelope<T>, ReceiveError> {
        self.receive_until(|_| true, Some(deadline_after::<P>(timeout)))
    }

    /// The oldest message for which `wanted` holds, waiting at most
    /// `timeout` (`None`: for ever); the others stay, in order.
    pub fn receive_matching(
        &self,
        wanted: impl FnMut(&Envelope<T>) -> bool,
        timeout: Option<Duration>,
    ) -> Result<Envelope<T>, ReceiveError> {
        self.receive_until(wanted, timeout.map(deadline_after::<P>))
    }

    fn receive_until(
        &self,
        mut wanted: impl FnMut(&Envelope<T>) -> bool,
        deadline: Option<u64>,
    ) -> Result<Envelope<T>, ReceiveError> {
        let mut waiter = None;
        loop {
            let outcome = with_lock::<P, _, _>(&self.shared.state, |state, wakeups| {
                if let Some(index) = state.queue.iter().position(&mut wanted) {
                    if let Some(id) = waiter.take() {
                        state.receiver.remove(id);
                    }
                    let message = state.queue.remove(index).expect("found above");
                    state.senders.wake_one(wakeups);
                    return Some(Ok(message));
                }
                let error = if state.queue.len() >= state.capacity {
                    Some(ReceiveError::Starved)
                } else if state.addresses == 0 {
                    Some(ReceiveError::Disconnected)
                } else if deadline_passed::<P>(deadline) {
                    Some(ReceiveError::Timeout)
                } else {
                    None
                };
                if let Some(error) = error {
                    if let Some(id) = waiter.take() {
                        state.receiver.remove(id);
                    }
                    return Some(Err(error));
                }
                match waiter {
                    Some(id) => state.receiver.rearm(id),
                    None => waiter = Some(state.receiver.register(P::current())),
                }
                None
            });
            if let Some(outcome) = outcome {
                return outcome;
            }
            P::park(deadline);
        }
    }

    /// Messages waiting now, and the most there ever were.
    pub fn depth(&self) -> (usize, usize) {
        with_lock::<P, _, _>(&self.shared.state, |state, _| (state.queue.len(), state.peak))
    }
}

/// A mailbox's name in a [`Registry`]: a slot and the generation of its
/// current owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MailboxId {
    pub slot: u32,
    pub generation: u32,
}

/// Mailboxes by id; an id whose owner was retired names nothing, even after
/// its slot is reused.
pub struct Registry<P: Platform, T> {
    slots: Vec<(u32, Option<Address<P, T>>)>,
    free: Vec<u32>,
}

impl<P: Platform, T> Default for Registry<P, T> {
    fn default() -> Self {
        Registry { slots: Vec::new(), free: Vec::new() }
    }
}

impl<P: Platform, T> Registry<P, T> {
    /// Enters `address` under a new id.
    pub fn register(&mut self, address: Address<P, T>) -> MailboxId {
        match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.1 = Some(address);
                MailboxId { slot, generation: entry.0 }
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 mailboxes");
                self.slots.push((0, Some(address)));
                MailboxId { slot, generation: 0 }
            }
        }
    }

    /// The address `id` names, if its owner is still the one registered.
    pub fn lookup(&self, id: MailboxId) -> Option<&Address<P, T>> {
        let (generation, address) = self.slots.get(id.slot as usize)?;
        if *generation != id.generation {
            return None;
        }
        address.as_ref()
    }

    /// Sends to `id` (blocking while full); a retired id fails cleanly.
    pub fn send(&self, id: MailboxId, envelope: Envelope<T>) -> Result<(), DeliveryError<T>> {
        match self.lookup(id) {
            Some(address) => address.send(envelope),
            None => Err(DeliveryError::NoSuchMailbox(envelope)),
        }
    }

    /// Non-blocking [`Registry::send`].
    pub fn try_send(&self, id: MailboxId, envelope: Envelope<T>) -> Result<(), DeliveryError<T>> {
        match self.lookup(id) {
            Some(address) => address.try_send(envelope),
            None => Err(DeliveryError::NoSuchMailbox(envelope)),
        }
    }

    /// Its owner is gone: `id` names nothing from now on.
    pub fn retire(&mut self, id: MailboxId) {
        if let Some(entry) = self.slots.get_mut(id.slot as usize)
            && entry.0 == id.generation
            && entry.1.take().is_some()
        {
            entry.0 = entry.0.wrapping_add(1);
            self.free.push(id.slot);
        }
    }
}

#[cfg(test)]
mod tests;
