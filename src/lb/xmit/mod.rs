//! The forwarding methods as pure rewrites over an IP packet's bytes:
//! IPv4 in `nat`, `fullnat`, `tun`, `rst`, `synproxy`; IPv6 in `nat6`,
//! `fullnat6`, `tun6`, `rst6` (DR, of either family, changes only the link layer: it is the
//! worker's).
//!
//! Each function takes the bytes from the IP header on (IPv4: already
//! checked with `wire::ipv4::Packet::new_checked` and its header checksum
//! verified; IPv6: checked again here, its extension headers walked by
//! `wire::ipv6::Packet::upper_layer`) and rewrites them in place with incremental checksum updates (RFC 1624),
//! so the cost per packet is a few loads and stores whatever its size.
//! They read and write only through the `wire` views, which check again
//! what they rely on: bytes that are not what a function expects are
//! refused (or left untouched), never a panic.
//! Link-layer work (MACs, VLAN tags, the headroom an IPIP header needs) is
//! the worker's; these functions never allocate.

pub mod fullnat;
pub mod fullnat6;
pub mod nat;
pub mod nat6;
pub mod nat64;
#[cfg(test)]
mod never_panics;
pub mod rst;
pub mod rst6;
pub mod synproxy;
#[cfg(test)]
mod test_support6;
pub mod tun;
pub mod tun6;

use std::net::{Ipv4Addr, Ipv6Addr};

/// An address and port: one end of a flow as rvs rewrites it, over an
/// address of one family: [`Endpoint`] (IPv4) or [`Endpoint6`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointOf<A> {
    /// The address.
    pub ip: A,
    /// TCP or UDP port.
    pub port: u16,
}

/// An IPv4 address and port.
pub type Endpoint = EndpointOf<Ipv4Addr>;

/// An IPv6 address and port (printed `[addr]:port`).
pub type Endpoint6 = EndpointOf<Ipv6Addr>;

impl<A> EndpointOf<A> {
    /// An endpoint.
    pub const fn new(ip: A, port: u16) -> EndpointOf<A> {
        EndpointOf { ip, port }
    }
}

impl std::fmt::Display for Endpoint6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]:{}", self.ip, self.port)
    }
}

/// Why a packet could not be rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmitError {
    /// TTL would reach zero: a router must not forward it.
    TtlExpired,
    /// Not TCP or UDP, or the transport header is cut short.
    Unsupported,
    /// The packet does not fit the outgoing MTU once encapsulated, and
    /// may not be fragmented (the caller answers with ICMP).
    TooBig {
        /// The largest inner packet that would fit.
        mtu: u16,
    },
}
