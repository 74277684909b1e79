#![cfg(feature = "dpdk")]
//! FullNAT carrying the client's address (`forward = "fullnat"` with
//! `client_address`), packet by packet, through the real `rvsd` on a
//! `net_pcap` device: the table in tests/pcap/fullnat_carry_cases.py (a
//! FullNAT TCP connection with a PROXY v2 header naming the client and the
//! VIP, its retransmission, sequence, acknowledgment and SACK translation
//! both ways, an ICMP error to the local address shifted back for the
//! client; one with the TOA option; one whose first segment is too big
//! for the header; IP fragments of one: a fragmented first segment
//! dropped whole, later fragmented segments shifted both ways) judged by tests/pcap/lb_judge.py
//! (LB_CASES=fullnat_carry_cases) with scapy, never with rvs's parser;
//! then the counters of rvsd's `stats:` line, the client-address ones
//! included.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_fullnat_carries_the_client_address() {
    support::require_root("running rvsd on DPDK's net_pcap");
    // lb_judge.py reads its table from the module LB_CASES names.
    std::env::set_var("LB_CASES", "fullnat_carry_cases");
    let started = Instant::now();
    let mut run = pcap::run_table("lb_judge.py", "pcap-fncarry");
    // What the hooks did: three PROXY headers (one sent again in a
    // retransmission), two TOA options (handshake ACK, first data), one
    // first segment too big for its header, one first segment in
    // fragments.
    run.expect_totals(&[
        ("client_addr_proxy_v2_inserted", 3),
        ("client_addr_proxy_v2_reinserted", 1),
        ("client_addr_toa_inserted", 2),
        ("client_addr_skipped_no_room", 0),
        ("client_addr_skipped_header_full", 0),
        ("client_addr_skipped_too_big", 1),
        ("client_addr_skipped_fragment", 1),
    ]);
    run.finish("fullnat carry", started);
}
