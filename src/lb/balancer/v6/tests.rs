//! The balancer's IPv6 path, without a worker: IPv6 flows in, decisions
//! out (the IPv4 rules of `balancer/tests.rs`, for IPv6 clients and
//! services).

use super::super::tests::balancer;
use super::*;
use crate::lb::acl::Acl;
use crate::lb::limits::ClientLimit;
use crate::lb::service::{SchedulerKind, ServerState, ServiceKey, VirtualService};
use crate::lb::tcp_state::State;
use crate::lb::xmit::Endpoint;
use crate::wire::Ipv4Cidr;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);
const SYN_ACK: TcpFlags = TcpFlags(0x12);
const SEC: u64 = 1_000_000_000;

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn client() -> Ipv6Addr {
    ip("2001:db8:1::7")
}

fn vip() -> Ipv6Addr {
    ip("2001:db8::10")
}

fn rs() -> [Ipv6Addr; 2] {
    [ip("2001:db8:2::11"), ip("2001:db8:2::12")]
}

fn service6(forward: ForwardMethod, protocol: Protocol, sched: SchedulerKind) -> VirtualService {
    VirtualService::new6(
        "web6",
        Endpoint6::new(vip(), 80),
        protocol,
        forward,
        sched,
        rs().iter().map(|&a| (Endpoint6::new(a, 8080), 1)),
    )
}

fn nat6() -> VirtualService {
    service6(ForwardMethod::Nat, Protocol::Tcp, SchedulerKind::Rr)
}

fn flow6(b: &Balancer, key: FlowKey6, flags: TcpFlags) -> Flow6 {
    Flow6 {
        key,
        hash: b.flow_hash6(&key),
        protocol: Protocol::from_number(key.proto).expect("tcp or udp"),
        flags,
        bytes: 60,
    }
}

fn from(c: Ipv6Addr, sport: u16, proto: u8) -> FlowKey6 {
    FlowKey6::new(c, sport, vip(), 80, proto)
}

fn real_of(d: Decision6) -> Endpoint6 {
    match d {
        Decision6::ToRealServer { real, .. } => real,
        other => panic!("not to a real server: {other:?}"),
    }
}

#[test]
fn a_syn_to_an_ipv6_vip_creates_a_connection_to_an_ipv6_real_server() {
    let mut b = balancer(vec![nat6()]);
    let d = b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1);
    let Decision6::ToRealServer {
        method,
        real,
        created,
    } = d
    else {
        panic!("{d:?}")
    };
    assert_eq!(method, ForwardMethod::Nat);
    assert!(rs().contains(&real.ip));
    assert_eq!(real.port, 8080);
    assert!(created);
    assert_eq!(b.conn_count6(), 1);
    assert_eq!(b.conn_count(), 0);
    let total: u64 = b.counters().iter().map(|c| c.conns).sum();
    assert_eq!(total, 1);
}

#[test]
fn the_real_servers_reply_goes_back_to_the_client_from_the_vip() {
    let mut b = balancer(vec![nat6()]);
    let real = real_of(b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1));
    let reply = FlowKey6::new(real.ip, real.port, client(), 1000, 6);
    assert_eq!(
        b.decide6(&flow6(&b, reply, SYN_ACK), 2),
        Decision6::ToClient {
            vip: Endpoint6::new(vip(), 80)
        }
    );
}

#[test]
fn later_packets_find_the_connection_and_establish_it() {
    let mut b = balancer(vec![nat6()]);
    let key = from(client(), 1000, 6);
    let real = real_of(b.decide6(&flow6(&b, key, SYN), 1));
    let reply = FlowKey6::new(real.ip, real.port, client(), 1000, 6);
    b.decide6(&flow6(&b, reply, SYN_ACK), 2);
    let d = b.decide6(&flow6(&b, key, ACK), 3);
    assert_eq!(
        d,
        Decision6::ToRealServer {
            method: ForwardMethod::Nat,
            real,
            created: false
        }
    );
    let (id, _) = b.conns6().peek(&key, 3).unwrap();
    assert_eq!(b.conns6().get(id).state(), State::Established);
    let active: u32 = b.counters().iter().map(|c| c.active).sum();
    assert_eq!(active, 1);
    let c = b.counters().iter().find(|c| c.conns == 1).unwrap();
    assert_eq!((c.packets_in, c.packets_out), (2, 1));
    assert_eq!(c.handshake_ok, 1);
}

#[test]
fn tcp_without_a_connection_and_strangers_are_refused() {
    let mut b = balancer(vec![nat6()]);
    assert_eq!(
        b.decide6(&flow6(&b, from(client(), 1000, 6), ACK), 1),
        Decision6::Drop(Refusal::NoConnection)
    );
    let reply = FlowKey6::new(rs()[0], 8080, client(), 1000, 6);
    assert_eq!(
        b.decide6(&flow6(&b, reply, ACK), 1),
        Decision6::Drop(Refusal::NoConnection)
    );
    let other = FlowKey6::new(client(), 1000, vip(), 81, 6);
    assert_eq!(
        b.decide6(&flow6(&b, other, SYN), 1),
        Decision6::Drop(Refusal::NoService)
    );
}

#[test]
fn an_ipv4_service_on_the_same_port_does_not_answer_ipv6_nor_the_reverse() {
    let v4 = VirtualService::new(
        "web4",
        ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        [(Endpoint::new(Ipv4Addr::new(10, 1, 0, 11), 8080), 1)],
    );
    let mut b = balancer(vec![v4, nat6()]);
    // IPv6 to the IPv6 VIP: the IPv6 service (index 1).
    let real = real_of(b.decide6(&flow6(&b, from(client(), 1, 6), SYN), 1));
    assert!(rs().contains(&real.ip));
    assert_eq!(b.counters()[0].conns, 0);
    // The unspecified IPv4 address the IPv6 service carries is no VIP.
    assert_eq!(
        b.services()
            .lookup(Endpoint::new(Ipv4Addr::UNSPECIFIED, 80), Protocol::Tcp),
        None
    );
    assert!(!b.services().is_vip(Ipv4Addr::UNSPECIFIED));
    assert!(b.services().is_vip6(vip()));
}

#[test]
fn udp_flows_create_connections_and_dr_keeps_the_reversed_key() {
    let mut b = balancer(vec![service6(
        ForwardMethod::Dr,
        Protocol::Udp,
        SchedulerKind::Rr,
    )]);
    let key = from(client(), 5353, 17);
    let d = b.decide6(&flow6(&b, key, TcpFlags::NONE), 1);
    assert!(matches!(
        d,
        Decision6::ToRealServer {
            method: ForwardMethod::Dr,
            created: true,
            ..
        }
    ));
    let (id, _) = b.conns6().peek(&key, 1).unwrap();
    assert_eq!(b.conns6().get(id).reply(), key.reversed());
    assert!(b.conns6().get(id).is_input_only());
}

#[test]
fn source_hashing_sends_an_ipv6_client_to_one_server_whatever_its_ports() {
    for sched in [SchedulerKind::Sh, SchedulerKind::Mh] {
        let mut b = balancer(vec![service6(ForwardMethod::Nat, Protocol::Tcp, sched)]);
        let first = real_of(b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1));
        for port in 1001..1020 {
            let d = b.decide6(&flow6(&b, from(client(), port, 6), SYN), 1);
            assert_eq!(real_of(d), first, "{sched:?}");
        }
        // Many clients use both servers.
        let mut seen = std::collections::HashSet::new();
        for n in 0..64u128 {
            let c = Ipv6Addr::from(u128::from(client()) + (n << 64));
            seen.insert(real_of(b.decide6(&flow6(&b, from(c, 1000, 6), SYN), 1)).ip);
        }
        assert_eq!(seen.len(), 2, "{sched:?}");
    }
}

#[test]
fn every_scheduler_spreads_ipv6_clients_over_both_servers() {
    for sched in SchedulerKind::ALL {
        let mut b = balancer(vec![service6(ForwardMethod::Nat, Protocol::Tcp, sched)]);
        let mut per_server = std::collections::HashMap::new();
        for n in 0..64u128 {
            let c = Ipv6Addr::from(u128::from(client()) + (n << 64) + n);
            let key = from(c, 1000 + n as u16, 6);
            let real = real_of(b.decide6(&flow6(&b, key, SYN), 1));
            assert!(rs().contains(&real.ip), "{sched:?}: {real:?}");
            // Established, so the least-connection kinds count it active.
            let reply = FlowKey6::new(real.ip, real.port, c, key.src_port, 6);
            b.decide6(&flow6(&b, reply, SYN_ACK), 2);
            b.decide6(&flow6(&b, key, ACK), 3);
            *per_server.entry(real.ip).or_insert(0u32) += 1;
        }
        assert_eq!(per_server.len(), 2, "{sched:?}: {per_server:?}");
        assert!(
            per_server.values().all(|&n| n >= 16),
            "{sched:?} leaves a server nearly idle: {per_server:?}"
        );
    }
}

#[test]
fn persistence_keeps_an_ipv6_client_on_its_server_under_round_robin() {
    let mut s = nat6();
    s.persistence = Some(Duration::from_secs(300));
    let mut b = balancer(vec![s]);
    let first = real_of(b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1));
    for port in 1001..1010 {
        let d = b.decide6(&flow6(&b, from(client(), port, 6), SYN), 1);
        assert_eq!(real_of(d), first);
    }
    // Another address of the same /64 is another client (/128).
    let neighbour = ip("2001:db8:1::8");
    let d = b.decide6(&flow6(&b, from(neighbour, 1000, 6), SYN), 1);
    assert_ne!(real_of(d), first);
}

#[test]
fn the_per_client_limit_counts_an_ipv6_client_by_its_64() {
    let mut s = nat6();
    s.limits.per_client = Some(ClientLimit {
        max_conns: 2,
        prefix_len: 32,
    });
    let mut b = balancer(vec![s]);
    let same_64 = [
        ip("2001:db8:1::7"),
        ip("2001:db8:1::8"),
        ip("2001:db8:1:0:ffff::1"),
    ];
    let ds: Vec<_> = same_64
        .iter()
        .map(|&c| b.decide6(&flow6(&b, from(c, 1000, 6), SYN), 1))
        .collect();
    assert!(matches!(ds[0], Decision6::ToRealServer { .. }));
    assert!(matches!(ds[1], Decision6::ToRealServer { .. }));
    assert_eq!(ds[2], Decision6::Drop(Refusal::ClientLimit));
    let other_64 = ip("2001:db8:1:1::7");
    assert!(matches!(
        b.decide6(&flow6(&b, from(other_64, 1000, 6), SYN), 1),
        Decision6::ToRealServer { .. }
    ));
}

#[test]
fn an_ipv4_allow_list_refuses_ipv6_clients_and_a_deny_list_does_not() {
    let v4: Vec<Ipv4Cidr> = vec!["198.51.100.0/24".parse().unwrap()];
    let mut allow = nat6();
    allow.limits.acl = Acl::new(v4.clone(), Vec::new());
    let mut b = balancer(vec![allow]);
    assert_eq!(
        b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1),
        Decision6::Drop(Refusal::AclDenied)
    );
    let mut deny = nat6();
    deny.limits.acl = Acl::new(Vec::new(), v4);
    let mut b = balancer(vec![deny]);
    assert!(matches!(
        b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1),
        Decision6::ToRealServer { .. }
    ));
}

#[test]
fn ipv6_allow_and_deny_prefixes_admit_by_the_longest_match() {
    let mut s = nat6();
    let p = |t: &str| -> crate::wire::Ipv6Cidr { t.parse().unwrap() };
    s.limits.acl = Acl::default().with_ipv6(vec![p("2001:db8::/32")], vec![p("2001:db8:1::/64")]);
    let mut b = balancer(vec![s]);
    // client() is in the denied /64; its neighbour /64 is allowed.
    assert_eq!(
        b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1),
        Decision6::Drop(Refusal::AclDenied)
    );
    let other = ip("2001:db8:1:1::10");
    assert!(matches!(
        b.decide6(&flow6(&b, from(other, 1000, 6), SYN), 1),
        Decision6::ToRealServer { .. }
    ));
    let stranger = ip("2001:db9::10");
    assert_eq!(
        b.decide6(&flow6(&b, from(stranger, 1000, 6), SYN), 1),
        Decision6::Drop(Refusal::AclDenied)
    );
}

#[test]
fn with_every_server_down_tcp_is_reset_or_goes_to_the_sorry_server() {
    let all_down = |b: &Balancer| {
        b.services().clone().with_server_state(|_, _| ServerState {
            down: true,
            weight: None,
            ramp: None,
        })
    };
    let mut b = balancer(vec![nat6()]);
    b.set_services(Arc::new(all_down(&b)));
    assert_eq!(
        b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1),
        Decision6::Reset
    );
    let sorry = Endpoint6::new(ip("2001:db8:3::99"), 8081);
    let mut b = balancer(vec![nat6().with_sorry_server6(sorry)]);
    b.set_services(Arc::new(all_down(&b)));
    assert_eq!(
        real_of(b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1)),
        sorry
    );
    // Its replies are known as a NAT real server's.
    assert!(b.services().is_nat_real_server6(sorry, Protocol::Tcp));
}

#[test]
fn a_connection_whose_server_goes_down_is_reset() {
    let mut b = balancer(vec![nat6()]);
    let key = from(client(), 1000, 6);
    b.decide6(&flow6(&b, key, SYN), 1);
    let down = b.services().clone().with_server_state(|_, _| ServerState {
        down: true,
        weight: None,
        ramp: None,
    });
    b.set_services(Arc::new(down));
    assert_eq!(b.decide6(&flow6(&b, key, ACK), 2), Decision6::Reset);
    assert_eq!(b.conn_count6(), 0);
    let inactive: u32 = b.counters().iter().map(|c| c.inactive + c.active).sum();
    assert_eq!(inactive, 0);
}

#[test]
fn the_sweep_expires_ipv6_connections_and_uncounts_them() {
    let mut b = balancer(vec![nat6()]);
    b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1);
    let held: u32 = b.counters().iter().map(|c| c.inactive).sum();
    assert_eq!(held, 1);
    for t in 1..=200 {
        b.tick(t * SEC);
    }
    assert_eq!(b.conn_count6(), 0);
    let held: u32 = b.counters().iter().map(|c| c.inactive).sum();
    assert_eq!(held, 0);
}

#[test]
fn icmpv6_errors_follow_the_quoted_connection() {
    let mut b = balancer(vec![nat6()]);
    let key = from(client(), 1000, 6);
    let real = real_of(b.decide6(&flow6(&b, key, SYN), 1));
    // An error about the client's packet, travelling back to it.
    let reply = FlowKey6::new(real.ip, real.port, client(), 1000, 6);
    assert_eq!(
        b.icmp_error6(&reply, 2),
        Ok(IcmpRoute6::ToClient {
            vip: Endpoint6::new(vip(), 80),
            client: client()
        })
    );
    assert_eq!(
        b.icmp_error6(&key, 2),
        Ok(IcmpRoute6::ToRealServer {
            method: ForwardMethod::Nat,
            real
        })
    );
    let stranger = from(ip("2001:db8:5::1"), 1, 6);
    assert_eq!(b.icmp_error6(&stranger, 2), Err(Refusal::NoConnection));
}

#[test]
fn a_reload_that_brings_the_first_ipv6_service_sizes_the_ipv6_table() {
    let v4 = VirtualService::new(
        "web4",
        ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        [(Endpoint::new(Ipv4Addr::new(10, 1, 0, 11), 8080), 1)],
    );
    let mut b = balancer(vec![v4.clone()]);
    assert_eq!(b.conns6().capacity(), 1);
    b.set_services(Arc::new(ServiceTable::new(vec![v4, nat6()])));
    assert_eq!(b.conns6().capacity(), b.conns().capacity());
    assert!(matches!(
        b.decide6(&flow6(&b, from(client(), 1000, 6), SYN), 1),
        Decision6::ToRealServer { .. }
    ));
}
