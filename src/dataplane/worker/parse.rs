//! The worker's one look at a frame's headers.
//!
//! Every frame is parsed once, when its window of the poll is warmed up:
//! Ethernet (VLAN tags walked), then ARP, IPv4 (lengths and header
//! checksum checked) or IPv6 (payload length checked, extension headers
//! walked once, see [`Ipv6Info`]), then for TCP and UDP that are whole or a first
//! fragment (offset 0: the ports are there) the transport header, the
//! 5-tuple and the connection table's hash (IPv4's table or IPv6's). The
//! result, a [`Parsed`], is what every later step reads: the prefetches,
//! the choice of the owning worker, the local path (ARP, echo) and the
//! balancer's decision. Nothing downstream re-derives offsets, addresses,
//! ports or the hash from the bytes.
//!
//! Errors are recorded, not acted on: the decision keeps its order of
//! checks (port, MAC addresses, then what the parse found), so each drop is
//! counted under the reason the first failing check names.

use crate::dataplane::stats::DropReason;
use crate::lb::balancer::{Balancer, Flow};
use crate::lb::conn::{FlowKey, FlowKey6};
use crate::lb::service::Protocol;
use crate::lb::tcp_state::TcpFlags;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::ipv6::{self, next_header, ExtError};
use crate::wire::{ipv4, tcp, udp, Error as WireError};
use std::net::{Ipv4Addr, Ipv6Addr};

/// What the first look found in a frame.
///
/// A tag of its own (`repr(u8)`): without it the compiler hides the tag in
/// a spare value of [`Ipv6Info`]'s fields once that is the largest
/// variant, and every `match` on a parsed frame decodes it (measured: +8
/// instructions an IPv4 packet, `docs/dev/h19-perf6.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Parsed {
    /// Shorter than an Ethernet header: nothing else can be read.
    Runt(DropReason),
    /// The Ethernet header is readable (MAC checks apply), the rest is
    /// not usable for this reason.
    Bad(DropReason),
    /// An ARP packet at this offset.
    Arp {
        /// Offset of the ARP packet.
        l3: u16,
    },
    /// Neither ARP, IPv4 nor IPv6.
    OtherEthertype,
    /// IPv4 whose header is whole and whose checksum is right.
    Ipv4(Ipv4Info),
    /// IPv6 whose payload is whole and whose extension headers were
    /// walked to a TCP, UDP or ICMPv6 header (or another upper layer).
    Ipv6(Ipv6Info),
}

/// An IPv6 packet's facts, as the first look read them: the forwarding
/// step and the local path (ND, echo) never walk its extension headers
/// again. 52 bytes with the hash; [`Parsed`] is 56.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ipv6Info {
    /// Offset of the IPv6 header.
    pub l3: u16,
    /// Offset of the upper-layer header from the IPv6 header (40 without
    /// extension headers).
    pub upper: u16,
    /// Payload length (extension headers included).
    pub payload_len: u16,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// The upper layer's protocol (`wire::ipv6::next_header`); for a later
    /// fragment, the fragment header's next header.
    pub protocol: u8,
    /// Whole, or which fragment of a packet. A later fragment's `upper`
    /// is the offset of its fragment's data.
    pub frag: Frag,
    /// TCP flags; for ICMPv6, the message type (0 otherwise).
    pub flags_or_type: u8,
    /// TCP/UDP source port (0 for other protocols and later fragments).
    pub sport: u16,
    /// TCP/UDP destination port (0 for other protocols and later
    /// fragments).
    pub dport: u16,
    /// The IPv6 connection table's hash of the 5-tuple
    /// (`Balancer::flow_hash6`) when [`Ipv6Info::has_ports`], else 0:
    /// computed once, shared by the window's prefetches and the lookup,
    /// as IPv4's `Flow::hash`.
    pub hash: u32,
}

impl Ipv6Info {
    /// True for TCP or UDP whose ports were read (whole or first fragment).
    pub fn has_ports(&self) -> bool {
        self.frag != Frag::Later
            && (self.protocol == next_header::TCP || self.protocol == next_header::UDP)
    }

    /// The ICMPv6 message type, for ICMPv6 that is not a later fragment.
    pub fn icmp_type(&self) -> Option<u8> {
        (self.protocol == next_header::ICMPV6 && self.frag != Frag::Later)
            .then_some(self.flags_or_type)
    }

    /// TCP flags (empty for anything else).
    pub fn tcp_flags(&self) -> TcpFlags {
        if self.protocol == next_header::TCP && self.frag != Frag::Later {
            TcpFlags(self.flags_or_type)
        } else {
            TcpFlags::NONE
        }
    }
}

/// An IPv4 packet's facts, as the first look read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ipv4Info {
    /// Offset of the IPv4 header.
    pub l3: u16,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Whole, or which fragment of a datagram.
    pub frag: Frag,
    /// IP identification (ties a datagram's fragments together).
    pub ident: u16,
    /// The transport's view, for TCP and UDP.
    pub l4: L4,
}

/// Where an IPv4 packet stands in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frag {
    /// Not fragmented.
    Whole,
    /// Offset 0, More Fragments set: carries the transport header.
    First,
    /// Offset above 0: no transport header (`lb::frag` says where it goes).
    Later,
}

impl Ipv4Info {
    /// True for any fragment, first or later.
    pub fn is_fragment(&self) -> bool {
        self.frag != Frag::Whole
    }
}

/// The transport header of an IPv4 packet, for the balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum L4 {
    /// Not TCP or UDP, or a later fragment: no ports to read.
    None,
    /// TCP or UDP whose header is not whole.
    Bad(DropReason),
    /// TCP or UDP: the flow, with its table hash.
    Flow(Flow),
}

/// Parses `frame` once (see the module doc); `lb` gives the connection
/// table's hash of a flow's key.
#[inline]
pub(crate) fn parse(frame: &[u8], lb: &Balancer) -> Parsed {
    let eth = match ethernet::Frame::new_checked(frame) {
        Ok(eth) => eth,
        Err(e) => return Parsed::Runt(wire_drop(e)),
    };
    let l3 = match eth.l3() {
        Ok(l3) => l3,
        Err(e) => return Parsed::Bad(wire_drop(e)),
    };
    match l3.ethertype {
        EtherType::Arp => Parsed::Arp {
            l3: l3.offset as u16,
        },
        EtherType::Ipv4 => match parse_ipv4(&frame[l3.offset..], l3.offset as u16, lb) {
            Ok(info) => Parsed::Ipv4(info),
            Err(reason) => Parsed::Bad(reason),
        },
        EtherType::Ipv6 => match parse_ipv6(&frame[l3.offset..], l3.offset as u16, lb) {
            Ok(info) => Parsed::Ipv6(info),
            Err(reason) => Parsed::Bad(reason),
        },
        _ => Parsed::OtherEthertype,
    }
}

#[inline]
fn parse_ipv4(bytes: &[u8], l3: u16, lb: &Balancer) -> Result<Ipv4Info, DropReason> {
    let ip = ipv4::Packet::new_checked(bytes).map_err(wire_drop)?;
    if !ip.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    let protocol = u8::from(ip.protocol());
    let frag = match (ip.frag_offset(), ip.more_frags()) {
        (0, false) => Frag::Whole,
        (0, true) => Frag::First,
        _ => Frag::Later,
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let l4 = match Protocol::from_number(protocol) {
        Some(p) if frag != Frag::Later => match read_l4(ip.payload(), p, frag) {
            Ok((sport, dport, flags)) => {
                let key = FlowKey::new(src, sport, dst, dport, protocol);
                L4::Flow(Flow {
                    key,
                    hash: lb.flow_hash(&key),
                    protocol: p,
                    flags,
                    bytes: u32::from(ip.total_len()),
                })
            }
            Err(reason) => L4::Bad(reason),
        },
        _ => L4::None,
    };
    Ok(Ipv4Info {
        l3,
        src,
        dst,
        protocol,
        ttl: ip.ttl(),
        frag,
        ident: ip.ident(),
        l4,
    })
}

/// The IPv6 part of [`parse`]: the fixed header, the extension headers
/// walked once (bounded by `wire::ipv6`), a routing header still on its way
/// refused, and the TCP/UDP ports or the ICMPv6 type read. A TCP or UDP
/// header that is not whole is refused here (IPv6 has no header checksum
/// to check first, so nothing is lost by deciding now).
#[inline]
fn parse_ipv6(bytes: &[u8], l3: u16, lb: &Balancer) -> Result<Ipv6Info, DropReason> {
    let ip = ipv6::Packet::new_checked(bytes).map_err(wire_drop)?;
    let (protocol, upper, frag) = match ip.upper_layer() {
        Ok(u) => {
            if u.segments_left > 0 {
                return Err(DropReason::Ipv6SourceRoute);
            }
            let frag = if u.fragment.is_some() {
                Frag::First
            } else {
                Frag::Whole
            };
            (u.protocol, u.offset, frag)
        }
        Err(ExtError::FragmentNotFirst(f)) => {
            // The data starts right after the fragment header, whose
            // offset the walk does not report: a later fragment carries no
            // upper-layer header, so the offset of its data is not needed
            // by anyone yet; 0 says "unknown".
            (f.next_header, 0, Frag::Later)
        }
        Err(e) => return Err(ext_drop(e)),
    };
    let mut info = Ipv6Info {
        l3,
        upper: upper as u16,
        payload_len: ip.payload_len(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        hop_limit: ip.hop_limit(),
        protocol,
        frag,
        flags_or_type: 0,
        sport: 0,
        dport: 0,
        hash: 0,
    };
    if frag == Frag::Later {
        return Ok(info);
    }
    // The walk kept `upper` within the payload.
    let end = ipv6::HEADER_LEN + usize::from(info.payload_len);
    let l4 = bytes.get(upper..end).ok_or(DropReason::Truncated)?;
    match protocol {
        next_header::TCP | next_header::UDP => {
            let p = if protocol == next_header::TCP {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let (sport, dport, flags) = read_l4(l4, p, frag)?;
            info.sport = sport;
            info.dport = dport;
            info.flags_or_type = flags.0;
            info.hash = lb.flow_hash6(&FlowKey6::new(info.src, sport, info.dst, dport, protocol));
        }
        next_header::ICMPV6 => {
            info.flags_or_type = *l4.first().ok_or(DropReason::Truncated)?;
        }
        _ => {}
    }
    Ok(info)
}

/// The drop reason for an extension-header walk that failed.
fn ext_drop(e: ExtError) -> DropReason {
    match e {
        ExtError::Truncated => DropReason::Truncated,
        ExtError::TooMany => DropReason::Ipv6ExtTooMany,
        ExtError::TooLong => DropReason::Ipv6ExtTooLong,
        ExtError::HopByHopNotFirst => DropReason::Ipv6HopByHopNotFirst,
        ExtError::DuplicateFragment => DropReason::Malformed,
        ExtError::FragmentNotFirst(_) => DropReason::Fragment,
    }
}

/// Ports and flags of a whole TCP or UDP header (a first fragment's UDP
/// length is the whole datagram's: only its header is held to the bytes).
#[inline]
fn read_l4(
    payload: &[u8],
    protocol: Protocol,
    frag: Frag,
) -> Result<(u16, u16, TcpFlags), DropReason> {
    match protocol {
        Protocol::Tcp => {
            let t = tcp::Packet::new_checked(payload).map_err(wire_drop)?;
            Ok((t.src_port(), t.dst_port(), TcpFlags(t.flags().0)))
        }
        Protocol::Udp => {
            let u = if frag == Frag::First {
                udp::Packet::new_checked_quoted(payload)
            } else {
                udp::Packet::new_checked(payload)
            }
            .map_err(wire_drop)?;
            Ok((u.src_port(), u.dst_port(), TcpFlags::NONE))
        }
    }
}

/// The drop reason for a view that could not be made.
pub(crate) fn wire_drop(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::Malformed => DropReason::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_frame_stays_small() {
        // It is written and read once per frame for a window of 64.
        assert!(
            std::mem::size_of::<Parsed>() <= 56,
            "{}",
            std::mem::size_of::<Parsed>()
        );
    }
}
