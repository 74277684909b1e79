//! A `dns` probe: one query (`dns_name`, `dns_type`, a random id, RD set)
//! over UDP to the real server's address and port, and the verdict on the
//! answer: its id and question must be the query's and QR set (anything
//! else is ignored, as a stub resolver ignores stray datagrams), its RCODE
//! `dns_expect_rcode`, and for NOERROR with `dns_expect_answer` at least
//! one answer record. An ICMP port unreachable is a failure at once.
//! The messages themselves are `dns_wire`'s.

use super::check::{finished, random_u32};
use super::datagram::{Datagram, Read};
use super::dns_wire::{self, Labels};
use super::probe::{StartError, Step};
use super::CheckResult;
use crate::control::config::{DnsRcode, HealthCheckConfig};
use mio::net::UdpSocket;
use std::net::SocketAddr;
use std::time::Instant;

/// Largest answer read: a DNS datagram without EDNS is at most 512
/// bytes; more is read and cut.
const MAX_REPLY: usize = 4096;

/// One `dns` probe in flight.
#[derive(Debug)]
pub(super) struct DnsProbe {
    /// The query and its answers; `DNS A svc.test on 10.1.0.11:53` starts
    /// every message.
    datagram: Datagram,
    id: u16,
    labels: Labels,
    qtype: u16,
    expect: DnsRcode,
    expect_answer: bool,
}

impl DnsProbe {
    /// Opens the socket and sends the query.
    pub(super) fn start(
        endpoint: SocketAddr,
        check: &HealthCheckConfig,
        now: Instant,
    ) -> Result<DnsProbe, StartError> {
        let what = format!("DNS {} {} on {endpoint}", check.dns_type, check.dns_name);
        let fail = |detail: String| StartError::Failed(finished(now, Instant::now(), Err(detail)));
        let qtype = check.dns_type.code();
        // The low 16 bits of a random word.
        let id = random_u32() as u16;
        let (Some(query), Some(labels)) = (
            dns_wire::query(id, &check.dns_name, qtype),
            dns_wire::labels(&check.dns_name),
        ) else {
            // Validation refuses such names; a check built in code may not.
            return Err(fail(format!("{what}: not a valid name")));
        };
        let datagram = Datagram::open(what, endpoint, query, check, now)?;
        Ok(DnsProbe {
            datagram,
            id,
            labels,
            qtype,
            expect: check.dns_expect_rcode,
            expect_answer: check.dns_expect_answer,
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

    /// Reads the answers that came; `Pending` until one is this query's.
    pub(super) fn advance(&mut self, now: Instant) -> Step {
        let mut buf = [0u8; MAX_REPLY];
        loop {
            let outcome = match self.datagram.read(&mut buf) {
                Read::Reply(reply) => match self.judge(reply, now) {
                    Some(outcome) => outcome,
                    None => continue,
                },
                Read::Pending => return Step::Pending,
                Read::Failed(detail) => Err(detail),
            };
            return Step::Done(self.datagram.finish(now, outcome));
        }
    }

    /// The verdict on one datagram; `None` when it is not an answer to
    /// this query (malformed, another id or question, not a response).
    fn judge(&self, reply: &[u8], now: Instant) -> Option<Result<String, String>> {
        let r = dns_wire::parse(reply).ok()?;
        if r.id != self.id || !r.response || !r.asks(&self.labels, self.qtype) {
            return None;
        }
        let got = DnsRcode(r.rcode);
        let took = now
            .saturating_duration_since(self.datagram.started())
            .as_secs_f64()
            * 1e3;
        Some(if got != self.expect {
            Err(format!(
                "{} answered {got}, expected {}",
                self.datagram.what(),
                self.expect
            ))
        } else if got == DnsRcode::NOERROR && self.expect_answer && r.answers == 0 {
            Err(format!(
                "{} answered NOERROR with no record{}",
                self.datagram.what(),
                if r.truncated { " (truncated)" } else { "" }
            ))
        } else {
            Ok(format!(
                "{} answered {got} with {} record{} in {took:.1} ms",
                self.datagram.what(),
                r.answers,
                if r.answers == 1 { "" } else { "s" }
            ))
        })
    }

    /// The failure at the deadline.
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        let d = &self.datagram;
        d.finish(
            now,
            Err(format!(
                "{}: no answer within {} ms",
                d.what(),
                d.timeout().as_millis()
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::probe_once as probe;
    use super::super::test_servers::{udp_bound as bound, udp_responder as responder};
    use super::*;
    use crate::control::config::{DnsType, HealthCheckKind};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn check(name: &str, rcode: DnsRcode) -> HealthCheckConfig {
        HealthCheckConfig {
            kind: HealthCheckKind::Dns,
            timeout: Duration::from_millis(500),
            dns_name: name.into(),
            dns_type: DnsType::A,
            dns_expect_rcode: rcode,
            ..HealthCheckConfig::default()
        }
    }

    /// The query turned into a response with `rcode` and `records` A
    /// records.
    fn respond(q: &[u8], rcode: u8, records: u16) -> Vec<u8> {
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&records.to_be_bytes());
        for _ in 0..records {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
        }
        r
    }

    /// Knows `svc.test` only.
    fn zone(q: &[u8]) -> Vec<Vec<u8>> {
        let known = dns_wire::query(0, "svc.test", 1).unwrap();
        if q[12..] == known[12..] {
            vec![respond(q, 0, 1)]
        } else {
            vec![respond(q, 3, 0)]
        }
    }

    #[test]
    fn a_known_name_passes_with_its_record() {
        let (addr, stop) = responder(zone);
        let r = probe(addr, &check("svc.test", DnsRcode::NOERROR), "dns");
        stop.store(true, Ordering::Relaxed);
        assert!(r.ok, "{r:?}");
        assert!(
            r.detail.starts_with(&format!(
                "DNS A svc.test on {addr} answered NOERROR with 1 record"
            )),
            "{r:?}"
        );
    }

    #[test]
    fn nxdomain_fails_unless_expected() {
        let (addr, stop) = responder(zone);
        let r = probe(addr, &check("nope.test", DnsRcode::NOERROR), "dns");
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            format!("DNS A nope.test on {addr} answered NXDOMAIN, expected NOERROR")
        );
        let r = probe(
            addr,
            &check("nope.test", "NXDOMAIN".parse().unwrap()),
            "dns",
        );
        stop.store(true, Ordering::Relaxed);
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn noerror_without_a_record_fails_when_an_answer_is_expected() {
        let (addr, stop) = responder(|q| vec![respond(q, 0, 0)]);
        let r = probe(addr, &check("svc.test", DnsRcode::NOERROR), "dns");
        assert!(!r.ok);
        assert!(
            r.detail.ends_with("answered NOERROR with no record"),
            "{r:?}"
        );
        let mut c = check("svc.test", DnsRcode::NOERROR);
        c.dns_expect_answer = false;
        let r = probe(addr, &c, "dns");
        stop.store(true, Ordering::Relaxed);
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn stray_datagrams_before_the_answer_are_ignored() {
        let (addr, stop) = responder(|q| {
            let mut other_id = respond(q, 2, 0);
            other_id[0] ^= 0xff;
            let mut not_a_response = q.to_vec();
            not_a_response[3] = 0;
            vec![
                b"garbage".to_vec(),
                other_id,
                not_a_response,
                respond(q, 0, 1),
            ]
        });
        let r = probe(addr, &check("svc.test", DnsRcode::NOERROR), "dns");
        stop.store(true, Ordering::Relaxed);
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn a_silent_server_fails_at_the_timeout() {
        let (addr, stop) = responder(|_| Vec::new());
        let r = probe(addr, &check("svc.test", DnsRcode::NOERROR), "dns");
        stop.store(true, Ordering::Relaxed);
        assert!(!r.ok);
        assert!(r.detail.ends_with("no answer within 500 ms"), "{r:?}");
    }

    #[test]
    fn a_closed_port_fails_as_port_unreachable() {
        let addr = bound().1;
        let r = probe(addr, &check("svc.test", DnsRcode::NOERROR), "dns");
        assert!(!r.ok);
        assert!(r.detail.ends_with("port unreachable (ICMP)"), "{r:?}");
    }

    #[test]
    fn each_probe_uses_a_fresh_random_id() {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let (addr, stop) = responder(move |q| {
            let _ = tx.lock().unwrap().send(u16::from_be_bytes([q[0], q[1]]));
            zone(q)
        });
        let ids: Vec<u16> = (0..4)
            .map(|_| {
                probe(addr, &check("svc.test", DnsRcode::NOERROR), "dns");
                rx.recv().unwrap()
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert!(unique.len() >= 3, "{ids:?}");
    }
}
