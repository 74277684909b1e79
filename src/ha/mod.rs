//! High availability: an active/standby pair of balancers.
//!
//! - [`sync`]: the connection-sync wire format (one UDP datagram = a
//!   header and fixed-size connection records), pure encoding and
//!   decoding with no I/O; `docs/sync-protocol.md` is its byte-level
//!   specification.
//!
//! The workers' side (what an active worker reports, how a standby's
//! worker installs a connection) is `dataplane::sync`; the control thread
//! turns its events into datagrams with [`sync::Builder`] and the peer's
//! datagrams back into events with [`sync::Packet`].

pub mod sync;
