//! IPv6 fragments of a known connection (issue 19), on the IPv4 scheme of
//! `lb::frag`: the first fragment (it carries the ports) is decided like
//! any packet of its connection and its decision kept under the
//! datagram's identity; later fragments follow it, or wait for it in the
//! same small bounded queue. The table is `lb::frag`'s, instantiated for
//! IPv6 keys and routes.
//!
//! RFC 8200 4.5 identifies a fragmented packet by its source, destination
//! and 32-bit identification (the next header is not part of it).

use super::frag::{FragId, FragTable};
use super::service::ForwardMethod;
use std::net::Ipv6Addr;

/// The identity of one fragmented IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The fragment header's identification.
    pub ident: u32,
}

impl FragId for FragKey6 {
    fn hash(&self, seed: u64) -> u64 {
        let (s, d) = (u128::from(self.src), u128::from(self.dst));
        let mut h = seed ^ u64::from(self.ident);
        for w in [s as u64, (s >> 64) as u64, d as u64, (d >> 64) as u64] {
            h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
    }
}

/// What later fragments of an IPv6 packet do: the first fragment's
/// decision, reduced to the IP level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragRoute6 {
    /// A client's packet: to this real server by `method` (NAT rewrites
    /// the destination address to it; DR and TUN leave the header).
    ToRealServer {
        /// NAT, DR or TUN.
        method: ForwardMethod,
        /// The real server's address.
        real: Ipv6Addr,
    },
    /// A NAT real server's reply: the source becomes `vip`.
    ToClient {
        /// The service's address.
        vip: Ipv6Addr,
    },
    /// FullNAT, either way: both addresses become `src` → `dst` (the
    /// local address → the real server, or the VIP → the client).
    FullNat {
        /// The new source.
        src: Ipv6Addr,
        /// The new destination.
        dst: Ipv6Addr,
    },
}

/// One worker's IPv6 fragment state.
pub type FragTable6<F> = FragTable<F, FragKey6, FragRoute6>;

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn key(ident: u32) -> FragKey6 {
        FragKey6 {
            src: "2001:db8:c::1".parse().unwrap(),
            dst: "2001:db8:1::100".parse().unwrap(),
            ident,
        }
    }

    fn route() -> FragRoute6 {
        FragRoute6::ToRealServer {
            method: ForwardMethod::Nat,
            real: "2001:db8:2::11".parse().unwrap(),
        }
    }

    #[test]
    fn a_later_fragment_finds_its_first_fragments_decision_by_the_32_bit_ident() {
        let mut t: FragTable6<u8> = FragTable::new(64, 4, 2 * SEC, 1);
        t.record(key(0x1234_5678), route(), 0);
        assert_eq!(t.lookup(&key(0x1234_5678), SEC), Some(route()));
        assert_eq!(t.lookup(&key(0x5678), SEC), None);
        assert_eq!(t.lookup(&key(0x1234_5678), 2 * SEC), None);
    }

    #[test]
    fn the_wait_queue_is_bounded() {
        let mut t: FragTable6<u8> = FragTable::new(64, 2, 2 * SEC, 1);
        assert!(t.wait(key(1), 1, 0).is_ok());
        assert!(t.wait(key(1), 2, 0).is_ok());
        assert_eq!(t.wait(key(2), 3, 0), Err(3));
        assert_eq!(t.take_waiting(&key(1)).map(|w| w.frame), Some(1));
    }
}
