//! The `tls` and `https` probes (and `http`'s body match) against local
//! servers on 127.0.0.1: a rustls server with certificates made by rcgen
//! at test time, a plain HTTP server on the port a TLS check expects,
//! a silent one.

use super::test_servers::{serve, Stop};
use super::{probe, CheckResult, HealthChecker, Target};
use crate::control::config::{HealthCheckConfig, HealthCheckKind, TlsCheckConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A certificate and its key, made now.
struct Cert {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// Its notAfter, seconds since the epoch.
    not_after: u64,
}

impl Cert {
    /// A certificate for `www.example.test` and 127.0.0.1 valid from an
    /// hour ago for `valid_for` from now, signed by `issuer` (itself when
    /// `None`); a CA certificate when `ca`.
    fn new(valid_for: u64, issuer: Option<&Cert>, ca: bool) -> Cert {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["www.example.test".into()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let now = unix_now();
        let not_after = now + valid_for;
        params.not_before = epoch + Duration::from_secs(now - 3600);
        params.not_after = epoch + Duration::from_secs(not_after);
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let cert = match issuer {
            None => params.self_signed(&key),
            Some(i) => params.signed_by(&key, &i.cert, &i.key),
        }
        .unwrap();
        Cert {
            cert,
            key,
            not_after,
        }
    }

    /// A self-signed leaf certificate valid for `valid_for` from now.
    fn self_signed(valid_for: u64) -> Cert {
        Cert::new(valid_for, None, false)
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key.serialize_der()).into()
    }
}

/// What a TLS test server does after the handshake.
#[derive(Clone)]
enum Answer {
    /// Nothing: reads until the client closes.
    Nothing,
    /// Reads the request's head, sends these bytes, closes.
    Http(Vec<u8>),
}

/// A rustls server configuration with `cert`, speaking `versions`.
fn server_config(cert: &Cert, versions: &[&'static SupportedProtocolVersion]) -> Arc<ServerConfig> {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der()], cert.private_key())
            .unwrap();
    Arc::new(config)
}

/// Reads a request's head (up to its empty line) from `r`; `None` when
/// the client stops sending first.
fn read_head(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match r.read(&mut buf) {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(head)
}

/// A TLS server with `cert` speaking `versions`; the SNI name of each
/// handshake goes to the returned receiver.
fn tls_server(
    cert: &Cert,
    versions: &[&'static SupportedProtocolVersion],
    answer: Answer,
) -> (u16, mpsc::Receiver<Option<String>>, Stop) {
    let config = server_config(cert, versions);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (port, stop) = serve(move |sock| {
        let Ok(conn) = ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            if tls.conn.complete_io(&mut tls.sock).is_err() {
                return;
            }
        }
        let sni = tls.conn.server_name().map(str::to_string);
        let _ = tx.lock().unwrap().send(sni);
        match &answer {
            Answer::Nothing => {
                let mut buf = [0u8; 1024];
                while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
            }
            Answer::Http(bytes) => {
                if read_head(&mut tls).is_none() {
                    return;
                }
                let _ = tls.write_all(bytes);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    (port, rx, stop)
}

/// Reads what the client sent first (a request, at most 4 KiB).
fn read_request(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
}

/// A TLS 1.3 server with `cert` that answers nothing after the handshake.
fn tls13_server(cert: &Cert) -> (u16, mpsc::Receiver<Option<String>>, Stop) {
    tls_server(cert, &[&TLS13], Answer::Nothing)
}

/// A plain-text server answering anything with `answer`, then closing.
fn plain_server(answer: impl AsRef<[u8]> + Send + 'static) -> (u16, Stop) {
    serve(move |mut s| {
        read_request(&mut s);
        let _ = s.write_all(answer.as_ref());
    })
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn check(kind: HealthCheckKind) -> HealthCheckConfig {
    HealthCheckConfig {
        kind,
        timeout: Duration::from_millis(3000),
        http_path: "/healthz".into(),
        ..HealthCheckConfig::default()
    }
}

fn with_body(kind: HealthCheckKind, body: &str) -> HealthCheckConfig {
    HealthCheckConfig {
        http_expect_body: Some(body.into()),
        ..check(kind)
    }
}

fn http_answer(status: u16, body: &str) -> Answer {
    Answer::Http(
        format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Asserts that `r` failed in the TLS handshake with 127.0.0.1:`port`.
fn assert_handshake_failed(r: &CheckResult, port: u16) {
    assert!(!r.ok, "{r:?}");
    assert!(
        r.detail
            .starts_with(&format!("TLS handshake with 127.0.0.1:{port} failed: ")),
        "{r:?}"
    );
}

fn not_after_of(r: &CheckResult) -> Option<u64> {
    r.cert_not_after
        .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
}

// ------------------------------------------------------------ tls

#[test]
fn tls_probe_completes_a_tls13_handshake_with_a_self_signed_certificate() {
    let cert = Cert::self_signed(90 * DAY);
    let (port, sni, _stop) = tls13_server(&cert);
    let r = probe(local(port), &check(HealthCheckKind::Tls));
    assert!(r.ok, "{r:?}");
    assert!(
        r.detail.starts_with(&format!(
            "TLS handshake with 127.0.0.1:{port} succeeded in "
        )),
        "{r:?}"
    );
    assert!(r.detail.ends_with("(TLSv1.3)"), "{r:?}");
    assert_eq!(not_after_of(&r), Some(cert.not_after));
    assert_eq!(sni.recv().unwrap(), None, "no SNI without tls_sni");
}

#[test]
fn tls_probe_speaks_tls12_to_a_server_without_tls13() {
    let cert = Cert::self_signed(90 * DAY);
    let (port, _sni, _stop) = tls_server(&cert, &[&TLS12], Answer::Nothing);
    let r = probe(local(port), &check(HealthCheckKind::Tls));
    assert!(r.ok, "{r:?}");
    assert!(r.detail.ends_with("(TLSv1.2)"), "{r:?}");
}

#[test]
fn tls_probe_sends_the_configured_sni() {
    let cert = Cert::self_signed(90 * DAY);
    let (port, sni, _stop) = tls13_server(&cert);
    let mut c = check(HealthCheckKind::Tls);
    c.tls.sni = Some("www.example.test".into());
    let r = probe(local(port), &c);
    assert!(r.ok, "{r:?}");
    assert_eq!(sni.recv().unwrap().as_deref(), Some("www.example.test"));
}

#[test]
fn tls_probe_of_a_plain_http_server_fails_naming_the_handshake() {
    let (port, _stop) = plain_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let r = probe(local(port), &check(HealthCheckKind::Tls));
    assert_handshake_failed(&r, port);
    assert!(r.detail.contains("is the server speaking TLS?"), "{r:?}");
    assert_eq!(r.cert_not_after, None);
}

#[test]
fn tls_probe_of_a_server_that_closes_at_once_fails() {
    let (port, _stop) = serve(drop);
    let r = probe(local(port), &check(HealthCheckKind::Tls));
    assert_handshake_failed(&r, port);
}

#[test]
fn tls_probe_of_a_silent_server_fails_at_its_timeout_in_the_handshake() {
    let (port, _stop) = serve(|s| {
        std::thread::sleep(Duration::from_millis(600));
        drop(s);
    });
    let mut c = check(HealthCheckKind::Tls);
    c.timeout = Duration::from_millis(200);
    let r = probe(local(port), &c);
    assert!(!r.ok);
    assert_eq!(
        r.detail,
        format!("TLS handshake with 127.0.0.1:{port} failed: no answer within 200 ms")
    );
}

#[test]
fn tls_probe_of_a_closed_port_fails_to_connect() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = probe(local(port), &check(HealthCheckKind::Tls));
    assert!(!r.ok);
    assert_eq!(
        r.detail,
        format!("connect to 127.0.0.1:{port} failed: Connection refused")
    );
}

// ------------------------------------------------------------ expiry

#[test]
fn a_certificate_expiring_within_the_warning_days_passes_with_a_note() {
    let cert = Cert::self_signed(2 * DAY + 3600);
    let (port, _sni, _stop) = tls13_server(&cert);
    let r = probe(local(port), &check(HealthCheckKind::Tls));
    assert!(r.ok, "{r:?}");
    assert!(
        r.detail
            .contains("(TLSv1.3); certificate expires in 2 days ("),
        "{r:?}"
    );
}

#[test]
fn a_certificate_beyond_the_warning_days_has_no_note() {
    let cert = Cert::self_signed(20 * DAY);
    let (port, _sni, _stop) = tls13_server(&cert);
    let r = probe(local(port), &check(HealthCheckKind::Tls));
    assert!(r.ok, "{r:?}");
    assert!(!r.detail.contains("certificate"), "{r:?}");
}

#[test]
fn warning_days_of_zero_turn_the_note_off() {
    let cert = Cert::self_signed(DAY);
    let (port, _sni, _stop) = tls13_server(&cert);
    let mut c = check(HealthCheckKind::Tls);
    c.tls.expiry_warn_days = 0;
    let r = probe(local(port), &c);
    assert!(r.ok, "{r:?}");
    assert!(!r.detail.contains("certificate"), "{r:?}");
    assert_eq!(not_after_of(&r), Some(cert.not_after), "still read");
}

// ------------------------------------------------------------ verify

fn verifying(ca: &Cert) -> TlsCheckConfig {
    TlsCheckConfig {
        verify: true,
        ca_certificates: vec![ca.der().to_vec()],
        ..TlsCheckConfig::default()
    }
}

#[test]
fn a_verified_check_passes_with_a_certificate_of_its_ca_naming_the_address() {
    let ca = Cert::new(90 * DAY, None, true);
    let cert = Cert::new(90 * DAY, Some(&ca), false);
    let (port, _sni, _stop) = tls13_server(&cert);
    let mut c = check(HealthCheckKind::Tls);
    c.tls = verifying(&ca);
    let r = probe(local(port), &c);
    assert!(r.ok, "{r:?}");
}

#[test]
fn a_verified_check_with_sni_checks_the_name() {
    let ca = Cert::new(90 * DAY, None, true);
    let cert = Cert::new(90 * DAY, Some(&ca), false);
    let (port, _sni, _stop) = tls13_server(&cert);
    let mut c = check(HealthCheckKind::Tls);
    c.tls = verifying(&ca);
    c.tls.sni = Some("www.example.test".into());
    assert!(probe(local(port), &c).ok);
    c.tls.sni = Some("other.example.test".into());
    let r = probe(local(port), &c);
    assert!(!r.ok);
    assert!(r.detail.contains("invalid peer certificate"), "{r:?}");
}

#[test]
fn a_verified_check_fails_with_a_certificate_of_another_ca() {
    let ca = Cert::new(90 * DAY, None, true);
    let cert = Cert::self_signed(90 * DAY);
    let (port, _sni, _stop) = tls13_server(&cert);
    let mut c = check(HealthCheckKind::Tls);
    c.tls = verifying(&ca);
    let r = probe(local(port), &c);
    assert!(!r.ok);
    assert!(
        r.detail.starts_with(&format!(
            "TLS handshake with 127.0.0.1:{port} failed: invalid peer certificate: "
        )),
        "{r:?}"
    );
}

#[test]
fn an_unverified_check_accepts_a_certificate_of_another_ca() {
    let ca = Cert::new(90 * DAY, None, true);
    let cert = Cert::new(90 * DAY, Some(&ca), false);
    let (port, _sni, _stop) = tls13_server(&cert);
    assert!(probe(local(port), &check(HealthCheckKind::Tls)).ok);
}

// ------------------------------------------------------------ https

#[test]
fn https_probe_passes_on_the_expected_status() {
    let cert = Cert::self_signed(90 * DAY);
    let (port, _sni, _stop) = tls_server(&cert, &[&TLS13], http_answer(200, "ok"));
    let r = probe(local(port), &check(HealthCheckKind::Https));
    assert!(r.ok, "{r:?}");
    assert!(
        r.detail.starts_with(&format!(
            "HTTPS GET /healthz on 127.0.0.1:{port} answered 200 in "
        )),
        "{r:?}"
    );
    assert_eq!(not_after_of(&r), Some(cert.not_after));
}

#[test]
fn https_probe_fails_on_another_status() {
    let cert = Cert::self_signed(90 * DAY);
    let (port, _sni, _stop) = tls_server(&cert, &[&TLS12], http_answer(503, "down"));
    let r = probe(local(port), &check(HealthCheckKind::Https));
    assert!(!r.ok);
    assert_eq!(
        r.detail,
        format!("HTTPS GET /healthz on 127.0.0.1:{port} answered 503, expected 200")
    );
}

#[test]
fn https_probe_passes_when_the_body_holds_the_expected_string() {
    let cert = Cert::self_signed(90 * DAY);
    let (port, _sni, _stop) = tls_server(&cert, &[&TLS13], http_answer(200, "status: ready\n"));
    let r = probe(local(port), &with_body(HealthCheckKind::Https, "ready"));
    assert!(r.ok, "{r:?}");
    assert!(
        r.detail.contains("answered 200 with \"ready\" in its body"),
        "{r:?}"
    );
}

#[test]
fn https_probe_fails_when_the_body_lacks_the_expected_string() {
    let cert = Cert::self_signed(90 * DAY);
    let (port, _sni, _stop) = tls_server(&cert, &[&TLS13], http_answer(200, "status: starting\n"));
    let r = probe(local(port), &with_body(HealthCheckKind::Https, "ready"));
    assert!(!r.ok);
    assert_eq!(
        r.detail,
        format!(
            "HTTPS GET /healthz on 127.0.0.1:{port} answered 200, but \"ready\" is not in its \
             body (17 bytes)"
        )
    );
}

#[test]
fn https_probe_sends_the_sni_name_as_host() {
    let cert = Cert::self_signed(90 * DAY);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let config = server_config(&cert, &[&TLS13]);
    let (port, _stop) = serve(move |sock| {
        let mut tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), sock);
        let Some(head) = read_head(&mut tls) else {
            return;
        };
        let _ = tx
            .lock()
            .unwrap()
            .send(String::from_utf8_lossy(&head).to_string());
        let _ = tls.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let mut c = check(HealthCheckKind::Https);
    c.tls.sni = Some("www.example.test".into());
    let r = probe(local(port), &c);
    assert!(r.ok, "{r:?}");
    let head = rx.recv().unwrap();
    assert!(head.starts_with("GET /healthz HTTP/1.0\r\n"), "{head:?}");
    assert!(head.contains("\r\nHost: www.example.test\r\n"), "{head:?}");
}

#[test]
fn https_probe_of_a_plain_http_server_fails_in_the_handshake() {
    let (port, _stop) = plain_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let r = probe(local(port), &check(HealthCheckKind::Https));
    assert_handshake_failed(&r, port);
}

// ------------------------------------------------------------ http body

#[test]
fn http_probe_finds_a_string_split_across_reads() {
    let (port, _stop) = serve(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nall is re");
        let _ = s.flush();
        std::thread::sleep(Duration::from_millis(50));
        let _ = s.write_all(b"ady here");
    });
    let r = probe(local(port), &with_body(HealthCheckKind::Http, "ready"));
    assert!(r.ok, "{r:?}");
}

#[test]
fn http_probe_stops_at_the_match_without_waiting_for_the_end() {
    let (port, _stop) = serve(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nready");
        // Holds the connection open well past the probe's timeout.
        std::thread::sleep(Duration::from_millis(1500));
    });
    let mut c = with_body(HealthCheckKind::Http, "ready");
    c.timeout = Duration::from_millis(1000);
    let start = Instant::now();
    let r = probe(local(port), &c);
    assert!(r.ok, "{r:?}");
    assert!(start.elapsed() < Duration::from_millis(900));
}

#[test]
fn http_probe_does_not_match_the_string_in_the_headers() {
    let (port, _stop) = plain_server(b"HTTP/1.0 200 OK\r\nX-State: ready\r\n\r\nnope");
    let r = probe(local(port), &with_body(HealthCheckKind::Http, "ready"));
    assert!(!r.ok, "{r:?}");
    assert!(r.detail.ends_with("is not in its body (4 bytes)"), "{r:?}");
}

#[test]
fn http_probe_searches_only_the_first_64_kib_of_the_body() {
    let (port, _stop) = plain_server(
        [
            &b"HTTP/1.0 200 OK\r\n\r\n"[..],
            &vec![b'.'; HealthCheckConfig::MAX_BODY_SCAN],
            b"ready",
        ]
        .concat(),
    );
    let r = probe(local(port), &with_body(HealthCheckKind::Http, "ready"));
    assert!(!r.ok, "{r:?}");
    assert!(
        r.detail
            .ends_with("answered 200, but \"ready\" is not in the first 65536 bytes of its body"),
        "{r:?}"
    );
}

#[test]
fn http_probe_with_a_body_match_still_fails_on_the_wrong_status() {
    let (port, _stop) = plain_server(b"HTTP/1.0 500 Oops\r\n\r\nready");
    let r = probe(local(port), &with_body(HealthCheckKind::Http, "ready"));
    assert!(!r.ok);
    assert!(r.detail.ends_with("answered 500, expected 200"), "{r:?}");
}

#[test]
fn http_probe_closed_before_the_body_says_so() {
    let (port, _stop) = plain_server(b"HTTP/1.0 200 OK\r\nX: y\r\n");
    let r = probe(local(port), &with_body(HealthCheckKind::Http, "ready"));
    assert!(!r.ok);
    assert!(
        r.detail
            .ends_with("answered 200, but the connection closed before its body"),
        "{r:?}"
    );
}

// ------------------------------------------------------------ the checker

#[test]
fn the_checker_keeps_the_certificate_expiry_of_a_tls_target() {
    let cert = Cert::self_signed(5 * DAY - 3600);
    let (port, _sni, _stop) = tls13_server(&cert);
    let mut hc = check(HealthCheckKind::Tls);
    hc.interval = Duration::from_millis(20);
    let mut c = HealthChecker::new(vec![Target {
        vs: 0,
        rs: 0,
        endpoint: local(port),
        check: hc,
        name: "web".into(),
    }]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.states()[0].checks < 2 && Instant::now() < deadline {
        assert!(c.poll().is_empty());
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = &c.states()[0];
    assert!(s.checks >= 2 && s.state.up, "{s:?}");
    let last = s.last.as_ref().unwrap();
    assert!(last.ok, "{last:?}");
    assert_eq!(not_after_of(last), Some(cert.not_after));
    assert!(
        last.detail.contains("certificate expires in 4 days"),
        "{last:?}"
    );
}
