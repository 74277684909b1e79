//! The sliding window that refuses a replayed sequence number (as IPsec's
//! anti-replay window, RFC 4303 section 3.4.3): the highest number seen
//! and a bitmap of the [`WINDOW`] numbers below it. A number above the
//! highest moves the window; one inside it is accepted once; one below it
//! is refused. Sequence numbers are 64 bits and never wrap within one boot
//! of the sender, so the window never has to.

/// How far behind the highest number a datagram may arrive and still be
/// accepted (reordering on the management link).
pub const WINDOW: u64 = 128;

/// What a sequence number says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Not seen before; `missed` numbers were skipped to reach it (0 for
    /// the next in order, or for a late one filling a hole).
    Fresh {
        /// Datagrams skipped between the highest so far and this one.
        missed: u64,
    },
    /// Seen already, or too old to tell.
    Replay,
}

/// One sender's window (for one boot of that sender).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The highest number accepted, and which of the [`WINDOW`] numbers
    /// up to it were seen (bit `i`: `top - i`).
    top: Option<(u64, u128)>,
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub fn new() -> ReplayWindow {
        ReplayWindow { top: None }
    }

    /// Judges `seq` without recording it.
    pub fn check(&self, seq: u64) -> SeqVerdict {
        let Some((top, seen)) = self.top else {
            return SeqVerdict::Fresh { missed: 0 };
        };
        if seq > top {
            return SeqVerdict::Fresh {
                missed: seq - top - 1,
            };
        }
        let behind = top - seq;
        if behind >= WINDOW || seen & (1u128 << behind) != 0 {
            SeqVerdict::Replay
        } else {
            SeqVerdict::Fresh { missed: 0 }
        }
    }

    /// Judges `seq` and, when fresh, records it.
    pub fn accept(&mut self, seq: u64) -> SeqVerdict {
        let verdict = self.check(seq);
        if verdict == SeqVerdict::Replay {
            return verdict;
        }
        self.top = Some(match self.top {
            None => (seq, 1),
            Some((top, seen)) if seq > top => {
                let shift = seq - top;
                let moved = if shift >= WINDOW { 0 } else { seen << shift };
                (seq, moved | 1)
            }
            Some((top, seen)) => (top, seen | 1u128 << (top - seq)),
        });
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_numbers_are_fresh() {
        let mut w = ReplayWindow::new();
        for s in 1..1000 {
            assert_eq!(w.accept(s), SeqVerdict::Fresh { missed: 0 });
        }
    }

    #[test]
    fn a_repeated_number_is_a_replay() {
        let mut w = ReplayWindow::new();
        w.accept(5);
        w.accept(6);
        assert_eq!(w.accept(6), SeqVerdict::Replay);
        assert_eq!(w.accept(5), SeqVerdict::Replay);
    }

    #[test]
    fn a_gap_is_counted_and_filled_once() {
        let mut w = ReplayWindow::new();
        w.accept(10);
        assert_eq!(w.accept(14), SeqVerdict::Fresh { missed: 3 });
        assert_eq!(w.accept(12), SeqVerdict::Fresh { missed: 0 }, "late");
        assert_eq!(w.accept(12), SeqVerdict::Replay);
    }

    #[test]
    fn a_number_older_than_the_window_is_a_replay() {
        let mut w = ReplayWindow::new();
        w.accept(1);
        w.accept(1 + WINDOW);
        assert_eq!(w.check(1), SeqVerdict::Replay);
        assert_eq!(w.check(2), SeqVerdict::Fresh { missed: 0 });
    }

    #[test]
    fn checking_records_nothing() {
        let mut w = ReplayWindow::new();
        w.accept(1);
        assert_eq!(w.check(2), SeqVerdict::Fresh { missed: 0 });
        assert_eq!(w.accept(2), SeqVerdict::Fresh { missed: 0 });
    }

    proptest! {
        /// Whatever the order, each number is accepted at most once.
        #[test]
        fn no_number_is_accepted_twice(seqs in prop::collection::vec(0u64..400, 0..600)) {
            let mut w = ReplayWindow::new();
            let mut accepted = std::collections::HashSet::new();
            for s in seqs {
                if matches!(w.accept(s), SeqVerdict::Fresh { .. }) {
                    prop_assert!(accepted.insert(s), "{} accepted twice", s);
                }
            }
        }
    }
}
