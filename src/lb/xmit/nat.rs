//! NAT (IPVS's masquerading): the destination of client packets becomes the
//! chosen real server, the source of its replies becomes the virtual
//! service again, and ICMP errors about such a connection are translated
//! in both the outer header and the header they quote, so path MTU
//! discovery works through the balancer.
//!
//! Checksums change incrementally: the IPv4 header for the address and
//! TTL, the TCP/UDP checksum for the address (it is in the pseudo-header)
//! and the port. A UDP checksum of zero ("none") stays zero.

use super::{Endpoint, XmitError};
use crate::wire::{checksum, get_u16, get_u32, ipv4, put_u16, tcp, udp};
use std::net::Ipv4Addr;

/// Which end of the packet to rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source address and port.
    Src,
    /// The destination address and port.
    Dst,
}

const IP_CHECKSUM: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;
const IP_TTL: usize = 8;

/// Client → VIP:VPORT becomes client → RIP:RPORT, TTL - 1.
pub fn to_real_server(ip: &mut [u8], real: Endpoint) -> Result<(), XmitError> {
    decrement_ttl(ip)?;
    rewrite(ip, Side::Dst, real)
}

/// RIP:RPORT → client becomes VIP:VPORT → client, TTL - 1.
pub fn from_real_server(ip: &mut [u8], service: Endpoint) -> Result<(), XmitError> {
    decrement_ttl(ip)?;
    rewrite(ip, Side::Src, service)
}

/// Decrements the TTL with an incremental header checksum update; a
/// packet arriving with TTL 0 or 1 is not forwarded.
pub fn decrement_ttl(ip: &mut [u8]) -> Result<(), XmitError> {
    if ip[IP_TTL] <= 1 {
        return Err(XmitError::TtlExpired);
    }
    ipv4::Packet::new_unchecked(ip).decrement_ttl();
    Ok(())
}

/// Offset of the L4 checksum and whether it is UDP's (zero = none).
fn l4_checksum_at(protocol: u8, l4_len: usize) -> Option<(usize, bool)> {
    match protocol {
        6 if l4_len >= tcp::MIN_HEADER_LEN => Some((tcp::CHECKSUM_OFFSET, false)),
        17 if l4_len >= udp::HEADER_LEN => Some((udp::CHECKSUM_OFFSET, true)),
        _ => None,
    }
}

/// Rewrites one side's address and port, patching the IPv4 header
/// checksum and the TCP/UDP checksum.
pub fn rewrite(ip: &mut [u8], side: Side, to: Endpoint) -> Result<(), XmitError> {
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(get_u16(ip, 2)).min(ip.len());
    let (addr_at, port_off) = match side {
        Side::Src => (IP_SRC, 0),
        Side::Dst => (IP_DST, 2),
    };
    let Some((ck_off, is_udp)) = l4_checksum_at(ip[9], total.saturating_sub(hl)) else {
        return Err(XmitError::Unsupported);
    };
    let old_addr = get_u32(ip, addr_at);
    let new_addr = u32::from(to.ip);
    let old_port = get_u16(ip, hl + port_off);

    // IPv4 header: the address.
    let ck = checksum::update_u32(get_u16(ip, IP_CHECKSUM), old_addr, new_addr);
    put_u16(ip, IP_CHECKSUM, ck);
    ip[addr_at..addr_at + 4].copy_from_slice(&to.ip.octets());

    // Transport: the address (pseudo-header) and the port.
    let l4 = &mut ip[hl..];
    let old_ck = get_u16(l4, ck_off);
    let ck = if is_udp {
        let ck = udp::update_checksum_u32(old_ck, old_addr, new_addr);
        udp::update_checksum(ck, old_port, to.port)
    } else {
        let ck = checksum::update_u32(old_ck, old_addr, new_addr);
        checksum::update_u16(ck, old_port, to.port)
    };
    put_u16(l4, ck_off, ck);
    put_u16(l4, port_off, to.port);
    Ok(())
}

/// Translates an ICMP error about a NAT'd connection.
///
/// `outer` rewrites the error's own source or destination address (toward
/// the client: the source becomes the VIP; toward a real server: the
/// destination becomes the RIP). `quoted` rewrites the quoted packet's
/// address and port on the opposite side of the flow's direction: the
/// quoted packet travelled the other way, so its destination is what the
/// client sent to, or its source is what the real server replied from.
/// The quoted IPv4 and transport checksums are patched where they were
/// quoted, then the ICMP checksum is recomputed over the whole message
/// (it covers everything that changed), and the outer TTL decremented.
pub fn translate_icmp_error(
    ip: &mut [u8],
    outer: (Side, Ipv4Addr),
    quoted: (Side, Endpoint),
) -> Result<(), XmitError> {
    decrement_ttl(ip)?;
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(get_u16(ip, 2)).min(ip.len());

    // Outer address, with the outer header checksum.
    let at = match outer.0 {
        Side::Src => IP_SRC,
        Side::Dst => IP_DST,
    };
    let old = get_u32(ip, at);
    let ck = checksum::update_u32(get_u16(ip, IP_CHECKSUM), old, u32::from(outer.1));
    put_u16(ip, IP_CHECKSUM, ck);
    ip[at..at + 4].copy_from_slice(&outer.1.octets());

    // The quoted packet: after the 8-byte ICMP header.
    let icmp = &mut ip[hl..total];
    if icmp.len() < 8 {
        return Err(XmitError::Unsupported);
    }
    let inner = &mut icmp[8..];
    let Ok(q) = ipv4::Packet::new_checked_quoted(&*inner) else {
        return Err(XmitError::Unsupported);
    };
    let qhl = q.header_len();
    let protocol = u8::from(q.protocol());
    let quoted_l4_len = inner.len() - qhl;
    let (addr_at, port_off) = match quoted.0 {
        Side::Src => (IP_SRC, 0),
        Side::Dst => (IP_DST, 2),
    };
    let old_addr = get_u32(inner, addr_at);
    let new_addr = u32::from(quoted.1.ip);
    let ck = checksum::update_u32(get_u16(inner, IP_CHECKSUM), old_addr, new_addr);
    put_u16(inner, IP_CHECKSUM, ck);
    inner[addr_at..addr_at + 4].copy_from_slice(&quoted.1.ip.octets());
    let old_port = get_u16(inner, qhl + port_off);
    put_u16(inner, qhl + port_off, quoted.1.port);
    // The quoted transport checksum, when the quote reaches it.
    if let Some((ck_off, is_udp)) = l4_checksum_at(protocol, quoted_l4_len) {
        let l4 = &mut inner[qhl..];
        let old_ck = get_u16(l4, ck_off);
        let ck = if is_udp {
            let ck = udp::update_checksum_u32(old_ck, old_addr, new_addr);
            udp::update_checksum(ck, old_port, quoted.1.port)
        } else {
            let ck = checksum::update_u32(old_ck, old_addr, new_addr);
            checksum::update_u16(ck, old_port, quoted.1.port)
        };
        put_u16(l4, ck_off, ck);
    } else if !matches!(protocol, 6 | 17) {
        return Err(XmitError::Unsupported);
    }

    // The ICMP checksum over the whole message.
    put_u16(icmp, 2, 0);
    let ck = checksum::checksum(icmp);
    put_u16(icmp, 2, ck);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
    const RIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);

    /// RFC 1071, independently of `wire::checksum` (see `crate::testutil`).
    fn csum(data: &[u8]) -> u16 {
        crate::testutil::rfc1071(data)
    }

    fn l4_sum_ok(ip: &[u8]) -> bool {
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let l4 = &ip[hl..total];
        if ip[9] == 17 && l4[6] == 0 && l4[7] == 0 {
            return true;
        }
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, ip[9]]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(l4);
        csum(&pseudo) == 0
    }

    /// A TCP or UDP packet with valid checksums.
    fn packet(proto: u8, src: Endpoint, dst: Endpoint, payload: &[u8], ttl: u8) -> Vec<u8> {
        let l4_len = if proto == 6 { 20 } else { 8 } + payload.len();
        let total = (20 + l4_len) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0x40, 0, ttl, proto, 0, 0]);
        p.extend_from_slice(&src.ip.octets());
        p.extend_from_slice(&dst.ip.octets());
        let ck = csum(&p);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        let mut l4 = Vec::new();
        l4.extend_from_slice(&src.port.to_be_bytes());
        l4.extend_from_slice(&dst.port.to_be_bytes());
        if proto == 6 {
            l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            l4.extend_from_slice(&(l4_len as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        }
        l4.extend_from_slice(payload);
        p.extend_from_slice(&l4);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
        pseudo.extend_from_slice(&l4);
        let mut ck = csum(&pseudo);
        if proto == 17 && ck == 0 {
            ck = 0xffff;
        }
        let at = 20 + if proto == 6 { 16 } else { 6 };
        p[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        p
    }

    fn ep(ip: Ipv4Addr, port: u16) -> Endpoint {
        Endpoint::new(ip, port)
    }

    #[test]
    fn tcp_to_real_server_rewrites_destination_and_ttl() {
        let mut p = packet(6, ep(CLIENT, 40000), ep(VIP, 80), b"GET /", 64);
        to_real_server(&mut p, ep(RIP, 8080)).unwrap();
        assert_eq!(&p[16..20], &RIP.octets());
        assert_eq!(&p[22..24], &8080u16.to_be_bytes());
        assert_eq!(&p[12..16], &CLIENT.octets(), "source untouched");
        assert_eq!(p[8], 63);
        assert_eq!(csum(&p[..20]), 0);
        assert!(l4_sum_ok(&p));
        assert_eq!(&p[40..], b"GET /", "payload untouched");
    }

    #[test]
    fn tcp_reply_from_real_server_leaves_as_the_service() {
        let mut p = packet(6, ep(RIP, 8080), ep(CLIENT, 40000), b"200 OK", 64);
        from_real_server(&mut p, ep(VIP, 80)).unwrap();
        assert_eq!(&p[12..16], &VIP.octets());
        assert_eq!(&p[20..22], &80u16.to_be_bytes());
        assert_eq!(csum(&p[..20]), 0);
        assert!(l4_sum_ok(&p));
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut p = packet(17, ep(CLIENT, 5353), ep(VIP, 53), b"q", 64);
        p[26] = 0;
        p[27] = 0;
        to_real_server(&mut p, ep(RIP, 5353)).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);
        assert_eq!(csum(&p[..20]), 0);
    }

    #[test]
    fn ttl_one_is_not_forwarded() {
        let mut p = packet(6, ep(CLIENT, 40000), ep(VIP, 80), b"", 1);
        let before = p.clone();
        assert_eq!(
            to_real_server(&mut p, ep(RIP, 80)),
            Err(XmitError::TtlExpired)
        );
        assert_eq!(p, before, "untouched");
    }

    #[test]
    fn other_protocols_are_unsupported() {
        let mut p = packet(6, ep(CLIENT, 1), ep(VIP, 2), b"", 64);
        p[9] = 47;
        assert_eq!(
            rewrite(&mut p, Side::Dst, ep(RIP, 2)),
            Err(XmitError::Unsupported)
        );
    }

    /// An ICMP error from `from` to `to` quoting `quoted` (cut to `quote` bytes).
    fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, quoted: &[u8], quote: usize) -> Vec<u8> {
        let q = &quoted[..quote.min(quoted.len())];
        let total = (20 + 8 + q.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 2, 0, 0, 64, 1, 0, 0]);
        p.extend_from_slice(&from.octets());
        p.extend_from_slice(&to.octets());
        let ck = csum(&p);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78]; // frag needed, MTU 1400
        icmp.extend_from_slice(q);
        let ck = csum(&icmp);
        icmp[2..4].copy_from_slice(&ck.to_be_bytes());
        p.extend_from_slice(&icmp);
        p
    }

    #[test]
    fn icmp_error_from_the_server_side_is_translated_for_the_client() {
        // The client sent CLIENT:40000 -> VIP:80, rvs forwarded it as
        // CLIENT:40000 -> RIP:8080, and a router on the server side says
        // "fragmentation needed" about that forwarded packet.
        let forwarded = packet(6, ep(CLIENT, 40000), ep(RIP, 8080), &[0; 100], 63);
        let router = Ipv4Addr::new(10, 1, 0, 254);
        let mut p = icmp_error(router, CLIENT, &forwarded, forwarded.len());
        translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 80))).unwrap();
        assert_eq!(&p[12..16], &VIP.octets(), "outer source is the VIP");
        assert_eq!(csum(&p[..20]), 0, "outer header checksum");
        assert_eq!(csum(&p[20..]), 0, "ICMP checksum");
        let inner = &p[28..];
        assert_eq!(&inner[16..20], &VIP.octets(), "quoted destination");
        assert_eq!(&inner[22..24], &80u16.to_be_bytes(), "quoted port");
        assert_eq!(csum(&inner[..20]), 0, "quoted header checksum");
        assert!(l4_sum_ok(inner), "quoted TCP checksum");
        assert_eq!(&p[26..28], &[0x05, 0x78], "MTU kept");
    }

    #[test]
    fn icmp_error_from_the_client_side_is_translated_for_the_server() {
        // The reply VIP:80 -> CLIENT:40000 drew an error from the client's
        // side; it goes to the real server as if its own packet had.
        let reply = packet(6, ep(VIP, 80), ep(CLIENT, 40000), &[0; 40], 63);
        let mut p = icmp_error(Ipv4Addr::new(198, 51, 100, 1), VIP, &reply, 28);
        translate_icmp_error(&mut p, (Side::Dst, RIP), (Side::Src, ep(RIP, 8080))).unwrap();
        assert_eq!(&p[16..20], &RIP.octets());
        let inner = &p[28..];
        assert_eq!(&inner[12..16], &RIP.octets());
        assert_eq!(&inner[20..22], &8080u16.to_be_bytes());
        assert_eq!(csum(&inner[..20]), 0);
        assert_eq!(csum(&p[20..]), 0);
    }

    proptest! {
        #[test]
        fn rewrites_keep_every_checksum_valid(
            udp in any::<bool>(),
            sport in any::<u16>(), dport in any::<u16>(), new_port in any::<u16>(),
            new_ip in any::<u32>(), ttl in 2u8..,
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src_side in any::<bool>(),
        ) {
            let proto = if udp { 17 } else { 6 };
            let mut p = packet(proto, ep(CLIENT, sport), ep(VIP, dport), &payload, ttl);
            let to = ep(Ipv4Addr::from(new_ip), new_port);
            if src_side { from_real_server(&mut p, to).unwrap(); } else { to_real_server(&mut p, to).unwrap(); }
            prop_assert_eq!(csum(&p[..20]), 0);
            prop_assert!(l4_sum_ok(&p));
            prop_assert_eq!(p[8], ttl - 1);
            if udp { prop_assert!(p[26] != 0 || p[27] != 0, "UDP checksum never becomes 'none'"); }
        }

        #[test]
        fn icmp_translation_never_panics(
            quote in 0usize..80, garbage in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut inner = packet(17, ep(CLIENT, 1), ep(RIP, 2), &[1, 2, 3], 63);
            inner.extend_from_slice(&garbage);
            let mut p = icmp_error(RIP, CLIENT, &inner, quote);
            let _ = translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 53)));
        }
    }
}
