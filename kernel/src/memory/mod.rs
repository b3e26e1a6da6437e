//! Physical and virtual memory: the frame allocator over the bootloader's
//! memory map, and the kernel heap that grows on demand.

pub mod frames;
pub mod heap;

use bootloader_api::BootInfo;
use bootloader_api::info::MemoryRegionKind;

use crate::arch::paging;
use crate::params::Params;

/// Initial heap; it grows in steps as allocations need more.
const HEAP_INITIAL: u64 = 1 << 20;

pub fn init(boot_info: &'static BootInfo, params: &Params) {
    let physical_offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("bootloader maps physical memory (BOOTLOADER_CONFIG)");
    paging::init(physical_offset);

    let usable = boot_info
        .memory_regions
        .iter()
        .filter(|region| region.kind == MemoryRegionKind::Usable)
        .map(|region| region.start..region.end);
    frames::init(usable);

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
