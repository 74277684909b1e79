//! The `ipv6_wire` fuzz target's harness: arbitrary bytes through the IPv6
//! and ICMPv6 views, checking what they promise beyond "no panic".
//!
//! Contract, for any input read as an IPv6 packet:
//! - `new_checked` and `new_checked_header` never panic, and every slice
//!   they hand out lies within the input;
//! - the extension-header walk ends within the payload and within
//!   [`ipv6::MAX_EXT_CHAIN_LEN`];
//! - a TCP, UDP or ICMPv6 upper layer whose checksum verifies still
//!   verifies after either address is rewritten through the patching
//!   setters (the incremental patch is exact);
//! - a neighbour solicitation that parses gets an advertisement that
//!   parses back to itself; an ICMPv6 error's quote reads as a header.

use super::icmpv6::{self, Message, NeighborAdvert, NeighborSolicit};
use super::ipv6::{self, next_header};
use super::MacAddr;
use std::net::Ipv6Addr;

/// Runs one input through the harness; panics when the contract breaks.
pub fn check_ipv6(data: &[u8]) {
    if let Ok(p) = ipv6::Packet::new_checked_header(data) {
        let _ = p.upper_layer();
    }
    let Ok(p) = ipv6::Packet::new_checked(data) else {
        return;
    };
    assert!(ipv6::HEADER_LEN + p.payload().len() <= data.len());
    let Ok(upper) = p.upper_layer() else {
        return;
    };
    let end = ipv6::HEADER_LEN + p.payload().len();
    assert!(upper.offset <= end, "walk past the payload");
    assert!(upper.offset - ipv6::HEADER_LEN <= ipv6::MAX_EXT_CHAIN_LEN);
    let (src, dst) = (p.src_addr(), p.dst_addr());
    let segment = &data[upper.offset..end];
    if upper.protocol == next_header::ICMPV6 {
        check_icmpv6(segment, src);
    }
    if ipv6::verify_upper_checksum(src, dst, upper.protocol, segment) {
        check_rewrite(data, upper.offset, upper.protocol, end);
    }
}

/// Both addresses rewritten through the patching setters: the upper
/// layer must still verify with the new ones.
fn check_rewrite(data: &[u8], offset: usize, protocol: u8, end: usize) {
    let mut b = data.to_vec();
    let mut p = ipv6::Packet::new_checked(&mut b[..]).expect("checked above");
    let new_src = Ipv6Addr::from(u128::from(p.dst_addr()).rotate_left(7) ^ 0x5a);
    let new_dst = Ipv6Addr::from(!u128::from(p.src_addr()));
    p.set_src_addr_patched(new_src).expect("walked above");
    p.set_dst_addr_patched(new_dst).expect("walked above");
    assert!(
        ipv6::verify_upper_checksum(new_src, new_dst, protocol, &b[offset..end]),
        "patched checksum no longer verifies"
    );
}

fn check_icmpv6(segment: &[u8], src: Ipv6Addr) {
    let Ok(msg) = icmpv6::Packet::new_checked(segment) else {
        return;
    };
    if msg.msg_type().is_error() {
        if let Ok(q) = ipv6::Packet::new_checked_header(msg.data()) {
            let _ = q.upper_layer();
        }
    }
    if msg.msg_type() == Message::NeighborSolicit {
        if let Ok(ns) = NeighborSolicit::parse(&msg) {
            let (na, to) = NeighborAdvert::answer(&ns, src, MacAddr([2, 0, 0, 0, 0, 1]));
            let mut out = [0u8; 64];
            let n = na.emit(&mut out, (ns.target, to)).expect("fits");
            let back = icmpv6::Packet::new_checked(&out[..n]).expect("emitted");
            assert!(back.verify_checksum(ns.target, to));
            assert_eq!(NeighborAdvert::parse(&back), Ok(na));
        }
    }
    if msg.msg_type() == Message::NeighborAdvert {
        let _ = NeighborAdvert::parse(&msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built seeds: UDP behind a hop-by-hop header, a first fragment
    /// of TCP, a neighbour solicitation, a packet-too-big quoting a packet.
    fn seeds() -> Vec<Vec<u8>> {
        let a1 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let a2 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let packet = |next: u8, payload: &[u8]| {
            let mut b = vec![0u8; ipv6::HEADER_LEN];
            let mut p = ipv6::Packet::init_header(&mut b[..]).unwrap();
            p.set_payload_len(payload.len() as u16);
            p.set_next_header(next);
            p.set_hop_limit(255);
            p.set_src_addr(a1);
            p.set_dst_addr(a2);
            b.extend_from_slice(payload);
            b
        };
        let mut udp = vec![0x0f, 0xa0, 0, 53, 0, 10, 0, 0, b'h', b'i'];
        ipv6::fill_upper_checksum(a1, a2, next_header::UDP, &mut udp).unwrap();
        let mut hbh = vec![next_header::UDP, 0, 1, 4, 0, 0, 0, 0];
        hbh.extend(&udp);

        let mut tcp = vec![0u8; 20];
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        ipv6::fill_upper_checksum(a1, a2, next_header::TCP, &mut tcp).unwrap();
        let mut frag = vec![next_header::TCP, 0, 0, 1, 0, 0, 0, 9];
        frag.extend(&tcp);

        let mut ns = [0u8; 32];
        let n = NeighborSolicit::for_resolution(a2, MacAddr([2, 0, 0, 0, 0, 9]))
            .emit(&mut ns, (a1, a2))
            .unwrap();

        let quoted = packet(next_header::UDP, &udp);
        let mut ptb = [0u8; 128];
        let m = icmpv6::build_packet_too_big(&mut ptb, 1280, (a1, a2), &quoted).unwrap();
        vec![
            packet(next_header::HOP_BY_HOP, &hbh),
            packet(next_header::FRAGMENT, &frag),
            packet(next_header::ICMPV6, &ns[..n]),
            packet(next_header::ICMPV6, &ptb[..m]),
        ]
    }

    /// xorshift64*: a small deterministic generator for the mutations.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn seeds_reach_the_checks_they_are_for() {
        for s in seeds() {
            let p = ipv6::Packet::new_checked(&s[..]).unwrap();
            let u = p.upper_layer().unwrap();
            let seg = &s[u.offset..];
            assert!(ipv6::verify_upper_checksum(
                p.src_addr(),
                p.dst_addr(),
                u.protocol,
                seg
            ));
            check_ipv6(&s);
        }
    }

    #[test]
    fn seeded_mutations_keep_the_contract() {
        // A short, deterministic stand-in for the cargo-fuzz target: every
        // seed with 1 to 4 bytes replaced, and cut, 2000 times each.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for seed in seeds() {
            for _ in 0..2000 {
                let mut b = seed.clone();
                for _ in 0..1 + next(&mut state) % 4 {
                    let at = (next(&mut state) % b.len() as u64) as usize;
                    b[at] = next(&mut state) as u8;
                }
                let cut = b.len() - (next(&mut state) % 8) as usize;
                b.truncate(cut);
                check_ipv6(&b);
            }
        }
    }

    #[test]
    fn the_scapy_corpus_in_the_repo_walks_and_verifies() {
        // fuzz/corpus/ipv6_wire/ holds packets scapy built: every one but
        // the later fragment walks to its upper layer, whose checksum
        // (scapy's) verifies against our pseudo-header.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/ipv6_wire");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let b = std::fs::read(&path).unwrap();
            check_ipv6(&b);
            seen += 1;
            let p = ipv6::Packet::new_checked(&b[..]).unwrap();
            let walk = p.upper_layer();
            if path.ends_with("frag-later") {
                assert!(
                    matches!(walk, Err(ipv6::ExtError::FragmentNotFirst(f)) if f.offset == 1480)
                );
                continue;
            }
            let u = walk.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Behind a routing header the pseudo-header holds the final
            // destination (RFC 8200 8.1), the route's last address.
            let dst = if u.segments_left > 0 {
                // The routing header ends where the 8-byte destination
                // options before TCP start; its last address ends it.
                let end = u.offset - 8;
                Ipv6Addr::from(<[u8; 16]>::try_from(&b[end - 16..end]).unwrap())
            } else {
                p.dst_addr()
            };
            assert!(
                ipv6::verify_upper_checksum(p.src_addr(), dst, u.protocol, &b[u.offset..]),
                "{}",
                path.display()
            );
        }
        assert!(seen >= 10);
    }

    #[test]
    fn random_bytes_keep_the_contract() {
        let mut state = 42u64;
        for _ in 0..2000 {
            let len = (next(&mut state) % 120) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
            if let Some(first) = b.first_mut() {
                *first = 0x60 | (*first & 0x0f);
            }
            check_ipv6(&b);
        }
    }
}
