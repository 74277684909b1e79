//! The one owner of real-server state at run time.
//!
//! Each real server has a health (the checks' verdict) and maybe a run-time
//! weight (`rvsadm weight`) over the file's. They live here and nowhere
//! else: every change makes a new snapshot, the running table with that
//! state applied (`ServiceTable::with_server_state`), and the snapshot is
//! what the workers schedule with and what `rvsadm list` and the metrics
//! read. Workers keep no copy to drift out of step, and a reload needs no
//! re-broadcast of health: its snapshot carries it.
//!
//! Slow starts live here too (`control::slow_start` keeps their clock): a
//! server that starts taking new connections (up after down, raised from
//! weight 0, added or brought back by a reload) begins its ramp, one that
//! stops ends it, and `tick` republishes the ramps' steps. rvsd's start
//! begins none: every server starts at its full weight.

use super::priority::{self, GroupChange};
use super::slow_start::Ramps;
use crate::lb::service::{Protocol, RealServerId, ServerState, ServiceId, ServiceTable};
use crate::lb::xmit::Endpoint;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Instant;

/// The running table and each real server's run-time state.
#[derive(Debug)]
pub struct Servers {
    /// The running table with `state` applied: what workers run.
    snapshot: Arc<ServiceTable>,
    /// Per service, per real server, in table order.
    state: Vec<Vec<ServerState>>,
    /// Times each service's active priority group changed (by slot).
    priority_changes: Vec<u64>,
    /// The group changes the last snapshots made, not yet taken.
    group_changes: Vec<GroupChange>,
    /// The slow starts running.
    ramps: Ramps,
}

impl Servers {
    /// Starts from `table` with every server up at its configured weight
    /// (the table the workers were set up with, so no snapshot is due).
    pub fn new(table: Arc<ServiceTable>) -> Servers {
        let state = shape(&table, |_, _| ServerState::default());
        Servers {
            snapshot: table,
            state,
            priority_changes: Vec::new(),
            group_changes: Vec::new(),
            ramps: Ramps::new(),
        }
    }

    /// The table in force with every server's state applied.
    pub fn snapshot(&self) -> &Arc<ServiceTable> {
        &self.snapshot
    }

    /// Marks real server `rs` of `vs` down or up at `now`; true when that
    /// changed it (and a new snapshot was made). Up begins its slow start.
    pub fn set_down(&mut self, vs: ServiceId, rs: RealServerId, down: bool, now: Instant) -> bool {
        self.update(vs, rs, now, |s| s.down = down)
    }

    /// Sets the run-time weight of real server `rs` of `vs` (0 drains: no
    /// new connections); true when that changed it (and a new snapshot
    /// was made). Raised from 0, it begins its slow start.
    pub fn set_weight(
        &mut self,
        vs: ServiceId,
        rs: RealServerId,
        weight: u32,
        now: Instant,
    ) -> bool {
        self.update(vs, rs, now, |s| s.weight = Some(weight))
    }

    /// The next step of the slow starts, when one is due at `now`: true
    /// when it made a new snapshot (to publish). Never while no ramp runs.
    pub fn tick(&mut self, now: Instant) -> bool {
        if !self.ramps.due(now) {
            return false;
        }
        let table = self.snapshot.clone();
        for ((vs, rs), ramp) in self.ramps.step(now, |(v, r)| table.get(v).slow_start_of(r)) {
            if let Some(s) = self
                .state
                .get_mut(usize::from(vs))
                .and_then(|v| v.get_mut(usize::from(rs)))
            {
                s.ramp = ramp;
            }
        }
        self.rebuild(&table);
        true
    }

    /// Drops the run-time weight of real server `rs` of `vs` for the
    /// configured one; true when that changed it (and a new snapshot was
    /// made).
    pub fn clear_weight(&mut self, vs: ServiceId, rs: RealServerId, now: Instant) -> bool {
        self.update(vs, rs, now, |s| s.weight = None)
    }

    /// Takes a reloaded table (indexes kept, see `control::reload`): health
    /// from `up` (the checks' view, shaped like `table`; missing entries
    /// are up), run-time weights dropped for the file's. Servers that take
    /// new connections now and did not before (added, back from draining,
    /// up, raised from weight 0) begin their slow start at `now`; running
    /// ramps go on with the new file's duration.
    pub fn replace(&mut self, table: Arc<ServiceTable>, up: &[Vec<bool>], now: Instant) {
        let mut state = shape(&table, |v, r| ServerState {
            down: !up.get(v).and_then(|u| u.get(r)).copied().unwrap_or(true),
            weight: None,
            ramp: None,
        });
        for (v, servers) in state.iter_mut().enumerate() {
            for (r, s) in servers.iter_mut().enumerate() {
                let key = (v as ServiceId, r as RealServerId);
                let before = self.state.get(v).and_then(|x| x.get(r));
                let took = before.is_some_and(|b| takes(&self.snapshot, key, b));
                let duration = table.get(key.0).slow_start_of(key.1);
                s.ramp = if !takes(&table, key, s) {
                    self.ramps.end(key);
                    None
                } else if took {
                    self.ramps.at(key, duration, now)
                } else {
                    self.ramps.begin(key, duration, now)
                };
            }
        }
        self.state = state;
        let previous = std::mem::replace(&mut self.snapshot, table);
        self.rebuild(&previous);
    }

    /// The changes of active priority group the snapshots made since the
    /// last call, in order (each already counted).
    pub fn take_group_changes(&mut self) -> Vec<GroupChange> {
        std::mem::take(&mut self.group_changes)
    }

    fn update(
        &mut self,
        vs: ServiceId,
        rs: RealServerId,
        now: Instant,
        change: impl Fn(&mut ServerState),
    ) -> bool {
        let Some(s) = self
            .state
            .get_mut(usize::from(vs))
            .and_then(|v| v.get_mut(usize::from(rs)))
        else {
            return false;
        };
        let before = *s;
        change(s);
        if *s == before {
            return false;
        }
        let key = (vs, rs);
        let (took, takes_now) = (
            takes(&self.snapshot, key, &before),
            takes(&self.snapshot, key, s),
        );
        if !takes_now {
            s.ramp = None;
            self.ramps.end(key);
        } else if !took {
            let duration = self.snapshot.get(vs).slow_start_of(rs);
            s.ramp = self.ramps.begin(key, duration, now);
        }
        let previous = self.snapshot.clone();
        self.rebuild(&previous);
        true
    }

    /// Applies `state` to the table in force, and counts and keeps the
    /// changes of active priority group since `previous`.
    fn rebuild(&mut self, previous: &ServiceTable) {
        let state = &self.state;
        let table = (*self.snapshot).clone().with_server_state(|v, r| {
            state
                .get(usize::from(v))
                .and_then(|s| s.get(usize::from(r)))
                .copied()
                .unwrap_or_default()
        });
        let changes = priority::changes(previous, &table);
        self.priority_changes.resize(table.len(), 0);
        for c in &changes {
            self.priority_changes[usize::from(c.vs)] += 1;
        }
        self.group_changes.extend(changes);
        self.snapshot = Arc::new(table.with_priority_changes(self.priority_changes.clone()));
    }

    /// Finds a service by "VIP:PORT/PROTO" (the protocol defaults to tcp)
    /// and a real server in it by "RIP:PORT". The errors name what was not
    /// found, for rvsadm to print.
    pub fn find(&self, service: &str, real: &str) -> Result<(ServiceId, RealServerId), String> {
        let (addr, proto) = service.rsplit_once('/').unwrap_or((service, "tcp"));
        let vip: SocketAddrV4 = addr
            .parse()
            .map_err(|_| format!("{service:?} is not VIP:PORT/PROTO"))?;
        let protocol: Protocol = proto.parse().map_err(|e| format!("{service:?}: {e}"))?;
        let vs = self
            .snapshot
            .lookup(Endpoint::new(*vip.ip(), vip.port()), protocol)
            .ok_or_else(|| format!("no virtual server {service}"))?;
        let rip: SocketAddrV4 = real
            .parse()
            .map_err(|_| format!("{real:?} is not RIP:PORT"))?;
        let rs = self
            .snapshot
            .get(vs)
            .real_servers
            .iter()
            .position(|r| r.endpoint == Endpoint::new(*rip.ip(), rip.port()))
            .ok_or_else(|| format!("{service} has no real server {real}"))?;
        Ok((vs, rs as RealServerId))
    }
}

/// True when real server `key` of `table` in state `s` takes new
/// connections: up, not draining, its weight above 0.
fn takes(table: &ServiceTable, (vs, rs): (ServiceId, RealServerId), s: &ServerState) -> bool {
    let file_weight = table
        .services()
        .get(usize::from(vs))
        .and_then(|v| v.real_servers.get(usize::from(rs)))
        .map(|r| r.weight);
    !s.down
        && !table.is_server_draining(vs, rs)
        && file_weight.is_some_and(|w| s.weight.unwrap_or(w) > 0)
}

/// `f(service, server)` for every real server of `table`, in table order.
fn shape(table: &ServiceTable, f: impl Fn(usize, usize) -> ServerState) -> Vec<Vec<ServerState>> {
    table
        .services()
        .iter()
        .enumerate()
        .map(|(v, s)| (0..s.real_servers.len()).map(|r| f(v, r)).collect())
        .collect()
}

/// Up (true) or down per service, per real server, as `table` says.
pub fn up_table(table: &ServiceTable) -> Vec<Vec<bool>> {
    per_server(table, |v, r| !table.is_down(v, r))
}

/// The operator's weight per service, per real server, as `table` says.
pub fn weight_table(table: &ServiceTable) -> Vec<Vec<u32>> {
    per_server(table, |v, r| table.weight(v, r))
}

fn per_server<T>(table: &ServiceTable, f: impl Fn(ServiceId, RealServerId) -> T) -> Vec<Vec<T>> {
    table
        .services()
        .iter()
        .enumerate()
        .map(|(v, s)| {
            (0..s.real_servers.len())
                .map(|r| f(v as ServiceId, r as RealServerId))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::service::{
        ForwardMethod, RealServer, SchedulerKind, ServiceKey, VirtualService,
    };
    use std::time::Duration;

    fn table() -> Arc<ServiceTable> {
        let ep = |s: &str, p| Endpoint::new(s.parse().unwrap(), p);
        let key = ServiceKey {
            vip: ep("203.0.113.100", 80),
            protocol: Protocol::Tcp,
        };
        let servers = [(ep("10.1.0.11", 8080), 3), (ep("10.1.0.12", 8080), 1)];
        Arc::new(ServiceTable::new(vec![VirtualService::new(
            "web",
            key,
            ForwardMethod::Nat,
            SchedulerKind::Wrr,
            servers,
        )]))
    }

    #[test]
    fn a_new_owner_runs_the_table_it_was_given() {
        let t = table();
        let s = Servers::new(t.clone());
        assert!(Arc::ptr_eq(s.snapshot(), &t));
    }

    #[test]
    fn a_down_server_gets_effective_weight_zero_and_keeps_its_weight() {
        let mut s = Servers::new(table());
        assert!(s.set_down(0, 0, true, Instant::now()));
        assert_eq!(s.snapshot().effective_weight(0, 0), 0);
        assert!(s.snapshot().is_down(0, 0));
        assert_eq!(s.snapshot().weight(0, 0), 3);
        assert_eq!(s.snapshot().effective_weight(0, 1), 1);
    }

    #[test]
    fn a_repeated_state_makes_no_new_snapshot() {
        let mut s = Servers::new(table());
        assert!(!s.set_down(0, 0, false, Instant::now()));
        assert!(s.set_weight(0, 1, 5, Instant::now()));
        let before = s.snapshot().clone();
        assert!(!s.set_weight(0, 1, 5, Instant::now()));
        assert!(Arc::ptr_eq(s.snapshot(), &before));
    }

    #[test]
    fn clearing_a_run_time_weight_restores_the_configured_one() {
        let mut s = Servers::new(table());
        assert!(!s.clear_weight(0, 0, Instant::now()), "nothing to clear");
        assert!(s.set_weight(0, 0, 7, Instant::now()));
        assert_eq!(s.snapshot().weight(0, 0), 7);
        assert!(s.clear_weight(0, 0, Instant::now()));
        assert_eq!(s.snapshot().weight(0, 0), 3);
    }

    #[test]
    fn unknown_servers_change_nothing() {
        let mut s = Servers::new(table());
        assert!(!s.set_down(0, 7, true, Instant::now()));
        assert!(!s.set_weight(3, 0, 1, Instant::now()));
    }

    #[test]
    fn find_names_what_it_cannot_find() {
        let s = Servers::new(table());
        assert_eq!(s.find("203.0.113.100:80/tcp", "10.1.0.12:8080"), Ok((0, 1)));
        assert_eq!(s.find("203.0.113.100:80", "10.1.0.11:8080"), Ok((0, 0)));
        assert_eq!(
            s.find("203.0.113.100:81/tcp", "10.1.0.11:8080"),
            Err("no virtual server 203.0.113.100:81/tcp".into())
        );
        assert_eq!(
            s.find("203.0.113.100:80/tcp", "10.1.0.13:8080"),
            Err("203.0.113.100:80/tcp has no real server 10.1.0.13:8080".into())
        );
        assert!(s
            .find("web", "10.1.0.11:8080")
            .unwrap_err()
            .contains("VIP:PORT/PROTO"));
        assert!(s
            .find("203.0.113.100:80/tcp", "x")
            .unwrap_err()
            .contains("RIP:PORT"));
    }

    #[test]
    fn tables_for_metrics_follow_the_snapshot() {
        let mut s = Servers::new(table());
        s.set_down(0, 1, true, Instant::now());
        s.set_weight(0, 0, 0, Instant::now());
        assert_eq!(up_table(s.snapshot()), vec![vec![true, false]]);
        assert_eq!(weight_table(s.snapshot()), vec![vec![0, 1]]);
    }

    #[test]
    fn group_changes_are_counted_and_kept_until_taken() {
        let mut s = Servers::new(table());
        let mut grouped = (**s.snapshot()).clone();
        let mut services = grouped.services().to_vec();
        services[0].real_servers[1].priority = 1;
        grouped = ServiceTable::new(services);
        let now = Instant::now();
        s.replace(Arc::new(grouped), &[vec![true, true]], now);
        assert!(s.take_group_changes().is_empty(), "the reload kept group 0");
        assert!(s.set_down(0, 0, true, now));
        let c = s.take_group_changes();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].from, c[0].to), (Some(0), Some(1)));
        assert_eq!(s.snapshot().priority_changes(0), 1);
        assert!(s.set_down(0, 0, false, now));
        assert_eq!(s.snapshot().priority_changes(0), 2);
        assert_eq!(s.take_group_changes()[0].to, Some(0));
        assert!(s.take_group_changes().is_empty());
    }

    /// `web` with real servers of weight 10 and 4 and an 8 s slow start.
    fn slow_table() -> Arc<ServiceTable> {
        let mut t = (*table()).clone();
        let mut services = t.services().to_vec();
        services[0].slow_start = Duration::from_secs(8);
        services[0].real_servers[0].weight = 10;
        services[0].real_servers[1].weight = 4;
        t = ServiceTable::new(services);
        Arc::new(t)
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Effective weight of server `rs` after a tick at `now`.
    fn weight_at(s: &mut Servers, rs: RealServerId, now: Instant) -> u32 {
        s.tick(now);
        s.snapshot().effective_weight(0, rs)
    }

    #[test]
    fn servers_start_at_full_weight_with_no_ramp() {
        let mut s = Servers::new(slow_table());
        assert_eq!(s.snapshot().effective_weight(0, 0), 10);
        assert!(!s.tick(Instant::now() + secs(1.0)), "nothing to republish");
    }

    #[test]
    fn a_server_back_up_ramps_from_one_to_its_weight_over_slow_start() {
        let t0 = Instant::now();
        let mut s = Servers::new(slow_table());
        s.set_down(0, 0, true, t0);
        s.set_down(0, 0, false, t0 + secs(1.0));
        let up = t0 + secs(1.0);
        assert_eq!(s.snapshot().effective_weight(0, 0), 1);
        assert_eq!(s.snapshot().weight(0, 0), 10);
        let ramp: Vec<u32> = [2.0, 4.0, 6.0, 7.9]
            .iter()
            .map(|&t| weight_at(&mut s, 0, up + secs(t)))
            .collect();
        assert_eq!(ramp, [3, 5, 8, 10]);
        assert!(s.snapshot().slow_start(0, 0).is_some(), "7.9 s of 8");
        // The step after the ramp's end (steps are 160 ms apart) ends it.
        assert_eq!(weight_at(&mut s, 0, up + secs(8.1)), 10);
        assert_eq!(s.snapshot().slow_start(0, 0), None);
        assert!(
            !s.tick(up + secs(9.0)),
            "the ramp is over: no more snapshots"
        );
        assert_eq!(
            s.snapshot().effective_weight(0, 1),
            4,
            "the other never ramped"
        );
    }

    #[test]
    fn ticks_between_steps_make_no_snapshot() {
        let t0 = Instant::now();
        let mut s = Servers::new(slow_table());
        s.set_down(0, 0, true, t0);
        s.set_down(0, 0, false, t0);
        assert!(!s.tick(t0 + secs(0.1)), "a step is 8 s / 50 = 160 ms");
        assert!(s.tick(t0 + secs(0.2)));
        assert!(!s.tick(t0 + secs(0.3)));
    }

    #[test]
    fn a_server_down_mid_ramp_starts_its_ramp_again_when_back() {
        let t0 = Instant::now();
        let mut s = Servers::new(slow_table());
        s.set_down(0, 0, true, t0);
        s.set_down(0, 0, false, t0);
        assert_eq!(weight_at(&mut s, 0, t0 + secs(4.0)), 5);
        s.set_down(0, 0, true, t0 + secs(4.5));
        assert_eq!(s.snapshot().effective_weight(0, 0), 0);
        assert_eq!(s.snapshot().slow_start(0, 0), None);
        assert!(!s.tick(t0 + secs(5.0)), "no ramp while down");
        s.set_down(0, 0, false, t0 + secs(6.0));
        assert_eq!(
            s.snapshot().effective_weight(0, 0),
            1,
            "from the start again"
        );
        assert_eq!(weight_at(&mut s, 0, t0 + secs(10.0)), 5);
    }

    #[test]
    fn a_weight_raised_from_zero_ramps_and_other_changes_do_not() {
        let t0 = Instant::now();
        let mut s = Servers::new(slow_table());
        s.set_weight(0, 1, 8, t0);
        assert_eq!(
            s.snapshot().effective_weight(0, 1),
            8,
            "not from 0: no ramp"
        );
        s.set_weight(0, 1, 0, t0);
        s.set_weight(0, 1, 8, t0 + secs(1.0));
        assert_eq!(s.snapshot().effective_weight(0, 1), 1);
        assert_eq!(weight_at(&mut s, 1, t0 + secs(5.0)), 4);
    }

    #[test]
    fn without_slow_start_a_server_comes_back_at_full_weight() {
        let t0 = Instant::now();
        let mut s = Servers::new(table());
        s.set_down(0, 0, true, t0);
        s.set_down(0, 0, false, t0);
        assert_eq!(s.snapshot().effective_weight(0, 0), 3);
        assert!(!s.tick(t0 + secs(1.0)));
    }

    #[test]
    fn a_real_server_added_by_reload_ramps_and_the_others_do_not() {
        let t0 = Instant::now();
        let old = slow_table();
        let mut s = Servers::new(old.clone());
        let mut new = old.services()[0].clone();
        new.real_servers.push(RealServer {
            endpoint: Endpoint::new("10.1.0.13".parse().unwrap(), 8080),
            weight: 6,
            thresholds: Default::default(),
            priority: 0,
            slow_start: None,
        });
        let merged = crate::control::reload::merge(&old, &[new]);
        let up = vec![vec![true; 3]];
        s.replace(Arc::new(merged.table), &up, t0);
        assert_eq!(s.snapshot().effective_weight(0, 0), 10);
        assert_eq!(s.snapshot().effective_weight(0, 2), 1);
        assert_eq!(weight_at(&mut s, 2, t0 + secs(4.0)), 3);
    }

    #[test]
    fn a_reload_keeps_a_running_ramp_going() {
        let t0 = Instant::now();
        let table = slow_table();
        let mut s = Servers::new(table.clone());
        s.set_down(0, 0, true, t0);
        s.set_down(0, 0, false, t0);
        s.replace(table.clone(), &[vec![true, true]], t0 + secs(4.0));
        assert_eq!(s.snapshot().effective_weight(0, 0), 5, "not restarted");
        assert_eq!(weight_at(&mut s, 0, t0 + secs(8.0)), 10);
    }
}
