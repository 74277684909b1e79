//! Mid-flow scheduling (`midflow`): on a cluster node, a TCP segment of a
//! connection another node carried opens it here, on the server every node
//! picks; everything a node could pick differently is still refused. And
//! the consistent schedulers it relies on: two balancers built apart from
//! the same services choose alike, flow for flow.

use super::*;
use crate::lb::acl::Acl;
use crate::lb::client_addr::ClientAddress;
use crate::lb::conn::FlowKey6;
use crate::lb::limits::{Rate, ServiceLimits};
use crate::lb::sched::hash::mix64;
use crate::lb::service::{
    LocalAddresses, RealServerId, SchedulerKind, ServerState, ServiceKey, VirtualService,
};
use crate::lb::sync::{sync_channel, SyncReport};
use crate::lb::tcp_state::State;
use crate::lb::xmit::Endpoint6;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const SEC: u64 = 1_000_000_000;
/// Flows of the consistency tests.
const FLOWS: u32 = 10_000;

fn rs(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, 10 + i)
}

fn vip6() -> Ipv6Addr {
    "2001:db8::10".parse().unwrap()
}

fn rs6(i: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10 + u16::from(i))
}

/// An IPv4 TCP service on VIP:80 with four real servers (weights 1 to 4).
fn service(forward: ForwardMethod, sched: SchedulerKind) -> VirtualService {
    VirtualService::new(
        "web",
        ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol: Protocol::Tcp,
        },
        forward,
        sched,
        (0..4).map(|i| (Endpoint::new(rs(i), 8080), u32::from(i) + 1)),
    )
}

/// The IPv6 twin of [`service`].
fn service6(forward: ForwardMethod, sched: SchedulerKind) -> VirtualService {
    VirtualService::new6(
        "web6",
        Endpoint6::new(vip6(), 80),
        Protocol::Tcp,
        forward,
        sched,
        (0..4).map(|i| (Endpoint6::new(rs6(i), 8080), u32::from(i) + 1)),
    )
}

/// A node's balancer: its own service table built from `services`, its
/// own seed and worker count (what differs between nodes and workers).
fn node(services: Vec<VirtualService>, seed: u64, workers: usize, midflow: bool) -> Balancer {
    Balancer::new(&BalancerSetup {
        services: Arc::new(ServiceTable::new(services)),
        timeouts: Timeouts::default(),
        conn_capacity: 2 * FLOWS as usize,
        seed,
    })
    .with_workers(workers)
    .with_midflow(midflow)
}

/// The `i`th client of the consistency tests (spread over the space).
fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from((mix64(u64::from(i)) as u32) | 1)
}

fn client6(i: u32) -> Ipv6Addr {
    let h = mix64(u64::from(i));
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        0x100,
        0,
        (h >> 48) as u16,
        (h >> 32) as u16,
        (h >> 16) as u16,
        h as u16 | 1,
    )
}

fn decide(b: &mut Balancer, src: Ipv4Addr, port: u16, flags: TcpFlags, now: u64) -> Decision {
    let key = FlowKey::new(src, port, VIP, 80, PROTO_TCP);
    let f = Flow {
        key,
        hash: b.flow_hash(&key),
        protocol: Protocol::Tcp,
        flags,
        bytes: 52,
    };
    b.decide(&f, now)
}

fn decide6(b: &mut Balancer, src: Ipv6Addr, port: u16, flags: TcpFlags, now: u64) -> Decision6 {
    let key = FlowKey6::new(src, port, vip6(), 80, PROTO_TCP);
    let f = Flow6 {
        key,
        hash: b.flow_hash6(&key),
        protocol: Protocol::Tcp,
        flags,
        bytes: 72,
    };
    b.decide6(&f, now)
}

/// The real server a decision sends the packet to, and whether it created
/// the connection.
fn opened(d: Decision) -> (Ipv4Addr, bool) {
    match d {
        Decision::ToRealServer { real, created, .. } => (real.ip, created),
        other => panic!("not to a real server: {other:?}"),
    }
}

fn opened6(d: Decision6) -> (Ipv6Addr, bool) {
    match d {
        Decision6::ToRealServer { real, created, .. } => (real.ip, created),
        other => panic!("not to a real server: {other:?}"),
    }
}

/// `services` with real server `down` held down by its health checks.
fn with_down(b: &Balancer, down: RealServerId) -> Arc<ServiceTable> {
    Arc::new(b.services().clone().with_server_state(|_, r| ServerState {
        down: r == down,
        ..ServerState::default()
    }))
}

// ---- what opens, and how ----

#[test]
fn without_the_setting_a_mid_flow_ack_opens_nothing_even_for_mh() {
    let mut b = node(
        vec![service(ForwardMethod::Nat, SchedulerKind::Mh)],
        1,
        1,
        false,
    );
    assert!(!b.midflow());
    assert_eq!(
        decide(&mut b, CLIENT, 1000, ACK, 1),
        Decision::Drop(Refusal::NoConnection)
    );
    assert_eq!((b.conn_count(), b.midflow_scheduled()), (0, 0));
}

#[test]
fn a_mid_flow_ack_opens_an_established_connection_and_is_counted() {
    for forward in [ForwardMethod::Nat, ForwardMethod::Dr, ForwardMethod::Tun] {
        for sched in [SchedulerKind::Mh, SchedulerKind::Sh] {
            let mut b = node(vec![service(forward, sched)], 1, 1, true);
            let (real, created) = opened(decide(&mut b, CLIENT, 1000, ACK, SEC));
            assert!(created, "{forward:?} {sched:?}");
            assert_eq!(b.midflow_scheduled(), 1);
            let (_, c) = b.conns().iter().next().expect("a connection");
            assert_eq!(c.state(), State::Established, "{forward:?} {sched:?}");
            // DR and TUN: replies bypass rvs, as for a SYN-made connection.
            assert_eq!(c.is_input_only(), !forward.sees_replies());
            // Not proven: a blind ACK flood makes only sheddable entries.
            assert!(!c.is_proven());
            let i = usize::from(c.rs);
            assert_eq!(rs(c.rs as u8), real);
            let counts = b.counters()[i];
            assert_eq!((counts.conns, counts.active, counts.inactive), (1, 1, 0));
            assert_eq!(counts.handshakes, 0, "no handshake was forwarded");
            // The next segment is a hit on it.
            assert_eq!(
                opened(decide(&mut b, CLIENT, 1000, ACK, 2 * SEC)),
                (real, false)
            );
            assert_eq!(b.midflow_scheduled(), 1);
        }
    }
}

#[test]
fn a_syn_is_not_counted_as_mid_flow() {
    let mut b = node(
        vec![service(ForwardMethod::Nat, SchedulerKind::Mh)],
        1,
        1,
        true,
    );
    assert!(opened(decide(&mut b, CLIENT, 1000, SYN, 1)).1);
    assert_eq!(b.midflow_scheduled(), 0);
}

#[test]
fn a_mid_flow_fin_opens_the_connection_closing() {
    let mut b = node(
        vec![service(ForwardMethod::Nat, SchedulerKind::Mh)],
        1,
        1,
        true,
    );
    assert!(opened(decide(&mut b, CLIENT, 1000, TcpFlags::FIN_ACK, 1)).1);
    let (_, c) = b.conns().iter().next().unwrap();
    assert_eq!(c.state(), State::CloseWait);
}

#[test]
fn a_nat_connection_opened_mid_flow_takes_the_servers_replies() {
    let mut b = node(
        vec![service(ForwardMethod::Nat, SchedulerKind::Mh)],
        1,
        1,
        true,
    );
    let (real, _) = opened(decide(&mut b, CLIENT, 1000, ACK, 1));
    let reply = FlowKey::new(real, 8080, CLIENT, 1000, PROTO_TCP);
    let f = Flow {
        key: reply,
        hash: b.flow_hash(&reply),
        protocol: Protocol::Tcp,
        flags: ACK,
        bytes: 52,
    };
    assert_eq!(
        b.decide(&f, 2),
        Decision::ToClient {
            vip: Endpoint::new(VIP, 80)
        }
    );
    let (_, c) = b.conns().iter().next().unwrap();
    assert!(c.is_proven(), "the server answered on it");
}

// ---- what is still refused ----

#[test]
fn a_mid_flow_ack_to_a_service_scheduled_by_history_is_refused() {
    for sched in [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
    ] {
        let mut b = node(vec![service(ForwardMethod::Nat, sched)], 1, 1, true);
        assert_eq!(
            decide(&mut b, CLIENT, 1000, ACK, 1),
            Decision::Drop(Refusal::NoConnection),
            "{sched:?}"
        );
        assert_eq!((b.conn_count(), b.midflow_scheduled()), (0, 0));
    }
}

#[test]
fn a_reset_a_syn_ack_or_a_segment_without_ack_for_no_connection_is_refused() {
    let mut b = node(
        vec![service(ForwardMethod::Dr, SchedulerKind::Mh)],
        1,
        1,
        true,
    );
    for flags in [
        TcpFlags::RST,
        TcpFlags::RST_ACK,
        TcpFlags::SYN_ACK,
        TcpFlags::FIN,
        TcpFlags::NONE,
    ] {
        assert_eq!(
            decide(&mut b, CLIENT, 1000, flags, 1),
            Decision::Drop(Refusal::NoConnection),
            "{flags:?}"
        );
    }
    assert_eq!((b.conn_count(), b.midflow_scheduled()), (0, 0));
}

#[test]
fn a_mid_flow_ack_to_a_fullnat_service_is_refused() {
    let mut s = service(ForwardMethod::FullNat, SchedulerKind::Mh);
    s.local = LocalAddresses {
        addresses: vec![Ipv4Addr::new(10, 2, 0, 100)],
        ports: (5000, 5009),
        ..LocalAddresses::default()
    };
    let mut b = node(vec![s], 1, 1, true);
    assert_eq!(
        decide(&mut b, CLIENT, 1000, ACK, 1),
        Decision::Drop(Refusal::NoConnection)
    );
    assert_eq!(b.conn_count(), 0);
}

#[test]
fn a_mid_flow_ack_to_a_service_with_state_armed_at_the_handshake_is_refused() {
    let mut proxied = service(ForwardMethod::Nat, SchedulerKind::Mh);
    proxied.syn_proxy = true;
    let mut carrying = service(ForwardMethod::Nat, SchedulerKind::Mh);
    carrying.client_address = Some(ClientAddress::ProxyV2);
    for s in [proxied, carrying] {
        let mut b = node(vec![s], 1, 1, true);
        // The SYN proxy says why (no cookie); either way nothing opens.
        assert!(matches!(
            decide(&mut b, CLIENT, 1000, ACK, 1),
            Decision::Drop(Refusal::NoConnection | Refusal::BadCookie)
        ));
        assert_eq!((b.conn_count(), b.midflow_scheduled()), (0, 0));
    }
}

#[test]
fn the_admission_limits_refuse_a_mid_flow_ack_as_a_syn() {
    let mut denied = service(ForwardMethod::Nat, SchedulerKind::Mh);
    denied.limits = ServiceLimits {
        acl: Acl::new(Vec::new(), vec!["198.51.100.0/24".parse().unwrap()]),
        ..ServiceLimits::default()
    };
    let mut b = node(vec![denied], 1, 1, true);
    assert_eq!(
        decide(&mut b, CLIENT, 1000, ACK, 1),
        Decision::Drop(Refusal::AclDenied)
    );
    assert_eq!(b.refused()[0][LimitRefusal::AclDenied as usize], 1);

    let mut limited = service(ForwardMethod::Nat, SchedulerKind::Mh);
    limited.limits = ServiceLimits {
        rate: Some(Rate {
            per_second: 1,
            burst: 1,
        }),
        ..ServiceLimits::default()
    };
    let mut b = node(vec![limited], 1, 1, true);
    assert!(opened(decide(&mut b, CLIENT, 1000, ACK, 1)).1);
    assert_eq!(
        decide(&mut b, CLIENT, 1001, ACK, 2),
        Decision::Drop(Refusal::RateLimited)
    );
    assert_eq!(b.midflow_scheduled(), 1);
}

// ---- sync ----

#[test]
fn a_connection_opened_mid_flow_is_reported_as_a_new_one() {
    let mut b = node(
        vec![service(ForwardMethod::Dr, SchedulerKind::Mh)],
        1,
        1,
        true,
    );
    let (queue, collector) = sync_channel();
    b.set_sync(queue, true);
    let (real, _) = opened(decide(&mut b, CLIENT, 1000, ACK, 1));
    decide(&mut b, CLIENT, 1000, ACK, 2); // no change: no second report
    b.tick(3);
    let mut events = Vec::new();
    collector.drain(|e| {
        if let SyncReport::V4(e) = e {
            events.push(*e)
        }
    });
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events[0];
    assert_eq!(e.state, State::Established);
    assert!(e.input_only);
    assert_eq!(e.client, Endpoint::new(CLIENT, 1000));
    assert_eq!(e.real, Endpoint::new(real, 8080));
}

#[test]
fn an_ipv6_connection_opened_mid_flow_is_reported_as_a_new_one() {
    let mut b = node(
        vec![service6(ForwardMethod::Nat, SchedulerKind::Mh)],
        1,
        1,
        true,
    );
    let (queue, collector) = sync_channel();
    b.set_sync(queue, true);
    let c = client6(1);
    let (real, _) = opened6(decide6(&mut b, c, 1000, ACK, 1));
    b.tick(2);
    let mut events = Vec::new();
    collector.drain(|e| {
        if let SyncReport::V6(e) = e {
            events.push(*e)
        }
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].state, State::Established);
    assert_eq!(events[0].real, Endpoint6::new(real, 8080));
}

// ---- consistency between nodes ----

/// Two nodes built apart choose alike for every flow, and a third that
/// never saw the SYNs sends each flow's mid-flow ACK where the first sent
/// its SYN; again once the same server is down on all three.
#[test]
fn nodes_built_apart_schedule_every_flow_alike_and_mid_flow_follows() {
    for sched in [SchedulerKind::Mh, SchedulerKind::Sh] {
        let services = || vec![service(ForwardMethod::Dr, sched)];
        let mut a = node(services(), 1, 1, true);
        let mut b = node(services(), 0xfeed_beef, 4, true);
        let mut c = node(services(), 77, 2, true);
        // B sees the flows in the reverse order: no dependence on history.
        let mut on_b = vec![Ipv4Addr::UNSPECIFIED; FLOWS as usize];
        for i in (0..FLOWS).rev() {
            on_b[i as usize] = opened(decide(&mut b, client(i), 1000, SYN, 1)).0;
        }
        let mut first = Vec::with_capacity(FLOWS as usize);
        for i in 0..FLOWS {
            let (on_a, _) = opened(decide(&mut a, client(i), 1000, SYN, 1));
            assert_eq!(on_a, on_b[i as usize], "{sched:?} flow {i}");
            let (on_c, created) = opened(decide(&mut c, client(i), 1000, ACK, 1));
            assert!(created);
            assert_eq!(on_c, on_a, "{sched:?} mid-flow {i}");
            first.push(on_a);
        }
        assert_eq!(c.midflow_scheduled(), u64::from(FLOWS));
        // Every server took some: the check is not over one server.
        for i in 0..4 {
            assert!(first.contains(&rs(i)), "{sched:?} server {i} took none");
        }

        // The same server out of rotation on every node: new flows still
        // alike, none to it, and the others' clients stay where they were.
        let down = 3;
        for n in [&mut a, &mut b, &mut c] {
            n.set_services(with_down(n, down));
        }
        for i in 0..FLOWS {
            let (on_a, _) = opened(decide(&mut a, client(i), 2000, SYN, 2));
            let (on_b, _) = opened(decide(&mut b, client(i), 2000, SYN, 2));
            let (on_c, _) = opened(decide(&mut c, client(i), 2000, ACK, 2));
            assert_eq!((on_b, on_c), (on_a, on_a), "{sched:?} flow {i}");
            assert_ne!(on_a, rs(down as u8));
            if first[i as usize] != rs(down as u8) {
                assert_eq!(on_a, first[i as usize], "{sched:?} flow {i} moved");
            }
        }
    }
}

#[test]
fn ipv6_nodes_built_apart_schedule_every_flow_alike_and_mid_flow_follows() {
    for sched in [SchedulerKind::Mh, SchedulerKind::Sh] {
        let services = || vec![service6(ForwardMethod::Nat, sched)];
        let mut a = node(services(), 1, 1, true);
        let mut b = node(services(), 0xfeed_beef, 4, true);
        let mut c = node(services(), 77, 2, true);
        let mut on_b = vec![Ipv6Addr::UNSPECIFIED; FLOWS as usize];
        for i in (0..FLOWS).rev() {
            on_b[i as usize] = opened6(decide6(&mut b, client6(i), 1000, SYN, 1)).0;
        }
        let mut first = Vec::with_capacity(FLOWS as usize);
        for i in 0..FLOWS {
            let (on_a, _) = opened6(decide6(&mut a, client6(i), 1000, SYN, 1));
            assert_eq!(on_a, on_b[i as usize], "{sched:?} flow {i}");
            let (on_c, created) = opened6(decide6(&mut c, client6(i), 1000, ACK, 1));
            assert!(created);
            assert_eq!(on_c, on_a, "{sched:?} mid-flow {i}");
            first.push(on_a);
        }
        assert_eq!(c.midflow_scheduled(), u64::from(FLOWS));
        for i in 0..4 {
            assert!(first.contains(&rs6(i)), "{sched:?} server {i} took none");
        }
        let down = 0;
        for n in [&mut a, &mut b, &mut c] {
            n.set_services(with_down(n, down));
        }
        for i in 0..FLOWS {
            let (on_a, _) = opened6(decide6(&mut a, client6(i), 2000, SYN, 2));
            let (on_b, _) = opened6(decide6(&mut b, client6(i), 2000, SYN, 2));
            let (on_c, _) = opened6(decide6(&mut c, client6(i), 2000, ACK, 2));
            assert_eq!((on_b, on_c), (on_a, on_a), "{sched:?} flow {i}");
            assert_ne!(on_a, rs6(down as u8));
            if first[i as usize] != rs6(down as u8) {
                assert_eq!(on_a, first[i as usize], "{sched:?} flow {i} moved");
            }
        }
    }
}

// ---- IPv6: what is still refused ----

#[test]
fn ipv6_mid_flow_is_refused_for_rr_for_a_reset_and_for_fullnat() {
    let mut b = node(
        vec![service6(ForwardMethod::Nat, SchedulerKind::Rr)],
        1,
        1,
        true,
    );
    assert_eq!(
        decide6(&mut b, client6(1), 1000, ACK, 1),
        Decision6::Drop(Refusal::NoConnection)
    );
    let mut b = node(
        vec![service6(ForwardMethod::Dr, SchedulerKind::Mh)],
        1,
        1,
        true,
    );
    assert_eq!(
        decide6(&mut b, client6(1), 1000, TcpFlags::RST, 1),
        Decision6::Drop(Refusal::NoConnection)
    );
    let mut s = service6(ForwardMethod::FullNat, SchedulerKind::Mh);
    s.local = LocalAddresses {
        addresses6: vec!["2001:db8:3::100".parse().unwrap()],
        ports: (5000, 5009),
        ..LocalAddresses::default()
    };
    let mut b = node(vec![s], 1, 1, true);
    assert_eq!(
        decide6(&mut b, client6(1), 1000, ACK, 1),
        Decision6::Drop(Refusal::NoConnection)
    );
    assert_eq!((b.conn_count6(), b.midflow_scheduled()), (0, 0));
}

#[test]
fn an_ipv6_mid_flow_ack_opens_an_established_input_only_dr_connection() {
    let mut b = node(
        vec![service6(ForwardMethod::Dr, SchedulerKind::Sh)],
        1,
        1,
        true,
    );
    let (_, created) = opened6(decide6(&mut b, client6(1), 1000, ACK, 1));
    assert!(created);
    let (_, c) = b.conns6().iter().next().unwrap();
    assert_eq!(c.state(), State::Established);
    assert!(c.is_input_only());
    assert_eq!(b.midflow_scheduled(), 1);
}
