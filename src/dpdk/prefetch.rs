//! DPDK's `rte_prefetch0` for the pure core: the cache-line prefetch hint
//! safe Rust has no word for (it needs the intrinsic, hence `unsafe`, hence
//! this module), usable without the DPDK library.
//!
//! Why it exists: a connection lookup is two dependent cache misses on
//! random addresses. Plain loads issued ahead of use overlap only while
//! they fit in the core's reorder window, because a load that misses holds
//! its place until the data comes; a prefetch retires at once, so a whole
//! burst's misses (and the work between them) overlap. That is the lever
//! DPDK's own `rte_prefetch0` and its bulk hash lookups use.

/// Asks the CPU to bring the cache line holding `value` into every cache
/// level, without waiting for it. Only a hint: no effect on what the
/// program computes, only on when its loads find their data.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 never faults and changes no architectural state
    // (it is a hint the CPU may drop); the address comes from a live
    // reference in any case. `sse` is part of the x86-64 baseline.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_is_only_a_hint() {
        let v = [1u64, 2, 3];
        super::prefetch(&v[1]);
        assert_eq!(v.iter().sum::<u64>(), 6);
    }
}
