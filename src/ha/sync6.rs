//! The IPv6 connection record of the sync format (version 4, family 6):
//! the IPv6 twin of [`crate::ha::sync::Record`]. `docs/sync-protocol.md`
//! is the specification, byte by byte; the tests below check the layout
//! against it.
//!
//! Why 80 bytes: three 16-byte addresses (client, VIP, real server), the
//! FullNAT local address (16 bytes, so FullNAT over IPv6 and NAT64 can
//! fill it: an IPv4 address there is written IPv4-mapped, `::ffff:a.b.c.d`),
//! four ports, the timeout and the four bytes of protocol, state, flags and
//! a reserved byte: 64 + 8 + 4 + 4. Fixed size, as every record: the count
//! and the length check each other exactly. A datagram holds 16 of them
//! (32 + 16 × 80 + 16 = 1328 bytes); the family byte of the header says
//! every record of it is IPv6, so no record needs a family of its own.

use crate::ha::sync::{
    RecordError, RecordOf, HEADER_LEN, MAX_DATAGRAM_LEN, RECORD_INPUT_ONLY, RECORD_LOCAL,
    RECORD_REMOVED, TRAILER_LEN,
};
use crate::lb::service::Protocol;
use crate::lb::tcp_state::State;
use crate::lb::xmit::Endpoint6;
use crate::wire::{get_u16, get_u32, put_u16};
use std::net::Ipv6Addr;

/// Offsets within an IPv6 record.
mod field {
    pub const PROTOCOL: usize = 0;
    pub const STATE: usize = 1;
    pub const FLAGS: usize = 2;
    // 3: reserved (u8).
    pub const CLIENT_ADDR: usize = 4;
    pub const VIP_ADDR: usize = 20;
    pub const REAL_ADDR: usize = 36;
    pub const CLIENT_PORT: usize = 52;
    pub const VIP_PORT: usize = 54;
    pub const REAL_PORT: usize = 56;
    pub const LOCAL_PORT: usize = 58;
    pub const TIMEOUT: usize = 60;
    pub const LOCAL_ADDR: usize = 64;
    pub const LEN: usize = 80;
}

/// Length of one IPv6 connection record.
pub const RECORD6_LEN: usize = field::LEN;
/// IPv6 records in a full datagram: 16 (32 + 16 × 80 + 16 = 1328 bytes).
pub const MAX_RECORDS6: usize = (MAX_DATAGRAM_LEN - HEADER_LEN - TRAILER_LEN) / RECORD6_LEN;

/// One IPv6 connection as the peer needs it to take the connection over
/// (the fields mean what [`crate::ha::sync::Record`]'s do).
pub type Record6 = RecordOf<Ipv6Addr>;

fn addr(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

impl Record6 {
    /// Decodes one IPv6 record ([`RECORD6_LEN`] bytes; a shorter slice is
    /// refused, as an unknown protocol, without reading it).
    pub fn parse(b: &[u8]) -> Result<Record6, RecordError> {
        use field as f;
        if b.len() < f::LEN {
            return Err(RecordError::UnknownProtocol);
        }
        let protocol = Protocol::from_number(b[f::PROTOCOL]).ok_or(RecordError::UnknownProtocol)?;
        let state = State::from_u8(b[f::STATE]).ok_or(RecordError::UnknownState)?;
        let flags = b[f::FLAGS];
        let endpoint = |a, port| Endpoint6::new(addr(b, a), get_u16(b, port));
        Ok(Record6 {
            protocol,
            state,
            input_only: flags & RECORD_INPUT_ONLY != 0,
            removed: flags & RECORD_REMOVED != 0,
            client: endpoint(f::CLIENT_ADDR, f::CLIENT_PORT),
            vip: endpoint(f::VIP_ADDR, f::VIP_PORT),
            real: endpoint(f::REAL_ADDR, f::REAL_PORT),
            timeout_s: get_u32(b, f::TIMEOUT),
            local: (flags & RECORD_LOCAL != 0).then(|| endpoint(f::LOCAL_ADDR, f::LOCAL_PORT)),
        })
    }

    /// Encodes the record; reserved bytes and flag bits are written zero,
    /// and so is the local end without [`Record6::local`].
    pub fn emit(&self, b: &mut [u8; RECORD6_LEN]) {
        use field as f;
        *b = [0; RECORD6_LEN];
        b[f::PROTOCOL] = self.protocol.number();
        b[f::STATE] = self.state as u8;
        b[f::FLAGS] = self.flags();
        let mut put = |at: usize, port_at: usize, e: &Endpoint6| {
            b[at..at + 16].copy_from_slice(&e.ip.octets());
            put_u16(b, port_at, e.port);
        };
        put(f::CLIENT_ADDR, f::CLIENT_PORT, &self.client);
        put(f::VIP_ADDR, f::VIP_PORT, &self.vip);
        put(f::REAL_ADDR, f::REAL_PORT, &self.real);
        if let Some(l) = &self.local {
            put(f::LOCAL_ADDR, f::LOCAL_PORT, l);
        }
        b[f::TIMEOUT..f::TIMEOUT + 4].copy_from_slice(&self.timeout_s.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::sync::{
        Builder, Builder6, Error, Family, Header, MessageKind, Packet, Record, MIN_DATAGRAM_LEN,
    };
    use proptest::prelude::*;

    fn ep(a: &str, port: u16) -> Endpoint6 {
        Endpoint6::new(a.parse().unwrap(), port)
    }

    fn record(client_port: u16) -> Record6 {
        Record6 {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            removed: false,
            client: ep("2001:db8:1::7", client_port),
            vip: ep("2001:db8:100::1", 80),
            real: ep("2001:db8:2::11", 8080),
            timeout_s: 900,
            local: None,
        }
    }

    fn header() -> Header {
        Header {
            kind: MessageKind::Connections,
            resync: false,
            sender: 1,
            boot: 7,
            seq: 1,
        }
    }

    fn datagram(records: &[Record6]) -> Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let mut b = Builder6::new(&mut buf, &header()).unwrap();
        for r in records {
            b.push(r).unwrap();
        }
        b.finish(None).to_vec()
    }

    /// The example of `docs/sync-protocol.md`, written out by hand.
    #[test]
    fn the_ipv6_example_in_the_spec_decodes() {
        let hex = "
            52 56 53 53 04 01 00 06 00 00 00 01 00 00 00 00
            00 00 00 07 00 00 00 00 00 00 00 01 00 01 00 00
            06 01 00 00 20 01 0d b8 00 01 00 00 00 00 00 00
            00 00 00 07 20 01 0d b8 01 00 00 00 00 00 00 00
            00 00 00 01 20 01 0d b8 00 02 00 00 00 00 00 00
            00 00 00 11 9c 40 00 50 1f 90 00 00 00 00 03 84
            00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
        let d: Vec<u8> = hex
            .split_whitespace()
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        assert_eq!(d.len(), 32 + 80 + 16);
        assert_eq!(
            d,
            datagram(&[record(40000)]),
            "the builder writes the example"
        );
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.family(), Family::Ipv6);
        let got: Vec<_> = p.records6().collect();
        assert_eq!(got, vec![Ok(record(40000))]);
        assert_eq!(p.records().count(), 0, "no IPv4 record in an IPv6 datagram");
    }

    #[test]
    fn a_local_end_sets_the_flag_and_the_last_18_bytes() {
        let mut r = record(1);
        r.local = Some(ep("2001:db8:3::64", 1024));
        let mut b = [0u8; RECORD6_LEN];
        r.emit(&mut b);
        assert_eq!(b[2], 0x04);
        assert_eq!(&b[58..60], &[0x04, 0x00]);
        assert_eq!(
            &b[64..80],
            &"2001:db8:3::64".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(Record6::parse(&b), Ok(r));
    }

    #[test]
    fn a_full_ipv6_datagram_holds_16_records_in_1328_bytes() {
        let mut buf = [0u8; 2000];
        let mut b = Builder6::new(&mut buf, &header()).unwrap();
        assert_eq!(b.capacity(), 16);
        for i in 0..16 {
            b.push(&record(i)).unwrap();
        }
        assert!(b.is_full());
        assert_eq!(b.push(&record(99)), Err(crate::ha::sync::Full));
        assert_eq!(b.finish(None).len(), 1328);
    }

    #[test]
    fn a_truncated_ipv6_datagram_is_refused() {
        let d = datagram(&[record(1), record(2)]);
        for cut in [d.len() - 1, d.len() - 80, MIN_DATAGRAM_LEN + 79] {
            assert_eq!(
                Packet::new_checked(&d[..cut]).err(),
                Some(Error::Truncated),
                "cut at {cut}"
            );
        }
        assert_eq!(Record6::parse(&[6; 79]), Err(RecordError::UnknownProtocol));
    }

    #[test]
    fn an_unknown_family_is_malformed() {
        let mut d = datagram(&[record(1)]);
        for f in [0, 5, 10, 255] {
            d[7] = f;
            assert_eq!(
                Packet::new_checked(&d[..]).err(),
                Some(Error::Malformed),
                "family {f}"
            );
        }
    }

    #[test]
    fn ipv6_records_in_an_ipv4_datagram_are_the_wrong_length() {
        // An IPv6 datagram relabelled as version 3 (IPv4, 36-byte records):
        // 80 bytes are one 36-byte record and 44 too many.
        let mut d = datagram(&[record(1)]);
        d[4] = 3;
        d[7] = 0;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Malformed));
        // And relabelled as version 4, family 4.
        d[4] = 4;
        d[7] = 4;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Malformed));
        // Three IPv4 records (108 bytes) relabelled IPv6: short of two.
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let mut b = Builder::new(&mut buf, &header()).unwrap();
        for _ in 0..3 {
            b.push(&v4_record()).unwrap();
        }
        let mut d = b.finish(None).to_vec();
        d[28..30].copy_from_slice(&[0, 2]);
        d[4] = 4;
        d[7] = 6;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Truncated));
    }

    fn v4_record() -> Record {
        Record {
            protocol: Protocol::Udp,
            state: State::Established,
            input_only: true,
            removed: false,
            client: crate::lb::xmit::Endpoint::new([198, 51, 100, 7].into(), 5353),
            vip: crate::lb::xmit::Endpoint::new([203, 0, 113, 100].into(), 53),
            real: crate::lb::xmit::Endpoint::new([10, 1, 0, 11].into(), 53),
            timeout_s: 300,
            local: None,
        }
    }

    #[test]
    fn version_4_family_4_carries_version_3_records() {
        let r = v4_record();
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let mut b = Builder::new(&mut buf, &header()).unwrap();
        b.push(&r).unwrap();
        let mut d = b.finish(None).to_vec();
        d[4] = 4;
        d[7] = 4;
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.family(), Family::Ipv4);
        assert_eq!(p.records().collect::<Vec<_>>(), vec![Ok(r)]);
        assert_eq!(p.records6().count(), 0);
    }

    #[test]
    fn a_bad_ipv6_record_spoils_only_itself() {
        let mut d = datagram(&[record(1), record(2)]);
        d[32] = 1; // ICMP
        d[32 + 80 + 1] = 11; // no such state
        let p = Packet::new_checked(&d[..]).unwrap();
        let got: Vec<_> = p.records6().collect();
        assert_eq!(
            got,
            vec![
                Err(RecordError::UnknownProtocol),
                Err(RecordError::UnknownState)
            ]
        );
    }

    #[test]
    fn reserved_bits_and_the_local_end_without_its_flag_are_ignored() {
        let mut d = datagram(&[record(1)]);
        d[32 + 2] |= 0xf8;
        d[32 + 3] = 0xff;
        d[32 + 58] = 9;
        d[32 + 64] = 9;
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.records6().next(), Some(Ok(record(1))));
    }

    #[test]
    fn events_convert_both_ways() {
        let r = record(7);
        assert_eq!(Record6::from(r.event()), r);
    }

    fn any_endpoint6() -> impl Strategy<Value = Endpoint6> {
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| Endpoint6::new(Ipv6Addr::from(ip), port))
    }

    fn any_record6() -> impl Strategy<Value = Record6> {
        (
            prop::sample::select(Protocol::ALL.to_vec()),
            prop::sample::select(State::ALL.to_vec()),
            (any::<bool>(), any::<bool>()),
            (any_endpoint6(), any_endpoint6(), any_endpoint6()),
            any::<u32>(),
            prop::option::of(any_endpoint6()),
        )
            .prop_map(
                |(
                    protocol,
                    state,
                    (input_only, removed),
                    (client, vip, real),
                    timeout_s,
                    local,
                )| {
                    Record6 {
                        protocol,
                        state,
                        input_only,
                        removed,
                        client,
                        vip,
                        real,
                        timeout_s,
                        local,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn ipv6_records_round_trip(
            records in prop::collection::vec(any_record6(), 0..=MAX_RECORDS6),
            seq in any::<u64>(),
        ) {
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let h = Header { seq, ..header() };
            let mut b = Builder6::new(&mut buf, &h).unwrap();
            for r in &records {
                b.push(r).unwrap();
            }
            let d = b.finish(None);
            prop_assert_eq!(d.len(), MIN_DATAGRAM_LEN + records.len() * RECORD6_LEN);
            let p = Packet::new_checked(d).unwrap();
            prop_assert_eq!(p.header(), h);
            let got: Vec<_> = p.records6().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got, records);
        }

        #[test]
        fn ipv6_records_never_panic_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = Record6::parse(&b);
        }
    }
}
