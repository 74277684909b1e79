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

/// TCP option kinds and lengths rvs reads or writes (RFC 9293 3.2).
pub mod option {
    /// End of option list.
    pub const END: u8 = 0;
    /// No-operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size.
    pub const MSS: u8 = 2;
    /// Length of the MSS option (kind, length, 16-bit value).
    pub const MSS_LEN: usize = 4;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::MIN_HEADER_LEN;

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

    /// The value of the MSS option (kind 2, RFC 9293 3.2), if the
    /// options carry a well-formed one; malformed options end the search.
    pub fn mss_option(&self) -> Option<u16> {
        let mut o = self.options();
        while let Some((&kind, rest)) = o.split_first() {
            match kind {
                option::END => return None,
                option::NOP => o = rest,
                _ => {
                    let len = usize::from(*rest.first()?);
                    if len < 2 || len > o.len() {
                        return None;
                    }
                    if kind == option::MSS && len == option::MSS_LEN {
                        return Some(u16::from_be_bytes([o[2], o[3]]));
                    }
                    o = &o[len..];
                }
            }
        }
        None
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
    /// Starts a new header in the first [`MIN_HEADER_LEN`] bytes of
    /// `buffer`: data offset 5 (no options), every other field zero. The
    /// caller sets the fields it needs, then [`Packet::fill_checksum`]
    /// over the segment (the whole buffer). Truncated when shorter.
    pub fn init_header(mut buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_mut();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        b[..MIN_HEADER_LEN].fill(0);
        b[field::DATA_OFF] = ((MIN_HEADER_LEN / 4) as u8) << 4;
        Ok(Packet { buffer })
    }

    /// Sets the source port (the checksum is not updated).
    pub fn set_src_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port (the checksum is not updated).
    pub fn set_dst_port(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the sequence number (the checksum is not updated).
    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ..field::SEQ + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the acknowledgment number (the checksum is not updated).
    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACK..field::ACK + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags (the checksum is not updated).
    pub fn set_flags(&mut self, f: Flags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }

    /// Sets the receive window (the checksum is not updated).
    pub fn set_window(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    /// Sets the urgent pointer (the checksum is not updated).
    pub fn set_urgent(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60; the
    /// caller writes the options).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((len / 4) as u8 & 0x0f) << 4;
    }

    /// Sets the sequence number and patches the checksum for it.
    pub fn set_seq_number_patched(&mut self, v: u32) {
        let old = self.seq_number();
        self.set_seq_number(v);
        let ck = checksum::update_u32(self.checksum(), old, v);
        self.set_checksum(ck);
    }

    /// Sets the acknowledgment number and patches the checksum for it.
    pub fn set_ack_number_patched(&mut self, v: u32) {
        let old = self.ack_number();
        self.set_ack_number(v);
        let ck = checksum::update_u32(self.checksum(), old, v);
        self.set_checksum(ck);
    }

    /// Sets the source port and patches the checksum for it (RFC 1624);
    /// returns the old port.
    pub fn set_src_port_patched(&mut self, port: u16) -> u16 {
        set_port_patched(self.buffer.as_mut(), field::SRC_PORT, port)
    }

    /// Sets the destination port and patches the checksum for it (RFC
    /// 1624); returns the old port.
    pub fn set_dst_port_patched(&mut self, port: u16) -> u16 {
        set_port_patched(self.buffer.as_mut(), field::DST_PORT, port)
    }

    /// Patches the checksum for an address of the pseudo-header that
    /// changed from `old` to `new` (the IPv4 header was rewritten, e.g.
    /// with `ipv4::Packet::set_dst_addr_patched`, which returns `old`).
    pub fn patch_pseudo_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        patch_pseudo_addr(self.buffer.as_mut(), old, new);
    }

    /// Sets the source port and patches the checksum once for it and for
    /// the pseudo-header's source address, changed from `addr.0` to
    /// `addr.1`: NAT's rewrite of a reply. Returns the old port.
    pub fn set_src_port_and_addr_patched(&mut self, port: u16, addr: (Ipv4Addr, Ipv4Addr)) -> u16 {
        set_port_and_addr_patched(self.buffer.as_mut(), field::SRC_PORT, port, addr)
    }

    /// As [`Packet::set_src_port_and_addr_patched`] for the destination:
    /// NAT's rewrite of a request to a real server.
    pub fn set_dst_port_and_addr_patched(&mut self, port: u16, addr: (Ipv4Addr, Ipv4Addr)) -> u16 {
        set_port_and_addr_patched(self.buffer.as_mut(), field::DST_PORT, port, addr)
    }

    /// Recomputes the checksum over pseudo-header and segment.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let ck = !checksum::transport_sum(src, dst, 6, self.buffer.as_ref());
        self.set_checksum(ck);
    }
}

/// Writes `port` at `at` and patches the checksum, when the bytes reach
/// it; returns the old port. `b` holds at least the two ports.
fn set_port_patched(b: &mut [u8], at: usize, port: u16) -> u16 {
    let old = get_u16(b, at);
    put_u16(b, at, port);
    if b.len() >= MIN_HEADER_LEN {
        let ck = checksum::update_u16(get_u16(b, field::CHECKSUM), old, port);
        put_u16(b, field::CHECKSUM, ck);
    }
    old
}

/// Sets the port at `at` and patches the checksum for it and for a
/// pseudo-header address change, in one step (a whole header: the
/// checksum field is there).
fn set_port_and_addr_patched(
    b: &mut [u8],
    at: usize,
    port: u16,
    (old_addr, new_addr): (Ipv4Addr, Ipv4Addr),
) -> u16 {
    let old = get_u16(b, at);
    put_u16(b, at, port);
    let ck = checksum::Patch::default()
        .dword(old_addr.into(), new_addr.into())
        .word(old, port)
        .apply(get_u16(b, field::CHECKSUM));
    put_u16(b, field::CHECKSUM, ck);
    old
}

/// Patches the checksum, when the bytes reach it, for a pseudo-header
/// address that changed.
fn patch_pseudo_addr(b: &mut [u8], old: Ipv4Addr, new: Ipv4Addr) {
    if b.len() >= MIN_HEADER_LEN {
        let ck = checksum::update_u32(get_u16(b, field::CHECKSUM), old.into(), new.into());
        put_u16(b, field::CHECKSUM, ck);
    }
}

/// Bytes of a segment an ICMP error is sure to quote (RFC 792: "the
/// first 64 bits of the original datagram's data").
pub const QUOTED_MIN_LEN: usize = 8;

/// The start of a TCP segment as an ICMP error quotes it: the ports and
/// the sequence number always, the checksum only when the quote reaches
/// the end of the fixed header. NAT translates the quoted segment of an
/// error through this view: the checksum is patched where it was quoted
/// and left alone where it was not.
#[derive(Debug)]
pub struct Quoted<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Quoted<T> {
    /// Wraps untrusted bytes (a quoted IPv4 header's payload): at least
    /// [`QUOTED_MIN_LEN`] of them.
    pub fn new_checked(buffer: T) -> Result<Quoted<T>, Error> {
        if buffer.as_ref().len() < QUOTED_MIN_LEN {
            return Err(Error::Truncated);
        }
        Ok(Quoted { buffer })
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

    /// The checksum, when the whole fixed header was quoted.
    pub fn checksum(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        (b.len() >= MIN_HEADER_LEN).then(|| get_u16(b, field::CHECKSUM))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Quoted<T> {
    /// Sets the source port, patching the checksum when quoted; returns
    /// the old port.
    pub fn set_src_port_patched(&mut self, port: u16) -> u16 {
        set_port_patched(self.buffer.as_mut(), field::SRC_PORT, port)
    }

    /// Sets the destination port, patching the checksum when quoted;
    /// returns the old port.
    pub fn set_dst_port_patched(&mut self, port: u16) -> u16 {
        set_port_patched(self.buffer.as_mut(), field::DST_PORT, port)
    }

    /// Patches the checksum, when quoted, for a pseudo-header address
    /// that changed from `old` to `new`.
    pub fn patch_pseudo_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        patch_pseudo_addr(self.buffer.as_mut(), old, new);
    }

    /// Sets the sequence number, patching the checksum when quoted.
    pub fn set_seq_number_patched(&mut self, v: u32) {
        let b = self.buffer.as_mut();
        let old = get_u32(b, field::SEQ);
        b[field::SEQ..field::SEQ + 4].copy_from_slice(&v.to_be_bytes());
        if b.len() >= MIN_HEADER_LEN {
            let ck = checksum::update_u32(get_u16(b, field::CHECKSUM), old, v);
            put_u16(b, field::CHECKSUM, ck);
        }
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
    fn init_header_builds_a_plain_header() {
        let mut b = [0xffu8; 20];
        let mut p = Packet::init_header(&mut b[..]).unwrap();
        p.set_src_port(80);
        p.set_dst_port(40000);
        p.set_seq_number(7);
        p.set_ack_number(9);
        p.set_flags(Flags(Flags::RST | Flags::ACK));
        p.set_window(512);
        p.set_urgent(3);
        p.fill_checksum(SRC, DST);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (80, 40000));
        assert_eq!((p.seq_number(), p.ack_number()), (7, 9));
        assert!(p.flags().rst() && p.flags().ack() && !p.flags().syn());
        assert_eq!((p.window(), p.urgent(), p.header_len()), (512, 3, 20));
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(
            Packet::init_header(&mut [0u8; 19][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn quoted_needs_eight_bytes() {
        let b = syn();
        assert_eq!(Quoted::new_checked(&b[..7]).err(), Some(Error::Truncated));
        let q = Quoted::new_checked(&b[..8]).unwrap();
        assert_eq!((q.src_port(), q.dst_port(), q.seq_number()), (40000, 80, 1));
        assert_eq!(q.checksum(), None);
        let q = Quoted::new_checked(&b[..20]).unwrap();
        assert_eq!(
            q.checksum(),
            Some(Packet::new_checked(&b[..]).unwrap().checksum())
        );
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
        fn port_and_address_rewrite_in_one_patch_equals_full_recompute(
            port in any::<u16>(), new_addr in any::<u32>(), src_side in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..41),
        ) {
            let mut b = syn();
            b.extend_from_slice(&payload);
            Packet::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
            let new_addr = Ipv4Addr::from(new_addr);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            let (src, dst) = if src_side {
                prop_assert_eq!(p.set_src_port_and_addr_patched(port, (SRC, new_addr)), 40000);
                (new_addr, DST)
            } else {
                prop_assert_eq!(p.set_dst_port_and_addr_patched(port, (DST, new_addr)), 80);
                (SRC, new_addr)
            };
            prop_assert!(p.verify_checksum(src, dst));
        }

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
        fn patched_rewrites_equal_full_recompute(
            sport in any::<u16>(), dport in any::<u16>(),
            new_src in any::<u32>(), new_dst in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..41),
            which in 0u8..4,
        ) {
            let mut b = syn();
            b.extend_from_slice(&payload);
            Packet::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
            let (src, dst) = (Ipv4Addr::from(new_src), Ipv4Addr::from(new_dst));
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            match which {
                0 => { p.patch_pseudo_addr(SRC, src); prop_assert_eq!(p.set_src_port_patched(sport), 40000); }
                1 => { p.patch_pseudo_addr(DST, dst); prop_assert_eq!(p.set_dst_port_patched(dport), 80); }
                _ => {
                    p.patch_pseudo_addr(SRC, src);
                    p.patch_pseudo_addr(DST, dst);
                    p.set_src_port_patched(sport);
                    p.set_dst_port_patched(dport);
                }
            }
            let (src, dst) = match which { 0 => (src, DST), 1 => (SRC, dst), _ => (src, dst) };
            let mut full = b.clone();
            Packet::new_unchecked(&mut full[..]).fill_checksum(src, dst);
            prop_assert_eq!(&b, &full);
        }

        #[test]
        fn quoted_patch_equals_full_when_the_checksum_was_quoted(
            port in any::<u16>(), new_dst in any::<u32>(), cut in 8usize..25,
        ) {
            let mut whole = syn();
            let new_dst = Ipv4Addr::from(new_dst);
            let mut q = Quoted::new_checked(&mut whole[..cut]).unwrap();
            q.patch_pseudo_addr(DST, new_dst);
            prop_assert_eq!(q.set_dst_port_patched(port), 80);
            let quoted_ck = q.checksum();
            let mut full = syn();
            let mut p = Packet::new_checked(&mut full[..]).unwrap();
            p.set_dst_port(port);
            p.fill_checksum(SRC, new_dst);
            if cut >= MIN_HEADER_LEN {
                prop_assert_eq!(quoted_ck, Some(p.checksum()));
                prop_assert_eq!(&whole[..cut], &full[..cut]);
            } else {
                prop_assert_eq!(quoted_ck, None);
                prop_assert_eq!(&whole[..4], &full[..4]);
                prop_assert_eq!(&whole[4..cut], &syn()[4..cut], "nothing else written");
            }
        }

        #[test]
        fn quoted_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..30)) {
            if let Ok(mut q) = Quoted::new_checked(bytes) {
                let _ = (q.src_port(), q.dst_port(), q.seq_number(), q.checksum());
                q.patch_pseudo_addr(SRC, DST);
                q.set_src_port_patched(1);
                q.set_dst_port_patched(2);
            }
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.options().len(), p.payload().len(), p.flags(), p.verify_checksum(SRC, DST));
            }
        }
    }
}
