//! What a worker does with one frame.
//!
//! The appliance's L2/L3 basics (answer ARP for own addresses and for VIPs
//! on their connected interface, learn neighbours, answer ICMP echo to own
//! addresses and VIPs) and the load balancer's path (`forward`: find or
//! create the connection, rewrite for NAT, DR or TUN, route and send).
//! Every frame is either sent, parked until its next hop resolves, or
//! dropped with a named, counted reason. Replies and forwarded packets are
//! rewritten in place in the received buffer, so the packet path allocates
//! nothing; frames rvs originates (ARP requests) come from the pool.
//! Time comes in as `now` (nanoseconds).
//!
//! A poll's frames go through three stages, in windows of up to
//! [`WINDOW`] frames across all ports ([`Worker::handle_bursts`]): parse
//! each frame once and prefetch its connection's index line; prefetch the
//! entries those lines point at; then decide each frame in order from its
//! parsed value. The misses of a window overlap instead of being paid one
//! after another, and every frame (tests and the fuzzer included) takes
//! this one path.
//!
//! The policy (which connection, which real server) is the balancer's
//! (`lb::balancer`), asked once per TCP/UDP packet; the worker keeps I/O,
//! ARP, ICMP, the rewrite, the route and the send.

mod carry;
mod edge6;
mod forward;
mod forward6;
mod nat64;
pub(crate) mod parse;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_control;
#[cfg(test)]
mod tests_lb;
#[cfg(test)]
mod tests_lb6;
#[cfg(test)]
mod tests_nat64;
#[cfg(test)]
mod tests_prefetch6;
#[cfg(test)]
mod tests_tun46;
#[cfg(test)]
mod tests_v6;
mod tun46;

pub use edge6::{Ipv6Setup, ICMPV6_ERRORS_PER_SEC};

use super::io::{Frame, Output};
use super::pending::{Parked, PendingQueue};
use super::stats::{DropReason, WorkerStats};
use crate::lb::balancer::{Balancer, BalancerSetup};
use crate::lb::frag::{self, FragTable};
use crate::lb::service::ServiceTable;
use crate::lb::tcp_state::Timeouts;
use crate::net::neigh::NeighTable;
use crate::net::route::RouteTable;
use crate::net::rss::RssModel;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{arp, icmp, ipv4, Ipv4Cidr, Ipv6Cidr, MacAddr};
use edge6::Edge6;
use parse::{wire_drop, Ipv4Info, Ipv6Info, Parsed};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Frames parsed and prefetched together before any is decided: up to
/// two bursts of 32 (measured on the earlier table: 64 beat 32 by ~8 % at
/// 1M connections, 128 lost to 64, its lines no longer fitting L1).
pub const WINDOW: usize = 64;

/// Connections in the table from which the window's prefetch stages pay.
const WORTH_PREFETCHING: usize = 4096;

/// TTL of packets rvs originates (echo replies), as Linux does.
const REPLY_TTL: u8 = 64;
/// Unresolved next hops a worker parks packets for at once.
const PENDING_ADDRESSES: usize = 64;
/// The FullNAT local addresses worker `index` of `workers` owns: those
/// the RSS model hashes to its queue (replies to a local address are
/// hashed on their destination, `net::rss`).
fn local_owner(workers: usize, index: usize) -> crate::lb::balancer::LocalOwner {
    let rss = RssModel::new(workers);
    Arc::new(move |a| workers <= 1 || rss.worker_of(a) == index)
}

/// The IPv6 FullNAT local addresses worker `index` of `workers` owns:
/// those the RSS model's IPv6 hash gives its queue (`worker_of6`).
fn local_owner6(workers: usize, index: usize) -> crate::lb::balancer::LocalOwner6 {
    let rss = RssModel::new(workers);
    Arc::new(move |a| workers <= 1 || rss.worker_of6(a) == index)
}

/// Length of an Ethernet ARP frame rvs builds (padded to the minimum).
const ARP_FRAME_LEN: usize = 60;
/// Client segments the SYN proxy keeps at once until their real server
/// answers (see `forward`).
const KEPT_SEGMENTS: usize = 64;
/// How long a kept segment waits for its real server's SYN-ACK.
const KEPT_MAX_AGE_NS: u64 = 1_000_000_000;

/// A client segment of a SYN-proxied connection whose real server has not
/// answered yet, kept to be sent on once it has.
#[derive(Debug)]
struct KeptSegment<F> {
    conn: crate::lb::conn::ConnId,
    port: usize,
    since: u64,
    frame: F,
}

/// One port as a worker sees it.
#[derive(Clone, Debug)]
pub struct PortSetup {
    /// The port's MAC address (replies come from it; unicast to others is dropped).
    pub mac: MacAddr,
    /// The port's own addresses with their connected prefixes.
    pub addresses: Vec<Ipv4Cidr>,
    /// The port's own IPv6 addresses with their connected prefixes
    /// (neighbour solicitations and echo answered for them).
    pub addresses6: Vec<Ipv6Cidr>,
    /// Largest IPv4 packet the port sends (TUN checks encapsulated size).
    pub mtu: u16,
}

/// Everything a worker needs to start; identical for every worker.
#[derive(Clone, Debug)]
pub struct WorkerSetup {
    /// Ports in config order (index = port number in [`super::io::PacketIo`]).
    pub ports: Vec<PortSetup>,
    /// Static neighbours: (address, MAC, port).
    pub static_neighbors: Vec<(Ipv4Addr, MacAddr, u16)>,
    /// Connected subnets and static routes.
    pub routes: RouteTable,
    /// Virtual services (shared, immutable).
    pub services: Arc<ServiceTable>,
    /// Connection timeouts by state.
    pub timeouts: Timeouts,
    /// Connections this worker can track (`conn_table_size`).
    pub conn_capacity: usize,
    /// Learned neighbours this worker can hold.
    pub neigh_capacity: usize,
    /// How long a learned neighbour stays valid without being refreshed.
    pub neigh_max_age_ns: u64,
    /// Seed for the connection table's hash and the schedulers (tests pass
    /// a fixed one; rvsd a random one).
    pub seed: u64,
    /// This worker's index among all workers (`0..worker_count`).
    pub worker_index: usize,
    /// Own addresses that move with the VIPs between an HA pair (e.g. the
    /// inside gateway NAT real servers route through): answered only
    /// while master.
    pub floating: Vec<Ipv4Addr>,
    /// Whether this balancer starts as master (standalone: true).
    pub master: bool,
    /// IPv6 routes, static neighbours and VIPs (empty without IPv6).
    pub ipv6: Ipv6Setup,
    /// Number of workers: a connection is owned by the worker the RSS
    /// model maps its client to (`net::rss`); others hand its packets over.
    pub worker_count: usize,
    /// Mid-flow TCP segments of `sh`/`mh` services open connections
    /// (`Balancer::set_midflow`): on for a `[cluster]` node, off
    /// otherwise.
    pub midflow: bool,
}

impl WorkerSetup {
    /// A setup with only ports (no routes beyond the connected subnets, no
    /// services): what the foundation's tests and benchmarks need.
    pub fn ports_only(ports: Vec<PortSetup>) -> WorkerSetup {
        let connected: Vec<(u16, Ipv4Cidr)> = ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.addresses.iter().map(move |a| (i as u16, *a)))
            .collect();
        let connected6: Vec<(u16, Ipv6Cidr)> = ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.addresses6.iter().map(move |a| (i as u16, *a)))
            .collect();
        WorkerSetup {
            routes: RouteTable::new(&connected, &[]),
            ports,
            static_neighbors: Vec::new(),
            services: Arc::new(ServiceTable::default()),
            timeouts: Timeouts::default(),
            conn_capacity: 1024,
            neigh_capacity: 1024,
            neigh_max_age_ns: 300_000_000_000,
            seed: 0x5eed,
            worker_index: 0,
            worker_count: 1,
            midflow: false,
            floating: Vec::new(),
            master: true,
            ipv6: Ipv6Setup {
                routes: crate::net::route::RouteTable6::new(&connected6, &[]),
                ..Ipv6Setup::default()
            },
        }
    }
}

/// What the control thread tells a worker, between bursts.
#[derive(Debug)]
pub enum Command {
    /// A new service snapshot: a reload (indexes stable), or a health or
    /// weight change (the snapshot carries every server's effective
    /// weight; workers keep no copy of health or weights).
    Services(Arc<ServiceTable>),
    /// Becomes master (answers ARP and ping for the VIPs and floating
    /// addresses) or backup (does not).
    HaRole {
        /// True for master.
        master: bool,
    },
    /// Send one round of gratuitous ARPs for the VIPs and floating
    /// addresses (the control thread repeats it, spaced).
    Garp,
    /// Connections the active balancer reported, to install (standby).
    InstallConns(Vec<super::sync::SyncEvent>),
    /// IPv6 connections the active balancer reported, to install
    /// (standby).
    InstallConns6(Vec<super::sync::SyncEvent6>),
    /// Connections a peer reported ended (REMOVED records), to remove
    /// (`Balancer::remove_synced`: in a cluster only those not carried
    /// here).
    RemoveConns(Vec<super::sync::SyncEvent>),
    /// The IPv6 twin of `RemoveConns`.
    RemoveConns6(Vec<super::sync::SyncEvent6>),
    /// Send every live connection of both tables back as sync events (a
    /// full resync for a standby that just started).
    DumpSync {
        /// Where to send them.
        reply: std::sync::mpsc::Sender<Vec<super::sync::SyncReport>>,
    },
    /// Send up to `limit` connections back (`rvsadm conns`).
    DumpConns {
        /// Most connections to send.
        limit: usize,
        /// Where to send them.
        reply: std::sync::mpsc::Sender<Vec<ConnInfo>>,
    },
}

pub use crate::lb::balancer::ConnInfo;

/// What the balancer's own handling decided for a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Rewritten in place; send it on this port.
    Transmit(usize),
    /// Used up (an ARP reply that taught us a neighbour).
    Done,
    /// Dropped for this reason (counted by `handle`).
    Drop(DropReason),
}

/// One worker's state: owned by its lcore, never shared.
#[derive(Debug)]
pub struct Worker<F> {
    ports: Vec<PortSetup>,
    routes: RouteTable,
    neigh: NeighTable,
    pending: PendingQueue<F>,
    lb: Balancer,
    /// The parsed values of the current window's frames, in order
    /// (capacity [`WINDOW`], reserved at start).
    parsed: Vec<Parsed>,
    /// Identification of the next IPv4 packet rvs originates.
    ident: u16,
    /// Index of this worker, and how many there are.
    index: usize,
    workers: usize,
    /// Which worker owns a client: the NICs' RSS as rvs programs it.
    rss: RssModel,
    /// The frame being decided was handed over by another worker.
    from_peer: bool,
    /// Master of an HA pair (or standalone): answers ARP and ping for the
    /// VIPs and floating addresses. A backup does not.
    master: bool,
    floating: Vec<Ipv4Addr>,
    /// Every address of every port, flat: the per-packet "is it ours?"
    /// reads one short array instead of walking the ports.
    own: Vec<Ipv4Addr>,
    /// SYN proxy: client segments waiting for their real server's
    /// SYN-ACK (capacity [`KEPT_SEGMENTS`], reserved at start).
    kept: Vec<KeptSegment<F>>,
    /// IPv4 fragments: first fragments' decisions, and later fragments
    /// waiting for their first (fixed sizes, `lb::frag`).
    frags: FragTable<F>,
    /// The IPv6 twin of `frags` (`lb::frag6`).
    frags6: crate::lb::frag6::FragTable6<F>,
    /// IPv6 routes, neighbour cache and queue, own addresses and VIPs.
    v6: Edge6<F>,
    /// Counters, published by the poll loop.
    pub stats: WorkerStats,
}

impl<F: Frame> Worker<F> {
    /// A worker with empty tables sized by `setup`, plus its static
    /// neighbours; panics when the tables' memory cannot be had
    /// (`try_new` says why instead).
    pub fn new(setup: &WorkerSetup) -> Worker<F> {
        Worker::try_new(setup).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As `new`, or why the tables' memory could not be had (rvsd exits
    /// with the reason instead of aborting).
    pub fn try_new(setup: &WorkerSetup) -> Result<Worker<F>, String> {
        let mut neigh = NeighTable::new(setup.neigh_capacity, setup.neigh_max_age_ns);
        for &(ip, mac, port) in &setup.static_neighbors {
            neigh.insert_static(ip, mac, port);
        }
        Ok(Worker {
            ports: setup.ports.clone(),
            routes: setup.routes.clone(),
            neigh,
            pending: PendingQueue::new(PENDING_ADDRESSES),
            lb: Balancer::try_new(&BalancerSetup {
                services: setup.services.clone(),
                timeouts: setup.timeouts,
                conn_capacity: setup.conn_capacity,
                seed: setup.seed,
            })?
            .with_workers(setup.worker_count)
            .with_midflow(setup.midflow)
            .with_local_owner(local_owner(setup.worker_count, setup.worker_index))
            .with_local_owner6(local_owner6(setup.worker_count, setup.worker_index)),
            parsed: Vec::with_capacity(WINDOW),
            ident: (setup.seed as u16) | 1,
            index: setup.worker_index,
            workers: setup.worker_count.max(1),
            rss: RssModel::new(setup.worker_count),
            from_peer: false,
            master: setup.master,
            floating: setup.floating.clone(),
            own: setup
                .ports
                .iter()
                .flat_map(|p| p.addresses.iter().map(|a| a.addr()))
                .collect(),
            kept: Vec::with_capacity(KEPT_SEGMENTS),
            frags: FragTable::new(
                frag::DEFAULT_ENTRIES,
                frag::DEFAULT_QUEUE,
                frag::LIFETIME_NS,
                setup.seed,
            ),
            frags6: FragTable::new(
                frag::DEFAULT_ENTRIES,
                frag::DEFAULT_QUEUE,
                frag::LIFETIME_NS,
                setup.seed ^ 0x6,
            ),
            v6: Edge6::new(
                &setup.ipv6,
                setup
                    .ports
                    .iter()
                    .flat_map(|p| p.addresses6.iter().map(|a| a.addr()))
                    .collect(),
                setup.neigh_capacity,
                setup.neigh_max_age_ns,
                PENDING_ADDRESSES,
            ),
            stats: WorkerStats::default(),
        })
        .map(|mut w: Worker<F>| {
            // The IPv6 VIPs of the services are answered by ND and echo,
            // as `answers_arp_for` does for IPv4 VIPs.
            w.add_service_vips6(&setup.services);
            w
        })
    }

    /// Adds the IPv6 VIPs of `services` to those ND and echo answer for.
    fn add_service_vips6(&mut self, services: &ServiceTable) {
        for &vip in services.vips6() {
            if !self.v6.vips.contains(&vip) {
                self.v6.vips.push(vip);
            }
        }
    }

    /// Applies a command from the control thread (between bursts). Some
    /// send frames (gratuitous ARPs) through `out`.
    pub fn command<O: Output<F>>(&mut self, cmd: Command, now: u64, out: &mut O) {
        match cmd {
            Command::HaRole { master } => {
                self.master = master;
                self.lb.set_sync_active(master);
            }
            Command::InstallConns(events) => {
                self.stats.conns_synced += self.lb.install(&events, now);
            }
            Command::InstallConns6(events) => {
                self.stats.conns_synced += self.lb.install6(&events, now);
            }
            Command::RemoveConns(events) => {
                self.stats.conns_sync_removed += self.lb.remove_synced(&events, now);
            }
            Command::RemoveConns6(events) => {
                self.stats.conns_sync_removed += self.lb.remove_synced6(&events, now);
            }
            Command::DumpSync { reply } => {
                let v4 = self.lb.sync_dump(now).into_iter().map(Into::into);
                let v6 = self.lb.sync_dump6(now).into_iter().map(Into::into);
                let _ = reply.send(v4.chain(v6).collect());
            }
            Command::Garp => self.send_garps(out),
            Command::Services(table) => {
                // The VIPs answered follow the services (a reload may add
                // or remove IPv6 VIPs).
                let old: Vec<std::net::Ipv6Addr> = self.lb.services().vips6().to_vec();
                self.v6.vips.retain(|v| !old.contains(v));
                self.add_service_vips6(&table);
                self.lb.set_services(table);
            }
            Command::DumpConns { limit, reply } => {
                let _ = reply.send(self.lb.dump(now, limit));
            }
        }
    }

    /// Gives the worker its end of the sync circulation (HA configured): it
    /// reports its connections while master.
    pub fn set_sync(&mut self, queue: super::sync::SyncQueue) {
        self.lb.set_sync(queue, self.master);
    }

    /// Gives the worker its end of the sync circulation as a `[cluster]`
    /// node: it answers ARP and ICMP as a standalone balancer (no HA role
    /// gates it), always reports its local connections, and installs its
    /// peers' under the cluster rules (`Balancer::set_cluster`).
    pub fn set_cluster_sync(&mut self, queue: super::sync::SyncQueue) {
        self.master = true;
        self.lb.set_sync(queue, true);
        self.lb.set_cluster(true);
    }

    /// Publishes every counter to `cell` for the control thread.
    pub fn publish(&mut self, cell: &super::stats::StatsCell) {
        self.stats.sync_lost = self.lb.sync_lost();
        self.stats.midflow_scheduled = self.lb.midflow_scheduled();
        self.stats.local_conns = self.lb.local_conns() as u64;
        self.stats.sync_conflicts = self.lb.sync_conflicts();
        let evicted = self.lb.conns().evictions();
        self.stats.conns_evicted_unproven_tcp = evicted.tcp;
        self.stats.conns_evicted_udp = evicted.udp;
        cell.publish(&self.stats);
        // Both tables: the IPv6 one counts once an IPv6 service made it.
        let (conns, conn_capacity) = self.lb.conn_totals();
        cell.publish_lb(self.lb.counters().iter(), conns);
        cell.publish_fill(&super::stats::TableFill {
            conn_capacity: conn_capacity as u64,
            neighbor_queue_frames: self.pending.frames() as u64,
            neighbor_queue_capacity: self.pending.frame_capacity() as u64,
            fragment_queue_frames: self.frags.waiting() as u64,
            fragment_queue_capacity: self.frags.queue_capacity() as u64,
        });
        cell.publish_refused(self.lb.refused());
        cell.publish_overloaded(self.lb.overloaded());
        cell.publish_local(self.lb.local_usage());
    }

    /// Per real server counters of this worker (services in order).
    pub fn real_server_counters(&self) -> impl Iterator<Item = &super::stats::RealServerCounters> {
        self.lb.counters().iter()
    }

    /// This worker's balancer (connection table, counters), for
    /// inspection and figures.
    pub fn balancer(&self) -> &Balancer {
        &self.lb
    }

    /// The neighbour table, for inspection.
    pub fn neighbors(&self) -> &NeighTable {
        &self.neigh
    }

    /// Decides one frame received on `port`: sends it (rewritten) through
    /// `out`, parks it, or drops it. Counts the frame and any drop. The
    /// same path as [`Worker::handle_bursts`], for a window of one.
    pub fn handle<O: Output<F>>(&mut self, port: usize, frame: F, now: u64, out: &mut O) {
        let parsed = parse::parse(frame.data(), &self.lb);
        self.received(port, frame, &parsed, now, out);
    }

    /// Decides one poll's bursts, `bursts[port]` received on `port`, in
    /// order, leaving them empty: the poll loop's entry point. Frames go in
    /// windows of up to [`WINDOW`] across the ports (a two-armed balancer
    /// overlaps its requests and replies): each frame is parsed once and
    /// its connection's index line prefetched, then the entries those
    /// lines point at, then each frame is decided from its parsed value.
    // Not inlined: one call per poll costs nothing, and profiles
    // (perf, callgrind) can then name and toggle on the worker's part.
    #[inline(never)]
    pub fn handle_bursts<O: Output<F>>(&mut self, bursts: &mut [Vec<F>], now: u64, out: &mut O) {
        let mut parsed = std::mem::take(&mut self.parsed);
        // Below this many connections the table's lines stay in the core's
        // caches, and the prefetch stages would only cost time (measured:
        // 13 % of ICMP echo's rate, and of NAT's at 1K connections). Each
        // family's table on its own count.
        let tables = Prefetch {
            v4: self.lb.conn_count() >= WORTH_PREFETCHING,
            v6: self.lb.conn_count6() >= WORTH_PREFETCHING,
        };
        let prefetch = tables.v4 || tables.v6;
        let mut port = 0;
        while port < bursts.len() {
            // A window: the whole bursts from `port` on that fit, or the
            // first WINDOW frames of a burst larger than that. Frames stay
            // in their bursts; only their parsed values are kept aside.
            parsed.clear();
            let mut end = port;
            let mut partial = 0;
            while end < bursts.len() {
                let burst = &bursts[end];
                let take = if parsed.len() + burst.len() <= WINDOW {
                    burst.len()
                } else if parsed.is_empty() {
                    WINDOW
                } else {
                    break;
                };
                for frame in &burst[..take] {
                    let p = parse::parse(frame.data(), &self.lb);
                    if prefetch {
                        match flow_hash(&p, tables) {
                            Some(Table::V4(hash)) => self.lb.prefetch_index(hash),
                            Some(Table::V6(hash)) => self.lb.prefetch_index6(hash),
                            None => {}
                        }
                    }
                    parsed.push(p);
                }
                if take < burst.len() {
                    partial = take;
                    break;
                }
                end += 1;
            }
            if prefetch {
                for p in &parsed {
                    match flow_hash(p, tables) {
                        Some(Table::V4(hash)) => self.lb.prefetch_entry(hash),
                        Some(Table::V6(hash)) => self.lb.prefetch_entry6(hash),
                        None => {}
                    }
                }
            }
            let mut next = parsed.iter();
            for (p, burst) in bursts.iter_mut().enumerate().take(end).skip(port) {
                for frame in burst.drain(..) {
                    if let Some(info) = next.next() {
                        self.received(p, frame, info, now, out);
                    }
                }
            }
            if partial > 0 {
                for frame in bursts[end].drain(..partial) {
                    if let Some(info) = next.next() {
                        self.received(end, frame, info, now, out);
                    }
                }
            }
            port = end;
        }
        self.parsed = parsed;
    }

    /// Counts a frame received from the device and decides it.
    #[inline(always)]
    fn received<O: Output<F>>(
        &mut self,
        port: usize,
        frame: F,
        parsed: &Parsed,
        now: u64,
        out: &mut O,
    ) {
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += frame.data().len() as u64;
        let neighbor_discovery = match parsed {
            Parsed::Arp { .. } => true,
            Parsed::Ipv6(ip) => edge6::is_neighbor_discovery(ip),
            _ => false,
        };
        if self.workers > 1 && neighbor_discovery {
            self.share_arp(port, &frame, out);
        }
        self.decide(port, frame, parsed, now, out, false);
    }

    /// Like [`Worker::handle_bursts`], for frames other workers handed over
    /// that arrived on `port`.
    pub fn handle_burst_from_peer<O: Output<F>>(
        &mut self,
        port: usize,
        frames: &mut Vec<F>,
        now: u64,
        out: &mut O,
    ) {
        for frame in frames.drain(..) {
            self.handle_from_peer(port, frame, now, out);
        }
    }

    /// Decides a frame another worker handed over: a packet of a
    /// connection this worker owns, or a copy of an ARP packet to learn
    /// from (never answered twice). Counted where it was received.
    pub fn handle_from_peer<O: Output<F>>(&mut self, port: usize, frame: F, now: u64, out: &mut O) {
        let parsed = parse::parse(frame.data(), &self.lb);
        self.decide(port, frame, &parsed, now, out, true);
    }

    /// Gives every other worker a copy of an ARP packet, so all of them
    /// learn the neighbours (each has its own table, and a device may
    /// deliver a neighbour's ARP replies to any one of them).
    fn share_arp<O: Output<F>>(&mut self, port: usize, frame: &F, out: &mut O) {
        let len = frame.data().len();
        for w in (0..self.workers).filter(|&w| w != self.index) {
            let Some(mut copy) = out.alloc(len) else {
                return;
            };
            copy.data_mut().copy_from_slice(frame.data());
            out.redirect(w, port, copy);
        }
    }

    #[inline(always)]
    fn decide<O: Output<F>>(
        &mut self,
        port: usize,
        mut frame: F,
        parsed: &Parsed,
        now: u64,
        out: &mut O,
        from_peer: bool,
    ) {
        self.from_peer = from_peer;
        let verdict = match self.classify(port, &mut frame, parsed, now, out) {
            Step::Decided(v) => v,
            Step::Forward(ip) => {
                // Not for the balancer itself: the load balancer's path,
                // which sends, parks or drops (and counts) the frame.
                self.forward(port, ip, frame, now, out);
                return;
            }
            Step::Forward6(ip) => {
                self.forward_ipv6(port, ip, frame, now, out);
                return;
            }
        };
        match verdict {
            Verdict::Transmit(p) => out.send(p, frame),
            Verdict::Done => {}
            Verdict::Drop(reason) => self.stats.drop(reason),
        }
    }

    /// Timed chores between bursts: re-ask silent neighbours, give up on
    /// those that stay silent, expire connections a little at a time.
    pub fn tick<O: Output<F>>(&mut self, now: u64, out: &mut O) {
        if !self.pending.is_empty() {
            let mut ask = [(Ipv4Addr::UNSPECIFIED, 0u16); 8];
            let mut n = 0;
            let mut given_up = 0;
            self.pending.tick(
                now,
                |ip, port| {
                    if n < ask.len() {
                        ask[n] = (ip, port);
                        n += 1;
                    }
                },
                |_frame| given_up += 1,
            );
            for _ in 0..given_up {
                self.stats.drop(DropReason::NeighborUnresolved);
            }
            for &(ip, port) in &ask[..n] {
                self.send_arp_request(usize::from(port), ip, out);
            }
        }
        if !self.kept.is_empty() {
            let before = self.kept.len();
            self.kept
                .retain(|k| now.saturating_sub(k.since) < KEPT_MAX_AGE_NS);
            for _ in self.kept.len()..before {
                self.stats.drop(DropReason::SynProxyUnanswered);
            }
        }
        self.tick6(now, out);
        let expired =
            expire_fragments(&mut self.frags, now) + expire_fragments(&mut self.frags6, now);
        for _ in 0..expired {
            self.stats.drop(DropReason::FragmentUnmatched);
        }
        self.lb.tick(now);
    }

    /// Decides what the balancer itself does with a frame (ARP, echo,
    /// drops), or that it is for the forwarding path.
    #[inline(always)]
    fn classify<'p, O: Output<F>>(
        &mut self,
        port: usize,
        frame: &mut F,
        parsed: &'p Parsed,
        now: u64,
        out: &mut O,
    ) -> Step<'p> {
        let Some(port_mac) = self.ports.get(port).map(|p| p.mac) else {
            return Step::Decided(Verdict::Drop(DropReason::BadPort));
        };
        if let Parsed::Runt(reason) = parsed {
            return Step::Decided(Verdict::Drop(*reason));
        }
        let data = frame.data_mut();
        // The parse saw a whole Ethernet header.
        let eth = ethernet::Frame::new_unchecked(&*data);
        let dst = eth.dst_addr();
        if dst.is_unicast() && dst != port_mac {
            return Step::Decided(Verdict::Drop(DropReason::OtherMac));
        }
        if eth.src_addr().is_multicast() {
            return Step::Decided(Verdict::Drop(DropReason::Malformed));
        }
        let verdict = match parsed {
            Parsed::Runt(reason) | Parsed::Bad(reason) => Verdict::Drop(*reason),
            Parsed::OtherEthertype => Verdict::Drop(DropReason::UnsupportedEthertype),
            Parsed::Arp { l3 } => self.arp(port, port_mac, &mut data[usize::from(*l3)..], now, out),
            Parsed::Ipv4(ip) => match self.ipv4_local(port, ip, &mut data[usize::from(ip.l3)..]) {
                Local::Verdict(v) => v,
                Local::NotLocal => return Step::Forward(ip),
            },
            Parsed::Ipv6(ip) => match self.ipv6_local(port, port_mac, frame, ip, now, out) {
                Local::Verdict(v) => v,
                Local::NotLocal => return Step::Forward6(ip),
            },
        };
        if let Verdict::Transmit(_) = verdict {
            // Replies go back where the request came from, from our MAC;
            // VLAN tags stay in place.
            let mut eth = ethernet::Frame::new_unchecked(frame.data_mut());
            let requester = eth.src_addr();
            eth.set_dst_addr(requester);
            eth.set_src_addr(port_mac);
        }
        Step::Decided(verdict)
    }

    /// True when `ip` is one of the addresses of `port`.
    fn owned_by_port(&self, port: usize, ip: Ipv4Addr) -> bool {
        self.ports[port].addresses.iter().any(|a| a.addr() == ip)
    }

    /// True when `ip` is one of our addresses on any port.
    fn owned(&self, ip: Ipv4Addr) -> bool {
        self.own.contains(&ip)
    }

    /// True when rvs answers ARP for `ip` on `port`: its own addresses
    /// there, and VIPs and FullNAT local addresses whose connected subnet
    /// is on that port.
    fn answers_arp_for(&self, port: usize, ip: Ipv4Addr) -> bool {
        let services = self.lb.services();
        let balanced = services.is_vip(ip) || services.is_local_address(ip);
        if !self.master && (self.floating.contains(&ip) || balanced) {
            return false;
        }
        self.owned_by_port(port, ip)
            || (balanced && self.routes.connected_port(ip) == Some(port as u16))
    }

    /// Broadcasts gratuitous ARP for every VIP (on the port of its
    /// connected subnet) and floating address, so switches and neighbours
    /// learn the new master's MAC at once.
    fn send_garps<O: Output<F>>(&mut self, out: &mut O) {
        let mut announce: Vec<(usize, Ipv4Addr)> = Vec::new();
        let services = self.lb.services();
        for &vip in services.vips().iter().chain(services.local_addresses()) {
            if let Some(port) = self.routes.connected_port(vip) {
                announce.push((usize::from(port), vip));
            }
        }
        for (port, p) in self.ports.iter().enumerate() {
            for a in &p.addresses {
                if self.floating.contains(&a.addr()) {
                    announce.push((port, a.addr()));
                }
            }
        }
        for (port, ip) in announce {
            self.send_arp(port, ip, ip, out);
        }
        self.announce6(out);
    }

    /// ARP: learn the sender when the packet is for us (or the sender is
    /// known), release packets waiting for it, and answer requests.
    fn arp<O: Output<F>>(
        &mut self,
        port: usize,
        port_mac: MacAddr,
        l3: &mut [u8],
        now: u64,
        out: &mut O,
    ) -> Verdict {
        let mut pkt = match arp::Packet::new_checked(l3) {
            Ok(p) => p,
            Err(e) => return Verdict::Drop(wire_drop(e)),
        };
        let op = pkt.operation();
        if !matches!(op, arp::Operation::Request | arp::Operation::Reply) {
            return Verdict::Drop(DropReason::Malformed);
        }
        let sender_ip = pkt.sender_proto_addr();
        let sender_mac = pkt.sender_hw_addr();
        let target_ip = pkt.target_proto_addr();
        let for_us = self.answers_arp_for(port, target_ip);

        // Never learn from probes (sender 0.0.0.0), multicast senders, or
        // someone claiming one of our own addresses.
        let learnable =
            !sender_ip.is_unspecified() && sender_mac.is_unicast() && !self.owned(sender_ip);
        if learnable && (for_us || self.neigh.knows(sender_ip)) {
            self.neigh.learn(sender_ip, sender_mac, port as u16, now);
            self.stats.arp_learned += 1;
            self.release_pending(sender_ip, sender_mac, out);
        }
        if self.from_peer {
            // A copy to learn from; the worker that received it answers.
            return Verdict::Done;
        }
        if !for_us {
            return Verdict::Drop(DropReason::ArpNotForUs);
        }
        match op {
            arp::Operation::Request => {
                if !sender_mac.is_unicast() {
                    return Verdict::Drop(DropReason::Malformed);
                }
                pkt.set_operation(arp::Operation::Reply);
                pkt.set_target_hw_addr(sender_mac);
                pkt.set_target_proto_addr(sender_ip);
                pkt.set_sender_hw_addr(port_mac);
                pkt.set_sender_proto_addr(target_ip);
                self.stats.arp_requests_answered += 1;
                Verdict::Transmit(port)
            }
            _ => Verdict::Done,
        }
    }

    /// IPv4 to the balancer itself: answer ICMP echo to own addresses and
    /// VIPs; anything else to an own address is dropped; packets to other
    /// destinations go to the load balancer's path. `l3` holds the packet
    /// the parse found whole, with a right header checksum.
    fn ipv4_local(&mut self, port: usize, info: &Ipv4Info, l3: &mut [u8]) -> Local {
        let (src, dst) = (info.src, info.dst);
        let icmp = info.protocol == u8::from(ipv4::Protocol::Icmp);
        if !self.owned(dst) || (!self.master && self.floating.contains(&dst)) {
            // A VIP answers echo (operators ping their VIPs); other ICMP
            // to a VIP and all TCP/UDP go to the balancer's path (decided
            // without the VIP lookup, which only echo needs).
            let ip = ipv4::Packet::new_unchecked(&*l3);
            if !(icmp
                && self.master
                && is_echo_request(ip.payload())
                && self.lb.services().is_vip(dst))
            {
                return Local::NotLocal;
            }
        }
        if info.is_fragment() {
            return Local::Verdict(Verdict::Drop(DropReason::Fragment));
        }
        if !icmp {
            return Local::Verdict(Verdict::Drop(DropReason::UnsupportedProtocol));
        }
        // Do not answer to addresses that cannot be a single host (smurf).
        if src.is_unspecified() || src.is_broadcast() || src.is_multicast() {
            return Local::Verdict(Verdict::Drop(DropReason::Malformed));
        }
        let mut ip = ipv4::Packet::new_unchecked(l3);
        let mut msg = match icmp::Packet::new_checked(ip.payload_mut()) {
            Ok(m) => m,
            Err(e) => return Local::Verdict(Verdict::Drop(wire_drop(e))),
        };
        if !msg.verify_checksum() {
            return Local::Verdict(Verdict::Drop(DropReason::BadChecksum));
        }
        if msg.msg_type() != icmp::Message::EchoRequest || msg.code() != 0 {
            return Local::Verdict(Verdict::Drop(DropReason::UnsupportedProtocol));
        }
        msg.make_echo_reply();
        // Swapping the addresses leaves the header's sum as it was; only
        // the TTL's change is patched in (the parse checked the sum).
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl_patched(REPLY_TTL);
        self.stats.icmp_echo_answered += 1;
        Local::Verdict(Verdict::Transmit(port))
    }

    /// Sends `frame`, whose IPv4 header starts at `l3`, to `next_hop` on
    /// `port`: our MAC as source, the neighbour's as destination; parks it
    /// and asks by ARP when the neighbour is unknown.
    fn send_to<O: Output<F>>(
        &mut self,
        port: usize,
        next_hop: Ipv4Addr,
        mut frame: F,
        now: u64,
        out: &mut O,
    ) {
        let port_mac = self.ports[port].mac;
        match self.neigh.lookup(next_hop, now) {
            Some(n) if usize::from(n.port) == port => {
                let mut eth = ethernet::Frame::new_unchecked(frame.data_mut());
                eth.set_src_addr(port_mac);
                eth.set_dst_addr(n.mac);
                out.send(port, frame);
            }
            _ => match self.pending.park(
                next_hop,
                port as u16,
                {
                    ethernet::Frame::new_unchecked(frame.data_mut()).set_src_addr(port_mac);
                    frame
                },
                now,
            ) {
                Parked::AskNow => self.send_arp_request(port, next_hop, out),
                Parked::Waiting => {}
                Parked::Full(_frame) => self.stats.drop(DropReason::NeighborUnresolved),
            },
        }
    }

    /// Sends the packets parked for `ip`, now that it is at `mac`.
    fn release_pending<O: Output<F>>(&mut self, ip: Ipv4Addr, mac: MacAddr, out: &mut O) {
        self.pending.release(ip, |port, mut frame| {
            ethernet::Frame::new_unchecked(frame.data_mut()).set_dst_addr(mac);
            out.send(usize::from(port), frame);
        });
    }

    /// Broadcasts "who has `target`?" on `port`, from our address there
    /// (the one whose subnet holds the target, else the first).
    fn send_arp_request<O: Output<F>>(&mut self, port: usize, target: Ipv4Addr, out: &mut O) {
        let Some(p) = self.ports.get(port) else {
            return;
        };
        let src_ip = p
            .addresses
            .iter()
            .find(|a| a.contains(target))
            .or(p.addresses.first())
            .map(|a| a.addr())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        self.send_arp(port, src_ip, target, out);
    }

    /// Broadcasts an ARP request on `port` from `src_ip` for `target`
    /// (`src_ip == target`: a gratuitous ARP).
    fn send_arp<O: Output<F>>(
        &mut self,
        port: usize,
        src_ip: Ipv4Addr,
        target: Ipv4Addr,
        out: &mut O,
    ) {
        let Some(p) = self.ports.get(port) else {
            return;
        };
        let mac = p.mac;
        let Some(mut frame) = out.alloc(ARP_FRAME_LEN) else {
            self.stats.drop(DropReason::NeighborUnresolved);
            return;
        };
        {
            let data = frame.data_mut();
            let mut eth = ethernet::Frame::new_unchecked(&mut *data);
            eth.set_dst_addr(MacAddr::BROADCAST);
            eth.set_src_addr(mac);
            eth.set_ethertype(EtherType::Arp);
            let mut a = arp::Packet::new_unchecked(&mut data[ethernet::HEADER_LEN..]);
            a.set_ethernet_ipv4();
            a.set_operation(arp::Operation::Request);
            a.set_sender_hw_addr(mac);
            a.set_sender_proto_addr(src_ip);
            a.set_target_hw_addr(MacAddr::ZERO);
            a.set_target_proto_addr(target);
        }
        self.stats.arp_requests_sent += 1;
        out.send(port, frame);
    }

    /// The next identification for an IPv4 packet rvs originates.
    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }
}

/// Where `classify` leaves a frame.
enum Step<'p> {
    /// The balancer's own verdict.
    Decided(Verdict),
    /// IPv4 not addressed to the balancer, as the parse found it.
    Forward(&'p Ipv4Info),
    /// IPv6 not addressed to the balancer, as the parse found it.
    Forward6(&'p Ipv6Info),
}

/// What the local (to-the-balancer) IPv4 path decided.
enum Local {
    /// Handled: reply or drop.
    Verdict(Verdict),
    /// Not addressed to the balancer itself.
    NotLocal,
}

/// Drops the later fragments of `table` that waited past their lifetime
/// for their first; how many (each counted `fragment_unmatched`).
fn expire_fragments<F, K: crate::lb::frag::FragId, R: Copy>(
    table: &mut FragTable<F, K, R>,
    now: u64,
) -> usize {
    let mut expired = 0;
    if table.waiting() > 0 {
        table.expire(now, |_| expired += 1);
    }
    expired
}

/// Which connection tables a window prefetches from (those holding
/// enough connections to miss the cache).
#[derive(Clone, Copy)]
struct Prefetch {
    v4: bool,
    v6: bool,
}

/// A connection table and a hash in it.
enum Table {
    V4(u32),
    V6(u32),
}

/// The table and hash of a parsed TCP/UDP frame's lookup, for the
/// prefetches; `None` when its family's table is not prefetched.
#[inline]
fn flow_hash(parsed: &Parsed, tables: Prefetch) -> Option<Table> {
    match parsed {
        Parsed::Ipv4(Ipv4Info {
            l4: parse::L4::Flow(f),
            ..
        }) if tables.v4 => Some(Table::V4(f.hash)),
        Parsed::Ipv6(ip) if tables.v6 && ip.has_ports() => Some(Table::V6(ip.hash)),
        _ => None,
    }
}

/// True when an IPv4 payload starts like an ICMP echo request.
fn is_echo_request(payload: &[u8]) -> bool {
    payload.first() == Some(&8)
}
