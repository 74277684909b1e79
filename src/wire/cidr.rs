//! IPv4 prefixes: an address with a prefix length, as written in configs
//! (`10.0.0.1/24` for an interface address, `10.1.0.0/16` for a route).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length (0..=32).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// Builds a prefix; `None` when `prefix_len` exceeds 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        (prefix_len <= 32).then_some(Ipv4Cidr { addr, prefix_len })
    }

    /// The address as written (host bits kept).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask as a host-order integer.
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len))
        }
    }

    /// The prefix with its host bits cleared.
    pub fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix_len: self.prefix_len,
        }
    }

    /// True when the written address has no host bits set (a route prefix).
    pub fn is_network(&self) -> bool {
        u32::from(self.addr) & !self.mask() == 0
    }

    /// True when `ip` lies inside this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a string is not an IPv4 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCidrError(String);

impl fmt::Display for ParseCidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid IPv4 prefix {:?}: expected ADDRESS/LEN like 10.0.0.1/24",
            self.0
        )
    }
}

impl std::error::Error for ParseCidrError {}

impl FromStr for Ipv4Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCidrError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let len: u8 = len.parse().map_err(|_| err())?;
        Ipv4Cidr::new(addr, len).ok_or_else(err)
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
}
