//! The admission limits of a `[[virtual_server]]` and the thresholds of a
//! `[[virtual_server.real_server]]` (`crate::lb::limits`), checked like
//! every other key: each problem reported with its field and line.

use super::{int_or, Array, Errors, RawRealServer, RawVirtualServer, S};
use crate::control::config::{RealServerConfig, VirtualServerConfig};
use crate::lb::acl::Acl;
use crate::lb::limits::{ClientLimit, Rate, ServiceLimits, Thresholds};
use crate::wire::Ipv4Cidr;

/// `allow`, `deny`, `new_conn_rate`, `new_conn_burst`,
/// `max_conns_per_client` and `client_prefix_len` of one virtual server
/// (`f` names a key of it).
pub(super) fn service_limits(
    t: &RawVirtualServer,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<ServiceLimits> {
    let allow = prefixes(t.allow.as_ref(), &f("allow"), errors);
    let deny = prefixes(t.deny.as_ref(), &f("deny"), errors);
    let max_rate = i64::from(VirtualServerConfig::MAX_NEW_CONN_RATE);
    let rate = int_or(
        t.new_conn_rate.as_ref(),
        &f("new_conn_rate"),
        0,
        max_rate,
        0,
        errors,
    );
    let burst = match (&t.new_conn_burst, rate) {
        (None, r) => r,
        (Some(v), Some(0)) => {
            errors.push(
                f("new_conn_burst"),
                Some(v.span()),
                "new_conn_burst needs new_conn_rate (a burst of what rate?)",
            );
            None
        }
        (Some(v), _) => super::int_in(v, &f("new_conn_burst"), 1, max_rate, errors),
    };
    let max_conns = int_or(
        t.max_conns_per_client.as_ref(),
        &f("max_conns_per_client"),
        0,
        i64::from(VirtualServerConfig::MAX_CONNS_PER_CLIENT),
        0,
        errors,
    );
    let prefix_len = match (&t.client_prefix_len, max_conns) {
        (None, _) => Some(i64::from(VirtualServerConfig::DEFAULT_CLIENT_PREFIX_LEN)),
        (Some(v), Some(0)) => {
            errors.push(
                f("client_prefix_len"),
                Some(v.span()),
                "client_prefix_len needs max_conns_per_client (it says how clients are grouped \
                 for that limit)",
            );
            None
        }
        (Some(v), _) => super::int_in(v, &f("client_prefix_len"), 0, 32, errors),
    };
    // The bounds above make every conversion fit.
    let (allow, deny, rate, burst, max_conns, prefix_len) =
        (allow?, deny?, rate?, burst?, max_conns?, prefix_len?);
    Some(ServiceLimits {
        acl: Acl::new(allow, deny),
        rate: (rate > 0).then(|| Rate {
            per_second: rate as u32,
            burst: burst.max(1) as u32,
        }),
        per_client: (max_conns > 0).then(|| ClientLimit {
            max_conns: max_conns as u32,
            prefix_len: prefix_len as u8,
        }),
    })
}

/// A list of client prefixes: network addresses (no host bits), at most
/// `MAX_ACL_PREFIXES`.
fn prefixes(
    value: Option<&S<Array<S<String>>>>,
    field: &str,
    errors: &mut Errors,
) -> Option<Vec<Ipv4Cidr>> {
    let Some(list) = value else {
        return Some(Vec::new());
    };
    let items = &list.get_ref().0;
    if items.len() > VirtualServerConfig::MAX_ACL_PREFIXES {
        errors.push(
            field,
            Some(list.span()),
            format!(
                "{} prefixes: at most {} are allowed",
                items.len(),
                VirtualServerConfig::MAX_ACL_PREFIXES
            ),
        );
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (k, item) in items.iter().enumerate() {
        let name = format!("{field}[{k}]");
        let text = item.get_ref();
        // A bare address is a /32.
        let parsed = if text.contains('/') {
            text.parse::<Ipv4Cidr>().map_err(|e| e.to_string())
        } else {
            text.parse()
                .ok()
                .and_then(|ip| Ipv4Cidr::new(ip, 32))
                .ok_or_else(|| {
                    format!("invalid client prefix {text:?}: expected like 198.51.100.0/24")
                })
        };
        match parsed {
            Ok(c) if c.is_network() => out.push(c),
            Ok(c) => {
                errors.push(
                    name,
                    Some(item.span()),
                    format!("{text} has host bits set: the prefix is {}", c.network()),
                );
                ok = false;
            }
            Err(e) => {
                errors.push(name, Some(item.span()), e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `upper_threshold` and `lower_threshold` of one real server (`f` names
/// a key of it).
pub(super) fn thresholds(
    t: &RawRealServer,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<Thresholds> {
    let max = i64::from(RealServerConfig::MAX_THRESHOLD);
    let upper = int_or(
        t.upper_threshold.as_ref(),
        &f("upper_threshold"),
        0,
        max,
        0,
        errors,
    );
    let lower = int_or(
        t.lower_threshold.as_ref(),
        &f("lower_threshold"),
        0,
        max,
        0,
        errors,
    );
    let (upper, lower) = (upper? as u32, lower? as u32);
    if lower > 0 {
        let span = t.lower_threshold.as_ref().map(S::span);
        if upper == 0 {
            errors.push(
                f("lower_threshold"),
                span,
                "lower_threshold needs upper_threshold (the server is never overloaded without \
                 one)",
            );
            return None;
        }
        if lower >= upper {
            errors.push(
                f("lower_threshold"),
                span,
                format!("{lower} must be below upper_threshold ({upper})"),
            );
            return None;
        }
    }
    Some(Thresholds { upper, lower })
}
