//! Network-namespace topologies for end-to-end tests, built from a short
//! description and torn down on drop (also when the test panics), and the
//! checks the NAT, DR and TUN tests share (a thousand sequential requests
//! and their split, wrk, a large download); [`cases`] holds the whole test
//! bodies they share.
//!
//! **NAT** ([`Topology::nat`]):
//!
//! ```text
//!  client ns                  lb ns (rvsd)                 switch ns          rs1..rsN ns
//!  client_dev  <-- veth -->  outside_dev  inside_dev  <-- veth --> +------+ <-- veth --> rs dev
//!  198.51.100.10/24          198.51.100.1 10.1.0.1       (no kernel | br0  |              10.1.0.11.. /24
//!  default via .1            (rvsd's, no kernel IPs)       IPs)     +------+              default via 10.1.0.1
//! ```
//!
//! VIP 198.51.100.100 (on the outside subnet: rvsd answers ARP for it);
//! real servers listen on 8080. Optionally ([`Topology::nat_with_management`])
//! a management veth joins the lb namespace's kernel (10.1.0.254/24) to the
//! switch, so the control thread's kernel sockets there (health checks)
//! reach the real servers without going through rvsd's own ports.
//!
//! **DR** ([`Topology::dr`]): the client behind a router; rvsd (one port)
//! and the real servers on one segment; replies go from the real servers
//! straight to the router.
//!
//! ```text
//!  client ns              router ns (ip_forward)          switch ns (br0)
//!  198.51.100.10/24 ----- 198.51.100.1   203.0.113.1 ----- +----+ ----- lb ns: rvsd "lan" 203.0.113.2/24
//!  default via .1                                          |br0 | ----- rs1 203.0.113.11/24, VIP on lo
//!                                                          +----+ ----- rs2 203.0.113.12/24, ...
//! ```
//!
//! VIP 203.0.113.100 (on the segment: rvsd answers ARP for it, the real
//! servers do not: `arp_ignore=1`, `arp_announce=2`); real servers listen
//! on 80 (DR keeps the virtual port) with default route via 203.0.113.1.
//!
//! **TUN** ([`Topology::tun`]): the real servers in another subnet behind
//! the router; rvsd wraps client packets in IPIP from its inside address.
//!
//! ```text
//!  client ns             router ns (ip_forward, rp_filter 0)      lb ns (rvsd)
//!  198.51.100.10/24 ---- 198.51.100.1
//!                        203.0.113.1  ------------------------ "outside" 203.0.113.2/24 (VIP 203.0.113.100)
//!                        10.1.0.254   ------------------------ "inside"  10.1.0.1/24
//!                        10.2.0.1 ---- switch ns (br0) ---- rs1 10.2.0.21/24, rs2 10.2.0.22, ...
//! ```
//!
//! rvsd routes 0.0.0.0/0 via 203.0.113.1 (outside) and 10.2.0.0/16 via
//! 10.1.0.254 (inside). The kernel here has no `ipip` module, so each real
//! server runs `tests/netns/ipip_decap.py` (a raw socket for IP protocol 4
//! feeding a TUN device `ipip0` that holds the VIP); nginx on 0.0.0.0:80
//! answers from the VIP through the default route, via the router. The
//! client's MTU is 1500 like every link's: a full-size client segment
//! does not fit in a tunnel packet, and rvsd answers it with ICMP
//! "fragmentation needed" (MTU 1480), which the client's kernel obeys (path
//! MTU discovery through rvs; `e2e_tun` checks it with an upload).
//!
//! Every real server runs an HTTP server (nginx when it is installed, else
//! Python's `http.server`; `RVS_TEST_HTTP_SERVER=python` or `=nginx`
//! chooses) answering `GET /` with its own name (`rs1\n`) and serving
//! [`BIG_FILE`]; [`Topology::serve_huge_file`] adds a large random file
//! (hard-linked, one copy on disk); nginx also accepts `PUT /upload/NAME`.
//! A UDP echo server on 5353 starts on request ([`Topology::start_udp_echo`]).
//!
//! For the failover tests: [`Topology::kill_http`] SIGKILLs a real
//! server's HTTP server (master and workers at once) and
//! [`Topology::restart_http`] starts it again; [`Topology::set_link`]
//! takes a real server's veth down or up (restoring its default route);
//! [`Topology::start_load`] runs a steady client load whose every request
//! is recorded with its wall-clock times and outcome ([`ClientLoad`]);
//! [`Service::health_timing`] and [`Topology::metrics_listen`] set the
//! health checks and the metrics address of the generated config, which
//! [`Topology::write_rvsd_config`] rewrites for `rvsadm reload`.
//!
//! **HA pair** ([`HaTopology::nat`], [`HaTopology::dr`]): two rvsd, A
//! (in `lb`) and B, on the same segments, with a management link
//! (192.168.100.1/.2 on a bridge of its own) for keepalived's VRRP and
//! the connection sync; [`HaTopology::start_keepalived`] runs the repo's
//! `dpdk-config/keepalived-*.conf` rewritten for the test. Helpers for
//! the HA tests: idle keep-alive connections (`idle_conns.py`), a
//! rate-limited background download, and who answers ARP for an address
//! over time (`arp_owners.py`).
//!
//! Why a switch namespace with a bridge instead of one veth per real
//! server into the lb namespace: rvsd's port is one device, and real
//! servers on one L2 segment is what a deployment looks like (ARP for the
//! gateway, replies from several servers on one port).
//!
//! Every step is time-bounded (the commands of `support` are), and every
//! namespace, interface, process and file is removed on drop. Interface
//! names come from `support::veth_pair` (unique per test process and call),
//! and the bridge is named inside its own namespace, so tests may run in
//! parallel threads; tests that load the machine (wrk, large downloads,
//! a thousand requests) take [`heavy`] so they run one at a time and their
//! figures mean something on a 2-CPU machine.
#![allow(dead_code)]

pub mod cases;
pub mod cluster;
pub mod flood;

use crate::support::{self, wait_timeout, CmdOutput, Netns, Rvsd, TempDir};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The client's address (on the outside segment).
pub const CLIENT_IP: &str = "198.51.100.10";
/// NAT: rvsd's address on the outside segment: the client's default
/// gateway. DR, TUN: the router's address there.
pub const OUTSIDE_IP: &str = "198.51.100.1";
/// NAT: rvsd's address on the inside segment: the real servers' gateway.
/// TUN: rvsd's inside address (the tunnels' source).
pub const INSIDE_IP: &str = "10.1.0.1";
/// NAT: the address the tests use for virtual servers (on the outside
/// subnet, so rvsd answers ARP for it there).
pub const VIP: &str = "198.51.100.100";
/// NAT: the lb namespace kernel's address on the management path.
pub const MANAGEMENT_IP: &str = "10.1.0.254";
/// rvsd's MAC on the outside port (DR: its only port).
pub const OUTSIDE_MAC: &str = "02:00:00:00:01:01";
/// rvsd's MAC on the inside port.
pub const INSIDE_MAC: &str = "02:00:00:00:01:02";
/// NAT: the real servers' HTTP port.
pub const HTTP_PORT: u16 = 8080;
/// The real servers' UDP echo port.
pub const UDP_ECHO_PORT: u16 = 5353;
/// A large file every real server serves at `/big.bin`.
pub const BIG_FILE: &str = "big.bin";
/// Its length.
pub const BIG_FILE_LEN: usize = 4 << 20;

/// DR, TUN: the VIP (on the segment between the router and rvsd).
pub const SEGMENT_VIP: &str = "203.0.113.100";
/// DR, TUN: the router's address on the segment with rvsd.
pub const SEGMENT_ROUTER_IP: &str = "203.0.113.1";
/// DR, TUN: rvsd's address on that segment.
pub const SEGMENT_LB_IP: &str = "203.0.113.2";
/// TUN: the router's address on rvsd's inside link.
pub const TUN_ROUTER_INSIDE_IP: &str = "10.1.0.254";
/// TUN: the router's address on the real servers' subnet (their gateway).
pub const TUN_RS_GATEWAY: &str = "10.2.0.1";
/// DR, TUN: the real servers' HTTP port (DR and TUN keep the virtual port).
pub const VIRTUAL_PORT: u16 = 80;
/// TUN: the device `ipip_decap.py` creates in each real server.
pub const DECAP_DEV: &str = "ipip0";
/// FullNAT: rvsd's local address, on its inside subnet.
pub const FULLNAT_LIP: &str = "10.1.0.100";

/// Time bound for one configuration command (`ip`, `sysctl`, ...).
const CMD: Duration = Duration::from_secs(10);
/// Time bound for a server to start listening.
const APP_START: Duration = Duration::from_secs(15);
/// Time bound for rvsd to get ready.
const RVSD_READY: Duration = Duration::from_secs(30);
/// Time bound for rvsd to stop after SIGTERM.
const RVSD_STOP: Duration = Duration::from_secs(20);
/// How long counters may take to reach `rvsadm list` (published every
/// 100 ms).
pub const SETTLE: Duration = Duration::from_secs(3);

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

// ------------------------------------------------------------ heavy lock

static HEAVY: Mutex<()> = Mutex::new(());

/// Held by tests that load the machine (wrk, large transfers, a thousand
/// requests): they run one at a time, so parallel test threads do not
/// starve each other on a 2-CPU machine and the figures they print are
/// the balancer's, not the scheduler's. A test that panicked while holding
/// it does not poison it for the others.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `RESULT <line>` to the process's stderr directly, past the test
/// harness's output capture, so `cargo test` shows it for passing tests
/// too (`cargo test ... 2>&1 | grep RESULT` collects a run's figures).
pub fn result_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "RESULT {line}");
}

// ------------------------------------------------------------- sysctls

/// Sets `key=value` sysctls in a namespace; panics when one fails.
fn sysctls(ns: &Netns, settings: &[&str]) {
    for s in settings {
        ns.run_ok("sysctl", &["-q", "-w", s], CMD);
    }
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

/// A namespace that forwards IPv4 and checks no reverse path (new
/// namespaces inherit the host's `rp_filter`, often 1 or 2; a TUN real
/// server's replies leave from the VIP through another leg than the VIP's
/// subnet).
fn router_netns() -> Netns {
    let ns = quiet_netns();
    sysctls(
        &ns,
        &[
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ],
    );
    ns
}

/// DR: real server `rs` holds the VIP on lo, never announced nor
/// answered for in ARP: the router must send VIP traffic to rvsd, not to
/// a real server.
fn hold_vip_silently(rs: &RealServer) {
    sysctls(
        &rs.ns,
        &[
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            &format!("net.ipv4.conf.{}.arp_ignore=1", rs.dev),
            &format!("net.ipv4.conf.{}.arp_announce=2", rs.dev),
        ],
    );
    rs.ns.add_address("lo", &format!("{SEGMENT_VIP}/32"));
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

// --------------------------------------------------------------- types

/// Which HTTP server the real servers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpServer {
    Nginx,
    Python,
}

/// The forwarding method a topology is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Nat,
    Dr,
    Tun,
    /// FullNAT: real servers behind a router, their peer rvsd's local
    /// address ([`Topology::fullnat`]).
    FullNat,
}

impl Method {
    /// `nat`, `dr`, `tun`: the config's `forward` and the tests' label.
    pub fn name(self) -> &'static str {
        match self {
            Method::Nat => "nat",
            Method::Dr => "dr",
            Method::Tun => "tun",
            Method::FullNat => "fullnat",
        }
    }
}

/// One real server: its namespace, address and interface.
#[derive(Debug)]
pub struct RealServer {
    /// `rs1`, `rs2`, ...: also what its `GET /` answers.
    pub name: String,
    /// `10.1.0.11`, `10.1.0.12`, ... (NAT), `203.0.113.11`.. (DR),
    /// `10.2.0.21`.. (TUN).
    pub ip: String,
    /// Its interface (on the switch).
    pub dev: String,
    pub ns: Netns,
    /// Its scratch directory (document root under `www/`).
    pub dir: PathBuf,
    /// Its default gateway (restored by [`Topology::set_link`]).
    pub gateway: String,
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

/// One of rvsd's ports in the generated config.
#[derive(Clone, Debug)]
pub struct RvsdPort {
    /// The config's interface name (`outside`, `inside`, `lan`).
    pub name: String,
    /// The veth end in the lb namespace.
    pub dev: String,
    /// rvsd's address there, `a.b.c.d/len`.
    pub cidr: String,
    pub mac: String,
}

impl RvsdPort {
    /// Port `name` on veth end `dev`, rvsd's address `ip/24` (every
    /// subnet of these topologies is a /24): one line for what each
    /// topology builder lists.
    pub fn new(name: &str, dev: &str, ip: &str, mac: &str) -> RvsdPort {
        RvsdPort {
            name: name.into(),
            dev: dev.into(),
            cidr: format!("{ip}/24"),
            mac: mac.into(),
        }
    }
}

/// A `[[route]]` of the generated config.
#[derive(Clone, Debug)]
pub struct RvsdRoute {
    pub prefix: String,
    pub via: String,
    pub interface: String,
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
    /// `[virtual_server.health_check] type`, or `None` for rvsd's default
    /// (no table). [`Service::new`] says `"none"`: these tests judge the
    /// data path, and rvsd's probes leave from the lb namespace's kernel,
    /// which reaches the real servers only in
    /// [`Topology::nat_with_management`].
    pub health_check: Option<String>,
    /// More `[virtual_server.health_check]` keys, as `(key, TOML value)`
    /// written after `type` (e.g. `("interval_ms", "500")`,
    /// `("http_path", "\"/\"")`); only written with a `type`.
    pub health_check_settings: Vec<(String, String)>,
    /// More `[[virtual_server]]` keys, as `(key, TOML value)` (e.g.
    /// `("expire_nodest_conn", "true")`).
    pub settings: Vec<(String, String)>,
    /// More `[[virtual_server.real_server]]` keys, as `(RIP:PORT, key,
    /// TOML value)` (e.g. `("10.1.0.14:8080", "backup", "true")`).
    pub real_server_settings: Vec<(String, String, String)>,
    /// More sub-tables of the virtual server, as `(name, [(key, TOML
    /// value)])`, each written `[[virtual_server.NAME]]` after the real
    /// servers (e.g. `priority_group`).
    pub tables: Vec<(String, Vec<(String, String)>)>,
}

impl Service {
    /// A service with no real servers yet.
    pub fn new(
        name: &str,
        address: &str,
        protocol: &str,
        scheduler: &str,
        forward: &str,
    ) -> Service {
        Service {
            name: name.into(),
            address: address.into(),
            protocol: protocol.into(),
            scheduler: scheduler.into(),
            forward: forward.into(),
            real_servers: Vec::new(),
            health_check: Some("none".into()),
            health_check_settings: Vec::new(),
            settings: Vec::new(),
            real_server_settings: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// Sets the health check's timing: `interval_ms`, `timeout_ms`,
    /// `rise`, `fall` (keeps its `type`).
    pub fn health_timing(
        mut self,
        interval_ms: u64,
        timeout_ms: u64,
        rise: u32,
        fall: u32,
    ) -> Service {
        for (key, value) in [
            ("interval_ms", interval_ms.to_string()),
            ("timeout_ms", timeout_ms.to_string()),
            ("rise", rise.to_string()),
            ("fall", fall.to_string()),
        ] {
            self = self.health_setting(key, &value);
        }
        self
    }

    /// Sets one more `[virtual_server.health_check]` key to a TOML value
    /// (replacing an earlier setting of the same key).
    pub fn health_setting(mut self, key: &str, toml_value: &str) -> Service {
        self.health_check_settings.retain(|(k, _)| k != key);
        self.health_check_settings
            .push((key.to_string(), toml_value.to_string()));
        self
    }

    /// Sets one more `[[virtual_server]]` key to a TOML value.
    pub fn setting(mut self, key: &str, toml_value: &str) -> Service {
        self.settings.retain(|(k, _)| k != key);
        self.settings
            .push((key.to_string(), toml_value.to_string()));
        self
    }

    /// Sets the health check's `type` (`None`: rvsd's default).
    pub fn health_check(mut self, kind: Option<&str>) -> Service {
        self.health_check = kind.map(str::to_string);
        self
    }

    /// A NAT service with no real servers yet.
    pub fn nat(name: &str, address: &str, protocol: &str, scheduler: &str) -> Service {
        Service::new(name, address, protocol, scheduler, "nat")
    }

    /// Adds a real server.
    pub fn real(mut self, address: impl Into<String>, weight: u32) -> Service {
        self.real_servers.push((address.into(), weight));
        self
    }

    /// Sets one more key of real server `address` (`RIP:PORT`) to a TOML
    /// value.
    pub fn real_setting(mut self, address: &str, key: &str, toml_value: &str) -> Service {
        self.real_server_settings
            .push((address.into(), key.into(), toml_value.into()));
        self
    }

    /// Adds a `[[virtual_server.NAME]]` table with `keys` (TOML values).
    pub fn table(mut self, name: &str, keys: &[(&str, &str)]) -> Service {
        let keys = keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.tables.push((name.into(), keys));
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
    /// DR, TUN: the router between the client and the rest.
    pub router: Option<Netns>,
    pub real_servers: Vec<RealServer>,
    /// The forwarding method the topology is built for.
    pub method: Method,
    /// The address tests use for the virtual server.
    pub vip: String,
    /// The port the real servers' HTTP servers listen on.
    pub http_port: u16,
    /// The client's interface.
    pub client_dev: String,
    /// rvsd's outside port (in `lb`; DR: its only port).
    pub outside_dev: String,
    /// rvsd's inside port (in `lb`; empty for DR).
    pub inside_dev: String,
    /// The lb kernel's management interface, when built with one.
    pub management_dev: Option<String>,
    /// rvsd's ports, in config order.
    pub ports: Vec<RvsdPort>,
    /// rvsd's routes beyond its connected subnets.
    pub routes: Vec<RvsdRoute>,
    /// `dataplane.conn_table_size` of the generated config: room for a
    /// thousand short connections in TIME_WAIT and more.
    pub conn_table_size: u32,
    /// `dataplane.idle_sleep_us` of the generated config: the worker
    /// sleeps this long after an empty poll, so an idle rvsd leaves the
    /// CPU to the clients and servers it shares the machine with. 20 by
    /// default; `RVS_TEST_IDLE_SLEEP_US` sets another (to measure).
    pub idle_sleep_us: u32,
    /// TOML appended to the generated config (after the virtual servers),
    /// e.g. a `[timeouts]` section; empty by default.
    pub extra_toml: String,
    /// Which HTTP server the real servers run.
    pub http: HttpServer,
    /// nginx writes an access log (`access.log` in each real server's
    /// directory, its peer first on each line) for HTTP servers started
    /// from now on; off by default.
    pub access_log: bool,
    /// `control.metrics_listen` of the generated config (`None`: rvsd's
    /// default). rvsd runs in the lb namespace, so a loopback address is
    /// that namespace's: ask it with [`Topology::metrics`].
    pub metrics_listen: Option<String>,
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
                kill_and_reap(&mut app.child);
            }
        }
    }
}

impl Topology {
    /// The topology of `method` with `n` real servers: [`Topology::nat`],
    /// [`Topology::dr`] or [`Topology::tun`].
    pub fn of(method: Method, n: usize) -> Topology {
        match method {
            Method::Nat => Topology::nat(n),
            Method::Dr => Topology::dr(n),
            Method::Tun => Topology::tun(n),
            Method::FullNat => Topology::fullnat(n),
        }
    }

    /// The NAT topology with `n` real servers (rs1 .. rsN), each running
    /// its HTTP server.
    pub fn nat(n: usize) -> Topology {
        Topology::build_nat(n, false)
    }

    /// [`Topology::nat`] plus a management path from the lb namespace's
    /// kernel (10.1.0.254/24) to the real servers.
    pub fn nat_with_management(n: usize) -> Topology {
        Topology::build_nat(n, true)
    }

    /// The DR topology with `n` real servers.
    pub fn dr(n: usize) -> Topology {
        let started = Instant::now();
        let mut topo = Topology::empty(Method::Dr, n);
        let router = router_netns();

        topo.connect_client_to_router(&router);

        // The segment: router, rvsd and the real servers on br0.
        topo.make_bridge();
        topo.router_on_br0(&router, SEGMENT_ROUTER_IP);
        let lan = support::veth_pair(&topo.lb, &topo.switch);
        topo.bridge_port(&lan.b);
        topo.outside_dev = lan.a.clone();
        topo.ports
            .push(RvsdPort::new("lan", &lan.a, SEGMENT_LB_IP, OUTSIDE_MAC));
        topo.add_route("0.0.0.0/0", SEGMENT_ROUTER_IP, "lan");
        topo.router = Some(router);

        for i in 1..=n {
            let ip = format!("203.0.113.{}", 10 + i);
            let rs = topo.add_real_server(i, &ip, SEGMENT_ROUTER_IP);
            hold_vip_silently(&rs);
            topo.real_servers.push(rs);
        }
        topo.start_http();
        topo.report_built(started);
        topo
    }

    /// The TUN topology with `n` real servers, each decapsulating with
    /// `tests/netns/ipip_decap.py`.
    pub fn tun(n: usize) -> Topology {
        let started = Instant::now();
        let mut topo = Topology::empty(Method::Tun, n);
        let router = router_netns();

        topo.connect_client_to_router(&router);

        // router <-> rvsd, twice: outside (the VIP's subnet), inside.
        let out = support::veth_pair(&router, &topo.lb);
        router.add_address(&out.a, &format!("{SEGMENT_ROUTER_IP}/24"));
        let ins = support::veth_pair(&router, &topo.lb);
        router.add_address(&ins.a, &format!("{TUN_ROUTER_INSIDE_IP}/24"));
        topo.add_outside_inside(&out.b, SEGMENT_LB_IP, &ins.b);
        topo.add_route("0.0.0.0/0", SEGMENT_ROUTER_IP, "outside");
        topo.add_route("10.2.0.0/16", TUN_ROUTER_INSIDE_IP, "inside");

        // router <-> the real servers' segment.
        topo.make_bridge();
        topo.router_on_br0(&router, TUN_RS_GATEWAY);
        topo.router = Some(router);

        for i in 1..=n {
            let ip = format!("10.2.0.{}", 20 + i);
            let rs = topo.add_real_server(i, &ip, TUN_RS_GATEWAY);
            // Decapsulated packets come in on ipip0 from a client the
            // namespace routes elsewhere.
            sysctls(
                &rs.ns,
                &[
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                    &format!("net.ipv4.conf.{}.rp_filter=0", rs.dev),
                ],
            );
            topo.real_servers.push(rs);
        }
        topo.start_decap();
        topo.start_http();
        topo.report_built(started);
        topo
    }

    /// The FullNAT topology with `n` real servers: as TUN's, the client
    /// and the real servers' segment behind one router, rvsd's outside
    /// port on the VIP's subnet (203.0.113.2/24) and its inside port on
    /// 10.1.0.1/24 towards the router (10.1.0.254), where rvsd's local
    /// address [`FULLNAT_LIP`] lives. The real servers (10.2.0.21 ..) route
    /// everything through the router (10.2.0.1), which reaches the client
    /// directly: only replies to the local address come back through rvsd,
    /// so only FullNAT can work. The lb namespace's kernel reaches the
    /// real servers through the router on a management link (10.9.0.2),
    /// for health checks.
    pub fn fullnat(n: usize) -> Topology {
        let started = Instant::now();
        let mut topo = Topology::empty(Method::FullNat, n);
        let router = router_netns();

        topo.connect_client_to_router(&router);
        let out = support::veth_pair(&router, &topo.lb);
        router.add_address(&out.a, &format!("{SEGMENT_ROUTER_IP}/24"));
        let ins = support::veth_pair(&router, &topo.lb);
        router.add_address(&ins.a, &format!("{TUN_ROUTER_INSIDE_IP}/24"));
        topo.add_outside_inside(&out.b, SEGMENT_LB_IP, &ins.b);
        topo.add_route("0.0.0.0/0", SEGMENT_ROUTER_IP, "outside");
        topo.add_route("10.2.0.0/16", TUN_ROUTER_INSIDE_IP, "inside");

        let mgmt = support::veth_pair(&topo.lb, &router);
        topo.lb.add_address(&mgmt.a, "10.9.0.2/24");
        router.add_address(&mgmt.b, "10.9.0.1/24");
        topo.lb.run_ok(
            "ip",
            &["route", "add", "10.2.0.0/16", "via", "10.9.0.1"],
            CMD,
        );
        topo.management_dev = Some(mgmt.a);

        topo.make_bridge();
        topo.router_on_br0(&router, TUN_RS_GATEWAY);
        topo.router = Some(router);
        for i in 1..=n {
            let ip = format!("10.2.0.{}", 20 + i);
            let rs = topo.add_real_server(i, &ip, TUN_RS_GATEWAY);
            topo.real_servers.push(rs);
        }
        // The tests read each real server's peer from nginx's log.
        topo.access_log = true;
        topo.start_http();
        topo.report_built(started);
        topo
    }

    /// Namespaces and directory, no links yet.
    fn empty(method: Method, n: usize) -> Topology {
        assert!(
            (1..=50).contains(&n),
            "1 to 50 real servers, not {n} (addresses .11 up)"
        );
        support::require_root("network namespaces");
        let http = match std::env::var("RVS_TEST_HTTP_SERVER").as_deref() {
            Ok("python") => HttpServer::Python,
            Ok("nginx") => HttpServer::Nginx,
            _ if have("nginx") => HttpServer::Nginx,
            _ => HttpServer::Python,
        };
        let (vip, http_port) = match method {
            Method::Nat => (VIP, HTTP_PORT),
            Method::Dr | Method::Tun => (SEGMENT_VIP, VIRTUAL_PORT),
            Method::FullNat => (SEGMENT_VIP, HTTP_PORT),
        };
        Topology {
            apps: Vec::new(),
            client: quiet_netns(),
            lb: quiet_netns(),
            switch: quiet_netns(),
            router: None,
            real_servers: Vec::new(),
            method,
            vip: vip.into(),
            http_port,
            client_dev: String::new(),
            outside_dev: String::new(),
            inside_dev: String::new(),
            management_dev: None,
            ports: Vec::new(),
            routes: Vec::new(),
            conn_table_size: 65536,
            idle_sleep_us: std::env::var("RVS_TEST_IDLE_SLEEP_US")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(20),
            extra_toml: String::new(),
            http,
            access_log: false,
            metrics_listen: None,
            dir: TempDir::new(method.name()),
        }
    }

    fn build_nat(n: usize, management: bool) -> Topology {
        let started = Instant::now();
        let mut topo = Topology::empty(Method::Nat, n);

        // client <-> lb (outside).
        let out = support::veth_pair(&topo.client, &topo.lb);
        topo.client.add_address(&out.a, &format!("{CLIENT_IP}/24"));
        topo.client
            .run_ok("ip", &["route", "add", "default", "via", OUTSIDE_IP], CMD);
        topo.client_dev = out.a;

        // lb (inside) <-> switch.
        topo.make_bridge();
        let inside = support::veth_pair(&topo.lb, &topo.switch);
        topo.bridge_port(&inside.b);
        topo.add_outside_inside(&out.b, OUTSIDE_IP, &inside.a);

        if management {
            let mgmt = support::veth_pair(&topo.lb, &topo.switch);
            topo.lb.add_address(&mgmt.a, &format!("{MANAGEMENT_IP}/24"));
            topo.bridge_port(&mgmt.b);
            topo.management_dev = Some(mgmt.a);
        }

        for i in 1..=n {
            let ip = format!("10.1.0.{}", 10 + i);
            let rs = topo.add_real_server(i, &ip, INSIDE_IP);
            topo.real_servers.push(rs);
        }
        topo.start_http();
        topo.report_built(started);
        topo
    }

    /// rvsd's `outside` port on `outside_dev` at `outside_ip`/24 and its
    /// `inside` port on `inside_dev` at 10.1.0.1/24, with the usual MACs:
    /// NAT's and TUN's two ports.
    fn add_outside_inside(&mut self, outside_dev: &str, outside_ip: &str, inside_dev: &str) {
        self.outside_dev = outside_dev.into();
        self.inside_dev = inside_dev.into();
        self.ports.push(RvsdPort::new(
            "outside",
            outside_dev,
            outside_ip,
            OUTSIDE_MAC,
        ));
        self.ports
            .push(RvsdPort::new("inside", inside_dev, INSIDE_IP, INSIDE_MAC));
    }

    /// Adds a `[[route]]` to rvsd's config.
    fn add_route(&mut self, prefix: &str, via: &str, interface: &str) {
        self.routes.push(RvsdRoute {
            prefix: prefix.into(),
            via: via.into(),
            interface: interface.into(),
        });
    }

    /// DR, TUN: the client at 198.51.100.10/24 behind `router`
    /// (198.51.100.1, its default route).
    fn connect_client_to_router(&mut self, router: &Netns) {
        let c = support::veth_pair(&self.client, router);
        self.client.add_address(&c.a, &format!("{CLIENT_IP}/24"));
        self.client
            .run_ok("ip", &["route", "add", "default", "via", OUTSIDE_IP], CMD);
        router.add_address(&c.b, &format!("{OUTSIDE_IP}/24"));
        self.client_dev = c.a;
    }

    /// DR, TUN: `router` on br0 at `ip`/24.
    fn router_on_br0(&self, router: &Netns, ip: &str) {
        let r = support::veth_pair(router, &self.switch);
        router.add_address(&r.a, &format!("{ip}/24"));
        self.bridge_port(&r.b);
    }

    /// The switch: a bridge without STP (ports forward at once), quiet.
    fn make_bridge(&self) {
        self.make_named_bridge("br0");
    }

    /// Another bridge like br0 in the switch namespace.
    fn make_named_bridge(&self, name: &str) {
        self.switch.run_ok(
            "ip",
            &[
                "link",
                "add",
                name,
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
        self.switch.link_up(name);
    }

    /// Puts the switch's end of a veth on br0.
    fn bridge_port(&self, dev: &str) {
        self.bridge_port_on(dev, "br0");
    }

    /// Puts the switch's end of a veth on bridge `bridge`.
    fn bridge_port_on(&self, dev: &str, bridge: &str) {
        self.switch
            .run_ok("ip", &["link", "set", dev, "master", bridge], CMD);
    }

    /// A real server `rs<i>` at `ip/24` on the switch, default route via
    /// `gateway`, with its scratch directories (not yet in the list).
    fn add_real_server(&self, i: usize, ip: &str, gateway: &str) -> RealServer {
        let name = format!("rs{i}");
        let ns = quiet_netns();
        let v = support::veth_pair(&ns, &self.switch);
        self.bridge_port(&v.b);
        ns.add_address(&v.a, &format!("{ip}/24"));
        ns.run_ok("ip", &["route", "add", "default", "via", gateway], CMD);
        let rs_dir = self.dir.join(&name);
        std::fs::create_dir_all(rs_dir.join("www").join("upload"))
            .and_then(|_| std::fs::create_dir_all(rs_dir.join("tmp")))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", rs_dir.display()));
        RealServer {
            name,
            ip: ip.into(),
            dev: v.a,
            ns,
            dir: rs_dir,
            gateway: gateway.into(),
        }
    }

    fn report_built(&self, started: Instant) {
        eprintln!(
            "topology {}: client {} lb {} switch {}{} real servers {} ({:?}), built in {:.1} s",
            self.method.name(),
            self.client.name(),
            self.lb.name(),
            self.switch.name(),
            self.router
                .as_ref()
                .map(|r| format!(" router {}", r.name()))
                .unwrap_or_default(),
            self.real_servers
                .iter()
                .map(|r| format!("{}={}", r.name, r.ns.name()))
                .collect::<Vec<_>>()
                .join(" "),
            self.http,
            started.elapsed().as_secs_f64()
        );
    }

    // ------------------------------------------------------------- apps

    /// Starts `cmd` (a command in some namespace) in the background, its
    /// output in `log`. The topology kills it on drop.
    fn spawn(&mut self, what: String, mut cmd: Command, log: PathBuf) {
        let child = spawn_logged(&mut cmd, &log, &what);
        self.apps.push(App { what, child, log });
    }

    /// Starts `ipip_decap.py` in every real server and waits until each
    /// says it is ready (its `ipip0` holds the VIP).
    fn start_decap(&mut self) {
        let script = support::repo_root().join("tests/netns/ipip_decap.py");
        let script = path_str(&script);
        for i in 0..self.real_servers.len() {
            let rs = &self.real_servers[i];
            let (what, log) = (format!("{} ipip decap", rs.name), rs.dir.join("decap.log"));
            let mut cmd = rs.ns.command("python3");
            cmd.args(["-u", &script, "--dev", DECAP_DEV, "--vip", &self.vip]);
            self.spawn(what, cmd, log);
        }
        for i in 0..self.real_servers.len() {
            let log = self.real_servers[i].dir.join("decap.log");
            let deadline = Instant::now() + APP_START;
            loop {
                self.check_apps_alive();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.lines().any(|l| l.starts_with("ready:")) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} ipip decapsulator not ready after {:.0} s\n{}",
                    self.real_servers[i].name,
                    APP_START.as_secs_f64(),
                    self.app_logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts the HTTP server in every real server and waits until each
    /// answers `GET /` with its name (asked from inside its namespace).
    fn start_http(&mut self) {
        let big = big_file_bytes();
        for i in 0..self.real_servers.len() {
            let rs = &self.real_servers[i];
            let www = rs.dir.join("www");
            write_file(&www.join("index.html"), format!("{}\n", rs.name).as_bytes());
            write_file(&www.join(BIG_FILE), &big);
            self.spawn_http(i);
        }
        for i in 0..self.real_servers.len() {
            self.wait_http(i);
        }
    }

    /// Starts real server `i`'s HTTP server (its files are in place).
    fn spawn_http(&mut self, i: usize) {
        let (name, dir) = {
            let rs = &self.real_servers[i];
            (rs.name.clone(), rs.dir.clone())
        };
        let www = dir.join("www");
        let (program, args): (&str, Vec<String>) = match self.http {
            HttpServer::Nginx => {
                let conf = nginx_conf(&name, &dir, self.http_port, self.access_log);
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
                    self.http_port.to_string(),
                    "--bind".into(),
                    "0.0.0.0".into(),
                    "--directory".into(),
                    path_str(&www),
                ],
            ),
        };
        let mut cmd = self.real_servers[i].ns.command(program);
        cmd.args(&args);
        self.spawn(http_app_name(&name), cmd, dir.join("http.log"));
    }

    /// Kills real server `i`'s HTTP server with SIGKILL, its master and
    /// every worker at once (one `kill` of all their pids), as a crash
    /// would, and reaps it. Returns the time just before the kill. The
    /// server no longer counts among the topology's processes until
    /// [`Topology::restart_http`].
    pub fn kill_http(&mut self, i: usize) -> std::time::SystemTime {
        let what = http_app_name(&self.real_servers[i].name);
        let at = self
            .apps
            .iter()
            .position(|a| a.what == what)
            .unwrap_or_else(|| panic!("{what} is not running"));
        let master = self.apps[at].child.id();
        let rs = &self.real_servers[i];
        // The master and its children (nginx's workers), all in the
        // real server's namespace.
        let mut pids = vec![master];
        for pid in rs.ns.pids() {
            if pid != master && parent_pid(pid) == Some(master) {
                pids.push(pid);
            }
        }
        let mut args = vec!["-KILL".to_string()];
        args.extend(pids.iter().map(u32::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let killed_at = std::time::SystemTime::now();
        support::run_ok("kill", &args, CMD);
        let mut app = self.apps.remove(at);
        assert!(
            wait_timeout(&mut app.child, Duration::from_secs(5)).is_some(),
            "{what} (pid {master}) survived SIGKILL"
        );
        // Its workers die with it; make sure nothing still listens.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive: Vec<u32> = pids[1..]
                .iter()
                .copied()
                .filter(|&p| process_state(p).is_some_and(|st| st != 'Z'))
                .collect();
            if alive.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: processes {alive:?} survived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("killed {what}: pids {pids:?} (SIGKILL)");
        killed_at
    }

    /// Starts real server `i`'s HTTP server again (after
    /// [`Topology::kill_http`]) and waits until it answers.
    pub fn restart_http(&mut self, i: usize) {
        let what = http_app_name(&self.real_servers[i].name);
        assert!(
            !self.apps.iter().any(|a| a.what == what),
            "{what} is still running"
        );
        self.spawn_http(i);
        self.wait_http(i);
    }

    /// Takes real server `i`'s link down (its veth, in its namespace: a
    /// cut cable) or brings it up again; up restores its default route,
    /// which the kernel dropped with the link. Returns the time just
    /// before the change.
    pub fn set_link(&self, i: usize, up: bool) -> std::time::SystemTime {
        let rs = &self.real_servers[i];
        let state = if up { "up" } else { "down" };
        let at = std::time::SystemTime::now();
        rs.ns.run_ok("ip", &["link", "set", &rs.dev, state], CMD);
        if up {
            rs.ns.run_ok(
                "ip",
                &["route", "replace", "default", "via", &rs.gateway],
                CMD,
            );
        }
        at
    }

    fn wait_http(&mut self, i: usize) {
        let url = format!("http://127.0.0.1:{}/", self.http_port);
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

    /// Writes `len` random bytes to `huge.bin` once and hard-links it into
    /// every real server's document root (one copy on disk, removed with
    /// the topology). Returns the URL path and the file's sha256 (hex).
    pub fn serve_huge_file(&self, len: u64) -> (String, String) {
        const MIB: u64 = 1 << 20;
        remove_stale_huge_files();
        assert!(
            len.is_multiple_of(MIB) && len > 0,
            "a whole number of MiB, not {len}"
        );
        let file = self.dir.join("huge.bin");
        let of = format!("of={}", path_str(&file));
        let count = format!("count={}", len / MIB);
        support::run_ok(
            "dd",
            &[
                "if=/dev/urandom",
                &of,
                "bs=1M",
                &count,
                "iflag=fullblock",
                "status=none",
            ],
            Duration::from_secs(60),
        );
        let sum = support::run_ok("sha256sum", &[&path_str(&file)], Duration::from_secs(60));
        let sha = sum
            .stdout
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(sha.len(), 64, "sha256sum printed no digest: {sum}");
        for rs in &self.real_servers {
            let link = rs.dir.join("www").join("huge.bin");
            std::fs::hard_link(&file, &link)
                .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
        }
        ("/huge.bin".into(), sha)
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

    /// True when every server the topology started still runs.
    pub fn apps_alive(&mut self) -> bool {
        self.apps
            .iter_mut()
            .all(|a| matches!(a.child.try_wait(), Ok(None)))
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

    /// The web service of the tests: `VIP:80/tcp` over the topology's real
    /// servers (at their HTTP port) with `weights`, forwarded by the
    /// topology's method.
    pub fn web(&self, scheduler: &str, weights: &[u32]) -> Service {
        assert_eq!(
            weights.len(),
            self.real_servers.len(),
            "one weight per real server"
        );
        let mut s = Service::new(
            "web",
            &format!("{}:80", self.vip),
            "tcp",
            scheduler,
            self.method.name(),
        );
        for (rs, &w) in self.real_servers.iter().zip(weights) {
            s = s.real(rs.addr(self.http_port), w);
        }
        s
    }

    /// An rvsd config for this topology: `workers` (1 or 2) poll-mode
    /// workers, its ports on `net_af_packet` (one queue pair per worker),
    /// its routes, and `services`.
    pub fn rvsd_config(&self, workers: usize, services: &[Service]) -> String {
        self.rvsd_config_for(&self.ports, &self.socket_path(), workers, services)
    }

    /// [`Topology::rvsd_config`] for other ports and another control
    /// socket (the HA pair's second balancer).
    fn rvsd_config_for(
        &self,
        ports: &[RvsdPort],
        socket: &Path,
        workers: usize,
        services: &[Service],
    ) -> String {
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
        let _ = writeln!(
            t,
            "# generated by tests/netns for {} ({})",
            self.lb.name(),
            self.method.name()
        );
        let _ = writeln!(t, "[dpdk]");
        let _ = writeln!(t, "eal_args = [{}]", list(&eal));
        let _ = writeln!(t, "workers = {worker_list}");
        let _ = writeln!(t, "\n[dataplane]");
        let _ = writeln!(t, "burst_size = 32");
        let _ = writeln!(t, "conn_table_size = {}", self.conn_table_size);
        let _ = writeln!(t, "idle_sleep_us = {}", self.idle_sleep_us);
        for (i, port) in ports.iter().enumerate() {
            let _ = writeln!(t, "\n[[interface]]");
            let _ = writeln!(t, "name = {}", q(&port.name));
            let _ = writeln!(
                t,
                "device = {}",
                q(&format!("net_af_packet{i},iface={}{qpairs}", port.dev))
            );
            let _ = writeln!(t, "addresses = [{}]", q(&port.cidr));
            let _ = writeln!(t, "mac = {}", q(&port.mac));
        }
        for r in &self.routes {
            let _ = writeln!(t, "\n[[route]]");
            let _ = writeln!(t, "prefix = {}", q(&r.prefix));
            let _ = writeln!(t, "via = {}", q(&r.via));
            let _ = writeln!(t, "interface = {}", q(&r.interface));
        }
        let _ = writeln!(t, "\n[control]");
        let _ = writeln!(t, "socket = {}", q(&path_str(socket)));
        if let Some(listen) = &self.metrics_listen {
            let _ = writeln!(t, "metrics_listen = {}", q(listen));
        }
        for s in services {
            let _ = writeln!(t, "\n[[virtual_server]]");
            let _ = writeln!(t, "name = {}", q(&s.name));
            let _ = writeln!(t, "address = {}", q(&s.address));
            let _ = writeln!(t, "protocol = {}", q(&s.protocol));
            let _ = writeln!(t, "scheduler = {}", q(&s.scheduler));
            let _ = writeln!(t, "forward = {}", q(&s.forward));
            for (key, value) in &s.settings {
                let _ = writeln!(t, "{key} = {value}");
            }
            if let Some(kind) = &s.health_check {
                let _ = writeln!(t, "\n  [virtual_server.health_check]");
                let _ = writeln!(t, "  type = {}", q(kind));
                for (key, value) in &s.health_check_settings {
                    let _ = writeln!(t, "  {key} = {value}");
                }
            }
            for (addr, weight) in &s.real_servers {
                let _ = writeln!(t, "\n  [[virtual_server.real_server]]");
                let _ = writeln!(t, "  address = {}", q(addr));
                let _ = writeln!(t, "  weight = {weight}");
                for (_, key, value) in s.real_server_settings.iter().filter(|(a, ..)| a == addr) {
                    let _ = writeln!(t, "  {key} = {value}");
                }
            }
            for (name, keys) in &s.tables {
                let _ = writeln!(t, "\n  [[virtual_server.{name}]]");
                for (key, value) in keys {
                    let _ = writeln!(t, "  {key} = {value}");
                }
            }
        }
        if !self.extra_toml.is_empty() {
            let _ = writeln!(t, "\n{}", self.extra_toml);
        }
        t
    }

    /// Writes [`Topology::rvsd_config`] to `rvsd.toml`, checks it with
    /// `rvsd --check`, starts rvsd in the lb namespace and waits until it
    /// is ready and its control socket is bound.
    pub fn start_rvsd(&self, workers: usize, services: &[Service]) -> Rvsd {
        let path = self.write_rvsd_config(workers, services);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        start_checked_rvsd(&path, &text, &self.lb)
    }

    /// The config file [`Topology::start_rvsd`] runs rvsd with (and
    /// `rvsadm reload` re-reads).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("rvsd.toml")
    }

    /// Writes [`Topology::rvsd_config`] to [`Topology::config_path`]
    /// (replacing it: what a reload then reads) and returns the path.
    pub fn write_rvsd_config(&self, workers: usize, services: &[Service]) -> PathBuf {
        let text = self.rvsd_config(workers, services);
        self.dir.write("rvsd.toml", &text)
    }

    /// `rvsadm --socket <ours> ARGS`, whatever its outcome.
    pub fn rvsadm(&self, args: &[&str]) -> CmdOutput {
        rvsadm_at(&self.socket_path(), args)
    }

    /// `GET /metrics` from rvsd's `metrics_listen`, asked from the lb
    /// namespace; panics unless it answers.
    pub fn metrics(&self) -> String {
        let listen = self
            .metrics_listen
            .as_deref()
            .expect("set Topology::metrics_listen before start_rvsd");
        let url = format!("http://{listen}/metrics");
        let out = self.lb.run("curl", &["-sS", "-f", "-m", "5", &url], CMD);
        assert!(out.success(), "GET {url} in the lb namespace: {out}");
        out.stdout
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

    /// `http://VIP:80` of this topology.
    pub fn vip_host(&self) -> String {
        format!("{}:80", self.vip)
    }

    /// `curl -s -m 5 http://HOST/PATH` in the client namespace (one
    /// connection).
    pub fn curl(&self, host: &str, path: &str) -> CmdOutput {
        let url = format!("http://{host}{path}");
        self.client.run("curl", &["-s", "-m", "5", &url], CMD)
    }

    /// `n` sequential curls to [`VIP`] (one process each, one connection
    /// each): each answer's body, or the failed command.
    pub fn curls(&self, n: usize) -> Vec<Result<String, String>> {
        (0..n)
            .map(|_| {
                let out = self.curl(&format!("{VIP}:80"), "/");
                if out.success() {
                    Ok(out.stdout)
                } else {
                    Err(out.to_string())
                }
            })
            .collect()
    }

    /// Starts a steady client load on `http://VIP:80/` in the client
    /// namespace: `threads` loops of sequential requests, each on its own
    /// connection (`Connection: close`, so the scheduler decides every
    /// one), each loop starting one every `interval` (or at once when the
    /// last took longer), each request given `timeout` for connect and
    /// each read. Every request's outcome and times are recorded; the load
    /// runs until [`ClientLoad::stop`] or for at most `max_run`.
    pub fn start_load(
        &self,
        threads: u32,
        interval: Duration,
        timeout: Duration,
        max_run: Duration,
    ) -> ClientLoad {
        let token = support::unique_token();
        let out = self.dir.join(&format!("load-{token}.jsonl"));
        let stop_file = self.dir.join(&format!("load-{token}.stop"));
        let log = self.dir.join(&format!("load-{token}.log"));
        let mut cmd = self.client.command("python3");
        cmd.args([
            "-u",
            "-c",
            LOAD_CLIENT,
            &self.vip,
            "80",
            &threads.to_string(),
            &interval.as_secs_f64().to_string(),
            &timeout.as_secs_f64().to_string(),
            &path_str(&stop_file),
            &path_str(&out),
            &max_run.as_secs_f64().to_string(),
        ]);
        let child = spawn_logged(&mut cmd, &log, "the load client");
        let mut load = ClientLoad {
            child: Some(child),
            out,
            stop_file,
            log,
            timeout,
        };
        // Running once it has finished a first request.
        let deadline = Instant::now() + APP_START;
        while load.requests().is_empty() {
            if let Some(Ok(Some(status))) = load.child.as_mut().map(|c| c.try_wait()) {
                panic!("the load client exited with {status}: {}", load.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the load client finished no request in {:.0} s: {}",
                APP_START.as_secs_f64(),
                load.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        load
    }

    /// HTTP/1.1 keep-alive connections to the VIP, one request each, held
    /// open (`tests/netns/idle_conns.py`); it asks once more on each when
    /// [`IdleConns::ask_again`] is called and prints a JSON verdict.
    pub fn start_idle_conns(&self, n: usize) -> IdleConns {
        let token = support::unique_token();
        let log = self.dir.join(&format!("idle-{token}.log"));
        let trigger = self.dir.join(&format!("idle-{token}.go"));
        let script = support::repo_root().join("tests/netns/idle_conns.py");
        let mut cmd = self.client.command("python3");
        cmd.args([
            "-u",
            &path_str(&script),
            &self.vip,
            &n.to_string(),
            &path_str(&trigger),
        ]);
        let child = spawn_logged(&mut cmd, &log, "idle_conns.py");
        IdleConns::opened(child, log, trigger, n, "idle_conns.py")
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

    /// Downloads `http://HOST/PATH` in the client namespace straight into
    /// `sha256sum` (nothing on disk). `Ok` with the digest and curl's own
    /// byte count and transfer time, or `Err` with the command's output.
    pub fn download_sha256(
        &self,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Transfer, CmdOutput> {
        let url = format!("http://{host}{path}");
        let max = timeout.as_secs().max(1);
        // `%{stderr}` sends the -w report to stderr: stdout is the body.
        let script = format!(
            "set -o pipefail; curl -sSf -m {max} -w '%{{stderr}}rvs-transfer: %{{size_download}} %{{time_total}}\\n' \
             -o - '{url}' | sha256sum"
        );
        let out = self
            .client
            .run("bash", &["-c", &script], timeout + Duration::from_secs(10));
        if !out.success() {
            return Err(out);
        }
        parse_transfer(&out.stdout, &out.stderr).ok_or(out)
    }

    /// `PUT http://HOST/upload/NAME` of `file` from the client namespace
    /// (nginx real servers store it under `www/upload/`).
    pub fn upload(&self, host: &str, name: &str, file: &Path, timeout: Duration) -> CmdOutput {
        let url = format!("http://{host}/upload/{name}");
        let max = timeout.as_secs().max(1).to_string();
        self.client.run(
            "curl",
            &[
                "-sS",
                "-f",
                "-m",
                &max,
                "-H",
                "Expect:",
                "-T",
                &path_str(file),
                &url,
            ],
            timeout + Duration::from_secs(5),
        )
    }

    /// Runs `wrk -t THREADS -c CONNECTIONS -d SECONDS` against
    /// `http://VIP:80/` in the client namespace and parses its report.
    pub fn wrk(&self, threads: u32, connections: u32, seconds: u32) -> WrkReport {
        let url = format!("http://{}/", self.vip_host());
        let (t, c, d) = (
            threads.to_string(),
            connections.to_string(),
            format!("{seconds}s"),
        );
        let out = self.client.run(
            "wrk",
            &["-t", &t, "-c", &c, "-d", &d, "--timeout", "5s", &url],
            Duration::from_secs(u64::from(seconds) + 30),
        );
        assert!(out.success(), "wrk failed: {out}");
        WrkReport::parse(&out.stdout).unwrap_or_else(|e| panic!("wrk's report: {e}\n{out}"))
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

    // --------------------------------------------------- shared checks

    /// The issue's first check: `n` sequential requests to `http://VIP/`,
    /// one connection each (so the scheduler decides every one), all
    /// answered; each real server's share within 5% (relative) of its
    /// weight's share; and `rvsadm --json list` counting, per real server,
    /// exactly the connections the client saw it answer. Prints a
    /// `RESULT` line; returns the answers per real server.
    pub fn check_sequential_split(
        &self,
        rvsd: &Rvsd,
        scheduler: &str,
        weights: &[u32],
        n: usize,
    ) -> BTreeMap<String, usize> {
        let started = Instant::now();
        let results = self.http_get_many(&self.vip_host(), "/", n);
        let elapsed = started.elapsed();
        assert_all_answered(&results, rvsd);
        let counts = count_answers(&results);
        let total: u32 = weights.iter().sum();
        for (rs, &w) in self.real_servers.iter().zip(weights) {
            let got = counts.get(&rs.name).copied().unwrap_or(0) as f64;
            let want = n as f64 * f64::from(w) / f64::from(total);
            assert!(
                (got - want).abs() <= 0.05 * want,
                "{} {scheduler} {weights:?}: {} answered {got} of {n}, expected {want:.1} ± 5%: {counts:?}",
                self.method.name(),
                rs.name
            );
        }
        assert_eq!(
            counts.values().sum::<usize>(),
            n,
            "answers from unknown servers: {counts:?}"
        );

        let list = self.rvsadm_list_until(SETTLE, |l| total_conns(l, "web") >= n as u64);
        let listed = listed_real_servers(&list, "web");
        assert_eq!(listed.len(), self.real_servers.len(), "{list}");
        let vs = list["virtual_servers"]
            .as_array()
            .and_then(|v| v.iter().find(|vs| vs["name"] == "web"))
            .unwrap_or_else(|| panic!("no service web: {list}"));
        assert_eq!(vs["forward"], self.method.name(), "{list}");
        assert_eq!(vs["scheduler"], scheduler, "{list}");
        for (rs, entry) in self.real_servers.iter().zip(listed) {
            assert_eq!(entry["address"], rs.addr(self.http_port), "{list}");
            let saw = counts.get(&rs.name).copied().unwrap_or(0) as u64;
            assert_eq!(
                entry["conns"].as_u64(),
                Some(saw),
                "rvsadm counts {} connections to {}, the client saw {saw} answers: {list}",
                entry["conns"],
                rs.name
            );
        }
        result_line(&format!(
            "{} {scheduler} weights={weights:?} requests={n} split={} in {:.1} s ({:.0} connections/s)",
            self.method.name(),
            counts
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(","),
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        ));
        counts
    }

    /// The issue's second check: `wrk -t 2 -c 100 -d 10s` (keep-alive)
    /// through the VIP with no socket errors and no non-2xx/3xx answers;
    /// prints the requests per second.
    pub fn check_wrk(&self, rvsd: &Rvsd) -> WrkReport {
        let report = self.wrk(2, 100, 10);
        assert!(
            report.requests > 0,
            "wrk made no request: {}\n--- rvsd log ---\n{}",
            report.raw,
            rvsd.log()
        );
        assert_eq!(
            report.socket_errors,
            0,
            "wrk socket errors: {}\n--- rvsd log ---\n{}",
            report.raw,
            rvsd.log()
        );
        assert_eq!(report.non_2xx_3xx, 0, "wrk non-2xx: {}", report.raw);
        result_line(&format!(
            "{} wrk -t 2 -c 100 -d 10s: rps={:.0} requests={} latency_avg={} (rvsd idle_sleep_us={}, {} real servers)",
            self.method.name(),
            report.requests_per_sec,
            report.requests,
            report.latency_avg,
            self.idle_sleep_us,
            self.real_servers.len()
        ));
        report
    }

    /// The issue's third check: a `len`-byte download through the VIP,
    /// byte-exact (its sha256 matches the served file's); prints the
    /// throughput.
    pub fn check_huge_download(&self, rvsd: &Rvsd, len: u64) -> Transfer {
        let (path, want) = self.serve_huge_file(len);
        let t = self
            .download_sha256(&self.vip_host(), &path, Duration::from_secs(120))
            .unwrap_or_else(|out| {
                panic!("download failed: {out}\n--- rvsd log ---\n{}", rvsd.log())
            });
        assert_eq!(t.bytes, len, "downloaded length");
        assert_eq!(t.sha256, want, "sha256 of the downloaded bytes");
        result_line(&format!(
            "{} download {} MiB: sha256 ok, {:.2} s, {:.1} MB/s",
            self.method.name(),
            len >> 20,
            t.seconds,
            t.bytes as f64 / t.seconds / 1e6
        ));
        t
    }
}

/// The client of [`Topology::start_load`]: `threads` loops, each making
/// one request at a time and starting one every `interval`, each request
/// one JSON line: wall-clock start and end (Unix seconds, the clock of
/// Rust's `SystemTime`), success (status 200 with a body), the body (the
/// real server's name), the error, the client's port.
const LOAD_CLIENT: &str = r#"
import json, os, socket, sys, threading, time
host, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
interval, timeout = float(sys.argv[4]), float(sys.argv[5])
stop_file, out_path = sys.argv[6], sys.argv[7]
deadline = time.time() + float(sys.argv[8])
out = open(out_path, 'w')
lock = threading.Lock()
REQ = b'GET / HTTP/1.0\r\nHost: rvs-test\r\nConnection: close\r\n\r\n'

def one():
    r = {'start': time.time(), 'ok': False, 'server': '', 'error': '', 'port': 0}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        r['port'] = s.getsockname()[1]
        s.sendall(REQ)
        data = b''
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        head, _, body = data.partition(b'\r\n\r\n')
        status = head.split(b'\r\n', 1)[0].decode('latin-1')
        if status.split(' ')[1:2] == ['200'] and body:
            r['ok'] = True
            r['server'] = body.decode('latin-1').strip()
        else:
            r['error'] = 'answer %r, body %r' % (status, body[:40])
    except Exception as e:
        r['error'] = '%s: %s' % (type(e).__name__, e)
    finally:
        s.close()
    r['end'] = time.time()
    return r

def loop(k):
    nxt = time.time() + k * interval / threads
    while not os.path.exists(stop_file) and time.time() < deadline:
        d = nxt - time.time()
        if d > 0:
            time.sleep(d)
        r = one()
        r['thread'] = k
        with lock:
            out.write(json.dumps(r) + '\n')
            out.flush()
        nxt = max(nxt + interval, time.time())

ts = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print('done')
"#;

/// One request of a [`ClientLoad`].
#[derive(Clone, Debug)]
pub struct LoadRequest {
    /// Which of the client's loops made it.
    pub thread: u32,
    /// When it started and ended, Unix seconds (see [`unix_seconds`]).
    pub start: f64,
    pub end: f64,
    /// Status 200 with a body.
    pub ok: bool,
    /// The body, trimmed: the real server's name (`rs1`); empty when it
    /// failed.
    pub server: String,
    /// Why it failed (`ConnectionResetError: ...`, `timeout: timed out`).
    pub error: String,
    /// The client's port (0 when it did not connect).
    pub port: u16,
}

/// A running [`Topology::start_load`]; killed on drop.
pub struct ClientLoad {
    child: Option<Child>,
    out: PathBuf,
    stop_file: PathBuf,
    log: PathBuf,
    timeout: Duration,
}

impl ClientLoad {
    /// The requests finished so far, in the order they finished.
    pub fn requests(&self) -> Vec<LoadRequest> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| LoadRequest {
                thread: v["thread"].as_u64().unwrap_or(0) as u32,
                start: v["start"].as_f64().unwrap_or(f64::NAN),
                end: v["end"].as_f64().unwrap_or(f64::NAN),
                ok: v["ok"].as_bool().unwrap_or(false),
                server: v["server"].as_str().unwrap_or("").to_string(),
                error: v["error"].as_str().unwrap_or("").to_string(),
                port: v["port"].as_u64().unwrap_or(0) as u16,
            })
            .collect()
    }

    /// What the client printed (its errors, if any).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks the loops to stop after their current request, waits for
    /// them (at most the request timeout and a little more), and returns
    /// every request.
    pub fn stop(mut self) -> Vec<LoadRequest> {
        write_file(&self.stop_file, b"stop\n");
        if let Some(mut child) = self.child.take() {
            let limit = self.timeout + Duration::from_secs(5);
            match wait_timeout(&mut child, limit) {
                Some(status) => assert!(
                    status.success(),
                    "the load client exited with {status}: {}",
                    self.log_text()
                ),
                None => {
                    kill_and_reap(&mut child);
                    panic!(
                        "the load client did not stop within {:.0} s: {}",
                        limit.as_secs_f64(),
                        self.log_text()
                    );
                }
            }
        }
        self.requests()
    }
}

impl Drop for ClientLoad {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

/// `t` as Unix seconds: the clock [`LoadRequest`]'s times are on.
pub fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A `metrics_listen` address on 127.0.0.1 for a topology of this test
/// process: a port from `base`, offset by the process id (test binaries
/// running at once pick different ones) and by a counter (each call its
/// own).
pub fn metrics_listen(base: u16) -> String {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "127.0.0.1:{}",
        base + (std::process::id() % 20000) as u16 + next
    )
}

/// `later - earlier` in milliseconds (negative when `later` is earlier):
/// how the tests report detection and recovery times.
pub fn ms_between(earlier: std::time::SystemTime, later: std::time::SystemTime) -> f64 {
    (unix_seconds(later) - unix_seconds(earlier)) * 1e3
}

/// What [`Topology::download_sha256`] measured.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub sha256: String,
    pub bytes: u64,
    pub seconds: f64,
}

/// The parts of wrk's report the tests judge.
#[derive(Clone, Debug, Default)]
pub struct WrkReport {
    pub requests: u64,
    pub requests_per_sec: f64,
    /// `connect + read + write + timeout` of its `Socket errors:` line (0
    /// when it printed none).
    pub socket_errors: u64,
    /// Its `Non-2xx or 3xx responses:` (0 when it printed none).
    pub non_2xx_3xx: u64,
    /// The average latency as wrk printed it (`2.51ms`).
    pub latency_avg: String,
    /// The whole report.
    pub raw: String,
}

impl WrkReport {
    /// Parses wrk's standard report.
    pub fn parse(text: &str) -> Result<WrkReport, String> {
        let mut r = WrkReport {
            raw: text.to_string(),
            requests_per_sec: f64::NAN,
            ..WrkReport::default()
        };
        let mut saw_requests = false;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("Requests/sec:") {
                r.requests_per_sec = rest.trim().parse().map_err(|e| format!("{line}: {e}"))?;
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                // "connect 0, read 0, write 0, timeout 0"
                r.socket_errors = rest
                    .split(',')
                    .filter_map(|p| p.split_whitespace().nth(1))
                    .map(|n| n.parse::<u64>().unwrap_or(u64::MAX))
                    .sum();
            } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                r.non_2xx_3xx = rest.trim().parse().unwrap_or(u64::MAX);
            } else if line.starts_with("Latency") {
                r.latency_avg = line.split_whitespace().nth(1).unwrap_or("").into();
            } else if let Some((n, _)) = line.split_once(" requests in ") {
                r.requests = n.trim().parse().map_err(|e| format!("{line}: {e}"))?;
                saw_requests = true;
            }
        }
        if !saw_requests || r.requests_per_sec.is_nan() {
            return Err("no `N requests in` or `Requests/sec:` line".into());
        }
        Ok(r)
    }
}

/// Frees the large files of topologies whose test process is gone (a run
/// interrupted before its guards ran): `huge.bin` and its links in the
/// real servers' document roots. The rest (logs, configs) stays for a
/// look, as small as before. The creator's pid is the first 5 base-36
/// digits of the directory's token (`support::unique_token`).
fn remove_stale_huge_files() {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(token) = ["nat", "dr", "tun"]
            .iter()
            .find_map(|m| name.strip_prefix(&format!("rvst-{m}-")))
        else {
            continue;
        };
        let Some(pid) = token.get(..5).and_then(|p| u32::from_str_radix(p, 36).ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let topo_dir = entry.path();
        let _ = std::fs::remove_file(topo_dir.join("huge.bin"));
        for sub in std::fs::read_dir(&topo_dir).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(sub.path().join("www").join("huge.bin"));
        }
    }
}

/// Asserts every request succeeded; says which failed and shows rvsd's log.
pub fn assert_all_answered(results: &[Result<String, String>], rvsd: &Rvsd) {
    let failed: Vec<(usize, &String)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed; first: #{} {}\n--- rvsd log ---\n{}",
        failed.len(),
        results.len(),
        failed[0].0,
        failed[0].1,
        rvsd.log()
    );
}

/// Stops rvsd, asserting a clean exit; returns the `stats:` JSON.
pub fn stop_rvsd(mut rvsd: Rvsd) -> serde_json::Value {
    let stopped = rvsd.stop(RVSD_STOP);
    assert!(!stopped.killed, "rvsd ignored SIGTERM\n{}", stopped.log);
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    stopped.stats()
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

/// Real server `addr`'s entry of virtual server `service` in an
/// `rvsadm --json list`; panics with the list when it is not there.
pub fn listed_real_server<'a>(
    list: &'a serde_json::Value,
    service: &str,
    addr: &str,
) -> &'a serde_json::Value {
    listed_real_servers(list, service)
        .iter()
        .find(|rs| rs["address"] == addr)
        .unwrap_or_else(|| panic!("rvsadm list has no real server {addr} in {service:?}: {list}"))
}

/// Starts `cmd` in the background, its stdout and stderr in `log` (no
/// stdin): how every helper process of these topologies runs.
fn spawn_logged(cmd: &mut Command, log: &Path, what: &str) -> Child {
    let out = File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot dup {}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// Kills `child` and reaps it (bounded): a helper process's end.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = wait_timeout(child, Duration::from_secs(5));
}

/// Checks the config at `path` (its `text`, for the message) with
/// `rvsd --check`, starts rvsd on it in `ns` and waits until it is ready
/// and its control socket is bound: a [`Topology`]'s rvsd and each of an
/// HA pair's.
fn start_checked_rvsd(path: &Path, text: &str, ns: &Netns) -> Rvsd {
    let check = support::run(
        support::RVSD,
        &["--config", &path_str(path), "--check"],
        CMD,
    );
    assert!(
        check.success(),
        "generated config is invalid: {check}\n--- config ---\n{text}"
    );
    let mut rvsd = Rvsd::start(path, Some(ns));
    rvsd.wait_ready(RVSD_READY);
    assert!(
        rvsd.wait_for_log("control socket", Duration::from_secs(10)),
        "rvsd bound no control socket\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    rvsd
}

/// `rvsadm --socket SOCKET ARGS`, whatever its outcome.
fn rvsadm_at(socket: &Path, args: &[&str]) -> CmdOutput {
    let sock = path_str(socket);
    let mut all = vec!["--socket", sock.as_str()];
    all.extend_from_slice(args);
    support::run(env!("CARGO_BIN_EXE_rvsadm"), &all, CMD)
}

/// The [`Transfer`] of a `curl -w 'rvs-transfer: ...' | sha256sum` run
/// (the digest on `stdout`, curl's report on `stderr`), when both are
/// there.
fn parse_transfer(stdout: &str, stderr: &str) -> Option<Transfer> {
    let sha = stdout.split_whitespace().next().unwrap_or_default();
    let report = stderr
        .lines()
        .find_map(|l| l.strip_prefix("rvs-transfer: "))
        .map(|r| r.split_whitespace().collect::<Vec<_>>());
    match report.as_deref() {
        Some([bytes, secs]) if sha.len() == 64 => Some(Transfer {
            sha256: sha.to_string(),
            bytes: bytes.parse().unwrap_or(0),
            seconds: secs.parse().unwrap_or(f64::NAN),
        }),
        _ => None,
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

pub fn path_str(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("path {} is not UTF-8", p.display()))
        .to_string()
}

/// The name the topology's process list gives real server `name`'s HTTP
/// server.
fn http_app_name(name: &str) -> String {
    format!("{name} http")
}

/// Fields of `/proc/PID/stat` after the command: (state, parent pid).
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The parent of `pid`, while it exists.
fn parent_pid(pid: u32) -> Option<u32> {
    proc_stat(pid).map(|(_, ppid)| ppid)
}

/// The state letter of `pid` (`R`, `S`, `Z`, ...), while it exists.
fn process_state(pid: u32) -> Option<char> {
    proc_stat(pid).map(|(state, _)| state)
}

fn nginx_conf(name: &str, dir: &Path, port: u16, access_log: bool) -> String {
    let d = path_str(dir);
    let access_log = if access_log {
        format!("{d}/access.log")
    } else {
        "off".to_string()
    };
    format!(
        "# {name}: generated by tests/netns\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         user root;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20   access_log {access_log};\n\
         \x20   client_body_temp_path {d}/tmp/body;\n\
         \x20   proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {d}/tmp/scgi;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   sendfile on;\n\
         \x20   keepalive_timeout 30;\n\
         \x20   keepalive_requests 1000000;\n\
         \x20   server {{\n\
         \x20       listen {port};\n\
         \x20       root {d}/www;\n\
         \x20       index index.html;\n\
         \x20       location /upload/ {{\n\
         \x20           dav_methods PUT;\n\
         \x20           client_max_body_size 0;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

// ------------------------------------------------------------- HA pair

/// HA: balancer A's kernel address on the management link (VRRP, sync).
pub const HA_MGMT_A: &str = "192.168.100.1";
/// HA: balancer B's kernel address on the management link.
pub const HA_MGMT_B: &str = "192.168.100.2";
/// HA: the sync port both balancers listen on (management addresses).
pub const HA_SYNC_PORT: u16 = 8848;

/// One balancer of an HA pair: its namespace (A's is the topology's
/// `lb`), its rvsd ports, its management interface and address.
#[derive(Debug)]
pub struct HaNode {
    /// `a` or `b`.
    pub name: &'static str,
    /// 1 or 2 (`[ha] node_id`).
    pub node_id: u32,
    pub ports: Vec<RvsdPort>,
    /// The kernel's management interface (keepalived's `interface`).
    pub mgmt_dev: String,
    /// The switch's end of the management veth (on br2).
    pub mgmt_switch_dev: String,
    /// The kernel's management address (keepalived's `unicast_src_ip`).
    pub mgmt_ip: String,
    /// The peer's management address.
    pub peer_ip: String,
}

/// A keepalived in a namespace (`-n`, VRRP only), its console log in a
/// file. SIGTERM on drop (SIGKILL when it does not stop), so it never
/// outlives the test.
pub struct Keepalived {
    pub what: String,
    child: Child,
    pub log: PathBuf,
}

impl Keepalived {
    /// Its console log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while it runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (a planned stop: it gives up mastership with a priority 0
    /// advert and runs `notify_stop`), then waits up to 10 s for it to
    /// exit, SIGKILL after that. Returns the time of the signal.
    pub fn stop(&mut self) -> Instant {
        let at = Instant::now();
        if self.running() {
            let _ = support::run("kill", &["-TERM", &self.child.id().to_string()], CMD);
            if wait_timeout(&mut self.child, Duration::from_secs(10)).is_none() {
                eprintln!(
                    "{} did not stop within 10 s of SIGTERM: killing it",
                    self.what
                );
                kill_and_reap(&mut self.child);
            }
        }
        at
    }

    /// Waits until its log has a line containing `needle` (bounded);
    /// panics with the log when it exits first or the time runs out.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if text.lines().any(|l| l.contains(needle)) {
                return;
            }
            let alive = self.running();
            assert!(
                alive && Instant::now() < deadline,
                "{}: no `{needle}` in its log ({}, {:.0} s)\n--- log ---\n{text}",
                self.what,
                if alive { "still running" } else { "exited" },
                timeout.as_secs_f64()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two rvsd balancers, A (the [`Topology`]'s `lb` namespace) and B,
/// sharing the outside segment (with the client) and the inside segment
/// (with the real servers), and a management link of their own for VRRP
/// and connection sync:
///
/// ```text
///  client 198.51.100.10 --- br1 ---+--- A outside (02:00:00:00:0a:01)   A inside --+--- br0 --- rs1 10.1.0.11
///                                  +--- B outside (02:00:00:00:0b:01)   B inside --+       \-- rs2 10.1.0.12
///       A kernel 192.168.100.1 --- br2 --- B kernel 192.168.100.2   (VRRP, sync on 8848)
/// ```
///
/// Both rvsd own 198.51.100.1 and 10.1.0.1 (the client's and the real
/// servers' gateways) as `floating_addresses`, and the VIP; only the
/// master answers ARP for them. The three bridges live in the switch
/// namespace. keepalived ([`HaTopology::start_keepalived`]) runs the
/// repo's `dpdk-config/keepalived-{primary,backup}.conf` rewritten for
/// the test's interfaces, rvsadm and sockets, with a `vrrp_script` that
/// runs `rvsadm ha status` every second: a dead rvsd puts its keepalived
/// in FAULT, which hands mastership to the peer.
pub struct HaTopology {
    // Field order is drop order: keepalived, B's namespace, then the rest.
    pub keepalived: [Option<Keepalived>; 2],
    /// B's namespace.
    pub lb_b: Netns,
    pub nodes: [HaNode; 2],
    /// `[ha] floating_addresses` (as written in `[[interface]]`).
    pub floating: Vec<String>,
    pub topo: Topology,
}

impl HaTopology {
    /// The NAT HA pair with `n` real servers running their HTTP servers.
    pub fn nat(n: usize) -> HaTopology {
        HaTopology::build(Method::Nat, n)
    }

    /// The DR HA pair: the client behind a router as in [`Topology::dr`],
    /// A's and B's one port (`lan`, 203.0.113.2 floating, the VIP
    /// 203.0.113.100) on the segment with the router and the `n` real
    /// servers, the management link as in [`HaTopology::nat`].
    pub fn dr(n: usize) -> HaTopology {
        HaTopology::build(Method::Dr, n)
    }

    fn build(method: Method, n: usize) -> HaTopology {
        assert!(
            matches!(method, Method::Nat | Method::Dr),
            "HA pairs are NAT or DR"
        );
        let started = Instant::now();
        let mut topo = Topology::empty(method, n);
        let lb_b = quiet_netns();
        topo.make_bridge(); // br0: inside (NAT), the segment (DR)
        topo.make_named_bridge("br1"); // NAT: outside
        topo.make_named_bridge("br2"); // management

        let (floating, gateway) = if method == Method::Nat {
            let c = support::veth_pair(&topo.client, &topo.switch);
            topo.bridge_port_on(&c.b, "br1");
            topo.client.add_address(&c.a, &format!("{CLIENT_IP}/24"));
            topo.client
                .run_ok("ip", &["route", "add", "default", "via", OUTSIDE_IP], CMD);
            topo.client_dev = c.a;
            (
                vec![format!("{OUTSIDE_IP}/24"), format!("{INSIDE_IP}/24")],
                INSIDE_IP,
            )
        } else {
            let router = router_netns();
            topo.connect_client_to_router(&router);
            topo.router_on_br0(&router, SEGMENT_ROUTER_IP);
            topo.router = Some(router);
            topo.add_route("0.0.0.0/0", SEGMENT_ROUTER_IP, "lan");
            (vec![format!("{SEGMENT_LB_IP}/24")], SEGMENT_ROUTER_IP)
        };

        let mut nodes = Vec::new();
        for (name, node_id, mine, peer) in [
            ("a", 1u32, HA_MGMT_A, HA_MGMT_B),
            ("b", 2u32, HA_MGMT_B, HA_MGMT_A),
        ] {
            let ns = if name == "a" { &topo.lb } else { &lb_b };
            let mac = |k: u8| format!("02:00:00:00:0{name}:0{k}");
            let mut ports = Vec::new();
            if method == Method::Nat {
                let out = support::veth_pair(ns, &topo.switch);
                topo.bridge_port_on(&out.b, "br1");
                let ins = support::veth_pair(ns, &topo.switch);
                topo.bridge_port(&ins.b);
                ports.push(RvsdPort::new("outside", &out.a, OUTSIDE_IP, &mac(1)));
                ports.push(RvsdPort::new("inside", &ins.a, INSIDE_IP, &mac(2)));
            } else {
                let lan = support::veth_pair(ns, &topo.switch);
                topo.bridge_port(&lan.b);
                ports.push(RvsdPort::new("lan", &lan.a, SEGMENT_LB_IP, &mac(1)));
            }
            let mgmt = support::veth_pair(ns, &topo.switch);
            topo.bridge_port_on(&mgmt.b, "br2");
            ns.add_address(&mgmt.a, &format!("{mine}/24"));
            nodes.push(HaNode {
                name,
                node_id,
                ports,
                mgmt_dev: mgmt.a,
                mgmt_switch_dev: mgmt.b,
                mgmt_ip: mine.into(),
                peer_ip: peer.into(),
            });
        }
        topo.ports = nodes[0].ports.clone();
        topo.outside_dev = nodes[0].ports[0].dev.clone();
        if method == Method::Nat {
            topo.inside_dev = nodes[0].ports[1].dev.clone();
        }
        topo.management_dev = Some(nodes[0].mgmt_dev.clone());

        for i in 1..=n {
            let ip = if method == Method::Nat {
                format!("10.1.0.{}", 10 + i)
            } else {
                format!("203.0.113.{}", 10 + i)
            };
            let rs = topo.add_real_server(i, &ip, gateway);
            if method == Method::Dr {
                hold_vip_silently(&rs);
            }
            topo.real_servers.push(rs);
        }
        topo.start_http();
        let b = nodes.pop().expect("two nodes");
        let a = nodes.pop().expect("two nodes");
        topo.report_built(started);
        eprintln!("ha pair: a={} b={}", topo.lb.name(), lb_b.name());
        HaTopology {
            keepalived: [None, None],
            lb_b,
            nodes: [a, b],
            floating,
            topo,
        }
    }

    /// Node `i`'s namespace (0: A, 1: B).
    pub fn ns(&self, i: usize) -> &Netns {
        if i == 0 {
            &self.topo.lb
        } else {
            &self.lb_b
        }
    }

    /// Node `i`'s control socket.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.topo
            .dir
            .join(&format!("rvsd-{}.sock", self.nodes[i].name))
    }

    /// Node `i`'s rvsd config: the topology's, with its ports and socket,
    /// and an `[ha]` section (`initial_state` `master` or `backup`).
    pub fn rvsd_config(&self, i: usize, initial_state: &str, services: &[Service]) -> String {
        let node = &self.nodes[i];
        let mut t = self
            .topo
            .rvsd_config_for(&node.ports, &self.socket(i), 1, services);
        let _ = writeln!(t, "\n[ha]");
        let _ = writeln!(t, "node_id = {}", node.node_id);
        let _ = writeln!(t, "initial_state = {}", support::toml_str(initial_state));
        let _ = writeln!(t, "sync_listen = \"{}:{HA_SYNC_PORT}\"", node.mgmt_ip);
        let _ = writeln!(t, "sync_peer = \"{}:{HA_SYNC_PORT}\"", node.peer_ip);
        let floating: Vec<String> = self.floating.iter().map(|f| support::toml_str(f)).collect();
        let _ = writeln!(t, "floating_addresses = [{}]", floating.join(", "));
        t
    }

    /// Writes node `i`'s config, checks it, starts its rvsd and waits
    /// until it is ready with its control socket bound.
    pub fn start_rvsd(&self, i: usize, initial_state: &str, services: &[Service]) -> Rvsd {
        let text = self.rvsd_config(i, initial_state, services);
        let path = self
            .topo
            .dir
            .write(&format!("rvsd-{}.toml", self.nodes[i].name), &text);
        start_checked_rvsd(&path, &text, self.ns(i))
    }

    /// Like [`HaTopology::start_rvsd`], with `extra_ha` appended to the
    /// `[ha]` section (the last of the file), e.g. `sync_key_file`.
    pub fn start_rvsd_with(
        &self,
        i: usize,
        initial_state: &str,
        services: &[Service],
        extra_ha: &str,
    ) -> Rvsd {
        let mut text = self.rvsd_config(i, initial_state, services);
        text.push_str(extra_ha);
        let path = self
            .topo
            .dir
            .write(&format!("rvsd-{}.toml", self.nodes[i].name), &text);
        start_checked_rvsd(&path, &text, self.ns(i))
    }

    /// `rvsadm --socket <node i's> ARGS`, whatever its outcome.
    pub fn rvsadm(&self, i: usize, args: &[&str]) -> CmdOutput {
        rvsadm_at(&self.socket(i), args)
    }

    /// `rvsadm --json ARGS` on node `i`, parsed; `None` when rvsadm fails
    /// (rvsd gone) or prints no JSON.
    pub fn try_json(&self, i: usize, args: &[&str]) -> Option<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.rvsadm(i, &all);
        if !out.success() {
            return None;
        }
        serde_json::from_str(out.stdout.trim()).ok()
    }

    /// `rvsadm --json ARGS` on node `i`; panics when it fails.
    pub fn json(&self, i: usize, args: &[&str]) -> serde_json::Value {
        self.try_json(i, args).unwrap_or_else(|| {
            panic!(
                "rvsadm {args:?} on {} failed: {}",
                self.nodes[i].name,
                self.rvsadm(i, args)
            )
        })
    }

    /// Node `i`'s `ha status` document.
    pub fn ha_status(&self, i: usize) -> serde_json::Value {
        self.json(i, &["ha", "status"])
    }

    /// Node `i`'s role (`master`, `backup`), `None` when rvsd is gone.
    pub fn role(&self, i: usize) -> Option<String> {
        self.try_json(i, &["ha", "status"])
            .and_then(|v| v["role"].as_str().map(str::to_string))
    }

    /// A counter of node `i`'s `stats` total (`forwarded`,
    /// `conns_synced`), `None` when rvsd is gone.
    pub fn total(&self, i: usize, key: &str) -> Option<u64> {
        self.try_json(i, &["stats"])
            .and_then(|v| v["total"][key].as_u64())
    }

    /// Waits (bounded by `timeout`) until `read(self, i)` reaches
    /// `at_least`; panics with node `i`'s `ha status` otherwise (`what`
    /// names the value). Returns the value reached.
    pub fn wait_at_least(
        &self,
        i: usize,
        what: &str,
        at_least: u64,
        timeout: Duration,
        read: impl Fn(&HaTopology, usize) -> u64,
    ) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = read(self, i);
            if n >= at_least {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "{}'s {what} is {n}, expected at least {at_least}: {}",
                self.nodes[i].name,
                self.ha_status(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded by `timeout`) until node `i`'s `conns_synced`
    /// reaches `at_least`; returns it.
    pub fn wait_synced(&self, i: usize, at_least: u64, timeout: Duration) -> u64 {
        self.wait_at_least(i, "conns_synced", at_least, timeout, |ha, i| {
            ha.total(i, "conns_synced").unwrap_or(0)
        })
    }

    /// Waits (bounded) until node `i`'s role is `role`; panics with the
    /// logs otherwise. Returns the time it took.
    pub fn wait_role(&self, i: usize, role: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.role(i);
            if now.as_deref() == Some(role) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "{} is {now:?}, not {role}, after {:.1} s\n{}",
                self.nodes[i].name,
                timeout.as_secs_f64(),
                self.keepalived_logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// keepalived's config for node `i`: the repo's example for its side
    /// (A primary, B backup; with its `vrrp_script` that checks rvsd every
    /// second, so a dead rvsd puts keepalived in FAULT) with the test's
    /// interface, rvsadm and socket.
    pub fn keepalived_config(&self, i: usize) -> String {
        let side = if i == 0 { "primary" } else { "backup" };
        let path = support::repo_root().join(format!("dpdk-config/keepalived-{side}.conf"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let node = &self.nodes[i];
        let rvsadm = format!(
            "{} --socket {}",
            env!("CARGO_BIN_EXE_rvsadm"),
            path_str(&self.socket(i))
        );
        let mut out = text.clone();
        for (from, to) in [
            ("mgmt0", node.mgmt_dev.as_str()),
            (
                "/usr/sbin/rvsadm --socket /run/rvs/rvsd.sock",
                rvsadm.as_str(),
            ),
        ] {
            assert!(
                out.contains(from),
                "{} no longer has `{from}`: update HaTopology::keepalived_config",
                path.display()
            );
            out = out.replace(from, to);
        }
        for ip in [HA_MGMT_A, HA_MGMT_B] {
            assert!(
                text.contains(ip),
                "{} does not use {ip}: update the HA topology's addresses",
                path.display()
            );
        }
        out
    }

    /// Starts keepalived for node `i` in its namespace (`-n -l -D -G -P`,
    /// its own pid files) and waits until it has entered a VRRP state.
    pub fn start_keepalived(&mut self, i: usize) {
        assert!(
            have("keepalived"),
            "keepalived is not installed (scripts/setup)"
        );
        let name = self.nodes[i].name;
        let conf = self.topo.dir.write(
            &format!("keepalived-{name}.conf"),
            &self.keepalived_config(i),
        );
        let d = &self.topo.dir;
        let log = d.join(&format!("keepalived-{name}.log"));
        let mut cmd = self.ns(i).command("keepalived");
        cmd.args([
            "-n",
            "-l",
            "-D",
            "-G",
            "-P",
            "-f",
            &path_str(&conf),
            "-p",
            &path_str(&d.join(&format!("keepalived-{name}.pid"))),
            "-r",
            &path_str(&d.join(&format!("keepalived-{name}-vrrp.pid"))),
        ]);
        let child = spawn_logged(&mut cmd, &log, "keepalived");
        let mut k = Keepalived {
            what: format!("keepalived {name}"),
            child,
            log,
        };
        k.wait_for_log("Entering", Duration::from_secs(15));
        self.keepalived[i] = Some(k);
    }

    /// Both keepalived logs.
    pub fn keepalived_logs(&self) -> String {
        let mut s = String::new();
        for k in self.keepalived.iter().flatten() {
            let _ = writeln!(s, "--- {} log ---\n{}", k.what, k.log_text());
        }
        s
    }

    /// Starts `tests/netns/idle_conns.py` in the client namespace: `n`
    /// HTTP/1.1 keep-alive connections to the VIP, one request each, held
    /// open; it asks once more on each when [`IdleConns::ask_again`] is
    /// called and prints a JSON verdict.
    pub fn start_idle_conns(&self, n: usize) -> IdleConns {
        self.topo.start_idle_conns(n)
    }

    /// Starts `curl --limit-rate RATE` of `http://VIP/PATH` in the client
    /// namespace into `sha256sum`, in the background.
    pub fn start_download(&self, path: &str, rate: &str, max_secs: u64) -> Download {
        let url = format!("http://{}{path}", self.topo.vip);
        let script = format!(
            "set -o pipefail; curl -sS -m {max_secs} --limit-rate {rate} \
             -w '%{{stderr}}rvs-transfer: %{{size_download}} %{{time_total}}\\n' \
             -o - '{url}' | sha256sum"
        );
        let mut cmd = self.topo.client.command("bash");
        cmd.args(["-c", &script]);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the download: {e}"));
        Download {
            child: Some(child),
            timeout: Duration::from_secs(max_secs + 10),
        }
    }
}

impl HaTopology {
    /// Takes node `i`'s management link down or up at the switch's end
    /// (a pulled cable: its kernel's veth loses carrier, which keepalived
    /// sees). Returns the time of the change.
    pub fn set_mgmt_link(&self, i: usize, up: bool) -> Instant {
        let at = Instant::now();
        let state = if up { "up" } else { "down" };
        self.topo.switch.run_ok(
            "ip",
            &["link", "set", &self.nodes[i].mgmt_switch_dev, state],
            CMD,
        );
        at
    }

    /// Starts `tests/netns/arp_owners.py` in the client namespace (NAT:
    /// on the segment with the balancers' outside ports), asking who has
    /// `target` every 100 ms for `secs` seconds.
    pub fn start_arp_owners(&self, target: &str, secs: f64) -> ArpOwners {
        assert_eq!(
            self.topo.method,
            Method::Nat,
            "the client is on the segment in NAT"
        );
        let log = self
            .topo
            .dir
            .join(&format!("arp-{}.log", support::unique_token()));
        let script = support::repo_root().join("tests/netns/arp_owners.py");
        let mut cmd = self.topo.client.command("python3");
        cmd.args([
            "-u",
            &path_str(&script),
            &self.topo.client_dev,
            CLIENT_IP,
            target,
            &secs.to_string(),
        ]);
        let child = spawn_logged(&mut cmd, &log, "arp_owners.py");
        let mut owners = ArpOwners {
            child,
            log,
            timeout: Duration::from_secs_f64(secs + 15.0),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !owners.log_text().lines().any(|l| l == "ready") {
            assert!(
                matches!(owners.child.try_wait(), Ok(None)) && Instant::now() < deadline,
                "arp_owners.py did not start\n{}",
                owners.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        owners
    }
}

/// A running `arp_owners.py`.
pub struct ArpOwners {
    child: Child,
    log: PathBuf,
    timeout: Duration,
}

impl ArpOwners {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for the end and returns the probes: the time of
    /// each (s from the first) and the MACs that answered it.
    pub fn finish(mut self) -> Vec<(f64, Vec<String>)> {
        let status = wait_timeout(&mut self.child, self.timeout);
        let text = self.log_text();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("probes: "))
            .unwrap_or_else(|| panic!("arp_owners.py printed no probes ({status:?})\n{text}"));
        let v: Vec<(f64, Vec<String>)> = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("arp_owners.py probes are not JSON ({e}): {line}"));
        v
    }
}

impl Drop for ArpOwners {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_and_reap(&mut self.child);
        }
    }
}

/// The idle keep-alive connections of [`HaTopology::start_idle_conns`].
pub struct IdleConns {
    child: Child,
    log: PathBuf,
    trigger: PathBuf,
    pub n: usize,
}

/// What the idle connections answered when asked again.
#[derive(Debug)]
pub struct IdleVerdict {
    /// Connections that answered 200.
    pub ok: usize,
    /// Connections reset by the peer.
    pub resets: usize,
    /// Every failure, one line each.
    pub failures: Vec<String>,
}

impl IdleConns {
    /// The connections `child` (the script `what`, logging to `log`)
    /// holds, once it says it opened them all (at most 30 s).
    fn opened(child: Child, log: PathBuf, trigger: PathBuf, n: usize, what: &str) -> IdleConns {
        let mut idle = IdleConns {
            child,
            log,
            trigger,
            n,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = idle.log_text();
            if text.lines().any(|l| l.starts_with("opened ")) {
                return idle;
            }
            let alive = matches!(idle.child.try_wait(), Ok(None));
            assert!(
                alive && Instant::now() < deadline,
                "{what} did not open {n} connections\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks once more on every connection and waits (bounded) for the
    /// verdict.
    pub fn ask_again(mut self, timeout: Duration) -> IdleVerdict {
        write_file(&self.trigger, b"go\n");
        let status = wait_timeout(&mut self.child, timeout);
        let text = self.log_text();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("verdict: "))
            .unwrap_or_else(|| {
                panic!("idle_conns.py gave no verdict ({status:?}) within {timeout:?}\n{text}")
            });
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("idle_conns.py verdict is not JSON ({e}): {line}"));
        IdleVerdict {
            ok: v["ok"].as_u64().unwrap_or(0) as usize,
            resets: v["resets"].as_u64().unwrap_or(0) as usize,
            failures: v["failures"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| f.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl Drop for IdleConns {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_and_reap(&mut self.child);
        }
    }
}

/// A background download of [`HaTopology::start_download`].
pub struct Download {
    child: Option<Child>,
    timeout: Duration,
}

impl Download {
    /// Waits (bounded) for the download: `Ok` with the transfer, `Err`
    /// with curl's exit and message.
    pub fn finish(mut self) -> Result<Transfer, String> {
        let mut child = self.child.take().expect("a running download");
        let status = wait_timeout(&mut child, self.timeout);
        if status.is_none() {
            kill_and_reap(&mut child);
        }
        let mut stdout = String::new();
        let mut stderr = String::new();
        use std::io::Read as _;
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        status
            .filter(|s| s.success())
            .and_then(|_| parse_transfer(&stdout, &stderr))
            .ok_or_else(|| format!("download {status:?}: {stderr}"))
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}
