//! The cluster rules of sync (issue 20, `docs/sync-protocol.md` "Cluster
//! mode"), at the balancer: an entry knows whether it carried a packet
//! here (local) or was only installed by sync; a record never moves a
//! local entry to another server (a counted conflict), a REMOVED record
//! never removes one, and only local entries are reported and dumped.

use super::tests::{balancer, flow};
use super::*;
use crate::lb::service::{SchedulerKind, ServiceKey, VirtualService};
use crate::lb::sync::{sync_channel, SyncReport};
use crate::lb::tcp_state::State;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const RS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 11), Ipv4Addr::new(10, 1, 0, 12)];
const SYN: TcpFlags = TcpFlags(0x02);
const ACK: TcpFlags = TcpFlags(0x10);

fn nat() -> VirtualService {
    VirtualService::new(
        "web",
        ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        RS.iter().map(|&ip| (Endpoint::new(ip, 8080), 1)),
    )
}

/// A `[cluster]` node's balancer (reporting into a queue it returns).
fn node() -> (Balancer, crate::lb::sync::SyncCollector) {
    let mut b = balancer(vec![nat()]);
    let (queue, collector) = sync_channel();
    b.set_sync(queue, true);
    b.set_cluster(true);
    (b, collector)
}

fn to_vip(sport: u16) -> FlowKey {
    FlowKey::new(CLIENT, sport, VIP, 80, 6)
}

/// A peer's record of the client's port `sport` going to `RS[rs]`.
fn record(sport: u16, rs: usize) -> SyncEvent {
    SyncEvent {
        protocol: Protocol::Tcp,
        state: State::Established,
        input_only: false,
        client: Endpoint::new(CLIENT, sport),
        vip: Endpoint::new(VIP, 80),
        real: Endpoint::new(RS[rs], 8080),
        timeout_s: 900,
        local: None,
    }
}

fn real_of(d: Decision) -> Endpoint {
    match d {
        Decision::ToRealServer { real, .. } => real,
        other => panic!("not to a real server: {other:?}"),
    }
}

/// The index in `RS` of the server the node's own SYN from `sport` went to.
fn schedule(b: &mut Balancer, sport: u16, now: u64) -> usize {
    let real = real_of(b.decide(&flow(b, to_vip(sport), SYN), now));
    RS.iter().position(|&ip| ip == real.ip).unwrap()
}

fn reported(collector: &crate::lb::sync::SyncCollector) -> Vec<SyncEvent> {
    let mut out = Vec::new();
    collector.drain(|r| {
        if let SyncReport::V4(e) = r {
            out.push(*e);
        }
    });
    out
}

#[test]
fn an_installed_connection_is_not_local_until_a_packet_carries_it() {
    let (mut b, _c) = node();
    assert_eq!(b.install(&[record(100, 0)], 1), 1);
    assert_eq!((b.conn_count(), b.local_conns()), (1, 0));
    b.decide(&flow(&b, to_vip(100), ACK), 2);
    assert_eq!(b.local_conns(), 1, "the packet made it local");
}

#[test]
fn a_connection_a_packet_created_is_local() {
    let (mut b, _c) = node();
    schedule(&mut b, 101, 1);
    assert_eq!(b.local_conns(), 1);
}

#[test]
fn installing_reports_nothing_so_records_never_loop() {
    let (mut b, c) = node();
    b.install(&[record(102, 0)], 1);
    b.tick(2);
    assert!(reported(&c).is_empty());
    // Once carried here its changes are this node's to tell.
    b.decide(&flow(&b, to_vip(102), TcpFlags(0x11)), 3); // FIN
    b.tick(4);
    assert_eq!(reported(&c).len(), 1);
}

#[test]
fn a_duplicate_record_refreshes_state_and_timeout_of_a_local_entry() {
    let (mut b, _c) = node();
    let rs = schedule(&mut b, 103, 1); // SYN_RECV, a short timeout
    let mut r = record(103, rs);
    r.timeout_s = 600;
    assert_eq!(b.install(&[r], 2), 0, "known: nothing new");
    let d = b.dump(2, 1);
    assert_eq!(d[0].state, "ESTABLISHED");
    assert_eq!(d[0].expires_in_s, 600);
    assert_eq!(b.local_conns(), 1, "still local");
    assert_eq!(b.sync_conflicts(), 0);
}

#[test]
fn a_record_for_another_server_leaves_a_local_entry_on_its_own_and_is_counted() {
    let (mut b, _c) = node();
    let rs = schedule(&mut b, 104, 1);
    assert_eq!(b.install(&[record(104, 1 - rs)], 2), 0);
    assert_eq!(b.sync_conflicts(), 1);
    assert_eq!(
        real_of(b.decide(&flow(&b, to_vip(104), ACK), 3)).ip,
        RS[rs],
        "the flow stays where it is"
    );
}

#[test]
fn a_record_for_another_server_replaces_an_entry_only_synced() {
    let (mut b, _c) = node();
    b.install(&[record(105, 0)], 1);
    assert_eq!(b.install(&[record(105, 1)], 2), 1, "the newer record");
    assert_eq!(b.sync_conflicts(), 0);
    assert_eq!(b.conn_count(), 1);
    assert_eq!(real_of(b.decide(&flow(&b, to_vip(105), ACK), 3)).ip, RS[1]);
}

#[test]
fn outside_a_cluster_a_record_still_replaces_a_local_entry() {
    // `[ha]`: the backup's record is the master's word (issue 17's rule).
    let mut b = balancer(vec![nat()]);
    let rs = schedule(&mut b, 106, 1);
    assert_eq!(b.install(&[record(106, 1 - rs)], 2), 1);
    assert_eq!(b.sync_conflicts(), 0);
    assert_eq!(
        real_of(b.decide(&flow(&b, to_vip(106), ACK), 3)).ip,
        RS[1 - rs]
    );
}

#[test]
fn a_removed_record_removes_an_entry_only_synced() {
    let (mut b, _c) = node();
    b.install(&[record(107, 0)], 1);
    assert_eq!(b.remove_synced(&[record(107, 0)], 2), 1);
    assert_eq!((b.conn_count(), b.local_conns()), (0, 0));
    let total: u32 = b.counters().iter().map(|c| c.active + c.inactive).sum();
    assert_eq!(total, 0, "the real server's counts follow");
}

#[test]
fn a_removed_record_leaves_a_local_entry_to_its_own_timeouts() {
    let (mut b, _c) = node();
    let rs = schedule(&mut b, 108, 1);
    assert_eq!(b.remove_synced(&[record(108, rs)], 2), 0);
    assert_eq!(b.local_conns(), 1);
}

#[test]
fn a_removed_record_for_another_server_removes_nothing() {
    let (mut b, _c) = node();
    b.install(&[record(109, 0)], 1);
    assert_eq!(b.remove_synced(&[record(109, 1)], 2), 0);
    assert_eq!(b.conn_count(), 1);
}

#[test]
fn outside_a_cluster_a_removed_record_removes_a_local_entry() {
    let mut b = balancer(vec![nat()]);
    let rs = schedule(&mut b, 110, 1);
    assert_eq!(b.remove_synced(&[record(110, rs)], 2), 1);
    assert_eq!(b.conn_count(), 0);
}

#[test]
fn a_cluster_nodes_dump_holds_only_its_local_connections() {
    let (mut b, _c) = node();
    b.install(&[record(111, 0)], 1);
    schedule(&mut b, 112, 1);
    let dump = b.sync_dump(2);
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].client.port, 112);
}

#[test]
fn a_synced_entry_that_expires_leaves_the_local_count_right() {
    let (mut b, _c) = node();
    let mut short = record(113, 0);
    short.timeout_s = 1;
    b.install(&[short], 1);
    schedule(&mut b, 114, 1);
    // After the synced one expired, the sweep reclaims it.
    for t in 0..30 {
        b.tick(3_000_000_000 + t * 100_000_000);
    }
    assert_eq!((b.conn_count(), b.local_conns()), (1, 1));
}
