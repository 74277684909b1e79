//! A `udp` probe: one datagram (`udp_payload`) on a connected socket, then
//! the verdict of what comes back within the timeout.
//!
//! UDP has no handshake, so silence proves little: as keepalived's
//! UDP_CHECK without `require_reply`, a probe without `udp_expect` passes
//! unless an ICMP port unreachable comes back (the kernel reports it on
//! the connected socket as `ECONNREFUSED`), and a reply of any kind ends
//! it early; with `udp_expect` it passes only on a reply containing those
//! bytes. An ICMP error is always a failure.

use super::check::{finished, is_local};
use super::probe::{describe_io, StartError, Step};
use super::sockets;
use super::CheckResult;
use crate::control::config::HealthCheckConfig;
use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// Largest reply read (longer ones are cut: the pattern must be in the
/// first bytes).
const MAX_REPLY: usize = 2048;

/// One `udp` probe in flight.
#[derive(Debug)]
pub(super) struct UdpProbe {
    endpoint: SocketAddrV4,
    socket: UdpSocket,
    payload: Vec<u8>,
    sent: bool,
    expect: Option<Vec<u8>>,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
}

impl UdpProbe {
    /// Opens the socket and sends the payload (or waits to: a full send
    /// buffer is retried when the socket is writable).
    pub(super) fn start(
        endpoint: SocketAddrV4,
        check: &HealthCheckConfig,
        now: Instant,
    ) -> Result<UdpProbe, StartError> {
        let socket = match sockets::udp_connect(endpoint, check.source_address) {
            Ok(s) => s,
            Err(e) if is_local(&e) => return Err(StartError::Local(e)),
            Err(e) => {
                return Err(StartError::Failed(finished(
                    now,
                    Instant::now(),
                    Err(format!(
                        "UDP to {endpoint}: {}",
                        describe_io(&e, check.timeout)
                    )),
                )))
            }
        };
        let mut p = UdpProbe {
            endpoint,
            socket,
            payload: check.udp_payload.clone(),
            sent: false,
            expect: check.udp_expect.clone(),
            started: now,
            deadline: now + check.timeout,
            timeout: check.timeout,
        };
        if let Some(Err(detail)) = p.send() {
            return Err(StartError::Failed(finished(
                now,
                Instant::now(),
                Err(detail),
            )));
        }
        Ok(p)
    }

    /// The socket, for the event loop.
    pub(super) fn source(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Its start plus its timeout.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Sends the payload if not yet sent: `None` when sent or to be
    /// retried, `Some(Err)` on a failure.
    fn send(&mut self) -> Option<Result<String, String>> {
        if self.sent {
            return None;
        }
        match self.socket.send(&self.payload) {
            Ok(_) => {
                self.sent = true;
                None
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(self.failure(&e))),
        }
    }

    fn failure(&self, e: &io::Error) -> String {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            format!("UDP to {}: port unreachable (ICMP)", self.endpoint)
        } else {
            format!("UDP to {}: {}", self.endpoint, describe_io(e, self.timeout))
        }
    }

    /// Reads what came back; `Pending` until a verdict.
    pub(super) fn advance(&mut self, now: Instant) -> Step {
        if let Some(outcome) = self.send() {
            return Step::Done(finished(self.started, now, outcome));
        }
        let mut buf = [0u8; MAX_REPLY];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let reply = &buf[..n];
                    let took = now.saturating_duration_since(self.started).as_secs_f64() * 1e3;
                    let outcome = match &self.expect {
                        None => Ok(format!(
                            "UDP to {} answered {n} bytes in {took:.1} ms",
                            self.endpoint
                        )),
                        Some(want) if contains(reply, want) => Ok(format!(
                            "UDP to {} answered with \"{}\" in {took:.1} ms",
                            self.endpoint,
                            HealthCheckConfig::show_bytes(want)
                        )),
                        Some(want) => Err(format!(
                            "UDP to {}: the reply ({n} bytes, \"{}\") does not contain \"{}\"",
                            self.endpoint,
                            HealthCheckConfig::show_bytes(&reply[..n.min(40)]),
                            HealthCheckConfig::show_bytes(want)
                        )),
                    };
                    return Step::Done(finished(self.started, now, outcome));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Done(finished(self.started, now, Err(self.failure(&e)))),
            }
        }
    }

    /// The verdict at the deadline: silence passes without `udp_expect`
    /// (no port unreachable came back), fails with it.
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        let ms = self.timeout.as_millis();
        let outcome = match (&self.expect, self.sent) {
            (_, false) => Err(format!(
                "UDP to {}: could not send within {ms} ms",
                self.endpoint
            )),
            (None, true) => Ok(format!(
                "UDP to {}: no port unreachable within {ms} ms",
                self.endpoint
            )),
            (Some(_), true) => Err(format!(
                "UDP to {}: no answer within {ms} ms",
                self.endpoint
            )),
        };
        finished(self.started, now, outcome)
    }
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::super::check::probe_once as probe;
    use super::*;
    use crate::control::config::HealthCheckKind;
    use std::net::{Ipv4Addr, UdpSocket as StdUdp};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

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
    /// followed by the datagram, until the flag is dropped.
    fn echo(prefix: &'static [u8]) -> (SocketAddrV4, Arc<AtomicBool>) {
        let s = StdUdp::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let mut out = prefix.to_vec();
                    out.extend_from_slice(&buf[..n]);
                    let _ = s.send_to(&out, from);
                }
            }
        });
        (addr, stop)
    }

    fn closed_udp_port() -> SocketAddrV4 {
        let s = StdUdp::bind("127.0.0.1:0").unwrap();
        match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        }
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
        let s = StdUdp::bind("127.0.0.1:0").unwrap();
        let addr = match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
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
        let s = StdUdp::bind("127.0.0.1:0").unwrap();
        let addr = match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
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
        let s = StdUdp::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let addr = match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
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
