//! rvsadm: the operator's tool, in the spirit of ipvsadm. Talks to a
//! running rvsd over its control socket; formatting for people lives in
//! `rvs::control::adm`, so it is unit-tested.
#![deny(unsafe_code)]

use rvs::control::adm;
use rvs::control::socket;
use rvs::control::Config;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: rvsadm [--socket PATH | --config FILE] [--json] COMMAND
commands:
  list, -Ln                            virtual and real servers (like ipvsadm -Ln)
  stats                                per-worker packet counters and drops
  conns [--limit N]                    connections (default 100)
  weight VIP:PORT/PROTO RIP:PORT N     set a real server's weight (0 drains)
  reload                               re-read rvsd's config file
  ha master|backup|status              high availability role
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
        [] => return usage_error("a command is needed"),
        other => return usage_error(&format!("unknown command {:?}", other.join(" "))),
    };
    let path = match (socket_path, config) {
        (Some(p), _) => p,
        (None, Some(file)) => match Config::load(&file) {
            Ok(c) => c.control.socket,
            Err(e) => {
                eprintln!("rvsadm: {}: {e}", file.display());
                return ExitCode::from(1);
            }
        },
        (None, None) => PathBuf::from(rvs::control::ControlConfig::DEFAULT_SOCKET),
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
        _ => print!("{}", adm::format_ok(&answer)),
    }
    ExitCode::SUCCESS
}
