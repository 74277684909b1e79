//! `slow_start_s` of a `[[virtual_server]]` and of its real servers
//! (`crate::lb::slow_start`): a bounded number of seconds, and only with a
//! scheduler that reads weights, since the ramp is a weight.

use super::{int_in, Errors, Int, RawRealServer, RawVirtualServer, S};
use crate::control::config::{SchedulerKind, VirtualServerConfig};
use std::time::Duration;

/// `slow_start_s` of one virtual server (`f` names a key of it), with the
/// scheduler rule checked for it and for every real server's own.
pub(super) fn service(
    t: &RawVirtualServer,
    scheduler: Option<SchedulerKind>,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<Duration> {
    let secs = match &t.slow_start_s {
        None => Some(Duration::from_secs(
            VirtualServerConfig::DEFAULT_SLOW_START_S,
        )),
        Some(v) => seconds(v, &f("slow_start_s"), errors),
    };
    let mut ok = scheduler_allows(
        t.slow_start_s.as_ref(),
        scheduler,
        &f("slow_start_s"),
        errors,
    );
    for (j, rs) in t.real_server.0.iter().enumerate() {
        let field = format!("{}[{j}].slow_start_s", f("real_server"));
        ok &= scheduler_allows(
            rs.get_ref().slow_start_s.as_ref(),
            scheduler,
            &field,
            errors,
        );
    }
    secs.filter(|_| ok)
}

/// A real server's own `slow_start_s` (`f` names a key of it): `Some(None)`
/// when it has none.
pub(super) fn real_server(
    t: &RawRealServer,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<Option<Duration>> {
    match &t.slow_start_s {
        None => Some(None),
        Some(v) => seconds(v, &f("slow_start_s"), errors).map(Some),
    }
}

fn seconds(v: &S<Int>, field: &str, errors: &mut Errors) -> Option<Duration> {
    let max = VirtualServerConfig::MAX_SLOW_START_S as i64;
    int_in(v, field, 0, max, errors).map(|s| Duration::from_secs(s as u64))
}

/// False (and the reason reported) when a non-zero `v` meets a scheduler
/// that does not schedule by weight.
fn scheduler_allows(
    v: Option<&S<Int>>,
    scheduler: Option<SchedulerKind>,
    field: &str,
    errors: &mut Errors,
) -> bool {
    let Some(v) = v.filter(|v| v.get_ref().0 > 0) else {
        return true;
    };
    let why = match scheduler {
        Some(SchedulerKind::Rr) => {
            "rr gives every live server the same share whatever its weight, so a ramp of the \
             weight changes nothing: use wrr"
        }
        Some(SchedulerKind::Sh | SchedulerKind::Mh) => {
            "sh and mh map clients through a table built from the configured weights, which a \
             ramp would have to rebuild (moving clients between servers) at every step"
        }
        _ => return true,
    };
    errors.push(
        field,
        Some(v.span()),
        format!("slow_start_s needs a scheduler that reads weights (wrr, lc, wlc, sed, nq): {why}"),
    );
    false
}

#[cfg(test)]
mod tests {
    use super::super::testing::{the_error, HEAD};
    use crate::control::config::{Config, VirtualServerConfig};
    use std::time::Duration;

    /// A file whose virtual server has `vs` and whose two real servers
    /// have `rs` (the first) and nothing (the second).
    fn file(vs: &str, rs: &str) -> String {
        format!(
            "{HEAD}{vs}\n[[virtual_server.real_server]]\naddress = \"10.0.0.11:8080\"\n{rs}\n\
             [[virtual_server.real_server]]\naddress = \"10.0.0.12:8080\"\n"
        )
    }

    #[test]
    fn slow_start_is_off_by_default() {
        let c = Config::from_toml_str(&file("", "")).unwrap();
        let vs = &c.virtual_servers[0];
        assert_eq!(vs.slow_start, Duration::ZERO);
        assert_eq!(vs.real_servers[0].slow_start, None);
        const { assert!(VirtualServerConfig::DEFAULT_SLOW_START_S == 0) };
    }

    #[test]
    fn slow_start_is_read_for_the_service_and_a_real_server() {
        let c = Config::from_toml_str(&file("slow_start_s = 30\n", "slow_start_s = 0\n")).unwrap();
        let vs = &c.virtual_servers[0];
        assert_eq!(vs.slow_start, Duration::from_secs(30));
        assert_eq!(vs.real_servers[0].slow_start, Some(Duration::ZERO));
        assert_eq!(vs.real_servers[1].slow_start, None);
    }

    #[test]
    fn slow_start_is_bounded_to_an_hour() {
        let (field, message) = the_error(&file("slow_start_s = 3601\n", ""));
        assert_eq!(field, "virtual_server[0].slow_start_s");
        assert!(message.contains("3600"), "{message}");
        let (field, _) = the_error(&file("", "slow_start_s = -1\n"));
        assert_eq!(field, "virtual_server[0].real_server[0].slow_start_s");
        assert!(Config::from_toml_str(&file("slow_start_s = 3600\n", "")).is_ok());
    }

    #[test]
    fn slow_start_is_refused_with_schedulers_that_ignore_weights() {
        for scheduler in ["rr", "sh", "mh"] {
            let vs = format!("scheduler = \"{scheduler}\"\nslow_start_s = 10\n");
            let (field, message) = the_error(&file(&vs, ""));
            assert_eq!(field, "virtual_server[0].slow_start_s");
            assert!(message.contains("reads weights"), "{message}");
            let vs = format!("scheduler = \"{scheduler}\"\n");
            let (field, _) = the_error(&file(&vs, "slow_start_s = 10\n"));
            assert_eq!(field, "virtual_server[0].real_server[0].slow_start_s");
        }
    }

    #[test]
    fn slow_start_zero_is_accepted_with_any_scheduler() {
        let text = file(
            "scheduler = \"rr\"\nslow_start_s = 0\n",
            "slow_start_s = 0\n",
        );
        assert!(Config::from_toml_str(&text).is_ok());
    }

    #[test]
    fn slow_start_is_accepted_with_schedulers_that_read_weights() {
        for scheduler in ["wrr", "lc", "wlc", "sed", "nq"] {
            let vs = format!("scheduler = \"{scheduler}\"\nslow_start_s = 10\n");
            assert!(Config::from_toml_str(&file(&vs, "")).is_ok(), "{scheduler}");
        }
    }
}
