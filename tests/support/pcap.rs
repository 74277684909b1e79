//! The steps `pcap_arp_icmp` and `pcap_lb` share: a Python script writes
//! the input pcap and a JSON manifest, rvsd runs on a `net_pcap` device
//! between the input and an output pcap, a Python judge (scapy, never
//! rvs's parser) prints a JSON verdict on the output, and every problem
//! found is reported at once.

use super::{python, CmdOutput, Rvsd, Stopped};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The `net_pcap0` device reading frames from `input` and writing what
/// rvsd sends to `output`.
pub fn device(input: &Path, output: &Path) -> String {
    format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    )
}

/// Runs `tests/pcap/<script> ARGS`, which writes the input pcap and the
/// manifest at `manifest`; asserts it succeeded, shows what it printed and
/// returns the manifest.
pub fn make_input(script: &str, args: &[&str], manifest: &Path) -> Value {
    let made = python(script, args, Duration::from_secs(60));
    assert!(made.success(), "{script} failed: {made}");
    eprint!("{}", made.stdout);
    serde_json::from_str(&std::fs::read_to_string(manifest).expect("read the manifest"))
        .expect("manifest is JSON")
}

/// Stops rvsd (SIGTERM, 20 s), asserting it did not have to be killed and
/// left the tx pcap at `output`; returns how it ended and its `stats:`.
pub fn stop(mut rvsd: Rvsd, output: &Path) -> (Stopped, Value) {
    let stopped = rvsd.stop(Duration::from_secs(20));
    assert!(
        !stopped.killed,
        "rvsd did not stop on SIGTERM\n{}",
        stopped.log
    );
    let stats = stopped.stats();
    assert!(
        output.exists(),
        "rvsd left no tx pcap at {}\n--- rvsd log ---\n{}",
        output.display(),
        stopped.log
    );
    (stopped, stats)
}

/// Runs the judge `tests/pcap/<script> ARGS`, shows its stderr and returns
/// its output and its JSON verdict; panics (with `rvsd_log`) when it
/// printed none.
pub fn judge(script: &str, args: &[&str], rvsd_log: &str) -> (CmdOutput, Value) {
    let judged = python(script, args, Duration::from_secs(60));
    eprint!("{}", judged.stderr);
    let verdict = serde_json::from_str(judged.stdout.trim()).unwrap_or_else(|e| {
        panic!("{script} printed no JSON verdict ({e}): {judged}\n--- rvsd log ---\n{rvsd_log}")
    });
    (judged, verdict)
}

/// Adds the judge's own problems to `problems` when its verdict is not ok
/// or it failed (and says why when it listed none).
pub fn add_judge_problems(verdict: &Value, judged: &CmdOutput, problems: &mut Vec<String>) {
    if verdict["ok"] == true && judged.success() {
        return;
    }
    for p in verdict["problems"].as_array().into_iter().flatten() {
        problems.push(format!("judge: {}", p.as_str().unwrap_or("?")));
    }
    if judged.success() {
        problems.push("judge: verdict not ok but exit status 0".into());
    } else if verdict["problems"].as_array().is_none_or(|p| p.is_empty()) {
        problems.push(format!("judge failed: {judged}"));
    }
}

/// Panics listing every problem, with rvsd's stats and log, unless there
/// is none.
pub fn assert_no_problems(problems: &[String], stats: &Value, rvsd_log: &str) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n--- stats ---\n{}\n--- rvsd log ---\n{}",
        problems.len(),
        problems.join("\n  "),
        serde_json::to_string_pretty(stats).unwrap_or_default(),
        rvsd_log
    );
}
