//! NAT packets per second through one rvs worker fed over a DPDK device
//! with many connections, against a same-run reference forwarder that does
//! the least a forwarder must do with the same packets on the same device;
//! and the latency rvs adds per packet.
//!
//! Topology (one process, two lcores; one-armed, like a balancer whose
//! clients and real servers are both behind one interface):
//!
//! ```text
//!   main lcore: generator ──rx ring──> [net_ring port 0] ──> worker lcore
//!     (client side and real   <──tx ring── [net_ring port 0] <──  rvs: poll::run
//!      servers, checks and                                        over DpdkIo,
//!      refills every frame)                                       or the 5tswap
//!                                                                 reference
//! ```
//!
//! The rvs worker is rvsd's (`dataplane::worker::Worker` under
//! `dataplane::poll::run` over `dpdk::io::DpdkIo`, busy polling, bursts of
//! 32), with one NAT TCP service, VIP 203.0.113.100:80, round robin over 16
//! real servers 10.1.0.11..26:8080. Port 0 holds 203.0.113.2/24 and
//! 10.1.0.1/24; clients (198.18.0.0/15, ports 1024..65535) are reached by
//! a default route through 203.0.113.1. The real servers and that router
//! are static neighbours, so nothing waits on ARP.
//!
//! Method:
//!
//! 1. Setup (not timed): the generator opens `--flows` connections, each
//!    with a full handshake through rvs (client SYN, NAT'ed to a real
//!    server; that server's SYN-ACK, translated back to the client; the
//!    client's ACK), `--in-flight` handshakes at a time. The run stops
//!    unless every one completed and the worker's table holds them all.
//!    The same worker (and table) serves every rvs round that follows.
//! 2. Throughput rounds, alternating rvs and the reference (`--rounds`
//!    each, `--seconds` timed after a warm-up): `--in-flight` 64-byte
//!    frames (60 bytes + FCS) circulate. Each is a client → VIP TCP ACK of a
//!    flow drawn uniformly from all the flows, so the connection lookups
//!    span the whole table. The generator dequeues what the worker
//!    transmitted, checks it (for rvs: the NAT'ed segment to a real
//!    server, that server's MAC from the static neighbours, the client's
//!    address and port unchanged, valid IPv4 and TCP checksums; for the
//!    reference: the 5-tuple-swapped segment, valid checksums), records
//!    its latency and rewrites it into the next flow's segment.
//! 3. The reference is what `dpdk-testpmd --forward-mode=5tswap` does per
//!    packet: receive a burst, swap the MAC addresses, and for IPv4 the
//!    addresses and for TCP/UDP the ports, transmit the burst. Same port,
//!    rings, pool and burst size. In its throughput rounds the generator
//!    reflects: it sends every returned frame straight back without
//!    rebuilding it (a swapped frame swapped again is the original) and
//!    checks one in 16 completely, so the generator is as cheap as it can
//!    be and the reference is not held back by it.
//! 4. Cycles per packet, the figure the goal is set on: the worker lcore
//!    times each poll with the TSC (rvs: rvsd's `poll::poll_once`, the
//!    body of its poll loop: receive every port, decide, transmit; the
//!    reference: receive, swap, transmit) and adds up the cycles of the
//!    polls that received frames while the generator measures. They are
//!    taken in separate prefilled rounds (alternating, `--rounds` of
//!    `--seconds` per side): the worker lcore is held off while the
//!    generator writes `--in-flight` frames into the receive ring, then
//!    runs until all are back, so it takes full bursts and never waits
//!    for the generator; the frames are checked after. Busy cycles over
//!    frames received is each side's own cost per packet, I/O included;
//!    empty polls are left out on both sides. `ratio_5tswap_over_rvs_cycles` =
//!    reference cycles/packet ÷ rvs cycles/packet (goal ≥ 0.5: rvs costs
//!    at most twice the reference).
//! 5. Latency: each frame carries a 16-bit sequence number in its IPv4
//!    identification (neither NAT nor the swap touches it); the generator
//!    keeps the TSC time it enqueued each number and records the time to
//!    the frame's return into an HDR histogram (ns). At `--in-flight`
//!    frames this is mostly queueing (frames in flight / rate), so one
//!    short low-load round per side (`--latency-in-flight`, default 32)
//!    follows the throughput rounds.
//!
//! Reading the results: `rvs_mpps` and `reference_mpps` are each side's
//! median round; `ratio_rvs_over_5tswap` is their ratio (the goal is 0.5
//! or more with a million connections). `latency_ns.*.added` is rvs minus
//! the reference at each percentile: the round trip through the rings and
//! the generator is common to both and cancels (at `--in-flight` frames
//! the loaded figures are dominated by queueing, in flight / rate; the
//! low-load ones are the cost per burst). Which stage set a side's rate:
//! `generator_backlog_fraction` is the time-averaged share of the frames
//! in flight that waited for the generator; near 1 the generator, not the
//! worker, was the limit, and for the reference that makes the ratio
//! flattering to rvs. The workers' empty-poll fractions are shown too, but
//! an empty poll costs nanoseconds and a full one microseconds, so they
//! sit far above the share of time a worker waited. The lcores are pinned
//! to cores 0 and 1: anything else running preempts them for milliseconds
//! at a time, which shows as p99.9 latencies of several ms and rates that
//! vary from round to round (`load_average_before` tells). Bad frames
//! fail the run.
//!
//! Run: `cargo bench --bench through_ring -- [--flows N] [--seconds S]
//! [--rounds R] [--in-flight N] [--latency-in-flight N] [--json FILE]
//! [--smoke]` as root (no hugepages needed). `--smoke` is a 1-2 second run
//! (4096 flows, one short round) that still checks every frame and exits
//! non-zero when nothing was forwarded, a frame was wrong or the
//! connections were not all opened. Prints one JSON line and a summary.
#![deny(unsafe_code)]

use hdrhistogram::Histogram;
use rvs::dataplane::io::{Clock, Frame, PacketIo};
use rvs::dataplane::poll;
use rvs::dataplane::stats::{DropReason, StatsCell, WorkerStats};
use rvs::dataplane::worker::{PortSetup, Worker, WorkerSetup};
use rvs::dpdk::ring::{self, RingConsumer, RingProducer};
use rvs::dpdk::tsc::tsc;
use rvs::dpdk::{eal::Eal, io::DpdkIo, lcore, mbuf::Mbuf, mempool::Mempool, port::Port, TscClock};
use rvs::lb::service::{
    ForwardMethod, Protocol, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use rvs::lb::xmit::Endpoint;
use rvs::net::route::RouteTable;
use rvs::net::rss::{ClientSide, RssModel};
use rvs::wire::{checksum, ipv4, tcp, Ipv4Cidr, MacAddr};
use serde_json::{json, Map, Value};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
/// The clients' router (the generator's client side).
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
const ROUTER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const PORT_OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const PORT_INSIDE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const VIP_PORT: u16 = 80;
const RS_PORT: u16 = 8080;
const REAL_SERVERS: u8 = 16;
/// Last octet of the first real server (10.1.0.11).
const RS_FIRST: u8 = 11;

const FRAME_LEN: usize = 60; // 64 on the wire with the FCS
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const TCP_SYN_ACK: u8 = 0x12;
const CLIENT_ISN: u32 = 0x1000_0000;
const SERVER_ISN: u32 = 0x2000_0000;

/// The worker's (and the reference's) burst size.
const BURST: usize = 32;
/// Frames the generator dequeues at once.
const GEN_BURST: usize = 64;
const WORKER_LCORE: u32 = 1;
/// The sequence numbers are 16 bits; half of them may be in flight.
const MAX_IN_FLIGHT: usize = 32_768;
const MBUF_CACHE: u32 = 256;
const MBUF_DATA_ROOM: u16 = 2048 + 128;

struct Args {
    flows: u32,
    seconds: f64,
    warmup: f64,
    rounds: usize,
    in_flight: usize,
    latency_in_flight: usize,
    latency_seconds: f64,
    json: Option<String>,
    smoke: bool,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("through_ring: {msg}");
    eprintln!(
        "usage: through_ring [--flows N] [--seconds S] [--rounds R] [--in-flight N] \
         [--latency-in-flight N] [--json FILE] [--smoke]"
    );
    std::process::exit(2)
}

fn value<T: std::str::FromStr>(it: &mut impl Iterator<Item = String>, flag: &str) -> T {
    let Some(v) = it.next() else {
        usage_error(&format!("{flag} needs a value"))
    };
    v.parse()
        .unwrap_or_else(|_| usage_error(&format!("{flag}: cannot read {v:?}")))
}

fn args() -> Args {
    let (mut flows, mut seconds, mut rounds) = (None, None, None);
    let (mut in_flight, mut latency_in_flight) = (None, None);
    let (mut json, mut smoke) = (None, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--flows" => flows = Some(value::<u32>(&mut it, &arg)),
            "--seconds" => seconds = Some(value::<f64>(&mut it, &arg)),
            "--rounds" => rounds = Some(value::<usize>(&mut it, &arg)),
            "--in-flight" => in_flight = Some(value::<usize>(&mut it, &arg)),
            "--latency-in-flight" => latency_in_flight = Some(value::<usize>(&mut it, &arg)),
            "--json" => json = Some(value::<String>(&mut it, &arg)),
            "--smoke" => smoke = true,
            "--bench" => {} // passed by `cargo bench`
            other => eprintln!("through_ring: ignoring argument {other:?}"),
        }
    }
    let seconds = seconds.unwrap_or(if smoke { 0.3 } else { 3.0 });
    let a = Args {
        flows: flows.unwrap_or(if smoke { 4096 } else { 1 << 20 }),
        seconds,
        warmup: if smoke { 0.1 } else { 0.5 },
        rounds: rounds.unwrap_or(if smoke { 1 } else { 3 }),
        in_flight: in_flight.unwrap_or(1024),
        latency_in_flight: latency_in_flight.unwrap_or(32),
        latency_seconds: if smoke { 0.1 } else { seconds.min(1.0) },
        json,
        smoke,
    };
    if a.flows == 0 || a.flows as usize > rvs::lb::conn::MAX_CAPACITY {
        usage_error(&format!(
            "--flows must be 1..={}",
            rvs::lb::conn::MAX_CAPACITY
        ));
    }
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 3600.0) {
        usage_error("--seconds must be more than 0 and at most 3600");
    }
    if a.rounds == 0 {
        usage_error("--rounds must be at least 1");
    }
    for (flag, n) in [
        ("--in-flight", a.in_flight),
        ("--latency-in-flight", a.latency_in_flight),
    ] {
        if n == 0 || n > MAX_IN_FLIGHT {
            usage_error(&format!("{flag} must be 1..={MAX_IN_FLIGHT}"));
        }
    }
    a
}

/// Client `i`'s address and port: 64512 ports per address over
/// 198.18.0.0/15 (RFC 2544's benchmarking range).
#[inline]
fn client(i: u32) -> (Ipv4Addr, u16) {
    const PER: u32 = 64_512;
    (
        Ipv4Addr::from(0xC612_0000 + i / PER),
        1024 + (i % PER) as u16,
    )
}

fn rs_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, RS_FIRST + i)
}

fn rs_mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 1, 0, i])
}

/// The worker: one port, the NAT service, static neighbours, a table for
/// every flow.
fn worker_setup(flows: u32) -> WorkerSetup {
    let outside = Ipv4Cidr::new(PORT_OUTSIDE, 24).expect("a /24 is a valid prefix");
    let inside = Ipv4Cidr::new(PORT_INSIDE, 24).expect("a /24 is a valid prefix");
    let mut setup = WorkerSetup::ports_only(vec![PortSetup {
        mac: PORT_MAC,
        addresses: vec![outside, inside],
        addresses6: Vec::new(),
        mtu: 1500,
    }]);
    setup.routes = RouteTable::new(
        &[(0, outside), (0, inside)],
        &[(
            Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).expect("the default route is valid"),
            ROUTER,
            0,
        )],
    );
    setup.static_neighbors = (0..REAL_SERVERS)
        .map(|i| (rs_ip(i), rs_mac(i), 0))
        .chain(std::iter::once((ROUTER, ROUTER_MAC, 0)))
        .collect();
    let key = ServiceKey {
        vip: Endpoint::new(VIP, VIP_PORT),
        protocol: Protocol::Tcp,
    };
    let servers = (0..REAL_SERVERS)
        .map(|i| Endpoint::new(rs_ip(i), RS_PORT))
        .map(|e| (e, 1));
    setup.services = Arc::new(ServiceTable::new(vec![VirtualService::new(
        "through_ring",
        key,
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        servers,
    )]));
    setup.conn_capacity = flows as usize;
    setup.seed = 0x7468_726f_7567_6821;
    setup
}

// ---------------------------------------------------------------------
// Frames.

/// Writes a 60-byte Ethernet + IPv4 + TCP segment (no payload, zero
/// padding) with valid checksums into `d`.
#[allow(clippy::too_many_arguments)]
fn write_segment(
    d: &mut [u8],
    dst_mac: MacAddr,
    src_mac: MacAddr,
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
) {
    d.fill(0);
    d[0..6].copy_from_slice(&dst_mac.0);
    d[6..12].copy_from_slice(&src_mac.0);
    d[12..14].copy_from_slice(&[0x08, 0x00]);
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
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    tcp::Packet::new_unchecked(t).fill_checksum(src, dst);
}

/// The client → VIP ACK of any flow, patched into a copy of one template
/// with incremental checksums: the generator's per-frame write.
struct AckTemplate {
    base: [u8; FRAME_LEN],
    /// Unfolded sum of the IPv4 header with zero source, identification
    /// and checksum.
    ip_sum: u64,
    /// Unfolded sum of the pseudo-header and TCP header with zero source
    /// address, source port and checksum.
    tcp_sum: u64,
}

impl AckTemplate {
    fn new() -> AckTemplate {
        let mut base = [0u8; FRAME_LEN];
        write_segment(
            &mut base,
            PORT_MAC,
            ROUTER_MAC,
            (Ipv4Addr::UNSPECIFIED, 0),
            (VIP, VIP_PORT),
            TCP_ACK,
            CLIENT_ISN + 1,
            SERVER_ISN + 1,
        );
        base[24..26].fill(0);
        base[50..52].fill(0);
        let ip_sum = checksum::sum(&base[14..34]);
        let tcp_sum = checksum::pseudo_header_sum(Ipv4Addr::UNSPECIFIED, VIP, 6, 20)
            + checksum::sum(&base[34..54]);
        AckTemplate {
            base,
            ip_sum,
            tcp_sum,
        }
    }

    /// Writes flow `flow`'s ACK with identification `ident` into `d`
    /// (exactly [`FRAME_LEN`] bytes).
    #[inline]
    fn write(&self, d: &mut [u8], flow: u32, ident: u16) {
        let (ip, port) = client(flow);
        let ip = u32::from(ip);
        let addr_sum = u64::from(ip >> 16) + u64::from(ip & 0xffff);
        d.copy_from_slice(&self.base);
        d[18..20].copy_from_slice(&ident.to_be_bytes());
        d[26..30].copy_from_slice(&ip.to_be_bytes());
        d[34..36].copy_from_slice(&port.to_be_bytes());
        let ip_ck = !checksum::fold(self.ip_sum + addr_sum + u64::from(ident));
        d[24..26].copy_from_slice(&ip_ck.to_be_bytes());
        let tcp_ck = !checksum::fold(self.tcp_sum + addr_sum + u64::from(port));
        d[50..52].copy_from_slice(&tcp_ck.to_be_bytes());
    }
}

/// True when the 60-byte IPv4/TCP frame `d` has valid IPv4 header and TCP
/// checksums.
#[inline]
fn checksums_ok(d: &[u8]) -> bool {
    checksum::is_valid(&d[14..34])
        && checksum::fold(checksum::sum(&d[26..34]) + 6 + 20 + checksum::sum(&d[34..54])) == 0xffff
}

/// True when `d` is a plain 60-byte Ethernet + IPv4 (no options) + TCP
/// frame with the given flags and valid checksums.
#[inline]
fn tcp_frame(d: &[u8], flags: u8) -> bool {
    d.len() == FRAME_LEN
        && d[12..14] == [0x08, 0x00]
        && d[14] == 0x45
        && d[23] == 6
        && d[46] == 0x50
        && d[47] == flags
        && checksums_ok(d)
}

/// The index of the real server a frame was NAT'ed to, if its destination
/// address, port and MAC are one real server's and it comes from our MAC.
#[inline]
fn natted_to_rs(d: &[u8]) -> Option<u8> {
    if d[30..33] != [10, 1, 0] || d[36..38] != RS_PORT.to_be_bytes() || d[6..12] != PORT_MAC.0 {
        return None;
    }
    let i = d[33].wrapping_sub(RS_FIRST);
    (i < REAL_SERVERS && d[0..6] == rs_mac(i).0).then_some(i)
}

/// True when `d` carries flow `flow`'s client address and port at
/// `addr`..`addr + 4` and `port`..`port + 2`.
#[inline]
fn carries_client(d: &[u8], flow: u32, addr: usize, port: usize) -> bool {
    let (ip, p) = client(flow);
    d[addr..addr + 4] == ip.octets() && d[port..port + 2] == p.to_be_bytes()
}

/// Whether a frame that came back for flow `flow` (of `flows`) is what
/// `side` must return: rvs's NAT rewrite, or the reference's swap.
fn came_back_right(side: Side, d: &[u8], flow: u32, flows: u32) -> bool {
    flow < flows
        && match side {
            Side::Rvs => rvs_ok(d, flow),
            Side::Reference => swapped_ok(d, flow),
        }
}

/// What rvs must return for flow `flow`'s ACK: the same segment NAT'ed to
/// a real server (client address and port untouched).
#[inline]
fn rvs_ok(d: &[u8], flow: u32) -> bool {
    tcp_frame(d, TCP_ACK) && natted_to_rs(d).is_some() && carries_client(d, flow, 26, 34)
}

/// What the 5tswap reference must return for flow `flow`'s ACK: the
/// segment with MAC addresses, IPv4 addresses and ports swapped.
#[inline]
fn swapped_ok(d: &[u8], flow: u32) -> bool {
    tcp_frame(d, TCP_ACK)
        && d[0..6] == ROUTER_MAC.0
        && d[6..12] == PORT_MAC.0
        && d[26..30] == VIP.octets()
        && d[34..36] == VIP_PORT.to_be_bytes()
        && carries_client(d, flow, 30, 36)
}

/// A frame the reference returned in `Feed::Reflect`: flow `flow`'s ACK
/// after an odd number of trips (swapped) or an even one (as sent).
fn reflected_ok(d: &[u8], flow: u32) -> bool {
    if swapped_ok(d, flow) {
        return true;
    }
    let mut c = [0u8; FRAME_LEN];
    match c.get_mut(..d.len()) {
        Some(c) if d.len() == FRAME_LEN => {
            c.copy_from_slice(d);
            five_tuple_swap(c);
            swapped_ok(c, flow)
        }
        _ => false,
    }
}

/// testpmd's 5tswap: swap the MAC addresses; for IPv4 the addresses; for
/// TCP and UDP the ports.
#[inline]
fn five_tuple_swap(d: &mut [u8]) {
    if d.len() < 14 {
        return;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&d[0..6]);
    d.copy_within(6..12, 0);
    d[6..12].copy_from_slice(&mac);
    if d[12..14] != [0x08, 0x00] || d.len() < 34 {
        return;
    }
    let mut addr = [0u8; 4];
    addr.copy_from_slice(&d[26..30]);
    d.copy_within(30..34, 26);
    d[30..34].copy_from_slice(&addr);
    let l4 = 14 + usize::from(d[14] & 0x0f) * 4;
    if (d[23] == 6 || d[23] == 17) && d.len() >= l4 + 4 {
        let mut port = [0u8; 2];
        port.copy_from_slice(&d[l4..l4 + 2]);
        d.copy_within(l4 + 2..l4 + 4, l4);
        d[l4 + 2..l4 + 4].copy_from_slice(&port);
    }
}

/// xorshift64: cheap uniform flow choice.
struct Rng(u64);

impl Rng {
    /// A number uniform in `0..n`.
    #[inline]
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (((self.0 >> 32) * u64::from(n)) >> 32) as u32
    }
}

// ---------------------------------------------------------------------
// The device, and what runs on the worker lcore.

/// Everything both sides share: the port, its rings, the pool, the clock.
struct Rig {
    pool: Arc<Mempool>,
    ports: Vec<Port>,
    to_worker: RingProducer,
    from_worker: RingConsumer,
    clock: TscClock,
}

/// What to run on the worker lcore.
enum Job {
    /// rvsd's poll loop over this worker (which comes back afterwards).
    Rvs(Box<Worker<Mbuf>>),
    /// The 5tswap reference.
    Swap,
}

/// What the worker lcore hands back.
enum Finished {
    Rvs(Box<Worker<Mbuf>>, Busy),
    Swap(SwapCounts, Busy),
}

/// The worker lcore's own cost while the generator measured: TSC cycles
/// of the polls that received frames (receive, work, transmit), and the
/// frames they received.
#[derive(Clone, Copy, Default)]
struct Busy {
    cycles: u64,
    packets: u64,
    /// Polls left out for taking longer than `PREEMPTED_POLL_CYCLES`.
    preempted: u64,
}

/// A poll of one burst takes microseconds; one that took longer than this
/// (~100 us) was preempted by other work on the shared machine, and its
/// cycles are not the worker's: left out (and counted) on both sides.
const PREEMPTED_POLL_CYCLES: u64 = 250_000;

impl Busy {
    /// Counts one poll that received `n` frames in `cycles`, while the
    /// generator measures.
    #[inline]
    fn poll(&mut self, measuring: &AtomicBool, n: usize, cycles: u64) {
        if n > 0 && measuring.load(Ordering::Relaxed) {
            if cycles > PREEMPTED_POLL_CYCLES {
                self.preempted += 1;
                return;
            }
            self.cycles += cycles;
            self.packets += n as u64;
        }
    }

    fn cycles_per_packet(self) -> f64 {
        self.cycles as f64 / self.packets.max(1) as f64
    }
}

#[derive(Clone, Copy, Default)]
struct SwapCounts {
    polls: u64,
    empty_polls: u64,
    /// Frames the device refused (freed).
    tx_refused: u64,
}

struct Running {
    stop: Arc<AtomicBool>,
    /// Set by the generator while it measures (after the warm-up), so the
    /// worker counts its busy cycles over the same span.
    measuring: Arc<AtomicBool>,
    done: mpsc::Receiver<Finished>,
}

/// Starts `job` on the worker lcore. `gated`: it polls only while the
/// generator's `measuring` flag is set (prefilled rounds: the generator
/// fills the ring first, so every burst the worker takes is full).
fn start(eal: &Eal, rig: &Rig, job: Job, gated: bool) -> Result<Running, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let (tx, done) = mpsc::channel();
    let mut io = DpdkIo::new(&rig.ports, 0, rig.pool.clone());
    let clock = rig.clock;
    let worker_stop = stop.clone();
    let worker_measuring = measuring.clone();
    let run = move || {
        let mut busy = Busy::default();
        let finished = match job {
            Job::Rvs(mut worker) => {
                // rvsd's poll loop (`poll::run`) pass by pass, each pass
                // (`poll::poll_once`: receive every port, decide, transmit)
                // timed with the TSC.
                let ports = io.port_count();
                let mut rx: Vec<Vec<Mbuf>> =
                    (0..ports).map(|_| Vec::with_capacity(BURST)).collect();
                let mut tx: Vec<Vec<Mbuf>> =
                    (0..ports).map(|_| Vec::with_capacity(BURST)).collect();
                let mut handover: Vec<Vec<Vec<Mbuf>>> =
                    vec![(0..ports).map(|_| Vec::with_capacity(BURST)).collect()];
                while !worker_stop.load(Ordering::Relaxed) {
                    if gated && !worker_measuring.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                        continue;
                    }
                    let now = clock.now_ns();
                    let t0 = tsc();
                    let n =
                        poll::poll_once(&mut worker, &mut io, now, &mut rx, &mut tx, &mut handover);
                    let spent = tsc() - t0;
                    if n == 0 {
                        worker.stats.idle_polls += 1;
                    } else {
                        worker.stats.busy_polls += 1;
                    }
                    busy.poll(&worker_measuring, n, spent);
                }
                Finished::Rvs(worker, busy)
            }
            Job::Swap => {
                let mut c = SwapCounts::default();
                let mut burst: Vec<Mbuf> = Vec::with_capacity(BURST);
                while !worker_stop.load(Ordering::Relaxed) {
                    if gated && !worker_measuring.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                        continue;
                    }
                    let t0 = tsc();
                    io.rx_burst(0, &mut burst);
                    c.polls += 1;
                    if burst.is_empty() {
                        c.empty_polls += 1;
                        continue;
                    }
                    let n = burst.len();
                    for m in burst.iter_mut() {
                        five_tuple_swap(m.data_mut());
                    }
                    io.tx_burst(0, &mut burst);
                    c.tx_refused += burst.len() as u64;
                    burst.clear(); // frames the device refused are freed
                    busy.poll(&worker_measuring, n, tsc() - t0);
                }
                Finished::Swap(c, busy)
            }
        };
        // The receiver outlives the job (finish waits for it).
        let _ = tx.send(finished);
        0
    };
    lcore::launch(eal, WORKER_LCORE, run)
        .map_err(|e| format!("cannot start the worker lcore: {e}"))?;
    Ok(Running {
        stop,
        measuring,
        done,
    })
}

fn finish(eal: &Eal, running: Running) -> Result<Finished, String> {
    running.stop.store(true, Ordering::Relaxed);
    let rc = lcore::wait(eal, WORKER_LCORE);
    running
        .done
        .recv()
        .map_err(|_| format!("the worker lcore ended without a result (status {rc})"))
}

fn finish_rvs(eal: &Eal, running: Running) -> Result<(Box<Worker<Mbuf>>, Busy), String> {
    match finish(eal, running)? {
        Finished::Rvs(w, b) => Ok((w, b)),
        Finished::Swap(..) => Err("the worker lcore ran the reference, not rvs".into()),
    }
}

fn finish_swap(eal: &Eal, running: Running) -> Result<(SwapCounts, Busy), String> {
    match finish(eal, running)? {
        Finished::Swap(c, b) => Ok((c, b)),
        Finished::Rvs(..) => Err("the worker lcore ran rvs, not the reference".into()),
    }
}

/// What the rvs worker counted over a round.
#[derive(Clone, Copy)]
struct RvsCounts {
    busy_polls: u64,
    idle_polls: u64,
    drops: [u64; DropReason::COUNT],
}

// By hand: arrays longer than 32 have no derived `Default`.
impl Default for RvsCounts {
    fn default() -> Self {
        RvsCounts {
            busy_polls: 0,
            idle_polls: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl RvsCounts {
    /// The counters gained between two readings of a worker's stats.
    fn between(before: &WorkerStats, after: &WorkerStats) -> RvsCounts {
        let mut drops = [0u64; DropReason::COUNT];
        for (d, (a, b)) in drops.iter_mut().zip(after.drops.iter().zip(before.drops)) {
            *d = a - b;
        }
        RvsCounts {
            busy_polls: after.busy_polls - before.busy_polls,
            idle_polls: after.idle_polls - before.idle_polls,
            drops,
        }
    }

    fn add(&mut self, o: &RvsCounts) {
        self.busy_polls += o.busy_polls;
        self.idle_polls += o.idle_polls;
        for (d, x) in self.drops.iter_mut().zip(o.drops) {
            *d += x;
        }
    }

    fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Drops by reason name (those that happened).
fn drops_json(drops: &[u64; DropReason::COUNT]) -> Value {
    let mut m = Map::new();
    for r in DropReason::ALL {
        let n = drops[r as usize];
        if n > 0 {
            m.insert(r.name().to_string(), json!(n));
        }
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------
// The generator.

/// Moves frames between the generator and the rings, keeping count of
/// those out in the device and worker.
struct Gen<'a> {
    rig: &'a mut Rig,
    pending: Vec<Mbuf>,
    back: Vec<Mbuf>,
    /// Frames enqueued and not yet dequeued.
    out: usize,
}

impl<'a> Gen<'a> {
    fn new(rig: &'a mut Rig, in_flight: usize) -> Gen<'a> {
        Gen {
            rig,
            pending: Vec::with_capacity(in_flight),
            back: Vec::with_capacity(GEN_BURST),
            out: 0,
        }
    }

    fn alloc(&self) -> Result<Mbuf, String> {
        self.rig.pool.alloc(FRAME_LEN as u16).ok_or_else(|| {
            format!(
                "the mbuf pool is empty ({} free)",
                self.rig.pool.available()
            )
        })
    }

    #[inline]
    fn now(&self) -> u64 {
        self.rig.clock.now_ns()
    }

    /// Enqueues what is pending (what the ring refuses stays pending).
    #[inline]
    fn send(&mut self) {
        let before = self.pending.len();
        self.rig.to_worker.enqueue_burst(&mut self.pending);
        self.out += before - self.pending.len();
    }

    /// Dequeues returned frames into `self.back`.
    #[inline]
    fn receive(&mut self) {
        self.rig.from_worker.dequeue_burst(&mut self.back);
        self.out -= self.back.len();
    }

    /// Stops sending and collects every frame still out (freeing them),
    /// for at most `patience`; returns how many never came back.
    fn drain(&mut self, patience: Duration) -> usize {
        self.pending.clear();
        let deadline = self.now() + patience.as_nanos() as u64;
        while self.out > 0 && self.now() < deadline {
            self.receive();
            self.back.clear();
        }
        self.out
    }
}

struct SetupOutcome {
    established: u64,
    bad: u64,
    lost: usize,
    seconds: f64,
}

/// Where a frame returned during setup leaves its handshake.
enum Handshake {
    /// Rewritten into the handshake's next segment.
    Next,
    /// The client's ACK reached the real server: the connection is open.
    Open,
    /// Not what rvs should have sent.
    Bad,
}

/// Checks a frame rvs returned during setup and, when the handshake goes
/// on, rewrites it into the next segment: the NAT'ed SYN becomes the real
/// server's SYN-ACK, and that SYN-ACK, translated back to the client,
/// becomes the client's ACK.
fn handshake_step(d: &mut [u8], ack: &AckTemplate) -> Handshake {
    if !(d.len() == FRAME_LEN && tcp_frame(d, d[47])) {
        return Handshake::Bad;
    }
    let from_client = d[26] == 198 && d[27] & 0xfe == 18;
    match d[47] {
        TCP_SYN if from_client => {
            let Some(i) = natted_to_rs(d) else {
                return Handshake::Bad;
            };
            let client = Ipv4Addr::new(d[26], d[27], d[28], d[29]);
            let port = u16::from_be_bytes([d[34], d[35]]);
            write_segment(
                d,
                PORT_MAC,
                rs_mac(i),
                (rs_ip(i), RS_PORT),
                (client, port),
                TCP_SYN_ACK,
                SERVER_ISN,
                CLIENT_ISN + 1,
            );
            Handshake::Next
        }
        TCP_SYN_ACK => {
            let to_client = d[0..6] == ROUTER_MAC.0
                && d[6..12] == PORT_MAC.0
                && d[26..30] == VIP.octets()
                && d[34..36] == VIP_PORT.to_be_bytes();
            let ip = u32::from_be_bytes([d[30], d[31], d[32], d[33]]);
            let port = u16::from_be_bytes([d[36], d[37]]);
            if !(to_client && (0xC612_0000..0xC614_0000).contains(&ip) && port >= 1024) {
                return Handshake::Bad;
            }
            let flow = (ip - 0xC612_0000) * 64_512 + u32::from(port - 1024);
            ack.write(d, flow, 0);
            Handshake::Next
        }
        TCP_ACK if from_client && natted_to_rs(d).is_some() => Handshake::Open,
        _ => Handshake::Bad,
    }
}

/// Opens every flow with a full handshake through the running rvs worker,
/// `window` handshakes at a time.
fn open_flows(rig: &mut Rig, flows: u32, window: usize) -> Result<SetupOutcome, String> {
    let ack = AckTemplate::new();
    let mut g = Gen::new(rig, window);
    let (mut next, mut established, mut bad) = (0u32, 0u64, 0u64);
    let syn = |d: &mut [u8], flow: u32| {
        write_segment(
            d,
            PORT_MAC,
            ROUTER_MAC,
            client(flow),
            (VIP, VIP_PORT),
            TCP_SYN,
            CLIENT_ISN,
            0,
        )
    };
    let started = g.now();
    let mut last_progress = started;
    loop {
        // Keep `window` handshakes going (frames rvs dropped are replaced).
        while next < flows && g.out + g.pending.len() < window {
            let mut m = g.alloc()?;
            syn(m.data_mut(), next);
            next += 1;
            g.pending.push(m);
        }
        g.send();
        g.receive();
        let now = g.now();
        if g.back.is_empty() {
            if g.out == 0 && g.pending.is_empty() && next == flows {
                break;
            }
            if now - last_progress > 2_000_000_000 {
                break; // nothing came back for 2 s: the rest is lost
            }
            continue;
        }
        last_progress = now;
        let mut back = std::mem::take(&mut g.back);
        for mut m in back.drain(..) {
            match handshake_step(m.data_mut(), &ack) {
                Handshake::Next => g.pending.push(m),
                Handshake::Open => {
                    established += 1;
                    if next < flows {
                        syn(m.data_mut(), next);
                        next += 1;
                        g.pending.push(m);
                    }
                }
                Handshake::Bad => bad += 1, // and the frame is freed
            }
        }
        g.back = back;
    }
    let seconds = (g.now() - started) as f64 / 1e9;
    let lost = g.drain(Duration::from_millis(200));
    Ok(SetupOutcome {
        established,
        bad,
        lost: lost + (flows - next) as usize,
        seconds,
    })
}

/// What the worker lcore runs during a timed round.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Rvs,
    Reference,
}

struct Timed {
    pps: f64,
    good: u64,
    bad: u64,
    lost: usize,
    latency: Histogram<u64>,
    /// Time-averaged share of the frames in flight that waited in the
    /// device's transmit ring for the generator: near 1 the generator
    /// limited the rate, near 0 the worker did (or the I/O between them).
    backlog: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// How the generator treats the frames coming back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// Checks each completely, records its latency and rewrites it into
    /// the next flow's segment.
    Rebuild,
    /// Sends each straight back as it came (5tswap of 5tswap is the
    /// original frame), checking one in `REFLECT_CHECK_EVERY`: the
    /// cheapest generator there is, so that the reference is not bound by
    /// it. No latency.
    Reflect,
}

/// In `Feed::Reflect`, one returned frame in this many is checked.
const REFLECT_CHECK_EVERY: u64 = 16;

/// One timed round: `in_flight` frames of random flows circulate for
/// `warmup + seconds`; the rate and latency count after the warm-up, and
/// `measuring` is set meanwhile (for the worker's busy cycles).
#[allow(clippy::too_many_arguments)]
fn timed(
    rig: &mut Rig,
    side: Side,
    feed: Feed,
    flows: u32,
    in_flight: usize,
    (warmup, seconds): (f64, f64),
    measuring: &AtomicBool,
    rng: &mut Rng,
) -> Result<Timed, String> {
    let ack = AckTemplate::new();
    // When each sequence number was enqueued, and which flow it carries.
    let mut sent: Vec<(u64, u32)> = vec![(0, 0); 1 << 16];
    let mut seq: u16 = 0;
    let mut latency = histogram();
    let mut g = Gen::new(rig, in_flight);
    let started = g.now();
    for _ in 0..in_flight {
        let mut m = g.alloc()?;
        let flow = rng.below(flows);
        seq = seq.wrapping_add(1);
        sent[usize::from(seq)] = (started, flow);
        ack.write(m.data_mut(), flow, seq);
        g.pending.push(m);
    }
    let measure_from = started + (warmup * 1e9) as u64;
    let end = measure_from + (seconds * 1e9) as u64;
    let (mut good, mut bad) = (0u64, 0u64);
    let measuring_flag = measuring;
    let mut returned = 0u64;
    let mut measuring: Option<(u64, u64)> = None;
    let mut now = started;
    let mut back = std::mem::take(&mut g.back);
    // Frames waiting for the generator, times how long (ns).
    let mut backlog: u128 = 0;
    while now < end {
        g.send();
        let waiting = g.rig.from_worker.len();
        g.rig.from_worker.dequeue_burst(&mut back);
        g.out -= back.len();
        let then = now;
        now = g.now();
        if measuring.is_some() {
            backlog += (waiting as u128) * u128::from(now - then);
        }
        if measuring.is_none() && now >= measure_from {
            measuring = Some((now, good));
            measuring_flag.store(true, Ordering::Relaxed);
        }
        if feed == Feed::Reflect {
            for m in back.drain(..) {
                returned += 1;
                good += 1;
                if returned.is_multiple_of(REFLECT_CHECK_EVERY) {
                    let d = m.data();
                    let flow = d.get(18..20).map_or(u32::MAX, |id| {
                        sent[usize::from(u16::from_be_bytes([id[0], id[1]]))].1
                    });
                    if !(flow < flows && reflected_ok(d, flow)) {
                        good -= 1;
                        bad += 1;
                    }
                }
                g.pending.push(m);
            }
            continue;
        }
        for mut m in back.drain(..) {
            let d = m.data();
            let (at, flow) = match d.get(18..20) {
                Some(id) => sent[usize::from(u16::from_be_bytes([id[0], id[1]]))],
                None => (now, u32::MAX),
            };
            let ok = came_back_right(side, d, flow, flows);
            if ok {
                good += 1;
                if measuring.is_some() {
                    latency.saturating_record(now.saturating_sub(at));
                }
            } else {
                bad += 1;
                if d.len() != FRAME_LEN {
                    drop(m);
                    m = g.alloc()?;
                }
            }
            let flow = rng.below(flows);
            seq = seq.wrapping_add(1);
            sent[usize::from(seq)] = (now, flow);
            ack.write(m.data_mut(), flow, seq);
            g.pending.push(m);
        }
    }
    g.back = back;
    measuring_flag.store(false, Ordering::Relaxed);
    let (t0, good0) = measuring.unwrap_or((started, 0));
    let pps = (good - good0) as f64 / ((now - t0).max(1) as f64 / 1e9);
    let lost = g.drain(Duration::from_millis(200));
    Ok(Timed {
        pps,
        good,
        bad,
        lost,
        latency,
        backlog: backlog as f64 / (now - t0).max(1) as f64 / in_flight as f64,
    })
}

/// A prefilled round for cycles per packet: for `seconds`, batch after
/// batch, the generator (with the worker lcore gated off) writes `batch`
/// frames of random flows into the device's receive ring, then lets the
/// worker run until every frame is back, and only then checks them. The
/// worker takes full bursts from a ring that is already full, so neither
/// side waits for the generator. Returns (good, bad, lost) frames.
fn prefilled(
    rig: &mut Rig,
    side: Side,
    flows: u32,
    batch: usize,
    seconds: f64,
    measuring: &AtomicBool,
    rng: &mut Rng,
) -> Result<(u64, u64, usize), String> {
    let ack = AckTemplate::new();
    let mut flow_of: Vec<u32> = vec![0; 1 << 16];
    let mut g = Gen::new(rig, batch);
    let mut frames: Vec<Mbuf> = Vec::with_capacity(batch);
    for _ in 0..batch {
        frames.push(g.alloc()?);
    }
    let mut back: Vec<Mbuf> = Vec::with_capacity(batch);
    let (mut good, mut bad, mut lost) = (0u64, 0u64, 0usize);
    let mut seq: u16 = 0;
    let end = g.now() + (seconds * 1e9) as u64;
    while g.now() < end {
        for mut m in frames.drain(..) {
            let flow = rng.below(flows);
            seq = seq.wrapping_add(1);
            flow_of[usize::from(seq)] = flow;
            ack.write(m.data_mut(), flow, seq);
            g.pending.push(m);
        }
        g.send();
        if !g.pending.is_empty() {
            return Err(format!(
                "the receive ring took {} of {batch} frames",
                batch - g.pending.len()
            ));
        }
        measuring.store(true, Ordering::Release);
        let deadline = g.now() + 1_000_000_000;
        while g.out > 0 && g.now() < deadline {
            g.receive();
            back.append(&mut g.back);
        }
        measuring.store(false, Ordering::Release);
        lost += g.out;
        for mut m in back.drain(..) {
            let d = m.data();
            let flow = d.get(18..20).map_or(u32::MAX, |id| {
                flow_of[usize::from(u16::from_be_bytes([id[0], id[1]]))]
            });
            let ok = came_back_right(side, d, flow, flows);
            if ok {
                good += 1;
            } else {
                bad += 1;
                if d.len() != FRAME_LEN {
                    drop(m);
                    m = g.alloc()?;
                }
            }
            frames.push(m);
        }
        if g.out > 0 {
            break; // frames lost: what remains would be miscounted
        }
    }
    g.drain(Duration::from_millis(200));
    Ok((good, bad, lost))
}

/// One prefilled round on `side` (see `prefilled`): the worker lcore's
/// busy cycles and the frames' fate.
struct CycleRound {
    busy: Busy,
    good: u64,
    bad: u64,
    lost: usize,
}

#[allow(clippy::too_many_arguments)]
fn cycle_round(
    eal: &Eal,
    rig: &mut Rig,
    worker: &mut Option<Box<Worker<Mbuf>>>,
    side: Side,
    a: &Args,
    batch: usize,
    rng: &mut Rng,
) -> Result<CycleRound, String> {
    let job = match side {
        Side::Rvs => Job::Rvs(worker.take().ok_or("the rvs worker was lost")?),
        Side::Reference => Job::Swap,
    };
    let running = start(eal, rig, job, true)?;
    let r = prefilled(
        rig,
        side,
        a.flows,
        batch,
        a.seconds,
        &running.measuring,
        rng,
    );
    let busy = match side {
        Side::Rvs => {
            let (w, busy) = finish_rvs(eal, running)?;
            *worker = Some(w);
            busy
        }
        Side::Reference => finish_swap(eal, running)?.1,
    };
    let (good, bad, lost) = r?;
    Ok(CycleRound {
        busy,
        good,
        bad,
        lost,
    })
}

/// A timed round on one side: starts the worker lcore, runs the
/// generator, stops the lcore.
struct Round {
    timed: Timed,
    /// The worker lcore's busy cycles while the generator measured.
    busy: Busy,
    /// rvs: the worker's counters over the round.
    rvs: Option<RvsCounts>,
    /// The reference's counters.
    swap: Option<SwapCounts>,
}

impl Round {
    fn empty_poll_fraction(&self) -> f64 {
        let (busy, idle) = match (&self.rvs, &self.swap) {
            (Some(s), _) => (s.busy_polls, s.idle_polls),
            (None, Some(c)) => (c.polls - c.empty_polls, c.empty_polls),
            _ => (0, 0),
        };
        idle as f64 / (busy + idle).max(1) as f64
    }
}

#[allow(clippy::too_many_arguments)]
fn round(
    eal: &Eal,
    rig: &mut Rig,
    worker: &mut Option<Box<Worker<Mbuf>>>,
    (side, feed): (Side, Feed),
    a: &Args,
    in_flight: usize,
    seconds: f64,
    rng: &mut Rng,
) -> Result<Round, String> {
    match side {
        Side::Rvs => {
            let w = worker.take().ok_or("the rvs worker was lost")?;
            let before = w.stats;
            let running = start(eal, rig, Job::Rvs(w), false)?;
            let t = timed(
                rig,
                side,
                feed,
                a.flows,
                in_flight,
                (a.warmup, seconds),
                &running.measuring,
                rng,
            );
            let (w, busy) = finish_rvs(eal, running)?;
            let delta = RvsCounts::between(&before, &w.stats);
            *worker = Some(w);
            Ok(Round {
                timed: t?,
                busy,
                rvs: Some(delta),
                swap: None,
            })
        }
        Side::Reference => {
            let running = start(eal, rig, Job::Swap, false)?;
            let t = timed(
                rig,
                side,
                feed,
                a.flows,
                in_flight,
                (a.warmup, seconds),
                &running.measuring,
                rng,
            );
            let (c, busy) = finish_swap(eal, running)?;
            Ok(Round {
                timed: t?,
                busy,
                rvs: None,
                swap: Some(c),
            })
        }
    }
}

/// p50, p99 and p99.9 in ns.
fn percentiles(h: &Histogram<u64>) -> [u64; 3] {
    [0.5, 0.99, 0.999].map(|q| h.value_at_quantile(q))
}

fn latency_json(rvs: &Histogram<u64>, reference: &Histogram<u64>) -> Value {
    let (r, s) = (percentiles(rvs), percentiles(reference));
    let obj = |p: [i64; 3]| json!({"p50": p[0], "p99": p[1], "p99_9": p[2]});
    // A reflecting reference records no latency: nothing to subtract.
    let have_ref = !reference.is_empty();
    json!({
        "rvs": obj(r.map(|v| v as i64)),
        "reference": have_ref.then(|| obj(s.map(|v| v as i64))),
        "added": have_ref.then(|| obj([0, 1, 2].map(|i| r[i] as i64 - s[i] as i64))),
        "samples": {"rvs": rvs.len(), "reference": reference.len()},
    })
}

/// The 1-minute load average (other work competing for the two cores).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let ring_slots = (2 * a.in_flight.max(a.latency_in_flight))
        .next_power_of_two()
        .max(4096);
    // Frames in flight, both rings full, bursts in hand, lcore caches.
    let mbufs = (a.in_flight.max(a.latency_in_flight)
        + 2 * ring_slots
        + 4 * GEN_BURST
        + 2 * MBUF_CACHE as usize)
        .next_power_of_two()
        - 1;
    let memory_mb = (mbufs * 2560 / (1 << 20) + 128).max(256);
    let eal_args: Vec<String> = [
        "through_ring",
        "-l",
        "0-1",
        "--no-huge",
        "--no-shconf",
        "-m",
        &memory_mb.to_string(),
        "--no-pci",
        "--file-prefix",
        &format!("rvs-through-ring-{}", std::process::id()),
        "--log-level",
        "lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&eal_args).unwrap_or_else(|e| {
        eprintln!("through_ring: {e} (run as root, with lcores 0 and 1 free)");
        std::process::exit(2)
    });
    let code = match bench(&eal, &a, ring_slots as u32, mbufs as u32) {
        Ok(passed) => i32::from(!passed),
        Err(e) => {
            eprintln!("through_ring: {e}");
            2
        }
    };
    drop(eal);
    std::process::exit(code);
}

/// Runs everything; Ok(false) when a check failed (the figures are still
/// printed).
fn bench(eal: &Eal, a: &Args, ring_slots: u32, mbufs: u32) -> Result<bool, String> {
    let load_before = load_average();
    if let Some(l) = load_before.filter(|&l| l > 0.5) {
        eprintln!(
            "through_ring: warning: load average {l:.2} before start; other work shares the cores and the figures will be noisy"
        );
    }
    let socket = eal.lcore_socket(WORKER_LCORE) as i32;
    let pool = Arc::new(
        Mempool::new(
            eal,
            "through_ring_pool",
            mbufs,
            MBUF_CACHE,
            MBUF_DATA_ROOM,
            socket,
        )
        .map_err(|e| e.to_string())?,
    );
    let (to_worker, worker_rx) =
        ring::spsc(eal, "through_rx", ring_slots, socket).map_err(|e| e.to_string())?;
    let (worker_tx, from_worker) =
        ring::spsc(eal, "through_tx", ring_slots, socket).map_err(|e| e.to_string())?;
    let mut port = Port::from_rings(eal, "net_ring_through", worker_rx, worker_tx, socket as u32)
        .map_err(|e| e.to_string())?;
    port.configure_and_start(
        1,
        &pool,
        Some(PORT_MAC),
        ClientSide::Source,
        &RssModel::new(1),
    )
    .map_err(|e| e.to_string())?;
    let mut rig = Rig {
        pool,
        ports: vec![port],
        to_worker,
        from_worker,
        clock: TscClock::new(eal),
    };

    // Setup: every connection opened through rvs, not timed.
    eprintln!(
        "through_ring: opening {} connections through rvs...",
        a.flows
    );
    let worker: Box<Worker<Mbuf>> = Box::new(Worker::new(&worker_setup(a.flows)));
    let running = start(eal, &rig, Job::Rvs(worker), false)?;
    let setup = open_flows(&mut rig, a.flows, a.in_flight);
    let (mut worker, _) = finish_rvs(eal, running)?;
    let setup = setup?;
    let setup_stats = worker.stats;
    let cell = StatsCell::default();
    worker.publish(&cell);
    let in_table = cell.connections();
    eprintln!(
        "through_ring: {} of {} handshakes completed in {:.2} s ({} connections in the table, {} bad frames, {} lost, {} worker drops)",
        setup.established,
        a.flows,
        setup.seconds,
        in_table,
        setup.bad,
        setup.lost,
        setup_stats.total_drops()
    );
    let setup_complete =
        setup.established == u64::from(a.flows) && in_table == u64::from(a.flows) && setup.bad == 0;
    if !setup_complete {
        eprintln!(
            "through_ring: setup incomplete (worker drops: {})",
            drops_json(&setup_stats.drops)
        );
        if !a.smoke {
            return Err("not every connection could be opened; no point timing".into());
        }
    }
    let mut worker = Some(worker);

    // Throughput rounds, alternating; shared machines drift, and
    // alternating spreads the drift over both sides.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rvs_rounds = Vec::new();
    let mut ref_rounds = Vec::new();
    for r in 0..a.rounds {
        for side in [Side::Rvs, Side::Reference] {
            // rvs's frames must be rebuilt (a NAT'ed frame is no client's
            // next packet); the reference's go straight back.
            let feed = match side {
                Side::Rvs => Feed::Rebuild,
                Side::Reference => Feed::Reflect,
            };
            let res = round(
                eal,
                &mut rig,
                &mut worker,
                (side, feed),
                a,
                a.in_flight,
                a.seconds,
                &mut rng,
            )?;
            eprintln!(
                "through_ring: round {} {}: {:.2} Mpps, {:.1} busy cycles/packet, {} bad, {} lost, empty polls {:.3}, generator backlog {:.3}",
                r + 1,
                if side == Side::Rvs { "rvs" } else { "5tswap" },
                res.timed.pps / 1e6,
                res.busy.cycles_per_packet(),
                res.timed.bad,
                res.timed.lost,
                res.empty_poll_fraction(),
                res.timed.backlog
            );
            match side {
                Side::Rvs => rvs_rounds.push(res),
                Side::Reference => ref_rounds.push(res),
            }
        }
    }
    // Cycles per packet: prefilled rings, alternating.
    let mut rvs_cycles = Vec::new();
    let mut ref_cycles = Vec::new();
    for r in 0..a.rounds {
        for side in [Side::Rvs, Side::Reference] {
            let c = cycle_round(eal, &mut rig, &mut worker, side, a, a.in_flight, &mut rng)?;
            eprintln!(
                "through_ring: prefilled round {} {}: {:.1} busy cycles/packet over {} frames ({} preempted polls left out), {} bad, {} lost",
                r + 1,
                if side == Side::Rvs { "rvs" } else { "5tswap" },
                c.busy.cycles_per_packet(),
                c.busy.packets,
                c.busy.preempted,
                c.bad,
                c.lost
            );
            match side {
                Side::Rvs => rvs_cycles.push(c),
                Side::Reference => ref_cycles.push(c),
            }
        }
    }
    // Low load: latency without the queueing.
    let low_rvs = round(
        eal,
        &mut rig,
        &mut worker,
        (Side::Rvs, Feed::Rebuild),
        a,
        a.latency_in_flight,
        a.latency_seconds,
        &mut rng,
    )?;
    let low_ref = round(
        eal,
        &mut rig,
        &mut worker,
        (Side::Reference, Feed::Rebuild),
        a,
        a.latency_in_flight,
        a.latency_seconds,
        &mut rng,
    )?;

    let rvs_mpps = median(rvs_rounds.iter().map(|r| r.timed.pps / 1e6).collect());
    let ref_mpps = median(ref_rounds.iter().map(|r| r.timed.pps / 1e6).collect());
    let ratio = rvs_mpps / ref_mpps;
    let rvs_cpp = median(
        rvs_cycles
            .iter()
            .map(|c| c.busy.cycles_per_packet())
            .collect(),
    );
    let ref_cpp = median(
        ref_cycles
            .iter()
            .map(|c| c.busy.cycles_per_packet())
            .collect(),
    );
    let cycle_bad: u64 = rvs_cycles.iter().chain(&ref_cycles).map(|c| c.bad).sum();
    let cycle_lost: usize = rvs_cycles.iter().chain(&ref_cycles).map(|c| c.lost).sum();
    let cycle_good: u64 = rvs_cycles.iter().chain(&ref_cycles).map(|c| c.good).sum();
    let cycle_ratio = ref_cpp / rvs_cpp;
    let mut rvs_hist = histogram();
    let mut ref_hist = histogram();
    for r in &rvs_rounds {
        let _ = rvs_hist.add(&r.timed.latency);
    }
    for r in &ref_rounds {
        let _ = ref_hist.add(&r.timed.latency);
    }
    let all_rvs = rvs_rounds.iter().chain([&low_rvs]);
    let all_ref = ref_rounds.iter().chain([&low_ref]);
    let mut rvs_drops = RvsCounts::default();
    for r in all_rvs.clone() {
        if let Some(s) = &r.rvs {
            rvs_drops.add(s);
        }
    }
    let rvs_good: u64 = all_rvs.clone().map(|r| r.timed.good).sum();
    let rvs_bad: u64 = all_rvs.clone().map(|r| r.timed.bad).sum();
    let rvs_lost: usize = all_rvs.clone().map(|r| r.timed.lost).sum();
    let ref_good: u64 = all_ref.clone().map(|r| r.timed.good).sum();
    let ref_bad: u64 = all_ref.clone().map(|r| r.timed.bad).sum();
    let ref_lost: usize = all_ref.clone().map(|r| r.timed.lost).sum();
    let ref_refused: u64 = all_ref
        .clone()
        .filter_map(|r| r.swap.map(|c| c.tx_refused))
        .sum();
    let rvs_empty = median(rvs_rounds.iter().map(Round::empty_poll_fraction).collect());
    let ref_empty = median(ref_rounds.iter().map(Round::empty_poll_fraction).collect());
    let rvs_backlog = median(rvs_rounds.iter().map(|r| r.timed.backlog).collect());
    let ref_backlog = median(ref_rounds.iter().map(|r| r.timed.backlog).collect());

    let loaded = latency_json(&rvs_hist, &ref_hist);
    let low = latency_json(&low_rvs.timed.latency, &low_ref.timed.latency);
    let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
    let line = json!({
        "benchmark": "through_ring_nat",
        "frame_bytes": 64,
        "flows": a.flows,
        "in_flight": a.in_flight,
        "latency_in_flight": a.latency_in_flight,
        "seconds": a.seconds,
        "rounds": a.rounds,
        "reference": "5tswap",
        "rvs_mpps": round3(rvs_mpps),
        "reference_mpps": round3(ref_mpps),
        "ratio_rvs_over_5tswap": round3(ratio),
        "rvs_cycles_per_packet": round3(rvs_cpp),
        "reference_cycles_per_packet": round3(ref_cpp),
        "ratio_5tswap_over_rvs_cycles": round3(cycle_ratio),
        "rvs_cycles_per_packet_rounds": rvs_cycles.iter().map(|c| round3(c.busy.cycles_per_packet())).collect::<Vec<_>>(),
        "reference_cycles_per_packet_rounds": ref_cycles.iter().map(|c| round3(c.busy.cycles_per_packet())).collect::<Vec<_>>(),
        "preempted_polls_left_out": {
            "rvs": rvs_cycles.iter().map(|c| c.busy.preempted).sum::<u64>(),
            "reference": ref_cycles.iter().map(|c| c.busy.preempted).sum::<u64>(),
        },
        "prefilled_frames": {"good": cycle_good, "bad": cycle_bad, "lost": cycle_lost, "batch": a.in_flight},
        "rate_rounds_busy_cycles_per_packet": {
            "rvs": median(rvs_rounds.iter().map(|r| r.busy.cycles_per_packet()).collect()),
            "reference": median(ref_rounds.iter().map(|r| r.busy.cycles_per_packet()).collect()),
        },
        "reference_feed": "reflect",
        "rvs_mpps_rounds": rvs_rounds.iter().map(|r| round3(r.timed.pps / 1e6)).collect::<Vec<_>>(),
        "reference_mpps_rounds": ref_rounds.iter().map(|r| round3(r.timed.pps / 1e6)).collect::<Vec<_>>(),
        "latency_ns": {
            "loaded": loaded,
            "low_load": low,
        },
        "rvs_empty_poll_fraction": round3(rvs_empty),
        "reference_empty_poll_fraction": round3(ref_empty),
        "generator_backlog_fraction": {"rvs": round3(rvs_backlog), "reference": round3(ref_backlog)},
        "frames_checked": {"rvs": rvs_good + rvs_bad, "reference": ref_good + ref_bad},
        "bad_frames": {"rvs": rvs_bad, "reference": ref_bad, "setup": setup.bad},
        "lost_frames": {"rvs": rvs_lost, "reference": ref_lost, "setup": setup.lost},
        "drops": {
            "rvs_worker": rvs_drops.total_drops(),
            "rvs_worker_by_reason": drops_json(&rvs_drops.drops),
            "setup_worker": setup_stats.total_drops(),
            "reference_tx_refused": ref_refused,
        },
        "setup": {
            "handshakes": setup.established,
            "connections_in_table": in_table,
            "conns_created": setup_stats.conns_created,
            "seconds": round3(setup.seconds),
        },
        "load_average_before": load_before,
        "smoke": a.smoke,
    });
    let line = line.to_string();
    println!("{line}");
    let [lp50, lp99, lp999] = percentiles(&low_rvs.timed.latency);
    let [rp50, rp99, rp999] = percentiles(&low_ref.timed.latency);
    let [ap50, ap99, ap999] = percentiles(&rvs_hist);
    let [bp50, bp99, bp999] = percentiles(&ref_hist);
    println!(
        "one rvs worker NAT'ed {rvs_mpps:.2} Mpps over {} connections through net_ring; 5tswap on the same device forwarded {ref_mpps:.2} Mpps: ratio {ratio:.2} (median of {} rounds of {} s, {} in flight)",
        a.flows, a.rounds, a.seconds, a.in_flight
    );
    println!(
        "busy cycles per packet on the worker lcore, prefilled rings: rvs {rvs_cpp:.1}, 5tswap {ref_cpp:.1}: 5tswap / rvs = {cycle_ratio:.2} (goal: rvs at most 2x, i.e. >= 0.5)"
    );
    println!(
        "latency (ns, p50/p99/p99.9) at {} in flight: rvs {ap50}/{ap99}/{ap999}, 5tswap {bp50}/{bp99}/{bp999} (0: reflected, not timed); at {} in flight: rvs {lp50}/{lp99}/{lp999}, 5tswap {rp50}/{rp99}/{rp999}",
        a.in_flight, a.latency_in_flight
    );
    println!(
        "{} frames checked from rvs ({rvs_bad} bad, {rvs_lost} lost, {} worker drops), {} from 5tswap ({ref_bad} bad)",
        rvs_good + rvs_bad,
        rvs_drops.total_drops(),
        ref_good + ref_bad
    );
    if let Some(path) = &a.json {
        std::fs::write(path, line + "\n").map_err(|e| format!("cannot write {path}: {e}"))?;
    }

    let mut passed = true;
    let mut fail = |msg: String| {
        eprintln!("through_ring: FAILED: {msg}");
        passed = false;
    };
    if !setup_complete {
        fail(format!(
            "{} of {} connections opened",
            setup.established, a.flows
        ));
    }
    if rvs_good == 0 {
        fail("rvs forwarded nothing".into());
    }
    if ref_good == 0 {
        fail("the reference forwarded nothing".into());
    }
    if cycle_bad > 0 || cycle_lost > 0 || cycle_good == 0 {
        fail(format!(
            "prefilled rounds: {cycle_good} good, {cycle_bad} bad, {cycle_lost} lost frames"
        ));
    }
    if rvs_bad + ref_bad + setup.bad > 0 {
        fail(format!(
            "bad frames: {rvs_bad} from rvs, {ref_bad} from 5tswap, {} in setup",
            setup.bad
        ));
    }
    drop(worker);
    drop(rig); // stops the port; the rings free what they still hold
    Ok(passed)
}
