//! Per-worker counters and how the control thread reads them.
//!
//! A worker counts in plain integers it owns (no atomics on the per-packet
//! path) and every few milliseconds copies them into its [`StatsCell`] with
//! relaxed stores, which are plain moves on x86. The control thread reads
//! the cell whenever it likes and never stalls the worker; a snapshot may be
//! a few milliseconds old, never torn within one counter.

use super::client_addr::ClientAddrStats;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

/// Why a worker dropped a frame. Every drop has one, counted and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the headers it claims to carry.
    Truncated,
    /// Header fields that make no sense (bad IHL, lying lengths, odd ARP).
    Malformed,
    /// IPv4 header or ICMP checksum wrong.
    BadChecksum,
    /// Unicast to a MAC address that is not the port's.
    OtherMac,
    /// Neither ARP, IPv4 nor IPv6 (LLDP, ...).
    UnsupportedEthertype,
    /// An ARP request for an address that is not ours.
    ArpNotForUs,
    /// IPv4 to an address that is neither ours nor a service.
    NoService,
    /// IPv4 to one of our addresses but not something we answer.
    UnsupportedProtocol,
    /// A fragment rvs does not forward: addressed to us (we answer
    /// unfragmented echo only), an ICMP fragment, or a first fragment
    /// whose decision later fragments cannot follow (SYN proxy, reset).
    /// A first fragment too short for its transport header counts as
    /// `Truncated`, as a whole packet would.
    Fragment,
    /// The device's transmit queue was full.
    TxFull,
    /// TTL 0 or 1: a router must not forward it.
    TtlExpired,
    /// No route to the destination (or to the real server).
    NoRoute,
    /// The next hop did not answer ARP in time, or its queue was full.
    NeighborUnresolved,
    /// TCP that is not a SYN for a service with no connection (or a
    /// reply from a real server that matches no connection).
    NoConnection,
    /// The connection table was full and nothing could be reclaimed.
    TableFull,
    /// Every real server of the service has weight 0 or is down.
    NoRealServer,
    /// Too big to encapsulate, and rvs could not answer with ICMP.
    TooBig,
    /// The ring to the worker that owns the flow was full.
    RedirectFull,
    /// Received on, or to be sent to, a port the worker does not have.
    BadPort,
    /// A new connection from a client the service's `allow`/`deny` lists
    /// refuse.
    AclDenied,
    /// A new connection over the service's `new_conn_rate`.
    RateLimited,
    /// A new connection from a client prefix at `max_conns_per_client`.
    ClientLimit,
    /// A new connection when every real server is at its upper threshold.
    RsOverloaded,
    /// An ACK to a SYN-proxied service without a valid SYN cookie (a
    /// spoofed or stale handshake): no state made.
    SynCookieRefused,
    /// A client segment the SYN proxy kept for a real server that did not
    /// answer its SYN within a second.
    SynProxyUnanswered,
    /// A later fragment that came before its first one while the
    /// worker's fragment queue was full.
    FragmentQueueFull,
    /// A later fragment whose first fragment did not come (or was
    /// refused) within the fragment lifetime.
    FragmentUnmatched,
    /// IPv6 to an address that is not the balancer's own (IPv6 is not
    /// balanced yet: the forwarding seam drops it).
    Ipv6NoService,
    /// IPv6 with more extension headers than rvs walks (8).
    Ipv6ExtTooMany,
    /// IPv6 whose extension headers are longer than rvs walks (512 bytes).
    Ipv6ExtTooLong,
    /// IPv6 with a hop-by-hop options header after the first place.
    Ipv6HopByHopNotFirst,
    /// IPv6 with a routing header whose segments left is not zero (rvs is
    /// no hop of a source route).
    Ipv6SourceRoute,
    /// A neighbour solicitation for an address that is not ours (nor a VIP
    /// answered on that port).
    NdNotForUs,
    /// A neighbour discovery message that breaks RFC 4861's validity rules
    /// (hop limit not 255, bad checksum or options, DAD rules).
    NdInvalid,
    /// An ICMPv6 error rvs would have sent, over its rate limit (RFC 4443
    /// 2.4 (f)); the invoking packet is dropped.
    Icmpv6RateLimited,
    /// A new FullNAT connection when every local port of the service's
    /// local addresses this worker owns is taken (TCP: answered with a
    /// reset as well).
    LocalPortsExhausted,
    /// NAT64: a fragment to or from a NAT64 service (IPv6 from the
    /// client, IPv4 from the real server); not translated.
    Nat64Fragment,
    /// NAT64: a packet or ICMP error with no translation (RFC 7915: an
    /// ICMP type or code without a twin, a parameter problem's pointer,
    /// a UDP checksum of zero from the IPv6 client, a cut header).
    Nat64Untranslatable,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 38] = [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::OtherMac,
        DropReason::UnsupportedEthertype,
        DropReason::ArpNotForUs,
        DropReason::NoService,
        DropReason::UnsupportedProtocol,
        DropReason::Fragment,
        DropReason::TxFull,
        DropReason::TtlExpired,
        DropReason::NoRoute,
        DropReason::NeighborUnresolved,
        DropReason::NoConnection,
        DropReason::TableFull,
        DropReason::NoRealServer,
        DropReason::TooBig,
        DropReason::RedirectFull,
        DropReason::BadPort,
        DropReason::AclDenied,
        DropReason::RateLimited,
        DropReason::ClientLimit,
        DropReason::RsOverloaded,
        DropReason::SynCookieRefused,
        DropReason::SynProxyUnanswered,
        DropReason::FragmentQueueFull,
        DropReason::FragmentUnmatched,
        DropReason::Ipv6NoService,
        DropReason::Ipv6ExtTooMany,
        DropReason::Ipv6ExtTooLong,
        DropReason::Ipv6HopByHopNotFirst,
        DropReason::Ipv6SourceRoute,
        DropReason::NdNotForUs,
        DropReason::NdInvalid,
        DropReason::Icmpv6RateLimited,
        DropReason::LocalPortsExhausted,
        DropReason::Nat64Fragment,
        DropReason::Nat64Untranslatable,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The name used in logs, `stats:` JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::OtherMac => "other_mac",
            DropReason::UnsupportedEthertype => "unsupported_ethertype",
            DropReason::ArpNotForUs => "arp_not_for_us",
            DropReason::NoService => "no_service",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::Fragment => "fragment",
            DropReason::TxFull => "tx_full",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoRoute => "no_route",
            DropReason::NeighborUnresolved => "neighbor_unresolved",
            DropReason::NoConnection => "no_connection",
            DropReason::TableFull => "table_full",
            DropReason::NoRealServer => "no_real_server",
            DropReason::TooBig => "too_big",
            DropReason::RedirectFull => "redirect_full",
            DropReason::BadPort => "bad_port",
            DropReason::AclDenied => "acl_denied",
            DropReason::RateLimited => "rate_limited",
            DropReason::ClientLimit => "client_limit",
            DropReason::RsOverloaded => "rs_overloaded",
            DropReason::SynCookieRefused => "syn_cookie_refused",
            DropReason::SynProxyUnanswered => "synproxy_unanswered",
            DropReason::FragmentQueueFull => "fragment_queue_full",
            DropReason::FragmentUnmatched => "fragment_unmatched",
            DropReason::Ipv6NoService => "ipv6_no_service",
            DropReason::Ipv6ExtTooMany => "ipv6_ext_too_many",
            DropReason::Ipv6ExtTooLong => "ipv6_ext_too_long",
            DropReason::Ipv6HopByHopNotFirst => "ipv6_hop_by_hop_not_first",
            DropReason::Ipv6SourceRoute => "ipv6_source_route",
            DropReason::NdNotForUs => "nd_not_for_us",
            DropReason::NdInvalid => "nd_invalid",
            DropReason::Icmpv6RateLimited => "icmpv6_rate_limited",
            DropReason::LocalPortsExhausted => "local_ports_exhausted",
            DropReason::Nat64Fragment => "nat64_fragment",
            DropReason::Nat64Untranslatable => "nat64_untranslatable",
        }
    }
}

/// What one worker has done since it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes of frames received.
    pub rx_bytes: u64,
    /// Frames handed to a device for sending.
    pub tx_packets: u64,
    /// Bytes of frames handed to a device.
    pub tx_bytes: u64,
    /// ARP requests for our addresses answered.
    pub arp_requests_answered: u64,
    /// Neighbour entries learned or refreshed from ARP.
    pub arp_learned: u64,
    /// ICMP echo requests to our addresses answered.
    pub icmp_echo_answered: u64,
    /// Packets forwarded to or from real servers.
    pub forwarded: u64,
    /// Connections created.
    pub conns_created: u64,
    /// ARP requests rvs sent to resolve next hops.
    pub arp_requests_sent: u64,
    /// ICMP errors about a connection translated and forwarded.
    pub icmp_errors_forwarded: u64,
    /// ICMP "fragmentation needed" sent for packets too big to tunnel.
    pub frag_needed_sent: u64,
    /// Packets handed to the worker that owns their connection.
    pub redirected: u64,
    /// TCP resets sent (every server down, or a connection's server down).
    pub resets_sent: u64,
    /// Connections installed from the peer's sync (standby).
    pub conns_synced: u64,
    /// Sync events not reported to the peer because the control thread
    /// fell behind (set from the balancer when counters are published).
    pub sync_lost: u64,
    /// A gauge: live connections of both tables that carried a packet on
    /// this node (not only installed by sync); `rvsadm drain` waits for
    /// them (set from the balancer when counters are published).
    pub local_conns: u64,
    /// Sync records refused because a connection carried here goes to
    /// another real server (`[cluster]`; set from the balancer when
    /// counters are published).
    pub sync_conflicts: u64,
    /// Connections removed by a peer's REMOVED records.
    pub conns_sync_removed: u64,
    /// Polls that received at least one frame.
    pub busy_polls: u64,
    /// Polls that received nothing.
    pub idle_polls: u64,
    /// SYN proxy: SYNs answered with a cookie SYN-ACK (no state made; a SYN-ACK that cannot be routed back is also counted as a drop, e.g. no_route).
    pub synproxy_synacks_sent: u64,
    /// SYN proxy: cookie ACKs accepted, each opening a connection with a
    /// SYN to its real server.
    pub synproxy_cookies_accepted: u64,
    /// SYN proxy: SYNs sent again to a real server that had not answered
    /// yet (a client segment arrived meanwhile).
    pub synproxy_syns_resent: u64,
    /// SYN proxy: ACKs sent to real servers answering their SYN-ACKs
    /// (their handshakes completed).
    pub synproxy_acks_sent: u64,
    /// SYN proxy: client segments kept until their real server answered
    /// (then sent on, translated).
    pub synproxy_segments_kept: u64,
    /// Live TCP connections no client had proven (half-open, or
    /// established by packets no real server answered) evicted to make
    /// room in a full table (set from the balancer when counters are
    /// published).
    pub conns_evicted_unproven_tcp: u64,
    /// Live UDP flows evicted to make room in a full table, unproven ones
    /// (no reply seen) first (set from the balancer when counters are
    /// published).
    pub conns_evicted_udp: u64,
    /// Later fragments forwarded after their first fragment's connection
    /// (in order, or released from the fragment queue).
    pub fragments_forwarded: u64,
    /// Later fragments that came before their first and waited for it.
    pub fragments_queued: u64,
    /// Neighbour solicitations for our IPv6 addresses (and IPv6 VIPs)
    /// answered with an advertisement.
    pub nd_solicits_answered: u64,
    /// IPv6 neighbour entries learned or refreshed from neighbour discovery.
    pub nd_learned: u64,
    /// Neighbour solicitations rvs sent to resolve IPv6 next hops.
    pub nd_solicits_sent: u64,
    /// Unsolicited neighbour advertisements rvs sent for its own IPv6
    /// addresses and VIPs (at start, and with each gratuitous ARP round).
    pub nd_adverts_announced: u64,
    /// ICMPv6 echo requests to our IPv6 addresses and VIPs answered.
    pub icmpv6_echo_answered: u64,
    /// ICMPv6 errors rvs sent (time exceeded, packet too big, unreachable).
    pub icmpv6_errors_sent: u64,
    /// NAT64: IPv6 packets (and ICMPv6 errors) translated to IPv4, client
    /// to real server.
    pub nat64_to_ipv4: u64,
    /// NAT64: IPv4 packets (and ICMP errors) translated to IPv6, real
    /// server to client.
    pub nat64_to_ipv6: u64,
    /// Cluster: connections opened by a TCP segment other than a SYN (a
    /// flow another node carried, moved here by the router's ECMP; `sh`
    /// and `mh` services by NAT, DR or TUN; set from the balancer when
    /// counters are published).
    pub midflow_scheduled: u64,
    /// Drops, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
    /// What the client-address hooks did (`client_address` services).
    pub client_addr: ClientAddrStats,
}

const SCALARS: usize = 39;
const CELLS: usize = SCALARS + DropReason::COUNT + ClientAddrStats::COUNT;

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats::from_cells(&[0; CELLS])
    }
}

impl WorkerStats {
    /// Counts a dropped frame.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Total of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds another worker's counters (for the totals).
    pub fn add(&mut self, other: &WorkerStats) {
        let mut a = self.to_cells();
        for (x, y) in a.iter_mut().zip(other.to_cells()) {
            *x += y;
        }
        *self = WorkerStats::from_cells(&a);
    }

    fn to_cells(self) -> [u64; CELLS] {
        let mut c = [0u64; CELLS];
        c[..SCALARS].copy_from_slice(&[
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.arp_requests_answered,
            self.arp_learned,
            self.icmp_echo_answered,
            self.forwarded,
            self.conns_created,
            self.arp_requests_sent,
            self.icmp_errors_forwarded,
            self.frag_needed_sent,
            self.redirected,
            self.resets_sent,
            self.conns_synced,
            self.sync_lost,
            self.busy_polls,
            self.idle_polls,
            self.synproxy_synacks_sent,
            self.synproxy_cookies_accepted,
            self.synproxy_syns_resent,
            self.synproxy_acks_sent,
            self.synproxy_segments_kept,
            self.conns_evicted_unproven_tcp,
            self.conns_evicted_udp,
            self.fragments_forwarded,
            self.fragments_queued,
            self.nd_solicits_answered,
            self.nd_learned,
            self.nd_solicits_sent,
            self.nd_adverts_announced,
            self.icmpv6_echo_answered,
            self.icmpv6_errors_sent,
            self.nat64_to_ipv4,
            self.nat64_to_ipv6,
            self.midflow_scheduled,
            self.local_conns,
            self.sync_conflicts,
            self.conns_sync_removed,
        ]);
        let carried = SCALARS + DropReason::COUNT;
        c[SCALARS..carried].copy_from_slice(&self.drops);
        c[carried..].copy_from_slice(&self.client_addr.to_array());
        c
    }

    fn from_cells(c: &[u64; CELLS]) -> WorkerStats {
        let mut drops = [0u64; DropReason::COUNT];
        let carried = SCALARS + DropReason::COUNT;
        drops.copy_from_slice(&c[SCALARS..carried]);
        WorkerStats {
            rx_packets: c[0],
            rx_bytes: c[1],
            tx_packets: c[2],
            tx_bytes: c[3],
            arp_requests_answered: c[4],
            arp_learned: c[5],
            icmp_echo_answered: c[6],
            forwarded: c[7],
            conns_created: c[8],
            arp_requests_sent: c[9],
            icmp_errors_forwarded: c[10],
            frag_needed_sent: c[11],
            redirected: c[12],
            resets_sent: c[13],
            conns_synced: c[14],
            sync_lost: c[15],
            busy_polls: c[16],
            idle_polls: c[17],
            synproxy_synacks_sent: c[18],
            synproxy_cookies_accepted: c[19],
            synproxy_syns_resent: c[20],
            synproxy_acks_sent: c[21],
            synproxy_segments_kept: c[22],
            conns_evicted_unproven_tcp: c[23],
            conns_evicted_udp: c[24],
            fragments_forwarded: c[25],
            fragments_queued: c[26],
            nd_solicits_answered: c[27],
            nd_learned: c[28],
            nd_solicits_sent: c[29],
            nd_adverts_announced: c[30],
            icmpv6_echo_answered: c[31],
            icmpv6_errors_sent: c[32],
            nat64_to_ipv4: c[33],
            nat64_to_ipv6: c[34],
            midflow_scheduled: c[35],
            local_conns: c[36],
            sync_conflicts: c[37],
            conns_sync_removed: c[38],
            drops,
            client_addr: ClientAddrStats::from_slice(&c[carried..]),
        }
    }

    /// The counters as the JSON object of the `stats:` log line.
    pub fn to_json(&self) -> Value {
        let drops: Map<String, Value> = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), json!(self.drops[*r as usize])))
            .collect();
        let mut v = json!({
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "arp_requests_answered": self.arp_requests_answered,
            "arp_learned": self.arp_learned,
            "icmp_echo_answered": self.icmp_echo_answered,
            "forwarded": self.forwarded,
            "conns_created": self.conns_created,
            "arp_requests_sent": self.arp_requests_sent,
            "icmp_errors_forwarded": self.icmp_errors_forwarded,
            "frag_needed_sent": self.frag_needed_sent,
            "redirected": self.redirected,
            "resets_sent": self.resets_sent,
            "conns_synced": self.conns_synced,
            "sync_lost": self.sync_lost,
            "busy_polls": self.busy_polls,
            "idle_polls": self.idle_polls,
            "synproxy_synacks_sent": self.synproxy_synacks_sent,
            "synproxy_cookies_accepted": self.synproxy_cookies_accepted,
            "synproxy_syns_resent": self.synproxy_syns_resent,
            "synproxy_acks_sent": self.synproxy_acks_sent,
            "synproxy_segments_kept": self.synproxy_segments_kept,
            "conns_evicted_unproven_tcp": self.conns_evicted_unproven_tcp,
            "conns_evicted_udp": self.conns_evicted_udp,
            "fragments_forwarded": self.fragments_forwarded,
            "fragments_queued": self.fragments_queued,
            "nd_solicits_answered": self.nd_solicits_answered,
            "nd_learned": self.nd_learned,
            "nd_solicits_sent": self.nd_solicits_sent,
            "nd_adverts_announced": self.nd_adverts_announced,
            "icmpv6_echo_answered": self.icmpv6_echo_answered,
            "icmpv6_errors_sent": self.icmpv6_errors_sent,
            "nat64_to_ipv4": self.nat64_to_ipv4,
            "nat64_to_ipv6": self.nat64_to_ipv6,
            "midflow_scheduled": self.midflow_scheduled,
            "local_conns": self.local_conns,
            "sync_conflicts": self.sync_conflicts,
            "conns_sync_removed": self.conns_sync_removed,
            "drops": drops,
        });
        self.client_addr.add_to_json(&mut v);
        v
    }
}

pub use crate::lb::balancer::RealServerCounters;
pub use crate::lb::limits::RefusalCounts;

/// Counters per real server: active, inactive, conns, packets and bytes
/// both ways, then the handshakes and their outcomes (ok, timeouts,
/// resets).
const RS_COUNTERS: usize = 11;

/// How full a worker's fixed tables are: gauges, published with the
/// counters (`rvsadm stats`, metrics), so an operator sees a table fill
/// before it refuses anyone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableFill {
    /// Connections the worker's table holds at most (`conn_table_size`).
    pub conn_capacity: u64,
    /// Frames parked waiting for a neighbour's ARP answer.
    pub neighbor_queue_frames: u64,
    /// Frames the neighbour queue can park at most.
    pub neighbor_queue_capacity: u64,
    /// Later IPv4 fragments waiting for their first fragment.
    pub fragment_queue_frames: u64,
    /// Fragments the fragment queue holds at most.
    pub fragment_queue_capacity: u64,
}

impl TableFill {
    /// The gauges as JSON members of a worker's `stats` object.
    pub fn add_to_json(&self, connections: u64, v: &mut Value) {
        v["conn_capacity"] = json!(self.conn_capacity);
        v["conn_fill"] = json!(ratio(connections, self.conn_capacity));
        v["neighbor_queue_frames"] = json!(self.neighbor_queue_frames);
        v["neighbor_queue_capacity"] = json!(self.neighbor_queue_capacity);
        v["fragment_queue_frames"] = json!(self.fragment_queue_frames);
        v["fragment_queue_capacity"] = json!(self.fragment_queue_capacity);
    }

    /// Adds another worker's (for the totals).
    pub fn add(&mut self, other: &TableFill) {
        self.conn_capacity += other.conn_capacity;
        self.neighbor_queue_frames += other.neighbor_queue_frames;
        self.neighbor_queue_capacity += other.neighbor_queue_capacity;
        self.fragment_queue_frames += other.fragment_queue_frames;
        self.fragment_queue_capacity += other.fragment_queue_capacity;
    }
}

/// `part / whole`, 0 when there is no whole.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Gauge slots of a cell: connections, then `TableFill`'s five.
const GAUGES: usize = 6;

/// Where a worker publishes its counters for the control thread.
///
/// The per real server and per virtual server counters live behind locks
/// that only the control thread ever waits on: a reload that adds servers
/// or services grows the cell (`reserve`) before the workers see the new
/// table, and a worker that finds a lock taken at that moment skips one
/// publication (`try_read`) rather than wait.
#[derive(Debug)]
pub struct StatsCell {
    cells: [AtomicU64; CELLS],
    /// Per real server (services in order, their servers in order),
    /// `RS_CELLS` each: the counters, then 1 while the worker holds the
    /// server at its upper threshold.
    lb: RwLock<Vec<AtomicU64>>,
    /// Real servers in the worker's last publication.
    published: AtomicUsize,
    /// Per virtual server, its limits' refusals (`RefusalCounts`).
    refused: RwLock<Vec<AtomicU64>>,
    /// Virtual servers in the worker's last publication of refusals.
    published_services: AtomicUsize,
    /// Connections in the table, then the `TableFill` gauges.
    gauges: [AtomicU64; GAUGES],
    /// FullNAT's local ports, per (local address, protocol) the worker
    /// owns: `LOCAL_CELLS` each, the first [`LOCAL_ENTRIES`] of them.
    local: Box<[AtomicU64]>,
    /// Entries in the worker's last publication of `local`.
    published_local: AtomicUsize,
}

/// (local address, protocol) entries a cell publishes at most: a worker
/// owns at most this many (64 addresses × 2 protocols).
pub const LOCAL_ENTRIES: usize = 128;

/// Cells per local entry: family and protocol (`family << 8 |
/// protocol`, family 4 or 6), the address's high and low 64 bits (IPv4 in
/// the low ones), in use, capacity, exhausted.
const LOCAL_CELLS: usize = 6;

impl Default for StatsCell {
    fn default() -> Self {
        StatsCell::new(0)
    }
}

/// Counters per real server in a cell, the overload flag included.
const RS_CELLS: usize = RS_COUNTERS + 1;

/// Refusal reasons counted per virtual server.
const REFUSAL_CELLS: usize = std::mem::size_of::<RefusalCounts>() / 8;

impl StatsCell {
    /// A cell with room for `real_servers` servers' counters.
    pub fn new(real_servers: usize) -> StatsCell {
        StatsCell {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
            lb: RwLock::new(zeros(real_servers * RS_CELLS)),
            published: AtomicUsize::new(0),
            refused: RwLock::new(Vec::new()),
            published_services: AtomicUsize::new(0),
            gauges: std::array::from_fn(|_| AtomicU64::new(0)),
            local: zeros(LOCAL_ENTRIES * LOCAL_CELLS).into_boxed_slice(),
            published_local: AtomicUsize::new(0),
        }
    }

    /// Copies the worker's FullNAT local port figures in (worker side);
    /// entries beyond [`LOCAL_ENTRIES`] are left out.
    pub fn publish_local(&self, usage: impl Iterator<Item = crate::lb::local_pool::LocalUsage>) {
        let mut n = 0;
        for (u, cells) in usage.zip(self.local.chunks_exact(LOCAL_CELLS)) {
            let (family, addr) = match u.addr {
                std::net::IpAddr::V4(a) => (4u64, u128::from(u32::from(a))),
                std::net::IpAddr::V6(a) => (6, u128::from(a)),
            };
            let kind = (family << 8) | u64::from(u.protocol.number());
            let values = [
                kind,
                (addr >> 64) as u64,
                addr as u64,
                u.in_use,
                u.capacity,
                u.exhausted,
            ];
            for (a, v) in cells.iter().zip(values) {
                a.store(v, Ordering::Relaxed);
            }
            n += 1;
        }
        self.published_local.store(n, Ordering::Relaxed);
    }

    /// The last published local port figures (control side).
    pub fn local_usage(&self) -> Vec<crate::lb::local_pool::LocalUsage> {
        let n = self.published_local.load(Ordering::Relaxed);
        self.local
            .chunks_exact(LOCAL_CELLS)
            .take(n)
            .filter_map(|c| {
                let kind = c[0].load(Ordering::Relaxed);
                let addr = (u128::from(c[1].load(Ordering::Relaxed)) << 64)
                    | u128::from(c[2].load(Ordering::Relaxed));
                Some(crate::lb::local_pool::LocalUsage {
                    addr: match kind >> 8 {
                        6 => std::net::Ipv6Addr::from(addr).into(),
                        _ => std::net::Ipv4Addr::from(addr as u32).into(),
                    },
                    protocol: crate::lb::service::Protocol::from_number(kind as u8)?,
                    in_use: c[3].load(Ordering::Relaxed),
                    capacity: c[4].load(Ordering::Relaxed),
                    exhausted: c[5].load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// The same cell with room for `services` virtual servers' refusal
    /// counts (none without it).
    pub fn with_service_room(self, services: usize) -> StatsCell {
        self.reserve(0, services);
        self
    }

    /// Servers the cell has room for.
    pub fn real_server_room(&self) -> usize {
        self.lb.read().map_or(0, |lb| lb.len() / RS_CELLS)
    }

    /// Makes room for at least `real_servers` servers' counters (control
    /// side, before a table with that many reaches the worker); the
    /// counters already published are kept.
    pub fn reserve_real_servers(&self, real_servers: usize) {
        self.reserve(real_servers, 0);
    }

    /// Makes room for at least `real_servers` servers' and `services`
    /// virtual servers' counters (control side, before a table with that
    /// many reaches the worker); the counters already published are kept.
    pub fn reserve(&self, real_servers: usize, services: usize) {
        grow(&self.lb, real_servers * RS_CELLS);
        grow(&self.refused, services * REFUSAL_CELLS);
    }

    /// Copies the worker's counters in (worker side).
    pub fn publish(&self, stats: &WorkerStats) {
        for (cell, v) in self.cells.iter().zip(stats.to_cells()) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// Copies the per real server counters and the connection count in
    /// (worker side); servers beyond the cell's room are left out, and so
    /// are all of them while the control thread grows the cell.
    pub fn publish_lb<'a>(
        &self,
        servers: impl Iterator<Item = &'a RealServerCounters>,
        conns: usize,
    ) {
        self.gauges[0].store(conns as u64, Ordering::Relaxed);
        let Ok(lb) = self.lb.try_read() else {
            return;
        };
        let mut cells = lb.chunks_exact(RS_CELLS);
        let mut n = 0;
        for (c, cell) in servers.zip(&mut cells) {
            let v = [
                u64::from(c.active),
                u64::from(c.inactive),
                c.conns,
                c.packets_in,
                c.packets_out,
                c.bytes_in,
                c.bytes_out,
                c.handshakes,
                c.handshake_ok,
                c.handshake_timeouts,
                c.handshake_resets,
            ];
            for (a, x) in cell.iter().zip(v) {
                a.store(x, Ordering::Relaxed);
            }
            n += 1;
        }
        self.published.store(n, Ordering::Relaxed);
    }

    /// Copies the per real server overload flags in (worker side).
    pub fn publish_overloaded(&self, servers: &[bool]) {
        let Ok(lb) = self.lb.try_read() else {
            return;
        };
        for (cell, &o) in lb.chunks_exact(RS_CELLS).zip(servers) {
            cell[RS_COUNTERS].store(u64::from(o), Ordering::Relaxed);
        }
    }

    /// The last published overload flags, per real server (control side).
    pub fn overloaded(&self) -> Vec<bool> {
        let Ok(lb) = self.lb.read() else {
            return Vec::new();
        };
        let n = self.published.load(Ordering::Relaxed);
        lb.chunks_exact(RS_CELLS)
            .take(n)
            .map(|c| c[RS_COUNTERS].load(Ordering::Relaxed) != 0)
            .collect()
    }

    /// Copies the per virtual server refusals in (worker side); services
    /// beyond the cell's room are left out.
    pub fn publish_refused(&self, services: &[RefusalCounts]) {
        let Ok(refused) = self.refused.try_read() else {
            return;
        };
        let mut n = 0;
        for (counts, cells) in services.iter().zip(refused.chunks_exact(REFUSAL_CELLS)) {
            for (a, &v) in cells.iter().zip(counts) {
                a.store(v, Ordering::Relaxed);
            }
            n += 1;
        }
        self.published_services.store(n, Ordering::Relaxed);
    }

    /// The last published per virtual server refusals (control side).
    pub fn refused(&self) -> Vec<RefusalCounts> {
        let Ok(refused) = self.refused.read() else {
            return Vec::new();
        };
        let n = self.published_services.load(Ordering::Relaxed);
        refused
            .chunks_exact(REFUSAL_CELLS)
            .take(n)
            .map(|c| {
                let mut out = RefusalCounts::default();
                for (o, a) in out.iter_mut().zip(c) {
                    *o = a.load(Ordering::Relaxed);
                }
                out
            })
            .collect()
    }

    /// Copies the table fill gauges in (worker side).
    pub fn publish_fill(&self, fill: &TableFill) {
        let v = [
            fill.conn_capacity,
            fill.neighbor_queue_frames,
            fill.neighbor_queue_capacity,
            fill.fragment_queue_frames,
            fill.fragment_queue_capacity,
        ];
        for (a, x) in self.gauges[1..].iter().zip(v) {
            a.store(x, Ordering::Relaxed);
        }
    }

    /// The last published per real server counters (control side): as
    /// many as the worker last published.
    pub fn real_servers(&self) -> Vec<RealServerCounters> {
        let Ok(lb) = self.lb.read() else {
            return Vec::new();
        };
        let n = self.published.load(Ordering::Relaxed);
        lb.chunks_exact(RS_CELLS)
            .take(n)
            .map(|c| {
                let v: Vec<u64> = c.iter().map(|a| a.load(Ordering::Relaxed)).collect();
                RealServerCounters {
                    active: v[0] as u32,
                    inactive: v[1] as u32,
                    conns: v[2],
                    packets_in: v[3],
                    packets_out: v[4],
                    bytes_in: v[5],
                    bytes_out: v[6],
                    handshakes: v[7],
                    handshake_ok: v[8],
                    handshake_timeouts: v[9],
                    handshake_resets: v[10],
                }
            })
            .collect()
    }

    /// The last published number of connections in the worker's table.
    pub fn connections(&self) -> u64 {
        self.gauges[0].load(Ordering::Relaxed)
    }

    /// The last published table fill gauges.
    pub fn fill(&self) -> TableFill {
        let g = |i: usize| self.gauges[i].load(Ordering::Relaxed);
        TableFill {
            conn_capacity: g(1),
            neighbor_queue_frames: g(2),
            neighbor_queue_capacity: g(3),
            fragment_queue_frames: g(4),
            fragment_queue_capacity: g(5),
        }
    }

    /// The last published counters (control side).
    pub fn snapshot(&self) -> WorkerStats {
        let mut c = [0u64; CELLS];
        for (v, cell) in c.iter_mut().zip(&self.cells) {
            *v = cell.load(Ordering::Relaxed);
        }
        WorkerStats::from_cells(&c)
    }
}

/// Grows `cells` to at least `len` zeroed counters, keeping those there.
fn grow(cells: &RwLock<Vec<AtomicU64>>, len: usize) {
    if let Ok(mut v) = cells.write() {
        if v.len() < len {
            let more = len - v.len();
            v.extend(zeros(more));
        }
    }
}

fn zeros(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counters_read_back_unchanged() {
        let mut s = WorkerStats {
            rx_packets: 7,
            tx_bytes: 99,
            icmp_echo_answered: 3,
            ..Default::default()
        };
        s.drop(DropReason::BadChecksum);
        s.drop(DropReason::TxFull);
        let cell = StatsCell::default();
        cell.publish(&s);
        assert_eq!(cell.snapshot(), s);
    }

    #[test]
    fn published_refusals_read_back_within_the_room() {
        let cell = StatsCell::new(0).with_service_room(2);
        cell.publish_refused(&[[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]]);
        assert_eq!(cell.refused(), vec![[1, 2, 3, 4], [5, 6, 7, 8]]);
        assert!(StatsCell::new(4).refused().is_empty());
    }

    #[test]
    fn a_reload_adding_services_grows_their_refusal_counts() {
        let cell = StatsCell::new(0).with_service_room(1);
        cell.publish_refused(&[[1, 2, 3, 4]]);
        cell.reserve(0, 2);
        cell.publish_refused(&[[1, 2, 3, 4], [5, 6, 7, 8]]);
        assert_eq!(cell.refused(), vec![[1, 2, 3, 4], [5, 6, 7, 8]]);
    }

    #[test]
    fn local_port_figures_round_trip_through_the_cell() {
        use crate::lb::local_pool::LocalUsage;
        let cell = StatsCell::new(0);
        let u = LocalUsage {
            addr: std::net::Ipv4Addr::new(10, 2, 0, 100).into(),
            protocol: crate::lb::service::Protocol::Udp,
            in_use: 5,
            capacity: 10,
            exhausted: 2,
        };
        let u6 = LocalUsage {
            addr: "2001:db8:2::100"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .into(),
            protocol: crate::lb::service::Protocol::Tcp,
            in_use: 1,
            capacity: 64512,
            exhausted: 7,
        };
        cell.publish_local([u, u6].into_iter());
        assert_eq!(cell.local_usage(), vec![u, u6]);
        cell.publish_local(std::iter::empty());
        assert!(cell.local_usage().is_empty());
    }

    #[test]
    fn published_overload_flags_read_back() {
        let cell = StatsCell::new(3);
        cell.publish_lb([counters(0), counters(0), counters(0)].iter(), 0);
        cell.publish_overloaded(&[false, true, false, true]);
        assert_eq!(cell.overloaded(), vec![false, true, false]);
    }

    #[test]
    fn totals_add_every_counter() {
        let mut a = WorkerStats {
            rx_packets: 1,
            ..Default::default()
        };
        a.drop(DropReason::NoService);
        let mut b = a;
        b.drop(DropReason::NoService);
        a.add(&b);
        assert_eq!(a.rx_packets, 2);
        assert_eq!(a.drops[DropReason::NoService as usize], 3);
        assert_eq!(a.total_drops(), 3);
    }

    fn counters(conns: u64) -> RealServerCounters {
        RealServerCounters {
            conns,
            ..Default::default()
        }
    }

    #[test]
    fn servers_beyond_the_room_are_left_out() {
        let cell = StatsCell::new(2);
        let servers = [counters(1), counters(2), counters(3)];
        cell.publish_lb(servers.iter(), 5);
        let read: Vec<u64> = cell.real_servers().iter().map(|c| c.conns).collect();
        assert_eq!(read, vec![1, 2]);
        assert_eq!(cell.connections(), 5);
    }

    #[test]
    fn a_grown_cell_keeps_its_counters_and_takes_the_added_servers() {
        let cell = StatsCell::new(1);
        cell.publish_lb([counters(7)].iter(), 1);
        cell.reserve_real_servers(3);
        assert_eq!(cell.real_server_room(), 3);
        assert_eq!(cell.real_servers()[0].conns, 7);
        cell.publish_lb([counters(7), counters(8), counters(9)].iter(), 3);
        let read: Vec<u64> = cell.real_servers().iter().map(|c| c.conns).collect();
        assert_eq!(read, vec![7, 8, 9]);
    }

    #[test]
    fn reserving_less_than_the_room_never_shrinks_a_cell() {
        let cell = StatsCell::new(4);
        cell.reserve_real_servers(2);
        assert_eq!(cell.real_server_room(), 4);
    }

    #[test]
    fn only_the_servers_last_published_are_read_back() {
        let cell = StatsCell::new(1000);
        cell.publish_lb([counters(1), counters(2)].iter(), 0);
        assert_eq!(cell.real_servers().len(), 2);
    }

    #[test]
    fn table_fill_reads_back_and_shows_in_json() {
        let cell = StatsCell::new(0);
        let fill = TableFill {
            conn_capacity: 1000,
            neighbor_queue_frames: 3,
            neighbor_queue_capacity: 256,
            fragment_queue_frames: 5,
            fragment_queue_capacity: 64,
        };
        cell.publish_fill(&fill);
        cell.publish_lb(std::iter::empty(), 250);
        assert_eq!(cell.fill(), fill);
        let mut v = json!({});
        cell.fill().add_to_json(cell.connections(), &mut v);
        assert_eq!(v["conn_fill"], 0.25);
        assert_eq!(v["neighbor_queue_frames"], 3);
        assert_eq!(v["fragment_queue_frames"], 5);
        assert_eq!(v["fragment_queue_capacity"], 64);
    }

    #[test]
    fn the_client_address_counters_are_published_and_added() {
        let mut a = WorkerStats::default();
        a.client_addr.proxy_v2_inserted = 3;
        a.client_addr.skipped_fragment = 1;
        let mut t = a;
        t.add(&a);
        assert_eq!(t.client_addr.proxy_v2_inserted, 6);
        assert_eq!(t.client_addr.skipped_fragment, 2);
        let cell = StatsCell::default();
        cell.publish(&a);
        assert_eq!(cell.snapshot(), a);
        assert_eq!(a.to_json()["client_addr_proxy_v2_inserted"], 3);
    }

    #[test]
    fn totals_add_the_syn_proxy_counters() {
        let a = WorkerStats {
            synproxy_synacks_sent: 3,
            synproxy_cookies_accepted: 2,
            synproxy_syns_resent: 1,
            synproxy_acks_sent: 4,
            ..Default::default()
        };
        let mut t = a;
        t.add(&a);
        assert_eq!(
            (
                t.synproxy_synacks_sent,
                t.synproxy_cookies_accepted,
                t.synproxy_syns_resent,
                t.synproxy_acks_sent
            ),
            (6, 4, 2, 8)
        );
        let cell = StatsCell::default();
        cell.publish(&a);
        assert_eq!(cell.snapshot(), a);
        assert_eq!(a.to_json()["synproxy_cookies_accepted"], 2);
    }

    #[test]
    fn json_names_every_drop_reason() {
        let v = WorkerStats::default().to_json();
        for r in DropReason::ALL {
            assert_eq!(v["drops"][r.name()], 0, "{}", r.name());
        }
    }
}
