#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! The Pktgen-DPDK profiles of `perf/pktgen/` run against the real `rvsd`
//! with the real Pktgen-DPDK, and what each profile reports is checked
//! against rvsd's own counters.
//!
//! ```text
//!   gen ns: pktgen                              lb ns: rvsd
//!   port 0 (net_af_packet) <-- veth --> "outside" 198.18.0.1  MAC 02:..:0b:00
//!   port 1 (net_af_packet) <-- veth --> "inside"  198.19.0.1  MAC 02:..:0b:01
//! ```
//!
//! Pktgen-DPDK is not a Debian package: its source and a build script are
//! in `../shared/tools/` next to the repository (CI's layout). When that
//! folder is missing the test prints a `SKIPPED` line and passes; when it
//! is there the test builds pktgen once into `/tmp/rvs-pktgen` (reused
//! afterwards) and runs every profile through `perf/pktgen/run-profile`, at
//! a few hundred frames per second (the machine has two cores), each with
//! a fresh rvsd started from the profile's `perf/pktgen/rvsd-*.toml`
//! (devices, cores, table size and control socket replaced for the test).
//! The checks, per profile: rvsd created exactly one connection per flow
//! (or per new source), the frames pktgen counts as delivered are exactly
//! those rvsd forwarded, in both directions for NAT, nothing was dropped as
//! `no_connection` while the established flows ran, and the rvsd counters
//! the profile printed are the ones rvsd gives the test afterwards. And the
//! TTL of the first frame rvsd forwards: NAT decrements it, DR leaves the
//! IP header alone (as IPVS's DR, and as `perf/pktgen/` now says).
//! Figures are printed as `RESULT pktgen ...` lines.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{counter, run, run_cmd, unique_token, Netns, Rvsd, TempDir};

/// Established flows in the pcap files.
const FLOWS: u64 = 256;
/// Distinct new sources in the SYN files.
const NEW: u64 = 8192;
/// Frames per second per port: low, so two shared cores keep up.
const PPS: u64 = 400;
/// Seconds each measured phase sends.
const SECONDS: u64 = 3;
/// A pktgen run never takes longer than this.
const PKTGEN_TIMEOUT: Duration = Duration::from_secs(120);
/// Building pktgen (about a minute on two idle cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
const SHORT: Duration = Duration::from_secs(10);

/// Writes a line to stderr past the test harness's capture, so `cargo
/// test` shows it for a passing test too (`RESULT ...`, `SKIPPED ...`).
fn shout(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `../shared/tools` next to the repository, when it holds the pktgen
/// build script.
fn tools_dir() -> Option<PathBuf> {
    let dir = support::repo_root().join("../shared/tools");
    dir.join("build-pktgen").is_file().then_some(dir)
}

/// Builds pktgen with the shared script (a no-op when `/tmp/rvs-pktgen`
/// already holds a build) and returns the binary's path.
fn build_pktgen(tools: &Path) -> PathBuf {
    let t0 = Instant::now();
    let script = tools.join("build-pktgen");
    let out = run_cmd(
        std::process::Command::new(&script).arg("/tmp/rvs-pktgen"),
        BUILD_TIMEOUT,
    )
    .expect_success();
    let bin = PathBuf::from(out.stdout.lines().last().unwrap_or("").trim());
    assert!(bin.is_file(), "build-pktgen printed no binary: {out}");
    // 24.07.1 drops the pcap files given with -s: patch and rebuild
    // (incremental, idempotent).
    let fix = support::repo_root().join("perf/pktgen/fix-pktgen-pcap");
    let out = run_cmd(
        std::process::Command::new(&fix).arg("/tmp/rvs-pktgen"),
        BUILD_TIMEOUT,
    )
    .expect_success();
    let bin = PathBuf::from(out.stdout.lines().last().unwrap_or("").trim());
    assert!(bin.is_file(), "fix-pktgen-pcap printed no binary: {out}");
    eprintln!(
        "pktgen: {} (ready in {:.0} s)",
        bin.display(),
        t0.elapsed().as_secs_f64()
    );
    bin
}

/// The two namespaces and the two wires between them.
struct Bed {
    lb: Netns,
    gen: Netns,
    /// rvsd's ends (in `lb`): outside, inside.
    rvsd_devs: [String; 2],
    /// pktgen's ends (in `gen`): port 0, port 1.
    pktgen_devs: [String; 2],
}

impl Bed {
    fn new() -> Bed {
        let lb = Netns::new();
        let gen = Netns::new();
        for ns in [&lb, &gen] {
            for key in [
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ] {
                let _ = ns.run("sysctl", &["-q", "-w", key], SHORT);
            }
        }
        let outside = support::veth_pair(&lb, &gen);
        let inside = support::veth_pair(&lb, &gen);
        Bed {
            lb,
            gen,
            rvsd_devs: [outside.a, inside.a],
            pktgen_devs: [outside.b, inside.b],
        }
    }
}

/// The profile's rvsd config (`perf/pktgen/rvsd-MODE.toml`) with the test's
/// devices, cores (one worker that sleeps when idle), a small table and
/// the control socket in `dir`.
fn rvsd_config(mode: &str, bed: &Bed, dir: &TempDir) -> PathBuf {
    let path = support::repo_root().join(format!("perf/pktgen/rvsd-{mode}.toml"));
    let text = std::fs::read_to_string(&path).expect("the profile's rvsd config");
    let mut cfg: toml::Table = text.parse().expect("rvsd config is TOML");
    let eal: Vec<toml::Value> = support::test_eal_args()
        .into_iter()
        .map(toml::Value::String)
        .collect();
    let dpdk = cfg["dpdk"].as_table_mut().expect("[dpdk]");
    dpdk.insert("eal_args".into(), toml::Value::Array(eal));
    dpdk.insert("workers".into(), toml::Value::Array(vec![1.into()]));
    let dp = cfg["dataplane"].as_table_mut().expect("[dataplane]");
    dp.insert("conn_table_size".into(), 65536.into());
    dp.insert("idle_sleep_us".into(), 100.into());
    let ifaces = cfg["interface"].as_array_mut().expect("[[interface]]");
    for (i, iface) in ifaces.iter_mut().enumerate() {
        let dev = format!("net_af_packet{i},iface={}", bed.rvsd_devs[i]);
        iface
            .as_table_mut()
            .expect("interface table")
            .insert("device".into(), dev.into());
    }
    let control = cfg["control"].as_table_mut().expect("[control]");
    control.insert(
        "socket".into(),
        dir.join("rvsd.sock").to_string_lossy().into_owned().into(),
    );
    control.remove("metrics_listen");
    let out = dir.join(&format!("rvsd-{mode}.toml"));
    std::fs::write(&out, toml::to_string(&cfg).expect("TOML")).expect("write config");
    out
}

/// `rvsadm --json stats` of the rvsd whose socket is in `dir`.
fn rvsadm_stats_cmd(dir: &TempDir) -> String {
    format!(
        "{} --socket {} --json stats",
        env!("CARGO_BIN_EXE_rvsadm"),
        dir.join("rvsd.sock").display()
    )
}

fn rvsd_stats(dir: &TempDir) -> serde_json::Value {
    let cmd = rvsadm_stats_cmd(dir);
    let parts: Vec<&str> = cmd.split(' ').collect();
    let out = run(parts[0], &parts[1..], SHORT).expect_success();
    serde_json::from_str(out.stdout.trim()).expect("rvsadm --json stats prints JSON")
}

/// A profile's key=value figures.
struct Figures {
    name: String,
    map: BTreeMap<String, String>,
}

impl Figures {
    fn read(name: &str, path: &Path, log: &str) -> Figures {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{name}: no result file {} ({e})\n{log}", path.display()));
        let map: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(
            !map.contains_key("error"),
            "{name} failed: {}\n{log}",
            map["error"]
        );
        assert_eq!(
            map.get("done").map(String::as_str),
            Some("1"),
            "{name} did not finish\n{log}"
        );
        Figures {
            name: name.to_string(),
            map,
        }
    }

    fn get(&self, key: &str) -> u64 {
        self.map
            .get(key)
            .unwrap_or_else(|| panic!("{}: no figure {key}: {:?}", self.name, self.map))
            .parse()
            .unwrap_or_else(|_| panic!("{}: {key} is not a count", self.name))
    }

    fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

/// What one profile run left: each pktgen run's figures (one per frame
/// size for frame-sizes), rvsd's counters at the end, and `tcpdump -v`'s
/// line for the first frame rvsd forwarded to port 1.
struct Outcome {
    figures: Vec<Figures>,
    stats: serde_json::Value,
    first_forwarded: String,
}

/// Runs `run-profile PROFILE MODE` with pktgen in the gen namespace against
/// a fresh rvsd.
fn run_profile(pktgen: &Path, profile: &str, mode: &str, extra_env: &[(&str, &str)]) -> Outcome {
    let bed = Bed::new();
    let dir = TempDir::new("pktgen");
    let config = rvsd_config(mode, &bed, &dir);
    let mut rvsd = Rvsd::start(&config, Some(&bed.lb));
    rvsd.wait_ready(Duration::from_secs(30));
    // The first frame rvsd sends to port 1 (a SYN; IPIP for TUN), with
    // its IP header, to see what the forwarding method did to it.
    let filter = if mode == "tun" {
        "ip proto 4"
    } else {
        "tcp[tcpflags] & tcp-syn != 0"
    };
    let tcpdump = bed
        .gen
        .command("timeout")
        .args(["60", "tcpdump", "-c", "1", "-nn", "-v", "-Q", "in", "-i"])
        .arg(&bed.pktgen_devs[1])
        .arg(filter)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(500));
    let pktgen_cmd = format!(
        "ip netns exec {} {} --lcores '0@0,(1,2)@(0,1)' --no-huge --no-pci --no-shconf -m 512 \
         --file-prefix rvstpg{} --vdev net_af_packet0,iface={} --vdev net_af_packet1,iface={} \
         -- -P -m 1.0 -m 2.1",
        bed.gen.name(),
        pktgen.display(),
        unique_token(),
        bed.pktgen_devs[0],
        bed.pktgen_devs[1]
    );
    let result = dir.join("figures");
    let t0 = Instant::now();
    let mut cmd = std::process::Command::new(support::repo_root().join("perf/pktgen/run-profile"));
    cmd.args([profile, mode])
        .env("PKTGEN", &pktgen_cmd)
        .env("RVS_PKTGEN_OUT", dir.path())
        .env("RVS_PKTGEN_RESULT", &result)
        .env("RVS_PKTGEN_RVSD_STATS", rvsadm_stats_cmd(&dir))
        .env("RVS_PKTGEN_FLOWS", FLOWS.to_string())
        .env("RVS_PKTGEN_NEW", NEW.to_string())
        .env("RVS_PKTGEN_PPS", PPS.to_string())
        .env("RVS_PKTGEN_SYN_PPS", PPS.to_string())
        .env("RVS_PKTGEN_SECONDS", SECONDS.to_string())
        .env("RVS_PKTGEN_TIMEOUT", PKTGEN_TIMEOUT.as_secs().to_string());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = run_cmd(&mut cmd, PKTGEN_TIMEOUT * 3);
    // pktgen's screen is full of escape sequences: keep the profile's lines.
    let log: String = out
        .stdout
        .lines()
        .map(|l| l.trim_start_matches(|c: char| c.is_control()))
        .filter(|l| {
            l.starts_with("==")
                || l.starts_with("--")
                || l.starts_with("   ")
                || l.contains("ERROR")
        })
        .map(|l| format!("[{profile} {mode}] {l}\n"))
        .collect();
    eprint!("{log}");
    assert!(
        out.success(),
        "run-profile {profile} {mode} failed: {}\n{}\n{}",
        out.status.map_or("timed out".into(), |s| s.to_string()),
        out.stderr,
        out.stdout
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    let mut figures = Vec::new();
    if profile == "frame-sizes" {
        for size in extra_env
            .iter()
            .find(|(k, _)| *k == "RVS_PKTGEN_SIZES")
            .map(|(_, v)| *v)
            .unwrap_or("")
            .split(',')
        {
            let p = PathBuf::from(format!("{}.{size}", result.display()));
            figures.push(Figures::read(
                &format!("{profile} {mode} {size} B"),
                &p,
                &log,
            ));
        }
    } else {
        figures.push(Figures::read(&format!("{profile} {mode}"), &result, &log));
    }
    let stats = rvsd_stats(&dir);
    rvsd.stop(SHORT);
    let first_forwarded = tcpdump
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', " "))
        .unwrap_or_default();
    eprintln!(
        "[{profile} {mode}] took {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Outcome {
        figures,
        stats,
        first_forwarded,
    }
}

/// The SYN phase: every flow's SYN forwarded, one connection each (none
/// when an earlier run of the same rvsd opened them), and the profile's
/// rvsd figures right.
fn check_open(f: &Figures, new_connections: u64) {
    let n = &f.name;
    assert_eq!(f.get("open.sent"), FLOWS, "{n}: SYNs sent");
    assert_eq!(f.get("open.delivered"), FLOWS, "{n}: SYNs delivered");
    assert_eq!(f.get("open.rvsd_forwarded"), FLOWS, "{n}: rvsd forwarded");
    assert_eq!(
        f.get("open.rvsd_conns_created"),
        new_connections,
        "{n}: connections"
    );
    assert!(f.get("open.rvsd_connections") >= FLOWS, "{n}: table");
    assert_eq!(f.get("open.rvsd_drops"), 0, "{n}: drops");
}

/// The established phase: frames in each direction all delivered, exactly
/// what rvsd forwarded, no connection made or missing.
fn check_established(f: &Figures, both_ways: bool) {
    let n = &f.name;
    let fwd = f.get("est.fwd.delivered");
    assert!(fwd > 0, "{n}: nothing delivered");
    assert_eq!(f.get("est.fwd.offered"), fwd, "{n}: client->rs loss");
    let mut delivered = fwd;
    if both_ways {
        let rev = f.get("est.rev.delivered");
        assert!(rev > 0, "{n}: no replies delivered");
        assert_eq!(f.get("est.rev.offered"), rev, "{n}: rs->client loss");
        delivered += rev;
    } else {
        assert!(!f.has("est.rev.offered"), "{n}: one-way");
    }
    assert_eq!(
        f.get("est.rvsd_forwarded"),
        delivered,
        "{n}: rvsd forwarded"
    );
    assert_eq!(f.get("est.rvsd_no_connection"), 0, "{n}: no_connection");
    assert_eq!(f.get("est.rvsd_drops"), 0, "{n}: drops");
    assert_eq!(f.get("est.rvsd_conns_created"), 0, "{n}: new connections");
    shout(&format!(
        "RESULT pktgen {n}: SYN phase sent {} delivered {} rvsd created {} | established offered {}{} delivered {} | rvsd forwarded {} no_connection {} connections {}",
        f.get("open.sent"),
        f.get("open.delivered"),
        f.get("open.rvsd_conns_created"),
        f.get("est.fwd.offered"),
        if both_ways { format!("+{}", f.get("est.rev.offered")) } else { String::new() },
        delivered,
        f.get("est.rvsd_forwarded"),
        f.get("est.rvsd_no_connection"),
        f.get("est.rvsd_connections"),
    ));
}

/// The profile's figures against rvsd's counters at the end of the run.
fn check_totals(name: &str, stats: &serde_json::Value, created: u64, forwarded: u64) {
    assert_eq!(
        counter(stats, "total.conns_created"),
        created,
        "{name}: rvsd's conns_created against the profile's: {stats}"
    );
    assert_eq!(
        counter(stats, "total.forwarded"),
        forwarded,
        "{name}: rvsd's forwarded against the profile's: {stats}"
    );
    assert_eq!(
        counter(stats, "total.drops.no_connection"),
        0,
        "{name}: {stats}"
    );
    shout(&format!(
        "RESULT pktgen {name}: rvsd total conns_created {} forwarded {} rx {} no_connection 0",
        counter(stats, "total.conns_created"),
        counter(stats, "total.forwarded"),
        counter(stats, "total.rx_packets"),
    ));
}

/// The TTL of the first IPv4 header in `tcpdump -v`'s line.
fn first_ttl(line: &str) -> Option<u64> {
    let rest = &line[line.find("ttl ")? + 4..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn established(pktgen: &Path, profile: &str, mode: &str) {
    let Outcome {
        figures: figs,
        stats,
        first_forwarded,
    } = run_profile(pktgen, profile, mode, &[]);
    let f = &figs[0];
    // make-pcaps.py sends TTL 64. NAT routes and decrements it; DR only
    // changes the Ethernet header (as IPVS's DR); TUN's outer header is
    // rvsd's own.
    let ttl = first_ttl(&first_forwarded);
    shout(&format!(
        "RESULT pktgen {}: first frame rvsd forwarded: {}",
        f.name,
        first_forwarded.trim()
    ));
    match mode {
        "nat" => assert_eq!(ttl, Some(63), "NAT decrements the TTL: {first_forwarded}"),
        "dr" => assert_eq!(ttl, Some(64), "DR leaves the TTL: {first_forwarded}"),
        _ => assert!(ttl.is_some(), "no IPIP frame seen: {first_forwarded}"),
    }
    check_open(f, FLOWS);
    check_established(f, mode == "nat");
    let fwd = f.get("open.delivered") + f.get("est.rvsd_forwarded");
    check_totals(&f.name, &stats, FLOWS, fwd);
}

fn frame_sizes(pktgen: &Path) {
    let Outcome {
        figures: figs,
        stats,
        ..
    } = run_profile(
        pktgen,
        "frame-sizes",
        "nat",
        &[("RVS_PKTGEN_SIZES", "128,1518")],
    );
    let mut fwd = 0;
    for (i, f) in figs.iter().enumerate() {
        check_open(f, if i == 0 { FLOWS } else { 0 });
        check_established(f, true);
        fwd += f.get("open.delivered") + f.get("est.rvsd_forwarded");
    }
    check_totals("frame-sizes nat", &stats, FLOWS, fwd);
}

fn syn_flood(pktgen: &Path) {
    let Outcome {
        figures: figs,
        stats,
        ..
    } = run_profile(
        pktgen,
        "syn-flood",
        "nat",
        &[("RVS_PKTGEN_BG_PPS", "200"), ("RVS_PKTGEN_BG_SECONDS", "2")],
    );
    let f = &figs[0];
    let n = &f.name;
    check_open(f, FLOWS);
    let mut fwd = f.get("open.delivered");
    for phase in ["bg_before", "bg_after"] {
        let d = f.get(&format!("{phase}.delivered"));
        assert!(d > 0, "{n}: {phase}");
        assert_eq!(f.get(&format!("{phase}.offered")), d, "{n}: {phase} loss");
        assert_eq!(f.get(&format!("{phase}.rvsd_forwarded")), d, "{n}: {phase}");
        assert_eq!(f.get(&format!("{phase}.rvsd_no_connection")), 0, "{n}");
        fwd += d;
    }
    let syns = f.get("flood.offered");
    assert!(syns > 0 && syns <= NEW, "{n}: flood of {syns} SYNs");
    assert_eq!(f.get("flood.delivered"), syns, "{n}: SYNs forwarded");
    assert_eq!(
        f.get("flood.rvsd_conns_created"),
        syns,
        "{n}: one connection per new source"
    );
    let bg = f.get("bg.delivered");
    assert_eq!(
        f.get("bg.offered"),
        bg,
        "{n}: background loss during the flood"
    );
    assert_eq!(f.get("flood.rvsd_forwarded"), syns + bg, "{n}: forwarded");
    assert_eq!(f.get("flood.rvsd_no_connection"), 0, "{n}: no_connection");
    fwd += syns + bg;
    shout(&format!(
        "RESULT pktgen {n}: flood SYNs sent {syns} forwarded {} rvsd created {} | background during {}/{} | rvsd forwarded {} no_connection {} connections {}",
        f.get("flood.delivered"),
        f.get("flood.rvsd_conns_created"),
        bg,
        f.get("bg.offered"),
        f.get("flood.rvsd_forwarded"),
        f.get("flood.rvsd_no_connection"),
        f.get("flood.rvsd_connections"),
    ));
    check_totals(n, &stats, FLOWS + syns, fwd);
}

fn conn_rate(pktgen: &Path) {
    let Outcome {
        figures: figs,
        stats,
        ..
    } = run_profile(
        pktgen,
        "conn-rate",
        "nat",
        &[("RVS_PKTGEN_STEPS", "200,500"), ("RVS_PKTGEN_GAP", "1")],
    );
    let f = &figs[0];
    let n = &f.name;
    assert_eq!(f.get("steps"), 2, "{n}: steps");
    let mut created = 0;
    for i in 1..=2 {
        let sent = f.get(&format!("step{i}.offered"));
        assert!(sent > 0, "{n}: step {i}");
        assert_eq!(f.get(&format!("step{i}.delivered")), sent, "{n}: step {i}");
        assert_eq!(
            f.get(&format!("step{i}.rvsd_forwarded")),
            sent,
            "{n}: step {i}"
        );
        assert_eq!(
            f.get(&format!("step{i}.rvsd_conns_created")),
            sent,
            "{n}: step {i}: one connection per new source"
        );
        created += sent;
        shout(&format!(
            "RESULT pktgen {n}: step {i} SYNs sent {sent} ({:.0}/s) delivered {} rvsd created {}",
            sent as f64 / SECONDS as f64,
            f.get(&format!("step{i}.delivered")),
            f.get(&format!("step{i}.rvsd_conns_created")),
        ));
    }
    assert_eq!(f.get("created"), created, "{n}");
    check_totals(n, &stats, created, created);
}

/// Every profile, with the real pktgen, against the real rvsd.
#[test]
fn pktgen_profiles_match_rvsd_counters() {
    let Some(tools) = tools_dir() else {
        shout(&format!(
            "SKIPPED e2e_pktgen: {} not found (Pktgen-DPDK's source and build script; \
             a clone of the project alone does not have it)",
            support::repo_root().join("../shared/tools").display()
        ));
        return;
    };
    support::require_root("e2e_pktgen");
    if !support::run("which", &["script"], SHORT).success() {
        panic!("e2e_pktgen needs `script` (util-linux) to give pktgen a terminal");
    }
    let t0 = Instant::now();
    let pktgen = build_pktgen(&tools);
    established(&pktgen, "established-nat", "nat");
    established(&pktgen, "dr", "dr");
    established(&pktgen, "tun", "tun");
    frame_sizes(&pktgen);
    syn_flood(&pktgen);
    conn_rate(&pktgen);
    shout(&format!(
        "RESULT pktgen: every profile in {:.0} s",
        t0.elapsed().as_secs_f64()
    ));
}
