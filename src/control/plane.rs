//! The control plane of a running rvsd, started beside the workers: the
//! control socket, the HA role and sync, the health checks, the metrics
//! server and the state they share, then the loop until a stop signal.
//! The binary hands it the workers' channels and cells; nothing here
//! knows DPDK.

use super::config::{Config, HaConfig};
use super::ha::{Ha, HaSettings};
use super::health::{self, HealthChecker};
use super::metrics::{self, MetricsServer};
use super::notify::Notifier;
use super::role::Role;
use super::run::{self, Flow, LinkWatch};
use super::socket::ControlSocket;
use super::state::ControlState;
use super::workers::Workers;
use crate::dataplane::sync::SyncCollector;
use crate::lb::service::ServiceTable;
use crate::{info, warn};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the loop looks around: requests, health results, signals,
/// links.
pub const TICK: Duration = Duration::from_millis(100);

/// The running control plane.
pub struct ControlPlane {
    state: ControlState,
    socket: Option<ControlSocket>,
    _metrics: Option<MetricsServer>,
}

/// Binds rvsadm's socket at `control.socket`. Without it the data plane
/// still serves; say so loudly.
fn bind_socket(config: &Config) -> Option<ControlSocket> {
    let path = &config.control.socket;
    match ControlSocket::bind(path) {
        Ok(sock) => {
            info!("control socket {}", path.display());
            Some(sock)
        }
        Err(e) => {
            warn!(
                "control.socket {}: {e}; rvsadm will not reach this rvsd",
                path.display()
            );
            None
        }
    }
}

impl ControlPlane {
    /// Binds the control socket, starts HA (when `[ha]` is configured:
    /// `collectors` are the workers' sync reports), the health checks of
    /// `services` (the table the workers run) and the metrics server. The
    /// error, naming the field, is HA's sync socket failing to bind.
    pub fn start(
        config: &Config,
        config_path: &Path,
        services: Arc<ServiceTable>,
        workers: Workers,
        collectors: Vec<SyncCollector>,
    ) -> Result<ControlPlane, String> {
        let socket = bind_socket(config);
        let ha = match &config.ha {
            Some(h) => Some(start_ha(h, config, &services, collectors, &workers)?),
            None => None,
        };
        let checker = HealthChecker::new(health::targets(&services, &config.virtual_servers));
        info!(
            "health checks: {} real server(s) probed through the host's network stack",
            checker.threads()
        );
        let view = checker.view();
        let (garp_count, garp_interval) = config
            .ha
            .as_ref()
            .map(|h| (h.garp_count, h.garp_interval))
            .unwrap_or_default();
        let state = ControlState::new(
            services,
            workers,
            Box::new(checker),
            Role::new(ha, garp_count, garp_interval, Instant::now()),
            config_path.to_path_buf(),
        );
        // Prometheus, collected at scrape time from what the workers
        // published and the snapshot in force.
        let listen = config.control.metrics_listen;
        let metrics = match metrics::serve(listen, state.metrics_source(view)) {
            Ok(server) => {
                info!("metrics at http://{listen}/metrics");
                Some(server)
            }
            Err(e) => {
                warn!("control.metrics_listen {listen}: {e}; no metrics served");
                None
            }
        };
        Ok(ControlPlane {
            state,
            socket,
            _metrics: metrics,
        })
    }

    /// Runs the loop, a tick every `TICK`, until a stop signal. `notify`
    /// tells systemd of a SIGHUP reload and pings its watchdog from here,
    /// so a loop that hangs stops the pings.
    pub fn serve(
        &mut self,
        signals: &mut signal_hook::iterator::Signals,
        mut links: LinkWatch<'_>,
        notify: &mut Notifier,
    ) {
        let socket = self.socket.as_ref();
        loop {
            let pending: Vec<i32> = signals.pending().collect();
            let reload = pending.contains(&signal_hook::consts::SIGHUP);
            if reload {
                notify.reloading();
            }
            if run::tick(&mut self.state, socket, &mut links, pending) == Flow::Stop {
                break;
            }
            if reload {
                notify.reloaded();
            }
            notify.watchdog(Instant::now());
            std::thread::sleep(TICK);
        }
    }

    /// The `stats:` line's document (see `ControlState::final_stats`).
    pub fn final_stats(&self) -> Value {
        self.state.final_stats()
    }
}

/// Binds the sync socket and starts the sync thread with the role the
/// config starts in; warns when no key authenticates the sync.
fn start_ha(
    h: &HaConfig,
    config: &Config,
    services: &Arc<ServiceTable>,
    collectors: Vec<SyncCollector>,
    workers: &Workers,
) -> Result<Ha, String> {
    let settings = HaSettings {
        node_id: h.node_id,
        initial_master: h.starts_as_master(),
        listen: h.sync_listen,
        peer: h.sync_peer,
        interval: h.sync_interval,
        key: h.sync_key.clone(),
        services: services.clone(),
        timeouts: crate::startup::timeouts(config),
    };
    let ha = Ha::start(settings, collectors, workers.senders().to_vec())
        .map_err(|e| format!("ha.sync_listen {}: {e}", h.sync_listen))?;
    info!(
        "ha: node {} starts as {}, syncing connections from {} to {}",
        h.node_id,
        if h.starts_as_master() {
            "master"
        } else {
            "backup"
        },
        h.sync_listen,
        h.sync_peer
    );
    match &h.sync_key_file {
        Some(path) => info!(
            "ha: sync datagrams authenticated with the key in {}",
            path.display()
        ),
        None => warn!(
            "ha: no sync_key_file: sync is not authenticated and trusts every datagram from              {} (keep the management network closed, or set [ha] sync_key_file)",
            h.sync_peer
        ),
    }
    Ok(ha)
}
