//! An `icmp` probe: one echo request to the real server's address through
//! a raw ICMP socket, with a random identifier and sequence number; up on
//! the echo reply that carries both from that address, down at the
//! timeout or on an ICMP error (destination unreachable, time exceeded)
//! quoting this very request.
//!
//! Why a raw socket and not a "ping" datagram socket: those need
//! `net.ipv4.ping_group_range` to include rvsd's group, which it does not
//! by default (not even for root), while rvsd has CAP_NET_RAW for DPDK
//! anyway. A raw ICMP socket sees every ICMP message the host receives,
//! so each probe reads and drops the others' (a few system calls each);
//! it is not connected, because a connected one would not see the errors
//! routers send.

use super::check::{finished, is_local, random_u32};
use super::probe::{describe_io, StartError, Step};
use super::sockets::{self, Fd};
use super::CheckResult;
use crate::control::config::HealthCheckConfig;
use crate::wire::checksum;
use crate::wire::icmp::{self, Message};
use crate::wire::ipv4::{self, Protocol};
use rustix::net::SendFlags;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// What follows the echo header: recognisable in a capture.
const PAYLOAD: &[u8; 16] = b"rvs health check";
/// Largest message read (an IP header, an ICMP error and what it quotes).
const MAX_MESSAGE: usize = 1500;

/// One `icmp` probe in flight.
#[derive(Debug)]
pub(super) struct IcmpProbe {
    target: Ipv4Addr,
    socket: Fd,
    ident: u16,
    seq: u16,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
}

/// What one received message says about a probe.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Not about it.
    Other,
    /// Its echo reply.
    Reply,
    /// An ICMP error quoting it: type and code, and who sent it.
    Error(Message, u8, Ipv4Addr),
}

/// The echo request with `ident` and `seq`, checksum filled.
fn echo_request(ident: u16, seq: u16) -> Vec<u8> {
    let mut b = vec![0u8; icmp::HEADER_LEN + PAYLOAD.len()];
    b[icmp::HEADER_LEN..].copy_from_slice(PAYLOAD);
    let mut p = icmp::Packet::new_unchecked(&mut b[..]);
    p.set_msg_type(Message::EchoRequest);
    p.set_code(0);
    p.set_echo_ident(ident);
    p.set_echo_seq(seq);
    p.set_checksum(0);
    let sum = checksum::checksum(&b);
    icmp::Packet::new_unchecked(&mut b[..]).set_checksum(sum);
    b
}

/// Reads a message as a raw socket hands it (IPv4 header first) against
/// the probe of `target` with `ident` and `seq`.
fn verdict(message: &[u8], target: Ipv4Addr, ident: u16, seq: u16) -> Verdict {
    let Ok(ip) = ipv4::Packet::new_checked(message) else {
        return Verdict::Other;
    };
    if ip.protocol() != Protocol::Icmp {
        return Verdict::Other;
    }
    let Ok(m) = icmp::Packet::new_checked(ip.payload()) else {
        return Verdict::Other;
    };
    let ours = |p: &icmp::Packet<&[u8]>| p.echo_ident() == ident && p.echo_seq() == seq;
    match m.msg_type() {
        Message::EchoReply if ip.src_addr() == target && ours(&m) => Verdict::Reply,
        Message::DstUnreachable | Message::TimeExceeded => {
            let Ok(quoted) = ipv4::Packet::new_checked_quoted(m.data()) else {
                return Verdict::Other;
            };
            if quoted.dst_addr() != target || quoted.protocol() != Protocol::Icmp {
                return Verdict::Other;
            }
            match icmp::Packet::new_checked(quoted.payload()) {
                Ok(q) if q.msg_type() == Message::EchoRequest && ours(&q) => {
                    Verdict::Error(m.msg_type(), m.code(), ip.src_addr())
                }
                _ => Verdict::Other,
            }
        }
        _ => Verdict::Other,
    }
}

impl IcmpProbe {
    /// Opens the raw socket and sends the echo request.
    pub(super) fn start(
        target: Ipv4Addr,
        check: &HealthCheckConfig,
        now: Instant,
    ) -> Result<IcmpProbe, StartError> {
        let fail = |e: &io::Error| {
            StartError::Failed(finished(
                now,
                Instant::now(),
                Err(format!(
                    "ICMP echo to {target}: {}",
                    describe_io(e, check.timeout)
                )),
            ))
        };
        let socket = match sockets::icmp_raw(check.source_address) {
            Ok(s) => s,
            // No CAP_NET_RAW is this host's problem, not the server's.
            Err(e) if is_local(&e) || e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(StartError::Local(e))
            }
            Err(e) => return Err(fail(&e)),
        };
        let word = random_u32();
        // The two halves of a random word.
        let (ident, seq) = ((word >> 16) as u16, word as u16);
        let request = echo_request(ident, seq);
        let to = SocketAddrV4::new(target, 0);
        match rustix::net::sendto(&socket.0, &request, SendFlags::empty(), &to) {
            Ok(_) => {}
            Err(e) => {
                let e = io::Error::from(e);
                return Err(if is_local(&e) {
                    StartError::Local(e)
                } else {
                    fail(&e)
                });
            }
        }
        Ok(IcmpProbe {
            target,
            socket,
            ident,
            seq,
            started: now,
            deadline: now + check.timeout,
            timeout: check.timeout,
        })
    }

    /// The socket, for the event loop.
    pub(super) fn source(&mut self) -> &mut Fd {
        &mut self.socket
    }

    /// Its start plus its timeout.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Reads every message waiting; `Pending` until one is about it.
    pub(super) fn advance(&mut self, now: Instant) -> Step {
        let mut buf = [0u8; MAX_MESSAGE];
        loop {
            let n = match rustix::io::read(&self.socket.0, &mut buf[..]) {
                Ok(n) => n,
                Err(rustix::io::Errno::AGAIN) => return Step::Pending,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    let detail = format!(
                        "ICMP echo to {}: {}",
                        self.target,
                        describe_io(&e.into(), self.timeout)
                    );
                    return Step::Done(finished(self.started, now, Err(detail)));
                }
            };
            let took = now.saturating_duration_since(self.started).as_secs_f64() * 1e3;
            let outcome = match verdict(&buf[..n], self.target, self.ident, self.seq) {
                Verdict::Other => continue,
                Verdict::Reply => Ok(format!(
                    "ICMP echo to {} answered in {took:.1} ms",
                    self.target
                )),
                Verdict::Error(Message::DstUnreachable, code, from) => Err(format!(
                    "ICMP echo to {}: destination unreachable (code {code}) from {from}",
                    self.target
                )),
                Verdict::Error(_, code, from) => Err(format!(
                    "ICMP echo to {}: time exceeded (code {code}) from {from}",
                    self.target
                )),
            };
            return Step::Done(finished(self.started, now, outcome));
        }
    }

    /// The failure at the deadline.
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        finished(
            self.started,
            now,
            Err(format!(
                "ICMP echo to {}: no answer within {} ms",
                self.target,
                self.timeout.as_millis()
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::probe_once as probe;
    use super::*;
    use crate::control::config::HealthCheckKind;

    const TARGET: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);

    /// An IPv4 header from `src` to `dst` carrying ICMP `body`.
    fn ip(src: Ipv4Addr, dst: Ipv4Addr, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        b[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(body);
        b
    }

    fn reply(ident: u16, seq: u16) -> Vec<u8> {
        let mut r = echo_request(ident, seq);
        r[0] = 0;
        r
    }

    #[test]
    fn the_request_is_an_echo_with_a_valid_checksum() {
        let r = echo_request(0x1234, 0x5678);
        let p = icmp::Packet::new_checked(&r[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 0x5678));
        assert!(checksum::is_valid(&r));
        assert_eq!(p.data(), PAYLOAD);
    }

    #[test]
    fn the_reply_from_the_target_with_both_numbers_is_the_probe_s() {
        let m = ip(TARGET, Ipv4Addr::new(10, 1, 0, 1), &reply(7, 9));
        assert_eq!(verdict(&m, TARGET, 7, 9), Verdict::Reply);
    }

    #[test]
    fn replies_to_other_probes_or_from_other_hosts_are_not() {
        let other = Ipv4Addr::new(10, 1, 0, 12);
        assert_eq!(
            verdict(&ip(TARGET, other, &reply(7, 8)), TARGET, 7, 9),
            Verdict::Other
        );
        assert_eq!(
            verdict(&ip(TARGET, other, &reply(6, 9)), TARGET, 7, 9),
            Verdict::Other
        );
        assert_eq!(
            verdict(&ip(other, other, &reply(7, 9)), TARGET, 7, 9),
            Verdict::Other
        );
        // Its own request, seen on loopback.
        assert_eq!(
            verdict(&ip(TARGET, other, &echo_request(7, 9)), TARGET, 7, 9),
            Verdict::Other
        );
    }

    #[test]
    fn an_unreachable_quoting_the_request_is_an_error() {
        let router = Ipv4Addr::new(10, 1, 0, 254);
        let me = Ipv4Addr::new(10, 1, 0, 1);
        let quoted = ip(me, TARGET, &echo_request(7, 9));
        let mut body = vec![3, 1, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&quoted[..28]);
        let m = ip(router, me, &body);
        assert_eq!(
            verdict(&m, TARGET, 7, 9),
            Verdict::Error(Message::DstUnreachable, 1, router)
        );
        assert_eq!(verdict(&m, TARGET, 7, 10), Verdict::Other);
    }

    #[test]
    fn no_bytes_make_the_verdict_panic() {
        use proptest::prelude::*;
        proptest!(|(b in proptest::collection::vec(any::<u8>(), 0..120))| {
            let _ = verdict(&b, TARGET, 1, 2);
            let _ = verdict(&ip(TARGET, TARGET, &b), TARGET, 1, 2);
        });
    }

    fn check(timeout_ms: u64) -> HealthCheckConfig {
        HealthCheckConfig {
            kind: HealthCheckKind::Icmp,
            timeout: Duration::from_millis(timeout_ms),
            ..HealthCheckConfig::default()
        }
    }

    /// Needs CAP_NET_RAW (the tests run as root here, as rvsd does).
    fn can_raw() -> bool {
        sockets::icmp_raw(None).is_ok()
    }

    #[test]
    fn the_loopback_answers_an_echo() {
        if !can_raw() {
            eprintln!("skipped: no CAP_NET_RAW");
            return;
        }
        let r = probe(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into(),
            &check(1000),
            "web",
        );
        assert!(r.ok, "{r:?}");
        assert!(
            r.detail.starts_with("ICMP echo to 127.0.0.1 answered in"),
            "{r:?}"
        );
    }

    #[test]
    fn a_silent_address_fails_at_the_timeout() {
        if !can_raw() {
            eprintln!("skipped: no CAP_NET_RAW");
            return;
        }
        // TEST-NET-1 through the default route, or no route at all: no
        // echo reply in either case.
        let r = probe(
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 99), 0).into(),
            &check(150),
            "web",
        );
        assert!(!r.ok, "{r:?}");
    }
}
