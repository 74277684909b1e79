//! IPv6 NAT against IPv4 NAT through one worker, in one run: the
//! established-connection rate of client segments (client -> VIP, decided
//! and rewritten to a real server) over `--conns` connections of each
//! family, flows drawn at random. A small bench of its own: `datapath.rs`
//! builds 60-byte IPv4 frames from templates throughout (see
//! docs/dev/h19-v6int.md); this one builds every flow's frame ahead, and
//! the worker's work per packet (parse, lookup, rewrite, neighbour, send)
//! is the same path rvsd runs. The copy of the prebuilt frame into a
//! recycled buffer (60 or 74 bytes) is the harness's cost, counted in
//! both.
//!
//!     cargo bench --no-default-features --bench nat6 -- [--conns 1K] [--packets 200K]
//!
//! Prints one JSON line and a summary with the ratio IPv6 / IPv4.
#![deny(unsafe_code)]

use rvs::dataplane::io::{Frame, Output};
use rvs::dataplane::worker::{PortSetup, Worker, WorkerSetup};
use rvs::lb::service::{
    ForwardMethod, Protocol, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use rvs::lb::xmit::{Endpoint, Endpoint6};
use rvs::wire::ipv6::{self, next_header};
use rvs::wire::{ipv4, tcp, Ipv4Cidr, Ipv6Cidr, MacAddr};
use serde_json::json;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const BURST: usize = 32;
const HEADROOM: usize = 64;

/// A frame in a recycled buffer.
struct Buf {
    b: Box<[u8; 256]>,
    start: usize,
    len: usize,
}

impl Frame for Buf {
    fn data(&self) -> &[u8] {
        &self.b[self.start..self.start + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.b[self.start..self.start + self.len]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        true
    }
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    fn insert(&mut self, _at: usize, _n: usize) -> bool {
        false
    }
}

/// Sent frames go back to the free list.
#[derive(Default)]
struct Out {
    free: Vec<Buf>,
    sent: u64,
}

impl Output<Buf> for Out {
    fn send(&mut self, _port: usize, frame: Buf) {
        self.sent += 1;
        self.free.push(frame);
    }
    fn alloc(&mut self, _len: usize) -> Option<Buf> {
        None
    }
    fn redirect(&mut self, _worker: usize, _port: usize, frame: Buf) {
        self.free.push(frame);
    }
}

fn v4_client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x6440_0000 + i)
}

fn v6_client(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(0x2001_0db8_000c_0000_0000_0000_0000_0000u128 + u128::from(i))
}

fn eth(f: &mut Vec<u8>, ethertype: u16) {
    f.extend_from_slice(&OUT_MAC.0);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
}

fn tcp_header(flags: u8) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    t
}

/// Client `i`'s IPv4 segment to the VIP.
fn frame4(i: u32, flags: u8) -> Vec<u8> {
    let (src, dst) = (v4_client(i), Ipv4Addr::new(203, 0, 113, 100));
    let mut f = Vec::new();
    eth(&mut f, 0x0800);
    let mut h = [0u8; 40];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&40u16.to_be_bytes());
    h[6] = 0x40;
    h[8] = 64;
    h[9] = 6;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h[20..].copy_from_slice(&tcp_header(flags));
    tcp::Packet::new_unchecked(&mut h[20..]).fill_checksum(src, dst);
    ipv4::Packet::new_unchecked(&mut h[..]).fill_checksum();
    f.extend_from_slice(&h);
    f
}

/// Client `i`'s IPv6 segment to the VIP.
fn frame6(i: u32, flags: u8) -> Vec<u8> {
    let (src, dst) = (v6_client(i), "2001:db8:1::100".parse().unwrap());
    let mut f = Vec::new();
    eth(&mut f, 0x86DD);
    let mut h = [0u8; 60];
    {
        let mut p = ipv6::Packet::init_header(&mut h[..40]).unwrap();
        p.set_payload_len(20);
        p.set_next_header(next_header::TCP);
        p.set_hop_limit(64);
        p.set_src_addr(src);
        p.set_dst_addr(dst);
    }
    h[40..].copy_from_slice(&tcp_header(flags));
    ipv6::fill_upper_checksum(src, dst, next_header::TCP, &mut h[40..]).unwrap();
    f.extend_from_slice(&h);
    f
}

fn worker(conns: usize) -> Worker<Buf> {
    let mut s = WorkerSetup::ports_only(vec![
        PortSetup {
            mac: OUT_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 2), 24).unwrap()],
            addresses6: vec![Ipv6Cidr::new("2001:db8:1::2".parse().unwrap(), 64).unwrap()],
            mtu: 1500,
        },
        PortSetup {
            mac: IN_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).unwrap()],
            addresses6: vec![Ipv6Cidr::new("2001:db8:2::1".parse().unwrap(), 64).unwrap()],
            mtu: 1500,
        },
    ]);
    let rs4 = [Ipv4Addr::new(10, 1, 0, 11), Ipv4Addr::new(10, 1, 0, 12)];
    let rs6: [Ipv6Addr; 2] = [
        "2001:db8:2::11".parse().unwrap(),
        "2001:db8:2::12".parse().unwrap(),
    ];
    let v4 = VirtualService::new(
        "web",
        ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        rs4.iter().map(|&a| (Endpoint::new(a, 8080), 1)),
    );
    let v6 = VirtualService::new6(
        "web6",
        Endpoint6::new("2001:db8:1::100".parse().unwrap(), 80),
        Protocol::Tcp,
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        rs6.iter().map(|&a| (Endpoint6::new(a, 8080), 1)),
    );
    s.services = Arc::new(ServiceTable::new(vec![v4, v6]));
    s.conn_capacity = (conns * 2).next_power_of_two();
    s.static_neighbors = rs4.iter().map(|&a| (a, RS_MAC, 1)).collect();
    s.ipv6.static_neighbors = rs6.iter().map(|&a| (a, RS_MAC, 1)).collect();
    Worker::new(&s)
}

/// Sends `frames[order[k]]` through the worker in bursts, buffers
/// recycled; returns ns per packet.
fn drive(w: &mut Worker<Buf>, out: &mut Out, frames: &[Vec<u8>], order: &[u32], now: u64) -> f64 {
    let mut bursts: Vec<Vec<Buf>> = vec![Vec::with_capacity(BURST), Vec::new()];
    let started = Instant::now();
    for chunk in order.chunks(BURST) {
        for &i in chunk {
            let f = &frames[i as usize];
            let mut buf = out.free.pop().unwrap_or_else(|| Buf {
                b: Box::new([0u8; 256]),
                start: HEADROOM,
                len: 0,
            });
            buf.start = HEADROOM;
            buf.len = f.len();
            buf.b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            bursts[0].push(buf);
        }
        w.handle_bursts(&mut bursts, now, out);
    }
    started.elapsed().as_nanos() as f64 / order.len() as f64
}

fn count(s: &str) -> Result<usize, String> {
    let (n, mul) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1_000),
        Some('M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    n.parse::<usize>()
        .map(|n| n * mul)
        .map_err(|e| format!("{s}: {e}"))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (mut conns, mut packets) = (1_000usize, 200_000usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--conns" => conns = count(it.next().ok_or("--conns needs a value")?)?,
            "--packets" => packets = count(it.next().ok_or("--packets needs a value")?)?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let mut w = worker(conns);
    let mut out = Out::default();
    let n = conns as u32;
    let syn4: Vec<Vec<u8>> = (0..n).map(|i| frame4(i, 0x02)).collect();
    let syn6: Vec<Vec<u8>> = (0..n).map(|i| frame6(i, 0x02)).collect();
    let all: Vec<u32> = (0..n).collect();
    drive(&mut w, &mut out, &syn4, &all, 1);
    drive(&mut w, &mut out, &syn6, &all, 1);
    let ack4: Vec<Vec<u8>> = (0..n).map(|i| frame4(i, 0x10)).collect();
    let ack6: Vec<Vec<u8>> = (0..n).map(|i| frame6(i, 0x10)).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let order: Vec<u32> = (0..packets)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(n)) as u32
        })
        .collect();
    let sent_before = out.sent;
    // Warm, then alternate the families so both see the same machine.
    drive(&mut w, &mut out, &ack4, &order[..order.len() / 10], 2);
    drive(&mut w, &mut out, &ack6, &order[..order.len() / 10], 2);
    let (mut ns4, mut ns6) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        ns4 = ns4.min(drive(&mut w, &mut out, &ack4, &order, 3));
        ns6 = ns6.min(drive(&mut w, &mut out, &ack6, &order, 3));
    }
    let expected = (packets / 10 * 2 + packets * 6) as u64;
    let sent = out.sent - sent_before;
    let report = json!({
        "conns": conns,
        "packets": packets,
        "nat_ns_per_packet": ns4,
        "nat6_ns_per_packet": ns6,
        "nat_mpps": 1e3 / ns4,
        "nat6_mpps": 1e3 / ns6,
        "nat6_over_nat_rate": ns4 / ns6,
        "sent_ok": sent == expected,
    });
    println!("{report}");
    eprintln!(
        "nat6: {conns} connections a family, {packets} established client segments: IPv4 NAT {:.1} ns/packet ({:.2} Mpps), IPv6 NAT {:.1} ns/packet ({:.2} Mpps): IPv6 at {:.0} % of IPv4's rate{}",
        ns4,
        1e3 / ns4,
        ns6,
        1e3 / ns6,
        100.0 * ns4 / ns6,
        if sent == expected { "" } else { " (NOT every packet was sent: check the setup)" }
    );
    Ok(())
}
