//! An allocator for plugins that never frees, because hsm runs every call in a
//! fresh instance whose memory is dropped whole when the call returns: freeing block
//! by block (which the default allocator, dlmalloc, does with care) is work for
//! nothing. In the bundled plugins it took a third of their running time.

use std::alloc::{GlobalAlloc, Layout};

/// A bump allocator for a plugin's calls: it hands out memory in order and frees
/// nothing (except the newest block, so a growing vector or string stays in place).
/// hsm gives every call a fresh instance, so memory lives exactly as long as one
/// call; a call that allocates more in total than the memory limit fails with
/// hsm's out-of-memory error.
///
/// Opt in with:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOCATOR: hsm_sdk::CallArena = hsm_sdk::CallArena::new();
/// ```
///
/// Outside WebAssembly (a plugin's native unit tests) it is the system allocator.
pub struct CallArena {
    #[cfg(target_arch = "wasm32")]
    bump: wasm::Bump,
}

impl CallArena {
    /// The allocator, to be made the `#[global_allocator]`.
    pub const fn new() -> Self {
        Self {
            #[cfg(target_arch = "wasm32")]
            bump: wasm::Bump::new(),
        }
    }
}

impl Default for CallArena {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(not(target_arch = "wasm32"))]
// SAFETY: every method forwards to the system allocator with the same arguments.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(target_arch = "wasm32")]
// SAFETY: blocks are carved from a static region and from memory obtained by
// `memory.grow` (which wasi-libc's own malloc may call too: a region is extended
// only while it ends where memory does, checked just before growing). They never
// overlap (`next` only moves past a block, or back over the newest one of the
// current region when it is freed or resized), are aligned as asked, and lie
// within the region (`end`). Null is returned when memory cannot grow.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.bump.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.bump.free(ptr as usize, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = ptr as usize;
        if self.bump.resize_newest(at, layout.size(), new_size) {
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `new_size` is non-zero (it exceeds the old size) and, as the
        // caller guarantees, does not overflow when rounded up to the alignment.
        let new = self.bump.alloc(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct (the new one lies past every
            // live block) and at least `layout.size()` long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
        }
        new
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::alloc::Layout;
    use std::cell::Cell;

    const PAGE: usize = 64 * 1024;

    /// Grow memory by at least this many pages at a time (each growth is a call into
    /// the host).
    const MIN_GROWTH: usize = 16;

    /// `at` rounded up to `align`, a power of two (as `Layout` guarantees), without
    /// the division `next_multiple_of` makes.
    #[inline]
    fn align_up(at: usize, align: usize) -> Option<usize> {
        Some(at.checked_add(align - 1)? & !(align - 1))
    }

    /// The size of the first region.
    const FIRST_SIZE: usize = 1 << 20;

    #[repr(align(16))]
    struct First(std::cell::UnsafeCell<[std::mem::MaybeUninit<u8>; FIRST_SIZE]>);

    // SAFETY: single-threaded, as for `Bump`; and only `Bump` hands out parts of it.
    #[allow(unsafe_code)]
    unsafe impl Sync for First {}

    static FIRST: First = First(std::cell::UnsafeCell::new([std::mem::MaybeUninit::uninit(); FIRST_SIZE]));

    /// The current region, `start..end`, free from `next`.
    pub(super) struct Bump {
        start: Cell<usize>,
        next: Cell<usize>,
        end: Cell<usize>,
    }

    // SAFETY: `wasm32-wasip2` components are single-threaded: there is no other
    // thread to share the cells with.
    #[allow(unsafe_code)]
    unsafe impl Sync for Bump {}

    impl Bump {
        pub(super) const fn new() -> Self {
            Self { start: Cell::new(0), next: Cell::new(0), end: Cell::new(0) }
        }

        /// A block of `layout`: the fast path, taken by nearly every allocation.
        #[inline]
        pub(super) fn alloc(&self, layout: Layout) -> *mut u8 {
            match self.carve(layout.size(), layout.align()) {
                Some(block) => block,
                None => self.alloc_slow(layout),
            }
        }

        /// A block when the region lacks room (or on the first allocation): extend
        /// the region if it ends where memory does, else start another.
        #[cold]
        #[inline(never)]
        fn alloc_slow(&self, layout: Layout) -> *mut u8 {
            if self.end.get() == 0 {
                self.start();
                if let Some(block) = self.carve(layout.size(), layout.align()) {
                    return block;
                }
            }
            let (size, align) = (layout.size(), layout.align());
            let end = align_up(self.next.get(), align).and_then(|start| start.checked_add(size));
            let extended = end.is_some_and(|end| self.extend(end));
            if !extended && !self.fresh(size.saturating_add(align)) {
                return std::ptr::null_mut();
            }
            self.carve(size, align).unwrap_or(std::ptr::null_mut())
        }

        /// The next `size` bytes aligned to `align`, if the region holds them.
        #[inline]
        fn carve(&self, size: usize, align: usize) -> Option<*mut u8> {
            let start = align_up(self.next.get(), align)?;
            let end = start.checked_add(size)?;
            (end <= self.end.get()).then(|| {
                self.next.set(end);
                start as *mut u8
            })
        }

        /// The first region: a static block in the module's own memory, so that
        /// most calls never grow memory (which costs a call into the host, and a
        /// change of the memory's protection when the instance is reset). Pages of
        /// it a call doesn't touch cost nothing.
        fn start(&self) {
            let base = FIRST.0.get() as usize;
            self.start.set(base);
            self.next.set(base);
            self.end.set(base + FIRST_SIZE);
        }

        /// Whether the block at `at` is the newest this arena handed out. A block
        /// from elsewhere (C's malloc hands Rust some, through WASI results) never
        /// is, even one that ends where the region's free part begins.
        fn is_newest(&self, at: usize, size: usize) -> bool {
            at >= self.start.get() && at + size == self.next.get()
        }

        /// Takes back the block at `at`, if it is the newest.
        pub(super) fn free(&self, at: usize, size: usize) {
            if self.is_newest(at, size) {
                self.next.set(at);
            }
        }

        /// Resizes the block at `at` in place, if it is the newest and the region
        /// holds (or can be extended to hold) its new size.
        pub(super) fn resize_newest(&self, at: usize, size: usize, new_size: usize) -> bool {
            if !self.is_newest(at, size) {
                return false;
            }
            let Some(end) = at.checked_add(new_size) else { return false };
            if end > self.end.get() && !self.extend(end) {
                return false;
            }
            self.next.set(end);
            true
        }

        /// The end of memory.
        fn top() -> usize {
            core::arch::wasm32::memory_size(0).saturating_mul(PAGE)
        }

        /// Grows memory so that the region reaches `end`, if the region ends where
        /// memory does.
        fn extend(&self, end: usize) -> bool {
            if self.end.get() != Self::top() {
                return false;
            }
            match Self::grow(end - self.end.get()) {
                Some((_, len)) => {
                    self.end.set(self.end.get() + len);
                    true
                }
                None => false,
            }
        }

        /// Starts a new region of at least `len` bytes at the end of memory.
        fn fresh(&self, len: usize) -> bool {
            match Self::grow(len) {
                Some((start, len)) => {
                    self.start.set(start);
                    self.next.set(start);
                    self.end.set(start + len);
                    true
                }
                None => false,
            }
        }

        /// Grows memory by at least `len` bytes (by `MIN_GROWTH` pages when it
        /// can); returns where the new memory starts and how long it is.
        fn grow(len: usize) -> Option<(usize, usize)> {
            let least = len.div_ceil(PAGE);
            let tries = if least < MIN_GROWTH { &[MIN_GROWTH, least][..] } else { &[least][..] };
            tries.iter().find_map(|&pages| {
                let old = core::arch::wasm32::memory_grow(0, pages);
                (old != usize::MAX).then_some((old * PAGE, pages * PAGE))
            })
        }
    }
}
