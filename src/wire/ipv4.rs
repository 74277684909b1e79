//! IPv4 headers (RFC 791), options tolerated.
//!
//! `new_checked` validates version, IHL and total length against the
//! buffer, so `header_len()` and `payload()` are always in bounds. The
//! buffer may be longer than `total_len` (Ethernet pads short frames to 60
//! bytes); `payload()` stops at `total_len`, never at the buffer's end.

use super::{checksum, get_u16, get_u32, put_u16, Error};
use std::net::Ipv4Addr;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const MIN_HEADER_LEN: usize = 20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::MIN_HEADER_LEN;

/// Fragment offsets count in units of this many bytes (RFC 791), so every
/// fragment but the last carries a multiple of it.
pub const FRAG_UNIT: usize = 8;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// The IP protocol numbers rvs cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// 1.
    Icmp,
    /// 4: IPv4-in-IPv4 (rvs's TUN forwarding).
    IpIp,
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Self {
        match v {
            1 => Protocol::Icmp,
            4 => Protocol::IpIp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            o => Protocol::Unknown(o),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(v: Protocol) -> u8 {
        match v {
            Protocol::Icmp => 1,
            Protocol::IpIp => 4,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(o) => o,
        }
    }
}

/// A view of an IPv4 packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer rvs built itself.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: version 4, IHL ≥ 5, header and total length
    /// within the buffer, total length ≥ header length.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Packet { buffer };
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = p.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let total = usize::from(p.total_len());
        if total < hl {
            return Err(Error::Malformed);
        }
        if hl > p.buffer.as_ref().len() || total > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps the IPv4 header quoted inside an ICMP error (RFC 792: "the
    /// internet header plus the first 64 bits of the original datagram's
    /// data"): version 4, IHL ≥ 5, and the header plus 8 bytes within the
    /// buffer, and a total length covering them. The total length may
    /// exceed what was quoted, so `payload()` stops at the buffer's end.
    pub fn new_checked_quoted(buffer: T) -> Result<Packet<T>, Error> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Packet { buffer };
        if p.version() != 4 || p.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if p.header_len() + 8 > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        // The original datagram carried at least the 8 bytes quoted.
        if usize::from(p.total_len()) < p.header_len() + 8 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    /// Wraps bytes that start with a whole IPv4 header whose total length
    /// is not (or not yet) the buffer's: the outer header of a fragment
    /// being cut, or the start of a packet quoted in an ICMP error rvs
    /// builds. Version 4, IHL ≥ 5, header within the buffer; `payload()`
    /// stops at the shorter of total length and buffer.
    pub fn new_checked_header(buffer: T) -> Result<Packet<T>, Error> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Packet { buffer };
        if p.version() != 4 || p.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if p.header_len() > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length: header plus payload.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK) * 8
    }

    /// True for any fragment: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Payload protocol.
    pub fn protocol(&self) -> Protocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    /// Header checksum as on the wire.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_u32(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_u32(self.buffer.as_ref(), field::DST))
    }

    /// True when the header (options included) sums correctly; false
    /// when a setter left a header length the buffer cannot hold.
    pub fn verify_checksum(&self) -> bool {
        self.buffer
            .as_ref()
            .get(..self.header_len())
            .is_some_and(checksum::is_valid)
    }

    /// Options bytes (empty when IHL is 5, or when a setter left a header
    /// length the buffer cannot hold).
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// The payload, from the end of the header to `total_len` (or to the
    /// buffer's end for a quoted header cut short).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        &b[self.header_len().min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Starts a new header in the first [`MIN_HEADER_LEN`] bytes of
    /// `buffer`: version 4, IHL 5, every other field zero (not fragmented,
    /// DF clear). The caller sets the fields it needs, then
    /// [`Packet::fill_checksum`]. The view holds what
    /// [`Packet::new_checked_header`] checks, so no accessor can panic.
    pub fn init_header(mut buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_mut();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        b[..MIN_HEADER_LEN].fill(0);
        let mut p = Packet { buffer };
        p.set_version_and_header_len(MIN_HEADER_LEN);
        Ok(p)
    }

    /// Sets version 4 and the header length (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets DSCP and ECN.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::TOTAL_LEN, v);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets the flags and fragment offset word: DF as given, not a fragment.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        put_u16(
            self.buffer.as_mut(),
            field::FLAGS_FRAG,
            if dont_frag { FLAG_DF } else { 0 },
        );
    }

    /// Sets the flags and fragment offset word for a fragment: DF clear
    /// (a packet being fragmented may be), More Fragments as given, and
    /// the offset in bytes (a multiple of [`FRAG_UNIT`]; the remainder is
    /// dropped, as the field cannot hold it). The checksum is not updated.
    pub fn set_fragment(&mut self, frag_offset: u16, more_frags: bool) {
        let units = (frag_offset / FRAG_UNIT as u16) & FRAG_OFFSET_MASK;
        let flags = if more_frags { FLAG_MF } else { 0 };
        put_u16(self.buffer.as_mut(), field::FLAGS_FRAG, flags | units);
    }

    /// Sets the TTL (the checksum is not updated).
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol (the checksum is not updated).
    pub fn set_protocol(&mut self, p: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the source address (the checksum is not updated).
    pub fn set_src_addr(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&ip.octets());
    }

    /// Sets the destination address (the checksum is not updated).
    pub fn set_dst_addr(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&ip.octets());
    }

    /// Sets the source address and patches the header checksum for it
    /// (RFC 1624); returns the old address, which the caller also patches
    /// out of the TCP or UDP checksum (its pseudo-header covers it).
    pub fn set_src_addr_patched(&mut self, ip: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        let ck = checksum::update_u32(self.checksum(), u32::from(old), u32::from(ip));
        self.set_checksum(ck);
        self.set_src_addr(ip);
        old
    }

    /// Sets the destination address and patches the header checksum, as
    /// [`Packet::set_src_addr_patched`]; returns the old address.
    pub fn set_dst_addr_patched(&mut self, ip: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        let ck = checksum::update_u32(self.checksum(), u32::from(old), u32::from(ip));
        self.set_checksum(ck);
        self.set_dst_addr(ip);
        old
    }

    /// Sets the source address and decrements the TTL, patching the header
    /// checksum once for both: what NAT does to every reply it forwards.
    /// Returns the old address. The TTL must be above 0 (a forwarder drops
    /// packets arriving with TTL 0 or 1 before rewriting them).
    pub fn set_src_addr_and_decrement_ttl(&mut self, ip: Ipv4Addr) -> Ipv4Addr {
        self.set_addr_and_decrement_ttl(field::SRC, ip)
    }

    /// As [`Packet::set_src_addr_and_decrement_ttl`] for the destination:
    /// what NAT does to every request it forwards to a real server.
    pub fn set_dst_addr_and_decrement_ttl(&mut self, ip: Ipv4Addr) -> Ipv4Addr {
        self.set_addr_and_decrement_ttl(field::DST, ip)
    }

    fn set_addr_and_decrement_ttl(&mut self, at: usize, ip: Ipv4Addr) -> Ipv4Addr {
        let b = self.buffer.as_mut();
        let old = get_u32(b, at);
        let old_ttl_word = get_u16(b, field::TTL);
        b[at..at + 4].copy_from_slice(&ip.octets());
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let ck = checksum::Patch::default()
            .dword(old, u32::from(ip))
            .word(old_ttl_word, get_u16(b, field::TTL))
            .apply(get_u16(b, field::CHECKSUM));
        put_u16(b, field::CHECKSUM, ck);
        Ipv4Addr::from(old)
    }

    /// Sets the TTL and patches the header checksum for it (RFC 1624).
    pub fn set_ttl_patched(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        let old = get_u16(b, field::TTL);
        b[field::TTL] = v;
        let ck = checksum::update_u16(get_u16(b, field::CHECKSUM), old, get_u16(b, field::TTL));
        put_u16(b, field::CHECKSUM, ck);
    }

    /// Decrements the TTL and patches the checksum incrementally (RFC 1624);
    /// what a forwarder does to every packet it passes on.
    pub fn decrement_ttl(&mut self) {
        self.set_ttl_patched(self.ttl().wrapping_sub(1));
    }

    /// Recomputes the header checksum from scratch (leaves it when a
    /// setter left a header length the buffer cannot hold).
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        if hl > self.buffer.as_ref().len() {
            return;
        }
        self.set_checksum(0);
        let ck = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(ck);
    }

    /// The payload, writable (bounded as [`Packet::payload`]).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), usize::from(self.total_len()));
        let b = self.buffer.as_mut();
        let end = total.min(b.len());
        &mut b[hl.min(end)..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 192.0.2.10 -> 192.0.2.1, ICMP, 8 bytes of payload, valid checksum.
    fn packet(options: &[u8]) -> Vec<u8> {
        let hl = 20 + options.len();
        let total = hl + 8;
        let mut p = vec![
            0x40 | (hl / 4) as u8,
            0,
            0,
            total as u8,
            0x12,
            0x34,
            0x40,
            0,
            64,
            1,
            0,
            0,
        ];
        p.extend_from_slice(&[192, 0, 2, 10, 192, 0, 2, 1]);
        p.extend_from_slice(options);
        p.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
        let ck = checksum::checksum(&p[..hl]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        p
    }

    #[test]
    fn reads_every_field() {
        let b = packet(&[]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), Protocol::Icmp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn options_are_skipped_by_header_len() {
        let b = packet(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload()[0], 8);
        assert!(p.verify_checksum());
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut b = packet(&[]);
        b.resize(46, 0);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload().len(), 8);
    }

    #[test]
    fn wrong_version_is_malformed() {
        let mut b = packet(&[]);
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn ihl_below_five_is_malformed() {
        let mut b = packet(&[]);
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn total_len_below_header_is_malformed() {
        let mut b = packet(&[]);
        b[3] = 19;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn total_len_beyond_buffer_is_truncated() {
        let b = packet(&[]);
        assert_eq!(Packet::new_checked(&b[..27]).err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&b[..19]).err(), Some(Error::Truncated));
    }

    #[test]
    fn fragments_are_recognised() {
        let mut b = packet(&[]);
        b[6] = 0x20; // MF
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
        b[6] = 0x00;
        b[7] = 0x01; // offset 8
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 8);
    }

    #[test]
    fn corrupted_header_fails_checksum() {
        let mut b = packet(&[]);
        b[8] = 63;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn fill_checksum_makes_header_valid() {
        let mut b = packet(&[1, 1, 1, 0]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_addr(Ipv4Addr::new(198, 51, 100, 7));
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
    }

    #[test]
    fn quoted_header_may_be_cut_after_eight_bytes() {
        let mut b = packet(&[]);
        b[3] = 200; // the original was longer than what was quoted
        let p = Packet::new_checked_quoted(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::Truncated));
        assert_eq!(
            Packet::new_checked_quoted(&b[..27]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn header_only_view_ignores_total_length() {
        let mut b = packet(&[1, 1, 1, 0]);
        b[3] = 200; // claims more than the buffer holds
        let p = Packet::new_checked_header(&b[..24]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.payload().is_empty());
        assert_eq!(
            Packet::new_checked_header(&b[..23]).err(),
            Some(Error::Truncated)
        );
        b[0] = 0x44;
        assert_eq!(
            Packet::new_checked_header(&b[..]).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn init_header_starts_a_plain_unfragmented_header() {
        let mut b = [0xffu8; 20];
        let mut p = Packet::init_header(&mut b[..]).unwrap();
        p.set_total_len(20);
        p.set_ttl(64);
        p.set_protocol(Protocol::Icmp);
        p.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
        p.set_dst_addr(Ipv4Addr::new(192, 0, 2, 2));
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.dscp_ecn()), (4, 20, 0));
        assert_eq!(
            (p.ident(), p.dont_frag(), p.is_fragment()),
            (0, false, false)
        );
        assert!(p.verify_checksum());
        assert_eq!(
            Packet::init_header(&mut [0u8; 19][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn set_fragment_writes_offset_in_eight_byte_units_and_clears_df() {
        let mut b = packet(&[]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_fragment(1480, true);
        assert!(!p.dont_frag() && p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(&b[6..8], &(0x2000u16 | 185).to_be_bytes(), "MF, 1480/8");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_fragment(0, false);
        assert!(!p.is_fragment() && !p.dont_frag());
    }

    #[test]
    fn address_setters_return_the_old_address() {
        let mut b = packet(&[]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        let new = Ipv4Addr::new(198, 51, 100, 7);
        assert_eq!(p.set_src_addr_patched(new), Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(p.set_dst_addr_patched(new), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!((p.src_addr(), p.dst_addr()), (new, new));
        assert!(p.verify_checksum());
    }

    #[test]
    fn a_header_length_beyond_the_buffer_does_not_panic() {
        let mut b = packet(&[]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_version_and_header_len(60);
        assert!(p.options().is_empty());
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.payload().is_empty());
    }

    /// A header with random fields and options (from `words`, at least 20
    /// bytes), its length fields right and its checksum right.
    fn random_header(words: &[u8]) -> Vec<u8> {
        let hl = MIN_HEADER_LEN + (words.len() - 20) / 4 * 4;
        let mut b = vec![0u8; hl];
        b[1..].copy_from_slice(&words[..hl - 1]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_and_header_len(hl);
        p.set_total_len(hl as u16);
        p.fill_checksum();
        b
    }

    /// `b` with its header checksum computed afresh.
    fn recomputed(b: &[u8]) -> Vec<u8> {
        let mut full = b.to_vec();
        Packet::new_unchecked(&mut full[..]).fill_checksum();
        full
    }

    proptest! {
        #[test]
        fn address_and_ttl_rewrite_patched_equals_full_recompute(
            words in proptest::collection::vec(any::<u8>(), 20..60),
            new in any::<u32>(), src_side in any::<bool>(),
        ) {
            let mut b = random_header(&words);
            let mut p = Packet::new_unchecked(&mut b[..]);
            let ttl = p.ttl().max(2);
            p.set_ttl(ttl);
            p.fill_checksum();
            let (old_src, old_dst) = (p.src_addr(), p.dst_addr());
            let new = Ipv4Addr::from(new);
            if src_side {
                prop_assert_eq!(p.set_src_addr_and_decrement_ttl(new), old_src);
                prop_assert_eq!((p.src_addr(), p.dst_addr()), (new, old_dst));
            } else {
                prop_assert_eq!(p.set_dst_addr_and_decrement_ttl(new), old_dst);
                prop_assert_eq!((p.src_addr(), p.dst_addr()), (old_src, new));
            }
            prop_assert_eq!(p.ttl(), ttl - 1);
            prop_assert_eq!(&b, &recomputed(&b));
        }

        #[test]
        fn ttl_set_patched_equals_full_recompute(
            words in proptest::collection::vec(any::<u8>(), 20..60), ttl in any::<u8>(),
        ) {
            let mut b = random_header(&words);
            let mut p = Packet::new_unchecked(&mut b[..]);
            p.set_ttl_patched(ttl);
            prop_assert_eq!(p.ttl(), ttl);
            prop_assert_eq!(&b, &recomputed(&b));
        }

        #[test]
        fn address_rewrites_patched_equal_full_recompute(
            words in proptest::collection::vec(any::<u8>(), 20..60),
            new_src in any::<u32>(), new_dst in any::<u32>(), which in 0u8..3,
        ) {
            let mut b = random_header(&words);
            let mut p = Packet::new_unchecked(&mut b[..]);
            let (old_src, old_dst) = (p.src_addr(), p.dst_addr());
            if which != 1 {
                prop_assert_eq!(p.set_src_addr_patched(Ipv4Addr::from(new_src)), old_src);
            }
            if which != 0 {
                prop_assert_eq!(p.set_dst_addr_patched(Ipv4Addr::from(new_dst)), old_dst);
            }
            prop_assert_eq!(&b, &recomputed(&b));
            prop_assert!(Packet::new_checked(&b[..]).unwrap().verify_checksum());
        }

        #[test]
        fn header_only_view_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..70)) {
            if let Ok(mut p) = Packet::new_checked_header(bytes.clone()) {
                let _ = (p.options().len(), p.verify_checksum(), p.payload().len());
                p.set_fragment(0xffff, true);
                p.fill_checksum();
                let _ = p.payload_mut().len();
            }
        }

        #[test]
        fn quoted_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            if let Ok(mut p) = Packet::new_checked_quoted(bytes.clone()) {
                prop_assert!(p.payload().len() >= 8);
                let _ = (p.options().len(), p.verify_checksum());
                let _ = p.payload_mut().len();
            }
        }

        #[test]
        fn decrement_ttl_keeps_checksum_valid(ttl in 1u8.., ident in any::<u16>()) {
            let mut b = packet(&[]);
            b[8] = ttl;
            b[4..6].copy_from_slice(&ident.to_be_bytes());
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.fill_checksum();
            p.decrement_ttl();
            prop_assert_eq!(p.ttl(), ttl - 1);
            prop_assert!(p.verify_checksum());
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.verify_checksum(), p.options().len(), p.payload().len(),
                         p.src_addr(), p.dst_addr(), p.protocol(), p.frag_offset());
            }
        }

        #[test]
        fn never_panics_on_mutated_valid_packets(
            flips in proptest::collection::vec((0usize..32, any::<u8>()), 1..6),
            cut in 0usize..33,
        ) {
            let mut b = packet(&[1, 1, 1, 0]);
            for (at, v) in flips { b[at] = v; }
            b.truncate(cut);
            if let Ok(p) = Packet::new_checked(&b[..]) {
                prop_assert!(p.header_len() + p.payload().len() <= b.len());
                let _ = p.verify_checksum();
            }
        }
    }
}
