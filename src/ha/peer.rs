//! Who a balancer hears sync from, and how often it dumps its table: the
//! receive-side checks that come after the format's own
//! ([`Packet::new_checked`]), pure and driven by the caller's clock so they
//! are tested without sockets.
//!
//! The peer is the configured `sync_peer` (a `[cluster]` node has one
//! gate per entry of `peers`), address **and** port, never learned from
//! traffic: a datagram from another address is
//! `unknown_peer`, from the peer's address but another port `wrong_port`.
//! What the peer says about itself (sender id, boot) is believed only as
//! far as the MAC proves it:
//!
//! - **With a key**, the MAC must verify (`bad_mac`). The first verified
//!   datagram starts the peer's run (its sender id and boot); a verified
//!   datagram with a *larger* boot is the peer restarted (perhaps with
//!   another `node_id`): a new run, a fresh replay window, counted as a
//!   restart. That is the handshake: nothing but the key-holder can make
//!   such a datagram, and a boot only grows, so a datagram recorded in an
//!   earlier run and replayed is refused (`stale_boot`), as is one of this
//!   run seen before or older than the window (`replay`).
//! - **Without a key** sync trusts the management network: any boot from
//!   the configured address and port starts a new run, and sequence
//!   numbers only count losses, never drop (an unauthenticated number
//!   proves nothing, and dropping on it would let one spoofed datagram
//!   lock the real peer out).

use super::key::SyncKey;
use super::replay::{ReplayWindow, SeqVerdict};
use super::sync::{Error, Packet};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// The peer's current run: what its last accepted datagrams said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRun {
    /// Its sender id (`node_id`), as it says.
    pub sender: u32,
    /// Its boot.
    pub boot: u64,
    window: ReplayWindow,
}

/// What an accepted datagram told about the peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// Datagrams of this run skipped before this one (lost on the way).
    pub missed: u64,
    /// The first datagram of a new run of a peer heard before: it
    /// restarted.
    pub restarted: bool,
}

/// The receiver's checks on one peer.
#[derive(Clone, Debug)]
pub struct PeerGate {
    own_id: u32,
    peer: SocketAddrV4,
    key: Option<SyncKey>,
    run: Option<PeerRun>,
}

impl PeerGate {
    /// The gate of a balancer whose id is `own_id`, hearing `peer` only,
    /// authenticating with `key` when one is configured.
    pub fn new(own_id: u32, peer: SocketAddrV4, key: Option<SyncKey>) -> PeerGate {
        PeerGate {
            own_id,
            peer,
            key,
            run: None,
        }
    }

    /// True when datagrams are authenticated.
    pub fn authenticated(&self) -> bool {
        self.key.is_some()
    }

    /// The peer's current run, once one datagram was accepted.
    pub fn run(&self) -> Option<PeerRun> {
        self.run
    }

    /// Checks a datagram received from `from`, in the order of
    /// `docs/sync-protocol.md`: the format, the source address and port,
    /// the MAC, the sender id, the boot and the sequence number. Accepting
    /// it updates the peer's run; a refused datagram changes nothing.
    pub fn admit<'a>(
        &mut self,
        from: SocketAddr,
        bytes: &'a [u8],
    ) -> Result<(Packet<&'a [u8]>, Admitted), Error> {
        let packet = Packet::new_checked(bytes)?;
        let SocketAddr::V4(from) = from else {
            return Err(Error::UnknownPeer);
        };
        if from.ip() != self.peer.ip() {
            return Err(Error::UnknownPeer);
        }
        if from.port() != self.peer.port() {
            return Err(Error::WrongPort);
        }
        if let Some(key) = &self.key {
            if !packet.verify(key) {
                return Err(Error::BadMac);
            }
        }
        if packet.sender() == self.own_id {
            return Err(Error::FromSelf);
        }
        let (sender, boot, seq) = (packet.sender(), packet.boot(), packet.seq());
        let authenticated = self.key.is_some();
        let mut run = match self.run {
            Some(r) if r.boot == boot => r,
            Some(r) if authenticated && boot < r.boot => return Err(Error::StaleBoot),
            _ => PeerRun {
                sender,
                boot,
                window: ReplayWindow::new(),
            },
        };
        let restarted = self.run.is_some_and(|r| r.boot != boot);
        let missed = match run.window.accept(seq) {
            SeqVerdict::Fresh { missed } => missed,
            SeqVerdict::Replay if authenticated => return Err(Error::Replay),
            SeqVerdict::Replay => 0,
        };
        run.sender = sender;
        self.run = Some(run);
        Ok((packet, Admitted { missed, restarted }))
    }
}

/// At most one full dump per `min_interval`: a resync request is cheap to
/// send and a dump is the whole table, so without a limit a request storm
/// (or one spoofed request, many times) multiplies traffic thousands of
/// times over.
#[derive(Clone, Copy, Debug)]
pub struct DumpLimiter {
    min_interval: Duration,
    last: Option<Instant>,
}

impl DumpLimiter {
    /// A limiter that allows the first dump at once.
    pub fn new(min_interval: Duration) -> DumpLimiter {
        DumpLimiter {
            min_interval,
            last: None,
        }
    }

    /// True (and the dump counted as done at `now`) when the last dump was
    /// at least `min_interval` ago.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.min_interval)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::sync::{Builder, Header, MessageKind, Record, MAX_DATAGRAM_LEN};
    use crate::lb::service::Protocol;
    use crate::lb::tcp_state::State;
    use crate::lb::xmit::Endpoint;
    use std::net::Ipv4Addr;

    const OWN: u32 = 2;
    const PEER_ID: u32 = 1;
    const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 100, 1), 8848);

    fn key() -> SyncKey {
        SyncKey::new(b"a shared secret of the pair").unwrap()
    }

    fn from(a: SocketAddrV4) -> SocketAddr {
        SocketAddr::V4(a)
    }

    fn datagram(sender: u32, boot: u64, seq: u64, key: Option<&SyncKey>) -> Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let h = Header {
            kind: MessageKind::Connections,
            resync: false,
            sender,
            boot,
            seq,
        };
        let mut b = Builder::new(&mut buf, &h).unwrap();
        b.push(&Record {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            removed: false,
            client: Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 40000),
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
            real: Endpoint::new(Ipv4Addr::new(10, 1, 0, 11), 8080),
            timeout_s: 900,
            local: None,
        })
        .unwrap();
        b.finish(key).to_vec()
    }

    fn keyed_gate() -> PeerGate {
        PeerGate::new(OWN, PEER, Some(key()))
    }

    fn verdict(g: &mut PeerGate, src: SocketAddrV4, d: &[u8]) -> Result<Admitted, Error> {
        g.admit(from(src), d).map(|(_, a)| a)
    }

    #[test]
    fn the_peers_address_and_port_are_heard() {
        let mut g = keyed_gate();
        let d = datagram(PEER_ID, 10, 1, Some(&key()));
        assert_eq!(verdict(&mut g, PEER, &d), Ok(Admitted::default()));
        assert_eq!(g.run().map(|r| (r.sender, r.boot)), Some((PEER_ID, 10)));
    }

    #[test]
    fn a_spoofed_first_datagram_from_another_port_is_dropped_and_pins_nothing() {
        let mut g = PeerGate::new(OWN, PEER, None);
        let spoof = datagram(4242, 99, 1, None);
        let elsewhere = SocketAddrV4::new(*PEER.ip(), 40000);
        assert_eq!(verdict(&mut g, elsewhere, &spoof), Err(Error::WrongPort));
        assert_eq!(g.run(), None, "nothing learned from it");
        // The real peer, with its own id, is heard afterwards.
        let real = datagram(PEER_ID, 10, 1, None);
        assert!(verdict(&mut g, PEER, &real).is_ok());
        assert_eq!(g.run().map(|r| r.sender), Some(PEER_ID));
    }

    #[test]
    fn another_address_is_an_unknown_peer() {
        let mut g = keyed_gate();
        let d = datagram(PEER_ID, 10, 1, Some(&key()));
        let other = SocketAddrV4::new(Ipv4Addr::new(192, 168, 100, 9), 8848);
        assert_eq!(verdict(&mut g, other, &d), Err(Error::UnknownPeer));
    }

    #[test]
    fn a_bad_mac_is_dropped() {
        let mut g = keyed_gate();
        let forged = datagram(
            PEER_ID,
            10,
            1,
            Some(&SyncKey::new(b"not the pair's key").unwrap()),
        );
        assert_eq!(verdict(&mut g, PEER, &forged), Err(Error::BadMac));
        let unsigned = datagram(PEER_ID, 10, 1, None);
        assert_eq!(verdict(&mut g, PEER, &unsigned), Err(Error::BadMac));
        assert_eq!(g.run(), None);
    }

    #[test]
    fn a_replayed_datagram_is_dropped() {
        let mut g = keyed_gate();
        let d = datagram(PEER_ID, 10, 1, Some(&key()));
        assert!(verdict(&mut g, PEER, &d).is_ok());
        assert_eq!(verdict(&mut g, PEER, &d), Err(Error::Replay));
    }

    #[test]
    fn a_restarted_peer_with_a_new_boot_and_id_is_accepted() {
        let mut g = keyed_gate();
        for seq in 1..=50 {
            assert!(verdict(&mut g, PEER, &datagram(PEER_ID, 10, seq, Some(&key()))).is_ok());
        }
        // Restarted with another node_id: its counter starts again.
        let d = datagram(77, 11, 1, Some(&key()));
        assert_eq!(
            verdict(&mut g, PEER, &d),
            Ok(Admitted {
                missed: 0,
                restarted: true
            })
        );
        assert_eq!(g.run().map(|r| (r.sender, r.boot)), Some((77, 11)));
        assert!(verdict(&mut g, PEER, &datagram(77, 11, 2, Some(&key()))).is_ok());
    }

    #[test]
    fn a_datagram_of_an_earlier_boot_is_stale() {
        let mut g = keyed_gate();
        let old = datagram(PEER_ID, 10, 5, Some(&key()));
        assert!(verdict(&mut g, PEER, &datagram(PEER_ID, 11, 1, Some(&key()))).is_ok());
        assert_eq!(verdict(&mut g, PEER, &old), Err(Error::StaleBoot));
        assert_eq!(g.run().map(|r| r.boot), Some(11));
    }

    #[test]
    fn own_id_is_from_self() {
        let mut g = keyed_gate();
        let d = datagram(OWN, 10, 1, Some(&key()));
        assert_eq!(verdict(&mut g, PEER, &d), Err(Error::FromSelf));
    }

    #[test]
    fn without_a_key_sequence_numbers_count_losses_but_never_drop() {
        let mut g = PeerGate::new(OWN, PEER, None);
        assert!(verdict(&mut g, PEER, &datagram(PEER_ID, 10, 1, None)).is_ok());
        // A spoofed datagram far ahead cannot lock the real peer out.
        assert_eq!(
            verdict(&mut g, PEER, &datagram(PEER_ID, 10, 1_000_000, None)).map(|a| a.missed),
            Ok(999_998)
        );
        assert!(verdict(&mut g, PEER, &datagram(PEER_ID, 10, 2, None)).is_ok());
        // Nor can an older boot.
        assert!(verdict(&mut g, PEER, &datagram(PEER_ID, 3, 1, None)).is_ok());
    }

    #[test]
    fn dump_requests_are_rate_limited() {
        let mut l = DumpLimiter::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(l.allow(t0));
        assert!(!l.allow(t0 + Duration::from_millis(10)));
        assert!(!l.allow(t0 + Duration::from_millis(4_999)));
        assert!(l.allow(t0 + Duration::from_secs(5)));
        assert!(!l.allow(t0 + Duration::from_secs(6)));
    }
}
