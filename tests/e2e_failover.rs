#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! Fault tolerance end to end (issue 5): rvsd in the NAT topology with a
//! management link (`Topology::nat_with_management`: the lb namespace's
//! kernel, 10.1.0.254, on the real servers' bridge, which is where the
//! health checks leave from), nginx real servers, and a client load of
//! short requests, each on its own connection, recorded one by one with
//! its times and outcome.
//!
//! ```text
//!   client 198.51.100.10 --- [outside] rvsd [inside] --- br0 --- rs1 10.1.0.11:8080
//!   VIP 198.51.100.100        198.51.100.1   10.1.0.1    |    \-- rs2 10.1.0.12:8080
//!                             lb kernel 10.1.0.254 ------+     \- rs3 10.1.0.13:8080
//! ```
//!
//! Health checks: `interval_ms = 500`, `timeout_ms = 300`, `rise = 2`,
//! `fall = 2`. A server that fails must be marked down within
//! `fall x interval + interval` (plus the check's timeout, and 200 ms for
//! the control loop's tick and the log), counted from the fault to rvsd's
//! `real server ... is down` line; after that no request may fail and no
//! new connection may go to it. Requests that fail between the fault and
//! the detection (in flight on the server, or scheduled to it before rvsd
//! knew) are counted and reported, not judged.
//!
//! Every figure is printed as a `RESULT failover ...` line past the
//! output capture:
//! `cargo test --test e2e_failover 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{
    assert_all_answered, count_answers, heavy, listed_real_server, ms_between, result_line,
    stop_rvsd, total_conns, unix_seconds, LoadRequest, Service, Topology, BIG_FILE, HTTP_PORT,
    SETTLE, VIP,
};
use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use support::{CmdOutput, Rvsd};

/// The health checks' settings in every test here.
const INTERVAL_MS: u64 = 500;
const TIMEOUT_MS: u64 = 300;
const RISE: u32 = 2;
const FALL: u32 = 2;
/// Allowance for the control loop's 100 ms tick and the log's way to us.
const MARGIN_MS: u64 = 200;

/// Longest allowed from a fault to the `is down` line:
/// `fall x interval + interval + timeout + margin`.
fn detect_bound() -> Duration {
    Duration::from_millis(u64::from(FALL) * INTERVAL_MS + INTERVAL_MS + TIMEOUT_MS + MARGIN_MS)
}

/// Longest allowed from a repair to the `is up` line:
/// `rise x interval + interval + timeout + margin`.
fn rise_bound() -> Duration {
    Duration::from_millis(u64::from(RISE) * INTERVAL_MS + INTERVAL_MS + TIMEOUT_MS + MARGIN_MS)
}

/// The client load: 4 loops, each starting a request every 40 ms
/// (about 100 requests a second in all), each request given 5 s.
const LOAD_THREADS: u32 = 4;
const LOAD_INTERVAL: Duration = Duration::from_millis(40);
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A bound on any one load's life, should a test forget to stop it.
const LOAD_MAX: Duration = Duration::from_secs(90);

/// The virtual service as `rvsadm weight` names it.
const SERVICE: &str = "198.51.100.100:80/tcp";

/// The NAT topology with a management link, `n` nginx real servers, and
/// a `metrics_listen` on the lb namespace's loopback.
fn topology(n: usize) -> Topology {
    assert!(
        netns::have("nginx"),
        "these tests kill and restart nginx real servers: install nginx"
    );
    let mut topo = Topology::nat_with_management(n);
    assert_eq!(topo.http, netns::HttpServer::Nginx, "nginx real servers");
    topo.metrics_listen = Some(netns::metrics_listen(20000));
    topo
}

/// `VIP:80/tcp` over `servers` (indices into the topology's real servers)
/// with their weights, health-checked by `kind` (`tcp`, `http`) with the
/// settings above.
fn checked_service(
    topo: &Topology,
    scheduler: &str,
    kind: &str,
    servers: &[(usize, u32)],
) -> Service {
    let mut s = Service::nat("web", &format!("{VIP}:80"), "tcp", scheduler)
        .health_check(Some(kind))
        .health_timing(INTERVAL_MS, TIMEOUT_MS, RISE, FALL);
    if kind == "http" {
        s = s
            .health_setting("http_path", "\"/\"")
            .health_setting("http_expect_status", "200");
    }
    for &(i, w) in servers {
        s = s.real(topo.real_servers[i].addr(HTTP_PORT), w);
    }
    s
}

/// Every real server's `ip:port`, in order.
fn rs_addrs(topo: &Topology) -> Vec<String> {
    topo.real_servers
        .iter()
        .map(|r| r.addr(HTTP_PORT))
        .collect()
}

/// rvsd's line when real server `addr` of `web` goes down / comes up.
fn down_line(addr: &str) -> String {
    format!("real server {addr} (web) is down")
}
fn up_line(addr: &str) -> String {
    format!("real server {addr} (web) is up")
}

/// One real server's entry of `rvsadm --json list`.
fn listed<'a>(list: &'a serde_json::Value, addr: &str) -> &'a serde_json::Value {
    listed_real_server(list, "web", addr)
}

/// `conns` (connections scheduled since start) of real server `addr`,
/// after the workers have published (they do every 100 ms).
fn conns_of(topo: &Topology, addr: &str) -> u64 {
    std::thread::sleep(Duration::from_millis(250));
    let list = topo.rvsadm_list();
    listed(&list, addr)["conns"]
        .as_u64()
        .unwrap_or_else(|| panic!("no conns for {addr}: {list}"))
}

/// Minimum, median and maximum of `xs`.
fn spread(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], median, v[n - 1])
}

/// Answers per real server among `reqs`.
fn split(reqs: &[&LoadRequest]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in reqs {
        let key = if r.ok {
            r.server.clone()
        } else {
            "<failed>".into()
        };
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

fn show(reqs: &[&LoadRequest], limit: usize) -> String {
    reqs.iter()
        .take(limit)
        .map(|r| {
            format!(
                "  start {:.3} end {:.3} thread {} port {} {}\n",
                r.start,
                r.end,
                r.thread,
                r.port,
                if r.ok {
                    format!("ok {}", r.server)
                } else {
                    format!("FAILED {}", r.error)
                }
            )
        })
        .collect()
}

fn took(name: &str, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{name} took {secs:.1} s");
    result_line(&format!("failover {name} took {secs:.1} s"));
}

// ------------------------------------------------------ slow downloads

/// A download of `/big.bin` through the VIP at a limited rate, running
/// in the background: a long-lived connection that carries data through
/// rvsd to the end (the client's receive buffer is small, so the real
/// server cannot hand over the file early and close); its outcome.
struct SlowDownload {
    handle: Option<JoinHandle<CmdOutput>>,
}

/// What a [`SlowDownload`] got.
#[derive(Debug)]
struct Downloaded {
    sha256: String,
    bytes: u64,
    local_port: u16,
    seconds: f64,
}

/// The slow downloader: `HOST PATH BYTES_PER_SECOND`; prints one JSON
/// object (the status line, body length and sha256, the client's port).
const SLOW_CLIENT: &str = r#"
import hashlib, json, socket, sys, time
host, path, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.settimeout(10)
s.connect((host, 80))
port = s.getsockname()[1]
s.sendall(b'GET ' + path.encode() + b' HTTP/1.0\r\nHost: rvs-test\r\n\r\n')
t0 = time.time()
head, h, n, got = b'', hashlib.sha256(), 0, 0
status = None
while True:
    d = s.recv(8192)
    if not d:
        break
    got += len(d)
    if status is None:
        head += d
        if b'\r\n\r\n' in head:
            top, _, rest = head.partition(b'\r\n\r\n')
            status = top.split(b'\r\n', 1)[0].decode('latin-1')
            h.update(rest)
            n += len(rest)
    else:
        h.update(d)
        n += len(d)
    ahead = got / rate - (time.time() - t0)
    if ahead > 0:
        time.sleep(ahead)
print(json.dumps({'status': status, 'bytes': n, 'sha256': h.hexdigest(), 'port': port,
                  'seconds': time.time() - t0}))
"#;

impl SlowDownload {
    /// Starts it at `rate` bytes a second.
    fn start(topo: &Topology, rate: u32) -> SlowDownload {
        let path = format!("/{BIG_FILE}");
        let mut cmd = topo.client.command("python3");
        cmd.args(["-c", SLOW_CLIENT, VIP, &path, &rate.to_string()]);
        // Bounded by run_cmd; the client namespace's teardown kills it
        // too, should the test fail first.
        let handle =
            std::thread::spawn(move || support::run_cmd(&mut cmd, Duration::from_secs(40)));
        SlowDownload {
            handle: Some(handle),
        }
    }

    fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for it; `Err` with its output when it failed.
    fn finish(mut self) -> Result<Downloaded, String> {
        let h = self.handle.take().expect("finished once");
        let out = h
            .join()
            .map_err(|_| "the download thread panicked".to_string())?;
        if !out.success() {
            return Err(out.to_string());
        }
        let v: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).map_err(|e| format!("{e}: {out}"))?;
        if v["status"].as_str().is_none_or(|st| !st.contains(" 200 ")) {
            return Err(format!("not a 200 answer: {out}"));
        }
        Ok(Downloaded {
            sha256: v["sha256"].as_str().unwrap_or("").to_string(),
            bytes: v["bytes"].as_u64().unwrap_or(0),
            local_port: v["port"].as_u64().unwrap_or(0) as u16,
            seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        })
    }
}

/// The established connections through the VIP, as
/// `(client port, real server)`, from `rvsadm --json conns`.
fn established(topo: &Topology) -> Vec<(u16, String)> {
    let doc = topo.rvsadm_json("conns");
    doc["connections"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["state"] == "ESTABLISHED")
                .filter_map(|c| {
                    let port = c["client"].as_str()?.rsplit(':').next()?.parse().ok()?;
                    Some((port, c["real_server"].as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `n` slow downloads one after the other, each once the one
/// before is established (so a round-robin scheduler puts one on each
/// server); returns them and, for each, the real server it went to.
fn slow_downloads(topo: &Topology, n: usize, rate: u32) -> (Vec<SlowDownload>, Vec<String>) {
    let mut downloads = Vec::new();
    for _ in 0..n {
        let before = established(topo).len();
        downloads.push(SlowDownload::start(topo, rate));
        let deadline = Instant::now() + Duration::from_secs(10);
        while established(topo).len() <= before {
            assert!(
                Instant::now() < deadline,
                "slow download not established after 10 s: {:?}",
                established(topo)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let conns = established(topo);
    assert_eq!(conns.len(), n, "one connection per download: {conns:?}");
    let servers = conns.iter().map(|(_, rs)| rs.clone()).collect();
    (downloads, servers)
}

/// Waits (at most 20 s) until every one of `downloads` has finished.
fn wait_finished(downloads: &[SlowDownload]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !downloads.iter().all(SlowDownload::is_finished) {
        assert!(
            Instant::now() < deadline,
            "the slow downloads did not finish in 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each of the finished `downloads`, asserted whole with the sha256
/// `want_sha`; `what` names them when one failed.
fn byte_exact(downloads: Vec<SlowDownload>, want_sha: &str, what: &str) -> Vec<Downloaded> {
    downloads
        .into_iter()
        .map(|d| {
            let d = d.finish().unwrap_or_else(|e| panic!("{what} failed: {e}"));
            assert_eq!(d.bytes, netns::BIG_FILE_LEN as u64, "{d:?}");
            assert_eq!(d.sha256, want_sha, "{d:?}");
            d
        })
        .collect()
}

/// The sha256 of the file every real server serves as `/big.bin`.
fn big_file_sha(topo: &Topology) -> String {
    let path = topo.real_servers[0].dir.join("www").join(BIG_FILE);
    let out = support::run_ok(
        "sha256sum",
        &[&netns::path_str(&path)],
        Duration::from_secs(30),
    );
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

// ------------------------------------------------------------ metrics

/// The value of the sample of `name` whose labels contain every one of
/// `labels` (e.g. `real_server="10.1.0.11:8080"`).
fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn rs_label(addr: &str) -> String {
    format!("real_server=\"{addr}\"")
}

// ------------------------------------------------------------ failover

/// How a real server is made to fail, and repaired.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// SIGKILL to every nginx process; repaired by starting nginx again.
    Kill,
    /// Its veth down in its namespace; repaired by bringing it up.
    LinkDown,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::LinkDown => "link-down",
        }
    }

    fn inflict(self, topo: &mut Topology, i: usize) -> SystemTime {
        match self {
            Fault::Kill => topo.kill_http(i),
            Fault::LinkDown => topo.set_link(i, false),
        }
    }

    /// Repairs; returns the time the server serves again.
    fn repair(self, topo: &mut Topology, i: usize) -> SystemTime {
        match self {
            Fault::Kill => topo.restart_http(i),
            Fault::LinkDown => {
                topo.set_link(i, true);
            }
        }
        SystemTime::now()
    }
}

/// What one fault cycle measured.
struct Cycle {
    fault_at: SystemTime,
    detected_at: SystemTime,
}

/// Issue 5's first two checks: under a steady client load, `fault` on
/// rs2, three times (repaired in between). Each time: detected within
/// the bound; from the detection on, no request fails, none is answered
/// by rs2, and rvsadm's `conns` for rs2 stays put; failures between the
/// fault and the detection are counted and reported. Across the whole
/// run, no request fails outside those windows.
fn failover_under_load(fault: Fault, test: &str) {
    let _heavy = heavy();
    let started = Instant::now();
    let mut topo = topology(3);
    let service = checked_service(&topo, "rr", "tcp", &[(0, 1), (1, 1), (2, 1)]);
    let rvsd = topo.start_rvsd(1, &[service]);
    let victim = 1;
    let addr = topo.real_servers[victim].addr(HTTP_PORT);
    let (down, up) = (down_line(&addr), up_line(&addr));

    let load = topo.start_load(LOAD_THREADS, LOAD_INTERVAL, LOAD_TIMEOUT, LOAD_MAX);
    std::thread::sleep(Duration::from_millis(1000));
    let warm = load.requests();
    assert!(
        warm.iter().all(|r| r.ok),
        "requests failed before any fault:\n{}\n--- rvsd log ---\n{}",
        show(&warm.iter().filter(|r| !r.ok).collect::<Vec<_>>(), 10),
        rvsd.log()
    );
    let warm_split = split(&warm.iter().collect::<Vec<_>>());
    assert_eq!(
        warm_split.len(),
        3,
        "all three serve at first: {warm_split:?}"
    );

    let mut cycles = Vec::new();
    let mut detect_ms = Vec::new();
    let mut rise_ms = Vec::new();
    let mut failed_counts = Vec::new();
    for cycle in 1..=3 {
        // Faults at different points of the check interval, so the
        // detection times spread over what the interval allows.
        std::thread::sleep(Duration::from_millis((cycle * 170) % INTERVAL_MS));
        let downs = rvsd.log_count(&down);
        let ups = rvsd.log_count(&up);
        let fault_at = fault.inflict(&mut topo, victim);
        let detected_at = rvsd.wait_log_count(&down, downs, detect_bound() + Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "{}: rs2 not marked down {:.1} s after the {} (cycle {cycle})\n--- rvsd log ---\n{}",
                    fault.name(),
                    (detect_bound() + Duration::from_secs(5)).as_secs_f64(),
                    fault.name(),
                    rvsd.log()
                )
            });
        let detect = ms_between(fault_at, detected_at);
        let reason = rvsd.last_log_line(&down);
        // Observe the load for a while with rs2 down.
        let conns_then = conns_of(&topo, &addr);
        let list = topo.rvsadm_list();
        assert_eq!(listed(&list, &addr)["health"], "down", "{list}");
        std::thread::sleep(Duration::from_millis(1500));
        let conns_later = conns_of(&topo, &addr);
        let observed_until = SystemTime::now();

        let reqs = load.requests();
        let (t_fault, t_detect) = (unix_seconds(fault_at), unix_seconds(detected_at));
        let t_until = unix_seconds(observed_until);
        let after: Vec<&LoadRequest> = reqs
            .iter()
            .filter(|r| r.start >= t_detect && r.start < t_until)
            .collect();
        let failed_after: Vec<&LoadRequest> = after.iter().copied().filter(|r| !r.ok).collect();
        let from_victim: Vec<&LoadRequest> = after
            .iter()
            .copied()
            .filter(|r| r.server == topo.real_servers[victim].name)
            .collect();
        let in_window: Vec<&LoadRequest> = reqs
            .iter()
            .filter(|r| r.start < t_detect && r.end >= t_fault)
            .collect();
        let failed_in_window = in_window.iter().filter(|r| !r.ok).count();
        let slowest = in_window
            .iter()
            .map(|r| (r.end - r.start) * 1e3)
            .fold(0.0, f64::max);
        result_line(&format!(
            "failover {} cycle={cycle} detect_ms={detect:.0} failed_in_flight={failed_in_window} \
             (of {} requests between the {} and the detection, slowest {slowest:.0} ms) \
             requests_after_detection={} failed_after_detection={} rs2_conns_after={}->{} reason: {}",
            fault.name(),
            in_window.len(),
            fault.name(),
            after.len(),
            failed_after.len(),
            conns_then,
            conns_later,
            reason.split("is down: ").nth(1).unwrap_or(&reason)
        ));
        assert!(
            detect <= detect_bound().as_millis() as f64,
            "{} cycle {cycle}: detected {detect:.0} ms after the fault, more than \
             fall x interval + interval + timeout + {MARGIN_MS} ms = {} ms\n--- rvsd log ---\n{}",
            fault.name(),
            detect_bound().as_millis(),
            rvsd.log()
        );
        assert!(
            after.len() >= 50,
            "the load went on after the detection: {} requests\n{}",
            after.len(),
            load.log_text()
        );
        assert!(
            failed_after.is_empty(),
            "{} cycle {cycle}: {} of {} requests started after rs2 was marked down failed:\n{}\n--- rvsd log ---\n{}",
            fault.name(),
            failed_after.len(),
            after.len(),
            show(&failed_after, 20),
            rvsd.log()
        );
        assert!(
            from_victim.is_empty(),
            "{} cycle {cycle}: rs2 answered after it was marked down:\n{}",
            fault.name(),
            show(&from_victim, 10)
        );
        assert_eq!(
            conns_then,
            conns_later,
            "{} cycle {cycle}: new connections went to rs2 after it was marked down",
            fault.name()
        );
        detect_ms.push(detect);
        failed_counts.push(failed_in_window);
        cycles.push(Cycle {
            fault_at,
            detected_at,
        });

        // Repair, and wait until it is up again.
        let repaired_at = fault.repair(&mut topo, victim);
        let up_at = rvsd.wait_log_count(&up, ups, rise_bound() + Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "rs2 not up again {:.1} s after the repair (cycle {cycle})\n--- rvsd log ---\n{}",
                    (rise_bound() + Duration::from_secs(5)).as_secs_f64(),
                    rvsd.log()
                )
            });
        let rise = ms_between(repaired_at, up_at);
        rise_ms.push(rise);
        assert!(
            rise <= rise_bound().as_millis() as f64,
            "cycle {cycle}: up {rise:.0} ms after the repair, more than \
             rise x interval + interval + timeout + {MARGIN_MS} ms = {} ms",
            rise_bound().as_millis()
        );
        // rs2 takes requests again before the next fault.
        let back = SystemTime::now();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let t = unix_seconds(back);
            if load
                .requests()
                .iter()
                .any(|r| r.start >= t && r.ok && r.server == topo.real_servers[victim].name)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: rs2 answered nothing within 5 s of being up again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    let reqs = load.stop();
    // Failures only ever between a fault and its detection.
    let stray: Vec<&LoadRequest> = reqs
        .iter()
        .filter(|r| {
            !r.ok
                && !cycles.iter().any(|c| {
                    r.start < unix_seconds(c.detected_at) && r.end >= unix_seconds(c.fault_at)
                })
        })
        .collect();
    let failed_total = reqs.iter().filter(|r| !r.ok).count();
    let elapsed = reqs.iter().map(|r| r.end).fold(f64::NAN, f64::max)
        - reqs.iter().map(|r| r.start).fold(f64::NAN, f64::min);
    let (lo, med, hi) = spread(&detect_ms);
    let (rlo, rmed, rhi) = spread(&rise_ms);
    result_line(&format!(
        "failover {} detection over {} faults: detect_ms min={lo:.0} median={med:.0} max={hi:.0} \
         (each {:?}; bound {} ms); up again after repair ms min={rlo:.0} median={rmed:.0} max={rhi:.0}; \
         failed_in_flight per fault {:?}; load {} requests in {:.1} s ({:.0}/s), {} failed, {} outside fault windows",
        fault.name(),
        detect_ms.len(),
        detect_ms.iter().map(|d| d.round() as i64).collect::<Vec<_>>(),
        detect_bound().as_millis(),
        failed_counts,
        reqs.len(),
        elapsed,
        reqs.len() as f64 / elapsed,
        failed_total,
        stray.len()
    ));
    assert!(
        stray.is_empty(),
        "requests failed outside the fault-to-detection windows:\n{}\n--- rvsd log ---\n{}",
        show(&stray, 20),
        rvsd.log()
    );
    let _ = stop_rvsd(rvsd);
    took(test, started);
}

#[test]
fn killing_a_real_servers_nginx_under_load() {
    failover_under_load(Fault::Kill, "killing_a_real_servers_nginx_under_load");
}

#[test]
fn cutting_a_real_servers_link() {
    failover_under_load(Fault::LinkDown, "cutting_a_real_servers_link");
}

/// 90 sequential requests (one connection each): all answered, and with
/// rr over three servers about a third each. Returns the split.
fn thirds(topo: &Topology, rvsd: &Rvsd, what: &str) -> BTreeMap<String, usize> {
    let results = topo.http_get_many(&topo.vip_host(), "/", 90);
    assert_all_answered(&results, rvsd);
    let counts = count_answers(&results);
    for rs in &topo.real_servers {
        let got = counts.get(&rs.name).copied().unwrap_or(0);
        assert!(
            (25..=35).contains(&got),
            "{what}: {} answered {got} of 90, not about a third: {counts:?}",
            rs.name
        );
    }
    counts
}

/// Issue 5's third check, with `type = "http"` checks: rs2 fails three
/// ways (nginx killed, link cut, `GET /` answering 403: its index.html
/// removed) and is repaired;
/// each time it is down within the bound, up after `rise` successful
/// checks, and then takes a third of the next 90 requests (rr).
#[test]
fn a_recovered_server_comes_back() {
    let _heavy = heavy();
    let started = Instant::now();
    let mut topo = topology(3);
    let service = checked_service(&topo, "rr", "http", &[(0, 1), (1, 1), (2, 1)]);
    let rvsd = topo.start_rvsd(1, &[service]);
    let victim = 1;
    let addr = topo.real_servers[victim].addr(HTTP_PORT);
    let (down, up) = (down_line(&addr), up_line(&addr));
    thirds(&topo, &rvsd, "before any fault");
    let index = topo.real_servers[victim].dir.join("www").join("index.html");

    for how in ["kill", "link-down", "http-403"] {
        let downs = rvsd.log_count(&down);
        let ups = rvsd.log_count(&up);
        let fault_at = match how {
            "kill" => Fault::Kill.inflict(&mut topo, victim),
            "link-down" => Fault::LinkDown.inflict(&mut topo, victim),
            _ => {
                let at = SystemTime::now();
                std::fs::remove_file(&index).expect("remove rs2's index.html");
                at
            }
        };
        let down_at = rvsd
            .wait_log_count(&down, downs, detect_bound() + Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "{how}: rs2 not marked down\n--- rvsd log ---\n{}",
                    rvsd.log()
                )
            });
        let detect = ms_between(fault_at, down_at);
        let reason = rvsd.last_log_line(&down);
        if how == "http-403" {
            // No index.html: nginx answers 403 (directory listing off).
            assert!(
                reason.contains("answered 403, expected 200"),
                "the http check's reason names the status: {reason}"
            );
        }
        // While it is down the others take every request.
        let results = topo.http_get_many(&topo.vip_host(), "/", 30);
        assert_all_answered(&results, &rvsd);
        let counts = count_answers(&results);
        assert_eq!(counts.get("rs2"), None, "{how}: rs2 is down: {counts:?}");
        assert_eq!(counts.values().sum::<usize>(), 30, "{counts:?}");

        let repaired_at = match how {
            "kill" => Fault::Kill.repair(&mut topo, victim),
            "link-down" => Fault::LinkDown.repair(&mut topo, victim),
            _ => {
                std::fs::write(&index, "rs2\n").expect("restore rs2's index.html");
                SystemTime::now()
            }
        };
        let up_at = rvsd
            .wait_log_count(&up, ups, rise_bound() + Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "{how}: rs2 not up again after the repair\n--- rvsd log ---\n{}",
                    rvsd.log()
                )
            });
        let rise = ms_between(repaired_at, up_at);
        let up_reason = rvsd.last_log_line(&up);
        assert!(
            up_reason.contains(&format!("({RISE} successes in a row)"))
                && up_reason.contains("answered 200"),
            "up after {RISE} successful http checks: {up_reason}"
        );
        let list = topo.rvsadm_list();
        assert_eq!(listed(&list, &addr)["health"], "up", "{list}");
        let counts = thirds(&topo, &rvsd, &format!("after the {how} repair"));
        result_line(&format!(
            "failover recover (http check) {how}: down after {detect:.0} ms, up {rise:.0} ms after the repair \
             (bound {} ms), next 90 requests split {}",
            rise_bound().as_millis(),
            counts
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(",")
        ));
        assert!(
            detect <= detect_bound().as_millis() as f64,
            "{how}: down {detect:.0} ms after the fault, bound {} ms",
            detect_bound().as_millis()
        );
        assert!(
            rise <= rise_bound().as_millis() as f64,
            "{how}: up {rise:.0} ms after the repair, bound {} ms",
            rise_bound().as_millis()
        );
        // Not on the first success: `rise` checks an interval apart (less
        // the time the repair took to be seen, up to 150 ms).
        let floor = (u64::from(RISE) - 1) * INTERVAL_MS - 150;
        assert!(
            rise >= floor as f64,
            "{how}: up {rise:.0} ms after the repair, sooner than {RISE} checks allow ({floor} ms)"
        );
    }
    let _ = stop_rvsd(rvsd);
    took("a_recovered_server_comes_back", started);
}

/// Connects to `VIP:80` from the client namespace `n` times, one after
/// the other, each given 3 s; per attempt the outcome (`refused`,
/// `connected`, `timeout`, an errno name) and the milliseconds it took.
fn timed_connects(topo: &Topology, n: usize) -> Vec<(String, f64)> {
    const PROBE: &str = "import errno, json, socket, sys, time\n\
        res = []\n\
        for _ in range(int(sys.argv[2])):\n\
        \x20   s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
        \x20   s.settimeout(3.0)\n\
        \x20   t = time.perf_counter()\n\
        \x20   try:\n\
        \x20       s.connect((sys.argv[1], 80))\n\
        \x20       what = 'connected'\n\
        \x20   except ConnectionRefusedError:\n\
        \x20       what = 'refused'\n\
        \x20   except socket.timeout:\n\
        \x20       what = 'timeout'\n\
        \x20   except OSError as e:\n\
        \x20       what = errno.errorcode.get(e.errno, str(e))\n\
        \x20   ms = (time.perf_counter() - t) * 1e3\n\
        \x20   s.close()\n\
        \x20   res.append([what, ms])\n\
        \x20   time.sleep(0.05)\n\
        print(json.dumps(res))\n";
    let out = topo.client.run(
        "python3",
        &["-c", PROBE, VIP, &n.to_string()],
        Duration::from_secs(10 + 4 * n as u64),
    );
    assert!(out.success(), "connect probe failed: {out}");
    serde_json::from_str::<Vec<(String, f64)>>(out.stdout.trim())
        .unwrap_or_else(|e| panic!("connect probe printed no JSON ({e}): {out}"))
}

/// Issue 5's fourth check: every nginx killed; once all are down, a new
/// connection is refused (RST) at once: under 100 ms, no hang.
#[test]
fn all_servers_down_refuses_at_once() {
    let _heavy = heavy();
    let started = Instant::now();
    let mut topo = topology(3);
    let service = checked_service(&topo, "rr", "tcp", &[(0, 1), (1, 1), (2, 1)]);
    let rvsd = topo.start_rvsd(1, &[service]);
    let before = timed_connects(&topo, 3);
    assert!(
        before.iter().all(|(w, _)| w == "connected"),
        "connects before the fault: {before:?}"
    );

    let downs: Vec<usize> = topo
        .real_servers
        .iter()
        .map(|rs| rvsd.log_count(&down_line(&rs.addr(HTTP_PORT))))
        .collect();
    let mut killed_at = Vec::new();
    for i in 0..topo.real_servers.len() {
        killed_at.push(topo.kill_http(i));
    }
    let mut detect = Vec::new();
    for (i, rs) in topo.real_servers.iter().enumerate() {
        let addr = rs.addr(HTTP_PORT);
        let at = rvsd
            .wait_log_count(
                &down_line(&addr),
                downs[i],
                detect_bound() + Duration::from_secs(5),
            )
            .unwrap_or_else(|| {
                panic!(
                    "{} not marked down\n--- rvsd log ---\n{}",
                    rs.name,
                    rvsd.log()
                )
            });
        detect.push(ms_between(killed_at[i], at));
    }
    let list = topo.rvsadm_list();
    for rs in &topo.real_servers {
        assert_eq!(
            listed(&list, &rs.addr(HTTP_PORT))["health"],
            "down",
            "{list}"
        );
    }

    let probes = timed_connects(&topo, 10);
    let latencies: Vec<f64> = probes.iter().map(|(_, ms)| *ms).collect();
    let (lo, med, hi) = spread(&latencies);

    // curl sees "Connection refused": exit code 7.
    let url = format!("http://{VIP}/");
    let curl = topo.client.run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "--connect-timeout",
            "3",
            "-w",
            "%{time_total}",
            &url,
        ],
        Duration::from_secs(10),
    );
    let curl_secs: f64 = curl.stdout.trim().parse().unwrap_or(f64::NAN);
    result_line(&format!(
        "failover all-down: detect_ms {:?}; refusal latency over {} connects ms min={lo:.2} median={med:.2} max={hi:.2} \
         (outcomes {:?}); curl exit={:?} time_total={:.1} ms: {}",
        detect.iter().map(|d| d.round() as i64).collect::<Vec<_>>(),
        probes.len(),
        probes.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(),
        curl.status.and_then(|s| s.code()),
        curl_secs * 1e3,
        curl.stderr.trim()
    ));
    assert!(
        probes.iter().all(|(w, _)| w == "refused"),
        "with every real server down a connect must be refused: {probes:?}\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    assert!(hi < 100.0, "refusals took up to {hi:.1} ms: {probes:?}");
    assert_eq!(
        curl.status.and_then(|s| s.code()),
        Some(7),
        "curl's exit code for a refused connection: {curl}"
    );
    assert!(
        curl.stderr.contains("onnection refused") || curl.stderr.contains("Couldn't connect"),
        "{curl}"
    );
    assert!(curl_secs < 0.1, "curl took {curl_secs} s to be refused");

    // One comes back: served again.
    let ups = rvsd.log_count(&up_line(&topo.real_servers[0].addr(HTTP_PORT)));
    topo.restart_http(0);
    rvsd.wait_log_count(
        &up_line(&topo.real_servers[0].addr(HTTP_PORT)),
        ups,
        rise_bound() + Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("rs1 not up again\n--- rvsd log ---\n{}", rvsd.log()));
    let results = topo.http_get_many(&topo.vip_host(), "/", 6);
    assert_all_answered(&results, &rvsd);
    assert_eq!(count_answers(&results).get("rs1"), Some(&6));

    let stats = stop_rvsd(rvsd);
    eprintln!("stats: {stats}");
    took("all_servers_down_refuses_at_once", started);
}

/// Issue 5's fifth check: under a steady load, a reload that removes
/// rs1, adds rs4 and changes weights: no request fails, rs4 takes
/// traffic, rs1 drains (a long download on it finishes byte-exact, it
/// is listed `draining`, its `conns` stop). Then broken files are
/// refused by `rvsadm reload` naming the field, the service unaffected;
/// and a SIGHUP reload applies a valid one.
#[test]
fn reload_under_load() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = topology(4);
    let first = checked_service(&topo, "wrr", "tcp", &[(0, 1), (1, 1), (2, 1)]);
    let rvsd = topo.start_rvsd(1, &[first]);
    let want_sha = big_file_sha(&topo);
    let addrs = rs_addrs(&topo);

    // Three long downloads (about 4 s each), one on each server.
    let downloads_at = SystemTime::now();
    let (downloads, on) = slow_downloads(&topo, 3, 1 << 20);
    let mut sorted = on.clone();
    sorted.sort();
    assert_eq!(sorted, addrs[..3], "one download on each of rs1..rs3");
    let rs1_port = established(&topo)
        .into_iter()
        .find(|(_, rs)| *rs == addrs[0])
        .map(|(p, _)| p)
        .expect("a download on rs1");

    let load = topo.start_load(LOAD_THREADS, LOAD_INTERVAL, LOAD_TIMEOUT, LOAD_MAX);
    std::thread::sleep(Duration::from_millis(800));

    // rs1 out, rs4 in, weights 2:1:1.
    let second = checked_service(&topo, "wrr", "tcp", &[(1, 2), (2, 1), (3, 1)]);
    topo.write_rvsd_config(1, std::slice::from_ref(&second));
    let reload_at = SystemTime::now();
    let out = topo.rvsadm(&["reload"]);
    let reloaded_at = SystemTime::now();
    assert!(
        out.success(),
        "rvsadm reload: {out}\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    let reload_ms = ms_between(reload_at, reloaded_at);
    eprintln!("rvsadm reload said: {}", out.stdout.trim());
    for a in [&addrs[0], &addrs[3]] {
        assert!(
            out.stdout.contains(a.as_str()),
            "the reload's summary names {a}: {out}"
        );
    }

    let list = topo.rvsadm_list();
    assert_eq!(
        listed(&list, &addrs[0])["draining"],
        true,
        "rs1 drains: {list}"
    );
    for (i, w) in [(1, 2), (2, 1), (3, 1)] {
        assert_eq!(listed(&list, &addrs[i])["draining"], false, "{list}");
        assert_eq!(listed(&list, &addrs[i])["weight"], w, "{list}");
    }
    // rs1's download lives on through the reload.
    assert!(
        established(&topo)
            .iter()
            .any(|(p, rs)| *p == rs1_port && *rs == addrs[0]),
        "the download on rs1 is still established after the reload: {:?}",
        established(&topo)
    );
    let rs1_conns = conns_of(&topo, &addrs[0]);
    std::thread::sleep(Duration::from_millis(1500));
    let rs1_conns_later = conns_of(&topo, &addrs[0]);
    assert_eq!(
        rs1_conns, rs1_conns_later,
        "no new connections to the removed rs1"
    );
    let rs4_conns = conns_of(&topo, &addrs[3]);
    assert!(
        rs4_conns > 0,
        "the added rs4 takes connections: {}",
        topo.rvsadm_list()
    );

    // Every download finishes byte-exact, rs1's after the reload.
    wait_finished(&downloads);
    let finished_at = SystemTime::now();
    let got = byte_exact(downloads, &want_sha, "a download across the reload");
    let rs1_download = got
        .iter()
        .find(|d| d.local_port == rs1_port)
        .unwrap_or_else(|| panic!("no download from port {rs1_port}: {got:?}"));
    let rs1_download_secs = rs1_download.seconds;

    // Broken files: refused, naming the field; nothing changes.
    let good = std::fs::read_to_string(topo.config_path()).expect("config");
    let mut refusals = Vec::new();
    for (what, broken, field) in [
        (
            "unknown key",
            good.replacen("weight = 2", "wieght = 2", 1),
            "wieght",
        ),
        (
            "bad address",
            good.replacen("\"10.1.0.14:8080\"", "\"10.1.0.300:8080\"", 1),
            "address",
        ),
    ] {
        assert_ne!(broken, good, "{what}: the edit applies");
        std::fs::write(topo.config_path(), &broken).expect("write config");
        let refused_before = rvsd.log_count("reload refused");
        let out = topo.rvsadm(&["reload"]);
        assert!(!out.success(), "{what}: a broken file is refused: {out}");
        assert!(
            out.stderr.contains(field) && out.stderr.contains("virtual_server[0].real_server["),
            "{what}: the error names the field `{field}`: {out}"
        );
        assert!(
            rvsd.log_count("reload refused") > refused_before,
            "{what}: rvsd logs the refusal\n--- rvsd log ---\n{}",
            rvsd.log()
        );
        let message = out
            .stderr
            .lines()
            .filter(|l| l.contains(field))
            .collect::<Vec<_>>()
            .join(" | ");
        result_line(&format!(
            "failover reload refused ({what}): rvsadm exit={:?}: {message}",
            out.status.and_then(|s| s.code())
        ));
        refusals.push(message);
        let list = topo.rvsadm_list();
        assert_eq!(listed(&list, &addrs[3])["weight"], 1, "config kept: {list}");
        assert_eq!(listed(&list, &addrs[1])["weight"], 2, "config kept: {list}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // SIGHUP with a valid file: rs4's weight to 2.
    let third = checked_service(&topo, "wrr", "tcp", &[(1, 2), (2, 1), (3, 2)]);
    topo.write_rvsd_config(1, &[third]);
    let hups = rvsd.log_count("SIGHUP: reloading");
    rvsd.signal("HUP");
    assert!(
        rvsd.wait_log_count("SIGHUP: reloading", hups, Duration::from_secs(5))
            .is_some(),
        "rvsd reloads on SIGHUP\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    let list = topo.rvsadm_list_until(SETTLE, |l| listed(l, &addrs[3])["weight"] == 2);
    assert_eq!(
        listed(&list, &addrs[3])["weight"],
        2,
        "SIGHUP applied the file: {list}"
    );
    std::thread::sleep(Duration::from_millis(700));

    let reqs = load.stop();
    let failed: Vec<&LoadRequest> = reqs.iter().filter(|r| !r.ok).collect();
    let t_reloaded = unix_seconds(reloaded_at);
    let after: Vec<&LoadRequest> = reqs.iter().filter(|r| r.start >= t_reloaded).collect();
    let after_split = split(&after);
    let t_fin = unix_seconds(finished_at);
    let between: Vec<&LoadRequest> = reqs
        .iter()
        .filter(|r| r.start >= t_reloaded && r.end <= t_fin)
        .collect();
    let between_split = split(&between);
    result_line(&format!(
        "failover reload under load: {} requests, {} failed; reload took {reload_ms:.0} ms; \
         split after the reload {:?} (weights rs2:2 rs3:1 rs4:1, rs4 2 after SIGHUP); \
         rs1 conns {}->{} while draining; 3 downloads across the reload byte-exact \
         (rs1's took {rs1_download_secs:.1} s, the reload {:.1} s into it)",
        reqs.len(),
        failed.len(),
        after_split,
        rs1_conns,
        rs1_conns_later,
        ms_between(downloads_at, reload_at) / 1e3
    ));
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the reloads:\n{}\n--- rvsd log ---\n{}",
        failed.len(),
        reqs.len(),
        show(&failed, 20),
        rvsd.log()
    );
    assert_eq!(
        after_split.get("rs1"),
        None,
        "rs1 answered after its removal: {after_split:?}"
    );
    let rs4 = after_split.get("rs4").copied().unwrap_or(0);
    assert!(rs4 > 0, "rs4 took no request: {after_split:?}");
    // Weights 2:1:1 until the SIGHUP: rs2 about half.
    let total: usize = between_split.values().sum();
    let rs2 = between_split.get("rs2").copied().unwrap_or(0);
    assert!(
        total >= 100 && (rs2 as f64) > 0.35 * total as f64 && (rs2 as f64) < 0.65 * total as f64,
        "wrr 2:1:1 after the reload gives rs2 about half: {between_split:?}"
    );
    let _ = stop_rvsd(rvsd);
    took("reload_under_load", started);
}

/// Issue 5's last check: after N requests, `rvsadm --json list` and
/// `/metrics` count per real server exactly what the client saw; health
/// in both matches the checks; drops are exported by reason.
#[test]
fn rvsadm_and_metrics_agree_with_the_clients() {
    let _heavy = heavy();
    let started = Instant::now();
    let mut topo = topology(3);
    let service = checked_service(&topo, "rr", "tcp", &[(0, 1), (1, 1), (2, 1)]);
    let rvsd = topo.start_rvsd(1, &[service]);
    let addrs = rs_addrs(&topo);

    const N: usize = 300;
    let results = topo.http_get_many(&topo.vip_host(), "/", N);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    assert_eq!(counts.values().sum::<usize>(), N, "{counts:?}");

    let list = topo.rvsadm_list_until(SETTLE, |l| total_conns(l, "web") >= N as u64);
    assert_eq!(total_conns(&list, "web"), N as u64, "{list}");
    // Every server checked at least once (the first checks are spread
    // over the interval).
    let deadline = Instant::now() + Duration::from_millis(INTERVAL_MS) + SETTLE;
    let text = loop {
        let text = topo.metrics();
        let checked = addrs.iter().all(|a| {
            metric(
                &text,
                "rvs_health_check_duration_seconds_count",
                &[&rs_label(a)],
            )
            .unwrap_or(0.0)
                >= 1.0
        });
        if checked || Instant::now() >= deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut per = Vec::new();
    for (rs, addr) in topo.real_servers.iter().zip(&addrs) {
        let saw = counts.get(&rs.name).copied().unwrap_or(0) as u64;
        let listed_conns = listed(&list, addr)["conns"].as_u64();
        let exported = metric(
            &text,
            "rvs_real_server_connections_total",
            &[&rs_label(addr)],
        );
        per.push(format!(
            "{}: client={saw} rvsadm={listed_conns:?} metrics={exported:?}",
            rs.name
        ));
        assert_eq!(listed_conns, Some(saw), "rvsadm conns of {addr}: {list}");
        assert_eq!(
            exported,
            Some(saw as f64),
            "rvs_real_server_connections_total of {addr}:\n{text}"
        );
        assert_eq!(
            metric(&text, "rvs_real_server_up", &[&rs_label(addr)]),
            Some(1.0),
            "{text}"
        );
        assert!(
            metric(
                &text,
                "rvs_health_check_duration_seconds_count",
                &[&rs_label(addr)]
            )
            .unwrap_or(0.0)
                >= 1.0,
            "health-check latency of {addr}:\n{text}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "rvs_virtual_server_connections_total",
            &["virtual_server=\"web\""]
        ),
        Some(N as f64),
        "{text}"
    );
    let reasons: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("rvs_drops_total{reason=\""))
        .collect();
    // The receive path's reasons, then the forwarding path's.
    for reason in support::DROP_REASONS.into_iter().chain([
        "ttl_expired",
        "no_route",
        "neighbor_unresolved",
        "no_connection",
        "table_full",
        "no_real_server",
        "too_big",
        "redirect_full",
    ]) {
        assert!(
            reasons
                .iter()
                .any(|l| l.contains(&format!("reason=\"{reason}\""))),
            "rvs_drops_total has no reason {reason}:\n{}",
            reasons.join("\n")
        );
    }
    let stats = topo.rvsadm_json("stats");
    assert_eq!(
        support::counter(&stats, "total.conns_created"),
        N as u64,
        "{stats}"
    );

    // rs3 down: both say so.
    let down = down_line(&addrs[2]);
    let downs = rvsd.log_count(&down);
    topo.kill_http(2);
    rvsd.wait_log_count(&down, downs, detect_bound() + Duration::from_secs(5))
        .unwrap_or_else(|| panic!("rs3 not marked down\n--- rvsd log ---\n{}", rvsd.log()));
    std::thread::sleep(Duration::from_millis(200));
    let list = topo.rvsadm_list();
    let text = topo.metrics();
    let mut health = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let want_up = i != 2;
        let listed_health = listed(&list, addr)["health"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let exported = metric(&text, "rvs_real_server_up", &[&rs_label(addr)]);
        health.push(format!(
            "{addr}: rvsadm={listed_health} metrics={exported:?}"
        ));
        assert_eq!(listed_health, if want_up { "up" } else { "down" }, "{list}");
        assert_eq!(exported, Some(if want_up { 1.0 } else { 0.0 }), "{text}");
    }
    assert!(
        metric(
            &text,
            "rvs_health_checks_failed_total",
            &[&rs_label(&addrs[2])]
        )
        .unwrap_or(0.0)
            >= f64::from(FALL),
        "failed checks of rs3 counted:\n{text}"
    );
    let human = topo.rvsadm(&["-Ln"]);
    assert!(human.success(), "{human}");
    let rs3_line = human
        .stdout
        .lines()
        .find(|l| l.contains(&addrs[2]))
        .unwrap_or_else(|| panic!("-Ln lists rs3: {human}"));
    assert_eq!(rs3_line.split_whitespace().last(), Some("down"), "{human}");
    let drops: Vec<String> = reasons
        .iter()
        .filter(|l| !l.ends_with(" 0"))
        .map(|l| l.trim_start_matches("rvs_drops_total").to_string())
        .collect();
    result_line(&format!(
        "failover counts agree after {N} requests: {}; health {}; non-zero drops {:?}",
        per.join(", "),
        health.join(", "),
        drops
    ));
    let _ = stop_rvsd(rvsd);
    took("rvsadm_and_metrics_agree_with_the_clients", started);
}

/// `rvsadm weight ... 0` drains rs1: no new connections to it, its
/// existing one (a long download) lives on to the end; `-Ln` and the
/// metrics show weight 0; weight 1 brings it back.
#[test]
fn rvsadm_weight_drains() {
    let _heavy = heavy();
    let started = Instant::now();
    let topo = topology(3);
    let service = checked_service(&topo, "rr", "tcp", &[(0, 1), (1, 1), (2, 1)]);
    let rvsd = topo.start_rvsd(1, &[service]);
    let addrs = rs_addrs(&topo);
    let want_sha = big_file_sha(&topo);

    let (downloads, on) = slow_downloads(&topo, 3, 1 << 20);
    let rs1_port = established(&topo)
        .into_iter()
        .find(|(_, rs)| *rs == addrs[0])
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("no download on rs1: {on:?}"));

    let out = topo.rvsadm(&["weight", SERVICE, &addrs[0], "0"]);
    assert!(out.success(), "rvsadm weight: {out}");
    assert!(
        established(&topo)
            .iter()
            .any(|(p, rs)| *p == rs1_port && *rs == addrs[0]),
        "rs1's download is established after the weight change: {:?}",
        established(&topo)
    );
    let human = topo.rvsadm(&["-Ln"]);
    assert!(human.success(), "{human}");
    let cols: Vec<&str> = human
        .stdout
        .lines()
        .find(|l| l.contains(&addrs[0]))
        .unwrap_or_else(|| panic!("-Ln lists rs1: {human}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        cols.get(3),
        Some(&"0"),
        "rs1's weight column in -Ln: {human}"
    );
    assert!(
        metric(
            &topo.metrics(),
            "rvs_real_server_weight",
            &[&rs_label(&addrs[0])]
        ) == Some(0.0),
        "rvs_real_server_weight of rs1 is 0"
    );
    let rs1_conns = conns_of(&topo, &addrs[0]);

    let results = topo.http_get_many(&topo.vip_host(), "/", 60);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    let rs1_conns_later = conns_of(&topo, &addrs[0]);
    let still = established(&topo)
        .iter()
        .any(|(p, rs)| *p == rs1_port && *rs == addrs[0]);
    result_line(&format!(
        "failover weight 0 on rs1: next 60 requests split {counts:?}; rs1 conns {rs1_conns}->{rs1_conns_later}; \
         its download still established: {still}"
    ));
    assert_eq!(
        counts.get("rs1"),
        None,
        "rs1 at weight 0 took new requests: {counts:?}"
    );
    assert_eq!(counts.get("rs2"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("rs3"), Some(&30), "{counts:?}");
    assert_eq!(
        rs1_conns, rs1_conns_later,
        "new connections to rs1 at weight 0"
    );
    assert!(still, "rs1's existing connection lives on");

    wait_finished(&downloads);
    for d in byte_exact(downloads, &want_sha, "a download") {
        if d.local_port == rs1_port {
            result_line(&format!(
                "failover weight 0 on rs1: its download finished byte-exact in {:.1} s",
                d.seconds
            ));
        }
    }

    // Back to 1: rs1 takes its share again.
    let out = topo.rvsadm(&["weight", SERVICE, &addrs[0], "1"]);
    assert!(out.success(), "rvsadm weight: {out}");
    let results = topo.http_get_many(&topo.vip_host(), "/", 30);
    assert_all_answered(&results, &rvsd);
    let counts = count_answers(&results);
    assert!(
        (8..=12).contains(&counts.get("rs1").copied().unwrap_or(0)),
        "rs1 back at weight 1 takes a third: {counts:?}"
    );
    let _ = stop_rvsd(rvsd);
    took("rvsadm_weight_drains", started);
}
