//! The connection-sync wire format (versions 3 and 4): what the active balancer
//! tells its standby about its connections, over UDP on the management
//! link. `docs/sync-protocol.md` is the specification, byte by byte; the
//! tests below check the layout against it.
//!
//! One datagram is a 32-byte [`Header`], then `count` fixed-size 36-byte
//! [`Record`]s, then a 16-byte MAC: at most [`MAX_DATAGRAM_LEN`] bytes in
//! all (37 records), so a datagram never fragments on a 1500-byte MTU.
//! All fields are big-endian. Version 3 added the FullNAT local address
//! and port after version 2's 28 bytes; version-2 datagrams (28-byte
//! records, no local end) are still read, so a standby upgraded first
//! keeps its peer's connections. Version 4 (IPv6) names the address family
//! of its records in the header (byte 7): its IPv6 records are 80 bytes
//! ([`crate::ha::sync6::Record6`]), so every record of a datagram is of one
//! family and one size. A sender writes IPv4 connections as version 3 (an
//! older standby keeps reading them) and IPv6 ones as version 4.
//!
//! Why it is built this way:
//! - **Fixed-size records, no TLVs.** Every record has the same layout, so
//!   the count and the length check each other exactly and a record is
//!   decoded without any length to trust. Anything that changes the
//!   layout or the meaning of a field is a new version; a receiver drops
//!   (and counts) versions it does not speak.
//! - **Servers by address, not by index.** Service and real-server indexes
//!   are positions in one balancer's configuration; the peer's may differ.
//!   A record names the client, the virtual service and the real server by
//!   address and port; the receiver finds its own indexes from its own
//!   configuration. The reply tuple is not sent: with NAT, DR and TUN it
//!   follows from these three endpoints and the service's forwarding
//!   method; FullNAT's names the local address and port, which the record
//!   carries.
//! - **Authenticated, replay-proof.** The header names the sender (its
//!   configured id), the sender's boot (a number that grows with every
//!   start) and a 64-bit sequence number; the trailing MAC
//!   ([`crate::ha::key::SyncKey`], HMAC-SHA256 truncated to 16 bytes) covers
//!   everything before it. With a key, a receiver accepts only datagrams
//!   whose MAC verifies, and each (boot, sequence) once
//!   ([`crate::ha::peer::PeerGate`]). Without a key the MAC is written zero
//!   and not checked.
//! - **Untrusted input.** [`Packet::new_checked`] checks the magic, the
//!   version, the message type and the count against the length before any
//!   accessor runs, and says why it refused with a named [`Error`] a
//!   receiver counts. A record whose protocol or state is unknown is an
//!   error for that record only ([`RecordError`]); the others still apply.
//! - **No allocation.** [`Builder`] writes into a buffer the caller owns
//!   and says when the datagram is full.

use crate::ha::key::{SyncKey, MAC_LEN};
pub use crate::ha::sync6::{Record6, MAX_RECORDS6, RECORD6_LEN};
use crate::lb::service::Protocol;
use crate::lb::sync::SyncEventOf;
use crate::lb::tcp_state::State;
use crate::lb::xmit::{Endpoint, EndpointOf};
use crate::wire::{get_u16, get_u32, put_u16};
use std::fmt;
use std::net::Ipv4Addr;

mod field {
    // Header.
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const FLAGS: usize = 6;
    /// Version 4: the address family of the records (reserved before).
    pub const FAMILY: usize = 7;
    pub const SENDER: usize = 8;
    pub const BOOT: usize = 12;
    pub const SEQ: usize = 20;
    pub const COUNT: usize = 28;
    // 30: reserved (u16).
    pub const HEADER_LEN: usize = 32;

    /// Offsets within a record.
    pub mod record {
        pub const PROTOCOL: usize = 0;
        pub const STATE: usize = 1;
        pub const FLAGS: usize = 2;
        // 3: reserved (u8).
        pub const CLIENT_ADDR: usize = 4;
        pub const VIP_ADDR: usize = 8;
        pub const REAL_ADDR: usize = 12;
        pub const CLIENT_PORT: usize = 16;
        pub const VIP_PORT: usize = 18;
        pub const REAL_PORT: usize = 20;
        // 22: reserved (u16).
        pub const TIMEOUT: usize = 24;
        /// Where a version-2 record ends.
        pub const LEN_V2: usize = 28;
        pub const LOCAL_ADDR: usize = 28;
        pub const LOCAL_PORT: usize = 32;
        // 34: reserved (u16).
        pub const LEN: usize = 36;
    }
}

/// The first four bytes of every sync datagram.
pub const MAGIC: [u8; 4] = *b"RVSS";
/// The version this module writes (and reads).
pub const VERSION: u8 = 3;
/// The previous version, still read: its records end before the local
/// address (no FullNAT).
pub const VERSION_V2: u8 = 2;
/// The version whose header names its records' address family (byte 7:
/// [`Family`]): what IPv6 connections are sent as.
pub const VERSION_FAMILY: u8 = 4;
/// Length of the header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of one connection record.
pub const RECORD_LEN: usize = field::record::LEN;
/// Length of one version-2 connection record.
pub const RECORD_LEN_V2: usize = field::record::LEN_V2;
/// Length of the MAC that ends every datagram.
pub const TRAILER_LEN: usize = MAC_LEN;
/// The shortest datagram: a header and a MAC, no record.
pub const MIN_DATAGRAM_LEN: usize = HEADER_LEN + TRAILER_LEN;
/// The largest datagram a sender builds (UDP payload): with the IPv4 and
/// UDP headers, 1428 bytes, so it never fragments on a 1500-byte MTU.
pub const MAX_DATAGRAM_LEN: usize = 1400;
/// Records in a full datagram: 37 (32 + 37 × 36 + 16 = 1380 bytes).
pub const MAX_RECORDS: usize = (MAX_DATAGRAM_LEN - HEADER_LEN - TRAILER_LEN) / RECORD_LEN;
/// The UDP port sync datagrams go to unless the `[ha]` section says
/// otherwise.
pub const DEFAULT_PORT: u16 = 8848;

/// Header flag: this connections datagram is part of a full resync (an
/// answer to a [`MessageKind::ResyncRequest`]).
const FLAG_RESYNC: u8 = 0x01;
/// Record flag: the service forwards by DR or TUN, no reply seen yet.
pub(super) const RECORD_INPUT_ONLY: u8 = 0x01;
/// Record flag: the connection is gone; the receiver removes it.
pub(super) const RECORD_REMOVED: u8 = 0x02;
/// Record flag (version 3): FullNAT, the local address and port are set.
pub(super) const RECORD_LOCAL: u8 = 0x04;

/// The address family of a datagram's records (version 4's byte 7; a
/// version 2 or 3 datagram is IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Family {
    /// 4: IPv4 records, laid out as version 3's ([`RECORD_LEN`] bytes).
    Ipv4 = 4,
    /// 6: IPv6 records ([`RECORD6_LEN`] bytes).
    Ipv6 = 6,
}

impl Family {
    /// The family for a family byte; `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<Family> {
        match v {
            4 => Some(Family::Ipv4),
            6 => Some(Family::Ipv6),
            _ => None,
        }
    }

    /// The length of one record of this family (version 4).
    pub fn record_len(self) -> usize {
        match self {
            Family::Ipv4 => RECORD_LEN,
            Family::Ipv6 => RECORD6_LEN,
        }
    }
}

/// What a datagram says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageKind {
    /// 1: `count` connection records (count may be 0).
    Connections = 1,
    /// 2: a standby asks for the sender's whole table; no records.
    ResyncRequest = 2,
    /// 3: the end of a full resync; no records.
    ResyncDone = 3,
}

impl MessageKind {
    /// The kind for a type byte; `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<MessageKind> {
        match v {
            1 => Some(MessageKind::Connections),
            2 => Some(MessageKind::ResyncRequest),
            3 => Some(MessageKind::ResyncDone),
            _ => None,
        }
    }

    /// Datagrams of this kind may carry records.
    pub fn carries_records(self) -> bool {
        self == MessageKind::Connections
    }
}

/// A datagram's header, decoded (the record count aside: the
/// [`Builder`] keeps it and [`Packet::record_count`] reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// What the datagram says.
    pub kind: MessageKind,
    /// The records answer a resync request (connections datagrams only;
    /// ignored on the others).
    pub resync: bool,
    /// The sending balancer's id, from its configuration.
    pub sender: u32,
    /// The sender's boot: chosen at its start, larger than at any earlier
    /// start (its clock in nanoseconds since 1970).
    pub boot: u64,
    /// The sender's datagram counter within this boot, from 1.
    pub seq: u64,
}

/// Why a datagram was dropped: every reason is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Error {
    /// Shorter than the header and MAC, or than the records its count
    /// announces.
    Truncated,
    /// Does not start with [`MAGIC`]: not a sync datagram.
    ForeignMagic,
    /// A version other than [`VERSION`].
    UnsupportedVersion,
    /// A message type this version does not define.
    UnknownKind,
    /// Bytes after the announced records and MAC, or records in a message
    /// type that carries none.
    Malformed,
    /// Carries the receiver's own sender id (a loop, or a copied config).
    FromSelf,
    /// Not from the configured peer's address (`[ha] sync_peer`).
    UnknownPeer,
    /// From the peer's address but another UDP port than `sync_peer`'s.
    WrongPort,
    /// A key is configured and the MAC does not verify.
    BadMac,
    /// A key is configured and this (boot, sequence) was accepted already
    /// or is older than the replay window.
    Replay,
    /// A key is configured and the boot is older than the peer's current
    /// one (a datagram of an earlier run, replayed).
    StaleBoot,
    /// A resync request refused: the last full dump to the peer was too
    /// recent (`control::ha::DUMP_MIN_INTERVAL`).
    DumpRateLimited,
}

impl Error {
    /// Every reason, in counter order.
    pub const ALL: [Error; 12] = [
        Error::Truncated,
        Error::ForeignMagic,
        Error::UnsupportedVersion,
        Error::UnknownKind,
        Error::Malformed,
        Error::FromSelf,
        Error::UnknownPeer,
        Error::WrongPort,
        Error::BadMac,
        Error::Replay,
        Error::StaleBoot,
        Error::DumpRateLimited,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The name used in logs, stats and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::ForeignMagic => "foreign_magic",
            Error::UnsupportedVersion => "unsupported_version",
            Error::UnknownKind => "unknown_kind",
            Error::Malformed => "malformed",
            Error::FromSelf => "from_self",
            Error::UnknownPeer => "unknown_peer",
            Error::WrongPort => "wrong_port",
            Error::BadMac => "bad_mac",
            Error::Replay => "replay",
            Error::StaleBoot => "stale_boot",
            Error::DumpRateLimited => "dump_rate_limited",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Error {}

/// Why one record of a valid datagram was skipped: counted, and the
/// datagram's other records still apply. The first two are found by
/// [`Record::parse`], the others by the receiver against its own
/// configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum RecordError {
    /// A protocol number other than 6 (TCP) or 17 (UDP).
    UnknownProtocol,
    /// A state number beyond the last [`State`].
    UnknownState,
    /// No local virtual service has this protocol, VIP and port.
    UnknownService,
    /// The service has no such real server (nor sorry server).
    UnknownRealServer,
    /// A FullNAT service's record without a local address, or with one
    /// the service does not have.
    UnknownLocalAddress,
}

impl RecordError {
    /// Every reason, in counter order.
    pub const ALL: [RecordError; 5] = [
        RecordError::UnknownProtocol,
        RecordError::UnknownState,
        RecordError::UnknownService,
        RecordError::UnknownRealServer,
        RecordError::UnknownLocalAddress,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The name used in logs, stats and metrics.
    pub fn name(self) -> &'static str {
        match self {
            RecordError::UnknownProtocol => "unknown_protocol",
            RecordError::UnknownState => "unknown_state",
            RecordError::UnknownService => "unknown_service",
            RecordError::UnknownRealServer => "unknown_real_server",
            RecordError::UnknownLocalAddress => "unknown_local_address",
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for RecordError {}
/// One connection as the peer needs it to take the connection over,
/// over the addresses of one family: [`Record`] (IPv4) or
/// [`crate::ha::sync6::Record6`]; each has its own layout (`parse`,
/// `emit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordOf<A> {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// TCP state. UDP: rvs sends `Established` by convention and the
    /// receiver ignores it (a UDP connection has no state).
    pub state: State,
    /// DR or TUN and no reply seen: the input-only TCP transitions apply.
    pub input_only: bool,
    /// The connection is gone: the receiver removes it (the state and
    /// timeout carry no meaning then).
    pub removed: bool,
    /// The client's address and port.
    pub client: EndpointOf<A>,
    /// The virtual service's address and port.
    pub vip: EndpointOf<A>,
    /// The real server's address and port (or the sorry server's).
    pub real: EndpointOf<A>,
    /// Whole seconds the connection lives without further packets.
    pub timeout_s: u32,
    /// FullNAT: the local address and port the real server sees.
    pub local: Option<EndpointOf<A>>,
}

/// One IPv4 connection record.
pub type Record = RecordOf<Ipv4Addr>;

impl<A: Copy> RecordOf<A> {
    /// The flags byte: input-only, removed, local end present (the same
    /// bits in either family's layout).
    pub(crate) fn flags(&self) -> u8 {
        let flag = |set: bool, bit: u8| if set { bit } else { 0 };
        flag(self.input_only, RECORD_INPUT_ONLY)
            | flag(self.removed, RECORD_REMOVED)
            | flag(self.local.is_some(), RECORD_LOCAL)
    }

    /// The event a standby's worker installs (check [`RecordOf::removed`]
    /// first: a removal is not an install).
    pub fn event(&self) -> SyncEventOf<A> {
        SyncEventOf {
            protocol: self.protocol,
            state: self.state,
            input_only: self.input_only,
            client: self.client,
            vip: self.vip,
            real: self.real,
            timeout_s: self.timeout_s,
            local: self.local,
        }
    }
}

impl<A> From<SyncEventOf<A>> for RecordOf<A> {
    /// A worker's report of a new connection or a change of state.
    fn from(e: SyncEventOf<A>) -> RecordOf<A> {
        RecordOf {
            protocol: e.protocol,
            state: e.state,
            input_only: e.input_only,
            removed: false,
            client: e.client,
            vip: e.vip,
            real: e.real,
            timeout_s: e.timeout_s,
            local: e.local,
        }
    }
}

impl Record {
    /// Decodes one record: a version-3 one ([`RECORD_LEN`] bytes) or a
    /// version-2 one ([`RECORD_LEN_V2`] bytes, no local end).
    pub fn parse(b: &[u8]) -> Result<Record, RecordError> {
        use field::record as f;
        if b.len() < f::LEN_V2 {
            return Err(RecordError::UnknownProtocol);
        }
        let protocol = Protocol::from_number(b[f::PROTOCOL]).ok_or(RecordError::UnknownProtocol)?;
        let state = State::from_u8(b[f::STATE]).ok_or(RecordError::UnknownState)?;
        let flags = b[f::FLAGS];
        let endpoint =
            |addr, port| Endpoint::new(Ipv4Addr::from(get_u32(b, addr)), get_u16(b, port));
        Ok(Record {
            protocol,
            state,
            input_only: flags & RECORD_INPUT_ONLY != 0,
            removed: flags & RECORD_REMOVED != 0,
            client: endpoint(f::CLIENT_ADDR, f::CLIENT_PORT),
            vip: endpoint(f::VIP_ADDR, f::VIP_PORT),
            real: endpoint(f::REAL_ADDR, f::REAL_PORT),
            timeout_s: get_u32(b, f::TIMEOUT),
            local: (b.len() >= f::LEN && flags & RECORD_LOCAL != 0)
                .then(|| endpoint(f::LOCAL_ADDR, f::LOCAL_PORT)),
        })
    }

    /// Encodes the record; reserved bytes and flag bits are written zero.
    pub fn emit(&self, b: &mut [u8; RECORD_LEN]) {
        use field::record as f;
        *b = [0; RECORD_LEN];
        b[f::PROTOCOL] = self.protocol.number();
        b[f::STATE] = self.state as u8;
        b[f::FLAGS] = self.flags();
        b[f::CLIENT_ADDR..f::CLIENT_ADDR + 4].copy_from_slice(&self.client.ip.octets());
        b[f::VIP_ADDR..f::VIP_ADDR + 4].copy_from_slice(&self.vip.ip.octets());
        b[f::REAL_ADDR..f::REAL_ADDR + 4].copy_from_slice(&self.real.ip.octets());
        put_u16(b, f::CLIENT_PORT, self.client.port);
        put_u16(b, f::VIP_PORT, self.vip.port);
        put_u16(b, f::REAL_PORT, self.real.port);
        put_u32(b, f::TIMEOUT, self.timeout_s);
        if let Some(l) = self.local {
            b[f::LOCAL_ADDR..f::LOCAL_ADDR + 4].copy_from_slice(&l.ip.octets());
            put_u16(b, f::LOCAL_PORT, l.port);
        }
    }
}

#[inline]
fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

/// A view of a received sync datagram. The only way in is
/// [`Packet::new_checked`], so no accessor can panic.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    kind: MessageKind,
    /// The family of its records.
    family: Family,
    /// The length of its records: the version's (and family's).
    record_len: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps untrusted bytes (a UDP payload): the magic, a version read
    /// (2, 3 or 4), a known message type, for version 4 a known family, and
    /// exactly `count` records of the version's (and family's) length
    /// between the header and the MAC (none for a resync request or done
    /// marker). The MAC is not checked here ([`Packet::verify`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        let n = b.len().min(MAGIC.len());
        if b[..n] != MAGIC[..n] {
            return Err(Error::ForeignMagic);
        }
        if b.len() <= field::VERSION {
            return Err(Error::Truncated);
        }
        // The version before the length: a version-1 peer's 20-byte
        // datagrams are counted as the version they are.
        let version = b[field::VERSION];
        if ![VERSION, VERSION_V2, VERSION_FAMILY].contains(&version) {
            return Err(Error::UnsupportedVersion);
        }
        if b.len() < MIN_DATAGRAM_LEN {
            return Err(Error::Truncated);
        }
        let kind = MessageKind::from_u8(b[field::KIND]).ok_or(Error::UnknownKind)?;
        let (family, record_len) = match version {
            VERSION_V2 => (Family::Ipv4, RECORD_LEN_V2),
            VERSION => (Family::Ipv4, RECORD_LEN),
            _ => {
                let f = Family::from_u8(b[field::FAMILY]).ok_or(Error::Malformed)?;
                (f, f.record_len())
            }
        };
        let count = usize::from(get_u16(b, field::COUNT));
        if count != 0 && !kind.carries_records() {
            return Err(Error::Malformed);
        }
        let body = b.len() - MIN_DATAGRAM_LEN;
        let needed = count * record_len;
        if body < needed {
            return Err(Error::Truncated);
        }
        if body > needed {
            return Err(Error::Malformed);
        }
        Ok(Packet {
            buffer,
            kind,
            family,
            record_len,
        })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The protocol version ([`VERSION`], [`VERSION_V2`] or
    /// [`VERSION_FAMILY`] once checked).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// What the datagram says.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The family of its records ([`Packet::records`] for IPv4,
    /// [`Packet::records6`] for IPv6).
    pub fn family(&self) -> Family {
        self.family
    }

    /// The length of each of its records.
    pub fn record_len(&self) -> usize {
        self.record_len
    }

    /// The flags byte as on the wire (reserved bits included).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The records answer a resync request.
    pub fn resync(&self) -> bool {
        self.kind == MessageKind::Connections && self.flags() & FLAG_RESYNC != 0
    }

    /// The sender's id.
    pub fn sender(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SENDER)
    }

    /// The sender's boot.
    pub fn boot(&self) -> u64 {
        get_u64(self.buffer.as_ref(), field::BOOT)
    }

    /// The sender's datagram counter.
    pub fn seq(&self) -> u64 {
        get_u64(self.buffer.as_ref(), field::SEQ)
    }

    /// Records announced (and present, once checked).
    pub fn record_count(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::COUNT)
    }

    /// The header, decoded.
    pub fn header(&self) -> Header {
        Header {
            kind: self.kind,
            resync: self.resync(),
            sender: self.sender(),
            boot: self.boot(),
            seq: self.seq(),
        }
    }

    /// The 16 bytes after the records.
    pub fn mac(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[b.len() - TRAILER_LEN..]
    }

    /// True when the MAC is `key`'s over everything before it.
    pub fn verify(&self, key: &SyncKey) -> bool {
        let b = self.buffer.as_ref();
        let (signed, tag) = b.split_at(b.len() - TRAILER_LEN);
        key.verify(signed, tag)
    }

    /// The bytes of the records, if they are of `family` (else none).
    fn record_bytes(&self, family: Family) -> &[u8] {
        let b = self.buffer.as_ref();
        if self.family != family {
            return &b[HEADER_LEN..HEADER_LEN];
        }
        &b[HEADER_LEN..HEADER_LEN + usize::from(self.record_count()) * self.record_len]
    }

    /// The IPv4 records, each decoded or refused on its own (none in an
    /// IPv6 datagram).
    pub fn records(&self) -> Records<'_> {
        Records {
            chunks: self
                .record_bytes(Family::Ipv4)
                .chunks_exact(self.record_len),
        }
    }

    /// The IPv6 records, each decoded or refused on its own (none in an
    /// IPv4 datagram).
    pub fn records6(&self) -> Records6<'_> {
        Records6 {
            chunks: self
                .record_bytes(Family::Ipv6)
                .chunks_exact(self.record_len),
        }
    }
}

/// The IPv6 records of a [`Packet`], in order.
#[derive(Clone, Debug)]
pub struct Records6<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for Records6<'_> {
    type Item = Result<Record6, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(Record6::parse(self.chunks.next()?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Records6<'_> {}

/// The records of a [`Packet`], in order.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for Records<'_> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        // `chunks_exact` yields records of the datagram's version only.
        Some(Record::parse(self.chunks.next()?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Records<'_> {}

/// The datagram has no room for another record (or, from
/// [`Builder::new`], the buffer cannot even hold the header and MAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sync datagram full")
    }
}

impl std::error::Error for Full {}

/// Writes one datagram into a caller's buffer, using at most
/// [`MAX_DATAGRAM_LEN`] bytes of it, room for the MAC kept. The count is
/// kept up to date on every push; [`Builder::finish`] writes the MAC.
#[derive(Debug)]
pub struct Builder<'a> {
    buf: &'a mut [u8],
    count: usize,
    capacity: usize,
    record_len: usize,
}

impl<'a> Builder<'a> {
    /// Starts a datagram with `header`; `Err(Full)` when `buf` is shorter
    /// than [`MIN_DATAGRAM_LEN`]. Resync requests and done markers hold no
    /// records: their builder is full from the start.
    pub fn new(buf: &'a mut [u8], header: &Header) -> Result<Builder<'a>, Full> {
        Builder::start(buf, header, VERSION, 0, RECORD_LEN)
    }

    /// The header of `version` (with `family` in byte 7: 0, reserved,
    /// before version 4) for records of `record_len` bytes.
    fn start(
        buf: &'a mut [u8],
        header: &Header,
        version: u8,
        family: u8,
        record_len: usize,
    ) -> Result<Builder<'a>, Full> {
        let usable = buf.len().min(MAX_DATAGRAM_LEN);
        if usable < MIN_DATAGRAM_LEN {
            return Err(Full);
        }
        let capacity = if header.kind.carries_records() {
            ((usable - MIN_DATAGRAM_LEN) / record_len).min(usize::from(u16::MAX))
        } else {
            0
        };
        let h = &mut buf[..HEADER_LEN];
        h.fill(0);
        h[field::MAGIC..field::MAGIC + 4].copy_from_slice(&MAGIC);
        h[field::VERSION] = version;
        h[field::FAMILY] = family;
        h[field::KIND] = header.kind as u8;
        h[field::FLAGS] = if header.resync && header.kind.carries_records() {
            FLAG_RESYNC
        } else {
            0
        };
        put_u32(h, field::SENDER, header.sender);
        put_u64(h, field::BOOT, header.boot);
        put_u64(h, field::SEQ, header.seq);
        Ok(Builder {
            buf,
            count: 0,
            capacity,
            record_len,
        })
    }

    /// Appends a record; `Err(Full)` when the datagram has no room (send
    /// it, and start the next one with this record).
    pub fn push(&mut self, r: &Record) -> Result<(), Full> {
        let slot: &mut [u8; RECORD_LEN] = self.slot()?.try_into().map_err(|_| Full)?;
        r.emit(slot);
        self.commit();
        Ok(())
    }

    /// The next record's bytes; `Err(Full)` when there is no room.
    fn slot(&mut self) -> Result<&mut [u8], Full> {
        if self.count >= self.capacity {
            return Err(Full);
        }
        let at = HEADER_LEN + self.count * self.record_len;
        self.buf.get_mut(at..at + self.record_len).ok_or(Full)
    }

    /// Counts the record just written into [`Builder::slot`].
    fn commit(&mut self) {
        self.count += 1;
        put_u16(self.buf, field::COUNT, self.count as u16);
    }

    /// Records pushed so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Records this datagram can hold in all.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// No room for another record.
    pub fn is_full(&self) -> bool {
        self.count >= self.capacity
    }

    /// No record pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the finished datagram (MAC included).
    pub fn len(&self) -> usize {
        MIN_DATAGRAM_LEN + self.count * self.record_len
    }

    /// The finished datagram, ready to send: the MAC of `key` written after
    /// the records (zeros without a key).
    pub fn finish(self, key: Option<&SyncKey>) -> &'a [u8] {
        let len = self.len();
        let buf: &'a mut [u8] = self.buf;
        let (signed, tag) = buf[..len].split_at_mut(len - TRAILER_LEN);
        match key {
            Some(k) => tag.copy_from_slice(&k.mac(signed)),
            None => tag.fill(0),
        }
        &buf[..len]
    }
}

/// Writes one IPv6 connections datagram (version 4, family 6) into a
/// caller's buffer, as [`Builder`] does for IPv4: at most
/// [`MAX_RECORDS6`] records of [`RECORD6_LEN`] bytes.
#[derive(Debug)]
pub struct Builder6<'a>(Builder<'a>);

impl<'a> Builder6<'a> {
    /// Starts an IPv6 datagram with `header`; `Err(Full)` when `buf` is
    /// shorter than [`MIN_DATAGRAM_LEN`].
    pub fn new(buf: &'a mut [u8], header: &Header) -> Result<Builder6<'a>, Full> {
        Builder::start(buf, header, VERSION_FAMILY, Family::Ipv6 as u8, RECORD6_LEN).map(Builder6)
    }

    /// Appends an IPv6 record; `Err(Full)` when the datagram has no room.
    pub fn push(&mut self, r: &Record6) -> Result<(), Full> {
        let slot: &mut [u8; RECORD6_LEN] = self.0.slot()?.try_into().map_err(|_| Full)?;
        r.emit(slot);
        self.0.commit();
        Ok(())
    }

    /// Records pushed so far.
    pub fn count(&self) -> usize {
        self.0.count()
    }

    /// Records this datagram can hold in all.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// No room for another record.
    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    /// No record pushed yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of the finished datagram (MAC included).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The finished datagram, ready to send (see [`Builder::finish`]).
    pub fn finish(self, key: Option<&SyncKey>) -> &'a [u8] {
        self.0.finish(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::sync::SyncEvent;
    use proptest::prelude::*;

    const ACTIVE_ID: u32 = 0x0102_0304;

    fn ep(a: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(a), port)
    }

    fn record(client_port: u16) -> Record {
        Record {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            removed: false,
            client: ep([198, 51, 100, 7], client_port),
            vip: ep([203, 0, 113, 100], 80),
            real: ep([10, 1, 0, 11], 8080),
            timeout_s: 900,
            local: None,
        }
    }

    fn header(kind: MessageKind) -> Header {
        Header {
            kind,
            resync: false,
            sender: ACTIVE_ID,
            boot: 0x1122_3344_5566_7788,
            seq: 41,
        }
    }

    /// A connections datagram holding `records`.
    fn datagram(records: &[Record]) -> Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let mut b = Builder::new(&mut buf, &header(MessageKind::Connections)).unwrap();
        for r in records {
            b.push(r).unwrap();
        }
        b.finish(None).to_vec()
    }

    /// The header of `docs/sync-protocol.md`, written out by hand.
    #[test]
    fn header_layout_matches_the_spec() {
        let d = datagram(&[record(40000), record(40001)]);
        assert_eq!(d.len(), 32 + 2 * 36 + 16);
        assert_eq!(
            &d[..32],
            &[
                b'R', b'V', b'S', b'S', // magic
                3,    // version
                1,    // type: connections
                0,    // flags
                0,    // reserved
                0x01, 0x02, 0x03, 0x04, // sender id
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // boot
                0, 0, 0, 0, 0, 0, 0, 41, // sequence
                0, 2, // record count
                0, 0, // reserved
            ]
        );
        assert_eq!(&d[32 + 72..], &[0; 16], "no key: a zero MAC");
    }

    /// The MAC covers every byte before it: any change is caught.
    #[test]
    fn the_mac_covers_header_and_records() {
        let key = SyncKey::new(b"0123456789abcdef").unwrap();
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let mut b = Builder::new(&mut buf, &header(MessageKind::Connections)).unwrap();
        b.push(&record(1)).unwrap();
        let d = b.finish(Some(&key)).to_vec();
        assert!(Packet::new_checked(&d[..]).unwrap().verify(&key));
        for at in 0..d.len() {
            let mut bad = d.clone();
            bad[at] ^= 0x01;
            if let Ok(p) = Packet::new_checked(&bad[..]) {
                assert!(
                    !p.verify(&key),
                    "byte {at} changed and the MAC still verifies"
                );
            }
        }
        let other = SyncKey::new(b"0123456789abcdeX").unwrap();
        assert!(!Packet::new_checked(&d[..]).unwrap().verify(&other));
    }

    /// The record of `docs/sync-protocol.md`, written out by hand.
    #[test]
    fn record_layout_matches_the_spec() {
        let r = Record {
            protocol: Protocol::Tcp,
            state: State::FinWait,
            input_only: true,
            removed: true,
            client: ep([198, 51, 100, 7], 0x9c40),
            vip: ep([203, 0, 113, 100], 80),
            real: ep([10, 1, 0, 11], 8080),
            timeout_s: 0x0001_0203,
            local: None,
        };
        let mut b = [0xee; RECORD_LEN];
        r.emit(&mut b);
        assert_eq!(
            b,
            [
                6, // protocol
                4, // state: FIN_WAIT
                3, // flags: input-only | removed
                0, // reserved
                198, 51, 100, 7, // client address
                203, 0, 113, 100, // VIP
                10, 1, 0, 11, // real server address
                0x9c, 0x40, // client port
                0, 80, // VIP port
                0x1f, 0x90, // real server port
                0, 0, // reserved
                0x00, 0x01, 0x02, 0x03, // timeout, seconds
                0, 0, 0, 0, // local address: none
                0, 0, // local port
                0, 0, // reserved
            ]
        );
        assert_eq!(Record::parse(&b), Ok(r));
    }

    /// Version 3's FullNAT local end, written out by hand.
    #[test]
    fn a_fullnat_record_carries_its_local_address_and_port() {
        let r = Record {
            local: Some(ep([10, 2, 0, 100], 0x1234)),
            ..record(40000)
        };
        let mut b = [0xee; RECORD_LEN];
        r.emit(&mut b);
        assert_eq!(b[2], 0x04, "flags: local");
        assert_eq!(&b[28..], &[10, 2, 0, 100, 0x12, 0x34, 0, 0]);
        assert_eq!(Record::parse(&b), Ok(r));
        let d = datagram(&[r, record(1)]);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.records().collect::<Vec<_>>(), vec![Ok(r), Ok(record(1))]);
        assert_eq!(r.event().local, r.local);
    }

    /// The example of `docs/sync-protocol.md`, byte for byte.
    #[test]
    fn the_example_in_the_spec_decodes() {
        #[rustfmt::skip]
        let d = [
            0x52, 0x56, 0x53, 0x53, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
            0x06, 0x01, 0x00, 0x00, 0xc6, 0x33, 0x64, 0x07, 0xcb, 0x00, 0x71, 0x64, 0x0a, 0x01, 0x00, 0x0b,
            0x9c, 0x40, 0x00, 0x50, 0x1f, 0x90, 0x00, 0x00, 0x00, 0x00, 0x03, 0x84, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(
            p.header(),
            Header {
                kind: MessageKind::Connections,
                resync: false,
                sender: 1,
                boot: 7,
                seq: 1,
            }
        );
        assert_eq!(
            p.version(),
            VERSION_V2,
            "a version-2 datagram is still read"
        );
        assert_eq!(p.records().collect::<Vec<_>>(), vec![Ok(record(40000))]);
        // The builder writes version 3: the same record, 8 bytes longer.
        let mut buf = [0u8; 128];
        let h = p.header();
        let mut b = Builder::new(&mut buf, &h).unwrap();
        b.push(&record(40000)).unwrap();
        let v3 = b.finish(None);
        assert_eq!(v3[4], VERSION);
        assert_eq!(&v3[5..32], &d[5..32]);
        assert_eq!(&v3[32..60], &d[32..60], "the version-2 part of the record");
        assert_eq!(&v3[60..68], &[0; 8], "no local end");
    }

    #[test]
    fn a_full_datagram_holds_37_records_in_1380_bytes() {
        assert_eq!(MAX_RECORDS, 37);
        let mut buf = [0u8; 9000]; // a jumbo buffer changes nothing
        let mut b = Builder::new(&mut buf, &header(MessageKind::Connections)).unwrap();
        assert_eq!(b.capacity(), MAX_RECORDS);
        let mut n = 0u16;
        while b.push(&record(n)).is_ok() {
            n += 1;
        }
        assert!(b.is_full());
        assert_eq!(usize::from(n), MAX_RECORDS);
        assert_eq!(b.push(&record(n)), Err(Full), "still full");
        let d = b.finish(None);
        assert_eq!(d.len(), 1380);
        assert!(
            d.len() + 20 + 8 <= 1500,
            "IPv4 + UDP + payload fits the MTU"
        );
        let p = Packet::new_checked(d).unwrap();
        assert_eq!(usize::from(p.record_count()), MAX_RECORDS);
        assert!(p
            .records()
            .enumerate()
            .all(|(i, r)| r == Ok(record(i as u16))));
    }

    #[test]
    fn a_small_buffer_holds_what_fits() {
        let mut buf = [0u8; MIN_DATAGRAM_LEN + 2 * RECORD_LEN + RECORD_LEN - 1];
        let mut b = Builder::new(&mut buf, &header(MessageKind::Connections)).unwrap();
        assert_eq!(b.capacity(), 2);
        assert!(b.push(&record(1)).is_ok() && b.push(&record(2)).is_ok());
        assert_eq!(b.push(&record(3)), Err(Full));
        assert_eq!(b.finish(None).len(), MIN_DATAGRAM_LEN + 2 * RECORD_LEN);
    }

    #[test]
    fn a_buffer_shorter_than_the_header_and_mac_is_refused() {
        let mut buf = [0u8; MIN_DATAGRAM_LEN - 1];
        assert_eq!(
            Builder::new(&mut buf, &header(MessageKind::Connections)).err(),
            Some(Full)
        );
    }

    #[test]
    fn an_empty_connections_datagram_is_valid() {
        let d = datagram(&[]);
        assert_eq!(d.len(), MIN_DATAGRAM_LEN);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.kind(), MessageKind::Connections);
        assert_eq!(p.records().len(), 0);
    }

    #[test]
    fn resync_request_and_done_carry_no_records() {
        for kind in [MessageKind::ResyncRequest, MessageKind::ResyncDone] {
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let h = Header {
                resync: true, // meaningless here: not sent
                ..header(kind)
            };
            let mut b = Builder::new(&mut buf, &h).unwrap();
            assert_eq!(b.capacity(), 0);
            assert_eq!(b.push(&record(1)), Err(Full));
            let d = b.finish(None);
            assert_eq!(d.len(), MIN_DATAGRAM_LEN);
            assert_eq!(d[5], kind as u8);
            let p = Packet::new_checked(d).unwrap();
            assert_eq!(
                p.header(),
                Header {
                    resync: false,
                    ..header(kind)
                }
            );
            assert_eq!(p.records().len(), 0);
        }
    }

    #[test]
    fn the_resync_flag_marks_a_dump() {
        let mut buf = [0u8; 100];
        let h = Header {
            resync: true,
            ..header(MessageKind::Connections)
        };
        let mut b = Builder::new(&mut buf, &h).unwrap();
        b.push(&record(1)).unwrap();
        let d = b.finish(None);
        assert_eq!(d[6], 0x01);
        let p = Packet::new_checked(d).unwrap();
        assert!(p.resync());
        assert_eq!(p.header(), h);
    }

    #[test]
    fn empty_input_is_truncated() {
        assert_eq!(Packet::new_checked(&[][..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn a_short_header_is_truncated() {
        let d = datagram(&[]);
        for len in 1..MIN_DATAGRAM_LEN {
            assert_eq!(
                Packet::new_checked(&d[..len]).err(),
                Some(Error::Truncated),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn bad_magic_is_foreign() {
        let mut d = datagram(&[record(1)]);
        d[3] = b'X';
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::ForeignMagic));
        // Even when too short to be a header at all.
        assert_eq!(
            Packet::new_checked(&b"RVX"[..]).err(),
            Some(Error::ForeignMagic)
        );
        assert_eq!(
            Packet::new_checked(&b"GET / HTTP/1.1\r\n\r\n"[..]).err(),
            Some(Error::ForeignMagic)
        );
    }

    #[test]
    fn other_versions_are_unsupported() {
        let mut d = datagram(&[record(1)]);
        for v in [0, 1, 5, 255] {
            d[4] = v;
            assert_eq!(
                Packet::new_checked(&d[..]).err(),
                Some(Error::UnsupportedVersion),
                "version {v}"
            );
        }
    }

    #[test]
    fn unknown_types_are_refused() {
        let mut d = datagram(&[]);
        for t in [0, 4, 255] {
            d[5] = t;
            assert_eq!(
                Packet::new_checked(&d[..]).err(),
                Some(Error::UnknownKind),
                "type {t}"
            );
        }
    }

    #[test]
    fn a_count_beyond_the_datagram_is_truncated() {
        let mut d = datagram(&[record(1), record(2)]);
        d[29] = 3;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Truncated));
        d[28] = 0xff;
        d[29] = 0xff;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn a_partial_record_is_truncated() {
        let d = datagram(&[record(1), record(2)]);
        assert_eq!(
            Packet::new_checked(&d[..d.len() - 1]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn bytes_after_the_records_are_malformed() {
        let mut d = datagram(&[record(1)]);
        d.push(0);
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Malformed));
        // A whole extra record the count does not announce, too.
        let mut d = datagram(&[record(1), record(2)]);
        d[29] = 1;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn records_in_a_request_are_malformed() {
        let mut d = datagram(&[record(1)]);
        d[5] = MessageKind::ResyncRequest as u8;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Malformed));
        d[5] = MessageKind::ResyncDone as u8;
        assert_eq!(Packet::new_checked(&d[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn a_bad_record_spoils_only_itself() {
        let mut d = datagram(&[record(1), record(2), record(3)]);
        d[HEADER_LEN] = 1; // ICMP
        d[HEADER_LEN + 2 * RECORD_LEN + 1] = 11; // one past SYNACK
        let p = Packet::new_checked(&d[..]).unwrap();
        let got: Vec<_> = p.records().collect();
        assert_eq!(
            got,
            vec![
                Err(RecordError::UnknownProtocol),
                Ok(record(2)),
                Err(RecordError::UnknownState),
            ]
        );
    }

    #[test]
    fn reserved_bytes_and_bits_are_ignored() {
        let mut d = datagram(&[record(1)]);
        d[6] |= 0xfe; // header flags other than resync
        d[7] = 0xff;
        d[30] = 0xff;
        d[31] = 0xff;
        d[HEADER_LEN + 2] |= 0xf8; // record flags other than the three defined
        d[HEADER_LEN + 3] = 0xff;
        d[HEADER_LEN + 22] = 0xff;
        d[HEADER_LEN + 23] = 0xff;
        d[HEADER_LEN + 34] = 0xff;
        d[HEADER_LEN + 35] = 0xff;
        let p = Packet::new_checked(&d[..]).unwrap();
        assert!(!p.resync());
        assert_eq!(p.header(), header(MessageKind::Connections));
        assert_eq!(p.records().collect::<Vec<_>>(), vec![Ok(record(1))]);
    }

    #[test]
    fn udp_records_round_trip() {
        let r = Record {
            protocol: Protocol::Udp,
            timeout_s: 300,
            ..record(53)
        };
        let d = datagram(&[r]);
        assert_eq!(d[HEADER_LEN], 17);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.records().next(), Some(Ok(r)));
    }

    #[test]
    fn worker_events_convert_both_ways() {
        let e = SyncEvent {
            protocol: Protocol::Tcp,
            state: State::SynRecv,
            input_only: true,
            client: ep([198, 51, 100, 9], 51000),
            vip: ep([203, 0, 113, 100], 443),
            real: ep([10, 1, 0, 12], 443),
            timeout_s: 30,
            local: None,
        };
        let r = Record::from(e);
        assert!(!r.removed);
        assert_eq!(r.event(), e);
    }

    #[test]
    fn drop_reasons_have_distinct_names() {
        let mut names: Vec<_> = Error::ALL.iter().map(|e| e.name()).collect();
        names.extend(RecordError::ALL.iter().map(|e| e.name()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "counter order");
        }
        for (i, e) in RecordError::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "counter order");
        }
    }

    fn any_endpoint() -> impl Strategy<Value = Endpoint> {
        (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| Endpoint::new(Ipv4Addr::from(ip), port))
    }

    fn any_record() -> impl Strategy<Value = Record> {
        (
            prop::sample::select(Protocol::ALL.to_vec()),
            prop::sample::select(State::ALL.to_vec()),
            any::<bool>(),
            any::<bool>(),
            any_endpoint(),
            any_endpoint(),
            any_endpoint(),
            any::<u32>(),
        )
            .prop_map(
                |(protocol, state, input_only, removed, client, vip, real, timeout_s)| Record {
                    protocol,
                    state,
                    input_only,
                    removed,
                    client,
                    vip,
                    real,
                    timeout_s,
                    local: None,
                },
            )
    }

    fn any_header() -> impl Strategy<Value = Header> {
        (
            prop::sample::select(vec![
                MessageKind::Connections,
                MessageKind::ResyncRequest,
                MessageKind::ResyncDone,
            ]),
            any::<bool>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(kind, resync, sender, boot, seq)| Header {
                kind,
                resync: resync && kind.carries_records(),
                sender,
                boot,
                seq,
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(
            h in any_header(),
            records in prop::collection::vec(any_record(), 0..=MAX_RECORDS),
        ) {
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let mut b = Builder::new(&mut buf, &h).unwrap();
            let mut pushed = 0;
            for r in &records {
                if b.push(r).is_err() {
                    break;
                }
                pushed += 1;
            }
            let expected = if h.kind.carries_records() { records.len() } else { 0 };
            prop_assert_eq!(pushed, expected);
            let d = b.finish(None);
            prop_assert_eq!(d.len(), MIN_DATAGRAM_LEN + pushed * RECORD_LEN);
            let p = Packet::new_checked(d).unwrap();
            prop_assert_eq!(p.header(), h);
            prop_assert_eq!(usize::from(p.record_count()), pushed);
            let got: Vec<_> = p.records().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(&got[..], &records[..pushed]);
        }

        #[test]
        fn the_builder_never_writes_past_its_buffer(
            len in 0usize..300,
            records in prop::collection::vec(any_record(), 0..12),
        ) {
            let mut buf = vec![0xa5u8; 400];
            let n;
            {
                let (head, _) = buf.split_at_mut(len);
                let Ok(mut b) = Builder::new(head, &header(MessageKind::Connections)) else {
                    prop_assert!(len < MIN_DATAGRAM_LEN);
                    return Ok(());
                };
                for r in &records {
                    let before = b.len();
                    if b.push(r).is_err() {
                        prop_assert!(b.is_full());
                        prop_assert!(before + RECORD_LEN > len, "refused while room was left");
                        break;
                    }
                }
                n = b.finish(None).len();
            }
            prop_assert!(n <= len && n <= MAX_DATAGRAM_LEN);
            prop_assert!(buf[len..].iter().all(|&x| x == 0xa5), "wrote past the buffer");
            prop_assert!(Packet::new_checked(&buf[..n]).is_ok());
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.header(), p.version(), p.flags(), p.boot(), p.seq(), p.mac().len());
                prop_assert_eq!(
                    p.records().count() + p.records6().count(),
                    usize::from(p.record_count())
                );
            }
        }

        #[test]
        fn never_panics_on_magic_prefixed_bytes(
            kind in 0u8..5,
            count in 0u16..4,
            body in prop::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut d = MAGIC.to_vec();
            d.extend_from_slice(&[VERSION, kind, 0, 0, 0, 0, 0, 1]);
            d.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1]);
            d.extend_from_slice(&count.to_be_bytes());
            d.extend_from_slice(&[0, 0]);
            d.extend_from_slice(&body);
            match Packet::new_checked(&d[..]) {
                Ok(p) => {
                    prop_assert_eq!(body.len(), usize::from(count) * RECORD_LEN + TRAILER_LEN);
                    for r in p.records() {
                        let _ = r.map(|r| r.event());
                    }
                }
                Err(e) => prop_assert!(Error::ALL.contains(&e)),
            }
        }

        #[test]
        fn never_panics_on_mutated_valid_datagrams(
            flips in prop::collection::vec((0usize..MIN_DATAGRAM_LEN + 3 * RECORD_LEN, any::<u8>()), 1..6),
            cut in 0usize..=MIN_DATAGRAM_LEN + 3 * RECORD_LEN + 4,
        ) {
            let mut d = datagram(&[record(1), record(2), record(3)]);
            d.extend_from_slice(&[0, 0, 0, 0]);
            for (at, v) in flips {
                d[at] = v;
            }
            d.truncate(cut);
            if let Ok(p) = Packet::new_checked(&d[..]) {
                prop_assert_eq!(
                    MIN_DATAGRAM_LEN + usize::from(p.record_count()) * p.record_len(),
                    d.len(),
                    "the count and the length agree"
                );
                let _ = p.records().collect::<Vec<_>>();
                let _ = p.records6().collect::<Vec<_>>();
            }
        }
    }
}
