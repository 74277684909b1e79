//! `quorum` of a `[[virtual_server]]` (`control::announce`): how many of
//! its real servers must be up for its VIP to be announced, 1 to the
//! number of its real servers.

use super::{int_in, Errors, RawVirtualServer};
use crate::control::config::VirtualServerConfig;

/// `quorum` of one virtual server (`f` names a key of it). Unset, it is
/// `DEFAULT_QUORUM` whatever the number of real servers (a service
/// without any is simply never announced).
pub(super) fn quorum(
    t: &RawVirtualServer,
    f: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<u32> {
    let Some(v) = &t.quorum else {
        return Some(VirtualServerConfig::DEFAULT_QUORUM);
    };
    let servers = t.real_server.0.len() as i64;
    if servers == 0 {
        errors.push(
            f("quorum"),
            Some(v.span()),
            "quorum needs real servers to count: this virtual server has none".to_string(),
        );
        return None;
    }
    int_in(v, &f("quorum"), 1, servers, errors).map(|n| n as u32)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{the_error, HEAD};
    use crate::control::config::Config;

    /// A file whose virtual server has `keys` and two real servers.
    fn file(keys: &str) -> String {
        format!(
            "{HEAD}{keys}\n[[virtual_server.real_server]]\naddress = \"10.0.0.11:8080\"\n\
             [[virtual_server.real_server]]\naddress = \"10.0.0.12:8080\"\n"
        )
    }

    #[test]
    fn quorum_is_one_by_default() {
        let c = Config::from_toml_str(&file("")).unwrap();
        assert_eq!(c.virtual_servers[0].quorum, 1);
    }

    #[test]
    fn quorum_up_to_the_number_of_real_servers_is_read() {
        let c = Config::from_toml_str(&file("quorum = 2")).unwrap();
        assert_eq!(c.virtual_servers[0].quorum, 2);
    }

    #[test]
    fn quorum_above_the_number_of_real_servers_is_refused_naming_the_field() {
        let (field, message) = the_error(&file("quorum = 3"));
        assert_eq!(field, "virtual_server[0].quorum");
        assert!(message.contains("must be 1 to 2"), "{message}");
    }

    #[test]
    fn quorum_zero_is_refused() {
        let (field, _) = the_error(&file("quorum = 0"));
        assert_eq!(field, "virtual_server[0].quorum");
    }

    #[test]
    fn quorum_without_real_servers_is_refused() {
        let (field, message) = the_error(&format!("{HEAD}quorum = 1\n"));
        assert_eq!(field, "virtual_server[0].quorum");
        assert!(message.contains("has none"), "{message}");
    }
}
