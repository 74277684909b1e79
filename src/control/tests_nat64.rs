//! NAT64 in the configuration: an IPv6 virtual server forwarding by
//! FullNAT from IPv4 local addresses to IPv4 real servers is accepted
//! and becomes a NAT64 service; every other mix of families is still
//! refused, naming the field.

use super::reload::virtual_services;
use super::*;
use crate::lb::service::ServiceTable;
use std::net::{Ipv4Addr, SocketAddr};

const DPDK: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n";
const EXT: &str = "[[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\"]\n";
const INT: &str = "[[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\naddresses = [\"10.1.0.1/24\"]\n";

fn vs(address: &str, forward: &str, extra: &str, servers: &[&str]) -> String {
    let mut s = format!(
        "[[virtual_server]]\nname = \"web6\"\naddress = \"{address}\"\nforward = \"{forward}\"\n{extra}\n"
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

const LOCALS: &str = "local_addresses = [\"10.1.0.100\"]";

#[test]
fn an_ipv6_fullnat_server_with_ipv4_real_servers_is_nat64() {
    let c = config(&[
        DPDK,
        EXT,
        INT,
        &vs("[2001:db8::10]:80", "fullnat", LOCALS, &["10.1.0.11:8080"]),
    ])
    .unwrap();
    let services = virtual_services(&c.virtual_servers);
    let s = &services[0];
    assert!(s.is_nat64());
    assert_eq!(s.real_servers[0].endpoint.ip, Ipv4Addr::new(10, 1, 0, 11));
    assert_eq!(
        s.real_addr(0),
        Some("10.1.0.11:8080".parse::<SocketAddr>().unwrap()),
        "printed and health-checked at its IPv4 address"
    );
    let table = ServiceTable::new(services);
    assert!(table.is_nat64_local(Ipv4Addr::new(10, 1, 0, 100)));
    assert!(table.is_local_address(Ipv4Addr::new(10, 1, 0, 100)));
}

#[test]
fn fullnat_from_ipv6_to_ipv6_real_servers_is_refused_naming_the_server() {
    let e = config(&[
        DPDK,
        EXT,
        INT,
        &vs(
            "[2001:db8::10]:80",
            "fullnat",
            LOCALS,
            &["[2001:db8:2::11]:8080"],
        ),
    ])
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("NAT64"), "{e:?}");
}

#[test]
fn nat_from_ipv6_to_ipv4_is_still_refused() {
    let e = config(&[
        DPDK,
        EXT,
        INT,
        &vs("[2001:db8::10]:80", "nat", "", &["10.1.0.11:8080"]),
    ])
    .unwrap_err();
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("of one family"), "{e:?}");
}

#[test]
fn fullnat_from_ipv4_to_ipv6_is_still_refused() {
    let e = config(&[
        DPDK,
        EXT,
        INT,
        &vs(
            "10.0.0.100:80",
            "fullnat",
            LOCALS,
            &["[2001:db8:2::11]:8080"],
        ),
    ])
    .unwrap_err();
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
}

#[test]
fn a_nat64_local_address_may_not_be_an_ipv4_services_too() {
    let v4 = vs("10.0.0.100:80", "fullnat", LOCALS, &["10.1.0.12:8080"]).replace("web6", "web4");
    let e = config(&[
        DPDK,
        EXT,
        INT,
        &vs("[2001:db8::10]:80", "fullnat", LOCALS, &["10.1.0.11:8080"]),
        &v4,
    ])
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "virtual_server[0].local_addresses");
    assert!(e[0].message.contains("NAT64"), "{e:?}");
}

#[test]
fn an_icmp_check_probes_nat64_real_servers_over_ipv4() {
    let extra = format!("{LOCALS}\n[virtual_server.health_check]\ntype = \"icmp\"\n");
    let c = config(&[
        DPDK,
        EXT,
        INT,
        &vs("[2001:db8::10]:80", "fullnat", &extra, &["10.1.0.11:8080"]),
    ])
    .unwrap();
    assert_eq!(
        c.virtual_servers[0].health_check.kind,
        crate::control::config::HealthCheckKind::Icmp
    );
}
