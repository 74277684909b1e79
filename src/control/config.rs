//! The typed configuration: what `rvsd` runs with, after the file has been
//! parsed and every rule checked.
//!
//! Nothing downstream re-checks a value from here: addresses are
//! `Ipv4Addr`/`Ipv4Cidr`, devices are `Device`, durations are `Duration`,
//! and a route or neighbour names its interface by index into
//! `Config::interfaces`. The TOML text becomes a `Config` only through
//! `Config::load` or `Config::from_toml_str`, which report every problem
//! at once (see `validate`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::device::{normalize_pci, Device, ParseDeviceError};
use super::error::{ConfigError, ConfigErrors, Errors};
use super::locate::path_at;
use super::raw::RawConfig;
use super::validate;
use crate::wire::{Ipv4Cidr, MacAddr};

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
    /// `[[route]]`: static routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[[neighbor]]`: static ARP entries, in file order.
    pub neighbors: Vec<NeighborConfig>,
    /// `[control]`: the control socket and the metrics listener.
    pub control: ControlConfig,
}

impl Config {
    /// Reads, parses and validates the file at `path`; every problem
    /// found, not just the first.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                field: path.display().to_string(),
                line: None,
                message: format!("cannot read the configuration file: {e}"),
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
    /// `addresses`: the balancer's own addresses with their connected
    /// subnets; ARP and ICMP echo are answered for them. An address is on
    /// one interface only. Default: none. Fixed at start.
    pub addresses: Vec<Ipv4Cidr>,
    /// `mac`: a unicast MAC address to give the port instead of the
    /// device's own (for a stable address across NIC swaps, or tests).
    /// Default: the device's. Fixed at start.
    pub mac: Option<MacAddr>,
}

impl InterfaceConfig {
    /// Longest interface name: short enough for log lines and metric labels.
    pub const MAX_NAME_LEN: usize = 32;

    /// True when `ip` lies in one of this interface's connected subnets.
    pub fn is_connected(&self, ip: Ipv4Addr) -> bool {
        self.addresses.iter().any(|a| a.contains(ip))
    }
}

/// `[[route]]`: a static route. Reloadable (later issue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// `prefix`: the destination network, host bits zero; `0.0.0.0/0` is
    /// the default route. Unique among routes. Required.
    pub prefix: Ipv4Cidr,
    /// `via`: the next hop, inside a connected subnet of `interface`.
    /// Required.
    pub via: Ipv4Addr,
    /// `interface`: the outgoing interface, as an index into
    /// `Config::interfaces`. Required (by name in the file).
    pub interface: usize,
    /// The interface's name as written, for messages.
    pub interface_name: String,
}

/// `[[neighbor]]`: a static ARP entry; other neighbours are learned.
/// Reloadable (later issue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// `address`: the neighbour's IPv4 address, inside a connected subnet
    /// of `interface`; unique per interface. Required.
    pub address: Ipv4Addr,
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
    /// `socket`: the Unix socket `rvsadm` talks to; an absolute path.
    /// Default `DEFAULT_SOCKET`. Fixed at start.
    pub socket: PathBuf,
    /// `metrics_listen`: where Prometheus text metrics are served at
    /// `/metrics`. Default `DEFAULT_METRICS_LISTEN`. Fixed at start.
    pub metrics_listen: SocketAddr,
}

impl ControlConfig {
    /// Default of `socket`.
    pub const DEFAULT_SOCKET: &'static str = "/run/rvs/rvsd.sock";
    /// Default of `metrics_listen`: loopback only, port 9469.
    pub const DEFAULT_METRICS_LISTEN: SocketAddr =
        SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9469));
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(Self::DEFAULT_SOCKET),
            metrics_listen: Self::DEFAULT_METRICS_LISTEN,
        }
    }
}
