//! NAT64 FullNAT decisions: an IPv6 service (`VirtualService::is_nat64`)
//! whose connections leave from an IPv4 local address to an IPv4 real
//! server (the rewrite is `lb::xmit::nat64`).
//!
//! The connection lives in the IPv6 table: its original key is the
//! client's IPv6 tuple, its reply key the IPv4 reply's tuple with both
//! addresses IPv4-mapped (`::ffff:RIP:RPORT → ::ffff:LIP:LPORT`, RFC 4291
//! 2.5.5.2; `lb::xmit::nat64::mapped`). Both rewrites follow from the two
//! keys, as for IPv4 FullNAT. The client side goes through `decide6`
//! (which hands a NAT64 service's new connection to [`Balancer::open_nat64`]
//! and its packets to [`Balancer::nat64_to_real_server`]); the IPv4 reply,
//! to a NAT64 local address (`ServiceTable::is_nat64_local`), comes here
//! through [`Balancer::decide_nat64_reply`].
//!
//! Local ports come from the IPv4 pool (`lb::local_pool`), so ownership
//! is IPv4 FullNAT's: the worker that owns the local address by
//! `RssModel::worker_of` (the IPv4 reply's hash) takes and gives back
//! its ports; `Counters::forget` releases them on every removal path
//! (it reads the mapped reply key's destination as IPv4: `IpFamily::as_ipv4`).
//! An IPv6 client may not use an IPv4-mapped source (it could take a
//! reply key), nor may an IPv6 packet reach a NAT64 connection by its
//! reply key (such addresses are never on the wire: RFC 4291).

use super::{Balancer, Decision6, Flow6, IcmpRoute6, Refusal};
use crate::lb::conn::{ConnId, ConnInit, Direction, FlowKey, FlowKey6, InsertError, PROTO_TCP};
use crate::lb::service::{Protocol, ServiceId, ServiceTable};
use crate::lb::tcp_state::TcpFlags;
use crate::lb::xmit::nat64::mapped;
use crate::lb::xmit::{Endpoint, Endpoint6};

/// What to do with an IPv4 packet to a NAT64 local address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat64Reply {
    /// A real server's reply: translate to IPv6 from `vip` to `client`.
    ToClient {
        /// The service's IPv6 address and port.
        vip: Endpoint6,
        /// The client.
        client: Endpoint6,
    },
    /// Drop, counted under the reason (no connection knows the tuple).
    Drop(Refusal),
}

/// The IPv6 table's key of an IPv4 NAT64 tuple (both addresses mapped).
pub fn key64(key: &FlowKey) -> FlowKey6 {
    FlowKey6::new(
        mapped(key.src),
        key.src_port,
        mapped(key.dst),
        key.dst_port,
        key.proto,
    )
}

impl Balancer {
    /// Decides an IPv4 TCP or UDP packet to a NAT64 local address (`key`
    /// its tuple as it travels): a known connection's reply is accounted
    /// and goes to its client; anything else is `NoConnection`.
    pub fn decide_nat64_reply(
        &mut self,
        key: &FlowKey,
        protocol: Protocol,
        flags: TcpFlags,
        bytes: u32,
        now: u64,
    ) -> Nat64Reply {
        let key6 = key64(key);
        let flow = Flow6 {
            key: key6,
            hash: self.conns6.hash(&key6),
            protocol,
            flags,
            bytes,
        };
        let counters = &mut self.counters;
        let found = self
            .conns6
            .lookup_hashed(&flow.key, flow.hash, now, |c| counters.forget(c, now))
            .and_then(|(id, dir)| self.still_usable6(id, dir, &flow, now));
        let id = match found {
            Some(Ok((id, Direction::Reply))) => id,
            _ => return Nat64Reply::Drop(Refusal::NoConnection),
        };
        if !self.services.get(self.conns6.get(id).vs).is_nat64() {
            return Nat64Reply::Drop(Refusal::NoConnection);
        }
        let (vs, _) = self.account6(id, Direction::Reply, flags, bytes, now);
        let original = self.conns6.get(id).original();
        match self.services.get(vs).vip6() {
            Some(vip) => Nat64Reply::ToClient {
                vip,
                client: Endpoint6::new(original.src, original.src_port),
            },
            None => Nat64Reply::Drop(Refusal::NoService),
        }
    }

    /// Where an ICMP error from the real server's side goes whose quoted
    /// packet, reversed, is `key` (real server → local address): the VIP
    /// it must come from and the client. Counts nothing.
    pub fn icmp_error_nat64(
        &self,
        key: &FlowKey,
        now: u64,
    ) -> Result<(Endpoint6, Endpoint6), Refusal> {
        let (id, dir) = self
            .conns6
            .peek(&key64(key), now)
            .ok_or(Refusal::NoConnection)?;
        let c = self.conns6.get(id);
        let service = self.services.get(c.vs);
        if dir != Direction::Reply || !service.is_nat64() {
            return Err(Refusal::NoConnection);
        }
        let o = c.original();
        let vip = service.vip6().ok_or(Refusal::NoConnection)?;
        Ok((vip, Endpoint6::new(o.src, o.src_port)))
    }

    /// The decision for a client's packet of NAT64 connection `id`: from
    /// its local address to its real server (both from the reply key).
    pub(super) fn nat64_to_real_server(&self, id: ConnId, created: bool) -> Decision6 {
        match ends(&self.conns6.get(id).reply()) {
            Some((local, real)) => Decision6::Nat64ToRealServer {
                local,
                real,
                created,
            },
            None => Decision6::Drop(Refusal::NoConnection),
        }
    }

    /// The route of an ICMPv6 error from the client's side about NAT64
    /// connection `id`'s reply: to the real server, from the local address.
    pub(super) fn nat64_icmp_route(&self, id: ConnId) -> Result<IcmpRoute6, Refusal> {
        let (local, real) = ends(&self.conns6.get(id).reply()).ok_or(Refusal::NoConnection)?;
        Ok(IcmpRoute6::Nat64ToRealServer { local, real })
    }

    /// Records a new NAT64 connection of `vs` to real server `rs` (already
    /// admitted and scheduled): a local port from this worker's IPv4 pool,
    /// the reply key the IPv4 reply's tuple, mapped.
    pub(super) fn open_nat64(
        &mut self,
        vs: ServiceId,
        rs: u16,
        key: &FlowKey6,
        now: u64,
    ) -> Result<ConnId, Refusal> {
        if key.src.to_ipv4_mapped().is_some() {
            // Never on the wire (RFC 4291 2.5.5.2), and it could take a
            // NAT64 connection's reply key.
            return Err(Refusal::Malformed);
        }
        let real = self
            .services
            .real_endpoint(vs, rs)
            .ok_or(Refusal::NoRealServer)?;
        let local = self.take_local(vs).ok_or(Refusal::NoLocalPort)?;
        let reply = FlowKey6::new(
            mapped(real.ip),
            real.port,
            mapped(local.ip),
            local.port,
            key.proto,
        );
        let counters = &mut self.counters;
        let inserted = self
            .conns6
            .insert(*key, reply, ConnInit::new(vs, rs), now, |c| {
                counters.forget(c, now)
            });
        let id = match inserted {
            Ok(id) => id,
            Err(e) => {
                self.counters.local.release(local.ip, key.proto, local.port);
                return Err(match e {
                    InsertError::Full => Refusal::TableFull,
                    InsertError::Exists | InsertError::SameKeys => Refusal::Malformed,
                });
            }
        };
        if key.proto == PROTO_TCP {
            self.conns6.get_mut(id).await_syn_ack();
            if let Some(c) = self.counters.get_mut(vs, rs) {
                c.handshakes += 1;
            }
        }
        self.counters.created(self.conns6.get(id));
        Ok(id)
    }

    /// Claims again, in a rebuilt pool, the local ports of the live NAT64
    /// connections (the IPv4 table's are claimed by `set_local_pool`).
    pub(in crate::lb::balancer) fn claim_nat64_ports(&mut self, services: &ServiceTable) {
        for (_, c) in self.conns6.iter() {
            if usize::from(c.vs) < services.len() && services.get(c.vs).is_nat64() {
                let r = c.reply();
                if let Some(lip) = r.dst.to_ipv4_mapped() {
                    self.counters.local.claim(lip, r.proto, r.dst_port);
                }
            }
        }
    }
}

/// The local address and real server of a NAT64 reply key
/// (`::ffff:RIP:RPORT → ::ffff:LIP:LPORT`).
fn ends(reply: &FlowKey6) -> Option<(Endpoint, Endpoint)> {
    let local = Endpoint::new(reply.dst.to_ipv4_mapped()?, reply.dst_port);
    let real = Endpoint::new(reply.src.to_ipv4_mapped()?, reply.src_port);
    Some((local, real))
}

#[cfg(test)]
mod tests;
