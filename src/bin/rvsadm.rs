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
  list, -Ln      virtual and real servers (like ipvsadm -Ln)
  stats          per-worker packet counters and drops
options:
  --socket PATH  rvsd's control socket (default: control.socket of --config,
                 else /run/rvs/rvsd.sock)
  --config FILE  read the socket path from rvsd's config
  --json         print the JSON document instead of a table";

/// How long rvsadm waits for rvsd.
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let mut socket_path: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut as_json = false;
    let mut command: Option<String> = None;
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
            "list" | "-Ln" | "-L" | "stats" if command.is_none() => command = Some(a),
            _ => {
                eprintln!("rvsadm: unexpected argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(command) = command else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
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
    let cmd = match command.as_str() {
        "stats" => "stats",
        _ => "list",
    };
    let answer = match socket::ask(&path, &json!({ "cmd": cmd }), TIMEOUT) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rvsadm: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(err) = answer.get("error") {
        eprintln!("rvsadm: rvsd says: {err}");
        return ExitCode::from(1);
    }
    if as_json {
        println!("{answer}");
    } else if cmd == "stats" {
        print!("{}", adm::format_stats(&answer));
    } else {
        print!("{}", adm::format_list(&answer));
    }
    ExitCode::SUCCESS
}
