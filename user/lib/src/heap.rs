//! The task's heap: a bump allocator over memory from the `map` system
//! call, for `alloc` (`Vec`, `String`, `Box`). Chunks of at least
//! [`CHUNK`] bytes are mapped as needed; freed blocks are not reused (tasks
//! here are short-lived; everything goes back to the kernel when the task
//! ends). A task has one thread, so no locking is needed.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

use tenfold_abi::MAP_WRITE;

/// Smallest chunk asked of the kernel.
pub const CHUNK: u64 = 64 * 1024;

pub struct BumpHeap {
    next: Cell<u64>,
    end: Cell<u64>,
}

// SAFETY: a task runs on one thread and the allocator is not reentrant
// (the `map` call allocates nothing in the task).
unsafe impl Sync for BumpHeap {}

#[global_allocator]
static HEAP: BumpHeap = BumpHeap { next: Cell::new(0), end: Cell::new(0) };

// SAFETY: blocks are carved from mapped, writable memory, aligned as asked
// and never handed out twice.
unsafe impl GlobalAlloc for BumpHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size() as u64;
        let align = layout.align() as u64;
        let mut start = self.next.get().next_multiple_of(align);
        if self.next.get() == 0 || start.saturating_add(size) > self.end.get() {
            let length = (size + align).max(CHUNK);
            let Ok(chunk) = crate::map(length, MAP_WRITE) else { return core::ptr::null_mut() };
            self.end.set(chunk + length);
            start = chunk.next_multiple_of(align);
        }
        self.next.set(start + size);
        start as *mut u8
    }

    unsafe fn dealloc(&self, _pointer: *mut u8, _layout: Layout) {}
}
