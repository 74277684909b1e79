//! NAT for IPv6 (IPVS's masquerading over IPv6): the destination of a
//! client's packet becomes the real server, the source of the server's
//! reply becomes the virtual service again, and ICMPv6 errors about such a
//! connection are translated in the outer header and in the packet they
//! quote, so path MTU discovery (packet too big) works through rvs.
//!
//! IPv6 has no header checksum: only the hop limit and an address change
//! in the fixed header. The TCP/UDP checksum covers the pseudo-header
//! (RFC 8200 8.1), so the address change (eight 16-bit words,
//! `ipv6::addr_patch`) and the port change are folded into one
//! `checksum::Patch` and applied once (RFC 1624): no payload is re-summed.
//! A UDP checksum of zero is invalid over IPv6, so such a packet is
//! refused rather than patched, and a UDP result of zero is written as
//! 0xFFFF.
//!
//! Extension headers are walked by `ipv6::Packet::upper_layer` (bounded);
//! a packet still on a source route (`segments_left > 0`: its
//! pseudo-header destination is not the header's) and a non-first
//! fragment (no transport header: the worker forwards it by its fragment
//! id, see `lb::frag`) are refused as `Unsupported`, untouched. A first
//! fragment is rewritten like a whole packet: its transport checksum
//! covers the whole datagram, and patching it is right however the
//! payload is split.

use super::nat::Side;
use super::{Endpoint6, XmitError};
use crate::wire::checksum::Patch;
use crate::wire::ipv6::{self, next_header};
use crate::wire::{get_u16, icmpv6, put_u16};
use std::net::Ipv6Addr;

/// [client]:port → [VIP]:VPORT becomes [client]:port → [RIP]:RPORT, hop
/// limit - 1.
pub fn to_real_server(ip: &mut [u8], real: Endpoint6) -> Result<(), XmitError> {
    forward(ip, Side::Dst, real)
}

/// [RIP]:RPORT → client becomes [VIP]:VPORT → client, hop limit - 1.
pub fn from_real_server(ip: &mut [u8], service: Endpoint6) -> Result<(), XmitError> {
    forward(ip, Side::Src, service)
}

/// Rewrites `side` to `to` and decrements the hop limit; on any error the
/// packet is left as it was.
fn forward(ip: &mut [u8], side: Side, to: Endpoint6) -> Result<(), XmitError> {
    let ports = {
        let p = checked(ip)?;
        hop_limit_allows_forwarding(&p)?;
        Ports::whole(&p)?
    };
    ports.rewrite(ip, side, to);
    let mut p = ipv6::Packet::new_unchecked(ip);
    set_addr(&mut p, side, to.ip);
    p.decrement_hop_limit();
    Ok(())
}

/// Rewrites one side's address and port, patching the TCP/UDP checksum,
/// hop limit untouched. Anything but an IPv6 packet whose chain walks to a
/// whole TCP or UDP header (with a non-zero UDP checksum) is
/// `Unsupported`, and left untouched.
pub fn rewrite(ip: &mut [u8], side: Side, to: Endpoint6) -> Result<(), XmitError> {
    let ports = Ports::whole(&checked(ip)?)?;
    ports.rewrite(ip, side, to);
    set_addr(&mut ipv6::Packet::new_unchecked(ip), side, to.ip);
    Ok(())
}

/// Translates an ICMPv6 error about a NAT'd IPv6 connection, as
/// `nat::translate_icmp_error` does for IPv4: `outer` rewrites the error's
/// own source or destination address, `quoted` the quoted packet's
/// address and port (its transport checksum patched when it was quoted);
/// then the ICMPv6 checksum is recomputed over the message with the new
/// outer addresses (its pseudo-header changed too), and the outer hop
/// limit decremented.
///
/// `TtlExpired` for hop limit 0 or 1; `Unsupported` when the bytes are not
/// an IPv6 packet carrying an ICMPv6 error (types 1 to 4) that quotes an
/// IPv6 header walking to at least the ports of TCP or UDP. Either way the
/// packet is untouched.
pub fn translate_icmp_error(
    ip: &mut [u8],
    outer: (Side, Ipv6Addr),
    quoted: (Side, Endpoint6),
) -> Result<(), XmitError> {
    translate_icmp_error_with(
        ip,
        |ports, quote| {
            let (side, to) = quoted;
            ports.rewrite(quote, side, to);
            set_addr(&mut ipv6::Packet::new_unchecked(quote), side, to.ip);
        },
        |p| set_addr(p, outer.0, outer.1),
    )
}

/// The frame of an ICMPv6 error's translation, shared with `fullnat6`:
/// the checks (`TtlExpired`, `Unsupported` as [`translate_icmp_error`]
/// says, the packet untouched), then `quoted` rewrites the quoted packet
/// (the bytes from its IPv6 header on, with where its ports are) and
/// `outer` the error's own IPv6 header; the hop limit is decremented and
/// the ICMPv6 checksum recomputed over the new addresses.
pub(super) fn translate_icmp_error_with(
    ip: &mut [u8],
    quoted: impl FnOnce(Ports, &mut [u8]),
    outer: impl FnOnce(&mut ipv6::Packet<&mut [u8]>),
) -> Result<(), XmitError> {
    let (msg_at, end) = {
        let p = checked(ip)?;
        hop_limit_allows_forwarding(&p)?;
        let upper = p.upper_layer().map_err(|_| XmitError::Unsupported)?;
        if upper.protocol != next_header::ICMPV6 || upper.segments_left != 0 {
            return Err(XmitError::Unsupported);
        }
        (upper.offset, ipv6::HEADER_LEN + p.payload().len())
    };
    {
        let msg = ip.get_mut(msg_at..end).ok_or(XmitError::Unsupported)?;
        let m = icmpv6::Packet::new_checked(&*msg).map_err(|_| XmitError::Unsupported)?;
        if !m.msg_type().is_error() {
            return Err(XmitError::Unsupported);
        }
        let quote = &mut msg[icmpv6::HEADER_LEN..];
        let ports = {
            let q =
                ipv6::Packet::new_checked_header(&*quote).map_err(|_| XmitError::Unsupported)?;
            Ports::quoted(&q, ipv6::HEADER_LEN + q.payload().len())?
        };
        quoted(ports, quote);
    }
    let mut p = ipv6::Packet::new_unchecked(&mut *ip);
    outer(&mut p);
    p.decrement_hop_limit();
    let (src, dst) = (p.src_addr(), p.dst_addr());
    icmpv6::Packet::new_unchecked(&mut ip[msg_at..end]).fill_checksum(src, dst);
    Ok(())
}

/// A packet arriving with hop limit 0 or 1 is not forwarded (RFC 8200 3:
/// a node that decrements it to zero discards the packet).
pub(super) fn hop_limit_allows_forwarding<T: AsRef<[u8]>>(
    p: &ipv6::Packet<T>,
) -> Result<(), XmitError> {
    if p.hop_limit() <= 1 {
        return Err(XmitError::TtlExpired);
    }
    Ok(())
}

/// The IPv6 view of `ip`; bytes that are not an IPv6 packet cannot be
/// rewritten.
pub(super) fn checked(ip: &[u8]) -> Result<ipv6::Packet<&[u8]>, XmitError> {
    ipv6::Packet::new_checked(ip).map_err(|_| XmitError::Unsupported)
}

/// Sets `side`'s address (no checksum in the IPv6 header to patch).
pub(super) fn set_addr(p: &mut ipv6::Packet<&mut [u8]>, side: Side, to: Ipv6Addr) {
    match side {
        Side::Src => p.set_src_addr(to),
        Side::Dst => p.set_dst_addr(to),
    };
}

/// Where the ports and checksum of a TCP or UDP header are, from the
/// start of the IPv6 header, checked to lie within the packet (shared
/// with `fullnat6`, which rewrites both sides in one patch).
#[derive(Clone, Copy, Debug)]
pub(super) struct Ports {
    /// Offset of the source port (the destination port follows).
    pub(super) at: usize,
    /// Offset of the checksum, when it is within the bytes.
    pub(super) checksum: Option<usize>,
    /// TCP or UDP.
    pub(super) protocol: u8,
    /// The address of the side being rewritten, before: read when the
    /// offsets are, so the checksum patch knows what changed.
    pub(super) addrs: (Ipv6Addr, Ipv6Addr),
}

impl Ports {
    /// The transport header of a forwarded packet: whole, not on a source
    /// route, and for UDP with a non-zero checksum.
    pub(super) fn whole(p: &ipv6::Packet<&[u8]>) -> Result<Ports, XmitError> {
        let upper = p.upper_layer().map_err(|_| XmitError::Unsupported)?;
        if upper.segments_left != 0 {
            return Err(XmitError::Unsupported);
        }
        let header_len = match upper.protocol {
            next_header::TCP => 20,
            next_header::UDP => 8,
            _ => return Err(XmitError::Unsupported),
        };
        let payload = p.payload();
        let l4 = upper.offset - ipv6::HEADER_LEN;
        if l4 + header_len > payload.len() {
            return Err(XmitError::Unsupported);
        }
        let ck = ipv6::checksum_offset(upper.protocol).unwrap_or(0);
        if upper.protocol == next_header::UDP && get_u16(payload, l4 + ck) == 0 {
            return Err(XmitError::Unsupported);
        }
        Ok(Ports {
            at: upper.offset,
            checksum: Some(upper.offset + ck),
            protocol: upper.protocol,
            addrs: (p.src_addr(), p.dst_addr()),
        })
    }

    /// The start of a transport header an ICMPv6 error quotes (`len`
    /// bytes of it quoted): the ports at least, the checksum when quoted.
    pub(super) fn quoted(q: &ipv6::Packet<&[u8]>, len: usize) -> Result<Ports, XmitError> {
        let upper = q.upper_layer().map_err(|_| XmitError::Unsupported)?;
        if !matches!(upper.protocol, next_header::TCP | next_header::UDP) {
            return Err(XmitError::Unsupported);
        }
        if upper.offset + 4 > len {
            return Err(XmitError::Unsupported);
        }
        let ck = upper.offset + ipv6::checksum_offset(upper.protocol).unwrap_or(0);
        Ok(Ports {
            at: upper.offset,
            checksum: (ck + 2 <= len).then_some(ck),
            protocol: upper.protocol,
            addrs: (q.src_addr(), q.dst_addr()),
        })
    }

    /// Sets `side`'s port to `to.port` in `b` (the bytes from the IPv6
    /// header on) and patches the checksum for it and for `side`'s
    /// address becoming `to.ip`, in one patch.
    fn rewrite(self, b: &mut [u8], side: Side, to: Endpoint6) {
        let (port_at, old) = match side {
            Side::Src => (self.at, self.addrs.0),
            Side::Dst => (self.at + 2, self.addrs.1),
        };
        let old_port = get_u16(b, port_at);
        put_u16(b, port_at, to.port);
        if let Some(at) = self.checksum {
            let patch = ipv6::addr_patch(Patch::default(), old, to.ip).word(old_port, to.port);
            let ck = patch.apply(get_u16(b, at));
            let ck = if ck == 0 && self.protocol == next_header::UDP {
                0xffff
            } else {
                ck
            };
            put_u16(b, at, ck);
        }
    }
}

#[cfg(test)]
mod tests;
