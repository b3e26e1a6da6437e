//! Boot through the `bootloader` crate's BIOS or UEFI images (`--bios`,
//! `--uefi`): its `_start` calls [`start`] with its own boot information,
//! which is translated into the neutral [`BootInfo`].

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::entry_point;
use bootloader_api::info::MemoryRegionKind;

use super::{BootInfo, Protocol, Ranges};
use crate::layout;

const BOOT_STACK_SIZE: u64 = 256 * 1024;

static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.kernel_stack_size = BOOT_STACK_SIZE;
    config.mappings.physical_memory = Some(Mapping::FixedAddress(layout::PHYSICAL_MEMORY));
    config.mappings.dynamic_range_start = Some(layout::BOOTLOADER_DYNAMIC);
    config
};

entry_point!(start, config = &BOOTLOADER_CONFIG);

fn start(info: &'static mut bootloader_api::BootInfo) -> ! {
    let entry_tsc = crate::arch::cpu::timestamp_counter();
    let mut usable = Ranges::new();
    for region in info.memory_regions.iter().filter(|region| region.kind == MemoryRegionKind::Usable) {
        usable.push(region.start..region.end);
    }
    let boot = BootInfo {
        protocol: Protocol::Bootloader,
        entry_tsc,
        usable,
        physical_memory_offset: info.physical_memory_offset.into_option().unwrap_or(layout::PHYSICAL_MEMORY),
        cmdline: None,
        rsdp: info.rsdp_addr.into_option(),
        // The bootloader maps a ramdisk at a virtual address over frames
        // that need not be contiguous (and are outside the usable regions
        // already): it has no physical range to report. Tenfold's images
        // carry none; modules come by PVH.
        modules: Ranges::new(),
        boot_stack: (info.kernel_stack_bottom, info.kernel_stack_bottom + info.kernel_stack_len),
    };
    crate::kernel_main(boot)
}
