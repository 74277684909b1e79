//! Admission limits: what a virtual server and its real servers refuse
//! before any connection state is made.
//!
//! The limits are per worker, like every other piece of balancer state (no
//! locks, no atomics on the packet path). What each means with N workers:
//!
//! - **Real-server thresholds** (`upper_threshold`/`lower_threshold`, IPVS's
//!   `ipvsadm -x`/`-y`): each worker holds `max(1, upper / N)` (and
//!   `max(1, lower / N)`) of the configured value and compares it with its
//!   own active + inactive count of the server. RSS spreads clients evenly,
//!   so the server sees at most about `upper` connections in all (never more
//!   than `N * max(1, upper / N)`); with one worker the threshold is exact.
//!   A global threshold would need every worker's counts summed on every
//!   new connection, which means shared atomics on the packet path.
//! - **New-connection rate** (`new_conn_rate`/`new_conn_burst`): a token
//!   bucket per worker filled at `rate / N` per second (exact fractions:
//!   the bucket counts in nanotokens) holding up to `max(burst, N) / N`
//!   tokens, so the service as a whole admits `rate` per second with bursts
//!   of `burst` when clients spread evenly, and exactly that with one
//!   worker.
//! - **Per-client-prefix limit** (`max_conns_per_client`,
//!   `client_prefix_len`): see `clients`: counted on the worker that owns
//!   the client, which RSS chooses by the client's whole address.
//!
//! IPVS's rules for the thresholds (ipvsadm(8), `ip_vs_bind_dest` and
//! `ip_vs_unbind_dest`), which [`Thresholds`] follows: a server whose
//! connections (active + inactive) reach the upper threshold when one is
//! created is overloaded and gets no new connections; it takes them again
//! once a removal brings its count below the lower threshold, or, with no
//! lower threshold, below three quarters of the upper one. Unlike IPVS,
//! rvs's persistence templates are not connections and do not count.

use super::tcp_state::State;

/// A real server's connection thresholds; 0 is unset (IPVS's convention).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// Connections at which the server becomes overloaded (`-x`).
    pub upper: u32,
    /// Connections below which an overloaded server takes new ones again
    /// (`-y`); 0: below 3/4 of `upper`.
    pub lower: u32,
}

impl Thresholds {
    /// No thresholds.
    pub const NONE: Thresholds = Thresholds { upper: 0, lower: 0 };

    /// True when neither threshold is set.
    pub fn is_none(self) -> bool {
        self.upper == 0
    }

    /// One worker's share of the thresholds among `workers` (see the module
    /// doc): each set value divided, at least 1.
    pub fn per_worker(self, workers: u32) -> Thresholds {
        let w = workers.max(1);
        let share = |v: u32| if v == 0 { 0 } else { (v / w).max(1) };
        Thresholds {
            upper: share(self.upper),
            lower: share(self.lower),
        }
    }

    /// Whether the server is overloaded once a connection was added and it
    /// has `total` (active + inactive).
    #[inline]
    pub fn after_create(self, overloaded: bool, total: u32) -> bool {
        overloaded || (self.upper != 0 && total >= self.upper)
    }

    /// Whether the server is still overloaded once a connection was removed
    /// and it has `total` left.
    #[inline]
    pub fn after_remove(self, overloaded: bool, total: u32) -> bool {
        if !overloaded || self.upper == 0 {
            return false;
        }
        if self.lower != 0 {
            total >= self.lower
        } else {
            u64::from(total) * 4 >= u64::from(self.upper) * 3
        }
    }

    /// The state to keep when the thresholds change (a reload) and the
    /// server has `total`: overloaded at or above the new upper threshold,
    /// still overloaded if it was and has not fallen below the new lower
    /// one.
    pub fn rechecked(self, overloaded: bool, total: u32) -> bool {
        self.after_create(false, total) || self.after_remove(overloaded, total)
    }
}

/// A virtual server's new-connection rate: `per_second` on average,
/// `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// New connections a second, at least 1.
    pub per_second: u32,
    /// New connections admitted at once after a quiet time, at least 1.
    pub burst: u32,
}

const NANOS: u64 = 1_000_000_000;

/// One worker's token bucket for a [`Rate`] shared by `workers`: starts
/// full; a new connection takes one token. Counted in units of
/// 1/(`workers` × 10⁹) token so that `per_second / workers` needs no
/// rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: Rate,
    /// Units per token: `workers` × 10⁹.
    cost: u64,
    /// Most units the bucket holds: `max(burst, workers)` × 10⁹, so each
    /// worker holds at least one token.
    cap: u64,
    credit: u64,
    /// When the bucket was last filled; `None` before the first take.
    filled_at: Option<u64>,
}

impl TokenBucket {
    /// A full bucket for `rate` among `workers`.
    pub fn new(rate: Rate, workers: u32) -> TokenBucket {
        let w = u64::from(workers.max(1));
        let cap = u64::from(rate.burst.max(1)).max(w) * NANOS;
        TokenBucket {
            rate,
            cost: w * NANOS,
            cap,
            credit: cap,
            filled_at: None,
        }
    }

    /// The rate it enforces.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes a token at `now` (nanoseconds) if there is one.
    #[inline]
    pub fn try_take(&mut self, now: u64) -> bool {
        let elapsed = self.filled_at.map_or(0, |t| now.saturating_sub(t));
        self.filled_at = Some(now);
        let room = self.cap - self.credit;
        let added = elapsed
            .saturating_mul(u64::from(self.rate.per_second))
            .min(room);
        self.credit += added;
        if self.credit >= self.cost {
            self.credit -= self.cost;
            true
        } else {
            false
        }
    }
}

/// A virtual server's limit of concurrent connections per client prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimit {
    /// Connections a client prefix may hold at once (per worker), at
    /// least 1.
    pub max_conns: u32,
    /// How many leading bits of the client's address make its prefix, 0
    /// to 32 (32: each address on its own).
    pub prefix_len: u8,
}

impl ClientLimit {
    /// The prefix `client` is counted under.
    #[inline]
    /// For an IPv6 client, its /64 (`lb::family::IPV6_CLIENT_PREFIX`),
    /// folded to 32 bits.
    pub fn prefix<A: crate::lb::family::IpFamily>(self, client: A) -> u32 {
        client.prefix_key(A::client_prefix_len(self.prefix_len))
    }
}

/// True when a connection in `state` holds a place in its client's
/// `max_conns_per_client` count: every UDP connection, and TCP ones until
/// either side starts closing (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT,
/// CLOSE). A closing connection still lives in the table (and counts for
/// the thresholds, as in IPVS), but a client making many short
/// connections must not find itself limited by their TIME_WAIT (as
/// netfilter's `connlimit` skips closed connections).
#[inline]
pub fn holds_client_slot(proto: u8, state: State) -> bool {
    proto != 6
        || !matches!(
            state,
            State::FinWait | State::CloseWait | State::LastAck | State::TimeWait | State::Close
        )
}

/// Every admission limit of one virtual server, as the service snapshot
/// carries it (read-only; the per-worker state is in the balancer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Which clients may open connections.
    pub acl: super::acl::Acl,
    /// New connections a second; `None`: unlimited.
    pub rate: Option<Rate>,
    /// Concurrent connections per client prefix; `None`: unlimited.
    pub per_client: Option<ClientLimit>,
}

/// Refusals of one virtual server on one worker, indexed by
/// `LimitRefusal as usize`.
pub type RefusalCounts = [u64; LimitRefusal::COUNT];

/// Why a limit refused a new connection; each is counted on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitRefusal {
    /// The client is not allowed by the service's `allow`/`deny` lists.
    AclDenied,
    /// The service's new-connection rate was exceeded.
    RateLimited,
    /// The client's prefix holds `max_conns_per_client` connections.
    ClientLimit,
    /// Every real server that could take it is at its upper threshold.
    Overloaded,
}

impl LimitRefusal {
    /// Every reason, in counter order.
    pub const ALL: [LimitRefusal; 4] = [
        LimitRefusal::AclDenied,
        LimitRefusal::RateLimited,
        LimitRefusal::ClientLimit,
        LimitRefusal::Overloaded,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The name in `rvsadm list`, metrics and docs (the drop reason's).
    pub fn name(self) -> &'static str {
        match self {
            LimitRefusal::AclDenied => "acl_denied",
            LimitRefusal::RateLimited => "rate_limited",
            LimitRefusal::ClientLimit => "client_limit",
            LimitRefusal::Overloaded => "rs_overloaded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_server_is_overloaded_when_a_connection_reaches_the_upper_threshold() {
        let t = Thresholds { upper: 3, lower: 0 };
        assert!(!t.after_create(false, 2));
        assert!(t.after_create(false, 3));
        assert!(t.after_create(true, 1), "stays overloaded until a removal");
    }

    #[test]
    fn without_a_lower_threshold_it_recovers_below_three_quarters_of_the_upper() {
        let t = Thresholds { upper: 8, lower: 0 };
        assert!(t.after_remove(true, 7));
        assert!(t.after_remove(true, 6), "6 is 3/4 of 8: not below");
        assert!(!t.after_remove(true, 5));
    }

    #[test]
    fn with_a_lower_threshold_it_recovers_below_it() {
        let t = Thresholds {
            upper: 10,
            lower: 4,
        };
        assert!(t.after_remove(true, 4));
        assert!(!t.after_remove(true, 3));
        assert!(!t.after_remove(false, 9), "not overloaded stays so");
    }

    #[test]
    fn no_upper_threshold_never_overloads() {
        assert!(!Thresholds::NONE.after_create(false, u32::MAX));
        assert!(!Thresholds::NONE.after_remove(true, u32::MAX));
        assert!(Thresholds::NONE.is_none());
    }

    #[test]
    fn each_worker_holds_its_share_of_the_thresholds_at_least_one() {
        let t = Thresholds {
            upper: 10,
            lower: 6,
        };
        assert_eq!(t.per_worker(1), t);
        assert_eq!(t.per_worker(4), Thresholds { upper: 2, lower: 1 });
        assert_eq!(t.per_worker(20), Thresholds { upper: 1, lower: 1 });
        assert_eq!(Thresholds::NONE.per_worker(4), Thresholds::NONE);
    }

    #[test]
    fn a_reload_keeps_an_overload_between_the_new_thresholds() {
        let t = Thresholds { upper: 4, lower: 2 };
        assert!(t.rechecked(false, 4));
        assert!(t.rechecked(true, 3));
        assert!(!t.rechecked(false, 3));
        assert!(!t.rechecked(true, 1));
    }

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let mut b = TokenBucket::new(
            Rate {
                per_second: 10,
                burst: 3,
            },
            1,
        );
        assert!((0..3).all(|_| b.try_take(0)));
        assert!(!b.try_take(0));
        assert!(!b.try_take(99 * MS), "a token takes 100 ms at 10/s");
        assert!(b.try_take(100 * MS));
        assert!(!b.try_take(100 * MS));
    }

    #[test]
    fn a_bucket_never_holds_more_than_its_burst() {
        let mut b = TokenBucket::new(
            Rate {
                per_second: 1000,
                burst: 2,
            },
            1,
        );
        assert!(b.try_take(0));
        let admitted = (0..10).filter(|_| b.try_take(3_600 * NANOS)).count();
        assert_eq!(admitted, 2);
    }

    #[test]
    fn each_worker_fills_at_its_share_of_the_rate() {
        // 3/s among 2 workers: 1.5/s each, one token every 666.7 ms.
        let mut b = TokenBucket::new(
            Rate {
                per_second: 3,
                burst: 2,
            },
            2,
        );
        assert!(b.try_take(0), "a share of the burst: one token");
        assert!(!b.try_take(0));
        assert!(!b.try_take(666 * MS));
        assert!(b.try_take(667 * MS));
        let admitted = (1..=30)
            .filter(|s| b.try_take(667 * MS + s * NANOS))
            .count();
        assert_eq!(admitted, 30, "at most one token of burst per worker");
    }

    #[test]
    fn a_slow_rate_among_many_workers_still_admits_over_time() {
        let mut b = TokenBucket::new(
            Rate {
                per_second: 1,
                burst: 1,
            },
            4,
        );
        assert!(b.try_take(0));
        assert!(!b.try_take(3 * NANOS));
        assert!(b.try_take(4 * NANOS));
    }

    #[test]
    fn closing_tcp_connections_hold_no_client_place_udp_ones_always_do() {
        assert!(holds_client_slot(6, State::SynRecv));
        assert!(holds_client_slot(6, State::Established));
        for s in [
            State::FinWait,
            State::TimeWait,
            State::Close,
            State::CloseWait,
        ] {
            assert!(!holds_client_slot(6, s), "{s:?}");
        }
        assert!(holds_client_slot(17, State::Close));
    }

    #[test]
    fn the_client_prefix_keeps_the_leading_bits() {
        let ip = Ipv4Addr::new(198, 51, 100, 77);
        let l = |prefix_len| ClientLimit {
            max_conns: 1,
            prefix_len,
        };
        assert_eq!(l(32).prefix(ip), u32::from(ip));
        assert_eq!(l(24).prefix(ip), u32::from(Ipv4Addr::new(198, 51, 100, 0)));
        assert_eq!(l(0).prefix(ip), 0);
    }
}
