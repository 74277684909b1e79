//! The per-worker connection table: every connection the worker forwards,
//! found from a packet of either direction in O(1) expected time.
//!
//! Why it is built this way:
//! - **Fixed capacity, no allocation after `new`.** Entries live in one
//!   array sized from `conn_table_size`; a free entry holds the index of the
//!   next free one (an intrusive free list), so taking and returning entries
//!   costs nothing. Entries are handed out low indices first, so an
//!   expiry sweep of a lightly used table stays short.
//! - **One cache line per connection.** A [`Conn`] is 64 bytes, 64-byte
//!   aligned: both flow keys, the servers, the state, the expiry, the
//!   creation time and the counters. A lookup of a stored key reads its home bucket's line and
//!   this one line: two cache misses at most, and the worker prefetches
//!   both for a whole burst ([`ConnTable::prefetch_bucket`], then
//!   [`ConnTable::prefetch_entry`]) with the hash it computed once per
//!   frame ([`ConnTable::hash`], [`ConnTable::lookup_hashed`]).
//! - **One table per address family** ([`ConnTableOf`]): IPv4 in
//!   [`ConnTable`] (the 64-byte [`Conn`] above), IPv6 in [`ConnTable6`],
//!   whose [`Conn6`] entries are two lines (two 36-byte keys do not fit
//!   one; `conn::v6` says why a second table rather than one of 128-byte
//!   entries, and `docs/dev/h19-v6lb.md` has the measured costs). Both
//!   share the index, the shedding ring, every policy below and the
//!   40-byte [`ConnMeta`] each entry dereferences to; the code is
//!   monomorphised, so the IPv4 instance is what it was before.
//! - **Keyed on both directions.** The index holds two slots per
//!   connection, one for the original key (client → VIP:VPORT) and one for
//!   the reply key (e.g. RIP:RPORT → client after NAT), each slot tagged with
//!   the direction, so a reply finds the connection its request created.
//! - **A bucketed index, one cache line per bucket.** A bucket holds 10
//!   slots, each a 16-bit signature of the key's hash and a 32-bit entry
//!   reference (entry index << 1 | direction), plus 4 bytes of
//!   displacement counts: 64 bytes, 64-byte aligned. The key's home
//!   bucket is the hash's multiply-shift range reduction,
//!   `(hash × buckets) >> 32`, so the bucket count is whatever the
//!   capacity needs, not a power of two. The signature (the hash's low 16 bits; the high ones
//!   chose the bucket) spares nearly every entry read on a mismatch: the
//!   one entry read is almost always the key's own.
//! - **Overflow to the next buckets, counted at home.** A key goes to the
//!   first free slot from its home bucket on, at most 8 buckets further
//!   (`MAX_DISPLACEMENT`). The home keeps, per distance 1..=8, a 4-bit
//!   count of its keys stored that far (a bucket holds at most 10 keys
//!   from any one home, so 4 bits suffice). A lookup reads the home
//!   bucket, and further buckets only when its key is not there and the
//!   counts name them; when nothing was displaced from the home (the
//!   common case, see the sizing) a miss, i.e. a new flow, reads that one
//!   line. Removal empties the slot and decrements the count of its
//!   distance, so the counts stay exact and a home whose displaced keys are
//!   gone is again a one-line lookup. Displaced keys are not moved back
//!   (finding the ones homed before a freed slot would take reading their
//!   entries): their home's count says exactly where they are. Every call
//!   reads at most 9 buckets per key, whatever the keys; the seeded hash
//!   keeps a client from aiming keys at one bucket.
//! - **Sizing: 5 keys per 10-slot bucket when full** (a load of 0.5).
//!   With keys spread at random a bucket's occupancy is about Poisson with
//!   mean 5, so a full bucket is rare (P(more than 10) ≈ 1.4 %). Simulated
//!   at 10 M connections, full: filled once, 0.45 % of keys are away from
//!   home, none further than 4 buckets; after 20 turnovers of random
//!   removals and insertions (displaced keys staying put lengthens the
//!   runs) 2.1 %, about 95 % of them in the next bucket, none further
//!   than 7.
//!   At a load of 0.6 (85 bytes per connection instead of 90) the same
//!   churn displaced 5.7 % of keys and sent some 12 buckets away, past
//!   what the counts hold; [`InsertError::Full`] is what a key with no free
//!   slot within 8 buckets gets, so the load is kept where that is
//!   vanishingly rare.
//! - **Hash.** Two folded 64×64→128-bit multiplies over the packed key,
//!   seeded: the worker passes a random seed ([`ConnTable::with_seed`]) so
//!   that a client cannot aim its ports at one bucket.
//! - **Lazy expiry plus an incremental sweep** (the VPP lb plugin's flow
//!   table lesson): a lookup that meets an expired entry reports a miss and
//!   reclaims it; [`ConnTable::expire`] walks a bounded number of entries per
//!   call, so memory comes back without a timer per connection and no call
//!   does unbounded work. Time is `now` in nanoseconds, passed in.
//! - **Every reclaimed connection is reported.** Whatever removes a
//!   connection the caller did not ask to remove (lazy expiry, the sweep,
//!   room made for a new one) hands it to the caller's `on_reclaim`
//!   callback, so the real server's active/inactive counters can be
//!   decremented (`conn.is_active()` says which).
//! - **Proven and unproven connections** (IPVS's `drop_entry` done
//!   deterministically). A connection a packet created is *unproven*: its
//!   client may be a spoofed address. It becomes *proven* when the real
//!   server talks to it on the established connection (a reply seen with
//!   the connection ESTABLISHED after it, NAT; a SYN-ACK or a reset is no
//!   proof, a server answers spoofed SYNs and blind ACKs too), or, for an
//!   input-only connection (DR, TUN: the replies bypass rvs), once its
//!   client has sent `proof_packets` packets and it is `proof_ms` old
//!   (`[timeouts]`; 8 and 1 s by default: a blind SYN-then-ACK sender's 2
//!   packets never prove one, and spending more packets per spoofed tuple
//!   still has to wait out the age while evictable). HA sync installs
//!   connections proven. The check costs the hot path one test of the
//!   `flags` byte of the line already in hand; only an unproven
//!   input-only connection's packets go further. A proven TCP connection
//!   past its handshake is *protected*: only reclaimed once expired.
//!   Everything else is evictable: unproven TCP in any state (a blind
//!   SYN-then-ACK leaves ESTABLISHED entries for 15 minutes), half-open
//!   TCP, and UDP, proven or not (a UDP flow has no end, and a table full
//!   of answered UDP flows must still admit new clients: the oldest goes).
//!   The creation time (milliseconds, wrapping every 49 days) fits in the
//!   line because the byte counters are 48 bits (256 TiB, wrapping).
//! - **A shedding queue of evictable connections.** Every connection
//!   inserted unprotected (every packet-created one, TCP and UDP, and
//!   synced half-open or UDP ones) has its entry index pushed on a FIFO
//!   ring as long as the table (4 bytes per connection). When the table is
//!   full, making room pops from the ring's head: an index whose entry is
//!   no longer live, or live and protected (proven since, and not
//!   expired), is stale and dropped; the first live unprotected (or
//!   expired) one is evicted: strictly oldest first, answered UDP flows
//!   included. (Sparing answered UDP flows by queueing them again was
//!   tried and undone: under a UDP flood the servers answer the spoofed
//!   flows too, the requeued ones overtook a new TCP client still in its
//!   handshake, and the pops reached it up to [`SHED_POPS`] times sooner:
//!   the e2e flood test saw a client's connection evicted and time out.
//!   FIFO gives every unproven connection the same `C / R` below.) At
//!   most [`SHED_POPS`] pops per insert, so a new flow into
//!   a full table costs O(1): a ring slot (sequential) and one entry,
//!   besides the victim's and the new keys' buckets. A push on a full
//!   ring drops its oldest index: that connection stays and expires
//!   normally, or is found through its home bucket (below). An index freed
//!   and reused by a newer connection may be evicted through the old
//!   connection's ring position, earlier than its turn: accepted (it is
//!   unproven too, and the ring's order is only a fairness preference).
//!   Most connections are queued and then proven, so the ring's head is
//!   mostly stale when the table first fills: each insert then drops up
//!   to [`SHED_POPS`] of them and, finding none to shed, falls back to the
//!   home bucket (below), until the head reaches connections still
//!   unproven. Measured (`perf/datapath.rs`, flood at 1 M, half
//!   established, half SYNs): 2 350 cycles per packet of the mix before
//!   the ring, about 1 050 with it; no SYN of the mix refused any more.
//! - **What a flood can and cannot do.** Spoofed packets create only
//!   unproven entries, which replace each other oldest first: a flood
//!   does not get clients refused while the table holds unproven entries,
//!   and never evicts a proven connection. What it can do is shorten the life
//!   of unproven ones: at `R` new flows a second into a table of `C`, an
//!   unproven connection is evicted about `C / R` seconds after it was
//!   created. A NAT connection is proven as soon as its server sends on
//!   it after the handshake (the answer to the request, or its ACK): a
//!   round trip or two. A DR or TUN one needs `proof_ms` and
//!   `proof_packets` (a keep-alive connection idle since its first
//!   request may stay unproven), so size the table (or lower `proof_ms`)
//!   for `C / R` to exceed it at the flood rates you expect. Measured in
//!   `tests/e2e_flood.rs`: 5 000 spoofed packets a second into a table of
//!   4 096 (turned over in 0.8 s) failed no client request. Refusals
//!   (`table_full`) happen only when the ring and the new key's home
//!   bucket show nothing expired or unprotected, in practice when every
//!   entry is protected.
//!
//! - **Handshake outcomes for the passive checks** (`lb::handshake`): a
//!   NAT connection whose SYN went to the real server carries one more
//!   flag bit until the server's SYN-ACK, its reset, or the timeout (from
//!   the creation time already in the line) decides the handshake; the
//!   balancer counts the outcome for the server. The line stays 64 bytes.
//!
//! Memory: a 64-byte entry, its share of the index, two fifths of a
//! 64-byte bucket (`ceil(2 × capacity / 5)` buckets), and its 4-byte
//! shedding-ring slot: 93.6 bytes per connection at any capacity from
//! about a hundred up (1 Mi connections: 94 MiB per worker; 10 M:
//! 936 MB). `memory_bytes` reports it. Telling proven from unproven
//! costs nothing more: a flag bit and the creation time live in the
//! entry's line, and every evictable connection already had its ring slot.
//!
//! The signature is cut from the 32-bit hash, whose high bits chose the
//! bucket: in a table of more than 65 536 buckets, two keys of one bucket
//! share their signature about as often as their whole hash, one time in
//! `2^32 / buckets` (1 070 at 10 M connections), so there a miss reads a
//! stranger's entry about once in 200 lookups; less often in smaller
//! tables.
//!
//! How a worker uses it, per packet:
//! 1. `lookup(&key, now, release)` (or, with the frame's hash computed
//!    once for the prefetches, `lookup_hashed(&key, hash, now, release)`).
//!    On a hit, a TCP bare SYN on a closing connection
//!    ([`tcp_state::should_restart`]) means the client reuses the port: `remove(id)`, release its counters, go to 2. Otherwise
//!    `get_mut(id).on_packet(dir, flags, len, now, &timeouts)` and move the
//!    real server's count between active and inactive if the returned
//!    [`Transition`] changed.
//! 2. On a miss, when the packet may open a connection: schedule, then
//!    `insert(original, reply, ConnInit::new(vs, rs), now, release)`, count
//!    it (inactive, unless inserted ESTABLISHED) and `on_packet` as in 1.
//!    `Err(Full)` is a counted drop.
//! 3. Once per poll loop: `expire(now, budget, release)`.
//!
//! `release` decrements the counters of a connection the table gave up:
//! active or inactive per `conn.is_active()`.
//!
//! Policy when full: `insert` first reuses an entry whose key matches and
//! which has expired; when no entry is free it (1) pops the shedding ring
//! (at most [`SHED_POPS`] indices) and evicts the oldest-queued connection
//! still live and unprotected, or expired, else (2) takes the first connection referenced from the new
//! original key's home bucket that has expired or is unprotected (a
//! bucket already in cache; about five entries read, only when the ring
//! had nothing), or, when that bucket is empty or all protected, from the
//! buckets after it within the index's reach (at most 9 lines; a 30-minute
//! soak of floods into a table of 4,096 had 21 refusals in 1.87 M
//! evictions while only the home bucket was searched), else (3) refuses with [`InsertError::Full`], which the
//! caller counts. A proven TCP connection past its handshake is never
//! evicted (only reclaimed once expired): under a flood the unproven
//! entries replace each other, oldest first, and the proven connections
//! live on. An evicted connection is reported to `on_reclaim` like an
//! expired one; it is the one whose `expires_ns` is still in the future,
//! and [`ConnTable::evictions`] counts it by kind. Expired connections the
//! ring and the home bucket do not show come back through lazy expiry and
//! the sweep.

use super::family::IpFamily;
use super::handshake::{self, Handshake};
use super::tcp_state::{self, State, TcpFlags, Timeouts, Transition};
use crate::dpdk::hugemem::HugeArray;
use crate::dpdk::prefetch::prefetch;
use bytemuck::{Pod, Zeroable};
use std::net::{Ipv4Addr, Ipv6Addr};

mod v6;
pub use v6::{Conn6, Key6};

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// The largest `conn_table_size` a table accepts.
pub const MAX_CAPACITY: usize = 1 << 30;

/// The most shedding-ring indices one insert into a full table pops, stale
/// ones included, before it falls back to the home bucket: bounds the work
/// of a SYN into a table full of connections established since they were
/// queued.
pub const SHED_POPS: usize = 8;

/// A connection's first timeout, until its first packet sets the state's
/// (IPVS's NONE timeout).
pub const INITIAL_TIMEOUT_NS: u64 = 2_000_000_000;

/// The 5-tuple of a packet as it travels on the wire, over addresses of
/// one family: [`FlowKey`] (IPv4, what the worker and the balancer use
/// for IPv4 flows) or [`FlowKey6`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowKeyOf<A> {
    /// Source address.
    pub src: A,
    /// Destination address.
    pub dst: A,
    /// Source port (0 for protocols without ports).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// An IPv4 5-tuple.
pub type FlowKey = FlowKeyOf<Ipv4Addr>;

/// An IPv6 5-tuple.
pub type FlowKey6 = FlowKeyOf<Ipv6Addr>;

impl<A: Copy> FlowKeyOf<A> {
    /// A key from its parts, in wire order.
    pub const fn new(src: A, src_port: u16, dst: A, dst_port: u16, proto: u8) -> FlowKeyOf<A> {
        FlowKeyOf {
            src,
            dst,
            src_port,
            dst_port,
            proto,
        }
    }

    /// The key of a packet going the other way between the same endpoints.
    pub const fn reversed(&self) -> FlowKeyOf<A> {
        FlowKeyOf {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
        }
    }
}

/// An address family the connection table can key on: how its flow keys
/// are stored, hashed and unpacked, and which entry type holds them. The
/// table's code is the same for both families (monomorphised: the IPv4
/// instance compiles to what it was before it was made generic); only the
/// entry's size differs (see [`Conn6`]).
pub trait ConnAddr: IpFamily {
    /// A flow key without its protocol, as stored and compared.
    type Key: Pod + Eq + std::fmt::Debug;
    /// The table entry: both stored keys and the shared [`ConnMeta`].
    type Conn: ConnEntry<Addr = Self>;
    /// `key` as stored.
    fn pack(key: &FlowKeyOf<Self>) -> Self::Key;
    /// A stored key back with its protocol.
    fn unpack(key: &Self::Key, proto: u8) -> FlowKeyOf<Self>;
    /// The seeded hash of a stored key and its protocol.
    fn key_hash(key: &Self::Key, proto: u8, seed: &[u64; 2]) -> u32;
}

/// A connection table entry of one address family: its two stored keys
/// and everything else, [`ConnMeta`], which it dereferences to (so `c.vs`,
/// `c.on_packet(..)` read the same for either family).
pub trait ConnEntry:
    Pod + std::ops::Deref<Target = ConnMeta> + std::ops::DerefMut + std::fmt::Debug
{
    /// The family of its keys.
    type Addr: ConnAddr<Conn = Self>;
    /// An entry from its stored keys and the rest.
    fn from_parts(
        original: <Self::Addr as ConnAddr>::Key,
        reply: <Self::Addr as ConnAddr>::Key,
        meta: ConnMeta,
    ) -> Self;
    /// The stored key of direction `dir`.
    fn stored(&self, dir: Direction) -> &<Self::Addr as ConnAddr>::Key;

    /// The client → virtual server key.
    #[inline]
    fn original_key(&self) -> FlowKeyOf<Self::Addr> {
        Self::Addr::unpack(self.stored(Direction::Original), self.proto)
    }

    /// The key replies carry.
    #[inline]
    fn reply_key(&self) -> FlowKeyOf<Self::Addr> {
        Self::Addr::unpack(self.stored(Direction::Reply), self.proto)
    }
}

/// An IPv4 flow key without its protocol, as stored: three words,
/// compared as such.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Zeroable, Pod)]
#[repr(C)]
pub struct Key {
    src: u32,
    dst: u32,
    ports: u32,
}

impl ConnAddr for Ipv4Addr {
    type Key = Key;
    type Conn = Conn;

    #[inline]
    fn pack(key: &FlowKey) -> Key {
        Key {
            src: u32::from(key.src),
            dst: u32::from(key.dst),
            ports: (u32::from(key.src_port) << 16) | u32::from(key.dst_port),
        }
    }

    #[inline]
    fn unpack(k: &Key, proto: u8) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::from(k.src),
            dst: Ipv4Addr::from(k.dst),
            src_port: (k.ports >> 16) as u16,
            dst_port: k.ports as u16,
            proto,
        }
    }

    #[inline]
    fn key_hash(k: &Key, proto: u8, seed: &[u64; 2]) -> u32 {
        let a = ((u64::from(k.src) << 32) | u64::from(k.dst)) ^ seed[0];
        let b = ((u64::from(k.ports) << 8) | u64::from(proto)) ^ seed[1];
        let h = fold_mul(fold_mul(a, M1) ^ b, M2);
        (h ^ (h >> 32)) as u32
    }
}

/// Which way a packet travels on its connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    /// Client → virtual server: the key that created the connection.
    Original,
    /// Real server → client: the key the reply carries (NAT).
    Reply,
}

/// A connection's place in its table; valid until the connection is
/// removed, expired or evicted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId(u32);

impl ConnId {
    /// The entry index, in `0..capacity`: for side arrays indexed like the
    /// table.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why `insert` refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InsertError {
    /// No entry free, none reclaimable (see the policy in the module doc).
    Full,
    /// A live connection already has the original or the reply key.
    Exists,
    /// The original and reply keys are the same tuple (e.g. a packet from
    /// an address to itself on one port), so the directions could not be
    /// told apart.
    SameKeys,
}

impl std::fmt::Display for InsertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InsertError::Full => "connection table full",
            InsertError::Exists => "connection exists",
            InsertError::SameKeys => "original and reply keys are equal",
        })
    }
}

impl std::error::Error for InsertError {}

/// What a new connection starts with besides its keys.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnInit {
    /// Virtual server index.
    pub vs: u16,
    /// Real server index within the virtual server.
    pub rs: u16,
    /// Replies bypass the director (DR, TUN): TCP client segments use the
    /// input-only transitions until a reply is seen.
    pub input_only: bool,
    /// Initial TCP state (`None` for a packet-created connection; HA sync
    /// installs others).
    pub state: State,
    /// Lifetime from `now` until the first packet updates it.
    pub timeout_ns: u64,
    /// Its client is known to be real (HA sync installs what the active
    /// balancer had; a packet-created connection starts unproven).
    pub proven: bool,
}

impl ConnInit {
    /// A connection to real server `rs` of virtual server `vs`, in state
    /// NONE for [`INITIAL_TIMEOUT_NS`], replies seen by the director.
    pub fn new(vs: u16, rs: u16) -> ConnInit {
        ConnInit {
            vs,
            rs,
            input_only: false,
            state: State::None,
            timeout_ns: INITIAL_TIMEOUT_NS,
            proven: false,
        }
    }
}

/// `Conn::flags` bits.
const LIVE: u8 = 1;
const ACTIVE: u8 = 2;
const INPUT_ONLY: u8 = 4;
/// The client is proven: protected from eviction once past the handshake
/// (TCP), spared before unproven ones (UDP).
const PROVEN: u8 = 8;
/// Opened by the SYN proxy (`lb::synproxy`): its segments are translated
/// by the sequence delta kept beside the table.
const PROXIED: u8 = 16;
/// A SYN went to the real server and nothing decided the handshake yet
/// (`lb::handshake`: the passive checks count its outcome).
const AWAITS_SYN_ACK: u8 = 32;
/// Installed from a peer's sync and no packet carried here since: not
/// *local* (issue 20's cluster rules: a REMOVED record or a conflicting
/// record replaces only such an entry, and a full dump leaves it out).
/// Cleared by the first packet through the entry (`Balancer::account`).
const SYNCED: u8 = 64;

/// One IPv4 connection: exactly one 64-byte cache line, its two keys
/// (24 bytes) and the [`ConnMeta`] every family shares (40 bytes), which
/// it dereferences to. Plain old data (the state is stored as its number)
/// so the table lives in huge-page memory. The layout is the one the
/// table had before it became generic over the family, byte for byte.
#[derive(Clone, Copy, Debug, Zeroable, Pod)]
#[repr(C, align(64))]
pub struct Conn {
    original: Key,
    reply: Key,
    meta: ConnMeta,
}

/// What a connection holds besides its keys, for either family: the
/// protocol, TCP state, flags, servers, expiry, creation time and
/// counters (40 bytes).
#[derive(Clone, Copy, Debug, Zeroable, Pod)]
#[repr(C)]
pub struct ConnMeta {
    proto: u8,
    state: u8,
    flags: u8,
    _pad: u8,
    /// Virtual server index.
    pub vs: u16,
    /// Real server index within the virtual server.
    pub rs: u16,
    /// The connection is expired from this time on (nanoseconds, the
    /// worker's clock). In a free entry: the next free entry's index.
    pub expires_ns: u64,
    /// Packets client → server (wrapping).
    pub packets_in: u32,
    /// Packets server → client (wrapping).
    pub packets_out: u32,
    /// When it was created: the worker's clock in milliseconds, wrapping
    /// (every 49 days), for the input-only proof's minimum age.
    born_ms: u32,
    /// Bytes client → server and server → client, low 32 bits: with
    /// `bytes_hi`, two 48-bit counters (wrapping at 256 TiB), so that the
    /// creation time fits in the line.
    bytes_lo: [u32; 2],
    /// Bits 32..48 of the byte counters.
    bytes_hi: [u16; 2],
}

impl std::ops::Deref for Conn {
    type Target = ConnMeta;
    #[inline]
    fn deref(&self) -> &ConnMeta {
        &self.meta
    }
}

impl std::ops::DerefMut for Conn {
    #[inline]
    fn deref_mut(&mut self) -> &mut ConnMeta {
        &mut self.meta
    }
}

impl ConnEntry for Conn {
    type Addr = Ipv4Addr;

    #[inline]
    fn from_parts(original: Key, reply: Key, meta: ConnMeta) -> Conn {
        Conn {
            original,
            reply,
            meta,
        }
    }

    #[inline]
    fn stored(&self, dir: Direction) -> &Key {
        match dir {
            Direction::Original => &self.original,
            Direction::Reply => &self.reply,
        }
    }
}

impl Conn {
    /// The client → virtual server key.
    pub fn original(&self) -> FlowKey {
        self.original_key()
    }

    /// The key replies carry.
    pub fn reply(&self) -> FlowKey {
        self.reply_key()
    }

    /// The key of direction `dir`.
    pub fn key(&self, dir: Direction) -> FlowKey {
        match dir {
            Direction::Original => self.original(),
            Direction::Reply => self.reply(),
        }
    }
}

impl ConnMeta {
    /// A free entry's: no protocol, state NONE, no flags.
    const FREE: ConnMeta = ConnMeta {
        proto: 0,
        state: State::None as u8,
        flags: 0,
        _pad: 0,
        vs: 0,
        rs: 0,
        expires_ns: NIL as u64,
        packets_in: 0,
        packets_out: 0,
        born_ms: 0,
        bytes_lo: [0; 2],
        bytes_hi: [0; 2],
    };

    /// IP protocol number.
    #[inline]
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// TCP state (`None` for a non-TCP connection).
    #[inline]
    pub fn state(&self) -> State {
        State::from_u8(self.state).unwrap_or(State::None)
    }

    /// The state as `ipvsadm -lc` shows it: the TCP state's name, or the
    /// protocol for others.
    pub fn state_name(&self) -> &'static str {
        match self.proto {
            PROTO_TCP => self.state().name(),
            PROTO_UDP => "UDP",
            _ => "OTHER",
        }
    }

    /// Counted as active (a TCP connection in ESTABLISHED) by its real
    /// server; otherwise counted as inactive. UDP is always inactive, as
    /// in IPVS.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.flags & ACTIVE != 0
    }

    /// Still using the input-only (DR/TUN) transitions: no reply seen.
    #[inline]
    pub fn is_input_only(&self) -> bool {
        self.flags & INPUT_ONLY != 0
    }

    /// Opened by the SYN proxy: the client's address was proven by its
    /// cookie ACK, and its segments need the sequence translation.
    #[inline]
    pub fn is_proxied(&self) -> bool {
        self.flags & PROXIED != 0
    }

    /// Marks a connection the SYN proxy opened (see [`Conn::is_proxied`]).
    pub fn set_proxied(&mut self) {
        // The cookie ACK proved the client's address.
        self.flags |= PROXIED | PROVEN;
    }

    /// The SYN went to the real server and no SYN-ACK, reset or timeout
    /// decided the handshake yet (see `lb::handshake`).
    #[inline]
    pub fn awaits_syn_ack(&self) -> bool {
        self.flags & AWAITS_SYN_ACK != 0
    }

    /// Marks the handshake forwarded to the real server, its outcome to
    /// be counted (see [`Conn::awaits_syn_ack`]).
    pub fn await_syn_ack(&mut self) {
        self.flags |= AWAITS_SYN_ACK;
    }

    /// The handshake outcome a packet going `dir` with `flags` at `now`
    /// decides for a connection awaiting its SYN-ACK (`timeout_ms` after
    /// the first SYN it times out); stops waiting once decided, so each
    /// handshake is counted once.
    #[cold]
    pub fn handshake_outcome(
        &mut self,
        dir: Direction,
        flags: TcpFlags,
        now: u64,
        timeout_ms: u32,
    ) -> Option<Handshake> {
        let age = now_ms(now).wrapping_sub(self.born_ms);
        let decided = handshake::decide(dir, flags, age, timeout_ms)?;
        self.flags &= !AWAITS_SYN_ACK;
        decided
    }

    /// The outcome of a handshake still awaited when its connection ends
    /// at `now` (expired, evicted, reused): timed out past `timeout_ms`.
    #[cold]
    pub fn handshake_at_end(&self, now: u64, timeout_ms: u32) -> Option<Handshake> {
        if !self.awaits_syn_ack() {
            return None;
        }
        handshake::at_end(now_ms(now).wrapping_sub(self.born_ms), timeout_ms)
    }

    /// Installed from a peer's sync and no packet carried here since
    /// (not *local*; see `SYNCED`).
    #[inline]
    pub fn is_synced(&self) -> bool {
        self.flags & SYNCED != 0
    }

    /// Marks an entry sync just installed (not local).
    pub fn mark_synced(&mut self) {
        self.flags |= SYNCED;
    }

    /// Makes a synced entry local (a packet went through it here).
    #[inline]
    pub fn clear_synced(&mut self) {
        self.flags &= !SYNCED;
    }

    /// Bytes client → server (48 bits, wrapping).
    pub fn bytes_in(&self) -> u64 {
        self.bytes(0)
    }

    /// Bytes server → client (48 bits, wrapping).
    pub fn bytes_out(&self) -> u64 {
        self.bytes(1)
    }

    fn bytes(&self, dir: usize) -> u64 {
        u64::from(self.bytes_hi[dir]) << 32 | u64::from(self.bytes_lo[dir])
    }

    #[inline]
    fn add_bytes(&mut self, dir: usize, bytes: u32) {
        let (lo, carry) = self.bytes_lo[dir].overflowing_add(bytes);
        self.bytes_lo[dir] = lo;
        self.bytes_hi[dir] = self.bytes_hi[dir].wrapping_add(u16::from(carry));
    }

    /// Its client is proven (see the module doc): a reply seen on the
    /// established connection, enough packets over enough time (input
    /// only), or installed by HA sync.
    #[inline]
    pub fn is_proven(&self) -> bool {
        self.flags & PROVEN != 0
    }

    /// Expired at `now`.
    #[inline]
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_ns <= now
    }

    /// Accounts one packet of `bytes` going `dir` with TCP `flags` (ignored
    /// for non-TCP) at `now`: moves the TCP state, sets `expires_ns` to
    /// `now` plus the new state's timeout (the UDP timeout for non-TCP),
    /// and says whether the connection moved between active and inactive.
    ///
    /// Check [`tcp_state::should_restart`] first: a bare SYN on a closing
    /// connection belongs to a new connection, not to this one.
    #[inline]
    pub fn on_packet(
        &mut self,
        dir: Direction,
        flags: TcpFlags,
        bytes: u32,
        now: u64,
        timeouts: &Timeouts,
    ) -> Transition {
        match dir {
            Direction::Original => {
                self.packets_in = self.packets_in.wrapping_add(1);
                self.add_bytes(0, bytes);
                // Only an unproven input-only connection has more to do:
                // one test of a byte already in hand.
                if self.flags & (PROVEN | INPUT_ONLY) == INPUT_ONLY {
                    self.prove_input_only(now, timeouts);
                }
            }
            Direction::Reply => {
                self.packets_out = self.packets_out.wrapping_add(1);
                self.add_bytes(1, bytes);
                // Replies do reach the director after all (IPVS: the
                // NOOUTPUT flag is dropped on the first output packet).
                self.flags &= !INPUT_ONLY;
            }
        }
        if self.proto == PROTO_TCP {
            let next = tcp_state::next_state(self.state(), dir, flags, self.is_input_only());
            // The server talks on an established connection: the client
            // completed a handshake with it. (A SYN-ACK or a reset is no
            // proof: a server answers spoofed SYNs and blind ACKs too.)
            if dir == Direction::Reply && next == State::Established {
                self.flags |= PROVEN;
            }
            self.enter(next, now, timeouts)
        } else {
            if dir == Direction::Reply {
                self.flags |= PROVEN;
            }
            self.expires_ns = now.saturating_add(timeouts.udp());
            self.transition(false)
        }
    }

    /// Proves an input-only connection once its client has sent
    /// `timeouts.proof_packets()` packets and it is at least
    /// `timeouts.proof_ms()` old.
    #[cold]
    fn prove_input_only(&mut self, now: u64, timeouts: &Timeouts) {
        if self.packets_in >= timeouts.proof_packets()
            && now_ms(now).wrapping_sub(self.born_ms) >= timeouts.proof_ms()
        {
            self.flags |= PROVEN;
        }
    }

    /// Puts a TCP connection in `state` (control paths: HA sync, LISTEN)
    /// with that state's timeout from `now`.
    pub fn set_state(&mut self, state: State, now: u64, timeouts: &Timeouts) -> Transition {
        if self.proto == PROTO_TCP {
            self.enter(state, now, timeouts)
        } else {
            self.expires_ns = now.saturating_add(timeouts.udp());
            self.transition(false)
        }
    }

    #[inline]
    fn enter(&mut self, state: State, now: u64, timeouts: &Timeouts) -> Transition {
        self.state = state as u8;
        self.expires_ns = now.saturating_add(timeouts.tcp(state));
        self.transition(state.is_active())
    }

    #[inline]
    fn transition(&mut self, now_active: bool) -> Transition {
        let was_active = self.is_active();
        if now_active {
            self.flags |= ACTIVE;
        } else {
            self.flags &= !ACTIVE;
        }
        Transition {
            was_active,
            now_active,
        }
    }

    #[inline]
    fn is_live(&self) -> bool {
        self.flags & LIVE != 0
    }

    /// Never evicted to make room (only reclaimed once expired): a TCP
    /// connection whose client is proven and which is past its handshake.
    #[inline]
    fn is_protected(&self) -> bool {
        self.proto == PROTO_TCP && self.is_proven() && !self.state().is_embryonic()
    }
}

/// A free entry of family `A`: zero keys, [`ConnMeta::FREE`].
#[inline]
fn free_entry<A: ConnAddr>() -> A::Conn {
    A::Conn::from_parts(A::Key::zeroed(), A::Key::zeroed(), ConnMeta::FREE)
}

/// The worker's clock (nanoseconds) in milliseconds, wrapping.
#[inline]
fn now_ms(now: u64) -> u32 {
    (now / 1_000_000) as u32
}

/// End of the free list; also marks an empty index slot.
const NIL: u32 = u32::MAX;

/// Index slots per bucket: as many 16-bit signatures and 32-bit entry
/// references as fit in one cache line beside the displacement counts.
const SLOTS: usize = 10;

/// Keys per bucket the index is sized for when the table is full (both
/// directions of every connection): 5 of 10 slots, a load of 0.5 (see the
/// module doc for why not more).
const KEYS_PER_BUCKET: usize = 5;

/// The farthest a key may be stored from its home bucket: one 4-bit count
/// per distance fits in [`Bucket::displaced`].
const MAX_DISPLACEMENT: usize = 8;

/// One cache line of the index: `SLOTS` slots, each a 16-bit signature of
/// its key's hash and the entry index shifted left by one with the low bit
/// set for the reply direction (`NIL`: empty slot), and the keys whose home
/// is this bucket but which are stored further on.
#[derive(Clone, Copy, Debug, Zeroable, Pod)]
#[repr(C, align(64))]
struct Bucket {
    sigs: [u16; SLOTS],
    refs: [u32; SLOTS],
    /// Bits `4(d-1)..4d`: how many keys whose home is this bucket are
    /// stored `d` buckets on (at most `SLOTS`, so 4 bits hold it), for `d`
    /// in `1..=MAX_DISPLACEMENT`. Zero: every key homed here is here.
    displaced: u32,
}

const EMPTY: Bucket = Bucket {
    sigs: [0; SLOTS],
    refs: [NIL; SLOTS],
    displaced: 0,
};

impl Bucket {
    /// Bit `s` set: slot `s` has signature `sig` (an empty slot's is 0,
    /// so the caller skips empty slots among them): ten 16-bit compares
    /// the compiler can do as one vector compare.
    #[inline]
    fn matches(&self, sig: u16) -> u32 {
        let mut m = 0;
        for s in 0..SLOTS {
            m |= u32::from(self.sigs[s] == sig) << s;
        }
        m
    }
}

/// Where an index slot is: bucket and slot within it.
#[derive(Clone, Copy, Debug)]
struct Place {
    bucket: usize,
    slot: usize,
    /// Buckets from the key's home.
    distance: usize,
}

/// The signature a slot keeps of its key's hash. The bucket comes from
/// the hash's high bits (multiply-shift), so the low bits are the ones
/// that tell apart keys sharing a bucket.
#[inline]
fn signature(hash: u32) -> u16 {
    hash as u16
}

#[inline]
fn tagged(id: u32, dir: Direction) -> u32 {
    (id << 1) | (dir == Direction::Reply) as u32
}

#[inline]
fn direction(tagged: u32) -> Direction {
    if tagged & 1 == 0 {
        Direction::Original
    } else {
        Direction::Reply
    }
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The seed of [`ConnTable::new`]; workers should use a random one.
const DEFAULT_SEED: u64 = 0x243F_6A88_85A3_08D3;
const M1: u64 = 0x9E37_79B9_7F4A_7C15;
const M2: u64 = 0xD6E8_FEB8_6659_FD93;

/// The per-worker connection table (see the module doc), over flow keys
/// of one address family: [`ConnTable`] (IPv4) or [`ConnTable6`].
#[derive(Debug)]
pub struct ConnTableOf<A: ConnAddr> {
    entries: HugeArray<A::Conn>,
    buckets: HugeArray<Bucket>,
    /// The farthest a key may go from its home: `MAX_DISPLACEMENT`, less
    /// in a table of so few buckets that it would come back round.
    reach: usize,
    seed: [u64; 2],
    len: usize,
    /// Head of the free list of returned entries.
    free_head: u32,
    /// Entries at and above this index have never been used.
    next_unused: u32,
    /// Where the next `expire` call resumes.
    sweep: u32,
    /// The shedding ring: entry indices of connections inserted unprotected,
    /// oldest at `shed_head` (see the module doc).
    shed: HugeArray<u32>,
    /// Ring position of the oldest queued index.
    shed_head: usize,
    /// Indices queued.
    shed_len: usize,
    /// Live connections evicted to make room, by kind.
    evictions: Evictions,
}

/// Live connections a table evicted to make room for new ones (expired
/// ones reclaimed are not counted), by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evictions {
    /// TCP connections no client had proven (half-open, or established
    /// by packets no real server answered).
    pub tcp: u64,
    /// UDP (and other non-TCP) flows, answered or not.
    pub udp: u64,
}

/// The IPv4 connection table: 64-byte entries.
pub type ConnTable = ConnTableOf<Ipv4Addr>;

/// The IPv6 connection table: 128-byte entries (see [`Conn6`]).
pub type ConnTable6 = ConnTableOf<Ipv6Addr>;

impl<A: ConnAddr> ConnTableOf<A> {
    /// A table for `capacity` connections with a fixed hash seed (tests).
    ///
    /// Panics unless `1 <= capacity <= MAX_CAPACITY` (the configuration
    /// is validated against these bounds first).
    pub fn new(capacity: usize) -> Self {
        Self::with_seed(capacity, DEFAULT_SEED)
    }

    /// A table for `capacity` connections hashing with `seed`.
    pub fn with_seed(capacity: usize, seed: u64) -> Self {
        Self::try_with_seed(capacity, seed).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Bytes a table of `capacity` connections holds (entries, index and
    /// shedding ring): what [`ConnTable::memory_bytes`] will say, known
    /// before allocating, so a configuration can be checked against the
    /// machine's memory.
    pub fn memory_for(capacity: usize) -> u64 {
        let buckets = (2 * capacity).div_ceil(KEYS_PER_BUCKET);
        (capacity * std::mem::size_of::<A::Conn>()
            + buckets * std::mem::size_of::<Bucket>()
            + capacity * std::mem::size_of::<u32>()) as u64
    }

    /// A table for `capacity` connections hashing with `seed`, or why its
    /// memory could not be had. Panics unless `1 <= capacity <=
    /// MAX_CAPACITY`, as `new`.
    pub fn try_with_seed(capacity: usize, seed: u64) -> Result<Self, String> {
        assert!(
            (1..=MAX_CAPACITY).contains(&capacity),
            "connection table capacity {capacity} outside 1..={MAX_CAPACITY}"
        );
        let buckets = (2 * capacity).div_ceil(KEYS_PER_BUCKET);
        let what = |part: &str, e: String| {
            format!("connection table of {capacity} connections: {part}: {e}")
        };
        Ok(ConnTableOf {
            entries: HugeArray::try_new(capacity, free_entry::<A>())
                .map_err(|e| what("entries", e))?,
            buckets: HugeArray::try_new(buckets, EMPTY).map_err(|e| what("index", e))?,
            reach: MAX_DISPLACEMENT.min(buckets - 1),
            seed: [seed, fold_mul(seed ^ M2, M1)],
            len: 0,
            free_head: NIL,
            next_unused: 0,
            sweep: 0,
            shed: HugeArray::try_new(capacity, NIL).map_err(|e| what("shedding ring", e))?,
            shed_head: 0,
            shed_len: 0,
            evictions: Evictions::default(),
        })
    }

    /// Connections stored (including expired ones not yet reclaimed).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no connection is stored.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fixed number of connections it holds.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of memory held: entries, index and shedding ring.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
            + std::mem::size_of_val(&*self.buckets)
            + std::mem::size_of_val(&*self.shed)
    }

    #[inline]
    fn hash_key(&self, k: &A::Key, proto: u8) -> u32 {
        A::key_hash(k, proto, &self.seed)
    }

    /// The seeded hash of `key`: computed once per frame and passed to
    /// [`ConnTable::prefetch_bucket`], [`ConnTable::prefetch_entry`] and
    /// [`ConnTable::lookup_hashed`], so the frame is parsed and hashed once.
    #[inline]
    pub fn hash(&self, key: &FlowKeyOf<A>) -> u32 {
        self.hash_key(&A::pack(key), key.proto)
    }

    /// The home bucket of `hash`: multiply-shift range reduction, so the
    /// bucket count need not be a power of two.
    #[inline]
    fn home(&self, hash: u32) -> usize {
        ((u64::from(hash) * self.buckets.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, bucket: usize) -> usize {
        if bucket + 1 == self.buckets.len() {
            0
        } else {
            bucket + 1
        }
    }

    /// Prefetches `hash`'s home bucket: the first step that brings a
    /// burst's lookups into cache. Called for a whole burst before any
    /// lookup, then [`ConnTable::prefetch_entry`] for the burst: the
    /// burst's misses overlap instead of being paid one after another, and
    /// a prefetch does not hold the core up while its line comes.
    #[inline]
    pub fn prefetch_bucket(&self, hash: u32) {
        prefetch(&self.buckets[self.home(hash)]);
    }

    /// Prefetches the entry `hash`'s lookup will compare: the one the
    /// first slot of the home bucket with `hash`'s signature points at
    /// (nearly always the key's own; entry 0 when none matches, a new
    /// flow). Reads the bucket, so call it after
    /// [`ConnTable::prefetch_bucket`] has had the burst's worth of time.
    /// Without branches on the slots: their outcome is unpredictable, and a
    /// mispredicted branch on a line still in flight would wait for it.
    #[inline]
    pub fn prefetch_entry(&self, hash: u32) {
        if let Some(e) = self.entries.get(self.prefetch_target(hash)) {
            prefetch(e);
            // A two-line entry (IPv6): its second line holds the end of
            // the reply key and the counters. A constant: the IPv4
            // instance compiles to the one prefetch.
            if std::mem::size_of::<A::Conn>() > 64 {
                if let Some(second) = bytemuck::bytes_of(e).get(64) {
                    prefetch(second);
                }
            }
        }
    }

    /// The entry [`ConnTable::prefetch_entry`] brings in for `hash`.
    #[inline]
    fn prefetch_target(&self, hash: u32) -> usize {
        let b = &self.buckets[self.home(hash)];
        let sig = signature(hash);
        let (mut tagged, mut found) = (0u32, 0u32);
        for s in 0..SLOTS {
            let m = u32::from(b.sigs[s] == sig && b.refs[s] != NIL).wrapping_neg() & !found;
            tagged |= b.refs[s] & m;
            found |= m;
        }
        (tagged >> 1) as usize
    }

    /// The tagged entry of the slots of `bucket` whose key of the slot's
    /// direction is `k`.
    #[inline]
    fn find_in(&self, bucket: &Bucket, k: &A::Key, proto: u8, sig: u16) -> Option<u32> {
        let mut m = bucket.matches(sig);
        while m != 0 {
            let t = bucket.refs[m.trailing_zeros() as usize];
            m &= m - 1;
            if t == NIL {
                continue;
            }
            let e = &self.entries[(t >> 1) as usize];
            let ek = e.stored(direction(t));
            if ek == k && e.proto == proto {
                return Some(t);
            }
        }
        None
    }

    /// The tagged entry whose key of the slot's direction is `k`: the home
    /// bucket, then only the buckets its displacement counts name.
    #[inline]
    fn find(&self, k: &A::Key, proto: u8, hash: u32) -> Option<u32> {
        let sig = signature(hash);
        let mut i = self.home(hash);
        let home = &self.buckets[i];
        if let Some(t) = self.find_in(home, k, proto, sig) {
            return Some(t);
        }
        let mut displaced = home.displaced;
        while displaced != 0 {
            i = self.next(i);
            if displaced & 0xF != 0 {
                if let Some(t) = self.find_in(&self.buckets[i], k, proto, sig) {
                    return Some(t);
                }
            }
            displaced >>= 4;
        }
        None
    }

    /// The connection of a packet with `key`, and the packet's direction on
    /// it. An expired connection is not found: it is removed and handed to
    /// `on_reclaim`.
    #[inline]
    pub fn lookup(
        &mut self,
        key: &FlowKeyOf<A>,
        now: u64,
        on_reclaim: impl FnMut(&A::Conn),
    ) -> Option<(ConnId, Direction)> {
        self.lookup_hashed(key, self.hash(key), now, on_reclaim)
    }

    /// [`ConnTable::lookup`] with `hash` already computed by
    /// [`ConnTable::hash`] (a wrong hash finds nothing).
    #[inline]
    pub fn lookup_hashed(
        &mut self,
        key: &FlowKeyOf<A>,
        hash: u32,
        now: u64,
        mut on_reclaim: impl FnMut(&A::Conn),
    ) -> Option<(ConnId, Direction)> {
        debug_assert_eq!(hash, self.hash(key), "hash of another key");
        let t = self.find(&A::pack(key), key.proto, hash)?;
        let id = t >> 1;
        if self.entries[id as usize].is_expired(now) {
            let c = self.remove(ConnId(id));
            on_reclaim(&c);
            return None;
        }
        Some((ConnId(id), direction(t)))
    }

    /// Like `lookup` without reclaiming: an expired connection is simply
    /// not found.
    pub fn peek(&self, key: &FlowKeyOf<A>, now: u64) -> Option<(ConnId, Direction)> {
        self.peek_hashed(key, self.hash(key), now)
    }

    /// [`ConnTable::peek`] with `hash` already computed by
    /// [`ConnTable::hash`].
    #[inline]
    pub fn peek_hashed(
        &self,
        key: &FlowKeyOf<A>,
        hash: u32,
        now: u64,
    ) -> Option<(ConnId, Direction)> {
        debug_assert_eq!(hash, self.hash(key), "hash of another key");
        let t = self.find(&A::pack(key), key.proto, hash)?;
        let id = t >> 1;
        (!self.entries[id as usize].is_expired(now)).then_some((ConnId(id), direction(t)))
    }

    /// Adds a connection found by `original` and by `reply` (the reply's
    /// protocol is taken from `original`). Connections it reclaims or
    /// evicts to make room go to `on_reclaim`; see the module doc for the
    /// policy when full. After `Ok`, count the connection as active or
    /// inactive per `get(id).is_active()`.
    pub fn insert(
        &mut self,
        original: FlowKeyOf<A>,
        reply: FlowKeyOf<A>,
        init: ConnInit,
        now: u64,
        mut on_reclaim: impl FnMut(&A::Conn),
    ) -> Result<ConnId, InsertError> {
        let proto = original.proto;
        debug_assert_eq!(proto, reply.proto, "reply protocol differs");
        let (ko, kr) = (A::pack(&original), A::pack(&reply));
        if ko == kr {
            return Err(InsertError::SameKeys);
        }
        let (ho, hr) = (self.hash_key(&ko, proto), self.hash_key(&kr, proto));
        for (k, h) in [(&ko, ho), (&kr, hr)] {
            if let Some(t) = self.find(k, proto, h) {
                let id = t >> 1;
                if !self.entries[id as usize].is_expired(now) {
                    return Err(InsertError::Exists);
                }
                let c = self.remove(ConnId(id));
                on_reclaim(&c);
            }
        }
        let id = match self.alloc() {
            Some(id) => id,
            None => {
                self.make_room(ho, now, &mut on_reclaim)?;
                self.alloc().ok_or(InsertError::Full)?
            }
        };
        // Both keys need a slot within reach of their homes; at the
        // index's load that fails with a vanishing probability (module doc).
        let Some(po) = self.free_slot(ho) else {
            self.free(id);
            return Err(InsertError::Full);
        };
        self.link(ho, po, tagged(id, Direction::Original));
        let Some(pr) = self.free_slot(hr) else {
            self.unlink(ho, tagged(id, Direction::Original));
            self.free(id);
            return Err(InsertError::Full);
        };
        self.link(hr, pr, tagged(id, Direction::Reply));
        let mut flags = LIVE;
        if init.input_only {
            flags |= INPUT_ONLY;
        }
        if init.proven {
            flags |= PROVEN;
        }
        if proto == PROTO_TCP && init.state.is_active() {
            flags |= ACTIVE;
        }
        self.entries[id as usize] = A::Conn::from_parts(
            ko,
            kr,
            ConnMeta {
                proto,
                state: init.state as u8,
                flags,
                _pad: 0,
                vs: init.vs,
                rs: init.rs,
                expires_ns: now.saturating_add(init.timeout_ns),
                packets_in: 0,
                packets_out: 0,
                born_ms: now_ms(now),
                bytes_lo: [0; 2],
                bytes_hi: [0; 2],
            },
        );
        self.len += 1;
        if !self.entries[id as usize].is_protected() {
            self.shed_push(id);
        }
        Ok(ConnId(id))
    }

    /// The connection `id`.
    #[inline]
    pub fn get(&self, id: ConnId) -> &A::Conn {
        let c = &self.entries[id.index()];
        debug_assert!(c.is_live(), "stale ConnId");
        c
    }

    /// The connection `id`, to update its counters and state.
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> &mut A::Conn {
        let c = &mut self.entries[id.index()];
        debug_assert!(c.is_live(), "stale ConnId");
        c
    }

    /// Removes connection `id` and returns it. Panics when `id` is not a
    /// stored connection (a caller bug that would corrupt the free list).
    pub fn remove(&mut self, id: ConnId) -> A::Conn {
        let c = self.entries[id.index()];
        assert!(c.is_live(), "remove of a free connection entry");
        self.unlink(
            self.hash_key(c.stored(Direction::Original), c.proto),
            tagged(id.0, Direction::Original),
        );
        self.unlink(
            self.hash_key(c.stored(Direction::Reply), c.proto),
            tagged(id.0, Direction::Reply),
        );
        self.free(id.0);
        self.len -= 1;
        c
    }

    /// Examines up to `budget` entries from where the last call stopped,
    /// removes those expired at `now` and hands each to `on_expired`.
    /// Returns how many it removed. Calling it every loop with a small
    /// budget sweeps the whole table every `capacity / budget` calls.
    pub fn expire(
        &mut self,
        now: u64,
        budget: usize,
        mut on_expired: impl FnMut(&A::Conn),
    ) -> usize {
        let used = self.next_unused;
        if used == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(used as usize) {
            if self.sweep >= used {
                self.sweep = 0;
            }
            let id = self.sweep;
            self.sweep += 1;
            let e = &self.entries[id as usize];
            if e.is_live() && e.is_expired(now) {
                let c = self.remove(ConnId(id));
                on_expired(&c);
                removed += 1;
            }
        }
        removed
    }

    /// Every stored connection (expired ones not yet reclaimed included:
    /// check `is_expired`), for `rvsadm conns` snapshots and HA sync.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &A::Conn)> + '_ {
        self.entries[..self.next_unused as usize]
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_live())
            .map(|(i, c)| (ConnId(i as u32), c))
    }

    fn alloc(&mut self) -> Option<u32> {
        if self.free_head != NIL {
            let id = self.free_head;
            self.free_head = self.entries[id as usize].expires_ns as u32;
            Some(id)
        } else if (self.next_unused as usize) < self.entries.len() {
            self.next_unused += 1;
            Some(self.next_unused - 1)
        } else {
            None
        }
    }

    /// Returns entry `id` to the free list.
    fn free(&mut self, id: u32) {
        let e = &mut self.entries[id as usize];
        *e = free_entry::<A>();
        e.expires_ns = u64::from(self.free_head);
        self.free_head = id;
    }

    /// Queues entry `id`, inserted unprotected, at the shedding ring's tail;
    /// on a full ring the oldest index is dropped first.
    fn shed_push(&mut self, id: u32) {
        let cap = self.shed.len();
        if self.shed_len == cap {
            self.shed_head = self.wrap_shed(self.shed_head + 1);
            self.shed_len -= 1;
        }
        let tail = self.wrap_shed(self.shed_head + self.shed_len);
        self.shed[tail] = id;
        self.shed_len += 1;
    }

    /// The oldest queued index, taken off the ring.
    fn shed_pop(&mut self) -> Option<u32> {
        if self.shed_len == 0 {
            return None;
        }
        let id = self.shed[self.shed_head];
        self.shed_head = self.wrap_shed(self.shed_head + 1);
        self.shed_len -= 1;
        Some(id)
    }

    /// `pos` (less than twice the ring's length) brought into the ring.
    #[inline]
    fn wrap_shed(&self, pos: usize) -> usize {
        if pos >= self.shed.len() {
            pos - self.shed.len()
        } else {
            pos
        }
    }

    /// Frees one entry to make room (the policy in the module doc): the
    /// oldest queued connection not protected, or expired, else one
    /// referenced from `hash`'s home bucket or those after it that is
    /// either. Counts the
    /// evictions (the victim had not expired) by kind.
    fn make_room(
        &mut self,
        hash: u32,
        now: u64,
        on_reclaim: &mut impl FnMut(&A::Conn),
    ) -> Result<(), InsertError> {
        let victim = self
            .shed_victim(now)
            .or_else(|| self.nearby_victim(hash, now));
        let id = victim.ok_or(InsertError::Full)?;
        let c = self.remove(ConnId(id));
        if !c.is_expired(now) {
            if c.proto == PROTO_TCP {
                self.evictions.tcp += 1;
            } else {
                self.evictions.udp += 1;
            }
        }
        on_reclaim(&c);
        Ok(())
    }

    /// The first connection referenced from `hash`'s home bucket or the
    /// buckets after it, within the index's reach, that is unprotected or
    /// expired: the fallback when the ring's head held only stale indices.
    /// Most often the home bucket has one; looking further (at most
    /// `reach + 1` lines, and only then) covers a home bucket that is
    /// empty or all protected, which under a flood was the cause of the
    /// rare refusals of a table full of unprotected entries.
    fn nearby_victim(&self, hash: u32, now: u64) -> Option<u32> {
        let mut bucket = self.home(hash);
        for _ in 0..=self.reach {
            let found = self.buckets[bucket]
                .refs
                .iter()
                .filter(|&&t| t != NIL)
                .map(|&t| t >> 1)
                .find(|&id| {
                    let e = &self.entries[id as usize];
                    e.is_expired(now) || !e.is_protected()
                });
            if found.is_some() {
                return found;
            }
            bucket = self.next(bucket);
        }
        None
    }

    /// Pops the shedding ring, at most [`SHED_POPS`] times, for a live
    /// entry that is unprotected or expired; stale indices (free, or
    /// protected since) are dropped.
    /// (Prefetching the next queued entry for the next insert was measured
    /// and did not help: the SYN's own bucket misses dominate.)
    fn shed_victim(&mut self, now: u64) -> Option<u32> {
        for _ in 0..SHED_POPS {
            let id = self.shed_pop()?;
            let e = &self.entries[id as usize];
            if e.is_live() && (!e.is_protected() || e.is_expired(now)) {
                return Some(id);
            }
        }
        None
    }

    /// Connections evicted to make room since the table was made.
    pub fn evictions(&self) -> Evictions {
        self.evictions
    }

    /// The first empty slot from `hash`'s home on, within reach.
    fn free_slot(&self, hash: u32) -> Option<Place> {
        let mut bucket = self.home(hash);
        for distance in 0..=self.reach {
            if let Some(slot) = self.buckets[bucket].refs.iter().position(|&t| t == NIL) {
                return Some(Place {
                    bucket,
                    slot,
                    distance,
                });
            }
            bucket = self.next(bucket);
        }
        None
    }

    /// Stores `tagged` at `place`, found by [`ConnTable::free_slot`] for
    /// `hash`, and counts it at its home when it is not there.
    fn link(&mut self, hash: u32, place: Place, tagged: u32) {
        let b = &mut self.buckets[place.bucket];
        b.sigs[place.slot] = signature(hash);
        b.refs[place.slot] = tagged;
        if place.distance > 0 {
            let home = self.home(hash);
            self.buckets[home].displaced += 1 << (4 * (place.distance - 1));
        }
    }

    /// Empties the slot holding `tagged`, whose key hashes to `hash`, and
    /// uncounts it at its home when it was displaced.
    fn unlink(&mut self, hash: u32, tagged: u32) {
        let home = self.home(hash);
        let mut bucket = home;
        let mut displaced = self.buckets[home].displaced;
        let mut distance = 0;
        loop {
            let b = &mut self.buckets[bucket];
            if let Some(s) = b.refs.iter().position(|&t| t == tagged) {
                b.refs[s] = NIL;
                b.sigs[s] = 0;
                if distance > 0 {
                    self.buckets[home].displaced -= 1 << (4 * (distance - 1));
                }
                return;
            }
            // The slot is where the home's counts say a key went.
            assert!(displaced != 0, "index slot missing");
            loop {
                bucket = self.next(bucket);
                distance += 1;
                let here = displaced & 0xF;
                displaced >>= 4;
                if here != 0 {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
