//! Pure decisions rvsd makes at start, kept out of the binary so they are
//! unit-tested: the EAL's argv, the mbuf pool size, which address each
//! port hashes, each worker's setup.

use crate::control::config::{ClientSide, Config, Device, ForwardMethod};
use crate::dataplane::worker::{Ipv6Setup, PortSetup, WorkerSetup};
use crate::lb::service::ServiceTable;
use crate::lb::tcp_state::{TimeoutOverrides, Timeouts};
use crate::net::route::{RouteTable, RouteTable6};
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
    ServiceTable::new(crate::control::reload::virtual_services(
        &config.virtual_servers,
    ))
}

/// The connection timeouts of a config.
pub fn timeouts(config: &Config) -> Timeouts {
    let t = &config.timeouts;
    Timeouts::with_overrides(TimeoutOverrides {
        tcp_established: Some(t.tcp_established),
        tcp_fin_wait: Some(t.tcp_fin_wait),
        tcp_time_wait: Some(t.tcp_time_wait),
        tcp_syn: Some(t.tcp_syn),
        udp: Some(t.udp),
        proof_packets: Some(t.proof_packets),
        proof: Some(t.proof),
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

/// The IPv6 routing table of a config: every interface IPv6 address's
/// connected prefix, then the IPv6 static routes.
pub fn route_table6(config: &Config) -> RouteTable6 {
    let connected: Vec<(u16, crate::wire::Ipv6Cidr)> = config
        .interfaces
        .iter()
        .enumerate()
        .flat_map(|(i, iface)| iface.addresses6.iter().map(move |a| (i as u16, *a)))
        .collect();
    let statics: Vec<_> = config
        .routes6
        .iter()
        .map(|r| (r.prefix, r.via, r.interface as u16))
        .collect();
    RouteTable6::new(&connected, &statics)
}

/// Which address each port's NIC hashes to choose a worker (see
/// `net::rss`), in interface order: the interface's `rss` when given, else
/// derived from where clients and NAT real servers are.
///
/// A port is inside (`ClientDestination`: NAT replies arrive there, their
/// destination is the client) when the route to a NAT service's real server
/// or sorry server leaves through it (a connected subnet or a static route,
/// by longest-prefix match) and no client is expected on it. Clients are
/// expected on a port with a VIP on one of its connected subnets, on the
/// port the default route leaves through, and on a lone port. Every other
/// port is outside (`ClientSource`). A port that is both (one-armed NAT,
/// clients and real servers behind the same port) is outside: requests
/// land on their owner's queue, and replies, hashed on the real server's
/// address, reach some worker that hands them to the owner through the
/// redirect rings.
pub fn client_sides(config: &Config) -> Vec<ClientSide> {
    let n = config.interfaces.len();
    let routes = route_table(config);
    let port_of = |ip| routes.lookup(ip).map(|hop| usize::from(hop.port));
    let mut real_servers_behind = vec![false; n];
    let mut clients_behind = vec![n == 1; n];
    for vs in &config.virtual_servers {
        // IPv6 services: the IPv6 routes' to place (not in this table).
        let std::net::SocketAddr::V4(address) = vs.address else {
            continue;
        };
        if let Some(p) = routes.connected_port(*address.ip()) {
            clients_behind[usize::from(p)] = true;
        }
        // NAT and FullNAT replies come back on the real servers' side,
        // to the client (NAT) or to a local address (FullNAT).
        if !vs.forward.sees_replies() {
            continue;
        }
        let servers = vs.real_servers.iter().map(|r| r.address);
        for server in servers.chain(vs.sorry_server) {
            let std::net::IpAddr::V4(ip) = server.ip() else {
                continue;
            };
            if let Some(p) = port_of(ip) {
                real_servers_behind[p] = true;
            }
        }
    }
    for route in config.routes.iter().filter(|r| r.prefix.prefix_len() == 0) {
        clients_behind[route.interface] = true;
    }
    config
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, iface)| {
            iface
                .rss
                .unwrap_or(if real_servers_behind[i] && !clients_behind[i] {
                    ClientSide::Destination
                } else {
                    ClientSide::Source
                })
        })
        .collect()
}

/// Warnings about FullNAT services some workers cannot open connections
/// for: a worker owns the local addresses the RSS model hashes to it
/// (`lb::local_pool`), so with fewer local addresses than workers, or an
/// unlucky spread, a worker may own none of a service's and answer its new
/// connections with a reset (TCP) or a drop (`local_ports_exhausted`).
pub fn fullnat_warnings(config: &Config) -> Vec<String> {
    let workers = config.dpdk.workers.len().max(1);
    if workers == 1 {
        return Vec::new();
    }
    let rss = crate::net::rss::RssModel::new(workers);
    let mut out = Vec::new();
    for vs in &config.virtual_servers {
        if vs.forward != ForwardMethod::FullNat {
            continue;
        }
        let mut owned = vec![0usize; workers];
        for &a in &vs.local.addresses {
            owned[rss.worker_of(a)] += 1;
        }
        for &a in &vs.local.addresses6 {
            owned[rss.worker_of6(a)] += 1;
        }
        let without = owned.iter().filter(|&&n| n == 0).count();
        if without > 0 {
            out.push(format!(
                "virtual server {:?}: {} of {} workers own none of its {} local addresses \
                 (each worker owns those the RSS hash gives it); their clients' new \
                 connections are refused (local_ports_exhausted): add local addresses \
                 (per worker: {:?})",
                vs.name,
                without,
                workers,
                vs.local.addresses.len() + vs.local.addresses6.len(),
                owned
            ));
        }
    }
    out
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
                addresses6: iface.addresses6.clone(),
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
        // A `[cluster]` node schedules mid-flow segments of flows another
        // node carried (issue 20).
        midflow: config.cluster.is_some(),
        floating: config
            .ha
            .as_ref()
            .map(|h| h.floating_ips())
            .unwrap_or_default(),
        master: config.ha.as_ref().is_none_or(|h| h.starts_as_master()),
        ipv6: Ipv6Setup {
            routes: route_table6(config),
            static_neighbors: config
                .neighbors6
                .iter()
                .map(|n| (n.address, n.mac, n.interface as u16))
                .collect(),
            // The worker adds its services' IPv6 VIPs (`Worker::try_new`).
            vips: Vec::new(),
        },
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

    /// Outside 203.0.113.2/24 with the default route, inside 10.1.0.1/24,
    /// and the given virtual servers and extra interface keys.
    fn two_arms(outside_extra: &str, inside_extra: &str, services: &str) -> Config {
        Config::from_toml_str(&format!(
            "[dpdk]\nworkers = [1, 2]\n\
             [[interface]]\nname = \"outside\"\ndevice = \"net_null0\"\n\
             addresses = [\"203.0.113.2/24\"]\n{outside_extra}\n\
             [[interface]]\nname = \"inside\"\ndevice = \"net_null1\"\n\
             addresses = [\"10.1.0.1/24\"]\n{inside_extra}\n\
             [[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"203.0.113.1\"\ninterface = \"outside\"\n\
             {services}"
        ))
        .unwrap()
    }

    fn service(forward: &str, real: &str, extra: &str) -> String {
        format!(
            "[[virtual_server]]\nname = \"web\"\naddress = \"203.0.113.100:80\"\n\
             protocol = \"tcp\"\nforward = \"{forward}\"\n{extra}\n\
             [virtual_server.health_check]\ntype = \"none\"\n\
             [[virtual_server.real_server]]\naddress = \"{real}\"\n"
        )
    }

    use ClientSide::{Destination, Source};

    #[test]
    fn nat_real_servers_make_their_port_inside_and_the_client_port_outside() {
        let c = two_arms("", "", &service("nat", "10.1.0.11:8080", ""));
        assert_eq!(client_sides(&c), [Source, Destination]);
    }

    #[test]
    fn a_port_reaching_real_servers_by_a_static_route_is_inside() {
        let route =
            "[[route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.1.0.254\"\ninterface = \"inside\"\n";
        let c = two_arms(
            "",
            "",
            &(route.to_string() + &service("nat", "10.9.0.11:80", "")),
        );
        assert_eq!(client_sides(&c), [Source, Destination]);
    }

    #[test]
    fn a_nat_sorry_server_makes_its_port_inside() {
        let sorry = "sorry_server = \"10.1.0.99:80\"";
        // The only real server is reached by the default route, outside.
        let c = two_arms("", "", &service("nat", "198.51.100.11:80", sorry));
        assert_eq!(client_sides(&c), [Source, Destination]);
    }

    #[test]
    fn dr_and_tun_real_servers_do_not_make_a_port_inside() {
        for forward in ["dr", "tun"] {
            let c = two_arms("", "", &service(forward, "10.1.0.11:80", ""));
            assert_eq!(client_sides(&c), [Source, Source], "{forward}");
        }
    }

    #[test]
    fn without_services_every_port_is_outside() {
        assert_eq!(client_sides(&two_arms("", "", "")), [Source, Source]);
    }

    #[test]
    fn one_armed_nat_port_is_outside() {
        // Real servers on the port that also carries the VIP and the
        // default route.
        let c = two_arms("", "", &service("nat", "203.0.113.11:80", ""));
        assert_eq!(client_sides(&c), [Source, Source]);
    }

    #[test]
    fn a_lone_port_is_outside_even_with_nat_real_servers_on_it() {
        let text = format!(
            "[dpdk]\nworkers = [1]\n[[interface]]\nname = \"only\"\ndevice = \"net_null0\"\n\
             addresses = [\"10.1.0.1/24\"]\n{}",
            service("nat", "10.1.0.11:80", "").replace("203.0.113.100", "192.0.2.100")
        );
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(client_sides(&c), [Source]);
    }

    #[test]
    fn a_vip_on_the_real_servers_subnet_keeps_that_port_outside() {
        let svc = service("nat", "10.1.0.11:80", "").replace("203.0.113.100", "10.1.0.100");
        let c = two_arms("", "", &svc);
        assert_eq!(client_sides(&c), [Source, Source]);
    }

    #[test]
    fn the_interface_rss_key_overrides_the_derivation() {
        let c = two_arms(
            "rss = \"client-destination\"",
            "rss = \"client-source\"",
            &service("nat", "10.1.0.11:8080", ""),
        );
        assert_eq!(client_sides(&c), [Destination, Source]);
    }

    #[test]
    fn fullnat_real_servers_make_their_port_inside() {
        let one = "local_addresses = [\"10.1.0.100\"]";
        let c = two_arms("", "", &service("fullnat", "10.1.0.11:8080", one));
        assert_eq!(client_sides(&c), [Source, Destination]);
    }

    #[test]
    fn fullnat_warns_of_workers_that_own_no_local_address() {
        let one = "local_addresses = [\"10.1.0.100\"]";
        let mut c = two_arms("", "", &service("fullnat", "10.1.0.11:8080", one));
        let w = fullnat_warnings(&c);
        c.dpdk.workers.truncate(1);
        assert!(fullnat_warnings(&c).is_empty(), "one worker owns them all");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("1 of 2 workers own none"), "{}", w[0]);
    }

    #[test]
    fn fullnat_warns_of_workers_that_own_no_ipv6_local_address() {
        let v6 = |extra: &str| {
            let mut c = Config::from_toml_str(&format!(
                "[dpdk]\nworkers = [1, 2]\n\
                 [[interface]]\nname = \"lan\"\ndevice = \"net_null0\"\n\
                 addresses = [\"203.0.113.2/24\", \"2001:db8:1::2/64\"]\n\
                 [[virtual_server]]\nname = \"web6\"\naddress = \"[2001:db8:1::100]:80\"\n\
                 forward = \"fullnat\"\n{extra}\n\
                 [virtual_server.health_check]\ntype = \"none\"\n\
                 [[virtual_server.real_server]]\naddress = \"[2001:db8:1::11]:8080\"\n"
            ))
            .unwrap();
            let w = fullnat_warnings(&c);
            c.dpdk.workers.truncate(1);
            assert!(fullnat_warnings(&c).is_empty(), "one worker owns them all");
            w
        };
        let w = v6("local_addresses = [\"2001:db8:1::200\"]");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("1 of 2 workers own none of its 1"),
            "{}",
            w[0]
        );
        // Two addresses the IPv6 hash spreads over both workers: no warning.
        let rss = crate::net::rss::RssModel::new(2);
        let pick = |owner: usize| {
            (0x200..0x300u16)
                .map(|i| std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i))
                .find(|&a| rss.worker_of6(a) == owner)
                .unwrap()
        };
        let both = format!("local_addresses = [\"{}\", \"{}\"]", pick(0), pick(1));
        assert!(v6(&both).is_empty());
    }

    #[test]
    fn mempool_covers_every_ring_and_is_a_mersenne_size() {
        let n = mempool_size(2, 2, 1024, 32, 256);
        assert!(n as usize >= 2 * 2 * 2 * 1024);
        assert!((n + 1).is_power_of_two());
    }
}
