//! A smoltcp [`Device`] over two bounded frame queues. The NIC driver pushes
//! received frames in and takes frames to send out; smoltcp sees a device
//! that never blocks. Both queues are bounded: a receive flood drops frames
//! (counted) instead of growing memory, and a full transmit queue makes
//! `transmit` refuse, which leaves data in the socket buffers — the TCP
//! window, not memory, absorbs the pressure. Frame buffers are recycled:
//! a received frame's buffer goes back to the pool once smoltcp has read it,
//! a sent frame's once the driver has handed it to the card, so the packet
//! path allocates nothing in steady state.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Ethernet frame size smoltcp may build (its "MTU" counts the 14-byte header).
pub const FRAME_MTU: usize = 1514;

/// Queue depths.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub receive: usize,
    pub transmit: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        // The receive side matches the NIC's 256 receive descriptors.
        QueueLimits { receive: 256, transmit: 128 }
    }
}

/// Counters of the device.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceStats {
    pub rx_frames: u64,
    pub rx_dropped: u64,
    pub tx_frames: u64,
    pub tx_refused: u64,
}

/// Spare frame buffers, shared with the receive tokens that give theirs back.
#[derive(Clone)]
struct Pool {
    spare: Rc<RefCell<Vec<Vec<u8>>>>,
    capacity: usize,
}

impl Pool {
    fn take(&self) -> Vec<u8> {
        self.spare.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(FRAME_MTU))
    }

    fn give(&self, buffer: Vec<u8>) {
        let mut spare = self.spare.borrow_mut();
        if spare.len() < self.capacity {
            spare.push(buffer);
        }
    }
}

pub struct FrameDevice {
    limits: QueueLimits,
    received: VecDeque<Vec<u8>>,
    to_send: VecDeque<Vec<u8>>,
    pool: Pool,
    pub stats: DeviceStats,
}

impl FrameDevice {
    pub fn new(limits: QueueLimits) -> Self {
        FrameDevice {
            limits,
            received: VecDeque::with_capacity(limits.receive),
            to_send: VecDeque::with_capacity(limits.transmit),
            pool: Pool {
                spare: Rc::new(RefCell::new(Vec::with_capacity(limits.receive + limits.transmit))),
                capacity: limits.receive + limits.transmit,
            },
            stats: DeviceStats::default(),
        }
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.pool.take()
    }

    /// Spare buffers in the pool (for tests and statistics).
    pub fn spare_buffers(&self) -> usize {
        self.pool.spare.borrow().len()
    }

    /// Queues a frame from the wire; `false` (and counted) if the queue is full.
    pub fn push_received(&mut self, frame: &[u8]) -> bool {
        if self.received.len() >= self.limits.receive {
            self.stats.rx_dropped += 1;
            return false;
        }
        let mut buffer = self.buffer();
        buffer.clear();
        buffer.extend_from_slice(frame);
        self.received.push_back(buffer);
        self.stats.rx_frames += 1;
        true
    }

    /// The oldest frame waiting to be sent.
    pub fn pop_transmit(&mut self) -> Option<Vec<u8>> {
        self.to_send.pop_front()
    }

    /// Puts back a frame the driver could not send yet (it goes first again).
    pub fn unpop_transmit(&mut self, frame: Vec<u8>) {
        self.to_send.push_front(frame);
    }

    /// Returns a frame buffer for reuse.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        self.pool.give(buffer);
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
            self.pool.give(frame);
        }
    }

    /// Whether a frame taken now could be answered (see `receive`).
    pub fn can_reply(&self) -> bool {
        self.to_send.len() < self.limits.transmit
    }

    /// How many more received frames the queue takes now.
    pub fn receive_room(&self) -> usize {
        self.limits.receive.saturating_sub(self.received.len())
    }
}

pub struct RxToken {
    frame: Vec<u8>,
    /// Where the frame's buffer goes once read.
    pool: Pool,
}

pub struct TxToken<'a> {
    device: &'a mut FrameDevice,
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
        let mut buffer = self.device.buffer();
        buffer.clear();
        buffer.resize(len, 0);
        let result = f(&mut buffer);
        self.device.to_send.push_back(buffer);
        self.device.stats.tx_frames += 1;
        result
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
        Some((RxToken { frame, pool: self.pool.clone() }, TxToken { device: self }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        if self.to_send.len() >= self.limits.transmit {
            self.stats.tx_refused += 1;
            return None;
        }
        Some(TxToken { device: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = FRAME_MTU;
        // A burst larger than the receive queue would be dropped on arrival.
        capabilities.max_burst_size = Some(self.limits.receive);
        capabilities
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};

    #[test]
    fn receive_queue_is_bounded_and_counts_drops() {
        let mut device = FrameDevice::new(QueueLimits { receive: 2, transmit: 2 });
        assert!(device.push_received(&[1; 60]));
        assert!(device.push_received(&[2; 60]));
        assert!(!device.push_received(&[3; 60]));
        assert_eq!(device.stats.rx_dropped, 1);
        let (rx, _) = device.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|frame| frame[0]), 1, "FIFO");
    }

    #[test]
    fn frame_buffers_go_back_to_the_pool_once_read_or_sent() {
        let mut device = FrameDevice::new(QueueLimits { receive: 4, transmit: 4 });
        assert!(device.push_received(&[1; 60]));
        assert_eq!(device.spare_buffers(), 0);
        let (rx, _) = device.receive(Instant::ZERO).unwrap();
        rx.consume(|_| ());
        assert_eq!(device.spare_buffers(), 1, "a received frame's buffer is reused");
        // The next frame takes that buffer instead of allocating one.
        let address = device.pool.spare.borrow()[0].as_ptr();
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
        let mut device = FrameDevice::new(QueueLimits { receive: 2, transmit: 1 });
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
}
