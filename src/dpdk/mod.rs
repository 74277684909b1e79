//! The DPDK edge: generated bindings and the safe wrappers over them, and
//! the prefetch hint DPDK's fast paths are built on.
//!
//! This is the only module allowed `unsafe` code. Every FFI result is turned
//! into a `Result` here, owning handles free what they own in `Drop`, and the
//! rest of rvs sees DPDK only through these types and the
//! [`crate::dataplane::io::PacketIo`] implementation in `io`.
#![allow(unsafe_code)]

// The prefetch hint, the time-stamp counter and huge-page arrays need no
// DPDK library, so the pure core has them in builds without DPDK too;
// everything else is the binding. So does the close-on-exec sweep that
// keeps the EAL's descriptors from a health check's script.
pub mod hugemem;
pub mod inherit;
pub mod prefetch;
pub mod tsc;

#[cfg(feature = "dpdk")]
mod common;
#[cfg(feature = "dpdk")]
pub mod eal;
#[cfg(feature = "dpdk")]
mod ffi;
#[cfg(feature = "dpdk")]
pub mod io;
#[cfg(feature = "dpdk")]
pub mod lcore;
#[cfg(feature = "dpdk")]
pub mod mbuf;
#[cfg(feature = "dpdk")]
pub mod mempool;
#[cfg(feature = "dpdk")]
pub mod port;
#[cfg(feature = "dpdk")]
pub mod ring;

#[cfg(feature = "dpdk")]
pub use common::{DpdkError, TscClock};
