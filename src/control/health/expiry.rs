//! When to warn that a real server's TLS certificate expires soon: once
//! per target per day (each time its whole days left go down by one), and
//! again when its certificate changes.
//!
//! Why rate-limited here and not in the probe: a check every second would
//! otherwise log the same warning 86,400 times a day. The checker keeps,
//! per target, the certificate (its notAfter) and the days left it last
//! warned about; a warning is due when either differs, so a certificate
//! that is not renewed is warned about once a day (the days left change),
//! and a renewal that is still too short is warned about at once.

use super::tls;
use std::collections::HashMap;
use std::time::SystemTime;

/// The last warning per target id: (notAfter, days left), both as
/// seconds and days since the Unix epoch.
#[derive(Debug, Default)]
pub(super) struct Warnings {
    last: HashMap<u64, (i64, i64)>,
}

impl Warnings {
    /// The warning due for target `id`, whose last probe read
    /// `not_after` (none: no handshake, nothing to say) with
    /// `tls_expiry_warn_days` = `warn_days`, at wall-clock time `now`:
    /// `certificate expires in 2 days (...)`, or `None` when not expiring
    /// within the days or already said today.
    pub(super) fn check(
        &mut self,
        id: u64,
        not_after: Option<SystemTime>,
        warn_days: u32,
        now: SystemTime,
    ) -> Option<String> {
        let not_after = tls::unix_seconds(not_after?);
        let now = tls::unix_seconds(now);
        if !tls::expires_soon(not_after, now, warn_days) {
            // Renewed (or the setting changed): a later expiry warns anew.
            self.last.remove(&id);
            return None;
        }
        let key = (not_after, tls::days_left(not_after, now));
        if self.last.insert(id, key) == Some(key) {
            return None;
        }
        Some(tls::expiry_note(not_after, now))
    }

    /// Forgets the targets for which `keep` is false (removed by a
    /// reload).
    pub(super) fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.last.retain(|&id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const DAY: u64 = 86_400;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_certificate_within_the_days_is_warned_about_once_a_day() {
        let mut w = Warnings::default();
        let expiry = Some(at(1000 * DAY));
        // Five and a half days before: "5 days" until 5 days before.
        let now = 995 * DAY - DAY / 2;
        let first = w.check(1, expiry, 14, at(now));
        assert_eq!(
            first.as_deref(),
            Some("certificate expires in 5 days (1972-09-27 00:00:00 UTC)")
        );
        assert_eq!(w.check(1, expiry, 14, at(now + 60)), None);
        assert_eq!(w.check(1, expiry, 14, at(now + DAY / 2)), None);
        let next = w.check(1, expiry, 14, at(now + DAY / 2 + 1));
        assert!(next.unwrap().contains("in 4 days"));
        assert_eq!(w.check(1, expiry, 14, at(now + DAY / 2 + DAY)), None);
        assert!(w
            .check(1, expiry, 14, at(now + DAY / 2 + DAY + 1))
            .is_some());
    }

    #[test]
    fn each_target_is_warned_about_separately() {
        let mut w = Warnings::default();
        let expiry = Some(at(1000 * DAY));
        assert!(w.check(1, expiry, 14, at(999 * DAY)).is_some());
        assert!(w.check(2, expiry, 14, at(999 * DAY)).is_some());
    }

    #[test]
    fn a_new_certificate_still_expiring_soon_is_warned_about_at_once() {
        let mut w = Warnings::default();
        let now = at(990 * DAY);
        assert!(w.check(1, Some(at(1000 * DAY)), 14, now).is_some());
        assert!(w.check(1, Some(at(1000 * DAY + 3600)), 14, now).is_some());
    }

    #[test]
    fn a_certificate_beyond_the_days_or_with_warnings_off_says_nothing() {
        let mut w = Warnings::default();
        assert_eq!(w.check(1, Some(at(1000 * DAY)), 14, at(900 * DAY)), None);
        assert_eq!(w.check(1, Some(at(1000 * DAY)), 0, at(999 * DAY)), None);
        assert_eq!(w.check(1, None, 14, at(999 * DAY)), None);
    }

    #[test]
    fn a_renewal_then_a_new_approach_warns_again() {
        let mut w = Warnings::default();
        let expiry = Some(at(1000 * DAY));
        assert!(w.check(1, expiry, 14, at(999 * DAY)).is_some());
        assert_eq!(w.check(1, Some(at(2000 * DAY)), 14, at(999 * DAY)), None);
        assert!(w.check(1, expiry, 14, at(999 * DAY)).is_some());
    }

    #[test]
    fn removed_targets_are_forgotten() {
        let mut w = Warnings::default();
        let expiry = Some(at(1000 * DAY));
        w.check(1, expiry, 14, at(999 * DAY));
        w.check(2, expiry, 14, at(999 * DAY));
        w.retain(|id| id == 2);
        assert!(w.check(1, expiry, 14, at(999 * DAY)).is_some());
        assert!(w.check(2, expiry, 14, at(999 * DAY)).is_none());
    }
}
