#![cfg(feature = "dpdk")]
//! IPv6 load balancing, packet by packet, through the real `rvsd` on a
//! `net_pcap` device: the table in tests/pcap/lb6_cases.py (NAT TCP and
//! UDP both ways, a destination-options header before TCP, DR, TUN
//! IPv6-in-IPv6, ICMPv6 packet too big from the inside translated to the
//! client, a reset, malformed IPv6 to a VIP), judged by
//! tests/pcap/lb_judge.py with scapy (LB_CASES=lb6_cases), never with
//! rvs's parser; rvsd's counters checked against the ones the judge
//! derives from the table.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_lb6_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    // lb_judge.py reads its table from the module LB_CASES names.
    std::env::set_var("LB_CASES", "lb6_cases");
    let started = Instant::now();
    let run = pcap::run_table("lb_judge.py", "pcap-lb6");
    run.finish("lb6", started);
}
