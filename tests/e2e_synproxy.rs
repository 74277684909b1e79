#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end through the SYN proxy: the NAT topology of `tests/netns`
//! (client 198.51.100.10, rvsd, real servers rs1 and rs2 behind it) with
//! `syn_proxy = true` on the web service.
//!
//! The kernel's TCP in the client and in the real servers, curl as the
//! application: requests and a download (checked by sha256) go through a
//! handshake rvsd answers itself, then through the sequence translation.
//! A burst of spoofed SYNs, then of spoofed ACKs with made-up numbers,
//! from random sources (a raw socket in the client namespace) leaves no
//! connection entry behind, while a legitimate client keeps being served.
//! Figures: `cargo test --test e2e_synproxy 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::cases::took;
use netns::{assert_all_answered, result_line, stop_rvsd, Topology, VIP};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::counter;

/// Sends `count` spoofed TCP segments to `VIP:80` from random addresses of
/// 203.0.113.0/24 (which rvsd has no route back to) and random ports:
/// bare SYNs (`syn`) or ACKs with random numbers (`ack`). Prints the rate.
const SPOOFER: &str = r#"
import random, socket, struct, sys, time
dst, dport, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
d = socket.inet_aton(dst)
flags = 0x02 if mode == 'syn' else 0x10
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
start = time.time()
for i in range(count):
    src = bytes([203, 0, 113, random.randint(1, 254)])
    sport = random.randint(1024, 65535)
    seq, ack = random.getrandbits(32), (random.getrandbits(32) if flags == 0x10 else 0)
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ck = csum(src + d + struct.pack('!BBH', 0, 6, 20) + tcp)
    tcp = tcp[:16] + struct.pack('!H', ck) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, i & 0xffff, 0, 64, 6, 0, src, d)
    s.sendto(ip + tcp, (dst, 0))
took = time.time() - start
print('%d %s in %.2f s: %.0f/s' % (count, mode, took, count / took))
"#;

fn connections(topo: &Topology) -> u64 {
    counter(&topo.rvsadm_json("stats"), "total.connections")
}

#[test]
fn syn_proxy_serves_clients_and_keeps_no_state_for_spoofed_handshakes() {
    // The flood and the download want the machine to themselves.
    let _heavy = netns::heavy();
    let started = Instant::now();
    let topo = Topology::nat(2);
    let web = topo.web("rr", &[1, 1]).setting("syn_proxy", "true");
    let rvsd = topo.start_rvsd(1, &[web]);

    // Requests and a download through the proxy's handshake and its
    // sequence translation.
    let t0 = Instant::now();
    let results = topo.curls(20);
    let per_request_ms = t0.elapsed().as_secs_f64() * 1000.0 / 20.0;
    assert_all_answered(&results, &rvsd);
    let t = topo.check_huge_download(&rvsd, 16 << 20);
    let stats = topo.rvsadm_json("stats");
    assert_eq!(
        counter(&stats, "total.synproxy_cookies_accepted"),
        21,
        "{stats}"
    );
    assert!(counter(&stats, "total.synproxy_acks_sent") >= 21, "{stats}");
    // The request that follows the handshake ACK at once waited for its
    // real server in rvsd, not for the client's retransmission timeout.
    assert!(
        per_request_ms < 150.0,
        "{per_request_ms:.0} ms per request: {stats}"
    );
    let legit = connections(&topo);
    assert!(legit <= 21, "{legit} connections for 21 clients: {stats}");

    // Spoofed SYNs, then spoofed SYN-then-ACKs, while a client keeps
    // making requests.
    let script = topo.dir.write("spoof.py", SPOOFER);
    const FLOOD: usize = 20_000;
    let mut rates = Vec::new();
    for mode in ["syn", "ack"] {
        let flood = topo
            .client
            .command("python3")
            .args([
                &netns::path_str(&script),
                VIP,
                "80",
                &FLOOD.to_string(),
                mode,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let during = topo.curls(10);
        let out = flood.wait_with_output().expect("the spoofer ends");
        assert!(out.status.success(), "spoofer: {out:?}");
        assert_all_answered(&during, &rvsd);
        rates.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    std::thread::sleep(Duration::from_millis(300));
    let stats = topo.rvsadm_json("stats");
    let after = counter(&stats, "total.connections");
    assert!(
        after <= legit + 20,
        "{after} connections after {FLOOD} spoofed SYNs and {FLOOD} spoofed ACKs \
         ({legit} before, 20 legitimate requests since): {stats}"
    );
    let synacks = counter(&stats, "total.synproxy_synacks_sent");
    let refused = counter(&stats, "total.drops.syn_cookie_refused");
    let kept = counter(&stats, "total.synproxy_segments_kept");
    // Every spoofed segment rvsd received was answered or refused; the
    // device may lose some of a burst at this rate.
    assert!(synacks >= 41 + FLOOD as u64 / 2, "{stats}");
    assert!(refused >= FLOOD as u64 / 2, "{stats}");
    assert_eq!(counter(&stats, "total.drops.table_full"), 0, "{stats}");
    result_line(&format!(
        "synproxy: 40 requests ({per_request_ms:.1} ms each, sequential curls) and a 16 MiB \
         download ({:.1} MB/s) answered; floods {:?}; connections {legit} before, {after} \
         after; {synacks} cookie SYN-ACKs, {refused} ACKs refused; {kept} client segments \
         kept for their real server",
        t.bytes as f64 / t.seconds / 1e6,
        rates
    ));
    let _ = stop_rvsd(rvsd);
    took(
        "syn_proxy_serves_clients_and_keeps_no_state_for_spoofed_handshakes",
        started,
    );
}

#[test]
fn syn_proxy_with_two_workers_on_a_device_without_rss() {
    let _heavy = netns::heavy();
    let started = Instant::now();
    let topo = Topology::nat(2);
    let web = topo.web("rr", &[1, 1]).setting("syn_proxy", "true");
    let rvsd = topo.start_rvsd(2, &[web]);
    // Each segment of a handshake reaches the worker that owns its client
    // (handed over when another received it), which alone knows the
    // connection and the segments it keeps.
    let results = topo.curls(20);
    assert_all_answered(&results, &rvsd);
    let stats = stop_rvsd(rvsd);
    assert_eq!(
        counter(&stats, "total.synproxy_cookies_accepted"),
        20,
        "{stats}"
    );
    assert_eq!(
        counter(&stats, "total.drops.syn_cookie_refused"),
        0,
        "{stats}"
    );
    assert_eq!(counter(&stats, "total.drops.no_connection"), 0, "{stats}");
    assert!(
        counter(&stats, "total.redirected") > 0,
        "no segment was handed between workers: {stats}"
    );
    took(
        "syn_proxy_with_two_workers_on_a_device_without_rss",
        started,
    );
}
