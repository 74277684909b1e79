//! The test bodies `e2e_nat`, `e2e_dr` and `e2e_tun` share: the issue's
//! checks are the same for every forwarding method, so each is written
//! once here and each test file calls it with its [`Method`]. What differs
//! between methods (what `rvsadm --json list` or rvsd's counters must show
//! afterwards, one more check before rvsd stops) is passed in by the
//! caller. Each function here is the body of the tests named
//! `<method>_<function>` in the method's files, the name its `took` line
//! prints.

use super::{
    heavy, listed_real_servers, stop_rvsd, total_conns, Method, Topology, WrkReport, SETTLE,
};
use crate::support::counter;
use std::time::Instant;

/// Says on stderr how long test `name` took.
pub fn took(name: &str, started: Instant) {
    eprintln!("{name} took {:.1} s", started.elapsed().as_secs_f64());
}

/// `<method>_rr_1000_sequential_requests_split_evenly`: a thousand
/// sequential requests split evenly over three real servers by rr (see
/// [`Topology::check_sequential_split`]), `check_list` judging
/// `rvsadm --json list` afterwards, and rvsd counting exactly 1000
/// connections created.
pub fn rr_1000_sequential_requests_split_evenly(
    method: Method,
    check_list: impl FnOnce(&Topology, &serde_json::Value),
) {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = Topology::of(method, 3);
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1, 1])]);
    topo.check_sequential_split(&rvsd, "rr", &[1, 1, 1], 1000);
    check_list(&topo, &topo.rvsadm_list());
    let stats = stop_rvsd(rvsd);
    assert_eq!(counter(&stats, "total.conns_created"), 1000, "{stats}");
    took(
        &format!("{}_rr_1000_sequential_requests_split_evenly", method.name()),
        started,
    );
}

/// DR, TUN: rvsd sees the client's packets only: each real server's
/// `packets_in` counts its share of 1000 requests, and nothing comes back
/// from the real servers through rvsd (`packets_out` 0).
pub fn replies_bypass_rvsd(topo: &Topology, list: &serde_json::Value) {
    let method = topo.method.name().to_uppercase();
    for rs in listed_real_servers(list, "web") {
        assert!(rs["packets_in"].as_u64().unwrap_or(0) >= 3 * 333, "{list}");
        assert_eq!(
            rs["packets_out"], 0,
            "replies bypass rvsd in {method}: {list}"
        );
    }
}

/// `<method>_wrr_3_2_1_1000_sequential_requests`: a thousand sequential
/// requests split 3:2:1 by wrr (see [`Topology::check_sequential_split`]).
pub fn wrr_3_2_1_1000_sequential_requests(method: Method) {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = Topology::of(method, 3);
    let rvsd = topo.start_rvsd(1, &[topo.web("wrr", &[3, 2, 1])]);
    topo.check_sequential_split(&rvsd, "wrr", &[3, 2, 1], 1000);
    let _ = stop_rvsd(rvsd);
    took(
        &format!("{}_wrr_3_2_1_1000_sequential_requests", method.name()),
        started,
    );
}

/// `<method>_wrk_100_keepalive_connections`: wrk's 100 keep-alive
/// connections through rr over three real servers (see
/// [`Topology::check_wrk`]), listed by rvsadm, `before_stop` run on the
/// topology, and no connection refused for a full table. Returns wrk's
/// report.
pub fn wrk_100_keepalive_connections(
    method: Method,
    before_stop: impl FnOnce(&mut Topology),
) -> WrkReport {
    let _heavy = heavy();
    let started = Instant::now();
    let mut topo = Topology::of(method, 3);
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1, 1])]);
    let report = topo.check_wrk(&rvsd);
    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "web") >= 100);
    // wrk opens one connection of its own first to check the address.
    assert!(
        (100..=101).contains(&total_conns(&list, "web")),
        "wrk keeps its 100 connections alive: {list}"
    );
    before_stop(&mut topo);
    let stats = stop_rvsd(rvsd);
    assert_eq!(counter(&stats, "total.drops.table_full"), 0, "{stats}");
    took(
        &format!("{}_wrk_100_keepalive_connections", method.name()),
        started,
    );
    report
}

/// `<method>_200mib_download_is_byte_exact`: a 200 MiB download from one
/// real server, byte-exact (see [`Topology::check_huge_download`]), and
/// `check_stats` judging rvsd's final counters.
pub fn download_200mib_is_byte_exact(method: Method, check_stats: impl FnOnce(&serde_json::Value)) {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = Topology::of(method, 1);
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1])]);
    topo.check_huge_download(&rvsd, 200 << 20);
    check_stats(&stop_rvsd(rvsd));
    took(
        &format!("{}_200mib_download_is_byte_exact", method.name()),
        started,
    );
}

/// DR, TUN: the data went from the real server to the client without
/// rvsd, which carried the client's ACKs only (about 60 bytes per 2
/// segments).
pub fn data_bypassed_rvsd(stats: &serde_json::Value) {
    let rx = counter(stats, "total.rx_bytes");
    assert!(
        rx < 20 << 20,
        "rvsd received {rx} bytes: the 200 MiB should have bypassed it: {stats}"
    );
}
