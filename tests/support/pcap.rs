//! The steps `pcap_arp_icmp` and `pcap_lb` share: a Python script writes
//! the input pcap and a JSON manifest, rvsd runs on a `net_pcap` device
//! between the input and an output pcap, a Python judge (scapy, never
//! rvs's parser) prints a JSON verdict on the output, and every problem
//! found is reported at once.

use super::{python, CmdOutput, Rvsd, Stopped};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// What [`run_table`] saw: rvsd's `stats:`, the judge's verdict and every
/// problem found (exit status, the counters the verdict expects, drops it
/// does not know, the worker count, the judge's own), and rvsd's log.
pub struct TableRun {
    pub stats: Value,
    pub verdict: Value,
    pub problems: Vec<String>,
    pub log: String,
}

impl TableRun {
    /// Adds a problem for each `total.<name>` counter of rvsd's stats that
    /// is not the number wanted.
    pub fn expect_totals(&mut self, want: &[(&str, u64)]) {
        for &(name, want) in want {
            match self.stats["total"][name].as_u64() {
                Some(got) if got == want => {}
                got => self
                    .problems
                    .push(format!("stats total.{name}: got {got:?}, expected {want}")),
            }
        }
    }

    /// Prints the frames in and out of the run named `what` and its time
    /// since `started`, then fails the test with every problem found.
    pub fn finish(self, what: &str, started: Instant) {
        eprintln!(
            "pcap {what} test: {} frames in, {} out, {:.1} s",
            self.verdict["input_frames"],
            self.verdict["output_frames"],
            started.elapsed().as_secs_f64()
        );
        assert_no_problems(&self.problems, &self.stats, &self.log);
    }
}

/// The whole run of a table of packet cases judged by `tests/pcap/<script>`
/// (lb_judge.py's `make` / `judge` interface): the input, manifest and
/// config fragment made, rvsd (one worker, one `net_pcap` port, a control
/// socket) run over the input until its worker has taken every frame,
/// stopped, its output judged, and the counters compared with the ones the
/// verdict expects. The caller adds its own checks to `problems`, then
/// calls [`assert_no_problems`].
pub fn run_table(script: &str, name: &str) -> TableRun {
    let dir = super::TempDir::new(name);
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let manifest_path = dir.join("manifest.json");
    let fragment_path = dir.join("services.toml");
    let manifest = make_input(
        script,
        &[
            "make",
            input.to_str().unwrap(),
            manifest_path.to_str().unwrap(),
            fragment_path.to_str().unwrap(),
        ],
        &manifest_path,
    );
    let addresses: Vec<&str> = manifest["addresses"]
        .as_array()
        .expect("manifest addresses")
        .iter()
        .map(|a| a.as_str().expect("address"))
        .collect();
    let mac = manifest["mac"].as_str().expect("manifest mac");

    let mut config = super::single_port_config(&device(&input, &output), &addresses, Some(mac));
    let socket = dir.join("rvsd.sock");
    config.push_str(&format!(
        "\n[control]\nsocket = {}\n\n",
        super::toml_str(socket.to_str().unwrap())
    ));
    config.push_str(&std::fs::read_to_string(&fragment_path).expect("read the config fragment"));
    let config = dir.write("rvsd.toml", &config);
    let checked = super::run(
        super::RVSD,
        &["--config", config.to_str().unwrap(), "--check"],
        Duration::from_secs(20),
    );
    assert!(
        checked.success(),
        "rvsd --check refuses the test's config: {checked}\n--- config ---\n{}",
        std::fs::read_to_string(&config).unwrap_or_default()
    );

    let mut rvsd = Rvsd::start(&config, None);
    rvsd.wait_ready(Duration::from_secs(30));
    // net_pcap delivers the whole rx file at once; wait until the worker
    // has taken every frame, then stop: the tx file is complete when rvsd
    // closes the port.
    let frames = manifest["frames"].as_array().map_or(0, |f| f.len() as u64);
    let all_taken = wait_for_rx(&socket, frames, Duration::from_secs(10));
    let (stopped, stats) = stop(rvsd, &output);
    let (judged, verdict) = judge(
        script,
        &["judge", input.to_str().unwrap(), output.to_str().unwrap()],
        &stopped.log,
    );

    let mut problems: Vec<String> = Vec::new();
    if !all_taken {
        problems.push(format!(
            "rvsadm stats never showed all {frames} input frames received within 10 s"
        ));
    }
    if stopped.status.code() != Some(0) {
        problems.push(format!(
            "rvsd exit status: got {:?}, expected 0",
            stopped.status
        ));
    }
    let expect = verdict["expect_stats"]
        .as_array()
        .unwrap_or_else(|| panic!("the verdict has no expect_stats: {verdict}"));
    for e in expect {
        let pointer = e["pointer"].as_str().expect("pointer");
        let want = e["want"].as_u64().expect("want");
        // A count that depends on timing: at most `want`.
        let at_most = e["at_most"].as_bool().unwrap_or(false);
        match stats.pointer(pointer).and_then(Value::as_u64) {
            Some(got) if got == want || (at_most && got <= want) => {}
            Some(got) => problems.push(format!(
                "stats {pointer}: got {got}, expected {want} ({})",
                e["why"].as_str().unwrap_or("")
            )),
            None => problems.push(format!("stats have no count at {pointer}")),
        }
    }
    // Drop reasons the judge does not know must stay at zero.
    if let Some(drops) = stats["total"]["drops"].as_object() {
        for (reason, n) in drops {
            let known = expect
                .iter()
                .any(|e| e["pointer"] == format!("/total/drops/{reason}"));
            if !known && n.as_u64() != Some(0) {
                problems.push(format!("stats /total/drops/{reason}: got {n}, expected 0"));
            }
        }
    } else {
        problems.push("stats have no total.drops".into());
    }
    match stats["workers"].as_array() {
        Some(w) if w.len() == 1 => {}
        _ => problems.push(format!(
            "expected one worker in the stats: {}",
            stats["workers"]
        )),
    }
    add_judge_problems(&verdict, &judged, &mut problems);
    TableRun {
        stats,
        verdict,
        problems,
        log: stopped.log,
    }
}

/// Polls `rvsadm stats` until the worker has received `frames` frames
/// (and published its counters), or `timeout` passes; then a little more
/// for the last burst's transmit. Returns whether the count was reached.
pub fn wait_for_rx(socket: &Path, frames: u64, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    let socket = socket.to_str().unwrap();
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        let out = super::run(
            env!("CARGO_BIN_EXE_rvsadm"),
            &["--socket", socket, "--json", "stats"],
            Duration::from_secs(5),
        );
        if out.success() {
            let rx = serde_json::from_str::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v.pointer("/total/rx_packets").and_then(Value::as_u64));
            if rx.is_some_and(|rx| rx >= frames) {
                std::thread::sleep(Duration::from_millis(50));
                return true;
            }
        }
        last = out.to_string();
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("the worker did not report {frames} frames received in time; last rvsadm: {last}");
    false
}
