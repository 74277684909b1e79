//! FullNAT: both ends of the packet are rewritten, so a real server sees
//! the balancer's local address (LIP) as its peer and needs no route back
//! through rvs.
//!
//! - client:CPORT → VIP:VPORT becomes LIP:LPORT → RIP:RPORT
//!   ([`to_real_server`]);
//! - RIP:RPORT → LIP:LPORT becomes VIP:VPORT → client:CPORT
//!   ([`to_client`]).
//!
//! Both follow from the connection's two keys (original client → VIP,
//! reply RIP → LIP), so a connection needs nothing more than NAT's.
//! Checksums change incrementally, as NAT's: the IPv4 header for both
//! addresses and the TTL, the TCP/UDP checksum for both pseudo-header
//! addresses and both ports; a UDP checksum of zero stays zero.
//!
//! MSS: the rewrite changes no header's length, so a packet leaves exactly
//! as long as it came and the MSS the ends announce holds; nothing is
//! clamped. (An option that grows the client's segments, such as TOA,
//! must clamp the MSS where it is inserted.)
//!
//! ICMP errors ([`translate_icmp_error`]) are translated in their outer
//! header and in the packet they quote, both ends each: an error from the
//! inside quoting LIP:LPORT → RIP:RPORT reaches the client from the VIP
//! quoting client → VIP; one from the outside quoting VIP → client reaches
//! the real server from the LIP quoting RIP → LIP.
//!
//! Fragments: a first fragment is rewritten like a whole packet (its
//! transport checksum covers the whole datagram, patched incrementally);
//! later ones carry no ports and only their two addresses change
//! ([`fragment`]).

use super::{Endpoint, XmitError};
use crate::wire::{icmp, ipv4, tcp, udp};
use std::net::Ipv4Addr;

/// Client → VIP:VPORT becomes `local` → `real`, TTL - 1.
pub fn to_real_server(ip: &mut [u8], local: Endpoint, real: Endpoint) -> Result<(), XmitError> {
    forward(ip, local, real)
}

/// RIP:RPORT → LIP:LPORT becomes `vip` → `client`, TTL - 1.
pub fn to_client(ip: &mut [u8], vip: Endpoint, client: Endpoint) -> Result<(), XmitError> {
    forward(ip, vip, client)
}

/// Rewrites both ends to `src` → `dst` and decrements the TTL; on any
/// error the packet is left as it was.
fn forward(ip: &mut [u8], src: Endpoint, dst: Endpoint) -> Result<(), XmitError> {
    let mut p = ipv4::Packet::new_checked(ip).map_err(|_| XmitError::Unsupported)?;
    if p.ttl() <= 1 {
        return Err(XmitError::TtlExpired);
    }
    if p.frag_offset() != 0 {
        return Err(XmitError::Unsupported);
    }
    let old = (p.src_addr(), p.dst_addr());
    let protocol = p.protocol();
    let first_fragment = p.more_frags();
    let l4 = p.payload_mut();
    match protocol {
        ipv4::Protocol::Tcp => {
            let mut t = tcp::Packet::new_checked(l4).map_err(|_| XmitError::Unsupported)?;
            t.set_src_port_and_addr_patched(src.port, (old.0, src.ip));
            t.set_dst_port_and_addr_patched(dst.port, (old.1, dst.ip));
        }
        ipv4::Protocol::Udp => {
            let u = if first_fragment {
                udp::Packet::new_checked_quoted(l4)
            } else {
                udp::Packet::new_checked(l4)
            };
            let mut u = u.map_err(|_| XmitError::Unsupported)?;
            rewrite_udp(&mut u, old, src, dst);
        }
        _ => return Err(XmitError::Unsupported),
    }
    p.set_src_addr_patched(src.ip);
    p.set_dst_addr_and_decrement_ttl(dst.ip);
    Ok(())
}

fn rewrite_udp(
    u: &mut udp::Packet<&mut [u8]>,
    old: (Ipv4Addr, Ipv4Addr),
    src: Endpoint,
    dst: Endpoint,
) {
    u.patch_pseudo_addr(old.0, src.ip);
    u.patch_pseudo_addr(old.1, dst.ip);
    u.set_src_port_patched(src.port);
    u.set_dst_port_patched(dst.port);
}

/// A later fragment (offset > 0) of a FullNAT datagram: its addresses
/// become `src` → `dst`, TTL - 1 (the transport header was rewritten in
/// the first fragment). A whole packet or a first fragment is
/// `Unsupported` and left untouched.
pub fn fragment(ip: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<(), XmitError> {
    let mut p = ipv4::Packet::new_checked(ip).map_err(|_| XmitError::Unsupported)?;
    if p.ttl() <= 1 {
        return Err(XmitError::TtlExpired);
    }
    if p.frag_offset() == 0 {
        return Err(XmitError::Unsupported);
    }
    p.set_src_addr_patched(src);
    p.set_dst_addr_and_decrement_ttl(dst);
    Ok(())
}

/// Translates an ICMP error about a FullNAT connection: the error's own
/// addresses become `outer` (source, destination), the quoted packet's
/// ends become `quoted` (source, destination), with the quoted IPv4 and
/// transport checksums patched where they were quoted, the ICMP checksum
/// recomputed and the TTL decremented.
///
/// `TtlExpired` for TTL 0 or 1; `Unsupported` when the bytes are not an
/// IPv4 packet carrying an ICMP header that quotes an IPv4 header and the
/// 8 bytes of TCP or UDP after it. Either way the packet is untouched.
pub fn translate_icmp_error(
    ip: &mut [u8],
    outer: (Ipv4Addr, Ipv4Addr),
    quoted: (Endpoint, Endpoint),
) -> Result<(), XmitError> {
    let mut p = ipv4::Packet::new_checked(ip).map_err(|_| XmitError::Unsupported)?;
    if p.ttl() <= 1 {
        return Err(XmitError::TtlExpired);
    }
    if p.protocol() != ipv4::Protocol::Icmp {
        return Err(XmitError::Unsupported);
    }
    {
        let mut msg =
            icmp::Packet::new_checked(p.payload_mut()).map_err(|_| XmitError::Unsupported)?;
        {
            let mut q = ipv4::Packet::new_checked_quoted(msg.data_mut())
                .map_err(|_| XmitError::Unsupported)?;
            let old = (q.src_addr(), q.dst_addr());
            let (src, dst) = quoted;
            let protocol = q.protocol();
            let l4 = q.payload_mut();
            match protocol {
                ipv4::Protocol::Tcp => {
                    let mut t = tcp::Quoted::new_checked(l4).map_err(|_| XmitError::Unsupported)?;
                    t.patch_pseudo_addr(old.0, src.ip);
                    t.patch_pseudo_addr(old.1, dst.ip);
                    t.set_src_port_patched(src.port);
                    t.set_dst_port_patched(dst.port);
                }
                ipv4::Protocol::Udp => {
                    let mut u =
                        udp::Packet::new_checked_quoted(l4).map_err(|_| XmitError::Unsupported)?;
                    rewrite_udp(&mut u, old, src, dst);
                }
                _ => return Err(XmitError::Unsupported),
            }
            q.set_src_addr_patched(src.ip);
            q.set_dst_addr_patched(dst.ip);
        }
        msg.fill_checksum();
    }
    p.set_src_addr_patched(outer.0);
    p.set_dst_addr_and_decrement_ttl(outer.1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
    const LIP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 100);
    const RIP: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 11);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

    fn ep(ip: Ipv4Addr, port: u16) -> Endpoint {
        Endpoint::new(ip, port)
    }

    fn csum(data: &[u8]) -> u16 {
        crate::testutil::rfc1071(data)
    }

    /// The transport checksum of the whole IPv4 packet `ip` verifies
    /// (a UDP checksum of zero counts as right).
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

    /// A TCP (SYN when `syn`) or UDP packet with valid checksums.
    fn packet(proto: u8, src: Endpoint, dst: Endpoint, payload: &[u8]) -> Vec<u8> {
        let l4_len = if proto == 6 { 20 } else { 8 } + payload.len();
        let total = (20 + l4_len) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
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
        let at = 20 + if proto == 6 { 16 } else { 6 };
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
        pseudo.extend_from_slice(&l4);
        let mut ck = csum(&pseudo);
        if proto == 17 && ck == 0 {
            ck = 0xffff;
        }
        p[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        p
    }

    /// An ICMP error from `from` to `to` quoting the start of `quoted`.
    fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
        let q = &quoted[..28.min(quoted.len())];
        let total = (20 + 8 + q.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
        p.extend_from_slice(&from.octets());
        p.extend_from_slice(&to.octets());
        let ck = csum(&p);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        let mut m = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
        m.extend_from_slice(q);
        let ck = csum(&m);
        m[2..4].copy_from_slice(&ck.to_be_bytes());
        p.extend_from_slice(&m);
        p
    }

    fn addrs(p: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
        let a = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
        (a(12), a(16))
    }

    fn ports(p: &[u8]) -> (u16, u16) {
        (
            u16::from_be_bytes([p[20], p[21]]),
            u16::from_be_bytes([p[22], p[23]]),
        )
    }

    #[test]
    fn a_client_tcp_segment_leaves_from_the_local_address_to_the_real_server() {
        let mut p = packet(6, ep(CLIENT, 40000), ep(VIP, 80), b"GET /");
        let len = p.len();
        to_real_server(&mut p, ep(LIP, 5000), ep(RIP, 8080)).unwrap();
        assert_eq!(addrs(&p), (LIP, RIP));
        assert_eq!(ports(&p), (5000, 8080));
        assert_eq!(p[8], 63, "TTL - 1");
        assert_eq!(csum(&p[..20]), 0, "IPv4 header checksum");
        assert!(l4_sum_ok(&p), "TCP checksum");
        assert_eq!(p.len(), len, "not grown");
    }

    #[test]
    fn a_real_server_tcp_reply_reaches_the_client_from_the_service() {
        let mut p = packet(6, ep(RIP, 8080), ep(LIP, 5000), b"HTTP/1.1 200");
        to_client(&mut p, ep(VIP, 80), ep(CLIENT, 40000)).unwrap();
        assert_eq!(addrs(&p), (VIP, CLIENT));
        assert_eq!(ports(&p), (80, 40000));
        assert_eq!(csum(&p[..20]), 0);
        assert!(l4_sum_ok(&p));
    }

    #[test]
    fn udp_is_rewritten_both_ways_with_right_checksums() {
        let mut p = packet(17, ep(CLIENT, 5353), ep(VIP, 53), b"query");
        to_real_server(&mut p, ep(LIP, 1024), ep(RIP, 5300)).unwrap();
        assert_eq!((addrs(&p), ports(&p)), ((LIP, RIP), (1024, 5300)));
        assert!(l4_sum_ok(&p) && csum(&p[..20]) == 0);
        let mut r = packet(17, ep(RIP, 5300), ep(LIP, 1024), b"answer");
        to_client(&mut r, ep(VIP, 53), ep(CLIENT, 5353)).unwrap();
        assert_eq!((addrs(&r), ports(&r)), ((VIP, CLIENT), (53, 5353)));
        assert!(l4_sum_ok(&r) && csum(&r[..20]) == 0);
    }

    #[test]
    fn a_udp_checksum_of_zero_stays_zero() {
        let mut p = packet(17, ep(CLIENT, 5353), ep(VIP, 53), b"q");
        p[26..28].copy_from_slice(&[0, 0]);
        to_real_server(&mut p, ep(LIP, 1024), ep(RIP, 53)).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);
    }

    #[test]
    fn ttl_one_is_not_forwarded_and_left_untouched() {
        let mut p = packet(6, ep(CLIENT, 40000), ep(VIP, 80), b"");
        p[8] = 1;
        let before = p.clone();
        assert_eq!(
            to_real_server(&mut p, ep(LIP, 5000), ep(RIP, 80)),
            Err(XmitError::TtlExpired)
        );
        assert_eq!(p, before);
    }

    #[test]
    fn an_inside_error_reaches_the_client_quoting_what_the_client_sent() {
        // The router could not deliver LIP:5000 → RIP:8080.
        let sent = packet(6, ep(LIP, 5000), ep(RIP, 8080), b"");
        let mut e = icmp_error(ROUTER, LIP, &sent);
        translate_icmp_error(&mut e, (VIP, CLIENT), (ep(CLIENT, 40000), ep(VIP, 80))).unwrap();
        assert_eq!(addrs(&e), (VIP, CLIENT));
        assert_eq!(csum(&e[..20]), 0);
        assert_eq!(csum(&e[20..]), 0, "ICMP checksum");
        let q = &e[28..];
        assert_eq!(addrs(q), (CLIENT, VIP));
        assert_eq!(ports(q), (40000, 80));
        assert_eq!(csum(&q[..20]), 0, "quoted header checksum");
        // The quoted TCP checksum is right for the client's packet.
        let original = packet(6, ep(CLIENT, 40000), ep(VIP, 80), b"");
        assert_eq!(&q[..28], &original[..28]);
    }

    #[test]
    fn an_outside_error_reaches_the_real_server_quoting_its_reply() {
        // Somewhere outside could not deliver VIP:53 → client:5353.
        let reply = packet(17, ep(VIP, 53), ep(CLIENT, 5353), b"answer");
        let mut e = icmp_error(Ipv4Addr::new(192, 0, 2, 1), VIP, &reply);
        translate_icmp_error(&mut e, (LIP, RIP), (ep(RIP, 5300), ep(LIP, 1024))).unwrap();
        assert_eq!(addrs(&e), (LIP, RIP));
        assert_eq!(csum(&e[20..]), 0);
        let q = &e[28..];
        assert_eq!((addrs(q), ports(q)), ((RIP, LIP), (5300, 1024)));
        let as_sent = packet(17, ep(RIP, 5300), ep(LIP, 1024), b"answer");
        assert_eq!(
            &q[..28],
            &as_sent[..28],
            "quoted as the real server sent it"
        );
    }

    #[test]
    fn later_fragments_change_both_addresses_and_keep_the_datagram_sum() {
        let whole = packet(17, ep(CLIENT, 5353), ep(VIP, 53), &[9u8; 40]);
        // Split after 24 bytes of UDP payload area (8 header + 16 data).
        let fix = |mut f: Vec<u8>, word: u16| {
            let len = f.len() as u16;
            f[2..4].copy_from_slice(&len.to_be_bytes());
            f[6..8].copy_from_slice(&word.to_be_bytes());
            f[10..12].copy_from_slice(&[0, 0]);
            let ck = csum(&f[..20]);
            f[10..12].copy_from_slice(&ck.to_be_bytes());
            f
        };
        let mut first = fix(whole[..44].to_vec(), 0x2000);
        let mut second = whole[..20].to_vec();
        second.extend_from_slice(&whole[44..]);
        let mut second = fix(second, 3);
        to_real_server(&mut first, ep(LIP, 1024), ep(RIP, 53)).unwrap();
        fragment(&mut second, LIP, RIP).unwrap();
        assert_eq!(addrs(&second), (LIP, RIP));
        assert_eq!(csum(&second[..20]), 0);
        let mut joined = first.clone();
        joined.extend_from_slice(&second[20..]);
        let len = joined.len() as u16;
        joined[2..4].copy_from_slice(&len.to_be_bytes());
        assert!(l4_sum_ok(&joined));
        assert_eq!(
            fragment(&mut first, LIP, RIP),
            Err(XmitError::Unsupported),
            "a first fragment needs its ports rewritten"
        );
    }
}
