#![cfg(feature = "dpdk")]
//! The client's address carried to real servers (`client_address`),
//! packet by packet, through the real `rvsd` on a `net_pcap` device: the
//! table in tests/pcap/client_addr_cases.py (a NAT TCP connection with a
//! PROXY v2 header, its retransmission, sequence, acknowledgment and SACK
//! translation both ways, an ICMP error; one whose first segment is too
//! big for the header; one with the TOA option) judged by lb_judge.py
//! (through client_addr_judge.py) with scapy, never with rvs's parser;
//! then the counters of rvsd's `stats:` line, the client-address ones
//! included.
#![deny(unsafe_code)]

mod support;

use std::time::Instant;
use support::pcap;

#[test]
fn pcap_client_address_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    let started = Instant::now();
    let mut run = pcap::run_table("client_addr_judge.py", "pcap-caddr");
    // What the hooks did: two PROXY headers (one sent again in a
    // retransmission), two TOA options (handshake ACK, first data), one
    // segment too big for its header.
    run.expect_totals(&[
        ("client_addr_proxy_v2_inserted", 2),
        ("client_addr_proxy_v2_reinserted", 1),
        ("client_addr_toa_inserted", 2),
        ("client_addr_skipped_no_room", 0),
        ("client_addr_skipped_header_full", 0),
        ("client_addr_skipped_too_big", 1),
        ("client_addr_skipped_fragment", 0),
    ]);
    run.finish("client address", started);
}
