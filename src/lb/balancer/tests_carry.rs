//! Connections of services that carry the client's address
//! (`client_address`): the decisions that send their segments through the
//! `lb::client_addr` hooks, and the state beside the table.

use super::tests::{balancer, flow};
use super::*;
use crate::lb::client_addr::{Carried, ClientAddress};
use crate::lb::service::{SchedulerKind, ServiceKey, VirtualService};
use crate::lb::sync::SyncEvent;
use crate::lb::tcp_state::State;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const RS: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);

fn carrying(mode: Option<ClientAddress>, protocol: Protocol) -> VirtualService {
    VirtualService {
        client_address: mode,
        ..VirtualService::new(
            "web",
            ServiceKey {
                vip: Endpoint::new(VIP, 80),
                protocol,
            },
            ForwardMethod::Nat,
            SchedulerKind::Rr,
            [(Endpoint::new(RS, 8080), 1)],
        )
    }
}

fn to_vip(proto: u8) -> FlowKey {
    FlowKey::new(CLIENT, 40000, VIP, 80, proto)
}

fn from_rs() -> FlowKey {
    FlowKey::new(RS, 8080, CLIENT, 40000, 6)
}

#[test]
fn both_directions_of_a_carrying_connection_name_it_and_its_mode() {
    let mut b = balancer(vec![carrying(Some(ClientAddress::ProxyV2), Protocol::Tcp)]);
    let d = b.decide(&flow(&b, to_vip(6), SYN), 1);
    let Decision::ToRealServerCarrying {
        real,
        created: true,
        conn,
        mode: ClientAddress::ProxyV2,
    } = d
    else {
        panic!("not a carrying decision: {d:?}");
    };
    assert_eq!(real, Endpoint::new(RS, 8080));
    assert_eq!(
        b.decide(&flow(&b, from_rs(), TcpFlags(0x12)), 2),
        Decision::ToClientCarrying {
            vip: Endpoint::new(VIP, 80),
            conn,
            mode: ClientAddress::ProxyV2,
        }
    );
    assert_eq!(b.carried_mut(conn).copied(), Some(Carried::default()));
}

#[test]
fn services_without_it_keep_the_plain_decisions_and_no_state() {
    let mut b = balancer(vec![carrying(None, Protocol::Tcp)]);
    let d = b.decide(&flow(&b, to_vip(6), SYN), 1);
    assert!(matches!(d, Decision::ToRealServer { .. }), "{d:?}");
    let id = b
        .conns()
        .iter()
        .next()
        .map(|(id, _)| id)
        .expect("a connection");
    assert_eq!(b.carried_mut(id), None, "no array while no service carries");
}

#[test]
fn udp_of_a_carrying_service_is_plain() {
    // Validation refuses it; the balancer holds to TCP regardless.
    let mut b = balancer(vec![carrying(Some(ClientAddress::Toa), Protocol::Udp)]);
    let d = b.decide(&flow(&b, to_vip(17), TcpFlags(0)), 1);
    assert!(matches!(d, Decision::ToRealServer { .. }), "{d:?}");
}

#[test]
fn a_synced_connection_starts_with_no_client_address_state() {
    let mut b = balancer(vec![carrying(Some(ClientAddress::ProxyV2), Protocol::Tcp)]);
    // A connection whose slot holds armed state, then goes away.
    let d = b.decide(&flow(&b, to_vip(6), SYN), 1);
    let Decision::ToRealServerCarrying { conn, .. } = d else {
        panic!("{d:?}");
    };
    *b.carried_mut(conn).expect("state") = Carried::armed(1000, ClientAddress::ProxyV2);
    let _ = b.conns.remove(conn);
    let event = SyncEvent {
        protocol: Protocol::Tcp,
        state: State::Established,
        input_only: false,
        client: Endpoint::new(CLIENT, 40000),
        vip: Endpoint::new(VIP, 80),
        real: Endpoint::new(RS, 8080),
        timeout_s: 60,
        local: None,
    };
    assert_eq!(b.install(&[event], 2), 1);
    let d = b.decide(&flow(&b, to_vip(6), ACK), 3);
    let Decision::ToRealServerCarrying { conn, .. } = d else {
        panic!("{d:?}");
    };
    assert_eq!(b.carried_mut(conn).map(|c| c.armed), Some(0));
}

#[test]
fn a_new_connection_clears_the_state_its_slot_held() {
    let mut b = balancer(vec![carrying(Some(ClientAddress::Toa), Protocol::Tcp)]);
    let d = b.decide(&flow(&b, to_vip(6), SYN), 1);
    let Decision::ToRealServerCarrying { conn, .. } = d else {
        panic!("{d:?}");
    };
    *b.carried_mut(conn).expect("state") = Carried::armed(1000, ClientAddress::Toa);
    // The SYN again (a retransmission): the same connection, kept.
    let _ = b.decide(&flow(&b, to_vip(6), SYN), 2);
    assert_eq!(b.carried_mut(conn).map(|c| c.armed), Some(1));
    // The slot freed and taken by a new connection: cleared.
    let _ = b.conns.remove(conn);
    let d = b.decide(&flow(&b, to_vip(6), SYN), 3);
    let Decision::ToRealServerCarrying {
        conn,
        created: true,
        ..
    } = d
    else {
        panic!("{d:?}");
    };
    assert_eq!(b.carried_mut(conn).copied(), Some(Carried::default()));
}

#[test]
fn a_connection_keeps_its_mode_when_a_reload_changes_or_removes_it() {
    let mut b = balancer(vec![carrying(Some(ClientAddress::ProxyV2), Protocol::Tcp)]);
    let d = b.decide(&flow(&b, to_vip(6), SYN), 1);
    let Decision::ToRealServerCarrying { conn, .. } = d else {
        panic!("{d:?}");
    };
    *b.carried_mut(conn).expect("state") = Carried::armed(1000, ClientAddress::ProxyV2);
    for after in [None, Some(ClientAddress::Toa)] {
        b.set_services(Arc::new(ServiceTable::new(vec![carrying(
            after,
            Protocol::Tcp,
        )])));
        let d = b.decide(&flow(&b, to_vip(6), ACK), 2);
        assert!(
            matches!(
                d,
                Decision::ToRealServerCarrying {
                    mode: ClientAddress::ProxyV2,
                    ..
                }
            ),
            "after a reload to {after:?}: {d:?}"
        );
        let d = b.decide(&flow(&b, from_rs(), ACK), 2);
        assert!(
            matches!(
                d,
                Decision::ToClientCarrying {
                    mode: ClientAddress::ProxyV2,
                    ..
                }
            ),
            "{d:?}"
        );
    }
}
