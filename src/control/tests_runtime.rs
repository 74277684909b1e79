//! The control plane at run time, one behaviour per test: what `rvsadm`'s
//! requests answer, and which snapshots health changes, run-time weights
//! and reloads send the workers. The workers are the receiving ends of
//! their channels, the health checks a scripted source: no DPDK, no
//! probing.

use super::answer::answer;
use super::config::{Config, HealthCheckKind};
use super::ha::{Ha, HaSettings};
use super::health::{HealthChange, Target};
use super::reload;
use super::role::Role;
use super::run::{self, Flow, LinkWatch};
use super::state::{ControlState, HealthSource};
use super::workers::Workers;
use crate::dataplane::stats::StatsCell;
use crate::dataplane::worker::{Command, ConnInfo};
use crate::lb::service::ServiceTable;
use serde_json::{json, Value};
use signal_hook::consts::{SIGHUP, SIGTERM};
use std::cell::Cell;
use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVICE: &str = "203.0.113.100:80/tcp";
const RS1: &str = "10.1.0.11:8080";
const RS2: &str = "10.1.0.12:8080";

/// A configuration with one NAT service of two real servers weighted
/// `w1` and `w2`.
fn config_text(w1: u32, w2: u32) -> String {
    format!(
        r#"[dpdk]
eal_args = ["-l", "0-1"]
workers = [1]

[[interface]]
name = "ext"
device = "net_pcap0,rx_pcap=in.pcap"
addresses = ["203.0.113.1/24"]

[[interface]]
name = "int"
device = "net_pcap1,rx_pcap=in1.pcap"
addresses = ["10.1.0.1/24"]

[[virtual_server]]
name = "web"
address = "203.0.113.100:80"
protocol = "tcp"
scheduler = "wrr"
forward = "nat"

  [virtual_server.health_check]
  type = "none"

  [[virtual_server.real_server]]
  address = "{RS1}"
  weight = {w1}

  [[virtual_server.real_server]]
  address = "{RS2}"
  weight = {w2}
"#
    )
}

/// Health as the tests script it: `report` queues a change, which the
/// next `poll` returns and which `up_table` reflects from then on (as the
/// checker keeps a server's state across a reload).
#[derive(Clone, Default)]
struct Scripted {
    queued: Arc<Mutex<Vec<HealthChange>>>,
    down: Arc<Mutex<HashSet<(u16, u16)>>>,
    retargets: Arc<AtomicUsize>,
    /// What the last `retarget` was given (at first, what the checker of
    /// the fixture's file would check).
    targets: Arc<Mutex<Vec<Target>>>,
}

impl Scripted {
    fn report(&self, rs: u16, up: bool) {
        let addr = [RS1, RS2][usize::from(rs)];
        self.queued.lock().unwrap().push(HealthChange {
            vs: 0,
            rs,
            name: "web".into(),
            endpoint: addr.parse::<SocketAddrV4>().unwrap().into(),
            up,
            reason: "scripted".into(),
        });
    }
}

impl HealthSource for Scripted {
    fn poll(&mut self) -> Vec<HealthChange> {
        let changes = std::mem::take(&mut *self.queued.lock().unwrap());
        let mut down = self.down.lock().unwrap();
        for c in &changes {
            if c.up {
                down.remove(&(c.vs, c.rs));
            } else {
                down.insert((c.vs, c.rs));
            }
        }
        changes
    }
    fn retarget(&mut self, targets: Vec<Target>) {
        self.retargets.fetch_add(1, Ordering::Relaxed);
        *self.targets.lock().unwrap() = targets;
    }
    fn targets(&self) -> Vec<Target> {
        self.targets.lock().unwrap().clone()
    }
    fn force_down(&mut self, vs: u16, rs: u16, _reason: &str) -> bool {
        self.down.lock().unwrap().insert((vs, rs))
    }
    fn up_table(&self, services: &ServiceTable) -> Vec<Vec<bool>> {
        let down = self.down.lock().unwrap();
        services
            .services()
            .iter()
            .enumerate()
            .map(|(v, s)| {
                (0..s.real_servers.len())
                    .map(|r| !down.contains(&(v as u16, r as u16)))
                    .collect()
            })
            .collect()
    }
}

/// A control state over two channel "workers", its config in a file of
/// its own.
struct Fixture {
    state: ControlState,
    workers: Vec<Receiver<Command>>,
    health: Scripted,
    path: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        Fixture::with_role(name, |_| Role::new(None, 0, Duration::ZERO, Instant::now()))
    }

    fn with_role(name: &str, role: impl FnOnce(&Workers) -> Role) -> Fixture {
        let dir = std::env::temp_dir().join(format!("rvs-ctl-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rvsd.toml");
        std::fs::write(&path, config_text(2, 1)).unwrap();
        let config = Config::load(&path).unwrap();
        let table = Arc::new(ServiceTable::new(reload::virtual_services(
            &config.virtual_servers,
        )));
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel()).unzip();
        let cells = (1..=2u32)
            .map(|lcore| (lcore, Arc::new(StatsCell::new(4))))
            .collect();
        let workers = Workers::new(senders, cells);
        let health = Scripted::default();
        *health.targets.lock().unwrap() = super::health::targets(&table, &config.virtual_servers);
        let role = role(&workers);
        let state = ControlState::new(table, workers, Box::new(health.clone()), role, path.clone());
        Fixture {
            state,
            workers: receivers,
            health,
            path,
        }
    }

    fn ask(&mut self, request: Value) -> Value {
        answer(&request, &mut self.state)
    }

    fn write_config(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    /// What worker `w` was sent since the last look.
    fn sent(&self, w: usize) -> Vec<Command> {
        self.workers[w].try_iter().collect()
    }

    /// The snapshots worker `w` was sent since the last look; fails on
    /// any other command.
    fn snapshots(&self, w: usize) -> Vec<Arc<ServiceTable>> {
        self.sent(w)
            .into_iter()
            .map(|c| match c {
                Command::Services(t) => t,
                other => panic!("worker {w} was sent {other:?}, not a snapshot"),
            })
            .collect()
    }

    /// The one snapshot each worker was sent since the last look (the same
    /// one for both).
    fn one_snapshot(&self) -> Arc<ServiceTable> {
        let a = self.snapshots(0);
        let b = self.snapshots(1);
        assert_eq!((a.len(), b.len()), (1, 1), "one snapshot per worker");
        assert!(Arc::ptr_eq(&a[0], &b[0]));
        assert!(Arc::ptr_eq(&a[0], self.state.snapshot()));
        a[0].clone()
    }

    fn listed(&mut self, rs: usize) -> Value {
        self.ask(json!({"cmd": "list"}))["virtual_servers"][0]["real_servers"][rs].clone()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn weight_request(real: &str, weight: u64) -> Value {
    json!({"cmd": "weight", "service": SERVICE, "real_server": real, "weight": weight})
}

// ------------------------------------------------------------ health

#[test]
fn each_health_change_sends_one_snapshot_with_the_server_at_weight_zero() {
    let mut f = Fixture::new("health-down");
    f.health.report(0, false);
    f.state.poll_health();
    let t = f.one_snapshot();
    assert!(t.is_down(0, 0));
    assert_eq!(t.effective_weight(0, 0), 0);
    assert_eq!(t.effective_weight(0, 1), 1);

    f.health.report(0, true);
    f.state.poll_health();
    let t = f.one_snapshot();
    assert!(!t.is_down(0, 0));
    assert_eq!(t.effective_weight(0, 0), 2);
}

#[test]
fn two_changes_in_one_poll_send_two_snapshots() {
    let mut f = Fixture::new("health-two");
    f.health.report(0, false);
    f.health.report(1, false);
    f.state.poll_health();
    let sent = f.snapshots(0);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].effective_weight(0, 1), 1, "first change only");
    assert_eq!(sent[1].effective_weight(0, 1), 0);
    assert_eq!(f.snapshots(1).len(), 2);
}

#[test]
fn a_change_to_the_state_already_held_sends_nothing() {
    let mut f = Fixture::new("health-same");
    f.health.report(1, true);
    f.state.poll_health();
    assert!(f.sent(0).is_empty());
    assert!(f.sent(1).is_empty());
}

#[test]
fn a_down_server_keeps_its_weight_in_the_list() {
    let mut f = Fixture::new("health-list");
    f.health.report(1, false);
    f.state.poll_health();
    let rs = f.listed(1);
    assert_eq!(rs["health"], "down");
    assert_eq!(rs["weight"], 1);
    assert_eq!(f.listed(0)["health"], "up");
}

// ------------------------------------------------------------ weight

#[test]
fn weight_sets_the_run_time_weight_in_one_snapshot() {
    let mut f = Fixture::new("weight-set");
    assert_eq!(f.ask(weight_request(RS2, 5)), json!({"ok": true}));
    let t = f.one_snapshot();
    assert_eq!(t.effective_weight(0, 1), 5);
    assert_eq!(t.weight(0, 1), 5);
    assert_eq!(t.effective_weight(0, 0), 2);
    assert_eq!(f.listed(1)["weight"], 5);
}

/// A weight a `script` check (`script_dynamic_weight`) asks for.
fn check_weight(rs: u16, weight: Option<u32>) -> super::health::WeightChange {
    super::health::WeightChange {
        vs: 0,
        rs,
        name: "web".into(),
        endpoint: [RS1, RS2][usize::from(rs)].parse().unwrap(),
        weight,
        reason: "script exited 5: weight 3".into(),
    }
}

#[test]
fn a_script_s_weight_is_applied_as_a_run_time_weight_and_exit_0_restores_the_file_s() {
    let mut f = Fixture::new("weight-script");
    f.state.apply_check_weight(&check_weight(0, Some(3)));
    let t = f.one_snapshot();
    assert_eq!(t.weight(0, 0), 3);
    assert_eq!(f.listed(0)["weight"], 3);
    // The same weight again: no new snapshot.
    f.state.apply_check_weight(&check_weight(0, Some(3)));
    assert!(f.sent(0).is_empty());
    f.state.apply_check_weight(&check_weight(0, None));
    let t = f.one_snapshot();
    assert_eq!(t.weight(0, 0), 2, "the file's weight");
}

#[test]
fn weight_zero_drains_without_marking_the_server_down() {
    let mut f = Fixture::new("weight-drain");
    assert_eq!(f.ask(weight_request(RS1, 0)), json!({"ok": true}));
    let t = f.one_snapshot();
    assert_eq!(t.effective_weight(0, 0), 0);
    assert!(!t.is_down(0, 0));
    let rs = f.listed(0);
    assert_eq!(rs["weight"], 0);
    assert_eq!(rs["health"], "up");
}

#[test]
fn a_down_server_given_a_weight_stays_at_zero_until_it_is_up() {
    let mut f = Fixture::new("weight-down");
    f.health.report(0, false);
    f.state.poll_health();
    f.ask(weight_request(RS1, 7));
    assert_eq!(f.state.snapshot().effective_weight(0, 0), 0);
    f.health.report(0, true);
    f.state.poll_health();
    assert_eq!(f.state.snapshot().effective_weight(0, 0), 7);
}

#[test]
fn weight_out_of_range_is_refused() {
    let mut f = Fixture::new("weight-range");
    let a = f.ask(weight_request(RS1, 65536));
    assert_eq!(a, json!({"error": "weight must be 0 to 65535"}));
    let a = f.ask(json!({"cmd": "weight", "service": SERVICE, "real_server": RS1}));
    assert_eq!(a, json!({"error": "weight must be 0 to 65535"}));
    assert!(f.sent(0).is_empty());
}

#[test]
fn weight_of_an_unknown_server_names_it() {
    let mut f = Fixture::new("weight-unknown");
    let a = f.ask(weight_request("10.1.0.99:8080", 1));
    assert_eq!(
        a["error"],
        format!("{SERVICE} has no real server 10.1.0.99:8080")
    );
    let a = f.ask(json!({"cmd": "weight", "service": "203.0.113.100:81/tcp",
        "real_server": RS1, "weight": 1}));
    assert_eq!(a["error"], "no virtual server 203.0.113.100:81/tcp");
    assert!(f.sent(0).is_empty());
}

// ------------------------------------------------------------ reload

#[test]
fn reload_applies_the_file_and_summarises_the_changes() {
    let mut f = Fixture::new("reload-good");
    f.write_config(&config_text(2, 4));
    let a = f.ask(json!({"cmd": "reload"}));
    assert_eq!(a["ok"], true, "{a}");
    let message = a["message"].as_str().unwrap();
    assert!(message.starts_with("reloaded: "), "{message}");
    assert!(message.contains(RS2), "{message}");
    let t = f.one_snapshot();
    assert_eq!(t.effective_weight(0, 1), 4);
    assert_eq!(f.health.retargets.load(Ordering::Relaxed), 1);
}

#[test]
fn reload_of_an_unchanged_file_says_so_and_sends_nothing() {
    let mut f = Fixture::new("reload-same");
    let a = f.ask(json!({"cmd": "reload"}));
    assert_eq!(a, json!({"ok": true, "message": "reloaded: no change"}));
    assert!(f.sent(0).is_empty());
}

#[test]
fn reload_of_an_unchanged_file_does_not_retarget_the_checks() {
    let mut f = Fixture::new("reload-same-checks");
    f.ask(json!({"cmd": "reload"}));
    assert_eq!(f.health.retargets.load(Ordering::Relaxed), 0);
}

#[test]
fn reload_of_health_check_settings_alone_retargets_the_checks_and_says_what_changed() {
    let mut f = Fixture::new("reload-checks");
    f.write_config(&config_text(2, 1).replace(
        "type = \"none\"",
        "type = \"http\"\n  interval_ms = 500\n  rise = 3\n  http_path = \"/healthz\"",
    ));
    let a = f.ask(json!({"cmd": "reload"}));
    assert_eq!(
        a,
        json!({"ok": true, "message": "reloaded: virtual server web: health_check.type none -> \
            http, health_check.interval_ms 1000 -> 500, health_check.rise 2 -> 3, \
            health_check.http_path \"/\" -> \"/healthz\""})
    );
    assert_eq!(f.health.retargets.load(Ordering::Relaxed), 1);
    let targets = f.health.targets();
    assert_eq!(targets.len(), 2);
    for t in &targets {
        assert_eq!(t.check.kind, HealthCheckKind::Http);
        assert_eq!(t.check.interval, Duration::from_millis(500));
        assert_eq!(t.check.rise, 3);
        assert_eq!(t.check.http_path, "/healthz");
    }
    assert!(f.sent(0).is_empty(), "the services did not change");
    assert!(f.sent(1).is_empty());
}

#[test]
fn reload_of_servers_and_checks_reports_both() {
    let mut f = Fixture::new("reload-both");
    f.write_config(&config_text(2, 4).replace("type = \"none\"", "type = \"tcp\""));
    let a = f.ask(json!({"cmd": "reload"}));
    let message = a["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 2, "{message}");
    assert!(lines[0].contains("weight 1 -> 4"), "{message}");
    assert_eq!(
        lines[1],
        "virtual server web: health_check.type none -> tcp"
    );
    assert_eq!(f.health.targets()[0].check.kind, HealthCheckKind::Tcp);
    assert_eq!(f.one_snapshot().effective_weight(0, 1), 4);
}

#[test]
fn reload_of_a_bad_file_is_refused_naming_the_field_and_keeps_the_running_config() {
    let mut f = Fixture::new("reload-bad");
    f.write_config(&config_text(2, 4).replace("weight = 4", "wieght = 4"));
    let a = f.ask(json!({"cmd": "reload"}));
    let e = a["error"].as_str().unwrap();
    assert!(
        e.starts_with("reload refused, running config kept:\n"),
        "{e}"
    );
    assert!(e.contains("wieght"), "{e}");
    assert!(e.contains(&f.path.display().to_string()), "{e}");
    assert!(f.sent(0).is_empty());
    assert_eq!(f.listed(1)["weight"], 1);
}

#[test]
fn reload_keeps_run_time_health_and_restores_the_files_weights() {
    let mut f = Fixture::new("reload-keeps");
    f.health.report(0, false);
    f.state.poll_health();
    f.ask(weight_request(RS2, 9));
    f.sent(0);
    f.sent(1);
    f.write_config(&config_text(3, 1));
    assert_eq!(f.ask(json!({"cmd": "reload"}))["ok"], true);
    let t = f.one_snapshot();
    assert!(t.is_down(0, 0), "still down after the reload");
    assert_eq!(t.effective_weight(0, 0), 0);
    assert_eq!(t.weight(0, 0), 3, "the file's new weight");
    assert_eq!(t.weight(0, 1), 1, "run-time weight gives way to the file's");
    assert_eq!(t.effective_weight(0, 1), 1);
}

#[test]
fn sighup_reloads_and_other_signals_stop() {
    let mut f = Fixture::new("signals");
    f.write_config(&config_text(2, 4));
    assert_eq!(run::on_signal(&mut f.state, SIGHUP), Flow::Continue);
    assert_eq!(f.one_snapshot().weight(0, 1), 4);
    assert_eq!(run::on_signal(&mut f.state, SIGTERM), Flow::Stop);
}

// ------------------------------------------------------------ reports

#[test]
fn list_follows_the_snapshot_and_stats_every_worker() {
    let mut f = Fixture::new("list");
    let l = f.ask(json!({"cmd": "list"}));
    let vs = &l["virtual_servers"][0];
    assert_eq!(vs["name"], "web");
    assert_eq!(vs["real_servers"][0]["address"], RS1);
    assert_eq!(vs["real_servers"][0]["weight"], 2);
    let s = f.ask(json!({"cmd": "stats"}));
    assert_eq!(s["workers"].as_array().unwrap().len(), 2);
    assert_eq!(s["workers"][1]["lcore"], 2);
    assert_eq!(s["total"]["connections"], 0);
}

#[test]
fn conns_gathers_every_workers_answer() {
    let mut f = Fixture::new("conns");
    let ep = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
    let conn = ConnInfo {
        protocol: "tcp",
        client: ep("198.51.100.7:40000"),
        virtual_server: ep("203.0.113.100:80"),
        real_server: ep(RS1),
        local: None,
        state: "ESTABLISHED",
        expires_in_s: 899,
        packets_in: 3,
        packets_out: 2,
        bytes_in: 180,
        bytes_out: 120,
    };
    let answering: Vec<_> = std::mem::take(&mut f.workers)
        .into_iter()
        .map(|rx| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                if let Ok(Command::DumpConns { limit, reply }) = rx.recv() {
                    let _ = reply.send(vec![conn; limit.min(2)]);
                }
            })
        })
        .collect();
    let a = f.ask(json!({"cmd": "conns", "limit": 3}));
    for t in answering {
        t.join().unwrap();
    }
    let list = a["connections"].as_array().unwrap();
    assert_eq!(list.len(), 3, "two from each worker, cut at the limit");
    assert_eq!(
        list[0],
        json!({
            "protocol": "tcp",
            "client": "198.51.100.7:40000",
            "virtual_server": "203.0.113.100:80",
            "real_server": RS1,
            "state": "ESTABLISHED",
            "expires_in_s": 899,
            "packets_in": 3,
            "packets_out": 2,
            "bytes_in": 180,
            "bytes_out": 120,
        })
    );
}

#[test]
fn final_stats_carry_the_workers_and_the_virtual_servers() {
    let mut f = Fixture::new("final");
    f.health.report(1, false);
    f.state.poll_health();
    let s = f.state.final_stats();
    assert_eq!(s["workers"].as_array().unwrap().len(), 2);
    assert_eq!(s["virtual_servers"][0]["real_servers"][1]["health"], "down");
}

#[test]
fn metrics_read_health_and_weights_from_the_snapshot() {
    let mut f = Fixture::new("metrics");
    let source = f
        .state
        .metrics_source(super::health::HealthChecker::new(Vec::new()).view());
    f.health.report(0, false);
    f.state.poll_health();
    f.ask(weight_request(RS2, 0));
    let m = source();
    assert_eq!(m.health, vec![vec![false, true]]);
    assert_eq!(m.weights, vec![vec![2, 0]]);
    assert_eq!(m.workers.len(), 2);
}

// ------------------------------------------------------------ requests

#[test]
fn malformed_requests_are_answered_with_an_error() {
    let mut f = Fixture::new("malformed");
    assert_eq!(
        f.ask(json!({"cmd": "dance"})),
        json!({"error": "unknown command \"dance\""})
    );
    assert_eq!(
        f.ask(json!({"verb": "list"})),
        json!({"error": "request has no \"cmd\""})
    );
    assert_eq!(
        f.ask(json!({"cmd": "ha"})),
        json!({"error": "ha needs master, backup or status"})
    );
    assert_eq!(
        f.ask(json!({"cmd": "ha", "action": "fault"})),
        json!({"error": "ha fault: expected master, backup or status"})
    );
}

// ------------------------------------------------------------ HA

#[test]
fn ha_status_without_ha_is_standalone_and_roles_are_refused() {
    let mut f = Fixture::new("ha-none");
    let s = f.ask(json!({"cmd": "ha", "action": "status"}));
    assert_eq!(s["role"], "standalone");
    assert_eq!(s["configured"], false);
    let a = f.ask(json!({"cmd": "ha", "action": "master"}));
    assert_eq!(
        a,
        json!({"error": "HA is not configured on this rvsd (no [ha] section)"})
    );
    assert!(f.sent(0).is_empty());
}

/// An HA runtime on a free local port, starting as backup, its peer a
/// port nobody answers on.
fn backup_ha(workers: &Workers) -> Ha {
    let settings = HaSettings {
        node_id: 1,
        mode: super::ha::SyncMode::Pair {
            initial_master: false,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        peers: vec!["127.0.0.1:9".parse().unwrap()],
        interval: Duration::from_millis(100),
        key: None,
        services: Default::default(),
        timeouts: Default::default(),
    };
    Ha::start(settings, Vec::new(), workers.senders().to_vec()).unwrap()
}

#[test]
fn ha_master_and_backup_change_the_role_and_tell_every_worker() {
    let mut f = Fixture::with_role("ha-roles", |w| {
        Role::new(Some(backup_ha(w)), 0, Duration::ZERO, Instant::now())
    });
    let s = f.ask(json!({"cmd": "ha", "action": "status"}));
    assert_eq!(s["role"], "backup");
    assert_eq!(s["configured"], true);
    let roles = |f: &Fixture, w| -> Vec<bool> {
        f.sent(w)
            .into_iter()
            .filter_map(|c| match c {
                Command::HaRole { master } => Some(master),
                _ => None,
            })
            .collect()
    };

    let a = f.ask(json!({"cmd": "ha", "action": "master"}));
    assert_eq!(a, json!({"ok": true, "message": "now master"}));
    assert_eq!(roles(&f, 0), vec![true]);
    assert_eq!(roles(&f, 1), vec![true]);
    assert_eq!(
        f.ask(json!({"cmd": "ha", "action": "status"}))["role"],
        "master"
    );

    let a = f.ask(json!({"cmd": "ha", "action": "master"}));
    assert_eq!(a, json!({"ok": true, "message": "already master"}));
    let a = f.ask(json!({"cmd": "ha", "action": "backup"}));
    assert_eq!(a, json!({"ok": true, "message": "now backup"}));
    assert_eq!(roles(&f, 1), vec![true, false]);
}

#[test]
fn a_new_master_sends_its_gratuitous_arp_rounds_spaced_from_one_worker() {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel()).unzip();
    let workers = Workers::new(senders, Vec::new());
    let t0 = Instant::now();
    let mut role = Role::new(Some(backup_ha(&workers)), 2, Duration::from_secs(1), t0);
    role.tick(&workers, t0);
    assert_eq!(
        receivers[0].try_iter().count(),
        0,
        "a backup announces nothing"
    );

    role.set_master(true, &workers, t0).unwrap();
    let garps =
        |rx: &Receiver<Command>| rx.try_iter().filter(|c| matches!(c, Command::Garp)).count();
    role.tick(&workers, t0);
    assert_eq!(garps(&receivers[0]), 1);
    role.tick(&workers, t0 + Duration::from_millis(500));
    assert_eq!(garps(&receivers[0]), 0, "not yet due");
    role.tick(&workers, t0 + Duration::from_secs(1));
    role.tick(&workers, t0 + Duration::from_secs(5));
    assert_eq!(garps(&receivers[0]), 1, "two rounds in all");
    assert_eq!(garps(&receivers[1]), 0, "one worker announces");
}

#[test]
fn a_cluster_node_refuses_a_role_and_tells_no_worker() {
    let mut f = Fixture::with_role("cluster-role", |w| {
        let settings = HaSettings {
            node_id: 1,
            mode: super::ha::SyncMode::Active {
                join_timeout: Duration::from_millis(100),
            },
            listen: "127.0.0.1:0".parse().unwrap(),
            peers: vec!["127.0.0.1:9".parse().unwrap()],
            interval: Duration::from_millis(100),
            key: None,
            services: Default::default(),
            timeouts: Default::default(),
        };
        let ha = Ha::start(settings, Vec::new(), w.senders().to_vec()).unwrap();
        Role::new(Some(ha), 0, Duration::ZERO, Instant::now())
    });
    let a = f.ask(json!({"cmd": "ha", "action": "backup"}));
    assert!(a["error"].as_str().unwrap().contains("[cluster]"), "{a}");
    let roles = f
        .sent(0)
        .into_iter()
        .filter(|c| matches!(c, Command::HaRole { .. }))
        .count();
    assert_eq!(roles, 0);
    assert_eq!(
        f.ask(json!({"cmd": "ha", "action": "status"}))["role"],
        "active"
    );
}

// ------------------------------------------------------------ the loop

#[test]
fn link_watch_reports_each_change_once() {
    let up = Cell::new([true, true]);
    let mut links = LinkWatch::new(vec!["ext".into(), "int".into()], || up.get().to_vec());
    assert!(links.poll().is_empty());
    up.set([true, false]);
    assert_eq!(links.poll(), vec![(1, false)]);
    assert!(links.poll().is_empty());
    up.set([true, true]);
    assert_eq!(links.poll(), vec![(1, true)]);
}

#[test]
fn a_tick_applies_health_and_stops_on_a_stop_signal() {
    let mut f = Fixture::new("tick");
    let mut links = LinkWatch::new(vec!["ext".into()], || vec![true]);
    f.health.report(1, false);
    assert_eq!(
        run::tick(&mut f.state, None, &mut links, []),
        Flow::Continue
    );
    assert!(f.one_snapshot().is_down(0, 1));
    assert_eq!(
        run::tick(&mut f.state, None, &mut links, [SIGTERM]),
        Flow::Stop
    );
}

// ------------------------------------------------- reload: what it cannot apply

/// A fixture whose state knows the configuration it started with.
fn with_running_config(name: &str) -> Fixture {
    let mut f = Fixture::new(name);
    let config = Config::load(&f.path).unwrap();
    f.state.set_running_config(config);
    f
}

#[test]
fn reload_names_each_setting_it_cannot_apply_and_sends_nothing() {
    let mut f = with_running_config("reload-unapplied");
    f.write_config(&config_text(2, 1).replace(
        "workers = [1]\n",
        "workers = [1]\n\n[dataplane]\nconn_table_size = 2048\n\n[timeouts]\nudp_s = 30\n",
    ));
    let a = f.ask(json!({"cmd": "reload"}));
    let message = a["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines[0], "reloaded: no change", "{message}");
    assert!(
        lines[1].starts_with("dataplane.conn_table_size: 2048 in the file, 1048576 running"),
        "{message}"
    );
    assert!(lines[1].contains("restart rvsd"), "{message}");
    assert!(
        lines[2].starts_with("timeouts.udp_s: 30 in the file, 300 running"),
        "{message}"
    );
    assert_eq!(lines.len(), 3, "{message}");
    assert!(f.sent(0).is_empty());
}

#[test]
fn reload_applies_the_servers_and_names_the_settings_it_keeps() {
    let mut f = with_running_config("reload-both");
    f.write_config(&config_text(2, 4).replace(
        "addresses = [\"10.1.0.1/24\"]",
        "addresses = [\"10.1.0.2/24\"]",
    ));
    let a = f.ask(json!({"cmd": "reload"}));
    let message = a["message"].as_str().unwrap();
    assert!(message.contains(RS2), "{message}");
    assert!(
        message.contains(
            "interface[1].addresses: [\"10.1.0.2/24\"] in the file, [\"10.1.0.1/24\"] running"
        ),
        "{message}"
    );
    assert_eq!(f.one_snapshot().weight(0, 1), 4);
}

#[test]
fn a_setting_not_applied_is_named_again_at_the_next_reload() {
    let mut f = with_running_config("reload-again");
    f.write_config(&config_text(2, 1).replace("\"0-1\"", "\"0-2\""));
    f.ask(json!({"cmd": "reload"}));
    let a = f.ask(json!({"cmd": "reload"}));
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("dpdk.eal_args: [\"-l\", \"0-2\"] in the file, [\"-l\", \"0-1\"] running"),
        "{a}"
    );
}

#[test]
fn reload_that_adds_servers_grows_every_workers_stats_cell_first() {
    let mut f = Fixture::new("reload-grow");
    let more: String = (20..30)
        .map(|i| format!("\n  [[virtual_server.real_server]]\n  address = \"10.1.0.{i}:8080\"\n"))
        .collect();
    f.write_config(&format!("{}{more}", config_text(2, 1)));
    assert_eq!(f.ask(json!({"cmd": "reload"}))["ok"], true);
    for (_, cell) in f.state.workers().cells() {
        assert!(cell.real_server_room() >= 12, "{}", cell.real_server_room());
    }
    assert_eq!(f.one_snapshot().services()[0].real_servers.len(), 12);
}

// ------------------------------------------------------------ priority groups

#[test]
fn a_reload_that_makes_a_backup_then_a_primary_down_moves_and_counts_the_group() {
    let mut f = Fixture::new("priority");
    let text = config_text(2, 1).replace(
        &format!("address = \"{RS2}\"\n  weight = 1\n"),
        &format!("address = \"{RS2}\"\n  weight = 1\n  backup = true\n"),
    );
    assert!(text.contains("backup = true"), "{text}");
    f.write_config(&text);
    let summary = f.state.reload().unwrap();
    assert!(summary.contains("priority 0 -> 1"), "{summary}");
    let t = f.one_snapshot();
    assert_eq!(t.active_priority(0), Some(0));
    assert_eq!(t.effective_weight(0, 1), 0, "the backup waits");

    f.health.report(0, false);
    f.state.poll_health();
    let t = f.one_snapshot();
    assert_eq!(t.active_priority(0), Some(1));
    assert_eq!(t.effective_weight(0, 1), 1);
    let list = f.ask(json!({"cmd": "list"}));
    let vs = &list["virtual_servers"][0];
    assert_eq!(vs["active_priority"], 1, "{list}");
    assert_eq!(vs["priority_changes"], 1, "{list}");
    assert_eq!(vs["real_servers"][1]["priority"], 1, "{list}");

    // The primary back: new connections go home. Then drained by
    // `rvsadm weight 0`, it is no longer live: the backup again.
    f.health.report(0, true);
    f.state.poll_health();
    let t = f.one_snapshot();
    assert_eq!(t.active_priority(0), Some(0));
    assert_eq!(t.priority_changes(0), 2);
    f.ask(weight_request(RS1, 0));
    let t = f.one_snapshot();
    assert_eq!(
        t.active_priority(0),
        Some(1),
        "a weight-0 primary is not live"
    );
    assert_eq!(t.priority_changes(0), 3);
}

// ------------------------------------------------------------ slow start

#[test]
fn a_tick_without_a_slow_start_sends_nothing() {
    let mut f = Fixture::new("slow-idle");
    f.health.report(0, false);
    f.health.report(0, true);
    f.state.poll_health();
    assert_eq!(f.snapshots(0).len(), 2);
    f.state.tick(Instant::now() + Duration::from_secs(1));
    assert!(f.sent(0).is_empty());
}

#[test]
fn a_server_back_up_ramps_in_the_snapshots_the_ticks_send() {
    let mut f = Fixture::new("slow-ramp");
    let text = config_text(8, 1).replace(
        "forward = \"nat\"\n",
        "forward = \"nat\"\nslow_start_s = 8\n",
    );
    f.write_config(&text);
    f.state.reload().unwrap();
    let t = f.one_snapshot();
    assert_eq!(t.effective_weight(0, 0), 8, "a reload alone begins no ramp");
    f.health.report(0, false);
    f.state.poll_health();
    f.one_snapshot();
    f.health.report(0, true);
    f.state.poll_health();
    let t = f.one_snapshot();
    assert_eq!(t.effective_weight(0, 0), 1);
    assert_eq!(f.listed(0)["slow_start"]["duration_s"], 8);
    f.state.tick(Instant::now() + Duration::from_secs(4));
    let t = f.one_snapshot();
    assert!((3..=5).contains(&t.effective_weight(0, 0)), "half way");
    f.state.tick(Instant::now() + Duration::from_secs(9));
    assert_eq!(f.one_snapshot().effective_weight(0, 0), 8);
    f.state.tick(Instant::now() + Duration::from_secs(20));
    assert!(f.sent(0).is_empty(), "the ramp is over");
}

// ------------------------------------------------------------ passive checks

/// Publishes, as worker `w`, the second real server's handshakes: `ok`
/// completed and `resets` reset.
fn publish_handshakes(f: &Fixture, w: usize, ok: u64, resets: u64) {
    let servers = [
        crate::dataplane::stats::RealServerCounters::default(),
        crate::dataplane::stats::RealServerCounters {
            handshakes: ok + resets,
            handshake_ok: ok,
            handshake_resets: resets,
            ..Default::default()
        },
    ];
    f.state.workers().cells()[w].1.publish_lb(servers.iter(), 0);
}

#[test]
fn a_passive_verdict_takes_the_server_down_until_its_active_check_brings_it_back() {
    let mut f = Fixture::new("passive");
    let text = config_text(1, 1).replace(
        "type = \"none\"",
        "type = \"tcp\"\n\n  [virtual_server.passive_check]\n  enabled = true\n  min_attempts = 10",
    );
    let config = Config::from_toml_str(&text).unwrap();
    f.state.set_passive_checks(&config.virtual_servers);
    let t0 = Instant::now();
    publish_handshakes(&f, 0, 0, 0);
    f.state.poll_passive(t0);
    assert!(f.sent(0).is_empty(), "nothing judged yet");
    // 12 resets of 13 handshakes, over the two workers.
    publish_handshakes(&f, 0, 1, 6);
    publish_handshakes(&f, 1, 0, 6);
    f.state.poll_passive(t0 + Duration::from_millis(200));
    assert!(f.one_snapshot().is_down(0, 1));
    let rs = f.listed(1);
    assert_eq!(
        (rs["health"].as_str(), rs["health_reason"].as_str()),
        (Some("down"), Some("passive"))
    );
    assert_eq!(rs["handshake_resets"], 12);
    assert!(
        f.health.down.lock().unwrap().contains(&(0, 1)),
        "the checker holds it down"
    );
    // Judged once: still down, no second verdict.
    f.state.poll_passive(t0 + Duration::from_millis(400));
    assert!(f.sent(0).is_empty());
    // Its active check brings it back; the counts that took it out are
    // not judged again.
    f.health.report(1, true);
    f.state.poll_health();
    f.state.poll_passive(t0 + Duration::from_millis(600));
    assert!(!f.one_snapshot().is_down(0, 1));
    assert!(f.listed(1).get("health_reason").is_none());
    assert_eq!(f.listed(1)["passive_downs"], 1);
}

#[test]
fn a_failing_server_the_checker_cannot_bring_back_is_not_taken_out() {
    let mut f = Fixture::new("passive-unchecked");
    let text = config_text(1, 1).replace(
        "type = \"none\"",
        "type = \"tcp\"\n\n  [virtual_server.passive_check]\n  enabled = true\n  min_attempts = 10",
    );
    f.state
        .set_passive_checks(&Config::from_toml_str(&text).unwrap().virtual_servers);
    // The scripted checker refuses (as the real one does for a server it
    // does not probe).
    f.health.down.lock().unwrap().insert((0, 1));
    let t0 = Instant::now();
    publish_handshakes(&f, 0, 0, 0);
    f.state.poll_passive(t0);
    publish_handshakes(&f, 0, 0, 12);
    f.state.poll_passive(t0 + Duration::from_millis(200));
    assert!(f.sent(0).is_empty(), "no snapshot: still up");
    assert_eq!(f.listed(1)["health"], "up");
    assert_eq!(f.listed(1)["passive_downs"], 0);
}
