//! systemd's readiness and watchdog protocol (`sd_notify`), spoken without
//! libsystemd: one datagram per message to the Unix socket systemd names in
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
//! `@`). rvsd says `READY=1` once it serves, `RELOADING=1` then `READY=1`
//! around a SIGHUP reload, `STOPPING=1` when it leaves, and `WATCHDOG=1`
//! from the control loop at half of `$WATCHDOG_USEC`, so a control thread
//! that hangs stops the pings and systemd restarts rvsd.
//!
//! Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing. A send
//! that fails is logged once and never stops rvsd: systemd's notification
//! is a courtesy to the service manager, not part of the data path.

use crate::warn;
use std::cell::Cell;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The longest one notification may block the caller (systemd's queue
/// full).
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Where and how often to tell systemd; built from the environment systemd
/// gives a `Type=notify` service.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    /// Half of `$WATCHDOG_USEC`: how often the control loop pings.
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    /// Whether a failed send was already logged (one warning, not one per
    /// tick).
    warned: Cell<bool>,
}

/// The unbound datagram socket and systemd's address.
#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// A notifier that sends nothing: rvsd outside systemd, or in tests.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
            last_ping: None,
            warned: Cell::new(false),
        }
    }

    /// The notifier systemd asks for through this process's environment
    /// (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let var = |name| std::env::var(name).ok();
        Notifier::from_vars(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    /// The notifier for these values of `NOTIFY_SOCKET`, `WATCHDOG_USEC`
    /// and `WATCHDOG_PID` in process `pid`. An address systemd could not
    /// have meant (empty, relative, `vsock:`) or a socket that cannot be
    /// made is logged and gives a disabled notifier; the watchdog is on
    /// only with a positive `WATCHDOG_USEC` meant for this process (a
    /// `WATCHDOG_PID` naming another process is its child's inheritance).
    pub fn from_vars(
        notify_socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Notifier {
        let mut notifier = Notifier::disabled();
        let Some(name) = notify_socket else {
            return notifier;
        };
        let target = match socket_addr(name).and_then(|addr| {
            let socket = UnixDatagram::unbound()?;
            // A stuck systemd must not hold up the control loop for long.
            socket.set_write_timeout(Some(SEND_TIMEOUT))?;
            Ok(Target { socket, addr })
        }) {
            Ok(t) => t,
            Err(e) => {
                warn!("NOTIFY_SOCKET {name:?}: {e}; systemd will not hear from rvsd");
                return notifier;
            }
        };
        notifier.target = Some(target);
        let for_me = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        notifier.watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_me)
            .map(|u| Duration::from_micros(u / 2));
        notifier
    }

    /// Whether systemd listens (`NOTIFY_SOCKET` was usable).
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often `watchdog` pings, when systemd set a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// rvsd serves: systemd starts the units ordered after it, and shows
    /// `status` in `systemctl status`.
    pub fn ready(&self, status: &str) {
        let status = status.replace('\n', " ");
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// A reload starts; `reloaded` ends it.
    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    /// The reload is over (applied or refused: rvsd serves either way).
    pub fn reloaded(&self) {
        self.send("READY=1");
    }

    /// rvsd is shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// Called by the control loop on every tick: pings systemd's watchdog
    /// when half its timeout has passed since the last ping (the first
    /// call pings). Returns whether it pinged.
    pub fn watchdog(&mut self, now: Instant) -> bool {
        let Some(every) = self.watchdog else {
            return false;
        };
        let due = self
            .last_ping
            .is_none_or(|last| now.saturating_duration_since(last) >= every);
        if due {
            self.send("WATCHDOG=1");
            self.last_ping = Some(now);
        }
        due
    }

    /// Sends one message; a failure is logged the first time only.
    fn send(&self, message: &str) {
        let Some(t) = &self.target else {
            return;
        };
        if let Err(e) = t.socket.send_to_addr(message.as_bytes(), &t.addr) {
            if !self.warned.replace(true) {
                warn!("systemd notification {message:?}: {e} (further failures not logged)");
            }
        }
    }
}

/// `NOTIFY_SOCKET`'s address: `@name` is Linux's abstract namespace, an
/// absolute path a socket file.
fn socket_addr(name: &str) -> std::io::Result<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(abstract_name.as_bytes())
    } else if name.starts_with('/') {
        SocketAddr::from_pathname(name)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an absolute path nor an abstract name (@...)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A name no other test (or test run) uses.
    fn unique(what: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("rvs-notify-{what}-{}-{n}", std::process::id())
    }

    /// systemd's end: a datagram socket bound at a path, removed on drop.
    struct PathListener {
        socket: UnixDatagram,
        path: PathBuf,
    }

    impl PathListener {
        fn new() -> PathListener {
            let path = std::env::temp_dir().join(unique("path"));
            let socket = UnixDatagram::bind(&path).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            PathListener { socket, path }
        }

        fn name(&self) -> String {
            self.path.to_str().unwrap().to_string()
        }
    }

    impl Drop for PathListener {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn nothing_waiting(socket: &UnixDatagram) -> bool {
        socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let empty = socket.recv(&mut buf).is_err();
        socket.set_nonblocking(false).unwrap();
        empty
    }

    fn notifier_for(name: &str, usec: Option<&str>) -> Notifier {
        Notifier::from_vars(Some(name), usec, None, std::process::id())
    }

    #[test]
    fn ready_reaches_a_path_socket_with_its_status() {
        let l = PathListener::new();
        notifier_for(&l.name(), None).ready("ready: 2 worker(s)");
        assert_eq!(recv(&l.socket), "READY=1\nSTATUS=ready: 2 worker(s)");
    }

    #[test]
    fn an_at_sign_names_the_abstract_namespace() {
        use std::os::linux::net::SocketAddrExt;
        let name = unique("abstract");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        notifier_for(&format!("@{name}"), None).stopping();
        assert_eq!(recv(&socket), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn a_reload_is_bracketed_by_reloading_and_ready() {
        let l = PathListener::new();
        let n = notifier_for(&l.name(), None);
        n.reloading();
        n.reloaded();
        assert_eq!(recv(&l.socket), "RELOADING=1");
        assert_eq!(recv(&l.socket), "READY=1");
    }

    #[test]
    fn a_status_with_newlines_stays_one_field() {
        let l = PathListener::new();
        notifier_for(&l.name(), None).ready("a\nWATCHDOG=1");
        assert_eq!(recv(&l.socket), "READY=1\nSTATUS=a WATCHDOG=1");
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout() {
        let l = PathListener::new();
        let mut n = notifier_for(&l.name(), Some("2000000"));
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));
        let t0 = Instant::now();
        assert!(n.watchdog(t0), "the first tick pings");
        assert_eq!(recv(&l.socket), "WATCHDOG=1");
        assert!(!n.watchdog(t0 + Duration::from_millis(999)));
        assert!(nothing_waiting(&l.socket));
        assert!(n.watchdog(t0 + Duration::from_secs(1)));
        assert_eq!(recv(&l.socket), "WATCHDOG=1");
    }

    #[test]
    fn no_watchdog_without_watchdog_usec() {
        let l = PathListener::new();
        let mut n = notifier_for(&l.name(), None);
        assert_eq!(n.watchdog_interval(), None);
        assert!(!n.watchdog(Instant::now()));
        assert!(nothing_waiting(&l.socket));
    }

    #[test]
    fn a_watchdog_meant_for_another_process_is_ignored() {
        let l = PathListener::new();
        let pid = std::process::id();
        let other = (pid + 1).to_string();
        let n = Notifier::from_vars(Some(&l.name()), Some("1000000"), Some(&other), pid);
        assert_eq!(n.watchdog_interval(), None);
        let mine = Notifier::from_vars(
            Some(&l.name()),
            Some("1000000"),
            Some(&pid.to_string()),
            pid,
        );
        assert_eq!(mine.watchdog_interval(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn a_zero_or_unreadable_watchdog_usec_means_no_watchdog() {
        let l = PathListener::new();
        for usec in ["0", "soon", ""] {
            let n = notifier_for(&l.name(), Some(usec));
            assert_eq!(n.watchdog_interval(), None, "WATCHDOG_USEC={usec:?}");
        }
    }

    #[test]
    fn without_notify_socket_nothing_is_sent() {
        let mut n = Notifier::from_vars(None, Some("1000000"), None, std::process::id());
        assert!(!n.is_enabled());
        assert!(!n.watchdog(Instant::now()), "no watchdog without a socket");
        n.ready("ready");
    }

    #[test]
    fn a_relative_or_vsock_address_disables_the_notifier() {
        for name in ["relative/sock", "vsock:2:1234", ""] {
            assert!(!notifier_for(name, None).is_enabled(), "{name:?}");
        }
    }

    #[test]
    fn a_vanished_listener_does_not_fail_the_caller() {
        let l = PathListener::new();
        let name = l.name();
        drop(l);
        let mut n = notifier_for(&name, Some("1000000"));
        n.ready("ready");
        n.stopping();
        assert!(n.watchdog(Instant::now()), "the ping is attempted");
    }
}
