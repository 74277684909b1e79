//! Wire formats: zero-copy typed views over byte buffers, and the small value
//! types (MAC addresses, IPv4 prefixes) that every layer above shares.
//!
//! Nothing here knows DPDK: views work over any `AsRef<[u8]>`, so the whole
//! layer is unit-tested and fuzzed without the EAL.
//!
//! The shape follows smoltcp's: a `Packet<T>` (or `Frame<T>`) wraps a buffer;
//! `new_checked` is the only way in for untrusted bytes and checks every
//! length the accessors rely on, so no accessor can panic afterwards;
//! setters exist only where `T: AsMut<[u8]>`; field offsets live in one
//! private `field` module per format.
//!
//! Rewrites go through setters named `*_patched` (and `patch_pseudo_addr`),
//! which keep the checksums right incrementally (RFC 1624), so code above
//! this layer never touches a byte offset. Headers rvs builds start from
//! `init_header`; ICMP errors quote packets cut short, read through the
//! `new_checked_quoted` / `tcp::Quoted` views, which promise only what a
//! quote is sure to hold.
//!
//! IPv6 ([`ipv6`], [`icmpv6`]) has the same shape but is not yet used by
//! the data path: its header has no checksum, its extension headers are
//! walked with a bound ([`ipv6::Packet::upper_layer`]), and the upper-layer
//! checksums cover a 128-bit pseudo-header ([`ipv6::addr_patch`]).
//! [`fuzz`] is the `ipv6_wire` cargo-fuzz target's harness.

pub mod arp;
pub mod checksum;
pub mod cidr;
pub mod ethernet;
pub mod fuzz;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod tcp;
pub mod udp;

pub use cidr::{IpCidr, Ipv4Cidr, Ipv6Cidr};
pub use mac::MacAddr;

use std::fmt;

/// Why bytes could not be viewed as a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the headers (or lengths) it claims.
    Truncated,
    /// Fields that cannot be right (wrong version, IHL below 5, ...).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
        })
    }
}

impl std::error::Error for Error {}

/// Reads a big-endian u16 at `at` (callers have checked the length).
#[inline]
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Writes a big-endian u16 at `at`.
#[inline]
pub(crate) fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Reads a big-endian u32 at `at`.
#[inline]
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Reads a MAC address at `at`.
#[inline]
pub(crate) fn get_mac(buf: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&buf[at..at + 6]);
    MacAddr(m)
}
