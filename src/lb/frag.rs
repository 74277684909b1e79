//! IPv4 fragments of known connections, forwarded without reassembly.
//!
//! Only the first fragment of a datagram (offset 0, More Fragments set)
//! carries the TCP/UDP ports, so only it can be decided like any packet
//! of its connection. Its decision, reduced to what an IP header needs
//! ([`FragRoute`]: which real server by which method, or which client from
//! which VIP), is kept here for a short lifetime under the datagram's
//! identity (source, destination, protocol, IP identification: RFC 791's
//! reassembly key). Later fragments of the datagram look it up and follow,
//! rewritten at the IP level only: the L4 header (ports, checksum) is in
//! the first fragment, and the checksum's incremental patch there is
//! right for the whole datagram, since it is a sum over all of it.
//!
//! Later fragments that arrive before their first one wait in a small
//! queue (the frame handle is generic: this module knows no mbuf) and are
//! released when it comes, or dropped when they have waited the
//! lifetime. Everything is sized at start: the table is set-associative
//! (a set of [`WAYS`] slots per hash, the oldest evicted when all are
//! live), the queue a fixed number of frames. A flood of fragments with
//! random identifications costs at most the queue's frames and the
//! table's slots, never memory.
//!
//! Time is passed in (`now`, nanoseconds); nothing here reads a clock.

use super::kind::ForwardMethod;
use std::net::Ipv4Addr;

/// How long a first fragment's decision, and a fragment waiting for its
/// first, are kept (nanoseconds). Fragments of one datagram leave their
/// sender together; two seconds covers any reordering a network does
/// while keeping identification reuse (65536 ids per source, destination
/// and protocol) far away at the rates one client sends fragments.
pub const LIFETIME_NS: u64 = 2_000_000_000;

/// Decisions a worker keeps at once by default.
pub const DEFAULT_ENTRIES: usize = 1024;

/// Fragments a worker holds at once waiting for their first by default.
pub const DEFAULT_QUEUE: usize = 64;

/// Slots per set of the table: a datagram's decision lives in one of the
/// `WAYS` slots of the set its key hashes to.
pub const WAYS: usize = 4;

/// The identity of one datagram, as RFC 791 reassembly keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub protocol: u8,
    /// IP identification.
    pub ident: u16,
}

/// The identity of a datagram as the table keys it: [`FragKey`] for
/// IPv4, `lb::frag6::FragKey6` for IPv6 (the table is generic so both
/// families share its bounds and policy).
pub trait FragId: Copy + Eq + std::fmt::Debug {
    /// A hash of the key under `seed` (to pick the set).
    fn hash(&self, seed: u64) -> u64;
}

impl FragId for FragKey {
    fn hash(&self, seed: u64) -> u64 {
        let a = u64::from(u32::from(self.src)) << 32 | u64::from(u32::from(self.dst));
        let b = u64::from(self.protocol) << 16 | u64::from(self.ident);
        let mut h = (a ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = (h ^ b).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 32)
    }
}

/// What later fragments of a datagram do: the first fragment's decision,
/// reduced to the IP level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragRoute {
    /// A client's datagram: to this real server by `method` (NAT rewrites
    /// the destination address to it; DR and TUN leave the header).
    ToRealServer {
        /// NAT, DR or TUN.
        method: ForwardMethod,
        /// The real server's address.
        real: Ipv4Addr,
    },
    /// A NAT real server's reply: the source becomes `vip`, routed to
    /// the client (the destination, unchanged).
    ToClient {
        /// The service's address.
        vip: Ipv4Addr,
    },
    /// A FullNAT datagram, either way: both addresses become these (to
    /// the real server from the local address, or to the client from the
    /// VIP); routed to `dst`.
    FullNat {
        /// The new source address.
        src: Ipv4Addr,
        /// The new destination address.
        dst: Ipv4Addr,
    },
    /// TUN, IPv4-in-IPv6: a client's datagram to a real server reached
    /// over IPv6, each fragment unchanged inside IPv6 toward `real`.
    Tun6 {
        /// The real server's IPv6 address.
        real: std::net::Ipv6Addr,
    },
}

/// One kept decision.
#[derive(Clone, Copy, Debug)]
struct Entry<K, R> {
    key: K,
    route: R,
    since: u64,
}

/// A later fragment waiting for its datagram's first fragment.
#[derive(Debug)]
pub struct Waiting<F, K = FragKey> {
    /// Its datagram.
    pub key: K,
    /// When it arrived.
    pub since: u64,
    /// The frame.
    pub frame: F,
}

/// What [`FragTable::record`] did with the slot it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A free or expired slot, or the same datagram's (identification
    /// reused, or the first fragment sent again).
    Fresh,
    /// The oldest live decision of the set made room.
    Evicted,
}

/// One worker's fragment state: the first fragments' decisions and the
/// queue of fragments that came before their first (see the module doc).
#[derive(Debug)]
pub struct FragTable<F, K = FragKey, R = FragRoute> {
    slots: Vec<Option<Entry<K, R>>>,
    sets: usize,
    waiting: Vec<Waiting<F, K>>,
    queue: usize,
    lifetime: u64,
    seed: u64,
    evicted: u64,
}

impl<F, K: FragId, R: Copy> FragTable<F, K, R> {
    /// A table of `entries` decisions (rounded up to whole sets of
    /// [`WAYS`]) and a queue of `queue` frames, each kept `lifetime_ns`;
    /// all memory is taken here.
    pub fn new(entries: usize, queue: usize, lifetime_ns: u64, seed: u64) -> FragTable<F, K, R> {
        let sets = entries.div_ceil(WAYS).max(1);
        FragTable {
            slots: vec![None; sets * WAYS],
            sets,
            waiting: Vec::with_capacity(queue),
            queue,
            lifetime: lifetime_ns,
            seed,
            evicted: 0,
        }
    }

    /// The slots of `key`'s set.
    fn set(&self, key: &K) -> std::ops::Range<usize> {
        let start = (key.hash(self.seed) % self.sets as u64) as usize * WAYS;
        start..start + WAYS
    }

    fn live(&self, e: &Entry<K, R>, now: u64) -> bool {
        now.saturating_sub(e.since) < self.lifetime
    }

    /// Keeps the first fragment's decision `route` for datagram `key` from
    /// `now`: in the datagram's own slot (identification reused), else a
    /// free or expired one of its set, else the oldest of the set.
    pub fn record(&mut self, key: K, route: R, now: u64) -> Recorded {
        let range = self.set(&key);
        let mut free = None;
        let mut oldest = range.start;
        for i in range {
            match &self.slots[i] {
                Some(e) if e.key == key => {
                    free = Some(i);
                    break;
                }
                Some(e) if self.live(e, now) => {
                    let old = self.slots[oldest].map_or(u64::MAX, |o| o.since);
                    if e.since < old {
                        oldest = i;
                    }
                }
                _ => {
                    if free.is_none() {
                        free = Some(i);
                    }
                }
            }
        }
        let (slot, outcome) = match free {
            Some(i) => (i, Recorded::Fresh),
            None => {
                self.evicted += 1;
                (oldest, Recorded::Evicted)
            }
        };
        self.slots[slot] = Some(Entry {
            key,
            route,
            since: now,
        });
        outcome
    }

    /// The decision a later fragment of datagram `key` follows, while its
    /// first fragment's is still live.
    pub fn lookup(&self, key: &K, now: u64) -> Option<R> {
        self.slots[self.set(key)]
            .iter()
            .flatten()
            .find(|e| e.key == *key && self.live(e, now))
            .map(|e| e.route)
    }

    /// Forgets datagram `key`'s decision (its first fragment was refused
    /// after all: later fragments must not follow an old one).
    pub fn forget(&mut self, key: &K) {
        let range = self.set(key);
        for slot in &mut self.slots[range] {
            if slot.is_some_and(|e| e.key == *key) {
                *slot = None;
            }
        }
    }

    /// Queues `frame`, a later fragment of datagram `key` that came before
    /// its first; gives it back when the queue is full.
    pub fn wait(&mut self, key: K, frame: F, now: u64) -> Result<(), F> {
        if self.waiting.len() >= self.queue {
            return Err(frame);
        }
        self.waiting.push(Waiting {
            key,
            since: now,
            frame,
        });
        Ok(())
    }

    /// Takes one queued fragment of datagram `key` (its first fragment
    /// has come), oldest first; `None` when none is left.
    pub fn take_waiting(&mut self, key: &K) -> Option<Waiting<F, K>> {
        let i = self.waiting.iter().position(|w| w.key == *key)?;
        Some(self.waiting.remove(i))
    }

    /// Removes the queued fragments that have waited the lifetime at
    /// `now`, handing each to `expired`.
    pub fn expire(&mut self, now: u64, mut expired: impl FnMut(Waiting<F, K>)) {
        let lifetime = self.lifetime;
        let mut i = 0;
        while i < self.waiting.len() {
            if now.saturating_sub(self.waiting[i].since) >= lifetime {
                expired(self.waiting.remove(i));
            } else {
                i += 1;
            }
        }
    }

    /// Fragments queued now.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Fragments the queue holds at most.
    pub fn queue_capacity(&self) -> usize {
        self.queue
    }

    /// Decisions the table holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Live decisions evicted to make room for newer ones, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(198, 51, 100, 10),
            dst: Ipv4Addr::new(203, 0, 113, 100),
            protocol: 17,
            ident,
        }
    }

    fn to_real(last: u8) -> FragRoute {
        FragRoute::ToRealServer {
            method: ForwardMethod::Nat,
            real: Ipv4Addr::new(192, 0, 2, last),
        }
    }

    fn table() -> FragTable<u32> {
        FragTable::new(DEFAULT_ENTRIES, 4, LIFETIME_NS, 7)
    }

    #[test]
    fn later_fragments_follow_the_first_fragments_decision() {
        let mut t = table();
        assert_eq!(t.record(key(1), to_real(2), 0), Recorded::Fresh);
        assert_eq!(t.lookup(&key(1), SEC / 10), Some(to_real(2)));
    }

    #[test]
    fn a_fragment_of_another_datagram_finds_nothing() {
        let mut t = table();
        t.record(key(1), to_real(2), 0);
        assert_eq!(t.lookup(&key(2), 0), None);
        let other_src = FragKey {
            src: Ipv4Addr::new(198, 51, 100, 11),
            ..key(1)
        };
        assert_eq!(t.lookup(&other_src, 0), None);
    }

    #[test]
    fn a_fragment_before_its_first_waits_and_is_released_when_it_comes() {
        let mut t = table();
        assert!(t.lookup(&key(1), 0).is_none());
        t.wait(key(1), 10, 0).unwrap();
        t.wait(key(2), 20, 0).unwrap();
        t.wait(key(1), 11, 1).unwrap();
        assert_eq!(t.waiting(), 3);
        t.record(key(1), to_real(2), 5);
        assert_eq!(t.take_waiting(&key(1)).map(|w| w.frame), Some(10));
        assert_eq!(t.take_waiting(&key(1)).map(|w| w.frame), Some(11));
        assert!(t.take_waiting(&key(1)).is_none());
        assert_eq!(t.waiting(), 1, "the other datagram's fragment stays");
    }

    #[test]
    fn a_decision_expires_after_the_lifetime() {
        let mut t = table();
        t.record(key(1), to_real(2), SEC);
        assert!(t.lookup(&key(1), SEC + LIFETIME_NS - 1).is_some());
        assert!(t.lookup(&key(1), SEC + LIFETIME_NS).is_none());
    }

    #[test]
    fn a_waiting_fragment_is_dropped_after_the_lifetime() {
        let mut t = table();
        t.wait(key(1), 10, 0).unwrap();
        t.wait(key(2), 20, SEC).unwrap();
        let mut gone = Vec::new();
        t.expire(LIFETIME_NS, |w| gone.push(w.frame));
        assert_eq!(gone, vec![10]);
        assert_eq!(t.waiting(), 1);
        t.expire(SEC + LIFETIME_NS, |w| gone.push(w.frame));
        assert_eq!(gone, vec![10, 20]);
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn a_reused_identification_takes_the_new_decision() {
        let mut t = table();
        t.record(key(1), to_real(2), 0);
        assert_eq!(t.record(key(1), to_real(3), 10), Recorded::Fresh);
        assert_eq!(t.lookup(&key(1), 10), Some(to_real(3)));
        assert_eq!(t.evicted(), 0);
    }

    #[test]
    fn a_forgotten_decision_is_not_followed() {
        let mut t = table();
        t.record(key(1), to_real(2), 0);
        t.forget(&key(1));
        assert_eq!(t.lookup(&key(1), 0), None);
    }

    #[test]
    fn a_full_set_evicts_its_oldest_decision() {
        // One set: every key lands in it.
        let mut t: FragTable<u32> = FragTable::new(WAYS, 4, LIFETIME_NS, 7);
        assert_eq!(t.capacity(), WAYS);
        for i in 0..WAYS as u16 {
            assert_eq!(t.record(key(i), to_real(2), u64::from(i)), Recorded::Fresh);
        }
        assert_eq!(t.record(key(100), to_real(3), 50), Recorded::Evicted);
        assert_eq!(t.evicted(), 1);
        assert_eq!(t.lookup(&key(0), 50), None, "the oldest made room");
        for i in 1..WAYS as u16 {
            assert!(t.lookup(&key(i), 50).is_some());
        }
        assert_eq!(t.lookup(&key(100), 50), Some(to_real(3)));
    }

    #[test]
    fn an_expired_slot_is_reused_before_a_live_one_is_evicted() {
        let mut t: FragTable<u32> = FragTable::new(WAYS, 4, LIFETIME_NS, 7);
        t.record(key(0), to_real(2), 0);
        for i in 1..WAYS as u16 {
            t.record(key(i), to_real(2), LIFETIME_NS);
        }
        assert_eq!(
            t.record(key(100), to_real(3), LIFETIME_NS + 1),
            Recorded::Fresh
        );
        for i in 1..WAYS as u16 {
            assert!(t.lookup(&key(i), LIFETIME_NS + 1).is_some());
        }
    }

    #[test]
    fn a_full_queue_gives_the_fragment_back() {
        let mut t = table();
        for i in 0..4 {
            t.wait(key(i), u32::from(i), 0).unwrap();
        }
        assert_eq!(t.wait(key(9), 99, 0), Err(99));
        assert_eq!(t.waiting(), t.queue_capacity());
    }

    #[test]
    fn a_flood_of_identifications_stays_within_the_sizes_given() {
        let mut t: FragTable<u32> = FragTable::new(64, 8, LIFETIME_NS, 7);
        let mut refused = 0;
        for i in 0..=u16::MAX {
            t.record(key(i), to_real(2), u64::from(i));
            if t.wait(key(i.wrapping_add(1)), u32::from(i), 0).is_err() {
                refused += 1;
            }
        }
        assert_eq!(t.capacity(), 64);
        assert_eq!(t.waiting(), 8);
        assert_eq!(refused, 65536 - 8);
        assert_eq!(t.evicted(), 65536 - 64);
    }
}
