//! A `script` probe, keepalived's MISC_CHECK: the `script` command run
//! with the target in its environment, judged by its exit code: 0 up, 1
//! down, and 2 to 255 up with weight `code - 2` when
//! `script_dynamic_weight` is set (keepalived's `misc_dynamic`), down
//! otherwise. A command still running at the timeout is killed.
//!
//! Why a pidfd: the event loop must never wait, and a pidfd becomes
//! readable when the child exits, so the child is one more event source
//! beside the sockets (no SIGCHLD handler, no thread per script). The
//! child gets its own process group, so the kill at the timeout takes a
//! shell's children with it. Every child is reaped: at its exit, or right
//! after the kill (a process that SIGKILL does not end at once, stuck in
//! the kernel, is waited for by a short-lived thread instead of the loop).

use super::check::finished;
use super::probe::{StartError, Step};
use super::sockets::Fd;
use super::CheckResult;
use crate::control::config::HealthCheckConfig;
use rustix::process::{Pid, PidfdFlags, Signal};
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the loop waits for a killed child before handing it to a
/// reaper thread.
const REAP_WAIT: Duration = Duration::from_millis(5);

/// One `script` probe in flight.
#[derive(Debug)]
pub(super) struct ScriptProbe {
    /// `script /path/prog for 10.1.0.11:80`, the start of every message.
    what: String,
    child: Child,
    pidfd: Fd,
    dynamic_weight: bool,
    /// Set once the child is reaped.
    exited: bool,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
}

/// The verdict on an exit status: (ok, weight asked for, detail's tail).
fn judge(status: ExitStatus, dynamic_weight: bool) -> (bool, Option<u32>, String) {
    match status.code() {
        Some(0) => (true, None, "exited 0".into()),
        Some(code @ 2..=255) if dynamic_weight => {
            // 2..=255: the difference fits.
            let weight = (code - 2) as u32;
            (
                true,
                Some(weight),
                format!("exited {code}: weight {weight}"),
            )
        }
        Some(code) => (false, None, format!("exited {code}")),
        None => (
            false,
            None,
            format!("killed by signal {}", status.signal().unwrap_or(0)),
        ),
    }
}

impl ScriptProbe {
    /// Starts the command for the real server at `endpoint` of virtual
    /// server `name`.
    pub(super) fn start(
        endpoint: SocketAddr,
        check: &HealthCheckConfig,
        name: &str,
        now: Instant,
    ) -> Result<ScriptProbe, StartError> {
        let program = check.script.first().map_or("", String::as_str);
        let what = format!("script {program} for {endpoint}");
        let fail = |detail: String| StartError::Failed(finished(now, Instant::now(), Err(detail)));
        if program.is_empty() {
            return Err(fail(format!("{what}: no command")));
        }
        let mut command = Command::new(program);
        command
            .args(&check.script[1..])
            .env("RVS_REAL_SERVER_IP", endpoint.ip().to_string())
            .env("RVS_REAL_SERVER_PORT", endpoint.port().to_string())
            .env("RVS_VIRTUAL_SERVER", name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        match check.source_address {
            Some(a) => command.env("RVS_SOURCE_ADDRESS", a.to_string()),
            None => command.env_remove("RVS_SOURCE_ADDRESS"),
        };
        keep_descriptors_from_children(now);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) if is_local_spawn(&e) => return Err(StartError::Local(e)),
            Err(e) => return Err(fail(format!("{what}: cannot run it: {}", plain(&e)))),
        };
        let pidfd = match rustix::process::pidfd_open(Pid::from_child(&child), PidfdFlags::NONBLOCK)
        {
            Ok(fd) => Fd(fd),
            Err(e) => {
                kill_and_reap(&mut child);
                return Err(StartError::Local(e.into()));
            }
        };
        Ok(ScriptProbe {
            what,
            child,
            pidfd,
            dynamic_weight: check.script_dynamic_weight,
            exited: false,
            started: now,
            deadline: now + check.timeout,
            timeout: check.timeout,
        })
    }

    /// The pidfd, readable when the child exits.
    pub(super) fn source(&mut self) -> &mut Fd {
        &mut self.pidfd
    }

    /// Its start plus its timeout.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The verdict once the child exited; `Pending` before.
    pub(super) fn advance(&mut self, now: Instant) -> Step {
        match self.child.try_wait() {
            Ok(None) => Step::Pending,
            Ok(Some(status)) => {
                self.exited = true;
                let (ok, weight, tail) = judge(status, self.dynamic_weight);
                let took = now.saturating_duration_since(self.started).as_secs_f64() * 1e3;
                let detail = format!("{} {tail} after {took:.1} ms", self.what);
                let mut r = finished(self.started, now, if ok { Ok(detail) } else { Err(detail) });
                r.weight = weight;
                Step::Done(r)
            }
            Err(e) => {
                self.exited = true;
                Step::Done(finished(
                    self.started,
                    now,
                    Err(format!(
                        "{}: waiting for it failed: {}",
                        self.what,
                        plain(&e)
                    )),
                ))
            }
        }
    }

    /// The failure at the deadline (the child is killed when the probe is
    /// dropped, right after).
    pub(super) fn expire(&self, now: Instant) -> CheckResult {
        finished(
            self.started,
            now,
            Err(format!(
                "{}: still running after {} ms, killed",
                self.what,
                self.timeout.as_millis()
            )),
        )
    }
}

impl Drop for ScriptProbe {
    /// Kills a child still running (its whole process group) and reaps it.
    fn drop(&mut self) {
        if !self.exited {
            kill_and_reap(&mut self.child);
        }
    }
}

/// SIGKILL to the child's process group, then its exit collected: at once
/// if it ends within `REAP_WAIT`, else by a thread of its own.
fn kill_and_reap(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        // The group is the child's own (`process_group(0)`); gone already
        // is fine.
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
    let _ = child.kill();
    let until = Instant::now() + REAP_WAIT;
    while Instant::now() < until {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_micros(200)),
            _ => return,
        }
    }
    // `Child` is not `Clone`: hand over a handle by pid through a fresh
    // wait in another thread, which ends with the child.
    let pid = child.id();
    let spawned = std::thread::Builder::new()
        .name("rvs-reap".into())
        .spawn(move || {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            }
        });
    if spawned.is_err() {
        // No thread left: wait here rather than leave a zombie.
        let _ = child.wait();
    }
}

/// Spawn errors that are this host's shortage.
fn is_local_spawn(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN)
    )
}

/// An error without std's "(os error N)" suffix.
fn plain(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(at) => s[..at].to_string(),
        None => s,
    }
}

/// Longest time between two sweeps of the descriptors scripts must not
/// inherit: the EAL opens its own at start-up and port set-up, so a sweep
/// at most this often catches them without a readdir per script.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Marks the descriptors the EAL opened without close-on-exec (see
/// `crate::dpdk::inherit`) before a script is spawned, at most once per
/// `SWEEP_EVERY`.
fn keep_descriptors_from_children(now: Instant) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY) {
        crate::dpdk::inherit::close_on_exec_all();
        *last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::probe_once as probe;
    use super::*;
    use crate::control::config::HealthCheckKind;
    use std::net::Ipv4Addr;

    const TARGET: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        Ipv4Addr::new(10, 1, 0, 11),
        8080,
    ));

    fn sh(line: &str, dynamic: bool, timeout_ms: u64) -> HealthCheckConfig {
        HealthCheckConfig {
            kind: HealthCheckKind::Script,
            timeout: Duration::from_millis(timeout_ms),
            script: vec!["/bin/sh".into(), "-c".into(), line.into()],
            script_dynamic_weight: dynamic,
            ..HealthCheckConfig::default()
        }
    }

    #[test]
    fn exit_0_is_up_with_the_configured_weight() {
        let r = probe(TARGET, &sh("exit 0", true, 2000), "web");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.weight, None);
        assert!(
            r.detail
                .starts_with("script /bin/sh for 10.1.0.11:8080 exited 0"),
            "{r:?}"
        );
    }

    #[test]
    fn exit_1_is_down() {
        let r = probe(TARGET, &sh("exit 1", true, 2000), "web");
        assert!(!r.ok);
        assert!(r.detail.contains("exited 1"), "{r:?}");
    }

    #[test]
    fn exit_5_is_weight_3_with_dynamic_weight() {
        let r = probe(TARGET, &sh("exit 5", true, 2000), "web");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.weight, Some(3));
        assert!(r.detail.contains("exited 5: weight 3"), "{r:?}");
    }

    #[test]
    fn exit_2_is_weight_0_a_drain() {
        let r = probe(TARGET, &sh("exit 2", true, 2000), "web");
        assert!(r.ok);
        assert_eq!(r.weight, Some(0));
    }

    #[test]
    fn exit_5_is_down_without_dynamic_weight() {
        let r = probe(TARGET, &sh("exit 5", false, 2000), "web");
        assert!(!r.ok);
        assert_eq!(r.weight, None);
    }

    #[test]
    fn the_target_is_in_the_environment() {
        let mut c = sh(
            "test \"$RVS_REAL_SERVER_IP:$RVS_REAL_SERVER_PORT $RVS_VIRTUAL_SERVER $RVS_SOURCE_ADDRESS\" \
             = '10.1.0.11:8080 web 10.0.0.5'",
            false,
            2000,
        );
        c.source_address = Some(Ipv4Addr::new(10, 0, 0, 5));
        let r = probe(TARGET, &c, "web");
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn a_hanging_script_is_killed_at_the_timeout_with_its_children() {
        let dir = std::env::temp_dir().join(format!("rvs-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("sleep.pid");
        let line = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let r = probe(TARGET, &sh(&line, false, 200), "web");
        assert!(!r.ok);
        assert!(
            r.detail.ends_with("still running after 200 ms, killed"),
            "{r:?}"
        );
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
        // The shell's child went with it.
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut gone = false;
        while Instant::now() < deadline && !gone {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie awaiting its parent (init).
            gone = stat.is_empty() || stat.contains(") Z ");
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(gone, "the script's child survived the kill");
    }

    #[test]
    fn a_missing_program_fails_naming_it() {
        let c = HealthCheckConfig {
            kind: HealthCheckKind::Script,
            script: vec!["/nonexistent/rvs-check".into()],
            ..HealthCheckConfig::default()
        };
        let r = probe(TARGET, &c, "web");
        assert!(!r.ok);
        assert_eq!(
            r.detail,
            "script /nonexistent/rvs-check for 10.1.0.11:8080: cannot run it: No such file or directory"
        );
    }

    #[test]
    fn exit_codes_are_judged_as_keepalived_does() {
        let s = |code: i32| ExitStatus::from_raw(code << 8);
        assert!(judge(s(0), true).0);
        assert!(!judge(s(1), true).0);
        assert_eq!(
            judge(s(255), true),
            (true, Some(253), "exited 255: weight 253".into())
        );
        assert!(!judge(s(2), false).0);
        let killed = ExitStatus::from_raw(9);
        assert_eq!(
            judge(killed, true),
            (false, None, "killed by signal 9".into())
        );
    }
}
