//! One probe of a real server as a non-blocking state machine: connect;
//! for `tls` and `https` the TLS handshake (`tls`); for `http` and `https`
//! send the request, read the status line and, with `http_expect_body`,
//! the body up to the match; each step taken as far as the socket allows
//! and resumed when it is ready again.
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
//!
//! Memory is bounded per probe: an answer's head is kept up to
//! `MAX_HEAD` bytes, and its body is never kept: it is searched as it
//! arrives, with only the last `http_expect_body.len() - 1` bytes carried
//! between reads, up to `HealthCheckConfig::MAX_BODY_SCAN` bytes.

use super::tls::{self, Session};
use super::CheckResult;
use crate::control::config::{HealthCheckConfig, HealthCheckKind};
use memchr::memmem;
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Longest HTTP status line read.
const MAX_STATUS_LINE: usize = 4096;
/// Longest answer head (status line and headers) read when the body is
/// wanted.
const MAX_HEAD: usize = 16 * 1024;

/// What a probe is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The TCP handshake.
    Connecting,
    /// The TLS handshake (`tls`, `https`).
    Handshaking,
    /// Room to write the rest of the HTTP request.
    Sending,
    /// The HTTP answer: its status line, and with `http_expect_body`
    /// its head and body up to the match.
    Reading,
}

/// The HTTP part of an `http` or `https` probe.
#[derive(Debug)]
struct Http {
    /// `HTTP GET /path on 10.1.0.11:8080`, the start of every message.
    what: String,
    request: Vec<u8>,
    /// Bytes of `request` written so far.
    sent: usize,
    /// What was read of the answer's head so far (the status line, and
    /// the headers when the body is wanted).
    line: Vec<u8>,
    expect: u16,
    /// `http_expect_body`.
    expect_body: Option<Vec<u8>>,
    /// The status, once read and as expected, while the body is searched.
    status: Option<u16>,
    /// The body's search, once the head has ended.
    body: Option<BodyScan>,
}

/// The search of an answer's body for `http_expect_body`, as it arrives.
#[derive(Debug, Default)]
struct BodyScan {
    /// The last bytes searched, fewer than the pattern: a match may begin
    /// in one read and end in the next.
    tail: Vec<u8>,
    /// Body bytes searched so far (at most `MAX_BODY_SCAN`).
    seen: usize,
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

/// One probe in flight (a `tcp`, `http`, `tls` or `https` check; `none`
/// never probes).
#[derive(Debug)]
pub(super) struct Probe {
    endpoint: SocketAddr,
    stream: TcpStream,
    phase: Phase,
    http: Option<Http>,
    /// The TLS session of a `tls` or `https` probe.
    tls: Option<Session>,
    /// `tls_expiry_warn_days`.
    warn_days: u32,
    /// The server certificate's notAfter (seconds since the Unix epoch),
    /// once the handshake has read it.
    not_after: Option<i64>,
    /// Said after a passed check's detail: the certificate's expiry, when
    /// it is within the warning days.
    note: Option<String>,
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
    /// Starts probing `endpoint` as `check` says (`tcp`, `http`, `tls` or
    /// `https`), its deadline `check.timeout` after `now`: opens a
    /// non-blocking connection, to be registered for readiness through
    /// `source`.
    pub(super) fn start(
        endpoint: SocketAddr,
        check: &HealthCheckConfig,
        now: Instant,
    ) -> Result<Probe, StartError> {
        let timeout = check.timeout;
        let session = match check.kind.is_tls() {
            false => None,
            true => match Session::new(&check.tls, endpoint) {
                Ok(s) => Some(s),
                Err(e) => {
                    return Err(StartError::Failed(CheckResult {
                        ok: false,
                        detail: format!("TLS handshake with {endpoint} failed: {e}"),
                        latency: Instant::now().saturating_duration_since(now),
                        started: now,
                        cert_not_after: None,
                        weight: None,
                    }))
                }
            },
        };
        let stream = match super::sockets::tcp_connect(endpoint, check.source_address) {
            Ok(s) => s,
            Err(e) if is_local(&e) => return Err(StartError::Local(e)),
            Err(e) => {
                return Err(StartError::Failed(CheckResult {
                    ok: false,
                    detail: format!("connect to {endpoint} failed: {}", describe_io(&e, timeout)),
                    latency: Instant::now().saturating_duration_since(now),
                    started: now,
                    cert_not_after: None,
                    weight: None,
                }))
            }
        };
        let http = check.kind.is_http().then(|| Http::new(endpoint, check));
        Ok(Probe {
            endpoint,
            stream,
            phase: Phase::Connecting,
            http,
            tls: session,
            warn_days: check.tls.expiry_warn_days,
            not_after: None,
            note: None,
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
            Ok(d) => match &self.note {
                Some(note) => (true, format!("{d}; {note}")),
                None => (true, d),
            },
            Err(d) => (false, d),
        };
        CheckResult {
            ok,
            detail,
            latency,
            started: self.started,
            cert_not_after: self.not_after.map(tls::system_time),
            weight: None,
        }
    }

    /// The failed result of a probe still running at its deadline (`now`),
    /// naming the step it was waiting for.
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        let ms = self.timeout.as_millis();
        let detail = match (&self.phase, &self.http) {
            (Phase::Connecting, _) => {
                format!(
                    "connect to {} failed: no answer within {ms} ms",
                    self.endpoint
                )
            }
            (Phase::Handshaking, _) => format!(
                "TLS handshake with {} failed: no answer within {ms} ms",
                self.endpoint
            ),
            (_, None) => format!("{}: no answer within {ms} ms", self.endpoint),
            (Phase::Sending, Some(h)) => {
                format!("{}: sending the request: no answer within {ms} ms", h.what)
            }
            (Phase::Reading, Some(h)) => match (h.status, &h.expect_body) {
                (Some(status), Some(body)) => format!(
                    "{} answered {status}, but {:?} was not in its body within {ms} ms",
                    h.what,
                    String::from_utf8_lossy(body)
                ),
                _ => format!("{}: no answer within {ms} ms", h.what),
            },
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
            if self.tls.is_some() {
                self.phase = Phase::Handshaking;
            } else if self.http.is_none() {
                return Some(Ok(format!(
                    "connect to {endpoint} succeeded in {:.1} ms",
                    now.saturating_duration_since(self.started).as_secs_f64() * 1e3
                )));
            } else {
                self.phase = Phase::Sending;
            }
        }
        if self.phase == Phase::Handshaking {
            let session = self.tls.as_mut()?;
            match session.handshake(&mut self.stream) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    return Some(Err(format!(
                        "TLS handshake with {} failed: {}",
                        self.endpoint,
                        describe_io(&e, timeout)
                    )))
                }
            }
            let wall = tls::unix_seconds(std::time::SystemTime::now());
            match session.not_after() {
                Some(Ok(t)) => {
                    self.not_after = Some(t);
                    if tls::expires_soon(t, wall, self.warn_days) {
                        self.note = Some(tls::expiry_note(t, wall));
                    }
                }
                Some(Err(e)) if self.warn_days > 0 => {
                    self.note = Some(format!("certificate expiry unknown: {e}"));
                }
                _ => {}
            }
            if self.http.is_none() {
                session.close(&mut self.stream);
                return Some(Ok(format!(
                    "TLS handshake with {} succeeded in {:.1} ms ({})",
                    self.endpoint,
                    now.saturating_duration_since(self.started).as_secs_f64() * 1e3,
                    session.version()
                )));
            }
            self.phase = Phase::Sending;
        }
        let http = self.http.as_mut()?;
        let stream = &mut self.stream;
        let mut session = self.tls.as_mut();
        if self.phase == Phase::Sending {
            while http.sent < http.request.len() {
                let pending = &http.request[http.sent..];
                let written = match session.as_deref_mut() {
                    Some(s) => s.write(stream, pending),
                    None => stream.write(pending),
                };
                match written {
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
        let took = now.saturating_duration_since(self.started);
        let mut buf = [0u8; 4096];
        loop {
            let read = match session.as_deref_mut() {
                Some(s) => s.read(stream, &mut buf),
                None => stream.read(&mut buf),
            };
            match read {
                Ok(0) => return Some(http.end(took)),
                Ok(n) => {
                    if let Some(verdict) = http.take(&buf[..n], took) {
                        return Some(verdict);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(format!("{}: {}", http.what, describe_io(&e, timeout)))),
            }
        }
    }
}

impl Http {
    /// The request and expectations of an `http` or `https` check of
    /// `endpoint`. The `Host` header is `tls_sni` for `https` when set
    /// (the name the server's virtual hosts know), else the address (an
    /// IPv6 one in brackets, RFC 9110 4.2's IP-literal).
    fn new(endpoint: SocketAddr, check: &HealthCheckConfig) -> Http {
        let https = check.kind == HealthCheckKind::Https;
        let host = match (&check.tls.sni, https, endpoint) {
            (Some(name), true, _) => name.clone(),
            (_, _, SocketAddr::V6(a)) => format!("[{}]", a.ip()),
            (_, _, SocketAddr::V4(a)) => a.ip().to_string(),
        };
        Http {
            what: format!(
                "{} GET {} on {endpoint}",
                if https { "HTTPS" } else { "HTTP" },
                check.http_path
            ),
            request: format!(
                "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: rvs-health\r\nConnection: close\r\n\r\n",
                check.http_path,
            )
            .into_bytes(),
            sent: 0,
            line: Vec::with_capacity(128),
            expect: check.http_expect_status,
            expect_body: check
                .http_expect_body
                .as_ref()
                .map(|b| b.as_bytes().to_vec()),
            status: None,
            body: None,
        }
    }

    /// Takes the next bytes of the answer: the verdict once one is known
    /// (`took` is the probe's time so far).
    fn take(&mut self, data: &[u8], took: Duration) -> Option<Result<String, String>> {
        if self.body.is_some() {
            return self.scan(data, took);
        }
        let room = MAX_HEAD.saturating_sub(self.line.len());
        let (head, rest) = data.split_at(data.len().min(room));
        self.line.extend_from_slice(head);
        if self.status.is_none() {
            if !self.line.contains(&b'\n') && self.line.len() < MAX_STATUS_LINE {
                return None;
            }
            match judge_status(self, took) {
                Ok(_) if self.expect_body.is_some() => self.status = Some(self.expect),
                verdict => return Some(verdict),
            }
        }
        // The head ends at the first empty line.
        let end = memmem::find(&self.line, b"\r\n\r\n")
            .map(|i| i + 4)
            .into_iter()
            .chain(memmem::find(&self.line, b"\n\n").map(|i| i + 2))
            .min();
        let Some(end) = end else {
            if self.line.len() >= MAX_HEAD {
                return Some(Err(format!(
                    "{} answered {}, but its head is longer than {MAX_HEAD} bytes",
                    self.what, self.expect
                )));
            }
            return None;
        };
        let first = self.line.split_off(end);
        self.body = Some(BodyScan::default());
        self.scan(&first, took).or_else(|| self.scan(rest, took))
    }

    /// Searches the next bytes of the body for `expect_body`.
    fn scan(&mut self, data: &[u8], took: Duration) -> Option<Result<String, String>> {
        let (Some(pattern), Some(body)) = (&self.expect_body, &mut self.body) else {
            return None;
        };
        let max = HealthCheckConfig::MAX_BODY_SCAN;
        let data = &data[..data.len().min(max - body.seen)];
        body.seen += data.len();
        body.tail.extend_from_slice(data);
        if memmem::find(&body.tail, pattern).is_some() {
            return Some(Ok(format!(
                "{} answered {} with {:?} in its body in {:.1} ms",
                self.what,
                self.expect,
                String::from_utf8_lossy(pattern),
                took.as_secs_f64() * 1e3
            )));
        }
        if body.seen >= max {
            return Some(Err(format!(
                "{} answered {}, but {:?} is not in the first {max} bytes of its body",
                self.what,
                self.expect,
                String::from_utf8_lossy(pattern)
            )));
        }
        let keep = pattern.len().saturating_sub(1);
        let drop = body.tail.len().saturating_sub(keep);
        body.tail.drain(..drop);
        None
    }

    /// The verdict when the server closed the connection.
    fn end(&self, took: Duration) -> Result<String, String> {
        let what = &self.what;
        let Some(pattern) = &self.expect_body else {
            return judge_status(self, took);
        };
        let pattern = String::from_utf8_lossy(pattern);
        if self.status.is_none() {
            judge_status(self, took)?;
        }
        let status = self.expect;
        match &self.body {
            None => Err(format!(
                "{what} answered {status}, but the connection closed before its body"
            )),
            Some(body) => Err(format!(
                "{what} answered {status}, but {pattern:?} is not in its body ({} bytes)",
                body.seen
            )),
        }
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
