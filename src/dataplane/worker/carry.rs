//! The worker's path for connections whose service carries the client's
//! address (`client_address`, `lb::client_addr`): the NAT or FullNAT
//! rewrite, then the hook that grows or translates the segment, then
//! routing.
//!
//! The two `carry_*` methods are the hooks any path that rewrites a
//! carrying connection calls, NAT here and FullNAT alike: on a client's
//! segment after its rewrite towards the real server, on a real server's
//! segment before its rewrite towards the client.

use super::forward::xmit_drop;
use super::Worker;
use crate::dataplane::client_addr::FromL3;
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::stats::DropReason;
use crate::lb::balancer::{Carry, Flow};
use crate::lb::client_addr::{self, ClientAddress, Outcome, Skip};
use crate::lb::conn::ConnId;
use crate::lb::xmit::{fullnat, nat, tun, Endpoint};

impl<F: Frame> Worker<F> {
    /// A client's segment of a carrying NAT connection `conn`: to `real`,
    /// through the hook, to the next hop.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat_to_real_server_carrying<O: Output<F>>(
        &mut self,
        l3: usize,
        flow: &Flow,
        real: Endpoint,
        conn: ConnId,
        mode: ClientAddress,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop = self.routes.lookup(real.ip).ok_or(DropReason::NoRoute)?;
        let mtu = usize::from(self.ports[usize::from(hop.port)].mtu);
        if let Some(smaller) = self.header_too_big(l3, conn, mode, mtu, &frame) {
            // Before the rewrite, so the error quotes what the client sent.
            return self.frag_needed(l3, smaller, frame, now, out);
        }
        nat::to_real_server(&mut frame.data_mut()[l3..], real).map_err(xmit_drop)?;
        let key = &flow.key;
        let ends = (
            Endpoint::new(key.src, key.src_port),
            Endpoint::new(key.dst, key.dst_port),
        );
        self.carry_to_real_server(l3, conn, mode, ends, mtu, &mut frame)?;
        self.stats.forwarded += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// A client's segment of a carrying FullNAT connection: from
    /// `local` to `real` (`ends`), through the hook with the client's own
    /// address and the VIP it connected to, to the next hop.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fullnat_to_real_server_carrying<O: Output<F>>(
        &mut self,
        l3: usize,
        flow: &Flow,
        (local, real): (Endpoint, Endpoint),
        carry: Carry,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop = self.routes.lookup(real.ip).ok_or(DropReason::NoRoute)?;
        let mtu = usize::from(self.ports[usize::from(hop.port)].mtu);
        if let Some(smaller) = self.header_too_big(l3, carry.conn, carry.mode, mtu, &frame) {
            // Before the rewrite, so the error quotes what the client sent.
            return self.frag_needed(l3, smaller, frame, now, out);
        }
        fullnat::to_real_server(&mut frame.data_mut()[l3..], local, real).map_err(xmit_drop)?;
        let key = &flow.key;
        let ends = (
            Endpoint::new(key.src, key.src_port),
            Endpoint::new(key.dst, key.dst_port),
        );
        self.carry_to_real_server(l3, carry.conn, carry.mode, ends, mtu, &mut frame)?;
        self.stats.forwarded += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// A real server's segment of a carrying NAT connection `conn`:
    /// through the hook, then back to the client as `vip`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat_to_client_carrying<O: Output<F>>(
        &mut self,
        l3: usize,
        flow: &Flow,
        vip: Endpoint,
        conn: ConnId,
        mode: ClientAddress,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        self.carry_to_client(l3, conn, mode, &mut frame);
        nat::from_real_server(&mut frame.data_mut()[l3..], vip).map_err(xmit_drop)?;
        self.route_and_send(flow.key.dst, frame, now, out)
    }

    /// PROXY v2: the MTU to tell the client (in an ICMP "fragmentation
    /// needed", counted as `client_addr_skipped_too_big`) when the
    /// segment at `l3` must carry the header and cannot within `mtu` (and
    /// may not be fragmented); `None` when it fits or carries nothing.
    /// Call before rewriting the segment, which the error quotes.
    pub(super) fn header_too_big(
        &mut self,
        l3: usize,
        conn: ConnId,
        mode: ClientAddress,
        mtu: usize,
        frame: &F,
    ) -> Option<u16> {
        if mode != ClientAddress::ProxyV2 {
            return None;
        }
        let ip = &frame.data()[l3..];
        let state = self.lb.carried_mut(conn)?;
        let grow = client_addr::growth_of(ip, mode, state);
        let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
        if grow == 0 || total + grow <= mtu || !tun::dont_fragment(ip) {
            return None;
        }
        self.stats.client_addr.skipped_too_big += 1;
        u16::try_from(mtu.saturating_sub(grow)).ok()
    }

    /// The hook on a client's segment of connection `conn`, already
    /// rewritten towards its real server (the IPv4 packet at `l3` of
    /// `frame`): `ends` are the client and the address it connected to
    /// (the VIP: what the PROXY header names), `mtu` the outgoing port's.
    /// Counts what it did; `Err` when the segment must be dropped (a
    /// PROXY header that could not be inserted).
    pub(super) fn carry_to_real_server(
        &mut self,
        l3: usize,
        conn: ConnId,
        mode: ClientAddress,
        ends: (Endpoint, Endpoint),
        mtu: usize,
        frame: &mut F,
    ) -> Result<(), DropReason> {
        let Some(state) = self.lb.carried_mut(conn) else {
            return Ok(());
        };
        let mut pkt = FromL3 { frame, l3 };
        let outcome = client_addr::to_real_server(&mut pkt, mode, state, ends, mtu);
        self.stats.client_addr.count(mode, outcome);
        match (mode, outcome) {
            // The server's stream must not start without its header: the
            // client retransmits the segment (sized by the lowered MSS).
            // A first fragment (FullNAT forwards those of carrying
            // connections) cannot take it, whatever its size: no
            // reassembly here.
            (ClientAddress::ProxyV2, Outcome::Skipped(Skip::Fragment)) => Err(DropReason::Fragment),
            (ClientAddress::ProxyV2, Outcome::Skipped(_)) => Err(DropReason::TooBig),
            _ => Ok(()),
        }
    }

    /// The hook on a real server's segment of connection `conn` (the IPv4
    /// packet at `l3` of `frame`), before its rewrite towards the client.
    pub(super) fn carry_to_client(
        &mut self,
        l3: usize,
        conn: ConnId,
        mode: ClientAddress,
        frame: &mut F,
    ) {
        if let Some(state) = self.lb.carried_mut(conn) {
            let state = *state;
            client_addr::to_client(&mut frame.data_mut()[l3..], mode, &state);
        }
    }
}
