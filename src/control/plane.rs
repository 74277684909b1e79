//! The control plane of a running rvsd, started beside the workers: the
//! control socket, the HA role and sync, the health checks, the metrics
//! server and the state they share, then the loop until a stop signal.
//! The binary hands it the workers' channels and cells; nothing here
//! knows DPDK.

use super::access;
use super::announce::{AnnounceSettings, Announcer};
use super::answer::answer;
use super::clients::ClientCounters;
use super::config::{ClusterConfig, Config, HaConfig};
use super::ha::{Ha, HaSettings, SyncMode};
use super::health::{self, HealthChecker};
use super::metrics::{self, MetricsServer};
use super::notify::Notifier;
use super::report::PoolSource;
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

/// Binds rvsadm's socket at `control.socket`. Something other than a
/// stale socket at the path (a file, a directory, a FIFO, a live rvsd's
/// socket) or an unknown `socket_group` is an error: rvsd refuses to
/// start rather than delete what is not its own. Any other failure
/// (permissions, a path too long) leaves the data plane serving without
/// the socket; say so loudly.
fn bind_socket(
    config: &Config,
    counters: Arc<ClientCounters>,
) -> Result<Option<ControlSocket>, String> {
    let path = &config.control.socket;
    let group = match &config.control.socket_group {
        Some(name) => Some(
            access::group_id(name).map_err(|e| format!("control.socket_group {name:?}: {e}"))?,
        ),
        None => None,
    };
    match ControlSocket::bind_with(path, group, counters) {
        Ok(sock) => {
            info!(
                "control socket {}{}",
                path.display(),
                match &config.control.socket_group {
                    Some(g) => format!(" (group {g}: read-only)"),
                    None => String::new(),
                }
            );
            Ok(Some(sock))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e.to_string()),
        Err(e) => {
            warn!(
                "control.socket {}: {e}; rvsadm will not reach this rvsd",
                path.display()
            );
            Ok(None)
        }
    }
}

impl ControlPlane {
    /// Binds the control socket, starts HA (when `[ha]` is configured:
    /// `collectors` are the workers' sync reports), the health checks of
    /// `services` (the table the workers run) and the metrics server. The
    /// error, naming the field, is HA's sync socket failing to bind.
    /// `pools` reads the packet-buffer pools for `rvsadm stats` and the
    /// metrics.
    pub fn start(
        config: &Config,
        config_path: &Path,
        services: Arc<ServiceTable>,
        workers: Workers,
        collectors: Vec<SyncCollector>,
        pools: Option<PoolSource>,
    ) -> Result<ControlPlane, String> {
        let control_clients = Arc::new(ClientCounters::default());
        let metrics_clients = Arc::new(ClientCounters::default());
        let socket = bind_socket(config, control_clients.clone())?;
        let ha = match (&config.ha, &config.cluster) {
            (Some(h), _) => Some(start_ha(h, config, &services, collectors, &workers)?),
            (None, Some(c)) => Some(start_cluster(c, config, &services, collectors, &workers)?),
            (None, None) => None,
        };
        let checker = HealthChecker::new(health::targets(&services, &config.virtual_servers));
        info!(
            "health checks: {} real server(s) probed through the host's network stack",
            checker.probed()
        );
        let view = checker.view();
        let (garp_count, garp_interval) = config
            .ha
            .as_ref()
            .map(|h| (h.garp_count, h.garp_interval))
            .unwrap_or_default();
        let mut state = ControlState::new(
            services,
            workers,
            Box::new(checker),
            Role::new(ha, garp_count, garp_interval, Instant::now()),
            config_path.to_path_buf(),
        );
        state.set_running_config(config.clone());
        if let Some(read) = pools {
            state.set_pools(read);
        }
        state.set_client_stats(vec![
            ("control", control_clients),
            ("metrics", metrics_clients.clone()),
        ]);
        // Prometheus, collected at scrape time from what the workers
        // published and the snapshot in force.
        let listen = config.control.metrics_listen;
        let source = state.metrics_source(view);
        let metrics = match metrics::serve_counted(listen, source, metrics_clients) {
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

    /// Starts telling bird2 which VIPs to announce (`control::announce`):
    /// creates the liveness interface and the include files now; each
    /// tick then announces the VIPs whose virtual servers have their
    /// quorum, while the workers forward, the node has joined
    /// (`ControlState::set_joined`, true until told otherwise) and it is
    /// not drained. `None` (or `enabled` false) announces nothing. The
    /// error names the setting that failed.
    pub fn start_announcing(&mut self, settings: Option<AnnounceSettings>) -> Result<(), String> {
        let Some(settings) = settings.filter(|s| s.enabled) else {
            return Ok(());
        };
        let announcer = Announcer::start(settings)?;
        self.state.set_announcer(announcer);
        Ok(())
    }

    /// The control state (what the lead's wiring feeds: `set_joined`).
    pub fn state_mut(&mut self) -> &mut ControlState {
        &mut self.state
    }

    /// Runs the loop, a tick every `TICK`, until a stop signal; between
    /// ticks it answers `rvsadm` as soon as a request arrives whole (the
    /// socket's I/O thread reads and writes the clients). `notify` tells
    /// systemd of a SIGHUP reload and pings its watchdog from here, so a
    /// loop that hangs stops the pings.
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
                // Withdrawn before the workers stop, so the router moves
                // the flows to the other nodes while this one still
                // forwards.
                self.state.stop_announcing();
                break;
            }
            if reload {
                notify.reloaded();
            }
            notify.watchdog(Instant::now());
            let next = Instant::now() + TICK;
            loop {
                let left = next.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match socket {
                    Some(sock) => {
                        if sock.wait(left) {
                            sock.serve_pending(|req| answer(req, &mut self.state));
                        }
                    }
                    None => std::thread::sleep(left),
                }
            }
        }
    }

    /// The `stats:` line's document (see `ControlState::final_stats`).
    pub fn final_stats(&self) -> Value {
        self.state.final_stats()
    }
}

/// `[cluster]`: binds the sync socket and starts the sync thread as an
/// active node (sends to and installs from every peer, asks each for a
/// dump); warns when no key authenticates the sync. `Ha::is_joined` says
/// when the peers' dumps are in (or `join_timeout_ms` passed).
fn start_cluster(
    c: &ClusterConfig,
    config: &Config,
    services: &Arc<ServiceTable>,
    collectors: Vec<SyncCollector>,
    workers: &Workers,
) -> Result<Ha, String> {
    let settings = HaSettings {
        node_id: c.node_id,
        mode: SyncMode::Active {
            join_timeout: c.join_timeout,
        },
        listen: c.sync_listen,
        peers: c.peers.clone(),
        interval: c.sync_interval,
        key: c.sync_key.clone(),
        services: services.clone(),
        timeouts: crate::startup::timeouts(config),
    };
    let ha = Ha::start(settings, collectors, workers.senders().to_vec())
        .map_err(|e| format!("cluster.sync_listen {}: {e}", c.sync_listen))?;
    let peers: Vec<String> = c.peers.iter().map(|p| p.to_string()).collect();
    info!(
        "cluster: node {} active, syncing connections from {} with {} peer(s): {}",
        c.node_id,
        c.sync_listen,
        peers.len(),
        peers.join(", ")
    );
    if c.sync_key.is_none() {
        warn!(
            "cluster: no sync_key_file: sync is not authenticated and trusts every datagram \
             from the peers' addresses (keep the management network closed, or set [cluster] \
             sync_key_file)"
        );
    }
    Ok(ha)
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
        mode: SyncMode::Pair {
            initial_master: h.starts_as_master(),
        },
        listen: h.sync_listen,
        peers: vec![h.sync_peer],
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
