//! rvsd: the appliance. Wiring only: parse the command line, load the
//! config, bring up the EAL, ports and workers, then wait for signals.
//!
//! Exit status: 0 clean stop, 1 bad config, 2 DPDK or device failure.
#![deny(unsafe_code)]

use rvs::control::config::Config;
use rvs::control::plane::{self, ControlPlane};
use rvs::control::run::LinkWatch;
use rvs::control::workers::Workers;
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
use rvs::{error, info, startup, warn};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    for iface in &config.interfaces {
        let name = iface.device.port_name();
        let mut port = Port::by_name(&eal, name).map_err(|e| {
            error!("interface {}: {e}", iface.name);
            Failure::Dpdk
        })?;
        let info = port
            .configure_and_start(workers.len() as u16, &pool, iface.mac)
            .map_err(|e| {
                error!("interface {}: {e}", iface.name);
                Failure::Dpdk
            })?;
        let link = port.link();
        info!(
            "interface {}: port {} ({}, driver {}) mac {} queues {} link {} {} Mbps",
            iface.name,
            port.id(),
            name,
            info.driver,
            info.mac,
            info.queues,
            if link.up { "up" } else { "down" },
            link.speed_mbps
        );
        if info.mac_in_software {
            warn!(
                "interface {}: driver {} cannot change its MAC; answering as {} in software (promiscuous)",
                iface.name, info.driver, info.mac
            );
        }
        if info.rss == RssMode::Unsupported {
            warn!(
                "interface {}: driver {} has no RSS: with {} workers, both directions of a flow may reach different workers",
                iface.name,
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
            stop_workers(&eal, &stop, &launched);
            return Err(Failure::Dpdk);
        }
        launched.push(lcore);
    }
    let socket = plane::bind_socket(config);
    info!(
        "ready: {} worker(s) on {} port(s), lcores {:?}",
        workers.len(),
        ports.len(),
        workers
    );
    let mut control = match ControlPlane::start(
        config,
        config_path,
        services,
        Workers::new(senders, cells),
        collectors,
        socket,
    ) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            stop_workers(&eal, &stop, &launched);
            return Err(Failure::Dpdk);
        }
    };
    let names = config.interfaces.iter().map(|i| i.name.clone()).collect();
    let links = LinkWatch::new(names, || ports.iter().map(|p| p.link().up).collect());
    control.serve(&mut signals, links, CONTROL_TICK);

    stop.store(true, Ordering::Relaxed);
    let mut failed = false;
    for &lcore in &launched {
        let rc = lcore::wait(&eal, lcore);
        if rc != 0 {
            error!("worker on lcore {lcore} ended with status {rc}");
            failed = true;
        }
    }
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
    drop(pool);
    drop(eal);
    info!("stopped");
    if failed {
        Err(Failure::Dpdk)
    } else {
        Ok(())
    }
}

/// Stops the workers launched so far (a start that failed half-way).
fn stop_workers(eal: &Eal, stop: &AtomicBool, launched: &[u32]) {
    stop.store(true, Ordering::Relaxed);
    for &l in launched {
        lcore::wait(eal, l);
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
