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

    /// Wraps the start of a datagram quoted in an ICMP error (RFC 792
    /// quotes at least 8 bytes: the whole UDP header): only the header
    /// must be there. The length field may claim more than was quoted, so
    /// `payload()` stops at the buffer's end, and `verify_checksum()` is
    /// meaningless on a cut datagram (it reads only what is there).
    pub fn new_checked_quoted(buffer: T) -> Result<Packet<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
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

    /// The payload, up to the length field (or the buffer's end, for a
    /// quoted datagram or a length set past it).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[HEADER_LEN..self.end()]
    }

    /// True when there is no checksum or it sums correctly.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = &self.buffer.as_ref()[..self.end()];
        checksum::transport_sum(src, dst, 17, b) == 0xffff
    }

    /// Where the datagram ends: the length field, kept within the header
    /// and the buffer so no accessor can panic whatever a setter wrote.
    fn end(&self) -> usize {
        usize::from(self.len()).clamp(HEADER_LEN, self.buffer.as_ref().len())
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

    /// Sets the source port and patches the checksum for it with
    /// [`update_checksum`] (a zero "none" stays zero); returns the old port.
    pub fn set_src_port_patched(&mut self, port: u16) -> u16 {
        let old = self.src_port();
        self.set_checksum(update_checksum(self.checksum(), old, port));
        self.set_src_port(port);
        old
    }

    /// Sets the destination port and patches the checksum for it, as
    /// [`Packet::set_src_port_patched`]; returns the old port.
    pub fn set_dst_port_patched(&mut self, port: u16) -> u16 {
        let old = self.dst_port();
        self.set_checksum(update_checksum(self.checksum(), old, port));
        self.set_dst_port(port);
        old
    }

    /// Patches the checksum for a pseudo-header address that changed from
    /// `old` to `new` (a zero "none" stays zero, a computed zero is sent
    /// as 0xFFFF).
    pub fn patch_pseudo_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        let ck = update_checksum_u32(self.checksum(), old.into(), new.into());
        self.set_checksum(ck);
    }

    /// Computes the checksum (a zero result is sent as 0xFFFF).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = &self.buffer.as_ref()[..self.end()];
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
    fn quoted_datagram_may_be_cut_after_its_header() {
        let b = datagram(b"a longer payload");
        assert_eq!(Packet::new_checked(&b[..12]).err(), Some(Error::Truncated));
        let p = Packet::new_checked_quoted(&b[..12]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (12345, 53, 24));
        assert_eq!(p.payload(), b"a lo");
        assert_eq!(
            Packet::new_checked_quoted(&b[..7]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn a_length_set_past_the_buffer_does_not_panic() {
        let mut b = datagram(b"abc");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_len(2000);
        assert_eq!(p.payload(), b"abc");
        p.set_len(3);
        assert!(p.payload().is_empty());
        p.fill_checksum(SRC, DST);
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
        fn patched_rewrites_equal_full_recompute(
            sport in any::<u16>(), dport in any::<u16>(),
            new_src in any::<u32>(), new_dst in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = datagram(&payload);
            let (src, dst) = (Ipv4Addr::from(new_src), Ipv4Addr::from(new_dst));
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.patch_pseudo_addr(SRC, src);
            p.patch_pseudo_addr(DST, dst);
            prop_assert_eq!(p.set_src_port_patched(sport), 12345);
            prop_assert_eq!(p.set_dst_port_patched(dport), 53);
            let patched = p.checksum();
            prop_assert_ne!(patched, 0, "a real checksum never becomes 'none'");
            p.fill_checksum(src, dst);
            prop_assert_eq!(patched, p.checksum());
        }

        #[test]
        fn patched_rewrites_keep_no_checksum_none(
            port in any::<u16>(), new_dst in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = datagram(&payload);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.set_checksum(0);
            p.patch_pseudo_addr(DST, Ipv4Addr::from(new_dst));
            p.set_dst_port_patched(port);
            p.set_src_port_patched(port);
            prop_assert_eq!(p.checksum(), 0);
        }

        #[test]
        fn quoted_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(mut p) = Packet::new_checked_quoted(bytes) {
                let _ = (p.payload().len(), p.verify_checksum(SRC, DST));
                p.patch_pseudo_addr(SRC, DST);
                p.set_dst_port_patched(1);
                p.fill_checksum(SRC, DST);
            }
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.payload().len(), p.verify_checksum(SRC, DST));
            }
        }
    }
}
