//! Frames are built byte by byte here, and replies checked with a
//! checksum written independently of `wire::checksum`, so the worker is
//! not judged by its own parser.
use super::*;
use crate::dataplane::io::{VecFrame, VecOutput};
use proptest::prelude::*;

const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OTHER_PORT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const MINUTE: u64 = 60_000_000_000;

fn worker() -> Worker<VecFrame> {
    let mut setup = WorkerSetup::ports_only(vec![
        PortSetup {
            mac: OUR_MAC,
            addresses: vec![Ipv4Cidr::new(OUR_IP, 24).unwrap()],
            addresses6: Vec::new(),
            mtu: 1500,
        },
        PortSetup {
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            addresses: vec![Ipv4Cidr::new(OTHER_PORT_IP, 24).unwrap()],
            addresses6: Vec::new(),
            mtu: 1500,
        },
    ]);
    setup.neigh_capacity = 64;
    setup.neigh_max_age_ns = 5 * MINUTE;
    Worker::new(&setup)
}

/// Runs one frame through `w` and says what became of it, the way the
/// worker's decisions read: the bytes sent (copied back into `f`) and the
/// port, or the drop reason, or neither (used up).
fn handle(w: &mut Worker<VecFrame>, port: usize, f: &mut Vec<u8>, now: u64) -> Verdict {
    let before = w.stats;
    let mut out = VecOutput::default();
    w.handle(port, VecFrame::new(f), now, &mut out);
    if let Some((p, bytes)) = out.sent.pop() {
        assert!(out.sent.is_empty(), "one frame in, at most one out");
        *f = bytes;
        return Verdict::Transmit(p);
    }
    for r in DropReason::ALL {
        if w.stats.drops[r as usize] > before.drops[r as usize] {
            return Verdict::Drop(r);
        }
    }
    Verdict::Done
}

/// RFC 1071, independently of `wire::checksum` (see `crate::testutil`).
fn csum(data: &[u8]) -> u16 {
    crate::testutil::rfc1071(data)
}

fn eth(dst: MacAddr, src: MacAddr, vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if let Some(id) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn arp_frame(op: u16, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = eth(MacAddr::BROADCAST, sha, None, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

/// An IPv4 packet (valid checksums unless spoiled later).
fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let hl = 20 + options.len();
    let total = (hl + l4.len()) as u16;
    let mut p = vec![0x40 | (hl / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0xab, 0xcd, 0x40, 0x00, 57, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    let ck = csum(&p);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let ck = csum(&m);
    m[2..4].copy_from_slice(&ck.to_be_bytes());
    m
}

fn ping(dst: Ipv4Addr, vlan: Option<u16>, options: &[u8]) -> Vec<u8> {
    let mut f = eth(OUR_MAC, PEER_MAC, vlan, 0x0800);
    f.extend(ip_packet(
        PEER_IP,
        dst,
        1,
        options,
        &echo_request(0x77, 3, b"abcdefgh"),
    ));
    f
}

#[test]
fn answers_arp_request_for_own_address() {
    let mut w = worker();
    let mut f = arp_frame(1, PEER_MAC, PEER_IP, OUR_IP);
    assert_eq!(handle(&mut w, 0, &mut f, 0), Verdict::Transmit(0));
    assert_eq!(&f[0..6], &PEER_MAC.0, "to the asker");
    assert_eq!(&f[6..12], &OUR_MAC.0, "from our MAC");
    assert_eq!(&f[12..14], &[8, 6]);
    assert_eq!(&f[20..22], &[0, 2], "a reply");
    assert_eq!(&f[22..28], &OUR_MAC.0);
    assert_eq!(&f[28..32], &OUR_IP.octets());
    assert_eq!(&f[32..38], &PEER_MAC.0);
    assert_eq!(&f[38..42], &PEER_IP.octets());
    assert_eq!(w.stats.arp_requests_answered, 1);
}

#[test]
fn arp_request_learns_the_sender() {
    let mut w = worker();
    let mut f = arp_frame(1, PEER_MAC, PEER_IP, OUR_IP);
    handle(&mut w, 0, &mut f, 0);
    let n = w.neighbors().lookup(PEER_IP, 1).unwrap();
    assert_eq!((n.mac, n.port), (PEER_MAC, 0));
    assert_eq!(w.stats.arp_learned, 1);
}

#[test]
fn arp_for_a_stranger_is_dropped_and_not_learned() {
    let mut w = worker();
    let mut f = arp_frame(1, PEER_MAC, PEER_IP, Ipv4Addr::new(192, 0, 2, 99));
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    assert!(w.neighbors().lookup(PEER_IP, 0).is_none());
}

#[test]
fn arp_for_another_ports_address_is_not_answered_here() {
    let mut w = worker();
    let mut f = arp_frame(1, PEER_MAC, PEER_IP, OTHER_PORT_IP);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
}

#[test]
fn arp_reply_to_us_is_learned_and_consumed() {
    let mut w = worker();
    let mut f = arp_frame(2, PEER_MAC, PEER_IP, OUR_IP);
    assert_eq!(handle(&mut w, 0, &mut f, 0), Verdict::Done);
    assert!(w.neighbors().lookup(PEER_IP, 0).is_some());
}

#[test]
fn known_neighbour_is_refreshed_by_any_arp() {
    let mut w = worker();
    handle(&mut w, 0, &mut arp_frame(1, PEER_MAC, PEER_IP, OUR_IP), 0);
    let moved = MacAddr([2, 0, 0, 0, 0, 0x0b]);
    let mut f = arp_frame(1, moved, PEER_IP, Ipv4Addr::new(192, 0, 2, 99));
    handle(&mut w, 0, &mut f, MINUTE);
    assert_eq!(w.neighbors().lookup(PEER_IP, MINUTE).unwrap().mac, moved);
}

#[test]
fn arp_probe_and_address_claims_are_not_learned() {
    let mut w = worker();
    handle(
        &mut w,
        0,
        &mut arp_frame(1, PEER_MAC, Ipv4Addr::UNSPECIFIED, OUR_IP),
        0,
    );
    handle(&mut w, 0, &mut arp_frame(2, PEER_MAC, OUR_IP, OUR_IP), 0);
    assert_eq!(w.stats.arp_learned, 0);
}

#[test]
fn arp_with_unknown_operation_is_malformed() {
    let mut w = worker();
    let mut f = arp_frame(3, PEER_MAC, PEER_IP, OUR_IP);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::Malformed)
    );
}

#[test]
fn arp_cut_short_is_truncated() {
    let mut w = worker();
    let mut f = arp_frame(1, PEER_MAC, PEER_IP, OUR_IP);
    f.truncate(14 + 20);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::Truncated)
    );
}

/// Checks `f` is a valid echo reply to [`ping`], with the IPv4 header at `l3`.
fn assert_echo_reply(f: &[u8], l3: usize, hl: usize) {
    assert_eq!(&f[0..6], &PEER_MAC.0);
    assert_eq!(&f[6..12], &OUR_MAC.0);
    let ip = &f[l3..];
    assert_eq!(csum(&ip[..hl]), 0, "IPv4 header checksum");
    assert_eq!(ip[8], 64, "TTL");
    assert_eq!(&ip[12..16], &OUR_IP.octets());
    assert_eq!(&ip[16..20], &PEER_IP.octets());
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let icmp = &ip[hl..total];
    assert_eq!(icmp[0], 0, "echo reply");
    assert_eq!(csum(icmp), 0, "ICMP checksum");
    assert_eq!(&icmp[4..8], &[0, 0x77, 0, 3], "id and seq kept");
    assert_eq!(&icmp[8..], b"abcdefgh", "data kept");
}

#[test]
fn answers_echo_to_own_address() {
    let mut w = worker();
    let mut f = ping(OUR_IP, None, &[]);
    assert_eq!(handle(&mut w, 0, &mut f, 0), Verdict::Transmit(0));
    assert_echo_reply(&f, 14, 20);
    assert_eq!(w.stats.icmp_echo_answered, 1);
}

#[test]
fn answers_echo_to_another_ports_address_on_the_receiving_port() {
    let mut w = worker();
    let mut f = eth(OUR_MAC, PEER_MAC, None, 0x0800);
    f.extend(ip_packet(
        PEER_IP,
        OTHER_PORT_IP,
        1,
        &[],
        &echo_request(0x77, 3, b"abcdefgh"),
    ));
    assert_eq!(handle(&mut w, 0, &mut f, 0), Verdict::Transmit(0));
}

#[test]
fn echo_reply_keeps_the_vlan_tag() {
    let mut w = worker();
    let mut f = ping(OUR_IP, Some(100), &[]);
    assert_eq!(handle(&mut w, 0, &mut f, 0), Verdict::Transmit(0));
    assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 100]);
    assert_echo_reply(&f, 18, 20);
}

#[test]
fn echo_with_ip_options_is_answered() {
    let mut w = worker();
    let mut f = ping(OUR_IP, None, &[1, 1, 1, 0]);
    assert_eq!(handle(&mut w, 0, &mut f, 0), Verdict::Transmit(0));
    assert_echo_reply(&f, 14, 24);
}

#[test]
fn echo_in_a_padded_frame_is_answered() {
    let mut w = worker();
    let mut f = ping(OUR_IP, None, &[]);
    f.resize(f.len() + 10, 0xee);
    assert_eq!(handle(&mut w, 0, &mut f, 0), Verdict::Transmit(0));
    assert_echo_reply(&f, 14, 20);
}

#[test]
fn echo_to_a_stranger_is_no_service() {
    let mut w = worker();
    let mut f = ping(Ipv4Addr::new(192, 0, 2, 99), None, &[]);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::NoService)
    );
}

#[test]
fn bad_ip_checksum_is_dropped() {
    let mut w = worker();
    let mut f = ping(OUR_IP, None, &[]);
    f[14 + 10] ^= 0xff;
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::BadChecksum)
    );
}

#[test]
fn bad_icmp_checksum_is_dropped() {
    let mut w = worker();
    let mut f = ping(OUR_IP, None, &[]);
    f[14 + 20 + 2] ^= 0xff;
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::BadChecksum)
    );
}

#[test]
fn udp_to_us_is_unsupported_protocol() {
    let mut w = worker();
    let mut f = eth(OUR_MAC, PEER_MAC, None, 0x0800);
    f.extend(ip_packet(
        PEER_IP,
        OUR_IP,
        17,
        &[],
        &[0x30, 0x39, 0, 53, 0, 8, 0, 0],
    ));
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
}

#[test]
fn echo_reply_to_us_is_not_answered() {
    let mut w = worker();
    let mut f = ping(OUR_IP, None, &[]);
    f[14 + 20] = 0;
    let ck = u16::from_be_bytes([f[36], f[37]]).wrapping_add(0x0800);
    f[36..38].copy_from_slice(&ck.to_be_bytes());
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
}

#[test]
fn fragment_to_us_is_dropped() {
    let mut w = worker();
    let mut f = eth(OUR_MAC, PEER_MAC, None, 0x0800);
    let mut ip = ip_packet(PEER_IP, OUR_IP, 1, &[], &echo_request(1, 1, b"x"));
    ip[6] = 0x20; // MF
    ip[10] = 0;
    ip[11] = 0;
    let ck = csum(&ip[..20]);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend(ip);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::Fragment)
    );
}

#[test]
fn unicast_to_another_mac_is_dropped() {
    let mut w = worker();
    let mut f = ping(OUR_IP, None, &[]);
    f[5] = 0x99;
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::OtherMac)
    );
}

#[test]
fn a_runt_ipv6_header_is_truncated() {
    let mut w = worker();
    let mut f = eth(OUR_MAC, PEER_MAC, None, 0x86dd);
    f.resize(14 + 39, 0x60);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::Truncated)
    );
}

#[test]
fn lldp_is_unsupported_ethertype() {
    let mut w = worker();
    let mut f = eth(OUR_MAC, PEER_MAC, None, 0x88cc);
    f.resize(60, 0);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::UnsupportedEthertype)
    );
}

#[test]
fn runt_frame_is_truncated() {
    let mut w = worker();
    assert_eq!(
        handle(&mut w, 0, &mut vec![0u8; 10], 0),
        Verdict::Drop(DropReason::Truncated)
    );
    let mut f = ping(OUR_IP, None, &[]);
    f.truncate(14 + 12);
    assert_eq!(
        handle(&mut w, 0, &mut f, 0),
        Verdict::Drop(DropReason::Truncated)
    );
}

#[test]
fn drops_are_counted_by_reason() {
    let mut w = worker();
    handle(&mut w, 0, &mut vec![0u8; 3], 0);
    handle(
        &mut w,
        0,
        &mut ping(Ipv4Addr::new(192, 0, 2, 99), None, &[]),
        0,
    );
    handle(&mut w, 0, &mut ping(OUR_IP, None, &[]), 0);
    assert_eq!(w.stats.rx_packets, 3);
    assert_eq!(w.stats.drops[DropReason::Truncated as usize], 1);
    assert_eq!(w.stats.drops[DropReason::NoService as usize], 1);
    assert_eq!(w.stats.total_drops(), 2);
}

proptest! {
    #[test]
    fn never_panics_on_any_bytes(
        mut f in proptest::collection::vec(any::<u8>(), 0..128),
        port in 0usize..3,
    ) {
        let mut w = worker();
        let v = handle(&mut w, port, &mut f, 0);
        if let Verdict::Transmit(p) = v { prop_assert!(p < 2); }
    }

    #[test]
    fn never_panics_on_mutated_pings(
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..5),
        cut in 0usize..70,
    ) {
        let mut f = ping(OUR_IP, Some(7), &[1, 1, 1, 0]);
        for (at, v) in flips { if at < f.len() { f[at] = v; } }
        f.truncate(cut);
        let mut w = worker();
        let v = handle(&mut w, 0, &mut f, 0);
        prop_assert_eq!(w.stats.rx_packets, 1);
        let dropped = matches!(v, Verdict::Drop(_));
        prop_assert_eq!(w.stats.total_drops(), u64::from(dropped));
    }
}

#[test]
fn bursts_larger_than_a_window_are_decided_whole_and_in_order() {
    // 70 + 0 + 40 frames: windows split a burst and span ports; every frame
    // is decided once, in the order received.
    let mut w = worker();
    let mut bursts: Vec<Vec<VecFrame>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for (port, n) in [(0usize, 70u16), (2, 40)] {
        for seq in 0..n {
            let mut f = eth(OUR_MAC, PEER_MAC, None, 0x0800);
            f.extend(ip_packet(
                PEER_IP,
                OUR_IP,
                1,
                &[],
                &echo_request(port as u16, seq, b"x"),
            ));
            bursts[port].push(VecFrame::new(&f));
        }
    }
    // Port 2 does not exist: its frames are dropped as bad_port, in order.
    let mut out = VecOutput::default();
    w.handle_bursts(&mut bursts, 0, &mut out);
    assert!(bursts.iter().all(Vec::is_empty));
    let seqs: Vec<u16> = out
        .sent
        .iter()
        .map(|(p, f)| {
            assert_eq!(*p, 0);
            u16::from_be_bytes([f[14 + 20 + 6], f[14 + 20 + 7]])
        })
        .collect();
    assert_eq!(seqs, (0..70).collect::<Vec<_>>());
    assert_eq!(w.stats.drops[DropReason::BadPort as usize], 40);
    assert_eq!(w.stats.rx_packets, 110);
}
