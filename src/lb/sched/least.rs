//! The "least" family of IPVS schedulers: each picks the server that
//! minimises a cost, among servers with weight > 0.
//!
//! - `lc`, least connections: cost = `active * 256 + inactive`, IPVS's
//!   "overhead" (an active connection weighs as much as 256 inactive ones,
//!   which mostly sit in TIME_WAIT or are idle UDP entries). Weights are
//!   ignored, except during a server's slow start (`lb::slow_start`): its
//!   overhead is scaled by full / ramped weight, so it holds the ramped
//!   share of the others' connections instead of taking every new one
//!   until it has as many as they do.
//! - `wlc`, weighted least connections: cost = overhead / weight.
//! - `sed`, shortest expected delay: cost = (active + 1) / weight, the
//!   delay a new connection expects if each server serves its connections
//!   at a rate proportional to its weight.
//! - `nq`, never queue: an idle server (no active connection) if there is
//!   one, since a new connection there never waits; otherwise `sed`.
//!
//! Ratios are compared by cross-multiplying in u128 (`a/b < c/d` iff
//! `a*d < c*b`): exact, no division, and no overflow for any u32 counts and
//! weights (the overhead is below 2^41, a weight below 2^32).
//!
//! Ties go to the lowest index, as in IPVS (it replaces its candidate only
//! on a strictly smaller cost). Callers bump the chosen server's `active`
//! count when they create the connection, so the next pick moves on.

use super::Candidate;
use crate::lb::slow_start;

/// IPVS's overhead of a server: active connections weigh 256 inactive ones.
#[inline]
fn overhead(s: &Candidate) -> u128 {
    u128::from(s.active) * 256 + u128::from(s.inactive)
}

/// The index minimising `cost = num / den` among weight > 0 servers; the
/// lowest index on ties. `den` must be positive for those servers.
#[inline]
fn least(servers: &[Candidate], cost: impl Fn(&Candidate) -> (u128, u128)) -> Option<usize> {
    let mut best: Option<(usize, u128, u128)> = None;
    for (i, s) in servers.iter().enumerate() {
        if s.weight == 0 {
            continue;
        }
        let (num, den) = cost(s);
        match best {
            Some((_, bnum, bden)) if num * bden >= bnum * den => {}
            _ => best = Some((i, num, den)),
        }
    }
    best.map(|(i, _, _)| i)
}

/// Least connections: the smallest `active * 256 + inactive`, scaled by
/// full / ramped weight for a server in its slow start.
pub fn lc(servers: &[Candidate]) -> Option<usize> {
    least(servers, |s| {
        let (num, den) = slow_start::lc_scale(s.weight, s.full);
        (overhead(s) * u128::from(num), u128::from(den))
    })
}

/// Weighted least connections: the smallest overhead / weight.
pub fn wlc(servers: &[Candidate]) -> Option<usize> {
    least(servers, |s| (overhead(s), u128::from(s.weight)))
}

/// Shortest expected delay: the smallest (active + 1) / weight.
pub fn sed(servers: &[Candidate]) -> Option<usize> {
    least(servers, |s| {
        (u128::from(s.active) + 1, u128::from(s.weight))
    })
}

/// Never queue: the first server with weight > 0 and no active connection,
/// else the `sed` choice.
pub fn nq(servers: &[Candidate]) -> Option<usize> {
    servers
        .iter()
        .position(|s| s.weight > 0 && s.active == 0)
        .or_else(|| sed(servers))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Servers as (weight, active, inactive).
    fn servers(v: &[(u32, u32, u32)]) -> Vec<Candidate> {
        v.iter()
            .map(|&(weight, active, inactive)| Candidate {
                weight,
                active,
                inactive,
                full: weight,
            })
            .collect()
    }

    type Case = (&'static str, &'static [(u32, u32, u32)], Option<usize>);

    fn run(pick: fn(&[Candidate]) -> Option<usize>, cases: &[Case]) {
        for (what, list, want) in cases {
            assert_eq!(pick(&servers(list)), *want, "{what}");
        }
    }

    #[test]
    fn lc_picks_least_overhead() {
        run(
            lc,
            &[
                ("fewest active", &[(1, 3, 0), (1, 1, 0), (1, 2, 0)], Some(1)),
                (
                    "one active outweighs 255 inactive",
                    &[(1, 1, 0), (1, 0, 255)],
                    Some(1),
                ),
                (
                    "256 inactive tie one active: lowest index",
                    &[(1, 1, 0), (1, 0, 256)],
                    Some(0),
                ),
                ("weight ignored", &[(100, 2, 0), (1, 1, 0)], Some(1)),
                ("weight 0 skipped", &[(0, 0, 0), (1, 5, 0)], Some(1)),
                ("all zero weight", &[(0, 0, 0), (0, 0, 0)], None),
                ("empty", &[], None),
            ],
        );
    }

    #[test]
    fn wlc_picks_least_overhead_per_weight() {
        run(
            wlc,
            &[
                // 512/2 = 256 beats 300/1.
                ("weight divides", &[(1, 1, 44), (2, 2, 0)], Some(1)),
                (
                    "equal ratio: lowest index",
                    &[(1, 1, 0), (2, 2, 0)],
                    Some(0),
                ),
                ("idle server wins", &[(5, 1, 0), (1, 0, 0)], Some(1)),
                (
                    "weight 0 skipped even if idle",
                    &[(0, 0, 0), (1, 9, 9)],
                    Some(1),
                ),
                (
                    "no overflow at extremes",
                    &[(1, u32::MAX, u32::MAX), (u32::MAX, u32::MAX, u32::MAX)],
                    Some(1),
                ),
                ("empty", &[], None),
            ],
        );
    }

    #[test]
    fn sed_picks_least_expected_delay() {
        run(
            sed,
            &[
                // (1+1)/1 = 2 against (3+1)/3 = 1.33.
                (
                    "heavier server despite more active",
                    &[(1, 1, 0), (3, 3, 0)],
                    Some(1),
                ),
                // Both idle: 1/1 against 1/3, the heavier one.
                ("idle: heaviest", &[(1, 0, 0), (3, 0, 0)], Some(1)),
                ("inactive ignored", &[(1, 0, 1000), (1, 1, 0)], Some(0)),
                ("tie: lowest index", &[(2, 1, 0), (1, 0, 0)], Some(0)),
                ("weight 0 skipped", &[(0, 0, 0), (1, 7, 0)], Some(1)),
            ],
        );
    }

    #[test]
    fn nq_picks_an_idle_server_first_then_sed() {
        run(
            nq,
            &[
                // sed would pick index 1 ((0+1)/10); nq takes the first idle one.
                ("first idle", &[(1, 0, 0), (10, 0, 0)], Some(0)),
                (
                    "idle beats heavier busy",
                    &[(10, 1, 0), (1, 0, 50)],
                    Some(1),
                ),
                (
                    "idle with weight 0 skipped",
                    &[(0, 0, 0), (1, 2, 0), (3, 2, 0)],
                    Some(2),
                ),
                ("none idle: sed", &[(1, 1, 0), (3, 3, 0)], Some(1)),
                ("all zero weight", &[(0, 0, 0)], None),
            ],
        );
    }

    /// Picks `n` new long-lived connections with `lc` over `servers`
    /// (weight, full weight, active), each bumping its server's count;
    /// how many each server got.
    fn lc_share(servers: &[(u32, u32, u32)], n: usize) -> Vec<u32> {
        let mut list: Vec<Candidate> = servers
            .iter()
            .map(|&(weight, full, active)| Candidate {
                weight,
                active,
                inactive: 0,
                full,
            })
            .collect();
        let mut got = vec![0; list.len()];
        for _ in 0..n {
            let i = lc(&list).unwrap();
            list[i].active += 1;
            got[i] += 1;
        }
        got
    }

    #[test]
    fn lc_without_slow_start_fills_an_empty_server_first() {
        // Two servers at 100 connections, one back with none: the first
        // 100 new connections all go to it.
        let got = lc_share(&[(10, 10, 100), (10, 10, 100), (10, 10, 0)], 100);
        assert_eq!(got, [0, 0, 100]);
    }

    #[test]
    fn lc_honours_a_slow_start_ramp() {
        // The returning server at ramped weight 2 of 10 holds a fifth of
        // the others' connections: of 100 new ones it takes about 26
        // (it ends near (100 + 100 + 100) / 11 = 27), not all of them.
        let got = lc_share(&[(10, 10, 100), (10, 10, 100), (2, 10, 0)], 100);
        assert!((24..=28).contains(&got[2]), "{got:?}");
        assert_eq!(got.iter().sum::<u32>(), 100);
    }

    #[test]
    fn lc_share_of_a_ramping_server_grows_with_its_weight() {
        let share = |w| lc_share(&[(10, 10, 100), (10, 10, 100), (w, 10, 0)], 100)[2];
        let shares: Vec<u32> = [1, 2, 5, 8, 10].into_iter().map(share).collect();
        assert!(shares.windows(2).all(|p| p[0] < p[1]), "{shares:?}");
        assert_eq!(shares[4], 100, "full weight: plain lc");
    }
}
