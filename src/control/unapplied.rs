//! What a reload found changed but cannot apply, field by field.
//!
//! A reload applies the virtual servers (and their health checks); every
//! other section is fixed at start: the EAL, the workers, the ports and
//! their addresses, the tables' sizes, the control socket, the timeouts,
//! HA. Saying "no change" while a new `conn_table_size` sits in the file
//! misleads whoever edited it, so the reload answer and the log name each
//! such field with its running and its new value, and say that a restart
//! applies it. A section that differs in a way no field below names (a
//! field added later) is still reported, by its name.

use super::config::Config;
use std::fmt;
use std::fmt::Debug;
use std::time::Duration;

/// One setting the file changed that the running rvsd keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unapplied {
    /// The TOML path: `dataplane.conn_table_size`, `interface[1].mac`.
    pub field: String,
    /// The value running now.
    pub running: String,
    /// The value in the file.
    pub file: String,
}

impl fmt::Display for Unapplied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} in the file, {} running; not applied by a reload (restart rvsd to apply it)",
            self.field, self.file, self.running
        )
    }
}

/// Collects the differences.
#[derive(Default)]
struct Diff {
    out: Vec<Unapplied>,
}

impl Diff {
    fn field<T: PartialEq>(&mut self, field: &str, old: &T, new: &T, show: impl Fn(&T) -> String) {
        if old != new {
            self.out.push(Unapplied {
                field: field.to_string(),
                running: show(old),
                file: show(new),
            });
        }
    }

    /// Compares a whole section: `fields` names what changed; when the
    /// section differs and no field was named, the section itself is.
    fn section<T: PartialEq>(
        &mut self,
        name: &str,
        old: &T,
        new: &T,
        fields: impl FnOnce(&mut Diff),
    ) {
        let before = self.out.len();
        fields(self);
        if old != new && self.out.len() == before {
            self.out.push(Unapplied {
                field: name.to_string(),
                running: "(running section)".into(),
                file: "a changed section".into(),
            });
        }
    }

    /// A list of entries compared by position, `entry` naming each field.
    fn list<T: PartialEq>(
        &mut self,
        name: &str,
        old: &[T],
        new: &[T],
        entry: impl Fn(&mut Diff, &str, &T, &T),
    ) {
        self.section(name, &old, &new, |d| {
            for (i, (o, n)) in old.iter().zip(new).enumerate() {
                entry(d, &format!("{name}[{i}]"), o, n);
            }
            if old.len() != new.len() {
                d.out.push(Unapplied {
                    field: name.to_string(),
                    running: format!("{} entries", old.len()),
                    file: format!("{} entries", new.len()),
                });
            }
        });
    }
}

fn debug<T: Debug>(v: &T) -> String {
    format!("{v:?}")
}

fn display<T: fmt::Display>(v: &T) -> String {
    v.to_string()
}

fn secs(d: &Duration) -> String {
    d.as_secs().to_string()
}

fn millis(d: &Duration) -> String {
    d.as_millis().to_string()
}

fn micros(d: &Duration) -> String {
    d.as_micros().to_string()
}

fn list_of<T: fmt::Display>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("\"{x}\"")).collect();
    format!("[{}]", items.join(", "))
}

fn option<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("(none)".into(), |x| format!("\"{x}\""))
}

/// The settings `new` changes that a reload leaves as `running` has them:
/// every section but the virtual servers, field by field.
pub fn unapplied(running: &Config, new: &Config) -> Vec<Unapplied> {
    let mut d = Diff::default();
    let (o, n) = (running, new);
    d.section("dpdk", &o.dpdk, &n.dpdk, |d| {
        d.field("dpdk.eal_args", &o.dpdk.eal_args, &n.dpdk.eal_args, debug);
        d.field("dpdk.workers", &o.dpdk.workers, &n.dpdk.workers, debug);
    });
    d.section("dataplane", &o.dataplane, &n.dataplane, |d| {
        let (a, b) = (&o.dataplane, &n.dataplane);
        d.field(
            "dataplane.burst_size",
            &a.burst_size,
            &b.burst_size,
            display,
        );
        d.field(
            "dataplane.conn_table_size",
            &a.conn_table_size,
            &b.conn_table_size,
            display,
        );
        d.field(
            "dataplane.idle_sleep_us",
            &a.idle_sleep,
            &b.idle_sleep,
            micros,
        );
    });
    d.list("interface", &o.interfaces, &n.interfaces, |d, at, a, b| {
        d.field(&format!("{at}.name"), &a.name, &b.name, debug);
        d.field(&format!("{at}.device"), &a.device, &b.device, |v| {
            format!("\"{v}\"")
        });
        d.field(
            &format!("{at}.addresses"),
            &a.addresses,
            &b.addresses,
            |v| list_of(v),
        );
        d.field(
            &format!("{at}.addresses6"),
            &a.addresses6,
            &b.addresses6,
            |v| list_of(v),
        );
        d.field(&format!("{at}.mac"), &a.mac, &b.mac, option);
        d.field(&format!("{at}.rss"), &a.rss, &b.rss, debug);
    });
    d.list("route", &o.routes, &n.routes, |d, at, a, b| {
        d.field(&format!("{at}.prefix"), &a.prefix, &b.prefix, display);
        d.field(&format!("{at}.via"), &a.via, &b.via, display);
        d.field(
            &format!("{at}.interface"),
            &a.interface_name,
            &b.interface_name,
            debug,
        );
    });
    d.list("route6", &o.routes6, &n.routes6, |d, at, a, b| {
        d.field(&format!("{at}.prefix"), &a.prefix, &b.prefix, display);
        d.field(&format!("{at}.via"), &a.via, &b.via, display);
        d.field(
            &format!("{at}.interface"),
            &a.interface_name,
            &b.interface_name,
            debug,
        );
    });
    d.list("neighbor", &o.neighbors, &n.neighbors, |d, at, a, b| {
        d.field(&format!("{at}.address"), &a.address, &b.address, display);
        d.field(&format!("{at}.mac"), &a.mac, &b.mac, display);
        d.field(
            &format!("{at}.interface"),
            &a.interface_name,
            &b.interface_name,
            debug,
        );
    });
    d.list("neighbor6", &o.neighbors6, &n.neighbors6, |d, at, a, b| {
        d.field(&format!("{at}.address"), &a.address, &b.address, display);
        d.field(&format!("{at}.mac"), &a.mac, &b.mac, display);
        d.field(
            &format!("{at}.interface"),
            &a.interface_name,
            &b.interface_name,
            debug,
        );
    });
    d.section("control", &o.control, &n.control, |d| {
        let (a, b) = (&o.control, &n.control);
        d.field("control.socket", &a.socket, &b.socket, debug);
        d.field(
            "control.metrics_listen",
            &a.metrics_listen,
            &b.metrics_listen,
            display,
        );
    });
    d.section("timeouts", &o.timeouts, &n.timeouts, |d| {
        let (a, b) = (&o.timeouts, &n.timeouts);
        d.field(
            "timeouts.tcp_established_s",
            &a.tcp_established,
            &b.tcp_established,
            secs,
        );
        d.field(
            "timeouts.tcp_fin_wait_s",
            &a.tcp_fin_wait,
            &b.tcp_fin_wait,
            secs,
        );
        d.field(
            "timeouts.tcp_time_wait_s",
            &a.tcp_time_wait,
            &b.tcp_time_wait,
            secs,
        );
        d.field("timeouts.tcp_syn_s", &a.tcp_syn, &b.tcp_syn, secs);
        d.field("timeouts.udp_s", &a.udp, &b.udp, secs);
    });
    match (&o.ha, &n.ha) {
        (Some(a), Some(b)) => d.section("ha", a, b, |d| {
            d.field("ha.node_id", &a.node_id, &b.node_id, display);
            d.field(
                "ha.initial_state",
                &a.initial_state,
                &b.initial_state,
                display,
            );
            d.field("ha.sync_listen", &a.sync_listen, &b.sync_listen, display);
            d.field("ha.sync_peer", &a.sync_peer, &b.sync_peer, display);
            d.field(
                "ha.floating_addresses",
                &a.floating_addresses,
                &b.floating_addresses,
                |v| list_of(v),
            );
            d.field("ha.garp_count", &a.garp_count, &b.garp_count, display);
            d.field(
                "ha.garp_interval_ms",
                &a.garp_interval,
                &b.garp_interval,
                millis,
            );
            d.field(
                "ha.sync_interval_ms",
                &a.sync_interval,
                &b.sync_interval,
                millis,
            );
        }),
        (a, b) => d.field("ha", a, b, |h| {
            if h.is_some() {
                "a section".into()
            } else {
                "no section".into()
            }
        }),
    }
    match (&o.cluster, &n.cluster) {
        (Some(a), Some(b)) => d.section("cluster", a, b, |d| {
            d.field("cluster.node_id", &a.node_id, &b.node_id, display);
            d.field(
                "cluster.sync_listen",
                &a.sync_listen,
                &b.sync_listen,
                display,
            );
            d.field("cluster.peers", &a.peers, &b.peers, |v| list_of(v));
            d.field(
                "cluster.sync_interval_ms",
                &a.sync_interval,
                &b.sync_interval,
                millis,
            );
            d.field(
                "cluster.join_timeout_ms",
                &a.join_timeout,
                &b.join_timeout,
                millis,
            );
            d.field("cluster.announce", &a.announce, &b.announce, display);
            d.field(
                "cluster.liveness_interface",
                &a.liveness_interface,
                &b.liveness_interface,
                display,
            );
        }),
        (a, b) => d.field("cluster", a, b, |c| {
            if c.is_some() {
                "a section".into()
            } else {
                "no section".into()
            }
        }),
    }
    d.out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[dpdk]
eal_args = ["-l", "0-1", "--in-memory"]
workers = [1]

[dataplane]
conn_table_size = 1024

[[interface]]
name = "ext"
device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
addresses = ["192.0.2.1/24"]

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
forward = "dr"

[[virtual_server.real_server]]
address = "192.0.2.11:80"
"#;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    fn fields(old: &str, new: &str) -> Vec<String> {
        unapplied(&config(old), &config(new))
            .into_iter()
            .map(|u| u.field)
            .collect()
    }

    #[test]
    fn the_same_file_has_nothing_unapplied() {
        assert!(fields(BASE, BASE).is_empty());
    }

    #[test]
    fn a_virtual_server_change_is_not_unapplied() {
        let new = BASE.replace("192.0.2.11:80", "192.0.2.12:80");
        assert!(fields(BASE, &new).is_empty());
    }

    #[test]
    fn a_new_conn_table_size_is_named_with_both_values() {
        let new = BASE.replace("conn_table_size = 1024", "conn_table_size = 2048");
        let u = unapplied(&config(BASE), &config(&new));
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].field, "dataplane.conn_table_size");
        assert_eq!(
            (u[0].running.as_str(), u[0].file.as_str()),
            ("1024", "2048")
        );
        let line = u[0].to_string();
        assert!(
            line.contains("not applied") && line.contains("restart"),
            "{line}"
        );
    }

    #[test]
    fn each_changed_field_is_named_in_every_section() {
        let new = BASE
            .replace("workers = [1]", "workers = [1]\n\n[timeouts]\nudp_s = 60\n\n[control]\nsocket = \"/tmp/other.sock\"")
            .replace("\"192.0.2.1/24\"]", "\"192.0.2.1/24\"]\nmac = \"02:00:00:00:00:09\"");
        assert_eq!(
            fields(BASE, &new),
            vec!["interface[0].mac", "control.socket", "timeouts.udp_s"]
        );
    }

    #[test]
    fn an_added_interface_is_counted() {
        let new = BASE.replace(
            "[[virtual_server]]",
            "[[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=a.pcap,tx_pcap=b.pcap\"\n\n[[virtual_server]]",
        );
        let u = unapplied(&config(BASE), &config(&new));
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].field, "interface");
        assert_eq!(
            (u[0].running.as_str(), u[0].file.as_str()),
            ("1 entries", "2 entries")
        );
    }

    #[test]
    fn an_added_ha_section_is_named() {
        let new = format!(
            "{BASE}\n[ha]\nnode_id = 1\nsync_listen = \"192.0.2.1:8848\"\nsync_peer = \"192.0.2.2:8848\"\n"
        );
        assert_eq!(fields(BASE, &new), vec!["ha"]);
    }
}
