//! The initrd: a cpio (newc) archive of the user programs, handed over as
//! the first boot module and read in place (it stays out of the frame
//! allocator's memory, see `boot::BootInfo::modules`). Read with
//! `cpio_reader`, which stops at the first malformed header instead of
//! failing.

use spin::Once;

use crate::arch::paging::physical_to_virtual;
use crate::boot::BootInfo;

static ARCHIVE: Once<&'static [u8]> = Once::new();

/// Takes the first boot module as the initrd, if there is one.
pub fn init(boot: &BootInfo) {
    let Some(module) = boot.modules.iter().next() else {
        log::warn!("no initrd: `run` has no programs");
        return;
    };
    // SAFETY: the module's physical range is mapped at the offset like all
    // memory and kept out of the allocators (BootInfo::modules) for good.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            physical_to_virtual(module.start) as *const u8,
            (module.end - module.start) as usize,
        )
    };
    ARCHIVE.call_once(|| bytes);
    let count = programs().count();
    log::info!("initrd: {count} programs ({} KiB)", bytes.len() >> 10);
}

/// The programs in the initrd: (name, ELF image).
pub fn programs() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    let archive: &'static [u8] = ARCHIVE.get().copied().unwrap_or(&[]);
    cpio_reader::iter_files(archive).map(|entry| (entry.name(), entry.file()))
}

/// The image of program `name`.
pub fn find(name: &str) -> Option<&'static [u8]> {
    programs().find(|(candidate, _)| *candidate == name).map(|(_, image)| image)
}
