//! `[cluster]` (issue 20): an active-active node's sync peers, join
//! timeout and what it tells bird2, checked like every other section:
//! each problem with its field (`cluster.peers[1]: ...`) and line.

use super::{int_in, millis_or, required, span_of, sync_endpoint, Errors, S};
use crate::control::config::{ClusterConfig, HaConfig};
use crate::control::raw::{RawCluster, RawConfig};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::path::PathBuf;

/// `[cluster]`: `Some(None)` when the section is absent. With `[ha]` as
/// well the file is refused, naming both (one node is either half of a
/// keepalived pair or a node of an ECMP cluster).
pub(super) fn cluster(raw: &RawConfig, errors: &mut Errors) -> Option<Option<ClusterConfig>> {
    let Some(section) = raw.cluster.as_ref() else {
        return Some(None);
    };
    let table = Some(section.span());
    if raw.ha.is_some() {
        errors.push(
            "cluster",
            table.clone(),
            "[cluster] and [ha] cannot both be configured: [ha] is an active/standby pair \
             driven by keepalived, [cluster] an active-active cluster behind ECMP; keep one",
        );
    }
    let t = section.get_ref();
    let node_id = required(&t.node_id, "cluster.node_id", table.clone(), errors)
        .and_then(|v| int_in(v, "cluster.node_id", 1, i64::from(u32::MAX), errors))
        .map(|n| n as u32);
    let sync_listen = required(&t.sync_listen, "cluster.sync_listen", table.clone(), errors)
        .and_then(|v| sync_endpoint(v, "cluster.sync_listen", "192.168.100.1:8848", errors));
    let peers = peers(t, sync_listen, table, errors);
    let millis = |v: &Option<S<_>>, key: &str, min, max, default, e: &mut Errors| {
        millis_or(v.as_ref(), &format!("cluster.{key}"), min, max, default, e)
    };
    let sync_interval = millis(
        &t.sync_interval_ms,
        "sync_interval_ms",
        1,
        HaConfig::MAX_SYNC_INTERVAL_MS,
        HaConfig::DEFAULT_SYNC_INTERVAL_MS,
        errors,
    );
    let join_timeout = millis(
        &t.join_timeout_ms,
        "join_timeout_ms",
        ClusterConfig::MIN_JOIN_TIMEOUT_MS,
        ClusterConfig::MAX_JOIN_TIMEOUT_MS,
        ClusterConfig::DEFAULT_JOIN_TIMEOUT_MS,
        errors,
    );
    let sync_key = match &t.sync_key_file {
        None => Some(None),
        Some(v) => {
            let path = PathBuf::from(v.get_ref());
            match crate::ha::key::SyncKey::load(&path) {
                Ok(k) => Some(Some((path, k))),
                Err(e) => {
                    errors.push("cluster.sync_key_file", span_of(Some(v)), e);
                    None
                }
            }
        }
    };
    let path = |v: &Option<S<String>>, key: &str, default: &str, errors: &mut Errors| match v {
        None => Some(PathBuf::from(default)),
        Some(s) if s.get_ref().is_empty() => {
            errors.push(
                format!("cluster.{key}"),
                Some(s.span()),
                "must not be empty: name a file",
            );
            None
        }
        Some(s) => Some(PathBuf::from(s.get_ref())),
    };
    let bird_socket = path(
        &t.bird_socket,
        "bird_socket",
        ClusterConfig::DEFAULT_BIRD_SOCKET,
        errors,
    );
    let bird_include = path(
        &t.bird_include,
        "bird_include",
        ClusterConfig::DEFAULT_BIRD_INCLUDE,
        errors,
    );
    let bird_include6 = path(
        &t.bird_include6,
        "bird_include6",
        ClusterConfig::DEFAULT_BIRD_INCLUDE6,
        errors,
    )
    .and_then(|p6| {
        if bird_include.as_ref() == Some(&p6) {
            errors.push(
                "cluster.bird_include6",
                span_of(t.bird_include6.as_ref()).or_else(|| span_of(t.bird_include.as_ref())),
                format!(
                    "{} is also cluster.bird_include: the IPv6 routes need a file of their own",
                    p6.display()
                ),
            );
            return None;
        }
        Some(p6)
    });
    let liveness_interface = liveness_interface(t, errors);

    let sync_key = sync_key?;
    Some(Some(ClusterConfig {
        node_id: node_id?,
        sync_listen: sync_listen?,
        peers: peers?,
        sync_interval: sync_interval?,
        sync_key_file: sync_key.as_ref().map(|(p, _)| p.clone()),
        sync_key: sync_key.map(|(_, k)| k),
        join_timeout: join_timeout?,
        announce: t.announce.as_ref().is_none_or(|b| *b.get_ref()),
        bird_socket: bird_socket?,
        bird_include: bird_include?,
        bird_include6: bird_include6?,
        liveness_interface: liveness_interface?,
    }))
}

/// `cluster.peers`: 1 to `MAX_PEERS` unicast `IPv4:PORT`, none twice,
/// none this node's own `sync_listen`.
fn peers(
    t: &RawCluster,
    sync_listen: Option<SocketAddrV4>,
    table: Option<std::ops::Range<usize>>,
    errors: &mut Errors,
) -> Option<Vec<SocketAddrV4>> {
    let list = required(&t.peers, "cluster.peers", table, errors)?;
    let items = &list.get_ref().0;
    if items.is_empty() || items.len() > ClusterConfig::MAX_PEERS {
        errors.push(
            "cluster.peers",
            Some(list.span()),
            format!(
                "{} peers: a cluster node needs 1 to {} (every other node's sync_listen)",
                items.len(),
                ClusterConfig::MAX_PEERS
            ),
        );
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    let mut seen: HashMap<SocketAddrV4, usize> = HashMap::new();
    for (i, v) in items.iter().enumerate() {
        let field = format!("cluster.peers[{i}]");
        let Some(peer) = sync_endpoint(v, &field, "192.168.100.2:8848", errors) else {
            ok = false;
            continue;
        };
        if sync_listen == Some(peer) {
            errors.push(
                &field,
                Some(v.span()),
                format!("{peer} is cluster.sync_listen: peers are the other nodes, not this one"),
            );
            ok = false;
        } else if let Some(first) = seen.get(&peer) {
            errors.push(
                &field,
                Some(v.span()),
                format!("duplicate peer {peer} (also cluster.peers[{first}])"),
            );
            ok = false;
        } else {
            seen.insert(peer, i);
            out.push(peer);
        }
    }
    ok.then_some(out)
}

/// `cluster.liveness_interface`: a Linux interface name (1 to 15
/// characters, no `/`, `:`, whitespace or NUL, not `.` or `..`).
fn liveness_interface(t: &RawCluster, errors: &mut Errors) -> Option<String> {
    let Some(v) = &t.liveness_interface else {
        return Some(ClusterConfig::DEFAULT_LIVENESS_INTERFACE.to_string());
    };
    let name = v.get_ref();
    let bad_char = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace());
    let problem = if name.is_empty() || name.len() > ClusterConfig::MAX_INTERFACE_NAME {
        Some(format!(
            "{name:?} is {} bytes long: an interface name has 1 to {}",
            name.len(),
            ClusterConfig::MAX_INTERFACE_NAME
        ))
    } else if name == "." || name == ".." {
        Some(format!("{name:?} is not an interface name"))
    } else {
        bad_char.map(|c| format!("{name:?} holds {c:?}, which no interface name may"))
    };
    match problem {
        Some(p) => {
            errors.push("cluster.liveness_interface", Some(v.span()), p);
            None
        }
        None => Some(name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{the_error, HEAD};
    use crate::control::config::{ClusterConfig, Config};
    use std::time::Duration;

    const CLUSTER: &str = "[cluster]\nnode_id = 1\nsync_listen = \"192.168.100.1:8848\"\n";

    /// A file with a `[cluster]` of `CLUSTER`'s keys, `peers` and `extra`.
    fn file(peers: &str, extra: &str) -> String {
        format!("{HEAD}{CLUSTER}peers = {peers}\n{extra}")
    }

    const TWO: &str = r#"["192.168.100.2:8848", "192.168.100.3:8848"]"#;

    #[test]
    fn the_defaults_fill_what_a_minimal_section_omits() {
        let c = Config::from_toml_str(&file(TWO, ""))
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(
            c,
            ClusterConfig {
                node_id: 1,
                sync_listen: "192.168.100.1:8848".parse().unwrap(),
                peers: vec![
                    "192.168.100.2:8848".parse().unwrap(),
                    "192.168.100.3:8848".parse().unwrap()
                ],
                sync_interval: Duration::from_millis(5),
                sync_key_file: None,
                sync_key: None,
                join_timeout: Duration::from_millis(3000),
                announce: true,
                bird_socket: "/run/bird/bird.ctl".into(),
                bird_include: "/run/rvs/bird-vips.conf".into(),
                bird_include6: "/run/rvs/bird-vips6.conf".into(),
                liveness_interface: "rvs-live".into(),
            }
        );
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::from_toml_str(&file(
            TWO,
            "sync_interval_ms = 10\njoin_timeout_ms = 500\nannounce = false\n\
             bird_socket = \"/var/run/bird.ctl\"\nbird_include = \"/tmp/v4.conf\"\n\
             bird_include6 = \"/tmp/v6.conf\"\nliveness_interface = \"live0\"\n",
        ))
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(c.sync_interval, Duration::from_millis(10));
        assert_eq!(c.join_timeout, Duration::from_millis(500));
        assert!(!c.announce);
        assert_eq!(c.bird_socket.to_str(), Some("/var/run/bird.ctl"));
        assert_eq!(c.bird_include.to_str(), Some("/tmp/v4.conf"));
        assert_eq!(c.bird_include6.to_str(), Some("/tmp/v6.conf"));
        assert_eq!(c.liveness_interface, "live0");
    }

    #[test]
    fn ha_and_cluster_together_are_refused_naming_both() {
        let text = format!(
            "{}[ha]\nnode_id = 1\nsync_listen = \"192.168.100.1:8848\"\n\
             sync_peer = \"192.168.100.2:8848\"\n",
            file(TWO, "")
        );
        let (field, message) = the_error(&text);
        assert_eq!(field, "cluster");
        assert!(
            message.contains("[cluster]") && message.contains("[ha]"),
            "{message}"
        );
    }

    #[test]
    fn a_duplicate_peer_is_refused_naming_both_places() {
        let (field, message) =
            the_error(&file(r#"["192.168.100.2:8848", "192.168.100.2:8848"]"#, ""));
        assert_eq!(field, "cluster.peers[1]");
        assert!(message.contains("cluster.peers[0]"), "{message}");
    }

    #[test]
    fn this_nodes_own_sync_listen_among_the_peers_is_refused() {
        let (field, message) =
            the_error(&file(r#"["192.168.100.2:8848", "192.168.100.1:8848"]"#, ""));
        assert_eq!(field, "cluster.peers[1]");
        assert!(message.contains("sync_listen"), "{message}");
    }

    #[test]
    fn a_peer_on_the_same_host_with_another_port_is_valid() {
        let c = Config::from_toml_str(&file(r#"["192.168.100.1:8849"]"#, ""));
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn no_peers_or_more_than_31_are_refused() {
        assert_eq!(the_error(&file("[]", "")).0, "cluster.peers");
        let many: Vec<String> = (2..=33)
            .map(|i| format!("\"192.168.100.{i}:8848\""))
            .collect();
        let (field, message) = the_error(&file(&format!("[{}]", many.join(", ")), ""));
        assert_eq!(field, "cluster.peers");
        assert!(message.contains("32 peers"), "{message}");
    }

    #[test]
    fn missing_peers_node_id_and_sync_listen_are_each_reported() {
        let e = Config::from_toml_str(&format!("{HEAD}[cluster]\n")).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["cluster.node_id", "cluster.sync_listen", "cluster.peers"]
        );
    }

    #[test]
    fn an_unparsable_peer_is_refused_by_index() {
        let (field, _) = the_error(&file(r#"["192.168.100.2:8848", "nope"]"#, ""));
        assert_eq!(field, "cluster.peers[1]");
    }

    #[test]
    fn join_timeout_out_of_range_is_refused() {
        assert_eq!(
            the_error(&file(TWO, "join_timeout_ms = 99\n")).0,
            "cluster.join_timeout_ms"
        );
        assert_eq!(
            the_error(&file(TWO, "join_timeout_ms = 60001\n")).0,
            "cluster.join_timeout_ms"
        );
    }

    #[test]
    fn a_liveness_interface_linux_cannot_name_is_refused() {
        for bad in ["", "a-name-of-16-chr", "a/b", "a b", ".."] {
            let (field, _) = the_error(&file(TWO, &format!("liveness_interface = {bad:?}\n")));
            assert_eq!(field, "cluster.liveness_interface", "{bad:?}");
        }
    }

    #[test]
    fn one_file_for_both_families_routes_is_refused() {
        let (field, _) = the_error(&file(
            TWO,
            "bird_include = \"/run/x.conf\"\nbird_include6 = \"/run/x.conf\"\n",
        ));
        assert_eq!(field, "cluster.bird_include6");
    }
}
