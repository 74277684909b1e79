//! The exchange the `udp` and `dns` probes share: one datagram on a UDP
//! socket connected to the real server (from the check's
//! `source_address`), sent again when the socket becomes writable if the
//! send buffer was full, and the datagrams that come back read one by
//! one. Connected, the socket hears only the real server, and an ICMP port
//! unreachable comes back as `ECONNREFUSED`: a failure, said as such.
//! What a reply means is the probe's.

use super::check::{finished, is_local};
use super::probe::{describe_io, StartError};
use super::sockets;
use super::CheckResult;
use crate::control::config::HealthCheckConfig;
use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One datagram to a real server and its replies.
#[derive(Debug)]
pub(super) struct Datagram {
    /// `UDP to 10.1.0.11:7007`: the start of every message.
    what: String,
    socket: UdpSocket,
    payload: Vec<u8>,
    sent: bool,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
}

/// What reading the socket gave.
pub(super) enum Read<'a> {
    /// A datagram from the real server (cut to the buffer).
    Reply(&'a [u8]),
    /// Nothing more for now.
    Pending,
    /// The send or the receive failed (an ICMP error among others).
    Failed(String),
}

impl Datagram {
    /// Opens the socket to `endpoint` and sends `payload` (or waits to);
    /// `what` starts the messages.
    pub(super) fn open(
        what: String,
        endpoint: SocketAddr,
        payload: Vec<u8>,
        check: &HealthCheckConfig,
        now: Instant,
    ) -> Result<Datagram, StartError> {
        let fail = |detail: String| StartError::Failed(finished(now, Instant::now(), Err(detail)));
        let socket = match sockets::udp_connect(endpoint, check.source_address) {
            Ok(s) => s,
            Err(e) if is_local(&e) => return Err(StartError::Local(e)),
            Err(e) => return Err(fail(format!("{what}: {}", describe_io(&e, check.timeout)))),
        };
        let mut d = Datagram {
            what,
            socket,
            payload,
            sent: false,
            started: now,
            deadline: now + check.timeout,
            timeout: check.timeout,
        };
        if let Some(detail) = d.send() {
            return Err(fail(detail));
        }
        Ok(d)
    }

    /// The start of every message about this exchange.
    pub(super) fn what(&self) -> &str {
        &self.what
    }

    /// When the probe started.
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// Its start plus its timeout.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The check's timeout.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The probe's result at `now` with `outcome`.
    pub(super) fn finish(&self, now: Instant, outcome: Result<String, String>) -> CheckResult {
        finished(self.started, now, outcome)
    }

    /// Whether the payload has left.
    pub(super) fn sent(&self) -> bool {
        self.sent
    }

    /// The socket, for the event loop.
    pub(super) fn source(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Sends the payload if not yet sent: `None` when sent or to be
    /// retried, the failure otherwise.
    fn send(&mut self) -> Option<String> {
        if self.sent {
            return None;
        }
        match self.socket.send(&self.payload) {
            Ok(_) => {
                self.sent = true;
                None
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(self.failure(&e)),
        }
    }

    fn failure(&self, e: &io::Error) -> String {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            format!("{}: port unreachable (ICMP)", self.what)
        } else {
            format!("{}: {}", self.what, describe_io(e, self.timeout))
        }
    }

    /// Sends the payload if it has not left yet, then reads the next
    /// datagram into `buf`.
    pub(super) fn read<'b>(&mut self, buf: &'b mut [u8]) -> Read<'b> {
        if let Some(detail) = self.send() {
            return Read::Failed(detail);
        }
        loop {
            match self.socket.recv(buf) {
                Ok(n) => return Read::Reply(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Read::Failed(self.failure(&e)),
            }
        }
    }
}
