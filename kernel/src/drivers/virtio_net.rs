//! The virtio network card (`virtio-net-pci`, modern transport) through
//! `virtio-drivers`' non-blocking raw interface.
//!
//! - **Receive**: every receive descriptor always holds a buffer: a frame is
//!   copied out when it completes and its buffer is posted again at once.
//! - **Transmit**: frames are copied into free DMA buffers and submitted
//!   without waiting; completed buffers are reclaimed on the next call. When
//!   none is free, `transmit` says so and the caller keeps the frame (the
//!   stack's socket buffers hold the data: backpressure, not spinning).
//! - **Interrupts**: INTx, level-triggered through the I/O APIC. The handler
//!   masks the line, ends the interrupt and unparks the network thread; the
//!   thread acknowledges the device (which deasserts the line), drains it,
//!   and unmasks the line before it parks again (NAPI-style: while the
//!   thread is busy, neither RX nor TX completions interrupt it). A frame that
//!   arrives between the last drain and the unmask keeps the line asserted,
//!   so the interrupt fires on unmask: no lost wake-up.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::DeviceFunction;

use super::pci;
use super::virtio_hal::{KernelHal, dma_pages};
use crate::arch::interrupts::{self, vector};
use crate::arch::{TrapFrame, apic, ioapic};
use crate::sched::{self, ThreadRef};

const QUEUE_SIZE: usize = 256;
/// Room for the virtio-net header and a full Ethernet frame.
const BUFFER_SIZE: usize = 2048;
/// Transmit buffers (the queue takes one descriptor per frame).
const TX_BUFFERS: usize = 128;

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
    pub rx_errors: u64,
}

pub struct VirtioNic {
    raw: VirtIONetRaw<KernelHal, PciTransport, QUEUE_SIZE>,
    /// Posted receive buffers by descriptor token.
    rx_posted: Vec<Option<&'static mut [u8]>>,
    /// Transmit buffers in flight by descriptor token, and free ones.
    tx_in_flight: Vec<Option<&'static mut [u8]>>,
    tx_free: Vec<&'static mut [u8]>,
    gsi: u32,
    pub stats: NicStats,
}

/// Interrupts seen (counted in the handler, which cannot reach the NIC).
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
/// The thread to wake on an interrupt: slot << 32 | tid, plus one (0 = none).
static WAITER: AtomicU64 = AtomicU64::new(0);
static GSI: AtomicU64 = AtomicU64::new(0);

/// Carves `count` DMA buffers out of contiguous pages.
fn dma_buffers(count: usize) -> Option<Vec<&'static mut [u8]>> {
    let per_page = 4096 / BUFFER_SIZE;
    let mut buffers = Vec::with_capacity(count);
    while buffers.len() < count {
        let (_, pointer) = dma_pages(1)?;
        for index in 0..per_page {
            // SAFETY: the page is fresh DMA memory owned by this driver for
            // the rest of the run; the slices do not overlap.
            let buffer = unsafe {
                core::slice::from_raw_parts_mut(pointer.as_ptr().add(index * BUFFER_SIZE), BUFFER_SIZE)
            };
            buffers.push(buffer);
        }
    }
    buffers.truncate(count);
    Some(buffers)
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
        let transport = match PciTransport::new::<KernelHal, _>(&mut root, function) {
            Ok(transport) => transport,
            Err(error) => {
                log::error!("virtio-net at {function}: {error:?} (a modern virtio 1.0 device is required)");
                return None;
            }
        };
        let raw = match VirtIONetRaw::new(transport) {
            Ok(raw) => raw,
            Err(error) => {
                log::error!("virtio-net at {function}: initialisation failed: {error:?}");
                return None;
            }
        };
        let mut nic = VirtioNic {
            raw,
            rx_posted: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_in_flight: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_free: dma_buffers(TX_BUFFERS)?,
            gsi: u32::from(gsi),
            stats: NicStats::default(),
        };
        for buffer in dma_buffers(QUEUE_SIZE)? {
            nic.post_receive(buffer);
        }
        GSI.store(u64::from(gsi), Ordering::Relaxed);
        let vector = vector::DEVICE_BASE + gsi;
        interrupts::set_handler(vector, on_interrupt);
        ioapic::route(u32::from(gsi), vector, apic::id(), ioapic::Trigger::Level);
        log::info!(
            "virtio-net at {function}: MAC {:02x?}, IRQ {gsi}, {} RX buffers posted",
            nic.raw.mac_address(),
            nic.rx_posted.iter().flatten().count()
        );
        Some(nic)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    /// Which thread the interrupt wakes.
    pub fn set_waiter(&self, thread: ThreadRef) {
        WAITER.store(thread.to_bits() + 1, Ordering::Release);
    }

    fn post_receive(&mut self, buffer: &'static mut [u8]) {
        // SAFETY: the buffer is DMA memory owned by this driver; it is kept
        // in `rx_posted` and not touched until its token completes.
        match unsafe { self.raw.receive_begin(buffer) } {
            Ok(token) => self.rx_posted[usize::from(token)] = Some(buffer),
            Err(error) => {
                self.stats.rx_errors += 1;
                log::error!("virtio-net: cannot post a receive buffer: {error:?}");
            }
        }
    }

    /// Acknowledges the device's interrupt status (deasserting the line);
    /// done before draining so nothing that arrives later is missed.
    pub fn acknowledge(&mut self) {
        self.raw.ack_interrupt();
        self.stats.interrupts = INTERRUPTS.load(Ordering::Relaxed);
    }

    /// Hands up to `limit` received frames to `deliver`, re-posting each
    /// buffer. Frames beyond the limit stay in the card's ring (not lost) for
    /// the next call. Returns the number of frames.
    pub fn receive(&mut self, limit: usize, mut deliver: impl FnMut(&[u8])) -> usize {
        let mut count = 0;
        while count < limit
            && let Some(token) = self.raw.poll_receive()
        {
            let Some(buffer) = self.rx_posted.get_mut(usize::from(token)).and_then(Option::take) else {
                self.stats.rx_errors += 1;
                log::error!("virtio-net: completion for unknown receive token {token}");
                break;
            };
            // SAFETY: `buffer` is the one posted with `token`.
            match unsafe { self.raw.receive_complete(token, buffer) } {
                Ok((header, length)) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += length as u64;
                    deliver(&buffer[header..header + length]);
                }
                Err(error) => {
                    self.stats.rx_errors += 1;
                    log::warn!("virtio-net: bad receive completion: {error:?}");
                }
            }
            self.post_receive(buffer);
            count += 1;
        }
        count
    }

    /// Returns finished transmit buffers to the free list.
    fn reclaim(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some(buffer) = self.tx_in_flight.get_mut(usize::from(token)).and_then(Option::take) else {
                log::error!("virtio-net: completion for unknown transmit token {token}");
                break;
            };
            // SAFETY: `buffer` is the one submitted with `token`.
            let _ = unsafe { self.raw.transmit_complete(token, buffer) };
            self.tx_free.push(buffer);
        }
    }

    /// Whether a frame could be submitted now.
    pub fn can_transmit(&mut self) -> bool {
        self.reclaim();
        !self.tx_free.is_empty() && self.raw.can_send()
    }

    /// Submits `frame` without waiting; `false` if no buffer or descriptor is
    /// free (the caller keeps the frame).
    pub fn transmit(&mut self, frame: &[u8]) -> bool {
        if !self.can_transmit() {
            self.stats.tx_full += 1;
            return false;
        }
        let Some(buffer) = self.tx_free.pop() else { return false };
        let Ok(header) = self.raw.fill_buffer_header(buffer) else {
            self.tx_free.push(buffer);
            return false;
        };
        let length = header + frame.len().min(BUFFER_SIZE - header);
        buffer[header..length].copy_from_slice(&frame[..length - header]);
        // SAFETY: the buffer stays in `tx_in_flight`, untouched, until its
        // token completes.
        match unsafe { self.raw.transmit_begin(&buffer[..length]) } {
            Ok(token) => {
                self.tx_in_flight[usize::from(token)] = Some(buffer);
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len() as u64;
                true
            }
            Err(error) => {
                log::warn!("virtio-net: transmit failed: {error:?}");
                self.tx_free.push(buffer);
                false
            }
        }
    }

    /// Whether received frames are waiting in the ring.
    pub fn has_received(&self) -> bool {
        self.raw.poll_receive().is_some()
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
    if waiter != 0 {
        sched::unpark(ThreadRef::from_bits(waiter - 1));
    }
    frame
}
