//! The balancer's own place in the network: neighbours (ARP), routes
//! (longest-prefix match), and which worker the NIC gives a client (RSS).
//! Pure logic, no DPDK.

pub mod neigh;
pub mod route;
pub mod rss;
