//! The SYN proxy's pure logic: SYN cookies and the sequence-number
//! translation of a proxied connection (a virtual server with
//! `syn_proxy = true`, NAT only).
//!
//! Why a proxy: a client's SYN costs the balancer nothing until the client
//! proves, by acknowledging a number only the balancer could have sent it,
//! that it receives at the address it claims. The balancer answers the SYN
//! itself with a SYN-ACK whose sequence number is a *cookie*: a keyed hash
//! of the connection's 4-tuple, the client's initial sequence number, a
//! coarse time counter and the index of the MSS it granted, so no state is
//! kept for it. Only the client's ACK of `cookie + 1` opens a connection
//! to a real server, which then has its own initial sequence number: the
//! proxy records the difference (the *delta*) and shifts the numbers of
//! every later segment, so each side sees one consistent stream.
//!
//! The cookie (32 bits, the SYN-ACK's sequence number):
//!
//! ```text
//!  31                               4   3   2     0
//! +----------------------------------+-----+-------+
//! |  MAC (28 bits)                   | per | mss   |
//! +----------------------------------+-----+-------+
//! ```
//!
//! - `mss`: an index into [`MSS_TABLE`], the largest entry not above the
//!   client's offered MSS (the server is told that MSS in the proxy's SYN,
//!   since the client's own SYN is gone by then).
//! - `per`: the low bit of the period counter (`now` in periods of
//!   [`PERIOD_NS`], about 34 s): the checker tries the current period when
//!   the bit matches and the previous one otherwise, so one hash is
//!   computed per check and a cookie is valid for one to two periods.
//! - MAC: SipHash-2-4 keyed with the worker's secret over the client's and
//!   the VIP's addresses and ports, the client's ISN, the period and the
//!   MSS index; its high 28 bits. The period entering the keyed hash makes
//!   every period's cookies as unrelated as if each period had its own
//!   secret (the rotation), and an attacker who never sees a SYN-ACK sent
//!   to the address it spoofs guesses a right cookie once in 2^28 tries.
//!   SipHash is a pseudo-random function: cookies seen for one's own
//!   address say nothing usable about another's.
//!
//! Sequence translation. Towards the client the proxy's initial sequence
//! number is the cookie `C`; the real server picks its own, `S`. With
//! `delta = S - C` (mod 2^32): a segment from the server has `seq - delta`
//! on its way to the client; a segment from the client acknowledging the
//! server's stream has `ack + delta` on its way to the server. The client's
//! own sequence numbers go through unchanged: the proxy's SYN to the server
//! carries the client's ISN.

use super::conn::FlowKey;
use bytemuck::{Pod, Zeroable};

/// Length of a cookie period: 2^35 ns, about 34.4 s. A cookie is accepted
/// in the period it was made and the next one.
pub const PERIOD_NS: u64 = 1 << PERIOD_SHIFT;
const PERIOD_SHIFT: u32 = 35;

/// The MSS values a cookie can grant (3 bits). The smallest is Linux's
/// least (`TCP_MIN_MSS`); the others cover the common paths (IPv4 over
/// Ethernet 1460, PPPoE 1452, tunnels and VPNs below). Jumbo frames are
/// not offered: a client with a larger MSS gets 1460.
pub const MSS_TABLE: [u16; 8] = [88, 536, 1200, 1300, 1380, 1440, 1452, 1460];

/// The MSS a client that sent no MSS option is taken to accept (RFC 9293
/// 3.7.1).
pub const DEFAULT_MSS: u16 = 536;

const MSS_BITS: u32 = 3;
const MSS_MASK: u32 = (1 << MSS_BITS) - 1;
const PERIOD_BIT: u32 = 1 << MSS_BITS;
const MAC_MASK: u32 = !(PERIOD_BIT | MSS_MASK);

/// The index of the largest [`MSS_TABLE`] entry not above `mss` (0 for an
/// MSS below every entry).
pub fn mss_index(mss: u16) -> usize {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0)
}

/// Makes and checks one worker's SYN cookies. The secret comes from the
/// worker's random seed; workers need not share it, since a client's
/// segments all reach the worker that owns the client.
#[derive(Clone)]
pub struct CookieJar {
    key: [u64; 2],
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is not printed.
        f.write_str("CookieJar")
    }
}

impl CookieJar {
    /// A jar keyed from `seed` (expanded, so seeds that differ in one bit
    /// give unrelated keys).
    pub fn new(seed: u64) -> CookieJar {
        let k0 = siphash24([seed, 0x7379_6e63_6f6f_6b69], &seed.to_le_bytes());
        let k1 = siphash24([k0, seed ^ 0x5eed], &k0.to_le_bytes());
        CookieJar { key: [k0, k1] }
    }

    /// The cookie for a SYN with `key` (client → VIP) and initial sequence
    /// number `isn`, offering `mss` (`None`: no MSS option), at `now`.
    /// Returns the cookie and the MSS it grants (a [`MSS_TABLE`] value).
    pub fn make(&self, key: &FlowKey, isn: u32, mss: Option<u16>, now: u64) -> (u32, u16) {
        let index = mss_index(mss.unwrap_or(DEFAULT_MSS));
        let period = now >> PERIOD_SHIFT;
        let mac = self.mac(key, isn, period, index as u32);
        let cookie = (mac & MAC_MASK) | (((period as u32) & 1) << MSS_BITS) | index as u32;
        (cookie, MSS_TABLE[index])
    }

    /// Checks the ACK that should complete a proxied handshake: `isn` is
    /// the client's initial sequence number (the ACK's `seq - 1`) and
    /// `cookie` what it acknowledges (`ack - 1`). The granted MSS when the
    /// cookie was made for this tuple and ISN in this period or the
    /// previous one; `None` otherwise.
    pub fn check(&self, key: &FlowKey, isn: u32, cookie: u32, now: u64) -> Option<u16> {
        let index = cookie & MSS_MASK;
        let current = now >> PERIOD_SHIFT;
        let period = if (cookie & PERIOD_BIT != 0) == (current & 1 == 1) {
            current
        } else {
            current.checked_sub(1)?
        };
        let mac = self.mac(key, isn, period, index);
        (mac & MAC_MASK == cookie & MAC_MASK).then(|| MSS_TABLE[index as usize])
    }

    fn mac(&self, key: &FlowKey, isn: u32, period: u64, index: u32) -> u32 {
        let mut msg = [0u8; 24];
        msg[0..4].copy_from_slice(&key.src.octets());
        msg[4..8].copy_from_slice(&key.dst.octets());
        msg[8..10].copy_from_slice(&key.src_port.to_be_bytes());
        msg[10..12].copy_from_slice(&key.dst_port.to_be_bytes());
        msg[12..16].copy_from_slice(&isn.to_be_bytes());
        msg[16..24].copy_from_slice(&((period << MSS_BITS) | u64::from(index)).to_le_bytes());
        (siphash24(self.key, &msg) >> 32) as u32
    }
}

/// What the proxy keeps about one proxied connection, beside its table
/// entry (in a side array indexed like the table, see
/// [`super::balancer`]): 16 bytes of plain old data, so the side array
/// lives in huge-page memory like the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Zeroable, Pod)]
#[repr(C)]
pub struct Proxied {
    /// The client's initial sequence number (the proxy's SYN to the real
    /// server carries it, and its ACK `isn + 1`).
    pub client_isn: u32,
    /// The proxy's initial sequence number towards the client.
    pub cookie: u32,
    /// Real server's ISN minus the cookie, once its SYN-ACK was seen.
    pub delta: u32,
    /// The client's receive window from its ACK (unscaled: the proxy
    /// offers no window scaling), for the proxy's SYN and ACK.
    pub window: u16,
    /// Index of the granted MSS in [`MSS_TABLE`].
    pub mss_index: u8,
    /// 1 once the real server's SYN-ACK was seen (`delta` is known).
    ready: u8,
}

impl Proxied {
    /// A connection the cookie ACK just opened: client ISN `client_isn`,
    /// proxy ISN `cookie`, granted `mss`, client window `window`.
    pub fn new(client_isn: u32, cookie: u32, mss: u16, window: u16) -> Proxied {
        Proxied {
            client_isn,
            cookie,
            delta: 0,
            window,
            mss_index: mss_index(mss) as u8,
            ready: 0,
        }
    }

    /// The real server's SYN-ACK was seen: `delta` is known and segments
    /// are translated.
    #[inline]
    pub fn ready(&self) -> bool {
        self.ready != 0
    }

    /// The MSS the proxy's SYN offers the real server.
    pub fn mss(&self) -> u16 {
        MSS_TABLE[usize::from(self.mss_index) % MSS_TABLE.len()]
    }

    /// Records the real server's initial sequence number (from its
    /// SYN-ACK): from now on segments are translated.
    pub fn server_answered(&mut self, server_isn: u32) {
        self.delta = server_isn.wrapping_sub(self.cookie);
        self.ready = 1;
    }

    /// Records a reset the real server sent before any SYN-ACK (its
    /// sequence number `seq` belongs to no stream the client knows): the
    /// delta that makes it `cookie + 1`, the number the client expects.
    pub fn server_refused(&mut self, seq: u32) {
        self.delta = seq.wrapping_sub(self.cookie.wrapping_add(1));
    }

    /// A client's acknowledgment number, translated for the real server.
    #[inline]
    pub fn ack_to_server(&self, ack: u32) -> u32 {
        ack.wrapping_add(self.delta)
    }

    /// A real server's sequence number, translated for the client.
    #[inline]
    pub fn seq_to_client(&self, seq: u32) -> u32 {
        seq.wrapping_sub(self.delta)
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input
/// PRF", 2012) of `msg` under the 128-bit key `k`, written from the paper's
/// description.
pub fn siphash24(k: [u64; 2], msg: &[u8]) -> u64 {
    let mut v = [
        k[0] ^ 0x736f_6d65_7073_6575,
        k[1] ^ 0x646f_7261_6e64_6f6d,
        k[0] ^ 0x6c79_6765_6e65_7261,
        k[1] ^ 0x7465_6462_7974_6573,
    ];
    let mut words = msg.chunks_exact(8);
    for w in &mut words {
        let m = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        compress(&mut v, m, 2);
    }
    // The last block: the remaining bytes, little endian, with the
    // message length (mod 256) in the top byte.
    let mut last = (msg.len() as u64 & 0xff) << 56;
    for (i, b) in words.remainder().iter().enumerate() {
        last |= u64::from(*b) << (8 * i);
    }
    compress(&mut v, last, 2);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// One message word through `rounds` SipRounds.
fn compress(v: &mut [u64; 4], m: u64, rounds: usize) {
    v[3] ^= m;
    for _ in 0..rounds {
        round(v);
    }
    v[0] ^= m;
}

/// One SipRound.
#[inline]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn key(src: u32, sport: u16, dst: u32, dport: u16) -> FlowKey {
        FlowKey::new(
            Ipv4Addr::from(src),
            sport,
            Ipv4Addr::from(dst),
            dport,
            super::super::conn::PROTO_TCP,
        )
    }

    const NOW: u64 = 1_000 * PERIOD_NS + 12_345;

    #[test]
    fn siphash_matches_the_papers_test_vector() {
        // Appendix A of the paper: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24([k0, k1], &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn a_cookie_made_now_checks_with_its_mss() {
        let jar = CookieJar::new(7);
        let k = key(0xc633_6407, 40000, 0xcb00_7164, 80);
        let (cookie, mss) = jar.make(&k, 1234, Some(1460), NOW);
        assert_eq!(mss, 1460);
        assert_eq!(jar.check(&k, 1234, cookie, NOW), Some(1460));
    }

    #[test]
    fn a_cookie_checks_in_the_next_period_but_not_the_one_after() {
        let jar = CookieJar::new(7);
        let k = key(1, 2, 3, 4);
        let (cookie, _) = jar.make(&k, 99, None, NOW);
        assert!(jar.check(&k, 99, cookie, NOW + PERIOD_NS).is_some());
        assert_eq!(jar.check(&k, 99, cookie, NOW + 2 * PERIOD_NS), None);
    }

    #[test]
    fn a_cookie_for_another_tuple_or_isn_fails() {
        let jar = CookieJar::new(7);
        let k = key(1, 2, 3, 4);
        let (cookie, _) = jar.make(&k, 99, Some(1400), NOW);
        assert_eq!(jar.check(&key(5, 2, 3, 4), 99, cookie, NOW), None);
        assert_eq!(jar.check(&key(1, 6, 3, 4), 99, cookie, NOW), None);
        assert_eq!(jar.check(&key(1, 2, 3, 7), 99, cookie, NOW), None);
        assert_eq!(jar.check(&k, 100, cookie, NOW), None);
    }

    #[test]
    fn another_secret_refuses_the_cookie() {
        let k = key(1, 2, 3, 4);
        let (cookie, _) = CookieJar::new(7).make(&k, 99, None, NOW);
        assert_eq!(CookieJar::new(8).check(&k, 99, cookie, NOW), None);
    }

    #[test]
    fn a_client_without_mss_option_gets_536() {
        let (_, mss) = CookieJar::new(1).make(&key(1, 2, 3, 4), 0, None, NOW);
        assert_eq!(mss, 536);
    }

    #[test]
    fn the_delta_shifts_both_directions_consistently() {
        let mut p = Proxied::new(1000, 0xffff_fff0, 1460, 65535);
        p.server_answered(0x10);
        // The server's first data byte, S + 1, is the cookie's C + 1.
        assert_eq!(p.seq_to_client(0x11), 0xffff_fff1);
        // The client acknowledging C + 101 acknowledges S + 101.
        assert_eq!(
            p.ack_to_server(0xffff_fff0u32.wrapping_add(101)),
            0x10 + 101
        );
    }

    #[test]
    fn a_server_reset_before_its_syn_ack_reaches_the_client_at_cookie_plus_one() {
        let mut p = Proxied::new(1000, 5000, 1460, 65535);
        p.server_refused(0);
        assert_eq!(p.seq_to_client(0), 5001);
        assert!(!p.ready());
    }

    proptest! {
        #[test]
        fn cookies_round_trip(seed: u64, src: u32, sport: u16, dst: u32, dport: u16,
                              isn: u32, mss in proptest::option::of(88u16..), now in 0u64..1 << 50,
                              later in 0u64..PERIOD_NS) {
            let jar = CookieJar::new(seed);
            let k = key(src, sport, dst, dport);
            let (cookie, granted) = jar.make(&k, isn, mss, now);
            prop_assert!(granted <= mss.unwrap_or(DEFAULT_MSS));
            prop_assert!(MSS_TABLE.contains(&granted));
            prop_assert_eq!(jar.check(&k, isn, cookie, now + later), Some(granted));
        }

        #[test]
        fn stale_cookies_fail(seed: u64, isn: u32, now in 0u64..1 << 50, extra in 0u64..1 << 40) {
            let jar = CookieJar::new(seed);
            let k = key(1, 2, 3, 4);
            let (cookie, _) = jar.make(&k, isn, None, now);
            let late = (now | (PERIOD_NS - 1)) + 1 + PERIOD_NS + extra;
            prop_assert_eq!(jar.check(&k, isn, cookie, late), None);
        }

        #[test]
        fn tampered_cookies_fail(seed: u64, isn: u32, bit in 0u32..32) {
            let jar = CookieJar::new(seed);
            let k = key(1, 2, 3, 4);
            let (cookie, _) = jar.make(&k, isn, Some(1460), NOW);
            prop_assert_eq!(jar.check(&k, isn, cookie ^ (1 << bit), NOW), None);
        }

        #[test]
        fn translation_preserves_offsets(cookie: u32, server_isn: u32, n: u32) {
            let mut p = Proxied::new(0, cookie, 1460, 0);
            p.server_answered(server_isn);
            prop_assert_eq!(p.ack_to_server(cookie.wrapping_add(n)), server_isn.wrapping_add(n));
            prop_assert_eq!(p.seq_to_client(server_isn.wrapping_add(n)), cookie.wrapping_add(n));
        }
    }
}
