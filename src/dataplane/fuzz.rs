//! The per-packet path under arbitrary input: what the fuzz target
//! (`fuzz/fuzz_targets/worker_frames.rs`, cargo-fuzz) and the seeded run
//! in the test suite both drive.
//!
//! One input is split into frames (a length byte, then that many bytes),
//! each handed to a worker configured with NAT (one with the SYN proxy),
//! DR and TUN services, an IPv6 address and VIP on the outside port, two
//! ports, static neighbours and a small connection table, with time moving
//! forward. The contract checked: no panic, and every frame is accounted
//! for (sent, parked, handed over, or one counted drop).

use super::io::{Output, VecFrame};
use super::worker::{PortSetup, Worker, WorkerSetup};
use crate::lb::acl::Acl;
use crate::lb::client_addr::ClientAddress;
use crate::lb::limits::{ClientLimit, Rate, Thresholds};
use crate::lb::service::{
    ForwardMethod, Protocol, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use crate::lb::xmit::Endpoint;
use crate::net::route::RouteTable;
use crate::wire::{Ipv4Cidr, MacAddr};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// An output that keeps nothing: the fuzz target checks robustness.
#[derive(Default)]
struct Discard {
    sent: u64,
}

impl Output<VecFrame> for Discard {
    fn send(&mut self, _port: usize, _frame: VecFrame) {
        self.sent += 1;
    }
    fn alloc(&mut self, len: usize) -> Option<VecFrame> {
        Some(VecFrame::new(&vec![0u8; len]))
    }
    fn redirect(&mut self, _worker: usize, _port: usize, _frame: VecFrame) {
        self.sent += 1;
    }
}

fn cidr(a: [u8; 4], len: u8) -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::from(a), len).expect("valid prefix")
}

fn service(
    name: &str,
    vip: [u8; 4],
    port: u16,
    protocol: Protocol,
    forward: ForwardMethod,
    scheduler: SchedulerKind,
    rs: &[([u8; 4], u16)],
) -> VirtualService {
    let key = ServiceKey {
        vip: Endpoint::new(Ipv4Addr::from(vip), port),
        protocol,
    };
    let servers = rs
        .iter()
        .map(|&(a, p)| (Endpoint::new(Ipv4Addr::from(a), p), 1));
    VirtualService {
        // The smallest table IPVS allows: the fuzz run builds many workers.
        mh_table_size: 251,
        ..VirtualService::new(name, key, forward, scheduler, servers)
    }
}

/// A worker with every kind of service, as the fuzzer sees it. With
/// `workers > 1` it also exercises the hand-over decision.
pub fn fuzz_worker(workers: usize) -> Worker<VecFrame> {
    let ports = vec![
        PortSetup {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            addresses: vec![cidr([203, 0, 113, 2], 24)],
            addresses6: vec![crate::wire::Ipv6Cidr::new(OUR_IP6, 64).expect("valid prefix")],
            mtu: 1500,
        },
        PortSetup {
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            addresses: vec![cidr([10, 1, 0, 1], 24)],
            addresses6: Vec::new(),
            mtu: 1500,
        },
    ];
    let mut setup = WorkerSetup::ports_only(ports);
    setup.ipv6.vips = vec![VIP6];
    setup.routes = RouteTable::new(
        &[
            (0, cidr([203, 0, 113, 2], 24)),
            (1, cidr([10, 1, 0, 1], 24)),
        ],
        &[
            (cidr([0, 0, 0, 0], 0), Ipv4Addr::new(203, 0, 113, 1), 0),
            (cidr([10, 2, 0, 0], 16), Ipv4Addr::new(10, 1, 0, 254), 1),
        ],
    );
    setup.static_neighbors = vec![
        (
            Ipv4Addr::new(203, 0, 113, 1),
            MacAddr([2, 0, 0, 0, 0, 0xfe]),
            0,
        ),
        (Ipv4Addr::new(10, 1, 0, 11), MacAddr([2, 0, 0, 1, 0, 11]), 1),
        (
            Ipv4Addr::new(10, 1, 0, 254),
            MacAddr([2, 0, 0, 1, 0, 0xfe]),
            1,
        ),
    ];
    // Every admission limit on the paths the templates take: a deny list
    // on `nat` (not the templates' client), and on `udp` a rate, a
    // per-client limit and a threshold that mutated flows soon reach.
    let mut nat = service(
        "nat",
        [203, 0, 113, 100],
        80,
        Protocol::Tcp,
        ForwardMethod::Nat,
        SchedulerKind::Wrr,
        &[([10, 1, 0, 11], 8080), ([10, 1, 0, 12], 8080)],
    );
    nat.limits.acl = Acl::new(Vec::new(), vec![cidr([192, 0, 2, 0], 24)]);
    let mut udp = service(
        "udp",
        [203, 0, 113, 100],
        53,
        Protocol::Udp,
        ForwardMethod::Nat,
        SchedulerKind::Sh,
        &[([10, 1, 0, 11], 5353)],
    );
    udp.limits.rate = Some(Rate {
        per_second: 1000,
        burst: 50,
    });
    udp.limits.per_client = Some(ClientLimit {
        max_conns: 4,
        prefix_len: 24,
    });
    udp.real_servers[0].thresholds = Thresholds { upper: 8, lower: 0 };
    setup.services = Arc::new(ServiceTable::new(vec![
        nat,
        udp,
        service(
            "dr",
            [203, 0, 113, 101],
            80,
            Protocol::Tcp,
            ForwardMethod::Dr,
            SchedulerKind::Wlc,
            &[([10, 1, 0, 11], 80)],
        ),
        service(
            "tun",
            [203, 0, 113, 102],
            80,
            Protocol::Tcp,
            ForwardMethod::Tun,
            SchedulerKind::Mh,
            &[([10, 2, 0, 21], 80)],
        ),
        VirtualService {
            syn_proxy: true,
            ..service(
                "proxied",
                [203, 0, 113, 100],
                PROXIED_PORT,
                Protocol::Tcp,
                ForwardMethod::Nat,
                SchedulerKind::Rr,
                &[([10, 1, 0, 11], 8443)],
            )
        },
        VirtualService {
            client_address: Some(ClientAddress::ProxyV2),
            ..service(
                "carrying",
                [203, 0, 113, 103],
                80,
                Protocol::Tcp,
                ForwardMethod::Nat,
                SchedulerKind::Rr,
                &[([10, 1, 0, 12], 8080)],
            )
        },
        VirtualService {
            client_address: Some(ClientAddress::Toa),
            ..service(
                "toa",
                [203, 0, 113, 103],
                81,
                Protocol::Tcp,
                ForwardMethod::Nat,
                SchedulerKind::Rr,
                &[([10, 1, 0, 12], 8081)],
            )
        },
    ]));
    setup.conn_capacity = 64;
    setup.neigh_capacity = 16;
    setup.worker_count = workers;
    Worker::new(&setup)
}

/// Feeds `input` to `worker` as a sequence of frames (length byte, then
/// the bytes; the port is the length byte's low bit), in polls of up to
/// four frames handed over together as the poll loop does, advancing time
/// by a millisecond per frame and running the timed chores every 16
/// frames. Panics only if the worker breaks its accounting contract.
pub fn run_frames(worker: &mut Worker<VecFrame>, input: &[u8]) {
    const PER_POLL: usize = 4;
    let mut out = Discard::default();
    let mut rest = input;
    let mut now = 1_000_000_000u64;
    let mut frames = 0u64;
    let mut bursts: [Vec<VecFrame>; 2] = [Vec::new(), Vec::new()];
    let mut in_poll = 0;
    loop {
        let next = rest.split_first();
        if let Some((&len, tail)) = next {
            let n = usize::from(len).min(tail.len());
            let (bytes, tail) = tail.split_at(n);
            rest = tail;
            bursts[usize::from(len & 1)].push(VecFrame::new(bytes));
            in_poll += 1;
            frames += 1;
        }
        if in_poll == PER_POLL || (next.is_none() && in_poll > 0) {
            let before = worker.stats.total_drops() + out.sent;
            worker.handle_bursts(&mut bursts, now, &mut out);
            let after = worker.stats.total_drops() + out.sent;
            // A frame may produce at most a reply, a copy per peer, or the
            // frames parked for a neighbour it taught us; never "negative".
            assert!(after >= before, "accounting went backwards");
            assert!(bursts.iter().all(Vec::is_empty), "frames left undecided");
            now += 1_000_000 * in_poll as u64;
            in_poll = 0;
            if frames % 16 < PER_POLL as u64 {
                worker.tick(now, &mut out);
            }
        }
        if next.is_none() {
            break;
        }
    }
    assert_eq!(worker.stats.rx_packets, frames);
}

/// A pseudo-random input of about `len` bytes from `seed`, mixing random
/// frames with mutated copies of well-formed ones (so the fuzz run gets
/// past the Ethernet and IPv4 checks often).
pub fn seeded_input(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let proxied = syn_to_proxied();
    let ns = ns_for_vip6();
    let echo = echo_to_us6();
    let templates: [&[u8]; 6] = [&SYN_TO_NAT, &UDP_TO_NAT, &ARP_FOR_US, &proxied, &ns, &echo];
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        let r = next();
        let mut frame: Vec<u8> = if r % 3 == 0 {
            (0..(r >> 8) % 120).map(|_| next() as u8).collect()
        } else {
            templates[(r as usize >> 4) % templates.len()].to_vec()
        };
        for _ in 0..(r >> 16) % 4 {
            if frame.is_empty() {
                break;
            }
            let at = (next() as usize) % frame.len();
            frame[at] = next() as u8;
        }
        let cut = frame.len().min(255);
        frame.truncate(cut);
        let mut len_byte = frame.len() as u8;
        if r & 0x100 != 0 {
            len_byte ^= 1; // sometimes the other port (and a byte less or more)
        }
        out.push(len_byte);
        out.extend_from_slice(&frame);
    }
    out
}

/// The outside port's IPv6 address, and an IPv6 VIP on its prefix.
const OUR_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);

/// Ethernet + IPv6 header from [`PEER6`] to `dst` carrying ICMPv6 `msg`.
fn icmpv6_frame(eth_dst: MacAddr, dst: Ipv6Addr, hop_limit: u8, msg: &[u8]) -> Vec<u8> {
    use crate::wire::ipv6;
    let mut f = Vec::with_capacity(14 + 40 + msg.len());
    f.extend_from_slice(&eth_dst.0);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0xfe, 0x86, 0xdd]);
    let mut h = [0u8; 40];
    let mut ip = ipv6::Packet::init_header(&mut h[..]).expect("40 bytes");
    ip.set_payload_len(msg.len() as u16);
    ip.set_next_header(ipv6::next_header::ICMPV6);
    ip.set_hop_limit(hop_limit);
    ip.set_src_addr(PEER6);
    ip.set_dst_addr(dst);
    f.extend_from_slice(&h);
    f.extend_from_slice(msg);
    f
}

/// A neighbour solicitation for [`VIP6`] (answered) from [`PEER6`].
fn ns_for_vip6() -> Vec<u8> {
    use crate::wire::icmpv6;
    let group = icmpv6::solicited_node(VIP6);
    let mut msg = [0u8; 32];
    let n = icmpv6::NeighborSolicit::for_resolution(VIP6, MacAddr([2, 0, 0, 0, 0, 0xfe]))
        .emit(&mut msg, (PEER6, group))
        .expect("room");
    icmpv6_frame(icmpv6::multicast_mac(group), group, 255, &msg[..n])
}

/// An ICMPv6 echo request to [`OUR_IP6`] from [`PEER6`].
fn echo_to_us6() -> Vec<u8> {
    use crate::wire::icmpv6;
    let mut msg = vec![128, 0, 0, 0, 0, 7, 0, 1, b'f', b'u', b'z', b'z'];
    icmpv6::Packet::new_unchecked(&mut msg[..]).fill_checksum(PEER6, OUR_IP6);
    icmpv6_frame(MacAddr([2, 0, 0, 0, 0, 1]), OUR_IP6, 64, &msg)
}

/// The port of the NAT service with the SYN proxy.
const PROXIED_PORT: u16 = 443;

/// [`SYN_TO_NAT`] to the SYN-proxied service (its mutations include ACKs
/// with random numbers, which the proxy must refuse).
fn syn_to_proxied() -> [u8; 54] {
    let mut f = SYN_TO_NAT;
    let ck = u16::from_be_bytes([f[50], f[51]]);
    let ck = crate::wire::checksum::update_u16(ck, 80, PROXIED_PORT);
    f[36..38].copy_from_slice(&PROXIED_PORT.to_be_bytes());
    f[50..52].copy_from_slice(&ck.to_be_bytes());
    f
}

/// A TCP SYN from 198.51.100.7:40000 to the NAT service (valid checksums).
const SYN_TO_NAT: [u8; 54] = [
    2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 8, 0, //
    0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0xd4, 0x2f, 198, 51, 100, 7, 203, 0, 113, 100, //
    0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
];

/// A UDP datagram from 198.51.100.7:5353 to the UDP service (no checksum).
const UDP_TO_NAT: [u8; 46] = [
    2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 8, 0, //
    0x45, 0, 0, 32, 0, 2, 0x40, 0, 64, 17, 0xd4, 0x2b, 198, 51, 100, 7, 203, 0, 113, 100, //
    0x14, 0xe9, 0, 53, 0, 12, 0, 0, b'q', b'u', b'e', b'r',
];

/// An ARP request for 203.0.113.100 (a VIP) from the router.
const ARP_FOR_US: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0xfe, 8, 6, //
    0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0xfe, 203, 0, 113, 1, //
    0, 0, 0, 0, 0, 0, 203, 0, 113, 100,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::io::VecOutput;
    use crate::wire::checksum;

    #[test]
    fn templates_are_well_formed() {
        // The IPv4 header checksums of the templates are right, so mutated
        // copies exercise the paths behind the checksum test.
        assert!(checksum::is_valid(&SYN_TO_NAT[14..34]));
        assert!(checksum::is_valid(&UDP_TO_NAT[14..34]));
        let mut w = fuzz_worker(1);
        let mut out = VecOutput::default();
        w.handle(0, VecFrame::new(&SYN_TO_NAT), 1, &mut out);
        w.handle(0, VecFrame::new(&UDP_TO_NAT), 1, &mut out);
        w.handle(0, VecFrame::new(&ARP_FOR_US), 1, &mut out);
        w.handle(0, VecFrame::new(&syn_to_proxied()), 1, &mut out);
        w.handle(0, VecFrame::new(&ns_for_vip6()), 1, &mut out);
        w.handle(0, VecFrame::new(&echo_to_us6()), 1, &mut out);
        assert_eq!(out.sent.len(), 6, "{:?}", w.stats);
        assert_eq!(w.stats.nd_solicits_answered, 1);
        assert_eq!(w.stats.icmpv6_echo_answered, 1);
        assert_eq!(w.stats.synproxy_synacks_sent, 1);
    }

    #[test]
    fn the_first_look_reads_the_flow_of_tcp_and_udp_frames_only() {
        use crate::dataplane::worker::parse::{parse, Parsed, L4};
        use crate::lb::conn::{FlowKey, PROTO_TCP, PROTO_UDP};
        let w = fuzz_worker(1);
        let lb = w.balancer();
        let flow = |frame: &[u8]| match parse(frame, lb) {
            Parsed::Ipv4(ip) => match ip.l4 {
                L4::Flow(f) => Some(f.key),
                _ => None,
            },
            _ => None,
        };
        let client = Ipv4Addr::new(198, 51, 100, 7);
        let vip = Ipv4Addr::new(203, 0, 113, 100);
        assert_eq!(
            flow(&SYN_TO_NAT),
            Some(FlowKey::new(client, 40000, vip, 80, PROTO_TCP))
        );
        assert_eq!(
            flow(&UDP_TO_NAT),
            Some(FlowKey::new(client, 5353, vip, 53, PROTO_UDP))
        );
        assert!(matches!(parse(&ARP_FOR_US, lb), Parsed::Arp { l3: 14 }));
        // Truncated anywhere, or a later fragment: no flow, no panic.
        for n in 0..SYN_TO_NAT.len() {
            let _ = parse(&SYN_TO_NAT[..n], lb);
        }
        assert_eq!(flow(&SYN_TO_NAT[..37]), None);
        let mut fragment = SYN_TO_NAT;
        fragment[21] = 0x03; // offset 24: a later fragment
        fragment[24..26].copy_from_slice(&[0, 0]);
        let ck = checksum::checksum(&fragment[14..34]);
        fragment[24..26].copy_from_slice(&ck.to_be_bytes());
        assert!(
            matches!(parse(&fragment, lb), Parsed::Ipv4(ip) if ip.is_fragment() && ip.l4 == L4::None)
        );
        // The hash is the table's: what the prefetch and the lookup use.
        match parse(&SYN_TO_NAT, lb) {
            Parsed::Ipv4(ip) => match ip.l4 {
                L4::Flow(f) => assert_eq!(f.hash, lb.flow_hash(&f.key)),
                other => panic!("no flow: {other:?}"),
            },
            other => panic!("not IPv4: {other:?}"),
        }
    }

    #[test]
    fn seeded_fuzz_run_never_panics() {
        // A short, deterministic stand-in for the cargo-fuzz target: 1000
        // inputs of 4 KiB each, one and two workers.
        for seed in 0..1000u64 {
            let input = seeded_input(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 4096);
            run_frames(&mut fuzz_worker(1), &input);
            run_frames(&mut fuzz_worker(2), &input);
        }
    }
}
