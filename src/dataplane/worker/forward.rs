//! The load balancer's path through a worker: find the connection of a
//! packet (either direction) or create one for a new flow to a virtual
//! service, rewrite for the service's forwarding method, route, send.
//!
//! Order of decisions for an IPv4 packet not addressed to the balancer:
//! 1. TCP/UDP: the connection table, by the packet's 5-tuple. A hit in the
//!    original direction goes to the connection's real server; a hit in the
//!    reply direction (NAT) goes back to the client as the service. A bare
//!    SYN on a closing connection retires it and starts a new one.
//! 2. No connection and the destination is a service: schedule a real
//!    server (persistence first), create the connection, forward. TCP
//!    creates connections only on a bare SYN, like IPVS.
//! 3. ICMP errors quoting a tracked connection are translated (NAT) or
//!    passed to the real server (DR, TUN), so path MTU discovery works.
//! 4. Everything else is dropped with its reason.
//!
//! Per real server counters (connections active and inactive, packets and
//! bytes each way) live here, per worker, as plain integers; lc/wlc see
//! this worker's counts only. With N workers and RSS spreading clients
//! evenly, each worker's counts are about 1/N of the global ones with the
//! same proportions between servers, which is what least-connection
//! scheduling compares.

use super::{Worker, WorkerSetup};
use crate::dataplane::io::{Frame, Output};
use crate::dataplane::stats::{DropReason, RealServerCounters};
use crate::dataplane::sync::{SyncEvent, SyncQueue};
use crate::lb::conn::{Conn, ConnId, ConnInit, ConnTable, Direction, FlowKey, InsertError};
use crate::lb::persist::PersistTable;
use crate::lb::sched::{Candidate, FlowHashInput, Scheduler};
use crate::lb::service::{ForwardMethod, Protocol, ServiceId, ServiceTable, SORRY_SERVER};
use crate::lb::tcp_state::{self, TcpFlags, Timeouts};
use crate::lb::xmit::{nat, rst, tun, Endpoint, XmitError};
use crate::wire::{icmp, ipv4, tcp, udp};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Most connection entries the expiry sweep examines in one poll: bounds
/// the work a poll adds to a burst.
const SWEEP_BUDGET: usize = 256;

/// How fast the sweep walks the table: the whole table once a second, but
/// no more than this many entries a second (a 10M-entry table in 10 s).
/// Sized to time, not to polls, so a busy-polling worker does not stream
/// the table through its cache at every poll (at 1M connections and a
/// poll per 64 packets that was one entry per packet), and an idle one
/// still reclaims. Expired connections are also reclaimed at once when a
/// packet meets them, and a full table makes room from the expired first.
/// The price: above 1M connections a pass takes capacity / 1M seconds,
/// and until it comes by, an expired connection no packet meets still
/// counts as inactive for lc/wlc and `rvsadm` (IPVS's timers are exact).
const SWEEP_MAX_PER_SECOND: u64 = 1_000_000;

/// A worker's load-balancing state.
pub(super) struct Balancer {
    services: Arc<ServiceTable>,
    pub(super) conns: ConnTable,
    persist: PersistTable,
    timeouts: Timeouts,
    scheds: Vec<Scheduler>,
    /// Counters per service, per real server.
    counters: Vec<Vec<RealServerCounters>>,
    /// Scratch for the scheduler's view, sized at start.
    candidates: Vec<Candidate>,
    /// Health per service, per real server, as the control thread's checks
    /// last said (up until told otherwise).
    health: Vec<Vec<bool>>,
    /// Run-time weights set by `rvsadm weight`, over the configured ones.
    weight_override: Vec<Vec<Option<u32>>>,
    /// Seed of the schedulers (rebuilt on a reload).
    seed: u64,
    /// Where connection events go for the peer (HA configured).
    pub(super) sync: Option<SyncQueue>,
    /// Report events: HA configured and this balancer is the active one.
    pub(super) sync_active: bool,
    /// When the sweep last ran, and the entries it may still examine.
    swept_at_ns: u64,
    sweep_credit: u64,
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
    pub(super) fn new(setup: &WorkerSetup) -> Balancer {
        let services = setup.services.clone();
        let max_rs = services
            .services()
            .iter()
            .map(|s| s.real_servers.len())
            .max()
            .unwrap_or(0);
        let any_persistence = services.services().iter().any(|s| s.persistence.is_some());
        Balancer {
            conns: ConnTable::with_seed(setup.conn_capacity.max(1), setup.seed),
            persist: PersistTable::with_seed(
                if any_persistence {
                    setup.conn_capacity.max(1)
                } else {
                    1
                },
                setup.seed ^ 0x9e37_79b9,
            ),
            timeouts: setup.timeouts,
            scheds: services
                .services()
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    services.new_scheduler(i as ServiceId, setup.seed.wrapping_add(i as u64))
                })
                .collect(),
            counters: services
                .services()
                .iter()
                .map(|s| vec![RealServerCounters::default(); s.real_servers.len()])
                .collect(),
            candidates: Vec::with_capacity(max_rs),
            health: services
                .services()
                .iter()
                .map(|s| vec![true; s.real_servers.len()])
                .collect(),
            weight_override: services
                .services()
                .iter()
                .map(|s| vec![None; s.real_servers.len()])
                .collect(),
            seed: setup.seed,
            sync: None,
            sync_active: false,
            swept_at_ns: 0,
            sweep_credit: 0,
            services,
        }
    }

    /// Takes a new service table (a reload). Indexes of services and real
    /// servers are stable across reloads (`control::reload`), so
    /// connections keep their meaning; per-server state grows for what was
    /// added; schedulers start afresh with the new weights; run-time weight
    /// overrides give way to the file's.
    pub(super) fn set_services(&mut self, services: Arc<ServiceTable>) {
        let shape: Vec<usize> = services
            .services()
            .iter()
            .map(|s| s.real_servers.len())
            .collect();
        self.counters.resize_with(shape.len(), Vec::new);
        self.health.resize_with(shape.len(), Vec::new);
        self.weight_override.resize_with(shape.len(), Vec::new);
        for (i, &n) in shape.iter().enumerate() {
            self.counters[i].resize(n, RealServerCounters::default());
            self.health[i].resize(n, true);
            self.weight_override[i] = vec![None; n];
        }
        let max_rs = shape.iter().copied().max().unwrap_or(0);
        if self.candidates.capacity() < max_rs {
            self.candidates = Vec::with_capacity(max_rs);
        }
        self.scheds = (0..shape.len())
            .map(|i| services.new_scheduler(i as ServiceId, self.seed.wrapping_add(i as u64)))
            .collect();
        self.services = services;
    }

    /// Marks a real server up or down (from the control thread's checks).
    pub(super) fn set_health(&mut self, vs: u16, rs: u16, up: bool) {
        if let Some(h) = self
            .health
            .get_mut(usize::from(vs))
            .and_then(|v| v.get_mut(usize::from(rs)))
        {
            *h = up;
        }
    }

    /// Sets a real server's weight at run time (`None`: the configured one).
    pub(super) fn set_weight(&mut self, vs: u16, rs: u16, weight: Option<u32>) {
        if let Some(w) = self
            .weight_override
            .get_mut(usize::from(vs))
            .and_then(|v| v.get_mut(usize::from(rs)))
        {
            *w = weight;
        }
    }

    /// The weight new connections see: 0 when down or draining.
    #[inline]
    fn effective_weight(&self, vs: u16, rs: u16) -> u32 {
        let (v, r) = (usize::from(vs), usize::from(rs));
        if !self
            .health
            .get(v)
            .and_then(|h| h.get(r))
            .copied()
            .unwrap_or(false)
            || self.services.is_server_draining(vs, rs)
        {
            return 0;
        }
        match self
            .weight_override
            .get(v)
            .and_then(|w| w.get(r))
            .copied()
            .flatten()
        {
            Some(w) => w,
            None => self
                .services
                .get(vs)
                .real_servers
                .get(r)
                .map_or(0, |s| s.weight),
        }
    }

    /// True when real server `rs` of `vs` is down.
    #[inline]
    fn is_down(&self, vs: u16, rs: u16) -> bool {
        !self
            .health
            .get(usize::from(vs))
            .and_then(|h| h.get(usize::from(rs)))
            .copied()
            .unwrap_or(true)
    }

    /// A snapshot of up to `limit` live connections, for `rvsadm conns`.
    pub(super) fn dump(&self, now: u64, limit: usize) -> Vec<ConnInfo> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.is_expired(now))
            .take(limit)
            .map(|(_, c)| {
                let service = self.services.get(c.vs);
                let real = service
                    .real_servers
                    .get(usize::from(c.rs))
                    .map(|r| r.endpoint);
                let o = c.original();
                ConnInfo {
                    protocol: if c.proto() == 6 { "tcp" } else { "udp" },
                    client: Endpoint::new(o.src, o.src_port),
                    virtual_server: Endpoint::new(o.dst, o.dst_port),
                    real_server: real.unwrap_or(Endpoint::new(Ipv4Addr::UNSPECIFIED, 0)),
                    state: c.state_name(),
                    expires_in_s: c.expires_ns.saturating_sub(now) / 1_000_000_000,
                    packets_in: u64::from(c.packets_in),
                    packets_out: u64::from(c.packets_out),
                    bytes_in: c.bytes_in,
                    bytes_out: c.bytes_out,
                }
            })
            .collect()
    }
}

/// One connection as `rvsadm conns` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// "tcp" or "udp".
    pub protocol: &'static str,
    /// The client's address and port.
    pub client: Endpoint,
    /// The VIP and port it connected to.
    pub virtual_server: Endpoint,
    /// The real server it was scheduled to.
    pub real_server: Endpoint,
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

impl Balancer {
    pub(super) fn services(&self) -> &ServiceTable {
        &self.services
    }

    /// Counters per service and real server, for the stats line and rvsadm.
    pub(super) fn counters(&self) -> &[Vec<RealServerCounters>] {
        &self.counters
    }

    /// Connections tracked now.
    pub(super) fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// The sweep that reclaims expired connections, a little per poll.
    pub(super) fn tick(&mut self, now: u64) {
        let budget = self.sweep_budget(now);
        if budget > 0 {
            let counters = &mut self.counters;
            self.conns.expire(now, budget, |c| forget(counters, c));
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

    /// Every live connection as a sync event (a full resync).
    pub(super) fn sync_dump(&self, now: u64) -> Vec<SyncEvent> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.is_expired(now))
            .filter_map(|(_, c)| self.event(c, now))
            .collect()
    }

    /// A connection as the peer needs it.
    fn event(&self, c: &Conn, now: u64) -> Option<SyncEvent> {
        let real = self.services.real_endpoint(c.vs, c.rs)?;
        let protocol = Protocol::from_number(c.proto())?;
        let o = c.original();
        Some(SyncEvent {
            protocol,
            // UDP has no states; the format's convention is ESTABLISHED.
            state: if protocol == Protocol::Udp {
                crate::lb::tcp_state::State::Established
            } else {
                c.state()
            },
            input_only: c.is_input_only(),
            client: Endpoint::new(o.src, o.src_port),
            vip: Endpoint::new(o.dst, o.dst_port),
            real,
            timeout_s: (c.expires_ns.saturating_sub(now) / 1_000_000_000) as u32,
        })
    }

    /// Installs connections the active balancer reported (on a standby),
    /// so that after a takeover their packets go to the same real servers.
    /// A connection already known is brought to the reported state.
    pub(super) fn install(&mut self, events: &[SyncEvent], now: u64) -> u64 {
        let mut installed = 0;
        for ev in events {
            let Some(vs) = self.services.lookup(ev.vip, ev.protocol) else {
                continue;
            };
            let service = self.services.get(vs);
            let rs = match service
                .real_servers
                .iter()
                .position(|r| r.endpoint == ev.real)
            {
                Some(i) => i as u16,
                None if service.sorry_server == Some(ev.real) => SORRY_SERVER,
                None => continue,
            };
            let proto = ev.protocol.number();
            let original =
                FlowKey::new(ev.client.ip, ev.client.port, ev.vip.ip, ev.vip.port, proto);
            let reply = match service.forward {
                ForwardMethod::Nat => FlowKey::new(
                    ev.real.ip,
                    ev.real.port,
                    ev.client.ip,
                    ev.client.port,
                    proto,
                ),
                ForwardMethod::Dr | ForwardMethod::Tun => original.reversed(),
            };
            let timeout_ns = u64::from(ev.timeout_s) * 1_000_000_000;
            let counters = &mut self.counters;
            if let Some((id, _)) = self.conns.lookup(&original, now, |c| forget(counters, c)) {
                let c = self.conns.get_mut(id);
                let was_active = c.is_active();
                let (cvs, crs) = (c.vs, c.rs);
                let t = c.set_state(ev.state, now, &self.timeouts);
                c.expires_ns = now.saturating_add(timeout_ns);
                account(
                    &mut self.counters,
                    cvs,
                    crs,
                    crate::lb::tcp_state::Transition {
                        was_active,
                        now_active: t.now_active,
                    },
                );
                continue;
            }
            let init = ConnInit {
                vs,
                rs,
                input_only: ev.input_only,
                state: ev.state,
                timeout_ns,
            };
            let counters = &mut self.counters;
            if let Ok(id) = self
                .conns
                .insert(original, reply, init, now, |c| forget(counters, c))
            {
                let active = self.conns.get(id).is_active();
                if let Some(c) = self
                    .counters
                    .get_mut(usize::from(vs))
                    .and_then(|v| v.get_mut(usize::from(rs)))
                {
                    c.conns += 1;
                    if active {
                        c.active += 1;
                    } else {
                        c.inactive += 1;
                    }
                }
                installed += 1;
            }
        }
        installed
    }
}

/// Takes a connection that ended out of its server's active/inactive count.
fn forget(counters: &mut [Vec<RealServerCounters>], c: &Conn) {
    if let Some(rs) = counters
        .get_mut(usize::from(c.vs))
        .and_then(|v| v.get_mut(usize::from(c.rs)))
    {
        if c.is_active() {
            rs.active = rs.active.saturating_sub(1);
        } else {
            rs.inactive = rs.inactive.saturating_sub(1);
        }
    }
}

/// Moves a connection between its server's active and inactive counts.
fn account(counters: &mut [Vec<RealServerCounters>], vs: u16, rs: u16, t: tcp_state::Transition) {
    if !t.changed() {
        return;
    }
    if let Some(c) = counters
        .get_mut(usize::from(vs))
        .and_then(|v| v.get_mut(usize::from(rs)))
    {
        if t.now_active {
            c.active += 1;
            c.inactive = c.inactive.saturating_sub(1);
        } else {
            c.inactive += 1;
            c.active = c.active.saturating_sub(1);
        }
    }
}

/// The transport facts the connection path needs.
#[derive(Clone, Copy)]
struct L4 {
    key: FlowKey,
    flags: TcpFlags,
    protocol: Protocol,
}

impl<F: Frame> Worker<F> {
    /// The load balancer's path for IPv4 at offset `l3` (header checksum
    /// already verified, not addressed to the balancer): sends, parks or
    /// drops `frame`, counting what it does.
    pub(super) fn forward<O: Output<F>>(
        &mut self,
        port: usize,
        l3: usize,
        frame: F,
        now: u64,
        out: &mut O,
    ) {
        match self.forward_inner(port, l3, frame, now, out) {
            Ok(()) => {}
            Err(reason) => self.stats.drop(reason),
        }
    }

    fn forward_inner<O: Output<F>>(
        &mut self,
        port: usize,
        l3: usize,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let ip = ipv4::Packet::new_unchecked(&frame.data()[l3..]);
        if self.workers > 1 {
            if let Some(owner) = self.owner(&ip) {
                if owner != self.index {
                    out.redirect(owner, port, frame);
                    return Ok(());
                }
            }
        }
        let proto = u8::from(ip.protocol());
        if proto == 1 {
            return self.icmp_error(l3, frame, now, out);
        }
        let Some(protocol) = Protocol::from_number(proto) else {
            return Err(self.unknown_destination(&ip));
        };
        if ip.is_fragment() {
            return Err(DropReason::Fragment);
        }
        let l4 = read_l4(&ip, protocol)?;
        // Nothing with TTL 0 or 1 is forwarded: decided before a connection
        // is created or counted.
        if ip.ttl() <= 1 {
            return Err(DropReason::TtlExpired);
        }
        let bytes = u32::from(ip.total_len());

        // 1. A tracked connection, either direction.
        let counters = &mut self.lb.counters;
        let found = self.lb.conns.lookup(&l4.key, now, |c| forget(counters, c));
        let conn = match found {
            Some((id, dir)) => {
                let c = self.lb.conns.get(id);
                let (vs, rs) = (c.vs, c.rs);
                if protocol == Protocol::Tcp && tcp_state::should_restart(c.state(), dir, l4.flags)
                {
                    // A new connection on the tuple of a closing one.
                    let old = self.lb.conns.remove(id);
                    forget(&mut self.lb.counters, &old);
                    None
                } else if self.lb.is_down(vs, rs) && self.lb.services.get(vs).expire_nodest_conn {
                    // Its real server is down: the connection ends here.
                    // UDP and new SYNs are scheduled afresh; other TCP gets
                    // a reset so the client reconnects at once.
                    let old = self.lb.conns.remove(id);
                    forget(&mut self.lb.counters, &old);
                    if protocol == Protocol::Tcp && !l4.flags.is_bare_syn() {
                        return if dir == Direction::Original {
                            self.reset(l3, frame, now, out)
                        } else {
                            Err(DropReason::NoConnection)
                        };
                    }
                    None
                } else {
                    Some((id, dir))
                }
            }
            None => None,
        };
        let created = conn.is_none();
        let (id, dir) = match conn {
            Some(hit) => hit,
            None => match self.new_connection(&l4, now) {
                Ok(hit) => hit,
                // Every server down: refuse a TCP connection at once rather
                // than leave the client retrying into silence.
                Err(DropReason::NoRealServer) if protocol == Protocol::Tcp => {
                    return self.reset(l3, frame, now, out);
                }
                Err(e) => return Err(e),
            },
        };

        let timeouts = self.lb.timeouts;
        let c = self.lb.conns.get_mut(id);
        let before = c.state();
        let t = c.on_packet(dir, l4.flags, bytes, now, &timeouts);
        let (vs, rs) = (c.vs, c.rs);
        let changed = created || c.state() != before;
        if self.lb.sync_active && changed {
            let c = *self.lb.conns.get(id);
            self.lb.report(&c, now);
        }
        account(&mut self.lb.counters, vs, rs, t);
        if let Some(cnt) = self
            .lb
            .counters
            .get_mut(usize::from(vs))
            .and_then(|v| v.get_mut(usize::from(rs)))
        {
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
        let service = self.lb.services.get(vs);
        let method = service.forward;
        let vip = service.key.vip;
        let real = self
            .lb
            .services
            .real_endpoint(vs, rs)
            .ok_or(DropReason::NoRealServer)?;
        match (dir, method) {
            (Direction::Original, ForwardMethod::Nat) => {
                nat::to_real_server(&mut frame.data_mut()[l3..], real).map_err(xmit_drop)?;
                self.route_and_send(real.ip, frame, now, out)
            }
            (Direction::Original, ForwardMethod::Dr) => {
                self.route_and_send(real.ip, frame, now, out)
            }
            (Direction::Original, ForwardMethod::Tun) => self.tunnel(l3, real.ip, frame, now, out),
            (Direction::Reply, _) => {
                nat::from_real_server(&mut frame.data_mut()[l3..], vip).map_err(xmit_drop)?;
                let client = l4.key.dst;
                self.route_and_send(client, frame, now, out)
            }
        }
    }

    /// The worker that owns the connection of this packet: the one its
    /// client's address hashes to, computed alike from either
    /// direction (client → VIP, real server → client, and ICMP errors
    /// quoting either). `None` for packets of no service, handled here.
    fn owner(&self, ip: &ipv4::Packet<&[u8]>) -> Option<usize> {
        let services = &self.lb.services;
        let client = match Protocol::from_number(u8::from(ip.protocol())) {
            Some(protocol) => {
                let p = ip.payload();
                if p.len() < 4 || ip.is_fragment() {
                    return None;
                }
                let (sport, dport) = (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                );
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                if services
                    .lookup(Endpoint::new(dst, dport), protocol)
                    .is_some()
                {
                    src
                } else if services.is_nat_real_server(Endpoint::new(src, sport), protocol) {
                    dst
                } else {
                    return None;
                }
            }
            None if ip.protocol() == ipv4::Protocol::Icmp => {
                // An error quotes the packet it is about after 8 bytes.
                let q = ipv4::Packet::new_checked_quoted(ip.payload().get(8..)?).ok()?;
                let protocol = Protocol::from_number(u8::from(q.protocol()))?;
                let p = q.payload();
                let (sport, dport) = (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                );
                let (src, dst) = (q.src_addr(), q.dst_addr());
                if services.is_nat_real_server(Endpoint::new(dst, dport), protocol) {
                    src // about a packet we forwarded to a real server
                } else if services
                    .lookup(Endpoint::new(src, sport), protocol)
                    .is_some()
                {
                    dst // about a reply the client's side refused
                } else {
                    return None;
                }
            }
            None => return None,
        };
        Some(flow_owner(client, self.workers))
    }

    /// Why a packet of a protocol rvs does not balance is dropped: to a VIP
    /// it is a protocol the VIP does not speak, elsewhere no service.
    fn unknown_destination(&self, ip: &ipv4::Packet<&[u8]>) -> DropReason {
        if self.lb.services.is_vip(ip.dst_addr()) {
            DropReason::UnsupportedProtocol
        } else {
            DropReason::NoService
        }
    }

    /// Schedules a new flow to a service and records its connection.
    fn new_connection(&mut self, l4: &L4, now: u64) -> Result<(ConnId, Direction), DropReason> {
        let vip = Endpoint::new(l4.key.dst, l4.key.dst_port);
        let Some(vs) = self.lb.services.lookup(vip, l4.protocol) else {
            let src = Endpoint::new(l4.key.src, l4.key.src_port);
            if self.lb.services.is_nat_real_server(src, l4.protocol) {
                // A reply from a real server for a connection we do not
                // know (expired, or from before a restart).
                return Err(DropReason::NoConnection);
            }
            // A VIP's port without a service is no service either.
            return Err(DropReason::NoService);
        };
        if l4.protocol == Protocol::Tcp && !l4.flags.is_bare_syn() {
            return Err(DropReason::NoConnection);
        }
        if self.lb.services.is_draining(vs) {
            // Removed by a reload: its connections live on, no new ones.
            return Err(DropReason::NoService);
        }
        let rs = self.schedule(vs, l4.key.src, l4.key.src_port, now)?;
        let service = self.lb.services.get(vs);
        let real = self
            .lb
            .services
            .real_endpoint(vs, rs)
            .ok_or(DropReason::NoRealServer)?;
        let forward = service.forward;
        let reply = match forward {
            // Replies come from the real server to the client.
            ForwardMethod::Nat => FlowKey::new(
                real.ip,
                real.port,
                l4.key.src,
                l4.key.src_port,
                l4.key.proto,
            ),
            // Replies bypass us; the reply key is only a second name for
            // the connection (what a reply would look like).
            ForwardMethod::Dr | ForwardMethod::Tun => l4.key.reversed(),
        };
        let mut init = ConnInit::new(vs, rs);
        init.input_only = forward != ForwardMethod::Nat;
        let counters = &mut self.lb.counters;
        let id = match self
            .lb
            .conns
            .insert(l4.key, reply, init, now, |c| forget(counters, c))
        {
            Ok(id) => id,
            Err(InsertError::Full) => return Err(DropReason::TableFull),
            Err(InsertError::Exists | InsertError::SameKeys) => return Err(DropReason::Malformed),
        };
        let active = self.lb.conns.get(id).is_active();
        if let Some(c) = self
            .lb
            .counters
            .get_mut(usize::from(vs))
            .and_then(|v| v.get_mut(usize::from(rs)))
        {
            c.conns += 1;
            if active {
                c.active += 1;
            } else {
                c.inactive += 1;
            }
        }
        self.stats.conns_created += 1;
        Ok((id, Direction::Original))
    }

    /// Picks a real server for a new flow from `client`: the persistence
    /// template if one lives, else the service's scheduler.
    fn schedule(
        &mut self,
        vs: ServiceId,
        client: Ipv4Addr,
        client_port: u16,
        now: u64,
    ) -> Result<u16, DropReason> {
        let service = self.lb.services.get(vs);
        let persistence_ns = service.persistence.map(|d| d.as_nanos() as u64);
        if let Some(timeout) = persistence_ns {
            if let Some(rs) = self.lb.persist.lookup(client, vs, now, timeout) {
                if self.lb.effective_weight(vs, rs) > 0 {
                    return Ok(rs);
                }
            }
        }
        let mut candidates = std::mem::take(&mut self.lb.candidates);
        candidates.clear();
        let counters = &self.lb.counters[usize::from(vs)];
        candidates.extend(
            (0..service.real_servers.len())
                .zip(counters)
                .map(|(r, c)| Candidate {
                    weight: self.lb.effective_weight(vs, r as u16),
                    active: c.active,
                    inactive: c.inactive,
                }),
        );
        self.lb.candidates = candidates;
        let flow = FlowHashInput {
            client,
            client_port,
        };
        let rs = match self.lb.scheds[usize::from(vs)].pick(&self.lb.candidates, &flow) {
            Some(rs) => rs as u16,
            // Every server down or drained: the sorry server, if any.
            None if service.sorry_server.is_some() => return Ok(SORRY_SERVER),
            None => return Err(DropReason::NoRealServer),
        };
        if let Some(timeout) = persistence_ns {
            // A full template table only costs stickiness, not the flow.
            let _ = self.lb.persist.insert(client, vs, rs, now, timeout);
        }
        Ok(rs)
    }

    /// Answers the TCP segment at `l3` with a reset from its destination,
    /// routed back to its source.
    fn reset<O: Output<F>>(
        &mut self,
        l3: usize,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let client = ipv4::Packet::new_unchecked(&frame.data()[l3..]).src_addr();
        let len = rst::answer_with_reset(&mut frame.data_mut()[l3..]);
        frame.truncate(l3 + len);
        let hop = self.routes.lookup(client).ok_or(DropReason::NoRoute)?;
        self.stats.resets_sent += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// Looks up the route to `dst` and sends the frame to its next hop.
    fn route_and_send<O: Output<F>>(
        &mut self,
        dst: Ipv4Addr,
        frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop = self.routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        self.stats.forwarded += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// TUN: wraps the packet at `l3` in an IPIP header to `real` and sends
    /// it; a packet too big for the outgoing MTU gets ICMP "fragmentation
    /// needed" back to its sender instead.
    fn tunnel<O: Output<F>>(
        &mut self,
        l3: usize,
        real: Ipv4Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let hop = self.routes.lookup(real).ok_or(DropReason::NoRoute)?;
        let mtu = self.ports[usize::from(hop.port)].mtu;
        let too_big = tun::check_fits(&frame.data()[l3..], mtu).is_err();
        if too_big && tun::dont_fragment(&frame.data()[l3..]) {
            let inner_mtu = mtu.saturating_sub(tun::OVERHEAD as u16);
            return self.frag_needed(l3, inner_mtu, frame, now, out);
        }
        if !frame.prepend(tun::OVERHEAD) {
            return Err(DropReason::TooBig);
        }
        let ident = self.next_ident();
        let data = frame.data_mut();
        // The link-layer header moves to the new front.
        data.copy_within(tun::OVERHEAD..tun::OVERHEAD + l3, 0);
        tun::encapsulate(&mut data[l3..], hop.src, real, ident);
        self.stats.forwarded += 1;
        if too_big {
            return self.send_fragmented(l3, mtu, hop.port, hop.address, frame, now, out);
        }
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// Sends an encapsulated packet too big for `mtu` (inner DF clear) as
    /// outer IPv4 fragments: the first in the received buffer, the rest in
    /// buffers from the pool.
    #[allow(clippy::too_many_arguments)]
    fn send_fragmented<O: Output<F>>(
        &mut self,
        l3: usize,
        mtu: u16,
        port: u16,
        next_hop: Ipv4Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let chunk = tun::fragment_payload(mtu);
        let payload = frame.data().len() - l3 - tun::OVERHEAD;
        if chunk == 0 {
            return Err(DropReason::TooBig);
        }
        let mut offset = chunk;
        while offset < payload {
            let len = chunk.min(payload - offset);
            let Some(mut piece) = out.alloc(l3 + tun::OVERHEAD + len) else {
                return Err(DropReason::TooBig);
            };
            {
                let src = frame.data();
                let dst = piece.data_mut();
                dst[..l3 + tun::OVERHEAD].copy_from_slice(&src[..l3 + tun::OVERHEAD]);
                let start = l3 + tun::OVERHEAD + offset;
                dst[l3 + tun::OVERHEAD..].copy_from_slice(&src[start..start + len]);
                tun::set_fragment(&mut dst[l3..], len, offset, offset + len < payload);
            }
            self.send_to(usize::from(port), next_hop, piece, now, out);
            offset += len;
        }
        tun::set_fragment(&mut frame.data_mut()[l3..], chunk, 0, true);
        frame.truncate(l3 + tun::OVERHEAD + chunk);
        self.send_to(usize::from(port), next_hop, frame, now, out);
        Ok(())
    }

    /// Turns the packet at `l3` into an ICMP "fragmentation needed" to its
    /// sender, quoting its start, and routes that back.
    fn frag_needed<O: Output<F>>(
        &mut self,
        l3: usize,
        mtu: u16,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let client = ipv4::Packet::new_unchecked(&frame.data()[l3..]).src_addr();
        let hop = self.routes.lookup(client).ok_or(DropReason::NoRoute)?;
        let quoted = (frame.data().len() - l3).min(tun::MAX_QUOTE);
        if !frame.prepend(tun::ICMP_ERROR_OVERHEAD) {
            return Err(DropReason::TooBig);
        }
        frame.truncate(tun::ICMP_ERROR_OVERHEAD + l3 + quoted);
        let ident = self.next_ident();
        let data = frame.data_mut();
        data.copy_within(tun::ICMP_ERROR_OVERHEAD..tun::ICMP_ERROR_OVERHEAD + l3, 0);
        tun::frag_needed(&mut data[l3..], hop.src, mtu, ident);
        self.stats.frag_needed_sent += 1;
        self.send_to(usize::from(hop.port), hop.address, frame, now, out);
        Ok(())
    }

    /// ICMP not addressed to the balancer: errors that quote a tracked
    /// connection are passed on, translated for NAT; the rest is dropped.
    fn icmp_error<O: Output<F>>(
        &mut self,
        l3: usize,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) -> Result<(), DropReason> {
        let data = &frame.data()[l3..];
        let ip = ipv4::Packet::new_unchecked(data);
        let dst_is_vip = self.lb.services.is_vip(ip.dst_addr());
        let msg = icmp::Packet::new_checked(ip.payload()).map_err(|_| DropReason::Truncated)?;
        if !msg.msg_type().is_error() {
            return Err(if dst_is_vip {
                DropReason::UnsupportedProtocol
            } else {
                DropReason::NoService
            });
        }
        if ip.is_fragment() {
            return Err(DropReason::Fragment);
        }
        if !msg.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        let quoted =
            ipv4::Packet::new_checked_quoted(msg.data()).map_err(|_| DropReason::Malformed)?;
        let proto = u8::from(quoted.protocol());
        if Protocol::from_number(proto).is_none() {
            return Err(DropReason::NoService);
        }
        let qp = quoted.payload().get(..4).ok_or(DropReason::Malformed)?;
        let (qsport, qdport) = (
            u16::from_be_bytes([qp[0], qp[1]]),
            u16::from_be_bytes([qp[2], qp[3]]),
        );
        // The quoted packet went the other way: its reversed tuple is the
        // key this error travels with.
        let key = FlowKey::new(quoted.dst_addr(), qdport, quoted.src_addr(), qsport, proto);
        let Some((id, dir)) = self.lb.conns.peek(&key, now) else {
            return Err(DropReason::NoConnection);
        };
        let c = self.lb.conns.get(id);
        let service = self.lb.services.get(c.vs);
        let real = self
            .lb
            .services
            .real_endpoint(c.vs, c.rs)
            .ok_or(DropReason::NoConnection)?;
        let vip = service.key.vip;
        let method = service.forward;
        self.stats.icmp_errors_forwarded += 1;
        match (dir, method) {
            // About a packet we forwarded to the real server: back to the
            // client, as if the VIP had answered.
            (Direction::Reply, _) => {
                nat::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (nat::Side::Src, vip.ip),
                    (nat::Side::Dst, vip),
                )
                .map_err(xmit_drop)?;
                let client = key.dst;
                self.route_and_send(client, frame, now, out)
            }
            // About a reply: on to the real server that sent it.
            (Direction::Original, ForwardMethod::Nat) => {
                nat::translate_icmp_error(
                    &mut frame.data_mut()[l3..],
                    (nat::Side::Dst, real.ip),
                    (nat::Side::Src, real),
                )
                .map_err(xmit_drop)?;
                self.route_and_send(real.ip, frame, now, out)
            }
            (Direction::Original, ForwardMethod::Dr) => {
                nat::decrement_ttl(&mut frame.data_mut()[l3..]).map_err(xmit_drop)?;
                self.route_and_send(real.ip, frame, now, out)
            }
            (Direction::Original, ForwardMethod::Tun) => self.tunnel(l3, real.ip, frame, now, out),
        }
    }
}

/// The worker that owns the flows of client `ip` among `workers`. By
/// address only (not port), so every connection of one client meets the
/// same persistence templates and scheduler state, as persistence needs.
pub fn flow_owner(ip: Ipv4Addr, workers: usize) -> usize {
    let h = crate::lb::sched::hash::mix64(u64::from(u32::from(ip)));
    (h % workers as u64) as usize
}

/// Reads ports and flags; the transport header must be whole.
fn read_l4(ip: &ipv4::Packet<&[u8]>, protocol: Protocol) -> Result<L4, DropReason> {
    let payload = ip.payload();
    let (sport, dport, flags) = match protocol {
        Protocol::Tcp => {
            let t = tcp::Packet::new_checked(payload).map_err(wire_err)?;
            (t.src_port(), t.dst_port(), TcpFlags(t.flags().0))
        }
        Protocol::Udp => {
            let u = udp::Packet::new_checked(payload).map_err(wire_err)?;
            (u.src_port(), u.dst_port(), TcpFlags::NONE)
        }
    };
    Ok(L4 {
        key: FlowKey::new(
            ip.src_addr(),
            sport,
            ip.dst_addr(),
            dport,
            protocol.number(),
        ),
        flags,
        protocol,
    })
}

fn wire_err(e: crate::wire::Error) -> DropReason {
    match e {
        crate::wire::Error::Truncated => DropReason::Truncated,
        crate::wire::Error::Malformed => DropReason::Malformed,
    }
}

fn xmit_drop(e: XmitError) -> DropReason {
    match e {
        XmitError::TtlExpired => DropReason::TtlExpired,
        XmitError::Unsupported => DropReason::UnsupportedProtocol,
        XmitError::TooBig { .. } => DropReason::TooBig,
    }
}
