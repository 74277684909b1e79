//! The handshakes the balancer forwards, counted per real server for the
//! passive checks (`lb::handshake`): one outcome per handshake, decided
//! by the server's SYN-ACK or reset, or by the timeout.

use super::tests::{self, flow};
use super::*;
use crate::lb::service::{SchedulerKind, ServiceKey, VirtualService};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const RS: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const MS: u64 = 1_000_000;
/// The service's `syn_timeout_ms`.
const TIMEOUT_MS: u32 = 1000;

fn service(forward: ForwardMethod) -> VirtualService {
    let mut s = VirtualService::new(
        "web",
        ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol: Protocol::Tcp,
        },
        forward,
        SchedulerKind::Rr,
        [(
            Endpoint::new(
                RS,
                if forward == ForwardMethod::Nat {
                    8080
                } else {
                    80
                },
            ),
            1,
        )],
    );
    s.syn_timeout_ms = TIMEOUT_MS;
    s
}

fn balancer(forward: ForwardMethod) -> Balancer {
    tests::balancer(vec![service(forward)])
}

/// The client's segment with `flags` at `ms` milliseconds.
fn client(b: &mut Balancer, flags: TcpFlags, ms: u64) -> Decision {
    let f = flow(b, FlowKey::new(CLIENT, 1000, VIP, 80, PROTO_TCP), flags);
    b.decide(&f, ms * MS)
}

/// The real server's segment with `flags` at `ms` milliseconds (NAT).
fn server(b: &mut Balancer, flags: TcpFlags, ms: u64) -> Decision {
    let f = flow(b, FlowKey::new(RS, 8080, CLIENT, 1000, PROTO_TCP), flags);
    b.decide(&f, ms * MS)
}

/// (handshakes, ok, timeouts, resets) of the one real server.
fn counts(b: &Balancer) -> (u64, u64, u64, u64) {
    let c = b.counters()[0];
    (
        c.handshakes,
        c.handshake_ok,
        c.handshake_timeouts,
        c.handshake_resets,
    )
}

#[test]
fn a_syn_ack_completes_the_handshake_once() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    assert_eq!(counts(&b), (1, 0, 0, 0), "attempted, undecided");
    server(&mut b, TcpFlags::SYN_ACK, 11);
    assert_eq!(counts(&b), (1, 1, 0, 0));
    // A retransmitted SYN-ACK and the rest of the connection count nothing.
    server(&mut b, TcpFlags::SYN_ACK, 12);
    client(&mut b, TcpFlags::ACK, 2000);
    assert_eq!(counts(&b), (1, 1, 0, 0));
}

#[test]
fn a_reset_from_the_server_during_the_handshake_is_counted() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    server(&mut b, TcpFlags::RST_ACK, 11);
    assert_eq!(counts(&b), (1, 0, 0, 1));
}

#[test]
fn a_reset_after_the_handshake_is_no_handshake_failure() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    server(&mut b, TcpFlags::SYN_ACK, 11);
    server(&mut b, TcpFlags::RST, 12);
    assert_eq!(counts(&b), (1, 1, 0, 0));
}

#[test]
fn a_syn_retransmitted_before_the_timeout_counts_nothing() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    client(&mut b, TcpFlags::SYN, 10 + u64::from(TIMEOUT_MS) - 1);
    assert_eq!(counts(&b), (1, 0, 0, 0));
}

#[test]
fn syns_retransmitted_after_the_timeout_count_one_timeout() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    client(&mut b, TcpFlags::SYN, 1010);
    client(&mut b, TcpFlags::SYN, 3010);
    assert_eq!(counts(&b), (1, 0, 1, 0));
    // Its late SYN-ACK is not counted again.
    server(&mut b, TcpFlags::SYN_ACK, 3011);
    assert_eq!(counts(&b), (1, 0, 1, 0));
}

#[test]
fn a_connection_expiring_while_waiting_counts_a_timeout() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    // Past the SYN_RECV timeout, the sweep (a second's worth) reclaims it.
    let later = Timeouts::default().tcp(tcp_state::State::SynRecv) / MS + 10;
    b.tick(later * MS);
    b.tick((later + 2000) * MS);
    assert_eq!(b.conn_count(), 0);
    assert_eq!(counts(&b), (1, 0, 1, 0));
}

#[test]
fn a_client_reset_before_the_timeout_abandons_the_handshake() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    // The client gives up at once: neither ok nor failed, and its later
    // segments on the tuple time nothing out.
    client(&mut b, TcpFlags::RST, 20);
    client(&mut b, TcpFlags::SYN, 1500);
    assert_eq!(counts(&b), (1, 0, 0, 0));
}

#[test]
fn a_server_going_down_ends_a_waiting_connection_as_a_timeout_when_old() {
    let mut b = balancer(ForwardMethod::Nat);
    client(&mut b, TcpFlags::SYN, 10);
    let down = b
        .services()
        .clone()
        .with_server_state(|_, _| crate::lb::service::ServerState {
            down: true,
            weight: None,
            ramp: None,
        });
    b.set_services(Arc::new(down));
    // expire_nodest_conn removes it on the client's retransmitted SYN.
    client(&mut b, TcpFlags::SYN, 1100);
    assert_eq!(counts(&b), (1, 0, 1, 0));
}

#[test]
fn dr_connections_count_no_handshakes() {
    let mut b = balancer(ForwardMethod::Dr);
    client(&mut b, TcpFlags::SYN, 10);
    client(&mut b, TcpFlags::SYN, 2000);
    assert_eq!(counts(&b), (0, 0, 0, 0));
}

#[test]
fn the_syn_proxys_own_syn_is_the_attempt_and_the_servers_syn_ack_completes_it() {
    let mut s = service(ForwardMethod::Nat);
    s.syn_proxy = true;
    let mut b = Balancer::new(&BalancerSetup {
        services: Arc::new(ServiceTable::new(vec![s])),
        timeouts: Timeouts::default(),
        conn_capacity: 64,
        seed: 0,
    });
    let key = FlowKey::new(CLIENT, 1000, VIP, 80, PROTO_TCP);
    let syn = Segment {
        seq: 77,
        mss: Some(1460),
        ..Segment::default()
    };
    let f = flow(&b, key, TcpFlags::SYN);
    let Decision::SynCookie { cookie, .. } = b.decide_segment(&f, || syn, MS) else {
        panic!("no cookie");
    };
    assert_eq!(counts(&b), (0, 0, 0, 0), "a cookie is no attempt");
    let ack = Segment {
        seq: 78,
        ack: cookie.wrapping_add(1),
        window: 1000,
        mss: None,
    };
    let f = flow(&b, key, TcpFlags::ACK);
    b.decide_segment(&f, || ack, 2 * MS);
    assert_eq!(counts(&b), (1, 0, 0, 0));
    let reply = flow(
        &b,
        FlowKey::new(RS, 8080, CLIENT, 1000, PROTO_TCP),
        TcpFlags::SYN_ACK,
    );
    let seg = Segment {
        seq: 5000,
        ack: 78,
        window: 1000,
        mss: None,
    };
    b.decide_segment(&reply, || seg, 3 * MS);
    assert_eq!(counts(&b), (1, 1, 0, 0));
}

/// A balancer whose table holds one connection.
fn tiny() -> Balancer {
    Balancer::new(&BalancerSetup {
        services: Arc::new(ServiceTable::new(vec![service(ForwardMethod::Nat)])),
        timeouts: Timeouts::default(),
        conn_capacity: 1,
        seed: 0,
    })
}

/// A SYN from client port `sport` at `ms`.
fn syn_from(b: &mut Balancer, sport: u16, ms: u64) -> Decision {
    let f = flow(
        b,
        FlowKey::new(CLIENT, sport, VIP, 80, PROTO_TCP),
        TcpFlags::SYN,
    );
    b.decide(&f, ms * MS)
}

#[test]
fn a_waiting_connection_evicted_past_the_timeout_counts_a_timeout() {
    let mut b = tiny();
    syn_from(&mut b, 1000, 10);
    syn_from(&mut b, 1001, 1500);
    assert_eq!(b.conn_count(), 1, "the first made room for the second");
    assert_eq!(counts(&b), (2, 0, 1, 0));
}

#[test]
fn a_waiting_connection_evicted_young_counts_nothing() {
    let mut b = tiny();
    syn_from(&mut b, 1000, 10);
    syn_from(&mut b, 1001, 500);
    assert_eq!(counts(&b), (2, 0, 0, 0));
}
