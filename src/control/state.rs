//! What the control thread keeps between ticks, and what it does with it:
//! health changes, run-time weights and reloads become new snapshots of
//! the service table (`control::servers`) sent to every worker as
//! `Command::Services`; the HA role and its announcements; the view the
//! metrics thread reads. Everything reaches the workers through
//! `control::workers`, so all of it runs in tests without DPDK.

use super::config::Config;
use super::health::{self, HealthChange, HealthChecker, HealthView, Target};
use super::metrics::{MetricsSnapshot, SnapshotSource};
use super::reload;
use super::report;
use super::role::Role;
use super::servers::{self, Servers};
use super::workers::{self, Workers};
use crate::dataplane::worker::Command;
use crate::lb::service::ServiceTable;
use crate::{error, info, warn};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The health checks as the control state uses them: the checker, or a
/// scripted one in tests.
pub trait HealthSource {
    /// The up/down changes since the last call, in order.
    fn poll(&mut self) -> Vec<HealthChange>;
    /// Checks `targets` from now on (after a reload), keeping the state of
    /// those it already checked.
    fn retarget(&mut self, targets: Vec<Target>);
    /// Up (true) or down per service, per real server, shaped like
    /// `services`; unchecked servers are up.
    fn up_table(&self, services: &ServiceTable) -> Vec<Vec<bool>>;
}

impl HealthSource for HealthChecker {
    fn poll(&mut self) -> Vec<HealthChange> {
        HealthChecker::poll(self)
    }
    fn retarget(&mut self, targets: Vec<Target>) {
        HealthChecker::retarget(self, targets)
    }
    fn up_table(&self, services: &ServiceTable) -> Vec<Vec<bool>> {
        HealthChecker::up_table(self, services)
    }
}

/// The snapshot in force, shared with the threads that report it (metrics).
pub type SharedTable = Arc<Mutex<Arc<ServiceTable>>>;

/// The control thread's state.
pub struct ControlState {
    servers: Servers,
    workers: Workers,
    health: Box<dyn HealthSource>,
    role: Role,
    /// The file reloads read.
    config_path: PathBuf,
    shared: SharedTable,
}

impl ControlState {
    /// The state of an rvsd whose workers run `table` (every server up, at
    /// its configured weight), reloading from `config_path`.
    pub fn new(
        table: Arc<ServiceTable>,
        workers: Workers,
        health: Box<dyn HealthSource>,
        role: Role,
        config_path: PathBuf,
    ) -> ControlState {
        ControlState {
            shared: Arc::new(Mutex::new(table.clone())),
            servers: Servers::new(table),
            workers,
            health,
            role,
            config_path,
        }
    }

    /// The snapshot the workers run now.
    pub fn snapshot(&self) -> &Arc<ServiceTable> {
        self.servers.snapshot()
    }

    /// The workers.
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// The file reloads read.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// The HA role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Sends the current snapshot to every worker and to the shared view.
    fn publish(&self) {
        let table = self.servers.snapshot().clone();
        if let Ok(mut g) = self.shared.lock() {
            *g = table.clone();
        }
        self.workers.broadcast(|| Command::Services(table.clone()));
        self.role.set_services(&table);
    }

    /// Applies what the health checks found since the last tick: logs each
    /// change and publishes one snapshot per change of state.
    pub fn poll_health(&mut self) {
        for change in self.health.poll() {
            self.apply_health(&change);
        }
    }

    /// One health change: the log line, and a new snapshot when it changes
    /// the server's state.
    pub fn apply_health(&mut self, change: &HealthChange) {
        if change.up {
            info!(
                "real server {} ({}) is up: {}",
                change.endpoint, change.name, change.reason
            );
        } else {
            warn!(
                "real server {} ({}) is down: {}",
                change.endpoint, change.name, change.reason
            );
        }
        if self.servers.set_down(change.vs, change.rs, !change.up) {
            self.publish();
        }
    }

    /// `rvsadm weight`: sets the run-time weight of real server `real`
    /// ("RIP:PORT") of `service` ("VIP:PORT/PROTO"); 0 drains it (its
    /// connections live on, new ones go elsewhere). A reload that changes
    /// the file restores the file's weight.
    pub fn set_weight(&mut self, service: &str, real: &str, weight: u32) -> Result<(), String> {
        let (vs, rs) = self.servers.find(service, real)?;
        if self.servers.set_weight(vs, rs, weight) {
            self.publish();
        }
        info!(
            "weight of {real} in {service} set to {weight}{}",
            if weight == 0 {
                " (draining: no new connections)"
            } else {
                ""
            }
        );
        Ok(())
    }

    /// Re-reads the config file and applies its virtual servers: a file
    /// that does not validate is refused whole (the error names the field
    /// and line) and the running config stays; otherwise the difference is
    /// applied between bursts: added servers take traffic, removed ones
    /// drain, weights and schedulers change for new connections. The new
    /// snapshot carries the checks' view of every server's health; the
    /// run-time weights give way to the file's. Returns the summary of
    /// changes, or the errors one per line.
    pub fn reload(&mut self) -> Result<String, String> {
        let new = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(errors) => {
                let lines: Vec<String> = errors
                    .0
                    .iter()
                    .map(|e| format!("{}: {e}", self.config_path.display()))
                    .collect();
                for l in &lines {
                    error!("reload refused, running config kept: {l}");
                }
                return Err(lines.join("\n"));
            }
        };
        let merged = reload::merge_config(self.servers.snapshot(), &new.virtual_servers);
        if merged.is_unchanged() {
            info!("reload: no change to the virtual servers");
            return Ok("no change".into());
        }
        let mut summary = Vec::new();
        for c in &merged.changes {
            info!("reload: {c}");
            summary.push(c.to_string());
        }
        let table = Arc::new(merged.table);
        self.health
            .retarget(health::targets(&table, &new.virtual_servers));
        let up = self.health.up_table(&table);
        self.servers.replace(table, &up);
        self.publish();
        Ok(summary.join("\n"))
    }

    /// `rvsadm ha master|backup`: see `Role::set_master`.
    pub fn set_master(&mut self, master: bool) -> Result<bool, String> {
        self.role.set_master(master, &self.workers, Instant::now())
    }

    /// The periodic chores that need no event: the next gratuitous ARP
    /// round when one is due.
    pub fn tick(&mut self, now: Instant) {
        self.role.tick(&self.workers, now);
    }

    /// The `stats:` line rvsd prints when it stops: every worker's
    /// counters, their total, and each virtual server's real servers
    /// summed over the workers.
    pub fn final_stats(&self) -> Value {
        let snaps = self.workers.snapshots();
        let mut line = report::stats(&snaps);
        line["virtual_servers"] = report::list(self.snapshot(), &snaps)["virtual_servers"].clone();
        line
    }

    /// What a scrape (or the status page) reports, gathered on the metrics
    /// thread from the shared snapshot, the workers' cells, the checks'
    /// `view` and the HA role.
    pub fn metrics_source(&self, view: HealthView) -> SnapshotSource {
        let shared = self.shared.clone();
        let cells = self.workers.cells().to_vec();
        let role = self.role.view();
        Arc::new(move || {
            let services = shared.lock().map(|g| g.clone()).unwrap_or_default();
            MetricsSnapshot {
                health: servers::up_table(&services),
                weights: servers::weight_table(&services),
                health_checks: view.statuses(),
                workers: workers::snapshots(&cells),
                ha: role.status(),
                services,
            }
        })
    }
}
