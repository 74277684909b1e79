//! Changes of a service's active priority group between two snapshots,
//! for the log line and the counter each one gets.
//!
//! The group is chosen in the snapshot itself (`lb::priority`, applied by
//! `ServiceTable::with_server_state`); what only the control plane knows is
//! the previous snapshot and what made the new one (a health change, an
//! `rvsadm weight`, a reload), so the comparison and the wording live here.

use crate::lb::service::{ServiceId, ServiceTable};
use std::fmt;

/// One service whose active priority group changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupChange {
    /// The service's slot.
    pub vs: ServiceId,
    /// Its name.
    pub service: String,
    /// The active group before (`None`: no live server).
    pub from: Option<u8>,
    /// The active group now.
    pub to: Option<u8>,
    /// Why the group now is the one it is (`Selection::reason`).
    pub reason: String,
}

/// `0`, or `none` for no group.
fn group(g: Option<u8>) -> String {
    g.map_or_else(|| "none".to_string(), |p| p.to_string())
}

impl GroupChange {
    /// The log line, with what made the snapshot (`cause`):
    /// `service web: priority group 0 -> 1 (group 0 has 1 live of
    /// min_active 2; group 1 has 2 live of min_active 1: real server
    /// 10.1.0.11:8080 down)`.
    pub fn line(&self, cause: &str) -> String {
        format!("{self}: {cause})")
    }
}

/// Without its cause (`line` closes the parenthesis).
impl fmt::Display for GroupChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "service {}: priority group {} -> {} ({}",
            self.service,
            group(self.from),
            group(self.to),
            self.reason
        )
    }
}

/// The services of `old` whose active group differs in `new` (slots are
/// stable across reloads, so a service keeps its index; services new in
/// `new` had no group before and are not a change).
pub fn changes(old: &ServiceTable, new: &ServiceTable) -> Vec<GroupChange> {
    (0..old.len().min(new.len()))
        .filter_map(|i| {
            let vs = i as ServiceId;
            let (from, to) = (old.active_priority(vs), new.active_priority(vs));
            (from != to).then(|| GroupChange {
                vs,
                service: new.get(vs).name.clone(),
                from,
                to,
                reason: new
                    .priority_selection(vs)
                    .map(|s| s.reason())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::priority::GroupQuorum;
    use crate::lb::service::{
        ForwardMethod, Protocol, SchedulerKind, ServerState, ServiceKey, VirtualService,
    };
    use crate::lb::xmit::Endpoint;
    use std::net::Ipv4Addr;

    /// Three primaries (quorum 2) and two backups.
    fn table() -> ServiceTable {
        let key = ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
            protocol: Protocol::Tcp,
        };
        let rs = (0..5).map(|i| (Endpoint::new(Ipv4Addr::new(10, 1, 0, 11 + i), 8080), 1));
        let mut s = VirtualService::new("web", key, ForwardMethod::Nat, SchedulerKind::Rr, rs);
        for r in &mut s.real_servers[3..] {
            r.priority = 1;
        }
        s.priority_groups = vec![GroupQuorum {
            priority: 0,
            min_active: 2,
        }];
        ServiceTable::new(vec![s])
    }

    fn with_down(t: &ServiceTable, down: &[u16]) -> ServiceTable {
        t.clone().with_server_state(|_, r| ServerState {
            down: down.contains(&r),
            weight: None,
            ramp: None,
        })
    }

    #[test]
    fn a_snapshot_that_keeps_the_group_is_no_change() {
        let t = table();
        assert!(changes(&t, &with_down(&t, &[0])).is_empty());
    }

    #[test]
    fn a_group_falling_below_its_quorum_is_a_change_with_its_reason() {
        let t = table();
        let before = with_down(&t, &[0]);
        let after = with_down(&t, &[0, 1]);
        let c = changes(&before, &after);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].from, c[0].to), (Some(0), Some(1)));
        assert_eq!(
            c[0].line("real server 10.1.0.12:8080 down"),
            "service web: priority group 0 -> 1 (group 0 has 1 live of min_active 2; group 1 \
             has 2 live of min_active 1: real server 10.1.0.12:8080 down)"
        );
    }

    #[test]
    fn losing_every_server_is_a_change_to_none() {
        let t = table();
        let c = changes(&t, &with_down(&t, &[0, 1, 2, 3, 4]));
        assert_eq!(c[0].to, None);
        assert!(c[0]
            .line("x")
            .contains("priority group 0 -> none (no live real server"));
    }
}
