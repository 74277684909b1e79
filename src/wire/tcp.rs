//! TCP segment headers (RFC 9293), options tolerated.
//!
//! rvs never terminates TCP; it reads ports and flags to track connection
//! state and rewrites ports and checksums when it translates. The checksum
//! covers the IPv4 pseudo-header, so checksum helpers take both addresses.

use super::{checksum, get_u16, get_u32, put_u16, Error};
use std::net::Ipv4Addr;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const MIN_HEADER_LEN: usize = 20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::MIN_HEADER_LEN;
/// Offset of the checksum field (for translating quoted segments).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// The TCP flag bits rvs looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;

    /// FIN set.
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// SYN set.
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// RST set.
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    /// ACK set.
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// A view of a TCP segment (header and payload).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer rvs built itself.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes (an IPv4 payload): a full header whose data
    /// offset is at least 5 words and within the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let len = buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Packet { buffer };
        let hl = p.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Receive window.
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum as on the wire.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Options bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True when the segment sums correctly with the pseudo-header.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        if u16::try_from(b.len()).is_err() {
            return false;
        }
        checksum::transport_sum(src, dst, 6, b) == 0xffff
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

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Recomputes the checksum over pseudo-header and segment.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let ck = !checksum::transport_sum(src, dst, 6, self.buffer.as_ref());
        self.set_checksum(ck);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

    /// A SYN from 40000 to 80 with an MSS option and a valid checksum.
    fn syn() -> Vec<u8> {
        let mut s = vec![
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff,
        ];
        s.extend_from_slice(&[0, 0, 0, 0, 2, 4, 0x05, 0xb4]);
        let mut p = Packet::new_unchecked(&mut s[..]);
        p.fill_checksum(SRC, DST);
        s
    }

    #[test]
    fn reads_a_syn_with_options() {
        let b = syn();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.header_len(), 24);
        assert!(p.flags().syn() && !p.flags().ack());
        assert_eq!(p.options(), &[2, 4, 0x05, 0xb4]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(203, 0, 113, 6)));
    }

    #[test]
    fn data_offset_below_five_is_malformed() {
        let mut b = syn();
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn data_offset_beyond_buffer_is_truncated() {
        let mut b = syn();
        b[12] = 0xf0;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&b[..19]).err(), Some(Error::Truncated));
    }

    proptest! {
        #[test]
        fn port_rewrite_with_incremental_checksum_equals_full(
            port in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..40)
        ) {
            let mut b = syn();
            b.extend_from_slice(&payload);
            Packet::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            let old = p.dst_port();
            p.set_dst_port(port);
            let ck = checksum::update_u16(p.checksum(), old, port);
            p.set_checksum(ck);
            prop_assert!(p.verify_checksum(SRC, DST));
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.options().len(), p.payload().len(), p.flags(), p.verify_checksum(SRC, DST));
            }
        }
    }
}
