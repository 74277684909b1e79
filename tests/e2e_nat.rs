#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end through NAT: `rvsd` on two `net_af_packet` ports between a
//! client namespace and real servers behind a bridge (see `tests/netns`),
//! the kernel's TCP and UDP in the client and the real servers, curl, wrk
//! and nginx (or Python's `http.server`) as the applications.
//!
//! ```text
//!   client 198.51.100.10 --- [outside] rvsd [inside] --- br0 --- rs1 10.1.0.11:8080
//!   VIP 198.51.100.100        198.51.100.1   10.1.0.1         \-- rs2 10.1.0.12:8080
//!                                                              \- rs3 10.1.0.13:8080
//! ```
//!
//! The issue's checks for NAT: a thousand sequential requests split by rr
//! and by wrr 3:2:1 (with `rvsadm --json list` agreeing with the client),
//! wrk with 100 keep-alive connections for 10 s, a 200 MiB download
//! (sha256), UDP. Figures are printed as `RESULT nat ...` lines past the
//! output capture: `cargo test --test e2e_nat 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::cases::{self, took};
use netns::{
    assert_all_answered, count_answers, listed_real_servers, result_line, stop_rvsd, total_conns,
    Method, Service, Topology, HTTP_PORT, SETTLE, VIP,
};
use std::collections::BTreeMap;
use std::time::Instant;
use support::counter;

/// The `conns` of each listed real server of `service`, by address.
fn listed_conns(list: &serde_json::Value, service: &str) -> BTreeMap<String, u64> {
    listed_real_servers(list, service)
        .iter()
        .map(|rs| {
            (
                rs["address"].as_str().unwrap_or("?").to_string(),
                rs["conns"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// The whole `rvsadm --json list` document, as INTERFACE.md has it,
/// after the thousand requests of
/// [`cases::rr_1000_sequential_requests_split_evenly`].
fn check_whole_document(topo: &Topology, list: &serde_json::Value) {
    let vs = &list["virtual_servers"][0];
    for key in [
        "name",
        "address",
        "protocol",
        "scheduler",
        "forward",
        "real_servers",
    ] {
        assert!(
            vs.get(key).is_some(),
            "virtual server has no `{key}`: {list}"
        );
    }
    assert_eq!(vs["address"], format!("{VIP}:80"), "{list}");
    assert_eq!(vs["protocol"], "tcp", "{list}");
    let rss = listed_real_servers(list, "web");
    for (rs, listed) in topo.real_servers.iter().zip(rss) {
        assert_eq!(listed["weight"], 1, "{list}");
        assert_eq!(listed["health"], "up", "{list}");
        for key in [
            "active_conns",
            "inactive_conns",
            "packets_in",
            "packets_out",
            "bytes_in",
            "bytes_out",
        ] {
            assert!(
                listed.get(key).and_then(|v| v.as_u64()).is_some(),
                "real server {} has no count `{key}`: {list}",
                rs.name
            );
        }
        // Each HTTP exchange is several packets each way, and NAT sees
        // both ways.
        let conns = listed["conns"].as_u64().unwrap_or(0);
        for key in ["packets_in", "packets_out", "bytes_in", "bytes_out"] {
            assert!(
                listed[key].as_u64().unwrap_or(0) >= conns * 3,
                "real server {} `{key}` too small for {conns} connections: {list}",
                rs.name
            );
        }
    }
}

#[test]
fn nat_rr_1000_sequential_requests_split_evenly() {
    cases::rr_1000_sequential_requests_split_evenly(Method::Nat, check_whole_document);
}

#[test]
fn nat_wrr_3_2_1_1000_sequential_requests() {
    cases::wrr_3_2_1_1000_sequential_requests(Method::Nat);
}

#[test]
fn nat_wrk_100_keepalive_connections() {
    let report = cases::wrk_100_keepalive_connections(Method::Nat, |_| {});
    eprintln!("{} requests", report.requests);
}

#[test]
fn nat_200mib_download_is_byte_exact() {
    cases::download_200mib_is_byte_exact(Method::Nat, |stats| {
        let drops = support::drops(stats);
        let dropped: u64 = drops.values().sum();
        // IPv6 is off and nothing else talks: a clean transfer drops
        // nothing but the odd ARP for an address that is not rvsd's.
        assert_eq!(
            dropped,
            drops.get("arp_not_for_us").copied().unwrap_or(0),
            "drops during a clean transfer: {drops:?}"
        );
        // NAT carries the data both ways through rvsd.
        assert!(
            counter(stats, "total.tx_bytes") > 200 << 20,
            "the data went through rvsd: {stats}"
        );
    });
}

#[test]
fn nat_with_two_workers_on_a_device_without_rss() {
    let started = Instant::now();
    let topo = Topology::nat(3);
    let rvsd = topo.start_rvsd(2, &[topo.web("rr", &[1, 1, 1])]);

    let results = topo.curls(40);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    for rs in &topo.real_servers {
        let got = counts.get(&rs.name).copied().unwrap_or(0);
        assert!(
            (11..=16).contains(&got),
            "{} answered {got} of 40 (expected 40/3 ± 3): {counts:?}",
            rs.name
        );
    }
    assert_eq!(counts.values().sum::<usize>(), 40, "{counts:?}");
    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "web") >= 40);
    let conns = listed_conns(&list, "web");
    assert_eq!(
        conns.values().sum::<u64>(),
        40,
        "conns over both workers: {conns:?}"
    );

    let stats = stop_rvsd(rvsd);
    let redirected = counter(&stats, "total.redirected");
    assert!(
        redirected > 0,
        "no packet was handed between workers: {stats}"
    );
    assert_eq!(counter(&stats, "total.drops.redirect_full"), 0, "{stats}");
    assert_eq!(counter(&stats, "total.drops.no_connection"), 0, "{stats}");
    eprintln!(
        "nat_with_two_workers_on_a_device_without_rss took {:.1} s ({redirected} redirected)",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn udp_through_nat_is_answered() {
    let started = Instant::now();
    let mut topo = Topology::nat(3);
    topo.start_udp_echo();
    let mut dns = Service::nat("dns", &format!("{VIP}:53"), "udp", "rr");
    for rs in &topo.real_servers {
        dns = dns.real(rs.addr(netns::UDP_ECHO_PORT), 1);
    }
    let rvsd = topo.start_rvsd(1, &[dns]);

    // One flow: every datagram of it to one real server, every one echoed
    // from the VIP.
    let echoes = topo.udp_exchange(VIP, 53, 20);
    let vip53 = format!("{VIP}:53");
    let wrong: Vec<(usize, &Option<String>)> = echoes
        .iter()
        .enumerate()
        .filter(|(_, e)| e.as_deref() != Some(vip53.as_str()))
        .collect();
    assert!(
        wrong.is_empty(),
        "datagrams not echoed from {vip53} (index, source): {wrong:?}\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    // Three more flows (three client sockets): rr puts one on each server.
    for _ in 0..3 {
        let e = topo.udp_exchange(VIP, 53, 5);
        assert!(
            e.iter().all(|s| s.as_deref() == Some(vip53.as_str())),
            "{e:?}"
        );
    }
    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "dns") >= 4);
    let conns: Vec<u64> = listed_real_servers(&list, "dns")
        .iter()
        .map(|rs| rs["conns"].as_u64().unwrap_or(u64::MAX))
        .collect();
    assert_eq!(conns.iter().sum::<u64>(), 4, "four flows: {list}");
    assert!(
        conns.iter().all(|&c| (1..=2).contains(&c)),
        "rr spreads four flows over three servers 2/1/1: {list}"
    );
    result_line(&format!(
        "nat udp: 35 datagrams in 4 flows all echoed from {vip53}; rvsadm conns per real server {conns:?}"
    ));

    let stats = stop_rvsd(rvsd);
    assert!(counter(&stats, "total.forwarded") >= 70, "{stats}");
    took("udp_through_nat_is_answered", started);
}

#[test]
fn management_path_reaches_real_servers_beside_rvsd() {
    let started = Instant::now();
    let topo = Topology::nat_with_management(2);
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1])]);

    // The lb namespace's kernel reaches each real server directly.
    for rs in &topo.real_servers {
        let url = format!("http://{}/", rs.addr(HTTP_PORT));
        let out = topo.lb.run(
            "curl",
            &["-s", "-m", "5", &url],
            std::time::Duration::from_secs(10),
        );
        assert!(
            out.success() && out.stdout == format!("{}\n", rs.name),
            "management path to {}: {out}",
            rs.name
        );
    }
    // And the data plane still balances beside it.
    let results = topo.curls(4);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    assert_eq!(counts.get("rs1"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("rs2"), Some(&2), "{counts:?}");
    let _ = stop_rvsd(rvsd);
    took("management_path_reaches_real_servers_beside_rvsd", started);
}
