//! What the kernel learns from whoever booted it, in one protocol-neutral
//! form: the memory map, where physical memory is mapped, the command line,
//! the ACPI RSDP, boot modules (an initrd) and the boot stack. Each boot
//! path (`pvh`: QEMU's direct `-kernel` boot; `bootloader`: the BIOS/UEFI
//! images of the `bootloader` crate) fills a [`BootInfo`] and calls
//! [`crate::kernel_main`]; nothing after that knows which path ran.

pub mod bootloader;
pub mod pvh;

use core::ops::Range;

/// Most memory-map entries and boot modules kept; more are reported and
/// dropped (firmware maps have a few dozen entries at most).
pub const MAX_REGIONS: usize = 64;
pub const MAX_MODULES: usize = 8;

/// How the kernel was booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Xen PVH direct boot (QEMU `-kernel`).
    Pvh,
    /// The `bootloader` crate's BIOS or UEFI stages.
    Bootloader,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pvh => "PVH",
            Protocol::Bootloader => "bootloader (BIOS/UEFI)",
        }
    }
}

/// A fixed-capacity list of physical ranges (no heap exists yet at boot).
#[derive(Clone)]
pub struct Ranges<const N: usize> {
    ranges: [Range<u64>; N],
    len: usize,
    /// Ranges that did not fit.
    pub dropped: usize,
}

impl<const N: usize> Ranges<N> {
    pub const fn new() -> Self {
        Self { ranges: [const { 0..0 }; N], len: 0, dropped: 0 }
    }

    /// Adds a non-empty range (empty ones are ignored).
    pub fn push(&mut self, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        if self.len == N {
            self.dropped += 1;
            return;
        }
        self.ranges[self.len] = range;
        self.len += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.ranges[..self.len].iter().cloned()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Removes `hole` from every range (splitting ranges it falls inside).
    pub fn remove(&mut self, hole: Range<u64>) {
        let old = self.clone();
        self.len = 0;
        for range in old.iter() {
            if hole.end <= range.start || hole.start >= range.end {
                self.push(range);
            } else {
                self.push(range.start..hole.start.max(range.start));
                self.push(hole.end.min(range.end)..range.end);
            }
        }
    }
}

/// Everything the kernel takes from its boot path.
pub struct BootInfo {
    pub protocol: Protocol,
    /// TSC when the boot path entered Rust, the origin of "since entry".
    pub entry_tsc: u64,
    /// Physical RAM the kernel may allocate: the firmware's usable memory
    /// minus the kernel image, boot modules and boot-time page tables.
    pub usable: Ranges<MAX_REGIONS>,
    /// Virtual address at which all of physical memory is mapped.
    pub physical_memory_offset: u64,
    /// The kernel command line as the boot path passed it (PVH does; the
    /// bootloader images do not, and the kernel reads fw_cfg instead).
    pub cmdline: Option<&'static [u8]>,
    /// Physical address of the ACPI RSDP, if the boot path found it.
    pub rsdp: Option<u64>,
    /// Boot modules (an initrd), physical ranges, kept out of `usable`.
    pub modules: Ranges<MAX_MODULES>,
    /// The stack the kernel entered on: (lowest address, top).
    pub boot_stack: (u64, u64),
}
