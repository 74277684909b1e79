//! Sequence-number translation for bytes inserted into a client's stream
//! (the PROXY v2 header), and checksum-patched edits of a TCP segment.
//!
//! The balancer inserts `len` bytes at the client's first data byte,
//! sequence number `first` (the client's ISN + 1). The real server sees a
//! stream `len` bytes longer from there on:
//!
//! - client → server: a segment starting after `first` gets `seq + len`;
//!   one starting at `first` carries the header (sent or sent again) and
//!   keeps its number; one before `first` (nothing but the handshake) is
//!   left alone.
//! - server → client: an acknowledgment (the ACK field and the edges of
//!   SACK blocks) up to `first` is left alone; one inside the header
//!   (`first < a <= first + len`) acknowledges none of the client's bytes
//!   and becomes `first`; one past it becomes `a - len`.
//!
//! Comparisons are in sequence space (RFC 9293 3.4: modulo 2^32, "after"
//! meaning less than 2^31 ahead).

use crate::wire::checksum::{fold, sum, Patch};

/// TCP header offsets this module writes.
const SEQ: usize = 4;
const ACK: usize = 8;
const CHECKSUM: usize = 16;
const OPTIONS: usize = 20;
/// The SACK option's kind (RFC 2018).
const SACK: u8 = 5;
/// The MSS option's kind and length (RFC 9293 3.2).
const MSS: u8 = 2;
const MSS_LEN: usize = 4;

/// True when `a` comes after `b` in sequence space.
#[inline]
pub fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `len` bytes inserted into a client's stream at sequence number `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    /// The client's first data byte's sequence number (its ISN + 1).
    pub first: u32,
    /// Bytes inserted there.
    pub len: u32,
}

impl Shift {
    /// The sequence number a client segment starting at `seq` has on its
    /// way to the server.
    #[inline]
    pub fn client_seq(self, seq: u32) -> u32 {
        if after(seq, self.first) {
            seq.wrapping_add(self.len)
        } else {
            seq
        }
    }

    /// The acknowledgment `ack` from the server as the client must see it.
    #[inline]
    pub fn server_ack(self, ack: u32) -> u32 {
        let d = ack.wrapping_sub(self.first) as i32;
        if d <= 0 {
            ack
        } else if d as u32 <= self.len {
            self.first
        } else {
            ack.wrapping_sub(self.len)
        }
    }
}

/// Overwrites `seg[at..at + new.len()]` (inside a TCP segment, not its
/// checksum field) with `new` and patches the segment's checksum
/// incrementally, whatever the alignment of `at`: the old and new sums of
/// the 16-bit words covering the change are swapped (RFC 1624 eqn. 3 over
/// that region). The caller checked `at + new.len() <= seg.len()`.
pub fn write_patched(seg: &mut [u8], at: usize, new: &[u8]) {
    let start = at & !1;
    let end = (at + new.len() + 1) & !1;
    let end = end.min(seg.len());
    let old = fold(sum(&seg[start..end]));
    seg[at..at + new.len()].copy_from_slice(new);
    let now = fold(sum(&seg[start..end]));
    let ck = u16::from_be_bytes([seg[CHECKSUM], seg[CHECKSUM + 1]]);
    let ck = Patch::default().word(old, now).apply(ck);
    seg[CHECKSUM..CHECKSUM + 2].copy_from_slice(&ck.to_be_bytes());
}

/// Reads the big-endian u32 at `at`.
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Shifts the sequence number of the client segment `seg` (a whole TCP
/// header at least) by `shift`; true when it changed.
pub fn shift_client_seq(seg: &mut [u8], shift: Shift) -> bool {
    let seq = u32_at(seg, SEQ);
    let to = shift.client_seq(seq);
    if to != seq {
        write_patched(seg, SEQ, &to.to_be_bytes());
    }
    to != seq
}

/// Translates the acknowledgment number (when `ack_flag`) and every SACK
/// block edge of the server segment `seg` (a whole TCP header, options
/// included, `header_len` bytes) for the client; true when anything
/// changed.
pub fn translate_server_acks(
    seg: &mut [u8],
    header_len: usize,
    ack_flag: bool,
    shift: Shift,
) -> bool {
    let mut changed = false;
    if ack_flag {
        let ack = u32_at(seg, ACK);
        let to = shift.server_ack(ack);
        if to != ack {
            write_patched(seg, ACK, &to.to_be_bytes());
            changed = true;
        }
    }
    for_each_option(seg, header_len, |seg, at, kind, len| {
        if kind != SACK || len < 2 || (len - 2) % 8 != 0 {
            return;
        }
        let mut edge = at + 2;
        while edge + 4 <= at + len {
            let v = u32_at(seg, edge);
            let to = shift.server_ack(v);
            if to != v {
                write_patched(seg, edge, &to.to_be_bytes());
                changed = true;
            }
            edge += 4;
        }
    });
    changed
}

/// Lowers the MSS option of the SYN or SYN-ACK `seg` by `by` (not below
/// 536, RFC 9293's default, nor raised); true when it changed.
pub fn clamp_mss(seg: &mut [u8], header_len: usize, by: u16) -> bool {
    let mut changed = false;
    for_each_option(seg, header_len, |seg, at, kind, len| {
        if kind != MSS || len != MSS_LEN || changed {
            return;
        }
        let mss = u16::from_be_bytes([seg[at + 2], seg[at + 3]]);
        let to = mss.saturating_sub(by).max(536).min(mss);
        if to != mss {
            write_patched(seg, at + 2, &to.to_be_bytes());
            changed = true;
        }
    });
    changed
}

/// Calls `f(seg, offset, kind, len)` for every well-formed option of the
/// TCP header `seg[..header_len]` with a length byte; stops at the end of
/// options or a malformed length.
fn for_each_option(
    seg: &mut [u8],
    header_len: usize,
    mut f: impl FnMut(&mut [u8], usize, u8, usize),
) {
    let end = header_len.min(seg.len());
    let mut at = OPTIONS;
    while at < end {
        match seg[at] {
            0 => return,
            1 => at += 1,
            kind => {
                let Some(&len) = seg.get(at + 1) else { return };
                let len = usize::from(len);
                if len < 2 || at + len > end {
                    return;
                }
                f(seg, at, kind, len);
                at += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Shift = Shift {
        first: 1001,
        len: 28,
    };

    #[test]
    fn client_segments_after_the_first_byte_move_by_the_header() {
        assert_eq!(S.client_seq(1000), 1000, "the handshake is left alone");
        assert_eq!(
            S.client_seq(1001),
            1001,
            "the first segment carries the header"
        );
        assert_eq!(S.client_seq(1101), 1129);
    }

    #[test]
    fn server_acks_lose_the_header_and_never_acknowledge_inside_it() {
        assert_eq!(S.server_ack(1001), 1001);
        assert_eq!(S.server_ack(1015), 1001, "part of the header only");
        assert_eq!(S.server_ack(1029), 1001, "the header only");
        assert_eq!(S.server_ack(1129), 1101);
        assert_eq!(S.server_ack(900), 900);
    }

    #[test]
    fn translation_works_across_the_wrap_of_sequence_space() {
        let s = Shift {
            first: u32::MAX - 9,
            len: 28,
        };
        assert_eq!(s.client_seq(5), 33);
        assert_eq!(s.server_ack(33), 5);
        assert_eq!(s.server_ack(u32::MAX), s.first);
    }

    /// A TCP header with `options` and a payload, checksum filled over a
    /// pseudo-header of zeros (enough to test incremental patches).
    fn segment(options: &[u8], payload: &[u8]) -> Vec<u8> {
        let hl = 20 + options.len();
        let mut s = vec![0x9c, 0x40, 0, 80, 0, 0, 0x03, 0xe9, 0, 0, 0x07, 0xd0];
        s.extend_from_slice(&[((hl / 4) as u8) << 4, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        s.extend_from_slice(options);
        s.extend_from_slice(payload);
        let ck = crate::testutil::rfc1071(&s);
        s[16..18].copy_from_slice(&ck.to_be_bytes());
        s
    }

    fn valid(s: &[u8]) -> bool {
        crate::testutil::rfc1071(s) == 0
    }

    #[test]
    fn sack_edges_and_the_ack_are_translated_with_a_valid_checksum() {
        // ack 1129, one SACK block 1229..1329 behind two NOPs.
        let mut opts = vec![1, 1, 5, 10];
        opts.extend_from_slice(&1229u32.to_be_bytes());
        opts.extend_from_slice(&1329u32.to_be_bytes());
        let mut s = segment(&opts, b"x");
        s[8..12].copy_from_slice(&1129u32.to_be_bytes());
        let ck = crate::testutil::rfc1071(&{
            let mut z = s.clone();
            z[16] = 0;
            z[17] = 0;
            z
        });
        s[16..18].copy_from_slice(&ck.to_be_bytes());
        assert!(translate_server_acks(&mut s, 32, true, S));
        assert_eq!(u32_at(&s, 8), 1101);
        assert_eq!(u32_at(&s, 24), 1201);
        assert_eq!(u32_at(&s, 28), 1301);
        assert!(valid(&s));
    }

    #[test]
    fn a_sack_block_at_an_odd_offset_is_patched_right() {
        let mut opts = vec![1, 5, 10];
        opts.extend_from_slice(&2000u32.to_be_bytes());
        opts.extend_from_slice(&2100u32.to_be_bytes());
        opts.push(0);
        let mut s = segment(&opts, b"");
        assert!(translate_server_acks(&mut s, 32, false, S));
        assert_eq!(u32_at(&s, 23), 1972);
        assert_eq!(u32_at(&s, 27), 2072);
        assert!(valid(&s));
    }

    #[test]
    fn the_mss_is_clamped_by_the_growth_with_a_valid_checksum() {
        let mut s = segment(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2], b"");
        assert!(clamp_mss(&mut s, 28, 28));
        assert_eq!(u16::from_be_bytes([s[22], s[23]]), 1460 - 28);
        assert!(valid(&s));
        let mut small = segment(&[2, 4, 0x02, 0x18], b"");
        assert!(!clamp_mss(&mut small, 24, 28), "536 is the floor");
    }

    #[test]
    fn malformed_options_end_the_walk_without_panic() {
        for opts in [vec![5, 0, 0, 0], vec![5, 40, 0, 0], vec![2, 1, 0, 0]] {
            let mut s = segment(&opts, b"");
            let before = s.clone();
            translate_server_acks(&mut s, 24, false, S);
            clamp_mss(&mut s, 24, 8);
            assert_eq!(s, before);
        }
    }

    #[test]
    fn a_shifted_client_sequence_number_keeps_the_checksum_valid() {
        let mut s = segment(&[], b"GET /");
        s[4..8].copy_from_slice(&1101u32.to_be_bytes());
        let ck = crate::testutil::rfc1071(&{
            let mut z = s.clone();
            z[16] = 0;
            z[17] = 0;
            z
        });
        s[16..18].copy_from_slice(&ck.to_be_bytes());
        assert!(shift_client_seq(&mut s, S));
        assert_eq!(u32_at(&s, 4), 1129);
        assert!(valid(&s));
    }
}
