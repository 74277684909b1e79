//! Passive checks: a real server judged by the handshakes real clients
//! make with it through the balancer (`[virtual_server.passive_check]`).
//!
//! Why: an active check probes every `interval_ms` from the management
//! network; a server can fail between two probes, or fail real clients
//! while it still accepts the probe (an application that resets
//! connections from some networks, a full accept queue that still answers
//! the probe's one connection, a filter). The workers count, per real
//! server, the handshakes they forwarded and how each ended
//! (`lb::handshake`: SYN-ACK, reset, or no SYN-ACK within
//! `syn_timeout_ms`); this module reads the summed counters every control
//! tick and keeps, per server, the outcomes of a sliding window.
//!
//! The verdict: when, over the window or its most recent part, the
//! handshakes decided reach `min_attempts` and the failed ones (resets and
//! timeouts) reach `max_failure_percent` of them, the server is taken out as a failed
//! active check would (`ControlState` marks it down in the checker, which
//! then needs `rise` successes in a row to bring it back). Only up servers
//! are judged; a down one's window is emptied and its counters taken as
//! the new starting point, so a server coming back is judged on what
//! happens from then on, never on the counts that took it out.
//!
//! Why the recent part too: a server that has served well for the whole
//! window and then starts resetting every client would otherwise stay in
//! until its failures outnumber the window's successes (at 50 new
//! connections a second and a 10 s window, 500 failed clients); judged on
//! its recent spans it goes after about `min_attempts`. The spans are the
//! window's slots, newest first.
//!
//! The window is a ring of up to `SLOTS` slots of at least `MIN_SLOT`
//! (a 10 s window: 50 slots of 200 ms): what is added goes to the slot of
//! its time, and slots older than the window are emptied as time passes,
//! so the sum covers the window less at most one slot. Pure: time is
//! passed in.

use super::config::{PassiveCheckConfig, VirtualServerConfig};
use crate::dataplane::stats::RealServerCounters;
use crate::lb::service::ServiceTable;
use std::time::{Duration, Instant};

/// Most slots of a window.
const SLOTS: usize = 50;
/// The shortest slot: about a control tick, finer than the counters
/// change (the workers publish every 100 ms).
const MIN_SLOT: Duration = Duration::from_millis(100);

/// Handshake outcomes: completed, reset by the server, timed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Completed (SYN-ACK within the timeout).
    pub ok: u64,
    /// Reset by the server before its SYN-ACK.
    pub resets: u64,
    /// No SYN-ACK within the timeout.
    pub timeouts: u64,
}

impl Tally {
    /// A server's outcomes so far, from its summed counters.
    pub fn of(c: &RealServerCounters) -> Tally {
        Tally {
            ok: c.handshake_ok,
            resets: c.handshake_resets,
            timeouts: c.handshake_timeouts,
        }
    }

    /// Handshakes decided.
    pub fn attempts(&self) -> u64 {
        self.ok + self.failed()
    }

    /// Handshakes failed (reset or timed out).
    pub fn failed(&self) -> u64 {
        self.resets + self.timeouts
    }

    /// `self - earlier`, or `None` when a counter went back (a restart of
    /// the counts: nothing to add).
    fn since(&self, earlier: &Tally) -> Option<Tally> {
        Some(Tally {
            ok: self.ok.checked_sub(earlier.ok)?,
            resets: self.resets.checked_sub(earlier.resets)?,
            timeouts: self.timeouts.checked_sub(earlier.timeouts)?,
        })
    }

    fn add(&mut self, o: &Slot) {
        self.ok += u64::from(o.ok);
        self.resets += u64::from(o.resets);
        self.timeouts += u64::from(o.timeouts);
    }
}

/// One slot's outcomes (32 bits each: a slot is at most 72 s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    ok: u32,
    resets: u32,
    timeouts: u32,
}

impl Slot {
    fn add(&mut self, t: &Tally) {
        let c = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.ok = self.ok.saturating_add(c(t.ok));
        self.resets = self.resets.saturating_add(c(t.resets));
        self.timeouts = self.timeouts.saturating_add(c(t.timeouts));
    }
}

/// A sliding window of handshake outcomes (see the module doc).
#[derive(Clone, Debug)]
pub struct Window {
    slots: Box<[Slot]>,
    /// The slot being filled.
    head: usize,
    /// When the head slot started; `None` while empty.
    head_start: Option<Instant>,
    slot_len: Duration,
}

impl Window {
    /// An empty window `len` long: `SLOTS` slots, or fewer of `MIN_SLOT`.
    pub fn new(len: Duration) -> Window {
        let slot_len = (len / SLOTS as u32).max(MIN_SLOT);
        let n = (len.as_nanos() / slot_len.as_nanos()).clamp(1, SLOTS as u128) as usize;
        Window {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            head: 0,
            head_start: None,
            slot_len,
        }
    }

    /// Adds outcomes seen at `now`.
    pub fn add(&mut self, now: Instant, t: &Tally) {
        self.advance(now);
        self.slots[self.head].add(t);
    }

    /// The outcomes within the window at `now`.
    pub fn sum(&mut self, now: Instant) -> Tally {
        self.advance(now);
        let mut s = Tally::default();
        for t in self.slots.iter() {
            s.add(t);
        }
        s
    }

    /// The most recent span of the window (newest slots first, up to the
    /// whole window) that fails `c`, with its outcomes and the length its
    /// slots cover (the newest one whole); `None`
    /// when none does. Judging the recent spans too is what takes a
    /// server that has just started failing out after about
    /// `min_attempts` failures, instead of after as many failures as it
    /// had successes over the whole window.
    pub fn failing_span(
        &mut self,
        now: Instant,
        c: &PassiveCheckConfig,
    ) -> Option<(Tally, Duration)> {
        self.advance(now);
        let n = self.slots.len();
        let mut acc = Tally::default();
        for k in 0..n {
            acc.add(&self.slots[(self.head + n - k) % n]);
            if fails(&acc, c) {
                return Some((acc, self.slot_len * (k as u32 + 1)));
            }
        }
        None
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.head_start = None;
    }

    /// Moves the head to `now`'s slot, emptying the slots it passes.
    fn advance(&mut self, now: Instant) {
        let Some(start) = self.head_start else {
            self.head_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        let steps = (elapsed.as_nanos() / self.slot_len.as_nanos()) as usize;
        if steps == 0 {
            return;
        }
        let n = self.slots.len();
        for _ in 0..steps.min(n) {
            self.head = (self.head + 1) % n;
            self.slots[self.head] = Slot::default();
        }
        self.head_start = Some(start + self.slot_len * steps.min(u32::MAX as usize) as u32);
    }
}

/// Whether `window` fails the check of `c`: enough handshakes decided, and
/// enough of them failed.
pub fn fails(window: &Tally, c: &PassiveCheckConfig) -> bool {
    let attempts = window.attempts();
    attempts >= u64::from(c.min_attempts)
        && window.failed() * 100 >= u64::from(c.max_failure_percent) * attempts
}

/// The passive-check keys that differ between `old` and `new`, as
/// `passive_check.KEY old -> new` (`syn_timeout_ms` left to the services'
/// own diff).
fn setting_changes(old: &PassiveCheckConfig, new: &PassiveCheckConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |key: &str, a: String, b: String| {
        if a != b {
            out.push(format!("passive_check.{key} {a} -> {b}"));
        }
    };
    diff("enabled", old.enabled.to_string(), new.enabled.to_string());
    diff(
        "window_s",
        old.window.as_secs().to_string(),
        new.window.as_secs().to_string(),
    );
    diff(
        "min_attempts",
        old.min_attempts.to_string(),
        new.min_attempts.to_string(),
    );
    diff(
        "max_failure_percent",
        old.max_failure_percent.to_string(),
        new.max_failure_percent.to_string(),
    );
    out
}

/// A real server the passive check takes out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Its service's index.
    pub vs: u16,
    /// Its index within the service.
    pub rs: u16,
    /// The outcomes that decided: those of the most recent span of the
    /// window that failed the check.
    pub window: Tally,
    /// That span's length (at most the window's).
    pub window_len: Duration,
}

impl Verdict {
    /// Why, for the log and the status: `23 of 25 handshakes failed in
    /// 0.4 s (20 resets, 3 timeouts)`, the time the slots that decided
    /// cover.
    pub fn reason(&self) -> String {
        format!(
            "{} of {} handshakes failed in {:.1} s ({} resets, {} timeouts)",
            self.window.failed(),
            self.window.attempts(),
            self.window_len.as_secs_f64(),
            self.window.resets,
            self.window.timeouts
        )
    }
}

/// One real server's view.
#[derive(Clone, Debug)]
struct Server {
    /// Its counters when last read (`None` before the first read).
    last: Option<Tally>,
    window: Window,
    /// Taken out by the passive check, and not up since.
    down: bool,
    /// Times the passive check took it out.
    downs: u64,
}

impl Server {
    fn new(len: Duration) -> Server {
        Server {
            last: None,
            window: Window::new(len),
            down: false,
            downs: 0,
        }
    }
}

/// The passive checks of every service (see the module doc).
#[derive(Debug, Default)]
pub struct PassiveChecks {
    /// By service: its settings (off for services the files do not name).
    settings: Vec<PassiveCheckConfig>,
    /// By service, by real server.
    servers: Vec<Vec<Server>>,
}

impl PassiveChecks {
    /// The checks of `services` as `configs` set them (matched by address
    /// and protocol). Called at start and after every reload: servers keep
    /// their counts and windows (indices are stable across reloads), a
    /// service whose window length changed starts its windows afresh.
    /// Returns what changed for services checked before, one line each
    /// (`virtual server web: passive_check.enabled false -> true`), for a
    /// reload's answer (`syn_timeout_ms` is the service's own setting,
    /// named by the reload's diff of the services).
    pub fn configure(
        &mut self,
        services: &ServiceTable,
        configs: &[VirtualServerConfig],
    ) -> Vec<String> {
        let settings: Vec<PassiveCheckConfig> = services
            .services()
            .iter()
            .enumerate()
            .map(|(v, vs)| {
                if services.is_draining(v as u16) {
                    return PassiveCheckConfig::default();
                }
                configs
                    .iter()
                    .find(|c| c.address == vs.vip_addr() && c.protocol == vs.key.protocol)
                    .map(|c| c.passive_check.clone())
                    .unwrap_or_default()
            })
            .collect();
        self.servers.resize_with(settings.len(), Vec::new);
        for (v, (s, vs)) in settings.iter().zip(services.services()).enumerate() {
            let servers = &mut self.servers[v];
            let same = self.settings.get(v).map(|o| o.window) == Some(s.window);
            if !same {
                for srv in servers.iter_mut() {
                    srv.window = Window::new(s.window);
                }
            }
            servers.resize_with(vs.real_servers.len(), || Server::new(s.window));
        }
        let changes = self
            .settings
            .iter()
            .zip(&settings)
            .zip(services.services())
            .filter_map(|((old, new), vs)| {
                let keys = setting_changes(old, new);
                (!keys.is_empty())
                    .then(|| format!("virtual server {}: {}", vs.name, keys.join(", ")))
            })
            .collect();
        self.settings = settings;
        changes
    }

    /// True when some service has its passive check on.
    pub fn any_enabled(&self) -> bool {
        self.settings.iter().any(|s| s.enabled)
    }

    /// Reads the servers' summed counters `totals` (flat: services in
    /// order, their servers in order) at `now` and returns the servers to
    /// take out. Only servers up in `services` are judged; a down one's
    /// window is emptied (see the module doc). A verdict's server is
    /// counted as taken out at once (`is_down`).
    pub fn observe(
        &mut self,
        now: Instant,
        totals: &[RealServerCounters],
        services: &ServiceTable,
    ) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        let mut flat = 0;
        for (v, servers) in self.servers.iter_mut().enumerate() {
            let settings = self.settings.get(v).cloned().unwrap_or_default();
            for (r, srv) in servers.iter_mut().enumerate() {
                let Some(total) = totals.get(flat + r).map(Tally::of) else {
                    continue;
                };
                let delta = srv.last.and_then(|l| total.since(&l));
                srv.last = Some(total);
                let up = !services.is_down(v as u16, r as u16);
                if !settings.enabled || !up {
                    srv.window.clear();
                    continue;
                }
                srv.down = false;
                if let Some(d) = delta {
                    srv.window.add(now, &d);
                }
                if let Some((window, window_len)) = srv.window.failing_span(now, &settings) {
                    srv.window.clear();
                    srv.down = true;
                    srv.downs += 1;
                    verdicts.push(Verdict {
                        vs: v as u16,
                        rs: r as u16,
                        window,
                        window_len,
                    });
                }
            }
            flat += servers.len();
        }
        verdicts
    }

    /// Takes back the verdict on server `rs` of `vs`: it could not be
    /// taken out (no active check would bring it back).
    pub fn revoke(&mut self, vs: u16, rs: u16) {
        if let Some(s) = self
            .servers
            .get_mut(usize::from(vs))
            .and_then(|v| v.get_mut(usize::from(rs)))
        {
            s.down = false;
            s.downs = s.downs.saturating_sub(1);
        }
    }

    /// Whether the passive check took server `rs` of `vs` out and it has
    /// not been up since.
    pub fn is_down(&self, vs: u16, rs: u16) -> bool {
        self.server(vs, rs).is_some_and(|s| s.down)
    }

    /// Times the passive check took server `rs` of `vs` out.
    pub fn downs(&self, vs: u16, rs: u16) -> u64 {
        self.server(vs, rs).map_or(0, |s| s.downs)
    }

    /// Per service, per real server: (taken out by the passive check now,
    /// times taken out), for the list and the metrics.
    pub fn table(&self) -> Vec<Vec<(bool, u64)>> {
        self.servers
            .iter()
            .map(|v| v.iter().map(|s| (s.down, s.downs)).collect())
            .collect()
    }

    fn server(&self, vs: u16, rs: u16) -> Option<&Server> {
        self.servers.get(usize::from(vs))?.get(usize::from(rs))
    }
}

#[cfg(test)]
mod tests;
