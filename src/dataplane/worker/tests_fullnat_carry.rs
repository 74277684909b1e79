//! FullNAT carrying the client's address (`client_address`) through a
//! worker, judged from the outside like the rest of `tests_lb` (whose
//! builders, views and appliance it uses): what IP fragments of a PROXY v2
//! connection become. The whole paths (header, numbers, ICMP errors, TOA)
//! are proven by tests/pcap_fullnat_carry.rs.
use super::frag::cut;
use super::*;
use crate::lb::client_addr::ClientAddress;

const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
const FNAT_PP: Ep = (VIP, 91);
const C: Ep = (CLIENT, 40000);

/// The worker with one FullNAT TCP service (`FNAT_PP` → .11:8080 from
/// `LIP`) carrying the client's address by PROXY v2.
fn lb() -> Lb {
    let mut s = VirtualService::new(
        "fnat-pp",
        ServiceKey {
            vip: ep(FNAT_PP.0, FNAT_PP.1),
            protocol: Protocol::Tcp,
        },
        ForwardMethod::FullNat,
        SchedulerKind::Rr,
        [(ep(RS11, 8080), 1)],
    );
    s.local = crate::lb::service::LocalAddresses {
        addresses: vec![LIP],
        ports: (1024, 65535),
        ..Default::default()
    };
    s.client_address = Some(ClientAddress::ProxyV2);
    let mut setup = setup();
    setup.services = Arc::new(ServiceTable::new(vec![s]));
    Lb::with(setup)
}

/// A client segment of `len` bytes of data starting at the connection's
/// first byte (the SYN's sequence number + 1), DF clear: the one that
/// must carry the PROXY header.
fn first_data(len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut ip = tcp_ip(C, FNAT_PP, ACK | PSH, &data);
    let seq = build::SEQ + 1;
    ip[24..28].copy_from_slice(&seq.to_be_bytes());
    ip[36..38].copy_from_slice(&[0, 0]);
    let ck = build::l4_csum(C.0, FNAT_PP.0, 6, &ip[20..]);
    ip[36..38].copy_from_slice(&ck.to_be_bytes());
    ip
}

#[test]
fn a_fragmented_first_segment_is_dropped_with_the_fragment_that_waited() {
    let mut lb = lb();
    lb.rx(0, &from_outside(&syn_ip(C, FNAT_PP))).one();
    let (first, later) = cut(&first_data(200), 51, 104);
    assert!(lb.rx(0, &from_outside(&later)).sent.is_empty(), "waits");
    // Two drops for one frame: not through `Lb::rx`.
    let mut out = VecOutput::default();
    lb.w.handle(0, VecFrame::new(&from_outside(&first)), lb.now, &mut out);
    assert!(
        out.sent.is_empty(),
        "the waiting later fragment is not sent alone"
    );
    assert_eq!(
        lb.drops(DropReason::Fragment),
        1,
        "the first cannot take the header"
    );
    assert_eq!(lb.drops(DropReason::FragmentUnmatched), 1);
    assert_eq!(lb.w.stats.fragments_forwarded, 0);
    assert_eq!(lb.w.stats.client_addr.skipped_fragment, 1);
}

#[test]
fn a_later_fragment_of_a_first_fragment_not_sent_does_not_follow_it() {
    let mut lb = lb();
    lb.rx(0, &from_outside(&syn_ip(C, FNAT_PP))).one();
    let (first, later) = cut(&first_data(200), 52, 104);
    assert_eq!(
        lb.rx(0, &from_outside(&first)).drop_reason(),
        DropReason::Fragment
    );
    let o = lb.rx(0, &from_outside(&later));
    assert!(o.sent.is_empty(), "not sent to the real server alone");
    assert_eq!(lb.w.stats.fragments_forwarded, 0);
    assert_eq!(lb.w.stats.fragments_queued, 1, "it waits for a first");
}
