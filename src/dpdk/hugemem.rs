//! Fixed arrays in memory backed by huge pages where the kernel allows.
//!
//! Why: a worker's connection table is hundreds of megabytes read at
//! random, one line per packet. On 4 KiB pages nearly every such read also
//! misses the TLB and walks the page tables; on 2 MiB pages a gigabyte is
//! 512 TLB entries, which the second-level TLB holds. The array is an
//! anonymous mapping advised `MADV_HUGEPAGE` (transparent huge pages work
//! in the kernel's `madvise` mode, the default), filled once at creation so
//! every page is faulted in before the first packet. Where the advice is
//! refused (no THP in the kernel) it is simply ordinary memory.
//!
//! The elements are plain old data (`bytemuck::Pod`): every bit pattern is
//! a value, so the mapping's bytes are a valid `[T]`. The view is made from
//! the mapping's pointer and length (one `unsafe` line, hence this module's
//! place beside the other wrappers): `bytemuck`'s checked cast re-checked
//! alignment and length on every element access, about 30 instructions of
//! each packet's connection lookup.

use bytemuck::Pod;
use memmap2::{Advice, MmapMut, MmapOptions};
use std::marker::PhantomData;

/// A fixed-length array of `T` in an anonymous mapping advised for huge
/// pages (see the module doc).
pub struct HugeArray<T> {
    map: MmapMut,
    len: usize,
    huge: bool,
    _elem: PhantomData<T>,
}

impl<T: Pod> HugeArray<T> {
    /// `len` copies of `fill`. Panics when the mapping cannot be made (the
    /// address space or memory is exhausted), like a failed allocation;
    /// `try_new` says why instead.
    pub fn new(len: usize, fill: T) -> HugeArray<T> {
        HugeArray::try_new(len, fill).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `len` copies of `fill`, or why the mapping could not be made (the
    /// size overflows, or the kernel refused that much memory).
    pub fn try_new(len: usize, fill: T) -> Result<HugeArray<T>, String> {
        const {
            assert!(
                std::mem::size_of::<T>() > 0 && std::mem::align_of::<T>() <= 4096,
                "HugeArray holds sized elements aligned to at most a page"
            )
        };
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            format!(
                "{len} elements of {} bytes overflow the address space",
                std::mem::size_of::<T>()
            )
        })?;
        // A zero-length mapping is refused; one page stands in.
        let map = MmapOptions::new()
            .len(bytes.max(4096))
            .map_anon()
            .map_err(|e| format!("cannot map {bytes} bytes: {e}"))?;
        let huge = bytes >= HUGE_PAGE && map.advise(Advice::HugePage).is_ok();
        let mut a = HugeArray {
            map,
            len,
            huge,
            _elem: PhantomData,
        };
        a.fill(fill);
        Ok(a)
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: T) {
        let s: &mut [T] = self;
        s.fill(value);
    }

    /// True when the kernel accepted the huge-page advice (it still
    /// decides page by page whether a huge page was available).
    pub fn advised_huge(&self) -> bool {
        self.huge
    }
}

/// The size of an x86-64 huge page; smaller arrays are not advised.
const HUGE_PAGE: usize = 2 << 20;

impl<T: Pod> std::ops::Deref for HugeArray<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the mapping is page-aligned (so aligned for `T`, checked
        // at creation) and holds `len` elements' bytes, all initialised by
        // the fill in `new`; `T: Pod` makes any bytes a valid `T`; the
        // slice borrows `self`, so the mapping outlives it and nothing
        // writes to it meanwhile.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Pod> std::ops::DerefMut for HugeArray<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the slice borrows `self` mutably, so it is
        // the only access to the mapping while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<T> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray")
            .field("len", &self.len)
            .field("advised_huge", &self.huge)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_fills() {
        let mut a = HugeArray::<u64>::new(1 << 20, 7);
        assert_eq!(a.len(), 1 << 20);
        assert!(a.iter().all(|&v| v == 7));
        a[12345] = 9;
        assert_eq!(a[12345], 9);
        a.fill(1);
        assert_eq!(a.iter().sum::<u64>(), 1 << 20);
    }

    #[test]
    fn an_impossible_size_is_an_error_not_a_panic() {
        let e = HugeArray::<u64>::try_new(usize::MAX / 4, 0).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        // Within usize, but beyond any address space the kernel grants.
        let e = HugeArray::<u8>::try_new(1 << 62, 0).unwrap_err();
        assert!(e.contains("cannot map"), "{e}");
    }

    #[test]
    fn empty_is_fine() {
        let a = HugeArray::<u32>::new(0, 1);
        assert!(a.is_empty());
    }

    #[test]
    fn aligned_for_cache_lines() {
        #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
        #[repr(C, align(64))]
        struct Line([u64; 8]);
        let a = HugeArray::new(1000, Line([3; 8]));
        assert_eq!(a.as_ptr() as usize % 64, 0);
        assert_eq!(a[999].0[7], 3);
    }
}
