//! FullNAT's local ports: which (local address, port) a worker gives a new
//! connection, and taking it back when the connection leaves the table.
//!
//! Why it is built this way:
//! - **Per worker, no sharing.** A worker only holds the local addresses
//!   (LIPs) the RSS model gives it (`RssModel::worker_of(lip)`): the NIC
//!   hashes a reply on its destination on the inside port, which is the
//!   LIP, so replies to a LIP come back to the one worker that hands out
//!   its ports. No locks, no atomics, and no port is ever given twice.
//! - **Preallocated, O(1), no allocation on the packet path.** Each (LIP,
//!   protocol) has a ring of its free ports, filled once when the pool is
//!   built, and a bitmap of the ports taken. Taking pops the ring's head,
//!   releasing pushes at its tail: first in, first out, so a port freed
//!   now is reused last, which keeps away from a real server's TIME_WAIT
//!   for the same 4-tuple as long as the range allows.
//! - **Release is idempotent and checked.** The bitmap says whether a port
//!   is out; releasing one that is not (a connection installed before a
//!   reload changed the range, a spoofed tuple) does nothing, and a second
//!   bitmap says whether a port is in the ring, so it never is twice.
//! - **Claims in O(1).** A standby installing a synced connection (or a
//!   reload rebuilding the pool) marks the port taken where it stands in
//!   the ring; a take skips such a port when it comes out.
//!
//! - **One pool for both families.** [`LocalPoolOf`] is generic over the
//!   address ([`LocalAddr`]): [`LocalPool`] holds IPv4 local addresses,
//!   [`LocalPool6`] IPv6 ones (FullNAT over IPv6). The code is the same,
//!   monomorphised; only the sort key differs (IPv4: one `u64`, as before
//!   IPv6 came, so its lookups are unchanged; IPv6: a `(u128, u8)`).
//!
//! The range is [`DEFAULT_PORTS`] unless a virtual server sets
//! `local_port_range` (tests use tiny ranges to see exhaustion).

use super::kind::Protocol;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address a pool can hold: IPv4 or IPv6, with the key its entries
/// are sorted and searched by.
pub trait LocalAddr: Copy + Eq + Into<IpAddr> + std::fmt::Debug {
    /// The sort key of an (address, protocol).
    type Key: Ord + Copy + std::fmt::Debug;
    /// The key of `(self, proto)`.
    fn pool_key(self, proto: u8) -> Self::Key;
}

impl LocalAddr for Ipv4Addr {
    type Key = u64;
    #[inline]
    fn pool_key(self, proto: u8) -> u64 {
        (u64::from(u32::from(self)) << 8) | u64::from(proto)
    }
}

impl LocalAddr for Ipv6Addr {
    type Key = (u128, u8);
    #[inline]
    fn pool_key(self, proto: u8) -> (u128, u8) {
        (u128::from(self), proto)
    }
}

/// The local ports FullNAT uses by default: every non-privileged port.
pub const DEFAULT_PORTS: (u16, u16) = (1024, 65535);

/// The free and taken ports of one (local address, protocol).
#[derive(Clone, Debug)]
struct Ports<A> {
    addr: A,
    proto: u8,
    lo: u16,
    hi: u16,
    /// Queued ports, a ring: `len` of them from `head`. A port is queued at
    /// most once (`queued`); a queued port that was claimed meanwhile
    /// (`taken`) is skipped when it comes out.
    ring: Box<[u16]>,
    head: usize,
    len: usize,
    /// One bit per port of the range: taken by a connection.
    taken: Box<[u64]>,
    /// One bit per port of the range: in the ring.
    queued: Box<[u64]>,
    /// Ports not taken.
    free: usize,
    /// Times a take found no free port.
    exhausted: u64,
}

impl<A> Ports<A> {
    fn new(addr: A, proto: u8, (lo, hi): (u16, u16)) -> Ports<A> {
        let ring: Box<[u16]> = (lo..=hi).collect();
        let n = ring.len();
        let words = n.div_ceil(64);
        let mut queued = vec![u64::MAX; words].into_boxed_slice();
        if !n.is_multiple_of(64) {
            queued[words - 1] = (1u64 << (n % 64)) - 1;
        }
        Ports {
            addr,
            proto,
            lo,
            hi,
            len: n,
            free: n,
            ring,
            head: 0,
            taken: vec![0; words].into_boxed_slice(),
            queued,
            exhausted: 0,
        }
    }

    fn bit(&self, port: u16) -> Option<(usize, u64)> {
        if port < self.lo || port > self.hi {
            return None;
        }
        let i = usize::from(port - self.lo);
        Some((i / 64, 1u64 << (i % 64)))
    }

    /// Pops queued ports until a free one (each skip is a claim's, so this
    /// is O(1) amortised).
    fn take(&mut self) -> Option<u16> {
        while self.free > 0 && self.len > 0 {
            let port = self.ring[self.head];
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
            let Some((w, b)) = self.bit(port) else {
                continue;
            };
            self.queued[w] &= !b;
            if self.taken[w] & b == 0 {
                self.taken[w] |= b;
                self.free -= 1;
                return Some(port);
            }
        }
        self.exhausted += 1;
        None
    }

    /// Marks `port` taken where it stands (HA sync, a reload): O(1); the
    /// ring skips it when it comes out.
    fn claim(&mut self, port: u16) -> bool {
        let Some((w, b)) = self.bit(port) else {
            return false;
        };
        if self.taken[w] & b != 0 {
            return false;
        }
        self.taken[w] |= b;
        self.free -= 1;
        true
    }

    fn release(&mut self, port: u16) -> bool {
        let Some((w, b)) = self.bit(port) else {
            return false;
        };
        if self.taken[w] & b == 0 {
            return false;
        }
        self.taken[w] &= !b;
        self.free += 1;
        if self.queued[w] & b == 0 {
            let n = self.ring.len();
            self.ring[(self.head + self.len) % n] = port;
            self.len += 1;
            self.queued[w] |= b;
        }
        true
    }

    fn in_use(&self) -> usize {
        self.ring.len() - self.free
    }
}

/// One (local address, protocol)'s figures, for `rvsadm` and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalUsage {
    /// The local address (IPv4, or IPv6 for FullNAT over IPv6).
    pub addr: IpAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Ports given to live connections.
    pub in_use: u64,
    /// Ports of its range.
    pub capacity: u64,
    /// New connections that found no free port here.
    pub exhausted: u64,
}

/// A worker's local ports of one family, over every (LIP, protocol) it
/// owns.
#[derive(Clone, Debug)]
pub struct LocalPoolOf<A: LocalAddr> {
    ports: Vec<Ports<A>>,
    /// (`pool_key`, index in `ports`), sorted: a release finds its entry
    /// by binary search whatever the number of addresses.
    by_key: Vec<(A::Key, usize)>,
}

/// A worker's IPv4 local ports.
pub type LocalPool = LocalPoolOf<Ipv4Addr>;

/// A worker's IPv6 local ports (FullNAT over IPv6).
pub type LocalPool6 = LocalPoolOf<Ipv6Addr>;

impl<A: LocalAddr> Default for LocalPoolOf<A> {
    fn default() -> Self {
        LocalPoolOf {
            ports: Vec::new(),
            by_key: Vec::new(),
        }
    }
}

impl<A: LocalAddr> LocalPoolOf<A> {
    /// A pool of every `(addr, protocol, range)`; duplicates keep the first.
    pub fn new(entries: impl IntoIterator<Item = (A, Protocol, (u16, u16))>) -> LocalPoolOf<A> {
        let mut ports: Vec<Ports<A>> = Vec::new();
        for (addr, p, range) in entries {
            let proto = p.number();
            if range.0 > range.1 || ports.iter().any(|e| e.addr == addr && e.proto == proto) {
                continue;
            }
            ports.push(Ports::new(addr, proto, range));
        }
        let mut by_key: Vec<(A::Key, usize)> = ports
            .iter()
            .enumerate()
            .map(|(i, e)| (e.addr.pool_key(e.proto), i))
            .collect();
        by_key.sort_unstable();
        LocalPoolOf { ports, by_key }
    }

    /// True when the pool holds no address (this worker owns none).
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The index of `(addr, proto)` in the pool, for [`LocalPool::take_at`].
    #[inline]
    pub fn index_of(&self, addr: A, proto: u8) -> Option<usize> {
        let k = addr.pool_key(proto);
        self.by_key
            .binary_search_by_key(&k, |&(k, _)| k)
            .ok()
            .map(|at| self.by_key[at].1)
    }

    /// The address of entry `i`.
    pub fn addr_at(&self, i: usize) -> Option<A> {
        self.ports.get(i).map(|e| e.addr)
    }

    /// A free port of entry `i` (see [`LocalPool::index_of`]), now taken;
    /// `None` when all are out (counted as exhausted).
    #[inline]
    pub fn take_at(&mut self, i: usize) -> Option<u16> {
        self.ports.get_mut(i)?.take()
    }

    /// Marks `addr:port` taken (a connection installed by sync, or alive
    /// across a reload); false when it is not in the pool or already out.
    pub fn claim(&mut self, addr: A, proto: u8, port: u16) -> bool {
        match self.index_of(addr, proto) {
            Some(i) => self.ports[i].claim(port),
            None => false,
        }
    }

    /// Gives `addr:port` back; false when it was not out.
    #[inline]
    pub fn release(&mut self, addr: A, proto: u8, port: u16) -> bool {
        match self.index_of(addr, proto) {
            Some(i) => self.ports[i].release(port),
            None => false,
        }
    }

    /// Ports out of `addr:proto` (0 when unknown).
    pub fn in_use(&self, addr: A, proto: u8) -> usize {
        self.index_of(addr, proto)
            .map_or(0, |i| self.ports[i].in_use())
    }

    /// Every entry's figures.
    pub fn usage(&self) -> impl Iterator<Item = LocalUsage> + '_ {
        self.ports.iter().filter_map(|e| {
            Some(LocalUsage {
                addr: e.addr.into(),
                protocol: Protocol::from_number(e.proto)?,
                in_use: e.in_use() as u64,
                capacity: e.ring.len() as u64,
                exhausted: e.exhausted,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 100);
    const LIP2: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 101);

    fn pool(lo: u16, hi: u16) -> LocalPool {
        LocalPool::new([(LIP, Protocol::Tcp, (lo, hi))])
    }

    #[test]
    fn ports_come_out_once_each_then_run_out() {
        let mut p = pool(2000, 2003);
        let mut got: Vec<u16> = (0..4).map(|_| p.take_at(0).unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![2000, 2001, 2002, 2003]);
        assert_eq!(p.take_at(0), None);
        assert_eq!(p.usage().next().unwrap().exhausted, 1);
        assert_eq!(p.in_use(LIP, 6), 4);
    }

    #[test]
    fn a_released_port_is_reused_last() {
        let mut p = pool(2000, 2002);
        let a = p.take_at(0).unwrap();
        assert!(p.release(LIP, 6, a));
        assert_eq!(p.take_at(0), Some(2001));
        assert_eq!(p.take_at(0), Some(2002));
        assert_eq!(p.take_at(0), Some(a));
    }

    #[test]
    fn releasing_a_port_not_out_does_nothing() {
        let mut p = pool(2000, 2001);
        assert!(!p.release(LIP, 6, 2000), "never taken");
        assert!(!p.release(LIP, 6, 80), "outside the range");
        assert!(!p.release(LIP, 17, 2000), "other protocol");
        assert!(!p.release(LIP2, 6, 2000), "other address");
        let a = p.take_at(0).unwrap();
        assert!(p.release(LIP, 6, a));
        assert!(!p.release(LIP, 6, a), "twice");
        assert_eq!(p.in_use(LIP, 6), 0);
        assert_eq!(
            p.take_at(0).into_iter().count() + p.take_at(0).into_iter().count(),
            2
        );
        assert_eq!(p.take_at(0), None);
    }

    #[test]
    fn a_claimed_port_is_not_given_again() {
        let mut p = pool(2000, 2003);
        assert!(p.claim(LIP, 6, 2002));
        assert!(!p.claim(LIP, 6, 2002), "already out");
        let mut got: Vec<u16> = (0..3).map(|_| p.take_at(0).unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![2000, 2001, 2003]);
        assert_eq!(p.take_at(0), None);
        assert!(p.release(LIP, 6, 2002));
        assert_eq!(p.take_at(0), Some(2002));
    }

    #[test]
    fn a_claimed_then_released_port_is_queued_once() {
        let mut p = pool(2000, 2001);
        assert!(p.claim(LIP, 6, 2000));
        assert!(p.release(LIP, 6, 2000));
        assert!(p.claim(LIP, 6, 2000));
        assert!(p.release(LIP, 6, 2000));
        let mut got: Vec<u16> = std::iter::from_fn(|| p.take_at(0)).collect();
        got.sort();
        assert_eq!(got, vec![2000, 2001]);
        for port in [2000, 2001] {
            assert!(p.release(LIP, 6, port));
        }
        assert_eq!(std::iter::from_fn(|| p.take_at(0)).count(), 2);
    }

    #[test]
    fn protocols_and_addresses_have_their_own_ports() {
        let mut p = LocalPool::new([
            (LIP, Protocol::Tcp, (3000, 3000)),
            (LIP, Protocol::Udp, (3000, 3000)),
            (LIP2, Protocol::Tcp, (3000, 3000)),
        ]);
        for addr_proto in [(LIP, 6), (LIP, 17), (LIP2, 6)] {
            let i = p.index_of(addr_proto.0, addr_proto.1).unwrap();
            assert_eq!(p.take_at(i), Some(3000));
        }
    }

    proptest::proptest! {
        /// Against a set of taken ports: whatever the order of takes,
        /// claims and releases, a port is never given while taken, and a
        /// take fails only when every port is out.
        #[test]
        fn never_gives_a_taken_port(ops in proptest::collection::vec((0u8..3, 0u16..6), 0..200)) {
            let mut p = pool(100, 104);
            let mut out = std::collections::HashSet::new();
            for (op, n) in ops {
                let port = 99 + n; // 99 and 105 are outside the range
                match op {
                    0 => match p.take_at(0) {
                        Some(got) => proptest::prop_assert!(out.insert(got), "{got} given twice"),
                        None => proptest::prop_assert_eq!(out.len(), 5),
                    },
                    1 => {
                        let fresh = (100..=104).contains(&port) && !out.contains(&port);
                        proptest::prop_assert_eq!(p.claim(LIP, 6, port), fresh);
                        if fresh {
                            out.insert(port);
                        }
                    }
                    _ => proptest::prop_assert_eq!(p.release(LIP, 6, port), out.remove(&port)),
                }
                proptest::prop_assert_eq!(p.in_use(LIP, 6), out.len());
            }
        }
    }

    #[test]
    fn the_default_range_holds_every_unprivileged_port() {
        let mut p = LocalPool::new([(LIP, Protocol::Udp, DEFAULT_PORTS)]);
        let u = p.usage().next().unwrap();
        assert_eq!(u.capacity, 64512);
        let mut n = 0;
        while let Some(port) = p.take_at(0) {
            assert!(port >= 1024);
            n += 1;
        }
        assert_eq!(n, 64512);
    }

    const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
    const LIP6B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x101);

    #[test]
    fn an_ipv6_pool_gives_each_port_once_and_reuses_a_released_one_last() {
        let mut p = LocalPool6::new([(LIP6, Protocol::Tcp, (2000, 2002))]);
        let a = p.take_at(0).unwrap();
        assert_eq!(a, 2000);
        assert!(p.release(LIP6, 6, a));
        assert!(!p.release(LIP6, 6, a), "twice");
        assert_eq!(p.take_at(0), Some(2001));
        assert_eq!(p.take_at(0), Some(2002));
        assert_eq!(p.take_at(0), Some(2000));
        assert_eq!(p.take_at(0), None);
        let u = p.usage().next().unwrap();
        assert_eq!(u.addr, IpAddr::V6(LIP6));
        assert_eq!((u.in_use, u.capacity, u.exhausted), (3, 3, 1));
    }

    #[test]
    fn ipv6_addresses_and_protocols_are_told_apart_by_their_whole_key() {
        // Two addresses equal in their low 64 bits but not their high.
        let far = Ipv6Addr::new(0x2001, 0xdb9, 2, 0, 0, 0, 0, 0x100);
        let mut p = LocalPool6::new([
            (LIP6, Protocol::Tcp, (3000, 3000)),
            (LIP6, Protocol::Udp, (3000, 3000)),
            (LIP6B, Protocol::Tcp, (3000, 3000)),
            (far, Protocol::Tcp, (3000, 3000)),
        ]);
        for (a, proto) in [(LIP6, 6), (LIP6, 17), (LIP6B, 6), (far, 6)] {
            let i = p.index_of(a, proto).unwrap();
            assert_eq!(p.addr_at(i), Some(a));
            assert_eq!(p.take_at(i), Some(3000));
        }
        assert!(!p.claim(far, 6, 3000), "already out");
        assert!(p.release(far, 6, 3000));
        assert_eq!(p.in_use(LIP6, 6), 1);
        assert_eq!(p.in_use(far, 6), 0);
    }
}
