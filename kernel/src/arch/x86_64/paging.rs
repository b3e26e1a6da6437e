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

/// Physical address of the kernel's level-4 table: the address space of
/// kernel threads, and the source of every task's kernel half.
static KERNEL_LEVEL_4: AtomicU64 = AtomicU64::new(0);

/// Gives every kernel-half slot of the level-4 table (256..512) a level-3
/// table of its own, so that every address space made later by copying
/// those 256 entries sees all kernel mappings made at any time (heap growth,
/// thread stacks, MMIO): they all land in the shared level-3 tables. Costs
/// one frame per empty slot (up to 1 MiB), once.
pub fn share_kernel_half(allocate_frame: &mut dyn FnMut() -> Option<u64>) -> Result<(), MapError> {
    let (level_4, _) = Cr3::read();
    let physical = level_4.start_address().as_u64();
    KERNEL_LEVEL_4.store(physical, Ordering::Relaxed);
    let _guard = MAPPER.lock();
    // SAFETY: the active level-4 table, reached through the offset mapping;
    // MAPPER's lock is held, so nothing else edits it meanwhile.
    let table = unsafe { &mut *(physical_to_virtual(physical) as *mut PageTable) };
    for index in 256..512 {
        let entry = &mut table[index];
        if entry.flags().contains(Flags::PRESENT) {
            // Kernel half: never reachable from ring 3.
            let flags = entry.flags() - Flags::USER_ACCESSIBLE;
            entry.set_flags(flags);
            continue;
        }
        let frame = allocate_frame().ok_or(MapError::OutOfFrames)?;
        zero_frame(frame);
        entry.set_addr(PhysAddr::new(frame), Flags::PRESENT | Flags::WRITABLE);
    }
    x86_64::instructions::tlb::flush_all();
    Ok(())
}

/// The kernel's level-4 table (physical).
pub fn kernel_level_4() -> u64 {
    KERNEL_LEVEL_4.load(Ordering::Relaxed)
}

/// Fills a frame with zeros through the physical-memory mapping.
pub fn zero_frame(frame: u64) {
    // SAFETY: the frame is free or owned by the caller, and mapped at the
    // offset like all physical memory.
    unsafe { core::ptr::write_bytes(physical_to_virtual(frame) as *mut u8, 0, PAGE_SIZE as usize) };
}

/// Loads `level_4` into CR3 unless it is already there.
pub fn switch_to(level_4: u64) {
    let (current, flags) = Cr3::read();
    if current.start_address().as_u64() != level_4 {
        // SAFETY: `level_4` is the kernel's table or a task's, whose kernel
        // half is a copy of the kernel's: the code running now stays mapped.
        unsafe { Cr3::write(PhysFrame::containing_address(PhysAddr::new(level_4)), flags) };
    }
}

/// How a user page is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserAccess {
    pub write: bool,
    pub execute: bool,
}

/// A task's page tables: the user half (level-4 slots 0..256) private, the
/// kernel half the shared tables of [`share_kernel_half`] (supervisor-only).
/// Counts every frame it holds — page tables and mapped pages — and frees
/// them all in [`UserSpace::destroy`]. User mappings are W^X by
/// construction ([`UserAccess`] cannot ask for both) and no-execute unless
/// asked.
pub struct UserSpace {
    level_4: u64,
    frames: u64,
    /// Of `frames`, the page tables (the level-4 table included).
    tables: u64,
}

impl UserSpace {
    /// A new address space with an empty user half.
    pub fn new(allocate_frame: &mut dyn FnMut() -> Option<u64>) -> Result<UserSpace, MapError> {
        let level_4 = allocate_frame().ok_or(MapError::OutOfFrames)?;
        zero_frame(level_4);
        // SAFETY: both tables are reached through the offset mapping; the
        // new one is ours alone, the kernel's is only read (its kernel-half
        // entries never change after `share_kernel_half`).
        unsafe {
            let kernel = &*(physical_to_virtual(kernel_level_4()) as *const PageTable);
            let new = &mut *(physical_to_virtual(level_4) as *mut PageTable);
            for index in 256..512 {
                new[index] = kernel[index].clone();
            }
        }
        Ok(UserSpace { level_4, frames: 1, tables: 1 })
    }

    /// The level-4 table's physical address (for CR3).
    pub fn level_4(&self) -> u64 {
        self.level_4
    }

    /// Frames held: page tables and mapped pages.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Of [`frames`](Self::frames), the page tables.
    pub fn table_frames(&self) -> u64 {
        self.tables
    }

    fn mapper(&mut self) -> OffsetPageTable<'_> {
        // SAFETY: the table is this space's own (allocated in `new`), reached
        // through the offset mapping; `&mut self` makes this the only handle.
        unsafe {
            OffsetPageTable::new(
                &mut *(physical_to_virtual(self.level_4) as *mut PageTable),
                VirtAddr::new(PHYSICAL_OFFSET.load(Ordering::Relaxed)),
            )
        }
    }

    /// Maps the user page at `virt` to `frame` (which the space then owns).
    /// `virt` must be page-aligned and in the user half.
    pub fn map(
        &mut self,
        virt: u64,
        frame: u64,
        access: UserAccess,
        allocate_frame: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<(), MapError> {
        assert!(virt < 0x0000_8000_0000_0000 && virt.is_multiple_of(PAGE_SIZE), "user page {virt:#x}");
        assert!(!(access.write && access.execute), "W^X");
        let mut flags = Flags::PRESENT | Flags::USER_ACCESSIBLE;
        if access.write {
            flags |= Flags::WRITABLE;
        }
        if !access.execute {
            flags |= Flags::NO_EXECUTE;
        }
        let mut tables = 0;
        let mut counting = || {
            let frame = allocate_frame()?;
            zero_frame(frame);
            tables += 1;
            Some(frame)
        };
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
        let target = PhysFrame::containing_address(PhysAddr::new(frame));
        let mut mapper = self.mapper();
        // SAFETY: a user page of this space mapped to a frame the caller
        // hands over; the kernel never holds a reference into user pages.
        let result = unsafe { mapper.map_to(page, target, flags, &mut Frames(&mut counting)) };
        self.frames += tables;
        self.tables += tables;
        match result {
            Ok(flush) => {
                // Not active yet, or active: a flush is cheap and always right.
                flush.flush();
                self.frames += 1;
                Ok(())
            }
            Err(x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed) => {
                Err(MapError::OutOfFrames)
            }
            Err(_) => Err(MapError::AlreadyMapped),
        }
    }

    /// Unmaps the user page at `virt`; returns its frame (the caller frees it).
    pub fn unmap(&mut self, virt: u64) -> Option<u64> {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::try_new(virt).ok()?);
        let (frame, flush) = self.mapper().unmap(page).ok()?;
        flush.flush();
        self.frames -= 1;
        Some(frame.start_address().as_u64())
    }

    /// The access a user page at `virt` has, if it is mapped user-accessible.
    /// Reads the tables only; never faults.
    pub fn access(&self, virt: u64) -> Option<UserAccess> {
        let address = VirtAddr::try_new(virt).ok()?;
        if virt >= 0x0000_8000_0000_0000 {
            return None;
        }
        let mut table_physical = self.level_4;
        let mut write = true;
        let mut execute = true;
        let indices = [address.p4_index(), address.p3_index(), address.p2_index(), address.p1_index()];
        for index in indices {
            // SAFETY: page-table frames of this space, reached through the
            // offset mapping; plain reads of entries.
            let table = unsafe { &*(physical_to_virtual(table_physical) as *const PageTable) };
            let flags = table[index].flags();
            if !flags.contains(Flags::PRESENT | Flags::USER_ACCESSIBLE) || flags.contains(Flags::HUGE_PAGE) {
                return None;
            }
            write &= flags.contains(Flags::WRITABLE);
            execute &= !flags.contains(Flags::NO_EXECUTE);
            table_physical = table[index].addr().as_u64();
        }
        Some(UserAccess { write, execute })
    }

    /// Frees every frame of the user half — mapped pages and page tables —
    /// and the level-4 table. If it is the active space (a kernel thread
    /// runs on the last task's tables, see `sched`), the kernel's are
    /// loaded first: a freed table is never live.
    pub fn destroy(self, free_frame: &mut dyn FnMut(u64)) -> u64 {
        fn free_table(physical: u64, level: u8, free_frame: &mut dyn FnMut(u64)) -> u64 {
            // SAFETY: a page-table frame of a space nobody uses any more.
            let table = unsafe { &*(physical_to_virtual(physical) as *const PageTable) };
            let mut freed = 0;
            for entry in table.iter() {
                if !entry.flags().contains(Flags::PRESENT) {
                    continue;
                }
                let child = entry.addr().as_u64();
                if level > 1 {
                    freed += free_table(child, level - 1, free_frame);
                } else {
                    free_frame(child);
                    freed += 1;
                }
            }
            free_frame(physical);
            freed + 1
        }
        if Cr3::read().0.start_address().as_u64() == self.level_4 {
            switch_to(kernel_level_4());
        }
        // SAFETY: this space's level-4 table; only its user half is walked.
        let level_4 = unsafe { &*(physical_to_virtual(self.level_4) as *const PageTable) };
        let mut freed = 0;
        for index in 0..256 {
            let entry = &level_4[index];
            if entry.flags().contains(Flags::PRESENT) {
                freed += free_table(entry.addr().as_u64(), 3, free_frame);
            }
        }
        free_frame(self.level_4);
        freed + 1
    }
}
