//! Source hashing (IPVS `sh`): a client address always maps to the same
//! server, through a 256-bucket table built from the weights.
//!
//! IPVS gives each server buckets in proportion to its weight and looks up
//! `hash(source address) mod 256`. Here the quotas are computed exactly
//! (largest remainder: each server gets `256 * w / sum(w)` rounded so the
//! total is 256) and laid out in smooth weighted round-robin order (nginx's:
//! at each bucket every server gains its quota in credit, and the richest
//! takes the bucket and pays the total), so the table reads A B C A B C ...
//! rather than blocks. Layout does not change the shares (the hash is
//! uniform); it keeps neighbouring buckets on different servers, which the
//! last-resort linear scan below relies on to spread load. IPVS's own `wrr`
//! order would not do: with quotas like 128:85:43 it starts with 43 A's.
//!
//! The table is built by control from the configured weights and shared by
//! all workers. The workers pass live weights to `pick`: a server that is
//! down or drained (weight 0 there) keeps its buckets, so when it returns
//! its clients return to it, and clients of other servers never move. Its
//! own clients get `None` (the IPVS default), or, with `fallback` (IPVS's
//! `sh-fallback` flag), another server: the hash is re-mixed with an offset
//! until it lands on an available bucket, as IPVS does, which spreads the
//! down server's clients over the others by weight rather than piling them
//! on its neighbour. A linear scan backs the re-mix up, so any available
//! server that owns a bucket is found in at most 2 * 256 probes.

use super::hash::{mix64, FlowHasher};
use super::{Candidate, FlowHashInput};
use crate::lb::family::IpFamily;

/// Buckets in a source-hash table (IPVS's `IP_VS_SH_TAB_SIZE`).
pub const BUCKETS: usize = 256;

/// A bucket no server owns (all weights were zero at build time).
const EMPTY: u32 = u32::MAX;

/// The bucket-to-server table of one `sh` virtual server, built by control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShTable {
    /// Server index per bucket, or `EMPTY`.
    buckets: [u32; BUCKETS],
    hasher: FlowHasher,
    fallback: bool,
}

impl ShTable {
    /// Builds the table for servers with these weights (index = position),
    /// with seed 0 and no fallback.
    pub fn build(weights: &[u32]) -> ShTable {
        let mut buckets = [EMPTY; BUCKETS];
        let quotas = quotas(weights);
        // Smooth weighted round robin over the quotas: they sum to BUCKETS,
        // so after BUCKETS steps each server has taken exactly its quota.
        let mut credit = vec![0i64; quotas.len()];
        for b in buckets.iter_mut() {
            let mut richest: Option<usize> = None;
            for (i, &q) in quotas.iter().enumerate() {
                if q > 0 {
                    credit[i] += i64::from(q);
                    if richest.is_none_or(|r| credit[i] > credit[r]) {
                        richest = Some(i);
                    }
                }
            }
            if let Some(r) = richest {
                credit[r] -= BUCKETS as i64;
                *b = r as u32;
            }
        }
        ShTable {
            buckets,
            hasher: FlowHasher::default(),
            fallback: false,
        }
    }

    /// Sets the flow-hash seed (the same for every worker of a service).
    pub fn with_seed(mut self, seed: u64) -> ShTable {
        self.hasher = FlowHasher::new(seed);
        self
    }

    /// With `true`, clients of an unavailable server go to another one
    /// instead of getting `None` (IPVS's `sh-fallback`).
    pub fn with_fallback(mut self, fallback: bool) -> ShTable {
        self.fallback = fallback;
        self
    }

    /// The server owning the bucket of `hash`, ignoring availability.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let b = self.buckets[bucket(hash)];
        (b != EMPTY).then_some(b as usize)
    }

    /// How many buckets each of the first `n` servers owns (for tests and
    /// for `rvsadm` to show).
    pub fn shares(&self, n: usize) -> Vec<u32> {
        let mut count = vec![0; n];
        for &b in &self.buckets {
            if let Some(c) = count.get_mut(b as usize) {
                *c += 1;
            }
        }
        count
    }

    /// The client's server if it is available (weight > 0 in `servers`),
    /// else a fallback one or `None`, as described at the top of the file.
    pub fn pick<A: IpFamily>(
        &self,
        servers: &[Candidate],
        flow: &FlowHashInput<A>,
    ) -> Option<usize> {
        let h = self.hasher.client(flow.client);
        let available = |b: usize| {
            let i = self.buckets[b] as usize;
            (servers.get(i).is_some_and(|s| s.weight > 0)).then_some(i)
        };
        let home = bucket(h);
        if let Some(i) = available(home) {
            return Some(i);
        }
        if !self.fallback {
            return None;
        }
        (1..BUCKETS as u64)
            .find_map(|k| available(bucket(mix64(h.wrapping_add(k)))))
            .or_else(|| (0..BUCKETS).find_map(|k| available((home + k) % BUCKETS)))
    }
}

/// The bucket of a hash: its top eight bits.
#[inline]
fn bucket(hash: u64) -> usize {
    (hash >> 56) as usize
}

/// Buckets per server: `BUCKETS * w / sum(w)` by the largest-remainder
/// method (ties to the lower index), so they sum to `BUCKETS` exactly
/// (or to 0 when all weights are 0).
fn quotas(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let scaled = |w: u32| u64::from(w) * BUCKETS as u64;
    let mut q: Vec<u32> = weights
        .iter()
        .map(|&w| (scaled(w) / total) as u32)
        .collect();
    let given: u32 = q.iter().sum();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(scaled(weights[i]) % total));
    for &i in by_remainder.iter().take(BUCKETS - given as usize) {
        q[i] += 1;
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::sched::tests::{clients, weights};
    use std::net::Ipv4Addr;

    fn flow(client: Ipv4Addr) -> FlowHashInput {
        FlowHashInput {
            client,
            client_port: 40000,
        }
    }

    #[test]
    fn quotas_are_proportional_and_sum_to_256() {
        assert_eq!(quotas(&[1, 1]), [128, 128]);
        assert_eq!(quotas(&[3, 2, 1]), [128, 85, 43]);
        assert_eq!(quotas(&[1, 0, 1, 1]), [86, 0, 85, 85]);
        assert_eq!(quotas(&[0, 0]), [0, 0]);
        let many = quotas(&[1; 300]);
        assert_eq!(many.iter().sum::<u32>(), 256);
    }

    #[test]
    fn table_is_interleaved() {
        let t = ShTable::build(&[1, 1, 1]);
        assert_eq!(&t.buckets[..6], &[0, 1, 2, 0, 1, 2]);
        // No server owns two neighbouring buckets while none has half.
        for w in [[1, 1, 1], [2, 2, 1], [3, 3, 2]] {
            let t = ShTable::build(&w);
            assert!(t.buckets.windows(2).all(|p| p[0] != p[1]), "{w:?}");
        }
    }

    #[test]
    fn each_server_owns_its_quota_of_buckets() {
        assert_eq!(ShTable::build(&[1, 1, 1]).shares(3), [86, 85, 85]);
        assert_eq!(ShTable::build(&[3, 2, 1]).shares(3), [128, 85, 43]);
        assert_eq!(ShTable::build(&[0, 5]).shares(2), [0, 256]);
    }

    #[test]
    fn same_client_same_server() {
        let t = ShTable::build(&[1, 2, 3, 4]);
        let s = weights(&[1, 2, 3, 4]);
        for c in clients(1, 200) {
            let first = t.pick(&s, &flow(c));
            assert!(first.is_some());
            // Another connection of the same client: another port.
            let again = FlowHashInput {
                client: c,
                client_port: 1234,
            };
            assert_eq!(t.pick(&s, &again), first);
        }
    }

    #[test]
    fn shares_over_many_clients_follow_weights() {
        let w = [1, 2, 3, 4];
        let t = ShTable::build(&w).with_seed(99);
        let s = weights(&w);
        let n = 100_000;
        let mut count = [0u32; 4];
        for c in clients(7, n) {
            count[t.pick(&s, &flow(c)).unwrap()] += 1;
        }
        for (i, &c) in count.iter().enumerate() {
            let share = f64::from(c) / n as f64;
            let want = f64::from(w[i]) / 10.0;
            assert!((share - want).abs() < 0.02, "server {i}: {share} vs {want}");
        }
    }

    #[test]
    fn down_server_clients_get_none_without_fallback() {
        let t = ShTable::build(&[1, 1, 1]);
        let down = weights(&[1, 0, 1]);
        for c in clients(3, 500) {
            let home = t.lookup(FlowHasher::default().client(c));
            let got = t.pick(&down, &flow(c));
            if home == Some(1) {
                assert_eq!(got, None);
            } else {
                assert_eq!(got, home);
            }
        }
    }

    #[test]
    fn down_server_clients_move_others_stay_with_fallback() {
        let t = ShTable::build(&[1, 1, 1]).with_fallback(true);
        let up = weights(&[1, 1, 1]);
        let down = weights(&[1, 0, 1]);
        let mut moved_to = [0; 3];
        for c in clients(5, 3000) {
            let before = t.pick(&up, &flow(c)).unwrap();
            let after = t.pick(&down, &flow(c)).unwrap();
            if before == 1 {
                moved_to[after] += 1;
            } else {
                assert_eq!(after, before, "client {c} moved");
            }
        }
        // The down server's clients spread over both others.
        assert_eq!(moved_to[1], 0);
        assert!(moved_to[0] > 300 && moved_to[2] > 300, "{moved_to:?}");
    }

    #[test]
    fn fallback_finds_the_only_available_server() {
        let t = ShTable::build(&[1; 100]).with_fallback(true);
        let mut s = weights(&[0; 100]);
        s[57].weight = 1;
        for c in clients(11, 50) {
            assert_eq!(t.pick(&s, &flow(c)), Some(57));
        }
    }

    #[test]
    fn all_zero_weights_build_an_empty_table() {
        let t = ShTable::build(&[0, 0]).with_fallback(true);
        assert_eq!(t.lookup(12345), None);
        assert_eq!(t.pick(&weights(&[1, 1]), &flow(Ipv4Addr::LOCALHOST)), None);
    }

    #[test]
    fn table_for_more_servers_than_passed_never_returns_out_of_range() {
        let t = ShTable::build(&[1; 8]).with_fallback(true);
        let s = weights(&[1, 1]);
        for c in clients(13, 300) {
            assert!(t.pick(&s, &flow(c)).unwrap() < 2);
        }
    }
}
