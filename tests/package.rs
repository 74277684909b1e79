#![cfg(feature = "dpdk")]
//! The Debian package: built with cargo-deb from the binaries of this test
//! run, inspected (`dpkg-deb`: files, conffile, dependencies), extracted
//! into a scratch root beside the base units and checked there with
//! `systemd-analyze verify`; installed, upgraded, removed and purged by
//! dpkg in a scratch root (the edited config survives all but the purge);
//! the installed rvsd speaks systemd's notify
//! protocol to a socket of the test's; the unit's preflight script refuses
//! a bad config and a machine without hugepages (against a fake /proc).
//! Each test that needs the package builds its own in its own scratch
//! directory (seconds: the binaries are only stripped and compressed) and
//! removes it.
//!
//! Without cargo-deb (`scripts/setup` installs it) every test says it is
//! skipped and why. systemd is not PID 1 in the usual test container, so
//! rvsd is not started through systemd itself; `rvsd_runs_under_systemd`
//! does that only where systemd runs.
#![deny(unsafe_code)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{repo_root, run, run_cmd, test_eal_args, toml_str, CmdOutput, TempDir};

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const RVSD_READY: Duration = Duration::from_secs(30);

/// The rvsadm cargo built for this run (rvsd is `support::RVSD`).
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// A package built for one test, in that test's scratch directory.
struct Package {
    dir: TempDir,
    deb: PathBuf,
}

/// Builds the package from this run's binaries with `cargo deb
/// --no-build`: a scratch target directory holds them as
/// `target/release/{rvsd,rvsadm}` (links, which cargo-deb strips into
/// copies), so the package's release layout is used without a release
/// build. None, with the reason printed, when cargo-deb is missing.
fn build_package(test: &str) -> Option<Package> {
    let cargo = cargo();
    let version = run_cmd(
        Command::new(&cargo).args(["deb", "--version"]),
        TOOL_TIMEOUT,
    );
    if !version.success() {
        eprintln!(
            "{test}: skipped: cargo-deb is not installed (scripts/setup installs it: \
             cargo install cargo-deb --version 3.8.0 --locked)"
        );
        return None;
    }
    let dir = TempDir::new("pkg");
    let release = dir.join("target/release");
    std::fs::create_dir_all(&release).expect("scratch target dir");
    for bin in [support::RVSD, RVSADM] {
        let name = Path::new(bin).file_name().expect("binary name");
        std::os::unix::fs::symlink(bin, release.join(name)).expect("link the binary");
    }
    let deb = cargo_deb(test, &dir, None);
    eprintln!("{test}: {}", version.stdout.trim());
    Some(Package { dir, deb })
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `cargo deb --no-build` over `dir`'s scratch target directory into
/// `dir/out-VERSION` (the Cargo.toml version, revision 1, when None) and
/// returns the package's path.
fn cargo_deb(test: &str, dir: &TempDir, version: Option<&str>) -> PathBuf {
    let out = dir.join(&format!("out-{}", version.unwrap_or("default")));
    // An existing directory: cargo-deb takes `out-0.1.0-2` for a file name.
    std::fs::create_dir_all(&out).expect("cargo deb's output directory");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(repo_root())
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args([
            "deb",
            "--no-build",
            "--offline",
            "--fast",
            "--strip",
            "--no-dbgsym",
        ])
        .arg("--output")
        .arg(&out);
    if let Some(v) = version {
        cmd.args(["--deb-version", v]);
    }
    let built = run_cmd(&mut cmd, TOOL_TIMEOUT);
    assert!(built.success(), "cargo deb failed: {built}");
    let deb = std::fs::read_dir(&out)
        .expect("cargo deb's output directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}: {built}", out.display()));
    eprintln!(
        "{test}: built {} in {:.1} s",
        deb.display(),
        built.elapsed.as_secs_f64()
    );
    deb
}

impl Package {
    fn dpkg_deb(&self, args: &[&str]) -> CmdOutput {
        let out = run_cmd(
            Command::new("dpkg-deb").args(args).arg(&self.deb),
            TOOL_TIMEOUT,
        );
        assert!(out.success(), "{out}");
        out
    }

    /// The paths the package installs, as `dpkg-deb -c` lists them
    /// (without the leading `.`).
    fn files(&self) -> Vec<String> {
        self.dpkg_deb(&["-c"])
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .map(|p| p.trim_start_matches('.').to_string())
            .collect()
    }

    /// A control field (`dpkg-deb -f`).
    fn field(&self, name: &str) -> String {
        let out = run_cmd(
            Command::new("dpkg-deb").arg("-f").arg(&self.deb).arg(name),
            TOOL_TIMEOUT,
        );
        assert!(out.success(), "{out}");
        out.stdout.trim().to_string()
    }

    /// Extracts the package into `root`, as dpkg would unpack it.
    fn extract(&self, root: &Path) {
        let out = run_cmd(
            Command::new("dpkg-deb").arg("-x").arg(&self.deb).arg(root),
            TOOL_TIMEOUT,
        );
        assert!(out.success(), "{out}");
    }

    /// A container-like root: the package unpacked over what a Debian
    /// system provides the unit (`/bin/kill`, the base targets, and
    /// dpdk.service and keepalived.service when this machine has them).
    fn install_root(&self) -> PathBuf {
        let root = self.dir.join("root");
        let units = root.join("usr/lib/systemd/system");
        std::fs::create_dir_all(&units).expect("root's unit directory");
        std::fs::create_dir_all(root.join("usr/bin")).expect("root's usr/bin");
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("/bin -> usr/bin");
        std::fs::copy("/usr/bin/kill", root.join("usr/bin/kill")).expect("copy /usr/bin/kill");
        for entry in std::fs::read_dir("/usr/lib/systemd/system").expect("host units") {
            let path = entry.expect("unit entry").path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let wanted =
                name.ends_with(".target") || name == "dpdk.service" || name == "keepalived.service";
            // Targets may be links to other targets: copy what they point to.
            if wanted && path.is_file() {
                std::fs::copy(&path, units.join(&name)).expect("copy a base unit");
            }
        }
        self.extract(&root);
        root
    }
}

/// `systemd-analyze verify` of rvsd.service inside `root`.
fn verify(root: &Path) -> CmdOutput {
    run_cmd(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg("/usr/lib/systemd/system/rvsd.service"),
        TOOL_TIMEOUT,
    )
}

fn have_systemd_analyze() -> bool {
    run("systemd-analyze", &["--version"], TOOL_TIMEOUT).success()
}

#[test]
fn package_installs_binaries_unit_config_and_examples() {
    let Some(pkg) = build_package("package_installs_binaries_unit_config_and_examples") else {
        return;
    };
    let files = pkg.files();
    eprintln!("package files:\n  {}", files.join("\n  "));
    for want in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/usr/lib/rvs/rvsd-preflight",
        "/etc/rvs/rvsd.toml",
        "/usr/lib/systemd/system/rvsd.service",
        "/usr/share/doc/rvs/examples/keepalived-primary.conf",
        "/usr/share/doc/rvs/examples/keepalived-backup.conf",
        "/usr/share/doc/rvs/examples/bird-node.conf",
        "/usr/share/doc/rvs/examples/bird-router.conf",
        "/usr/share/doc/rvs/examples/nat.toml",
        "/usr/share/doc/rvs/operations.md",
        "/usr/share/doc/rvs/copyright",
    ] {
        assert!(files.iter().any(|f| f == want), "the package lacks {want}");
    }
    assert!(
        !files.iter().any(|f| f.starts_with("/usr/local")),
        "a package installs nothing under /usr/local"
    );
}

#[test]
fn example_config_is_a_conffile() {
    let Some(pkg) = build_package("example_config_is_a_conffile") else {
        return;
    };
    let control = pkg.dir.join("control");
    let out = run_cmd(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&pkg.deb)
            .arg(&control),
        TOOL_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/rvs/rvsd.toml"]
    );
}

#[test]
fn package_depends_on_debians_dpdk_runtime() {
    let Some(pkg) = build_package("package_depends_on_debians_dpdk_runtime") else {
        return;
    };
    let depends = pkg.field("Depends");
    eprintln!("Depends: {depends}");
    let names: Vec<&str> = depends
        .split(',')
        .filter_map(|d| d.split_whitespace().next())
        .collect();
    // dpdk for dpdk.service; the librte-* found by dpkg-shlibdeps in rvsd.
    for want in ["dpdk", "libc6"] {
        assert!(names.contains(&want), "Depends lacks {want}: {depends}");
    }
    for lib in [
        "librte-eal",
        "librte-ethdev",
        "librte-mbuf",
        "librte-mempool",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(lib)),
            "Depends lacks {lib}*: {depends}"
        );
    }
    assert_eq!(pkg.field("Package"), "rvs");
    assert!(pkg.field("Recommends").contains("keepalived"));
}

#[test]
fn unit_is_notify_with_watchdog_reload_memlock_and_before_keepalived() {
    let Some(pkg) =
        build_package("unit_is_notify_with_watchdog_reload_memlock_and_before_keepalived")
    else {
        return;
    };
    let root = pkg.dir.join("root");
    pkg.extract(&root);
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/rvsd.service"))
        .expect("rvsd.service in the package");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "ExecStart=/usr/sbin/rvsd --config /etc/rvs/rvsd.toml",
        "ExecStartPre=/usr/lib/rvs/rvsd-preflight /etc/rvs/rvsd.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "LimitMEMLOCK=infinity",
        "Before=keepalived.service",
    ] {
        assert!(lines.contains(&want), "rvsd.service lacks `{want}`");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("WatchdogSec=")),
        "rvsd.service sets no WatchdogSec"
    );
}

#[test]
fn installed_unit_passes_systemd_analyze_verify() {
    let Some(pkg) = build_package("installed_unit_passes_systemd_analyze_verify") else {
        return;
    };
    if !have_systemd_analyze() {
        panic!("systemd-analyze is missing: scripts/setup installs systemd");
    }
    let root = pkg.install_root();
    let out = verify(&root);
    eprintln!("systemd-analyze verify rvsd.service: {out}");
    assert!(out.success(), "systemd-analyze verify failed: {out}");
    assert!(
        !out.stderr.contains("rvsd.service"),
        "systemd-analyze verify complained about rvsd.service: {out}"
    );
}

#[test]
fn systemd_analyze_verify_catches_a_missing_rvsd() {
    let Some(pkg) = build_package("systemd_analyze_verify_catches_a_missing_rvsd") else {
        return;
    };
    if !have_systemd_analyze() {
        panic!("systemd-analyze is missing: scripts/setup installs systemd");
    }
    let root = pkg.install_root();
    std::fs::remove_file(root.join("usr/sbin/rvsd")).expect("remove rvsd");
    let out = verify(&root);
    assert!(
        !out.success(),
        "verify passed without /usr/sbin/rvsd: {out}"
    );
    assert!(out.stderr.contains("/usr/sbin/rvsd"), "{out}");
}

#[test]
fn installed_keepalived_examples_call_the_installed_rvsadm() {
    let Some(pkg) = build_package("installed_keepalived_examples_call_the_installed_rvsadm") else {
        return;
    };
    let root = pkg.dir.join("root");
    pkg.extract(&root);
    for side in ["primary", "backup"] {
        let path = root.join(format!("usr/share/doc/rvs/examples/keepalived-{side}.conf"));
        let text = std::fs::read_to_string(&path).expect("keepalived example");
        let commands: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("script ") || l.starts_with("notify_"))
            .collect();
        assert_eq!(commands.len(), 5, "{side}: {commands:?}");
        for c in commands {
            assert!(
                c.contains("\"/usr/sbin/rvsadm --socket /run/rvs/rvsd.sock "),
                "{side}: `{c}` does not call the installed rvsadm"
            );
        }
        assert!(root.join("usr/sbin/rvsadm").is_file());
    }
}

/// A config that starts rvsd without hugepages or NICs: one pcap port that
/// reads an empty capture, its socket and metrics in `dir`.
fn quiet_config(dir: &TempDir) -> PathBuf {
    // A pcap file with its global header only: no packets.
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    let rx = dir.join("in.pcap");
    std::fs::write(&rx, header).expect("empty pcap");
    let device = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        rx.display(),
        dir.join("out.pcap").display()
    );
    let eal: Vec<String> = test_eal_args().iter().map(|a| toml_str(a)).collect();
    let text = format!(
        "[dpdk]\neal_args = [{}]\nworkers = [1]\n\n\
         [dataplane]\nconn_table_size = 1024\nidle_sleep_us = 100\n\n\
         [[interface]]\nname = \"test0\"\ndevice = {}\naddresses = [\"192.0.2.1/24\"]\n\n\
         [control]\nsocket = {}\nmetrics_listen = \"127.0.0.1:0\"\n",
        eal.join(", "),
        toml_str(&device),
        toml_str(&dir.join("rvsd.sock").display().to_string()),
    );
    dir.write("rvsd.toml", &text)
}

/// The messages received on `socket` until one contains `want` (or the
/// timeout passes); all of them, in order.
fn messages_until(socket: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = m.contains(want);
            seen.push(m);
            if done {
                break;
            }
        }
    }
    seen
}

#[test]
fn installed_rvsd_tells_systemd_ready_watchdog_reload_and_stopping() {
    let Some(pkg) =
        build_package("installed_rvsd_tells_systemd_ready_watchdog_reload_and_stopping")
    else {
        return;
    };
    let root = pkg.dir.join("root");
    pkg.extract(&root);
    let config = quiet_config(&pkg.dir);
    let notify_path = pkg.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    // As systemd starts it: NOTIFY_SOCKET, and a 1 s watchdog for this pid.
    let mut child = Command::new(root.join("usr/sbin/rvsd"))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the installed rvsd");
    let pid = child.id().to_string();
    let stop = |child: &mut std::process::Child| {
        let _ = run("kill", &["-TERM", &pid], TOOL_TIMEOUT);
        support::wait_timeout(child, Duration::from_secs(20)).or_else(|| {
            let _ = child.kill();
            child.wait().ok()
        })
    };

    let start = messages_until(&notify, "READY=1", RVSD_READY);
    let ready = start.last().cloned().unwrap_or_default();
    if !ready.starts_with("READY=1\nSTATUS=ready:") {
        stop(&mut child);
        panic!("rvsd never said READY=1 with its ready line: {start:?}");
    }
    let pings = messages_until(&notify, "WATCHDOG=1", Duration::from_secs(3));
    let got_ping = pings.last().is_some_and(|m| m == "WATCHDOG=1");

    let _ = run("kill", &["-HUP", &pid], TOOL_TIMEOUT);
    let reload: Vec<String> = messages_until(&notify, "READY=1", Duration::from_secs(10))
        .into_iter()
        .filter(|m| m != "WATCHDOG=1")
        .collect();

    let status = stop(&mut child);
    let stopping = messages_until(&notify, "STOPPING=1", Duration::from_secs(2));
    assert!(got_ping, "no WATCHDOG=1 within 3 s of READY=1: {pings:?}");
    assert_eq!(reload, ["RELOADING=1", "READY=1"], "SIGHUP");
    assert!(
        stopping.iter().any(|m| m.starts_with("STOPPING=1")),
        "no STOPPING=1 after SIGTERM: {stopping:?}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "rvsd exit status {status:?}"
    );
}

#[test]
fn installed_preflight_checks_the_config_with_the_installed_rvsd() {
    let Some(pkg) = build_package("installed_preflight_checks_the_config_with_the_installed_rvsd")
    else {
        return;
    };
    let root = pkg.dir.join("root");
    pkg.extract(&root);
    let preflight = root.join("usr/lib/rvs/rvsd-preflight");
    let rvsd = root.join("usr/sbin/rvsd");
    // The test config runs with --no-huge: valid, and no hugepages needed.
    let good = quiet_config(&pkg.dir);
    let out = run_cmd(
        Command::new(&preflight).arg(&good).env("RVSD", &rvsd),
        TOOL_TIMEOUT,
    );
    assert!(out.success(), "preflight refused a valid config: {out}");

    let bad = pkg.dir.write("bad.toml", "[dpdk]\nworkers = \"one\"\n");
    let out = run_cmd(
        Command::new(&preflight).arg(&bad).env("RVSD", &rvsd),
        TOOL_TIMEOUT,
    );
    assert!(!out.success(), "preflight accepted a bad config: {out}");
    assert!(out.stderr.contains("dpdk.workers"), "{out}");
}

/// Runs the repo's `packaging/rvsd-preflight` (the file the package
/// installs) on a config whose `eal_args` are `eal`, against a fake
/// /proc with `pages` hugepages reserved and hugetlbfs mounted or not.
fn preflight(eal: &str, pages: u32, hugetlbfs: bool) -> CmdOutput {
    let dir = TempDir::new("preflight");
    let config = dir.write(
        "rvsd.toml",
        &format!(
            "[dpdk]\n{eal}\nworkers = [1]\n\n\
             [[interface]]\nname = \"test0\"\ndevice = \"net_null0\"\n\
             addresses = [\"192.0.2.1/24\"]\n"
        ),
    );
    let proc = dir.join("proc");
    std::fs::create_dir_all(&proc).unwrap();
    std::fs::write(
        proc.join("meminfo"),
        format!("MemTotal: 8000000 kB\nHugePages_Total: {pages:>8}\nHugePages_Free: {pages:>8}\n"),
    )
    .unwrap();
    let mut mounts = String::from("proc /proc proc rw 0 0\n");
    if hugetlbfs {
        mounts.push_str("hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n");
    }
    std::fs::write(proc.join("mounts"), mounts).unwrap();
    run_cmd(
        Command::new(repo_root().join("packaging/rvsd-preflight"))
            .arg(&config)
            .env("RVSD", support::RVSD)
            .env("RVS_PROC", &proc),
        TOOL_TIMEOUT,
    )
}

const HUGE_EAL: &str = r#"eal_args = ["-l", "0-1", "--file-prefix", "rvs"]"#;

#[test]
fn preflight_refuses_to_start_without_hugepages() {
    let out = preflight(HUGE_EAL, 0, true);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("no hugepages reserved"), "{out}");
    assert!(out.stderr.contains("NR_2M_PAGES"), "names the fix: {out}");
}

#[test]
fn preflight_wants_hugetlbfs_mounted_unless_in_memory() {
    let out = preflight(HUGE_EAL, 512, false);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("no hugetlbfs mounted"), "{out}");
    let in_memory = r#"eal_args = ["-l", "0-1", "--in-memory"]"#;
    assert!(preflight(in_memory, 512, false).success());
    assert!(preflight(HUGE_EAL, 512, true).success());
}

#[test]
fn preflight_lets_no_huge_through_even_over_several_lines() {
    let eal = "eal_args = [\n  \"-l\", \"0-1\",   # cores\n  \"--no-huge\",\n]";
    let out = preflight(eal, 0, false);
    assert!(out.success(), "{out}");
}

#[test]
fn preflight_refuses_an_invalid_config_naming_the_field() {
    let out = preflight(r#"eal_args = "-l 0-1""#, 512, true);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("dpdk.eal_args"), "{out}");
}

/// An empty dpkg root that can run the package's maintainer scripts
/// chrooted: `/bin/sh` (dash and the C library), `/dev/null` (a plain
/// file), an empty dpkg database and log. Nothing of the host's is
/// touched: the scripts' `deb-systemd-helper` is not there, and they skip
/// it.
fn dpkg_root(dir: &TempDir) -> PathBuf {
    let root = dir.join("dpkg-root");
    for d in [
        "usr/bin",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib64",
        "dev",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/log",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("dpkg root dirs");
    }
    for (link, to) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(to, root.join(link)).expect("merged-usr link");
    }
    for (from, to) in [
        ("/usr/bin/dash", "usr/bin/sh"),
        (
            "/lib/x86_64-linux-gnu/libc.so.6",
            "usr/lib/x86_64-linux-gnu/libc.so.6",
        ),
        (
            "/lib64/ld-linux-x86-64.so.2",
            "usr/lib64/ld-linux-x86-64.so.2",
        ),
    ] {
        std::fs::copy(from, root.join(to))
            .unwrap_or_else(|e| panic!("copy {from} into the dpkg root: {e}"));
    }
    for f in ["dev/null", "var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.join(f), "").expect("dpkg root files");
    }
    root
}

/// `dpkg --root=ROOT ARGS...` (dependencies not installed there: forced).
fn dpkg(root: &Path, args: &[&std::ffi::OsStr]) -> CmdOutput {
    let out = run_cmd(
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
            .args(["--force-depends", "--force-confold"])
            .args(args),
        TOOL_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    out
}

#[test]
fn dpkg_upgrade_and_remove_keep_the_edited_config_purge_deletes_it() {
    let test = "dpkg_upgrade_and_remove_keep_the_edited_config_purge_deletes_it";
    let Some(pkg) = build_package(test) else {
        return;
    };
    if !Path::new("/usr/bin/dash").is_file() || !support::is_root() {
        panic!("{test}: needs root and /usr/bin/dash to run dpkg in a scratch root");
    }
    let root = dpkg_root(&pkg.dir);
    dpkg(&root, &["-i".as_ref(), pkg.deb.as_os_str()]);
    let status = dpkg(&root, &["-s".as_ref(), "rvs".as_ref()]).stdout;
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains("Conffiles:\n /etc/rvs/rvsd.toml "),
        "{status}"
    );
    assert!(root.join("usr/sbin/rvsd").is_file());

    let config = root.join("etc/rvs/rvsd.toml");
    let edited = format!(
        "{}\n# edited by the operator\n",
        std::fs::read_to_string(&config).unwrap()
    );
    std::fs::write(&config, &edited).unwrap();
    let newer = cargo_deb(test, &pkg.dir, Some("0.1.0-2"));
    dpkg(&root, &["-i".as_ref(), newer.as_os_str()]);
    let status = dpkg(&root, &["-s".as_ref(), "rvs".as_ref()]).stdout;
    assert!(status.contains("Version: 0.1.0-2"), "{status}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited, "upgrade");

    dpkg(&root, &["-r".as_ref(), "rvs".as_ref()]);
    assert!(!root.join("usr/sbin/rvsd").exists(), "remove removes rvsd");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited, "remove");
    dpkg(&root, &["--purge".as_ref(), "rvs".as_ref()]);
    assert!(!config.exists(), "purge deletes /etc/rvs/rvsd.toml");
}

/// Where systemd is PID 1 (not in the usual test container), rvsd starts
/// from the package's own binary as a transient Type=notify service with
/// a watchdog, reloads and stops; elsewhere this says it is skipped.
#[test]
fn rvsd_runs_under_systemd() {
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if pid1.trim() != "systemd" || !Path::new("/run/systemd/system").is_dir() {
        eprintln!(
            "rvsd_runs_under_systemd: skipped: PID 1 is {:?}, not systemd; \
             the unit is checked with systemd-analyze verify instead",
            pid1.trim()
        );
        return;
    }
    let Some(pkg) = build_package("rvsd_runs_under_systemd") else {
        return;
    };
    let root = pkg.dir.join("root");
    pkg.extract(&root);
    let config = quiet_config(&pkg.dir);
    let unit = format!("rvst-{}", support::unique_token());
    let rvsd = root.join("usr/sbin/rvsd");
    let out = run_cmd(
        Command::new("systemd-run")
            .arg(format!("--unit={unit}"))
            .args([
                "-p",
                "Type=notify",
                "-p",
                "WatchdogSec=5s",
                "-p",
                "ExecReload=/bin/kill -HUP $MAINPID",
            ])
            .arg(&rvsd)
            .arg("--config")
            .arg(&config),
        Duration::from_secs(60),
    );
    // systemd-run returns once the notify service said READY=1.
    let active = run("systemctl", &["is-active", &unit], TOOL_TIMEOUT);
    let reload = run("systemctl", &["reload", &unit], Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6)); // past one watchdog timeout
    let still = run("systemctl", &["is-active", &unit], TOOL_TIMEOUT);
    let _ = run("systemctl", &["stop", &unit], Duration::from_secs(30));
    let _ = run("systemctl", &["reset-failed", &unit], TOOL_TIMEOUT);
    assert!(out.success(), "systemd-run: {out}");
    assert_eq!(active.stdout.trim(), "active", "{active}");
    assert!(reload.success(), "systemctl reload: {reload}");
    assert_eq!(
        still.stdout.trim(),
        "active",
        "the watchdog killed rvsd: {still}"
    );
}
