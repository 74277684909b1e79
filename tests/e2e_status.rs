#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! What operators watch, against a running rvsd (issue 16): the status
//! page rendered by headless Chromium, and `rvsadm top` under tmux.
//!
//! The topology is the NAT one with a management link
//! (`Topology::nat_with_management`: health checks leave from the lb
//! namespace's kernel), three nginx real servers at weights 3, 1, 1 with
//! TCP health checks, the third one killed so the page shows a server
//! down with its reason, and a steady client load so rates and
//! connections are not zero. rvsd's `metrics_listen` is on the lb
//! namespace's loopback: Chromium runs there (`ip netns exec`).
//!
//! The figures are printed past the output capture:
//! `cargo test --test e2e_status 2>&1 | grep RESULT`.

mod netns;
mod support;

use netns::{
    heavy, listed_real_servers, result_line, stop_rvsd, Service, Topology, HTTP_PORT, VIP,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};
use support::Rvsd;

/// Health checks: fast, so the killed server is down within a second or two.
const INTERVAL_MS: u64 = 500;
const TIMEOUT_MS: u64 = 300;
/// The client load: 2 loops, a request every 50 ms each.
const LOAD_THREADS: u32 = 2;
const LOAD_INTERVAL: Duration = Duration::from_millis(50);
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
const LOAD_MAX: Duration = Duration::from_secs(90);
/// Chromium's start and render, bounded.
const CHROMIUM: Duration = Duration::from_secs(90);

fn metrics_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    21000 + (std::process::id() % 20000) as u16 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The topology, rvsd with `web` (wrr 3/1/1, TCP checks), the third real
/// server's nginx killed and marked down, and a client load running.
fn running(topo: &mut Topology) -> (Rvsd, netns::ClientLoad) {
    let mut s = Service::nat("web", &format!("{VIP}:80"), "tcp", "wrr")
        .health_check(Some("tcp"))
        .health_timing(INTERVAL_MS, TIMEOUT_MS, 2, 2);
    for (rs, w) in topo.real_servers.iter().zip([3, 1, 1]) {
        s = s.real(rs.addr(HTTP_PORT), w);
    }
    let rvsd = topo.start_rvsd(1, &[s]);
    let victim = topo.real_servers[2].addr(HTTP_PORT);
    topo.kill_http(2);
    let down = format!("real server {victim} (web) is down");
    assert!(
        rvsd.wait_for_log(&down, Duration::from_secs(10)),
        "rs3 not marked down\n--- rvsd log ---\n{}",
        rvsd.log()
    );
    let load = topo.start_load(LOAD_THREADS, LOAD_INTERVAL, LOAD_TIMEOUT, LOAD_MAX);
    (rvsd, load)
}

fn topology() -> Topology {
    support::require_root("e2e_status");
    assert!(
        netns::have("nginx"),
        "this test kills an nginx real server: install nginx (scripts/setup)"
    );
    let mut topo = Topology::nat_with_management(3);
    topo.metrics_listen = Some(format!("127.0.0.1:{}", metrics_port()));
    topo
}

/// The figures of one real server that the page and `rvsadm list` share.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Figures {
    address: String,
    weight: u64,
    health: String,
    active: u64,
    inactive: u64,
    conns: u64,
}

fn from_list(list: &serde_json::Value) -> Vec<Figures> {
    listed_real_servers(list, "web")
        .iter()
        .map(|rs| Figures {
            address: rs["address"].as_str().unwrap_or("").to_string(),
            weight: rs["weight"].as_u64().unwrap_or(u64::MAX),
            health: rs["health"].as_str().unwrap_or("").to_string(),
            active: rs["active_conns"].as_u64().unwrap_or(u64::MAX),
            inactive: rs["inactive_conns"].as_u64().unwrap_or(u64::MAX),
            conns: rs["conns"].as_u64().unwrap_or(u64::MAX),
        })
        .collect()
}

/// The text of the first element whose opening tag contains `marker`.
fn cell<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &html[html.find(marker)?..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(&rest[start..end])
}

/// The row of real server `addr` in the page's DOM.
fn row<'a>(dom: &'a str, addr: &str) -> Option<&'a str> {
    let at = dom.find(&format!("data-address=\"{addr}\""))?;
    let end = dom[at..].find("</tr>")? + at;
    Some(&dom[at..end])
}

/// The figures of real server `addr` as the page shows them.
fn from_page(dom: &str, addr: &str) -> Result<Figures, String> {
    let row = row(dom, addr).ok_or_else(|| format!("no row for {addr}"))?;
    let num = |class: &str| -> Result<u64, String> {
        cell(row, &format!("class=\"{class}\""))
            .ok_or_else(|| format!("{addr}: no {class} cell"))?
            .trim()
            .parse()
            .map_err(|e| format!("{addr}: {class}: {e}"))
    };
    let health = if row.contains("class=\"l up\"") {
        "up"
    } else if row.contains("class=\"l down\"") {
        "down"
    } else {
        return Err(format!("{addr}: no health cell"));
    };
    Ok(Figures {
        address: addr.to_string(),
        weight: num("weight")?,
        health: health.to_string(),
        active: num("active")?,
        inactive: num("inactive")?,
        conns: num("conns")?,
    })
}

/// `chromium --headless` in the lb namespace with `args` and then `url`.
fn chromium(topo: &Topology, profile: &std::path::Path, args: &[&str], url: &str) -> String {
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let mut all = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        profile_arg.as_str(),
    ];
    all.extend_from_slice(args);
    all.push(url);
    let out = topo.lb.run("chromium", &all, CHROMIUM);
    assert!(out.success(), "chromium {args:?} {url}: {out}");
    out.stdout
}

#[test]
fn the_status_page_renders_in_chromium_and_agrees_with_rvsadm() {
    let _heavy = heavy();
    assert!(
        netns::have("chromium"),
        "this test renders the page in headless Chromium: install chromium (scripts/setup)"
    );
    let started = Instant::now();
    let mut topo = topology();
    let (rvsd, load) = running(&mut topo);
    let listen = topo.metrics_listen.clone().unwrap();
    let url = format!("http://{listen}/");
    let profile = topo.dir.join("chromium-profile");

    // A first look seeds the page's rates; the load runs meanwhile.
    let first = topo.lb.run(
        "curl",
        &[
            "-sS",
            "-f",
            "-m",
            "5",
            &format!("http://{listen}/status.json"),
        ],
        Duration::from_secs(10),
    );
    assert!(first.success(), "GET /status.json: {first}");
    std::thread::sleep(Duration::from_millis(2500));

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let shot_arg = format!("--screenshot={}", shot.display());
    chromium(
        &topo,
        &profile,
        &[&shot_arg, "--window-size=1280,900"],
        &url,
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "chromium wrote no screenshot at {} ({} bytes)",
        shot.display(),
        png.len()
    );
    // The rates while the load ran, as the page's JSON twin saw them.
    let json_out = topo.lb.run(
        "curl",
        &[
            "-sS",
            "-f",
            "-m",
            "5",
            &format!("http://{listen}/status.json"),
        ],
        Duration::from_secs(10),
    );
    assert!(json_out.success(), "GET /status.json: {json_out}");
    let status: serde_json::Value = serde_json::from_str(json_out.stdout.trim()).unwrap();
    let vs_cps = status["virtual_servers"][0]["conns_per_s"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        vs_cps > 1.0,
        "new connections per second under load: {status}"
    );

    let requests = load.stop();
    assert!(
        requests.iter().filter(|r| r.ok).count() > 20,
        "the load ran"
    );

    // Connections settle once the load stopped; compare when two lists
    // around Chromium's reading agree.
    let mut compared = None;
    let mut last = String::new();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        let before = from_list(&topo.rvsadm_list());
        let dom = chromium(&topo, &profile, &["--dump-dom"], &url);
        let after = from_list(&topo.rvsadm_list());
        if before != after {
            last = format!("rvsadm list moved: {before:?} -> {after:?}");
            continue;
        }
        let page: Result<Vec<Figures>, String> =
            before.iter().map(|f| from_page(&dom, &f.address)).collect();
        match page {
            Ok(page) if page == before => {
                compared = Some((before, dom));
                break;
            }
            Ok(page) => last = format!("page {page:?}\nrvsadm {before:?}"),
            Err(e) => last = format!("{e}\n--- DOM ---\n{dom}"),
        }
    }
    let (figures, dom) =
        compared.unwrap_or_else(|| panic!("the page never agreed with rvsadm list: {last}"));
    assert_eq!(figures.len(), 3, "{figures:?}");
    assert_eq!(
        figures.iter().map(|f| f.weight).collect::<Vec<_>>(),
        [3, 1, 1]
    );
    assert_eq!(
        figures
            .iter()
            .map(|f| f.health.as_str())
            .collect::<Vec<_>>(),
        ["up", "up", "down"]
    );
    assert!(figures[0].conns > 0 && figures[1].conns > 0, "{figures:?}");
    // The killed server's row gives the reason of its last change.
    let victim = row(&dom, &figures[2].address).unwrap();
    assert!(
        victim.contains("Connection refused") && victim.contains("failures in a row"),
        "the reason rvsd logged: {victim}"
    );
    assert!(
        dom.contains("id=\"ha-role\">standalone<"),
        "HA role on the page"
    );
    assert!(
        dom.contains("data-reason=\"no_connection\""),
        "drops by reason"
    );
    let _ = stop_rvsd(rvsd);
    result_line(&format!(
        "status_page screenshot={} compared=weight,health,active,inactive,conns of {} real \
         servers against rvsadm --json list: {} ; under load {vs_cps:.1} conn/s ({:.0} s)",
        shot.display(),
        figures.len(),
        figures
            .iter()
            .map(|f| format!(
                "{} w={} {} active={} inactive={} conns={}",
                f.address, f.weight, f.health, f.active, f.inactive, f.conns
            ))
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    ));
}

/// A tmux server of its own (`tmux -L NAME`), killed on drop.
struct Tmux {
    name: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            name: format!("rvs-top-{}", support::unique_token()),
        }
    }

    fn run(&self, args: &[&str]) -> support::CmdOutput {
        let mut all = vec!["-L", self.name.as_str()];
        all.extend_from_slice(args);
        support::run("tmux", &all, Duration::from_secs(10))
    }

    /// Starts session `name` running `command` (its words) detached, in
    /// a 160x50 terminal, and checks that tmux took it.
    fn start(&self, name: &str, command: &[&str]) {
        let mut args = vec!["new-session", "-d", "-s", name, "-x", "160", "-y", "50"];
        args.extend_from_slice(command);
        let out = self.run(&args);
        assert!(out.success(), "tmux new-session: {out}");
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"]).stdout
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "top"]).success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The columns of the screen line that starts (after spaces) with `start`.
fn line_cols(screen: &str, start: &str) -> Option<Vec<String>> {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .map(|l| l.split_whitespace().map(String::from).collect())
}

#[test]
fn rvsadm_top_under_tmux_shows_every_server_with_its_figures() {
    let _heavy = heavy();
    assert!(
        netns::have("tmux"),
        "this test runs rvsadm top in tmux: install tmux (scripts/setup)"
    );
    let started = Instant::now();
    let mut topo = topology();
    let (rvsd, load) = running(&mut topo);
    let sock = topo.socket_path();
    let tmux = Tmux::new();
    let command = top_command(&topo);
    tmux.start("top", &[&command]);

    // Wait for a frame with rates (the second one on).
    let vs_line = format!("TCP {VIP}:80 web");
    let deadline = Instant::now() + Duration::from_secs(15);
    let screen = loop {
        let screen = tmux.screen();
        let rated = line_cols(&screen, &vs_line)
            .and_then(|c| c.get(5).and_then(|x| x.parse::<f64>().ok()))
            .is_some_and(|cps| cps > 0.0);
        if rated {
            break screen;
        }
        assert!(
            Instant::now() < deadline && tmux.alive(),
            "no frame with rates from rvsadm top:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let list = topo.rvsadm_list();
    let listed = from_list(&list);
    assert!(screen.contains("HA: standalone"), "{screen}");
    assert!(screen.contains("q: quit"), "keys are read: {screen}");
    for f in &listed {
        let cols = line_cols(&screen, &format!("-> {}", f.address))
            .unwrap_or_else(|| panic!("no line for {}:\n{screen}", f.address));
        // -> ADDR WEIGHT HEALTH ACTIVE INACT CONN/S PKT/S-IN PKT/S-OUT
        assert_eq!(cols.len(), 9, "{cols:?}");
        assert_eq!(cols[2], f.weight.to_string(), "weight of {}", f.address);
        assert_eq!(cols[3], f.health, "health of {}", f.address);
        for c in &cols[4..9] {
            assert!(c.parse::<f64>().is_ok(), "a figure: {c:?} in {cols:?}");
        }
        if f.health == "up" {
            let cps: f64 = cols[6].parse().unwrap();
            assert!(cps > 0.0, "{} takes new connections: {cols:?}", f.address);
        } else {
            assert_eq!(cols[6], "0.0", "a down server takes none: {cols:?}");
        }
    }
    let vs_cols = line_cols(&screen, &vs_line).unwrap();
    let capture = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rvsadm-top.txt");
    let _ = std::fs::write(&capture, &screen);

    // `--once` prints one frame (rates over one interval) and exits.
    let once = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(["--socket", &sock.display().to_string(), "top", "--once"])
        .args(["--interval", "500"])
        .output()
        .expect("run rvsadm top --once");
    let text = String::from_utf8_lossy(&once.stdout);
    assert!(once.status.success(), "rvsadm top --once: {text}");
    assert!(text.contains(&vs_line), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no terminal codes in --once: {text:?}"
    );

    drop(load);
    let _ = stop_rvsd(rvsd);
    result_line(&format!(
        "rvsadm_top tmux 160x50 screen={}: {vs_line} conn/s {} pkt/s in {} out {}; {} real \
         servers matched rvsadm list (weight, health) ({:.0} s)",
        capture.display(),
        vs_cols[5],
        vs_cols[6],
        vs_cols[7],
        listed.len(),
        started.elapsed().as_secs_f64()
    ));
}

/// `rvsadm --socket SOCK top --interval 500`, as a shell command.
fn top_command(topo: &Topology) -> String {
    format!(
        "{} --socket {} top --interval 500",
        env!("CARGO_BIN_EXE_rvsadm"),
        topo.socket_path().display()
    )
}

#[test]
fn rvsadm_top_quits_on_q_and_on_ctrl_c_restoring_the_terminal() {
    let _heavy = heavy();
    assert!(
        netns::have("tmux"),
        "this test runs rvsadm top in tmux: install tmux (scripts/setup)"
    );
    let started = Instant::now();
    let mut topo = topology();
    let (rvsd, load) = running(&mut topo);
    let command = top_command(&topo);
    let tmux = Tmux::new();
    tmux.start("top", &[&command]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tmux.screen().contains("q: quit") {
        assert!(
            Instant::now() < deadline && tmux.alive(),
            "no frame from rvsadm top:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // `q` quits, and the session (the command) ends.
    assert!(tmux.run(&["send-keys", "-t", "top", "q"]).success());
    let deadline = Instant::now() + Duration::from_secs(3);
    while tmux.alive() {
        assert!(
            Instant::now() < deadline,
            "rvsadm top did not quit on q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Ctrl-C quits too, and leaves the terminal as it was (canonical
    // mode, echo on): the shell around it reads `stty -a` afterwards.
    let after = topo.dir.join("stty-after-top.txt");
    let wrapped = format!(
        "trap true INT; {command}; stty -a > {}; sleep 30",
        after.display()
    );
    tmux.start("ctrlc", &["sh", "-c", &wrapped]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tmux
        .run(&["capture-pane", "-p", "-t", "ctrlc"])
        .stdout
        .contains("q: quit")
    {
        assert!(Instant::now() < deadline, "no frame in the second session");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tmux.run(&["send-keys", "-t", "ctrlc", "C-c"]).success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let stty = loop {
        let text = std::fs::read_to_string(&after).unwrap_or_default();
        if text.contains("echo") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "rvsadm top did not end on Ctrl-C:\n{}",
            tmux.run(&["capture-pane", "-p", "-t", "ctrlc"]).stdout
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let flags: Vec<&str> = stty.split_whitespace().collect();
    assert!(
        flags.contains(&"icanon") && flags.contains(&"echo"),
        "the terminal is restored after Ctrl-C: {stty}"
    );

    drop(load);
    let _ = stop_rvsd(rvsd);
    result_line(&format!(
        "rvsadm_top_keys: q and Ctrl-C quit the view, the terminal restored (icanon echo) ({:.0} s)",
        started.elapsed().as_secs_f64()
    ));
}
