//! Page tables: the kernel's view of physical memory (a fixed offset mapping
//! set up by the bootloader) and mapping new pages into the kernel's address
//! space.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::Cr3;
use x86_64::structures::paging::page_table::PageTableFlags as Flags;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::IrqLock;

pub const PAGE_SIZE: u64 = 4096;

static PHYSICAL_OFFSET: AtomicU64 = AtomicU64::new(0);
/// The active page tables. Locked with interrupts off: an allocation in an
/// interrupt handler may grow the heap, which maps pages.
static MAPPER: IrqLock<Option<OffsetPageTable<'static>>> = IrqLock::new(None);

/// Takes over the bootloader's page tables, with all of physical memory
/// mapped at `physical_offset`.
pub fn init(physical_offset: u64) {
    PHYSICAL_OFFSET.store(physical_offset, Ordering::Relaxed);
    let (level_4, _) = Cr3::read();
    let table = physical_to_virtual(level_4.start_address().as_u64()) as *mut PageTable;
    // SAFETY: CR3 points at the active level-4 table, which the offset mapping
    // makes accessible; this is the only mutable handle to it (behind MAPPER).
    let mapper = unsafe { OffsetPageTable::new(&mut *table, VirtAddr::new(physical_offset)) };
    *MAPPER.lock() = Some(mapper);
}

/// The kernel-virtual address at which physical address `physical` is mapped.
pub fn physical_to_virtual(physical: u64) -> u64 {
    PHYSICAL_OFFSET.load(Ordering::Relaxed) + physical
}

/// Whether `address` is mapped in the active address space. Walks the tables
/// without locks, so it is safe to call from a fault handler.
pub fn is_mapped(address: u64) -> bool {
    let offset = PHYSICAL_OFFSET.load(Ordering::Relaxed);
    if offset == 0 {
        return false;
    }
    let Ok(address) = VirtAddr::try_new(address) else { return false };
    let mut table_physical = Cr3::read().0.start_address().as_u64();
    let indices = [address.p4_index(), address.p3_index(), address.p2_index(), address.p1_index()];
    for (level, index) in indices.into_iter().enumerate() {
        // SAFETY: page-table frames lie in physical memory, all of which the
        // bootloader mapped at `offset`; the read does not race with a writer
        // in a way that could fault (entries are plain words).
        let table = unsafe { &*((offset + table_physical) as *const PageTable) };
        let entry = &table[index];
        if !entry.flags().contains(Flags::PRESENT) {
            return false;
        }
        // Levels 3 and 2 may hold 1 GiB / 2 MiB pages.
        if level > 0 && entry.flags().contains(Flags::HUGE_PAGE) {
            return true;
        }
        table_physical = entry.addr().as_u64();
    }
    true
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    OutOfFrames,
    AlreadyMapped,
}

struct Frames<'a>(&'a mut dyn FnMut() -> Option<u64>);

// SAFETY: the closure hands out frames that are free and exclusively ours.
unsafe impl FrameAllocator<Size4KiB> for Frames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        (self.0)().map(|address| PhysFrame::containing_address(PhysAddr::new(address)))
    }
}

/// Maps `count` writable, non-executable kernel pages at `start`, each backed
/// by a frame from `allocate_frame` (physical address of a free 4 KiB frame).
/// On failure the frame that could not be mapped goes back through
/// `free_frame`; the pages already mapped stay for the caller to unmap.
pub fn map_kernel_pages(
    start: u64,
    count: u64,
    allocate_frame: &mut dyn FnMut() -> Option<u64>,
    free_frame: &mut dyn FnMut(u64),
) -> Result<(), MapError> {
    let flags = Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE | Flags::GLOBAL;
    for index in 0..count {
        let frame = allocate_frame().ok_or(MapError::OutOfFrames)?;
        if let Err(error) = map_page(start + index * PAGE_SIZE, frame, flags, allocate_frame) {
            free_frame(frame);
            return Err(error);
        }
    }
    Ok(())
}

/// Maps device registers at physical `physical` (`count` pages) to `virt`,
/// uncached: the physical-memory mapping is write-back, which must not be
/// used for MMIO.
pub fn map_mmio(
    virt: u64,
    physical: u64,
    count: u64,
    allocate_frame: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), MapError> {
    let flags = Flags::PRESENT
        | Flags::WRITABLE
        | Flags::NO_EXECUTE
        | Flags::GLOBAL
        | Flags::NO_CACHE
        | Flags::WRITE_THROUGH;
    for index in 0..count {
        map_page(virt + index * PAGE_SIZE, physical + index * PAGE_SIZE, flags, allocate_frame)?;
    }
    Ok(())
}

fn map_page(
    virt: u64,
    physical: u64,
    flags: Flags,
    allocate_frame: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), MapError> {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging initialised");
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::containing_address(PhysAddr::new(physical));
    let mut frames = Frames(allocate_frame);
    // SAFETY: callers map pages in kernel regions nothing else maps, to
    // frames that are fresh or device registers, so no reference is aliased.
    let flush = unsafe { mapper.map_to(page, frame, flags, &mut frames) }.map_err(|error| {
        use x86_64::structures::paging::mapper::MapToError;
        match error {
            MapToError::FrameAllocationFailed => MapError::OutOfFrames,
            _ => MapError::AlreadyMapped,
        }
    })?;
    flush.flush();
    Ok(())
}

/// Unmaps `count` pages at `start`, handing each backing frame to `free`.
/// Pages that are not mapped are skipped.
pub fn unmap_kernel_pages(start: u64, count: u64, free: &mut dyn FnMut(u64)) {
    let mut guard = MAPPER.lock();
    let mapper = guard.as_mut().expect("paging initialised");
    for index in 0..count {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(start + index * PAGE_SIZE));
        if let Ok((frame, flush)) = mapper.unmap(page) {
            flush.flush();
            free(frame.start_address().as_u64());
        }
    }
}
