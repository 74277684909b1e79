//! Helpers shared by the unit tests.
//!
//! `rfc1071` is the Internet checksum written out the plain way, 16 bits at
//! a time, independently of `wire::checksum`: tests judge the packets rvs
//! builds with it, so a bug in the fast checksum cannot hide behind itself.

/// RFC 1071's checksum: the complement of the folded 1's complement sum of
/// `data` as big-endian 16-bit words (an odd last byte padded with zero).
/// Zero over a block that includes its checksum field means valid.
pub fn rfc1071(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for (i, b) in data.iter().enumerate() {
        acc += if i % 2 == 0 {
            u32::from(*b) << 8
        } else {
            u32::from(*b)
        };
    }
    while acc > 0xffff {
        acc = (acc >> 16) + (acc & 0xffff);
    }
    !(acc as u16)
}
