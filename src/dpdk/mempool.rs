//! Packet-buffer pools.

use super::{eal::Eal, ffi, mbuf::Mbuf, DpdkError};
use std::ffi::CString;
use std::ptr::NonNull;

/// A DPDK mbuf pool; freed on drop.
///
/// Shared by workers through `Arc`: allocation and free are thread-safe in
/// DPDK's ring-based pools, with a per-lcore cache in front.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
    /// Buffers it was made with.
    size: u32,
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
        NonNull::new(raw)
            .map(|raw| Mempool { raw, size: count })
            .ok_or_else(|| {
                DpdkError::from_rte_errno(format!(
                    "cannot create mbuf pool {name:?} of {count} buffers"
                ))
            })
    }

    /// The raw pool, for queue setup and allocation inside this module.
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }

    /// Allocates an mbuf holding `len` zero bytes of data, or
    /// `None` when the pool is empty or `len` exceeds the data room.
    pub fn alloc(&self, len: u16) -> Option<Mbuf> {
        // SAFETY: the pool is alive; a non-null result is a fresh mbuf that
        // only we own.
        let m = unsafe { Mbuf::from_raw(NonNull::new(ffi::rvs_pktmbuf_alloc(self.raw.as_ptr()))?) };
        // SAFETY: we own `m`; append grows its length within the buffer and
        // returns where the new bytes start, `len` of them, which we zero.
        unsafe {
            let data = ffi::rvs_pktmbuf_append(m.as_raw(), len);
            if data.is_null() {
                return None;
            }
            std::ptr::write_bytes(data as *mut u8, 0, usize::from(len));
        }
        Some(m)
    }

    /// Buffers the pool holds, free or not.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Buffers taken from the pool now (in rings, queues, a worker's
    /// hands): its size less those free in its ring and lcore caches. A
    /// moment's figure, as DPDK's own `rte_mempool_in_use_count`.
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.available())
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
