#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! Priority groups end to end (issue 18): rvsd in the NAT topology with a
//! management link (the health checks' way to the real servers), five
//! nginx real servers, three primaries (priority 0, `min_active = 2`) and
//! two backups (`backup = true`), under a steady client load of short
//! requests, each on its own connection.
//!
//! ```text
//!   client --- rvsd --- br0 --- rs1 rs2 rs3  10.1.0.11-13:8080  priority 0, min_active 2
//!                              \- rs4 rs5     10.1.0.14-15:8080  backup (priority 1)
//! ```
//!
//! The primaries are killed one by one: after the first, the two left
//! keep the group's quorum and take every new connection; after the
//! second, the group is below its quorum and the backups take them all;
//! once a primary is back the group has its quorum again and new
//! connections move back. Idle keep-alive connections show that a move
//! leaves existing connections where they are, both ways. No request may
//! fail outside the detection windows (from a kill to rvsd's `is down`
//! line, which must come within `fall x interval + interval + timeout` and
//! a margin). Every figure is printed as a `RESULT priority ...` line:
//! `cargo test --test e2e_priority 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{
    heavy, ms_between, result_line, stop_rvsd, unix_seconds, LoadRequest, Service, Topology,
};
use netns::{HTTP_PORT, VIP};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// The health checks' settings.
const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 200;
const RISE: u32 = 2;
const FALL: u32 = 2;
/// Allowance for the control loop's tick and the log's way to us.
const MARGIN_MS: u64 = 300;

/// Longest allowed from a kill to the `is down` line.
fn detect_bound() -> Duration {
    Duration::from_millis(u64::from(FALL) * INTERVAL_MS + INTERVAL_MS + TIMEOUT_MS + MARGIN_MS)
}

/// The client load: 4 loops, each starting a request every 40 ms.
const LOAD_THREADS: u32 = 4;
const LOAD_INTERVAL: Duration = Duration::from_millis(40);
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
const LOAD_MAX: Duration = Duration::from_secs(50);
/// How long each phase is watched.
const PHASE: Duration = Duration::from_millis(1200);
/// Between rvsd's log line of a change and the snapshot reaching the
/// worker: requests started within it are not judged by the new rule.
const GRACE: Duration = Duration::from_millis(50);
/// Idle keep-alive connections held across each move.
const IDLE: usize = 6;

/// Answers per real server (failures under `<failed>`) of the requests
/// started in `[from, to)`.
fn split(reqs: &[LoadRequest], from: SystemTime, to: SystemTime) -> BTreeMap<String, usize> {
    let (from, to) = (unix_seconds(from), unix_seconds(to));
    let mut m = BTreeMap::new();
    for r in reqs.iter().filter(|r| r.start >= from && r.start < to) {
        let key = if r.ok {
            r.server.clone()
        } else {
            "<failed>".into()
        };
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

/// The first request started after `after` and answered by one of
/// `servers`: when it started.
fn first_answer_by(reqs: &[LoadRequest], after: SystemTime, servers: &[&str]) -> Option<f64> {
    let t = unix_seconds(after);
    reqs.iter()
        .filter(|r| r.ok && r.start >= t && servers.contains(&r.server.as_str()))
        .map(|r| r.start)
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.min(s))))
}

/// The servers idle connections were opened on (`open I PORT STATUS BODY`
/// lines of `idle_conns.py`).
fn idle_servers(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.starts_with("open "))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

fn only(split: &BTreeMap<String, usize>, allowed: &[&str]) -> bool {
    split.keys().all(|k| allowed.contains(&k.as_str()))
}

fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn primaries_below_their_quorum_hand_new_connections_to_the_backups_and_take_them_back() {
    let _heavy = heavy();
    let started = Instant::now();
    assert!(
        netns::have("nginx"),
        "this test kills and restarts nginx real servers: install nginx"
    );
    let mut topo = Topology::nat_with_management(5);
    topo.metrics_listen = Some(netns::metrics_listen(21000));
    let addrs: Vec<String> = topo
        .real_servers
        .iter()
        .map(|r| r.addr(HTTP_PORT))
        .collect();
    let names: Vec<String> = topo.real_servers.iter().map(|r| r.name.clone()).collect();
    let primaries = [names[0].as_str(), names[1].as_str(), names[2].as_str()];
    let backups = [names[3].as_str(), names[4].as_str()];
    let mut service = Service::nat("web", &format!("{VIP}:80"), "tcp", "rr")
        .health_check(Some("tcp"))
        .health_timing(INTERVAL_MS, TIMEOUT_MS, RISE, FALL)
        .table("priority_group", &[("priority", "0"), ("min_active", "2")]);
    for a in &addrs {
        service = service.real(a.clone(), 1);
    }
    for a in &addrs[3..] {
        service = service.real_setting(a, "backup", "true");
    }
    let rvsd = topo.start_rvsd(1, &[service]);
    let to_backups = "priority group 0 -> 1";
    let to_primaries = "priority group 1 -> 0";

    let load = topo.start_load(LOAD_THREADS, LOAD_INTERVAL, LOAD_TIMEOUT, LOAD_MAX);
    let t0 = SystemTime::now();
    std::thread::sleep(PHASE);
    let t1 = SystemTime::now();
    let warm = split(&load.requests(), t0 - Duration::from_secs(5), t1);
    assert!(
        only(&warm, &primaries) && warm.len() == 3,
        "the three primaries alone serve at first: {warm:?}"
    );

    // First kill: two primaries left, the quorum holds.
    let downs = rvsd.log_count("is down");
    let kill1 = topo.kill_http(0);
    let down1 = rvsd.expect_log_count(
        &format!("real server {} (web) is down", addrs[0]),
        0,
        Duration::from_secs(10),
    );
    let detect1 = ms_between(kill1, down1);
    assert!(rvsd.log_count("is down") > downs);
    std::thread::sleep(PHASE);
    let t2 = SystemTime::now();
    let one_down = split(&load.requests(), down1 + GRACE, t2);
    assert!(
        only(&one_down, &primaries[1..]) && one_down.len() == 2,
        "after the first kill, the two primaries left serve: {one_down:?}\n{}",
        rvsd.log()
    );
    assert_eq!(rvsd.log_count(to_backups), 0, "{}", rvsd.log());
    // Keep-alive connections on the primaries, across the move to the backups.
    let idle_primaries = topo.start_idle_conns(IDLE);
    let on_primaries = idle_servers(&idle_primaries.log_text());

    // Second kill: one primary left, below min_active 2: the backups serve.
    let kill2 = topo.kill_http(1);
    let down2 = rvsd.expect_log_count(
        &format!("real server {} (web) is down", addrs[1]),
        0,
        Duration::from_secs(10),
    );
    let switched = rvsd.expect_log_count(to_backups, 0, Duration::from_secs(5));
    let detect2 = ms_between(kill2, down2);
    let switch_line = rvsd.last_log_line(to_backups);
    std::thread::sleep(PHASE);
    let t3 = SystemTime::now();
    let reqs = load.requests();
    let failover_ms = first_answer_by(&reqs, kill2, &backups)
        .map(|s| s * 1e3 - unix_seconds(kill2) * 1e3)
        .expect("a backup answered after the second kill");
    let two_down = split(&reqs, switched + GRACE, t3);
    assert!(
        only(&two_down, &backups) && two_down.len() == 2,
        "below the quorum, the two backups alone serve: {two_down:?}\n{}",
        rvsd.log()
    );
    let list = topo.rvsadm_list();
    let vs = &list["virtual_servers"][0];
    assert_eq!(vs["active_priority"], 1, "{list}");
    assert_eq!(vs["priority_changes"], 1, "{list}");
    assert_eq!(vs["real_servers"][3]["priority"], 1, "{list}");
    assert_eq!(vs["real_servers"][2]["health"], "up", "{list}");
    let human = topo.rvsadm(&["-Ln"]);
    assert!(human.stdout.contains("priority-group 1 ("), "{human}");
    let metrics = topo.metrics();
    assert_eq!(
        metric(
            &metrics,
            "rvs_virtual_server_active_priority",
            "virtual_server=\"web\""
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "rvs_real_server_priority",
            &format!("real_server=\"{}\"", addrs[4])
        ),
        Some(1.0)
    );
    // The primary still live kept its connections; the killed one's died.
    let verdict = idle_primaries.ask_again(Duration::from_secs(20));
    let on_rs3 = on_primaries.iter().filter(|s| *s == primaries[2]).count();
    assert_eq!(
        verdict.ok, on_rs3,
        "idle connections on {} live on after the move to the backups (opened on {on_primaries:?}): {verdict:?}",
        primaries[2]
    );
    // Keep-alive connections on the backups, across the move back.
    let idle_backups = topo.start_idle_conns(IDLE);
    let on_backups = idle_servers(&idle_backups.log_text());
    assert!(
        on_backups.iter().all(|s| backups.contains(&s.as_str())),
        "new keep-alive connections went to the backups: {on_backups:?}"
    );

    // Restore both: the first back gives group 0 its quorum again.
    let restored = SystemTime::now();
    topo.restart_http(0);
    topo.restart_http(1);
    let moved_back = rvsd.expect_log_count(to_primaries, 0, Duration::from_secs(10));
    let back_line = rvsd.last_log_line(to_primaries);
    std::thread::sleep(PHASE);
    let t4 = SystemTime::now();
    let reqs = load.requests();
    let moveback_ms = first_answer_by(&reqs, restored, &primaries)
        .map(|s| s * 1e3 - unix_seconds(restored) * 1e3)
        .expect("a restored primary answered");
    let restored_split = split(&reqs, moved_back + GRACE, t4);
    assert!(
        only(&restored_split, &primaries),
        "after the move back, the primaries alone take new connections: {restored_split:?}"
    );
    let verdict = idle_backups.ask_again(Duration::from_secs(20));
    assert_eq!(
        (verdict.ok, verdict.resets),
        (IDLE, 0),
        "keep-alive connections on the backups answer after the move back: {verdict:?}"
    );

    let reqs = load.stop();
    // Failures only between a kill and its detection.
    let windows = [(kill1, down1), (kill2, down2)];
    let stray: Vec<&LoadRequest> = reqs
        .iter()
        .filter(|r| {
            !r.ok
                && !windows
                    .iter()
                    .any(|(k, d)| r.start < unix_seconds(*d) && r.end >= unix_seconds(*k))
        })
        .collect();
    let failed_in_windows = reqs.iter().filter(|r| !r.ok).count() - stray.len();
    let changes = topo.rvsadm_list()["virtual_servers"][0]["priority_changes"].clone();
    result_line(&format!(
        "priority phases: all up {warm:?}; rs1 killed {one_down:?}; rs1+rs2 killed {two_down:?}; \
         restored {restored_split:?}"
    ));
    result_line(&format!(
        "priority detect_ms kill1={detect1:.0} kill2={detect2:.0} (bound {} ms); failover \
         kill-to-first-backup-answer={failover_ms:.0} ms; move back \
         restore-to-first-primary-answer={moveback_ms:.0} ms; priority_changes={changes}; \
         load {} requests, {failed_in_windows} failed in detection windows, {} outside; idle \
         keep-alive conns: {} on rs3 survived the move to backups, {IDLE} on backups survived \
         the move back",
        detect_bound().as_millis(),
        reqs.len(),
        stray.len(),
        on_rs3
    ));
    result_line(&format!("priority log: {switch_line}"));
    result_line(&format!("priority log: {back_line}"));
    assert!(
        detect1 <= detect_bound().as_millis() as f64
            && detect2 <= detect_bound().as_millis() as f64,
        "detected {detect1:.0} / {detect2:.0} ms after the kills, bound {} ms",
        detect_bound().as_millis()
    );
    assert!(
        stray.is_empty(),
        "requests failed outside the detection windows: {stray:#?}\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    let _ = stop_rvsd(rvsd);
    let secs = started.elapsed().as_secs_f64();
    result_line(&format!("priority took {secs:.1} s"));
}
