//! Hashing for the hashing schedulers (`sh`, `mh`): a fast, seedable mix for
//! flow keys, and a stable key for a real server.
//!
//! The mix is MurmurHash3's 64-bit finaliser (`fmix64`): two multiplies and
//! three xor-shifts, a bijection on `u64` whose every output bit depends on
//! every input bit. A flow key is one IPv4 address, so a full hash function
//! would only add cost. It is not a keyed PRF (SipHash is): the seed varies
//! the mapping between deployments, it does not make it secret. For source
//! hashing that is enough, since a client chooses only its own address.
//!
//! Server keys must not be seeded: two balancers of an HA pair (and one
//! balancer across restarts) must build the same Maglev table from the same
//! real servers, so `server_key` depends on the address alone.

use crate::lb::family::IpFamily;
use std::net::Ipv4Addr;

/// 2^64 / golden ratio: an odd constant with well-spread bits, used to keep a
/// zero seed from giving a zero key.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// MurmurHash3's `fmix64`: spreads every input bit over the whole output.
/// A bijection, so distinct inputs never collide.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hashes client addresses for the hashing schedulers. The seed is mixed
/// once, at construction, so hashing a flow costs one `mix64`.
///
/// Lives in the shared table (not in each worker) because every worker must
/// map a client to the same server: RSS spreads one client's connections
/// over several workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHasher {
    key: u64,
}

impl FlowHasher {
    /// A hasher for `seed`; equal seeds give equal mappings everywhere.
    pub fn new(seed: u64) -> Self {
        FlowHasher {
            key: mix64(seed.wrapping_add(GOLDEN)),
        }
    }

    /// The hash of a client address (the IPVS `sh` default key: the source
    /// address alone, so all of a client's connections go to one server).
    /// For either family (`lb::family`): an IPv4 address hashes as it
    /// always did.
    #[inline]
    pub fn client<A: IpFamily>(&self, addr: A) -> u64 {
        addr.client_hash(self.key)
    }
}

impl Default for FlowHasher {
    /// The seed-0 hasher.
    fn default() -> Self {
        FlowHasher::new(0)
    }
}

/// A stable key for a real server, for `MaglevTable::build`: the same
/// address and port give the same key on every machine and every run, so a
/// table depends only on the servers, not on their order of arrival.
pub fn server_key(addr: Ipv4Addr, port: u16) -> u64 {
    mix64((u64::from(u32::from(addr)) << 16 | u64::from(port)) ^ GOLDEN)
}

/// [`server_key`] for an IPv6 real server: both halves of the address
/// and the port, through the same unseeded mix (the same servers give the
/// same Maglev table on every balancer).
pub fn server_key6(addr: std::net::Ipv6Addr, port: u16) -> u64 {
    let v = u128::from(addr);
    mix64(mix64((v >> 64) as u64 ^ GOLDEN) ^ (v as u64) ^ u64::from(port) << 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix64_is_deterministic_and_spreads_neighbours() {
        assert_eq!(mix64(1), mix64(1));
        // Neighbouring inputs differ in about half their output bits.
        let d = (mix64(1) ^ mix64(2)).count_ones();
        assert!((16..=48).contains(&d), "{d} bits differ");
    }

    #[test]
    fn different_seeds_map_a_client_differently() {
        let a = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(FlowHasher::new(7).client(a), FlowHasher::new(7).client(a));
        assert_ne!(FlowHasher::new(7).client(a), FlowHasher::new(8).client(a));
    }

    #[test]
    fn server_key_depends_on_address_and_port() {
        let a = Ipv4Addr::new(198, 51, 100, 1);
        assert_eq!(server_key(a, 80), server_key(a, 80));
        assert_ne!(server_key(a, 80), server_key(a, 81));
        assert_ne!(
            server_key(a, 80),
            server_key(Ipv4Addr::new(198, 51, 100, 2), 80)
        );
    }
}
