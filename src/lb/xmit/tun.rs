//! TUN (IPIP, RFC 2003): the client's packet, unchanged, inside a new IPv4
//! header from the balancer to the real server, which decapsulates it and
//! answers the client directly (as in DR, the VIP is on its loopback).
//!
//! The outer header takes its source from the route towards the real
//! server, TTL 64, the inner TOS, and DF copied from the inner header.
//! A packet whose encapsulation would exceed the MTU and that may not be
//! fragmented is answered with ICMP "fragmentation needed" carrying the
//! inner MTU (MTU - 20), as IPVS does, so the client's path MTU discovery
//! shrinks its segments.

use super::XmitError;
use crate::wire::{icmp, ipv4};
use std::net::Ipv4Addr;

/// Bytes the outer header adds.
pub const OVERHEAD: usize = ipv4::MIN_HEADER_LEN;

/// TTL of the outer header.
pub const OUTER_TTL: u8 = 64;

/// TTL of ICMP errors rvs originates.
pub const ICMP_TTL: u8 = 64;

/// Whether `inner` (an IPv4 packet) fits an `mtu` once encapsulated;
/// `Err(TooBig)` with the inner MTU to report when it does not, and
/// `Err(Unsupported)` for bytes that are not an IPv4 packet.
pub fn check_fits(inner: &[u8], mtu: u16) -> Result<(), XmitError> {
    let inner = ipv4::Packet::new_checked(inner).map_err(|_| XmitError::Unsupported)?;
    if usize::from(inner.total_len()) + OVERHEAD > usize::from(mtu) {
        return Err(XmitError::TooBig {
            mtu: mtu.saturating_sub(OVERHEAD as u16),
        });
    }
    Ok(())
}

/// True when the inner packet forbids fragmentation (DF): a too-big one
/// is answered with ICMP; without DF the outer packet is fragmented, as a
/// router (and IPVS) would. False for bytes that are not an IPv4 packet.
pub fn dont_fragment(inner: &[u8]) -> bool {
    ipv4::Packet::new_checked(inner).is_ok_and(|p| p.dont_frag())
}

/// Payload bytes per outer fragment for `mtu`: what fits after the outer
/// header, rounded down to the 8-byte unit fragment offsets count in.
pub fn fragment_payload(mtu: u16) -> usize {
    let room = usize::from(mtu).saturating_sub(OVERHEAD);
    room - room % ipv4::FRAG_UNIT
}

/// Turns an outer IPv4 header (20 bytes, no options) into the header of a
/// fragment carrying `payload_len` bytes at byte `offset` of the outer
/// payload, with More Fragments set when `more`; recomputes its checksum.
/// `outer` may be the header alone or the whole fragment. Bytes that do
/// not start with an IPv4 header, and a length or offset the header
/// cannot hold, are left untouched.
pub fn set_fragment(outer: &mut [u8], payload_len: usize, offset: usize, more: bool) {
    let Ok(mut p) = ipv4::Packet::new_checked_header(outer) else {
        return;
    };
    let total = p.header_len().checked_add(payload_len);
    let total = total.and_then(|t| u16::try_from(t).ok());
    let (Some(total), Ok(offset)) = (total, u16::try_from(offset)) else {
        return;
    };
    p.set_total_len(total);
    p.set_fragment(offset, more);
    p.fill_checksum();
}

/// Writes the outer header into the first [`OVERHEAD`] bytes of `buf`,
/// which holds the inner packet right after them. Left untouched when
/// what follows is not an IPv4 packet, or is too long to encapsulate.
pub fn encapsulate(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, ident: u16) {
    if buf.len() < OVERHEAD {
        return;
    }
    let (outer, inner) = buf.split_at_mut(OVERHEAD);
    let Ok(inner) = ipv4::Packet::new_checked(&*inner) else {
        return;
    };
    let Some(total) = inner.total_len().checked_add(OVERHEAD as u16) else {
        return;
    };
    let Ok(mut p) = ipv4::Packet::init_header(outer) else {
        return;
    };
    p.set_dscp_ecn(inner.dscp_ecn());
    p.set_total_len(total);
    p.set_ident(ident);
    p.set_unfragmented(inner.dont_frag());
    p.set_ttl(OUTER_TTL);
    p.set_protocol(ipv4::Protocol::IpIp);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
}

/// Bytes an ICMP error adds in front of what it quotes.
pub const ICMP_ERROR_OVERHEAD: usize = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN;

/// The size every IPv4 host must accept (RFC 791), which bounds the ICMP
/// errors rvs sends.
const MIN_REASSEMBLY: usize = 576;

/// Most of the offending packet an ICMP error quotes (RFC 1812 4.3.2.3:
/// as much as fits in 576 bytes).
pub const MAX_QUOTE: usize = MIN_REASSEMBLY - ICMP_ERROR_OVERHEAD;

/// Builds an ICMP "fragmentation needed" (type 3, code 4, RFC 1191) in
/// `buf`: its first [`ICMP_ERROR_OVERHEAD`] bytes become the IPv4 and ICMP
/// headers, the rest (`buf[28..]`, already cut to at most [`MAX_QUOTE`])
/// is the quoted packet. The error goes from `src` to the offending
/// packet's source. Left untouched when the quote does not start with a
/// whole IPv4 header, or `buf` is longer than an IPv4 packet can be.
pub fn frag_needed(buf: &mut [u8], src: Ipv4Addr, mtu: u16, ident: u16) {
    if buf.len() < ICMP_ERROR_OVERHEAD {
        return;
    }
    let Ok(total) = u16::try_from(buf.len()) else {
        return;
    };
    let (ip, message) = buf.split_at_mut(ipv4::MIN_HEADER_LEN);
    let Some(quoted) = message.get(icmp::HEADER_LEN..) else {
        return;
    };
    let Ok(offender) = ipv4::Packet::new_checked_header(quoted) else {
        return;
    };
    let to = offender.src_addr();
    let Ok(mut p) = ipv4::Packet::init_header(ip) else {
        return;
    };
    p.set_total_len(total);
    p.set_ident(ident);
    p.set_ttl(ICMP_TTL);
    p.set_protocol(ipv4::Protocol::Icmp);
    p.set_src_addr(src);
    p.set_dst_addr(to);
    p.fill_checksum();
    let Ok(mut msg) = icmp::Packet::new_checked(message) else {
        return;
    };
    msg.set_msg_type(icmp::Message::DstUnreachable);
    msg.set_code(icmp::CODE_FRAG_NEEDED);
    msg.set_next_hop_mtu(mtu);
    msg.fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071, independently of `wire::checksum` (see `crate::testutil`).
    fn csum(data: &[u8]) -> u16 {
        crate::testutil::rfc1071(data)
    }

    fn inner(len: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[1] = 0x10;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[6] = if df { 0x40 } else { 0 };
        p[8] = 57;
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 51, 100, 7]);
        p[16..20].copy_from_slice(&[203, 0, 113, 100]);
        let ck = csum(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        p
    }

    #[test]
    fn outer_header_wraps_the_packet_unchanged() {
        let pkt = inner(60, true);
        let mut buf = vec![0u8; OVERHEAD];
        buf.extend_from_slice(&pkt);
        encapsulate(
            &mut buf,
            Ipv4Addr::new(10, 1, 0, 1),
            Ipv4Addr::new(10, 2, 0, 11),
            7,
        );
        assert_eq!(&buf[20..], &pkt[..], "inner untouched");
        assert_eq!(buf[0], 0x45);
        assert_eq!(buf[1], 0x10, "TOS copied");
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 80);
        assert_eq!(buf[6], 0x40, "DF copied");
        assert_eq!(buf[8], 64);
        assert_eq!(buf[9], 4, "IPIP");
        assert_eq!(&buf[12..16], &[10, 1, 0, 1]);
        assert_eq!(&buf[16..20], &[10, 2, 0, 11]);
        assert_eq!(csum(&buf[..20]), 0);
    }

    #[test]
    fn df_clear_stays_clear() {
        let mut buf = vec![0u8; OVERHEAD];
        buf.extend_from_slice(&inner(40, false));
        encapsulate(
            &mut buf,
            Ipv4Addr::new(10, 1, 0, 1),
            Ipv4Addr::new(10, 2, 0, 11),
            7,
        );
        assert_eq!(buf[6], 0);
    }

    #[test]
    fn fragments_carry_offsets_in_eight_byte_units() {
        assert_eq!(fragment_payload(1500), 1480);
        assert_eq!(fragment_payload(1000), 976);
        let mut buf = vec![0u8; OVERHEAD];
        buf.extend_from_slice(&inner(1600, false));
        encapsulate(
            &mut buf,
            Ipv4Addr::new(10, 1, 0, 1),
            Ipv4Addr::new(10, 2, 0, 11),
            7,
        );
        assert!(!dont_fragment(&buf[OVERHEAD..]));
        let mut second = buf[..OVERHEAD].to_vec();
        set_fragment(&mut buf[..OVERHEAD], 1480, 0, true);
        set_fragment(&mut second, 120, 1480, false);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 1500);
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 0x2000, "MF, offset 0");
        assert_eq!(u16::from_be_bytes([second[2], second[3]]), 140);
        assert_eq!(
            u16::from_be_bytes([second[6], second[7]]),
            185,
            "offset 1480/8"
        );
        assert_eq!(csum(&buf[..20]), 0);
        assert_eq!(csum(&second[..20]), 0);
    }

    #[test]
    fn too_big_reports_the_inner_mtu() {
        assert_eq!(check_fits(&inner(1480, true), 1500), Ok(()));
        assert_eq!(
            check_fits(&inner(1481, true), 1500),
            Err(XmitError::TooBig { mtu: 1480 })
        );
    }

    #[test]
    fn bytes_that_are_not_ipv4_are_neither_fitted_nor_wrapped() {
        let junk = [0x60u8; 40];
        assert_eq!(check_fits(&junk, 1500), Err(XmitError::Unsupported));
        assert!(!dont_fragment(&junk));
        assert!(!dont_fragment(&[]));
        let mut buf = vec![0xaau8; OVERHEAD];
        buf.extend_from_slice(&junk);
        let before = buf.clone();
        encapsulate(
            &mut buf,
            Ipv4Addr::new(10, 1, 0, 1),
            Ipv4Addr::new(10, 2, 0, 11),
            7,
        );
        assert_eq!(buf, before);
        encapsulate(
            &mut buf[..19],
            Ipv4Addr::new(10, 1, 0, 1),
            Ipv4Addr::new(10, 2, 0, 11),
            7,
        );
        set_fragment(&mut buf[..OVERHEAD], 100, 0, true);
        assert_eq!(buf, before);
    }

    #[test]
    fn frag_needed_without_a_quoted_header_writes_nothing() {
        let mut buf = vec![0u8; ICMP_ERROR_OVERHEAD + 19];
        frag_needed(&mut buf, Ipv4Addr::new(203, 0, 113, 2), 1480, 9);
        assert!(buf.iter().all(|&b| b == 0));
        frag_needed(&mut [0u8; 27], Ipv4Addr::new(203, 0, 113, 2), 1480, 9);
    }

    #[test]
    fn frag_needed_goes_back_to_the_sender_with_the_mtu() {
        let pkt = inner(1500, true);
        let mut buf = vec![0u8; ICMP_ERROR_OVERHEAD];
        buf.extend_from_slice(&pkt[..MAX_QUOTE]);
        frag_needed(&mut buf, Ipv4Addr::new(203, 0, 113, 2), 1480, 9);
        assert_eq!(buf.len(), 576);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 576);
        assert_eq!(&buf[16..20], &[198, 51, 100, 7], "to the client");
        assert_eq!(csum(&buf[..20]), 0);
        assert_eq!((buf[20], buf[21]), (3, 4));
        assert_eq!(u16::from_be_bytes([buf[26], buf[27]]), 1480);
        assert_eq!(csum(&buf[20..]), 0);
        assert_eq!(&buf[28..48], &pkt[..20], "quotes the header");
    }
}
