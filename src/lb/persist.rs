//! Persistence templates (`ipvsadm -p`, `persistence_timeout_s`): which
//! real server a client was last sent to on a virtual server, so its next
//! connections go to the same one while the template lives.
//!
//! Each worker owns a small table, sized at start, allocated once. It is
//! built like the VPP lb plugin's sticky table: buckets of four 16-byte
//! entries, one cache line each, and every key has two candidate buckets
//! (two hashes); a key is stored in at most one of them. Expiry is lazy:
//! an expired entry is simply a free one, reused by the next insert; an
//! optional sweep ([`PersistTable::expire`]) keeps `len` honest.
//!
//! When both buckets of a new client hold only live templates the insert is
//! refused ([`PersistFull`]) and the caller schedules that client without
//! persistence (and counts it): a flood of new sources cannot push out the
//! templates of known clients. The table keeps at least twice the
//! requested number of entries, so this stays rare below that number.
//!
//! IPv6 clients share the table (see [`key`]).
//!
//! The caller passes the client address already masked when persistence is
//! per network (IPVS's `-M`), and the timeout with every insert and use,
//! since it is a per virtual server setting.

use super::family::IpFamily;

/// The 32-bit key a client's templates are stored under: an IPv4 address
/// itself; an IPv6 address (a template per address, /128, as IPVS's
/// default persistence netmask for IPv6) folded (`lb::family`).
#[inline]
fn key<A: IpFamily>(client: A) -> u32 {
    client.prefix_key(A::BITS)
}

const WAYS: usize = 4;

/// The largest capacity a table accepts.
pub const MAX_CAPACITY: usize = 1 << 28;

#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Entry {
    client: u32,
    vs: u16,
    rs: u16,
    /// Expired from this time on; 0 marks a never-used or swept entry.
    expires_ns: u64,
}

#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Bucket([Entry; WAYS]);

/// A live template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    /// The real server index clients of this key go to.
    pub rs: u16,
    /// It is expired from this time on.
    pub expires_ns: u64,
}

/// Both candidate buckets of a new key are full of live templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistFull;

impl std::fmt::Display for PersistFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("persistence table full")
    }
}

impl std::error::Error for PersistFull {}

const DEFAULT_SEED: u64 = 0x1319_8A2E_0370_7344;
const M1: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Fixed-capacity (client address, virtual server) → real server table.
#[derive(Debug)]
pub struct PersistTable {
    buckets: Box<[Bucket]>,
    mask: usize,
    seed: u64,
    len: usize,
    sweep: usize,
}

impl PersistTable {
    /// A table for at least `capacity` templates, fixed hash seed.
    /// Panics unless `1 <= capacity <= MAX_CAPACITY`.
    pub fn new(capacity: usize) -> PersistTable {
        PersistTable::with_seed(capacity, DEFAULT_SEED)
    }

    /// A table for at least `capacity` templates hashing with `seed`.
    pub fn with_seed(capacity: usize, seed: u64) -> PersistTable {
        PersistTable::try_with_seed(capacity, seed).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Bytes a table for `capacity` templates holds, known before
    /// allocating (the configuration is checked against memory with it).
    pub fn memory_for(capacity: usize) -> u64 {
        let n = (capacity * 2).div_ceil(WAYS).next_power_of_two().max(2);
        (n * std::mem::size_of::<Bucket>()) as u64
    }

    /// As `with_seed`, or why its memory could not be had.
    pub fn try_with_seed(capacity: usize, seed: u64) -> Result<PersistTable, String> {
        assert!(
            (1..=MAX_CAPACITY).contains(&capacity),
            "persistence table capacity {capacity} outside 1..={MAX_CAPACITY}"
        );
        let n = (capacity * 2).div_ceil(WAYS).next_power_of_two().max(2);
        let mut buckets = Vec::new();
        buckets
            .try_reserve_exact(n)
            .map_err(|e| format!("persistence table of {capacity} templates ({n} buckets): {e}"))?;
        buckets.resize(n, Bucket::default());
        Ok(PersistTable {
            buckets: buckets.into_boxed_slice(),
            mask: n - 1,
            seed,
            len: 0,
            sweep: 0,
        })
    }

    /// Entries it has room for.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Templates stored, expired ones not yet reused or swept included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no template is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn homes(&self, client: u32, vs: u16) -> [usize; 2] {
        let h = fold_mul(((u64::from(client) << 16) | u64::from(vs)) ^ self.seed, M1);
        [h as usize & self.mask, (h >> 32) as usize & self.mask]
    }

    /// (bucket, way) of the entry stored for the key, live or expired.
    #[inline]
    fn find(&self, client: u32, vs: u16) -> Option<(usize, usize)> {
        for b in self.homes(client, vs) {
            for (w, e) in self.buckets[b].0.iter().enumerate() {
                if e.expires_ns != 0 && e.client == client && e.vs == vs {
                    return Some((b, w));
                }
            }
        }
        None
    }

    /// The real server of `client` on `vs` if a live template exists, and
    /// then its life is extended to `now + timeout_ns` (a use refreshes it).
    #[inline]
    pub fn lookup<A: IpFamily>(
        &mut self,
        client: A,
        vs: u16,
        now: u64,
        timeout_ns: u64,
    ) -> Option<u16> {
        let (b, w) = self.find(key(client), vs)?;
        let e = &mut self.buckets[b].0[w];
        if e.expires_ns <= now {
            return None;
        }
        e.expires_ns = now.saturating_add(timeout_ns);
        Some(e.rs)
    }

    /// The live template of `client` on `vs`, without refreshing it.
    pub fn get<A: IpFamily>(&self, client: A, vs: u16, now: u64) -> Option<Template> {
        let (b, w) = self.find(key(client), vs)?;
        let e = &self.buckets[b].0[w];
        (e.expires_ns > now).then_some(Template {
            rs: e.rs,
            expires_ns: e.expires_ns,
        })
    }

    /// Records that `client` on `vs` goes to `rs` until `now + timeout_ns`,
    /// replacing the key's template if one exists (live or not).
    pub fn insert(
        &mut self,
        client: impl IpFamily,
        vs: u16,
        rs: u16,
        now: u64,
        timeout_ns: u64,
    ) -> Result<(), PersistFull> {
        let client = key(client);
        let expires_ns = now.saturating_add(timeout_ns);
        let new = Entry {
            client,
            vs,
            rs,
            expires_ns,
        };
        if let Some((b, w)) = self.find(client, vs) {
            self.put(b, w, new);
            return Ok(());
        }
        // A free way in the emptier of the two buckets.
        let mut best: Option<(usize, usize, usize)> = None; // (bucket, way, free ways)
        for b in self.homes(client, vs) {
            let ways = &self.buckets[b].0;
            let free = ways.iter().filter(|e| e.expires_ns <= now).count();
            if let Some(w) = ways.iter().position(|e| e.expires_ns <= now) {
                if best.is_none_or(|(_, _, f)| free > f) {
                    best = Some((b, w, free));
                }
            }
        }
        let (b, w, _) = best.ok_or(PersistFull)?;
        self.put(b, w, new);
        Ok(())
    }

    /// Stores `new` in a way, keeping `len` the count of ways in use (a
    /// zero expiry, from a zero timeout at time zero, leaves the way free).
    fn put(&mut self, b: usize, w: usize, new: Entry) {
        let e = &mut self.buckets[b].0[w];
        self.len = self.len + usize::from(new.expires_ns != 0) - usize::from(e.expires_ns != 0);
        *e = new;
    }

    /// Drops the template of `client` on `vs` (e.g. its real server is
    /// gone), returning it if it was live.
    pub fn remove<A: IpFamily>(&mut self, client: A, vs: u16, now: u64) -> Option<Template> {
        let (b, w) = self.find(key(client), vs)?;
        let e = std::mem::take(&mut self.buckets[b].0[w]);
        self.len -= 1;
        (e.expires_ns > now).then_some(Template {
            rs: e.rs,
            expires_ns: e.expires_ns,
        })
    }

    /// Clears expired templates in up to `budget` buckets from where the
    /// last call stopped; returns how many it cleared.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let mut cleared = 0;
        for _ in 0..budget.min(self.buckets.len()) {
            if self.sweep >= self.buckets.len() {
                self.sweep = 0;
            }
            for e in self.buckets[self.sweep].0.iter_mut() {
                if e.expires_ns != 0 && e.expires_ns <= now {
                    *e = Entry::default();
                    cleared += 1;
                }
            }
            self.sweep += 1;
        }
        self.len -= cleared;
        cleared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: u64 = 1_000_000_000;

    fn client(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xC633_6400 + n) // 198.51.100.n
    }

    #[test]
    fn template_lives_until_its_timeout() {
        let mut t = PersistTable::new(64);
        t.insert(client(1), 0, 3, 0, 300 * SEC).unwrap();
        assert_eq!(t.lookup(client(1), 0, 300 * SEC - 1, 0), Some(3));
        let mut t = PersistTable::new(64);
        t.insert(client(1), 0, 3, 0, 300 * SEC).unwrap();
        assert_eq!(t.lookup(client(1), 0, 300 * SEC, 300 * SEC), None);
        assert_eq!(t.get(client(1), 0, 300 * SEC), None);
    }

    #[test]
    fn use_refreshes_the_template() {
        let mut t = PersistTable::new(64);
        t.insert(client(1), 0, 3, 0, 300 * SEC).unwrap();
        assert_eq!(t.lookup(client(1), 0, 200 * SEC, 300 * SEC), Some(3));
        assert_eq!(
            t.get(client(1), 0, 400 * SEC),
            Some(Template {
                rs: 3,
                expires_ns: 500 * SEC
            })
        );
        assert_eq!(t.lookup(client(1), 0, 499 * SEC, 300 * SEC), Some(3));
    }

    #[test]
    fn get_does_not_refresh() {
        let mut t = PersistTable::new(64);
        t.insert(client(1), 0, 3, 0, 10 * SEC).unwrap();
        assert!(t.get(client(1), 0, 9 * SEC).is_some());
        assert_eq!(t.lookup(client(1), 0, 10 * SEC, 10 * SEC), None);
    }

    #[test]
    fn key_is_client_and_virtual_server() {
        let mut t = PersistTable::new(64);
        t.insert(client(1), 0, 3, 0, 10 * SEC).unwrap();
        t.insert(client(1), 1, 4, 0, 10 * SEC).unwrap();
        assert_eq!(t.lookup(client(1), 0, 1, 10 * SEC), Some(3));
        assert_eq!(t.lookup(client(1), 1, 1, 10 * SEC), Some(4));
        assert_eq!(t.lookup(client(2), 0, 1, 10 * SEC), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn insert_replaces_the_keys_template() {
        let mut t = PersistTable::new(64);
        t.insert(client(1), 0, 3, 0, 10 * SEC).unwrap();
        t.insert(client(1), 0, 5, SEC, 10 * SEC).unwrap();
        assert_eq!(t.lookup(client(1), 0, 2 * SEC, 10 * SEC), Some(5));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn remove_drops_the_template() {
        let mut t = PersistTable::new(64);
        t.insert(client(1), 0, 3, 0, 10 * SEC).unwrap();
        assert_eq!(t.remove(client(1), 0, SEC).map(|x| x.rs), Some(3));
        assert_eq!(t.lookup(client(1), 0, SEC, 10 * SEC), None);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_refuses_new_clients_and_keeps_live_templates() {
        let mut t = PersistTable::new(4);
        let cap = t.capacity();
        let mut stored = Vec::new();
        for n in 0..10 * cap as u32 {
            if t.insert(client(n), 0, 1, 0, 100 * SEC).is_ok() {
                stored.push(n);
            }
        }
        assert!(stored.len() <= cap);
        assert!(stored.len() >= cap / 2, "{} of {cap}", stored.len());
        for n in &stored {
            assert_eq!(t.get(client(*n), 0, 1).map(|x| x.rs), Some(1));
        }
    }

    #[test]
    fn expired_templates_make_room() {
        let mut t = PersistTable::new(4);
        let cap = t.capacity() as u32;
        for n in 0..10 * cap {
            let _ = t.insert(client(n), 0, 1, 0, 10 * SEC);
        }
        for n in 0..10 * cap {
            let _ = t.insert(client(1000 + n), 0, 2, 10 * SEC, 10 * SEC);
        }
        assert!((0..10 * cap).all(|n| t.get(client(n), 0, 10 * SEC).is_none()));
        assert!(t.len() <= cap as usize);
        assert!((0..10 * cap).any(|n| t.get(client(1000 + n), 0, 10 * SEC).is_some()));
    }

    #[test]
    fn sweep_clears_expired_templates() {
        let mut t = PersistTable::new(64);
        for n in 0..20 {
            t.insert(client(n), 0, 1, 0, (1 + u64::from(n % 2)) * SEC)
                .unwrap();
        }
        let buckets = t.capacity() / WAYS;
        assert_eq!(t.expire(SEC, buckets), 10);
        assert_eq!(t.len(), 10);
        assert_eq!(t.expire(2 * SEC, buckets), 10);
        assert!(t.is_empty());
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }
}
