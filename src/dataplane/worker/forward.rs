//! The load balancer's path through a worker: ask the balancer what to do
//! with a TCP or UDP packet (or an ICMP error about one of its
//! connections), then rewrite for the forwarding method (`lb::xmit`),
//! route and send.
//!
//! Before anything else, a packet that belongs to a connection another
//! worker owns is handed to that worker (devices that cannot spread by
//! the client's address; see `docs/architecture.md`). Nothing with TTL 0
//! or 1 is forwarded, and that is decided before a connection is created
//! or counted.
//!
//! IPv4 fragments (`lb::frag`): a first fragment is decided like any
//! packet of its connection (its ports are there) and its decision kept
//! under the datagram's identity; later fragments follow it with only the
//! IP header rewritten (NAT) or as they are (DR, TUN), or wait for it in
//! a small queue when they come first.

use super::parse::{self, Frag, Ipv4Info, Parsed, L4};
use super::{KeptSegment, Worker, KEPT_SEGMENTS};
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::stats::DropReason;
use crate::lb::balancer::{Decision, Flow, IcmpRoute, Refusal, Segment};
use crate::lb::conn::ConnId;
use crate::lb::conn::FlowKey;
use crate::lb::frag::{FragKey, FragRoute};
use crate::lb::service::{ForwardMethod, Protocol};
use crate::lb::tcp_state::TcpFlags;
use crate::lb::xmit::synproxy::{self, Handshake};
use crate::lb::xmit::{fullnat, nat, rst, tun, Endpoint, XmitError};
use crate::wire::{icmp, ipv4, tcp, udp};
use std::net::Ipv4Addr;

impl From<Refusal> for DropReason {
    fn from(r: Refusal) -> DropReason {
        match r {
            Refusal::NoService => DropReason::NoService,
            Refusal::NoConnection => DropReason::NoConnection,
            Refusal::TableFull => DropReason::TableFull,
            Refusal::NoRealServer => DropReason::NoRealServer,
            Refusal::Malformed => DropReason::Malformed,
            Refusal::AclDenied => DropReason::AclDenied,
            Refusal::RateLimited => DropReason::RateLimited,
            Refusal::ClientLimit => DropReason::ClientLimit,
            Refusal::Overloaded => DropReason::RsOverloaded,
            Refusal::BadCookie => DropReason::SynCookieRefused,
            Refusal::NoLocalPort => DropReason::LocalPortsExhausted,
        }
    }
}

impl<F: Frame> Worker<F> {
    /// The load balancer's path for the IPv4 packet `ip` (parsed, header
    /// checksum right, not addressed to the balancer): sends, parks,
    /// hands over or drops `frame`, counting what it does.
    #[inline(always)]
    pub(super) fn forward<O: Output<F>>(
        &mut self,
        port: usize,
        ip: &Ipv4Info,
        frame: F,
        now: u64,
        out: &mut O,
    ) {
        match self.forward_inner(port, ip, frame, now, out) {
            Ok(()) => {}
            Err(reason) => self.stats.drop(reason),
        }
    }

    fn forward_inner<O: Output<F>>(
        &mut self,
        port: usize,
        ip: &Ipv4Info,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let l3 = usize::from(ip.l3);
        if self.workers > 1 && !self.from_peer {
            if let Some(owner) = self.owner(ip, &frame.data()[l3..]) {
                if owner != self.index {
                    out.redirect(owner, port, frame);
                    return Ok(());
                }
            }
        }
        if ip.protocol == u8::from(ipv4::Protocol::Icmp) {
            return self.icmp_error(ip, frame, now, out);
        }
        if ip.frag == Frag::Later && Protocol::from_number(ip.protocol).is_some() {
            return self.later_fragment(ip, frame, now, out);
        }
        let flow = match &ip.l4 {
            L4::Flow(flow) => flow,
            L4::Bad(reason) => return Err(*reason),
            L4::None if Protocol::from_number(ip.protocol).is_none() => {
                return Err(self.unknown_destination(ip.dst));
            }
            L4::None => return Err(DropReason::Fragment),
        };
        if ip.ttl <= 1 {
            return Err(DropReason::TtlExpired);
        }
        // The sequence fields only the SYN proxy reads: read from the frame
        // only for the packets it handles.
        let seg = || segment_of(&frame.data()[l3..], flow.flags);
        let decision = self.lb.decide_segment(flow, seg, now);
        if ip.frag == Frag::First {
            return self.first_fragment(port, ip, flow, decision, frame, now, out);
        }
        self.act(port, l3, flow, decision, frame, now, out)
    }

    /// Carries out the balancer's `decision` for the packet at `l3` of
    /// `flow`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn act<O: Output<F>>(
        &mut self,
        port: usize,
        l3: usize,
        flow: &Flow,
        decision: Decision,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        match decision {
            Decision::ToRealServer {
                method,
                real,
                created,
            } => {
                if created {
                    self.stats.conns_created += 1;
                }
                match method {
                    ForwardMethod::Nat => {
                        nat::to_real_server(&mut frame.data_mut()[l3..], real)
                            .map_err(xmit_drop)?;
                        self.route_and_send(real.ip, frame, now, out)
                    }
                    ForwardMethod::Dr => self.route_and_send(real.ip, frame, now, out),
                    ForwardMethod::Tun => self.tunnel(l3, real.ip, frame, now, out),
                    // The balancer decides FullNAT as `FullNatToRealServer`.
                    ForwardMethod::FullNat => Err(DropReason::UnsupportedProtocol),
                }
            }
            Decision::Tun6ToRealServer { real, created } => {
                if created {
                    self.stats.conns_created += 1;
                }
                self.tunnel46(l3, real, frame, now, out)
            }
            Decision::ToClient { vip } => {
                nat::from_real_server(&mut frame.data_mut()[l3..], vip).map_err(xmit_drop)?;
                self.route_and_send(flow.key.dst, frame, now, out)
            }
            Decision::FullNatToRealServer {
                local,
                real,
                created,
                carry,
            } => {
                if created {
                    self.stats.conns_created += 1;
                }
                match carry {
                    None => self.fullnat_to_real_server(l3, local, real, frame, now, out),
                    Some(carry) => self.fullnat_to_real_server_carrying(
                        l3,
                        flow,
                        (local, real),
                        carry,
                        frame,
                        now,
                        out,
                    ),
                }
            }
            Decision::FullNatToClient { vip, client, carry } => {
                if let Some(carry) = carry {
                    self.carry_to_client(l3, carry.conn, carry.mode, &mut frame);
                }
                fullnat::to_client(&mut frame.data_mut()[l3..], vip, client).map_err(xmit_drop)?;
                self.route_and_send(client.ip, frame, now, out)
            }
            Decision::ToRealServerCarrying {
                real,
                created,
                conn,
                mode,
            } => {
                if created {
                    self.stats.conns_created += 1;
                }
                self.nat_to_real_server_carrying(l3, flow, real, conn, mode, frame, now, out)
            }
            Decision::ToClientCarrying { vip, conn, mode } => {
                self.nat_to_client_carrying(l3, flow, vip, conn, mode, frame, now, out)
            }
            Decision::Reset => self.reset(l3, frame, now, out),
            Decision::Drop(Refusal::NoLocalPort) if flow.protocol == Protocol::Tcp => {
                // Counted, and the client told at once rather than left
                // retrying its SYN into silence.
                self.stats.drop(DropReason::LocalPortsExhausted);
                self.reset(l3, frame, now, out)
            }
            Decision::Drop(Refusal::NoConnection)
                if self.lb.services().is_nat64_local(flow.key.dst) =>
            {
                // NAT64: a reply to a local address of an IPv6 service;
                // its connection is in the IPv6 table (`nat64.rs`). Asked
                // only when the IPv4 table has none: IPv4 pays nothing.
                self.nat64_from_real_server(l3, flow, frame, now, out)
            }
            Decision::Drop(refusal) => Err(refusal.into()),
            Decision::SynCookie { cookie, mss } => {
                let syn = synproxy::read(&frame.data()[l3..]).ok_or(DropReason::Malformed)?;
                self.stats.synproxy_synacks_sent += 1;
                self.send_handshake(l3, Handshake::syn_ack(&syn, cookie, mss), frame, now, out)
            }
            Decision::SynToRealServer {
                real,
                isn,
                mss,
                window,
                created,
                park,
            } => {
                if let Some(conn) = park {
                    // The first segment waits for the real server (the
                    // client would otherwise wait out its retransmission
                    // timeout); a second one means the SYN may be lost.
                    if self.kept.len() < KEPT_SEGMENTS && !self.kept.iter().any(|k| k.conn == conn)
                    {
                        self.kept.push(KeptSegment {
                            conn,
                            port,
                            since: now,
                            frame,
                        });
                        self.stats.synproxy_segments_kept += 1;
                        return Ok(());
                    }
                }
                if created {
                    self.stats.conns_created += 1;
                    self.stats.synproxy_cookies_accepted += 1;
                } else {
                    self.stats.synproxy_syns_resent += 1;
                }
                let client = Endpoint::new(flow.key.src, flow.key.src_port);
                let syn = Handshake::syn(client, real, isn, mss, window);
                self.send_handshake(l3, syn, frame, now, out)
            }
            Decision::AckToRealServer {
                client_isn,
                window,
                conn,
            } => {
                let syn_ack = synproxy::read(&frame.data()[l3..]).ok_or(DropReason::Malformed)?;
                self.stats.synproxy_acks_sent += 1;
                let ack = Handshake::ack(&syn_ack, client_isn, window);
                let sent = self.send_handshake(l3, ack, frame, now, out);
                self.release_kept(conn, now, out);
                sent
            }
            Decision::ToRealServerShifted { real, delta } => {
                synproxy::to_real_server(&mut frame.data_mut()[l3..], real, delta)
                    .map_err(xmit_drop)?;
                self.route_and_send(real.ip, frame, now, out)
            }
            Decision::ToClientShifted { vip, delta } => {
                synproxy::to_client(&mut frame.data_mut()[l3..], vip, delta).map_err(xmit_drop)?;
                self.route_and_send(flow.key.dst, frame, now, out)
            }
        }
    }

    /// FullNAT, a client's packet: rewritten to leave from `local` to
    /// `real`, routed and sent (a service with `client_address` goes
    /// through `fullnat_to_real_server_carrying` instead).
    #[inline(always)]
    fn fullnat_to_real_server<O: Output<F>>(
        &mut self,
        l3: usize,
        local: Endpoint,
        real: Endpoint,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        fullnat::to_real_server(&mut frame.data_mut()[l3..], local, real).map_err(xmit_drop)?;
        self.route_and_send(real.ip, frame, now, out)
    }

    /// A first fragment, decided as `decision`: the decision is kept for
    /// the datagram's later fragments, the fragment forwarded like any
    /// packet of its connection, then the later fragments that came
    /// before it are sent on. A decision later fragments cannot follow
    /// (SYN proxy, reset) drops the fragment (`Fragment`); a refusal, or a
    /// first fragment that could not be sent, drops it and its waiting
    /// fragments and forgets the decision.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn first_fragment<O: Output<F>>(
        &mut self,
        port: usize,
        ip: &Ipv4Info,
        flow: &Flow,
        decision: Decision,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let key = frag_key(ip);
        let route = match decision {
            Decision::ToRealServer { method, real, .. } => FragRoute::ToRealServer {
                method,
                real: real.ip,
            },
            Decision::ToClient { vip } => FragRoute::ToClient { vip: vip.ip },
            Decision::Tun6ToRealServer { real, .. } => FragRoute::Tun6 { real },
            Decision::FullNatToRealServer { local, real, .. } => FragRoute::FullNat {
                src: local.ip,
                dst: real.ip,
            },
            Decision::FullNatToClient { vip, client, .. } => FragRoute::FullNat {
                src: vip.ip,
                dst: client.ip,
            },
            other => {
                self.frags.forget(&key);
                while self.frags.take_waiting(&key).is_some() {
                    self.stats.drop(DropReason::FragmentUnmatched);
                }
                return Err(match other {
                    Decision::Drop(_) if self.lb.services().is_nat64_local(ip.dst) => {
                        DropReason::Nat64Fragment
                    }
                    Decision::Drop(refusal) => refusal.into(),
                    _ => DropReason::Fragment,
                });
            }
        };
        self.frags.record(key, route, now);
        let sent = self.act(port, usize::from(ip.l3), flow, decision, frame, now, out);
        if sent.is_err() {
            // A first fragment not sent (a FullNAT PROXY v2 segment that
            // had to carry the header, no route, TTL...): its datagram is
            // not sent in part either. Its later fragments, waiting or to
            // come, would only sit in the real server's reassembly queue.
            self.frags.forget(&key);
            while self.frags.take_waiting(&key).is_some() {
                self.stats.drop(DropReason::FragmentUnmatched);
            }
            return sent;
        }
        while let Some(w) = self.frags.take_waiting(&key) {
            match parse::parse(w.frame.data(), &self.lb) {
                Parsed::Ipv4(waiting) => {
                    if let Err(reason) = self.follow(&waiting, route, w.frame, now, out) {
                        self.stats.drop(reason);
                    }
                }
                // It was parsed whole when it arrived.
                _ => self.stats.drop(DropReason::Malformed),
            }
        }
        sent
    }

    /// A later fragment (no transport header): follows its first
    /// fragment's decision, or waits for it (bounded, `lb::frag`).
    #[inline(never)]
    fn later_fragment<O: Output<F>>(
        &mut self,
        ip: &Ipv4Info,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        if self.lb.services().is_nat64_local(ip.dst) {
            // NAT64 translates no fragment (`nat64.rs`).
            return Err(DropReason::Nat64Fragment);
        }
        let key = frag_key(ip);
        match self.frags.lookup(&key, now) {
            Some(route) => self.follow(ip, route, frame, now, out),
            None => match self.frags.wait(key, frame, now) {
                Ok(()) => {
                    self.stats.fragments_queued += 1;
                    Ok(())
                }
                Err(_frame) => Err(DropReason::FragmentQueueFull),
            },
        }
    }

    /// Sends the later fragment `ip` where its first fragment went:
    /// NAT rewrites its IP header alone (the transport header and its
    /// checksum, which covers the whole datagram, were patched in the
    /// first fragment), DR and TUN send it to the same real server.
    fn follow<O: Output<F>>(
        &mut self,
        ip: &Ipv4Info,
        route: FragRoute,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        if ip.ttl <= 1 {
            return Err(DropReason::TtlExpired);
        }
        let l3 = usize::from(ip.l3);
        match route {
            FragRoute::ToRealServer { method, real } => match method {
                ForwardMethod::Nat => {
                    nat::fragment_to_real_server(&mut frame.data_mut()[l3..], real)
                        .map_err(xmit_drop)?;
                    self.route_and_send(real, frame, now, out)?;
                }
                ForwardMethod::Dr => self.route_and_send(real, frame, now, out)?,
                ForwardMethod::Tun => self.tunnel(l3, real, frame, now, out)?,
                ForwardMethod::FullNat => return Err(DropReason::UnsupportedProtocol),
            },
            FragRoute::Tun6 { real } => self.tunnel46(l3, real, frame, now, out)?,
            FragRoute::FullNat { src, dst } => {
                fullnat::fragment(&mut frame.data_mut()[l3..], src, dst).map_err(xmit_drop)?;
                self.route_and_send(dst, frame, now, out)?;
            }
            FragRoute::ToClient { vip } => {
                nat::fragment_from_real_server(&mut frame.data_mut()[l3..], vip)
                    .map_err(xmit_drop)?;
                self.route_and_send(ip.dst, frame, now, out)?;
            }
        }
        self.stats.fragments_forwarded += 1;
        Ok(())
    }

    /// Sends on the client segments kept for connection `conn`, whose real
    /// server just answered: each is decided again (now translated).
    #[inline(never)]
    fn release_kept<O: Output<F>>(&mut self, conn: ConnId, now: u64, out: &mut O) {
        let mut i = 0;
        while i < self.kept.len() {
            if self.kept[i].conn != conn {
                i += 1;
                continue;
            }
            let k = self.kept.swap_remove(i);
            match parse::parse(k.frame.data(), &self.lb) {
                Parsed::Ipv4(ip) => self.forward(k.port, &ip, k.frame, now, out),
                // It was parsed whole when it arrived.
                _ => self.stats.drop(DropReason::Malformed),
            }
        }
    }

    /// Writes the SYN proxy's handshake segment `h` over the packet at
    /// `l3` (growing the frame at the front when the received one was too
    /// short: the link-layer header moves to the new start) and routes it
    /// to its destination.
    fn send_handshake<O: Output<F>>(
        &mut self,
        l3: usize,
        h: Handshake,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let need = l3 + synproxy::HANDSHAKE_LEN;
        let have = frame.data().len();
        if have < need {
            let grow = need - have;
            if !frame.prepend(grow) {
                return Err(DropReason::TooBig);
            }
            frame.data_mut().copy_within(grow..grow + l3, 0);
        }
        let len = h
            .write(&mut frame.data_mut()[l3..])
            .ok_or(DropReason::Malformed)?;
        frame.truncate(l3 + len);
        let hop = self.routes.lookup(h.dst.ip).ok_or(DropReason::NoRoute)?;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// The worker that owns the connection of this packet: the queue a
    /// NIC spreading by the client's address (RSS, `net::rss`) delivers it
    /// to, computed alike from either direction (client → VIP, real server
    /// → client, and ICMP errors quoting either). By address only, not
    /// port, so every connection of one client meets the same persistence
    /// templates. `None` for packets of no service, handled here.
    fn owner(&self, ip: &Ipv4Info, bytes: &[u8]) -> Option<usize> {
        let client = match ip.l4 {
            L4::Flow(flow) => self.lb.client_of(&flow.key, flow.protocol)?,
            _ if ip.protocol == u8::from(ipv4::Protocol::Icmp) && !ip.is_fragment() => {
                let (quoted, protocol) = quoted_flow(bytes)?;
                self.lb.client_of_quoted(&quoted, protocol)?
            }
            // A later fragment has no ports: to a VIP its source is the
            // client, otherwise (a NAT real server's reply) its
            // destination, as for its first fragment.
            L4::None if ip.frag == Frag::Later && Protocol::from_number(ip.protocol).is_some() => {
                if self.lb.services().is_vip(ip.dst) {
                    ip.src
                } else {
                    ip.dst
                }
            }
            _ => return None,
        };
        Some(self.rss.worker_of(client))
    }

    /// Why a packet of a protocol rvs does not balance is dropped: to a VIP
    /// it is a protocol the VIP does not speak, elsewhere no service.
    fn unknown_destination(&self, dst: Ipv4Addr) -> DropReason {
        if self.lb.services().is_vip(dst) {
            DropReason::UnsupportedProtocol
        } else {
            DropReason::NoService
        }
    }

    /// Answers the TCP segment at `l3` with a reset from its destination,
    /// routed back to its source.
    fn reset<O: Output<F>>(
        &mut self,
        l3: usize,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let client = ipv4::Packet::new_unchecked(&frame.data()[l3..]).src_addr();
        let len = rst::answer_with_reset(&mut frame.data_mut()[l3..]);
        frame.truncate(l3 + len);
        let hop = self.routes.lookup(client).ok_or(DropReason::NoRoute)?;
        self.stats.resets_sent += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// Looks up the route to `dst` and sends the frame to its next hop.
    pub(super) fn route_and_send<O: Output<F>>(
        &mut self,
        dst: Ipv4Addr,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop = self.routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        self.stats.forwarded += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// TUN: wraps the packet at `l3` in an IPIP header to `real` and sends
    /// it; a packet too big for the outgoing MTU gets ICMP "fragmentation
    /// needed" back to its sender instead.
    fn tunnel<O: Output<F>>(
        &mut self,
        l3: usize,
        real: Ipv4Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop = self.routes.lookup(real).ok_or(DropReason::NoRoute)?;
        let mtu = self.ports[usize::from(hop.port)].mtu;
        let too_big = tun::check_fits(&frame.data()[l3..], mtu).is_err();
        if too_big && tun::dont_fragment(&frame.data()[l3..]) {
            let inner_mtu = mtu.saturating_sub(tun::OVERHEAD as u16);
            return self.frag_needed(l3, inner_mtu, frame, now, out);
        }
        if !frame.prepend(tun::OVERHEAD) {
            return Err(DropReason::TooBig);
        }
        let ident = self.next_ident();
        let data = frame.data_mut();
        // The link-layer header moves to the new front.
        data.copy_within(tun::OVERHEAD..tun::OVERHEAD + l3, 0);
        tun::encapsulate(&mut data[l3..], hop.src, real, ident);
        self.stats.forwarded += 1;
        if too_big {
            return self.send_fragmented(l3, mtu, hop.port, hop.address, frame, now, out);
        }
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// Sends an encapsulated packet too big for `mtu` (inner DF clear) as
    /// outer IPv4 fragments: the first in the received buffer, the rest in
    /// buffers from the pool.
    #[allow(clippy::too_many_arguments)]
    fn send_fragmented<O: Output<F>>(
        &mut self,
        l3: usize,
        mtu: u16,
        port: u16,
        next_hop: Ipv4Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let chunk = tun::fragment_payload(mtu);
        let payload = frame.data().len() - l3 - tun::OVERHEAD;
        if chunk == 0 {
            return Err(DropReason::TooBig);
        }
        let mut offset = chunk;
        while offset < payload {
            let len = chunk.min(payload - offset);
            let Some(mut piece) = out.alloc(l3 + tun::OVERHEAD + len) else {
                return Err(DropReason::TooBig);
            };
            {
                let src = frame.data();
                let dst = piece.data_mut();
                dst[..l3 + tun::OVERHEAD].copy_from_slice(&src[..l3 + tun::OVERHEAD]);
                let start = l3 + tun::OVERHEAD + offset;
                dst[l3 + tun::OVERHEAD..].copy_from_slice(&src[start..start + len]);
                tun::set_fragment(&mut dst[l3..], len, offset, offset + len < payload);
            }
            self.send_to(usize::from(port), next_hop, piece, now, out);
            offset += len;
        }
        tun::set_fragment(&mut frame.data_mut()[l3..], chunk, 0, true);
        frame.truncate(l3 + tun::OVERHEAD + chunk);
        self.send_to(usize::from(port), next_hop, frame, now, out);
        Ok(())
    }

    /// Turns the packet at `l3` into an ICMP "fragmentation needed" to its
    /// sender, quoting its start, and routes that back.
    pub(super) fn frag_needed<O: Output<F>>(
        &mut self,
        l3: usize,
        mtu: u16,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let client = ipv4::Packet::new_unchecked(&frame.data()[l3..]).src_addr();
        let hop = self.routes.lookup(client).ok_or(DropReason::NoRoute)?;
        let quoted = (frame.data().len() - l3).min(tun::MAX_QUOTE);
        if !frame.prepend(tun::ICMP_ERROR_OVERHEAD) {
            return Err(DropReason::TooBig);
        }
        frame.truncate(tun::ICMP_ERROR_OVERHEAD + l3 + quoted);
        let ident = self.next_ident();
        let data = frame.data_mut();
        data.copy_within(tun::ICMP_ERROR_OVERHEAD..tun::ICMP_ERROR_OVERHEAD + l3, 0);
        tun::frag_needed(&mut data[l3..], hop.src, mtu, ident);
        self.stats.frag_needed_sent += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// ICMP not addressed to the balancer: errors that quote a tracked
    /// connection are passed on, translated for NAT; the rest is dropped.
    fn icmp_error<O: Output<F>>(
        &mut self,
        ip: &Ipv4Info,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        if self.lb.services().is_nat64_local(ip.dst) {
            // About a NAT64 connection: in the IPv6 table (`nat64.rs`).
            return self.nat64_icmp_to_client(ip, frame, now, out);
        }
        let l3 = usize::from(ip.l3);
        let packet = ipv4::Packet::new_unchecked(&frame.data()[l3..]);
        let dst_is_vip = self.lb.services().is_vip(ip.dst);
        let msg = icmp::Packet::new_checked(packet.payload()).map_err(|_| DropReason::Truncated)?;
        if !msg.msg_type().is_error() {
            return Err(if dst_is_vip {
                DropReason::UnsupportedProtocol
            } else {
                DropReason::NoService
            });
        }
        if ip.is_fragment() {
            return Err(DropReason::Fragment);
        }
        if !msg.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        let quoted =
            ipv4::Packet::new_checked_quoted(msg.data()).map_err(|_| DropReason::Malformed)?;
        if Protocol::from_number(u8::from(quoted.protocol())).is_none() {
            return Err(DropReason::NoService);
        }
        let (q, _) = quoted_flow(&frame.data()[l3..]).ok_or(DropReason::Malformed)?;
        // The quoted packet went the other way: its reversed tuple is the
        // key this error travels with.
        let key = q.reversed();
        let route = self.lb.icmp_error(&key, now)?;
        self.stats.icmp_errors_forwarded += 1;
        match route {
            IcmpRoute::ToClient {
                vip,
                client,
                carried,
            } => {
                if let Some(c) = carried {
                    crate::lb::client_addr::unshift_quoted_seq(&mut frame.data_mut()[l3..], &c);
                }
                nat::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (nat::Side::Src, vip.ip),
                    (nat::Side::Dst, vip),
                )
                .map_err(xmit_drop)?;
                self.route_and_send(client, frame, now, out)
            }
            IcmpRoute::ToRealServer {
                method,
                real,
                seq_delta,
            } => match method {
                ForwardMethod::Nat => {
                    if seq_delta != 0 {
                        synproxy::shift_quoted_seq(&mut frame.data_mut()[l3..], seq_delta)
                            .map_err(xmit_drop)?;
                    }
                    nat::translate_icmp_error(
                        &mut frame.data_mut()[l3..],
                        (nat::Side::Dst, real.ip),
                        (nat::Side::Src, real),
                    )
                    .map_err(xmit_drop)?;
                    self.route_and_send(real.ip, frame, now, out)
                }
                ForwardMethod::Dr => {
                    nat::decrement_ttl(&mut frame.data_mut()[l3..]).map_err(xmit_drop)?;
                    self.route_and_send(real.ip, frame, now, out)
                }
                // A real server reached over IPv6 (IPv4-in-IPv6) has no
                // IPv4 address to tunnel an error to.
                ForwardMethod::Tun if real.ip.is_unspecified() => Err(DropReason::NoRoute),
                ForwardMethod::Tun => self.tunnel(l3, real.ip, frame, now, out),
                ForwardMethod::FullNat => Err(DropReason::UnsupportedProtocol),
            },
            IcmpRoute::FullNatToClient {
                vip,
                client,
                carried,
                ..
            } => {
                if let Some(c) = carried {
                    crate::lb::client_addr::unshift_quoted_seq(&mut frame.data_mut()[l3..], &c);
                }
                fullnat::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (vip.ip, client.ip),
                    (client, vip),
                )
                .map_err(xmit_drop)?;
                self.route_and_send(client.ip, frame, now, out)
            }
            IcmpRoute::FullNatToRealServer { local, real } => {
                fullnat::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (local.ip, real.ip),
                    (real, local),
                )
                .map_err(xmit_drop)?;
                self.route_and_send(real.ip, frame, now, out)
            }
        }
    }
}

/// The datagram a fragment belongs to.
fn frag_key(ip: &Ipv4Info) -> FragKey {
    FragKey {
        src: ip.src,
        dst: ip.dst,
        protocol: ip.protocol,
        ident: ip.ident,
    }
}

/// The tuple of the packet an ICMP error (the IPv4 packet `ip`) quotes, as
/// that packet travelled, and its protocol; `None` when the error quotes
/// no whole IPv4 header with TCP or UDP ports.
pub(super) fn quoted_flow(ip: &[u8]) -> Option<(FlowKey, Protocol)> {
    let outer = ipv4::Packet::new_checked(ip).ok()?;
    let msg = icmp::Packet::new_checked(outer.payload()).ok()?;
    let q = ipv4::Packet::new_checked_quoted(msg.data()).ok()?;
    let protocol = Protocol::from_number(u8::from(q.protocol()))?;
    let (sport, dport) = match protocol {
        Protocol::Tcp => {
            let t = tcp::Quoted::new_checked(q.payload()).ok()?;
            (t.src_port(), t.dst_port())
        }
        Protocol::Udp => {
            let u = udp::Packet::new_checked_quoted(q.payload()).ok()?;
            (u.src_port(), u.dst_port())
        }
    };
    Some((
        FlowKey::new(q.src_addr(), sport, q.dst_addr(), dport, protocol.number()),
        protocol,
    ))
}

/// The sequence fields of the TCP segment in the IPv4 packet `ip` (the
/// MSS option on a bare SYN only); zero when it has no whole TCP header.
fn segment_of(ip: &[u8], flags: TcpFlags) -> Segment {
    let Ok(p) = ipv4::Packet::new_checked(ip) else {
        return Segment::default();
    };
    let Ok(t) = tcp::Packet::new_checked(p.payload()) else {
        return Segment::default();
    };
    Segment {
        seq: t.seq_number(),
        ack: t.ack_number(),
        window: t.window(),
        mss: if flags.is_bare_syn() {
            t.mss_option()
        } else {
            None
        },
    }
}

pub(super) fn xmit_drop(e: XmitError) -> DropReason {
    match e {
        XmitError::TtlExpired => DropReason::TtlExpired,
        XmitError::Unsupported => DropReason::UnsupportedProtocol,
        XmitError::TooBig { .. } => DropReason::TooBig,
    }
}
