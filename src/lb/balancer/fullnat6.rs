//! FullNAT over IPv6 in the balancer: an IPv6 virtual server whose real
//! servers (IPv6) see one of its IPv6 local addresses (LIP6) as their
//! peer. The IPv4 scheme (`h19-fnat.md`) over the IPv6 table:
//!
//! - a new connection takes a (LIP6, port) from this worker's IPv6 pool
//!   (`Counters::local6`, a `local_pool::LocalPool6`) and its reply key is
//!   RIP6:RPORT → LIP6:LPORT, so both rewrites follow from the two keys
//!   (no new field in `Conn6`);
//! - the port goes back in `Counters::forget`, the one callback every
//!   removal path calls, through its per-family hook (`release_local`);
//! - a worker holds only the LIP6s `owner` accepts: the RSS model's
//!   `worker_of6(lip)` (replies to a LIP6 are hashed on their
//!   destination), so replies come back to the worker that gave the port.
//!
//! What is here is what `v6.rs` calls for a FullNAT service: the pool's
//! shape and ownership, taking a port, the decisions and ICMPv6 routes.

use super::v6::{Decision6, IcmpRoute6};
use super::{Balancer, Refusal};
use crate::lb::conn::{ConnId, Direction};
use crate::lb::local_pool::LocalPool6;
use crate::lb::service::{ForwardMethod, Protocol, ServiceId, ServiceTable};
use crate::lb::xmit::Endpoint6;
use std::net::Ipv6Addr;
use std::sync::Arc;

/// Says whether this worker owns an IPv6 FullNAT local address (see
/// [`Balancer::with_local_owner6`]): the IPv6 twin of `LocalOwner`.
pub type LocalOwner6 = Arc<dyn Fn(Ipv6Addr) -> bool + Send + Sync>;

/// A balancer's IPv6 local-address state beside the pool (which lives in
/// the counters, where `forget` releases into it).
#[derive(Default)]
pub(super) struct Local6 {
    /// Which IPv6 local addresses this worker owns; `None`: all (one
    /// worker).
    owner: Option<LocalOwner6>,
    /// Per service, the pool entries it takes from, and where the next
    /// new connection starts looking.
    by_vs: Vec<Vec<usize>>,
    next: Vec<usize>,
    /// What the pool was built from: (address, protocol, range) in order.
    shape: Vec<(Ipv6Addr, Protocol, (u16, u16))>,
}

impl Balancer {
    /// The same balancer taking only the IPv6 FullNAT local addresses
    /// `owner` accepts (the worker passes the RSS model's verdict,
    /// `worker_of6`), as [`Balancer::with_local_owner`] for IPv4.
    pub fn with_local_owner6(mut self, owner: LocalOwner6) -> Balancer {
        self.local6.owner = Some(owner);
        self.counters.local6 = LocalPool6::default();
        self.local6.shape.clear();
        self.set_local_pool6(&self.services.clone());
        self
    }

    /// The IPv6 local addresses of the FullNAT services `services` that
    /// this worker owns.
    pub fn owned_local_addresses6(&self, services: &ServiceTable) -> Vec<Ipv6Addr> {
        services
            .local_addresses6()
            .iter()
            .copied()
            .filter(|&a| self.local6.owner.as_ref().is_none_or(|own| own(a)))
            .collect()
    }

    /// Rebuilds the IPv6 local ports for `services` when their shape
    /// changed (start, a reload that changed an IPv6 local address or a
    /// range); ports of live IPv6 connections stay taken.
    pub(super) fn set_local_pool6(&mut self, services: &ServiceTable) {
        let owned = self.owned_local_addresses6(services);
        let mut entries = Vec::new();
        for s in services.services() {
            if s.forward != ForwardMethod::FullNat {
                continue;
            }
            for &a in s.local.addresses6.iter().filter(|a| owned.contains(a)) {
                entries.push((a, s.key.protocol, s.local.ports));
            }
        }
        // `Counters::fullnat` (by service) is set by `set_local_pool`,
        // which runs first on every snapshot.
        if entries != self.local6.shape {
            self.counters.local6 = LocalPool6::new(entries.iter().copied());
            self.local6.shape = entries;
            for (_, c) in self.conns6.iter() {
                if self.counters.fullnat.get(usize::from(c.vs)) == Some(&true) {
                    let r = c.reply();
                    self.counters.local6.claim(r.dst, r.proto, r.dst_port);
                }
            }
        }
        let local = &self.counters.local6;
        self.local6.by_vs = services
            .services()
            .iter()
            .map(|s| {
                if s.forward != ForwardMethod::FullNat {
                    return Vec::new();
                }
                let proto = s.key.protocol.number();
                s.local
                    .addresses6
                    .iter()
                    .filter_map(|&a| local.index_of(a, proto))
                    .collect()
            })
            .collect();
        self.local6.next.resize(services.len(), 0);
    }

    /// A free IPv6 local address and port for a new connection of
    /// service `vs`, taken; its addresses are tried in turn from the one
    /// after the last used.
    #[inline]
    pub(super) fn take_local6(&mut self, vs: ServiceId) -> Option<Endpoint6> {
        let v = usize::from(vs);
        let entries = self.local6.by_vs.get(v)?;
        let n = entries.len();
        let start = self.local6.next.get(v).copied().unwrap_or(0);
        for k in 0..n {
            let i = entries[(start + k) % n];
            if let Some(port) = self.counters.local6.take_at(i) {
                if let Some(next) = self.local6.next.get_mut(v) {
                    *next = (start + k + 1) % n;
                }
                let ip = self.counters.local6.addr_at(i)?;
                return Some(Endpoint6::new(ip, port));
            }
        }
        None
    }

    /// Gives back a local port taken for a connection that was not made.
    pub(super) fn untake_local6(&mut self, local: Endpoint6, proto: u8) {
        self.counters.local6.release(local.ip, proto, local.port);
    }

    /// The decision for a packet of FullNAT connection `id` of service
    /// `vs` going `dir`: to the real server from the local end, or back
    /// to the client from the VIP.
    pub(super) fn fullnat_decision6(
        &self,
        id: ConnId,
        dir: Direction,
        vs: ServiceId,
        real: Option<Endpoint6>,
        created: bool,
    ) -> Decision6 {
        let c = self.conns6.get(id);
        match dir {
            Direction::Original => {
                let Some(real) = real else {
                    return Decision6::Drop(Refusal::NoRealServer);
                };
                let r = c.reply();
                Decision6::FullNatToRealServer {
                    local: Endpoint6::new(r.dst, r.dst_port),
                    real,
                    created,
                }
            }
            Direction::Reply => {
                let Some(vip) = self.services.get(vs).vip6() else {
                    return Decision6::Drop(Refusal::NoService);
                };
                let o = c.original();
                Decision6::FullNatToClient {
                    vip,
                    client: Endpoint6::new(o.src, o.src_port),
                }
            }
        }
    }

    /// Where an ICMPv6 error about FullNAT connection `id` goes, the
    /// error travelling `dir` (`Reply`: from the inside, about a packet
    /// sent to the real server; `Original`: from the outside, about a
    /// reply sent to the client).
    pub(super) fn fullnat_icmp_route6(
        &self,
        id: ConnId,
        dir: Direction,
    ) -> Result<IcmpRoute6, Refusal> {
        let c = self.conns6.get(id);
        let service = self.services.get(c.vs);
        let (o, r) = (c.original(), c.reply());
        let local = Endpoint6::new(r.dst, r.dst_port);
        Ok(match dir {
            Direction::Reply => IcmpRoute6::FullNatToClient {
                vip: service.vip6().ok_or(Refusal::NoConnection)?,
                client: Endpoint6::new(o.src, o.src_port),
            },
            Direction::Original => IcmpRoute6::FullNatToRealServer {
                local,
                real: service.real_endpoint6(c.rs).ok_or(Refusal::NoConnection)?,
            },
        })
    }
}
