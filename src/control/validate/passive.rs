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
