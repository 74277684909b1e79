//! The admission limits at the balancer: each refuses before any state is
//! made, says why, and lets the connection through once the limit allows.

use super::*;
use crate::lb::acl::Acl;
use crate::lb::limits::{ClientLimit, Rate, ServiceLimits, Thresholds};
use crate::lb::service::{SchedulerKind, ServiceKey, VirtualService};
use crate::wire::Ipv4Cidr;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const RS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 11), Ipv4Addr::new(10, 1, 0, 12)];
const SORRY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 99);
const SYN: TcpFlags = TcpFlags(0x02);
const SEC: u64 = 1_000_000_000;
/// Long after any connection of a test has expired.
const LATER: u64 = 1_000 * SEC;

fn client(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, last)
}

fn service(limits: ServiceLimits, upper: u32, lower: u32) -> VirtualService {
    let mut s = VirtualService::new(
        "web",
        ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        RS.iter().map(|&ip| (Endpoint::new(ip, 8080), 1)),
    );
    s.limits = limits;
    for r in &mut s.real_servers {
        r.thresholds = Thresholds { upper, lower };
    }
    s
}

fn table(s: VirtualService) -> Arc<ServiceTable> {
    Arc::new(ServiceTable::new(vec![s]))
}

fn balancer(s: VirtualService) -> Balancer {
    Balancer::new(&BalancerSetup {
        services: table(s),
        timeouts: Timeouts::default(),
        conn_capacity: 64,
        seed: 0,
    })
}

fn syn(b: &mut Balancer, from: Ipv4Addr, port: u16, now: u64) -> Decision {
    let key = FlowKey::new(from, port, VIP, 80, 6);
    let f = Flow {
        key,
        hash: b.flow_hash(&key),
        protocol: Protocol::Tcp,
        flags: SYN,
        bytes: 40,
    };
    b.decide(&f, now)
}

fn created(d: Decision) -> bool {
    matches!(d, Decision::ToRealServer { created: true, .. })
}

fn cidrs(list: &[&str]) -> Vec<Ipv4Cidr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn acl(allow: &[&str], deny: &[&str]) -> ServiceLimits {
    ServiceLimits {
        acl: Acl::new(cidrs(allow), cidrs(deny)),
        ..ServiceLimits::default()
    }
}

fn rate(per_second: u32, burst: u32) -> ServiceLimits {
    ServiceLimits {
        rate: Some(Rate { per_second, burst }),
        ..ServiceLimits::default()
    }
}

fn per_client(max_conns: u32, prefix_len: u8) -> ServiceLimits {
    ServiceLimits {
        per_client: Some(ClientLimit {
            max_conns,
            prefix_len,
        }),
        ..ServiceLimits::default()
    }
}

/// Lets the sweep reclaim every expired connection.
fn expire_all(b: &mut Balancer, now: u64) {
    for s in 0..4 {
        b.tick(now + s * SEC);
    }
    assert_eq!(b.conn_count(), 0, "every connection expired");
}

#[test]
fn a_denied_client_is_refused_before_any_connection_is_made() {
    let mut b = balancer(service(acl(&[], &["198.51.100.0/28"]), 0, 0));
    assert_eq!(
        syn(&mut b, client(7), 1000, 1),
        Decision::Drop(Refusal::AclDenied)
    );
    assert_eq!(b.conn_count(), 0);
    assert!(created(syn(&mut b, client(77), 1000, 1)));
}

#[test]
fn an_allow_list_admits_only_its_clients() {
    let mut b = balancer(service(acl(&["198.51.100.64/26"], &[]), 0, 0));
    assert!(created(syn(&mut b, client(70), 1000, 1)));
    assert_eq!(
        syn(&mut b, client(7), 1000, 1),
        Decision::Drop(Refusal::AclDenied)
    );
}

#[test]
fn the_rate_limit_admits_the_burst_then_the_rate() {
    let mut b = balancer(service(rate(2, 3), 0, 0));
    let admitted = (0..5)
        .filter(|&p| created(syn(&mut b, client(1), 1000 + p, 1)))
        .count();
    assert_eq!(admitted, 3);
    assert_eq!(
        syn(&mut b, client(1), 2000, 1),
        Decision::Drop(Refusal::RateLimited)
    );
    assert_eq!(b.conn_count(), 3, "a refused SYN makes no connection");
    // Half a second later: one token at 2/s.
    assert!(created(syn(&mut b, client(1), 2001, 1 + SEC / 2)));
    assert!(!created(syn(&mut b, client(1), 2002, 1 + SEC / 2)));
}

#[test]
fn packets_of_admitted_connections_take_no_token() {
    let mut b = balancer(service(rate(1, 1), 0, 0));
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    // The client's retransmitted SYN belongs to its connection.
    assert!(matches!(
        syn(&mut b, client(1), 1000, 2),
        Decision::ToRealServer { created: false, .. }
    ));
}

#[test]
fn each_worker_holds_its_share_of_the_rate() {
    let mut b = balancer(service(rate(10, 10), 0, 0)).with_workers(2);
    let admitted = (0..10)
        .filter(|&p| created(syn(&mut b, client(1), 1000 + p, 1)))
        .count();
    assert_eq!(admitted, 5);
}

#[test]
fn a_client_prefix_at_its_limit_is_refused_until_a_connection_ends() {
    let mut b = balancer(service(per_client(2, 24), 0, 0));
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    assert!(created(syn(&mut b, client(2), 1000, 1)));
    assert_eq!(
        syn(&mut b, client(3), 1000, 1),
        Decision::Drop(Refusal::ClientLimit),
        "198.51.100.0/24 holds 2"
    );
    assert!(created(syn(&mut b, Ipv4Addr::new(192, 0, 2, 1), 1000, 1)));
    expire_all(&mut b, LATER);
    assert!(created(syn(&mut b, client(3), 1000, LATER + 5 * SEC)));
}

#[test]
fn an_expired_connection_met_by_a_packet_frees_its_client_slot() {
    let mut b = balancer(service(per_client(1, 32), 0, 0));
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    assert!(!created(syn(&mut b, client(1), 1001, 2)));
    // Long expired, not yet swept: the client's SYN on the same ports
    // reclaims it, and takes its place.
    assert!(created(syn(&mut b, client(1), 1000, LATER)));
}

#[test]
fn a_reload_that_regroups_clients_recounts_them() {
    let mut b = balancer(service(per_client(1, 32), 0, 0));
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    assert!(created(syn(&mut b, client(2), 1000, 1)));
    b.set_services(table(service(per_client(2, 24), 0, 0)));
    assert_eq!(
        syn(&mut b, client(3), 1000, 2),
        Decision::Drop(Refusal::ClientLimit),
        "the two live connections count under /24"
    );
}

#[test]
fn a_limit_added_by_a_reload_counts_the_connections_already_there() {
    let mut b = balancer(service(ServiceLimits::default(), 0, 0));
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    b.set_services(table(service(per_client(1, 32), 0, 0)));
    assert_eq!(
        syn(&mut b, client(1), 1001, 2),
        Decision::Drop(Refusal::ClientLimit)
    );
}

#[test]
fn a_reload_applies_new_limits_to_new_connections_only() {
    let mut b = balancer(service(ServiceLimits::default(), 0, 0));
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    b.set_services(table(service(acl(&[], &["198.51.100.1/32"]), 0, 0)));
    assert!(matches!(
        syn(&mut b, client(1), 1000, 2),
        Decision::ToRealServer { created: false, .. }
    ));
    assert_eq!(
        syn(&mut b, client(1), 1001, 2),
        Decision::Drop(Refusal::AclDenied)
    );
}

#[test]
fn servers_at_their_upper_threshold_take_no_new_connections() {
    let mut b = balancer(service(ServiceLimits::default(), 1, 0));
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    assert!(created(syn(&mut b, client(2), 1000, 1)));
    let per_server: Vec<u32> = b.counters().iter().map(|c| c.inactive).collect();
    assert_eq!(per_server, [1, 1], "one each, then both overloaded");
    assert_eq!(
        syn(&mut b, client(3), 1000, 1),
        Decision::Drop(Refusal::Overloaded)
    );
    assert_eq!(b.conn_count(), 2);
    expire_all(&mut b, LATER);
    assert!(created(syn(&mut b, client(3), 1000, LATER + 5 * SEC)));
}

#[test]
fn an_overloaded_server_is_passed_over_for_one_with_room() {
    let mut s = service(ServiceLimits::default(), 0, 0);
    s.real_servers[0].thresholds = Thresholds { upper: 1, lower: 0 };
    let mut b = balancer(s);
    let reals: Vec<Endpoint> = (0..4)
        .map(|p| match syn(&mut b, client(1), 1000 + p, 1) {
            Decision::ToRealServer { real, .. } => real,
            other => panic!("{other:?}"),
        })
        .collect();
    let to_first = reals.iter().filter(|r| r.ip == RS[0]).count();
    assert_eq!(to_first, 1);
}

#[test]
fn an_overloaded_server_recovers_only_below_its_lower_threshold() {
    let mut s = service(ServiceLimits::default(), 0, 0);
    // Only the first server; the second drained.
    s.real_servers[1].weight = 0;
    s.real_servers[0].thresholds = Thresholds { upper: 3, lower: 2 };
    let mut b = balancer(s);
    // Three connections at different times, so they expire one by one.
    let tcp_syn = Timeouts::default().tcp(tcp_state::State::SynRecv);
    for (i, at) in [1, 10 * SEC, 20 * SEC].into_iter().enumerate() {
        assert!(created(syn(&mut b, client(1), 1000 + i as u16, at)));
    }
    assert_eq!(
        syn(&mut b, client(2), 1000, 21 * SEC),
        Decision::Drop(Refusal::Overloaded)
    );
    // The first expired: 2 left, not below the lower threshold.
    let now = tcp_syn + SEC;
    b.tick(now);
    b.tick(now + SEC);
    assert_eq!(b.conn_count(), 2);
    assert_eq!(
        syn(&mut b, client(2), 1001, now + SEC),
        Decision::Drop(Refusal::Overloaded)
    );
    // The second expired: 1 left, below 2.
    let now = tcp_syn + 12 * SEC;
    b.tick(now);
    b.tick(now + SEC);
    assert_eq!(b.conn_count(), 1);
    assert!(created(syn(&mut b, client(2), 1002, now + SEC)));
}

#[test]
fn the_sorry_server_takes_what_overloaded_servers_cannot() {
    let mut s = service(ServiceLimits::default(), 1, 0);
    s.sorry_server = Some(Endpoint::new(SORRY, 8080));
    let mut b = balancer(s);
    syn(&mut b, client(1), 1000, 1);
    syn(&mut b, client(2), 1000, 1);
    match syn(&mut b, client(3), 1000, 1) {
        Decision::ToRealServer { real, .. } => assert_eq!(real.ip, SORRY),
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_worker_holds_its_share_of_the_thresholds() {
    let mut s = service(ServiceLimits::default(), 0, 0);
    s.real_servers[1].weight = 0;
    s.real_servers[0].thresholds = Thresholds { upper: 4, lower: 0 };
    let mut b = balancer(s).with_workers(2);
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    assert!(created(syn(&mut b, client(1), 1001, 1)));
    assert_eq!(
        syn(&mut b, client(1), 1002, 1),
        Decision::Drop(Refusal::Overloaded)
    );
}

#[test]
fn a_reload_that_raises_the_threshold_lifts_the_overload() {
    let mut s = service(ServiceLimits::default(), 0, 0);
    s.real_servers[1].weight = 0;
    s.real_servers[0].thresholds = Thresholds { upper: 1, lower: 0 };
    let mut b = balancer(s.clone());
    assert!(created(syn(&mut b, client(1), 1000, 1)));
    assert!(!created(syn(&mut b, client(1), 1001, 1)));
    s.real_servers[0].thresholds = Thresholds { upper: 2, lower: 0 };
    b.set_services(table(s));
    assert!(created(syn(&mut b, client(1), 1002, 2)));
}

#[test]
fn a_persistent_client_of_an_overloaded_server_is_scheduled_elsewhere() {
    let mut s = service(ServiceLimits::default(), 0, 0);
    s.persistence = Some(std::time::Duration::from_secs(300));
    s.real_servers[0].thresholds = Thresholds { upper: 1, lower: 0 };
    s.real_servers[1].thresholds = Thresholds { upper: 9, lower: 0 };
    let mut b = balancer(s);
    let first = match syn(&mut b, client(1), 1000, 1) {
        Decision::ToRealServer { real, .. } => real,
        other => panic!("{other:?}"),
    };
    let second = match syn(&mut b, client(1), 1001, 1) {
        Decision::ToRealServer { real, .. } => real,
        other => panic!("{other:?}"),
    };
    if first.ip == RS[0] {
        assert_eq!(second.ip, RS[1], "its server is overloaded");
    } else {
        assert_eq!(second, first, "its server has room");
    }
}

fn packet(b: &mut Balancer, key: FlowKey, flags: TcpFlags, now: u64) -> Decision {
    let f = Flow {
        key,
        hash: b.flow_hash(&key),
        protocol: Protocol::Tcp,
        flags,
        bytes: 40,
    };
    b.decide(&f, now)
}

#[test]
fn a_closing_connection_no_longer_holds_its_client_place() {
    const ACK: TcpFlags = TcpFlags(0x10);
    const SYN_ACK: TcpFlags = TcpFlags(0x12);
    const FIN_ACK: TcpFlags = TcpFlags(0x11);
    let mut b = balancer(service(per_client(1, 32), 0, 0));
    let real = match syn(&mut b, client(1), 1000, 1) {
        Decision::ToRealServer { real, .. } => real,
        other => panic!("{other:?}"),
    };
    let out = FlowKey::new(client(1), 1000, VIP, 80, 6);
    let back = FlowKey::new(real.ip, real.port, client(1), 1000, 6);
    packet(&mut b, back, SYN_ACK, 2);
    packet(&mut b, out, ACK, 3);
    assert_eq!(
        syn(&mut b, client(1), 1001, 4),
        Decision::Drop(Refusal::ClientLimit),
        "established: it holds the client's one place"
    );
    packet(&mut b, out, FIN_ACK, 5);
    assert_eq!(b.conn_count(), 1, "still in the table, closing");
    assert!(created(syn(&mut b, client(1), 1001, 6)));
}
