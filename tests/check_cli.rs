#![cfg(feature = "dpdk")]
//! `rvsd --check` and rvsd's exit statuses: 0 valid, 1 bad config (one line
//! per problem naming the field), 2 a device that cannot be started.
#![deny(unsafe_code)]

mod support;

use std::process::Command;
use std::time::Duration;
use support::{run_cmd, CmdOutput, TempDir, RVSD};

const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

fn rvsd(args: &[&str]) -> CmdOutput {
    run_cmd(Command::new(RVSD).args(args), CHECK_TIMEOUT)
}

fn check(config: &std::path::Path) -> CmdOutput {
    run_cmd(
        Command::new(RVSD)
            .arg("--config")
            .arg(config)
            .arg("--check"),
        CHECK_TIMEOUT,
    )
}

fn code(out: &CmdOutput) -> i32 {
    out.status
        .and_then(|s| s.code())
        .unwrap_or_else(|| panic!("no exit code: {out}"))
}

/// The `rvsd: error:` lines of stderr.
fn error_lines(out: &CmdOutput) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("rvsd: error:"))
        .collect()
}

const GOOD: &str = r#"
[dpdk]
eal_args = ["-l", "0-1", "--no-huge", "--no-shconf", "-m", "256"]
workers = [1]

[dataplane]
burst_size = 32
conn_table_size = 1024
idle_sleep_us = 100

[[interface]]
name = "t0"
device = "net_pcap0,rx_pcap=/nonexistent/in.pcap,tx_pcap=/nonexistent/out.pcap"
addresses = ["192.0.2.1/24"]
mac = "02:00:00:00:00:01"
"#;

/// Both balancers of `scripts/demo` (A: demo.toml, B: demo-backup.toml).
#[test]
fn demo_configs_are_valid() {
    for name in ["demo.toml", "demo-backup.toml"] {
        let demo = support::repo_root().join("dpdk-config").join(name);
        let out = check(&demo);
        assert_eq!(code(&out), 0, "{name}: {out}");
        assert!(out.stderr.contains("valid"), "{name}: {out}");
    }
}

#[test]
fn pci_example_config_is_valid() {
    let pci = support::repo_root().join("dpdk-config/pci-example.toml");
    let out = check(&pci);
    assert_eq!(code(&out), 0, "{out}");
}

#[test]
fn check_does_not_start_dpdk() {
    // The device could not start (its pcap does not exist), but --check
    // only validates the file: exit 0 and no word from the EAL.
    let dir = TempDir::new("check");
    let out = check(&dir.write("good.toml", GOOD));
    assert_eq!(code(&out), 0, "{out}");
    assert!(
        !out.stderr.contains("EAL:") && !out.stdout.contains("EAL:"),
        "--check started the EAL: {out}"
    );
}

#[test]
fn unknown_key_is_rejected_naming_it() {
    let dir = TempDir::new("check");
    let text = GOOD.replace("workers = [1]", "workers = [1]\nbogus_knob = 3");
    let out = check(&dir.write("unknown.toml", &text));
    assert_eq!(code(&out), 1, "{out}");
    let errors = error_lines(&out);
    assert!(
        errors.iter().any(|l| l.contains("bogus_knob")),
        "no error line names `bogus_knob`: {out}"
    );
}

#[test]
fn bad_address_is_rejected_naming_the_field() {
    let dir = TempDir::new("check");
    let text = GOOD.replace("192.0.2.1/24", "192.0.2.300/24");
    let out = check(&dir.write("badaddr.toml", &text));
    assert_eq!(code(&out), 1, "{out}");
    let errors = error_lines(&out);
    assert!(
        errors
            .iter()
            .any(|l| l.contains("interface[0].addresses") && l.contains("192.0.2.300")),
        "no error line names interface[0].addresses and the bad value: {out}"
    );
}

#[test]
fn every_problem_gets_its_own_line() {
    let dir = TempDir::new("check");
    let text = GOOD
        .replace("192.0.2.1/24", "192.0.2.300/24")
        .replace("02:00:00:00:00:01", "01:00:5e:00:00:01")
        .replace("burst_size = 32", "burst_size = 0");
    let out = check(&dir.write("several.toml", &text));
    assert_eq!(code(&out), 1, "{out}");
    let errors = error_lines(&out);
    for field in [
        "interface[0].addresses",
        "interface[0].mac",
        "dataplane.burst_size",
    ] {
        assert!(
            errors.iter().any(|l| l.contains(field)),
            "no error line names {field}: {out}"
        );
    }
    assert!(errors.len() >= 3, "expected a line per problem: {out}");
}

#[test]
fn missing_config_file_is_a_config_error() {
    let out = rvsd(&["--config", "/nonexistent/rvsd.toml", "--check"]);
    assert_eq!(code(&out), 1, "{out}");
    assert!(out.stderr.contains("/nonexistent/rvsd.toml"), "{out}");
}

#[test]
fn device_that_cannot_start_exits_2() {
    support::require_root("starting rvsd with DPDK");
    let dir = TempDir::new("check");
    let text = support::single_port_config(
        "net_pcap0,rx_pcap=/nonexistent/in.pcap,tx_pcap=/nonexistent/out.pcap",
        &["192.0.2.1/24"],
        Some("02:00:00:00:00:01"),
    );
    let config = dir.write("nodevice.toml", &text);
    let mut cmd = Command::new(RVSD);
    cmd.arg("--config").arg(&config);
    let out = run_cmd(&mut cmd, Duration::from_secs(60));
    assert_eq!(code(&out), 2, "{out}");
    assert!(
        error_lines(&out)
            .iter()
            .any(|l| l.contains("t0") || l.contains("net_pcap0")),
        "no error line names the interface or device: {out}"
    );
    assert!(
        !out.stderr.contains("ready:"),
        "rvsd said ready with a device that cannot start: {out}"
    );
}

// ------------------------------------------------------------ bounds

/// The `rvsd: error:` line naming `field`, or a failure showing `out`.
fn error_naming<'a>(out: &'a CmdOutput, field: &str) -> &'a str {
    error_lines(out)
        .into_iter()
        .find(|l| l.contains(field))
        .unwrap_or_else(|| panic!("no error line names {field}: {out}"))
}

#[test]
fn a_fifo_as_the_config_is_refused_at_once() {
    let dir = TempDir::new("check-fifo");
    let fifo = dir.join("rvsd.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let t = std::time::Instant::now();
    let out = check(&fifo);
    assert_eq!(code(&out), 1, "{out}");
    assert!(
        error_naming(&out, &fifo.display().to_string()).contains("not a FIFO"),
        "{out}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn dev_zero_as_the_config_is_refused_at_once() {
    let out = check(std::path::Path::new("/dev/zero"));
    assert_eq!(code(&out), 1, "{out}");
    assert!(
        error_naming(&out, "/dev/zero").contains("not a character device"),
        "{out}"
    );
}

#[test]
fn a_config_over_16_mib_is_refused_naming_the_cap() {
    let dir = TempDir::new("check-big");
    // A valid file padded with a comment past the cap.
    let text = format!("{GOOD}\n#{}\n", "x".repeat(16 << 20));
    let path = dir.write("big.toml", &text);
    let out = check(&path);
    assert_eq!(code(&out), 1, "{out}");
    let line = error_naming(&out, &path.display().to_string());
    assert!(line.contains("16777216-byte cap"), "{out}");
}

#[test]
fn a_real_server_on_loopback_is_refused() {
    let dir = TempDir::new("check-loopback");
    let text = format!(
        "{GOOD}\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\nforward = \"dr\"\n\n\
         [[virtual_server.real_server]]\naddress = \"127.0.0.1:80\"\n"
    );
    let out = check(&dir.write("loopback.toml", &text));
    assert_eq!(code(&out), 1, "{out}");
    let line = error_naming(&out, "virtual_server[0].real_server[0].address");
    assert!(line.contains("loopback"), "{out}");
}

#[test]
fn a_control_socket_path_longer_than_sun_path_is_refused() {
    let dir = TempDir::new("check-sockpath");
    let text = format!(
        "{GOOD}\n[control]\nsocket = \"/run/{}.sock\"\n",
        "s".repeat(120)
    );
    let out = check(&dir.write("sockpath.toml", &text));
    assert_eq!(code(&out), 1, "{out}");
    let line = error_naming(&out, "control.socket");
    assert!(line.contains("at most 107"), "{out}");
}

#[test]
fn a_virtual_server_with_65537_real_servers_is_refused_with_the_limit() {
    let dir = TempDir::new("check-servers");
    let mut text = format!(
        "{GOOD}\n[[virtual_server]]\nname = \"big\"\naddress = \"192.0.2.100:80\"\nforward = \"dr\"\n"
    );
    for i in 0..65_537u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        text.push_str(&format!(
            "[[virtual_server.real_server]]\naddress = \"{ip}:80\"\n"
        ));
    }
    let out = check(&dir.write("servers.toml", &text));
    assert_eq!(code(&out), 1, "{out}");
    let line = error_naming(&out, "virtual_server[0].real_server[65535]");
    assert!(line.contains("65537 real servers"), "{out}");
    assert!(line.contains("at most 65535"), "{out}");
}

/// Sixteen workers of the largest table: far beyond any machine's memory.
fn huge_tables() -> String {
    GOOD.replace("\"0-1\"", "\"0-16\"")
        .replace(
            "workers = [1]",
            "workers = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]",
        )
        .replace("conn_table_size = 1024", "conn_table_size = 268435456")
}

#[test]
fn a_conn_table_size_beyond_the_memory_available_is_refused_with_the_figures() {
    let dir = TempDir::new("check-table");
    let out = check(&dir.write("table.toml", &huge_tables()));
    assert_eq!(code(&out), 1, "{out}");
    let line = error_naming(&out, "dataplane.conn_table_size");
    assert!(line.contains("268435456 connections per worker"), "{out}");
    assert!(line.contains("16 worker(s)"), "{out}");
    assert!(line.contains("MemAvailable"), "{out}");
}

#[test]
fn rvsd_refuses_tables_beyond_the_memory_before_starting_the_eal() {
    let dir = TempDir::new("check-table-start");
    let config = dir.write("table.toml", &huge_tables());
    let out = rvsd(&["--config", config.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{out}");
    error_naming(&out, "dataplane.conn_table_size");
    assert!(!out.stderr.contains("starting the EAL"), "{out}");
}

#[test]
fn a_table_that_cannot_be_mapped_once_the_eal_is_up_exits_2_with_the_reason() {
    support::require_root("starting rvsd with DPDK");
    let dir = TempDir::new("check-table-map");
    // 16M connections take 1.5 GiB: within the machine's memory (the
    // check before the EAL passes) but beyond the 1.2 GiB of address space
    // the process is given, so the table's mapping fails after the EAL and
    // the port are up.
    let text =
        support::single_port_config("net_null0", &["192.0.2.1/24"], Some("02:00:00:00:00:01"))
            .replace("conn_table_size = 1024", "conn_table_size = 16777216")
            + &format!(
                "\n[control]\nsocket = \"{}\"\nmetrics_listen = \"127.0.0.1:0\"\n",
                dir.join("rvsd.sock").display()
            );
    let config = dir.write("table.toml", &text);
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -v 1228800 && exec \"$0\" --config \"$1\"",
        RVSD,
    ])
    .arg(&config);
    let out = run_cmd(&mut cmd, Duration::from_secs(60));
    assert_eq!(code(&out), 2, "{out}");
    let line = error_naming(&out, "connection table of 16777216 connections");
    assert!(line.contains("cannot map"), "{out}");
    assert!(out.stderr.contains("starting the EAL"), "{out}");
    assert!(!out.stderr.contains("ready:"), "{out}");
}
