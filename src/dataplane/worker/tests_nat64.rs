//! NAT64 FullNAT through the worker: an IPv6 client's SYN leaves as IPv4
//! from the local address, the IPv4 reply comes back as IPv6 from the
//! VIP, ICMP errors both ways, exhaustion, release, fragments. Frames are
//! built by hand; every checksum is checked by a full recompute
//! (`crate::testutil::rfc1071`). The pcap table (`tests/pcap_nat64.rs`)
//! judges the same paths with scapy.
use super::*;
use crate::dataplane::io::{VecFrame, VecOutput};
use crate::lb::kind::SchedulerKind;
use crate::lb::service::{ForwardMethod, LocalAddresses, Protocol, VirtualService};
use crate::lb::xmit::{Endpoint, Endpoint6};
use crate::testutil::rfc1071;
use crate::wire::ipv6;
use std::net::Ipv6Addr;

const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const RS: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
const ROUTER4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

fn client() -> Ipv6Addr {
    "2001:db8:1::10".parse().unwrap()
}
fn vip() -> Ipv6Addr {
    "2001:db8:1::100".parse().unwrap()
}

/// An IPv6 service on [VIP]:80 forwarding by FullNAT from `LIP` (ports
/// `ports`) to the IPv4 real server RS:8080.
fn nat64_service(protocol: Protocol, ports: (u16, u16)) -> VirtualService {
    let mut s = VirtualService::new6(
        "nat64",
        Endpoint6::new(vip(), 80),
        protocol,
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(Endpoint6::new(RS.to_ipv6_mapped(), 8080), 1)],
    );
    s.real_servers[0].endpoint = Endpoint::new(RS, 8080);
    s.local = LocalAddresses {
        addresses: vec![LIP],
        ports,
        ..LocalAddresses::default()
    };
    s
}

/// Outside 192.0.2.1/24 and 2001:db8:1::1/64 (port 0), inside
/// 10.1.0.1/24 (port 1, MTU `mtu_in`); the client, the real server and
/// the inside router known neighbours.
fn setup_with(ports: (u16, u16), mtu_in: u16) -> WorkerSetup {
    let mut s = WorkerSetup::ports_only(vec![
        PortSetup {
            mac: OUT_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 24).unwrap()],
            addresses6: vec![Ipv6Cidr::new("2001:db8:1::1".parse().unwrap(), 64).unwrap()],
            mtu: 1500,
        },
        PortSetup {
            mac: IN_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).unwrap()],
            addresses6: Vec::new(),
            mtu: mtu_in,
        },
    ]);
    s.services = Arc::new(ServiceTable::new(vec![
        nat64_service(Protocol::Tcp, ports),
        {
            let mut u = nat64_service(Protocol::Udp, ports);
            u.name = "nat64-dns".into();
            u
        },
    ]));
    s.static_neighbors = vec![(RS, RS_MAC, 1), (ROUTER4, RS_MAC, 1)];
    s.ipv6.static_neighbors = vec![(client(), CLIENT_MAC, 0)];
    s
}

fn worker_with(ports: (u16, u16), mtu_in: u16) -> Worker<VecFrame> {
    let mut w = Worker::new(&setup_with(ports, mtu_in));
    w.v6.announced = true;
    w
}

fn worker() -> Worker<VecFrame> {
    worker_with((1024, 65535), 1500)
}

fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn tcp_seg(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    t.extend_from_slice(payload);
    t
}

fn udp_seg(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An IPv6 packet carrying `l4` (`proto`), its checksum filled.
fn ip6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    ipv6::fill_upper_checksum(src, dst, proto, &mut l4).unwrap();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[proto, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&l4);
    p
}

/// An IPv4 packet carrying `l4` (`proto`), checksums filled, DF set.
fn ip4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let at = match proto {
        6 => Some(16),
        17 => Some(6),
        _ => None,
    };
    if let Some(at) = at {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(&l4);
        let ck = rfc1071(&pseudo);
        l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
    } else {
        let ck = rfc1071(&l4);
        l4[2..4].copy_from_slice(&ck.to_be_bytes());
    }
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let ck = rfc1071(&p);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

fn syn_from(port: u16) -> Vec<u8> {
    let p = ip6(client(), vip(), 6, tcp_seg(port, 80, SYN, &[]));
    eth(OUT_MAC, CLIENT_MAC, 0x86dd, &p)
}

fn from_rs(l3: &[u8]) -> Vec<u8> {
    eth(IN_MAC, RS_MAC, 0x0800, l3)
}

fn run(w: &mut Worker<VecFrame>, port: usize, f: &[u8]) -> VecOutput {
    let mut out = VecOutput::default();
    w.handle(port, VecFrame::new(f), 1_000, &mut out);
    out
}

fn one(out: &VecOutput, port: usize) -> Vec<u8> {
    assert_eq!(out.sent.len(), 1, "frames sent");
    assert_eq!(out.sent[0].0, port, "port");
    out.sent[0].1.clone()
}

/// The IPv4 packet of frame `f`: EtherType, header checksum, total
/// length and (TCP/UDP) transport checksum checked.
fn v4_of(f: &[u8]) -> &[u8] {
    assert_eq!(&f[12..14], &[0x08, 0x00], "EtherType IPv4");
    let p = &f[14..];
    assert_eq!(rfc1071(&p[..20]), 0, "header checksum");
    assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
    if p[9] == 6 || p[9] == 17 {
        let mut pseudo = p[12..20].to_vec();
        pseudo.extend_from_slice(&[0, p[9]]);
        pseudo.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
        pseudo.extend_from_slice(&p[20..]);
        assert_eq!(rfc1071(&pseudo), 0, "transport checksum");
    }
    p
}

/// The IPv6 packet of frame `f`: EtherType, payload length and the
/// upper layer's checksum checked.
fn v6_of(f: &[u8]) -> &[u8] {
    assert_eq!(&f[12..14], &[0x86, 0xdd], "EtherType IPv6");
    let p = &f[14..];
    assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])) + 40, p.len());
    let mut pseudo = p[8..40].to_vec();
    pseudo.extend_from_slice(&((p.len() - 40) as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, p[6]]);
    pseudo.extend_from_slice(&p[40..]);
    assert_eq!(rfc1071(&pseudo), 0, "upper-layer checksum");
    p
}

fn addr6(b: &[u8]) -> Ipv6Addr {
    Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap())
}

fn port_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[test]
fn an_ipv6_syn_leaves_as_ipv4_from_the_local_address_to_the_real_server() {
    let mut w = worker();
    let out = run(&mut w, 0, &syn_from(40000));
    let f = one(&out, 1);
    assert_eq!(&f[0..6], &RS_MAC.0);
    assert_eq!(&f[6..12], &IN_MAC.0);
    let p = v4_of(&f);
    assert_eq!(&p[12..16], &LIP.octets());
    assert_eq!(&p[16..20], &RS.octets());
    assert_eq!((port_at(p, 20), port_at(p, 22)), (1024, 8080));
    assert_eq!(p[8], 63, "TTL: the hop limit less one");
    assert_eq!(
        f.len(),
        14 + 20 + 20,
        "20 bytes shorter than the IPv6 frame"
    );
    assert_eq!(w.stats.nat64_to_ipv4, 1);
    assert_eq!(w.stats.conns_created, 1);
    assert_eq!(w.lb.conn_count6(), 1);
}

#[test]
fn the_real_servers_ipv4_reply_reaches_the_client_as_ipv6_from_the_vip() {
    let mut w = worker();
    run(&mut w, 0, &syn_from(40000));
    let reply = ip4(RS, LIP, 6, tcp_seg(8080, 1024, SYN | ACK, b"hello"));
    let out = run(&mut w, 1, &from_rs(&reply));
    let f = one(&out, 0);
    assert_eq!(&f[0..6], &CLIENT_MAC.0);
    let p = v6_of(&f);
    assert_eq!((addr6(&p[8..24]), addr6(&p[24..40])), (vip(), client()));
    assert_eq!((port_at(p, 40), port_at(p, 42)), (80, 40000));
    assert_eq!(p[7], 63, "hop limit: the TTL less one");
    assert_eq!(&p[60..], b"hello");
    assert_eq!(w.stats.nat64_to_ipv6, 1);
}

#[test]
fn udp_goes_both_ways() {
    let mut w = worker();
    let q = ip6(client(), vip(), 17, udp_seg(5353, 80, b"q"));
    let out = run(&mut w, 0, &eth(OUT_MAC, CLIENT_MAC, 0x86dd, &q));
    let p = v4_of(&one(&out, 1)).to_vec();
    assert_eq!((p[9], port_at(&p, 20)), (17, 1024));
    let a = ip4(RS, LIP, 17, udp_seg(8080, 1024, b"answer"));
    let out = run(&mut w, 1, &from_rs(&a));
    let f = one(&out, 0);
    let p = v6_of(&f);
    assert_eq!((port_at(p, 40), port_at(p, 42)), (80, 5353));
}

#[test]
fn a_reply_to_an_unknown_local_port_is_dropped() {
    let mut w = worker();
    let stray = ip4(RS, LIP, 6, tcp_seg(8080, 4242, SYN | ACK, &[]));
    let out = run(&mut w, 1, &from_rs(&stray));
    assert!(out.sent.is_empty());
    assert_eq!(w.stats.drops[DropReason::NoConnection as usize], 1);
}

#[test]
fn exhausted_local_ports_reset_the_ipv6_syn_counted() {
    let mut w = worker_with((1024, 1024), 1500);
    run(&mut w, 0, &syn_from(40000));
    let out = run(&mut w, 0, &syn_from(40001));
    let f = one(&out, 0);
    let p = v6_of(&f);
    assert_eq!((addr6(&p[8..24]), addr6(&p[24..40])), (vip(), client()));
    assert_eq!(p[40 + 13] & RST, RST);
    assert_eq!(w.stats.drops[DropReason::LocalPortsExhausted as usize], 1);
    assert_eq!(w.stats.resets_sent, 1);
}

#[test]
fn the_local_port_is_released_when_the_connection_ends() {
    let mut w = worker_with((1024, 1024), 1500);
    run(&mut w, 0, &syn_from(40000));
    // Long after: the half-open connection has expired and the sweep
    // removed it.
    let mut out = VecOutput::default();
    let later = 3_600 * 1_000_000_000;
    w.tick(later, &mut out);
    assert_eq!(w.lb.conn_count6(), 0);
    w.handle(0, VecFrame::new(&syn_from(40001)), later, &mut out);
    let f = one(&out, 1);
    let p = v4_of(&f);
    assert_eq!(port_at(p, 20), 1024, "the one port again");
}

#[test]
fn packet_too_big_from_the_client_side_reaches_the_real_server_as_fragmentation_needed() {
    let mut w = worker();
    run(&mut w, 0, &syn_from(40000));
    let reply = ip4(RS, LIP, 6, tcp_seg(8080, 1024, SYN | ACK, &[]));
    let sent = one(&run(&mut w, 1, &from_rs(&reply)), 0);
    let router: Ipv6Addr = "2001:db8:1::fe".parse().unwrap();
    let mut msg = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00]; // MTU 1280
    msg.extend_from_slice(&sent[14..]);
    let err = ip6(router, vip(), 58, msg);
    let out = run(&mut w, 0, &eth(OUT_MAC, CLIENT_MAC, 0x86dd, &err));
    let f = one(&out, 1);
    let p = v4_of(&f);
    assert_eq!(
        (&p[12..16], &p[16..20]),
        (&LIP.octets()[..], &RS.octets()[..])
    );
    let m = &p[20..];
    assert_eq!(rfc1071(m), 0, "ICMP checksum");
    assert_eq!((m[0], m[1], port_at(m, 6)), (3, 4, 1260));
    let q = &m[8..];
    assert_eq!(
        (&q[12..16], &q[16..20]),
        (&RS.octets()[..], &LIP.octets()[..])
    );
    assert_eq!((port_at(q, 20), port_at(q, 22)), (8080, 1024));
    assert_eq!(w.stats.icmp_errors_forwarded, 1);
    assert_eq!(w.stats.nat64_to_ipv4, 2);
}

#[test]
fn fragmentation_needed_from_the_inside_reaches_the_client_as_packet_too_big() {
    let mut w = worker();
    let sent = one(&run(&mut w, 0, &syn_from(40000)), 1);
    let mut msg = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78]; // MTU 1400
    msg.extend_from_slice(&sent[14..]);
    let err = ip4(ROUTER4, LIP, 1, msg);
    let out = run(&mut w, 1, &from_rs(&err));
    let f = one(&out, 0);
    let p = v6_of(&f);
    assert_eq!((addr6(&p[8..24]), addr6(&p[24..40])), (vip(), client()));
    let m = &p[40..];
    assert_eq!((m[0], m[1]), (2, 0), "packet too big");
    assert_eq!(u32::from_be_bytes([m[4], m[5], m[6], m[7]]), 1420);
    let q = &m[8..];
    assert_eq!((addr6(&q[8..24]), addr6(&q[24..40])), (client(), vip()));
    assert_eq!((port_at(q, 40), port_at(q, 42)), (40000, 80));
    assert_eq!(w.stats.icmp_errors_forwarded, 1);
}

#[test]
fn a_reply_too_big_for_the_clients_link_gets_fragmentation_needed_back() {
    let mut w = worker();
    run(&mut w, 0, &syn_from(40000));
    // 1481 bytes of IPv4 (fit the inside's 1500) are 1501 as IPv6.
    let reply = ip4(RS, LIP, 6, tcp_seg(8080, 1024, ACK, &[0u8; 1441]));
    let out = run(&mut w, 1, &from_rs(&reply));
    let f = one(&out, 1);
    let p = v4_of(&f);
    assert_eq!(&p[16..20], &RS.octets());
    assert_eq!((p[20], p[21], port_at(p, 26)), (3, 4, 1480));
    assert_eq!(w.stats.nat64_to_ipv6, 0);
}

#[test]
fn an_ipv4_fragment_to_the_local_address_is_dropped_and_counted() {
    let mut w = worker();
    run(&mut w, 0, &syn_from(40000));
    let mut frag = ip4(RS, LIP, 6, tcp_seg(8080, 1024, ACK, &[0u8; 16]));
    frag[6] = 0x20; // MF, DF clear
    frag[10] = 0;
    frag[11] = 0;
    let ck = rfc1071(&frag[..20]);
    frag[10..12].copy_from_slice(&ck.to_be_bytes());
    let out = run(&mut w, 1, &from_rs(&frag));
    assert!(out.sent.is_empty());
    assert_eq!(w.stats.drops[DropReason::Nat64Fragment as usize], 1);
}

#[test]
fn a_client_with_an_ipv4_mapped_source_opens_nothing() {
    let mut w = worker();
    let spoof = ip6(LIP.to_ipv6_mapped(), vip(), 6, tcp_seg(1024, 80, SYN, &[]));
    let out = run(&mut w, 0, &eth(OUT_MAC, CLIENT_MAC, 0x86dd, &spoof));
    assert!(out.sent.is_empty());
    assert_eq!(w.lb.conn_count6(), 0);
}

#[test]
fn the_local_address_is_answered_by_arp_on_the_inside() {
    let w = worker();
    assert!(w.answers_arp_for(1, LIP));
}

#[test]
fn with_several_workers_the_client_side_meets_the_clients_worker_and_replies_the_lips() {
    let rss = crate::net::rss::RssModel::new(4);
    let (client_owner, lip_owner) = (rss.worker_of6(client()), rss.worker_of(LIP));
    let reply = from_rs(&ip4(RS, LIP, 6, tcp_seg(8080, 1024, SYN | ACK, &[])));
    let mut s = setup_with((1024, 65535), 1500);
    s.worker_count = 4;
    for index in 0..4 {
        s.worker_index = index;
        let mut w: Worker<VecFrame> = Worker::new(&s);
        w.v6.announced = true;
        for (port, f, owner) in [
            (0, syn_from(40000), client_owner),
            (1, reply.clone(), lip_owner),
        ] {
            let out = run(&mut w, port, &f);
            if index == owner {
                assert!(out.redirected.is_empty(), "worker {index}");
            } else {
                assert_eq!(out.redirected.len(), 1, "worker {index}");
                assert_eq!(out.redirected[0].0, owner);
            }
        }
    }
}
