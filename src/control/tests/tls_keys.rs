//! `[virtual_server.health_check]`'s keys of `tls` and `https` checks:
//! `http_expect_body` and the `tls_*` keys.

use super::*;
use crate::control::TlsCheckConfig;

/// A CA certificate made by openssl (tests/fixtures/tls/README.md).
fn ca_pem() -> String {
    format!(
        "{}/tests/fixtures/tls/openssl-cert.pem",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn tls_and_https_are_health_check_types() {
    for (name, kind) in [
        ("tls", HealthCheckKind::Tls),
        ("https", HealthCheckKind::Https),
    ] {
        let hc = &ok(&vs_hc(&format!("type = \"{name}\"\n"))).virtual_servers[0].health_check;
        assert_eq!(hc.kind, kind);
        assert_eq!(hc.tls, TlsCheckConfig::default());
        assert_eq!(hc.http_expect_body, None);
    }
}

#[test]
fn tls_defaults_accept_any_certificate_without_sni_and_warn_two_weeks_ahead() {
    let t = TlsCheckConfig::default();
    assert_eq!(t.sni, None);
    assert!(!t.verify);
    assert_eq!((t.ca_file, t.ca_certificates.len()), (None, 0));
    assert_eq!(t.expiry_warn_days, 14);
}

#[test]
fn https_keys_parse_to_typed_values() {
    let text = vs_hc(&format!(
        "type = \"https\"\nhttp_path = \"/healthz\"\nhttp_expect_body = \"ready\"\n\
         tls_sni = \"www.example.test\"\ntls_verify = true\ntls_ca_file = \"{}\"\n\
         tls_expiry_warn_days = 30\n",
        ca_pem()
    ));
    let hc = &ok(&text).virtual_servers[0].health_check;
    assert_eq!(hc.http_path, "/healthz");
    assert_eq!(hc.http_expect_body.as_deref(), Some("ready"));
    assert_eq!(hc.tls.sni.as_deref(), Some("www.example.test"));
    assert!(hc.tls.verify);
    assert_eq!(hc.tls.ca_file, Some(ca_pem().into()));
    assert_eq!(hc.tls.ca_certificates.len(), 1);
    assert_eq!(
        hc.tls.ca_certificates[0],
        std::fs::read(format!(
            "{}/tests/fixtures/tls/openssl-cert.der",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    );
    assert_eq!(hc.tls.expiry_warn_days, 30);
}

#[test]
fn http_expect_body_is_checked_for_http_too() {
    let text = vs_hc("type = \"http\"\nhttp_expect_body = \"ok\"\n");
    let hc = &ok(&text).virtual_servers[0].health_check;
    assert_eq!(hc.http_expect_body.as_deref(), Some("ok"));
    for bad in [String::new(), "x".repeat(257)] {
        let text = vs_hc(&format!("type = \"http\"\nhttp_expect_body = \"{bad}\"\n"));
        assert_error(
            &one_error(&text),
            "virtual_server[0].health_check.http_expect_body",
            Some(line_of(&text, "http_expect_body")),
            "must be 1 to 256 bytes",
        );
    }
}

#[test]
fn tls_verify_needs_a_ca_file() {
    let text = vs_hc("type = \"tls\"\ntls_verify = true\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.tls_verify",
        Some(line_of(&text, "tls_verify")),
        "tls_verify = true needs tls_ca_file",
    );
}

#[test]
fn tls_ca_file_without_tls_verify_is_refused() {
    let text = vs_hc(&format!("type = \"tls\"\ntls_ca_file = \"{}\"\n", ca_pem()));
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.tls_ca_file",
        Some(line_of(&text, "tls_ca_file")),
        "used only with tls_verify = true",
    );
}

#[test]
fn a_missing_tls_ca_file_is_an_error_naming_the_field() {
    let text =
        vs_hc("type = \"https\"\ntls_verify = true\ntls_ca_file = \"/nonexistent/ca.pem\"\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.tls_ca_file",
        Some(line_of(&text, "tls_ca_file")),
        "cannot read \"/nonexistent/ca.pem\": No such file or directory",
    );
}

#[test]
fn a_tls_ca_file_without_certificates_is_refused() {
    let path = std::env::temp_dir().join(format!("rvs-tls-keys-{}.pem", std::process::id()));
    std::fs::write(&path, "not a certificate\n").unwrap();
    let text = vs_hc(&format!(
        "type = \"tls\"\ntls_verify = true\ntls_ca_file = \"{}\"\n",
        path.display()
    ));
    let e = one_error(&text);
    let _ = std::fs::remove_file(&path);
    assert_error(
        &e,
        "virtual_server[0].health_check.tls_ca_file",
        Some(line_of(&text, "tls_ca_file")),
        "holds no PEM certificate",
    );
}

#[test]
fn tls_sni_must_be_a_dns_name() {
    for (bad, says) in [
        ("bad name!", "is not a DNS name"),
        (
            "10.1.0.11",
            "is an IP address, which TLS never sends as SNI",
        ),
    ] {
        let text = vs_hc(&format!("type = \"tls\"\ntls_sni = \"{bad}\"\n"));
        assert_error(
            &one_error(&text),
            "virtual_server[0].health_check.tls_sni",
            Some(line_of(&text, "tls_sni")),
            says,
        );
    }
}

#[test]
fn tls_expiry_warn_days_is_0_to_3650() {
    let text = vs_hc("type = \"tls\"\ntls_expiry_warn_days = 0\n");
    assert_eq!(
        ok(&text).virtual_servers[0]
            .health_check
            .tls
            .expiry_warn_days,
        0
    );
    for bad in ["-1", "3651"] {
        let text = vs_hc(&format!("type = \"tls\"\ntls_expiry_warn_days = {bad}\n"));
        assert_error(
            &one_error(&text),
            "virtual_server[0].health_check.tls_expiry_warn_days",
            Some(line_of(&text, "tls_expiry_warn_days")),
            "must be 0 to 3650",
        );
    }
}

#[test]
fn tls_keys_are_accepted_and_unused_with_other_types() {
    let text = vs_hc(
        "type = \"tcp\"\ntls_sni = \"bad name!\"\ntls_verify = true\n\
         tls_ca_file = \"/nonexistent/ca.pem\"\nhttp_expect_body = \"\"\n",
    );
    let hc = &ok(&text).virtual_servers[0].health_check;
    assert_eq!(hc.kind, HealthCheckKind::Tcp);
    assert_eq!(hc.tls.sni.as_deref(), Some("bad name!"));
    assert!(hc.tls.ca_certificates.is_empty(), "not read");
}

#[test]
fn a_reload_lists_each_changed_tls_key() {
    let old = ok(&vs_hc("type = \"https\"\n")).virtual_servers[0]
        .health_check
        .clone();
    let new = ok(&vs_hc(&format!(
        "type = \"https\"\nhttp_expect_body = \"ready\"\ntls_sni = \"www.example.test\"\n\
         tls_verify = true\ntls_ca_file = \"{}\"\ntls_expiry_warn_days = 7\n",
        ca_pem()
    )))
    .virtual_servers[0]
        .health_check
        .clone();
    assert_eq!(
        crate::control::health::setting_changes(&old, &new),
        [
            "health_check.http_expect_body none -> \"ready\"".to_string(),
            "health_check.tls_sni none -> \"www.example.test\"".into(),
            "health_check.tls_verify false -> true".into(),
            format!("health_check.tls_ca_file none -> {:?}", ca_pem()),
            "health_check.tls_expiry_warn_days 14 -> 7".into(),
        ]
    );
    let mut renewed = new.clone();
    renewed.tls.ca_certificates = vec![vec![0x30, 0x00]];
    assert_eq!(
        crate::control::health::setting_changes(&new, &renewed),
        [format!(
            "health_check.tls_ca_file {:?} (its certificates changed)",
            ca_pem()
        )]
    );
}

#[test]
fn the_shipped_nat_example_checks_its_https_service() {
    let config = ok(include_str!("../../../dpdk-config/nat.toml"));
    let shop = config
        .virtual_servers
        .iter()
        .find(|v| v.name == "shop")
        .unwrap();
    assert_eq!(shop.health_check.kind, HealthCheckKind::Https);
    assert_eq!(shop.health_check.http_expect_body.as_deref(), Some("ok"));
}
