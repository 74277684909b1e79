//! The TOA option ("TCP Option Address"): the TCP option Alibaba's LVS
//! fork and DPVS write so a real server behind a FullNAT balancer learns
//! its client's address, read there by a kernel module (`toa.ko`).
//!
//! Layout (8 bytes, network byte order):
//!
//! ```text
//!  0        1        2        3        4        5        6        7
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | kind   | length | client port     | client IPv4 address               |
//! |  254   |   8    |                 |                                   |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! ```
//!
//! Kind 254 is one of RFC 4727's experimental kinds. The module hooks the
//! kernel's `syn_recv_sock` (the child socket made when the ACK that
//! completes the handshake arrives) and reads the option from that
//! segment only; `getpeername()` on the accepted socket then returns the
//! address and port the option carried. So the option must ride on the
//! handshake-completing ACK; rvs writes it into every client segment whose
//! sequence number is the client's ISN + 1 (the handshake ACK, and the
//! first data segment, which completes the handshake when the bare ACK
//! was lost), and their retransmissions.
//!
//! rvs inserts the option first among the options: a parser stops at an
//! end-of-options byte, so an option appended after one would be missed.

use std::net::Ipv4Addr;

/// The option's kind.
pub const KIND: u8 = 254;

/// The option's length, kind and length bytes included.
pub const LEN: usize = 8;

/// The option carrying `client` (address and port).
pub fn option(client: Ipv4Addr, port: u16) -> [u8; LEN] {
    let p = port.to_be_bytes();
    let a = client.octets();
    [KIND, LEN as u8, p[0], p[1], a[0], a[1], a[2], a[3]]
}

/// The client address and port of a TOA option found in `options` (a TCP
/// header's option bytes), as the kernel module reads it; `None` when
/// there is none or the options are malformed before it.
pub fn find(options: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let mut o = options;
    while let Some((&kind, rest)) = o.split_first() {
        match kind {
            0 => return None,
            1 => o = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if len < 2 || len > o.len() {
                    return None;
                }
                if kind == KIND && len == LEN {
                    let ip = Ipv4Addr::new(o[4], o[5], o[6], o[7]);
                    return Some((ip, u16::from_be_bytes([o[2], o[3]])));
                }
                o = &o[len..];
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_matches_a_scapy_built_reference() {
        // python3 -c "from scapy.all import *; \
        //   print(bytes(TCP(options=[(254, b'\x9c\x40\xc6\x33\x64\x07')]))[20:28].hex())"
        // -> fe089c40c6336407 (port 40000, 198.51.100.7)
        let reference = [0xfe, 0x08, 0x9c, 0x40, 0xc6, 0x33, 0x64, 0x07];
        assert_eq!(option(Ipv4Addr::new(198, 51, 100, 7), 40000), reference);
    }

    #[test]
    fn find_reads_the_option_past_nops_and_others() {
        let mut opts = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        opts.extend_from_slice(&option(Ipv4Addr::new(192, 0, 2, 1), 1234));
        assert_eq!(find(&opts), Some((Ipv4Addr::new(192, 0, 2, 1), 1234)));
    }

    #[test]
    fn find_stops_at_the_end_of_options_and_on_malformed_lengths() {
        let mut opts = vec![0];
        opts.extend_from_slice(&option(Ipv4Addr::new(192, 0, 2, 1), 1));
        assert_eq!(find(&opts), None);
        assert_eq!(find(&[2, 0, 0, 0]), None);
        assert_eq!(find(&[254, 8, 1]), None);
    }
}
