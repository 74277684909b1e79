//! Issue 20: cluster nodes with the same configuration send every flow of
//! an `sh` or `mh` service to the same real server, so that a flow the
//! router's ECMP moves to another node mid-way (its first segment there
//! an ACK) reaches the server that holds it. Each node here parses the
//! configuration text itself and builds its services, as rvsd does at
//! start; the nodes differ in what differs between machines (the seed,
//! the worker count) and in the order their flows come.

use rvs::control::config::Config;
use rvs::lb::balancer::{Balancer, BalancerSetup, Decision, Flow};
use rvs::lb::conn::FlowKey;
use rvs::lb::service::Protocol;
use rvs::lb::tcp_state::{TcpFlags, Timeouts};
use std::net::Ipv4Addr;
use std::sync::Arc;

const FLOWS: u32 = 10_000;
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);

const CONFIG: &str = r#"
[dpdk]
eal_args = ["-l", "0-1"]
workers = [1]

[[interface]]
name = "lan"
device = "net_tap0"
addresses = ["203.0.113.2/24"]

[[virtual_server]]
name = "maglev"
address = "203.0.113.100:80"
protocol = "tcp"
scheduler = "mh"
forward = "dr"

  [[virtual_server.real_server]]
  address = "203.0.113.11:80"

  [[virtual_server.real_server]]
  address = "203.0.113.12:80"
  weight = 2

  [[virtual_server.real_server]]
  address = "203.0.113.13:80"

[[virtual_server]]
name = "source"
address = "203.0.113.100:443"
protocol = "tcp"
scheduler = "sh"
forward = "tun"

  [[virtual_server.real_server]]
  address = "203.0.113.21:443"

  [[virtual_server.real_server]]
  address = "203.0.113.22:443"

  [[virtual_server.real_server]]
  address = "203.0.113.23:443"
  weight = 3
"#;

/// A node as rvsd starts one: its own parse of the configuration.
fn node(seed: u64, workers: usize) -> Balancer {
    let config = Config::from_toml_str(CONFIG).expect("a valid configuration");
    Balancer::new(&BalancerSetup {
        services: Arc::new(rvs::startup::service_table(&config)),
        timeouts: Timeouts::default(),
        conn_capacity: 4 * FLOWS as usize,
        seed,
    })
    .with_workers(workers)
    .with_midflow(true)
}

/// The `i`th client: addresses spread over the space by a multiplicative
/// hash (Knuth's), so every server gets some.
fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(i.wrapping_mul(2_654_435_761) | 1)
}

/// Where `node` sends a TCP segment with `flags` from client `i` to port
/// `port` of the VIP.
fn real_server(node: &mut Balancer, i: u32, port: u16, flags: TcpFlags) -> Ipv4Addr {
    let key = FlowKey::new(client(i), 40_000, VIP, port, 6);
    let flow = Flow {
        key,
        hash: node.flow_hash(&key),
        protocol: Protocol::Tcp,
        flags,
        bytes: 52,
    };
    match node.decide(&flow, 1) {
        Decision::ToRealServer { real, .. } => real.ip,
        other => panic!("client {i} port {port}: {other:?}"),
    }
}

#[test]
fn nodes_with_one_configuration_send_every_flow_to_one_server_syn_or_mid_flow() {
    let mut first = node(1, 1);
    let mut second = node(0x5eed_5eed, 4);
    let mut third = node(42, 2);
    for port in [80, 443] {
        let mut servers = std::collections::BTreeSet::new();
        // The second node meets the flows in the reverse order.
        let on_second: Vec<Ipv4Addr> = (0..FLOWS)
            .rev()
            .map(|i| real_server(&mut second, i, port, TcpFlags::SYN))
            .collect();
        for i in 0..FLOWS {
            let syn = real_server(&mut first, i, port, TcpFlags::SYN);
            assert_eq!(
                syn,
                on_second[(FLOWS - 1 - i) as usize],
                "port {port} flow {i}"
            );
            // The third never saw the SYN: the ACK alone goes there too.
            let ack = real_server(&mut third, i, port, TcpFlags::ACK);
            assert_eq!(ack, syn, "port {port} mid-flow {i}");
            servers.insert(syn);
        }
        assert_eq!(servers.len(), 3, "port {port}: every server took flows");
    }
    assert_eq!(third.midflow_scheduled(), 2 * u64::from(FLOWS));
}
