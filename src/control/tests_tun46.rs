//! IPv4-in-IPv6 TUN in the configuration: an IPv4 virtual server with
//! `forward = "tun"` may have IPv6 real servers (and sorry server), every
//! other mix of families stays refused naming the field; the service the
//! workers get stays IPv4, its IPv6 tunnel ends beside it.

use super::reload::{merge, virtual_services};
use super::*;
use crate::lb::service::{Protocol, ServiceTable};
use crate::lb::xmit::Endpoint;
use std::net::{Ipv6Addr, SocketAddr};

const DPDK: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n";
const EXT: &str = "[[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\"]\n";
const INT: &str = "[[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\naddresses = [\"10.1.0.1/24\"]\n";

/// An IPv4 virtual server on port 80 by `forward` with these servers.
fn vs4(forward: &str, servers: &[&str]) -> String {
    let mut s = format!(
        "[[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\nforward = \"{forward}\"\n"
    );
    for a in servers {
        s.push_str(&format!(
            "[[virtual_server.real_server]]\naddress = \"{a}\"\n"
        ));
    }
    s
}

fn config(parts: &[&str]) -> Result<Config, Vec<ConfigError>> {
    Config::from_toml_str(&parts.concat()).map_err(|ConfigErrors(e)| e)
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn ipv6_real_servers_of_an_ipv4_tun_virtual_server_are_accepted() {
    let c = config(&[
        DPDK,
        EXT,
        INT,
        &vs4("tun", &["[2001:db8:2::11]:80", "10.1.0.12:80"]),
    ]);
    assert!(c.is_ok(), "{c:?}");
}

#[test]
fn an_ipv6_real_server_of_an_ipv4_dr_virtual_server_is_refused_pointing_at_tun() {
    let e = config(&[DPDK, EXT, INT, &vs4("dr", &["[2001:db8:2::11]:80"])]).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("of one family"), "{e:?}");
    assert!(
        e[0].message.contains("only with forward = \"tun\""),
        "{e:?}"
    );
}

#[test]
fn an_ipv4_real_server_of_an_ipv6_tun_virtual_server_stays_refused() {
    let vs = "[[virtual_server]]\nname = \"web6\"\naddress = \"[2001:db8::10]:80\"\n\
              forward = \"tun\"\n[[virtual_server.real_server]]\naddress = \"10.1.0.11:80\"\n";
    let e = config(&[DPDK, EXT, INT, vs]).unwrap_err();
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("of one family"), "{e:?}");
    assert!(!e[0].message.contains("tun"), "{e:?}");
}

#[test]
fn an_ipv6_real_server_of_an_ipv4_tun_virtual_server_keeps_the_virtual_port() {
    let e = config(&[DPDK, EXT, INT, &vs4("tun", &["[2001:db8:2::11]:8080"])]).unwrap_err();
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("keeps the virtual port"), "{e:?}");
}

#[test]
fn an_ipv6_sorry_server_of_an_ipv4_tun_virtual_server_is_accepted_and_tunnelled() {
    let vs = vs4("tun", &["10.1.0.11:80"]) + "";
    let vs = vs.replace(
        "forward = \"tun\"\n",
        "forward = \"tun\"\nsorry_server = \"[2001:db8:2::99]:80\"\n",
    );
    let c = config(&[DPDK, EXT, INT, &vs]).unwrap();
    let s = &virtual_services(&c.virtual_servers)[0];
    let sorry = crate::lb::service::SORRY_SERVER;
    assert_eq!(s.tunnel6_addr(sorry), Some(ip6("2001:db8:2::99")));
    assert_eq!(s.tunnel6_addr(0), None);
}

#[test]
fn an_ipv4_tun_service_with_ipv6_real_servers_stays_ipv4_with_its_tunnel_ends() {
    let c = config(&[
        DPDK,
        EXT,
        INT,
        &vs4("tun", &["[2001:db8:2::11]:80", "10.1.0.12:80"]),
    ])
    .unwrap();
    let services = virtual_services(&c.virtual_servers);
    let s = &services[0];
    assert!(!s.is_ipv6());
    assert_eq!(s.tunnel6_addr(0), Some(ip6("2001:db8:2::11")));
    assert_eq!(s.tunnel6_addr(1), None);
    assert_eq!(
        s.real_addr(0),
        Some("[2001:db8:2::11]:80".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        s.real_addr(1),
        Some("10.1.0.12:80".parse::<SocketAddr>().unwrap())
    );
    let table = ServiceTable::new(services);
    let vip = Endpoint::new("10.0.0.100".parse().unwrap(), 80);
    assert_eq!(table.lookup(vip, Protocol::Tcp), Some(0));
}

#[test]
fn an_ipv4_service_without_ipv6_servers_has_no_tunnel_ends() {
    let c = config(&[DPDK, EXT, INT, &vs4("tun", &["10.1.0.11:80"])]).unwrap();
    assert_eq!(virtual_services(&c.virtual_servers)[0].tunnel6, None);
}

#[test]
fn health_checks_probe_the_ipv6_address_of_a_tunnelled_real_server() {
    let c = config(&[DPDK, EXT, INT, &vs4("tun", &["[2001:db8:2::11]:80"])]).unwrap();
    let table = ServiceTable::new(virtual_services(&c.virtual_servers));
    let t = health::targets(&table, &c.virtual_servers);
    assert_eq!(
        t[0].endpoint,
        "[2001:db8:2::11]:80".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn a_reload_keeps_each_tunnel_end_with_its_server_slot() {
    let old = config(&[DPDK, EXT, INT, &vs4("tun", &["[2001:db8:2::11]:80"])]).unwrap();
    let new = config(&[
        DPDK,
        EXT,
        INT,
        &vs4("tun", &["[2001:db8:2::12]:80", "[2001:db8:2::11]:80"]),
    ])
    .unwrap();
    let table = ServiceTable::new(virtual_services(&old.virtual_servers));
    let m = merge(&table, &virtual_services(&new.virtual_servers));
    let s = m.table.get(0);
    // The old server keeps slot 0; the new one is appended.
    assert_eq!(s.tunnel6_addr(0), Some(ip6("2001:db8:2::11")));
    assert_eq!(s.tunnel6_addr(1), Some(ip6("2001:db8:2::12")));
    assert!(!m.table.is_server_draining(0, 0));
}

#[test]
fn a_reload_that_removes_every_ipv6_server_keeps_the_draining_ones_tunnel_end() {
    let old = config(&[DPDK, EXT, INT, &vs4("tun", &["[2001:db8:2::11]:80"])]).unwrap();
    let new = config(&[DPDK, EXT, INT, &vs4("tun", &["10.1.0.12:80"])]).unwrap();
    let table = ServiceTable::new(virtual_services(&old.virtual_servers));
    let m = merge(&table, &virtual_services(&new.virtual_servers));
    let s = m.table.get(0);
    assert!(m.table.is_server_draining(0, 0));
    assert_eq!(s.tunnel6_addr(0), Some(ip6("2001:db8:2::11")));
    assert_eq!(s.tunnel6_addr(1), None);
}

#[test]
fn the_ipv6_example_config_with_an_ipv4_service_over_ipv6_is_valid() {
    let c = Config::from_toml_str(include_str!("../../dpdk-config/ipv6.toml"));
    let c = c.unwrap_or_else(|ConfigErrors(e)| panic!("{e:#?}"));
    let s = virtual_services(&c.virtual_servers);
    let tun46 = s.iter().find(|s| s.name == "web4-over6").unwrap();
    assert_eq!(tun46.tunnel6_addr(1), Some(ip6("2001:db8:2::12")));
}
