//! IPv6 in the configuration: interface addresses, routes and static
//! neighbours of either family, kept apart once parsed.
use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const DPDK: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n";
const EXT: &str = "[[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\", \"2001:db8:1::1/64\"]\n";
const INT: &str = "[[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\naddresses = [\"10.1.0.1/24\", \"2001:db8:2::1/64\"]\n";

fn ok(text: &str) -> Config {
    Config::from_toml_str(text).unwrap_or_else(|e| panic!("expected valid, got:\n{e}"))
}

fn one_error(text: &str) -> ConfigError {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(ConfigErrors(errors)) => {
            assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
            errors.into_iter().next().unwrap()
        }
    }
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn ipv6_interface_addresses_are_kept_apart_from_ipv4_ones() {
    let c = ok(&[DPDK, EXT].concat());
    assert_eq!(c.interfaces[0].addresses, ["10.0.0.1/24".parse().unwrap()]);
    assert_eq!(
        c.interfaces[0].addresses6,
        ["2001:db8:1::1/64".parse().unwrap()]
    );
}

#[test]
fn an_interface_may_have_only_ipv6_addresses() {
    let c = ok(&[DPDK, &EXT.replace("\"10.0.0.1/24\", ", "")].concat());
    assert!(c.interfaces[0].addresses.is_empty());
    assert_eq!(c.interfaces[0].addresses6.len(), 1);
}

#[test]
fn a_malformed_ipv6_address_names_its_index_and_family() {
    let e = one_error(&[DPDK, &EXT.replace("2001:db8:1::1/64", "2001:db8:1::1/129")].concat());
    assert_eq!(e.field, "interface[0].addresses[1]");
    assert!(e.message.contains("invalid IPv6 prefix"), "{e}");
}

#[test]
fn multicast_unspecified_and_loopback_ipv6_addresses_are_errors() {
    for (bad, says) in [
        ("ff02::1/16", "multicast"),
        ("::/0", "::"),
        ("::1/128", "::1"),
    ] {
        let e = one_error(&[DPDK, &EXT.replace("2001:db8:1::1/64", bad)].concat());
        assert_eq!(e.field, "interface[0].addresses[1]", "{bad}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
}

#[test]
fn an_ipv6_address_on_two_interfaces_is_an_error() {
    let e = one_error(
        &[
            DPDK,
            EXT,
            &INT.replace("2001:db8:2::1/64", "2001:db8:1::1/48"),
        ]
        .concat(),
    );
    assert_eq!(e.field, "interface[1].addresses[1]");
    assert!(
        e.message
            .contains("already assigned at interface[0].addresses[1]"),
        "{e}"
    );
}

const ROUTE6: &str =
    "[[route]]\nprefix = \"2001:db8:9::/48\"\nvia = \"2001:db8:2::fe\"\ninterface = \"int\"\n";

#[test]
fn an_ipv6_route_goes_to_routes6() {
    let c = ok(&[DPDK, EXT, INT, ROUTE6].concat());
    assert!(c.routes.is_empty());
    assert_eq!(c.routes6.len(), 1);
    assert_eq!(c.routes6[0].prefix, "2001:db8:9::/48".parse().unwrap());
    assert_eq!(c.routes6[0].via, ip6("2001:db8:2::fe"));
    assert_eq!(c.routes6[0].interface, 1);
}

#[test]
fn an_ipv6_default_route_via_a_link_local_router_is_valid() {
    let text = ROUTE6
        .replace("2001:db8:9::/48", "::/0")
        .replace("2001:db8:2::fe", "fe80::1");
    let c = ok(&[DPDK, EXT, INT, &text].concat());
    assert_eq!(c.routes6[0].via, ip6("fe80::1"));
}

#[test]
fn an_ipv6_next_hop_outside_the_connected_prefixes_is_an_error() {
    let e = one_error(
        &[
            DPDK,
            EXT,
            INT,
            &ROUTE6.replace("2001:db8:2::fe", "2001:db8:7::fe"),
        ]
        .concat(),
    );
    assert_eq!(e.field, "route[0].via");
    assert!(e.message.contains("2001:db8:2::/64"), "{e}");
}

#[test]
fn a_route_mixing_families_is_an_error() {
    let e = one_error(
        &[
            DPDK,
            EXT,
            INT,
            &ROUTE6.replace("2001:db8:2::fe", "10.1.0.254"),
        ]
        .concat(),
    );
    assert_eq!(e.field, "route[0].via");
    assert!(e.message.contains("different address families"), "{e}");
}

#[test]
fn an_ipv6_prefix_with_host_bits_is_an_error() {
    let e = one_error(
        &[
            DPDK,
            EXT,
            INT,
            &ROUTE6.replace("2001:db8:9::/48", "2001:db8:9::1/48"),
        ]
        .concat(),
    );
    assert_eq!(e.field, "route[0].prefix");
    assert!(e.message.contains("2001:db8:9::/48"), "{e}");
}

#[test]
fn an_ipv6_static_neighbour_goes_to_neighbors6() {
    let n = "[[neighbor]]\naddress = \"2001:db8:2::11\"\nmac = \"02:00:00:00:01:0b\"\ninterface = \"int\"\n";
    let c = ok(&[DPDK, EXT, INT, n].concat());
    assert!(c.neighbors.is_empty());
    assert_eq!(c.neighbors6[0].address, ip6("2001:db8:2::11"));
    assert_eq!(c.neighbors6[0].interface, 1);
}

#[test]
fn an_ipv4_only_file_has_no_ipv6_anything() {
    let c = ok(&[DPDK, &EXT.replace(", \"2001:db8:1::1/64\"", "")].concat());
    assert!(c.interfaces[0].addresses6.is_empty());
    assert!(c.routes6.is_empty() && c.neighbors6.is_empty());
    assert_eq!(
        c.interfaces[0].addresses[0].addr(),
        Ipv4Addr::new(10, 0, 0, 1)
    );
}

#[test]
fn the_ipv6_route_table_has_the_connected_prefixes_and_the_routes() {
    let c = ok(&[DPDK, EXT, INT, ROUTE6].concat());
    let t = crate::startup::route_table6(&c);
    let hop = t.lookup(ip6("2001:db8:9::5")).unwrap();
    assert_eq!(
        (hop.port, hop.address, hop.src),
        (1, ip6("2001:db8:2::fe"), ip6("2001:db8:2::1"))
    );
    let hop = t.lookup(ip6("2001:db8:1::5")).unwrap();
    assert_eq!((hop.port, hop.address), (0, ip6("2001:db8:1::5")));
}
