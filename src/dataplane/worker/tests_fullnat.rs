//! FullNAT through a worker, judged from the outside like the rest of
//! `tests_lb` (whose builders, views and appliance it uses): the local
//! address (LIP) is on the inside subnet, real servers see it as their
//! peer, replies to it go back to the client from the VIP, and with
//! several workers a reply reaches the worker that owns its LIP.
use super::*;

const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
const FNAT_WEB: Ep = (VIP, 90);
const FNAT_DNS: Ep = (VIP, 54);
const C: Ep = (CLIENT, 40000);

fn fullnat(vip: Ep, protocol: Protocol, locals: &[Ipv4Addr], ports: (u16, u16)) -> VirtualService {
    let mut s = VirtualService::new(
        "fnat",
        ServiceKey {
            vip: ep(vip.0, vip.1),
            protocol,
        },
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(ep(RS11, 8080), 1)],
    );
    s.local = crate::lb::service::LocalAddresses {
        addresses: locals.to_vec(),
        ports,
        ..Default::default()
    };
    s
}

fn fnat_setup(locals: &[Ipv4Addr], ports: (u16, u16)) -> WorkerSetup {
    let mut s = setup();
    s.services = Arc::new(ServiceTable::new(vec![
        fullnat(FNAT_WEB, Protocol::Tcp, locals, ports),
        fullnat(FNAT_DNS, Protocol::Udp, locals, ports),
    ]));
    s
}

fn lb(ports: (u16, u16)) -> Lb {
    Lb::with(fnat_setup(&[LIP], ports))
}

#[test]
fn a_syn_leaves_from_the_local_address_with_right_checksums() {
    let mut lb = lb((1024, 65535));
    let (port, f) = lb.rx(0, &from_outside(&syn_ip(C, FNAT_WEB))).one();
    assert_eq!(port, 1);
    assert_l2(&f, port, 1, RS11_MAC);
    let ip = view::l3(&f);
    assert_eq!((view::src(ip), view::sport(ip)), (LIP, 1024));
    assert_eq!((view::dst(ip), view::dport(ip)), (RS11, 8080));
    assert_eq!(view::ttl(ip), 63);
    assert!(view::ip_ok(ip) && view::l4_ok(ip));
    assert_eq!(view::total(ip), syn_ip(C, FNAT_WEB).len(), "not grown");
}

#[test]
fn the_real_servers_reply_reaches_the_client_from_the_vip() {
    let mut lb = lb((1024, 65535));
    lb.rx(0, &from_outside(&syn_ip(C, FNAT_WEB))).one();
    let reply = tcp_ip((RS11, 8080), (LIP, 1024), SYN | ACK, &[]);
    let (port, f) = lb.rx(1, &from_inside(RS11, &reply)).one();
    assert_eq!(port, 0);
    let ip = view::l3(&f);
    assert_eq!((view::src(ip), view::sport(ip)), FNAT_WEB);
    assert_eq!((view::dst(ip), view::dport(ip)), C);
    assert!(view::ip_ok(ip) && view::l4_ok(ip));
}

#[test]
fn udp_goes_both_ways() {
    let mut lb = lb((2000, 2000));
    let (_, f) = lb
        .rx(0, &from_outside(&udp_ip(C, FNAT_DNS, b"q", true)))
        .one();
    let ip = view::l3(&f);
    assert_eq!((view::src(ip), view::sport(ip)), (LIP, 2000));
    assert!(view::l4_ok(ip));
    let answer = udp_ip((RS11, 8080), (LIP, 2000), b"answer", true);
    let (port, f) = lb.rx(1, &from_inside(RS11, &answer)).one();
    let ip = view::l3(&f);
    assert_eq!(port, 0);
    assert_eq!(
        (view::src(ip), view::dst(ip), view::dport(ip)),
        (VIP, CLIENT, 40000)
    );
    assert!(view::l4_ok(ip));
}

#[test]
fn a_reply_to_an_unknown_local_port_is_dropped() {
    let mut lb = lb((1024, 65535));
    let stray = tcp_ip((RS11, 8080), (LIP, 4242), SYN | ACK, &[]);
    assert_eq!(
        lb.rx(1, &from_inside(RS11, &stray)).drop_reason(),
        DropReason::NoConnection
    );
}

#[test]
fn exhausted_local_ports_reset_a_syn_and_drop_udp_counted() {
    let mut lb = lb((1024, 1024));
    lb.rx(0, &from_outside(&syn_ip(C, FNAT_WEB))).one();
    let o = lb.rx(0, &from_outside(&syn_ip((CLIENT, 40001), FNAT_WEB)));
    assert_eq!(o.dropped, Some(DropReason::LocalPortsExhausted));
    assert_eq!(o.sent.len(), 1, "a reset");
    let (port, f) = &o.sent[0];
    let ip = view::l3(f);
    assert_eq!(*port, 0);
    assert_eq!(
        (view::src(ip), view::dst(ip), view::dport(ip)),
        (VIP, CLIENT, 40001)
    );
    assert_eq!(view::l4(ip)[13] & RST, RST);
    lb.rx(0, &from_outside(&udp_ip(C, FNAT_DNS, b"q", true)))
        .one();
    assert_eq!(
        lb.rx(
            0,
            &from_outside(&udp_ip((CLIENT, 40001), FNAT_DNS, b"q", true))
        )
        .drop_reason(),
        DropReason::LocalPortsExhausted
    );
    assert_eq!(lb.drops(DropReason::LocalPortsExhausted), 2);
}

#[test]
fn an_inside_icmp_error_reaches_the_client_quoting_its_own_packet() {
    let mut lb = lb((1024, 65535));
    let syn = syn_ip(C, FNAT_WEB);
    let (_, sent) = lb.rx(0, &from_outside(&syn)).one();
    let fwd = view::l3(&sent).to_vec();
    let err = frag_needed_ip(GW, LIP, &fwd, 28);
    let (port, f) = lb.rx(1, &from_inside(GW, &err)).one();
    assert_eq!(port, 0);
    let ip = view::l3(&f);
    assert_eq!((view::src(ip), view::dst(ip)), (VIP, CLIENT));
    assert!(view::ip_ok(ip));
    assert_eq!(csum(view::l4(ip)), 0, "ICMP checksum");
    let quoted = &view::l4(ip)[8..];
    assert_eq!((view::src(quoted), view::dst(quoted)), (CLIENT, VIP));
    assert_eq!((view::sport(quoted), view::dport(quoted)), (40000, 90));
    assert!(view::ip_ok(quoted));
}

#[test]
fn arp_for_a_local_address_is_answered_on_its_port_only() {
    let mut lb = lb((1024, 65535));
    let req = build::arp(1, RS11_MAC, RS11, MacAddr::ZERO, LIP);
    let (port, f) = lb.rx(1, &req).one();
    assert_eq!(port, 1);
    assert_eq!(&f[22..28], &IN_MAC.0, "the LIP is at the inside port's MAC");
    let req = build::arp(1, ROUTER_MAC, ROUTER, MacAddr::ZERO, LIP);
    assert_eq!(lb.rx(0, &req).drop_reason(), DropReason::ArpNotForUs);
}

/// A local address on the inside subnet the RSS model of `n` workers
/// gives worker `owner`.
fn lip_owned_by(owner: usize, n: usize) -> Ipv4Addr {
    (100..=250)
        .map(|i| Ipv4Addr::new(10, 1, 0, i))
        .find(|&a| RssModel::new(n).worker_of(a) == owner)
        .unwrap()
}

fn fnat_workers(n: usize, locals: &[Ipv4Addr]) -> Vec<Worker<VecFrame>> {
    (0..n)
        .map(|i| {
            let mut s = fnat_setup(locals, (1024, 65535));
            s.worker_index = i;
            s.worker_count = n;
            s.seed = s.seed.wrapping_add(i as u64);
            Worker::new(&s)
        })
        .collect()
}

#[test]
fn with_two_workers_each_takes_only_the_local_addresses_it_owns() {
    let (l0, l1) = (lip_owned_by(0, 2), lip_owned_by(1, 2));
    let ws = fnat_workers(2, &[l0, l1]);
    let owned = |w: &Worker<VecFrame>| -> Vec<Ipv4Addr> {
        let mut a: Vec<Ipv4Addr> = w
            .balancer()
            .local_usage()
            .filter_map(|u| match u.addr {
                std::net::IpAddr::V4(a) => Some(a),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        a.dedup();
        a
    };
    assert_eq!(owned(&ws[0]), [l0]);
    assert_eq!(owned(&ws[1]), [l1]);
}

#[test]
fn without_rss_a_reply_is_handed_to_the_owner_of_its_local_address() {
    let (l0, l1) = (lip_owned_by(0, 2), lip_owned_by(1, 2));
    let mut ws = fnat_workers(2, &[l0, l1]);
    let client = (client_owned_by(1, 2), 41000);
    // The SYN reaches worker 0, which hands it to the client's owner.
    let sent = deliver(&mut ws, 0, 0, &from_outside(&syn_ip(client, FNAT_WEB)), T0);
    assert_eq!(sent.len(), 1);
    let (w, _, f) = &sent[0];
    assert_eq!(*w, 1);
    let ip = view::l3(f);
    assert_eq!(view::src(ip), l1, "worker 1 leaves from its own LIP");
    let lport = view::sport(ip);
    // The reply reaches worker 0 and is handed to worker 1.
    let reply = tcp_ip((RS11, 8080), (l1, lport), SYN | ACK, &[]);
    let sent = deliver(&mut ws, 0, 1, &from_inside(RS11, &reply), T0);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0, sent[0].1), (1, 0));
    assert_eq!(view::dst(view::l3(&sent[0].2)), client.0);
    assert_eq!(ws[0].stats.total_drops() + ws[1].stats.total_drops(), 0);
}

#[test]
fn with_rss_fullnat_replies_land_on_the_owner_and_nothing_is_handed_over() {
    let n = 2;
    let locals: Vec<Ipv4Addr> = (0..n).map(|w| lip_owned_by(w, n)).collect();
    let mut ws = fnat_workers(n, &locals);
    let clients: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(198, 51, 100, i)).collect();
    let syns: Vec<(usize, Vec<u8>)> = clients
        .iter()
        .map(|&c| (0, from_outside(&syn_ip((c, 40000), FNAT_WEB))))
        .collect();
    let sent = deliver_by_rss(&mut ws, &syns);
    assert_eq!(sent.iter().map(Vec::len).sum::<usize>(), clients.len());
    // `deliver_by_rss` hashes the inside port on the destination: the LIP.
    let replies: Vec<(usize, Vec<u8>)> = sent
        .iter()
        .flatten()
        .map(|f| {
            let ip = view::l3(f);
            let local = (view::src(ip), view::sport(ip));
            (
                1,
                from_inside(RS11, &tcp_ip((RS11, 8080), local, SYN | ACK, &[])),
            )
        })
        .collect();
    let back = deliver_by_rss(&mut ws, &replies);
    assert_eq!(back.iter().map(Vec::len).sum::<usize>(), clients.len());
    for w in &ws {
        assert_eq!(w.stats.redirected, 0);
        assert_eq!(w.stats.total_drops(), 0);
    }
}

#[test]
fn a_fragmented_udp_datagram_follows_with_both_addresses_rewritten() {
    let mut lb = lb((1024, 65535));
    let payload: Vec<u8> = (0..200u8).collect();
    let whole = udp_ip(C, FNAT_DNS, &payload, true);
    // Two fragments of datagram 0x4242, the first with 104 bytes of the
    // datagram's payload (the UDP header and 96 bytes of data).
    let fix = |mut f: Vec<u8>, frag_word: u16| {
        let len = f.len() as u16;
        f[2..4].copy_from_slice(&len.to_be_bytes());
        f[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
        f[6..8].copy_from_slice(&frag_word.to_be_bytes());
        build::fix_ip_checksum(&mut f);
        f
    };
    let first = fix(whole[..20 + 104].to_vec(), 0x2000);
    let mut later = whole[..20].to_vec();
    later.extend_from_slice(&whole[20 + 104..]);
    let later = fix(later, 104 / 8);
    let (_, f1) = lb.rx(0, &from_outside(&first)).one();
    let (_, f2) = lb.rx(0, &from_outside(&later)).one();
    let (ip1, ip2) = (view::l3(&f1), view::l3(&f2));
    for ip in [ip1, ip2] {
        assert_eq!((view::src(ip), view::dst(ip)), (LIP, RS11));
        assert!(view::ip_ok(ip));
    }
    // Put back together, the datagram's UDP checksum is right.
    let mut joined = ip1.to_vec();
    joined.extend_from_slice(&ip2[20..]);
    let len = joined.len() as u16;
    joined[2..4].copy_from_slice(&len.to_be_bytes());
    joined[6..8].copy_from_slice(&[0, 0]);
    build::fix_ip_checksum(&mut joined);
    assert_eq!((view::sport(&joined), view::dport(&joined)), (1024, 8080));
    assert!(view::l4_ok(&joined));
    assert_eq!(lb.w.stats.fragments_forwarded, 1);
}
