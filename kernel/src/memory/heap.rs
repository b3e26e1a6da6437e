//! The kernel heap: `linked_list_allocator` over a virtual region that is
//! mapped on demand, up to a hard maximum. Counters record bytes in use, the
//! peak, the mapped size and failed allocations. A failed allocation is
//! logged with its size and the heap's state, then returns null, which Rust
//! turns into a panic ("memory allocation of N bytes failed") and so into a
//! fault report — never a silent hang.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;

use super::frames;
use crate::arch::IrqLock;
use crate::arch::paging::{self, PAGE_SIZE};

/// Growth granularity: enough pages that growing is rare.
const GROW_STEP: u64 = 256 * 1024;

struct HeapState {
    heap: Heap,
    start: u64,
    mapped: u64,
    max: u64,
    in_use: u64,
    peak: u64,
    allocations: u64,
    failed: u64,
}

/// Heap counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapStats {
    pub mapped_bytes: u64,
    pub max_bytes: u64,
    pub in_use_bytes: u64,
    pub peak_bytes: u64,
    pub allocations: u64,
    pub failed_allocations: u64,
}

pub struct KernelHeap(IrqLock<HeapState>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqLock::new(HeapState {
    heap: Heap::empty(),
    start: 0,
    mapped: 0,
    max: 0,
    in_use: 0,
    peak: 0,
    allocations: 0,
    failed: 0,
}));

/// Maps `initial` bytes at `start` and allows growth up to `max` bytes.
pub fn init(start: u64, initial: u64, max: u64) {
    let max = max.max(initial);
    let mut state = HEAP.0.lock();
    state.start = start;
    state.max = max;
    if let Err(error) =
        paging::map_kernel_pages(start, initial / PAGE_SIZE, &mut frames::allocate, &mut frames::free)
    {
        panic!("cannot map the initial kernel heap: {error:?}");
    }
    state.mapped = initial;
    // SAFETY: `start..start + initial` was just mapped for the heap alone.
    unsafe { state.heap.init(start as *mut u8, initial as usize) };
    drop(state);
    log::debug!("heap at {start:#x}: {} KiB mapped, max {} MiB", initial >> 10, max >> 20);
}

pub fn stats() -> HeapStats {
    let state = HEAP.0.lock();
    HeapStats {
        mapped_bytes: state.mapped,
        max_bytes: state.max,
        in_use_bytes: state.in_use,
        peak_bytes: state.peak,
        allocations: state.allocations,
        failed_allocations: state.failed,
    }
}

impl HeapState {
    /// Maps at least `needed` more bytes at the top of the heap.
    fn grow(&mut self, needed: u64) -> bool {
        let step = needed.next_multiple_of(GROW_STEP);
        if self.mapped + step > self.max {
            return false;
        }
        let top = self.start + self.mapped;
        if paging::map_kernel_pages(top, step / PAGE_SIZE, &mut frames::allocate, &mut frames::free).is_err()
        {
            // Give back what was mapped, so a later attempt starts clean.
            paging::unmap_kernel_pages(top, step / PAGE_SIZE, &mut frames::free);
            return false;
        }
        self.mapped += step;
        // SAFETY: the pages just above the heap's top were mapped for it.
        unsafe { self.heap.extend(step as usize) };
        true
    }
}

// SAFETY: all state is behind an `IrqLock` (interrupts off while held), so
// an interrupt handler that allocates cannot re-enter a held lock; blocks
// come from `linked_list_allocator`, which honours the layout.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut state = self.0.lock();
        let mut result = state.heap.allocate_first_fit(layout);
        // Room for the request plus alignment padding and list overhead.
        if result.is_err() && state.grow((layout.size() + layout.align()) as u64 + 64) {
            result = state.heap.allocate_first_fit(layout);
        }
        match result {
            Ok(block) => {
                state.in_use += layout.size() as u64;
                state.peak = state.peak.max(state.in_use);
                state.allocations += 1;
                block.as_ptr()
            }
            Err(()) => {
                state.failed += 1;
                log::error!(
                    "heap: allocation of {} bytes (align {}) failed: {} of {} KiB in use, max {} KiB",
                    layout.size(),
                    layout.align(),
                    state.in_use >> 10,
                    state.mapped >> 10,
                    state.max >> 10
                );
                ptr::null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        let mut state = self.0.lock();
        state.in_use -= layout.size() as u64;
        // SAFETY: the caller returns a block this allocator handed out
        // with the same layout.
        unsafe { state.heap.deallocate(NonNull::new_unchecked(pointer), layout) };
    }
}
