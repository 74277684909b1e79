//! Carrying the client's address to the real server (`client_address` of
//! a TCP virtual server): the PROXY protocol v2 header before the
//! client's first byte ([`proxy_v2`]), or the TOA TCP option ([`toa`]).
//!
//! Why: with FullNAT the real server sees the balancer's local address,
//! not the client's. The two hooks here run on a connection's segments
//! after the balancer's rewrite towards the real server
//! ([`to_real_server`]) and before its rewrite of the server's replies
//! ([`to_client`]), for NAT today and FullNAT alike; they read nothing
//! but the bytes from the IPv4 header on and the connection's
//! [`Carried`] state, which lives beside the connection table (8 bytes a
//! connection, indexed by `ConnId::index()`, as the SYN proxy's delta).
//!
//! Growing a segment in the middle is the caller's ([`Grow`]: tailroom and
//! a move of the bytes after the insertion point); checksums are patched
//! incrementally: the inserted bytes start at a 4-byte boundary of the
//! TCP segment and are an even count, so every byte after them keeps its
//! place in its 16-bit word and its share of the sum.
//!
//! What each mode does to a connection whose bare SYN the hook saw (the
//! first SYN after the balancer created the connection and cleared its
//! state arms it with the client's ISN + 1, `first`; later SYNs do not):
//! - TOA: the option is inserted first among the options of every client
//!   segment whose sequence number is `first` (the handshake's ACK, the
//!   first data segment, their retransmissions): the kernel module reads
//!   it from the segment that completes the handshake. Nothing else
//!   changes.
//! - PROXY v2: the header is inserted before the payload of the segment
//!   starting at `first` that carries data or a FIN (and again in any
//!   retransmission of it); later client segments are shifted by its
//!   length, and the server's acknowledgments (ACK field, SACK blocks)
//!   shifted back ([`seq`]).
//! - Both: the MSS the real server offers in its SYN-ACK is lowered by the
//!   growth (8 or 28 bytes), so a full-sized client segment still fits the
//!   path's MTU once it grows. A segment that would not fit the outgoing
//!   MTU, whose TCP header would pass 60 bytes (TOA), or that has no room
//!   to grow, is not grown: counted ([`Skip`]). A PROXY header that cannot
//!   be inserted drops the segment (the server's stream must not start
//!   without it): the caller checks the MTU first ([`growth_of`]) and
//!   answers a segment too big to carry the header with an ICMP
//!   "fragmentation needed" for 28 bytes less, as a router would, so the
//!   client sends it again smaller (with the MSS lowered, only a client
//!   ignoring the MSS or a port MTU below the real server's gets there).

pub mod proxy_v2;
pub mod seq;
pub mod toa;

use crate::lb::xmit::Endpoint;
use crate::wire::checksum::Patch;
use bytemuck::{Pod, Zeroable};
use seq::Shift;

/// How a virtual server carries its clients' addresses to its real
/// servers (`client_address`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAddress {
    /// The PROXY protocol v2 header before the client's first byte.
    ProxyV2,
    /// The TOA TCP option (kind 254) on the handshake's last ACK.
    Toa,
}

impl ClientAddress {
    /// The configuration's name: `"proxy-v2"` or `"toa"`.
    pub fn name(self) -> &'static str {
        match self {
            ClientAddress::ProxyV2 => "proxy-v2",
            ClientAddress::Toa => "toa",
        }
    }

    /// The mode named `name` in the configuration.
    pub fn from_name(name: &str) -> Option<ClientAddress> {
        match name {
            "proxy-v2" => Some(ClientAddress::ProxyV2),
            "toa" => Some(ClientAddress::Toa),
            _ => None,
        }
    }

    /// Bytes one insertion adds to a segment (IPv4).
    pub fn growth(self) -> usize {
        match self {
            ClientAddress::ProxyV2 => proxy_v2::LEN_V4,
            ClientAddress::Toa => toa::LEN,
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One connection's state, beside its table entry: plain old data, so
/// the side array lives in huge-page memory like the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Zeroable, Pod)]
#[repr(C)]
pub struct Carried {
    /// The client's first data byte's sequence number (ISN + 1).
    pub first: u32,
    /// Bytes inserted into the client's stream (PROXY v2), 0 for TOA.
    pub delta: u16,
    /// 1 once the client's SYN was seen; 0: the hooks leave the
    /// connection alone (a connection installed by sync, for one).
    pub armed: u8,
    /// Insertions made so far (saturating).
    pub inserted: u8,
}

impl Carried {
    /// The state a connection whose client SYN had sequence number `isn`.
    pub fn armed(isn: u32, mode: ClientAddress) -> Carried {
        Carried {
            first: isn.wrapping_add(1),
            delta: match mode {
                ClientAddress::ProxyV2 => proxy_v2::LEN_V4 as u16,
                ClientAddress::Toa => 0,
            },
            armed: 1,
            inserted: 0,
        }
    }

    /// The mode an armed connection carries by (PROXY v2 shifts its
    /// stream, TOA does not); `None` before its SYN.
    pub fn mode(&self) -> Option<ClientAddress> {
        match (self.armed, self.delta) {
            (0, _) => None,
            (_, 0) => Some(ClientAddress::Toa),
            _ => Some(ClientAddress::ProxyV2),
        }
    }

    /// The sequence shift of the client's stream.
    fn shift(&self) -> Shift {
        Shift {
            first: self.first,
            len: u32::from(self.delta),
        }
    }
}

/// A packet the hook may grow in the middle: the bytes from the IPv4
/// header on, and a way to open a gap in them.
pub trait Grow {
    /// The packet's bytes from the IPv4 header on (possibly followed by
    /// link-layer padding).
    fn bytes(&mut self) -> &mut [u8];
    /// Opens `n` bytes at offset `at` of [`Grow::bytes`] (their content
    /// unspecified), moving what follows `n` bytes on; false, and nothing
    /// changed, when the buffer has no room for them.
    fn insert(&mut self, at: usize, n: usize) -> bool;
}

impl Grow for Vec<u8> {
    fn bytes(&mut self) -> &mut [u8] {
        self
    }
    fn insert(&mut self, at: usize, n: usize) -> bool {
        if at > self.len() {
            return false;
        }
        self.splice(at..at, std::iter::repeat_n(0, n));
        true
    }
}

/// Why a segment that should have grown did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The buffer had no tailroom for the bytes.
    NoRoom,
    /// The TCP header would pass 60 bytes (TOA).
    HeaderFull,
    /// The grown packet would pass the outgoing MTU.
    TooBig,
    /// An IP fragment: its length is not the segment's.
    Fragment,
}

/// What a hook did to one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do (or not a TCP segment the hook understands).
    Unchanged,
    /// The client's SYN armed the connection's state.
    Armed,
    /// Sequence or acknowledgment numbers translated, or the MSS lowered.
    Translated,
    /// The header or option was inserted; `again` when it had been before
    /// (a retransmission).
    Inserted {
        /// Not the connection's first insertion.
        again: bool,
    },
    /// It should have grown and did not; a PROXY header not inserted
    /// means the segment must be dropped.
    Skipped(Skip),
}

/// The TCP segment's place in an IPv4 packet: offsets and what the hooks
/// read.
struct Seg {
    ihl: usize,
    total: usize,
    hl: usize,
    flags: u8,
    seq: u32,
    fragment: bool,
}

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;
const MAX_TCP_HEADER: usize = 60;

/// The TCP segment of the IPv4 packet `ip`; `None` when it is not one
/// with a whole TCP header (a later fragment has none).
fn parse(ip: &[u8]) -> Option<Seg> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl || ip[9] != 6 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & 0x1fff != 0 {
        return None;
    }
    let fragment = frag & 0x2000 != 0;
    if total < ihl + 20 || total > ip.len() {
        return None;
    }
    let t = &ip[ihl..total];
    let hl = usize::from(t[12] >> 4) * 4;
    if hl < 20 || hl > t.len() {
        return None;
    }
    Some(Seg {
        ihl,
        total,
        hl,
        flags: t[13],
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        fragment,
    })
}

/// The hook on a client's segment after the rewrite towards the real
/// server (`pkt`'s bytes from the IPv4 header on, checksums right):
/// arms `state` on a bare SYN, inserts the TOA option or the PROXY v2
/// header where they belong, shifts later sequence numbers (PROXY v2).
/// `ends` are the client and the address it connected to (the VIP), as
/// the PROXY header names them; `mtu` the outgoing port's IP MTU.
pub fn to_real_server<G: Grow>(
    pkt: &mut G,
    mode: ClientAddress,
    state: &mut Carried,
    ends: (Endpoint, Endpoint),
    mtu: usize,
) -> Outcome {
    let Some(s) = parse(pkt.bytes()) else {
        return Outcome::Unchanged;
    };
    if s.flags & (SYN | ACK | RST) == SYN {
        // Only a connection's first SYN arms it (the balancer clears the
        // state of a connection it creates): a SYN on a live connection,
        // stray or spoofed with its tuple, must not move `first`.
        if state.armed != 0 {
            return Outcome::Unchanged;
        }
        *state = Carried::armed(s.seq, mode);
        return Outcome::Armed;
    }
    if state.armed == 0 {
        return Outcome::Unchanged;
    }
    if !carries(&s, mode, state) {
        return match mode {
            ClientAddress::Toa => Outcome::Unchanged,
            ClientAddress::ProxyV2 => shift_only(pkt, &s, state),
        };
    }
    match mode {
        ClientAddress::Toa => {
            if s.hl + toa::LEN > MAX_TCP_HEADER {
                return Outcome::Skipped(Skip::HeaderFull);
            }
            let option = toa::option(ends.0.ip, ends.0.port);
            insert(pkt, &s, state, s.ihl + 20, &option, mtu, true)
        }
        ClientAddress::ProxyV2 => {
            let header = proxy_v2::header_v4(ends.0, ends.1);
            insert(pkt, &s, state, s.ihl + s.hl, &header, mtu, false)
        }
    }
}

/// True when the client segment `s` of an armed connection is one `mode`
/// writes into: the one starting at `first` (no SYN, no RST) that carries
/// data or a FIN (PROXY v2) or an ACK (TOA).
fn carries(s: &Seg, mode: ClientAddress, state: &Carried) -> bool {
    if s.seq != state.first || s.flags & (SYN | RST) != 0 {
        return false;
    }
    match mode {
        ClientAddress::Toa => s.flags & ACK != 0,
        ClientAddress::ProxyV2 => s.total - s.ihl - s.hl > 0 || s.flags & FIN != 0,
    }
}

/// The bytes [`to_real_server`] would insert into the client segment `ip`
/// (the IPv4 packet, before or after the rewrite towards the real
/// server): 0 when none. The caller checks a PROXY v2 header against the
/// outgoing MTU before the rewrite with it, to answer a segment that could
/// not carry it with an ICMP "fragmentation needed" the client
/// understands.
pub fn growth_of(ip: &[u8], mode: ClientAddress, state: &Carried) -> usize {
    match parse(ip) {
        Some(s) if state.armed != 0 && carries(&s, mode, state) => mode.growth(),
        _ => 0,
    }
}

/// PROXY v2, a client segment that carries no header: its sequence
/// number shifted when it starts past the first byte.
fn shift_only<G: Grow>(pkt: &mut G, s: &Seg, state: &Carried) -> Outcome {
    let tcp = &mut pkt.bytes()[s.ihl..s.total];
    if seq::shift_client_seq(tcp, state.shift()) {
        Outcome::Translated
    } else {
        Outcome::Unchanged
    }
}

/// Inserts `bytes` at offset `at` of the IPv4 packet (the start of the
/// TCP options when `option`, else of the payload) and patches lengths
/// and checksums.
fn insert<G: Grow>(
    pkt: &mut G,
    s: &Seg,
    state: &mut Carried,
    at: usize,
    bytes: &[u8],
    mtu: usize,
    option: bool,
) -> Outcome {
    if s.fragment {
        return Outcome::Skipped(Skip::Fragment);
    }
    let n = bytes.len();
    if s.total + n > mtu {
        return Outcome::Skipped(Skip::TooBig);
    }
    if !pkt.insert(at, n) {
        return Outcome::Skipped(Skip::NoRoom);
    }
    let ip = pkt.bytes();
    ip[at..at + n].copy_from_slice(bytes);
    // IPv4 total length.
    let new_total = (s.total + n) as u16;
    let ip_ck = u16::from_be_bytes([ip[10], ip[11]]);
    let ip_ck = Patch::default()
        .word(s.total as u16, new_total)
        .apply(ip_ck);
    ip[2..4].copy_from_slice(&new_total.to_be_bytes());
    ip[10..12].copy_from_slice(&ip_ck.to_be_bytes());
    // TCP: the pseudo-header's length, the data offset (an option), and
    // the inserted words, each an even offset from the segment's start.
    let t = &mut ip[s.ihl..s.total + n];
    let old_len = (s.total - s.ihl) as u16;
    let mut patch = Patch::default().word(old_len, old_len + n as u16);
    if option {
        let old_word = u16::from_be_bytes([t[12], t[13]]);
        t[12] = (((s.hl + n) / 4) as u8) << 4 | (t[12] & 0x0f);
        patch = patch.word(old_word, u16::from_be_bytes([t[12], t[13]]));
    }
    for w in bytes.chunks(2) {
        let word = u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]);
        patch = patch.word(0, word);
    }
    let ck = patch.apply(u16::from_be_bytes([t[16], t[17]]));
    t[16..18].copy_from_slice(&ck.to_be_bytes());
    let again = state.inserted > 0;
    state.inserted = state.inserted.saturating_add(1);
    Outcome::Inserted { again }
}

/// The hook on a real server's segment before the rewrite towards the
/// client (`ip`: the bytes from the IPv4 header on): lowers the MSS of its
/// SYN-ACK by the growth, and (PROXY v2) shifts its acknowledgments back.
pub fn to_client(ip: &mut [u8], mode: ClientAddress, state: &Carried) -> Outcome {
    let Some(s) = parse(ip) else {
        return Outcome::Unchanged;
    };
    if state.armed == 0 {
        return Outcome::Unchanged;
    }
    let tcp = &mut ip[s.ihl..s.total];
    let mut changed = false;
    if s.flags & SYN != 0 {
        changed |= seq::clamp_mss(tcp, s.hl, mode.growth() as u16);
    }
    if state.delta != 0 {
        changed |= seq::translate_server_acks(tcp, s.hl, s.flags & ACK != 0, state.shift());
    }
    if changed {
        Outcome::Translated
    } else {
        Outcome::Unchanged
    }
}

/// An ICMP error about a client segment of a PROXY v2 connection (`ip`:
/// the error, from its IPv4 header on), on its way to the client: the
/// quoted sequence number, shifted on the way to the server, is shifted
/// back so the client's TCP finds it among what it sent (Linux ignores an
/// error quoting a sequence number outside its send window: path MTU
/// discovery would stall). Call before the NAT translation of the error,
/// which recomputes the ICMP checksum. True when it changed.
pub fn unshift_quoted_seq(ip: &mut [u8], state: &Carried) -> bool {
    if state.armed == 0 || state.delta == 0 {
        return false;
    }
    let Some(seq) = quoted_seq(ip) else {
        return false;
    };
    let shift = state.shift();
    if !seq::after(seq, shift.first) {
        return false;
    }
    crate::lb::xmit::synproxy::shift_quoted_seq(ip, shift.len.wrapping_neg()).is_ok()
}

/// The sequence number of the TCP segment an ICMP error quotes.
fn quoted_seq(ip: &[u8]) -> Option<u32> {
    use crate::wire::{icmp, ipv4, tcp as wtcp};
    let p = ipv4::Packet::new_checked(ip).ok()?;
    let msg = icmp::Packet::new_checked(p.payload()).ok()?;
    let q = ipv4::Packet::new_checked_quoted(msg.data()).ok()?;
    if q.protocol() != ipv4::Protocol::Tcp {
        return None;
    }
    Some(wtcp::Quoted::new_checked(q.payload()).ok()?.seq_number())
}

#[cfg(test)]
mod tests;
