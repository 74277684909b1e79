#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! The HA sync under attack, end to end (issue 17): the NAT HA pair of
//! `e2e_ha` (`HaTopology::nat`, no keepalived: roles set with `rvsadm ha`),
//! both rvsd with the same `[ha] sync_key_file`, and an attacker on the
//! management network who can send anything, from any address and port,
//! including the peer's own (a raw socket writing its own IPv4 and UDP
//! headers), and can read the link (an `AF_PACKET` capture):
//!
//! 1. **spoofed first datagrams**: before the real master ever spoke, B
//!    receives datagrams with another sender id from the master's address
//!    on another port, and from its exact address and port;
//! 2. **forged records**: connections with a 136-year timeout, from the
//!    master's address and port;
//! 3. **replay**: a datagram the master really sent, captured and sent
//!    again;
//! 4. **resync storm**: thousands of resync requests to the master, from
//!    the backup's address and port and from other ports.
//!
//! Each attack must be dropped and counted by reason, install nothing, and
//! leave the real sync working: B, started before A (a standby waiting for
//! its master), still gets A's live connections, and after a switch-over
//! every idle keep-alive connection opened through A answers through B.
//! Figures: `cargo test --features dpdk --test e2e_sync_attack 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{heavy, result_line, HaTopology, IdleVerdict, HA_MGMT_A, HA_MGMT_B, HA_SYNC_PORT};
use std::time::{Duration, Instant};

/// Idle keep-alive connections opened through A.
const IDLE_CONNS: usize = 20;
/// How long node B may take to count the synced connections.
const SYNC_WAIT: Duration = Duration::from_secs(15);

/// The attacker: a Python script run in a namespace, `MODE COUNT [DEV]`.
/// Sync datagrams are built as `docs/sync-protocol.md` (version 2) says,
/// with a MAC of random bytes (the attacker has no key).
const ATTACKER: &str = r#"
import os, socket, struct, sys, time
mode, count = sys.argv[1], int(sys.argv[2])
A, B, PORT = "__A__", "__B__", __PORT__

def record(client, cport, timeout, vport=80, real="10.1.0.11"):
    # TCP ESTABLISHED, the test's service (VIP 198.51.100.100:80) and rs1.
    return struct.pack("!BBBB4s4s4sHHHHI", 6, 1, 0, 0, socket.inet_aton(client),
                       socket.inet_aton("198.51.100.100"), socket.inet_aton(real),
                       cport, vport, 8080, 0, timeout)

def datagram(kind, sender, seq, records=()):
    h = b"RVSS" + struct.pack("!BBBBIQQHH", 2, kind, 0, 0, sender, 1 << 62, seq, len(records), 0)
    return h + b"".join(records) + os.urandom(16)

def raw_udp(src, sport, dst, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

def spoof(src, dst, payload):
    # From src:PORT exactly: the peer's own address and port.
    raw.sendto(raw_udp(src, PORT, dst, PORT, payload), (dst, 0))

if mode == "first":
    # To B, as if from A, with another sender id: from A's address on an
    # ephemeral port (wrong_port), and from A's address and port (bad_mac).
    for i in range(count):
        d = datagram(1, 4242, i + 1, [record("100.64.0.1", 1000 + i, 0xffffffff)])
        udp.sendto(d, (B, PORT))
        spoof(A, B, d)
elif mode == "forge":
    # To B from A's address and port: 48 connections of 136 years each.
    for i in range(count):
        recs = [record("100.64.%d.%d" % (i % 250, j + 1), 2000 + j, 0xffffffff) for j in range(48)]
        spoof(A, B, datagram(1, 1, 1000 + i, recs))
        time.sleep(0.002)  # paced: the point is B's checks, not its socket buffer
elif mode == "replay":
    # Capture one connections datagram A sends to B, then send it again.
    dev = sys.argv[3]
    # ETH_P_ALL: only taps of every protocol see outgoing frames.
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    cap.bind((dev, 0x0003))
    cap.settimeout(1.0)
    deadline = time.time() + 15
    payload = None
    seen = 0
    while payload is None and time.time() < deadline:
        try:
            frame = cap.recv(4096)
        except socket.timeout:
            continue
        ip = frame[14:]
        seen += 1
        if frame[12:14] != b"\x08\x00" or len(ip) < 28 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        p = ip[ihl + 8:]
        if (src, sport, dst, dport) == (A, PORT, B, PORT) and p[:4] == b"RVSS" and p[5] == 1:
            payload = p
    if payload is None:
        print("captured nothing in %d frames" % seen)
        sys.exit(1)
    seq = struct.unpack("!Q", payload[20:28])[0]
    for _ in range(count):
        spoof(A, B, payload)
        time.sleep(0.002)
    print("replayed seq %d, %d records, %d times" % (seq, struct.unpack("!H", payload[28:30])[0], count))
elif mode == "forge_open":
    # Without a key: from A's address and port, per datagram 40 connections
    # of 136 years, 4 to an unknown service, 4 to an unknown real server.
    for i in range(count):
        recs = [record("100.64.%d.%d" % (i % 250, j + 1), 3000 + j, 0xffffffff) for j in range(40)]
        recs += [record("100.65.%d.%d" % (i % 250, j + 1), 3000 + j, 60, vport=443) for j in range(4)]
        recs += [record("100.66.%d.%d" % (i % 250, j + 1), 3000 + j, 60, real="10.1.0.99") for j in range(4)]
        spoof(A, B, datagram(1, 4242, 1000 + i, recs))
        time.sleep(0.002)
elif mode == "storm_open":
    # Without a key: resync requests to A from B's address and port.
    for i in range(count):
        spoof(B, A, datagram(2, 2, 9000 + i))
        if i % 10 == 9:
            time.sleep(0.005)
elif mode == "storm":
    # Resync requests to A: from B's address and port, and from elsewhere.
    for i in range(count):
        d = datagram(2, 2, 5000 + i)
        spoof(B, A, d)
        udp.sendto(d, (A, PORT))
        if i % 10 == 9:
            time.sleep(0.005)
"#;

fn attacker(ha: &HaTopology, from: usize, args: &[&str]) -> String {
    let script = ATTACKER
        .replace("__A__", HA_MGMT_A)
        .replace("__B__", HA_MGMT_B)
        .replace("__PORT__", &HA_SYNC_PORT.to_string());
    let mut all = vec!["-c", script.as_str()];
    all.extend_from_slice(args);
    ha.ns(from)
        .run_ok("python3", &all, Duration::from_secs(30))
        .stdout
}

/// A counter of node `i`'s `ha status` `sync` part (`dropped.bad_mac`...).
fn sync_counter(ha: &HaTopology, i: usize, path: &[&str]) -> u64 {
    let mut v = ha.ha_status(i)["sync"].clone();
    for p in path {
        v = v[*p].clone();
    }
    v.as_u64().unwrap_or(0)
}

/// Waits (bounded) until node `i`'s counter reaches `at_least`.
fn wait_counter(ha: &HaTopology, i: usize, path: &[&str], at_least: u64) -> u64 {
    let what = format!("sync {path:?}");
    ha.wait_at_least(i, &what, at_least, Duration::from_secs(10), |ha, i| {
        sync_counter(ha, i, path)
    })
}

/// Node `i`'s connections whose client is in 100.64.0.0/16 (the forged
/// ones), and how many it has in all.
fn conns(ha: &HaTopology, i: usize) -> (usize, usize) {
    let doc = ha.json(i, &["conns", "--limit", "100000"]);
    let list = doc["connections"].as_array().cloned().unwrap_or_default();
    let forged = list
        .iter()
        .filter(|c| {
            c["client"]
                .as_str()
                .is_some_and(|s| s.starts_with("100.64."))
        })
        .count();
    (forged, list.len())
}

/// Asserts that every idle connection was answered after the switch-over
/// to B.
fn assert_all_idle_ok(verdict: &IdleVerdict) {
    assert_eq!(
        verdict.ok, IDLE_CONNS,
        "idle connections failed after the switch-over to B: {:?}",
        verdict.failures
    );
}

#[test]
fn sync_attacks_change_nothing_and_are_counted() {
    let _heavy = heavy();
    let started = Instant::now();
    let ha = HaTopology::nat(2);
    let services = [ha.topo.web("rr", &[1, 1])];
    let key = ha
        .topo
        .dir
        .write("sync.key", "7f3c0e5a9b1d24c6e8f0a2b4c6d8e0f1\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let extra = format!("sync_key_file = {:?}\n", key.display().to_string());

    // 1. B waits for its master; the attacker speaks first.
    let b = ha.start_rvsd_with(1, "backup", &services, &extra);
    assert_eq!(ha.ha_status(1)["sync"]["authenticated"], true);
    attacker(&ha, 0, &["first", "20"]);
    let first_wrong_port = wait_counter(&ha, 1, &["dropped", "wrong_port"], 20);
    let first_bad_mac = wait_counter(&ha, 1, &["dropped", "bad_mac"], 20);
    let s = ha.ha_status(1)["sync"].clone();
    assert!(s["peer_node_id"].is_null(), "B learned a peer: {s}");
    assert_eq!(s["received_datagrams"], 0, "{s}");
    assert_eq!(conns(&ha, 1).1, 0, "B installed a spoofed connection");

    // A starts as master; B still gets its live connections.
    let a = ha.start_rvsd_with(0, "master", &services, &extra);
    let idle = ha.start_idle_conns(IDLE_CONNS);
    let synced = ha.wait_synced(1, IDLE_CONNS as u64, SYNC_WAIT);
    let s = ha.ha_status(1)["sync"].clone();
    assert_eq!(s["peer_node_id"], 1, "B does not hear A: {s}");
    let (_, b_conns_before) = conns(&ha, 1);

    // 2. Forged records from A's address and port.
    attacker(&ha, 0, &["forge", "200"]);
    let forge_bad_mac = wait_counter(&ha, 1, &["dropped", "bad_mac"], first_bad_mac + 200);
    let (forged, b_conns_after_forge) = conns(&ha, 1);
    assert_eq!(forged, 0, "a forged connection was installed on B");

    // 3. Replay of a datagram A really sent (A sends one for each new
    //    connection: fresh requests while the attacker listens).
    let replayed = std::thread::scope(|scope| {
        let dev = ha.nodes[0].mgmt_dev.clone();
        let ha = &ha;
        let capture = scope.spawn(move || attacker(ha, 0, &["replay", "50", &dev]));
        for _ in 0..20 {
            let _ = ha.topo.http_get_many(&ha.topo.vip, "/", 2);
            if capture.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        capture.join().expect("the capture thread")
    });
    let replays = wait_counter(&ha, 1, &["dropped", "replay"], 50);

    // 4. A resync storm to A.
    let a_before = ha.ha_status(0)["sync"].clone();
    attacker(&ha, 1, &["storm", "2000"]);
    let storm_bad_mac = wait_counter(&ha, 0, &["dropped", "bad_mac"], 2000);
    let storm_wrong_port = wait_counter(&ha, 0, &["dropped", "wrong_port"], 2000);
    let a_after = ha.ha_status(0)["sync"].clone();
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    assert_eq!(
        n(&a_after, "resyncs"),
        n(&a_before, "resyncs"),
        "the storm got a dump"
    );
    let storm_sent = n(&a_after, "sent_datagrams") - n(&a_before, "sent_datagrams");

    // The real sync still works, and carries the live connections over.
    let synced_after = ha.wait_synced(1, synced + 1, SYNC_WAIT);
    let b_status = ha.ha_status(1)["sync"].clone();
    assert_eq!(b_status["dropped"]["stale_boot"], 0, "{b_status}");
    assert_eq!(b_status["peer_restarts"], 0, "{b_status}");
    assert_eq!(conns(&ha, 1).0, 0, "a forged connection on B");
    ha.rvsadm(0, &["ha", "backup"]);
    ha.rvsadm(1, &["ha", "master"]);
    let verdict = idle.ask_again(Duration::from_secs(30));
    let fresh = ha
        .topo
        .http_get_many(&ha.topo.vip, "/", 10)
        .iter()
        .filter(|r| !matches!(r, Ok(body) if body.starts_with("rs")))
        .count();
    result_line(&format!(
        "sync_attack first: wrong_port={first_wrong_port} bad_mac={first_bad_mac} | \
         forge: bad_mac={} b_conns {b_conns_before}->{b_conns_after_forge} forged_installed={forged} | \
         replay: {} b_replay={replays} | storm: a_bad_mac={storm_bad_mac} a_wrong_port={storm_wrong_port} \
         a_sent_during_storm={storm_sent} a_resyncs={} | b_conns_synced {synced}->{synced_after} \
         idle_ok_after_switch={}/{IDLE_CONNS} fresh_failures={fresh}/10 total_s={:.1}",
        forge_bad_mac - first_bad_mac,
        replayed.trim(),
        n(&a_after, "resyncs"),
        verdict.ok,
        started.elapsed().as_secs_f64(),
    ));
    assert_all_idle_ok(&verdict);
    assert_eq!(fresh, 0, "fresh requests failed through B");
    drop((a, b));
}

/// Without a key the sync trusts the management network, and still bounds
/// what a spoofer with the peer's own address and port can do: forged
/// records never outlive the local timeouts and never name a service or
/// server this balancer does not have, the real master is never locked
/// out, and a resync storm gets one dump per 5 s, not one per request.
#[test]
fn without_a_key_forged_records_are_capped_and_dumps_rate_limited() {
    let _heavy = heavy();
    let started = Instant::now();
    let ha = HaTopology::nat(2);
    let services = [ha.topo.web("rr", &[1, 1])];
    let a = ha.start_rvsd(0, "master", &services);
    let b = ha.start_rvsd(1, "backup", &services);
    assert_eq!(ha.ha_status(1)["sync"]["authenticated"], false);
    let idle = ha.start_idle_conns(IDLE_CONNS);
    let synced = ha.wait_synced(1, IDLE_CONNS as u64, SYNC_WAIT);

    // Forged records from A's address and port, with another sender id.
    const FORGED: u64 = 50;
    attacker(&ha, 0, &["forge_open", &FORGED.to_string()]);
    let capped = wait_counter(&ha, 1, &["ttl_capped"], FORGED * 40);
    let unknown_service = wait_counter(&ha, 1, &["records_dropped", "unknown_service"], FORGED * 4);
    let unknown_real = wait_counter(
        &ha,
        1,
        &["records_dropped", "unknown_real_server"],
        FORGED * 4,
    );
    let doc = ha.json(1, &["conns", "--limit", "100000"]);
    let list = doc["connections"].as_array().cloned().unwrap_or_default();
    let forged: Vec<_> = list
        .iter()
        .filter(|c| c["client"].as_str().is_some_and(|s| s.starts_with("100.6")))
        .collect();
    let longest = forged
        .iter()
        .filter_map(|c| c["expires_in_s"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        forged.iter().all(|c| c["client"]
            .as_str()
            .is_some_and(|s| s.starts_with("100.64."))),
        "a record for an unknown service or server was installed"
    );
    assert!(longest <= 900, "a forged connection lives {longest} s");

    // The real master is still heard.
    let _ = ha.topo.http_get_many(&ha.topo.vip, "/", 5);
    let synced_after = ha.wait_synced(1, synced + 5, SYNC_WAIT);

    // A resync storm from B's address and port: one dump, the rest refused.
    // (B's own resync at its start was a dump: wait until that one no
    // longer counts, so the storm's first request gets one.)
    std::thread::sleep(Duration::from_secs(5));
    let before = ha.ha_status(0)["sync"].clone();
    const STORM: u64 = 500;
    let storm_started = Instant::now();
    attacker(&ha, 1, &["storm_open", &STORM.to_string()]);
    let storm_s = storm_started.elapsed().as_secs_f64();
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let limited = wait_counter(&ha, 0, &["dropped", "dump_rate_limited"], STORM - 1);
    let after = ha.ha_status(0)["sync"].clone();
    let dumps = n(&after, "resyncs") - n(&before, "resyncs");
    let sent = n(&after, "sent_datagrams") - n(&before, "sent_datagrams");
    // One dump per started 5 s of storm.
    let allowed = 1 + (storm_s / 5.0) as u64;
    assert!(
        (1..=allowed).contains(&dumps),
        "{dumps} dumps for a {storm_s:.1} s storm"
    );

    ha.rvsadm(0, &["ha", "backup"]);
    ha.rvsadm(1, &["ha", "master"]);
    let verdict = idle.ask_again(Duration::from_secs(30));
    result_line(&format!(
        "sync_attack_unkeyed forge: datagrams={FORGED} ttl_capped={capped} unknown_service={unknown_service} \
         unknown_real_server={unknown_real} forged_installed={} longest_forged_s={longest} | \
         b_conns_synced {synced}->{synced_after} | storm: requests={STORM} in {storm_s:.2} s \
         a_dumps={dumps} a_dump_rate_limited={limited} a_datagrams_sent={sent} | \
         idle_ok_after_switch={}/{IDLE_CONNS} total_s={:.1}",
        forged.len(),
        verdict.ok,
        started.elapsed().as_secs_f64(),
    ));
    assert_all_idle_ok(&verdict);
    drop((a, b));
}
