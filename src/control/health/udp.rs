//! A `udp` probe: one datagram (`udp_payload`) on a connected socket, then
//! the verdict of what comes back within the timeout.
//!
//! UDP has no handshake, so silence proves little: as keepalived's
//! UDP_CHECK without `require_reply`, a probe without `udp_expect` passes
//! unless an ICMP port unreachable comes back (the kernel reports it on
//! the connected socket as `ECONNREFUSED`), and a reply of any kind ends
//! it early; with `udp_expect` it passes only on a reply containing those
//! bytes. An ICMP error is always a failure.

use super::datagram::{Datagram, Read};
use super::probe::{StartError, Step};
use super::CheckResult;
use crate::control::config::HealthCheckConfig;
use mio::net::UdpSocket;
use std::net::SocketAddr;
use std::time::Instant;

/// Largest reply read (longer ones are cut: the pattern must be in the
/// first bytes).
const MAX_REPLY: usize = 2048;

/// One `udp` probe in flight.
#[derive(Debug)]
pub(super) struct UdpProbe {
    datagram: Datagram,
    expect: Option<Vec<u8>>,
}

impl UdpProbe {
    /// Opens the socket and sends the payload (or waits to: a full send
    /// buffer is retried when the socket is writable).
    pub(super) fn start(
        endpoint: SocketAddr,
        check: &HealthCheckConfig,
        now: Instant,
    ) -> Result<UdpProbe, StartError> {
        let datagram = Datagram::open(
            format!("UDP to {endpoint}"),
            endpoint,
            check.udp_payload.clone(),
            check,
            now,
        )?;
        Ok(UdpProbe {
            datagram,
            expect: check.udp_expect.clone(),
        })
    }

    /// The socket, for the event loop.
    pub(super) fn source(&mut self) -> &mut UdpSocket {
        self.datagram.source()
    }

    /// Its start plus its timeout.
    pub(super) fn deadline(&self) -> Instant {
        self.datagram.deadline()
    }

    /// Reads what came back; `Pending` until a verdict.
    pub(super) fn advance(&mut self, now: Instant) -> Step {
        let mut buf = [0u8; MAX_REPLY];
        let outcome = match self.datagram.read(&mut buf) {
            Read::Reply(reply) => self.judge(reply, now),
            Read::Pending => return Step::Pending,
            Read::Failed(detail) => Err(detail),
        };
        Step::Done(self.datagram.finish(now, outcome))
    }

    /// The verdict on a reply.
    fn judge(&self, reply: &[u8], now: Instant) -> Result<String, String> {
        let what = self.datagram.what();
        let n = reply.len();
        let took = now
            .saturating_duration_since(self.datagram.started())
            .as_secs_f64()
            * 1e3;
        match &self.expect {
            None => Ok(format!("{what} answered {n} bytes in {took:.1} ms")),
            Some(want) if contains(reply, want) => Ok(format!(
                "{what} answered with \"{}\" in {took:.1} ms",
                HealthCheckConfig::show_bytes(want)
            )),
            Some(want) => Err(format!(
                "{what}: the reply ({n} bytes, \"{}\") does not contain \"{}\"",
                HealthCheckConfig::show_bytes(&reply[..n.min(40)]),
                HealthCheckConfig::show_bytes(want)
            )),
        }
    }

    /// The verdict at the deadline: silence passes without `udp_expect`
    /// (no port unreachable came back), fails with it.
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        let ms = self.datagram.timeout().as_millis();
        let what = self.datagram.what();
        let outcome = match (&self.expect, self.datagram.sent()) {
            (_, false) => Err(format!("{what}: could not send within {ms} ms")),
            (None, true) => Ok(format!("{what}: no port unreachable within {ms} ms")),
            (Some(_), true) => Err(format!("{what}: no answer within {ms} ms")),
        };
        self.datagram.finish(now, outcome)
    }
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::super::check::probe_once as probe;
    use super::super::test_servers::{udp_bound as bound, udp_responder as responder};
    use super::*;
    use crate::control::config::HealthCheckKind;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn check(expect: Option<&str>, timeout_ms: u64) -> HealthCheckConfig {
        HealthCheckConfig {
            kind: HealthCheckKind::Udp,
            timeout: Duration::from_millis(timeout_ms),
            udp_payload: b"ping\x00".to_vec(),
            udp_expect: expect.map(|e| e.as_bytes().to_vec()),
            ..HealthCheckConfig::default()
        }
    }

    /// A UDP server on 127.0.0.1 answering each datagram with `prefix`
    /// followed by the datagram, until the flag is set.
    fn echo(prefix: &'static [u8]) -> (SocketAddr, Arc<AtomicBool>) {
        responder(move |d| vec![[prefix, d].concat()])
    }

    /// A port nothing listens on (the kernel answers port unreachable).
    fn closed_udp_port() -> SocketAddr {
        bound().1
    }

    #[test]
    fn a_reply_containing_the_expected_bytes_passes() {
        let (addr, stop) = echo(b"pong ");
        let r = probe(addr, &check(Some("pong"), 1000), "web");
        stop.store(true, Ordering::Relaxed);
        assert!(r.ok, "{r:?}");
        assert!(r.detail.contains("answered with \"pong\""), "{r:?}");
    }

    #[test]
    fn a_reply_without_the_expected_bytes_fails() {
        let (addr, stop) = echo(b"nope ");
        let r = probe(addr, &check(Some("pong"), 1000), "web");
        stop.store(true, Ordering::Relaxed);
        assert!(!r.ok);
        assert!(r.detail.contains("does not contain \"pong\""), "{r:?}");
        assert!(r.detail.contains("nope ping\\x00"), "{r:?}");
    }

    #[test]
    fn a_closed_port_fails_as_port_unreachable() {
        let addr = closed_udp_port();
        let r = probe(addr, &check(None, 1000), "web");
        assert!(!r.ok);
        assert_eq!(r.detail, format!("UDP to {addr}: port unreachable (ICMP)"));
        assert!(r.latency < Duration::from_millis(500), "{r:?}");
    }

    #[test]
    fn a_closed_port_fails_also_when_a_reply_is_expected() {
        let addr = closed_udp_port();
        let r = probe(addr, &check(Some("pong"), 1000), "web");
        assert!(!r.ok);
        assert!(r.detail.ends_with("port unreachable (ICMP)"), "{r:?}");
    }

    #[test]
    fn silence_passes_without_an_expected_reply_at_the_timeout() {
        // A bound socket that never answers: no port unreachable.
        let (_s, addr) = bound();
        let r = probe(addr, &check(None, 150), "web");
        assert!(r.ok, "{r:?}");
        assert!(
            r.detail.contains("no port unreachable within 150 ms"),
            "{r:?}"
        );
        assert!(r.latency >= Duration::from_millis(150), "{r:?}");
    }

    #[test]
    fn silence_fails_when_a_reply_is_expected() {
        let (_s, addr) = bound();
        let r = probe(addr, &check(Some("pong"), 150), "web");
        assert!(!r.ok);
        assert!(r.detail.ends_with("no answer within 150 ms"), "{r:?}");
    }

    #[test]
    fn any_reply_ends_a_probe_without_expectation_early() {
        let (addr, stop) = echo(b"");
        let r = probe(addr, &check(None, 2000), "web");
        stop.store(true, Ordering::Relaxed);
        assert!(r.ok, "{r:?}");
        assert!(r.detail.contains("answered 5 bytes"), "{r:?}");
        assert!(r.latency < Duration::from_millis(1000), "{r:?}");
    }

    #[test]
    fn probes_leave_from_the_source_address() {
        let (s, addr) = bound();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut c = check(None, 100);
        c.source_address = Some(Ipv4Addr::new(127, 0, 0, 2));
        let _ = probe(addr, &c, "web");
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping\x00");
        assert_eq!(from.ip(), std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn contains_finds_a_pattern_anywhere() {
        assert!(contains(b"abcdef", b"cde"));
        assert!(!contains(b"abc", b"abcd"));
        assert!(contains(b"abc", b""));
    }
}
