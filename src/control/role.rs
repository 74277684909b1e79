//! The balancer's HA role as the control loop drives it: master or backup
//! on keepalived's word (`rvsadm ha master|backup`), told to every worker,
//! and the rounds of gratuitous ARPs a new master sends, spaced out over
//! the loop's ticks. Time is passed in, so the schedule is tested without
//! waiting.

use super::ha::{Ha, HaView};
use super::workers::Workers;
use crate::dataplane::worker::Command;
use crate::info;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The role, when `[ha]` is configured, and the announcement schedule.
pub struct Role {
    ha: Option<Ha>,
    /// Gratuitous ARP rounds on becoming master.
    garp_count: u32,
    /// Time between two rounds.
    garp_interval: Duration,
    /// Rounds still to send, and when the next one is due.
    garps_left: u32,
    next_garp: Instant,
}

impl Role {
    /// The role of `ha` (`None`: standalone), announcing with `garp_count`
    /// rounds `garp_interval` apart. Starting as master announces at once,
    /// as keepalived's notify would.
    pub fn new(ha: Option<Ha>, garp_count: u32, garp_interval: Duration, now: Instant) -> Role {
        let garps_left = if ha.as_ref().is_some_and(Ha::is_master) {
            garp_count
        } else {
            0
        };
        Role {
            ha,
            garp_count,
            garp_interval,
            garps_left,
            next_garp: now,
        }
    }

    /// The `rvsadm ha status` document.
    pub fn status(&self) -> Value {
        self.view().status()
    }

    /// The services in force after a reload: sync records are checked
    /// against them (nothing when standalone).
    pub fn set_services(&self, table: &std::sync::Arc<crate::lb::service::ServiceTable>) {
        if let Some(ha) = &self.ha {
            ha.set_services(table.clone());
        }
    }

    /// The sync runtime's read-only handle (`None`: standalone): a
    /// `[cluster]` node's announcer asks it `HaView::is_joined`.
    pub fn ha_view(&self) -> Option<HaView> {
        self.ha.as_ref().map(Ha::view)
    }

    /// A handle other threads read the role through (the status page).
    pub fn view(&self) -> RoleView {
        RoleView(self.ha.as_ref().map(Ha::view))
    }

    /// Becomes master or backup and tells every worker; returns whether
    /// the role changed. A master (also a repeated one: keepalived may say
    /// it again after a fault, and announcing is harmless) starts a round
    /// of gratuitous ARPs; a backup stops announcing.
    pub fn set_master(
        &mut self,
        master: bool,
        workers: &Workers,
        now: Instant,
    ) -> Result<bool, String> {
        let Some(ha) = &self.ha else {
            return Err("HA is not configured on this rvsd (no [ha] section)".into());
        };
        if ha.is_cluster() {
            return Err(
                "this rvsd is a [cluster] node: every node is active, there is no master or \
                 backup to set"
                    .into(),
            );
        }
        let changed = ha.set_master(master);
        workers.broadcast(|| Command::HaRole { master });
        if master {
            self.garps_left = self.garp_count;
            self.next_garp = now;
        } else {
            self.garps_left = 0;
        }
        if changed {
            info!("ha: now {}", if master { "master" } else { "backup" });
        }
        Ok(changed)
    }

    /// Asks one worker for the next gratuitous ARP round when one is due.
    pub fn tick(&mut self, workers: &Workers, now: Instant) {
        if self.garps_left == 0 || now < self.next_garp {
            return;
        }
        workers.send_first(Command::Garp);
        self.garps_left -= 1;
        self.next_garp = now + self.garp_interval;
    }
}

/// The role as other threads read it (`Role::view`): the status page
/// shows it beside the servers.
#[derive(Clone, Debug, Default)]
pub struct RoleView(Option<HaView>);

impl RoleView {
    /// The `rvsadm ha status` document.
    pub fn status(&self) -> Value {
        match &self.0 {
            Some(ha) => ha.status(),
            None => json!({
                "role": "standalone",
                "configured": false,
                "detail": "no [ha] section in the config: this rvsd has no peer"
            }),
        }
    }
}
