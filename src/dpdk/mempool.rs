//! Packet-buffer pools.

use super::{eal::Eal, ffi, DpdkError};
use std::ffi::CString;
use std::ptr::NonNull;

/// A DPDK mbuf pool; freed on drop.
///
/// Shared by workers through `Arc`: allocation and free are thread-safe in
/// DPDK's ring-based pools, with a per-lcore cache in front.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
}

// SAFETY: an rte_mempool is designed for concurrent use from many lcores.
unsafe impl Send for Mempool {}
// SAFETY: as above; &Mempool only allows alloc/free, which are MT-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` mbufs of `data_room` bytes (headroom
    /// included) with a per-lcore cache of `cache` on NUMA `socket`.
    pub fn new(
        _eal: &Eal,
        name: &str,
        count: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::new("mempool name has NUL"))?;
        // SAFETY: EAL initialised (witnessed by `_eal`); the name is a valid C
        // string which DPDK copies.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, data_room, socket)
        };
        NonNull::new(raw).map(|raw| Mempool { raw }).ok_or_else(|| {
            DpdkError::from_rte_errno(format!(
                "cannot create mbuf pool {name:?} of {count} buffers"
            ))
        })
    }

    /// The raw pool, for queue setup and allocation inside this module.
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }

    /// Buffers currently free in the pool (for stats and leak checks).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive.
        unsafe { ffi::rte_mempool_avail_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is alive and, by drop order in rvsd, no port or
        // worker uses it any more.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) }
    }
}
