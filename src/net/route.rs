//! IPv4 routes and longest-prefix match.
//!
//! A balancer's table is small: one connected prefix per interface address
//! plus a handful of `[[route]]`s. The table keeps its routes sorted by
//! prefix length, longest first, so the first match is the longest; a scan
//! of a few entries that share one or two cache lines beats a trie at this
//! size. It is built once per configuration by the control side and shared
//! read-only by the workers.

use crate::wire::Ipv4Cidr;
use std::net::Ipv4Addr;

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destinations it covers.
    pub prefix: Ipv4Cidr,
    /// The gateway, or `None` for a connected subnet (deliver directly).
    pub via: Option<Ipv4Addr>,
    /// Output port (interface index in config order).
    pub port: u16,
    /// Our address on that port, the source of packets rvs originates
    /// there (ARP requests, IPIP outer headers, ICMP errors).
    pub src: Ipv4Addr,
}

/// Where to send a packet for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// Output port.
    pub port: u16,
    /// The address whose MAC the frame goes to: the gateway, or the
    /// destination itself on a connected subnet.
    pub address: Ipv4Addr,
    /// Our address on the output port.
    pub src: Ipv4Addr,
}

/// Routes, longest prefix first.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds a table from connected subnets (`(port, address)` of every
    /// interface address) and static routes `(prefix, gateway, port)`.
    /// A static route's source is the port's first address (or the
    /// unspecified address when the port has none).
    pub fn new(connected: &[(u16, Ipv4Cidr)], statics: &[(Ipv4Cidr, Ipv4Addr, u16)]) -> RouteTable {
        let mut routes: Vec<Route> = connected
            .iter()
            .map(|&(port, addr)| Route {
                prefix: addr.network(),
                via: None,
                port,
                src: addr.addr(),
            })
            .collect();
        for &(prefix, via, port) in statics {
            let src = connected
                .iter()
                .find(|(p, a)| *p == port && a.contains(via))
                .or_else(|| connected.iter().find(|(p, _)| *p == port))
                .map(|(_, a)| a.addr())
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            routes.push(Route {
                prefix: prefix.network(),
                via: Some(via),
                port,
                src,
            });
        }
        // Longest prefix first; among equals, connected before static and
        // config order otherwise (sort is stable).
        routes.sort_by_key(|r| (std::cmp::Reverse(r.prefix.prefix_len()), r.via.is_some()));
        RouteTable { routes }
    }

    /// The next hop for `dst`, by longest-prefix match.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.routes
            .iter()
            .find(|r| r.prefix.contains(dst))
            .map(|r| NextHop {
                port: r.port,
                address: r.via.unwrap_or(dst),
                src: r.src,
            })
    }

    /// The connected route covering `ip`, if any: which port a VIP on a
    /// connected subnet is answered on.
    pub fn connected_port(&self, ip: Ipv4Addr) -> Option<u16> {
        self.routes
            .iter()
            .find(|r| r.via.is_none() && r.prefix.contains(ip))
            .map(|r| r.port)
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn table() -> RouteTable {
        RouteTable::new(
            &[(0, cidr("203.0.113.2/24")), (1, cidr("10.1.0.1/24"))],
            &[
                (cidr("0.0.0.0/0"), ip("203.0.113.1"), 0),
                (cidr("10.2.0.0/16"), ip("10.1.0.254"), 1),
                (cidr("10.2.3.0/24"), ip("203.0.113.9"), 0),
            ],
        )
    }

    #[test]
    fn connected_subnet_delivers_directly() {
        let h = table().lookup(ip("10.1.0.11")).unwrap();
        assert_eq!(
            h,
            NextHop {
                port: 1,
                address: ip("10.1.0.11"),
                src: ip("10.1.0.1")
            }
        );
    }

    #[test]
    fn default_route_catches_the_rest() {
        let h = table().lookup(ip("198.51.100.7")).unwrap();
        assert_eq!(
            h,
            NextHop {
                port: 0,
                address: ip("203.0.113.1"),
                src: ip("203.0.113.2")
            }
        );
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(t.lookup(ip("10.2.9.9")).unwrap().address, ip("10.1.0.254"));
        assert_eq!(t.lookup(ip("10.2.3.4")).unwrap().address, ip("203.0.113.9"));
    }

    #[test]
    fn no_route_without_default() {
        let t = RouteTable::new(&[(0, cidr("192.0.2.1/24"))], &[]);
        assert_eq!(t.lookup(ip("198.51.100.1")), None);
    }

    #[test]
    fn connected_port_ignores_static_routes() {
        let t = table();
        assert_eq!(t.connected_port(ip("203.0.113.100")), Some(0));
        assert_eq!(t.connected_port(ip("10.2.0.1")), None);
    }

    #[test]
    fn static_route_source_is_the_address_on_the_gateways_subnet() {
        let t = RouteTable::new(
            &[(0, cidr("192.0.2.1/24")), (0, cidr("198.51.100.1/24"))],
            &[(cidr("0.0.0.0/0"), ip("198.51.100.254"), 0)],
        );
        assert_eq!(t.lookup(ip("8.8.8.8")).unwrap().src, ip("198.51.100.1"));
    }
}
