#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end through FullNAT: `rvsd` on two `net_af_packet` ports, the
//! client and the real servers behind one router (see
//! `Topology::fullnat`), the kernel's TCP and UDP in the client and the
//! real servers, curl and nginx.
//!
//! ```text
//!   client 198.51.100.10 --- router --- [outside 203.0.113.2] rvsd
//!                              |  \------ [inside 10.1.0.1, LIP 10.1.0.100]
//!                              |
//!                             br0 --- rs1 10.2.0.21:8080, rs2, rs3 (default via the router)
//! ```
//!
//! The real servers reach the client directly through the router, never
//! through rvsd: a NAT reply (from the real server to the client) would
//! reach the client from the wrong address. Only FullNAT, whose replies go
//! to rvsd's local address, can work. The test: every real server answers
//! curl through the VIP, nginx logs the local address as its peer, UDP is
//! echoed from the VIP, `rvsadm` shows the method, the local address and
//! each connection's local end, and a real server killed mid-run is taken
//! out by the health checks while requests keep being answered.

mod netns;
mod support;

use netns::{
    count_answers, listed_real_servers, stop_rvsd, Method, Service, Topology, FULLNAT_LIP,
    UDP_ECHO_PORT,
};
use std::time::{Duration, Instant};
use support::counter;

/// `n` sequential curls to the topology's VIP: each answer's body, or the
/// failed command.
fn curls(topo: &Topology, n: usize) -> Vec<Result<String, String>> {
    (0..n)
        .map(|_| {
            let out = topo.curl(&topo.vip_host(), "/");
            if out.success() {
                Ok(out.stdout)
            } else {
                Err(out.to_string())
            }
        })
        .collect()
}

/// The health of each real server of `web`, by address.
fn healths(list: &serde_json::Value) -> Vec<String> {
    listed_real_servers(list, "web")
        .iter()
        .map(|rs| rs["health"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn fullnat_through_a_router_answers_from_every_real_server_and_survives_a_kill() {
    let started = Instant::now();
    let mut topo = Topology::fullnat(3);
    assert_eq!(topo.method, Method::FullNat);
    topo.start_udp_echo();
    let locals = format!("[\"{FULLNAT_LIP}\"]");
    let web = topo
        .web("rr", &[1, 1, 1])
        .setting("local_addresses", &locals)
        .health_check(Some("tcp"))
        .health_timing(300, 300, 1, 2);
    let mut dns = Service::new("dns", &format!("{}:53", topo.vip), "udp", "rr", "fullnat")
        .setting("local_addresses", &locals);
    for rs in &topo.real_servers {
        dns = dns.real(rs.addr(UDP_ECHO_PORT), 1);
    }
    let rvsd = topo.start_rvsd(1, &[web, dns]);
    let list = topo.rvsadm_list_until(Duration::from_secs(10), |l| {
        healths(l).iter().all(|h| h == "up")
    });
    assert!(healths(&list).iter().all(|h| h == "up"), "{list}");

    // Every real server answers, in turn.
    let results = curls(&topo, 30);
    let counts = count_answers(&results);
    assert!(
        !counts.contains_key("<failed>"),
        "requests failed: {results:?}\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    for rs in &topo.real_servers {
        assert_eq!(counts.get(&rs.name), Some(&10), "{counts:?}");
    }

    // The real servers saw rvsd's local address as the client.
    for rs in &topo.real_servers {
        let log = std::fs::read_to_string(rs.dir.join("access.log")).unwrap_or_default();
        let peers: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("GET / "))
            .filter_map(|l| l.split_whitespace().next())
            // The topology's own readiness check asks from inside.
            .filter(|&p| p != "127.0.0.1")
            .collect();
        assert!(!peers.is_empty(), "{}: no request logged", rs.name);
        assert!(
            peers.iter().all(|&p| p == FULLNAT_LIP),
            "{}: peers {peers:?}, expected {FULLNAT_LIP} only",
            rs.name
        );
    }

    // UDP: echoed from the VIP.
    let vip53 = format!("{}:53", topo.vip);
    let echoes = topo.udp_exchange(&topo.vip, 53, 5);
    assert!(
        echoes.iter().all(|e| e.as_deref() == Some(vip53.as_str())),
        "UDP echoes {echoes:?}, expected all from {vip53}"
    );

    // rvsadm shows the method, the local address and each connection's
    // local end.
    let list = topo.rvsadm_list();
    let vs = &list["virtual_servers"][0];
    assert_eq!(vs["forward"], "fullnat", "{list}");
    assert_eq!(vs["local_addresses"][0], FULLNAT_LIP, "{list}");
    let text = topo.rvsadm(&["list"]);
    assert!(text.stdout.contains("FullNat"), "{text}");
    let conns = topo.rvsadm_json("conns");
    let local = conns["connections"]
        .as_array()
        .and_then(|c| c.iter().find_map(|c| c["local"].as_str()))
        .unwrap_or_else(|| panic!("no connection shows its local end: {conns}"));
    assert!(local.starts_with(&format!("{FULLNAT_LIP}:")), "{conns}");

    // A real server killed mid-run: the health checks take it out, and the
    // clients' requests go on being answered by the others.
    topo.kill_http(1);
    let down = topo.rvsadm_list_until(Duration::from_secs(10), |l| healths(l)[1] == "down");
    assert_eq!(healths(&down)[1], "down", "{down}");
    let results = curls(&topo, 20);
    let counts = count_answers(&results);
    assert_eq!(counts.get("rs1").copied().unwrap_or(0), 10, "{counts:?}");
    assert_eq!(counts.get("rs3").copied().unwrap_or(0), 10, "{counts:?}");

    let stats = stop_rvsd(rvsd);
    assert_eq!(
        counter(&stats, "total.drops.local_ports_exhausted"),
        0,
        "{stats}"
    );
    eprintln!("fullnat e2e took {:.1} s", started.elapsed().as_secs_f64());
}
