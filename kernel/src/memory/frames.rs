//! Physical frame allocator: hands out 4 KiB frames from the usable regions
//! of the bootloader's memory map. Fresh frames come from a bump pointer over
//! the regions; freed frames go on an intrusive free list (the link lives in
//! the free frame itself, reached through the physical-memory mapping), so
//! the allocator needs no heap.

use core::ops::Range;

use crate::arch::IrqLock;
use crate::arch::paging::{PAGE_SIZE, physical_to_virtual};

const MAX_REGIONS: usize = 64;
/// Frames below 1 MiB are left alone (real-mode leftovers, firmware data).
const LOW_MEMORY_END: u64 = 0x10_0000;

struct FrameAllocator {
    regions: [Range<u64>; MAX_REGIONS],
    region_count: usize,
    /// Region the bump pointer is in, and the next fresh frame in it.
    current: usize,
    next: u64,
    /// Physical address of the first freed frame; 0 = empty.
    free_list: u64,
    usable_frames: u64,
    allocated_frames: u64,
}

static FRAMES: IrqLock<FrameAllocator> = IrqLock::new(FrameAllocator {
    regions: [const { 0..0 }; MAX_REGIONS],
    region_count: 0,
    current: 0,
    next: 0,
    free_list: 0,
    usable_frames: 0,
    allocated_frames: 0,
});

/// Counters of the frame allocator.
#[derive(Clone, Copy, Debug)]
pub struct FrameStats {
    pub usable_frames: u64,
    pub allocated_frames: u64,
}

impl FrameStats {
    pub fn usable_bytes(&self) -> u64 {
        self.usable_frames * PAGE_SIZE
    }
    pub fn free_frames(&self) -> u64 {
        self.usable_frames - self.allocated_frames
    }
}

/// Takes the usable physical ranges (page-aligned inward).
pub fn init(usable: impl Iterator<Item = Range<u64>>) {
    let mut frames = FRAMES.lock();
    for range in usable {
        let start = range.start.max(LOW_MEMORY_END).next_multiple_of(PAGE_SIZE);
        let end = range.end & !(PAGE_SIZE - 1);
        if start >= end {
            continue;
        }
        if frames.region_count == MAX_REGIONS {
            log::warn!(
                "memory map has more than {MAX_REGIONS} usable regions; ignoring {start:#x}..{end:#x}"
            );
            continue;
        }
        let index = frames.region_count;
        frames.regions[index] = start..end;
        frames.region_count += 1;
        frames.usable_frames += (end - start) / PAGE_SIZE;
    }
    frames.next = frames.regions[0].start;
}

/// Allocates one frame; returns its physical address.
pub fn allocate() -> Option<u64> {
    let mut frames = FRAMES.lock();
    let frame = frames.take_free().or_else(|| frames.take_fresh())?;
    frames.allocated_frames += 1;
    Some(frame)
}

/// Allocates `count` physically contiguous frames (for device DMA); returns
/// the first one's address. Comes from the never-used part of a region; a
/// region's tail too short for the request goes to the free list.
pub fn allocate_contiguous(count: u64) -> Option<u64> {
    let mut frames = FRAMES.lock();
    while frames.current < frames.region_count {
        let end = frames.regions[frames.current].end;
        if frames.next + count * PAGE_SIZE <= end {
            let first = frames.next;
            frames.next += count * PAGE_SIZE;
            frames.allocated_frames += count;
            return Some(first);
        }
        // Keep the short tail usable for single frames.
        while frames.next < end {
            let frame = frames.next;
            frames.next += PAGE_SIZE;
            frames.push_free(frame);
        }
        frames.current += 1;
        if frames.current < frames.region_count {
            frames.next = frames.regions[frames.current].start;
        }
    }
    None
}

/// Returns a frame obtained from [`allocate`].
pub fn free(frame: u64) {
    debug_assert_eq!(frame % PAGE_SIZE, 0);
    let mut frames = FRAMES.lock();
    frames.push_free(frame);
    frames.allocated_frames -= 1;
}

pub fn stats() -> FrameStats {
    let frames = FRAMES.lock();
    FrameStats { usable_frames: frames.usable_frames, allocated_frames: frames.allocated_frames }
}

impl FrameAllocator {
    fn push_free(&mut self, frame: u64) {
        // SAFETY: the frame is unused (given back, or never handed out); its
        // first word becomes the free-list link.
        unsafe { *(physical_to_virtual(frame) as *mut u64) = self.free_list };
        self.free_list = frame;
    }

    fn take_free(&mut self) -> Option<u64> {
        if self.free_list == 0 {
            return None;
        }
        let frame = self.free_list;
        // SAFETY: frames on the free list hold the link written by `free`.
        self.free_list = unsafe { *(physical_to_virtual(frame) as *const u64) };
        Some(frame)
    }

    fn take_fresh(&mut self) -> Option<u64> {
        while self.current < self.region_count {
            if self.next < self.regions[self.current].end {
                let frame = self.next;
                self.next += PAGE_SIZE;
                return Some(frame);
            }
            self.current += 1;
            if self.current < self.region_count {
                self.next = self.regions[self.current].start;
            }
        }
        None
    }
}
