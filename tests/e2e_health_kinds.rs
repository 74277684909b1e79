#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! The health-check kinds `udp`, `dns`, `icmp` and `script` end to end
//! (issue 18): rvsd in the NAT topology with a management link (the lb
//! namespace's kernel on the real servers' bridge, where probes leave
//! from), each kind against a real service in a real server's namespace:
//!
//! - `udp`: a UDP echo (python) on rs1:7007, `udp_expect` set; killed
//!   (the kernel then answers port unreachable) and started again;
//! - `dns`: `dnsmasq` on rs1:53 answering `svc.test`; killed and started
//!   again;
//! - `icmp`: rs2's kernel; an nftables rule dropping echo requests added
//!   and removed;
//! - `script`: `sh -c 'test -e FILE'`; the file removed and restored;
//! - a dynamic-weight script (`script_dynamic_weight`) whose exit code
//!   comes from a file: the weight follows it in `rvsadm list`, exit 0
//!   restores the configured weight, exit 1 is down.
//!
//! Timings: `interval_ms = 200`, `timeout_ms = 200`, `rise = 2`,
//! `fall = 2`. From a fault to rvsd's `is down` line: at most
//! `fall x interval + timeout + SLACK_MS`; from a repair to `is up`: at
//! most `rise x interval + SLACK_MS`. The slack covers the control loop's
//! 100 ms tick, the log's way to this test (polled every 2 ms), a shell's
//! start for the scripts, and this 2-CPU machine's scheduling.
//!
//! The `udp` check leaves from `source_address = 10.1.0.253` (a second
//! address of the lb kernel's management link): the echo server logs
//! every peer, and must have seen only that one. A `tcp` check with the
//! same source address is counted by an nftables rule in rs2.
//!
//! Figures: `cargo test --test e2e_health_kinds 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{
    listed_real_servers, ms_between, result_line, stop_rvsd, Service, Topology, SETTLE, VIP,
};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::{wait_timeout, Netns, Rvsd};

const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 200;
const RISE: u64 = 2;
const FALL: u64 = 2;
/// Scheduling allowance on top of the check's own bounds (see the top).
const SLACK_MS: u64 = 300;
/// A second address of the lb kernel's management link, which the `udp`
/// and `tcp` checks leave from.
const SOURCE_IP: &str = "10.1.0.253";
/// The UDP echo's port on rs1.
const ECHO_PORT: u16 = 7007;
/// A bound on one command.
const CMD: Duration = Duration::from_secs(10);

fn detect_bound_ms() -> f64 {
    (FALL * INTERVAL_MS + TIMEOUT_MS + SLACK_MS) as f64
}

fn rise_bound_ms() -> f64 {
    (RISE * INTERVAL_MS + SLACK_MS) as f64
}

/// A process in a real server's namespace, killed (SIGKILL) and reaped on
/// drop.
struct Daemon {
    what: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(ns: &Netns, what: &str, program: &str, args: &[&str], log: &Path) -> Daemon {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = ns
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Daemon {
            what: what.into(),
            child,
            log: log.into(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        if wait_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
            eprintln!("{} survived SIGKILL", self.what);
        }
    }
}

/// Waits until `ns` has a UDP socket bound to `port` (`ss -lun`).
fn wait_udp_listening(ns: &Netns, port: u16, what: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns.run("ss", &["-Hlun"], CMD);
        if out.stdout.contains(&format!(":{port} ")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not listening on UDP {port}: {out}\n{}",
            what.what,
            what.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The UDP echo on rs1: answers each datagram with itself and prints each
/// new peer's address.
fn start_echo(ns: &Netns, dir: &Path) -> Daemon {
    const ECHO: &str = "import socket, sys\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        s.bind(('0.0.0.0', int(sys.argv[1])))\n\
        seen = set()\n\
        while True:\n    d, a = s.recvfrom(65535)\n    s.sendto(d, a)\n    \
        if a[0] not in seen:\n        seen.add(a[0]); print('peer', a[0], flush=True)\n";
    let port = ECHO_PORT.to_string();
    let d = Daemon::spawn(
        ns,
        "udp echo",
        "python3",
        &["-u", "-c", ECHO, &port],
        &dir.join("echo.log"),
    );
    wait_udp_listening(ns, ECHO_PORT, &d);
    d
}

/// dnsmasq on rs1:53, authoritative for nothing, answering `svc.test`
/// with 10.9.9.9.
fn start_dnsmasq(ns: &Netns, ip: &str, dir: &Path) -> Daemon {
    let listen = format!("--listen-address={ip}");
    let d = Daemon::spawn(
        ns,
        "dnsmasq",
        "dnsmasq",
        &[
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &listen,
            "--port=53",
            "--pid-file=",
            "--user=root",
            "--address=/svc.test/10.9.9.9",
        ],
        &dir.join("dnsmasq.log"),
    );
    wait_udp_listening(ns, 53, &d);
    d
}

/// A NAT service `name` on `VIP:port/protocol` over `real`, checked by
/// `kind` with the timings above and `settings`.
fn service(
    name: &str,
    port: u16,
    protocol: &str,
    kind: &str,
    real: &str,
    settings: &[(&str, String)],
) -> Service {
    let mut s = Service::nat(name, &format!("{VIP}:{port}"), protocol, "rr")
        .health_check(Some(kind))
        .health_timing(INTERVAL_MS, TIMEOUT_MS, RISE as u32, FALL as u32)
        .real(real, 1);
    for (k, v) in settings {
        s = s.health_setting(k, v);
    }
    s
}

/// `nft` in `ns`, panicking on failure.
fn nft(ns: &Netns, args: &[&str]) {
    ns.run_ok("nft", args, CMD);
}

/// One kind's fault and repair, measured from rvsd's log lines about
/// `addr` of service `name`: returns (detection ms, recovery ms).
fn measure(
    rvsd: &Rvsd,
    kind: &str,
    name: &str,
    addr: &str,
    fault: &mut dyn FnMut() -> SystemTime,
    repair: &mut dyn FnMut() -> SystemTime,
) -> (f64, f64) {
    let down = format!("real server {addr} ({name}) is down");
    let up = format!("real server {addr} ({name}) is up");
    let (downs, ups) = (rvsd.log_count(&down), rvsd.log_count(&up));
    let fault_at = fault();
    let down_at = rvsd.expect_log_count(&down, downs, Duration::from_secs(5));
    let detect = ms_between(fault_at, down_at);
    let reason = rvsd.last_log_line(&down);
    let repaired_at = repair();
    let up_at = rvsd.expect_log_count(&up, ups, Duration::from_secs(5));
    let rise = ms_between(repaired_at, up_at);
    result_line(&format!(
        "health_kinds {kind}: down {detect:.0} ms after the fault (bound {:.0}), up {rise:.0} ms \
         after the repair (bound {:.0}); reason: {}",
        detect_bound_ms(),
        rise_bound_ms(),
        reason.split(" is down: ").nth(1).unwrap_or(&reason)
    ));
    assert!(
        detect <= detect_bound_ms(),
        "{kind}: down {detect:.0} ms after the fault, bound {:.0} ms\n{}",
        detect_bound_ms(),
        rvsd.log()
    );
    assert!(
        rise <= rise_bound_ms(),
        "{kind}: up {rise:.0} ms after the repair, bound {:.0} ms\n{}",
        rise_bound_ms(),
        rvsd.log()
    );
    (detect, rise)
}

/// The weight `rvsadm list` shows for the one real server of `service`.
fn listed_weight(topo: &Topology, service: &str) -> serde_json::Value {
    listed_real_servers(&topo.rvsadm_list(), service)[0]["weight"].clone()
}

#[test]
fn every_kind_detects_a_dead_service_and_its_return() {
    let started = Instant::now();
    let topo = Topology::nat_with_management(2);
    let mgmt = topo.management_dev.clone().expect("a management link");
    topo.lb.add_address(&mgmt, &format!("{SOURCE_IP}/24"));
    let (rs1, rs2) = (&topo.real_servers[0], &topo.real_servers[1]);
    let dir = topo.dir.join("kinds");
    std::fs::create_dir_all(&dir).unwrap();

    // The services.
    let echo = RefCell::new(Some(start_echo(&rs1.ns, &dir)));
    let dns = RefCell::new(Some(start_dnsmasq(&rs1.ns, &rs1.ip, &dir)));
    // rs2 counts the tcp check's SYNs from the source address.
    nft(&rs2.ns, &["add", "table", "ip", "count"]);
    nft(
        &rs2.ns,
        &[
            "add",
            "chain",
            "ip",
            "count",
            "in",
            "{ type filter hook input priority 0; policy accept; }",
        ],
    );
    nft(
        &rs2.ns,
        &[
            "add",
            "rule",
            "ip",
            "count",
            "in",
            "ip",
            "saddr",
            SOURCE_IP,
            "tcp",
            "dport",
            &topo.http_port.to_string(),
            "tcp",
            "flags",
            "syn",
            "counter",
        ],
    );
    let flag = dir.join("script-up");
    std::fs::write(&flag, "").unwrap();
    let code_file = dir.join("exit-code");
    std::fs::write(&code_file, "0\n").unwrap();

    let q = support::toml_str;
    let sh = |line: String| format!("[\"/bin/sh\", \"-c\", {}]", q(&line));
    let services = [
        service(
            "udp",
            ECHO_PORT,
            "udp",
            "udp",
            &format!("{}:{ECHO_PORT}", rs1.ip),
            &[
                ("udp_payload", "'rvs health\\x0a'".into()),
                ("udp_expect", q("rvs health")),
                ("source_address", q(SOURCE_IP)),
            ],
        ),
        service(
            "dns",
            53,
            "udp",
            "dns",
            &format!("{}:53", rs1.ip),
            &[("dns_name", q("svc.test")), ("dns_type", q("A"))],
        ),
        service("icmp", 80, "tcp", "icmp", &rs2.addr(topo.http_port), &[]),
        service(
            "script",
            81,
            "tcp",
            "script",
            &rs1.addr(topo.http_port),
            &[("script", sh(format!("test -e {}", flag.display())))],
        ),
        service(
            "dynamic",
            82,
            "tcp",
            "script",
            &rs1.addr(topo.http_port),
            &[
                ("script", sh(format!("exit $(cat {})", code_file.display()))),
                ("script_dynamic_weight", "true".into()),
            ],
        ),
        service(
            "tcpsrc",
            83,
            "tcp",
            "tcp",
            &rs2.addr(topo.http_port),
            &[("source_address", q(SOURCE_IP))],
        ),
    ];
    let rvsd = topo.start_rvsd(1, &services);
    // Every server passes its first checks: none goes down.
    std::thread::sleep(Duration::from_millis(4 * INTERVAL_MS));
    assert!(!rvsd.log().contains(" is down"), "{}", rvsd.log());
    let list = topo.rvsadm_list();
    for name in ["udp", "dns", "icmp", "script", "dynamic", "tcpsrc"] {
        assert_eq!(
            listed_real_servers(&list, name)[0]["health"],
            "up",
            "{name}: {list}"
        );
    }

    let mut figures = Vec::new();

    // udp: the echo killed (port unreachable), then started again.
    let udp_addr = format!("{}:{ECHO_PORT}", rs1.ip);
    let f = measure(
        &rvsd,
        "udp",
        "udp",
        &udp_addr,
        &mut || {
            let at = SystemTime::now();
            drop(echo.borrow_mut().take());
            at
        },
        &mut || {
            // From the moment it listens again (python's start is not
            // the check's time).
            *echo.borrow_mut() = Some(start_echo(&rs1.ns, &dir));
            SystemTime::now()
        },
    );
    figures.push(("udp", f));
    assert!(
        rvsd.last_log_line(&format!("{udp_addr} (udp) is down"))
            .contains("port unreachable"),
        "{}",
        rvsd.log()
    );

    // dns: dnsmasq killed, then started again.
    let dns_addr = format!("{}:53", rs1.ip);
    let f = measure(
        &rvsd,
        "dns",
        "dns",
        &dns_addr,
        &mut || {
            let at = SystemTime::now();
            drop(dns.borrow_mut().take());
            at
        },
        &mut || {
            *dns.borrow_mut() = Some(start_dnsmasq(&rs1.ns, &rs1.ip, &dir));
            SystemTime::now()
        },
    );
    figures.push(("dns", f));
    assert!(
        rvsd.last_log_line(&format!("{dns_addr} (dns) is up"))
            .contains("answered NOERROR with 1 record"),
        "{}",
        rvsd.log()
    );

    // icmp: rs2's echo requests dropped, then let through again.
    let icmp_addr = rs2.addr(topo.http_port);
    let f = measure(
        &rvsd,
        "icmp",
        "icmp",
        &icmp_addr,
        &mut || {
            let at = SystemTime::now();
            nft(&rs2.ns, &["add", "table", "ip", "blackhole"]);
            nft(
                &rs2.ns,
                &[
                    "add",
                    "chain",
                    "ip",
                    "blackhole",
                    "in",
                    "{ type filter hook input priority 0; policy accept; }",
                ],
            );
            nft(
                &rs2.ns,
                &[
                    "add",
                    "rule",
                    "ip",
                    "blackhole",
                    "in",
                    "icmp",
                    "type",
                    "echo-request",
                    "drop",
                ],
            );
            at
        },
        &mut || {
            let at = SystemTime::now();
            nft(&rs2.ns, &["delete", "table", "ip", "blackhole"]);
            at
        },
    );
    figures.push(("icmp", f));

    // script: the file it tests removed, then restored.
    let script_addr = rs1.addr(topo.http_port);
    let f = measure(
        &rvsd,
        "script",
        "script",
        &script_addr,
        &mut || {
            let at = SystemTime::now();
            std::fs::remove_file(&flag).unwrap();
            at
        },
        &mut || {
            let at = SystemTime::now();
            std::fs::write(&flag, "").unwrap();
            at
        },
    );
    figures.push(("script", f));

    // The dynamic weight: exit 7 is weight 5, exit 2 a drain (up, weight
    // 0), exit 0 the configured weight (1), exit 1 down.
    let t0 = Instant::now();
    std::fs::write(&code_file, "7\n").unwrap();
    let list = topo.rvsadm_list_until(SETTLE, |l| {
        listed_real_servers(l, "dynamic")[0]["weight"] == 5
    });
    let to_5 = t0.elapsed();
    assert_eq!(
        listed_real_servers(&list, "dynamic")[0]["weight"],
        5,
        "{list}"
    );
    assert!(
        rvsd.log().contains("set to 5 by its health check"),
        "{}",
        rvsd.log()
    );
    std::fs::write(&code_file, "2\n").unwrap();
    let list = topo.rvsadm_list_until(SETTLE, |l| {
        listed_real_servers(l, "dynamic")[0]["weight"] == 0
    });
    let rs = &listed_real_servers(&list, "dynamic")[0];
    assert_eq!(
        (rs["weight"].clone(), rs["health"].clone()),
        (0.into(), "up".into()),
        "{list}"
    );
    std::fs::write(&code_file, "0\n").unwrap();
    let list = topo.rvsadm_list_until(SETTLE, |l| {
        listed_real_servers(l, "dynamic")[0]["weight"] == 1
    });
    assert_eq!(
        listed_real_servers(&list, "dynamic")[0]["weight"],
        1,
        "{list}"
    );
    let dyn_addr = rs1.addr(topo.http_port);
    let f = measure(
        &rvsd,
        "script (dynamic weight, exit 1)",
        "dynamic",
        &dyn_addr,
        &mut || {
            let at = SystemTime::now();
            std::fs::write(&code_file, "1\n").unwrap();
            at
        },
        &mut || {
            let at = SystemTime::now();
            std::fs::write(&code_file, "6\n").unwrap();
            at
        },
    );
    figures.push(("script-dynamic", f));
    let list = topo.rvsadm_list_until(SETTLE, |l| {
        listed_real_servers(l, "dynamic")[0]["weight"] == 4
    });
    assert_eq!(listed_weight(&topo, "dynamic"), 4, "{list}");
    result_line(&format!(
        "health_kinds script dynamic weight: exit 7 -> weight 5 in rvsadm list after {:.0} ms; \
         exit 2 -> weight 0 and up; exit 0 -> configured weight 1; back up after exit 1 with exit 6 -> weight 4",
        to_5.as_secs_f64() * 1e3
    ));

    // The source address: the echo saw only it; rs2 counted the tcp
    // check's SYNs from it.
    let peers = echo.borrow().as_ref().map(Daemon::log).unwrap_or_default();
    assert!(peers.contains(&format!("peer {SOURCE_IP}")), "{peers}");
    assert_eq!(
        peers.lines().filter(|l| l.starts_with("peer ")).count(),
        1,
        "only the source address: {peers}"
    );
    let counted = rs2
        .ns
        .run_ok("nft", &["list", "chain", "ip", "count", "in"], CMD)
        .stdout;
    let syns: u64 = counted
        .split("counter packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {counted}"));
    assert!(syns >= 3, "tcp checks from {SOURCE_IP}: {syns}\n{counted}");
    assert!(
        !rvsd.log().contains("(tcpsrc) is down"),
        "the tcp check from the source address passes\n{}",
        rvsd.log()
    );
    result_line(&format!(
        "health_kinds source_address {SOURCE_IP}: the udp echo saw only it; rs2 counted {syns} tcp check SYNs from it"
    ));

    let summary: Vec<String> = figures
        .iter()
        .map(|(k, (d, r))| format!("{k} {d:.0}/{r:.0}"))
        .collect();
    result_line(&format!(
        "health_kinds detection/recovery ms (interval {INTERVAL_MS}, timeout {TIMEOUT_MS}, rise {RISE}, fall {FALL}): {}",
        summary.join(", ")
    ));
    let _ = stop_rvsd(rvsd);
    result_line(&format!(
        "health_kinds took {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}
