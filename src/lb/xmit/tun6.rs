//! TUN over IPv6 (RFC 2473): the client's packet, unchanged, inside a new
//! IPv6 header from the balancer to the real server, which decapsulates
//! it and answers the client directly (the VIP on its loopback, as for
//! IPv4 TUN). The inner packet is IPv6 (next header 41, IPv6-in-IPv6) or
//! IPv4 (next header 4, IPv4-in-IPv6: an IPv4 service whose real servers
//! are reached over IPv6).
//!
//! The outer header: source the balancer's own address toward the real
//! server (the caller's route decides it), hop limit [`OUTER_HOP_LIMIT`],
//! traffic class copied from the inner packet (IPv6 traffic class, or
//! IPv4 DSCP/ECN), flow label copied from an inner IPv6 packet (so ECMP
//! on the path spreads tunnelled flows as it would the clients') and 0 for
//! an inner IPv4 one; payload length the inner packet's length.
//!
//! IPv6 routers never fragment: an encapsulated packet over the MTU is
//! answered with packet too big carrying `mtu - 40` ([`check_fits`]), or,
//! for an IPv4 inner packet with DF, ICMP fragmentation needed as
//! `tun::frag_needed` builds it. An IPv4 inner packet without DF that does
//! not fit would need the outer IPv6 packet fragmented by the tunnel
//! entry (RFC 2473 7.1): not done; the caller drops it, counted.

use super::XmitError;
use crate::wire::{ipv4, ipv6};
use std::net::Ipv6Addr;

/// Bytes the outer header adds.
pub const OVERHEAD: usize = ipv6::HEADER_LEN;

/// Hop limit of the outer header (RFC 2473 6.3 leaves it to the tunnel
/// entry; 64 as the IPv4 tunnel's TTL).
pub const OUTER_HOP_LIMIT: u8 = 64;

/// What an inner packet is, read from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner {
    /// An IPv6 packet: next header 41.
    Ipv6 {
        /// Its length, fixed header included.
        len: usize,
        /// Traffic class.
        traffic_class: u8,
        /// Flow label.
        flow_label: u32,
    },
    /// An IPv4 packet: next header 4.
    Ipv4 {
        /// Its total length.
        len: usize,
        /// DSCP and ECN.
        dscp_ecn: u8,
        /// The don't-fragment flag.
        dont_frag: bool,
    },
}

impl Inner {
    /// The packet `inner` holds, by its version; `Unsupported` for bytes
    /// that are neither a checked IPv6 nor a checked IPv4 packet.
    pub fn parse(inner: &[u8]) -> Result<Inner, XmitError> {
        match inner.first().map(|b| b >> 4) {
            Some(6) => {
                let p = ipv6::Packet::new_checked(inner).map_err(|_| XmitError::Unsupported)?;
                Ok(Inner::Ipv6 {
                    len: ipv6::HEADER_LEN + usize::from(p.payload_len()),
                    traffic_class: p.traffic_class(),
                    flow_label: p.flow_label(),
                })
            }
            Some(4) => {
                let p = ipv4::Packet::new_checked(inner).map_err(|_| XmitError::Unsupported)?;
                Ok(Inner::Ipv4 {
                    len: usize::from(p.total_len()),
                    dscp_ecn: p.dscp_ecn(),
                    dont_frag: p.dont_frag(),
                })
            }
            _ => Err(XmitError::Unsupported),
        }
    }

    /// Its length.
    pub fn len(self) -> usize {
        match self {
            Inner::Ipv6 { len, .. } | Inner::Ipv4 { len, .. } => len,
        }
    }

    /// True for a packet of no bytes (never: a parsed packet has a header).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Whether `inner` fits an `mtu` once encapsulated: `Err(TooBig)` with
/// the inner MTU to report (`mtu - 40`; for an IPv6 inner packet never
/// below the 1280 bytes every IPv6 link carries: a link that cannot take
/// 1280 + 40 cannot carry this tunnel) when it does not, and
/// `Err(Unsupported)` for bytes that are not an IP packet.
pub fn check_fits(inner: &[u8], mtu: u16) -> Result<(), XmitError> {
    let i = Inner::parse(inner)?;
    if i.len() + OVERHEAD > usize::from(mtu) {
        let room = mtu.saturating_sub(OVERHEAD as u16);
        let mtu = match i {
            Inner::Ipv6 { .. } => room.max(ipv6::MIN_MTU as u16),
            Inner::Ipv4 { .. } => room,
        };
        return Err(XmitError::TooBig { mtu });
    }
    Ok(())
}

/// Writes the outer IPv6 header into the first [`OVERHEAD`] bytes of
/// `buf`, which holds the inner packet (IPv6 or IPv4) right after them,
/// from `src` to `dst`. `Unsupported`, and `buf` untouched, when what
/// follows is not an IP packet or is too long for a payload length.
pub fn encapsulate(buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), XmitError> {
    if buf.len() < OVERHEAD {
        return Err(XmitError::Unsupported);
    }
    let (outer, inner) = buf.split_at_mut(OVERHEAD);
    let i = Inner::parse(inner)?;
    let len = u16::try_from(i.len()).map_err(|_| XmitError::Unsupported)?;
    let (next, traffic_class, flow_label) = match i {
        Inner::Ipv6 {
            traffic_class,
            flow_label,
            ..
        } => (ipv6::next_header::IPV6, traffic_class, flow_label),
        Inner::Ipv4 { dscp_ecn, .. } => (IPV4_IN_IPV6, dscp_ecn, 0),
    };
    let mut p = ipv6::Packet::init_header(outer).map_err(|_| XmitError::Unsupported)?;
    p.set_traffic_class(traffic_class);
    p.set_flow_label(flow_label);
    p.set_payload_len(len);
    p.set_next_header(next);
    p.set_hop_limit(OUTER_HOP_LIMIT);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    Ok(())
}

/// Next header of an IPv4 packet inside IPv6 (IANA protocol 4, "IPv4
/// encapsulation").
pub const IPV4_IN_IPV6: u8 = 4;

#[cfg(test)]
mod tests;
