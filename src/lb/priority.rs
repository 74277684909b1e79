//! Priority groups: which real servers of a service take new connections.
//!
//! Every real server has a priority (0 is the best, as Envoy's priority
//! levels; HAProxy's `backup` servers are priority 1). Servers of one
//! priority form a group, and a group may ask for a quorum: `min_active`
//! live servers before it takes new connections (keepalived's quorum; 1
//! when not set). The active group is the best one that meets its quorum;
//! when none does, the best group with any live server serves, degraded
//! service being better than the sorry server; with no live server at all
//! there is none, and the sorry server (if any) takes the new connections.
//!
//! Servers outside the active group keep their connections: they are not
//! down, they only get no new ones (`ServiceTable` gives them effective
//! weight 0). That is why the choice is made here, on the control side,
//! once per snapshot, and workers never see priorities at all.

use std::fmt;

/// The priority of a real server that does not say (the primary group).
pub const DEFAULT_PRIORITY: u8 = 0;
/// The priority `backup = true` stands for (HAProxy's backup servers).
pub const BACKUP_PRIORITY: u8 = 1;
/// The quorum of a group no `[[virtual_server.priority_group]]` names.
pub const DEFAULT_MIN_ACTIVE: u32 = 1;

/// The quorum of one priority group of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupQuorum {
    /// The group's priority.
    pub priority: u8,
    /// Live servers the group needs to take new connections (at least 1).
    pub min_active: u32,
}

/// The quorum of `priority` among `quorums` (the default when not listed).
pub fn min_active(quorums: &[GroupQuorum], priority: u8) -> u32 {
    quorums
        .iter()
        .find(|q| q.priority == priority)
        .map_or(DEFAULT_MIN_ACTIVE, |q| q.min_active.max(1))
}

/// One group as the selection counted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupTally {
    /// The group's priority.
    pub priority: u8,
    /// Its live servers (not down, not draining, weight above 0).
    pub live: u32,
    /// Its servers, live or not.
    pub total: u32,
    /// The quorum it needs.
    pub min_active: u32,
}

impl GroupTally {
    /// True when the group has its quorum.
    pub fn has_quorum(&self) -> bool {
        self.live >= self.min_active
    }
}

impl fmt::Display for GroupTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {} has {} live of min_active {}",
            self.priority, self.live, self.min_active
        )
    }
}

/// Why the active group is the one it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The best group that meets its quorum.
    Quorum,
    /// No group meets its quorum: the best group with a live server.
    Degraded,
    /// No live server in any group.
    NoLiveServer,
}

/// The outcome for one service: the active group and the count behind it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// The group taking new connections; `None` when no server is live.
    pub active: Option<u8>,
    /// Every group with at least one server, best first.
    pub groups: Vec<GroupTally>,
}

impl Selection {
    /// Why `active` is what it is.
    pub fn why(&self) -> Why {
        match self.active {
            None => Why::NoLiveServer,
            Some(p) if self.tally(p).is_some_and(|g| g.has_quorum()) => Why::Quorum,
            Some(_) => Why::Degraded,
        }
    }

    /// The tally of group `priority`, if any server has it.
    pub fn tally(&self, priority: u8) -> Option<&GroupTally> {
        self.groups.iter().find(|g| g.priority == priority)
    }

    /// True when the service has more than one group (only then is a
    /// priority worth showing).
    pub fn is_grouped(&self) -> bool {
        self.groups.len() > 1
    }

    /// The reason, for people: the groups that decided it.
    /// `group 0 has 1 live of min_active 2; group 1 has 2 live of min_active 1`.
    pub fn reason(&self) -> String {
        let shown: Vec<String> = match (self.why(), self.active) {
            // The better groups that fell short, then the active one.
            (Why::Quorum, Some(p)) => self
                .groups
                .iter()
                .take_while(|g| g.priority <= p)
                .map(ToString::to_string)
                .collect(),
            (Why::Degraded, _) => {
                let mut v = vec!["no group meets its min_active".to_string()];
                v.extend(self.groups.iter().map(ToString::to_string));
                v
            }
            _ => vec!["no live real server".to_string()],
        };
        shown.join("; ")
    }
}

/// Chooses the active group of one service's real servers, given as
/// (priority, live) pairs, with the groups' `quorums`.
pub fn select(servers: impl IntoIterator<Item = (u8, bool)>, quorums: &[GroupQuorum]) -> Selection {
    let mut groups: Vec<GroupTally> = Vec::new();
    for (priority, live) in servers {
        let i = match groups.binary_search_by_key(&priority, |g| g.priority) {
            Ok(i) => i,
            Err(i) => {
                groups.insert(
                    i,
                    GroupTally {
                        priority,
                        live: 0,
                        total: 0,
                        min_active: min_active(quorums, priority),
                    },
                );
                i
            }
        };
        groups[i].total += 1;
        groups[i].live += u32::from(live);
    }
    let active = groups
        .iter()
        .find(|g| g.has_quorum())
        .or_else(|| groups.iter().find(|g| g.live > 0))
        .map(|g| g.priority);
    Selection { active, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum(priority: u8, min_active: u32) -> GroupQuorum {
        GroupQuorum {
            priority,
            min_active,
        }
    }

    /// Three primaries and two backups, `up` saying which are live.
    fn three_and_two(up: [bool; 5]) -> Vec<(u8, bool)> {
        [0, 0, 0, 1, 1].into_iter().zip(up).collect()
    }

    #[test]
    fn servers_without_priorities_form_one_group_that_is_active_while_one_lives() {
        let s = select([(0, true), (0, false)], &[]);
        assert_eq!(s.active, Some(0));
        assert_eq!(s.why(), Why::Quorum);
        assert!(!s.is_grouped());
    }

    #[test]
    fn the_best_group_meeting_its_quorum_is_active() {
        let s = select(three_and_two([true; 5]), &[quorum(0, 2)]);
        assert_eq!(s.active, Some(0));
        assert_eq!(s.reason(), "group 0 has 3 live of min_active 2");
    }

    #[test]
    fn a_group_at_its_quorum_stays_active() {
        let s = select(
            three_and_two([true, true, false, true, true]),
            &[quorum(0, 2)],
        );
        assert_eq!(s.active, Some(0));
    }

    #[test]
    fn a_group_below_its_quorum_gives_way_to_the_next() {
        let s = select(
            three_and_two([true, false, false, true, true]),
            &[quorum(0, 2)],
        );
        assert_eq!(s.active, Some(1));
        assert_eq!(s.why(), Why::Quorum);
        assert_eq!(
            s.reason(),
            "group 0 has 1 live of min_active 2; group 1 has 2 live of min_active 1"
        );
    }

    #[test]
    fn without_any_quorum_the_best_group_with_a_live_server_serves_degraded() {
        let s = select(
            three_and_two([true, false, false, true, false]),
            &[quorum(0, 2), quorum(1, 2)],
        );
        assert_eq!(s.active, Some(0));
        assert_eq!(s.why(), Why::Degraded);
        assert!(s.reason().starts_with("no group meets its min_active"));
    }

    #[test]
    fn degraded_service_skips_groups_without_a_live_server() {
        let s = select(
            three_and_two([false, false, false, true, false]),
            &[quorum(1, 2)],
        );
        assert_eq!(s.active, Some(1));
        assert_eq!(s.why(), Why::Degraded);
    }

    #[test]
    fn no_live_server_means_no_active_group() {
        let s = select(three_and_two([false; 5]), &[quorum(0, 2)]);
        assert_eq!(s.active, None);
        assert_eq!(s.why(), Why::NoLiveServer);
        assert_eq!(s.reason(), "no live real server");
    }

    #[test]
    fn no_server_at_all_means_no_active_group() {
        let s = select([], &[]);
        assert_eq!(s.active, None);
        assert!(s.groups.is_empty());
    }

    #[test]
    fn priorities_need_not_be_contiguous_and_lower_is_better() {
        let s = select([(7, true), (3, true), (200, true)], &[]);
        assert_eq!(s.active, Some(3));
        let order: Vec<u8> = s.groups.iter().map(|g| g.priority).collect();
        assert_eq!(order, [3, 7, 200]);
    }

    #[test]
    fn quorums_of_groups_no_server_has_change_nothing() {
        let s = select([(0, true)], &[quorum(5, 3)]);
        assert_eq!(s.active, Some(0));
        assert_eq!(s.groups.len(), 1);
    }

    #[test]
    fn a_zero_quorum_counts_as_one() {
        assert_eq!(min_active(&[quorum(0, 0)], 0), 1);
        let s = select([(0, false), (1, true)], &[quorum(0, 0)]);
        assert_eq!(s.active, Some(1));
    }
}
