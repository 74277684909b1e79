//! A TCP reset answering an IPv6 segment, built in place: the IPv6 twin
//! of `rst` (same RFC 9293 3.10.7.1 rule for the sequence and
//! acknowledgement numbers). The reset carries no extension headers: the
//! request's (destination options, a first fragment's header) are dropped
//! and the TCP header written right after a fresh 40-byte IPv6 header; its
//! checksum covers the IPv6 pseudo-header (RFC 8200 8.1).

use crate::wire::ipv6::{self, next_header};
use crate::wire::tcp;
use std::net::Ipv6Addr;

/// Hop limit of the resets rvs sends (as `rst::RST_TTL`).
pub const RST_HOP_LIMIT: u8 = 64;

/// Length of the reset: IPv6 header and a TCP header without options.
pub const RST_LEN: usize = ipv6::HEADER_LEN + tcp::MIN_HEADER_LEN;

/// What the reset needs from the segment it answers.
struct Answered {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    src_port: u16,
    dst_port: u16,
    flags: tcp::Flags,
    seq: u32,
    ack: u32,
    seq_len: u32,
}

impl Answered {
    /// Reads a whole IPv6 packet whose chain walks to a whole TCP header
    /// (not on a source route, not a later fragment).
    fn read(ip: &[u8]) -> Option<Answered> {
        let p = ipv6::Packet::new_checked(ip).ok()?;
        let upper = p.upper_layer().ok()?;
        if upper.protocol != next_header::TCP || upper.segments_left != 0 {
            return None;
        }
        let end = ipv6::HEADER_LEN + p.payload().len();
        let t = tcp::Packet::new_checked(ip.get(upper.offset..end)?).ok()?;
        let flags = t.flags();
        let payload = u32::try_from(t.payload().len()).ok()?;
        Some(Answered {
            src: p.src_addr(),
            dst: p.dst_addr(),
            src_port: t.src_port(),
            dst_port: t.dst_port(),
            flags,
            seq: t.seq_number(),
            ack: t.ack_number(),
            seq_len: payload + u32::from(flags.syn()) + u32::from(flags.fin()),
        })
    }
}

/// Rewrites the IPv6+TCP packet in `ip` into the reset that answers it,
/// from its destination to its source, without extension headers,
/// options or payload. Returns the reset's length ([`RST_LEN`]); the
/// caller cuts the frame to it. Bytes that are not an IPv6 packet walking
/// to a whole TCP header are left untouched, and 0 returned.
pub fn answer_with_reset(ip: &mut [u8]) -> usize {
    let Some(seg) = Answered::read(ip) else {
        return 0;
    };
    // The request held at least a 40-byte header and a 20-byte TCP header.
    let Some(b) = ip.get_mut(..RST_LEN) else {
        return 0;
    };
    let (ih, th) = b.split_at_mut(ipv6::HEADER_LEN);
    let Ok(mut p) = ipv6::Packet::init_header(ih) else {
        return 0;
    };
    p.set_payload_len(tcp::MIN_HEADER_LEN as u16);
    p.set_next_header(next_header::TCP);
    p.set_hop_limit(RST_HOP_LIMIT);
    p.set_src_addr(seg.dst);
    p.set_dst_addr(seg.src);
    let Ok(mut t) = tcp::Packet::init_header(&mut *th) else {
        return 0;
    };
    t.set_src_port(seg.dst_port);
    t.set_dst_port(seg.src_port);
    if seg.flags.ack() {
        t.set_seq_number(seg.ack);
        t.set_flags(tcp::Flags(tcp::Flags::RST));
    } else {
        t.set_ack_number(seg.seq.wrapping_add(seg.seq_len));
        t.set_flags(tcp::Flags(tcp::Flags::RST | tcp::Flags::ACK));
    }
    if ipv6::fill_upper_checksum(seg.dst, seg.src, next_header::TCP, th).is_err() {
        return 0;
    }
    RST_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

    /// An IPv6 packet from CLIENT:40000 to VIP:80, with `ext` (a
    /// destination-options header when non-empty) before TCP.
    fn segment(flags: u8, seq: u32, ack: u32, dest_opts: bool, payload: &[u8]) -> Vec<u8> {
        let ext: &[u8] = if dest_opts {
            &[next_header::TCP, 0, 1, 4, 0, 0, 0, 0]
        } else {
            &[]
        };
        let plen = ext.len() + 20 + payload.len();
        let mut b = vec![0u8; 40];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        b[6] = if dest_opts { 60 } else { next_header::TCP };
        b[7] = 57;
        b[8..24].copy_from_slice(&CLIENT.octets());
        b[24..40].copy_from_slice(&VIP.octets());
        b.extend_from_slice(ext);
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t.extend_from_slice(payload);
        b.extend_from_slice(&t);
        b
    }

    fn tcp_of(b: &[u8]) -> tcp::Packet<&[u8]> {
        tcp::Packet::new_checked(&b[40..RST_LEN]).unwrap()
    }

    #[test]
    fn a_syn_is_answered_with_rst_ack_of_its_sequence_plus_one() {
        let mut b = segment(tcp::Flags::SYN, 1000, 0, false, &[]);
        assert_eq!(answer_with_reset(&mut b), RST_LEN);
        let p = ipv6::Packet::new_checked(&b[..RST_LEN]).unwrap();
        assert_eq!((p.src_addr(), p.dst_addr()), (VIP, CLIENT));
        assert_eq!(p.hop_limit(), RST_HOP_LIMIT);
        assert_eq!(p.payload_len(), 20);
        let t = tcp_of(&b);
        assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
        assert_eq!(t.flags().0, tcp::Flags::RST | tcp::Flags::ACK);
        assert_eq!(t.ack_number(), 1001);
        assert!(ipv6::verify_upper_checksum(
            VIP,
            CLIENT,
            next_header::TCP,
            &b[40..RST_LEN]
        ));
    }

    #[test]
    fn a_segment_with_ack_gets_a_reset_sequenced_at_its_ack() {
        let mut b = segment(tcp::Flags::ACK | tcp::Flags::PSH, 5, 777, false, b"hello");
        assert_eq!(answer_with_reset(&mut b), RST_LEN);
        let t = tcp_of(&b);
        assert_eq!(t.flags().0, tcp::Flags::RST);
        assert_eq!(t.seq_number(), 777);
    }

    #[test]
    fn extension_headers_of_the_request_are_not_in_the_reset() {
        let mut b = segment(tcp::Flags::SYN, 9, 0, true, &[]);
        assert_eq!(answer_with_reset(&mut b), RST_LEN);
        let p = ipv6::Packet::new_checked(&b[..RST_LEN]).unwrap();
        assert_eq!(p.next_header(), next_header::TCP);
        assert_eq!(tcp_of(&b).ack_number(), 10);
        assert!(ipv6::verify_upper_checksum(
            VIP,
            CLIENT,
            next_header::TCP,
            &b[40..RST_LEN]
        ));
    }

    #[test]
    fn bytes_that_are_not_ipv6_tcp_are_left_alone() {
        let mut b = segment(tcp::Flags::SYN, 9, 0, false, &[]);
        b[6] = next_header::UDP;
        let before = b.clone();
        assert_eq!(answer_with_reset(&mut b), 0);
        assert_eq!(b, before);
        assert_eq!(answer_with_reset(&mut [0x60, 0, 0]), 0);
    }
}
