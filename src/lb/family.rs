//! The address families the balancing core works over: IPv4 and IPv6.
//!
//! The core is written once and instantiated for each family
//! (monomorphised: the IPv4 instances compile to what they were before
//! IPv6 came), rather than over `IpAddr`, whose match per use would cost
//! the IPv4 hot path a branch and its 4-byte keys a 17-byte enum. This
//! trait is what the family-agnostic parts need of an address: the
//! scheduler's client hash (`sh`, `mh`), and the 32-bit key under which
//! persistence templates (`lb::persist`) and per-client counts
//! (`lb::clients`) are kept.
//!
//! Those tables key clients by 32 bits: an IPv4 address (or prefix) is its
//! own key, unchanged; an IPv6 one is folded to 32 bits by a fixed mix.
//! Two IPv6 clients whose keys collide (about one pair in 2^32) share a
//! persistence template (each still sticks to one server: the key is a
//! function of the address) or a per-client count (the limit is reached
//! sooner for both). Keeping the tables' 16-byte entries is worth that.

use super::acl::Acl;
use super::sched::hash::mix64;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The prefix an IPv6 client is counted under by a service's
/// `max_conns_per_client`: a /64, the subnet one host or LAN gets
/// (RFC 7421), since a single IPv6 host may use any address of it. The
/// IPv4 `client_prefix_len` does not apply to IPv6 clients.
pub const IPV6_CLIENT_PREFIX: u8 = 64;

/// An address family of the balancing core (see the module doc).
pub trait IpFamily:
    Copy + Eq + std::hash::Hash + std::fmt::Debug + std::fmt::Display + Send + Sync + 'static
{
    /// Bits in an address.
    const BITS: u8;
    /// The scheduler's hash of a client address under the seeded `key`
    /// (`sched::hash::FlowHasher`).
    fn client_hash(self, key: u64) -> u64;
    /// The 32-bit key of the address's first `prefix_len` bits (clamped
    /// to [`IpFamily::BITS`]): the masked address itself for IPv4, a mix
    /// of the masked address for IPv6.
    fn prefix_key(self, prefix_len: u8) -> u32;
    /// The prefix a per-client limit counts this family's clients under,
    /// given the service's IPv4 `client_prefix_len`.
    fn client_prefix_len(ipv4_prefix_len: u8) -> u8;
    /// Whether a service's `allow`/`deny` lists let this client in.
    fn allowed_by(self, acl: &Acl) -> bool;
    /// The address as IPv4: an IPv4 address itself, an IPv4-mapped IPv6
    /// address (`::ffff:a.b.c.d`, how a NAT64 connection's reply key names
    /// its IPv4 ends: `lb::xmit::nat64`) the address it maps; `None` for
    /// other IPv6 addresses. With [`IpFamily::as_ipv6`], how a generic path
    /// picks its family's state (FullNAT's local ports).
    fn as_ipv4(self) -> Option<Ipv4Addr>;
    /// The address as IPv6; `None` for IPv4.
    fn as_ipv6(self) -> Option<Ipv6Addr>;
}

impl IpFamily for Ipv4Addr {
    const BITS: u8 = 32;

    #[inline]
    fn as_ipv4(self) -> Option<Ipv4Addr> {
        Some(self)
    }

    #[inline]
    fn as_ipv6(self) -> Option<Ipv6Addr> {
        None
    }

    #[inline]
    fn client_hash(self, key: u64) -> u64 {
        mix64(u64::from(u32::from(self)) ^ key)
    }

    #[inline]
    fn prefix_key(self, prefix_len: u8) -> u32 {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix_len.min(32)))
            .unwrap_or(0);
        u32::from(self) & mask
    }

    #[inline]
    fn client_prefix_len(ipv4_prefix_len: u8) -> u8 {
        ipv4_prefix_len
    }

    #[inline]
    fn allowed_by(self, acl: &Acl) -> bool {
        acl.allows(self)
    }
}

impl IpFamily for Ipv6Addr {
    const BITS: u8 = 128;

    #[inline]
    fn as_ipv4(self) -> Option<Ipv4Addr> {
        self.to_ipv4_mapped()
    }

    #[inline]
    fn as_ipv6(self) -> Option<Ipv6Addr> {
        Some(self)
    }

    /// Both halves through the same finaliser, chained: every bit of the
    /// address moves the result.
    #[inline]
    fn client_hash(self, key: u64) -> u64 {
        let v = u128::from(self);
        mix64(mix64((v >> 64) as u64 ^ key) ^ v as u64)
    }

    #[inline]
    fn prefix_key(self, prefix_len: u8) -> u32 {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(prefix_len.min(128)))
            .unwrap_or(0);
        let v = u128::from(self) & mask;
        let h = mix64(mix64((v >> 64) as u64) ^ v as u64);
        (h ^ (h >> 32)) as u32
    }

    #[inline]
    fn client_prefix_len(_: u8) -> u8 {
        IPV6_CLIENT_PREFIX
    }

    #[inline]
    fn allowed_by(self, acl: &Acl) -> bool {
        acl.allows_ipv6(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv4_prefix_key_is_the_masked_address() {
        let a = Ipv4Addr::new(198, 51, 100, 77);
        assert_eq!(a.prefix_key(32), u32::from(a));
        assert_eq!(a.prefix_key(24), u32::from(Ipv4Addr::new(198, 51, 100, 0)));
        assert_eq!(a.prefix_key(0), 0);
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_share_its_key_and_others_do_not() {
        let a = v6("2001:db8:1:2::7");
        let b = v6("2001:db8:1:2:ffff::1");
        let c = v6("2001:db8:1:3::7");
        assert_eq!(a.prefix_key(64), b.prefix_key(64));
        assert_ne!(a.prefix_key(64), c.prefix_key(64));
        assert_ne!(a.prefix_key(128), b.prefix_key(128));
        assert_eq!(a.prefix_key(200), a.prefix_key(128));
    }

    #[test]
    fn the_ipv6_client_hash_depends_on_both_halves_and_the_key() {
        let a = v6("2001:db8::1");
        assert_ne!(a.client_hash(1), v6("2001:db9::1").client_hash(1));
        assert_ne!(a.client_hash(1), v6("2001:db8::2").client_hash(1));
        assert_ne!(a.client_hash(1), a.client_hash(2));
    }

    proptest::proptest! {
        /// Two IPv6 addresses agreeing on their first `len` bits share the
        /// key of that prefix; the IPv4 key is the masked address.
        #[test]
        fn addresses_of_one_prefix_share_its_key(a: u128, b: u128, len in 0u8..=128) {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            let b = (a & mask) | (b & !mask);
            proptest::prop_assert_eq!(
                Ipv6Addr::from(a).prefix_key(len),
                Ipv6Addr::from(b).prefix_key(len)
            );
            let m4 = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
            proptest::prop_assert_eq!(Ipv4Addr::from(a as u32).prefix_key(len), a as u32 & m4);
        }
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_whatever_the_ipv4_prefix() {
        assert_eq!(Ipv6Addr::client_prefix_len(24), 64);
        assert_eq!(Ipv4Addr::client_prefix_len(24), 24);
    }
}
