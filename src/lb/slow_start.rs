//! Slow start (HAProxy's `slowstart`): a real server that starts taking new
//! connections again (up after down, added by a reload, raised from weight
//! 0) gets its weight back over `slow_start_s` rather than at once.
//!
//! Why: a server that comes back has no connections, so the
//! least-connection schedulers see it as the least loaded by far and send
//! it every new connection until it holds as many as the others, which a
//! cold cache, a JIT or a connection pool filling up may not survive.
//!
//! The ramp is linear: `max(1, round(weight x elapsed / duration))` from
//! the moment the server comes up, the full weight once `duration` has
//! passed. The floor of 1 keeps a ramping server in rotation (weight 0
//! would mean "no new connections"). The control plane owns the clock
//! (`control::servers`): it computes each ramping server's [`Ramp`] and
//! republishes the service snapshot every [`refresh_interval`] while any
//! ramp runs, and not at all when none does. Workers only read the ramped
//! weight, plus the full one for `lc` ([`lc_scale`]), which ignores
//! weights otherwise.

use std::time::{Duration, Instant};

/// Most snapshots one ramp republishes: the ramp moves in about this many
/// steps (fewer when [`MIN_REFRESH`] is longer).
pub const STEPS: u32 = 50;

/// Shortest time between two republished steps of a ramp: the control
/// loop's tick.
pub const MIN_REFRESH: Duration = Duration::from_millis(100);

/// Where one real server is in its slow start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ramp {
    /// Time since the server came up.
    pub elapsed: Duration,
    /// The whole ramp (`slow_start_s`).
    pub duration: Duration,
}

impl Ramp {
    /// The ramp at `now` of a server up since `since` with a ramp of
    /// `duration`; `None` once the ramp is over (or when it is zero: no
    /// slow start).
    pub fn at(since: Instant, duration: Duration, now: Instant) -> Option<Ramp> {
        let elapsed = now.saturating_duration_since(since);
        (elapsed < duration).then_some(Ramp { elapsed, duration })
    }

    /// The weight a server of weight `full` has at this point of its ramp:
    /// `max(1, round(full x elapsed / duration))`, `full` once the ramp is
    /// over; 0 stays 0 (a drained server is not revived by its ramp).
    pub fn weight(&self, full: u32) -> u32 {
        if full == 0 || self.elapsed >= self.duration {
            return full;
        }
        let num = u128::from(full) * self.elapsed.as_nanos();
        let den = self.duration.as_nanos();
        let rounded = (num + den / 2) / den;
        // Below `full` since elapsed < duration, so it fits in a u32.
        (rounded as u32).clamp(1, full)
    }

    /// How far the ramp is, 0 to 1 (for `rvsadm list`).
    pub fn progress(&self) -> f64 {
        if self.duration.is_zero() {
            return 1.0;
        }
        (self.elapsed.as_secs_f64() / self.duration.as_secs_f64()).min(1.0)
    }
}

/// The ramped weight of a server of weight `full`: `full` without a ramp.
pub fn ramped(full: u32, ramp: Option<Ramp>) -> u32 {
    ramp.map_or(full, |r| r.weight(full))
}

/// How often the control plane republishes while a ramp of `duration`
/// runs: `max(MIN_REFRESH, duration / STEPS)`.
pub fn refresh_interval(duration: Duration) -> Duration {
    (duration / STEPS).max(MIN_REFRESH)
}

/// For `lc`, which ignores weights: the factor (numerator, denominator)
/// by which a server's connection count is scaled so that, while it ramps
/// (`weight` below its `full` weight), it holds `weight / full` of the
/// connections the others hold, instead of all new ones until it has as
/// many. `(1, 1)` outside a ramp (`full <= weight`, or `full` unknown: 0).
#[inline]
pub fn lc_scale(weight: u32, full: u32) -> (u32, u32) {
    if full > weight && weight > 0 {
        (full, weight)
    } else {
        (1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(elapsed_ms: u64, duration_ms: u64) -> Ramp {
        Ramp {
            elapsed: Duration::from_millis(elapsed_ms),
            duration: Duration::from_millis(duration_ms),
        }
    }

    #[test]
    fn the_weight_grows_linearly_from_one_to_full() {
        let w: Vec<u32> = (0..=10)
            .map(|s| ramp(s * 1000, 10_000).weight(10))
            .collect();
        assert_eq!(w, [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn the_weight_is_rounded_to_the_nearest() {
        // 100 x 2.5 / 8 = 31.25 and 100 x 2.6 / 8 = 32.5.
        assert_eq!(ramp(2500, 8000).weight(100), 31);
        assert_eq!(ramp(2600, 8000).weight(100), 33);
    }

    #[test]
    fn a_ramping_server_never_drops_to_weight_zero() {
        assert_eq!(ramp(0, 8000).weight(1), 1);
        assert_eq!(ramp(0, 8000).weight(65535), 1);
        assert_eq!(ramp(7999, 8000).weight(1), 1);
    }

    #[test]
    fn weight_zero_stays_zero_during_a_ramp() {
        assert_eq!(ramp(4000, 8000).weight(0), 0);
    }

    #[test]
    fn a_ramp_ends_at_its_duration() {
        let t0 = Instant::now();
        let d = Duration::from_secs(8);
        let mid = Ramp::at(t0, d, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(mid.elapsed, Duration::from_secs(2));
        assert_eq!(mid.weight(8), 2);
        assert_eq!(mid.progress(), 0.25);
        assert!(Ramp::at(t0, d, t0 + d).is_none());
        assert!(Ramp::at(t0, d, t0 + d + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn a_zero_duration_is_no_ramp() {
        let t0 = Instant::now();
        assert!(Ramp::at(t0, Duration::ZERO, t0).is_none());
        assert_eq!(ramped(7, None), 7);
    }

    #[test]
    fn a_clock_before_the_start_counts_as_the_start() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let r = Ramp::at(t0, Duration::from_secs(8), Instant::now()).unwrap();
        assert_eq!(r.elapsed, Duration::ZERO);
    }

    #[test]
    fn the_refresh_interval_is_a_fiftieth_of_the_ramp_but_not_below_a_tick() {
        assert_eq!(
            refresh_interval(Duration::from_secs(100)),
            Duration::from_secs(2)
        );
        assert_eq!(refresh_interval(Duration::from_secs(1)), MIN_REFRESH);
    }

    #[test]
    fn lc_scales_only_ramping_servers() {
        assert_eq!(lc_scale(2, 10), (10, 2));
        assert_eq!(lc_scale(10, 10), (1, 1));
        assert_eq!(lc_scale(3, 0), (1, 1));
        assert_eq!(lc_scale(0, 10), (1, 1));
    }
}
