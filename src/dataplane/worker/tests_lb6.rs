//! IPv6 balancing through the worker: NAT both ways, DR, TUN, resets,
//! ICMPv6 errors translated, ND for a service's VIP, the owner of a flow
//! with several workers. Frames are built by hand; checksums are checked
//! with `wire::ipv6`'s full sums (the pcap table, `tests/pcap_ipv6.rs`,
//! judges the same paths with scapy).
use super::*;
use crate::dataplane::io::{VecFrame, VecOutput};
use crate::lb::kind::SchedulerKind;
use crate::lb::service::{ForwardMethod, Protocol, ServerState, VirtualService};
use crate::lb::xmit::Endpoint6;
use crate::wire::icmpv6::{self, Message, NeighborAdvert, NeighborSolicit};
use crate::wire::ipv6::{self, next_header};
use crate::wire::tcp;
use std::net::Ipv6Addr;

use super::tests_v6::{ip, two_ports, IN_MAC, OUR_MAC as OUT_MAC, RS_MAC};

const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);

fn inside() -> Ipv6Addr {
    ip("2001:db8:2::1")
}
fn client() -> Ipv6Addr {
    ip("2001:db8:1::10")
}
fn vip() -> Ipv6Addr {
    ip("2001:db8:1::100")
}
fn rs1() -> Ipv6Addr {
    ip("2001:db8:2::11")
}

fn service(forward: ForwardMethod, protocol: Protocol) -> VirtualService {
    let port = if forward == ForwardMethod::Nat {
        8080
    } else {
        80
    };
    VirtualService::new6(
        "web6",
        Endpoint6::new(vip(), 80),
        protocol,
        forward,
        SchedulerKind::Rr,
        [(Endpoint6::new(rs1(), port), 1)],
    )
}

/// `two_ports` (outside port 0, inside port 1 with MTU 1280), the client
/// and the real server known neighbours, `services`.
fn setup(services: Vec<VirtualService>) -> WorkerSetup {
    let mut s = two_ports();
    s.services = Arc::new(ServiceTable::new(services));
    s.ipv6.static_neighbors = vec![(client(), CLIENT_MAC, 0), (rs1(), RS_MAC, 1)];
    s
}

/// Worker `i` of `n` over `s`, each past its start's announcements.
fn workers_of(mut s: WorkerSetup, n: usize) -> Vec<Worker<VecFrame>> {
    s.worker_count = n;
    (0..n)
        .map(|i| {
            s.worker_index = i;
            let mut w: Worker<VecFrame> = Worker::new(&s);
            w.v6.announced = true;
            w
        })
        .collect()
}

/// Worker `index` kept what it handled when it is the `owner`, else
/// handed it to the owner.
fn assert_meets_owner(out: &VecOutput, index: usize, owner: usize) {
    if index == owner {
        assert!(out.redirected.is_empty());
    } else {
        assert_eq!(out.redirected.len(), 1);
        assert_eq!(out.redirected[0].0, owner);
    }
}

fn worker_with(services: Vec<VirtualService>) -> Worker<VecFrame> {
    let mut w = Worker::new(&setup(services));
    w.v6.announced = true;
    w
}

fn worker(forward: ForwardMethod) -> Worker<VecFrame> {
    worker_with(vec![service(forward, Protocol::Tcp)])
}

/// Ethernet + IPv6 + `ext` + `l4` (`first` is the header after IPv6).
fn frame(
    eth_dst: MacAddr,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    first: u8,
    ext: &[u8],
    l4: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst.0);
    f.extend_from_slice(&CLIENT_MAC.0);
    f.extend_from_slice(&0x86DDu16.to_be_bytes());
    let mut h = [0u8; 40];
    {
        let mut p = ipv6::Packet::init_header(&mut h[..]).unwrap();
        p.set_payload_len((ext.len() + l4.len()) as u16);
        p.set_next_header(first);
        p.set_hop_limit(64);
        p.set_src_addr(src);
        p.set_dst_addr(dst);
    }
    f.extend_from_slice(&h);
    f.extend_from_slice(ext);
    f.extend_from_slice(l4);
    f
}

/// A TCP segment between two endpoints, checksummed; behind a
/// destination-options header when `dest_opts`.
fn tcp_frame(
    eth_dst: MacAddr,
    from: (Ipv6Addr, u16),
    to: (Ipv6Addr, u16),
    flags: u8,
    payload: &[u8],
    dest_opts: bool,
) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&from.1.to_be_bytes());
    t[2..4].copy_from_slice(&to.1.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    t.extend_from_slice(payload);
    ipv6::fill_upper_checksum(from.0, to.0, next_header::TCP, &mut t).unwrap();
    if dest_opts {
        let ext = [next_header::TCP, 0, 1, 4, 0, 0, 0, 0];
        frame(eth_dst, (from.0, to.0), next_header::DEST_OPTS, &ext, &t)
    } else {
        frame(eth_dst, (from.0, to.0), next_header::TCP, &[], &t)
    }
}

/// A SYN from `client` port `sport` (arriving outside) to `to`.
fn syn_from((client, sport): (Ipv6Addr, u16), to: (Ipv6Addr, u16), payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        OUT_MAC,
        (client, sport),
        to,
        tcp::Flags::SYN,
        payload,
        false,
    )
}

fn syn() -> Vec<u8> {
    syn_from((client(), 40000), (vip(), 80), &[])
}

/// The real server's SYN-ACK (arriving inside) to `to`.
fn synack_to(to: (Ipv6Addr, u16)) -> Vec<u8> {
    tcp_frame(
        IN_MAC,
        (rs1(), 8080),
        to,
        tcp::Flags::SYN | tcp::Flags::ACK,
        &[],
        false,
    )
}

/// A UDP datagram from `from` to `to` carrying `data`, checksummed.
fn udp_frame(eth_dst: MacAddr, from: (Ipv6Addr, u16), to: (Ipv6Addr, u16), data: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&from.1.to_be_bytes());
    u[2..4].copy_from_slice(&to.1.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(data);
    ipv6::fill_upper_checksum(from.0, to.0, next_header::UDP, &mut u).unwrap();
    frame(eth_dst, (from.0, to.0), next_header::UDP, &[], &u)
}

fn run(w: &mut Worker<VecFrame>, port: usize, f: &[u8]) -> VecOutput {
    let mut out = VecOutput::default();
    w.handle(port, VecFrame::new(f), 1_000, &mut out);
    out
}

/// The one frame sent, on `port`.
fn sent_on(out: &VecOutput, port: usize) -> &[u8] {
    assert_eq!(out.sent.len(), 1, "{:?}", out.sent.len());
    assert_eq!(out.sent[0].0, port);
    &out.sent[0].1
}

fn ipv6_of(f: &[u8]) -> ipv6::Packet<&[u8]> {
    assert_eq!(&f[12..14], &[0x86, 0xDD]);
    ipv6::Packet::new_checked(&f[14..]).unwrap()
}

/// (src, dst, sport, dport) of a TCP/UDP packet, its checksum verified.
fn tuple(f: &[u8]) -> (Ipv6Addr, Ipv6Addr, u16, u16) {
    let p = ipv6_of(f);
    let u = p.upper_layer().unwrap();
    let seg = &f[14 + u.offset..14 + 40 + p.payload_len() as usize];
    assert!(ipv6::verify_upper_checksum(
        p.src_addr(),
        p.dst_addr(),
        u.protocol,
        seg
    ));
    let port = |i: usize| u16::from_be_bytes([seg[i], seg[i + 1]]);
    (p.src_addr(), p.dst_addr(), port(0), port(2))
}

#[test]
fn a_nat_syn_goes_to_the_real_server_rewritten_and_creates_a_connection() {
    let mut w = worker(ForwardMethod::Nat);
    let out = run(&mut w, 0, &syn());
    let f = sent_on(&out, 1);
    assert_eq!(&f[0..6], &RS_MAC.0);
    assert_eq!(&f[6..12], &IN_MAC.0);
    assert_eq!(tuple(f), (client(), rs1(), 40000, 8080));
    assert_eq!(ipv6_of(f).hop_limit(), 63);
    assert_eq!((w.stats.conns_created, w.stats.forwarded), (1, 1));
    assert_eq!(w.balancer().conn_count6(), 1);
}

#[test]
fn a_nat_reply_goes_back_to_the_client_from_the_vip() {
    let mut w = worker(ForwardMethod::Nat);
    run(&mut w, 0, &syn());
    let synack = synack_to((client(), 40000));
    let out = run(&mut w, 1, &synack);
    let f = sent_on(&out, 0);
    assert_eq!(&f[0..6], &CLIENT_MAC.0);
    assert_eq!(tuple(f), (vip(), client(), 80, 40000));
    assert_eq!(w.stats.conns_created, 1);
}

#[test]
fn a_nat_segment_behind_a_destination_options_header_is_rewritten_right() {
    let mut w = worker(ForwardMethod::Nat);
    let f = tcp_frame(
        OUT_MAC,
        (client(), 40000),
        (vip(), 80),
        tcp::Flags::SYN,
        &[],
        true,
    );
    let out = run(&mut w, 0, &f);
    let f = sent_on(&out, 1);
    assert_eq!(ipv6_of(f).next_header(), next_header::DEST_OPTS);
    assert_eq!(tuple(f), (client(), rs1(), 40000, 8080));
}

#[test]
fn udp_is_balanced_by_nat_too() {
    let mut w = worker_with(vec![service(ForwardMethod::Nat, Protocol::Udp)]);
    let u = udp_frame(OUT_MAC, (client(), 5353), (vip(), 80), &[0; 4]);
    let out = run(&mut w, 0, &u);
    assert_eq!(tuple(sent_on(&out, 1)), (client(), rs1(), 5353, 8080));
}

#[test]
fn dr_changes_only_the_link_layer() {
    let mut w = worker(ForwardMethod::Dr);
    let input = syn();
    let out = run(&mut w, 0, &input);
    let f = sent_on(&out, 1);
    assert_eq!(&f[0..6], &RS_MAC.0);
    assert_eq!(&f[6..12], &IN_MAC.0);
    assert_eq!(tuple(f), (client(), vip(), 40000, 80));
    // Everything but the MACs and the hop limit is as received.
    assert_eq!(f[14 + 7], 63);
    assert_eq!(&f[14 + 8..], &input[14 + 8..]);
}

#[test]
fn tun_wraps_the_packet_in_ipv6_from_the_balancers_inside_address() {
    let mut w = worker(ForwardMethod::Tun);
    let input = syn();
    let out = run(&mut w, 0, &input);
    let f = sent_on(&out, 1);
    let outer = ipv6_of(f);
    assert_eq!(outer.next_header(), next_header::IPV6);
    assert_eq!((outer.src_addr(), outer.dst_addr()), (inside(), rs1()));
    assert_eq!(outer.payload_len() as usize, input.len() - 14);
    let inner = &f[14 + 40..];
    assert_eq!(
        tuple(&[&f[..14], inner].concat()),
        (client(), vip(), 40000, 80)
    );
    assert_eq!(inner[7], 63);
}

#[test]
fn tun_answers_a_packet_that_would_not_fit_with_packet_too_big() {
    let mut w = worker(ForwardMethod::Tun);
    // 40 + 20 + 1220 = 1280 bytes: the inside MTU, but not with 40 more.
    let f = syn_from((client(), 40000), (vip(), 80), &[0u8; 1220]);
    let out = run(&mut w, 0, &f);
    let f = sent_on(&out, 0);
    let p = ipv6_of(f);
    assert_eq!(p.dst_addr(), client());
    let msg = icmpv6::Packet::new_checked(p.payload()).unwrap();
    assert_eq!(msg.msg_type(), Message::PacketTooBig);
    assert_eq!(msg.mtu(), 1280);
    assert_eq!(w.stats.drops[DropReason::TooBig as usize], 1);
}

#[test]
fn a_syn_when_every_server_is_down_gets_a_reset_from_the_vip() {
    let mut w = worker(ForwardMethod::Nat);
    let table = ServiceTable::new(vec![service(ForwardMethod::Nat, Protocol::Tcp)])
        .with_server_state(|_, _| ServerState {
            down: true,
            ..ServerState::default()
        });
    w.command(
        Command::Services(Arc::new(table)),
        0,
        &mut VecOutput::default(),
    );
    let out = run(&mut w, 0, &syn());
    let f = sent_on(&out, 0);
    assert_eq!(&f[0..6], &CLIENT_MAC.0);
    assert_eq!(tuple(f), (vip(), client(), 80, 40000));
    let t = tcp::Packet::new_checked(&f[14 + 40..]).unwrap();
    assert_eq!(t.flags().0, tcp::Flags::RST | tcp::Flags::ACK);
    assert_eq!(t.ack_number(), 1001);
    assert_eq!(w.stats.resets_sent, 1);
}

/// An ICMPv6 error from `from` to `to` quoting `quoted` (an IPv6 packet).
fn icmp_error_frame(eth_dst: MacAddr, (from, to): (Ipv6Addr, Ipv6Addr), quoted: &[u8]) -> Vec<u8> {
    let mut msg = vec![0u8; 8 + quoted.len()];
    let n = icmpv6::build_packet_too_big(&mut msg, 1280, (from, to), quoted).unwrap();
    frame(eth_dst, (from, to), next_header::ICMPV6, &[], &msg[..n])
}

/// `f` is an ICMPv6 packet too big from the VIP to the client, its
/// checksum right, quoting the client's packet as the client sent it
/// (client → VIP). Returns the ICMPv6 message.
fn assert_too_big_to_the_client(f: &[u8]) -> &[u8] {
    let p = ipv6_of(f);
    assert_eq!((p.src_addr(), p.dst_addr()), (vip(), client()));
    let msg = icmpv6::Packet::new_checked(p.payload()).unwrap();
    assert!(msg.verify_checksum(vip(), client()));
    assert_eq!(msg.msg_type(), Message::PacketTooBig);
    let q = ipv6::Packet::new_checked_header(&p.payload()[8..]).unwrap();
    assert_eq!((q.src_addr(), q.dst_addr()), (client(), vip()));
    &f[14 + 40..14 + 40 + p.payload_len() as usize]
}

#[test]
fn packet_too_big_about_a_nat_connection_reaches_the_client_as_from_the_vip() {
    let mut w = worker(ForwardMethod::Nat);
    let out = run(&mut w, 0, &syn());
    // The router on the inside quotes the packet as rvs sent it.
    let router = ip("2001:db8:2::fe");
    let sent = out.sent[0].1.clone();
    let err = icmp_error_frame(IN_MAC, (router, client()), &sent[14..]);
    let out = run(&mut w, 1, &err);
    let msg = assert_too_big_to_the_client(sent_on(&out, 0));
    assert_eq!(&msg[8 + 40 + 2..8 + 40 + 4], &80u16.to_be_bytes());
    assert_eq!(w.stats.icmp_errors_forwarded, 1);
}

#[test]
fn an_error_about_no_connection_is_dropped() {
    let mut w = worker(ForwardMethod::Nat);
    let quoted = tcp_frame(
        IN_MAC,
        (client(), 1),
        (rs1(), 8080),
        tcp::Flags::SYN,
        &[],
        false,
    );
    let err = icmp_error_frame(IN_MAC, (ip("2001:db8:2::fe"), client()), &quoted[14..]);
    let out = run(&mut w, 1, &err);
    assert!(out.sent.is_empty());
    assert_eq!(w.stats.drops[DropReason::NoConnection as usize], 1);
}

#[test]
fn a_solicitation_for_a_services_vip_is_answered_on_its_port() {
    let mut w = worker(ForwardMethod::Nat);
    let mut body = [0u8; 32];
    let dst = icmpv6::solicited_node(vip());
    let ns = NeighborSolicit {
        target: vip(),
        source_ll: Some(CLIENT_MAC),
    };
    let n = ns.emit(&mut body, (client(), dst)).unwrap();
    let mut f = frame(
        icmpv6::multicast_mac(dst),
        (client(), dst),
        next_header::ICMPV6,
        &[],
        &body[..n],
    );
    f[14 + 7] = 255;
    let out = run(&mut w, 0, &f);
    let f = sent_on(&out, 0);
    let p = ipv6_of(f);
    let msg = icmpv6::Packet::new_checked(p.payload()).unwrap();
    let na = NeighborAdvert::parse(&msg).unwrap();
    assert_eq!((na.target, na.target_ll), (vip(), Some(OUT_MAC)));
}

#[test]
fn a_reload_without_the_ipv6_service_stops_answering_for_its_vip() {
    let mut w = worker(ForwardMethod::Nat);
    assert!(w.answers_nd_for(0, vip()));
    let empty = Arc::new(ServiceTable::new(Vec::new()));
    w.command(Command::Services(empty), 0, &mut VecOutput::default());
    assert!(!w.answers_nd_for(0, vip()));
}

#[test]
fn tcp_to_a_vip_port_without_a_service_is_unsupported_and_elsewhere_no_service() {
    let mut w = worker(ForwardMethod::Nat);
    let f = syn_from((client(), 1), (vip(), 443), &[]);
    run(&mut w, 0, &f);
    assert_eq!(w.stats.drops[DropReason::UnsupportedProtocol as usize], 1);
    let f = syn_from((client(), 1), (ip("2001:db8:9::1"), 80), &[]);
    run(&mut w, 0, &f);
    assert_eq!(w.stats.drops[DropReason::Ipv6NoService as usize], 1);
}

#[test]
fn with_several_workers_both_directions_meet_the_clients_worker() {
    let ws = workers_of(setup(vec![service(ForwardMethod::Nat, Protocol::Tcp)]), 4);
    let owner = crate::net::rss::RssModel::new(4).worker_of6(client());
    let synack = synack_to((client(), 40000));
    for (index, mut w) in ws.into_iter().enumerate() {
        for (port, f) in [(0, syn()), (1, synack.clone())] {
            assert_meets_owner(&run(&mut w, port, &f), index, owner);
        }
    }
}

/// Fragment `n` (0 = first) of a UDP datagram from the client to the
/// DNS VIP, ident 0xA1B2C3D4: the first carries the UDP header and 8 bytes,
/// the second the last 16 bytes (offset 16). The UDP checksum covers the
/// whole datagram.
fn udp_fragment(n: usize) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + 24];
    udp[0..2].copy_from_slice(&5353u16.to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&32u16.to_be_bytes());
    for (i, b) in udp[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    ipv6::fill_upper_checksum(client(), vip(), next_header::UDP, &mut udp).unwrap();
    let (offset, more, data) = if n == 0 {
        (0u16, 1u16, &udp[..16])
    } else {
        (16, 0, &udp[16..])
    };
    let mut fh = vec![next_header::UDP, 0];
    fh.extend_from_slice(&(offset | more).to_be_bytes());
    fh.extend_from_slice(&0xA1B2_C3D4u32.to_be_bytes());
    frame(OUT_MAC, (client(), vip()), next_header::FRAGMENT, &fh, data)
}

fn dns_worker() -> Worker<VecFrame> {
    worker_with(vec![VirtualService::new6(
        "dns6",
        Endpoint6::new(vip(), 53),
        Protocol::Udp,
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        [(Endpoint6::new(rs1(), 5353), 1)],
    )])
}

#[test]
fn a_later_fragment_follows_its_first_to_the_nat_real_server() {
    let f = assert_fragments_reach_the_real_server(&mut dns_worker(), client());
    assert_eq!(&f[14 + 48 + 2..14 + 48 + 4], &5353u16.to_be_bytes());
}

/// Sends `udp_fragment` 0 then 1 through `w` and checks both leave inside
/// from `src` to the real server, the later one forwarded with the hop
/// limit decremented, and, put back together, the datagram's checksum
/// holds for the new ends. Returns the first as sent.
fn assert_fragments_reach_the_real_server(w: &mut Worker<VecFrame>, src: Ipv6Addr) -> Vec<u8> {
    let first = run(w, 0, &udp_fragment(0));
    let f = sent_on(&first, 1);
    let p = ipv6_of(f);
    assert_eq!((p.src_addr(), p.dst_addr()), (src, rs1()));
    let later = run(w, 0, &udp_fragment(1));
    let f2 = sent_on(&later, 1);
    let p2 = ipv6_of(f2);
    assert_eq!((p2.src_addr(), p2.dst_addr()), (src, rs1()));
    assert_eq!(p2.hop_limit(), 63);
    assert_eq!(w.stats.fragments_forwarded, 1);
    let mut whole = f[14 + 48..].to_vec();
    whole.extend_from_slice(&f2[14 + 48..]);
    assert!(ipv6::verify_upper_checksum(
        src,
        rs1(),
        next_header::UDP,
        &whole
    ));
    f.to_vec()
}

#[test]
fn a_later_fragment_that_comes_first_waits_for_its_first() {
    let mut w = dns_worker();
    let out = run(&mut w, 0, &udp_fragment(1));
    assert!(out.sent.is_empty());
    assert_eq!(w.stats.fragments_queued, 1);
    let out = run(&mut w, 0, &udp_fragment(0));
    assert_eq!(out.sent.len(), 2);
    for (port, f) in &out.sent {
        assert_eq!(*port, 1);
        assert_eq!(ipv6_of(f).dst_addr(), rs1());
    }
    assert_eq!(w.stats.fragments_forwarded, 1);
}

#[test]
fn a_later_fragment_whose_first_never_comes_is_dropped_in_time() {
    let mut w = dns_worker();
    run(&mut w, 0, &udp_fragment(1));
    w.tick(10_000_000_000, &mut VecOutput::default());
    assert_eq!(w.stats.drops[DropReason::FragmentUnmatched as usize], 1);
}

#[test]
fn with_several_workers_an_error_from_the_inside_meets_the_clients_worker() {
    let ws = workers_of(setup(vec![service(ForwardMethod::Nat, Protocol::Tcp)]), 4);
    let owner = crate::net::rss::RssModel::new(4).worker_of6(client());
    // The SYN as rvs sent it to the real server, quoted by a router.
    let mut one = worker(ForwardMethod::Nat);
    let sent = run(&mut one, 0, &syn()).sent[0].1.clone();
    let err = icmp_error_frame(IN_MAC, (ip("2001:db8:2::fe"), client()), &sent[14..]);
    for (index, mut w) in ws.into_iter().enumerate() {
        assert_meets_owner(&run(&mut w, 1, &err), index, owner);
    }
}

#[path = "tests_fullnat6.rs"]
mod fullnat6;
