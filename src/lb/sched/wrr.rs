//! Weighted round robin, as IPVS's `wrr` does it.
//!
//! The algorithm (from the description in IPVS's `ip_vs_wrr.c`): keep a
//! position in the list and a current weight `cw`. Walk the list; each time
//! the walk wraps to the start, lower `cw` by `g`, the gcd of all weights,
//! and when it would reach zero set it back to the maximum weight `mw`. The
//! first server met whose weight is at least `cw` is picked. So with weights
//! A=3, B=2, C=1 the passes at cw = 3, 2, 1 give `A`, `A B`, `A B C`: the
//! cycle is `A A B A B C`, interleaved rather than a burst of three A's.
//! One cycle is `sum(w) / g` picks in which each server appears exactly
//! `w / g` times, and a weight-0 server is never met (cw >= g >= 1).
//!
//! The caller passes the whole list each time and may have changed it since
//! the last pick (a weight change, a server down, a reload). Rather than
//! trust a message to reset us, each pick fingerprints the weights (one
//! multiply per server, over a list the pick walks anyway) and starts a new
//! cycle when they changed, as IPVS does when a destination changes.
//! A fingerprint collision could only leave `mw`/`g` stale: that skews the
//! shares until the next change but cannot loop, because the walk is
//! bounded.

use super::Candidate;

/// Fx-hash's multiplier: one multiply per weight, enough to tell lists
/// apart (this is not an adversarial setting: the weights are config).
const FP_MUL: u64 = 0x517c_c1b7_2722_0a95;

/// One worker's position in the weighted round robin of one virtual server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// Where a new cycle starts (taken modulo the list length).
    seed: u64,
    /// Fingerprint of the weights the fields below were computed for;
    /// `None` before the first pick.
    fingerprint: Option<u64>,
    /// The next index to examine.
    next: usize,
    /// Current weight: a multiple of `gcd` in `gcd..=max`, once started.
    cw: u32,
    /// The largest weight (0: no server takes new connections).
    max: u32,
    /// The gcd of the non-zero weights.
    gcd: u32,
}

impl WeightedRoundRobin {
    /// A round robin whose cycles start at index `seed mod n` with the
    /// current weight at its maximum. Seed 0 gives IPVS's sequence from the
    /// first server; other seeds give the same cycle from another point, so
    /// workers do not send their first connections to the same server.
    pub fn new(seed: u64) -> Self {
        WeightedRoundRobin {
            seed,
            fingerprint: None,
            next: 0,
            cw: 0,
            max: 0,
            gcd: 0,
        }
    }

    /// The next server in the cycle; `None` when no server has weight > 0.
    pub fn pick(&mut self, servers: &[Candidate]) -> Option<usize> {
        let n = servers.len();
        if n == 0 {
            return None;
        }
        let fp = fingerprint(servers);
        if self.fingerprint != Some(fp) {
            self.restart(servers, fp);
        }
        if self.max == 0 {
            return None;
        }
        // From any position: at most n - 1 steps to the end of the list,
        // then a wrap, then at most n steps to a server of maximum weight.
        for _ in 0..=2 * n {
            if self.next >= n {
                self.next = 0;
                self.cw = if self.cw > self.gcd {
                    self.cw - self.gcd
                } else {
                    self.max
                };
            }
            let i = self.next;
            self.next += 1;
            if servers[i].weight >= self.cw {
                return Some(i);
            }
        }
        // Only reachable after a fingerprint collision; recompute next time.
        self.fingerprint = None;
        None
    }

    /// Starts a new cycle for these weights.
    fn restart(&mut self, servers: &[Candidate], fp: u64) {
        self.fingerprint = Some(fp);
        self.max = servers.iter().map(|s| s.weight).max().unwrap_or(0);
        self.gcd = servers.iter().fold(0, |g, s| gcd(g, s.weight));
        self.cw = self.max;
        self.next = (self.seed % servers.len() as u64) as usize;
    }
}

/// A cheap fingerprint of the list's length and weights.
fn fingerprint(servers: &[Candidate]) -> u64 {
    servers.iter().fold(servers.len() as u64, |h, s| {
        (h.rotate_left(5) ^ u64::from(s.weight)).wrapping_mul(FP_MUL)
    })
}

/// Euclid's gcd; `gcd(0, x) == x`, so zero weights drop out of a fold.
pub(crate) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::sched::tests::weights;
    use proptest::prelude::*;

    fn picks(w: &mut WeightedRoundRobin, servers: &[Candidate], n: usize) -> Vec<usize> {
        (0..n).map(|_| w.pick(servers).unwrap()).collect()
    }

    #[test]
    fn sequence_for_3_2_1_is_the_interleaved_ipvs_cycle() {
        let s = weights(&[3, 2, 1]);
        let got = picks(&mut WeightedRoundRobin::new(0), &s, 12);
        assert_eq!(got, [0, 0, 1, 0, 1, 2, 0, 0, 1, 0, 1, 2]);
    }

    #[test]
    fn no_server_is_picked_weight_times_in_a_row() {
        let s = weights(&[3, 2, 1]);
        let got = picks(&mut WeightedRoundRobin::new(0), &s, 60);
        let longest = got
            .chunk_by(|a, b| a == b)
            .map(|run| run.len())
            .max()
            .unwrap();
        assert!(longest < 3, "a run of {longest} in {got:?}");
    }

    #[test]
    fn each_cycle_of_six_shares_3_2_1_exactly() {
        let s = weights(&[3, 2, 1]);
        let mut w = WeightedRoundRobin::new(0);
        for _ in 0..10 {
            let mut count = [0; 3];
            for i in picks(&mut w, &s, 6) {
                count[i] += 1;
            }
            assert_eq!(count, [3, 2, 1]);
        }
    }

    #[test]
    fn common_factor_shortens_the_cycle() {
        // gcd 2: the cycle is 4:2 / 2 = A A B, three picks long.
        let s = weights(&[4, 2]);
        let got = picks(&mut WeightedRoundRobin::new(0), &s, 6);
        assert_eq!(got, [0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn equal_weights_behave_as_round_robin() {
        let s = weights(&[5, 5, 5]);
        let got = picks(&mut WeightedRoundRobin::new(0), &s, 6);
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weight_zero_servers_are_never_picked() {
        let s = weights(&[0, 2, 0, 1]);
        let got = picks(&mut WeightedRoundRobin::new(3), &s, 30);
        assert!(got.iter().all(|&i| i == 1 || i == 3), "{got:?}");
    }

    #[test]
    fn all_zero_or_empty_gives_none() {
        let mut w = WeightedRoundRobin::new(0);
        assert_eq!(w.pick(&weights(&[0, 0, 0])), None);
        assert_eq!(w.pick(&[]), None);
    }

    #[test]
    fn weight_change_restarts_the_cycle() {
        let mut w = WeightedRoundRobin::new(0);
        let _ = picks(&mut w, &weights(&[3, 2, 1]), 4);
        // B drained: a fresh cycle over A=3, C=1 from the first server.
        let got = picks(&mut w, &weights(&[3, 0, 1]), 4);
        assert_eq!(got, [0, 0, 0, 2]);
    }

    #[test]
    fn seed_starts_the_same_cycle_elsewhere() {
        let s = weights(&[3, 2, 1]);
        // Index 1 at cw = 3: B is below, C is below, wrap to cw = 2...
        let got = picks(&mut WeightedRoundRobin::new(1), &s, 6);
        assert_eq!(got, [0, 1, 0, 1, 2, 0]);
    }

    /// Weights, and the length of one full cycle: sum / gcd.
    fn cycle(w: &[u32]) -> usize {
        let g = w.iter().fold(0, |g, &x| gcd(g, x));
        (w.iter().map(|&x| x as usize).sum::<usize>()) / g as usize
    }

    proptest! {
        #[test]
        fn any_full_cycle_shares_weights_exactly_and_skips_zeros(
            w in prop::collection::vec(prop_oneof![1 => Just(0u32), 4 => 1u32..100], 1..10)
                .prop_filter("some weight > 0", |w| w.iter().any(|&x| x > 0)),
            seed in any::<u64>(),
            warmup in 0usize..50,
        ) {
            let s = weights(&w);
            let mut rr = WeightedRoundRobin::new(seed);
            let _ = picks(&mut rr, &s, warmup);
            let g = w.iter().fold(0, |g, &x| gcd(g, x));
            let mut count = vec![0u32; w.len()];
            for i in picks(&mut rr, &s, cycle(&w)) {
                count[i] += 1;
            }
            let want: Vec<u32> = w.iter().map(|&x| x / g).collect();
            prop_assert_eq!(count, want);
        }
    }
}
