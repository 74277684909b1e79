//! The load balancer as a component of its own: one per worker, it owns the
//! connection table, the persistence templates, the schedulers, the per
//! real server counters and the sync reports, and answers one question per
//! packet: what to do with this flow's packet, as data ([`Decision`]).
//!
//! Why it is separate from the worker: the worker is I/O, ARP, ICMP,
//! routing and the rewrite of bytes; the balancer is policy over plain
//! values (a [`Flow`] in, a [`Decision`] out), so every rule of IPVS's
//! connection handling is unit-tested here without frames, ports or a
//! worker, and the worker never reaches into the balancer's tables.
//!
//! Order of decisions for a TCP or UDP packet (`decide`):
//! 1. The connection table, by the packet's 5-tuple (either direction). A
//!    hit in the original direction goes to the connection's real server; a
//!    hit in the reply direction (NAT) goes back to the client as the
//!    service. A bare SYN on a closing connection retires it and starts a
//!    new one. A connection whose real server is down ends here when the
//!    service has `expire_nodest_conn`: UDP and SYNs are scheduled afresh,
//!    other TCP is answered with a reset so the client reconnects.
//! 2. No connection and the destination is a service: the service's
//!    admission limits (allow/deny lists, per-client limit, rate; see
//!    `limits`) may refuse it before anything is made; then schedule a
//!    real server (persistence first; servers at their upper threshold are
//!    passed over), create the connection. TCP creates connections only on
//!    a bare SYN, like IPVS, unless mid-flow scheduling is on (a cluster
//!    node, `midflow`): then an ACK of a connection another node carried
//!    opens it too, established, for a service every node schedules alike.
//!    With every server down, a TCP client gets a reset at once (or the
//!    sorry server takes it).
//!    With `syn_proxy` (NAT), a bare SYN makes no connection: it is
//!    answered with a cookie SYN-ACK ([`Decision::SynCookie`]), and only
//!    the client's ACK carrying a valid cookie schedules a real server and
//!    creates the connection, marked proxied ([`Decision::SynToRealServer`]).
//!    The proxied connection's sequence delta lives in a side array indexed
//!    like the table (16 bytes per entry, allocated only once a service
//!    has the proxy), so the table's one-line entries stay as they are.
//! 3. ICMP errors quoting a tracked connection ([`Balancer::icmp_error`])
//!    go where the quoted packet's connection goes, so path MTU discovery
//!    works.
//!
//! Real-server weights and health are read from the service snapshot
//! (`ServiceTable::effective_weight`), which the control plane computes
//! and swaps in between polls: the balancer keeps no copy of either.
//!
//! Per real server counters (connections active and inactive, packets and
//! bytes each way) are plain integers, flat, one per server of the
//! snapshot; lc/wlc see this worker's counts only. With N workers and RSS
//! spreading clients evenly, each worker's counts are about 1/N of the
//! global ones with the same proportions between servers, which is what
//! least-connection scheduling compares.

use super::client_addr::{Carried, ClientAddress};
use super::clients::ClientCounts;
use super::conn::{
    Conn, ConnEntry, ConnId, ConnInit, ConnMeta, ConnTable, ConnTable6, Direction, FlowKey,
    InsertError, PROTO_TCP,
};
use super::family::IpFamily;
use super::handshake::Handshake;
use super::limits::{
    holds_client_slot, ClientLimit, LimitRefusal, RefusalCounts, Thresholds, TokenBucket,
};
use super::local_pool::{LocalPool, LocalPool6, LocalUsage};
use super::persist::PersistTable;
use super::sched::{Candidate, FlowHashInput, Scheduler};
use super::service::{
    ForwardMethod, Protocol, ServiceId, ServiceTable, VirtualService, SORRY_SERVER,
};
use super::sync::{SyncEvent, SyncQueue};
use super::synproxy::{CookieJar, Proxied};
use super::tcp_state::{self, TcpFlags, Timeouts, Transition};
use super::xmit::Endpoint;
use crate::dpdk::hugemem::HugeArray;
use midflow::Opening;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Most connection entries the expiry sweep examines in one poll: bounds
/// the work a poll adds to a burst.
const SWEEP_BUDGET: usize = 256;

/// How fast the sweep walks the table: the whole table once a second, but
/// no more than this many entries a second (a 10M-entry table in 10 s).
/// Sized to time, not to polls, so a busy-polling worker does not stream
/// the table through its cache at every poll, and an idle one still
/// reclaims. Expired connections are also reclaimed at once when a packet
/// meets them, and a full table makes room from the expired first. The
/// price: above 1M connections a pass takes capacity / 1M seconds, and
/// until it comes by, an expired connection no packet meets still counts
/// as inactive for lc/wlc and `rvsadm` (IPVS's timers are exact).
const SWEEP_MAX_PER_SECOND: u64 = 1_000_000;

/// One packet of a TCP or UDP flow, as the worker's first look at the
/// frame found it: everything the balancer decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The 5-tuple as it travels on the wire.
    pub key: FlowKey,
    /// The connection table's hash of `key` ([`Balancer::flow_hash`]),
    /// computed once and shared by the prefetch and the lookup.
    pub hash: u32,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// TCP flags (none for UDP).
    pub flags: TcpFlags,
    /// The IPv4 total length, for the byte counters.
    pub bytes: u32,
}

/// Why the balancer refuses a packet; the worker counts each under its
/// drop reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not for a service (or for a service that is draining).
    NoService,
    /// TCP that may not open a connection and belongs to none, or a real
    /// server's reply no connection knows.
    NoConnection,
    /// The connection table is full and nothing could be reclaimed.
    TableFull,
    /// Every real server of the service has weight 0 (UDP; TCP gets a
    /// reset).
    NoRealServer,
    /// A tuple that cannot be a connection (the same key both ways).
    Malformed,
    /// The client is not allowed by the service's `allow`/`deny` lists.
    AclDenied,
    /// The service's new-connection rate was exceeded (this worker's
    /// token bucket was empty).
    RateLimited,
    /// The client's prefix already holds `max_conns_per_client`
    /// connections on this worker.
    ClientLimit,
    /// Every real server with weight is at its upper threshold, and there
    /// is no sorry server. Dropped, not reset: the client's retransmitted
    /// SYN may find a server below its lower threshold.
    Overloaded,
    /// An ACK to a SYN-proxied service that carries no valid cookie.
    BadCookie,
    /// FullNAT: every local port of the service's local addresses this
    /// worker owns is taken (or it owns none). TCP gets a reset.
    NoLocalPort,
}

impl From<LimitRefusal> for Refusal {
    fn from(r: LimitRefusal) -> Refusal {
        match r {
            LimitRefusal::AclDenied => Refusal::AclDenied,
            LimitRefusal::RateLimited => Refusal::RateLimited,
            LimitRefusal::ClientLimit => Refusal::ClientLimit,
            LimitRefusal::Overloaded => Refusal::Overloaded,
        }
    }
}

/// The sequence fields of a TCP segment, which the SYN proxy needs (zero
/// for UDP, and wherever no service has the proxy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Receive window.
    pub window: u16,
    /// The MSS option (read on bare SYNs only).
    pub mss: Option<u16>,
}

/// What to do with one packet: the balancer's answer, as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A client's packet: send it to this real server by `method`.
    ToRealServer {
        /// NAT, DR or TUN.
        method: ForwardMethod,
        /// The real server (address and port).
        real: Endpoint,
        /// This packet created the connection.
        created: bool,
    },
    /// A real server's reply (NAT): back to the client, from the service.
    ToClient {
        /// The service's address and port the reply must come from.
        vip: Endpoint,
    },
    /// Answer the client with a TCP reset from the destination (every
    /// server down, or its connection's server went down).
    Reset,
    /// Drop the packet.
    Drop(Refusal),
    /// FullNAT, a client's packet: from `local` to `real`.
    FullNatToRealServer {
        /// The local address and port the real server sees.
        local: Endpoint,
        /// The real server.
        real: Endpoint,
        /// This packet created the connection.
        created: bool,
        /// The service carries the client's address (`client_address`).
        carry: Option<Carry>,
    },
    /// FullNAT, a real server's reply: from the service to `client`.
    FullNatToClient {
        /// The service's address and port.
        vip: Endpoint,
        /// The client.
        client: Endpoint,
        /// The service carries the client's address (`client_address`).
        carry: Option<Carry>,
    },
    /// SYN proxy: answer the client's SYN with a SYN-ACK whose sequence
    /// number is `cookie`, offering `mss`. No state was made.
    SynCookie {
        /// The proxy's initial sequence number towards the client.
        cookie: u32,
        /// The MSS to offer.
        mss: u16,
    },
    /// SYN proxy: send `real` the SYN of the client's connection (the
    /// client's segment is rewritten into it): on the cookie ACK that
    /// opened the connection, or again for a client segment arriving while
    /// the real server has not answered.
    SynToRealServer {
        /// The real server.
        real: Endpoint,
        /// The client's initial sequence number.
        isn: u32,
        /// The MSS the cookie granted.
        mss: u16,
        /// The client's receive window.
        window: u16,
        /// This packet created the connection.
        created: bool,
        /// A client segment of connection `park` arriving before the real
        /// server answered: the worker may keep it until the server's
        /// SYN-ACK instead (then forwarded translated), and sends the SYN
        /// again only when it cannot.
        park: Option<ConnId>,
    },
    /// SYN proxy: the real server's SYN-ACK; answer it with the ACK that
    /// completes its handshake (the frame is rewritten into it), then send
    /// the client segments kept for connection `conn`.
    AckToRealServer {
        /// The client's initial sequence number.
        client_isn: u32,
        /// The client's receive window.
        window: u16,
        /// The connection.
        conn: ConnId,
    },
    /// A client's TCP segment of a connection whose service carries the
    /// client's address (`client_address`): to `real` by NAT, then through
    /// `lb::client_addr::to_real_server` with the state
    /// [`Balancer::carried_mut`] gives for `conn`.
    ToRealServerCarrying {
        /// The real server.
        real: Endpoint,
        /// This packet created the connection.
        created: bool,
        /// The connection (its client-address state's index).
        conn: ConnId,
        /// PROXY v2 or TOA.
        mode: ClientAddress,
    },
    /// A real server's segment of such a connection: through
    /// `lb::client_addr::to_client` with `conn`'s state, then back to the
    /// client as `vip` by NAT.
    ToClientCarrying {
        /// The service.
        vip: Endpoint,
        /// The connection.
        conn: ConnId,
        /// PROXY v2 or TOA.
        mode: ClientAddress,
    },
    /// A client's segment of a proxied connection: to `real` by NAT, its
    /// acknowledgment number plus `delta`.
    ToRealServerShifted {
        /// The real server.
        real: Endpoint,
        /// The connection's sequence delta.
        delta: u32,
    },
    /// A real server's segment of a proxied connection: to the client as
    /// `vip`, its sequence number minus `delta`.
    ToClientShifted {
        /// The service.
        vip: Endpoint,
        /// The connection's sequence delta.
        delta: u32,
    },
    /// TUN, IPv4-in-IPv6: a client's packet of an IPv4 service to a real
    /// server reached over IPv6 (`lb::service::Tunnel6`), the packet
    /// unchanged inside an IPv6 header toward `real` (`xmit::tun6`).
    Tun6ToRealServer {
        /// The real server's IPv6 address.
        real: Ipv6Addr,
        /// This packet created the connection.
        created: bool,
    },
}

/// Where an ICMP error about a tracked connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpRoute {
    /// About a packet forwarded to a real server: back to the client, as
    /// if the VIP had answered (NAT translation of the quoted packet).
    ToClient {
        /// The service.
        vip: Endpoint,
        /// The client, where the error goes.
        client: Ipv4Addr,
        /// A connection whose stream carries a PROXY v2 header
        /// (`lb::client_addr`): the quoted segment's sequence number is
        /// shifted back before the client sees it
        /// (`client_addr::unshift_quoted_seq`); `None` otherwise.
        carried: Option<Carried>,
    },
    /// About a reply: on to the real server that sent it, by `method`.
    ToRealServer {
        /// NAT, DR or TUN.
        method: ForwardMethod,
        /// The real server.
        real: Endpoint,
        /// A SYN-proxied connection's sequence delta, which the quoted
        /// segment's sequence number gains (the real server checks it is
        /// one it sent); 0 otherwise.
        seq_delta: u32,
    },
    /// FullNAT, about a packet forwarded to a real server (the error came
    /// from the inside, to the local address): to the client from the VIP,
    /// quoting what the client sent.
    FullNatToClient {
        /// The service.
        vip: Endpoint,
        /// The client.
        client: Endpoint,
        /// The local end the quoted packet left from.
        local: Endpoint,
        /// As for [`IcmpRoute::ToClient`]: a PROXY v2 connection's state,
        /// to shift the quoted sequence number back; `None` otherwise.
        carried: Option<Carried>,
    },
    /// FullNAT, about a reply sent to the client: to the real server from
    /// the local address, quoting the reply as the real server sent it.
    FullNatToRealServer {
        /// The local address and port.
        local: Endpoint,
        /// The real server.
        real: Endpoint,
    },
}

/// A FullNAT TCP connection of a service with `client_address`: the
/// worker's hooks (`lb::client_addr`) need the connection, whose state
/// sits beside the table, and the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carry {
    /// The connection.
    pub conn: ConnId,
    /// PROXY v2 or TOA.
    pub mode: ClientAddress,
}

/// Says whether this worker owns a FullNAT local address (see
/// [`Balancer::with_local_owner`]).
pub type LocalOwner = Arc<dyn Fn(Ipv4Addr) -> bool + Send + Sync>;

/// One real server's counters on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealServerCounters {
    /// Connections in ESTABLISHED (TCP).
    pub active: u32,
    /// Other live connections (handshake, closing, UDP).
    pub inactive: u32,
    /// Connections scheduled to it since start.
    pub conns: u64,
    /// Packets client → server.
    pub packets_in: u64,
    /// Packets server → client (seen only with NAT).
    pub packets_out: u64,
    /// Bytes client → server.
    pub bytes_in: u64,
    /// Bytes server → client.
    pub bytes_out: u64,
    /// TCP handshakes forwarded to it (a client's SYN that made a
    /// connection, or the SYN proxy's SYN; NAT only: see `lb::handshake`).
    pub handshakes: u64,
    /// Of those, completed: its SYN-ACK seen within the timeout.
    pub handshake_ok: u64,
    /// Of those, no SYN-ACK within the service's `syn_timeout_ms`.
    pub handshake_timeouts: u64,
    /// Of those, reset by the server before its SYN-ACK.
    pub handshake_resets: u64,
}

impl RealServerCounters {
    /// Adds another worker's counters (for totals).
    pub fn add(&mut self, o: &RealServerCounters) {
        self.handshakes += o.handshakes;
        self.handshake_ok += o.handshake_ok;
        self.handshake_timeouts += o.handshake_timeouts;
        self.handshake_resets += o.handshake_resets;
        self.active += o.active;
        self.inactive += o.inactive;
        self.conns += o.conns;
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// One connection as `rvsadm conns` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// "tcp" or "udp".
    pub protocol: &'static str,
    /// The client's address and port (of either family).
    pub client: SocketAddr,
    /// The VIP and port it connected to.
    pub virtual_server: SocketAddr,
    /// The real server it was scheduled to.
    pub real_server: SocketAddr,
    /// FullNAT: the local address and port the real server sees.
    pub local: Option<SocketAddr>,
    /// TCP state (IPVS's names), or "UDP".
    pub state: &'static str,
    /// Seconds until it expires without traffic.
    pub expires_in_s: u64,
    /// Packets client → server.
    pub packets_in: u64,
    /// Packets server → client.
    pub packets_out: u64,
    /// Bytes client → server.
    pub bytes_in: u64,
    /// Bytes server → client.
    pub bytes_out: u64,
}

/// What a balancer starts with.
#[derive(Clone, Debug)]
pub struct BalancerSetup {
    /// The services (shared, immutable snapshot).
    pub services: Arc<ServiceTable>,
    /// Connection timeouts by state.
    pub timeouts: Timeouts,
    /// Connections it can track (`conn_table_size`).
    pub conn_capacity: usize,
    /// Seed for the table's hash and the schedulers.
    pub seed: u64,
}

/// Counters per real server, flat in the snapshot's order, with where each
/// service's servers start; and what the limits count on connections'
/// creation and removal (`limits`): the one owner of per real server and
/// per client state, so every path that adds or removes a connection keeps
/// all of it right.
#[derive(Debug, Default)]
struct Counters {
    base: Vec<usize>,
    servers: Vec<RealServerCounters>,
    /// This worker's share of each server's thresholds (flat, as `servers`).
    thresholds: Vec<Thresholds>,
    /// Servers at their upper threshold (flat, as `servers`).
    overloaded: Vec<bool>,
    /// Each service's per-client limit (by service).
    per_client: Vec<Option<ClientLimit>>,
    /// Connections by (service, client prefix), for services with a
    /// per-client limit; allocated when the first such service appears.
    clients: ClientCounts,
    /// Each service's handshake timeout (by service, `lb::handshake`).
    syn_timeout_ms: Vec<u32>,
    /// FullNAT's local ports this worker owns: a connection that ends
    /// gives its port back here, whatever removed it.
    local: LocalPool,
    /// The IPv6 twin of `local` (FullNAT over IPv6, `fullnat6`).
    local6: LocalPool6,
    /// Services that forward by FullNAT (by service).
    fullnat: Vec<bool>,
    /// Entries of both tables that sync installed and no packet carried
    /// here since (not local; `Conn::is_synced`).
    synced: usize,
    /// Sync records refused because a local entry of the same tuple goes
    /// to another real server (cluster mode: the local entry keeps it).
    conflicts: u64,
}

impl Counters {
    /// Counters shaped like `services`, keeping those already there (a
    /// reload keeps indexes, appends new servers and services).
    fn reshape(&mut self, services: &ServiceTable) {
        let old_base = std::mem::take(&mut self.base);
        let old = std::mem::take(&mut self.servers);
        let old_overloaded = std::mem::take(&mut self.overloaded);
        for (i, s) in services.services().iter().enumerate() {
            self.base.push(self.servers.len());
            for r in 0..s.real_servers.len() {
                let kept = old_base.get(i).and_then(|&b| {
                    let end = old_base.get(i + 1).copied().unwrap_or(old.len());
                    (b + r < end).then_some(b + r)
                });
                self.servers.push(kept.map(|k| old[k]).unwrap_or_default());
                self.overloaded
                    .push(kept.is_some_and(|k| old_overloaded.get(k) == Some(&true)));
            }
        }
    }

    /// Takes the limits of `services` (every new snapshot): each server's
    /// share of its thresholds among `workers`, its overload rechecked
    /// against them, and each service's per-client limit. True when a
    /// per-client limit changed, so the client counts must be rebuilt.
    fn set_limits(
        &mut self,
        services: &ServiceTable,
        workers: u32,
        capacity: usize,
        seed: u64,
    ) -> bool {
        self.thresholds.clear();
        for s in services.services() {
            self.thresholds.extend(
                s.real_servers
                    .iter()
                    .map(|r| r.thresholds.per_worker(workers)),
            );
        }
        self.overloaded.resize(self.servers.len(), false);
        for ((o, t), c) in self
            .overloaded
            .iter_mut()
            .zip(&self.thresholds)
            .zip(&self.servers)
        {
            *o = t.rechecked(*o, c.active.saturating_add(c.inactive));
        }
        self.syn_timeout_ms.clear();
        self.syn_timeout_ms
            .extend(services.services().iter().map(|s| s.syn_timeout_ms));
        let per_client: Vec<Option<ClientLimit>> = services
            .services()
            .iter()
            .map(|s| s.limits.per_client)
            .collect();
        let old = &self.per_client;
        let changed = (0..per_client.len().max(old.len()))
            .any(|i| per_client.get(i).copied().flatten() != old.get(i).copied().flatten());
        if per_client.iter().any(Option::is_some) && self.clients.is_unallocated() {
            // Off the packet path, between polls (see `clients`).
            self.clients = ClientCounts::with_capacity(capacity, seed);
        }
        self.per_client = per_client;
        changed
    }

    /// The servers of service `vs` at their upper threshold.
    fn overloaded(&self, vs: usize) -> &[bool] {
        self.range(vs).map_or(&[], |r| &self.overloaded[r])
    }

    /// Connections service `vs` has from `client`'s prefix on this worker.
    #[inline]
    fn client_conns<A: IpFamily>(&self, vs: ServiceId, limit: ClientLimit, client: A) -> u32 {
        self.clients.get(vs, limit.prefix(client))
    }

    /// The per-client count a connection of `vs` from `client` is under.
    #[inline]
    fn client_prefix<A: IpFamily>(&self, vs: u16, client: A) -> Option<u32> {
        let limit = (*self.per_client.get(usize::from(vs))?)?;
        Some(limit.prefix(client))
    }

    /// The per-client count `c` is under, if it holds a place in one
    /// (`limits::holds_client_slot`).
    #[inline]
    fn client_slot<E: ConnEntry>(&self, c: &E) -> Option<u32> {
        if !holds_client_slot(c.proto(), c.state()) {
            return None;
        }
        self.client_prefix(c.vs, c.original_key().src)
    }

    /// Moves `c` in or out of its client's count when its state crossed
    /// into closing (it was in state `before`).
    #[inline]
    fn client_state_changed<E: ConnEntry>(&mut self, c: &E, before: tcp_state::State) {
        let (was, is) = (
            holds_client_slot(c.proto(), before),
            holds_client_slot(c.proto(), c.state()),
        );
        if was == is {
            return;
        }
        if let Some(p) = self.client_prefix(c.vs, c.original_key().src) {
            if is {
                let _ = self.clients.increment(c.vs, p);
            } else {
                self.clients.decrement(c.vs, p);
            }
        }
    }

    /// Recounts every connection by client prefix (a per-client limit
    /// changed in a reload: prefixes may now be cut differently).
    fn recount_clients(&mut self, conns: &ConnTable) {
        if self.clients.is_unallocated() {
            return;
        }
        self.clients.clear();
        for (_, c) in conns.iter() {
            if let Some(p) = self.client_slot(c) {
                self.clients.increment(c.vs, p);
            }
        }
    }

    /// Where service `vs`'s servers are in `servers`.
    #[inline]
    fn range(&self, vs: usize) -> Option<std::ops::Range<usize>> {
        let base = *self.base.get(vs)?;
        let end = self.base.get(vs + 1).copied().unwrap_or(self.servers.len());
        Some(base..end)
    }

    #[inline]
    fn get_mut(&mut self, vs: u16, rs: u16) -> Option<&mut RealServerCounters> {
        let range = self.range(usize::from(vs))?;
        self.servers[range].get_mut(usize::from(rs))
    }

    fn service(&self, vs: usize) -> &[RealServerCounters] {
        self.range(vs).map_or(&[], |r| &self.servers[r])
    }

    /// Takes a connection that ended at `now` out of its server's count
    /// (and its client's, and rechecks the server's overload); a handshake
    /// it still awaited counts as timed out when past the timeout.
    fn forget<E: ConnEntry>(&mut self, c: &E, now: u64) {
        if c.is_synced() {
            self.synced = self.synced.saturating_sub(1);
        }
        if self
            .fullnat
            .get(usize::from(c.vs))
            .copied()
            .unwrap_or(false)
        {
            let r = c.reply_key();
            self.release_local(r.dst, r.proto, r.dst_port);
        }
        if let Some(p) = self.client_slot(c) {
            self.clients.decrement(c.vs, p);
        }
        let Some(i) = self.flat(c.vs, c.rs) else {
            return;
        };
        if c.awaits_syn_ack() {
            let outcome = c.handshake_at_end(now, self.syn_timeout(c.vs));
            self.count_handshake(i, outcome);
        }
        let rs = &mut self.servers[i];
        if c.is_active() {
            rs.active = rs.active.saturating_sub(1);
        } else {
            rs.inactive = rs.inactive.saturating_sub(1);
        }
        let total = rs.active.saturating_add(rs.inactive);
        if let (Some(t), Some(o)) = (self.thresholds.get(i), self.overloaded.get_mut(i)) {
            *o = t.after_remove(*o, total);
        }
    }

    /// FullNAT: gives an ended connection's local port back to its
    /// family's pool (the per-family hook of `forget`; the family is a
    /// constant once monomorphised, so the IPv4 path has no new branch).
    #[inline]
    fn release_local<A: IpFamily>(&mut self, lip: A, proto: u8, port: u16) {
        if let Some(lip) = lip.as_ipv4() {
            self.local.release(lip, proto, port);
        } else if let Some(lip) = lip.as_ipv6() {
            self.local6.release(lip, proto, port);
        }
    }

    /// Service `vs`'s handshake timeout.
    #[inline]
    fn syn_timeout(&self, vs: u16) -> u32 {
        self.syn_timeout_ms
            .get(usize::from(vs))
            .copied()
            .unwrap_or(crate::lb::handshake::DEFAULT_SYN_TIMEOUT_MS)
    }

    /// Counts a handshake's outcome for the server at flat index `i`.
    #[cold]
    fn count_handshake(&mut self, i: usize, outcome: Option<Handshake>) {
        let Some(c) = self.servers.get_mut(i) else {
            return;
        };
        match outcome {
            Some(Handshake::Ok) => c.handshake_ok += 1,
            Some(Handshake::Reset) => c.handshake_resets += 1,
            Some(Handshake::TimedOut) => c.handshake_timeouts += 1,
            None => {}
        }
    }

    /// The outcome a packet of connection `c` (awaiting its SYN-ACK)
    /// decides, counted for its server.
    #[cold]
    #[inline(never)]
    fn handshake_packet(&mut self, c: &mut ConnMeta, dir: Direction, flags: TcpFlags, now: u64) {
        let timeout = self.syn_timeout(c.vs);
        let outcome = c.handshake_outcome(dir, flags, now, timeout);
        if outcome.is_some() {
            if let Some(i) = self.flat(c.vs, c.rs) {
                self.count_handshake(i, outcome);
            }
        }
    }

    /// Counts a new connection (and checks its server's overload).
    fn created<E: ConnEntry>(&mut self, conn: &E) {
        let (vs, rs, active) = (conn.vs, conn.rs, conn.is_active());
        if let Some(p) = self.client_slot(conn) {
            // Never full: at most one pair per connection (see `clients`).
            let _ = self.clients.increment(vs, p);
        }
        let Some(i) = self.flat(vs, rs) else {
            return;
        };
        let c = &mut self.servers[i];
        c.conns += 1;
        if active {
            c.active += 1;
        } else {
            c.inactive += 1;
        }
        let total = c.active.saturating_add(c.inactive);
        if let (Some(t), Some(o)) = (self.thresholds.get(i), self.overloaded.get_mut(i)) {
            *o = t.after_create(*o, total);
        }
    }

    /// The flat index of server `rs` of service `vs`.
    #[inline]
    fn flat(&self, vs: u16, rs: u16) -> Option<usize> {
        let range = self.range(usize::from(vs))?;
        let i = range.start + usize::from(rs);
        (i < range.end).then_some(i)
    }

    /// Moves a connection between its server's active and inactive counts.
    fn account(&mut self, vs: u16, rs: u16, t: Transition) {
        if !t.changed() {
            return;
        }
        if let Some(c) = self.get_mut(vs, rs) {
            if t.now_active {
                c.active += 1;
                c.inactive = c.inactive.saturating_sub(1);
            } else {
                c.inactive += 1;
                c.active = c.active.saturating_sub(1);
            }
        }
    }
}

/// A worker's load balancer (see the module doc).
pub struct Balancer {
    services: Arc<ServiceTable>,
    conns: ConnTable,
    /// IPv6 connections (`v6`): one entry until a service is IPv6.
    conns6: ConnTable6,
    persist: PersistTable,
    timeouts: Timeouts,
    scheds: Vec<Scheduler>,
    counters: Counters,
    /// Scratch for the scheduler's view, sized at start and on reload.
    candidates: Vec<Candidate>,
    /// Seed of the schedulers (rebuilt on a reload).
    seed: u64,
    /// Where connection events go for the peer (HA configured).
    sync: Option<SyncQueue>,
    /// Report events: HA configured and this balancer is the active one.
    sync_active: bool,
    /// `[cluster]`: every node active; sync honours the local-vs-synced
    /// rules (`set_cluster`).
    cluster: bool,
    /// When the sweep last ran, and the entries it may still examine.
    swept_at_ns: u64,
    sweep_credit: u64,
    /// Workers sharing the limits (each holds its share, `limits`).
    workers: u32,
    /// Each service's new-connection token bucket (by service).
    buckets: Vec<Option<TokenBucket>>,
    /// New connections each service's limits refused (by service).
    refused: Vec<RefusalCounts>,
    /// The SYN proxy's cookies, and its per-connection state indexed like
    /// the table (empty while no service has `syn_proxy`).
    cookies: CookieJar,
    proxied: HugeArray<Proxied>,
    any_syn_proxy: bool,
    /// Which FullNAT local addresses this worker owns (`lb::local_pool`);
    /// `None`: all of them (one worker).
    local_owner: Option<LocalOwner>,
    /// Per service, the pool entries (local address, protocol) this worker
    /// owns, and where the next new connection starts looking.
    local_by_vs: Vec<Vec<usize>>,
    local_next: Vec<usize>,
    /// What `lb::client_addr` keeps about each connection, indexed like
    /// the table (empty while no service has `client_address`).
    carried: HugeArray<Carried>,
    /// No service forwards by FullNAT or tunnels IPv4 over IPv6, and no
    /// connection carries the client's address (`carried` is empty): a
    /// packet's decision is the plain one, without the per-packet looks
    /// at any of them.
    plain_forwarding: bool,
    /// What the pool was built from: (address, protocol, range) in order.
    local_shape: Vec<(Ipv4Addr, Protocol, (u16, u16))>,
    /// FullNAT over IPv6: which IPv6 local addresses this worker owns and
    /// how its services take them (`fullnat6`).
    local6: fullnat6::Local6,
    /// Mid-flow TCP segments of consistently scheduled services open
    /// connections (`midflow`; a cluster node's setting).
    midflow: bool,
    /// Connections mid-flow segments opened (`midflow`).
    midflow_scheduled: u64,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Balancer({} services, {}/{} connections)",
            self.services.len(),
            self.conns.len(),
            self.conns.capacity()
        )
    }
}

impl Balancer {
    /// A balancer with an empty connection table sized by `setup`; panics
    /// when its memory cannot be had (`try_new` says why instead).
    pub fn new(setup: &BalancerSetup) -> Balancer {
        Balancer::try_new(setup).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A balancer with an empty connection table sized by `setup`, or why
    /// the tables' memory could not be had.
    pub fn try_new(setup: &BalancerSetup) -> Result<Balancer, String> {
        let services = setup.services.clone();
        let any_persistence = services.services().iter().any(|s| s.persistence.is_some());
        let mut b = Balancer {
            conns: ConnTable::try_with_seed(setup.conn_capacity.max(1), setup.seed)?,
            conns6: v6::initial_table(&services, setup.conn_capacity, setup.seed)?,
            persist: PersistTable::try_with_seed(
                if any_persistence {
                    setup.conn_capacity.max(1)
                } else {
                    1
                },
                setup.seed ^ 0x9e37_79b9,
            )?,
            timeouts: setup.timeouts,
            scheds: Vec::new(),
            counters: Counters::default(),
            candidates: Vec::new(),
            seed: setup.seed,
            sync: None,
            sync_active: false,
            cluster: false,
            swept_at_ns: 0,
            sweep_credit: 0,
            workers: 1,
            buckets: Vec::new(),
            refused: Vec::new(),
            cookies: CookieJar::new(setup.seed ^ 0x5359_4e43_4f4f_4b49),
            proxied: HugeArray::new(0, Proxied::default()),
            any_syn_proxy: false,
            local_owner: None,
            local_by_vs: Vec::new(),
            local_next: Vec::new(),
            carried: HugeArray::new(0, Carried::default()),
            plain_forwarding: true,
            local_shape: Vec::new(),
            local6: fullnat6::Local6::default(),
            midflow: false,
            midflow_scheduled: 0,
            services: services.clone(),
        };
        b.set_services(services);
        Ok(b)
    }

    /// The same balancer as one of `workers` sharing the limits: each
    /// holds its share of the thresholds and rates (see `limits`).
    pub fn with_workers(mut self, workers: usize) -> Balancer {
        self.workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        self.buckets.clear();
        self.set_services(self.services.clone());
        self
    }

    /// The same balancer taking only the FullNAT local addresses `owner`
    /// accepts: the worker passes the RSS model's verdict (the address
    /// hashes to its queue), so the replies the NIC hashes on them come
    /// back to it.
    pub fn with_local_owner(mut self, owner: LocalOwner) -> Balancer {
        self.local_owner = Some(owner);
        self.counters.local = LocalPool::default();
        self.local_shape.clear();
        self.set_local_pool(&self.services.clone());
        self
    }

    /// The local addresses of the FullNAT services `services` that this
    /// worker owns.
    pub fn owned_local_addresses(&self, services: &ServiceTable) -> Vec<Ipv4Addr> {
        services
            .local_addresses()
            .iter()
            .copied()
            .filter(|&a| self.local_owner.as_ref().is_none_or(|own| own(a)))
            .collect()
    }

    /// Rebuilds the local ports for `services` when their shape changed
    /// (start, a reload that changed a local address or range); ports of
    /// live connections stay taken.
    fn set_local_pool(&mut self, services: &ServiceTable) {
        let owned = self.owned_local_addresses(services);
        let mut entries = Vec::new();
        for s in services.services() {
            if s.forward != ForwardMethod::FullNat {
                continue;
            }
            for &a in s.local.addresses.iter().filter(|a| owned.contains(a)) {
                entries.push((a, s.key.protocol, s.local.ports));
            }
        }
        self.counters.fullnat = services
            .services()
            .iter()
            .map(|s| s.forward == ForwardMethod::FullNat)
            .collect();
        // Health and weight snapshots come often and change none of this:
        // the pool (its rings are 128 KiB per address and protocol) is
        // rebuilt only when the local addresses or ranges changed.
        if entries != self.local_shape {
            self.counters.local = LocalPool::new(entries.iter().copied());
            self.local_shape = entries;
            for (_, c) in self.conns.iter() {
                if self.counters.fullnat.get(usize::from(c.vs)) == Some(&true) {
                    let r = c.reply();
                    self.counters.local.claim(r.dst, r.proto, r.dst_port);
                }
            }
            self.claim_nat64_ports(services);
        }
        let local = &self.counters.local;
        self.local_by_vs = services
            .services()
            .iter()
            .map(|s| {
                if s.forward != ForwardMethod::FullNat {
                    return Vec::new();
                }
                let proto = s.key.protocol.number();
                s.local
                    .addresses
                    .iter()
                    .filter_map(|&a| local.index_of(a, proto))
                    .collect()
            })
            .collect();
        self.local_next.resize(services.len(), 0);
    }

    /// A free local address and port for a new connection of service
    /// `vs`, taken; its addresses are tried in turn from the one after the
    /// last used.
    #[inline]
    fn take_local(&mut self, vs: ServiceId) -> Option<Endpoint> {
        let v = usize::from(vs);
        let entries = self.local_by_vs.get(v)?;
        let n = entries.len();
        let start = self.local_next.get(v).copied().unwrap_or(0);
        for k in 0..n {
            let i = entries[(start + k) % n];
            if let Some(port) = self.counters.local.take_at(i) {
                if let Some(next) = self.local_next.get_mut(v) {
                    *next = (start + k + 1) % n;
                }
                let ip = self.counters.local.addr_at(i)?;
                return Some(Endpoint::new(ip, port));
            }
        }
        None
    }

    /// This worker's local ports, per (local address, protocol).
    pub fn local_usage(&self) -> impl Iterator<Item = LocalUsage> + '_ {
        self.counters
            .local
            .usage()
            .chain(self.counters.local6.usage())
    }

    /// Takes a new service snapshot (a reload, a health or weight change).
    /// Indexes of services and real servers are stable across reloads
    /// (`control::reload`), so connections keep their meaning; counters
    /// grow for what was added. Schedulers start afresh only when the
    /// services themselves changed (a reload), not for a new weight or
    /// health verdict, which they read at every pick.
    pub fn set_services(&mut self, services: Arc<ServiceTable>) {
        let same_servers = self.scheds.len() == services.len()
            && services
                .services()
                .iter()
                .zip(self.services.services())
                .all(|(a, b)| a.real_servers.len() == b.real_servers.len());
        if !same_servers {
            // A reload that added servers or services: the counters grow
            // (off the packet path, between polls).
            self.counters.reshape(&services);
            let max_rs = services
                .services()
                .iter()
                .map(|s| s.real_servers.len())
                .max()
                .unwrap_or(0);
            if self.candidates.capacity() < max_rs {
                self.candidates = Vec::with_capacity(max_rs);
            }
        }
        let same_schedulers = same_servers
            && services
                .services()
                .iter()
                .zip(self.services.services())
                .all(|(a, b)| {
                    a.scheduler == b.scheduler
                        && a.mh_table_size == b.mh_table_size
                        && a.real_servers == b.real_servers
                        && a.ipv6 == b.ipv6
                });
        if !same_schedulers {
            self.scheds = (0..services.len())
                .map(|i| services.new_scheduler(i as ServiceId, self.seed.wrapping_add(i as u64)))
                .collect();
        }
        self.any_syn_proxy = services.services().iter().any(|s| s.syn_proxy);
        if self.any_syn_proxy && self.proxied.len() < self.conns.capacity() {
            // Off the packet path (start or reload), faulted in at once like
            // the table's own arrays.
            self.proxied = HugeArray::new(self.conns.capacity(), Proxied::default());
        }
        self.grow_conns6(&services);
        let any_client_address = services
            .services()
            .iter()
            .any(|s| s.client_address.is_some());
        if any_client_address && self.carried.len() < self.conns.capacity() {
            // As the SYN proxy's array: off the packet path.
            self.carried = HugeArray::new(self.conns.capacity(), Carried::default());
        }
        // `carried` never shrinks: a connection armed before a reload
        // keeps its mode, so once allocated the plain path is off.
        self.plain_forwarding = self.carried.is_empty()
            && !services
                .services()
                .iter()
                .any(|s| s.forward == ForwardMethod::FullNat || s.tunnel6.is_some());
        self.set_limits(&services);
        self.set_local_pool(&services);
        self.set_local_pool6(&services);
        self.services = services;
    }

    /// Takes the limits of a new snapshot: thresholds and per-client
    /// limits (through the counters, which own that state) and the token
    /// buckets, kept while their rate is unchanged.
    fn set_limits(&mut self, services: &ServiceTable) {
        let capacity = self.conns.capacity();
        if self
            .counters
            .set_limits(services, self.workers, capacity, self.seed)
        {
            self.counters.recount_clients(&self.conns);
            self.counters.count_clients(&self.conns6);
        }
        let workers = self.workers;
        if self.refused.len() < services.len() {
            self.refused
                .resize(services.len(), RefusalCounts::default());
        }
        self.buckets.resize(services.len(), None);
        for (b, s) in self.buckets.iter_mut().zip(services.services()) {
            let rate = s.limits.rate;
            if b.map(|b| b.rate()) != rate {
                *b = rate.map(|r| TokenBucket::new(r, workers));
            }
        }
    }

    /// The limits a new connection of `client` to service `vs` must pass
    /// before anything is made for it: the allow/deny lists, the client
    /// prefix's connections, the rate (which takes a token), in that
    /// order, so a refused client costs no token.
    #[inline]
    fn admit<A: IpFamily>(
        &mut self,
        vs: ServiceId,
        client: A,
        now: u64,
    ) -> Result<(), LimitRefusal> {
        let limits = &self.services.get(vs).limits;
        if !limits.acl.is_empty() && !client.allowed_by(&limits.acl) {
            return Err(LimitRefusal::AclDenied);
        }
        if let Some(l) = limits.per_client {
            if self.counters.client_conns(vs, l, client) >= l.max_conns {
                return Err(LimitRefusal::ClientLimit);
            }
        }
        if let Some(Some(bucket)) = self.buckets.get_mut(usize::from(vs)) {
            if !bucket.try_take(now) {
                return Err(LimitRefusal::RateLimited);
            }
        }
        Ok(())
    }

    /// True when some service has the SYN proxy (and so its side array
    /// exists): a miss then looks at the proxy before the usual path.
    pub fn syn_proxy_enabled(&self) -> bool {
        self.any_syn_proxy
    }

    /// The service snapshot in force.
    #[inline]
    pub fn services(&self) -> &ServiceTable {
        &self.services
    }

    /// Gives the balancer its end of the sync circulation (HA configured);
    /// it reports while `active`.
    pub fn set_sync(&mut self, queue: SyncQueue, active: bool) {
        self.sync = Some(queue);
        self.sync_active = active;
    }

    /// Starts or stops reporting (the HA role changed).
    pub fn set_sync_active(&mut self, active: bool) {
        self.sync_active = active && self.sync.is_some();
    }

    /// `[cluster]` mode (issue 20): installs keep a local entry's real
    /// server on a conflict (counted), REMOVED records remove only synced
    /// entries, and a full dump holds only local connections. Off (`[ha]`,
    /// standalone): a record replaces, a removal removes, a dump is whole.
    pub fn set_cluster(&mut self, cluster: bool) {
        self.cluster = cluster;
    }

    /// Live entries of both tables that carried a packet here (not only
    /// installed by sync): what `rvsadm drain` waits for.
    pub fn local_conns(&self) -> usize {
        (self.conns.len() + self.conns6.len()).saturating_sub(self.counters.synced)
    }

    /// Sync records refused because a local entry goes to another real
    /// server (cluster mode).
    pub fn sync_conflicts(&self) -> u64 {
        self.counters.conflicts
    }

    /// Sync events lost because the control thread fell behind.
    pub fn sync_lost(&self) -> u64 {
        self.sync.as_ref().map_or(0, |q| q.lost)
    }

    /// Counters per real server, services in order, their servers in order.
    pub fn counters(&self) -> &[RealServerCounters] {
        &self.counters.servers
    }

    /// New connections each service's limits refused, services in order
    /// (the worker also counts each under its drop reason).
    pub fn refused(&self) -> &[RefusalCounts] {
        &self.refused
    }

    /// Which real servers this worker holds at their upper threshold, in
    /// the order of `counters`.
    pub fn overloaded(&self) -> &[bool] {
        &self.counters.overloaded
    }

    #[inline]
    fn count_refusal(&mut self, vs: ServiceId, r: LimitRefusal) {
        if let Some(c) = self.refused.get_mut(usize::from(vs)) {
            c[r as usize] += 1;
        }
    }

    /// Connections tracked now.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// The connection table, for inspection and memory figures.
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// The hash of `key` the table looks it up by: computed once per frame,
    /// used for the prefetches and the lookup.
    #[inline]
    pub fn flow_hash(&self, key: &FlowKey) -> u32 {
        self.conns.hash(key)
    }

    /// Prefetches the index line `hash`'s lookup reads (the first stage of
    /// a burst's warm-up).
    #[inline]
    pub fn prefetch_index(&self, hash: u32) {
        self.conns.prefetch_bucket(hash);
    }

    /// Prefetches the entry `hash`'s lookup will compare (the second stage,
    /// after the index lines of the whole window were asked for).
    #[inline]
    pub fn prefetch_entry(&self, hash: u32) {
        self.conns.prefetch_entry(hash);
    }

    /// The client whose connection a packet with `key` belongs to: the
    /// source of a packet to a service, the destination of one from a NAT
    /// real server; `None` for packets of no service. The worker that owns
    /// the connection is chosen by this address.
    #[inline]
    pub fn client_of(&self, key: &FlowKey, protocol: Protocol) -> Option<Ipv4Addr> {
        if self.services.is_local_address(key.dst) {
            // FullNAT: a reply to the local address belongs to the worker
            // that owns that address (`lb::local_pool`).
            return Some(key.dst);
        }
        if self
            .services
            .lookup(Endpoint::new(key.dst, key.dst_port), protocol)
            .is_some()
        {
            Some(key.src)
        } else if self
            .services
            .is_nat_real_server(Endpoint::new(key.src, key.src_port), protocol)
        {
            Some(key.dst)
        } else {
            None
        }
    }

    /// The client of the connection an ICMP error is about, from the
    /// packet it quotes (which went the other way): the quoted source when
    /// it was sent to a NAT real server, the quoted destination when a
    /// service sent it.
    pub fn client_of_quoted(&self, quoted: &FlowKey, protocol: Protocol) -> Option<Ipv4Addr> {
        if self.services.is_local_address(quoted.src) {
            // FullNAT: the quoted packet left from a local address.
            return Some(quoted.src);
        }
        if self
            .services
            .is_nat_real_server(Endpoint::new(quoted.dst, quoted.dst_port), protocol)
        {
            Some(quoted.src)
        } else if self
            .services
            .lookup(Endpoint::new(quoted.src, quoted.src_port), protocol)
            .is_some()
        {
            Some(quoted.dst)
        } else {
            None
        }
    }

    /// Decides one packet of a TCP or UDP flow at `now` (see the module
    /// doc): updates the connection, its state and counters, and says
    /// where the packet goes.
    pub fn decide(&mut self, flow: &Flow, now: u64) -> Decision {
        self.decide_segment(flow, Segment::default, now)
    }

    /// [`Balancer::decide`] for a TCP segment whose sequence fields `seg`
    /// reads: what the SYN proxy needs. Called only for a packet the proxy
    /// handles (a miss on a proxied service, or a proxied connection), so
    /// every other packet is parsed once.
    pub fn decide_segment(
        &mut self,
        flow: &Flow,
        seg: impl FnOnce() -> Segment,
        now: u64,
    ) -> Decision {
        let counters = &mut self.counters;
        let found = self
            .conns
            .lookup_hashed(&flow.key, flow.hash, now, |c| counters.forget(c, now))
            .and_then(|(id, dir)| self.still_usable(id, dir, flow, now));
        let (id, dir, created) = match found {
            // A proxied connection's segments are translated (a
            // connection made below never is: the proxy opens its own).
            Some(Ok((id, dir))) if self.conns.get(id).is_proxied() => {
                return self.proxied_segment(id, dir, flow, seg, now);
            }
            Some(Ok((id, dir))) => (id, dir, false),
            Some(Err(d)) => return d,
            None => {
                if self.any_syn_proxy && flow.protocol == Protocol::Tcp {
                    if let Some(d) = self.syn_proxy_miss(flow, seg, now) {
                        return d;
                    }
                }
                match self.new_connection(flow, now) {
                    Ok(id) => (id, Direction::Original, true),
                    // Every server down: refuse a TCP connection at once
                    // rather than leave the client retrying into silence.
                    // (FullNAT's exhausted ports stay `NoLocalPort`: the
                    // worker counts them, then resets a TCP client.)
                    Err(Refusal::NoRealServer) if flow.protocol == Protocol::Tcp => {
                        return Decision::Reset
                    }
                    Err(r) => return Decision::Drop(r),
                }
            }
        };

        let (vs, rs) = self.account(id, dir, flow.flags, flow.bytes, created, now);
        let service = self.services.get(vs);
        let Some(real) = self.services.real_endpoint(vs, rs) else {
            return Decision::Drop(Refusal::NoRealServer);
        };
        if self.plain_forwarding {
            return plain_decision(dir, service, real, created);
        }
        // A connection keeps the mode it was armed with: a reload that
        // changes or removes `client_address` must not break a stream
        // whose numbers are already shifted.
        let armed = match self.carried.get_mut(id.index()) {
            // A new connection in a slot an old one may have used: its
            // SYN arms the state afresh.
            Some(c) if created => {
                *c = Carried::default();
                None
            }
            Some(c) => c.mode(),
            None => None,
        };
        let carrying = armed.or(service.client_address);
        if service.forward == ForwardMethod::FullNat {
            let carry = match carrying {
                Some(mode) if flow.protocol == Protocol::Tcp => Some(Carry { conn: id, mode }),
                _ => None,
            };
            let c = self.conns.get(id);
            return match dir {
                Direction::Original => {
                    let r = c.reply();
                    Decision::FullNatToRealServer {
                        local: Endpoint::new(r.dst, r.dst_port),
                        real,
                        created,
                        carry,
                    }
                }
                Direction::Reply => {
                    let o = c.original();
                    Decision::FullNatToClient {
                        vip: service.key.vip,
                        client: Endpoint::new(o.src, o.src_port),
                        carry,
                    }
                }
            };
        }
        if let Some(mode) = carrying {
            if service.forward == ForwardMethod::Nat && flow.protocol == Protocol::Tcp {
                return match dir {
                    Direction::Original => Decision::ToRealServerCarrying {
                        real,
                        created,
                        conn: id,
                        mode,
                    },
                    Direction::Reply => Decision::ToClientCarrying {
                        vip: service.key.vip,
                        conn: id,
                        mode,
                    },
                };
            }
        }
        // IPv4-in-IPv6 TUN: a server reached over IPv6 (`Tunnel6`).
        if let (Direction::Original, Some(real)) = (dir, service.tunnel6_addr(rs)) {
            return Decision::Tun6ToRealServer { real, created };
        }
        plain_decision(dir, service, real, created)
    }

    /// The client-address state of connection `id` (`lb::client_addr`),
    /// for the hooks the worker runs on [`Decision::ToRealServerCarrying`]
    /// and [`Decision::ToClientCarrying`]; `None` while no service has
    /// `client_address` (the array is empty).
    #[inline]
    pub fn carried_mut(&mut self, id: ConnId) -> Option<&mut Carried> {
        self.carried.get_mut(id.index())
    }

    /// Accounts one packet of connection `id` (state, timeout, sync report,
    /// real server counters); returns its service and real server.
    #[inline(always)]
    fn account(
        &mut self,
        id: ConnId,
        dir: Direction,
        flags: TcpFlags,
        bytes: u32,
        created: bool,
        now: u64,
    ) -> (u16, u16) {
        let c = self.conns.get_mut(id);
        if c.is_synced() {
            // The first packet carried here: the connection is local now
            // (one predictable branch; the write only this once).
            c.clear_synced();
            self.counters.synced = self.counters.synced.saturating_sub(1);
        }
        if c.awaits_syn_ack() {
            self.counters.handshake_packet(c, dir, flags, now);
        }
        let before = c.state();
        let t = c.on_packet(dir, flags, bytes, now, &self.timeouts);
        let (vs, rs) = (c.vs, c.rs);
        if c.state() != before {
            let c = *c;
            self.counters.client_state_changed(&c, before);
            if self.sync_active {
                self.report(&c, now);
            }
        } else if self.sync_active && created {
            let c = *c;
            self.report(&c, now);
        }
        self.counters.account(vs, rs, t);
        if let Some(cnt) = self.counters.get_mut(vs, rs) {
            match dir {
                Direction::Original => {
                    cnt.packets_in += 1;
                    cnt.bytes_in += u64::from(bytes);
                }
                Direction::Reply => {
                    cnt.packets_out += 1;
                    cnt.bytes_out += u64::from(bytes);
                }
            }
        }
        (vs, rs)
    }

    /// SYN proxy, a TCP packet to a service that matches no connection:
    /// `None` when the service has no proxy (the usual path decides). A
    /// bare SYN is answered with a cookie and leaves no state; an ACK
    /// carrying a valid cookie opens the connection; an ACK without one
    /// is refused; anything else takes the usual path (no connection).
    fn syn_proxy_miss(
        &mut self,
        flow: &Flow,
        seg: impl FnOnce() -> Segment,
        now: u64,
    ) -> Option<Decision> {
        let key = &flow.key;
        let vs = self
            .services
            .lookup(Endpoint::new(key.dst, key.dst_port), Protocol::Tcp)?;
        let service = self.services.get(vs);
        if !service.syn_proxy
            || service.forward != ForwardMethod::Nat
            || self.services.is_draining(vs)
        {
            return None;
        }
        let seg = &seg();
        let flags = flow.flags;
        if flags.is_bare_syn() {
            // A denied client gets no SYN-ACK either.
            let acl = &service.limits.acl;
            if !acl.is_empty() && !acl.allows(key.src) {
                self.count_refusal(vs, LimitRefusal::AclDenied);
                return Some(Decision::Drop(Refusal::AclDenied));
            }
            // Every server down and no sorry server: refused at once, as
            // without the proxy, rather than after a handshake.
            let live = service.sorry_server.is_some()
                || (0..service.real_servers.len())
                    .any(|rs| self.services.effective_weight(vs, rs as u16) > 0);
            if !live {
                return Some(Decision::Reset);
            }
            let (cookie, mss) = self.cookies.make(key, seg.seq, seg.mss, now);
            return Some(Decision::SynCookie { cookie, mss });
        }
        if !flags.contains(TcpFlags::ACK)
            || flags.contains(TcpFlags::SYN)
            || flags.contains(TcpFlags::RST)
        {
            return None;
        }
        let isn = seg.seq.wrapping_sub(1);
        let cookie = seg.ack.wrapping_sub(1);
        let Some(mss) = self.cookies.check(key, isn, cookie, now) else {
            return Some(Decision::Drop(Refusal::BadCookie));
        };
        let id = match self.open(vs, key, Opening::Handshake, now) {
            Ok(id) => id,
            // The client thinks itself connected: a reset tells it at once.
            Err(Refusal::NoRealServer) => return Some(Decision::Reset),
            Err(r) => return Some(Decision::Drop(r)),
        };
        self.conns.get_mut(id).set_proxied();
        if let Some(p) = self.proxied.get_mut(id.index()) {
            *p = Proxied::new(isn, cookie, mss, seg.window);
        }
        // The handshake as a director would have seen it: the client's SYN.
        let (vs, rs) = self.account(
            id,
            Direction::Original,
            TcpFlags::SYN,
            flow.bytes,
            true,
            now,
        );
        let real = self.services.real_endpoint(vs, rs)?;
        Some(Decision::SynToRealServer {
            real,
            isn,
            mss,
            window: seg.window,
            created: true,
            park: None,
        })
    }

    /// A segment of a connection the SYN proxy opened. Until the real
    /// server's SYN-ACK gives its sequence numbers, client segments wait
    /// for it or resend the SYN (a client reset goes through), and the
    /// server may only answer with its SYN-ACK or a reset; after, every
    /// segment is translated.
    fn proxied_segment(
        &mut self,
        id: ConnId,
        dir: Direction,
        flow: &Flow,
        seg: impl FnOnce() -> Segment,
        now: u64,
    ) -> Decision {
        let seg = &seg();
        let Some(mut p) = self.proxied.get(id.index()).copied() else {
            return Decision::Drop(Refusal::NoConnection);
        };
        let flags = flow.flags;
        let rst = flags.contains(TcpFlags::RST);
        let syn_ack = flags.contains(TcpFlags::SYN_ACK) && !rst;
        match dir {
            Direction::Original if !p.ready() && !rst => {
                let c = self.conns.get_mut(id);
                if c.awaits_syn_ack() {
                    // The client waits too: past the timeout, it counts.
                    self.counters.handshake_packet(c, dir, flags, now);
                }
                if flags.contains(TcpFlags::SYN) {
                    return Decision::Drop(Refusal::NoConnection);
                }
                let c = self.conns.get(id);
                let Some(real) = self.services.real_endpoint(c.vs, c.rs) else {
                    return Decision::Drop(Refusal::NoRealServer);
                };
                return Decision::SynToRealServer {
                    real,
                    isn: p.client_isn,
                    mss: p.mss(),
                    window: p.window,
                    created: false,
                    park: Some(id),
                };
            }
            // A SYN-ACK after the first (our ACK was lost) keeps the delta.
            Direction::Reply if syn_ack && !p.ready() => p.server_answered(seg.seq),
            Direction::Reply if syn_ack => {}
            Direction::Reply if !p.ready() => {
                if !rst {
                    return Decision::Drop(Refusal::NoConnection);
                }
                p.server_refused(seg.seq);
            }
            _ => {}
        }
        if let Some(slot) = self.proxied.get_mut(id.index()) {
            *slot = p;
        }
        let (vs, rs) = self.account(id, dir, flags, flow.bytes, false, now);
        match dir {
            Direction::Original => match self.services.real_endpoint(vs, rs) {
                Some(real) => Decision::ToRealServerShifted {
                    real,
                    delta: p.delta,
                },
                None => Decision::Drop(Refusal::NoRealServer),
            },
            Direction::Reply if syn_ack => Decision::AckToRealServer {
                client_isn: p.client_isn,
                window: p.window,
                conn: id,
            },
            Direction::Reply => Decision::ToClientShifted {
                vip: self.services.get(vs).key.vip,
                delta: p.delta,
            },
        }
    }

    /// A found connection, unless this packet ends it: a bare SYN on a
    /// closing connection (`None`: start a new one), or its real server is
    /// down with `expire_nodest_conn` (`None` for UDP and SYNs, which are
    /// scheduled afresh; a reset or a drop for other TCP).
    #[inline]
    fn still_usable(
        &mut self,
        id: ConnId,
        dir: Direction,
        flow: &Flow,
        now: u64,
    ) -> Option<Result<(ConnId, Direction), Decision>> {
        let tcp = (flow.protocol == Protocol::Tcp).then_some(flow.flags);
        let found = usable::still_usable_in(
            &mut self.conns,
            &mut self.counters,
            &self.services,
            id,
            dir,
            tcp,
            now,
        )?;
        Some(found.map_err(|e| match e {
            usable::Ended::Reset => Decision::Reset,
            usable::Ended::Drop => Decision::Drop(Refusal::NoConnection),
        }))
    }

    /// Schedules a new flow to a service and records its connection.
    fn new_connection(&mut self, flow: &Flow, now: u64) -> Result<ConnId, Refusal> {
        let key = &flow.key;
        let vip = Endpoint::new(key.dst, key.dst_port);
        let Some(vs) = self.services.lookup(vip, flow.protocol) else {
            let src = Endpoint::new(key.src, key.src_port);
            if self.services.is_nat_real_server(src, flow.protocol)
                || self.services.is_local_address(key.dst)
            {
                // A reply from a real server for a connection we do not
                // know (expired, or from before a restart).
                return Err(Refusal::NoConnection);
            }
            // A VIP's port without a service is no service either.
            return Err(Refusal::NoService);
        };
        let opening = if flow.protocol == Protocol::Tcp && !flow.flags.is_bare_syn() {
            // Only a SYN opens a connection, unless a cluster node may
            // schedule this segment as its peers did (`midflow`).
            self.midflow_opening(vs, flow.flags)
                .ok_or(Refusal::NoConnection)?
        } else {
            Opening::Handshake
        };
        if self.services.is_local_address(key.src) {
            // Our own local address as a client: spoofed, and its tuple
            // could take the reply key of a FullNAT connection.
            return Err(Refusal::Malformed);
        }
        if self.services.is_draining(vs) {
            // Removed by a reload: its connections live on, no new ones.
            return Err(Refusal::NoService);
        }
        let id = self.open(vs, key, opening, now)?;
        self.count_opening(opening);
        Ok(id)
    }

    /// Admits a new connection of service `vs` for the flow `key` past the
    /// service's limits, schedules a real server and records the
    /// connection, opened as `opening` says.
    fn open(
        &mut self,
        vs: ServiceId,
        key: &FlowKey,
        opening: Opening,
        now: u64,
    ) -> Result<ConnId, Refusal> {
        let rs = self.admit_and_schedule(vs, key.src, key.src_port, now)?;
        let real = self
            .services
            .real_endpoint(vs, rs)
            .ok_or(Refusal::NoRealServer)?;
        let forward = self.services.get(vs).forward;
        let local = if forward == ForwardMethod::FullNat {
            Some(self.take_local(vs).ok_or(Refusal::NoLocalPort)?)
        } else {
            None
        };
        let reply = match local {
            Some(l) => FlowKey::new(real.ip, real.port, l.ip, l.port, key.proto),
            None => reply_key(forward, key, real),
        };
        let mut init = ConnInit::new(vs, rs);
        init.input_only = !forward.sees_replies();
        opening.apply(&mut init, &self.timeouts);
        let counters = &mut self.counters;
        let inserted = self
            .conns
            .insert(*key, reply, init, now, |c| counters.forget(c, now));
        let id = match inserted {
            Ok(id) => id,
            Err(e) => {
                if let Some(l) = local {
                    self.counters.local.release(l.ip, key.proto, l.port);
                }
                return Err(match e {
                    InsertError::Full => Refusal::TableFull,
                    InsertError::Exists | InsertError::SameKeys => Refusal::Malformed,
                });
            }
        };
        if forward.sees_replies() && key.proto == PROTO_TCP && opening == Opening::Handshake {
            // The SYN (the client's, or the SYN proxy's) goes to the
            // server: a handshake whose outcome the passive checks count.
            self.conns.get_mut(id).await_syn_ack();
            if let Some(c) = self.counters.get_mut(vs, rs) {
                c.handshakes += 1;
            }
        }
        self.counters.created(self.conns.get(id));
        Ok(id)
    }

    /// Admits a new flow from `client` to service `vs` past the
    /// service's limits and picks its real server, counting a refusal
    /// (either family's `open`).
    fn admit_and_schedule<A: IpFamily>(
        &mut self,
        vs: ServiceId,
        client: A,
        client_port: u16,
        now: u64,
    ) -> Result<u16, Refusal> {
        if let Err(r) = self.admit(vs, client, now) {
            self.count_refusal(vs, r);
            return Err(r.into());
        }
        match self.schedule(vs, client, client_port, now) {
            Err(Refusal::Overloaded) => {
                self.count_refusal(vs, LimitRefusal::Overloaded);
                Err(Refusal::Overloaded)
            }
            r => r,
        }
    }

    /// Picks a real server for a new flow from `client`: the persistence
    /// template if one lives, else the service's scheduler.
    fn schedule<A: IpFamily>(
        &mut self,
        vs: ServiceId,
        client: A,
        client_port: u16,
        now: u64,
    ) -> Result<u16, Refusal> {
        let service = self.services.get(vs);
        let persistence_ns = service.persistence.map(|d| d.as_nanos() as u64);
        let overloaded = self.counters.overloaded(usize::from(vs));
        if let Some(timeout) = persistence_ns {
            if let Some(rs) = self.persist.lookup(client, vs, now, timeout) {
                // An overloaded server takes no one, its regulars neither.
                let over = overloaded.get(usize::from(rs)) == Some(&true);
                if self.services.effective_weight(vs, rs) > 0 && !over {
                    return Ok(rs);
                }
            }
        }
        self.candidates.clear();
        let (effective, full) = self.services.weights_of(vs);
        // An overloaded server is offered with weight 0, so that every
        // scheduler passes it by.
        let mut any_overloaded = false;
        self.candidates.extend(
            self.counters
                .service(usize::from(vs))
                .iter()
                .zip(overloaded)
                .enumerate()
                .map(|(r, (c, &over))| {
                    let weight = effective.get(r).copied().unwrap_or(0);
                    any_overloaded |= over && weight > 0;
                    Candidate {
                        weight: if over { 0 } else { weight },
                        active: c.active,
                        inactive: c.inactive,
                        // What a slow start ramps `weight` up to (for lc).
                        full: full.get(r).copied().unwrap_or(0),
                    }
                }),
        );
        let flow = FlowHashInput {
            client,
            client_port,
        };
        let rs = match self.scheds[usize::from(vs)].pick(&self.candidates, &flow) {
            Some(rs) => rs as u16,
            // Every server down, drained or overloaded: the sorry server,
            // if any.
            None if service.sorry_server.is_some() => return Ok(SORRY_SERVER),
            None if any_overloaded => return Err(Refusal::Overloaded),
            None => return Err(Refusal::NoRealServer),
        };
        if let Some(timeout) = persistence_ns {
            // A full template table only costs stickiness, not the flow.
            let _ = self.persist.insert(client, vs, rs, now, timeout);
        }
        Ok(rs)
    }

    /// Where an ICMP error goes whose quoted packet, reversed, is `key`
    /// (the direction the error travels). Counts nothing: the error does
    /// not belong to the connection's traffic.
    pub fn icmp_error(&self, key: &FlowKey, now: u64) -> Result<IcmpRoute, Refusal> {
        let Some((id, dir)) = self.conns.peek(key, now) else {
            return Err(Refusal::NoConnection);
        };
        let c = self.conns.get(id);
        let service = self.services.get(c.vs);
        let real = self
            .services
            .real_endpoint(c.vs, c.rs)
            .ok_or(Refusal::NoConnection)?;
        let carried = match self.carried.get(id.index()) {
            Some(c) if c.mode() == Some(ClientAddress::ProxyV2) => Some(*c),
            _ => None,
        };
        if service.forward == ForwardMethod::FullNat {
            let (o, r) = (c.original(), c.reply());
            let local = Endpoint::new(r.dst, r.dst_port);
            return Ok(match dir {
                Direction::Reply => IcmpRoute::FullNatToClient {
                    vip: service.key.vip,
                    client: Endpoint::new(o.src, o.src_port),
                    local,
                    carried,
                },
                Direction::Original => IcmpRoute::FullNatToRealServer { local, real },
            });
        }
        Ok(match dir {
            Direction::Reply => IcmpRoute::ToClient {
                vip: service.key.vip,
                client: key.dst,
                carried,
            },
            Direction::Original => IcmpRoute::ToRealServer {
                method: service.forward,
                real,
                seq_delta: match self.proxied.get(id.index()) {
                    Some(p) if c.is_proxied() && p.ready() => p.delta,
                    _ => 0,
                },
            },
        })
    }

    /// Timed chores between polls: the sweep that reclaims expired
    /// connections a little at a time, and handing sync reports over.
    pub fn tick(&mut self, now: u64) {
        let budget = self.sweep_budget(now);
        if budget > 0 {
            let counters = &mut self.counters;
            self.conns.expire(now, budget, |c| counters.forget(c, now));
            self.expire6(now, budget);
            self.persist.expire(now, budget);
        }
        if let Some(q) = self.sync.as_mut() {
            q.flush();
        }
    }

    /// Entries the sweep may examine now: the time since the last sweep at
    /// the table's rate, at most [`SWEEP_BUDGET`].
    fn sweep_budget(&mut self, now: u64) -> usize {
        let per_second = (self.conns.capacity() as u64).clamp(1, SWEEP_MAX_PER_SECOND);
        let elapsed = now.saturating_sub(self.swept_at_ns).min(1_000_000_000);
        self.swept_at_ns = now;
        // Credit carries over between polls so short polls add up; it is
        // capped so that a long pause does not turn into a long sweep.
        self.sweep_credit =
            (self.sweep_credit + elapsed * per_second).min(SWEEP_BUDGET as u64 * 1_000_000_000);
        let budget = (self.sweep_credit / 1_000_000_000).min(SWEEP_BUDGET as u64);
        self.sweep_credit -= budget * 1_000_000_000;
        budget as usize
    }

    /// Reports a connection to the peer (active balancer only).
    fn report(&mut self, c: &Conn, now: u64) {
        if let Some(ev) = self.event(c, now) {
            if let Some(q) = self.sync.as_mut() {
                q.push(ev);
            }
        }
    }

    /// Whether a full dump holds `c`: live, and in cluster mode local (a
    /// peer's connections are the peer's to tell).
    fn dumps<E: ConnEntry>(&self, c: &E, now: u64) -> bool {
        let a_peers = self.cluster && c.is_synced();
        !c.is_expired(now) && !a_peers
    }

    /// Every live connection as a sync event (a full resync); in cluster
    /// mode only local ones (a peer's connections are the peer's to tell).
    pub fn sync_dump(&self, now: u64) -> Vec<SyncEvent> {
        self.conns
            .iter()
            .filter(|(_, c)| self.dumps(*c, now))
            .filter_map(|(_, c)| self.event(c, now))
            .collect()
    }

    /// A connection as the peer needs it.
    fn event(&self, c: &Conn, now: u64) -> Option<SyncEvent> {
        let real = self.services.real_endpoint(c.vs, c.rs)?;
        let fullnat = self.services.get(c.vs).forward == ForwardMethod::FullNat;
        synced::sync_event(c, real, fullnat, now)
    }

    /// The service and real server (or sorry server) an IPv4 record
    /// names, by address; `None` when this balancer has no such.
    fn synced_target(&self, ev: &SyncEvent) -> Option<(u16, u16)> {
        let vs = self.services.lookup(ev.vip, ev.protocol)?;
        let service = self.services.get(vs);
        let rs = match service
            .real_servers
            .iter()
            .position(|r| r.endpoint == ev.real)
        {
            Some(i) => i as u16,
            None if service.sorry_server == Some(ev.real) => SORRY_SERVER,
            None => return None,
        };
        Some((vs, rs))
    }

    /// Removes the connections of REMOVED records (a peer's connection
    /// ended): each known with the record's service and real server goes,
    /// unless cluster mode and it carried packets here (a node carrying a
    /// flow lives by its own timeouts). Returns how many went.
    pub fn remove_synced(&mut self, events: &[SyncEvent], now: u64) -> u64 {
        let mut removed = 0;
        for ev in events {
            let Some((vs, rs)) = self.synced_target(ev) else {
                continue;
            };
            let proto = ev.protocol.number();
            let original =
                FlowKey::new(ev.client.ip, ev.client.port, ev.vip.ip, ev.vip.port, proto);
            if self
                .counters
                .remove_synced(&mut self.conns, original, (vs, rs), self.cluster, now)
            {
                removed += 1;
            }
        }
        removed
    }

    /// Installs connections a peer reported (on a standby, or on every
    /// node of a cluster), so that packets that come here go to the same
    /// real servers. A connection already known with the same service
    /// and real server is brought to the reported state and timeout; one
    /// known with another is replaced (the client reused the port of a
    /// connection the peer has since scheduled afresh, a TIME_WAIT entry
    /// taken over by a new SYN), except in cluster mode when it carried
    /// packets here: it keeps its server and the record is counted as a
    /// conflict. A new one is installed not local (`Conn::is_synced`). An
    /// event for a service or real server this balancer does not have is
    /// skipped, and a timeout is never longer than the local one for the
    /// state. Returns how many were new.
    pub fn install(&mut self, events: &[SyncEvent], now: u64) -> u64 {
        let mut installed = 0;
        for ev in events {
            let Some((vs, rs)) = self.synced_target(ev) else {
                continue;
            };
            let service = self.services.get(vs);
            let proto = ev.protocol.number();
            let original =
                FlowKey::new(ev.client.ip, ev.client.port, ev.vip.ip, ev.vip.port, proto);
            let reply = match (service.forward, ev.local) {
                // FullNAT: the peer's local end, which this worker takes
                // out of its pool below (a record without one, or with a
                // local address the service does not have, is skipped).
                (ForwardMethod::FullNat, Some(l)) if service.local.addresses.contains(&l.ip) => {
                    FlowKey::new(ev.real.ip, ev.real.port, l.ip, l.port, proto)
                }
                (ForwardMethod::FullNat, _) => continue,
                (forward, _) => reply_key(forward, &original, ev.real),
            };
            let init = synced::synced_init(ev, vs, rs, &self.timeouts);
            if let Some(id) = self.counters.install_synced(
                &mut self.conns,
                &self.timeouts,
                (original, reply),
                init,
                self.cluster,
                now,
            ) {
                if service.forward == ForwardMethod::FullNat {
                    // The port is this connection's here too (a no-op when
                    // this worker does not own the local address).
                    self.counters
                        .local
                        .claim(reply.dst, reply.proto, reply.dst_port);
                }
                // Its client's SYN was not seen here: no address carried
                // (a slot's earlier connection must not lend it its own).
                if let Some(c) = self.carried.get_mut(id.index()) {
                    *c = Carried::default();
                }
                installed += 1;
            }
        }
        installed
    }

    /// A snapshot of up to `limit` live connections, for `rvsadm conns`:
    /// the IPv4 table's, then the IPv6 table's (`dump6`).
    pub fn dump(&self, now: u64, limit: usize) -> Vec<ConnInfo> {
        let mut list: Vec<ConnInfo> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_expired(now))
            .take(limit)
            .map(|(_, c)| {
                let real = self.services.real_endpoint(c.vs, c.rs);
                let fullnat = self.services.get(c.vs).forward == ForwardMethod::FullNat;
                synced::conn_info(
                    c,
                    real.map(|e| SocketAddr::from((e.ip, e.port))),
                    fullnat,
                    now,
                )
            })
            .collect();
        if list.len() < limit {
            list.extend(self.dump6(now, limit - list.len()));
        }
        list
    }
}

/// The decision for a packet of a NAT, DR or TUN connection that carries
/// nothing: to the real server, or (NAT) back to the client.
#[inline(always)]
fn plain_decision(
    dir: Direction,
    service: &VirtualService,
    real: Endpoint,
    created: bool,
) -> Decision {
    match dir {
        Direction::Original => Decision::ToRealServer {
            method: service.forward,
            real,
            created,
        },
        Direction::Reply => Decision::ToClient {
            vip: service.key.vip,
        },
    }
}

/// The key a connection's replies carry: from the real server to the
/// client for NAT; for DR and TUN replies bypass the balancer, and the
/// reply key is only a second name for the connection (the tuple
/// reversed).
fn reply_key(forward: ForwardMethod, key: &FlowKey, real: Endpoint) -> FlowKey {
    match forward {
        ForwardMethod::Nat => FlowKey::new(real.ip, real.port, key.src, key.src_port, key.proto),
        // FullNAT's reply key names the local end (`Balancer::open`); a
        // caller without one gets the tuple reversed, which no reply has.
        ForwardMethod::Dr | ForwardMethod::Tun | ForwardMethod::FullNat => key.reversed(),
    }
}

mod fullnat6;
mod midflow;
mod sync6;
mod synced;
mod usable;
mod v6;
pub use fullnat6::LocalOwner6;
pub use v6::nat64::{key64, Nat64Reply};
pub use v6::{Decision6, Flow6, IcmpRoute6};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_carry;
#[cfg(test)]
mod tests_cluster;
#[cfg(test)]
mod tests_fullnat;
#[cfg(test)]
mod tests_fullnat6;
#[cfg(test)]
mod tests_handshake;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_midflow;
#[cfg(test)]
mod tests_tun46;
