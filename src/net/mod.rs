//! The balancer's own place in the network: neighbours (ARP) and routes
//! (longest-prefix match). Pure logic, no DPDK.

pub mod neigh;
pub mod route;
