//! The control thread's commands as the worker obeys them: snapshots
//! carrying health and weights, reloads, connection dumps, and the resets and sorry server
//! that keep clients from hanging when servers are gone.

use super::*;
use crate::dataplane::io::{VecFrame, VecOutput};
use crate::lb::service::{
    ForwardMethod, Protocol, RealServer, SchedulerKind, ServerState, ServiceKey, VirtualService,
};
use crate::lb::xmit::Endpoint;
use crate::wire::checksum;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const ROUTER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const RS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 1, 0, 11),
    Ipv4Addr::new(10, 1, 0, 12),
    Ipv4Addr::new(10, 1, 0, 13),
];
const SORRY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 99);

fn service(real: &[Ipv4Addr], sorry: bool) -> VirtualService {
    VirtualService {
        name: "web".into(),
        key: ServiceKey {
            vip: Endpoint::new(VIP, 80),
            protocol: Protocol::Tcp,
        },
        forward: ForwardMethod::Nat,
        scheduler: SchedulerKind::Rr,
        mh_table_size: 251,
        persistence: None,
        expire_nodest_conn: true,
        sorry_server: sorry.then_some(Endpoint::new(SORRY, 8080)),
        limits: Default::default(),
        syn_proxy: false,
        client_address: None,
        priority_groups: Vec::new(),
        slow_start: std::time::Duration::ZERO,
        syn_timeout_ms: 1000,
        ipv6: None,
        tunnel6: None,
        local: Default::default(),
        real_servers: real
            .iter()
            .map(|&ip| RealServer {
                endpoint: Endpoint::new(ip, 8080),
                weight: 1,
                thresholds: Default::default(),
                priority: 0,
                slow_start: None,
            })
            .collect(),
    }
}

fn worker(services: ServiceTable) -> Worker<VecFrame> {
    let out = Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 2), 24).unwrap();
    let inside = Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24).unwrap();
    let mut setup = WorkerSetup::ports_only(vec![
        PortSetup {
            mac: OUT_MAC,
            addresses: vec![out],
            addresses6: Vec::new(),
            mtu: 1500,
        },
        PortSetup {
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            addresses: vec![inside],
            addresses6: Vec::new(),
            mtu: 1500,
        },
    ]);
    setup.routes = RouteTable::new(
        &[(0, out), (1, inside)],
        &[(Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).unwrap(), ROUTER, 0)],
    );
    setup.static_neighbors = RS
        .iter()
        .chain([SORRY, ROUTER].iter())
        .enumerate()
        .map(|(i, &ip)| {
            (
                ip,
                MacAddr([2, 0, 0, 9, 0, i as u8]),
                u16::from(ip != ROUTER),
            )
        })
        .collect();
    setup.services = Arc::new(services);
    setup.seed = 0; // rr starts at the first server
    Worker::new(&setup)
}

/// A client segment to the VIP, valid checksums.
fn segment(sport: u16, flags: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&OUT_MAC.0);
    f.extend_from_slice(&[2, 0, 0, 9, 0, 4]);
    f.extend_from_slice(&[8, 0]);
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&CLIENT.octets());
    ip.extend_from_slice(&VIP.octets());
    let ck = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&80u16.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 9, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

/// Sends `frame` from the outside; returns what went out.
fn send(w: &mut Worker<VecFrame>, frame: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out = VecOutput::default();
    w.handle(0, VecFrame::new(frame), 1_000, &mut out);
    out.sent
}

/// The destination address of a sent frame.
fn dst(f: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(f[30], f[31], f[32], f[33])
}

fn is_reset(f: &[u8]) -> bool {
    f[14 + 20 + 13] & 0x04 != 0
}

#[test]
fn a_server_marked_down_gets_no_new_connections() {
    let table = ServiceTable::new(vec![service(&RS, false)]);
    let mut w = worker(table.clone());
    w.command(
        Command::Services(Arc::new(table.clone().with_server_state(|_, r| {
            ServerState {
                down: r == 0,
                weight: None,
                ramp: None,
            }
        }))),
        0,
        &mut VecOutput::default(),
    );
    for port in 1000..1012 {
        let sent = send(&mut w, &segment(port, 0x02));
        assert_eq!(sent.len(), 1);
        assert_ne!(dst(&sent[0].1), RS[0]);
    }
}

#[test]
fn a_connection_to_a_server_that_went_down_is_reset_on_its_next_segment() {
    let table = ServiceTable::new(vec![service(&RS, false)]);
    let mut w = worker(table.clone());
    let sent = send(&mut w, &segment(2000, 0x02));
    assert_eq!(dst(&sent[0].1), RS[0]);
    w.command(
        Command::Services(Arc::new(table.clone().with_server_state(|_, r| {
            ServerState {
                down: r == 0,
                weight: None,
                ramp: None,
            }
        }))),
        0,
        &mut VecOutput::default(),
    );
    let sent = send(&mut w, &segment(2000, 0x10));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 0, "back to the client");
    assert!(is_reset(&sent[0].1));
    assert_eq!(w.stats.resets_sent, 1);
    // The client's new SYN on the same tuple goes to a live server.
    let sent = send(&mut w, &segment(2000, 0x02));
    assert!(dst(&sent[0].1) != RS[0] && !is_reset(&sent[0].1));
}

#[test]
fn with_every_server_down_a_syn_is_refused_at_once() {
    let table = ServiceTable::new(vec![service(&RS[..1], false)]);
    let mut w = worker(table.clone());
    w.command(
        Command::Services(Arc::new(table.clone().with_server_state(|_, r| {
            ServerState {
                down: r == 0,
                weight: None,
                ramp: None,
            }
        }))),
        0,
        &mut VecOutput::default(),
    );
    let sent = send(&mut w, &segment(3000, 0x02));
    assert_eq!(sent.len(), 1);
    assert!(is_reset(&sent[0].1));
    assert_eq!(
        Ipv4Addr::new(sent[0].1[26], sent[0].1[27], sent[0].1[28], sent[0].1[29]),
        VIP
    );
}

#[test]
fn with_every_server_down_the_sorry_server_takes_new_connections() {
    let table = ServiceTable::new(vec![service(&RS[..1], true)]);
    let mut w = worker(table.clone());
    w.command(
        Command::Services(Arc::new(table.clone().with_server_state(|_, r| {
            ServerState {
                down: r == 0,
                weight: None,
                ramp: None,
            }
        }))),
        0,
        &mut VecOutput::default(),
    );
    let sent = send(&mut w, &segment(3100, 0x02));
    assert_eq!(dst(&sent[0].1), SORRY);
    // Its later segments stay with it.
    let sent = send(&mut w, &segment(3100, 0x10));
    assert_eq!(dst(&sent[0].1), SORRY);
}

#[test]
fn weight_zero_drains_and_the_files_weight_returns_on_none() {
    let table = ServiceTable::new(vec![service(&RS[..2], false)]);
    let mut w = worker(table.clone());
    let first = send(&mut w, &segment(4000, 0x02));
    assert_eq!(dst(&first[0].1), RS[0]);
    w.command(
        Command::Services(Arc::new(table.clone().with_server_state(|_, r| {
            ServerState {
                down: false,
                weight: (r == 0).then_some(0),
                ramp: None,
            }
        }))),
        0,
        &mut VecOutput::default(),
    );
    for port in 4001..4006 {
        assert_eq!(dst(&send(&mut w, &segment(port, 0x02))[0].1), RS[1]);
    }
    // The existing connection lives on.
    assert_eq!(dst(&send(&mut w, &segment(4000, 0x10))[0].1), RS[0]);
    w.command(
        Command::Services(Arc::new(table.clone())),
        0,
        &mut VecOutput::default(),
    );
    let dsts: Vec<_> = (4010..4014)
        .map(|p| dst(&send(&mut w, &segment(p, 0x02))[0].1))
        .collect();
    assert!(dsts.contains(&RS[0]));
}

#[test]
fn a_reload_keeps_connections_and_drains_removed_servers() {
    let table = ServiceTable::new(vec![service(&RS[..2], false)]);
    let mut w = worker(table.clone());
    assert_eq!(dst(&send(&mut w, &segment(5000, 0x02))[0].1), RS[0]);
    // Reload: RS[0] removed (draining), RS[2] added.
    let table = ServiceTable::with_draining(
        vec![service(&[RS[0], RS[1], RS[2]], false)],
        vec![false],
        vec![vec![true, false, false]],
    );
    w.command(
        Command::Services(Arc::new(table)),
        0,
        &mut VecOutput::default(),
    );
    assert_eq!(
        dst(&send(&mut w, &segment(5000, 0x10))[0].1),
        RS[0],
        "lives on"
    );
    let dsts: Vec<_> = (5001..5009)
        .map(|p| dst(&send(&mut w, &segment(p, 0x02))[0].1))
        .collect();
    assert!(
        !dsts.contains(&RS[0]),
        "no new connections to a removed server"
    );
    assert!(dsts.contains(&RS[2]), "the added server takes traffic");
}

#[test]
fn connection_dumps_come_back_on_the_reply_channel() {
    let table = ServiceTable::new(vec![service(&RS, false)]);
    let mut w = worker(table.clone());
    for port in 6000..6005 {
        send(&mut w, &segment(port, 0x02));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    w.command(
        Command::DumpConns {
            limit: 3,
            reply: tx,
        },
        1_000,
        &mut VecOutput::default(),
    );
    let conns = rx.recv().unwrap();
    assert_eq!(conns.len(), 3);
    assert_eq!(conns[0].virtual_server, (VIP, 80).into());
    assert_eq!(conns[0].client.ip(), CLIENT);
}

#[test]
fn a_tunnelled_packet_too_big_without_df_leaves_as_outer_fragments() {
    let mut svc = service(&RS[..1], false);
    svc.forward = ForwardMethod::Tun;
    svc.real_servers[0].endpoint = Endpoint::new(RS[0], 80);
    svc.key.vip = Endpoint::new(VIP, 80);
    let mut w = worker(ServiceTable::new(vec![svc]));
    // A 1500-byte SYN (with data) from the client, DF clear.
    let mut f = segment(7000, 0x02);
    f.resize(14 + 1500, 0xab);
    f[14 + 2..14 + 4].copy_from_slice(&1500u16.to_be_bytes());
    f[14 + 6] = 0; // DF clear
    f[14 + 10] = 0;
    f[14 + 11] = 0;
    let ck = checksum::checksum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&ck.to_be_bytes());
    let inner = f[14..].to_vec();
    let sent = send(&mut w, &f);
    assert_eq!(sent.len(), 2, "two outer fragments");
    let mut payload = vec![0u8; 1520];
    let mut covered = 0;
    for (port, frag) in &sent {
        assert_eq!(*port, 1);
        let ip = &frag[14..];
        assert!(checksum::is_valid(&ip[..20]));
        assert_eq!(ip[9], 4, "IPIP");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let word = u16::from_be_bytes([ip[6], ip[7]]);
        let offset = usize::from(word & 0x1fff) * 8;
        payload[offset..offset + total - 20].copy_from_slice(&ip[20..total]);
        covered += total - 20;
        assert!(total <= 1500);
    }
    assert_eq!(covered, 1500);
    assert_eq!(
        &payload[..1500],
        &inner[..],
        "reassembles to the inner packet"
    );
}

#[test]
fn a_backup_does_not_answer_arp_or_ping_for_vips_and_a_new_master_announces_them() {
    let table = ServiceTable::new(vec![service(&RS, false)]);
    let mut w = worker(table.clone());
    let arp = |target: Ipv4Addr| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 9, 0, 4, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 9, 0, 4]);
        f.extend_from_slice(&ROUTER.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target.octets());
        f
    };
    assert_eq!(send(&mut w, &arp(VIP)).len(), 1, "standalone answers");
    w.command(
        Command::HaRole { master: false },
        0,
        &mut VecOutput::default(),
    );
    assert!(send(&mut w, &arp(VIP)).is_empty(), "a backup stays silent");
    assert_eq!(
        send(&mut w, &arp(Ipv4Addr::new(203, 0, 113, 2))).len(),
        1,
        "its own fixed address is still answered"
    );
    w.command(
        Command::HaRole { master: true },
        0,
        &mut VecOutput::default(),
    );
    let mut out = VecOutput::default();
    w.command(Command::Garp, 0, &mut out);
    assert_eq!(out.sent.len(), 1, "one gratuitous ARP for the VIP");
    let g = &out.sent[0].1;
    assert_eq!(&g[0..6], &[0xff; 6]);
    assert_eq!(&g[28..32], &VIP.octets(), "sender is the VIP");
    assert_eq!(&g[38..42], &VIP.octets(), "target is the VIP");
    assert_eq!(&g[22..28], &OUT_MAC.0);
}

#[test]
fn a_standby_installs_what_the_active_reported_and_forwards_it_alike() {
    use crate::dataplane::sync::sync_channel;
    let table = || ServiceTable::new(vec![service(&RS, false)]);
    let mut active = worker(table());
    let (q, collector) = sync_channel();
    active.set_sync(q);
    // The active balancer sees a handshake to the third server.
    for port in 8000..8002 {
        send(&mut active, &segment(port, 0x02));
    }
    let sent = send(&mut active, &segment(8002, 0x02));
    let real = dst(&sent[0].1);
    assert_eq!(real, RS[2]);
    active.tick(1_000, &mut VecOutput::default());
    let mut events = Vec::new();
    collector.drain(|e| {
        if let crate::dataplane::sync::SyncReport::V4(e) = e {
            events.push(*e)
        }
    });
    assert_eq!(events.len(), 3, "one event per new connection");
    // The standby (its rr would have picked RS[0] first) installs them.
    let mut standby = worker(table());
    standby.command(
        Command::HaRole { master: false },
        0,
        &mut VecOutput::default(),
    );
    standby.command(
        Command::InstallConns(events),
        1_000,
        &mut VecOutput::default(),
    );
    assert_eq!(standby.stats.conns_synced, 3);
    // After a takeover the client's next segment (no SYN) goes to the same
    // real server, not to a new pick and not refused.
    standby.command(
        Command::HaRole { master: true },
        0,
        &mut VecOutput::default(),
    );
    let sent = send(&mut standby, &segment(8002, 0x10));
    assert_eq!(sent.len(), 1);
    assert_eq!(dst(&sent[0].1), real);
    assert!(!is_reset(&sent[0].1));
}

#[test]
fn a_cluster_worker_answers_for_vips_reports_its_own_and_counts_local_connections() {
    use crate::dataplane::stats::StatsCell;
    use crate::dataplane::sync::{sync_channel, SyncReport};
    let table = ServiceTable::new(vec![service(&RS, false)]);
    let mut w = worker(table);
    let (q, collector) = sync_channel();
    w.set_cluster_sync(q);
    let arp = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 9, 0, 4, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 9, 0, 4]);
        f.extend_from_slice(&ROUTER.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&VIP.octets());
        f
    };
    assert_eq!(send(&mut w, &arp).len(), 1, "answers as standalone");
    // A peer's connection: installed, not reported, not local.
    let peers = crate::dataplane::sync::SyncEvent {
        protocol: Protocol::Tcp,
        state: crate::lb::tcp_state::State::Established,
        input_only: false,
        client: Endpoint::new(CLIENT, 9001),
        vip: Endpoint::new(VIP, 80),
        real: Endpoint::new(RS[1], 8080),
        timeout_s: 900,
        local: None,
    };
    w.command(
        Command::InstallConns(vec![peers]),
        1_000,
        &mut VecOutput::default(),
    );
    // Its own connection: reported.
    send(&mut w, &segment(9000, 0x02));
    w.tick(2_000, &mut VecOutput::default());
    let mut ports = Vec::new();
    collector.drain(|e| {
        if let SyncReport::V4(e) = e {
            ports.push(e.client.port)
        }
    });
    assert_eq!(ports, [9000]);
    let cell = StatsCell::new(8);
    w.publish(&cell);
    assert_eq!(cell.snapshot().local_conns, 1);
    assert_eq!(cell.connections(), 2);
}
