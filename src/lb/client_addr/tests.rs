//! The hooks on whole IPv4 packets, every checksum checked after every
//! change by an independent RFC 1071 sum.

use super::*;
use std::net::Ipv4Addr;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const ISN: u32 = 1000;
const SERVER_ISN: u32 = 50_000;
const MTU: usize = 1500;

fn ends() -> (Endpoint, Endpoint) {
    (Endpoint::new(CLIENT, 40000), Endpoint::new(VIP, 80))
}

fn csum(b: &[u8]) -> u16 {
    crate::testutil::rfc1071(b)
}

/// A client → real server segment (after NAT) or, with `reply`, the
/// server's, with valid checksums.
fn packet(reply: bool, seq: u32, ack: u32, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = if reply {
        (RIP, CLIENT, 8080u16, 40000u16)
    } else {
        (CLIENT, RIP, 40000, 8080)
    };
    let hl = 20 + options.len();
    let total = 20 + hl + payload.len();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 63, 6, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let ck = csum(&p);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.extend_from_slice(&[((hl / 4) as u8) << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    let ck = !fold_l4(&p);
    p[36..38].copy_from_slice(&ck.to_be_bytes());
    p
}

/// The one's complement sum of the TCP segment and its pseudo-header.
fn fold_l4(p: &[u8]) -> u16 {
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let mut pseudo = p[12..20].to_vec();
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&((total - 20) as u16).to_be_bytes());
    pseudo.extend_from_slice(&p[20..total]);
    !csum(&pseudo)
}

/// Both checksums right and the IPv4 length the buffer's.
fn assert_valid(p: &[u8]) {
    assert_eq!(csum(&p[..20]), 0, "IPv4 header checksum");
    assert_eq!(
        usize::from(u16::from_be_bytes([p[2], p[3]])),
        p.len(),
        "total length"
    );
    assert_eq!(fold_l4(p), 0xffff, "TCP checksum");
}

fn seq_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[24], p[25], p[26], p[27]])
}
fn ack_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[28], p[29], p[30], p[31]])
}
fn payload_of(p: &[u8]) -> &[u8] {
    &p[20 + usize::from(p[32] >> 4) * 4..]
}

const SYN_FLAG: u8 = 0x02;
const ACK_FLAG: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

/// A connection's state after its client SYN went through the hook.
fn armed(mode: ClientAddress) -> Carried {
    let mut st = Carried::default();
    let mut syn = packet(false, ISN, 0, SYN_FLAG, &[2, 4, 0x05, 0xb4], b"");
    let before = syn.clone();
    assert_eq!(
        to_real_server(&mut syn, mode, &mut st, ends(), MTU),
        Outcome::Armed
    );
    assert_eq!(syn, before, "the SYN itself is not changed");
    st
}

#[test]
fn toa_rides_on_the_ack_that_completes_the_handshake() {
    let mut st = armed(ClientAddress::Toa);
    let mut p = packet(false, ISN + 1, SERVER_ISN + 1, ACK_FLAG, &[], b"");
    let out = to_real_server(&mut p, ClientAddress::Toa, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Inserted { again: false });
    assert_valid(&p);
    assert_eq!(p[32] >> 4, 7, "data offset grew by two words");
    // The scapy reference of toa::tests: port 40000, 198.51.100.7.
    assert_eq!(
        &p[40..48],
        &[0xfe, 0x08, 0x9c, 0x40, 0xc6, 0x33, 0x64, 0x07]
    );
    assert_eq!(toa::find(&p[40..48]), Some((CLIENT, 40000)));
}

#[test]
fn toa_goes_first_among_existing_options_and_keeps_the_payload() {
    let mut st = armed(ClientAddress::Toa);
    let ts = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3];
    let mut p = packet(
        false,
        ISN + 1,
        SERVER_ISN + 1,
        PSH_ACK,
        &ts,
        b"GET / HTTP/1.1\r\n\r\n",
    );
    let out = to_real_server(&mut p, ClientAddress::Toa, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Inserted { again: false });
    assert_valid(&p);
    assert_eq!(p[40], toa::KIND);
    assert_eq!(&p[48..60], &ts);
    assert_eq!(payload_of(&p), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(seq_of(&p), ISN + 1, "no sequence change");
}

#[test]
fn toa_is_not_inserted_past_the_first_byte() {
    let mut st = armed(ClientAddress::Toa);
    let mut p = packet(false, ISN + 101, SERVER_ISN + 1, PSH_ACK, &[], b"more");
    let before = p.clone();
    let out = to_real_server(&mut p, ClientAddress::Toa, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Unchanged);
    assert_eq!(p, before);
}

#[test]
fn toa_is_skipped_when_the_tcp_header_would_pass_60_bytes() {
    let mut st = armed(ClientAddress::Toa);
    let mut p = packet(false, ISN + 1, SERVER_ISN + 1, ACK_FLAG, &[1; 36], b"");
    let before = p.clone();
    let out = to_real_server(&mut p, ClientAddress::Toa, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Skipped(Skip::HeaderFull));
    assert_eq!(p, before);
}

#[test]
fn an_insertion_past_the_mtu_is_skipped() {
    let mut st = armed(ClientAddress::Toa);
    let mut p = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], &[b'a'; 100]);
    let before = p.clone();
    let out = to_real_server(&mut p, ClientAddress::Toa, &mut st, ends(), 145);
    assert_eq!(out, Outcome::Skipped(Skip::TooBig));
    assert_eq!(p, before);
}

/// A buffer without tailroom.
struct Full(Vec<u8>);
impl Grow for Full {
    fn bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn insert(&mut self, _: usize, _: usize) -> bool {
        false
    }
}

#[test]
fn a_packet_that_cannot_grow_is_skipped_untouched() {
    let mut st = armed(ClientAddress::ProxyV2);
    let p = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], b"GET /");
    let mut f = Full(p.clone());
    let out = to_real_server(&mut f, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Skipped(Skip::NoRoom));
    assert_eq!(f.0, p);
}

#[test]
fn proxy_v2_header_goes_before_the_first_data_byte() {
    let mut st = armed(ClientAddress::ProxyV2);
    // The handshake's ACK carries no data: nothing to insert, no shift.
    let mut ack = packet(false, ISN + 1, SERVER_ISN + 1, ACK_FLAG, &[], b"");
    let before = ack.clone();
    assert_eq!(
        to_real_server(&mut ack, ClientAddress::ProxyV2, &mut st, ends(), MTU),
        Outcome::Unchanged
    );
    assert_eq!(ack, before);
    let mut p = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], b"GET /");
    let out = to_real_server(&mut p, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Inserted { again: false });
    assert_valid(&p);
    let payload = payload_of(&p);
    assert_eq!(&payload[..28], &proxy_v2::header_v4(ends().0, ends().1));
    assert_eq!(&payload[28..], b"GET /");
    assert_eq!(seq_of(&p), ISN + 1);
}

#[test]
fn proxy_v2_shifts_later_client_segments_and_server_acks() {
    let mut st = armed(ClientAddress::ProxyV2);
    let mut first = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], &[b'a'; 100]);
    to_real_server(&mut first, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    let mut next = packet(false, ISN + 101, SERVER_ISN + 1, PSH_ACK, &[], &[b'b'; 50]);
    let out = to_real_server(&mut next, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Translated);
    assert_eq!(seq_of(&next), ISN + 101 + 28);
    assert_valid(&next);
    // The server acknowledges header and both segments: 28 + 150 bytes.
    let mut reply = packet(
        true,
        SERVER_ISN + 1,
        ISN + 1 + 28 + 150,
        PSH_ACK,
        &[],
        b"200 OK",
    );
    assert_eq!(
        to_client(&mut reply, ClientAddress::ProxyV2, &st),
        Outcome::Translated
    );
    assert_eq!(ack_of(&reply), ISN + 151);
    assert_eq!(seq_of(&reply), SERVER_ISN + 1, "its own numbers untouched");
    assert_valid(&reply);
    // The client's FIN later on.
    let mut fin = packet(false, ISN + 151, SERVER_ISN + 7, FIN_ACK, &[], b"");
    to_real_server(&mut fin, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(seq_of(&fin), ISN + 151 + 28);
    assert_valid(&fin);
}

#[test]
fn a_retransmitted_first_data_segment_carries_the_header_again() {
    let mut st = armed(ClientAddress::ProxyV2);
    let original = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], b"GET /");
    let mut p = original.clone();
    to_real_server(&mut p, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    let mut again = original.clone();
    let out = to_real_server(&mut again, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Inserted { again: true });
    assert_eq!(again, p, "the same bytes as the first time");
}

#[test]
fn an_ack_inside_the_header_acknowledges_none_of_the_client_s_bytes() {
    let st = armed(ClientAddress::ProxyV2);
    let mut reply = packet(true, SERVER_ISN + 1, ISN + 1 + 28, ACK_FLAG, &[], b"");
    to_client(&mut reply, ClientAddress::ProxyV2, &st);
    assert_eq!(ack_of(&reply), ISN + 1);
    assert_valid(&reply);
}

#[test]
fn sack_blocks_of_the_server_are_shifted_back() {
    let st = armed(ClientAddress::ProxyV2);
    let mut opts = vec![1, 1, 5, 10];
    opts.extend_from_slice(&(ISN + 1 + 28 + 200).to_be_bytes());
    opts.extend_from_slice(&(ISN + 1 + 28 + 300).to_be_bytes());
    let mut reply = packet(
        true,
        SERVER_ISN + 1,
        ISN + 1 + 28 + 100,
        ACK_FLAG,
        &opts,
        b"",
    );
    to_client(&mut reply, ClientAddress::ProxyV2, &st);
    assert_eq!(ack_of(&reply), ISN + 101);
    assert_eq!(&reply[44..48], &(ISN + 201).to_be_bytes());
    assert_eq!(&reply[48..52], &(ISN + 301).to_be_bytes());
    assert_valid(&reply);
}

#[test]
fn a_fin_as_the_client_s_first_byte_carries_the_header() {
    let mut st = armed(ClientAddress::ProxyV2);
    let mut fin = packet(false, ISN + 1, SERVER_ISN + 1, FIN_ACK, &[], b"");
    let out = to_real_server(&mut fin, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Inserted { again: false });
    assert_eq!(payload_of(&fin).len(), 28);
    assert_valid(&fin);
    // The server acknowledges header and FIN: the client sees its FIN's.
    let mut reply = packet(true, SERVER_ISN + 1, ISN + 1 + 28 + 1, FIN_ACK, &[], b"");
    to_client(&mut reply, ClientAddress::ProxyV2, &st);
    assert_eq!(ack_of(&reply), ISN + 2);
}

#[test]
fn the_server_s_syn_ack_offers_an_mss_lowered_by_the_growth() {
    for mode in [ClientAddress::ProxyV2, ClientAddress::Toa] {
        let st = armed(mode);
        let mut syn_ack = packet(
            true,
            SERVER_ISN,
            ISN + 1,
            0x12,
            &[2, 4, 0x05, 0xb4, 1, 1, 4, 2],
            b"",
        );
        assert_eq!(to_client(&mut syn_ack, mode, &st), Outcome::Translated);
        let mss = u16::from_be_bytes([syn_ack[42], syn_ack[43]]);
        assert_eq!(usize::from(mss), 1460 - mode.growth());
        assert_eq!(
            ack_of(&syn_ack),
            ISN + 1,
            "the SYN's ack is not inside the header"
        );
        assert_valid(&syn_ack);
    }
}

#[test]
fn a_connection_whose_syn_was_not_seen_is_left_alone() {
    let mut st = Carried::default();
    let mut p = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], b"GET /");
    let before = p.clone();
    let out = to_real_server(&mut p, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Unchanged);
    assert_eq!(p, before);
    let mut reply = packet(true, SERVER_ISN + 1, ISN + 40, ACK_FLAG, &[], b"");
    let before = reply.clone();
    assert_eq!(
        to_client(&mut reply, ClientAddress::ProxyV2, &st),
        Outcome::Unchanged
    );
    assert_eq!(reply, before);
}

#[test]
fn the_hooks_never_panic_on_garbage() {
    let mut st = armed(ClientAddress::ProxyV2);
    for len in 0..64 {
        let mut p: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
        if len > 9 {
            p[0] = 0x45;
            p[9] = 6;
        }
        let _ = to_real_server(&mut p, ClientAddress::ProxyV2, &mut st, ends(), MTU);
        let _ = to_client(&mut p, ClientAddress::ProxyV2, &st);
    }
}

/// An ICMP "fragmentation needed" from a router on the server's side,
/// quoting `quoted` whole.
fn frag_needed(quoted: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + quoted.len();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 9, 0, 0, 64, 1, 0, 0]);
    p.extend_from_slice(&Ipv4Addr::new(10, 1, 0, 254).octets());
    p.extend_from_slice(&CLIENT.octets());
    let ck = csum(&p);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    icmp.extend_from_slice(quoted);
    let ck = csum(&icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    p.extend_from_slice(&icmp);
    p
}

#[test]
fn an_icmp_error_quoting_a_shifted_segment_gets_the_client_s_number_back() {
    let mut st = armed(ClientAddress::ProxyV2);
    let mut seg = packet(false, ISN + 101, SERVER_ISN + 1, PSH_ACK, &[], &[b'z'; 40]);
    to_real_server(&mut seg, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(seq_of(&seg), ISN + 101 + 28);
    let mut err = frag_needed(&seg);
    assert!(unshift_quoted_seq(&mut err, &st));
    let quoted = &err[28..];
    assert_eq!(seq_of(quoted), ISN + 101);
    assert_valid(quoted);
    // The segment carrying the header keeps its number (the client's).
    let mut first = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], b"GET /");
    to_real_server(&mut first, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    let mut err = frag_needed(&first);
    assert!(!unshift_quoted_seq(&mut err, &st));
    assert_eq!(seq_of(&err[28..]), ISN + 1);
}

#[test]
fn a_later_syn_does_not_move_the_first_byte() {
    let mut st = armed(ClientAddress::ProxyV2);
    let before = st;
    let mut stray = packet(false, 777_777, 0, SYN_FLAG, &[], b"");
    let out = to_real_server(&mut stray, ClientAddress::ProxyV2, &mut st, ends(), MTU);
    assert_eq!(out, Outcome::Unchanged);
    assert_eq!(st, before);
}

#[test]
fn growth_of_names_the_segments_that_grow() {
    let st = armed(ClientAddress::ProxyV2);
    let first = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], b"GET /");
    let ack = packet(false, ISN + 1, SERVER_ISN + 1, ACK_FLAG, &[], b"");
    let later = packet(false, ISN + 6, SERVER_ISN + 1, PSH_ACK, &[], b"more");
    assert_eq!(growth_of(&first, ClientAddress::ProxyV2, &st), 28);
    assert_eq!(growth_of(&ack, ClientAddress::ProxyV2, &st), 0);
    assert_eq!(growth_of(&later, ClientAddress::ProxyV2, &st), 0);
    let toa = armed(ClientAddress::Toa);
    assert_eq!(growth_of(&ack, ClientAddress::Toa, &toa), 8);
    assert_eq!(
        growth_of(&first, ClientAddress::ProxyV2, &Carried::default()),
        0
    );
}

#[test]
fn an_armed_state_names_its_mode() {
    assert_eq!(Carried::default().mode(), None);
    assert_eq!(
        armed(ClientAddress::ProxyV2).mode(),
        Some(ClientAddress::ProxyV2)
    );
    assert_eq!(armed(ClientAddress::Toa).mode(), Some(ClientAddress::Toa));
}

#[test]
fn a_later_fragment_is_left_alone_and_a_first_one_is_not_grown() {
    let mut st = armed(ClientAddress::ProxyV2);
    let mut later = packet(false, ISN + 101, SERVER_ISN + 1, PSH_ACK, &[], &[1; 40]);
    later[6] = 0x00;
    later[7] = 0x05; // offset 40 bytes
    let before = later.clone();
    assert_eq!(
        to_real_server(&mut later, ClientAddress::ProxyV2, &mut st, ends(), MTU),
        Outcome::Unchanged
    );
    assert_eq!(later, before);
    let mut first = packet(false, ISN + 1, SERVER_ISN + 1, PSH_ACK, &[], &[1; 40]);
    first[6] = 0x20; // more fragments
    assert_eq!(
        to_real_server(&mut first, ClientAddress::ProxyV2, &mut st, ends(), MTU),
        Outcome::Skipped(Skip::Fragment)
    );
}
