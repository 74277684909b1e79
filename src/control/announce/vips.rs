//! Which VIPs to announce, and the include files BIRD reads them from.
//!
//! A VIP is healthy when every virtual server on that address (any port,
//! any protocol; not those a reload removed, which only drain) has at
//! least its `quorum` real servers up: held up by the health checks, with
//! a weight above 0 and not removed by a reload. A VIP whose one service
//! fails its quorum is withdrawn whole: the router cannot send one port of
//! an address elsewhere.

use crate::control::config::{Protocol, VirtualServerConfig};
use crate::lb::service::{RealServerId, ServiceId, ServiceTable};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The quorum of a service its config does not name (a table without a
/// config, in tests).
pub const DEFAULT_QUORUM: u32 = VirtualServerConfig::DEFAULT_QUORUM;

/// Each service's `quorum`, in `table` order, found by address and
/// protocol among `configs` (the file's virtual servers);
/// `DEFAULT_QUORUM` for one the file does not name.
pub fn quorums(table: &ServiceTable, configs: &[VirtualServerConfig]) -> Vec<u32> {
    let by_key: HashMap<(SocketAddr, Protocol), u32> = configs
        .iter()
        .map(|c| ((c.address, c.protocol), c.quorum))
        .collect();
    table
        .services()
        .iter()
        .map(|s| {
            by_key
                .get(&(s.vip_addr(), s.key.protocol))
                .copied()
                .unwrap_or(DEFAULT_QUORUM)
        })
        .collect()
}

/// Real servers of service `vs` that count for its quorum: up, weight
/// above 0, not removed by a reload.
pub fn live_servers(table: &ServiceTable, vs: ServiceId) -> u32 {
    let n = table.get(vs).real_servers.len();
    (0..n)
        .map(|r| r as RealServerId)
        .filter(|&r| {
            !table.is_down(vs, r) && table.weight(vs, r) > 0 && !table.is_server_draining(vs, r)
        })
        .count() as u32
}

/// The VIPs of `table` whose every service (not draining) has its quorum
/// (`quorums`, in table order; missing: `DEFAULT_QUORUM`) of live servers.
pub fn healthy_vips(table: &ServiceTable, quorums: &[u32]) -> BTreeSet<IpAddr> {
    let mut vips: BTreeMap<IpAddr, bool> = BTreeMap::new();
    for (i, s) in table.services().iter().enumerate() {
        let vs = i as ServiceId;
        if table.is_draining(vs) {
            continue;
        }
        let quorum = quorums.get(i).copied().unwrap_or(DEFAULT_QUORUM);
        let ok = live_servers(table, vs) >= quorum;
        *vips.entry(s.vip_addr().ip()).or_insert(true) &= ok;
    }
    vips.into_iter()
        .filter(|&(_, ok)| ok)
        .map(|(ip, _)| ip)
        .collect()
}

/// The text of an include file: one static route per VIP of the family
/// (`/32` or `/128`) through `interface`, in address order.
pub fn include_text(vips: &BTreeSet<IpAddr>, ipv6: bool, interface: &str) -> String {
    let mut text = String::from("# Written by rvsd: the VIPs this node announces.\n");
    for ip in vips.iter().filter(|ip| ip.is_ipv6() == ipv6) {
        let len = if ipv6 { 128 } else { 32 };
        text.push_str(&format!("route {ip}/{len} via \"{interface}\";\n"));
    }
    text
}

/// Replaces `path` with `text` atomically: written to `<path>.tmp` in the
/// same directory (created if missing), flushed, renamed over `path`, so
/// BIRD never reads half a file. The temporary name must not match the
/// include's pattern (`bird-vips.con[f]` does not match `.conf.tmp`).
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(named)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp).map_err(named)?;
    file.write_all(text.as_bytes()).map_err(named)?;
    file.sync_all().map_err(named)?;
    drop(file);
    fs::rename(&tmp, path).map_err(named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::service::{
        ForwardMethod, SchedulerKind, ServerState, ServiceKey, VirtualService,
    };
    use crate::lb::xmit::Endpoint;
    use std::net::Ipv4Addr;

    fn service(vip: [u8; 4], port: u16, servers: usize) -> VirtualService {
        let key = ServiceKey {
            vip: Endpoint::new(Ipv4Addr::from(vip), port),
            protocol: Protocol::Tcp,
        };
        let rs =
            (0..servers).map(|i| (Endpoint::new(Ipv4Addr::new(10, 1, 0, 10 + i as u8), 80), 1));
        VirtualService::new("s", key, ForwardMethod::Dr, SchedulerKind::Rr, rs)
    }

    /// `table` with real servers `down` ((service, server)) held down.
    fn with_down(table: ServiceTable, down: &[(usize, usize)]) -> ServiceTable {
        table.with_server_state(|v, r| ServerState {
            down: down.contains(&(usize::from(v), usize::from(r))),
            ..Default::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_vip_with_its_quorum_of_servers_up_is_healthy() {
        let t = with_down(
            ServiceTable::new(vec![service([192, 0, 2, 1], 80, 3)]),
            &[(0, 0)],
        );
        assert_eq!(healthy_vips(&t, &[2]), BTreeSet::from([ip("192.0.2.1")]));
    }

    #[test]
    fn a_vip_below_its_quorum_is_not_healthy() {
        let t = with_down(
            ServiceTable::new(vec![service([192, 0, 2, 1], 80, 3)]),
            &[(0, 0), (0, 2)],
        );
        assert!(healthy_vips(&t, &[2]).is_empty());
    }

    #[test]
    fn one_service_below_quorum_withdraws_its_whole_vip() {
        let t = with_down(
            ServiceTable::new(vec![
                service([192, 0, 2, 1], 80, 1),
                service([192, 0, 2, 1], 443, 1),
                service([192, 0, 2, 2], 80, 1),
            ]),
            &[(1, 0)],
        );
        assert_eq!(
            healthy_vips(&t, &[1, 1, 1]),
            BTreeSet::from([ip("192.0.2.2")])
        );
    }

    #[test]
    fn a_server_at_weight_zero_does_not_count() {
        let t = ServiceTable::new(vec![service([192, 0, 2, 1], 80, 1)]);
        let t = t.with_server_state(|_, _| ServerState {
            weight: Some(0),
            ..Default::default()
        });
        assert!(healthy_vips(&t, &[1]).is_empty());
    }

    #[test]
    fn a_service_without_real_servers_is_never_healthy() {
        let t = ServiceTable::new(vec![service([192, 0, 2, 1], 80, 0)]);
        assert!(healthy_vips(&t, &[]).is_empty());
    }

    #[test]
    fn a_service_a_reload_removed_does_not_hold_its_vip_back() {
        let t = ServiceTable::with_draining(
            vec![
                service([192, 0, 2, 1], 80, 1),
                service([192, 0, 2, 1], 443, 0),
            ],
            vec![false, true],
            vec![vec![false], vec![]],
        );
        assert_eq!(healthy_vips(&t, &[1, 1]), BTreeSet::from([ip("192.0.2.1")]));
    }

    #[test]
    fn quorums_are_found_by_address_and_protocol_and_default_to_one() {
        let t = ServiceTable::new(vec![
            service([192, 0, 2, 1], 80, 3),
            service([192, 0, 2, 2], 80, 3),
        ]);
        let text = "[dpdk]\nworkers = [1]\n[[interface]]\nname = \"ext\"\n\
            device = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\"]\n\
            [[virtual_server]]\nname = \"a\"\naddress = \"192.0.2.1:80\"\nforward = \"dr\"\n\
            quorum = 2\n[[virtual_server.real_server]]\naddress = \"10.0.0.11:80\"\n\
            [[virtual_server.real_server]]\naddress = \"10.0.0.12:80\"\n";
        let c = crate::control::Config::from_toml_str(text).unwrap();
        assert_eq!(quorums(&t, &c.virtual_servers), [2, 1]);
    }

    #[test]
    fn the_include_has_one_route_per_vip_of_its_family() {
        let vips = BTreeSet::from([ip("192.0.2.2"), ip("192.0.2.1"), ip("2001:db8::1")]);
        assert_eq!(
            include_text(&vips, false, "rvs-live"),
            "# Written by rvsd: the VIPs this node announces.\n\
             route 192.0.2.1/32 via \"rvs-live\";\nroute 192.0.2.2/32 via \"rvs-live\";\n"
        );
        assert_eq!(
            include_text(&vips, true, "rvs-live"),
            "# Written by rvsd: the VIPs this node announces.\n\
             route 2001:db8::1/128 via \"rvs-live\";\n"
        );
    }

    #[test]
    fn an_empty_set_makes_a_file_with_no_route() {
        let text = include_text(&BTreeSet::new(), false, "rvs-live");
        assert!(!text.contains("route"), "{text}");
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("rvs-vips-test-{}", std::process::id()));
        let path = dir.join("sub").join("bird-vips.conf");
        write_atomically(&path, "one\n").unwrap();
        write_atomically(&path, "two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["bird-vips.conf"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
