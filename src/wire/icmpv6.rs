//! ICMPv6 (RFC 4443) and the neighbour discovery messages rvs needs
//! (RFC 4861: neighbour solicitation and advertisement).
//!
//! The view covers the whole message (header and body) because the
//! checksum does. Unlike ICMP for IPv4, the checksum also covers the IPv6
//! pseudo-header (RFC 4443 2.3), so checksum methods take both addresses.
//!
//! Errors (types below 128: destination unreachable, packet too big, time
//! exceeded, parameter problem) carry a 32-bit field (unused, the MTU or a
//! pointer) and then as much of the invoking packet as fits in the
//! minimum MTU; [`Packet::data`] is that quote, read through
//! `ipv6::Packet::new_checked_header`. [`build_error`] writes one.
//!
//! Neighbour discovery replaces ARP: a solicitation asks for the link-layer
//! address of a target, sent to the target's solicited-node multicast
//! group ([`solicited_node`]); the advertisement answers it
//! ([`NeighborAdvert::answer`]). Both are only valid with hop limit 255
//! ([`ND_HOP_LIMIT`], which proves they were not forwarded); that and the
//! other IP-level rules of RFC 4861 7.1 are the caller's to check
//! ([`NeighborSolicit::valid_from`]), since this view does not see the
//! IPv6 header.

use super::ipv6::{self, next_header};
use super::{checksum, get_u16, get_u32, put_u16, Error, MacAddr};
use std::net::Ipv6Addr;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Echo: identifier and sequence; errors: unused / MTU / pointer;
    /// neighbour advertisement: flags.
    pub const REST: usize = 4;
    pub const HEADER_LEN: usize = 8;
    /// Neighbour solicitation and advertisement: the target address.
    pub const TARGET: usize = 8;
    pub const ND_LEN: usize = 24;
}

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// Length of a neighbour solicitation or advertisement without options.
pub const ND_LEN: usize = field::ND_LEN;

/// Length of a link-layer address option for Ethernet (type, length in
/// 8-byte units, six bytes of MAC).
pub const LL_OPTION_LEN: usize = 8;

/// The hop limit neighbour discovery messages must carry (RFC 4861 7.1):
/// a router would have decremented it, so 255 proves the sender is on link.
pub const ND_HOP_LIMIT: u8 = 255;

/// The most an ICMPv6 error may quote: the message must fit the minimum
/// MTU with its IPv6 header (RFC 4443 2.4 (c)).
pub const MAX_QUOTE_LEN: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - HEADER_LEN;

/// Destination unreachable code 4: port unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 4;

/// Neighbour discovery option types (RFC 4861 4.6).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

/// Neighbour advertisement flags (RFC 4861 4.4), in the first byte of rest.
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// ICMPv6 message types rvs distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// 1.
    DstUnreachable,
    /// 2: carries the next-hop MTU.
    PacketTooBig,
    /// 3.
    TimeExceeded,
    /// 4: carries a pointer to the offending byte.
    ParamProblem,
    /// 128.
    EchoRequest,
    /// 129.
    EchoReply,
    /// 133.
    RouterSolicit,
    /// 134.
    RouterAdvert,
    /// 135.
    NeighborSolicit,
    /// 136.
    NeighborAdvert,
    /// 137.
    Redirect,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(v: u8) -> Self {
        match v {
            1 => Message::DstUnreachable,
            2 => Message::PacketTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            o => Message::Unknown(o),
        }
    }
}

impl From<Message> for u8 {
    fn from(v: Message) -> u8 {
        match v {
            Message::DstUnreachable => 1,
            Message::PacketTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::Unknown(o) => o,
        }
    }
}

impl Message {
    /// True for error messages (types 0 to 127, RFC 4443 2.1), which quote
    /// the invoking packet and must never be answered with an error.
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

/// A view of an ICMPv6 message.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer rvs built itself.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes (the upper layer of an IPv6 packet): at least
    /// the 8-byte header.
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

    /// The MTU of a packet-too-big error (RFC 4443 3.2).
    pub fn mtu(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
    }

    /// The pointer of a parameter-problem error: the offset in the quoted
    /// packet of the byte at fault (RFC 4443 3.4).
    pub fn pointer(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
    }

    /// What follows the 8-byte header: echo data, an error's quoted packet,
    /// or (for neighbour discovery) the target address and options.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// True when the message sums correctly with the pseudo-header of
    /// `src` and `dst` (RFC 4443 2.3).
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        ipv6::verify_upper_checksum(src, dst, next_header::ICMPV6, self.buffer.as_ref())
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

    /// Sets the 32-bit field after the checksum: an error's MTU, pointer
    /// or unused zero.
    pub fn set_rest(&mut self, v: u32) {
        self.buffer.as_mut()[field::REST..field::HEADER_LEN].copy_from_slice(&v.to_be_bytes());
    }

    /// The data after the header, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Turns an echo request into its reply in place: type 129, code 0,
    /// the checksum patched for the one word that changed (RFC 1624). The
    /// pseudo-header is unchanged when the reply swaps the request's
    /// addresses (the sum is commutative); a reply to a request sent to a
    /// multicast address comes from another source and needs
    /// [`Packet::fill_checksum`] instead.
    pub fn make_echo_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = get_u16(b, field::TYPE);
        b[field::TYPE] = Message::EchoReply.into();
        b[field::CODE] = 0;
        let ck = checksum::update_u16(get_u16(b, field::CHECKSUM), old, get_u16(b, field::TYPE));
        put_u16(b, field::CHECKSUM, ck);
    }

    /// Computes the checksum over the pseudo-header of `src` and `dst`
    /// and the whole message.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        // The view holds the 8-byte header, so the field is there.
        let _ = ipv6::fill_upper_checksum(src, dst, next_header::ICMPV6, self.buffer.as_mut());
    }
}

/// Writes an ICMPv6 error into `out`: `msg` and `code`, the 32-bit `rest`
/// (the MTU of packet too big, the pointer of parameter problem, zero
/// otherwise), and as much of `invoking` as fits both `out` and
/// [`MAX_QUOTE_LEN`]; the checksum computed for `src` -> `dst`. Returns
/// the message's length. `Error::Truncated` when `out` cannot hold the
/// header; `Error::Malformed` when `msg` is not an error type (an error
/// must never answer an error, but which packets to answer is the
/// caller's choice: RFC 4443 2.4 (e)).
pub fn build_error(
    out: &mut [u8],
    msg: Message,
    code: u8,
    rest: u32,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    invoking: &[u8],
) -> Result<usize, Error> {
    if !msg.is_error() {
        return Err(Error::Malformed);
    }
    if out.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    let quote = invoking
        .len()
        .min(MAX_QUOTE_LEN)
        .min(out.len() - HEADER_LEN);
    let len = HEADER_LEN + quote;
    let mut p = Packet::new_unchecked(&mut out[..len]);
    p.set_msg_type(msg);
    p.set_code(code);
    p.set_rest(rest);
    p.data_mut().copy_from_slice(&invoking[..quote]);
    p.fill_checksum(src, dst);
    Ok(len)
}

/// Writes a packet-too-big error (RFC 4443 3.2) announcing `mtu`: what a
/// node that cannot forward `invoking` sends back, so path MTU discovery
/// (RFC 8201) works; routers do not fragment IPv6. See [`build_error`].
pub fn build_packet_too_big(
    out: &mut [u8],
    mtu: u32,
    addrs: (Ipv6Addr, Ipv6Addr),
    invoking: &[u8],
) -> Result<usize, Error> {
    build_error(out, Message::PacketTooBig, 0, mtu, addrs, invoking)
}

/// The solicited-node multicast address of `addr` (RFC 4291 2.7.1):
/// ff02::1:ff00:0/104 and the address's low 24 bits. A solicitation for
/// `addr` goes there, so only the few nodes sharing those bits see it.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet destination of an IPv6 multicast address (RFC 2464 7):
/// 33:33 and its low 32 bits.
pub fn multicast_mac(addr: Ipv6Addr) -> MacAddr {
    let o = addr.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The all-nodes multicast address, where an advertisement answering a
/// solicitation from the unspecified address goes (RFC 4861 7.2.4).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Checks the neighbour discovery body (target and options, RFC 4861
/// 7.1.1 / 7.1.2 as far as the message shows): code 0, at least
/// [`ND_LEN`] bytes, a target that is not multicast, and options of
/// non-zero length within the message. Returns the target and the
/// link-layer address of the option of `ll_type`, if present.
fn parse_nd<T: AsRef<[u8]>>(
    msg: &Packet<T>,
    ll_type: u8,
) -> Result<(Ipv6Addr, Option<MacAddr>), Error> {
    let b = msg.buffer.as_ref();
    if b.len() < ND_LEN {
        return Err(Error::Truncated);
    }
    if msg.code() != 0 {
        return Err(Error::Malformed);
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&b[field::TARGET..field::TARGET + 16]);
    let target = Ipv6Addr::from(t);
    if target.is_multicast() {
        return Err(Error::Malformed);
    }
    let mut ll = None;
    let mut opts = &b[ND_LEN..];
    while !opts.is_empty() {
        let [kind, units, ..] = *opts else {
            return Err(Error::Truncated);
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            // RFC 4861 4.6: "Nodes MUST silently discard an ND packet that
            // contains an option with length zero."
            return Err(Error::Malformed);
        }
        let opt = opts.get(..len).ok_or(Error::Truncated)?;
        if kind == ll_type && ll.is_none() {
            ll = Some(super::get_mac(opt, 2));
        }
        opts = &opts[len..];
    }
    Ok((target, ll))
}

/// Writes the common part of a neighbour discovery message and its
/// link-layer option into `out`; returns the length.
fn emit_nd(
    out: &mut [u8],
    msg: Message,
    flags: u8,
    target: Ipv6Addr,
    ll: Option<(u8, MacAddr)>,
    (src, dst): (Ipv6Addr, Ipv6Addr),
) -> Result<usize, Error> {
    let len = ND_LEN + if ll.is_some() { LL_OPTION_LEN } else { 0 };
    let out = out.get_mut(..len).ok_or(Error::Truncated)?;
    out.fill(0);
    out[field::TYPE] = msg.into();
    out[field::REST] = flags;
    out[field::TARGET..field::TARGET + 16].copy_from_slice(&target.octets());
    if let Some((kind, mac)) = ll {
        out[ND_LEN] = kind;
        out[ND_LEN + 1] = 1;
        out[ND_LEN + 2..ND_LEN + 8].copy_from_slice(&mac.0);
    }
    Packet::new_unchecked(&mut out[..]).fill_checksum(src, dst);
    Ok(len)
}

/// A neighbour solicitation (RFC 4861 4.3): who has `target`?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicit {
    /// The address whose link-layer address is asked for.
    pub target: Ipv6Addr,
    /// The asker's link-layer address (absent when it asks from the
    /// unspecified address, during duplicate address detection).
    pub source_ll: Option<MacAddr>,
}

impl NeighborSolicit {
    /// Reads a solicitation (the type is the caller's to have matched):
    /// code 0, a unicast target, well-formed options. The checksum is
    /// checked apart ([`Packet::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(msg: &Packet<T>) -> Result<NeighborSolicit, Error> {
        let (target, source_ll) = parse_nd(msg, OPT_SOURCE_LL)?;
        Ok(NeighborSolicit { target, source_ll })
    }

    /// The IP-level checks of RFC 4861 7.1.1 for a solicitation from
    /// `src` to `dst` with hop limit `hop_limit`: 255, and from the
    /// unspecified address only to the target's solicited-node group and
    /// without a source link-layer option.
    pub fn valid_from(&self, hop_limit: u8, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        hop_limit == ND_HOP_LIMIT
            && (!src.is_unspecified()
                || (dst == solicited_node(self.target) && self.source_ll.is_none()))
    }

    /// A solicitation to resolve `target`, with the asker's MAC; sent
    /// from one of the asker's addresses to [`solicited_node`]`(target)`
    /// (Ethernet [`multicast_mac`] of that), hop limit 255.
    pub fn for_resolution(target: Ipv6Addr, our_mac: MacAddr) -> NeighborSolicit {
        NeighborSolicit {
            target,
            source_ll: Some(our_mac),
        }
    }

    /// Writes the message into `out` with its checksum for `src` -> `dst`;
    /// returns its length (24, or 32 with the link-layer option).
    pub fn emit(&self, out: &mut [u8], addrs: (Ipv6Addr, Ipv6Addr)) -> Result<usize, Error> {
        let ll = self.source_ll.map(|m| (OPT_SOURCE_LL, m));
        emit_nd(out, Message::NeighborSolicit, 0, self.target, ll, addrs)
    }
}

/// A neighbour advertisement (RFC 4861 4.4): `target` is at this
/// link-layer address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvert {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation.
    pub solicited: bool,
    /// O: replaces a cached link-layer address.
    pub override_flag: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// Its link-layer address.
    pub target_ll: Option<MacAddr>,
}

impl NeighborAdvert {
    /// Reads an advertisement (the type is the caller's to have matched):
    /// code 0, a unicast target, well-formed options.
    pub fn parse<T: AsRef<[u8]>>(msg: &Packet<T>) -> Result<NeighborAdvert, Error> {
        let (target, target_ll) = parse_nd(msg, OPT_TARGET_LL)?;
        let flags = msg.buffer.as_ref()[field::REST];
        Ok(NeighborAdvert {
            router: flags & NA_ROUTER != 0,
            solicited: flags & NA_SOLICITED != 0,
            override_flag: flags & NA_OVERRIDE != 0,
            target,
            target_ll,
        })
    }

    /// The advertisement answering `ns`, received from `ns_src`, for an
    /// address of ours at `our_mac` (RFC 4861 7.2.4), and where to send
    /// it: back to the asker, solicited; or, when it asked from the
    /// unspecified address, to [`ALL_NODES`], unsolicited. Override is
    /// set (the address is ours alone, not anycast); router is not.
    pub fn answer(
        ns: &NeighborSolicit,
        ns_src: Ipv6Addr,
        our_mac: MacAddr,
    ) -> (NeighborAdvert, Ipv6Addr) {
        let unspecified = ns_src.is_unspecified();
        let na = NeighborAdvert {
            router: false,
            solicited: !unspecified,
            override_flag: true,
            target: ns.target,
            target_ll: Some(our_mac),
        };
        (na, if unspecified { ALL_NODES } else { ns_src })
    }

    /// Writes the message into `out` with its checksum for `src` -> `dst`;
    /// returns its length (24, or 32 with the link-layer option).
    pub fn emit(&self, out: &mut [u8], addrs: (Ipv6Addr, Ipv6Addr)) -> Result<usize, Error> {
        let flags = if self.router { NA_ROUTER } else { 0 }
            | if self.solicited { NA_SOLICITED } else { 0 }
            | if self.override_flag { NA_OVERRIDE } else { 0 };
        let ll = self.target_ll.map(|m| (OPT_TARGET_LL, m));
        emit_nd(out, Message::NeighborAdvert, flags, self.target, ll, addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const A2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    const MAC1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const MAC2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Reference messages from scapy 2.x (the ICMPv6 part of the packet):
    // IPv6(src="2001:db8::1", dst="ff02::1:ff00:2", hlim=255)
    //   /ICMPv6ND_NS(tgt="2001:db8::2")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    const SCAPY_NS: &str = "87001c270000000020010db80000000000000000000000020101020000000001";
    // IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=255)
    //   /ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02")
    const SCAPY_NA: &str = "88008a716000000020010db80000000000000000000000020201020000000002";
    // IPv6(src="2001:db8::2", dst="2001:db8::1")/ICMPv6PacketTooBig(mtu=1400)/b"\x60\0\0\0"
    const SCAPY_PTB: &str = "02003ccc0000057860000000";
    // IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6EchoRequest(id=0x1234, seq=7, data=b"hello")
    const SCAPY_ECHO: &str = "8000ce351234000768656c6c6f";

    fn ns_dst() -> Ipv6Addr {
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2)
    }

    #[test]
    fn reads_a_reference_echo_request() {
        let b = hex(SCAPY_ECHO);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 7));
        assert_eq!(p.data(), b"hello");
        assert!(p.verify_checksum(A1, A2));
        assert!(!p.verify_checksum(A1, A1));
    }

    #[test]
    fn echo_reply_verifies_with_the_addresses_swapped() {
        let mut b = hex(SCAPY_ECHO);
        Packet::new_checked(&mut b[..]).unwrap().make_echo_reply();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoReply);
        assert_eq!(p.data(), b"hello");
        assert!(p.verify_checksum(A2, A1));
    }

    #[test]
    fn short_is_truncated() {
        assert_eq!(
            Packet::new_checked(&[128u8, 0, 0, 0, 0, 0, 0][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn error_types_are_below_128() {
        for m in [
            Message::DstUnreachable,
            Message::PacketTooBig,
            Message::TimeExceeded,
            Message::ParamProblem,
        ] {
            assert!(m.is_error());
        }
        assert!(!Message::EchoRequest.is_error());
        assert!(!Message::NeighborSolicit.is_error());
    }

    #[test]
    fn solicited_node_and_its_mac_follow_rfc_4291_and_2464() {
        let a: Ipv6Addr = "2001:db8::abcd:1234:5678".parse().unwrap();
        let s = solicited_node(a);
        assert_eq!(s, "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            multicast_mac(s),
            MacAddr([0x33, 0x33, 0xff, 0x34, 0x56, 0x78])
        );
        assert_eq!(solicited_node(A2), ns_dst());
    }

    #[test]
    fn resolution_solicitation_matches_the_reference() {
        let mut out = [0u8; 64];
        let ns = NeighborSolicit::for_resolution(A2, MAC1);
        let n = ns.emit(&mut out, (A1, solicited_node(A2))).unwrap();
        assert_eq!(&out[..n], &hex(SCAPY_NS)[..]);
    }

    #[test]
    fn reads_a_reference_solicitation() {
        let b = hex(SCAPY_NS);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), Message::NeighborSolicit);
        assert!(p.verify_checksum(A1, ns_dst()));
        let ns = NeighborSolicit::parse(&p).unwrap();
        assert_eq!(ns, NeighborSolicit::for_resolution(A2, MAC1));
        assert!(ns.valid_from(255, A1, ns_dst()));
        assert!(!ns.valid_from(254, A1, ns_dst()), "forwarded");
    }

    #[test]
    fn answer_to_a_solicitation_matches_the_reference() {
        let ns = NeighborSolicit::parse(&Packet::new_checked(&hex(SCAPY_NS)[..]).unwrap()).unwrap();
        let (na, dst) = NeighborAdvert::answer(&ns, A1, MAC2);
        assert_eq!(dst, A1);
        let mut out = [0u8; 64];
        let n = na.emit(&mut out, (A2, dst)).unwrap();
        assert_eq!(&out[..n], &hex(SCAPY_NA)[..]);
        let p = Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(NeighborAdvert::parse(&p), Ok(na));
    }

    #[test]
    fn answer_to_duplicate_address_detection_goes_to_all_nodes_unsolicited() {
        let ns = NeighborSolicit {
            target: A2,
            source_ll: None,
        };
        assert!(ns.valid_from(255, Ipv6Addr::UNSPECIFIED, ns_dst()));
        assert!(!ns.valid_from(255, Ipv6Addr::UNSPECIFIED, A2));
        let (na, dst) = NeighborAdvert::answer(&ns, Ipv6Addr::UNSPECIFIED, MAC2);
        assert_eq!(dst, ALL_NODES);
        assert!(!na.solicited && na.override_flag);
    }

    #[test]
    fn unspecified_source_with_a_link_layer_option_is_invalid() {
        let ns = NeighborSolicit::for_resolution(A2, MAC1);
        assert!(!ns.valid_from(255, Ipv6Addr::UNSPECIFIED, ns_dst()));
    }

    #[test]
    fn zero_length_option_is_malformed() {
        let mut b = hex(SCAPY_NS);
        b[25] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(NeighborSolicit::parse(&p), Err(Error::Malformed));
    }

    #[test]
    fn option_past_the_message_is_truncated() {
        let mut b = hex(SCAPY_NS);
        b[25] = 2;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(NeighborSolicit::parse(&p), Err(Error::Truncated));
        let p = Packet::new_checked(&b[..25]).unwrap();
        assert_eq!(NeighborSolicit::parse(&p), Err(Error::Truncated));
    }

    #[test]
    fn multicast_target_or_nonzero_code_is_malformed() {
        let mut b = hex(SCAPY_NS);
        b[8] = 0xff;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(NeighborSolicit::parse(&p), Err(Error::Malformed));
        let mut b = hex(SCAPY_NA);
        b[1] = 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(NeighborAdvert::parse(&p), Err(Error::Malformed));
    }

    #[test]
    fn unknown_options_are_skipped() {
        let mut b = hex(SCAPY_NA)[..24].to_vec();
        b.extend_from_slice(&[5, 1, 0, 0, 0, 0, 5, 0xdc]); // MTU option
        b.extend_from_slice(&[2, 1, 2, 0, 0, 0, 0, 2]);
        let na = NeighborAdvert::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(na.target_ll, Some(MAC2));
    }

    #[test]
    fn packet_too_big_matches_the_reference() {
        let mut out = [0u8; 64];
        let n = build_packet_too_big(&mut out, 1400, (A2, A1), &[0x60, 0, 0, 0]).unwrap();
        assert_eq!(&out[..n], &hex(SCAPY_PTB)[..]);
        let p = Packet::new_checked(&out[..n]).unwrap();
        assert_eq!((p.msg_type(), p.mtu()), (Message::PacketTooBig, 1400));
        assert!(p.verify_checksum(A2, A1));
    }

    #[test]
    fn errors_quote_at_most_the_minimum_mtu() {
        let invoking = vec![0x60u8; 1500];
        let mut out = vec![0u8; 1500];
        let n = build_packet_too_big(&mut out, 1280, (A2, A1), &invoking).unwrap();
        assert_eq!(n + ipv6::HEADER_LEN, ipv6::MIN_MTU);
        let n = build_packet_too_big(&mut out[..100], 1280, (A2, A1), &invoking).unwrap();
        assert_eq!(n, 100);
        assert_eq!(
            build_packet_too_big(&mut out[..7], 1280, (A2, A1), &invoking),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn an_error_cannot_be_built_from_an_informational_type() {
        let mut out = [0u8; 64];
        let r = build_error(&mut out, Message::EchoReply, 0, 0, (A1, A2), &[]);
        assert_eq!(r, Err(Error::Malformed));
    }

    #[test]
    fn time_exceeded_and_parameter_problem_carry_their_fields() {
        let mut out = [0u8; 64];
        let n = build_error(&mut out, Message::ParamProblem, 0, 6, (A1, A2), &[1, 2]).unwrap();
        let p = Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(
            (p.msg_type(), p.pointer(), p.data()),
            (Message::ParamProblem, 6, &[1u8, 2][..])
        );
        assert!(p.verify_checksum(A1, A2));
        let n = build_error(&mut out, Message::TimeExceeded, 0, 0, (A1, A2), &[]).unwrap();
        let p = Packet::new_checked(&out[..n]).unwrap();
        assert_eq!((p.msg_type(), n), (Message::TimeExceeded, 8));
    }

    fn addr() -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>().prop_map(Ipv6Addr::from)
    }

    fn unicast() -> impl Strategy<Value = Ipv6Addr> {
        addr().prop_filter("not multicast", |a| !a.is_multicast())
    }

    fn mac() -> impl Strategy<Value = Option<MacAddr>> {
        proptest::option::of(any::<[u8; 6]>().prop_map(MacAddr))
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.echo_ident(), p.echo_seq(), p.mtu(),
                         p.data().len(), p.verify_checksum(A1, A2));
                let _ = NeighborSolicit::parse(&p);
                let _ = NeighborAdvert::parse(&p);
            }
        }

        #[test]
        fn solicitation_parse_of_emit_is_identity(
            target in unicast(), source_ll in mac(), src in addr(), dst in addr(),
        ) {
            let ns = NeighborSolicit { target, source_ll };
            let mut out = [0u8; 40];
            let n = ns.emit(&mut out, (src, dst)).unwrap();
            let p = Packet::new_checked(&out[..n]).unwrap();
            prop_assert_eq!(p.msg_type(), Message::NeighborSolicit);
            prop_assert!(p.verify_checksum(src, dst));
            prop_assert_eq!(NeighborSolicit::parse(&p), Ok(ns));
        }

        #[test]
        fn advertisement_parse_of_emit_is_identity(
            router in any::<bool>(), solicited in any::<bool>(), override_flag in any::<bool>(),
            target in unicast(), target_ll in mac(), src in addr(), dst in addr(),
        ) {
            let na = NeighborAdvert { router, solicited, override_flag, target, target_ll };
            let mut out = [0u8; 40];
            let n = na.emit(&mut out, (src, dst)).unwrap();
            let p = Packet::new_checked(&out[..n]).unwrap();
            prop_assert_eq!(p.msg_type(), Message::NeighborAdvert);
            prop_assert!(p.verify_checksum(src, dst));
            prop_assert_eq!(NeighborAdvert::parse(&p), Ok(na));
        }

        #[test]
        fn packet_too_big_parse_of_build_is_identity(
            mtu in any::<u32>(), invoking in proptest::collection::vec(any::<u8>(), 0..200),
            src in addr(), dst in addr(),
        ) {
            let mut out = [0u8; 256];
            let n = build_packet_too_big(&mut out, mtu, (src, dst), &invoking).unwrap();
            let p = Packet::new_checked(&out[..n]).unwrap();
            prop_assert_eq!((p.msg_type(), p.code(), p.mtu()), (Message::PacketTooBig, 0, mtu));
            prop_assert_eq!(p.data(), &invoking[..]);
            prop_assert!(p.verify_checksum(src, dst));
        }

        #[test]
        fn echo_reply_patched_equals_full_recompute(
            ident in any::<u16>(), seq in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
            src in addr(), dst in addr(),
        ) {
            let mut b = vec![128, 0, 0, 0];
            b.extend_from_slice(&ident.to_be_bytes());
            b.extend_from_slice(&seq.to_be_bytes());
            b.extend_from_slice(&data);
            Packet::new_unchecked(&mut b[..]).fill_checksum(src, dst);
            Packet::new_checked(&mut b[..]).unwrap().make_echo_reply();
            let p = Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!((p.msg_type(), p.echo_ident(), p.echo_seq()), (Message::EchoReply, ident, seq));
            prop_assert!(p.verify_checksum(dst, src));
            let mut full = b.clone();
            Packet::new_unchecked(&mut full[..]).fill_checksum(dst, src);
            prop_assert_eq!(&b, &full);
        }
    }
}
