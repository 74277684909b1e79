//! IP prefixes: an address with a prefix length, as written in configs
//! (`10.0.0.1/24` or `2001:db8:1::1/64` for an interface address,
//! `10.1.0.0/16` or `2001:db8::/32` for a route).
//!
//! One generic [`Cidr`] serves both families: the prefix arithmetic is
//! done on the address as an unsigned integer ([`CidrAddr::Bits`], `u32`
//! or `u128`), so IPv4 and IPv6 share every line of it. [`Ipv4Cidr`] and
//! [`Ipv6Cidr`] are its two instances.

use std::fmt;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::{BitAnd, BitXor, Not, Shl};
use std::str::FromStr;

/// An address family's address as prefix arithmetic needs it.
pub trait CidrAddr: Copy + Eq + Hash + fmt::Debug + fmt::Display + FromStr {
    /// The address as an unsigned integer of its width.
    type Bits: Copy
        + Eq
        + fmt::Debug
        + BitAnd<Output = Self::Bits>
        + BitXor<Output = Self::Bits>
        + Not<Output = Self::Bits>
        + Shl<u32, Output = Self::Bits>;
    /// Address width in bits (32 or 128).
    const BITS: u8;
    /// All bits set.
    const ONES: Self::Bits;
    /// No bit set.
    const ZERO: Self::Bits;
    /// The unspecified address (`0.0.0.0`, `::`).
    const UNSPECIFIED: Self;
    /// The family's name in messages ("IPv4", "IPv6").
    const FAMILY: &'static str;
    /// An example prefix for messages.
    const EXAMPLE: &'static str;
    /// The address as an integer (network order's most significant first).
    fn to_int(self) -> Self::Bits;
    /// The address of an integer.
    fn from_int(bits: Self::Bits) -> Self;
}

impl CidrAddr for Ipv4Addr {
    type Bits = u32;
    const BITS: u8 = 32;
    const ONES: u32 = u32::MAX;
    const ZERO: u32 = 0;
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
    const FAMILY: &'static str = "IPv4";
    const EXAMPLE: &'static str = "10.0.0.1/24";
    fn to_int(self) -> u32 {
        u32::from(self)
    }
    fn from_int(bits: u32) -> Self {
        Ipv4Addr::from(bits)
    }
}

impl CidrAddr for Ipv6Addr {
    type Bits = u128;
    const BITS: u8 = 128;
    const ONES: u128 = u128::MAX;
    const ZERO: u128 = 0;
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
    const FAMILY: &'static str = "IPv6";
    const EXAMPLE: &'static str = "2001:db8:1::1/64";
    fn to_int(self) -> u128 {
        u128::from(self)
    }
    fn from_int(bits: u128) -> Self {
        Ipv6Addr::from(bits)
    }
}

/// An address with a prefix length (0..=32 for IPv4, 0..=128 for IPv6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Cidr<A> {
    addr: A,
    prefix_len: u8,
}

/// An IPv4 prefix.
pub type Ipv4Cidr = Cidr<Ipv4Addr>;
/// An IPv6 prefix.
pub type Ipv6Cidr = Cidr<Ipv6Addr>;

impl<A: CidrAddr> Cidr<A> {
    /// Builds a prefix; `None` when `prefix_len` exceeds the address width.
    pub fn new(addr: A, prefix_len: u8) -> Option<Self> {
        (prefix_len <= A::BITS).then_some(Cidr { addr, prefix_len })
    }

    /// The address as written (host bits kept).
    pub fn addr(&self) -> A {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask as a host-order integer.
    pub fn mask(&self) -> A::Bits {
        if self.prefix_len == 0 {
            A::ZERO
        } else {
            A::ONES << u32::from(A::BITS - self.prefix_len)
        }
    }

    /// The prefix with its host bits cleared.
    pub fn network(&self) -> Self {
        Cidr {
            addr: A::from_int(self.addr.to_int() & self.mask()),
            prefix_len: self.prefix_len,
        }
    }

    /// True when the written address has no host bits set (a route prefix).
    pub fn is_network(&self) -> bool {
        self.addr.to_int() & !self.mask() == A::ZERO
    }

    /// True when `ip` lies inside this prefix.
    pub fn contains(&self, ip: A) -> bool {
        (ip.to_int() ^ self.addr.to_int()) & self.mask() == A::ZERO
    }
}

impl<A: CidrAddr> fmt::Display for Cidr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a string is not a prefix of the expected family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCidrError {
    text: String,
    family: &'static str,
    example: &'static str,
}

impl fmt::Display for ParseCidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} prefix {:?}: expected ADDRESS/LEN like {}",
            self.family, self.text, self.example
        )
    }
}

impl std::error::Error for ParseCidrError {}

impl<A: CidrAddr> FromStr for Cidr<A> {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCidrError {
            text: s.to_string(),
            family: A::FAMILY,
            example: A::EXAMPLE,
        };
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: A = addr.parse().map_err(|_| err())?;
        let max_digits = if A::BITS >= 100 { 3 } else { 2 };
        if len.is_empty() || len.len() > max_digits || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let len: u8 = len.parse().map_err(|_| err())?;
        Cidr::new(addr, len).ok_or_else(err)
    }
}

/// A prefix of either family, as a config list that holds both is read.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum IpCidr {
    /// An IPv4 prefix.
    V4(Ipv4Cidr),
    /// An IPv6 prefix.
    V6(Ipv6Cidr),
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpCidr::V4(c) => c.fmt(f),
            IpCidr::V6(c) => c.fmt(f),
        }
    }
}

impl FromStr for IpCidr {
    type Err = ParseCidrError;

    /// An address with a `:` is IPv6, any other IPv4 (so the error names
    /// the family the text looks like).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(IpCidr::V6)
        } else {
            s.parse().map(IpCidr::V4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        let x = c("10.0.0.1/24");
        assert_eq!(x.addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(x.prefix_len(), 24);
        assert_eq!(x.to_string(), "10.0.0.1/24");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0/8",
            "10.0.0.1/+8",
            "/8",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn contains_and_network() {
        let x = c("10.0.0.1/24");
        assert!(x.contains(Ipv4Addr::new(10, 0, 0, 254)));
        assert!(!x.contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(x.network(), c("10.0.0.0/24"));
        assert!(!x.is_network());
        assert!(c("10.0.0.0/24").is_network());
        assert!(c("0.0.0.0/0").contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(c("192.0.2.7/32").contains(Ipv4Addr::new(192, 0, 2, 7)));
    }

    fn c6(s: &str) -> Ipv6Cidr {
        s.parse().unwrap()
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_parses_and_displays() {
        let x = c6("2001:db8:1::1/64");
        assert_eq!(x.addr(), ip6("2001:db8:1::1"));
        assert_eq!(x.prefix_len(), 64);
        assert_eq!(x.to_string(), "2001:db8:1::1/64");
    }

    #[test]
    fn ipv6_rejects_malformed() {
        for bad in [
            "2001:db8::1",
            "2001:db8::1/129",
            "2001:db8::1/",
            "2001:db8::1/0064",
            "10.0.0.1/24",
            "2001:db8:::1/64",
        ] {
            assert!(bad.parse::<Ipv6Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_contains_and_network() {
        let x = c6("2001:db8:1::1/64");
        assert!(x.contains(ip6("2001:db8:1::ffff:1")));
        assert!(!x.contains(ip6("2001:db8:2::1")));
        assert_eq!(x.network(), c6("2001:db8:1::/64"));
        assert!(!x.is_network());
        assert!(c6("::/0").contains(ip6("fe80::1")));
        assert!(c6("2001:db8::7/128").contains(ip6("2001:db8::7")));
        assert!(!c6("2001:db8::7/128").contains(ip6("2001:db8::8")));
        assert_eq!(c6("2001:db8::/32").mask(), !0u128 << 96);
    }

    #[test]
    fn either_family_is_told_by_its_colons() {
        assert_eq!(
            "10.0.0.1/24".parse::<IpCidr>(),
            Ok(IpCidr::V4(c("10.0.0.1/24")))
        );
        assert_eq!(
            "2001:db8::1/64".parse::<IpCidr>(),
            Ok(IpCidr::V6(c6("2001:db8::1/64")))
        );
        let e = "2001:db8::1/200".parse::<IpCidr>().unwrap_err();
        assert!(e.to_string().contains("IPv6"), "{e}");
    }
}
