//! The worker's decision and rewrite path on one core, without I/O: NAT
//! packets per second for new connections and for established ones with
//! up to millions of connections in the table, and bytes per connection.
//!
//! Frames live in a fixed pool of plain buffers that the benchmark's
//! output hands straight back, so nothing allocates while timing; every
//! frame is built (valid checksums) before the clock starts. The worker is
//! exactly rvsd's (`dataplane::worker::Worker`), with a NAT service of 16
//! real servers, static neighbours and round robin.
//!
//! Run: `cargo bench --bench datapath -- [--conns N] [--packets N] [--json FILE]`
//! Prints one JSON line and a summary per table size.

use rvs::dataplane::io::{Frame, Output};
use rvs::dataplane::worker::{PortSetup, Worker, WorkerSetup};
use rvs::lb::conn::ConnTable;
use rvs::lb::service::{
    ForwardMethod, Protocol, RealServer, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use rvs::lb::xmit::Endpoint;
use rvs::wire::{ipv4, tcp, Ipv4Cidr, MacAddr};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

const FRAME: usize = 54; // Ethernet + IPv4 + TCP, no payload
const ROOM: usize = 128;
const REAL_SERVERS: u32 = 16;
const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const ROUTER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A frame in a fixed buffer with headroom, moved by value.
struct BenchFrame {
    buf: [u8; ROOM],
    start: usize,
    len: usize,
}

impl Frame for BenchFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
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
}

/// Counts what the worker sends and keeps the frames for reuse.
struct Sink {
    sent: u64,
    kept: Vec<BenchFrame>,
}

impl Output<BenchFrame> for Sink {
    #[inline]
    fn send(&mut self, _port: usize, frame: BenchFrame) {
        self.sent += 1;
        if self.kept.len() < self.kept.capacity() {
            self.kept.push(frame);
        }
    }
    fn alloc(&mut self, _len: usize) -> Option<BenchFrame> {
        None
    }
    fn redirect(&mut self, _w: usize, _p: usize, _f: BenchFrame) {}
}

fn client(i: u32) -> (Ipv4Addr, u16) {
    // 2^16 - 1024 ports per address over 198.18.0.0/15 (RFC 2544 test range).
    let per = 64_512;
    (
        Ipv4Addr::from(0xC612_0000 + i / per),
        1024 + (i % per) as u16,
    )
}

fn rs(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, 11 + (i % REAL_SERVERS) as u8)
}

/// A TCP segment with valid IPv4 header and TCP checksums.
#[allow(clippy::too_many_arguments)]
fn segment(
    dst_mac: MacAddr,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
) -> BenchFrame {
    let mut f = BenchFrame {
        buf: [0; ROOM],
        start: 64,
        len: FRAME,
    };
    let d = f.data_mut();
    d[0..6].copy_from_slice(&dst_mac.0);
    d[6..12].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
    d[12..14].copy_from_slice(&[8, 0]);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut d[14..54]);
        ip.set_version_and_header_len(20);
        ip.set_total_len(40);
        ip.set_unfragmented(true);
        ip.set_ttl(64);
        ip.set_protocol(ipv4::Protocol::Tcp);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    }
    let t = &mut d[34..54];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    tcp::Packet::new_unchecked(t).fill_checksum(src, dst);
    f
}

fn worker(conns: usize) -> Worker<BenchFrame> {
    let ports = vec![
        PortSetup {
            mac: OUT_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 2), 24).unwrap()],
            mtu: 1500,
        },
        PortSetup {
            mac: IN_MAC,
            addresses: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).unwrap()],
            mtu: 1500,
        },
    ];
    let mut setup = WorkerSetup::ports_only(ports);
    setup.routes = rvs::net::route::RouteTable::new(
        &[
            (0, Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 2), 24).unwrap()),
            (1, Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).unwrap()),
        ],
        &[(Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).unwrap(), ROUTER, 0)],
    );
    setup.static_neighbors = (0..REAL_SERVERS)
        .map(|i| (rs(i), MacAddr([2, 0, 0, 1, 0, i as u8]), 1))
        .chain(std::iter::once((ROUTER, MacAddr([2, 0, 0, 0, 0, 0xfe]), 0)))
        .collect();
    setup.services = Arc::new(ServiceTable::new(vec![VirtualService {
        name: "bench".into(),
        key: ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol: Protocol::Tcp,
        },
        forward: ForwardMethod::Nat,
        scheduler: SchedulerKind::Rr,
        mh_table_size: 65537,
        persistence: None,
        expire_nodest_conn: true,
        sorry_server: None,
        real_servers: (0..REAL_SERVERS)
            .map(|i| RealServer {
                endpoint: Endpoint::new(rs(i), 8080),
                weight: 1,
            })
            .collect(),
    }]));
    setup.conn_capacity = conns;
    // A multiple of 16: round robin starts at the first real server, so
    // connection i goes to real server i % 16.
    setup.seed = 0x00c0_ff00;
    Worker::new(&setup)
}

/// Runs `frames` through the worker; returns packets per second.
fn timed(
    w: &mut Worker<BenchFrame>,
    frames: Vec<(usize, BenchFrame)>,
    now: u64,
    sink: &mut Sink,
) -> f64 {
    let n = frames.len();
    let t0 = Instant::now();
    for (port, f) in frames {
        w.handle(port, f, now, sink);
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

struct Figures {
    conns: usize,
    new_pps: f64,
    established_pps: f64,
    bytes_per_conn: f64,
    sent: u64,
    drops: u64,
}

fn run(conns: usize, packets: usize) -> Figures {
    let mut w = worker(conns);
    let mut sink = Sink {
        sent: 0,
        kept: Vec::with_capacity(0),
    };
    let now = 1_000_000_000u64;
    let n = conns as u32;
    // New connections: one SYN per client tuple (rr spreads them, conn i
    // to real server i % 16).
    let syns: Vec<(usize, BenchFrame)> = (0..n)
        .map(|i| {
            let (c, p) = client(i);
            (0, segment(OUT_MAC, c, p, VIP, 80, 0x02))
        })
        .collect();
    let new_pps = timed(&mut w, syns, now, &mut sink);
    // Complete every handshake (not timed): SYN-ACK from the server, ACK.
    for i in 0..n {
        let (c, p) = client(i);
        w.handle(1, segment(IN_MAC, rs(i), 8080, c, p, 0x12), now, &mut sink);
        w.handle(0, segment(OUT_MAC, c, p, VIP, 80, 0x10), now, &mut sink);
    }
    // Established: ACKs on random connections, both directions.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<(usize, BenchFrame)> = (0..packets)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % u64::from(n)) as u32;
            let (c, p) = client(i);
            if k % 2 == 0 {
                (0, segment(OUT_MAC, c, p, VIP, 80, 0x10))
            } else {
                (1, segment(IN_MAC, rs(i), 8080, c, p, 0x10))
            }
        })
        .collect();
    let sent_before = sink.sent;
    let established_pps = timed(&mut w, data, now + 1_000_000, &mut sink);
    for r in rvs::dataplane::stats::DropReason::ALL {
        let n = w.stats.drops[r as usize];
        if n > 0 {
            eprintln!("datapath: {} connections: {} drops {}", conns, n, r.name());
        }
    }
    let table = ConnTable::new(conns);
    Figures {
        conns,
        new_pps,
        established_pps,
        bytes_per_conn: table.memory_bytes() as f64 / conns as f64,
        sent: sink.sent - sent_before,
        drops: w.stats.total_drops(),
    }
}

fn main() {
    let mut conns = vec![1_000usize, 1_048_576];
    let mut packets = 4_000_000usize;
    let mut json_out: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--conns" => {
                if let Some(v) = args.next().and_then(|v| v.parse().ok()) {
                    conns = vec![v];
                }
            }
            "--packets" => packets = args.next().and_then(|v| v.parse().ok()).unwrap_or(packets),
            "--json" => json_out = args.next(),
            _ => {}
        }
    }
    let mut lines = Vec::new();
    for &c in &conns {
        let f = run(c, packets);
        let line = format!(
            "{{\"benchmark\":\"datapath_nat_tcp\",\"connections\":{},\"new_conns_per_s\":{:.0},\"established_pps\":{:.0},\"bytes_per_connection\":{:.1},\"established_sent\":{},\"drops\":{}}}",
            f.conns, f.new_pps, f.established_pps, f.bytes_per_conn, f.sent, f.drops
        );
        println!("{line}");
        println!(
            "{} connections: {:.2} M new connections/s, {:.2} Mpps established NAT (both directions), {:.0} bytes per connection; {} of {} packets sent, {} drops",
            f.conns,
            f.new_pps / 1e6,
            f.established_pps / 1e6,
            f.bytes_per_conn,
            f.sent,
            packets,
            f.drops
        );
        lines.push(line);
    }
    if let Some(path) = json_out {
        std::fs::write(path, lines.join("\n") + "\n").expect("write --json file");
    }
}
