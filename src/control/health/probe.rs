//! One probe of a real server as a non-blocking state machine: connect,
//! and for `http` send the request and read the status line, each step
//! taken as far as the socket allows and resumed when it is ready again.
//!
//! Why a state machine and not blocking calls: the checker runs every
//! probe of every server from one event loop (`event_loop`), so a probe
//! must never wait; it says `Pending` and is resumed by the next readiness
//! event of its socket, or ended by `expire` at its deadline (its start
//! plus its timeout). The same machine, driven by a private loop, is the
//! one-shot `check::probe` the tests and tools call.
//!
//! The socket is `mio`'s: a non-blocking connect (`EINPROGRESS`) whose
//! completion is read from `SO_ERROR` and `getpeername` once the socket is
//! writable, as connect(2) documents.

use super::CheckResult;
use crate::control::config::{HealthCheckConfig, HealthCheckKind};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// Longest HTTP status line read.
const MAX_STATUS_LINE: usize = 4096;

/// What a probe is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The TCP handshake.
    Connecting,
    /// Room to write the rest of the HTTP request.
    Sending,
    /// The HTTP status line.
    Reading,
}

/// The HTTP part of an `http` probe.
#[derive(Debug)]
struct Http {
    /// `HTTP GET /path on 10.1.0.11:8080`, the start of every message.
    what: String,
    request: Vec<u8>,
    /// Bytes of `request` written so far.
    sent: usize,
    /// What was read of the answer so far.
    line: Vec<u8>,
    expect: u16,
}

/// Where a probe stands after a step.
#[derive(Debug)]
pub(super) enum Step {
    /// Waiting for its socket: resume on its next event.
    Pending,
    /// Finished, passed or failed.
    Done(CheckResult),
}

/// Why a probe could not start.
#[derive(Debug)]
pub(super) enum StartError {
    /// The server's fault, known at once (e.g. no route): a failed check.
    Failed(CheckResult),
    /// This host's: no file descriptor, buffer or local port left. Not
    /// the server's fault, so not counted against it.
    Local(io::Error),
}

/// One probe in flight (a `tcp` or `http` check; `none` never probes).
#[derive(Debug)]
pub(super) struct Probe {
    endpoint: SocketAddrV4,
    stream: TcpStream,
    phase: Phase,
    http: Option<Http>,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
}

/// Errors that are this host's shortage rather than the server's answer.
pub(super) fn is_local(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// An I/O error as a person reads it: "Connection refused", without std's
/// "(os error 111)" suffix; timeouts say so.
pub(super) fn describe_io(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("no answer within {} ms", timeout.as_millis())
        }
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(at) => s[..at].to_string(),
                None => s,
            }
        }
    }
}

impl Probe {
    /// Starts probing `endpoint` as `check` says (`tcp` or `http`), its
    /// deadline `check.timeout` after `now`: opens a non-blocking
    /// connection, to be registered for readiness through `source`.
    pub(super) fn start(
        endpoint: SocketAddrV4,
        check: &HealthCheckConfig,
        now: Instant,
    ) -> Result<Probe, StartError> {
        let timeout = check.timeout;
        let stream = match super::sockets::tcp_connect(endpoint, check.source_address) {
            Ok(s) => s,
            Err(e) if is_local(&e) => return Err(StartError::Local(e)),
            Err(e) => {
                return Err(StartError::Failed(CheckResult {
                    ok: false,
                    detail: format!("connect to {endpoint} failed: {}", describe_io(&e, timeout)),
                    latency: Instant::now().saturating_duration_since(now),
                    started: now,
                    weight: None,
                }))
            }
        };
        let http = (check.kind == HealthCheckKind::Http).then(|| Http {
            what: format!("HTTP GET {} on {endpoint}", check.http_path),
            request: format!(
                "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: rvs-health\r\nConnection: close\r\n\r\n",
                check.http_path,
                endpoint.ip()
            )
            .into_bytes(),
            sent: 0,
            line: Vec::with_capacity(128),
            expect: check.http_expect_status,
        });
        Ok(Probe {
            endpoint,
            stream,
            phase: Phase::Connecting,
            http,
            started: now,
            deadline: now + timeout,
            timeout,
        })
    }

    /// The socket, to register with (and deregister from) a `Poll`.
    pub(super) fn source(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// When the probe fails if it has not finished: its start plus its
    /// timeout.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    fn result(&self, now: Instant, outcome: Result<String, String>) -> CheckResult {
        let latency = now.saturating_duration_since(self.started);
        let (ok, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        CheckResult {
            ok,
            detail,
            latency,
            started: self.started,
            weight: None,
        }
    }

    /// The failed result of a probe still running at its deadline (`now`),
    /// naming the step it was waiting for.
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        let ms = self.timeout.as_millis();
        let detail = match (&self.phase, &self.http) {
            (Phase::Connecting, _) | (_, None) => {
                format!(
                    "connect to {} failed: no answer within {ms} ms",
                    self.endpoint
                )
            }
            (Phase::Sending, Some(h)) => {
                format!("{}: sending the request: no answer within {ms} ms", h.what)
            }
            (Phase::Reading, Some(h)) => format!("{}: no answer within {ms} ms", h.what),
        };
        self.result(now, Err(detail))
    }

    /// Goes as far as the socket allows now; `now` is when the event that
    /// woke it was seen (the latency's end if it finishes).
    pub(super) fn advance(&mut self, now: Instant) -> Step {
        match self.step(now) {
            None => Step::Pending,
            Some(outcome) => Step::Done(self.result(now, outcome)),
        }
    }

    /// One pass over the phases; `None` while the socket would block.
    fn step(&mut self, now: Instant) -> Option<Result<String, String>> {
        let timeout = self.timeout;
        if self.phase == Phase::Connecting {
            let endpoint = self.endpoint;
            let failed = |e: &io::Error| {
                Some(Err(format!(
                    "connect to {endpoint} failed: {}",
                    describe_io(e, timeout)
                )))
            };
            match self.stream.take_error() {
                Ok(Some(e)) | Err(e) => return failed(&e),
                Ok(None) => {}
            }
            match self.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(e) => return failed(&e),
            }
            let Some(_) = &self.http else {
                return Some(Ok(format!(
                    "connect to {endpoint} succeeded in {:.1} ms",
                    now.saturating_duration_since(self.started).as_secs_f64() * 1e3
                )));
            };
            self.phase = Phase::Sending;
        }
        let http = self.http.as_mut()?;
        if self.phase == Phase::Sending {
            while http.sent < http.request.len() {
                match self.stream.write(&http.request[http.sent..]) {
                    Ok(0) => {
                        return Some(Err(format!(
                            "{}: sending the request: the connection closed",
                            http.what
                        )))
                    }
                    Ok(n) => http.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Some(Err(format!(
                            "{}: sending the request: {}",
                            http.what,
                            describe_io(&e, timeout)
                        )))
                    }
                }
            }
            self.phase = Phase::Reading;
        }
        let mut buf = [0u8; 512];
        loop {
            if http.line.contains(&b'\n') || http.line.len() >= MAX_STATUS_LINE {
                break;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => http.line.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(format!("{}: {}", http.what, describe_io(&e, timeout)))),
            }
        }
        Some(judge_status(
            http,
            now.saturating_duration_since(self.started),
        ))
    }
}

/// The verdict on an HTTP answer's first line.
fn judge_status(http: &Http, took: Duration) -> Result<String, String> {
    let what = &http.what;
    let line = &http.line;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let status_line = String::from_utf8_lossy(&line[..end]);
    let status_line = status_line.trim_end();
    if status_line.is_empty() {
        return Err(format!("{what}: the connection closed without an answer"));
    }
    let mut parts = status_line.split_whitespace();
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") && code.len() == 3 => {
            code.parse::<u16>().ok()
        }
        _ => None,
    };
    let Some(status) = status else {
        let shown: String = status_line.chars().take(60).collect();
        return Err(format!("{what}: not an HTTP status line: {shown:?}"));
    };
    if status == http.expect {
        Ok(format!(
            "{what} answered {status} in {:.1} ms",
            took.as_secs_f64() * 1e3
        ))
    } else {
        Err(format!(
            "{what} answered {status}, expected {}",
            http.expect
        ))
    }
}
