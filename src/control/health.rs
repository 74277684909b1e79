//! Health checks of real servers, run by the control side through the host
//! kernel's network stack.
//!
//! Why the kernel and not the data plane: a probe is an ordinary TCP
//! connection (and, for `http`, a request; for `tls` and `https`, a TLS
//! handshake first, `tls`), which the kernel does well and
//! the poll-mode workers should never spend cycles on. So probes leave
//! through the host's own interfaces (a management network that reaches
//! the real servers), not through the DPDK ports; a deployment must give
//! the host a route to every real server. A server that the management
//! network reaches but the data path does not is a misconfiguration that
//! health checks cannot see.
//!
//! Why one thread for all probes: a probe mostly waits (for a handshake,
//! an answer, or its timeout), and one slow server must never delay the
//! checks of the others. A thread per target got that by blocking, at the
//! cost of a thread per server (1,005 threads for 1,000 servers); now
//! every probe is a non-blocking state machine (`probe`) driven by one
//! event loop thread (`event_loop`, which says why epoll through `mio`),
//! started with the first probed target, so 10,000 servers run on one
//! thread. The first checks are spread over the interval (target `i` of
//! `n` starts at `i * interval / n`) so the servers are not all probed at
//! once.
//!
//! The loop only probes and reports over a channel; the rise/fall state
//! machine ([`HealthState`]) runs in the control thread, in
//! [`HealthChecker::poll`], which the control loop calls every tick and
//! which never blocks. What it returns are state changes with a reason,
//! for the log and for the message that tells the workers.
//!
//! A server starts **up**: a fresh start (or a server a reload adds) serves
//! at once, as keepalived does by default, and a dead one is taken out
//! after `fall` failed checks. A check of type `none` never probes: the
//! server is always up.

mod cert;
mod check;
mod datagram;
mod dns;
mod dns_wire;
mod event_loop;
mod expiry;
mod icmp;
mod probe;
mod script;
mod sockets;
#[cfg(test)]
mod test_servers;
mod tls;
#[cfg(test)]
mod tls_tests;
mod udp;

pub use check::probe;

use super::config::{HealthCheckConfig, HealthCheckKind, VirtualServerConfig};
use crate::lb::service::ServiceTable;
use event_loop::{Job, LoopHandle, Report};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long dropping a [`HealthChecker`] waits for its loop thread to end
/// (it ends at once: the loop never blocks).
const STOP_WAIT: Duration = Duration::from_millis(300);

// ------------------------------------------------------------ rise / fall

/// The rise/fall state machine of one real server, as keepalived's:
/// an up server goes down after `fall` consecutive failures; a down server
/// comes up after `rise` consecutive successes. A success resets the
/// failure count and a failure the success count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    /// Whether the server takes new connections.
    pub up: bool,
    /// Successes in a row (0 after a failure).
    pub successes: u32,
    /// Failures in a row (0 after a success).
    pub failures: u32,
}

impl Default for HealthState {
    /// Up, with no history: a fresh start serves at once.
    fn default() -> Self {
        HealthState::new()
    }
}

impl HealthState {
    /// Up, with no history: a fresh start serves at once, and a dead
    /// server is taken out after `fall` checks.
    pub const fn new() -> HealthState {
        HealthState {
            up: true,
            successes: 0,
            failures: 0,
        }
    }

    /// Down, with no history (`rise` successes bring it up).
    pub const fn down() -> HealthState {
        HealthState {
            up: false,
            successes: 0,
            failures: 0,
        }
    }

    /// Applies one check result; `Some(up)` when the state changed.
    pub fn record(&mut self, success: bool, rise: u32, fall: u32) -> Option<bool> {
        if success {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if !self.up && self.successes >= rise {
                self.up = true;
                return Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.up && self.failures >= fall {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

// ------------------------------------------------------------ one probe

/// The result of one probe.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// Whether the server passed.
    pub ok: bool,
    /// What happened, for the log: `connect to 10.1.0.11:8080 failed:
    /// Connection refused`, `HTTP GET / on 10.1.0.11:8080 answered 500,
    /// expected 200`.
    pub detail: String,
    /// How long the probe took (a timed-out one: about its timeout).
    pub latency: Duration,
    /// When it started: its timeout runs from here, and the starts of one
    /// target's probes are an interval apart.
    pub started: Instant,
    /// For `tls` and `https` checks that completed the handshake: the
    /// server certificate's notAfter (its expiry), for the expiry warning
    /// and the `rvs_health_check_cert_expiry_timestamp_seconds` metric.
    /// `None` for other kinds.
    pub cert_not_after: Option<std::time::SystemTime>,
    /// The run-time weight this result asks for: a `script` check with
    /// `script_dynamic_weight` that exited 2 to 255 (`code - 2`). `None`
    /// for every other result (for such a script's exit 0: the configured
    /// weight).
    pub weight: Option<u32>,
}

// ------------------------------------------------------------ latency

/// Upper bounds (seconds) of the health-check latency histogram's buckets,
/// from half a millisecond to ten seconds; a last bucket takes the rest.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Probe durations of one target, in Prometheus histogram form.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyHistogram {
    /// Probes per bucket (not cumulative): `counts[i]` took at most
    /// `LATENCY_BUCKETS[i]` seconds and more than the bucket before; the
    /// last entry counts the slower ones.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    /// Sum of all durations, seconds.
    pub sum: f64,
    /// Number of probes.
    pub count: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: [0; LATENCY_BUCKETS.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }
}

impl LatencyHistogram {
    /// Counts one probe that took `d`.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += s;
        self.count += 1;
    }

    /// (upper bound, probes in that bucket) pairs, the last bound
    /// `f64::MAX` for +Inf: what `prometheus-client` encodes.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

// ------------------------------------------------------------ the checker

/// One real server to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its service's index in the service table.
    pub vs: u16,
    /// Its index within the service.
    pub rs: u16,
    /// Where probes go.
    pub endpoint: SocketAddr,
    /// How it is probed (its virtual server's `health_check`).
    pub check: HealthCheckConfig,
    /// Its virtual server's name, for logs.
    pub name: String,
}

/// A real server went up or down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    /// Its service's index.
    pub vs: u16,
    /// Its index within the service.
    pub rs: u16,
    /// Its virtual server's name (for the log line).
    pub name: String,
    /// The real server's address (for the log line).
    pub endpoint: SocketAddr,
    /// The new state.
    pub up: bool,
    /// Why, for the log: the last probe's result and the count that
    /// decided, e.g. `connect to 10.1.0.11:8080 failed: Connection refused
    /// (3 failures in a row)`.
    pub reason: String,
}

/// A `script` check with `script_dynamic_weight` passed: the real
/// server's run-time weight it asks for (keepalived's `misc_dynamic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightChange {
    /// Its service's index.
    pub vs: u16,
    /// Its index within the service.
    pub rs: u16,
    /// Its virtual server's name (for the log line).
    pub name: String,
    /// The real server's address (for the log line).
    pub endpoint: SocketAddr,
    /// The weight asked for; `None`: the configured one (the script
    /// exited 0).
    pub weight: Option<u32>,
    /// The probe's result, for the log.
    pub reason: String,
}

/// What the checker knows of one target.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetStatus {
    /// The target.
    pub target: Target,
    /// Its rise/fall state.
    pub state: HealthState,
    /// Probes finished since it was first checked (kept across reloads).
    pub checks: u64,
    /// How many of them failed.
    pub failed: u64,
    /// The last probe's result, once there was one.
    pub last: Option<CheckResult>,
    /// Probe durations.
    pub latency: LatencyHistogram,
    /// Its last up/down change and why (the reason rvsd logged), for the
    /// status page; `None` until it first changed.
    pub last_change: Option<LastChange>,
}

/// A real server's last up/down change, as the status page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastChange {
    /// The state it changed to.
    pub up: bool,
    /// Why (`HealthChange::reason`).
    pub reason: String,
    /// When.
    pub at: Instant,
}

/// A read-only handle on the checker's statuses, for other threads (the
/// metrics server): cheap to clone, never blocks the checks.
#[derive(Clone, Debug)]
pub struct HealthView(Arc<Mutex<Vec<TargetStatus>>>);

impl HealthView {
    fn lock(&self) -> MutexGuard<'_, Vec<TargetStatus>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every target's status, in target order.
    pub fn statuses(&self) -> Vec<TargetStatus> {
        self.lock().clone()
    }

    /// Up (true) or down per service, per real server, shaped like
    /// `services`; servers without a target (unchecked, draining) are up.
    pub fn up_table(&self, services: &ServiceTable) -> Vec<Vec<bool>> {
        let mut table: Vec<Vec<bool>> = services
            .services()
            .iter()
            .map(|s| vec![true; s.real_servers.len()])
            .collect();
        for s in self.lock().iter() {
            if let Some(slot) = table
                .get_mut(usize::from(s.target.vs))
                .and_then(|v| v.get_mut(usize::from(s.target.rs)))
            {
                *slot = s.state.up;
            }
        }
        table
    }
}

/// Runs the health checks of a set of targets from one event loop thread
/// (none while no target is probed: `type = "none"` never probes), and
/// turns their results into up/down changes.
///
/// ```no_run
/// # use rvs::control::health::{HealthChecker, Target};
/// # fn targets() -> Vec<Target> { Vec::new() }
/// let mut checker = HealthChecker::new(targets());
/// loop {
///     for change in checker.poll() {
///         eprintln!("{} {}: {}", change.name, if change.up { "up" } else { "down" }, change.reason);
///     }
///     std::thread::sleep(std::time::Duration::from_millis(100));
/// #   break;
/// }
/// ```
pub struct HealthChecker {
    /// Parallel to `shared`: each target's id in the loop.
    ids: Vec<u64>,
    /// Target id to its position in `ids`.
    index: HashMap<u64, usize>,
    shared: Arc<Mutex<Vec<TargetStatus>>>,
    results: Receiver<Report>,
    sender: Sender<Report>,
    next_id: u64,
    /// Changes made by `retarget`, returned by the next `poll`.
    pending: Vec<HealthChange>,
    /// Weights asked for by the results `poll` applied, returned by
    /// `weight_changes`.
    weights: Vec<WeightChange>,
    /// The loop thread, once a target is probed.
    event_loop: Option<LoopHandle>,
    /// One clone held by the loop thread while it runs.
    alive: Arc<()>,
    /// The certificate expiry warnings logged, so each is repeated only
    /// daily.
    expiry: expiry::Warnings,
    /// Targets taken down by `force_down`, by id, and when: results of
    /// probes started before then do not count towards their rise.
    forced: HashMap<u64, Instant>,
}

impl std::fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthChecker")
            .field("targets", &self.ids.len())
            .field("threads", &self.threads())
            .finish()
    }
}

impl HealthChecker {
    /// Starts checking `targets`, every one up; the first checks are spread
    /// over each target's interval.
    pub fn new(targets: Vec<Target>) -> HealthChecker {
        let (sender, results) = mpsc::channel();
        let mut checker = HealthChecker {
            ids: Vec::new(),
            index: HashMap::new(),
            shared: Arc::new(Mutex::new(Vec::new())),
            results,
            sender,
            next_id: 0,
            pending: Vec::new(),
            weights: Vec::new(),
            event_loop: None,
            alive: Arc::new(()),
            expiry: expiry::Warnings::default(),
            forced: HashMap::new(),
        };
        checker.retarget(targets);
        checker
    }

    fn lock(&self) -> MutexGuard<'_, Vec<TargetStatus>> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle other threads read the statuses through.
    pub fn view(&self) -> HealthView {
        HealthView(self.shared.clone())
    }

    /// Every target's status, in target order.
    pub fn states(&self) -> Vec<TargetStatus> {
        self.lock().clone()
    }

    /// The targets checked now, in order (what the last `retarget` or
    /// `new` was given).
    pub fn targets(&self) -> Vec<Target> {
        self.lock().iter().map(|s| s.target.clone()).collect()
    }

    /// Up (true) or down per service, per real server, shaped like
    /// `services` (see `HealthView::up_table`).
    pub fn up_table(&self, services: &ServiceTable) -> Vec<Vec<bool>> {
        self.view().up_table(services)
    }

    /// Whether real server `rs` of service `vs` is up (true when it is not
    /// checked).
    pub fn is_up(&self, vs: u16, rs: u16) -> bool {
        self.lock()
            .iter()
            .find(|s| s.target.vs == vs && s.target.rs == rs)
            .is_none_or(|s| s.state.up)
    }

    /// Threads running the checks: 1 once a target has been probed, 0
    /// before (and after the loop ended).
    pub fn threads(&self) -> usize {
        Arc::strong_count(&self.alive) - 1
    }

    /// Targets probed over the network (those whose check is not `none`).
    pub fn probed(&self) -> usize {
        self.lock()
            .iter()
            .filter(|s| s.target.check.kind != HealthCheckKind::None)
            .count()
    }

    /// Applies every result the loop reported since the last call and
    /// returns the state changes, in the order they happened. Never blocks.
    pub fn poll(&mut self) -> Vec<HealthChange> {
        let mut changes = std::mem::take(&mut self.pending);
        let mut statuses = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        // Never disconnected: the checker holds a sender itself.
        while let Ok(report) = self.results.try_recv() {
            // Results of removed targets are ignored.
            let Some(&i) = self.index.get(&report.id) else {
                continue;
            };
            let status = &mut statuses[i];
            let (rise, fall) = (status.target.check.rise, status.target.check.fall);
            status.checks += 1;
            status.failed += u64::from(!report.result.ok);
            status.latency.observe(report.result.latency);
            if let Some(warning) = self.expiry.check(
                report.id,
                report.result.cert_not_after,
                status.target.check.tls.expiry_warn_days,
                std::time::SystemTime::now(),
            ) {
                crate::warn!(
                    "virtual server {}: real server {}: TLS {warning} (health_check.tls_expiry_warn_days = {}); the check still passes",
                    status.target.name,
                    status.target.endpoint,
                    status.target.check.tls.expiry_warn_days
                );
            }
            // A probe started before a `force_down` says nothing of the
            // server since: its rise counts from the next one.
            if let Some(&at) = self.forced.get(&report.id) {
                if report.result.started < at {
                    status.last = Some(report.result);
                    continue;
                }
                self.forced.remove(&report.id);
            }
            let changed = status.state.record(report.result.ok, rise, fall);
            if let Some(up) = changed {
                let reason = if up {
                    format!(
                        "{} ({} {} in a row)",
                        report.result.detail,
                        status.state.successes,
                        plural(status.state.successes, "success", "successes")
                    )
                } else {
                    format!(
                        "{} ({} {} in a row)",
                        report.result.detail,
                        status.state.failures,
                        plural(status.state.failures, "failure", "failures")
                    )
                };
                status.last_change = Some(LastChange {
                    up,
                    reason: reason.clone(),
                    at: Instant::now(),
                });
                changes.push(HealthChange {
                    vs: status.target.vs,
                    rs: status.target.rs,
                    name: status.target.name.clone(),
                    endpoint: status.target.endpoint,
                    up,
                    reason,
                });
            }
            let check = &status.target.check;
            if report.result.ok
                && check.kind == HealthCheckKind::Script
                && check.script_dynamic_weight
            {
                self.weights.push(WeightChange {
                    vs: status.target.vs,
                    rs: status.target.rs,
                    name: status.target.name.clone(),
                    endpoint: status.target.endpoint,
                    weight: report.result.weight,
                    reason: report.result.detail.clone(),
                });
            }
            status.last = Some(report.result);
        }
        changes
    }

    /// The run-time weights asked for by the results the last `poll`s
    /// applied (a `script` check with `script_dynamic_weight`: one per
    /// passed probe, so the weight follows the script's last word even
    /// after a reload reset it), in order; the control state applies
    /// each as `rvsadm weight` would, `None` restoring the configured one.
    pub fn weight_changes(&mut self) -> Vec<WeightChange> {
        std::mem::take(&mut self.weights)
    }

    /// Takes real server `rs` of `vs` down from outside the probes (the
    /// passive check, `control::passive`): down with no history, so that
    /// its probes need `rise` successes in a row from now on to bring it
    /// back, and `reason` as its last change. False when it is not a
    /// probed target, or is down already.
    pub fn force_down(&mut self, vs: u16, rs: u16, reason: &str) -> bool {
        let mut statuses = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = statuses.iter().position(|s| {
            s.target.vs == vs && s.target.rs == rs && s.target.check.kind != HealthCheckKind::None
        }) else {
            return false;
        };
        let status = &mut statuses[i];
        if !status.state.up {
            return false;
        }
        let now = Instant::now();
        status.state = HealthState::down();
        status.last_change = Some(LastChange {
            up: false,
            reason: reason.to_string(),
            at: now,
        });
        if let Some(&id) = self.ids.get(i) {
            self.forced.insert(id, now);
        }
        true
    }

    /// Checks `targets` from now on (after a reload). A target whose
    /// endpoint and check are unchanged keeps its state, history and
    /// schedule (its `vs`, `rs` and name follow the new target). One whose
    /// endpoint is kept but whose check changed is rescheduled with the
    /// new check and keeps only up/down (a down server stays down until
    /// `rise` successes of the new check; a `none` check brings it up,
    /// reported by the next `poll`). New targets start up; removed ones
    /// are no longer probed and their late results ignored.
    pub fn retarget(&mut self, targets: Vec<Target>) {
        let old_ids = std::mem::take(&mut self.ids);
        let old_statuses = std::mem::take(&mut *self.lock());
        let mut old: Vec<Option<(u64, TargetStatus)>> =
            old_ids.into_iter().zip(old_statuses).map(Some).collect();

        // Pick, for each new target, the old one it continues: same
        // endpoint and check (the same indices first), else same endpoint.
        // Old targets are looked up by endpoint, so 10,000 targets do not
        // cost 10,000 scans.
        let mut by_endpoint: HashMap<SocketAddr, Vec<usize>> = HashMap::new();
        for (i, o) in old.iter().enumerate() {
            if let Some((_, s)) = o {
                by_endpoint.entry(s.target.endpoint).or_default().push(i);
            }
        }
        let find = |old: &[Option<(u64, TargetStatus)>], t: &Target, same_check: bool| {
            let candidates = by_endpoint.get(&t.endpoint)?;
            let matches = |i: &&usize| {
                old[**i]
                    .as_ref()
                    .is_some_and(|(_, s)| !same_check || same_probe(&s.target, t))
            };
            let same_place = |i: &&usize| {
                old[**i]
                    .as_ref()
                    .is_some_and(|(_, s)| (s.target.vs, s.target.rs) == (t.vs, t.rs))
            };
            candidates
                .iter()
                .find(|i| matches(i) && same_place(i))
                .or_else(|| candidates.iter().find(matches))
                .copied()
        };
        let mut kept: Vec<Option<(u64, TargetStatus)>> = (0..targets.len()).map(|_| None).collect();
        for (k, t) in kept.iter_mut().zip(&targets) {
            if let Some(i) = find(&old, t, true) {
                *k = old[i].take();
            }
        }
        let mut remove = Vec::new();
        let mut carried: Vec<Option<bool>> = vec![None; targets.len()];
        for (c, (k, t)) in carried.iter_mut().zip(kept.iter().zip(&targets)) {
            if k.is_none() {
                if let Some(i) = find(&old, t, false) {
                    if let Some((id, status)) = old[i].take() {
                        *c = Some(status.state.up);
                        remove.push(id);
                    }
                }
            }
        }
        remove.extend(old.into_iter().flatten().map(|(id, _)| id));

        let now = Instant::now();
        let n = targets.len().max(1) as u32;
        let mut ids = Vec::with_capacity(targets.len());
        let mut statuses = Vec::with_capacity(targets.len());
        let mut add = Vec::new();
        for (i, ((target, k), was_up)) in targets.into_iter().zip(kept).zip(carried).enumerate() {
            if let Some((id, mut status)) = k {
                status.target = target;
                ids.push(id);
                statuses.push(status);
                continue;
            }
            let mut state = HealthState::new();
            let mut last_change = None;
            if was_up == Some(false) {
                if target.check.kind == HealthCheckKind::None {
                    let reason = "health check changed to type none: no probing, always up";
                    last_change = Some(LastChange {
                        up: true,
                        reason: reason.to_string(),
                        at: now,
                    });
                    self.pending.push(HealthChange {
                        vs: target.vs,
                        rs: target.rs,
                        name: target.name.clone(),
                        endpoint: target.endpoint,
                        up: true,
                        reason: reason.to_string(),
                    });
                } else {
                    state = HealthState::down();
                }
            }
            let id = self.next_id;
            self.next_id += 1;
            if target.check.kind != HealthCheckKind::None {
                add.push(Job {
                    id,
                    endpoint: target.endpoint,
                    check: target.check.clone(),
                    first: now + target.check.interval * (i as u32) / n,
                    name: target.name.clone(),
                });
            }
            ids.push(id);
            statuses.push(TargetStatus {
                target,
                state,
                checks: 0,
                failed: 0,
                last: None,
                latency: LatencyHistogram::default(),
                last_change,
            });
        }
        self.index = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        self.expiry.retain(|id| self.index.contains_key(&id));
        let index = &self.index;
        self.forced.retain(|id, _| index.contains_key(id));
        self.ids = ids;
        *self.lock() = statuses;
        self.send_to_loop(add, remove);
    }

    /// Hands the loop its new and removed targets, starting it for the
    /// first probed target. A loop that cannot start (no thread, no epoll)
    /// leaves the servers as they are (up), and says so in their status
    /// instead of taking rvsd down.
    fn send_to_loop(&mut self, add: Vec<Job>, remove: Vec<u64>) {
        if self.event_loop.is_none() && !add.is_empty() {
            match LoopHandle::start(self.sender.clone(), self.alive.clone()) {
                Ok(l) => self.event_loop = Some(l),
                Err(e) => {
                    for job in &add {
                        let _ = self.sender.send(Report {
                            id: job.id,
                            result: CheckResult {
                                ok: true,
                                detail: format!(
                                    "cannot start the health-check loop: {e}; not checked"
                                ),
                                latency: Duration::ZERO,
                                started: Instant::now(),
                                cert_not_after: None,
                                weight: None,
                            },
                        });
                    }
                    return;
                }
            }
        }
        if let Some(l) = &self.event_loop {
            l.apply(add, remove);
        }
    }
}

impl Drop for HealthChecker {
    /// Stops the loop thread, which ends at once (its probes' sockets are
    /// closed with it), waiting for it at most `STOP_WAIT`.
    fn drop(&mut self) {
        if let Some(l) = &mut self.event_loop {
            l.stop(STOP_WAIT);
        }
    }
}

/// Whether `a` and `b` are probed alike: the same check, and for a
/// `script` the same virtual server name (its environment says it).
fn same_probe(a: &Target, b: &Target) -> bool {
    a.check == b.check && (a.check.kind != HealthCheckKind::Script || a.name == b.name)
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// The health-check settings that differ between `old` and `new`, as
/// `health_check.KEY old -> new` (the file's keys), for a reload's summary.
pub fn setting_changes(old: &HealthCheckConfig, new: &HealthCheckConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |key: &str, a: String, b: String| {
        if a != b {
            out.push(format!("health_check.{key} {a} -> {b}"));
        }
    };
    diff("type", old.kind.to_string(), new.kind.to_string());
    let ms = |d: Duration| d.as_millis().to_string();
    diff("interval_ms", ms(old.interval), ms(new.interval));
    diff("timeout_ms", ms(old.timeout), ms(new.timeout));
    diff("rise", old.rise.to_string(), new.rise.to_string());
    diff("fall", old.fall.to_string(), new.fall.to_string());
    diff(
        "http_path",
        format!("{:?}", old.http_path),
        format!("{:?}", new.http_path),
    );
    diff(
        "http_expect_status",
        old.http_expect_status.to_string(),
        new.http_expect_status.to_string(),
    );
    kind_setting_changes(old, new, &mut diff);
    tls_setting_changes(old, new, &mut out);
    out
}

/// `setting_changes` of `http_expect_body` and the `tls_*` keys; a CA
/// file whose certificates changed under the same name says so.
fn tls_setting_changes(old: &HealthCheckConfig, new: &HealthCheckConfig, out: &mut Vec<String>) {
    let mut diff = |key: &str, a: String, b: String| {
        if a != b {
            out.push(format!("health_check.{key} {a} -> {b}"));
        }
    };
    let quoted = |v: &Option<String>| v.as_ref().map_or("none".into(), |v| format!("{v:?}"));
    diff(
        "http_expect_body",
        quoted(&old.http_expect_body),
        quoted(&new.http_expect_body),
    );
    let (a, b) = (&old.tls, &new.tls);
    diff("tls_sni", quoted(&a.sni), quoted(&b.sni));
    diff("tls_verify", a.verify.to_string(), b.verify.to_string());
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or("none".into(), |p| format!("{:?}", p.display().to_string()))
    };
    diff("tls_ca_file", path(&a.ca_file), path(&b.ca_file));
    diff(
        "tls_expiry_warn_days",
        a.expiry_warn_days.to_string(),
        b.expiry_warn_days.to_string(),
    );
    if a.ca_file == b.ca_file && a.ca_certificates != b.ca_certificates {
        out.push(format!(
            "health_check.tls_ca_file {} (its certificates changed)",
            path(&b.ca_file)
        ));
    }
}

/// `setting_changes` of the keys of the kinds udp, dns, icmp and script,
/// and of `source_address`.
fn kind_setting_changes(
    old: &HealthCheckConfig,
    new: &HealthCheckConfig,
    diff: &mut impl FnMut(&str, String, String),
) {
    let addr = |a: Option<std::net::Ipv4Addr>| a.map_or("none".to_string(), |a| a.to_string());
    diff(
        "source_address",
        addr(old.source_address),
        addr(new.source_address),
    );
    let bytes = |b: &[u8]| format!("\"{}\"", HealthCheckConfig::show_bytes(b));
    diff(
        "udp_payload",
        bytes(&old.udp_payload),
        bytes(&new.udp_payload),
    );
    let expect = |b: &Option<Vec<u8>>| b.as_deref().map_or("none".to_string(), bytes);
    diff(
        "udp_expect",
        expect(&old.udp_expect),
        expect(&new.udp_expect),
    );
    diff(
        "dns_name",
        format!("{:?}", old.dns_name),
        format!("{:?}", new.dns_name),
    );
    diff(
        "dns_type",
        old.dns_type.to_string(),
        new.dns_type.to_string(),
    );
    diff(
        "dns_expect_rcode",
        old.dns_expect_rcode.to_string(),
        new.dns_expect_rcode.to_string(),
    );
    diff(
        "dns_expect_answer",
        old.dns_expect_answer.to_string(),
        new.dns_expect_answer.to_string(),
    );
    diff(
        "script",
        format!("{:?}", old.script),
        format!("{:?}", new.script),
    );
    diff(
        "script_dynamic_weight",
        old.script_dynamic_weight.to_string(),
        new.script_dynamic_weight.to_string(),
    );
}

/// What a reload changes in the checks of services checked before and
/// after (`old` the targets checked now, `new` those of the new file, both
/// indexed by the merged table, whose service slots are stable): one line
/// per service whose check changed, `virtual server web:
/// health_check.interval_ms 1000 -> 500`, in service order. Servers added
/// or removed are the reload's own lines.
pub fn check_changes(old: &[Target], new: &[Target]) -> Vec<String> {
    fn first(targets: &[Target]) -> std::collections::BTreeMap<u16, &Target> {
        let mut by_vs = std::collections::BTreeMap::new();
        for t in targets {
            by_vs.entry(t.vs).or_insert(t);
        }
        by_vs
    }
    let old = first(old);
    first(new)
        .into_iter()
        .filter_map(|(vs, n)| {
            let o = old.get(&vs)?;
            let settings = setting_changes(&o.check, &n.check);
            (!settings.is_empty())
                .then(|| format!("virtual server {}: {}", n.name, settings.join(", ")))
        })
        .collect()
}

/// The targets of a service table: every real server of every service
/// that is neither draining nor removed, with its virtual server's check
/// from `configs` (matched by address and protocol). Services or servers
/// the configs do not name are not checked.
pub fn targets(services: &ServiceTable, configs: &[VirtualServerConfig]) -> Vec<Target> {
    let mut out = Vec::new();
    for (v, vs) in services.services().iter().enumerate() {
        let v = v as u16;
        if services.is_draining(v) {
            continue;
        }
        let Some(config) = configs
            .iter()
            .find(|c| c.address == vs.vip_addr() && c.protocol == vs.key.protocol)
        else {
            continue;
        };
        for (r, rs) in vs.real_servers.iter().enumerate() {
            let r = r as u16;
            if services.is_server_draining(v, r) {
                continue;
            }
            out.push(Target {
                vs: v,
                rs: r,
                // An IPv6 service's servers, and an IPv4 TUN service's
                // reached over IPv6, are checked at their IPv6 addresses
                // (`lb::service::Ipv6Addrs`, `Tunnel6`).
                endpoint: vs
                    .real_addr(r)
                    .unwrap_or_else(|| SocketAddr::from((rs.endpoint.ip, rs.endpoint.port))),
                check: config.health_check.clone(),
                name: config.name.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::test_servers::{serve_on, Stop};
    use super::*;
    use std::io::{self, BufRead, Write};
    use std::net::{Ipv4Addr, TcpListener};
    use std::sync::atomic::{AtomicBool, Ordering};

    // ------------------------------------------------ the state machine

    #[test]
    fn a_new_server_is_up_with_no_history() {
        let s = HealthState::new();
        assert!(s.up);
        assert_eq!((s.successes, s.failures), (0, 0));
        assert_eq!(HealthState::default(), s);
    }

    #[test]
    fn an_up_server_stays_up_for_fall_minus_one_failures() {
        let mut s = HealthState::new();
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert!(s.up);
        assert_eq!(s.failures, 2);
    }

    #[test]
    fn an_up_server_goes_down_on_the_fall_th_failure_in_a_row() {
        let mut s = HealthState::new();
        s.record(false, 2, 3);
        s.record(false, 2, 3);
        assert_eq!(s.record(false, 2, 3), Some(false));
        assert!(!s.up);
        // More failures change nothing.
        assert_eq!(s.record(false, 2, 3), None);
        assert!(!s.up);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut s = HealthState::new();
        s.record(false, 2, 3);
        s.record(false, 2, 3);
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.failures, 0);
        s.record(false, 2, 3);
        s.record(false, 2, 3);
        assert!(s.up, "only two failures in a row since the success");
    }

    #[test]
    fn a_down_server_comes_up_on_the_rise_th_success_in_a_row() {
        let mut s = HealthState::down();
        assert_eq!(s.record(true, 2, 3), None);
        assert!(!s.up);
        assert_eq!(s.record(true, 2, 3), Some(true));
        assert!(s.up);
        assert_eq!(s.record(true, 2, 3), None);
    }

    #[test]
    fn a_failure_resets_the_success_count_of_a_down_server() {
        let mut s = HealthState::down();
        s.record(true, 2, 3);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.successes, 0);
        assert_eq!(s.record(true, 2, 3), None);
        assert!(!s.up);
        assert_eq!(s.record(true, 2, 3), Some(true));
    }

    #[test]
    fn rise_and_fall_of_one_act_on_the_first_result() {
        let mut s = HealthState::new();
        assert_eq!(s.record(false, 1, 1), Some(false));
        assert_eq!(s.record(true, 1, 1), Some(true));
    }

    #[test]
    fn an_up_server_ignores_successes_and_a_down_one_failures() {
        let mut s = HealthState::new();
        assert_eq!(s.record(true, 1, 1), None);
        let mut d = HealthState::down();
        assert_eq!(d.record(false, 1, 1), None);
    }

    // ------------------------------------------------ latency histogram

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let mut h = LatencyHistogram::default();
        h.observe(Duration::from_micros(300)); // <= 0.5 ms
        h.observe(Duration::from_millis(1)); // <= 1 ms exactly
        h.observe(Duration::from_secs(60)); // beyond 10 s
        assert_eq!(h.count, 3);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[LATENCY_BUCKETS.len()], 1);
        let b = h.buckets();
        assert_eq!(b.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(b.last().unwrap(), &(f64::MAX, 1));
        assert!((h.sum - 60.0013).abs() < 1e-9);
    }

    // ------------------------------------------------ probes on 127.0.0.1

    fn local(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    fn check(kind: HealthCheckKind, interval_ms: u64, timeout_ms: u64) -> HealthCheckConfig {
        HealthCheckConfig {
            kind,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            rise: 2,
            fall: 3,
            http_path: "/healthz".into(),
            http_expect_status: 200,
            ..HealthCheckConfig::default()
        }
    }

    /// A port nothing listens on (bound once, then closed).
    fn closed_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A listener that accepts and closes every connection.
    fn accepting() -> (u16, Stop) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (port, serve(l, |_| None))
    }

    /// Serves `l` on a thread until the result is dropped: each
    /// connection's request line goes to `answer`; `Some(status)` is sent
    /// back, `None` closes at once.
    fn serve(l: TcpListener, answer: impl Fn(String) -> Option<u16> + Send + 'static) -> Stop {
        serve_on(l, move |s| {
            let mut r = io::BufReader::new(s);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            if let Some(status) = answer(line) {
                // Read the rest of the head, then answer.
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut s = r.into_inner();
                let _ = write!(s, "HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n");
            }
        })
    }

    fn http_server(status: u16) -> (u16, Stop) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (port, serve(l, move |_| Some(status)))
    }

    /// Accepts connections and never answers (holds them open).
    fn silent_server() -> (u16, Stop) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((s, _)) = l.accept() {
                    held.push(s);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        (port, Stop(stop))
    }

    #[test]
    fn tcp_probe_of_a_listener_passes() {
        let (port, _stop) = accepting();
        let r = probe(local(port), &check(HealthCheckKind::Tcp, 100, 1000));
        assert!(r.ok, "{r:?}");
        assert!(r.detail.contains("succeeded"), "{r:?}");
    }

    #[test]
    fn tcp_probe_of_a_closed_port_fails_refused() {
        let port = closed_port();
        let r = probe(local(port), &check(HealthCheckKind::Tcp, 100, 1000));
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            format!("connect to 127.0.0.1:{port} failed: Connection refused")
        );
    }

    #[test]
    fn none_probe_passes_without_a_server() {
        let r = probe(
            local(closed_port()),
            &check(HealthCheckKind::None, 100, 1000),
        );
        assert!(r.ok);
    }

    #[test]
    fn http_probe_sends_the_documented_request_and_passes_on_the_expected_status() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let _stop = serve(l, move |line| {
            let _ = tx.lock().unwrap().send(line);
            Some(200)
        });
        let r = probe(local(port), &check(HealthCheckKind::Http, 100, 1000));
        assert!(r.ok, "{r:?}");
        assert!(r.detail.contains("answered 200"), "{r:?}");
        assert_eq!(rx.recv().unwrap(), "GET /healthz HTTP/1.0\r\n");
    }

    #[test]
    fn tcp_probe_reaches_an_ipv6_real_server() {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _stop = serve_on(l, |_| {});
        let r = probe(addr, &check(HealthCheckKind::Tcp, 100, 1000));
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn http_probe_of_an_ipv6_real_server_names_it_in_brackets() {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let _stop = serve_on(l, move |mut s| {
            let mut head = [0u8; 512];
            let n = io::Read::read(&mut s, &mut head).unwrap_or(0);
            let _ = tx
                .lock()
                .unwrap()
                .send(String::from_utf8_lossy(&head[..n]).into_owned());
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
        });
        let r = probe(addr, &check(HealthCheckKind::Http, 100, 1000));
        assert!(r.ok, "{r:?}");
        assert!(
            r.detail.contains(&format!("on [::1]:{}", addr.port())),
            "{r:?}"
        );
        assert!(rx.recv().unwrap().contains("\r\nHost: [::1]\r\n"));
    }

    #[test]
    fn http_probe_fails_on_another_status() {
        let (port, _stop) = http_server(500);
        let r = probe(local(port), &check(HealthCheckKind::Http, 100, 1000));
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            format!("HTTP GET /healthz on 127.0.0.1:{port} answered 500, expected 200")
        );
    }

    #[test]
    fn http_probe_fails_when_the_server_closes_without_answering() {
        let (port, _stop) = accepting();
        let r = probe(local(port), &check(HealthCheckKind::Http, 100, 1000));
        assert!(!r.ok);
        assert!(
            r.detail.contains("without an answer") || r.detail.contains("reset"),
            "{r:?}"
        );
    }

    #[test]
    fn http_probe_of_a_silent_server_fails_within_its_timeout() {
        let (port, _stop) = silent_server();
        let start = Instant::now();
        let r = probe(local(port), &check(HealthCheckKind::Http, 100, 200));
        let took = start.elapsed();
        assert!(!r.ok);
        assert!(r.detail.contains("no answer within 200 ms"), "{r:?}");
        assert!(took >= Duration::from_millis(190), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(r.latency >= Duration::from_millis(190));
    }

    // ------------------------------------------------ the checker

    fn target(vs: u16, rs: u16, port: u16, check: HealthCheckConfig) -> Target {
        Target {
            vs,
            rs,
            endpoint: local(port),
            check,
            name: "web".into(),
        }
    }

    #[test]
    fn a_forced_down_server_needs_rise_successes_from_then_on() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let check = HealthCheckConfig {
            kind: HealthCheckKind::Tcp,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(100),
            rise: 3,
            fall: 1,
            ..HealthCheckConfig::default()
        };
        let mut c = HealthChecker::new(vec![target(0, 0, port, check)]);
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.poll().is_empty(), "up, and passing");
        let at = Instant::now();
        assert!(c.force_down(0, 0, "passive check: 20 of 20 handshakes failed"));
        assert!(!c.is_up(0, 0));
        assert!(!c.force_down(0, 0, "again"), "already down");
        assert_eq!(
            c.states()[0]
                .last_change
                .as_ref()
                .map(|l| l.reason.as_str()),
            Some("passive check: 20 of 20 handshakes failed")
        );
        let up = changes_within(&mut c, 1, Duration::from_secs(3));
        assert!(up.len() == 1 && up[0].up, "{up:?}");
        assert!(
            at.elapsed() >= Duration::from_millis(200),
            "three probes started after the forced down, 100 ms apart: {:?}",
            at.elapsed()
        );
        drop(listener);
    }

    #[test]
    fn an_unchecked_server_cannot_be_forced_down() {
        let check = HealthCheckConfig {
            kind: HealthCheckKind::None,
            ..HealthCheckConfig::default()
        };
        let mut c = HealthChecker::new(vec![target(0, 0, 9, check)]);
        assert!(!c.force_down(0, 0, "passive"));
        assert!(c.is_up(0, 0));
    }

    /// Polls until `want` changes arrived or `within` passed.
    fn changes_within(c: &mut HealthChecker, want: usize, within: Duration) -> Vec<HealthChange> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            got.extend(c.poll());
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    fn checks_of(c: &HealthChecker, vs: u16, rs: u16) -> u64 {
        c.states()
            .iter()
            .find(|s| (s.target.vs, s.target.rs) == (vs, rs))
            .unwrap()
            .checks
    }

    #[test]
    fn an_accepting_server_stays_up() {
        let (port, _stop) = accepting();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        let start = Instant::now();
        let mut changes = Vec::new();
        while checks_of(&c, 0, 0) < 5 && start.elapsed() < Duration::from_secs(5) {
            changes.extend(c.poll());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(checks_of(&c, 0, 0) >= 5);
        assert!(changes.is_empty(), "{changes:?}");
        assert!(c.is_up(0, 0));
        let s = &c.states()[0];
        assert!(s.last.as_ref().unwrap().ok);
        assert_eq!(s.latency.count, s.checks);
    }

    #[test]
    fn a_closed_port_goes_down_after_fall_checks_with_the_reason() {
        let port = closed_port();
        let mut c = HealthChecker::new(vec![target(
            0,
            1,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        let changes = changes_within(&mut c, 1, Duration::from_secs(5));
        assert_eq!(changes.len(), 1, "{changes:?}");
        let ch = &changes[0];
        assert_eq!((ch.vs, ch.rs, ch.up), (0, 1, false));
        assert_eq!(ch.name, "web");
        assert_eq!(
            ch.reason,
            format!("connect to 127.0.0.1:{port} failed: Connection refused (3 failures in a row)")
        );
        assert!(!c.is_up(0, 1));
        let s = &c.states()[0];
        assert!(s.checks >= 3, "down on the third failure");
        assert!(!c.view().statuses()[0].state.up);
    }

    #[test]
    fn the_view_keeps_the_reason_of_the_last_change() {
        let port = closed_port();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        assert_eq!(c.view().statuses()[0].last_change, None);
        let changes = changes_within(&mut c, 1, Duration::from_secs(5));
        assert_eq!(changes.len(), 1, "{changes:?}");
        let last = c.view().statuses()[0].last_change.clone().unwrap();
        assert!(!last.up);
        assert_eq!(last.reason, changes[0].reason);
    }

    #[test]
    fn a_down_server_comes_back_up_after_rise_successes() {
        let port = closed_port();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        let down = changes_within(&mut c, 1, Duration::from_secs(5));
        assert_eq!(down.len(), 1);
        assert!(!down[0].up);
        // The server comes back on the same port.
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let _stop = serve(l, |_| None);
        let up = changes_within(&mut c, 1, Duration::from_secs(5));
        assert_eq!(up.len(), 1, "{up:?}");
        assert!(up[0].up);
        assert!(up[0].reason.ends_with("(2 successes in a row)"), "{up:?}");
        assert!(c.is_up(0, 0));
    }

    #[test]
    fn a_dynamic_script_asks_for_its_weight_on_every_pass() {
        let mut hc = check(HealthCheckKind::Script, 20, 2000);
        hc.script = vec!["/bin/sh".into(), "-c".into(), "exit 5".into()];
        hc.script_dynamic_weight = true;
        let mut c = HealthChecker::new(vec![target(0, 1, 1, hc)]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut weights = Vec::new();
        while weights.len() < 2 && Instant::now() < deadline {
            assert!(c.poll().is_empty(), "stays up");
            weights.extend(c.weight_changes());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(weights.len() >= 2, "{weights:?}");
        assert_eq!((weights[0].rs, weights[0].weight), (1, Some(3)));
        assert!(
            weights[0].reason.contains("exited 5: weight 3"),
            "{weights:?}"
        );
    }

    #[test]
    fn other_kinds_ask_for_no_weight() {
        let (port, _stop) = accepting();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        while checks_of(&c, 0, 0) < 3 {
            c.poll();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(c.weight_changes().is_empty());
    }

    #[test]
    fn setting_changes_name_the_new_keys() {
        let old = check(HealthCheckKind::Udp, 20, 500);
        let mut new = old.clone();
        new.udp_payload = b"hi\x00".to_vec();
        new.source_address = Some(Ipv4Addr::new(10, 0, 0, 1));
        new.dns_type = crate::control::config::DnsType::Mx;
        assert_eq!(
            setting_changes(&old, &new),
            [
                "health_check.source_address none -> 10.0.0.1",
                "health_check.udp_payload \"\" -> \"hi\\x00\"",
                "health_check.dns_type A -> MX",
            ]
        );
    }

    #[test]
    fn a_source_address_this_host_lacks_skips_the_probes_without_failing_the_server() {
        let (port, _stop) = accepting();
        let mut hc = check(HealthCheckKind::Tcp, 20, 500);
        // TEST-NET-1: no interface of this host holds it.
        hc.source_address = Some(Ipv4Addr::new(192, 0, 2, 77));
        let mut c = HealthChecker::new(vec![target(0, 0, port, hc)]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            assert!(c.poll().is_empty());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(checks_of(&c, 0, 0), 0, "skipped, not counted");
        assert!(c.is_up(0, 0));
    }

    #[test]
    fn a_held_source_address_is_where_tcp_probes_come_from() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut hc = check(HealthCheckKind::Tcp, 100, 1000);
        hc.source_address = Some(Ipv4Addr::new(127, 0, 0, 3));
        let r = probe(local(port), &hc);
        assert!(r.ok, "{r:?}");
        let (_, from) = l.accept().unwrap();
        assert_eq!(from.ip(), std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    }

    #[test]
    fn http_checks_tell_200_from_500() {
        let (ok_port, _a) = http_server(200);
        let (bad_port, _b) = http_server(500);
        let mut c = HealthChecker::new(vec![
            target(0, 0, ok_port, check(HealthCheckKind::Http, 20, 500)),
            target(0, 1, bad_port, check(HealthCheckKind::Http, 20, 500)),
        ]);
        let changes = changes_within(&mut c, 1, Duration::from_secs(5));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!((changes[0].rs, changes[0].up), (1, false));
        assert!(changes[0].reason.contains("answered 500, expected 200"));
        assert!(c.is_up(0, 0));
        assert!(!c.is_up(0, 1));
    }

    /// Every probe start of target 0 seen by polling for `within`.
    fn starts_within(c: &mut HealthChecker, within: Duration) -> Vec<CheckResult> {
        let deadline = Instant::now() + within;
        let mut seen: Vec<CheckResult> = Vec::new();
        while Instant::now() < deadline {
            c.poll();
            if let Some(last) = c.states()[0].last.clone() {
                if seen.last().map(|r| r.started) != Some(last.started) {
                    seen.push(last);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    }

    #[test]
    fn a_probe_fails_at_its_timeout_counted_from_its_start() {
        let (port, _stop) = silent_server();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Http, 1000, 150),
        )]);
        let seen = starts_within(&mut c, Duration::from_millis(600));
        assert_eq!(seen.len(), 1, "{seen:?}");
        let r = &seen[0];
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            format!("HTTP GET /healthz on 127.0.0.1:{port}: no answer within 150 ms")
        );
        assert!(r.latency >= Duration::from_millis(150), "{r:?}");
        assert!(r.latency < Duration::from_millis(400), "{r:?}");
    }

    #[test]
    fn a_probe_longer_than_the_interval_delays_the_next_without_overlap() {
        let (port, _stop) = silent_server();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Http, 20, 100),
        )]);
        let seen = starts_within(&mut c, Duration::from_millis(700));
        assert!(seen.len() >= 3, "{seen:?}");
        for pair in seen.windows(2) {
            let gap = pair[1].started - pair[0].started;
            assert!(
                gap >= Duration::from_millis(100),
                "{gap:?}: overlapping probes"
            );
        }
    }

    #[test]
    fn probes_start_an_interval_apart() {
        let (port, _stop) = accepting();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 100, 500),
        )]);
        let seen = starts_within(&mut c, Duration::from_millis(650));
        assert!(seen.len() >= 5, "{seen:?}");
        for pair in seen.windows(2) {
            let gap = pair[1].started - pair[0].started;
            assert!(
                gap.abs_diff(Duration::from_millis(100)) < Duration::from_millis(40),
                "{gap:?}"
            );
        }
    }

    #[test]
    fn a_removed_target_is_no_longer_probed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let _stop = serve(l, move |_| {
            let _ = tx.lock().unwrap().send(());
            None
        });
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        rx.recv_timeout(Duration::from_secs(2)).expect("probed");
        c.retarget(Vec::new());
        std::thread::sleep(Duration::from_millis(50));
        while rx.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(rx.try_iter().count(), 0, "probed after removal");
        assert_eq!(c.probed(), 0);
    }

    #[test]
    fn a_silent_server_does_not_delay_the_checks_of_another() {
        let (slow, _a) = silent_server();
        let (fast, _b) = http_server(200);
        let mut c = HealthChecker::new(vec![
            // Each check of the silent server blocks for three seconds.
            target(0, 0, slow, check(HealthCheckKind::Http, 20, 3000)),
            target(0, 1, fast, check(HealthCheckKind::Http, 20, 1000)),
        ]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(500) {
            c.poll();
            std::thread::sleep(Duration::from_millis(5));
        }
        c.poll();
        let fast_checks = checks_of(&c, 0, 1);
        let slow_checks = checks_of(&c, 0, 0);
        // 500 ms at a 20 ms interval: about 25 checks of the fast server,
        // while the silent one has not finished its first.
        assert!(fast_checks >= 5, "fast server checked {fast_checks} times");
        assert_eq!(slow_checks, 0);
    }

    #[test]
    fn first_checks_are_spread_over_the_interval() {
        let (port, _stop) = accepting();
        let n = 4;
        let start = Instant::now();
        let mut c = HealthChecker::new(
            (0..n)
                .map(|r| target(0, r, port, check(HealthCheckKind::Tcp, 2000, 500)))
                .collect(),
        );
        // Offsets 0, 500, 1000 and 1500 ms: after 100 ms only the first
        // target has been checked, and the last not before 1500 ms.
        std::thread::sleep(Duration::from_millis(100));
        c.poll();
        let early: Vec<u64> = (0..n).map(|r| checks_of(&c, 0, r)).collect();
        assert_eq!(early, [1, 0, 0, 0]);
        while checks_of(&c, 0, n - 1) == 0 && start.elapsed() < Duration::from_secs(5) {
            c.poll();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            start.elapsed() >= Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
        let late: Vec<u64> = (0..n).map(|r| checks_of(&c, 0, r)).collect();
        assert!(late.iter().all(|&k| k == 1), "{late:?}");
    }

    #[test]
    fn a_none_check_starts_no_thread_and_stays_up() {
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            closed_port(),
            check(HealthCheckKind::None, 10, 10),
        )]);
        assert_eq!(c.threads(), 0);
        std::thread::sleep(Duration::from_millis(50));
        assert!(c.poll().is_empty());
        assert!(c.is_up(0, 0));
    }

    #[test]
    fn dropping_the_checker_stops_its_loop_promptly() {
        let (port, _stop) = accepting();
        let c = HealthChecker::new(
            (0..8)
                .map(|r| target(0, r, port, check(HealthCheckKind::Tcp, 60_000, 500)))
                .collect(),
        );
        assert_eq!(c.threads(), 1, "one loop for every target");
        assert_eq!(c.probed(), 8);
        let alive = c.alive.clone();
        let start = Instant::now();
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Arc::strong_count(&alive) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(Arc::strong_count(&alive), 1, "the loop still runs");
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn retarget_keeps_unchanged_targets_starts_new_ones_up_and_stops_removed_ones() {
        let down_port = closed_port();
        let (up_port, _s) = accepting();
        let hc = check(HealthCheckKind::Tcp, 20, 500);
        let mut c = HealthChecker::new(vec![
            target(0, 0, down_port, hc.clone()),
            target(0, 1, up_port, hc.clone()),
        ]);
        let down = changes_within(&mut c, 1, Duration::from_secs(5));
        assert_eq!(down.len(), 1);
        let checks_before = checks_of(&c, 0, 0);
        assert_eq!(c.threads(), 1);

        // The reload drops rs 1, keeps rs 0 (down), adds rs 2 (a closed
        // port too, but new: it starts up).
        let new_port = closed_port();
        c.retarget(vec![
            target(0, 0, down_port, hc.clone()),
            target(0, 2, new_port, hc.clone()),
        ]);
        assert!(
            c.poll().iter().all(|ch| ch.rs == 2),
            "rs 0 stays down quietly"
        );
        assert!(!c.is_up(0, 0), "kept state");
        assert!(checks_of(&c, 0, 0) >= checks_before, "kept history");
        assert!(c.is_up(0, 2), "new targets start up");
        assert_eq!(c.states().len(), 2);
        assert_eq!(c.threads(), 1, "still one loop");
        assert_eq!(c.probed(), 2);
        let later = changes_within(&mut c, 1, Duration::from_secs(5));
        assert_eq!(later.len(), 1, "{later:?}");
        assert_eq!((later[0].rs, later[0].up), (2, false));
    }

    #[test]
    fn retarget_with_a_changed_check_keeps_a_down_server_down() {
        let port = closed_port();
        let mut c = HealthChecker::new(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        assert_eq!(changes_within(&mut c, 1, Duration::from_secs(5)).len(), 1);
        c.retarget(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::Tcp, 30, 500),
        )]);
        assert!(!c.is_up(0, 0));
        assert_eq!(c.states()[0].checks, 0, "a new check starts a new history");
        // Changed to `none`: up, and said so.
        c.retarget(vec![target(
            0,
            0,
            port,
            check(HealthCheckKind::None, 30, 500),
        )]);
        let changes = c.poll();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(changes[0].up);
        assert!(c.is_up(0, 0));
    }

    #[test]
    fn targets_follow_the_table_and_skip_draining_servers() {
        use crate::control::Config;
        let text = "[dpdk]\nworkers = [1]\n[[interface]]\nname = \"ext\"\n\
                    device = \"net_null0\"\naddresses = [\"10.0.0.1/24\"]\n\
                    [[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\n\
                    forward = \"nat\"\n[virtual_server.health_check]\ntype = \"http\"\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.0.11:8080\"\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.0.12:8080\"\n\
                    [[virtual_server]]\nname = \"dns\"\naddress = \"10.0.0.100:53\"\n\
                    protocol = \"udp\"\nforward = \"nat\"\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.0.11:53\"\n";
        let config = Config::from_toml_str(text).unwrap();
        let table = crate::startup::service_table(&config);
        let t = targets(&table, &config.virtual_servers);
        assert_eq!(t.len(), 3);
        assert_eq!((t[1].vs, t[1].rs), (0, 1));
        assert_eq!(t[1].endpoint, "10.0.0.12:8080".parse().unwrap());
        assert_eq!(t[1].check.kind, HealthCheckKind::Http);
        assert_eq!((t[2].vs, t[2].rs, t[2].name.as_str()), (1, 0, "dns"));
        assert_eq!(t[2].check.kind, HealthCheckKind::None);

        let drained = ServiceTable::with_draining(
            table.services().to_vec(),
            vec![false, true],
            vec![vec![true, false]],
        );
        let t = targets(&drained, &config.virtual_servers);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].vs, t[0].rs), (0, 1));
    }

    #[test]
    fn view_shapes_health_like_the_table() {
        use crate::lb::service::{
            ForwardMethod, Protocol, SchedulerKind, ServiceKey, VirtualService,
        };
        use crate::lb::xmit::Endpoint;
        let port = closed_port();
        let mut c = HealthChecker::new(vec![target(
            0,
            1,
            port,
            check(HealthCheckKind::Tcp, 20, 500),
        )]);
        changes_within(&mut c, 1, Duration::from_secs(5));
        let key = ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 80),
            protocol: Protocol::Tcp,
        };
        let servers = [1, port, 3].map(|p| (Endpoint::new(Ipv4Addr::LOCALHOST, p), 1));
        let table = ServiceTable::new(vec![VirtualService::new(
            "web",
            key,
            ForwardMethod::Nat,
            SchedulerKind::Rr,
            servers,
        )]);
        assert_eq!(c.view().up_table(&table), vec![vec![true, false, true]]);
        assert_eq!(c.up_table(&table), c.view().up_table(&table));
    }
}
