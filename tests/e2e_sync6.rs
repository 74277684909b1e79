#![cfg(feature = "dpdk")]
//! End to end, HA sync of IPv6 connections (issue 19): two rvsd, A
//! (master) and B (backup), with one IPv6 DR service, syncing over UDP on
//! a management link of their own. Keep-alive HTTP connections opened
//! through A, half before B starts (B's full resync brings them) and half
//! after (A's workers report them), appear in B's `rvsadm conns`
//! (version-4 sync datagrams, installed in B's IPv6 table); then A is
//! killed, B is made master, and
//! each connection's next request, on the same TCP connection (no SYN),
//! is answered by the same real server through B. B without the synced
//! connection would drop those segments (a non-SYN segment of no
//! connection), so the answers prove the sync.
//!
//! ```text
//!   client ns 2001:db8:1::10/64 --+
//!   A: rvsd "lan" 2001:db8:1::1   +-- switch ns (br0) --+-- rs1 2001:db8:2::11/64, VIP on lo
//!   B: rvsd "lan" 2001:db8:1::2 --+                     +-- rs2 2001:db8:2::12/64, VIP on lo
//!   A 192.168.100.1 ---- veth ---- B 192.168.100.2  (sync, port 8848)
//! ```
//!
//! DR, so the real servers' replies go to the client directly and need
//! no gateway that moves with the VIP (IPv6 has no floating addresses
//! yet). B, becoming master, announces the VIP by unsolicited neighbour
//! advertisement; the client's next segment reaches B.
#![deny(unsafe_code)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::ipv6::{addr6, ipv6_host, sysctls};
use support::{Netns, Rvsd, TempDir};

const T: Duration = Duration::from_secs(20);
const CLIENT: &str = "2001:db8:1::10";
const VIP: &str = "2001:db8:1::101";
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");
/// Keep-alive connections held across the failover.
const CONNS: usize = 6;

fn rs_ip(i: usize) -> String {
    format!("2001:db8:2::1{}", i + 1)
}

/// The client: opens `n` keep-alive connections to the VIP, one request
/// each ("first PORT BODY"), writes "ready", waits for the file `go`,
/// then asks again on each ("again PORT BODY" or "again PORT error ...")
/// and writes "done". Everything goes to the file `out`.
const CLIENT_PY: &str = r#"
import os, socket, sys, time
vip, n, out, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
log = open(out, "w", buffering=1)
def ask(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            raise Exception("closed")
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    want = int(length[0].split(b":")[1])
    while len(body) < want:
        d = s.recv(4096)
        if not d:
            raise Exception("closed")
        body += d
    return body.decode().strip()
socks = []
for _ in range(n):
    s = socket.create_connection((vip, 80), timeout=5)
    socks.append(s)
    log.write("first %d %s\n" % (s.getsockname()[1], ask(s)))
log.write("ready\n")
deadline = time.time() + 40
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
for s in socks:
    try:
        log.write("again %d %s\n" % (s.getsockname()[1], ask(s)))
    except Exception as e:
        log.write("again %d error %s\n" % (s.getsockname()[1], e))
log.write("done\n")
"#;

/// Waits (bounded) until the file at `path` has a line `line`; returns
/// its text.
fn wait_line(path: &Path, line: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {line:?} in the client's output after {timeout:?}: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rvsadm --socket SOCKET ARGS`, its stdout (panics when it fails).
fn rvsadm(socket: &Path, args: &[&str]) -> String {
    let mut all = vec!["--socket", socket.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = support::run(RVSADM, &all, T);
    assert!(out.success(), "rvsadm {args:?}: {out}");
    out.stdout
}

fn json(socket: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(rvsadm(socket, &all).trim()).expect("rvsadm --json")
}

/// The client's IPv6 connections an rvsd lists, as (client, real server,
/// state).
fn listed(socket: &Path) -> Vec<(String, String, String)> {
    let doc = json(socket, &["conns", "--limit", "1000"]);
    doc["connections"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|c| {
                    c["client"]
                        .as_str()
                        .is_some_and(|s| s.starts_with(&format!("[{CLIENT}]:")))
                })
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or("?").to_string();
                    (s("client"), s("real_server"), s("state"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// rvsd's config: one port on the switch with `own` addresses, the DR
/// service, and the `[ha]` section.
fn config(dir: &TempDir, name: &str, lan: &str, own: &[&str], mac: &str, ha: &str) -> String {
    let mut c = support::single_port_config(&format!("net_af_packet0,iface={lan}"), own, Some(mac));
    let socket = dir.join(&format!("{name}.sock"));
    c += &format!(
        "\n[control]\nsocket = {}\n",
        support::toml_str(socket.to_str().unwrap())
    );
    c += &format!(
        "\n[[virtual_server]]\nname = \"dr6\"\naddress = \"[{VIP}]:80\"\nprotocol = \"tcp\"\n\
         scheduler = \"rr\"\nforward = \"dr\"\n\n  [virtual_server.health_check]\n  type = \"none\"\n"
    );
    for i in 0..2 {
        c += &format!(
            "  [[virtual_server.real_server]]\n  address = \"[{}]:80\"\n  weight = 1\n\n",
            rs_ip(i)
        );
    }
    c + ha
}

#[test]
fn ipv6_connections_sync_to_the_backup_and_survive_a_failover() {
    support::require_root("network namespaces and DPDK");
    let started = Instant::now();
    let dir = TempDir::new("e2e-sync6");
    let sw = Netns::new();
    let client = Netns::new();
    let lbs: Vec<Netns> = (0..2).map(|_| Netns::new()).collect();
    let rs: Vec<Netns> = (0..2).map(|_| Netns::new()).collect();
    sysctls(
        &sw,
        &[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    );
    for ns in [&client].into_iter().chain(lbs.iter()).chain(rs.iter()) {
        ipv6_host(ns);
    }
    sw.run_ok("ip", &["link", "add", "br0", "type", "bridge"], T);
    sw.link_up("br0");
    let mut attach = |ns: &Netns| -> String {
        let v = support::veth_pair(ns, &sw);
        sw.run_ok("ip", &["link", "set", &v.b, "master", "br0"], T);
        v.a
    };
    let client_dev = attach(&client);
    let lans: Vec<String> = lbs.iter().map(&mut attach).collect();
    let rs_devs: Vec<String> = rs.iter().map(&mut attach).collect();
    for (ns, lan) in lbs.iter().zip(&lans) {
        // rvsd's port: the kernel keeps off it.
        sysctls(ns, &[&format!("net.ipv6.conf.{lan}.disable_ipv6=1")]);
    }
    // The management link: sync between the two rvsd's kernel sockets.
    let mgmt = support::veth_pair(&lbs[0], &lbs[1]);
    lbs[0].run_ok(
        "ip",
        &["address", "add", "192.168.100.1/24", "dev", &mgmt.a],
        T,
    );
    lbs[1].run_ok(
        "ip",
        &["address", "add", "192.168.100.2/24", "dev", &mgmt.b],
        T,
    );
    addr6(&client, &client_dev, &format!("{CLIENT}/64"));
    for (i, ns) in rs.iter().enumerate() {
        let dev = &rs_devs[i];
        addr6(ns, dev, &format!("{}/64", rs_ip(i)));
        ns.link_up("lo");
        addr6(ns, "lo", &format!("{VIP}/128"));
        // What leaves from the VIP goes to the client on the link.
        ns.run_ok(
            "ip",
            &[
                "-6",
                "route",
                "add",
                "2001:db8:1::/64",
                "dev",
                dev,
                "table",
                "100",
            ],
            T,
        );
        ns.run_ok(
            "ip",
            &["-6", "rule", "add", "from", VIP, "lookup", "100"],
            T,
        );
    }
    let mut nginx: Vec<Child> = Vec::new();
    for (i, ns) in rs.iter().enumerate() {
        let d = dir.join(&format!("rs{}", i + 1));
        std::fs::create_dir_all(d.join("www")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("www/index.html"), format!("rs{}\n", i + 1)).unwrap();
        nginx.push(support::ipv6::start_nginx(
            ns,
            &d,
            &["[::]:80 ipv6only=on"],
            false,
        ));
    }

    let ha = |node: u32, state: &str, listen: &str, peer: &str| {
        format!(
            "\n[ha]\nnode_id = {node}\ninitial_state = \"{state}\"\n\
             sync_listen = \"{listen}:8848\"\nsync_peer = \"{peer}:8848\"\n"
        )
    };
    let a_conf = config(
        &dir,
        "a",
        &lans[0],
        &["192.0.2.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64"],
        "02:00:00:00:00:01",
        &ha(1, "master", "192.168.100.1", "192.168.100.2"),
    );
    let b_conf = config(
        &dir,
        "b",
        &lans[1],
        &["192.0.2.2/24", "2001:db8:1::2/64", "2001:db8:2::2/64"],
        "02:00:00:00:00:02",
        &ha(2, "backup", "192.168.100.2", "192.168.100.1"),
    );
    let (a_sock, b_sock) = (dir.join("a.sock"), dir.join("b.sock"));
    let go = dir.join("go");
    // Keep-alive connections through A, one request each: half before B
    // starts (B gets them from its full resync: A's dump of its IPv6
    // table), half after (B gets them as A's workers report them).
    let open = |name: &str, n: usize| -> (Child, PathBuf, Vec<(String, String)>) {
        let out = dir.join(name);
        let child = client
            .command("python3")
            .args(["-c", CLIENT_PY, VIP, &n.to_string()])
            .args([out.to_str().unwrap(), go.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let text = wait_line(&out, "ready", Duration::from_secs(20));
        let firsts: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("first "))
            .map(|l| {
                let (port, body) = l.split_once(' ').unwrap();
                (port.to_string(), body.to_string())
            })
            .collect();
        assert_eq!(firsts.len(), n, "{text}");
        assert!(
            firsts.iter().all(|(_, b)| b == "rs1" || b == "rs2"),
            "{text}"
        );
        (child, out, firsts)
    };
    let mut a = Rvsd::start(&dir.write("a.toml", &a_conf), Some(&lbs[0]));
    a.wait_ready(Duration::from_secs(30));
    let early = open("early.out", CONNS / 2);
    let mut b = Rvsd::start(&dir.write("b.toml", &b_conf), Some(&lbs[1]));
    b.wait_ready(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&b_sock, &["ha", "status"])["sync"]["resyncs"] != 1 {
        assert!(Instant::now() < deadline, "B completed no resync");
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = open("late.out", CONNS - CONNS / 2);
    eprintln!(
        "A and B ready, {CONNS} connections open after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let firsts: Vec<(String, String)> = early.2.iter().chain(&late.2).cloned().collect();

    // A lists them; B, its backup, lists the same, ESTABLISHED, to the
    // same real servers.
    let on_a = listed(&a_sock);
    assert_eq!(on_a.len(), CONNS, "A's conns: {on_a:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let on_b = loop {
        let l = listed(&b_sock);
        if l.len() >= CONNS && l.iter().all(|(_, _, s)| s == "ESTABLISHED") {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "B lists {l:?}, A {on_a:?}; B's sync: {}",
            json(&b_sock, &["ha", "status"])["sync"]
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut sorted_a = on_a.iter().map(|(c, r, _)| (c, r)).collect::<Vec<_>>();
    let mut sorted_b = on_b.iter().map(|(c, r, _)| (c, r)).collect::<Vec<_>>();
    sorted_a.sort();
    sorted_b.sort();
    assert_eq!(sorted_a, sorted_b, "B's connections are A's");
    for (port, body) in &firsts {
        let client_end = format!("[{CLIENT}]:{port}");
        let (_, real, _) = on_b.iter().find(|(c, _, _)| *c == client_end).unwrap();
        let want = if body == "rs1" { rs_ip(0) } else { rs_ip(1) };
        assert_eq!(*real, format!("[{want}]:80"), "{client_end}");
    }
    let text = rvsadm(&b_sock, &["conns"]);
    assert!(text.contains(&format!("[{CLIENT}]:")), "{text}");
    // The workers publish their counters every 100 ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let total = json(&b_sock, &["stats"])["total"].clone();
        if total["connections"].as_u64().unwrap_or(0) >= CONNS as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's connection count does not include its IPv6 table: {total}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let b_sync = json(&b_sock, &["ha", "status"])["sync"].clone();
    eprintln!(
        "B lists A's {CONNS} IPv6 connections after {:.1} s; B's sync: {b_sync}",
        started.elapsed().as_secs_f64()
    );

    // Failover: A dies, B becomes master and announces the VIP; each
    // connection's next request (no SYN) is answered through B by the
    // same real server.
    a.signal("KILL");
    let role = rvsadm(&b_sock, &["ha", "master"]);
    assert!(role.contains("master"), "{role}");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&go, "").unwrap();
    let mut after = String::new();
    for (mut child, out, _) in [early, late] {
        after += &wait_line(&out, "done", Duration::from_secs(45));
        let _ = child.kill();
        let _ = child.wait();
    }
    for (port, body) in &firsts {
        let want = format!("again {port} {body}");
        assert!(
            after.lines().any(|l| l == want),
            "connection {port} (first answered by {body}) after the failover:\n{after}\n\
             --- B's log ---\n{}",
            b.log()
        );
    }
    // B forwarded them (requests and the client's ACKs; counters are
    // published every 100 ms) without making a connection of its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    let b_total = loop {
        let total = json(&b_sock, &["stats"])["total"].clone();
        let n = |k: &str| total[k].as_u64().unwrap_or(0);
        if n("conns_synced") >= CONNS as u64 && n("forwarded") >= CONNS as u64 {
            break total;
        }
        assert!(Instant::now() < deadline, "B's counters: {total}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(b_total["conns_created"], 0, "{b_total}");

    let stopped = b.stop(Duration::from_secs(20));
    for mut n in nginx {
        let _ = n.kill();
        let _ = n.wait();
    }
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    eprintln!("e2e sync6 took {:.1} s", started.elapsed().as_secs_f64());
}
