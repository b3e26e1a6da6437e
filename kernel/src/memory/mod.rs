//! Physical and virtual memory: the frame allocator over the boot path's
//! memory map, and the kernel heap that grows on demand.

pub mod frames;
pub mod heap;

use crate::arch::paging;
use crate::boot::BootInfo;
use crate::params::Params;

/// Initial heap; it grows in steps as allocations need more.
const HEAP_INITIAL: u64 = 1 << 20;

pub fn init(boot: &BootInfo, params: &Params) {
    paging::init(boot.physical_memory_offset);
    if boot.usable.dropped > 0 {
        log::warn!(
            "memory map: {} usable ranges beyond the first {} ignored",
            boot.usable.dropped,
            boot.usable.len()
        );
    }
    for module in boot.modules.iter() {
        log::info!(
            "boot module at {:#x}..{:#x} ({} KiB)",
            module.start,
            module.end,
            (module.end - module.start) >> 10
        );
    }
    frames::init(boot.usable.iter());
    // Before anything maps kernel memory that tasks' address spaces share.
    if let Err(error) = paging::share_kernel_half(&mut frames::allocate) {
        panic!("cannot prepare the shared kernel half: {error:?}");
    }

    let usable_bytes = frames::stats().usable_bytes();
    let max = match params.heap_max_mib {
        Some(mib) => mib << 20,
        None => usable_bytes / 2,
    };
    heap::init(crate::layout::HEAP, HEAP_INITIAL, max);
}

/// A snapshot of memory use, for the shell and the boot banner.
pub struct MemoryStats {
    pub frames: frames::FrameStats,
    pub heap: heap::HeapStats,
}

pub fn stats() -> MemoryStats {
    MemoryStats { frames: frames::stats(), heap: heap::stats() }
}

/// Bytes the kernel heap can still hand out: what is free in its mapped part
/// plus what it may still grow by (bounded by its cap and by free frames).
/// An estimate (fragmentation is not counted), for admission decisions.
pub fn allocatable_bytes() -> u64 {
    let heap = heap::stats();
    let free_frames = frames::stats().free_frames() * paging::PAGE_SIZE;
    let growth = heap.max_bytes.saturating_sub(heap.mapped_bytes).min(free_frames);
    heap.mapped_bytes.saturating_sub(heap.in_use_bytes) + growth
}
