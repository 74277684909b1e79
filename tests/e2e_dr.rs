#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end through direct routing: the client behind a router, `rvsd`
//! (one `net_af_packet` port) and the real servers on one segment (see
//! `tests/netns`, [`netns::Topology::dr`]).
//!
//! ```text
//!   client 198.51.100.10 --- router 198.51.100.1 | 203.0.113.1 --- br0 --- rvsd "lan" 203.0.113.2
//!                                                                     \--- rs1 203.0.113.11:80 (VIP on lo)
//!   VIP 203.0.113.100:80 (rvsd answers its ARP)                        \-- rs2, rs3
//! ```
//!
//! rvsd only rewrites the destination MAC; the real servers hold the VIP
//! on `lo` (`arp_ignore=1`, `arp_announce=2`) and answer the client
//! straight through the router, so rvsd sees only the client's half of
//! each connection. The issue's checks for DR: a thousand sequential
//! requests split by rr and by wrr 3:2:1 (with `rvsadm --json list`
//! agreeing with the client), wrk with 100 keep-alive connections for
//! 10 s, a 200 MiB download (sha256). Figures are printed as `RESULT dr
//! ...` lines: `cargo test --test e2e_dr 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{cases, Method};

#[test]
fn dr_rr_1000_sequential_requests_split_evenly() {
    cases::rr_1000_sequential_requests_split_evenly(Method::Dr, cases::replies_bypass_rvsd);
}

#[test]
fn dr_wrr_3_2_1_1000_sequential_requests() {
    cases::wrr_3_2_1_1000_sequential_requests(Method::Dr);
}

#[test]
fn dr_wrk_100_keepalive_connections() {
    cases::wrk_100_keepalive_connections(Method::Dr, |_| {});
}

#[test]
fn dr_200mib_download_is_byte_exact() {
    // The data went from the real server to the router directly.
    cases::download_200mib_is_byte_exact(Method::Dr, cases::data_bypassed_rvsd);
}
