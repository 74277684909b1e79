//! The control plane: configuration, the control socket `rvsadm` talks to
//! and the documents it serves; reload, health checks and metrics as they
//! arrive.
//!
//! At run time `plane` starts the control plane beside the workers and runs
//! the loop (`run`); `state` holds what the loop keeps, `servers` is the
//! one owner of each real server's health and run-time weight (every
//! change is a new service-table snapshot sent to the workers), `workers`
//! is how the control thread reaches the workers (channels and stats
//! cells, so all of it is tested without DPDK), `role` the HA role,
//! `answer` the `rvsadm` requests and `notify` what systemd hears (ready,
//! reloading, stopping, the watchdog). `socket` serves `rvsadm` and
//! `metrics` the scrapes, both through `clients` (one `poll(2)` per
//! server, per-client deadlines, a cap), the socket at the levels
//! `access` decides from the peer's credentials. `metrics` serves Prometheus and,
//! beside it, the status page `status` draws; `top` is `rvsadm top`'s
//! screen.
//!
//! Configuration is read in two steps (see `raw` and `validate` for why):
//! serde turns the TOML text into a raw model that only knows TOML types,
//! then `validate` parses every value into its type and checks every rule,
//! collecting all problems with their field paths and lines. What comes out
//! is a `Config` that nothing downstream needs to check again.
//!
//! ```
//! use rvs::control::Config;
//!
//! let config = Config::from_toml_str(
//!     r#"
//!     [dpdk]
//!     eal_args = ["-l", "0-1", "--in-memory"]
//!     workers = [1]
//!
//!     [[interface]]
//!     name = "ext"
//!     device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
//!     addresses = ["192.0.2.1/24"]
//!     "#,
//! )
//! .unwrap();
//! assert_eq!(config.interfaces[0].device.port_name(), "net_pcap0");
//! ```

pub mod access;
pub mod adm;
pub mod announce;
pub mod answer;
pub mod clients;
pub mod config;
mod device;
mod eal_args;
mod error;
pub mod file;
pub mod fuzz;
pub mod ha;
pub mod health;
mod locate;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod passive;
pub mod plane;
pub mod priority;
mod raw;
pub mod reload;
pub mod report;
pub mod role;
pub mod run;
pub mod servers;
pub mod slow_start;
pub mod socket;
pub mod state;
pub mod status;
pub mod top;
pub mod unapplied;
mod validate;
pub mod workers;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_ipv6;
#[cfg(test)]
mod tests_ipv6_services;
#[cfg(test)]
mod tests_nat64;
#[cfg(test)]
mod tests_runtime;
#[cfg(test)]
mod tests_tun46;

pub use config::TlsCheckConfig;
pub use config::{
    is_prime, normalize_pci, ClientSide, Config, ControlConfig, DataplaneConfig, Device,
    DpdkConfig, ForwardMethod, HaConfig, HaState, HealthCheckConfig, HealthCheckKind,
    InterfaceConfig, NeighborConfig, ParseDeviceError, ParseKeywordError, PassiveCheckConfig,
    Protocol, RealServerConfig, RouteConfig, SchedulerKind, TimeoutsConfig, VirtualServerConfig,
    MAX_LCORES,
};
pub use config::{DnsRcode, DnsType};
pub use error::{ConfigError, ConfigErrors};
