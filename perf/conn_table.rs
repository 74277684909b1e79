//! The connection table alone, IPv4 (64-byte entries) against IPv6
//! (128-byte entries, `lb::conn::Conn6`), in one run: nanoseconds per
//! lookup of a stored key (hit), of an absent key (miss, a new flow's
//! first look), and per churn step (remove a random connection, insert a
//! new one). Keys are drawn at random over the whole table, so beyond the
//! caches every operation pays its memory misses, as the worker's would
//! (without the worker's burst prefetch: these are the latencies the
//! prefetch hides, the upper bound of what a family costs).
//!
//! ```sh
//! cargo bench --no-default-features --bench conn_table -- [--conns 4K,1M] [--ops 2M]
//!     [--family ipv4|ipv6]
//! valgrind --tool=callgrind --toggle-collect='*conn_table::hits*' \
//!     target/release/deps/conn_table-* --conns 4K --ops 200K --family ipv6
//! ```
//!
//! Under callgrind (`--family` one at a time, one phase function
//! collected: `hits`, `misses`, `churn`), instructions per operation are
//! a figure the shared machine's noise does not move.
//!
//! One JSON object per family and size on stdout, a summary table on
//! stderr with the IPv6 / IPv4 ratios. Figures only: nothing is asserted.

use rvs::lb::conn::{ConnAddr, ConnId, ConnInit, ConnTableOf, FlowKeyOf, PROTO_TCP};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// xorshift64*: deterministic keys, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A family's keys: a client address from a random number.
trait Family: ConnAddr {
    const NAME: &'static str;
    fn client(r: u64) -> Self;
    fn vip() -> Self;
    fn rip() -> Self;
}

impl Family for Ipv4Addr {
    const NAME: &'static str = "ipv4";
    fn client(r: u64) -> Ipv4Addr {
        Ipv4Addr::from(r as u32)
    }
    fn vip() -> Ipv4Addr {
        Ipv4Addr::new(203, 0, 113, 10)
    }
    fn rip() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 1)
    }
}

impl Family for Ipv6Addr {
    const NAME: &'static str = "ipv6";
    fn client(r: u64) -> Ipv6Addr {
        Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(r))
    }
    fn vip() -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)
    }
    fn rip() -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1)
    }
}

fn keys<A: Family>(r: u64) -> (FlowKeyOf<A>, FlowKeyOf<A>) {
    let c = A::client(r);
    let port = (r >> 40) as u16 | 1024;
    (
        FlowKeyOf::new(c, port, A::vip(), 80, PROTO_TCP),
        FlowKeyOf::new(A::rip(), 8080, c, port, PROTO_TCP),
    )
}

struct Figures {
    hit_ns: f64,
    miss_ns: f64,
    churn_ns: f64,
    bytes_per_conn: f64,
}

fn measure<A: Family>(conns: usize, ops: usize) -> Figures {
    let mut t = ConnTableOf::<A>::with_seed(conns, 7);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Filled to 90 %: the churn inserts into free entries, not evictions.
    let fill = conns * 9 / 10;
    let mut live: Vec<u64> = Vec::with_capacity(fill);
    let mut ids = Vec::with_capacity(fill);
    while live.len() < fill {
        let r = rng.next();
        let (o, rep) = keys::<A>(r);
        if let Ok(id) = t.insert(o, rep, ConnInit::new(0, 0), 0, |_| {}) {
            live.push(r);
            ids.push(id);
        }
    }
    let probe: Vec<_> = (0..ops)
        .map(|_| keys::<A>(live[(rng.next() % live.len() as u64) as usize]).0)
        .collect();
    let start = Instant::now();
    let found = hits(&mut t, &probe);
    let hit_ns = start.elapsed().as_nanos() as f64 / ops as f64;
    assert_eq!(found, ops, "every stored key found");
    let absent: Vec<_> = (0..ops).map(|_| keys::<A>(rng.next()).0).collect();
    let start = Instant::now();
    misses(&mut t, &absent);
    let miss_ns = start.elapsed().as_nanos() as f64 / ops as f64;
    let steps = ops / 4;
    let picks: Vec<(usize, u64)> = (0..steps)
        .map(|_| ((rng.next() % ids.len() as u64) as usize, rng.next()))
        .collect();
    let start = Instant::now();
    churn(&mut t, &mut ids, &picks);
    let churn_ns = start.elapsed().as_nanos() as f64 / steps as f64;
    Figures {
        hit_ns,
        miss_ns,
        churn_ns,
        bytes_per_conn: t.memory_bytes() as f64 / conns as f64,
    }
}

// The timed loops, each a function of its own (never inlined), so that
// `valgrind --tool=callgrind --toggle-collect='*conn_table::hits*'` counts
// the instructions of one phase alone (`--family` runs one family).

#[inline(never)]
fn hits<A: Family>(t: &mut ConnTableOf<A>, probe: &[FlowKeyOf<A>]) -> usize {
    let mut found = 0usize;
    for k in probe {
        if let Some((id, _)) = t.lookup(k, 1, |_| {}) {
            found += usize::from(black_box(t.get(id)).vs == 0);
        }
    }
    found
}

#[inline(never)]
fn misses<A: Family>(t: &mut ConnTableOf<A>, absent: &[FlowKeyOf<A>]) {
    for k in absent {
        black_box(t.lookup(k, 1, |_| {}));
    }
}

#[inline(never)]
fn churn<A: Family>(t: &mut ConnTableOf<A>, ids: &mut [ConnId], picks: &[(usize, u64)]) {
    for &(i, r) in picks {
        t.remove(ids[i]);
        let (o, rep) = keys::<A>(r);
        if let Ok(id) = t.insert(o, rep, ConnInit::new(0, 0), 1, |_| {}) {
            ids[i] = id;
        } else {
            // A collision with a live key (vanishingly rare): keep the slot
            // pointing at a live connection.
            let (o, rep) = keys::<A>(r ^ 1);
            ids[i] = t
                .insert(o, rep, ConnInit::new(0, 0), 1, |_| {})
                .expect("room");
        }
    }
}

fn parse_count(s: &str) -> usize {
    let (n, m) = match s.strip_suffix(['K', 'k']) {
        Some(n) => (n, 1_000),
        None => match s.strip_suffix(['M', 'm']) {
            Some(n) => (n, 1_000_000),
            None => (s, 1),
        },
    };
    n.parse::<usize>().expect("a count like 4K or 1M") * m
}

fn main() {
    let mut conns = vec![4_000, 1_000_000];
    let mut ops = 2_000_000;
    let mut family = String::from("both");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--conns" => {
                conns = args
                    .next()
                    .expect("--conns LIST")
                    .split(',')
                    .map(parse_count)
                    .collect()
            }
            "--ops" => ops = parse_count(&args.next().expect("--ops N")),
            "--family" => family = args.next().expect("--family ipv4|ipv6|both"),
            _ => {} // cargo bench passes --bench
        }
    }
    let mut rows = Vec::new();
    for &n in &conns {
        if family != "both" {
            let f = if family == "ipv6" {
                measure::<Ipv6Addr>(n, ops)
            } else {
                measure::<Ipv4Addr>(n, ops)
            };
            println!(
                "{{\"bench\":\"conn_table\",\"family\":\"{family}\",\"conns\":{n},\"hit_ns\":{:.1},\"miss_ns\":{:.1},\"churn_ns\":{:.1}}}",
                f.hit_ns, f.miss_ns, f.churn_ns
            );
            continue;
        }
        let v4 = measure::<Ipv4Addr>(n, ops);
        let v6 = measure::<Ipv6Addr>(n, ops);
        for (name, f) in [(Ipv4Addr::NAME, &v4), (Ipv6Addr::NAME, &v6)] {
            println!(
                "{{\"bench\":\"conn_table\",\"family\":\"{name}\",\"conns\":{n},\"hit_ns\":{:.1},\"miss_ns\":{:.1},\"churn_ns\":{:.1},\"bytes_per_conn\":{:.1}}}",
                f.hit_ns, f.miss_ns, f.churn_ns, f.bytes_per_conn
            );
        }
        rows.push((n, v4, v6));
    }
    eprintln!("conns      family  hit ns  miss ns  churn ns  bytes/conn");
    for (n, v4, v6) in &rows {
        for (name, f) in [("ipv4", v4), ("ipv6", v6)] {
            eprintln!(
                "{n:<10} {name:<6} {:>7.1} {:>8.1} {:>9.1} {:>11.1}",
                f.hit_ns, f.miss_ns, f.churn_ns, f.bytes_per_conn
            );
        }
        eprintln!(
            "{n:<10} v6/v4  {:>7.2} {:>8.2} {:>9.2} {:>11.2}",
            v6.hit_ns / v4.hit_ns,
            v6.miss_ns / v4.miss_ns,
            v6.churn_ns / v4.churn_ns,
            v6.bytes_per_conn / v4.bytes_per_conn
        );
    }
}
