//! The client's address carried through a worker (`client_address`),
//! judged from the outside like the rest of `tests_lb` (whose builders,
//! views and appliance it uses): the "web" service (NAT, VIP:80 → .11:8080
//! only here) with a PROXY v2 header or the TOA option. The frames grow in
//! the middle (`Frame::insert` on `VecFrame`).
use super::*;
use crate::lb::client_addr::{proxy_v2, toa, ClientAddress};

fn carrying_lb(mode: ClientAddress, inside_mtu: u16) -> Lb {
    let mut s = setup();
    let mut svcs = services();
    svcs[SVC_WEB].client_address = Some(mode);
    svcs[SVC_WEB].real_servers.truncate(1);
    s.services = Arc::new(ServiceTable::new(svcs));
    s.ports[1].mtu = inside_mtu;
    Lb::with(s)
}

const C: Ep = (CLIENT, 40000);
const RS: Ep = (RS11, 8080);
const ISN: u32 = 0x1000_0000;
const SERVER_ISN: u32 = 0x9000_0000;

fn seq(ip: &[u8]) -> u32 {
    let t = view::l4(ip);
    u32::from_be_bytes([t[4], t[5], t[6], t[7]])
}
fn ack(ip: &[u8]) -> u32 {
    let t = view::l4(ip);
    u32::from_be_bytes([t[8], t[9], t[10], t[11]])
}
fn header_len(ip: &[u8]) -> usize {
    usize::from(view::l4(ip)[12] >> 4) * 4
}
fn payload(ip: &[u8]) -> Vec<u8> {
    view::l4(ip)[header_len(ip)..].to_vec()
}

/// A TCP segment with the given numbers and options (valid checksums).
fn segment(src: Ep, dst: Ep, flags: u8, seq: u32, ack: u32, opts: &[u8], data: &[u8]) -> Vec<u8> {
    let mut t = build::tcp(src, dst, flags, opts, data);
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[16] = 0;
    t[17] = 0;
    let ck = build::l4_csum(src.0, dst.0, 6, &t);
    t[16..18].copy_from_slice(&ck.to_be_bytes());
    build::ipv4(&Ip::new(src.0, dst.0, 6), &t)
}

/// Sends the client's SYN and the server's SYN-ACK (MSS 1460) through;
/// returns the SYN-ACK as the client gets it.
fn handshake(lb: &mut Lb) -> Vec<u8> {
    let syn = segment(C, WEB, SYN, ISN, 0, &[2, 4, 0x05, 0xb4], b"");
    lb.rx(0, &from_outside(&syn)).one();
    let syn_ack = segment(
        RS,
        C,
        SYN | ACK,
        SERVER_ISN,
        ISN + 1,
        &[2, 4, 0x05, 0xb4],
        b"",
    );
    let (_, f) = lb.rx(1, &from_inside(RS11, &syn_ack)).one();
    view::l3(&f).to_vec()
}

#[track_caller]
fn valid(ip: &[u8]) {
    assert!(view::ip_ok(ip), "IPv4 checksum");
    assert!(view::l4_ok(ip), "TCP checksum");
}

#[test]
fn a_proxy_v2_connection_gets_its_header_and_translated_numbers() {
    let mut lb = carrying_lb(ClientAddress::ProxyV2, 1500);
    let syn_ack = handshake(&mut lb);
    let t = view::l4(&syn_ack);
    assert_eq!(u16::from_be_bytes([t[22], t[23]]), 1460 - 28, "MSS lowered");
    valid(&syn_ack);

    let req = segment(
        C,
        WEB,
        PSH | ACK,
        ISN + 1,
        SERVER_ISN + 1,
        &[],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let (port, f) = lb.rx(0, &from_outside(&req)).one();
    assert_eq!(port, 1);
    let ip = view::l3(&f);
    valid(ip);
    let header = proxy_v2::header_v4(Endpoint::new(CLIENT, 40000), Endpoint::new(VIP, 80));
    let got = payload(ip);
    assert_eq!(&got[..28], &header);
    assert_eq!(&got[28..], b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(lb.w.stats.client_addr.proxy_v2_inserted, 1);

    let more = segment(C, WEB, PSH | ACK, ISN + 19, SERVER_ISN + 1, &[], b"more");
    let (_, f) = lb.rx(0, &from_outside(&more)).one();
    assert_eq!(seq(view::l3(&f)), ISN + 19 + 28);
    valid(view::l3(&f));

    let reply = segment(RS, C, ACK, SERVER_ISN + 1, ISN + 1 + 28 + 22, &[], b"");
    let (port, f) = lb.rx(1, &from_inside(RS11, &reply)).one();
    assert_eq!(port, 0);
    assert_eq!(ack(view::l3(&f)), ISN + 1 + 22);
    valid(view::l3(&f));
}

#[test]
fn a_toa_connection_gets_the_option_on_its_handshake_ack() {
    let mut lb = carrying_lb(ClientAddress::Toa, 1500);
    let syn_ack = handshake(&mut lb);
    let t = view::l4(&syn_ack);
    assert_eq!(u16::from_be_bytes([t[22], t[23]]), 1460 - 8);
    let ack_seg = segment(C, WEB, ACK, ISN + 1, SERVER_ISN + 1, &[], b"");
    let (_, f) = lb.rx(0, &from_outside(&ack_seg)).one();
    let ip = view::l3(&f);
    valid(ip);
    assert_eq!(header_len(ip), 28);
    let t = view::l4(ip);
    assert_eq!(toa::find(&t[20..28]), Some((CLIENT, 40000)));
    assert_eq!(lb.w.stats.client_addr.toa_inserted, 1);
}

#[test]
fn a_first_segment_too_big_for_the_header_is_answered_with_frag_needed() {
    // The inside port's MTU is below what the server's MSS allows.
    let mut lb = carrying_lb(ClientAddress::ProxyV2, 1400);
    handshake(&mut lb);
    let big = segment(
        C,
        WEB,
        PSH | ACK,
        ISN + 1,
        SERVER_ISN + 1,
        &[],
        &[7u8; 1360],
    );
    let (port, f) = lb.rx(0, &from_outside(&big)).one();
    assert_eq!(port, 0, "back to the client");
    let ip = view::l3(&f);
    assert_eq!(view::proto(ip), 1);
    assert_eq!(view::dst(ip), CLIENT);
    let icmp = view::l4(ip);
    assert_eq!((icmp[0], icmp[1]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400 - 28);
    assert_eq!(
        &icmp[8 + 16..8 + 20],
        &VIP.octets(),
        "quotes the client's packet"
    );
    assert_eq!(lb.w.stats.client_addr.skipped_too_big, 1);
    assert_eq!(lb.w.stats.client_addr.proxy_v2_inserted, 0);
}
