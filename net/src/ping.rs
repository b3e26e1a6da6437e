//! ICMP echo ("ping") from the guest, as an event-loop task: one echo
//! request per second, each answered or timed out after a second.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, Ipv4Address};

use crate::tcp::SharedStack;

const IDENT: u16 = 0x7E4F;
const PAYLOAD: &[u8] = b"tenfold ping";

/// One probe's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Round trip in microseconds.
    Reply {
        seq: u16,
        micros: u64,
    },
    Timeout {
        seq: u16,
    },
    /// The request could not be queued (no route, buffers full).
    SendFailed {
        seq: u16,
    },
}

impl Probe {
    pub fn describe(&self, target: Ipv4Address) -> String {
        match *self {
            Probe::Reply { seq, micros } => {
                format!("reply from {target}: icmp_seq={seq} time={}.{:03} ms", micros / 1000, micros % 1000)
            }
            Probe::Timeout { seq } => format!("no reply from {target}: icmp_seq={seq} timed out"),
            Probe::SendFailed { seq } => format!("icmp_seq={seq}: cannot send to {target}"),
        }
    }
}

/// The clock and sleeping, from the event loop (kept abstract so the
/// network layer stays free of the executor's types).
pub trait Timer {
    fn now_us(&self) -> u64;
    fn sleep_us(&self, micros: u64) -> impl core::future::Future<Output = ()>;
}

/// Pings `target` `count` times, reporting each probe to `report`.
pub async fn ping(
    stack: SharedStack,
    target: Ipv4Address,
    count: u16,
    timer: impl Timer,
    mut report: impl FnMut(Probe),
) {
    let handle: SocketHandle = {
        let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
        let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
        let mut socket = icmp::Socket::new(rx, tx);
        if socket.bind(icmp::Endpoint::Ident(IDENT)).is_err() {
            report(Probe::SendFailed { seq: 0 });
            return;
        }
        stack.borrow_mut().add_socket(socket)
    };
    for seq in 0..count {
        let sent_at = timer.now_us();
        let sent = {
            let mut net = stack.borrow_mut();
            let socket = net.socket_mut::<icmp::Socket>(handle);
            let request = Icmpv4Repr::EchoRequest { ident: IDENT, seq_no: seq, data: PAYLOAD };
            match socket.send(request.buffer_len(), IpAddress::Ipv4(target)) {
                Ok(buffer) => {
                    request.emit(&mut Icmpv4Packet::new_unchecked(buffer), &ChecksumCapabilities::default());
                    true
                }
                Err(_) => false,
            }
        };
        if !sent {
            report(Probe::SendFailed { seq });
        } else {
            let deadline = sent_at + 1_000_000;
            let reply = poll_fn(|cx| {
                let mut net = stack.borrow_mut();
                let socket = net.socket_mut::<icmp::Socket>(handle);
                while let Ok((payload, from)) = socket.recv() {
                    let Ok(packet) = Icmpv4Packet::new_checked(payload) else { continue };
                    let Ok(repr) = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default()) else {
                        continue;
                    };
                    if let Icmpv4Repr::EchoReply { ident: IDENT, seq_no, .. } = repr
                        && seq_no == seq
                        && from == IpAddress::Ipv4(target)
                    {
                        return Poll::Ready(true);
                    }
                }
                if timer.now_us() >= deadline {
                    return Poll::Ready(false);
                }
                socket.register_recv_waker(cx.waker());
                Poll::Pending
            });
            // Wake up at the deadline even if nothing arrives.
            let answered = race(reply, timer.sleep_us(1_000_000)).await;
            report(match answered {
                Some(true) => Probe::Reply { seq, micros: timer.now_us() - sent_at },
                _ => Probe::Timeout { seq },
            });
        }
        if seq + 1 < count {
            let elapsed = timer.now_us() - sent_at;
            timer.sleep_us(1_000_000u64.saturating_sub(elapsed)).await;
        }
    }
    stack.borrow_mut().remove_other_socket(handle);
}

/// The first of two futures to finish: `Some(a)` or `None` if `b` won.
async fn race<A: core::future::Future, B: core::future::Future>(a: A, b: B) -> Option<A::Output> {
    let mut a = core::pin::pin!(a);
    let mut b = core::pin::pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(value) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        if b.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
