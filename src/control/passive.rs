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
//! The verdict: when the handshakes decided in the window reach
//! `min_attempts` and the failed ones (resets and timeouts) reach
//! `max_failure_percent` of them, the server is taken out as a failed
//! active check would (`ControlState` marks it down in the checker, which
//! then needs `rise` successes in a row to bring it back). Only up servers
//! are judged; a down one's window is emptied and its counters taken as
//! the new starting point, so a server coming back is judged on what
//! happens from then on, never on the counts that took it out.
//!
//! The window is a ring of `SLOTS` slots, each a tenth of `window_s`:
//! what is added goes to the slot of its time, and slots older than the
//! window are emptied as time passes, so the sum covers between nine and
//! ten tenths of the window. Pure: time is passed in.

use super::config::{PassiveCheckConfig, VirtualServerConfig};
use crate::dataplane::stats::RealServerCounters;
use crate::lb::service::ServiceTable;
use std::time::{Duration, Instant};

/// Slots of a window.
const SLOTS: usize = 10;

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

    fn add(&mut self, o: &Tally) {
        self.ok += o.ok;
        self.resets += o.resets;
        self.timeouts += o.timeouts;
    }
}

/// A sliding window of handshake outcomes (see the module doc).
#[derive(Clone, Debug)]
pub struct Window {
    slots: [Tally; SLOTS],
    /// The slot being filled.
    head: usize,
    /// When the head slot started; `None` while empty.
    head_start: Option<Instant>,
    slot_len: Duration,
}

impl Window {
    /// An empty window `len` long (at least `SLOTS` nanoseconds).
    pub fn new(len: Duration) -> Window {
        Window {
            slots: [Tally::default(); SLOTS],
            head: 0,
            head_start: None,
            slot_len: (len / SLOTS as u32).max(Duration::from_nanos(1)),
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
        for t in &self.slots {
            s.add(t);
        }
        s
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.slots = [Tally::default(); SLOTS];
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
        for _ in 0..steps.min(SLOTS) {
            self.head = (self.head + 1) % SLOTS;
            self.slots[self.head] = Tally::default();
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

/// A real server the passive check takes out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Its service's index.
    pub vs: u16,
    /// Its index within the service.
    pub rs: u16,
    /// The window's outcomes that decided.
    pub window: Tally,
    /// The window's length.
    pub window_len: Duration,
}

impl Verdict {
    /// Why, for the log and the status: `23 of 25 handshakes failed in 10 s
    /// (20 resets, 3 timeouts)`.
    pub fn reason(&self) -> String {
        format!(
            "{} of {} handshakes failed in {} s ({} resets, {} timeouts)",
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
    pub fn configure(&mut self, services: &ServiceTable, configs: &[VirtualServerConfig]) {
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
                    .find(|c| {
                        *c.address.ip() == vs.key.vip.ip
                            && c.address.port() == vs.key.vip.port
                            && c.protocol == vs.key.protocol
                    })
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
        self.settings = settings;
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
                let window = srv.window.sum(now);
                if fails(&window, &settings) {
                    srv.window.clear();
                    srv.down = true;
                    srv.downs += 1;
                    verdicts.push(Verdict {
                        vs: v as u16,
                        rs: r as u16,
                        window,
                        window_len: settings.window,
                    });
                }
            }
            flat += servers.len();
        }
        verdicts
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
