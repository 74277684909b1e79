//! Who may do what on the control socket: two levels, decided by the
//! peer's credentials (`SO_PEERCRED`, which the kernel fills in and the
//! client cannot forge).
//!
//! - **admin**: root (uid 0) or the user rvsd runs as. Every command.
//! - **read-only**: anyone else who could connect. With
//!   `control.socket_group` the socket file is that group's with mode
//!   0660, so the kernel already let only root, rvsd's user and the
//!   group's members connect: the file's mode is the group check (it
//!   covers supplementary groups, which `SO_PEERCRED` does not carry).
//!   Without it the file is 0600 and nobody else can connect.
//!
//! A command is read-only only when it is on [`READ_ONLY`]'s list; any
//! other command (including one added later and not listed) needs admin.

use serde_json::Value;

/// An access level, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// List, read counters and connections, read the HA role.
    ReadOnly,
    /// Also change state: weights, reload, the HA role.
    Admin,
}

impl Level {
    /// The level's name, as errors and docs/rvsadm.md say it.
    pub fn name(self) -> &'static str {
        match self {
            Level::ReadOnly => "read-only",
            Level::Admin => "admin",
        }
    }
}

/// The commands that change nothing: (`cmd`, the `action` when it matters).
pub const READ_ONLY: &[(&str, Option<&str>)] = &[
    ("list", None),
    ("stats", None),
    ("conns", None),
    ("ha", Some("status")),
    ("drain", Some("status")),
    ("announce", Some("status")),
];

/// The level `request` needs.
pub fn required(request: &Value) -> Level {
    let cmd = request["cmd"].as_str();
    let action = request["action"].as_str();
    let listed = READ_ONLY
        .iter()
        .any(|&(c, a)| Some(c) == cmd && (a.is_none() || a == action));
    if listed {
        Level::ReadOnly
    } else {
        Level::Admin
    }
}

/// The level a peer with user id `uid` gets from an rvsd running as
/// `own_uid`, whose socket is open to a group (`group_access`) or not.
pub fn level_of(uid: u32, own_uid: u32, group_access: bool) -> Option<Level> {
    if uid == 0 || uid == own_uid {
        Some(Level::Admin)
    } else if group_access {
        Some(Level::ReadOnly)
    } else {
        None
    }
}

/// Whether a peer at `level` may run `request`; the error names what
/// it lacks.
pub fn check(level: Option<Level>, request: &Value) -> Result<(), String> {
    let need = required(request);
    match level {
        Some(have) if have >= need => Ok(()),
        Some(have) => Err(format!(
            "access denied: {} needs the {} level (root or rvsd's user), this client has {}",
            describe(request),
            need.name(),
            have.name()
        )),
        None => Err("access denied: this user may not use rvsd's control socket".into()),
    }
}

fn describe(request: &Value) -> String {
    match (request["cmd"].as_str(), request["action"].as_str()) {
        (Some(c), Some(a)) => format!("{c} {a}"),
        (Some(c), None) => c.to_string(),
        _ => "this request".to_string(),
    }
}

/// The id of group `name` (a name in /etc/group, or a number).
pub fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let text = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot read /etc/group to find group {name:?}: {e}"))?;
    group_in(&text, name).ok_or_else(|| format!("no group {name:?} in /etc/group"))
}

/// The id of group `name` in the text of an /etc/group file.
fn group_in(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next() == Some(name))
            .then(|| f.nth(1).and_then(|g| g.parse().ok()))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reading_commands_need_read_only() {
        for r in [
            json!({"cmd": "list"}),
            json!({"cmd": "stats"}),
            json!({"cmd": "conns", "limit": 5}),
            json!({"cmd": "ha", "action": "status"}),
            json!({"cmd": "drain", "action": "status"}),
            json!({"cmd": "announce", "action": "status"}),
        ] {
            assert_eq!(required(&r), Level::ReadOnly, "{r}");
        }
    }

    #[test]
    fn commands_that_change_state_need_admin() {
        for r in [
            json!({"cmd": "weight", "service": "x", "real_server": "y", "weight": 0}),
            json!({"cmd": "reload"}),
            json!({"cmd": "ha", "action": "master"}),
            json!({"cmd": "ha", "action": "backup"}),
            json!({"cmd": "ha"}),
            json!({"cmd": "drain", "action": "on"}),
            json!({"cmd": "drain", "action": "off"}),
        ] {
            assert_eq!(required(&r), Level::Admin, "{r}");
        }
    }

    #[test]
    fn an_unlisted_command_needs_admin() {
        assert_eq!(required(&json!({"cmd": "shutdown"})), Level::Admin);
        assert_eq!(required(&json!({})), Level::Admin);
    }

    #[test]
    fn root_and_rvsds_own_user_are_admin() {
        assert_eq!(level_of(0, 990, false), Some(Level::Admin));
        assert_eq!(level_of(990, 990, false), Some(Level::Admin));
    }

    #[test]
    fn others_are_read_only_when_the_socket_is_open_to_a_group() {
        assert_eq!(level_of(1000, 0, true), Some(Level::ReadOnly));
        assert_eq!(level_of(1000, 0, false), None);
    }

    #[test]
    fn a_read_only_client_may_read_but_not_reload() {
        let ro = Some(Level::ReadOnly);
        assert!(check(ro, &json!({"cmd": "stats"})).is_ok());
        let err = check(ro, &json!({"cmd": "reload"})).unwrap_err();
        assert!(err.contains("reload needs the admin level"), "{err}");
        assert!(check(Some(Level::Admin), &json!({"cmd": "reload"})).is_ok());
        assert!(check(None, &json!({"cmd": "list"})).is_err());
    }

    #[test]
    fn a_group_is_found_by_name_or_number() {
        let etc = "root:x:0:\nrvs:x:991:alice,bob\nbroken\n";
        assert_eq!(group_in(etc, "rvs"), Some(991));
        assert_eq!(group_in(etc, "nope"), None);
        assert_eq!(group_id("42"), Ok(42));
    }
}
