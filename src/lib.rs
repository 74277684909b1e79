//! rvs: a DPDK-based L4 load-balancing appliance.
//!
//! Layers, from the wire up (see `docs/architecture.md`): `wire` (zero-copy
//! packet views), `net` (own addresses, neighbours), `dataplane` (the
//! poll-mode worker, generic over a packet-I/O trait), `dpdk` (bindings and
//! safe wrappers, and the prefetch hint, which builds without DPDK too),
//! `control` (configuration), `sys` (safe wrappers over the few OS ioctls
//! std lacks: the liveness TUN interface). `unsafe` code lives only in
//! `dpdk` and `sys`, each block with a `// SAFETY:` line.
#![deny(unsafe_code)]

pub mod control;
pub mod dataplane;
pub mod dpdk;
pub mod ha;
pub mod lb;
pub mod logging;
pub mod net;
pub mod startup;
pub mod sys;
#[cfg(test)]
mod testutil;
pub mod wire;
