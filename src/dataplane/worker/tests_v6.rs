//! IPv6 at the worker's edge: neighbour discovery, echo, malformed
//! packets, the forwarding seam and its send path. Requests are built
//! with `wire::icmpv6` (checked byte for byte against scapy in its own
//! tests); the pcap table (`tests/pcap_ipv6.rs`) judges the replies with
//! scapy.
use super::*;
use crate::dataplane::io::{VecFrame, VecOutput};
use crate::wire::icmpv6::{self, Message, NeighborAdvert, NeighborSolicit};
use crate::wire::ipv6::{self, next_header};
use std::net::Ipv6Addr;

/// The outside port's MAC (shared with `tests_lb6`).
pub(super) const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
/// The inside port's MAC.
pub(super) const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
/// The real server's MAC.
pub(super) const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const MINUTE: u64 = 60_000_000_000;

pub(super) fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn our() -> Ipv6Addr {
    ip("2001:db8:1::1")
}

fn peer() -> Ipv6Addr {
    ip("2001:db8:1::10")
}

fn inside() -> Ipv6Addr {
    ip("2001:db8:2::1")
}

fn real() -> Ipv6Addr {
    ip("2001:db8:2::11")
}

fn vip() -> Ipv6Addr {
    ip("2001:db8:1::100")
}

/// Two ports: outside 2001:db8:1::1/64 (MTU 1500), inside
/// 2001:db8:2::1/64 (MTU 1280); both with an IPv4 address too.
pub(super) fn two_ports() -> WorkerSetup {
    WorkerSetup::ports_only(vec![
        PortSetup {
            mac: OUR_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 24).unwrap()],
            addresses6: vec![Ipv6Cidr::new(our(), 64).unwrap()],
            mtu: 1500,
        },
        PortSetup {
            mac: IN_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).unwrap()],
            addresses6: vec![Ipv6Cidr::new(inside(), 64).unwrap()],
            mtu: 1280,
        },
    ])
}

/// `two_ports`, no service, no neighbour known.
fn worker() -> Worker<VecFrame> {
    let mut w = Worker::new(&two_ports());
    // The start's unsolicited advertisements are out of the way.
    w.v6.announced = true;
    w
}

/// An Ethernet + IPv6 frame: `ext` (already chained, its first byte's
/// next header is written by the caller) then `upper`.
fn ipv6_frame(
    eth_dst: MacAddr,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hop_limit: u8,
    first_next: u8,
    body: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst.0);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&0x86DDu16.to_be_bytes());
    let mut h = [0u8; 40];
    {
        let mut p = ipv6::Packet::init_header(&mut h[..]).unwrap();
        p.set_payload_len(body.len() as u16);
        p.set_next_header(first_next);
        p.set_hop_limit(hop_limit);
        p.set_src_addr(src);
        p.set_dst_addr(dst);
    }
    f.extend_from_slice(&h);
    f.extend_from_slice(body);
    f
}

fn ns_frame(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, sll: Option<MacAddr>) -> Vec<u8> {
    let mut body = [0u8; 32];
    let ns = NeighborSolicit {
        target,
        source_ll: sll,
    };
    let n = ns.emit(&mut body, (src, dst)).unwrap();
    let eth_dst = if dst.is_multicast() {
        icmpv6::multicast_mac(dst)
    } else {
        OUR_MAC
    };
    ipv6_frame(eth_dst, (src, dst), 255, next_header::ICMPV6, &body[..n])
}

/// An advertisement of `target` at `mac` to our inside address (solicited)
/// or to all nodes.
fn na_frame(target: Ipv6Addr, mac: MacAddr, solicited: bool) -> Vec<u8> {
    let na = NeighborAdvert {
        router: false,
        solicited,
        override_flag: true,
        target,
        target_ll: Some(mac),
    };
    let mut body = [0u8; 32];
    let dst = if solicited {
        inside()
    } else {
        icmpv6::ALL_NODES
    };
    let n = na.emit(&mut body, (target, dst)).unwrap();
    let eth_dst = if solicited {
        IN_MAC
    } else {
        icmpv6::multicast_mac(dst)
    };
    ipv6_frame(eth_dst, (target, dst), 255, next_header::ICMPV6, &body[..n])
}

fn echo_frame(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
    body.extend_from_slice(b"ping six");
    icmpv6::Packet::new_unchecked(&mut body[..]).fill_checksum(src, dst);
    ipv6_frame(OUR_MAC, (src, dst), 64, next_header::ICMPV6, &body)
}

fn udp_frame(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, payload: usize) -> Vec<u8> {
    let mut body = vec![0u8; 8 + payload];
    body[0..2].copy_from_slice(&5353u16.to_be_bytes());
    body[2..4].copy_from_slice(&53u16.to_be_bytes());
    body[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    ipv6::fill_upper_checksum(src, dst, next_header::UDP, &mut body).unwrap();
    ipv6_frame(OUR_MAC, (src, dst), hop_limit, next_header::UDP, &body)
}

fn run(w: &mut Worker<VecFrame>, port: usize, f: &[u8], now: u64) -> VecOutput {
    let mut out = VecOutput::default();
    w.handle(port, VecFrame::new(f), now, &mut out);
    out
}

fn drops(w: &Worker<VecFrame>, r: DropReason) -> u64 {
    w.stats.drops[r as usize]
}

/// The IPv6 packet and ICMPv6 message of a frame sent.
fn icmp_of(frame: &[u8]) -> (ipv6::Packet<&[u8]>, icmpv6::Packet<&[u8]>) {
    assert_eq!(&frame[12..14], &[0x86, 0xDD]);
    let ip = ipv6::Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(ip.next_header(), next_header::ICMPV6);
    let msg =
        icmpv6::Packet::new_checked(&frame[14 + 40..14 + 40 + ip.payload_len() as usize]).unwrap();
    assert!(msg.verify_checksum(ip.src_addr(), ip.dst_addr()));
    (ip, msg)
}

#[test]
fn a_solicitation_for_an_own_address_is_answered_with_a_solicited_advertisement() {
    let mut w = worker();
    let ns = ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC));
    let out = run(&mut w, 0, &ns, 1);
    assert_eq!(out.sent.len(), 1);
    let (port, f) = &out.sent[0];
    assert_eq!(*port, 0);
    assert_eq!(&f[0..6], &PEER_MAC.0);
    assert_eq!(&f[6..12], &OUR_MAC.0);
    let (ip6, msg) = icmp_of(f);
    assert_eq!(
        (ip6.src_addr(), ip6.dst_addr(), ip6.hop_limit()),
        (our(), peer(), 255)
    );
    assert_eq!(msg.msg_type(), Message::NeighborAdvert);
    let na = NeighborAdvert::parse(&msg).unwrap();
    assert!(na.solicited && na.override_flag && !na.router);
    assert_eq!((na.target, na.target_ll), (our(), Some(OUR_MAC)));
    assert_eq!(w.stats.nd_solicits_answered, 1);
}

#[test]
fn a_solicitation_teaches_the_askers_link_layer_address() {
    let mut w = worker();
    let ns = ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC));
    run(&mut w, 0, &ns, 1);
    let n = w.neighbors6().lookup(peer(), 2).unwrap();
    assert_eq!((n.mac, n.port), (PEER_MAC, 0));
    assert_eq!(w.stats.nd_learned, 1);
}

#[test]
fn a_duplicate_address_probe_is_answered_to_all_nodes() {
    let mut w = worker();
    let ns = ns_frame(
        Ipv6Addr::UNSPECIFIED,
        icmpv6::solicited_node(our()),
        our(),
        None,
    );
    let out = run(&mut w, 0, &ns, 1);
    let (_, f) = &out.sent[0];
    assert_eq!(&f[0..6], &icmpv6::multicast_mac(icmpv6::ALL_NODES).0);
    let (ip6, msg) = icmp_of(f);
    assert_eq!(ip6.dst_addr(), icmpv6::ALL_NODES);
    let na = NeighborAdvert::parse(&msg).unwrap();
    assert!(!na.solicited && na.override_flag);
    assert!(
        w.neighbors6().entries().next().is_none(),
        "nothing to learn"
    );
}

#[test]
fn a_solicitation_for_a_foreign_target_is_not_answered() {
    let mut w = worker();
    let other = ip("2001:db8:1::77");
    let ns = ns_frame(peer(), icmpv6::solicited_node(other), other, Some(PEER_MAC));
    assert!(run(&mut w, 0, &ns, 1).sent.is_empty());
    assert_eq!(drops(&w, DropReason::NdNotForUs), 1);
    assert!(w.neighbors6().lookup(peer(), 1).is_none(), "not learned");
}

#[test]
fn a_solicitation_for_the_other_ports_address_is_not_answered() {
    let mut w = worker();
    let ns = ns_frame(
        peer(),
        icmpv6::solicited_node(inside()),
        inside(),
        Some(PEER_MAC),
    );
    assert!(run(&mut w, 0, &ns, 1).sent.is_empty());
    assert_eq!(drops(&w, DropReason::NdNotForUs), 1);
}

#[test]
fn a_solicitation_with_a_hop_limit_below_255_is_invalid() {
    let mut w = worker();
    let mut ns = ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC));
    ns[14 + 7] = 64;
    assert!(run(&mut w, 0, &ns, 1).sent.is_empty());
    assert_eq!(drops(&w, DropReason::NdInvalid), 1);
}

#[test]
fn a_solicitation_with_a_wrong_checksum_is_dropped() {
    let mut w = worker();
    let mut ns = ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC));
    ns[14 + 40 + 2] ^= 0xff;
    assert!(run(&mut w, 0, &ns, 1).sent.is_empty());
    assert_eq!(drops(&w, DropReason::BadChecksum), 1);
}

#[test]
fn a_vip_is_answered_on_the_port_of_its_connected_prefix_once_set() {
    let mut w = worker();
    let ns = ns_frame(peer(), icmpv6::solicited_node(vip()), vip(), Some(PEER_MAC));
    assert!(run(&mut w, 0, &ns, 1).sent.is_empty());
    w.set_vips6(vec![vip()]);
    let out = run(&mut w, 0, &ns, 2);
    let na = NeighborAdvert::parse(&icmp_of(&out.sent[0].1).1).unwrap();
    assert_eq!(na.target, vip());
    assert!(
        run(&mut w, 1, &ns, 3).sent.is_empty(),
        "not on the inside port"
    );
}

#[test]
fn a_backup_does_not_answer_for_a_vip() {
    let mut w = worker();
    w.set_vips6(vec![vip()]);
    w.command(
        Command::HaRole { master: false },
        0,
        &mut VecOutput::default(),
    );
    let ns = ns_frame(peer(), icmpv6::solicited_node(vip()), vip(), Some(PEER_MAC));
    assert!(run(&mut w, 0, &ns, 1).sent.is_empty());
}

#[test]
fn an_echo_request_to_an_own_address_is_answered() {
    let mut w = worker();
    let out = run(&mut w, 0, &echo_frame(peer(), our()), 1);
    let (port, f) = &out.sent[0];
    assert_eq!(*port, 0);
    assert_eq!(&f[0..6], &PEER_MAC.0);
    let (ip6, msg) = icmp_of(f);
    assert_eq!((ip6.src_addr(), ip6.dst_addr()), (our(), peer()));
    assert_eq!(msg.msg_type(), Message::EchoReply);
    assert_eq!((msg.echo_ident(), msg.echo_seq()), (0x1234, 1));
    assert_eq!(msg.data(), b"ping six");
    assert_eq!(w.stats.icmpv6_echo_answered, 1);
}

#[test]
fn an_echo_request_to_a_vip_is_answered() {
    let mut w = worker();
    w.set_vips6(vec![vip()]);
    let out = run(&mut w, 0, &echo_frame(peer(), vip()), 1);
    let (ip6, _) = icmp_of(&out.sent[0].1);
    assert_eq!(ip6.src_addr(), vip());
}

#[test]
fn an_echo_request_behind_a_destination_options_header_is_answered_without_it() {
    let mut w = worker();
    let plain = echo_frame(peer(), our());
    let icmp = &plain[14 + 40..];
    let mut body = vec![next_header::ICMPV6, 0, 1, 4, 0, 0, 0, 0];
    body.extend_from_slice(icmp);
    let f = ipv6_frame(OUR_MAC, (peer(), our()), 64, next_header::DEST_OPTS, &body);
    let out = run(&mut w, 0, &f, 1);
    let (ip6, msg) = icmp_of(&out.sent[0].1);
    assert_eq!(ip6.payload_len() as usize, icmp.len());
    assert_eq!(msg.msg_type(), Message::EchoReply);
    assert_eq!(out.sent[0].1.len(), 14 + 40 + icmp.len());
}

#[test]
fn udp_to_an_own_address_is_not_something_rvs_answers() {
    let mut w = worker();
    assert!(run(&mut w, 0, &udp_frame(peer(), our(), 64, 4), 1)
        .sent
        .is_empty());
    assert_eq!(drops(&w, DropReason::UnsupportedProtocol), 1);
}

#[test]
fn ipv6_to_another_address_goes_to_the_seam_and_is_dropped_as_no_service() {
    let mut w = worker();
    assert!(run(&mut w, 0, &udp_frame(peer(), real(), 64, 4), 1)
        .sent
        .is_empty());
    assert_eq!(drops(&w, DropReason::Ipv6NoService), 1);
}

#[test]
fn an_extension_header_flood_is_dropped_as_too_many() {
    let mut w = worker();
    let mut body = Vec::new();
    for _ in 0..ipv6::MAX_EXT_HEADERS + 1 {
        body.extend_from_slice(&[next_header::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
    }
    let last = body.len() - 8;
    body[last] = next_header::NO_NEXT_HEADER;
    let f = ipv6_frame(OUR_MAC, (peer(), our()), 64, next_header::DEST_OPTS, &body);
    assert!(run(&mut w, 0, &f, 1).sent.is_empty());
    assert_eq!(drops(&w, DropReason::Ipv6ExtTooMany), 1);
}

#[test]
fn a_hop_by_hop_header_after_the_first_place_is_dropped() {
    let mut w = worker();
    let body = [
        next_header::HOP_BY_HOP,
        0,
        1,
        4,
        0,
        0,
        0,
        0, //
        next_header::NO_NEXT_HEADER,
        0,
        1,
        4,
        0,
        0,
        0,
        0,
    ];
    let f = ipv6_frame(OUR_MAC, (peer(), our()), 64, next_header::DEST_OPTS, &body);
    run(&mut w, 0, &f, 1);
    assert_eq!(drops(&w, DropReason::Ipv6HopByHopNotFirst), 1);
}

#[test]
fn a_payload_length_beyond_the_frame_is_truncated() {
    let mut w = worker();
    let mut f = echo_frame(peer(), our());
    f[14 + 4..14 + 6].copy_from_slice(&1000u16.to_be_bytes());
    run(&mut w, 0, &f, 1);
    assert_eq!(drops(&w, DropReason::Truncated), 1);
}

#[test]
fn a_live_source_route_is_refused() {
    let mut w = worker();
    let mut body = vec![next_header::NO_NEXT_HEADER, 2, 0, 1, 0, 0, 0, 0];
    body.extend_from_slice(&real().octets());
    let f = ipv6_frame(OUR_MAC, (peer(), our()), 64, next_header::ROUTING, &body);
    run(&mut w, 0, &f, 1);
    assert_eq!(drops(&w, DropReason::Ipv6SourceRoute), 1);
}

#[test]
fn the_parse_reads_ports_and_the_upper_layer_once() {
    let w = worker();
    let f = udp_frame(peer(), real(), 64, 4);
    match parse::parse(&f, &w.lb) {
        Parsed::Ipv6(i) => {
            assert_eq!((i.l3, i.upper, i.protocol), (14, 40, next_header::UDP));
            assert_eq!((i.sport, i.dport, i.hop_limit), (5353, 53, 64));
            assert_eq!((i.src, i.dst), (peer(), real()));
            assert!(i.has_ports());
            assert_eq!(i.tcp_flags(), crate::lb::tcp_state::TcpFlags::NONE);
        }
        other => panic!("{other:?}"),
    }
}

/// Sends a UDP packet to the real server through the send path.
fn forward(
    w: &mut Worker<VecFrame>,
    hop_limit: u8,
    payload: usize,
    now: u64,
) -> (Result<(), DropReason>, VecOutput) {
    let mut out = VecOutput::default();
    let f = VecFrame::new(&udp_frame(peer(), real(), hop_limit, payload));
    let r = w.send_forwarded6(14, f, now, &mut out);
    (r, out)
}

#[test]
fn the_send_path_solicits_an_unknown_next_hop_and_sends_when_it_answers() {
    let mut w = worker();
    let (r, out) = forward(&mut w, 64, 10, 1);
    assert_eq!(r, Ok(()));
    assert_eq!(out.sent.len(), 1, "only the solicitation");
    let (port, ns) = &out.sent[0];
    assert_eq!(*port, 1);
    assert_eq!(
        &ns[0..6],
        &icmpv6::multicast_mac(icmpv6::solicited_node(real())).0
    );
    let (ip6, msg) = icmp_of(ns);
    assert_eq!(
        (ip6.src_addr(), ip6.dst_addr()),
        (inside(), icmpv6::solicited_node(real()))
    );
    assert_eq!(ip6.hop_limit(), 255);
    let ns = NeighborSolicit::parse(&msg).unwrap();
    assert_eq!((ns.target, ns.source_ll), (real(), Some(IN_MAC)));
    assert_eq!(w.stats.nd_solicits_sent, 1);

    let out = run(&mut w, 1, &na_frame(real(), RS_MAC, true), 2);
    assert_eq!(out.sent.len(), 1, "the parked packet");
    let (port, f) = &out.sent[0];
    assert_eq!(*port, 1);
    assert_eq!((&f[0..6], &f[6..12]), (&RS_MAC.0[..], &IN_MAC.0[..]));
    assert_eq!(f[14 + 7], 63, "hop limit decremented");
    assert_eq!(w.neighbors6().lookup(real(), 3).unwrap().mac, RS_MAC);
}

#[test]
fn the_send_path_sends_at_once_to_a_known_neighbour() {
    let mut w = worker();
    run(&mut w, 1, &na_frame(real(), RS_MAC, true), 1);
    assert!(
        w.neighbors6().lookup(real(), 1).is_none(),
        "unasked: not learned"
    );
    let _ = forward(&mut w, 64, 10, 1);
    run(&mut w, 1, &na_frame(real(), RS_MAC, true), 2);
    let (_, out) = forward(&mut w, 64, 10, 3);
    assert_eq!(out.sent.len(), 1);
    assert_eq!(&out.sent[0].1[0..6], &RS_MAC.0);
}

#[test]
fn the_send_path_queue_is_bounded_and_gives_up() {
    let mut w = worker();
    for _ in 0..crate::dataplane::pending::FRAMES_PER_NEIGHBOR + 2 {
        let _ = forward(&mut w, 64, 10, 1);
    }
    assert_eq!(drops(&w, DropReason::NeighborUnresolved), 2);
    w.tick(
        1 + crate::dataplane::pending::GIVE_UP_NS,
        &mut VecOutput::default(),
    );
    assert_eq!(
        drops(&w, DropReason::NeighborUnresolved),
        2 + crate::dataplane::pending::FRAMES_PER_NEIGHBOR as u64
    );
}

#[test]
fn a_hop_limit_that_runs_out_gets_time_exceeded_back() {
    let mut w = worker();
    run(
        &mut w,
        0,
        &ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC)),
        0,
    );
    let (r, out) = forward(&mut w, 1, 10, 1);
    assert_eq!(r, Err(DropReason::TtlExpired));
    let (port, f) = &out.sent[0];
    assert_eq!(*port, 0);
    assert_eq!(&f[0..6], &PEER_MAC.0);
    let (ip6, msg) = icmp_of(f);
    assert_eq!((ip6.src_addr(), ip6.dst_addr()), (our(), peer()));
    assert_eq!((msg.msg_type(), msg.code()), (Message::TimeExceeded, 0));
    assert_eq!(&msg.data()[8..24], &peer().octets(), "the quote");
    assert_eq!(w.stats.icmpv6_errors_sent, 1);
}

#[test]
fn a_packet_above_the_egress_mtu_gets_packet_too_big_back() {
    let mut w = worker();
    run(
        &mut w,
        0,
        &ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC)),
        0,
    );
    let (r, out) = forward(&mut w, 64, 1300, 1);
    assert_eq!(r, Err(DropReason::TooBig));
    let (ip6, msg) = icmp_of(&out.sent[0].1);
    assert_eq!((msg.msg_type(), msg.mtu()), (Message::PacketTooBig, 1280));
    assert!(ip6.payload_len() as usize <= ipv6::MIN_MTU - 40);
}

#[test]
fn errors_are_rate_limited() {
    let mut w = worker();
    run(
        &mut w,
        0,
        &ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC)),
        0,
    );
    for _ in 0..ICMPV6_ERRORS_PER_SEC + 5 {
        let _ = forward(&mut w, 1, 0, 1);
    }
    assert_eq!(w.stats.icmpv6_errors_sent, u64::from(ICMPV6_ERRORS_PER_SEC));
    assert_eq!(drops(&w, DropReason::Icmpv6RateLimited), 5);
    let _ = forward(&mut w, 1, 0, 1 + 1_000_000_000);
    assert_eq!(
        w.stats.icmpv6_errors_sent,
        u64::from(ICMPV6_ERRORS_PER_SEC) + 1
    );
}

#[test]
fn the_first_tick_announces_every_own_address() {
    let mut w = worker();
    w.v6.announced = false;
    let mut out = VecOutput::default();
    w.tick(0, &mut out);
    let mut seen: Vec<(usize, Ipv6Addr)> = out
        .sent
        .iter()
        .map(|(p, f)| {
            let (ip6, msg) = icmp_of(f);
            assert_eq!(ip6.dst_addr(), icmpv6::ALL_NODES);
            let na = NeighborAdvert::parse(&msg).unwrap();
            assert!(!na.solicited && na.override_flag);
            (*p, na.target)
        })
        .collect();
    seen.sort();
    assert_eq!(seen, vec![(0, our()), (1, inside())]);
    let mut again = VecOutput::default();
    w.tick(1, &mut again);
    assert!(again.sent.is_empty(), "once");
    let _ = MINUTE;
}

#[test]
fn a_solicitation_is_shared_with_the_other_workers_which_learn_but_do_not_answer() {
    let mut setup = WorkerSetup::ports_only(vec![PortSetup {
        mac: OUR_MAC,
        addresses: Vec::new(),
        addresses6: vec![Ipv6Cidr::new(our(), 64).unwrap()],
        mtu: 1500,
    }]);
    setup.worker_count = 2;
    let mut w0: Worker<VecFrame> = Worker::new(&setup);
    setup.worker_index = 1;
    let mut w1: Worker<VecFrame> = Worker::new(&setup);
    w0.v6.announced = true;
    w1.v6.announced = true;
    let ns = ns_frame(peer(), icmpv6::solicited_node(our()), our(), Some(PEER_MAC));
    let out = run(&mut w0, 0, &ns, 1);
    assert_eq!(out.sent.len(), 1, "the answer");
    assert_eq!(out.redirected.len(), 1, "a copy for worker 1");
    let (to, port, copy) = &out.redirected[0];
    assert_eq!((*to, *port), (1, 0));
    let mut out1 = VecOutput::default();
    w1.handle_from_peer(0, VecFrame::new(copy), 2, &mut out1);
    assert!(out1.sent.is_empty(), "answered once");
    assert_eq!(w1.neighbors6().lookup(peer(), 2).unwrap().mac, PEER_MAC);
    assert_eq!(w1.stats.total_drops(), 0);
}
