#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! Bounds against a running rvsd (issue 17): what `rvsadm stats` and the
//! metrics say about the fixed resources (mbufs in use, connection table
//! fill, the neighbour queue), and what a reload does with more real
//! servers than the stats cells first had room for and with settings it
//! cannot apply.
//!
//! The NAT topology of `tests/netns` with two real servers, one worker
//! that sleeps when idle. The figures are printed past the output
//! capture: `cargo test --test e2e_bounds 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{listed_real_servers, result_line, stop_rvsd, Service, Topology, HTTP_PORT, VIP};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// Real servers a reload adds before the one that takes the traffic:
/// beyond the 1,024 the stats cells used to keep for reloads.
const ADDED: u16 = 1100;

fn metrics_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    23000 + (std::process::id() % 20000) as u16 + NEXT.fetch_add(1, Ordering::Relaxed)
}

fn topology() -> Topology {
    support::require_root("e2e_bounds");
    let mut topo = Topology::nat(2);
    topo.metrics_listen = Some(format!("127.0.0.1:{}", metrics_port()));
    topo
}

/// `n` sequential requests to the VIP; the number answered.
fn requests(topo: &Topology, n: usize) -> usize {
    (0..n)
        .filter(|_| topo.curl(&format!("{VIP}:80"), "/").success())
        .count()
}

/// The value of the metric line starting with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn stats_and_metrics_show_mbufs_in_use_table_fill_and_the_neighbour_queue() {
    let topo = topology();
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1])]);
    assert_eq!(requests(&topo, 10), 10);
    std::thread::sleep(Duration::from_millis(300));

    let stats = topo.rvsadm_json("stats");
    let total = &stats["total"];
    let capacity = u64::from(topo.conn_table_size);
    assert_eq!(total["conn_capacity"], capacity, "{stats}");
    let conns = total["connections"].as_u64().unwrap();
    let fill = total["conn_fill"].as_f64().unwrap();
    assert!(
        (fill - conns as f64 / capacity as f64).abs() < 1e-9,
        "{stats}"
    );
    assert!(
        total["neighbor_queue_capacity"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(
        total["neighbor_queue_frames"], 0,
        "every neighbour resolved: {stats}"
    );
    let pool = &stats["mempools"][0];
    assert_eq!(pool["name"], "rvs_mbufs", "{stats}");
    let (size, in_use) = (
        pool["size"].as_u64().unwrap(),
        pool["in_use"].as_u64().unwrap(),
    );
    // Idle, af_packet holds no buffer (it allocates one per frame
    // received), and a leak would show here.
    assert!(in_use < size / 2, "{stats}");

    let text = topo.metrics();
    assert_eq!(
        metric(&text, "rvs_mempool_mbufs{pool=\"rvs_mbufs\"}"),
        Some(size as f64),
        "{text}"
    );
    assert_eq!(
        metric(&text, "rvs_mempool_mbufs_in_use{pool=\"rvs_mbufs\"}"),
        Some(in_use as f64),
        "{text}"
    );
    assert_eq!(
        metric(&text, "rvs_worker_conn_table_capacity{lcore=\"1\"}"),
        Some(capacity as f64),
        "{text}"
    );
    assert!(
        metric(&text, "rvs_worker_neighbor_queue_capacity{lcore=\"1\"}").is_some(),
        "{text}"
    );
    result_line(&format!(
        "bounds stats: mbufs in use {in_use} of {size}, connections {conns} of {capacity}"
    ));
    stop_rvsd(rvsd);
}

#[test]
fn a_reload_adding_1100_servers_keeps_every_servers_counters_and_names_what_it_cannot_apply() {
    let topo = topology();
    let rs1 = topo.real_servers[0].addr(HTTP_PORT);
    let rs2 = topo.real_servers[1].addr(HTTP_PORT);
    let first = Service::nat("web", &format!("{VIP}:80"), "tcp", "wrr").real(rs1.clone(), 1);
    let rvsd = topo.start_rvsd(1, &[first]);
    assert_eq!(requests(&topo, 3), 3);

    // rs1 drained, 1,100 servers at weight 0 (closed ports of rs2's
    // address), then rs2 at index 1,101: all new traffic goes there.
    let mut grown = Service::nat("web", &format!("{VIP}:80"), "tcp", "wrr").real(rs1, 0);
    let rs2_ip = rs2.split(':').next().unwrap().to_string();
    for i in 0..ADDED {
        grown = grown.real(format!("{rs2_ip}:{}", 20000 + i), 0);
    }
    grown = grown.real(rs2.clone(), 1);
    // And a new table size, which a reload cannot apply.
    topo.write_rvsd_config(1, &[grown]);
    let path = topo.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replace(
        &format!("conn_table_size = {}", topo.conn_table_size),
        &format!("conn_table_size = {}", 2 * topo.conn_table_size),
    );
    std::fs::write(&path, changed).unwrap();

    let out = topo.rvsadm(&["reload"]);
    assert!(out.success(), "{out}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("dataplane.conn_table_size:") && said.contains("not applied"),
        "{said}"
    );
    assert!(
        rvsd.wait_for_log("reload: dataplane.conn_table_size", Duration::from_secs(5)),
        "{}",
        rvsd.log()
    );

    assert_eq!(requests(&topo, 5), 5);
    let list = topo.rvsadm_list_until(Duration::from_secs(3), |l| {
        listed_real_servers(l, "web")
            .iter()
            .any(|rs| rs["address"] == rs2.as_str() && rs["conns"] == 5)
    });
    let servers = listed_real_servers(&list, "web");
    assert_eq!(servers.len(), usize::from(ADDED) + 2);
    let last = &servers[usize::from(ADDED) + 1];
    assert_eq!(last["address"], rs2.as_str());
    assert_eq!(last["conns"], 5, "{last}");
    result_line(&format!(
        "bounds reload: {} real servers, the last one's conns {}",
        servers.len(),
        last["conns"]
    ));
    stop_rvsd(rvsd);
}
