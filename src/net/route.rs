//! Routes and longest-prefix match, for IPv4 and IPv6.
//!
//! A balancer's table is small: one connected prefix per interface address
//! plus a handful of `[[route]]`s. The table keeps its routes sorted by
//! prefix length, longest first, so the first match is the longest; a scan
//! of a few entries that share one or two cache lines beats a trie at this
//! size. It is built once per configuration by the control side and shared
//! read-only by the workers. One generic table serves both families
//! ([`RouteTable`] for IPv4, [`RouteTable6`] for IPv6): the match is the
//! prefix's, see `wire::cidr`.

use crate::wire::cidr::{Cidr, CidrAddr};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<A = Ipv4Addr> {
    /// Destinations it covers.
    pub prefix: Cidr<A>,
    /// The gateway, or `None` for a connected subnet (deliver directly).
    pub via: Option<A>,
    /// Output port (interface index in config order).
    pub port: u16,
    /// Our address on that port, the source of packets rvs originates
    /// there (ARP requests, IPIP outer headers, ICMP errors).
    pub src: A,
}

/// Where to send a packet for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop<A = Ipv4Addr> {
    /// Output port.
    pub port: u16,
    /// The address whose MAC the frame goes to: the gateway, or the
    /// destination itself on a connected subnet.
    pub address: A,
    /// Our address on the output port.
    pub src: A,
}

/// Routes, longest prefix first.
#[derive(Clone, Debug)]
pub struct RouteTable<A = Ipv4Addr> {
    routes: Vec<Route<A>>,
}

/// IPv6 routes: the connected prefixes of the interfaces' IPv6 addresses
/// and the IPv6 `[[route]]`s.
pub type RouteTable6 = RouteTable<Ipv6Addr>;

impl<A> Default for RouteTable<A> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<A: CidrAddr> RouteTable<A> {
    /// Builds a table from connected subnets (`(port, address)` of every
    /// interface address) and static routes `(prefix, gateway, port)`.
    /// A static route's source is the port's address whose subnet holds
    /// the gateway, else its first address (or the unspecified address
    /// when the port has none).
    pub fn new(connected: &[(u16, Cidr<A>)], statics: &[(Cidr<A>, A, u16)]) -> RouteTable<A> {
        let mut routes: Vec<Route<A>> = connected
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
                .unwrap_or(A::UNSPECIFIED);
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
    pub fn lookup(&self, dst: A) -> Option<NextHop<A>> {
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
    pub fn connected_port(&self, ip: A) -> Option<u16> {
        self.routes
            .iter()
            .find(|r| r.via.is_none() && r.prefix.contains(ip))
            .map(|r| r.port)
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route<A>] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> crate::wire::Ipv4Cidr {
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

    fn cidr6(s: &str) -> crate::wire::Ipv6Cidr {
        s.parse().unwrap()
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn table6() -> RouteTable6 {
        RouteTable6::new(
            &[
                (0, cidr6("2001:db8:1::2/64")),
                (1, cidr6("2001:db8:10::1/64")),
            ],
            &[
                (cidr6("::/0"), ip6("2001:db8:1::1"), 0),
                (cidr6("2001:db8:20::/48"), ip6("2001:db8:10::fe"), 1),
                (cidr6("2001:db8:20:5::/64"), ip6("2001:db8:1::9"), 0),
            ],
        )
    }

    #[test]
    fn ipv6_connected_prefix_delivers_directly() {
        assert_eq!(
            table6().lookup(ip6("2001:db8:10::11")),
            Some(NextHop {
                port: 1,
                address: ip6("2001:db8:10::11"),
                src: ip6("2001:db8:10::1")
            })
        );
    }

    #[test]
    fn ipv6_default_route_catches_the_rest() {
        assert_eq!(
            table6().lookup(ip6("2001:db8:99::7")),
            Some(NextHop {
                port: 0,
                address: ip6("2001:db8:1::1"),
                src: ip6("2001:db8:1::2")
            })
        );
    }

    #[test]
    fn ipv6_longest_prefix_wins() {
        let t = table6();
        assert_eq!(
            t.lookup(ip6("2001:db8:20:9::1")).unwrap().address,
            ip6("2001:db8:10::fe")
        );
        assert_eq!(
            t.lookup(ip6("2001:db8:20:5::1")).unwrap().address,
            ip6("2001:db8:1::9")
        );
    }

    #[test]
    fn ipv6_no_route_without_default() {
        let t = RouteTable6::new(&[(0, cidr6("2001:db8:1::2/64"))], &[]);
        assert_eq!(t.lookup(ip6("2001:db8:2::1")), None);
        assert_eq!(t.connected_port(ip6("2001:db8:1::77")), Some(0));
    }
}
