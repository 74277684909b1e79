//! IPv6 at the edge of the worker: what the balancer answers itself.
//!
//! Neighbour discovery (RFC 4861) for the ports' own IPv6 addresses and
//! for the IPv6 VIPs on their connected prefix (as ARP is for IPv4):
//! solicitations answered with an advertisement, neighbours learned from
//! advertisements and from the source link-layer option of solicitations,
//! next hops resolved by sending a solicitation to their solicited-node
//! group while the packets wait in the same kind of bounded queue as ARP's
//! (`dataplane::pending`). ICMPv6 echo to own addresses and VIPs is
//! answered in place; ICMPv6 errors (time exceeded, packet too big,
//! unreachable) are built in a fresh buffer, at most
//! [`ICMPV6_ERRORS_PER_SEC`] a second (RFC 4443 2.4 (f)).
//!
//! The IPv6 state lives in its own struct ([`Edge6`]) beside the IPv4
//! tables, so the IPv4 path reads nothing new. Frames rvs originates here
//! (advertisements, solicitations, errors) come from the pool; an answer
//! copies the request's link-layer header, so VLAN tags stay.

use super::parse::{Frag, Ipv6Info};
use super::{Local, Verdict, Worker, REPLY_TTL};
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::pending::{Parked, PendingQueue};
use crate::dataplane::stats::DropReason;
use crate::net::neigh::NeighTable6;
use crate::net::route::{NextHop, RouteTable6};
use crate::wire::ethernet::{self, EtherType};
use crate::wire::icmpv6::{self, Message, NeighborAdvert, NeighborSolicit};
use crate::wire::ipv6::{self, next_header};
use crate::wire::{Error as WireError, MacAddr};
use std::net::Ipv6Addr;

/// ICMPv6 errors a worker sends per second at most (a token bucket of
/// this depth, refilled continuously): Linux's default is 1000 per
/// second per host; a balancer's worker answers for many.
pub const ICMPV6_ERRORS_PER_SEC: u32 = 1000;

/// ICMPv6 type numbers the local path reads.
const ECHO_REQUEST: u8 = 128;
const NEIGHBOR_SOLICIT: u8 = 135;
const NEIGHBOR_ADVERT: u8 = 136;

/// Room for an ND message rvs builds: the 24-byte body and one
/// link-layer option.
const ND_MSG_LEN: usize = icmpv6::ND_LEN + icmpv6::LL_OPTION_LEN;

/// The IPv6 part of a worker's setup; empty when no interface has an IPv6
/// address.
#[derive(Clone, Debug, Default)]
pub struct Ipv6Setup {
    /// Connected prefixes of the ports' IPv6 addresses and IPv6 static
    /// routes.
    pub routes: RouteTable6,
    /// Static IPv6 neighbours: (address, MAC, port).
    pub static_neighbors: Vec<(Ipv6Addr, MacAddr, u16)>,
    /// IPv6 VIPs: answered by ND on the port of their connected prefix
    /// and by echo, like IPv4 VIPs (see [`Worker::set_vips6`]).
    pub vips: Vec<Ipv6Addr>,
}

/// One worker's IPv6 tables (beside the IPv4 ones, owned the same way).
#[derive(Debug)]
pub(super) struct Edge6<F> {
    pub routes: RouteTable6,
    pub neigh: NeighTable6,
    pub pending: PendingQueue<F, Ipv6Addr>,
    /// Every IPv6 address of every port, flat.
    pub own: Vec<Ipv6Addr>,
    /// IPv6 VIPs (answered by ND and echo while master).
    pub vips: Vec<Ipv6Addr>,
    /// The unsolicited advertisements of the start were sent.
    pub announced: bool,
    /// ICMPv6 errors that may still be sent now, and when it was counted.
    tokens: u32,
    tokens_at: u64,
}

impl<F> Edge6<F> {
    /// The tables of `setup`; `own` are the ports' IPv6 addresses.
    pub fn new(
        setup: &Ipv6Setup,
        own: Vec<Ipv6Addr>,
        neigh_capacity: usize,
        neigh_max_age_ns: u64,
        pending: usize,
    ) -> Edge6<F> {
        let mut neigh = NeighTable6::new(neigh_capacity, neigh_max_age_ns);
        for &(ip, mac, port) in &setup.static_neighbors {
            neigh.insert_static(ip, mac, port);
        }
        Edge6 {
            routes: setup.routes.clone(),
            neigh,
            pending: PendingQueue::new(pending),
            own,
            vips: setup.vips.clone(),
            announced: false,
            tokens: ICMPV6_ERRORS_PER_SEC,
            tokens_at: 0,
        }
    }

    /// Takes one error token; false when the bucket is empty.
    fn take_error_token(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.tokens_at);
        let refill = elapsed.saturating_mul(u64::from(ICMPV6_ERRORS_PER_SEC)) / 1_000_000_000;
        if refill > 0 {
            self.tokens =
                (u64::from(self.tokens) + refill).min(u64::from(ICMPV6_ERRORS_PER_SEC)) as u32;
            self.tokens_at = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// True when a parsed frame is neighbour discovery (shared with every
/// worker, as ARP is, so all of them learn).
pub(super) fn is_neighbor_discovery(info: &Ipv6Info) -> bool {
    matches!(info.icmp_type(), Some(NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT))
}

impl<F: Frame> Worker<F> {
    /// Sets the IPv6 VIPs the worker answers neighbour solicitations and
    /// echo for (on the port of their connected prefix, while master), as
    /// the service table's VIPs are for ARP. The lead's IPv6 services fill
    /// it at start and on each reload.
    pub fn set_vips6(&mut self, vips: Vec<Ipv6Addr>) {
        self.v6.vips = vips;
    }

    /// The IPv6 neighbour cache (tests and listings).
    pub fn neighbors6(&self) -> &NeighTable6 {
        &self.v6.neigh
    }

    /// True when `ip` is one of our IPv6 addresses on any port.
    pub(super) fn owned6(&self, ip: Ipv6Addr) -> bool {
        self.v6.own.contains(&ip)
    }

    /// True when `ip` is an IPv6 VIP this worker answers for (master).
    fn answered_vip6(&self, ip: Ipv6Addr) -> bool {
        self.master && self.v6.vips.contains(&ip)
    }

    /// True when `ip` is an IPv6 FullNAT local address this worker
    /// answers neighbour solicitations for (master; echo is not answered
    /// for it, as for an IPv4 local address).
    fn answered_local6(&self, ip: Ipv6Addr) -> bool {
        self.master && self.lb.services().is_local_address6(ip)
    }

    /// True when rvs answers a neighbour solicitation for `ip` on `port`:
    /// its own addresses there, and IPv6 VIPs and FullNAT local addresses
    /// whose connected prefix is on that port (while master):
    /// `answers_arp_for`'s IPv6 twin.
    pub(super) fn answers_nd_for(&self, port: usize, ip: Ipv6Addr) -> bool {
        self.ports[port].addresses6.iter().any(|a| a.addr() == ip)
            || ((self.answered_vip6(ip) || self.answered_local6(ip))
                && self.v6.routes.connected_port(ip) == Some(port as u16))
    }

    /// IPv6 to the balancer itself: neighbour discovery (whatever the
    /// destination: hop limit 255 proves it is on-link), echo to own
    /// addresses and VIPs; other packets to own addresses and to multicast
    /// groups are dropped; the rest is for the forwarding path.
    pub(super) fn ipv6_local<O: Output<F>>(
        &mut self,
        port: usize,
        port_mac: MacAddr,
        frame: &mut F,
        info: &Ipv6Info,
        now: u64,
        out: &mut O,
    ) -> Local {
        if is_neighbor_discovery(info) {
            let v = self.neighbor_discovery(port, port_mac, frame, info, now, out);
            // A peer's copy is only learned from; the worker that received
            // it counts what became of it.
            if self.from_peer {
                return Local::Verdict(Verdict::Done);
            }
            return Local::Verdict(v);
        }
        let echo = info.icmp_type() == Some(ECHO_REQUEST);
        if self.owned6(info.dst) || (echo && self.answered_vip6(info.dst)) {
            return Local::Verdict(self.echo6(port, frame, info));
        }
        if info.dst.is_multicast() {
            // MLD, router advertisements, echo to a group: not a router,
            // not a host that joins groups.
            return Local::Verdict(Verdict::Drop(DropReason::UnsupportedProtocol));
        }
        Local::NotLocal
    }

    /// ICMPv6 echo to an own address or VIP: the reply, in place (the
    /// extension headers of the request, if any, are not echoed).
    fn echo6(&mut self, port: usize, frame: &mut F, info: &Ipv6Info) -> Verdict {
        if info.frag != Frag::Whole {
            return Verdict::Drop(DropReason::Fragment);
        }
        if info.icmp_type() != Some(ECHO_REQUEST) {
            return Verdict::Drop(DropReason::UnsupportedProtocol);
        }
        // Do not answer to addresses that cannot be a single host.
        if info.src.is_unspecified() || info.src.is_multicast() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let l3 = usize::from(info.l3);
        let upper = usize::from(info.upper);
        let end = l3 + ipv6::HEADER_LEN + usize::from(info.payload_len);
        let data = frame.data_mut();
        {
            let Ok(msg) = icmpv6::Packet::new_checked(&data[l3 + upper..end]) else {
                return Verdict::Drop(DropReason::Truncated);
            };
            if !msg.verify_checksum(info.src, info.dst) {
                return Verdict::Drop(DropReason::BadChecksum);
            }
            if msg.code() != 0 {
                return Verdict::Drop(DropReason::UnsupportedProtocol);
            }
        }
        let msg_len = end - (l3 + upper);
        if upper != ipv6::HEADER_LEN {
            // The message moves up over the extension headers; its
            // checksum's pseudo-header (addresses, upper-layer length) is
            // unchanged by that.
            data.copy_within(l3 + upper..end, l3 + ipv6::HEADER_LEN);
        }
        let start = l3 + ipv6::HEADER_LEN;
        icmpv6::Packet::new_unchecked(&mut data[start..start + msg_len]).make_echo_reply();
        let mut ip = ipv6::Packet::new_unchecked(&mut data[l3..]);
        ip.set_next_header(next_header::ICMPV6);
        ip.set_payload_len(msg_len as u16);
        ip.set_hop_limit(REPLY_TTL);
        // Swapping the addresses leaves the checksum's sum unchanged.
        ip.set_src_addr(info.dst);
        ip.set_dst_addr(info.src);
        frame.truncate(start + msg_len);
        self.stats.icmpv6_echo_answered += 1;
        Verdict::Transmit(port)
    }

    /// Neighbour solicitations and advertisements (RFC 4861 7.1, 7.2).
    fn neighbor_discovery<O: Output<F>>(
        &mut self,
        port: usize,
        port_mac: MacAddr,
        frame: &F,
        info: &Ipv6Info,
        now: u64,
        out: &mut O,
    ) -> Verdict {
        // RFC 6980: ND in fragments is ignored; 7.1: hop limit 255 proves
        // the sender is on the link.
        if info.frag != Frag::Whole || info.hop_limit != icmpv6::ND_HOP_LIMIT {
            return Verdict::Drop(DropReason::NdInvalid);
        }
        let l3 = usize::from(info.l3);
        let end = l3 + ipv6::HEADER_LEN + usize::from(info.payload_len);
        let data = frame.data();
        let Ok(msg) = icmpv6::Packet::new_checked(&data[l3 + usize::from(info.upper)..end]) else {
            return Verdict::Drop(DropReason::NdInvalid);
        };
        if !msg.verify_checksum(info.src, info.dst) {
            return Verdict::Drop(DropReason::BadChecksum);
        }
        match msg.msg_type() {
            Message::NeighborSolicit => {
                let Ok(ns) = NeighborSolicit::parse(&msg) else {
                    return Verdict::Drop(DropReason::NdInvalid);
                };
                if !ns.valid_from(info.hop_limit, info.src, info.dst) {
                    return Verdict::Drop(DropReason::NdInvalid);
                }
                self.solicited(port, port_mac, &data[..l3], ns, info, now, out)
            }
            Message::NeighborAdvert => {
                let Ok(na) = NeighborAdvert::parse(&msg) else {
                    return Verdict::Drop(DropReason::NdInvalid);
                };
                // 7.1.2: a multicast advertisement is never solicited.
                if info.dst.is_multicast() && na.solicited {
                    return Verdict::Drop(DropReason::NdInvalid);
                }
                self.advertised(port, na, now, out)
            }
            _ => Verdict::Drop(DropReason::NdInvalid),
        }
    }

    /// A valid solicitation: learn the asker (when it asks us, or is known),
    /// then answer when the target is ours on this port.
    #[allow(clippy::too_many_arguments)]
    fn solicited<O: Output<F>>(
        &mut self,
        port: usize,
        port_mac: MacAddr,
        l2: &[u8],
        ns: NeighborSolicit,
        info: &Ipv6Info,
        now: u64,
        out: &mut O,
    ) -> Verdict {
        let for_us = self.answers_nd_for(port, ns.target);
        if let Some(mac) = ns.source_ll {
            // 7.2.3: the source link-layer option updates the cache; never
            // from someone claiming one of our own addresses.
            let learnable = !info.src.is_unspecified()
                && !info.src.is_multicast()
                && mac.is_unicast()
                && !self.owned6(info.src);
            if learnable && (for_us || self.v6.neigh.knows(info.src)) {
                self.learn6(info.src, mac, port, now, out);
            }
        }
        if self.from_peer {
            // A copy to learn from; the worker that received it answers.
            return Verdict::Done;
        }
        if !for_us {
            return Verdict::Drop(DropReason::NdNotForUs);
        }
        let (na, to) = NeighborAdvert::answer(&ns, info.src, port_mac);
        let eth_dst = if to.is_multicast() {
            icmpv6::multicast_mac(to)
        } else {
            // The asker's link-layer address, else the frame's sender.
            ns.source_ll
                .unwrap_or_else(|| ethernet::Frame::new_unchecked(l2).src_addr())
        };
        let sent = self.emit6(
            port,
            Some(l2),
            eth_dst,
            (ns.target, to),
            icmpv6::ND_HOP_LIMIT,
            ND_MSG_LEN,
            |buf, addrs| na.emit(buf, addrs),
            out,
        );
        if sent {
            self.stats.nd_solicits_answered += 1;
            Verdict::Done
        } else {
            // No buffer for the answer; the asker asks again.
            Verdict::Drop(DropReason::TxFull)
        }
    }

    /// A valid advertisement: learn the target when we asked for it (it is
    /// parked) or know it already; never for one of our own addresses.
    fn advertised<O: Output<F>>(
        &mut self,
        port: usize,
        na: NeighborAdvert,
        now: u64,
        out: &mut O,
    ) -> Verdict {
        let Some(mac) = na.target_ll.filter(MacAddr::is_unicast) else {
            return Verdict::Drop(DropReason::NdNotForUs);
        };
        if self.owned6(na.target) {
            return Verdict::Drop(DropReason::NdNotForUs);
        }
        if !(self.v6.neigh.knows(na.target) || self.v6.pending.contains(na.target)) {
            return Verdict::Drop(DropReason::NdNotForUs);
        }
        self.learn6(na.target, mac, port, now, out);
        Verdict::Done
    }

    /// Records `ip` at `mac` on `port` and sends what waited for it.
    fn learn6<O: Output<F>>(
        &mut self,
        ip: Ipv6Addr,
        mac: MacAddr,
        port: usize,
        now: u64,
        out: &mut O,
    ) {
        self.v6.neigh.learn(ip, mac, port as u16, now);
        self.stats.nd_learned += 1;
        self.v6.pending.release(ip, |port, mut frame| {
            ethernet::Frame::new_unchecked(frame.data_mut()).set_dst_addr(mac);
            out.send(usize::from(port), frame);
        });
    }

    /// Sends `frame`, whose IPv6 header starts after its link-layer
    /// header, to `next_hop` on `port`: our MAC as source, the
    /// neighbour's as destination; parks it and solicits the neighbour
    /// when it is unknown (`send_to`'s IPv6 twin).
    pub(super) fn send_to6<O: Output<F>>(
        &mut self,
        port: usize,
        next_hop: Ipv6Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) {
        let Some(port_mac) = self.ports.get(port).map(|p| p.mac) else {
            self.stats.drop(DropReason::BadPort);
            return;
        };
        match self.v6.neigh.lookup(next_hop, now) {
            Some(n) if usize::from(n.port) == port => {
                let mut eth = ethernet::Frame::new_unchecked(frame.data_mut());
                eth.set_src_addr(port_mac);
                eth.set_dst_addr(n.mac);
                out.send(port, frame);
            }
            _ => {
                ethernet::Frame::new_unchecked(frame.data_mut()).set_src_addr(port_mac);
                match self.v6.pending.park(next_hop, port as u16, frame, now) {
                    Parked::AskNow => self.send_ns(port, next_hop, out),
                    Parked::Waiting => {}
                    Parked::Full(_frame) => self.stats.drop(DropReason::NeighborUnresolved),
                }
            }
        }
    }

    /// Multicasts "who has `target`?" on `port` to the target's
    /// solicited-node group, from our IPv6 address there whose prefix
    /// holds the target, else the first. A port without an IPv6 address
    /// cannot ask (its parked packets are given up on later).
    pub(super) fn send_ns<O: Output<F>>(&mut self, port: usize, target: Ipv6Addr, out: &mut O) {
        let Some(p) = self.ports.get(port) else {
            return;
        };
        let Some(src) = p
            .addresses6
            .iter()
            .find(|a| a.contains(target))
            .or(p.addresses6.first())
            .map(|a| a.addr())
        else {
            return;
        };
        let ns = NeighborSolicit::for_resolution(target, p.mac);
        let group = icmpv6::solicited_node(target);
        if self.emit6(
            port,
            None,
            icmpv6::multicast_mac(group),
            (src, group),
            icmpv6::ND_HOP_LIMIT,
            ND_MSG_LEN,
            |buf, addrs| ns.emit(buf, addrs),
            out,
        ) {
            self.stats.nd_solicits_sent += 1;
        }
    }

    /// Multicasts an unsolicited advertisement (override set) of `target`
    /// to all nodes on `port`: IPv6's gratuitous ARP.
    fn send_unsolicited_na<O: Output<F>>(&mut self, port: usize, target: Ipv6Addr, out: &mut O) {
        let Some(mac) = self.ports.get(port).map(|p| p.mac) else {
            return;
        };
        let na = NeighborAdvert {
            router: false,
            solicited: false,
            override_flag: true,
            target,
            target_ll: Some(mac),
        };
        if self.emit6(
            port,
            None,
            icmpv6::multicast_mac(icmpv6::ALL_NODES),
            (target, icmpv6::ALL_NODES),
            icmpv6::ND_HOP_LIMIT,
            ND_MSG_LEN,
            |buf, addrs| na.emit(buf, addrs),
            out,
        ) {
            self.stats.nd_adverts_announced += 1;
        }
    }

    /// Announces every own IPv6 address, and every IPv6 VIP and FullNAT
    /// local address on the port of its connected prefix (while master),
    /// by unsolicited advertisement.
    pub(super) fn announce6<O: Output<F>>(&mut self, out: &mut O) {
        let mut announce: Vec<(usize, Ipv6Addr)> = Vec::new();
        for (port, p) in self.ports.iter().enumerate() {
            announce.extend(p.addresses6.iter().map(|a| (port, a.addr())));
        }
        if self.master {
            let locals = self.lb.services().local_addresses6();
            for &vip in self.v6.vips.iter().chain(locals) {
                if let Some(port) = self.v6.routes.connected_port(vip) {
                    announce.push((usize::from(port), vip));
                }
            }
        }
        for (port, ip) in announce {
            self.send_unsolicited_na(port, ip, out);
        }
    }

    /// The IPv6 chores of `tick`: solicit silent next hops again, give up
    /// on those that stay silent, and (worker 0, once) announce the own
    /// addresses at start.
    pub(super) fn tick6<O: Output<F>>(&mut self, now: u64, out: &mut O) {
        if !self.v6.announced {
            self.v6.announced = true;
            if self.index == 0 {
                self.announce6(out);
            }
        }
        if self.v6.pending.is_empty() {
            return;
        }
        let mut ask = [(Ipv6Addr::UNSPECIFIED, 0u16); 8];
        let mut n = 0;
        let mut given_up = 0;
        self.v6.pending.tick(
            now,
            |ip, port| {
                if n < ask.len() {
                    ask[n] = (ip, port);
                    n += 1;
                }
            },
            |_frame| given_up += 1,
        );
        for _ in 0..given_up {
            self.stats.drop(DropReason::NeighborUnresolved);
        }
        for &(ip, port) in &ask[..n] {
            self.send_ns(usize::from(port), ip, out);
        }
    }

    /// Sends an ICMPv6 error (`msg`, `code`, the 32-bit `rest`: MTU or
    /// pointer) about the IPv6 packet at `l3` of `invoking` back to its
    /// source, routed, from our address on the way out; the invoking frame
    /// is the caller's to drop (and count). Nothing is sent (false) about
    /// an ICMPv6 error or a packet from or to an address that is not one
    /// host (RFC 4443 2.4 (e)), without a route back, over the rate limit
    /// (counted as `icmpv6_rate_limited`), or without a buffer.
    /// This is the API the forwarding path calls: time exceeded, packet too
    /// big ([`icmpv6::build_packet_too_big`]'s layout), unreachable.
    pub(super) fn send_icmpv6_error<O: Output<F>>(
        &mut self,
        invoking: &F,
        l3: usize,
        (msg, code, rest): (Message, u8, u32),
        now: u64,
        out: &mut O,
    ) -> bool {
        let Some(bytes) = invoking.data().get(l3..) else {
            return false;
        };
        let Ok(ip) = ipv6::Packet::new_checked_header(bytes) else {
            return false;
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if src.is_unspecified() || src.is_multicast() || dst.is_multicast() {
            return false;
        }
        if let Ok(u) = ip.upper_layer() {
            let quoted_type = bytes.get(u.offset).copied();
            if u.protocol == next_header::ICMPV6 && quoted_type.is_some_and(|t| t < 128) {
                return false;
            }
        }
        let Some(hop) = self.v6.routes.lookup(src) else {
            return false;
        };
        if hop.src.is_unspecified() {
            return false;
        }
        if !self.v6.take_error_token(now) {
            self.stats.drop(DropReason::Icmpv6RateLimited);
            return false;
        }
        // The packet, without any link-layer padding after it.
        let whole = (ipv6::HEADER_LEN + usize::from(ip.payload_len())).min(bytes.len());
        let quote = whole.min(icmpv6::MAX_QUOTE_LEN);
        let len = icmpv6::HEADER_LEN + quote;
        let Some(mut frame) = out.alloc(ethernet::HEADER_LEN + ipv6::HEADER_LEN + len) else {
            return false;
        };
        if !write_ipv6(
            frame.data_mut(),
            None,
            MacAddr::ZERO,
            (hop.src, src),
            REPLY_TTL,
            len,
            |buf, addrs| icmpv6::build_error(buf, msg, code, rest, addrs, &bytes[..quote]),
        ) {
            return false;
        }
        self.stats.icmpv6_errors_sent += 1;
        let NextHop { port, address, .. } = hop;
        self.send_to6(usize::from(port), address, frame, now, out);
        true
    }

    /// Builds and sends on `port` an IPv6 packet carrying an ICMPv6
    /// message of at most `max_msg` bytes written by `build`, from
    /// `addrs.0` to `addrs.1`, to `eth_dst`; the link-layer header is
    /// `l2`'s (a request's, VLAN tags kept) or a plain Ethernet one.
    /// False when no buffer could be had.
    #[allow(clippy::too_many_arguments)]
    fn emit6<O: Output<F>>(
        &mut self,
        port: usize,
        l2: Option<&[u8]>,
        eth_dst: MacAddr,
        addrs: (Ipv6Addr, Ipv6Addr),
        hop_limit: u8,
        max_msg: usize,
        build: impl FnOnce(&mut [u8], (Ipv6Addr, Ipv6Addr)) -> Result<usize, WireError>,
        out: &mut O,
    ) -> bool {
        let Some(mac) = self.ports.get(port).map(|p| p.mac) else {
            return false;
        };
        let l2_len = l2.map_or(ethernet::HEADER_LEN, <[u8]>::len);
        let Some(mut frame) = out.alloc(l2_len + ipv6::HEADER_LEN + max_msg) else {
            return false;
        };
        let data = frame.data_mut();
        if !write_ipv6(data, l2, eth_dst, addrs, hop_limit, max_msg, build) {
            return false;
        }
        ethernet::Frame::new_unchecked(&mut *data).set_src_addr(mac);
        let len = l2_len
            + ipv6::HEADER_LEN
            + ipv6::Packet::new_unchecked(&data[l2_len..]).payload_len() as usize;
        frame.truncate(len);
        out.send(port, frame);
        true
    }
}

/// Writes into `data` a link-layer header (a copy of `l2`, or Ethernet
/// to `eth_dst` with type IPv6), an IPv6 header from `addrs.0` to
/// `addrs.1` with `hop_limit`, and an ICMPv6 message of at most `max_msg`
/// bytes written by `build`. False when it does not fit or `build` fails.
fn write_ipv6(
    data: &mut [u8],
    l2: Option<&[u8]>,
    eth_dst: MacAddr,
    addrs: (Ipv6Addr, Ipv6Addr),
    hop_limit: u8,
    max_msg: usize,
    build: impl FnOnce(&mut [u8], (Ipv6Addr, Ipv6Addr)) -> Result<usize, WireError>,
) -> bool {
    let l2_len = match l2 {
        Some(l2) => {
            let Some(dst) = data.get_mut(..l2.len()) else {
                return false;
            };
            dst.copy_from_slice(l2);
            l2.len()
        }
        None => {
            if data.len() < ethernet::HEADER_LEN {
                return false;
            }
            ethernet::Frame::new_unchecked(&mut *data).set_ethertype(EtherType::Ipv6);
            ethernet::HEADER_LEN
        }
    };
    if l2_len < ethernet::HEADER_LEN {
        return false;
    }
    ethernet::Frame::new_unchecked(&mut *data).set_dst_addr(eth_dst);
    let Some(l3) = data.get_mut(l2_len..) else {
        return false;
    };
    let Ok(mut ip) = ipv6::Packet::init_header(&mut *l3) else {
        return false;
    };
    ip.set_next_header(next_header::ICMPV6);
    ip.set_hop_limit(hop_limit);
    ip.set_src_addr(addrs.0);
    ip.set_dst_addr(addrs.1);
    let body_end = (ipv6::HEADER_LEN + max_msg).min(l3.len());
    let Ok(len) = build(&mut l3[ipv6::HEADER_LEN..body_end], addrs) else {
        return false;
    };
    ipv6::Packet::new_unchecked(&mut *l3).set_payload_len(len as u16);
    true
}
