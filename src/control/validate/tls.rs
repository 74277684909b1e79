//! The keys of `tls` and `https` checks in `[virtual_server.health_check]`:
//! `http_expect_body` (also `http`'s) and the `tls_*` keys, each checked
//! only when the check's type uses it (keys of other types are accepted
//! and unused, as `http_path` is), each problem reported with its field.
//!
//! `tls_ca_file` is read here, when the configuration is loaded or
//! reloaded: a missing or unreadable file is a configuration error with
//! its line, not a probe failing later on every server.

use super::{int_or, Errors, RawHealthCheck, S};
use crate::control::config::{HealthCheckConfig, HealthCheckKind, TlsCheckConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName};
use std::net::IpAddr;
use std::path::PathBuf;

/// `http_expect_body`: 1 to `MAX_EXPECT_BODY_LEN` bytes for `http` and
/// `https` checks; `Some(None)` when absent.
pub(super) fn expect_body(
    t: &RawHealthCheck,
    kind: Option<HealthCheckKind>,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<Option<String>> {
    let Some(v) = &t.http_expect_body else {
        return Some(None);
    };
    let body = v.get_ref();
    if !kind.is_some_and(HealthCheckKind::is_http) {
        return Some(Some(body.clone()));
    }
    let max = HealthCheckConfig::MAX_EXPECT_BODY_LEN;
    if body.is_empty() || body.len() > max {
        errors.push(
            f("http_expect_body"),
            Some(v.span()),
            format!(
                "{} bytes: must be 1 to {max} bytes (a substring looked for in the answer's body)",
                body.len()
            ),
        );
        return None;
    }
    Some(Some(body.clone()))
}

/// The `tls_*` keys, checked when `kind` is `tls` or `https`.
pub(super) fn tls(
    t: &RawHealthCheck,
    kind: Option<HealthCheckKind>,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<TlsCheckConfig> {
    let used = kind.is_some_and(HealthCheckKind::is_tls);
    let expiry_warn_days = int_or(
        t.tls_expiry_warn_days.as_ref(),
        &f("tls_expiry_warn_days"),
        0,
        i64::from(TlsCheckConfig::MAX_EXPIRY_WARN_DAYS),
        i64::from(TlsCheckConfig::DEFAULT_EXPIRY_WARN_DAYS),
        errors,
    )
    // The bounds are u32, so the value fits (checked).
    .map(|n| n as u32);
    let verify = t
        .tls_verify
        .as_ref()
        .map_or(TlsCheckConfig::DEFAULT_TLS_VERIFY, |v| *v.get_ref());
    let sni = match &t.tls_sni {
        None => Some(None),
        Some(v) if !used => Some(Some(v.get_ref().clone())),
        Some(v) => sni(v, &f("tls_sni"), errors).map(Some),
    };
    let ca = match (&t.tls_ca_file, verify) {
        (None, true) if used => {
            errors.push(
                f("tls_verify"),
                t.tls_verify.as_ref().map(S::span),
                "tls_verify = true needs tls_ca_file, the PEM file of the CA certificates to \
                 trust (no system roots are used)",
            );
            None
        }
        (None, _) => Some((None, Vec::new())),
        (Some(v), _) if !used => Some((Some(PathBuf::from(v.get_ref())), Vec::new())),
        (Some(v), false) => {
            errors.push(
                f("tls_ca_file"),
                Some(v.span()),
                "tls_ca_file is used only with tls_verify = true (without it any certificate \
                 is accepted): set tls_verify = true or remove tls_ca_file",
            );
            None
        }
        (Some(v), true) => {
            let path = PathBuf::from(v.get_ref());
            match load_ca(&path) {
                Ok(certs) => Some((Some(path), certs)),
                Err(e) => {
                    errors.push(f("tls_ca_file"), Some(v.span()), e);
                    None
                }
            }
        }
    };
    let (ca_file, ca_certificates) = ca?;
    Some(TlsCheckConfig {
        sni: sni?,
        verify,
        ca_file,
        ca_certificates,
        expiry_warn_days: expiry_warn_days?,
    })
}

/// A `tls_sni` value: a DNS name, not an IP address (an IP sends no SNI).
fn sni(v: &S<String>, field: &str, errors: &mut Errors) -> Option<String> {
    let name = v.get_ref();
    let problem = if name.parse::<IpAddr>().is_ok() {
        Some(format!(
            "{name:?} is an IP address, which TLS never sends as SNI: omit tls_sni (no SNI is \
             sent, and a verified certificate must name the real server's address)"
        ))
    } else if DnsName::try_from(name.as_str()).is_err() {
        Some(format!("{name:?} is not a DNS name"))
    } else {
        None
    };
    match problem {
        Some(p) => {
            errors.push(field, Some(v.span()), p);
            None
        }
        None => Some(name.clone()),
    }
}

/// The certificates of a PEM CA file, each one a usable trust anchor.
fn load_ca(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| {
        let e = e.to_string();
        let e = e.find(" (os error").map_or(e.as_str(), |at| &e[..at]);
        format!("cannot read {shown:?}: {e}")
    })?;
    let mut certs = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(&text).enumerate() {
        let cert = cert.map_err(|e| format!("{shown:?}: certificate {}: {e}", i + 1))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).map_err(|e| {
            format!(
                "{shown:?}: certificate {} is not a usable CA certificate: {e}",
                i + 1
            )
        })?;
        certs.push(cert.as_ref().to_vec());
    }
    if certs.is_empty() {
        return Err(format!(
            "{shown:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}
