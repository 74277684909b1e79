//! Virtual services and their real servers, as the workers see them.
//!
//! A [`ServiceTable`] is an immutable snapshot built by the control side
//! from the configuration and shared by every worker (`Arc`); a new
//! configuration is a new snapshot. Lookups on the packet path are by
//! (VIP, port, protocol) for client packets and, for NAT, by (RIP, port,
//! protocol) to recognise replies from real servers. Both are small hash
//! maps built once; nothing here changes while packets flow.

use super::xmit::Endpoint;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Transport protocols a virtual service can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// The protocol for an IP protocol number, if rvs balances it.
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The name used in configs and `rvsadm` output.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// How packets reach a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// Destination rewritten to the real server; replies come back through rvs.
    Nat,
    /// Direct routing: only the destination MAC changes; replies bypass rvs.
    Dr,
    /// IPIP tunnel to the real server; replies bypass rvs.
    Tun,
}

impl ForwardMethod {
    /// The name used in configs and `rvsadm` output.
    pub fn name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "nat",
            ForwardMethod::Dr => "dr",
            ForwardMethod::Tun => "tun",
        }
    }
}

/// The key of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// Virtual address and port.
    pub vip: Endpoint,
    /// Transport protocol.
    pub protocol: Protocol,
}

/// One real server of a virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Address and port (DR and TUN keep the virtual port).
    pub endpoint: Endpoint,
    /// Configured weight; 0 = quiescent.
    pub weight: u32,
}

/// One virtual service.
#[derive(Clone, Debug)]
pub struct VirtualService {
    /// The operator's name for it.
    pub name: String,
    /// VIP, port and protocol.
    pub key: ServiceKey,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Scheduler name (`rr`, `wrr`, ...), as configured.
    pub scheduler: String,
    /// Persistence (ipvsadm -p): how long a client stays with its server.
    pub persistence: Option<Duration>,
    /// Real servers, in config order (their index is their id).
    pub real_servers: Vec<RealServer>,
}

/// Index of a virtual service in its table.
pub type ServiceId = u16;
/// Index of a real server within its virtual service.
pub type RealServerId = u16;

/// Every virtual service, with the indexes the packet path needs.
#[derive(Clone, Debug, Default)]
pub struct ServiceTable {
    services: Vec<VirtualService>,
    by_key: HashMap<ServiceKey, ServiceId>,
    /// NAT real servers by (RIP:RPORT, protocol): replies from them belong
    /// to these services. One real server may serve several services.
    nat_real: HashMap<(Endpoint, Protocol), Vec<(ServiceId, RealServerId)>>,
    vips: Vec<Ipv4Addr>,
}

impl ServiceTable {
    /// Builds the table. Keys must be unique (the config validation
    /// guarantees it; a duplicate keeps the first).
    pub fn new(services: Vec<VirtualService>) -> ServiceTable {
        let mut by_key = HashMap::new();
        let mut nat_real: HashMap<_, Vec<_>> = HashMap::new();
        let mut vips = Vec::new();
        for (i, s) in services.iter().enumerate() {
            by_key.entry(s.key).or_insert(i as ServiceId);
            if !vips.contains(&s.key.vip.ip) {
                vips.push(s.key.vip.ip);
            }
            if s.forward == ForwardMethod::Nat {
                for (r, rs) in s.real_servers.iter().enumerate() {
                    nat_real
                        .entry((rs.endpoint, s.key.protocol))
                        .or_default()
                        .push((i as ServiceId, r as RealServerId));
                }
            }
        }
        ServiceTable {
            services,
            by_key,
            nat_real,
            vips,
        }
    }

    /// The service a client packet to `vip` is for.
    #[inline]
    pub fn lookup(&self, vip: Endpoint, protocol: Protocol) -> Option<ServiceId> {
        self.by_key.get(&ServiceKey { vip, protocol }).copied()
    }

    /// True when `src` is a NAT real server (a packet from it is a reply
    /// that must be translated, or dropped when no connection knows it).
    #[inline]
    pub fn is_nat_real_server(&self, src: Endpoint, protocol: Protocol) -> bool {
        self.nat_real.contains_key(&(src, protocol))
    }

    /// True when `ip` is a virtual address of any service.
    #[inline]
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        self.vips.contains(&ip)
    }

    /// Every distinct VIP.
    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// A service by id.
    #[inline]
    pub fn get(&self, id: ServiceId) -> &VirtualService {
        &self.services[usize::from(id)]
    }

    /// Every service, in config order.
    pub fn services(&self) -> &[VirtualService] {
        &self.services
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint::new(s.parse().unwrap(), port)
    }

    fn service(
        name: &str,
        vip: Endpoint,
        forward: ForwardMethod,
        rs: &[Endpoint],
    ) -> VirtualService {
        VirtualService {
            name: name.into(),
            key: ServiceKey {
                vip,
                protocol: Protocol::Tcp,
            },
            forward,
            scheduler: "rr".into(),
            persistence: None,
            real_servers: rs
                .iter()
                .map(|&endpoint| RealServer {
                    endpoint,
                    weight: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn finds_services_by_vip_port_and_protocol() {
        let t = ServiceTable::new(vec![
            service(
                "web",
                ep("203.0.113.100", 80),
                ForwardMethod::Nat,
                &[ep("10.1.0.11", 8080)],
            ),
            service(
                "tls",
                ep("203.0.113.100", 443),
                ForwardMethod::Dr,
                &[ep("10.1.0.12", 443)],
            ),
        ]);
        assert_eq!(t.lookup(ep("203.0.113.100", 80), Protocol::Tcp), Some(0));
        assert_eq!(t.lookup(ep("203.0.113.100", 443), Protocol::Tcp), Some(1));
        assert_eq!(t.lookup(ep("203.0.113.100", 80), Protocol::Udp), None);
        assert_eq!(t.lookup(ep("203.0.113.100", 8080), Protocol::Tcp), None);
        assert!(t.is_vip("203.0.113.100".parse().unwrap()));
        assert_eq!(t.vips().len(), 1);
    }

    #[test]
    fn only_nat_real_servers_are_reply_sources() {
        let t = ServiceTable::new(vec![
            service(
                "web",
                ep("203.0.113.100", 80),
                ForwardMethod::Nat,
                &[ep("10.1.0.11", 8080)],
            ),
            service(
                "tls",
                ep("203.0.113.100", 443),
                ForwardMethod::Dr,
                &[ep("10.1.0.12", 443)],
            ),
        ]);
        assert!(t.is_nat_real_server(ep("10.1.0.11", 8080), Protocol::Tcp));
        assert!(!t.is_nat_real_server(ep("10.1.0.12", 443), Protocol::Tcp));
        assert!(!t.is_nat_real_server(ep("10.1.0.11", 8080), Protocol::Udp));
    }
}
