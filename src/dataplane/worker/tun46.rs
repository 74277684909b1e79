//! TUN, IPv4-in-IPv6: an IPv4 service's client packet to a real server
//! reached over IPv6 (`lb::service::Tunnel6`, the balancer's
//! `Decision::Tun6ToRealServer`), unchanged inside an IPv6 header from
//! the balancer's IPv6 address toward the real server (`xmit::tun6`),
//! routed and sent as the IPv6 path sends (`v6.routes`, `send_to6`).
//!
//! Too big for the outgoing MTU once encapsulated: an inner packet with
//! DF gets ICMP fragmentation needed back (`mtu - 40`), as IPv4 TUN does;
//! one without DF is dropped (`TooBig`): the outer IPv6 packet would need
//! fragmenting by the tunnel entry (RFC 2473 7.1), not done (`tun6`).
//! Later fragments of an IPv4 datagram follow their first
//! (`lb::frag::FragRoute::Tun6`), each tunnelled the same way.

use super::forward::xmit_drop;
use super::Worker;
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::stats::DropReason;
use crate::lb::xmit::{tun, tun6, XmitError};
use crate::wire::{ethernet::EtherType, ipv4};
use std::net::Ipv6Addr;

impl<F: Frame> Worker<F> {
    /// Wraps the IPv4 packet at `l3` in an IPv6 header toward `real` and
    /// sends it (see the module doc); on `Err` the frame is gone and the
    /// reason is the caller's to count.
    #[inline(never)]
    pub(super) fn tunnel46<O: Output<F>>(
        &mut self,
        l3: usize,
        real: Ipv6Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop = self.v6.routes.lookup(real).ok_or(DropReason::NoRoute)?;
        let mtu = self.ports[usize::from(hop.port)].mtu;
        match tun6::check_fits(&frame.data()[l3..], mtu) {
            Ok(()) => {}
            Err(XmitError::TooBig { mtu }) if tun::dont_fragment(&frame.data()[l3..]) => {
                return self.frag_needed(l3, mtu, frame, now, out);
            }
            Err(e) => return Err(xmit_drop(e)),
        }
        // Link-layer padding, if any, goes: the outer payload length is
        // the inner packet's.
        let len = usize::from(ipv4::Packet::new_unchecked(&frame.data()[l3..]).total_len());
        frame.truncate(l3 + len);
        if l3 < 2 || !frame.prepend(tun6::OVERHEAD) {
            return Err(DropReason::TooBig);
        }
        let data = frame.data_mut();
        // The link-layer header moves to the new front and now carries
        // IPv6 (its last two bytes are the EtherType, after any tags).
        data.copy_within(tun6::OVERHEAD..tun6::OVERHEAD + l3, 0);
        data[l3 - 2..l3].copy_from_slice(&u16::from(EtherType::Ipv6).to_be_bytes());
        tun6::encapsulate(&mut data[l3..], hop.src, real).map_err(xmit_drop)?;
        self.stats.forwarded += 1;
        self.send_to6(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }
}
