//! Every rewrite, on any bytes: none may panic, whatever the length and
//! content, including bytes shaped to pass the views' checks layer by
//! layer so the rewrites run past them.

use super::{nat, rst, synproxy, tun, Endpoint};
use proptest::prelude::*;
use std::net::Ipv4Addr;

/// Shapes random bytes into what each layer's check accepts, as far as
/// the length allows: an IPv4 header of `proto`, then a TCP data offset,
/// a UDP length, or an ICMP error quoting an IPv4 header of `quoted`.
fn shaped(mut b: Vec<u8>, proto: u8, quoted: u8, tcp_words: u8, cut: usize) -> Vec<u8> {
    let len = b.len();
    if len >= 20 {
        b[0] = 0x45;
        b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        b[9] = proto;
    }
    match proto {
        6 if len >= 40 => b[32] = tcp_words << 4,
        17 if len >= 28 => b[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes()),
        1 if len >= 48 => {
            b[28] = 0x45;
            let q = (len - 28).min(cut.max(28)) as u16;
            b[30..32].copy_from_slice(&q.to_be_bytes());
            b[37] = quoted;
        }
        _ => {}
    }
    b
}

/// Runs every rewrite on its own copy of `bytes`.
fn every_rewrite(bytes: &[u8], ep: Endpoint, mtu: u16, len: usize, offset: usize, more: bool) {
    use nat::Side::{Dst, Src};
    let copy = || bytes.to_vec();
    let _ = nat::to_real_server(&mut copy(), ep);
    let _ = nat::from_real_server(&mut copy(), ep);
    let _ = nat::decrement_ttl(&mut copy());
    let _ = nat::fragment_to_real_server(&mut copy(), ep.ip);
    let _ = nat::fragment_from_real_server(&mut copy(), ep.ip);
    let _ = nat::rewrite(&mut copy(), Src, ep);
    let _ = nat::translate_icmp_error(&mut copy(), (Src, ep.ip), (Dst, ep));
    let _ = nat::translate_icmp_error(&mut copy(), (Dst, ep.ip), (Src, ep));
    let _ = tun::check_fits(bytes, mtu);
    let _ = tun::dont_fragment(bytes);
    let _ = tun::fragment_payload(mtu);
    tun::set_fragment(&mut copy(), len, offset, more);
    tun::encapsulate(&mut copy(), ep.ip, ep.ip, mtu);
    tun::frag_needed(&mut copy(), ep.ip, mtu, mtu);
    assert!(rst::answer_with_reset(&mut copy()) <= bytes.len());
    let _ = synproxy::to_real_server(&mut copy(), ep, mtu.into());
    let _ = synproxy::to_client(&mut copy(), ep, mtu.into());
    let _ = synproxy::shift_quoted_seq(&mut copy(), mtu.into());
    if let Some(f) = synproxy::read(bytes) {
        let h = synproxy::Handshake::syn_ack(&f, len as u32, mtu);
        assert!(h.write(&mut copy()).is_none_or(|n| n <= bytes.len()));
    }
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| Endpoint::new(Ipv4Addr::from(ip), port))
}

proptest! {
    #[test]
    fn no_rewrite_panics_on_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..100),
        ep in endpoint(), mtu in any::<u16>(),
        len in any::<usize>(), offset in any::<usize>(), more in any::<bool>(),
    ) {
        every_rewrite(&bytes, ep, mtu, len, offset, more);
    }

    #[test]
    fn no_rewrite_panics_on_bytes_that_pass_the_checks(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        proto in prop_oneof![Just(1u8), Just(4), Just(6), Just(17), any::<u8>()],
        quoted in prop_oneof![Just(6u8), Just(17), any::<u8>()],
        tcp_words in 0u8..16, cut in 0usize..100,
        ep in endpoint(), mtu in any::<u16>(),
        len in prop_oneof![0usize..70000, Just(usize::MAX)],
        offset in prop_oneof![0usize..70000, Just(usize::MAX)],
        more in any::<bool>(),
    ) {
        let b = shaped(bytes, proto, quoted, tcp_words, cut);
        every_rewrite(&b, ep, mtu, len, offset, more);
        // Shaped bytes do get past the checks: a TCP segment whose data
        // offset fits is rewritten (when its TTL allows and it is no later
        // fragment, which has no TCP header) and answered.
        let tcp_fits = proto == 6 && b.len() >= 40 && (5..=(b.len() - 20) / 4).contains(&usize::from(tcp_words));
        let later_fragment = b.len() >= 20 && (b[6] & 0x1f != 0 || b[7] != 0);
        if tcp_fits && b[8] > 1 && later_fragment {
            prop_assert!(nat::fragment_to_real_server(&mut b.clone(), ep.ip).is_ok());
        }
        let tcp_fits = tcp_fits && !later_fragment;
        if tcp_fits && b[8] > 1 {
            prop_assert!(nat::to_real_server(&mut b.clone(), ep).is_ok());
            prop_assert_eq!(rst::answer_with_reset(&mut b.clone()), 40);
        }
        // The same with room for an outer or ICMP error header in front.
        let mut framed = vec![0u8; tun::ICMP_ERROR_OVERHEAD];
        framed.extend_from_slice(&b);
        every_rewrite(&framed, ep, mtu, len, offset, more);
        every_rewrite(&framed[tun::ICMP_ERROR_OVERHEAD - tun::OVERHEAD..], ep, mtu, len, offset, more);
    }
}
