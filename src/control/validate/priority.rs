//! The priority of a `[[virtual_server.real_server]]` (`priority`, or its
//! HAProxy shorthand `backup`) and the `[[virtual_server.priority_group]]`
//! quorums of a virtual server (`crate::lb::priority`), each problem
//! reported with its field and line.

use super::{int_in, required, Array, Errors, RawRealServer, S};
use crate::control::config::{RealServerConfig, VirtualServerConfig};
use crate::control::raw::RawPriorityGroup;
use crate::lb::priority::{GroupQuorum, BACKUP_PRIORITY, DEFAULT_PRIORITY};
use std::collections::HashMap;

/// `priority` or `backup` of one real server (`f` names a key of it).
pub(super) fn server_priority(
    t: &RawRealServer,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<u8> {
    match (&t.priority, &t.backup) {
        (Some(_), Some(b)) => {
            errors.push(
                f("backup"),
                Some(b.span()),
                "give either priority or backup, not both (backup = true is priority 1)",
            );
            None
        }
        (Some(p), None) => {
            int_in(p, &f("priority"), 0, i64::from(u8::MAX), errors).map(|p| p as u8)
        }
        (None, Some(b)) if *b.get_ref() => Some(BACKUP_PRIORITY),
        (None, _) => Some(DEFAULT_PRIORITY),
    }
}

/// `[[virtual_server.priority_group]]` of one virtual server (`base` is its
/// field path), given its real servers when they all converted (without
/// them, the checks against their priorities are skipped).
pub(super) fn priority_groups(
    raw: &Array<S<RawPriorityGroup>>,
    base: &str,
    servers: Option<&[RealServerConfig]>,
    errors: &mut Errors,
) -> Option<Vec<GroupQuorum>> {
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: HashMap<u8, usize> = HashMap::new();
    let max = VirtualServerConfig::MAX_REAL_SERVERS as i64;
    for (j, table) in raw.0.iter().enumerate() {
        let span = Some(table.span());
        let t = table.get_ref();
        let f = |key: &str| format!("{base}[{j}].{key}");
        let priority = required(&t.priority, &f("priority"), span.clone(), errors).and_then(|v| {
            let p = int_in(v, &f("priority"), 0, i64::from(u8::MAX), errors)? as u8;
            if let Some(first) = seen.insert(p, j) {
                errors.push(
                    f("priority"),
                    Some(v.span()),
                    format!("duplicate priority group {p} (also {base}[{first}])"),
                );
                return None;
            }
            let members = servers.map(|s| s.iter().filter(|r| r.priority == p).count());
            if members == Some(0) {
                errors.push(
                    f("priority"),
                    Some(v.span()),
                    format!("no real server of this virtual server has priority {p}"),
                );
                return None;
            }
            Some(p)
        });
        let min_active = required(&t.min_active, &f("min_active"), span, errors)
            .and_then(|v| Some((v, int_in(v, &f("min_active"), 1, max, errors)? as u32)));
        match (priority, min_active) {
            (Some(priority), Some((v, min_active))) => {
                let members =
                    servers.map_or(0, |s| s.iter().filter(|r| r.priority == priority).count());
                if servers.is_some() && min_active as usize > members {
                    errors.push(
                        f("min_active"),
                        Some(v.span()),
                        format!(
                            "min_active {min_active} is more than the {members} real server(s) \
                             with priority {priority}: the group could never have its quorum"
                        ),
                    );
                    ok = false;
                } else {
                    out.push(GroupQuorum {
                        priority,
                        min_active,
                    });
                }
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{the_error, HEAD};
    use crate::control::config::{Config, GroupQuorum};

    /// A file whose virtual server has one real server per entry of `rs`
    /// (its extra keys), then `tail` (priority-group tables).
    fn file(rs: &[&str], tail: &str) -> String {
        let mut out = HEAD.to_string();
        for (i, keys) in rs.iter().enumerate() {
            out += &format!(
                "[[virtual_server.real_server]]\naddress = \"10.0.0.{}:8080\"\n{keys}\n",
                11 + i
            );
        }
        out + tail
    }

    fn group(priority: u8, min_active: u32) -> String {
        format!(
            "[[virtual_server.priority_group]]\npriority = {priority}\nmin_active = {min_active}\n"
        )
    }

    #[test]
    fn servers_are_primaries_without_groups_by_default() {
        let c = Config::from_toml_str(&file(&["", ""], "")).unwrap();
        let vs = &c.virtual_servers[0];
        assert!(vs.real_servers.iter().all(|r| r.priority == 0));
        assert!(vs.priority_groups.is_empty());
    }

    #[test]
    fn priority_backup_and_groups_are_read() {
        let text = file(
            &[
                "",
                "priority = 0",
                "backup = true",
                "priority = 7",
                "backup = false",
            ],
            &(group(0, 2) + &group(7, 1)),
        );
        let c = Config::from_toml_str(&text).unwrap();
        let vs = &c.virtual_servers[0];
        let p: Vec<u8> = vs.real_servers.iter().map(|r| r.priority).collect();
        assert_eq!(p, [0, 0, 1, 7, 0]);
        assert_eq!(
            vs.priority_groups,
            [
                GroupQuorum {
                    priority: 0,
                    min_active: 2
                },
                GroupQuorum {
                    priority: 7,
                    min_active: 1
                }
            ]
        );
    }

    #[test]
    fn backup_and_priority_together_are_refused_naming_both() {
        let (field, message) = the_error(&file(&["priority = 2\nbackup = true"], ""));
        assert_eq!(field, "virtual_server[0].real_server[0].backup");
        assert!(message.contains("priority"), "{message}");
    }

    #[test]
    fn a_priority_beyond_255_is_out_of_range() {
        let (field, message) = the_error(&file(&["priority = 256"], ""));
        assert_eq!(field, "virtual_server[0].real_server[0].priority");
        assert!(message.contains("0 to 255"), "{message}");
    }

    #[test]
    fn a_group_no_server_has_is_refused() {
        let (field, message) = the_error(&file(&["", "backup = true"], &group(2, 1)));
        assert_eq!(field, "virtual_server[0].priority_group[0].priority");
        assert!(message.contains("no real server"), "{message}");
    }

    #[test]
    fn a_group_given_twice_is_refused() {
        let (field, message) = the_error(&file(&["", ""], &(group(0, 1) + &group(0, 2))));
        assert_eq!(field, "virtual_server[0].priority_group[1].priority");
        assert!(message.contains("duplicate"), "{message}");
    }

    #[test]
    fn a_quorum_of_zero_or_above_the_group_is_refused() {
        let (field, message) = the_error(&file(&["", ""], &group(0, 0)));
        assert_eq!(field, "virtual_server[0].priority_group[0].min_active");
        assert!(message.contains("out of range"), "{message}");
        let (field, message) = the_error(&file(&["", "", "backup = true"], &group(0, 3)));
        assert_eq!(field, "virtual_server[0].priority_group[0].min_active");
        assert!(
            message.contains("2 real server(s) with priority 0"),
            "{message}"
        );
    }

    #[test]
    fn a_group_table_needs_both_keys() {
        let (field, message) = the_error(&file(
            &[""],
            "[[virtual_server.priority_group]]\npriority = 0\n",
        ));
        assert_eq!(field, "virtual_server[0].priority_group[0].min_active");
        assert!(message.contains("missing"), "{message}");
    }
}
