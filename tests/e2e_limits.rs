#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! Issue 17's limits against a real rvsd in the NAT topology (`tests/netns`):
//! each one refuses what it should, lets the rest through, and is counted
//! the same in `rvsadm stats` and in the metrics; a reload changes them.
//!
//! The client namespace has two addresses, 198.51.100.10 (curl's default)
//! and 198.51.100.11, so one client can be denied while the other is
//! served. One worker (`idle_sleep_us` > 0), so the per-worker shares of
//! the rate and thresholds are the configured values themselves.
//!
//! | service | VIP:port | limit |
//! | --- | --- | --- |
//! | `acl` | :80/tcp | `deny = [".11/32"]` |
//! | `rate` | :81/tcp | `new_conn_rate = 2`, `new_conn_burst = 2` |
//! | `perclient` | :82/tcp | `max_conns_per_client = 1` |
//! | `thresh` | :5353/udp | rs1 only, `upper_threshold = 3`, `lower_threshold = 2`, `udp_s = 2` |

mod netns;
mod support;

use netns::{heavy, result_line, stop_rvsd, Service, Topology, HTTP_PORT, UDP_ECHO_PORT, VIP};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::Rvsd;

const SECOND_CLIENT: &str = "198.51.100.11";
const FIRST_CLIENT: &str = "198.51.100.10";
const METRICS: &str = "127.0.0.1:9479";

/// The services, with the limits of the first configuration (`reloaded`:
/// the second one: `.10` denied instead of `.11`, a rate of 1000/s).
fn services(topo: &Topology, reloaded: bool) -> Vec<Service> {
    let rs = |i: usize, port: u16| topo.real_servers[i].addr(port);
    let web = |name: &str, port: u16| {
        Service::nat(name, &format!("{VIP}:{port}"), "tcp", "rr")
            .real(rs(0, HTTP_PORT), 1)
            .real(rs(1, HTTP_PORT), 1)
    };
    let denied = if reloaded {
        FIRST_CLIENT
    } else {
        SECOND_CLIENT
    };
    let rate = if reloaded { "1000" } else { "2" };
    vec![
        web("acl", 80).setting("deny", &format!("[\"{denied}/32\"]")),
        web("rate", 81)
            .setting("new_conn_rate", rate)
            .setting("new_conn_burst", rate),
        web("perclient", 82).setting("max_conns_per_client", "1"),
        Service::nat("thresh", &format!("{VIP}:{UDP_ECHO_PORT}"), "udp", "rr")
            .real(rs(0, UDP_ECHO_PORT), 1),
    ]
}

/// The config text: the topology's, plus rs1's thresholds in the UDP
/// service and a 2 s UDP timeout (so held flows end quickly).
fn config(topo: &Topology, reloaded: bool) -> String {
    let text = topo.rvsd_config(1, &services(topo, reloaded));
    let udp_rs = format!("address = \"{}\"", topo.real_servers[0].addr(UDP_ECHO_PORT));
    assert!(text.contains(&udp_rs), "{text}");
    let text = text.replace(
        &udp_rs,
        &format!("{udp_rs}\n  upper_threshold = 3\n  lower_threshold = 2"),
    );
    format!("{text}\n[timeouts]\nudp_s = 2\n")
}

fn start(topo: &Topology) -> Rvsd {
    let path = topo.dir.write("rvsd.toml", &config(topo, false));
    let check = support::run(
        support::RVSD,
        &["--config", &netns::path_str(&path), "--check"],
        Duration::from_secs(30),
    );
    assert!(check.success(), "config refused: {check}");
    let mut rvsd = Rvsd::start(&path, Some(&topo.lb));
    rvsd.wait_ready(Duration::from_secs(60));
    assert!(
        rvsd.wait_for_log("control socket", Duration::from_secs(10)),
        "no control socket\n{}",
        rvsd.log()
    );
    rvsd
}

/// `curl` to `VIP:port` from `from`: true when it got an answer. A
/// refused SYN is dropped, so the connect times out after 1 s.
fn curl_from(topo: &Topology, from: &str, port: u16) -> bool {
    let url = format!("http://{VIP}:{port}/");
    topo.client
        .run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "--interface",
                from,
                "--connect-timeout",
                "1",
                "-m",
                "3",
                &url,
            ],
            Duration::from_secs(10),
        )
        .success()
}

/// Opens `n` connections to `VIP:port` at once (each given 0.7 s, less
/// than the kernel's first SYN retransmission): how many were accepted.
fn concurrent_connects(topo: &Topology, port: u16, n: usize) -> usize {
    const SCRIPT: &str = "import socket, sys, threading\n\
        dst = (sys.argv[1], int(sys.argv[2]))\n\
        ok = []\n\
        def one():\n\
        \x20   try:\n\
        \x20       s = socket.create_connection(dst, timeout=0.7)\n\
        \x20       ok.append(1)\n\
        \x20       s.close()\n\
        \x20   except OSError:\n\
        \x20       pass\n\
        ts = [threading.Thread(target=one) for _ in range(int(sys.argv[3]))]\n\
        [t.start() for t in ts]\n\
        [t.join() for t in ts]\n\
        print(len(ok))\n";
    let out = topo.client.run(
        "python3",
        &["-c", SCRIPT, VIP, &port.to_string(), &n.to_string()],
        Duration::from_secs(20),
    );
    assert!(out.success(), "{out}");
    out.stdout.trim().parse().expect("a count")
}

/// A client process holding one connection to `VIP:port` open (from the
/// first client) until it is killed; killing it closes the connection
/// with a FIN.
struct Holder(Child);

impl Holder {
    fn open(topo: &Topology, port: u16) -> Holder {
        const SCRIPT: &str = "import socket, sys, time\n\
            s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
            print('connected', flush=True)\n\
            time.sleep(60)\n";
        let mut child = topo
            .client
            .command("python3")
            .args(["-c", SCRIPT, VIP, &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "connected", "the holder could not connect");
        Holder(child)
    }

    fn close(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The UDP threshold scenario, in one client process: three flows held
/// (each a socket sending every 0.3 s) take rs1 to its upper threshold of
/// 3; a new flow gets no echo (and, while the three hold it, `rvsadm list`
/// shows rs1 `overloaded`: the second value returned); one held flow
/// stops, expires, and leaves 2, not below the lower threshold: still
/// none; a second stops: 1 left, below 2, and a new flow is echoed.
fn threshold_scenario(topo: &Topology) -> (serde_json::Value, serde_json::Value) {
    const SCRIPT: &str = "import json, socket, sys, time\n\
        dst = (sys.argv[1], int(sys.argv[2]))\n\
        def sock():\n\
        \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        \x20   s.settimeout(0.4)\n\
        \x20   return s\n\
        def ping(s):\n\
        \x20   s.sendto(b'rvs-limits', dst)\n\
        \x20   try:\n\
        \x20       s.recvfrom(2048)\n\
        \x20       return True\n\
        \x20   except socket.timeout:\n\
        \x20       return False\n\
        def hold(active, secs):\n\
        \x20   end = time.time() + secs\n\
        \x20   while time.time() < end:\n\
        \x20       for s in active:\n\
        \x20           ping(s)\n\
        \x20       time.sleep(0.3)\n\
        held = [sock() for _ in range(3)]\n\
        res = {'held': [ping(s) for s in held]}\n\
        res['at_upper'] = ping(sock())\n\
        print('at_upper', flush=True)\n\
        hold(held, 1.5)\n\
        hold(held[1:], 3.5)\n\
        res['above_lower'] = ping(sock())\n\
        hold(held[2:], 3.5)\n\
        res['below_lower'] = ping(sock())\n\
        print(json.dumps(res))\n";
    let mut child = topo
        .client
        .command("python3")
        .args(["-c", SCRIPT, VIP, &UDP_ECHO_PORT.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "at_upper", "the scenario's first phase");
    std::thread::sleep(Duration::from_millis(300));
    let list = topo.rvsadm_list();
    let overloaded = list["virtual_servers"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["name"] == "thresh"))
        .map(|s| s["real_servers"][0]["overloaded"].clone())
        .unwrap_or_else(|| panic!("no thresh service in {list}"));
    let last = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = child.wait();
    let result = serde_json::from_str(last.trim())
        .unwrap_or_else(|e| panic!("the scenario printed no JSON ({e}): {last}"));
    (result, overloaded)
}

/// The refusal counters: from `rvsadm --json stats` (the total and the
/// one worker's) and from the metrics, which must agree.
fn refusals(topo: &Topology) -> [u64; 4] {
    // Workers publish every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let stats = topo.rvsadm_json("stats");
    let metrics = topo.metrics();
    let reasons = [
        "acl_denied",
        "rate_limited",
        "client_limit",
        "rs_overloaded",
    ];
    reasons.map(|r| {
        let total = support::counter(&stats, &format!("total.drops.{r}"));
        assert_eq!(
            stats["workers"][0]["drops"][r].as_u64(),
            Some(total),
            "one worker: its count is the total ({r}): {stats}"
        );
        let line = format!("rvs_drops_total{{reason=\"{r}\"}} {total}\n");
        assert!(
            metrics.contains(&line),
            "the metrics say `{}`: want {line}",
            metrics
                .lines()
                .find(|l| l.contains(&format!("\"{r}\"")))
                .unwrap_or("nothing")
        );
        total
    })
}

/// The `refused` counts of service `name` in `rvsadm --json list`, and
/// the same from `rvs_virtual_server_refused_total`.
fn service_refusals(topo: &Topology, name: &str) -> [u64; 4] {
    let list = topo.rvsadm_list();
    let metrics = topo.metrics();
    let vs = list["virtual_servers"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"));
    [
        "acl_denied",
        "rate_limited",
        "client_limit",
        "rs_overloaded",
    ]
    .map(|r| {
        let n = vs["refused"][r]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no refused.{r}: {list}"));
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("rvs_virtual_server_refused_total{")
                    && l.contains(&format!("virtual_server=\"{name}\""))
                    && l.contains(&format!("reason=\"{r}\""))
            })
            .unwrap_or_else(|| panic!("no refused metric for {name} {r}"));
        assert!(line.ends_with(&format!(" {n}")), "{line} vs list {n}");
        n
    })
}

#[test]
fn limits_refuse_count_and_reload() {
    let _heavy = heavy();
    let started = Instant::now();
    let mut topo = Topology::nat(2);
    topo.metrics_listen = Some(METRICS.to_string());
    topo.start_udp_echo();
    topo.client
        .add_address(&topo.client_dev, &format!("{SECOND_CLIENT}/24"));
    let rvsd = start(&topo);

    // ACL: .11 denied at :80, served elsewhere; .10 served.
    assert!(curl_from(&topo, FIRST_CLIENT, 80), "an allowed client");
    assert!(!curl_from(&topo, SECOND_CLIENT, 80), "a denied client");
    assert!(
        curl_from(&topo, SECOND_CLIENT, 82),
        "the deny list is the acl service's only"
    );
    let [acl, rate, client, over] = refusals(&topo);
    assert!(acl >= 1, "the denied SYN(s) counted");
    assert_eq!([rate, client, over], [0, 0, 0]);

    // Rate: 2/s with a burst of 2; ten at once get the burst.
    let accepted = concurrent_connects(&topo, 81, 10);
    assert!(
        (2..=3).contains(&accepted),
        "the burst of 2 (and at most one token more): {accepted}"
    );
    let [_, rate, _, _] = refusals(&topo);
    assert_eq!(rate as usize, 10 - accepted, "each refused SYN counted");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(concurrent_connects(&topo, 81, 1), 1, "a token a 0.5 s");

    // Per client: .10 holds its one connection; .11 is another client.
    let holder = Holder::open(&topo, 82);
    assert!(!curl_from(&topo, FIRST_CLIENT, 82), "over .10's limit");
    assert!(curl_from(&topo, SECOND_CLIENT, 82), ".11 has its own");
    let [_, _, client, _] = refusals(&topo);
    assert!(client >= 1, "the refused SYN(s) counted");
    holder.close();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        curl_from(&topo, FIRST_CLIENT, 82),
        "a closed connection frees its place"
    );

    // Thresholds, upper then lower.
    let (t, listed_at_upper) = threshold_scenario(&topo);
    assert_eq!(
        listed_at_upper, true,
        "rvsadm list shows rs1 overloaded while three flows hold it"
    );
    assert_eq!(t["held"], serde_json::json!([true, true, true]), "{t}");
    assert_eq!(t["at_upper"], false, "rs1 at its upper threshold: {t}");
    assert_eq!(t["above_lower"], false, "2 left, not below 2: {t}");
    assert_eq!(t["below_lower"], true, "1 left, below 2: {t}");
    let [_, _, _, over] = refusals(&topo);
    assert_eq!(over, 2, "the two refused flows");

    // A reload turns the ACL round and lifts the rate.
    std::fs::write(topo.config_path(), config(&topo, true)).expect("write");
    let out = topo.rvsadm(&["reload"]);
    assert!(out.success(), "{out}\n{}", rvsd.log());
    assert!(
        out.stdout.contains("deny") && out.stdout.contains("new_conn_rate"),
        "the reload names what changed: {out}"
    );
    let [acl_before, ..] = refusals(&topo);
    assert!(curl_from(&topo, SECOND_CLIENT, 80), ".11 allowed now");
    assert!(!curl_from(&topo, FIRST_CLIENT, 80), ".10 denied now");
    assert_eq!(concurrent_connects(&topo, 81, 10), 10, "1000/s");
    let counted = refusals(&topo);
    assert!(counted[0] > acl_before, "the new denial counted");

    // Per service: each refusal under the service it was for.
    let per_service = [
        service_refusals(&topo, "acl"),
        service_refusals(&topo, "rate"),
        service_refusals(&topo, "perclient"),
        service_refusals(&topo, "thresh"),
    ];
    assert_eq!(per_service[0], [counted[0], 0, 0, 0], "acl");
    assert_eq!(per_service[1], [0, counted[1], 0, 0], "rate");
    assert_eq!(per_service[2], [0, 0, counted[2], 0], "perclient");
    assert_eq!(per_service[3], [0, 0, 0, counted[3]], "thresh");

    // The `stats:` line at stop says the same.
    let stats = stop_rvsd(rvsd);
    let reasons = [
        "acl_denied",
        "rate_limited",
        "client_limit",
        "rs_overloaded",
    ];
    for (r, n) in reasons.iter().zip(counted) {
        assert_eq!(
            support::counter(&stats, &format!("total.drops.{r}")),
            n,
            "{r}"
        );
    }
    let took = started.elapsed();
    result_line(&format!(
        "limits acl_denied={} rate_limited={} client_limit={} rs_overloaded={} \
         (acl, rate, per-client, thresholds, reload) in {:.1} s",
        counted[0],
        counted[1],
        counted[2],
        counted[3],
        took.as_secs_f64()
    ));
}
