//! ICMP echo answered per second by one rvs worker, through DPDK's ring
//! driver, against a minimal forwarder on the same rings in the same run.
//!
//! Topology (one process, two lcores):
//!
//! ```text
//!   main lcore: generator ──rx ring──> [ring port] ──> worker lcore
//!               (checks replies,  <──tx ring── [ring port] <──  (rvs worker:
//!                refills them)                                  poll::run)
//! ```
//!
//! The generator keeps `--in-flight` echo requests circulating: it dequeues
//! what the worker transmitted, checks each is an echo reply (or, for the
//! reference, a MAC-swapped frame), rewrites it into a request again and
//! enqueues it. The worker lcore runs exactly rvsd's poll loop
//! (`dataplane::poll::run` over `dpdk::io::DpdkIo`) with busy polling.
//! The reference run puts a MAC-swap loop on the worker lcore instead (what
//! `dpdk-testpmd --forward-mode=macswap` does per packet), over the same
//! rings, port, pool and generator, so the ratio isolates rvs's per-packet
//! work from the cost of the I/O around it.
//!
//! Run: `cargo bench --bench echo_ring -- [--seconds N] [--rounds N] [--in-flight N] [--json FILE] [--smoke]`
//! (root; no hugepages needed). Prints one JSON line and a summary.
#![deny(unsafe_code)]

use rvs::dataplane::io::{Frame, PacketIo};
use rvs::dataplane::poll::{self, PollParams};
use rvs::dataplane::stats::StatsCell;
use rvs::dataplane::worker::{PortSetup, Worker, WorkerSetup};
use rvs::dpdk::{eal::Eal, io::DpdkIo, lcore, mbuf::Mbuf, mempool::Mempool, port::Port};
use rvs::dpdk::{ring, TscClock};
use rvs::net::rss::{ClientSide, RssModel};
use rvs::wire::{checksum, Ipv4Cidr, MacAddr};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const GEN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const FRAME_LEN: usize = 60; // 64 on the wire with the FCS
const BURST: usize = 32;
const WORKER_LCORE: u32 = 1;

struct Args {
    seconds: f64,
    in_flight: usize,
    rounds: usize,
    json: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 5.0,
        in_flight: 1024,
        rounds: 3,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => a.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(5.0),
            "--in-flight" => a.in_flight = it.next().and_then(|v| v.parse().ok()).unwrap_or(1024),
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--json" => a.json = it.next(),
            // The test suite's check that the benchmark still works: one
            // short round, failing unless replies came back and all were
            // right.
            "--smoke" => {
                a.seconds = 0.3;
                a.rounds = 1;
            }
            "--bench" => {} // passed by `cargo bench`
            other => eprintln!("echo_ring: ignoring argument {other:?}"),
        }
    }
    a
}

/// A 60-byte echo request from 198.51.100.(1 + i % 250) with id i, valid
/// IPv4 and ICMP checksums.
fn echo_request(i: usize) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&PORT_MAC.0);
    f[6..12].copy_from_slice(&GEN_MAC.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 1;
    ip[12..16].copy_from_slice(&[198, 51, 100, 1 + (i % 250) as u8]);
    ip[16..20].copy_from_slice(&OUR_IP.octets());
    let ck = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    let icmp = &mut f[34..60];
    icmp[0] = 8;
    icmp[4..6].copy_from_slice(&(i as u16).to_be_bytes());
    let ck = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    f
}

/// What runs on the worker lcore.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// rvsd's poll loop and worker.
    Rvs,
    /// Swap MAC addresses and send back: the reference.
    MacSwap,
}

struct Outcome {
    pps: f64,
    good: u64,
    bad: u64,
    worker_drops: u64,
    /// Fraction of the worker's polls that found nothing. An empty poll
    /// costs a few nanoseconds and a full one a microsecond, so this is far
    /// above the fraction of time the worker waited; zero would mean the
    /// worker never caught up with the generator.
    empty_polls: f64,
}

fn run(eal: &Eal, pool: &Arc<Mempool>, mode: Mode, a: &Args, round: usize) -> Outcome {
    let socket = eal.lcore_socket(WORKER_LCORE) as i32;
    let (mut to_worker, worker_rx) =
        ring::spsc(eal, &format!("echo_rx{round}"), 4096, socket).expect("rx ring");
    let (worker_tx, mut from_worker) =
        ring::spsc(eal, &format!("echo_tx{round}"), 4096, socket).expect("tx ring");
    let mut port = Port::from_rings(
        eal,
        &format!("net_ring_echo{round}"),
        worker_rx,
        worker_tx,
        socket as u32,
    )
    .expect("ring port");
    let info = port
        .configure_and_start(
            1,
            pool,
            Some(PORT_MAC),
            ClientSide::Source,
            &RssModel::new(1),
        )
        .expect("start ring port");
    assert!(info.mac == PORT_MAC || info.mac_in_software);
    let ports = [port];

    let stop = Arc::new(AtomicBool::new(false));
    let cell = Arc::new(StatsCell::default());
    let mut io = DpdkIo::new(&ports, 0, pool.clone());
    let worker_stop = stop.clone();
    let worker_cell = cell.clone();
    let clock = TscClock::new(eal);
    let job = move || {
        match mode {
            Mode::Rvs => {
                let setup = WorkerSetup::ports_only(vec![PortSetup {
                    mac: PORT_MAC,
                    addresses: vec![Ipv4Cidr::new(OUR_IP, 24).unwrap()],
                    addresses6: Vec::new(),
                    mtu: 1500,
                }]);
                let mut worker = Worker::new(&setup);
                let params = PollParams {
                    burst_size: BURST,
                    idle_sleep: Duration::ZERO,
                    publish_interval_ns: 10_000_000,
                    workers: 1,
                };
                poll::run(
                    &mut worker,
                    &mut io,
                    &clock,
                    &worker_stop,
                    &worker_cell,
                    None,
                    params,
                );
            }
            Mode::MacSwap => {
                let mut burst: Vec<Mbuf> = Vec::with_capacity(BURST);
                while !worker_stop.load(Ordering::Relaxed) {
                    io.rx_burst(0, &mut burst);
                    for m in burst.iter_mut() {
                        let d = m.data_mut();
                        let mut dst = [0u8; 6];
                        dst.copy_from_slice(&d[0..6]);
                        d.copy_within(6..12, 0);
                        d[6..12].copy_from_slice(&dst);
                    }
                    io.tx_burst(0, &mut burst);
                    burst.clear(); // frames the ring refused are freed
                }
            }
        }
        0
    };
    lcore::launch(eal, WORKER_LCORE, job).expect("launch worker");

    let templates: Vec<[u8; FRAME_LEN]> = (0..a.in_flight).map(echo_request).collect();
    let mut pending: Vec<Mbuf> = Vec::with_capacity(a.in_flight);
    for t in &templates {
        let mut m = pool
            .alloc(FRAME_LEN as u16)
            .expect("mbuf for the generator");
        m.data_mut().copy_from_slice(t);
        pending.push(m);
    }
    let mut back: Vec<Mbuf> = Vec::with_capacity(BURST);
    let (mut good, mut bad, mut next) = (0u64, 0u64, 0usize);
    let warmup = Duration::from_millis(500);
    let started = Instant::now();
    let mut measured_from: Option<(Instant, u64)> = None;
    let deadline = warmup + Duration::from_secs_f64(a.seconds);
    loop {
        let elapsed = started.elapsed();
        if elapsed >= deadline {
            break;
        }
        if measured_from.is_none() && elapsed >= warmup {
            measured_from = Some((Instant::now(), good));
        }
        to_worker.enqueue_burst(&mut pending);
        from_worker.dequeue_burst(&mut back);
        for mut m in back.drain(..) {
            let d = m.data();
            let ok = match mode {
                Mode::Rvs => d.len() == FRAME_LEN && d[34] == 0 && d[0..6] == GEN_MAC.0,
                Mode::MacSwap => d.len() == FRAME_LEN && d[0..6] == GEN_MAC.0,
            };
            if ok {
                good += 1;
            } else {
                bad += 1;
            }
            m.data_mut().copy_from_slice(&templates[next]);
            next = (next + 1) % templates.len();
            pending.push(m);
        }
    }
    let (t0, g0) = measured_from.unwrap_or((started, 0));
    let pps = (good - g0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    lcore::wait(eal, WORKER_LCORE);
    drop(pending);
    drop(ports); // stops the port; the rings free what they still hold
    let ws = cell.snapshot();
    let polls = (ws.busy_polls + ws.idle_polls).max(1);
    Outcome {
        pps,
        good,
        bad,
        worker_drops: ws.total_drops(),
        empty_polls: ws.idle_polls as f64 / polls as f64,
    }
}

/// The run with the median rate.
fn median(mut runs: Vec<Outcome>) -> Outcome {
    runs.sort_by(|x, y| x.pps.total_cmp(&y.pps));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

fn main() {
    let a = args();
    let eal_args: Vec<String> = [
        "echo_ring",
        "-l",
        "0-1",
        "--no-huge",
        "--no-shconf",
        "-m",
        "512",
        "--no-pci",
        "--file-prefix",
        "rvs-echo-ring",
        "--log-level",
        "lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&eal_args).unwrap_or_else(|e| {
        eprintln!("echo_ring: {e} (run as root)");
        std::process::exit(2)
    });
    let pool = Arc::new(
        Mempool::new(&eal, "echo_ring_pool", 16383, 256, 2048 + 128, 0).expect("mbuf pool"),
    );
    // Alternate the two, several rounds, and keep each one's median round:
    // shared machines drift, and alternating spreads the drift over both.
    let mut rvs_runs = Vec::new();
    let mut ref_runs = Vec::new();
    for r in 0..a.rounds {
        rvs_runs.push(run(&eal, &pool, Mode::Rvs, &a, 2 * r));
        ref_runs.push(run(&eal, &pool, Mode::MacSwap, &a, 2 * r + 1));
    }
    let rvs = median(rvs_runs);
    let reference = median(ref_runs);
    let ratio = rvs.pps / reference.pps;
    let json = format!(
        "{{\"benchmark\":\"icmp_echo_one_worker_net_ring\",\"frame_bytes\":64,\"in_flight\":{},\"seconds\":{},\"rounds\":{},\
\"rvs_pps\":{:.0},\"macswap_pps\":{:.0},\"ratio_rvs_over_macswap\":{:.3},\
\"rvs_worker_empty_poll_fraction\":{:.3},\"rvs_replies_checked\":{},\"rvs_bad_replies\":{},\"rvs_worker_drops\":{},\"macswap_bad\":{}}}",
        a.in_flight, a.seconds, a.rounds, rvs.pps, reference.pps, ratio, rvs.empty_polls, rvs.good, rvs.bad, rvs.worker_drops, reference.bad
    );
    println!("{json}");
    println!(
        "one rvs worker answered {:.2} Mpps of ICMP echo through net_ring; a MAC-swap loop on the same rings forwarded {:.2} Mpps: ratio {:.2} (median of {} rounds; {} replies checked, {} bad)",
        rvs.pps / 1e6,
        reference.pps / 1e6,
        ratio,
        a.rounds,
        rvs.good,
        rvs.bad,
    );
    if let Some(path) = a.json {
        std::fs::write(&path, json + "\n").expect("write --json file");
    }
    drop(pool);
    drop(eal);
    // Nothing answered, or a wrong reply, fails any run.
    if rvs.good == 0 || rvs.bad > 0 || reference.good == 0 || reference.bad > 0 {
        eprintln!(
            "echo_ring: failed: rvs {} good {} bad, reference {} good {} bad",
            rvs.good, rvs.bad, reference.good, reference.bad
        );
        std::process::exit(1);
    }
}
