//! The example programs' global allocator: mimalloc, called the way a C
//! program calls it.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to
//! `mi_malloc_aligned(size, align)`. In mimalloc 3 that call takes its fast
//! path only for blocks of at most 1 KiB; a larger block whose rounded size is
//! not a power of two goes to the over-allocating path, which asks for
//! `size + align - 1` bytes and aligns inside them.
//!
//! An alignment no larger than C's `max_align_t` needs no aligned call at
//! all: like any `malloc`, `mi_malloc` returns blocks aligned for every
//! fundamental type that fits in them (mimalloc rounds small sizes up to two
//! machine words, `MI_ALIGN2W` in its `page-queue.c`). So a layout whose
//! alignment is at most 16 bytes (8 on 32-bit targets) and at most its size
//! goes to `mi_malloc`, `mi_zalloc` and `mi_realloc`; any other (a tokio
//! task's cache-line-aligned header, say) keeps the aligned calls. This is
//! the rule Rust's own `System` allocator applies to the C library's
//! `malloc`.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every `mi_malloc` block at least this large, in bytes:
/// `MI_MAX_ALIGN_SIZE`, C's `alignof(max_align_t)`.
const MALLOC_ALIGN: usize = if cfg!(target_pointer_width = "64") {
    16
} else {
    8
};

/// mimalloc as the global allocator (see the module documentation).
pub struct MiMalloc;

/// Whether `mi_malloc`'s own alignment already satisfies `layout`.
#[inline]
fn malloc_aligns(layout: &Layout) -> bool {
    layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size()
}

// SAFETY (the impl and each call in it): every pointer handed out comes from
// mimalloc and is freed or resized only by mimalloc; `malloc_aligns` admits a
// layout to the unaligned calls only when their documented alignment (that
// of `max_align_t`, or the block's size when smaller) is at least the
// layout's. A layout sent to the aligned calls on allocation is sent to them
// again on reallocation, since the layout's alignment does not change.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if malloc_aligns(&layout) {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if malloc_aligns(&layout) {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= new_size {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_has_its_layouts_alignment() {
        let a = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1usize, 3, 8, 12, 24, 40, 1000, 1300, 4160, 70_000] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                #[allow(unsafe_code)]
                // SAFETY: a non-zero size; the block is written within its
                // size, grown with the same layout's alignment and freed once.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let q = a.realloc(p, layout, size * 3 + 5);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert_eq!(*q.add(size - 1), 0xa5, "realloc keeps the bytes");
                    let Ok(grown) = Layout::from_size_align(size * 3 + 5, align) else {
                        unreachable!("a valid alignment stays valid for a larger size");
                    };
                    a.dealloc(q, grown);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
