//! The CPU's time-stamp counter (DPDK's `rte_rdtsc`) for the benchmarks'
//! cycle counts, without the DPDK library: reading it needs the intrinsic,
//! hence `unsafe`, hence this module.

/// The time-stamp counter: cycles at a constant rate since reset (0 on
/// targets without one). Not serialising: it may be read a few
/// instructions early or late, which is noise at the scale of a burst.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC reads a counter; it has no preconditions, touches no
    // memory and is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tsc_does_not_go_back() {
        let a = super::tsc();
        let b = super::tsc();
        assert!(b >= a);
    }
}
