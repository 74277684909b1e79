//! FullNAT over IPv6 in the balancer: an IPv6 local address and port per
//! connection, both directions decided from its two keys in the IPv6
//! table, the port back in the IPv6 pool whatever ends the connection,
//! exhaustion refused, ownership by local address.

use super::tests::balancer;
use super::*;
use crate::lb::conn::FlowKey6;
use crate::lb::service::{LocalAddresses, SchedulerKind, VirtualService};
use crate::lb::xmit::Endpoint6;
use std::net::{IpAddr, Ipv6Addr};

const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);
const SYN_ACK: TcpFlags = TcpFlags(0x12);
const RST: TcpFlags = TcpFlags(0x04);

const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const RIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x11);
const LIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const LIP2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x101);

fn service(protocol: Protocol, locals: &[Ipv6Addr], ports: (u16, u16)) -> VirtualService {
    let mut s = VirtualService::new6(
        "fnat6",
        Endpoint6::new(VIP, 80),
        protocol,
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(Endpoint6::new(RIP, 8080), 1)],
    );
    s.local = LocalAddresses {
        addresses6: locals.to_vec(),
        ports,
        ..LocalAddresses::default()
    };
    s
}

fn to_vip(sport: u16, proto: u8) -> FlowKey6 {
    FlowKey6::new(CLIENT, sport, VIP, 80, proto)
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

fn local_of(d: Decision6) -> Endpoint6 {
    match d {
        Decision6::FullNatToRealServer { local, real, .. } => {
            assert_eq!(real, Endpoint6::new(RIP, 8080));
            local
        }
        other => panic!("not FullNAT to a real server: {other:?}"),
    }
}

#[test]
fn a_new_connection_leaves_from_an_ipv6_local_address_and_port() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let d = b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 1);
    assert_eq!(
        d,
        Decision6::FullNatToRealServer {
            local: Endpoint6::new(LIP, 5000),
            real: Endpoint6::new(RIP, 8080),
            created: true,
        }
    );
    assert_eq!(b.conn_count6(), 1);
    assert_eq!(b.conn_count(), 0, "nothing in the IPv4 table");
}

#[test]
fn the_reply_to_the_local_port_goes_back_to_the_client_from_the_vip() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let local = local_of(b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 1));
    let reply = FlowKey6::new(RIP, 8080, local.ip, local.port, 6);
    assert_eq!(
        b.decide6(&flow6(&b, reply, SYN_ACK), 2),
        Decision6::FullNatToClient {
            vip: Endpoint6::new(VIP, 80),
            client: Endpoint6::new(CLIENT, 1000),
        }
    );
    assert_eq!(
        local_of(b.decide6(&flow6(&b, to_vip(1000, 6), ACK), 3)),
        local,
        "later packets keep their local port"
    );
}

#[test]
fn a_reply_to_an_unknown_local_port_is_no_connection() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let stray = FlowKey6::new(RIP, 8080, LIP, 5005, 6);
    assert_eq!(
        b.decide6(&flow6(&b, stray, SYN_ACK), 1),
        Decision6::Drop(Refusal::NoConnection)
    );
}

#[test]
fn a_client_claiming_a_local_address_opens_nothing() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let spoofed = FlowKey6::new(LIP, 5000, VIP, 80, 6);
    assert_eq!(
        b.decide6(&flow6(&b, spoofed, SYN), 1),
        Decision6::Drop(Refusal::Malformed)
    );
}

#[test]
fn connections_take_distinct_ports_and_rotate_over_local_addresses() {
    let mut b = balancer(vec![service(Protocol::Udp, &[LIP, LIP2], (6000, 6001))]);
    let got: Vec<Endpoint6> = (0..4)
        .map(|i| local_of(b.decide6(&flow6(&b, to_vip(1000 + i, 17), TcpFlags::NONE), 1)))
        .collect();
    assert_eq!(
        got,
        [
            Endpoint6::new(LIP, 6000),
            Endpoint6::new(LIP2, 6000),
            Endpoint6::new(LIP, 6001),
            Endpoint6::new(LIP2, 6001),
        ]
    );
}

#[test]
fn exhausted_ports_refuse_new_connections_as_no_local_port() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5000))]);
    local_of(b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 1));
    // The worker counts it and answers the SYN with a reset.
    assert_eq!(
        b.decide6(&flow6(&b, to_vip(1001, 6), SYN), 1),
        Decision6::Drop(Refusal::NoLocalPort)
    );
    let u: Vec<_> = b.local_usage().collect();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].addr, IpAddr::V6(LIP));
    assert_eq!((u[0].in_use, u[0].capacity, u[0].exhausted), (1, 1, 1));
    assert_eq!(b.conn_count6(), 1, "nothing made for the refused");
}

#[test]
fn a_reset_connection_gives_its_port_back() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5000))]);
    local_of(b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 1));
    b.decide6(&flow6(&b, to_vip(1000, 6), RST), 2);
    // A new SYN from the same client port retires the closing one.
    assert_eq!(
        local_of(b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 3)),
        Endpoint6::new(LIP, 5000)
    );
}

#[test]
fn an_expired_connection_gives_its_port_back_through_the_sweep() {
    let mut b = balancer(vec![service(Protocol::Udp, &[LIP], (5000, 5000))]);
    local_of(b.decide6(&flow6(&b, to_vip(1000, 17), TcpFlags::NONE), 1));
    let later = 1 + b.timeouts.udp() + 1;
    b.tick(later);
    b.tick(later + 1_000_000_000);
    assert_eq!(b.conn_count6(), 0);
    let in_use: u64 = b.local_usage().map(|u| u.in_use).sum();
    assert_eq!(in_use, 0, "released by Counters::forget");
    assert_eq!(
        local_of(b.decide6(
            &flow6(&b, to_vip(2000, 17), TcpFlags::NONE),
            later + 2_000_000_000
        )),
        Endpoint6::new(LIP, 5000)
    );
}

#[test]
fn a_worker_takes_only_the_ipv6_local_addresses_it_owns() {
    let b = balancer(vec![service(Protocol::Tcp, &[LIP, LIP2], (5000, 5009))])
        .with_local_owner6(Arc::new(|a| a == LIP2));
    let owned: Vec<IpAddr> = b.local_usage().map(|u| u.addr).collect();
    assert_eq!(owned, [IpAddr::V6(LIP2)]);
    let mut none = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))])
        .with_local_owner6(Arc::new(|_| false));
    assert_eq!(
        none.decide6(&flow6(&none, to_vip(1000, 6), SYN), 1),
        Decision6::Drop(Refusal::NoLocalPort),
        "a worker without a local address refuses at once"
    );
}

#[test]
fn the_ipv4_owner_does_not_decide_ipv6_local_addresses() {
    let b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))])
        .with_local_owner(Arc::new(|_| false));
    assert_eq!(b.local_usage().count(), 1);
}

#[test]
fn icmp_errors_are_routed_with_both_ends() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let local = local_of(b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 1));
    // From the inside, about LIP → RIP: travels as the reply key.
    let reply = FlowKey6::new(RIP, 8080, local.ip, local.port, 6);
    assert_eq!(
        b.icmp_error6(&reply, 2),
        Ok(IcmpRoute6::FullNatToClient {
            vip: Endpoint6::new(VIP, 80),
            client: Endpoint6::new(CLIENT, 1000),
        })
    );
    assert_eq!(
        b.icmp_error6(&to_vip(1000, 6), 2),
        Ok(IcmpRoute6::FullNatToRealServer {
            local,
            real: Endpoint6::new(RIP, 8080),
        })
    );
}

#[test]
fn a_reload_keeps_live_connections_ports_taken() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5001))]);
    let first = local_of(b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 1));
    b.set_services(Arc::new(ServiceTable::new(vec![service(
        Protocol::Tcp,
        &[LIP],
        (5000, 5002),
    )])));
    for sport in 1001..1003 {
        let l = local_of(b.decide6(&flow6(&b, to_vip(sport, 6), SYN), 2));
        assert_ne!(l, first, "a live connection's port is not given again");
    }
    assert_eq!(
        b.decide6(&flow6(&b, to_vip(1003, 6), SYN), 2),
        Decision6::Drop(Refusal::NoLocalPort)
    );
}

#[test]
fn ipv4_and_ipv6_fullnat_services_keep_their_own_pools() {
    let mut v4 = VirtualService::new(
        "fnat4",
        crate::lb::service::ServiceKey {
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(Endpoint::new(Ipv4Addr::new(10, 3, 0, 11), 8080), 1)],
    );
    v4.local = LocalAddresses {
        addresses: vec![Ipv4Addr::new(10, 2, 0, 100)],
        ports: (5000, 5000),
        ..LocalAddresses::default()
    };
    let mut b = balancer(vec![v4, service(Protocol::Tcp, &[LIP], (5000, 5000))]);
    let key4 = FlowKey::new(
        Ipv4Addr::new(198, 51, 100, 7),
        1000,
        Ipv4Addr::new(203, 0, 113, 100),
        80,
        6,
    );
    let f4 = super::tests::flow(&b, key4, SYN);
    assert!(matches!(
        b.decide(&f4, 1),
        Decision::FullNatToRealServer { .. }
    ));
    // The same port number is free in the IPv6 pool.
    assert_eq!(
        local_of(b.decide6(&flow6(&b, to_vip(1000, 6), SYN), 1)),
        Endpoint6::new(LIP, 5000)
    );
    assert_eq!(b.local_usage().map(|u| u.in_use).sum::<u64>(), 2);
}
