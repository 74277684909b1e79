//! ICMP for IPv4 (RFC 792): echo, and the errors that quote an IP header.
//!
//! The view covers the whole ICMP message (header and data) because the
//! checksum does. For errors (destination unreachable, time exceeded, ...)
//! `data()` is the quoted IP header plus at least 8 bytes of its payload,
//! which the NAT path translates so path MTU discovery works through rvs.

use super::{checksum, get_u16, put_u16, Error};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Echo: identifier; errors: unused / next-hop MTU (bytes 6-7).
    pub const REST: usize = 4;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// The destination-unreachable code for "fragmentation needed and DF
/// set" (RFC 792), which carries the next-hop MTU (RFC 1191).
pub const CODE_FRAG_NEEDED: u8 = 4;

/// ICMP message types rvs distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// 0.
    EchoReply,
    /// 3 (code 4 = fragmentation needed).
    DstUnreachable,
    /// 5.
    Redirect,
    /// 8.
    EchoRequest,
    /// 11.
    TimeExceeded,
    /// 12.
    ParamProblem,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(v: u8) -> Self {
        match v {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            5 => Message::Redirect,
            8 => Message::EchoRequest,
            11 => Message::TimeExceeded,
            12 => Message::ParamProblem,
            o => Message::Unknown(o),
        }
    }
}

impl From<Message> for u8 {
    fn from(v: Message) -> u8 {
        match v {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Unknown(o) => o,
        }
    }
}

impl Message {
    /// True for the errors that quote the offending packet's IP header.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Message::DstUnreachable
                | Message::Redirect
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    }
}

/// A view of an ICMP message.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer rvs built itself.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> Message {
        self.buffer.as_ref()[field::TYPE].into()
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as on the wire.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::REST)
    }

    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::REST + 2)
    }

    /// Next-hop MTU of a fragmentation-needed error (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::REST + 2)
    }

    /// What follows the header: echo data, or an error's quoted packet.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// True when the whole message sums correctly.
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type (the checksum is not updated).
    pub fn set_msg_type(&mut self, m: Message) {
        self.buffer.as_mut()[field::TYPE] = m.into();
    }

    /// Sets the code (the checksum is not updated).
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::REST, v);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::REST + 2, v);
    }

    /// Sets the next-hop MTU (bytes 6-7) and zeroes the unused bytes 4-5.
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        put_u16(self.buffer.as_mut(), field::REST, 0);
        put_u16(self.buffer.as_mut(), field::REST + 2, mtu);
    }

    /// The data after the header, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Turns an echo request into its reply in place: type 0, code 0, the
    /// checksum patched for the one word that changed (RFC 1624).
    pub fn make_echo_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = get_u16(b, field::TYPE);
        b[field::TYPE] = Message::EchoReply.into();
        b[field::CODE] = 0;
        let ck = checksum::update_u16(get_u16(b, field::CHECKSUM), old, 0);
        put_u16(b, field::CHECKSUM, ck);
    }

    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let ck = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(ck);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
        let mut b = vec![8, 0, 0, 0];
        b.extend_from_slice(&ident.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(data);
        let ck = checksum::checksum(&b);
        b[2..4].copy_from_slice(&ck.to_be_bytes());
        b
    }

    #[test]
    fn reads_an_echo_request() {
        let b = echo_request(0x1234, 7, b"hello");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(p.code(), 0);
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 7));
        assert_eq!(p.data(), b"hello");
        assert!(p.verify_checksum());
    }

    #[test]
    fn short_is_truncated() {
        assert_eq!(
            Packet::new_checked(&[8u8, 0, 0, 0, 0, 0, 0][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn error_types_are_errors() {
        assert!(Message::DstUnreachable.is_error());
        assert!(Message::TimeExceeded.is_error());
        assert!(!Message::EchoRequest.is_error());
    }

    #[test]
    fn fragmentation_needed_mtu_round_trips() {
        let mut b = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(Message::DstUnreachable);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_next_hop_mtu(1480);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1480);
        assert!(p.verify_checksum());
    }

    proptest! {
        #[test]
        fn echo_reply_equals_full_recompute(
            ident in any::<u16>(), seq in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut b = echo_request(ident, seq, &data);
            Packet::new_checked(&mut b[..]).unwrap().make_echo_reply();
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(p.msg_type(), Message::EchoReply);
            prop_assert!(p.verify_checksum());
            let mut full = b.clone();
            Packet::new_unchecked(&mut full[..]).fill_checksum();
            prop_assert_eq!(&b, &full);
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.echo_ident(), p.echo_seq(),
                         p.data().len(), p.verify_checksum());
            }
        }
    }
}
