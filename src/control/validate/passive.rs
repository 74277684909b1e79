//! `[virtual_server.passive_check]` (`control::passive`), checked like
//! every other key: each problem reported with its field and line.

use super::{int_or, Errors, S};
use crate::control::config::{ForwardMethod, HealthCheckKind, PassiveCheckConfig, Protocol};
use crate::control::raw::RawPassiveCheck;
use std::time::Duration;

/// The passive check of one virtual server (`base` is its field path),
/// the defaults for what is omitted. Turned on, it needs a TCP service
/// forwarded by NAT (the balancer must see the server's SYN-ACK or reset)
/// and an active check (which is what brings a server back).
pub(super) fn passive_check(
    raw: Option<&S<RawPassiveCheck>>,
    base: &str,
    forward: Option<ForwardMethod>,
    protocol: Option<Protocol>,
    check: Option<HealthCheckKind>,
    errors: &mut Errors,
) -> Option<PassiveCheckConfig> {
    let Some(raw) = raw else {
        return Some(PassiveCheckConfig::default());
    };
    let t = raw.get_ref();
    let f = |key: &str| format!("{base}.{key}");
    let d = PassiveCheckConfig::default();
    let int = |v: &Option<S<_>>, key: &str, max: i64, default: i64, errors: &mut Errors| {
        int_or(v.as_ref(), &f(key), 1, max, default, errors)
    };
    // The bounds are u32 or smaller, so the values fit (checked).
    let window = int(
        &t.window_s,
        "window_s",
        PassiveCheckConfig::MAX_WINDOW_S as i64,
        PassiveCheckConfig::DEFAULT_WINDOW_S as i64,
        errors,
    )
    .map(|s| Duration::from_secs(s as u64));
    let min_attempts = int(
        &t.min_attempts,
        "min_attempts",
        i64::from(PassiveCheckConfig::MAX_MIN_ATTEMPTS),
        i64::from(d.min_attempts),
        errors,
    )
    .map(|n| n as u32);
    let max_failure_percent = int(
        &t.max_failure_percent,
        "max_failure_percent",
        100,
        i64::from(d.max_failure_percent),
        errors,
    )
    .map(|n| n as u32);
    let syn_timeout_ms = int(
        &t.syn_timeout_ms,
        "syn_timeout_ms",
        i64::from(PassiveCheckConfig::MAX_SYN_TIMEOUT_MS),
        i64::from(d.syn_timeout_ms),
        errors,
    )
    .map(|n| n as u32);
    let enabled = match &t.enabled {
        Some(v) if *v.get_ref() => {
            let why = refusal(forward, protocol, check);
            if let Some(why) = &why {
                errors.push(f("enabled"), Some(v.span()), why.clone());
            }
            why.is_none().then_some(true)
        }
        _ => Some(PassiveCheckConfig::DEFAULT_ENABLED),
    };
    Some(PassiveCheckConfig {
        enabled: enabled?,
        window: window?,
        min_attempts: min_attempts?,
        max_failure_percent: max_failure_percent?,
        syn_timeout_ms: syn_timeout_ms?,
    })
}

/// Why a passive check cannot be turned on for this service, if it
/// cannot.
fn refusal(
    forward: Option<ForwardMethod>,
    protocol: Option<Protocol>,
    check: Option<HealthCheckKind>,
) -> Option<String> {
    if protocol == Some(Protocol::Udp) {
        return Some(
            "a passive check counts TCP handshakes; a UDP service has none to count".into(),
        );
    }
    if let Some(f @ (ForwardMethod::Dr | ForwardMethod::Tun)) = forward {
        return Some(format!(
            "a passive check needs forward = \"nat\", not \"{f}\": it judges a server by its \
             SYN-ACKs and resets, and {f} replies bypass the balancer"
        ));
    }
    if check == Some(HealthCheckKind::None) {
        return Some(
            "a passive check needs an active check (health_check.type other than \"none\"): \
             the active check is what brings a server back after the passive check took it out"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::control::{Config, ConfigError, PassiveCheckConfig};
    use std::time::Duration;

    const BASE: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n\
        [[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\n\
        addresses = [\"10.0.0.1/24\"]\n\
        [[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\n";

    /// A virtual server with `settings` (keys of the service, then
    /// `[virtual_server.passive_check]` with `passive`).
    fn file(settings: &str, passive: &str) -> String {
        format!("{BASE}{settings}\n[virtual_server.passive_check]\n{passive}\n")
    }

    fn passive(text: &str) -> PassiveCheckConfig {
        Config::from_toml_str(text)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .virtual_servers[0]
            .passive_check
            .clone()
    }

    fn one_error(text: &str) -> ConfigError {
        let mut e = Config::from_toml_str(text).expect_err("refused").0;
        assert_eq!(e.len(), 1, "{e:#?}");
        e.remove(0)
    }

    #[test]
    fn without_the_table_the_passive_check_is_off_with_the_defaults() {
        let c = passive(&format!("{BASE}forward = \"nat\"\n"));
        assert_eq!(c, PassiveCheckConfig::default());
        assert!(!c.enabled);
        assert_eq!(c.window, Duration::from_secs(10));
        assert_eq!((c.min_attempts, c.max_failure_percent), (20, 50));
        assert_eq!(c.syn_timeout_ms, 1000);
    }

    #[test]
    fn every_key_is_read() {
        let c = passive(&file(
            "forward = \"nat\"",
            "enabled = true\nwindow_s = 5\nmin_attempts = 8\nmax_failure_percent = 75\n\
             syn_timeout_ms = 1500",
        ));
        assert_eq!(
            c,
            PassiveCheckConfig {
                enabled: true,
                window: Duration::from_secs(5),
                min_attempts: 8,
                max_failure_percent: 75,
                syn_timeout_ms: 1500,
            }
        );
    }

    #[test]
    fn a_passive_check_on_a_dr_or_tun_service_is_refused_saying_why() {
        for forward in ["dr", "tun"] {
            let e = one_error(&file(&format!("forward = \"{forward}\""), "enabled = true"));
            assert_eq!(e.field, "virtual_server[0].passive_check.enabled");
            assert!(
                e.message.contains("needs forward = \"nat\""),
                "{}",
                e.message
            );
            assert!(e.message.contains("bypass the balancer"), "{}", e.message);
        }
    }

    #[test]
    fn a_passive_check_off_is_accepted_on_a_dr_service() {
        let text = file("forward = \"dr\"", "enabled = false");
        assert!(!passive(&text).enabled);
    }

    #[test]
    fn a_passive_check_without_an_active_check_is_refused() {
        let text = format!(
            "{BASE}forward = \"nat\"\n[virtual_server.health_check]\ntype = \"none\"\n\
             [virtual_server.passive_check]\nenabled = true\n"
        );
        let e = one_error(&text);
        assert_eq!(e.field, "virtual_server[0].passive_check.enabled");
        assert!(e.message.contains("needs an active check"), "{}", e.message);
    }

    #[test]
    fn a_passive_check_on_a_udp_service_is_refused() {
        let e = one_error(&file(
            "forward = \"nat\"\nprotocol = \"udp\"\n[virtual_server.health_check]\ntype = \"tcp\"",
            "enabled = true",
        ));
        assert_eq!(e.field, "virtual_server[0].passive_check.enabled");
        assert!(e.message.contains("UDP"), "{}", e.message);
    }

    #[test]
    fn out_of_range_values_are_refused_by_field() {
        for (key, value) in [
            ("window_s", "0"),
            ("window_s", "3601"),
            ("min_attempts", "0"),
            ("max_failure_percent", "101"),
            ("syn_timeout_ms", "0"),
            ("syn_timeout_ms", "60001"),
        ] {
            let e = one_error(&file("forward = \"nat\"", &format!("{key} = {value}")));
            assert_eq!(e.field, format!("virtual_server[0].passive_check.{key}"));
            assert!(e.message.contains("out of range"), "{}", e.message);
        }
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let e = one_error(&file("forward = \"nat\"", "treshold = 3"));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }
}
