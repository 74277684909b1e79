#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! The soak (issue 17): the real rvsd in the NAT topology with a
//! management link, four nginx real servers health-checked over HTTP, a
//! TCP and a UDP service, and a small connection table (4,096), under a
//! client load of about 100 requests a second for `RVS_SOAK_SECS` (120 by
//! default; the manual run in `docs/operations.md` uses 1800), while every
//! 6-second cycle:
//!
//! - kills one real server's nginx (in turn) and restarts it 3.5 s later;
//! - reloads the file with other weights (and every third cycle a changed
//!   health-check interval, which a reload applies on its own);
//! - floods the UDP service for 2 s with spoofed datagrams from random
//!   sources (`tests/netns/flood.c`, 5,000 a second: the table of 4,096
//!   turns over).
//!
//! Asserted: rvsd never stops and exits 0 on SIGTERM; no request fails
//! outside a detection window (from a kill to `fall x interval +
//! interval + timeout + margin` after it); every reload is accepted; and
//! at the end, once the load stopped and the short timeouts ran out, the
//! table's connections, the mbufs in use and rvsd's resident memory are
//! back to their baseline (taken after the first cycle: memory by at most
//! 8 MiB), and at most one new flow in 10,000 evictions refused for want
//! of a victim (`table_full`). Figures are printed as a `RESULT soak` line:
//! `cargo test --test e2e_soak -- --nocapture 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::cases::took;
use netns::flood::{self, Flood};
use netns::{
    heavy, result_line, stop_rvsd, unix_seconds, LoadRequest, Service, Topology, HTTP_PORT,
    UDP_ECHO_PORT, VIP,
};
use std::time::{Duration, Instant, SystemTime};

/// Health checks: as in e2e_failover.
const INTERVAL_MS: u64 = 500;
const TIMEOUT_MS: u64 = 300;
const RISE: u32 = 2;
const FALL: u32 = 2;
/// Allowance for the control loop's tick and the machine's noise.
const MARGIN_MS: u64 = 700;
/// One cycle of faults.
const CYCLE: Duration = Duration::from_secs(6);
/// A killed server is restarted this long after its kill.
const DOWN_FOR: Duration = Duration::from_millis(3500);
/// Each flood burst.
const BURST: Duration = Duration::from_secs(2);
const BURST_PPS: u64 = 5_000;
/// The table, small so that the bursts fill it.
const TABLE: u32 = 4096;
/// rvsd's resident memory may end this much above its baseline.
const RSS_SLACK_KB: u64 = 8 * 1024;

fn soak_secs() -> u64 {
    std::env::var("RVS_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

/// From a kill to the end of the window where failures are expected.
fn detect_bound() -> Duration {
    Duration::from_millis(u64::from(FALL) * INTERVAL_MS + INTERVAL_MS + TIMEOUT_MS + MARGIN_MS)
}

fn web(topo: &Topology, weights: &[u32], interval_ms: u64) -> Service {
    let mut s = Service::nat("web", &format!("{VIP}:80"), "tcp", "wrr")
        .health_check(Some("http"))
        .health_timing(interval_ms, TIMEOUT_MS, RISE, FALL)
        .health_setting("http_path", "\"/\"")
        .health_setting("http_expect_status", "200");
    for (rs, &w) in topo.real_servers.iter().zip(weights) {
        s = s.real(rs.addr(HTTP_PORT), w);
    }
    s
}

fn dns(topo: &Topology) -> Service {
    let mut s = Service::nat("dns", &format!("{VIP}:53"), "udp", "rr");
    for rs in &topo.real_servers {
        s = s.real(rs.addr(UDP_ECHO_PORT), 1);
    }
    s
}

/// rvsd's resident set, kB (`VmRSS`).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What `rvsadm --json stats` says of the table and the buffers.
struct Gauges {
    connections: u64,
    mbufs_in_use: u64,
    evicted: u64,
    refused: u64,
}

fn gauges(topo: &Topology) -> Gauges {
    let s = topo.rvsadm_json("stats");
    let total = &s["total"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    Gauges {
        connections: n(&total["connections"]),
        mbufs_in_use: s["mempools"]
            .as_array()
            .map_or(0, |p| p.iter().map(|p| n(&p["in_use"])).sum()),
        evicted: n(&total["conns_evicted_udp"]) + n(&total["conns_evicted_unproven_tcp"]),
        refused: n(&total["drops"]["table_full"]),
    }
}

/// The connections rvsd holds, counted by protocol, state and real
/// server, with their longest time left: what did not expire.
fn conn_states(topo: &Topology) -> String {
    let out = topo.rvsadm(&["--json", "conns", "--limit", "5000"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let mut by: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
    for c in doc["connections"].as_array().into_iter().flatten() {
        let key = format!(
            "{} {} -> {}",
            c["protocol"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["real_server"].as_str().unwrap_or("?")
        );
        let e = by.entry(key).or_default();
        e.0 += 1;
        e.1 = e.1.max(c["expires_in_s"].as_i64().unwrap_or(0));
    }
    format!("{by:?}")
}

/// Waits until `done` holds (polling every 500 ms), at most `limit`.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn soak_under_kills_reloads_and_floods() {
    let _heavy = heavy();
    let started = Instant::now();
    assert!(
        netns::have("nginx"),
        "the soak kills and restarts nginx real servers: install nginx"
    );
    let secs = soak_secs();
    let mut topo = Topology::nat_with_management(4);
    topo.conn_table_size = TABLE;
    topo.metrics_listen = Some(format!("127.0.0.1:{}", 21000 + std::process::id() % 20000));
    // Short timeouts, so that the table empties within the test once the
    // load stops.
    topo.extra_toml = "[timeouts]\ntcp_established_s = 20\ntcp_fin_wait_s = 2\n\
                       tcp_time_wait_s = 2\n                       tcp_syn_s = 3\nudp_s = 3"
        .to_string();
    topo.start_udp_echo();
    let exe = flood::build(&topo);
    let mut rvsd = topo.start_rvsd(1, &[web(&topo, &[1, 1, 1, 1], INTERVAL_MS), dns(&topo)]);
    let pid = rvsd.pid();

    let load = topo.start_load(4, Duration::from_millis(40), Duration::from_secs(5), {
        Duration::from_secs(secs + 60)
    });
    let mut kills: Vec<(f64, f64)> = Vec::new();
    let mut reloads = 0usize;
    let mut flood_sent = 0u64;
    let mut flood_rate: f64 = 0.0;
    let mut baseline: Option<(u64, u64)> = None;
    let mut peak_conns = 0u64;
    let mut peak_rss = 0u64;
    let soak_until = Instant::now() + Duration::from_secs(secs);
    let mut cycle = 0usize;
    while Instant::now() < soak_until {
        let t0 = Instant::now();
        let victim = cycle % topo.real_servers.len();
        let killed_at = unix_seconds(topo.kill_http(victim));

        // A reload with other weights (every third a changed interval).
        std::thread::sleep(Duration::from_millis(500));
        let weights: Vec<u32> = (0..4).map(|i| 1 + ((i + cycle) % 3) as u32).collect();
        let interval = if cycle % 3 == 2 { 400 } else { INTERVAL_MS };
        topo.write_rvsd_config(1, &[web(&topo, &weights, interval), dns(&topo)]);
        let out = topo.rvsadm(&["reload"]);
        assert!(
            out.success(),
            "reload {cycle} refused: {out}\n--- rvsd log ---\n{}",
            rvsd.log()
        );
        reloads += 1;

        // A flood burst.
        let burst = Flood::start(&topo, &exe, "udp", 53, BURST, BURST_PPS);
        let (sent, rate) = burst.finish();
        flood_sent += sent;
        flood_rate = flood_rate.max(rate);
        let g = gauges(&topo);
        peak_conns = peak_conns.max(g.connections);
        peak_rss = peak_rss.max(rss_kb(pid));
        assert!(
            g.connections <= u64::from(TABLE),
            "the table holds {} > {TABLE}",
            g.connections
        );

        let restart_in = DOWN_FOR.saturating_sub(t0.elapsed());
        std::thread::sleep(restart_in);
        topo.restart_http(victim);
        kills.push((killed_at, unix_seconds(SystemTime::now())));
        assert!(
            topo.apps_alive(),
            "a real server or client died\n{}",
            topo.app_logs()
        );
        std::thread::sleep(CYCLE.saturating_sub(t0.elapsed()));
        if baseline.is_none() {
            // After one whole cycle: every page the run touches is mapped.
            baseline = Some((rss_kb(pid), g.mbufs_in_use));
        }
        cycle += 1;
    }
    let reqs = load.stop();
    let (base_rss, base_mbufs) = baseline.expect("at least one cycle");
    // An idle rvsd's table: the health checks go through the kernel's
    // management link, not through rvsd.
    let base_conns = 0u64;

    // Failures outside a detection window: from a kill to detect_bound
    // after it (the restart comes later; a restarted nginx answers at
    // once, and its server is scheduled again only once up).
    let window = detect_bound().as_secs_f64();
    let excused = |r: &LoadRequest| {
        kills
            .iter()
            .any(|&(kill, _)| r.start >= kill - 0.05 && r.start <= kill + window)
    };
    let failed: Vec<&LoadRequest> = reqs.iter().filter(|r| !r.ok).collect();
    let unexcused: Vec<&&LoadRequest> = failed.iter().filter(|r| !excused(r)).collect();

    // Back to the baseline once the short timeouts have run out.
    let mut end = gauges(&topo);
    let settled = wait_until(Duration::from_secs(30), || {
        end = gauges(&topo);
        end.connections <= base_conns + 8 && end.mbufs_in_use <= base_mbufs
    });
    let end_rss = rss_kb(pid);
    let alive = rvsd.try_status().is_none();
    result_line(&format!(
        "soak: {secs} s, {cycle} cycles ({} kills and restarts, {reloads} reloads, \
         {} flood bursts: {flood_sent} spoofed datagrams, up to {flood_rate:.0} pps); \
         {} requests, {} failed ({} in detection windows, {} outside); \
         table peak {peak_conns} of {TABLE}, {} evicted, {} refused; \
         at the end {} connections (baseline {base_conns}), mbufs in use {} (baseline {base_mbufs}), \
         rvsd RSS {end_rss} kB (baseline {base_rss} kB, peak {peak_rss} kB)",
        kills.len(),
        cycle,
        reqs.len(),
        failed.len(),
        failed.len() - unexcused.len(),
        unexcused.len(),
        end.evicted,
        end.refused,
        end.connections,
        end.mbufs_in_use,
    ));
    assert!(alive, "rvsd stopped\n{}", rvsd.log());
    assert!(
        unexcused.is_empty(),
        "{} requests failed outside the detection windows: {:?}\n--- rvsd log ---\n{}",
        unexcused.len(),
        unexcused.iter().take(10).collect::<Vec<_>>(),
        rvsd.log()
    );
    assert!(
        reqs.len() as u64 >= secs * 30,
        "only {} requests in {secs} s: the load did not run",
        reqs.len()
    );
    assert!(
        settled,
        "not back to the baseline: {} connections (baseline {base_conns}), {} mbufs in use \
         (baseline {base_mbufs}); connections left by state: {}",
        end.connections,
        end.mbufs_in_use,
        conn_states(&topo)
    );
    assert!(
        end_rss <= base_rss + RSS_SLACK_KB,
        "rvsd's memory grew: {end_rss} kB at the end, {base_rss} kB after the first cycle"
    );
    // The table sheds unprotected entries before it refuses anyone, with
    // a bounded search per insert: a refusal is a new flow (almost all
    // of them spoofed) for which that search found no victim. A 30-minute
    // run met 21 in 1.87 M evictions (none a client's request) while the
    // search's fallback read only the new key's home bucket; it now reads
    // the buckets within reach. More than 1 in 10,000 is a regression.
    assert!(
        end.refused * 10_000 <= end.evicted.max(1),
        "{} new flows refused (table_full) against {} evictions",
        end.refused,
        end.evicted
    );
    let _ = stop_rvsd(rvsd);
    took("soak_under_kills_reloads_and_floods", started);
}
