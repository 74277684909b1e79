//! The balancer's IPv6 path: the same decisions as for IPv4 (see the
//! parent module's doc), over an IPv6 flow and the IPv6 connection table
//! (`ConnTable6`, 128-byte entries; `lb::conn::v6` says why a second
//! table). The policy is shared, not copied: admission (`admit`: ACL,
//! per-client limit by /64, rate), scheduling (`schedule`: persistence,
//! thresholds, the sorry server, `sh`/`mh` hashing the IPv6 client), the
//! per real server counters and their thresholds (`Counters`, generic over
//! the entry) are the IPv4 path's own functions, instantiated for
//! `Ipv6Addr`. What is here is what reads the IPv6 table and the IPv6
//! addresses of a service (`ServiceTable::lookup6`, `real_endpoint6`).
//!
//! FullNAT over IPv6 (IPv6 local addresses, IPv6 real servers) is in
//! `fullnat6`; this path calls it where a FullNAT service differs.
//!
//! Not on this path yet: the SYN proxy (an IPv6 service is balanced
//! without it). HA sync reports go through `report6` (module `sync6`,
//! version-4 records). NAT64 (an IPv6 service, IPv4 local addresses and
//! real servers) is in `nat64`.

use super::midflow::Opening;
use super::{usable, Balancer, Counters, Refusal};
use crate::lb::conn::{
    ConnAddr, ConnId, ConnInit, ConnTable6, ConnTableOf, Direction, FlowKey6, InsertError,
    PROTO_TCP,
};
use crate::lb::service::{ForwardMethod, Protocol, ServiceId, ServiceTable};
use crate::lb::tcp_state::TcpFlags;
use crate::lb::xmit::{Endpoint, Endpoint6};
use std::net::Ipv6Addr;

pub mod nat64;

/// One packet of an IPv6 TCP or UDP flow, as the worker's first look at
/// the frame found it (the IPv6 twin of `Flow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow6 {
    /// The 5-tuple as it travels on the wire.
    pub key: FlowKey6,
    /// The IPv6 table's hash of `key` ([`Balancer::flow_hash6`]).
    pub hash: u32,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// TCP flags (none for UDP).
    pub flags: TcpFlags,
    /// The packet's length from the IPv6 header on, for the byte
    /// counters.
    pub bytes: u32,
}

/// What to do with one IPv6 packet (the IPv6 twin of `Decision`, without
/// the SYN proxy's answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision6 {
    /// A client's packet: send it to this real server by `method` (NAT:
    /// `xmit::nat6::to_real_server`; DR: the MAC only; TUN:
    /// `xmit::tun6::encapsulate`).
    ToRealServer {
        /// NAT, DR or TUN.
        method: ForwardMethod,
        /// The real server.
        real: Endpoint6,
        /// This packet created the connection.
        created: bool,
    },
    /// A real server's reply (NAT): back to the client from the service
    /// (`xmit::nat6::from_real_server`).
    ToClient {
        /// The service's address and port the reply must come from.
        vip: Endpoint6,
    },
    /// A client's packet of a NAT64 service (`nat64`): translate to IPv4
    /// from `local` to `real` (`xmit::nat64::to_ipv4`).
    Nat64ToRealServer {
        /// The IPv4 local address and port it leaves from.
        local: Endpoint,
        /// The IPv4 real server.
        real: Endpoint,
        /// This packet created the connection.
        created: bool,
    },
    /// Answer the client with a TCP reset (every server down, or its
    /// connection's server went down).
    Reset,
    /// Drop the packet, counted under the reason.
    Drop(Refusal),
    /// FullNAT, a client's packet: from `local` to `real`
    /// (`xmit::fullnat6::rewrite`).
    FullNatToRealServer {
        /// The local address and port the real server sees.
        local: Endpoint6,
        /// The real server.
        real: Endpoint6,
        /// This packet created the connection.
        created: bool,
    },
    /// FullNAT, a real server's reply: from the service to `client`.
    FullNatToClient {
        /// The service's address and port.
        vip: Endpoint6,
        /// The client.
        client: Endpoint6,
    },
}

/// Where an ICMPv6 error about a tracked IPv6 connection goes (the twin
/// of `IcmpRoute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpRoute6 {
    /// About a packet forwarded to a real server: back to the client as
    /// if the VIP had answered (`xmit::nat6::translate_icmp_error`).
    ToClient {
        /// The service.
        vip: Endpoint6,
        /// The client, where the error goes.
        client: Ipv6Addr,
    },
    /// About a reply: on to the real server that sent it, by `method`.
    ToRealServer {
        /// NAT, DR or TUN.
        method: ForwardMethod,
        /// The real server.
        real: Endpoint6,
    },
    /// FullNAT, about a packet sent to a real server (the error came from
    /// the inside, to the local address): to the client from the VIP,
    /// quoting what the client sent (`xmit::fullnat6::translate_icmp_error`).
    FullNatToClient {
        /// The service.
        vip: Endpoint6,
        /// The client.
        client: Endpoint6,
    },
    /// FullNAT, about a reply sent to the client: to the real server from
    /// the local address, quoting the reply as the real server sent it.
    FullNatToRealServer {
        /// The local address and port.
        local: Endpoint6,
        /// The real server.
        real: Endpoint6,
    },
    /// About a reply of a NAT64 connection: to its IPv4 real server from
    /// its local address, translated (`xmit::nat64::icmp_to_ipv4`).
    Nat64ToRealServer {
        /// The local address and port the connection leaves from.
        local: Endpoint,
        /// The real server.
        real: Endpoint,
    },
}

/// Seed of the IPv6 table, from the balancer's (another table, another
/// seed: a client cannot aim both at once).
const SEED6: u64 = 0x6A09_E667_F3BC_C908;

/// The IPv6 table a balancer starts with for `services`: sized like the
/// IPv4 one when a service is IPv6, one entry otherwise (allocated on the
/// reload that brings the first IPv6 service, [`Balancer::grow_conns6`]).
pub(super) fn initial_table(
    services: &ServiceTable,
    capacity: usize,
    seed: u64,
) -> Result<ConnTable6, String> {
    let capacity = if services.any_ipv6() { capacity } else { 1 };
    ConnTable6::try_with_seed(capacity.max(1), seed ^ SEED6)
}

impl Counters {
    /// Counts one packet of `bytes` going `dir` for server `rs` of `vs`.
    #[inline]
    fn count_packet(&mut self, vs: u16, rs: u16, dir: Direction, bytes: u32) {
        if let Some(cnt) = self.get_mut(vs, rs) {
            match dir {
                Direction::Original => {
                    cnt.packets_in += 1;
                    cnt.bytes_in += u64::from(bytes);
                }
                Direction::Reply => {
                    cnt.packets_out += 1;
                    cnt.bytes_out += u64::from(bytes);
                }
            }
        }
    }

    /// Adds every connection of `conns` to the client counts (after
    /// `recount_clients` cleared and counted the IPv4 table).
    pub(super) fn count_clients<A: ConnAddr>(&mut self, conns: &ConnTableOf<A>) {
        if self.clients.is_unallocated() {
            return;
        }
        for (_, c) in conns.iter() {
            if let Some(p) = self.client_slot(c) {
                self.clients.increment(c.vs, p);
            }
        }
    }
}

impl Balancer {
    /// The IPv6 connection table (for `rvsadm`, metrics, tests).
    pub fn conns6(&self) -> &ConnTable6 {
        &self.conns6
    }

    /// IPv6 connections stored.
    pub fn conn_count6(&self) -> usize {
        self.conns6.len()
    }

    /// The IPv6 table's hash of `key`: computed once per frame, passed to
    /// the prefetches and [`Flow6::hash`].
    #[inline]
    pub fn flow_hash6(&self, key: &FlowKey6) -> u32 {
        self.conns6.hash(key)
    }

    /// Prefetches `hash`'s index bucket in the IPv6 table (first step of a
    /// burst, as `prefetch_index`).
    #[inline]
    pub fn prefetch_index6(&self, hash: u32) {
        self.conns6.prefetch_bucket(hash);
    }

    /// Prefetches the IPv6 entry `hash`'s lookup will read (second step).
    #[inline]
    pub fn prefetch_entry6(&self, hash: u32) {
        self.conns6.prefetch_entry(hash);
    }

    /// Allocates the IPv6 table when a snapshot brings the first IPv6
    /// service (off the packet path, as the SYN proxy's side array). On
    /// failure the one-entry table stays: IPv6 flows are refused as
    /// `TableFull`, counted, and IPv4 goes on.
    pub(super) fn grow_conns6(&mut self, services: &ServiceTable) {
        if services.any_ipv6() && self.conns6.capacity() < self.conns.capacity() {
            // The small table it replaces is empty: it only served while
            // no service was IPv6.
            if let Ok(t) = initial_table(services, self.conns.capacity(), self.seed) {
                self.conns6 = t;
            }
        }
    }

    /// Decides one packet of an IPv6 TCP or UDP flow at `now`, as
    /// `decide` does for IPv4: the connection by either key, a bare SYN
    /// on a closing connection starting afresh, a connection whose real
    /// server is down ended (`expire_nodest_conn`), else for a service's
    /// VIP the limits, the scheduler and a new connection.
    pub fn decide6(&mut self, flow: &Flow6, now: u64) -> Decision6 {
        let counters = &mut self.counters;
        let found = self
            .conns6
            .lookup_hashed(&flow.key, flow.hash, now, |c| counters.forget(c, now))
            .and_then(|(id, dir)| self.still_usable6(id, dir, flow, now));
        let (id, dir, created) = match found {
            Some(Ok((id, dir))) => (id, dir, false),
            Some(Err(d)) => return d,
            None => match self.new_connection6(flow, now) {
                Ok(id) => (id, Direction::Original, true),
                Err(Refusal::NoRealServer) if flow.protocol == Protocol::Tcp => {
                    return Decision6::Reset
                }
                Err(r) => return Decision6::Drop(r),
            },
        };
        let before = self.conns6.get(id).state();
        if self.services.get(self.conns6.get(id).vs).is_nat64() {
            // The IPv6 side of NAT64: only ever the client's (`nat64`).
            if dir == Direction::Reply {
                return Decision6::Drop(Refusal::NoConnection);
            }
            self.account6(id, dir, flow.flags, flow.bytes, now);
            self.report6(id, before, created, now);
            return self.nat64_to_real_server(id, created);
        }
        let (vs, rs) = self.account6(id, dir, flow.flags, flow.bytes, now);
        self.report6(id, before, created, now);
        let service = self.services.get(vs);
        if service.forward == ForwardMethod::FullNat {
            let real = service.real_endpoint6(rs);
            return self.fullnat_decision6(id, dir, vs, real, created);
        }
        match dir {
            Direction::Original => match service.real_endpoint6(rs) {
                Some(real) => Decision6::ToRealServer {
                    method: service.forward,
                    real,
                    created,
                },
                None => Decision6::Drop(Refusal::NoRealServer),
            },
            Direction::Reply => match service.vip6() {
                Some(vip) => Decision6::ToClient { vip },
                None => Decision6::Drop(Refusal::NoService),
            },
        }
    }

    /// Where an ICMPv6 error goes whose quoted packet, reversed, is `key`
    /// (the direction the error travels). Counts nothing.
    pub fn icmp_error6(&self, key: &FlowKey6, now: u64) -> Result<IcmpRoute6, Refusal> {
        let (id, dir) = self.conns6.peek(key, now).ok_or(Refusal::NoConnection)?;
        let c = self.conns6.get(id);
        let service = self.services.get(c.vs);
        if service.is_nat64() {
            // Only errors about what rvs sent the client come by IPv6.
            return match dir {
                Direction::Original => self.nat64_icmp_route(id),
                Direction::Reply => Err(Refusal::NoConnection),
            };
        }
        if service.forward == ForwardMethod::FullNat {
            return self.fullnat_icmp_route6(id, dir);
        }
        Ok(match dir {
            Direction::Reply => IcmpRoute6::ToClient {
                vip: service.vip6().ok_or(Refusal::NoConnection)?,
                client: key.dst,
            },
            Direction::Original => IcmpRoute6::ToRealServer {
                method: service.forward,
                real: service.real_endpoint6(c.rs).ok_or(Refusal::NoConnection)?,
            },
        })
    }

    /// The IPv6 part of `tick`: the sweep of the IPv6 table, with the
    /// IPv4 sweep's budget.
    pub(super) fn expire6(&mut self, now: u64, budget: usize) {
        let counters = &mut self.counters;
        self.conns6.expire(now, budget, |c| counters.forget(c, now));
    }

    /// As `still_usable`, over the IPv6 table.
    fn still_usable6(
        &mut self,
        id: ConnId,
        dir: Direction,
        flow: &Flow6,
        now: u64,
    ) -> Option<Result<(ConnId, Direction), Decision6>> {
        let tcp = (flow.protocol == Protocol::Tcp).then_some(flow.flags);
        let found = usable::still_usable_in(
            &mut self.conns6,
            &mut self.counters,
            &self.services,
            id,
            dir,
            tcp,
            now,
        )?;
        Some(found.map_err(|e| match e {
            usable::Ended::Reset => Decision6::Reset,
            usable::Ended::Drop => Decision6::Drop(Refusal::NoConnection),
        }))
    }

    /// Accounts one packet of IPv6 connection `id`: state, timeout, the
    /// server's counters (the sync report is `decide6`'s, `report6`).
    #[inline]
    fn account6(
        &mut self,
        id: ConnId,
        dir: Direction,
        flags: TcpFlags,
        bytes: u32,
        now: u64,
    ) -> (u16, u16) {
        let c = self.conns6.get_mut(id);
        if c.is_synced() {
            c.clear_synced();
            self.counters.synced = self.counters.synced.saturating_sub(1);
        }
        if c.awaits_syn_ack() {
            self.counters.handshake_packet(c, dir, flags, now);
        }
        let before = c.state();
        let t = c.on_packet(dir, flags, bytes, now, &self.timeouts);
        let (vs, rs) = (c.vs, c.rs);
        if c.state() != before {
            let c = *c;
            self.counters.client_state_changed(&c, before);
        }
        self.counters.account(vs, rs, t);
        self.counters.count_packet(vs, rs, dir, bytes);
        (vs, rs)
    }

    /// Schedules a new IPv6 flow to a service and records its connection.
    fn new_connection6(&mut self, flow: &Flow6, now: u64) -> Result<ConnId, Refusal> {
        let key = &flow.key;
        let vip = Endpoint6::new(key.dst, key.dst_port);
        let Some(vs) = self.services.lookup6(vip, flow.protocol) else {
            let src = Endpoint6::new(key.src, key.src_port);
            if self.services.is_nat_real_server6(src, flow.protocol)
                || self.services.is_local_address6(key.dst)
            {
                // A reply (NAT, or to a FullNAT local address) for a
                // connection we do not know.
                return Err(Refusal::NoConnection);
            }
            return Err(Refusal::NoService);
        };
        let opening = if flow.protocol == Protocol::Tcp && !flow.flags.is_bare_syn() {
            // As for IPv4 (`new_connection`, `midflow`).
            self.midflow_opening(vs, flow.flags)
                .ok_or(Refusal::NoConnection)?
        } else {
            Opening::Handshake
        };
        if self.services.is_local_address6(key.src) {
            // Our own local address as a client: spoofed, and its tuple
            // could take the reply key of a FullNAT connection.
            return Err(Refusal::Malformed);
        }
        if self.services.is_draining(vs) {
            return Err(Refusal::NoService);
        }
        let id = self.open6(vs, key, opening, now)?;
        self.count_opening(opening);
        Ok(id)
    }

    /// Admits, schedules and records a new IPv6 connection of `vs`,
    /// opened as `opening` says.
    fn open6(
        &mut self,
        vs: ServiceId,
        key: &FlowKey6,
        opening: Opening,
        now: u64,
    ) -> Result<ConnId, Refusal> {
        let rs = self.admit_and_schedule(vs, key.src, key.src_port, now)?;
        if self.services.get(vs).is_nat64() {
            return self.open_nat64(vs, rs, key, now);
        }
        let service = self.services.get(vs);
        let real = service.real_endpoint6(rs).ok_or(Refusal::NoRealServer)?;
        let forward = service.forward;
        let sees_replies = forward.sees_replies();
        let local = if forward == ForwardMethod::FullNat {
            Some(self.take_local6(vs).ok_or(Refusal::NoLocalPort)?)
        } else {
            None
        };
        let reply = match local {
            // FullNAT: replies come to the local end (`fullnat6`).
            Some(l) => FlowKey6::new(real.ip, real.port, l.ip, l.port, key.proto),
            None if forward == ForwardMethod::Nat => {
                FlowKey6::new(real.ip, real.port, key.src, key.src_port, key.proto)
            }
            // DR, TUN: replies bypass rvs; the reply key is a second name.
            None => key.reversed(),
        };
        let mut init = ConnInit::new(vs, rs);
        init.input_only = !sees_replies;
        opening.apply(&mut init, &self.timeouts);
        let counters = &mut self.counters;
        let inserted = self
            .conns6
            .insert(*key, reply, init, now, |c| counters.forget(c, now));
        let id = match inserted {
            Ok(id) => id,
            Err(e) => {
                if let Some(l) = local {
                    self.untake_local6(l, key.proto);
                }
                return Err(match e {
                    InsertError::Full => Refusal::TableFull,
                    InsertError::Exists | InsertError::SameKeys => Refusal::Malformed,
                });
            }
        };
        if sees_replies && key.proto == PROTO_TCP && opening == Opening::Handshake {
            self.conns6.get_mut(id).await_syn_ack();
            if let Some(c) = self.counters.get_mut(vs, rs) {
                c.handshakes += 1;
            }
        }
        self.counters.created(self.conns6.get(id));
        Ok(id)
    }
}

#[cfg(test)]
mod tests;
