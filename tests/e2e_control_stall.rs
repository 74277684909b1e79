#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! A control plane no client can stall (issue 17), against a running rvsd.
//!
//! The NAT topology with a management link (`Topology::nat_with_management`:
//! the health checks leave from the lb namespace's kernel), two nginx real
//! servers with TCP checks (`interval_ms = 500`, `timeout_ms = 300`,
//! `fall = 2`), and meanwhile:
//!
//! - 150 control clients that connect and say nothing, and 50 that send a
//!   byte every 0.5 s; each reconnects as soon as rvsd closes it;
//! - 8 slowloris clients of `/metrics` sending their head a byte every
//!   0.5 s, beside 30 real scrapes (a Python script in the lb namespace,
//!   where `metrics_listen` is).
//!
//! Under that: every `rvsadm` answers within 1 s, every scrape succeeds, a
//! real server killed is marked down within its checks' detection time,
//! rvsd stops within 2 s of SIGTERM; and an rvsd whose `control.socket` is
//! its own config file exits 2 naming `control.socket`, the file intact.
//!
//! The figures are printed past the output capture:
//! `cargo test --test e2e_control_stall 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{heavy, result_line, Service, Topology, HTTP_PORT, VIP};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::Rvsd;

const INTERVAL_MS: u64 = 500;
const TIMEOUT_MS: u64 = 300;
const FALL: u32 = 2;
/// The control loop's tick and the log's way to us.
const MARGIN_MS: u64 = 200;
/// Control clients that say nothing, and that trickle a byte every 0.5 s.
const SILENT: usize = 150;
const SLOW: usize = 50;
/// `rvsadm` must answer within this each time.
const ANSWER_BOUND: Duration = Duration::from_secs(1);
/// rvsd must be gone within this of SIGTERM.
const STOP_BOUND: Duration = Duration::from_secs(2);

/// Longest allowed from a kill to the `is down` line.
fn detect_bound() -> Duration {
    Duration::from_millis(u64::from(FALL) * INTERVAL_MS + INTERVAL_MS + TIMEOUT_MS + MARGIN_MS)
}

/// The attackers of the control socket: `n` clients each kept connected
/// (reconnected when rvsd closes it), sending a byte every `every` if
/// given, else nothing. Returns how many connections they made.
fn control_attackers(
    path: &Path,
    n: usize,
    every: Option<Duration>,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<u64> {
    let (path, stop) = (path.to_path_buf(), stop.clone());
    std::thread::spawn(move || {
        let mut conns: Vec<Option<UnixStream>> = (0..n).map(|_| None).collect();
        let mut made = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for slot in conns.iter_mut() {
                let closed = match slot {
                    None => true,
                    Some(s) => {
                        // Alive while there is nothing to read; EOF, an
                        // error answer or a reset mean rvsd closed it.
                        let mut b = [0u8; 64];
                        let gone = !matches!(
                            s.read(&mut b),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                        );
                        let failed = every.is_some() && s.write_all(b"{").is_err();
                        gone || failed
                    }
                };
                if closed {
                    *slot = UnixStream::connect(&path).ok().inspect(|s| {
                        let _ = s.set_nonblocking(true);
                    });
                    made += u64::from(slot.is_some());
                }
            }
            std::thread::sleep(every.unwrap_or(Duration::from_millis(100)));
        }
        made
    })
}

/// The slowloris and scrape script, run in the lb namespace: prints one
/// JSON line of what the scrapes got.
const SCRAPES: &str = r#"
import json, socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
done = threading.Event()
opened = [0]
def slowloris():
    s = None
    while not done.is_set():
        try:
            if s is None:
                s = socket.create_connection((host, port), timeout=2)
                opened[0] += 1
                s.send(b"GET /metrics HTTP/1.1\r\n")
            s.send(b"X")
        except OSError:
            if s is not None:
                s.close()
            s = None
            continue
        time.sleep(0.5)
for _ in range(8):
    threading.Thread(target=slowloris, daemon=True).start()
time.sleep(1.0)
results = []
for _ in range(30):
    t0 = time.time()
    ok = False
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: rvs\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        ok = data.startswith(b"HTTP/1.1 200") and b"rvs_control_clients_total" in data
        s.close()
    except OSError:
        pass
    results.append((ok, time.time() - t0))
    time.sleep(0.2)
done.set()
print(json.dumps({"ok": sum(1 for o, _ in results if o), "total": len(results),
                  "max_s": max(t for _, t in results), "slowloris_conns": opened[0]}))
"#;

/// With `socket_group = "65534"` (nogroup), the user nobody (in that
/// group only) may read but not change anything; root may do both.
fn access_levels(topo: &Topology, text: &str) {
    let grouped = text.replace("[control]\n", "[control]\nsocket_group = \"65534\"\n");
    assert_ne!(grouped, text, "the config has a [control] section");
    let path = topo.dir.write("grouped.toml", &grouped);
    let mut rvsd = Rvsd::start(&path, Some(&topo.lb));
    rvsd.wait_ready(Duration::from_secs(60));
    assert!(rvsd.wait_for_log("control socket", Duration::from_secs(10)));
    let socket = topo.socket_path();
    let meta = std::fs::metadata(&socket).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534);
    // A copy nobody can run whatever the target directory's modes.
    let adm = topo.dir.join("rvsadm");
    std::fs::copy(env!("CARGO_BIN_EXE_rvsadm"), &adm).unwrap();
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&adm)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .expect("setpriv");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = as_nobody(&["list"]);
    assert_eq!(code, Some(0), "read-only list as nobody: {out}");
    let (code, out) = as_nobody(&["reload"]);
    assert_eq!(code, Some(1), "reload as nobody: {out}");
    assert!(out.contains("access denied"), "{out}");
    let (code, out) = as_nobody(&["ha", "master"]);
    assert_eq!(code, Some(1), "ha master as nobody: {out}");
    let (ok, _, out) = timed_rvsadm(&socket, &["reload"]);
    assert!(ok, "reload as root: {out}");
    let (_, _, stats) = timed_rvsadm(&socket, &["--json", "stats"]);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).expect("stats JSON");
    let denied = stats["clients"]["control"]["denied"].as_u64().unwrap_or(0);
    assert_eq!(denied, 2, "{stats}");
    result_line(&format!(
        "control_access socket_group=65534 mode=0660: nobody list ok, reload and ha master denied; root reload ok; denied={denied}"
    ));
    let stopped = rvsd.stop(Duration::from_secs(10));
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
}

/// `rvsadm --socket PATH ARGS`, timed.
fn timed_rvsadm(socket: &Path, args: &[&str]) -> (bool, Duration, String) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run rvsadm");
    let took = t0.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), took, text)
}

fn topology() -> Topology {
    support::require_root("e2e_control_stall");
    assert!(
        netns::have("nginx"),
        "this test kills an nginx real server: install nginx (scripts/setup)"
    );
    let mut topo = Topology::nat_with_management(2);
    topo.metrics_listen = Some(netns::metrics_listen(22000));
    topo
}

fn service(topo: &Topology) -> Service {
    let mut s = Service::nat("web", &format!("{VIP}:80"), "tcp", "rr")
        .health_check(Some("tcp"))
        .health_timing(INTERVAL_MS, TIMEOUT_MS, 2, FALL);
    for rs in &topo.real_servers {
        s = s.real(rs.addr(HTTP_PORT), 1);
    }
    s
}

#[test]
fn slow_control_and_metrics_clients_stall_nothing() {
    let _heavy = heavy();
    let started = Instant::now();
    let mut topo = topology();
    let mut rvsd = topo.start_rvsd(1, &[service(&topo)]);
    let socket = topo.socket_path();
    let listen = topo.metrics_listen.clone().unwrap();
    let (host, port) = listen.rsplit_once(':').unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let silent = control_attackers(&socket, SILENT, None, &stop);
    let slow = control_attackers(&socket, SLOW, Some(Duration::from_millis(500)), &stop);
    let scrapes = {
        let lb = topo.lb.name().to_string();
        let (host, port) = (host.to_string(), port.to_string());
        std::thread::spawn(move || {
            support::run(
                "ip",
                &["netns", "exec", &lb, "python3", "-c", SCRAPES, &host, &port],
                Duration::from_secs(60),
            )
        })
    };
    // Let the attackers fill their slots (and rvsd close the first ones).
    std::thread::sleep(Duration::from_millis(2500));

    // rvsadm, again and again, while they hold on (its own thread), and
    // a real server killed meanwhile.
    let asker = {
        let socket = socket.clone();
        std::thread::spawn(move || {
            let commands: [&[&str]; 4] = [
                &["--json", "list"],
                &["--json", "stats"],
                &["--json", "ha", "status"],
                &["--json", "conns", "--limit", "100000"],
            ];
            let mut times = Vec::new();
            for i in 0..24 {
                let args = commands[i % commands.len()];
                let (ok, took, text) = timed_rvsadm(&socket, args);
                times.push((args.join(" "), ok, took, text));
                std::thread::sleep(Duration::from_millis(250));
            }
            times
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    topo.kill_http(1);
    let victim = topo.real_servers[1].addr(HTTP_PORT);
    let down = format!("real server {victim} (web) is down");
    let seen = rvsd.wait_for_log(&down, detect_bound() + Duration::from_secs(5));
    let detected = killed_at.elapsed();
    assert!(
        seen && detected <= detect_bound(),
        "{victim} marked down after {detected:?} (seen: {seen}), bound {:?}, under attack\n--- rvsd log ---\n{}",
        detect_bound(),
        rvsd.log()
    );
    let mut worst = Duration::ZERO;
    let mut times = Vec::new();
    for (args, ok, took, text) in asker.join().unwrap() {
        assert!(ok, "rvsadm {args} failed: {text}");
        assert!(
            took < ANSWER_BOUND,
            "rvsadm {args} took {took:?} under attack"
        );
        worst = worst.max(took);
        times.push(took.as_secs_f64() * 1000.0);
    }

    let (_, _, stats) = timed_rvsadm(&socket, &["--json", "stats"]);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).expect("stats JSON");
    let control = &stats["clients"]["control"];
    let timed_out = control["timed_out"].as_u64().unwrap_or(0);
    assert!(timed_out > 0, "no control client timed out: {control}");

    let scrape = scrapes.join().unwrap();
    assert!(scrape.success(), "scrape script: {scrape}");
    let got: serde_json::Value = serde_json::from_str(scrape.stdout.trim()).expect("JSON");
    assert_eq!(got["ok"], got["total"], "scrapes under slowloris: {got}");

    // SIGTERM with the attackers still at it.
    let t0 = Instant::now();
    rvsd.signal("TERM");
    let stopped = rvsd.wait_exit(Duration::from_secs(10));
    let stop_took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let made = silent.join().unwrap() + slow.join().unwrap();
    let stopped = stopped.expect("rvsd did not stop within 10 s of SIGTERM");
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    assert!(stop_took < STOP_BOUND, "SIGTERM took {stop_took:?}");

    times.sort_by(f64::total_cmp);
    result_line(&format!(
        "control_stall attackers={SILENT} silent + {SLOW} slow control clients ({made} connections made), \
         8 slowloris scrapes: rvsadm answers={} median_ms={:.1} max_ms={:.1}; scrapes ok={}/{} max_s={:.3}; \
         control clients {control}; kill->down {:.2}s (bound {:.2}s); SIGTERM->exit {:.2}s; test {:.1}s",
        times.len(),
        times[times.len() / 2],
        worst.as_secs_f64() * 1000.0,
        got["ok"],
        got["total"],
        got["max_s"].as_f64().unwrap_or(0.0),
        detected.as_secs_f64(),
        detect_bound().as_secs_f64(),
        stop_took.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    ));

    let config = topo.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    access_levels(&topo, &text);

    // The control socket pointed at rvsd's own config file: refused,
    // exit 2, the file untouched.
    let sock = socket.to_string_lossy().to_string();
    assert!(text.contains(&sock), "the config names {sock}");
    let bad_path: PathBuf = topo.dir.join("self-socket.toml");
    let bad_text = text.replace(&sock, &bad_path.to_string_lossy());
    topo.dir.write("self-socket.toml", &bad_text);
    let mut refused = Rvsd::start(&bad_path, Some(&topo.lb));
    let exited = refused
        .wait_exit(Duration::from_secs(60))
        .expect("rvsd with control.socket on its config file did not exit");
    assert_eq!(exited.status.code(), Some(2), "{}", exited.log);
    assert!(exited.log.contains("control.socket"), "{}", exited.log);
    assert_eq!(std::fs::read_to_string(&bad_path).unwrap(), bad_text);
}
