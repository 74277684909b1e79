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

use crate::wire::{checksum, get_u16, get_u32, put_u16};

/// TTL of the resets rvs sends.
pub const RST_TTL: u8 = 64;

/// Rewrites the IPv4+TCP packet in `ip` (already checked: a whole TCP
/// header) into the reset that answers it, from its destination to its
/// source, without options or payload. Returns the new IPv4 total length;
/// the caller cuts the frame to it.
pub fn answer_with_reset(ip: &mut [u8]) -> usize {
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(get_u16(ip, 2)).min(ip.len());
    let seg_len = total - hl;
    let t = hl;
    let data_off = usize::from(ip[t + 12] >> 4) * 4;
    let flags = ip[t + 13];
    let seq = get_u32(ip, t + 4);
    let ack = get_u32(ip, t + 8);
    let payload = seg_len.saturating_sub(data_off) as u32;

    // IPv4: swap addresses, no options, fresh TTL and length.
    let (src, dst) = (
        [ip[12], ip[13], ip[14], ip[15]],
        [ip[16], ip[17], ip[18], ip[19]],
    );
    let new_total = 20 + 20;
    // Move the TCP header right after a 20-byte IP header when options
    // were present.
    if hl != 20 {
        ip.copy_within(t..t + 20, 20);
    }
    ip[0] = 0x45;
    ip[1] = 0;
    put_u16(ip, 2, new_total as u16);
    put_u16(ip, 4, 0);
    put_u16(ip, 6, 0x4000);
    ip[8] = RST_TTL;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&dst);
    ip[16..20].copy_from_slice(&src);
    put_u16(ip, 10, 0);
    let ck = checksum::checksum(&ip[..20]);
    put_u16(ip, 10, ck);

    // TCP: swap ports, RST (+ACK), no options, no window.
    let tcp = &mut ip[20..40];
    let (sport, dport) = (get_u16(tcp, 0), get_u16(tcp, 2));
    put_u16(tcp, 0, dport);
    put_u16(tcp, 2, sport);
    if flags & 0x10 != 0 {
        tcp[4..8].copy_from_slice(&ack.to_be_bytes());
        tcp[8..12].copy_from_slice(&[0; 4]);
        tcp[13] = 0x04; // RST
    } else {
        let syn_fin = u32::from(flags & 0x02 != 0) + u32::from(flags & 0x01 != 0);
        tcp[4..8].copy_from_slice(&[0; 4]);
        tcp[8..12].copy_from_slice(&seq.wrapping_add(payload + syn_fin).to_be_bytes());
        tcp[13] = 0x14; // RST, ACK
    }
    tcp[12] = 0x50;
    put_u16(tcp, 14, 0);
    put_u16(tcp, 16, 0);
    put_u16(tcp, 18, 0);
    let pseudo = checksum::sum(&dst) + checksum::sum(&src) + 6 + 20;
    let ck = !checksum::fold(pseudo + checksum::sum(tcp));
    put_u16(tcp, 16, ck);
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
    fn a_segment_with_ack_is_answered_with_rst_at_that_ack() {
        let mut p = segment(0x18, 5000, 777, &[], b"GET / HTTP/1.1\r\n");
        let n = answer_with_reset(&mut p);
        let r = &p[..n];
        assert_eq!(u32::from_be_bytes([r[24], r[25], r[26], r[27]]), 777);
        assert_eq!(r[33], 0x04, "RST only");
        assert!(tcp_ok(r));
    }
}
