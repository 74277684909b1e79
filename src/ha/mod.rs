//! High availability: an active/standby pair of balancers, or the
//! active nodes of a `[cluster]` (each syncing with every other; the
//! runtime is `control::ha`).
//!
//! - [`sync`]: the connection-sync wire format (one UDP datagram = a
//!   header, fixed-size connection records and a MAC), pure encoding and
//!   decoding with no I/O; `docs/sync-protocol.md` is its byte-level
//!   specification.
//! - [`sync6`]: the IPv6 connection record (version 4, family 6).
//! - [`key`]: the pair's shared secret (`[ha] sync_key_file`) and the
//!   MAC it makes.
//! - [`filter`]: what a standby accepts of a record (a service and real
//!   server of its own, a timeout no longer than its own).
//! - [`replay`]: the sliding window that refuses a sequence number twice.
//! - [`peer`]: the receiver's gate (the configured peer's address and
//!   port, the MAC, the sender's boot and sequence) and the limit on full
//!   dumps.
//! - [`fuzz`]: the receive path under arbitrary datagrams, for cargo-fuzz
//!   and a seeded run in the test suite.
//!
//! The workers' side (what an active worker reports, how a standby's
//! worker installs a connection) is `dataplane::sync`; the control thread
//! turns its events into datagrams with [`sync::Builder`] and the peer's
//! datagrams back into events through [`peer::PeerGate`] and
//! [`sync::Packet`].

pub mod filter;
pub mod fuzz;
pub mod key;
pub mod peer;
pub mod replay;
pub mod sync;
pub mod sync6;
