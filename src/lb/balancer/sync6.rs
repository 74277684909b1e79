//! HA sync and inspection of the IPv6 connection table: the IPv6 twins of
//! `Balancer::report`, `event`, `sync_dump`, `install` and `dump`. The
//! policy is the IPv4 one (the parent module's `install` says it in
//! full): a record names its service and real server by address, a
//! known connection is brought to the reported state (replaced when it
//! names another server), a new one is installed proven (what the active
//! balancer had is not a flood's), and no timeout outlives the local one.
//!
//! FullNAT over IPv6 and NAT64: the record carries the local end
//! (`SyncEvent6::local`; NAT64's IPv4 addresses IPv4-mapped, as its reply
//! keys and real servers are); the standby keys the reply by it and takes
//! the port out of its own pool (NAT64's: the IPv4 one), as for IPv4.

use super::{synced, Balancer, ConnInfo};
use crate::lb::conn::{Conn6, ConnId, FlowKey6};
use crate::lb::service::{ForwardMethod, SORRY_SERVER};
use crate::lb::sync::SyncEvent6;
use crate::lb::tcp_state;
use std::net::SocketAddr;

impl Balancer {
    /// Reports IPv6 connection `id` to the peer when it was just created
    /// or its state left `before` (active balancer only; as `account`
    /// does for IPv4).
    pub(super) fn report6(
        &mut self,
        id: ConnId,
        before: tcp_state::State,
        created: bool,
        now: u64,
    ) {
        if !self.sync_active {
            return;
        }
        let c = self.conns6.get(id);
        if !created && c.state() == before {
            return;
        }
        if let Some(ev) = self.event6(c, now) {
            if let Some(q) = self.sync.as_mut() {
                q.push(ev);
            }
        }
    }

    /// Every live IPv6 connection as a sync event (a full resync); in
    /// cluster mode only local ones.
    pub fn sync_dump6(&self, now: u64) -> Vec<SyncEvent6> {
        self.conns6
            .iter()
            .filter(|(_, c)| self.dumps(*c, now))
            .filter_map(|(_, c)| self.event6(c, now))
            .collect()
    }

    /// An IPv6 connection as the peer needs it (FullNAT's replies come
    /// to its local end, as for IPv4).
    fn event6(&self, c: &Conn6, now: u64) -> Option<SyncEvent6> {
        let real = self.services.real_endpoint6(c.vs, c.rs)?;
        let fullnat = self.services.get(c.vs).forward == ForwardMethod::FullNat;
        synced::sync_event(c, real, fullnat, now)
    }

    /// Installs IPv6 connections the active balancer reported (on a
    /// standby), as [`Balancer::install`] does for IPv4: the service by
    /// `ServiceTable::lookup6`, the real server (or sorry server) by its
    /// IPv6 endpoint; an event for anything this balancer does not have
    /// is skipped. Returns how many were new.
    pub fn install6(&mut self, events: &[SyncEvent6], now: u64) -> u64 {
        let mut installed = 0;
        for ev in events {
            let Some((vs, rs)) = self.synced_target6(ev) else {
                continue;
            };
            let service = self.services.get(vs);
            let proto = ev.protocol.number();
            let (client, vip, real) = (ev.client, ev.vip, ev.real);
            let original = FlowKey6::new(client.ip, client.port, vip.ip, vip.port, proto);
            let reply = match (service.forward, ev.local) {
                (ForwardMethod::Nat, _) => {
                    FlowKey6::new(real.ip, real.port, client.ip, client.port, proto)
                }
                (ForwardMethod::Dr | ForwardMethod::Tun, _) => original.reversed(),
                // FullNAT: the peer's local end, which this worker takes
                // out of its pool below (a record without one, or with a
                // local address the service does not have, is skipped).
                // NAT64's ends are IPv4-mapped, as its reply keys are.
                (ForwardMethod::FullNat, Some(l)) if service.has_local6(l.ip) => {
                    FlowKey6::new(real.ip, real.port, l.ip, l.port, proto)
                }
                (ForwardMethod::FullNat, _) => continue,
            };
            let init = synced::synced_init(ev, vs, rs, &self.timeouts);
            let new = self.counters.install_synced(
                &mut self.conns6,
                &self.timeouts,
                (original, reply),
                init,
                self.cluster,
                now,
            );
            if new.is_some() {
                if service.forward == ForwardMethod::FullNat {
                    // The port is this connection's here too (a no-op when
                    // this worker does not own the local address): NAT64's
                    // from the IPv4 pool.
                    let (lip, proto, port) = (reply.dst, reply.proto, reply.dst_port);
                    match lip.to_ipv4_mapped() {
                        Some(lip4) => self.counters.local.claim(lip4, proto, port),
                        None => self.counters.local6.claim(lip, proto, port),
                    };
                }
                installed += 1;
            }
        }
        installed
    }

    /// The service and real server (or sorry server) an IPv6 record
    /// names, by address.
    fn synced_target6(&self, ev: &SyncEvent6) -> Option<(u16, u16)> {
        let vs = self.services.lookup6(ev.vip, ev.protocol)?;
        let service = self.services.get(vs);
        let servers = service.real_servers.len();
        let rs = (0..servers as u16)
            .chain([SORRY_SERVER])
            .find(|&rs| service.real_endpoint6(rs) == Some(ev.real))?;
        Some((vs, rs))
    }

    /// Removes the IPv6 connections of REMOVED records, as
    /// [`Balancer::remove_synced`] does for IPv4.
    pub fn remove_synced6(&mut self, events: &[SyncEvent6], now: u64) -> u64 {
        let mut removed = 0;
        for ev in events {
            let Some(target) = self.synced_target6(ev) else {
                continue;
            };
            let (client, vip) = (ev.client, ev.vip);
            let original = FlowKey6::new(
                client.ip,
                client.port,
                vip.ip,
                vip.port,
                ev.protocol.number(),
            );
            if self
                .counters
                .remove_synced(&mut self.conns6, original, target, self.cluster, now)
            {
                removed += 1;
            }
        }
        removed
    }

    /// Up to `limit` live IPv6 connections, for `rvsadm conns`.
    pub fn dump6(&self, now: u64, limit: usize) -> Vec<ConnInfo> {
        self.conns6
            .iter()
            .filter(|(_, c)| !c.is_expired(now))
            .take(limit)
            .map(|(_, c)| {
                let service = self.services.get(c.vs);
                let real = service
                    .real_endpoint6(c.rs)
                    .map(|e| SocketAddr::from((e.ip, e.port)));
                let fullnat = service.forward == ForwardMethod::FullNat;
                synced::conn_info(c, real, fullnat, now)
            })
            .collect()
    }

    /// Connections in both tables, and what both hold at most (the IPv6
    /// table counted only once allocated: a balancer without IPv6
    /// services keeps a one-entry placeholder), for the worker's gauges.
    pub fn conn_totals(&self) -> (usize, usize) {
        let cap6 = self.conns6.capacity();
        let cap6 = if cap6 > 1 { cap6 } else { 0 };
        (
            self.conns.len() + self.conns6.len(),
            self.conns.capacity() + cap6,
        )
    }
}

#[cfg(test)]
mod tests;
