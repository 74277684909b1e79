//! UDP datagram headers (RFC 768), including the zero ("no") checksum.
//!
//! RFC 768: "An all zero transmitted checksum value means that the
//! transmitter generated no checksum"; a computed checksum of zero is sent
//! as all ones. Rewrites keep a zero checksum zero and never turn a real
//! one into zero ([`update_checksum`]).

use super::{checksum, get_u16, put_u16, Error};
use std::net::Ipv4Addr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Offset of the checksum field (for translating quoted datagrams).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of a UDP datagram.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer rvs built itself.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes (an IPv4 payload): the 8-byte header and a
    /// length field between 8 and the buffer's length.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Packet { buffer };
        let l = usize::from(p.len());
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Checksum as on the wire (0: none).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True when there is no checksum or it sums correctly.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::transport_sum(src, dst, 17, b) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (the checksum is not updated).
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port (the checksum is not updated).
    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Computes the checksum (a zero result is sent as 0xFFFF).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = &self.buffer.as_ref()[..usize::from(self.len())];
        let ck = !checksum::transport_sum(src, dst, 17, b);
        self.set_checksum(if ck == 0 { 0xffff } else { ck });
    }
}

/// A UDP checksum after one 16-bit word of what it covers changed: zero
/// ("no checksum") stays zero, and a result of zero is sent as 0xFFFF.
pub fn update_checksum(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    if old_checksum == 0 {
        return 0;
    }
    match checksum::update_u16(old_checksum, old_word, new_word) {
        0 => 0xffff,
        ck => ck,
    }
}

/// As [`update_checksum`] for a 32-bit field (an address in the pseudo-header).
pub fn update_checksum_u32(old_checksum: u16, old: u32, new: u32) -> u16 {
    if old_checksum == 0 {
        return 0;
    }
    match checksum::update_u32(old_checksum, old, new) {
        0 => 0xffff,
        ck => ck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + payload.len()) as u16;
        let mut b = vec![0x30, 0x39, 0x00, 0x35];
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(payload);
        Packet::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
        b
    }

    #[test]
    fn reads_a_datagram() {
        let b = datagram(b"query");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (12345, 53, 13));
        assert_eq!(p.payload(), b"query");
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut b = datagram(b"x");
        b[6] = 0;
        b[7] = 0;
        assert!(Packet::new_checked(&b[..])
            .unwrap()
            .verify_checksum(SRC, DST));
        assert_eq!(update_checksum(0, 53, 8053), 0);
        assert_eq!(update_checksum_u32(0, 1, 2), 0);
    }

    #[test]
    fn length_field_is_checked() {
        let mut b = datagram(b"abc");
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[5] = 12;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn padding_after_length_is_not_payload() {
        let mut b = datagram(b"abc");
        b.extend_from_slice(&[0xee; 6]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), b"abc");
        assert!(p.verify_checksum(SRC, DST));
    }

    proptest! {
        #[test]
        fn port_and_address_rewrites_keep_checksum_valid(
            port in any::<u16>(), new_dst in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = datagram(&payload);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            let old_port = p.dst_port();
            p.set_dst_port(port);
            let ck = update_checksum(p.checksum(), old_port, port);
            let ck = update_checksum_u32(ck, u32::from(DST), new_dst);
            p.set_checksum(ck);
            prop_assert_ne!(p.checksum(), 0, "a real checksum never becomes 'none'");
            prop_assert!(p.verify_checksum(SRC, Ipv4Addr::from(new_dst)));
        }

        #[test]
        fn incremental_equals_full_recompute(
            port in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = datagram(&payload);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            let old = p.dst_port();
            p.set_dst_port(port);
            let inc = update_checksum(p.checksum(), old, port);
            p.fill_checksum(SRC, DST);
            // Both encodings of zero (0x0000 is 'none') are sent as 0xFFFF.
            prop_assert_eq!(inc, p.checksum());
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.payload().len(), p.verify_checksum(SRC, DST));
            }
        }
    }
}
