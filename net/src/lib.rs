//! Tenfold's network layer over smoltcp: arch-neutral and host-tested (two
//! stacks wired back to back stand in for the NIC).
//!
//! Data flows one way: the kernel's NIC driver fills a [`device::FrameDevice`]
//! → [`stack::NetStack`] polls smoltcp → sockets' wakers fire → the stack's
//! [`readiness::Poller`] examines just those sockets and wakes the tasks
//! of [`tcp`] (async listener and streams) waiting on them → they read and
//! write → frames wait in the device for the driver.
//!
//! - [`device`]: a smoltcp `Device` over bounded frame queues.
//! - [`offload`]: checksum and segmentation offload per frame, and the
//!   virtio-net header that carries it.
//! - [`stack`]: the interface, its sockets and the TCP settings an echo
//!   server wants (no delayed ACK, no Nagle); O(1) work per frame.
//! - [`sockets`]: a set per TCP socket, generation-checked handles, the
//!   dirty queue and the deadline heap.
//! - [`flows`]: demultiplexing frames by connection; SYN admission.
//! - [`listener`]: a listen backlog and a connection cap (smoltcp has neither).
//! - [`readiness`]: epoll-like registration, wait and task wake-up, cost O(ready).
//! - [`tcp`]: async `TcpListener`/`TcpStream` for the event loop.
//! - [`service`]: sockets for any thread, blocking (parks only the caller),
//!   served by the network thread through staging buffers.
//! - [`echo`]: the RFC 862 echo server in the event-loop model.
//! - [`ping`]: ICMP echo from the guest.
//! - [`chaos`]: the markers that `chaos=on` servers crash, block or spin on
//!   (from `tenfold_runtime::chaos`, where ring-3 handlers reach it too).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

/// The smoltcp this layer is built on, for its users' types.
pub use smoltcp;

pub use tenfold_runtime::chaos;
pub mod device;
pub mod echo;
pub mod flows;
pub mod listener;
pub mod offload;
pub mod ping;
pub mod readiness;
pub mod service;
pub mod sockets;
pub mod stack;
pub mod tcp;
#[cfg(test)]
mod testing;
