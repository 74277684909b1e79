//! NAT64 decisions in the balancer: the connection in the IPv6 table with
//! a mapped IPv4 reply key, both directions from its keys, ports from the
//! IPv4 pool given back and claimed again, the reply key unreachable from
//! IPv6, ICMP routes.

use super::super::super::tests::balancer;
use super::*;
use crate::lb::service::{ForwardMethod, LocalAddresses, SchedulerKind, VirtualService};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const SYN: TcpFlags = TcpFlags(0x02);
const SYN_ACK: TcpFlags = TcpFlags(0x12);
const RST: TcpFlags = TcpFlags(0x04);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 11);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 100);

fn client() -> Ipv6Addr {
    "2001:db8:c::7".parse().unwrap()
}
fn vip() -> Ipv6Addr {
    "2001:db8:1::100".parse().unwrap()
}

fn nat64(ports: (u16, u16)) -> VirtualService {
    let mut s = VirtualService::new6(
        "web64",
        Endpoint6::new(vip(), 80),
        Protocol::Tcp,
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(Endpoint6::new(mapped(RIP), 8080), 1)],
    );
    s.real_servers[0].endpoint = Endpoint::new(RIP, 8080);
    s.local = LocalAddresses {
        addresses: vec![LIP],
        ports,
        ..LocalAddresses::default()
    };
    s
}

fn flow6(b: &Balancer, sport: u16, flags: TcpFlags) -> Flow6 {
    let key = FlowKey6::new(client(), sport, vip(), 80, 6);
    Flow6 {
        key,
        hash: b.flow_hash6(&key),
        protocol: Protocol::Tcp,
        flags,
        bytes: 60,
    }
}

fn local_of(d: Decision6) -> Endpoint {
    match d {
        Decision6::Nat64ToRealServer { local, real, .. } => {
            assert_eq!(real, Endpoint::new(RIP, 8080));
            local
        }
        other => panic!("not NAT64 to a real server: {other:?}"),
    }
}

#[test]
fn a_syn_opens_an_ipv6_connection_whose_reply_key_is_the_mapped_ipv4_tuple() {
    let mut b = balancer(vec![nat64((5000, 5009))]);
    let local = local_of(b.decide6(&flow6(&b, 1000, SYN), 1));
    assert_eq!(local, Endpoint::new(LIP, 5000));
    assert_eq!((b.conn_count6(), b.conn_count()), (1, 0));
    let (_, c) = b.conns6().iter().next().unwrap();
    assert_eq!(
        c.reply(),
        FlowKey6::new(mapped(RIP), 8080, mapped(LIP), 5000, 6)
    );
}

#[test]
fn the_ipv4_reply_goes_to_the_client_from_the_vip() {
    let mut b = balancer(vec![nat64((5000, 5009))]);
    b.decide6(&flow6(&b, 1000, SYN), 1);
    let reply = FlowKey::new(RIP, 8080, LIP, 5000, 6);
    assert_eq!(
        b.decide_nat64_reply(&reply, Protocol::Tcp, SYN_ACK, 60, 2),
        Nat64Reply::ToClient {
            vip: Endpoint6::new(vip(), 80),
            client: Endpoint6::new(client(), 1000),
        }
    );
    let stray = FlowKey::new(RIP, 8080, LIP, 5001, 6);
    assert_eq!(
        b.decide_nat64_reply(&stray, Protocol::Tcp, SYN_ACK, 60, 2),
        Nat64Reply::Drop(Refusal::NoConnection)
    );
}

#[test]
fn an_ipv6_packet_with_the_mapped_reply_tuple_is_no_connection() {
    let mut b = balancer(vec![nat64((5000, 5009))]);
    b.decide6(&flow6(&b, 1000, SYN), 1);
    let key = FlowKey6::new(mapped(RIP), 8080, mapped(LIP), 5000, 6);
    let f = Flow6 {
        key,
        hash: b.flow_hash6(&key),
        protocol: Protocol::Tcp,
        flags: SYN_ACK,
        bytes: 60,
    };
    assert_eq!(b.decide6(&f, 2), Decision6::Drop(Refusal::NoConnection));
}

#[test]
fn a_reset_connection_gives_its_port_back_to_the_ipv4_pool() {
    let mut b = balancer(vec![nat64((5000, 5000))]);
    b.decide6(&flow6(&b, 1000, SYN), 1);
    assert_eq!(
        b.decide6(&flow6(&b, 1001, SYN), 1),
        Decision6::Drop(Refusal::NoLocalPort)
    );
    // The client resets, then opens afresh: the reset connection restarts
    // (removed, its port released) and the new SYN takes the port again.
    b.decide6(&flow6(&b, 1000, RST), 2);
    b.decide6(&flow6(&b, 1000, SYN), 3);
    let local = b.conns6().iter().next().map(|(_, c)| c.reply().dst_port);
    assert_eq!(local, Some(5000));
}

#[test]
fn a_reload_keeps_live_nat64_ports_taken() {
    let mut b = balancer(vec![nat64((5000, 5001))]);
    let first = local_of(b.decide6(&flow6(&b, 1000, SYN), 1));
    // A reload that changes the range rebuilds the pool.
    b.set_services(Arc::new(crate::lb::service::ServiceTable::new(vec![
        nat64((5000, 5002)),
    ])));
    for sport in 1001..1003 {
        let l = local_of(b.decide6(&flow6(&b, sport, SYN), 2));
        assert_ne!(l, first, "a live connection's port is not given again");
    }
    assert_eq!(
        b.decide6(&flow6(&b, 1003, SYN), 2),
        Decision6::Drop(Refusal::NoLocalPort)
    );
}

#[test]
fn icmp_errors_are_routed_to_either_side_with_both_ends() {
    let mut b = balancer(vec![nat64((5000, 5009))]);
    b.decide6(&flow6(&b, 1000, SYN), 1);
    // From the client's side, about VIP -> client: to the real server.
    let about_reply = FlowKey6::new(client(), 1000, vip(), 80, 6);
    assert_eq!(
        b.icmp_error6(&about_reply, 2),
        Ok(IcmpRoute6::Nat64ToRealServer {
            local: Endpoint::new(LIP, 5000),
            real: Endpoint::new(RIP, 8080),
        })
    );
    // From the real server's side, about LIP -> RIP: to the client.
    let about_sent = FlowKey::new(RIP, 8080, LIP, 5000, 6);
    assert_eq!(
        b.icmp_error_nat64(&about_sent, 2),
        Ok((Endpoint6::new(vip(), 80), Endpoint6::new(client(), 1000)))
    );
}

#[test]
fn a_synced_nat64_connection_installs_on_the_standby_with_its_mapped_local_end() {
    let mut active = balancer(vec![nat64((5000, 5009))]);
    let local = local_of(active.decide6(&flow6(&active, 1000, SYN), 1));
    let events = active.sync_dump6(2);
    assert_eq!(events.len(), 1);
    let ev = events[0];
    assert_eq!(
        ev.local,
        Some(Endpoint6::new(mapped(local.ip), local.port)),
        "the IPv4 local end travels IPv4-mapped"
    );
    assert_eq!(ev.real, Endpoint6::new(mapped(RIP), 8080));

    let mut standby = balancer(vec![nat64((5000, 5009))]);
    assert_eq!(standby.install6(&events, 2), 1);
    // The real server's IPv4 reply finds it on the standby.
    let reply = FlowKey::new(RIP, 8080, local.ip, local.port, 6);
    assert!(standby.conns6().peek(&key64(&reply), 3).is_some());
    // And the standby's IPv4 pool has the port taken: its next
    // connection gets the next port.
    let next = local_of(standby.decide6(&flow6(&standby, 1001, SYN), 4));
    assert_eq!(next, Endpoint::new(LIP, 5001));
}
