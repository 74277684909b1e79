use super::*;
use crate::lb::tcp_state::{should_restart, TcpFlags};
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};

const SEC: u64 = 1_000_000_000;
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn client(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xC633_6400 + n) // 198.51.100.0/24 and beyond
}

fn rip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

/// Client `n` (port `port`) → VIP:80 over TCP, NAT'ed to 192.0.2.1:8080.
fn nat_keys(n: u32, port: u16) -> (FlowKey, FlowKey) {
    let orig = FlowKey::new(client(n), port, VIP, 80, PROTO_TCP);
    let reply = FlowKey::new(rip(1), 8080, client(n), port, PROTO_TCP);
    (orig, reply)
}

fn none(_: &Conn) {}

/// A table of `size` entries holding one new NAT connection (client 1,
/// port 1000, created at time 0 as a first packet creates one): the table,
/// the connection's id and its original key.
fn one_new_nat(size: usize) -> (ConnTable, ConnId, FlowKey) {
    let mut t = ConnTable::new(size);
    let (o, r) = nat_keys(1, 1000);
    let id = t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
    (t, id, o)
}

/// A connection in `state` living `ttl` from time 0, installed as HA
/// sync installs one: proven, unless in NONE (as a packet creates one).
fn init(state: State, ttl: u64) -> ConnInit {
    ConnInit {
        state,
        timeout_ns: ttl,
        proven: state != State::None,
        ..ConnInit::new(0, 0)
    }
}

fn reclaimed(v: &mut Vec<Conn>) -> impl FnMut(&Conn) + '_ {
    |c| v.push(*c)
}

#[test]
fn insert_then_lookup_finds_both_directions() {
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 40000);
    let id = t
        .insert(o, r, ConnInit::new(2, 5), 0, none)
        .expect("inserted");
    assert_eq!(t.lookup(&o, 1, none), Some((id, Direction::Original)));
    assert_eq!(t.lookup(&r, 1, none), Some((id, Direction::Reply)));
    let c = t.get(id);
    assert_eq!((c.vs, c.rs), (2, 5));
    assert_eq!(c.original(), o);
    assert_eq!(c.reply(), r);
    assert_eq!(c.key(Direction::Reply), r);
    assert_eq!(t.len(), 1);
}

#[test]
fn lookup_of_an_unknown_tuple_is_none() {
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 40000);
    t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
    let (other, _) = nat_keys(1, 40001);
    assert_eq!(t.lookup(&other, 1, none), None);
    // The reverse of the original key is not the reply key under NAT.
    assert_eq!(t.lookup(&o.reversed(), 1, none), None);
    // Same tuple, other protocol.
    let udp = FlowKey {
        proto: PROTO_UDP,
        ..o
    };
    assert_eq!(t.lookup(&udp, 1, none), None);
}

#[test]
fn expired_connection_is_not_found_and_is_reclaimed_by_lookup() {
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 40000);
    t.insert(o, r, init(State::Established, 10 * SEC), 0, none)
        .unwrap();
    assert!(t.lookup(&o, 10 * SEC - 1, none).is_some());
    let mut gone = Vec::new();
    assert_eq!(t.lookup(&r, 10 * SEC, reclaimed(&mut gone)), None);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].original(), o);
    assert!(gone[0].is_active(), "caller decrements the active count");
    assert!(t.is_empty());
    assert_eq!(t.lookup(&o, 10 * SEC, none), None);
}

#[test]
fn peek_does_not_reclaim() {
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 40000);
    let id = t.insert(o, r, init(State::None, SEC), 0, none).unwrap();
    assert_eq!(t.peek(&r, 0), Some((id, Direction::Reply)));
    assert_eq!(t.peek(&o, SEC), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn expire_sweep_reclaims_expired_connections_within_its_budget() {
    let mut t = ConnTable::new(64);
    for n in 0..40 {
        let (o, r) = nat_keys(n, 1000);
        let ttl = if n % 2 == 0 { SEC } else { 100 * SEC };
        t.insert(o, r, init(State::SynRecv, ttl), 0, none).unwrap();
    }
    let mut gone = Vec::new();
    // 40 entries in use: a budget of 10 examines a quarter of them.
    assert_eq!(t.expire(SEC, 10, reclaimed(&mut gone)), 5);
    let mut total = gone.len();
    for _ in 0..3 {
        total += t.expire(SEC, 10, none);
    }
    assert_eq!(total, 20);
    assert_eq!(t.len(), 20);
    assert!(gone.iter().all(|c| c.expires_ns <= SEC));
    // Nothing more to reclaim before the others expire.
    assert_eq!(t.expire(SEC, 1000, none), 0);
    assert_eq!(t.expire(100 * SEC, 1000, none), 20);
    assert!(t.is_empty());
}

#[test]
fn remove_returns_the_connection_and_frees_its_entry_for_reuse() {
    let mut t = ConnTable::new(1);
    let (o1, r1) = nat_keys(1, 1000);
    let (o2, r2) = nat_keys(2, 1000);
    let id = t
        .insert(o1, r1, init(State::Established, 100 * SEC), 0, none)
        .unwrap();
    assert_eq!(
        t.insert(o2, r2, ConnInit::new(0, 0), 0, none),
        Err(InsertError::Full)
    );
    let c = t.remove(id);
    assert_eq!(c.original(), o1);
    assert_eq!(t.lookup(&o1, 0, none), None);
    assert_eq!(t.lookup(&r1, 0, none), None);
    let id2 = t.insert(o2, r2, ConnInit::new(0, 0), 0, none).unwrap();
    assert_eq!(t.lookup(&r2, 0, none), Some((id2, Direction::Reply)));
}

#[test]
fn insert_of_a_live_key_in_either_direction_is_refused() {
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 1000);
    t.insert(o, r, init(State::SynRecv, 10 * SEC), 0, none)
        .unwrap();
    let (o2, r2) = nat_keys(2, 1000);
    assert_eq!(
        t.insert(o, r2, ConnInit::new(0, 0), 1, none),
        Err(InsertError::Exists)
    );
    assert_eq!(
        t.insert(o2, r, ConnInit::new(0, 0), 1, none),
        Err(InsertError::Exists)
    );
    // A new connection's original key equal to an old one's reply key.
    assert_eq!(
        t.insert(r, o2, ConnInit::new(0, 0), 1, none),
        Err(InsertError::Exists)
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn insert_over_an_expired_connection_with_the_same_key_reclaims_it() {
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 1000);
    let (_, r2) = nat_keys(1, 2000);
    t.insert(o, r, init(State::TimeWait, 10 * SEC), 0, none)
        .unwrap();
    let mut gone = Vec::new();
    let id = t
        .insert(o, r2, ConnInit::new(0, 1), 10 * SEC, reclaimed(&mut gone))
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].reply(), r);
    assert_eq!(t.lookup(&r, 10 * SEC, none), None);
    assert_eq!(
        t.lookup(&o, 10 * SEC, none),
        Some((id, Direction::Original))
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn original_equal_to_reply_is_refused() {
    let mut t = ConnTable::new(16);
    let k = FlowKey::new(VIP, 80, VIP, 80, PROTO_TCP);
    assert_eq!(
        t.insert(k, k.reversed(), ConnInit::new(0, 0), 0, none),
        Err(InsertError::SameKeys)
    );
}

/// A full table of `states.len()` connections inserted in order (client
/// `n` for the `n`th), each in its state living its time from 0.
fn full_table<const N: usize>(states: [(State, u64); N]) -> (ConnTable, Vec<FlowKey>) {
    let mut t = ConnTable::new(N);
    let mut keys = Vec::new();
    for (n, (s, ttl)) in states.into_iter().enumerate() {
        let (o, r) = nat_keys(n as u32, 1000);
        t.insert(o, r, init(s, ttl), 0, none).unwrap();
        keys.push(o);
    }
    (t, keys)
}

/// Inserts a new packet-created connection (state NONE) for client `n`
/// at `now`; returns the result and what it reclaimed.
fn insert_new(t: &mut ConnTable, n: u32, now: u64) -> (Result<ConnId, InsertError>, Vec<Conn>) {
    let (o, r) = nat_keys(n, 1000);
    let mut gone = Vec::new();
    let got = t.insert(o, r, ConnInit::new(0, 0), now, reclaimed(&mut gone));
    (got, gone)
}

#[test]
fn full_table_refuses_new_connections() {
    let (mut t, keys) = full_table([(State::Established, 100 * SEC); 4]);
    let (o, r) = nat_keys(99, 1000);
    assert_eq!(
        t.insert(o, r, ConnInit::new(0, 0), SEC, none),
        Err(InsertError::Full)
    );
    assert_eq!(t.len(), 4);
    assert!(keys.iter().all(|k| t.lookup(k, SEC, none).is_some()));
}

#[test]
fn full_table_with_nothing_queued_reclaims_an_expired_connection_of_the_home_bucket() {
    // Two connections: one bucket, every key's home.
    let (mut t, keys) = full_table([(State::Established, 100 * SEC), (State::Established, SEC)]);
    assert_eq!(t.buckets.len(), 1);
    let (got, gone) = insert_new(&mut t, 99, SEC);
    assert!(got.is_ok());
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].original(), keys[1]);
    assert!(t.lookup(&keys[0], SEC, none).is_some());
}

#[test]
fn full_table_evicts_the_oldest_half_open_connection_first() {
    let (mut t, keys) = full_table([
        (State::SynRecv, 60 * SEC),
        (State::Established, 100 * SEC),
        (State::SynRecv, 30 * SEC),
        (State::SynSent, 120 * SEC),
    ]);
    let mut order = Vec::new();
    for n in 100..104 {
        let (got, gone) = insert_new(&mut t, n, SEC);
        let id = got.unwrap();
        assert_eq!(gone.len(), 1);
        assert!(gone[0].expires_ns > SEC, "evicted, not expired");
        order.push(gone[0].original());
        let (o, _) = nat_keys(n, 1000);
        assert_eq!(t.lookup(&o, SEC, none), Some((id, Direction::Original)));
        assert_eq!(t.len(), 4);
    }
    // The three half-open ones in insertion order, then the first of the
    // new (NONE) ones; the established one stays.
    assert_eq!(order, [keys[0], keys[2], keys[3], nat_keys(100, 1000).0]);
    assert!(t.lookup(&keys[1], SEC, none).is_some());
}

#[test]
fn full_table_skips_queued_connections_established_or_removed_since() {
    let (mut t, keys) = full_table([(State::SynRecv, 60 * SEC); 4]);
    let timeouts = Timeouts::default();
    let (a, _) = t.lookup(&keys[0], 0, none).unwrap();
    t.get_mut(a).set_state(State::Established, 0, &timeouts);
    let (b, _) = t.lookup(&keys[1], 0, none).unwrap();
    t.remove(b);
    // HA sync installs an established connection in the freed entry.
    let (o, r) = nat_keys(50, 1000);
    let e = t
        .insert(o, r, init(State::Established, 100 * SEC), 0, none)
        .unwrap();
    assert_eq!(e, b, "the freed entry is reused");
    let (got, gone) = insert_new(&mut t, 99, SEC);
    assert!(got.is_ok());
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].original(), keys[2]);
    assert!(t.lookup(&keys[0], SEC, none).is_some());
    assert!(t.lookup(&o, SEC, none).is_some());
}

#[test]
fn full_table_of_connections_established_since_queued_refuses_in_bounded_work() {
    let cap = 64;
    let mut t = ConnTable::new(cap);
    let timeouts = Timeouts::default();
    for n in 0..cap as u32 {
        let (o, r) = nat_keys(n, 1000);
        let id = t
            .insert(o, r, init(State::SynRecv, 60 * SEC), 0, none)
            .unwrap();
        t.get_mut(id).set_state(State::Established, 0, &timeouts);
    }
    assert_eq!(t.shed_len, cap);
    for i in 1..=cap / SHED_POPS {
        let (got, gone) = insert_new(&mut t, 1000 + i as u32, SEC);
        assert_eq!(got, Err(InsertError::Full));
        assert!(gone.is_empty());
        assert_eq!(t.shed_len, cap - i * SHED_POPS, "at most SHED_POPS popped");
    }
    assert_eq!(insert_new(&mut t, 9999, SEC).0, Err(InsertError::Full));
    assert_eq!(t.len(), cap);
}

#[test]
fn full_table_never_evicts_proven_established_or_closing_connections() {
    let (mut t, _) = full_table([
        (State::Established, 100 * SEC),
        (State::TimeWait, 100 * SEC),
        (State::CloseWait, 100 * SEC),
        (State::Established, 100 * SEC),
    ]);
    let (o, r) = nat_keys(99, 1000);
    assert_eq!(
        t.insert(o, r, ConnInit::new(0, 0), SEC, none),
        Err(InsertError::Full)
    );
    assert_eq!(t.evictions(), Evictions::default());
}

/// Client `n`'s UDP flow to VIP:53, NAT'ed to 192.0.2.1:53.
fn udp_keys(n: u32) -> (FlowKey, FlowKey) {
    let o = FlowKey::new(client(n), 5353, VIP, 53, PROTO_UDP);
    let r = FlowKey::new(rip(1), 53, client(n), 5353, PROTO_UDP);
    (o, r)
}

/// A table of `cap` UDP flows created by one datagram each at time
/// `n` ms, client `n` for the `n`th (nothing expires before 300 s).
fn udp_filled(cap: usize) -> (ConnTable, Vec<FlowKey>) {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(cap);
    let mut keys = Vec::new();
    for n in 0..cap as u32 {
        let now = u64::from(n) * 1_000_000;
        let (o, r) = udp_keys(n);
        let id = t.insert(o, r, ConnInit::new(0, 0), now, none).unwrap();
        t.get_mut(id)
            .on_packet(Direction::Original, TcpFlags::NONE, 60, now, &tm);
        keys.push(o);
    }
    (t, keys)
}

#[test]
fn udp_filled_table_admits_a_new_client_by_evicting_the_oldest_udp_flow() {
    let (mut t, keys) = udp_filled(64);
    let (o, r) = udp_keys(1000);
    let mut gone = Vec::new();
    let id = t.insert(o, r, ConnInit::new(0, 0), SEC, reclaimed(&mut gone));
    assert!(id.is_ok());
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].original(), keys[0], "the oldest flow goes");
    assert!(t.lookup(&keys[1], SEC, none).is_some());
    assert_eq!(t.len(), 64);
    assert_eq!(t.evictions(), Evictions { tcp: 0, udp: 1 });
}

#[test]
fn answered_udp_flows_are_evicted_oldest_first_too() {
    let tm = Timeouts::default();
    let (mut t, keys) = udp_filled(16);
    for k in &keys {
        let (id, _) = t.lookup(k, SEC, none).unwrap();
        t.get_mut(id)
            .on_packet(Direction::Reply, TcpFlags::NONE, 60, SEC, &tm);
    }
    let mut gone = Vec::new();
    t.insert(
        udp_keys(1000).0,
        udp_keys(1000).1,
        ConnInit::new(0, 0),
        SEC,
        reclaimed(&mut gone),
    )
    .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].original(), keys[0]);
}

/// Client `n`'s DR connection to VIP:80, created by a SYN at `now`.
fn dr_conn(t: &mut ConnTable, n: u32, now: u64) -> (ConnId, FlowKey) {
    let o = FlowKey::new(client(n), 1000, VIP, 80, PROTO_TCP);
    let dr = ConnInit {
        input_only: true,
        ..ConnInit::new(0, 0)
    };
    let id = t.insert(o, o.reversed(), dr, now, none).unwrap();
    t.get_mut(id).on_packet(
        Direction::Original,
        TcpFlags::SYN,
        60,
        now,
        &Timeouts::default(),
    );
    (id, o)
}

#[test]
fn established_but_unproven_dr_connection_is_evicted() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(1);
    // A blind SYN-then-ACK: ESTABLISHED for 15 minutes, never answered.
    let (id, o) = dr_conn(&mut t, 1, 0);
    t.get_mut(id)
        .on_packet(Direction::Original, TcpFlags::ACK, 52, 0, &tm);
    assert_eq!(t.get(id).state(), State::Established);
    assert!(!t.get(id).is_proven());
    let mut gone = Vec::new();
    let got = t.insert(
        nat_keys(2, 1000).0,
        nat_keys(2, 1000).1,
        ConnInit::new(0, 0),
        SEC,
        reclaimed(&mut gone),
    );
    assert!(got.is_ok());
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].original(), o);
    assert_eq!(t.evictions(), Evictions { tcp: 1, udp: 0 });
}

#[test]
fn dr_connection_is_proven_only_after_enough_packets_over_enough_time() {
    let tm = Timeouts::default();
    let (n, ms) = (tm.proof_packets(), u64::from(tm.proof_ms()) * 1_000_000);
    let mut t = ConnTable::new(4);
    // Many packets at once: not old enough.
    let (a, _) = dr_conn(&mut t, 1, 0);
    for _ in 0..10 * n {
        t.get_mut(a)
            .on_packet(Direction::Original, TcpFlags::ACK, 52, ms - 1, &tm);
    }
    assert!(!t.get(a).is_proven());
    // Old enough, one packet short.
    let (b, _) = dr_conn(&mut t, 2, 0); // the SYN: one packet
    for _ in 0..n - 3 {
        t.get_mut(b)
            .on_packet(Direction::Original, TcpFlags::ACK, 52, 0, &tm);
    }
    t.get_mut(b)
        .on_packet(Direction::Original, TcpFlags::ACK, 52, ms, &tm);
    assert_eq!(t.get(b).packets_in, n - 1);
    assert!(!t.get(b).is_proven());
    // The n-th packet at that age proves it.
    t.get_mut(b)
        .on_packet(Direction::Original, TcpFlags::ACK, 52, ms, &tm);
    assert!(t.get(b).is_proven());
}

#[test]
fn proven_dr_connection_is_never_evicted() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(1);
    let (id, o) = dr_conn(&mut t, 1, 0);
    for _ in 0..tm.proof_packets() {
        t.get_mut(id)
            .on_packet(Direction::Original, TcpFlags::ACK, 52, 2 * SEC, &tm);
    }
    let (n, r) = nat_keys(2, 1000);
    assert_eq!(
        t.insert(n, r, ConnInit::new(0, 0), 3 * SEC, none),
        Err(InsertError::Full)
    );
    assert!(t.lookup(&o, 3 * SEC, none).is_some());
}

#[test]
fn proven_nat_connection_is_never_evicted() {
    let tm = Timeouts::default();
    let (mut t, id, o) = one_new_nat(2);
    let c = t.get_mut(id);
    c.on_packet(Direction::Original, TcpFlags::SYN, 60, 0, &tm);
    c.on_packet(Direction::Reply, TcpFlags::SYN_ACK, 60, 0, &tm);
    assert!(!c.is_proven(), "a server answers spoofed SYNs too");
    c.on_packet(Direction::Original, TcpFlags::ACK, 52, 0, &tm);
    c.on_packet(Direction::Original, TcpFlags::ACK, 200, 0, &tm);
    c.on_packet(Direction::Reply, TcpFlags::ACK, 1500, 0, &tm);
    assert!(c.is_proven());
    // A flood of new flows passes through the other entry only.
    for n in 0..100 {
        let (fo, fr) = nat_keys(100 + n, 2000);
        let mut ev = |c: &Conn| assert_ne!(c.original(), o, "proven connection evicted");
        t.insert(fo, fr, ConnInit::new(0, 0), SEC, &mut ev).unwrap();
    }
    assert!(t.lookup(&o, SEC, none).is_some());
    assert_eq!(t.evictions().tcp, 99);
}

#[test]
fn reset_from_the_server_does_not_prove_a_nat_connection() {
    let tm = Timeouts::default();
    let (mut t, id, _) = one_new_nat(2);
    let c = t.get_mut(id);
    c.on_packet(Direction::Original, TcpFlags::SYN, 60, 0, &tm);
    c.on_packet(Direction::Original, TcpFlags::ACK, 52, 0, &tm);
    c.on_packet(Direction::Reply, TcpFlags::RST, 40, 0, &tm);
    assert!(!c.is_proven());
}

#[test]
fn sync_installed_connections_are_proven_and_protected() {
    let mut t = ConnTable::new(1);
    let o = FlowKey::new(client(1), 1000, VIP, 80, PROTO_TCP);
    let synced = ConnInit {
        input_only: true,
        state: State::Established,
        timeout_ns: 900 * SEC,
        proven: true,
        ..ConnInit::new(0, 0)
    };
    let id = t.insert(o, o.reversed(), synced, 0, none).unwrap();
    assert!(t.get(id).is_proven());
    assert_eq!(t.shed_len, 0, "not queued for shedding");
    let (n, r) = nat_keys(2, 1000);
    assert_eq!(
        t.insert(n, r, ConnInit::new(0, 0), SEC, none),
        Err(InsertError::Full)
    );
}

#[test]
fn every_packet_created_connection_is_queued_for_shedding() {
    let mut t = ConnTable::new(8);
    insert_new(&mut t, 1, 0).0.unwrap();
    t.insert(udp_keys(2).0, udp_keys(2).1, ConnInit::new(0, 0), 0, none)
        .unwrap();
    assert_eq!(t.shed_len, 2);
}

#[test]
fn syn_flood_of_ten_times_capacity_leaves_established_connections_alone() {
    let cap = 1024;
    let mut t = ConnTable::new(cap);
    let mut established = Vec::new();
    for n in 0..512 {
        let (o, r) = nat_keys(n, 1000);
        t.insert(o, r, init(State::Established, 900 * SEC), 0, none)
            .unwrap();
        established.push(o);
    }
    let (mut evicted, mut refused) = (0, 0);
    for n in 0..10 * cap as u32 {
        let (o, r) = nat_keys(10_000 + n, 2000);
        let mut ev = |c: &Conn| {
            assert!(c.state().is_embryonic());
            evicted += 1;
        };
        match t.insert(o, r, init(State::SynRecv, 60 * SEC), SEC, &mut ev) {
            Ok(_) => {}
            Err(InsertError::Full) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 0, "a half-open connection is always there to shed");
    assert_eq!(evicted, 10 * cap - 512);
    assert!(established.iter().all(|k| t.lookup(k, SEC, none).is_some()));
    assert_eq!(t.len(), cap);
}

#[test]
fn high_load_factor_still_finds_everything() {
    let cap = 4096;
    let mut t = ConnTable::with_seed(cap, 0x5eed);
    let mut rng = 0x1234_5678_9abc_def0_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut conns = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while conns.len() < cap {
        let x = next();
        let o = FlowKey::new(
            Ipv4Addr::from(x as u32),
            (x >> 32) as u16,
            VIP,
            80,
            PROTO_TCP,
        );
        let r = FlowKey::new(rip((x >> 48) as u8), 8080, o.src, o.src_port, PROTO_TCP);
        if !seen.insert(o) || !seen.insert(r) {
            continue;
        }
        let id = t
            .insert(o, r, init(State::Established, 900 * SEC), 0, none)
            .unwrap();
        conns.push((id, o, r));
    }
    assert_eq!(t.len(), cap);
    for (id, o, r) in &conns {
        assert_eq!(t.lookup(o, 1, none), Some((*id, Direction::Original)));
        assert_eq!(t.lookup(r, 1, none), Some((*id, Direction::Reply)));
    }
    for (id, _, _) in conns.iter().step_by(2) {
        t.remove(*id);
    }
    assert_eq!(t.len(), cap / 2);
    for (i, (id, o, r)) in conns.iter().enumerate() {
        let want = |d| (i % 2 == 1).then_some((*id, d));
        assert_eq!(t.lookup(o, 1, none), want(Direction::Original));
        assert_eq!(t.lookup(r, 1, none), want(Direction::Reply));
    }
}

#[test]
fn displacement_stays_rare_and_short_for_sequential_tuples_at_full_load() {
    // Clients and ports counting up: the pattern a weak hash clusters.
    let cap = 1 << 16;
    let mut t = ConnTable::new(cap);
    for n in 0..cap as u32 {
        let c = Ipv4Addr::from(0x0A00_0000 + (n >> 8));
        let port = 1024 + (n & 0xff) as u16;
        let o = FlowKey::new(c, port, VIP, 80, PROTO_TCP);
        let r = FlowKey::new(rip((n % 4) as u8), 8080, c, port, PROTO_TCP);
        t.insert(o, r, init(State::Established, SEC), 0, none)
            .unwrap();
    }
    check_index(&t);
    let (mut displaced, mut farthest, mut overflowing) = (0, 0, 0);
    for b in t.buckets.iter() {
        overflowing += usize::from(b.displaced != 0);
        for d in 1..=MAX_DISPLACEMENT {
            let n = (b.displaced >> (4 * (d - 1))) & 0xF;
            displaced += n as usize;
            if n > 0 {
                farthest = farthest.max(d);
            }
        }
    }
    // Poisson(5) occupancy of 10 slots: about 0.5 % of keys overflow, from
    // about 1.4 % of buckets, nearly all into the next bucket.
    let share = displaced as f64 / (2 * cap) as f64;
    assert!(share < 0.01, "{share} of keys displaced");
    let share = overflowing as f64 / t.buckets.len() as f64;
    assert!(share < 0.03, "{share} of buckets overflowing");
    assert!(farthest <= 3, "a key {farthest} buckets from home");
}

#[test]
fn iter_lists_stored_connections() {
    let mut t = ConnTable::new(8);
    let ids: Vec<_> = (0..5)
        .map(|n| {
            let (o, r) = nat_keys(n, 1000);
            t.insert(o, r, ConnInit::new(0, n as u16), 0, none).unwrap()
        })
        .collect();
    t.remove(ids[1]);
    let listed: Vec<_> = t.iter().map(|(id, c)| (id, c.rs)).collect();
    assert_eq!(listed, [(ids[0], 0), (ids[2], 2), (ids[3], 3), (ids[4], 4)]);
}

// --- state tracking through the table -------------------------------------

#[test]
fn nat_handshake_makes_the_connection_active_and_sets_timeouts_per_state() {
    let tm = Timeouts::default();
    let (mut t, id, _) = one_new_nat(16);
    assert!(!t.get(id).is_active());
    let c = t.get_mut(id);
    let tr = c.on_packet(Direction::Original, TcpFlags::SYN, 60, SEC, &tm);
    assert_eq!(c.state(), State::SynRecv);
    assert_eq!(c.expires_ns, SEC + tm.tcp(State::SynRecv));
    assert!(!tr.changed());
    c.on_packet(Direction::Reply, TcpFlags::SYN_ACK, 60, 2 * SEC, &tm);
    assert_eq!(c.state(), State::SynRecv);
    let tr = c.on_packet(Direction::Original, TcpFlags::ACK, 52, 3 * SEC, &tm);
    assert_eq!(c.state(), State::Established);
    assert_eq!(c.expires_ns, 3 * SEC + 900 * SEC);
    assert_eq!(
        tr,
        Transition {
            was_active: false,
            now_active: true
        }
    );
    assert!(c.is_active());
    assert_eq!((c.packets_in, c.packets_out), (2, 1));
    assert_eq!((c.bytes_in(), c.bytes_out()), (112, 60));
}

#[test]
fn fin_sequence_makes_the_connection_inactive_with_closing_timeouts() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 1000);
    let id = t
        .insert(o, r, init(State::Established, 900 * SEC), 0, none)
        .unwrap();
    let c = t.get_mut(id);
    assert!(c.is_active());
    let tr = c.on_packet(Direction::Reply, TcpFlags::FIN_ACK, 52, SEC, &tm);
    assert_eq!(c.state(), State::FinWait);
    assert_eq!(c.expires_ns, SEC + 120 * SEC);
    assert!(tr.was_active && !tr.now_active);
    c.on_packet(Direction::Original, TcpFlags::FIN_ACK, 52, 2 * SEC, &tm);
    assert_eq!(c.state(), State::TimeWait);
    assert_eq!(c.expires_ns, 2 * SEC + 120 * SEC);
    let tr = c.on_packet(Direction::Reply, TcpFlags::ACK, 52, 3 * SEC, &tm);
    assert_eq!(c.state(), State::TimeWait);
    assert!(!tr.changed());
}

#[test]
fn rst_closes_with_the_close_timeout() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 1000);
    let id = t
        .insert(o, r, init(State::Established, 900 * SEC), 0, none)
        .unwrap();
    let c = t.get_mut(id);
    let tr = c.on_packet(Direction::Reply, TcpFlags::RST, 40, SEC, &tm);
    assert_eq!(c.state(), State::Close);
    assert_eq!(c.expires_ns, SEC + 10 * SEC);
    assert!(tr.changed());
}

#[test]
fn input_only_connection_uses_the_dr_table_until_a_reply_is_seen() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(16);
    let o = FlowKey::new(client(1), 1000, VIP, 80, PROTO_TCP);
    let dr = ConnInit {
        input_only: true,
        ..ConnInit::new(0, 0)
    };
    let id = t.insert(o, o.reversed(), dr, 0, none).unwrap();
    let c = t.get_mut(id);
    assert!(c.is_input_only());
    c.on_packet(Direction::Original, TcpFlags::SYN, 60, 0, &tm);
    c.on_packet(Direction::Original, TcpFlags::ACK, 52, 0, &tm);
    assert_eq!(c.state(), State::Established);
    c.on_packet(Direction::Original, TcpFlags::FIN_ACK, 52, 0, &tm);
    assert_eq!(c.state(), State::FinWait, "DR never sees the server's FIN");

    // Once a reply passes, the connection is tracked as NAT.
    let o2 = FlowKey::new(client(2), 1000, VIP, 80, PROTO_TCP);
    let id = t.insert(o2, o2.reversed(), dr, 0, none).unwrap();
    let c = t.get_mut(id);
    c.on_packet(Direction::Original, TcpFlags::SYN, 60, 0, &tm);
    c.on_packet(Direction::Reply, TcpFlags::SYN_ACK, 60, 0, &tm);
    assert!(!c.is_input_only());
    c.on_packet(Direction::Original, TcpFlags::ACK, 52, 0, &tm);
    c.on_packet(Direction::Original, TcpFlags::FIN_ACK, 52, 0, &tm);
    assert_eq!(c.state(), State::CloseWait);
}

#[test]
fn udp_connection_uses_the_udp_timeout_and_is_never_active() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(16);
    let o = FlowKey::new(client(1), 5353, VIP, 53, PROTO_UDP);
    let r = FlowKey::new(rip(1), 53, client(1), 5353, PROTO_UDP);
    let id = t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
    let c = t.get_mut(id);
    let tr = c.on_packet(Direction::Original, TcpFlags::NONE, 80, SEC, &tm);
    assert_eq!(c.expires_ns, SEC + 300 * SEC);
    assert!(!tr.now_active && !c.is_active());
    c.on_packet(Direction::Reply, TcpFlags::NONE, 200, 2 * SEC, &tm);
    assert_eq!(c.expires_ns, 2 * SEC + 300 * SEC);
    assert_eq!(c.state_name(), "UDP");
}

#[test]
fn configured_timeouts_apply_per_state() {
    let tm = Timeouts::with_overrides(crate::lb::tcp_state::TimeoutOverrides {
        tcp_established: Some(std::time::Duration::from_secs(50)),
        tcp_syn: Some(std::time::Duration::from_secs(5)),
        ..Default::default()
    });
    let (mut t, id, _) = one_new_nat(16);
    let c = t.get_mut(id);
    c.on_packet(Direction::Original, TcpFlags::SYN, 60, 0, &tm);
    assert_eq!(c.expires_ns, 5 * SEC);
    c.on_packet(Direction::Reply, TcpFlags::SYN_ACK, 60, 0, &tm);
    c.on_packet(Direction::Original, TcpFlags::ACK, 60, SEC, &tm);
    assert_eq!(c.expires_ns, 51 * SEC);
}

#[test]
fn syn_on_a_time_wait_connection_starts_a_new_connection() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 1000);
    let old = t
        .insert(o, r, init(State::TimeWait, 120 * SEC), 0, none)
        .unwrap();

    // The worker's handling of a bare SYN from the same client port.
    let syn = TcpFlags::SYN;
    let (id, dir) = t.lookup(&o, SEC, none).expect("old connection found");
    assert_eq!(id, old);
    assert!(should_restart(t.get(id).state(), dir, syn));
    let gone = t.remove(id);
    assert!(!gone.is_active());
    let (_, r2) = (o, FlowKey::new(rip(2), 8080, client(1), 1000, PROTO_TCP));
    let new = t.insert(o, r2, ConnInit::new(0, 1), SEC, none).unwrap();
    t.get_mut(new)
        .on_packet(Direction::Original, syn, 60, SEC, &tm);

    assert_eq!(t.get(new).state(), State::SynRecv);
    assert_eq!(t.get(new).rs, 1);
    assert_eq!(t.lookup(&r, SEC, none), None, "old reply key gone");
    assert_eq!(t.lookup(&r2, SEC, none), Some((new, Direction::Reply)));
}

#[test]
fn syn_on_a_closed_connection_starts_a_new_connection() {
    let mut t = ConnTable::new(16);
    let (o, r) = nat_keys(1, 1000);
    t.insert(o, r, init(State::Close, 10 * SEC), 0, none)
        .unwrap();
    let (id, dir) = t.lookup(&o, SEC, none).unwrap();
    assert!(should_restart(t.get(id).state(), dir, TcpFlags::SYN));
    // A retransmitted SYN of a connection being opened does not restart it.
    t.get_mut(id)
        .on_packet(dir, TcpFlags::SYN, 60, SEC, &Timeouts::default());
    assert!(!should_restart(t.get(id).state(), dir, TcpFlags::SYN));
}

#[test]
fn a_connection_is_one_cache_line() {
    assert_eq!(std::mem::size_of::<Conn>(), 64);
    assert_eq!(std::mem::align_of::<Conn>(), 64);
    assert!(std::mem::size_of::<Conn>() <= 128);
}

#[test]
fn an_index_bucket_is_one_cache_line() {
    assert_eq!(std::mem::size_of::<Bucket>(), 64);
    assert_eq!(std::mem::align_of::<Bucket>(), 64);
    let t = ConnTable::new(1000);
    assert_eq!(t.buckets.as_ptr() as usize % 64, 0);
}

#[test]
fn memory_per_connection_is_entry_ring_slot_and_two_fifths_of_a_bucket() {
    let t = ConnTable::new(1 << 16);
    assert_eq!(
        t.memory_bytes(),
        (1 << 16) * (64 + 4) + (2usize << 16).div_ceil(5) * 64
    );
    let t = ConnTable::new(100_000);
    assert_eq!(t.memory_bytes(), 100_000 * (64 + 4) + 40_000 * 64);
}

fn bytes_per_connection(capacity: usize) -> f64 {
    let t = ConnTable::new(capacity);
    assert_eq!(t.capacity(), capacity);
    t.memory_bytes() as f64 / capacity as f64
}

#[test]
fn memory_per_connection_is_at_most_100_bytes_at_1k() {
    let b = bytes_per_connection(1000);
    assert!(b <= 100.0, "{b} bytes per connection");
}

#[test]
fn memory_per_connection_is_at_most_100_bytes_at_1m() {
    let b = bytes_per_connection(1 << 20);
    assert!(b <= 100.0, "{b} bytes per connection");
    let b = bytes_per_connection(1_000_000);
    assert!(b <= 100.0, "{b} bytes per connection");
}

#[test]
fn memory_per_connection_is_at_most_100_bytes_at_10m() {
    // Maps about 0.9 GB, dropped at once.
    let b = bytes_per_connection(10_000_000);
    assert!(b <= 100.0, "{b} bytes per connection");
}

// --- model check ----------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Insert {
        o: usize,
        r: usize,
        state: u8,
        ttl: u64,
    },
    Lookup(usize),
    Remove(usize),
    Expire(usize),
    Advance(u64),
}

const POOL: usize = 64;
const CAP: usize = 8;

fn pool_key(i: usize) -> FlowKey {
    let i = i as u32;
    FlowKey::new(
        client(i % 5),
        1000 + (i % 13) as u16,
        rip((i % 3) as u8),
        80,
        if i.is_multiple_of(11) {
            PROTO_UDP
        } else {
            PROTO_TCP
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..POOL, 0..POOL, 0..3u8, 1..200u64)
            .prop_map(|(o, r, state, ttl)| Op::Insert { o, r, state, ttl }),
        4 => (0..POOL).prop_map(Op::Lookup),
        1 => (0..CAP * 2).prop_map(Op::Remove),
        1 => (1..CAP * 2).prop_map(Op::Expire),
        2 => (1..20u64).prop_map(Op::Advance),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Model {
    orig: FlowKey,
    reply: FlowKey,
    expires: u64,
    state: State,
}

impl Model {
    /// As `init` installs it.
    fn proven(&self) -> bool {
        self.state != State::None
    }

    fn protected(&self) -> bool {
        self.orig.proto == PROTO_TCP && self.proven() && !self.state.is_embryonic()
    }
}

/// Drops reclaimed connections from the model, checking each was allowed
/// to go: expired, or not protected and evicted from a full table.
fn apply_reclaimed(
    model: &mut HashMap<ConnId, Model>,
    gone: &[Conn],
    now: u64,
    eviction_allowed: bool,
) -> Result<(), TestCaseError> {
    for c in gone {
        let id = model
            .iter()
            .find(|(_, m)| m.orig == c.original() && m.reply == c.reply())
            .map(|(id, _)| *id);
        let id = id.ok_or_else(|| TestCaseError::fail("reclaimed unknown conn"))?;
        let m = model.remove(&id).unwrap();
        prop_assert_eq!(m.expires, c.expires_ns);
        if c.expires_ns > now {
            prop_assert!(eviction_allowed, "live conn reclaimed");
            prop_assert!(!c.is_protected());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_agrees_with_a_hashmap_model(ops in prop::collection::vec(op(), 1..200)) {
        let mut t = ConnTable::new(CAP);
        let mut model: HashMap<ConnId, Model> = HashMap::new();
        // The shedding ring as the model keeps it: ids inserted
        // unprotected.
        let mut ring: VecDeque<ConnId> = VecDeque::new();
        let mut now = 0u64;
        for op in ops {
            let mut gone = Vec::new();
            match op {
                Op::Insert { o, r, state, ttl } => {
                    let (orig, mut reply) = (pool_key(o), pool_key(r));
                    reply.proto = orig.proto;
                    let state = [State::None, State::SynRecv, State::Established][state as usize];
                    let got = t.insert(orig, reply, init(state, ttl), now, reclaimed(&mut gone));
                    let live_with = |k: FlowKey| model.values().any(|m| {
                        m.expires > now && (m.orig == k || m.reply == k)
                    });
                    let exists = live_with(orig) || live_with(reply);
                    let full_before = model.len() == CAP;
                    // Room is made when, after the expired connections
                    // with either key are reclaimed, the table is full:
                    // the ring's first live unprotected (unproven or UDP)
                    // or expired entry within SHED_POPS pops goes (stale
                    // ones are dropped).
                    let with_keys = model.values().filter(|m| {
                        [orig, reply].iter().any(|&k| m.orig == k || m.reply == k)
                    }).count();
                    let mut shed = None;
                    if !exists && orig != reply && model.len() - with_keys == CAP {
                        for _ in 0..SHED_POPS {
                            let Some(id) = ring.pop_front() else { break };
                            if model
                                .get(&id)
                                .is_some_and(|m| m.expires <= now || !m.protected())
                            {
                                shed = Some(model[&id].orig);
                                break;
                            }
                        }
                    }
                    if let Some(victim) = shed {
                        prop_assert!(got.is_ok());
                        prop_assert_eq!(gone.last().map(|c| c.original()), Some(victim));
                    }
                    apply_reclaimed(&mut model, &gone, now, full_before)?;
                    match got {
                        Err(InsertError::SameKeys) => prop_assert_eq!(orig, reply),
                        Err(InsertError::Exists) => prop_assert!(exists),
                        Err(InsertError::Full) => {
                            prop_assert!(!exists);
                            prop_assert_eq!(model.len(), CAP);
                        }
                        Ok(id) => {
                            prop_assert!(!exists && orig != reply);
                            prop_assert!(!model.contains_key(&id));
                            let m = Model { orig, reply, expires: now + ttl, state };
                            model.insert(id, m);
                            if !m.protected() {
                                if ring.len() == CAP {
                                    ring.pop_front();
                                }
                                ring.push_back(id);
                            }
                        }
                    }
                }
                Op::Lookup(k) => {
                    let key = pool_key(k);
                    let got = t.lookup(&key, now, reclaimed(&mut gone));
                    let want = model.iter().find_map(|(id, m)| {
                        if m.orig == key { Some((*id, Direction::Original, m.expires)) }
                        else if m.reply == key { Some((*id, Direction::Reply, m.expires)) }
                        else { None }
                    });
                    match want {
                        Some((id, d, exp)) if exp > now => {
                            prop_assert_eq!(got, Some((id, d)));
                            prop_assert!(gone.is_empty());
                        }
                        Some((id, _, _)) => {
                            prop_assert_eq!(got, None);
                            prop_assert_eq!(gone.len(), 1);
                            prop_assert_eq!(gone[0].original(), model[&id].orig);
                        }
                        None => prop_assert_eq!(got, None),
                    }
                    apply_reclaimed(&mut model, &gone, now, false)?;
                }
                Op::Remove(n) => {
                    let mut ids: Vec<_> = model.keys().copied().collect();
                    ids.sort();
                    if let Some(&id) = ids.get(n % ids.len().max(1)) {
                        let c = t.remove(id);
                        let m = model.remove(&id).unwrap();
                        prop_assert_eq!(c.original(), m.orig);
                        prop_assert_eq!(c.reply(), m.reply);
                        prop_assert_eq!(c.state(), m.state);
                    }
                }
                Op::Expire(budget) => {
                    let n = t.expire(now, budget, reclaimed(&mut gone));
                    prop_assert_eq!(n, gone.len());
                    apply_reclaimed(&mut model, &gone, now, false)?;
                }
                Op::Advance(dt) => now += dt,
            }
            prop_assert_eq!(t.len(), model.len());
            for (id, m) in &model {
                let live = m.expires > now;
                prop_assert_eq!(t.peek(&m.orig, now), live.then_some((*id, Direction::Original)));
                prop_assert_eq!(t.peek(&m.reply, now), live.then_some((*id, Direction::Reply)));
            }
            let mut listed: Vec<_> = t.iter().map(|(id, _)| id).collect();
            let mut ids: Vec<_> = model.keys().copied().collect();
            listed.sort();
            ids.sort();
            prop_assert_eq!(listed, ids);
        }
        // A full sweep leaves exactly the live connections.
        t.expire(now, CAP, |_| {});
        prop_assert_eq!(t.len(), model.values().filter(|m| m.expires > now).count());
    }
}

#[test]
fn prefetch_targets_the_entry_the_lookup_finds() {
    // A table as full as the worker's (5 keys per 10-slot bucket, both
    // directions indexed): the prefetch must name the entry the lookup
    // then reads for nearly every key, and never an entry out of bounds.
    let n = 20_000u32;
    let mut t = ConnTable::new(n as usize);
    let mut keys = Vec::new();
    for i in 0..n {
        let (o, r) = nat_keys(i, 1024 + (i % 50_000) as u16);
        t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
        keys.push(o);
        keys.push(r);
    }
    let mut same = 0;
    for k in &keys {
        let h = t.hash(k);
        let target = t.prefetch_target(h);
        assert!(target < t.capacity());
        let (id, _) = t.peek(k, 1).unwrap();
        same += usize::from(target == id.index());
        t.prefetch_bucket(h);
        t.prefetch_entry(h);
    }
    assert!(
        same * 100 >= keys.len() * 95,
        "{same} of {} targets right",
        keys.len()
    );
    // A key not in the table targets entry 0, in bounds.
    let (unknown, _) = nat_keys(n + 1, 7);
    assert!(t.prefetch_target(t.hash(&unknown)) < t.capacity());
}

// --- the bucketed index -----------------------------------------------------

/// Recomputes the index from the stored connections and checks it: each
/// live connection's two keys in one slot each, with their hash's
/// signature, within reach of their home bucket, no other slot used, and
/// every bucket's displacement counts exact.
fn check_index(t: &ConnTable) {
    let n = t.buckets.len();
    let mut counts = vec![0u32; n];
    let mut seen = std::collections::HashSet::new();
    for (b, bucket) in t.buckets.iter().enumerate() {
        for s in 0..SLOTS {
            let r = bucket.refs[s];
            if r == NIL {
                continue;
            }
            assert!(seen.insert(r), "entry reference {r} in two slots");
            let c = &t.entries[(r >> 1) as usize];
            assert!(c.is_live(), "slot of a free entry");
            let h = t.hash(&c.key(direction(r)));
            assert_eq!(bucket.sigs[s], signature(h), "signature");
            let home = t.home(h);
            let d = (b + n - home) % n;
            assert!(d <= t.reach, "key {d} buckets from home");
            if d > 0 {
                counts[home] += 1 << (4 * (d - 1));
            }
        }
    }
    assert_eq!(seen.len(), 2 * t.len());
    for (b, bucket) in t.buckets.iter().enumerate() {
        assert_eq!(bucket.displaced, counts[b], "displaced counts of {b}");
    }
}

/// A NAT connection of client `n` whose original key's home is bucket
/// `home` of `t`, searched from client `*from` on.
fn conn_homed_at(t: &ConnTable, home: usize, from: &mut u32) -> (FlowKey, FlowKey) {
    loop {
        *from += 1;
        let (o, r) = nat_keys(*from, 40000);
        if t.home(t.hash(&o)) == home {
            return (o, r);
        }
    }
}

/// A 16-connection table (7 buckets) holding 16 NAT connections whose
/// original keys all have the last bucket as home, so they overflow (and
/// wrap to bucket 0); with that bucket's index and the connections.
fn sixteen_homed_at_the_last_bucket() -> (ConnTable, usize, Vec<(ConnId, FlowKey, FlowKey)>) {
    let mut t = ConnTable::new(16);
    let last = t.buckets.len() - 1;
    let mut from = 0;
    let mut conns = Vec::new();
    for _ in 0..16 {
        let (o, r) = conn_homed_at(&t, last, &mut from);
        let id = t.insert(o, r, ConnInit::new(0, 0), 0, none).unwrap();
        conns.push((id, o, r));
    }
    (t, last, conns)
}

#[test]
fn keys_overflowing_a_full_bucket_go_to_the_next_and_are_found() {
    // 16 connections, 7 buckets: 16 original keys with one home (the last
    // bucket, so the overflow wraps to bucket 0) cannot all fit there.
    let (mut t, last, conns) = sixteen_homed_at_the_last_bucket();
    check_index(&t);
    assert!(t.buckets[last].refs.iter().all(|&r| r != NIL));
    assert!(t.buckets[last].displaced != 0);
    let away = |t: &ConnTable, id: ConnId| {
        !t.buckets[last]
            .refs
            .contains(&tagged(id.0, Direction::Original))
    };
    let displaced: Vec<_> = conns.iter().filter(|c| away(&t, c.0)).collect();
    assert!(displaced.len() >= 6, "{} displaced", displaced.len());
    assert!(t.buckets[0]
        .refs
        .iter()
        .any(|&r| r != NIL && (r >> 1) == displaced[0].0 .0));
    for (id, o, r) in &conns {
        assert_eq!(t.lookup(o, 1, none), Some((*id, Direction::Original)));
        assert_eq!(t.lookup(r, 1, none), Some((*id, Direction::Reply)));
    }
}

#[test]
fn removing_displaced_and_home_keys_keeps_the_rest_found_and_counts_exact() {
    let (mut t, _, conns) = sixteen_homed_at_the_last_bucket();
    // Remove from the end (the displaced ones first), then the rest,
    // checking every remaining key and the counts each time.
    let mut order: Vec<_> = (0..16).rev().step_by(2).collect();
    order.extend((0..16).step_by(2));
    let mut gone = std::collections::HashSet::new();
    for i in order {
        let (id, o, _) = conns[i];
        assert_eq!(t.remove(id).original(), o);
        gone.insert(i);
        check_index(&t);
        for (j, (id, o, r)) in conns.iter().enumerate() {
            let want = |d| (!gone.contains(&j)).then_some((*id, d));
            assert_eq!(t.peek(o, 1), want(Direction::Original));
            assert_eq!(t.peek(r, 1), want(Direction::Reply));
        }
    }
    assert!(t.is_empty());
    assert!(t.buckets.iter().all(|b| b.displaced == 0));
    assert!(t.buckets.iter().all(|b| b.refs.iter().all(|&r| r == NIL)));
}

#[test]
fn displacement_counts_stay_exact_over_random_inserts_and_removals() {
    // A small table kept near full: buckets overflow and drain again.
    let cap = 300;
    let mut t = ConnTable::with_seed(cap, 0xD15C);
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut model: HashMap<FlowKey, (ConnId, Direction)> = HashMap::new();
    let mut live: Vec<(ConnId, FlowKey, FlowKey)> = Vec::new();
    let mut max_displaced = 0;
    for step in 0..20_000 {
        let x = next();
        if live.len() < cap && (live.len() < cap / 2 || x % 3 != 0) {
            let o = FlowKey::new(
                Ipv4Addr::from(x as u32),
                (x >> 32) as u16,
                VIP,
                80,
                PROTO_TCP,
            );
            let r = FlowKey::new(rip((x >> 48) as u8), 8080, o.src, o.src_port, PROTO_TCP);
            if model.contains_key(&o) || model.contains_key(&r) || o == r {
                continue;
            }
            let id = t
                .insert(o, r, init(State::Established, 900 * SEC), 0, none)
                .unwrap();
            model.insert(o, (id, Direction::Original));
            model.insert(r, (id, Direction::Reply));
            live.push((id, o, r));
        } else {
            let (id, o, r) = live.swap_remove((x >> 8) as usize % live.len());
            t.remove(id);
            model.remove(&o);
            model.remove(&r);
        }
        let displaced: u32 = t
            .buckets
            .iter()
            .map(|b| (0..8).map(|d| (b.displaced >> (4 * d)) & 0xF).sum::<u32>())
            .sum();
        max_displaced = max_displaced.max(displaced);
        if step % 97 == 0 {
            check_index(&t);
            for (k, want) in &model {
                assert_eq!(t.peek(k, 1), Some(*want));
            }
        }
    }
    check_index(&t);
    assert_eq!(t.len(), live.len());
    assert!(max_displaced > 0, "the test never overflowed a bucket");
    for (id, _, _) in live.drain(..) {
        t.remove(id);
    }
    check_index(&t);
    assert!(t.buckets.iter().all(|b| b.displaced == 0));
}

#[test]
fn lookup_hashed_agrees_with_lookup() {
    // Two tables built alike: one looked up by key, one by key and hash,
    // over hits of both directions, misses and expired connections.
    let build = || {
        let mut t = ConnTable::with_seed(512, 42);
        for n in 0..400 {
            let (o, r) = nat_keys(n, 1000 + (n % 7) as u16);
            let ttl = if n % 5 == 0 { SEC } else { 100 * SEC };
            t.insert(o, r, init(State::Established, ttl), 0, none)
                .unwrap();
        }
        t
    };
    let (mut a, mut b) = (build(), build());
    for n in 0..500 {
        for port in [1000 + (n % 7) as u16, 1] {
            let (o, r) = nat_keys(n, port);
            for k in [o, r] {
                let h = b.hash(&k);
                assert_eq!(h, a.hash(&k));
                assert_eq!(b.peek_hashed(&k, h, 2 * SEC), a.peek(&k, 2 * SEC));
                let (mut ga, mut gb) = (Vec::new(), Vec::new());
                let want = a.lookup(&k, 2 * SEC, reclaimed(&mut ga));
                let got = b.lookup_hashed(&k, h, 2 * SEC, reclaimed(&mut gb));
                assert_eq!(got, want);
                assert_eq!(gb.len(), ga.len());
            }
        }
    }
    assert_eq!(a.len(), b.len());
    assert_eq!(a.len(), 320, "the expired fifth reclaimed by both");
}

#[test]
fn hash_depends_on_the_seed() {
    let (a, b) = (ConnTable::with_seed(16, 1), ConnTable::with_seed(16, 2));
    let differ = (0..100)
        .filter(|&n| {
            let (o, _) = nat_keys(n, 1000);
            a.hash(&o) != b.hash(&o)
        })
        .count();
    assert!(differ >= 99);
}

#[test]
fn memory_for_tells_before_allocating_what_memory_bytes_says_after() {
    for capacity in [1, 7, 1000, 100_000] {
        let t = ConnTable::new(capacity);
        assert_eq!(
            ConnTable::memory_for(capacity),
            t.memory_bytes() as u64,
            "{capacity}"
        );
    }
}

#[test]
fn a_full_table_finds_an_expired_entry_beyond_the_new_keys_home_bucket() {
    // Sync-installed (proven, never queued) connections only: the
    // shedding ring stays empty, so making room falls back to the index.
    // Four expire at 1 s; whichever buckets hold them, each of four new
    // keys takes one, the twelve others stay, and a fifth key finds none.
    let mut t = ConnTable::new(16);
    for n in 0..16 {
        let ttl = if n < 4 { SEC } else { 1000 * SEC };
        let (o, r) = nat_keys(n, 1000);
        t.insert(o, r, init(State::Established, ttl), 0, none)
            .unwrap();
    }
    let mut gone = Vec::new();
    for n in 100..104 {
        let (o, r) = nat_keys(n, 2000);
        let got = t.insert(
            o,
            r,
            init(State::Established, SEC),
            2 * SEC,
            reclaimed(&mut gone),
        );
        assert!(got.is_ok(), "new key {n} found no expired entry");
    }
    assert_eq!(gone.len(), 4);
    assert!(gone.iter().all(|c| c.is_expired(2 * SEC)), "{gone:?}");
    let (o, r) = nat_keys(104, 2000);
    assert_eq!(
        t.insert(o, r, init(State::Established, SEC), 2 * SEC, none),
        Err(InsertError::Full)
    );
}
