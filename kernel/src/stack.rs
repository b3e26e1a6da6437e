//! Kernel thread stacks: each thread slot owns a fixed window of virtual
//! address space; the stack is mapped at the top of the window and the page
//! below it is left unmapped as a guard, so an overflow faults on the guard
//! instead of silently corrupting a neighbour.

use crate::arch::paging::{self, MapError, PAGE_SIZE};
use crate::memory::frames;

/// Start of the stack windows.
const STACKS_BASE: u64 = 0xffff_c000_0000_0000;
/// Each slot's window; a stack may use all of it but the guard page.
pub const WINDOW: u64 = 2 << 20;
/// Largest stack a thread may ask for.
pub const MAX_STACK: u64 = WINDOW - PAGE_SIZE;
/// Smallest: a trap frame plus room to call something.
pub const MIN_STACK: u64 = 4 * PAGE_SIZE;

/// Creates the page tables of the first `slots` windows (one level-1 table
/// per 2 MiB window, ~1 MiB for 256 slots), once at boot. A stack in those
/// slots (threads take the lowest free one) never allocates a page table:
/// its frames are exactly its stack's, so frame counters return to their
/// baseline whichever of them a new thread lands in. Windows beyond get
/// their table on first use and keep it.
pub fn init(slots: usize) -> Result<(), MapError> {
    for slot in 0..slots {
        let top = STACKS_BASE + (slot as u64 + 1) * WINDOW;
        paging::map_kernel_pages(top - PAGE_SIZE, 1, &mut frames::allocate, &mut frames::free)?;
        paging::unmap_kernel_pages(top - PAGE_SIZE, 1, &mut frames::free);
    }
    Ok(())
}

/// A mapped stack in the window of slot `slot`.
#[derive(Debug)]
pub struct KernelStack {
    pub bottom: u64,
    pub top: u64,
}

impl KernelStack {
    /// Maps `size` bytes (rounded up to pages) at the top of `slot`'s window.
    pub fn allocate(slot: usize, size: u64) -> Result<KernelStack, MapError> {
        let size = size.next_multiple_of(PAGE_SIZE).clamp(MIN_STACK, MAX_STACK);
        let top = STACKS_BASE + (slot as u64 + 1) * WINDOW;
        let bottom = top - size;
        if let Err(error) =
            paging::map_kernel_pages(bottom, size / PAGE_SIZE, &mut frames::allocate, &mut frames::free)
        {
            paging::unmap_kernel_pages(bottom, size / PAGE_SIZE, &mut frames::free);
            return Err(error);
        }
        // A stack starts zeroed: no stale bytes from its frames' last owner.
        // Under TCG this also matters for speed: a frame that last held a
        // ring-3 task's code still has translated blocks on it, and QEMU
        // sends every write to such a page down its slow path until they
        // are gone — a handler's 4 KiB read buffer then cost ~1 µs a byte
        // (the actor echo's second and later connections ran at 0.8 MB/s
        // instead of 4.5). Clearing the page once drops them.
        // SAFETY: just mapped, writable, and no one uses it yet.
        unsafe { core::ptr::write_bytes(bottom as *mut u8, 0, size as usize) };
        Ok(KernelStack { bottom, top })
    }

    pub fn size(&self) -> u64 {
        self.top - self.bottom
    }

    /// Unmaps the stack and frees its frames. The caller must not be running on it.
    pub fn release(self) {
        paging::unmap_kernel_pages(self.bottom, self.size() / PAGE_SIZE, &mut frames::free);
    }
}

/// If `address` is in a stack window below the mapped stack of that slot
/// (`bottom_of(slot)`), the guard page of that stack.
pub fn guard_page_hit(address: u64, bottom_of: impl Fn(usize) -> Option<u64>) -> Option<u64> {
    let offset = address.checked_sub(STACKS_BASE)?;
    let slot = (offset / WINDOW) as usize;
    let bottom = bottom_of(slot)?;
    // The faulting push lands just below the bottom (in the guard page).
    (address >= bottom - PAGE_SIZE && address < bottom + 64).then_some(bottom - PAGE_SIZE)
}
