//! Maglev hashing (IPVS `mh`; Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016, section 3.4).
//!
//! The lookup table has a prime number M of entries, each naming a server.
//! Every server has its own permutation of the entries, from two hashes of a
//! stable key: `offset = h1 mod M`, `skip = h2 mod (M - 1) + 1`, and entry
//! j of the permutation is `(offset + j * skip) mod M` (M prime makes every
//! skip coprime with M, so this visits each entry once). The servers take
//! turns; at its turn a server claims the next entry of its permutation
//! that nobody has claimed yet, until the table is full. Because each
//! server's preferences do not depend on the others, removing a server
//! mostly frees its own entries: other servers keep nearly all of theirs
//! (the paper's "minimal disruption"), and every server ends with M / N
//! entries give or take one (its "balance").
//!
//! Weights change how often a server takes a turn, not its permutation (the
//! paper suggests this). Rather than w turns per round, which can overshoot
//! by up to one round of the largest weight, turns are fractional: in round
//! r a server of weight w has had `floor(r * w / wmax)` turns, so the
//! heaviest server takes one turn per round and each server's entries track
//! `M * w / sum(w)` to within a turn or two.
//!
//! Building costs O(M log M) probes plus O(rounds * N) bookkeeping and
//! allocates: control does it, off the packet path, and hands the table to
//! workers in an `Arc`. A pick is one multiply and one load.
//!
//! Entries are u16, so the table of the default M = 65537 is 128 KiB and
//! stays in a core's L2; a service may thus have at most 65535 servers.
//!
//! A server that is down or drained (weight 0 in the live list passed to
//! `pick`) keeps its entries: its flows get `None`, or with `fallback`
//! (IPVS's `mh-fallback`) the next entry whose server is available. The
//! entries are in effect a random sequence of servers, so the next one
//! spreads the down server's flows over the others by weight. Control may
//! also rebuild the table without the server; then other flows move by the
//! disruption measured in the tests.

use std::fmt;

use super::hash::{mix64, FlowHasher};
use super::{Candidate, FlowHashInput};
use crate::lb::family::IpFamily;

/// The default table size: a prime, and over 100 entries per server for up
/// to 655 servers (the paper's rule for balance within 1%).
pub const DEFAULT_SIZE: u32 = 65_537;

/// The largest table size accepted: 32 MiB of entries. A bound keeps a typo
/// in a config from allocating gigabytes.
pub const MAX_SIZE: u32 = 1 << 24;

/// An entry no server owns (no server had weight > 0 at build time).
const EMPTY: u16 = u16::MAX;

/// Distinct seeds for the two hashes of a server key.
const OFFSET_SEED: u64 = 0x243f_6a88_85a3_08d3;
const SKIP_SEED: u64 = 0x1319_8a2e_0370_7344;

/// Why a Maglev table could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaglevError {
    /// The size is not prime, so some skips would not visit every entry.
    NotPrime(u32),
    /// The size is above `MAX_SIZE`.
    TooLarge(u32),
    /// More servers than a u16 entry can name.
    TooManyServers(usize),
}

impl fmt::Display for MaglevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaglevError::NotPrime(m) => {
                write!(f, "Maglev table size {m} is not prime (try {DEFAULT_SIZE})")
            }
            MaglevError::TooLarge(m) => {
                write!(f, "Maglev table size {m} is above the limit of {MAX_SIZE}")
            }
            MaglevError::TooManyServers(n) => write!(
                f,
                "{n} real servers, above the {} a Maglev table can hold",
                EMPTY
            ),
        }
    }
}

impl std::error::Error for MaglevError {}

/// The lookup table of one `mh` virtual server, built by control and shared
/// by every worker.
#[derive(Clone, PartialEq, Eq)]
pub struct MaglevTable {
    /// Server index per entry, or `EMPTY`; `entries.len()` is M.
    entries: Box<[u16]>,
    hasher: FlowHasher,
    fallback: bool,
}

impl fmt::Debug for MaglevTable {
    /// The size and flags; not the 65537 entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaglevTable")
            .field("size", &self.entries.len())
            .field("hasher", &self.hasher)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl MaglevTable {
    /// Builds the table of size `m` (a prime up to `MAX_SIZE`) for servers
    /// given as (stable key, weight), index = position; see
    /// `hash::server_key` for the key. Weight-0 servers get no entries; if
    /// all are 0, every lookup gives `None`. Seed 0, no fallback.
    pub fn build(servers: &[(u64, u32)], m: u32) -> Result<MaglevTable, MaglevError> {
        if m > MAX_SIZE {
            return Err(MaglevError::TooLarge(m));
        }
        if !is_prime(m) {
            return Err(MaglevError::NotPrime(m));
        }
        if servers.len() >= usize::from(EMPTY) {
            return Err(MaglevError::TooManyServers(servers.len()));
        }
        let mut entries = vec![EMPTY; m as usize].into_boxed_slice();
        populate(&mut entries, servers);
        Ok(MaglevTable {
            entries,
            hasher: FlowHasher::default(),
            fallback: false,
        })
    }

    /// Sets the flow-hash seed (the same for every worker of a service).
    pub fn with_seed(mut self, seed: u64) -> MaglevTable {
        self.hasher = FlowHasher::new(seed);
        self
    }

    /// With `true`, flows of an unavailable server go to the next available
    /// entry's server instead of getting `None` (IPVS's `mh-fallback`).
    pub fn with_fallback(mut self, fallback: bool) -> MaglevTable {
        self.fallback = fallback;
        self
    }

    /// M, the number of entries.
    pub fn size(&self) -> u32 {
        self.entries.len() as u32
    }

    /// The entry for `hash`: `hash * M / 2^64` on the high half (Lemire's
    /// multiply-shift range reduction: uniform, and no division).
    #[inline]
    fn slot(&self, hash: u64) -> usize {
        (((hash >> 32) * self.entries.len() as u64) >> 32) as usize
    }

    /// The server owning the entry of `hash`, ignoring availability.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let e = self.entries[self.slot(hash)];
        (e != EMPTY).then_some(usize::from(e))
    }

    /// The server index of every entry (`None` for empty ones): for tests
    /// and for measuring disruption between two builds.
    pub fn entries(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.entries
            .iter()
            .map(|&e| (e != EMPTY).then_some(usize::from(e)))
    }

    /// The flow's server if it is available (weight > 0 in `servers`), else
    /// with `fallback` the next available entry's server, else `None`.
    pub fn pick<A: IpFamily>(
        &self,
        servers: &[Candidate],
        flow: &FlowHashInput<A>,
    ) -> Option<usize> {
        let available = |e: u16| {
            let i = usize::from(e);
            servers.get(i).is_some_and(|s| s.weight > 0).then_some(i)
        };
        let home = self.slot(self.hasher.client(flow.client));
        if let Some(i) = available(self.entries[home]) {
            return Some(i);
        }
        if !self.fallback || !servers.iter().any(|s| s.weight > 0) {
            return None;
        }
        // Usually a few probes. Only if every server owning entries is down
        // while one without entries is up does this walk the whole table.
        let (head, tail) = self.entries.split_at(home);
        tail.iter().chain(head).find_map(|&e| available(e))
    }
}

/// Fills `entries` by the servers' turns, as the file-top comment says.
fn populate(entries: &mut [u16], servers: &[(u64, u32)]) {
    let m = entries.len() as u64;
    /// One server's walk along its permutation.
    struct Walker {
        index: u16,
        weight: u64,
        /// The entry its permutation is at.
        pos: u64,
        skip: u64,
        turns: u64,
    }
    let mut walkers: Vec<Walker> = servers
        .iter()
        .enumerate()
        .filter(|(_, &(_, w))| w > 0)
        .map(|(i, &(key, weight))| Walker {
            index: i as u16,
            weight: u64::from(weight),
            pos: mix64(key ^ OFFSET_SEED) % m,
            skip: mix64(key ^ SKIP_SEED) % (m - 1) + 1,
            turns: 0,
        })
        .collect();
    let Some(wmax) = walkers.iter().map(|w| w.weight).max() else {
        return;
    };
    let mut filled = 0;
    // The heaviest server takes a turn every round, so this ends within M
    // rounds; r * w stays below 2^24 * 2^32.
    for round in 1.. {
        for w in walkers.iter_mut() {
            if w.turns >= round * w.weight / wmax {
                continue;
            }
            w.turns += 1;
            // A free entry exists (filled < M), and the permutation visits
            // every entry, so this finds one.
            while entries[w.pos as usize] != EMPTY {
                w.pos = (w.pos + w.skip) % m;
            }
            entries[w.pos as usize] = w.index;
            filled += 1;
            if filled == m {
                return;
            }
        }
    }
}

/// True when `n` is prime: for validating a configured Maglev table size.
/// Trial division by odd numbers up to sqrt(n): at most 32768 divisions.
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let n = u64::from(n);
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::sched::hash::server_key;
    use crate::lb::sched::tests::{clients, weights};
    use std::net::Ipv4Addr;

    /// Keys of servers 198.51.100.1.. port 80, with these weights.
    fn servers(w: &[u32]) -> Vec<(u64, u32)> {
        w.iter()
            .enumerate()
            .map(|(i, &w)| (server_key(Ipv4Addr::new(198, 51, 100, 1 + i as u8), 80), w))
            .collect()
    }

    fn counts(t: &MaglevTable, n: usize) -> Vec<u32> {
        let mut c = vec![0; n];
        for i in t.entries().flatten() {
            c[i] += 1;
        }
        c
    }

    /// The largest |entries - M * w / sum(w)| / (M * w / sum(w)) over
    /// servers. Measured by `maglev_figures` over 5..=20 servers with equal
    /// and 1..=n weights: at most 0.081%.
    fn worst_relative_deviation(w: &[u32]) -> f64 {
        let t = MaglevTable::build(&servers(w), DEFAULT_SIZE).unwrap();
        let total: f64 = w.iter().map(|&x| f64::from(x)).sum();
        counts(&t, w.len())
            .iter()
            .zip(w)
            .map(|(&c, &w)| {
                let want = f64::from(DEFAULT_SIZE) * f64::from(w) / total;
                (f64::from(c) - want).abs() / want
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn is_prime_agrees_with_known_values() {
        let primes = [2, 3, 5, 7, 251, 65_537, 1_000_003, 4_294_967_291];
        let composites = [0, 1, 4, 9, 65_535, 65_539 * 3, 1 << 24, 4_294_967_295];
        assert!(primes.iter().all(|&p| is_prime(p)));
        assert!(composites.iter().all(|&c| !is_prime(c)));
    }

    #[test]
    fn build_rejects_a_size_that_is_not_prime() {
        let s = servers(&[1, 1]);
        assert_eq!(
            MaglevTable::build(&s, 65_536),
            Err(MaglevError::NotPrime(65_536))
        );
        assert_eq!(MaglevTable::build(&s, 1), Err(MaglevError::NotPrime(1)));
        assert_eq!(MaglevTable::build(&s, 0), Err(MaglevError::NotPrime(0)));
    }

    #[test]
    fn build_rejects_a_size_above_the_limit() {
        let big = 4_294_967_291; // prime
        let got = MaglevTable::build(&servers(&[1]), big);
        assert_eq!(got, Err(MaglevError::TooLarge(big)));
    }

    #[test]
    fn build_rejects_more_servers_than_an_entry_names() {
        let many = vec![(0, 1); 70_000];
        let got = MaglevTable::build(&many, 7);
        assert_eq!(got, Err(MaglevError::TooManyServers(70_000)));
    }

    #[test]
    fn build_is_deterministic() {
        let s = servers(&[1, 3, 2, 5, 1]);
        let a = MaglevTable::build(&s, DEFAULT_SIZE).unwrap();
        let b = MaglevTable::build(&s, DEFAULT_SIZE).unwrap();
        assert!(a == b);
    }

    #[test]
    fn equal_weights_share_within_1_percent() {
        for n in [5, 8, 13, 20] {
            let d = worst_relative_deviation(&vec![1; n]);
            assert!(d < 0.01, "{n} servers: {d}");
        }
    }

    #[test]
    fn unequal_weights_share_within_1_percent() {
        for w in [
            vec![1, 2, 3, 4, 5],
            vec![10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5],
            (1..=20).collect::<Vec<u32>>(),
            vec![100, 37, 250, 1000, 999, 64, 3, 500],
        ] {
            let d = worst_relative_deviation(&w);
            assert!(d < 0.01, "{w:?}: {d}");
        }
    }

    #[test]
    fn weight_zero_server_gets_no_entries() {
        let t = MaglevTable::build(&servers(&[1, 0, 1]), 251).unwrap();
        let c = counts(&t, 3);
        assert_eq!(c[1], 0);
        assert_eq!(c[0] + c[2], 251);
    }

    #[test]
    fn all_zero_weights_give_an_empty_table() {
        let t = MaglevTable::build(&servers(&[0, 0]), 13).unwrap();
        assert!(t.entries().all(|e| e.is_none()));
        assert_eq!(t.lookup(42), None);
        let t = MaglevTable::build(&[], 13).unwrap();
        assert_eq!(t.lookup(u64::MAX), None);
    }

    #[test]
    fn lookup_of_any_hash_is_in_range() {
        let t = MaglevTable::build(&servers(&[1, 2, 3]), 7).unwrap();
        for h in [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, 0xdead_beef] {
            assert!(t.lookup(h).unwrap() < 3);
        }
        assert_eq!(t.slot(u64::MAX), 6);
        assert_eq!(t.slot(0), 0);
    }

    /// The fraction of entries whose server (by key) differs once server
    /// `gone` is removed from `n` equal servers.
    fn disruption(n: usize, gone: usize) -> f64 {
        let all = servers(&vec![1; n]);
        let mut fewer = all.clone();
        fewer.remove(gone);
        let a = MaglevTable::build(&all, DEFAULT_SIZE).unwrap();
        let b = MaglevTable::build(&fewer, DEFAULT_SIZE).unwrap();
        let changed = a
            .entries()
            .zip(b.entries())
            .filter(|&(x, y)| x.map(|i| all[i].0) != y.map(|i| fewer[i].0))
            .count();
        changed as f64 / f64::from(DEFAULT_SIZE)
    }

    #[test]
    fn removing_one_of_n_servers_remaps_little_more_than_its_share() {
        for (n, gone) in [(5, 0), (10, 3), (20, 19)] {
            let d = disruption(n, gone);
            let ideal = 1.0 / n as f64;
            // At least the removed server's own entries (1/n, to one entry).
            assert!(d >= ideal - 1e-4, "{n}: {d} below {ideal}");
            assert!(d <= ideal + BOUND, "{n}: {d} above {ideal} + {BOUND}");
        }
    }

    /// How far beyond 1/N the remapped fraction may go. Measured with
    /// `maglev_figures` (M = 65537, equal weights, each of N = 5..=20
    /// servers removed in turn): at most 0.43 percentage points beyond 1/N
    /// (e.g. N = 10: 10.20%..10.43%). The bound leaves twice that margin.
    const BOUND: f64 = 0.01;

    /// Prints the figures the bounds above are set from:
    /// `cargo test --no-default-features --lib maglev_figures -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn maglev_figures() {
        let mut worst_share = 0.0f64;
        for n in 5..=20 {
            worst_share = worst_share.max(worst_relative_deviation(&vec![1; n]));
            let w: Vec<u32> = (1..=n as u32).collect();
            worst_share = worst_share.max(worst_relative_deviation(&w));
        }
        println!("worst relative share deviation (5..=20 servers): {worst_share:.5}");
        let mut worst_extra = f64::MIN;
        for n in 5..=20 {
            let (mut lo, mut hi) = (f64::MAX, 0.0f64);
            for gone in 0..n {
                let d = disruption(n, gone);
                lo = lo.min(d);
                hi = hi.max(d);
                worst_extra = worst_extra.max(d - 1.0 / n as f64);
            }
            println!(
                "n={n:2} 1/n={:.4} disruption {lo:.4}..{hi:.4}",
                1.0 / n as f64
            );
        }
        println!("worst disruption beyond 1/n: {worst_extra:.4}");
    }

    #[test]
    fn down_server_flows_get_none_without_fallback() {
        let t = MaglevTable::build(&servers(&[1, 1, 1]), 251).unwrap();
        let down = weights(&[1, 0, 1]);
        for c in clients(3, 300) {
            let f = FlowHashInput {
                client: c,
                client_port: 1,
            };
            let home = t.lookup(FlowHasher::default().client(c));
            let got = t.pick(&down, &f);
            assert_eq!(got, if home == Some(1) { None } else { home });
        }
    }

    #[test]
    fn down_server_flows_spread_and_others_stay_with_fallback() {
        let t = MaglevTable::build(&servers(&[1, 1, 1]), DEFAULT_SIZE)
            .unwrap()
            .with_fallback(true);
        let up = weights(&[1, 1, 1]);
        let down = weights(&[1, 0, 1]);
        let mut moved_to = [0; 3];
        for c in clients(5, 3000) {
            let f = FlowHashInput {
                client: c,
                client_port: 1,
            };
            let before = t.pick(&up, &f).unwrap();
            let after = t.pick(&down, &f).unwrap();
            if before == 1 {
                moved_to[after] += 1;
            } else {
                assert_eq!(after, before);
            }
        }
        assert_eq!(moved_to[1], 0);
        assert!(moved_to[0] > 300 && moved_to[2] > 300, "{moved_to:?}");
    }

    #[test]
    fn fallback_finds_the_only_available_server() {
        let t = MaglevTable::build(&servers(&[1; 50]), 1009)
            .unwrap()
            .with_fallback(true);
        let mut s = weights(&[0; 50]);
        s[31].weight = 1;
        for c in clients(11, 50) {
            let f = FlowHashInput {
                client: c,
                client_port: 1,
            };
            assert_eq!(t.pick(&s, &f), Some(31));
        }
    }

    #[test]
    fn fallback_gives_none_when_no_available_server_owns_entries() {
        // Server 1 had weight 0 at build (no entries) and is the only one up:
        // the table cannot send it flows until control rebuilds it.
        let t = MaglevTable::build(&servers(&[1, 0]), 13)
            .unwrap()
            .with_fallback(true);
        let f = FlowHashInput {
            client: Ipv4Addr::new(192, 0, 2, 9),
            client_port: 1,
        };
        assert_eq!(t.pick(&weights(&[0, 1]), &f), None);
    }
}
