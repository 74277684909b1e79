//! Live connections per (virtual server, client prefix), for the
//! `max_conns_per_client` limit: one bounded table per worker.
//!
//! Why it can be fixed-size and never full: an entry lives only while its
//! count is above 0, and every count is a connection in the worker's
//! connection table, so there are never more entries than connections.
//! The table has twice the connection table's capacity in slots (rounded
//! up to a power of two): at most half full, probes stay short, and an
//! insert always finds room. Nothing allocates after it is built.
//!
//! Open addressing with linear probing and backward-shift deletion (no
//! tombstones, so a long-running table does not degrade). The hash is
//! seeded per worker: clients choose their addresses, and must not be
//! able to aim them at one probe chain.
//!
//! What the limit means with several workers: RSS picks a client's worker
//! by its whole source address, so every connection of one address is
//! counted on one worker and a `/32` limit is exact. Addresses of a shorter
//! prefix may be spread over the workers, each of which counts its own: the
//! prefix as a whole may then hold up to `max_conns_per_client` × workers
//! connections (exactly the limit with one worker).

use super::sched::hash::mix64;

/// One slot: a (service, prefix) and its count; `tag` 0 is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    prefix: u32,
    /// The service's index + 1; 0 for an empty slot.
    tag: u32,
    count: u32,
}

/// Connection counts by (service, client prefix) (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct ClientCounts {
    slots: Vec<Slot>,
    seed: u64,
    len: usize,
}

impl ClientCounts {
    /// A table for up to `entries` (service, prefix) pairs at once.
    pub fn with_capacity(entries: usize, seed: u64) -> ClientCounts {
        let slots = entries.max(8).saturating_mul(2).next_power_of_two();
        ClientCounts {
            slots: vec![Slot::default(); slots],
            seed: mix64(seed ^ 0x636c_6965_6e74_7321),
            len: 0,
        }
    }

    /// Bytes a table for `entries` pairs takes: what the memory check at
    /// `--check` and start counts for a worker whose services limit their
    /// clients.
    pub fn memory_for(entries: usize) -> u64 {
        let slots = entries.max(8).saturating_mul(2).next_power_of_two();
        (slots as u64).saturating_mul(std::mem::size_of::<Slot>() as u64)
    }

    /// True when the table has room for nothing (built without capacity).
    pub fn is_unallocated(&self) -> bool {
        self.slots.is_empty()
    }

    /// Pairs with at least one connection.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no pair has a connection.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every count (kept allocation).
    pub fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.len = 0;
    }

    #[inline]
    fn home(&self, vs: u16, prefix: u32) -> usize {
        let h = mix64((u64::from(prefix) << 16 | u64::from(vs)) ^ self.seed);
        (h as usize) & (self.slots.len() - 1)
    }

    /// Where the pair is, or the empty slot that ends its probe chain.
    #[inline]
    fn find(&self, vs: u16, prefix: u32) -> Option<(usize, bool)> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let tag = u32::from(vs) + 1;
        let mut i = self.home(vs, prefix);
        for _ in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.tag == 0 {
                return Some((i, false));
            }
            if s.tag == tag && s.prefix == prefix {
                return Some((i, true));
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Connections service `vs` has from `prefix`.
    #[inline]
    pub fn get(&self, vs: u16, prefix: u32) -> u32 {
        match self.find(vs, prefix) {
            Some((i, true)) => self.slots[i].count,
            _ => 0,
        }
    }

    /// Counts one more connection; false when the table has no room (not
    /// allocated, or more pairs than it was built for).
    #[inline]
    pub fn increment(&mut self, vs: u16, prefix: u32) -> bool {
        // Keep one slot empty so every probe chain ends.
        match self.find(vs, prefix) {
            Some((i, true)) => {
                self.slots[i].count = self.slots[i].count.saturating_add(1);
                true
            }
            Some((i, false)) if self.len + 1 < self.slots.len() => {
                self.slots[i] = Slot {
                    prefix,
                    tag: u32::from(vs) + 1,
                    count: 1,
                };
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// Counts one connection fewer; the pair's slot is freed at 0.
    #[inline]
    pub fn decrement(&mut self, vs: u16, prefix: u32) {
        let Some((i, true)) = self.find(vs, prefix) else {
            return;
        };
        self.slots[i].count -= 1;
        if self.slots[i].count == 0 {
            self.remove_at(i);
        }
    }

    /// Empties slot `i` and shifts back the entries after it that probed
    /// past it, so every chain stays unbroken.
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        self.slots[hole] = Slot::default();
        self.len -= 1;
        let mut i = (hole + 1) & mask;
        while self.slots[i].tag != 0 {
            let s = self.slots[i];
            let home = self.home((s.tag - 1) as u16, s.prefix);
            // Move it into the hole if its home is not in (hole, i].
            let dist_home = i.wrapping_sub(home) & mask;
            let dist_hole = i.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                self.slots[i] = Slot::default();
                hole = i;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn counts_go_up_and_down_per_service_and_prefix() {
        let mut c = ClientCounts::with_capacity(16, 1);
        assert!(c.increment(0, 7));
        assert!(c.increment(0, 7));
        assert!(c.increment(1, 7));
        assert_eq!(c.get(0, 7), 2);
        assert_eq!(c.get(1, 7), 1);
        assert_eq!(c.get(0, 8), 0);
        c.decrement(0, 7);
        c.decrement(0, 7);
        assert_eq!(c.get(0, 7), 0);
        assert_eq!(c.len(), 1, "a pair at 0 frees its slot");
    }

    #[test]
    fn decrementing_an_unknown_pair_changes_nothing() {
        let mut c = ClientCounts::with_capacity(4, 1);
        c.decrement(3, 3);
        assert!(c.is_empty());
    }

    #[test]
    fn an_unallocated_table_counts_nothing_and_refuses_inserts() {
        let mut c = ClientCounts::default();
        assert!(c.is_unallocated());
        assert!(!c.increment(0, 1));
        assert_eq!(c.get(0, 1), 0);
        c.decrement(0, 1);
    }

    #[test]
    fn a_table_holds_at_least_the_pairs_it_was_built_for() {
        let mut c = ClientCounts::with_capacity(100, 9);
        assert!((0..100).all(|p| c.increment(0, p)));
        assert_eq!(c.len(), 100);
    }

    #[test]
    fn a_full_table_refuses_a_new_pair_but_counts_known_ones() {
        let mut c = ClientCounts::with_capacity(1, 2);
        let slots = c.slots.len();
        for p in 0..(slots as u32 - 1) {
            assert!(c.increment(0, p));
        }
        assert!(!c.increment(0, 999_999));
        assert!(c.increment(0, 0));
        assert_eq!(c.get(0, 0), 2);
    }

    proptest! {
        #[test]
        fn counts_match_a_model_through_any_sequence(
            ops in prop::collection::vec((any::<bool>(), 0u16..3, 0u32..40), 0..400),
            seed in any::<u64>(),
        ) {
            let mut c = ClientCounts::with_capacity(64, seed);
            let mut model: HashMap<(u16, u32), u32> = HashMap::new();
            for (up, vs, p) in ops {
                if up {
                    prop_assert!(c.increment(vs, p));
                    *model.entry((vs, p)).or_default() += 1;
                } else {
                    c.decrement(vs, p);
                    if let Some(n) = model.get_mut(&(vs, p)) {
                        *n -= 1;
                        if *n == 0 {
                            model.remove(&(vs, p));
                        }
                    }
                }
                prop_assert_eq!(c.len(), model.len());
            }
            for vs in 0..3 {
                for p in 0..40 {
                    prop_assert_eq!(c.get(vs, p), model.get(&(vs, p)).copied().unwrap_or(0));
                }
            }
        }
    }
}
