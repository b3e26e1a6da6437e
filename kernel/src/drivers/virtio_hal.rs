//! The `virtio-drivers` HAL: DMA memory from contiguous physical frames
//! (reached through the physical-memory mapping, so a virtual range is also
//! physically contiguous), MMIO BARs mapped uncached on demand.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::arch::paging::{self, PAGE_SIZE, physical_to_virtual};
use crate::memory::frames;

/// Virtual window for device registers.
const MMIO_BASE: u64 = 0xffff_b000_1000_0000;
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_BASE);

pub struct KernelHal;

/// Allocates `pages` zeroed, physically contiguous pages; returns the
/// physical address and the kernel pointer.
pub fn dma_pages(pages: usize) -> Option<(u64, NonNull<u8>)> {
    let physical = frames::allocate_contiguous(pages as u64)?;
    let virt = physical_to_virtual(physical) as *mut u8;
    // SAFETY: the frames were just allocated for us and are mapped at `virt`.
    unsafe { core::ptr::write_bytes(virt, 0, pages * PAGE_SIZE as usize) };
    Some((physical, NonNull::new(virt)?))
}

// SAFETY: dma_alloc returns fresh, zeroed, page-aligned, contiguous memory
// that nothing else references; mmio_phys_to_virt maps the BAR range once,
// uncached, at addresses used for nothing else; share returns the physical
// address of memory that is physically contiguous (the physical-memory
// mapping) — Tenfold only hands the device buffers from `dma_pages`.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        dma_pages(pages).expect("out of physical memory for virtio queues")
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        for page in 0..pages as u64 {
            frames::free(paddr + page * PAGE_SIZE);
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let offset = paddr % PAGE_SIZE;
        let first = paddr - offset;
        let pages = (offset + size as u64).div_ceil(PAGE_SIZE);
        let virt = MMIO_NEXT.fetch_add(pages * PAGE_SIZE, Ordering::Relaxed);
        paging::map_mmio(virt, first, pages, &mut frames::allocate).expect("mapping a virtio BAR");
        NonNull::new((virt + offset) as *mut u8).expect("non-null MMIO window")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let virt = buffer.as_ptr() as *mut u8 as u64;
        let base = physical_to_virtual(0);
        assert!(virt >= base, "DMA buffer outside the physical-memory mapping");
        virt - base
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
