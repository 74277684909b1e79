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

use netns::cluster::{ClusterTopology, CLUSTER_VIP, LIVENESS_DEV};
use netns::{have, result_line};
use std::time::{Duration, Instant};

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

    // rvsd's death: the kernel deletes its TUN interface.
    let at = cluster.delete_liveness(2);
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[1, 3], at, ROUTE_CHANGE);
    result_line(&format!(
        "cluster_bgp withdraw_ms={:.1}",
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
    let at = Instant::now();
    cluster.node(1).ns.run_ok(
        "ip",
        &["link", "set", LIVENESS_DEV, "down"],
        Duration::from_secs(5),
    );
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[2, 3], at, ROUTE_CHANGE);
    result_line(&format!(
        "cluster_bgp link_down_withdraw_ms={:.1}",
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
    let at = Instant::now();
    cluster.topo.switch.run_ok(
        "ip",
        &["link", "set", &cluster.node(3).mgmt_switch_dev, "down"],
        Duration::from_secs(5),
    );
    let took = cluster.expect_next_hops(CLUSTER_VIP, &[1, 2], at, ROUTE_CHANGE);
    result_line(&format!(
        "cluster_bgp bfd_withdraw_ms={:.0}",
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
