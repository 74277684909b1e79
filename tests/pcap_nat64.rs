#![cfg(feature = "dpdk")]
//! NAT64 FullNAT, packet by packet, through the real `rvsd` on a
//! `net_pcap` device: the table in tests/pcap/nat64_cases.py (an IPv6
//! client's TCP and UDP leaving as IPv4 from a local address and the IPv4
//! replies coming back as IPv6 from the VIP, ICMP errors both ways with
//! packet too big <-> fragmentation needed, local ports exhausted, strays
//! and fragments to a local address, ARP for it), judged by
//! tests/pcap/lb_judge.py with scapy (LB_CASES=nat64_cases), never with
//! rvs's parser; rvsd's counters checked against the ones the judge
//! derives from the table, and the NAT64 counters against the case count.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_nat64_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    // lb_judge.py reads its table from the module LB_CASES names.
    std::env::set_var("LB_CASES", "nat64_cases");
    let started = Instant::now();
    let mut run = pcap::run_table("lb_judge.py", "pcap-nat64");
    eprintln!(
        "pcap nat64 test: {} frames in, {} out, {:.1} s",
        run.verdict["input_frames"],
        run.verdict["output_frames"],
        started.elapsed().as_secs_f64()
    );
    // Translated by the table: 3 + 1 + 2 (SYN, ICMPv6 error) + 1 (the
    // first of the exhausted service) client-side packets to IPv4; 2 + 1
    // + 2 (SYN-ACK, ICMP error) replies to IPv6.
    for (pointer, want) in [("/total/nat64_to_ipv4", 7), ("/total/nat64_to_ipv6", 5)] {
        let got = run.stats.pointer(pointer).and_then(|v| v.as_u64());
        if got != Some(want) {
            run.problems
                .push(format!("{pointer}: {got:?}, expected {want}"));
        }
    }
    pcap::assert_no_problems(&run.problems, &run.stats, &run.log);
}
