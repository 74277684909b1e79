#![cfg(feature = "dpdk")]
//! FullNAT over IPv6, packet by packet, through the real `rvsd` on a
//! `net_pcap` device: the table in tests/pcap/fullnat6_cases.py (TCP and
//! UDP both ways through IPv6 local addresses, ICMPv6 errors both ways
//! incl. packet too big, local ports exhausted answered with an IPv6
//! reset, a reply to an unknown local port dropped, fragments of a UDP
//! datagram following their first, ND for a local address, the start's
//! announcements), judged by tests/pcap/lb_judge.py with scapy
//! (LB_CASES=fullnat6_cases), never with rvs's parser; rvsd's counters
//! checked against the ones the judge derives from the table.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_fullnat6_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    // lb_judge.py reads its table from the module LB_CASES names.
    std::env::set_var("LB_CASES", "fullnat6_cases");
    let started = Instant::now();
    let run = pcap::run_table("lb_judge.py", "pcap-fullnat6");
    eprintln!(
        "pcap fullnat6 test: {} frames in, {} out, {:.1} s",
        run.verdict["input_frames"],
        run.verdict["output_frames"],
        started.elapsed().as_secs_f64()
    );
    pcap::assert_no_problems(&run.problems, &run.stats, &run.log);
}
