#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! Slow start end to end (issue 18): rvsd in the NAT topology with a
//! management link (health checks from the lb namespace's kernel), three
//! nginx real servers of weight 10, `slow_start_s = 8`, fast health
//! checks (every 200 ms, rise 2, fall 2).
//!
//! The load makes least-connection scheduling visible: new connections at
//! a steady rate, each one HTTP/1.1 request whose connection the client
//! then holds open, idle, for a second (so each server holds about its
//! share of `rate x hold` established connections, which is what `lc` and
//! `wlc` compare). One real server is killed, marked down, restarted and
//! marked up; from rvsd's `is up` line on, its share of the new
//! connections is measured second by second. Without slow start it has no
//! connections and would take every new one until it held as many as the
//! others; with it, its weight ramps from 1 to 10 over 8 s, and so must its
//! share: well below its full third in the first second, near it in the
//! last ones, broadly increasing in between, and no flood in the first
//! half second. A reference run without slow start shows the flood the
//! ramp prevents (most of the first half second's new connections).
//! Under 45 s for the three tests.
//!
//! Every figure is printed as a `RESULT slow_start ...` line past the
//! output capture: `cargo test --test e2e_slow_start 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{heavy, result_line, unix_seconds, Service, Topology, HTTP_PORT, VIP};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

/// The ramp under test.
const SLOW_START_S: u64 = 8;
/// Every real server's weight: enough steps for the ramp to show.
const WEIGHT: u32 = 10;
/// Real servers; the last one is killed and restored.
const SERVERS: usize = 3;
/// New connections a second, and how long the client holds each one.
const RATE: u32 = 150;
const HOLD: Duration = Duration::from_secs(1);

/// The client: a new connection every `1 / rate` s; on each, one
/// `GET /` (HTTP/1.1, kept alive), its answer (the real server's name)
/// recorded as a JSON line `{start, server}`, then the connection held
/// open, idle, for 0.5 to 1.5 x `hold` s (at random, so that connections
/// do not end in cohorts) before the client closes it. Runs until the
/// stop file exists or for `run_for` s.
const HOLDING_CLIENT: &str = r#"
import asyncio, json, os, random, sys, time
host, rate, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
run_for, out_path, stop_file = float(sys.argv[4]), sys.argv[5], sys.argv[6]
out = open(out_path, 'w')
REQ = b'GET / HTTP/1.1\r\nHost: rvs-test\r\n\r\n'

def record(r):
    out.write(json.dumps(r) + '\n')
    out.flush()

async def one():
    r = {'start': time.time(), 'server': '', 'error': ''}
    w = None
    try:
        rd, w = await asyncio.wait_for(asyncio.open_connection(host, 80), 3)
        w.write(REQ)
        head = await asyncio.wait_for(rd.readuntil(b'\r\n\r\n'), 3)
        n = 0
        for line in head.split(b'\r\n'):
            if line.lower().startswith(b'content-length:'):
                n = int(line.split(b':', 1)[1])
        body = await asyncio.wait_for(rd.readexactly(n), 3)
        r['server'] = body.decode(errors='replace').strip()
        record(r)
        await asyncio.sleep(random.uniform(0.5 * hold, 1.5 * hold))
    except Exception as e:
        if not r['server']:
            r['error'] = f'{type(e).__name__}: {e}'
            record(r)
    finally:
        if w is not None:
            w.close()

async def main():
    t0 = time.time()
    k = 0
    tasks = set()
    while time.time() - t0 < run_for and not os.path.exists(stop_file):
        k += 1
        t = asyncio.create_task(one())
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        delay = t0 + k / rate - time.time()
        await asyncio.sleep(max(delay, 0))
    print('done', k, flush=True)

asyncio.run(main())
"#;

/// A running [`HOLDING_CLIENT`]; killed on drop.
struct HoldingLoad {
    child: Option<Child>,
    out: PathBuf,
    stop_file: PathBuf,
}

/// One new connection's outcome.
struct Conn {
    /// When the client began it, Unix seconds.
    start: f64,
    /// The real server that answered (`rs1`); empty when it failed.
    server: String,
}

impl HoldingLoad {
    fn start(topo: &Topology) -> HoldingLoad {
        let token = support::unique_token();
        let out = topo.dir.join(&format!("hold-{token}.jsonl"));
        let stop_file = topo.dir.join(&format!("hold-{token}.stop"));
        let mut cmd = topo.client.command("python3");
        cmd.args([
            "-u",
            "-c",
            HOLDING_CLIENT,
            VIP,
            &RATE.to_string(),
            &HOLD.as_secs_f64().to_string(),
            "60",
            &netns::path_str(&out),
            &netns::path_str(&stop_file),
        ]);
        cmd.stdout(std::process::Stdio::null());
        let child = cmd.spawn().expect("start the holding client");
        let load = HoldingLoad {
            child: Some(child),
            out,
            stop_file,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while load.conns().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the holding client made no connection in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        load
    }

    fn conns(&self) -> Vec<Conn> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| Conn {
                start: v["start"].as_f64().unwrap_or(f64::NAN),
                server: v["server"].as_str().unwrap_or("").to_string(),
            })
            .collect()
    }

    /// Stops the client (it exits at its next connection) and returns
    /// every connection it recorded.
    fn stop(mut self) -> Vec<Conn> {
        let _ = std::fs::write(&self.stop_file, b"stop\n");
        if let Some(mut child) = self.child.take() {
            if support::wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.conns()
    }
}

impl Drop for HoldingLoad {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `part / whole`, 0 for an empty whole.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Mean of `xs`.
fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Runs the scenario under `scheduler` with `slow_start_s` (0: off): kill
/// the last real server, bring it back, and return its share of new
/// connections in each of the `seconds` seconds from the moment rvsd
/// marked it up.
fn shares_after_recovery(scheduler: &str, slow_start_s: u64, seconds: usize) -> Recovery {
    let _heavy = heavy();
    assert!(
        netns::have("nginx"),
        "this test kills and restarts nginx real servers: install nginx"
    );
    let mut topo = Topology::nat_with_management(SERVERS);
    let mut service = Service::nat("web", &format!("{VIP}:80"), "tcp", scheduler)
        .health_check(Some("tcp"))
        .health_timing(200, 150, 2, 2)
        .setting("slow_start_s", &slow_start_s.to_string());
    for rs in &topo.real_servers {
        service = service.real(rs.addr(HTTP_PORT), WEIGHT);
    }
    let rvsd = topo.start_rvsd(1, &[service]);
    let last = SERVERS - 1;
    let addr = topo.real_servers[last].addr(HTTP_PORT);
    let name = topo.real_servers[last].name.clone();

    let load = HoldingLoad::start(&topo);
    // Each server holds its share of `RATE x HOLD` connections.
    std::thread::sleep(Duration::from_secs(2));
    topo.kill_http(last);
    rvsd.expect_log_count(
        &format!("real server {addr} (web) is down"),
        0,
        Duration::from_secs(5),
    );
    // Its held connections end; the others fill up with its share.
    std::thread::sleep(HOLD + Duration::from_millis(200));
    topo.restart_http(last);
    let up_at = rvsd.expect_log_count(
        &format!("real server {addr} (web) is up"),
        0,
        Duration::from_secs(5),
    );
    if slow_start_s > 0 {
        rvsd.expect_log_count(
            &format!("real server {addr} (web): slow start, weight 1 of {WEIGHT}"),
            0,
            Duration::from_secs(1),
        );
        check_listed_mid_ramp(&topo, scheduler, &addr, up_at);
    }
    std::thread::sleep(
        (up_at + Duration::from_secs(seconds as u64) + Duration::from_millis(300))
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    );
    let conns = load.stop();
    let t0 = unix_seconds(up_at);
    let label = format!("{scheduler} slow_start_s={slow_start_s}");
    // The first tenths of a second: where a flood shows.
    let tenths: Vec<String> = (0..10)
        .map(|b| {
            let lo = t0 + f64::from(b) * 0.1;
            let bin: Vec<&Conn> = conns
                .iter()
                .filter(|c| !c.server.is_empty() && c.start >= lo && c.start < lo + 0.1)
                .collect();
            let mine = bin.iter().filter(|c| c.server == name).count();
            format!("{mine}/{}", bin.len())
        })
        .collect();
    result_line(&format!(
        "slow_start {label} first_second_by_tenths to_{name}/new_conns: {}",
        tenths.join(" ")
    ));
    let mut shares = Vec::with_capacity(seconds);
    for s in 0..seconds {
        let in_second: Vec<&Conn> = conns
            .iter()
            .filter(|c| !c.server.is_empty())
            .filter(|c| c.start >= t0 + s as f64 && c.start < t0 + s as f64 + 1.0)
            .collect();
        let mine = in_second.iter().filter(|c| c.server == name).count();
        let share = ratio(mine, in_second.len());
        result_line(&format!(
            "slow_start {label} second={s} new_conns={} to_{name}={mine} share={share:.3}",
            in_second.len()
        ));
        shares.push(share);
    }
    let failed = conns.iter().filter(|c| c.server.is_empty()).count();
    result_line(&format!(
        "slow_start {label} conns={} failed={failed} (the killed server's, at its kill)",
        conns.len()
    ));
    drop(rvsd);
    let first_half: Vec<&Conn> = conns
        .iter()
        .filter(|c| !c.server.is_empty() && c.start >= t0 && c.start < t0 + 0.5)
        .collect();
    let first_half_second = ratio(
        first_half.iter().filter(|c| c.server == name).count(),
        first_half.len(),
    );
    result_line(&format!(
        "slow_start {label} first_half_second_share={first_half_second:.3}"
    ));
    Recovery {
        shares,
        first_half_second,
    }
}

/// The recovered server's share of new connections after its recovery.
struct Recovery {
    /// In each second.
    shares: Vec<f64>,
    /// In the first half second: where a flood shows (the server, with no
    /// connections, takes every new one until it holds its share).
    first_half_second: f64,
}

/// 3 s into the ramp of real server `addr` (up at `up_at`), `rvsadm list`
/// shows its effective weight and the ramp's progress, in JSON and text.
fn check_listed_mid_ramp(topo: &Topology, scheduler: &str, addr: &str, up_at: SystemTime) {
    std::thread::sleep(
        (up_at + Duration::from_secs(3))
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    );
    let list = topo.rvsadm_list();
    let listed = netns::listed_real_servers(&list, "web")
        .iter()
        .find(|rs| rs["address"] == addr)
        .cloned()
        .unwrap_or_else(|| panic!("no {addr} in {list}"));
    let effective = listed["effective_weight"].as_u64().unwrap_or(0);
    assert!(
        (2..u64::from(WEIGHT)).contains(&effective),
        "3 s into an 8 s ramp: {listed}"
    );
    assert_eq!(listed["weight"], WEIGHT, "{listed}");
    assert_eq!(listed["slow_start"]["duration_s"], SLOW_START_S, "{listed}");
    let text = topo.rvsadm(&["list"]).stdout;
    let line = text.lines().find(|l| l.contains(addr)).unwrap_or("");
    assert!(
        line.contains("(slow start ") && line.contains(&format!("/{WEIGHT}, ")),
        "{text}"
    );
    result_line(&format!(
        "slow_start {scheduler} list_at_3s effective_weight={effective} weight={WEIGHT} \
         line={line:?}"
    ));
}

/// The ramp's verdict on `shares` (one per second after recovery): well
/// below the full share (1/3) at first, near it at the end, broadly
/// increasing.
fn assert_ramps(scheduler: &str, recovery: &Recovery) {
    let shares = &recovery.shares;
    let full = 1.0 / SERVERS as f64;
    assert!(
        recovery.first_half_second < 0.35,
        "{scheduler}: flooded at first: {:.3} of the first half second's new connections",
        recovery.first_half_second
    );
    let first = shares[0];
    let early = mean(&shares[..3]);
    let late = mean(&shares[shares.len() - 3..]);
    result_line(&format!(
        "slow_start {scheduler} summary first={first:.3} early_mean={early:.3} \
         late_mean={late:.3} full_share={full:.3}"
    ));
    assert!(
        first < 0.6 * full,
        "{scheduler}: the first second's share {first:.3} is not well below the full share \
         {full:.3}: {shares:?}"
    );
    assert!(
        late > 0.7 * full,
        "{scheduler}: the last seconds' share {late:.3} is not near the full share {full:.3}: \
         {shares:?}"
    );
    assert!(
        late > early + 0.1,
        "{scheduler}: the share does not ramp ({early:.3} -> {late:.3}): {shares:?}"
    );
    // Broadly increasing: no second far below one before it.
    for (i, w) in shares.windows(2).enumerate() {
        assert!(
            w[1] > w[0] - 0.12,
            "{scheduler}: second {} fell from {:.3} to {:.3}: {shares:?}",
            i + 1,
            w[0],
            w[1]
        );
    }
}

/// Seconds measured after recovery with a ramp: the ramp and one more.
const RAMP_SECONDS: usize = SLOW_START_S as usize + 1;

#[test]
fn wlc_ramps_a_recovered_servers_share_of_new_connections() {
    assert_ramps(
        "wlc",
        &shares_after_recovery("wlc", SLOW_START_S, RAMP_SECONDS),
    );
}

#[test]
fn lc_ramps_a_recovered_servers_share_of_new_connections() {
    assert_ramps(
        "lc",
        &shares_after_recovery("lc", SLOW_START_S, RAMP_SECONDS),
    );
}

/// The reference: the same recovery without slow start floods the
/// server (every new connection until it holds as many as the others),
/// which is what the ramp prevents.
#[test]
fn without_slow_start_wlc_floods_a_recovered_server() {
    let recovery = shares_after_recovery("wlc", 0, 2);
    assert!(
        recovery.first_half_second > 0.6,
        "without slow start the recovered server, which has no connections, should take \
         most new connections at first, not {:.3}",
        recovery.first_half_second
    );
}
