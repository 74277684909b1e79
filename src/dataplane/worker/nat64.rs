//! NAT64 FullNAT through the worker: an IPv6 client's packet leaves as
//! IPv4 from a local address, the real server's IPv4 reply reaches the
//! client as IPv6 from the VIP (`lb::xmit::nat64` translates,
//! `lb::balancer::v6::nat64` decides).
//!
//! The frame changes family: the link-layer header moves to abut the new
//! IP header (the frame shrinks at the front for 6→4 and grows by
//! `nat64::GROWTH` for 4→6, as a TUN header is prepended) and its
//! EtherType follows; the route and the neighbour are the new family's.
//! The IPv4 receive path comes here only for a TCP or UDP packet the IPv4
//! table did not know (`Decision::Drop(NoConnection)`) sent to a NAT64
//! local address (`ServiceTable::is_nat64_local`), and for ICMP and
//! fragments to one: a packet of an IPv4 connection never asks. The IPv6
//! path comes for `Decision6::Nat64ToRealServer` and
//! `IcmpRoute6::Nat64ToRealServer`.
//!
//! Fragments are refused and counted (`nat64_fragment`): a first IPv6
//! fragment here, an IPv4 fragment from the real server (later IPv6
//! fragments wait for a first that never gets a decision, then count as
//! `fragment_unmatched`). A reply too big for the client's link gets
//! "fragmentation needed" back to the real server (MTU less 20) when it
//! has DF, and is dropped (`too_big`) otherwise.

use super::forward::quoted_flow;
use super::parse::Ipv4Info;
use super::Worker;
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::stats::DropReason;
use crate::lb::balancer::{Flow, Nat64Reply};
use crate::lb::xmit::nat64::{self, Translated};
use crate::lb::xmit::{Endpoint, Endpoint6, XmitError};
use crate::wire::{icmp, ipv4, ipv6};

/// EtherTypes written when the frame changes family.
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];

impl<F: Frame> Worker<F> {
    /// A client's IPv6 packet (at `l3`) of a NAT64 connection: translated
    /// to IPv4 from `local` to `real`, routed and sent.
    pub(super) fn nat64_to_real_server<O: Output<F>>(
        &mut self,
        l3: usize,
        local: Endpoint,
        real: Endpoint,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        if has_fragment_header(&frame.data()[l3..]) {
            return Err(DropReason::Nat64Fragment);
        }
        let ident = self.next_ident();
        let t =
            nat64::to_ipv4(&mut frame.data_mut()[l3..], local, real, ident).map_err(nat64_drop)?;
        refit(&mut frame, l3, t, ETHERTYPE_IPV4);
        self.stats.nat64_to_ipv4 += 1;
        self.route_and_send(real.ip, frame, now, out)
    }

    /// An IPv4 TCP or UDP packet (at `l3`, of `flow`) to a NAT64 local
    /// address that the IPv4 table does not know: a real server's reply
    /// translated to the client, or dropped. Out of line: the IPv4 path it
    /// branches from stays as it was.
    #[inline(never)]
    pub(super) fn nat64_from_real_server<O: Output<F>>(
        &mut self,
        l3: usize,
        flow: &Flow,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let decision =
            self.lb
                .decide_nat64_reply(&flow.key, flow.protocol, flow.flags, flow.bytes, now);
        match decision {
            Nat64Reply::ToClient { vip, client } => {
                self.nat64_to_client(l3, vip, client, frame, now, out)
            }
            Nat64Reply::Drop(r) => Err(r.into()),
        }
    }

    /// Translates the reply `ip` to IPv6 from `vip` to `client` and sends
    /// it; too big for the client's link: "fragmentation needed" back to
    /// the real server (DF) or dropped.
    fn nat64_to_client<O: Output<F>>(
        &mut self,
        l3: usize,
        vip: Endpoint6,
        client: Endpoint6,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let (grown, df) = {
            let p = ipv4::Packet::new_checked(&frame.data()[l3..])
                .map_err(|_| DropReason::Truncated)?;
            let payload = usize::from(p.total_len()).saturating_sub(p.header_len());
            (ipv6::HEADER_LEN + payload, p.dont_frag())
        };
        let hop = self
            .v6
            .routes
            .lookup(client.ip)
            .ok_or(DropReason::NoRoute)?;
        let mtu = self.ports[usize::from(hop.port)].mtu;
        if grown > usize::from(mtu) {
            if df {
                let v4_mtu = mtu.saturating_sub(nat64::GROWTH as u16);
                return self.frag_needed(l3, v4_mtu, frame, now, out);
            }
            return Err(DropReason::TooBig);
        }
        if !frame.prepend(nat64::GROWTH) {
            return Err(DropReason::TooBig);
        }
        frame
            .data_mut()
            .copy_within(nat64::GROWTH..nat64::GROWTH + l3, 0);
        let t = nat64::to_ipv6(&mut frame.data_mut()[l3..], vip, client).map_err(nat64_drop)?;
        refit(&mut frame, l3, t, ETHERTYPE_IPV6);
        self.stats.nat64_to_ipv6 += 1;
        self.forward_toward6(l3, client.ip, false, frame, now, out)
    }

    /// An ICMP message to a NAT64 local address: an error about a packet
    /// rvs sent a real server is translated to ICMPv6 from the VIP to the
    /// client, quoting what the client sent; anything else is dropped.
    #[inline(never)]
    pub(super) fn nat64_icmp_to_client<O: Output<F>>(
        &mut self,
        ip: &Ipv4Info,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        if ip.is_fragment() {
            return Err(DropReason::Nat64Fragment);
        }
        let l3 = usize::from(ip.l3);
        let key = {
            let packet = ipv4::Packet::new_unchecked(&frame.data()[l3..]);
            let msg =
                icmp::Packet::new_checked(packet.payload()).map_err(|_| DropReason::Truncated)?;
            if !msg.msg_type().is_error() {
                return Err(DropReason::UnsupportedProtocol);
            }
            if !msg.verify_checksum() {
                return Err(DropReason::BadChecksum);
            }
            let (q, _) = quoted_flow(&frame.data()[l3..]).ok_or(DropReason::Malformed)?;
            q.reversed()
        };
        let (vip, client) = self.lb.icmp_error_nat64(&key, now)?;
        if !frame.prepend(nat64::ICMP_GROWTH) {
            return Err(DropReason::TooBig);
        }
        frame
            .data_mut()
            .copy_within(nat64::ICMP_GROWTH..nat64::ICMP_GROWTH + l3, 0);
        let t = nat64::icmp_to_ipv6(
            &mut frame.data_mut()[l3..],
            (vip.ip, client.ip),
            (client, vip),
        )
        .map_err(nat64_drop)?;
        refit(&mut frame, l3, t, ETHERTYPE_IPV6);
        self.stats.icmp_errors_forwarded += 1;
        self.stats.nat64_to_ipv6 += 1;
        self.forward_toward6(l3, client.ip, false, frame, now, out)
    }

    /// An ICMPv6 error from the client's side about a NAT64 connection's
    /// reply (at `l3`): translated to ICMP from `local` to `real`, quoting
    /// what the real server sent.
    pub(super) fn nat64_icmp6_to_real_server<O: Output<F>>(
        &mut self,
        l3: usize,
        local: Endpoint,
        real: Endpoint,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let ident = self.next_ident();
        let t = nat64::icmp_to_ipv4(
            &mut frame.data_mut()[l3..],
            (local.ip, real.ip),
            (real, local),
            ident,
        )
        .map_err(nat64_drop)?;
        refit(&mut frame, l3, t, ETHERTYPE_IPV4);
        self.stats.nat64_to_ipv4 += 1;
        self.route_and_send(real.ip, frame, now, out)
    }
}

/// Makes `frame` the link-layer header (its first `l3` bytes) followed by
/// the translated packet `t` (offsets from `l3`), with `ethertype`.
fn refit<F: Frame>(frame: &mut F, l3: usize, t: Translated, ethertype: [u8; 2]) {
    if t.start > 0 {
        frame.data_mut().copy_within(0..l3, t.start);
        // Cannot fail: `start` is within the frame.
        frame.adj(t.start);
    }
    frame.truncate(l3 + t.len);
    if l3 >= 2 {
        frame.data_mut()[l3 - 2..l3].copy_from_slice(&ethertype);
    }
}

/// True when the IPv6 packet `ip` carries a fragment header (walked only
/// when the fixed header is not followed by TCP or UDP at once).
fn has_fragment_header(ip: &[u8]) -> bool {
    let Ok(p) = ipv6::Packet::new_checked(ip) else {
        return false;
    };
    if matches!(
        p.next_header(),
        ipv6::next_header::TCP | ipv6::next_header::UDP
    ) {
        return false;
    }
    p.upper_layer().is_ok_and(|u| u.fragment.is_some())
}

/// The drop reason of a NAT64 translation that could not be made.
fn nat64_drop(e: XmitError) -> DropReason {
    match e {
        XmitError::TtlExpired => DropReason::TtlExpired,
        XmitError::Unsupported => DropReason::Nat64Untranslatable,
        XmitError::TooBig { .. } => DropReason::TooBig,
    }
}
