//! Whether the machine has the memory the configuration's tables take.
//!
//! Each worker allocates its connection table (and, when a virtual server
//! has persistence, its persistence table) at start and fills it, so every
//! page is touched before the first packet. A `conn_table_size` beyond the
//! machine's memory would then be found only after the EAL and the ports
//! are up, by an allocation failure or the kernel's OOM killer. So `rvsd
//! --check` and `rvsd` at start compare what the tables take (the tables'
//! own `memory_for`, the figures `memory_bytes` reports once allocated)
//! with `MemAvailable` in `/proc/meminfo`, and refuse with both figures.
//!
//! The tables are ordinary anonymous memory advised for transparent huge
//! pages (`dpdk::hugemem`), not the EAL's hugetlbfs pages, so the
//! comparison is with `MemAvailable`: hugetlbfs pages reserved for DPDK
//! are already outside it.

use super::config::Config;
use crate::lb::client_addr::Carried;
use crate::lb::clients::ClientCounts;
use crate::lb::conn::{ConnTable, ConnTable6};
use crate::lb::persist::PersistTable;
use crate::lb::synproxy::Proxied;

/// Where the kernel says how much memory is available.
pub const MEMINFO: &str = "/proc/meminfo";

/// Bytes every worker's tables take together, by the configuration.
pub fn table_bytes(config: &Config) -> u64 {
    per_worker_bytes(config) * config.dpdk.workers.len() as u64
}

/// Bytes one worker's tables take.
fn per_worker_bytes(config: &Config) -> u64 {
    let capacity = config.dataplane.conn_table_size.max(1);
    let persistence = config
        .virtual_servers
        .iter()
        .any(|v| v.persistence_timeout.is_some());
    let syn_proxy = config.virtual_servers.iter().any(|v| v.syn_proxy);
    let client_address = config
        .virtual_servers
        .iter()
        .any(|v| v.client_address.is_some());
    let per_client = config
        .virtual_servers
        .iter()
        .any(|v| v.limits.per_client.is_some());
    let ipv6 = config.virtual_servers.iter().any(|v| v.address.is_ipv6());
    ConnTable::memory_for(capacity)
        // The IPv6 table (`lb::balancer::v6`): as many connections, in
        // 128-byte entries, once a service is IPv6; one entry otherwise.
        + ConnTable6::memory_for(if ipv6 { capacity } else { 1 })
        + if persistence {
            PersistTable::memory_for(capacity)
        } else {
            PersistTable::memory_for(1)
        }
        // The SYN proxy's per-connection state beside the table.
        + if syn_proxy {
            (capacity as u64).saturating_mul(std::mem::size_of::<Proxied>() as u64)
        } else {
            0
        }
        // The client-address state beside the table.
        + if client_address {
            (capacity as u64).saturating_mul(std::mem::size_of::<Carried>() as u64)
        } else {
            0
        }
        // The per-client counts, sized from the table.
        + if per_client {
            ClientCounts::memory_for(capacity)
        } else {
            0
        }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemAvailable:")?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// Checks the tables of `config` against `available` bytes; the error
/// names `dataplane.conn_table_size` and gives the figures.
pub fn check_tables(config: &Config, available: u64) -> Result<(), String> {
    let need = table_bytes(config);
    if need <= available {
        return Ok(());
    }
    let size = config.dataplane.conn_table_size.max(1);
    let workers = config.dpdk.workers.len();
    Err(format!(
        "dataplane.conn_table_size: {size} connections per worker take {} per worker ({:.1} \
         bytes per connection{}), {} for {workers} worker(s), but the machine has {} available \
         (MemAvailable in {MEMINFO}); lower conn_table_size or use fewer workers",
        mib(per_worker_bytes(config)),
        ConnTable::memory_for(size) as f64 / size as f64,
        if need / workers.max(1) as u64 > ConnTable::memory_for(size) {
            ", with the IPv6, persistence, SYN proxy and per-client tables its services use"
        } else {
            ""
        },
        mib(need),
        mib(available)
    ))
}

/// Checks `config` against this machine's `MemAvailable`; a machine that
/// does not say (no `/proc/meminfo`) is not checked.
pub fn check_this_machine(config: &Config) -> Result<(), String> {
    match std::fs::read_to_string(MEMINFO)
        .ok()
        .as_deref()
        .and_then(mem_available)
    {
        Some(available) => check_tables(config, available),
        None => Ok(()),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(workers: &str, size: usize, persistence: bool) -> Config {
        Config::from_toml_str(&format!(
            r#"
[dpdk]
eal_args = ["-l", "0-3", "--in-memory"]
workers = {workers}

[dataplane]
conn_table_size = {size}

[[interface]]
name = "ext"
device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
addresses = ["192.0.2.1/24"]

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
forward = "dr"
persistence_timeout_s = {}

[[virtual_server.real_server]]
address = "192.0.2.11:80"
"#,
            if persistence { 60 } else { 0 }
        ))
        .unwrap()
    }

    #[test]
    fn the_syn_proxy_adds_its_state_beside_each_workers_table() {
        let mut c = config("[1]", 100_000, false);
        let without = table_bytes(&c);
        c.virtual_servers[0].syn_proxy = true;
        assert_eq!(
            table_bytes(&c) - without,
            100_000 * std::mem::size_of::<Proxied>() as u64
        );
    }

    #[test]
    fn a_client_address_adds_its_state_beside_each_workers_table() {
        let mut c = config("[1]", 100_000, false);
        let without = table_bytes(&c);
        c.virtual_servers[0].client_address = Some(crate::lb::client_addr::ClientAddress::Toa);
        assert_eq!(table_bytes(&c) - without, 100_000 * 8);
    }

    #[test]
    fn an_ipv6_service_adds_the_ipv6_table() {
        let mut c = config("[1]", 100_000, false);
        let without = table_bytes(&c);
        c.virtual_servers[0].address = "[2001:db8::10]:80".parse().unwrap();
        assert_eq!(
            table_bytes(&c) - without,
            ConnTable6::memory_for(100_000) - ConnTable6::memory_for(1)
        );
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let text = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(mem_available(text), Some(8_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn the_tables_take_each_workers_table() {
        let one = table_bytes(&config("[1]", 100_000, false));
        let two = table_bytes(&config("[1, 2]", 100_000, false));
        assert_eq!(two, 2 * one);
        assert!(one >= ConnTable::memory_for(100_000));
    }

    #[test]
    fn persistence_adds_its_table() {
        assert!(
            table_bytes(&config("[1]", 100_000, true))
                > table_bytes(&config("[1]", 100_000, false))
        );
    }

    #[test]
    fn tables_that_fit_pass() {
        let c = config("[1]", 1_000_000, false);
        assert!(check_tables(&c, table_bytes(&c)).is_ok());
    }

    #[test]
    fn tables_beyond_the_available_memory_are_refused_with_the_figures() {
        let c = config("[1, 2]", 1 << 20, false);
        let e = check_tables(&c, 64 << 20).unwrap_err();
        assert!(e.starts_with("dataplane.conn_table_size: 1048576"), "{e}");
        assert!(e.contains("93.6 bytes per connection"), "{e}");
        assert!(e.contains("2 worker(s)"), "{e}");
        assert!(e.contains("64.0 MiB available"), "{e}");
    }
}
