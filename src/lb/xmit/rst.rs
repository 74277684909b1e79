//! A TCP reset answering a segment, built in place (RFC 9293 3.10.7.1:
//! "If the incoming segment has an ACK field, the reset takes its
//! sequence number from the ACK field of the segment, otherwise the reset
//! has sequence number zero and the ACK field is set to the sum of the
//! sequence number and segment length of the incoming segment").
//!
//! rvs sends one for a new connection when every real server of the
//! service is down (the client sees a refusal at once instead of a hang),
//! and for a segment of a connection whose real server went down, so the
//! client gives up on it quickly and reconnects to a live one.

use crate::wire::{ipv4, tcp};
use std::net::Ipv4Addr;

/// TTL of the resets rvs sends.
pub const RST_TTL: u8 = 64;

/// What the reset needs from the segment it answers.
struct Answered {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    flags: tcp::Flags,
    seq: u32,
    ack: u32,
    /// Sequence space the segment took: its payload, plus one each for
    /// SYN and FIN.
    seq_len: u32,
}

impl Answered {
    /// Reads a whole IPv4 packet carrying a whole TCP header.
    fn read(ip: &[u8]) -> Option<Answered> {
        let p = ipv4::Packet::new_checked(ip).ok()?;
        if p.protocol() != ipv4::Protocol::Tcp {
            return None;
        }
        let t = tcp::Packet::new_checked(p.payload()).ok()?;
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

/// Rewrites the IPv4+TCP packet in `ip` (already checked: a whole TCP
/// header) into the reset that answers it, from its destination to its
/// source, without options or payload. Returns the new IPv4 total length;
/// the caller cuts the frame to it. Bytes that are not an IPv4 packet
/// carrying a whole TCP header are left untouched, and 0 returned.
pub fn answer_with_reset(ip: &mut [u8]) -> usize {
    let Some(seg) = Answered::read(ip) else {
        return 0;
    };
    let new_total = ipv4::MIN_HEADER_LEN + tcp::MIN_HEADER_LEN;
    // Both headers are written afresh over the start of the old packet
    // (at least as long: IPv4 and TCP headers of 20 bytes or more).
    let (ih, th) = ip.split_at_mut(ipv4::MIN_HEADER_LEN);
    let Some(th) = th.get_mut(..tcp::MIN_HEADER_LEN) else {
        return 0;
    };

    // IPv4: swapped addresses, no options, fresh TTL and length, DF.
    let Ok(mut p) = ipv4::Packet::init_header(ih) else {
        return 0;
    };
    p.set_total_len(new_total as u16);
    p.set_unfragmented(true);
    p.set_ttl(RST_TTL);
    p.set_protocol(ipv4::Protocol::Tcp);
    p.set_src_addr(seg.dst);
    p.set_dst_addr(seg.src);
    p.fill_checksum();

    // TCP: swapped ports, RST (+ACK), no options, no window.
    let Ok(mut t) = tcp::Packet::init_header(th) else {
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
    t.fill_checksum(seg.dst, seg.src);
    new_total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071, independently of `wire::checksum` (see `crate::testutil`).
    fn csum(data: &[u8]) -> u16 {
        crate::testutil::rfc1071(data)
    }

    fn segment(flags: u8, seq: u32, ack: u32, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let th = 20 + options.len();
        let total = 20 + th + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            7,
            0x40,
            0,
            55,
            6,
            0,
            0,
        ];
        p.extend_from_slice(&[198, 51, 100, 7, 203, 0, 113, 100]);
        let ck = csum(&p);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        p.extend_from_slice(&[0x9c, 0x40, 0, 80]);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ack.to_be_bytes());
        p.extend_from_slice(&[((th / 4) << 4) as u8, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(options);
        p.extend_from_slice(payload);
        p
    }

    fn tcp_ok(p: &[u8]) -> bool {
        let mut pseudo = p[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        pseudo.extend_from_slice(&p[20..40]);
        csum(&pseudo) == 0
    }

    #[test]
    fn a_syn_is_answered_with_rst_ack_of_its_sequence_plus_one() {
        let mut p = segment(0x02, 1000, 0, &[2, 4, 5, 0xb4], &[]);
        let n = answer_with_reset(&mut p);
        let r = &p[..n];
        assert_eq!(n, 40);
        assert_eq!(&r[12..16], &[203, 0, 113, 100], "from the VIP");
        assert_eq!(&r[16..20], &[198, 51, 100, 7], "to the client");
        assert_eq!(&r[20..24], &[0, 80, 0x9c, 0x40], "ports swapped");
        assert_eq!(&r[24..28], &[0; 4], "seq 0");
        assert_eq!(u32::from_be_bytes([r[28], r[29], r[30], r[31]]), 1001);
        assert_eq!(r[33], 0x14, "RST+ACK");
        assert_eq!(csum(&r[..20]), 0);
        assert!(tcp_ok(r));
    }

    #[test]
    fn ip_options_are_dropped_from_the_reset() {
        let mut p = segment(0x02, 1000, 0, &[], &[]);
        // Insert four bytes of IP options (NOP NOP NOP EOL).
        p.splice(20..20, [1, 1, 1, 0]);
        p[0] = 0x46;
        p[3] += 4;
        p[10] = 0;
        p[11] = 0;
        let ck = csum(&p[..24]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        let n = answer_with_reset(&mut p);
        let r = &p[..n];
        assert_eq!(n, 40);
        assert_eq!(r[0], 0x45);
        assert_eq!(&r[20..24], &[0, 80, 0x9c, 0x40], "ports swapped");
        assert_eq!(u32::from_be_bytes([r[28], r[29], r[30], r[31]]), 1001);
        assert_eq!(csum(&r[..20]), 0);
        assert!(tcp_ok(r));
    }

    #[test]
    fn a_fin_without_ack_counts_one_in_the_answer() {
        let mut p = segment(0x01, 70, 0, &[], b"abc");
        let n = answer_with_reset(&mut p);
        let r = &p[..n];
        assert_eq!(u32::from_be_bytes([r[28], r[29], r[30], r[31]]), 74);
        assert_eq!(r[33], 0x14, "RST+ACK");
    }

    #[test]
    fn what_is_not_a_whole_tcp_segment_gets_no_reset() {
        let mut p = segment(0x02, 1000, 0, &[], &[]);
        p[9] = 17;
        let before = p.clone();
        assert_eq!(answer_with_reset(&mut p), 0);
        assert_eq!(p, before);
        let mut p = segment(0x02, 1000, 0, &[], &[]);
        p.truncate(39);
        p[3] = 39;
        let before = p.clone();
        assert_eq!(answer_with_reset(&mut p), 0);
        assert_eq!(p, before);
        assert_eq!(answer_with_reset(&mut []), 0);
    }

    #[test]
    fn a_segment_with_ack_is_answered_with_rst_at_that_ack() {
        let mut p = segment(0x18, 5000, 777, &[], b"GET / HTTP/1.1\r\n");
        let n = answer_with_reset(&mut p);
        let r = &p[..n];
        assert_eq!(u32::from_be_bytes([r[24], r[25], r[26], r[27]]), 777);
        assert_eq!(r[33], 0x04, "RST only");
        assert!(tcp_ok(r));
    }
}
