#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! Passive checks end to end (issue 18): rvsd in the NAT topology with a
//! management link (`Topology::nat_with_management`: the health checks
//! leave from the lb namespace's kernel, 10.1.0.254), two nginx real
//! servers, and a client load of sequential new connections from
//! 198.51.100.10.
//!
//! The fault the active check cannot see: an nft rule in rs2's namespace
//! answers (or drops) the SYNs of the client subnet only, so the TCP check
//! from 10.1.0.254 still passes while real clients get resets (or
//! silence). The passive check must take rs2 out on the handshakes the
//! workers saw fail, with the reason logged; the active check brings it
//! back after `rise` successes, and once the rule is gone rs2 serves
//! again.
//!
//! Figures are printed as `RESULT passive ...` lines past the output
//! capture: `cargo test --test e2e_passive 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{
    heavy, listed_real_server, result_line, unix_seconds, LoadRequest, Service, Topology,
    HTTP_PORT, VIP,
};
use std::time::{Duration, Instant, SystemTime};
use support::Rvsd;

/// The active check: TCP connect every 500 ms.
const INTERVAL_MS: u64 = 500;
const TIMEOUT_MS: u64 = 300;
const RISE: u32 = 2;
const FALL: u32 = 2;
/// The passive check.
const WINDOW_S: u64 = 5;
const MIN_ATTEMPTS: u64 = 10;
const MAX_FAILURE_PERCENT: u64 = 50;
const SYN_TIMEOUT_MS: u64 = 1000;
/// Failed requests a verdict may cost beyond `MIN_ATTEMPTS`: the workers
/// publish every 100 ms and the control loop ticks every 100 ms, so up to
/// about 300 ms of rs2's share of the load (50 new connections a second)
/// fail before the verdict reaches the workers.
const IN_FLIGHT: u64 = 15;

/// The client load: 2 loops, each starting a request every 20 ms (about
/// 100 new connections a second, half of them to rs2), each given 5 s.
/// With SYNs dropped a loop waits on its connect: 40 loops, each starting
/// a request every 200 ms, so that many handshakes are pending at once.
const LOAD: (u32, Duration) = (2, Duration::from_millis(20));
const DROP_LOAD: (u32, Duration) = (40, Duration::from_millis(200));
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
const LOAD_MAX: Duration = Duration::from_secs(50);

/// The victim: rs2.
const VICTIM: usize = 1;
/// The nft table the fault lives in.
const NFT_TABLE: &str = "rvs_passive";

/// The NAT topology with a management link and two nginx real servers.
fn topology() -> Topology {
    assert!(netns::have("nginx"), "install nginx");
    assert!(netns::have("nft"), "install nftables");
    let mut topo = Topology::nat_with_management(2);
    topo.metrics_listen = Some(netns::metrics_listen(21000));
    topo
}

/// `VIP:80/tcp`, rr over both servers, an active TCP check and the
/// passive check.
fn service(topo: &Topology) -> Service {
    let mut s = Service::nat("web", &format!("{VIP}:80"), "tcp", "rr")
        .health_check(Some("tcp"))
        .health_timing(INTERVAL_MS, TIMEOUT_MS, RISE, FALL)
        .setting(
            "passive_check",
            &format!(
                "{{ enabled = true, window_s = {WINDOW_S}, min_attempts = {MIN_ATTEMPTS}, \
                 max_failure_percent = {MAX_FAILURE_PERCENT}, syn_timeout_ms = {SYN_TIMEOUT_MS} }}"
            ),
        );
    for rs in &topo.real_servers {
        s = s.real(rs.addr(HTTP_PORT), 1);
    }
    s
}

/// Makes rs2 answer the client subnet's SYNs to the HTTP port with
/// `verdict` (`reject with tcp reset`, `drop`); others (the health check
/// from 10.1.0.254) pass. When it was in force.
fn break_for_clients(topo: &Topology, verdict: &str) -> SystemTime {
    let ns = &topo.real_servers[VICTIM].ns;
    let t = Duration::from_secs(5);
    ns.run_ok("nft", &["add", "table", "inet", NFT_TABLE], t);
    ns.run_ok(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            NFT_TABLE,
            "input",
            "{ type filter hook input priority 0 ; policy accept ; }",
        ],
        t,
    );
    let rule = format!(
        "add rule inet {NFT_TABLE} input ip saddr 198.51.100.0/24 tcp dport {HTTP_PORT} \
         tcp flags & (syn|ack) == syn {verdict}"
    );
    let args: Vec<&str> = rule.split(' ').collect();
    ns.run_ok("nft", &args, t);
    SystemTime::now()
}

/// Removes the rule; when.
fn repair(topo: &Topology) -> SystemTime {
    let ns = &topo.real_servers[VICTIM].ns;
    ns.run_ok(
        "nft",
        &["delete", "table", "inet", NFT_TABLE],
        Duration::from_secs(5),
    );
    SystemTime::now()
}

fn passive_line(topo: &Topology) -> String {
    format!(
        "passive check: real server {} of web down",
        topo.real_servers[VICTIM].addr(HTTP_PORT)
    )
}

fn up_line(topo: &Topology) -> String {
    format!(
        "real server {} (web) is up",
        topo.real_servers[VICTIM].addr(HTTP_PORT)
    )
}

/// Waits (at most 10 s) for the passive check's `down` line; when it saw
/// it.
fn wait_taken_out(rvsd: &Rvsd, down: &str) -> SystemTime {
    rvsd.wait_log_count(down, 0, Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "rs2 not taken out by the passive check within 10 s\n--- rvsd log ---\n{}",
                rvsd.log()
            )
        })
}

/// `later - earlier` in milliseconds, both in Unix seconds (the clock of
/// [`LoadRequest`]'s times).
fn ms_between(earlier: f64, later: f64) -> f64 {
    (later - earlier) * 1e3
}

fn listed_victim(topo: &Topology) -> serde_json::Value {
    let list = topo.rvsadm_list();
    let addr = topo.real_servers[VICTIM].addr(HTTP_PORT);
    listed_real_server(&list, "web", &addr).clone()
}

fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn show(reqs: &[&LoadRequest]) -> String {
    reqs.iter()
        .take(20)
        .map(|r| {
            format!(
                "  start {:.3} end {:.3} {}\n",
                r.start,
                r.end,
                if r.ok {
                    format!("ok {}", r.server)
                } else {
                    format!("FAILED {}", r.error)
                }
            )
        })
        .collect()
}

/// Starts rvsd and the load, and checks both servers answer.
fn start(topo: &Topology, (threads, interval): (u32, Duration)) -> (Rvsd, netns::ClientLoad) {
    let rvsd = topo.start_rvsd(1, &[service(topo)]);
    let load = topo.start_load(threads, interval, LOAD_TIMEOUT, LOAD_MAX);
    std::thread::sleep(Duration::from_millis(800));
    let warm = load.requests();
    assert!(
        warm.iter().all(|r| r.ok) && warm.iter().any(|r| r.server == "rs2"),
        "before the fault every request succeeds, rs2 serving:\n{}\n--- rvsd log ---\n{}",
        show(&warm.iter().collect::<Vec<_>>()),
        rvsd.log()
    );
    (rvsd, load)
}

/// After the rule is gone (rs2 down at that moment): rs2 comes back by
/// its active check and serves, and nothing fails for 2 s. The recovery
/// time, from the repair to the first request rs2 answered.
fn check_recovery(
    topo: &Topology,
    rvsd: &Rvsd,
    load: &netns::ClientLoad,
    repaired: SystemTime,
) -> f64 {
    let t_repair = unix_seconds(repaired);
    let downs = rvsd.log_count(&passive_line(topo));
    let deadline = Instant::now() + Duration::from_secs(6);
    let served = loop {
        if let Some(r) = load
            .requests()
            .iter()
            .find(|r| r.ok && r.server == "rs2" && r.start > t_repair)
        {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "rs2 did not serve again within 6 s of the repair\n--- rvsd log ---\n{}",
            rvsd.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let recovery = ms_between(t_repair, served.end);
    std::thread::sleep(Duration::from_millis(2000));
    let after: Vec<LoadRequest> = load
        .requests()
        .into_iter()
        .filter(|r| r.start >= served.start)
        .collect();
    let failed: Vec<&LoadRequest> = after.iter().filter(|r| !r.ok).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed after rs2 came back:\n{}",
        failed.len(),
        after.len(),
        show(&failed)
    );
    assert!(
        after.iter().filter(|r| r.server == "rs2").count() >= 20,
        "rs2 serves its share again"
    );
    assert_eq!(
        rvsd.log_count(&passive_line(topo)),
        downs,
        "no passive verdict once repaired\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    assert_eq!(listed_victim(topo)["health"], "up");
    recovery
}

#[test]
fn a_server_resetting_real_clients_is_taken_out_by_the_passive_check() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = topology();
    let (rvsd, load) = start(&topo, LOAD);
    let (down, up) = (passive_line(&topo), up_line(&topo));

    let faulted = break_for_clients(&topo, "reject with tcp reset");
    let detected = wait_taken_out(&rvsd, &down);
    let (t_fault, t_detect) = (unix_seconds(faulted), unix_seconds(detected));
    let reason = rvsd.last_log_line(&down);
    let reqs = load.requests();
    let failed: Vec<&LoadRequest> = reqs
        .iter()
        .filter(|r| !r.ok && r.start >= t_fault - 0.05 && r.start < t_detect)
        .collect();
    let first_reset = failed.iter().map(|r| r.end).fold(f64::INFINITY, f64::min);
    let detect_ms = ms_between(first_reset, t_detect);
    result_line(&format!(
        "passive resets detect_ms={detect_ms:.0} (first reset to down; {:.0} ms from the \
         rule) failed_requests={} reason: {}",
        ms_between(t_fault, t_detect),
        failed.len(),
        reason.split(" down: ").nth(1).unwrap_or(&reason)
    ));
    assert!(
        reason.contains("handshakes failed in") && reason.contains("resets"),
        "{reason}"
    );
    assert!(
        !failed.is_empty(),
        "the clients saw the resets before the verdict"
    );
    assert!(
        failed.len() as u64 <= MIN_ATTEMPTS + IN_FLIGHT,
        "{} requests failed before the verdict, more than min_attempts {MIN_ATTEMPTS} + \
         {IN_FLIGHT} in flight:\n{}",
        failed.len(),
        show(&failed)
    );
    assert!(
        detect_ms < 1500.0,
        "the verdict came {detect_ms:.0} ms after the first reset"
    );

    // rvsadm and the metrics say why.
    std::thread::sleep(Duration::from_millis(150));
    let rs = listed_victim(&topo);
    assert_eq!(
        (rs["health"].as_str(), rs["health_reason"].as_str()),
        (Some("down"), Some("passive")),
        "{rs}"
    );
    assert!(
        rs["handshake_resets"].as_u64().unwrap_or(0) >= MIN_ATTEMPTS / 2,
        "{rs}"
    );
    let text = topo.rvsadm(&["list"]);
    assert!(text.stdout.contains("down (passive)"), "{text}");
    let m = topo.metrics();
    let label = format!(
        "real_server=\"{}\"",
        topo.real_servers[VICTIM].addr(HTTP_PORT)
    );
    assert_eq!(
        metric(&m, "rvs_real_server_passive_down_total", &label),
        Some(1.0)
    );
    assert!(metric(&m, "rvs_real_server_handshake_resets_total", &label).unwrap_or(0.0) > 0.0);

    // The active check (still passing) brings it back after `rise`
    // successes; the clients' resets take it out again.
    let back = rvsd
        .wait_log_count(&up, 0, Duration::from_secs(4))
        .unwrap_or_else(|| panic!("rs2 not back by its active check\n{}", rvsd.log()));
    let again = rvsd
        .wait_log_count(&down, 1, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("rs2 not taken out again\n{}", rvsd.log()));
    let (t_back, t_again) = (unix_seconds(back), unix_seconds(again));
    let failed_again = load
        .requests()
        .iter()
        .filter(|r| !r.ok && r.start >= t_back - 0.2 && r.start < t_again)
        .count();
    result_line(&format!(
        "passive resets down_ms={:.0} (passive down to the active check's up, rise {RISE} x \
         {INTERVAL_MS} ms) second_verdict_ms={:.0} failed_requests_second_round={failed_again}",
        ms_between(t_detect, t_back),
        ms_between(t_back, t_again)
    ));
    assert!(
        ms_between(t_detect, t_back) >= (u64::from(RISE - 1) * INTERVAL_MS) as f64,
        "back only after rise successes from the passive down"
    );
    assert!(failed_again as u64 <= MIN_ATTEMPTS + IN_FLIGHT);

    // Repaired while down: back by its active check, serving.
    let repaired = repair(&topo);
    let recovery = check_recovery(&topo, &rvsd, &load, repaired);
    let all = load.stop();
    result_line(&format!(
        "passive resets recovery_ms={recovery:.0} (rule removed to rs2's first answer) \
         requests={} failed={} took {:.1} s",
        all.len(),
        all.iter().filter(|r| !r.ok).count(),
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn a_server_dropping_real_clients_syns_is_taken_out_on_timeouts() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = topology();
    let (rvsd, load) = start(&topo, DROP_LOAD);
    let down = passive_line(&topo);

    let faulted = break_for_clients(&topo, "drop");
    let detected = wait_taken_out(&rvsd, &down);
    // Repaired at once, while down.
    let repaired = repair(&topo);
    let (t_fault, t_detect) = (unix_seconds(faulted), unix_seconds(detected));
    let reason = rvsd.last_log_line(&down);
    assert!(reason.contains("timeouts"), "{reason}");
    let detect_ms = ms_between(t_fault, t_detect);
    assert!(
        detect_ms < (SYN_TIMEOUT_MS + 1500) as f64,
        "taken out {detect_ms:.0} ms after the rule: syn_timeout_ms {SYN_TIMEOUT_MS} + 1.5 s"
    );
    let recovery = check_recovery(&topo, &rvsd, &load, repaired);
    let all = load.stop();
    let hit: Vec<&LoadRequest> = all
        .iter()
        .filter(|r| r.start >= t_fault - 0.05 && r.start < t_detect)
        .collect();
    let failed: Vec<&LoadRequest> = hit.iter().copied().filter(|r| !r.ok).collect();
    let slow = hit.iter().filter(|r| r.ok && r.end - r.start > 0.9).count();
    result_line(&format!(
        "passive timeouts detect_ms={detect_ms:.0} (rule to down; syn_timeout_ms \
         {SYN_TIMEOUT_MS}) failed_requests={} delayed_requests={slow} (answered by rs1 after \
         a retransmitted SYN) recovery_ms={recovery:.0} took {:.1} s reason: {}",
        failed.len(),
        started.elapsed().as_secs_f64(),
        reason.split(" down: ").nth(1).unwrap_or(&reason)
    ));
    assert!(
        failed.len() as u64 <= MIN_ATTEMPTS + IN_FLIGHT,
        "{} requests failed:\n{}",
        failed.len(),
        show(&failed)
    );
}
