//! IPv4-in-IPv6 TUN in the balancer: an IPv4 service whose real servers
//! are reached over IPv6 decides its client packets as
//! `Tun6ToRealServer`, its connections in the IPv4 table under the
//! reversed tuple, as any TUN connection.

use super::tests::{balancer, flow};
use super::*;
use crate::lb::service::{SchedulerKind, ServiceKey, Tunnel6, VirtualService};
use crate::lb::xmit::Endpoint6;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);

fn rs6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, last)
}

fn key() -> ServiceKey {
    ServiceKey {
        vip: Endpoint::new(VIP, 80),
        protocol: Protocol::Tcp,
    }
}

fn tun46() -> VirtualService {
    VirtualService::new_tun46(
        "web",
        key(),
        SchedulerKind::Rr,
        [(Endpoint6::new(rs6(11), 80), 1)],
    )
}

fn to_vip(sport: u16) -> FlowKey {
    FlowKey::new(CLIENT, sport, VIP, 80, 6)
}

#[test]
fn a_client_packet_goes_to_the_ipv6_tunnel_end_of_its_real_server() {
    let mut b = balancer(vec![tun46()]);
    let d = b.decide(&flow(&b, to_vip(1000), SYN), 1);
    assert_eq!(
        d,
        Decision::Tun6ToRealServer {
            real: rs6(11),
            created: true
        }
    );
    let d = b.decide(&flow(&b, to_vip(1000), ACK), 2);
    assert_eq!(
        d,
        Decision::Tun6ToRealServer {
            real: rs6(11),
            created: false
        }
    );
    assert_eq!(b.conn_count(), 1);
}

#[test]
fn the_connection_is_kept_in_the_ipv4_table_under_the_reversed_tuple() {
    let mut b = balancer(vec![tun46()]);
    b.decide(&flow(&b, to_vip(1000), SYN), 1);
    let reversed = to_vip(1000).reversed();
    assert!(b.conns.peek(&reversed, 2).is_some());
    assert_eq!(b.conns6.len(), 0);
}

#[test]
fn a_server_reached_over_ipv4_in_the_same_service_is_tunnelled_over_ipv4() {
    let mut s = VirtualService::new(
        "web",
        key(),
        ForwardMethod::Tun,
        SchedulerKind::Rr,
        [
            (Endpoint::new(Ipv4Addr::UNSPECIFIED, 80), 1),
            (Endpoint::new(Ipv4Addr::new(10, 1, 0, 12), 80), 1),
        ],
    );
    s.tunnel6 = Some(Tunnel6 {
        real_servers: vec![rs6(11), Ipv6Addr::UNSPECIFIED],
        sorry_server: None,
    });
    let mut b = balancer(vec![s]);
    let mut seen = Vec::new();
    for port in 1000..1002 {
        seen.push(b.decide(&flow(&b, to_vip(port), SYN), 1));
    }
    assert!(seen.contains(&Decision::Tun6ToRealServer {
        real: rs6(11),
        created: true
    }));
    assert!(seen.contains(&Decision::ToRealServer {
        method: ForwardMethod::Tun,
        real: Endpoint::new(Ipv4Addr::new(10, 1, 0, 12), 80),
        created: true
    }));
}

#[test]
fn an_ipv6_sorry_server_takes_new_connections_through_the_tunnel() {
    let mut s = tun46();
    s.real_servers[0].weight = 0;
    s.sorry_server = Some(Endpoint::new(Ipv4Addr::UNSPECIFIED, 80));
    s.tunnel6.as_mut().unwrap().sorry_server = Some(rs6(99));
    let mut b = balancer(vec![s]);
    let d = b.decide(&flow(&b, to_vip(1000), SYN), 1);
    assert_eq!(
        d,
        Decision::Tun6ToRealServer {
            real: rs6(99),
            created: true
        }
    );
}

#[test]
fn an_icmp_error_toward_a_tunnelled_server_names_no_ipv4_address() {
    let mut b = balancer(vec![tun46()]);
    b.decide(&flow(&b, to_vip(1000), SYN), 1);
    // The worker drops such a route (no IPv4 tunnel end to send it to).
    match b.icmp_error(&to_vip(1000), 2) {
        Ok(IcmpRoute::ToRealServer { real, .. }) => assert!(real.ip.is_unspecified()),
        other => panic!("{other:?}"),
    }
}
