//! Virtual services and their real servers, as the workers see them.
//!
//! A [`ServiceTable`] is an immutable snapshot built by the control side
//! from the configuration and shared by every worker (`Arc`); a new
//! configuration is a new snapshot. Lookups on the packet path are by
//! (VIP, port, protocol) for client packets and, for NAT, by (RIP, port,
//! protocol) to recognise replies from real servers. Both are small hash
//! maps built once; nothing here changes while packets flow.

pub use super::kind::{ForwardMethod, Protocol, SchedulerKind};
use super::limits::{ServiceLimits, Thresholds};
use super::priority::{self, GroupQuorum, Selection};
use super::sched::{hash, HashTable, MaglevTable, Scheduler, ShTable};
use super::slow_start::{self, Ramp};
use super::xmit::{Endpoint, Endpoint6};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// The key of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// Virtual address and port.
    pub vip: Endpoint,
    /// Transport protocol.
    pub protocol: Protocol,
}

/// One real server of a virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Address and port (DR and TUN keep the virtual port).
    pub endpoint: Endpoint,
    /// Configured weight; 0 = quiescent.
    pub weight: u32,
    /// Connection thresholds (IPVS's `-x`/`-y`), as configured (each
    /// worker holds its share, `Thresholds::per_worker`).
    pub thresholds: Thresholds,
    /// Its priority group: 0 is the best (`lb::priority`); servers outside
    /// the active group take no new connections.
    pub priority: u8,
    /// Its own slow start (`lb::slow_start`) over the service's; `None`
    /// takes the service's.
    pub slow_start: Option<Duration>,
}

/// One virtual service.
#[derive(Clone, Debug)]
pub struct VirtualService {
    /// The operator's name for it.
    pub name: String,
    /// VIP, port and protocol.
    pub key: ServiceKey,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// How new connections pick a real server.
    pub scheduler: SchedulerKind,
    /// Maglev table size (for `mh`).
    pub mh_table_size: u32,
    /// Persistence (ipvsadm -p): how long a client stays with its server.
    pub persistence: Option<Duration>,
    /// Real servers, in config order (their index is their id).
    pub real_servers: Vec<RealServer>,
    /// When a real server goes down, its connections end on their next
    /// packet (IPVS's `expire_nodest_conn`): UDP and new SYNs go to a live
    /// server, other TCP gets a reset so the client reconnects.
    pub expire_nodest_conn: bool,
    /// Where new connections go when every real server is down (as
    /// keepalived's sorry server); `None`: TCP is refused with a reset.
    pub sorry_server: Option<Endpoint>,
    /// Admission limits: allow/deny lists, new-connection rate and
    /// per-client-prefix limit (none by default).
    pub limits: ServiceLimits,
    /// Answer clients' SYNs with SYN cookies and open the connection to a
    /// real server only once the client's ACK proves its address
    /// (`lb::synproxy`); NAT only.
    pub syn_proxy: bool,
    /// Carry the client's address to the real servers: a PROXY v2 header
    /// or the TOA option (`lb::client_addr`); TCP by NAT only.
    pub client_address: Option<super::client_addr::ClientAddress>,
    /// The quorums of its priority groups (`lb::priority`); a group not
    /// listed needs one live server.
    pub priority_groups: Vec<GroupQuorum>,
    /// How long a real server that comes back ramps up to its weight
    /// (`lb::slow_start`); zero: no slow start.
    pub slow_start: Duration,
    /// A handshake forwarded to a real server with no SYN-ACK this many
    /// milliseconds after the first SYN counts as timed out
    /// (`lb::handshake`; NAT only, the passive check's `syn_timeout_ms`).
    pub syn_timeout_ms: u32,
    /// FullNAT's local addresses and ports (empty for other methods).
    pub local: LocalAddresses,
    /// The addresses of an IPv6 service; `None` for an IPv4 one (see
    /// [`Ipv6Addrs`]).
    pub ipv6: Option<Ipv6Addrs>,
    /// IPv4-in-IPv6 TUN: the IPv6 addresses of the real servers of an
    /// IPv4 TUN service reached over IPv6; `None` for every other service
    /// (see [`Tunnel6`]).
    pub tunnel6: Option<Tunnel6>,
}

/// The IPv6 real servers of an IPv4 TUN service (IPv4-in-IPv6, RFC
/// 2473): the service stays IPv4 (`ipv6` is `None`, its VIP is looked
/// up, its connections kept in the IPv4 table), and only the tunnel's far
/// end is IPv6. A server reached over IPv6 has an unspecified (0.0.0.0)
/// `endpoint.ip`, as an IPv6 service's servers; one reached over IPv4
/// keeps its address here as `::` (a service may mix both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel6 {
    /// Each real server's IPv6 address, by id (`::`: reached over IPv4).
    pub real_servers: Vec<Ipv6Addr>,
    /// The sorry server's IPv6 address, if it is reached over IPv6.
    pub sorry_server: Option<Ipv6Addr>,
}

impl Tunnel6 {
    /// The IPv6 address real server `rs` (or the sorry server, for
    /// [`SORRY_SERVER`]) is tunnelled to; `None` for one reached over
    /// IPv4 or unknown.
    #[inline]
    pub fn address(&self, rs: RealServerId) -> Option<Ipv6Addr> {
        let a = if rs == SORRY_SERVER {
            self.sorry_server?
        } else {
            *self.real_servers.get(usize::from(rs))?
        };
        (!a.is_unspecified()).then_some(a)
    }
}

/// The IPv6 addresses of an IPv6 service: its VIP, its real servers' (in
/// the order of `real_servers`, so a server's index is its id in both)
/// and its sorry server's. Everything else of the service is
/// family-agnostic and stays where it is: the ports in `key.vip.port`,
/// `real_servers[i].endpoint.port` and `sorry_server`'s port, whose IPv4
/// addresses are unspecified (0.0.0.0) and unused; weights, thresholds,
/// limits, the scheduler. So every per-server path (counters, health
/// state, weights, reloads by index) serves both families unchanged,
/// and only the lookups by address have an IPv6 twin
/// ([`ServiceTable::lookup6`], [`ServiceTable::real_endpoint6`], ...).
/// One service is of one family (the configuration checks it), so the
/// IPv4 indexes skip IPv6 services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Addrs {
    /// The virtual address.
    pub vip: Ipv6Addr,
    /// Each real server's address, by id.
    pub real_servers: Vec<Ipv6Addr>,
    /// The sorry server's address.
    pub sorry_server: Option<Ipv6Addr>,
}

/// A FullNAT service's local addresses (`local_addresses`) and the port
/// range new connections take from each (`local_port_range`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAddresses {
    /// The addresses a real server sees as its peer.
    pub addresses: Vec<Ipv4Addr>,
    /// First and last local port (inclusive).
    pub ports: (u16, u16),
    /// The IPv6 entries of `local_addresses` (FullNAT over IPv6: an IPv6
    /// virtual server in front of IPv6 real servers), kept apart as an
    /// interface's `addresses6` are, so the IPv4 path reads nothing new.
    pub addresses6: Vec<Ipv6Addr>,
}

impl Default for LocalAddresses {
    fn default() -> LocalAddresses {
        LocalAddresses {
            addresses: Vec::new(),
            ports: super::local_pool::DEFAULT_PORTS,
            addresses6: Vec::new(),
        }
    }
}

/// Default Maglev table size: the prime the Maglev paper and DPVS use (the
/// configuration's default too).
pub const DEFAULT_MH_TABLE_SIZE: u32 = 65537;

impl VirtualService {
    /// A service with the configuration's defaults for what is not given:
    /// no persistence, `expire_nodest_conn` on, no sorry server, no limits, the
    /// default Maglev table. `real_servers` are (endpoint, weight) pairs in
    /// id order. For code that builds services without a configuration
    /// file: tests, benchmarks, the fuzzer.
    pub fn new(
        name: &str,
        key: ServiceKey,
        forward: ForwardMethod,
        scheduler: SchedulerKind,
        real_servers: impl IntoIterator<Item = (Endpoint, u32)>,
    ) -> VirtualService {
        VirtualService {
            name: name.into(),
            key,
            forward,
            scheduler,
            mh_table_size: DEFAULT_MH_TABLE_SIZE,
            persistence: None,
            expire_nodest_conn: true,
            sorry_server: None,
            limits: ServiceLimits::default(),
            syn_proxy: false,
            client_address: None,
            priority_groups: Vec::new(),
            slow_start: Duration::ZERO,
            syn_timeout_ms: super::handshake::DEFAULT_SYN_TIMEOUT_MS,
            ipv6: None,
            tunnel6: None,
            local: LocalAddresses::default(),
            real_servers: real_servers
                .into_iter()
                .map(|(endpoint, weight)| RealServer {
                    endpoint,
                    weight,
                    thresholds: Thresholds::NONE,
                    priority: priority::DEFAULT_PRIORITY,
                    slow_start: None,
                })
                .collect(),
        }
    }

    /// An IPv6 service with the defaults of [`VirtualService::new`]:
    /// `real_servers` are (endpoint, weight) pairs in id order.
    pub fn new6(
        name: &str,
        vip: Endpoint6,
        protocol: Protocol,
        forward: ForwardMethod,
        scheduler: SchedulerKind,
        real_servers: impl IntoIterator<Item = (Endpoint6, u32)>,
    ) -> VirtualService {
        let servers: Vec<(Endpoint6, u32)> = real_servers.into_iter().collect();
        let unspecified = |port| Endpoint::new(Ipv4Addr::UNSPECIFIED, port);
        let mut s = VirtualService::new(
            name,
            ServiceKey {
                vip: unspecified(vip.port),
                protocol,
            },
            forward,
            scheduler,
            servers.iter().map(|(e, w)| (unspecified(e.port), *w)),
        );
        s.ipv6 = Some(Ipv6Addrs {
            vip: vip.ip,
            real_servers: servers.iter().map(|(e, _)| e.ip).collect(),
            sorry_server: None,
        });
        s
    }

    /// An IPv4 TUN service whose real servers are reached over IPv6
    /// (IPv4-in-IPv6, [`Tunnel6`]), with the defaults of
    /// [`VirtualService::new`]: `real_servers` are (endpoint, weight)
    /// pairs in id order, their ports the VIP's.
    pub fn new_tun46(
        name: &str,
        key: ServiceKey,
        scheduler: SchedulerKind,
        real_servers: impl IntoIterator<Item = (Endpoint6, u32)>,
    ) -> VirtualService {
        let servers: Vec<(Endpoint6, u32)> = real_servers.into_iter().collect();
        let unspecified = |port| Endpoint::new(Ipv4Addr::UNSPECIFIED, port);
        let mut s = VirtualService::new(
            name,
            key,
            ForwardMethod::Tun,
            scheduler,
            servers.iter().map(|(e, w)| (unspecified(e.port), *w)),
        );
        s.tunnel6 = Some(Tunnel6 {
            real_servers: servers.iter().map(|(e, _)| e.ip).collect(),
            sorry_server: None,
        });
        s
    }

    /// Gives an IPv6 service its sorry server (its port in
    /// `sorry_server`); no change to an IPv4 service.
    pub fn with_sorry_server6(mut self, sorry: Endpoint6) -> VirtualService {
        if let Some(v6) = self.ipv6.as_mut() {
            v6.sorry_server = Some(sorry.ip);
            self.sorry_server = Some(Endpoint::new(Ipv4Addr::UNSPECIFIED, sorry.port));
        }
        self
    }

    /// The VIP and port, of either family (what the configuration's
    /// `address` says).
    pub fn vip_addr(&self) -> std::net::SocketAddr {
        match self.vip6() {
            Some(e) => std::net::SocketAddr::from((e.ip, e.port)),
            None => std::net::SocketAddr::from((self.key.vip.ip, self.key.vip.port)),
        }
    }

    /// Real server `rs` (or the sorry server for [`SORRY_SERVER`]), of
    /// either family.
    pub fn real_addr(&self, rs: RealServerId) -> Option<std::net::SocketAddr> {
        if self.is_ipv6() && !self.is_nat64() {
            let e = self.real_endpoint6(rs)?;
            return Some(std::net::SocketAddr::from((e.ip, e.port)));
        }
        let e = if rs == SORRY_SERVER {
            self.sorry_server?
        } else {
            self.real_servers.get(usize::from(rs))?.endpoint
        };
        if let Some(a) = self.tunnel6_addr(rs) {
            return Some(std::net::SocketAddr::from((a, e.port)));
        }
        Some(std::net::SocketAddr::from((e.ip, e.port)))
    }

    /// An IPv4 TUN service whose real server `rs` (or sorry server) is
    /// reached over IPv6: its address (IPv4-in-IPv6, [`Tunnel6`]).
    #[inline]
    pub fn tunnel6_addr(&self, rs: RealServerId) -> Option<Ipv6Addr> {
        self.tunnel6.as_ref()?.address(rs)
    }

    /// True for an IPv6 service.
    #[inline]
    pub fn is_ipv6(&self) -> bool {
        self.ipv6.is_some()
    }

    /// True for NAT64 (`lb::xmit::nat64`): an IPv6 service forwarding by
    /// FullNAT from IPv4 local addresses to IPv4 real servers. Its
    /// `real_servers[i].endpoint` (and `sorry_server`) hold the servers'
    /// IPv4 addresses; [`Ipv6Addrs::real_servers`] their IPv4-mapped
    /// forms, the addresses the IPv6 connection table keys replies by.
    #[inline]
    pub fn is_nat64(&self) -> bool {
        self.ipv6.is_some()
            && self.forward == ForwardMethod::FullNat
            && !self.local.addresses.is_empty()
    }

    /// True when `ip`, as an IPv6 connection's local end names it, is one
    /// of this service's local addresses: an IPv6 one (FullNAT over IPv6),
    /// or an IPv4 one written IPv4-mapped (NAT64). For HA sync records.
    pub fn has_local6(&self, ip: Ipv6Addr) -> bool {
        match ip.to_ipv4_mapped() {
            Some(v4) => self.is_nat64() && self.local.addresses.contains(&v4),
            None => self.local.addresses6.contains(&ip),
        }
    }

    /// The VIP and port of an IPv6 service.
    pub fn vip6(&self) -> Option<Endpoint6> {
        let v6 = self.ipv6.as_ref()?;
        Some(Endpoint6::new(v6.vip, self.key.vip.port))
    }

    /// Real server `rs` of an IPv6 service (or its sorry server for
    /// [`SORRY_SERVER`]).
    pub fn real_endpoint6(&self, rs: RealServerId) -> Option<Endpoint6> {
        let v6 = self.ipv6.as_ref()?;
        if rs == SORRY_SERVER {
            let port = self.sorry_server?.port;
            return Some(Endpoint6::new(v6.sorry_server?, port));
        }
        let i = usize::from(rs);
        Some(Endpoint6::new(
            *v6.real_servers.get(i)?,
            self.real_servers.get(i)?.endpoint.port,
        ))
    }

    /// The slow start of real server `rs`: its own, else the service's;
    /// zero (none) for an unknown server.
    pub fn slow_start_of(&self, rs: RealServerId) -> Duration {
        self.real_servers
            .get(usize::from(rs))
            .map_or(Duration::ZERO, |r| r.slow_start.unwrap_or(self.slow_start))
    }

    /// The hash table a `sh` or `mh` service schedules with, built here
    /// (on the control side, once per configuration) and shared by the
    /// workers; `None` for the other schedulers.
    fn build_hash_table(&self) -> Option<Arc<HashTable>> {
        let weights: Vec<u32> = self.real_servers.iter().map(|r| r.weight).collect();
        match self.scheduler {
            SchedulerKind::Sh => Some(Arc::new(HashTable::Sh(
                ShTable::build(&weights).with_fallback(true),
            ))),
            SchedulerKind::Mh => {
                let keyed: Vec<(u64, u32)> = self
                    .real_servers
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let key = match self.real_endpoint6(i as RealServerId) {
                            Some(e) => hash::server_key6(e.ip, e.port),
                            None => hash::server_key(r.endpoint.ip, r.endpoint.port),
                        };
                        (key, r.weight)
                    })
                    .collect();
                MaglevTable::build(&keyed, self.mh_table_size)
                    .ok()
                    .map(|t| Arc::new(HashTable::Mh(t.with_fallback(true))))
            }
            _ => None,
        }
    }
}

/// An endpoint and protocol packed in one word: the maps' key.
#[inline]
fn pack(e: Endpoint, p: Protocol) -> u64 {
    u64::from(u32::from(e.ip)) << 24 | u64::from(e.port) << 8 | u64::from(p.number())
}

/// The maps' hasher: one multiply-xorshift of the packed key. The keys
/// are the operator's own services, not attacker-chosen, and lookups are
/// on the packet path, so a fast unkeyed mix beats SipHash here.
#[derive(Default)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        super::sched::hash::mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

type FastHash = BuildHasherDefault<MixHasher>;

/// What the control plane knows of one real server at run time: the health
/// checks' verdict and a run-time weight (`rvsadm weight`) over the file's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerState {
    /// Held down by its health checks.
    pub down: bool,
    /// The run-time weight, `None` for the configured one.
    pub weight: Option<u32>,
    /// Where its slow start is, while it ramps up (`lb::slow_start`).
    pub ramp: Option<Ramp>,
}

/// Index of a virtual service in its table.
pub type ServiceId = u16;
/// Index of a real server within its virtual service.
pub type RealServerId = u16;

/// The real-server index connections to a service's sorry server carry.
pub const SORRY_SERVER: RealServerId = RealServerId::MAX;

/// Every virtual service, with the indexes the packet path needs.
#[derive(Clone, Debug, Default)]
pub struct ServiceTable {
    services: Vec<VirtualService>,
    /// Services removed by a reload whose connections live on: no new
    /// connections. Indexes stay stable across reloads, so connections
    /// keep pointing at the right service and server.
    draining_services: Vec<bool>,
    /// Real servers removed by a reload, per service: as above.
    draining_servers: Vec<Vec<bool>>,
    /// The `sh`/`mh` tables, by service.
    hash_tables: Vec<Option<Arc<HashTable>>>,
    /// Where each service's real servers start in the flat per-server
    /// arrays below (`rs_base[i] + rs`).
    rs_base: Vec<u32>,
    /// The weight new connections see, per real server (flat): the
    /// configured or run-time weight, 0 when down, draining or outside the
    /// service's active priority group (`lb::priority`). Computed on
    /// the control side ([`ServiceTable::with_server_state`]); workers only
    /// read it, so no worker keeps its own copy of health or weights.
    effective: Vec<u32>,
    /// Real servers the health checks hold down (flat, as `effective`).
    down: Vec<bool>,
    /// The weight the operator set, per real server (flat, as `effective`):
    /// the run-time weight, else the configured one, whatever the health.
    weights: Vec<u32>,
    /// The active priority group of each service and why
    /// (`lb::priority`), chosen with `effective`.
    priority: Vec<Selection>,
    /// Times each service's active group changed, as the control plane
    /// counted them ([`ServiceTable::with_priority_changes`]).
    priority_changes: Vec<u64>,
    /// Real servers in their slow start, and where (flat, as `effective`).
    ramps: Vec<Option<Ramp>>,
    by_key: HashMap<u64, ServiceId, FastHash>,
    /// NAT real servers by (RIP:RPORT, protocol): replies from them belong
    /// to these services. One real server may serve several services.
    nat_real: HashMap<u64, Vec<(ServiceId, RealServerId)>, FastHash>,
    vips: Vec<Ipv4Addr>,
    /// The IPv6 twins of `by_key`, `nat_real` and `vips` (see
    /// [`Ipv6Addrs`]).
    by_key6: HashMap<(Ipv6Addr, u16, u8), ServiceId>,
    nat_real6: HashMap<(Ipv6Addr, u16, u8), Vec<(ServiceId, RealServerId)>>,
    vips6: Vec<Ipv6Addr>,
    /// Every FullNAT local address (distinct, sorted: found by binary
    /// search).
    locals: Vec<Ipv4Addr>,
    /// Every IPv6 FullNAT local address (distinct, sorted).
    locals6: Vec<Ipv6Addr>,
    /// The local addresses of NAT64 services (a subset of `locals`, sorted):
    /// replies to them are looked up in the IPv6 table.
    locals64: Vec<Ipv4Addr>,
}

impl ServiceTable {
    /// Builds the table. Keys must be unique (the config validation
    /// guarantees it; a duplicate keeps the first).
    pub fn new(services: Vec<VirtualService>) -> ServiceTable {
        let draining_servers = services
            .iter()
            .map(|s| vec![false; s.real_servers.len()])
            .collect();
        let draining_services = vec![false; services.len()];
        ServiceTable::with_draining(services, draining_services, draining_servers)
    }

    /// Builds the table with some services and real servers draining (what
    /// a reload leaves of those it removed). Missing flags count as not
    /// draining.
    pub fn with_draining(
        services: Vec<VirtualService>,
        draining_services: Vec<bool>,
        draining_servers: Vec<Vec<bool>>,
    ) -> ServiceTable {
        let mut by_key = HashMap::default();
        let mut nat_real: HashMap<u64, Vec<_>, FastHash> = HashMap::default();
        let mut vips = Vec::new();
        let (mut by_key6, mut nat_real6, mut vips6) =
            (HashMap::new(), HashMap::<_, Vec<_>>::new(), Vec::new());
        let mut locals = Vec::new();
        let mut locals6 = Vec::new();
        let mut locals64 = Vec::new();
        for (i, s) in services.iter().enumerate() {
            if s.is_nat64() {
                for &a in &s.local.addresses {
                    if !locals.contains(&a) {
                        locals.push(a);
                    }
                    if !locals64.contains(&a) {
                        locals64.push(a);
                    }
                }
            }
            if s.forward == ForwardMethod::FullNat {
                for &a in &s.local.addresses6 {
                    if !locals6.contains(&a) {
                        locals6.push(a);
                    }
                }
            }
            if let Some(v6) = &s.ipv6 {
                let proto = s.key.protocol.number();
                by_key6
                    .entry((v6.vip, s.key.vip.port, proto))
                    .or_insert(i as ServiceId);
                if !vips6.contains(&v6.vip) {
                    vips6.push(v6.vip);
                }
                if s.forward == ForwardMethod::Nat {
                    let servers = (0..s.real_servers.len())
                        .map(|r| r as RealServerId)
                        .chain(std::iter::once(SORRY_SERVER));
                    for r in servers {
                        if let Some(e) = s.real_endpoint6(r) {
                            nat_real6
                                .entry((e.ip, e.port, proto))
                                .or_default()
                                .push((i as ServiceId, r));
                        }
                    }
                }
                continue;
            }
            by_key
                .entry(pack(s.key.vip, s.key.protocol))
                .or_insert(i as ServiceId);
            if !vips.contains(&s.key.vip.ip) {
                vips.push(s.key.vip.ip);
            }
            if s.forward == ForwardMethod::FullNat {
                for &a in &s.local.addresses {
                    if !locals.contains(&a) {
                        locals.push(a);
                    }
                }
            }
            if s.forward == ForwardMethod::Nat {
                for (r, rs) in s.real_servers.iter().enumerate() {
                    nat_real
                        .entry(pack(rs.endpoint, s.key.protocol))
                        .or_default()
                        .push((i as ServiceId, r as RealServerId));
                }
                if let Some(sorry) = s.sorry_server {
                    nat_real
                        .entry(pack(sorry, s.key.protocol))
                        .or_default()
                        .push((i as ServiceId, SORRY_SERVER));
                }
            }
        }
        locals.sort_unstable();
        locals6.sort_unstable();
        locals64.sort_unstable();
        let draining_servers = services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut d = draining_servers.get(i).cloned().unwrap_or_default();
                d.resize(s.real_servers.len(), false);
                d
            })
            .collect();
        let mut draining_services = draining_services;
        draining_services.resize(services.len(), false);
        let mut rs_base = Vec::with_capacity(services.len());
        let mut total = 0u32;
        for s in &services {
            rs_base.push(total);
            total += s.real_servers.len() as u32;
        }
        let mut table = ServiceTable {
            hash_tables: services
                .iter()
                .map(VirtualService::build_hash_table)
                .collect(),
            draining_services,
            draining_servers,
            services,
            rs_base,
            effective: Vec::new(),
            down: vec![false; total as usize],
            weights: Vec::new(),
            priority: Vec::new(),
            priority_changes: Vec::new(),
            ramps: vec![None; total as usize],
            by_key,
            nat_real,
            vips,
            by_key6,
            nat_real6,
            vips6,
            locals,
            locals6,
            locals64,
        };
        (table.effective, table.priority) = table.compute_effective(|_, _| ServerState::default());
        table.weights = table.compute_weights(|_, _| ServerState::default());
        table
    }

    /// The same table with the control plane's run-time view of every real
    /// server applied: health and run-time weights. The snapshot workers
    /// pick up is the only place they read either from.
    pub fn with_server_state(
        mut self,
        state: impl Fn(ServiceId, RealServerId) -> ServerState,
    ) -> ServiceTable {
        for (i, s) in self.services.iter().enumerate() {
            let base = self.rs_base[i] as usize;
            for r in 0..s.real_servers.len() {
                self.down[base + r] = state(i as ServiceId, r as RealServerId).down;
                self.ramps[base + r] = state(i as ServiceId, r as RealServerId).ramp;
            }
        }
        (self.effective, self.priority) = self.compute_effective(&state);
        self.weights = self.compute_weights(&state);
        self
    }

    fn compute_weights(&self, state: impl Fn(ServiceId, RealServerId) -> ServerState) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.down.len());
        for (i, s) in self.services.iter().enumerate() {
            for (r, rs) in s.real_servers.iter().enumerate() {
                out.push(
                    state(i as ServiceId, r as RealServerId)
                        .weight
                        .unwrap_or(rs.weight),
                );
            }
        }
        out
    }

    /// The weight new connections see per real server, and each
    /// service's priority selection: a server is live when it is neither
    /// down nor draining and has a weight; only the active group's live
    /// servers keep theirs (`lb::priority`).
    fn compute_effective(
        &self,
        state: impl Fn(ServiceId, RealServerId) -> ServerState,
    ) -> (Vec<u32>, Vec<Selection>) {
        let mut out = Vec::with_capacity(self.down.len());
        let mut selections = Vec::with_capacity(self.services.len());
        for (i, s) in self.services.iter().enumerate() {
            let start = out.len();
            for (r, rs) in s.real_servers.iter().enumerate() {
                let st = state(i as ServiceId, r as RealServerId);
                let draining = self.draining_servers[i].get(r).copied().unwrap_or(false);
                out.push(if st.down || draining {
                    0
                } else {
                    slow_start::ramped(st.weight.unwrap_or(rs.weight), st.ramp)
                });
            }
            let weights = &mut out[start..];
            let selection = priority::select(
                s.real_servers
                    .iter()
                    .zip(weights.iter())
                    .map(|(rs, &w)| (rs.priority, w > 0)),
                &s.priority_groups,
            );
            for (rs, w) in s.real_servers.iter().zip(weights.iter_mut()) {
                if selection.active != Some(rs.priority) {
                    *w = 0;
                }
            }
            selections.push(selection);
        }
        (out, selections)
    }

    /// The priority group taking service `vs`'s new connections; `None`
    /// when no real server is live (or `vs` is unknown).
    pub fn active_priority(&self, vs: ServiceId) -> Option<u8> {
        self.priority.get(usize::from(vs)).and_then(|s| s.active)
    }

    /// How service `vs`'s active group was chosen: each group's live
    /// servers and quorum (`Selection::reason` says it in words).
    pub fn priority_selection(&self, vs: ServiceId) -> Option<&Selection> {
        self.priority.get(usize::from(vs))
    }

    /// The same table carrying `counts`: how many times each service's
    /// active group changed (the control plane counts them across
    /// snapshots; missing entries are 0).
    pub fn with_priority_changes(mut self, counts: Vec<u64>) -> ServiceTable {
        self.priority_changes = counts;
        self
    }

    /// Times service `vs`'s active priority group changed since start.
    pub fn priority_changes(&self, vs: ServiceId) -> u64 {
        self.priority_changes
            .get(usize::from(vs))
            .copied()
            .unwrap_or(0)
    }

    /// Flat index of real server `rs` of service `vs`, if it exists.
    #[inline]
    fn flat(&self, vs: ServiceId, rs: RealServerId) -> Option<usize> {
        let v = usize::from(vs);
        let n = self.services.get(v)?.real_servers.len();
        (usize::from(rs) < n).then(|| self.rs_base[v] as usize + usize::from(rs))
    }

    /// The flat range of service `vs`'s real servers (empty when unknown).
    #[inline]
    fn span(&self, vs: ServiceId) -> std::ops::Range<usize> {
        let v = usize::from(vs);
        match self.services.get(v) {
            Some(s) => {
                let base = self.rs_base[v] as usize;
                base..base + s.real_servers.len()
            }
            None => 0..0,
        }
    }

    /// Every real server's `effective_weight` and operator `weight` of
    /// service `vs`, in server order: what the scheduler reads for a new
    /// connection, as two slices so that a pick over N servers does not
    /// pay N bounds-checked lookups of each.
    #[inline]
    pub fn weights_of(&self, vs: ServiceId) -> (&[u32], &[u32]) {
        let span = self.span(vs);
        (&self.effective[span.clone()], &self.weights[span])
    }

    /// The weight new connections to real server `rs` of `vs` see: 0 when
    /// it is down, draining, outside the active priority group or unknown
    /// (the sorry server has none).
    #[inline]
    pub fn effective_weight(&self, vs: ServiceId, rs: RealServerId) -> u32 {
        self.flat(vs, rs).map_or(0, |i| self.effective[i])
    }

    /// The weight the operator set for real server `rs` of `vs`: the
    /// run-time weight (`rvsadm weight`), else the configured one, whatever
    /// its health (what `rvsadm list` and the metrics show); 0 when unknown.
    #[inline]
    pub fn weight(&self, vs: ServiceId, rs: RealServerId) -> u32 {
        self.flat(vs, rs).map_or(0, |i| self.weights[i])
    }

    /// Where real server `rs` of `vs` is in its slow start, while it ramps
    /// (its effective weight is then below its weight).
    pub fn slow_start(&self, vs: ServiceId, rs: RealServerId) -> Option<Ramp> {
        self.flat(vs, rs).and_then(|i| self.ramps[i])
    }

    /// True when the health checks hold real server `rs` of `vs` down (the
    /// sorry server and unknown servers are never down).
    #[inline]
    pub fn is_down(&self, vs: ServiceId, rs: RealServerId) -> bool {
        self.flat(vs, rs).is_some_and(|i| self.down[i])
    }

    /// The service a client packet to `vip` is for.
    #[inline]
    pub fn lookup(&self, vip: Endpoint, protocol: Protocol) -> Option<ServiceId> {
        self.by_key.get(&pack(vip, protocol)).copied()
    }

    /// True when `src` is a NAT real server (a packet from it is a reply
    /// that must be translated, or dropped when no connection knows it).
    #[inline]
    pub fn is_nat_real_server(&self, src: Endpoint, protocol: Protocol) -> bool {
        self.nat_real.contains_key(&pack(src, protocol))
    }

    /// True when `ip` is a virtual address of any service.
    #[inline]
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        self.vips.contains(&ip)
    }

    /// The IPv6 service a client packet to `vip` is for.
    #[inline]
    pub fn lookup6(&self, vip: Endpoint6, protocol: Protocol) -> Option<ServiceId> {
        self.by_key6
            .get(&(vip.ip, vip.port, protocol.number()))
            .copied()
    }

    /// True when `src` is an IPv6 NAT real server (a packet from it is a
    /// reply that must be translated, or dropped when no connection knows
    /// it).
    #[inline]
    pub fn is_nat_real_server6(&self, src: Endpoint6, protocol: Protocol) -> bool {
        self.nat_real6
            .contains_key(&(src.ip, src.port, protocol.number()))
    }

    /// True when `ip` is the virtual address of an IPv6 service.
    #[inline]
    pub fn is_vip6(&self, ip: Ipv6Addr) -> bool {
        self.vips6.contains(&ip)
    }

    /// Every distinct IPv6 VIP.
    pub fn vips6(&self) -> &[Ipv6Addr] {
        &self.vips6
    }

    /// Where connections of IPv6 service `id` to real server `rs` go (the
    /// sorry server for [`SORRY_SERVER`]); `None` for an IPv4 service.
    #[inline]
    pub fn real_endpoint6(&self, id: ServiceId, rs: RealServerId) -> Option<Endpoint6> {
        self.services.get(usize::from(id))?.real_endpoint6(rs)
    }

    /// True when some service is IPv6.
    pub fn any_ipv6(&self) -> bool {
        !self.vips6.is_empty()
    }

    /// True when `ip` is a FullNAT local address of any service: a packet
    /// to it is a real server's reply (or nothing rvs knows).
    #[inline]
    pub fn is_local_address(&self, ip: Ipv4Addr) -> bool {
        !self.locals.is_empty() && self.locals.binary_search(&ip).is_ok()
    }

    /// True when `ip` is a local address of a NAT64 service: a packet to
    /// it belongs to the IPv6 table (`lb::balancer::v6::nat64`). One
    /// compare while no service is NAT64.
    #[inline]
    pub fn is_nat64_local(&self, ip: Ipv4Addr) -> bool {
        !self.locals64.is_empty() && self.among_nat64_locals(ip)
    }

    /// The search behind [`ServiceTable::is_nat64_local`], kept out of
    /// line: the IPv4 path inlines only the empty check.
    #[inline(never)]
    fn among_nat64_locals(&self, ip: Ipv4Addr) -> bool {
        self.locals64.binary_search(&ip).is_ok()
    }

    /// Every distinct FullNAT local address, in address order.
    pub fn local_addresses(&self) -> &[Ipv4Addr] {
        &self.locals
    }

    /// True when `ip` is an IPv6 FullNAT local address of any service: a
    /// packet to it is a real server's reply (or nothing rvs knows).
    #[inline]
    pub fn is_local_address6(&self, ip: Ipv6Addr) -> bool {
        !self.locals6.is_empty() && self.locals6.binary_search(&ip).is_ok()
    }

    /// Every distinct IPv6 FullNAT local address, in address order.
    pub fn local_addresses6(&self) -> &[Ipv6Addr] {
        &self.locals6
    }

    /// Every distinct VIP.
    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// A service by id.
    #[inline]
    pub fn get(&self, id: ServiceId) -> &VirtualService {
        &self.services[usize::from(id)]
    }

    /// A worker's scheduler for service `id`, seeded with `seed`. The
    /// config guarantees `sh`/`mh` tables can be built (a prime Maglev
    /// size); were one missing, the service falls back to round robin.
    pub fn new_scheduler(&self, id: ServiceId, seed: u64) -> Scheduler {
        let s = &self.services[usize::from(id)];
        let table = self.hash_tables[usize::from(id)].clone();
        Scheduler::new(s.scheduler, table, seed)
            .unwrap_or_else(|_| Scheduler::Rr(super::sched::RoundRobin::new(seed)))
    }

    /// True when service `id` takes no new connections (removed by a reload).
    #[inline]
    pub fn is_draining(&self, id: ServiceId) -> bool {
        self.draining_services
            .get(usize::from(id))
            .copied()
            .unwrap_or(false)
    }

    /// True when real server `rs` of service `id` takes no new connections
    /// (removed by a reload).
    #[inline]
    pub fn is_server_draining(&self, id: ServiceId, rs: RealServerId) -> bool {
        self.draining_servers
            .get(usize::from(id))
            .and_then(|v| v.get(usize::from(rs)))
            .copied()
            .unwrap_or(false)
    }

    /// Where connections of service `id` to real server `rs` go: the real
    /// server, or the sorry server for [`SORRY_SERVER`].
    #[inline]
    pub fn real_endpoint(&self, id: ServiceId, rs: RealServerId) -> Option<Endpoint> {
        let s = self.services.get(usize::from(id))?;
        if rs == SORRY_SERVER {
            s.sorry_server
        } else {
            s.real_servers.get(usize::from(rs)).map(|r| r.endpoint)
        }
    }

    /// Every service, in config order.
    pub fn services(&self) -> &[VirtualService] {
        &self.services
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint::new(s.parse().unwrap(), port)
    }

    fn service(
        name: &str,
        vip: Endpoint,
        forward: ForwardMethod,
        rs: &[Endpoint],
    ) -> VirtualService {
        let key = ServiceKey {
            vip,
            protocol: Protocol::Tcp,
        };
        VirtualService::new(
            name,
            key,
            forward,
            SchedulerKind::Rr,
            rs.iter().map(|&e| (e, 1)),
        )
    }

    #[test]
    fn finds_services_by_vip_port_and_protocol() {
        let t = ServiceTable::new(vec![
            service(
                "web",
                ep("203.0.113.100", 80),
                ForwardMethod::Nat,
                &[ep("10.1.0.11", 8080)],
            ),
            service(
                "tls",
                ep("203.0.113.100", 443),
                ForwardMethod::Dr,
                &[ep("10.1.0.12", 443)],
            ),
        ]);
        assert_eq!(t.lookup(ep("203.0.113.100", 80), Protocol::Tcp), Some(0));
        assert_eq!(t.lookup(ep("203.0.113.100", 443), Protocol::Tcp), Some(1));
        assert_eq!(t.lookup(ep("203.0.113.100", 80), Protocol::Udp), None);
        assert_eq!(t.lookup(ep("203.0.113.100", 8080), Protocol::Tcp), None);
        assert!(t.is_vip("203.0.113.100".parse().unwrap()));
        assert_eq!(t.vips().len(), 1);
    }

    #[test]
    fn only_nat_real_servers_are_reply_sources() {
        let t = ServiceTable::new(vec![
            service(
                "web",
                ep("203.0.113.100", 80),
                ForwardMethod::Nat,
                &[ep("10.1.0.11", 8080)],
            ),
            service(
                "tls",
                ep("203.0.113.100", 443),
                ForwardMethod::Dr,
                &[ep("10.1.0.12", 443)],
            ),
        ]);
        assert!(t.is_nat_real_server(ep("10.1.0.11", 8080), Protocol::Tcp));
        assert!(!t.is_nat_real_server(ep("10.1.0.12", 443), Protocol::Tcp));
        assert!(!t.is_nat_real_server(ep("10.1.0.11", 8080), Protocol::Udp));
    }

    #[test]
    fn effective_weights_come_from_health_run_time_weights_and_draining() {
        let mut web = service(
            "web",
            ep("203.0.113.100", 80),
            ForwardMethod::Nat,
            &[
                ep("10.1.0.11", 80),
                ep("10.1.0.12", 80),
                ep("10.1.0.13", 80),
            ],
        );
        web.real_servers[2].weight = 5;
        let t = ServiceTable::with_draining(vec![web], vec![false], vec![vec![false, false, true]]);
        assert_eq!(t.effective_weight(0, 0), 1);
        assert_eq!(t.effective_weight(0, 2), 0, "draining");
        let t = t.with_server_state(|_, rs| ServerState {
            down: rs == 0,
            weight: (rs == 1).then_some(7),
            ramp: None,
        });
        assert_eq!(t.effective_weight(0, 0), 0);
        assert!(t.is_down(0, 0));
        assert_eq!(t.effective_weight(0, 1), 7);
        assert!(!t.is_down(0, 1));
        assert_eq!(t.weight(0, 0), 1, "down keeps the operator's weight");
        assert_eq!(t.weight(0, 1), 7);
        assert_eq!(t.weight(0, 2), 5, "draining keeps the operator's weight");
        assert_eq!(t.effective_weight(0, 2), 0);
        assert_eq!(t.effective_weight(0, SORRY_SERVER), 0);
        assert!(!t.is_down(0, SORRY_SERVER));
        assert_eq!(t.effective_weight(3, 0), 0);
    }

    /// Three primaries at priority 0 (quorum 2) and two backups at 1.
    fn grouped() -> VirtualService {
        let rs: Vec<Endpoint> = (11..16).map(|i| ep(&format!("10.1.0.{i}"), 8080)).collect();
        let mut s = service("web", ep("203.0.113.100", 80), ForwardMethod::Nat, &rs);
        for r in &mut s.real_servers[3..] {
            r.priority = 1;
        }
        s.priority_groups = vec![GroupQuorum {
            priority: 0,
            min_active: 2,
        }];
        s
    }

    fn with(t: &ServiceTable, down: &[u16], weights: &[(u16, u32)]) -> ServiceTable {
        t.clone().with_server_state(|_, r| ServerState {
            down: down.contains(&r),
            weight: weights.iter().find(|(s, _)| *s == r).map(|(_, w)| *w),
            ramp: None,
        })
    }

    fn effective(t: &ServiceTable) -> Vec<u32> {
        (0..5).map(|r| t.effective_weight(0, r)).collect()
    }

    #[test]
    fn only_the_active_group_takes_new_connections() {
        let t = ServiceTable::new(vec![grouped()]);
        assert_eq!(t.active_priority(0), Some(0));
        assert_eq!(effective(&t), [1, 1, 1, 0, 0]);
    }

    #[test]
    fn a_primary_group_below_quorum_hands_new_connections_to_the_backups() {
        let t = with(&ServiceTable::new(vec![grouped()]), &[0, 1], &[]);
        assert_eq!(t.active_priority(0), Some(1));
        assert_eq!(effective(&t), [0, 0, 0, 1, 1]);
        assert!(!t.is_down(0, 2), "an idle primary is not down");
        assert!(!t.is_down(0, 3));
    }

    #[test]
    fn without_any_quorum_the_best_live_group_serves_degraded() {
        let mut s = grouped();
        s.priority_groups.push(GroupQuorum {
            priority: 1,
            min_active: 2,
        });
        let t = with(&ServiceTable::new(vec![s]), &[0, 1, 3], &[]);
        assert_eq!(t.active_priority(0), Some(0));
        assert_eq!(
            t.priority_selection(0).unwrap().why(),
            priority::Why::Degraded
        );
        assert_eq!(effective(&t), [0, 0, 1, 0, 0]);
    }

    #[test]
    fn with_every_server_down_no_group_is_active() {
        let t = with(&ServiceTable::new(vec![grouped()]), &[0, 1, 2, 3, 4], &[]);
        assert_eq!(t.active_priority(0), None);
        assert_eq!(effective(&t), [0; 5]);
    }

    #[test]
    fn draining_and_weight_zero_servers_do_not_count_as_live() {
        let base = ServiceTable::with_draining(
            vec![grouped()],
            vec![false],
            vec![vec![true, false, false, false, false]],
        );
        assert_eq!(base.active_priority(0), Some(0), "two live primaries left");
        let t = with(&base, &[], &[(1, 0)]);
        assert_eq!(t.active_priority(0), Some(1));
        assert_eq!(effective(&t), [0, 0, 0, 1, 1]);
    }

    #[test]
    fn recovered_primaries_take_new_connections_back() {
        let t = ServiceTable::new(vec![grouped()]);
        let down = with(&t, &[0, 1], &[]);
        let back = with(&down, &[], &[]);
        assert_eq!(back.active_priority(0), Some(0));
        assert_eq!(effective(&back), [1, 1, 1, 0, 0]);
    }

    #[test]
    fn a_new_table_with_groups_chooses_its_group_afresh() {
        let plain = ServiceTable::new(vec![service(
            "web",
            ep("203.0.113.100", 80),
            ForwardMethod::Nat,
            &[ep("10.1.0.11", 8080)],
        )]);
        assert_eq!(plain.active_priority(0), Some(0));
        let t = with(&ServiceTable::new(vec![grouped()]), &[0, 1], &[]);
        assert_eq!(t.active_priority(0), Some(1));
    }

    #[test]
    fn priority_change_counts_ride_on_the_table() {
        let t = ServiceTable::new(vec![grouped()]).with_priority_changes(vec![3]);
        assert_eq!(t.priority_changes(0), 3);
        assert_eq!(with(&t, &[0], &[]).priority_changes(0), 3);
        assert_eq!(t.priority_changes(9), 0);
    }

    #[test]
    fn a_ramping_server_gets_its_ramped_weight_and_shows_its_ramp() {
        let mut web = service(
            "web",
            ep("203.0.113.100", 80),
            ForwardMethod::Nat,
            &[ep("10.1.0.11", 80), ep("10.1.0.12", 80)],
        );
        web.real_servers[0].weight = 10;
        let ramp = Ramp {
            elapsed: Duration::from_secs(2),
            duration: Duration::from_secs(5),
        };
        let t = ServiceTable::new(vec![web]).with_server_state(|_, rs| ServerState {
            ramp: (rs == 0).then_some(ramp),
            ..ServerState::default()
        });
        assert_eq!(t.effective_weight(0, 0), 4);
        assert_eq!(t.weight(0, 0), 10, "the operator's weight is unchanged");
        assert_eq!(t.slow_start(0, 0), Some(ramp));
        assert_eq!(t.slow_start(0, 1), None);
        assert_eq!(t.effective_weight(0, 1), 1);
    }

    #[test]
    fn weights_of_a_service_are_its_effective_and_operator_weights_in_order() {
        let rs = [
            ep("10.1.0.11", 80),
            ep("10.1.0.12", 80),
            ep("10.1.0.13", 80),
        ];
        let web = service("web", ep("203.0.113.100", 80), ForwardMethod::Nat, &rs);
        let t = ServiceTable::new(vec![web]).with_server_state(|_, r| ServerState {
            down: r == 1,
            weight: (r == 2).then_some(7),
            ramp: None,
        });
        assert_eq!(t.weights_of(0), (&[1, 0, 7][..], &[1, 1, 7][..]));
        assert_eq!(t.weights_of(9), (&[][..], &[][..]));
    }

    #[test]
    fn a_real_server_s_slow_start_overrides_its_service_s() {
        let mut web = service(
            "web",
            ep("203.0.113.100", 80),
            ForwardMethod::Nat,
            &[ep("10.1.0.11", 80), ep("10.1.0.12", 80)],
        );
        web.slow_start = Duration::from_secs(30);
        web.real_servers[1].slow_start = Some(Duration::ZERO);
        assert_eq!(web.slow_start_of(0), Duration::from_secs(30));
        assert_eq!(web.slow_start_of(1), Duration::ZERO);
        assert_eq!(web.slow_start_of(9), Duration::ZERO);
    }
}
