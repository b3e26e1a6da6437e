//! The virtio network card (`virtio-net-pci`, modern transport), driven by
//! Tenfold itself over `virtio-drivers`' PCI transport and virtqueues (the
//! crate's own net device fixes its feature set and writes empty headers).
//! This module owns the card: feature negotiation, the two rings and their
//! DMA buffers, the virtio-net header of every frame (through
//! [`tenfold_net::offload`], where the header and checksum rules are
//! host-tested), and the interrupt.
//!
//! - **Features**: VERSION_1, MAC, STATUS, EVENT_IDX, merged receive
//!   buffers, and the offloads the card offers: CSUM (it completes our TCP
//!   checksums), HOST_TSO4 (it segments our large TCP frames), GUEST_CSUM
//!   and GUEST_TSO4 (it hands us unchecked-but-local and large frames). Over
//!   a tap QEMU offers all of them; over user networking none, and the
//!   driver then behaves as a plain 1514-byte card.
//! - **Receive**: merged receive buffers of one page each. Large received
//!   frames (up to 64 KiB with GUEST_TSO4) span several buffers and are
//!   gathered into one frame; a buffer is posted again as soon as it is
//!   copied out, so every descriptor always holds one. Before a frame goes
//!   up its checksum state is settled ([`offload::check_received`]): frames
//!   the card vouches for pass, other TCP frames are verified here, bad
//!   ones are dropped and counted. Chosen over 64 KiB receive buffers: 256
//!   pages (1 MiB) instead of 16 MiB of DMA memory for the same ring, at
//!   the cost of one more copy for the frames that span buffers.
//! - **Transmit**: frames are copied into free DMA buffers of two sizes
//!   (2 KiB, and 64 KiB + header for segmentation-sized frames), behind the
//!   header that asks for checksum completion and segmentation, and
//!   submitted without waiting; completed buffers are reclaimed on the next
//!   call. When none is free, `transmit` says so and the caller keeps the
//!   frame (the stack's socket buffers hold the data: backpressure, not
//!   spinning). The doorbell rings once per batch ([`VirtioNic::notify_transmit`]).
//! - **Interrupts**: INTx, level-triggered through the I/O APIC. The handler
//!   masks the line, ends the interrupt and unparks the network thread; the
//!   thread acknowledges the device (which deasserts the line), drains it,
//!   and unmasks the line before it parks again (NAPI-style: while the
//!   thread is busy, neither RX nor TX completions interrupt it). A frame that
//!   arrives between the last drain and the unmask keeps the line asserted,
//!   so the interrupt fires on unmask: no lost wake-up.
//!
//! Measured (2026-12-01, `cargo lab bench echo --vs linux --runs 3`, TCG,
//! release kernel, tap): bulk echo 14.8 → 45.8 MB/s at 1 connection and
//! 15.6 → 92.1 MB/s at 64 (0.67× / 0.81× Linux before, 1.96× / 4.91× after),
//! 64-byte ping-pong at 1 and 64 connections unchanged or better. DMA memory
//! 0.75 → 2.3 MiB with every offload (1.25 MiB over user networking).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use tenfold_net::offload::{
    self, HEADER_LEN, MAX_RECEIVED_FRAME, MAX_TSO_FRAME, NetHeader, Offloads, Received,
};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::DeviceFunction;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

use super::pci;
use super::virtio_hal::{KernelHal, dma_pages};
use crate::arch::interrupts::{self, vector};
use crate::arch::{TrapFrame, apic, ioapic};
use crate::sched::{self, ThreadRef};

const QUEUE_RECEIVE: u16 = 0;
const QUEUE_TRANSMIT: u16 = 1;
const QUEUE_SIZE: usize = 256;
const PAGE: usize = 4096;
/// One receive buffer: a page (header and a full 1514-byte frame fit; larger
/// frames span several).
const RX_BUFFER: usize = PAGE;
/// Small transmit buffers: the header and a full 1514-byte frame.
const TX_SMALL: usize = 2048;
const TX_SMALL_BUFFERS: usize = 128;
/// Large transmit buffers (with HOST_TSO4 only): the header and a frame the
/// card segments.
const TX_LARGE: usize = HEADER_LEN + MAX_TSO_FRAME;
const TX_LARGE_BUFFERS: usize = 16;

/// Feature bits (virtio 1.0, §5.1.3 and §6).
mod feature {
    pub const CSUM: u64 = 1 << 0;
    pub const GUEST_CSUM: u64 = 1 << 1;
    pub const MAC: u64 = 1 << 5;
    pub const GUEST_TSO4: u64 = 1 << 7;
    pub const HOST_TSO4: u64 = 1 << 11;
    pub const MRG_RXBUF: u64 = 1 << 15;
    pub const STATUS: u64 = 1 << 16;
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    pub const VERSION_1: u64 = 1 << 32;
}

/// Counters shown by the shell's `net` command.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicStats {
    pub interrupts: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames the caller could not hand over because every TX buffer was busy.
    pub tx_full: u64,
    /// Frames dropped because no buffer could ever hold them.
    pub tx_dropped: u64,
    pub rx_errors: u64,
    /// Received frames that spanned several buffers (gathered).
    pub rx_merged: u64,
    /// Received TCP frames the card did not vouch for, verified here.
    pub rx_checksum_verified: u64,
    /// Received frames dropped for a wrong checksum.
    pub rx_checksum_bad: u64,
    /// Frames whose TCP checksum the card completed, and of them those it segmented.
    pub tx_checksum_offloaded: u64,
    pub tx_segmented: u64,
}

pub struct VirtioNic {
    transport: PciTransport,
    rx: VirtQueue<KernelHal, QUEUE_SIZE>,
    tx: VirtQueue<KernelHal, QUEUE_SIZE>,
    mac: [u8; 6],
    offloads: Offloads,
    /// Merged receive buffers negotiated: a frame may span buffers.
    merged: bool,
    /// Posted receive buffers by descriptor token.
    rx_posted: Vec<Option<&'static mut [u8]>>,
    /// A frame being gathered from several buffers: its header and the
    /// buffers still to come; the bytes so far are in `gathered`.
    gathering: Option<Gathering>,
    gathered: Vec<u8>,
    /// Buffers posted since the receive ring's doorbell last rang, and
    /// whether the device asked for it.
    rx_notify: bool,
    /// Transmit buffers in flight by descriptor token (with the length
    /// submitted), and free ones by size.
    tx_in_flight: Vec<Option<(&'static mut [u8], usize)>>,
    tx_free_small: Vec<&'static mut [u8]>,
    tx_free_large: Vec<&'static mut [u8]>,
    tx_notify: bool,
    gsi: u32,
    pub stats: NicStats,
}

#[derive(Clone, Copy)]
struct Gathering {
    header: NetHeader,
    remaining: u16,
    /// The frame grew beyond the largest one possible: drop it at its end.
    oversized: bool,
}

/// Interrupts seen (counted in the handler, which cannot reach the NIC).
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
/// The thread to wake on an interrupt: slot << 32 | tid, plus one (0 = none).
static WAITER: AtomicU64 = AtomicU64::new(0);
static GSI: AtomicU64 = AtomicU64::new(0);

/// Carves `count` DMA buffers of `size` bytes out of contiguous pages
/// (several to a page when they fit, else each on its own run of pages).
fn dma_buffers(count: usize, size: usize) -> Option<Vec<&'static mut [u8]>> {
    let pages = size.div_ceil(PAGE);
    let per_run = if size <= PAGE { PAGE / size } else { 1 };
    let mut buffers = Vec::with_capacity(count);
    while buffers.len() < count {
        let (_, pointer) = dma_pages(pages)?;
        for index in 0..per_run {
            // SAFETY: the pages are fresh DMA memory owned by this driver for
            // the rest of the run; the slices lie within them and do not
            // overlap.
            let buffer = unsafe { core::slice::from_raw_parts_mut(pointer.as_ptr().add(index * size), size) };
            buffers.push(buffer);
        }
    }
    buffers.truncate(count);
    Some(buffers)
}

/// Feature negotiation (virtio 1.0 §3.1.1 steps 1–6): what we want of what
/// the card offers, with the dependencies the specification sets.
fn negotiate(transport: &mut PciTransport) -> Option<u64> {
    transport.set_status(DeviceStatus::empty());
    transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let offered = transport.read_device_features();
    let wanted = feature::VERSION_1
        | feature::MAC
        | feature::STATUS
        | feature::RING_EVENT_IDX
        | feature::MRG_RXBUF
        | feature::CSUM
        | feature::GUEST_CSUM
        | feature::HOST_TSO4
        | feature::GUEST_TSO4;
    let mut features = offered & wanted;
    if features & feature::CSUM == 0 {
        features &= !feature::HOST_TSO4;
    }
    // Receiving 64 KiB frames needs the checksum flags and, with one-page
    // buffers, merged buffers.
    if features & feature::GUEST_CSUM == 0 || features & feature::MRG_RXBUF == 0 {
        features &= !feature::GUEST_TSO4;
    }
    if features & feature::VERSION_1 == 0 {
        return None;
    }
    transport.write_driver_features(features);
    transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
    transport.get_status().contains(DeviceStatus::FEATURES_OK).then_some(features)
}

/// Settles a received frame's checksum and hands it up (or drops it).
fn deliver_checked(
    stats: &mut NicStats,
    offloads: Offloads,
    frame: &mut [u8],
    header: &NetHeader,
    deliver: &mut impl FnMut(&[u8]),
) {
    match offload::check_received(frame, header, offloads) {
        Received::Bad => {
            stats.rx_checksum_bad += 1;
            return;
        }
        Received::Verified => stats.rx_checksum_verified += 1,
        Received::Vouched | Received::ForTheStack => {}
    }
    stats.rx_frames += 1;
    stats.rx_bytes += frame.len() as u64;
    deliver(frame);
}

impl VirtioNic {
    /// Finds the first virtio network function on the PCI bus and brings it
    /// up with every receive buffer posted. `None` if there is no such card.
    pub fn probe() -> Option<VirtioNic> {
        let mut root = pci::root();
        let found = pci::enumerate(&root).into_iter().find(|found| {
            virtio_drivers::transport::pci::virtio_device_type(&found.info) == Some(DeviceType::Network)
        })?;
        let function: DeviceFunction = found.function;
        let Some(gsi) = found.interrupt_line else {
            log::error!("virtio-net at {function}: no interrupt line");
            return None;
        };
        pci::enable(&mut root, function);
        let mut transport = match PciTransport::new::<KernelHal, _>(&mut root, function) {
            Ok(transport) => transport,
            Err(error) => {
                log::error!("virtio-net at {function}: {error:?} (a modern virtio 1.0 device is required)");
                return None;
            }
        };
        let Some(features) = negotiate(&mut transport) else {
            log::error!("virtio-net at {function}: feature negotiation failed");
            transport.set_status(DeviceStatus::FAILED);
            return None;
        };
        let has = |bit: u64| features & bit != 0;
        let mac = if has(feature::MAC) {
            transport.read_consistent(|| transport.read_config_space::<[u8; 6]>(0)).ok()?
        } else {
            [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        };
        let event_idx = has(feature::RING_EVENT_IDX);
        let queues = VirtQueue::new(&mut transport, QUEUE_RECEIVE, false, event_idx)
            .and_then(|rx| Ok((rx, VirtQueue::new(&mut transport, QUEUE_TRANSMIT, false, event_idx)?)));
        let (rx, tx) = match queues {
            Ok(queues) => queues,
            Err(error) => {
                log::error!("virtio-net at {function}: cannot set up the queues: {error:?}");
                transport.set_status(DeviceStatus::FAILED);
                return None;
            }
        };
        transport.finish_init();
        let offloads = Offloads {
            tx_checksum: has(feature::CSUM),
            rx_checksum: has(feature::GUEST_CSUM),
            tso4: has(feature::HOST_TSO4),
        };
        let mut nic = VirtioNic {
            transport,
            rx,
            tx,
            mac,
            offloads,
            merged: has(feature::MRG_RXBUF),
            rx_posted: (0..QUEUE_SIZE).map(|_| None).collect(),
            gathering: None,
            gathered: Vec::with_capacity(if has(feature::GUEST_TSO4) { MAX_RECEIVED_FRAME } else { 0 }),
            rx_notify: false,
            tx_in_flight: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_free_small: dma_buffers(TX_SMALL_BUFFERS, TX_SMALL)?,
            tx_free_large: if offloads.tso4 { dma_buffers(TX_LARGE_BUFFERS, TX_LARGE)? } else { Vec::new() },
            tx_notify: false,
            gsi: u32::from(gsi),
            stats: NicStats::default(),
        };
        for buffer in dma_buffers(QUEUE_SIZE, RX_BUFFER)? {
            nic.post_receive(buffer);
        }
        nic.notify_receive();
        GSI.store(u64::from(gsi), Ordering::Relaxed);
        let vector = vector::DEVICE_BASE + gsi;
        interrupts::set_handler(vector, on_interrupt);
        ioapic::route(u32::from(gsi), vector, apic::id(), ioapic::Trigger::Level);
        let link = if has(feature::STATUS) {
            match nic.transport.read_config_space::<u16>(6) {
                Ok(status) if status & 1 != 0 => "link up",
                Ok(_) => "link down",
                Err(_) => "link ?",
            }
        } else {
            "link assumed up"
        };
        log::info!(
            "virtio-net at {function}: MAC {:02x?}, IRQ {gsi}, {link}, {} RX buffers posted; features {features:#x}: \
             checksum offload tx {} rx {}, segmentation tx {} rx {}, merged rx buffers {}, event index {event_idx}",
            nic.mac,
            nic.rx_posted.iter().flatten().count(),
            offloads.tx_checksum,
            offloads.rx_checksum,
            offloads.tso4,
            has(feature::GUEST_TSO4),
            nic.merged,
        );
        Some(nic)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// What the card does for the stack (for the frame device's capabilities).
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// Which thread the interrupt wakes.
    pub fn set_waiter(&self, thread: ThreadRef) {
        WAITER.store(thread.to_bits() + 1, Ordering::Release);
    }

    /// Posts a receive buffer; the doorbell rings in [`Self::notify_receive`].
    fn post_receive(&mut self, buffer: &'static mut [u8]) {
        // SAFETY: the buffer is DMA memory owned by this driver; it is kept
        // in `rx_posted` and not touched until its token completes.
        match unsafe { self.rx.add(&[], &mut [&mut buffer[..]]) } {
            Ok(token) => {
                self.rx_posted[usize::from(token)] = Some(buffer);
                self.rx_notify |= self.rx.should_notify();
            }
            Err(error) => {
                self.stats.rx_errors += 1;
                log::error!("virtio-net: cannot post a receive buffer: {error:?}");
            }
        }
    }

    fn notify_receive(&mut self) {
        if core::mem::take(&mut self.rx_notify) {
            self.transport.notify(QUEUE_RECEIVE);
        }
    }

    /// Acknowledges the device's interrupt status (deasserting the line);
    /// done before draining so nothing that arrives later is missed.
    pub fn acknowledge(&mut self) {
        self.transport.ack_interrupt();
        self.stats.interrupts = INTERRUPTS.load(Ordering::Relaxed);
    }

    /// Hands up to `limit` received frames to `deliver`, re-posting each
    /// buffer. Frames beyond the limit stay in the card's ring (not lost) for
    /// the next call. Returns the number of frames taken from the ring
    /// (delivered, or dropped for a bad checksum).
    pub fn receive(&mut self, limit: usize, mut deliver: impl FnMut(&[u8])) -> usize {
        let mut count = 0;
        while (count < limit || self.gathering.is_some())
            && let Some(token) = self.rx.peek_used()
        {
            let Some(buffer) = self.rx_posted.get_mut(usize::from(token)).and_then(Option::take) else {
                self.stats.rx_errors += 1;
                log::error!("virtio-net: completion for unknown receive token {token}");
                break;
            };
            // SAFETY: `buffer` is the one posted with `token`, which is next
            // in the used ring.
            let used = match unsafe { self.rx.pop_used(token, &[], &mut [&mut buffer[..]]) } {
                Ok(used) => (used as usize).min(buffer.len()),
                Err(error) => {
                    self.stats.rx_errors += 1;
                    log::warn!("virtio-net: bad receive completion: {error:?}");
                    self.rx_posted[usize::from(token)] = Some(buffer);
                    break;
                }
            };
            match self.gathering.take() {
                None => match NetHeader::decode(&buffer[..used]) {
                    None => {
                        self.stats.rx_errors += 1;
                        count += 1;
                    }
                    Some(header) => {
                        let pieces = if self.merged { header.num_buffers.max(1) } else { 1 };
                        let data = &mut buffer[HEADER_LEN..used];
                        if pieces == 1 {
                            deliver_checked(&mut self.stats, self.offloads, data, &header, &mut deliver);
                            count += 1;
                        } else {
                            self.gathered.clear();
                            self.gathered.extend_from_slice(data);
                            self.gathering =
                                Some(Gathering { header, remaining: pieces - 1, oversized: false });
                        }
                    }
                },
                Some(mut gathering) => {
                    if self.gathered.len() + used > MAX_RECEIVED_FRAME {
                        gathering.oversized = true;
                    } else {
                        self.gathered.extend_from_slice(&buffer[..used]);
                    }
                    gathering.remaining -= 1;
                    if gathering.remaining > 0 {
                        self.gathering = Some(gathering);
                    } else {
                        count += 1;
                        self.stats.rx_merged += 1;
                        if gathering.oversized {
                            self.stats.rx_errors += 1;
                        } else {
                            let header = gathering.header;
                            let frame = &mut self.gathered[..];
                            deliver_checked(&mut self.stats, self.offloads, frame, &header, &mut deliver);
                        }
                    }
                }
            }
            self.post_receive(buffer);
        }
        self.notify_receive();
        count
    }

    /// Returns finished transmit buffers to their free lists.
    fn reclaim(&mut self) {
        while let Some(token) = self.tx.peek_used() {
            let Some((buffer, length)) = self.tx_in_flight.get_mut(usize::from(token)).and_then(Option::take)
            else {
                log::error!("virtio-net: completion for unknown transmit token {token}");
                break;
            };
            // SAFETY: `buffer[..length]` is what was submitted with `token`,
            // which is next in the used ring.
            let _ = unsafe { self.tx.pop_used(token, &[&buffer[..length]], &mut []) };
            if buffer.len() == TX_SMALL {
                self.tx_free_small.push(buffer);
            } else {
                self.tx_free_large.push(buffer);
            }
        }
    }

    /// Submits `frame` without waiting, with the header its offloads need
    /// (`segment`: the stack's segmentation request); `false` if no buffer or
    /// descriptor is free (the caller keeps the frame). The card hears of it
    /// at the next [`Self::notify_transmit`].
    pub fn transmit(&mut self, frame: &[u8], segment: Option<u16>) -> bool {
        self.reclaim();
        let length = HEADER_LEN + frame.len();
        if length > TX_LARGE || (length > TX_SMALL && !self.offloads.tso4) {
            // Larger than anything the stack was told it may build.
            self.stats.tx_dropped += 1;
            log::warn!("virtio-net: dropped a {}-byte frame (too large)", frame.len());
            return true;
        }
        let free = if length <= TX_SMALL { &mut self.tx_free_small } else { &mut self.tx_free_large };
        let buffer = match free.pop() {
            Some(buffer) if self.tx.available_desc() > 0 => buffer,
            other => {
                if let Some(buffer) = other {
                    free.push(buffer);
                }
                self.stats.tx_full += 1;
                return false;
            }
        };
        buffer[HEADER_LEN..length].copy_from_slice(frame);
        let header = offload::transmit_header(&mut buffer[HEADER_LEN..length], segment, self.offloads);
        buffer[..HEADER_LEN].copy_from_slice(&header.encode());
        // SAFETY: the buffer stays in `tx_in_flight`, untouched, until its
        // token completes.
        match unsafe { self.tx.add(&[&buffer[..length]], &mut []) } {
            Ok(token) => {
                self.tx_in_flight[usize::from(token)] = Some((buffer, length));
                self.tx_notify |= self.tx.should_notify();
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len() as u64;
                if header.flags & offload::NEEDS_CSUM != 0 {
                    self.stats.tx_checksum_offloaded += 1;
                }
                if header.gso_type != offload::GSO_NONE {
                    self.stats.tx_segmented += 1;
                }
                true
            }
            Err(error) => {
                log::warn!("virtio-net: transmit failed: {error:?}");
                if buffer.len() == TX_SMALL {
                    self.tx_free_small.push(buffer);
                } else {
                    self.tx_free_large.push(buffer);
                }
                false
            }
        }
    }

    /// Rings the transmit doorbell once for the frames submitted since the
    /// last call, if the card asked to be told.
    pub fn notify_transmit(&mut self) {
        if core::mem::take(&mut self.tx_notify) {
            self.transport.notify(QUEUE_TRANSMIT);
        }
    }

    /// Whether received frames are waiting in the ring.
    pub fn has_received(&self) -> bool {
        self.rx.can_pop()
    }

    /// Lets the card interrupt again (after draining).
    pub fn unmask_interrupt(&self) {
        ioapic::set_masked(self.gsi, false);
    }
}

fn on_interrupt(frame: &mut TrapFrame) -> *mut TrapFrame {
    // Level-triggered: mask until the thread has acknowledged the device.
    ioapic::set_masked(GSI.load(Ordering::Relaxed) as u32, true);
    apic::end_of_interrupt();
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    let waiter = WAITER.load(Ordering::Acquire);
    if waiter == 0 {
        return frame;
    }
    // Straight to the network thread on this interrupt's return.
    sched::unpark_from_interrupt(ThreadRef::from_bits(waiter - 1), frame)
}
