//! A per-worker neighbour table: ARP's for IPv4, neighbour discovery's
//! for IPv6 ([`NeighTable6`]), one generic code.
//!
//! Each worker owns one, so lookups take no lock. Capacity is fixed at start:
//! open addressing with a short bounded probe, and when every slot in a
//! probe window is taken the stalest learned entry there is replaced, so a
//! flood of ARP from many senders cannot grow memory or evict static entries.
//! Time is passed in (nanoseconds), never read here.

use crate::wire::MacAddr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An address a neighbour table is keyed by; the unspecified address
/// marks an empty slot (it is never a neighbour).
pub trait NeighAddr: Copy + Eq + std::fmt::Debug {
    /// `0.0.0.0` or `::`.
    const EMPTY: Self;
    /// The address folded to 64 bits, for the home slot.
    fn fold(self) -> u64;
}

impl NeighAddr for Ipv4Addr {
    const EMPTY: Self = Ipv4Addr::UNSPECIFIED;
    #[inline]
    fn fold(self) -> u64 {
        u64::from(u32::from(self))
    }
}

impl NeighAddr for Ipv6Addr {
    const EMPTY: Self = Ipv6Addr::UNSPECIFIED;
    #[inline]
    fn fold(self) -> u64 {
        // The interface identifier varies most within a prefix; the
        // prefix half is mixed in so equal identifiers on two prefixes
        // (link-local and global of one host) land apart.
        let x = u128::from(self);
        (x as u64) ^ ((x >> 64) as u64).rotate_left(29)
    }
}

/// Slots examined for one key before giving up (lookup) or replacing (learn).
const PROBE: usize = 16;

/// A resolved neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// Its hardware address.
    pub mac: MacAddr,
    /// The port (index in config order) it was seen on.
    pub port: u16,
}

/// What `learn` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A new entry.
    Added,
    /// An existing entry got its MAC/port/time updated.
    Refreshed,
    /// A stale entry made room for this one.
    Replaced,
    /// A static entry exists for this address; left unchanged.
    StaticKept,
}

#[derive(Clone, Copy, Debug)]
struct Slot<A> {
    /// The address; the unspecified one marks an empty slot.
    ip: A,
    mac: MacAddr,
    port: u16,
    is_static: bool,
    updated_ns: u64,
}

/// Fixed-capacity address → MAC table (IPv4 by default).
#[derive(Debug)]
pub struct NeighTable<A = Ipv4Addr> {
    slots: Box<[Slot<A>]>,
    mask: usize,
    max_age_ns: u64,
}

/// The IPv6 neighbour cache (RFC 4861), same bounds and aging as ARP's.
pub type NeighTable6 = NeighTable<Ipv6Addr>;

impl<A: NeighAddr> NeighTable<A> {
    /// A table of at least `capacity` slots (rounded up to a power of two)
    /// whose learned entries are valid for `max_age_ns`.
    pub fn new(capacity: usize, max_age_ns: u64) -> NeighTable<A> {
        let n = capacity.max(PROBE).next_power_of_two();
        let empty = Slot {
            ip: A::EMPTY,
            mac: MacAddr::ZERO,
            port: 0,
            is_static: false,
            updated_ns: 0,
        };
        NeighTable {
            slots: vec![empty; n].into_boxed_slice(),
            mask: n - 1,
            max_age_ns,
        }
    }

    #[inline]
    fn home(&self, ip: A) -> usize {
        // Fibonacci hashing: the high bits of a golden-ratio product.
        ((ip.fold().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize) & self.mask
    }

    /// Installs a static entry (from `[[neighbor]]`), which learning never
    /// changes and age never expires. Returns false when the probe window is
    /// full of other static entries.
    pub fn insert_static(&mut self, ip: A, mac: MacAddr, port: u16) -> bool {
        self.put(ip, mac, port, 0, true).is_some()
    }

    /// Records that `ip` is at `mac` on `port` at time `now_ns`.
    pub fn learn(&mut self, ip: A, mac: MacAddr, port: u16, now_ns: u64) -> LearnOutcome {
        self.put(ip, mac, port, now_ns, false)
            .unwrap_or(LearnOutcome::StaticKept)
    }

    fn put(
        &mut self,
        ip: A,
        mac: MacAddr,
        port: u16,
        now_ns: u64,
        is_static: bool,
    ) -> Option<LearnOutcome> {
        if ip == A::EMPTY {
            return None;
        }
        let home = self.home(ip);
        let mut empty = None;
        let mut stalest: Option<(usize, u64)> = None;
        for i in 0..PROBE {
            let idx = (home + i) & self.mask;
            let slot = &mut self.slots[idx];
            if slot.ip == ip {
                if slot.is_static && !is_static {
                    return Some(LearnOutcome::StaticKept);
                }
                *slot = Slot {
                    ip,
                    mac,
                    port,
                    is_static,
                    updated_ns: now_ns,
                };
                return Some(LearnOutcome::Refreshed);
            }
            if slot.ip == A::EMPTY {
                empty.get_or_insert(idx);
            } else if !slot.is_static && stalest.is_none_or(|(_, t)| slot.updated_ns < t) {
                stalest = Some((idx, slot.updated_ns));
            }
        }
        let (idx, outcome) = match (empty, stalest) {
            (Some(idx), _) => (idx, LearnOutcome::Added),
            (None, Some((idx, _))) => (idx, LearnOutcome::Replaced),
            (None, None) => return None,
        };
        self.slots[idx] = Slot {
            ip,
            mac,
            port,
            is_static,
            updated_ns: now_ns,
        };
        Some(outcome)
    }

    /// The neighbour for `ip`, if known and not older than the max age.
    pub fn lookup(&self, ip: A, now_ns: u64) -> Option<Neighbor> {
        if ip == A::EMPTY {
            return None;
        }
        let home = self.home(ip);
        for i in 0..PROBE {
            let slot = &self.slots[(home + i) & self.mask];
            if slot.ip == ip {
                let fresh =
                    slot.is_static || now_ns.saturating_sub(slot.updated_ns) <= self.max_age_ns;
                return fresh.then_some(Neighbor {
                    mac: slot.mac,
                    port: slot.port,
                });
            }
        }
        None
    }

    /// True when `ip` has an entry, fresh or stale (learning refreshes known
    /// neighbours from any ARP they send, as Linux does).
    pub fn knows(&self, ip: A) -> bool {
        if ip == A::EMPTY {
            return false;
        }
        let home = self.home(ip);
        (0..PROBE).any(|i| self.slots[(home + i) & self.mask].ip == ip)
    }

    /// Every entry as (address, neighbour, static, last update), fresh or
    /// stale, in slot order (for listings; not on the packet path).
    pub fn entries(&self) -> impl Iterator<Item = (A, Neighbor, bool, u64)> + '_ {
        self.slots.iter().filter(|s| s.ip != A::EMPTY).map(|s| {
            (
                s.ip,
                Neighbor {
                    mac: s.mac,
                    port: s.port,
                },
                s.is_static,
                s.updated_ns,
            )
        })
    }

    /// Number of slots (the fixed capacity).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xC000_0200 + n)
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn learned_entry_is_found() {
        let mut t = NeighTable::new(64, MIN);
        assert_eq!(t.learn(ip(1), mac(1), 0, 10), LearnOutcome::Added);
        assert_eq!(
            t.lookup(ip(1), 20),
            Some(Neighbor {
                mac: mac(1),
                port: 0
            })
        );
        assert_eq!(t.lookup(ip(2), 20), None);
    }

    #[test]
    fn relearning_updates_mac_and_port() {
        let mut t = NeighTable::new(64, MIN);
        t.learn(ip(1), mac(1), 0, 10);
        assert_eq!(t.learn(ip(1), mac(9), 1, 20), LearnOutcome::Refreshed);
        assert_eq!(
            t.lookup(ip(1), 30),
            Some(Neighbor {
                mac: mac(9),
                port: 1
            })
        );
    }

    #[test]
    fn learned_entry_expires_after_max_age() {
        let mut t = NeighTable::new(64, MIN);
        t.learn(ip(1), mac(1), 0, 0);
        assert!(t.lookup(ip(1), MIN).is_some());
        assert!(t.lookup(ip(1), MIN + 1).is_none());
    }

    #[test]
    fn static_entry_never_expires_nor_changes_by_learning() {
        let mut t = NeighTable::new(64, MIN);
        assert!(t.insert_static(ip(1), mac(1), 1));
        assert_eq!(t.learn(ip(1), mac(7), 0, 5), LearnOutcome::StaticKept);
        assert_eq!(
            t.lookup(ip(1), u64::MAX),
            Some(Neighbor {
                mac: mac(1),
                port: 1
            })
        );
    }

    #[test]
    fn flood_of_senders_stays_within_capacity_and_keeps_static() {
        let mut t = NeighTable::new(64, MIN);
        t.insert_static(ip(1), mac(1), 0);
        for n in 2..10_000u32 {
            t.learn(Ipv4Addr::from(0x0A00_0000 + n), mac(2), 0, u64::from(n));
        }
        assert_eq!(t.capacity(), 64);
        assert_eq!(
            t.lookup(ip(1), 0),
            Some(Neighbor {
                mac: mac(1),
                port: 0
            })
        );
        // The most recent sender is always present.
        assert!(t
            .lookup(Ipv4Addr::from(0x0A00_0000 + 9_999), 10_000)
            .is_some());
    }

    #[test]
    fn zero_address_is_never_stored() {
        let mut t = NeighTable::new(16, MIN);
        assert_eq!(
            t.learn(Ipv4Addr::UNSPECIFIED, mac(1), 0, 0),
            LearnOutcome::StaticKept
        );
        assert!(t.lookup(Ipv4Addr::UNSPECIFIED, 0).is_none());
    }

    fn ip6(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n)
    }

    #[test]
    fn ipv6_learned_entry_is_found_and_ages_like_arp() {
        let mut t = NeighTable6::new(64, MIN);
        assert_eq!(t.learn(ip6(1), mac(1), 0, 0), LearnOutcome::Added);
        assert_eq!(t.lookup(ip6(1), MIN).map(|n| n.mac), Some(mac(1)));
        assert!(t.lookup(ip6(1), MIN + 1).is_none());
        assert!(t.knows(ip6(1)));
        assert!(t.lookup(ip6(2), 0).is_none());
    }

    #[test]
    fn ipv6_flood_stays_within_capacity_and_keeps_static() {
        let mut t = NeighTable6::new(64, MIN);
        assert!(t.insert_static(ip6(1), mac(1), 1));
        for n in 2..10_000u16 {
            t.learn(ip6(n), mac(2), 0, u64::from(n));
        }
        assert_eq!(t.capacity(), 64);
        assert_eq!(t.entries().count(), 64);
        assert_eq!(t.lookup(ip6(1), u64::MAX).map(|n| n.port), Some(1));
        assert!(t.lookup(ip6(9_999), 10_000).is_some());
    }

    #[test]
    fn ipv6_unspecified_address_is_never_stored() {
        let mut t = NeighTable6::new(16, MIN);
        assert_eq!(
            t.learn(Ipv6Addr::UNSPECIFIED, mac(1), 0, 0),
            LearnOutcome::StaticKept
        );
        assert_eq!(t.entries().count(), 0);
    }
}
