//! FullNAT over IPv6: both ends of the packet are rewritten, so an IPv6
//! real server sees the balancer's IPv6 local address (LIP6) as its peer
//! and needs no route back through rvs (the IPv4 scheme of `fullnat`).
//!
//! - [client]:CPORT → [VIP]:VPORT becomes [LIP6]:LPORT → [RIP]:RPORT;
//! - [RIP]:RPORT → [LIP6]:LPORT becomes [VIP]:VPORT → [client]:CPORT.
//!
//! Both are [`rewrite`] (source and destination in one call), the hop
//! limit left to the worker's send path as for `nat6::rewrite`. IPv6 has
//! no header checksum; the TCP/UDP checksum covers both pseudo-header
//! addresses (sixteen 16-bit words) and both ports, all folded into one
//! `checksum::Patch` and applied once (RFC 1624). A UDP checksum of zero
//! is invalid over IPv6 and refused; a UDP result of zero is written as
//! 0xFFFF. The walk over extension headers, the refusals (a live routing
//! header, a non-first fragment, a cut transport header) are `nat6`'s
//! (`nat6::Ports`), shared, not copied.
//!
//! MSS: nothing changes length, so nothing is clamped (as IPv4 FullNAT).
//!
//! ICMPv6 errors ([`translate_icmp_error`]): the error's two addresses and
//! the quoted packet's two ends change, the quoted transport checksum
//! patched where it was quoted, the ICMPv6 checksum recomputed (its
//! pseudo-header changed too), the hop limit decremented. An error from
//! the inside quoting [LIP6] → [RIP] reaches the client from the VIP
//! quoting [client] → [VIP]; packet too big keeps its MTU (the path's
//! MTU is the same for both: no header grows). One from the outside
//! quoting [VIP] → [client] reaches the real server from the LIP6 quoting
//! [RIP] → [LIP6].
//!
//! Fragments: a first fragment is rewritten like a whole packet (its
//! transport checksum covers the whole datagram); later ones carry no
//! ports and only their two addresses change ([`fragment`]).

use super::nat6::{checked, translate_icmp_error_with, Ports};
use super::{Endpoint6, XmitError};
use crate::wire::checksum::Patch;
use crate::wire::ipv6::{self, next_header, ExtError};
use crate::wire::{get_u16, put_u16};
use std::net::Ipv6Addr;

/// Rewrites both ends of a TCP or UDP packet to `src` → `dst`, its
/// checksum patched, the hop limit untouched (the worker's send path
/// decrements it). Anything `nat6::rewrite` refuses is `Unsupported`
/// here too, and left untouched.
pub fn rewrite(ip: &mut [u8], src: Endpoint6, dst: Endpoint6) -> Result<(), XmitError> {
    let ports = Ports::whole(&checked(ip)?)?;
    rewrite_ports(ports, ip, src, dst);
    let mut p = ipv6::Packet::new_unchecked(ip);
    p.set_src_addr(src.ip);
    p.set_dst_addr(dst.ip);
    Ok(())
}

/// A later fragment (no transport header) of a FullNAT datagram: its two
/// addresses become `src` → `dst` (no checksum in the IPv6 header; the
/// transport checksum was patched in the first fragment). A whole packet
/// or a first fragment is `Unsupported`, untouched.
pub fn fragment(ip: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), XmitError> {
    if !matches!(
        checked(ip)?.upper_layer(),
        Err(ExtError::FragmentNotFirst(_))
    ) {
        return Err(XmitError::Unsupported);
    }
    let mut p = ipv6::Packet::new_unchecked(ip);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    Ok(())
}

/// Translates an ICMPv6 error about a FullNAT connection: the error's own
/// addresses become `outer` (source, destination), the quoted packet's
/// ends become `quoted` (source, destination), its transport checksum
/// patched when quoted; the ICMPv6 checksum recomputed, the hop limit
/// decremented.
///
/// `TtlExpired` for hop limit 0 or 1; `Unsupported` when the bytes are not
/// an IPv6 packet carrying an ICMPv6 error that quotes an IPv6 header
/// walking to at least the ports of TCP or UDP. Either way the packet is
/// untouched.
pub fn translate_icmp_error(
    ip: &mut [u8],
    outer: (Ipv6Addr, Ipv6Addr),
    quoted: (Endpoint6, Endpoint6),
) -> Result<(), XmitError> {
    translate_icmp_error_with(
        ip,
        |ports, quote| {
            rewrite_ports(ports, quote, quoted.0, quoted.1);
            let mut q = ipv6::Packet::new_unchecked(quote);
            q.set_src_addr(quoted.0.ip);
            q.set_dst_addr(quoted.1.ip);
        },
        |p| {
            p.set_src_addr(outer.0);
            p.set_dst_addr(outer.1);
        },
    )
}

/// Sets both ports in `b` (the bytes from the IPv6 header on) and patches
/// the checksum, if there, for both ports and both addresses at once.
fn rewrite_ports(ports: Ports, b: &mut [u8], src: Endpoint6, dst: Endpoint6) {
    let (old_sport, old_dport) = (get_u16(b, ports.at), get_u16(b, ports.at + 2));
    put_u16(b, ports.at, src.port);
    put_u16(b, ports.at + 2, dst.port);
    if let Some(at) = ports.checksum {
        let patch = ipv6::addr_patch(Patch::default(), ports.addrs.0, src.ip);
        let patch = ipv6::addr_patch(patch, ports.addrs.1, dst.ip)
            .word(old_sport, src.port)
            .word(old_dport, dst.port);
        let ck = patch.apply(get_u16(b, at));
        let ck = if ck == 0 && ports.protocol == next_header::UDP {
            0xffff
        } else {
            ck
        };
        put_u16(b, at, ck);
    }
}

#[cfg(test)]
mod tests;
