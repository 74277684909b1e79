//! The worker's datapath without I/O: cycles and packets per second for
//! new and established TCP flows (NAT, DR, TUN, FullNAT over IPv4; NAT, DR,
//! TUN over IPv6, each against IPv4 NAT in the same run) with 1K to 10M
//! connections,
//! new connections with the table full in steady state, established NAT
//! under a SYN flood at table capacity, 1, 2 and 4 workers fed by a software
//! model of the NIC's RSS (redirects and connection ownership), and bytes
//! of memory per connection. `perf/README.md` gives the method of each and
//! how to read its figures; in short:
//!
//! # What runs
//!
//! rvsd's own `dataplane::worker::Worker`, entered the way rvsd's poll loop
//! enters it: `handle_bursts` with a burst of 32 frames from each port,
//! then `tick` once per poll round. One virtual service, TCP port 80, 16
//! real servers, round robin, static neighbours for the real servers and
//! the router, so nothing waits for ARP. Connection `i` goes to real server
//! `i % 16` (the SYNs are sent in flow order and rr starts at the first
//! server); in RSS runs, to the server its worker's round robin gave it.
//!
//! # Frames written ahead, only the worker timed
//!
//! A pool of `POOL_BUFFERS` buffers of 2176 bytes (64 MiB;
//! `RTE_MBUF_DEFAULT_BUF_SIZE`: 128 bytes of headroom, then 2048 of data),
//! used in FIFO order like an rx ring refilled from its mempool. Untimed,
//! the benchmark plays the NIC's DMA: it writes the frames of as many poll
//! rounds as the pool holds into the next free buffers (each a valid
//! 60-byte TCP segment, 64 bytes on the wire). Then each round's frames are
//! handed to the worker and only `handle_bursts` and `tick` are timed, with
//! the TSC. The worker rewrites frames in place; sent and dropped buffers
//! return to the pool and the next DMA pass rewrites them (the restore,
//! never timed). The worker's clock advances by the time it spent (or, in
//! the steady-state phase, by a fixed step per SYN).
//!
//! # Running
//!
//! ```sh
//! cargo bench --bench datapath -- [--conns 1K,100K,1M,10M] [--packets 4M]
//!     [--methods nat,dr,tun,fullnat,nat6,dr6,tun6] [--zipf 0.99] [--workers 2]
//!     [--multi-conns 1M] [--steady-conns 1M] [--flood-conns 1M] [--rss-workers 2,4]
//!     [--own-conns 100K] [--json FILE] [--plot FILE.png] [--font FILE.ttf]
//!     [--smoke]
//! ```
//!
//! One JSON object per measurement on stdout (and in `--json FILE`), progress
//! on stderr, a summary table at the end. `--plot` draws Mpps against table
//! size (log scale). `--smoke` is a tiny run of every part (1K and 10K
//! connections, 50K packets) for the test suite. The process exits non-zero
//! when a measurement forwarded less than it was given, dropped what it
//! must not, a handshake left connections not established, a connection
//! lives on a worker RSS does not give it, or an established connection was
//! lost to a SYN flood.
//!
//! # IPv6
//!
//! `nat6`, `dr6` and `tun6` run the same set-up in IPv6: every address
//! of it (clients, VIP, real servers, router) mapped into `PREFIX6`
//! (2001:db8:64::/96, the IPv4 address in the last 32 bits, see `v6`),
//! frames of 74 bytes (Ethernet, IPv6, TCP; 78 on the wire). Besides their
//! rows in the matrix, `run: v6_vs_nat` times each against IPv4 NAT in
//! turns, per table size (`measure_against_nat`): the ratios are taken
//! within each round. `Method` says how to add a method whose clients and
//! real servers differ in family (NAT64) or FullNAT over IPv6.

use plotters::prelude::*;
use plotters::style::FontStyle;
use rvs::dataplane::io::{Frame, Output};
use rvs::dataplane::stats::DropReason;
use rvs::dataplane::worker::{PortSetup, Worker, WorkerSetup};
use rvs::dpdk::hugemem::HugeArray;
use rvs::dpdk::tsc::tsc;
use rvs::lb::conn::ConnTable;
use rvs::lb::service::{
    ForwardMethod, Protocol, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use rvs::lb::tcp_state::{TimeoutOverrides, Timeouts};
use rvs::lb::xmit::{Endpoint, Endpoint6};
use rvs::net::rss::RssModel;
use rvs::wire::{ipv4, ipv6, tcp, Ipv4Cidr, Ipv6Cidr, MacAddr};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The set-up: addresses, ports, sizes.

/// Frames per port and poll round, as rvsd's poll loop (`burst_size`).
const BURST: usize = 32;
/// `RTE_PKTMBUF_HEADROOM`.
const HEADROOM: usize = 128;
/// `RTE_MBUF_DEFAULT_BUF_SIZE`: headroom plus 2048 bytes of data.
const BUF_SIZE: usize = HEADROOM + 2048;
/// Buffers in a pool: 64 MiB, so the frames written ahead of the worker
/// (one cache line each, ~1.9 MiB of lines per pass over the pool) are
/// more than the L2 cache holds by the time the worker reads them.
const POOL_BUFFERS: usize = 30_720;
/// Buffers kept free for what the worker allocates itself (ARP, ICMP).
const POOL_SPARE: usize = 512;
/// A 64-byte frame on the wire, without its 4-byte FCS.
const FRAME_LEN: usize = 60;
/// An IPv6 TCP segment without options: Ethernet, IPv6 and TCP headers (78
/// bytes on the wire).
const FRAME_LEN6: usize = 74;

const REAL_SERVERS: u32 = 16;
const VPORT: u16 = 80;
/// NAT real servers listen here (DR and TUN keep the virtual port).
const NAT_RS_PORT: u16 = 8080;
const OUT_PORT: usize = 0;
const IN_PORT: usize = 1;
const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
/// The MAC the generated frames come from (the router, a real server).
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 9, 9]);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const ROUTER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Clients: 198.18.0.0/15 (RFC 2544's benchmarking range), flow `i` from
/// address `i % 2^17` of it, port `1024 + i / 2^17`: consecutive flows
/// come from different addresses, so RSS on the client address spreads
/// any range of flows over the workers.
const CLIENT_BASE: u32 = 0xC612_0000;
const CLIENT_ADDRESSES: u32 = 1 << 17;
/// Spoofed SYNs come from 100.64.0.0/10 (never a client of the flows),
/// random address and port.
const SPOOF_BASE: u32 = 0x6440_0000;
/// A multiple of 16, so round robin starts at the first real server.
const WORKER_SEED: u64 = 0x00c0_ff00;
/// Where `now` starts (nanoseconds), so no time is zero.
const CLOCK_BASE_NS: u64 = 1_000_000_000;
/// An odd prime above any table size: multiplying ranks by it modulo the
/// size is a permutation of the flows.
const SCATTER: u64 = 2_654_435_761;

const DEFAULT_CONNS: [usize; 4] = [1_000, 100_000, 1_000_000, 10_000_000];
const DEFAULT_PACKETS: usize = 4_000_000;
const DEFAULT_ZIPF: f64 = 0.99;
const DEFAULT_MULTI_CONNS: usize = 1_000_000;
/// The `new` phase of a small table is repeated on fresh workers until it
/// has sent about this many SYNs (at most `NEW_PHASE_MAX_REPEATS` times),
/// so that it lasts long enough to time.
const NEW_PHASE_MIN_PACKETS: usize = 1_000_000;
const NEW_PHASE_MAX_REPEATS: usize = 100;
const SMOKE_CONNS: [usize; 2] = [1_000, 10_000];
const SMOKE_PACKETS: usize = 50_000;
const SMOKE_MULTI_CONNS: usize = 10_000;
const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

// ---------------------------------------------------------------------------
// Methods and address families.

/// The address family of a lane's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// IPv6 frames carry the set-up's IPv4 addresses mapped into this /96
/// (2001:db8:64::/96, documentation space), the IPv4 address in the last
/// 32 bits: every flow, real server and route of the IPv4 set-up has its
/// IPv6 twin, and one frame writer serves both families.
const PREFIX6: u128 = 0x2001_0db8_0064_0000_0000_0000_0000_0000;

/// The IPv6 twin of the set-up's IPv4 address `a`.
fn v6(a: u32) -> Ipv6Addr {
    Ipv6Addr::from(PREFIX6 | u128::from(a))
}

/// The IPv4 address an address of `PREFIX6` maps, if it is one.
fn v4_of(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let a = u128::from(a);
    (a >> 32 == PREFIX6 >> 32).then(|| Ipv4Addr::from(a as u32))
}

/// What the benchmark measures: a forwarding method, with the family
/// clients reach the VIP in and the one the real servers answer in.
///
/// To add a method: an entry in `METHODS` (then `--methods`, the matrix,
/// the RSS runs and, for IPv6 clients, the comparison with IPv4 NAT take
/// it), and its service in `build_worker`. FullNAT over IPv6 is
/// `{ fwd: FullNat, client: V6, server: V6 }` with the local addresses
/// `local_address` maps into `PREFIX6` given to the service as IPv6 local
/// addresses; NAT64 is `{ fwd: FullNat, client: V6, server: V4 }`: an
/// IPv6 VIP (`v6(VIP)`) in front of the IPv4 real servers and IPv4 local
/// addresses. Lanes, frames and the RSS model follow each lane's family
/// already (`Frames`, `Lane::rss_worker`, `family_worker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Method {
    fwd: ForwardMethod,
    client: Family,
    server: Family,
}

const fn method(fwd: ForwardMethod, family: Family) -> Method {
    Method {
        fwd,
        client: family,
        server: family,
    }
}

/// IPv4 NAT: the reference every IPv6 method is compared with.
const NAT: Method = method(ForwardMethod::Nat, Family::V4);

/// Every method `--methods` knows, by name; the default runs all of them.
const METHODS: [(&str, Method); 9] = [
    ("nat", NAT),
    ("dr", method(ForwardMethod::Dr, Family::V4)),
    ("tun", method(ForwardMethod::Tun, Family::V4)),
    ("fullnat", method(ForwardMethod::FullNat, Family::V4)),
    ("nat6", method(ForwardMethod::Nat, Family::V6)),
    ("dr6", method(ForwardMethod::Dr, Family::V6)),
    ("tun6", method(ForwardMethod::Tun, Family::V6)),
    ("fullnat6", method(ForwardMethod::FullNat, Family::V6)),
    (
        "nat64",
        Method {
            fwd: ForwardMethod::FullNat,
            client: Family::V6,
            server: Family::V4,
        },
    ),
];

impl Method {
    fn name(self) -> &'static str {
        METHODS
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(name, _)| name)
    }

    fn all() -> Vec<Method> {
        METHODS.iter().map(|&(_, m)| m).collect()
    }

    /// True when clients reach the service over IPv6 (compared with IPv4
    /// NAT in `run: v6_vs_nat`).
    fn is_v6(self) -> bool {
        self.client == Family::V6
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        METHODS
            .iter()
            .find(|(name, _)| *name == s)
            .map(|&(_, m)| m)
            .ok_or_else(|| {
                let names: Vec<&str> = METHODS.iter().map(|(n, _)| *n).collect();
                format!("unknown method {s:?} (known: {})", names.join(", "))
            })
    }
}

// ---------------------------------------------------------------------------
// Command line.

struct Options {
    conns: Vec<usize>,
    packets: usize,
    methods: Vec<Method>,
    zipf_s: f64,
    workers: usize,
    multi_conns: usize,
    steady_conns: Vec<usize>,
    flood_conns: usize,
    rss_workers: Vec<usize>,
    own_conns: usize,
    json: Option<String>,
    plot: Option<String>,
    font: String,
    smoke: bool,
    /// TSC ticks per nanosecond (measured at start).
    tsc_per_ns: f64,
}

const USAGE: &str =
    "usage: datapath [--conns 1K,100K,1M,10M] [--packets 4M] \
[--methods nat,dr,tun,fullnat,nat6,dr6,tun6] [--zipf 0.99] [--workers 2] [--multi-conns 1M] [--steady-conns 1M] [--flood-conns 1M] \
[--rss-workers 2,4] [--own-conns 100K] [--json FILE] [--plot FILE.png] [--font FILE.ttf] [--smoke]
(--workers 0 or --multi-conns 0 skips the 1-against-N rate comparison; --steady-conns 0,
--flood-conns 0, --rss-workers 0 skip theirs)";

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let smoke = args.iter().any(|a| a == "--smoke");
        let mut o = Options {
            conns: DEFAULT_CONNS.to_vec(),
            packets: DEFAULT_PACKETS,
            methods: Method::all(),
            zipf_s: DEFAULT_ZIPF,
            workers: 2,
            multi_conns: DEFAULT_MULTI_CONNS,
            steady_conns: vec![1_000_000],
            flood_conns: 1_000_000,
            rss_workers: vec![2, 4],
            own_conns: 100_000,
            json: None,
            plot: None,
            font: FONT_PATH.to_string(),
            smoke,
            tsc_per_ns: 1.0,
        };
        if smoke {
            o.conns = SMOKE_CONNS.to_vec();
            o.packets = SMOKE_PACKETS;
            o.multi_conns = SMOKE_MULTI_CONNS;
            o.steady_conns = vec![SMOKE_MULTI_CONNS];
            o.flood_conns = SMOKE_MULTI_CONNS;
            o.own_conns = 5_000;
        }
        let mut it = args.iter();
        let counts = |v: String| -> Result<Vec<usize>, String> {
            v.split(',')
                .map(parse_count)
                .filter(|c| c != &Ok(0))
                .collect()
        };
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--smoke" | "--bench" => {}
                "--conns" => o.conns = counts(value()?)?,
                "--packets" => o.packets = parse_count(&value()?)?,
                "--methods" => {
                    o.methods = value()?
                        .split(',')
                        .map(|m| m.parse().map_err(|e| format!("--methods: {e}")))
                        .collect::<Result<_, _>>()?
                }
                "--zipf" => {
                    o.zipf_s = value()?
                        .parse()
                        .map_err(|_| "--zipf takes a number".to_string())?
                }
                "--workers" => o.workers = parse_count(&value()?)?,
                "--multi-conns" => o.multi_conns = parse_count(&value()?)?,
                "--steady-conns" => o.steady_conns = counts(value()?)?,
                "--flood-conns" => o.flood_conns = parse_count(&value()?)?,
                "--rss-workers" => o.rss_workers = counts(value()?)?,
                "--own-conns" => o.own_conns = parse_count(&value()?)?,
                "--json" => o.json = Some(value()?),
                "--plot" => o.plot = Some(value()?),
                "--font" => o.font = value()?,
                "--help" | "-h" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        let sizes = o
            .conns
            .iter()
            .chain(&o.steady_conns)
            .chain([&o.flood_conns]);
        if sizes.copied().any(|c| c > rvs::lb::conn::MAX_CAPACITY / 2) {
            return Err("table sizes must be at most 2^29".to_string());
        }
        if o.packets < 2 * BURST {
            return Err(format!("--packets must be at least {}", 2 * BURST));
        }
        if !(o.zipf_s > 0.0 && o.zipf_s.is_finite()) {
            return Err("--zipf must be a positive number".to_string());
        }
        if o.rss_workers.iter().any(|&w| w > 64) || o.workers > 64 {
            return Err("at most 64 workers".to_string());
        }
        Ok(o)
    }
}

/// A count like `4000000`, `4M`, `100K` or `1_000`.
fn parse_count(s: &str) -> Result<usize, String> {
    let t = s.trim().replace('_', "");
    let (digits, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (&t[..], 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("not a count: {s:?}"))
}

// ---------------------------------------------------------------------------
// Buffers laid out as mbufs.

/// A received frame: a borrowed pool buffer with the data's start and length.
struct Mbuf {
    buf: &'static mut [u8],
    start: usize,
    len: usize,
}

thread_local! {
    /// Buffers of frames the worker dropped (as `rte_pktmbuf_free` would
    /// return them to their pool); the thread's `Nic` takes them back.
    static DROPPED: std::cell::RefCell<Vec<&'static mut [u8]>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if !buf.is_empty() {
            DROPPED.with(|d| d.borrow_mut().push(buf));
        }
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        true
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    fn insert(&mut self, at: usize, n: usize) -> bool {
        let end = self.start + self.len;
        if at > self.len || end + n > self.buf.len() {
            return false;
        }
        self.buf
            .copy_within(self.start + at..end, self.start + at + n);
        self.len += n;
        true
    }
}

/// The NIC as the worker sees it: a buffer pool larger than the L2 cache,
/// frames written into it ahead of the worker (as a NIC's DMA leaves
/// them), and transmit (straight back to the pool).
struct Nic {
    free: VecDeque<&'static mut [u8]>,
    /// Frames written and not yet handed to the worker, in arrival order,
    /// with their port.
    ready: VecDeque<(usize, Mbuf)>,
    sent: u64,
    /// Frames handed to another worker.
    redirected: u64,
    /// Packets not received because the pool was empty (none expected).
    missed: u64,
}

impl Nic {
    /// A pool of `POOL_BUFFERS` buffers carved from one leaked arena,
    /// written once so no page is first touched while timing.
    fn new() -> Nic {
        // On huge pages where the kernel grants them, as DPDK's mempools
        // are: on 4 KiB pages every frame would also cost a TLB miss that
        // no NIC-fed worker pays.
        let arena: &'static mut HugeArray<u8> =
            Box::leak(Box::new(HugeArray::new(POOL_BUFFERS * BUF_SIZE, 0x5a)));
        let arena: &'static mut [u8] = arena;
        Nic {
            free: arena.chunks_exact_mut(BUF_SIZE).collect(),
            ready: VecDeque::with_capacity(POOL_BUFFERS),
            sent: 0,
            redirected: 0,
            missed: 0,
        }
    }

    /// Buffers that can take frames now (some are kept back for what the
    /// worker allocates itself).
    fn writable(&mut self) -> usize {
        DROPPED.with(|d| self.free.extend(d.borrow_mut().drain(..)));
        self.free.len().saturating_sub(POOL_SPARE)
    }

    /// The DMA: writes the packet of `flow` on `lane` into the next free
    /// buffer, at the headroom's end, and queues it for the worker.
    #[inline]
    fn dma(&mut self, lane: &Lane, flow: u32) {
        let Some(buf) = self.free.pop_front() else {
            self.missed += 1;
            return;
        };
        let (src, sport, dst, dport) = lane.addresses(flow);
        let len = lane.template.len;
        lane.template
            .write(&mut buf[HEADROOM..HEADROOM + len], src, sport, dst, dport);
        self.ready.push_back((
            lane.port,
            Mbuf {
                buf,
                start: HEADROOM,
                len,
            },
        ));
    }

    #[inline]
    fn recycle(&mut self, mut frame: Mbuf) {
        self.free.push_back(std::mem::take(&mut frame.buf));
    }
}

impl Output<Mbuf> for Nic {
    #[inline]
    fn send(&mut self, _port: usize, frame: Mbuf) {
        self.sent += 1;
        self.recycle(frame);
    }
    fn alloc(&mut self, len: usize) -> Option<Mbuf> {
        if len > BUF_SIZE - HEADROOM {
            return None;
        }
        let buf = self.free.pop_front()?;
        buf[HEADROOM..HEADROOM + len].fill(0);
        Some(Mbuf {
            buf,
            start: HEADROOM,
            len,
        })
    }
    fn redirect(&mut self, _worker: usize, _port: usize, frame: Mbuf) {
        self.redirected += 1;
        self.recycle(frame);
    }
}

// ---------------------------------------------------------------------------
// Frames from flow indices.

/// A TCP frame with zero addresses, ports and checksums, and the
/// one's-complement sums of everything else its checksums cover: 60 bytes
/// of IPv4, or 74 of IPv6 whose addresses are `PREFIX6` with the last 32
/// bits zero (the writer fills those in).
struct Template {
    bytes: [u8; FRAME_LEN6],
    len: usize,
    family: Family,
    ip_sum: u32,
    tcp_sum: u32,
}

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const TCP_SYN_ACK: u8 = 0x12;

impl Template {
    fn new(dst_mac: MacAddr, flags: u8) -> Template {
        let mut b = [0u8; FRAME_LEN];
        b[0..6].copy_from_slice(&dst_mac.0);
        b[6..12].copy_from_slice(&PEER_MAC.0);
        b[12..14].copy_from_slice(&[0x08, 0x00]);
        // IPv4: version 4, 20-byte header, total length 40, DF, TTL 64, TCP.
        b[14] = 0x45;
        b[16..18].copy_from_slice(&40u16.to_be_bytes());
        b[20] = 0x40;
        b[22] = 64;
        b[23] = 6;
        // TCP: sequence and acknowledgement numbers, 20-byte header, flags,
        // window.
        b[38..42].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        if flags & TCP_ACK != 0 {
            b[42..46].copy_from_slice(&0x0a0b_0c0du32.to_be_bytes());
        }
        b[46] = 0x50;
        b[47] = flags;
        b[48..50].copy_from_slice(&0xffffu16.to_be_bytes());
        // The pseudo-header's protocol and TCP length count in the TCP sum.
        let tcp_sum = word_sum(&b[34..54]) + 6 + 20;
        let mut bytes = [0u8; FRAME_LEN6];
        bytes[..FRAME_LEN].copy_from_slice(&b);
        Template {
            ip_sum: word_sum(&b[14..34]),
            tcp_sum,
            bytes,
            len: FRAME_LEN,
            family: Family::V4,
        }
    }

    /// The IPv6 twin of `new`: the same TCP segment after a 40-byte IPv6
    /// header (hop limit 64), no extension header.
    fn new6(dst_mac: MacAddr, flags: u8) -> Template {
        let v4 = Template::new(dst_mac, flags);
        let mut b = [0u8; FRAME_LEN6];
        b[0..12].copy_from_slice(&v4.bytes[0..12]);
        b[12..14].copy_from_slice(&[0x86, 0xdd]);
        // IPv6: version 6, payload length 20, next header TCP, hop limit 64,
        // the addresses' first 96 bits.
        b[14] = 0x60;
        b[18..20].copy_from_slice(&20u16.to_be_bytes());
        b[20] = 6;
        b[21] = 64;
        let prefix = PREFIX6.to_be_bytes();
        b[22..34].copy_from_slice(&prefix[..12]);
        b[38..50].copy_from_slice(&prefix[..12]);
        b[54..74].copy_from_slice(&v4.bytes[34..54]);
        // The pseudo-header: both addresses' prefixes, the TCP length and
        // next header.
        let tcp_sum = word_sum(&b[54..74]) + word_sum(&b[22..54]) + 6 + 20;
        Template {
            bytes: b,
            len: FRAME_LEN6,
            family: Family::V6,
            ip_sum: 0,
            tcp_sum,
        }
    }

    /// Writes the frame from `src:sport` to `dst:dport` into `out` (IPv6:
    /// their `v6` twins).
    #[inline]
    fn write(&self, out: &mut [u8], src: u32, sport: u16, dst: u32, dport: u16) {
        out.copy_from_slice(&self.bytes[..self.len]);
        let addresses = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
        let tcp = !fold(self.tcp_sum + addresses + u32::from(sport) + u32::from(dport));
        match self.family {
            Family::V4 => {
                out[26..30].copy_from_slice(&src.to_be_bytes());
                out[30..34].copy_from_slice(&dst.to_be_bytes());
                out[34..36].copy_from_slice(&sport.to_be_bytes());
                out[36..38].copy_from_slice(&dport.to_be_bytes());
                let ip = !fold(self.ip_sum + addresses);
                out[24..26].copy_from_slice(&ip.to_be_bytes());
                out[50..52].copy_from_slice(&tcp.to_be_bytes());
            }
            Family::V6 => {
                out[34..38].copy_from_slice(&src.to_be_bytes());
                out[50..54].copy_from_slice(&dst.to_be_bytes());
                out[54..56].copy_from_slice(&sport.to_be_bytes());
                out[56..58].copy_from_slice(&dport.to_be_bytes());
                out[70..72].copy_from_slice(&tcp.to_be_bytes());
            }
        }
    }
}

fn word_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum()
}

#[inline]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The four kinds of segment the benchmark sends.
struct Templates {
    client_syn: Template,
    client_ack: Template,
    server_syn_ack: Template,
    server_ack: Template,
}

impl Templates {
    fn new() -> Templates {
        Templates {
            client_syn: Template::new(OUT_MAC, TCP_SYN),
            client_ack: Template::new(OUT_MAC, TCP_ACK),
            server_syn_ack: Template::new(IN_MAC, TCP_SYN_ACK),
            server_ack: Template::new(IN_MAC, TCP_ACK),
        }
    }

    fn new6() -> Templates {
        Templates {
            client_syn: Template::new6(OUT_MAC, TCP_SYN),
            client_ack: Template::new6(OUT_MAC, TCP_ACK),
            server_syn_ack: Template::new6(IN_MAC, TCP_SYN_ACK),
            server_ack: Template::new6(IN_MAC, TCP_ACK),
        }
    }
}

/// The segments of both families; a method's lanes take their clients'
/// from one and their real servers' from the other (the same but for
/// NAT64).
struct Frames {
    v4: Templates,
    v6: Templates,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            v4: Templates::new(),
            v6: Templates::new6(),
        }
    }

    fn of(&self, family: Family) -> &Templates {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// What `method`'s clients send.
    fn client(&self, method: Method) -> &Templates {
        self.of(method.client)
    }

    /// What `method`'s real servers send.
    fn server(&self, method: Method) -> &Templates {
        self.of(method.server)
    }
}

/// Flow `i`'s client address and port.
#[inline]
fn client(flow: u32) -> (u32, u16) {
    (
        CLIENT_BASE + flow % CLIENT_ADDRESSES,
        1024 + (flow / CLIENT_ADDRESSES) as u16,
    )
}

/// The flow of a client address and port (the inverse of `client`), if
/// it is one.
fn flow_of(ip: Ipv4Addr, port: u16) -> Option<u32> {
    let a = u32::from(ip).checked_sub(CLIENT_BASE)?;
    let p = u32::from(port).checked_sub(1024)?;
    (a < CLIENT_ADDRESSES).then(|| p * CLIENT_ADDRESSES + a)
}

/// A spoofed source from a random `x`: an address of 100.64.0.0/10 and a
/// port above 1023.
#[inline]
fn spoofed(x: u32) -> (u32, u16) {
    (SPOOF_BASE | (x & 0x003f_ffff), 1024 + (x >> 22) as u16)
}

fn real_server(index: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, 11 + index as u8)
}

/// FullNAT's local addresses in the benchmark: 10M connections take 39,063
/// ports of each of 256.
const LOCALS: u32 = 256;

/// FullNAT local address `i` (a reply's destination; no route needed).
fn local_address(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 3, (i >> 8) as u8, i as u8)
}

/// The local end one worker gives `flow` when it opens the flows in order:
/// the addresses in turn, each's ports from 1024 up.
fn local_of_flow(flow: u32) -> (Ipv4Addr, u16) {
    (local_address(flow % LOCALS), (1024 + flow / LOCALS) as u16)
}

/// Where a lane's packets come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum From {
    /// Clients → VIP (outside port).
    Client,
    /// Real server → client, NAT replies (inside port).
    Server,
    /// Real server → local address and port, FullNAT replies (inside
    /// port).
    LocalServer,
    /// Spoofed SYNs to the VIP from random sources (outside port); a
    /// lane's "flows" are then random numbers.
    Spoofed,
}

/// One stream of received packets: a port, the segment kind and the flows,
/// in order.
struct Lane<'a> {
    port: usize,
    template: &'a Template,
    from: From,
    flows: &'a [u32],
    /// Each flow's real server, when it is not `flow % 16` (RSS runs:
    /// each worker schedules the flows it owns round robin from the first
    /// server, in the order it receives them).
    rs_of: Option<&'a [u8]>,
    /// FullNAT: each flow's local end, when it is not `local_of_flow`
    /// (RSS runs: each worker takes its own local addresses).
    local_of: Option<&'a [(Ipv4Addr, u16)]>,
}

impl<'a> Lane<'a> {
    /// Source address and port, destination address and port of `flow`.
    #[inline]
    fn addresses(&self, flow: u32) -> (u32, u16, u32, u16) {
        let (ip, port) = client(flow);
        match self.from {
            From::Client => (ip, port, u32::from(VIP), VPORT),
            From::Server => {
                let rs = self
                    .rs_of
                    .map_or(flow % REAL_SERVERS, |r| u32::from(r[flow as usize]));
                (u32::from(real_server(rs)), NAT_RS_PORT, ip, port)
            }
            From::LocalServer => {
                let rs = self
                    .rs_of
                    .map_or(flow % REAL_SERVERS, |r| u32::from(r[flow as usize]));
                let (lip, lport) = self
                    .local_of
                    .map_or_else(|| local_of_flow(flow), |l| l[flow as usize]);
                (
                    u32::from(real_server(rs)),
                    NAT_RS_PORT,
                    u32::from(lip),
                    lport,
                )
            }
            From::Spoofed => {
                let (ip, port) = spoofed(flow);
                (ip, port, u32::from(VIP), VPORT)
            }
        }
    }

    /// The client address the NIC's RSS hashes for this lane's packet of
    /// `flow`: the source of what clients send, the destination of NAT
    /// replies (the client either way).
    fn rss_client(&self, flow: u32) -> Ipv4Addr {
        let (src, _, dst, _) = self.addresses(flow);
        Ipv4Addr::from(match self.from {
            From::Client | From::Spoofed => src,
            From::Server | From::LocalServer => dst,
        })
    }

    /// The worker RSS gives this lane's packet of `flow` to (the client
    /// address hashed in the lane's family).
    fn rss_worker(&self, rss: &RssModel, flow: u32) -> usize {
        family_worker(rss, self.template.family, self.rss_client(flow))
    }

    fn with_rs_of(self, rs_of: &'a [u8]) -> Lane<'a> {
        Lane {
            rs_of: Some(rs_of),
            ..self
        }
    }

    /// FullNAT: `local_of` gives each flow's local end (empty: not
    /// FullNAT, nothing changes).
    fn with_local_of(self, local_of: &'a [(Ipv4Addr, u16)]) -> Lane<'a> {
        Lane {
            local_of: (!local_of.is_empty()).then_some(local_of),
            ..self
        }
    }
}

/// The worker RSS gives a client's packets to, among `workers`: the NICs'
/// RSS as rvs programs it (`net::rss`), the model the workers' own
/// ownership check agrees with.
fn rss_worker_of(rss: &RssModel, client: Ipv4Addr) -> usize {
    rss.worker_of(client)
}

/// `rss_worker_of` for an address of the set-up in `family` (IPv6: its
/// `v6` twin, hashed as the NICs hash IPv6).
fn family_worker(rss: &RssModel, family: Family, a: Ipv4Addr) -> usize {
    match family {
        Family::V4 => rss_worker_of(rss, a),
        Family::V6 => rss.worker_of6(v6(u32::from(a))),
    }
}

fn client_lane<'a>(template: &'a Template, flows: &'a [u32]) -> Lane<'a> {
    Lane {
        port: OUT_PORT,
        template,
        from: From::Client,
        flows,
        rs_of: None,
        local_of: None,
    }
}

fn server_lane<'a>(template: &'a Template, flows: &'a [u32]) -> Lane<'a> {
    Lane {
        port: IN_PORT,
        template,
        from: From::Server,
        flows,
        rs_of: None,
        local_of: None,
    }
}

/// FullNAT replies: real server → the flow's local end.
fn local_server_lane<'a>(template: &'a Template, flows: &'a [u32]) -> Lane<'a> {
    Lane {
        port: IN_PORT,
        template,
        from: From::LocalServer,
        flows,
        rs_of: None,
        local_of: None,
    }
}

fn spoofed_lane<'a>(template: &'a Template, randoms: &'a [u32]) -> Lane<'a> {
    Lane {
        port: OUT_PORT,
        template,
        from: From::Spoofed,
        flows: randoms,
        rs_of: None,
        local_of: None,
    }
}

fn syn_lanes<'a>(t: &'a Templates, flows: &'a [u32]) -> Vec<Lane<'a>> {
    vec![client_lane(&t.client_syn, flows)]
}

fn handshake_lanes<'a>(f: &'a Frames, method: Method, flows: &'a [u32]) -> Vec<Lane<'a>> {
    let (c, s) = (f.client(method), f.server(method));
    match method.fwd {
        ForwardMethod::Nat => vec![
            server_lane(&s.server_syn_ack, flows),
            client_lane(&c.client_ack, flows),
        ],
        ForwardMethod::FullNat => vec![
            local_server_lane(&s.server_syn_ack, flows),
            client_lane(&c.client_ack, flows),
        ],
        ForwardMethod::Dr | ForwardMethod::Tun => vec![client_lane(&c.client_ack, flows)],
    }
}

/// NAT: the first half of the sequence arrives from clients, the second from
/// the real servers (each half an independent sample); a poll round takes a
/// burst of each. DR, TUN: all of it from clients.
fn established_lanes<'a>(f: &'a Frames, method: Method, flows: &'a [u32]) -> Vec<Lane<'a>> {
    let (c, s) = (f.client(method), f.server(method));
    match method.fwd {
        ForwardMethod::Nat => {
            let (to_servers, to_clients) = flows.split_at(flows.len() / 2);
            vec![
                client_lane(&c.client_ack, to_servers),
                server_lane(&s.server_ack, to_clients),
            ]
        }
        ForwardMethod::FullNat => {
            let (to_servers, to_clients) = flows.split_at(flows.len() / 2);
            vec![
                client_lane(&c.client_ack, to_servers),
                local_server_lane(&s.server_ack, to_clients),
            ]
        }
        ForwardMethod::Dr | ForwardMethod::Tun => vec![client_lane(&c.client_ack, flows)],
    }
}

/// Checks that template-built frames carry valid checksums, as the wire
/// code computes them.
fn self_check(f: &Frames) -> Result<(), String> {
    self_check4(&f.v4)?;
    self_check6(&f.v6)
}

/// Flows the self-checks build frames of.
const CHECKED_FLOWS: [u32; 6] = [0, 1, 17, 64_511, 64_512, 9_999_999];

/// IPv6 frames: a valid header and TCP checksum, the `v6` addresses and
/// the ports of the flow.
fn self_check6(t: &Templates) -> Result<(), String> {
    let flows = CHECKED_FLOWS;
    let kinds = [
        client_lane(&t.client_syn, &flows),
        client_lane(&t.client_ack, &flows),
        server_lane(&t.server_syn_ack, &flows),
        server_lane(&t.server_ack, &flows),
    ];
    for lane in &kinds {
        for &flow in &flows {
            let mut frame = [0u8; FRAME_LEN6];
            let (src, sport, dst, dport) = lane.addresses(flow);
            lane.template.write(&mut frame, src, sport, dst, dport);
            let ip = ipv6::Packet::new_checked(&frame[14..]).map_err(|e| format!("{e:?}"))?;
            let seg = tcp::Packet::new_checked(ip.payload()).map_err(|e| format!("{e:?}"))?;
            let ok = ipv6::verify_upper_checksum(v6(src), v6(dst), 6, ip.payload())
                && ip.src_addr() == v6(src)
                && ip.dst_addr() == v6(dst)
                && seg.src_port() == sport
                && seg.dst_port() == dport;
            if !ok {
                return Err(format!("IPv6 template frame of flow {flow} is invalid"));
            }
        }
    }
    Ok(())
}

fn self_check4(t: &Templates) -> Result<(), String> {
    let flows = CHECKED_FLOWS;
    let kinds = [
        client_lane(&t.client_syn, &flows),
        client_lane(&t.client_ack, &flows),
        server_lane(&t.server_syn_ack, &flows),
        server_lane(&t.server_ack, &flows),
    ];
    for lane in &kinds {
        for &flow in &flows {
            let mut frame = [0u8; FRAME_LEN];
            let (src, sport, dst, dport) = lane.addresses(flow);
            lane.template.write(&mut frame, src, sport, dst, dport);
            let ip = ipv4::Packet::new_checked(&frame[14..]).map_err(|e| format!("{e:?}"))?;
            let seg = tcp::Packet::new_checked(ip.payload()).map_err(|e| format!("{e:?}"))?;
            let ok = ip.verify_checksum()
                && seg.verify_checksum(Ipv4Addr::from(src), Ipv4Addr::from(dst))
                && u32::from(ip.src_addr()) == src
                && seg.dst_port() == dport;
            if !ok {
                return Err(format!("template frame of flow {flow} is invalid"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Flow sequences.

/// SplitMix64: small, fast, good enough to pick flows.
struct SplitMix(u64);

impl SplitMix {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf's law over ranks `1..=n` with exponent `s`, sampled by
/// rejection-inversion (Hörmann and Derflinger, "Rejection-inversion to
/// generate variates from monotone discrete distributions", 1996): O(1)
/// per sample, no table.
struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    shortcut: f64,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Zipf {
        let h_integral_x1 = h_integral(1.5, s) - 1.0;
        let h_integral_n = h_integral(n as f64 + 0.5, s);
        let shortcut = 2.0 - h_integral_inverse(h_integral(2.5, s) - h(2.0, s), s);
        Zipf {
            n: n as f64,
            s,
            h_integral_x1,
            h_integral_n,
            shortcut,
        }
    }

    /// A rank in `1..=n`; rank k has probability proportional to k^-s.
    fn sample(&self, rng: &mut SplitMix) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = h_integral_inverse(u, self.s);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.shortcut || u >= h_integral(k + 0.5, self.s) - h(k, self.s) {
                return k as u64;
            }
        }
    }
}

/// x^-s.
fn h(x: f64, s: f64) -> f64 {
    (-s * x.ln()).exp()
}

/// ∫₁ˣ t^-s dt = (x^(1-s) - 1) / (1 - s), continuous in s at 1 (ln x).
fn h_integral(x: f64, s: f64) -> f64 {
    let log_x = x.ln();
    expm1_over_x((1.0 - s) * log_x) * log_x
}

fn h_integral_inverse(x: f64, s: f64) -> f64 {
    let t = (x * (1.0 - s)).max(-1.0);
    (ln1p_over_x(t) * x).exp()
}

/// (e^x - 1) / x, accurate near 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// ln(1 + x) / x, accurate near 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `count` flows of `0..n` drawn uniformly.
fn uniform_flows(n: usize, count: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix(seed);
    (0..count).map(|_| rng.below(n as u64) as u32).collect()
}

/// `count` flows of `0..n` drawn from Zipf(s), rank r being flow
/// `(r - 1) * SCATTER mod n`, so the hottest flows are spread over the table.
fn zipf_flows(n: usize, count: usize, s: f64, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix(seed ^ 0x5a5a_5a5a);
    let zipf = Zipf::new(n as u64, s);
    (0..count)
        .map(|_| ((zipf.sample(&mut rng) - 1) * SCATTER % n as u64) as u32)
        .collect()
}

/// Checks the sampler against the law: rank 1's share of many draws over
/// 1000 ranks is 1 / H(1000, s).
fn zipf_self_check(s: f64) -> Result<(), String> {
    let n = 1000u64;
    let draws = 200_000;
    let zipf = Zipf::new(n, s);
    let mut rng = SplitMix(7);
    let first = (0..draws).filter(|_| zipf.sample(&mut rng) == 1).count();
    let harmonic: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
    let (got, want) = (first as f64 / draws as f64, 1.0 / harmonic);
    if (got - want).abs() > 0.05 * want {
        return Err(format!(
            "zipf sampler: rank 1 drawn {got:.4} of the time, law says {want:.4}"
        ));
    }
    Ok(())
}

/// The packet sequences of one table size.
struct Sequences {
    /// Every flow once, in order (SYNs, handshakes).
    every: Vec<u32>,
    uniform: Vec<u32>,
    zipf: Vec<u32>,
}

impl Sequences {
    fn new(size: usize, packets: usize, zipf_s: f64, seed: u64) -> Sequences {
        Sequences {
            every: (0..size as u32).collect(),
            uniform: uniform_flows(size, packets, seed),
            zipf: zipf_flows(size, packets, zipf_s, seed),
        }
    }

    fn established(&self) -> [(Distribution, &[u32]); 2] {
        [
            (Distribution::Uniform, &self.uniform),
            (Distribution::Zipf, &self.zipf),
        ]
    }
}

// ---------------------------------------------------------------------------
// The worker and the loop that feeds it.

/// The benchmark's worker: one TCP service of `method`, `conns` entries
/// in the table; `tune` changes the setup last (timeouts, RSS role). With
/// IPv6 it has ticked once, untimed, through `nic`: its first tick
/// announces its IPv6 addresses (three neighbour advertisements), which
/// is start-up, not packet work.
fn build_worker(
    method: Method,
    conns: usize,
    seed: u64,
    nic: &mut Nic,
    tune: impl FnOnce(&mut WorkerSetup),
) -> Worker<Mbuf> {
    let outside = Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 2), 24).expect("outside prefix");
    let inside = Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).expect("inside prefix");
    let ports = vec![
        PortSetup {
            mac: OUT_MAC,
            addresses: vec![outside],
            addresses6: Vec::new(),
            mtu: 1500,
        },
        PortSetup {
            mac: IN_MAC,
            addresses: vec![inside],
            addresses6: Vec::new(),
            mtu: 1500,
        },
    ];
    let mut setup = WorkerSetup::ports_only(ports);
    if method.client == Family::V6 || method.server == Family::V6 {
        setup_ipv6(&mut setup);
    }
    let default_route = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).expect("default route");
    setup.routes = rvs::net::route::RouteTable::new(
        &[(OUT_PORT as u16, outside), (IN_PORT as u16, inside)],
        &[(default_route, ROUTER, OUT_PORT as u16)],
    );
    setup.static_neighbors = (0..REAL_SERVERS)
        .map(|i| {
            (
                real_server(i),
                MacAddr([2, 0, 0, 1, 0, i as u8]),
                IN_PORT as u16,
            )
        })
        .chain(std::iter::once((ROUTER, ROUTER_MAC, OUT_PORT as u16)))
        .collect();
    let rs_port = match method.fwd {
        ForwardMethod::Nat | ForwardMethod::FullNat => NAT_RS_PORT,
        ForwardMethod::Dr | ForwardMethod::Tun => VPORT,
    };
    let service = match (method.client, method.server) {
        (Family::V4, Family::V4) => {
            let key = ServiceKey {
                vip: Endpoint::new(VIP, VPORT),
                protocol: Protocol::Tcp,
            };
            let servers = (0..REAL_SERVERS)
                .map(|i| Endpoint::new(real_server(i), rs_port))
                .map(|e| (e, 1));
            let mut service =
                VirtualService::new("bench", key, method.fwd, SchedulerKind::Rr, servers);
            if method.fwd == ForwardMethod::FullNat {
                service.local.addresses = (0..LOCALS).map(local_address).collect();
            }
            service
        }
        // FullNAT over IPv6 takes its local addresses here; NAT64 (IPv6
        // VIP, IPv4 real servers) is an arm of its own: see `Method`.
        (Family::V6, Family::V6) => {
            let servers = (0..REAL_SERVERS)
                .map(|i| Endpoint6::new(v6(u32::from(real_server(i))), rs_port))
                .map(|e| (e, 1));
            let mut service = VirtualService::new6(
                "bench6",
                Endpoint6::new(v6(u32::from(VIP)), VPORT),
                Protocol::Tcp,
                method.fwd,
                SchedulerKind::Rr,
                servers,
            );
            if method.fwd == ForwardMethod::FullNat {
                service.local.addresses6 = (0..LOCALS)
                    .map(|i| v6(u32::from(local_address(i))))
                    .collect();
            }
            service
        }
        // NAT64: an IPv6 VIP, the IPv4 real servers (their IPv6 names are
        // IPv4-mapped, as the configuration makes them) and IPv4 local
        // addresses.
        (Family::V6, Family::V4) => {
            let servers = (0..REAL_SERVERS)
                .map(|i| Endpoint6::new(real_server(i).to_ipv6_mapped(), rs_port))
                .map(|e| (e, 1));
            let mut service = VirtualService::new6(
                "bench64",
                Endpoint6::new(v6(u32::from(VIP)), VPORT),
                Protocol::Tcp,
                method.fwd,
                SchedulerKind::Rr,
                servers,
            );
            for (i, r) in service.real_servers.iter_mut().enumerate() {
                r.endpoint = Endpoint::new(real_server(i as u32), rs_port);
            }
            service.local.addresses = (0..LOCALS).map(local_address).collect();
            service
        }
        (Family::V4, Family::V6) => panic!(
            "{}: no service for IPv4 clients of IPv6 real servers (see Method)",
            method.name()
        ),
    };
    setup.services = Arc::new(ServiceTable::new(vec![service]));
    setup.conn_capacity = conns;
    setup.seed = seed;
    tune(&mut setup);
    let mut worker = Worker::new(&setup);
    if method.client == Family::V6 || method.server == Family::V6 {
        worker.tick(CLOCK_BASE_NS, nic);
    }
    worker
}

/// The IPv6 twin of the IPv4 set-up: each port's address and connected
/// prefix (a /120, as the IPv4 /24), the default route through the
/// router, the real servers and the router as static neighbours.
fn setup_ipv6(setup: &mut WorkerSetup) {
    let outside =
        Ipv6Cidr::new(v6(u32::from(Ipv4Addr::new(203, 0, 113, 2))), 120).expect("outside prefix");
    let inside =
        Ipv6Cidr::new(v6(u32::from(Ipv4Addr::new(10, 1, 0, 1))), 120).expect("inside prefix");
    setup.ports[OUT_PORT].addresses6 = vec![outside];
    setup.ports[IN_PORT].addresses6 = vec![inside];
    let default_route = Ipv6Cidr::new(Ipv6Addr::UNSPECIFIED, 0).expect("default route");
    setup.ipv6.routes = rvs::net::route::RouteTable6::new(
        &[(OUT_PORT as u16, outside), (IN_PORT as u16, inside)],
        &[(default_route, v6(u32::from(ROUTER)), OUT_PORT as u16)],
    );
    setup.ipv6.static_neighbors = (0..REAL_SERVERS)
        .map(|i| {
            (
                v6(u32::from(real_server(i))),
                MacAddr([2, 0, 0, 1, 0, i as u8]),
                IN_PORT as u16,
            )
        })
        .chain(std::iter::once((
            v6(u32::from(ROUTER)),
            ROUTER_MAC,
            OUT_PORT as u16,
        )))
        .collect();
}

/// The worker's clock: virtual nanoseconds. By default it advances by the
/// time the worker spent (the timed sections), so time-paced chores (the
/// expiry sweep) cost per packet what they would at this rate; a schedule
/// can instead advance it by a fixed step per packet.
struct Clock {
    ns: u64,
    /// Nanoseconds per packet received, instead of the time spent.
    per_packet: Option<u64>,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            ns: CLOCK_BASE_NS,
            per_packet: None,
        }
    }
}

/// TSC ticks per nanosecond, measured against the monotonic clock.
fn calibrate_tsc() -> f64 {
    let (t0, c0) = (Instant::now(), tsc());
    while t0.elapsed() < Duration::from_millis(200) {
        std::hint::spin_loop();
    }
    let (ns, cycles) = (t0.elapsed().as_nanos() as f64, tsc() - c0);
    cycles as f64 / ns
}

/// Poll rounds needed for `lanes`: one burst of each lane per round.
fn rounds_of(lanes: &[Lane]) -> usize {
    lanes
        .iter()
        .map(|l| l.flows.len().div_ceil(BURST))
        .max()
        .unwrap_or(0)
}

/// Packets the lanes receive in `rounds`.
fn packets_in(lanes: &[Lane], rounds: &Range<usize>) -> u64 {
    lanes
        .iter()
        .map(|l| {
            let n = l.flows.len();
            ((rounds.end * BURST).min(n) - (rounds.start * BURST).min(n)) as u64
        })
        .sum()
}

/// Plays the NIC and rvsd's poll loop over `lanes` for `rounds`, and
/// returns the TSC cycles the worker took. Untimed, the NIC writes the
/// frames of as many rounds as the pool holds (the DMA; it also restores
/// the buffers the worker rewrote in place); then, round by round, a burst
/// of up to 32 frames of each lane is handed over (`handle_bursts`, as
/// rvsd's `poll_once` does) and the poll ends (`tick`): only those two
/// calls are timed, each round with the TSC.
fn drive(
    worker: &mut Worker<Mbuf>,
    nic: &mut Nic,
    lanes: &[Lane],
    clock: &mut Clock,
    rounds: Range<usize>,
    tsc_per_ns: f64,
) -> u64 {
    let ports = lanes.iter().map(|l| l.port + 1).max().unwrap_or(0);
    let mut bursts: Vec<Vec<Mbuf>> = (0..ports).map(|_| Vec::with_capacity(4 * BURST)).collect();
    let per_round = lanes.len() * BURST;
    let mut cycles = 0u64;
    let mut round = rounds.start;
    while round < rounds.end {
        let chunk = (nic.writable() / per_round).max(1);
        let chunk_end = (round + chunk).min(rounds.end);
        for r in round..chunk_end {
            for lane in lanes {
                let lo = (r * BURST).min(lane.flows.len());
                let hi = (lo + BURST).min(lane.flows.len());
                for &flow in &lane.flows[lo..hi] {
                    nic.dma(lane, flow);
                }
            }
        }
        for r in round..chunk_end {
            let n = packets_in(lanes, &(r..r + 1)) as usize;
            for (port, frame) in nic.ready.drain(..n.min(nic.ready.len())) {
                bursts[port].push(frame);
            }
            if let Some(step) = clock.per_packet {
                clock.ns += step * n as u64;
            }
            let now = clock.ns;
            let t0 = tsc();
            worker.handle_bursts(&mut bursts, now, nic);
            worker.tick(now, nic);
            let spent = tsc() - t0;
            cycles += spent;
            if clock.per_packet.is_none() {
                clock.ns += (spent as f64 / tsc_per_ns) as u64;
            }
        }
        round = chunk_end;
    }
    cycles
}

/// Counters before and after a phase.
struct Snapshot {
    sent: u64,
    missed: u64,
    redirected: u64,
    drops: [u64; DropReason::COUNT],
    created: u64,
}

impl Snapshot {
    fn take(w: &Worker<Mbuf>, nic: &Nic) -> Snapshot {
        Snapshot {
            sent: nic.sent,
            missed: nic.missed,
            redirected: w.stats.redirected,
            drops: w.stats.drops,
            created: w.stats.conns_created,
        }
    }
}

/// What one phase on one worker did: the TSC cycles per packet of each
/// timed slice (or repetition), and the counters.
#[derive(Clone, Debug, Default)]
struct PhaseResult {
    packets: u64,
    slice_cycles: Vec<f64>,
    /// Cycles of the whole phase.
    cycles: u64,
    tsc_per_ns: f64,
    sent: u64,
    /// Drops by reason name.
    drops: BTreeMap<&'static str, u64>,
    missed: u64,
    redirected: u64,
    created: u64,
}

impl PhaseResult {
    fn drop_total(&self) -> u64 {
        self.drops.values().sum()
    }

    /// TSC cycles per packet: the median slice.
    fn cycles_per_packet(&self) -> f64 {
        median(&self.slice_cycles)
    }

    /// Nanoseconds per packet: the median slice.
    fn ns_per_packet(&self) -> f64 {
        self.cycles_per_packet() / self.tsc_per_ns
    }

    /// Adds a repetition of the phase (its slices count as slices).
    fn add(&mut self, other: &PhaseResult) {
        self.packets += other.packets;
        self.slice_cycles.extend(&other.slice_cycles);
        self.cycles += other.cycles;
        self.tsc_per_ns = other.tsc_per_ns;
        self.sent += other.sent;
        for (&reason, &n) in &other.drops {
            *self.drops.entry(reason).or_default() += n;
        }
        self.missed += other.missed;
        self.redirected += other.redirected;
        self.created += other.created;
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Consecutive slices of a phase's sequence timed separately (the median
/// counts): established traffic, so a burst of other work on a shared
/// machine moves the figure less.
const SLICES: usize = 5;

/// Runs `lanes` through the worker in `slices` and collects the counters.
fn run_phase(
    worker: &mut Worker<Mbuf>,
    nic: &mut Nic,
    lanes: &[Lane],
    clock: &mut Clock,
    slices: usize,
    tsc_per_ns: f64,
) -> PhaseResult {
    let rounds = rounds_of(lanes);
    let slices = slices.clamp(1, rounds.max(1));
    let slice = |k: usize| k * rounds / slices..(k + 1) * rounds / slices;
    let mut result = PhaseResult {
        packets: packets_in(lanes, &(0..rounds)),
        tsc_per_ns,
        ..PhaseResult::default()
    };
    let before = Snapshot::take(worker, nic);
    for k in 0..slices {
        let c = drive(worker, nic, lanes, clock, slice(k), tsc_per_ns);
        result.cycles += c;
        result
            .slice_cycles
            .push(c as f64 / packets_in(lanes, &slice(k)).max(1) as f64);
    }
    let after = Snapshot::take(worker, nic);
    result.drops = DropReason::ALL
        .iter()
        .map(|&r| (r.name(), after.drops[r as usize] - before.drops[r as usize]))
        .filter(|&(_, n)| n > 0)
        .collect();
    result.sent = after.sent - before.sent;
    result.missed = after.missed - before.missed;
    result.redirected = after.redirected - before.redirected;
    result.created = after.created - before.created;
    result
}

/// Runs the handshakes (untimed) and checks that `expected` connections
/// are established; returns what went wrong, if anything.
fn complete_handshakes(
    worker: &mut Worker<Mbuf>,
    nic: &mut Nic,
    lanes: &[Lane],
    expected: usize,
    clock: &mut Clock,
    tsc_per_ns: f64,
) -> Vec<String> {
    let r = run_phase(worker, nic, lanes, clock, 1, tsc_per_ns);
    let mut problems = forwarding_problems(&r);
    let active = established_count(worker);
    if active != expected as u64 {
        problems.push(format!(
            "{active} of {expected} connections established after the handshakes"
        ));
    }
    problems
        .into_iter()
        .map(|p| format!("handshakes: {p}"))
        .collect()
}

/// Connections the worker counts as established (active).
fn established_count(worker: &Worker<Mbuf>) -> u64 {
    worker
        .real_server_counters()
        .map(|c| u64::from(c.active))
        .sum()
}

/// Everything that says a phase did not do its job.
fn forwarding_problems(r: &PhaseResult) -> Vec<String> {
    let mut p = Vec::new();
    if r.sent != r.packets {
        p.push(format!("sent {} of {} packets", r.sent, r.packets));
    }
    if !r.drops.is_empty() {
        let reasons: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        p.push(format!("drops: {}", reasons.join(", ")));
    }
    if r.missed > 0 {
        p.push(format!("{} packets not received (pool empty)", r.missed));
    }
    if r.redirected > 0 {
        p.push(format!("{} frames handed to other workers", r.redirected));
    }
    p
}

// ---------------------------------------------------------------------------
// Measurements.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// SYNs into an empty table.
    New,
    /// SYNs into a full table whose oldest entries expire as fast as new
    /// ones come.
    Steady,
    Established,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::New => "new",
            Phase::Steady => "new_steady",
            Phase::Established => "established",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Distribution {
    /// Each flow once, in order (the SYNs).
    Each,
    Uniform,
    Zipf,
}

impl Distribution {
    fn name(self) -> &'static str {
        match self {
            Distribution::Each => "each_once",
            Distribution::Uniform => "uniform",
            Distribution::Zipf => "zipf",
        }
    }
}

/// Which part of the run a measurement belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// The method × size × distribution table, one worker.
    Matrix,
    /// 1 against N workers fed by RSS.
    Scaling,
    /// The steady-state new-connection rate.
    Steady,
}

impl Run {
    fn name(self) -> &'static str {
        match self {
            Run::Matrix => "matrix",
            Run::Scaling => "scaling",
            Run::Steady => "steady",
        }
    }
}

/// Memory of a connection table of one size.
#[derive(Clone, Copy)]
struct TableMemory {
    bytes: usize,
    capacity: usize,
}

impl TableMemory {
    fn of(size: usize) -> TableMemory {
        let t = ConnTable::new(size);
        TableMemory::measure(&t)
    }
    fn measure(t: &ConnTable) -> TableMemory {
        TableMemory {
            bytes: t.memory_bytes(),
            capacity: t.capacity(),
        }
    }
    /// The table of a worker that `method`'s connections live in.
    fn of_worker(w: &Worker<Mbuf>, method: Method) -> TableMemory {
        let lb = w.balancer();
        match method.client {
            Family::V4 => TableMemory::measure(lb.conns()),
            Family::V6 => TableMemory {
                bytes: lb.conns6().memory_bytes(),
                capacity: lb.conns6().capacity(),
            },
        }
    }
    fn per_connection(self) -> f64 {
        self.bytes as f64 / self.capacity as f64
    }
    fn mib(self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0)
    }
}

/// Lines the platform probe reads.
const PROBE_LINES: usize = 4_000_000;
/// How far ahead of its read the probe prefetches a line.
const PROBE_AHEAD: usize = 16;

/// The platform's price of a random 64-byte line in memory the size of a
/// `size`-connection table (on huge pages, as the table is): each line
/// prefetched `PROBE_AHEAD` reads ahead, then read, with ~30 cycles of
/// dependent work between reads (a worker's parse of the next frame). A
/// lookup reads two such lines (index line, entry), so twice this figure
/// is what the table's size adds to a packet at best on this machine:
/// the bound the 1M- and 10M-against-1K goals meet here. Nested paging in
/// a VM, for one, makes lines of a large array dearer than of a small one.
fn probe_random_lines(size: usize, memory: TableMemory, opts: &Options) -> Value {
    let lines = (memory.bytes / 64).max(1);
    let mut array: HugeArray<[u64; 8]> = HugeArray::new(lines, [1; 8]);
    for (i, line) in array.iter_mut().enumerate() {
        line[0] = i as u64;
    }
    let reads = if opts.smoke {
        PROBE_LINES / 40
    } else {
        PROBE_LINES
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ size as u64;
    let at: Vec<u32> = (0..reads + PROBE_AHEAD)
        .map(|_| {
            // xorshift64: cheap, and no pattern a hardware prefetcher follows.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) % lines as u64) as u32
        })
        .collect();
    let mut sum = 0u64;
    let t0 = tsc();
    for i in 0..reads {
        rvs::dpdk::prefetch::prefetch(&array[at[i + PROBE_AHEAD] as usize]);
        let mut v = array[at[i] as usize][0];
        for _ in 0..10 {
            // xor-shift-multiply: a chain the compiler cannot fold.
            v = (v ^ (v >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        }
        sum = sum.wrapping_add(v);
    }
    let cycles = (tsc() - t0) as f64 / reads as f64;
    std::hint::black_box(sum);
    progress(&format!(
        "platform: a random line of {:.1} MiB costs {cycles:.1} cycles (prefetched {PROBE_AHEAD} ahead)",
        memory.mib()
    ));
    json!({
        "benchmark": "datapath",
        "run": "platform",
        "connections": size,
        "array_mib": (memory.mib() * 10.0).round() / 10.0,
        "cycles_per_random_line": (cycles * 10.0).round() / 10.0,
        "prefetch_ahead": PROBE_AHEAD,
    })
}

/// One measurement: a phase of one method at one table size, on one or
/// more workers at once.
struct Measurement {
    method: Method,
    connections: usize,
    distribution: Distribution,
    zipf_s: f64,
    phase: Phase,
    /// Per worker.
    results: Vec<PhaseResult>,
    memory: TableMemory,
    problems: Vec<String>,
    run: Run,
}

impl Measurement {
    fn new(
        method: Method,
        connections: usize,
        (phase, distribution): (Phase, Distribution),
        results: Vec<PhaseResult>,
        memory: TableMemory,
        zipf_s: f64,
    ) -> Measurement {
        let problems = results.iter().flat_map(forwarding_problems).collect();
        Measurement {
            method,
            connections,
            distribution,
            zipf_s,
            phase,
            results,
            memory,
            problems,
            run: Run::Matrix,
        }
    }

    fn workers(&self) -> usize {
        self.results.len()
    }

    fn mpps_per_worker(&self) -> Vec<f64> {
        self.results
            .iter()
            .map(|r| 1e3 / r.ns_per_packet())
            .collect()
    }

    /// Sum over the workers.
    fn mpps(&self) -> f64 {
        self.mpps_per_worker().iter().sum()
    }

    /// Mean over the workers.
    fn ns_per_packet(&self) -> f64 {
        let n = self.results.len() as f64;
        self.results
            .iter()
            .map(PhaseResult::ns_per_packet)
            .sum::<f64>()
            / n
    }

    /// Mean over the workers.
    fn cycles_per_packet(&self) -> f64 {
        let n = self.results.len() as f64;
        self.results
            .iter()
            .map(PhaseResult::cycles_per_packet)
            .sum::<f64>()
            / n
    }

    fn new_conns_per_s(&self) -> Option<f64> {
        matches!(self.phase, Phase::New | Phase::Steady).then(|| self.mpps() * 1e6)
    }

    fn packets(&self) -> u64 {
        self.results.iter().map(|r| r.packets).sum()
    }

    fn sent(&self) -> u64 {
        self.results.iter().map(|r| r.sent).sum()
    }

    fn drops(&self) -> u64 {
        self.results.iter().map(PhaseResult::drop_total).sum()
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "benchmark": "datapath",
            "method": self.method.name(),
            "connections": self.connections,
            "distribution": self.distribution.name(),
            "phase": self.phase.name(),
            "workers": self.workers(),
            "mpps": round(self.mpps(), 3),
            "ns_per_packet": round(self.ns_per_packet(), 1),
            "cycles_per_packet": round(self.cycles_per_packet(), 1),
            "tsc_ghz": round(self.results.first().map_or(0.0, |r| r.tsc_per_ns), 3),
            "new_conns_per_s": self.new_conns_per_s().map(|n| n.round()),
            "bytes_per_connection": round(self.memory.per_connection(), 1),
            "table_mib": round(self.memory.mib(), 1),
            "packets": self.packets(),
            "sent": self.sent(),
            "drops": self.drops(),
            "drops_by_reason": self.results.iter().fold(BTreeMap::new(), |mut all, r| {
                for (k, v) in &r.drops {
                    *all.entry(*k).or_insert(0u64) += v;
                }
                all
            }),
            "timed_slices": self.results.first().map_or(0, |r| r.slice_cycles.len()),
            "run": self.run.name(),
        });
        if self.workers() > 1 {
            v["mpps_per_worker"] = json!(self
                .mpps_per_worker()
                .iter()
                .map(|&m| round(m, 3))
                .collect::<Vec<_>>());
        }
        if self.distribution == Distribution::Zipf {
            v["zipf_s"] = json!(self.zipf_s);
        }
        if !self.problems.is_empty() {
            v["problems"] = json!(self.problems);
        }
        v
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Prints a measurement's JSON line (and its problems on stderr) and keeps it.
fn report(m: Measurement, all: &mut Vec<Measurement>) {
    println!("{}", m.json());
    for p in &m.problems {
        eprintln!(
            "datapath: {} {} connections, {} {}, {} worker(s): {p}",
            m.method.name(),
            m.connections,
            m.phase.name(),
            m.distribution.name(),
            m.workers()
        );
    }
    all.push(m);
}

fn progress(what: &str) {
    eprintln!("datapath: {what}");
}

/// Every phase of one method at one table size, on one worker.
fn measure_method(
    method: Method,
    seqs: &Sequences,
    opts: &Options,
    nic: &mut Nic,
    all: &mut Vec<Measurement>,
) -> Vec<String> {
    let size = seqs.every.len();
    let hz = opts.tsc_per_ns;
    let label = format!("{} {}", method.name(), short_count(size as f64));
    let frames = Frames::new();
    let repeats = (NEW_PHASE_MIN_PACKETS / size).clamp(1, NEW_PHASE_MAX_REPEATS);

    progress(&format!(
        "{label}: {size} new connections{}",
        if repeats > 1 {
            format!(", {repeats} times on fresh workers")
        } else {
            String::new()
        }
    ));
    let (new, mut worker, mut clock) =
        new_connections(method, &frames, (&seqs.every, size), repeats, nic, hz);
    let memory = TableMemory::of_worker(&worker, method);
    let mut m = Measurement::new(
        method,
        size,
        (Phase::New, Distribution::Each),
        vec![new.clone()],
        memory,
        opts.zipf_s,
    );
    if new.created != new.packets {
        m.problems.push(format!(
            "created {} connections for {} SYNs",
            new.created, new.packets
        ));
    }
    report(m, all);

    progress(&format!("{label}: handshakes (untimed)"));
    let lanes = handshake_lanes(&frames, method, &seqs.every);
    let problems = complete_handshakes(&mut worker, nic, &lanes, size, &mut clock, hz);
    for (dist, flows) in seqs.established() {
        progress(&format!(
            "{label}: {} established packets, {}",
            flows.len(),
            dist.name()
        ));
        let lanes = established_lanes(&frames, method, flows);
        let r = run_phase(&mut worker, nic, &lanes, &mut clock, SLICES, hz);
        let m = Measurement::new(
            method,
            size,
            (Phase::Established, dist),
            vec![r],
            memory,
            opts.zipf_s,
        );
        report(m, all);
    }
    problems
}

/// The new-connection phase: SYNs of `flows` (each once, in order) into
/// the empty table of a fresh worker of `capacity` connections, `repeats`
/// times (each on a fresh worker, its slices counted). Returns the timing
/// and the last worker with its clock.
fn new_connections(
    method: Method,
    frames: &Frames,
    (flows, capacity): (&[u32], usize),
    repeats: usize,
    nic: &mut Nic,
    hz: f64,
) -> (PhaseResult, Worker<Mbuf>, Clock) {
    let syns = syn_lanes(frames.client(method), flows);
    let mut new = PhaseResult::default();
    let mut worker = build_worker(method, capacity, WORKER_SEED, nic, |_| {});
    let mut clock = Clock::new();
    for repeat in 0..repeats.max(1) {
        if repeat > 0 {
            worker = build_worker(method, capacity, WORKER_SEED, nic, |_| {});
            clock = Clock::new();
        }
        new.add(&run_phase(&mut worker, nic, &syns, &mut clock, 1, hz));
    }
    (new, worker, clock)
}

/// A worker of `method` with every flow of `every` established: SYNs and
/// handshakes, untimed. Returns it, its clock and what went wrong.
fn established_worker(
    method: Method,
    frames: &Frames,
    every: &[u32],
    nic: &mut Nic,
    hz: f64,
) -> (Worker<Mbuf>, Clock, Vec<String>) {
    let mut worker = build_worker(method, every.len(), WORKER_SEED, nic, |_| {});
    let mut clock = Clock::new();
    let syns = syn_lanes(frames.client(method), every);
    let r = run_phase(&mut worker, nic, &syns, &mut clock, 1, hz);
    let mut problems: Vec<String> = forwarding_problems(&r)
        .into_iter()
        .map(|p| format!("{} SYNs: {p}", method.name()))
        .collect();
    let lanes = handshake_lanes(frames, method, every);
    problems.extend(
        complete_handshakes(&mut worker, nic, &lanes, every.len(), &mut clock, hz)
            .into_iter()
            .map(|p| format!("{}: {p}", method.name())),
    );
    (worker, clock, problems)
}

/// Rounds of the interleaved run: each times every table size once.
const INTERLEAVED_ROUNDS: usize = 8;

/// Established NAT at every table size of `--conns`, each on its own
/// worker, timed in turns (1K, 1M, 10M, 1K, 1M, ...) for
/// `INTERLEAVED_ROUNDS` rounds: the ratio of two sizes is taken within
/// each round, so whatever else the machine does (a shared, noisy VM
/// swings 1.5x over minutes) weighs on both sides of it alike. The goals'
/// ratios are the medians of the rounds' ratios.
fn measure_interleaved(opts: &Options, nic: &mut Nic) -> (Value, Vec<String>) {
    let hz = opts.tsc_per_ns;
    let frames = Frames::new();
    let per_slice = (opts.packets / 4).max(2 * BURST);
    let mut problems = Vec::new();
    let all_seqs: Vec<Sequences> = opts
        .conns
        .iter()
        .map(|&size| Sequences::new(size, per_slice, opts.zipf_s, 2))
        .collect();
    let mut runs = Vec::new();
    for (&size, seqs) in opts.conns.iter().zip(&all_seqs) {
        progress(&format!(
            "interleaved: nat {}: connections and handshakes (untimed)",
            short_count(size as f64)
        ));
        let (worker, clock, p) = established_worker(NAT, &frames, &seqs.every, nic, hz);
        problems.extend(p);
        let lanes = established_lanes(&frames, NAT, &seqs.uniform);
        runs.push((size, worker, clock, lanes, Vec::new()));
    }
    progress(&format!(
        "interleaved: {INTERLEAVED_ROUNDS} rounds of {per_slice} packets per size"
    ));
    for _ in 0..INTERLEAVED_ROUNDS {
        for (size, worker, clock, lanes, cycles) in runs.iter_mut() {
            let r = run_phase(worker, nic, lanes, clock, 1, hz);
            problems.extend(
                forwarding_problems(&r)
                    .into_iter()
                    .map(|p| format!("interleaved nat {size}: {p}")),
            );
            cycles.push(r.cycles as f64 / r.packets.max(1) as f64);
        }
    }
    let base = runs.iter().min_by_key(|r| r.0).map(|r| r.4.clone());
    let mut per_size = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    for (size, _, _, _, cycles) in &runs {
        per_size.insert(size.to_string(), json!(cycles));
        if let Some(base) = &base {
            // Packets per second of this size over the smallest's, per round.
            let mut r: Vec<f64> = base.iter().zip(cycles).map(|(b, c)| b / c).collect();
            r.sort_by(f64::total_cmp);
            let median = r[r.len() / 2];
            progress(&format!(
                "interleaved: nat {} / smallest: median {median:.2} of {} rounds",
                short_count(*size as f64),
                r.len()
            ));
            ratios.insert(size.to_string(), json!((median * 100.0).round() / 100.0));
        }
    }
    let v = json!({
        "benchmark": "datapath",
        "run": "interleaved",
        "method": "nat",
        "distribution": "uniform",
        "rounds": INTERLEAVED_ROUNDS,
        "packets_per_slice": per_slice,
        "cycles_per_packet": per_size,
        "rate_ratio_to_smallest_median": ratios,
    });
    (v, problems)
}

/// Rounds of the comparison with IPv4 NAT: new connections (each round
/// builds fresh workers), established packets (the same workers
/// throughout).
const AGAINST_NAT_NEW_ROUNDS: usize = 4;
const AGAINST_NAT_ESTABLISHED_ROUNDS: usize = 8;

/// Each IPv6 method of `--methods` against IPv4 NAT at one table size,
/// timed in turns (NAT, nat6, dr6, ..., NAT, nat6, ...) as
/// `measure_interleaved` does for table sizes, so a machine that slows
/// down weighs on both sides of each ratio. New connections: per round,
/// `min(size, packets / 4)` SYNs into the empty table of a fresh worker
/// of `size` connections (repeated on fresh workers to about `packets / 4`
/// SYNs at small sizes); established: one worker per method with every
/// flow established (untimed), then per round `packets / 4` uniform
/// packets on each (NAT and nat6: half each way). A round's ratio is
/// NAT's cycles per packet over the method's (its rate over NAT's); the
/// figures are the medians of the rounds'. Returns the JSON figures and
/// what went wrong.
fn measure_against_nat(size: usize, opts: &Options, nic: &mut Nic) -> (Value, Vec<String>) {
    let hz = opts.tsc_per_ns;
    let frames = Frames::new();
    let contenders: Vec<Method> = std::iter::once(NAT)
        .chain(opts.methods.iter().copied().filter(|m| m.is_v6()))
        .collect();
    let label = format!("v6 against nat {}", short_count(size as f64));
    let per_round = (opts.packets / 4).max(2 * BURST);
    let mut problems = Vec::new();

    let new_flows: Vec<u32> = (0..size.min(per_round) as u32).collect();
    let repeats = (per_round / new_flows.len()).clamp(1, NEW_PHASE_MAX_REPEATS);
    progress(&format!(
        "{label}: {AGAINST_NAT_NEW_ROUNDS} rounds of {} new connections x {repeats} on fresh workers, each of {}",
        new_flows.len(),
        names(&contenders)
    ));
    let mut new_cycles = vec![Vec::new(); contenders.len()];
    for _ in 0..AGAINST_NAT_NEW_ROUNDS {
        for (k, &m) in contenders.iter().enumerate() {
            let (r, _, _) = new_connections(m, &frames, (&new_flows, size), repeats, nic, hz);
            let mut p = forwarding_problems(&r);
            if r.created != r.packets {
                p.push(format!(
                    "created {} connections for {} SYNs",
                    r.created, r.packets
                ));
            }
            problems.extend(
                p.into_iter()
                    .map(|p| format!("{label}: new {}: {p}", m.name())),
            );
            new_cycles[k].push(r.cycles as f64 / r.packets.max(1) as f64);
        }
    }

    progress(&format!(
        "{label}: connections and handshakes (untimed), then {AGAINST_NAT_ESTABLISHED_ROUNDS} rounds of {per_round} established packets each"
    ));
    let every: Vec<u32> = (0..size as u32).collect();
    let uniform = uniform_flows(size, per_round, 3);
    let mut runs = Vec::new();
    for &m in &contenders {
        let (worker, clock, p) = established_worker(m, &frames, &every, nic, hz);
        problems.extend(p.into_iter().map(|p| format!("{label}: {p}")));
        runs.push((worker, clock, established_lanes(&frames, m, &uniform)));
    }
    drop(every);
    let mut est_cycles = vec![Vec::new(); contenders.len()];
    for _ in 0..AGAINST_NAT_ESTABLISHED_ROUNDS {
        for (k, (worker, clock, lanes)) in runs.iter_mut().enumerate() {
            let r = run_phase(worker, nic, lanes, clock, 1, hz);
            problems.extend(
                forwarding_problems(&r)
                    .into_iter()
                    .map(|p| format!("{label}: established {}: {p}", contenders[k].name())),
            );
            est_cycles[k].push(r.cycles as f64 / r.packets.max(1) as f64);
        }
    }
    drop(runs);

    // Per method: the medians of its cycles and of its rounds' ratios.
    let figures = |cycles: &[Vec<f64>]| -> (
        serde_json::Map<String, Value>,
        serde_json::Map<String, Value>,
    ) {
        let (mut per, mut ratios) = (serde_json::Map::new(), serde_json::Map::new());
        for (k, m) in contenders.iter().enumerate() {
            per.insert(m.name().to_string(), json!(round(median(&cycles[k]), 1)));
            if k > 0 {
                let r: Vec<f64> = cycles[0]
                    .iter()
                    .zip(&cycles[k])
                    .map(|(b, c)| b / c)
                    .collect();
                ratios.insert(m.name().to_string(), json!(round(median(&r), 3)));
            }
        }
        (per, ratios)
    };
    let (new_cpp, new_ratio) = figures(&new_cycles);
    let (est_cpp, est_ratio) = figures(&est_cycles);
    for m in &contenders[1..] {
        progress(&format!(
            "{label}: {}: new {} and established {} of nat's rate (median of rounds)",
            m.name(),
            new_ratio[m.name()],
            est_ratio[m.name()]
        ));
    }
    let v = json!({
        "benchmark": "datapath",
        "run": "v6_vs_nat",
        "connections": size,
        "reference": "nat",
        "tsc_ghz": round(hz, 3),
        "new_rounds": AGAINST_NAT_NEW_ROUNDS,
        "new_syns_per_round": new_flows.len() * repeats,
        "new_cycles_per_packet_median": new_cpp,
        "new_rate_ratio_to_nat_median": new_ratio,
        "established_rounds": AGAINST_NAT_ESTABLISHED_ROUNDS,
        "established_packets_per_round": per_round,
        "distribution": "uniform",
        "established_cycles_per_packet_median": est_cpp,
        "established_rate_ratio_to_nat_median": est_ratio,
    });
    (v, problems)
}

/// "nat, nat6, dr6".
fn names(methods: &[Method]) -> String {
    methods
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Arrival rate the steady-state phase models: its clock advances
/// 1e9 / `STEADY_RATE` ns per SYN and the half-open timeout is the table's
/// size at this rate, so the table stays full.
const STEADY_RATE: u64 = 4_000_000;

/// New NAT connections with the table in steady state at `size`: full, and
/// its oldest entries expiring as fast as new ones are made. The worker's
/// clock runs on a schedule of one SYN every 250 ns (4M/s) and the
/// half-open timeout (`tcp_syn`) is `size` × 250 ns, so after the fill
/// each SYN arrives just as the entry made `size` SYNs earlier expires,
/// which the sweep (paced by that clock) or the insert's reclaim must free.
fn measure_steady(size: usize, opts: &Options, nic: &mut Nic, all: &mut Vec<Measurement>) {
    let hz = opts.tsc_per_ns;
    let step = 1_000_000_000 / STEADY_RATE;
    let timeout = Duration::from_nanos(step * size as u64);
    let templates = &Templates::new();
    progress(&format!(
        "nat {}: filling the table with half-open connections (untimed), then new connections in steady state",
        short_count(size as f64)
    ));
    let mut worker = build_worker(NAT, size, WORKER_SEED, nic, |s| {
        s.timeouts = Timeouts::with_overrides(TimeoutOverrides {
            tcp_syn: Some(timeout),
            ..TimeoutOverrides::default()
        });
    });
    let mut clock = Clock {
        ns: CLOCK_BASE_NS,
        per_packet: Some(step),
    };
    let fill: Vec<u32> = (0..size as u32).collect();
    let r = run_phase(
        &mut worker,
        nic,
        &syn_lanes(templates, &fill),
        &mut clock,
        1,
        hz,
    );
    let mut problems: Vec<String> = forwarding_problems(&r)
        .into_iter()
        .map(|p| format!("fill: {p}"))
        .collect();
    let full = worker.balancer().conns().len();
    if full != size {
        problems.push(format!("fill: {full} of {size} entries in the table"));
    }
    drop(fill);
    let n = size.max(opts.packets.min(NEW_PHASE_MIN_PACKETS));
    let flows: Vec<u32> = (size as u32..(size + n) as u32).collect();
    let r = run_phase(
        &mut worker,
        nic,
        &syn_lanes(templates, &flows),
        &mut clock,
        SLICES,
        hz,
    );
    let created = r.created;
    // A SYN the table refuses (no entry free and none to reclaim or evict
    // near its home) is the table's behaviour in steady state, shown as a
    // `table_full` drop, not a broken benchmark.
    let refused = r.drops.get("table_full").copied().unwrap_or(0);
    let mut checked = r.clone();
    checked.drops.remove("table_full");
    checked.sent += refused;
    let mut m = Measurement::new(
        NAT,
        size,
        (Phase::Steady, Distribution::Each),
        vec![r],
        TableMemory::measure(worker.balancer().conns()),
        opts.zipf_s,
    );
    m.problems = forwarding_problems(&checked);
    if created + refused != n as u64 {
        m.problems.push(format!(
            "created {created} connections for {n} SYNs ({refused} refused)"
        ));
    }
    m.problems.extend(problems);
    m.run = Run::Steady;
    report(m, all);
}

/// A SYN flood at table capacity while established NAT flows run: half
/// the table established, the other half filled with half-open entries
/// from spoofed SYNs; then the established flows' cost alone, the flood's
/// alone, and both mixed half and half. Returns the JSON figures and what
/// went wrong.
fn measure_flood(size: usize, opts: &Options, nic: &mut Nic) -> (Value, Vec<String>) {
    let hz = opts.tsc_per_ns;
    let method = NAT;
    let frames = Frames::new();
    let templates = &frames.v4;
    let established = size / 2;
    let label = format!("syn flood at {}", short_count(size as f64));
    progress(&format!(
        "{label}: {established} established, the rest half-open (untimed)"
    ));
    let mut worker = build_worker(method, size, WORKER_SEED, nic, |_| {});
    let mut clock = Clock::new();
    let every: Vec<u32> = (0..established as u32).collect();
    let mut problems = Vec::new();
    let r = run_phase(
        &mut worker,
        nic,
        &syn_lanes(templates, &every),
        &mut clock,
        1,
        hz,
    );
    problems.extend(
        forwarding_problems(&r)
            .into_iter()
            .map(|p| format!("SYNs: {p}")),
    );
    let lanes = handshake_lanes(&frames, method, &every);
    problems.extend(complete_handshakes(
        &mut worker,
        nic,
        &lanes,
        established,
        &mut clock,
        hz,
    ));
    // The real servers talk on each established connection: its client
    // is proven, so a full table never evicts it (a connection no server
    // answered since its handshake is a flood's as much as a client's).
    let r = run_phase(
        &mut worker,
        nic,
        &[server_lane(&templates.server_ack, &every)],
        &mut clock,
        1,
        hz,
    );
    problems.extend(
        forwarding_problems(&r)
            .into_iter()
            .map(|p| format!("server answers: {p}")),
    );
    let mut rng = SplitMix(0xf100d);
    let mut randoms = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.next() as u32).collect() };
    // Distinct sources (an odd multiplier is a bijection of u32), so every
    // one of these SYNs takes an entry.
    let fill: Vec<u32> = (0..(size - established) as u32)
        .map(|i| i.wrapping_mul(0x9e37_79b1))
        .collect();
    let r = run_phase(
        &mut worker,
        nic,
        &[spoofed_lane(&templates.client_syn, &fill)],
        &mut clock,
        1,
        hz,
    );
    let full = worker.balancer().conns().len();
    if full != size {
        problems.push(format!(
            "the table holds {full} of {size} entries after the fill ({} SYNs created one)",
            r.created
        ));
    }

    // The three phases (established alone, SYNs alone, the mix) in
    // FLOOD_ROUNDS turns, each with fresh spoofed sources, and the ratio
    // taken per round: a noisy machine weighs on all three alike.
    let packets = (opts.packets / FLOOD_ROUNDS).max(2 * BURST);
    let uniform = uniform_flows(established, packets, 0xe57);
    let est_lanes = established_lanes(&frames, method, &uniform);
    progress(&format!(
        "{label}: {FLOOD_ROUNDS} rounds of: established alone, spoofed SYNs alone, half and half"
    ));
    let (mut alone, mut r_flood, mut mixed) = (
        PhaseResult::default(),
        PhaseResult::default(),
        PhaseResult::default(),
    );
    let mut table_full = 0;
    let mut round_ratios = Vec::new();
    let (mut est_packets, mut syn_packets) = (0u64, 0u64);
    for _ in 0..FLOOD_ROUNDS {
        let alone_r = run_phase(&mut worker, nic, &est_lanes, &mut clock, 1, hz);
        problems.extend(
            forwarding_problems(&alone_r)
                .into_iter()
                .map(|p| format!("established alone: {p}")),
        );
        let flood_only = randoms(packets / 2);
        let flood_r = run_phase(
            &mut worker,
            nic,
            &[spoofed_lane(&templates.client_syn, &flood_only)],
            &mut clock,
            1,
            hz,
        );
        let (a, b) = (randoms(packets / 2), randoms(packets / 2));
        let mut mixed_lanes = established_lanes(&frames, method, &uniform);
        mixed_lanes.push(spoofed_lane(&templates.client_syn, &a));
        mixed_lanes.push(spoofed_lane(&templates.client_syn, &b));
        let before = worker.stats;
        let mixed_r = run_phase(&mut worker, nic, &mixed_lanes, &mut clock, 1, hz);
        let full_r = worker.stats.drops[DropReason::TableFull as usize]
            - before.drops[DropReason::TableFull as usize];
        let other_drops = mixed_r.drop_total() - full_r;
        if mixed_r.sent + full_r != mixed_r.packets || other_drops > 0 || mixed_r.redirected > 0 {
            problems.push(format!(
                "mixed: sent {} + table_full {full_r} of {} packets; drops {:?}",
                mixed_r.sent, mixed_r.packets, mixed_r.drops
            ));
        }
        let (est_n, syn_n) = (uniform.len() as u64, (a.len() + b.len()) as u64);
        round_ratios.push(
            alone_r.cycles_per_packet() / est_cycles_in_mix(&mixed_r, &flood_r, est_n, syn_n),
        );
        alone.add(&alone_r);
        r_flood.add(&flood_r);
        mixed.add(&mixed_r);
        table_full += full_r;
        est_packets += est_n;
        syn_packets += syn_n;
    }

    // Every established connection still there: counted, and every flow's
    // packets forwarded in both directions.
    let active_after = established_count(&worker);
    let check = run_phase(
        &mut worker,
        nic,
        &established_lanes_both(templates, &every),
        &mut clock,
        1,
        hz,
    );
    let check_problems = forwarding_problems(&check);
    if active_after != established as u64 {
        problems.push(format!(
            "{active_after} of {established} connections established after the flood"
        ));
    }
    problems.extend(
        check_problems
            .iter()
            .map(|p| format!("established flows after the flood: {p}")),
    );

    // Cycles per established packet in the mix: the mix's cycles less what
    // the SYNs cost alone (all interference charged to the established
    // packets).
    let cpp_alone = alone.cycles_per_packet();
    let cpp_syn = r_flood.cycles_per_packet();
    let cpp_mixed = mixed.cycles_per_packet();
    let total = (est_packets + syn_packets) as f64;
    let cpp_est_in_mix = est_cycles_in_mix(&mixed, &r_flood, est_packets, syn_packets);
    round_ratios.sort_by(f64::total_cmp);
    let ratio = round_ratios[round_ratios.len() / 2];
    let v = json!({
        "benchmark": "datapath",
        "run": "flood",
        "method": "nat",
        "connections": size,
        "established": established,
        "table_full_before": full == size,
        "syn_share": round(syn_packets as f64 / total, 3),
        "established_mpps_alone": round(hz * 1e3 / cpp_alone, 3),
        "established_mpps_in_flood": round(hz * 1e3 / cpp_est_in_mix, 3),
        "established_rate_ratio": round(ratio, 3),
        "established_rate_ratio_rounds": round_ratios.iter().map(|&r| round(r, 3)).collect::<Vec<_>>(),
        "cycles_per_established_packet_alone": round(cpp_alone, 1),
        "cycles_per_established_packet_in_flood": round(cpp_est_in_mix, 1),
        "cycles_per_syn_alone": round(cpp_syn, 1),
        "cycles_per_packet_mixed": round(cpp_mixed, 1),
        "raw_established_mpps_in_mix": round(hz * 1e3 / cpp_mixed * est_packets as f64 / total, 3),
        "syn_created_in_mix": mixed.created,
        "syn_table_full_in_mix": table_full,
        "syn_table_full_alone": r_flood.drops.get("table_full").copied().unwrap_or(0),
        "established_before": established,
        "established_after": active_after,
        "established_flows_forwarded_after": check.sent,
        "established_flows_checked": check.packets,
        "evicted_established": established as u64 - active_after.min(established as u64),
        "problems": problems,
    });
    (
        v,
        problems
            .into_iter()
            .map(|p| format!("{label}: {p}"))
            .collect(),
    )
}

/// Rounds of the SYN-flood measurement (see `measure_flood`).
const FLOOD_ROUNDS: usize = 4;

/// Cycles per established packet in a mix of `est` established packets
/// and `syn` SYNs: the mix's cycles less what the SYNs cost alone (all
/// interference charged to the established packets).
fn est_cycles_in_mix(mixed: &PhaseResult, syns_alone: &PhaseResult, est: u64, syn: u64) -> f64 {
    let total = (est + syn) as f64;
    (mixed.cycles_per_packet() * total - syns_alone.cycles_per_packet() * syn as f64) / est as f64
}

/// Every flow once from each side (NAT): client → VIP, then the real
/// server's reply.
fn established_lanes_both<'a>(t: &'a Templates, flows: &'a [u32]) -> Vec<Lane<'a>> {
    vec![
        client_lane(&t.client_ack, flows),
        server_lane(&t.server_ack, flows),
    ]
}

/// What one worker of an RSS run gets: the flows RSS gives it, lane by
/// lane (global flow numbers).
struct RssShare {
    syns: Vec<u32>,
    handshake: Vec<Vec<u32>>,
    established: Vec<Vec<u32>>,
}

/// Splits the packets of `lanes` among `workers` by the RSS model: each
/// packet to the worker of the client address its lane's port hashes.
fn rss_dispatch(lanes: &[Lane], workers: usize) -> Vec<Vec<Vec<u32>>> {
    let mut out = vec![vec![Vec::new(); lanes.len()]; workers];
    let rss = RssModel::new(workers);
    for (k, lane) in lanes.iter().enumerate() {
        for &flow in lane.flows {
            out[lane.rss_worker(&rss, flow)][k].push(flow);
        }
    }
    out
}

/// What an RSS run's worker thread hands back.
struct RssOutcome {
    established: PhaseResult,
    /// `stats.redirected` and `rx_packets` over the whole run.
    redirected: u64,
    received: u64,
    /// The flows (client side) of the connections in its table.
    owned: Vec<u32>,
    problems: Vec<String>,
    memory: TableMemory,
}

/// One worker of an RSS run: its SYNs and handshakes (untimed), then its
/// share of the established packets, timed once every worker of its group
/// is ready.
fn rss_worker_thread(
    method: Method,
    (index, workers): (usize, usize),
    capacity: usize,
    share: RssShare,
    (rs_of, local_of): (&[u8], &[(Ipv4Addr, u16)]),
    hz: f64,
    barrier: &Barrier,
) -> RssOutcome {
    let frames = Frames::new();
    let mut nic = Nic::new();
    let mut clock = Clock::new();
    let mut worker = build_worker(
        method,
        capacity,
        WORKER_SEED + 256 * index as u64,
        &mut nic,
        |s| {
            s.worker_index = index;
            s.worker_count = workers;
        },
    );
    let syn = run_phase(
        &mut worker,
        &mut nic,
        &syn_lanes(frames.client(method), &share.syns),
        &mut clock,
        1,
        hz,
    );
    let mut problems: Vec<String> = forwarding_problems(&syn)
        .into_iter()
        .map(|p| format!("SYNs: {p}"))
        .collect();
    let lanes: Vec<Lane> = handshake_lanes(&frames, method, &[])
        .into_iter()
        .zip(&share.handshake)
        .map(|(l, flows)| {
            Lane { flows, ..l }
                .with_rs_of(rs_of)
                .with_local_of(local_of)
        })
        .collect();
    problems.extend(complete_handshakes(
        &mut worker,
        &mut nic,
        &lanes,
        share.syns.len(),
        &mut clock,
        hz,
    ));
    let lanes: Vec<Lane> = established_lanes(&frames, method, &[])
        .into_iter()
        .zip(&share.established)
        .map(|(l, flows)| {
            Lane { flows, ..l }
                .with_rs_of(rs_of)
                .with_local_of(local_of)
        })
        .collect();
    barrier.wait();
    let established = run_phase(&mut worker, &mut nic, &lanes, &mut clock, SLICES, hz);
    problems.extend(
        forwarding_problems(&established)
            .into_iter()
            .map(|p| format!("established: {p}")),
    );
    let lb = worker.balancer();
    let owned = match method.client {
        Family::V4 => lb
            .conns()
            .iter()
            .filter_map(|(_, c)| {
                let k = c.original();
                flow_of(k.src, k.src_port)
            })
            .collect(),
        Family::V6 => lb
            .conns6()
            .iter()
            .filter_map(|(_, c)| {
                let k = c.original();
                flow_of(v4_of(k.src)?, k.src_port)
            })
            .collect(),
    };
    RssOutcome {
        established,
        redirected: worker.stats.redirected,
        received: worker.stats.rx_packets,
        owned,
        problems: problems
            .into_iter()
            .map(|p| format!("worker {index}: {p}"))
            .collect(),
        memory: TableMemory::of_worker(&worker, method),
    }
}

/// `workers` workers, each with `worker_count` = `workers`, fed by the RSS
/// model: `per_worker` × `workers` flows, every packet (SYNs, handshakes,
/// established both ways) given to the worker of its client address. At
/// most `concurrent` run at once (one per core). Checks that every
/// connection lives on exactly one worker, the one RSS gives its client,
/// and counts the packets the workers redirected. Returns the JSON
/// figures, the established measurement and what went wrong.
fn measure_rss(
    method: Method,
    workers: usize,
    per_worker: usize,
    packets_per_worker: usize,
    concurrent: usize,
    opts: &Options,
) -> (Value, Measurement, Vec<String>) {
    let total = per_worker * workers;
    let label = format!(
        "rss {} {workers} worker(s), {} connections each",
        method.name(),
        short_count(per_worker as f64)
    );
    progress(&format!("{label}: dispatching, setting up, then uniform"));
    let frames = Frames::new();
    let every: Vec<u32> = (0..total as u32).collect();
    let syn_share = rss_dispatch(&syn_lanes(frames.client(method), &every), workers);
    // Each worker schedules its flows round robin in the order it gets
    // their SYNs.
    let mut rs_of = vec![0u8; total];
    for share in &syn_share {
        for (k, &flow) in share[0].iter().enumerate() {
            rs_of[flow as usize] = (k % REAL_SERVERS as usize) as u8;
        }
    }
    // FullNAT: each worker gives its flows, in order, the local addresses
    // the RSS model gives it, in turn (their ports from 1024 up).
    let mut local_of: Vec<(Ipv4Addr, u16)> = Vec::new();
    if method.fwd == ForwardMethod::FullNat {
        local_of = vec![(Ipv4Addr::UNSPECIFIED, 0); total];
        let rss = RssModel::new(workers);
        for (w, share) in syn_share.iter().enumerate() {
            // Replies to a local address are hashed on it, in the real
            // servers' family.
            let owned: Vec<Ipv4Addr> = (0..LOCALS)
                .map(local_address)
                .filter(|&a| family_worker(&rss, method.server, a) == w)
                .collect();
            for (k, &flow) in share[0].iter().enumerate() {
                if let Some(&lip) = owned.get(k % owned.len().max(1)) {
                    let port = 1024 + k / owned.len();
                    local_of[flow as usize] = (lip, port as u16);
                }
            }
        }
    }
    let handshake_l: Vec<Lane> = handshake_lanes(&frames, method, &every)
        .into_iter()
        .map(|l| l.with_local_of(&local_of))
        .collect();
    let handshake = rss_dispatch(&handshake_l, workers);
    drop(handshake_l);
    let uniform = uniform_flows(total, packets_per_worker * workers, 0x4555 + workers as u64);
    let established_l: Vec<Lane> = established_lanes(&frames, method, &uniform)
        .into_iter()
        .map(|l| l.with_local_of(&local_of))
        .collect();
    let established = rss_dispatch(&established_l, workers);
    drop(established_l);
    drop(uniform);
    let mut shares: Vec<RssShare> = syn_share
        .into_iter()
        .zip(handshake)
        .zip(established)
        .map(|((mut s, h), e)| RssShare {
            syns: s.remove(0),
            handshake: h,
            established: e,
        })
        .collect();
    let capacity = per_worker + per_worker / 8 + 256;
    let rs_of: Arc<[u8]> = rs_of.into();
    let local_of: Arc<[(Ipv4Addr, u16)]> = local_of.into();
    let hz = opts.tsc_per_ns;
    let mut outcomes: Vec<Option<RssOutcome>> = (0..workers).map(|_| None).collect();
    let mut problems = Vec::new();
    let mut start = 0;
    while start < workers {
        let group = concurrent.clamp(1, workers - start);
        let barrier = Arc::new(Barrier::new(group));
        let handles: Vec<_> = (start..start + group)
            .map(|i| {
                let share = std::mem::replace(
                    &mut shares[i],
                    RssShare {
                        syns: Vec::new(),
                        handshake: Vec::new(),
                        established: Vec::new(),
                    },
                );
                let (barrier, rs_of, local_of) = (barrier.clone(), rs_of.clone(), local_of.clone());
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || {
                        rss_worker_thread(
                            method,
                            (i, workers),
                            capacity,
                            share,
                            (&rs_of, &local_of),
                            hz,
                            &barrier,
                        )
                    })
                    .expect("spawn a worker thread")
            })
            .collect();
        for (k, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(o) => outcomes[start + k] = Some(o),
                Err(_) => problems.push(format!("{label}: worker {} panicked", start + k)),
            }
        }
        start += group;
    }
    let outcomes: Vec<RssOutcome> = outcomes.into_iter().flatten().collect();

    // Ownership: every flow's connection on exactly one worker, RSS's.
    let rss = RssModel::new(workers);
    let mut holder = vec![u8::MAX; total];
    let (mut duplicated, mut misplaced) = (0u64, 0u64);
    for (w, o) in outcomes.iter().enumerate() {
        for &flow in &o.owned {
            let Some(h) = holder.get_mut(flow as usize) else {
                misplaced += 1;
                continue;
            };
            if *h != u8::MAX {
                duplicated += 1;
            }
            *h = w as u8;
            if family_worker(&rss, method.client, Ipv4Addr::from(client(flow).0)) != w {
                misplaced += 1;
            }
        }
    }
    let missing = holder.iter().filter(|&&h| h == u8::MAX).count() as u64;
    let ownership_ok =
        outcomes.len() == workers && duplicated == 0 && misplaced == 0 && missing == 0;
    if !ownership_ok {
        problems.push(format!(
            "{label}: ownership: {missing} connections on no worker, {duplicated} on two, {misplaced} not on RSS's worker"
        ));
    }
    let redirected: u64 = outcomes.iter().map(|o| o.redirected).sum();
    let received: u64 = outcomes.iter().map(|o| o.received).sum();
    let memory = outcomes
        .first()
        .map_or(TableMemory::of(capacity), |o| o.memory);
    let mut m = Measurement::new(
        method,
        per_worker,
        (Phase::Established, Distribution::Uniform),
        outcomes.iter().map(|o| o.established.clone()).collect(),
        memory,
        opts.zipf_s,
    );
    m.run = Run::Scaling;
    for o in &outcomes {
        problems.extend(o.problems.iter().map(|p| format!("{label}: {p}")));
    }
    let v = json!({
        "benchmark": "datapath",
        "run": "rss",
        "method": method.name(),
        "workers": workers,
        "concurrent": concurrent.min(workers),
        "connections_per_worker": per_worker,
        "connections_held": outcomes.iter().map(|o| o.owned.len()).collect::<Vec<_>>(),
        "packets_received": received,
        "redirected": redirected,
        "redirected_share": if received > 0 { redirected as f64 / received as f64 } else { f64::NAN },
        "ownership_ok": ownership_ok,
        "missing": missing,
        "duplicated": duplicated,
        "misplaced": misplaced,
        "mpps_per_worker": m.mpps_per_worker().iter().map(|&x| round(x, 3)).collect::<Vec<_>>(),
        "cycles_per_packet": round(m.cycles_per_packet(), 1),
    });
    (v, m, problems)
}

// ---------------------------------------------------------------------------
// Summary and plot.

/// 1000 → "1K", 1e7 → "10M".
fn short_count(v: f64) -> String {
    let (x, unit) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "K")
    } else {
        (v, "")
    };
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}{unit}")
    } else {
        format!("{x:.1}{unit}")
    }
}

fn print_summary(
    all: &[Measurement],
    extra: &[Value],
    sizes: &[(usize, TableMemory)],
    elapsed: Duration,
) {
    println!();
    println!(
        "{:<7} {:>6} {:<12} {:<10} {:>2} {:>7} {:>7} {:>8} {:>11} {:>6} {:>17} {:>5}",
        "meth",
        "conns",
        "phase",
        "flows",
        "w",
        "Mpps",
        "ns/pkt",
        "cyc/pkt",
        "new conns/s",
        "B/conn",
        "sent/packets",
        "drops"
    );
    for m in all {
        println!(
            "{:<7} {:>6} {:<12} {:<10} {:>2} {:>7.2} {:>7.1} {:>8.1} {:>11} {:>6.1} {:>17} {:>5}",
            m.method.name(),
            short_count(m.connections as f64),
            m.phase.name(),
            m.distribution.name(),
            m.workers(),
            m.mpps(),
            m.ns_per_packet(),
            m.cycles_per_packet(),
            m.new_conns_per_s()
                .map_or("-".to_string(), |n| format!("{:.2} M", n / 1e6)),
            m.memory.per_connection(),
            format!("{}/{}", m.sent(), m.packets()),
            m.drops()
        );
    }
    for v in extra {
        match v["run"].as_str() {
            Some("flood") => println!(
                "syn flood at {} ({} established, {}% SYNs): established {} Mpps alone, {} in the flood (ratio {}); \
                 {} of {} established after, {} of {} checked flows forwarded; SYNs refused table_full {}",
                short_count(v["connections"].as_f64().unwrap_or(0.0)),
                v["established"],
                v["syn_share"].as_f64().unwrap_or(0.0) * 100.0,
                v["established_mpps_alone"],
                v["established_mpps_in_flood"],
                v["established_rate_ratio"],
                v["established_after"],
                v["established_before"],
                v["established_flows_forwarded_after"],
                v["established_flows_checked"],
                v["syn_table_full_in_mix"],
            ),
            Some("rss") => println!(
                "rss {} {} workers ({} at once), {} conns each: redirected {} of {} packets, ownership {}, Mpps per worker {}",
                v["method"].as_str().unwrap_or("?"),
                v["workers"],
                v["concurrent"],
                short_count(v["connections_per_worker"].as_f64().unwrap_or(0.0)),
                v["redirected"],
                v["packets_received"],
                if v["ownership_ok"] == json!(true) { "ok" } else { "WRONG" },
                v["mpps_per_worker"],
            ),
            Some("v6_vs_nat") => print_against_nat(v),
            _ => {}
        }
    }
    for (size, mem) in sizes {
        println!(
            "memory: {} connections: {:.1} bytes per connection, {:.1} MiB per worker",
            short_count(*size as f64),
            mem.per_connection(),
            mem.mib()
        );
    }
    println!("datapath: done in {:.1} s", elapsed.as_secs_f64());
}

/// The lines of a `v6_vs_nat` figure: each IPv6 method's cycles per
/// packet and its rate as a share of IPv4 NAT's, new and established.
fn print_against_nat(v: &Value) {
    let conns = short_count(v["connections"].as_f64().unwrap_or(0.0));
    let (new, est) = (
        &v["new_cycles_per_packet_median"],
        &v["established_cycles_per_packet_median"],
    );
    println!(
        "against IPv4 NAT at {conns} (in turns, median of {} / {} rounds): nat new {} cycles/SYN, established {} cycles/packet",
        v["new_rounds"], v["established_rounds"], new["nat"], est["nat"]
    );
    if let Some(ratios) = v["established_rate_ratio_to_nat_median"].as_object() {
        for name in ratios.keys() {
            println!(
                "  {name:<7} new {:>7} cycles/SYN, {:.2} of nat's rate; established {:>6} cycles/packet, {:.2} of nat's rate",
                new[name],
                v["new_rate_ratio_to_nat_median"][name].as_f64().unwrap_or(f64::NAN),
                est[name],
                ratios[name].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
}

/// The font for the plot's text, when its file can be read and parsed.
fn load_font(path: &str) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        eprintln!("datapath: no font at {path}: the plot will have no text");
        return false;
    };
    let bytes: &'static [u8] = bytes.leak();
    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
        eprintln!("datapath: {path} is not a usable font: the plot will have no text");
        return false;
    }
    true
}

const METHOD_COLORS: [(Method, RGBColor); 6] = [
    (NAT, RGBColor(200, 40, 40)),
    (method(ForwardMethod::Dr, Family::V4), RGBColor(30, 90, 200)),
    (
        method(ForwardMethod::Tun, Family::V4),
        RGBColor(30, 150, 60),
    ),
    (
        method(ForwardMethod::Nat, Family::V6),
        RGBColor(240, 140, 140),
    ),
    (
        method(ForwardMethod::Dr, Family::V6),
        RGBColor(130, 170, 240),
    ),
    (
        method(ForwardMethod::Tun, Family::V6),
        RGBColor(120, 200, 130),
    ),
];

/// One plotted line: a label, a look and its points.
struct Series {
    label: String,
    color: RGBColor,
    look: Look,
    points: Vec<(f64, f64)>,
}

/// How a line is drawn: established uniform (thick, dots), established
/// Zipf (dashed, rings), new connections (thin, crosses).
#[derive(Clone, Copy)]
enum Look {
    Uniform,
    Zipf,
    New,
}

impl Look {
    fn line(self, color: RGBColor) -> ShapeStyle {
        match self {
            Look::Uniform => color.stroke_width(3),
            Look::Zipf => color.stroke_width(2),
            Look::New => color.stroke_width(1),
        }
    }
}

/// The lines of the plot: established Mpps per method × distribution, new
/// connections (M/s) per method; single-worker measurements only.
fn plot_series(all: &[Measurement]) -> Vec<Series> {
    let kinds = [
        (Phase::Established, Distribution::Uniform, Look::Uniform),
        (Phase::Established, Distribution::Zipf, Look::Zipf),
        (Phase::New, Distribution::Each, Look::New),
    ];
    let mut out = Vec::new();
    for (method, color) in METHOD_COLORS {
        for (phase, dist, look) in kinds {
            let mut points: Vec<(f64, f64)> = all
                .iter()
                .filter(|m| {
                    m.method == method
                        && m.phase == phase
                        && m.distribution == dist
                        && m.workers() == 1
                        && m.run == Run::Matrix
                })
                .map(|m| (m.connections as f64, m.mpps()))
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let what = match phase {
                Phase::New | Phase::Steady => "new connections (M/s)".to_string(),
                Phase::Established => format!("established, {}", dist.name()),
            };
            out.push(Series {
                label: format!("{} {what}", method.name().to_uppercase()),
                color,
                look,
                points,
            });
        }
    }
    out
}

/// Labels only the powers of ten of the log axis.
fn decade_label(v: &f64) -> String {
    let l = v.log10();
    if (l - l.round()).abs() < 1e-6 {
        short_count(*v)
    } else {
        String::new()
    }
}

fn draw_plot(
    path: &str,
    all: &[Measurement],
    with_text: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let series = plot_series(all);
    if series.is_empty() {
        return Err("nothing to plot".into());
    }
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let (lo, hi) = points().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    // Room above the lines for the legend.
    let ymax = points().map(|p| p.1).fold(0.1, f64::max) * 1.5;
    let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if with_text {
        builder
            .caption(
                "rvs datapath, one worker, 64-byte frames: rate against connections in the table",
                ("sans-serif", 24),
            )
            .x_label_area_size(50)
            .y_label_area_size(70);
    }
    let mut chart = builder.build_cartesian_2d((lo / 1.5..hi * 1.5).log_scale(), 0.0..ymax)?;
    if with_text {
        chart
            .configure_mesh()
            .x_desc("connections in the table (log scale)")
            .y_desc("Mpps (established) / million new connections per second")
            .x_label_formatter(&decade_label)
            .label_style(("sans-serif", 16))
            .draw()?;
    } else {
        chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
    }
    for s in &series {
        draw_series(&mut chart, s, with_text)?;
    }
    if with_text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

type LogChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<LogCoord<f64>, plotters::coord::types::RangedCoordf64>,
>;

/// One line with its markers (and its legend entry when there is text).
fn draw_series<'a, 'b: 'a>(
    chart: &mut LogChart<'a, 'b>,
    s: &Series,
    with_text: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let (color, look) = (s.color, s.look);
    let line = look.line(color);
    let pts = s.points.iter().copied();
    let drawn = match look {
        Look::Zipf => chart.draw_series(DashedLineSeries::new(pts, 10, 6, line))?,
        Look::Uniform | Look::New => chart.draw_series(LineSeries::new(pts, line))?,
    };
    if with_text {
        // The legend's sample of the line, with its marker.
        let anno = drawn.label(s.label.clone());
        let dash = move |from: i32, to: i32| PathElement::new(vec![(from, 0), (to, 0)], line);
        match look {
            Look::Uniform => anno.legend(move |at| {
                EmptyElement::at(at) + dash(0, 24) + Circle::new((12, 0), 4, color.filled())
            }),
            Look::Zipf => anno.legend(move |at| {
                EmptyElement::at(at)
                    + dash(0, 7)
                    + dash(17, 24)
                    + Circle::new((12, 0), 4, color.stroke_width(2))
            }),
            Look::New => anno.legend(move |at| {
                EmptyElement::at(at) + dash(0, 24) + Cross::new((12, 0), 4, color.stroke_width(2))
            }),
        };
    }
    let at = s.points.iter().copied();
    match look {
        Look::Uniform => chart.draw_series(at.map(|p| Circle::new(p, 5, color.filled())))?,
        Look::Zipf => chart.draw_series(at.map(|p| Circle::new(p, 5, color.stroke_width(2))))?,
        Look::New => chart.draw_series(at.map(|p| Cross::new(p, 5, color.stroke_width(2))))?,
    };
    Ok(())
}

// ---------------------------------------------------------------------------

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    opts.tsc_per_ns = calibrate_tsc();
    progress(&format!("TSC at {:.3} GHz", opts.tsc_per_ns));
    let mut problems = Vec::new();
    for check in [self_check(&Frames::new()), zipf_self_check(opts.zipf_s)] {
        if let Err(e) = check {
            eprintln!("datapath: self-check failed: {e}");
            return ExitCode::FAILURE;
        }
    }

    let mut all = Vec::new();
    let mut extra: Vec<Value> = Vec::new();
    let mut memories: Vec<(usize, TableMemory)> = Vec::new();
    let mut nic = Nic::new();
    for &size in &opts.conns {
        progress(&format!(
            "{} connections: building packet sequences",
            short_count(size as f64)
        ));
        let memory = TableMemory::of(size);
        memories.push((size, memory));
        let seqs = Sequences::new(size, opts.packets, opts.zipf_s, 1);
        for &method in &opts.methods {
            problems.extend(measure_method(method, &seqs, &opts, &mut nic, &mut all));
        }
    }
    if opts.methods.iter().any(|m| m.is_v6()) {
        for &size in &opts.conns {
            let (v, p) = measure_against_nat(size, &opts, &mut nic);
            println!("{v}");
            extra.push(v);
            problems.extend(p);
        }
    }
    if opts.conns.len() > 1 && opts.methods.contains(&NAT) {
        let (v, p) = measure_interleaved(&opts, &mut nic);
        println!("{v}");
        extra.push(v);
        problems.extend(p);
    }
    for &(size, memory) in &memories {
        let v = probe_random_lines(size, memory, &opts);
        println!("{v}");
        extra.push(v);
    }
    for &size in &opts.steady_conns {
        measure_steady(size, &opts, &mut nic, &mut all);
    }
    if opts.flood_conns > 0 {
        let (v, p) = measure_flood(opts.flood_conns, &opts, &mut nic);
        println!("{v}");
        extra.push(v);
        problems.extend(p);
    }
    drop(nic);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if opts.workers > 0 && opts.multi_conns > 0 {
        // Rates: 1 worker, then `workers` at once (one core each).
        let mut counts = vec![1, opts.workers];
        counts.dedup();
        for n in counts {
            let (v, m, p) = measure_rss(NAT, n, opts.multi_conns, opts.packets, n, &opts);
            println!("{v}");
            extra.push(v);
            report(m, &mut all);
            problems.extend(p);
        }
    }
    for &n in &opts.rss_workers {
        // Ownership: every method, at most one worker per core at once.
        for &method in &opts.methods {
            let (v, _, p) = measure_rss(
                method,
                n,
                opts.own_conns,
                opts.packets.min(1_000_000),
                cores.min(n),
                &opts,
            );
            println!("{v}");
            extra.push(v);
            problems.extend(p);
        }
    }

    print_summary(&all, &extra, &memories, started.elapsed());
    if let Some(path) = &opts.json {
        let lines: String = all
            .iter()
            .map(|m| m.json())
            .chain(extra.iter().cloned())
            .map(|v| format!("{v}\n"))
            .collect();
        if let Err(e) = std::fs::write(path, lines) {
            eprintln!("datapath: cannot write {path}: {e}");
            problems.push(format!("--json {path}: {e}"));
        }
    }
    if let Some(path) = &opts.plot {
        let with_text = load_font(&opts.font);
        match draw_plot(path, &all, with_text) {
            Ok(()) => eprintln!("datapath: plot written to {path}"),
            Err(e) => eprintln!("datapath: no plot ({path}): {e}"),
        }
    }

    problems.extend(
        all.iter()
            .flat_map(|m| m.problems.iter())
            .map(|p| p.to_string()),
    );
    if problems.is_empty() {
        if opts.smoke {
            eprintln!("datapath: smoke run passed");
        }
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("datapath: FAILED: {p}");
        }
        ExitCode::FAILURE
    }
}
