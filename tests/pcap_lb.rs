#![cfg(feature = "dpdk")]
//! The load balancer's data plane, packet by packet, through the real
//! `rvsd` on a `net_pcap` device. The table in tests/pcap/lb_cases.py says,
//! case by case, which frames go in (NAT TCP and UDP, DR, TUN, ICMP errors,
//! TTL, junk, wrr shares, sh and persistence stickiness, a reused tuple,
//! IPv4 fragments in order and out of order through NAT and DR, a
//! fragment flood)
//! and which frames must come out; tests/pcap/lb_judge.py writes the input
//! and the config from it and judges the output with scapy (never with
//! rvs's parser). This test runs rvsd between the two and checks the
//! counters of its `stats:` line against the ones the judge derives from
//! the table.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_load_balancing_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    let started = Instant::now();
    let run = pcap::run_table("lb_judge.py", "pcap-lb");
    run.finish("lb", started);
}
