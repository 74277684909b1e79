//! The IPv6 instance of the connection table: its stored key and its
//! two-line entry.
//!
//! Why a second table with 128-byte entries rather than one table for
//! both families: two IPv6 keys are 72 bytes, more than the 64-byte line
//! an IPv4 entry fills exactly, so an IPv6 entry needs two lines whatever
//! else it drops. One table of 128-byte entries for both would halve the
//! IPv4 table's density and double its misses per new flow; keeping only
//! the original key plus the reply's differing parts (the real server's
//! address and port) still needs 36 + 20 bytes of keys plus the 40 bytes
//! of [`ConnMeta`], past one line too, and makes the reply key a
//! computation on every lookup. Interning addresses into 32-bit indices
//! would add a second hash lookup per packet. So the table is generic over
//! the family ([`super::ConnTableOf`]): the IPv4 instance keeps its layout
//! and code (monomorphised, byte-identical entries), and the IPv6 instance
//! shares the index (the same 64-byte buckets of signatures and entry
//! references), the shedding ring and every policy, with entries of two
//! lines. A lookup of a stored IPv6 key reads its bucket and the entry's
//! first line (the keys: 72 bytes straddle into the second line by 8
//! bytes, so comparing the reply key touches both); `docs/dev/h19-v6lb.md`
//! has the measured costs.

use super::{fold_mul, ConnAddr, ConnEntry, ConnMeta, Direction, FlowKey6, M1, M2};
use bytemuck::{Pod, Zeroable};
use std::net::Ipv6Addr;

/// An IPv6 flow key without its protocol, as stored: both addresses and
/// both ports (36 bytes), compared as bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Zeroable, Pod)]
#[repr(C)]
pub struct Key6 {
    src: [u8; 16],
    dst: [u8; 16],
    ports: [u8; 4],
}

/// One IPv6 connection: two cache lines (128 bytes, 64-byte aligned):
/// both keys (72 bytes), the [`ConnMeta`] shared with IPv4 (40 bytes),
/// and 16 bytes of padding.
#[derive(Clone, Copy, Debug, Zeroable, Pod)]
#[repr(C, align(64))]
pub struct Conn6 {
    original: Key6,
    reply: Key6,
    meta: ConnMeta,
    _pad: [u8; 16],
}

impl std::ops::Deref for Conn6 {
    type Target = ConnMeta;
    #[inline]
    fn deref(&self) -> &ConnMeta {
        &self.meta
    }
}

impl std::ops::DerefMut for Conn6 {
    #[inline]
    fn deref_mut(&mut self) -> &mut ConnMeta {
        &mut self.meta
    }
}

impl ConnEntry for Conn6 {
    type Addr = Ipv6Addr;

    #[inline]
    fn from_parts(original: Key6, reply: Key6, meta: ConnMeta) -> Conn6 {
        Conn6 {
            original,
            reply,
            meta,
            _pad: [0; 16],
        }
    }

    #[inline]
    fn stored(&self, dir: Direction) -> &Key6 {
        match dir {
            Direction::Original => &self.original,
            Direction::Reply => &self.reply,
        }
    }
}

impl Conn6 {
    /// The client → virtual server key.
    pub fn original(&self) -> FlowKey6 {
        self.original_key()
    }

    /// The key replies carry.
    pub fn reply(&self) -> FlowKey6 {
        self.reply_key()
    }

    /// The key of direction `dir`.
    pub fn key(&self, dir: Direction) -> FlowKey6 {
        match dir {
            Direction::Original => self.original(),
            Direction::Reply => self.reply(),
        }
    }
}

#[inline]
fn halves(a: &[u8; 16]) -> (u64, u64) {
    let v = u128::from_be_bytes(*a);
    ((v >> 64) as u64, v as u64)
}

impl ConnAddr for Ipv6Addr {
    type Key = Key6;
    type Conn = Conn6;

    #[inline]
    fn pack(key: &FlowKey6) -> Key6 {
        let ports = (u32::from(key.src_port) << 16) | u32::from(key.dst_port);
        Key6 {
            src: key.src.octets(),
            dst: key.dst.octets(),
            ports: ports.to_be_bytes(),
        }
    }

    #[inline]
    fn unpack(k: &Key6, proto: u8) -> FlowKey6 {
        let ports = u32::from_be_bytes(k.ports);
        FlowKey6 {
            src: Ipv6Addr::from(k.src),
            dst: Ipv6Addr::from(k.dst),
            src_port: (ports >> 16) as u16,
            dst_port: ports as u16,
            proto,
        }
    }

    /// Five folded multiplies, chained over the key's 64-bit words (the
    /// IPv4 hash's two, over 2.5 times the bytes), seeded the same way.
    #[inline]
    fn key_hash(k: &Key6, proto: u8, seed: &[u64; 2]) -> u32 {
        let (s0, s1) = halves(&k.src);
        let (d0, d1) = halves(&k.dst);
        let p = (u64::from(u32::from_be_bytes(k.ports)) << 8) | u64::from(proto);
        let mut h = fold_mul(s0 ^ seed[0], M1);
        h = fold_mul(h ^ s1, M2);
        h = fold_mul(h ^ d0 ^ seed[1], M1);
        h = fold_mul(h ^ d1, M2);
        h = fold_mul(h ^ p, M1);
        (h ^ (h >> 32)) as u32
    }
}

#[cfg(test)]
mod tests;
