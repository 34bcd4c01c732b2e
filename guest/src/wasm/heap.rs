//! The guest's allocator: a bump arena inside the module's initial
//! memory, with dlmalloc (as the standard library's) behind it.
//!
//! Why an arena in the initial memory: the standard library's dlmalloc
//! takes every byte of heap from `memory.grow`, so a fresh instance grows
//! its memory on its first allocation. A host that pools instances
//! (wasmtime's pooling allocator does) makes grown pages accessible with an
//! `mprotect` and takes them back when the slot is reused: two system calls
//! and a TLB shootdown per instance. The arena is zero-initialised `.bss`,
//! which the linker counts in the initial memory, so no call grows memory
//! until the arena is full.
//!
//! Why a bump arena: a call allocates its arguments, its working values and
//! its results, and all of them are freed by the time the host has read
//! the results. Moving a pointer, and taking the arena back whole when
//! nothing in it is live, costs a fraction of dlmalloc's bins: in one run
//! the gate took 11% less time and the classify calls 8-13% less (README,
//! "Benchmarks"). talc was measured too, and was slower than dlmalloc.

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

#[repr(C, align(16))]
struct Arena([u8; ARENA_BYTES]);

static mut ARENA: Arena = Arena([0; ARENA_BYTES]);

/// Where dlmalloc gets its segments: `memory.grow`.
struct Grow;

// SAFETY: dlmalloc's contract for a system allocator. Segments are never
// returned (as with the standard library's on wasm), and grown pages are
// zero.
unsafe impl Allocator for Grow {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let pages = size.div_ceil(WASM_PAGE);
        match core::arch::wasm32::memory_grow::<0>(pages) {
            usize::MAX => (core::ptr::null_mut(), 0, 0),
            previous => ((previous * WASM_PAGE) as *mut u8, pages * WASM_PAGE, 0),
        }
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
/// scope do. What does not fit, or comes once the arena is full (a resource
/// kept across calls holds the count above zero), goes to dlmalloc, which
/// takes its memory from `memory.grow`.
struct Heap {
    /// The next free address in the arena; 0 stands for the arena's start
    /// (an address a constant initialiser cannot name).
    top: Cell<usize>,
    /// How many of the arena's allocations are not yet freed.
    live: Cell<usize>,
    fallback: UnsafeCell<Dlmalloc<Grow>>,
}

// SAFETY: a component instance is single-threaded (the standard library's
// wasm allocator makes the same assumption when threads are off).
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap {
    top: Cell::new(0),
    live: Cell::new(0),
    fallback: UnsafeCell::new(Dlmalloc::new_with_allocator(Grow)),
};

fn arena_start() -> usize {
    core::ptr::addr_of_mut!(ARENA) as usize
}

impl Heap {
    /// Whether `ptr` was handed out by the arena.
    fn in_arena(ptr: *mut u8) -> bool {
        (ptr as usize).wrapping_sub(arena_start()) < ARENA_BYTES
    }

    /// A bump allocation, or `None` when the arena has no room.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start = arena_start();
        let top = match self.top.get() {
            0 => start,
            top => top,
        };
        let at = top.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = at.checked_add(layout.size())?;
        if end > start + ARENA_BYTES {
            return None;
        }
        self.top.set(end);
        self.live.set(self.live.get() + 1);
        Some(at as *mut u8)
    }
}

// SAFETY: an arena block is handed out once until it is freed (the pointer
// only moves back over the newest block, or over all of them when none is
// live); every other block is dlmalloc's, with the layout the caller passed,
// as dlmalloc's own `GlobalDlmalloc` does. Not inlined: with link-time
// optimisation the allocator would otherwise be copied into every
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
        if !Self::in_arena(ptr) {
            return unsafe { (*self.fallback.get()).free(ptr, layout.size(), layout.align()) };
        }
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.top.set(0);
        } else if ptr as usize + layout.size() == self.top.get() {
            self.top.set(ptr as usize);
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::in_arena(ptr) {
            return unsafe {
                (*self.fallback.get()).realloc(ptr, layout.size(), layout.align(), new_size)
            };
        }
        let end = ptr as usize + layout.size();
        if end == self.top.get() && ptr as usize + new_size <= arena_start() + ARENA_BYTES {
            // The newest block grows or shrinks where it is.
            self.top.set(ptr as usize + new_size);
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
