//! NAT (IPVS's masquerading): the destination of client packets becomes the
//! chosen real server, the source of its replies becomes the virtual
//! service again, and ICMP errors about such a connection are translated
//! in both the outer header and the header they quote, so path MTU
//! discovery works through the balancer.
//!
//! Checksums change incrementally: the IPv4 header for the address and
//! TTL, the TCP/UDP checksum for the address (it is in the pseudo-header)
//! and the port. A UDP checksum of zero ("none") stays zero.
//!
//! Fragments (`lb::frag`): the first one holds the transport header, whose
//! checksum covers the whole datagram; patching it incrementally for the
//! changed address and port is right however the payload is split. Its
//! UDP length names the whole datagram, so only its header is read. Later
//! fragments carry no transport header: [`fragment_to_real_server`] and
//! [`fragment_from_real_server`] rewrite the IP header alone.

use super::{Endpoint, XmitError};
use crate::wire::{icmp, ipv4, tcp, udp};
use std::net::Ipv4Addr;

/// Which end of the packet to rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source address and port.
    Src,
    /// The destination address and port.
    Dst,
}

impl Side {
    /// This side's address in `ip`.
    fn addr<T: AsRef<[u8]>>(self, ip: &ipv4::Packet<T>) -> Ipv4Addr {
        match self {
            Side::Src => ip.src_addr(),
            Side::Dst => ip.dst_addr(),
        }
    }

    /// Sets this side's address in `ip`, patching its header checksum.
    fn set_addr<T: AsRef<[u8]> + AsMut<[u8]>>(self, ip: &mut ipv4::Packet<T>, to: Ipv4Addr) {
        match self {
            Side::Src => ip.set_src_addr_patched(to),
            Side::Dst => ip.set_dst_addr_patched(to),
        };
    }
}

/// Client → VIP:VPORT becomes client → RIP:RPORT, TTL - 1.
pub fn to_real_server(ip: &mut [u8], real: Endpoint) -> Result<(), XmitError> {
    forward(ip, Side::Dst, real)
}

/// RIP:RPORT → client becomes VIP:VPORT → client, TTL - 1.
pub fn from_real_server(ip: &mut [u8], service: Endpoint) -> Result<(), XmitError> {
    forward(ip, Side::Src, service)
}

/// Rewrites `side` to `to` and decrements the TTL; on any error the
/// packet is left as it was.
fn forward(ip: &mut [u8], side: Side, to: Endpoint) -> Result<(), XmitError> {
    let mut p = checked(ip)?;
    ttl_allows_forwarding(&p)?;
    if p.frag_offset() != 0 {
        // No transport header here: a later fragment.
        return Err(XmitError::Unsupported);
    }
    let old = side.addr(&p);
    let first_fragment = p.more_frags();
    let protocol = p.protocol();
    let transport = if first_fragment {
        Transport::first_fragment(protocol, p.payload_mut())
    } else {
        Transport::checked(protocol, p.payload_mut())
    };
    transport?.rewrite(side, old, to);
    set_addr_and_decrement_ttl(&mut p, side, to.ip);
    Ok(())
}

/// The address and the TTL patch the header checksum together.
fn set_addr_and_decrement_ttl(p: &mut ipv4::Packet<&mut [u8]>, side: Side, to: Ipv4Addr) {
    match side {
        Side::Src => p.set_src_addr_and_decrement_ttl(to),
        Side::Dst => p.set_dst_addr_and_decrement_ttl(to),
    };
}

/// A later fragment (offset > 0) of a client's datagram whose first
/// fragment went to `real` by NAT: destination becomes `real`, TTL - 1;
/// the transport header was rewritten in the first fragment.
pub fn fragment_to_real_server(ip: &mut [u8], real: Ipv4Addr) -> Result<(), XmitError> {
    forward_fragment(ip, Side::Dst, real)
}

/// A later fragment of a real server's reply: source becomes `vip`,
/// TTL - 1.
pub fn fragment_from_real_server(ip: &mut [u8], vip: Ipv4Addr) -> Result<(), XmitError> {
    forward_fragment(ip, Side::Src, vip)
}

/// Rewrites `side`'s address of a later fragment and decrements the TTL;
/// anything else (a whole packet, a first fragment) is `Unsupported` and
/// left untouched: its transport header would need the rewrite too.
fn forward_fragment(ip: &mut [u8], side: Side, to: Ipv4Addr) -> Result<(), XmitError> {
    let mut p = checked(ip)?;
    ttl_allows_forwarding(&p)?;
    if p.frag_offset() == 0 {
        return Err(XmitError::Unsupported);
    }
    set_addr_and_decrement_ttl(&mut p, side, to);
    Ok(())
}

/// The IPv4 view of `ip`; bytes that are not an IPv4 packet cannot be
/// rewritten.
fn checked(ip: &mut [u8]) -> Result<ipv4::Packet<&mut [u8]>, XmitError> {
    ipv4::Packet::new_checked(ip).map_err(|_| XmitError::Unsupported)
}

/// A packet arriving with TTL 0 or 1 is not forwarded (RFC 1812 5.3.1).
fn ttl_allows_forwarding<T: AsRef<[u8]>>(p: &ipv4::Packet<T>) -> Result<(), XmitError> {
    if p.ttl() <= 1 {
        return Err(XmitError::TtlExpired);
    }
    Ok(())
}

/// Decrements the TTL with an incremental header checksum update; a
/// packet arriving with TTL 0 or 1 is not forwarded (and left untouched),
/// nor are bytes that are not an IPv4 packet (`Unsupported`).
pub fn decrement_ttl(ip: &mut [u8]) -> Result<(), XmitError> {
    let mut p = checked(ip)?;
    ttl_allows_forwarding(&p)?;
    p.decrement_ttl();
    Ok(())
}

/// The transport header NAT rewrites: a whole one in a forwarded packet,
/// or the start of one an ICMP error quotes.
enum Transport<'a> {
    Tcp(tcp::Packet<&'a mut [u8]>),
    QuotedTcp(tcp::Quoted<&'a mut [u8]>),
    Udp(udp::Packet<&'a mut [u8]>),
}

impl<'a> Transport<'a> {
    /// The TCP or UDP header of a packet of `protocol` carrying `l4`.
    fn checked(protocol: ipv4::Protocol, l4: &'a mut [u8]) -> Result<Self, XmitError> {
        match protocol {
            ipv4::Protocol::Tcp => tcp::Packet::new_checked(l4).map(Transport::Tcp),
            ipv4::Protocol::Udp => udp::Packet::new_checked(l4).map(Transport::Udp),
            _ => return Err(XmitError::Unsupported),
        }
        .map_err(|_| XmitError::Unsupported)
    }

    /// As [`Transport::checked`] for a first fragment: the header whole,
    /// the UDP length (the whole datagram's) not held to the fragment.
    fn first_fragment(protocol: ipv4::Protocol, l4: &'a mut [u8]) -> Result<Self, XmitError> {
        match protocol {
            ipv4::Protocol::Tcp => tcp::Packet::new_checked(l4).map(Transport::Tcp),
            ipv4::Protocol::Udp => udp::Packet::new_checked_quoted(l4).map(Transport::Udp),
            _ => return Err(XmitError::Unsupported),
        }
        .map_err(|_| XmitError::Unsupported)
    }

    /// As [`Transport::checked`] for what an ICMP error quotes: the ports
    /// at least, the checksum when it was quoted.
    fn quoted(protocol: ipv4::Protocol, l4: &'a mut [u8]) -> Result<Self, XmitError> {
        match protocol {
            ipv4::Protocol::Tcp => tcp::Quoted::new_checked(l4).map(Transport::QuotedTcp),
            ipv4::Protocol::Udp => udp::Packet::new_checked_quoted(l4).map(Transport::Udp),
            _ => return Err(XmitError::Unsupported),
        }
        .map_err(|_| XmitError::Unsupported)
    }

    /// Sets `side`'s port to `to.port` and patches the checksum for it and
    /// for the pseudo-header address that changed from `old_addr` to `to.ip`
    /// (address first, then port: the order the checksum is patched in).
    fn rewrite(&mut self, side: Side, old_addr: Ipv4Addr, to: Endpoint) {
        match self {
            Transport::Tcp(t) => {
                match side {
                    Side::Src => t.set_src_port_and_addr_patched(to.port, (old_addr, to.ip)),
                    Side::Dst => t.set_dst_port_and_addr_patched(to.port, (old_addr, to.ip)),
                };
            }
            Transport::QuotedTcp(t) => {
                t.patch_pseudo_addr(old_addr, to.ip);
                match side {
                    Side::Src => t.set_src_port_patched(to.port),
                    Side::Dst => t.set_dst_port_patched(to.port),
                };
            }
            Transport::Udp(u) => {
                u.patch_pseudo_addr(old_addr, to.ip);
                match side {
                    Side::Src => u.set_src_port_patched(to.port),
                    Side::Dst => u.set_dst_port_patched(to.port),
                };
            }
        }
    }
}

/// Rewrites one side's address and port, patching the IPv4 header
/// checksum and the TCP/UDP checksum. Anything but a whole IPv4 packet
/// carrying a whole TCP or UDP header is `Unsupported`, and left untouched.
pub fn rewrite(ip: &mut [u8], side: Side, to: Endpoint) -> Result<(), XmitError> {
    rewrite_checked(&mut checked(ip)?, side, to)
}

/// [`rewrite`] on a checked packet: the transport header is checked before
/// anything is written.
fn rewrite_checked(
    p: &mut ipv4::Packet<&mut [u8]>,
    side: Side,
    to: Endpoint,
) -> Result<(), XmitError> {
    let old = side.addr(p);
    Transport::checked(p.protocol(), p.payload_mut())?.rewrite(side, old, to);
    side.set_addr(p, to.ip);
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
///
/// `TtlExpired` for TTL 0 or 1; `Unsupported` when the bytes are not an
/// IPv4 packet carrying an ICMP header that quotes an IPv4 header and the
/// 8 bytes of TCP or UDP after it. Either way the packet is untouched.
pub fn translate_icmp_error(
    ip: &mut [u8],
    outer: (Side, Ipv4Addr),
    quoted: (Side, Endpoint),
) -> Result<(), XmitError> {
    let mut p = checked(ip)?;
    ttl_allows_forwarding(&p)?;
    if p.protocol() != ipv4::Protocol::Icmp {
        return Err(XmitError::Unsupported);
    }
    {
        let mut msg =
            icmp::Packet::new_checked(p.payload_mut()).map_err(|_| XmitError::Unsupported)?;
        {
            let mut q = ipv4::Packet::new_checked_quoted(msg.data_mut())
                .map_err(|_| XmitError::Unsupported)?;
            let (side, to) = quoted;
            let old = side.addr(&q);
            Transport::quoted(q.protocol(), q.payload_mut())?.rewrite(side, old, to);
            side.set_addr(&mut q, to.ip);
        }
        msg.fill_checksum();
    }
    outer.0.set_addr(&mut p, outer.1);
    p.decrement_ttl();
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

    /// Cuts the whole packet `p` (IHL 5) into two fragments, the first
    /// carrying `at` bytes of the datagram's payload (a multiple of 8).
    fn split(p: &[u8], at: usize) -> (Vec<u8>, Vec<u8>) {
        let fix = |mut f: Vec<u8>, frag_word: u16| {
            let len = f.len() as u16;
            f[2..4].copy_from_slice(&len.to_be_bytes());
            f[6..8].copy_from_slice(&frag_word.to_be_bytes());
            f[10..12].copy_from_slice(&[0, 0]);
            let ck = csum(&f[..20]);
            f[10..12].copy_from_slice(&ck.to_be_bytes());
            f
        };
        let first = fix(p[..20 + at].to_vec(), 0x2000);
        let mut second = p[..20].to_vec();
        second.extend_from_slice(&p[20 + at..]);
        (first, fix(second, (at / 8) as u16))
    }

    /// The datagram the two fragments make, as a whole packet.
    fn join(first: &[u8], second: &[u8]) -> Vec<u8> {
        let mut p = first.to_vec();
        p.extend_from_slice(&second[20..]);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p[6..8].copy_from_slice(&[0, 0]);
        p
    }

    #[test]
    fn a_fragmented_udp_datagram_to_a_real_server_keeps_its_checksum_right() {
        let payload: Vec<u8> = (0..40u8).collect();
        let whole = packet(17, ep(CLIENT, 5353), ep(VIP, 53), &payload, 64);
        let (mut first, mut second) = split(&whole, 24);
        to_real_server(&mut first, ep(RIP, 5300)).unwrap();
        fragment_to_real_server(&mut second, RIP).unwrap();
        for f in [&first, &second] {
            assert_eq!(&f[16..20], &RIP.octets());
            assert_eq!(f[8], 63);
            assert_eq!(csum(&f[..20]), 0);
        }
        assert_eq!(&first[22..24], &5300u16.to_be_bytes());
        assert!(l4_sum_ok(&join(&first, &second)));
    }

    #[test]
    fn a_fragmented_tcp_reply_leaves_as_the_service_with_a_right_checksum() {
        let payload = [7u8; 60];
        let whole = packet(6, ep(RIP, 8080), ep(CLIENT, 40000), &payload, 64);
        let (mut first, mut second) = split(&whole, 32);
        from_real_server(&mut first, ep(VIP, 80)).unwrap();
        fragment_from_real_server(&mut second, VIP).unwrap();
        assert_eq!(&second[12..16], &VIP.octets());
        assert_eq!(&first[20..22], &80u16.to_be_bytes());
        assert!(l4_sum_ok(&join(&first, &second)));
    }

    #[test]
    fn the_transport_rewrite_refuses_a_later_fragment_and_the_ip_one_a_first() {
        let whole = packet(17, ep(CLIENT, 5353), ep(VIP, 53), &[1u8; 40], 64);
        let (mut first, mut second) = split(&whole, 24);
        let (f, s) = (first.clone(), second.clone());
        assert_eq!(
            to_real_server(&mut second, ep(RIP, 53)),
            Err(XmitError::Unsupported)
        );
        assert_eq!(
            fragment_to_real_server(&mut first, RIP),
            Err(XmitError::Unsupported)
        );
        assert_eq!((first, second), (f, s), "left untouched");
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

    #[test]
    fn decrement_ttl_refuses_ttl_one_and_zero_untouched() {
        for ttl in [0, 1] {
            let mut p = packet(17, ep(CLIENT, 1), ep(VIP, 2), b"", ttl);
            let before = p.clone();
            assert_eq!(decrement_ttl(&mut p), Err(XmitError::TtlExpired));
            assert_eq!(p, before);
        }
        let mut p = packet(17, ep(CLIENT, 1), ep(VIP, 2), b"", 2);
        decrement_ttl(&mut p).unwrap();
        assert_eq!(p[8], 1);
        assert_eq!(csum(&p[..20]), 0);
    }

    #[test]
    fn unsupported_protocol_leaves_the_packet_untouched() {
        let mut p = packet(6, ep(CLIENT, 1), ep(VIP, 2), b"", 64);
        p[9] = 47;
        let before = p.clone();
        assert_eq!(
            to_real_server(&mut p, ep(RIP, 2)),
            Err(XmitError::Unsupported)
        );
        assert_eq!(p, before, "TTL not decremented either");
    }

    #[test]
    fn a_cut_transport_header_is_unsupported() {
        let mut p = packet(6, ep(CLIENT, 1), ep(VIP, 2), b"", 64);
        p.truncate(39);
        p[3] = 39;
        assert_eq!(
            rewrite(&mut p, Side::Dst, ep(RIP, 2)),
            Err(XmitError::Unsupported)
        );
        assert_eq!(
            rewrite(&mut [], Side::Dst, ep(RIP, 2)),
            Err(XmitError::Unsupported)
        );
    }

    #[test]
    fn icmp_error_quoting_udp_without_checksum_keeps_it_none() {
        let mut forwarded = packet(17, ep(CLIENT, 5353), ep(RIP, 53), b"query", 63);
        forwarded[26] = 0;
        forwarded[27] = 0;
        let router = Ipv4Addr::new(10, 1, 0, 254);
        let mut p = icmp_error(router, CLIENT, &forwarded, forwarded.len());
        translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 5300))).unwrap();
        let inner = &p[28..];
        assert_eq!(&inner[16..20], &VIP.octets());
        assert_eq!(&inner[22..24], &5300u16.to_be_bytes());
        assert_eq!(&inner[26..28], &[0, 0], "no checksum stays none");
        assert_eq!(csum(&inner[..20]), 0, "quoted header checksum");
        assert_eq!(csum(&p[20..]), 0, "ICMP checksum");
        assert_eq!(csum(&p[..20]), 0, "outer header checksum");
    }

    #[test]
    fn icmp_error_quoting_udp_with_checksum_patches_it() {
        let forwarded = packet(17, ep(CLIENT, 5353), ep(RIP, 53), b"query", 63);
        let mut p = icmp_error(RIP, CLIENT, &forwarded, forwarded.len());
        translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 53))).unwrap();
        assert!(l4_sum_ok(&p[28..]), "quoted UDP checksum");
        assert_eq!(csum(&p[20..]), 0);
    }

    #[test]
    fn icmp_error_quoting_eight_bytes_of_tcp_rewrites_the_port_only() {
        // An old router quotes only the 64 bits RFC 792 requires: ports and
        // sequence number, no checksum to patch.
        let forwarded = packet(6, ep(CLIENT, 40000), ep(RIP, 8080), b"", 63);
        let mut p = icmp_error(RIP, CLIENT, &forwarded, 28);
        translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 80))).unwrap();
        let inner = &p[28..];
        assert_eq!(inner.len(), 28);
        assert_eq!(&inner[22..24], &80u16.to_be_bytes());
        assert_eq!(&inner[24..28], &forwarded[24..28], "sequence number kept");
        assert_eq!(csum(&inner[..20]), 0);
        assert_eq!(csum(&p[20..]), 0);
    }

    #[test]
    fn icmp_error_with_ttl_one_is_not_forwarded() {
        let forwarded = packet(6, ep(CLIENT, 40000), ep(RIP, 8080), b"", 63);
        let mut p = icmp_error(RIP, CLIENT, &forwarded, forwarded.len());
        p[8] = 1;
        let before = p.clone();
        assert_eq!(
            translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 80))),
            Err(XmitError::TtlExpired)
        );
        assert_eq!(p, before);
    }

    #[test]
    fn icmp_error_with_a_truncated_quote_is_refused_untouched() {
        let forwarded = packet(6, ep(CLIENT, 40000), ep(RIP, 8080), b"", 63);
        for quote in [0, 8, 19, 20, 27] {
            let mut p = icmp_error(RIP, CLIENT, &forwarded, quote);
            let before = p.clone();
            assert_eq!(
                translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 80))),
                Err(XmitError::Unsupported),
                "quote of {quote} bytes"
            );
            assert_eq!(p, before, "quote of {quote} bytes");
        }
        // Not even a whole ICMP header.
        let mut p = icmp_error(RIP, CLIENT, &forwarded, 0);
        p.truncate(27);
        p[3] = 27;
        assert_eq!(
            translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 80))),
            Err(XmitError::Unsupported)
        );
    }

    #[test]
    fn icmp_error_quoting_another_protocol_is_refused_untouched() {
        let mut quoted = packet(6, ep(CLIENT, 40000), ep(RIP, 8080), b"", 63);
        quoted[9] = 47;
        let mut p = icmp_error(RIP, CLIENT, &quoted, quoted.len());
        let before = p.clone();
        assert_eq!(
            translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 80))),
            Err(XmitError::Unsupported)
        );
        assert_eq!(p, before);
    }

    #[test]
    fn only_icmp_is_translated_as_an_icmp_error() {
        let mut p = packet(17, ep(CLIENT, 1), ep(VIP, 2), &[0; 40], 64);
        assert_eq!(
            translate_icmp_error(&mut p, (Side::Src, VIP), (Side::Dst, ep(VIP, 80))),
            Err(XmitError::Unsupported)
        );
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
