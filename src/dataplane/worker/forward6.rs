//! The load balancer's path for IPv6 packets not addressed to the
//! balancer itself: the IPv6 twin of `forward.rs`.
//!
//! A TCP or UDP packet (whole, or a first fragment: its ports are there)
//! is handed to the owning worker when several share the ports (RSS on the
//! client's address, `net::rss::worker_of6`), then decided by the IPv6
//! balancer (`Balancer::decide6`, over the IPv6 connection table) and
//! rewritten for its method: NAT by `xmit::nat6` (both directions), DR by
//! the link layer only (the real server on a connected subnet holds the
//! VIP), TUN by `xmit::tun6` (IPv6-in-IPv6, the outer source the
//! balancer's address toward the real server). A refused TCP connection
//! gets a reset (`xmit::rst6`). ICMPv6 errors quoting a tracked connection
//! are passed on, translated for NAT (`nat6::translate_icmp_error`), so
//! path MTU discovery works through rvs.
//!
//! [`Worker::send_forwarded6`] is the send path every forwarded packet
//! takes: hop limit, route, MTU, neighbour; with the ICMPv6 errors a
//! router owes the sender (time exceeded, unreachable, packet too big).
//!
//! IPv6 fragments (`lb::frag6`, IPv4's scheme): a first fragment is
//! decided like any packet of its connection and its decision kept under
//! (source, destination, 32-bit identification); later fragments follow
//! it with only the fixed header rewritten (NAT) or as they are (DR, TUN),
//! or wait for it in a small queue when they come first.
//!
//! FullNAT over IPv6 (`xmit::fullnat6`): both ends rewritten, replies
//! come to an IPv6 local address, which the RSS model gives one worker
//! (`worker_of6(lip)`, as `owner6` computes it without a device hash); a
//! SYN that finds no free local port is counted (`local_ports_exhausted`)
//! and answered with a reset. NAT64 (an IPv6 service in front of IPv4
//! real servers) is `nat64.rs`.
//!
//! Not here yet: the SYN proxy over IPv6.

use super::parse::{self, Frag, Ipv6Info, Parsed};
use super::Worker;
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::stats::DropReason;
use crate::lb::balancer::{Decision6, Flow6, IcmpRoute6, Refusal};
use crate::lb::conn::FlowKey6;
use crate::lb::frag6::{FragKey6, FragRoute6};
use crate::lb::service::{ForwardMethod, Protocol};
use crate::lb::xmit::nat::Side;
use crate::lb::xmit::{fullnat6, nat6, rst6, tun6, Endpoint6, XmitError};
use crate::wire::get_u16;
use crate::wire::icmpv6::{self, Message};
use crate::wire::ipv6::{self, next_header, ExtError};
use std::net::Ipv6Addr;

/// ICMPv6 destination unreachable code 0: no route to destination.
const CODE_NO_ROUTE: u8 = 0;
/// ICMPv6 time exceeded code 0: hop limit exceeded in transit.
const CODE_HOP_LIMIT: u8 = 0;

impl<F: Frame> Worker<F> {
    /// The load balancer's path for the IPv6 packet `ip` (parsed,
    /// extension headers walked, not addressed to the balancer itself):
    /// sends, parks, hands over or drops `frame`, counting what it does.
    #[inline]
    pub(super) fn forward_ipv6<O: Output<F>>(
        &mut self,
        port: usize,
        ip: &Ipv6Info,
        frame: F,
        now: u64,
        out: &mut O,
    ) {
        if let Err(reason) = self.forward_ipv6_inner(port, ip, frame, now, out) {
            self.stats.drop(reason);
        }
    }

    fn forward_ipv6_inner<O: Output<F>>(
        &mut self,
        port: usize,
        ip: &Ipv6Info,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let l3 = usize::from(ip.l3);
        if self.workers > 1 && !self.from_peer {
            if let Some(owner) = self.owner6(ip, &frame.data()[l3..]) {
                if owner != self.index {
                    out.redirect(owner, port, frame);
                    return Ok(());
                }
            }
        }
        let protocol = match ip.protocol {
            next_header::TCP => Protocol::Tcp,
            next_header::UDP => Protocol::Udp,
            next_header::ICMPV6 => return self.icmp_error6(ip, frame, now, out),
            _ => return Err(self.unknown_destination6(ip.dst)),
        };
        if ip.frag == Frag::Later {
            return self.later_fragment6(ip, frame, now, out);
        }
        if ip.hop_limit <= 1 {
            // Decided before a connection is created or counted.
            let error = (Message::TimeExceeded, CODE_HOP_LIMIT, 0);
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::TtlExpired);
        }
        let key = FlowKey6::new(ip.src, ip.sport, ip.dst, ip.dport, ip.protocol);
        let flow = Flow6 {
            key,
            // Hashed by the parse, for the window's prefetches.
            hash: ip.hash,
            protocol,
            flags: ip.tcp_flags(),
            bytes: ipv6::HEADER_LEN as u32 + u32::from(ip.payload_len),
        };
        let decision = self.lb.decide6(&flow, now);
        if ip.frag == Frag::First {
            return self.first_fragment6(ip, &flow, decision, frame, now, out);
        }
        self.act6(l3, &flow, decision, frame, now, out)
    }

    /// A first fragment (it has the ports): acts on `decision` as for a
    /// whole packet, keeps the decision for the later fragments of its
    /// packet, and sends on those that came before it.
    fn first_fragment6<O: Output<F>>(
        &mut self,
        ip: &Ipv6Info,
        flow: &Flow6,
        decision: Decision6,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let l3 = usize::from(ip.l3);
        let key = frag_key6(ip, &frame.data()[l3..]).ok_or(DropReason::Malformed)?;
        let route = match decision {
            Decision6::ToRealServer { method, real, .. } => FragRoute6::ToRealServer {
                method,
                real: real.ip,
            },
            Decision6::ToClient { vip } => FragRoute6::ToClient { vip: vip.ip },
            Decision6::FullNatToRealServer { local, real, .. } => FragRoute6::FullNat {
                src: local.ip,
                dst: real.ip,
            },
            Decision6::FullNatToClient { vip, client } => FragRoute6::FullNat {
                src: vip.ip,
                dst: client.ip,
            },
            _ => {
                self.frags6.forget(&key);
                while self.frags6.take_waiting(&key).is_some() {
                    self.stats.drop(DropReason::FragmentUnmatched);
                }
                return self.act6(l3, flow, decision, frame, now, out);
            }
        };
        self.frags6.record(key, route, now);
        let sent = self.act6(l3, flow, decision, frame, now, out);
        while let Some(w) = self.frags6.take_waiting(&key) {
            match parse::parse(w.frame.data(), &self.lb) {
                Parsed::Ipv6(waiting) => {
                    if let Err(reason) = self.follow6(&waiting, route, w.frame, now, out) {
                        self.stats.drop(reason);
                    }
                }
                // It was parsed whole when it arrived.
                _ => self.stats.drop(DropReason::Malformed),
            }
        }
        sent
    }

    /// A later fragment (no transport header): follows its first
    /// fragment's decision, or waits for it (bounded, `lb::frag6`).
    fn later_fragment6<O: Output<F>>(
        &mut self,
        ip: &Ipv6Info,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let l3 = usize::from(ip.l3);
        let key = frag_key6(ip, &frame.data()[l3..]).ok_or(DropReason::Malformed)?;
        match self.frags6.lookup(&key, now) {
            Some(route) => self.follow6(ip, route, frame, now, out),
            None => match self.frags6.wait(key, frame, now) {
                Ok(()) => {
                    self.stats.fragments_queued += 1;
                    Ok(())
                }
                Err(_frame) => Err(DropReason::FragmentQueueFull),
            },
        }
    }

    /// Sends the later fragment `ip` where its first fragment went: NAT
    /// rewrites the address in its fixed header alone (IPv6 has no header
    /// checksum; the transport checksum, over the whole packet, was
    /// patched in the first fragment), DR and TUN send it to the same
    /// real server.
    fn follow6<O: Output<F>>(
        &mut self,
        ip: &Ipv6Info,
        route: FragRoute6,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let l3 = usize::from(ip.l3);
        match route {
            FragRoute6::ToRealServer { method, real } => match method {
                ForwardMethod::Nat => {
                    ipv6::Packet::new_unchecked(&mut frame.data_mut()[l3..]).set_dst_addr(real);
                    self.forward_toward6(l3, real, true, frame, now, out)?;
                }
                ForwardMethod::Dr => self.forward_toward6(l3, real, true, frame, now, out)?,
                ForwardMethod::Tun => self.tunnel6(l3, real, frame, now, out)?,
                ForwardMethod::FullNat => return Err(DropReason::UnsupportedProtocol),
            },
            FragRoute6::ToClient { vip } => {
                ipv6::Packet::new_unchecked(&mut frame.data_mut()[l3..]).set_src_addr(vip);
                self.forward_toward6(l3, ip.dst, true, frame, now, out)?;
            }
            FragRoute6::FullNat { src, dst } => {
                fullnat6::fragment(&mut frame.data_mut()[l3..], src, dst).map_err(xmit_drop6)?;
                self.forward_toward6(l3, dst, true, frame, now, out)?;
            }
        }
        self.stats.fragments_forwarded += 1;
        Ok(())
    }

    /// Carries out the IPv6 balancer's `decision` for the packet at `l3`.
    fn act6<O: Output<F>>(
        &mut self,
        l3: usize,
        flow: &Flow6,
        decision: Decision6,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        match decision {
            Decision6::ToRealServer {
                method,
                real,
                created,
            } => {
                if created {
                    self.stats.conns_created += 1;
                }
                match method {
                    ForwardMethod::Nat => {
                        nat6::rewrite(&mut frame.data_mut()[l3..], Side::Dst, real)
                            .map_err(xmit_drop6)?;
                        self.send_forwarded6(l3, frame, now, out)
                    }
                    // The VIP stays the destination; only the MACs change.
                    ForwardMethod::Dr => self.forward_toward6(l3, real.ip, true, frame, now, out),
                    ForwardMethod::Tun => self.tunnel6(l3, real.ip, frame, now, out),
                    ForwardMethod::FullNat => Err(DropReason::UnsupportedProtocol),
                }
            }
            Decision6::ToClient { vip } => {
                nat6::rewrite(&mut frame.data_mut()[l3..], Side::Src, vip).map_err(xmit_drop6)?;
                self.send_forwarded6(l3, frame, now, out)
            }
            Decision6::Nat64ToRealServer {
                local,
                real,
                created,
            } => {
                if created {
                    self.stats.conns_created += 1;
                }
                self.nat64_to_real_server(l3, local, real, frame, now, out)
            }
            Decision6::FullNatToRealServer {
                local,
                real,
                created,
            } => {
                if created {
                    self.stats.conns_created += 1;
                }
                fullnat6::rewrite(&mut frame.data_mut()[l3..], local, real).map_err(xmit_drop6)?;
                self.send_forwarded6(l3, frame, now, out)
            }
            Decision6::FullNatToClient { vip, client } => {
                fullnat6::rewrite(&mut frame.data_mut()[l3..], vip, client).map_err(xmit_drop6)?;
                self.send_forwarded6(l3, frame, now, out)
            }
            Decision6::Reset => self.reset6(l3, frame, now, out),
            Decision6::Drop(Refusal::NoLocalPort) if flow.protocol == Protocol::Tcp => {
                // FullNAT (over IPv6 or NAT64) out of local ports: counted,
                // and the client told at once (as IPv4 FullNAT).
                self.stats.drop(DropReason::LocalPortsExhausted);
                self.reset6(l3, frame, now, out)
            }
            Decision6::Drop(Refusal::NoService) => Err(self.unknown_destination6(flow.key.dst)),
            Decision6::Drop(refusal) => Err(refusal.into()),
        }
    }

    /// Why a packet no IPv6 service takes is dropped: to a VIP it is a
    /// protocol or port the VIP does not serve (`unsupported_protocol`),
    /// elsewhere `ipv6_no_service`.
    fn unknown_destination6(&self, dst: Ipv6Addr) -> DropReason {
        if self.lb.services().is_vip6(dst) {
            DropReason::UnsupportedProtocol
        } else {
            DropReason::Ipv6NoService
        }
    }

    /// The worker that owns the connection of this IPv6 packet (the
    /// queue RSS on the client's address delivers it to), alike from
    /// either direction and from ICMPv6 errors quoting either; `None` for
    /// packets of no service, handled here.
    fn owner6(&self, ip: &Ipv6Info, bytes: &[u8]) -> Option<usize> {
        let client = if ip.has_ports() {
            self.client_of6(
                FlowKey6::new(ip.src, ip.sport, ip.dst, ip.dport, ip.protocol),
                ip.protocol,
            )?
        } else if ip.frag == Frag::Later
            && matches!(ip.protocol, next_header::TCP | next_header::UDP)
        {
            // No ports: to a VIP its source is the client, otherwise (a NAT
            // real server's reply) its destination.
            if self.lb.services().is_vip6(ip.dst) {
                ip.src
            } else {
                ip.dst
            }
        } else if ip.icmp_type().is_some_and(|t| t < 128) && ip.frag == Frag::Whole {
            let quoted = quoted_flow6(bytes, usize::from(ip.upper))?;
            self.client_of_quoted6(quoted)?
        } else {
            return None;
        };
        Some(self.rss.worker_of6(client))
    }

    /// The client of an IPv6 flow `key`: its source when it goes to a
    /// service, its destination when a NAT real server sends it.
    fn client_of6(&self, key: FlowKey6, proto: u8) -> Option<Ipv6Addr> {
        let protocol = match proto {
            next_header::TCP => Protocol::Tcp,
            next_header::UDP => Protocol::Udp,
            _ => return None,
        };
        let services = self.lb.services();
        if services.is_local_address6(key.dst) {
            // FullNAT: a reply to a local address belongs to the worker
            // that owns that address (`lb::local_pool`).
            return Some(key.dst);
        }
        if services
            .lookup6(Endpoint6::new(key.dst, key.dst_port), protocol)
            .is_some()
        {
            Some(key.src)
        } else if services.is_nat_real_server6(Endpoint6::new(key.src, key.src_port), protocol) {
            Some(key.dst)
        } else {
            None
        }
    }

    /// The client of the connection an ICMPv6 error is about, from the
    /// packet it quotes (which went the other way): the quoted source when
    /// it was sent to a service or a NAT real server, the quoted
    /// destination when a service sent it.
    fn client_of_quoted6(&self, quoted: FlowKey6) -> Option<Ipv6Addr> {
        let protocol = match quoted.proto {
            next_header::TCP => Protocol::Tcp,
            next_header::UDP => Protocol::Udp,
            _ => return None,
        };
        let services = self.lb.services();
        if services.is_local_address6(quoted.src) {
            // FullNAT: the quoted packet left from a local address.
            return Some(quoted.src);
        }
        let dst = Endpoint6::new(quoted.dst, quoted.dst_port);
        let src = Endpoint6::new(quoted.src, quoted.src_port);
        if services.lookup6(dst, protocol).is_some() || services.is_nat_real_server6(dst, protocol)
        {
            Some(quoted.src)
        } else if services.lookup6(src, protocol).is_some() {
            Some(quoted.dst)
        } else {
            None
        }
    }

    /// ICMPv6 not addressed to the balancer: errors quoting a tracked
    /// connection are passed on (translated for NAT); the rest is dropped.
    fn icmp_error6<O: Output<F>>(
        &mut self,
        ip: &Ipv6Info,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let l3 = usize::from(ip.l3);
        if ip.icmp_type().is_none_or(|t| t >= 128) {
            // Informational (echo to a VIP is answered by the local path).
            return Err(if ip.frag == Frag::Later {
                DropReason::Fragment
            } else {
                self.unknown_destination6(ip.dst)
            });
        }
        if ip.frag != Frag::Whole {
            return Err(DropReason::Fragment);
        }
        let upper = usize::from(ip.upper);
        let end = ipv6::HEADER_LEN + usize::from(ip.payload_len);
        {
            let bytes = &frame.data()[l3..];
            let msg = bytes.get(upper..end).ok_or(DropReason::Truncated)?;
            let m = icmpv6::Packet::new_checked(msg).map_err(|_| DropReason::Truncated)?;
            if !m.verify_checksum(ip.src, ip.dst) {
                return Err(DropReason::BadChecksum);
            }
        }
        let quoted = quoted_flow6(&frame.data()[l3..], upper).ok_or(DropReason::Malformed)?;
        // The quoted packet went the other way: its reversed tuple is the
        // key this error travels with.
        let route = self.lb.icmp_error6(&quoted.reversed(), now)?;
        self.stats.icmp_errors_forwarded += 1;
        match route {
            IcmpRoute6::ToClient { vip, client } => {
                nat6::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (Side::Src, vip.ip),
                    (Side::Dst, vip),
                )
                .map_err(xmit_drop6)?;
                self.forward_toward6(l3, client, false, frame, now, out)
            }
            IcmpRoute6::ToRealServer { method, real } => match method {
                ForwardMethod::Nat => {
                    nat6::translate_icmp_error(
                        &mut frame.data_mut()[l3..],
                        (Side::Dst, real.ip),
                        (Side::Src, real),
                    )
                    .map_err(xmit_drop6)?;
                    self.forward_toward6(l3, real.ip, false, frame, now, out)
                }
                ForwardMethod::Dr => self.forward_toward6(l3, real.ip, true, frame, now, out),
                ForwardMethod::Tun => self.tunnel6(l3, real.ip, frame, now, out),
                ForwardMethod::FullNat => Err(DropReason::UnsupportedProtocol),
            },
            IcmpRoute6::FullNatToClient { vip, client } => {
                fullnat6::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (vip.ip, client.ip),
                    (client, vip),
                )
                .map_err(xmit_drop6)?;
                self.forward_toward6(l3, client.ip, false, frame, now, out)
            }
            IcmpRoute6::FullNatToRealServer { local, real } => {
                fullnat6::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (local.ip, real.ip),
                    (real, local),
                )
                .map_err(xmit_drop6)?;
                self.forward_toward6(l3, real.ip, false, frame, now, out)
            }
            IcmpRoute6::Nat64ToRealServer { local, real } => {
                self.nat64_icmp6_to_real_server(l3, local, real, frame, now, out)
            }
        }
    }

    /// Answers the TCP segment at `l3` with a reset from its destination,
    /// routed back to its source.
    fn reset6<O: Output<F>>(
        &mut self,
        l3: usize,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let client = ipv6::Packet::new_unchecked(&frame.data()[l3..]).src_addr();
        let len = rst6::answer_with_reset(&mut frame.data_mut()[l3..]);
        if len == 0 {
            return Err(DropReason::Malformed);
        }
        frame.truncate(l3 + len);
        let hop = self.v6.routes.lookup(client).ok_or(DropReason::NoRoute)?;
        self.stats.resets_sent += 1;
        self.send_to6(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// TUN: wraps the packet at `l3` in an IPv6 header from the
    /// balancer's address toward `real` (RFC 2473) and sends it; a packet
    /// that would not fit the outgoing MTU gets packet too big back to
    /// its sender (`mtu - 40`), never fragmented.
    fn tunnel6<O: Output<F>>(
        &mut self,
        l3: usize,
        real: Ipv6Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop_limit = ipv6::Packet::new_unchecked(&frame.data()[l3..]).hop_limit();
        if hop_limit <= 1 {
            let error = (Message::TimeExceeded, CODE_HOP_LIMIT, 0);
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::TtlExpired);
        }
        let hop = self.v6.routes.lookup(real).ok_or(DropReason::NoRoute)?;
        let mtu = self.ports[usize::from(hop.port)].mtu;
        match tun6::check_fits(&frame.data()[l3..], mtu) {
            Ok(()) => {}
            Err(XmitError::TooBig { mtu }) => {
                let error = (Message::PacketTooBig, 0, u32::from(mtu));
                self.send_icmpv6_error(&frame, l3, error, now, out);
                return Err(DropReason::TooBig);
            }
            Err(e) => return Err(xmit_drop6(e)),
        }
        // The inner packet is forwarded by this hop: its hop limit too.
        ipv6::Packet::new_unchecked(&mut frame.data_mut()[l3..]).decrement_hop_limit();
        let len = {
            let p = ipv6::Packet::new_unchecked(&frame.data()[l3..]);
            ipv6::HEADER_LEN + usize::from(p.payload_len())
        };
        frame.truncate(l3 + len);
        if !frame.prepend(tun6::OVERHEAD) {
            return Err(DropReason::TooBig);
        }
        let data = frame.data_mut();
        // The link-layer header moves to the new front.
        data.copy_within(tun6::OVERHEAD..tun6::OVERHEAD + l3, 0);
        tun6::encapsulate(&mut data[l3..], hop.src, real).map_err(xmit_drop6)?;
        self.stats.forwarded += 1;
        self.send_to6(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
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
    pub(super) fn send_forwarded6<O: Output<F>>(
        &mut self,
        l3: usize,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let Some(bytes) = frame.data().get(l3..) else {
            return Err(DropReason::Truncated);
        };
        let Ok(ip) = ipv6::Packet::new_checked(bytes) else {
            return Err(DropReason::Truncated);
        };
        let dst = ip.dst_addr();
        self.forward_toward6(l3, dst, true, frame, now, out)
    }

    /// [`Worker::send_forwarded6`] toward `toward` (the packet's
    /// destination, or a DR real server holding the VIP), the hop limit
    /// checked and decremented when `hop` (a translated ICMPv6 error had
    /// it decremented by its rewrite).
    pub(super) fn forward_toward6<O: Output<F>>(
        &mut self,
        l3: usize,
        toward: Ipv6Addr,
        hop: bool,
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
        let hop_limit = ip.hop_limit();
        let len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        if hop && hop_limit <= 1 {
            let error = (Message::TimeExceeded, CODE_HOP_LIMIT, 0);
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::TtlExpired);
        }
        let Some(next) = self.v6.routes.lookup(toward) else {
            let error = (Message::DstUnreachable, CODE_NO_ROUTE, 0);
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::NoRoute);
        };
        let mtu = self.ports[usize::from(next.port)].mtu;
        if len > usize::from(mtu) {
            let error = (Message::PacketTooBig, 0, u32::from(mtu));
            self.send_icmpv6_error(&frame, l3, error, now, out);
            return Err(DropReason::TooBig);
        }
        if hop {
            ipv6::Packet::new_unchecked(&mut frame.data_mut()[l3..]).decrement_hop_limit();
        }
        // Link-layer padding, if any, goes (the next link pads its own).
        frame.truncate(l3 + len);
        self.stats.forwarded += 1;
        self.send_to6(usize::from(next.port), next.address, frame, now, out);
        Ok(())
    }
}

/// The packet a fragment (`ip`, its bytes from the IPv6 header on)
/// belongs to, from its fragment header (walked again: only fragments
/// pay for it).
fn frag_key6(ip: &Ipv6Info, bytes: &[u8]) -> Option<FragKey6> {
    let p = ipv6::Packet::new_checked(bytes).ok()?;
    let ident = match p.upper_layer() {
        Ok(u) => u.fragment?.ident,
        Err(ExtError::FragmentNotFirst(f)) => f.ident,
        Err(_) => return None,
    };
    Some(FragKey6 {
        src: ip.src,
        dst: ip.dst,
        ident,
    })
}

/// The tuple of the TCP or UDP packet an ICMPv6 error (the IPv6 packet
/// `ip`, its message at `upper`) quotes, as that packet travelled; `None`
/// when the quote holds no IPv6 header walking to TCP or UDP ports.
fn quoted_flow6(ip: &[u8], upper: usize) -> Option<FlowKey6> {
    let outer = ipv6::Packet::new_checked(ip).ok()?;
    let end = ipv6::HEADER_LEN + outer.payload().len();
    let quote = ip.get(upper + icmpv6::HEADER_LEN..end)?;
    let q = ipv6::Packet::new_checked_header(quote).ok()?;
    let u = q.upper_layer().ok()?;
    if !matches!(u.protocol, next_header::TCP | next_header::UDP) || u.fragment.is_some() {
        return None;
    }
    let ports = quote.get(u.offset..u.offset + 4)?;
    Some(FlowKey6::new(
        q.src_addr(),
        get_u16(ports, 0),
        q.dst_addr(),
        get_u16(ports, 2),
        u.protocol,
    ))
}

/// The drop reason of a rewrite that could not be made.
fn xmit_drop6(e: XmitError) -> DropReason {
    match e {
        XmitError::TtlExpired => DropReason::TtlExpired,
        XmitError::Unsupported => DropReason::UnsupportedProtocol,
        XmitError::TooBig { .. } => DropReason::TooBig,
    }
}
