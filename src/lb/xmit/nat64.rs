//! NAT64 for FullNAT: an IPv6 client's packet to an IPv6 VIP leaves as an
//! IPv4 packet from a local address to an IPv4 real server, and the real
//! server's IPv4 reply reaches the client as an IPv6 packet from the VIP.
//! The header translation follows RFC 7915 (SIIT), with the addresses
//! chosen by the connection (stateful, as RFC 6146), not derived from a
//! prefix.
//!
//! Why the shapes here:
//! - **In place, the frame shrinking or growing.** IPv6's fixed header is
//!   40 bytes, IPv4's 20: 6→4 writes the IPv4 header just before the
//!   transport header (over the end of the IPv6 header and any extension
//!   headers, which are dropped: RFC 7915 5.1) and says where the packet
//!   now starts ([`Translated::start`]); 4→6 takes the IPv4 packet
//!   [`GROWTH`] bytes into the slice (the worker prepends them) and
//!   writes the IPv6 header just before its transport header. IPv4
//!   options are ignored (RFC 7915 4.1): the IPv6 header covers them, so
//!   the start moves by the options' length. No payload byte moves.
//! - **Transport checksums patched, not recomputed** (RFC 1624): the
//!   pseudo-headers of the two families sum the same length and protocol,
//!   so only the addresses (eight 16-bit words against two) and the ports
//!   change. A UDP checksum of zero (allowed over IPv4, not over IPv6) is
//!   computed whole on the way to the client (RFC 7915 4.5).
//! - **DF**: set when the IPv4 packet is above 1260 bytes, clear below
//!   (RFC 7915 5.1): an IPv6 host never sends less than 1280 bytes per
//!   packet, so an IPv4 path narrower than that must be able to fragment
//!   the small ones; above it, path MTU discovery works end to end
//!   (fragmentation needed ↔ packet too big, the MTU moved by 20).
//! - **ICMP errors** are rebuilt in a stack buffer (they are rare and
//!   change size twice: their own header and the quoted one): type and
//!   code mapped as RFC 7915 4.2 and 5.2 say, the quoted packet
//!   translated (its addresses and ports those of the other side of the
//!   connection, its transport checksum patched when quoted whole enough),
//!   the message checksum computed whole. Parameter problems with a
//!   pointer (their pointer would need a table of field offsets) and the
//!   codes RFC 7915 says to drop are [`XmitError::Unsupported`].
//! - Fragments are not translated here: the worker refuses them before
//!   (counted `nat64_fragment`).

use super::{Endpoint, Endpoint6, XmitError};
use crate::wire::checksum::{self, Patch};
use crate::wire::ipv6::{self, next_header};
use crate::wire::{get_u16, icmp, icmpv6, ipv4, put_u16};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Bytes an IPv4 packet without options gains as IPv6 (40 - 20): the
/// worker prepends them before [`to_ipv6`].
pub const GROWTH: usize = ipv6::HEADER_LEN - ipv4::MIN_HEADER_LEN;

/// Bytes an ICMP error may gain as ICMPv6 (its own header and the quoted
/// one, 20 each): the worker prepends them before [`icmp_to_ipv6`].
pub const ICMP_GROWTH: usize = 2 * GROWTH;

/// Translated IPv4 packets longer than this get DF (RFC 7915 5.1: 1280
/// less the 20 bytes the header loses).
pub const DF_ABOVE: usize = ipv6::MIN_MTU - GROWTH;

/// An ICMP error translated to IPv4 is cut to this length (RFC 1812
/// 4.3.2.3: as much of the offending packet as fits in 576 bytes).
const MAX_ICMP_ERROR: usize = 576;

/// An ICMPv6 error is cut to the IPv6 minimum MTU (RFC 4443 2.4 (c)).
const MAX_ICMPV6_ERROR: usize = ipv6::MIN_MTU;

/// ICMPv4 types and codes written here (RFC 792, RFC 1812).
const ICMP_DST_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;

/// Where the translated packet is in the slice the function was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translated {
    /// Offset of its first byte (the IP header).
    pub start: usize,
    /// Its length (to the end of the transport payload).
    pub len: usize,
}

/// The IPv6 address standing for an IPv4 one in the IPv6 connection
/// table (`::ffff:a.b.c.d`, RFC 4291 2.5.5.2): the real server and local
/// address of a NAT64 connection's reply key.
#[inline]
pub fn mapped(a: Ipv4Addr) -> Ipv6Addr {
    a.to_ipv6_mapped()
}

/// Client → real server: the IPv6 TCP or UDP packet `ip` (from its fixed
/// header) becomes an IPv4 packet from `local` to `real`, TTL the hop
/// limit less one, identification `ident`. `TtlExpired` for hop limit 0
/// or 1; `Unsupported` for anything but a whole TCP or UDP packet (no
/// fragment header, no source route pending, a non-zero UDP checksum).
/// On error the bytes are untouched.
pub fn to_ipv4(
    ip: &mut [u8],
    local: Endpoint,
    real: Endpoint,
    ident: u16,
) -> Result<Translated, XmitError> {
    let (at, end, proto, tc, hop, src, dst) = {
        let p = ipv6::Packet::new_checked(&*ip).map_err(|_| XmitError::Unsupported)?;
        if p.hop_limit() <= 1 {
            return Err(XmitError::TtlExpired);
        }
        let u = p.upper_layer().map_err(|_| XmitError::Unsupported)?;
        if u.fragment.is_some() || u.segments_left != 0 {
            return Err(XmitError::Unsupported);
        }
        let end = ipv6::HEADER_LEN + p.payload().len();
        let hop = p.hop_limit();
        (
            u.offset,
            end,
            u.protocol,
            p.traffic_class(),
            hop,
            p.src_addr(),
            p.dst_addr(),
        )
    };
    let ck_at = transport_checksum_at(proto)?;
    let upper_len = end.checked_sub(at).ok_or(XmitError::Unsupported)?;
    let total = ipv4::MIN_HEADER_LEN + upper_len;
    if upper_len < min_transport_len(proto) || total > usize::from(u16::MAX) {
        return Err(XmitError::Unsupported);
    }
    let seg = &mut ip[at..end];
    let old_ck = get_u16(seg, ck_at);
    if proto == next_header::UDP && old_ck == 0 {
        return Err(XmitError::Unsupported);
    }
    let patch = remove6(Patch::default(), src, dst);
    let patch = add4(patch, local.ip, real.ip);
    let patch = ports(seg, patch, local.port, real.port);
    put_u16(seg, ck_at, udp_nonzero(proto, patch.apply(old_ck)));
    let start = at - ipv4::MIN_HEADER_LEN;
    let header = &mut ip[start..at];
    write_ipv4(
        header,
        Ipv4Fields {
            tos: tc,
            total: total as u16,
            ident,
            df: total > DF_ABOVE,
            ttl: hop - 1,
            proto,
            src: local.ip,
            dst: real.ip,
        },
    );
    Ok(Translated { start, len: total })
}

/// Real server → client: the IPv4 TCP or UDP packet at `ip[GROWTH..]`
/// (header checked by the caller) becomes an IPv6 packet from `vip` to
/// `client`, hop limit the TTL less one; IPv4 options are dropped.
/// `TtlExpired` for TTL 0 or 1; `Unsupported` for a fragment or anything
/// but a whole TCP or UDP packet. On error the bytes are untouched.
pub fn to_ipv6(ip: &mut [u8], vip: Endpoint6, client: Endpoint6) -> Result<Translated, XmitError> {
    let (ihl, total, tos, ttl, proto, src, dst) = {
        let b = ip.get(GROWTH..).ok_or(XmitError::Unsupported)?;
        let p = ipv4::Packet::new_checked(b).map_err(|_| XmitError::Unsupported)?;
        if p.is_fragment() {
            return Err(XmitError::Unsupported);
        }
        if p.ttl() <= 1 {
            return Err(XmitError::TtlExpired);
        }
        (
            p.header_len(),
            usize::from(p.total_len()),
            p.dscp_ecn(),
            p.ttl(),
            u8::from(p.protocol()),
            p.src_addr(),
            p.dst_addr(),
        )
    };
    let ck_at = transport_checksum_at(proto)?;
    let at = GROWTH + ihl;
    let end = GROWTH + total;
    let upper_len = total.checked_sub(ihl).ok_or(XmitError::Unsupported)?;
    if upper_len < min_transport_len(proto) || end > ip.len() {
        return Err(XmitError::Unsupported);
    }
    let seg = &mut ip[at..end];
    let old_ck = get_u16(seg, ck_at);
    if proto == next_header::UDP && old_ck == 0 {
        // No checksum over IPv4; IPv6 requires one: computed whole.
        put_u16(seg, 0, vip.port);
        put_u16(seg, 2, client.port);
        ipv6::fill_upper_checksum(vip.ip, client.ip, proto, seg)
            .map_err(|_| XmitError::Unsupported)?;
    } else {
        let patch = remove4(Patch::default(), src, dst);
        let patch = add6(patch, vip.ip, client.ip);
        let patch = ports(seg, patch, vip.port, client.port);
        put_u16(seg, ck_at, udp_nonzero(proto, patch.apply(old_ck)));
    }
    let start = at - ipv6::HEADER_LEN;
    write_ipv6(
        &mut ip[start..at],
        Ipv6Fields {
            tc: tos,
            payload_len: upper_len as u16,
            next: proto,
            hop: ttl - 1,
            src: vip.ip,
            dst: client.ip,
        },
    );
    Ok(Translated {
        start,
        len: ipv6::HEADER_LEN + upper_len,
    })
}

/// An ICMPv6 error from the client's side about a packet the balancer
/// sent the client (VIP → client) becomes an ICMP error from `outer.0` to
/// `outer.1` (the local address to the real server) quoting what the real
/// server sent (`quoted.0` → `quoted.1`: real server → local address).
/// The translated packet starts at offset 0 of `ip`. `TtlExpired` for hop
/// limit 0 or 1; `Unsupported` when the bytes are no whole ICMPv6 error
/// quoting TCP or UDP ports, or its type has no IPv4 twin. On error the
/// bytes are untouched.
pub fn icmp_to_ipv4(
    ip: &mut [u8],
    outer: (Ipv4Addr, Ipv4Addr),
    quoted: (Endpoint, Endpoint),
    ident: u16,
) -> Result<Translated, XmitError> {
    let mut out = [0u8; MAX_ICMP_ERROR];
    let len = {
        let p = ipv6::Packet::new_checked(&*ip).map_err(|_| XmitError::Unsupported)?;
        if p.hop_limit() <= 1 {
            return Err(XmitError::TtlExpired);
        }
        let u = p.upper_layer().map_err(|_| XmitError::Unsupported)?;
        if u.protocol != next_header::ICMPV6 || u.fragment.is_some() || u.segments_left != 0 {
            return Err(XmitError::Unsupported);
        }
        let end = ipv6::HEADER_LEN + p.payload().len();
        let msg = ip.get(u.offset..end).ok_or(XmitError::Unsupported)?;
        let m = icmpv6::Packet::new_checked(msg).map_err(|_| XmitError::Unsupported)?;
        let (ty, code, rest) = icmp_type_to_ipv4(u8::from(m.msg_type()), m.code(), m.mtu())
            .ok_or(XmitError::Unsupported)?;
        let quote = &msg[icmpv6::HEADER_LEN..];
        let q = ipv6::Packet::new_checked_header(quote).map_err(|_| XmitError::Unsupported)?;
        let qu = q.upper_layer().map_err(|_| XmitError::Unsupported)?;
        if transport_checksum_at(qu.protocol).is_err() || qu.fragment.is_some() {
            return Err(XmitError::Unsupported);
        }
        let transport = quote.get(qu.offset..).ok_or(XmitError::Unsupported)?;
        if transport.len() < 4 {
            return Err(XmitError::Unsupported);
        }
        let q_len = (ipv6::HEADER_LEN + usize::from(q.payload_len()))
            .saturating_sub(qu.offset)
            .saturating_add(ipv4::MIN_HEADER_LEN)
            .min(usize::from(u16::MAX));
        let head = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN + ipv4::MIN_HEADER_LEN;
        let copied = transport.len().min(MAX_ICMP_ERROR - head);
        let total = head + copied;
        let (qsrc, qdst) = (q.src_addr(), q.dst_addr());
        let seg = &mut out[head..total];
        seg.copy_from_slice(&transport[..copied]);
        let patch = remove6(Patch::default(), qsrc, qdst);
        let patch = add4(patch, quoted.0.ip, quoted.1.ip);
        patch_quoted(seg, qu.protocol, patch, quoted.0.port, quoted.1.port);
        write_ipv4(
            &mut out[ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN..head],
            Ipv4Fields {
                tos: q.traffic_class(),
                total: q_len as u16,
                ident: 0,
                df: q_len > DF_ABOVE,
                ttl: q.hop_limit(),
                proto: qu.protocol,
                src: quoted.0.ip,
                dst: quoted.1.ip,
            },
        );
        let icmp_msg = &mut out[ipv4::MIN_HEADER_LEN..total];
        icmp_msg[0] = ty;
        icmp_msg[1] = code;
        icmp_msg[4..8].copy_from_slice(&rest.to_be_bytes());
        let ck = checksum::checksum(icmp_msg);
        put_u16(icmp_msg, 2, ck);
        write_ipv4(
            &mut out[..ipv4::MIN_HEADER_LEN],
            Ipv4Fields {
                tos: p.traffic_class(),
                total: total as u16,
                ident,
                df: false,
                ttl: p.hop_limit() - 1,
                proto: u8::from(ipv4::Protocol::Icmp),
                src: outer.0,
                dst: outer.1,
            },
        );
        total
    };
    // The translation is never longer than what it translates.
    let dst = ip.get_mut(..len).ok_or(XmitError::Unsupported)?;
    dst.copy_from_slice(&out[..len]);
    Ok(Translated { start: 0, len })
}

/// An ICMP error from the real server's side about a packet the balancer
/// sent it (local address → real server), at `ip[ICMP_GROWTH..]` (header
/// checked by the caller), becomes an ICMPv6 error from `outer.0` to
/// `outer.1` (the VIP to the client) quoting what the client sent
/// (`quoted.0` → `quoted.1`: client → VIP). The translated packet starts
/// at offset 0 of `ip`. Errors as [`icmp_to_ipv4`]'s.
pub fn icmp_to_ipv6(
    ip: &mut [u8],
    outer: (Ipv6Addr, Ipv6Addr),
    quoted: (Endpoint6, Endpoint6),
) -> Result<Translated, XmitError> {
    let mut out = [0u8; MAX_ICMPV6_ERROR];
    let len = {
        let b = ip.get(ICMP_GROWTH..).ok_or(XmitError::Unsupported)?;
        let p = ipv4::Packet::new_checked(b).map_err(|_| XmitError::Unsupported)?;
        if p.is_fragment() || p.protocol() != ipv4::Protocol::Icmp {
            return Err(XmitError::Unsupported);
        }
        if p.ttl() <= 1 {
            return Err(XmitError::TtlExpired);
        }
        let m = icmp::Packet::new_checked(p.payload()).map_err(|_| XmitError::Unsupported)?;
        let (ty, code, rest) =
            icmp_type_to_ipv6(u8::from(m.msg_type()), m.code(), m.next_hop_mtu())
                .ok_or(XmitError::Unsupported)?;
        let q = ipv4::Packet::new_checked_quoted(m.data()).map_err(|_| XmitError::Unsupported)?;
        let qproto = u8::from(q.protocol());
        if transport_checksum_at(qproto).is_err() || q.frag_offset() != 0 {
            return Err(XmitError::Unsupported);
        }
        let transport = m
            .data()
            .get(q.header_len()..)
            .ok_or(XmitError::Unsupported)?;
        if transport.len() < 4 {
            return Err(XmitError::Unsupported);
        }
        let q_payload = usize::from(q.total_len()).saturating_sub(q.header_len());
        let head = ipv6::HEADER_LEN + icmpv6::HEADER_LEN + ipv6::HEADER_LEN;
        let copied = transport.len().min(MAX_ICMPV6_ERROR - head);
        let total = head + copied;
        let seg = &mut out[head..total];
        seg.copy_from_slice(&transport[..copied]);
        let patch = remove4(Patch::default(), q.src_addr(), q.dst_addr());
        let patch = add6(patch, quoted.0.ip, quoted.1.ip);
        patch_quoted(seg, qproto, patch, quoted.0.port, quoted.1.port);
        write_ipv6(
            &mut out[ipv6::HEADER_LEN + icmpv6::HEADER_LEN..head],
            Ipv6Fields {
                tc: q.dscp_ecn(),
                payload_len: q_payload.min(usize::from(u16::MAX)) as u16,
                next: qproto,
                hop: q.ttl(),
                src: quoted.0.ip,
                dst: quoted.1.ip,
            },
        );
        write_ipv6(
            &mut out[..ipv6::HEADER_LEN],
            Ipv6Fields {
                tc: p.dscp_ecn(),
                payload_len: (total - ipv6::HEADER_LEN) as u16,
                next: next_header::ICMPV6,
                hop: p.ttl() - 1,
                src: outer.0,
                dst: outer.1,
            },
        );
        let msg = &mut out[ipv6::HEADER_LEN..total];
        msg[0] = ty;
        msg[1] = code;
        msg[4..8].copy_from_slice(&rest.to_be_bytes());
        icmpv6::Packet::new_unchecked(msg).fill_checksum(outer.0, outer.1);
        total
    };
    let dst = ip.get_mut(..len).ok_or(XmitError::Unsupported)?;
    dst.copy_from_slice(&out[..len]);
    Ok(Translated { start: 0, len })
}

/// ICMPv6 error (type, code, MTU) → ICMPv4 (type, code, the four bytes
/// after the checksum), RFC 7915 5.2; `None`: not translated (dropped).
pub fn icmp_type_to_ipv4(ty: u8, code: u8, mtu: u32) -> Option<(u8, u8, u32)> {
    match (ty, code) {
        // Destination unreachable: no route, beyond scope, address
        // unreachable → host unreachable; administratively prohibited →
        // communication prohibited (10); port unreachable → port (3).
        (1, 0 | 2 | 3) => Some((ICMP_DST_UNREACHABLE, 1, 0)),
        (1, 1) => Some((ICMP_DST_UNREACHABLE, 10, 0)),
        (1, 4) => Some((ICMP_DST_UNREACHABLE, 3, 0)),
        // Packet too big → fragmentation needed, the MTU 20 bytes less.
        (2, _) => {
            let v4 = mtu.saturating_sub(GROWTH as u32).min(u32::from(u16::MAX));
            Some((ICMP_DST_UNREACHABLE, icmp::CODE_FRAG_NEEDED, v4))
        }
        (3, c @ (0 | 1)) => Some((ICMP_TIME_EXCEEDED, c, 0)),
        // Unrecognized next header → protocol unreachable.
        (4, 1) => Some((ICMP_DST_UNREACHABLE, 2, 0)),
        _ => None,
    }
}

/// ICMPv4 error (type, code, next-hop MTU) → ICMPv6 (type, code, the four
/// bytes after the checksum), RFC 7915 4.2; `None`: not translated.
pub fn icmp_type_to_ipv6(ty: u8, code: u8, mtu: u16) -> Option<(u8, u8, u32)> {
    const NO_ROUTE: (u8, u8, u32) = (1, 0, 0);
    const PROHIBITED: (u8, u8, u32) = (1, 1, 0);
    match (ty, code) {
        (ICMP_DST_UNREACHABLE, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => Some(NO_ROUTE),
        // Protocol unreachable → parameter problem, unrecognized next
        // header, pointing at the IPv6 next header field (offset 6).
        (ICMP_DST_UNREACHABLE, 2) => Some((4, 1, 6)),
        (ICMP_DST_UNREACHABLE, 3) => Some((1, 4, 0)),
        // Fragmentation needed → packet too big, the MTU 20 bytes more,
        // never below IPv6's minimum (an old router's zero included).
        (ICMP_DST_UNREACHABLE, 4) => {
            let v6 = (u32::from(mtu) + GROWTH as u32).max(ipv6::MIN_MTU as u32);
            Some((2, 0, v6))
        }
        (ICMP_DST_UNREACHABLE, 9 | 10 | 13 | 15) => Some(PROHIBITED),
        (ICMP_TIME_EXCEEDED, c @ (0 | 1)) => Some((3, c, 0)),
        _ => None,
    }
}

/// The offset of the checksum in a TCP or UDP header; `Unsupported` for
/// another protocol.
fn transport_checksum_at(proto: u8) -> Result<usize, XmitError> {
    match proto {
        next_header::TCP => Ok(16),
        next_header::UDP => Ok(6),
        _ => Err(XmitError::Unsupported),
    }
}

/// The shortest whole transport header of `proto` (TCP or UDP).
fn min_transport_len(proto: u8) -> usize {
    if proto == next_header::TCP {
        20
    } else {
        8
    }
}

/// A UDP checksum that came out zero is written as 0xFFFF (zero is "no
/// checksum").
fn udp_nonzero(proto: u8, ck: u16) -> u16 {
    if ck == 0 && proto == next_header::UDP {
        0xffff
    } else {
        ck
    }
}

/// Takes an IPv6 pseudo-header's two addresses out of `patch`.
fn remove6(patch: Patch, src: Ipv6Addr, dst: Ipv6Addr) -> Patch {
    let p = ipv6::addr_patch(patch, src, Ipv6Addr::UNSPECIFIED);
    ipv6::addr_patch(p, dst, Ipv6Addr::UNSPECIFIED)
}

/// Adds an IPv6 pseudo-header's two addresses to `patch`.
fn add6(patch: Patch, src: Ipv6Addr, dst: Ipv6Addr) -> Patch {
    let p = ipv6::addr_patch(patch, Ipv6Addr::UNSPECIFIED, src);
    ipv6::addr_patch(p, Ipv6Addr::UNSPECIFIED, dst)
}

/// Takes an IPv4 pseudo-header's two addresses out of `patch`.
fn remove4(patch: Patch, src: Ipv4Addr, dst: Ipv4Addr) -> Patch {
    patch.dword(src.into(), 0).dword(dst.into(), 0)
}

/// Adds an IPv4 pseudo-header's two addresses to `patch`.
fn add4(patch: Patch, src: Ipv4Addr, dst: Ipv4Addr) -> Patch {
    patch.dword(0, src.into()).dword(0, dst.into())
}

/// Writes the ports of the transport header `seg` and adds their change
/// to `patch`.
fn ports(seg: &mut [u8], patch: Patch, src: u16, dst: u16) -> Patch {
    let patch = patch.word(get_u16(seg, 0), src).word(get_u16(seg, 2), dst);
    put_u16(seg, 0, src);
    put_u16(seg, 2, dst);
    patch
}

/// The quoted transport header `seg` (cut anywhere after its ports): the
/// ports written, the checksum patched when the quote reaches it (a UDP
/// zero, no checksum, stays).
fn patch_quoted(seg: &mut [u8], proto: u8, patch: Patch, src: u16, dst: u16) {
    let patch = ports(seg, patch, src, dst);
    let Ok(at) = transport_checksum_at(proto) else {
        return;
    };
    if seg.len() >= at + 2 {
        let old = get_u16(seg, at);
        if !(proto == next_header::UDP && old == 0) {
            put_u16(seg, at, udp_nonzero(proto, patch.apply(old)));
        }
    }
}

/// The fields of an IPv4 header without options.
struct Ipv4Fields {
    tos: u8,
    total: u16,
    ident: u16,
    df: bool,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

/// Writes a 20-byte IPv4 header with its checksum into `h`.
fn write_ipv4(h: &mut [u8], f: Ipv4Fields) {
    h[0] = 0x45;
    h[1] = f.tos;
    put_u16(h, 2, f.total);
    put_u16(h, 4, f.ident);
    put_u16(h, 6, if f.df { 0x4000 } else { 0 });
    h[8] = f.ttl;
    h[9] = f.proto;
    put_u16(h, 10, 0);
    h[12..16].copy_from_slice(&f.src.octets());
    h[16..20].copy_from_slice(&f.dst.octets());
    let ck = checksum::checksum(&h[..ipv4::MIN_HEADER_LEN]);
    put_u16(h, 10, ck);
}

/// The fields of an IPv6 fixed header (flow label zero: RFC 7915 4.1).
struct Ipv6Fields {
    tc: u8,
    payload_len: u16,
    next: u8,
    hop: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
}

/// Writes a 40-byte IPv6 fixed header into `h`.
fn write_ipv6(h: &mut [u8], f: Ipv6Fields) {
    let first = 0x6000_0000u32 | (u32::from(f.tc) << 20);
    h[0..4].copy_from_slice(&first.to_be_bytes());
    put_u16(h, 4, f.payload_len);
    h[6] = f.next;
    h[7] = f.hop;
    h[8..24].copy_from_slice(&f.src.octets());
    h[24..40].copy_from_slice(&f.dst.octets());
}

#[cfg(test)]
mod tests;
