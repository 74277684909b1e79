#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! The `tls` and `https` health checks end to end (issue 18): rvsd in the
//! NAT topology with a management link (`Topology::nat_with_management`:
//! the health checks leave from the lb namespace's kernel, 10.1.0.254),
//! and in each real server's namespace an nginx serving TLS on port 8443
//! with a self-signed certificate made by `openssl req -x509 ... -days 3`
//! in the test's directory (so it expires within `tls_expiry_warn_days =
//! 14` and the warning shows).
//!
//! ```text
//!   client 198.51.100.10 --- [outside] rvsd [inside] --- br0 --- rs1 10.1.0.11:8443 (nginx, TLS)
//!   VIP 198.51.100.100        198.51.100.1   10.1.0.1    |    \-- rs2 10.1.0.12:8443 (nginx, TLS)
//!                             lb kernel 10.1.0.254 ------+
//! ```
//!
//! Two services over the same two servers: `tlsweb` (VIP:443) checked by
//! `type = "tls"`, `httpsweb` (VIP:8443) by `type = "https"` with
//! `http_path = "/healthz"` and `http_expect_body = "tls ok"`. Timings:
//! `interval_ms = 200`, `timeout_ms = 300`, `rise = 2`, `fall = 2`. On rs1,
//! in turn: nginx killed (SIGKILL) then restarted; nginx replaced by a
//! plain-HTTP nginx on the same port (no TLS) then restored; `/healthz`
//! answering another body (only `https` may notice) then restored. Each
//! time the detection (fault to rvsd's `is down` line) must be within
//! `fall x interval + timeout` plus a slack of one interval (the fault
//! may land just after a probe started, so the first failing probe starts
//! up to an interval later) and 200 ms (the control loop's 100 ms tick and
//! the log's way to the test); the recovery (the server listening again
//! to the `is up` line) within `rise x interval` plus the same slack and a
//! timeout (the probe in flight when the server came back may have failed
//! first). rs2 never goes down. The expiry warning must appear once per
//! service and real server (rate-limited: not on every check), and the
//! certificate's expiry must be in the metrics.
//!
//! Figures: `cargo test --test e2e_health_tls 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{
    listed_real_server, ms_between, path_str, result_line, stop_rvsd, unix_seconds, Service,
    Topology, VIP,
};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::wait_timeout;

const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 300;
const RISE: u32 = 2;
const FALL: u32 = 2;
/// The control loop's tick and the log's way to the test.
const MARGIN_MS: u64 = 200;
/// The real servers' TLS port.
const TLS_PORT: u16 = 8443;
/// What `/healthz` answers, and what the https check looks for.
const BODY: &str = "tls ok";
/// The certificate's lifetime: within the warning days.
const CERT_DAYS: u32 = 3;
const WARN_DAYS: u32 = 14;

/// Longest from a fault to the `is down` line:
/// `fall x interval + timeout`, plus an interval and the margin.
fn detect_bound() -> Duration {
    Duration::from_millis(u64::from(FALL) * INTERVAL_MS + TIMEOUT_MS + INTERVAL_MS + MARGIN_MS)
}

/// Longest from the server listening again to the `is up` line:
/// `rise x interval`, plus an interval, a timeout and the margin.
fn rise_bound() -> Duration {
    Duration::from_millis(u64::from(RISE) * INTERVAL_MS + INTERVAL_MS + TIMEOUT_MS + MARGIN_MS)
}

/// How a real server's TLS port is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// TLS, `/healthz` answering `body`.
    Tls { body: &'static str },
    /// Plain HTTP on the TLS port.
    Plain,
}

/// One real server's nginx on `TLS_PORT` (single process: `master_process
/// off`, so one SIGKILL ends it); killed on drop.
struct TlsNginx {
    /// The real server's namespace, by name (the topology owns it).
    ns: String,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl TlsNginx {
    /// Makes the certificate (`openssl req -x509 -days CERT_DAYS`) in
    /// `dir` and starts nginx in `ns` with `mode`.
    fn new(ns: &support::Netns, dir: std::path::PathBuf, name: &str, mode: Mode) -> TlsNginx {
        std::fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
        let out = support::run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                &CERT_DAYS.to_string(),
                "-subj",
                &format!("/CN={name}.test"),
                "-keyout",
                &path_str(&dir.join("key.pem")),
                "-out",
                &path_str(&dir.join("cert.pem")),
            ],
            Duration::from_secs(30),
        );
        assert!(out.success(), "openssl req: {out}");
        let mut n = TlsNginx {
            ns: ns.name().to_string(),
            dir,
            child: None,
        };
        n.start(mode);
        n
    }

    /// A command running `program` in the real server's namespace.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    fn conf(&self, mode: Mode) -> String {
        let d = path_str(&self.dir);
        let (listen, body) = match mode {
            Mode::Tls { body } => (
                format!(
                    "listen {TLS_PORT} ssl;\n    ssl_certificate {d}/cert.pem;\n    \
                     ssl_certificate_key {d}/key.pem;"
                ),
                body,
            ),
            Mode::Plain => (format!("listen {TLS_PORT};"), BODY),
        };
        format!(
            "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  \
             proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
             uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  \
             server {{\n    {listen}\n    location = /healthz {{ default_type text/plain; \
             return 200 \"{body}\\n\"; }}\n  }}\n}}\n"
        )
    }

    /// Starts nginx with `mode` and waits until it listens; the time it
    /// was seen listening.
    fn start(&mut self, mode: Mode) -> SystemTime {
        assert!(self.child.is_none(), "nginx already running");
        let conf = self.dir.join("nginx.conf");
        std::fs::write(&conf, self.conf(mode)).expect("nginx.conf");
        let log = std::fs::File::create(self.dir.join("nginx.log")).expect("nginx.log");
        let mut cmd = self.command("nginx");
        cmd.args([
            "-p",
            &path_str(&self.dir),
            "-c",
            &path_str(&conf),
            "-e",
            &path_str(&self.dir.join("error.log")),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("dup")))
        .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().expect("start nginx"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = support::run_cmd(
                self.command("ss")
                    .args(["-Hltn", &format!("sport = :{TLS_PORT}")]),
                Duration::from_secs(5),
            );
            if out.success() && !out.stdout.trim().is_empty() {
                return SystemTime::now();
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "nginx exited ({st}): {}",
                        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
                    );
                }
            }
            assert!(Instant::now() < deadline, "nginx not listening after 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILLs nginx and reaps it; the time just before the kill.
    fn kill(&mut self) -> SystemTime {
        let mut child = self.child.take().expect("nginx running");
        let at = SystemTime::now();
        let _ = child.kill();
        assert!(
            wait_timeout(&mut child, Duration::from_secs(5)).is_some(),
            "nginx survived SIGKILL"
        );
        at
    }

    /// Restarts nginx with `mode`; the time it listens again.
    fn restart(&mut self, mode: Mode) -> SystemTime {
        self.kill();
        self.start(mode)
    }
}

impl Drop for TlsNginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = wait_timeout(&mut c, Duration::from_secs(5));
        }
    }
}

/// A service over both real servers' TLS port, checked by `kind`.
fn service(topo: &Topology, name: &str, port: u16, kind: &str) -> Service {
    let mut s = Service::nat(name, &format!("{VIP}:{port}"), "tcp", "rr")
        .health_check(Some(kind))
        .health_timing(INTERVAL_MS, TIMEOUT_MS, RISE, FALL)
        .health_setting("tls_expiry_warn_days", &WARN_DAYS.to_string());
    if kind == "https" {
        s = s
            .health_setting("http_path", "\"/healthz\"")
            .health_setting("http_expect_body", &format!("{BODY:?}"));
    }
    for rs in &topo.real_servers {
        s = s.real(rs.addr(TLS_PORT), 1);
    }
    s
}

fn health_of(topo: &Topology, service: &str, addr: &str) -> String {
    let list = topo.rvsadm_list();
    listed_real_server(&list, service, addr)["health"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

/// One fault on rs1 and its repair, judged for the services `affected`
/// (the others must stay up): detection and recovery times per service.
struct Fault {
    name: &'static str,
    /// What the `is down` line must say, per affected service.
    reason: &'static [(&'static str, &'static str)],
}

#[test]
fn tls_and_https_checks_detect_and_recover_from_faults() {
    let started = Instant::now();
    assert!(netns::have("nginx"), "install nginx (with its ssl module)");
    assert!(netns::have("openssl"), "install openssl");
    let mut topo = Topology::nat_with_management(2);
    topo.metrics_listen = Some("127.0.0.1:9109".into());
    let mut nginx: Vec<TlsNginx> = topo
        .real_servers
        .iter()
        .map(|rs| {
            TlsNginx::new(
                &rs.ns,
                rs.dir.join("tls"),
                &rs.name,
                Mode::Tls { body: BODY },
            )
        })
        .collect();
    let services = [
        service(&topo, "tlsweb", 443, "tls"),
        service(&topo, "httpsweb", 8443, "https"),
    ];
    let rvsd = topo.start_rvsd(1, &services);
    let rs1 = topo.real_servers[0].addr(TLS_PORT);
    let rs2 = topo.real_servers[1].addr(TLS_PORT);

    // The expiry warning, once per service and real server.
    let warning = |svc: &str, addr: &str| {
        format!("virtual server {svc}: real server {addr}: TLS certificate expires in 2 days")
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while ["tlsweb", "httpsweb"]
        .iter()
        .flat_map(|s| [(s, &rs1), (s, &rs2)])
        .any(|(s, a)| rvsd.log_count(&warning(s, a)) == 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = topo.metrics();
    let now = unix_seconds(SystemTime::now());
    let expiries: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("rvs_health_check_cert_expiry_timestamp_seconds{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(expiries.len(), 4, "one per service and server:\n{metrics}");
    for e in &expiries {
        let days = (e - now) / 86_400.0;
        assert!(
            (f64::from(CERT_DAYS) - 0.01..=f64::from(CERT_DAYS)).contains(&days),
            "expiry {days:.3} days away, want {CERT_DAYS}"
        );
    }

    let faults = [
        Fault {
            name: "nginx killed",
            reason: &[
                ("tlsweb", "failed: Connection refused"),
                ("httpsweb", "failed: Connection refused"),
            ],
        },
        Fault {
            name: "plain HTTP on the TLS port",
            reason: &[
                ("tlsweb", "TLS handshake with 10.1.0.11:8443 failed: "),
                ("httpsweb", "TLS handshake with 10.1.0.11:8443 failed: "),
            ],
        },
        Fault {
            name: "another body",
            reason: &[(
                "httpsweb",
                "HTTPS GET /healthz on 10.1.0.11:8443 answered 200, but \"tls ok\" is not in its body",
            )],
        },
    ];
    let mut worst = [0.0f64; 4];
    for fault in &faults {
        let down_line = |svc: &str| format!("real server {rs1} ({svc}) is down");
        let up_line = |svc: &str| format!("real server {rs1} ({svc}) is up");
        let downs: Vec<usize> = fault
            .reason
            .iter()
            .map(|(s, _)| rvsd.log_count(&down_line(s)))
            .collect();
        let ups: Vec<usize> = fault
            .reason
            .iter()
            .map(|(s, _)| rvsd.log_count(&up_line(s)))
            .collect();
        let fault_at = match fault.name {
            "nginx killed" => nginx[0].kill(),
            "plain HTTP on the TLS port" => {
                let at = nginx[0].kill();
                nginx[0].start(Mode::Plain);
                at
            }
            _ => {
                let at = nginx[0].kill();
                nginx[0].start(Mode::Tls {
                    body: "maintenance",
                });
                at
            }
        };
        let mut detected = Vec::new();
        for ((svc, reason), &seen) in fault.reason.iter().zip(&downs) {
            let at = rvsd
                .wait_log_count(
                    &down_line(svc),
                    seen,
                    detect_bound() + Duration::from_secs(5),
                )
                .unwrap_or_else(|| panic!("{}: rs1 of {svc} not down\n{}", fault.name, rvsd.log()));
            let line = rvsd.last_log_line(&down_line(svc));
            assert!(line.contains(reason), "{}: {line}", fault.name);
            detected.push(ms_between(fault_at, at));
        }
        for (svc, _) in fault.reason {
            assert_eq!(health_of(&topo, svc, &rs1), "down", "{svc}");
        }
        let repaired_at = match fault.name {
            "nginx killed" => nginx[0].start(Mode::Tls { body: BODY }),
            _ => nginx[0].restart(Mode::Tls { body: BODY }),
        };
        let mut recovered = Vec::new();
        for ((svc, _), &seen) in fault.reason.iter().zip(&ups) {
            let at = rvsd
                .wait_log_count(&up_line(svc), seen, rise_bound() + Duration::from_secs(5))
                .unwrap_or_else(|| {
                    panic!("{}: rs1 of {svc} not up again\n{}", fault.name, rvsd.log())
                });
            recovered.push(ms_between(repaired_at, at));
        }
        for (i, (svc, _)) in fault.reason.iter().enumerate() {
            let kind = if *svc == "tlsweb" { "tls" } else { "https" };
            result_line(&format!(
                "health_tls {kind} {}: down after {:.0} ms (bound {} ms), up {:.0} ms after the repair (bound {} ms)",
                fault.name,
                detected[i],
                detect_bound().as_millis(),
                recovered[i],
                rise_bound().as_millis()
            ));
            let k = if kind == "tls" { 0 } else { 2 };
            worst[k] = worst[k].max(detected[i]);
            worst[k + 1] = worst[k + 1].max(recovered[i]);
            assert!(
                detected[i] <= detect_bound().as_millis() as f64,
                "{kind} {}: down after {:.0} ms, bound {} ms",
                fault.name,
                detected[i],
                detect_bound().as_millis()
            );
            assert!(
                recovered[i] <= rise_bound().as_millis() as f64,
                "{kind} {}: up {:.0} ms after the repair, bound {} ms",
                fault.name,
                recovered[i],
                rise_bound().as_millis()
            );
        }
    }
    // The body fault is https's alone; rs2 never went down.
    assert_eq!(
        rvsd.log_count(&format!("real server {rs1} (tlsweb) is down")),
        2
    );
    assert_eq!(
        rvsd.log_count(&format!("real server {rs2} (")),
        0,
        "rs2 stayed up"
    );

    // One warning per service and server over the whole run, with
    // checks every 200 ms and three restarts of rs1's nginx.
    for svc in ["tlsweb", "httpsweb"] {
        for addr in [&rs1, &rs2] {
            let n = rvsd.log_count(&warning(svc, addr));
            assert_eq!(n, 1, "{svc} {addr}: {n} warnings\n{}", rvsd.log());
        }
    }
    let shown = rvsd.last_log_line(&warning("tlsweb", &rs1));
    result_line(&format!(
        "health_tls expiry warning (certificate of {CERT_DAYS} days, tls_expiry_warn_days = {WARN_DAYS}): \
         logged once per service and server: {}",
        shown.split_once("virtual server").map_or("", |(_, r)| r)
    ));
    result_line(&format!(
        "health_tls worst: tls down {:.0} ms up {:.0} ms, https down {:.0} ms up {:.0} ms \
         (interval {INTERVAL_MS} ms, timeout {TIMEOUT_MS} ms, rise {RISE}, fall {FALL})",
        worst[0], worst[1], worst[2], worst[3]
    ));
    let _ = stop_rvsd(rvsd);
    drop(nginx);
    result_line(&format!(
        "health_tls took {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}
