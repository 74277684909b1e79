//! Helpers shared by the integration tests: running the real `rvsd`,
//! network namespaces and veth pairs, commands with a time bound, scratch
//! directories and test configs.
//!
//! Every helper that starts something also stops it: guards clean up on
//! drop, so a failing assertion (a panic) still removes namespaces and
//! kills processes. Every wait on a child process is bounded.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod carry;
pub mod ipv6;
pub mod pcap;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The `rvsd` binary cargo built for this test run.
pub const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: the pid in base 36,
/// padded to 5 digits (Linux pids are below 36^5), then a base-36 counter,
/// e.g. `001z4k`. Fits in interface names (15 characters) with a prefix.
pub fn unique_token() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:0>5}{}", base36(std::process::id()), base36(n))
}

/// The pid that made `token` (see [`unique_token`]).
fn token_pid(token: &str) -> Option<u32> {
    u32::from_str_radix(token.get(..5)?, 36).ok()
}

fn base36(mut v: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

// ------------------------------------------------------------------ root

/// True when the test runs as root (effective uid 0).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .map(|euid| euid == "0")
        .unwrap_or(false)
}

/// Fails the test with a clear message unless it runs as root. Tests that
/// run DPDK or build namespaces need root; CI runs as root.
pub fn require_root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root (DPDK, network namespaces): run the tests as root, \
         e.g. `sudo -E cargo test`, or `./scripts/test` as root"
    );
}

// -------------------------------------------------------------- commands

/// What a finished (or timed-out) command left behind.
#[derive(Debug)]
pub struct CmdOutput {
    /// `None` when the command was killed because it ran out of time.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub cmdline: String,
    pub elapsed: Duration,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.map(|s| s.success()).unwrap_or(false)
    }

    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// Panics with everything known about the command unless it succeeded.
    pub fn expect_success(self) -> CmdOutput {
        assert!(self.success(), "command failed: {self}");
        self
    }
}

impl std::fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "`{}` exited with {s}", self.cmdline)?,
            None => write!(
                f,
                "`{}` timed out after {:.1} s and was killed",
                self.cmdline,
                self.elapsed.as_secs_f64()
            )?,
        }
        write!(
            f,
            "\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.stdout, self.stderr
        )
    }
}

fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> Option<JoinHandle<String>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    })
}

/// Waits for `child` at most `timeout`; `None` when it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs `cmd` to completion with stdin closed, capturing its output, and
/// kills it (SIGKILL) when it runs longer than `timeout`.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    let line = cmdline(cmd);
    let start = Instant::now();
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot run `{line}`: {e}"),
    };
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = wait_timeout(&mut child, Duration::from_secs(5));
    }
    // Grandchildren may keep the pipes open after a kill: do not wait for
    // the readers forever.
    let join = |h: Option<JoinHandle<String>>| -> String {
        let Some(h) = h else { return String::new() };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            "(output not collected: still held open by another process)\n".into()
        }
    };
    CmdOutput {
        status,
        stdout: join(out),
        stderr: join(err),
        cmdline: line,
        elapsed: start.elapsed(),
    }
}

/// `run_cmd` for a program and arguments.
pub fn run(program: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    run_cmd(Command::new(program).args(args), timeout)
}

/// `run`, panicking with the command's output unless it succeeds.
pub fn run_ok(program: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    run(program, args, timeout).expect_success()
}

const IP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------- namespaces

/// Prefix of every namespace the tests create.
pub const NETNS_PREFIX: &str = "rvst-";

/// A network namespace that exists as long as this guard: on drop every
/// process in it is killed and the namespace is deleted (with it the
/// interfaces inside it, including veth ends).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `rvst-<pid><n>` (base 36), first removing namespaces that
    /// earlier test runs left behind when they were killed.
    pub fn new() -> Netns {
        remove_stale_netns();
        let name = format!("{NETNS_PREFIX}{}", unique_token());
        assert!(name.len() <= 15, "namespace name {name} too long");
        run_ok("ip", &["netns", "add", &name], IP_TIMEOUT);
        let ns = Netns { name };
        ns.run_ok("ip", &["link", "set", "lo", "up"], IP_TIMEOUT);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `program args` in the namespace with a time bound.
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> CmdOutput {
        run_cmd(self.command(program).args(args), timeout)
    }

    /// `run`, panicking with the command's output unless it succeeds.
    pub fn run_ok(&self, program: &str, args: &[&str], timeout: Duration) -> CmdOutput {
        self.run(program, args, timeout).expect_success()
    }

    /// Brings `dev` up (in this namespace).
    pub fn link_up(&self, dev: &str) {
        self.run_ok("ip", &["link", "set", dev, "up"], IP_TIMEOUT);
    }

    /// Adds `cidr` (e.g. `192.0.2.10/24`) to `dev`.
    pub fn add_address(&self, dev: &str, cidr: &str) {
        self.run_ok("ip", &["address", "add", cidr, "dev", dev], IP_TIMEOUT);
    }

    /// The MAC address of `dev`, lower case.
    pub fn mac_of(&self, dev: &str) -> String {
        let out = self.run_ok(
            "cat",
            &[&format!("/sys/class/net/{dev}/address")],
            IP_TIMEOUT,
        );
        out.stdout.trim().to_ascii_lowercase()
    }

    /// Turns off checksum offload and segmentation/receive offloads on `dev`
    /// so af_packet sees complete frames with real checksums. A feature the
    /// device does not have is not an error.
    pub fn offloads_off(&self, dev: &str) {
        for feature in ["rx", "tx", "sg", "tso", "gso", "gro", "lro"] {
            let _ = self.run("ethtool", &["-K", dev, feature, "off"], IP_TIMEOUT);
        }
    }

    /// Pids of the processes in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        netns_pids(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

fn netns_pids(name: &str) -> Vec<u32> {
    run("ip", &["netns", "pids", name], IP_TIMEOUT)
        .stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills everything in namespace `name` and deletes it; failures are
/// reported on stderr but do not panic (this runs in `Drop`).
fn delete_netns(name: &str) {
    for _ in 0..3 {
        let pids = netns_pids(name);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = run("kill", &["-KILL", &pid.to_string()], IP_TIMEOUT);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run("ip", &["netns", "delete", name], IP_TIMEOUT);
    if !out.success() && netns_exists(name) {
        eprintln!("warning: could not delete namespace {name}: {out}");
    }
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Deletes `rvst-*` namespaces whose creating test process is gone (a test
/// run killed before its guards ran); the creator's pid is in the name.
pub fn remove_stale_netns() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(NETNS_PREFIX).and_then(token_pid) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing stale test namespace {name}");
            delete_netns(&name);
        }
    }
}

/// A veth pair with one end in each namespace. Named `<prefix><token>a`
/// and `<prefix><token>b`; removed with the namespaces.
#[derive(Debug, Clone)]
pub struct Veth {
    pub a: String,
    pub b: String,
}

/// Creates a veth pair: end `a` in namespace `ns_a`, end `b` in `ns_b`,
/// both up, with offloads off. No addresses.
pub fn veth_pair(ns_a: &Netns, ns_b: &Netns) -> Veth {
    let token = unique_token();
    let a = format!("rvt{token}a");
    let b = format!("rvt{token}b");
    assert!(a.len() <= 15, "interface name {a} too long");
    run_ok(
        "ip",
        &[
            "link",
            "add",
            &a,
            "netns",
            ns_a.name(),
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            ns_b.name(),
        ],
        IP_TIMEOUT,
    );
    ns_a.offloads_off(&a);
    ns_b.offloads_off(&b);
    ns_a.link_up(&a);
    ns_b.link_up(&b);
    Veth { a, b }
}

// ------------------------------------------------------------ scratch dir

/// A scratch directory under the system temp dir, removed on drop unless
/// `RVS_KEEP_TEST_FILES` is set (then its path is printed).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("rvst-{what}-{}", unique_token()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RVS_KEEP_TEST_FILES").is_some() {
            eprintln!("keeping test files in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// --------------------------------------------------------------- configs

/// EAL arguments for tests: two lcores, no hugepages, no shared files,
/// 256 MiB, and a prefix of its own so concurrent tests never collide.
pub fn test_eal_args() -> Vec<String> {
    [
        "-l",
        "0-1",
        "--no-huge",
        "--no-shconf",
        "-m",
        "256",
        "--file-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("rvst{}", unique_token())])
    .collect()
}

/// Quotes `s` as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A one-interface config for tests: one worker on lcore 1 that sleeps
/// when idle (tests never busy-poll the machine's two cores).
pub fn single_port_config(device: &str, addresses: &[&str], mac: Option<&str>) -> String {
    let addresses: Vec<String> = addresses.iter().map(|s| s.to_string()).collect();
    let mut t = String::new();
    let _ = writeln!(t, "[dpdk]");
    let _ = writeln!(t, "eal_args = {}", toml_list(&test_eal_args()));
    let _ = writeln!(t, "workers = [1]");
    let _ = writeln!(t);
    let _ = writeln!(t, "[dataplane]");
    let _ = writeln!(t, "burst_size = 32");
    let _ = writeln!(t, "conn_table_size = 1024");
    let _ = writeln!(t, "idle_sleep_us = 100");
    let _ = writeln!(t);
    let _ = writeln!(t, "[[interface]]");
    let _ = writeln!(t, "name = \"test0\"");
    let _ = writeln!(t, "device = {}", toml_str(device));
    let _ = writeln!(t, "addresses = {}", toml_list(&addresses));
    if let Some(mac) = mac {
        let _ = writeln!(t, "mac = {}", toml_str(mac));
    }
    t
}

// ------------------------------------------------------------------ rvsd

/// What `rvsd` wrote on stderr so far, and whether it has closed it.
#[derive(Default)]
struct LogState {
    text: String,
    closed: bool,
}

type SharedLog = Arc<(Mutex<LogState>, Condvar)>;

/// A running `rvsd`. Its stderr is collected (and echoed to the test's
/// stderr, prefixed, so a failing test shows it). Dropping the handle kills
/// the process if it still runs.
pub struct Rvsd {
    child: Child,
    log: SharedLog,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
    tag: String,
}

/// How `rvsd` ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Everything it wrote on stderr.
    pub log: String,
    /// True when it had to be killed because SIGTERM did not stop it in time.
    pub killed: bool,
}

impl Stopped {
    /// The `stats:` line's JSON; panics with the log when there is none.
    pub fn stats(&self) -> serde_json::Value {
        parse_stats(&self.log).unwrap_or_else(|e| panic!("{e}\n--- rvsd log ---\n{}", self.log))
    }
}

/// Parses the last line starting with `stats: ` in `log`.
pub fn parse_stats(log: &str) -> Result<serde_json::Value, String> {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("stats: "))
        .ok_or("rvsd printed no `stats: ` line")?;
    serde_json::from_str(line).map_err(|e| format!("the stats line is not JSON ({e}): {line}"))
}

/// Reads a counter (`total.rx_packets`, `total.drops.no_service`) from the
/// stats JSON; panics naming the path when it is missing.
pub fn counter(stats: &serde_json::Value, path: &str) -> u64 {
    let mut v = stats;
    for part in path.split('.') {
        v = v
            .get(part)
            .unwrap_or_else(|| panic!("stats have no `{path}`: {stats}"));
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("stats `{path}` is not a count: {v}"))
}

/// The drop counters of the total, by reason.
pub fn drops(stats: &serde_json::Value) -> BTreeMap<String, u64> {
    stats["total"]["drops"]
        .as_object()
        .unwrap_or_else(|| panic!("stats have no total.drops object: {stats}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
        .collect()
}

/// The drop reasons rvsd counts.
pub const DROP_REASONS: [&str; 10] = [
    "truncated",
    "malformed",
    "bad_checksum",
    "other_mac",
    "unsupported_ethertype",
    "arp_not_for_us",
    "no_service",
    "unsupported_protocol",
    "fragment",
    "tx_full",
];

impl Rvsd {
    /// Starts `rvsd --config CONFIG` (in namespace `netns` when given).
    pub fn start(config: &Path, netns: Option<&Netns>) -> Rvsd {
        Rvsd::start_with_args(config, netns, &[])
    }

    /// Starts `rvsd --config CONFIG EXTRA...`.
    pub fn start_with_args(config: &Path, netns: Option<&Netns>, extra: &[&str]) -> Rvsd {
        let mut cmd = match netns {
            // `ip netns exec` execs rvsd in place: the child's pid is rvsd's.
            Some(ns) => ns.command(RVSD),
            None => Command::new(RVSD),
        };
        cmd.arg("--config").arg(config).args(extra);
        let line = cmdline(&cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
        let tag = format!("rvsd {}", child.id());
        eprintln!("[{tag}] started: {line}");
        let log: SharedLog = Arc::default();
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = {
            let log = log.clone();
            let tag = tag.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stderr);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf);
                            let line = line.trim_end_matches(['\n', '\r']);
                            eprintln!("[{tag}] {line}");
                            let (m, cv) = &*log;
                            let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
                            st.text.push_str(line);
                            st.text.push('\n');
                            cv.notify_all();
                        }
                    }
                }
                let (m, cv) = &*log;
                m.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
                cv.notify_all();
            })
        };
        Rvsd {
            child,
            log,
            reader: Some(reader),
            status: None,
            tag,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything rvsd wrote on stderr so far.
    pub fn log(&self) -> String {
        let (m, _) = &*self.log;
        m.lock().unwrap_or_else(|p| p.into_inner()).text.clone()
    }

    /// How many lines of the log so far contain `needle`: what a test
    /// counts before a fault, to wait for the next such line.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits (polling every 2 ms, at most `timeout`) until the log has
    /// more than `seen` lines containing `needle`; the time it saw the new
    /// line (a test's measure of when rvsd decided), or `None`.
    pub fn wait_log_count(
        &self,
        needle: &str,
        seen: usize,
        timeout: Duration,
    ) -> Option<SystemTime> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_count(needle) > seen {
                return Some(SystemTime::now());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// [`Rvsd::wait_log_count`] that panics with the log when the new line
    /// does not come within `timeout`.
    pub fn expect_log_count(&self, needle: &str, seen: usize, timeout: Duration) -> SystemTime {
        self.wait_log_count(needle, seen, timeout)
            .unwrap_or_else(|| {
                panic!(
                    "no new {needle:?} line in rvsd's log within {timeout:?}\n--- rvsd log ---\n{}",
                    self.log()
                )
            })
    }

    /// The last line of the log containing `needle` (empty when none): the
    /// reason a test reads from a `down` or a priority-group line.
    pub fn last_log_line(&self, needle: &str) -> String {
        self.log()
            .lines()
            .rev()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the log has a line containing `needle`, rvsd closes its
    /// stderr (exits), or `timeout` passes. True when the line came.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.log;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.text.lines().any(|l| l.contains(needle)) {
                return true;
            }
            let now = Instant::now();
            if st.closed || now >= deadline {
                return false;
            }
            st = cv
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits for rvsd's `ready:` line; panics with the log when it exits
    /// first or does not get ready within `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) {
        if self.wait_for_log("ready:", timeout) {
            return;
        }
        let status = match self.try_status() {
            Some(s) => format!("exited with {s}"),
            None => format!("was not ready after {:.1} s", timeout.as_secs_f64()),
        };
        // Give the reader a moment to collect the last lines.
        self.wait_for_log("\u{0}never", Duration::from_millis(200));
        panic!(
            "rvsd {status}\n--- rvsd log ---\n{}----------------",
            self.log()
        );
    }

    /// The exit status if rvsd has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits at most `timeout` for rvsd to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Stopped> {
        let status = match self.status {
            Some(s) => s,
            None => wait_timeout(&mut self.child, timeout)?,
        };
        self.status = Some(status);
        Some(self.finish(status, false))
    }

    /// Sends `signal` (a name such as `TERM`, `INT`, `HUP`) to rvsd.
    pub fn signal(&self, signal: &str) {
        let out = run(
            "kill",
            &[&format!("-{signal}"), &self.pid().to_string()],
            IP_TIMEOUT,
        );
        if !out.success() {
            eprintln!("[{}] kill -{signal} failed: {out}", self.tag);
        }
    }

    /// SIGTERM, then waits up to `timeout` for rvsd to exit (SIGKILL after
    /// that). Returns the exit status and the complete log.
    pub fn stop(&mut self, timeout: Duration) -> Stopped {
        if let Some(status) = self.try_status() {
            return self.finish(status, false);
        }
        self.signal("TERM");
        if let Some(status) = wait_timeout(&mut self.child, timeout) {
            self.status = Some(status);
            return self.finish(status, false);
        }
        eprintln!(
            "[{}] did not stop within {:.1} s of SIGTERM: killing it",
            self.tag,
            timeout.as_secs_f64()
        );
        let _ = self.child.kill();
        let status = wait_timeout(&mut self.child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("rvsd {} survived SIGKILL for 10 s", self.pid()));
        self.status = Some(status);
        self.finish(status, true)
    }

    /// Collects the rest of the log once rvsd has exited.
    fn finish(&mut self, status: ExitStatus, killed: bool) -> Stopped {
        if let Some(h) = self.reader.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        eprintln!("[{}] exited: {status}", self.tag);
        Stopped {
            status,
            log: self.log(),
            killed,
        }
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            eprintln!(
                "[{}] still running at the end of the test: killing it",
                self.tag
            );
            let _ = self.child.kill();
            let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
        }
    }
}

// --------------------------------------------------------------- python

/// Runs `python3 tests/pcap/<script> ARGS` with a time bound.
pub fn python(script: &str, args: &[&str], timeout: Duration) -> CmdOutput {
    let path = repo_root().join("tests/pcap").join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(path).args(args);
    run_cmd(&mut cmd, timeout)
}
