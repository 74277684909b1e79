//! Network-namespace topologies for end-to-end tests, built from a short
//! description and torn down on drop (also when the test panics).
//!
//! The NAT topology ([`Topology::nat`]):
//!
//! ```text
//!  client ns                  lb ns (rvsd)                 switch ns          rs1..rsN ns
//!  client_dev  <-- veth -->  outside_dev  inside_dev  <-- veth --> +------+ <-- veth --> rs dev
//!  198.51.100.10/24          198.51.100.1 10.1.0.1       (no kernel | br0  |              10.1.0.11.. /24
//!  default via .1            (rvsd's, no kernel IPs)       IPs)     +------+              default via 10.1.0.1
//! ```
//!
//! Optionally ([`Topology::nat_with_management`]) a management veth joins
//! the lb namespace's kernel (10.1.0.254/24) to the switch, so the control
//! thread's kernel sockets there (health checks) reach the real servers
//! without going through rvsd's own ports.
//!
//! Every real server runs an HTTP server on port 8080 (nginx when it is
//! installed, else Python's `http.server`; `RVS_TEST_HTTP_SERVER=python`
//! or `=nginx` chooses) answering `GET /` with its own
//! name (`rs1\n`) and serving [`BIG_FILE`] for downloads; a UDP echo server
//! on 5353 starts on request ([`Topology::start_udp_echo`]).
//!
//! Why a switch namespace with a bridge instead of one veth per real
//! server into the lb namespace: rvsd's inside port is one device, and real
//! servers on one L2 segment is what a NAT deployment looks like (ARP for
//! the gateway, replies from several servers on one port).
//!
//! Every step is time-bounded (the commands of `support` are), and every
//! namespace, interface, process and file is removed on drop. Interface
//! names come from `support::veth_pair` (unique per test process and call),
//! and the bridge is named inside its own namespace, so tests may run in
//! parallel threads.
#![allow(dead_code)]

use crate::support::{self, wait_timeout, CmdOutput, Netns, Rvsd, TempDir};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The client's address (on the outside segment).
pub const CLIENT_IP: &str = "198.51.100.10";
/// rvsd's address on the outside segment: the client's default gateway.
pub const OUTSIDE_IP: &str = "198.51.100.1";
/// rvsd's address on the inside segment: the real servers' gateway.
pub const INSIDE_IP: &str = "10.1.0.1";
/// The address the tests use for virtual servers (on the outside subnet,
/// so rvsd answers ARP for it there).
pub const VIP: &str = "198.51.100.100";
/// The lb namespace kernel's address on the management path.
pub const MANAGEMENT_IP: &str = "10.1.0.254";
/// rvsd's MAC on the outside port.
pub const OUTSIDE_MAC: &str = "02:00:00:00:01:01";
/// rvsd's MAC on the inside port.
pub const INSIDE_MAC: &str = "02:00:00:00:01:02";
/// The real servers' HTTP port.
pub const HTTP_PORT: u16 = 8080;
/// The real servers' UDP echo port.
pub const UDP_ECHO_PORT: u16 = 5353;
/// A large file every real server serves at `/big.bin`.
pub const BIG_FILE: &str = "big.bin";
/// Its length.
pub const BIG_FILE_LEN: usize = 4 << 20;

/// Time bound for one configuration command (`ip`, `sysctl`, ...).
const CMD: Duration = Duration::from_secs(10);
/// Time bound for a server to start listening.
const APP_START: Duration = Duration::from_secs(15);
/// Time bound for rvsd to get ready.
const RVSD_READY: Duration = Duration::from_secs(30);

/// The content of [`BIG_FILE`]: a deterministic pattern that does not
/// repeat with any small period (so a lost or repeated segment shows).
pub fn big_file_bytes() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..BIG_FILE_LEN)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Turns IPv6 off in a namespace (for links created later too), so the
/// only traffic on the wires is what the test sends.
pub fn ipv6_off(ns: &Netns) {
    for key in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ] {
        let _ = ns.run("sysctl", &["-q", "-w", key], CMD);
    }
}

/// A namespace with IPv6 off.
fn quiet_netns() -> Netns {
    let ns = Netns::new();
    ipv6_off(&ns);
    ns
}

/// True when `program` is on PATH (or is a path that exists).
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Which HTTP server the real servers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpServer {
    Nginx,
    Python,
}

/// One real server: its namespace, address and interface.
#[derive(Debug)]
pub struct RealServer {
    /// `rs1`, `rs2`, ...: also what its `GET /` answers.
    pub name: String,
    /// `10.1.0.11`, `10.1.0.12`, ...
    pub ip: String,
    /// Its interface (on the switch).
    pub dev: String,
    pub ns: Netns,
    /// Its scratch directory (document root under `www/`).
    pub dir: PathBuf,
}

impl RealServer {
    /// `ip:port`, e.g. `10.1.0.11:8080`.
    pub fn addr(&self, port: u16) -> String {
        format!("{}:{port}", self.ip)
    }
}

/// A process the topology started; killed on drop.
struct App {
    what: String,
    child: Child,
    log: PathBuf,
}

/// A virtual server for the generated config.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    /// `VIP:PORT`.
    pub address: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub scheduler: String,
    /// `nat`, `dr`, `tun`.
    pub forward: String,
    /// `(RIP:PORT, weight)`.
    pub real_servers: Vec<(String, u32)>,
}

impl Service {
    /// A NAT service with no real servers yet.
    pub fn nat(name: &str, address: &str, protocol: &str, scheduler: &str) -> Service {
        Service {
            name: name.into(),
            address: address.into(),
            protocol: protocol.into(),
            scheduler: scheduler.into(),
            forward: "nat".into(),
            real_servers: Vec::new(),
        }
    }

    /// Adds a real server.
    pub fn real(mut self, address: impl Into<String>, weight: u32) -> Service {
        self.real_servers.push((address.into(), weight));
        self
    }
}

/// A built topology. Dropping it kills the processes it started, then
/// deletes its namespaces (with every interface in them) and its files.
pub struct Topology {
    // Field order is drop order: processes, namespaces, then files.
    apps: Vec<App>,
    pub client: Netns,
    pub lb: Netns,
    pub switch: Netns,
    pub real_servers: Vec<RealServer>,
    /// The client's interface.
    pub client_dev: String,
    /// rvsd's outside port (in `lb`).
    pub outside_dev: String,
    /// rvsd's inside port (in `lb`).
    pub inside_dev: String,
    /// The lb kernel's management interface, when built with one.
    pub management_dev: Option<String>,
    /// Which HTTP server the real servers run.
    pub http: HttpServer,
    pub dir: TempDir,
}

impl Drop for Topology {
    fn drop(&mut self) {
        // SIGTERM first, so nginx's master stops and reaps its workers
        // (SIGKILL would leave them to init); SIGKILL what is left.
        let running: Vec<&mut App> = self
            .apps
            .iter_mut()
            .filter_map(|a| a.child.try_wait().ok().flatten().is_none().then_some(a))
            .collect();
        for app in &running {
            let _ = support::run("kill", &["-TERM", &app.child.id().to_string()], CMD);
        }
        for app in running {
            if wait_timeout(&mut app.child, Duration::from_secs(2)).is_none() {
                let _ = app.child.kill();
                let _ = wait_timeout(&mut app.child, Duration::from_secs(5));
            }
        }
    }
}

impl Topology {
    /// The NAT topology with `n` real servers (rs1 .. rsN), each running
    /// its HTTP server.
    pub fn nat(n: usize) -> Topology {
        Topology::build(n, false)
    }

    /// [`Topology::nat`] plus a management path from the lb namespace's
    /// kernel (10.1.0.254/24) to the real servers.
    pub fn nat_with_management(n: usize) -> Topology {
        Topology::build(n, true)
    }

    fn build(n: usize, management: bool) -> Topology {
        assert!(
            (1..=50).contains(&n),
            "1 to 50 real servers, not {n} (10.1.0.11 up)"
        );
        support::require_root("network namespaces");
        let started = Instant::now();
        let dir = TempDir::new("nat");
        let client = quiet_netns();
        let lb = quiet_netns();
        let switch = quiet_netns();
        let http = match std::env::var("RVS_TEST_HTTP_SERVER").as_deref() {
            Ok("python") => HttpServer::Python,
            Ok("nginx") => HttpServer::Nginx,
            _ if have("nginx") => HttpServer::Nginx,
            _ => HttpServer::Python,
        };
        let mut topo = Topology {
            apps: Vec::new(),
            client,
            lb,
            switch,
            real_servers: Vec::new(),
            client_dev: String::new(),
            outside_dev: String::new(),
            inside_dev: String::new(),
            management_dev: None,
            http,
            dir,
        };

        // client <-> lb (outside).
        let out = support::veth_pair(&topo.client, &topo.lb);
        topo.client.add_address(&out.a, &format!("{CLIENT_IP}/24"));
        topo.client
            .run_ok("ip", &["route", "add", "default", "via", OUTSIDE_IP], CMD);
        topo.client_dev = out.a;
        topo.outside_dev = out.b;

        // The switch: a bridge without STP (ports forward at once), quiet.
        let sw = &topo.switch;
        sw.run_ok(
            "ip",
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                "mcast_snooping",
                "0",
            ],
            CMD,
        );
        sw.link_up("br0");

        // lb (inside) <-> switch.
        let inside = support::veth_pair(&topo.lb, &topo.switch);
        topo.switch
            .run_ok("ip", &["link", "set", &inside.b, "master", "br0"], CMD);
        topo.inside_dev = inside.a;

        if management {
            let mgmt = support::veth_pair(&topo.lb, &topo.switch);
            topo.lb.add_address(&mgmt.a, &format!("{MANAGEMENT_IP}/24"));
            topo.switch
                .run_ok("ip", &["link", "set", &mgmt.b, "master", "br0"], CMD);
            topo.management_dev = Some(mgmt.a);
        }

        // Real servers.
        for i in 1..=n {
            let name = format!("rs{i}");
            let ip = format!("10.1.0.{}", 10 + i);
            let ns = quiet_netns();
            let v = support::veth_pair(&ns, &topo.switch);
            topo.switch
                .run_ok("ip", &["link", "set", &v.b, "master", "br0"], CMD);
            ns.add_address(&v.a, &format!("{ip}/24"));
            ns.run_ok("ip", &["route", "add", "default", "via", INSIDE_IP], CMD);
            let rs_dir = topo.dir.join(&name);
            std::fs::create_dir_all(rs_dir.join("www"))
                .and_then(|_| std::fs::create_dir_all(rs_dir.join("tmp")))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", rs_dir.display()));
            topo.real_servers.push(RealServer {
                name,
                ip,
                dev: v.a,
                ns,
                dir: rs_dir,
            });
        }
        topo.start_http();
        eprintln!(
            "topology: client {} lb {} switch {} real servers {} ({:?}), built in {:.1} s",
            topo.client.name(),
            topo.lb.name(),
            topo.switch.name(),
            topo.real_servers
                .iter()
                .map(|r| format!("{}={}", r.name, r.ns.name()))
                .collect::<Vec<_>>()
                .join(" "),
            topo.http,
            started.elapsed().as_secs_f64()
        );
        topo
    }

    // ------------------------------------------------------------- apps

    /// Starts `cmd` (a command in some namespace) in the background, its
    /// output in `log`. The topology kills it on drop.
    fn spawn(&mut self, what: String, mut cmd: Command, log: PathBuf) {
        let out =
            File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup {}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        self.apps.push(App { what, child, log });
    }

    /// Starts the HTTP server in every real server and waits until each
    /// answers `GET /` with its name (asked from inside its namespace).
    fn start_http(&mut self) {
        let big = big_file_bytes();
        let mut jobs = Vec::new();
        for i in 0..self.real_servers.len() {
            let (name, dir) = {
                let rs = &self.real_servers[i];
                (rs.name.clone(), rs.dir.clone())
            };
            let www = dir.join("www");
            write_file(&www.join("index.html"), format!("{name}\n").as_bytes());
            write_file(&www.join(BIG_FILE), &big);
            let (program, args): (&str, Vec<String>) = match self.http {
                HttpServer::Nginx => {
                    let conf = nginx_conf(&name, &dir);
                    write_file(&dir.join("nginx.conf"), conf.as_bytes());
                    (
                        "nginx",
                        vec![
                            "-p".into(),
                            path_str(&dir),
                            "-c".into(),
                            path_str(&dir.join("nginx.conf")),
                            "-e".into(),
                            path_str(&dir.join("error.log")),
                        ],
                    )
                }
                HttpServer::Python => (
                    "python3",
                    vec![
                        "-m".into(),
                        "http.server".into(),
                        HTTP_PORT.to_string(),
                        "--bind".into(),
                        "0.0.0.0".into(),
                        "--directory".into(),
                        path_str(&www),
                    ],
                ),
            };
            let mut cmd = self.real_servers[i].ns.command(program);
            cmd.args(&args);
            self.spawn(format!("{name} http"), cmd, dir.join("http.log"));
            jobs.push(i);
        }
        for i in jobs {
            self.wait_http(i);
        }
    }

    fn wait_http(&mut self, i: usize) {
        let url = format!("http://127.0.0.1:{HTTP_PORT}/");
        let deadline = Instant::now() + APP_START;
        let mut last = None;
        while Instant::now() < deadline {
            self.check_apps_alive();
            let rs = &self.real_servers[i];
            let out = rs.ns.run("curl", &["-s", "-m", "2", &url], CMD);
            if out.success() && out.stdout == format!("{}\n", rs.name) {
                return;
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} HTTP server not answering on {url} after {:.0} s: {}\n{}",
            self.real_servers[i].name,
            APP_START.as_secs_f64(),
            last.map(|o| o.to_string()).unwrap_or_default(),
            self.app_logs()
        );
    }

    /// Starts a UDP echo server on [`UDP_ECHO_PORT`] in every real server
    /// and waits until each listens.
    pub fn start_udp_echo(&mut self) {
        const ECHO: &str = "import socket\n\
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
            s.bind(('0.0.0.0', 5353))\n\
            while True:\n    d, a = s.recvfrom(65535)\n    s.sendto(d, a)\n";
        for i in 0..self.real_servers.len() {
            let rs = &self.real_servers[i];
            let (what, log) = (format!("{} udp echo", rs.name), rs.dir.join("udp-echo.log"));
            let mut cmd = rs.ns.command("python3");
            cmd.args(["-u", "-c", ECHO]);
            self.spawn(what, cmd, log);
        }
        for i in 0..self.real_servers.len() {
            let deadline = Instant::now() + APP_START;
            loop {
                self.check_apps_alive();
                let rs = &self.real_servers[i];
                let out = rs.ns.run("ss", &["-Hlun"], CMD);
                if out.stdout.contains(&format!(":{UDP_ECHO_PORT} ")) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} UDP echo not listening after {:.0} s: {out}\n{}",
                    rs.name,
                    APP_START.as_secs_f64(),
                    self.app_logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Panics with the logs when a server the topology started has exited.
    pub fn check_apps_alive(&mut self) {
        let mut dead = Vec::new();
        for app in &mut self.apps {
            if let Ok(Some(status)) = app.child.try_wait() {
                dead.push(format!("{} exited with {status}", app.what));
            }
        }
        if !dead.is_empty() {
            panic!("{}\n{}", dead.join("\n"), self.app_logs());
        }
    }

    /// The logs of the servers the topology started.
    pub fn app_logs(&self) -> String {
        let mut s = String::new();
        for app in &self.apps {
            let text = std::fs::read_to_string(&app.log).unwrap_or_default();
            let _ = writeln!(
                s,
                "--- {} log ({}) ---\n{text}",
                app.what,
                app.log.display()
            );
            if let Some(dir) = app.log.parent() {
                if let Ok(err) = std::fs::read_to_string(dir.join("error.log")) {
                    if !err.is_empty() && app.what.ends_with("http") {
                        let _ = writeln!(s, "--- {} nginx error.log ---\n{err}", app.what);
                    }
                }
            }
        }
        s
    }

    // ----------------------------------------------------------- rvsd

    /// The control socket path of this topology's rvsd.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("rvsd.sock")
    }

    /// An rvsd config for this topology: `workers` (1 or 2) poll-mode
    /// workers, the outside and inside ports on `net_af_packet` (one queue
    /// pair per worker), and `services`.
    pub fn rvsd_config(&self, workers: usize, services: &[Service]) -> String {
        assert!(
            (1..=2).contains(&workers),
            "this machine has 2 CPUs: 1 or 2 workers, not {workers}"
        );
        let mut eal = support::test_eal_args();
        if workers == 2 {
            // Two workers on CPU 1 (lcores 1 and 2), the main lcore on CPU 0.
            let lcores = ["--lcores".to_string(), "0@0,1@1,2@1".to_string()];
            match eal.iter().position(|a| a == "-l") {
                Some(i) if i + 1 < eal.len() => {
                    eal.splice(i..i + 2, lcores);
                }
                _ => {
                    eal.splice(0..0, lcores);
                }
            }
        }
        let worker_list = if workers == 2 { "[1, 2]" } else { "[1]" };
        let qpairs = if workers == 2 { ",qpairs=2" } else { "" };
        let list = |items: &[String]| {
            items
                .iter()
                .map(|s| support::toml_str(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let q = support::toml_str;
        let mut t = String::new();
        let _ = writeln!(t, "# generated by tests/netns for {}", self.lb.name());
        let _ = writeln!(t, "[dpdk]");
        let _ = writeln!(t, "eal_args = [{}]", list(&eal));
        let _ = writeln!(t, "workers = {worker_list}");
        let _ = writeln!(t, "\n[dataplane]");
        let _ = writeln!(t, "burst_size = 32");
        let _ = writeln!(t, "conn_table_size = 4096");
        let _ = writeln!(t, "idle_sleep_us = 50");
        for (i, (name, dev, addr, mac)) in [
            ("outside", &self.outside_dev, OUTSIDE_IP, OUTSIDE_MAC),
            ("inside", &self.inside_dev, INSIDE_IP, INSIDE_MAC),
        ]
        .into_iter()
        .enumerate()
        {
            let _ = writeln!(t, "\n[[interface]]");
            let _ = writeln!(t, "name = {}", q(name));
            let _ = writeln!(
                t,
                "device = {}",
                q(&format!("net_af_packet{i},iface={dev}{qpairs}"))
            );
            let _ = writeln!(t, "addresses = [{}]", q(&format!("{addr}/24")));
            let _ = writeln!(t, "mac = {}", q(mac));
        }
        let _ = writeln!(t, "\n[control]");
        let _ = writeln!(t, "socket = {}", q(&path_str(&self.socket_path())));
        for s in services {
            let _ = writeln!(t, "\n[[virtual_server]]");
            let _ = writeln!(t, "name = {}", q(&s.name));
            let _ = writeln!(t, "address = {}", q(&s.address));
            let _ = writeln!(t, "protocol = {}", q(&s.protocol));
            let _ = writeln!(t, "scheduler = {}", q(&s.scheduler));
            let _ = writeln!(t, "forward = {}", q(&s.forward));
            for (addr, weight) in &s.real_servers {
                let _ = writeln!(t, "\n  [[virtual_server.real_server]]");
                let _ = writeln!(t, "  address = {}", q(addr));
                let _ = writeln!(t, "  weight = {weight}");
            }
        }
        t
    }

    /// Writes [`Topology::rvsd_config`] to `rvsd.toml`, checks it with
    /// `rvsd --check`, starts rvsd in the lb namespace and waits until it
    /// is ready and its control socket is bound.
    pub fn start_rvsd(&self, workers: usize, services: &[Service]) -> Rvsd {
        let text = self.rvsd_config(workers, services);
        let path = self.dir.write("rvsd.toml", &text);
        let check = support::run(
            support::RVSD,
            &["--config", &path_str(&path), "--check"],
            CMD,
        );
        assert!(
            check.success(),
            "generated config is invalid: {check}\n--- config ---\n{text}"
        );
        let mut rvsd = Rvsd::start(&path, Some(&self.lb));
        rvsd.wait_ready(RVSD_READY);
        assert!(
            rvsd.wait_for_log("control socket", Duration::from_secs(10)),
            "rvsd bound no control socket\n--- rvsd log ---\n{}",
            rvsd.log()
        );
        rvsd
    }

    /// `rvsadm --socket <ours> --json ARGS`, parsed.
    pub fn rvsadm_json(&self, command: &str) -> serde_json::Value {
        let sock = path_str(&self.socket_path());
        let out = support::run(
            env!("CARGO_BIN_EXE_rvsadm"),
            &["--socket", &sock, "--json", command],
            CMD,
        )
        .expect_success();
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("rvsadm {command} printed no JSON ({e}): {out}"))
    }

    /// `rvsadm --json list`.
    pub fn rvsadm_list(&self) -> serde_json::Value {
        self.rvsadm_json("list")
    }

    /// `rvsadm --json list`, asked again (every 50 ms, for at most
    /// `timeout`) until `settled` holds: workers publish their counters
    /// every 100 ms, so the document lags the traffic a little. Returns
    /// the last document either way; the caller's assertions judge it.
    pub fn rvsadm_list_until(
        &self,
        timeout: Duration,
        settled: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let list = self.rvsadm_list();
            if settled(&list) || Instant::now() >= deadline {
                return list;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // -------------------------------------------------------- clients

    /// `curl -s -m 5 http://HOST/PATH` in the client namespace (one
    /// connection).
    pub fn curl(&self, host: &str, path: &str) -> CmdOutput {
        let url = format!("http://{host}{path}");
        self.client.run("curl", &["-s", "-m", "5", &url], CMD)
    }

    /// `n` sequential `GET http://HOST/PATH` by one curl process, each on
    /// its own connection (`Connection: close`). One result per request:
    /// the body, or the reason it failed.
    pub fn http_get_many(&self, host: &str, path: &str, n: usize) -> Vec<Result<String, String>> {
        // Not starting with `@`: `-w @file` reads the format from a file.
        const MARK: &str = "~rvs-status:";
        let url = format!("http://{host}{path}");
        let write_out = format!("{MARK}%{{http_code}}\\n");
        let mut args: Vec<&str> = vec![
            "-s",
            "--connect-timeout",
            "3",
            "-m",
            "5",
            "-H",
            "Connection: close",
            "-w",
            &write_out,
        ];
        args.extend(std::iter::repeat_n(url.as_str(), n));
        let budget = Duration::from_secs(20) + Duration::from_millis(100) * n as u32;
        let out = self.client.run("curl", &args, budget);
        let mut results = Vec::with_capacity(n);
        let mut rest = out.stdout.as_str();
        while let Some(at) = rest.find(MARK) {
            let body = &rest[..at];
            let after = &rest[at + MARK.len()..];
            let end = after.find('\n').unwrap_or(after.len());
            let code = &after[..end];
            results.push(if code == "200" {
                Ok(body.to_string())
            } else {
                Err(format!("HTTP status {code}, body {body:?}"))
            });
            rest = after.get(end + 1..).unwrap_or("");
        }
        if results.len() < n {
            let why = if out.timed_out() {
                format!("curl ran out of its {:.0} s", budget.as_secs_f64())
            } else {
                format!("curl stopped early: {:?}", out.status)
            };
            results.resize(n, Err(why));
        }
        results
    }

    /// Downloads `http://HOST/PATH` in the client namespace into the
    /// topology's directory and returns the bytes (or curl's output).
    pub fn download(
        &self,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, CmdOutput> {
        let file = self
            .dir
            .join(&format!("download-{}", support::unique_token()));
        let url = format!("http://{host}{path}");
        let max = timeout.as_secs().max(1).to_string();
        let out = self.client.run(
            "curl",
            &["-s", "-S", "-f", "-m", &max, "-o", &path_str(&file), &url],
            timeout + Duration::from_secs(5),
        );
        if !out.success() {
            return Err(out);
        }
        let bytes = std::fs::read(&file).map_err(|_| out)?;
        let _ = std::fs::remove_file(&file);
        Ok(bytes)
    }

    /// Sends `count` datagrams (`rvs-udp-<i>`) from one client socket to
    /// `host:port`, each waiting up to 2 s for its echo. One result per
    /// datagram: the echo's source `ip:port`, or `None` when none came.
    pub fn udp_exchange(&self, host: &str, port: u16, count: usize) -> Vec<Option<String>> {
        const CLIENT: &str = "import json, socket, sys\n\
            dst = (sys.argv[1], int(sys.argv[2]))\n\
            n = int(sys.argv[3])\n\
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
            s.settimeout(2.0)\n\
            res = []\n\
            for i in range(n):\n\
            \x20   msg = b'rvs-udp-%d' % i\n\
            \x20   s.sendto(msg, dst)\n\
            \x20   got = None\n\
            \x20   try:\n\
            \x20       while got is None:\n\
            \x20           d, a = s.recvfrom(2048)\n\
            \x20           if d == msg:\n\
            \x20               got = '%s:%d' % a\n\
            \x20   except socket.timeout:\n\
            \x20       pass\n\
            \x20   res.append(got)\n\
            print(json.dumps(res))\n";
        let port = port.to_string();
        let n = count.to_string();
        let budget = Duration::from_secs(10) + Duration::from_secs(2) * count as u32;
        let out = self
            .client
            .run("python3", &["-c", CLIENT, host, &port, &n], budget);
        assert!(out.success(), "UDP client failed: {out}");
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("UDP client printed no JSON list ({e}): {out}"))
    }
}

/// The sum of `conns` over every real server of `service` (0 when the
/// document has no such service).
pub fn total_conns(list: &serde_json::Value, service: &str) -> u64 {
    list["virtual_servers"]
        .as_array()
        .and_then(|vss| vss.iter().find(|vs| vs["name"] == service))
        .and_then(|vs| vs["real_servers"].as_array())
        .map(|rss| rss.iter().filter_map(|rs| rs["conns"].as_u64()).sum())
        .unwrap_or(0)
}

/// Counts the answers per body (a real server's name, trimmed); failures
/// are counted under `"<failed>"`.
pub fn count_answers(results: &[Result<String, String>]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in results {
        let key = match r {
            Ok(body) => body.trim().to_string(),
            Err(_) => "<failed>".to_string(),
        };
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

/// The real servers of the virtual server named `service` in an
/// `rvsadm --json list` document.
pub fn listed_real_servers<'a>(
    list: &'a serde_json::Value,
    service: &str,
) -> &'a Vec<serde_json::Value> {
    list["virtual_servers"]
        .as_array()
        .and_then(|vss| vss.iter().find(|vs| vs["name"] == service))
        .and_then(|vs| vs["real_servers"].as_array())
        .unwrap_or_else(|| panic!("rvsadm list has no virtual server {service:?}: {list}"))
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn path_str(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("path {} is not UTF-8", p.display()))
        .to_string()
}

fn nginx_conf(name: &str, dir: &Path) -> String {
    let d = path_str(dir);
    format!(
        "# {name}: generated by tests/netns\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         user root;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {d}/tmp/body;\n\
         \x20   proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {d}/tmp/scgi;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   keepalive_timeout 5;\n\
         \x20   server {{\n\
         \x20       listen {HTTP_PORT};\n\
         \x20       root {d}/www;\n\
         \x20       index index.html;\n\
         \x20   }}\n\
         }}\n"
    )
}
