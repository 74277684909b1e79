//! The forwarding methods as pure rewrites over an IPv4 packet's bytes.
//!
//! Each function takes the bytes from the IPv4 header on (already checked
//! with `wire::ipv4::Packet::new_checked` and its header checksum verified)
//! and rewrites them in place with incremental checksum updates (RFC 1624),
//! so the cost per packet is a few loads and stores whatever its size.
//! They read and write only through the `wire` views, which check again
//! what they rely on: bytes that are not what a function expects are
//! refused (or left untouched), never a panic.
//! Link-layer work (MACs, VLAN tags, the headroom an IPIP header needs) is
//! the worker's; these functions never allocate.

pub mod fullnat;
pub mod nat;
#[cfg(test)]
mod never_panics;
pub mod rst;
pub mod synproxy;
pub mod tun;

use std::net::Ipv4Addr;

/// An address and port: one end of a flow as rvs rewrites it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// TCP or UDP port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint.
    pub const fn new(ip: Ipv4Addr, port: u16) -> Endpoint {
        Endpoint { ip, port }
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
