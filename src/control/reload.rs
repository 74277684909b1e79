//! Applying a new configuration's virtual servers to a running service
//! table without disturbing the connections that live on.
//!
//! Why indices must be stable: every connection in a worker's table names
//! its service and real server by index (`ServiceId`, `RealServerId`), and
//! so do the per real server counters. So a reload never moves anything:
//! a service keeps its slot (matched by address and protocol), a real
//! server keeps its slot within its service (matched by address), and what
//! is new is appended. What the new file no longer has stays in the table,
//! marked draining (`ServiceTable::with_draining`): it takes no new
//! connections, its existing ones live on until they end or expire, and
//! NAT replies from it are still translated. A service or server that comes
//! back in a later reload takes its old slot again and stops draining.
//!
//! Draining slots are never reused for other servers, nor dropped, even
//! once their last connection is gone: a slot belongs to one (service
//! address, real server address) for the life of the process. The table
//! grows only by the number of distinct services and servers ever
//! configured, which keeps this simple and the counters unambiguous.

use super::config::VirtualServerConfig;
use crate::lb::limits::{ServiceLimits, Thresholds};
use crate::lb::service::{
    Ipv6Addrs, RealServer, ServiceKey, ServiceTable, Tunnel6, VirtualService,
};
use crate::lb::xmit::Endpoint;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// The virtual services a configuration describes, as the workers see them
/// (in file order, every server's index its position in the file).
pub fn virtual_services(configs: &[VirtualServerConfig]) -> Vec<VirtualService> {
    configs.iter().map(virtual_service).collect()
}

/// One virtual server's service.
pub fn virtual_service(v: &VirtualServerConfig) -> VirtualService {
    // An IPv6 service keeps its ports in the IPv4 fields, its addresses in
    // `ipv6` (`lb::service::Ipv6Addrs`).
    let endpoint = |a: &SocketAddr| match a {
        SocketAddr::V4(a) => Endpoint::new(*a.ip(), a.port()),
        SocketAddr::V6(a) => Endpoint::new(Ipv4Addr::UNSPECIFIED, a.port()),
    };
    // An IPv4 server of an IPv6 service (NAT64) is named by its
    // IPv4-mapped address in the IPv6 fields (`lb::service::VirtualService::is_nat64`).
    let v6 = |a: &SocketAddr| match a {
        SocketAddr::V6(a) => *a.ip(),
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped(),
    };
    VirtualService {
        name: v.name.clone(),
        key: ServiceKey {
            vip: endpoint(&v.address),
            protocol: v.protocol,
        },
        forward: v.forward,
        scheduler: v.scheduler,
        mh_table_size: v.mh_table_size,
        persistence: v.persistence_timeout,
        expire_nodest_conn: v.expire_nodest_conn,
        sorry_server: v.sorry_server.as_ref().map(endpoint),
        limits: v.limits.clone(),
        syn_proxy: v.syn_proxy,
        client_address: v.client_address,
        priority_groups: v.priority_groups.clone(),
        slow_start: v.slow_start,
        syn_timeout_ms: v.passive_check.syn_timeout_ms,
        ipv6: v.address.is_ipv6().then(|| Ipv6Addrs {
            vip: v6(&v.address),
            real_servers: v.real_servers.iter().map(|r| v6(&r.address)).collect(),
            sorry_server: v.sorry_server.as_ref().map(v6),
        }),
        tunnel6: tunnel6(v),
        local: v.local.clone(),
        real_servers: v
            .real_servers
            .iter()
            .map(|r| RealServer {
                endpoint: endpoint(&r.address),
                weight: r.weight,
                thresholds: r.thresholds,
                priority: r.priority,
                slow_start: r.slow_start,
            })
            .collect(),
    }
}

/// IPv4-in-IPv6 TUN: the IPv6 addresses of an IPv4 virtual server's
/// real servers (and sorry server) reached over IPv6 (`::` for those
/// reached over IPv4); `None` when it has none, or is IPv6 itself.
fn tunnel6(v: &VirtualServerConfig) -> Option<Tunnel6> {
    let v6 = |a: &SocketAddr| match a {
        SocketAddr::V6(a) => Some(*a.ip()),
        SocketAddr::V4(_) => None,
    };
    let sorry_server = v.sorry_server.as_ref().and_then(v6);
    let any = v.real_servers.iter().any(|r| r.address.is_ipv6()) || sorry_server.is_some();
    (v.address.is_ipv4() && any).then(|| Tunnel6 {
        real_servers: v
            .real_servers
            .iter()
            .map(|r| v6(&r.address).unwrap_or(Ipv6Addr::UNSPECIFIED))
            .collect(),
        sorry_server,
    })
}

/// The result of a merge: the table to install and what changed.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The new table: old slots kept, new ones appended, removed ones
    /// draining.
    pub table: ServiceTable,
    /// What changed, in table order, for the log.
    pub changes: Vec<Change>,
}

impl Merged {
    /// True when the reload changed nothing in the services.
    pub fn is_unchanged(&self) -> bool {
        self.changes.is_empty()
    }
}

/// One difference a reload made, as the log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A virtual server new to this table.
    ServiceAdded {
        /// Its name.
        name: String,
        /// Its address and protocol.
        key: ServiceKey,
        /// Its slot.
        index: u16,
        /// Its real servers.
        real_servers: usize,
    },
    /// A virtual server the new file no longer has: it drains.
    ServiceRemoved {
        /// Its name.
        name: String,
        /// Its address and protocol.
        key: ServiceKey,
    },
    /// A draining virtual server the new file has again.
    ServiceReturned {
        /// Its name.
        name: String,
        /// Its address and protocol.
        key: ServiceKey,
    },
    /// A virtual server's own settings changed.
    ServiceChanged {
        /// Its (new) name.
        name: String,
        /// Each changed setting: `scheduler wrr -> rr`.
        settings: Vec<String>,
    },
    /// A real server new to its service.
    ServerAdded {
        /// Its virtual server's name.
        service: String,
        /// Its address.
        endpoint: Endpoint,
        /// Its weight.
        weight: u32,
    },
    /// A real server the new file no longer has: it drains.
    ServerRemoved {
        /// Its virtual server's name.
        service: String,
        /// Its address.
        endpoint: Endpoint,
    },
    /// A draining real server the new file has again.
    ServerReturned {
        /// Its virtual server's name.
        service: String,
        /// Its address.
        endpoint: Endpoint,
        /// Its weight.
        weight: u32,
    },
    /// A real server's weight changed.
    WeightChanged {
        /// Its virtual server's name.
        service: String,
        /// Its address.
        endpoint: Endpoint,
        /// The weight before.
        from: u32,
        /// The weight now.
        to: u32,
    },
    /// A real server's connection thresholds changed.
    ThresholdsChanged {
        /// Its virtual server's name.
        service: String,
        /// Its address.
        endpoint: Endpoint,
        /// The thresholds before.
        from: Thresholds,
        /// The thresholds now.
        to: Thresholds,
    },
    /// A real server's priority group changed.
    PriorityChanged {
        /// Its virtual server's name.
        service: String,
        /// Its address.
        endpoint: Endpoint,
        /// The priority before.
        from: u8,
        /// The priority now.
        to: u8,
    },
    /// A real server's own `slow_start_s` changed.
    SlowStartChanged {
        /// Its virtual server's name.
        service: String,
        /// Its address.
        endpoint: Endpoint,
        /// Its own slow start before (`None`: the service's).
        from: Option<Duration>,
        /// Its own slow start now.
        to: Option<Duration>,
    },
}

/// A real server's own slow start as the log shows it.
fn own_slow_start(d: Option<Duration>) -> String {
    d.map_or_else(
        || "the service's".to_string(),
        |d| format!("{}s", d.as_secs()),
    )
}

fn addr(e: Endpoint) -> SocketAddrV4 {
    SocketAddrV4::new(e.ip, e.port)
}

fn key(k: &ServiceKey) -> String {
    format!("{}/{}", addr(k.vip), k.protocol)
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ServiceAdded {
                name,
                key: k,
                real_servers,
                ..
            } => write!(
                f,
                "virtual server {name} {} added with {real_servers} real server(s)",
                key(k)
            ),
            Change::ServiceRemoved { name, key: k } => write!(
                f,
                "virtual server {name} {} removed: draining (no new connections)",
                key(k)
            ),
            Change::ServiceReturned { name, key: k } => write!(
                f,
                "virtual server {name} {} is back: no longer draining",
                key(k)
            ),
            Change::ServiceChanged { name, settings } => {
                write!(f, "virtual server {name}: {}", settings.join(", "))
            }
            Change::ServerAdded {
                service,
                endpoint,
                weight,
            } => write!(
                f,
                "virtual server {service}: real server {} added (weight {weight})",
                addr(*endpoint)
            ),
            Change::ServerRemoved { service, endpoint } => write!(
                f,
                "virtual server {service}: real server {} removed: draining (no new connections)",
                addr(*endpoint)
            ),
            Change::ServerReturned {
                service,
                endpoint,
                weight,
            } => write!(
                f,
                "virtual server {service}: real server {} is back (weight {weight}): no longer \
                 draining",
                addr(*endpoint)
            ),
            Change::WeightChanged {
                service,
                endpoint,
                from,
                to,
            } => write!(
                f,
                "virtual server {service}: real server {} weight {from} -> {to}",
                addr(*endpoint)
            ),
            Change::ThresholdsChanged {
                service,
                endpoint,
                from,
                to,
            } => write!(
                f,
                "virtual server {service}: real server {} thresholds {}/{} -> {}/{} \
                 (upper/lower)",
                addr(*endpoint),
                from.upper,
                from.lower,
                to.upper,
                to.lower
            ),
            Change::PriorityChanged {
                service,
                endpoint,
                from,
                to,
            } => write!(
                f,
                "virtual server {service}: real server {} priority {from} -> {to}",
                addr(*endpoint)
            ),
            Change::SlowStartChanged {
                service,
                endpoint,
                from,
                to,
            } => write!(
                f,
                "virtual server {service}: real server {} slow_start {} -> {}",
                addr(*endpoint),
                own_slow_start(*from),
                own_slow_start(*to)
            ),
        }
    }
}

/// The settings of a service that differ between `old` and `new`, as
/// `what old -> new`.
fn setting_changes(old: &VirtualService, new: &VirtualService) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what} {a} -> {b}"));
        }
    };
    diff("name", old.name.clone(), new.name.clone());
    diff("forward", old.forward.to_string(), new.forward.to_string());
    diff(
        "scheduler",
        old.scheduler.to_string(),
        new.scheduler.to_string(),
    );
    let persistence = |s: &VirtualService| format!("{}s", s.persistence.map_or(0, |d| d.as_secs()));
    diff("persistence_timeout", persistence(old), persistence(new));
    if old.scheduler == crate::lb::service::SchedulerKind::Mh
        || new.scheduler == crate::lb::service::SchedulerKind::Mh
    {
        diff(
            "mh_table_size",
            old.mh_table_size.to_string(),
            new.mh_table_size.to_string(),
        );
    }
    diff(
        "expire_nodest_conn",
        old.expire_nodest_conn.to_string(),
        new.expire_nodest_conn.to_string(),
    );
    let sorry = |s: &VirtualService| {
        s.sorry_server
            .map_or_else(|| "none".to_string(), |e| addr(e).to_string())
    };
    diff("sorry_server", sorry(old), sorry(new));
    limit_changes(&old.limits, &new.limits, &mut diff);
    diff(
        "syn_proxy",
        old.syn_proxy.to_string(),
        new.syn_proxy.to_string(),
    );
    let carried = |s: &VirtualService| s.client_address.map_or("none", |m| m.name()).to_string();
    diff("client_address", carried(old), carried(new));
    diff(
        "priority_group",
        quorums(&old.priority_groups),
        quorums(&new.priority_groups),
    );
    let slow = |s: &VirtualService| format!("{}s", s.slow_start.as_secs());
    diff("slow_start", slow(old), slow(new));
    diff(
        "passive_check.syn_timeout_ms",
        old.syn_timeout_ms.to_string(),
        new.syn_timeout_ms.to_string(),
    );
    let locals = |s: &VirtualService| {
        let v4 = s.local.addresses.iter().map(ToString::to_string);
        let items: Vec<String> = v4
            .chain(s.local.addresses6.iter().map(ToString::to_string))
            .collect();
        format!("[{}]", items.join(", "))
    };
    diff("local_addresses", locals(old), locals(new));
    let range = |s: &VirtualService| format!("{}-{}", s.local.ports.0, s.local.ports.1);
    diff("local_port_range", range(old), range(new));
    out
}

/// Priority-group quorums as `[0: min_active 2, 1: min_active 1]`.
fn quorums(q: &[crate::lb::priority::GroupQuorum]) -> String {
    let items: Vec<String> = q
        .iter()
        .map(|g| format!("{}: min_active {}", g.priority, g.min_active))
        .collect();
    format!("[{}]", items.join(", "))
}

/// The admission limits that differ, for `setting_changes`.
fn limit_changes(
    old: &ServiceLimits,
    new: &ServiceLimits,
    diff: &mut impl FnMut(&str, String, String),
) {
    let list = |v4: &[crate::wire::Ipv4Cidr], v6: &[crate::wire::Ipv6Cidr]| {
        let items: Vec<String> = v4
            .iter()
            .map(ToString::to_string)
            .chain(v6.iter().map(ToString::to_string))
            .collect();
        format!("[{}]", items.join(", "))
    };
    diff(
        "allow",
        list(old.acl.allow(), old.acl.allow6()),
        list(new.acl.allow(), new.acl.allow6()),
    );
    diff(
        "deny",
        list(old.acl.deny(), old.acl.deny6()),
        list(new.acl.deny(), new.acl.deny6()),
    );
    let rate = |l: &ServiceLimits| {
        l.rate.map_or_else(
            || "off".to_string(),
            |r| format!("{}/s burst {}", r.per_second, r.burst),
        )
    };
    diff("new_conn_rate", rate(old), rate(new));
    let client = |l: &ServiceLimits| {
        l.per_client.map_or_else(
            || "off".to_string(),
            |c| format!("{} per /{}", c.max_conns, c.prefix_len),
        )
    };
    diff("max_conns_per_client", client(old), client(new));
}

/// Merges `new` (the services of the new file, in file order) into `old`
/// (the running table), keeping every index stable (see the module
/// comment): matched services take the new settings and real servers, in
/// their old slots; new ones are appended; removed ones drain with their
/// old settings. A weight change is just the new weight in the same slot.
pub fn merge(old: &ServiceTable, new: &[VirtualService]) -> Merged {
    let mut services: Vec<VirtualService> = old.services().to_vec();
    // Until the new file names them, every old slot drains.
    let mut draining: Vec<bool> = vec![true; services.len()];
    let mut draining_servers: Vec<Vec<bool>> = services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (0..s.real_servers.len())
                .map(|r| old.is_server_draining(i as u16, r as u16))
                .collect()
        })
        .collect();
    let mut changes = Vec::new();

    for n in new {
        // An IPv6 service's key holds its port, its VIP is in `ipv6`.
        let vip6 = |s: &VirtualService| s.ipv6.as_ref().map(|a| a.vip);
        let found = services
            .iter()
            .position(|s| s.key == n.key && vip6(s) == vip6(n));
        let Some(i) = found else {
            changes.push(Change::ServiceAdded {
                name: n.name.clone(),
                key: n.key,
                index: services.len() as u16,
                real_servers: n.real_servers.len(),
            });
            draining.push(false);
            draining_servers.push(vec![false; n.real_servers.len()]);
            services.push(n.clone());
            continue;
        };
        if !draining[i] {
            // A key twice in `new` (validation prevents it): the first wins.
            continue;
        }
        draining[i] = false;
        let was_draining = old.is_draining(i as u16);
        let before = services[i].clone();
        if was_draining {
            changes.push(Change::ServiceReturned {
                name: n.name.clone(),
                key: n.key,
            });
        }
        let settings = setting_changes(&before, n);
        if !settings.is_empty() {
            changes.push(Change::ServiceChanged {
                name: n.name.clone(),
                settings,
            });
        }

        // Real servers: old slots first, all draining until named.
        let mut servers = before.real_servers.clone();
        let old_draining = std::mem::take(&mut draining_servers[i]);
        let mut now_draining = vec![true; servers.len()];
        // The IPv6 addresses of the servers, kept in the slots' order.
        let addr6 = |s: &VirtualService, r: usize| {
            s.ipv6
                .as_ref()
                .and_then(|a| a.real_servers.get(r).copied())
                .or_else(|| {
                    let a = *s.tunnel6.as_ref()?.real_servers.get(r)?;
                    (!a.is_unspecified()).then_some(a)
                })
        };
        let mut addrs6: Vec<Option<Ipv6Addr>> =
            (0..servers.len()).map(|r| addr6(&before, r)).collect();
        for (j, rs) in n.real_servers.iter().enumerate() {
            let new6 = addr6(n, j);
            let slot = (0..servers.len())
                .position(|r| servers[r].endpoint == rs.endpoint && addrs6[r] == new6);
            match slot {
                Some(r) if !now_draining[r] => {} // twice in `new`: first wins
                Some(r) => {
                    now_draining[r] = false;
                    let from = servers[r].weight;
                    // A server that was draining before, of a service that
                    // was not, comes back; in a returning service every
                    // server simply follows the file.
                    if old_draining[r] && !was_draining {
                        changes.push(Change::ServerReturned {
                            service: n.name.clone(),
                            endpoint: rs.endpoint,
                            weight: rs.weight,
                        });
                    } else if from != rs.weight {
                        changes.push(Change::WeightChanged {
                            service: n.name.clone(),
                            endpoint: rs.endpoint,
                            from,
                            to: rs.weight,
                        });
                    }
                    servers[r].weight = rs.weight;
                    if servers[r].thresholds != rs.thresholds {
                        changes.push(Change::ThresholdsChanged {
                            service: n.name.clone(),
                            endpoint: rs.endpoint,
                            from: servers[r].thresholds,
                            to: rs.thresholds,
                        });
                        servers[r].thresholds = rs.thresholds;
                    }
                    if servers[r].priority != rs.priority {
                        changes.push(Change::PriorityChanged {
                            service: n.name.clone(),
                            endpoint: rs.endpoint,
                            from: servers[r].priority,
                            to: rs.priority,
                        });
                        servers[r].priority = rs.priority;
                    }
                    if servers[r].slow_start != rs.slow_start {
                        changes.push(Change::SlowStartChanged {
                            service: n.name.clone(),
                            endpoint: rs.endpoint,
                            from: servers[r].slow_start,
                            to: rs.slow_start,
                        });
                        servers[r].slow_start = rs.slow_start;
                    }
                }
                None => {
                    changes.push(Change::ServerAdded {
                        service: n.name.clone(),
                        endpoint: rs.endpoint,
                        weight: rs.weight,
                    });
                    servers.push(rs.clone());
                    addrs6.push(new6);
                    now_draining.push(false);
                }
            }
        }
        for (r, s) in servers.iter().enumerate() {
            let was = old_draining.get(r).copied().unwrap_or(false) || was_draining;
            if now_draining[r] && !was {
                changes.push(Change::ServerRemoved {
                    service: n.name.clone(),
                    endpoint: s.endpoint,
                });
            }
        }
        services[i] = VirtualService {
            real_servers: servers,
            ipv6: n.ipv6.clone().map(|a| Ipv6Addrs {
                real_servers: addrs6
                    .iter()
                    .map(|a| a.unwrap_or(Ipv6Addr::UNSPECIFIED))
                    .collect(),
                ..a
            }),
            // An IPv4 service keeps the IPv6 tunnel ends of its draining
            // servers too, even when the new file has none left.
            tunnel6: (n.ipv6.is_none()
                && (n.tunnel6.is_some() || addrs6.iter().any(Option::is_some)))
            .then(|| Tunnel6 {
                real_servers: addrs6
                    .iter()
                    .map(|a| a.unwrap_or(Ipv6Addr::UNSPECIFIED))
                    .collect(),
                sorry_server: n.tunnel6.as_ref().and_then(|t| t.sorry_server),
            }),
            ..n.clone()
        };
        draining_servers[i] = now_draining;
    }

    for (i, s) in services.iter().enumerate() {
        if draining[i] && i < old.len() && !old.is_draining(i as u16) {
            changes.push(Change::ServiceRemoved {
                name: s.name.clone(),
                key: s.key,
            });
        }
    }

    Merged {
        table: ServiceTable::with_draining(services, draining, draining_servers),
        changes,
    }
}

/// `merge` of a new file's virtual servers.
pub fn merge_config(old: &ServiceTable, new: &[VirtualServerConfig]) -> Merged {
    merge(old, &virtual_services(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::service::{ForwardMethod, Protocol, SchedulerKind};
    use std::net::Ipv4Addr;

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 1, 0, last), port)
    }

    fn vip(port: u16) -> ServiceKey {
        ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), port),
            protocol: Protocol::Tcp,
        }
    }

    /// A service on VIP port `port` with real servers 10.1.0.`last`:8080
    /// of the given weights.
    fn service(name: &str, port: u16, servers: &[(u8, u32)]) -> VirtualService {
        VirtualService::new(
            name,
            vip(port),
            ForwardMethod::Nat,
            SchedulerKind::Wrr,
            servers
                .iter()
                .map(|&(last, weight)| (ep(last, 8080), weight)),
        )
    }

    fn endpoints(t: &ServiceTable, vs: u16) -> Vec<u8> {
        t.get(vs)
            .real_servers
            .iter()
            .map(|r| r.endpoint.ip.octets()[3])
            .collect()
    }

    fn draining(t: &ServiceTable, vs: u16) -> Vec<bool> {
        (0..t.get(vs).real_servers.len())
            .map(|r| t.is_server_draining(vs, r as u16))
            .collect()
    }

    fn lines(m: &Merged) -> Vec<String> {
        m.changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_same_services_change_nothing() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1), (12, 1)])]);
        let m = merge(&old, &[service("web", 80, &[(11, 1), (12, 1)])]);
        assert!(m.is_unchanged(), "{:?}", m.changes);
        assert_eq!(endpoints(&m.table, 0), [11, 12]);
        assert_eq!(draining(&m.table, 0), [false, false]);
    }

    #[test]
    fn a_reload_that_adds_backups_and_a_quorum_applies_both() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1), (12, 1), (13, 1)])]);
        let mut new = service("web", 80, &[(11, 1), (12, 1), (13, 1)]);
        new.real_servers[2].priority = 1;
        new.priority_groups = vec![crate::lb::priority::GroupQuorum {
            priority: 0,
            min_active: 2,
        }];
        let m = merge(&old, &[new]);
        assert_eq!(m.table.get(0).real_servers[2].priority, 1);
        assert_eq!(m.table.active_priority(0), Some(0));
        assert_eq!(
            m.table.effective_weight(0, 2),
            0,
            "a backup while 0 has quorum"
        );
        assert_eq!(
            lines(&m),
            [
                "virtual server web: priority_group [] -> [0: min_active 2]",
                "virtual server web: real server 10.1.0.13:8080 priority 0 -> 1",
            ]
        );
    }

    #[test]
    fn a_changed_slow_start_is_a_change_of_the_service_or_the_server() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1), (12, 1)])]);
        let mut new = service("web", 80, &[(11, 1), (12, 1)]);
        new.slow_start = Duration::from_secs(30);
        new.real_servers[1].slow_start = Some(Duration::ZERO);
        let m = merge(&old, &[new]);
        assert_eq!(
            lines(&m),
            [
                "virtual server web: slow_start 0s -> 30s",
                "virtual server web: real server 10.1.0.12:8080 slow_start the service's -> 0s"
            ]
        );
        assert_eq!(m.table.get(0).slow_start_of(0), Duration::from_secs(30));
        assert_eq!(m.table.get(0).slow_start_of(1), Duration::ZERO);
    }

    #[test]
    fn an_added_server_is_appended() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1), (12, 1)])]);
        let m = merge(&old, &[service("web", 80, &[(13, 2), (11, 1), (12, 1)])]);
        assert_eq!(endpoints(&m.table, 0), [11, 12, 13]);
        assert_eq!(draining(&m.table, 0), [false, false, false]);
        assert_eq!(m.table.get(0).real_servers[2].weight, 2);
        assert_eq!(
            lines(&m),
            ["virtual server web: real server 10.1.0.13:8080 added (weight 2)"]
        );
    }

    #[test]
    fn a_removed_server_stays_in_its_slot_draining() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1), (12, 3), (13, 1)])]);
        let m = merge(&old, &[service("web", 80, &[(11, 1), (13, 1)])]);
        assert_eq!(endpoints(&m.table, 0), [11, 12, 13]);
        assert_eq!(draining(&m.table, 0), [false, true, false]);
        assert_eq!(
            m.table.get(0).real_servers[1].weight,
            3,
            "old settings kept"
        );
        assert_eq!(
            lines(&m),
            [
                "virtual server web: real server 10.1.0.12:8080 removed: draining (no new \
              connections)"
            ]
        );
        // NAT replies from it are still recognised.
        assert!(m.table.is_nat_real_server(ep(12, 8080), Protocol::Tcp));
    }

    #[test]
    fn a_removed_server_that_comes_back_reuses_its_slot() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1), (12, 1), (13, 1)])]);
        let removed = merge(&old, &[service("web", 80, &[(11, 1), (13, 1)])]).table;
        // Meanwhile another server is added; then 12 returns.
        let added = merge(
            &removed,
            &[service("web", 80, &[(11, 1), (13, 1), (14, 1)])],
        );
        assert_eq!(draining(&added.table, 0), [false, true, false, false]);
        assert_eq!(
            added.changes.len(),
            1,
            "12 is still gone, quietly: {:?}",
            added.changes
        );
        let back = merge(
            &added.table,
            &[service("web", 80, &[(12, 5), (11, 1), (13, 1), (14, 1)])],
        );
        assert_eq!(endpoints(&back.table, 0), [11, 12, 13, 14]);
        assert_eq!(draining(&back.table, 0), [false, false, false, false]);
        assert_eq!(back.table.get(0).real_servers[1].weight, 5);
        assert_eq!(
            lines(&back),
            [
                "virtual server web: real server 10.1.0.12:8080 is back (weight 5): no longer \
              draining"
            ]
        );
    }

    #[test]
    fn a_weight_change_keeps_the_slot() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1), (12, 1)])]);
        let m = merge(&old, &[service("web", 80, &[(11, 1), (12, 0)])]);
        assert_eq!(endpoints(&m.table, 0), [11, 12]);
        assert_eq!(m.table.get(0).real_servers[1].weight, 0);
        assert_eq!(draining(&m.table, 0), [false, false]);
        assert_eq!(
            lines(&m),
            ["virtual server web: real server 10.1.0.12:8080 weight 1 -> 0"]
        );
    }

    #[test]
    fn a_scheduler_change_applies_in_place() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1)])]);
        let mut new = service("web", 80, &[(11, 1)]);
        new.scheduler = SchedulerKind::Mh;
        new.persistence = Some(std::time::Duration::from_secs(300));
        let m = merge(&old, &[new]);
        assert_eq!(m.table.get(0).scheduler, SchedulerKind::Mh);
        assert_eq!(
            lines(&m),
            ["virtual server web: scheduler wrr -> mh, persistence_timeout 0s -> 300s"]
        );
    }

    #[test]
    fn other_settings_changes_are_listed() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1)])]);
        let mut new = service("www", 80, &[(11, 1)]);
        new.forward = ForwardMethod::Tun;
        new.expire_nodest_conn = false;
        new.sorry_server = Some(ep(99, 8080));
        let m = merge(&old, &[new]);
        assert_eq!(
            lines(&m),
            [
                "virtual server www: name web -> www, forward nat -> tun, expire_nodest_conn \
              true -> false, sorry_server none -> 10.1.0.99:8080"
            ]
        );
        assert_eq!(m.table.get(0).name, "www");
        assert_eq!(m.table.get(0).sorry_server, Some(ep(99, 8080)));
    }

    #[test]
    fn fullnat_local_address_changes_are_listed_and_applied() {
        let mut old = service("web", 80, &[(11, 1)]);
        old.forward = ForwardMethod::FullNat;
        old.local.addresses = vec![Ipv4Addr::new(10, 2, 0, 100)];
        let table = ServiceTable::new(vec![old.clone()]);
        let mut new = old;
        new.local.addresses.push(Ipv4Addr::new(10, 2, 0, 101));
        new.local.ports = (2000, 3000);
        let m = merge(&table, &[new]);
        assert_eq!(
            lines(&m),
            [
                "virtual server web: local_addresses [10.2.0.100] -> [10.2.0.100, 10.2.0.101], \
                 local_port_range 1024-65535 -> 2000-3000"
            ]
        );
        assert_eq!(m.table.get(0).local.addresses.len(), 2);
        assert!(m.table.is_local_address(Ipv4Addr::new(10, 2, 0, 101)));
    }

    #[test]
    fn limit_changes_are_listed_and_applied() {
        use crate::lb::acl::Acl;
        use crate::lb::limits::Rate;
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1)])]);
        let mut new = service("web", 80, &[(11, 1)]);
        new.limits = ServiceLimits {
            acl: Acl::new(Vec::new(), vec!["192.0.2.0/24".parse().unwrap()]),
            rate: Some(Rate {
                per_second: 10,
                burst: 5,
            }),
            per_client: None,
        };
        new.real_servers[0].thresholds = Thresholds { upper: 9, lower: 3 };
        let m = merge(&old, &[new.clone()]);
        assert_eq!(
            lines(&m),
            [
                "virtual server web: deny [] -> [192.0.2.0/24], new_conn_rate off -> 10/s burst 5",
                "virtual server web: real server 10.1.0.11:8080 thresholds 0/0 -> 9/3 (upper/lower)"
            ]
        );
        assert_eq!(m.table.get(0).limits, new.limits);
        assert_eq!(m.table.get(0).real_servers[0].thresholds.upper, 9);
    }

    #[test]
    fn a_client_address_change_applies_in_place() {
        use crate::lb::client_addr::ClientAddress;
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1)])]);
        let mut new = service("web", 80, &[(11, 1)]);
        new.client_address = Some(ClientAddress::ProxyV2);
        let m = merge(&old, &[new]);
        assert_eq!(
            lines(&m),
            ["virtual server web: client_address none -> proxy-v2"]
        );
        assert_eq!(m.table.get(0).client_address, Some(ClientAddress::ProxyV2));
    }

    #[test]
    fn turning_the_syn_proxy_on_applies_in_place() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1)])]);
        let mut new = service("web", 80, &[(11, 1)]);
        new.syn_proxy = true;
        let m = merge(&old, &[new]);
        assert_eq!(lines(&m), ["virtual server web: syn_proxy false -> true"]);
        assert!(m.table.get(0).syn_proxy);
    }

    #[test]
    fn reordering_the_file_keeps_every_index() {
        let old = ServiceTable::new(vec![
            service("web", 80, &[(11, 1), (12, 1)]),
            service("tls", 443, &[(21, 1), (22, 1)]),
        ]);
        let m = merge(
            &old,
            &[
                service("tls", 443, &[(22, 1), (21, 1)]),
                service("web", 80, &[(12, 1), (11, 1)]),
            ],
        );
        assert!(m.is_unchanged(), "{:?}", m.changes);
        assert_eq!(m.table.get(0).name, "web");
        assert_eq!(endpoints(&m.table, 0), [11, 12]);
        assert_eq!(endpoints(&m.table, 1), [21, 22]);
        assert_eq!(m.table.lookup(vip(443).vip, Protocol::Tcp), Some(1));
    }

    #[test]
    fn an_added_service_is_appended() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1)])]);
        let m = merge(
            &old,
            &[
                service("tls", 443, &[(21, 1)]),
                service("web", 80, &[(11, 1)]),
            ],
        );
        assert_eq!(m.table.len(), 2);
        assert_eq!(m.table.get(1).name, "tls");
        assert_eq!(m.table.lookup(vip(443).vip, Protocol::Tcp), Some(1));
        assert!(!m.table.is_draining(1));
        assert_eq!(
            lines(&m),
            ["virtual server tls 203.0.113.100:443/tcp added with 1 real server(s)"]
        );
    }

    #[test]
    fn a_removed_service_drains_and_comes_back_in_its_slot() {
        let old = ServiceTable::new(vec![
            service("web", 80, &[(11, 1)]),
            service("tls", 443, &[(21, 1)]),
        ]);
        let removed = merge(&old, &[service("tls", 443, &[(21, 1)])]);
        assert!(removed.table.is_draining(0));
        assert!(!removed.table.is_draining(1));
        assert_eq!(removed.table.get(0).real_servers[0].weight, 1);
        assert_eq!(
            lines(&removed),
            ["virtual server web 203.0.113.100:80/tcp removed: draining (no new connections)"]
        );
        // Still found, so its connections' packets keep flowing.
        assert_eq!(removed.table.lookup(vip(80).vip, Protocol::Tcp), Some(0));

        // A second reload without it says nothing more.
        let again = merge(&removed.table, &[service("tls", 443, &[(21, 1)])]);
        assert!(again.is_unchanged(), "{:?}", again.changes);
        assert!(again.table.is_draining(0));

        let back = merge(
            &again.table,
            &[
                service("tls", 443, &[(21, 1)]),
                service("web", 80, &[(11, 2), (12, 1)]),
            ],
        );
        assert_eq!(back.table.len(), 2);
        assert!(!back.table.is_draining(0));
        assert_eq!(endpoints(&back.table, 0), [11, 12]);
        assert_eq!(draining(&back.table, 0), [false, false]);
        assert_eq!(
            lines(&back),
            [
                "virtual server web 203.0.113.100:80/tcp is back: no longer draining",
                "virtual server web: real server 10.1.0.11:8080 weight 1 -> 2",
                "virtual server web: real server 10.1.0.12:8080 added (weight 1)",
            ]
        );
    }

    #[test]
    fn a_changed_address_is_a_removal_and_an_addition() {
        let old = ServiceTable::new(vec![service("web", 80, &[(11, 1)])]);
        let m = merge(&old, &[service("web", 8080, &[(11, 1)])]);
        assert_eq!(m.table.len(), 2);
        assert!(m.table.is_draining(0));
        assert!(!m.table.is_draining(1));
        assert_eq!(m.changes.len(), 2, "{:?}", m.changes);
    }

    #[test]
    fn merge_config_carries_expire_nodest_conn_and_sorry_server() {
        let text = "[dpdk]\nworkers = [1]\n[[interface]]\nname = \"ext\"\n\
                    device = \"net_null0\"\naddresses = [\"10.0.0.1/24\"]\n\
                    [[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\n\
                    forward = \"nat\"\nexpire_nodest_conn = false\n\
                    sorry_server = \"10.0.0.99:8080\"\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.0.11:8080\"\nweight = 4\n";
        let config = crate::control::Config::from_toml_str(text).unwrap();
        let m = merge_config(&ServiceTable::default(), &config.virtual_servers);
        let vs = m.table.get(0);
        assert!(!vs.expire_nodest_conn);
        assert_eq!(
            vs.sorry_server,
            Some(Endpoint::new(Ipv4Addr::new(10, 0, 0, 99), 8080))
        );
        assert_eq!(vs.real_servers[0].weight, 4);
        assert_eq!(m.changes.len(), 1);
    }
}
