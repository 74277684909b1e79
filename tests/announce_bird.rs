//! The announcer against real bird2 (issue 20, `control::announce`): two
//! network namespaces on a veth, a "router" bird2 and a "node" bird2 with
//! an eBGP session between them; the node's bird reads the include files
//! the announcer writes (`tests/netns/announce-node.conf`) and the router's
//! installs what it learns in its kernel table
//! (`tests/netns/announce-router.conf`).
//!
//! ```text
//!  node ns (bird2, the announcer, TUN "rvs-live")  --- veth ---  router ns (bird2, kernel table)
//!  10.99.0.2/24                                                  10.99.0.1/24
//! ```
//!
//! The announcer runs in a child process (this test binary again, its
//! ignored test `announcer_process`, started with `ip netns exec` in the
//! node namespace): the TUN interface must be made inside that namespace,
//! and a child can be killed with SIGKILL. The tests assert what the router's
//! kernel table shows, and print how long a withdrawal takes to reach it
//! (`RESULT announce withdraw_ms=...`). Needs root and bird2 (`bird`,
//! `birdc`): otherwise each test says it is skipped and passes. No DPDK.

use rvs::control::announce::{AnnounceSettings, Announcer, Inputs};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Set (to the scratch directory) in the announcer child's environment.
const HELPER_ENV: &str = "RVS_ANNOUNCE_HELPER_DIR";
/// How long BGP may take to bring a change to the router.
const CONVERGE: Duration = Duration::from_secs(30);
const VIP_A: &str = "192.0.2.10";
const VIP_B: &str = "192.0.2.11";
const VIP6: &str = "2001:db8::10";

// ------------------------------------------------------ the child process

/// The announcer's process. Reads commands from stdin, one a line, and
/// answers each with a `HELPER ...` line on stdout:
/// `tick VIP,VIP,...` (or `tick -`): a tick with those VIPs healthy,
/// forwarding and joined; `drain on|off`; `drop`: drops the announcer
/// (the liveness interface goes with it). Does nothing without
/// `RVS_ANNOUNCE_HELPER_DIR`.
#[test]
#[ignore = "the announcer child process the other tests start"]
fn announcer_process() {
    let Ok(dir) = std::env::var(HELPER_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut announcer = Some(Announcer::start(settings(&dir)).expect("announcer starts"));
    println!("HELPER ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        match (words.as_slice(), announcer.as_mut()) {
            (["tick", vips], Some(a)) => a.tick(
                &Inputs {
                    healthy: vips
                        .split(',')
                        .filter(|v| *v != "-")
                        .map(|v| v.parse::<IpAddr>().expect("a VIP"))
                        .collect(),
                    forwarding: true,
                    joined: true,
                },
                Instant::now(),
            ),
            (["drain", on], Some(a)) => {
                a.set_drained(*on == "on");
            }
            (["drop"], _) => announcer = None,
            _ => panic!("bad command {line:?}"),
        }
        match &announcer {
            Some(a) => println!("HELPER {}", a.status().to_json(0)),
            None => println!("HELPER dropped"),
        }
        let _ = std::io::stdout().flush();
    }
}

fn settings(dir: &Path) -> AnnounceSettings {
    AnnounceSettings {
        enabled: true,
        bird_socket: dir.join("node.ctl"),
        include_v4: dir.join("bird-vips.conf"),
        include_v6: dir.join("bird-vips6.conf"),
        liveness_interface: "rvs-live".into(),
    }
}

/// The announcer child, seen from the test.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Helper {
    fn start(ns: &str, dir: &Path) -> Helper {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .args([
                "--exact",
                "announcer_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ip netns exec");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may print `test announcer_process ... `
                // before the first line, on the same line.
                if let Some(at) = line.find("HELPER ") {
                    if tx.send(line[at + 7..].to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        let mut h = Helper {
            child,
            stdin,
            lines,
        };
        assert_eq!(h.next(), "ready");
        h
    }

    fn next(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the announcer child answers")
    }

    /// Sends `command`, returns the answer (the status JSON or `dropped`).
    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("to the child");
        self.next()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------ topology

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<&'static str> {
    if !is_root() {
        Some("needs root (network namespaces, a TUN interface)")
    } else if !Path::new("/dev/net/tun").exists() {
        Some("needs /dev/net/tun (the tun module)")
    } else if !have("bird") || !have("birdc") {
        Some("needs bird2 (bird, birdc)")
    } else {
        None
    }
}

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").args(["-c", cmd]).output().expect("sh")
}

fn sh_ok(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The two namespaces, their birds and the scratch directory; all removed
/// on drop.
struct Topology {
    router: String,
    node: String,
    dir: PathBuf,
    birds: Vec<Child>,
}

impl Topology {
    /// Namespaces `rva<pid><tag>r` and `...n` on a veth, with a bird2 in
    /// each, started before the announcer ever ran (no include file yet).
    fn new(tag: char) -> Topology {
        remove_stale();
        let id = format!("rva{}{tag}", std::process::id());
        let dir = std::env::temp_dir().join(format!("rvs-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t = Topology {
            router: format!("{id}r"),
            node: format!("{id}n"),
            dir,
            birds: Vec::new(),
        };
        let (r, n) = (&t.router, &t.node);
        sh_ok(&format!(
            "ip netns add {r} && ip netns add {n} && \
             ip -n {r} link set lo up && ip -n {n} link set lo up && \
             ip link add {id}a netns {r} type veth peer name {id}b netns {n} && \
             ip -n {r} addr add 10.99.0.1/24 dev {id}a && ip -n {r} link set {id}a up && \
             ip -n {n} addr add 10.99.0.2/24 dev {id}b && ip -n {n} link set {id}b up"
        ));
        t
    }

    fn start_birds(&mut self) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/netns");
        for (ns, name) in [(self.router.clone(), "router"), (self.node.clone(), "node")] {
            let text = std::fs::read_to_string(root.join(format!("announce-{name}.conf")))
                .unwrap()
                .replace("@DIR@", self.dir.to_str().unwrap());
            let conf = self.dir.join(format!("{name}.conf"));
            std::fs::write(&conf, text).unwrap();
            let ctl = self.dir.join(format!("{name}.ctl"));
            let bird = Command::new("ip")
                .args(["netns", "exec", &ns, "bird", "-f", "-c"])
                .arg(&conf)
                .arg("-s")
                .arg(&ctl)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("bird");
            self.birds.push(bird);
            self.wait("bird's control socket", Duration::from_secs(10), || {
                self.birdc(name, "show status").contains("Daemon is up")
            });
        }
    }

    fn birdc(&self, which: &str, command: &str) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join(format!("{which}.ctl")))
            .args(command.split_whitespace())
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// True when the router's kernel has a route to `vip`.
    fn router_has(&self, vip: &str) -> bool {
        !sh_ok(&format!("ip -n {} -4 route show {vip}/32", self.router))
            .trim()
            .is_empty()
    }

    fn wait(&self, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "{what}: not after {timeout:?}\nnode bird:\n{}\nrouter bird:\n{}",
                std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default(),
                std::fs::read_to_string(self.dir.join("router.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_route(&self, vip: &str, present: bool) {
        self.wait(
            &format!(
                "route {vip} {}",
                if present { "at the router" } else { "gone" }
            ),
            CONVERGE,
            || self.router_has(vip) == present,
        );
    }

    /// Watches the router's routes (`ip monitor`) from now on: each line
    /// with the time it was read.
    fn monitor(&self) -> (Monitor, Receiver<(Instant, String)>) {
        let mut child = Command::new("ip")
            .args(["-n", &self.router, "monitor", "route"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ip monitor");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        // ip monitor is listening once it has started; give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        (Monitor(child), rx)
    }
}

/// A running `ip monitor`, killed on drop (it would hold the test's
/// output open).
struct Monitor(Child);

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for b in &mut self.birds {
            let _ = b.kill();
            let _ = b.wait();
        }
        let _ = sh(&format!(
            "ip netns del {} ; ip netns del {}",
            self.router, self.node
        ));
        if std::env::var_os("RVS_KEEP_TEST_FILES").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes namespaces `rva<pid>..` of test runs no longer alive.
fn remove_stale() {
    let list = sh("ip netns list");
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("rva") else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sh(&format!("ip netns del {name}"));
        }
    }
}

/// Waits for the router to delete its route to `vip` (seen on `monitor`)
/// and returns the time since `since`.
fn deleted_after(rx: &Receiver<(Instant, String)>, vip: &str, since: Instant) -> Duration {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, line) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the router never deleted {vip}"));
        if line.starts_with(&format!("Deleted {vip} ")) {
            return at.saturating_duration_since(since);
        }
    }
}

/// Writes `line` to stderr past the harness's capture, so passing tests
/// show it too (`cargo test ... 2>&1 | grep RESULT`).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

// --------------------------------------------------------------- tests

#[test]
fn the_router_learns_the_announced_set_and_loses_what_leaves_it() {
    if let Some(why) = skip_reason() {
        say(&format!("skipped: announce_bird {why}"));
        return;
    }
    let mut t = Topology::new('s');
    t.start_birds();
    // bird started before any include file existed.
    assert!(!t.dir.join("bird-vips.conf").exists());
    let mut a = Helper::start(&t.node, &t.dir);
    let status = a.ask(&format!("tick {VIP_A},{VIP6}"));
    assert!(status.contains("\"interface_up\":true"), "{status}");
    assert!(status.contains("0003"), "bird reconfigured: {status}");
    t.wait_route(VIP_A, true);
    // The IPv6 file is read too (this session carries IPv4 only).
    let v6 = t.birdc("node", "show route protocol rvs_vips6");
    assert!(v6.contains(&format!("{VIP6}/128")), "{v6}");

    // The set changes: A leaves, B joins.
    a.ask(&format!("tick {VIP_B}"));
    t.wait_route(VIP_B, true);
    t.wait_route(VIP_A, false);

    // Drain: the interface goes down and the files empty.
    let (_mon, rx) = t.monitor();
    let since = Instant::now();
    let status = a.ask("drain on");
    assert!(status.contains("\"state\":\"draining\""), "{status}");
    let status = a.ask(&format!("tick {VIP_B}"));
    assert!(status.contains("\"interface_up\":false"), "{status}");
    assert!(status.contains("\"announced\":[]"), "{status}");
    let took = deleted_after(&rx, VIP_B, since);
    say(&format!("RESULT announce withdraw_ms={} (drain)", ms(took)));
    assert!(!t.router_has(VIP_B));

    // Drain off: announced again.
    a.ask("drain off");
    a.ask(&format!("tick {VIP_B}"));
    t.wait_route(VIP_B, true);
}

#[test]
fn a_dead_announcer_is_withdrawn_without_a_timer() {
    if let Some(why) = skip_reason() {
        say(&format!("skipped: announce_bird {why}"));
        return;
    }
    let mut t = Topology::new('k');
    t.start_birds();

    // The handle dropped (what rvsd's exit does).
    let mut a = Helper::start(&t.node, &t.dir);
    a.ask(&format!("tick {VIP_A}"));
    t.wait_route(VIP_A, true);
    let (mon, rx) = t.monitor();
    let since = Instant::now();
    assert_eq!(a.ask("drop"), "dropped");
    let dropped = deleted_after(&rx, VIP_A, since);
    say(&format!(
        "RESULT announce withdraw_ms={} (handle dropped)",
        ms(dropped)
    ));
    drop(mon);
    drop(a);

    // kill -9 of the process holding the interface: the include file
    // still lists the VIP, yet the router loses it.
    let mut a = Helper::start(&t.node, &t.dir);
    a.ask(&format!("tick {VIP_A}"));
    t.wait_route(VIP_A, true);
    let (_mon, rx) = t.monitor();
    let since = Instant::now();
    a.child.kill().expect("SIGKILL");
    let killed = deleted_after(&rx, VIP_A, since);
    say(&format!(
        "RESULT announce withdraw_ms={} (kill -9)",
        ms(killed)
    ));
    let file = std::fs::read_to_string(t.dir.join("bird-vips.conf")).unwrap();
    assert!(file.contains(VIP_A), "{file}");
    assert!(!t.router_has(VIP_A));
    // Well under BGP's hold time (9 s): no timer was involved.
    assert!(killed < Duration::from_secs(2), "{killed:?}");
    assert!(dropped < Duration::from_secs(2), "{dropped:?}");
}
