//! Pure decisions rvsd makes at start, kept out of the binary so they are
//! unit-tested: the EAL's argv, the mbuf pool size, each worker's setup.

use crate::control::config::{Config, Device};
use crate::dataplane::worker::{PortSetup, WorkerSetup};
use crate::lb::service::{RealServer, ServiceKey, ServiceTable, VirtualService};
use crate::lb::tcp_state::{TimeoutOverrides, Timeouts};
use crate::lb::xmit::Endpoint;
use crate::net::route::RouteTable;
use std::sync::Arc;

/// Options that choose which devices the EAL probes; when the user gives
/// none and no interface is PCI, rvsd adds `--no-pci` so the EAL never
/// touches the host's own NICs.
const DEVICE_SELECTION_ARGS: [&str; 7] = [
    "-a",
    "--allow",
    "-b",
    "--block",
    "-w",
    "--no-pci",
    "--pci-whitelist",
];

/// The EAL's argv: program name, the config's `eal_args` as they are, then
/// one `-a` per PCI interface and one `--vdev` per virtual device.
pub fn eal_argv(program: &str, config: &Config) -> Vec<String> {
    let mut argv = vec![program.to_string()];
    argv.extend(config.dpdk.eal_args.iter().cloned());
    for iface in &config.interfaces {
        argv.extend(iface.device.eal_args().map(String::from));
    }
    let any_pci = config
        .interfaces
        .iter()
        .any(|i| matches!(i.device, Device::Pci(_)));
    let user_selects = config.dpdk.eal_args.iter().any(|a| {
        DEVICE_SELECTION_ARGS.iter().any(|opt| {
            a == opt || (a.starts_with(opt) && a.len() > opt.len() && !opt.starts_with("--"))
        })
    });
    if !any_pci && !user_selects {
        argv.push("--no-pci".into());
    }
    argv
}

/// Mbufs needed so no queue ever starves: every rx and tx ring full, each
/// worker holding a burst per port plus its pool cache, and slack for
/// frames in flight; rounded to 2^n - 1 (the ring-backed pool's best size).
pub fn mempool_size(
    ports: usize,
    workers: usize,
    ring_size: usize,
    burst: usize,
    cache: usize,
) -> u32 {
    let rings = ports * workers * 2 * ring_size;
    let held = workers * (ports + 1) * burst + (workers + 1) * cache;
    let need = (rings + held + 1024).max(4095);
    ((need + 1).next_power_of_two() - 1).min(u32::MAX as usize) as u32
}

/// Neighbour entries each worker can hold.
pub const NEIGH_CAPACITY: usize = 4096;
/// How long a learned neighbour is trusted without being refreshed.
pub const NEIGH_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// The virtual services of a config, as the workers see them.
pub fn service_table(config: &Config) -> ServiceTable {
    ServiceTable::new(
        config
            .virtual_servers
            .iter()
            .map(|v| VirtualService {
                name: v.name.clone(),
                key: ServiceKey {
                    vip: Endpoint::new(*v.address.ip(), v.address.port()),
                    protocol: v.protocol,
                },
                forward: v.forward,
                scheduler: v.scheduler,
                mh_table_size: v.mh_table_size,
                persistence: v.persistence_timeout,
                expire_nodest_conn: v.expire_nodest_conn,
                sorry_server: v.sorry_server.map(|a| Endpoint::new(*a.ip(), a.port())),
                real_servers: v
                    .real_servers
                    .iter()
                    .map(|r| RealServer {
                        endpoint: Endpoint::new(*r.address.ip(), r.address.port()),
                        weight: r.weight,
                    })
                    .collect(),
            })
            .collect(),
    )
}

/// The connection timeouts of a config.
pub fn timeouts(config: &Config) -> Timeouts {
    let t = &config.timeouts;
    Timeouts::with_overrides(TimeoutOverrides {
        tcp_established: Some(t.tcp_established),
        tcp_fin_wait: Some(t.tcp_fin_wait),
        tcp_syn: Some(t.tcp_syn),
        udp: Some(t.udp),
    })
}

/// The routing table of a config: every interface address's connected
/// subnet, then the static routes.
pub fn route_table(config: &Config) -> RouteTable {
    let connected: Vec<(u16, crate::wire::Ipv4Cidr)> = config
        .interfaces
        .iter()
        .enumerate()
        .flat_map(|(i, iface)| iface.addresses.iter().map(move |a| (i as u16, *a)))
        .collect();
    let statics: Vec<_> = config
        .routes
        .iter()
        .map(|r| (r.prefix, r.via, r.interface as u16))
        .collect();
    RouteTable::new(&connected, &statics)
}

/// What every worker starts with. `macs` and `mtus` are the ports' as the
/// devices report them; `services` is shared by all workers.
pub fn worker_setup(
    config: &Config,
    macs: &[crate::wire::MacAddr],
    mtus: &[u16],
    services: Arc<ServiceTable>,
    seed: u64,
) -> WorkerSetup {
    WorkerSetup {
        ports: config
            .interfaces
            .iter()
            .zip(macs)
            .zip(mtus)
            .map(|((iface, mac), mtu)| PortSetup {
                mac: *mac,
                addresses: iface.addresses.clone(),
                mtu: *mtu,
            })
            .collect(),
        static_neighbors: config
            .neighbors
            .iter()
            .map(|n| (n.address, n.mac, n.interface as u16))
            .collect(),
        routes: route_table(config),
        services,
        timeouts: timeouts(config),
        conn_capacity: config.dataplane.conn_table_size,
        neigh_capacity: NEIGH_CAPACITY,
        neigh_max_age_ns: NEIGH_MAX_AGE.as_nanos() as u64,
        seed,
        worker_index: 0,
        worker_count: config.dpdk.workers.len(),
        floating: config
            .ha
            .as_ref()
            .map(|h| h.floating_ips())
            .unwrap_or_default(),
        master: config.ha.as_ref().is_none_or(|h| h.starts_as_master()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(devices: &[&str], eal: &str) -> Config {
        let mut text = format!("[dpdk]\neal_args = {eal}\nworkers = [1]\n");
        for (i, d) in devices.iter().enumerate() {
            text += &format!("[[interface]]\nname = \"p{i}\"\ndevice = \"{d}\"\naddresses = [\"192.0.2.{}/24\"]\n", i + 1);
        }
        Config::from_toml_str(&text).unwrap()
    }

    #[test]
    fn vdev_only_config_gets_vdev_args_and_no_pci() {
        let c = config(
            &["net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap"],
            r#"["-l", "0-1"]"#,
        );
        assert_eq!(
            eal_argv("rvsd", &c),
            [
                "rvsd",
                "-l",
                "0-1",
                "--vdev",
                "net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap",
                "--no-pci"
            ]
        );
    }

    #[test]
    fn pci_device_is_allow_listed_and_pci_stays_on() {
        let c = config(&["0000:03:00.0"], r#"["-l", "0-1"]"#);
        assert_eq!(
            eal_argv("rvsd", &c),
            ["rvsd", "-l", "0-1", "-a", "0000:03:00.0"]
        );
    }

    #[test]
    fn user_device_selection_is_respected() {
        let c = config(&["net_null0"], r#"["-l", "0-1", "-a", "0000:00:1f.0"]"#);
        assert!(!eal_argv("rvsd", &c).contains(&"--no-pci".to_string()));
    }

    #[test]
    fn mempool_covers_every_ring_and_is_a_mersenne_size() {
        let n = mempool_size(2, 2, 1024, 32, 256);
        assert!(n as usize >= 2 * 2 * 2 * 1024);
        assert!((n + 1).is_power_of_two());
    }
}
