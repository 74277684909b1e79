//! The one owner of real-server state at run time.
//!
//! Each real server has a health (the checks' verdict) and maybe a run-time
//! weight (`rvsadm weight`) over the file's. They live here and nowhere
//! else: every change makes a new snapshot, the running table with that
//! state applied (`ServiceTable::with_server_state`), and the snapshot is
//! what the workers schedule with and what `rvsadm list` and the metrics
//! read. Workers keep no copy to drift out of step, and a reload needs no
//! re-broadcast of health: its snapshot carries it.

use crate::lb::service::{Protocol, RealServerId, ServerState, ServiceId, ServiceTable};
use crate::lb::xmit::Endpoint;
use std::net::SocketAddrV4;
use std::sync::Arc;

/// The running table and each real server's run-time state.
#[derive(Debug)]
pub struct Servers {
    /// The running table with `state` applied: what workers run.
    snapshot: Arc<ServiceTable>,
    /// Per service, per real server, in table order.
    state: Vec<Vec<ServerState>>,
}

impl Servers {
    /// Starts from `table` with every server up at its configured weight
    /// (the table the workers were set up with, so no snapshot is due).
    pub fn new(table: Arc<ServiceTable>) -> Servers {
        let state = shape(&table, |_, _| ServerState::default());
        Servers {
            snapshot: table,
            state,
        }
    }

    /// The table in force with every server's state applied.
    pub fn snapshot(&self) -> &Arc<ServiceTable> {
        &self.snapshot
    }

    /// Marks real server `rs` of `vs` down or up; true when that changed
    /// it (and a new snapshot was made).
    pub fn set_down(&mut self, vs: ServiceId, rs: RealServerId, down: bool) -> bool {
        self.update(vs, rs, |s| s.down = down)
    }

    /// Sets the run-time weight of real server `rs` of `vs` (0 drains: no
    /// new connections); true when that changed it (and a new snapshot
    /// was made).
    pub fn set_weight(&mut self, vs: ServiceId, rs: RealServerId, weight: u32) -> bool {
        self.update(vs, rs, |s| s.weight = Some(weight))
    }

    /// Drops the run-time weight of real server `rs` of `vs` for the
    /// configured one; true when that changed it (and a new snapshot was
    /// made).
    pub fn clear_weight(&mut self, vs: ServiceId, rs: RealServerId) -> bool {
        self.update(vs, rs, |s| s.weight = None)
    }

    /// Takes a reloaded table (indexes kept, see `control::reload`): health
    /// from `up` (the checks' view, shaped like `table`; missing entries
    /// are up), run-time weights dropped for the file's.
    pub fn replace(&mut self, table: Arc<ServiceTable>, up: &[Vec<bool>]) {
        self.state = shape(&table, |v, r| ServerState {
            down: !up.get(v).and_then(|u| u.get(r)).copied().unwrap_or(true),
            weight: None,
        });
        self.snapshot = table;
        self.rebuild();
    }

    fn update(
        &mut self,
        vs: ServiceId,
        rs: RealServerId,
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
        self.rebuild();
        true
    }

    fn rebuild(&mut self) {
        let state = &self.state;
        let table = (*self.snapshot).clone().with_server_state(|v, r| {
            state
                .get(usize::from(v))
                .and_then(|s| s.get(usize::from(r)))
                .copied()
                .unwrap_or_default()
        });
        self.snapshot = Arc::new(table);
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
    use crate::lb::service::{ForwardMethod, SchedulerKind, ServiceKey, VirtualService};

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
        assert!(s.set_down(0, 0, true));
        assert_eq!(s.snapshot().effective_weight(0, 0), 0);
        assert!(s.snapshot().is_down(0, 0));
        assert_eq!(s.snapshot().weight(0, 0), 3);
        assert_eq!(s.snapshot().effective_weight(0, 1), 1);
    }

    #[test]
    fn a_repeated_state_makes_no_new_snapshot() {
        let mut s = Servers::new(table());
        assert!(!s.set_down(0, 0, false));
        assert!(s.set_weight(0, 1, 5));
        let before = s.snapshot().clone();
        assert!(!s.set_weight(0, 1, 5));
        assert!(Arc::ptr_eq(s.snapshot(), &before));
    }

    #[test]
    fn clearing_a_run_time_weight_restores_the_configured_one() {
        let mut s = Servers::new(table());
        assert!(!s.clear_weight(0, 0), "nothing to clear");
        assert!(s.set_weight(0, 0, 7));
        assert_eq!(s.snapshot().weight(0, 0), 7);
        assert!(s.clear_weight(0, 0));
        assert_eq!(s.snapshot().weight(0, 0), 3);
    }

    #[test]
    fn unknown_servers_change_nothing() {
        let mut s = Servers::new(table());
        assert!(!s.set_down(0, 7, true));
        assert!(!s.set_weight(3, 0, 1));
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
        s.set_down(0, 1, true);
        s.set_weight(0, 0, 0);
        assert_eq!(up_table(s.snapshot()), vec![vec![true, false]]);
        assert_eq!(weight_table(s.snapshot()), vec![vec![0, 1]]);
    }
}
