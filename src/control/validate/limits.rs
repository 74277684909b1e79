//! The admission limits of a `[[virtual_server]]` and the thresholds of a
//! `[[virtual_server.real_server]]` (`crate::lb::limits`), checked like
//! every other key: each problem reported with its field and line.

use super::{int_or, Array, Errors, RawRealServer, RawVirtualServer, S};
use crate::control::config::{RealServerConfig, VirtualServerConfig};
use crate::lb::acl::Acl;
use crate::lb::limits::{ClientLimit, Rate, ServiceLimits, Thresholds};
use crate::wire::{IpCidr, Ipv4Cidr, Ipv6Cidr};
use std::net::IpAddr;

/// `allow`, `deny`, `new_conn_rate`, `new_conn_burst`,
/// `max_conns_per_client` and `client_prefix_len` of one virtual server
/// (`f` names a key of it).
/// `ipv6`: the virtual server is IPv6, so its clients are.
pub(super) fn service_limits(
    t: &RawVirtualServer,
    ipv6: bool,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<ServiceLimits> {
    let allow = prefixes(t.allow.as_ref(), ipv6, &f("allow"), errors);
    let deny = prefixes(t.deny.as_ref(), ipv6, &f("deny"), errors);
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
        acl: Acl::new(allow.0, deny.0).with_ipv6(allow.1, deny.1),
        rate: (rate > 0).then_some(Rate {
            per_second: rate as u32,
            burst: burst.max(1) as u32,
        }),
        per_client: (max_conns > 0).then_some(ClientLimit {
            max_conns: max_conns as u32,
            prefix_len: prefix_len as u8,
        }),
    })
}

/// A list of client prefixes: network addresses (no host bits) of the
/// virtual server's family (`ipv6`), at most `MAX_ACL_PREFIXES`; its IPv4
/// and its IPv6 prefixes.
fn prefixes(
    value: Option<&S<Array<S<String>>>>,
    ipv6: bool,
    field: &str,
    errors: &mut Errors,
) -> Option<(Vec<Ipv4Cidr>, Vec<Ipv6Cidr>)> {
    let Some(list) = value else {
        return Some((Vec::new(), Vec::new()));
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
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut ok = true;
    for (k, item) in items.iter().enumerate() {
        let name = format!("{field}[{k}]");
        let text = item.get_ref();
        match client_prefix(text, ipv6) {
            Ok(IpCidr::V4(c)) => v4.push(c),
            Ok(IpCidr::V6(c)) => v6.push(c),
            Err(e) => {
                errors.push(name, Some(item.span()), e);
                ok = false;
            }
        }
    }
    ok.then_some((v4, v6))
}

/// One client prefix as written: `198.51.100.0/24`, `2001:db8::/32`, or a
/// bare address (a /32 or a /128), of the virtual server's family.
fn client_prefix(text: &str, ipv6: bool) -> Result<IpCidr, String> {
    let parsed = if text.contains('/') {
        text.parse::<IpCidr>().map_err(|e| e.to_string())?
    } else {
        match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => IpCidr::V4(Ipv4Cidr::new(ip, 32).expect("/32")),
            Ok(IpAddr::V6(ip)) => IpCidr::V6(Ipv6Cidr::new(ip, 128).expect("/128")),
            Err(_) => {
                return Err(format!(
                    "invalid client prefix {text:?}: expected like 198.51.100.0/24 or \
                     2001:db8::/32"
                ))
            }
        }
    };
    let (network, is_network, is_v6) = match parsed {
        IpCidr::V4(c) => (c.network().to_string(), c.is_network(), false),
        IpCidr::V6(c) => (c.network().to_string(), c.is_network(), true),
    };
    if !is_network {
        return Err(format!("{text} has host bits set: the prefix is {network}"));
    }
    if is_v6 != ipv6 {
        let family = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
        return Err(format!(
            "{text} is an {} prefix but the virtual server is {}: its clients are {}",
            family(is_v6),
            family(ipv6),
            family(ipv6)
        ));
    }
    Ok(parsed)
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

#[cfg(test)]
mod tests {
    use super::super::testing::{the_error, HEAD};
    use crate::control::config::Config;
    use crate::lb::limits::{ClientLimit, Rate, Thresholds};
    use std::net::Ipv4Addr;

    /// A file whose virtual server has `vs` and whose one real server has
    /// `rs`.
    fn file(vs: &str, rs: &str) -> String {
        format!("{HEAD}{vs}\n[[virtual_server.real_server]]\naddress = \"10.0.0.11:8080\"\n{rs}\n")
    }

    #[test]
    fn limits_are_off_by_default() {
        let c = Config::from_toml_str(&file("", "")).unwrap();
        let vs = &c.virtual_servers[0];
        assert!(vs.limits.acl.is_empty());
        assert_eq!(vs.limits.rate, None);
        assert_eq!(vs.limits.per_client, None);
        assert_eq!(vs.real_servers[0].thresholds, Thresholds::NONE);
    }

    #[test]
    fn every_limit_is_read() {
        let c = Config::from_toml_str(&file(
            "allow = [\"198.51.100.0/24\", \"203.0.113.9\"]\ndeny = [\"198.51.100.128/25\"]\n\
             new_conn_rate = 100\nnew_conn_burst = 20\nmax_conns_per_client = 8\n\
             client_prefix_len = 24\n",
            "upper_threshold = 100\nlower_threshold = 50\n",
        ))
        .unwrap();
        let vs = &c.virtual_servers[0];
        assert_eq!(vs.limits.acl.allow().len(), 2);
        assert!(vs.limits.acl.allows(Ipv4Addr::new(203, 0, 113, 9)));
        assert!(!vs.limits.acl.allows(Ipv4Addr::new(198, 51, 100, 200)));
        assert_eq!(
            vs.limits.rate,
            Some(Rate {
                per_second: 100,
                burst: 20
            })
        );
        assert_eq!(
            vs.limits.per_client,
            Some(ClientLimit {
                max_conns: 8,
                prefix_len: 24
            })
        );
        assert_eq!(
            vs.real_servers[0].thresholds,
            Thresholds {
                upper: 100,
                lower: 50
            }
        );
    }

    #[test]
    fn the_burst_defaults_to_one_second_of_the_rate() {
        let c = Config::from_toml_str(&file("new_conn_rate = 40\n", "")).unwrap();
        assert_eq!(c.virtual_servers[0].limits.rate.unwrap().burst, 40);
    }

    #[test]
    fn a_prefix_with_host_bits_is_refused_with_its_network() {
        let (field, message) = the_error(&file("deny = [\"198.51.100.7/24\"]\n", ""));
        assert_eq!(field, "virtual_server[0].deny[0]");
        assert!(message.contains("198.51.100.0/24"), "{message}");
    }

    /// [`file`] with the virtual server on an IPv6 VIP and real server.
    fn file6(vs: &str) -> String {
        file(vs, "")
            .replace("10.0.0.100:80", "[2001:db8::100]:80")
            .replace("10.0.0.11:8080", "[2001:db8:2::11]:8080")
    }

    #[test]
    fn ipv6_prefixes_are_read_for_an_ipv6_virtual_server() {
        let c = Config::from_toml_str(&file6(
            "allow = [\"2001:db8:1::/48\", \"2001:db8:9::7\"]\ndeny = [\"2001:db8:1:5::/64\"]\n",
        ))
        .unwrap();
        let acl = &c.virtual_servers[0].limits.acl;
        assert_eq!((acl.allow6().len(), acl.deny6().len()), (2, 1));
        assert!(acl.allows_ipv6("2001:db8:1:4::1".parse().unwrap()));
        assert!(!acl.allows_ipv6("2001:db8:1:5::1".parse().unwrap()));
        assert!(acl.allows_ipv6("2001:db8:9::7".parse().unwrap()));
        assert!(!acl.allows_ipv6("2001:db8:9::8".parse().unwrap()));
    }

    #[test]
    fn a_prefix_of_the_other_family_is_refused_naming_it() {
        let (field, message) = the_error(&file("deny = [\"2001:db8::/32\"]\n", ""));
        assert_eq!(field, "virtual_server[0].deny[0]");
        assert!(message.contains("the virtual server is IPv4"), "{message}");
        let (field, message) = the_error(&file6("allow = [\"2001:db8::/32\", \"10.0.0.0/8\"]\n"));
        assert_eq!(field, "virtual_server[0].allow[1]");
        assert!(message.contains("the virtual server is IPv6"), "{message}");
    }

    #[test]
    fn an_ipv6_prefix_with_host_bits_is_refused_with_its_network() {
        let (field, message) = the_error(&file6("deny = [\"2001:db8::1/64\"]\n"));
        assert_eq!(field, "virtual_server[0].deny[0]");
        assert!(message.contains("2001:db8::/64"), "{message}");
    }

    #[test]
    fn a_prefix_that_does_not_parse_is_refused() {
        let (field, _) = the_error(&file("allow = [\"10.0.0.0/8\", \"nope\"]\n", ""));
        assert_eq!(field, "virtual_server[0].allow[1]");
    }

    #[test]
    fn a_burst_without_a_rate_is_refused() {
        let (field, message) = the_error(&file("new_conn_burst = 5\n", ""));
        assert_eq!(field, "virtual_server[0].new_conn_burst");
        assert!(message.contains("new_conn_rate"), "{message}");
    }

    #[test]
    fn a_negative_rate_is_out_of_range() {
        let (field, message) = the_error(&file("new_conn_rate = -1\n", ""));
        assert_eq!(field, "virtual_server[0].new_conn_rate");
        assert!(message.contains("out of range"), "{message}");
    }

    #[test]
    fn a_client_prefix_length_without_a_limit_or_over_32_is_refused() {
        let (field, _) = the_error(&file("client_prefix_len = 24\n", ""));
        assert_eq!(field, "virtual_server[0].client_prefix_len");
        let (field, message) = the_error(&file(
            "max_conns_per_client = 4\nclient_prefix_len = 33\n",
            "",
        ));
        assert_eq!(field, "virtual_server[0].client_prefix_len");
        assert!(message.contains("0 to 32"), "{message}");
    }

    #[test]
    fn a_lower_threshold_needs_an_upper_one_above_it() {
        let (field, message) = the_error(&file("", "lower_threshold = 5\n"));
        assert_eq!(field, "virtual_server[0].real_server[0].lower_threshold");
        assert!(message.contains("needs upper_threshold"), "{message}");
        let (field, message) = the_error(&file("", "upper_threshold = 5\nlower_threshold = 5\n"));
        assert_eq!(field, "virtual_server[0].real_server[0].lower_threshold");
        assert!(message.contains("below upper_threshold (5)"), "{message}");
    }

    #[test]
    fn a_threshold_above_ipvs_range_is_refused() {
        let (field, message) = the_error(&file("", "upper_threshold = 65536\n"));
        assert_eq!(field, "virtual_server[0].real_server[0].upper_threshold");
        assert!(message.contains("0 to 65535"), "{message}");
    }
}
