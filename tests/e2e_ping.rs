#![cfg(feature = "dpdk")]
//! End to end: `rvsd` on `net_af_packet` over a veth pair between two
//! network namespaces; the kernel's `ping` and `arping` in the client
//! namespace talk to it.
//!
//! ```text
//!   client ns                         lb ns
//!   <veth a> 192.0.2.10/24  <--->  <veth b> (no IP) <- rvsd, 192.0.2.1/24
//! ```
#![deny(unsafe_code)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{counter, wait_timeout, Netns, Rvsd, TempDir};

const RVSD_MAC: &str = "02:00:00:00:00:01";
const RVSD_IP: &str = "192.0.2.1";
const CLIENT_CIDR: &str = "192.0.2.10/24";
const T: Duration = Duration::from_secs(20);

/// Quietens IPv6 (router solicitations, MLD) on a namespace's links so the
/// only traffic on the veth is what the test sends.
fn ipv6_off(ns: &Netns) {
    for key in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ] {
        let _ = ns.run("sysctl", &["-q", "-w", key], T);
    }
}

/// Parses ping's "N packets transmitted, M received" summary.
fn ping_counts(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .map(|part| part.split_whitespace().next().and_then(|n| n.parse().ok()));
    Some((nums.next()??, nums.next()??))
}

#[test]
fn ping_and_arping_from_a_client_namespace() {
    support::require_root("network namespaces and DPDK");
    let started = Instant::now();
    let client = Netns::new();
    let lb = Netns::new();
    ipv6_off(&client);
    ipv6_off(&lb);
    let veth = support::veth_pair(&client, &lb);
    client.add_address(&veth.a, CLIENT_CIDR);

    let dir = TempDir::new("e2e");
    let device = format!("net_af_packet0,iface={}", veth.b);
    let config = dir.write(
        "rvsd.toml",
        &support::single_port_config(&device, &[&format!("{RVSD_IP}/24")], Some(RVSD_MAC)),
    );
    let mut rvsd = Rvsd::start(&config, Some(&lb));
    rvsd.wait_ready(Duration::from_secs(30));
    eprintln!("rvsd ready after {:.1} s", started.elapsed().as_secs_f64());

    // ICMP echo: the kernel resolves 192.0.2.1 with ARP first, then pings.
    let ping = client.run(
        "ping",
        &["-n", "-c", "5", "-i", "0.2", "-W", "1", RVSD_IP],
        T,
    );
    eprintln!("{}", ping.stdout);
    assert_eq!(
        ping_counts(&ping.stdout),
        Some((5, 5)),
        "ping: expected 5 of 5 answered: {ping}\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    assert!(ping.success(), "{ping}");

    // A big echo (1400 bytes of data) comes back whole too.
    let big = client.run(
        "ping",
        &[
            "-n", "-c", "2", "-i", "0.2", "-W", "1", "-s", "1400", RVSD_IP,
        ],
        T,
    );
    assert_eq!(
        ping_counts(&big.stdout),
        Some((2, 2)),
        "ping -s 1400: {big}"
    );

    // The client's kernel learned rvsd's MAC from rvsd's ARP reply.
    let neigh = client.run_ok("ip", &["neigh", "show", RVSD_IP, "dev", &veth.a], T);
    assert!(
        neigh.stdout.to_ascii_lowercase().contains(RVSD_MAC),
        "the client's neighbour table has no {RVSD_IP} lladdr {RVSD_MAC}: {neigh}"
    );

    // arping: explicit ARP requests, each answered with rvsd's MAC.
    let arping = client.run("arping", &["-c", "3", "-w", "5", "-I", &veth.a, RVSD_IP], T);
    eprintln!("{}", arping.stdout);
    let replies: Vec<&str> = arping
        .stdout
        .lines()
        .filter(|l| l.contains("reply from"))
        .collect();
    assert!(
        arping.success() && !replies.is_empty(),
        "arping got no reply: {arping}"
    );
    for r in &replies {
        assert!(
            r.to_ascii_lowercase().contains(RVSD_MAC) && r.contains(RVSD_IP),
            "arping reply not from {RVSD_IP} at {RVSD_MAC}: {r}"
        );
    }

    // An address in the subnet that is not rvsd's: no ARP answer, no echo.
    let stranger = client.run("ping", &["-n", "-c", "1", "-W", "1", "192.0.2.99"], T);
    assert_eq!(
        ping_counts(&stranger.stdout).map(|(_, rx)| rx),
        Some(0),
        "192.0.2.99 answered: {stranger}"
    );

    let stopped = rvsd.stop(Duration::from_secs(20));
    assert!(!stopped.killed, "rvsd ignored SIGTERM\n{}", stopped.log);
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    let stats = stopped.stats();
    let echo = counter(&stats, "total.icmp_echo_answered");
    let arp = counter(&stats, "total.arp_requests_answered");
    let not_for_us = counter(&stats, "total.drops.arp_not_for_us");
    assert!(echo >= 7, "icmp_echo_answered {echo} < 7: {stats}");
    // The kernel's own ARP request (before the first ping) and arping's.
    assert!(
        arp > replies.len() as u64,
        "arp_requests_answered {arp} not above arping's {} (plus the kernel's): {stats}",
        replies.len()
    );
    assert!(not_for_us >= 1, "arp_not_for_us {not_for_us} < 1: {stats}");
    assert!(
        counter(&stats, "total.tx_packets") >= echo + arp,
        "tx_packets below the replies counted: {stats}"
    );
    eprintln!(
        "e2e ping test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn netns_guard_removes_namespace_and_its_processes() {
    support::require_root("network namespaces");
    let ns = Netns::new();
    let name = ns.name().to_string();
    let mut sleeper = ns
        .command("sleep")
        .arg("60")
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start sleep in the namespace");
    let deadline = Instant::now() + Duration::from_secs(5);
    while ns.pids().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!ns.pids().is_empty(), "sleep is not in namespace {name}");
    drop(ns);
    assert!(
        !std::path::Path::new("/run/netns").join(&name).exists(),
        "namespace {name} still exists after its guard dropped"
    );
    let status = wait_timeout(&mut sleeper, Duration::from_secs(5));
    assert!(
        status.is_some(),
        "the process in namespace {name} survived the guard"
    );
    let listed = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(out) = listed {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&name),
            "ip netns list still shows {name}"
        );
    }
}
