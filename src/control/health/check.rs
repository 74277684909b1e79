//! Every kind of probe behind one interface, for the event loop: a check
//! starts, is advanced on its event source's readiness, and is ended by
//! `expire` at its deadline, whatever it does underneath (a TCP
//! connection and HTTP request, a UDP datagram, a DNS query, an ICMP
//! echo, a child process).
//!
//! Why an enum and not a trait object: the kinds are few and known, each
//! probe lives in the loop's table by value, and a `match` keeps every
//! kind's code in its own module (`probe` for TCP and HTTP, `udp`, `dns`,
//! `icmp`, `script`) with nothing shared but this dispatch.

use super::dns::DnsProbe;
use super::icmp::IcmpProbe;
use super::probe::{self, describe_io, Probe, StartError, Step};
use super::script::ScriptProbe;
use super::udp::UdpProbe;
use super::CheckResult;
use crate::control::config::{HealthCheckConfig, HealthCheckKind};
use mio::event::Source;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(super) use probe::is_local;

/// One probe in flight, of any kind (`none` never probes).
#[derive(Debug)]
pub(super) enum Check {
    /// `tcp`, `http`, `tls` and `https` over a TCP stream (boxed: a TLS
    /// session makes it far larger than the other kinds).
    Stream(Box<Probe>),
    /// `udp`.
    Udp(UdpProbe),
    /// `dns`.
    Dns(DnsProbe),
    /// `icmp`.
    Icmp(IcmpProbe),
    /// `script`.
    Script(ScriptProbe),
}

impl Check {
    /// Starts probing `endpoint` (a real server of virtual server `name`)
    /// as `check` says, its deadline `check.timeout` after `now`.
    pub(super) fn start(
        endpoint: SocketAddr,
        check: &HealthCheckConfig,
        name: &str,
        now: Instant,
    ) -> Result<Check, StartError> {
        Ok(match check.kind {
            HealthCheckKind::Udp => Check::Udp(UdpProbe::start(endpoint, check, now)?),
            HealthCheckKind::Dns => Check::Dns(DnsProbe::start(endpoint, check, now)?),
            HealthCheckKind::Icmp => match endpoint {
                SocketAddr::V4(a) => Check::Icmp(IcmpProbe::start(*a.ip(), check, now)?),
                // ICMPv6 echo needs its own socket and parser: not yet.
                // The checker's own problem: the server is not failed.
                SocketAddr::V6(_) => {
                    return Err(StartError::Local(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "icmp checks of IPv6 real servers are not supported yet",
                    )))
                }
            },
            HealthCheckKind::Script => {
                Check::Script(ScriptProbe::start(endpoint, check, name, now)?)
            }
            _ => Check::Stream(Box::new(Probe::start(endpoint, check, now)?)),
        })
    }

    /// What to register for readiness (and deregister).
    pub(super) fn source(&mut self) -> &mut dyn Source {
        match self {
            Check::Stream(p) => p.source(),
            Check::Udp(p) => p.source(),
            Check::Dns(p) => p.source(),
            Check::Icmp(p) => p.source(),
            Check::Script(p) => p.source(),
        }
    }

    /// When it fails if it has not finished.
    pub(super) fn deadline(&self) -> Instant {
        match self {
            Check::Stream(p) => p.deadline(),
            Check::Udp(p) => p.deadline(),
            Check::Dns(p) => p.deadline(),
            Check::Icmp(p) => p.deadline(),
            Check::Script(p) => p.deadline(),
        }
    }

    /// Goes as far as its source allows now.
    pub(super) fn advance(&mut self, now: Instant) -> Step {
        match self {
            Check::Stream(p) => p.advance(now),
            Check::Udp(p) => p.advance(now),
            Check::Dns(p) => p.advance(now),
            Check::Icmp(p) => p.advance(now),
            Check::Script(p) => p.advance(now),
        }
    }

    /// Its result at the deadline (`now`): a failure naming what it
    /// waited for, except a `udp` check without `udp_expect`, for which
    /// silence is a pass.
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        match self {
            Check::Stream(p) => p.expire(now),
            Check::Udp(p) => p.expire(now),
            Check::Dns(p) => p.expire(now),
            Check::Icmp(p) => p.expire(now),
            Check::Script(p) => p.expire(now),
        }
    }
}

/// A finished probe's result: started at `started`, ended at `now`.
pub(super) fn finished(
    started: Instant,
    now: Instant,
    outcome: Result<String, String>,
) -> CheckResult {
    let (ok, detail) = match outcome {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    CheckResult {
        ok,
        detail,
        latency: now.saturating_duration_since(started),
        started,
        weight: None,
        cert_not_after: None,
    }
}

/// A random word (DNS ids, ICMP identifiers): the kernel's, or the clock's
/// nanoseconds if it has none to give.
pub(super) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    match rustix::rand::getrandom(&mut b[..], rustix::rand::GetRandomFlags::empty()) {
        Ok(4) => u32::from_ne_bytes(b),
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ std::process::id()),
    }
}

/// Probes `endpoint` once as `check` says, within `check.timeout`, and
/// waits for the result (the checker itself never waits: it drives the
/// same probe from its event loop). A `none` check passes without
/// touching the network.
pub fn probe(endpoint: SocketAddr, check: &HealthCheckConfig) -> CheckResult {
    probe_once(endpoint, check, "")
}

/// [`probe`] for a real server of virtual server `name` (what a `script`
/// check is told).
pub(super) fn probe_once(
    endpoint: SocketAddr,
    check: &HealthCheckConfig,
    name: &str,
) -> CheckResult {
    let start = Instant::now();
    if check.kind == HealthCheckKind::None {
        return CheckResult {
            ok: true,
            detail: "no check (type none)".to_string(),
            latency: Duration::ZERO,
            started: start,
            weight: None,
            cert_not_after: None,
        };
    }
    let local = |e: io::Error| CheckResult {
        ok: false,
        detail: format!(
            "cannot probe {endpoint}: {}",
            describe_io(&e, check.timeout)
        ),
        latency: start.elapsed(),
        started: start,
        weight: None,
        cert_not_after: None,
    };
    let mut p = match Check::start(endpoint, check, name, start) {
        Ok(p) => p,
        Err(StartError::Failed(r)) => return r,
        Err(StartError::Local(e)) => return local(e),
    };
    let mut poll = match Poll::new() {
        Ok(poll) => poll,
        Err(e) => return local(e),
    };
    if let Err(e) = poll.registry().register(
        p.source(),
        Token(0),
        Interest::READABLE | Interest::WRITABLE,
    ) {
        return local(e);
    }
    let mut events = Events::with_capacity(4);
    loop {
        let now = Instant::now();
        if now >= p.deadline() {
            return match p.advance(now) {
                Step::Done(r) => r,
                Step::Pending => p.expire(now),
            };
        }
        match poll.poll(&mut events, Some(p.deadline() - now)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return local(e),
        }
        if !events.is_empty() {
            if let Step::Done(r) = p.advance(Instant::now()) {
                return r;
            }
        }
    }
}
