#![cfg(feature = "dpdk")]
//! End to end, IPv6 at rvsd's edge: `rvsd` on `net_af_packet` over a veth
//! pair between two network namespaces; the client namespace's kernel
//! resolves rvsd's IPv6 address by neighbour discovery and pings it.
//!
//! ```text
//!   client ns                              lb ns (IPv6 off in its kernel)
//!   <veth a> 2001:db8:1::10/64  <--->  <veth b> <- rvsd, 2001:db8:1::1/64
//! ```
#![deny(unsafe_code)]

mod support;

use std::time::{Duration, Instant};
use support::{counter, Netns, Rvsd, TempDir};

const RVSD_MAC: &str = "02:00:00:00:00:01";
const RVSD_IP6: &str = "2001:db8:1::1";
const CLIENT_CIDR6: &str = "2001:db8:1::10/64";
const T: Duration = Duration::from_secs(20);

/// Sets sysctls in `ns`, ignoring failures (a key the kernel lacks).
fn sysctls(ns: &Netns, keys: &[&str]) {
    for key in keys {
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
fn ping6_and_neighbour_discovery_from_a_client_namespace() {
    support::require_root("network namespaces and DPDK");
    let started = Instant::now();
    let client = Netns::new();
    let lb = Netns::new();
    // The client: IPv6 on, no duplicate address detection (the address is
    // usable at once), no router solicitations.
    sysctls(
        &client,
        &[
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.router_solicitations=0",
            "net.ipv6.conf.default.router_solicitations=0",
        ],
    );
    // The balancer's namespace: its kernel stays off the wire.
    sysctls(
        &lb,
        &[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    );
    let veth = support::veth_pair(&client, &lb);
    client.run_ok(
        "ip",
        &[
            "-6",
            "address",
            "add",
            CLIENT_CIDR6,
            "dev",
            &veth.a,
            "nodad",
        ],
        T,
    );

    let dir = TempDir::new("e2e6");
    let device = format!("net_af_packet0,iface={}", veth.b);
    let config = dir.write(
        "rvsd.toml",
        &support::single_port_config(
            &device,
            &["192.0.2.1/24", &format!("{RVSD_IP6}/64")],
            Some(RVSD_MAC),
        ),
    );
    let mut rvsd = Rvsd::start(&config, Some(&lb));
    rvsd.wait_ready(Duration::from_secs(30));
    eprintln!("rvsd ready after {:.1} s", started.elapsed().as_secs_f64());

    // The kernel solicits rvsd's address first, then pings.
    let ping = client.run(
        "ping",
        &["-6", "-n", "-c", "5", "-i", "0.2", "-W", "1", RVSD_IP6],
        T,
    );
    eprintln!("{}", ping.stdout);
    assert_eq!(
        ping_counts(&ping.stdout),
        Some((5, 5)),
        "ping -6: expected 5 of 5 answered: {ping}\n--- rvsd log ---\n{}",
        rvsd.log()
    );

    // A big echo (1200 bytes of data) comes back whole too.
    let big = client.run(
        "ping",
        &[
            "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-s", "1200", RVSD_IP6,
        ],
        T,
    );
    assert_eq!(
        ping_counts(&big.stdout),
        Some((2, 2)),
        "ping -6 -s 1200: {big}"
    );

    // The client's kernel learned rvsd's MAC from its advertisement.
    let neigh = client.run_ok("ip", &["-6", "neigh", "show", RVSD_IP6, "dev", &veth.a], T);
    assert!(
        neigh.stdout.to_ascii_lowercase().contains(RVSD_MAC),
        "the client's neighbour table has no {RVSD_IP6} lladdr {RVSD_MAC}: {neigh}"
    );

    // An address on the link that is not rvsd's: no advertisement, no echo.
    let stranger = client.run(
        "ping",
        &["-6", "-n", "-c", "1", "-W", "1", "2001:db8:1::99"],
        T,
    );
    assert_eq!(
        ping_counts(&stranger.stdout).map(|(_, rx)| rx),
        Some(0),
        "2001:db8:1::99 answered: {stranger}"
    );

    let stopped = rvsd.stop(Duration::from_secs(20));
    assert!(!stopped.killed, "rvsd ignored SIGTERM\n{}", stopped.log);
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    let stats = stopped.stats();
    let echo = counter(&stats, "total.icmpv6_echo_answered");
    assert!(echo >= 7, "icmpv6_echo_answered {echo} < 7: {stats}");
    assert!(
        counter(&stats, "total.nd_solicits_answered") >= 1,
        "no solicitation answered: {stats}"
    );
    // rvsd learned the client's MAC from the source link-layer option of
    // the client's solicitation (its echo replies went to that MAC).
    assert!(
        counter(&stats, "total.nd_learned") >= 1,
        "rvsd learned no IPv6 neighbour: {stats}"
    );
    assert!(
        counter(&stats, "total.nd_adverts_announced") >= 1,
        "no unsolicited advertisement at start: {stats}"
    );
    assert!(
        counter(&stats, "total.drops.nd_not_for_us") >= 1,
        "the solicitations for 2001:db8:1::99 were not counted as not for us: {stats}"
    );
    eprintln!(
        "e2e ipv6 edge test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
