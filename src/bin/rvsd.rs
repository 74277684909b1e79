//! rvsd: the appliance. Wiring only: parse the command line, load the
//! config, bring up the EAL, ports and workers, then wait for signals.
//!
//! Exit status: 0 clean stop, 1 bad config, 2 DPDK or device failure.
#![deny(unsafe_code)]

use rvs::control::config::Config;
use rvs::control::ha::{Ha, HaSettings};
use rvs::control::health::{self, HealthChecker};
use rvs::control::metrics::{self, MetricsSnapshot};
use rvs::control::reload;
use rvs::control::report::{self, RuntimeState, WorkerSnapshot};
use rvs::control::socket::ControlSocket;
use rvs::dataplane::poll::{self, PollParams};
use rvs::dataplane::stats::StatsCell;
use rvs::dataplane::sync::sync_channel;
use rvs::dataplane::worker::{Command, Worker, WorkerSetup};
use rvs::dpdk::{
    eal::Eal,
    io::DpdkIo,
    lcore,
    mempool::Mempool,
    port::Port,
    port::RssMode,
    ring,
    ring::{RingConsumer, RingProducer},
    TscClock,
};
use rvs::lb::service::ServiceTable;
use rvs::lb::xmit::Endpoint;
use rvs::net::rss::RssModel;
use rvs::{error, info, startup, warn};
use serde_json::{json, Value};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USAGE: &str = "usage: rvsd --config FILE [--check]\n\
  --config FILE  the TOML configuration (see dpdk-config/)\n\
  --check        validate FILE and exit: 0 valid, 1 invalid; DPDK is not started";

/// Ring sizes the ports ask for; the pool is sized from them.
const RING_SIZE: usize = 1024;
/// Per-lcore mbuf cache of the pool.
const POOL_CACHE: u32 = 256;
/// Data room of each mbuf: DPDK's default (2048 + headroom).
const MBUF_DATA_ROOM: u16 = 2048 + 128;
/// How often workers publish counters and the control loop looks around.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);
/// Real servers later reloads may add beyond the first config's.
const RELOAD_HEADROOM: usize = 1024;
/// Slots of each hand-over ring between two workers (per port).
const HANDOVER_RING: u32 = 1024;
const CONTROL_TICK: Duration = Duration::from_millis(100);

/// Why rvsd stopped, as its exit status.
enum Failure {
    Config,
    Dpdk,
}

struct Args {
    config: PathBuf,
    check: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut config = None;
    let mut check = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a FILE")?));
            }
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            "--check" => check = true,
            "--help" | "-h" => return Err(String::new()),
            "--version" | "-V" => {
                println!("rvsd {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let config = config.ok_or("--config FILE is required")?;
    Ok(Args { config, check })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("rvsd: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 1 });
        }
    };
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                error!("{}: {e}", args.config.display());
            }
            return ExitCode::from(1);
        }
    };
    if args.check {
        info!(
            "{}: valid ({} interface(s), {} worker(s))",
            args.config.display(),
            config.interfaces.len(),
            config.dpdk.workers.len()
        );
        return ExitCode::SUCCESS;
    }
    match run(&config, &args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config) => ExitCode::from(1),
        Err(Failure::Dpdk) => ExitCode::from(2),
    }
}

/// Brings the appliance up, serves until SIGTERM/SIGINT, and tears down in
/// order: workers, ports, pool, EAL (each by drop, in reverse declaration).
fn run(config: &Config, config_path: &std::path::Path) -> Result<(), Failure> {
    // Signals first, so a SIGTERM during a slow EAL start is not lost.
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(|e| {
            error!("cannot install signal handlers: {e}");
            Failure::Dpdk
        })?;

    let argv = startup::eal_argv("rvsd", config);
    info!("starting the EAL: {}", argv[1..].join(" "));
    let eal = Eal::init(&argv).map_err(|e| {
        error!("{e} (the EAL's reason is above)");
        Failure::Dpdk
    })?;

    let workers = &config.dpdk.workers;
    let main_lcore = eal.main_lcore();
    for &lcore in workers {
        if lcore == main_lcore {
            error!("dpdk.workers: lcore {lcore} is the EAL's main lcore, which runs the control thread");
            return Err(Failure::Config);
        }
        if !eal.lcore_enabled(lcore) {
            error!("dpdk.workers: lcore {lcore} is not enabled by dpdk.eal_args (add it to -l)");
            return Err(Failure::Config);
        }
    }

    let burst = usize::from(config.dataplane.burst_size);
    let pool_size = startup::mempool_size(
        config.interfaces.len(),
        workers.len(),
        RING_SIZE,
        burst,
        POOL_CACHE as usize,
    );
    let socket = eal.lcore_socket(workers[0]) as i32;
    let pool = Arc::new(
        Mempool::new(
            &eal,
            "rvs_mbufs",
            pool_size,
            POOL_CACHE,
            MBUF_DATA_ROOM,
            socket,
        )
        .map_err(|e| {
            error!("{e} (reserve hugepages, or pass -m / --no-huge in dpdk.eal_args)");
            Failure::Dpdk
        })?,
    );

    let mut ports = Vec::with_capacity(config.interfaces.len());
    let mut macs = Vec::with_capacity(config.interfaces.len());
    let mut mtus = Vec::with_capacity(config.interfaces.len());
    let rss_model = RssModel::new(workers.len());
    let client_sides = startup::client_sides(config);
    for (iface, &side) in config.interfaces.iter().zip(&client_sides) {
        let name = iface.device.port_name();
        let mut port = Port::by_name(&eal, name).map_err(|e| {
            error!("interface {}: {e}", iface.name);
            Failure::Dpdk
        })?;
        let info = port
            .configure_and_start(workers.len() as u16, &pool, iface.mac, side, &rss_model)
            .map_err(|e| {
                error!("interface {}: {e}", iface.name);
                Failure::Dpdk
            })?;
        let link = port.link();
        info!(
            "interface {}: port {} ({}, driver {}) mac {} queues {} rss {} link {} {} Mbps",
            iface.name,
            port.id(),
            name,
            info.driver,
            info.mac,
            info.queues,
            match info.rss {
                RssMode::SingleQueue => "none",
                RssMode::ClientSource | RssMode::ClientDestination => side.name(),
                RssMode::Unsupported(_) => "software",
            },
            if link.up { "up" } else { "down" },
            link.speed_mbps
        );
        if info.mac_in_software {
            warn!(
                "interface {}: driver {} cannot change its MAC; answering as {} in software (promiscuous)",
                iface.name, info.driver, info.mac
            );
        }
        if let RssMode::Unsupported(why) = info.rss {
            warn!(
                "interface {}: no RSS on the client's address (rss {}) with driver {}: {why}; the {} workers find each packet's owner in software and hand it over through the redirect rings",
                iface.name,
                side.name(),
                info.driver,
                workers.len()
            );
        }
        macs.push(info.mac);
        mtus.push(port.mtu());
        ports.push(port);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let services = Arc::new(startup::service_table(config));
    for vs in services.services() {
        info!(
            "virtual server {}: {}:{}/{} {} {} with {} real server(s)",
            vs.name,
            vs.key.vip.ip,
            vs.key.vip.port,
            vs.key.protocol,
            vs.scheduler,
            vs.forward,
            vs.real_servers.len()
        );
    }
    let real_server_count: usize = services
        .services()
        .iter()
        .map(|s| s.real_servers.len())
        .sum();
    let setup = startup::worker_setup(config, &macs, &mtus, services.clone(), random_seed());
    let clock = TscClock::new(&eal);
    let params = PollParams {
        burst_size: burst,
        idle_sleep: config.dataplane.idle_sleep,
        publish_interval_ns: PUBLISH_INTERVAL.as_nanos() as u64,
        workers: workers.len(),
    };
    // With several workers a connection belongs to the worker its client
    // hashes to; packets that arrive at another one (NAT replies always
    // carry another tuple, and a device may have no RSS) are handed over
    // through single-producer rings, one per (from, to, port).
    let (mut handover_out, mut handover_in) =
        handover_rings(&eal, workers.len(), ports.len(), socket)?;
    if workers.len() > 1 {
        info!(
            "{} workers: each connection is owned by the worker its client hashes to; others hand its packets over",
            workers.len()
        );
    }
    let mut cells = Vec::with_capacity(workers.len());
    let mut launched = Vec::with_capacity(workers.len());
    let mut senders = Vec::with_capacity(workers.len());
    let mut collectors = Vec::new();
    for (queue, &lcore) in workers.iter().enumerate() {
        // Room for servers later reloads add.
        let cell = Arc::new(StatsCell::new(real_server_count + RELOAD_HEADROOM));
        cells.push((lcore, cell.clone()));
        let mut worker = Worker::new(&WorkerSetup {
            seed: setup.seed.wrapping_add(queue as u64),
            worker_index: queue,
            ..setup.clone()
        });
        if config.ha.is_some() {
            let (q, collector) = sync_channel();
            worker.set_sync(q);
            collectors.push(collector);
        }
        let mut io = DpdkIo::new(&ports, queue as u16, pool.clone()).with_handover(
            std::mem::take(&mut handover_out[queue]),
            std::mem::take(&mut handover_in[queue]),
        );
        let worker_stop = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Command>();
        senders.push(tx);
        let job = move || {
            poll::run(
                &mut worker,
                &mut io,
                &clock,
                &worker_stop,
                &cell,
                Some(&rx),
                params,
            );
            0
        };
        if let Err(e) = lcore::launch(&eal, lcore, job) {
            error!("{e}");
            stop.store(true, Ordering::Relaxed);
            for &l in &launched {
                lcore::wait(&eal, l);
            }
            return Err(Failure::Dpdk);
        }
        launched.push(lcore);
    }
    // rvsadm's socket. Without it the data plane still serves; say so loudly.
    let control = match ControlSocket::bind(&config.control.socket) {
        Ok(sock) => {
            info!("control socket {}", config.control.socket.display());
            Some(sock)
        }
        Err(e) => {
            warn!(
                "control.socket {}: {e}; rvsadm will not reach this rvsd",
                config.control.socket.display()
            );
            None
        }
    };

    info!(
        "ready: {} worker(s) on {} port(s), lcores {:?}",
        workers.len(),
        ports.len(),
        workers
    );

    // High availability: the role and the connection sync with the peer.
    let ha = match &config.ha {
        None => None,
        Some(h) => {
            let settings = HaSettings {
                node_id: h.node_id,
                initial_master: h.starts_as_master(),
                listen: h.sync_listen,
                peer: h.sync_peer,
                interval: h.sync_interval,
            };
            match Ha::start(settings, std::mem::take(&mut collectors), senders.clone()) {
                Ok(ha) => {
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
                    Some(ha)
                }
                Err(e) => {
                    error!("ha.sync_listen {}: {e}", h.sync_listen);
                    stop.store(true, Ordering::Relaxed);
                    for &l in &launched {
                        lcore::wait(&eal, l);
                    }
                    return Err(Failure::Dpdk);
                }
            }
        }
    };
    let mut state = ControlState {
        runtime: RuntimeState::for_services(&services),
        services: services.clone(),
        senders,
        config_path: config_path.to_path_buf(),
        ha,
        garp: config
            .ha
            .as_ref()
            .map(|h| (h.garp_count, h.garp_interval))
            .unwrap_or((0, Duration::ZERO)),
        garps_left: 0,
        next_garp: std::time::Instant::now(),
        checker: HealthChecker::new(health::targets(&services, &config.virtual_servers)),
        shared: Arc::new(Mutex::new((
            services.clone(),
            RuntimeState::for_services(&services),
        ))),
    };
    if state.ha.as_ref().is_some_and(Ha::is_master) {
        // Starting as master: announce, as keepalived's notify would.
        state.garps_left = state.garp.0;
    }
    info!(
        "health checks: {} real server(s) probed through the host's network stack",
        state.checker.threads()
    );
    // Prometheus, collected at scrape time from what the workers published.
    let _metrics = {
        let shared = state.shared.clone();
        let view = state.checker.view();
        let cells = cells.clone();
        let source: metrics::SnapshotSource = Arc::new(move || {
            let (services, runtime) = shared.lock().map(|g| g.clone()).unwrap_or_default();
            let weights = services
                .services()
                .iter()
                .enumerate()
                .map(|(v, vs)| {
                    vs.real_servers
                        .iter()
                        .enumerate()
                        .map(|(r, rs)| runtime.weight(v, r, rs.weight))
                        .collect()
                })
                .collect();
            MetricsSnapshot {
                health: view.up_table(&services),
                weights,
                health_checks: view.statuses(),
                workers: snapshots(&cells),
                services,
            }
        });
        match metrics::serve(config.control.metrics_listen, source) {
            Ok(server) => {
                info!(
                    "metrics at http://{}/metrics",
                    config.control.metrics_listen
                );
                Some(server)
            }
            Err(e) => {
                warn!(
                    "control.metrics_listen {}: {e}; no metrics served",
                    config.control.metrics_listen
                );
                None
            }
        }
    };
    let mut links: Vec<bool> = ports.iter().map(|p| p.link().up).collect();
    'serve: loop {
        if let Some(sock) = &control {
            sock.serve_pending(|req| answer(req, &cells, &mut state));
        }
        state.garp_tick();
        for change in state.checker.poll() {
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
            state.set_health(change.vs, change.rs, change.up);
        }
        for sig in signals.pending() {
            match sig {
                SIGHUP => {
                    info!("SIGHUP: reloading {}", state.config_path.display());
                    let _ = state.reload();
                }
                _ => {
                    info!("signal {sig}: stopping");
                    break 'serve;
                }
            }
        }
        for ((port, up), iface) in ports.iter().zip(links.iter_mut()).zip(&config.interfaces) {
            let now_up = port.link().up;
            if now_up != *up {
                info!(
                    "interface {}: link {}",
                    iface.name,
                    if now_up { "up" } else { "down" }
                );
                *up = now_up;
            }
        }
        std::thread::sleep(CONTROL_TICK);
    }

    stop.store(true, Ordering::Relaxed);
    let mut failed = false;
    for &lcore in &launched {
        let rc = lcore::wait(&eal, lcore);
        if rc != 0 {
            error!("worker on lcore {lcore} ended with status {rc}");
            failed = true;
        }
    }
    print_final_stats(&cells, &state);
    for (port, iface) in ports.iter().zip(&config.interfaces) {
        let s = port.stats();
        info!(
            "interface {}: device counters rx {} tx {} missed {} rx_errors {} tx_errors {} no_mbuf {}",
            iface.name, s.ipackets, s.opackets, s.imissed, s.ierrors, s.oerrors, s.rx_nombuf
        );
    }
    // Stop and close every port (net_pcap flushes its tx_pcap on close),
    // then free the pool and clean up the EAL.
    drop(ports);
    drop(pool);
    drop(eal);
    info!("stopped");
    if failed {
        Err(Failure::Dpdk)
    } else {
        Ok(())
    }
}

/// Hand-over rings between workers: for worker `w`, `out[w][to][port]`
/// (`None` when `to == w`) and `in[w][port]`, the consumers of the rings
/// the others write to it.
#[allow(clippy::type_complexity)]
fn handover_rings(
    eal: &Eal,
    workers: usize,
    ports: usize,
    socket: i32,
) -> Result<
    (
        Vec<Vec<Vec<Option<RingProducer>>>>,
        Vec<Vec<Vec<RingConsumer>>>,
    ),
    Failure,
> {
    let mut out: Vec<Vec<Vec<Option<RingProducer>>>> = (0..workers)
        .map(|_| {
            (0..workers)
                .map(|_| (0..ports).map(|_| None).collect())
                .collect()
        })
        .collect();
    let mut inbound: Vec<Vec<Vec<RingConsumer>>> = (0..workers)
        .map(|_| (0..ports).map(|_| Vec::new()).collect())
        .collect();
    if workers < 2 {
        return Ok((out, inbound));
    }
    for (from, out_from) in out.iter_mut().enumerate() {
        for (to, out_to) in out_from.iter_mut().enumerate() {
            if from == to {
                continue;
            }
            for (port, slot) in out_to.iter_mut().enumerate() {
                let (p, c) = ring::spsc(
                    eal,
                    &format!("rvs_ho_{from}_{to}_{port}"),
                    HANDOVER_RING,
                    socket,
                )
                .map_err(|e| {
                    error!("{e}");
                    Failure::Dpdk
                })?;
                *slot = Some(p);
                inbound[to][port].push(c);
            }
        }
    }
    Ok((out, inbound))
}

/// What the workers last published.
fn snapshots(cells: &[(u32, Arc<StatsCell>)]) -> Vec<WorkerSnapshot> {
    cells
        .iter()
        .map(|(lcore, cell)| WorkerSnapshot {
            lcore: *lcore,
            stats: cell.snapshot(),
            real_servers: cell.real_servers(),
            connections: cell.connections(),
        })
        .collect()
}

/// What the control thread keeps between requests.
struct ControlState {
    /// The service table the workers run.
    services: Arc<ServiceTable>,
    /// Health and run-time weights per real server.
    runtime: RuntimeState,
    /// One command channel per worker.
    senders: Vec<std::sync::mpsc::Sender<Command>>,
    /// The file reloads read.
    config_path: PathBuf,
    /// The health checks.
    checker: HealthChecker,
    /// What the metrics thread reads: the table and the run-time state.
    shared: Arc<Mutex<(Arc<ServiceTable>, RuntimeState)>>,
    /// The HA role and sync, when `[ha]` is configured.
    ha: Option<Ha>,
    /// Gratuitous ARPs on becoming master: how many, how far apart.
    garp: (u32, Duration),
    /// Gratuitous ARP rounds still to send, and when the next one is due.
    garps_left: u32,
    next_garp: std::time::Instant,
}

impl ControlState {
    /// Becomes master or backup (keepalived's notify scripts call
    /// `rvsadm ha master|backup`). A new master announces the VIPs and
    /// floating addresses with gratuitous ARPs.
    fn set_role(&mut self, master: bool) -> Result<bool, String> {
        let Some(ha) = &self.ha else {
            return Err("HA is not configured on this rvsd (no [ha] section)".into());
        };
        let changed = ha.set_master(master);
        self.broadcast(|| Command::HaRole { master });
        if master {
            // Also on a repeated "master": keepalived may say it again
            // after a fault, and announcing is harmless.
            self.garps_left = self.garp.0;
            self.next_garp = std::time::Instant::now();
        } else {
            self.garps_left = 0;
        }
        if changed {
            info!("ha: now {}", if master { "master" } else { "backup" });
        }
        Ok(changed)
    }

    /// Sends the next gratuitous ARP round when one is due (one worker
    /// sends them: every worker has the same addresses).
    fn garp_tick(&mut self) {
        if self.garps_left == 0 || std::time::Instant::now() < self.next_garp {
            return;
        }
        if let Some(tx) = self.senders.first() {
            let _ = tx.send(Command::Garp);
        }
        self.garps_left -= 1;
        self.next_garp = std::time::Instant::now() + self.garp.1;
    }

    /// Records a health change and tells every worker.
    fn set_health(&mut self, vs: u16, rs: u16, up: bool) {
        if let Some(h) = self
            .runtime
            .health
            .get_mut(usize::from(vs))
            .and_then(|v| v.get_mut(usize::from(rs)))
        {
            *h = up;
        }
        self.broadcast(|| Command::Health { vs, rs, up });
        self.publish();
    }

    /// Lets the metrics thread see the current table and run-time state.
    fn publish(&self) {
        if let Ok(mut g) = self.shared.lock() {
            *g = (self.services.clone(), self.runtime.clone());
        }
    }

    /// Re-reads the config file and applies its virtual servers: a file
    /// that does not validate is refused whole (the error names the field
    /// and line) and the running config stays; otherwise the difference is
    /// applied between bursts: added servers take traffic, removed ones
    /// drain, weights and schedulers change for new connections.
    fn reload(&mut self) -> Result<String, String> {
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
        let merged = reload::merge_config(&self.services, &new.virtual_servers);
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
        self.services = table.clone();
        self.runtime.reshape(&table);
        self.broadcast(|| Command::Services(table.clone()));
        // Workers keep the health they knew; tell them again for all, so a
        // slot that came back from draining has the checker's view.
        self.checker
            .retarget(health::targets(&table, &new.virtual_servers));
        let up = self.checker.up_table(&table);
        for (v, row) in up.iter().enumerate() {
            for (r, &is_up) in row.iter().enumerate() {
                if let Some(h) = self.runtime.health.get_mut(v).and_then(|x| x.get_mut(r)) {
                    *h = is_up;
                }
                self.broadcast(|| Command::Health {
                    vs: v as u16,
                    rs: r as u16,
                    up: is_up,
                });
            }
        }
        self.publish();
        Ok(summary.join("\n"))
    }

    /// Sends `make()` to every worker.
    fn broadcast(&self, make: impl Fn() -> Command) {
        for tx in &self.senders {
            let _ = tx.send(make());
        }
    }

    /// Finds a service by "VIP:PORT/PROTO" and a real server in it by
    /// "RIP:PORT".
    fn find(&self, service: &str, real: &str) -> Result<(u16, u16), String> {
        let (addr, proto) = service.rsplit_once('/').unwrap_or((service, "tcp"));
        let vip: std::net::SocketAddrV4 = addr
            .parse()
            .map_err(|_| format!("{service:?} is not VIP:PORT/PROTO"))?;
        let protocol: rvs::lb::service::Protocol =
            proto.parse().map_err(|e| format!("{service:?}: {e}"))?;
        let vs = self
            .services
            .lookup(Endpoint::new(*vip.ip(), vip.port()), protocol)
            .ok_or_else(|| format!("no virtual server {service}"))?;
        let rip: std::net::SocketAddrV4 = real
            .parse()
            .map_err(|_| format!("{real:?} is not RIP:PORT"))?;
        let rs = self
            .services
            .get(vs)
            .real_servers
            .iter()
            .position(|r| r.endpoint == Endpoint::new(*rip.ip(), rip.port()))
            .ok_or_else(|| format!("{service} has no real server {real}"))?;
        Ok((vs, rs as u16))
    }
}

/// Answers one `rvsadm` request.
fn answer(request: &Value, cells: &[(u32, Arc<StatsCell>)], state: &mut ControlState) -> Value {
    match request["cmd"].as_str() {
        Some("list") => report::list(&state.services, &snapshots(cells), &state.runtime),
        Some("stats") => report::stats(&snapshots(cells)),
        Some("weight") => {
            let weight = match request["weight"].as_u64() {
                Some(w) if w <= 65535 => w as u32,
                _ => return json!({ "error": "weight must be 0 to 65535" }),
            };
            let (vs, rs) = match state.find(
                request["service"].as_str().unwrap_or(""),
                request["real_server"].as_str().unwrap_or(""),
            ) {
                Ok(found) => found,
                Err(e) => return json!({ "error": e }),
            };
            if let Some(w) = state
                .runtime
                .weights
                .get_mut(usize::from(vs))
                .and_then(|v| v.get_mut(usize::from(rs)))
            {
                *w = Some(weight);
            }
            state.publish();
            state.broadcast(|| Command::Weight {
                vs,
                rs,
                weight: Some(weight),
            });
            info!(
                "weight of {} in {} set to {weight}{}",
                request["real_server"].as_str().unwrap_or(""),
                request["service"].as_str().unwrap_or(""),
                if weight == 0 {
                    " (draining: no new connections)"
                } else {
                    ""
                }
            );
            json!({ "ok": true })
        }
        Some("conns") => {
            let limit = request["limit"].as_u64().unwrap_or(100).min(100_000) as usize;
            let (tx, rx) = std::sync::mpsc::channel();
            state.broadcast(|| Command::DumpConns {
                limit,
                reply: tx.clone(),
            });
            drop(tx);
            let mut conns = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            for _ in 0..state.senders.len() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(batch) => conns.extend(batch),
                    Err(_) => break,
                }
            }
            conns.truncate(limit);
            let list: Vec<Value> = conns
                .iter()
                .map(|c| {
                    json!({
                        "protocol": c.protocol,
                        "client": format!("{}:{}", c.client.ip, c.client.port),
                        "virtual_server": format!("{}:{}", c.virtual_server.ip, c.virtual_server.port),
                        "real_server": format!("{}:{}", c.real_server.ip, c.real_server.port),
                        "state": c.state,
                        "expires_in_s": c.expires_in_s,
                        "packets_in": c.packets_in,
                        "packets_out": c.packets_out,
                        "bytes_in": c.bytes_in,
                        "bytes_out": c.bytes_out,
                    })
                })
                .collect();
            json!({ "connections": list })
        }
        Some("reload") => match state.reload() {
            Ok(summary) => json!({ "ok": true, "message": format!("reloaded: {summary}") }),
            Err(e) => json!({ "error": format!("reload refused, running config kept:\n{e}") }),
        },
        Some("ha") => match request["action"].as_str() {
            Some("status") => match &state.ha {
                Some(ha) => ha.status(),
                None => json!({
                    "role": "standalone",
                    "configured": false,
                    "detail": "no [ha] section in the config: this rvsd has no peer"
                }),
            },
            Some(a @ ("master" | "backup")) => match state.set_role(a == "master") {
                Ok(changed) => json!({
                    "ok": true,
                    "message": format!("{}{a}", if changed { "now " } else { "already " })
                }),
                Err(e) => json!({ "error": e }),
            },
            Some(a) => json!({ "error": format!("ha {a}: expected master, backup or status") }),
            None => json!({ "error": "ha needs master, backup or status" }),
        },
        Some(other) => json!({ "error": format!("unknown command {other:?}") }),
        None => json!({ "error": "request has no \"cmd\"" }),
    }
}

/// The `stats:` line: every worker's counters, their total, and each
/// virtual server's real servers summed over the workers, as JSON.
fn print_final_stats(cells: &[(u32, Arc<StatsCell>)], state: &ControlState) {
    let snaps = snapshots(cells);
    let mut line = report::stats(&snaps);
    line["virtual_servers"] =
        report::list(&state.services, &snaps, &state.runtime)["virtual_servers"].clone();
    eprintln!("stats: {line}");
}

/// A seed for hashes and schedulers that differs on every start, so
/// nobody can aim packets at one of the connection table's probe runs.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
