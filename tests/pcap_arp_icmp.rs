#![cfg(feature = "dpdk")]
//! The real `rvsd` on a `net_pcap` device: fed a pcap of ARP, ICMP and junk
//! frames (tests/pcap/make_input.py), it must answer exactly the ARP
//! requests and echo requests for its address, correctly (judged by
//! tests/pcap/judge.py with scapy, not with rvs's parser), and count every
//! other frame under the right drop reason.
#![deny(unsafe_code)]

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{counter, drops, pcap, Rvsd, TempDir, DROP_REASONS};

const OUR_MAC: &str = "02:00:00:00:00:01";
const OUR_CIDR: &str = "192.0.2.1/24";

/// What the manifest says about the input.
struct Expected {
    frames: u64,
    bytes: u64,
    arp_replies: u64,
    echo_replies: u64,
    consumed: u64,
    drops: BTreeMap<String, u64>,
}

fn expected(manifest: &Value) -> Expected {
    let frames = manifest["frames"]
        .as_array()
        .unwrap_or_else(|| panic!("manifest has no frames: {manifest}"));
    let mut e = Expected {
        frames: frames.len() as u64,
        bytes: 0,
        arp_replies: 0,
        echo_replies: 0,
        consumed: 0,
        drops: DROP_REASONS.iter().map(|r| (r.to_string(), 0)).collect(),
    };
    for f in frames {
        e.bytes += f["len"].as_u64().expect("frame len");
        match f["expect"].as_str().expect("frame expect") {
            "arp_reply" => e.arp_replies += 1,
            "echo_reply" => e.echo_replies += 1,
            "consumed" => e.consumed += 1,
            "drop" => {
                let reason = f["reason"].as_str().expect("drop reason");
                *e.drops
                    .get_mut(reason)
                    .unwrap_or_else(|| panic!("manifest names unknown drop reason {reason}")) += 1;
            }
            other => panic!("manifest: unknown expectation {other}"),
        }
    }
    e
}

/// The names of the input frames that the manifest expects to be dropped
/// for `reason`, for messages.
fn frames_expecting(manifest: &Value, reason: &str) -> Vec<String> {
    manifest["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["reason"] == reason)
        .map(|f| format!("#{} {}", f["index"], f["name"].as_str().unwrap_or("?")))
        .collect()
}

#[test]
fn pcap_arp_icmp_and_junk() {
    support::require_root("running rvsd on DPDK's net_pcap");
    let started = Instant::now();
    let dir = TempDir::new("pcap");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let manifest_path = dir.join("manifest.json");

    let manifest = pcap::make_input(
        "make_input.py",
        &[input.to_str().unwrap(), manifest_path.to_str().unwrap()],
        &manifest_path,
    );
    let want = expected(&manifest);

    let device = pcap::device(&input, &output);
    let config = dir.write(
        "rvsd.toml",
        &support::single_port_config(&device, &[OUR_CIDR], Some(OUR_MAC)),
    );
    let mut rvsd = Rvsd::start(&config, None);
    rvsd.wait_ready(Duration::from_secs(30));
    // net_pcap delivers the whole rx file right away and then nothing; the
    // worker needs microseconds for it. The tx file is written when rvsd
    // closes the port on stop, so there is nothing to poll: give it a moment.
    std::thread::sleep(Duration::from_millis(1500));
    let (stopped, stats) = pcap::stop(rvsd, &output);
    assert_eq!(
        stopped.status.code(),
        Some(0),
        "rvsd exit status\n{}",
        stopped.log
    );

    let (judged, verdict) = pcap::judge(
        "judge.py",
        &[
            input.to_str().unwrap(),
            manifest_path.to_str().unwrap(),
            output.to_str().unwrap(),
        ],
        &stopped.log,
    );

    // Every difference at once: counters and the judge's verdict.
    let mut problems: Vec<String> = Vec::new();
    let mut expect_eq = |what: &str, got: u64, want: u64| {
        if got != want {
            problems.push(format!("{what}: got {got}, expected {want}"));
        }
    };
    for (key, want_n) in [
        ("total.rx_packets", want.frames),
        ("total.rx_bytes", want.bytes),
        ("total.arp_requests_answered", want.arp_replies),
        ("total.icmp_echo_answered", want.echo_replies),
        ("total.tx_packets", want.arp_replies + want.echo_replies),
    ] {
        expect_eq(key, counter(&stats, key), want_n);
    }
    if let Some(out_bytes) = verdict["output_bytes"].as_u64() {
        expect_eq(
            "total.tx_bytes (bytes in the tx pcap)",
            counter(&stats, "total.tx_bytes"),
            out_bytes,
        );
    }
    let got_drops = drops(&stats);
    for reason in DROP_REASONS {
        let got = got_drops.get(reason).copied().unwrap_or_else(|| {
            problems.push(format!("drops has no `{reason}` counter"));
            0
        });
        let want_n = want.drops[reason];
        if got != want_n {
            problems.push(format!(
                "drops.{reason}: got {got}, expected {want_n}: the input frames meant for it are {:?}",
                frames_expecting(&manifest, reason)
            ));
        }
    }
    // Reasons of the forwarding path (later stages) must stay at zero here.
    for (reason, &n) in &got_drops {
        if !DROP_REASONS.contains(&reason.as_str()) && n != 0 {
            problems.push(format!("drops.{reason}: got {n}, expected 0"));
        }
    }
    // Every frame is accounted for exactly once.
    let accounted = counter(&stats, "total.arp_requests_answered")
        + counter(&stats, "total.icmp_echo_answered")
        + got_drops.values().sum::<u64>();
    if accounted + want.consumed != counter(&stats, "total.rx_packets") {
        problems.push(format!(
            "answered + dropped + {} consumed ARP replies = {}, but rx_packets = {}",
            want.consumed,
            accounted + want.consumed,
            counter(&stats, "total.rx_packets")
        ));
    }
    // ARP: the askers for our address and the sender of the reply to us are learned.
    let learned = counter(&stats, "total.arp_learned");
    if learned < want.arp_replies + want.consumed {
        problems.push(format!(
            "total.arp_learned: got {learned}, expected at least {}",
            want.arp_replies + want.consumed
        ));
    }
    // One worker on lcore 1, and the total is its counters.
    match stats["workers"].as_array() {
        Some(w) if w.len() == 1 => {
            if w[0]["lcore"] != 1 {
                problems.push(format!(
                    "workers[0].lcore: got {}, expected 1",
                    w[0]["lcore"]
                ));
            }
            let mut one = w[0].clone();
            if let Some(o) = one.as_object_mut() {
                o.remove("lcore");
            }
            if one != stats["total"] {
                problems.push(format!(
                    "the total differs from the only worker's counters: {} vs {}",
                    stats["total"], w[0]
                ));
            }
        }
        _ => problems.push(format!("expected one worker in the stats: {stats}")),
    }
    pcap::add_judge_problems(&verdict, &judged, &mut problems);
    eprintln!(
        "pcap test: {} frames in, {} replies out, {:.1} s",
        want.frames,
        verdict["output_frames"],
        started.elapsed().as_secs_f64()
    );
    pcap::assert_no_problems(&problems, &stats, &stopped.log);
}
