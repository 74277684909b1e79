//! The load balancer's core, as pure logic over plain values: virtual and
//! real servers, schedulers, the per-worker connection table with TCP state
//! and timeouts, and the forwarding methods as packet rewrites.
//!
//! Nothing here knows DPDK or reads a clock: time comes in as `now`
//! (nanoseconds) and randomness as seeds, so every rule is unit-tested.

pub mod acl;
pub mod balancer;
pub mod client_addr;
pub mod clients;
pub mod conn;
pub mod family;
pub mod frag;
pub mod frag6;
pub mod handshake;
pub mod kind;
pub mod limits;
pub mod local_pool;
pub mod persist;
pub mod priority;
pub mod sched;
pub mod service;
pub mod slow_start;
pub mod sync;
pub mod synproxy;
pub mod tcp_state;
pub mod xmit;
