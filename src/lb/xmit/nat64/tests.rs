//! NAT64 translation: byte fixtures built here, results checked field by
//! field and every checksum by an independent full recompute (RFC 1071,
//! `crate::testutil::rfc1071`), never by the code under test.

use super::*;
use crate::testutil::rfc1071;

const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 11);
const ROUTER4: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
const TCP: u8 = 6;
const UDP: u8 = 17;

fn client() -> Endpoint6 {
    Endpoint6::new(CLIENT, 40000)
}
fn vip() -> Endpoint6 {
    Endpoint6::new(VIP, 80)
}
fn local() -> Endpoint {
    Endpoint::new(LIP, 1024)
}
fn real() -> Endpoint {
    Endpoint::new(RIP, 8080)
}

/// A TCP (flags SYN+ACK+PSH, `payload`) or UDP segment with a zero
/// checksum field.
fn segment(proto: u8, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        let len = (8 + payload.len()) as u16;
        l4.extend_from_slice(&len.to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    l4
}

fn ck_at(proto: u8) -> usize {
    if proto == TCP {
        16
    } else {
        6
    }
}

fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p.extend_from_slice(l4);
    p
}

fn pseudo4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// An IPv6 packet from `src` to `dst` carrying `l4` of `proto` (checksum
/// filled when `fill`), after the extension headers `ext` (their first
/// byte's next header is set here), hop limit `hop`, traffic class 0xb8.
fn v6(proto: u8, src: Ipv6Addr, dst: Ipv6Addr, mut l4: Vec<u8>, ext: &[u8], hop: u8) -> Vec<u8> {
    if proto == TCP || proto == UDP {
        let at = ck_at(proto);
        let ck = rfc1071(&pseudo6(src, dst, proto, &l4));
        l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
    } else if proto == 58 {
        let ck = rfc1071(&pseudo6(src, dst, proto, &l4));
        l4[2..4].copy_from_slice(&ck.to_be_bytes());
    }
    let mut p = vec![0x6b, 0x80, 0, 0];
    p.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
    p.push(if ext.is_empty() { proto } else { 60 });
    p.push(hop);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let mut ext = ext.to_vec();
    if !ext.is_empty() {
        ext[0] = proto;
    }
    p.extend_from_slice(&ext);
    p.extend_from_slice(&l4);
    p
}

/// An IPv4 packet (TOS 0xb8, DF, TTL `ttl`, `options` after the header)
/// carrying `l4` of `proto`, checksums filled (a UDP one only when
/// `udp_sum`).
fn v4(
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mut l4: Vec<u8>,
    options: &[u8],
    ttl: u8,
    udp_sum: bool,
) -> Vec<u8> {
    if proto == TCP || (proto == UDP && udp_sum) {
        let at = ck_at(proto);
        let ck = rfc1071(&pseudo4(src, dst, proto, &l4));
        l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
    } else if proto == 1 {
        let ck = rfc1071(&l4);
        l4[2..4].copy_from_slice(&ck.to_be_bytes());
    }
    let hl = 20 + options.len();
    let total = (hl + l4.len()) as u16;
    let mut p = vec![0x40 | (hl / 4) as u8, 0xb8];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, ttl, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    let ck = rfc1071(&p);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

/// The IPv4 packet at the front of `p` is well formed: header checksum,
/// total length, and its TCP/UDP checksum over the IPv4 pseudo-header.
fn assert_v4_sums(p: &[u8]) {
    let hl = usize::from(p[0] & 0x0f) * 4;
    assert_eq!(rfc1071(&p[..hl]), 0, "IPv4 header checksum");
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    assert_eq!(total, p.len(), "total length");
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    assert_eq!(rfc1071(&pseudo4(src, dst, p[9], &p[hl..])), 0, "transport");
}

/// The IPv6 packet `p` (no extension headers) is well formed: payload
/// length and its upper-layer checksum over the IPv6 pseudo-header.
fn assert_v6_sums(p: &[u8]) {
    let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
    assert_eq!(40 + plen, p.len(), "payload length");
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
    assert_eq!(
        rfc1071(&pseudo6(src, dst, p[6], &p[40..])),
        0,
        "upper layer"
    );
}

fn translated_v4(buf: &[u8], t: Translated) -> Vec<u8> {
    buf[t.start..t.start + t.len].to_vec()
}

fn to_client(p4: &[u8]) -> Result<Vec<u8>, XmitError> {
    let mut buf = vec![0u8; GROWTH];
    buf.extend_from_slice(p4);
    let t = to_ipv6(&mut buf, vip(), client())?;
    Ok(buf[t.start..t.start + t.len].to_vec())
}

#[test]
fn a_client_syn_leaves_as_ipv4_from_the_local_address_to_the_real_server() {
    let l4 = segment(TCP, 40000, 80, b"hello");
    let mut p = v6(TCP, CLIENT, VIP, l4, &[], 64);
    let t = to_ipv4(&mut p, local(), real(), 0x0101).unwrap();
    assert_eq!(t.start, 20, "the IPv4 header sits just before TCP");
    let q = translated_v4(&p, t);
    assert_eq!(q.len(), 20 + 20 + 5);
    assert_eq!(q[0], 0x45);
    assert_eq!(q[1], 0xb8, "traffic class → TOS");
    assert_eq!(&q[4..6], &[0x01, 0x01], "identification");
    assert_eq!(q[8], 63, "TTL: the hop limit less one");
    assert_eq!(q[9], TCP);
    assert_eq!(&q[12..16], &LIP.octets());
    assert_eq!(&q[16..20], &RIP.octets());
    assert_eq!(&q[20..24], &[0x04, 0x00, 0x1f, 0x90], "ports 1024 → 8080");
    assert_eq!(&q[40..], b"hello");
    assert_v4_sums(&q);
}

#[test]
fn df_is_set_above_1260_bytes_and_clear_below() {
    for (payload, df) in [(1200usize, false), (1221, true)] {
        let l4 = segment(TCP, 40000, 80, &vec![7u8; payload]);
        let mut p = v6(TCP, CLIENT, VIP, l4, &[], 64);
        let t = to_ipv4(&mut p, local(), real(), 0).unwrap();
        let q = translated_v4(&p, t);
        assert_eq!(q[6] & 0x40 != 0, df, "{} bytes", q.len());
        assert_v4_sums(&q);
    }
}

#[test]
fn extension_headers_of_the_client_are_dropped() {
    let dest_opts = [0, 0, 1, 4, 0, 0, 0, 0]; // PadN
    let l4 = segment(TCP, 40000, 80, b"x");
    let mut p = v6(TCP, CLIENT, VIP, l4, &dest_opts, 64);
    let t = to_ipv4(&mut p, local(), real(), 0).unwrap();
    assert_eq!(t.start, 28);
    let q = translated_v4(&p, t);
    assert_eq!(q.len(), 20 + 20 + 1);
    assert_v4_sums(&q);
}

#[test]
fn udp_is_translated_both_ways() {
    let mut p = v6(UDP, CLIENT, VIP, segment(UDP, 40000, 53, b"query"), &[], 9);
    let t = to_ipv4(&mut p, local(), real(), 0).unwrap();
    let q = translated_v4(&p, t);
    assert_eq!(q[9], UDP);
    assert_v4_sums(&q);
    let reply = v4(
        UDP,
        RIP,
        LIP,
        segment(UDP, 8080, 1024, b"answer"),
        &[],
        64,
        true,
    );
    let r = to_client(&reply).unwrap();
    assert_eq!(&r[40..44], &[0, 80, 0x9c, 0x40], "ports 80 → 40000");
    assert_v6_sums(&r);
}

#[test]
fn a_real_server_reply_reaches_the_client_as_ipv6_from_the_vip() {
    let reply = v4(
        TCP,
        RIP,
        LIP,
        segment(TCP, 8080, 1024, b"hi"),
        &[],
        64,
        true,
    );
    let r = to_client(&reply).unwrap();
    assert_eq!(r.len(), 40 + 20 + 2);
    assert_eq!(r[0] >> 4, 6);
    assert_eq!(
        ((r[0] & 0x0f) << 4) | (r[1] >> 4),
        0xb8,
        "TOS → traffic class"
    );
    assert_eq!(r[6], TCP);
    assert_eq!(r[7], 63, "hop limit: the TTL less one");
    assert_eq!(&r[8..24], &VIP.octets());
    assert_eq!(&r[24..40], &CLIENT.octets());
    assert_eq!(&r[60..], b"hi");
    assert_v6_sums(&r);
}

#[test]
fn ipv4_options_of_the_real_server_are_dropped() {
    let options = [1, 1, 1, 0]; // NOPs, end of list
    let reply = v4(
        TCP,
        RIP,
        LIP,
        segment(TCP, 8080, 1024, b"hi"),
        &options,
        64,
        true,
    );
    let mut buf = vec![0u8; GROWTH];
    buf.extend_from_slice(&reply);
    let t = to_ipv6(&mut buf, vip(), client()).unwrap();
    assert_eq!(t.start, 4, "the IPv6 header ends where TCP begins");
    let r = buf[t.start..t.start + t.len].to_vec();
    assert_eq!(r.len(), 40 + 20 + 2);
    assert_v6_sums(&r);
}

#[test]
fn a_udp_reply_without_checksum_gets_one_over_ipv6() {
    let reply = v4(
        UDP,
        RIP,
        LIP,
        segment(UDP, 8080, 1024, b"x"),
        &[],
        64,
        false,
    );
    let r = to_client(&reply).unwrap();
    assert_ne!(&r[46..48], &[0, 0]);
    assert_v6_sums(&r);
}

#[test]
fn hop_limit_or_ttl_of_one_is_not_translated_and_left_untouched() {
    let mut p = v6(TCP, CLIENT, VIP, segment(TCP, 40000, 80, b""), &[], 1);
    let before = p.clone();
    assert_eq!(
        to_ipv4(&mut p, local(), real(), 0),
        Err(XmitError::TtlExpired)
    );
    assert_eq!(p, before);
    let reply = v4(TCP, RIP, LIP, segment(TCP, 8080, 1024, b""), &[], 1, true);
    assert_eq!(to_client(&reply), Err(XmitError::TtlExpired));
}

#[test]
fn fragments_are_refused_untouched() {
    // An atomic fragment header (offset 0, M clear): the worker drops
    // fragments before, this is the translation's own guard.
    let frag = [0, 0, 0, 0, 0, 0, 0, 1];
    let mut p = v6(TCP, CLIENT, VIP, segment(TCP, 40000, 80, b""), &frag, 64);
    p[6] = 44;
    let before = p.clone();
    assert_eq!(
        to_ipv4(&mut p, local(), real(), 0),
        Err(XmitError::Unsupported)
    );
    assert_eq!(p, before);
    let mut reply = v4(TCP, RIP, LIP, segment(TCP, 8080, 1024, b""), &[], 64, true);
    reply[6] = 0x20; // MF
    reply[10] = 0;
    reply[11] = 0;
    let ck = rfc1071(&reply[..20]);
    reply[10..12].copy_from_slice(&ck.to_be_bytes());
    assert_eq!(to_client(&reply), Err(XmitError::Unsupported));
}

#[test]
fn a_udp_zero_checksum_from_the_client_is_refused() {
    let mut p = v6(UDP, CLIENT, VIP, segment(UDP, 40000, 53, b"q"), &[], 64);
    p[46] = 0;
    p[47] = 0;
    assert_eq!(
        to_ipv4(&mut p, local(), real(), 0),
        Err(XmitError::Unsupported)
    );
}

/// An ICMPv6 error of `ty`/`code` (rest `rest`) from the client's router
/// quoting the reply the balancer sent the client.
fn icmpv6_error(ty: u8, code: u8, rest: u32) -> Vec<u8> {
    let quoted = v6(
        TCP,
        VIP,
        CLIENT,
        segment(TCP, 80, 40000, &[0; 100]),
        &[],
        60,
    );
    let mut msg = vec![ty, code, 0, 0];
    msg.extend_from_slice(&rest.to_be_bytes());
    msg.extend_from_slice(&quoted);
    v6(58, ROUTER6, VIP, msg, &[], 64)
}

#[test]
fn packet_too_big_from_the_client_side_becomes_fragmentation_needed_to_the_real_server() {
    let mut p = icmpv6_error(2, 0, 1400);
    let t = icmp_to_ipv4(&mut p, (LIP, RIP), (real(), local()), 7).unwrap();
    let q = translated_v4(&p, t);
    assert_eq!(q.len(), 20 + 8 + 20 + 120);
    assert_eq!(rfc1071(&q[..20]), 0);
    assert_eq!((q[9], q[8]), (1, 63), "ICMP, TTL less one");
    assert_eq!(&q[12..16], &LIP.octets());
    assert_eq!(&q[16..20], &RIP.octets());
    let msg = &q[20..];
    assert_eq!(rfc1071(msg), 0, "ICMP checksum");
    assert_eq!((msg[0], msg[1]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([msg[6], msg[7]]), 1380, "MTU less 20");
    let quoted = &msg[8..];
    assert_eq!(rfc1071(&quoted[..20]), 0, "quoted header checksum");
    assert_eq!(&quoted[12..16], &RIP.octets());
    assert_eq!(&quoted[16..20], &LIP.octets());
    assert_eq!(&quoted[20..24], &[0x1f, 0x90, 0x04, 0x00]);
    // Quoted whole: its TCP checksum holds over the IPv4 pseudo-header.
    assert_v4_sums(quoted);
}

#[test]
fn fragmentation_needed_from_the_real_server_side_becomes_packet_too_big_to_the_client() {
    let sent = v4(
        TCP,
        LIP,
        RIP,
        segment(TCP, 1024, 8080, &[0; 100]),
        &[],
        63,
        true,
    );
    let mut msg = vec![3, 4, 0, 0, 0, 0, 0x05, 0x14]; // MTU 1300
    msg.extend_from_slice(&sent);
    let err = v4(1, ROUTER4, LIP, msg, &[], 64, true);
    let mut buf = vec![0u8; ICMP_GROWTH];
    buf.extend_from_slice(&err);
    let t = icmp_to_ipv6(&mut buf, (VIP, CLIENT), (client(), vip())).unwrap();
    assert_eq!(t.start, 0);
    let r = buf[..t.len].to_vec();
    assert_eq!(r.len(), 40 + 8 + 40 + 120);
    assert_eq!((r[6], r[7]), (58, 63));
    assert_eq!(&r[8..24], &VIP.octets());
    assert_eq!(&r[24..40], &CLIENT.octets());
    assert_v6_sums(&r);
    let msg = &r[40..];
    assert_eq!((msg[0], msg[1]), (2, 0), "packet too big");
    assert_eq!(u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]), 1320);
    let quoted = &msg[8..];
    assert_eq!(&quoted[8..24], &CLIENT.octets());
    assert_eq!(&quoted[24..40], &VIP.octets());
    assert_eq!(&quoted[40..44], &[0x9c, 0x40, 0, 80]);
    assert_v6_sums(quoted);
}

#[test]
fn a_small_ipv4_mtu_is_raised_to_the_ipv6_minimum() {
    assert_eq!(icmp_type_to_ipv6(3, 4, 576), Some((2, 0, 1280)));
    assert_eq!(icmp_type_to_ipv6(3, 4, 0), Some((2, 0, 1280)));
    assert_eq!(icmp_type_to_ipv6(3, 4, 1480), Some((2, 0, 1500)));
}

#[test]
fn types_are_mapped_as_rfc_7915_says() {
    assert_eq!(icmp_type_to_ipv4(1, 4, 0), Some((3, 3, 0)), "port");
    assert_eq!(icmp_type_to_ipv4(1, 1, 0), Some((3, 10, 0)), "prohibited");
    assert_eq!(icmp_type_to_ipv4(1, 0, 0), Some((3, 1, 0)), "no route");
    assert_eq!(icmp_type_to_ipv4(3, 0, 0), Some((11, 0, 0)));
    assert_eq!(icmp_type_to_ipv4(4, 1, 0), Some((3, 2, 0)));
    assert_eq!(icmp_type_to_ipv6(3, 3, 0), Some((1, 4, 0)), "port");
    assert_eq!(icmp_type_to_ipv6(3, 1, 0), Some((1, 0, 0)), "host");
    assert_eq!(icmp_type_to_ipv6(3, 13, 0), Some((1, 1, 0)));
    assert_eq!(icmp_type_to_ipv6(3, 2, 0), Some((4, 1, 6)));
    assert_eq!(icmp_type_to_ipv6(11, 1, 0), Some((3, 1, 0)));
}

#[test]
fn errors_without_a_twin_are_refused() {
    assert_eq!(icmp_type_to_ipv4(4, 0, 12), None, "pointer");
    assert_eq!(icmp_type_to_ipv4(4, 2, 0), None);
    assert_eq!(icmp_type_to_ipv6(12, 0, 0), None, "pointer");
    assert_eq!(icmp_type_to_ipv6(3, 14, 0), None);
    assert_eq!(icmp_type_to_ipv6(5, 0, 0), None, "redirect");
    let mut p = icmpv6_error(4, 0, 12);
    let before = p.clone();
    assert_eq!(
        icmp_to_ipv4(&mut p, (LIP, RIP), (real(), local()), 0),
        Err(XmitError::Unsupported)
    );
    assert_eq!(p, before);
}

#[test]
fn translation_never_panics_on_cut_or_garbled_bytes() {
    let good6 = v6(TCP, CLIENT, VIP, segment(TCP, 40000, 80, b"abc"), &[], 64);
    let err6 = icmpv6_error(2, 0, 1400);
    let good4 = v4(
        TCP,
        RIP,
        LIP,
        segment(TCP, 8080, 1024, b"abc"),
        &[],
        64,
        true,
    );
    for cut in 0..good6.len().max(err6.len()) {
        let mut a = good6[..cut.min(good6.len())].to_vec();
        let _ = to_ipv4(&mut a, local(), real(), 0);
        let mut b = err6[..cut.min(err6.len())].to_vec();
        let _ = icmp_to_ipv4(&mut b, (LIP, RIP), (real(), local()), 0);
        let mut c = vec![0u8; ICMP_GROWTH];
        c.extend_from_slice(&good4[..cut.min(good4.len())]);
        let _ = to_ipv6(&mut c, vip(), client());
        let _ = icmp_to_ipv6(&mut c, (VIP, CLIENT), (client(), vip()));
    }
    for i in 0..err6.len() {
        let mut b = err6.clone();
        b[i] ^= 0xff;
        let _ = icmp_to_ipv4(&mut b, (LIP, RIP), (real(), local()), 0);
    }
}
