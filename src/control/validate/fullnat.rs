//! `local_addresses` and `local_port_range` of a `[[virtual_server]]`
//! (FullNAT, `crate::lb::local_pool`): required with `forward =
//! "fullnat"`, refused otherwise; each address a host's, not the
//! balancer's own interface address, not a VIP, and reachable towards the
//! real servers (on a connected subnet, where rvs answers ARP for it, or
//! routed to rvs by the network, which the file cannot check); the range
//! inside 1..=65535, low to high.
//!
//! IPv6 (FullNAT over IPv6): an IPv6 virtual server takes IPv6 local
//! addresses, an IPv4 one IPv4 addresses ([`local_family`], the one place
//! that says which family a local address may be). IPv6 local addresses
//! are checked for being host addresses, not the balancer's own, not a
//! VIP; not for reachability (as IPv6 real servers: the IPv6 routes are
//! not at hand here).

use super::{check_reachable, int_in, Errors, Interface, RawVirtualServer, RouteConfig, S};
use crate::control::config::{ForwardMethod, VirtualServerConfig};
use crate::lb::service::LocalAddresses;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The FullNAT settings of one virtual server (`f` names a key of it);
/// the default (none) for other methods, `None` when something is wrong.
pub(super) fn local_addresses(
    t: &RawVirtualServer,
    forward: Option<ForwardMethod>,
    vip: Option<SocketAddr>,
    interfaces: &[Interface],
    routes: Option<&[RouteConfig]>,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<LocalAddresses> {
    let fullnat = forward == Some(ForwardMethod::FullNat);
    if !fullnat {
        let mut ok = true;
        for (key, span) in [
            (
                "local_addresses",
                t.local_addresses.as_ref().map(|v| v.span()),
            ),
            (
                "local_port_range",
                t.local_port_range.as_ref().map(|v| v.span()),
            ),
        ] {
            if let (Some(span), Some(forward)) = (span, forward) {
                errors.push(
                    f(key),
                    Some(span),
                    format!(
                        "{key} is for forward = \"fullnat\", not \"{forward}\": only FullNAT \
                         rewrites the client's address to a local one"
                    ),
                );
                ok = false;
            }
        }
        return ok.then(LocalAddresses::default);
    }
    let Some(list) = t.local_addresses.as_ref() else {
        errors.push(
            f("local_addresses"),
            Some(t_span(t)),
            "missing required field: forward = \"fullnat\" needs the local addresses real \
             servers will see as the client, e.g. local_addresses = [\"10.2.0.100\"]",
        );
        return None;
    };
    let mut addresses = Vec::new();
    let mut addresses6 = Vec::new();
    let mut ok = true;
    if list.get_ref().0.is_empty() {
        errors.push(
            f("local_addresses"),
            Some(list.span()),
            "needs at least one address",
        );
        ok = false;
    }
    if list.get_ref().0.len() > VirtualServerConfig::MAX_LOCAL_ADDRESSES {
        errors.push(
            f("local_addresses"),
            Some(list.span()),
            format!(
                "at most {} local addresses",
                VirtualServerConfig::MAX_LOCAL_ADDRESSES
            ),
        );
        ok = false;
    }
    for (j, v) in list.get_ref().0.iter().enumerate() {
        let field = format!("{}[{j}]", f("local_addresses"));
        let a = local_address(v, &field, interfaces, routes, errors);
        let a = a.filter(|&a| match vip {
            Some(vip) => local_family(vip, a, &field, Some(v.span()), errors),
            None => true,
        });
        match a {
            Some(a)
                if addresses.iter().any(|&x| IpAddr::V4(x) == a)
                    || addresses6.iter().any(|&x| IpAddr::V6(x) == a) =>
            {
                errors.push(&field, Some(v.span()), format!("{a} is listed twice"));
                ok = false;
            }
            Some(IpAddr::V4(a)) => addresses.push(a),
            Some(IpAddr::V6(a)) => addresses6.push(a),
            None => ok = false,
        }
    }
    let ports = port_range(t, f, errors);
    match (ok, ports) {
        (true, Some(ports)) => Some(LocalAddresses {
            addresses,
            ports,
            addresses6,
        }),
        _ => None,
    }
}

/// The one place that says which family a local address `ip` of the
/// virtual server `vip` may be: an IPv4 virtual server's are IPv4; an
/// IPv6 virtual server's are IPv6 (FullNAT over IPv6) or IPv4 (NAT64:
/// IPv4 real servers behind an IPv6 VIP), which [`ipv6_servers`] matches
/// with its servers. False (reported at `field`) when refused.
fn local_family(
    vip: SocketAddr,
    ip: IpAddr,
    field: &str,
    span: Option<std::ops::Range<usize>>,
    errors: &mut Errors,
) -> bool {
    if vip.is_ipv6() || ip.is_ipv4() {
        return true;
    }
    errors.push(
        field,
        span,
        format!(
            "{ip} is IPv6 but the virtual server {vip} is IPv4: an IPv4 virtual server takes \
             IPv4 local addresses"
        ),
    );
    false
}

/// The span to report a missing key of `t` at.
fn t_span(t: &RawVirtualServer) -> std::ops::Range<usize> {
    t.forward.as_ref().map_or(0..0, |v| v.span())
}

fn local_address(
    v: &S<String>,
    field: &str,
    interfaces: &[Interface],
    routes: Option<&[RouteConfig]>,
    errors: &mut Errors,
) -> Option<IpAddr> {
    let ip = match v.get_ref().parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip,
        Ok(IpAddr::V6(ip)) => return local_address6(ip, v, field, interfaces, errors),
        Err(_) => {
            errors.push(
                field,
                Some(v.span()),
                format!(
                    "{:?} is not an IP address (e.g. \"10.2.0.100\" or \"2001:db8:2::100\")",
                    v.get_ref()
                ),
            );
            return None;
        }
    };
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        errors.push(field, Some(v.span()), format!("{ip} is not a host address"));
        return None;
    }
    let owner = interfaces
        .iter()
        .find(|i| i.addresses.iter().any(|a| a.addr() == ip));
    if own_address(owner, ip, "ARP and ICMP", v, field, errors) {
        return None;
    }
    check_reachable(
        "local address",
        ip,
        ForwardMethod::FullNat,
        interfaces,
        routes,
        field,
        Some(v.span()),
        errors,
    )
    .then_some(IpAddr::V4(ip))
}

/// An IPv6 local address: a unicast host address (not link-local: it
/// is reached through routes too), not the balancer's own.
fn local_address6(
    ip: Ipv6Addr,
    v: &S<String>,
    field: &str,
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<IpAddr> {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || ip.is_unicast_link_local() {
        errors.push(field, Some(v.span()), format!("{ip} is not a host address"));
        return None;
    }
    let owner = interfaces
        .iter()
        .find(|i| i.addresses6.iter().any(|a| a.addr() == ip));
    if own_address(
        owner,
        ip,
        "neighbour discovery and ICMPv6",
        v,
        field,
        errors,
    ) {
        return None;
    }
    Some(IpAddr::V6(ip))
}

/// Refuses local address `ip` when `owner`, an interface, has it: replies
/// to it would meet the interface's `answered_by` (ARP and ICMP, or
/// neighbour discovery and ICMPv6) instead of the connection table.
/// True when refused.
fn own_address(
    owner: Option<&Interface>,
    ip: impl std::fmt::Display,
    answered_by: &str,
    v: &S<String>,
    field: &str,
    errors: &mut Errors,
) -> bool {
    let Some(i) = owner else {
        return false;
    };
    let name = i.name.clone().unwrap_or_default();
    errors.push(
        field,
        Some(v.span()),
        format!(
            "{ip} is the balancer's own address on interface {name:?}; a local address \
             must not be one of its own, or replies to it would meet the interface's \
             {answered_by} instead of the connection table"
        ),
    );
    true
}

/// `local_port_range = [lo, hi]`: default `DEFAULT_LOCAL_PORT_RANGE`.
fn port_range(
    t: &RawVirtualServer,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<(u16, u16)> {
    let Some(v) = t.local_port_range.as_ref() else {
        return Some(VirtualServerConfig::DEFAULT_LOCAL_PORT_RANGE);
    };
    let field = f("local_port_range");
    let items = &v.get_ref().0;
    if items.len() != 2 {
        errors.push(
            &field,
            Some(v.span()),
            "must be two ports, [first, last], e.g. [1024, 65535]",
        );
        return None;
    }
    let lo = int_in(&items[0], &format!("{field}[0]"), 1, 65535, errors);
    let hi = int_in(&items[1], &format!("{field}[1]"), 1, 65535, errors);
    let (lo, hi) = (lo? as u16, hi? as u16);
    if lo > hi {
        errors.push(
            &field,
            Some(v.span()),
            format!("the first port ({lo}) is above the last ({hi})"),
        );
        return None;
    }
    Some((lo, hi))
}

/// The servers of an IPv6 virtual server forwarding by FullNAT are of its
/// local addresses' family: IPv6 local addresses serve IPv6 servers
/// (FullNAT over IPv6), IPv4 ones IPv4 servers (NAT64,
/// `lb::xmit::nat64`); both families at once are refused. False when one
/// is not.
pub(super) fn ipv6_servers(
    local: &LocalAddresses,
    real_servers: Option<&[crate::control::config::RealServerConfig]>,
    sorry_server: Option<Option<std::net::SocketAddr>>,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> bool {
    if !local.addresses.is_empty() && !local.addresses6.is_empty() {
        errors.push(
            f("local_addresses"),
            None,
            "IPv4 and IPv6 local addresses at once: IPv6 ones serve IPv6 real servers (FullNAT \
             over IPv6), IPv4 ones IPv4 real servers (NAT64); choose one family"
                .to_string(),
        );
        return false;
    }
    let nat64 = !local.addresses.is_empty();
    let refuse = |field: String, addr: std::net::SocketAddr, errors: &mut Errors| {
        let message = if nat64 {
            format!(
                "{addr}: this IPv6 virtual server has IPv4 local_addresses (NAT64), so its \
                 servers are IPv4; IPv6 servers take IPv6 local_addresses (FullNAT over IPv6)"
            )
        } else {
            format!(
                "{addr}: this IPv6 virtual server has IPv6 local_addresses (FullNAT over IPv6), \
                 so its servers are IPv6; IPv4 servers behind an IPv6 VIP take IPv4 \
                 local_addresses (NAT64)"
            )
        };
        errors.push(field, None, message);
    };
    let wrong = |a: std::net::SocketAddr| a.is_ipv6() == nat64;
    let mut ok = true;
    for (j, r) in real_servers.unwrap_or_default().iter().enumerate() {
        if wrong(r.address) {
            refuse(
                format!("{}[{j}].address", f("real_server")),
                r.address,
                errors,
            );
            ok = false;
        }
    }
    if let Some(Some(addr)) = sorry_server {
        if wrong(addr) {
            refuse(f("sorry_server"), addr, errors);
            ok = false;
        }
    }
    ok
}

/// Across virtual servers: a local address is no VIP, and services of one
/// protocol sharing a local address give it the same port range (their
/// connections share its ports).
pub(super) fn across(services: &[VirtualServerConfig], errors: &mut Errors) {
    across6(services, errors);
    for (i, s) in services.iter().enumerate() {
        for &a in &s.local.addresses {
            not_a_vip(services, i, a, errors);
            if let Some((j, o)) = services.iter().enumerate().find(|(_, o)| {
                o.address.is_ipv4() != s.address.is_ipv4() && o.local.addresses.contains(&a)
            }) {
                if s.address.is_ipv6() {
                    errors.push(
                        format!("virtual_server[{i}].local_addresses"),
                        None,
                        format!(
                            "{a} is also a local address of the IPv4 virtual server \
                             virtual_server[{j}] ({:?}): a NAT64 service's local addresses are \
                             its own (a reply to one is looked up among IPv6 connections)",
                            o.name
                        ),
                    );
                }
            }
            one_port_range(services, i, a, |o| &o.local.addresses, errors);
        }
    }
}

/// [`across`] for IPv6 local addresses: no IPv6 VIP, one range per
/// (address, protocol).
fn across6(services: &[VirtualServerConfig], errors: &mut Errors) {
    for (i, s) in services.iter().enumerate() {
        for &a in &s.local.addresses6 {
            not_a_vip(services, i, a, errors);
            one_port_range(services, i, a, |o| &o.local.addresses6, errors);
        }
    }
}

/// Local address `a` of `services[i]` (of either family) is no
/// service's VIP: replies to it would look like new clients.
fn not_a_vip(
    services: &[VirtualServerConfig],
    i: usize,
    a: impl Into<IpAddr> + Copy + std::fmt::Display,
    errors: &mut Errors,
) {
    if let Some(v) = services.iter().find(|v| v.address.ip() == a.into()) {
        errors.push(
            format!("virtual_server[{i}].local_addresses"),
            None,
            format!(
                "{a} is the VIP of virtual server {:?}: a local address must not be a \
                 VIP (replies to it would look like new clients)",
                v.name
            ),
        );
    }
}

/// Local address `a` of `services[i]` has the port range of an earlier
/// service of the same protocol that has it too (`of`: a service's local
/// addresses of `a`'s family); their connections share its ports.
fn one_port_range<A: PartialEq + std::fmt::Display>(
    services: &[VirtualServerConfig],
    i: usize,
    a: A,
    of: impl Fn(&VirtualServerConfig) -> &[A],
    errors: &mut Errors,
) {
    let s = &services[i];
    if let Some((j, o)) = services.iter().enumerate().take(i).find(|(_, o)| {
        o.protocol == s.protocol && of(o).contains(&a) && o.local.ports != s.local.ports
    }) {
        errors.push(
            format!("virtual_server[{i}].local_port_range"),
            None,
            format!(
                "{a} is also a {} local address of virtual_server[{j}] ({:?}) with \
                 ports {}-{}: services sharing a local address share its ports, so \
                 give them the same range",
                s.protocol, o.name, o.local.ports.0, o.local.ports.1
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::control::config::Config;
    use crate::control::error::ConfigErrors;

    const BASE: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n\
        [[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\"]\n\
        [[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\naddresses = [\"10.2.0.1/24\"]\n\
        [[route]]\nprefix = \"10.3.0.0/24\"\nvia = \"10.2.0.254\"\ninterface = \"int\"\n";

    fn vs(forward: &str, extra: &str) -> String {
        format!(
            "{BASE}[[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\n\
             forward = \"{forward}\"\n{extra}\n[[virtual_server.real_server]]\n\
             address = \"10.3.0.11:8080\"\n"
        )
    }

    /// (field, message) of each error.
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

    #[test]
    fn fullnat_takes_its_local_addresses_and_the_default_port_range() {
        let c = Config::from_toml_str(&vs(
            "fullnat",
            "local_addresses = [\"10.2.0.100\", \"10.2.0.101\"]",
        ))
        .unwrap();
        let v = &c.virtual_servers[0];
        assert_eq!(v.forward.name(), "fullnat");
        assert_eq!(
            v.local.addresses,
            vec![
                "10.2.0.100".parse::<std::net::Ipv4Addr>().unwrap(),
                "10.2.0.101".parse().unwrap()
            ]
        );
        assert_eq!(v.local.ports, (1024, 65535));
    }

    #[test]
    fn a_port_range_may_be_given() {
        let c = Config::from_toml_str(&vs(
            "fullnat",
            "local_addresses = [\"10.2.0.100\"]\nlocal_port_range = [2000, 2001]",
        ))
        .unwrap();
        assert_eq!(c.virtual_servers[0].local.ports, (2000, 2001));
    }

    #[test]
    fn fullnat_without_local_addresses_is_refused() {
        let (field, msg) = one_error(&vs("fullnat", ""));
        assert_eq!(field, "virtual_server[0].local_addresses");
        assert!(msg.contains("missing required field"), "{msg}");
    }

    #[test]
    fn local_addresses_with_another_method_are_refused() {
        let (field, msg) = one_error(&vs("nat", "local_addresses = [\"10.2.0.100\"]"));
        assert_eq!(field, "virtual_server[0].local_addresses");
        assert!(msg.contains("not \"nat\""), "{msg}");
        let (field, _) = one_error(&vs("nat", "local_port_range = [2000, 2001]"));
        assert_eq!(field, "virtual_server[0].local_port_range");
    }

    #[test]
    fn a_local_address_may_not_be_the_balancers_own_or_a_vip() {
        let (field, msg) = one_error(&vs("fullnat", "local_addresses = [\"10.2.0.1\"]"));
        assert_eq!(field, "virtual_server[0].local_addresses[0]");
        assert!(msg.contains("own address"), "{msg}");
        let (field, msg) = one_error(&vs("fullnat", "local_addresses = [\"10.0.0.100\"]"));
        assert_eq!(field, "virtual_server[0].local_addresses");
        assert!(msg.contains("VIP"), "{msg}");
    }

    #[test]
    fn a_local_address_must_be_reachable() {
        let (field, msg) = one_error(&vs("fullnat", "local_addresses = [\"172.16.0.1\"]"));
        assert_eq!(field, "virtual_server[0].local_addresses[0]");
        assert!(msg.contains("172.16.0.1"), "{msg}");
    }

    #[test]
    fn a_reversed_or_short_port_range_is_refused() {
        let (field, msg) = one_error(&vs(
            "fullnat",
            "local_addresses = [\"10.2.0.100\"]\nlocal_port_range = [3000, 2000]",
        ));
        assert_eq!(field, "virtual_server[0].local_port_range");
        assert!(msg.contains("above"), "{msg}");
        let (field, _) = one_error(&vs(
            "fullnat",
            "local_addresses = [\"10.2.0.100\"]\nlocal_port_range = [0, 2000]",
        ));
        assert_eq!(field, "virtual_server[0].local_port_range[0]");
        let (field, _) = one_error(&vs(
            "fullnat",
            "local_addresses = [\"10.2.0.100\"]\nlocal_port_range = [2000]",
        ));
        assert_eq!(field, "virtual_server[0].local_port_range");
    }

    #[test]
    fn syn_proxy_is_refused_with_fullnat() {
        let (field, msg) = one_error(&vs(
            "fullnat",
            "local_addresses = [\"10.2.0.100\"]\nsyn_proxy = true",
        ));
        assert_eq!(field, "virtual_server[0].syn_proxy");
        assert!(msg.contains("fullnat"), "{msg}");
    }

    #[test]
    fn a_passive_check_is_allowed_with_fullnat() {
        Config::from_toml_str(&vs(
            "fullnat",
            "local_addresses = [\"10.2.0.100\"]\n[virtual_server.passive_check]\nenabled = true",
        ))
        .unwrap();
    }
}

#[cfg(test)]
#[path = "fullnat6_tests.rs"]
mod tests6;
