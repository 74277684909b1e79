//! rvsadm: the operator's tool, in the spirit of ipvsadm. Talks to a
//! running rvsd over its control socket; formatting for people lives in
//! `rvs::control::adm`, so it is unit-tested.
#![deny(unsafe_code)]

use rvs::control::adm;
use rvs::control::socket;
use rvs::control::top::{self, Sample};
use rvs::control::Config;
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: rvsadm [--socket PATH | --config FILE] [--json] COMMAND
commands:
  list, -Ln                            virtual and real servers (like ipvsadm -Ln)
  stats                                per-worker packet counters and drops
  conns [--limit N]                    connections (default 100)
  weight VIP:PORT/PROTO RIP:PORT N     set a real server's weight (0 drains)
  reload                               re-read rvsd's config file
  ha master|backup|status              high availability role
  drain [off|status]                   withdraw every VIP from BGP while
                                       forwarding goes on (off: announce again;
                                       status: the state, the VIPs announced
                                       and the connections still carried here)
  announce status                      the VIPs announced, the liveness
                                       interface, bird2's last reply, failures
  top [--interval MS] [--once]         live view, redrawn every second (default
                                       1000 ms): rates per virtual and real
                                       server, connections, drops, HA role;
                                       q or Ctrl-C quits; --once prints one
                                       frame (rates over one interval) and exits
options:
  --socket PATH  rvsd's control socket (default: control.socket of --config,
                 else /run/rvs/rvsd.sock)
  --config FILE  read the socket path from rvsd's config
  --json         print the JSON document instead of a table";

/// How long rvsadm waits for rvsd (a reload may take a moment).
const TIMEOUT: Duration = Duration::from_secs(10);

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("rvsadm: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut socket_path: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut as_json = false;
    let mut words: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => socket_path = args.next().map(PathBuf::from),
            "--config" => config = args.next().map(PathBuf::from),
            "--json" => as_json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => words.push(a),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if words.first() == Some(&"top") {
        let options = match parse_top(&words[1..]) {
            Ok(o) => o,
            Err(msg) => return usage_error(&msg),
        };
        return match socket_of(socket_path, config) {
            Ok(path) => run_top(&path, &options),
            Err(code) => code,
        };
    }
    let request = match words.as_slice() {
        ["list"] | ["-Ln"] | ["-L", "-n"] | ["-L"] => json!({ "cmd": "list" }),
        ["stats"] => json!({ "cmd": "stats" }),
        ["conns"] => json!({ "cmd": "conns", "limit": 100 }),
        ["conns", "--limit", n] => match n.parse::<u64>() {
            Ok(n) => json!({ "cmd": "conns", "limit": n }),
            Err(_) => return usage_error("--limit takes a number"),
        },
        ["weight", service, real, n] => match n.parse::<u64>() {
            Ok(w) => {
                json!({ "cmd": "weight", "service": service, "real_server": real, "weight": w })
            }
            Err(_) => return usage_error("the weight is a number from 0 to 65535"),
        },
        ["reload"] => json!({ "cmd": "reload" }),
        ["ha", action @ ("master" | "backup" | "status")] => {
            json!({ "cmd": "ha", "action": action })
        }
        ["drain"] => json!({ "cmd": "drain", "action": "on" }),
        ["drain", action @ ("off" | "status")] => json!({ "cmd": "drain", "action": action }),
        ["announce", "status"] => json!({ "cmd": "announce", "action": "status" }),
        [] => return usage_error("a command is needed"),
        other => return usage_error(&format!("unknown command {:?}", other.join(" "))),
    };
    let path = match socket_of(socket_path, config) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let answer = match socket::ask(&path, &request, TIMEOUT) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rvsadm: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(err) = answer.get("error") {
        eprintln!(
            "rvsadm: {}",
            err.as_str().map_or_else(|| err.to_string(), String::from)
        );
        return ExitCode::from(1);
    }
    if as_json {
        println!("{answer}");
        return ExitCode::SUCCESS;
    }
    match request["cmd"].as_str() {
        Some("list") => print!("{}", adm::format_list(&answer)),
        Some("stats") => print!("{}", adm::format_stats(&answer)),
        Some("conns") => print!("{}", adm::format_conns(&answer)),
        Some("ha") if answer.get("role").is_some() => print!("{}", adm::format_ha(&answer)),
        Some("drain" | "announce") => print!("{}", adm::format_announce(&answer)),
        _ => print!("{}", adm::format_ok(&answer)),
    }
    ExitCode::SUCCESS
}

/// The control socket: `--socket`, else `control.socket` of `--config`,
/// else the default.
fn socket_of(socket_path: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    match (socket_path, config) {
        (Some(p), _) => Ok(p),
        (None, Some(file)) => match Config::load(&file) {
            Ok(c) => Ok(c.control.socket),
            Err(e) => {
                eprintln!("rvsadm: {}: {e}", file.display());
                Err(ExitCode::from(1))
            }
        },
        (None, None) => Ok(PathBuf::from(rvs::control::ControlConfig::DEFAULT_SOCKET)),
    }
}

// ------------------------------------------------------------ top
//
// Keys without a C dependency and without `unsafe` (only `src/dpdk/` may
// use it): the terminal goes to non-canonical mode without echo through
// `stty` (saved with `stty -g` and restored on the way out), a thread
// reads stdin byte by byte, and SIGINT (Ctrl-C: `stty` leaves `isig` on)
// sets a flag the loop checks, so the terminal is restored however the
// view ends. Without a terminal on stdin (a pipe, a script) the view runs
// until SIGINT or SIGTERM.

/// `rvsadm top`'s options.
struct TopOptions {
    interval: Duration,
    once: bool,
}

fn parse_top(args: &[&str]) -> Result<TopOptions, String> {
    let mut o = TopOptions {
        interval: Duration::from_secs(1),
        once: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--once" => o.once = true,
            "--interval" => match it.next().and_then(|n| n.parse::<u64>().ok()) {
                Some(ms) if ms >= 100 => o.interval = Duration::from_millis(ms),
                _ => return Err("--interval takes milliseconds, at least 100".into()),
            },
            other => return Err(format!("top: unknown option {other:?}")),
        }
    }
    Ok(o)
}

/// Asks rvsd for one sample.
fn sample(path: &Path) -> Result<Sample, String> {
    let ask = |req: Value| -> Result<Value, String> {
        let v = socket::ask(path, &req, TIMEOUT).map_err(|e| e.to_string())?;
        match v.get("error") {
            Some(e) => Err(e.as_str().map_or_else(|| e.to_string(), String::from)),
            None => Ok(v),
        }
    };
    Ok(Sample {
        list: ask(json!({ "cmd": "list" }))?,
        stats: ask(json!({ "cmd": "stats" }))?,
        ha: ask(json!({ "cmd": "ha", "action": "status" }))?,
    })
}

/// The terminal in non-canonical, no-echo mode until dropped.
struct RawTerminal {
    saved: String,
}

impl RawTerminal {
    /// `None` when stdin is no terminal or `stty` fails.
    fn enter() -> Option<RawTerminal> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        let out = Command::new("stty")
            .arg("-g")
            .stdin(Stdio::inherit())
            .output()
            .ok()?;
        let saved = String::from_utf8(out.stdout).ok()?.trim().to_string();
        let ok = Command::new("stty")
            .args(["-icanon", "-echo", "min", "1"])
            .stdin(Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = Command::new("stty")
            .arg(&self.saved)
            .stdin(Stdio::inherit())
            .status();
    }
}

fn run_top(path: &Path, options: &TopOptions) -> ExitCode {
    let title = |every: Duration| {
        format!(
            "rvsadm top  {}  every {:.1} s",
            path.display(),
            every.as_secs_f64()
        )
    };
    if options.once {
        let first = match sample(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rvsadm: {e}");
                return ExitCode::from(1);
            }
        };
        let t0 = Instant::now();
        std::thread::sleep(options.interval);
        return match sample(path) {
            Ok(second) => {
                let secs = t0.elapsed().as_secs_f64();
                print!(
                    "{}",
                    top::frame(&title(options.interval), Some((&first, secs)), &second)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvsadm: {e}");
                ExitCode::from(1)
            }
        };
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("rvsadm: cannot catch signal {sig}: {e}");
            return ExitCode::from(1);
        }
    }
    let raw = RawTerminal::enter();
    let (keys, key_rx) = mpsc::channel::<u8>();
    if raw.is_some() {
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut b = [0u8; 1];
            while let Ok(1) = stdin.read(&mut b) {
                if keys.send(b[0]).is_err() {
                    break;
                }
            }
        });
    }
    let mut out = std::io::stdout();
    // Hide the cursor while drawing.
    let _ = write!(out, "\x1b[?25l");
    let mut prev: Option<(Sample, Instant)> = None;
    'view: loop {
        let now = Instant::now();
        let screen = match sample(path) {
            Ok(cur) => {
                let text = top::frame(
                    &title(options.interval),
                    prev.as_ref()
                        .map(|(s, t)| (s, now.duration_since(*t).as_secs_f64())),
                    &cur,
                );
                prev = Some((cur, now));
                text
            }
            Err(e) => format!("{}\n\nrvsd does not answer: {e}\n", title(options.interval)),
        };
        // Home, clear, draw; raw mode needs \r\n line ends.
        let _ = write!(
            out,
            "\x1b[H\x1b[2J{}{}",
            screen.replace('\n', "\r\n"),
            if raw.is_some() { "\r\nq: quit" } else { "" }
        );
        let _ = out.flush();
        let deadline = now + options.interval;
        while Instant::now() < deadline {
            if stop.load(Ordering::Relaxed) {
                break 'view;
            }
            match key_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(b'q' | b'Q' | 3) => break 'view,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                // No key reader (stdin is no terminal): signals only.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
            }
        }
    }
    let _ = write!(out, "\x1b[?25h\r\n");
    let _ = out.flush();
    drop(raw);
    ExitCode::SUCCESS
}
