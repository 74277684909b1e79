//! The worker's one look at a frame's headers.
//!
//! Every frame is parsed once, when its window of the poll is warmed up:
//! Ethernet (VLAN tags walked), then ARP or IPv4 (lengths and header
//! checksum checked), then for TCP and UDP that are whole or a first
//! fragment (offset 0: the ports are there) the transport header, the
//! 5-tuple and the connection table's hash. The
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
use crate::lb::conn::FlowKey;
use crate::lb::service::Protocol;
use crate::lb::tcp_state::TcpFlags;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{ipv4, tcp, udp, Error as WireError};
use std::net::Ipv4Addr;

/// What the first look found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Neither ARP nor IPv4.
    OtherEthertype,
    /// IPv4 whose header is whole and whose checksum is right.
    Ipv4(Ipv4Info),
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
            std::mem::size_of::<Parsed>() <= 48,
            "{}",
            std::mem::size_of::<Parsed>()
        );
    }
}
