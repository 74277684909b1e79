//! Ethernet II frames, with 802.1Q / 802.1ad VLAN tags tolerated.
//!
//! A balancer on a trunk port sees tagged frames; it answers and forwards
//! them with their tags intact, so the view exposes where the L3 header
//! starts (after up to two tags) and leaves the tags where they are.

use super::{get_mac, get_u16, put_u16, Error, MacAddr};

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;
    /// A VLAN tag: TPID (the outer ethertype) + TCI, 4 bytes.
    pub const TAG_LEN: usize = 4;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// Most VLAN tags walked (QinQ); more are treated as malformed.
pub const MAX_TAGS: usize = 2;

/// The EtherTypes rvs cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtherType {
    /// IPv4, 0x0800.
    Ipv4,
    /// ARP, 0x0806.
    Arp,
    /// 802.1Q VLAN tag, 0x8100.
    Vlan,
    /// 802.1ad service tag (QinQ), 0x88a8.
    QinQ,
    /// IPv6, 0x86dd.
    Ipv6,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(other) => other,
        }
    }
}

/// Where the network-layer header of a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L3 {
    /// The EtherType after any VLAN tags.
    pub ethertype: EtherType,
    /// Offset of the network-layer header from the start of the frame.
    pub offset: usize,
    /// Number of VLAN tags skipped.
    pub tags: usize,
}

/// A view of an Ethernet frame.
#[derive(Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks; accessors may panic if it is shorter
    /// than [`HEADER_LEN`]. For buffers rvs built itself.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps untrusted bytes: at least an untagged header.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    pub fn dst_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::DST.start)
    }

    /// Source MAC.
    pub fn src_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::SRC.start)
    }

    /// The outermost EtherType (a TPID when the frame is tagged).
    pub fn ethertype(&self) -> EtherType {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }

    /// Walks VLAN tags to the network-layer header. Truncated when a tag
    /// is cut short; malformed beyond [`MAX_TAGS`] tags.
    pub fn l3(&self) -> Result<L3, Error> {
        let buf = self.buffer.as_ref();
        let mut at = field::ETHERTYPE;
        let mut tags = 0;
        loop {
            let ethertype = EtherType::from(get_u16(buf, at));
            match ethertype {
                EtherType::Vlan | EtherType::QinQ => {
                    if tags == MAX_TAGS {
                        return Err(Error::Malformed);
                    }
                    tags += 1;
                    at += field::TAG_LEN;
                    if buf.len() < at + 2 {
                        return Err(Error::Truncated);
                    }
                }
                _ => {
                    return Ok(L3 {
                        ethertype,
                        offset: at + 2,
                        tags,
                    })
                }
            }
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    pub fn set_dst_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC.
    pub fn set_src_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    /// Sets the outermost EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        put_u16(self.buffer.as_mut(), field::ETHERTYPE, t.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(ethertypes: &[u16], total: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        for (i, t) in ethertypes.iter().enumerate() {
            f.extend_from_slice(&t.to_be_bytes());
            if i + 1 < ethertypes.len() {
                f.extend_from_slice(&[0x00, 0x64]); // TCI: VLAN 100
            }
        }
        f.resize(total.max(f.len()), 0);
        f
    }

    #[test]
    fn untagged_ipv4_starts_at_14() {
        let f = frame(&[0x0800], 60);
        let v = Frame::new_checked(&f[..]).unwrap();
        assert_eq!(v.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(v.src_addr(), MacAddr([2, 0, 0, 0, 0, 9]));
        assert_eq!(
            v.l3(),
            Ok(L3 {
                ethertype: EtherType::Ipv4,
                offset: 14,
                tags: 0
            })
        );
    }

    #[test]
    fn one_vlan_tag_moves_l3_by_four() {
        let f = frame(&[0x8100, 0x0806], 60);
        let l3 = Frame::new_checked(&f[..]).unwrap().l3().unwrap();
        assert_eq!((l3.ethertype, l3.offset, l3.tags), (EtherType::Arp, 18, 1));
    }

    #[test]
    fn qinq_two_tags_are_walked() {
        let f = frame(&[0x88a8, 0x8100, 0x0800], 64);
        let l3 = Frame::new_checked(&f[..]).unwrap().l3().unwrap();
        assert_eq!((l3.ethertype, l3.offset, l3.tags), (EtherType::Ipv4, 22, 2));
    }

    #[test]
    fn three_tags_are_malformed() {
        let f = frame(&[0x8100, 0x8100, 0x8100, 0x0800], 64);
        assert_eq!(
            Frame::new_checked(&f[..]).unwrap().l3(),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn tag_cut_short_is_truncated() {
        let f = frame(&[0x8100], 16);
        assert_eq!(
            Frame::new_checked(&f[..]).unwrap().l3(),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn shorter_than_header_is_truncated() {
        assert_eq!(
            Frame::new_checked(&[0u8; 13][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn setters_write_addresses() {
        let mut f = frame(&[0x0800], 60);
        let mut v = Frame::new_checked(&mut f[..]).unwrap();
        v.set_dst_addr(MacAddr([2, 1, 2, 3, 4, 5]));
        v.set_src_addr(MacAddr([2, 9, 9, 9, 9, 9]));
        v.set_ethertype(EtherType::Arp);
        assert_eq!(&f[0..14], &[2, 1, 2, 3, 4, 5, 2, 9, 9, 9, 9, 9, 8, 6]);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(f) = Frame::new_checked(&bytes[..]) {
                let _ = (f.dst_addr(), f.src_addr(), f.ethertype());
                if let Ok(l3) = f.l3() {
                    prop_assert!(l3.offset <= bytes.len());
                }
            }
        }
    }
}
