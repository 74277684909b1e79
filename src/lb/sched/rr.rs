//! Round robin (IPVS `rr`): each new connection goes to the next server in
//! the list that accepts new connections (weight > 0), wrapping at the end.
//! Weights other than zero do not matter; use `wrr` for that.
//!
//! Each worker keeps its own position, started from its seed, so workers do
//! not all begin with the first server after a start or a reload.

use super::Candidate;

/// The position of one worker's round robin over one virtual server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundRobin {
    /// The index to try first on the next pick (taken modulo the list
    /// length, so a shrunken list needs no reset).
    next: usize,
}

impl RoundRobin {
    /// Starts at index `seed mod n` (seed 0 starts at the first server, as
    /// IPVS does).
    pub fn new(seed: u64) -> Self {
        // Truncation on 32-bit targets is fine: any start will do.
        RoundRobin {
            next: seed as usize,
        }
    }

    /// The next server with weight > 0 at or after the current position;
    /// `None` when there is none.
    pub fn pick(&mut self, servers: &[Candidate]) -> Option<usize> {
        let n = servers.len();
        if n == 0 {
            return None;
        }
        if self.next >= n {
            self.next %= n;
        }
        let start = self.next;
        let i = (start..n)
            .chain(0..start)
            .find(|&i| servers[i].weight > 0)?;
        self.next = if i + 1 == n { 0 } else { i + 1 };
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::sched::tests::weights;

    fn picks(rr: &mut RoundRobin, servers: &[Candidate], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| rr.pick(servers)).collect()
    }

    #[test]
    fn cycles_through_servers_in_order() {
        let s = weights(&[1, 5, 1]);
        let got = picks(&mut RoundRobin::new(0), &s, 6);
        let want = [0, 1, 2, 0, 1, 2].map(Some);
        assert_eq!(got, want);
    }

    #[test]
    fn skips_weight_zero_servers() {
        let s = weights(&[0, 3, 0, 1, 0]);
        let got = picks(&mut RoundRobin::new(0), &s, 4);
        assert_eq!(got, [1, 3, 1, 3].map(Some));
    }

    #[test]
    fn shares_equally_over_many_picks() {
        let s = weights(&[1, 2, 0, 9]);
        let mut count = [0; 4];
        let mut rr = RoundRobin::new(12345);
        for _ in 0..300 {
            count[rr.pick(&s).unwrap()] += 1;
        }
        assert_eq!(count, [100, 100, 0, 100]);
    }

    #[test]
    fn seed_sets_the_starting_server() {
        let s = weights(&[1, 1, 1]);
        assert_eq!(RoundRobin::new(4).pick(&s), Some(1));
    }

    #[test]
    fn all_zero_or_empty_gives_none() {
        let mut rr = RoundRobin::new(0);
        assert_eq!(rr.pick(&weights(&[0, 0])), None);
        assert_eq!(rr.pick(&[]), None);
    }

    #[test]
    fn survives_the_list_shrinking() {
        let mut rr = RoundRobin::new(0);
        let _ = picks(&mut rr, &weights(&[1, 1, 1, 1]), 3);
        assert_eq!(rr.pick(&weights(&[1, 1])), Some(1));
    }
}
