//! The typed configuration: what `rvsd` runs with, after the file has been
//! parsed and every rule checked.
//!
//! Nothing downstream re-checks a value from here: addresses are
//! `Ipv4Addr`/`Ipv4Cidr`, devices are `Device`, durations are `Duration`,
//! and a route or neighbour names its interface by index into
//! `Config::interfaces`. The TOML text becomes a `Config` only through
//! `Config::load` or `Config::from_toml_str`, which report every problem
//! at once (see `validate`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use super::device::{normalize_pci, Device, ParseDeviceError};
use super::error::{ConfigError, ConfigErrors, Errors};
use super::locate::path_at;
use super::raw::RawConfig;
use super::validate;
pub use crate::lb::client_addr::ClientAddress;
pub use crate::lb::limits::{ServiceLimits, Thresholds};
pub use crate::lb::priority::GroupQuorum;
pub use crate::net::rss::ClientSide;
use crate::wire::cidr::Cidr;
use crate::wire::{Ipv4Cidr, Ipv6Cidr, MacAddr};

/// lcore ids must be below this: DPDK's default `RTE_MAX_LCORE`.
pub const MAX_LCORES: u32 = 128;

/// The whole configuration of an `rvsd` instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `[dpdk]`: the EAL and the worker lcores.
    pub dpdk: DpdkConfig,
    /// `[dataplane]`: how the workers poll and how big their tables are.
    pub dataplane: DataplaneConfig,
    /// `[[interface]]`: the ports, in file order (at least one).
    pub interfaces: Vec<InterfaceConfig>,
    /// `[[route]]`: static IPv4 routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[[route]]`s whose prefix and next hop are IPv6, in file order.
    pub routes6: Vec<RouteConfig<Ipv6Addr>>,
    /// `[[neighbor]]`: static ARP entries, in file order.
    pub neighbors: Vec<NeighborConfig>,
    /// `[[neighbor]]`s with an IPv6 address (static neighbour cache
    /// entries), in file order.
    pub neighbors6: Vec<NeighborConfig<Ipv6Addr>>,
    /// `[control]`: the control socket and the metrics listener.
    pub control: ControlConfig,
    /// `[timeouts]`: how long idle connections live, per state.
    pub timeouts: TimeoutsConfig,
    /// `[[virtual_server]]`: the services, in file order (possibly none).
    pub virtual_servers: Vec<VirtualServerConfig>,
    /// `[ha]`: the active/standby pair this balancer is half of; `None`
    /// (the section absent) runs it standalone, always master, with no
    /// connection sync. Fixed at start.
    pub ha: Option<HaConfig>,
    /// `[cluster]`: this balancer as one node of an active-active cluster
    /// behind ECMP (issue 20); `None` when the section is absent. Never
    /// together with `ha`. Fixed at start.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Reads, parses and validates the file at `path`; every problem
    /// found, not just the first. Only a regular file of at most
    /// `file::MAX_CONFIG_BYTES` (16 MiB) is read.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        // A regular file of at most MAX_CONFIG_BYTES: a FIFO or a device
        // would block or exhaust memory (see `file`).
        let text =
            super::file::read_bounded(path, super::file::MAX_CONFIG_BYTES).map_err(|message| {
                ConfigErrors(vec![ConfigError {
                    field: path.display().to_string(),
                    line: None,
                    message,
                }])
            })?;
        Config::from_toml_str(&text)
    }

    /// Parses and validates configuration text; every problem found, not
    /// just the first. A TOML syntax or type error stops the reading (the
    /// TOML library gives only the first), and is reported with its line
    /// and the key it is about.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            let field = offset.map(|o| path_at(text, o)).unwrap_or_default();
            let message = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            // The TOML library says nothing for some errors (`key =` with
            // no value): still tell the operator what is wrong.
            let message = if message.is_empty() {
                "invalid TOML here (a value missing or malformed)".to_string()
            } else {
                message
            };
            let mut errors = Errors::new(text);
            errors.push(
                if field.is_empty() {
                    "toml".to_string()
                } else {
                    field
                },
                e.span(),
                message,
            );
            errors.into_errors()
        })?;
        let mut errors = Errors::new(text);
        match validate::build(raw, &mut errors) {
            Some(config) if errors.is_empty() => Ok(config),
            _ => {
                if errors.is_empty() {
                    errors.push("config", None, "incomplete configuration (internal error)");
                }
                Err(errors.into_errors())
            }
        }
    }
}

/// `[dpdk]`: how the EAL starts and which lcores run workers.
/// Fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkConfig {
    /// `eal_args`: arguments given to the EAL as they are (without the
    /// program name), e.g. `["-l", "0-2", "--in-memory"]`. rvsd adds the
    /// interfaces' devices itself, so they must not appear here. Default:
    /// empty (the EAL's own defaults). Fixed at start.
    pub eal_args: Vec<String>,
    /// `workers`: the lcores that run poll-mode workers, in file order;
    /// non-empty, unique, each below `MAX_LCORES`, never the EAL main lcore
    /// (the control thread's). Required, no default. Fixed at start.
    pub workers: Vec<u32>,
}

impl DpdkConfig {
    /// Checks `workers` against the EAL that started, which only then
    /// knows its lcores: none may be the `main` lcore (the control thread
    /// runs there) and each must be `enabled` by `eal_args`. The error
    /// names the field and the lcore.
    pub fn check_lcores(&self, main: u32, enabled: impl Fn(u32) -> bool) -> Result<(), String> {
        for &lcore in &self.workers {
            if lcore == main {
                return Err(format!("dpdk.workers: lcore {lcore} is the EAL's main lcore, which runs the control thread"));
            }
            if !enabled(lcore) {
                return Err(format!(
                    "dpdk.workers: lcore {lcore} is not enabled by dpdk.eal_args (add it to -l)"
                ));
            }
        }
        Ok(())
    }
}

/// `[dataplane]`: the workers' polling and table sizes. The whole section
/// may be omitted. Fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// `burst_size`: packets received and sent per call, 1 to
    /// `MAX_BURST_SIZE` (a `u16`, as DPDK's burst calls take). Default
    /// `DEFAULT_BURST_SIZE` (32). Fixed at start.
    pub burst_size: u16,
    /// `conn_table_size`: connections each worker's table holds, 1 to
    /// `MAX_CONN_TABLE_SIZE`; the table is allocated once at start and
    /// never grows. Default `DEFAULT_CONN_TABLE_SIZE` (1048576). Fixed at
    /// start.
    pub conn_table_size: usize,
    /// `idle_sleep_us`: how long a worker sleeps after a poll that found
    /// no packet; zero busy-polls. At most `MAX_IDLE_SLEEP_US`. Default
    /// `DEFAULT_IDLE_SLEEP_US` (0). Fixed at start.
    pub idle_sleep: Duration,
}

impl DataplaneConfig {
    /// Default of `burst_size`: DPDK's customary burst.
    pub const DEFAULT_BURST_SIZE: u16 = 32;
    /// Upper bound of `burst_size`.
    pub const MAX_BURST_SIZE: u16 = 256;
    /// Default of `conn_table_size`: 2^20 connections per worker.
    pub const DEFAULT_CONN_TABLE_SIZE: usize = 1 << 20;
    /// Upper bound of `conn_table_size`: 2^28 connections per worker.
    pub const MAX_CONN_TABLE_SIZE: usize = 1 << 28;
    /// Default of `idle_sleep_us`: busy polling.
    pub const DEFAULT_IDLE_SLEEP_US: u64 = 0;
    /// Upper bound of `idle_sleep_us`: one second.
    pub const MAX_IDLE_SLEEP_US: u64 = 1_000_000;
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            burst_size: Self::DEFAULT_BURST_SIZE,
            conn_table_size: Self::DEFAULT_CONN_TABLE_SIZE,
            idle_sleep: Duration::from_micros(Self::DEFAULT_IDLE_SLEEP_US),
        }
    }
}

/// `[[interface]]`: one port and the addresses the balancer owns on it.
/// Fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// `name`: how routes, neighbours, logs and metrics refer to the port;
    /// 1 to `MAX_NAME_LEN` characters from `[A-Za-z0-9_.-]`, unique.
    /// Required. Fixed at start.
    pub name: String,
    /// `device`: the PCI function or DPDK virtual device behind the port;
    /// unique by port name. Required. Fixed at start.
    pub device: Device,
    /// `addresses`: the balancer's own IPv4 addresses with their connected
    /// subnets; ARP and ICMP echo are answered for them. An address is on
    /// one interface only. Default: none. Fixed at start.
    pub addresses: Vec<Ipv4Cidr>,
    /// The IPv6 entries of `addresses` (written in the same list, e.g.
    /// `"2001:db8:1::1/64"`), kept apart so the IPv4 path is untouched:
    /// neighbour solicitations and ICMPv6 echo are answered for them.
    /// Default: none. Fixed at start.
    pub addresses6: Vec<Ipv6Cidr>,
    /// `mac`: a unicast MAC address to give the port instead of the
    /// device's own (for a stable address across NIC swaps, or tests).
    /// Default: the device's. Fixed at start.
    pub mac: Option<MacAddr>,
    /// `rss`: which address the port's NIC hashes to choose a worker, the
    /// client's on the traffic it receives: `"client-source"` (an outside
    /// port, where clients' packets arrive) or `"client-destination"` (an
    /// inside port, where NAT replies from real servers arrive). Default
    /// (`None`): derived at start, see `startup::client_side`: inside when
    /// a NAT real server or sorry server is routed through the port and no
    /// client is (no VIP on its subnets, no default route through it),
    /// else outside. Fixed at start.
    pub rss: Option<ClientSide>,
}

impl InterfaceConfig {
    /// Longest interface name: short enough for log lines and metric labels.
    pub const MAX_NAME_LEN: usize = 32;

    /// True when `ip` lies in one of this interface's connected subnets.
    pub fn is_connected(&self, ip: Ipv4Addr) -> bool {
        self.addresses.iter().any(|a| a.contains(ip))
    }
}

/// `[[route]]`: a static route, IPv4 (`RouteConfig`) or IPv6
/// (`RouteConfig<Ipv6Addr>`): the prefix and the next hop are of one
/// family. Reloadable (later issue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig<A = Ipv4Addr> {
    /// `prefix`: the destination network, host bits zero; `0.0.0.0/0`
    /// (`::/0`) is the default route. Unique among routes. Required.
    pub prefix: Cidr<A>,
    /// `via`: the next hop, inside a connected subnet of `interface` (an
    /// IPv6 next hop may also be link-local, `fe80::/10`). Required.
    pub via: A,
    /// `interface`: the outgoing interface, as an index into
    /// `Config::interfaces`. Required (by name in the file).
    pub interface: usize,
    /// The interface's name as written, for messages.
    pub interface_name: String,
}

/// `[[neighbor]]`: a static ARP (IPv4) or neighbour cache (IPv6) entry;
/// other neighbours are learned. Reloadable (later issue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig<A = Ipv4Addr> {
    /// `address`: the neighbour's IPv4 or IPv6 address, inside a
    /// connected subnet of `interface` (IPv6: or link-local); unique per
    /// interface. Required.
    pub address: A,
    /// `mac`: its unicast hardware address. Required.
    pub mac: MacAddr,
    /// `interface`: where the neighbour is, as an index into
    /// `Config::interfaces`. Required (by name in the file).
    pub interface: usize,
    /// The interface's name as written, for messages.
    pub interface_name: String,
}

/// `[control]`: how operators and monitoring reach the appliance. The whole
/// section may be omitted. Fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlConfig {
    /// `socket`: the Unix socket `rvsadm` talks to; an absolute path of
    /// at most `MAX_SOCKET_PATH_BYTES`. Default `DEFAULT_SOCKET`. Fixed at
    /// start.
    pub socket: PathBuf,
    /// `metrics_listen`: where Prometheus text metrics are served at
    /// `/metrics`. Default `DEFAULT_METRICS_LISTEN`. Fixed at start.
    pub metrics_listen: SocketAddr,
    /// `socket_group`: a group (name or number) whose members may use the
    /// socket at the read-only level (list, stats, conns, ha status): the
    /// file is then that group's with mode 0660. Default none (0600: root
    /// and rvsd's user only). Fixed at start.
    pub socket_group: Option<String>,
}

impl ControlConfig {
    /// Default of `socket`.
    pub const DEFAULT_SOCKET: &'static str = "/run/rvs/rvsd.sock";
    /// Default of `metrics_listen`: loopback only, port 9469.
    pub const DEFAULT_METRICS_LISTEN: SocketAddr =
        SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9469));
    /// Longest `socket` path in bytes: a Unix socket address holds 108
    /// bytes (`sun_path`), the terminating NUL included.
    pub const MAX_SOCKET_PATH_BYTES: usize = 107;
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(Self::DEFAULT_SOCKET),
            metrics_listen: Self::DEFAULT_METRICS_LISTEN,
            socket_group: None,
        }
    }
}

/// `[timeouts]`: how long a connection may stay idle in each state before
/// its entry expires, as IPVS has them (`ipvsadm --set`). The whole section
/// and each key may be omitted. Fixed at start: a reload names a
/// changed value in its answer and keeps the running one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutsConfig {
    /// `tcp_established_s`: idle time of an established TCP connection,
    /// 1 to `MAX_TIMEOUT_S` seconds. Default `DEFAULT_TCP_ESTABLISHED_S`
    /// (900). Fixed at start (a reload names a change).
    pub tcp_established: Duration,
    /// `tcp_fin_wait_s`: idle time of a TCP connection after a FIN, 1 to
    /// `MAX_TIMEOUT_S` seconds. Default `DEFAULT_TCP_FIN_WAIT_S` (120).
    /// Fixed at start (a reload names a change).
    pub tcp_fin_wait: Duration,
    /// `tcp_time_wait_s`: idle time of a TCP connection in TIME_WAIT, 1 to
    /// `MAX_TIMEOUT_S` seconds. Default `DEFAULT_TCP_TIME_WAIT_S` (120).
    /// Fixed at start (a reload names a change).
    pub tcp_time_wait: Duration,
    /// `tcp_syn_s`: idle time of a TCP connection that has seen a SYN but
    /// no handshake yet, 1 to `MAX_TIMEOUT_S` seconds. Default
    /// `DEFAULT_TCP_SYN_S` (120). Fixed at start (a reload names a change).
    pub tcp_syn: Duration,
    /// `udp_s`: idle time of a UDP flow, 1 to `MAX_TIMEOUT_S` seconds.
    /// Default `DEFAULT_UDP_S` (300). Fixed at start (a reload names a change).
    pub udp: Duration,
    /// `proof_packets`: a DR or TUN connection (whose replies bypass rvs)
    /// is proven, and protected from eviction when the table is full, once
    /// its client has sent this many packets and it is `proof_ms` old; 1
    /// to `MAX_PROOF_PACKETS`. Default `DEFAULT_PROOF_PACKETS` (8): a blind
    /// sender's SYN-then-ACK (2) never proves one. Read at start, as the
    /// rest of the section.
    pub proof_packets: u32,
    /// `proof_ms`: the age, in milliseconds, a DR or TUN connection must
    /// reach before its packets prove it; 0 to `MAX_PROOF_MS`. Default
    /// `DEFAULT_PROOF_MS` (1000). Read at start, as the rest of the
    /// section.
    pub proof: Duration,
}

impl TimeoutsConfig {
    /// Default of `tcp_established_s`: IPVS's 15 minutes.
    pub const DEFAULT_TCP_ESTABLISHED_S: u64 = 900;
    /// Default of `tcp_fin_wait_s`: IPVS's 2 minutes.
    pub const DEFAULT_TCP_FIN_WAIT_S: u64 = 120;
    /// Default of `tcp_time_wait_s`: IPVS's 2 minutes.
    pub const DEFAULT_TCP_TIME_WAIT_S: u64 = 120;
    /// Default of `tcp_syn_s`: IPVS's 2 minutes.
    pub const DEFAULT_TCP_SYN_S: u64 = 120;
    /// Default of `udp_s`: IPVS's 5 minutes.
    pub const DEFAULT_UDP_S: u64 = 300;
    /// Upper bound of every timeout: one week, so connection timers have a
    /// bounded horizon.
    pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;
    /// Default of `proof_packets`.
    pub const DEFAULT_PROOF_PACKETS: u32 = crate::lb::tcp_state::DEFAULT_PROOF_PACKETS;
    /// Upper bound of `proof_packets`.
    pub const MAX_PROOF_PACKETS: u32 = 1_000_000;
    /// Default of `proof_ms`.
    pub const DEFAULT_PROOF_MS: u32 = crate::lb::tcp_state::DEFAULT_PROOF_MS;
    /// Upper bound of `proof_ms`: ten minutes (an unproven connection is
    /// evictable all that time).
    pub const MAX_PROOF_MS: u32 = 600_000;
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            tcp_established: Duration::from_secs(Self::DEFAULT_TCP_ESTABLISHED_S),
            tcp_fin_wait: Duration::from_secs(Self::DEFAULT_TCP_FIN_WAIT_S),
            tcp_time_wait: Duration::from_secs(Self::DEFAULT_TCP_TIME_WAIT_S),
            tcp_syn: Duration::from_secs(Self::DEFAULT_TCP_SYN_S),
            udp: Duration::from_secs(Self::DEFAULT_UDP_S),
            proof_packets: Self::DEFAULT_PROOF_PACKETS,
            proof: Duration::from_millis(u64::from(Self::DEFAULT_PROOF_MS)),
        }
    }
}

use crate::lb::kind::keyword;
pub use crate::lb::kind::{ForwardMethod, ParseKeywordError, Protocol, SchedulerKind};

/// `[ha]`: this balancer as one half of an active/standby pair. keepalived
/// (VRRP on the management link) decides which half is master and tells
/// rvsd with `rvsadm ha master|backup`; the master answers ARP for the VIPs
/// and `floating_addresses`, sends gratuitous ARPs when it becomes master,
/// and sends its connections to the peer, which installs them so that a
/// takeover keeps them on the same real servers.
///
/// The section may be omitted (standalone). Every field is fixed at start:
/// a reload does not change HA settings; restart rvsd (its peer keeps
/// forwarding meanwhile) to apply new ones.
///
/// The two files of a pair must agree, which one file cannot check: the
/// `node_id`s differ, each one's `sync_peer` is the other's `sync_listen`,
/// and the `floating_addresses` and virtual servers are the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaConfig {
    /// `node_id`: this balancer's id in the sync datagrams it sends, 1 to
    /// `u32::MAX`; a receiver drops datagrams carrying its own id. The two
    /// balancers of a pair need different ids. Required. Fixed at start.
    pub node_id: u32,
    /// `initial_state`: `"backup"` or `"master"`, the role until keepalived
    /// says otherwise. Default `DEFAULT_INITIAL_STATE` (backup): keepalived
    /// decides, and a balancer that starts as master by mistake would
    /// answer ARP for the VIPs alongside the real master. Fixed at start.
    pub initial_state: HaState,
    /// `sync_listen`: the management address and UDP port rvsd receives
    /// the peer's sync datagrams on, `"192.168.100.1:8848"` (the kernel's
    /// network stack, not a DPDK port). A unicast IPv4 address (not
    /// 0.0.0.0, broadcast or multicast), port not 0. Required. Fixed at
    /// start.
    pub sync_listen: SocketAddrV4,
    /// `sync_peer`: where sync datagrams are sent: the peer's
    /// `sync_listen`, `"192.168.100.2:8848"`. The same rules as
    /// `sync_listen`, and not equal to it. Required. Fixed at start.
    pub sync_peer: SocketAddrV4,
    /// `floating_addresses`: own interface addresses that move with the
    /// VIPs, `["10.1.0.1/24"]`: only the master answers ARP and ICMP echo
    /// for them, and it sends gratuitous ARPs for them on becoming master.
    /// The typical one is NAT's inside gateway address, which the real
    /// servers route their replies through. Each must be written exactly as
    /// one of the `[[interface]] addresses` (address and prefix length), at
    /// most once. Default: none. Fixed at start.
    pub floating_addresses: Vec<Ipv4Cidr>,
    /// `garp_count`: gratuitous ARPs sent for every VIP and floating
    /// address on becoming master (keepalived's `garp_master_repeat`), 1 to
    /// `MAX_GARP_COUNT`. Default `DEFAULT_GARP_COUNT` (5). Fixed at start.
    pub garp_count: u32,
    /// `garp_interval_ms`: the time between two rounds of gratuitous ARPs
    /// (keepalived's `garp_interval`), `MIN_GARP_INTERVAL_MS` to
    /// `MAX_GARP_INTERVAL_MS`. Default `DEFAULT_GARP_INTERVAL_MS` (200).
    /// Fixed at start.
    pub garp_interval: Duration,
    /// `sync_interval_ms`: how often the master sends a batch of
    /// connection changes to the peer (a datagram is also sent as soon as
    /// it is full), 1 to `MAX_SYNC_INTERVAL_MS`. Default
    /// `DEFAULT_SYNC_INTERVAL_MS` (5). Fixed at start.
    pub sync_interval: Duration,
    /// `sync_key_file`: a file holding the pair's shared secret (the same
    /// on both balancers), which authenticates every sync datagram with a
    /// MAC and a replay-checked sequence number (`docs/sync-protocol.md`).
    /// A regular file of mode 600 or stricter whose content, trimmed of
    /// whitespace, is at least `ha::key::MIN_KEY_LEN` (16) bytes: generate
    /// it with `openssl rand -hex 32`. Default: none, and sync trusts the
    /// management network (a warning at start). Fixed at start.
    pub sync_key_file: Option<std::path::PathBuf>,
    /// The key read from `sync_key_file` at validation.
    pub sync_key: Option<crate::ha::key::SyncKey>,
}

impl HaConfig {
    /// Default of `initial_state`: keepalived decides.
    pub const DEFAULT_INITIAL_STATE: HaState = HaState::Backup;
    /// The sync port the examples use (`sync_listen` and `sync_peer` have
    /// no default: both are written out).
    pub const CUSTOMARY_SYNC_PORT: u16 = 8848;
    /// Default of `garp_count`: keepalived's `garp_master_repeat` is 5.
    pub const DEFAULT_GARP_COUNT: u32 = 5;
    /// Upper bound of `garp_count`.
    pub const MAX_GARP_COUNT: u32 = 100;
    /// Default of `garp_interval_ms`.
    pub const DEFAULT_GARP_INTERVAL_MS: u64 = 200;
    /// Lower bound of `garp_interval_ms`.
    pub const MIN_GARP_INTERVAL_MS: u64 = 10;
    /// Upper bound of `garp_interval_ms`: ten seconds.
    pub const MAX_GARP_INTERVAL_MS: u64 = 10_000;
    /// Default of `sync_interval_ms`: a batch every 5 ms.
    pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 5;
    /// Upper bound of `sync_interval_ms`: one second.
    pub const MAX_SYNC_INTERVAL_MS: u64 = 1000;

    /// True when this balancer starts as master.
    pub fn starts_as_master(&self) -> bool {
        self.initial_state == HaState::Master
    }

    /// The floating addresses without their prefix lengths, as the
    /// workers compare them.
    pub fn floating_ips(&self) -> Vec<Ipv4Addr> {
        self.floating_addresses.iter().map(|a| a.addr()).collect()
    }
}

/// `[cluster]`: this balancer as one node of an active-active cluster:
/// a router spreads the VIPs' traffic over every node by ECMP (routes
/// announced over BGP by each node's bird2), and every node syncs its
/// connections with every other over UDP on the management network, so
/// a flow that ECMP moves to another node keeps its real server. Every
/// node is *active*: it forwards, sends its own connections' events to
/// every peer, and installs every peer's. Exclusive with `[ha]`. Every
/// field is fixed at start.
///
/// The files of a cluster must agree, which one file cannot check: the
/// `node_id`s differ, each node's `peers` are the others' `sync_listen`,
/// the virtual servers are the same, and all name the same key (or none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `node_id`: this node's id in sync datagrams, 1 to `u32::MAX`,
    /// unique in the cluster. Required.
    pub node_id: u32,
    /// `sync_listen`: the management address and UDP port this node
    /// receives sync on (as `[ha] sync_listen`). Required.
    pub sync_listen: SocketAddrV4,
    /// `peers`: every other node's `sync_listen`, 1 to `MAX_PEERS`,
    /// unique, none equal to `sync_listen`. Required.
    pub peers: Vec<SocketAddrV4>,
    /// `sync_interval_ms`: how often a batch of connection changes goes
    /// to every peer, 1 to `HaConfig::MAX_SYNC_INTERVAL_MS`. Default
    /// `HaConfig::DEFAULT_SYNC_INTERVAL_MS` (5).
    pub sync_interval: Duration,
    /// `sync_key_file`: the cluster's shared secret (one key for every
    /// node), as `[ha] sync_key_file`. Default: none (a warning at start).
    pub sync_key_file: Option<std::path::PathBuf>,
    /// The key read from `sync_key_file` at validation.
    pub sync_key: Option<crate::ha::key::SyncKey>,
    /// `join_timeout_ms`: a starting node asks every peer for a full dump
    /// and has *joined* (may announce) when every peer said done or this
    /// time passed, `MIN_JOIN_TIMEOUT_MS` to `MAX_JOIN_TIMEOUT_MS`.
    /// Default `DEFAULT_JOIN_TIMEOUT_MS` (3000).
    pub join_timeout: Duration,
    /// `announce`: tell bird2 which VIPs to announce (false: sync only).
    /// Default true.
    pub announce: bool,
    /// `bird_socket`: bird2's control socket. Default
    /// `DEFAULT_BIRD_SOCKET`.
    pub bird_socket: std::path::PathBuf,
    /// `bird_include`: the file rvsd writes with one static route per
    /// announced IPv4 VIP, which the node's bird.conf includes. Default
    /// `DEFAULT_BIRD_INCLUDE`.
    pub bird_include: std::path::PathBuf,
    /// `bird_include6`: the same for IPv6 VIPs. Default
    /// `DEFAULT_BIRD_INCLUDE6`; not the same file as `bird_include`.
    pub bird_include6: std::path::PathBuf,
    /// `liveness_interface`: the TUN interface rvsd holds open while it
    /// forwards (the static routes go via it), 1 to
    /// `MAX_INTERFACE_NAME` characters. Default
    /// `DEFAULT_LIVENESS_INTERFACE`.
    pub liveness_interface: String,
}

impl ClusterConfig {
    /// Upper bound of `peers`: a cluster of 32 nodes.
    pub const MAX_PEERS: usize = 31;
    /// Default of `join_timeout_ms`.
    pub const DEFAULT_JOIN_TIMEOUT_MS: u64 = 3000;
    /// Lower bound of `join_timeout_ms`.
    pub const MIN_JOIN_TIMEOUT_MS: u64 = 100;
    /// Upper bound of `join_timeout_ms`: a minute.
    pub const MAX_JOIN_TIMEOUT_MS: u64 = 60_000;
    /// Default of `bird_socket`: bird2's usual control socket.
    pub const DEFAULT_BIRD_SOCKET: &'static str = "/run/bird/bird.ctl";
    /// Default of `bird_include`.
    pub const DEFAULT_BIRD_INCLUDE: &'static str = "/run/rvs/bird-vips.conf";
    /// Default of `bird_include6`.
    pub const DEFAULT_BIRD_INCLUDE6: &'static str = "/run/rvs/bird-vips6.conf";
    /// Default of `liveness_interface`.
    pub const DEFAULT_LIVENESS_INTERFACE: &'static str = "rvs-live";
    /// The longest interface name Linux takes (IFNAMSIZ less the NUL).
    pub const MAX_INTERFACE_NAME: usize = 15;
}

/// The role of a balancer in an HA pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HaState {
    /// `"master"`: answers ARP for the VIPs and floating addresses,
    /// forwards, and sends its connections to the peer.
    Master,
    /// `"backup"`: stays silent for the VIPs and floating addresses and
    /// installs the connections the master sends.
    Backup,
}

impl HaState {
    /// Every state, in the order messages list them.
    pub const ALL: [HaState; 2] = [HaState::Backup, HaState::Master];

    /// The name used in the file and by `rvsadm ha`.
    pub fn name(self) -> &'static str {
        match self {
            HaState::Master => "master",
            HaState::Backup => "backup",
        }
    }
}

impl FromStr for HaState {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for HaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How real servers are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthCheckKind {
    /// `"tcp"`: a TCP connection to the real server's address and port.
    Tcp,
    /// `"http"`: an HTTP `GET http_path` that must answer
    /// `http_expect_status`.
    Http,
    /// `"none"`: no probing; every real server counts as up.
    None,
    /// `"udp"`: a datagram (`udp_payload`) to the real server's address
    /// and port; down on an ICMP port unreachable, and without a reply
    /// containing `udp_expect` when that is set.
    Udp,
    /// `"dns"`: a query for `dns_name` of type `dns_type` over UDP to the
    /// real server's address and port, whose answer must carry
    /// `dns_expect_rcode` (and a record when `dns_expect_answer`).
    Dns,
    /// `"icmp"`: an ICMP echo request to the real server's address (its
    /// port unused), answered by an echo reply.
    Icmp,
    /// `"script"`: runs the `script` command (keepalived's MISC_CHECK):
    /// exit 0 is up, 1 down, and with `script_dynamic_weight` 2 to 255 up
    /// with weight `exit - 2`.
    Script,
    /// `"tls"`: a TLS handshake (TLS 1.2 or 1.3) with the real server,
    /// with the `tls_*` settings.
    Tls,
    /// `"https"`: the `http` check over TLS (the `tls_*` settings, then
    /// `GET http_path`).
    Https,
}

impl HealthCheckKind {
    /// Every kind, in the order messages list them.
    pub const ALL: [HealthCheckKind; 9] = [
        HealthCheckKind::Tcp,
        HealthCheckKind::Http,
        HealthCheckKind::None,
        HealthCheckKind::Udp,
        HealthCheckKind::Dns,
        HealthCheckKind::Icmp,
        HealthCheckKind::Script,
        HealthCheckKind::Tls,
        HealthCheckKind::Https,
    ];

    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Http => "http",
            HealthCheckKind::None => "none",
            HealthCheckKind::Udp => "udp",
            HealthCheckKind::Dns => "dns",
            HealthCheckKind::Icmp => "icmp",
            HealthCheckKind::Script => "script",
            HealthCheckKind::Tls => "tls",
            HealthCheckKind::Https => "https",
        }
    }

    /// Whether the check sends an HTTP request (`http`, `https`): the
    /// kinds that use `http_path`, `http_expect_status` and
    /// `http_expect_body`.
    pub fn is_http(self) -> bool {
        matches!(self, HealthCheckKind::Http | HealthCheckKind::Https)
    }

    /// Whether the check speaks TLS (`tls`, `https`): the kinds that use
    /// the `tls_*` settings.
    pub fn is_tls(self) -> bool {
        matches!(self, HealthCheckKind::Tls | HealthCheckKind::Https)
    }
}

impl FromStr for HealthCheckKind {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for HealthCheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[[virtual_server]]`: a service (VIP, port and protocol) and the real
/// servers it balances over. Virtual servers can be added and removed by a
/// reload; a changed `address` or `protocol` is a removal plus an addition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServerConfig {
    /// `name`: how `rvsadm`, logs and metrics refer to the service; 1 to
    /// `MAX_NAME_LEN` characters from `[A-Za-z0-9_.-]`, unique. Required.
    /// Reloadable.
    pub name: String,
    /// `address`: the VIP and port, `"10.0.0.100:80"`, or an IPv6 VIP
    /// `"[2001:db8::10]:80"`. The port is not 0; the address is not
    /// 0.0.0.0, broadcast, multicast, or one of the balancer's own
    /// interface addresses (whose ARP and ICMP it would shadow); an IPv6
    /// one is not unspecified, loopback or multicast. Its real servers and
    /// sorry server are of its family. Unique together with `protocol`.
    /// Required. Reloadable, as the removal of one service and the
    /// addition of another.
    pub address: SocketAddr,
    /// `protocol`: `"tcp"` or `"udp"`. Default `DEFAULT_PROTOCOL` (tcp).
    /// Reloadable, as for `address`.
    pub protocol: Protocol,
    /// `scheduler`: `"rr"`, `"wrr"`, `"lc"`, `"wlc"`, `"sed"`, `"nq"`,
    /// `"sh"` or `"mh"`. Default `DEFAULT_SCHEDULER` (wlc, as `ipvsadm`).
    /// Reloadable.
    pub scheduler: SchedulerKind,
    /// `forward`: `"nat"`, `"dr"`, `"tun"` or `"fullnat"` (which needs
    /// `local_addresses`). Required: `ipvsadm` defaults to DR and keepalived to
    /// NAT, and each needs a different network around it, so the file says
    /// which. Reloadable (new connections).
    pub forward: ForwardMethod,
    /// `persistence_timeout_s`: like `ipvsadm -p`, how long a client keeps
    /// going to the same real server after its last connection, 0 to
    /// `MAX_PERSISTENCE_TIMEOUT_S` seconds; 0 (`None`) is off. Default
    /// `DEFAULT_PERSISTENCE_TIMEOUT_S` (off). Reloadable.
    pub persistence_timeout: Option<Duration>,
    /// `mh_table_size`: entries of the Maglev lookup table, a prime from
    /// `MIN_MH_TABLE_SIZE` to `MAX_MH_TABLE_SIZE`, and at least
    /// `MH_ENTRIES_PER_REAL_SERVER` times the number of real servers (the
    /// Maglev paper's M >> N, which keeps the shares within about 1%). Only
    /// `scheduler = "mh"` may set it; for other schedulers it keeps its
    /// default and means nothing. Default `DEFAULT_MH_TABLE_SIZE` (65537).
    /// Reloadable (the table is rebuilt).
    pub mh_table_size: u32,
    /// `expire_nodest_conn`: when a real server goes down (health check) or
    /// is removed, its connections are expired so the client's next packet
    /// (a retransmission) is scheduled to a live server, as IPVS's sysctl
    /// of that name; `false` lets them run on (and fail) until they time
    /// out. Default `DEFAULT_EXPIRE_NODEST_CONN` (true). Reloadable.
    pub expire_nodest_conn: bool,
    /// `sorry_server`: where new connections go while every real server is
    /// down (keepalived's `sorry_server`), `"10.1.0.99:8080"`; `None`: new
    /// TCP connections are refused with a reset. The same rules as a real
    /// server's `address`: not 0.0.0.0, broadcast, multicast or the
    /// balancer's own; DR and TUN keep the virtual port; reachable by the
    /// forwarding method; of the virtual server's family. Default: none.
    /// Reloadable.
    pub sorry_server: Option<SocketAddr>,
    /// `syn_proxy`: answer clients' SYNs with SYN cookies and open the
    /// connection to a real server only after the client's ACK proves its
    /// address, then translate sequence numbers for the rest of the
    /// connection (DPVS's SYN proxy): a SYN flood from spoofed sources
    /// creates no connection entries. TCP with `forward = "nat"` only: the
    /// proxy must see the real server's SYN-ACK to learn its sequence
    /// numbers and translate every reply, which DR and TUN replies bypass.
    /// Default `DEFAULT_SYN_PROXY` (false). Reloadable (new connections).
    pub syn_proxy: bool,
    /// `client_address`: how the client's address reaches the real
    /// servers, which with FullNAT see the balancer's: `"proxy-v2"` (the
    /// PROXY protocol v2 header before the client's first byte, sequence
    /// numbers translated for the rest of the connection) or `"toa"` (the
    /// TCP option kind 254 on the handshake's last ACK, read by a TOA
    /// kernel module); see `crate::lb::client_addr`. TCP with
    /// `forward = "nat"` only (the replies must pass through the balancer
    /// to be translated), and not with `syn_proxy`. Default: none (nothing
    /// inserted). Reloadable (new connections).
    pub client_address: Option<ClientAddress>,
    /// `[virtual_server.health_check]`: how real servers are probed.
    /// Default: `HealthCheckConfig::default_for(protocol)`: a TCP connect
    /// check with keepalived's timings for TCP services, no check (`none`)
    /// for UDP ones, as a TCP connect says nothing about a UDP server.
    /// Reloadable.
    pub health_check: HealthCheckConfig,
    /// `[[virtual_server.real_server]]`: the real servers, in file order;
    /// unique by address. May be empty (as in IPVS: the service exists and
    /// drops its packets). Reloadable: added, removed and reweighted.
    pub real_servers: Vec<RealServerConfig>,
    /// Admission limits, checked on a new connection's first packet
    /// before any state is made (see `crate::lb::limits` for what each
    /// means with several workers). Default: none. Reloadable: a new
    /// connection meets the new limits; connections that exist go on.
    /// - `allow`, `deny`: lists of client prefixes (`"198.51.100.0/24"`,
    ///   no host bits), at most `MAX_ACL_PREFIXES` each; the longest
    ///   matching prefix decides, the same prefix in both denies, and a
    ///   client none matches is allowed only when `allow` is empty.
    /// - `new_conn_rate`: new connections a second, 0 (off) to
    ///   `MAX_NEW_CONN_RATE`, with `new_conn_burst` (1 to
    ///   `MAX_NEW_CONN_RATE`; default: the rate, one second's worth; only
    ///   with a rate).
    /// - `max_conns_per_client`: concurrent connections per client prefix,
    ///   0 (off) to `MAX_CONNS_PER_CLIENT`, the prefix being the client
    ///   address's first `client_prefix_len` bits (0 to 32, default
    ///   `DEFAULT_CLIENT_PREFIX_LEN`; only with a limit).
    pub limits: ServiceLimits,
    /// `[[virtual_server.priority_group]]`: the quorum of each priority
    /// group that names one (`crate::lb::priority`), in file order: a table
    /// has `priority` (0 to 255, a priority some real server of this
    /// virtual server has; each at most once) and `min_active` (1 to
    /// `MAX_REAL_SERVERS`, the live servers the group needs to take new
    /// connections). A group without a table needs
    /// `crate::lb::priority::DEFAULT_MIN_ACTIVE` (1). Default: none.
    /// Reloadable (new connections).
    pub priority_groups: Vec<GroupQuorum>,
    /// `slow_start_s`: HAProxy's `slowstart`. A real server that starts
    /// taking new connections again (up after down, added or brought back
    /// by a reload, its weight raised from 0) ramps its weight linearly
    /// from 1 to its full weight over this many seconds
    /// (`crate::lb::slow_start`), so least-connection schedulers do not
    /// send it every new connection at once. Not at rvsd's start (every
    /// server starts at its full weight). 0 (off) to `MAX_SLOW_START_S`;
    /// not with `rr`, `sh` or `mh`, which do not schedule by weight. A real
    /// server's own `slow_start_s` overrides it. Default
    /// `DEFAULT_SLOW_START_S` (off). Reloadable (a ramp in progress
    /// follows the new duration).
    pub slow_start: Duration,
    /// `[virtual_server.passive_check]`: real servers judged by the
    /// outcome of the handshakes real clients make through the balancer
    /// (see `PassiveCheckConfig`). Default: off. Reloadable.
    pub passive_check: PassiveCheckConfig,
    /// FullNAT (`forward = "fullnat"` only, where `local_addresses` is
    /// required; refused with any other method):
    /// - `local_addresses`: the addresses real servers see as the client,
    ///   1 to `MAX_LOCAL_ADDRESSES`, e.g. `["10.2.0.100"]`: not the
    ///   balancer's own interface addresses, not a VIP; on a connected
    ///   subnet (rvs answers ARP for them on that port) or covered by a
    ///   route (the network routes them to rvs). With several workers each
    ///   worker owns the local addresses the RSS model hashes to it
    ///   (`crate::lb::local_pool`); give at least as many as workers.
    /// - `local_port_range`: `[first, last]` local ports of each address,
    ///   1 to 65535. Default `DEFAULT_LOCAL_PORT_RANGE`. Services of one
    ///   protocol sharing a local address must give it the same range.
    ///
    /// Reloadable (new connections; live ones keep their port).
    pub local: crate::lb::service::LocalAddresses,
    /// `quorum`: the real servers that must be up (health checks, weight
    /// above 0) for this virtual server's VIP to be announced to BGP
    /// (`control::announce`); a VIP is announced only while every virtual
    /// server on it has its quorum. 1 to the number of its real servers.
    /// Default `DEFAULT_QUORUM` (1). Reloadable.
    pub quorum: u32,
}

impl VirtualServerConfig {
    /// Most `local_addresses` of one virtual server.
    pub const MAX_LOCAL_ADDRESSES: usize = 64;
    /// Default of `local_port_range`: every non-privileged port.
    pub const DEFAULT_LOCAL_PORT_RANGE: (u16, u16) = crate::lb::local_pool::DEFAULT_PORTS;
    /// Longest virtual server name, as for interfaces.
    pub const MAX_NAME_LEN: usize = InterfaceConfig::MAX_NAME_LEN;
    /// Default of `protocol`.
    pub const DEFAULT_PROTOCOL: Protocol = Protocol::Tcp;
    /// Default of `scheduler`: `ipvsadm`'s.
    pub const DEFAULT_SCHEDULER: SchedulerKind = SchedulerKind::Wlc;
    /// Default of `persistence_timeout_s`: off.
    pub const DEFAULT_PERSISTENCE_TIMEOUT_S: u64 = 0;
    /// Upper bound of `persistence_timeout_s`: one week, as the timeouts.
    pub const MAX_PERSISTENCE_TIMEOUT_S: u64 = TimeoutsConfig::MAX_TIMEOUT_S;
    /// Most real servers of one virtual server: connections and the
    /// Maglev table name a server by a 16-bit index, and the Maglev table
    /// keeps 65,535 (`u16::MAX`) for "no server". A reload that would give
    /// a service more slots than this (draining ones included) is refused.
    pub const MAX_REAL_SERVERS: usize = u16::MAX as usize;
    /// Default of `expire_nodest_conn`: on, so a dead server's clients
    /// reconnect to a live one at once.
    pub const DEFAULT_EXPIRE_NODEST_CONN: bool = true;
    /// Default of `syn_proxy`: off.
    pub const DEFAULT_SYN_PROXY: bool = false;
    /// Default of `mh_table_size`: the prime the Maglev paper and DPVS use.
    pub const DEFAULT_MH_TABLE_SIZE: u32 = crate::lb::service::DEFAULT_MH_TABLE_SIZE;
    /// Lower bound of `mh_table_size`: IPVS's smallest Maglev table.
    pub const MIN_MH_TABLE_SIZE: u32 = 251;
    /// Upper bound of `mh_table_size`: 2^24 entries (64 MiB of 4-byte
    /// slots), far beyond any sensible service.
    pub const MAX_MH_TABLE_SIZE: u32 = 1 << 24;
    /// Most prefixes in each of `allow` and `deny`: lookups bisect, so the
    /// bound is on memory and reload time, not on the packet path.
    pub const MAX_ACL_PREFIXES: usize = 65536;
    /// Upper bound of `new_conn_rate` and `new_conn_burst`.
    pub const MAX_NEW_CONN_RATE: u32 = 100_000_000;
    /// Upper bound of `max_conns_per_client`.
    pub const MAX_CONNS_PER_CLIENT: u32 = 1 << 24;
    /// Default of `client_prefix_len`: each address on its own.
    pub const DEFAULT_CLIENT_PREFIX_LEN: u8 = 32;
    /// `mh_table_size` must be at least this many times the number of real
    /// servers.
    pub const MH_ENTRIES_PER_REAL_SERVER: u32 = 100;
    /// Default of `slow_start_s`: off.
    pub const DEFAULT_SLOW_START_S: u64 = 0;
    /// Default of `quorum`: one live real server keeps the VIP announced.
    pub const DEFAULT_QUORUM: u32 = 1;
    /// Upper bound of `slow_start_s` (here and on a real server): one hour.
    pub const MAX_SLOW_START_S: u64 = 3600;
}

/// `[virtual_server.health_check]`: how the real servers of one virtual
/// server are probed. The whole table and each key may be omitted. Every
/// field is reloadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// `type`: `"tcp"`, `"http"`, `"none"`, `"tls"` or `"https"`. Default: `DEFAULT_KIND`
    /// (tcp) for a TCP service, `DEFAULT_UDP_KIND` (none) for a UDP one
    /// (see `default_kind`). A UDP service may still ask for `"tcp"` or
    /// `"http"` explicitly, for servers that also listen on TCP at the same
    /// port (DNS does).
    pub kind: HealthCheckKind,
    /// `interval_ms`: time between two probes of a real server, 1 to
    /// `MAX_INTERVAL_MS`. Default `DEFAULT_INTERVAL_MS` (1000).
    pub interval: Duration,
    /// `timeout_ms`: how long a probe may take before it counts as failed,
    /// 1 to `MAX_INTERVAL_MS`. Default `DEFAULT_TIMEOUT_MS` (1000).
    pub timeout: Duration,
    /// `rise`: successes in a row before a down server is up again, 1 to
    /// `MAX_RISE_FALL`. Default `DEFAULT_RISE` (2).
    pub rise: u32,
    /// `fall`: failures in a row before an up server is down, 1 to
    /// `MAX_RISE_FALL`. Default `DEFAULT_FALL` (3).
    pub fall: u32,
    /// `http_path`: the path an HTTP check requests; starts with `/`, no
    /// spaces or control characters. Checked only when `type = "http"`;
    /// with other types it is accepted and unused (as keepalived ignores
    /// settings of other checkers). Default `DEFAULT_HTTP_PATH` (`/`).
    pub http_path: String,
    /// `http_expect_status`: the status an HTTP check wants, 100 to 599
    /// (checked whatever the type). Default `DEFAULT_HTTP_EXPECT_STATUS`
    /// (200).
    pub http_expect_status: u16,
    /// `http_expect_body`: a string the answer's body must contain, looked
    /// for in the first `MAX_BODY_SCAN` bytes of the body as sent (the
    /// request is HTTP/1.0, so not chunked); 1 to `MAX_EXPECT_BODY_LEN`
    /// bytes. Checked only when `type` is `"http"` or `"https"`; with
    /// other types it is accepted and unused. Default: none (the status
    /// alone decides).
    pub http_expect_body: Option<String>,
    /// The `tls_*` keys: how `tls` and `https` checks speak TLS.
    pub tls: TlsCheckConfig,
    /// `source_address`: the local IPv4 address every probe of this check
    /// leaves from (bound before connecting; `script` gets it as
    /// `RVS_SOURCE_ADDRESS`), any kind. Not 0.0.0.0, multicast or
    /// broadcast. A probe that cannot bind it (not an address of this
    /// host) is skipped as a local error, not counted against the server.
    /// Default: none (the kernel picks by route).
    pub source_address: Option<Ipv4Addr>,
    /// `udp_payload`: the datagram a `udp` check sends, a string in which
    /// `\xNN` is the byte NN (hex) and `\\` a backslash; at most
    /// `MAX_UDP_PAYLOAD` bytes. Default: empty (a zero-length datagram).
    pub udp_payload: Vec<u8>,
    /// `udp_expect`: with it, a `udp` check passes only on a reply that
    /// contains these bytes (same escapes, 1 to `MAX_UDP_PAYLOAD` bytes);
    /// without it, a check passes unless an ICMP port unreachable comes
    /// back within `timeout_ms` (keepalived's UDP_CHECK without
    /// `require_reply`), and any reply ends it early. Default: none.
    pub udp_expect: Option<Vec<u8>>,
    /// `dns_name`: the name a `dns` check asks for, `"svc.example.org"`
    /// (a final dot optional; `"."` the root); labels of 1 to 63
    /// characters, 253 in all. Required with `type = "dns"`.
    pub dns_name: String,
    /// `dns_type`: the record type asked for: `"A"`, `"AAAA"`, `"NS"`,
    /// `"MX"`, `"TXT"`, `"SOA"`, `"CNAME"`, `"PTR"`, `"SRV"` or `"ANY"`.
    /// Default `DEFAULT_DNS_TYPE` (A).
    pub dns_type: DnsType,
    /// `dns_expect_rcode`: the answer code a `dns` check wants, by name:
    /// `"NOERROR"`, `"FORMERR"`, `"SERVFAIL"`, `"NXDOMAIN"`, `"NOTIMP"`,
    /// `"REFUSED"`. Default `"NOERROR"`.
    pub dns_expect_rcode: DnsRcode,
    /// `dns_expect_answer`: with `dns_expect_rcode = "NOERROR"`, the
    /// answer must also hold at least one record (a server that lost its
    /// zone's data answers NOERROR with none). Default
    /// `DEFAULT_DNS_EXPECT_ANSWER` (true).
    pub dns_expect_answer: bool,
    /// `script`: the command a `script` check runs, an argument vector
    /// `["/usr/local/bin/check", "arg"]` (no shell: `["/bin/sh", "-c",
    /// "..."]` gives one); the program an absolute path. Run with stdin,
    /// stdout and stderr on /dev/null and `RVS_REAL_SERVER_IP`,
    /// `RVS_REAL_SERVER_PORT`, `RVS_VIRTUAL_SERVER` (and
    /// `RVS_SOURCE_ADDRESS`) in its environment, in its own process group,
    /// killed (SIGKILL) at `timeout_ms`. Required with `type = "script"`.
    pub script: Vec<String>,
    /// `script_dynamic_weight`: keepalived's `misc_dynamic`: an exit code
    /// of 2 to 255 is up with the run-time weight `code - 2` (2 drains);
    /// a later exit 0 restores the configured weight. Without it every
    /// non-zero exit is down. Default false.
    pub script_dynamic_weight: bool,
}

/// A DNS record type a `dns` check asks for (RFC 1035 and successors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsType {
    /// `"A"` (1)
    A,
    /// `"AAAA"` (28)
    Aaaa,
    /// `"NS"` (2)
    Ns,
    /// `"MX"` (15)
    Mx,
    /// `"TXT"` (16)
    Txt,
    /// `"SOA"` (6)
    Soa,
    /// `"CNAME"` (5)
    Cname,
    /// `"PTR"` (12)
    Ptr,
    /// `"SRV"` (33)
    Srv,
    /// `"ANY"` (255)
    Any,
}

impl DnsType {
    /// Every type, in the order messages list them.
    pub const ALL: [DnsType; 10] = [
        DnsType::A,
        DnsType::Aaaa,
        DnsType::Ns,
        DnsType::Mx,
        DnsType::Txt,
        DnsType::Soa,
        DnsType::Cname,
        DnsType::Ptr,
        DnsType::Srv,
        DnsType::Any,
    ];

    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Aaaa => "AAAA",
            DnsType::Ns => "NS",
            DnsType::Mx => "MX",
            DnsType::Txt => "TXT",
            DnsType::Soa => "SOA",
            DnsType::Cname => "CNAME",
            DnsType::Ptr => "PTR",
            DnsType::Srv => "SRV",
            DnsType::Any => "ANY",
        }
    }

    /// The QTYPE on the wire.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Aaaa => 28,
            DnsType::Ns => 2,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Soa => 6,
            DnsType::Cname => 5,
            DnsType::Ptr => 12,
            DnsType::Srv => 33,
            DnsType::Any => 255,
        }
    }
}

impl FromStr for DnsType {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for DnsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A DNS answer code (RCODE, RFC 1035 4.1.1), named as in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DnsRcode(pub u8);

impl DnsRcode {
    /// NOERROR: the default a `dns` check expects.
    pub const NOERROR: DnsRcode = DnsRcode(0);
    /// The codes the file may name, by value.
    pub const NAMES: [&'static str; 6] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
    ];

    /// Its name (`RCODE7` and so on past the named ones).
    pub fn name(self) -> String {
        match Self::NAMES.get(usize::from(self.0)) {
            Some(n) => (*n).to_string(),
            None => format!("RCODE{}", self.0),
        }
    }
}

impl FromStr for DnsRcode {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match Self::NAMES.iter().position(|n| *n == s) {
            // At most 6 names: the index fits.
            Some(i) => Ok(DnsRcode(i as u8)),
            None => Err(ParseKeywordError(format!(
                "unknown value {s:?}: expected one of {}",
                Self::NAMES
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

impl fmt::Display for DnsRcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The TLS settings of a `tls` or `https` check: the `tls_*` keys of
/// `[virtual_server.health_check]`, checked only when `type` is `"tls"` or
/// `"https"` (with other types they are accepted and unused). Every field
/// is reloadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsCheckConfig {
    /// `tls_sni`: the server name sent in the handshake's SNI extension
    /// (and, with `tls_verify`, the name the certificate must carry), a
    /// DNS name. Default: none: no SNI is sent (the target is an IP
    /// address), and a verified certificate must name the real server's
    /// IP address.
    pub sni: Option<String>,
    /// `tls_verify`: verify the server's certificate chain, its validity
    /// dates and its name against `tls_ca_file`'s certificates. Default
    /// `DEFAULT_TLS_VERIFY` (false): any certificate is accepted, as
    /// keepalived's `SSL_GET` does (real servers commonly use self-signed
    /// certificates), but the handshake's signature is still checked
    /// against the certificate's key. Requires `tls_ca_file`.
    pub verify: bool,
    /// `tls_ca_file`: a PEM file of the CA certificates that `tls_verify`
    /// trusts (no system roots are used), read when the configuration is
    /// loaded or reloaded. Only with `tls_verify = true`. Default: none.
    pub ca_file: Option<PathBuf>,
    /// The DER certificates read from `ca_file`, in file order.
    pub ca_certificates: Vec<Vec<u8>>,
    /// `tls_expiry_warn_days`: when the server's certificate expires
    /// within this many days, the check still passes but says so in its
    /// detail and rvsd logs a warning (once a day per real server, and
    /// when the certificate changes); 0 is off, at most
    /// `MAX_EXPIRY_WARN_DAYS`. Default `DEFAULT_EXPIRY_WARN_DAYS` (14).
    pub expiry_warn_days: u32,
}

impl TlsCheckConfig {
    /// Default of `tls_verify`: accept any certificate, as keepalived.
    pub const DEFAULT_TLS_VERIFY: bool = false;
    /// Default of `tls_expiry_warn_days`: two weeks, time to renew.
    pub const DEFAULT_EXPIRY_WARN_DAYS: u32 = 14;
    /// Upper bound of `tls_expiry_warn_days`: ten years.
    pub const MAX_EXPIRY_WARN_DAYS: u32 = 3650;
}

impl Default for TlsCheckConfig {
    fn default() -> Self {
        TlsCheckConfig {
            sni: None,
            verify: Self::DEFAULT_TLS_VERIFY,
            ca_file: None,
            ca_certificates: Vec::new(),
            expiry_warn_days: Self::DEFAULT_EXPIRY_WARN_DAYS,
        }
    }
}

impl HealthCheckConfig {
    /// Default of `type` for a TCP service.
    pub const DEFAULT_KIND: HealthCheckKind = HealthCheckKind::Tcp;
    /// Default of `type` for a UDP service: no probing.
    pub const DEFAULT_UDP_KIND: HealthCheckKind = HealthCheckKind::None;
    /// Default of `interval_ms`: one second.
    pub const DEFAULT_INTERVAL_MS: u64 = 1000;
    /// Default of `timeout_ms`: one second.
    pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
    /// Upper bound of `interval_ms` and `timeout_ms`: one hour.
    pub const MAX_INTERVAL_MS: u64 = 3_600_000;
    /// Default of `rise`.
    pub const DEFAULT_RISE: u32 = 2;
    /// Default of `fall`.
    pub const DEFAULT_FALL: u32 = 3;
    /// Upper bound of `rise` and `fall`.
    pub const MAX_RISE_FALL: u32 = 1000;
    /// Default of `http_path`.
    pub const DEFAULT_HTTP_PATH: &'static str = "/";
    /// Default of `http_expect_status`.
    pub const DEFAULT_HTTP_EXPECT_STATUS: u16 = 200;
    /// Longest `http_expect_body`.
    pub const MAX_EXPECT_BODY_LEN: usize = 256;
    /// Bytes of an answer's body searched for `http_expect_body`: the
    /// match must be within them.
    pub const MAX_BODY_SCAN: usize = 64 * 1024;
    /// Longest `udp_payload` and `udp_expect`, bytes: what fits one
    /// Ethernet frame's UDP datagram.
    pub const MAX_UDP_PAYLOAD: usize = 1472;
    /// Default of `dns_type`.
    pub const DEFAULT_DNS_TYPE: DnsType = DnsType::A;
    /// Default of `dns_expect_answer`.
    pub const DEFAULT_DNS_EXPECT_ANSWER: bool = true;
    /// Most words of `script` (the program and its arguments).
    pub const MAX_SCRIPT_ARGS: usize = 64;
}

impl HealthCheckConfig {
    /// Default of `type` for a service of `protocol`: a TCP connect for
    /// TCP, none for UDP.
    pub const fn default_kind(protocol: Protocol) -> HealthCheckKind {
        match protocol {
            Protocol::Tcp => Self::DEFAULT_KIND,
            Protocol::Udp => Self::DEFAULT_UDP_KIND,
        }
    }

    /// The bytes a `udp_payload` or `udp_expect` string stands for: `\xNN`
    /// (two hex digits) is the byte NN, `\\` a backslash, any other
    /// character its UTF-8 bytes. The error says what is wrong.
    pub fn parse_bytes(text: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(text.len());
        let mut chars = text.char_indices();
        while let Some((at, c)) = chars.next() {
            if c != '\\' {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next() {
                Some((_, '\\')) => out.push(b'\\'),
                Some((_, 'x')) => {
                    let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                    match (hex.len(), u8::from_str_radix(&hex, 16)) {
                        (2, Ok(b)) if hex.chars().all(|c| c.is_ascii_hexdigit()) => out.push(b),
                        _ => {
                            return Err(format!(
                                "\\x at character {at} is not followed by two hex digits"
                            ))
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown escape at character {at}: only \\xNN (a byte in hex) and \\\\ \
                         (a backslash)"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// `bytes` written back as `parse_bytes` reads them: printable ASCII
    /// as is, a backslash doubled, any other byte `\xNN`.
    pub fn show_bytes(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        for &b in bytes {
            match b {
                b'\\' => out.push_str("\\\\"),
                b' '..=b'~' => out.push(char::from(b)),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        out
    }

    /// The check of a service of `protocol` without a
    /// `[virtual_server.health_check]` table: the defaults, with
    /// `default_kind(protocol)`.
    pub fn default_for(protocol: Protocol) -> HealthCheckConfig {
        HealthCheckConfig {
            kind: Self::default_kind(protocol),
            ..HealthCheckConfig::default()
        }
    }
}

/// The defaults of a TCP service's check (`default_for(Protocol::Tcp)`).
impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            kind: Self::DEFAULT_KIND,
            interval: Duration::from_millis(Self::DEFAULT_INTERVAL_MS),
            timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            rise: Self::DEFAULT_RISE,
            fall: Self::DEFAULT_FALL,
            http_path: Self::DEFAULT_HTTP_PATH.to_string(),
            http_expect_status: Self::DEFAULT_HTTP_EXPECT_STATUS,
            http_expect_body: None,
            tls: TlsCheckConfig::default(),
            source_address: None,
            udp_payload: Vec::new(),
            udp_expect: None,
            dns_name: String::new(),
            dns_type: Self::DEFAULT_DNS_TYPE,
            dns_expect_rcode: DnsRcode::NOERROR,
            dns_expect_answer: Self::DEFAULT_DNS_EXPECT_ANSWER,
            script: Vec::new(),
            script_dynamic_weight: false,
        }
    }
}

/// `[virtual_server.passive_check]`: takes a real server out when too
/// many of the TCP handshakes the workers forwarded to it fail (reset by
/// the server, or no SYN-ACK within `syn_timeout_ms`) over a window, as if
/// it had failed its active check; its active check brings it back
/// (`control::passive`). The whole table and each key may be omitted.
/// NAT only (the balancer must see the replies), and only with an active
/// check (`health_check.type` not `none`), which is what puts a server
/// back. Every field is reloadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveCheckConfig {
    /// `enabled`: judge the servers. Default `DEFAULT_ENABLED` (false).
    pub enabled: bool,
    /// `window_s`: the sliding window the failures are counted over, 1 to
    /// `MAX_WINDOW_S` seconds. Default `DEFAULT_WINDOW_S` (10).
    pub window: Duration,
    /// `min_attempts`: no verdict on fewer handshakes decided in the
    /// window, 1 to `MAX_MIN_ATTEMPTS`. Default `DEFAULT_MIN_ATTEMPTS`
    /// (20).
    pub min_attempts: u32,
    /// `max_failure_percent`: a server whose failed handshakes reach this
    /// share of those decided in the window is taken out, 1 to 100.
    /// Default `DEFAULT_MAX_FAILURE_PERCENT` (50).
    pub max_failure_percent: u32,
    /// `syn_timeout_ms`: a handshake with no SYN-ACK this long after the
    /// client's first SYN has timed out, 1 to `MAX_SYN_TIMEOUT_MS`.
    /// Default `DEFAULT_SYN_TIMEOUT_MS` (1000: a client retransmits its
    /// SYN after one second). Counted whether or not `enabled`.
    pub syn_timeout_ms: u32,
}

impl PassiveCheckConfig {
    /// Default of `enabled`: off.
    pub const DEFAULT_ENABLED: bool = false;
    /// Default of `window_s`.
    pub const DEFAULT_WINDOW_S: u64 = 10;
    /// Upper bound of `window_s`: one hour.
    pub const MAX_WINDOW_S: u64 = 3600;
    /// Default of `min_attempts`.
    pub const DEFAULT_MIN_ATTEMPTS: u32 = 20;
    /// Upper bound of `min_attempts`.
    pub const MAX_MIN_ATTEMPTS: u32 = 1_000_000;
    /// Default of `max_failure_percent`.
    pub const DEFAULT_MAX_FAILURE_PERCENT: u32 = 50;
    /// Default of `syn_timeout_ms`.
    pub const DEFAULT_SYN_TIMEOUT_MS: u32 = crate::lb::handshake::DEFAULT_SYN_TIMEOUT_MS;
    /// Upper bound of `syn_timeout_ms`: one minute.
    pub const MAX_SYN_TIMEOUT_MS: u32 = 60_000;
}

/// Off, with the defaults.
impl Default for PassiveCheckConfig {
    fn default() -> Self {
        PassiveCheckConfig {
            enabled: Self::DEFAULT_ENABLED,
            window: Duration::from_secs(Self::DEFAULT_WINDOW_S),
            min_attempts: Self::DEFAULT_MIN_ATTEMPTS,
            max_failure_percent: Self::DEFAULT_MAX_FAILURE_PERCENT,
            syn_timeout_ms: Self::DEFAULT_SYN_TIMEOUT_MS,
        }
    }
}

/// `[[virtual_server.real_server]]`: one backend of a virtual server.
/// Reloadable: added, removed and reweighted without dropping the
/// connections of the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServerConfig {
    /// `address`: the real server's IP and port, `"10.1.0.11:8080"`. The
    /// port is not 0; with `forward = "dr"` or `"tun"` it equals the
    /// virtual port. The address is not 0.0.0.0, broadcast, multicast or
    /// one of the balancer's own. DR: on a connected subnet; NAT and TUN:
    /// on a connected subnet or covered by a `[[route]]`. Unique within its
    /// virtual server. Of the virtual server's family (an IPv6 real server,
    /// `"[2001:db8:2::11]:8080"`, for an IPv6 VIP; its reachability is
    /// the IPv6 routes' to check). Required. Reloadable, as the removal of
    /// one real server and the addition of another.
    pub address: SocketAddr,
    /// `weight`: its share relative to the others, 0 to `MAX_WEIGHT`; 0
    /// takes no new connections (drain) and lets existing ones live on.
    /// Default `DEFAULT_WEIGHT` (1). Reloadable, and settable at run time
    /// with `rvsadm weight`.
    pub weight: u32,
    /// `upper_threshold`, `lower_threshold`: IPVS's `ipvsadm -x`/`-y`. A
    /// server whose connections (active + inactive) reach `upper_threshold`
    /// gets no new ones until they fall below `lower_threshold` (default:
    /// below 3/4 of the upper). 0 to `MAX_THRESHOLD`, 0 is unset; the lower
    /// one only with an upper one, and below it. Each worker holds its
    /// share (`crate::lb::limits`). Default: unset. Reloadable.
    pub thresholds: Thresholds,
    /// `priority`: its priority group, 0 to 255; lower is preferred, and
    /// new connections go only to the best group that has its quorum
    /// (`crate::lb::priority`). `backup = true` is HAProxy's word for
    /// priority `crate::lb::priority::BACKUP_PRIORITY` (1); a server may
    /// not give both. Default `crate::lb::priority::DEFAULT_PRIORITY` (0,
    /// the primary group). Reloadable (new connections; existing ones stay
    /// where they are).
    pub priority: u8,
    /// `slow_start_s`: this server's slow start, overriding its virtual
    /// server's `slow_start_s` (HAProxy sets it per server), 0 (off) to
    /// `VirtualServerConfig::MAX_SLOW_START_S`; `None` takes the virtual
    /// server's. The same scheduler rule. Default: the virtual server's.
    /// Reloadable.
    pub slow_start: Option<Duration>,
}

impl RealServerConfig {
    /// Default of `weight`.
    pub const DEFAULT_WEIGHT: u32 = 1;
    /// Upper bound of `weight`: IPVS's.
    pub const MAX_WEIGHT: u32 = 65535;
    /// Upper bound of `upper_threshold` and `lower_threshold`: IPVS's.
    pub const MAX_THRESHOLD: u32 = 65535;
}

/// True when `n` is a prime number.
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}
