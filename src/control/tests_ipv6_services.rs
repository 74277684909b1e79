//! IPv6 virtual servers in the configuration: parsed into typed
//! addresses, one family per service, errors naming the field; and the
//! services the workers get from them.

use super::reload::virtual_services;
use super::*;
use crate::lb::service::Protocol;
use std::net::{Ipv6Addr, SocketAddr};

const DPDK: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n";
const EXT: &str = "[[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\"]\n";
const INT: &str = "[[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\naddresses = [\"10.1.0.1/24\"]\n";

fn vs6(forward: &str, servers: &[&str]) -> String {
    let mut s = format!(
        "[[virtual_server]]\nname = \"web6\"\naddress = \"[2001:db8::10]:80\"\nforward = \"{forward}\"\n"
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

#[test]
fn an_ipv6_virtual_server_and_its_real_servers_parse() {
    let c = config(&[
        DPDK,
        EXT,
        INT,
        &vs6("nat", &["[2001:db8:2::11]:8080", "[2001:db8:2::12]:8080"]),
    ])
    .unwrap();
    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.address,
        "[2001:db8::10]:80".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        vs.real_servers[1].address,
        "[2001:db8:2::12]:8080".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn an_ipv6_virtual_server_becomes_an_ipv6_service() {
    let c = config(&[DPDK, EXT, INT, &vs6("nat", &["[2001:db8:2::11]:8080"])]).unwrap();
    let services = virtual_services(&c.virtual_servers);
    let s = &services[0];
    assert!(s.is_ipv6());
    assert_eq!(
        s.vip_addr(),
        "[2001:db8::10]:80".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        s.real_endpoint6(0).map(|e| (e.ip, e.port)),
        Some(("2001:db8:2::11".parse::<Ipv6Addr>().unwrap(), 8080))
    );
    let table = crate::lb::service::ServiceTable::new(services);
    let vip = crate::lb::xmit::Endpoint6::new("2001:db8::10".parse().unwrap(), 80);
    assert_eq!(table.lookup6(vip, Protocol::Tcp), Some(0));
}

#[test]
fn an_ipv4_real_server_of_an_ipv6_virtual_server_is_refused_naming_it() {
    let e = config(&[DPDK, EXT, INT, &vs6("nat", &["10.1.0.11:8080"])]).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("of one family"), "{e:?}");
}

#[test]
fn an_ipv6_real_server_of_an_ipv4_virtual_server_is_refused() {
    let vs = "[[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\nforward = \"nat\"\n\
              [[virtual_server.real_server]]\naddress = \"[2001:db8:2::11]:8080\"\n";
    let e = config(&[DPDK, EXT, INT, vs]).unwrap_err();
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("IPv6"), "{e:?}");
}

#[test]
fn a_sorry_server_of_the_other_family_is_refused() {
    let vs = format!(
        "{}sorry_server = \"10.1.0.99:8080\"\n",
        vs6("nat", &[]).trim_end_matches('\n').to_string() + "\n"
    );
    let e = config(&[DPDK, EXT, INT, &vs]).unwrap_err();
    assert_eq!(e[0].field, "virtual_server[0].sorry_server");
}

#[test]
fn bad_ipv6_endpoints_are_refused_naming_the_field() {
    for (addr, says) in [
        ("[::]:80", "not a host address"),
        ("[ff02::1]:80", "multicast"),
        ("[::1]:80", "loopback"),
        ("[2001:db8::10]:0", "port must not be 0"),
        ("[2001:db8::10]", "expected [IPv6]:PORT"),
    ] {
        let vs = format!(
            "[[virtual_server]]\nname = \"web6\"\naddress = \"{addr}\"\nforward = \"nat\"\n"
        );
        let e = config(&[DPDK, EXT, INT, &vs]).unwrap_err();
        assert_eq!(e[0].field, "virtual_server[0].address", "{addr}");
        assert!(e[0].message.contains(says), "{addr}: {e:?}");
    }
}

#[test]
fn dr_over_ipv6_keeps_the_virtual_port() {
    let e = config(&[DPDK, EXT, INT, &vs6("dr", &["[2001:db8:2::11]:8080"])]).unwrap_err();
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("keeps the virtual port"), "{e:?}");
}

#[test]
fn an_ipv4_and_an_ipv6_service_on_one_port_are_both_kept() {
    let v4 = "[[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\nforward = \"nat\"\n";
    let c = config(&[DPDK, EXT, INT, v4, &vs6("nat", &[])]).unwrap();
    assert_eq!(c.virtual_servers.len(), 2);
}

#[test]
fn an_ipv6_service_is_printed_with_bracketed_addresses() {
    let c = config(&[DPDK, EXT, INT, &vs6("nat", &["[2001:db8:2::11]:8080"])]).unwrap();
    let s = &virtual_services(&c.virtual_servers)[0];
    assert!(
        super::report::describe(s).contains("[2001:db8::10]:80/tcp"),
        "{}",
        super::report::describe(s)
    );
    assert_eq!(
        s.real_addr(0).map(|a| a.to_string()),
        Some("[2001:db8:2::11]:8080".to_string())
    );
}

#[test]
fn the_syn_proxy_on_an_ipv6_virtual_server_is_refused_naming_it() {
    let vs = vs6("nat", &["[2001:db8:2::11]:8080"]).replace(
        "forward = \"nat\"\n",
        "forward = \"nat\"\nsyn_proxy = true\n",
    );
    let e = config(&[DPDK, EXT, INT, &vs]).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "virtual_server[0].syn_proxy");
}

#[test]
fn an_icmp_health_check_of_ipv6_real_servers_is_refused_naming_it() {
    let vs = vs6("nat", &["[2001:db8:2::11]:8080"]).replace(
        "forward = \"nat\"\n",
        "forward = \"nat\"\n[virtual_server.health_check]\ntype = \"icmp\"\n",
    );
    let e = config(&[DPDK, EXT, INT, &vs]).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "virtual_server[0].health_check.type");
}
