//! FullNAT in the balancer: a local address and port per connection, both
//! directions decided from its two keys, the port back in the pool
//! whatever ends the connection, exhaustion refused.

use super::tests::{balancer, flow};
use super::*;
use crate::lb::service::{LocalAddresses, SchedulerKind, ServiceKey, VirtualService};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 11);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 100);
const LIP2: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 101);
const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);
const SYN_ACK: TcpFlags = TcpFlags(0x12);
const RST: TcpFlags = TcpFlags(0x04);

fn service(protocol: Protocol, locals: &[Ipv4Addr], ports: (u16, u16)) -> VirtualService {
    let mut s = VirtualService::new(
        "fnat",
        ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol,
        },
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(Endpoint::new(RIP, 8080), 1)],
    );
    s.local = LocalAddresses {
        addresses: locals.to_vec(),
        ports,
        ..LocalAddresses::default()
    };
    s
}

fn to_vip(sport: u16, proto: u8) -> FlowKey {
    FlowKey::new(CLIENT, sport, VIP, 80, proto)
}

fn local_of(d: Decision) -> Endpoint {
    match d {
        Decision::FullNatToRealServer { local, real, .. } => {
            assert_eq!(real, Endpoint::new(RIP, 8080));
            local
        }
        other => panic!("not FullNAT to a real server: {other:?}"),
    }
}

#[test]
fn a_new_connection_leaves_from_a_local_address_and_port() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let d = b.decide(&flow(&b, to_vip(1000, 6), SYN), 1);
    assert_eq!(
        d,
        Decision::FullNatToRealServer {
            local: Endpoint::new(LIP, 5000),
            real: Endpoint::new(RIP, 8080),
            created: true,
            carry: None,
        }
    );
    assert_eq!(b.dump(1, 1)[0].local, Some((LIP, 5000).into()));
}

#[test]
fn the_reply_to_the_local_port_goes_back_to_the_client_from_the_vip() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let local = local_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 1));
    let reply = FlowKey::new(RIP, 8080, local.ip, local.port, 6);
    assert_eq!(
        b.decide(&flow(&b, reply, SYN_ACK), 2),
        Decision::FullNatToClient {
            vip: Endpoint::new(VIP, 80),
            client: Endpoint::new(CLIENT, 1000),
            carry: None,
        }
    );
    assert_eq!(
        local_of(b.decide(&flow(&b, to_vip(1000, 6), ACK), 3)),
        local,
        "later packets keep their local port"
    );
}

#[test]
fn a_reply_to_an_unknown_local_port_is_no_connection() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let stray = FlowKey::new(RIP, 8080, LIP, 5005, 6);
    assert_eq!(
        b.decide(&flow(&b, stray, SYN_ACK), 1),
        Decision::Drop(Refusal::NoConnection)
    );
}

#[test]
fn connections_take_distinct_ports_and_rotate_over_local_addresses() {
    let mut b = balancer(vec![service(Protocol::Udp, &[LIP, LIP2], (6000, 6001))]);
    let got: Vec<Endpoint> = (0..4)
        .map(|i| local_of(b.decide(&flow(&b, to_vip(1000 + i, 17), TcpFlags::NONE), 1)))
        .collect();
    assert_eq!(
        got,
        [
            Endpoint::new(LIP, 6000),
            Endpoint::new(LIP2, 6000),
            Endpoint::new(LIP, 6001),
            Endpoint::new(LIP2, 6001),
        ]
    );
}

#[test]
fn exhausted_ports_refuse_new_connections_by_their_reason() {
    let mut b = balancer(vec![
        service(Protocol::Tcp, &[LIP], (5000, 5000)),
        service(Protocol::Udp, &[LIP], (5000, 5000)),
    ]);
    local_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 1));
    // The worker counts it and answers the SYN with a reset.
    assert_eq!(
        b.decide(&flow(&b, to_vip(1001, 6), SYN), 1),
        Decision::Drop(Refusal::NoLocalPort)
    );
    local_of(b.decide(&flow(&b, to_vip(1000, 17), TcpFlags::NONE), 1));
    assert_eq!(
        b.decide(&flow(&b, to_vip(1001, 17), TcpFlags::NONE), 1),
        Decision::Drop(Refusal::NoLocalPort)
    );
    let exhausted: u64 = b.local_usage().map(|u| u.exhausted).sum();
    assert_eq!(exhausted, 2);
    assert_eq!(b.conn_count(), 2, "nothing made for the refused");
}

#[test]
fn a_reset_connection_gives_its_port_back() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5000))]);
    local_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 1));
    // The port is out; a closing connection's port comes back when a new
    // SYN from the same client port retires it.
    b.decide(&flow(&b, to_vip(1000, 6), RST), 2);
    assert_eq!(
        local_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 3)),
        Endpoint::new(LIP, 5000)
    );
}

#[test]
fn an_expired_connection_gives_its_port_back() {
    let mut b = balancer(vec![service(Protocol::Udp, &[LIP], (5000, 5000))]);
    local_of(b.decide(&flow(&b, to_vip(1000, 17), TcpFlags::NONE), 1));
    let later = 1 + b.timeouts.udp() + 1;
    // The sweep reclaims it (a whole pass over the 64-entry table).
    b.tick(later);
    b.tick(later + 1_000_000_000);
    assert_eq!(b.conn_count(), 0);
    assert_eq!(
        local_of(b.decide(
            &flow(&b, to_vip(2000, 17), TcpFlags::NONE),
            later + 2_000_000_000
        )),
        Endpoint::new(LIP, 5000)
    );
}

#[test]
fn a_worker_takes_only_the_local_addresses_it_owns() {
    let b = balancer(vec![service(Protocol::Tcp, &[LIP, LIP2], (5000, 5009))])
        .with_local_owner(Arc::new(|a| a == LIP2));
    let owned: Vec<std::net::IpAddr> = b.local_usage().map(|u| u.addr).collect();
    assert_eq!(owned, [std::net::IpAddr::V4(LIP2)]);
    let mut none = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))])
        .with_local_owner(Arc::new(|_| false));
    assert_eq!(
        none.decide(&flow(&none, to_vip(1000, 6), SYN), 1),
        Decision::Drop(Refusal::NoLocalPort),
        "a worker without a local address refuses at once"
    );
}

#[test]
fn replies_and_errors_are_owned_by_the_local_address() {
    let b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let reply = FlowKey::new(RIP, 8080, LIP, 5003, 6);
    assert_eq!(b.client_of(&reply, Protocol::Tcp), Some(LIP));
    assert_eq!(b.client_of(&to_vip(1000, 6), Protocol::Tcp), Some(CLIENT));
    let quoted = FlowKey::new(LIP, 5003, RIP, 8080, 6);
    assert_eq!(b.client_of_quoted(&quoted, Protocol::Tcp), Some(LIP));
}

#[test]
fn icmp_errors_are_routed_with_both_ends() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let local = local_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 1));
    // From the inside, about LIP → RIP: travels as the reply key.
    let reply = FlowKey::new(RIP, 8080, local.ip, local.port, 6);
    assert_eq!(
        b.icmp_error(&reply, 2),
        Ok(IcmpRoute::FullNatToClient {
            vip: Endpoint::new(VIP, 80),
            client: Endpoint::new(CLIENT, 1000),
            local,
            carried: None,
        })
    );
    assert_eq!(
        b.icmp_error(&to_vip(1000, 6), 2),
        Ok(IcmpRoute::FullNatToRealServer {
            local,
            real: Endpoint::new(RIP, 8080),
        })
    );
}

#[test]
fn a_client_claiming_a_local_address_opens_nothing() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let spoofed = FlowKey::new(LIP, 5000, VIP, 80, 6);
    assert_eq!(
        b.decide(&flow(&b, spoofed, SYN), 1),
        Decision::Drop(Refusal::Malformed)
    );
}

#[test]
fn a_reload_keeps_live_connections_ports_taken() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5001))]);
    let first = local_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 1));
    // A reload that changes the range rebuilds the pool.
    b.set_services(Arc::new(ServiceTable::new(vec![service(
        Protocol::Tcp,
        &[LIP],
        (5000, 5002),
    )])));
    for sport in 1001..1003 {
        let l = local_of(b.decide(&flow(&b, to_vip(sport, 6), SYN), 2));
        assert_ne!(l, first, "a live connection's port is not given again");
    }
    assert_eq!(
        b.decide(&flow(&b, to_vip(1003, 6), SYN), 2),
        Decision::Drop(Refusal::NoLocalPort)
    );
}

#[test]
fn a_carrying_fullnat_service_names_the_connection_and_mode_both_ways() {
    let mut s = service(Protocol::Tcp, &[LIP], (5000, 5009));
    s.client_address = Some(ClientAddress::ProxyV2);
    let mut b = balancer(vec![s]);
    let d = b.decide(&flow(&b, to_vip(1000, 6), SYN), 1);
    let Decision::FullNatToRealServer {
        local,
        carry: Some(carry),
        ..
    } = d
    else {
        panic!("not a carrying FullNAT decision: {d:?}");
    };
    assert_eq!(carry.mode, ClientAddress::ProxyV2);
    let reply = FlowKey::new(RIP, 8080, local.ip, local.port, 6);
    assert_eq!(
        b.decide(&flow(&b, reply, SYN_ACK), 2),
        Decision::FullNatToClient {
            vip: Endpoint::new(VIP, 80),
            client: Endpoint::new(CLIENT, 1000),
            carry: Some(carry),
        }
    );
}

#[test]
fn udp_of_a_carrying_fullnat_service_carries_nothing() {
    let mut s = service(Protocol::Udp, &[LIP], (5000, 5009));
    s.client_address = Some(ClientAddress::Toa);
    let mut b = balancer(vec![s]);
    assert!(matches!(
        b.decide(&flow(&b, to_vip(1000, 17), TcpFlags::NONE), 1),
        Decision::FullNatToRealServer { carry: None, .. }
    ));
}

#[test]
fn a_synced_connection_keeps_its_local_end_and_its_port_is_taken_on_the_standby() {
    let services = || vec![service(Protocol::Tcp, &[LIP], (5000, 5001))];
    let mut active = balancer(services());
    let local = local_of(active.decide(&flow(&active, to_vip(1000, 6), SYN), 1));
    let events = active.sync_dump(2);
    assert_eq!(
        events[0].local,
        Some(local),
        "the report carries the local end"
    );
    let mut standby = balancer(services());
    assert_eq!(standby.install(&events, 2), 1);
    // After a takeover: the real server's reply to LIP:LPORT is known ...
    let reply = FlowKey::new(RIP, 8080, local.ip, local.port, 6);
    assert_eq!(
        standby.decide(&flow(&standby, reply, ACK), 3),
        Decision::FullNatToClient {
            vip: Endpoint::new(VIP, 80),
            client: Endpoint::new(CLIENT, 1000),
            carry: None,
        }
    );
    // ... and a new connection does not get its port.
    let other = local_of(standby.decide(&flow(&standby, to_vip(1001, 6), SYN), 3));
    assert_ne!(other, local);
    assert_eq!(
        standby.decide(&flow(&standby, to_vip(1002, 6), SYN), 3),
        Decision::Drop(Refusal::NoLocalPort)
    );
}

#[test]
fn a_synced_fullnat_connection_without_a_known_local_end_is_not_installed() {
    let mut active = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5001))]);
    local_of(active.decide(&flow(&active, to_vip(1000, 6), SYN), 1));
    let mut events = active.sync_dump(2);
    let mut standby = balancer(vec![service(Protocol::Tcp, &[LIP2], (5000, 5001))]);
    assert_eq!(standby.install(&events, 2), 0, "another local address");
    events[0].local = None;
    let mut standby = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5001))]);
    assert_eq!(standby.install(&events, 2), 0, "none");
}

#[test]
fn a_health_snapshot_keeps_the_pool_as_it_is() {
    let mut b = balancer(vec![service(Protocol::Tcp, &[LIP], (5000, 5009))]);
    let first = local_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 1));
    let same = b
        .services()
        .clone()
        .with_server_state(|_, _| Default::default());
    b.set_services(Arc::new(same));
    let in_use: u64 = b.local_usage().map(|u| u.in_use).sum();
    assert_eq!(in_use, 1);
    let next = local_of(b.decide(&flow(&b, to_vip(1001, 6), SYN), 2));
    assert_eq!((first.port, next.port), (5000, 5001), "the ring goes on");
}
