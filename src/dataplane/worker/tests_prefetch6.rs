//! IPv6 frames in the window's prefetch stages: the parse hashes an IPv6
//! flow as the IPv6 table does (the hash the prefetches and the lookup
//! share), and a window over an IPv6 table large enough to be prefetched
//! decides every frame as frame-at-a-time would.
use super::*;
use crate::dataplane::io::{VecFrame, VecOutput};
use crate::lb::conn::FlowKey6;
use crate::lb::kind::SchedulerKind;
use crate::lb::service::{ForwardMethod, Protocol, VirtualService};
use crate::lb::xmit::Endpoint6;
use crate::wire::ipv6::{self, next_header};
use crate::wire::tcp;
use std::net::Ipv6Addr;

const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn vip() -> Ipv6Addr {
    ip("2001:db8:1::100")
}

/// Real server `i` of two.
fn real(i: usize) -> Ipv6Addr {
    ip(["2001:db8:2::11", "2001:db8:2::12"][i])
}

/// Client `i`: one address per flow.
fn client(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(ip("2001:db8:9::")) + u128::from(i))
}

/// A NAT service on the VIP's port 80, round robin over the two real
/// servers (port 8080), with room for `conns` connections.
fn nat_worker(conns: usize) -> Worker<VecFrame> {
    let mut s = WorkerSetup::ports_only(vec![
        PortSetup {
            mac: OUT_MAC,
            addresses: Vec::new(),
            addresses6: vec![Ipv6Cidr::new(ip("2001:db8:9::1"), 64).unwrap()],
            mtu: 1500,
        },
        PortSetup {
            mac: IN_MAC,
            addresses: Vec::new(),
            addresses6: vec![Ipv6Cidr::new(ip("2001:db8:2::1"), 64).unwrap()],
            mtu: 1500,
        },
    ]);
    s.services = Arc::new(ServiceTable::new(vec![VirtualService::new6(
        "web6",
        Endpoint6::new(vip(), 80),
        Protocol::Tcp,
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        (0..2).map(|i| (Endpoint6::new(real(i), 8080), 1)),
    )]));
    s.conn_capacity = conns;
    s.ipv6.static_neighbors = (0..2).map(|i| (real(i), PEER_MAC, 1)).collect();
    let mut w = Worker::new(&s);
    w.v6.announced = true;
    w
}

/// Client `i`'s TCP segment to the VIP with `flags`, checksummed.
fn to_vip(i: u32, flags: u8) -> Vec<u8> {
    let (src, dst) = (client(i), vip());
    let mut f = Vec::new();
    f.extend_from_slice(&OUT_MAC.0);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&0x86DDu16.to_be_bytes());
    let mut h = [0u8; 60];
    {
        let mut p = ipv6::Packet::init_header(&mut h[..40]).unwrap();
        p.set_payload_len(20);
        p.set_next_header(next_header::TCP);
        p.set_hop_limit(64);
        p.set_src_addr(src);
        p.set_dst_addr(dst);
    }
    h[40..42].copy_from_slice(&40000u16.to_be_bytes());
    h[42..44].copy_from_slice(&80u16.to_be_bytes());
    h[52] = 5 << 4;
    h[53] = flags;
    h[54..56].copy_from_slice(&8192u16.to_be_bytes());
    ipv6::fill_upper_checksum(src, dst, next_header::TCP, &mut h[40..]).unwrap();
    f.extend_from_slice(&h);
    f
}

#[test]
fn the_parse_hashes_an_ipv6_flow_as_the_ipv6_table_does() {
    let w = nat_worker(1024);
    let key = FlowKey6::new(client(7), 40000, vip(), 80, next_header::TCP);
    match parse::parse(&to_vip(7, tcp::Flags::SYN), &w.lb) {
        Parsed::Ipv6(info) => assert_eq!(info.hash, w.lb.flow_hash6(&key)),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn a_window_over_a_prefetched_ipv6_table_sends_each_segment_to_its_connections_server() {
    // Enough connections that the window prefetches the IPv6 table.
    let conns = WORTH_PREFETCHING as u32 + 100;
    let mut w = nat_worker(2 * conns as usize);
    let mut out = VecOutput::default();
    for i in 0..conns {
        w.handle(0, VecFrame::new(&to_vip(i, tcp::Flags::SYN)), 1, &mut out);
    }
    assert_eq!(w.lb.conn_count6(), conns as usize);
    // The real server each connection's SYN went to.
    let server_of: Vec<Ipv6Addr> = out
        .sent
        .drain(..)
        .map(|(_, f)| ipv6::Packet::new_checked(&f[14..]).unwrap().dst_addr())
        .collect();
    assert_eq!(server_of.len(), conns as usize);
    // Flows in a scattered order, a window of 64 at a time (one burst on
    // the outside port, none on the inside one).
    let flows: Vec<u32> = (0..256u32)
        .map(|k| k.wrapping_mul(2_654_435_761) % conns)
        .collect();
    for window in flows.chunks(WINDOW) {
        let burst = window
            .iter()
            .map(|&i| VecFrame::new(&to_vip(i, tcp::Flags::ACK)))
            .collect();
        w.handle_bursts(&mut [burst, Vec::new()], 2, &mut out);
    }
    assert_eq!(out.sent.len(), flows.len());
    for (&i, (port, frame)) in flows.iter().zip(&out.sent) {
        let p = ipv6::Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(*port, 1);
        assert_eq!(p.src_addr(), client(i));
        assert_eq!(p.dst_addr(), server_of[i as usize], "flow {i}");
    }
}
