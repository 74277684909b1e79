//! The balancer's rules, without a worker: flows in, decisions out.

use super::*;
use crate::lb::service::{SchedulerKind, ServerState, ServiceKey, VirtualService};
use crate::lb::sync::sync_channel;
use crate::lb::tcp_state::State;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const RS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 11), Ipv4Addr::new(10, 1, 0, 12)];
const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);
const SYN_ACK: TcpFlags = TcpFlags(0x12);

fn service(forward: ForwardMethod, protocol: Protocol) -> VirtualService {
    VirtualService::new(
        "web",
        ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol,
        },
        forward,
        SchedulerKind::Rr,
        RS.iter().map(|&ip| (Endpoint::new(ip, 8080), 1)),
    )
}

/// A balancer over `services` with a table of 64 connections (also the
/// handshake tests').
pub(super) fn balancer(services: Vec<VirtualService>) -> Balancer {
    Balancer::new(&BalancerSetup {
        services: Arc::new(ServiceTable::new(services)),
        timeouts: Timeouts::default(),
        conn_capacity: 64,
        seed: 0,
    })
}

/// A 40-byte packet of `key` with `flags`, hashed as the worker would
/// (also the handshake tests').
pub(super) fn flow(b: &Balancer, key: FlowKey, flags: TcpFlags) -> Flow {
    Flow {
        key,
        hash: b.flow_hash(&key),
        protocol: Protocol::from_number(key.proto).expect("tcp or udp"),
        flags,
        bytes: 40,
    }
}

fn to_vip(sport: u16, proto: u8) -> FlowKey {
    FlowKey::new(CLIENT, sport, VIP, 80, proto)
}

fn real_of(d: Decision) -> Endpoint {
    match d {
        Decision::ToRealServer { real, .. } => real,
        other => panic!("not to a real server: {other:?}"),
    }
}

#[test]
fn a_syn_to_a_service_creates_a_connection_to_a_scheduled_real_server() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let f = flow(&b, to_vip(1000, 6), SYN);
    match b.decide(&f, 1) {
        Decision::ToRealServer {
            method,
            real,
            created,
        } => {
            assert_eq!(method, ForwardMethod::Nat);
            assert!(RS.contains(&real.ip));
            assert_eq!(real.port, 8080);
            assert!(created);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.conn_count(), 1);
    let total: u64 = b.counters().iter().map(|c| c.conns).sum();
    assert_eq!(total, 1);
}

#[test]
fn later_packets_and_nat_replies_follow_the_connection() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let real = real_of(b.decide(&flow(&b, to_vip(1000, 6), SYN), 1));
    let reply = FlowKey::new(real.ip, real.port, CLIENT, 1000, 6);
    assert_eq!(
        b.decide(&flow(&b, reply, SYN_ACK), 2),
        Decision::ToClient {
            vip: Endpoint::new(VIP, 80)
        }
    );
    let d = b.decide(&flow(&b, to_vip(1000, 6), ACK), 3);
    assert_eq!(
        d,
        Decision::ToRealServer {
            method: ForwardMethod::Nat,
            real,
            created: false
        }
    );
    let rs = RS.iter().position(|&ip| ip == real.ip).unwrap();
    let c = b.counters()[rs];
    assert_eq!(
        (c.active, c.inactive, c.packets_in, c.packets_out),
        (1, 0, 2, 1)
    );
}

#[test]
fn tcp_that_is_not_a_syn_opens_nothing() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    assert_eq!(
        b.decide(&flow(&b, to_vip(1000, 6), ACK), 1),
        Decision::Drop(Refusal::NoConnection)
    );
    assert_eq!(b.conn_count(), 0);
}

#[test]
fn packets_for_no_service_are_refused_by_reason() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let other_port = FlowKey::new(CLIENT, 1000, VIP, 81, 6);
    assert_eq!(
        b.decide(&flow(&b, other_port, SYN), 1),
        Decision::Drop(Refusal::NoService)
    );
    let stray_reply = FlowKey::new(RS[0], 8080, CLIENT, 1000, 6);
    assert_eq!(
        b.decide(&flow(&b, stray_reply, ACK), 1),
        Decision::Drop(Refusal::NoConnection)
    );
}

#[test]
fn with_every_server_down_tcp_is_reset_and_udp_dropped() {
    let mut b = balancer(vec![
        service(ForwardMethod::Nat, Protocol::Tcp),
        service(ForwardMethod::Nat, Protocol::Udp),
    ]);
    let all_down = b.services().clone().with_server_state(|_, _| ServerState {
        down: true,
        weight: None,
        ramp: None,
    });
    b.set_services(Arc::new(all_down));
    assert_eq!(
        b.decide(&flow(&b, to_vip(1000, 6), SYN), 1),
        Decision::Reset
    );
    assert_eq!(
        b.decide(&flow(&b, to_vip(1000, 17), TcpFlags::NONE), 1),
        Decision::Drop(Refusal::NoRealServer)
    );
}

#[test]
fn weights_and_health_come_from_the_snapshot() {
    let mut b = balancer(vec![service(ForwardMethod::Dr, Protocol::Tcp)]);
    let only_second = b.services().clone().with_server_state(|_, rs| ServerState {
        down: false,
        weight: (rs == 0).then_some(0),
        ramp: None,
    });
    b.set_services(Arc::new(only_second));
    for port in 2000..2010 {
        assert_eq!(
            real_of(b.decide(&flow(&b, to_vip(port, 6), SYN), 1)).ip,
            RS[1]
        );
    }
}

#[test]
fn a_connection_whose_server_went_down_ends_on_its_next_packet() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let real = real_of(b.decide(&flow(&b, to_vip(3000, 6), SYN), 1));
    let rs = RS.iter().position(|&ip| ip == real.ip).unwrap() as u16;
    let down = b.services().clone().with_server_state(|_, r| ServerState {
        down: r == rs,
        weight: None,
        ramp: None,
    });
    b.set_services(Arc::new(down));
    // Mid-connection TCP from the client: a reset, the connection gone.
    assert_eq!(
        b.decide(&flow(&b, to_vip(3000, 6), ACK), 2),
        Decision::Reset
    );
    assert_eq!(b.conn_count(), 0);
    // The client's new SYN goes to the live server.
    assert_ne!(real_of(b.decide(&flow(&b, to_vip(3000, 6), SYN), 3)), real);
}

#[test]
fn a_full_table_of_udp_flows_admits_a_new_one_in_place_of_the_oldest() {
    let mut b = Balancer::new(&BalancerSetup {
        services: Arc::new(ServiceTable::new(vec![service(
            ForwardMethod::Nat,
            Protocol::Udp,
        )])),
        timeouts: Timeouts::default(),
        conn_capacity: 4,
        seed: 0,
    });
    for port in 0..4 {
        real_of(b.decide(&flow(&b, to_vip(port, 17), TcpFlags::NONE), 1));
    }
    real_of(b.decide(&flow(&b, to_vip(99, 17), TcpFlags::NONE), 2));
    assert_eq!(b.conn_count(), 4);
    assert_eq!(b.conns().evictions().udp, 1);
    // The oldest flow went, and its server's count with it.
    let gone = flow(&b, to_vip(0, 17), TcpFlags::NONE);
    assert!(b.conns().peek(&gone.key, 2).is_none());
    let inactive: u32 = b.counters().iter().map(|c| c.inactive).sum();
    assert_eq!(inactive, 4);
}

#[test]
fn icmp_errors_go_where_their_connection_goes() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let real = real_of(b.decide(&flow(&b, to_vip(4000, 6), SYN), 1));
    // An error about the packet sent to the real server travels from it
    // (or a router) toward the client: the reply key.
    let about_request = FlowKey::new(real.ip, real.port, CLIENT, 4000, 6);
    assert_eq!(
        b.icmp_error(&about_request, 2),
        Ok(IcmpRoute::ToClient {
            vip: Endpoint::new(VIP, 80),
            client: CLIENT,
            carried: None,
        })
    );
    // An error about a reply travels toward the real server.
    assert_eq!(
        b.icmp_error(&to_vip(4000, 6), 2),
        Ok(IcmpRoute::ToRealServer {
            method: ForwardMethod::Nat,
            real,
            seq_delta: 0
        })
    );
    assert_eq!(
        b.icmp_error(&to_vip(4001, 6), 2),
        Err(Refusal::NoConnection)
    );
}

#[test]
fn the_client_of_a_packet_is_found_from_either_direction() {
    let b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    assert_eq!(b.client_of(&to_vip(1, 6), Protocol::Tcp), Some(CLIENT));
    let reply = FlowKey::new(RS[1], 8080, CLIENT, 1, 6);
    assert_eq!(b.client_of(&reply, Protocol::Tcp), Some(CLIENT));
    let stranger = FlowKey::new(CLIENT, 1, RS[0], 22, 6);
    assert_eq!(b.client_of(&stranger, Protocol::Tcp), None);
    // An ICMP error quotes the packet that went the other way: a reply as
    // it left the balancer, or a request as it reached the real server.
    let reply_out = FlowKey::new(VIP, 80, CLIENT, 1, 6);
    assert_eq!(b.client_of_quoted(&reply_out, Protocol::Tcp), Some(CLIENT));
    let to_real = FlowKey::new(CLIENT, 1, RS[1], 8080, 6);
    assert_eq!(b.client_of_quoted(&to_real, Protocol::Tcp), Some(CLIENT));
}

#[test]
fn an_active_balancer_reports_new_connections_and_state_changes_only() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let (queue, collector) = sync_channel();
    b.set_sync(queue, true);
    let real = real_of(b.decide(&flow(&b, to_vip(5000, 6), SYN), 1));
    let reply = FlowKey::new(real.ip, real.port, CLIENT, 5000, 6);
    b.decide(&flow(&b, reply, SYN_ACK), 2);
    b.decide(&flow(&b, to_vip(5000, 6), ACK), 3);
    b.decide(&flow(&b, to_vip(5000, 6), ACK), 4); // no change: no report
                                                  // IPVS's states: the client's SYN makes SYN_RECV, its ACK after the
                                                  // server's SYN-ACK ESTABLISHED.
    b.tick(5);
    let mut states = Vec::new();
    collector.drain(|e| {
        if let crate::lb::sync::SyncReport::V4(e) = e {
            states.push(e.state)
        }
    });
    assert_eq!(states, [State::SynRecv, State::Established]);
    assert_eq!(b.sync_lost(), 0);
    b.set_sync_active(false);
    b.decide(&flow(&b, to_vip(5001, 6), SYN), 6);
    b.tick(7);
    let mut n = 0;
    collector.drain(|_| n += 1);
    assert_eq!(n, 0, "a backup reports nothing");
}

#[test]
fn a_standby_installs_what_the_active_one_reported() {
    let mut active = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    real_of(active.decide(&flow(&active, to_vip(6000, 6), SYN), 1));
    let events = active.sync_dump(2);
    let mut standby = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    assert_eq!(standby.install(&events, 2), 1);
    // The client's next segment goes to the same real server, without a
    // SYN.
    let want = active.dump(2, 1)[0].real_server;
    let got = real_of(standby.decide(&flow(&standby, to_vip(6000, 6), ACK), 3));
    assert_eq!(std::net::SocketAddr::from((got.ip, got.port)), want);
}

#[test]
fn an_installed_connection_never_outlives_the_local_timeout_of_its_state() {
    let mut standby = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let event = SyncEvent {
        protocol: Protocol::Tcp,
        state: State::Established,
        input_only: false,
        client: Endpoint::new(CLIENT, 6200),
        vip: Endpoint::new(VIP, 80),
        real: Endpoint::new(RS[0], 8080),
        timeout_s: u32::MAX, // 136 years
        local: None,
    };
    assert_eq!(standby.install(&[event], 2), 1);
    let installed = standby.sync_dump(2);
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].timeout_s, 900, "ESTABLISHED's local timeout");
}

#[test]
fn a_reported_connection_for_an_unknown_service_is_skipped() {
    let mut standby = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let event = SyncEvent {
        protocol: Protocol::Tcp,
        state: State::Established,
        input_only: false,
        client: Endpoint::new(CLIENT, 6300),
        vip: Endpoint::new(VIP, 443),
        real: Endpoint::new(RS[0], 8080),
        timeout_s: 60,
        local: None,
    };
    assert_eq!(standby.install(&[event], 2), 0);
    assert_eq!(standby.conn_count(), 0);
}

#[test]
fn a_reported_connection_replaces_a_known_one_on_another_real_server() {
    // The standby still holds the client's port in TIME_WAIT on one real
    // server; the active one has since scheduled a new SYN from the same
    // port to the other. After a takeover the record must win.
    let mut standby = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    let old = real_of(standby.decide(&flow(&standby, to_vip(6100, 6), SYN), 1));
    let other = RS
        .iter()
        .copied()
        .find(|&ip| ip != old.ip)
        .expect("two servers");
    let event = SyncEvent {
        protocol: Protocol::Tcp,
        state: State::Established,
        input_only: false,
        client: Endpoint::new(CLIENT, 6100),
        vip: Endpoint::new(VIP, 80),
        real: Endpoint::new(other, 8080),
        timeout_s: 900,
        local: None,
    };
    assert_eq!(standby.install(&[event], 2), 1);
    assert_eq!(standby.conn_count(), 1);
    assert_eq!(
        real_of(standby.decide(&flow(&standby, to_vip(6100, 6), ACK), 3)).ip,
        other
    );
    // The new real server's replies are known; the old one's are not.
    let reply = FlowKey::new(other, 8080, CLIENT, 6100, 6);
    assert!(matches!(
        standby.decide(&flow(&standby, reply, ACK), 4),
        Decision::ToClient { .. }
    ));
    let stale = FlowKey::new(old.ip, 8080, CLIENT, 6100, 6);
    assert!(matches!(
        standby.decide(&flow(&standby, stale, ACK), 5),
        Decision::Drop(Refusal::NoConnection)
    ));
}

#[test]
fn counters_survive_a_reload_that_adds_servers() {
    let mut b = balancer(vec![service(ForwardMethod::Dr, Protocol::Tcp)]);
    real_of(b.decide(&flow(&b, to_vip(7000, 6), SYN), 1));
    let before: u64 = b.counters().iter().map(|c| c.conns).sum();
    let mut bigger = service(ForwardMethod::Dr, Protocol::Tcp);
    bigger.real_servers.push(crate::lb::service::RealServer {
        endpoint: Endpoint::new(Ipv4Addr::new(10, 1, 0, 13), 8080),
        weight: 1,
        thresholds: Default::default(),
        priority: 0,
        slow_start: None,
    });
    b.set_services(Arc::new(ServiceTable::new(vec![bigger])));
    assert_eq!(b.counters().len(), 3);
    let after: u64 = b.counters().iter().map(|c| c.conns).sum();
    assert_eq!(before, after);
}

// ------------------------------------------------------------ SYN proxy

fn proxied_service() -> VirtualService {
    VirtualService {
        syn_proxy: true,
        ..service(ForwardMethod::Nat, Protocol::Tcp)
    }
}

/// The SYN-ACK's cookie for a SYN from `sport` with ISN `isn`.
fn cookie_for(b: &mut Balancer, sport: u16, isn: u32, now: u64) -> u32 {
    let f = flow(b, to_vip(sport, 6), SYN);
    let seg = Segment {
        seq: isn,
        mss: Some(1460),
        ..Segment::default()
    };
    match b.decide_segment(&f, || seg, now) {
        Decision::SynCookie { cookie, mss } => {
            assert_eq!(mss, 1460);
            cookie
        }
        other => panic!("not a cookie: {other:?}"),
    }
}

fn cookie_ack(b: &mut Balancer, sport: u16, isn: u32, cookie: u32, now: u64) -> Decision {
    let f = flow(b, to_vip(sport, 6), ACK);
    let seg = Segment {
        seq: isn.wrapping_add(1),
        ack: cookie.wrapping_add(1),
        window: 1000,
        mss: None,
    };
    b.decide_segment(&f, || seg, now)
}

#[test]
fn a_proxied_syn_gets_a_cookie_and_makes_no_connection() {
    let mut b = balancer(vec![proxied_service()]);
    cookie_for(&mut b, 4000, 77, 1);
    assert_eq!(b.conn_count(), 0);
}

#[test]
fn a_valid_cookie_ack_opens_a_proxied_connection_in_syn_recv() {
    let mut b = balancer(vec![proxied_service()]);
    let cookie = cookie_for(&mut b, 4000, 77, 1);
    match cookie_ack(&mut b, 4000, 77, cookie, 2) {
        Decision::SynToRealServer {
            isn, mss, created, ..
        } => assert_eq!((isn, mss, created), (77, 1460, true)),
        other => panic!("not a SYN to the real server: {other:?}"),
    }
    let (_, c) = b.conns().iter().next().expect("one connection");
    assert!(c.is_proxied());
    assert_eq!(c.state_name(), "SYN_RECV");
}

#[test]
fn a_cookie_for_another_port_is_refused() {
    let mut b = balancer(vec![proxied_service()]);
    let cookie = cookie_for(&mut b, 4000, 77, 1);
    assert_eq!(
        cookie_ack(&mut b, 4001, 77, cookie, 2),
        Decision::Drop(Refusal::BadCookie)
    );
    assert_eq!(b.conn_count(), 0);
}

#[test]
fn a_reload_that_turns_the_proxy_on_applies_to_new_connections() {
    let mut b = balancer(vec![service(ForwardMethod::Nat, Protocol::Tcp)]);
    assert!(!b.syn_proxy_enabled());
    b.set_services(Arc::new(ServiceTable::new(vec![proxied_service()])));
    assert!(b.syn_proxy_enabled());
    let cookie = cookie_for(&mut b, 4000, 77, 1);
    assert!(matches!(
        cookie_ack(&mut b, 4000, 77, cookie, 2),
        Decision::SynToRealServer { created: true, .. }
    ));
}

#[test]
fn a_proxied_syn_with_every_server_down_is_reset_at_once() {
    let mut svc = proxied_service();
    for r in &mut svc.real_servers {
        r.weight = 0;
    }
    let mut b = balancer(vec![svc]);
    let f = flow(&b, to_vip(4000, 6), SYN);
    assert_eq!(b.decide_segment(&f, Segment::default, 1), Decision::Reset);
}
