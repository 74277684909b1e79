//! What the IPv6 forwarding tests (`nat6`, `fullnat6`) share: the
//! addresses their scapy vectors use (C = 2001:db8:1::7, V = 2001:db8::10,
//! R = 2001:db8:2::11), the client's SYN both start from, and the
//! checksum judges they assert with.

use super::Endpoint6;
use crate::wire::{icmpv6, ipv6};
use std::net::Ipv6Addr;

/// The client.
pub const C: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
/// The service's VIP.
pub const V: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// The real server.
pub const R: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x11);

/// `IPv6(src=C,dst=V,hlim=64)/TCP(sport=40000,dport=80,flags="S",seq=1000,window=64240)/b"hi"`
pub const TCP_IN: &[u8] = &[
    0x60, 0x00, 0x00, 0x00, 0x00, 0x16, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8,
    0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0x50, 0x84, 0x00, 0x00, 0x68, 0x69,
];

/// Shorthand for an endpoint.
pub fn ep(ip: Ipv6Addr, port: u16) -> Endpoint6 {
    Endpoint6::new(ip, port)
}

/// The TCP/UDP checksum of `ip` verifies with the wire code.
pub fn l4_ok(ip: &[u8]) -> bool {
    let p = ipv6::Packet::new_checked(ip).unwrap();
    let u = p.upper_layer().unwrap();
    ipv6::verify_upper_checksum(p.src_addr(), p.dst_addr(), u.protocol, &ip[u.offset..])
}

/// The ICMPv6 checksum of `ip` (an ICMPv6 message right after the fixed
/// header) verifies with the wire code.
pub fn icmp_ok(ip: &[u8]) -> bool {
    let v = ipv6::Packet::new_checked(ip).unwrap();
    icmpv6::Packet::new_checked(&ip[40..])
        .unwrap()
        .verify_checksum(v.src_addr(), v.dst_addr())
}
