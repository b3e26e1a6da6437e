//! Blocking primitives and CSP channels, generic over the [`Platform`] that
//! runs threads (the kernel's scheduler in Tenfold, `std` threads in the host
//! tests).
//!
//! # Model
//!
//! Blocking parks only the calling thread: a primitive that cannot proceed
//! registers the caller in a [`WaitQueue`] and calls [`Platform::park`]; the
//! thread that changes the state unparks it. Internal spin locks are held for
//! a few instructions, only inside [`Platform::critical`], and never while
//! parked. Every blocking call has a timeout variant; a timeout never loses or
//! duplicates a value (a send that times out returns its value).
//!
//! - [`Mutex`] / [`Condvar`]: blocking lock with FIFO hand-off, and condition
//!   variables for it.
//! - [`Semaphore`]: counting, FIFO hand-off.
//! - [`Event`]: set-once flag; [`oneshot`]: a single-value channel.
//! - [`channel()`]: bounded MPMC channels (capacity 0: rendezvous), and
//!   [`Select`] over several channel operations.
//! - [`mailbox()`]: actor mailboxes — bounded, tagged, selective receive —
//!   and a [`Registry`] whose ids carry a generation.
//!
//! # Ordering
//!
//! What holds:
//! - **FIFO per channel**: values leave a channel in the order they entered
//!   it. A value enters when its `send` commits it (buffered channel) or
//!   offers it (rendezvous).
//! - **Per-sender order**: successive sends by one thread on one channel are
//!   received in that order, whichever receivers get them. Values of
//!   concurrent senders interleave arbitrarily.
//! - **Causality across channels**: every operation is atomic under its
//!   channel's lock, so "send returned" happens-before anything that observes
//!   the value. If a send on channel A *returns* before a send on channel B
//!   starts (same thread, or ordered by any other synchronisation), then a
//!   thread that has received that B value will find the A value already in A
//!   (a `try_recv` on A will not say `Empty` for it) unless another receiver
//!   has taken it; on a rendezvous A it has already been taken.
//!
//! What does not: no order between different channels beyond that causality
//! (a receiver alternating between A and B sees their values in an arbitrary
//! interleaving); no order between receivers (two receivers taking values 1
//! then 2 may finish processing them in either order); no order among
//! blocked senders' values on a full buffered channel (whichever sender is
//! woken first commits first), nor among the arms of a [`Select`].
//!
//! # Fairness
//!
//! - [`Mutex`], [`Semaphore`]: strict FIFO hand-off; a release passes
//!   ownership straight to the longest waiter, so nobody barges or starves.
//! - Channels: blocked senders (receivers) are woken in the order they
//!   blocked, one per free slot (value). There is no hand-off: a thread
//!   arriving meanwhile may take the slot (value) first; the woken waiter then
//!   waits again without losing its place at the front.
//! - [`Select`]: the arms are tried in a fresh pseudo-random order per call,
//!   so among ready arms each is equally likely to fire.
//!
//! # Backpressure and resource bounds
//!
//! Every channel has a capacity fixed at construction and never buffers more:
//! a sender facing a full channel parks until a receiver makes room, so a
//! fast producer is slowed to its consumers' pace instead of growing a queue.
//! A rendezvous channel holds no buffer at all; each blocked sender contributes
//! its one offered value. Nothing in this module buffers without bound: the
//! only growth is one wait-queue entry per blocked thread.

mod channel;
mod condvar;
mod event;
mod mailbox;
mod mutex;
mod platform;
mod select;
mod semaphore;
/// `std` threads as a [`Platform`], for host tests (here and in crates
/// built on this one, with the `std` feature).
#[cfg(any(test, feature = "std"))]
pub mod std_platform;
mod wait_queue;

pub use channel::{
    Disconnected, Receiver, RecvTimeoutError, SendError, SendTimeoutError, Sender, TryRecvError,
    TrySendError, channel,
};
pub use condvar::Condvar;
pub use event::{Event, OneshotReceiver, OneshotSender, oneshot};
pub use mailbox::{Address, DeliveryError, Envelope, Mailbox, MailboxId, ReceiveError, Registry, mailbox};
pub use mutex::{Mutex, MutexGuard};
pub use platform::Platform;
pub use select::{Select, SelectTimeout};
pub use semaphore::Semaphore;
pub use wait_queue::{WaitQueue, WaiterId, Wakeups};
