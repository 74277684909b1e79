#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! Floods of spoofed packets against a small connection table, end to end
//! (issue 17, "a table that floods cannot fill"): `rvsd` with one worker
//! and `conn_table_size = 4096` in the NAT and DR topologies of
//! `tests/netns`, legitimate clients in the client namespace holding
//! keep-alive HTTP connections, downloading and opening new connections
//! (and, for NAT, new UDP flows) all along, while `tests/netns/flood.c`
//! (built here with `cc`) sends from the same namespace, through a raw
//! socket, packets from random sources in 100.64.0.0/10:
//!
//! - NAT: UDP datagrams to the UDP service (a table of 4096 filled by
//!   4096 datagrams refused every new client for the 300 s UDP timeout
//!   before the table shed UDP flows);
//! - DR: a blind SYN-then-ACK per source (ESTABLISHED entries no real
//!   server ever answered, 15 minutes each before unproven entries were
//!   evictable).
//!
//! Each asserts: no failed request, no broken download, new clients of
//! each service admitted during the flood, the table never above its size,
//! nothing refused (`table_full`), the flood's entries counted as
//! evictions. Figures are printed as `RESULT flood ...` lines:
//! `cargo test --test e2e_flood 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::cases::took;
use netns::flood::{self, Flood};
use netns::{big_file_bytes, path_str, result_line, Service, Topology, BIG_FILE};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::counter;

/// `dataplane.conn_table_size`: small, so that a flood passes it many
/// times over in seconds.
const TABLE: u64 = 4096;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(8);
/// The flood's rate, packets a second (`RVS_FLOOD_PPS` sets another; 0:
/// as fast as the sender goes). What the veths carry to rvsd here without
/// loss while the machine is shared: at 10,000 a second a third of the
/// flood, and of the clients' packets with it, was lost in the kernel
/// before rvsd (a congested link, not the table, failing requests). The
/// sender alone reaches far more (the RESULT line of a run with
/// `RVS_FLOOD_PPS=0`). At this rate the table of 4,096 turns over in
/// about 0.8 s: an unproven connection has that long to be proven.
const FLOOD_PPS: u64 = 5_000;
/// Time the legitimate clients run before the flood: long enough for DR
/// connections to be proven (`[timeouts] proof_ms`, 1 s by default).
const BEFORE: Duration = Duration::from_secs(2);
/// Time they go on after it.
const AFTER: Duration = Duration::from_secs(1);

fn flood_pps() -> u64 {
    std::env::var("RVS_FLOOD_PPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FLOOD_PPS)
}

/// The legitimate clients, in one Python process: `KEEP` keep-alive
/// connections each asking `GET /` every 100 ms (reconnecting, and
/// counting a failure, when one breaks); a new connection (`Connection:
/// close`) every 50 ms; one download of `BIG_FILE` paced to last about
/// `PACE` seconds, written to `BODY`; with a UDP port, a new UDP flow
/// (a new socket) every 100 ms waiting for its echo (five tries of 1 s:
/// UDP may lose a datagram at a flooded server's socket). Every wait is
/// 10 s: on this shared 2-CPU machine a flooded path is slow, and a
/// request that retransmits is answered, not failed. Runs
/// until the file `STOP` exists; then prints `verdict: {json}`.
const LEGIT: &str = r#"
import hashlib, json, os, socket, sys, threading, time
import http_answer  # tests/netns, on PYTHONPATH
host, keep, udp_port, stop, body_path, pace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
lock = threading.Lock()
v = {'keepalive': {'ok': 0, 'fail': []}, 'new': {'ok': [], 'fail': []},
     'udp': {'ok': [], 'fail': []}, 'download': {'bytes': 0, 'error': '', 'seconds': 0}}

def read_answer(s):
    status, body = http_answer.read_answer(s)
    if not status.startswith(b'HTTP/1.1 200') and not status.startswith(b'HTTP/1.0 200'):
        raise ValueError('answer %r' % status)
    return body

def keepalive(k):
    s = None
    while not os.path.exists(stop):
        try:
            if s is None:
                s = socket.create_connection((host, 80), timeout=10)
            s.sendall(b'GET / HTTP/1.1\r\nHost: vip\r\n\r\n')
            read_answer(s)
            with lock:
                v['keepalive']['ok'] += 1
        except Exception as e:
            with lock:
                v['keepalive']['fail'].append('%d at %.3f: %s: %s' % (k, time.time(), type(e).__name__, e))
            if s is not None:
                s.close()
            s = None
        time.sleep(0.1)

def new_conns():
    while not os.path.exists(stop):
        t = time.time()
        try:
            s = socket.create_connection((host, 80), timeout=10)
            s.settimeout(10)
            s.sendall(b'GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n')
            read_answer(s)
            s.close()
            with lock:
                v['new']['ok'].append(t)
        except Exception as e:
            with lock:
                v['new']['fail'].append('at %.3f: %s: %s' % (t, type(e).__name__, e))
        time.sleep(0.05)

def udp_flows():
    while not os.path.exists(stop):
        t = time.time()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        ok = False
        for _ in range(5):
            try:
                s.sendto(b'legit %f' % t, (host, udp_port))
                s.recvfrom(2048)
                ok = True
                break
            except socket.timeout:
                pass
        s.close()
        with lock:
            v['udp']['ok' if ok else 'fail'].append(t)
        time.sleep(0.1)

def download():
    t0 = time.time()
    got = 0
    try:
        s = socket.create_connection((host, 80), timeout=5)
        s.settimeout(5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b'GET /big.bin HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n')
        lines, body = http_answer.read_head(s)
        length = [int(l.split(b':', 1)[1]) for l in lines if l.lower().startswith(b'content-length:')][0]
        rate = length / pace
        with open(body_path, 'wb') as f:
            f.write(body)
            got = len(body)
            while got < length:
                d = s.recv(16384)
                if not d:
                    raise EOFError('closed by the peer after %d of %d bytes' % (got, length))
                f.write(d)
                got += len(d)
                ahead = got / rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        s.close()
    except Exception as e:
        v['download']['error'] = '%s: %s' % (type(e).__name__, e)
    v['download']['bytes'] = got
    v['download']['seconds'] = time.time() - t0

ts = [threading.Thread(target=keepalive, args=(k,)) for k in range(keep)]
ts.append(threading.Thread(target=new_conns))
ts.append(threading.Thread(target=download))
if udp_port:
    ts.append(threading.Thread(target=udp_flows))
for t in ts:
    t.start()
for t in ts:
    t.join()
print('verdict: ' + json.dumps(v), flush=True)
"#;

/// Keep-alive connections the legitimate client holds.
const KEEP: u32 = 4;

/// The legitimate clients, running.
struct Legit {
    child: Option<Child>,
    stop: PathBuf,
    body: PathBuf,
}

impl Legit {
    fn start(topo: &Topology, udp_port: u16, pace: Duration) -> Legit {
        let stop = topo.dir.join("legit.stop");
        let body = topo.dir.join("legit-download.bin");
        let mut cmd = topo.client.command("python3");
        cmd.env("PYTHONPATH", support::repo_root().join("tests/netns"));
        cmd.args([
            "-u",
            "-c",
            LEGIT,
            &topo.vip,
            &KEEP.to_string(),
            &udp_port.to_string(),
            &path_str(&stop),
            &path_str(&body),
            &pace.as_secs_f64().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the clients: {e}"));
        Legit {
            child: Some(child),
            stop,
            body,
        }
    }

    /// Stops the clients and returns their verdict and the downloaded
    /// bytes.
    fn finish(mut self) -> (serde_json::Value, Vec<u8>) {
        std::fs::write(&self.stop, b"stop\n").expect("write the stop file");
        let mut child = self.child.take().expect("running clients");
        let status = support::wait_timeout(&mut child, Duration::from_secs(30));
        if status.is_none() {
            let _ = child.kill();
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("clients' output: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("verdict: "))
            .unwrap_or_else(|| panic!("the clients gave no verdict ({status:?}): {text}{err}"));
        let verdict = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the clients' verdict is not JSON ({e}): {line}"));
        let body = std::fs::read(&self.body).unwrap_or_default();
        (verdict, body)
    }
}

impl Drop for Legit {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    netns::unix_seconds(t)
}

/// Times in `list` (Unix seconds) within `[from, to]`.
fn within(list: &serde_json::Value, from: f64, to: f64) -> usize {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_f64())
                .filter(|&t| t >= from && t <= to)
                .count()
        })
        .unwrap_or(0)
}

/// What a flood run saw.
struct Run {
    sent: u64,
    rate: f64,
    verdict: serde_json::Value,
    body: Vec<u8>,
    flood_from: f64,
    flood_to: f64,
    /// The most connections `rvsadm stats` showed during the flood.
    max_conns: u64,
    stats: serde_json::Value,
    metrics: String,
    /// rvsd's device counters at stop (its `interface ...` log lines).
    device: String,
}

/// Starts the clients, waits [`BEFORE`], floods for [`FLOOD`] while
/// sampling the table's fill, waits [`AFTER`], stops everything.
fn flood_run(topo: &Topology, rvsd: support::Rvsd, mode: &str, port: u16, udp_port: u16) -> Run {
    let exe = flood::build(topo);
    let pace = BEFORE + FLOOD + AFTER - Duration::from_millis(500);
    let legit = Legit::start(topo, udp_port, pace);
    std::thread::sleep(BEFORE);
    let flood_from = unix(SystemTime::now());
    let flood = Flood::start(topo, &exe, mode, port, FLOOD, flood_pps());
    let mut max_conns = 0;
    let until = Instant::now() + FLOOD;
    while Instant::now() < until {
        let stats = topo.rvsadm_json("stats");
        max_conns = max_conns.max(counter(&stats, "total.connections"));
        std::thread::sleep(Duration::from_millis(250));
    }
    let (sent, rate) = flood.finish();
    let flood_to = unix(SystemTime::now());
    std::thread::sleep(AFTER);
    let (verdict, body) = legit.finish();
    // Workers publish every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let metrics = topo.metrics();
    let mut rvsd = rvsd;
    let stopped = rvsd.stop(Duration::from_secs(20));
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    let stats = stopped.stats();
    let device = stopped
        .log
        .lines()
        .filter_map(|l| l.split_once("interface ").map(|(_, r)| r))
        .filter(|r| r.contains("device counters"))
        .map(|r| r.replace(": device counters", ""))
        .collect::<Vec<_>>()
        .join(", ");
    Run {
        sent,
        rate,
        verdict,
        body,
        flood_from,
        flood_to,
        max_conns,
        stats,
        metrics,
        device,
    }
}

/// The assertions both floods share, after a `RESULT flood NAME` line
/// with what the run saw.
fn check(run: &Run, name: &str, kind: &str) {
    let v = &run.verdict;
    let fails = |k: &str| v[k]["fail"].as_array().cloned().unwrap_or_default();
    let keep_ok = v["keepalive"]["ok"].as_u64().unwrap_or(0);
    // The table is full within the flood's first second: connections
    // answered in its second half were admitted into a full table.
    let full_from = (run.flood_from + run.flood_to) / 2.0;
    let new_during = within(&v["new"]["ok"], full_from, run.flood_to);
    let udp_during = within(&v["udp"]["ok"], full_from, run.flood_to);
    let s = &run.stats;
    let created = counter(s, "total.conns_created");
    let evicted = counter(s, &format!("total.conns_evicted_{kind}"));
    let evicted_tcp = counter(s, "total.conns_evicted_unproven_tcp");
    let evicted_udp = counter(s, "total.conns_evicted_udp");
    let refused = counter(s, "total.drops.table_full");
    let received = counter(s, "total.rx_packets");
    let want = big_file_bytes();
    let download_ok = v["download"]["error"] == "" && run.body == want;
    result_line(&format!(
        "flood {name}: sender {:.0} pps ({} packets in {:.1} s), rvsd received {received} frames; \
         table {TABLE}: peak {} connections, {created} created, {evicted_tcp} unproven TCP and {evicted_udp} UDP evicted, {refused} refused; \
         rvsd's devices: {}; \
         clients: {keep_ok} keep-alive answers ({} failed), {new_during} new connections answered in the flood's second half \
         ({} failed in all), {udp_during} new UDP flows answered in it ({} unanswered in all), \
         download of {} bytes {}",
        run.rate,
        run.sent,
        FLOOD.as_secs_f64(),
        run.max_conns,
        run.device,
        fails("keepalive").len(),
        fails("new").len(),
        fails("udp").len(),
        run.body.len(),
        if download_ok { "intact" } else { "BROKEN" },
    ));
    assert!(
        fails("keepalive").is_empty(),
        "keep-alive requests failed: {:?}",
        fails("keepalive")
    );
    assert!(
        fails("new").is_empty(),
        "new connections failed: {:?}",
        fails("new")
    );
    assert!(keep_ok >= 50, "too few keep-alive answers: {v}");
    assert!(
        new_during >= 3,
        "only {new_during} new connections answered in the flood's second half: {v}"
    );
    assert_eq!(
        v["download"]["error"], "",
        "the download broke: {}",
        v["download"]
    );
    assert!(
        run.body == want,
        "the download is not {BIG_FILE}: {} bytes of {}",
        run.body.len(),
        want.len()
    );
    assert!(
        run.max_conns <= TABLE,
        "table above its size: {}",
        run.max_conns
    );
    assert_eq!(refused, 0, "{s}");
    assert!(
        created >= 4 * TABLE,
        "the flood did not pass the table four times ({created} connections): {s}"
    );
    // Every connection past the table's size took an evicted one's place
    // (the few that expired aside).
    assert!(
        evicted + TABLE + 500 >= created,
        "{evicted} evictions for {created} connections: {s}"
    );
    let metric = format!("rvs_worker_connections_evicted_total{{lcore=\"1\",kind=\"{kind}\"}} ");
    let counted: u64 = run
        .metrics
        .lines()
        .find_map(|l| l.strip_prefix(&metric))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {metric} in the metrics"));
    assert!(
        counted > 0 && counted <= evicted,
        "{metric}{counted}, stats {evicted}"
    );
}

#[test]
fn nat_udp_flood_from_random_sources_leaves_every_client_served() {
    let _heavy = netns::heavy();
    let started = Instant::now();
    let mut topo = Topology::nat(2);
    topo.conn_table_size = TABLE as u32;
    topo.metrics_listen = Some("127.0.0.1:9917".to_string());
    topo.start_udp_echo();
    let mut dns = Service::nat("dns", &format!("{}:53", topo.vip), "udp", "rr");
    for rs in &topo.real_servers {
        dns = dns.real(rs.addr(netns::UDP_ECHO_PORT), 1);
    }
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1]), dns]);
    let run = flood_run(&topo, rvsd, "udp", 53, 53);
    check(&run, "nat udp", "udp");
    let v = &run.verdict;
    let udp_fail = v["udp"]["fail"].as_array().map_or(0, |a| a.len());
    let full_from = (run.flood_from + run.flood_to) / 2.0;
    let udp_during = within(&v["udp"]["ok"], full_from, run.flood_to);
    assert_eq!(udp_fail, 0, "UDP flows unanswered: {v}");
    assert!(
        udp_during >= 3,
        "only {udp_during} UDP flows answered in the flood's second half: {v}"
    );
    took(
        "nat_udp_flood_from_random_sources_leaves_every_client_served",
        started,
    );
}

#[test]
fn dr_blind_syn_then_ack_flood_leaves_every_client_served() {
    let _heavy = netns::heavy();
    let started = Instant::now();
    let mut topo = Topology::dr(2);
    topo.conn_table_size = TABLE as u32;
    topo.metrics_listen = Some("127.0.0.1:9917".to_string());
    let rvsd = topo.start_rvsd(1, &[topo.web("rr", &[1, 1])]);
    let run = flood_run(&topo, rvsd, "synack", 80, 0);
    check(&run, "dr syn-then-ack", "unproven_tcp");
    took(
        "dr_blind_syn_then_ack_flood_leaves_every_client_served",
        started,
    );
}
