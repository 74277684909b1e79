#![cfg(feature = "dpdk")]
//! The real `rvsd` on a `net_pcap` device with an IPv6 address: fed a pcap
//! of neighbour discovery, ICMPv6 echo, malformed IPv6, an
//! extension-header flood and IPv6 to other addresses
//! (tests/pcap/ipv6_cases.py), it must answer exactly the solicitations and
//! echo requests for its address, correctly (judged by the same script with
//! scapy, not with rvs's parser), announce its address once at start, and
//! count every other frame under the right drop reason.
#![deny(unsafe_code)]

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{counter, drops, pcap, Rvsd, TempDir};

const OUR_MAC: &str = "02:00:00:00:00:01";

#[test]
fn pcap_ipv6_neighbour_discovery_echo_and_malformed() {
    support::require_root("running rvsd on DPDK's net_pcap");
    let started = Instant::now();
    let dir = TempDir::new("pcap6");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let manifest_path = dir.join("manifest.json");
    let manifest = pcap::make_input(
        "ipv6_cases.py",
        &[
            "make",
            input.to_str().unwrap(),
            manifest_path.to_str().unwrap(),
        ],
        &manifest_path,
    );
    let frames = manifest["frames"].as_array().expect("manifest frames");
    let mut want_drops: BTreeMap<String, u64> = BTreeMap::new();
    let (mut nas, mut echoes, mut bytes) = (0u64, 0u64, 0u64);
    for f in frames {
        bytes += f["len"].as_u64().expect("len");
        match f["expect"].as_str().expect("expect") {
            "na" => nas += 1,
            "echo" => echoes += 1,
            "drop" => {
                *want_drops
                    .entry(f["reason"].as_str().expect("reason").to_string())
                    .or_default() += 1
            }
            other => panic!("manifest: unknown expectation {other}"),
        }
    }

    let device = pcap::device(&input, &output);
    let config = dir.write(
        "rvsd.toml",
        &support::single_port_config(
            &device,
            &["192.0.2.1/24", "2001:db8:1::1/64"],
            Some(OUR_MAC),
        ),
    );
    let mut rvsd = Rvsd::start(&config, None);
    rvsd.wait_ready(Duration::from_secs(30));
    // net_pcap delivers the whole file at once; the tx file is written when
    // rvsd closes the port on stop.
    std::thread::sleep(Duration::from_millis(1500));
    let (stopped, stats) = pcap::stop(rvsd, &output);
    assert_eq!(stopped.status.code(), Some(0), "rvsd exit\n{}", stopped.log);

    let (judged, verdict) = pcap::judge(
        "ipv6_cases.py",
        &[
            "judge",
            input.to_str().unwrap(),
            manifest_path.to_str().unwrap(),
            output.to_str().unwrap(),
        ],
        &stopped.log,
    );

    let mut problems: Vec<String> = Vec::new();
    let mut expect_eq = |what: &str, got: u64, want: u64| {
        if got != want {
            problems.push(format!("{what}: got {got}, expected {want}"));
        }
    };
    let announced = counter(&stats, "total.nd_adverts_announced");
    for (key, want) in [
        ("total.rx_packets", frames.len() as u64),
        ("total.rx_bytes", bytes),
        ("total.nd_solicits_answered", nas),
        ("total.icmpv6_echo_answered", echoes),
        ("total.nd_adverts_announced", 1),
        ("total.tx_packets", nas + echoes + announced),
    ] {
        expect_eq(key, counter(&stats, key), want);
    }
    if let Some(out_bytes) = verdict["output_bytes"].as_u64() {
        expect_eq(
            "total.tx_bytes",
            counter(&stats, "total.tx_bytes"),
            out_bytes,
        );
    }
    for (reason, got) in drops(&stats) {
        let want = want_drops.get(&reason).copied().unwrap_or(0);
        if got != want {
            problems.push(format!("drops.{reason}: got {got}, expected {want}"));
        }
    }
    // The askers that gave their link-layer address were learned (the
    // answered solicitations with an option, not the DAD probe).
    if counter(&stats, "total.nd_learned") < 3 {
        problems.push(format!(
            "total.nd_learned: got {}, expected at least 3",
            counter(&stats, "total.nd_learned")
        ));
    }
    pcap::add_judge_problems(&verdict, &judged, &mut problems);
    eprintln!(
        "pcap ipv6 test: {} frames in, {} out, {:.1} s",
        frames.len(),
        verdict["output_frames"],
        started.elapsed().as_secs_f64()
    );
    let _: &Value = &verdict;
    pcap::assert_no_problems(&problems, &stats, &stopped.log);
}
