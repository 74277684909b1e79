#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end through NAT: `rvsd` on two `net_af_packet` ports between a
//! client namespace and real servers behind a bridge (see `tests/netns`),
//! the kernel's TCP and UDP in the client and the real servers, curl and
//! nginx (or Python's `http.server`) as the applications.
//!
//! ```text
//!   client 198.51.100.10 --- [outside] rvsd [inside] --- br0 --- rs1 10.1.0.11:8080
//!   VIP 198.51.100.100        198.51.100.1   10.1.0.1         \-- rs2 10.1.0.12:8080
//!                                                              \- rs3 10.1.0.13:8080
//! ```

mod netns;
mod support;

use netns::{count_answers, listed_real_servers, total_conns, Service, Topology, HTTP_PORT, VIP};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{counter, Rvsd};

const STOP: Duration = Duration::from_secs(20);
/// How long counters may take to reach `rvsadm list` (published every 100 ms).
const SETTLE: Duration = Duration::from_secs(2);

/// `n` sequential curls (one process, one connection each) to the VIP.
fn curls(topo: &Topology, n: usize) -> Vec<Result<String, String>> {
    (0..n)
        .map(|_| {
            let out = topo.curl(&format!("{VIP}:80"), "/");
            if out.success() {
                Ok(out.stdout)
            } else {
                Err(out.to_string())
            }
        })
        .collect()
}

/// A web service on VIP:80 over the topology's real servers with `weights`.
fn web(topo: &Topology, scheduler: &str, weights: &[u32]) -> Service {
    let mut s = Service::nat("web", &format!("{VIP}:80"), "tcp", scheduler);
    for (rs, &w) in topo.real_servers.iter().zip(weights) {
        s = s.real(rs.addr(HTTP_PORT), w);
    }
    s
}

/// Asserts every request succeeded; says which failed and shows rvsd's log.
fn assert_all_answered(results: &[Result<String, String>], rvsd: &Rvsd) {
    let failed: Vec<(usize, &String)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed; first: #{} {}\n--- rvsd log ---\n{}",
        failed.len(),
        results.len(),
        failed[0].0,
        failed[0].1,
        rvsd.log()
    );
}

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

/// Stops rvsd, asserting a clean exit; returns the `stats:` JSON.
fn stop(mut rvsd: Rvsd) -> serde_json::Value {
    let stopped = rvsd.stop(STOP);
    assert!(!stopped.killed, "rvsd ignored SIGTERM\n{}", stopped.log);
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    stopped.stats()
}

#[test]
fn nat_round_robin_splits_requests_evenly() {
    let started = Instant::now();
    let topo = Topology::nat(3);
    let rvsd = topo.start_rvsd(1, &[web(&topo, "rr", &[1, 1, 1])]);

    let results = curls(&topo, 60);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    let expected: BTreeMap<String, usize> = [("rs1", 20), ("rs2", 20), ("rs3", 20)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    assert_eq!(
        counts, expected,
        "rr with one worker splits 60 requests 20/20/20"
    );

    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "web") >= 60);
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
    assert_eq!(vs["scheduler"], "rr", "{list}");
    assert_eq!(vs["forward"], "nat", "{list}");
    let rss = listed_real_servers(&list, "web");
    assert_eq!(rss.len(), 3, "{list}");
    for (rs, listed) in topo.real_servers.iter().zip(rss) {
        assert_eq!(listed["address"], rs.addr(HTTP_PORT), "{list}");
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
        assert_eq!(listed["conns"], 20, "{} conns: {list}", rs.name);
        // Each HTTP exchange is several packets each way.
        for key in ["packets_in", "packets_out", "bytes_in", "bytes_out"] {
            assert!(
                listed[key].as_u64().unwrap_or(0) >= 20 * 3,
                "real server {} `{key}` too small for 20 connections: {list}",
                rs.name
            );
        }
    }

    let stats = stop(rvsd);
    assert_eq!(counter(&stats, "total.conns_created"), 60, "{stats}");
    eprintln!(
        "nat_round_robin_splits_requests_evenly took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn nat_with_two_workers_on_a_device_without_rss() {
    let started = Instant::now();
    let topo = Topology::nat(3);
    let rvsd = topo.start_rvsd(2, &[web(&topo, "rr", &[1, 1, 1])]);

    let results = curls(&topo, 40);
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

    let stats = stop(rvsd);
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
    let mut topo = Topology::nat(1);
    topo.start_udp_echo();
    let rs1 = topo.real_servers[0].addr(netns::UDP_ECHO_PORT);
    let dns = Service::nat("dns", &format!("{VIP}:53"), "udp", "rr").real(rs1, 1);
    let rvsd = topo.start_rvsd(1, &[dns]);

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
    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "dns") >= 1);
    assert_eq!(
        listed_real_servers(&list, "dns")[0]["conns"],
        1,
        "one flow: {list}"
    );

    let stats = stop(rvsd);
    assert!(counter(&stats, "total.forwarded") >= 40, "{stats}");
    eprintln!(
        "udp_through_nat_is_answered took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn wrr_3_2_1_split() {
    let started = Instant::now();
    let topo = Topology::nat(3);
    let rvsd = topo.start_rvsd(1, &[web(&topo, "wrr", &[3, 2, 1])]);

    let results = topo.http_get_many(&format!("{VIP}:80"), "/", 600);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    let expected: BTreeMap<String, usize> = [("rs1", 300), ("rs2", 200), ("rs3", 100)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    assert_eq!(counts, expected, "wrr 3:2:1 over 600 requests");
    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "web") >= 600);
    let conns = listed_conns(&list, "web");
    assert_eq!(
        conns.values().copied().collect::<Vec<_>>(),
        vec![300, 200, 100],
        "{conns:?}"
    );

    let _ = stop(rvsd);
    eprintln!(
        "wrr_3_2_1_split took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn nat_large_download_arrives_intact() {
    let started = Instant::now();
    let topo = Topology::nat(1);
    let rvsd = topo.start_rvsd(1, &[web(&topo, "rr", &[1])]);

    let path = format!("/{}", netns::BIG_FILE);
    let got = topo
        .download(&format!("{VIP}:80"), &path, Duration::from_secs(20))
        .unwrap_or_else(|out| panic!("download failed: {out}\n--- rvsd log ---\n{}", rvsd.log()));
    let want = netns::big_file_bytes();
    assert_eq!(got.len(), want.len(), "downloaded length");
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "downloaded bytes differ from the served file"
    );

    let stats = stop(rvsd);
    let drops = support::drops(&stats);
    let dropped: u64 = drops.values().sum();
    // IPv6 is off and nothing else talks: a clean transfer drops nothing
    // but the odd ARP for an address that is not rvsd's.
    assert_eq!(
        dropped,
        drops.get("arp_not_for_us").copied().unwrap_or(0),
        "drops during a clean transfer: {drops:?}"
    );
    eprintln!(
        "nat_large_download_arrives_intact took {:.1} s ({} bytes)",
        started.elapsed().as_secs_f64(),
        want.len()
    );
}

#[test]
fn management_path_reaches_real_servers_beside_rvsd() {
    let started = Instant::now();
    let topo = Topology::nat_with_management(2);
    let rvsd = topo.start_rvsd(1, &[web(&topo, "rr", &[1, 1])]);

    // The lb namespace's kernel reaches each real server directly.
    for rs in &topo.real_servers {
        let url = format!("http://{}/", rs.addr(HTTP_PORT));
        let out = topo
            .lb
            .run("curl", &["-s", "-m", "5", &url], Duration::from_secs(10));
        assert!(
            out.success() && out.stdout == format!("{}\n", rs.name),
            "management path to {}: {out}",
            rs.name
        );
    }
    // And the data plane still balances beside it.
    let results = curls(&topo, 4);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    assert_eq!(counts.get("rs1"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("rs2"), Some(&2), "{counts:?}");
    let _ = stop(rvsd);
    eprintln!(
        "management_path_reaches_real_servers_beside_rvsd took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
