//! rvsd: the appliance. Wiring only: parse the command line, load the
//! config, bring up the EAL, ports and workers, then wait for signals.
//!
//! Exit status: 0 clean stop, 1 bad config, 2 DPDK or device failure.
#![deny(unsafe_code)]

use rvs::control::announce::AnnounceSettings;
use rvs::control::config::Config;
use rvs::control::notify::Notifier;
use rvs::control::plane::ControlPlane;
use rvs::control::report::{self, PoolSource, PoolUsage};
use rvs::control::run::{self as control_loop, LinkWatch};
use rvs::control::workers::{self, WorkerEnds};
use rvs::dataplane::poll::{self, PollParams};
use rvs::dataplane::worker::{Worker, WorkerSetup};
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
use rvs::net::rss::RssModel;
use rvs::{error, info, startup, warn};
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
/// Slots of each hand-over ring between two workers (per port).
const HANDOVER_RING: u32 = 1024;

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
    // The tables are allocated once the EAL is up: a size the machine
    // cannot hold is a configuration error, found before.
    if let Err(e) = rvs::control::memory::check_this_machine(&config) {
        error!("{}: {e}", args.config.display());
        return ExitCode::from(1);
    }
    if args.check {
        for w in startup::fullnat_warnings(&config) {
            warn!("{}: {w}", args.config.display());
        }
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
    let mut signals = control_loop::signals().map_err(|e| {
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
    if let Err(e) = config
        .dpdk
        .check_lcores(eal.main_lcore(), |l| eal.lcore_enabled(l))
    {
        error!("{e}");
        return Err(Failure::Config);
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
    let pool = Mempool::new(
        &eal,
        "rvs_mbufs",
        pool_size,
        POOL_CACHE,
        MBUF_DATA_ROOM,
        socket,
    )
    .map(Arc::new)
    .map_err(|e| {
        error!("{e} (reserve hugepages, or pass -m / --no-huge in dpdk.eal_args)");
        Failure::Dpdk
    })?;

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
        if !iface.addresses6.is_empty() && !port.enable_all_multicast() {
            info!(
                "interface {}: no all-multicast mode; neighbour solicitations reach rvsd only if the device passes multicast",
                iface.name
            );
        }
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

    let services = Arc::new(startup::service_table(config));
    for w in startup::fullnat_warnings(config) {
        warn!("{w}");
    }
    for vs in services.services() {
        info!("{}", report::describe(vs));
    }
    let setup = startup::worker_setup(config, &macs, &mtus, services.clone(), random_seed());
    // With several workers a connection belongs to the worker its client
    // hashes to; packets that arrive at another one (NAT replies always
    // carry another tuple, and a device may have no RSS) are handed over
    // through single-producer rings, one per (from, to, port).
    let handover = handover_rings(&eal, workers.len(), ports.len(), socket)?;
    if workers.len() > 1 {
        info!(
            "{} workers: each connection is owned by the worker its client hashes to; others hand its packets over",
            workers.len()
        );
    }
    let sync = config.ha.is_some() || config.cluster.is_some();
    let (to_workers, collectors, ends) = workers::connect(workers, &services, sync);
    let running = launch_workers(&eal, config, &ports, &pool, &setup, handover, ends)?;
    // The control plane reads the pool through this slot, emptied before
    // the pool is freed: a metrics client still being served then reads
    // nothing rather than a pool freed after the EAL is gone.
    let pool_slot: Arc<Mutex<Option<Arc<Mempool>>>> = Arc::new(Mutex::new(Some(pool.clone())));
    let pools: PoolSource = {
        let slot = pool_slot.clone();
        Arc::new(move || {
            let Ok(slot) = slot.lock() else {
                return Vec::new();
            };
            slot.iter()
                .map(|pool| PoolUsage {
                    name: "rvs_mbufs".into(),
                    size: u64::from(pool.size()),
                    in_use: u64::from(pool.in_use()),
                })
                .collect()
        })
    };
    let mut control = ControlPlane::start(
        config,
        config_path,
        services,
        to_workers,
        collectors,
        Some(pools),
    )
    .map_err(|e| {
        error!("{e}");
        running.stop(&eal);
        Failure::Dpdk
    })?;
    // A `[cluster]` node tells its bird2 what to announce (the liveness
    // interface is made here: without it rvsd does not start).
    let announce = config.cluster.as_ref().map(AnnounceSettings::from_cluster);
    if let Err(e) = control.start_announcing(announce) {
        error!("cluster: {e}");
        running.stop(&eal);
        return Err(Failure::Config);
    }
    let ready = format!(
        "ready: {} worker(s) on {} port(s), lcores {:?}",
        workers.len(),
        ports.len(),
        workers
    );
    info!("{ready}");
    // systemd (Type=notify): ready now, a watchdog ping from the control loop.
    let mut notify = Notifier::from_env();
    notify.ready(&ready);
    if let Some(every) = notify.watchdog_interval() {
        info!("systemd watchdog: the control loop pings every {every:?}");
    }
    let names = config.interfaces.iter().map(|i| i.name.clone()).collect();
    let links = LinkWatch::new(names, || ports.iter().map(|p| p.link().up).collect());
    control.serve(&mut signals, links, &mut notify);
    notify.stopping();

    let clean = running.stop(&eal);
    eprintln!("stats: {}", control.final_stats());
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
    if let Ok(mut slot) = pool_slot.lock() {
        slot.take();
    }
    drop(pool);
    drop(eal);
    info!("stopped");
    if clean {
        Ok(())
    } else {
        Err(Failure::Dpdk)
    }
}

/// The workers launched: their lcores and the flag that stops them.
struct Running {
    stop: Arc<AtomicBool>,
    lcores: Vec<u32>,
}

impl Running {
    /// Stops the workers and waits for them; false when one ended with an
    /// error.
    fn stop(&self, eal: &Eal) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        let mut clean = true;
        for &lcore in &self.lcores {
            let rc = lcore::wait(eal, lcore);
            if rc != 0 {
                error!("worker on lcore {lcore} ended with status {rc}");
                clean = false;
            }
        }
        clean
    }
}

/// Builds one worker per `dpdk.workers` lcore, each polling its queue of
/// every port, and launches it. A launch that fails stops those started.
fn launch_workers(
    eal: &Eal,
    config: &Config,
    ports: &[Port],
    pool: &Arc<Mempool>,
    setup: &WorkerSetup,
    (mut handover_out, mut handover_in): (HandoverOut, HandoverIn),
    ends: Vec<WorkerEnds>,
) -> Result<Running, Failure> {
    let lcores = &config.dpdk.workers;
    let clock = TscClock::new(eal);
    let params = PollParams {
        burst_size: usize::from(config.dataplane.burst_size),
        idle_sleep: config.dataplane.idle_sleep,
        publish_interval_ns: PUBLISH_INTERVAL.as_nanos() as u64,
        workers: lcores.len(),
    };
    let mut running = Running {
        stop: Arc::new(AtomicBool::new(false)),
        lcores: Vec::with_capacity(lcores.len()),
    };
    for (queue, (&lcore, ends)) in lcores.iter().zip(ends).enumerate() {
        let built = Worker::try_new(&WorkerSetup {
            seed: setup.seed.wrapping_add(queue as u64),
            worker_index: queue,
            ..setup.clone()
        });
        // A table the machine cannot hold ends rvsd with the reason (exit
        // 2), not an abort with the EAL up.
        let mut worker = match built {
            Ok(w) => w,
            Err(e) => {
                error!("worker on lcore {lcore}: {e}");
                running.stop(eal);
                return Err(Failure::Dpdk);
            }
        };
        match ends.sync {
            // A cluster node: forwards and answers as standalone, always
            // reports, installs under the cluster rules.
            Some(q) if config.cluster.is_some() => worker.set_cluster_sync(q),
            Some(q) => worker.set_sync(q),
            None => {}
        }
        let mut io = DpdkIo::new(ports, queue as u16, pool.clone()).with_handover(
            std::mem::take(&mut handover_out[queue]),
            std::mem::take(&mut handover_in[queue]),
        );
        let worker_stop = running.stop.clone();
        let job = move || {
            let (rx, cell) = (Some(&ends.commands), &ends.cell);
            poll::run(&mut worker, &mut io, &clock, &worker_stop, cell, rx, params);
            0
        };
        if let Err(e) = lcore::launch(eal, lcore, job) {
            error!("{e}");
            running.stop(eal);
            return Err(Failure::Dpdk);
        }
        running.lcores.push(lcore);
    }
    Ok(running)
}

/// Each worker's producers of the hand-over rings, `[to][port]` (`None`
/// for itself).
type HandoverOut = Vec<Vec<Vec<Option<RingProducer>>>>;
/// Each worker's consumers, `[port]`: one per other worker.
type HandoverIn = Vec<Vec<Vec<RingConsumer>>>;

/// Hand-over rings between workers: for worker `w`, `out[w][to][port]`
/// (`None` when `to == w`) and `in[w][port]`, the consumers of the rings
/// the others write to it. None with one worker.
fn handover_rings(
    eal: &Eal,
    workers: usize,
    ports: usize,
    socket: i32,
) -> Result<(HandoverOut, HandoverIn), Failure> {
    let mut inbound: HandoverIn = (0..workers)
        .map(|_| (0..ports).map(|_| Vec::new()).collect())
        .collect();
    let mut out: HandoverOut = Vec::with_capacity(workers);
    for from in 0..workers {
        let mut to_row = Vec::with_capacity(workers);
        for (to, inbound_to) in inbound.iter_mut().enumerate() {
            let mut slots = Vec::with_capacity(ports);
            for (port, consumers) in inbound_to.iter_mut().enumerate() {
                if from == to {
                    slots.push(None);
                    continue;
                }
                let name = format!("rvs_ho_{from}_{to}_{port}");
                let (p, c) = ring::spsc(eal, &name, HANDOVER_RING, socket).map_err(|e| {
                    error!("{e}");
                    Failure::Dpdk
                })?;
                slots.push(Some(p));
                consumers.push(c);
            }
            to_row.push(slots);
        }
        out.push(to_row);
    }
    Ok((out, inbound))
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
