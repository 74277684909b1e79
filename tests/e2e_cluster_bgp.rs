#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! The BGP/ECMP half of the active-active cluster (issue 20), without rvsd:
//! the cluster topology of `tests/netns/cluster.rs` (a router and three
//! nodes, each with bird2 running the repo's `dpdk-config/bird-*.conf`),
//! and a stand-in for rvsd's announcer: the test creates each node's
//! liveness TUN interface `rvs-live` itself and writes the include file
//! bird reads, as rvsd does.
//!
//! It proves what the cluster's failover rests on:
//! - each node's bird2 starts before the include file exists, then
//!   announces the VIP with the node's data address as next hop, and the
//!   router installs one multipath route with all three;
//! - deleting a node's liveness interface (what the kernel does when rvsd
//!   dies, even by kill -9) removes that next hop from the router's route
//!   (`RESULT cluster_bgp withdraw_ms=...`), and recreating it brings it
//!   back;
//! - taking the interface down (what `rvsadm drain` may do) withdraws too;
//! - a node cut from the management LAN (a dead box) is removed by BFD
//!   (3 x 100 ms).
//!
//! `cargo test --test e2e_cluster_bgp 2>&1 | grep RESULT` prints the
//! figures. Skipped (passing, with a message) when bird2 is not installed.

mod netns;
mod support;

use netns::cluster::{
    node_data_ip, parse_route_events, ClusterTopology, CLUSTER_VIP, LIVENESS_DEV,
};
use netns::{have, result_line, unix_seconds};
use std::time::{Duration, Instant, SystemTime};

/// Bound on BGP sessions coming up (connect delay 1 s, retry 5 s).
const SESSION_UP: Duration = Duration::from_secs(20);
/// Bound on a route change reaching the router's kernel.
const ROUTE_CHANGE: Duration = Duration::from_secs(5);

fn bird_missing() -> bool {
    if have("bird") && have("birdc") {
        return false;
    }
    eprintln!("SKIPPED: bird2 is not installed (apt-get install bird2; scripts/setup does)");
    true
}

/// Now, as Unix seconds (the route monitor's clock).
fn now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// Milliseconds from `t0` to `t` (Unix seconds), or `never`.
fn ms_since(t0: f64, t: Option<f64>) -> String {
    t.map(|t| format!("{:.1}", (t - t0) * 1e3))
        .unwrap_or_else(|| "never".into())
}

#[test]
fn route_monitor_output_parses_into_changes() {
    let text = "[2026-12-03T22:38:45.682864] 10.0.100.100 \n\
                \tnexthop via 10.0.0.11 dev d0 weight 1 \n\
                \tnexthop via 10.0.0.13 dev d0 weight 1 \n\
                [2026-12-03T22:38:45.889980] 10.0.100.100 via 10.0.0.11 dev d0 \n\
                [2026-12-03T22:38:46.096749] Deleted 10.0.100.100 via 10.0.0.11 dev d0 \n";
    let e = parse_route_events(text);
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].gateways, ["10.0.0.11", "10.0.0.13"]);
    assert!(!e[0].deleted && e[2].deleted);
    assert_eq!(e[1].dst, "10.0.100.100");
    // 2026-12-03T00:00:00Z is 1796256000 (`date -ud 2026-12-03 +%s`).
    let midnight = 1_796_256_000.0;
    assert!((e[0].at - (midnight + 22.0 * 3600.0 + 38.0 * 60.0 + 45.682864)).abs() < 1e-3);
}

#[test]
fn liveness_interface_drives_the_routers_ecmp_route() {
    if bird_missing() {
        return;
    }
    support::require_root("the cluster topology");
    let cluster = ClusterTopology::build(3, 3, 0);
    let started = Instant::now();
    for i in 1..=3 {
        cluster.wait_session(i, SESSION_UP);
    }
    cluster.router_bird().wait_established(3, SESSION_UP);
    result_line(&format!(
        "cluster_bgp sessions_up_ms={:.0}",
        started.elapsed().as_secs_f64() * 1e3
    ));
    assert!(
        cluster.next_hops(CLUSTER_VIP).is_empty(),
        "no node announces yet, but the router has {}",
        cluster.route_text(CLUSTER_VIP)
    );

    // Every node announces: one multipath route with the three data
    // addresses.
    let t = Instant::now();
    for i in 1..=3 {
        cluster.standin_announce(i, &[CLUSTER_VIP]);
    }
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[1, 2, 3], t, ROUTE_CHANGE);
    eprintln!("router: {}", cluster.route_text(CLUSTER_VIP));
    result_line(&format!(
        "cluster_bgp announce_ms={:.0}",
        took.as_secs_f64() * 1e3
    ));

    // rvsd's death: the kernel deletes its TUN interface. Timed by the
    // router's route monitor (to the microsecond) and by polling.
    let monitor = cluster.start_route_monitor();
    let t0 = now();
    let at = cluster.delete_liveness(2);
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[1, 3], at, ROUTE_CHANGE);
    let seen = monitor.wait_lost(CLUSTER_VIP, &node_data_ip(2), t0, ROUTE_CHANGE);
    result_line(&format!(
        "cluster_bgp withdraw_ms={} withdraw_poll_ms={:.1} (interface deleted)",
        ms_since(t0, seen),
        took.as_secs_f64() * 1e3
    ));

    // rvsd back: the interface again, the same include file.
    let at = Instant::now();
    cluster.standin_announce(2, &[CLUSTER_VIP]);
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[1, 2, 3], at, ROUTE_CHANGE);
    result_line(&format!(
        "cluster_bgp reannounce_ms={:.1}",
        took.as_secs_f64() * 1e3
    ));

    // The interface down (drain): withdrawn; up again: back.
    let t0 = now();
    let at = Instant::now();
    cluster.node(1).ns.run_ok(
        "ip",
        &["link", "set", LIVENESS_DEV, "down"],
        Duration::from_secs(5),
    );
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[2, 3], at, ROUTE_CHANGE);
    let seen = monitor.wait_lost(CLUSTER_VIP, &node_data_ip(1), t0, ROUTE_CHANGE);
    result_line(&format!(
        "cluster_bgp link_down_withdraw_ms={} link_down_withdraw_poll_ms={:.1}",
        ms_since(t0, seen),
        took.as_secs_f64() * 1e3
    ));
    cluster.node(1).ns.link_up(LIVENESS_DEV);
    cluster.expect_next_hops(CLUSTER_VIP, &[1, 2, 3], Instant::now(), ROUTE_CHANGE);

    // A dead box: node 3 cut from the management LAN; BFD (3 x 100 ms)
    // drops the session and its routes.
    // (BFD sessions come up a little after BGP's.)
    let peer = cluster.node(3).mgmt_ip.clone();
    let deadline = Instant::now() + SESSION_UP;
    loop {
        let sessions = cluster
            .router_bird()
            .birdc(&["show", "bfd", "sessions"])
            .stdout;
        if sessions
            .lines()
            .any(|l| l.contains(&peer) && l.contains(" Up "))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no BFD session up with {peer}:\n{sessions}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = now();
    let at = Instant::now();
    cluster.topo.switch.run_ok(
        "ip",
        &["link", "set", &cluster.node(3).mgmt_switch_dev, "down"],
        Duration::from_secs(5),
    );
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[1, 2], at, ROUTE_CHANGE);
    let seen = monitor.wait_lost(CLUSTER_VIP, &node_data_ip(3), t0, ROUTE_CHANGE);
    result_line(&format!(
        "cluster_bgp bfd_withdraw_ms={} bfd_withdraw_poll_ms={:.0}",
        ms_since(t0, seen),
        took.as_secs_f64() * 1e3
    ));
    assert!(
        took < Duration::from_millis(1500),
        "BFD (3 x 100 ms) should drop a cut node well within 1.5 s, took {took:?}"
    );
}

#[test]
fn a_node_without_its_include_file_announces_nothing() {
    if bird_missing() {
        return;
    }
    support::require_root("the cluster topology");
    let cluster = ClusterTopology::build(1, 1, 0);
    cluster.wait_session(1, SESSION_UP);
    // The liveness interface alone, no include file: nothing announced, and
    // `configure` still succeeds (the include is a glob).
    cluster.create_liveness(1);
    assert!(!cluster.node(1).include().exists());
    cluster.bird(1).configure();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        cluster.next_hops(CLUSTER_VIP).is_empty(),
        "{}",
        cluster.route_text(CLUSTER_VIP)
    );
    // A single node's route is a plain one-path route with its address.
    cluster.standin_announce_file_only(1, &[CLUSTER_VIP]);
    cluster.expect_next_hops(CLUSTER_VIP, &[1], Instant::now(), ROUTE_CHANGE);
}
