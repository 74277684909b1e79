//! The SYN proxy through a worker, judged from the outside like the rest
//! of `tests_lb` (whose builders, views and appliance it uses): the "web"
//! service (NAT, VIP:80 → .11:8080 only here) with `syn_proxy` on.
use super::*;

/// The appliance with the SYN proxy on the "web" service.
fn proxy_lb() -> Lb {
    let mut s = setup();
    let mut svcs = services();
    svcs[SVC_WEB].syn_proxy = true;
    // One real server, so every connection goes to .11.
    svcs[SVC_WEB].real_servers.truncate(1);
    s.services = Arc::new(ServiceTable::new(svcs));
    Lb::with(s)
}

const C: Ep = (CLIENT, 40000);
const RS: Ep = (RS11, 8080);
/// The real server's initial sequence number in these tests.
const SERVER_ISN: u32 = 0x9000_0000;

fn seq(ip: &[u8]) -> u32 {
    let t = view::l4(ip);
    u32::from_be_bytes([t[4], t[5], t[6], t[7]])
}
fn ack(ip: &[u8]) -> u32 {
    let t = view::l4(ip);
    u32::from_be_bytes([t[8], t[9], t[10], t[11]])
}
fn flags(ip: &[u8]) -> u8 {
    view::l4(ip)[13]
}
fn options(ip: &[u8]) -> Vec<u8> {
    let t = view::l4(ip);
    t[20..usize::from(t[12] >> 4) * 4].to_vec()
}
fn payload(ip: &[u8]) -> Vec<u8> {
    let t = view::l4(ip);
    t[usize::from(t[12] >> 4) * 4..].to_vec()
}

/// A TCP segment with the given numbers (valid checksums).
fn segment(src: Ep, dst: Ep, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut t = build::tcp(src, dst, flags, &[], payload);
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[16] = 0;
    t[17] = 0;
    let ck = build::l4_csum(src.0, dst.0, 6, &t);
    t[16..18].copy_from_slice(&ck.to_be_bytes());
    build::ipv4(&Ip::new(src.0, dst.0, 6), &t)
}

#[track_caller]
/// The client's first data segment (`GET /`), acknowledging the stream
/// of `cookie`.
fn request(cookie: u32) -> Vec<u8> {
    segment(
        C,
        WEB,
        ACK | PSH,
        build::SEQ + 1,
        cookie.wrapping_add(1),
        b"GET /",
    )
}

fn assert_valid(ip: &[u8]) {
    assert!(view::ip_ok(ip), "IPv4 checksum");
    assert!(view::l4_ok(ip), "TCP checksum");
}

/// The client's SYN; returns the cookie of the SYN-ACK it drew.
fn syn(lb: &mut Lb) -> u32 {
    let (_, f) = lb.rx(0, &from_outside(&syn_ip(C, WEB))).one();
    seq(view::l3(&f))
}

/// SYN, then the ACK of the cookie: the SYN the real server receives.
fn open(lb: &mut Lb) -> (u32, Vec<u8>) {
    let cookie = syn(lb);
    let ack_ip = segment(C, WEB, ACK, build::SEQ + 1, cookie.wrapping_add(1), &[]);
    let (port, f) = lb.rx(0, &from_outside(&ack_ip)).one();
    assert_eq!(port, 1);
    (cookie, view::l3(&f).to_vec())
}

/// A whole handshake through the proxy; returns the cookie.
fn establish(lb: &mut Lb) -> u32 {
    let (cookie, _) = open(lb);
    let syn_ack = segment(RS, C, SYN | ACK, SERVER_ISN, build::SEQ + 1, &[]);
    lb.rx(1, &from_inside(RS11, &syn_ack)).one();
    cookie
}

#[test]
fn a_syn_is_answered_with_a_cookie_syn_ack_and_no_connection() {
    let mut lb = proxy_lb();
    let (port, f) = lb.rx(0, &from_outside(&syn_ip(C, WEB))).one();
    assert_l2(&f, port, 0, ROUTER_MAC);
    let ip = view::l3(&f);
    assert_valid(ip);
    assert_eq!((view::src(ip), view::dst(ip)), (VIP, CLIENT));
    assert_eq!((view::sport(ip), view::dport(ip)), (80, 40000));
    assert_eq!(flags(ip), SYN | ACK);
    assert_eq!(ack(ip), build::SEQ + 1);
    assert_eq!(options(ip), vec![2, 4, 0x05, 0xb4], "MSS 1460 only");
    assert_eq!(lb.w.balancer().conn_count(), 0);
    assert_eq!(lb.w.stats.synproxy_synacks_sent, 1);
    assert_eq!(lb.w.stats.conns_created, 0);
}

#[test]
fn a_retransmitted_syn_draws_another_syn_ack_and_still_no_connection() {
    let mut lb = proxy_lb();
    let a = syn(&mut lb);
    let b = syn(&mut lb);
    assert_eq!(a, b, "same tuple, ISN and period: the same cookie");
    assert_eq!(lb.w.balancer().conn_count(), 0);
    assert_eq!(lb.w.stats.synproxy_synacks_sent, 2);
}

#[test]
fn a_short_syn_frame_is_grown_to_hold_the_mss_option() {
    let mut lb = proxy_lb();
    let mut f = from_outside(&tcp_ip(C, WEB, SYN, &[]));
    f.truncate(14 + 40);
    let (_, out) = lb.rx(0, &f).one();
    let ip = view::l3(&out);
    assert_valid(ip);
    assert_eq!(view::total(ip), 44);
    assert_eq!(options(ip), vec![2, 4, 0x02, 0x18], "no MSS option: 536");
    assert_eq!(&out[..6], &ROUTER_MAC.0, "the Ethernet header moved along");
}

#[test]
fn a_good_cookie_ack_opens_the_connection_with_a_syn_carrying_the_clients_isn() {
    let mut lb = proxy_lb();
    let (_, ip) = open(&mut lb);
    assert_valid(&ip);
    assert_eq!((view::src(&ip), view::dst(&ip)), (CLIENT, RS11));
    assert_eq!((view::sport(&ip), view::dport(&ip)), (40000, 8080));
    assert_eq!(flags(&ip), SYN);
    assert_eq!(seq(&ip), build::SEQ);
    assert_eq!(options(&ip), vec![2, 4, 0x05, 0xb4]);
    assert_eq!(lb.w.balancer().conn_count(), 1);
    assert_eq!(lb.w.stats.synproxy_cookies_accepted, 1);
    assert_eq!(lb.w.stats.conns_created, 1);
}

#[test]
fn an_ack_without_a_valid_cookie_is_a_counted_drop_leaving_no_state() {
    let mut lb = proxy_lb();
    let cookie = syn(&mut lb);
    for (s, a) in [
        (build::SEQ + 1, cookie.wrapping_add(2)),
        (build::SEQ + 2, cookie.wrapping_add(1)),
        (build::SEQ, 12345),
    ] {
        let out = lb.rx(0, &from_outside(&segment(C, WEB, ACK, s, a, &[])));
        assert_eq!(out.drop_reason(), DropReason::SynCookieRefused);
    }
    assert_eq!(lb.drops(DropReason::SynCookieRefused), 3);
    assert_eq!(lb.w.balancer().conn_count(), 0);
}

#[test]
fn the_servers_syn_ack_is_answered_with_the_ack_completing_its_handshake() {
    let mut lb = proxy_lb();
    open(&mut lb);
    let syn_ack = segment(RS, C, SYN | ACK, SERVER_ISN, build::SEQ + 1, &[]);
    let (port, f) = lb.rx(1, &from_inside(RS11, &syn_ack)).one();
    assert_l2(&f, port, 1, RS11_MAC);
    let ip = view::l3(&f);
    assert_valid(ip);
    assert_eq!((view::src(ip), view::dst(ip)), (CLIENT, RS11));
    assert_eq!((view::sport(ip), view::dport(ip)), (40000, 8080));
    assert_eq!(flags(ip), ACK);
    assert_eq!((seq(ip), ack(ip)), (build::SEQ + 1, SERVER_ISN + 1));
    assert_eq!(lb.w.stats.synproxy_acks_sent, 1);
}

#[test]
fn data_is_translated_both_ways_after_the_handshake() {
    let mut lb = proxy_lb();
    let cookie = establish(&mut lb);
    // The client acknowledges the cookie's stream; the server sees its own.
    let req = request(cookie);
    let (port, f) = lb.rx(0, &from_outside(&req)).one();
    assert_eq!(port, 1);
    let ip = view::l3(&f);
    assert_valid(ip);
    assert_eq!((view::dst(ip), view::dport(ip)), (RS11, 8080));
    assert_eq!((seq(ip), ack(ip)), (build::SEQ + 1, SERVER_ISN + 1));
    assert_eq!(payload(ip), b"GET /");
    // The server's stream reaches the client in the cookie's numbers.
    let resp = segment(RS, C, ACK | PSH, SERVER_ISN + 1, build::SEQ + 6, b"200 OK");
    let (port, f) = lb.rx(1, &from_inside(RS11, &resp)).one();
    assert_eq!(port, 0);
    let ip = view::l3(&f);
    assert_valid(ip);
    assert_eq!((view::src(ip), view::sport(ip)), (VIP, 80));
    assert_eq!((seq(ip), ack(ip)), (cookie.wrapping_add(1), build::SEQ + 6));
    assert_eq!(payload(ip), b"200 OK");
    assert_eq!(lb.w.balancer().conn_count(), 1);
    let (_, c) =
        lb.w.balancer()
            .conns()
            .iter()
            .next()
            .expect("one connection");
    assert_eq!(c.state_name(), "ESTABLISHED");
    assert!(c.is_proxied());
}

#[test]
fn resets_are_translated_too() {
    let mut lb = proxy_lb();
    let cookie = establish(&mut lb);
    let rst = segment(RS, C, RST | ACK, SERVER_ISN + 10, build::SEQ + 1, &[]);
    let (_, f) = lb.rx(1, &from_inside(RS11, &rst)).one();
    let ip = view::l3(&f);
    assert_valid(ip);
    assert_eq!(seq(ip), cookie.wrapping_add(10));
}

#[test]
fn the_first_client_segment_before_the_server_answers_waits_for_its_syn_ack() {
    let mut lb = proxy_lb();
    let (cookie, _) = open(&mut lb);
    let req = request(cookie);
    let kept = lb.rx(0, &from_outside(&req));
    assert!(kept.sent.is_empty() && kept.dropped.is_none(), "{kept:?}");
    assert_eq!(lb.w.stats.synproxy_segments_kept, 1);
    let syn_ack = segment(RS, C, SYN | ACK, SERVER_ISN, build::SEQ + 1, &[]);
    let out = lb.rx(1, &from_inside(RS11, &syn_ack));
    assert_eq!(out.dropped, None);
    assert_eq!(out.sent.len(), 2, "the ACK, then the kept segment");
    let ack_ip = view::l3(&out.sent[0].1);
    assert_eq!((flags(ack_ip), payload(ack_ip)), (ACK, vec![]));
    let (port, f) = &out.sent[1];
    assert_eq!(*port, 1);
    let ip = view::l3(f);
    assert_valid(ip);
    assert_eq!((seq(ip), ack(ip)), (build::SEQ + 1, SERVER_ISN + 1));
    assert_eq!(payload(ip), b"GET /");
}

#[test]
fn a_second_client_segment_before_the_server_answers_resends_the_syn() {
    let mut lb = proxy_lb();
    let (cookie, _) = open(&mut lb);
    let req = request(cookie);
    lb.rx(0, &from_outside(&req));
    let (port, f) = lb.rx(0, &from_outside(&req)).one();
    assert_eq!(port, 1);
    let ip = view::l3(&f);
    assert_valid(ip);
    assert_eq!((flags(ip), seq(ip)), (SYN, build::SEQ));
    assert!(payload(ip).is_empty());
    assert_eq!(lb.w.stats.synproxy_syns_resent, 1);
    assert_eq!(lb.w.balancer().conn_count(), 1);
}

#[test]
fn a_kept_segment_is_a_counted_drop_when_the_server_stays_silent() {
    let mut lb = proxy_lb();
    let (cookie, _) = open(&mut lb);
    let req = request(cookie);
    lb.rx(0, &from_outside(&req));
    lb.now += SEC / 2;
    lb.tick();
    assert_eq!(lb.drops(DropReason::SynProxyUnanswered), 0);
    lb.now += SEC;
    lb.tick();
    assert_eq!(lb.drops(DropReason::SynProxyUnanswered), 1);
}

#[test]
fn a_server_refusing_the_syn_resets_the_client_at_the_number_it_expects() {
    let mut lb = proxy_lb();
    let (cookie, _) = open(&mut lb);
    let rst = segment(RS, C, RST | ACK, 0, build::SEQ + 1, &[]);
    let (port, f) = lb.rx(1, &from_inside(RS11, &rst)).one();
    assert_eq!(port, 0);
    let ip = view::l3(&f);
    assert_valid(ip);
    assert_eq!(view::src(ip), VIP);
    assert_eq!(seq(ip), cookie.wrapping_add(1));
}

#[test]
fn other_server_segments_before_its_syn_ack_are_dropped() {
    let mut lb = proxy_lb();
    open(&mut lb);
    let stray = segment(RS, C, ACK, SERVER_ISN, build::SEQ + 1, b"x");
    assert_eq!(
        lb.rx(1, &from_inside(RS11, &stray)).drop_reason(),
        DropReason::NoConnection
    );
}

#[test]
fn services_without_the_proxy_still_forward_the_syn() {
    let mut lb = proxy_lb();
    let (port, _) = lb.rx(0, &from_outside(&syn_ip(C, (VIP, 81)))).one();
    assert_eq!(port, 1);
    assert_eq!(lb.w.stats.synproxy_synacks_sent, 0);
}

proptest! {
    #[test]
    fn no_frame_to_a_proxied_service_panics_the_worker(
        seqs in proptest::collection::vec((any::<u32>(), any::<u32>(), any::<u8>()), 1..20),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut lb = proxy_lb();
        for (s, a, fl) in seqs {
            lb.rx(0, &from_outside(&segment(C, WEB, fl, s, a, &payload)));
            lb.rx(1, &from_inside(RS11, &segment(RS, C, fl, s, a, &payload)));
        }
    }
}

#[test]
fn fragmentation_needed_about_a_reply_reaches_the_server_in_its_own_numbers() {
    let mut lb = proxy_lb();
    establish(&mut lb);
    let reply = segment(
        RS,
        C,
        ACK | PSH,
        SERVER_ISN + 1,
        build::SEQ + 1,
        &[0x62; 64],
    );
    let (_, out) = lb.rx(1, &from_inside(RS11, &reply)).one();
    let seen_outside = view::l3(&out).to_vec();
    assert_ne!(
        seq(&seen_outside),
        SERVER_ISN + 1,
        "translated for the client"
    );
    let err = frag_needed_ip(CLIENT_ROUTER, VIP, &seen_outside, seen_outside.len());
    let (port, f) = lb.rx(0, &from_outside(&err)).one();
    assert_eq!(port, 1);
    let quoted = assert_icmp_error(view::l3(&f), CLIENT_ROUTER, RS11, 63);
    assert_eq!(
        seq(&quoted),
        SERVER_ISN + 1,
        "the server's own sequence number"
    );
    assert!(view::l4_ok(&quoted), "quoted TCP checksum");
}
