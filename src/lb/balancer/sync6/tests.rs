//! HA sync of IPv6 connections through the balancer: what an active one
//! reports, what a standby installs in its IPv6 table, and what `rvsadm
//! conns` lists.

use super::super::tests::balancer;
use super::*;
use crate::lb::balancer::{Decision6, Flow6};
use crate::lb::service::{Protocol, SchedulerKind, ServiceKey, VirtualService};
use crate::lb::sync::{sync_channel, SyncReport};
use crate::lb::tcp_state::{State, TcpFlags};
use crate::lb::xmit::{Endpoint, Endpoint6};
use std::net::Ipv6Addr;

const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);
const SYN_ACK: TcpFlags = TcpFlags(0x12);
const SEC: u64 = 1_000_000_000;

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn client() -> Endpoint6 {
    Endpoint6::new(ip("2001:db8:1::7"), 40000)
}

fn vip() -> Endpoint6 {
    Endpoint6::new(ip("2001:db8::10"), 80)
}

fn rs(i: usize) -> Endpoint6 {
    Endpoint6::new([ip("2001:db8:2::11"), ip("2001:db8:2::12")][i], 8080)
}

fn service6(forward: ForwardMethod) -> VirtualService {
    VirtualService::new6(
        "web6",
        vip(),
        Protocol::Tcp,
        forward,
        SchedulerKind::Rr,
        [(rs(0), 1), (rs(1), 1)],
    )
}

fn web4() -> VirtualService {
    let ep = |a: [u8; 4], p| Endpoint::new(a.into(), p);
    VirtualService::new(
        "web",
        ServiceKey {
            vip: ep([203, 0, 113, 100], 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        [(ep([10, 1, 0, 11], 8080), 1)],
    )
}

fn key(c: Endpoint6) -> FlowKey6 {
    FlowKey6::new(c.ip, c.port, vip().ip, vip().port, 6)
}

fn decide(b: &mut Balancer, key: FlowKey6, flags: TcpFlags, now: u64) -> Decision6 {
    let flow = Flow6 {
        key,
        hash: b.flow_hash6(&key),
        protocol: Protocol::Tcp,
        flags,
        bytes: 60,
    };
    b.decide6(&flow, now)
}

fn real_of(d: Decision6) -> Endpoint6 {
    match d {
        Decision6::ToRealServer { real, .. } => real,
        other => panic!("not to a real server: {other:?}"),
    }
}

fn event(state: State, real: Endpoint6, timeout_s: u32) -> SyncEvent6 {
    SyncEvent6 {
        protocol: Protocol::Tcp,
        state,
        input_only: false,
        client: client(),
        vip: vip(),
        real,
        timeout_s,
        local: None,
    }
}

/// The events an active balancer handed over.
fn reported(b: &mut Balancer, c: &crate::lb::sync::SyncCollector) -> Vec<SyncReport> {
    b.tick(10 * SEC);
    let mut got = Vec::new();
    c.drain(|r| got.push(*r));
    got
}

#[test]
fn an_active_balancer_reports_a_new_ipv6_connection_and_each_change_of_state() {
    let mut b = balancer(vec![service6(ForwardMethod::Nat)]);
    let (q, c) = sync_channel();
    b.set_sync(q, true);
    let k = key(client());
    let real = real_of(decide(&mut b, k, SYN, SEC));
    let reply = FlowKey6::new(real.ip, real.port, client().ip, client().port, 6);
    decide(&mut b, reply, SYN_ACK, 2 * SEC);
    decide(&mut b, k, ACK, 3 * SEC);
    decide(&mut b, k, ACK, 4 * SEC); // no change: no report
    let got = reported(&mut b, &c);
    let states: Vec<State> = got
        .iter()
        .map(|r| match r {
            SyncReport::V6(e) => e.state,
            SyncReport::V4(e) => panic!("an IPv4 report: {e:?}"),
        })
        .collect();
    assert_eq!(states, [State::SynRecv, State::Established]);
    let SyncReport::V6(last) = got[1] else {
        unreachable!()
    };
    assert_eq!((last.client, last.vip, last.real), (client(), vip(), real));
    assert_eq!(last.local, None);
    assert!(!last.input_only);
    assert_eq!(u64::from(last.timeout_s), 900, "ESTABLISHED's default");
}

#[test]
fn a_backup_reports_nothing() {
    let mut b = balancer(vec![service6(ForwardMethod::Nat)]);
    let (q, c) = sync_channel();
    b.set_sync(q, false);
    decide(&mut b, key(client()), SYN, SEC);
    assert_eq!(reported(&mut b, &c), []);
}

#[test]
fn a_dumped_ipv6_table_installs_on_the_standby_with_the_same_real_servers() {
    let mut active = balancer(vec![web4(), service6(ForwardMethod::Nat)]);
    let clients: Vec<Endpoint6> = (0..4)
        .map(|i| Endpoint6::new(client().ip, 40000 + i))
        .collect();
    let reals: Vec<Endpoint6> = clients
        .iter()
        .map(|&c| real_of(decide(&mut active, key(c), SYN, SEC)))
        .collect();
    let events = active.sync_dump6(2 * SEC);
    assert_eq!(events.len(), 4);
    assert_eq!(active.sync_dump(2 * SEC), [], "nothing in the IPv4 table");
    // The standby's own rr would start elsewhere: start it off by one.
    let mut standby = balancer(vec![web4(), service6(ForwardMethod::Nat)]);
    decide(
        &mut standby,
        key(Endpoint6::new(ip("2001:db8:9::1"), 1)),
        SYN,
        SEC,
    );
    assert_eq!(standby.install6(&events, 2 * SEC), 4);
    assert_eq!(standby.conn_count6(), 5);
    assert_eq!(standby.conn_count(), 0);
    // After a takeover a client's next segment (no SYN) goes where the
    // active balancer sent it.
    for (c, real) in clients.iter().zip(&reals) {
        let d = decide(&mut standby, key(*c), ACK, 3 * SEC);
        assert_eq!(real_of(d), *real, "client {c}");
    }
}

#[test]
fn an_installed_nat_connection_knows_its_real_servers_replies() {
    let mut standby = balancer(vec![service6(ForwardMethod::Nat)]);
    assert_eq!(
        standby.install6(&[event(State::Established, rs(1), 600)], SEC),
        1
    );
    let reply = FlowKey6::new(rs(1).ip, rs(1).port, client().ip, client().port, 6);
    assert_eq!(
        decide(&mut standby, reply, ACK, 2 * SEC),
        Decision6::ToClient { vip: vip() }
    );
    let (id, _) = standby.conns6().peek(&key(client()), 2 * SEC).unwrap();
    assert_eq!(standby.conns6().get(id).state(), State::Established);
    let active: u32 = standby.counters().iter().map(|c| c.active).sum();
    assert_eq!(active, 1, "an ESTABLISHED install counts as active");
}

#[test]
fn a_dr_install_keeps_input_only_and_names_the_reply_by_the_reversed_tuple() {
    let mut standby = balancer(vec![service6(ForwardMethod::Dr)]);
    let ev = SyncEvent6 {
        input_only: true,
        ..event(State::SynRecv, rs(0), 30)
    };
    assert_eq!(standby.install6(&[ev], SEC), 1);
    let (id, _) = standby.conns6().peek(&key(client()), SEC).unwrap();
    let c = standby.conns6().get(id);
    assert!(c.is_input_only());
    assert_eq!(c.reply(), key(client()).reversed());
    assert_eq!(standby.sync_dump6(SEC), [ev]);
}

#[test]
fn an_event_for_an_unknown_ipv6_service_or_server_is_skipped() {
    let mut standby = balancer(vec![web4(), service6(ForwardMethod::Nat)]);
    let elsewhere = SyncEvent6 {
        vip: Endpoint6::new(vip().ip, 443),
        ..event(State::Established, rs(0), 60)
    };
    let stranger = event(
        State::Established,
        Endpoint6::new(ip("2001:db8:2::99"), 8080),
        60,
    );
    let mapped = SyncEvent6 {
        vip: Endpoint6::new(ip("::ffff:203.0.113.100"), 80),
        ..event(State::Established, rs(0), 60)
    };
    assert_eq!(standby.install6(&[elsewhere, stranger, mapped], SEC), 0);
    assert_eq!(standby.conn_count6(), 0);
}

#[test]
fn an_install_never_outlives_the_local_timeout() {
    let mut standby = balancer(vec![service6(ForwardMethod::Nat)]);
    standby.install6(&[event(State::Established, rs(0), u32::MAX)], SEC);
    let (id, _) = standby.conns6().peek(&key(client()), SEC).unwrap();
    assert_eq!(standby.conns6().get(id).expires_ns, SEC + 900 * SEC);
}

#[test]
fn a_known_connection_takes_the_reported_state_or_is_replaced_for_another_server() {
    let mut standby = balancer(vec![service6(ForwardMethod::Nat)]);
    assert_eq!(
        standby.install6(&[event(State::SynRecv, rs(0), 30)], SEC),
        1
    );
    assert_eq!(
        standby.install6(&[event(State::Established, rs(0), 600)], 2 * SEC),
        0,
        "known: updated, not new"
    );
    let (id, _) = standby.conns6().peek(&key(client()), 2 * SEC).unwrap();
    let c = standby.conns6().get(id);
    assert_eq!(c.state(), State::Established);
    assert_eq!(c.expires_ns, 2 * SEC + 600 * SEC);
    assert_eq!(
        standby.install6(&[event(State::SynRecv, rs(1), 30)], 3 * SEC),
        1,
        "another server: replaced"
    );
    assert_eq!(standby.conn_count6(), 1);
    let (id, _) = standby.conns6().peek(&key(client()), 3 * SEC).unwrap();
    assert_eq!(standby.conns6().get(id).rs, 1);
    let active: u32 = standby.counters().iter().map(|c| c.active).sum();
    assert_eq!(active, 0, "the replaced one left its server's count");
}

#[test]
fn an_ipv6_fullnat_event_installs_with_its_local_end_and_takes_the_port() {
    let lip = ip("2001:db8:3::1");
    let mut s = service6(ForwardMethod::FullNat);
    s.local.addresses6 = vec![lip];
    let mut standby = balancer(vec![s]);
    let local = Endpoint6::new(lip, 1024);
    // Without a local end, or with one the service does not have: skipped.
    for local in [None, Some(Endpoint6::new(ip("2001:db8:3::2"), 1024))] {
        let ev = SyncEvent6 {
            local,
            ..event(State::Established, rs(0), 60)
        };
        assert_eq!(standby.install6(&[ev], SEC), 0);
    }
    let ev = SyncEvent6 {
        local: Some(local),
        ..event(State::Established, rs(0), 60)
    };
    assert_eq!(standby.install6(&[ev], SEC), 1);
    // The real server's reply to the local end finds it.
    let reply = FlowKey6::new(rs(0).ip, rs(0).port, lip, 1024, 6);
    assert!(standby.conns6().peek(&reply, 2 * SEC).is_some());
    let used: Vec<_> = standby
        .local_usage()
        .filter(|u| u.addr == std::net::IpAddr::V6(lip))
        .map(|u| u.in_use)
        .collect();
    assert_eq!(used, [1], "the port is taken out of the standby's pool");
    // The standby's dump reports the same local end back.
    let dumped = standby.sync_dump6(2 * SEC);
    assert_eq!(dumped.len(), 1);
    assert_eq!(dumped[0].local, Some(local));
}

#[test]
fn conns_lists_both_tables_within_the_limit() {
    let mut b = balancer(vec![web4(), service6(ForwardMethod::Nat)]);
    let k4 = crate::lb::conn::FlowKey::new(
        [198, 51, 100, 7].into(),
        1000,
        [203, 0, 113, 100].into(),
        80,
        6,
    );
    let flow = crate::lb::balancer::Flow {
        key: k4,
        hash: b.flow_hash(&k4),
        protocol: Protocol::Tcp,
        flags: SYN,
        bytes: 60,
    };
    b.decide(&flow, SEC);
    let real = real_of(decide(&mut b, key(client()), SYN, SEC));
    let all = b.dump(SEC, 10);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].client.to_string(), "198.51.100.7:1000");
    let v6 = &all[1];
    assert_eq!(v6.client.to_string(), "[2001:db8:1::7]:40000");
    assert_eq!(v6.virtual_server.to_string(), "[2001:db8::10]:80");
    assert_eq!(
        v6.real_server,
        std::net::SocketAddr::from((real.ip, real.port))
    );
    assert_eq!((v6.protocol, v6.state), ("tcp", "SYN_RECV"));
    assert_eq!(b.dump(SEC, 1).len(), 1, "the limit holds across tables");
    assert_eq!(b.conn_totals(), (2, 128), "both tables of 64");
}

#[test]
fn the_placeholder_ipv6_table_is_not_counted_as_capacity() {
    let b = balancer(vec![web4()]);
    assert_eq!(b.conn_totals(), (0, 64));
}
