//! The balancer's own place in the network: neighbours (ARP), and in later
//! issues routes. Pure logic, no DPDK.

pub mod neigh;
