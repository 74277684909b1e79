//! What the control thread keeps between ticks, and what it does with it:
//! health changes, run-time weights and reloads become new snapshots of
//! the service table (`control::servers`) sent to every worker as
//! `Command::Services`; the HA role and its announcements; the view the
//! metrics thread reads. Everything reaches the workers through
//! `control::workers`, so all of it runs in tests without DPDK.

use super::announce::{self, AnnounceStatus, Announcer};
use super::clients::ClientCounters;
use super::config::{Config, VirtualServerConfig};
use super::health::{self, HealthChange, HealthChecker, HealthView, Target, WeightChange};
use super::metrics::{MetricsSnapshot, SnapshotSource};
use super::passive::PassiveChecks;
use super::reload;
use super::report::{self, PoolSource, PoolUsage};
use super::role::Role;
use super::servers::{self, Servers};
use super::unapplied::{self, Unapplied};
use super::workers::{self, Workers};
use crate::dataplane::worker::Command;
use crate::lb::service::{RealServerId, ServiceId, ServiceTable};
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
    /// The targets checked now: a reload compares them with the new
    /// file's to tell a change of health-check settings alone.
    fn targets(&self) -> Vec<Target>;
    /// The run-time weights the checks asked for since the last call
    /// (`script_dynamic_weight`), in order; none by default.
    fn weight_changes(&mut self) -> Vec<WeightChange> {
        Vec::new()
    }
    /// Takes a probed server down from outside the probes (the passive
    /// check), its success streak reset so that `rise` successes in a row
    /// bring it back; false when it is not probed or already down.
    fn force_down(&mut self, vs: u16, rs: u16, reason: &str) -> bool;
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
    fn targets(&self) -> Vec<Target> {
        HealthChecker::targets(self)
    }
    fn weight_changes(&mut self) -> Vec<WeightChange> {
        HealthChecker::weight_changes(self)
    }

    fn force_down(&mut self, vs: u16, rs: u16, reason: &str) -> bool {
        HealthChecker::force_down(self, vs, rs, reason)
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
    /// The configuration running, for what a reload cannot apply (the
    /// sections other than the virtual servers); `None` in tests that
    /// give none.
    running: Option<Config>,
    /// Reads the packet-buffer pools (the binary's); `None` without DPDK.
    pools: Option<PoolSource>,
    /// The control socket's and the metrics endpoint's client counters.
    clients: ClientStats,
    /// The passive checks (`control::passive`), and their table as the
    /// metrics thread reads it (taken out now, times taken out).
    passive: PassiveChecks,
    passive_view: PassiveView,
    /// What tells bird2 which VIPs to announce (`control::announce`);
    /// `None`: not announcing.
    announcer: Option<Announcer>,
    /// The announcer's inputs other than health: the node has joined its
    /// cluster (the sync says; true without one), and the workers forward
    /// (false once rvsd stops).
    joined: bool,
    forwarding: bool,
    /// Whether every worker still polls (part of forwarding).
    worker_watch: announce::WorkerWatch,
    /// The announcer's status as the metrics thread reads it.
    announce_view: AnnounceShared,
}

/// The announcer's status shared with the metrics thread; `None` when not
/// announcing.
pub type AnnounceShared = Arc<Mutex<Option<AnnounceStatus>>>;

/// Per service, per real server: (taken out by the passive check now,
/// times taken out), shared with the metrics thread.
pub type PassiveView = Arc<Mutex<Vec<Vec<(bool, u64)>>>>;

/// Client counters by endpoint (`"control"`, `"metrics"`), shared with the
/// threads that serve them.
pub type ClientStats = Vec<(&'static str, Arc<ClientCounters>)>;

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
            running: None,
            pools: None,
            clients: Vec::new(),
            passive: PassiveChecks::default(),
            passive_view: PassiveView::default(),
            announcer: None,
            joined: true,
            forwarding: true,
            worker_watch: announce::WorkerWatch::default(),
            announce_view: AnnounceShared::default(),
        }
    }

    /// Announces through `announcer` from the next tick on.
    pub fn set_announcer(&mut self, announcer: Announcer) {
        self.announcer = Some(announcer);
        self.share_announce();
    }

    /// Whether this node has joined its cluster (every peer's dump done or
    /// the join timeout passed): nothing is announced before.
    pub fn set_joined(&mut self, joined: bool) {
        self.joined = joined;
    }

    /// Tells the announcer the healthy VIPs (each virtual server's
    /// `quorum` from the running config), whether the workers forward
    /// (rvsd is not stopping and every worker's poll count moves:
    /// `announce::WorkerWatch`) and whether the node has joined. Nothing
    /// without an announcer.
    pub fn poll_announce(&mut self, now: Instant) {
        if self.announcer.is_none() {
            return;
        }
        let polls: Vec<u64> = self
            .workers
            .cells()
            .iter()
            .map(|(_, cell)| {
                let stats = cell.snapshot();
                stats.busy_polls.wrapping_add(stats.idle_polls)
            })
            .collect();
        let workers_poll = self.worker_watch.observe(now, &polls);
        let Some(a) = self.announcer.as_mut() else {
            return;
        };
        let table = self.servers.snapshot();
        let configs = self
            .running
            .as_ref()
            .map_or(&[][..], |c| &c.virtual_servers[..]);
        let quorums = announce::vips::quorums(table, configs);
        a.tick(
            &announce::Inputs {
                healthy: announce::vips::healthy_vips(table, &quorums),
                forwarding: self.forwarding && workers_poll,
                // A `[cluster]` node announces once every peer's dump is
                // in (or its join timeout passed).
                joined: self.joined && self.role.ha_view().is_none_or(|h| h.is_joined()),
            },
            now,
        );
        self.share_announce();
    }

    /// rvsd stops: everything withdrawn now, before the workers stop.
    pub fn stop_announcing(&mut self) {
        self.forwarding = false;
        if let Some(a) = self.announcer.as_mut() {
            a.withdraw_all(Instant::now());
        }
        self.share_announce();
    }

    /// `rvsadm drain` (true) / `drain off` (false): withdraws every VIP
    /// (or announces again) at once while forwarding goes on; true when
    /// that changed the state. An error when not announcing.
    pub fn drain(&mut self, on: bool) -> Result<bool, String> {
        let a = self.announcer.as_mut().ok_or_else(not_announcing)?;
        let changed = a.set_drained(on);
        if changed {
            info!(
                "{}",
                if on {
                    "drain: withdrawing every VIP; forwarding goes on"
                } else {
                    "drain off: announcing again"
                }
            );
        }
        self.poll_announce(Instant::now());
        Ok(changed)
    }

    /// `rvsadm drain status` / `announce status`: the announcer's state
    /// and the connections this node still carries.
    pub fn announce_status(&self) -> Result<Value, String> {
        let a = self.announcer.as_ref().ok_or_else(not_announcing)?;
        let remaining = announce::carried_connections(&self.workers.snapshots());
        Ok(a.status().to_json(remaining))
    }

    fn share_announce(&self) {
        if let Ok(mut g) = self.announce_view.lock() {
            *g = self.announcer.as_ref().map(|a| a.status().clone());
        }
    }

    /// The configuration rvsd started with: a reload then names each
    /// setting outside the virtual servers that the file changes and the
    /// running rvsd keeps (`unapplied`).
    pub fn set_running_config(&mut self, config: Config) {
        self.set_passive_checks(&config.virtual_servers);
        self.running = Some(config);
    }

    /// Judges the real servers by their handshakes as `configs` (the
    /// file's virtual servers) set (`control::passive`).
    pub fn set_passive_checks(&mut self, configs: &[VirtualServerConfig]) {
        self.passive.configure(self.servers.snapshot(), configs);
        self.share_passive();
    }

    /// Reads the workers' handshake counters and takes out each server
    /// whose handshakes fail too often (nothing to do while no service
    /// has a passive check). The server goes down as a failed active check
    /// would take it: the checker marks it down with its success streak
    /// reset, so `rise` successes in a row bring it back.
    pub fn poll_passive(&mut self, now: Instant) {
        if !self.passive.any_enabled() {
            return;
        }
        let totals = report::sum_real_servers(&self.workers.snapshots());
        let was = self.passive.table();
        let verdicts = self.passive.observe(now, &totals, self.servers.snapshot());
        for v in &verdicts {
            let reason = v.reason();
            let table = self.servers.snapshot().clone();
            let service = table.get(v.vs);
            let addr = service
                .real_addr(v.rs)
                .map_or_else(|| "?".to_string(), |a| a.to_string());
            // Only a server its active check can bring back is taken out.
            if !self
                .health
                .force_down(v.vs, v.rs, &format!("passive check: {reason}"))
            {
                warn!(
                    "passive check: real server {addr} of {} failing ({reason}) but not taken \
                     out: no active check to bring it back",
                    service.name
                );
                self.passive.revoke(v.vs, v.rs);
                continue;
            }
            warn!(
                "passive check: real server {addr} of {} down: {reason}",
                service.name
            );
            if self.servers.set_down(v.vs, v.rs, true, Instant::now()) {
                self.log_group_changes(&format!("real server {addr} down (passive check)"));
                self.publish();
            }
        }
        if self.passive.table() != was {
            self.share_passive();
        }
    }

    /// Per service, per real server: taken out by the passive check now,
    /// and how many times (`rvsadm list`, metrics).
    pub fn passive_table(&self) -> Vec<Vec<(bool, u64)>> {
        self.passive.table()
    }

    fn share_passive(&self) {
        if let Ok(mut g) = self.passive_view.lock() {
            *g = self.passive.table();
        }
    }

    /// Where `rvsadm stats` and the metrics read the packet-buffer pools.
    pub fn set_pools(&mut self, pools: PoolSource) {
        self.pools = Some(pools);
    }

    /// The packet-buffer pools' use now (none without a pool source).
    pub fn pools(&self) -> Vec<PoolUsage> {
        self.pools.as_ref().map(|read| read()).unwrap_or_default()
    }

    /// Reports `clients` (the control socket's and the metrics
    /// endpoint's counters) in `rvsadm stats` and the metrics.
    pub fn set_client_stats(&mut self, clients: ClientStats) {
        self.clients = clients;
    }

    /// The client counters by endpoint, as `rvsadm stats` shows them.
    pub fn client_stats(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .clients
            .iter()
            .map(|(n, c)| (n.to_string(), c.get().to_json()))
            .collect();
        Value::Object(map)
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
        for change in self.health.weight_changes() {
            self.apply_check_weight(&change);
        }
    }

    /// A weight asked for by a `script` check (`script_dynamic_weight`),
    /// applied as `rvsadm weight` applies one (`None`: back to the
    /// configured weight); logged and published only when it changes the
    /// weight in force.
    pub fn apply_check_weight(&mut self, change: &WeightChange) {
        let changed = match change.weight {
            Some(w) => self
                .servers
                .set_weight(change.vs, change.rs, w, Instant::now()),
            None => self
                .servers
                .clear_weight(change.vs, change.rs, Instant::now()),
        };
        if !changed {
            return;
        }
        let weight = self.servers.snapshot().weight(change.vs, change.rs);
        info!(
            "weight of real server {} ({}) set to {weight}{} by its health check: {}",
            change.endpoint,
            change.name,
            match change.weight {
                None => " (the configured weight)",
                Some(0) => " (draining: no new connections)",
                Some(_) => "",
            },
            change.reason
        );
        self.log_slow_start(change.vs, change.rs);
        self.log_group_changes(&format!(
            "weight of {} set to {weight} by its health check",
            change.endpoint
        ));
        self.publish();
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
        if self
            .servers
            .set_down(change.vs, change.rs, !change.up, Instant::now())
        {
            self.log_slow_start(change.vs, change.rs);
            let state = if change.up { "up" } else { "down" };
            self.log_group_changes(&format!("real server {} {state}", change.endpoint));
            self.publish();
        }
    }

    /// Logs each change of active priority group the last snapshots made,
    /// with `cause` (what made them); `Servers` has counted them.
    fn log_group_changes(&mut self, cause: &str) {
        for c in self.servers.take_group_changes() {
            warn!("{}", c.line(cause));
        }
    }

    /// Logs the slow start real server `rs` of `vs` begins, if it does.
    fn log_slow_start(&self, vs: ServiceId, rs: RealServerId) {
        let table = self.servers.snapshot();
        if let Some(ramp) = table.slow_start(vs, rs) {
            let e = table.get(vs).real_servers[usize::from(rs)].endpoint;
            info!(
                "real server {}:{} ({}): slow start, weight {} of {} over {}s",
                e.ip,
                e.port,
                table.get(vs).name,
                table.effective_weight(vs, rs),
                table.weight(vs, rs),
                ramp.duration.as_secs()
            );
        }
    }

    /// `rvsadm weight`: sets the run-time weight of real server `real`
    /// ("RIP:PORT") of `service` ("VIP:PORT/PROTO"); 0 drains it (its
    /// connections live on, new ones go elsewhere). A reload that changes
    /// the file restores the file's weight.
    pub fn set_weight(&mut self, service: &str, real: &str, weight: u32) -> Result<(), String> {
        let (vs, rs) = self.servers.find(service, real)?;
        if self.servers.set_weight(vs, rs, weight, Instant::now()) {
            self.log_slow_start(vs, rs);
            self.log_group_changes(&format!("weight of {real} set to {weight}"));
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
    /// run-time weights give way to the file's. A file that changes only
    /// health-check settings retargets the checks and sends no snapshot.
    /// Returns the summary of changes, or the errors one per line.
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
        if let Some(e) = over_server_cap(&merged.table) {
            error!("reload refused, running config kept: {e}");
            return Err(e);
        }
        let unapplied = self.take_unapplied(&new);
        let table = Arc::new(merged.table);
        let passive = self.passive.configure(&table, &new.virtual_servers);
        self.share_passive();
        // Health-check settings are not in the service table: a reload
        // that changes only them changes the checks' targets.
        let targets = health::targets(&table, &new.virtual_servers);
        let running = self.health.targets();
        if merged.changes.is_empty() && targets == running && passive.is_empty() {
            info!("reload: no change to the virtual servers");
            return Ok(with_unapplied("no change".into(), &unapplied));
        }
        let mut summary: Vec<String> = merged.changes.iter().map(|c| c.to_string()).collect();
        summary.extend(health::check_changes(&running, &targets));
        summary.extend(passive);
        if summary.is_empty() {
            summary.push("health checks: targets updated".into());
        }
        for line in &summary {
            info!("reload: {line}");
        }
        self.health.retarget(targets);
        if !merged.changes.is_empty() {
            let up = self.health.up_table(&table);
            // Room for every server's counters before the workers see them.
            self.workers
                .reserve(total_real_servers(&table), table.len());
            self.servers.replace(table, &up, Instant::now());
            self.log_group_changes("reload");
            self.publish();
        }
        Ok(with_unapplied(summary.join("\n"), &unapplied))
    }

    /// The settings `new` changes that this reload leaves as they run,
    /// each logged; the running configuration takes `new`'s virtual
    /// servers (what the reload applies).
    fn take_unapplied(&mut self, new: &Config) -> Vec<Unapplied> {
        let Some(running) = self.running.as_mut() else {
            return Vec::new();
        };
        let list = unapplied::unapplied(running, new);
        for u in &list {
            warn!("reload: {u}");
        }
        running.virtual_servers = new.virtual_servers.clone();
        list
    }

    /// `rvsadm ha master|backup`: see `Role::set_master`.
    pub fn set_master(&mut self, master: bool) -> Result<bool, String> {
        self.role.set_master(master, &self.workers, Instant::now())
    }

    /// The periodic chores that need no event: the next gratuitous ARP
    /// round and the next step of the slow starts, when due.
    pub fn tick(&mut self, now: Instant) {
        self.role.tick(&self.workers, now);
        if self.servers.tick(now) {
            self.publish();
        }
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
        let pools = self.pools.clone();
        let clients = self.clients.clone();
        let passive = self.passive_view.clone();
        let announce = self.announce_view.clone();
        Arc::new(move || {
            let services = shared.lock().map(|g| g.clone()).unwrap_or_default();
            MetricsSnapshot {
                health: servers::up_table(&services),
                weights: servers::weight_table(&services),
                health_checks: view.statuses(),
                workers: workers::snapshots(&cells),
                ha: role.status(),
                pools: pools.as_ref().map(|read| read()).unwrap_or_default(),
                clients: clients.iter().map(|(n, c)| (*n, c.get())).collect(),
                passive: passive.lock().map(|g| g.clone()).unwrap_or_default(),
                announce: announce.lock().map(|g| g.clone()).unwrap_or_default(),
                services,
            }
        })
    }
}

/// The error of a drain or announce request while not announcing.
fn not_announcing() -> String {
    "not announcing: this rvsd tells no BGP speaker about its VIPs ([cluster] announce)".to_string()
}

/// The reload answer: `summary`, then one line per setting not applied.
fn with_unapplied(summary: String, unapplied: &[Unapplied]) -> String {
    let mut lines = vec![summary];
    lines.extend(unapplied.iter().map(|u| u.to_string()));
    lines.join("\n")
}

/// Real servers of every service of `table`, draining ones included: the
/// room the workers' stats cells need.
fn total_real_servers(table: &ServiceTable) -> usize {
    table.services().iter().map(|s| s.real_servers.len()).sum()
}

/// The refusal of a merged table in which a service would have more real
/// server slots (draining ones included) than a 16-bit index names.
fn over_server_cap(table: &ServiceTable) -> Option<String> {
    let cap = VirtualServerConfig::MAX_REAL_SERVERS;
    table
        .services()
        .iter()
        .find(|s| s.real_servers.len() > cap)
        .map(|s| {
            format!(
                "virtual server {}: {} real servers with those still draining; at most {cap} \
                 (restart rvsd to drop the drained ones)",
                s.name,
                s.real_servers.len()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::service::{ForwardMethod, Protocol, SchedulerKind, ServiceKey, VirtualService};
    use crate::lb::xmit::Endpoint;
    use std::net::Ipv4Addr;

    fn table(servers: usize) -> ServiceTable {
        let key = ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(192, 0, 2, 100), 80),
            protocol: Protocol::Tcp,
        };
        let rs =
            (0..servers).map(|i| (Endpoint::new(Ipv4Addr::from(0x0a00_0000 + i as u32), 80), 1));
        ServiceTable::new(vec![VirtualService::new(
            "web",
            key,
            ForwardMethod::Dr,
            SchedulerKind::Rr,
            rs,
        )])
    }

    #[test]
    fn a_merged_table_within_the_index_width_passes() {
        assert_eq!(
            over_server_cap(&table(VirtualServerConfig::MAX_REAL_SERVERS)),
            None
        );
    }

    #[test]
    fn a_merged_table_beyond_the_index_width_is_refused_with_the_limit() {
        let e = over_server_cap(&table(VirtualServerConfig::MAX_REAL_SERVERS + 1)).unwrap();
        assert!(e.contains("virtual server web: 65536 real servers"), "{e}");
        assert!(e.contains("at most 65535"), "{e}");
    }
}
