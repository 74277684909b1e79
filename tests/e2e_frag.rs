#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end through NAT with IPv4 fragments (issue 19): the client's
//! kernel fragments large UDP datagrams (MTU 1500 on every link), rvsd
//! forwards the fragments without reassembly (the first fragment decides,
//! later ones follow it, `lb::frag`), the real server's kernel reassembles
//! them, its UDP echo answers with a datagram as large, which its kernel
//! fragments on the way back through rvsd, and the client's kernel
//! reassembles the answer whole.
//!
//! rvsd's ports here are `net_pcap` on the live veths, not the
//! `net_af_packet` the other end-to-end tests use: DPDK's af_packet PMD
//! joins its sockets to a fanout group with `PACKET_FANOUT_FLAG_DEFRAG`
//! (seen in its code: `or $0x90000000`, hash | defrag | rollover), so the
//! kernel reassembles IP fragments before rvsd sees them and rvs's
//! fragment path would never run (datagrams above the PMD's 2048-byte
//! frame arrive cut short). libpcap's live capture has no fanout.
//!
//! ```text
//!   client 198.51.100.10 --- [outside] rvsd [inside] --- br0 --- rs1 10.1.0.11:5353 (UDP echo)
//!   VIP 198.51.100.100:53     198.51.100.1   10.1.0.1
//! ```

mod netns;
mod support;

use netns::cases::took;
use netns::{result_line, stop_rvsd, Service, Topology, VIP};
use std::time::{Duration, Instant};
use support::counter;
use support::Rvsd;

/// Sends one datagram of each size in `sizes` to `VIP:53` from one socket
/// (fragmented by the client's kernel: `IP_PMTUDISC_DONT`), and checks
/// each comes back whole and unchanged from `VIP:53`. Returns the problems.
fn exchange(topo: &Topology, sizes: &[usize]) -> Vec<String> {
    const CLIENT: &str = "import json, os, socket, sys\n\
        dst = (sys.argv[1], 53)\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = DONT: fragment\n\
        s.settimeout(3.0)\n\
        bad = []\n\
        for n in map(int, sys.argv[2:]):\n\
        \x20   msg = os.urandom(n)\n\
        \x20   s.sendto(msg, dst)\n\
        \x20   try:\n\
        \x20       d, a = s.recvfrom(65535)\n\
        \x20       if d != msg or a != dst:\n\
        \x20           bad.append('%d bytes: got %d bytes from %s' % (n, len(d), a))\n\
        \x20   except socket.timeout:\n\
        \x20       bad.append('%d bytes: no answer in 3 s' % n)\n\
        print(json.dumps(bad))\n";
    let mut args = vec!["-c", CLIENT, VIP];
    let sizes: Vec<String> = sizes.iter().map(|n| n.to_string()).collect();
    args.extend(sizes.iter().map(String::as_str));
    let out = topo.client.run(
        "python3",
        &args,
        Duration::from_secs(10 + 3 * sizes.len() as u64),
    );
    assert!(out.success(), "UDP client failed: {out}");
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("UDP client printed no JSON list ({e}): {out}"))
}

/// Datagram sizes: one that fits a frame, then two to fourteen fragments.
const SIZES: [usize; 5] = [1000, 1600, 4000, 9000, 20000];

/// Later fragments one exchange of [`SIZES`] makes each way (1480 bytes
/// of datagram per fragment at MTU 1500).
fn later_fragments() -> u64 {
    SIZES
        .iter()
        .map(|&n| ((n + 8).div_ceil(1480) - 1) as u64)
        .sum()
}

/// Starts rvsd with one worker as [`Topology::start_rvsd`] does, its
/// ports on `net_pcap` live captures of the same veths (see the module
/// doc; `net_pcap` has one queue pair, so one worker: the hand-over of
/// later fragments between workers is a unit test,
/// `with_two_workers_later_fragments_reach_the_owner_of_their_first`).
fn start_on_pcap(topo: &Topology, services: &[Service]) -> Rvsd {
    let mut text = topo.rvsd_config(1, services);
    for (i, port) in topo.ports.iter().enumerate() {
        let af = format!("net_af_packet{i},iface={}", port.dev);
        assert!(text.contains(&af), "no {af} in the config:\n{text}");
        text = text.replace(&af, &format!("net_pcap{i},iface={}", port.dev));
    }
    let path = topo.config_path();
    std::fs::write(&path, &text).expect("write the config");
    let check = support::run(
        support::RVSD,
        &["--config", path.to_str().unwrap(), "--check"],
        Duration::from_secs(10),
    );
    assert!(check.success(), "config refused: {check}\n{text}");
    let mut rvsd = Rvsd::start(&path, Some(&topo.lb));
    rvsd.wait_ready(Duration::from_secs(30));
    assert!(
        rvsd.wait_for_log("control socket", Duration::from_secs(10)),
        "rvsd bound no control socket\n{}",
        rvsd.log()
    );
    rvsd
}

#[test]
fn fragmented_udp_datagrams_through_nat_are_answered_whole() {
    let started = Instant::now();
    let mut topo = Topology::nat(1);
    topo.start_udp_echo();
    let dns = Service::nat("dns", &format!("{VIP}:53"), "udp", "rr")
        .real(topo.real_servers[0].addr(netns::UDP_ECHO_PORT), 1);
    let rvsd = start_on_pcap(&topo, &[dns]);

    let problems = exchange(&topo, &SIZES);
    let log = rvsd.log();
    let stats = stop_rvsd(rvsd);
    assert!(
        problems.is_empty(),
        "datagrams not answered whole: {problems:?}\n--- stats ---\n{stats}\n--- rvsd log ---\n{log}"
    );
    let forwarded = counter(&stats, "total.fragments_forwarded");
    assert_eq!(
        forwarded,
        2 * later_fragments(),
        "every later fragment both ways followed its first: {stats}"
    );
    for reason in ["fragment", "fragment_queue_full", "fragment_unmatched"] {
        assert_eq!(
            counter(&stats, &format!("total.drops.{reason}")),
            0,
            "{stats}"
        );
    }
    result_line(&format!(
        "frag nat: UDP datagrams of {SIZES:?} bytes fragmented by the client's kernel, \
         answered whole; {forwarded} later fragments forwarded, {} queued",
        counter(&stats, "total.fragments_queued")
    ));
    took(
        "fragmented_udp_datagrams_through_nat_are_answered_whole",
        started,
    );
}
