//! The poll-mode worker: bursts in, a decision per frame, bursts out.
//!
//! [`worker::Worker`] decides what to do with one frame (pure logic over
//! bytes); [`poll::run`] is the loop that feeds it bursts from a
//! [`io::PacketIo`] and sends what it returns. Neither knows DPDK.

pub mod client_addr;
pub mod fuzz;
pub mod io;
pub mod pending;
pub mod poll;
pub mod stats;
pub mod sync;
pub mod worker;
