//! `local_addresses` of an IPv6 FullNAT virtual server: IPv6 local
//! addresses in front of IPv6 real servers are taken; mixing families is
//! refused naming the field (NAT64, IPv4 local addresses and real servers
//! behind an IPv6 VIP, among them, until it is built).

use crate::control::config::Config;
use crate::control::error::ConfigErrors;
use std::net::Ipv6Addr;

const BASE: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n\
    [[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\n\
    addresses = [\"10.0.0.1/24\", \"2001:db8:1::1/64\"]\n\
    [[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\n\
    addresses = [\"10.2.0.1/24\", \"2001:db8:2::1/64\"]\n";

/// An IPv6 FullNAT virtual server with `extra` keys and one real server.
fn vs6(extra: &str, real: &str) -> String {
    format!(
        "{BASE}[[virtual_server]]\nname = \"web6\"\naddress = \"[2001:db8:1::100]:80\"\n\
         forward = \"fullnat\"\n{extra}\n[[virtual_server.real_server]]\naddress = \"{real}\"\n"
    )
}

const RS6: &str = "[2001:db8:2::11]:8080";

fn errors(text: &str) -> Vec<(String, String)> {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(ConfigErrors(e)) => e.into_iter().map(|e| (e.field, e.message)).collect(),
    }
}

fn one_error(text: &str) -> (String, String) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn an_ipv6_virtual_server_takes_ipv6_local_addresses() {
    let c = Config::from_toml_str(&vs6(
        "local_addresses = [\"2001:db8:2::100\", \"2001:db8:2::101\"]\nlocal_port_range = [2000, 2999]",
        RS6,
    ))
    .unwrap();
    let v = &c.virtual_servers[0];
    assert_eq!(
        v.local.addresses6,
        [v6("2001:db8:2::100"), v6("2001:db8:2::101")]
    );
    assert!(v.local.addresses.is_empty());
    assert_eq!(v.local.ports, (2000, 2999));
    let s = crate::control::reload::virtual_service(v);
    assert_eq!(s.local.addresses6, v.local.addresses6);
    assert!(s.is_ipv6());
}

#[test]
fn local_addresses_of_both_families_on_an_ipv6_virtual_server_are_refused_naming_it() {
    let (field, msg) = one_error(&vs6(
        "local_addresses = [\"2001:db8:2::100\", \"10.2.0.100\"]",
        RS6,
    ));
    assert_eq!(field, "virtual_server[0].local_addresses");
    assert!(msg.contains("choose one family"), "{msg}");
}

#[test]
fn ipv4_real_servers_behind_ipv6_local_addresses_are_refused_naming_them() {
    let (field, msg) = one_error(&vs6(
        "local_addresses = [\"2001:db8:2::100\"]",
        "10.2.0.11:8080",
    ));
    assert_eq!(field, "virtual_server[0].real_server[0].address");
    assert!(msg.contains("NAT64"), "{msg}");
}

#[test]
fn an_ipv6_local_address_on_an_ipv4_virtual_server_is_refused_naming_it() {
    let text = format!(
        "{BASE}[[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\n\
         forward = \"fullnat\"\nlocal_addresses = [\"2001:db8:2::100\"]\n\
         [[virtual_server.real_server]]\naddress = \"10.2.0.11:8080\"\n"
    );
    let (field, msg) = one_error(&text);
    assert_eq!(field, "virtual_server[0].local_addresses[0]");
    assert!(msg.contains("IPv4 virtual server takes IPv4"), "{msg}");
}

#[test]
fn an_ipv6_local_address_may_not_be_the_balancers_own_or_a_vip() {
    let (field, msg) = one_error(&vs6("local_addresses = [\"2001:db8:2::1\"]", RS6));
    assert_eq!(field, "virtual_server[0].local_addresses[0]");
    assert!(msg.contains("own address"), "{msg}");
    let (field, msg) = one_error(&vs6("local_addresses = [\"2001:db8:1::100\"]", RS6));
    assert_eq!(field, "virtual_server[0].local_addresses");
    assert!(msg.contains("VIP"), "{msg}");
}

#[test]
fn an_ipv6_local_address_must_be_a_host_address_listed_once() {
    for bad in ["::", "ff02::1", "::1", "fe80::1"] {
        let (field, msg) = one_error(&vs6(&format!("local_addresses = [\"{bad}\"]"), RS6));
        assert_eq!(field, "virtual_server[0].local_addresses[0]");
        assert!(msg.contains("not a host address"), "{bad}: {msg}");
    }
    let (field, msg) = one_error(&vs6(
        "local_addresses = [\"2001:db8:2::100\", \"2001:db8:2::100\"]",
        RS6,
    ));
    assert_eq!(field, "virtual_server[0].local_addresses[1]");
    assert!(msg.contains("twice"), "{msg}");
}

#[test]
fn client_address_and_the_syn_proxy_stay_refused_on_ipv6_fullnat() {
    let locals = "local_addresses = [\"2001:db8:2::100\"]\n";
    let e = errors(&vs6(&format!("{locals}client_address = \"proxy-v2\""), RS6));
    assert!(
        e.iter()
            .any(|(f, _)| f == "virtual_server[0].client_address"),
        "{e:#?}"
    );
    let e = errors(&vs6(&format!("{locals}syn_proxy = true"), RS6));
    assert!(
        e.iter().any(|(f, _)| f == "virtual_server[0].syn_proxy"),
        "{e:#?}"
    );
}

#[test]
fn services_sharing_an_ipv6_local_address_give_it_one_range() {
    let text = format!(
        "{}[[virtual_server]]\nname = \"b\"\naddress = \"[2001:db8:1::101]:80\"\n\
         forward = \"fullnat\"\nlocal_addresses = [\"2001:db8:2::100\"]\nlocal_port_range = [3000, 3999]\n\
         [[virtual_server.real_server]]\naddress = \"{RS6}\"\n",
        vs6("local_addresses = [\"2001:db8:2::100\"]", RS6)
    );
    let (field, msg) = one_error(&text);
    assert_eq!(field, "virtual_server[1].local_port_range");
    assert!(msg.contains("same range"), "{msg}");
}
