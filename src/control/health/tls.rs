//! TLS for the `tls` and `https` probes: a rustls client driven over the
//! probe's own non-blocking socket, and what the checks read from the
//! handshake (the protocol version, the certificate's expiry).
//!
//! Why rustls driven by hand: rustls does no I/O of its own (it turns
//! bytes read from the socket into plaintext and plaintext into bytes to
//! write), so the probe stays a state machine on the shared event loop:
//! each readiness event moves as many records as the socket allows, in
//! both directions, and a probe never blocks. The loop's sockets are
//! edge-triggered, so every step goes on until the socket would block.
//!
//! Why any certificate is accepted by default: real servers behind a
//! balancer are reached by IP address and commonly present self-signed
//! certificates (keepalived's `SSL_GET` does not verify either); the check
//! asks "does this server complete a TLS handshake", not "is it who it
//! claims". The handshake's signature is still verified against the
//! certificate's key, so a server must hold its certificate's private key.
//! `tls_verify` verifies the chain, dates and name against a CA file.
//!
//! Every probe gets a fresh client configuration without session
//! resumption: each check is a full handshake that sees the certificate,
//! and no probe's state leaks into the next.

use super::cert;
use crate::control::config::TlsCheckConfig;
use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Accepts any certificate chain, but checks the handshake's signature
/// with the certificate's key, as the provider's verifier would.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client configuration of a check: TLS 1.2 and 1.3, ring's
/// algorithms, the certificate policy of `tls`, no session resumption.
pub(super) fn client_config(tls: &TlsCheckConfig) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)?;
    let mut config = if tls.verify {
        let mut roots = rustls::RootCertStore::empty();
        for der in &tls.ca_certificates {
            roots.add(CertificateDer::from(der.as_slice()))?;
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        builder.with_webpki_verifier(verifier).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth()
    };
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// The name the handshake is for: `tls_sni` (sent as SNI), or the real
/// server's address, which rustls never sends as SNI and which a verified
/// certificate must then carry.
fn server_name(tls: &TlsCheckConfig, endpoint: SocketAddr) -> ServerName<'static> {
    tls.sni
        .as_ref()
        .and_then(|name| DnsName::try_from(name.clone()).ok())
        .map_or_else(
            || ServerName::IpAddress(endpoint.ip().into()),
            ServerName::DnsName,
        )
}

/// A rustls error as an `io::Error` (its message kept), so the probe
/// reports it as it reports socket errors.
fn tls_error(e: rustls::Error) -> io::Error {
    let hint = match e {
        rustls::Error::InvalidMessage(_) => " (is the server speaking TLS?)",
        _ => "",
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("{e}{hint}"))
}

/// What one read from the socket gave the session.
enum Filled {
    /// Records were read and processed.
    Data,
    /// The socket had nothing.
    Blocked,
    /// The peer closed its side.
    Closed,
}

/// A TLS client session over a probe's socket.
pub(super) struct Session {
    conn: ClientConnection,
    /// The peer closed the TCP connection.
    closed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handshaking", &self.conn.is_handshaking())
            .field("closed", &self.closed)
            .finish()
    }
}

impl Session {
    /// A session for `endpoint` as `tls` says, its ClientHello ready to go.
    pub(super) fn new(
        tls: &TlsCheckConfig,
        endpoint: SocketAddr,
    ) -> Result<Session, rustls::Error> {
        let conn =
            ClientConnection::new(Arc::new(client_config(tls)?), server_name(tls, endpoint))?;
        Ok(Session {
            conn,
            closed: false,
        })
    }

    /// Writes what rustls has to send until it has nothing or the socket
    /// would block.
    fn flush(&mut self, sock: &mut TcpStream) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads once from the socket into rustls and processes the records
    /// (a TLS error, such as an alert from the server, is an error; the
    /// alert rustls answers with is sent first, as a courtesy).
    fn fill(&mut self, sock: &mut TcpStream) -> io::Result<Filled> {
        loop {
            match self.conn.read_tls(sock) {
                Ok(0) => {
                    self.closed = true;
                    return Ok(Filled::Closed);
                }
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        let _ = self.flush(sock);
                        return Err(tls_error(e));
                    }
                    return Ok(Filled::Data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Filled::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the handshake as far as the socket allows: `Ok(true)` once it
    /// is complete, `Ok(false)` while waiting for the socket.
    pub(super) fn handshake(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        loop {
            self.flush(sock)?;
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            if !self.conn.wants_read() {
                // Records still to write: the socket's next writable event.
                return Ok(false);
            }
            match self.fill(sock)? {
                Filled::Data => {}
                Filled::Blocked => return Ok(false),
                Filled::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ))
                }
            }
        }
    }

    /// Sends `buf` as application data: the bytes taken (into rustls's
    /// buffer, written as far as the socket allows).
    pub(super) fn write(&mut self, sock: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
        self.flush(sock)?;
        let n = self.conn.writer().write(buf)?;
        self.flush(sock)?;
        if n == 0 && !buf.is_empty() {
            // rustls's buffer is full: wait for the socket to drain it.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Reads application data: `Ok(0)` at the end (a close_notify, or the
    /// connection closed without one: HTTP/1.0's end of the answer),
    /// `WouldBlock` while waiting for the socket.
    pub(super) fn read(&mut self, sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.closed {
                return Ok(0);
            }
            // The request may still sit in rustls's buffer.
            self.flush(sock)?;
            match self.fill(sock)? {
                Filled::Data | Filled::Closed => {}
                Filled::Blocked => return Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    /// Ends the session politely (a close_notify, if the socket takes it).
    pub(super) fn close(&mut self, sock: &mut TcpStream) {
        self.conn.send_close_notify();
        let _ = self.flush(sock);
    }

    /// The negotiated protocol, `TLSv1.3`, once the handshake is done.
    pub(super) fn version(&self) -> String {
        match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
            Some(v) => format!("{v:?}"),
            None => "TLS".into(),
        }
    }

    /// The server's certificate's `notAfter`, in seconds since the Unix
    /// epoch: `None` without a certificate, an error when it cannot be
    /// read.
    pub(super) fn not_after(&self) -> Option<Result<i64, cert::BadCertificate>> {
        let leaf = self.conn.peer_certificates()?.first()?;
        Some(cert::not_after(leaf.as_ref()))
    }
}

/// Seconds since the Unix epoch as a `SystemTime`.
pub(super) fn system_time(seconds: i64) -> SystemTime {
    let d = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// A `SystemTime` in whole seconds since the Unix epoch (negative before).
pub(super) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Whole days from `now` to `not_after` (both in seconds since the
/// epoch), rounded down: 0 within the last day, negative once expired.
pub(super) fn days_left(not_after: i64, now: i64) -> i64 {
    not_after.saturating_sub(now).div_euclid(86_400)
}

/// Whether a certificate expiring at `not_after` is within `warn_days`
/// of `now` (never with `warn_days` 0, which is off).
pub(super) fn expires_soon(not_after: i64, now: i64, warn_days: u32) -> bool {
    warn_days > 0 && not_after.saturating_sub(now) < i64::from(warn_days) * 86_400
}

/// `certificate expires in 2 days (2026-12-06 11:53:00 UTC)`, or
/// `in less than a day`, or `expired 3 days ago`.
pub(super) fn expiry_note(not_after: i64, now: i64) -> String {
    let at = cert::format_utc(not_after);
    let days = days_left(not_after, now);
    match days {
        d if d < 0 => {
            let ago = (now - not_after) / 86_400;
            if ago == 0 {
                format!("certificate expired less than a day ago ({at})")
            } else {
                format!("certificate expired {ago} day{} ago ({at})", plural(ago))
            }
        }
        0 => format!("certificate expires in less than a day ({at})"),
        d => format!("certificate expires in {d} day{} ({at})", plural(d)),
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn days_left_round_down_and_go_negative_once_expired() {
        assert_eq!(days_left(10 * DAY, 0), 10);
        assert_eq!(days_left(10 * DAY - 1, 0), 9);
        assert_eq!(days_left(0, 1), -1);
    }

    #[test]
    fn expiry_is_soon_strictly_within_the_warning_days() {
        assert!(expires_soon(14 * DAY - 1, 0, 14));
        assert!(!expires_soon(14 * DAY, 0, 14));
        assert!(expires_soon(-DAY, 0, 14), "an expired certificate");
        assert!(!expires_soon(0, 0, 0), "0 is off");
    }

    #[test]
    fn expiry_notes_say_days_and_the_date() {
        let now = 1_000 * DAY;
        assert_eq!(
            expiry_note(now + 2 * DAY + 5, now),
            "certificate expires in 2 days (1972-09-29 00:00:05 UTC)"
        );
        assert!(expiry_note(now + DAY, now).contains("expires in 1 day ("));
        assert!(expiry_note(now + 60, now).contains("expires in less than a day"));
        assert!(expiry_note(now - 60, now).contains("expired less than a day ago"));
        assert!(expiry_note(now - 3 * DAY, now).contains("expired 3 days ago"));
    }

    #[test]
    fn system_times_round_trip_through_unix_seconds() {
        for s in [0, 1, -1, 4_102_444_800, -631_152_000] {
            assert_eq!(unix_seconds(system_time(s)), s);
        }
    }

    #[test]
    fn without_sni_the_name_is_the_real_servers_address() {
        let ep: SocketAddr = "10.1.0.11:443".parse().unwrap();
        let none = TlsCheckConfig::default();
        assert!(matches!(server_name(&none, ep), ServerName::IpAddress(_)));
        let sni = TlsCheckConfig {
            sni: Some("www.example.test".into()),
            ..TlsCheckConfig::default()
        };
        assert_eq!(
            server_name(&sni, ep),
            ServerName::try_from("www.example.test").unwrap()
        );
    }
}
