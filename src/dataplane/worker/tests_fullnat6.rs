//! FullNAT over IPv6 through a worker (`tests_lb6`'s frames and setup):
//! the IPv6 local address (LIP6) is on the inside prefix, the real server
//! sees it as its peer, replies to it go back to the client from the VIP,
//! ICMPv6 errors are translated both ways, exhaustion is reset, ND is
//! answered for the LIP6 (not while backup), and with several workers a
//! reply reaches the worker that owns its LIP6.
use super::*;

fn lip() -> Ipv6Addr {
    ip("2001:db8:2::100")
}

fn fullnat6(
    protocol: Protocol,
    vport: u16,
    locals: &[Ipv6Addr],
    ports: (u16, u16),
) -> VirtualService {
    let mut s = VirtualService::new6(
        "fnat6",
        Endpoint6::new(vip(), vport),
        protocol,
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(Endpoint6::new(rs1(), 8080), 1)],
    );
    s.local = crate::lb::service::LocalAddresses {
        addresses6: locals.to_vec(),
        ports,
        ..Default::default()
    };
    s
}

fn fnat_worker(ports: (u16, u16)) -> Worker<VecFrame> {
    worker_with(vec![
        fullnat6(Protocol::Tcp, 80, &[lip()], ports),
        fullnat6(Protocol::Udp, 53, &[lip()], ports),
    ])
}

#[test]
fn a_syn_leaves_from_the_local_address_with_a_right_checksum() {
    let mut w = fnat_worker((1024, 65535));
    let input = syn();
    let out = run(&mut w, 0, &input);
    let f = sent_on(&out, 1);
    assert_eq!(&f[0..6], &RS_MAC.0);
    assert_eq!(tuple(f), (lip(), rs1(), 1024, 8080));
    assert_eq!(ipv6_of(f).hop_limit(), 63);
    assert_eq!(f.len(), input.len(), "not grown");
    assert_eq!((w.stats.conns_created, w.stats.forwarded), (1, 1));
    assert_eq!(w.balancer().conn_count6(), 1);
}

#[test]
fn the_real_servers_reply_reaches_the_client_from_the_vip() {
    let mut w = fnat_worker((1024, 65535));
    run(&mut w, 0, &syn());
    let out = run(&mut w, 1, &synack_to((lip(), 1024)));
    let f = sent_on(&out, 0);
    assert_eq!(&f[0..6], &CLIENT_MAC.0);
    assert_eq!(tuple(f), (vip(), client(), 80, 40000));
    assert_eq!(ipv6_of(f).hop_limit(), 63);
}

#[test]
fn udp_goes_both_ways() {
    let mut w = fnat_worker((2000, 2000));
    let q = udp_frame(OUT_MAC, (client(), 5353), (vip(), 53), b"q");
    assert_eq!(
        tuple(sent_on(&run(&mut w, 0, &q), 1)),
        (lip(), rs1(), 2000, 8080)
    );
    let a = udp_frame(IN_MAC, (rs1(), 8080), (lip(), 2000), b"answer");
    assert_eq!(
        tuple(sent_on(&run(&mut w, 1, &a), 0)),
        (vip(), client(), 53, 5353)
    );
}

#[test]
fn a_reply_to_an_unknown_local_port_is_dropped_as_no_connection() {
    let mut w = fnat_worker((1024, 65535));
    let out = run(&mut w, 1, &synack_to((lip(), 4242)));
    assert!(out.sent.is_empty());
    assert_eq!(w.stats.drops[DropReason::NoConnection as usize], 1);
}

#[test]
fn exhausted_local_ports_reset_a_syn_from_the_vip_and_count_it() {
    let mut w = fnat_worker((1024, 1024));
    run(&mut w, 0, &syn());
    let second = syn_from((client(), 40001), (vip(), 80), &[]);
    let out = run(&mut w, 0, &second);
    let f = sent_on(&out, 0);
    assert_eq!(tuple(f), (vip(), client(), 80, 40001));
    let t = tcp::Packet::new_checked(&f[14 + 40..]).unwrap();
    assert_eq!(t.flags().0 & tcp::Flags::RST, tcp::Flags::RST);
    assert_eq!(w.stats.drops[DropReason::LocalPortsExhausted as usize], 1);
    assert_eq!(w.stats.resets_sent, 1);
    let exhausted: u64 = w.balancer().local_usage().map(|u| u.exhausted).sum();
    assert_eq!(exhausted, 1);
}

#[test]
fn packet_too_big_from_the_inside_reaches_the_client_quoting_what_it_sent() {
    let mut w = fnat_worker((1024, 65535));
    let sent = run(&mut w, 0, &syn()).sent[0].1.clone();
    // A router on the inside quotes the SYN as rvs sent it (LIP → RIP).
    let err = icmp_error_frame(IN_MAC, (ip("2001:db8:2::fe"), lip()), &sent[14..]);
    let out = run(&mut w, 1, &err);
    let payload = assert_too_big_to_the_client(sent_on(&out, 0));
    assert_eq!(icmpv6::Packet::new_checked(payload).unwrap().mtu(), 1280);
    let ports = &payload[8 + 40..8 + 44];
    assert_eq!(ports, &[0x9c, 0x40, 0, 80], "40000 → 80");
    // The quoted segment is the client's own, checksum and all.
    let quoted = &payload[8 + 40..];
    assert!(ipv6::verify_upper_checksum(
        client(),
        vip(),
        next_header::TCP,
        quoted
    ));
    assert_eq!(w.stats.icmp_errors_forwarded, 1);
}

#[test]
fn an_error_from_the_outside_reaches_the_real_server_from_the_local_address() {
    let mut w = fnat_worker((1024, 65535));
    run(&mut w, 0, &syn());
    let back = run(&mut w, 1, &synack_to((lip(), 1024))).sent[0].1.clone();
    // A router on the outside quotes the SYN-ACK as rvs sent it (VIP → client).
    let err = icmp_error_frame(OUT_MAC, (ip("2001:db8:1::fe"), vip()), &back[14..]);
    let out = run(&mut w, 0, &err);
    let f = sent_on(&out, 1);
    let p = ipv6_of(f);
    assert_eq!((p.src_addr(), p.dst_addr()), (lip(), rs1()));
    let msg = icmpv6::Packet::new_checked(p.payload()).unwrap();
    assert!(msg.verify_checksum(lip(), rs1()));
    let q = ipv6::Packet::new_checked_header(&p.payload()[8..]).unwrap();
    assert_eq!((q.src_addr(), q.dst_addr()), (rs1(), lip()));
    assert!(ipv6::verify_upper_checksum(
        rs1(),
        lip(),
        next_header::TCP,
        &p.payload()[8 + 40..]
    ));
}

fn solicit(w: &mut Worker<VecFrame>, port: usize, target: Ipv6Addr) -> VecOutput {
    let asker = if port == 0 { client() } else { rs1() };
    let mut body = [0u8; 32];
    let dst = icmpv6::solicited_node(target);
    let ns = NeighborSolicit {
        target,
        source_ll: Some(CLIENT_MAC),
    };
    let n = ns.emit(&mut body, (asker, dst)).unwrap();
    let mut f = frame(
        icmpv6::multicast_mac(dst),
        (asker, dst),
        next_header::ICMPV6,
        &[],
        &body[..n],
    );
    f[14 + 7] = 255;
    run(w, port, &f)
}

#[test]
fn a_solicitation_for_the_local_address_is_answered_on_its_port_only() {
    let mut w = fnat_worker((1024, 65535));
    let out = solicit(&mut w, 1, lip());
    let f = sent_on(&out, 1);
    let p = ipv6_of(f);
    let msg = icmpv6::Packet::new_checked(p.payload()).unwrap();
    let na = NeighborAdvert::parse(&msg).unwrap();
    assert_eq!((na.target, na.target_ll), (lip(), Some(IN_MAC)));
    assert!(!w.answers_nd_for(0, lip()), "not on the outside port");
}

#[test]
fn a_backup_does_not_answer_for_the_local_address() {
    let mut w = fnat_worker((1024, 65535));
    w.command(
        Command::HaRole { master: false },
        0,
        &mut VecOutput::default(),
    );
    assert!(!w.answers_nd_for(1, lip()));
    assert!(solicit(&mut w, 1, lip()).sent.is_empty());
    assert!(w.answers_nd_for(1, inside()), "its own address still");
}

#[test]
fn the_garp_round_announces_the_local_address_on_its_port() {
    let mut w = fnat_worker((1024, 65535));
    let mut out = VecOutput::default();
    w.command(Command::Garp, 0, &mut out);
    let announced: Vec<(usize, Ipv6Addr)> = out
        .sent
        .iter()
        .filter(|(_, f)| f[12..14] == [0x86, 0xDD])
        .filter_map(|(port, f)| {
            let p = ipv6_of(f);
            let msg = icmpv6::Packet::new_checked(p.payload()).ok()?;
            Some((*port, NeighborAdvert::parse(&msg).ok()?.target))
        })
        .collect();
    assert!(announced.contains(&(1, lip())), "{announced:?}");
}

/// Fragment `n` (0 = first) of a UDP datagram from the client to the
/// FullNAT DNS VIP (`udp_fragment`'s, ident 0xA1B2C3D4).
#[test]
fn a_later_fragment_follows_its_first_with_both_addresses_rewritten() {
    let mut w = worker_with(vec![fullnat6(Protocol::Udp, 53, &[lip()], (2000, 2000))]);
    assert_fragments_reach_the_real_server(&mut w, lip());
}

/// An IPv6 local address on the inside prefix the RSS model of `n`
/// workers gives worker `owner`.
fn lip_owned_by(owner: usize, n: usize) -> Ipv6Addr {
    (0x100..0x200u16)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, i))
        .find(|&a| crate::net::rss::RssModel::new(n).worker_of6(a) == owner)
        .unwrap()
}

fn client_owned_by(owner: usize, n: usize) -> Ipv6Addr {
    (0x10..0x100u16)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i))
        .find(|&a| crate::net::rss::RssModel::new(n).worker_of6(a) == owner)
        .unwrap()
}

fn fnat_workers(n: usize, locals: &[Ipv6Addr]) -> Vec<Worker<VecFrame>> {
    workers_of(
        setup(vec![fullnat6(Protocol::Tcp, 80, locals, (1024, 65535))]),
        n,
    )
}

#[test]
fn with_two_workers_each_takes_only_the_local_addresses_it_owns() {
    let (l0, l1) = (lip_owned_by(0, 2), lip_owned_by(1, 2));
    let ws = fnat_workers(2, &[l0, l1]);
    for (w, l) in ws.iter().zip([l0, l1]) {
        let owned: Vec<std::net::IpAddr> = w.balancer().local_usage().map(|u| u.addr).collect();
        assert_eq!(owned, [std::net::IpAddr::V6(l)]);
    }
}

#[test]
fn without_rss_a_reply_is_handed_to_the_owner_of_its_local_address() {
    let (l0, l1) = (lip_owned_by(0, 2), lip_owned_by(1, 2));
    let mut ws = fnat_workers(2, &[l0, l1]);
    let c = client_owned_by(1, 2);
    let syn = syn_from((c, 41000), (vip(), 80), &[]);
    // Worker 0 hands the SYN to the client's owner, worker 1.
    let out = run(&mut ws[0], 0, &syn);
    assert_meets_owner(&out, 0, 1);
    ws[1].from_peer = true;
    let out = run(&mut ws[1], 0, &syn);
    ws[1].from_peer = false;
    let f = sent_on(&out, 1);
    let (src, _, lport, _) = tuple(f);
    assert_eq!(src, l1, "worker 1 leaves from its own local address");
    // The reply reaches worker 0 and is handed to the owner of l1.
    let reply = synack_to((l1, lport));
    let out = run(&mut ws[0], 1, &reply);
    assert_meets_owner(&out, 0, 1);
    let out = run(&mut ws[1], 1, &reply);
    assert_eq!(tuple(sent_on(&out, 0)), (vip(), c, 80, 41000));
    // An error from the inside quoting the packet to the real server goes
    // to the local address's owner too.
    let err = icmp_error_frame(IN_MAC, (ip("2001:db8:2::fe"), l1), &f[14..]);
    let out = run(&mut ws[0], 1, &err);
    assert_meets_owner(&out, 0, 1);
}
