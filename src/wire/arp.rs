//! ARP for IPv4 over Ethernet (RFC 826), the only kind rvs speaks.
//!
//! `new_checked` accepts only hardware type 1 (Ethernet, 6-byte addresses)
//! and protocol type 0x0800 (IPv4, 4-byte addresses), so every accessor has
//! fixed offsets and cannot read past the 28 bytes it checked.

use super::{get_mac, get_u16, put_u16, Error, MacAddr};
use std::net::Ipv4Addr;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const LEN: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::LEN;

/// ARP operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// 1: who has the target address?
    Request,
    /// 2: the sender has it.
    Reply,
    /// Anything else (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Unknown(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(o) => o,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn get_ip(buf: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer rvs built itself (at least [`PACKET_LEN`] bytes).
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: 28 bytes at least, Ethernet/IPv4 only
    /// (anything else is malformed for rvs).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        if b.len() < field::LEN {
            return Err(Error::Truncated);
        }
        if get_u16(b, field::HTYPE) != 1
            || get_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Malformed);
        }
        Ok(Packet { buffer })
    }

    /// Request, reply, or other.
    pub fn operation(&self) -> Operation {
        get_u16(self.buffer.as_ref(), field::OPER).into()
    }

    /// Sender hardware address.
    pub fn sender_hw_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::SHA)
    }

    /// Sender protocol address.
    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        get_ip(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    pub fn target_hw_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::THA)
    }

    /// Target protocol address.
    pub fn target_proto_addr(&self) -> Ipv4Addr {
        get_ip(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed Ethernet/IPv4 header fields (for building requests).
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put_u16(b, field::HTYPE, 1);
        put_u16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: Operation) {
        put_u16(self.buffer.as_mut(), field::OPER, op.into());
    }

    /// Sets the sender hardware address.
    pub fn set_sender_hw_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&mac.0);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_proto_addr(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&ip.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hw_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&mac.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_proto_addr(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ARP request from 192.0.2.10 (02:..:0a) for 192.0.2.1, from the
    /// bytes of RFC 826's layout.
    fn request() -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend_from_slice(&[2, 0, 0, 0, 0, 0x0a, 192, 0, 2, 10]);
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 192, 0, 2, 1]);
        p
    }

    #[test]
    fn reads_a_request() {
        let b = request();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.sender_hw_addr(), MacAddr([2, 0, 0, 0, 0, 0x0a]));
        assert_eq!(p.sender_proto_addr(), Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(p.target_hw_addr(), MacAddr::ZERO);
        assert_eq!(p.target_proto_addr(), Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn setters_round_trip() {
        let mut b = [0u8; PACKET_LEN];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_ethernet_ipv4();
        p.set_operation(Operation::Reply);
        p.set_sender_hw_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        p.set_sender_proto_addr(Ipv4Addr::new(192, 0, 2, 1));
        p.set_target_hw_addr(MacAddr([2, 0, 0, 0, 0, 0x0a]));
        p.set_target_proto_addr(Ipv4Addr::new(192, 0, 2, 10));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), Operation::Reply);
        assert_eq!(p.sender_proto_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.target_hw_addr(), MacAddr([2, 0, 0, 0, 0, 0x0a]));
    }

    #[test]
    fn short_is_truncated() {
        assert_eq!(
            Packet::new_checked(&request()[..27]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn non_ethernet_ipv4_is_malformed() {
        for (at, v) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = request();
            b[at] = v;
            assert_eq!(
                Packet::new_checked(&b[..]).err(),
                Some(Error::Malformed),
                "byte {at}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.operation(), p.sender_hw_addr(), p.sender_proto_addr(),
                         p.target_hw_addr(), p.target_proto_addr());
            }
        }
    }
}
