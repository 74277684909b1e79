//! The sync receive path under arbitrary datagrams: what the fuzz target
//! (`fuzz/fuzz_targets/sync_datagram.rs`, cargo-fuzz) and the seeded run in
//! the test suite both drive.
//!
//! One input is a run of datagrams, each `[selector][length: u16 BE]
//! [bytes]`. The selector's bits 0-1 pick the source (the peer, the peer's
//! address on another port, another address, an IPv6 address), bit 2 signs
//! the bytes with the pair's key first (so the fuzzer gets past the MAC
//! and reaches the boot, replay and record checks). The first byte of the
//! input says whether the receiver has a key (bit 0). Each datagram goes
//! through [`PeerGate::admit`], and each record of an accepted one through
//! [`Record::parse`] (or [`Record6::parse`] in an IPv6 datagram) and the
//! [`RecordFilter`]. The contract checked: no panic, and every datagram
//! and every record accounted for.

use super::filter::RecordFilter;
use super::key::SyncKey;
use super::peer::PeerGate;
use super::sync::{
    Builder, Builder6, Error, Header, MessageKind, Packet, Record, Record6, RecordError,
    MAX_DATAGRAM_LEN, MIN_DATAGRAM_LEN, TRAILER_LEN,
};
use crate::lb::service::{
    ForwardMethod, Protocol, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use crate::lb::tcp_state::{State, Timeouts};
use crate::lb::xmit::{Endpoint, Endpoint6};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

/// The receiver's id in the fuzz run.
pub const OWN_ID: u32 = 2;
/// The peer's id in the seeded datagrams.
pub const PEER_ID: u32 = 1;
/// The configured peer.
pub const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 100, 1), 8848);
/// The pair's key in the fuzz run.
pub const KEY: &[u8] = b"rvs fuzz key, 32 bytes long ....";

/// What one run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Datagrams in the input.
    pub datagrams: u64,
    /// Datagrams accepted.
    pub accepted: u64,
    /// Datagrams refused, by [`Error`] reason.
    pub dropped: [u64; Error::COUNT],
    /// Records of accepted datagrams that passed.
    pub records: u64,
    /// Of those, IPv6 records.
    pub records6: u64,
    /// Records refused, by [`RecordError`] reason.
    pub bad_records: [u64; RecordError::COUNT],
    /// Records whose timeout was capped.
    pub capped: u64,
}

/// The receiver's configuration in the fuzz run: one TCP service with
/// two real servers and a UDP one, and an IPv6 TCP service with two.
pub fn fuzz_filter() -> RecordFilter {
    let ep = |a: [u8; 4], p| Endpoint::new(Ipv4Addr::from(a), p);
    let tcp = VirtualService::new(
        "web",
        ServiceKey {
            vip: ep([203, 0, 113, 100], 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        [(ep([10, 1, 0, 11], 8080), 1), (ep([10, 1, 0, 12], 8080), 1)],
    );
    let udp = VirtualService::new(
        "dns",
        ServiceKey {
            vip: ep([203, 0, 113, 100], 53),
            protocol: Protocol::Udp,
        },
        ForwardMethod::Dr,
        SchedulerKind::Rr,
        [(ep([10, 1, 0, 11], 53), 1)],
    );
    let tcp6 = VirtualService::new6(
        "web6",
        ep6(0x100, 1, 80),
        Protocol::Tcp,
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        [(ep6(2, 0x11, 8080), 1), (ep6(2, 0x12, 8080), 1)],
    );
    RecordFilter::new(
        Arc::new(ServiceTable::new(vec![tcp, udp, tcp6])),
        Timeouts::default(),
    )
}

/// 2001:db8:`net`::`host` port `port`.
fn ep6(net: u16, host: u16, port: u16) -> Endpoint6 {
    Endpoint6::new(Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, host), port)
}

fn source(selector: u8) -> SocketAddr {
    match selector & 3 {
        0 => SocketAddr::V4(PEER),
        1 => SocketAddr::V4(SocketAddrV4::new(*PEER.ip(), 40000)),
        2 => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 100, 9), 8848)),
        _ => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 8848),
    }
}

/// Runs one input through a fresh receiver (see the module notes).
pub fn run_datagrams(data: &[u8]) -> Outcome {
    let key = SyncKey::new(KEY);
    let keyed = data.first().is_some_and(|b| b & 1 != 0);
    let mut gate = PeerGate::new(OWN_ID, PEER, if keyed { key.clone() } else { None });
    let filter = fuzz_filter();
    let mut out = Outcome::default();
    let mut rest = data.get(1..).unwrap_or_default();
    let mut buf = Vec::with_capacity(2048);
    while let [selector, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        buf.clear();
        buf.extend_from_slice(bytes);
        if selector & 4 != 0 && buf.len() >= MIN_DATAGRAM_LEN {
            if let Some(k) = &key {
                let at = buf.len() - TRAILER_LEN;
                let tag = k.mac(&buf[..at]);
                buf[at..].copy_from_slice(&tag);
            }
        }
        out.datagrams += 1;
        match gate.admit(source(*selector), &buf) {
            Ok((packet, _)) => {
                out.accepted += 1;
                let mut n = 0;
                for r in packet.records() {
                    n += 1;
                    match r.and_then(|r| filter.check(&r)) {
                        Ok(a) => {
                            out.records += 1;
                            out.capped += u64::from(a.capped);
                            assert!(
                                a.record.timeout_s <= filter.limit_s(&a.record) || a.record.removed
                            );
                        }
                        Err(e) => out.bad_records[e as usize] += 1,
                    }
                }
                for r in packet.records6() {
                    n += 1;
                    match r.and_then(|r| filter.check6(&r)) {
                        Ok(a) => {
                            out.records += 1;
                            out.records6 += 1;
                            out.capped += u64::from(a.capped);
                        }
                        Err(e) => out.bad_records[e as usize] += 1,
                    }
                }
                assert_eq!(n, usize::from(packet.record_count()), "every record seen");
            }
            Err(e) => out.dropped[e as usize] += 1,
        }
    }
    let dropped: u64 = out.dropped.iter().sum();
    assert_eq!(
        out.accepted + dropped,
        out.datagrams,
        "every datagram accounted"
    );
    out
}

/// A datagram of records as the fuzz input frames it (selector, length,
/// bytes): `build` writes it into a buffer under the header of
/// `boot`/`seq`, signing with the key it is given (`Some` when `sign`).
fn framed_with(
    selector: u8,
    boot: u64,
    seq: u64,
    sign: bool,
    build: impl FnOnce(&mut [u8], &Header, Option<&SyncKey>) -> Vec<u8>,
) -> Vec<u8> {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let h = Header {
        kind: MessageKind::Connections,
        resync: false,
        sender: PEER_ID,
        boot,
        seq,
    };
    let key = SyncKey::new(KEY);
    let d = build(&mut buf, &h, if sign { key.as_ref() } else { None });
    let mut out = vec![selector];
    out.extend_from_slice(&(d.len() as u16).to_be_bytes());
    out.extend_from_slice(&d);
    out
}

/// One well-formed datagram as the fuzz input frames it (selector,
/// length, bytes), signed when `sign`.
pub fn framed(selector: u8, records: &[Record], boot: u64, seq: u64, sign: bool) -> Vec<u8> {
    framed_with(selector, boot, seq, sign, |buf, h, key| {
        let Ok(mut b) = Builder::new(buf, h) else {
            return Vec::new();
        };
        // What does not fit is left out.
        for r in records {
            if b.push(r).is_err() {
                break;
            }
        }
        b.finish(key).to_vec()
    })
}

/// One well-formed IPv6 datagram (version 4, family 6) as the fuzz input
/// frames it, signed when `sign`.
pub fn framed6(selector: u8, records: &[Record6], boot: u64, seq: u64, sign: bool) -> Vec<u8> {
    framed_with(selector, boot, seq, sign, |buf, h, key| {
        let Ok(mut b) = Builder6::new(buf, h) else {
            return Vec::new();
        };
        for r in records {
            if b.push(r).is_err() {
                break;
            }
        }
        b.finish(key).to_vec()
    })
}

fn template_record6(i: u64) -> Record6 {
    Record6 {
        protocol: if i.is_multiple_of(5) {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        state: State::ALL[(i as usize) % State::ALL.len()],
        input_only: i.is_multiple_of(7),
        removed: i.is_multiple_of(11),
        client: ep6(1, (i % 250) as u16, 40000 + (i % 1000) as u16),
        vip: ep6(0x100, 1, 80),
        real: ep6(2, 0x11 + (i % 3) as u16, 8080),
        timeout_s: (i as u32).wrapping_mul(2_654_435_761),
        local: i.is_multiple_of(13).then(|| ep6(3, 1, 1024)),
    }
}

fn template_record(i: u64) -> Record {
    let ep = |a: [u8; 4], p| Endpoint::new(Ipv4Addr::from(a), p);
    Record {
        protocol: if i.is_multiple_of(5) {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        state: State::ALL[(i as usize) % State::ALL.len()],
        input_only: i.is_multiple_of(7),
        removed: i.is_multiple_of(11),
        client: ep([198, 51, 100, (i % 250) as u8], 40000 + (i % 1000) as u16),
        vip: ep(
            [203, 0, 113, 100],
            if i.is_multiple_of(5) { 53 } else { 80 },
        ),
        real: ep([10, 1, 0, 11 + (i % 3) as u8], 8080),
        timeout_s: (i as u32).wrapping_mul(2_654_435_761),
        local: None,
    }
}

/// A pseudo-random input from `seed`: well-formed datagrams (signed or
/// not, from every source, with boots and sequence numbers that repeat,
/// grow and go back) mutated a little, and random bytes.
pub fn seeded_input(seed: u64, datagrams: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = vec![(next() >> 9) as u8 & 1];
    for _ in 0..datagrams {
        let r = next();
        let mut d = if r % 5 == 0 {
            let len = (r >> 8) % 200;
            let mut d = vec![(r >> 3) as u8];
            d.extend_from_slice(&(len as u16).to_be_bytes());
            d.extend((0..len).map(|_| next() as u8));
            d
        } else {
            let selector = ((r >> 20) % 8) as u8 | if r % 3 == 0 { 0 } else { 4 };
            let (boot, seq, sign) = (10 + (r >> 24) % 3, (r >> 32) % 20, r % 7 != 0);
            let n = (r >> 8) % 6;
            if (r >> 48) % 4 == 0 {
                let records: Vec<Record6> = (0..n).map(|i| template_record6(r ^ i)).collect();
                framed6(selector, &records, boot, seq, sign)
            } else {
                let records: Vec<Record> = (0..n).map(|i| template_record(r ^ i)).collect();
                framed(selector, &records, boot, seq, sign)
            }
        };
        for _ in 0..(r >> 40) % 3 {
            let at = 3 + (next() as usize) % d.len().saturating_sub(3).max(1);
            if let Some(b) = d.get_mut(at) {
                *b = next() as u8;
            }
        }
        out.extend_from_slice(&d);
    }
    out
}

/// Parses what the fuzz target gets without the gate: a lone datagram
/// from `Packet::new_checked` on, for the plain parser target.
pub fn parse_only(data: &[u8]) {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.header(), p.mac().len(), p.family());
        assert_eq!(
            p.records().count() + p.records6().count(),
            usize::from(p.record_count())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_fuzz_run_never_panics_and_accounts_for_everything() {
        // A short, deterministic stand-in for the cargo-fuzz target: 2000
        // inputs of 40 datagrams each, half with a keyed receiver.
        let mut total = Outcome::default();
        for seed in 0..2000u64 {
            let input = seeded_input(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed, 40);
            let o = run_datagrams(&input);
            parse_only(&input[1..]);
            total.datagrams += o.datagrams;
            total.accepted += o.accepted;
            total.records += o.records;
            total.records6 += o.records6;
            total.capped += o.capped;
            for (t, d) in total.dropped.iter_mut().zip(o.dropped) {
                *t += d;
            }
            for (t, d) in total.bad_records.iter_mut().zip(o.bad_records) {
                *t += d;
            }
        }
        // The run reaches every stage, not just the first check.
        assert!(
            total.accepted > 0 && total.records > 0 && total.records6 > 0 && total.capped > 0,
            "{total:?}"
        );
        for e in [
            Error::ForeignMagic,
            Error::WrongPort,
            Error::UnknownPeer,
            Error::BadMac,
            Error::Replay,
            Error::StaleBoot,
        ] {
            assert!(total.dropped[e as usize] > 0, "never {e}: {total:?}");
        }
        for e in [RecordError::UnknownService, RecordError::UnknownRealServer] {
            assert!(total.bad_records[e as usize] > 0, "never {e}: {total:?}");
        }
    }

    #[test]
    fn the_corpus_in_the_repo_runs_and_reaches_past_the_mac() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/sync_datagram");
        let mut files = 0;
        let mut accepted = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            accepted += run_datagrams(&data).accepted;
            files += 1;
        }
        assert!(files >= 10, "{files} corpus files");
        assert!(accepted >= 10, "only {accepted} datagrams accepted");
    }

    #[test]
    fn a_signed_ipv6_datagram_passes_the_same_gate_and_filter() {
        let mut input = vec![1u8];
        input.extend(framed6(4, &[template_record6(1)], 10, 1, true));
        // The same bytes again: a replay, as for IPv4.
        input.extend(framed6(4, &[template_record6(1)], 10, 1, true));
        // Unsigned: a bad MAC.
        input.extend(framed6(0, &[template_record6(2)], 10, 2, false));
        let o = run_datagrams(&input);
        assert_eq!((o.datagrams, o.accepted, o.records6), (3, 1, 1));
        assert_eq!(o.dropped[Error::Replay as usize], 1);
        assert_eq!(o.dropped[Error::BadMac as usize], 1);
    }

    #[test]
    fn the_ipv6_seeds_of_the_corpus_reach_the_filter() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/sync_datagram");
        let o = run_datagrams(&std::fs::read(format!("{dir}/keyed-signed-conns6")).unwrap());
        assert_eq!(
            (o.datagrams, o.accepted, o.records6, o.capped),
            (3, 1, 3, 1)
        );
        assert_eq!(o.dropped[Error::Replay as usize], 1);
        assert_eq!(o.dropped[Error::Malformed as usize], 1, "family 9");
        assert_eq!(o.bad_records[RecordError::UnknownRealServer as usize], 1);
        assert_eq!(o.bad_records[RecordError::UnknownService as usize], 1);
        let o = run_datagrams(&std::fs::read(format!("{dir}/unkeyed-conns6-and-family4")).unwrap());
        assert_eq!((o.accepted, o.records, o.records6), (2, 2, 1));
    }

    #[test]
    fn a_signed_datagram_from_the_peer_is_accepted_by_a_keyed_receiver() {
        let mut input = vec![1u8];
        input.extend(framed(4, &[template_record(1)], 10, 1, true));
        let o = run_datagrams(&input);
        assert_eq!((o.datagrams, o.accepted, o.records), (1, 1, 1));
    }
}
