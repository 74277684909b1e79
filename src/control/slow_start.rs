//! The clock of the slow starts (`crate::lb::slow_start`): when each
//! ramping real server came up, and when the ramps' next step is due.
//!
//! `control::servers` asks it to begin a ramp when a server starts taking
//! new connections and to end one when it stops, and on each control tick
//! whether a step is due. With no ramp running nothing is due and nothing
//! is republished: slow start costs nothing while idle. While ramps run,
//! a step comes every `lb::slow_start::refresh_interval` of the shortest
//! running ramp, so a ramp is republished in about `STEPS` steps.

use crate::lb::service::{RealServerId, ServiceId};
use crate::lb::slow_start::{refresh_interval, Ramp};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A real server: its service and its index there.
pub type ServerKey = (ServiceId, RealServerId);

/// The running ramps.
#[derive(Clone, Debug, Default)]
pub struct Ramps {
    /// When each ramping server came up.
    since: BTreeMap<ServerKey, Instant>,
    /// When the next step is due; `None` with no ramp.
    next: Option<Instant>,
}

impl Ramps {
    /// No ramp.
    pub fn new() -> Ramps {
        Ramps::default()
    }

    /// Begins the ramp of `key` at `now` (over again if one ran); `None`,
    /// and no ramp, when `duration` is zero.
    pub fn begin(&mut self, key: ServerKey, duration: Duration, now: Instant) -> Option<Ramp> {
        let ramp = Ramp::at(now, duration, now);
        match ramp {
            Some(_) => {
                self.since.insert(key, now);
                let step = now + refresh_interval(duration);
                self.next = Some(self.next.map_or(step, |n| n.min(step)));
            }
            None => self.end(key),
        }
        ramp
    }

    /// Ends the ramp of `key`, if one runs (it went down or was drained).
    pub fn end(&mut self, key: ServerKey) {
        self.since.remove(&key);
        if self.since.is_empty() {
            self.next = None;
        }
    }

    /// Where the ramp of `key` is at `now` when it lasts `duration`; `None`
    /// (and the ramp ended) when none runs or it is over.
    pub fn at(&mut self, key: ServerKey, duration: Duration, now: Instant) -> Option<Ramp> {
        let ramp = Ramp::at(*self.since.get(&key)?, duration, now);
        if ramp.is_none() {
            self.end(key);
        }
        ramp
    }

    /// True when a step of the running ramps is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| now >= t)
    }

    /// True when no ramp runs.
    pub fn is_idle(&self) -> bool {
        self.since.is_empty()
    }

    /// The step at `now`: every running ramp where it is now (`None` for
    /// those that just ended, which are dropped), `duration` giving each
    /// server's ramp. The next step is due a refresh interval later.
    pub fn step(
        &mut self,
        now: Instant,
        duration: impl Fn(ServerKey) -> Duration,
    ) -> Vec<(ServerKey, Option<Ramp>)> {
        let mut out = Vec::with_capacity(self.since.len());
        let mut interval: Option<Duration> = None;
        self.since.retain(|&key, &mut since| {
            let d = duration(key);
            let ramp = Ramp::at(since, d, now);
            if ramp.is_some() {
                let i = refresh_interval(d);
                interval = Some(interval.map_or(i, |x| x.min(i)));
            }
            out.push((key, ramp));
            ramp.is_some()
        });
        self.next = interval.map(|i| now + i);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S8: Duration = Duration::from_secs(8);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn nothing_is_due_without_a_ramp() {
        let r = Ramps::new();
        assert!(r.is_idle());
        assert!(!r.due(Instant::now() + Duration::from_secs(3600)));
    }

    #[test]
    fn a_ramp_begins_at_weight_one_and_steps_every_fiftieth() {
        let t0 = Instant::now();
        let mut r = Ramps::new();
        let ramp = r.begin((0, 1), S8, t0).unwrap();
        assert_eq!(ramp.weight(10), 1);
        assert!(!r.due(t0 + secs(0.15)));
        assert!(r.due(t0 + secs(0.16)));
        let steps = r.step(t0 + secs(4.0), |_| S8);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].1.unwrap().weight(10), 5);
        assert!(!r.due(t0 + secs(4.1)));
        assert!(r.due(t0 + secs(4.16)));
    }

    #[test]
    fn a_ramp_ends_at_its_duration_and_then_nothing_is_due() {
        let t0 = Instant::now();
        let mut r = Ramps::new();
        r.begin((0, 0), S8, t0);
        let steps = r.step(t0 + S8, |_| S8);
        assert_eq!(steps, [((0, 0), None)]);
        assert!(r.is_idle());
        assert!(!r.due(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_zero_duration_begins_no_ramp() {
        let mut r = Ramps::new();
        assert_eq!(r.begin((0, 0), Duration::ZERO, Instant::now()), None);
        assert!(r.is_idle());
    }

    #[test]
    fn an_ended_ramp_begins_again_from_the_start() {
        let t0 = Instant::now();
        let mut r = Ramps::new();
        r.begin((0, 0), S8, t0);
        r.end((0, 0));
        assert!(r.is_idle());
        let again = r.begin((0, 0), S8, t0 + secs(5.0)).unwrap();
        assert_eq!(again.elapsed, Duration::ZERO);
        assert_eq!(r.at((0, 0), S8, t0 + secs(7.0)).unwrap().weight(8), 2);
    }

    #[test]
    fn the_shortest_running_ramp_sets_the_step() {
        let t0 = Instant::now();
        let mut r = Ramps::new();
        r.begin((0, 0), Duration::from_secs(100), t0);
        r.begin((0, 1), Duration::from_secs(10), t0);
        let d = |k: ServerKey| Duration::from_secs(if k.1 == 0 { 100 } else { 10 });
        r.step(t0 + secs(1.0), d);
        assert!(r.due(t0 + secs(1.2)), "10 s / 50");
        r.step(t0 + secs(10.0), d);
        assert!(!r.due(t0 + secs(10.2)), "only the 100 s ramp is left");
        assert!(r.due(t0 + secs(12.0)));
    }
}
