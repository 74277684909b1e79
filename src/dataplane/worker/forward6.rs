//! The IPv6 forwarding seam: IPv6 packets not addressed to the balancer
//! itself.
//!
//! IPv6 is not balanced yet on this branch: [`Worker::forward_ipv6`] drops
//! every such packet as `ipv6_no_service`. It is the one place the IPv6
//! balancer's decision goes (connection lookup, scheduling, rewrite), and
//! [`Worker::send_forwarded6`] is what follows the decision: hop limit,
//! route, MTU, neighbour, send; with the ICMPv6 errors a router owes the
//! sender (time exceeded, unreachable, packet too big).

use super::parse::Ipv6Info;
use super::Worker;
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::stats::DropReason;
use crate::wire::icmpv6::Message;
use crate::wire::ipv6;

// The send path and its codes wait for the IPv6 balancer (the lead's
// join); tests drive them meanwhile.
/// ICMPv6 destination unreachable code 0: no route to destination.
#[cfg_attr(not(test), allow(dead_code))]
const CODE_NO_ROUTE: u8 = 0;
/// ICMPv6 time exceeded code 0: hop limit exceeded in transit.
#[cfg_attr(not(test), allow(dead_code))]
const CODE_HOP_LIMIT: u8 = 0;

impl<F: Frame> Worker<F> {
    /// The load balancer's path for the IPv6 packet `ip` (parsed,
    /// extension headers walked, not addressed to the balancer itself):
    /// sends, parks or drops `frame`, counting what it does.
    ///
    /// Today it drops (`ipv6_no_service`). The IPv6 balancer plugs in
    /// here: from `ip` (addresses, `protocol`, `upper`, `sport`/`dport`,
    /// `tcp_flags()`, `frag`) decide, rewrite the packet in place at
    /// `ip.l3`, then call [`Worker::send_forwarded6`] with the rewritten
    /// frame.
    #[inline]
    pub(super) fn forward_ipv6<O: Output<F>>(
        &mut self,
        port: usize,
        ip: &Ipv6Info,
        frame: F,
        now: u64,
        out: &mut O,
    ) {
        let _ = (port, ip, now, out);
        drop(frame);
        self.stats.drop(DropReason::Ipv6NoService);
    }

    /// Sends a forwarded IPv6 packet (its header at `l3`, already
    /// rewritten by the balancer) towards its destination: a hop limit
    /// that runs out gets time exceeded back to the sender; the
    /// destination is routed by longest prefix (unreachable back when no
    /// route); a packet above the output port's MTU gets packet too big
    /// back (IPv6 is never fragmented in transit); then the next hop's MAC
    /// is resolved through the neighbour cache, the packet parked while a
    /// solicitation is out. Counts `forwarded` on success; on `Err` the
    /// frame is gone and the reason is the caller's to count.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn send_forwarded6<O: Output<F>>(
        &mut self,
        l3: usize,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let Some(bytes) = frame.data().get(l3..) else {
            return Err(DropReason::Truncated);
        };
        let Ok(ip) = ipv6::Packet::new_checked(bytes) else {
            return Err(DropReason::Truncated);
        };
        let (dst, hop_limit) = (ip.dst_addr(), ip.hop_limit());
        let len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        if hop_limit <= 1 {
            let error = (Message::TimeExceeded, CODE_HOP_LIMIT, 0);
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::TtlExpired);
        }
        let Some(hop) = self.v6.routes.lookup(dst) else {
            let error = (Message::DstUnreachable, CODE_NO_ROUTE, 0);
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::NoRoute);
        };
        let mtu = self.ports[usize::from(hop.port)].mtu;
        if len > usize::from(mtu) {
            let error = (Message::PacketTooBig, 0, u32::from(mtu));
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::TooBig);
        }
        ipv6::Packet::new_unchecked(&mut frame.data_mut()[l3..]).decrement_hop_limit();
        // Link-layer padding, if any, goes (the next link pads its own).
        frame.truncate(l3 + len);
        self.stats.forwarded += 1;
        self.send_to6(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }
}
