//! The keys of the health-check kinds `udp`, `dns`, `icmp` and `script`,
//! and the `source_address` of every kind, checked like every other key:
//! each problem reported with its field and line. A key of another kind
//! than the check's `type` is checked the same way and kept unused (as
//! keepalived ignores other checkers' settings); only the keys a kind
//! cannot run without (`dns_name`, `script`) are required, and only by it.

use super::{ipv4, keyword_or, Errors, RawHealthCheck, S};
use crate::control::config::{DnsRcode, DnsType, HealthCheckConfig, HealthCheckKind};
use std::net::Ipv4Addr;
use std::ops::Range;

/// The checked values of those keys.
pub(super) struct KindSettings {
    pub source_address: Option<Ipv4Addr>,
    pub udp_payload: Vec<u8>,
    pub udp_expect: Option<Vec<u8>>,
    pub dns_name: String,
    pub dns_type: DnsType,
    pub dns_expect_rcode: DnsRcode,
    pub dns_expect_answer: bool,
    pub script: Vec<String>,
    pub script_dynamic_weight: bool,
}

/// The kind keys of one `[virtual_server.health_check]` (`f` names a key
/// of it, `table` is its span, `kind` its type when that parsed).
pub(super) fn kind_settings(
    t: &RawHealthCheck,
    f: &dyn Fn(&str) -> String,
    table: Range<usize>,
    kind: Option<HealthCheckKind>,
    errors: &mut Errors,
) -> Option<KindSettings> {
    let source_address = match &t.source_address {
        None => Some(None),
        Some(v) => source_address(v, &f("source_address"), errors).map(Some),
    };
    let udp_payload = match &t.udp_payload {
        None => Some(Vec::new()),
        Some(v) => bytes(v, &f("udp_payload"), 0, errors),
    };
    let udp_expect = match &t.udp_expect {
        None => Some(None),
        Some(v) => bytes(v, &f("udp_expect"), 1, errors).map(Some),
    };
    let dns_name = match &t.dns_name {
        None if kind == Some(HealthCheckKind::Dns) => {
            errors.push(
                f("dns_name"),
                Some(table.clone()),
                "missing required field: type = \"dns\" needs the name to ask for",
            );
            None
        }
        None => Some(String::new()),
        Some(v) => match dns_name_problem(v.get_ref()) {
            Some(problem) => {
                errors.push(f("dns_name"), Some(v.span()), problem);
                None
            }
            None => Some(v.get_ref().clone()),
        },
    };
    let dns_type = keyword_or(
        t.dns_type.as_ref(),
        &f("dns_type"),
        HealthCheckConfig::DEFAULT_DNS_TYPE,
        errors,
    );
    let dns_expect_rcode = keyword_or(
        t.dns_expect_rcode.as_ref(),
        &f("dns_expect_rcode"),
        DnsRcode::NOERROR,
        errors,
    );
    let dns_expect_answer = t
        .dns_expect_answer
        .as_ref()
        .map_or(HealthCheckConfig::DEFAULT_DNS_EXPECT_ANSWER, |v| {
            *v.get_ref()
        });
    let script = match &t.script {
        None if kind == Some(HealthCheckKind::Script) => {
            errors.push(
                f("script"),
                Some(table),
                "missing required field: type = \"script\" needs the command to run",
            );
            None
        }
        None => Some(Vec::new()),
        Some(v) => script(v, &f("script"), errors),
    };
    let script_dynamic_weight = t
        .script_dynamic_weight
        .as_ref()
        .is_some_and(|v| *v.get_ref());
    Some(KindSettings {
        source_address: source_address?,
        udp_payload: udp_payload?,
        udp_expect: udp_expect?,
        dns_name: dns_name?,
        dns_type: dns_type?,
        dns_expect_rcode: dns_expect_rcode?,
        dns_expect_answer,
        script: script?,
        script_dynamic_weight,
    })
}

/// A unicast IPv4 address probes can leave from.
fn source_address(v: &S<String>, field: &str, errors: &mut Errors) -> Option<Ipv4Addr> {
    let a = ipv4(v, field, errors)?;
    let problem = if a.is_unspecified() {
        Some("0.0.0.0 is not a source address (omit the key to let the kernel choose)")
    } else if a.is_multicast() {
        Some("a multicast address is not a source address")
    } else if a.is_broadcast() {
        Some("the broadcast address is not a source address")
    } else {
        None
    };
    match problem {
        Some(p) => {
            errors.push(field, Some(v.span()), format!("{a}: {p}"));
            None
        }
        None => Some(a),
    }
}

/// A byte string written with `\xNN` escapes, `min` to
/// `MAX_UDP_PAYLOAD` bytes long.
fn bytes(v: &S<String>, field: &str, min: usize, errors: &mut Errors) -> Option<Vec<u8>> {
    let max = HealthCheckConfig::MAX_UDP_PAYLOAD;
    let problem = match HealthCheckConfig::parse_bytes(v.get_ref()) {
        Err(e) => e,
        Ok(b) if b.len() < min => "must not be empty".to_string(),
        Ok(b) if b.len() > max => {
            format!("{} bytes, more than the {max} a datagram holds", b.len())
        }
        Ok(b) => return Some(b),
    };
    errors.push(field, Some(v.span()), problem);
    None
}

/// What is wrong with a DNS name, if anything: labels of 1 to 63
/// printable ASCII characters other than space, at most 253 in all; a
/// final dot optional, `"."` the root.
fn dns_name_problem(name: &str) -> Option<String> {
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.is_empty() {
        return (name != ".").then(|| "must not be empty (\".\" is the root)".to_string());
    }
    if body.len() > 253 {
        return Some(format!(
            "{name:?} is {} characters, more than 253",
            body.len()
        ));
    }
    for label in body.split('.') {
        if label.is_empty() {
            return Some(format!("{name:?} has an empty label (two dots in a row)"));
        }
        if label.len() > 63 {
            return Some(format!(
                "{name:?} has a label of {} characters, more than 63",
                label.len()
            ));
        }
        if let Some(c) = label.chars().find(|c| !c.is_ascii_graphic() || *c == '\\') {
            return Some(format!(
                "{name:?} contains {c:?}: labels are printable ASCII"
            ));
        }
    }
    None
}

/// A command as an argument vector: 1 to `MAX_SCRIPT_ARGS` words, the
/// first an absolute path, no NUL byte.
fn script(v: &S<super::Array<S<String>>>, field: &str, errors: &mut Errors) -> Option<Vec<String>> {
    let words = &v.get_ref().0;
    let max = HealthCheckConfig::MAX_SCRIPT_ARGS;
    let problem = if words.is_empty() {
        Some("must name a program: [\"/path/to/program\", \"arg\", ...]".to_string())
    } else if words.len() > max {
        Some(format!("{} words, more than {max}", words.len()))
    } else if !words[0].get_ref().starts_with('/') {
        Some(format!(
            "the program {:?} must be an absolute path (no PATH search; [\"/bin/sh\", \"-c\", \
             \"...\"] runs a shell line)",
            words[0].get_ref()
        ))
    } else {
        words
            .iter()
            .find(|w| w.get_ref().contains('\0'))
            .map(|w| format!("{:?} contains a NUL byte", w.get_ref()))
    };
    match problem {
        Some(p) => {
            errors.push(field, Some(v.span()), p);
            None
        }
        None => Some(words.iter().map(|w| w.get_ref().clone()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use crate::control::config::{DnsRcode, DnsType, HealthCheckConfig, HealthCheckKind};
    use crate::control::{Config, ConfigError, ConfigErrors};
    use std::net::Ipv4Addr;

    /// A file whose one virtual server `web` has a health check of `keys`.
    fn file(keys: &str) -> String {
        format!(
            "[dpdk]\nworkers = [1]\n[[interface]]\nname = \"ext\"\ndevice = \"net_null0\"\n\
             addresses = [\"10.0.0.1/24\"]\n[[virtual_server]]\nname = \"web\"\n\
             address = \"10.0.0.100:53\"\nprotocol = \"udp\"\nforward = \"nat\"\n\
             [virtual_server.health_check]\n{keys}"
        )
    }

    fn check(keys: &str) -> HealthCheckConfig {
        match Config::from_toml_str(&file(keys)) {
            Ok(c) => c.virtual_servers[0].health_check.clone(),
            Err(e) => panic!("{keys}: {e:?}"),
        }
    }

    /// The one error of `keys`.
    fn error(keys: &str) -> ConfigError {
        match Config::from_toml_str(&file(keys)) {
            Ok(_) => panic!("{keys}: accepted"),
            Err(ConfigErrors(mut e)) => {
                assert_eq!(e.len(), 1, "{e:#?}");
                e.remove(0)
            }
        }
    }

    fn assert_error(keys: &str, field: &str, contains: &str) {
        let e = error(keys);
        assert_eq!(
            e.field,
            format!("virtual_server[0].health_check.{field}"),
            "{e}"
        );
        assert!(e.message.contains(contains), "{e}: should say {contains:?}");
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn a_udp_check_reads_its_payload_and_expectation_with_escapes() {
        let c = check("type = \"udp\"\nudp_payload = 'ping\\x00\\\\'\nudp_expect = \"pong\"\n");
        assert_eq!(c.kind, HealthCheckKind::Udp);
        assert_eq!(c.udp_payload, b"ping\x00\\");
        assert_eq!(c.udp_expect.as_deref(), Some(&b"pong"[..]));
    }

    #[test]
    fn udp_defaults_are_an_empty_datagram_and_no_expectation() {
        let c = check("type = \"udp\"\n");
        assert!(c.udp_payload.is_empty());
        assert_eq!(c.udp_expect, None);
    }

    #[test]
    fn a_bad_escape_names_the_field() {
        assert_error("udp_payload = 'a\\q'\n", "udp_payload", "unknown escape");
        assert_error("udp_payload = 'a\\x4'\n", "udp_payload", "two hex digits");
        assert_error("udp_expect = ''\n", "udp_expect", "must not be empty");
        let long = "x".repeat(HealthCheckConfig::MAX_UDP_PAYLOAD + 1);
        assert_error(
            &format!("udp_payload = \"{long}\"\n"),
            "udp_payload",
            "1473 bytes",
        );
    }

    #[test]
    fn escapes_read_back_as_written() {
        let bytes = b"a\\b\x00\xff ~";
        let shown = HealthCheckConfig::show_bytes(bytes);
        assert_eq!(shown, "a\\\\b\\x00\\xff ~");
        assert_eq!(HealthCheckConfig::parse_bytes(&shown).unwrap(), bytes);
    }

    #[test]
    fn a_dns_check_reads_name_type_and_expectations() {
        let c = check(
            "type = \"dns\"\ndns_name = \"svc.test.\"\ndns_type = \"AAAA\"\n\
             dns_expect_rcode = \"NXDOMAIN\"\ndns_expect_answer = false\n",
        );
        assert_eq!(c.dns_name, "svc.test.");
        assert_eq!(c.dns_type, DnsType::Aaaa);
        assert_eq!(c.dns_expect_rcode, DnsRcode(3));
        assert!(!c.dns_expect_answer);
    }

    #[test]
    fn dns_defaults_are_a_noerror_a_query_with_an_answer() {
        let c = check("type = \"dns\"\ndns_name = \".\"\n");
        assert_eq!(c.dns_type, DnsType::A);
        assert_eq!(c.dns_expect_rcode, DnsRcode::NOERROR);
        assert!(c.dns_expect_answer);
    }

    #[test]
    fn a_dns_check_needs_a_name() {
        assert_error("type = \"dns\"\n", "dns_name", "missing required field");
    }

    #[test]
    fn bad_dns_settings_name_their_field() {
        assert_error("dns_name = \"a..b\"\n", "dns_name", "empty label");
        assert_error("dns_name = \"a b\"\n", "dns_name", "printable ASCII");
        let label = "x".repeat(64);
        assert_error(
            &format!("dns_name = \"{label}\"\n"),
            "dns_name",
            "more than 63",
        );
        assert_error(
            "dns_type = \"HINFO\"\n",
            "dns_type",
            "expected one of \"A\"",
        );
        assert_error(
            "dns_expect_rcode = \"OK\"\n",
            "dns_expect_rcode",
            "expected one of \"NOERROR\"",
        );
    }

    #[test]
    fn a_script_check_reads_its_argument_vector() {
        let c = check(
            "type = \"script\"\nscript = [\"/bin/sh\", \"-c\", \"exit 0\"]\n\
             script_dynamic_weight = true\n",
        );
        assert_eq!(c.script, ["/bin/sh", "-c", "exit 0"]);
        assert!(c.script_dynamic_weight);
    }

    #[test]
    fn a_script_check_needs_an_absolute_program() {
        assert_error("type = \"script\"\n", "script", "missing required field");
        assert_error("script = []\n", "script", "must name a program");
        assert_error("script = [\"check.sh\"]\n", "script", "absolute path");
    }

    #[test]
    fn the_source_address_is_a_unicast_ipv4_address() {
        let c = check("type = \"icmp\"\nsource_address = \"10.0.0.1\"\n");
        assert_eq!(c.source_address, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_error(
            "source_address = \"10.0.0\"\n",
            "source_address",
            "invalid IPv4",
        );
        assert_error(
            "source_address = \"0.0.0.0\"\n",
            "source_address",
            "not a source",
        );
        assert_error(
            "source_address = \"224.0.0.1\"\n",
            "source_address",
            "multicast",
        );
    }

    #[test]
    fn keys_of_other_kinds_are_accepted_and_kept_unused() {
        let c = check(
            "type = \"tcp\"\ndns_name = \"svc.test\"\nscript = [\"/bin/true\"]\n\
             udp_payload = \"x\"\n",
        );
        assert_eq!(c.kind, HealthCheckKind::Tcp);
        assert_eq!(c.script, ["/bin/true"]);
    }

    #[test]
    fn a_none_check_needs_none_of_them() {
        assert_eq!(check("type = \"none\"\n").kind, HealthCheckKind::None);
    }
}
