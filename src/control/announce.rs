//! Tells bird2 which VIPs this node announces (issue 20: active-active
//! behind ECMP). See `docs/dev/h20-announce.md`.
//!
//! Two signals reach BIRD, and both must agree for a VIP to be announced:
//!
//! - the **liveness interface**, a non-persistent TUN device
//!   (`crate::sys::tun`) the announcer holds for rvsd's whole life: up
//!   while rvsd forwards, has joined the cluster and is not drained. BIRD's
//!   static routes go `via "<interface>"`, so when it goes down, or goes
//!   away because rvsd died (even by `kill -9`: the kernel closes the
//!   descriptor), BIRD withdraws every route at once, with no timer;
//! - the **include files**, one `route <VIP>/32 via "<interface>";` line
//!   per healthy VIP (`/128` in the IPv6 file), rewritten atomically when
//!   the set changes, after which BIRD is asked to `configure` over its
//!   control socket (`bird`).
//!
//! The announcer is driven by the control thread's tick: it is given the
//! healthy VIPs (`vips::healthy_vips`), whether the workers forward and
//! whether the node has joined; draining is its own state (`rvsadm
//! drain`). A failure (a file that cannot be written, BIRD unreachable or
//! refusing the configuration) is logged when it starts, counted, and
//! retried at the next tick.

pub mod bird;
#[cfg(test)]
mod state_tests;
pub mod vips;

use super::report::WorkerSnapshot;
use crate::sys::tun::{self, LivenessTun};
use crate::{info, warn};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one exchange with BIRD may take before it counts as a failure
/// (the control thread waits for it).
pub const BIRD_TIMEOUT: Duration = Duration::from_millis(500);
/// The wait before retrying after a first failure to reconfigure BIRD
/// (one control tick); it doubles with each failure in a row, up to
/// `MAX_RETRY`, so a BIRD that accepts and never answers costs the control
/// loop `BIRD_TIMEOUT` every few seconds, not every tick.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// What the announcer needs, whatever config section it comes from (the
/// lead maps `[cluster]` onto it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceSettings {
    /// False: nothing is told to BIRD and no interface is made (sync only).
    pub enabled: bool,
    /// BIRD's control socket.
    pub bird_socket: PathBuf,
    /// The include file of IPv4 VIPs (`/32` routes).
    pub include_v4: PathBuf,
    /// The include file of IPv6 VIPs (`/128` routes).
    pub include_v6: PathBuf,
    /// The liveness TUN interface's name (1 to 15 bytes).
    pub liveness_interface: String,
}

impl AnnounceSettings {
    /// A `[cluster]` section's announcing keys.
    pub fn from_cluster(c: &crate::control::config::ClusterConfig) -> AnnounceSettings {
        AnnounceSettings {
            enabled: c.announce,
            bird_socket: c.bird_socket.clone(),
            include_v4: c.bird_include.clone(),
            include_v6: c.bird_include6.clone(),
            liveness_interface: c.liveness_interface.clone(),
        }
    }
}

impl Default for AnnounceSettings {
    /// The design's defaults (`docs/dev/h20-design.md`).
    fn default() -> AnnounceSettings {
        AnnounceSettings {
            enabled: true,
            bird_socket: PathBuf::from("/run/bird/bird.ctl"),
            include_v4: PathBuf::from("/run/rvs/bird-vips.conf"),
            include_v6: PathBuf::from("/run/rvs/bird-vips6.conf"),
            liveness_interface: "rvs-live".to_string(),
        }
    }
}

/// What the control thread tells the announcer every tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The VIPs whose every virtual server has its quorum of real servers
    /// up (`vips::healthy_vips`).
    pub healthy: BTreeSet<IpAddr>,
    /// The workers forward.
    pub forwarding: bool,
    /// The node has joined its cluster (dumps done or join timeout).
    pub joined: bool,
}

/// The announcer's state as `rvsadm` and the metrics see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnounceStatus {
    /// Announcing is configured and on.
    pub enabled: bool,
    /// `rvsadm drain` is in force.
    pub draining: bool,
    /// The VIPs the include files hold now (what BIRD was asked to
    /// announce).
    pub announced: Vec<IpAddr>,
    /// The liveness interface's name.
    pub interface: String,
    /// The liveness interface is up.
    pub interface_up: bool,
    /// BIRD's last reply to `configure` (or the error reaching it).
    pub last_reply: Option<String>,
    /// Files written and `configure`s that BIRD accepted.
    pub configures: u64,
    /// Failures: a file not written, BIRD not reached, or refusing.
    pub failures: u64,
    /// A change not yet accepted by BIRD: retried at the next tick.
    pub pending: bool,
}

impl AnnounceStatus {
    /// The document `rvsadm announce status` and `drain status` print;
    /// `remaining` is the connections this node still carries.
    pub fn to_json(&self, remaining: u64) -> Value {
        json!({
            "enabled": self.enabled,
            "state": if self.draining { "draining" } else { "announcing" },
            "announced": self.announced.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            "interface": self.interface,
            "interface_up": self.interface_up,
            "bird_last_reply": self.last_reply,
            "configures": self.configures,
            "failures": self.failures,
            "pending": self.pending,
            "remaining_connections": remaining,
        })
    }
}

/// How long a worker may go without publishing a new poll count before
/// the node counts as not forwarding (workers publish every 100 ms, busy
/// or idle).
pub const WORKER_STALL: Duration = Duration::from_secs(2);

/// Tells whether the workers still run, from their published poll counts
/// (busy + idle polls grow at every publication of a looping worker): a
/// worker whose count has not moved for `WORKER_STALL` is stalled, and a
/// node with a stalled worker must not attract traffic.
#[derive(Debug, Default)]
pub struct WorkerWatch {
    /// Per worker: the poll count last seen and when it last moved.
    seen: Vec<(u64, Instant)>,
    /// The workers found stalled at the last look (logged on change).
    stalled: Vec<usize>,
}

impl WorkerWatch {
    /// Takes the workers' poll counts at `now` (in worker order); true
    /// while none is stalled. A worker seen for the first time starts its
    /// clock now.
    pub fn observe(&mut self, now: Instant, polls: &[u64]) -> bool {
        if self.seen.len() != polls.len() {
            self.seen = polls.iter().map(|&p| (p, now)).collect();
        }
        let mut stalled = Vec::new();
        for (i, (&p, seen)) in polls.iter().zip(self.seen.iter_mut()).enumerate() {
            if p != seen.0 {
                *seen = (p, now);
            } else if now.saturating_duration_since(seen.1) >= WORKER_STALL {
                stalled.push(i);
            }
        }
        if stalled != self.stalled {
            if stalled.is_empty() {
                info!("announce: every worker polls again");
            } else {
                warn!(
                    "announce: worker(s) {stalled:?} published no poll for {WORKER_STALL:?}: \
                     not forwarding, withdrawing"
                );
            }
            self.stalled = stalled;
        }
        self.stalled.is_empty()
    }
}

/// The connections this node still carries, summed over the workers'
/// published snapshots: what `rvsadm drain status` waits to see fall.
/// Only connections that carried a packet here count
/// (`WorkerStats::local_conns`); the copies installed by sync from peers
/// do not, since the router sends this node nothing once it is drained.
pub fn carried_connections(workers: &[WorkerSnapshot]) -> u64 {
    workers.iter().map(|w| w.stats.local_conns).sum()
}

/// Tells BIRD what to announce; owns the liveness interface (dropping the
/// announcer destroys it, which withdraws everything).
#[derive(Debug)]
pub struct Announcer {
    settings: AnnounceSettings,
    tun: Option<LivenessTun>,
    drained: bool,
    /// What the include files hold; `None` before the first write.
    written: Option<BTreeSet<IpAddr>>,
    /// The files changed and BIRD has not yet accepted a `configure`.
    pending: bool,
    /// A failure streak is running (logged once, at its start).
    failing: bool,
    /// `configure` failures in a row, and when the next try is due.
    streak: u32,
    next_try: Option<Instant>,
    /// The interface's state as last set; `None`: unknown (set it).
    up: Option<bool>,
    status: AnnounceStatus,
}

impl Announcer {
    /// Starts announcing as `settings` say: checks the interface name,
    /// creates the liveness interface (down) and writes both include files
    /// empty, so a BIRD (re)started from now on finds them. Nothing is
    /// announced before the first `tick` that says so. With `enabled`
    /// false, nothing is created and every tick does nothing. The error
    /// names the setting that failed.
    pub fn start(settings: AnnounceSettings) -> Result<Announcer, String> {
        let enabled = settings.enabled;
        let mut a = Announcer::idle(settings, enabled);
        if !a.settings.enabled {
            return Ok(a);
        }
        let name = a.settings.liveness_interface.clone();
        if let Some(why) = tun::invalid_name(&name) {
            return Err(format!("liveness_interface: {why}"));
        }
        a.tun = Some(
            LivenessTun::create(&name).map_err(|e| format!("liveness_interface {name:?}: {e}"))?,
        );
        a.set_interface(false);
        a.write_files(&BTreeSet::new())?;
        info!(
            "announce: liveness interface {name} created; BIRD include files {} and {}",
            a.settings.include_v4.display(),
            a.settings.include_v6.display()
        );
        Ok(a)
    }

    /// An enabled announcer without a liveness interface (which needs
    /// CAP_NET_ADMIN): the files and BIRD's socket alone, for tests.
    #[cfg(test)]
    pub(crate) fn without_interface(settings: AnnounceSettings) -> Announcer {
        Announcer::idle(settings, true)
    }

    /// An announcer that has announced nothing yet, without its interface.
    fn idle(settings: AnnounceSettings, enabled: bool) -> Announcer {
        Announcer {
            status: AnnounceStatus {
                enabled,
                interface: settings.liveness_interface.clone(),
                ..Default::default()
            },
            settings,
            tun: None,
            drained: false,
            written: None,
            pending: false,
            failing: false,
            streak: 0,
            next_try: None,
            up: None,
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &AnnounceSettings {
        &self.settings
    }

    /// Its status now.
    pub fn status(&self) -> &AnnounceStatus {
        &self.status
    }

    /// `rvsadm drain` (true) and `drain off` (false); applied at the next
    /// tick. True when that changed the state.
    pub fn set_drained(&mut self, drained: bool) -> bool {
        let changed = self.drained != drained;
        self.drained = drained;
        self.status.draining = drained;
        changed
    }

    /// True while drained.
    pub fn is_drained(&self) -> bool {
        self.drained
    }

    /// One tick: the interface up iff forwarding, joined and not drained;
    /// the healthy VIPs written and BIRD reconfigured when they differ from
    /// what the files hold (nothing while not live); a pending
    /// `configure` retried once its wait after the last failure has passed
    /// (`FIRST_RETRY`, doubling to `MAX_RETRY`).
    pub fn tick(&mut self, inputs: &Inputs, now: Instant) {
        if !self.settings.enabled {
            return;
        }
        let live = inputs.forwarding && inputs.joined && !self.drained;
        let want = if live {
            inputs.healthy.clone()
        } else {
            BTreeSet::new()
        };
        // Withdrawing: the interface first (instant); announcing: the
        // routes first, so BIRD has them when the interface comes up.
        if !live {
            self.set_interface(false);
        }
        if self.written.as_ref() != Some(&want) {
            if let Err(e) = self.write_files(&want) {
                self.fail(e);
            }
        }
        if self.pending && self.next_try.is_none_or(|t| now >= t) {
            self.configure(now);
        }
        if live {
            self.set_interface(true);
        }
    }

    /// Withdraws everything at once (rvsd stopping): the interface down
    /// and the files emptied, BIRD told once (whatever the retry wait).
    pub fn withdraw_all(&mut self, now: Instant) {
        if !self.settings.enabled {
            return;
        }
        self.next_try = None;
        self.tick(&Inputs::default(), now);
    }

    fn set_interface(&mut self, up: bool) {
        let Some(tun) = &self.tun else { return };
        if self.up == Some(up) {
            return;
        }
        match tun.set_up(up) {
            Ok(()) => {
                info!(
                    "announce: liveness interface {} {}",
                    tun.name(),
                    if up { "up" } else { "down" }
                );
                self.up = Some(up);
                self.status.interface_up = up;
            }
            Err(e) => {
                self.up = None;
                self.fail(format!("liveness interface: {e}"));
            }
        }
    }

    /// Writes both files for `vips`; BIRD is then due a `configure`.
    fn write_files(&mut self, vips: &BTreeSet<IpAddr>) -> Result<(), String> {
        let iface = &self.settings.liveness_interface;
        for (path, v6) in [
            (&self.settings.include_v4, false),
            (&self.settings.include_v6, true),
        ] {
            vips::write_atomically(path, &vips::include_text(vips, v6, iface))
                .map_err(|e| format!("include file {e}"))?;
        }
        let list: Vec<String> = vips.iter().map(|ip| ip.to_string()).collect();
        info!(
            "announce: {} VIP(s) in the include files{}{}",
            vips.len(),
            if list.is_empty() { "" } else { ": " },
            list.join(", ")
        );
        self.written = Some(vips.clone());
        self.status.announced = vips.iter().copied().collect();
        self.pending = true;
        self.status.pending = true;
        Ok(())
    }

    fn configure(&mut self, now: Instant) {
        let ok = self.try_configure();
        if ok {
            self.streak = 0;
            self.next_try = None;
        } else {
            self.streak = self.streak.saturating_add(1);
            let wait = FIRST_RETRY
                .saturating_mul(1 << (self.streak - 1).min(16))
                .min(MAX_RETRY);
            self.next_try = Some(now + wait);
        }
    }

    /// One `configure`; true when BIRD accepted it.
    fn try_configure(&mut self) -> bool {
        match bird::command(&self.settings.bird_socket, "configure", BIRD_TIMEOUT) {
            Ok(reply) if reply.is_success() => {
                if self.failing {
                    info!("announce: BIRD reconfigured again: {}", reply.summary());
                }
                self.failing = false;
                self.pending = false;
                self.status.pending = false;
                self.status.configures += 1;
                self.status.last_reply = Some(reply.summary());
                true
            }
            Ok(reply) => {
                self.status.last_reply = Some(reply.summary());
                self.fail(format!("BIRD refused configure: {}", reply.summary()));
                false
            }
            Err(e) => {
                self.status.last_reply = Some(format!("error: {e}"));
                self.fail(format!("BIRD control socket: {e}"));
                false
            }
        }
    }

    /// Counts a failure; logs the first of a streak.
    fn fail(&mut self, what: String) {
        self.status.failures += 1;
        if !self.failing {
            warn!("announce: {what}; retrying");
        }
        self.failing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off() -> Announcer {
        Announcer::start(AnnounceSettings {
            enabled: false,
            ..Default::default()
        })
        .unwrap()
    }

    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A BIRD control socket in `dir` that greets, reads a command and
    /// answers `reply`; counts the commands.
    fn fake_bird(dir: &Path, reply: &'static str) -> Arc<AtomicUsize> {
        let path = dir.join("bird.ctl");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let _ = s.write_all(b"0001 BIRD 2.0.12 ready.\n");
                let mut cmd = String::new();
                let _ = BufReader::new(s.try_clone().unwrap()).read_line(&mut cmd);
                if cmd == "configure\n" {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                let _ = s.write_all(reply.as_bytes());
            }
        });
        count
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-announce-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn settings(dir: &Path) -> AnnounceSettings {
        AnnounceSettings {
            enabled: true,
            bird_socket: dir.join("bird.ctl"),
            include_v4: dir.join("bird-vips.conf"),
            include_v6: dir.join("bird-vips6.conf"),
            liveness_interface: "rvs-live".into(),
        }
    }

    fn live(vips: &[&str]) -> Inputs {
        Inputs {
            healthy: vips.iter().map(|v| v.parse().unwrap()).collect(),
            forwarding: true,
            joined: true,
        }
    }

    #[test]
    fn a_new_set_is_written_and_bird_reconfigured_once() {
        let d = dir("once");
        let calls = fake_bird(&d, "0002-Reading configuration\n0003 Reconfigured\n");
        let mut a = Announcer::without_interface(settings(&d));
        a.tick(&live(&["192.0.2.1", "2001:db8::1"]), Instant::now());
        a.tick(&live(&["192.0.2.1", "2001:db8::1"]), Instant::now());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let v4 = std::fs::read_to_string(d.join("bird-vips.conf")).unwrap();
        assert!(v4.contains("route 192.0.2.1/32 via \"rvs-live\";"), "{v4}");
        let v6 = std::fs::read_to_string(d.join("bird-vips6.conf")).unwrap();
        assert!(
            v6.contains("route 2001:db8::1/128 via \"rvs-live\";"),
            "{v6}"
        );
        assert_eq!(a.status().configures, 1);
        assert_eq!(
            a.status().last_reply.as_deref(),
            Some("0003 Reading configuration; Reconfigured")
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn nothing_is_announced_before_the_node_has_joined() {
        let d = dir("join");
        let _calls = fake_bird(&d, "0003 Reconfigured\n");
        let mut a = Announcer::without_interface(settings(&d));
        a.tick(
            &Inputs {
                joined: false,
                ..live(&["192.0.2.1"])
            },
            Instant::now(),
        );
        assert!(a.status().announced.is_empty());
        a.tick(&live(&["192.0.2.1"]), Instant::now());
        assert_eq!(
            a.status().announced,
            ["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn draining_empties_the_files_and_drain_off_announces_again() {
        let d = dir("drain");
        let calls = fake_bird(&d, "0003 Reconfigured\n");
        let mut a = Announcer::without_interface(settings(&d));
        a.tick(&live(&["192.0.2.1"]), Instant::now());
        a.set_drained(true);
        a.tick(&live(&["192.0.2.1"]), Instant::now());
        let v4 = std::fs::read_to_string(d.join("bird-vips.conf")).unwrap();
        assert!(!v4.contains("route"), "{v4}");
        a.set_drained(false);
        a.tick(&live(&["192.0.2.1"]), Instant::now());
        assert_eq!(a.status().announced.len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_refused_configure_is_counted_and_retried_after_a_doubling_wait() {
        let d = dir("refused");
        let calls = fake_bird(&d, "8002 bird-vips.conf:2:1 syntax error\n");
        let mut a = Announcer::without_interface(settings(&d));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        a.tick(&live(&["192.0.2.1"]), t0);
        a.tick(&live(&["192.0.2.1"]), at(50));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "not before FIRST_RETRY");
        a.tick(&live(&["192.0.2.1"]), at(100));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        a.tick(&live(&["192.0.2.1"]), at(250));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the wait doubled to 200 ms"
        );
        a.tick(&live(&["192.0.2.1"]), at(300));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(a.status().failures, 3);
        assert!(a.status().pending);
        assert!(a
            .status()
            .last_reply
            .as_deref()
            .unwrap()
            .starts_with("8002"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unreachable_bird_is_a_failure_and_the_files_are_still_written() {
        let d = dir("nobird");
        let mut a = Announcer::without_interface(settings(&d));
        a.tick(&live(&["192.0.2.1"]), Instant::now());
        assert_eq!(a.status().failures, 1);
        assert!(a.status().pending);
        assert!(std::fs::read_to_string(d.join("bird-vips.conf"))
            .unwrap()
            .contains("192.0.2.1"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn workers_whose_polls_move_are_forwarding() {
        let mut w = WorkerWatch::default();
        let t0 = Instant::now();
        assert!(w.observe(t0, &[10, 20]));
        assert!(w.observe(t0 + WORKER_STALL * 3, &[11, 25]));
    }

    #[test]
    fn a_worker_whose_polls_stop_for_the_stall_time_stops_forwarding() {
        let mut w = WorkerWatch::default();
        let t0 = Instant::now();
        assert!(w.observe(t0, &[10, 20]));
        assert!(w.observe(t0 + WORKER_STALL / 2, &[11, 20]));
        assert!(!w.observe(t0 + WORKER_STALL, &[12, 20]));
        assert!(w.observe(t0 + WORKER_STALL, &[12, 21]), "moving again");
    }

    #[test]
    fn no_workers_is_not_a_stall() {
        assert!(WorkerWatch::default().observe(Instant::now(), &[]));
    }

    #[test]
    fn a_disabled_announcer_creates_nothing_and_ticks_do_nothing() {
        let mut a = off();
        a.tick(
            &Inputs {
                healthy: BTreeSet::from(["192.0.2.1".parse().unwrap()]),
                forwarding: true,
                joined: true,
            },
            Instant::now(),
        );
        assert!(a.status().announced.is_empty());
        assert_eq!(a.status().configures + a.status().failures, 0);
    }

    #[test]
    fn drain_is_a_state_the_status_reports() {
        let mut a = off();
        assert!(a.set_drained(true));
        assert!(!a.set_drained(true));
        assert_eq!(a.status().to_json(7)["state"], "draining");
        assert_eq!(a.status().to_json(7)["remaining_connections"], 7);
        assert!(a.set_drained(false));
        assert_eq!(a.status().to_json(0)["state"], "announcing");
    }

    #[test]
    fn a_bad_interface_name_is_refused_naming_the_setting() {
        let e = Announcer::start(AnnounceSettings {
            liveness_interface: "far-too-long-a-name".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.starts_with("liveness_interface:"), "{e}");
    }
}
