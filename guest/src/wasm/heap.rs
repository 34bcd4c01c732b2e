//! The guest's allocator: dlmalloc, as the standard library's, but given
//! an arena inside the module's initial memory before it grows memory.
//!
//! Why: the standard library's dlmalloc takes every byte of heap from
//! `memory.grow`, so a fresh instance grows its memory on its first
//! allocation. A host that pools instances (wasmtime's pooling allocator
//! does) makes grown pages accessible with an `mprotect` and takes them
//! back when the slot is reused: two system calls and a TLB shootdown per
//! instance. The arena is zero-initialised `.bss`, which the linker counts
//! in the initial memory, so no call grows memory until the arena is full.
//! The allocation algorithm is unchanged: talc with the same arena was
//! measured too, and was slower (classify 3.6 against 3.0 µs, a fresh
//! instance 21.3 against 18.4 µs in one run). README, "Benchmarks".

// The allocator below assumes one thread per instance (`Heap` is `Sync`
// without a lock); a build with wasm threads must not get it silently.
#[cfg(target_feature = "atomics")]
compile_error!("the guest's allocator is single-threaded; wasm threads need a locking allocator");

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};

use dlmalloc::{Allocator, Dlmalloc};

/// Heap available before the first `memory.grow`: more than a call needs
/// (completing an authorisation, the largest, peaks at tens of KiB), so
/// growing is left to hosts that hand in unusually large inputs.
const ARENA_BYTES: usize = 256 << 10;
const WASM_PAGE: usize = 64 << 10;

#[repr(C, align(16))]
struct Arena([u8; ARENA_BYTES]);

static mut ARENA: Arena = Arena([0; ARENA_BYTES]);

/// Where dlmalloc gets its segments: the arena once, then `memory.grow`.
struct ArenaThenGrow {
    arena_taken: Cell<bool>,
}

// SAFETY: dlmalloc's contract for a system allocator. Segments are never
// returned (as with the standard library's on wasm), and both sources hand
// out zeroed memory: the arena is `.bss` of a fresh instance and is handed
// out once; grown pages are zero.
unsafe impl Allocator for ArenaThenGrow {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if size <= ARENA_BYTES && !self.arena_taken.replace(true) {
            let arena = core::ptr::addr_of_mut!(ARENA).cast::<u8>();
            return (arena, ARENA_BYTES, 0);
        }
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

struct Heap(UnsafeCell<Dlmalloc<ArenaThenGrow>>);

// SAFETY: a component instance is single-threaded (the standard library's
// wasm allocator makes the same assumption when threads are off).
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap(UnsafeCell::new(Dlmalloc::new_with_allocator(
    ArenaThenGrow {
        arena_taken: Cell::new(false),
    },
)));

// SAFETY: each method forwards to dlmalloc with the layout the caller
// passed, which is what dlmalloc's own `GlobalDlmalloc` does. Not inlined:
// with link-time optimisation dlmalloc would otherwise be copied into
// every allocating and dropping function (60 KB more code).
unsafe impl GlobalAlloc for Heap {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).free(ptr, layout.size(), layout.align()) }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}
