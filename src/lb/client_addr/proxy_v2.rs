//! The PROXY protocol, version 2 (HAProxy's `proxy-protocol.txt`, section
//! 2.2): a binary header a proxy sends before the client's first byte so
//! the server (nginx `listen ... proxy_protocol`, HAProxy `accept-proxy`)
//! learns the connection's original addresses.
//!
//! For TCP over IPv4 the header is 28 bytes:
//!
//! ```text
//! 0                   12   13   14      16        20        24     26     28
//! +--------------------+----+----+-------+---------+---------+------+------+
//! | signature          |0x21|0x11| len=12| src addr| dst addr| sport| dport|
//! | \r\n\r\n\0\r\nQUIT\n|    |    |       |         |         |      |      |
//! +--------------------+----+----+-------+---------+---------+------+------+
//! ```
//!
//! - `0x21`: version 2 (high nibble), command PROXY (low nibble 1: the
//!   addresses are the original connection's);
//! - `0x11`: family AF_INET (high nibble 1), transport STREAM (low 1);
//! - `len`: the bytes after these 16 (the address block, 12 for IPv4),
//!   big endian; addresses and ports in network byte order.
//!
//! `src` is the client, `dst` the address it connected to (the VIP).

use crate::lb::xmit::Endpoint;

/// The 12-byte signature every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];

/// Version 2, command PROXY.
pub const VERSION_COMMAND: u8 = 0x21;

/// Family AF_INET, transport STREAM: TCP over IPv4.
pub const TCP_OVER_IPV4: u8 = 0x11;

/// The header's length for TCP over IPv4: 16 bytes of fixed part and 12
/// of addresses.
pub const LEN_V4: usize = 28;

/// The header for a TCP connection from `src` (the client) to `dst`
/// (the address the client connected to).
pub fn header_v4(src: Endpoint, dst: Endpoint) -> [u8; LEN_V4] {
    let mut h = [0u8; LEN_V4];
    h[..12].copy_from_slice(&SIGNATURE);
    h[12] = VERSION_COMMAND;
    h[13] = TCP_OVER_IPV4;
    h[14..16].copy_from_slice(&12u16.to_be_bytes());
    h[16..20].copy_from_slice(&src.ip.octets());
    h[20..24].copy_from_slice(&dst.ip.octets());
    h[24..26].copy_from_slice(&src.port.to_be_bytes());
    h[26..28].copy_from_slice(&dst.port.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_ipv4_header_is_the_specification_s_28_bytes() {
        let h = header_v4(
            Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 40000),
            Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
        );
        let expected: [u8; 28] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP/IPv4, 12 bytes follow
            198, 51, 100, 7, // source address
            203, 0, 113, 100, // destination address
            0x9c, 0x40, // source port 40000
            0x00, 0x50, // destination port 80
        ];
        assert_eq!(h, expected);
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
    }
}
