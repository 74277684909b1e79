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
        None => Some(Duration::from_secs(VirtualServerConfig::DEFAULT_SLOW_START_S)),
        Some(v) => seconds(v, &f("slow_start_s"), errors),
    };
    let mut ok = scheduler_allows(t.slow_start_s.as_ref(), scheduler, &f("slow_start_s"), errors);
    for (j, rs) in t.real_server.0.iter().enumerate() {
        let field = format!("{}[{j}].slow_start_s", f("real_server"));
        ok &= scheduler_allows(rs.get_ref().slow_start_s.as_ref(), scheduler, &field, errors);
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
        format!(
            "slow_start_s needs a scheduler that reads weights (wrr, lc, wlc, sed, nq): {why}"
        ),
    );
    false
}
