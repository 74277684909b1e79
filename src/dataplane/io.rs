//! The packet-I/O contract between a worker and whatever moves its frames.
//!
//! The worker's logic sees frames as byte slices and a port as an index, so
//! it runs over DPDK mbufs in `rvsd` and over plain `Vec<u8>` frames in unit
//! tests and benchmarks. Only `crate::dpdk::io` implements these traits for
//! real devices.

/// A received frame the worker may rewrite in place and send on.
pub trait Frame {
    /// The frame's bytes, from the Ethernet header on.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
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
}

/// A monotonic clock, injected so tests control time.
pub trait Clock {
    /// Nanoseconds since an arbitrary fixed origin.
    fn now_ns(&self) -> u64;
}

/// A plain heap frame, for tests, benchmarks and the fuzzer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecFrame(pub Vec<u8>);

impl Frame for VecFrame {
    fn data(&self) -> &[u8] {
        &self.0
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}
