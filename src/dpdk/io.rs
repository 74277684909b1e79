//! [`PacketIo`] over DPDK: one worker's queue on every port.

use super::ring::{RingConsumer, RingProducer};
use super::{ffi, mbuf::Mbuf, mempool::Mempool, port::Port};
use crate::dataplane::io::PacketIo;
use std::sync::Arc;

/// The queues one worker owns: queue `queue` of each port, in config order.
///
/// DPDK rx/tx queues are not thread-safe; rvsd gives each worker its own
/// queue index, so no two lcores ever touch one queue.
#[derive(Debug)]
pub struct DpdkIo {
    ports: Vec<u16>,
    queue: u16,
    pool: Arc<Mempool>,
    /// Rings to other workers, `[worker][port]` (`None` for this one).
    handover_out: Vec<Vec<Option<RingProducer>>>,
    /// Rings from other workers, `[port][..]`.
    handover_in: Vec<Vec<RingConsumer>>,
}

impl DpdkIo {
    /// The I/O of the worker that owns queue `queue` of every port.
    pub fn new(ports: &[Port], queue: u16, pool: Arc<Mempool>) -> DpdkIo {
        DpdkIo {
            ports: ports.iter().map(Port::id).collect(),
            queue,
            pool,
            handover_out: Vec::new(),
            handover_in: Vec::new(),
        }
    }

    /// Adds the rings this worker hands packets over through:
    /// `out[worker][port]` to each other worker, `inbound[port]` from them.
    pub fn with_handover(
        mut self,
        out: Vec<Vec<Option<RingProducer>>>,
        inbound: Vec<Vec<RingConsumer>>,
    ) -> DpdkIo {
        self.handover_out = out;
        self.handover_in = inbound;
        self
    }
}

impl PacketIo for DpdkIo {
    type Frame = Mbuf;

    fn port_count(&self) -> usize {
        self.ports.len()
    }

    #[inline]
    fn rx_burst(&mut self, port: usize, burst: &mut Vec<Mbuf>) {
        let room = (burst.capacity() - burst.len()).min(u16::MAX as usize) as u16;
        let Some(&port_id) = self.ports.get(port) else {
            return;
        };
        let len = burst.len();
        // SAFETY: the spare capacity holds `room` slots; Mbuf is a
        // transparent non-null mbuf pointer, and rx_burst writes only valid,
        // non-null mbufs (now owned by us) into the first `n` slots.
        unsafe {
            let dst = burst.as_mut_ptr().add(len) as *mut *mut ffi::rte_mbuf;
            let n = ffi::rvs_eth_rx_burst(port_id, self.queue, dst, room);
            burst.set_len(len + n as usize);
        }
    }

    #[inline]
    fn tx_burst(&mut self, port: usize, burst: &mut Vec<Mbuf>) {
        let Some(&port_id) = self.ports.get(port) else {
            return;
        };
        let count = burst.len().min(u16::MAX as usize) as u16;
        // SAFETY: the first `count` elements are owned valid mbufs laid out
        // as `struct rte_mbuf *`; the driver takes ownership of the first
        // `sent`, which therefore must not be dropped by us.
        let sent = unsafe {
            ffi::rvs_eth_tx_burst(port_id, self.queue, burst.as_mut_ptr() as *mut _, count)
        } as usize;
        for m in burst.drain(..sent) {
            // Owned by the driver now.
            let _ = m.into_raw();
        }
    }

    fn redirect_tx(&mut self, worker: usize, port: usize, burst: &mut Vec<Mbuf>) {
        if let Some(Some(ring)) = self
            .handover_out
            .get_mut(worker)
            .and_then(|w| w.get_mut(port))
        {
            ring.enqueue_burst(burst);
        }
    }

    fn redirect_rx(&mut self, port: usize, burst: &mut Vec<Mbuf>) {
        if let Some(rings) = self.handover_in.get_mut(port) {
            for ring in rings {
                if burst.len() == burst.capacity() {
                    break;
                }
                ring.dequeue_burst(burst);
            }
        }
    }

    fn alloc(&mut self, len: usize) -> Option<Mbuf> {
        self.pool.alloc(u16::try_from(len).ok()?)
    }
}
