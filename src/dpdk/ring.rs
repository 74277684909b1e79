//! Lock-free single-producer / single-consumer rings of mbufs.
//!
//! A ring created here is split into a [`RingProducer`] and a
//! [`RingConsumer`], each owned by one thread (neither is `Clone`), which is
//! what makes DPDK's single-producer / single-consumer fast path sound.
//! Either half can be given to a ring-backed port ([`super::port::Port::from_rings`]),
//! which then plays that role. Rings carry mbufs between lcores: a traffic
//! generator and a worker in benchmarks, and (later) packets a worker hands
//! to the worker that owns their connection.

use super::{eal::Eal, ffi, mbuf::Mbuf, DpdkError};
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

/// The ring itself, freed when both halves (and any port using it) are gone.
#[derive(Debug)]
pub(crate) struct RingInner {
    raw: NonNull<ffi::rte_ring>,
}

// SAFETY: the ring is designed for cross-thread use; the halves enforce one
// producer and one consumer.
unsafe impl Send for RingInner {}
// SAFETY: as above; shared references only reach the raw pointer through
// the halves, each used by one thread.
unsafe impl Sync for RingInner {}

impl RingInner {
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_ring {
        self.raw.as_ptr()
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // SAFETY: last reference, so nobody enqueues or dequeues any more;
        // mbufs still inside are ours to free before the ring goes.
        unsafe {
            let mut slots = [std::ptr::null_mut::<std::ffi::c_void>(); 32];
            loop {
                let n = ffi::rvs_ring_dequeue_burst(self.raw.as_ptr(), slots.as_mut_ptr(), 32);
                if n == 0 {
                    break;
                }
                for &m in &slots[..n as usize] {
                    ffi::rvs_pktmbuf_free(m as *mut ffi::rte_mbuf);
                }
            }
            ffi::rte_ring_free(self.raw.as_ptr())
        }
    }
}

/// The enqueueing half.
#[derive(Debug)]
pub struct RingProducer(pub(crate) Arc<RingInner>);

/// The dequeueing half.
#[derive(Debug)]
pub struct RingConsumer(pub(crate) Arc<RingInner>);

/// Creates a ring of `count` slots (a power of two; one fewer usable) on
/// NUMA `socket`, and returns its two halves.
pub fn spsc(
    _eal: &Eal,
    name: &str,
    count: u32,
    socket: i32,
) -> Result<(RingProducer, RingConsumer), DpdkError> {
    let cname = CString::new(name).map_err(|_| DpdkError::new("ring name has NUL"))?;
    let flags = ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ;
    // SAFETY: EAL initialised; DPDK copies the name.
    let raw = unsafe { ffi::rte_ring_create(cname.as_ptr(), count, socket, flags) };
    let raw = NonNull::new(raw).ok_or_else(|| {
        DpdkError::from_rte_errno(format!("cannot create ring {name:?} of {count} slots"))
    })?;
    let inner = Arc::new(RingInner { raw });
    Ok((RingProducer(inner.clone()), RingConsumer(inner)))
}

impl RingProducer {
    /// Enqueues as many mbufs of `burst` as fit, in order, removing them
    /// from `burst`; the rest stay there.
    pub fn enqueue_burst(&mut self, burst: &mut Vec<Mbuf>) {
        // SAFETY: Mbuf is a transparent mbuf pointer; the ring takes
        // ownership of the first `n`, which we then forget.
        let n = unsafe {
            ffi::rvs_ring_enqueue_burst(
                self.0.as_ptr(),
                burst.as_ptr() as *const *mut std::ffi::c_void,
                burst.len() as u32,
            )
        } as usize;
        for m in burst.drain(..n) {
            let _ = m.into_raw();
        }
    }
}

impl RingConsumer {
    /// Appends up to the spare capacity of `burst` mbufs from the ring.
    pub fn dequeue_burst(&mut self, burst: &mut Vec<Mbuf>) {
        let len = burst.len();
        let room = (burst.capacity() - len) as u32;
        // SAFETY: the spare capacity holds `room` slots; the ring hands over
        // `n` valid mbufs, now owned by us.
        unsafe {
            let dst = burst.as_mut_ptr().add(len) as *mut *mut std::ffi::c_void;
            let n = ffi::rvs_ring_dequeue_burst(self.0.as_ptr(), dst, room);
            burst.set_len(len + n as usize);
        }
    }

    /// Mbufs waiting in the ring.
    pub fn len(&self) -> usize {
        // SAFETY: reading the ring's indices is always allowed.
        unsafe { ffi::rvs_ring_count(self.0.as_ptr()) as usize }
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
