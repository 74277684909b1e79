//! The IPv6 instance of the connection table: the same behaviours as the
//! IPv4 one (`conn/tests.rs`), on 128-byte entries.

use super::super::*;
use crate::lb::tcp_state::TcpFlags;
use proptest::prelude::*;
use std::collections::HashMap;

const SEC: u64 = 1_000_000_000;
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

fn client(n: u32) -> Ipv6Addr {
    Ipv6Addr::from(0x2001_0db8_0001_0000_0000_0000_0000_0000u128 + u128::from(n))
}

fn rip(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, n)
}

/// Client `n` (port `port`) → [VIP]:80 over TCP, NAT'ed to [rip 1]:8080.
fn nat_keys(n: u32, port: u16) -> (FlowKey6, FlowKey6) {
    let orig = FlowKey6::new(client(n), port, VIP, 80, PROTO_TCP);
    let reply = FlowKey6::new(rip(1), 8080, client(n), port, PROTO_TCP);
    (orig, reply)
}

fn none(_: &Conn6) {}

#[test]
fn an_ipv6_entry_is_two_cache_lines_and_an_ipv4_entry_still_one() {
    assert_eq!(std::mem::size_of::<Conn6>(), 128);
    assert_eq!(std::mem::align_of::<Conn6>(), 64);
    assert_eq!(std::mem::size_of::<Conn>(), 64);
    assert_eq!(std::mem::size_of::<ConnMeta>(), 40);
}

#[test]
fn ipv6_memory_per_connection_is_the_entry_and_the_shared_index() {
    // 128-byte entry, two fifths of a 64-byte bucket, a 4-byte ring slot.
    let per = ConnTable6::memory_for(1_000_000) as f64 / 1e6;
    assert!((157.0..158.0).contains(&per), "{per}");
}

#[test]
fn ipv6_insert_then_lookup_finds_both_directions() {
    let mut t = ConnTable6::new(16);
    let (o, r) = nat_keys(1, 40000);
    let id = t.insert(o, r, ConnInit::new(2, 5), 0, none).unwrap();
    assert_eq!(t.lookup(&o, 1, none), Some((id, Direction::Original)));
    assert_eq!(t.lookup(&r, 1, none), Some((id, Direction::Reply)));
    let c = t.get(id);
    assert_eq!((c.vs, c.rs), (2, 5));
    assert_eq!(c.original(), o);
    assert_eq!(c.reply(), r);
    assert_eq!(c.key(Direction::Reply), r);
}

#[test]
fn ipv6_keys_differing_only_in_the_low_address_bits_are_distinct() {
    let mut t = ConnTable6::new(16);
    let (o1, r1) = nat_keys(1, 40000);
    let (o2, r2) = nat_keys(2, 40000);
    let a = t.insert(o1, r1, ConnInit::new(0, 0), 0, none).unwrap();
    let b = t.insert(o2, r2, ConnInit::new(0, 1), 0, none).unwrap();
    assert_ne!(a, b);
    assert_eq!(t.lookup(&o2, 1, none), Some((b, Direction::Original)));
    assert_eq!(t.lookup(&r1, 1, none), Some((a, Direction::Reply)));
}

#[test]
fn ipv6_remove_forgets_both_keys() {
    let mut t = ConnTable6::new(16);
    let (o, r) = nat_keys(1, 40000);
    let id = t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
    let c = t.remove(id);
    assert_eq!(c.original(), o);
    assert_eq!(t.lookup(&o, 1, none), None);
    assert_eq!(t.lookup(&r, 1, none), None);
    assert!(t.is_empty());
}

#[test]
fn ipv6_expired_connection_is_reclaimed_by_lookup_and_by_the_sweep() {
    let mut t = ConnTable6::new(16);
    let (o1, r1) = nat_keys(1, 1000);
    let (o2, r2) = nat_keys(2, 1000);
    t.insert(o1, r1, ConnInit::new(0, 0), 0, none).unwrap();
    t.insert(o2, r2, ConnInit::new(0, 0), 0, none).unwrap();
    let later = INITIAL_TIMEOUT_NS;
    let mut gone = Vec::new();
    assert_eq!(
        t.lookup(&o1, later, |c: &Conn6| gone.push(c.original())),
        None
    );
    assert_eq!(gone, vec![o1]);
    assert_eq!(t.expire(later, 16, |c: &Conn6| gone.push(c.original())), 1);
    assert_eq!(gone, vec![o1, o2]);
    assert!(t.is_empty());
}

#[test]
fn ipv6_on_packet_moves_the_tcp_state_as_for_ipv4() {
    let mut t = ConnTable6::new(16);
    let (o, r) = nat_keys(1, 1000);
    let id = t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
    let timeouts = Timeouts::default();
    let c = t.get_mut(id);
    c.on_packet(Direction::Original, TcpFlags::SYN, 60, 0, &timeouts);
    c.on_packet(
        Direction::Reply,
        TcpFlags::SYN | TcpFlags::ACK,
        60,
        1,
        &timeouts,
    );
    let tr = c.on_packet(Direction::Original, TcpFlags::ACK, 52, 2, &timeouts);
    assert!(tr.now_active);
    assert_eq!(c.state(), State::Established);
    assert_eq!((c.packets_in, c.packets_out), (2, 1));
    assert_eq!((c.bytes_in(), c.bytes_out()), (112, 60));
}

#[test]
fn ipv6_full_table_evicts_the_oldest_unproven_connection() {
    let mut t = ConnTable6::new(4);
    let mut first = None;
    for n in 0..4 {
        let (o, r) = nat_keys(n, 1000);
        let id = t.insert(o, r, ConnInit::new(0, 0), n as u64, none).unwrap();
        first.get_or_insert(id);
    }
    let (o, r) = nat_keys(99, 1000);
    let mut gone = Vec::new();
    t.insert(o, r, ConnInit::new(0, 0), 10, |c: &Conn6| {
        gone.push(c.original())
    })
    .expect("room made");
    assert_eq!(gone, vec![nat_keys(0, 1000).0]);
    assert_eq!(t.evictions().tcp, 1);
}

#[test]
fn ipv6_full_table_of_proven_established_connections_refuses() {
    let mut t = ConnTable6::new(2);
    let est = ConnInit {
        state: State::Established,
        timeout_ns: 900 * SEC,
        proven: true,
        ..ConnInit::new(0, 0)
    };
    for n in 0..2 {
        let (o, r) = nat_keys(n, 1000);
        t.insert(o, r, est, 0, none).unwrap();
    }
    let (o, r) = nat_keys(7, 1000);
    assert_eq!(t.insert(o, r, est, 1, none), Err(InsertError::Full));
}

#[test]
fn ipv6_insert_refuses_a_key_already_live() {
    let mut t = ConnTable6::new(16);
    let (o, r) = nat_keys(1, 1000);
    t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
    let other_reply = FlowKey6::new(rip(2), 8080, client(1), 1000, PROTO_TCP);
    assert_eq!(
        t.insert(o, other_reply, ConnInit::new(0, 0), 1, none),
        Err(InsertError::Exists)
    );
    assert_eq!(
        t.insert(o, o, ConnInit::new(0, 0), 1, none),
        Err(InsertError::SameKeys)
    );
}

#[test]
fn ipv6_hash_depends_on_every_part_of_the_key_and_the_seed() {
    let t = ConnTable6::with_seed(16, 1);
    let u = ConnTable6::with_seed(16, 2);
    let (o, _) = nat_keys(1, 1000);
    let h = t.hash(&o);
    assert_ne!(h, u.hash(&o));
    let mut k = o;
    k.src = Ipv6Addr::from(u128::from(o.src) ^ (1 << 100));
    assert_ne!(t.hash(&k), h);
    let mut k = o;
    k.dst_port = 81;
    assert_ne!(t.hash(&k), h);
    let mut k = o;
    k.proto = PROTO_UDP;
    assert_ne!(t.hash(&k), h);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Inserts and removes of random IPv6 keys agree with a map: every
    /// live connection is found by both keys, removed ones by neither.
    #[test]
    fn ipv6_table_agrees_with_a_map(ops in prop::collection::vec((0u32..64, any::<bool>()), 1..300)) {
        let mut t = ConnTable6::new(128);
        let mut model: HashMap<u32, ConnId> = HashMap::new();
        for (n, insert) in ops {
            let (o, r) = nat_keys(n.wrapping_mul(0x9E37_79B9), 1000 + n as u16);
            if insert {
                let got = t.insert(o, r, ConnInit::new(0, 0), 0, none);
                match model.get(&n) {
                    Some(_) => prop_assert_eq!(got, Err(InsertError::Exists)),
                    None => { model.insert(n, got.unwrap()); }
                }
            } else if let Some(id) = model.remove(&n) {
                prop_assert_eq!(t.remove(id).original(), o);
            }
            prop_assert_eq!(t.len(), model.len());
        }
        for n in 0..64u32 {
            let (o, r) = nat_keys(n.wrapping_mul(0x9E37_79B9), 1000 + n as u16);
            let want = model.get(&n).copied();
            prop_assert_eq!(t.peek(&o, 1).map(|x| x.0), want);
            prop_assert_eq!(t.peek(&r, 1).map(|x| x.0), want);
        }
    }
}

#[test]
fn ipv6_prefetches_of_stored_and_absent_keys_are_harmless() {
    let mut t = ConnTable6::new(16);
    let (o, r) = nat_keys(1, 1000);
    let id = t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
    for k in [o, r, nat_keys(2, 1000).0] {
        let h = t.hash(&k);
        t.prefetch_bucket(h);
        t.prefetch_entry(h);
    }
    assert_eq!(
        t.lookup_hashed(&r, t.hash(&r), 1, none),
        Some((id, Direction::Reply))
    );
}
