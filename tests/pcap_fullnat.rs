#![cfg(feature = "dpdk")]
//! FullNAT, packet by packet, through the real `rvsd` on a `net_pcap`
//! device: the table in tests/pcap/fullnat_cases.py (TCP handshake, data
//! and teardown both ways, UDP both ways, ICMP errors both ways, local
//! ports exhausted answered with a reset, a reply to an unknown local port
//! dropped, ARP for a local address), judged by tests/pcap/lb_judge.py
//! with scapy (LB_CASES=fullnat_cases), never with rvs's parser. The
//! counters of rvsd's `stats:` line are checked against the ones the judge
//! derives from the table, as tests/pcap_lb.rs does for its own.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_fullnat_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    // lb_judge.py reads its table from the module LB_CASES names.
    std::env::set_var("LB_CASES", "fullnat_cases");
    let started = Instant::now();
    let run = pcap::run_table("lb_judge.py", "pcap-fullnat");
    run.finish("fullnat", started);
}
