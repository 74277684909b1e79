//! The packet-I/O contract between a worker and whatever moves its frames.
//!
//! The worker's logic sees frames as byte slices and a port as an index, so
//! it runs over DPDK mbufs in `rvsd` and over plain `Vec<u8>` frames in unit
//! tests and benchmarks. Only `crate::dpdk::io` implements these traits for
//! real devices.

/// A received (or allocated) frame the worker may rewrite in place, grow
/// at the front (headroom for an encapsulation), cut at the back, and send.
pub trait Frame {
    /// The frame's bytes, from the Ethernet header on.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Adds `n` bytes in front of the data (their content is unspecified);
    /// false, and nothing changed, when the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false when shorter than `n`.
    fn adj(&mut self, n: usize) -> bool;
    /// Cuts the frame to `len` bytes (no-op when already shorter).
    fn truncate(&mut self, len: usize);
    /// Opens `n` bytes at offset `at` of the data (their content
    /// unspecified), moving the bytes from `at` on `n` bytes later, in the
    /// buffer's tailroom: how `lb::client_addr` grows a segment in the
    /// middle. False, and nothing changed, when `at` is past the end or
    /// the tailroom is too small.
    fn insert(&mut self, at: usize, n: usize) -> bool;
}

/// One worker's view of the ports: its own rx and tx queue on each.
///
/// Bursts are `Vec`s whose capacity is reserved at start; implementations
/// never grow them, so nothing allocates per packet.
pub trait PacketIo {
    /// The frame type the device hands out.
    type Frame: Frame;

    /// Number of ports, indexed `0..port_count()` in config order.
    fn port_count(&self) -> usize;

    /// Appends up to `burst.capacity() - burst.len()` received frames.
    fn rx_burst(&mut self, port: usize, burst: &mut Vec<Self::Frame>);

    /// Sends the frames of `burst` in order, removing those the device
    /// took; frames it did not take (queue full) stay in `burst`.
    fn tx_burst(&mut self, port: usize, burst: &mut Vec<Self::Frame>);

    /// A new frame of `len` zero bytes (for packets rvs originates, such as
    /// ARP requests), or `None` when the pool is empty.
    fn alloc(&mut self, len: usize) -> Option<Self::Frame>;

    /// Hands frames received on `port` to worker `worker`, which owns
    /// their connection; frames it could not take stay in `burst`. Without
    /// other workers there is nowhere to hand them, so none are taken.
    fn redirect_tx(&mut self, worker: usize, port: usize, burst: &mut Vec<Self::Frame>) {
        let _ = (worker, port, burst);
    }

    /// Appends frames other workers handed to this one that arrived on
    /// `port`, up to the spare capacity of `burst`.
    fn redirect_rx(&mut self, port: usize, burst: &mut Vec<Self::Frame>) {
        let _ = (port, burst);
    }
}

/// Where a worker puts the frames it sends: implemented by the poll loop
/// (batching per port) and by tests (collecting).
pub trait Output<F: Frame> {
    /// Queues `frame` for sending on `port`.
    fn send(&mut self, port: usize, frame: F);
    /// A new frame of `len` zero bytes, if a buffer is free.
    fn alloc(&mut self, len: usize) -> Option<F>;
    /// Hands `frame`, received on `port`, to worker `worker`.
    fn redirect(&mut self, worker: usize, port: usize, frame: F);
}

/// A monotonic clock, injected so tests control time.
pub trait Clock {
    /// Nanoseconds since an arbitrary fixed origin.
    fn now_ns(&self) -> u64;
}

/// A plain heap frame, for tests, benchmarks and the fuzzer. It models a
/// buffer's headroom like an mbuf's, so code that prepends is exercised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
}

/// Headroom of a [`VecFrame`], as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const VEC_FRAME_HEADROOM: usize = 128;

/// The most data a [`VecFrame`] grows to by [`Frame::insert`], as an mbuf
/// of DPDK's default data room (2048 bytes after its headroom).
pub const VEC_FRAME_MAX_LEN: usize = 2048;

impl VecFrame {
    /// A frame holding `bytes`, with [`VEC_FRAME_HEADROOM`] bytes in front.
    pub fn new(bytes: &[u8]) -> VecFrame {
        let mut buf = vec![0u8; VEC_FRAME_HEADROOM];
        buf.extend_from_slice(bytes);
        VecFrame {
            buf,
            start: VEC_FRAME_HEADROOM,
        }
    }
}

impl Frame for VecFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }
    fn insert(&mut self, at: usize, n: usize) -> bool {
        let len = self.buf.len() - self.start;
        if at > len || len + n > VEC_FRAME_MAX_LEN {
            return false;
        }
        let at = self.start + at;
        self.buf.splice(at..at, std::iter::repeat_n(0, n));
        true
    }
}

/// An [`Output`] that collects what is sent, for tests.
#[derive(Debug, Default)]
pub struct VecOutput {
    /// (port, frame bytes) in send order.
    pub sent: Vec<(usize, Vec<u8>)>,
    /// Buffers left to allocate; `None` = unlimited.
    pub alloc_budget: Option<usize>,
    /// (worker, port, frame bytes) handed to other workers.
    pub redirected: Vec<(usize, usize, Vec<u8>)>,
}

impl Output<VecFrame> for VecOutput {
    fn send(&mut self, port: usize, frame: VecFrame) {
        self.sent.push((port, frame.data().to_vec()));
    }
    fn alloc(&mut self, len: usize) -> Option<VecFrame> {
        if let Some(b) = self.alloc_budget.as_mut() {
            *b = b.checked_sub(1)?;
        }
        Some(VecFrame::new(&vec![0u8; len]))
    }
    fn redirect(&mut self, worker: usize, port: usize, frame: VecFrame) {
        self.redirected.push((worker, port, frame.data().to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_frame_prepends_into_headroom_and_trims() {
        let mut f = VecFrame::new(&[1, 2, 3, 4]);
        assert!(f.prepend(2));
        assert_eq!(f.data().len(), 6);
        assert_eq!(&f.data()[2..], &[1, 2, 3, 4]);
        assert!(f.adj(3));
        assert_eq!(f.data(), &[2, 3, 4]);
        f.truncate(1);
        assert_eq!(f.data(), &[2]);
        assert!(!f.prepend(VEC_FRAME_HEADROOM + 10));
        assert!(!f.adj(2));
    }

    #[test]
    fn vec_frame_opens_a_gap_in_the_middle_up_to_its_room() {
        let mut f = VecFrame::new(&[1, 2, 3, 4]);
        assert!(f.insert(2, 3));
        assert_eq!(f.data().len(), 7);
        assert_eq!(&f.data()[..2], &[1, 2]);
        assert_eq!(&f.data()[5..], &[3, 4]);
        assert!(!f.insert(8, 1), "past the end");
        assert!(!f.insert(0, VEC_FRAME_MAX_LEN), "no room");
        assert_eq!(f.data().len(), 7);
    }
}
