//! Schedulers: which real server gets a new connection.
//!
//! The IPVS set, as pure functions of what a worker knows: `rr`, `wrr`
//! (stateful, one state per worker and virtual server), `lc`, `wlc`, `sed`,
//! `nq` (stateless: they read live connection counts), and the hashing
//! ones, `sh` (source hashing) and `mh` (Maglev), which read a table built
//! by control and shared by all workers through an `Arc`. Each file's top
//! comment gives its algorithm.
//!
//! The contract with the caller (the worker):
//! - It passes the virtual server's real servers as a slice of
//!   `Candidate`, in a fixed order; the pick is an index into that slice.
//! - Weight 0 means "no new connections": drained by the operator, or down
//!   by health check (the caller passes 0 then). No scheduler ever returns a
//!   weight-0 or out-of-range index, and `None` means nobody can take it.
//! - `pick` reads no clock, allocates nothing and never panics; its cost is
//!   O(servers) for `rr`/`wrr`/least-family and O(1) expected for `sh`/`mh`.
//!
//! Enum dispatch (`Scheduler`), not trait objects: one `match` the compiler
//! can see through, and no vtable call per new flow.

use super::family::IpFamily;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub mod hash;
pub mod least;
pub mod maglev;
pub mod rr;
pub mod sh;
pub mod wrr;

pub use maglev::{is_prime, MaglevError, MaglevTable};
pub use rr::RoundRobin;
pub use sh::ShTable;
pub use wrr::WeightedRoundRobin;

/// What a scheduler sees of one real server; its index is its position in
/// the virtual server's list. Connection counts are the caller's (IPVS's
/// `activeconns` / `inactconns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    /// Relative capacity; 0 = takes no new connections (drained or down).
    pub weight: u32,
    /// Connections carrying traffic (TCP established, for IPVS).
    pub active: u32,
    /// Other connections still in the table (TCP closing, UDP).
    pub inactive: u32,
    /// The weight `weight` ramps up to while the server is in its slow
    /// start (`lb::slow_start`); equal to `weight` (or 0, unknown)
    /// otherwise. Only `lc` reads it, the others' weights being ramped
    /// already.
    pub full: u32,
}

/// What the hashing schedulers hash of a new flow. `sh` and `mh` use the
/// client address only (IPVS's default), so every connection of a client
/// goes to one server; the port is here for a per-connection mode.
///
/// Over a client address of either family (`lb::family`): IPv4 by
/// default, `FlowHashInput<Ipv6Addr>` for IPv6 clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHashInput<A = Ipv4Addr> {
    /// The client's (source) address.
    pub client: A,
    /// The client's (source) port.
    pub client_port: u16,
}

pub use super::kind::SchedulerKind as Kind;

/// A table built by control for a hashing scheduler, shared read-only by
/// every worker (so all of them map a client alike).
// Always behind an `Arc`, so the 1 KiB `ShTable` inline costs nothing, and
// boxing it would add a pointer chase to every `sh` pick.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashTable {
    /// For `sh`.
    Sh(ShTable),
    /// For `mh`.
    Mh(MaglevTable),
}

impl HashTable {
    /// The scheduler kind this table serves.
    pub fn kind(&self) -> Kind {
        match self {
            HashTable::Sh(_) => Kind::Sh,
            HashTable::Mh(_) => Kind::Mh,
        }
    }

    /// The table's pick for this flow, honouring live weights.
    #[inline]
    pub fn pick<A: IpFamily>(
        &self,
        servers: &[Candidate],
        flow: &FlowHashInput<A>,
    ) -> Option<usize> {
        match self {
            HashTable::Sh(t) => t.pick(servers, flow),
            HashTable::Mh(t) => t.pick(servers, flow),
        }
    }
}

/// Why a scheduler could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerError {
    /// `sh` or `mh` without its table (none, or the other kind's).
    NeedsTable(Kind),
}

impl fmt::Display for SchedulerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedulerError::NeedsTable(k) => {
                write!(f, "scheduler {k} needs its hash table, which is missing")
            }
        }
    }
}

impl std::error::Error for SchedulerError {}

/// One worker's scheduler for one virtual server: the algorithm and its
/// per-worker state. Made when a config snapshot arrives; `pick` per new
/// connection.
#[derive(Clone, Debug)]
pub enum Scheduler {
    /// Round robin, with its position.
    Rr(RoundRobin),
    /// Weighted round robin, with its position and current weight.
    Wrr(WeightedRoundRobin),
    /// Least connections (stateless).
    Lc,
    /// Weighted least connections (stateless).
    Wlc,
    /// Shortest expected delay (stateless).
    Sed,
    /// Never queue (stateless).
    Nq,
    /// Source or Maglev hashing, over control's shared table.
    Hashed(Arc<HashTable>),
}

impl Scheduler {
    /// A scheduler of `kind`. `table` is required for `sh`/`mh` (of the
    /// matching kind) and ignored otherwise. `seed` sets where `rr`/`wrr`
    /// start (give each worker its own, so they do not all start on the
    /// same server); the hashing kinds take their seed from the table, as
    /// every worker must hash alike.
    pub fn new(
        kind: Kind,
        table: Option<Arc<HashTable>>,
        seed: u64,
    ) -> Result<Scheduler, SchedulerError> {
        Ok(match kind {
            Kind::Rr => Scheduler::Rr(RoundRobin::new(seed)),
            Kind::Wrr => Scheduler::Wrr(WeightedRoundRobin::new(seed)),
            Kind::Lc => Scheduler::Lc,
            Kind::Wlc => Scheduler::Wlc,
            Kind::Sed => Scheduler::Sed,
            Kind::Nq => Scheduler::Nq,
            Kind::Sh | Kind::Mh => match table {
                Some(t) if t.kind() == kind => Scheduler::Hashed(t),
                _ => return Err(SchedulerError::NeedsTable(kind)),
            },
        })
    }

    /// The algorithm.
    pub fn kind(&self) -> Kind {
        match self {
            Scheduler::Rr(_) => Kind::Rr,
            Scheduler::Wrr(_) => Kind::Wrr,
            Scheduler::Lc => Kind::Lc,
            Scheduler::Wlc => Kind::Wlc,
            Scheduler::Sed => Kind::Sed,
            Scheduler::Nq => Kind::Nq,
            Scheduler::Hashed(t) => t.kind(),
        }
    }

    /// Picks a server for a new flow: an index into `servers` whose weight
    /// is > 0, or `None` when there is none (or, for `sh`/`mh` without
    /// fallback, when the flow's server is unavailable).
    #[inline]
    pub fn pick<A: IpFamily>(
        &mut self,
        servers: &[Candidate],
        flow: &FlowHashInput<A>,
    ) -> Option<usize> {
        match self {
            Scheduler::Rr(s) => s.pick(servers),
            Scheduler::Wrr(s) => s.pick(servers),
            Scheduler::Lc => least::lc(servers),
            Scheduler::Wlc => least::wlc(servers),
            Scheduler::Sed => least::sed(servers),
            Scheduler::Nq => least::nq(servers),
            Scheduler::Hashed(t) => t.pick(servers, flow),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Idle servers with these weights.
    pub(crate) fn weights(w: &[u32]) -> Vec<Candidate> {
        w.iter()
            .map(|&weight| Candidate {
                weight,
                ..Candidate::default()
            })
            .collect()
    }

    /// `n` pseudo-random client addresses, the same for the same seed.
    pub(crate) fn clients(seed: u64, n: usize) -> Vec<Ipv4Addr> {
        (0..n as u64)
            .map(|i| Ipv4Addr::from(hash::mix64(seed << 32 | i) as u32))
            .collect()
    }

    fn flow(client: Ipv4Addr) -> FlowHashInput {
        FlowHashInput {
            client,
            client_port: 50000,
        }
    }

    fn table_for(kind: Kind, w: &[u32], fallback: bool) -> Option<Arc<HashTable>> {
        match kind {
            Kind::Sh => Some(HashTable::Sh(ShTable::build(w).with_fallback(fallback))),
            Kind::Mh => {
                let keyed: Vec<(u64, u32)> = w
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| (hash::mix64(i as u64), w))
                    .collect();
                let t = MaglevTable::build(&keyed, 251).unwrap();
                Some(HashTable::Mh(t.with_fallback(fallback)))
            }
            _ => None,
        }
        .map(Arc::new)
    }

    #[test]
    fn kind_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.to_string().parse::<Kind>(), Ok(k));
        }
        assert_eq!("wlc".parse::<Kind>(), Ok(Kind::Wlc));
    }

    #[test]
    fn unknown_kind_name_is_rejected_with_the_choices() {
        let e = "WRR".parse::<Kind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown value \"WRR\": expected one of \"rr\", \"wrr\", \"lc\", \"wlc\", \"sed\", \"nq\", \"sh\", \"mh\""
        );
    }

    #[test]
    fn hashing_kinds_need_their_own_table() {
        let sh = table_for(Kind::Sh, &[1], false);
        assert_eq!(
            Scheduler::new(Kind::Sh, None, 0).unwrap_err(),
            SchedulerError::NeedsTable(Kind::Sh)
        );
        assert_eq!(
            Scheduler::new(Kind::Mh, sh.clone(), 0).unwrap_err(),
            SchedulerError::NeedsTable(Kind::Mh)
        );
        assert_eq!(Scheduler::new(Kind::Sh, sh, 0).unwrap().kind(), Kind::Sh);
    }

    #[test]
    fn every_kind_reports_its_kind() {
        for k in Kind::ALL {
            let s = Scheduler::new(k, table_for(k, &[1, 1], false), 0).unwrap();
            assert_eq!(s.kind(), k);
            assert_eq!(k.needs_table(), matches!(k, Kind::Sh | Kind::Mh));
        }
    }

    #[test]
    fn dispatch_reaches_the_algorithm() {
        let f = flow(Ipv4Addr::new(192, 0, 2, 1));
        let mut wrr = Scheduler::new(Kind::Wrr, None, 0).unwrap();
        let s = weights(&[3, 2, 1]);
        let seq: Vec<_> = (0..6).map(|_| wrr.pick(&s, &f).unwrap()).collect();
        assert_eq!(seq, [0, 0, 1, 0, 1, 2]);
        let busy = [
            Candidate {
                weight: 1,
                active: 2,
                inactive: 0,
                full: 1,
            },
            Candidate {
                weight: 1,
                active: 1,
                inactive: 0,
                full: 1,
            },
        ];
        assert_eq!(
            Scheduler::new(Kind::Lc, None, 0).unwrap().pick(&busy, &f),
            Some(1)
        );
    }

    /// Live candidates: weights (often 0), counts, any length.
    fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec(
            (
                prop_oneof![Just(0u32), 1u32..5, any::<u32>()],
                any::<u32>(),
                any::<u32>(),
            ),
            0..12,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(weight, active, inactive)| Candidate {
                    weight,
                    active,
                    inactive,
                    full: weight,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn pick_returns_only_servers_with_weight(
            kind in prop::sample::select(Kind::ALL.to_vec()),
            built in prop::collection::vec(0u32..4, 0..12),
            fallback in any::<bool>(),
            live in candidates(),
            seed in any::<u64>(),
            picks in prop::collection::vec(any::<u32>(), 1..20),
        ) {
            // The table may be built for another list than the live one
            // (a reload in flight): still nothing out of range.
            let mut s = Scheduler::new(kind, table_for(kind, &built, fallback), seed).unwrap();
            let any_up = live.iter().any(|c| c.weight > 0);
            for client in picks {
                let got = s.pick(&live, &flow(Ipv4Addr::from(client)));
                if let Some(i) = got {
                    prop_assert!(i < live.len());
                    prop_assert!(live[i].weight > 0);
                }
                if !kind.needs_table() {
                    prop_assert_eq!(got.is_some(), any_up);
                }
            }
        }

        #[test]
        fn pick_on_an_empty_list_is_none(
            kind in prop::sample::select(Kind::ALL.to_vec()),
            built in prop::collection::vec(0u32..4, 0..12),
            seed in any::<u64>(),
        ) {
            let mut s = Scheduler::new(kind, table_for(kind, &built, true), seed).unwrap();
            prop_assert_eq!(s.pick(&[], &flow(Ipv4Addr::LOCALHOST)), None);
        }
    }
}
