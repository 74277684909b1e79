//! The SYN proxy's rewrites (`lb::synproxy` has the logic): the segments
//! the proxy sends in a handshake it takes part in, each written in place
//! over a segment it received, and the sequence translation of the
//! segments it forwards.
//!
//! The handshake's segments are written afresh, like a reset (`rst`): an
//! IPv4 header without options (TTL 64, DF set), a TCP header whose only
//! option is the MSS on a SYN, no payload, both checksums computed in
//! full (three segments per connection, so the full sum costs nothing
//! worth saving). The caller reads what it needs from the received
//! segment ([`read`]) before the bytes are overwritten, and gives a buffer
//! of at least [`HANDSHAKE_LEN`] bytes (it grows the frame when the
//! received one was shorter).
//!
//! Options: only the MSS is offered, to the client in the SYN-ACK and to
//! the real server in the SYN, so neither side uses window scaling, SACK
//! or timestamps. That is the simplest correct choice: a cookie has no
//! room to remember the client's window scale or timestamp, and the proxy
//! does not rewrite windows or SACK blocks. The cost: windows are at most
//! 64 KiB (a connection moves at most 64 KiB per round trip, about
//! 10 Mbit/s at 50 ms), and losses are recovered without SACK.
//!
//! Forwarded segments are translated with incremental checksum updates:
//! a client's acknowledgment number (when ACK is set, resets included)
//! gains the delta on its way to the real server, a real server's
//! sequence number loses it on its way to the client.

use super::{nat, Endpoint, XmitError};
use crate::wire::{icmp, ipv4, tcp};

/// TTL of the segments the proxy originates.
pub const PROXY_TTL: u8 = 64;

/// Length of the longest segment the proxy writes (IPv4 and TCP headers
/// and the MSS option).
pub const HANDSHAKE_LEN: usize = ipv4::MIN_HEADER_LEN + tcp::MIN_HEADER_LEN + tcp::option::MSS_LEN;

/// What the proxy reads from a received TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Source address and port.
    pub src: Endpoint,
    /// Destination address and port.
    pub dst: Endpoint,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Receive window.
    pub window: u16,
    /// The MSS option, if any.
    pub mss: Option<u16>,
}

/// Reads a whole IPv4 packet carrying a whole TCP header; `None` for
/// anything else.
pub fn read(ip: &[u8]) -> Option<Facts> {
    let p = ipv4::Packet::new_checked(ip).ok()?;
    if p.protocol() != ipv4::Protocol::Tcp {
        return None;
    }
    let t = tcp::Packet::new_checked(p.payload()).ok()?;
    Some(Facts {
        src: Endpoint::new(p.src_addr(), t.src_port()),
        dst: Endpoint::new(p.dst_addr(), t.dst_port()),
        seq: t.seq_number(),
        ack: t.ack_number(),
        window: t.window(),
        mss: t.mss_option(),
    })
}

/// One handshake segment the proxy sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// From.
    pub src: Endpoint,
    /// To.
    pub dst: Endpoint,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (0 on a SYN).
    pub ack: u32,
    /// TCP flags.
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// The MSS option (SYN and SYN-ACK), or none.
    pub mss: Option<u16>,
}

impl Handshake {
    /// The SYN-ACK answering a client's SYN (`syn`) with `cookie` as the
    /// proxy's ISN, offering `mss`.
    pub fn syn_ack(syn: &Facts, cookie: u32, mss: u16) -> Handshake {
        Handshake {
            src: syn.dst,
            dst: syn.src,
            seq: cookie,
            ack: syn.seq.wrapping_add(1),
            flags: tcp::Flags::SYN | tcp::Flags::ACK,
            window: u16::MAX,
            mss: Some(mss),
        }
    }

    /// The SYN to the real server on the client's behalf: the client's
    /// address, port and ISN, the granted MSS, the client's window.
    pub fn syn(client: Endpoint, real: Endpoint, client_isn: u32, mss: u16, window: u16) -> Self {
        Handshake {
            src: client,
            dst: real,
            seq: client_isn,
            ack: 0,
            flags: tcp::Flags::SYN,
            window,
            mss: Some(mss),
        }
    }

    /// The ACK completing the real server's handshake, answering its
    /// SYN-ACK (`syn_ack`, from the real server to the client).
    pub fn ack(syn_ack: &Facts, client_isn: u32, window: u16) -> Handshake {
        Handshake {
            src: syn_ack.dst,
            dst: syn_ack.src,
            seq: client_isn.wrapping_add(1),
            ack: syn_ack.seq.wrapping_add(1),
            flags: tcp::Flags::ACK,
            window,
            mss: None,
        }
    }

    /// Writes the segment over the start of `ip`; returns its IPv4 total
    /// length (the caller cuts the frame to it), or `None`, with nothing
    /// written, when `ip` is shorter than the segment.
    pub fn write(&self, ip: &mut [u8]) -> Option<usize> {
        let options = if self.mss.is_some() {
            tcp::option::MSS_LEN
        } else {
            0
        };
        let th_len = tcp::MIN_HEADER_LEN + options;
        let total = ipv4::MIN_HEADER_LEN + th_len;
        let ip = ip.get_mut(..total)?;
        let (ih, th) = ip.split_at_mut(ipv4::MIN_HEADER_LEN);
        let mut p = ipv4::Packet::init_header(ih).ok()?;
        p.set_total_len(total as u16);
        p.set_unfragmented(true);
        p.set_ttl(PROXY_TTL);
        p.set_protocol(ipv4::Protocol::Tcp);
        p.set_src_addr(self.src.ip);
        p.set_dst_addr(self.dst.ip);
        p.fill_checksum();
        let mut t = tcp::Packet::init_header(&mut *th).ok()?;
        t.set_header_len(th_len);
        t.set_src_port(self.src.port);
        t.set_dst_port(self.dst.port);
        t.set_seq_number(self.seq);
        t.set_ack_number(self.ack);
        t.set_flags(tcp::Flags(self.flags));
        t.set_window(self.window);
        if let Some(mss) = self.mss {
            let o = &mut th[tcp::MIN_HEADER_LEN..th_len];
            o[0] = tcp::option::MSS;
            o[1] = tcp::option::MSS_LEN as u8;
            o[2..4].copy_from_slice(&mss.to_be_bytes());
        }
        tcp::Packet::new_unchecked(th).fill_checksum(self.src.ip, self.dst.ip);
        Some(total)
    }
}

/// A client's segment of a proxied connection to its real server: NAT's
/// rewrite, and the acknowledgment number plus `delta` when ACK is set.
/// On any error the packet is left as it was.
pub fn to_real_server(ip: &mut [u8], real: Endpoint, delta: u32) -> Result<(), XmitError> {
    tcp_of(ip)?;
    nat::to_real_server(ip, real)?;
    let mut t = tcp_of(ip)?;
    if t.flags().ack() {
        let ack = t.ack_number().wrapping_add(delta);
        t.set_ack_number_patched(ack);
    }
    Ok(())
}

/// A real server's segment of a proxied connection to the client: NAT's
/// rewrite, and the sequence number minus `delta`. On any error the
/// packet is left as it was.
pub fn to_client(ip: &mut [u8], vip: Endpoint, delta: u32) -> Result<(), XmitError> {
    tcp_of(ip)?;
    nat::from_real_server(ip, vip)?;
    let mut t = tcp_of(ip)?;
    let seq = t.seq_number().wrapping_sub(delta);
    t.set_seq_number_patched(seq);
    Ok(())
}

/// An ICMP error about a real server's segment of a proxied connection,
/// on its way to that server: the quoted segment's sequence number gains
/// `delta` (back to the server's numbering, which the server checks before
/// it believes an error such as "fragmentation needed"). Call before
/// `nat::translate_icmp_error`, which recomputes the ICMP checksum. On any
/// error the packet is left as it was.
pub fn shift_quoted_seq(ip: &mut [u8], delta: u32) -> Result<(), XmitError> {
    let mut p = ipv4::Packet::new_checked(ip).map_err(|_| XmitError::Unsupported)?;
    if p.protocol() != ipv4::Protocol::Icmp {
        return Err(XmitError::Unsupported);
    }
    let mut msg = icmp::Packet::new_checked(p.payload_mut()).map_err(|_| XmitError::Unsupported)?;
    let mut q =
        ipv4::Packet::new_checked_quoted(msg.data_mut()).map_err(|_| XmitError::Unsupported)?;
    if q.protocol() != ipv4::Protocol::Tcp {
        return Err(XmitError::Unsupported);
    }
    let mut t = tcp::Quoted::new_checked(q.payload_mut()).map_err(|_| XmitError::Unsupported)?;
    let seq = t.seq_number().wrapping_add(delta);
    t.set_seq_number_patched(seq);
    Ok(())
}

/// The TCP header of a whole IPv4 packet carrying one.
fn tcp_of(ip: &mut [u8]) -> Result<tcp::Packet<&mut [u8]>, XmitError> {
    let (hl, end) = {
        let p = ipv4::Packet::new_checked(&*ip).map_err(|_| XmitError::Unsupported)?;
        if p.protocol() != ipv4::Protocol::Tcp {
            return Err(XmitError::Unsupported);
        }
        (p.header_len(), usize::from(p.total_len()))
    };
    let l4 = ip.get_mut(hl..end).ok_or(XmitError::Unsupported)?;
    tcp::Packet::new_checked(l4).map_err(|_| XmitError::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CLIENT: Endpoint = Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 40000);
    const VIP: Endpoint = Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80);
    const RIP: Endpoint = Endpoint::new(Ipv4Addr::new(10, 1, 0, 11), 8080);

    /// RFC 1071, independently of `wire::checksum`.
    fn csum(data: &[u8]) -> u16 {
        crate::testutil::rfc1071(data)
    }

    fn sums_ok(ip: &[u8]) -> bool {
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&((total - 20) as u16).to_be_bytes());
        pseudo.extend_from_slice(&ip[20..total]);
        csum(&ip[..20]) == 0 && csum(&pseudo) == 0
    }

    /// A segment as a client or server would send it, options included.
    fn segment(
        src: Endpoint,
        dst: Endpoint,
        seq: u32,
        ack: u32,
        flags: u8,
        opts: &[u8],
    ) -> Vec<u8> {
        let h = Handshake {
            src,
            dst,
            seq,
            ack,
            flags,
            window: 29200,
            mss: None,
        };
        let mut b = vec![0u8; 40 + opts.len()];
        h.write(&mut b).unwrap();
        b[32] = (((20 + opts.len()) / 4) as u8) << 4;
        b[40..].copy_from_slice(opts);
        b[2..4].copy_from_slice(&((40 + opts.len()) as u16).to_be_bytes());
        let p = &mut b;
        p[10] = 0;
        p[11] = 0;
        let ck = csum(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        tcp::Packet::new_unchecked(&mut p[20..]).fill_checksum(src.ip, dst.ip);
        b
    }

    /// Linux's SYN options: MSS 1460, SACK permitted, timestamps, NOP,
    /// window scale 7.
    const LINUX_SYN_OPTS: [u8; 20] = [
        2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    #[test]
    fn reads_the_mss_among_linux_syn_options() {
        let syn = segment(CLIENT, VIP, 1000, 0, tcp::Flags::SYN, &LINUX_SYN_OPTS);
        let f = read(&syn).unwrap();
        assert_eq!(f.mss, Some(1460));
        assert_eq!((f.src, f.dst, f.seq), (CLIENT, VIP, 1000));
    }

    #[test]
    fn the_syn_ack_answers_the_syn_with_the_cookie_and_only_mss() {
        let mut b = segment(CLIENT, VIP, 1000, 0, tcp::Flags::SYN, &LINUX_SYN_OPTS);
        let f = read(&b).unwrap();
        let len = Handshake::syn_ack(&f, 0xdead_beef, 1460)
            .write(&mut b)
            .unwrap();
        b.truncate(len);
        assert_eq!(len, HANDSHAKE_LEN);
        assert!(sums_ok(&b));
        let g = read(&b).unwrap();
        assert_eq!((g.src, g.dst), (VIP, CLIENT));
        assert_eq!((g.seq, g.ack), (0xdead_beef, 1001));
        assert_eq!(g.mss, Some(1460));
        assert_eq!(b[33], tcp::Flags::SYN | tcp::Flags::ACK);
        assert_eq!(b[32] >> 4, 6, "MSS is the only option");
    }

    #[test]
    fn a_segment_does_not_fit_a_short_buffer() {
        let mut b = vec![0u8; HANDSHAKE_LEN - 1];
        let h = Handshake::syn(CLIENT, RIP, 5, 1460, 100);
        assert_eq!(h.write(&mut b), None);
        assert!(b.iter().all(|&x| x == 0));
    }

    #[test]
    fn the_ack_to_the_server_acknowledges_its_isn() {
        let mut b = segment(
            RIP,
            CLIENT,
            7000,
            1001,
            tcp::Flags::SYN | tcp::Flags::ACK,
            &[],
        );
        let f = read(&b).unwrap();
        let len = Handshake::ack(&f, 1000, 512).write(&mut b).unwrap();
        b.truncate(len);
        assert!(sums_ok(&b));
        let g = read(&b).unwrap();
        assert_eq!((g.src, g.dst, g.seq, g.ack), (CLIENT, RIP, 1001, 7001));
        assert_eq!(g.window, 512);
    }

    #[test]
    fn client_segments_gain_the_delta_in_their_ack() {
        let mut b = segment(CLIENT, VIP, 1001, 101, tcp::Flags::ACK, b"GET /");
        to_real_server(&mut b, RIP, 7000).unwrap();
        let g = read(&b).unwrap();
        assert_eq!((g.dst, g.seq, g.ack), (RIP, 1001, 7101));
        assert!(sums_ok(&b));
    }

    #[test]
    fn client_resets_without_ack_keep_their_numbers() {
        let mut b = segment(CLIENT, VIP, 1001, 0, tcp::Flags::RST, &[]);
        to_real_server(&mut b, RIP, 7000).unwrap();
        let g = read(&b).unwrap();
        assert_eq!((g.seq, g.ack), (1001, 0));
        assert!(sums_ok(&b));
    }

    #[test]
    fn server_segments_lose_the_delta_in_their_seq() {
        let mut b = segment(RIP, CLIENT, 7101, 1006, tcp::Flags::ACK, b"200 OK");
        to_client(&mut b, VIP, 7000).unwrap();
        let g = read(&b).unwrap();
        assert_eq!((g.src, g.seq, g.ack), (VIP, 101, 1006));
        assert!(sums_ok(&b));
    }

    #[test]
    fn non_tcp_is_left_untouched() {
        let mut b = segment(CLIENT, VIP, 1, 2, tcp::Flags::ACK, &[]);
        b[9] = 17;
        let before = b.clone();
        assert_eq!(to_real_server(&mut b, RIP, 5), Err(XmitError::Unsupported));
        assert_eq!(to_client(&mut b, VIP, 5), Err(XmitError::Unsupported));
        assert_eq!(b, before);
    }
}
