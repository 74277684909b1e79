//! The worker's side of `lb::client_addr`: its counters, and a frame seen
//! from its IPv4 header on as a packet the hooks may grow.

use super::io::Frame;
use crate::lb::client_addr::{ClientAddress, Grow, Outcome, Skip};
use serde_json::{json, Value};

/// What the client-address hooks did on one worker: insertions by mode
/// and segments that should have grown and did not, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientAddrStats {
    /// PROXY v2 headers inserted before a connection's first data byte.
    pub proxy_v2_inserted: u64,
    /// PROXY v2 headers inserted again into a retransmission of the first
    /// data segment.
    pub proxy_v2_reinserted: u64,
    /// TOA options inserted.
    pub toa_inserted: u64,
    /// Not grown: the buffer had no tailroom.
    pub skipped_no_room: u64,
    /// Not grown: the TCP header would pass 60 bytes (TOA).
    pub skipped_header_full: u64,
    /// Not grown: the packet would pass the outgoing MTU.
    pub skipped_too_big: u64,
    /// Not grown: an IP fragment.
    pub skipped_fragment: u64,
}

impl ClientAddrStats {
    /// Counts one hook's `outcome` for a connection carrying by `mode`.
    #[inline]
    pub fn count(&mut self, mode: ClientAddress, outcome: Outcome) {
        match (mode, outcome) {
            (ClientAddress::ProxyV2, Outcome::Inserted { again: false }) => {
                self.proxy_v2_inserted += 1
            }
            (ClientAddress::ProxyV2, Outcome::Inserted { again: true }) => {
                self.proxy_v2_reinserted += 1
            }
            (ClientAddress::Toa, Outcome::Inserted { .. }) => self.toa_inserted += 1,
            (_, Outcome::Skipped(Skip::NoRoom)) => self.skipped_no_room += 1,
            (_, Outcome::Skipped(Skip::HeaderFull)) => self.skipped_header_full += 1,
            (_, Outcome::Skipped(Skip::TooBig)) => self.skipped_too_big += 1,
            (_, Outcome::Skipped(Skip::Fragment)) => self.skipped_fragment += 1,
            _ => {}
        }
    }

    /// The counters with their `stats:` names (prefixed `client_addr_`).
    pub fn named(&self) -> [(&'static str, u64); Self::COUNT] {
        [
            ("client_addr_proxy_v2_inserted", self.proxy_v2_inserted),
            ("client_addr_proxy_v2_reinserted", self.proxy_v2_reinserted),
            ("client_addr_toa_inserted", self.toa_inserted),
            ("client_addr_skipped_no_room", self.skipped_no_room),
            ("client_addr_skipped_header_full", self.skipped_header_full),
            ("client_addr_skipped_too_big", self.skipped_too_big),
            ("client_addr_skipped_fragment", self.skipped_fragment),
        ]
    }

    /// How many counters there are (cells of the worker's published
    /// stats).
    pub const COUNT: usize = 7;

    /// The counters in [`ClientAddrStats::named`]'s order.
    pub fn to_array(&self) -> [u64; Self::COUNT] {
        self.named().map(|(_, n)| n)
    }

    /// The counters from `c` in [`ClientAddrStats::named`]'s order
    /// (missing ones zero).
    pub fn from_slice(c: &[u64]) -> ClientAddrStats {
        let at = |i: usize| c.get(i).copied().unwrap_or(0);
        ClientAddrStats {
            proxy_v2_inserted: at(0),
            proxy_v2_reinserted: at(1),
            toa_inserted: at(2),
            skipped_no_room: at(3),
            skipped_header_full: at(4),
            skipped_too_big: at(5),
            skipped_fragment: at(6),
        }
    }

    /// Adds the counters as members of a worker's `stats` JSON object.
    pub fn add_to_json(&self, v: &mut Value) {
        for (name, n) in self.named() {
            v[name] = json!(n);
        }
    }
}

/// A frame from its IPv4 header (at `l3`) on, as the hooks grow it.
pub struct FromL3<'a, F: Frame> {
    /// The frame.
    pub frame: &'a mut F,
    /// Where its IPv4 header starts.
    pub l3: usize,
}

impl<F: Frame> Grow for FromL3<'_, F> {
    fn bytes(&mut self) -> &mut [u8] {
        &mut self.frame.data_mut()[self.l3..]
    }
    fn insert(&mut self, at: usize, n: usize) -> bool {
        self.frame.insert(self.l3 + at, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_mode_and_reason() {
        let mut s = ClientAddrStats::default();
        s.count(ClientAddress::ProxyV2, Outcome::Inserted { again: false });
        s.count(ClientAddress::ProxyV2, Outcome::Inserted { again: true });
        s.count(ClientAddress::Toa, Outcome::Inserted { again: true });
        s.count(ClientAddress::Toa, Outcome::Skipped(Skip::HeaderFull));
        s.count(ClientAddress::ProxyV2, Outcome::Translated);
        assert_eq!(
            (s.proxy_v2_inserted, s.proxy_v2_reinserted, s.toa_inserted),
            (1, 1, 1)
        );
        assert_eq!(s.skipped_header_full, 1);
        assert_eq!(ClientAddrStats::from_slice(&s.to_array()), s);
    }

    #[test]
    fn a_frame_grows_at_offsets_from_its_ipv4_header() {
        let mut f = crate::dataplane::io::VecFrame::new(&[0xee; 14 + 4]);
        f.data_mut()[14..].copy_from_slice(&[1, 2, 3, 4]);
        let mut g = FromL3 {
            frame: &mut f,
            l3: 14,
        };
        assert!(g.insert(2, 2));
        g.bytes()[2..4].copy_from_slice(&[9, 9]);
        assert_eq!(&f.data()[..14], &[0xee; 14], "the link header stays");
        assert_eq!(&f.data()[14..], &[1, 2, 9, 9, 3, 4]);
    }
}
