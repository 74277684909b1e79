#![cfg(feature = "dpdk")]
//! IPv4-in-IPv6 TUN, packet by packet, through the real `rvsd` on a
//! `net_pcap` device: the table in tests/pcap/tun46_cases.py (an IPv4
//! virtual server by TUN to an IPv6 real server: the client's packets
//! unchanged inside IPv6, next header 4; fragmentation needed back for a
//! DF packet that no longer fits; a packet without DF that does not fit
//! dropped), judged by tests/pcap/lb_judge.py with scapy
//! (LB_CASES=tun46_cases), never with rvs's parser; rvsd's counters
//! checked against the ones the judge derives from the table.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_tun46_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    // lb_judge.py reads its table from the module LB_CASES names.
    std::env::set_var("LB_CASES", "tun46_cases");
    let started = Instant::now();
    let run = pcap::run_table("lb_judge.py", "pcap-tun46");
    run.finish("tun46", started);
}
