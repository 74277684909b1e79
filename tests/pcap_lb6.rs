#![cfg(feature = "dpdk")]
//! IPv6 load balancing, packet by packet, through the real `rvsd` on a
//! `net_pcap` device: the table in tests/pcap/lb6_cases.py (NAT TCP and
//! UDP both ways, a destination-options header before TCP, DR, TUN
//! IPv6-in-IPv6, ICMPv6 packet too big from the inside translated to the
//! client, a reset, malformed IPv6 to a VIP), judged by
//! tests/pcap/lb_judge.py with scapy (LB_CASES=lb6_cases), never with
//! rvs's parser; rvsd's counters checked against the ones the judge
//! derives from the table.
#![deny(unsafe_code)]

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{pcap, Rvsd, TempDir};

const SCRIPT: &str = "lb_judge.py";
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// Polls `rvsadm stats` until the worker has received `frames` frames
/// (and published its counters), or `timeout` passes; then a little more
/// for the last burst's transmit. Returns whether the count was reached.
fn wait_for_rx(socket: &Path, frames: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let socket = socket.to_str().unwrap();
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = support::run(
            RVSADM,
            &["--socket", socket, "--json", "stats"],
            Duration::from_secs(5),
        );
        if out.success() {
            let rx = serde_json::from_str::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v.pointer("/total/rx_packets").and_then(Value::as_u64));
            if rx.is_some_and(|rx| rx >= frames) {
                std::thread::sleep(Duration::from_millis(50));
                return true;
            }
        }
        last = out.to_string();
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("the worker did not report {frames} frames received in time; last rvsadm: {last}");
    false
}

#[test]
fn pcap_lb6_cases() {
    support::require_root("running rvsd on DPDK's net_pcap");
    // lb_judge.py reads its table from the module LB_CASES names.
    std::env::set_var("LB_CASES", "lb6_cases");
    let started = Instant::now();
    let dir = TempDir::new("pcap-lb6");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let manifest_path = dir.join("manifest.json");
    let fragment_path = dir.join("services.toml");

    let manifest = pcap::make_input(
        SCRIPT,
        &[
            "make",
            input.to_str().unwrap(),
            manifest_path.to_str().unwrap(),
            fragment_path.to_str().unwrap(),
        ],
        &manifest_path,
    );
    let addresses: Vec<&str> = manifest["addresses"]
        .as_array()
        .expect("manifest addresses")
        .iter()
        .map(|a| a.as_str().expect("address"))
        .collect();
    let mac = manifest["mac"].as_str().expect("manifest mac");

    let device = pcap::device(&input, &output);
    let mut config = support::single_port_config(&device, &addresses, Some(mac));
    config.push_str("\n[control]\n");
    let socket = dir.join("rvsd.sock");
    config.push_str(&format!(
        "socket = {}\n\n",
        support::toml_str(socket.to_str().unwrap())
    ));
    config.push_str(&std::fs::read_to_string(&fragment_path).expect("read the config fragment"));
    let config = dir.write("rvsd.toml", &config);

    let checked = support::run(
        support::RVSD,
        &["--config", config.to_str().unwrap(), "--check"],
        Duration::from_secs(20),
    );
    assert!(
        checked.success(),
        "rvsd --check refuses the test's config: {checked}\n--- config ---\n{}",
        std::fs::read_to_string(&config).unwrap_or_default()
    );

    let mut rvsd = Rvsd::start(&config, None);
    rvsd.wait_ready(Duration::from_secs(30));
    // net_pcap delivers the whole rx file at once; wait until the worker
    // has taken every frame (rvsadm stats), then stop: the tx file is
    // complete when rvsd closes the port.
    let frames = manifest["frames"].as_array().map_or(0, |f| f.len() as u64);
    let all_taken = wait_for_rx(&socket, frames, Duration::from_secs(10));
    let (stopped, stats) = pcap::stop(rvsd, &output);

    let (judged, verdict) = pcap::judge(
        SCRIPT,
        &["judge", input.to_str().unwrap(), output.to_str().unwrap()],
        &stopped.log,
    );

    // Every difference at once: exit status, counters, the judge's verdict.
    let mut problems: Vec<String> = Vec::new();
    if !all_taken {
        problems.push(format!(
            "rvsadm stats never showed all {frames} input frames received within 10 s"
        ));
    }
    if stopped.status.code() != Some(0) {
        problems.push(format!(
            "rvsd exit status: got {:?}, expected 0",
            stopped.status
        ));
    }
    let expect = verdict["expect_stats"]
        .as_array()
        .unwrap_or_else(|| panic!("the verdict has no expect_stats: {verdict}"));
    for e in expect {
        let pointer = e["pointer"].as_str().expect("pointer");
        let want = e["want"].as_u64().expect("want");
        // A count that depends on timing: at most `want`.
        let at_most = e["at_most"].as_bool().unwrap_or(false);
        match stats.pointer(pointer).and_then(Value::as_u64) {
            Some(got) if got == want || (at_most && got <= want) => {}
            Some(got) => problems.push(format!(
                "stats {pointer}: got {got}, expected {want} ({})",
                e["why"].as_str().unwrap_or("")
            )),
            None => problems.push(format!("stats have no count at {pointer}")),
        }
    }
    // Drop reasons the judge does not know must stay at zero.
    if let Some(drops) = stats["total"]["drops"].as_object() {
        for (reason, n) in drops {
            let known = expect
                .iter()
                .any(|e| e["pointer"] == format!("/total/drops/{reason}"));
            if !known && n.as_u64() != Some(0) {
                problems.push(format!("stats /total/drops/{reason}: got {n}, expected 0"));
            }
        }
    } else {
        problems.push("stats have no total.drops".into());
    }
    match stats["workers"].as_array() {
        Some(w) if w.len() == 1 => {}
        _ => problems.push(format!(
            "expected one worker in the stats: {}",
            stats["workers"]
        )),
    }
    pcap::add_judge_problems(&verdict, &judged, &mut problems);
    eprintln!(
        "pcap lb6 test: {} frames in, {} out, {:.1} s",
        verdict["input_frames"],
        verdict["output_frames"],
        started.elapsed().as_secs_f64()
    );
    pcap::assert_no_problems(&problems, &stats, &stopped.log);
}
