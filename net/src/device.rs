//! A smoltcp [`Device`] over two bounded frame queues. The NIC driver pushes
//! received frames in and takes frames to send out; smoltcp sees a device
//! that never blocks. Both queues are bounded, in frames and in bytes: a
//! receive flood drops frames (counted) instead of growing memory, and a
//! full transmit queue makes `transmit` refuse, which leaves data in the
//! socket buffers — the TCP window, not memory, absorbs the pressure. Frame
//! buffers are recycled: a received frame's buffer goes back to the pool
//! once smoltcp has read it, a sent frame's once the driver has handed it to
//! the card, so the packet path allocates nothing in steady state.
//!
//! What the device tells smoltcp it can do comes from what the NIC
//! negotiated ([`Offloads`], a constructor argument; [`FrameDevice::new`]
//! offloads nothing): checksum offload turns smoltcp's TCP checksums off in
//! that direction, segmentation offload lets it build TCP frames of up to
//! [`MAX_TSO_FRAME`] bytes, and every frame to send carries smoltcp's
//! segmentation request ([`TxFrame::segment_size`]) for the driver.
//!
//! Memory: frames larger than [`FRAME_MTU`] get buffers from power-of-two
//! size classes (4 KiB … 64 KiB), so a buffer is never more than twice its
//! frame, and the queues' byte bounds count buffer capacity, not frame
//! length. The pool keeps the full receive + transmit count of small
//! buffers but at most [`LARGE_SPARE_BYTES`] per large class; beyond that a
//! large buffer is freed when its frame is done (one allocation per large
//! frame costs little beside copying it; small frames, the ping-pong path,
//! never allocate in steady state). Measured with 16 KiB frames all in one
//! class, not bounding capacity let 256 queued frames hold 64 KiB buffers
//! each: a 22 MiB heap peak under 64-connection bulk echo.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::num::NonZeroUsize;
use core::ops::Deref;

use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Medium, PacketMeta};
use smoltcp::time::Instant;

pub use crate::offload::{MAX_RECEIVED_FRAME, MAX_TSO_FRAME, Offloads};

/// Ethernet frame size smoltcp may build without segmentation offload (its
/// "MTU" counts the 14-byte header).
pub const FRAME_MTU: usize = 1514;
/// Capacities of the large buffer classes: a frame takes the smallest that
/// holds it.
const LARGE_CLASSES: [usize; 5] = [4096, 8192, 16384, 32768, MAX_RECEIVED_FRAME];
/// Spare bytes the pool keeps per large class.
pub const LARGE_SPARE_BYTES: usize = 256 * 1024;

/// Queue depths, in frames and bytes.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub receive: usize,
    pub transmit: usize,
    /// Buffer bytes holding received frames above which
    /// [`FrameDevice::receive_room`] says no more (the driver leaves the rest
    /// in the card's ring).
    pub receive_bytes: usize,
    /// Buffer bytes holding frames to send above which smoltcp gets no
    /// transmit token.
    pub transmit_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        // The receive side matches the NIC's 256 receive descriptors; 1 MiB
        // each way holds the frame counts at full size without offloads
        // (384 small buffers) and 16 segmentation-sized frames with them.
        QueueLimits { receive: 256, transmit: 128, receive_bytes: 1 << 20, transmit_bytes: 1 << 20 }
    }
}

/// Counters of the device.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceStats {
    pub rx_frames: u64,
    pub rx_dropped: u64,
    pub tx_frames: u64,
    pub tx_refused: u64,
    /// Frames smoltcp asked the card to segment.
    pub tx_segmentation: u64,
}

#[derive(Default)]
struct Spare {
    small: Vec<Vec<u8>>,
    /// By class ([`LARGE_CLASSES`]).
    large: [Vec<Vec<u8>>; LARGE_CLASSES.len()],
}

/// The large class for a frame of `len` bytes (the largest if none holds it:
/// the buffer grows).
fn large_class(len: usize) -> usize {
    LARGE_CLASSES.iter().position(|&capacity| capacity >= len).unwrap_or(LARGE_CLASSES.len() - 1)
}

/// Spare frame buffers in two size classes, shared with the receive tokens
/// that give theirs back.
#[derive(Clone)]
struct Pool {
    spare: Rc<RefCell<Spare>>,
    small_capacity: usize,
}

impl Pool {
    fn take(&self, len: usize) -> Vec<u8> {
        let mut spare = self.spare.borrow_mut();
        if len <= FRAME_MTU {
            spare.small.pop().unwrap_or_else(|| Vec::with_capacity(FRAME_MTU))
        } else {
            let class = large_class(len);
            spare.large[class].pop().unwrap_or_else(|| Vec::with_capacity(LARGE_CLASSES[class]))
        }
    }

    fn give(&self, buffer: Vec<u8>) {
        let mut spare = self.spare.borrow_mut();
        if buffer.capacity() < LARGE_CLASSES[0] {
            if buffer.capacity() <= 2 * FRAME_MTU && spare.small.len() < self.small_capacity {
                spare.small.push(buffer);
            }
            return;
        }
        // The largest class the buffer can serve.
        let Some(class) = LARGE_CLASSES.iter().rposition(|&capacity| capacity <= buffer.capacity()) else {
            return;
        };
        if (spare.large[class].len() + 1) * LARGE_CLASSES[class] <= LARGE_SPARE_BYTES {
            spare.large[class].push(buffer);
        }
    }
}

/// A frame waiting to be sent, with smoltcp's request for it.
pub struct TxFrame {
    data: Vec<u8>,
    segment: Option<u16>,
}

impl TxFrame {
    /// Payload bytes per segment if the card is to cut this frame into
    /// segments (smoltcp's `segmentation_offload_size`), else `None`.
    pub fn segment_size(&self) -> Option<u16> {
        self.segment
    }
}

impl Deref for TxFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data
    }
}

pub struct FrameDevice {
    limits: QueueLimits,
    offloads: Offloads,
    received: VecDeque<Vec<u8>>,
    received_bytes: usize,
    to_send: VecDeque<TxFrame>,
    to_send_bytes: usize,
    pool: Pool,
    pub stats: DeviceStats,
}

impl FrameDevice {
    /// A device that offloads nothing (smoltcp computes and verifies every
    /// checksum, frames up to [`FRAME_MTU`]).
    pub fn new(limits: QueueLimits) -> Self {
        Self::with_offloads(limits, Offloads::NONE)
    }

    /// A device for a NIC that negotiated `offloads`.
    pub fn with_offloads(limits: QueueLimits, offloads: Offloads) -> Self {
        let small_capacity = limits.receive + limits.transmit;
        FrameDevice {
            limits,
            offloads,
            received: VecDeque::with_capacity(limits.receive),
            received_bytes: 0,
            to_send: VecDeque::with_capacity(limits.transmit),
            to_send_bytes: 0,
            pool: Pool {
                spare: Rc::new(RefCell::new(Spare {
                    small: Vec::with_capacity(small_capacity),
                    large: Default::default(),
                })),
                small_capacity,
            },
            stats: DeviceStats::default(),
        }
    }

    /// What the NIC offloads.
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// Spare buffers in the pool (for tests and statistics).
    pub fn spare_buffers(&self) -> usize {
        let spare = self.pool.spare.borrow();
        spare.small.len() + spare.large.iter().map(Vec::len).sum::<usize>()
    }

    /// Queues a frame from the wire; `false` (and counted) if the queue is full.
    pub fn push_received(&mut self, frame: &[u8]) -> bool {
        if self.received.len() >= self.limits.receive {
            self.stats.rx_dropped += 1;
            return false;
        }
        let mut buffer = self.pool.take(frame.len());
        buffer.clear();
        buffer.extend_from_slice(frame);
        self.received_bytes += buffer.capacity();
        self.received.push_back(buffer);
        self.stats.rx_frames += 1;
        true
    }

    /// The oldest frame waiting to be sent.
    pub fn pop_transmit(&mut self) -> Option<TxFrame> {
        let frame = self.to_send.pop_front()?;
        self.to_send_bytes -= frame.data.capacity();
        Some(frame)
    }

    /// Puts back a frame the driver could not send yet (it goes first again).
    pub fn unpop_transmit(&mut self, frame: TxFrame) {
        self.to_send_bytes += frame.data.capacity();
        self.to_send.push_front(frame);
    }

    /// Returns a sent frame's buffer for reuse.
    pub fn recycle(&mut self, frame: TxFrame) {
        self.pool.give(frame.data);
    }

    /// Frames waiting to be sent.
    pub fn pending_transmit(&self) -> usize {
        self.to_send.len()
    }

    /// Frames received and not yet processed.
    pub fn pending_receive(&self) -> usize {
        self.received.len()
    }

    /// The oldest received frame, not yet taken.
    pub fn peek_received(&self) -> Option<&[u8]> {
        self.received.front().map(Vec::as_slice)
    }

    /// Drops the oldest received frame unread (its buffer is reused).
    pub fn discard_received(&mut self) {
        if let Some(frame) = self.received.pop_front() {
            self.received_bytes -= frame.capacity();
            self.pool.give(frame);
        }
    }

    /// Whether a frame taken now could be answered (see `receive`).
    pub fn can_reply(&self) -> bool {
        !self.transmit_full()
    }

    /// How many more received frames the queue takes now: none once the
    /// waiting frames' buffers reach the byte limit (which one receive pass
    /// can overshoot by at most twice what the card's ring held).
    pub fn receive_room(&self) -> usize {
        if self.received_bytes >= self.limits.receive_bytes {
            return 0;
        }
        self.limits.receive.saturating_sub(self.received.len())
    }

    fn transmit_full(&self) -> bool {
        self.to_send.len() >= self.limits.transmit || self.to_send_bytes >= self.limits.transmit_bytes
    }
}

pub struct RxToken {
    frame: Vec<u8>,
    /// Where the frame's buffer goes once read.
    pool: Pool,
}

pub struct TxToken<'a> {
    device: &'a mut FrameDevice,
    meta: PacketMeta,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let result = f(&self.frame);
        self.pool.give(self.frame);
        result
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buffer = self.device.pool.take(len);
        buffer.clear();
        buffer.resize(len, 0);
        let result = f(&mut buffer);
        let segment = self.meta.segmentation_offload_size.map(u16::from);
        if segment.is_some() {
            self.device.stats.tx_segmentation += 1;
        }
        self.device.to_send_bytes += buffer.capacity();
        self.device.to_send.push_back(TxFrame { data: buffer, segment });
        self.device.stats.tx_frames += 1;
        result
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.meta = meta;
    }
}

impl Device for FrameDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken, TxToken<'_>)> {
        // A reply may be generated: only take a frame if it could be sent.
        if !self.can_reply() {
            return None;
        }
        let frame = self.received.pop_front()?;
        self.received_bytes -= frame.capacity();
        let token = TxToken { device: self, meta: PacketMeta::default() };
        Some((RxToken { frame, pool: token.device.pool.clone() }, token))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        if self.transmit_full() {
            self.stats.tx_refused += 1;
            return None;
        }
        Some(TxToken { device: self, meta: PacketMeta::default() })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = FRAME_MTU;
        // A burst larger than the receive queue would be dropped on arrival.
        capabilities.max_burst_size = Some(self.limits.receive);
        // TCP checksums: the stack verifies only what the NIC side does not,
        // and computes only what the card does not (UDP, ICMP and the IPv4
        // header stay with the stack).
        capabilities.checksum.tcp = match (self.offloads.rx_checksum, self.offloads.tx_checksum) {
            (false, false) => Checksum::Both,
            (false, true) => Checksum::Rx,
            (true, false) => Checksum::Tx,
            (true, true) => Checksum::None,
        };
        if self.offloads.tso4 && self.offloads.tx_checksum {
            capabilities.segmentation.tcpv4 = NonZeroUsize::new(MAX_TSO_FRAME);
        }
        capabilities
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};

    fn limits(receive: usize, transmit: usize) -> QueueLimits {
        QueueLimits { receive, transmit, ..QueueLimits::default() }
    }

    #[test]
    fn receive_queue_is_bounded_and_counts_drops() {
        let mut device = FrameDevice::new(limits(2, 2));
        assert!(device.push_received(&[1; 60]));
        assert!(device.push_received(&[2; 60]));
        assert!(!device.push_received(&[3; 60]));
        assert_eq!(device.stats.rx_dropped, 1);
        let (rx, _) = device.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|frame| frame[0]), 1, "FIFO");
    }

    #[test]
    fn frame_buffers_go_back_to_the_pool_once_read_or_sent() {
        let mut device = FrameDevice::new(limits(4, 4));
        assert!(device.push_received(&[1; 60]));
        assert_eq!(device.spare_buffers(), 0);
        let (rx, _) = device.receive(Instant::ZERO).unwrap();
        rx.consume(|_| ());
        assert_eq!(device.spare_buffers(), 1, "a received frame's buffer is reused");
        // The next frame takes that buffer instead of allocating one.
        let address = device.pool.spare.borrow().small[0].as_ptr();
        assert!(device.push_received(&[2; 60]));
        assert_eq!(device.spare_buffers(), 0);
        assert_eq!(device.received[0].as_ptr(), address);
        device.transmit(Instant::ZERO).unwrap().consume(64, |frame| frame.fill(9));
        let frame = device.pop_transmit().unwrap();
        device.recycle(frame);
        assert_eq!(device.spare_buffers(), 1);
    }

    #[test]
    fn transmit_refuses_when_the_queue_is_full() {
        let mut device = FrameDevice::new(limits(2, 1));
        device.transmit(Instant::ZERO).unwrap().consume(64, |frame| frame.fill(9));
        assert!(device.transmit(Instant::ZERO).is_none());
        assert_eq!(device.stats.tx_refused, 1);
        // Nor is a frame taken in that could need a reply.
        device.push_received(&[1; 60]);
        assert!(device.receive(Instant::ZERO).is_none());
        let frame = device.pop_transmit().unwrap();
        assert_eq!(frame.len(), 64);
        device.recycle(frame);
        assert!(device.transmit(Instant::ZERO).is_some());
    }

    #[test]
    fn queues_are_bounded_in_bytes_too() {
        let bounded =
            QueueLimits { receive_bytes: 100_000, transmit_bytes: 100_000, ..QueueLimits::default() };
        let mut device = FrameDevice::with_offloads(bounded, Offloads::NONE);
        assert!(device.push_received(&[1; 60_000]));
        assert!(device.receive_room() > 0);
        assert!(device.push_received(&[2; 60_000]));
        assert_eq!(device.receive_room(), 0, "the driver leaves further frames in the ring");
        device.receive(Instant::ZERO).unwrap().0.consume(|_| ());
        assert!(device.receive_room() > 0);
        device.transmit(Instant::ZERO).unwrap().consume(60_000, |_| ());
        assert!(device.transmit(Instant::ZERO).is_some());
        device.transmit(Instant::ZERO).unwrap().consume(60_000, |_| ());
        assert!(device.transmit(Instant::ZERO).is_none(), "120 000 bytes wait: no more tokens");
        let frame = device.pop_transmit().unwrap();
        device.recycle(frame);
        assert!(device.transmit(Instant::ZERO).is_some());
    }

    #[test]
    fn large_buffers_come_in_bounded_size_classes() {
        let unbounded = QueueLimits { transmit_bytes: usize::MAX, ..QueueLimits::default() };
        let mut device = FrameDevice::new(unbounded);
        for len in [1515, 4096, 4097, 16_000, 40_000, MAX_TSO_FRAME, MAX_RECEIVED_FRAME] {
            device.transmit(Instant::ZERO).unwrap().consume(len, |_| ());
            let frame = device.pop_transmit().unwrap();
            let capacity = frame.data.capacity();
            assert!(
                capacity >= len && capacity <= (2 * len).max(LARGE_CLASSES[0]),
                "{len} B in {capacity} B"
            );
            device.recycle(frame);
        }
        let count = LARGE_SPARE_BYTES / MAX_RECEIVED_FRAME + 8;
        for _ in 0..count {
            device.transmit(Instant::ZERO).unwrap().consume(40_000, |_| ());
        }
        while let Some(frame) = device.pop_transmit() {
            device.recycle(frame);
        }
        let kept = device.pool.spare.borrow().large[LARGE_CLASSES.len() - 1].len();
        assert_eq!(kept, LARGE_SPARE_BYTES / MAX_RECEIVED_FRAME, "the rest were freed");
        // A small frame never takes (and pins) a large buffer.
        device.transmit(Instant::ZERO).unwrap().consume(60, |_| ());
        assert!(device.pop_transmit().unwrap().data.capacity() <= 2 * FRAME_MTU);
    }

    #[test]
    fn byte_bounds_count_buffer_capacity() {
        let mut device = FrameDevice::new(QueueLimits::default());
        // 5000-byte frames sit in 8 KiB buffers: 128 of them hold 1 MiB.
        let mut taken = 0;
        while device.receive_room() > 0 {
            assert!(device.push_received(&[7; 5000]));
            taken += 1;
        }
        assert_eq!(taken, (1 << 20) / 8192, "the queue stops at 1 MiB of buffers, not of frame bytes");
    }

    #[test]
    fn capabilities_follow_the_negotiated_offloads() {
        let plain = FrameDevice::new(QueueLimits::default()).capabilities();
        assert!(plain.checksum.tcp.rx() && plain.checksum.tcp.tx());
        assert!(plain.segmentation.tcpv4.is_none());
        assert_eq!(plain.max_transmission_unit, FRAME_MTU);
        let all = Offloads { tx_checksum: true, rx_checksum: true, tso4: true };
        let offloaded = FrameDevice::with_offloads(QueueLimits::default(), all).capabilities();
        assert!(!offloaded.checksum.tcp.rx() && !offloaded.checksum.tcp.tx());
        assert!(offloaded.checksum.udp.rx() && offloaded.checksum.ipv4.tx(), "only TCP is offloaded");
        assert_eq!(offloaded.segmentation.tcpv4.map(NonZeroUsize::get), Some(MAX_TSO_FRAME));
        assert_eq!(offloaded.max_transmission_unit, FRAME_MTU, "segments on the wire stay 1514 B");
        let rx_only = Offloads { rx_checksum: true, ..Offloads::NONE };
        let caps = FrameDevice::with_offloads(QueueLimits::default(), rx_only).capabilities();
        assert!(!caps.checksum.tcp.rx() && caps.checksum.tcp.tx());
        assert!(caps.segmentation.tcpv4.is_none());
    }

    #[test]
    fn the_segmentation_request_travels_with_the_frame() {
        let all = Offloads { tx_checksum: true, rx_checksum: true, tso4: true };
        let mut device = FrameDevice::with_offloads(QueueLimits::default(), all);
        let mut token = device.transmit(Instant::ZERO).unwrap();
        let mut meta = PacketMeta::default();
        meta.segmentation_offload_size = core::num::NonZeroU16::new(1460);
        token.set_meta(meta);
        token.consume(20_000, |frame| frame.fill(1));
        device.transmit(Instant::ZERO).unwrap().consume(100, |frame| frame.fill(2));
        let big = device.pop_transmit().unwrap();
        assert_eq!((big.len(), big.segment_size()), (20_000, Some(1460)));
        let small = device.pop_transmit().unwrap();
        assert_eq!(small.segment_size(), None, "no request carries over to the next frame");
        assert_eq!(device.stats.tx_segmentation, 1);
        // A frame put back keeps its request.
        device.unpop_transmit(big);
        assert_eq!(device.pop_transmit().unwrap().segment_size(), Some(1460));
    }
}
