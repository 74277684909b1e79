//! The active-active cluster topology of issue 20 (`docs/dev/h20-ctest.md`):
//! N rvsd nodes behind a router that spreads client flows over them by
//! ECMP, the routes learnt over BGP from one bird2 per node.
//!
//! ```text
//!  clients ns                 router ns (bird2, ip_forward,            switch ns
//!  198.51.100.10-49/24 ------ 198.51.100.1   fib_multipath_hash_policy=1)
//!  default via .1             10.0.0.1/24 ------------------------------ br0 (data LAN)
//!                             192.168.100.254/24 ----------------------- br2 (management LAN)
//!
//!  node i ns: rvsd's DPDK port (net_af_packet) on br0, 10.0.0.1i, MAC 02:00:00:00:1i:01
//!             kernel veth on br2, 192.168.100.i (bird2's BGP to the router, rvsd's sync,
//!             health checks: 10.0.0.0/24 via 192.168.100.254)
//!             bird2 with dpdk-config/bird-node.conf, rvsd's liveness TUN `rvs-live`
//!  rs j ns:   10.0.0.2j on br0, default via 10.0.0.1, the VIP on lo (DR, no ARP), nginx :80
//! ```
//!
//! The VIP [`CLUSTER_VIP`] (10.0.100.100) is outside the data LAN: only the
//! router's BGP route (one next hop per node announcing it) brings its
//! traffic to the nodes. bird2 runs the repo's `dpdk-config/bird-node.conf`
//! and `bird-router.conf` rewritten only where they say EDIT (and the log
//! and include paths), so the test proves the shipped files. Every bird2
//! has its own control socket and is stopped on drop (then the namespaces
//! go), also when the test fails.
#![allow(dead_code)]

use super::{
    kill_and_reap, path_str, quiet_netns, router_netns, spawn_logged, start_checked_rvsd, sysctls,
    write_file, ClientLoad, IdleConns, LoadRequest, Method, RealServer, RvsdPort, Service,
    Topology, APP_START, CMD, HA_SYNC_PORT,
};
use crate::support::{self, wait_timeout, CmdOutput, Netns, Rvsd};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// The cluster's VIP: outside the data LAN, reached only by the BGP route.
pub const CLUSTER_VIP: &str = "10.0.100.100";
/// The router's address on the data LAN (the real servers' gateway).
pub const DATA_ROUTER_IP: &str = "10.0.0.1";
/// The router's address on the management LAN (the nodes' BGP peer).
pub const MGMT_ROUTER_IP: &str = "192.168.100.254";
/// The router's address on the clients' side (their gateway).
pub const CLIENT_GATEWAY: &str = "198.51.100.1";
/// How many client addresses the clients namespace holds (198.51.100.10 ..).
pub const CLIENT_ADDRESSES: usize = 40;
/// rvsd's liveness interface on every node (`[cluster] liveness_interface`).
pub const LIVENESS_DEV: &str = "rvs-live";
/// The port of every node's sync socket (on its management address).
pub const CLUSTER_SYNC_PORT: u16 = HA_SYNC_PORT;
/// The repo's bird2 configs the test runs.
pub const BIRD_NODE_CONF: &str = "dpdk-config/bird-node.conf";
pub const BIRD_ROUTER_CONF: &str = "dpdk-config/bird-router.conf";

/// Node `i`'s (1-based) data address: rvsd's on its DPDK port.
pub fn node_data_ip(i: usize) -> String {
    format!("10.0.0.{}", 10 + i)
}

/// Node `i`'s management address (its kernel's).
pub fn node_mgmt_ip(i: usize) -> String {
    format!("192.168.100.{i}")
}

/// Node `i`'s rvsd MAC on the data LAN.
pub fn node_mac(i: usize) -> String {
    format!("02:00:00:00:{:02x}:01", 0x10 + i)
}

/// Real server `j`'s (1-based) address on the data LAN.
pub fn rs_ip(j: usize) -> String {
    format!("10.0.0.{}", 20 + j)
}

/// The clients' addresses, 198.51.100.10 and up.
pub fn client_sources() -> Vec<String> {
    (0..CLIENT_ADDRESSES)
        .map(|k| format!("198.51.100.{}", 10 + k))
        .collect()
}

/// Replaces the one occurrence of `from` in `text` by `to`; panics naming
/// `what` when it is not there exactly once (the shipped config changed
/// and the test no longer proves it).
pub fn replace_once(text: &str, from: &str, to: &str, what: &str) -> String {
    let n = text.matches(from).count();
    assert_eq!(n, 1, "{what}: {from:?} occurs {n} times, want once");
    text.replacen(from, to, 1)
}

// ------------------------------------------------------------ bird2

/// A bird2 in a namespace (`bird -f`), its control socket and log in the
/// topology's directory. SIGTERM on drop (SIGKILL when it does not stop).
pub struct Bird {
    pub what: String,
    child: Child,
    /// Its control socket (`birdc -s`).
    pub socket: PathBuf,
    /// Its config file (rewrite it and [`Bird::configure`] to change it).
    pub conf: PathBuf,
    /// Its log (`log "FILE" all;`).
    pub log: PathBuf,
}

impl Bird {
    /// Starts `bird -f -s SOCKET -c CONF -P PIDFILE` in `ns` with `text` as
    /// its config (written to `dir/NAME.conf`), after `bird -p` parsed it,
    /// and waits until its socket answers.
    pub fn start(ns: &Netns, dir: &std::path::Path, name: &str, text: &str) -> Bird {
        let conf = dir.join(format!("{name}.conf"));
        let socket = dir.join(format!("{name}.ctl"));
        let log = dir.join(format!("{name}.log"));
        write_file(&conf, text.as_bytes());
        let parse = support::run("bird", &["-p", "-c", &path_str(&conf)], CMD);
        assert!(
            parse.success(),
            "{name}: bird refuses its config: {parse}\n--- config ---\n{text}"
        );
        let mut cmd = ns.command("bird");
        cmd.args([
            "-f",
            "-s",
            &path_str(&socket),
            "-c",
            &path_str(&conf),
            "-P",
            &path_str(&dir.join(format!("{name}.pid"))),
        ]);
        let console = dir.join(format!("{name}.console"));
        let child = spawn_logged(&mut cmd, &console, name);
        let mut bird = Bird {
            what: name.to_string(),
            child,
            socket,
            conf,
            log,
        };
        let deadline = Instant::now() + APP_START;
        loop {
            if bird
                .birdc(&["show", "status"])
                .stdout
                .contains("Daemon is up")
            {
                break;
            }
            let alive = matches!(bird.child.try_wait(), Ok(None));
            assert!(
                alive && Instant::now() < deadline,
                "{name}: bird did not come up\n{}",
                bird.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bird
    }

    /// `birdc -s SOCKET ARGS`, whatever its outcome.
    pub fn birdc(&self, args: &[&str]) -> CmdOutput {
        let sock = path_str(&self.socket);
        let mut all = vec!["-s", sock.as_str()];
        all.extend_from_slice(args);
        support::run("birdc", &all, CMD)
    }

    /// `birdc configure`; panics unless bird says it reconfigured.
    pub fn configure(&self) {
        let out = self.birdc(&["configure"]);
        assert!(
            out.success() && out.stdout.contains("econfigur"),
            "{}: birdc configure: {out}\n{}",
            self.what,
            self.logs()
        );
    }

    /// The BGP protocols' lines of `show protocols` (name, state, info).
    pub fn bgp_protocols(&self) -> Vec<String> {
        self.birdc(&["show", "protocols"])
            .stdout
            .lines()
            .filter(|l| l.contains(" BGP "))
            .map(str::to_string)
            .collect()
    }

    /// How many BGP sessions are established.
    pub fn established(&self) -> usize {
        self.bgp_protocols()
            .iter()
            .filter(|l| l.contains("Established"))
            .count()
    }

    /// Waits (at most `timeout`) until at least `n` BGP sessions are up;
    /// panics with the logs otherwise.
    pub fn wait_established(&self, n: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        while self.established() < n {
            assert!(
                start.elapsed() < timeout,
                "{}: {n} BGP sessions not established within {timeout:?}: {:?}\n{}",
                self.what,
                self.bgp_protocols(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    /// Its log and console output, for messages.
    pub fn logs(&self) -> String {
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let console = self.log.with_extension("console");
        format!(
            "--- {} log ---\n{}--- {} console ---\n{}",
            self.what,
            read(&self.log),
            self.what,
            read(&console)
        )
    }

    /// True while it runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = support::run("kill", &["-TERM", &self.child.id().to_string()], CMD);
            if wait_timeout(&mut self.child, Duration::from_secs(3)).is_none() {
                kill_and_reap(&mut self.child);
            }
        }
    }
}

// ------------------------------------------------------------ nodes

/// One node of the cluster: its namespace and links. Its bird2 and rvsd
/// are the test's (or [`ClusterTopology::node_birds`]).
#[derive(Debug)]
pub struct ClusterNode {
    /// 1-based: `[cluster] node_id`, the last byte of its management
    /// address.
    pub index: usize,
    pub ns: Netns,
    /// rvsd's DPDK port (the veth end in the node namespace).
    pub data_dev: String,
    /// The kernel's management interface.
    pub mgmt_dev: String,
    /// The switch's end of the management veth (on br2).
    pub mgmt_switch_dev: String,
    pub data_ip: String,
    pub mgmt_ip: String,
    pub mac: String,
    /// Its scratch directory (configs, bird's socket, the include file).
    pub dir: PathBuf,
}

impl ClusterNode {
    /// The file rvsd writes and bird includes (`[cluster] bird_include`).
    pub fn include(&self) -> PathBuf {
        self.dir.join("bird-vips.conf")
    }

    /// `[cluster] bird_include6`.
    pub fn include6(&self) -> PathBuf {
        self.dir.join("bird-vips6.conf")
    }

    /// rvsd's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("rvsd.sock")
    }

    /// `ADDR:PORT` of its sync socket.
    pub fn sync_addr(&self) -> String {
        format!("{}:{CLUSTER_SYNC_PORT}", self.mgmt_ip)
    }
}

/// The cluster topology: the router, the nodes, the real servers and the
/// clients, with one bird2 per node and one in the router.
pub struct ClusterTopology {
    // Field order is drop order: bird2s, the nodes' namespaces, then the
    // rest (real servers' HTTP servers, namespaces, files).
    /// The router's bird2 (started by [`ClusterTopology::build`]).
    pub router_bird: Option<Bird>,
    /// Node `i`'s bird2 at index `i - 1`.
    pub node_birds: Vec<Option<Bird>>,
    pub nodes: Vec<ClusterNode>,
    /// How many nodes the cluster has in all, present or to come: each
    /// rvsd's `peers` list names all of them but itself.
    pub planned: usize,
    /// Clients, switch, router (`topo.router`), real servers, directory.
    pub topo: Topology,
}

impl ClusterTopology {
    /// `nodes` nodes (each with its namespace, links and a running bird2,
    /// no rvsd) of `planned` in all, `real_servers` DR real servers
    /// running nginx, the router with its bird2. rvsd configs list all
    /// `planned` nodes as peers.
    pub fn build(nodes: usize, planned: usize, real_servers: usize) -> ClusterTopology {
        ClusterTopology::build_for(Method::Dr, nodes, planned, real_servers)
    }

    /// [`ClusterTopology::build`] for NAT: the real servers hold no VIP and
    /// send each connection's replies to the node that delivered its last
    /// packet (nftables marks the connection by the node's source MAC,
    /// `ip rule fwmark i` routes by the mark through node i's data
    /// address); everything else (health checks) through the router.
    pub fn build_nat(nodes: usize, planned: usize, real_servers: usize) -> ClusterTopology {
        ClusterTopology::build_for(Method::Nat, nodes, planned, real_servers)
    }

    fn build_for(
        method: Method,
        nodes: usize,
        planned: usize,
        real_servers: usize,
    ) -> ClusterTopology {
        assert!(
            (1..=9).contains(&nodes) && (nodes..=9).contains(&planned),
            "1 to 9 nodes (addresses 10.0.0.1i), {nodes} of {planned}"
        );
        let started = Instant::now();
        let mut topo = Topology::empty(method, real_servers.max(1));
        // DR and NAT alike: the real servers listen on the virtual port.
        topo.http_port = 80;
        topo.vip = CLUSTER_VIP.into();
        // Three or four rvsd on two CPUs: small tables, long idle sleeps.
        topo.conn_table_size = 4096;
        topo.idle_sleep_us = std::env::var("RVS_TEST_IDLE_SLEEP_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let router = router_netns();
        sysctls(&router, &["net.ipv4.fib_multipath_hash_policy=1"]);

        // Clients: 40 addresses behind the router.
        topo.connect_client_to_router(&router);
        for src in client_sources().iter().skip(1) {
            topo.client
                .add_address(&topo.client_dev, &format!("{src}/24"));
        }

        // The data LAN (br0) and the management LAN (br2).
        topo.make_bridge();
        topo.make_named_bridge("br2");
        topo.router_on_br0(&router, DATA_ROUTER_IP);
        let m = support::veth_pair(&router, &topo.switch);
        router.add_address(&m.a, &format!("{MGMT_ROUTER_IP}/24"));
        topo.bridge_port_on(&m.b, "br2");
        topo.router = Some(router);
        topo.add_route("0.0.0.0/0", DATA_ROUTER_IP, "lan");

        for j in 1..=real_servers {
            let rs = topo.add_real_server(j, &rs_ip(j), DATA_ROUTER_IP);
            if method == Method::Nat {
                route_replies_by_node(&rs, planned);
            } else {
                hold_cluster_vip(&rs);
            }
            topo.real_servers.push(rs);
        }
        if real_servers > 0 {
            topo.start_http();
        }

        let mut cluster = ClusterTopology {
            router_bird: None,
            node_birds: Vec::new(),
            nodes: Vec::new(),
            planned,
            topo,
        };
        cluster.start_router_bird();
        for _ in 0..nodes {
            cluster.add_node();
        }
        eprintln!(
            "cluster: router {} clients {} switch {} nodes {} real servers {}, built in {:.1} s",
            cluster.router().name(),
            cluster.topo.client.name(),
            cluster.topo.switch.name(),
            cluster
                .nodes
                .iter()
                .map(|n| format!("{}={}", n.index, n.ns.name()))
                .collect::<Vec<_>>()
                .join(" "),
            cluster
                .topo
                .real_servers
                .iter()
                .map(|r| format!("{}={}", r.name, r.ns.name()))
                .collect::<Vec<_>>()
                .join(" "),
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    /// The router's namespace.
    pub fn router(&self) -> &Netns {
        self.topo.router.as_ref().expect("the cluster has a router")
    }

    /// Node `i` (1-based).
    pub fn node(&self, i: usize) -> &ClusterNode {
        &self.nodes[i - 1]
    }

    /// Node `i`'s bird2.
    pub fn bird(&self, i: usize) -> &Bird {
        self.node_birds[i - 1]
            .as_ref()
            .unwrap_or_else(|| panic!("node {i}'s bird2 is not running"))
    }

    /// The router's bird2.
    pub fn router_bird(&self) -> &Bird {
        self.router_bird.as_ref().expect("the router's bird2 runs")
    }

    /// Adds the next node (its namespace, data and management links, the
    /// route for health checks) and starts its bird2, whose BGP session
    /// to the router comes up by itself (not awaited). Returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len() + 1;
        assert!(
            i <= self.planned,
            "node {i} beyond the {} planned",
            self.planned
        );
        let ns = quiet_netns();
        let data = support::veth_pair(&ns, &self.topo.switch);
        self.topo.bridge_port(&data.b);
        let mgmt = support::veth_pair(&ns, &self.topo.switch);
        self.topo.bridge_port_on(&mgmt.b, "br2");
        let mgmt_ip = node_mgmt_ip(i);
        ns.add_address(&mgmt.a, &format!("{mgmt_ip}/24"));
        // Health checks leave from the kernel: to the data LAN through the
        // router.
        ns.run_ok(
            "ip",
            &["route", "add", "10.0.0.0/24", "via", MGMT_ROUTER_IP],
            CMD,
        );
        let dir = self.topo.dir.join(&format!("node{i}"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        self.nodes.push(ClusterNode {
            index: i,
            ns,
            data_dev: data.a,
            mgmt_dev: mgmt.a,
            mgmt_switch_dev: mgmt.b,
            data_ip: node_data_ip(i),
            mgmt_ip,
            mac: node_mac(i),
            dir,
        });
        self.start_node_bird(i);
        i
    }

    // ------------------------------------------------------- bird2 configs

    /// `dpdk-config/bird-router.conf`, logging to a file.
    pub fn router_bird_conf(&self) -> String {
        let text = read_repo_file(BIRD_ROUTER_CONF);
        let log = self.topo.dir.join("bird-router.log");
        replace_once(
            &text,
            "log syslog all;",
            &format!("log \"{}\" all;", path_str(&log)),
            BIRD_ROUTER_CONF,
        )
    }

    /// `dpdk-config/bird-node.conf` for node `i`: its router id, session
    /// address and next hop, the include file in its directory, its log.
    pub fn node_bird_conf(&self, i: usize) -> String {
        let node = self.node(i);
        let what = BIRD_NODE_CONF;
        let log = node.dir.join("bird.log");
        let include = path_str(&node.include());
        let glob = format!("{}con[f]", include.trim_end_matches("conf"));
        let edits = [
            (
                "log syslog all;",
                format!("log \"{}\" all;", path_str(&log)),
            ),
            (
                "router id 192.168.100.1;",
                format!("router id {};", node.mgmt_ip),
            ),
            (
                "local 192.168.100.1 as 65001;",
                format!("local {} as 65001;", node.mgmt_ip),
            ),
            (
                "next hop address 10.0.0.11;",
                format!("next hop address {};", node.data_ip),
            ),
            ("\"/run/rvs/bird-vips.con[f]\"", format!("\"{glob}\"")),
        ];
        edits.iter().fold(read_repo_file(what), |t, (from, to)| {
            replace_once(&t, from, to, what)
        })
    }

    fn start_router_bird(&mut self) {
        let text = self.router_bird_conf();
        let bird = Bird::start(self.router(), self.topo.dir.path(), "bird-router", &text);
        self.router_bird = Some(bird);
    }

    /// Starts node `i`'s bird2 (again, after [`ClusterTopology::stop_node_bird`]).
    pub fn start_node_bird(&mut self, i: usize) {
        let text = self.node_bird_conf(i);
        let node = self.node(i);
        let bird = Bird::start(&node.ns, &node.dir, "bird", &text);
        if self.node_birds.len() < i {
            self.node_birds.resize_with(i, || None);
        }
        self.node_birds[i - 1] = Some(bird);
    }

    /// Stops node `i`'s bird2.
    pub fn stop_node_bird(&mut self, i: usize) {
        self.node_birds[i - 1] = None;
    }

    /// Waits until node `i`'s BGP session with the router is established.
    pub fn wait_session(&self, i: usize, timeout: Duration) -> Duration {
        self.bird(i).wait_established(1, timeout)
    }

    // ------------------------------------------- the stand-in announcer

    /// What rvsd's announcer does, by hand (the BGP half's test, before
    /// rvsd announces): [`ClusterTopology::create_liveness`], then
    /// [`ClusterTopology::standin_announce_file_only`].
    pub fn standin_announce(&self, i: usize, vips: &[&str]) {
        self.create_liveness(i);
        self.standin_announce_file_only(i, vips);
    }

    /// Creates node `i`'s liveness TUN interface (persistent, up), as rvsd
    /// does at start.
    pub fn create_liveness(&self, i: usize) {
        let node = self.node(i);
        node.ns.run_ok(
            "ip",
            &["tuntap", "add", "dev", LIVENESS_DEV, "mode", "tun"],
            CMD,
        );
        node.ns.link_up(LIVENESS_DEV);
    }

    /// Writes node `i`'s include file with `vips` (`route VIP/32 via
    /// "rvs-live";`) and asks its bird2 to reconfigure, as rvsd does.
    pub fn standin_announce_file_only(&self, i: usize, vips: &[&str]) {
        let mut t = String::new();
        for vip in vips {
            let _ = writeln!(t, "route {vip}/32 via \"{LIVENESS_DEV}\";");
        }
        write_file(&self.node(i).include(), t.as_bytes());
        self.bird(i).configure();
    }

    /// Deletes node `i`'s liveness interface (what the kernel does when
    /// rvsd dies); the time just before.
    pub fn delete_liveness(&self, i: usize) -> Instant {
        let at = Instant::now();
        self.node(i)
            .ns
            .run_ok("ip", &["link", "del", LIVENESS_DEV], CMD);
        at
    }

    /// True when node `i` has its liveness interface (rvsd alive).
    pub fn has_liveness(&self, i: usize) -> bool {
        self.node(i)
            .ns
            .run("ip", &["link", "show", "dev", LIVENESS_DEV], CMD)
            .success()
    }

    // -------------------------------------------------- the router's route

    /// The next hops of the router's kernel route to `vip`/32, sorted
    /// (empty when there is none): one for a single path, several for a
    /// multipath route.
    pub fn next_hops(&self, vip: &str) -> Vec<String> {
        let out = self
            .router()
            .run_ok("ip", &["-j", "route", "show", &format!("{vip}/32")], CMD);
        parse_next_hops(&out.stdout)
    }

    /// The router's whole route to `vip` as `ip route` prints it, for
    /// messages.
    pub fn route_text(&self, vip: &str) -> String {
        self.router()
            .run("ip", &["route", "show", &format!("{vip}/32")], CMD)
            .stdout
    }

    /// Polls [`ClusterTopology::next_hops`] (about every 5 ms) until
    /// `done` holds, at most `timeout`; returns the last set and the time
    /// since `from`, or `None` for the time when it never held.
    pub fn wait_next_hops(
        &self,
        vip: &str,
        from: Instant,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> (Vec<String>, Option<Duration>) {
        let deadline = Instant::now() + timeout;
        loop {
            let hops = self.next_hops(vip);
            if done(&hops) {
                return (hops, Some(from.elapsed()));
            }
            if Instant::now() >= deadline {
                return (hops, None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`ClusterTopology::wait_next_hops`] until the set is exactly the
    /// data addresses of `nodes`; panics with the route and bird's logs
    /// otherwise. The time since `from`.
    pub fn expect_next_hops(
        &self,
        vip: &str,
        nodes: &[usize],
        from: Instant,
        timeout: Duration,
    ) -> Duration {
        let mut want: Vec<String> = nodes.iter().map(|&i| node_data_ip(i)).collect();
        want.sort();
        let (hops, took) = self.wait_next_hops(vip, from, timeout, |h| h == want.as_slice());
        took.unwrap_or_else(|| {
            panic!(
                "the router's route to {vip} has next hops {hops:?}, not {want:?}, after \
                 {timeout:?}\n{}\n--- router bird ---\n{:?}\n{}",
                self.route_text(vip),
                self.router_bird().bgp_protocols(),
                self.router_bird().logs()
            )
        })
    }

    // ---------------------------------------------------------- rvsd

    /// Node `i`'s rvsd config: one `lan` port on its data veth (its data
    /// address and MAC), a default route via the router, `services`, and
    /// a `[cluster]` section naming every other planned node as a peer,
    /// bird's socket and include files in the node's directory, then
    /// `extra_cluster` (more `[cluster]` keys, one per line).
    pub fn rvsd_config(
        &self,
        i: usize,
        workers: usize,
        services: &[Service],
        extra_cluster: &str,
    ) -> String {
        let node = self.node(i);
        let ports = [RvsdPort::new(
            "lan",
            &node.data_dev,
            &node.data_ip,
            &node.mac,
        )];
        let mut t = self
            .topo
            .rvsd_config_for(&ports, &node.socket(), workers, services);
        let q = support::toml_str;
        let peers: Vec<String> = (1..=self.planned)
            .filter(|&k| k != i)
            .map(|k| q(&format!("{}:{CLUSTER_SYNC_PORT}", node_mgmt_ip(k))))
            .collect();
        let bird = self.bird(i);
        let _ = writeln!(t, "\n[cluster]");
        let _ = writeln!(t, "node_id = {i}");
        let _ = writeln!(t, "sync_listen = {}", q(&node.sync_addr()));
        let _ = writeln!(t, "peers = [{}]", peers.join(", "));
        let _ = writeln!(t, "bird_socket = {}", q(&path_str(&bird.socket)));
        let _ = writeln!(t, "bird_include = {}", q(&path_str(&node.include())));
        let _ = writeln!(t, "bird_include6 = {}", q(&path_str(&node.include6())));
        let _ = writeln!(t, "liveness_interface = {}", q(LIVENESS_DEV));
        t.push_str(extra_cluster);
        t
    }

    /// Node `i`'s rvsd config without `[cluster]`: an independent balancer
    /// (no sync, no announcing), the baseline the cluster is measured
    /// against (announce with [`ClusterTopology::standin_announce`]).
    pub fn rvsd_config_alone(&self, i: usize, workers: usize, services: &[Service]) -> String {
        let node = self.node(i);
        let ports = [RvsdPort::new(
            "lan",
            &node.data_dev,
            &node.data_ip,
            &node.mac,
        )];
        self.topo
            .rvsd_config_for(&ports, &node.socket(), workers, services)
    }

    /// Starts node `i`'s rvsd with [`ClusterTopology::rvsd_config_alone`].
    pub fn start_rvsd_alone(&self, i: usize, workers: usize, services: &[Service]) -> Rvsd {
        let text = self.rvsd_config_alone(i, workers, services);
        let path = self.node(i).dir.join("rvsd.toml");
        write_file(&path, text.as_bytes());
        start_checked_rvsd(&path, &text, &self.node(i).ns)
    }

    /// Writes node `i`'s config, checks it, starts its rvsd in the node's
    /// namespace and waits until it is ready with its socket bound.
    pub fn start_rvsd(
        &self,
        i: usize,
        workers: usize,
        services: &[Service],
        extra_cluster: &str,
    ) -> Rvsd {
        let text = self.rvsd_config(i, workers, services, extra_cluster);
        let path = self.node(i).dir.join("rvsd.toml");
        write_file(&path, text.as_bytes());
        start_checked_rvsd(&path, &text, &self.node(i).ns)
    }

    /// `rvsadm --socket <node i's> ARGS`, whatever its outcome.
    pub fn rvsadm(&self, i: usize, args: &[&str]) -> CmdOutput {
        super::rvsadm_at(&self.node(i).socket(), args)
    }

    /// `rvsadm --json ARGS` on node `i`, parsed; `None` when it fails.
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
                "rvsadm {args:?} on node {i} failed: {}",
                self.rvsadm(i, args)
            )
        })
    }

    // -------------------------------------------------------- clients

    /// Holds `n` HTTP/1.1 keep-alive connections to the VIP from the
    /// clients' addresses in turn, one request each
    /// (`tests/netns/cluster_clients.py hold`); [`IdleConns::ask_again`]
    /// asks once more on each.
    pub fn start_held(&self, n: usize) -> IdleConns {
        let token = support::unique_token();
        let log = self.topo.dir.join(&format!("held-{token}.log"));
        let trigger = self.topo.dir.join(&format!("held-{token}.go"));
        let mut cmd = self.topo.client.command("python3");
        cmd.args([
            "-u",
            &clients_script(),
            "hold",
            CLUSTER_VIP,
            &n.to_string(),
            &path_str(&trigger),
            &client_sources().join(","),
        ]);
        let child = spawn_logged(&mut cmd, &log, "cluster_clients.py hold");
        IdleConns::opened(child, log, trigger, n, "cluster_clients.py")
    }

    /// A load of new connections to the VIP from the clients' addresses
    /// in turn (`cluster_clients.py load`): `threads` loops, one request
    /// every `interval` each, each given `timeout`; until stopped, after
    /// `max_run`, or after `max_requests` in all (0: no limit).
    pub fn start_load(
        &self,
        threads: u32,
        interval: Duration,
        timeout: Duration,
        max_run: Duration,
        max_requests: usize,
    ) -> ClientLoad {
        let token = support::unique_token();
        let out = self.topo.dir.join(&format!("load-{token}.jsonl"));
        let stop_file = self.topo.dir.join(&format!("load-{token}.stop"));
        let log = self.topo.dir.join(&format!("load-{token}.log"));
        let mut cmd = self.topo.client.command("python3");
        cmd.args([
            "-u",
            &clients_script(),
            "load",
            CLUSTER_VIP,
            &client_sources().join(","),
            &threads.to_string(),
            &interval.as_secs_f64().to_string(),
            &timeout.as_secs_f64().to_string(),
            &path_str(&stop_file),
            &path_str(&out),
            &max_run.as_secs_f64().to_string(),
            &max_requests.to_string(),
        ]);
        let child = spawn_logged(&mut cmd, &log, "cluster_clients.py load");
        ClientLoad {
            child: Some(child),
            out,
            stop_file,
            log,
            timeout,
        }
    }
}

/// DR: real server `rs` holds the cluster's VIP on lo, never answering ARP
/// for it.
fn hold_cluster_vip(rs: &RealServer) {
    sysctls(
        &rs.ns,
        &[
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            &format!("net.ipv4.conf.{}.arp_ignore=1", rs.dev),
            &format!("net.ipv4.conf.{}.arp_announce=2", rs.dev),
        ],
    );
    rs.ns.add_address("lo", &format!("{CLUSTER_VIP}/32"));
}

/// NAT: real server `rs` marks each connection with the index of the node
/// whose MAC delivered its last inbound packet (every packet, so a
/// connection the router moves to another node follows it), and routes
/// its replies by that mark to the node's data address (`ip rule fwmark i
/// lookup 100+i`); unmarked traffic (health checks from the nodes'
/// kernels, through the router) takes the main table. For `planned` nodes.
fn route_replies_by_node(rs: &RealServer, planned: usize) {
    let mut rules = String::from(
        "table ip rvs {\n\
         \x20 chain pre {\n\
         \x20   type filter hook prerouting priority -150; policy accept;\n",
    );
    for i in 1..=planned {
        let _ = writeln!(rules, "    ether saddr {} ct mark set {i}", node_mac(i));
    }
    rules.push_str(
        "  }\n\
         \x20 chain out {\n\
         \x20   type route hook output priority -150; policy accept;\n\
         \x20   ct mark != 0 meta mark set ct mark\n\
         \x20 }\n\
         }\n",
    );
    let path = rs.dir.join("nat-replies.nft");
    write_file(&path, rules.as_bytes());
    rs.ns.run_ok("nft", &["-f", &path_str(&path)], CMD);
    for i in 1..=planned {
        let table = (100 + i).to_string();
        rs.ns.run_ok(
            "ip",
            &["rule", "add", "fwmark", &i.to_string(), "lookup", &table],
            CMD,
        );
        rs.ns.run_ok(
            "ip",
            &[
                "route",
                "add",
                "default",
                "via",
                &node_data_ip(i),
                "dev",
                &rs.dev,
                "table",
                &table,
            ],
            CMD,
        );
    }
}

fn clients_script() -> String {
    path_str(&support::repo_root().join("tests/netns/cluster_clients.py"))
}

fn read_repo_file(rel: &str) -> String {
    let p = support::repo_root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// The gateways of `ip -j route show PREFIX`'s output: a single-path
/// route's `gateway`, or each of a multipath route's `nexthops`; sorted.
pub fn parse_next_hops(json: &str) -> Vec<String> {
    let v: serde_json::Value = match serde_json::from_str(json.trim()) {
        Ok(v) => v,
        Err(_) if json.trim().is_empty() => return Vec::new(),
        Err(e) => panic!("`ip -j route` printed no JSON ({e}): {json}"),
    };
    let mut hops = Vec::new();
    for route in v.as_array().into_iter().flatten() {
        if let Some(gw) = route["gateway"].as_str() {
            hops.push(gw.to_string());
        }
        for nh in route["nexthops"].as_array().into_iter().flatten() {
            if let Some(gw) = nh["gateway"].as_str() {
                hops.push(gw.to_string());
            }
        }
    }
    hops.sort();
    hops
}

/// Waits (at most `timeout`) for a load started with `max_requests` to
/// finish them by itself, and returns every request; panics when it does
/// not end in time.
pub fn finish_load(mut load: ClientLoad, timeout: Duration) -> Vec<LoadRequest> {
    if let Some(mut child) = load.child.take() {
        match wait_timeout(&mut child, timeout) {
            Some(status) => assert!(
                status.success(),
                "the load client exited with {status}: {}",
                load.log_text()
            ),
            None => {
                kill_and_reap(&mut child);
                panic!(
                    "the load client did not finish within {timeout:?}: {}",
                    load.log_text()
                );
            }
        }
    }
    load.requests()
}

// ------------------------------------------------------ route monitor

/// `ip -ts monitor route` in the router's namespace, its output in a file:
/// when the kernel's route changed, to the microsecond (polling `ip route`
/// costs a process per look). Killed on drop.
pub struct RouteMonitor {
    child: Child,
    log: PathBuf,
}

/// One change of a route as `ip -ts monitor route` printed it.
#[derive(Clone, Debug)]
pub struct RouteEvent {
    /// Unix seconds (the monitor runs with `TZ=UTC`).
    pub at: f64,
    /// `Deleted ...`: the route (with these gateways) went away.
    pub deleted: bool,
    /// The route's destination as printed (`10.0.100.100`).
    pub dst: String,
    /// Its gateways (`via X`, one per next hop).
    pub gateways: Vec<String>,
}

impl ClusterTopology {
    /// Starts a [`RouteMonitor`] in the router's namespace (and gives it
    /// 200 ms to subscribe).
    pub fn start_route_monitor(&self) -> RouteMonitor {
        let log = self
            .topo
            .dir
            .join(&format!("routes-{}.log", support::unique_token()));
        let mut cmd = self.router().command("ip");
        cmd.env("TZ", "UTC").args(["-ts", "monitor", "route"]);
        let child = spawn_logged(&mut cmd, &log, "ip monitor route");
        std::thread::sleep(Duration::from_millis(200));
        RouteMonitor { child, log }
    }
}

impl RouteMonitor {
    /// Every change printed so far.
    pub fn events(&self) -> Vec<RouteEvent> {
        parse_route_events(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The time of the first change of `dst`'s route at or after `after`
    /// (Unix seconds) that leaves `gateway` out of it (a deletion of a
    /// route through it, or a new route without it), waiting at most
    /// `timeout` for it.
    pub fn wait_lost(
        &self,
        dst: &str,
        gateway: &str,
        after: f64,
        timeout: Duration,
    ) -> Option<f64> {
        self.wait(dst, after, timeout, |e| {
            if e.deleted {
                e.gateways.iter().any(|g| g == gateway)
            } else {
                !e.gateways.iter().any(|g| g == gateway)
            }
        })
    }

    /// The time of the first change of `dst`'s route at or after `after`
    /// that adds a route through `gateway`, waiting at most `timeout`.
    pub fn wait_gained(
        &self,
        dst: &str,
        gateway: &str,
        after: f64,
        timeout: Duration,
    ) -> Option<f64> {
        self.wait(dst, after, timeout, |e| {
            !e.deleted && e.gateways.iter().any(|g| g == gateway)
        })
    }

    /// The time of the first deletion of `dst`'s route at or after `after`.
    pub fn wait_deleted(&self, dst: &str, after: f64, timeout: Duration) -> Option<f64> {
        self.wait(dst, after, timeout, |e| e.deleted)
    }

    fn wait(
        &self,
        dst: &str,
        after: f64,
        timeout: Duration,
        hit: impl Fn(&RouteEvent) -> bool,
    ) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self
                .events()
                .into_iter()
                .find(|e| e.at >= after && e.dst == dst && hit(e))
            {
                return Some(e.at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it printed, for messages.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Parses `ip -ts monitor route` output: a change starts with
/// `[YYYY-MM-DDTHH:MM:SS.ffffff]` (UTC), multipath next hops follow on
/// lines starting with a tab.
pub fn parse_route_events(text: &str) -> Vec<RouteEvent> {
    let mut events: Vec<RouteEvent> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            let Some((stamp, route)) = rest.split_once(']') else {
                continue;
            };
            let Some(at) = parse_utc_stamp(stamp) else {
                continue;
            };
            let mut words = route.split_whitespace().peekable();
            let deleted = words.peek() == Some(&"Deleted");
            if deleted {
                words.next();
            }
            let dst = words.next().unwrap_or_default().to_string();
            let mut e = RouteEvent {
                at,
                deleted,
                dst,
                gateways: Vec::new(),
            };
            e.gateways.extend(gateways_of(route));
            events.push(e);
        } else if line.starts_with('\t') {
            if let Some(e) = events.last_mut() {
                e.gateways.extend(gateways_of(line));
            }
        }
    }
    events
}

fn gateways_of(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect()
}

/// `2026-12-03T22:38:45.682864` (UTC) as Unix seconds.
fn parse_utc_stamp(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from 1970-01-01 to y-m-d (proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 12) } else { (y, m) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m - 3) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3_600 + mm * 60) as f64 + ss)
}
