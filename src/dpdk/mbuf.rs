//! An owned packet buffer.

use super::ffi;
use crate::dataplane::io::Frame;
use std::ptr::NonNull;

/// One received or allocated mbuf, owned: dropping it returns it to its pool.
///
/// Not `Clone`: two owners would free it twice. `repr(transparent)` over the
/// pointer so a `Vec<Mbuf>` is exactly the `struct rte_mbuf **` array that
/// `rte_eth_rx_burst` fills and `rte_eth_tx_burst` consumes.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an mbuf has one owner at a time; moving that ownership to another
// thread is how DPDK pipelines work.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nobody else will free or use.
    pub(crate) unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf(raw)
    }

    /// The raw pointer, still owned by `self`.
    pub(crate) fn as_raw(&self) -> *mut ffi::rte_mbuf {
        self.0.as_ptr()
    }

    /// Gives up ownership (to a tx queue) without freeing.
    pub(crate) fn into_raw(self) -> *mut ffi::rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    /// Number of segments; rvs works on the first one only.
    pub fn segments(&self) -> u16 {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_ref().nb_segs }
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: a valid mbuf's first segment holds data_len bytes starting
        // data_off bytes into buf_addr; we own it, so nobody writes meanwhile.
        unsafe {
            let m = self.0.as_ref();
            let start = (m.buf_addr as *const u8).add(m.data_off as usize);
            std::slice::from_raw_parts(start, m.data_len as usize)
        }
    }

    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: we own the mbuf; prepend only moves data_off within the
        // buffer's headroom and returns null (changing nothing) otherwise.
        !unsafe { ffi::rvs_pktmbuf_prepend(self.0.as_ptr(), n) }.is_null()
    }

    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: as in prepend; adj fails (null) when shorter than n.
        !unsafe { ffi::rvs_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    fn insert(&mut self, at: usize, n: usize) -> bool {
        let len = self.data().len();
        // One segment only: append grows the last one, which must be the
        // one whose bytes move.
        if at > len || self.segments() != 1 {
            return false;
        }
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: we own the mbuf; append only grows data_len within the
        // buffer's tailroom and returns null (changing nothing) otherwise.
        if unsafe { ffi::rvs_pktmbuf_append(self.0.as_ptr(), n16) }.is_null() {
            return false;
        }
        self.data_mut().copy_within(at..len, at + n);
        true
    }

    fn truncate(&mut self, len: usize) {
        let cur = self.data().len();
        if len < cur {
            // SAFETY: we own the mbuf; trimming less than data_len succeeds.
            unsafe { ffi::rvs_pktmbuf_trim(self.0.as_ptr(), (cur - len) as u16) };
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive.
        unsafe {
            let m = self.0.as_mut();
            let start = (m.buf_addr as *mut u8).add(m.data_off as usize);
            std::slice::from_raw_parts_mut(start, m.data_len as usize)
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody uses it after this.
        unsafe { ffi::rvs_pktmbuf_free(self.0.as_ptr()) }
    }
}
