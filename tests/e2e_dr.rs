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

use netns::{heavy, listed_real_servers, stop_rvsd, total_conns, Topology, SETTLE};
use std::time::Instant;
use support::counter;

fn took(name: &str, started: Instant) {
    eprintln!("{name} took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn dr_rr_1000_sequential_requests_split_evenly() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = Topology::dr(3);
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1, 1])]);
    topo.check_sequential_split(&rvsd, "rr", &[1, 1, 1], 1000);

    // rvsd sees the client's packets only: nothing comes back from the
    // real servers through it.
    let list = topo.rvsadm_list();
    for rs in listed_real_servers(&list, "web") {
        assert!(rs["packets_in"].as_u64().unwrap_or(0) >= 3 * 333, "{list}");
        assert_eq!(rs["packets_out"], 0, "replies bypass rvsd in DR: {list}");
    }
    let stats = stop_rvsd(rvsd);
    assert_eq!(counter(&stats, "total.conns_created"), 1000, "{stats}");
    took("dr_rr_1000_sequential_requests_split_evenly", started);
}

#[test]
fn dr_wrr_3_2_1_1000_sequential_requests() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = Topology::dr(3);
    let rvsd = topo.start_rvsd(1, &[topo.web("wrr", &[3, 2, 1])]);
    topo.check_sequential_split(&rvsd, "wrr", &[3, 2, 1], 1000);
    let _ = stop_rvsd(rvsd);
    took("dr_wrr_3_2_1_1000_sequential_requests", started);
}

#[test]
fn dr_wrk_100_keepalive_connections() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = Topology::dr(3);
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1, 1])]);
    topo.check_wrk(&rvsd);
    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "web") >= 100);
    // wrk opens one connection of its own first to check the address.
    assert!(
        (100..=101).contains(&total_conns(&list, "web")),
        "wrk keeps its 100 connections alive: {list}"
    );
    let stats = stop_rvsd(rvsd);
    assert_eq!(counter(&stats, "total.drops.table_full"), 0, "{stats}");
    took("dr_wrk_100_keepalive_connections", started);
}

#[test]
fn dr_200mib_download_is_byte_exact() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = Topology::dr(1);
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1])]);
    topo.check_huge_download(&rvsd, 200 << 20);
    let stats = stop_rvsd(rvsd);
    // The data went from the real server to the router directly: rvsd
    // carried the client's ACKs only (about 60 bytes per 2 segments).
    let rx = counter(&stats, "total.rx_bytes");
    assert!(
        rx < 20 << 20,
        "rvsd received {rx} bytes: the 200 MiB should have bypassed it: {stats}"
    );
    took("dr_200mib_download_is_byte_exact", started);
}
