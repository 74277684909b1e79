//! The announcer as the control state drives it: health changes reach
//! the include files at the next tick, and `rvsadm drain` answers. No
//! liveness interface (it needs CAP_NET_ADMIN) and no BIRD: the files
//! alone (the `configure` each change asks for fails and is counted).

use super::{AnnounceSettings, Announcer, WORKER_STALL};
use crate::control::answer::answer;
use crate::control::health::{HealthChange, Target};
use crate::control::role::Role;
use crate::control::state::{ControlState, HealthSource};
use crate::control::workers::Workers;
use crate::dataplane::stats::{StatsCell, WorkerStats};
use crate::lb::service::{
    ForwardMethod, Protocol, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use crate::lb::xmit::Endpoint;
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No probes: the tests change health with `apply_health`.
struct NoChecks;

impl HealthSource for NoChecks {
    fn poll(&mut self) -> Vec<HealthChange> {
        Vec::new()
    }
    fn retarget(&mut self, _: Vec<Target>) {}
    fn up_table(&self, services: &ServiceTable) -> Vec<Vec<bool>> {
        crate::control::servers::up_table(services)
    }
    fn targets(&self) -> Vec<Target> {
        Vec::new()
    }
    fn force_down(&mut self, _: u16, _: u16, _: &str) -> bool {
        false
    }
}

/// A state running 192.0.2.1:80 over two real servers, without workers.
fn state(dir: &Path) -> ControlState {
    state_with(dir, Workers::default())
}

fn state_with(dir: &Path, workers: Workers) -> ControlState {
    let key = ServiceKey {
        vip: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 80),
        protocol: Protocol::Tcp,
    };
    let rs = (0..2).map(|i| (Endpoint::new(Ipv4Addr::new(10, 1, 0, 11 + i), 80), 1));
    let table = ServiceTable::new(vec![VirtualService::new(
        "web",
        key,
        ForwardMethod::Dr,
        SchedulerKind::Rr,
        rs,
    )]);
    ControlState::new(
        Arc::new(table),
        workers,
        Box::new(NoChecks),
        Role::new(None, 0, Duration::ZERO, Instant::now()),
        dir.join("rvsd.toml"),
    )
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-announce-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn announcing(dir: &Path) -> ControlState {
    announcing_with(dir, Workers::default())
}

fn announcing_with(dir: &Path, workers: Workers) -> ControlState {
    let mut s = state_with(dir, workers);
    s.set_announcer(Announcer::without_interface(AnnounceSettings {
        enabled: true,
        bird_socket: dir.join("no-bird.ctl"),
        include_v4: dir.join("bird-vips.conf"),
        include_v6: dir.join("bird-vips6.conf"),
        liveness_interface: "rvs-live".into(),
    }));
    s
}

fn down(state: &mut ControlState, rs: u16) {
    state.apply_health(&HealthChange {
        vs: 0,
        rs,
        name: "web".into(),
        endpoint: format!("10.1.0.{}:80", 11 + rs).parse().unwrap(),
        up: false,
        reason: "test".into(),
    });
}

fn routes(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("bird-vips.conf"))
        .unwrap_or_default()
        .matches("route ")
        .count()
}

#[test]
fn a_vip_leaves_the_include_file_when_its_last_server_goes_down() {
    let d = dir("health");
    let mut s = announcing(&d);
    s.poll_announce(Instant::now());
    assert_eq!(routes(&d), 1);
    down(&mut s, 0);
    s.poll_announce(Instant::now());
    assert_eq!(routes(&d), 1, "one server up is the default quorum");
    down(&mut s, 1);
    s.poll_announce(Instant::now());
    assert_eq!(routes(&d), 0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn nothing_is_announced_until_the_node_has_joined() {
    let d = dir("joined");
    let mut s = announcing(&d);
    s.set_joined(false);
    s.poll_announce(Instant::now());
    assert_eq!(routes(&d), 0);
    s.set_joined(true);
    s.poll_announce(Instant::now());
    assert_eq!(routes(&d), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn rvsadm_drain_withdraws_at_once_and_status_says_draining() {
    let d = dir("drain");
    let mut s = announcing(&d);
    s.poll_announce(Instant::now());
    let doc = answer(&json!({"cmd": "drain", "action": "on"}), &mut s);
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(routes(&d), 0);
    let doc = answer(&json!({"cmd": "drain", "action": "status"}), &mut s);
    assert_eq!(doc["state"], "draining");
    assert_eq!(doc["announced"], json!([]));
    assert_eq!(doc["remaining_connections"], 0);
    let doc = answer(&json!({"cmd": "drain", "action": "off"}), &mut s);
    assert_eq!(doc["message"], "announcing again");
    assert_eq!(routes(&d), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn stopping_withdraws_everything() {
    let d = dir("stop");
    let mut s = announcing(&d);
    s.poll_announce(Instant::now());
    s.stop_announcing();
    assert_eq!(routes(&d), 0);
    s.poll_announce(Instant::now());
    assert_eq!(routes(&d), 0, "not forwarding any more");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn drain_and_announce_status_without_an_announcer_are_errors() {
    let d = dir("off");
    let mut s = state(&d);
    for req in [
        json!({"cmd": "drain", "action": "on"}),
        json!({"cmd": "drain", "action": "status"}),
        json!({"cmd": "announce", "action": "status"}),
    ] {
        let doc = answer(&req, &mut s);
        assert!(
            doc["error"].as_str().unwrap().starts_with("not announcing"),
            "{doc}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_worker_that_stops_polling_withdraws_every_vip_until_it_polls_again() {
    let d = dir("stall");
    let cell = Arc::new(StatsCell::new(4));
    let (tx, _rx) = std::sync::mpsc::channel();
    let mut s = announcing_with(&d, Workers::new(vec![tx], vec![(1, cell.clone())]));
    let polls = |n: u64| WorkerStats {
        idle_polls: n,
        ..Default::default()
    };
    let t0 = Instant::now();
    cell.publish(&polls(1));
    s.poll_announce(t0);
    assert_eq!(routes(&d), 1);
    s.poll_announce(t0 + WORKER_STALL);
    assert_eq!(routes(&d), 0, "no poll published for WORKER_STALL");
    cell.publish(&polls(2));
    s.poll_announce(t0 + WORKER_STALL * 2);
    assert_eq!(routes(&d), 1);
    let _ = std::fs::remove_dir_all(&d);
}
