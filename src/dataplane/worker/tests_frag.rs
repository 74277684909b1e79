//! IPv4 fragments through a worker (`lb::frag`), judged from the outside
//! like the rest of `tests_lb` (whose builders, views and appliance it
//! uses): a datagram is cut in two here, sent in order or not, and what
//! leaves is put back together and checked with the tests' own checksums.
use super::*;

const C: Ep = (CLIENT, 40000);

/// `ip` (a whole packet, IHL 5) cut into two fragments of datagram
/// `ident`, the first carrying `at` bytes of its payload (a multiple of 8).
pub(super) fn cut(ip: &[u8], ident: u16, at: usize) -> (Vec<u8>, Vec<u8>) {
    let fix = |mut f: Vec<u8>, frag_word: u16| {
        let len = f.len() as u16;
        f[2..4].copy_from_slice(&len.to_be_bytes());
        f[4..6].copy_from_slice(&ident.to_be_bytes());
        f[6..8].copy_from_slice(&frag_word.to_be_bytes());
        build::fix_ip_checksum(&mut f);
        f
    };
    let first = fix(ip[..20 + at].to_vec(), 0x2000);
    let mut later = ip[..20].to_vec();
    later.extend_from_slice(&ip[20 + at..]);
    (first, fix(later, (at / 8) as u16))
}

/// The whole packet two forwarded fragments (IPv4 packets) make.
fn join(first: &[u8], later: &[u8]) -> Vec<u8> {
    let mut p = first.to_vec();
    p.extend_from_slice(&later[20..]);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[6..8].copy_from_slice(&[0, 0]);
    build::fix_ip_checksum(&mut p);
    p
}

/// A DNS query with a payload that needs two fragments.
fn big_query(ident: u16) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..200u8).collect();
    cut(&udp_ip(C, DNS, &payload, true), ident, 104)
}

#[test]
fn fragments_in_order_reach_the_nat_real_server_as_one_datagram() {
    let mut lb = Lb::new();
    let (first, later) = big_query(7);
    let (p1, f1) = lb.rx(0, &from_outside(&first)).one();
    let (p2, f2) = lb.rx(0, &from_outside(&later)).one();
    assert_eq!((p1, p2), (1, 1));
    let (f1, f2) = (view::l3(&f1), view::l3(&f2));
    for f in [f1, f2] {
        assert_eq!(view::dst(f), RS11);
        assert_eq!(view::src(f), CLIENT);
        assert_eq!(view::ttl(f), 63);
        assert!(view::ip_ok(f));
    }
    assert_eq!(&f2[4..6], &7u16.to_be_bytes(), "identification kept");
    assert_eq!(&f2[6..8], &13u16.to_be_bytes(), "offset kept");
    let whole = join(f1, f2);
    assert_eq!(view::dport(&whole), 5353);
    assert!(view::l4_ok(&whole), "the UDP checksum covers the datagram");
    assert_eq!(lb.w.stats.fragments_forwarded, 1);
    assert_eq!(lb.w.stats.conns_created, 1);
}

#[test]
fn a_later_fragment_first_waits_and_leaves_after_its_first() {
    let mut lb = Lb::new();
    let (first, later) = big_query(8);
    let waited = lb.rx(0, &from_outside(&later));
    assert!(waited.sent.is_empty() && waited.dropped.is_none());
    assert_eq!(lb.w.stats.fragments_queued, 1);
    let out = lb.rx(0, &from_outside(&first));
    assert_eq!(out.dropped, None);
    assert_eq!(out.sent.len(), 2, "the first, then the one that waited");
    let (f1, f2) = (view::l3(&out.sent[0].1), view::l3(&out.sent[1].1));
    assert_eq!(view::dst(f2), RS11);
    assert!(view::l4_ok(&join(f1, f2)));
    assert_eq!(lb.w.stats.fragments_forwarded, 1);
}

#[test]
fn a_fragment_whose_first_never_comes_is_dropped_after_the_lifetime() {
    let mut lb = Lb::new();
    let (_, later) = big_query(9);
    lb.rx(0, &from_outside(&later));
    lb.now += crate::lb::frag::LIFETIME_NS - 1;
    lb.tick();
    assert_eq!(lb.drops(DropReason::FragmentUnmatched), 0);
    lb.now += 1;
    lb.tick();
    assert_eq!(lb.drops(DropReason::FragmentUnmatched), 1);
}

#[test]
fn fragments_waiting_beyond_the_queue_are_dropped_and_counted() {
    let mut lb = Lb::new();
    for ident in 0..crate::lb::frag::DEFAULT_QUEUE as u16 {
        let (_, later) = big_query(ident);
        assert!(lb.rx(0, &from_outside(&later)).dropped.is_none());
    }
    let (_, later) = big_query(999);
    assert_eq!(
        lb.rx(0, &from_outside(&later)).drop_reason(),
        DropReason::FragmentQueueFull
    );
    assert_eq!(lb.w.frags.waiting(), crate::lb::frag::DEFAULT_QUEUE);
    // The queue's fill is a published gauge.
    let cell = crate::dataplane::stats::StatsCell::new(0);
    lb.w.publish(&cell);
    assert_eq!(cell.fill().fragment_queue_frames, 64);
    assert_eq!(cell.fill().fragment_queue_capacity, 64);
}

#[test]
fn a_later_fragment_after_its_decision_expired_waits_again() {
    let mut lb = Lb::new();
    let (first, later) = big_query(10);
    lb.rx(0, &from_outside(&first)).one();
    lb.now += crate::lb::frag::LIFETIME_NS;
    let waited = lb.rx(0, &from_outside(&later));
    assert!(waited.sent.is_empty() && waited.dropped.is_none());
    assert_eq!(lb.w.stats.fragments_queued, 1);
}

#[test]
fn a_reply_in_fragments_leaves_as_the_vip() {
    let mut lb = Lb::new();
    lb.rx(0, &from_outside(&udp_ip(C, DNS, b"q", true))).one();
    let payload = [0x5au8; 160];
    let reply = udp_ip((RS11, 5353), C, &payload, true);
    let (first, later) = cut(&reply, 77, 88);
    let (p1, f1) = lb.rx(1, &from_inside(RS11, &first)).one();
    let (p2, f2) = lb.rx(1, &from_inside(RS11, &later)).one();
    assert_eq!((p1, p2), (0, 0));
    let (f1, f2) = (view::l3(&f1), view::l3(&f2));
    assert_eq!(view::src(f2), VIP);
    assert_eq!(view::dst(f2), CLIENT);
    let whole = join(f1, f2);
    assert_eq!(view::sport(&whole), 53);
    assert!(view::l4_ok(&whole));
}

#[test]
fn dr_fragments_go_untouched_to_the_same_real_server() {
    let mut lb = Lb::new();
    let seg = tcp_ip(C, (VIP_DR, 80), PSH | ACK, &[1u8; 120]);
    lb.rx(0, &from_outside(&syn_ip(C, (VIP_DR, 80)))).one();
    let (first, later) = cut(&seg, 5, 64);
    let (_, f1) = lb.rx(0, &from_outside(&first)).one();
    let (_, f2) = lb.rx(0, &from_outside(&later)).one();
    assert_eq!(&f1[0..6], &f2[0..6], "same real server's MAC");
    assert!(f1[0..6] == RS11_MAC.0 || f1[0..6] == RS12_MAC.0);
    assert_eq!(&f2[14..], &later[..], "the IP packet untouched");
}

#[test]
fn tun_fragments_are_tunnelled_to_the_same_real_server() {
    let mut lb = Lb::new();
    let seg = tcp_ip(C, (VIP_TUN, 80), SYN, &[2u8; 120]);
    let (first, later) = cut(&seg, 6, 64);
    let (_, f1) = lb.rx(0, &from_outside(&first)).one();
    let (port, f2) = lb.rx(0, &from_outside(&later)).one();
    assert_tunnelled(port, &f2, &later);
    assert_eq!(view::dst(view::l3(&f1)), TUN_RS);
}

#[test]
fn a_first_fragment_to_no_service_drops_the_fragments_that_waited() {
    let mut lb = Lb::new();
    let payload = [3u8; 100];
    let (first, later) = cut(&udp_ip(C, (STRANGER, 53), &payload, true), 11, 48);
    assert!(lb.rx(0, &from_outside(&later)).sent.is_empty());
    // Two drops for one frame: not through `Lb::rx`.
    let mut out = VecOutput::default();
    lb.w.handle(0, VecFrame::new(&from_outside(&first)), lb.now, &mut out);
    assert!(out.sent.is_empty());
    assert_eq!(lb.drops(DropReason::NoService), 1);
    assert_eq!(lb.drops(DropReason::FragmentUnmatched), 1);
}

#[test]
fn a_later_fragment_with_ttl_one_is_not_forwarded() {
    let mut lb = Lb::new();
    let (first, mut later) = big_query(12);
    lb.rx(0, &from_outside(&first)).one();
    later[8] = 1;
    build::fix_ip_checksum(&mut later);
    assert_eq!(
        lb.rx(0, &from_outside(&later)).drop_reason(),
        DropReason::TtlExpired
    );
}

#[test]
fn a_fragment_to_the_balancer_itself_is_dropped() {
    let mut lb = Lb::new();
    let (first, _) = cut(&udp_ip(C, (OUT_IP, 53), &[0u8; 40], true), 13, 16);
    assert_eq!(
        lb.rx(0, &from_outside(&first)).drop_reason(),
        DropReason::Fragment
    );
}

#[test]
fn with_two_workers_later_fragments_reach_the_owner_of_their_first() {
    let mut ws = workers(2);
    let owner = RssModel::new(2).worker_of(CLIENT);
    let other = 1 - owner;
    // A device without RSS: every fragment reaches the other worker,
    // which hands each (no ports in later ones) to the client's owner,
    // both ways.
    let (first, later) = big_query(20);
    let sent = deliver(&mut ws, other, 0, &from_outside(&later), T0);
    assert!(sent.is_empty(), "it waits at the owner: {sent:?}");
    let sent = deliver(&mut ws, other, 0, &from_outside(&first), T0);
    assert_eq!(sent.len(), 2, "the first, then the one that waited");
    assert!(sent.iter().all(|s| s.0 == owner && s.1 == 1));
    assert!(view::l4_ok(&join(
        view::l3(&sent[0].2),
        view::l3(&sent[1].2)
    )));
    let (first, later) = cut(&udp_ip((RS11, 5353), C, &[9u8; 160], true), 21, 88);
    for f in [first, later] {
        let sent = deliver(&mut ws, other, 1, &from_inside(RS11, &f), T0);
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].0, sent[0].1), (owner, 0));
        assert_eq!(view::src(view::l3(&sent[0].2)), VIP);
    }
    assert_eq!(ws[owner].stats.fragments_forwarded, 2);
    assert_eq!(ws[other].stats.fragments_forwarded, 0);
}
