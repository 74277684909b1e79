//! IPv4-in-IPv6 TUN through the worker: an IPv4 service's client packet,
//! unchanged, inside IPv6 toward a real server reached over IPv6 (next
//! header 4, from the balancer's inside IPv6 address, link padding
//! gone); too big with DF: fragmentation needed back to the client
//! (`mtu - 40`); too big without DF: dropped. The pcap table
//! (`tests/pcap_tun46.rs`) judges the same frames with scapy.
use super::*;
use crate::dataplane::io::{VecFrame, VecOutput};
use crate::lb::kind::SchedulerKind;
use crate::lb::service::{Protocol, ServiceKey, VirtualService};
use crate::lb::xmit::{tun6, Endpoint, Endpoint6};
use crate::wire::{icmp, ipv4, ipv6};
use std::net::Ipv6Addr;

const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn inside6() -> Ipv6Addr {
    "2001:db8:2::1".parse().unwrap()
}
fn rs6() -> Ipv6Addr {
    "2001:db8:2::11".parse().unwrap()
}

/// Outside 192.0.2.1/24 (port 0), inside 10.1.0.1/24 and
/// 2001:db8:2::1/64 (port 1, MTU 1280); the client and the real server
/// known neighbours; one IPv4 TUN service on VIP:80 whose real server is
/// 2001:db8:2::11.
fn worker() -> Worker<VecFrame> {
    worker_to(rs6())
}

/// [`worker`] with the real server at `rs`.
fn worker_to(rs: Ipv6Addr) -> Worker<VecFrame> {
    let mut s = WorkerSetup::ports_only(vec![
        PortSetup {
            mac: OUT_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 24).unwrap()],
            addresses6: vec![],
            mtu: 1500,
        },
        PortSetup {
            mac: IN_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).unwrap()],
            addresses6: vec![Ipv6Cidr::new(inside6(), 64).unwrap()],
            mtu: 1280,
        },
    ]);
    let key = ServiceKey {
        vip: Endpoint::new(VIP, 80),
        protocol: Protocol::Tcp,
    };
    let service =
        VirtualService::new_tun46("web", key, SchedulerKind::Rr, [(Endpoint6::new(rs, 80), 1)]);
    s.services = Arc::new(ServiceTable::new(vec![service]));
    s.static_neighbors = vec![(CLIENT, CLIENT_MAC, 0)];
    s.ipv6.static_neighbors = vec![(rs6(), RS_MAC, 1)];
    let mut w = Worker::new(&s);
    w.v6.announced = true;
    w
}

/// A client's TCP SYN to VIP:80 carrying `payload`, DF as `df`, in an
/// Ethernet frame padded to the 60-byte minimum.
fn syn(payload: usize, df: bool) -> Vec<u8> {
    let mut tcp = vec![0u8; 20 + payload];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    ipv4_frame(if df { 0x4000 } else { 0 }, &tcp)
}

/// An Ethernet frame (padded to 60 bytes) with an IPv4 packet from the
/// client to the VIP, TCP, its flags and fragment offset word `frag`,
/// carrying `body` after its header.
fn ipv4_frame(frag: u16, body: &[u8]) -> Vec<u8> {
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(20 + body.len() as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&CLIENT.octets());
    ip[16..20].copy_from_slice(&VIP.octets());
    let ck = crate::testutil::rfc1071(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    ip.extend_from_slice(body);
    let mut f = Vec::new();
    f.extend_from_slice(&OUT_MAC.0);
    f.extend_from_slice(&CLIENT_MAC.0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&ip);
    f.resize(f.len().max(60), 0);
    f
}

fn run(w: &mut Worker<VecFrame>, f: &[u8]) -> VecOutput {
    let mut out = VecOutput::default();
    w.handle(0, VecFrame::new(f), 1_000, &mut out);
    out
}

#[test]
fn a_client_packet_goes_unchanged_inside_ipv6_to_the_real_server() {
    let mut w = worker();
    let input = syn(0, true);
    let out = run(&mut w, &input);
    assert_eq!(out.sent.len(), 1);
    let (port, f) = (&out.sent[0].0, &out.sent[0].1);
    assert_eq!(*port, 1);
    assert_eq!(&f[0..6], &RS_MAC.0);
    assert_eq!(&f[6..12], &IN_MAC.0);
    assert_eq!(&f[12..14], &[0x86, 0xDD]);
    let outer = ipv6::Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(outer.next_header(), tun6::IPV4_IN_IPV6);
    assert_eq!((outer.src_addr(), outer.dst_addr()), (inside6(), rs6()));
    // The 40-byte packet without the frame's padding.
    assert_eq!(outer.payload_len(), 40);
    assert_eq!(&f[14 + 40..], &input[14..14 + 40]);
    assert_eq!(w.stats.conns_created, 1);
    assert_eq!(w.stats.forwarded, 1);
}

#[test]
fn a_df_packet_too_big_for_the_tunnel_gets_fragmentation_needed_back() {
    let mut w = worker();
    // 1280 bytes: the inside MTU, but not with the 40 of IPv6 more.
    let out = run(&mut w, &syn(1240, true));
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].0, 0);
    let f = &out.sent[0].1;
    let p = ipv4::Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(p.dst_addr(), CLIENT);
    let m = icmp::Packet::new_checked(p.payload()).unwrap();
    assert_eq!((m.msg_type(), m.code()), (icmp::Message::DstUnreachable, 4));
    // The next-hop MTU: the last two bytes of the rest of the header.
    assert_eq!(&p.payload()[6..8], &1240u16.to_be_bytes());
    assert_eq!(w.stats.frag_needed_sent, 1);
}

#[test]
fn a_packet_without_df_too_big_for_the_tunnel_is_dropped() {
    let mut w = worker();
    let out = run(&mut w, &syn(1240, false));
    assert!(out.sent.is_empty());
    assert_eq!(w.stats.drops[DropReason::TooBig as usize], 1);
}

#[test]
fn without_an_ipv6_route_to_the_real_server_the_packet_is_dropped() {
    let mut w = worker_to("2001:db8:9::11".parse().unwrap());
    let out = run(&mut w, &syn(0, true));
    assert!(out.sent.is_empty());
    assert_eq!(w.stats.drops[DropReason::NoRoute as usize], 1);
}

#[test]
fn a_later_fragment_follows_its_first_through_the_ipv6_tunnel() {
    let mut w = worker();
    // The first fragment: the TCP header and 4 bytes (24, a multiple of
    // 8), more to come; the last: 8 bytes at offset 24.
    let mut first = syn(4, false);
    first[14 + 6..14 + 8].copy_from_slice(&0x2000u16.to_be_bytes());
    let ck = {
        first[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        crate::testutil::rfc1071(&first[14..14 + 20])
    };
    first[14 + 10..14 + 12].copy_from_slice(&ck.to_be_bytes());
    let last = ipv4_frame(3, &[7u8; 8]);
    let mut out = run(&mut w, &first);
    w.handle(0, VecFrame::new(&last), 1_000, &mut out);
    assert_eq!(out.sent.len(), 2);
    for (i, (port, f)) in out.sent.iter().enumerate() {
        assert_eq!(*port, 1);
        let outer = ipv6::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(outer.next_header(), tun6::IPV4_IN_IPV6, "fragment {i}");
        assert_eq!(outer.dst_addr(), rs6(), "fragment {i}");
    }
    assert_eq!(&out.sent[1].1[14 + 40..], &last[14..14 + 28]);
    assert_eq!(w.stats.fragments_forwarded, 1);
}
