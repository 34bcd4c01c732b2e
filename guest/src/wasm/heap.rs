//! The guest's allocator: a bump arena inside the module's initial
//! memory, with dlmalloc (as the standard library's) behind it.
//!
//! Why an arena in the initial memory: the standard library's dlmalloc
//! takes every byte of heap from `memory.grow`, so a fresh instance grows
//! its memory on its first allocation. A host that pools instances
//! (wasmtime's pooling allocator does) makes grown pages accessible with an
//! `mprotect` and takes them back when the slot is reused: two system calls
//! and a TLB shootdown per instance. The arena and dlmalloc's first
//! segment are zero-initialised `.bss`, which the linker counts in the
//! initial memory, so a call whose blocks fit in them grows no memory.
//!
//! Why a bump arena: a call allocates its arguments, its working values and
//! its results, and all of them are freed by the time the host has read
//! the results. Moving a pointer, and taking the arena back whole when
//! nothing in it is live, costs a fraction of dlmalloc's bins: in one run
//! the gate took 11% less time and the classify calls 8-13% less (README,
//! "Benchmarks"). talc was measured too, and was slower than dlmalloc.
//! What outlives a call is made [`outside_arena`], so that the arena is
//! still taken back after every call while a host holds a resource.

// The allocator below assumes one thread per instance (`Heap` is `Sync`
// without a lock); a build with wasm threads must not get it silently.
#[cfg(target_feature = "atomics")]
compile_error!("the guest's allocator is single-threaded; wasm threads need a locking allocator");

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};

use dlmalloc::{Allocator, Dlmalloc};

/// Heap available before the first `memory.grow`: more than a call needs
/// (every call of a connection's whole life fits, which a test checks), so
/// growing is left to hosts that hand in unusually large inputs, or that
/// keep a resource across thousands of calls.
const ARENA_BYTES: usize = 256 << 10;
const WASM_PAGE: usize = 64 << 10;

/// dlmalloc's first segment: a resource made by a fresh instance (a URL
/// template) fits without growing memory.
const SEGMENT_BYTES: usize = WASM_PAGE;

/// Zeroed bytes at the alignment of any block the guest asks for.
#[repr(C, align(16))]
struct Region<const N: usize>([u8; N]);

static mut ARENA: Region<ARENA_BYTES> = Region([0; ARENA_BYTES]);

static mut SEGMENT: Region<SEGMENT_BYTES> = Region([0; SEGMENT_BYTES]);

/// Where dlmalloc gets its segments: `SEGMENT` once, then `memory.grow`.
struct SegmentThenGrow {
    segment_taken: Cell<bool>,
}

// SAFETY: dlmalloc's contract for a system allocator. Segments are never
// returned (as with the standard library's on wasm), and both sources hand
// out zeroed memory: the segment is `.bss` of a fresh instance and is
// handed out once; grown pages are zero.
unsafe impl Allocator for SegmentThenGrow {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if size <= SEGMENT_BYTES && !self.segment_taken.replace(true) {
            let segment = core::ptr::addr_of_mut!(SEGMENT).cast::<u8>();
            return (segment, SEGMENT_BYTES, 0);
        }
        let pages = size.div_ceil(WASM_PAGE);
        let previous = core::arch::wasm32::memory_grow::<0>(pages);
        if previous == usize::MAX {
            return (core::ptr::null_mut(), 0, 0);
        }
        let (base, size) = (previous * WASM_PAGE, pages * WASM_PAGE);
        // A region ending at 4 GiB would end at address 0, which no Rust
        // pointer may: its last bytes are left out, as dlmalloc's own wasm
        // allocator does.
        let size = if base.wrapping_add(size) == 0 {
            size - 16
        } else {
            size
        };
        (base as *mut u8, size, 0)
    }

    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        core::ptr::null_mut()
    }

    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }

    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }

    fn can_release_part(&self, _: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        WASM_PAGE
    }
}

/// The arena as a bump region, and dlmalloc behind it.
///
/// A call's allocations are nearly all freed by the time it returns (its
/// arguments, its working values, and its results once the host has read
/// them), so the arena hands out memory by moving a pointer and counts what
/// is live; when the count falls to zero the whole arena is free again.
/// Freeing or growing the newest allocation moves the pointer back or on,
/// which is what a `Vec` growing and a value dropped at the end of its
/// scope do. What does not fit, what is made [`outside_arena`], and what
/// comes once the arena is full goes to dlmalloc.
struct Heap {
    /// Where the arena's free space starts, as an offset from its start.
    top: Cell<usize>,
    /// Where the arena ends for new blocks: `ARENA_BYTES`, or 0 inside
    /// [`outside_arena`] (so that the bump needs no test of its own).
    limit: Cell<usize>,
    /// How many of the arena's blocks are not yet freed.
    live: Cell<usize>,
    fallback: UnsafeCell<Dlmalloc<SegmentThenGrow>>,
}

// SAFETY: a component instance is single-threaded (the standard library's
// wasm allocator makes the same assumption when threads are off).
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap {
    top: Cell::new(0),
    limit: Cell::new(ARENA_BYTES),
    live: Cell::new(0),
    fallback: UnsafeCell::new(Dlmalloc::new_with_allocator(SegmentThenGrow {
        segment_taken: Cell::new(false),
    })),
};

/// Runs `make` with every new block outside the arena (blocks made before,
/// such as the call's arguments, stay where they are): for what outlives
/// the call, such as a resource's state. Left in the arena it would keep
/// the count above zero, so the arena would not be taken back until the
/// resource is dropped, and the blocks later calls free out of order would
/// pile up until the arena is full.
pub(crate) fn outside_arena<R>(make: impl FnOnce() -> R) -> R {
    let outer = HEAP.limit.replace(0);
    let made = make();
    HEAP.limit.set(outer);
    made
}

fn arena_start() -> usize {
    core::ptr::addr_of_mut!(ARENA) as usize
}

impl Heap {
    /// Where `ptr` is in the arena, if the arena handed it out.
    fn arena_offset(ptr: *mut u8) -> Option<usize> {
        let offset = (ptr as usize).wrapping_sub(arena_start());
        (offset < ARENA_BYTES).then_some(offset)
    }

    /// A bump allocation, or `None` when the arena has no room.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start = arena_start();
        let at = (start + self.top.get()).checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = at.checked_add(layout.size())? - start;
        if end > self.limit.get() {
            return None;
        }
        self.top.set(end);
        self.live.set(self.live.get() + 1);
        Some(at as *mut u8)
    }
}

// SAFETY: an arena block is handed out once until it is freed (the free
// space only moves back over the newest block, or over all of them when
// none is live); every other block is dlmalloc's, with the layout the
// caller passed, as dlmalloc's own `GlobalDlmalloc` does. Not inlined: with
// link-time optimisation the allocator would otherwise be copied into every
// allocating and dropping function.
unsafe impl GlobalAlloc for Heap {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            None => unsafe { (*self.fallback.get()).malloc(layout.size(), layout.align()) },
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(offset) = Self::arena_offset(ptr) else {
            return unsafe { (*self.fallback.get()).free(ptr, layout.size(), layout.align()) };
        };
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.top.set(0);
        } else if offset + layout.size() == self.top.get() {
            self.top.set(offset);
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(offset) = Self::arena_offset(ptr) else {
            return unsafe {
                (*self.fallback.get()).realloc(ptr, layout.size(), layout.align(), new_size)
            };
        };
        let fits = new_size <= layout.size() || offset + new_size <= self.limit.get();
        if offset + layout.size() == self.top.get() && fits {
            // The newest block grows or shrinks where it is.
            self.top.set(offset + new_size);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the old size and distinct.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
