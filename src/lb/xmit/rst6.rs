//! A TCP reset answering an IPv6 segment, built in place: `xmit::rst`'s
//! rule (RFC 9293 3.10.7.1: the reset takes its sequence number from the
//! segment's ACK field, or else acknowledges the segment's sequence
//! space) over IPv6, for [`crate::lb::balancer::Decision6::Reset`] (every
//! real server down, or the connection's server went down).
//!
//! The answer is a fresh 40-byte IPv6 header (hop limit [`RST_HOP_LIMIT`],
//! traffic class and flow label 0, no extension headers) and a 20-byte
//! TCP header, from the segment's destination to its source, the TCP
//! checksum over the IPv6 pseudo-header.

use crate::wire::ipv6::{self, next_header};
use crate::wire::tcp;
use std::net::Ipv6Addr;

/// Hop limit of the resets rvs sends.
pub const RST_HOP_LIMIT: u8 = 64;

/// Length of the reset: IPv6 and TCP headers, nothing else.
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
    /// Sequence space the segment took: payload, plus one each for SYN
    /// and FIN.
    seq_len: u32,
}

impl Answered {
    /// Reads an IPv6 packet whose chain walks to a whole TCP header (not
    /// on a source route, not a fragment: a first fragment's payload
    /// length is not the segment's).
    fn read(ip: &[u8]) -> Option<Answered> {
        let p = ipv6::Packet::new_checked(ip).ok()?;
        let upper = p.upper_layer().ok()?;
        if upper.protocol != next_header::TCP
            || upper.segments_left != 0
            || upper.fragment.is_some_and(|f| !f.is_atomic())
        {
            return None;
        }
        let l4 = p.payload().get(upper.offset - ipv6::HEADER_LEN..)?;
        let t = tcp::Packet::new_checked(l4).ok()?;
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

/// Rewrites the IPv6 TCP segment in `ip` into the reset that answers it.
/// Returns the reset's length ([`RST_LEN`]); the caller cuts the frame to
/// it. Bytes that are not an IPv6 packet carrying a whole TCP header (at
/// least [`RST_LEN`] bytes, which every such packet is) are left untouched,
/// and 0 returned.
pub fn answer_with_reset(ip: &mut [u8]) -> usize {
    let Some(seg) = Answered::read(ip) else {
        return 0;
    };
    let Some(out) = ip.get_mut(..RST_LEN) else {
        return 0;
    };
    let (ih, th) = out.split_at_mut(ipv6::HEADER_LEN);
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
mod tests;
