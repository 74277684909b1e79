//! High availability at run time: the balancer's role and the connection
//! sync with its peers over UDP on the management network (`ha::sync` is
//! the format, `docs/sync-protocol.md` the specification). One mechanism
//! serves both deployments ([`SyncMode`]):
//!
//! - `[ha]`, a pair: one peer, and keepalived's role (master or backup,
//!   set through `rvsadm ha`) gates everything: the master sends its
//!   connections and answers resync requests, the backup installs the
//!   master's records and asks for a full resync when it starts and until
//!   the master says it is done.
//! - `[cluster]`, active-active behind ECMP (issue 20): every node is
//!   *active*: it sends its own (local) connections' events to every peer,
//!   installs every peer's records, answers every peer's resync requests,
//!   and at start asks every peer for a full dump; it has *joined*
//!   ([`Ha::is_joined`]) once every peer said done or `join_timeout`
//!   passed.
//!
//! The sync runs on its own thread, every `sync_interval`: it takes the
//! events the workers reported (`dataplane::sync`), packs them into
//! datagrams of up to 37 IPv4 records (version 3) or 16 IPv6 records
//! (version 4; one family per datagram), signed when a `sync_key_file` is
//! set, and sends them to every peer (each peer has its own sequence
//! numbers, so a dump to one peer leaves no gap in another's). It receives
//! the peers' datagrams, checks them (`ha::peer::PeerGate`, one per peer:
//! the format, that peer's address and port, the MAC, the boot and the
//! sequence number; every drop counted by reason), checks each record
//! against this balancer's own services and timeouts (`ha::filter`) and
//! hands it to the worker that owns its client (REMOVED records as
//! removals). A resync request is answered with every live connection of
//! every worker (a cluster node: its local ones), at most once per
//! [`DUMP_MIN_INTERVAL`] per peer.

use crate::dataplane::sync::{SyncCollector, SyncEvent, SyncEvent6, SyncReport};
use crate::dataplane::worker::Command;
use crate::ha::filter::RecordFilter;
use crate::ha::key::SyncKey;
use crate::ha::peer::{DumpLimiter, PeerGate};
use crate::ha::sync::{
    Builder, Builder6, Error as SyncError, Family, Header, MessageKind, Packet, Record, Record6,
    RecordError, MAX_DATAGRAM_LEN,
};
use crate::lb::service::ServiceTable;
use crate::lb::tcp_state::Timeouts;
use crate::net::rss::RssModel;
use serde_json::{json, Value};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a node repeats its resync request to a peer until that peer
/// is done.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// The shortest time between two full dumps to one peer: requests in
/// between are refused and counted (`dump_rate_limited`); the asking
/// node repeats its request every [`RESYNC_RETRY`] until one is answered.
pub const DUMP_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Who sends and who installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `[ha]`: a pair (one peer) whose keepalived role gates sending and
    /// answering (master) and installing and asking (backup).
    Pair {
        /// Start as master (else backup).
        initial_master: bool,
    },
    /// `[cluster]`: every node sends, installs, asks and answers, all the
    /// time; joined once every peer finished its dump or `join_timeout`
    /// passed.
    Active {
        /// How long a starting node waits for its peers' dumps.
        join_timeout: Duration,
    },
}

/// What the HA runtime needs from the config.
#[derive(Clone, Debug)]
pub struct HaSettings {
    /// This balancer's id in sync datagrams.
    pub node_id: u32,
    /// A pair or a cluster node.
    pub mode: SyncMode,
    /// Where sync datagrams are received.
    pub listen: SocketAddrV4,
    /// Where they are sent, and the only sources (address and port) they
    /// are accepted from: one peer for `[ha]`, every other node for
    /// `[cluster]`.
    pub peers: Vec<SocketAddrV4>,
    /// How often the collected events are sent.
    pub interval: Duration,
    /// The shared key (`sync_key_file`): every datagram signed and
    /// checked. `None`: sync trusts the management network.
    pub key: Option<SyncKey>,
    /// The services records are checked against (updated on reload with
    /// [`Ha::set_services`]).
    pub services: Arc<ServiceTable>,
    /// The timeouts record lifetimes are capped at.
    pub timeouts: Timeouts,
}

impl HaSettings {
    fn is_cluster(&self) -> bool {
        matches!(self.mode, SyncMode::Active { .. })
    }
}

/// Counters of the sync, for `rvsadm ha status` and metrics.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Datagrams sent (of every type: connections, resync requests and done markers).
    pub sent_datagrams: AtomicU64,
    /// Records sent.
    pub sent_records: AtomicU64,
    /// Datagrams received and accepted.
    pub received_datagrams: AtomicU64,
    /// Records handed to the workers.
    pub received_records: AtomicU64,
    /// Datagrams dropped (and resync requests refused), by
    /// `ha::sync::Error` reason.
    pub dropped: [AtomicU64; SyncError::COUNT],
    /// Records skipped, by `ha::sync::RecordError` reason.
    pub records_dropped: [AtomicU64; RecordError::COUNT],
    /// Records whose timeout was lowered to the local one.
    pub ttl_capped: AtomicU64,
    /// Datagrams missed, from sequence gaps.
    pub missed: AtomicU64,
    /// Full resyncs answered (master) or completed (backup).
    pub resyncs: AtomicU64,
    /// New runs of the peer (it restarted: a new boot) after the first.
    pub peer_restarts: AtomicU64,
}

impl SyncCounters {
    fn drop(&self, e: SyncError) {
        self.dropped[e as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// One peer's share of the traffic (`rvsadm ha status` under
/// `cluster.peers`, and the `rvs_cluster_peer_*` metrics).
#[derive(Debug, Default)]
struct PeerCounters {
    sent_datagrams: AtomicU64,
    sent_bytes: AtomicU64,
    sent_records: AtomicU64,
    received_datagrams: AtomicU64,
    received_bytes: AtomicU64,
    /// Records of this peer handed to the workers (installs and removals).
    received_records: AtomicU64,
    /// Datagrams from this peer's address and port refused (MAC, replay,
    /// format, rate limit...).
    dropped_datagrams: AtomicU64,
    /// Records of this peer refused by the filter.
    dropped_records: AtomicU64,
    missed: AtomicU64,
}

/// A peer's current run as the status shows it.
#[derive(Clone, Copy, Debug, Default)]
struct PeerInfo {
    sender: u32,
    boot: u64,
}

/// What the status reads of one peer.
#[derive(Debug, Default)]
struct PeerShared {
    counters: PeerCounters,
    run: Mutex<Option<PeerInfo>>,
    last_heard: Mutex<Option<Instant>>,
    /// It sent its resync done since this node asked.
    done: AtomicBool,
}

struct Shared {
    master: AtomicBool,
    /// `[cluster]`: every peer's dump done, or the join timeout passed.
    joined: AtomicBool,
    since: Mutex<Instant>,
    stop: AtomicBool,
    counters: SyncCounters,
    /// A reload's services, picked up by the sync thread.
    services: Mutex<Option<Arc<ServiceTable>>>,
    peers: Vec<PeerShared>,
}

impl Shared {
    fn sent(&self, peer: usize, bytes: usize, records: usize) {
        let c = &self.counters;
        c.sent_datagrams.fetch_add(1, Ordering::Relaxed);
        c.sent_records.fetch_add(records as u64, Ordering::Relaxed);
        if let Some(p) = self.peers.get(peer) {
            let p = &p.counters;
            p.sent_datagrams.fetch_add(1, Ordering::Relaxed);
            p.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            p.sent_records.fetch_add(records as u64, Ordering::Relaxed);
        }
    }
}

/// The running HA: the role and the sync thread.
pub struct Ha {
    settings: HaSettings,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// This start's boot: the clock in nanoseconds since 1970, so a restart
/// has a larger one (at least 1).
fn boot_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        .max(1)
}

impl Ha {
    /// Binds the sync socket and starts the sync thread. `collectors` are
    /// the workers' report ends, `workers` their command channels.
    pub fn start(
        settings: HaSettings,
        collectors: Vec<SyncCollector>,
        workers: Vec<Sender<Command>>,
    ) -> std::io::Result<Ha> {
        let socket = UdpSocket::bind(settings.listen)?;
        socket.set_read_timeout(Some(Duration::from_millis(1)))?;
        let initial_master = match settings.mode {
            SyncMode::Pair { initial_master } => initial_master,
            SyncMode::Active { .. } => true,
        };
        let shared = Arc::new(Shared {
            master: AtomicBool::new(initial_master),
            joined: AtomicBool::new(false),
            since: Mutex::new(Instant::now()),
            stop: AtomicBool::new(false),
            counters: SyncCounters::default(),
            services: Mutex::new(None),
            peers: settings
                .peers
                .iter()
                .map(|_| PeerShared::default())
                .collect(),
        });
        let thread = {
            let shared = shared.clone();
            let s = settings.clone();
            std::thread::Builder::new()
                .name("rvs-sync".into())
                .spawn(move || sync_loop(s, socket, collectors, workers, &shared))?
        };
        Ok(Ha {
            settings,
            shared,
            thread: Some(thread),
        })
    }

    /// True while master (a `[cluster]` node: always).
    pub fn is_master(&self) -> bool {
        self.shared.master.load(Ordering::Relaxed)
    }

    /// True for a `[cluster]` node (every node active; no keepalived role).
    pub fn is_cluster(&self) -> bool {
        self.settings.is_cluster()
    }

    /// `[cluster]`: true once every peer sent its full dump (resync done)
    /// or `join_timeout` passed since the start; it stays true. A node
    /// announces its VIPs only once joined. `[ha]`: true while master or
    /// once the master's resync is done.
    pub fn is_joined(&self) -> bool {
        self.shared.joined.load(Ordering::Relaxed)
    }

    /// Sets the role; returns whether it changed. A `[cluster]` node has
    /// no role to change (the caller refuses; this changes nothing).
    pub fn set_master(&self, master: bool) -> bool {
        if self.is_cluster() {
            return false;
        }
        let was = self.shared.master.swap(master, Ordering::Relaxed);
        if was != master {
            if let Ok(mut t) = self.shared.since.lock() {
                *t = Instant::now();
            }
        }
        was != master
    }

    /// The services after a reload: records are checked against them
    /// from the sync thread's next round.
    pub fn set_services(&self, services: Arc<ServiceTable>) {
        if let Ok(mut s) = self.shared.services.lock() {
            *s = Some(services);
        }
    }

    /// The `rvsadm ha status` document.
    pub fn status(&self) -> Value {
        self.view().status()
    }

    /// A read-only handle on the role and the sync counters, for other
    /// threads (the status page, the announcer).
    pub fn view(&self) -> HaView {
        HaView {
            settings: self.settings.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// What other threads may read of the HA runtime: the role, whether a
/// cluster node joined, and the sync counters (`Ha::view`).
#[derive(Clone)]
pub struct HaView {
    settings: HaSettings,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HaView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaView")
            .field("node_id", &self.settings.node_id)
            .field("master", &self.is_master())
            .field("joined", &self.is_joined())
            .finish()
    }
}

impl HaView {
    /// True while master (a `[cluster]` node: always).
    pub fn is_master(&self) -> bool {
        self.shared.master.load(Ordering::Relaxed)
    }

    /// As [`Ha::is_joined`].
    pub fn is_joined(&self) -> bool {
        self.shared.joined.load(Ordering::Relaxed)
    }

    fn role(&self) -> &'static str {
        if self.settings.is_cluster() {
            "active"
        } else if self.is_master() {
            "master"
        } else {
            "backup"
        }
    }

    /// The `rvsadm ha status` document.
    pub fn status(&self) -> Value {
        let c = &self.shared.counters;
        let since = self
            .shared
            .since
            .lock()
            .map(|t| t.elapsed().as_secs())
            .unwrap_or(0);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let dropped: serde_json::Map<String, Value> = SyncError::ALL
            .iter()
            .map(|e| (e.name().to_string(), json!(load(&c.dropped[*e as usize]))))
            .collect();
        let records_dropped: serde_json::Map<String, Value> = RecordError::ALL
            .iter()
            .map(|e| {
                (
                    e.name().to_string(),
                    json!(load(&c.records_dropped[*e as usize])),
                )
            })
            .collect();
        let bad_records: u64 = c.records_dropped.iter().map(load).sum();
        let run = |i: usize| {
            self.shared
                .peers
                .get(i)
                .and_then(|p| p.run.lock().ok().and_then(|r| *r))
        };
        let peer = run(0);
        let authenticated = self.settings.key.is_some();
        let peers: Vec<String> = self.settings.peers.iter().map(|p| p.to_string()).collect();
        let role = self.role();
        let mut status = json!({
            "role": role,
            "configured": true,
            "detail": format!("node {} syncing with {} ({}), {} for {} s",
                self.settings.node_id, peers.join(", "),
                if authenticated { "authenticated" } else { "unauthenticated" },
                role, since),
            "node_id": self.settings.node_id,
            "peer": peers.first().cloned().unwrap_or_default(),
            "seconds_in_role": since,
            "sync": {
                "authenticated": authenticated,
                "peer_node_id": peer.map(|p| p.sender),
                "peer_boot": peer.map(|p| p.boot),
                "peer_restarts": load(&c.peer_restarts),
                "sent_datagrams": load(&c.sent_datagrams),
                "sent_records": load(&c.sent_records),
                "received_datagrams": load(&c.received_datagrams),
                "received_records": load(&c.received_records),
                "missed_datagrams": load(&c.missed),
                "bad_records": bad_records,
                "records_dropped": records_dropped,
                "ttl_capped": load(&c.ttl_capped),
                "resyncs": load(&c.resyncs),
                "dropped": dropped,
            }
        });
        if let SyncMode::Active { join_timeout } = self.settings.mode {
            let per_peer: Vec<Value> = self
                .settings
                .peers
                .iter()
                .zip(&self.shared.peers)
                .enumerate()
                .map(|(i, (addr, p))| {
                    let pc = &p.counters;
                    let heard = p
                        .last_heard
                        .lock()
                        .ok()
                        .and_then(|t| t.map(|t| t.elapsed().as_millis() as u64));
                    json!({
                        "address": addr.to_string(),
                        "node_id": run(i).map(|r| r.sender),
                        "boot": run(i).map(|r| r.boot),
                        "resync_done": p.done.load(Ordering::Relaxed),
                        "sent_datagrams": load(&pc.sent_datagrams),
                        "sent_bytes": load(&pc.sent_bytes),
                        "sent_records": load(&pc.sent_records),
                        "received_datagrams": load(&pc.received_datagrams),
                        "received_bytes": load(&pc.received_bytes),
                        "received_records": load(&pc.received_records),
                        "dropped_datagrams": load(&pc.dropped_datagrams),
                        "dropped_records": load(&pc.dropped_records),
                        "missed_datagrams": load(&pc.missed),
                        "last_heard_ms_ago": heard,
                    })
                })
                .collect();
            let detail = format!(
                "{}, {}",
                status["detail"].as_str().unwrap_or_default(),
                if self.is_joined() {
                    "joined"
                } else {
                    "joining"
                }
            );
            status["detail"] = json!(detail);
            status["peers"] = json!(peers);
            status["joined"] = json!(self.is_joined());
            status["cluster"] = json!({
                "joined": self.is_joined(),
                "join_timeout_ms": join_timeout.as_millis() as u64,
                "peers": per_peer,
            });
        }
        status
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a datagram goes: every peer, or one (a dump, an answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    All,
    Peer(usize),
}

/// Packs events into datagrams, signs them and sends them to each peer
/// with that peer's sequence numbers.
struct Outbox {
    socket: UdpSocket,
    peers: Vec<SocketAddrV4>,
    /// The last sequence number sent to each peer.
    seqs: Vec<u64>,
    node_id: u32,
    boot: u64,
    key: Option<SyncKey>,
    buf: Vec<u8>,
    pending: Vec<Record>,
    /// IPv6 records, sent in their own datagrams.
    pending6: Vec<Record6>,
}

/// A record of one family, and how a datagram of them is written.
trait Pack: Sized {
    /// Writes `header` and as many of `records` as fit into `buf`, signs
    /// with `key`; returns how many records went in and the datagram's
    /// length (`None`: `buf` cannot hold a datagram).
    fn pack(
        buf: &mut [u8],
        header: &Header,
        records: &[Self],
        key: Option<&SyncKey>,
    ) -> Option<(usize, usize)>;
}

impl Pack for Record {
    fn pack(
        buf: &mut [u8],
        header: &Header,
        records: &[Record],
        key: Option<&SyncKey>,
    ) -> Option<(usize, usize)> {
        let mut b = Builder::new(buf, header).ok()?;
        let n = records.iter().take_while(|r| b.push(r).is_ok()).count();
        Some((n, b.finish(key).len()))
    }
}

impl Pack for Record6 {
    fn pack(
        buf: &mut [u8],
        header: &Header,
        records: &[Record6],
        key: Option<&SyncKey>,
    ) -> Option<(usize, usize)> {
        let mut b = Builder6::new(buf, header).ok()?;
        let n = records.iter().take_while(|r| b.push(r).is_ok()).count();
        Some((n, b.finish(key).len()))
    }
}

impl Outbox {
    fn header(&mut self, peer: usize, kind: MessageKind, resync: bool) -> Header {
        self.seqs[peer] += 1;
        Header {
            kind,
            resync,
            sender: self.node_id,
            boot: self.boot,
            seq: self.seqs[peer],
        }
    }

    fn targets(&self, to: To) -> std::ops::Range<usize> {
        match to {
            To::All => 0..self.peers.len(),
            To::Peer(i) => i..(i + 1).min(self.peers.len()),
        }
    }

    /// Sends `pending` and `pending6` in as many full datagrams as
    /// needed (IPv4 ones first; each family in its own).
    fn send_records(&mut self, to: To, resync: bool, shared: &Shared) {
        let mut v4 = std::mem::take(&mut self.pending);
        self.send_batch(&v4, to, resync, shared);
        v4.clear();
        self.pending = v4;
        let mut v6 = std::mem::take(&mut self.pending6);
        self.send_batch(&v6, to, resync, shared);
        v6.clear();
        self.pending6 = v6;
    }

    /// Sends `records` of one family in as many full datagrams as needed,
    /// to each peer of `to`.
    fn send_batch<R: Pack>(&mut self, records: &[R], to: To, resync: bool, shared: &Shared) {
        for peer in self.targets(to) {
            let mut start = 0;
            while start < records.len() {
                let header = self.header(peer, MessageKind::Connections, resync);
                let mut buf = std::mem::take(&mut self.buf);
                let packed = R::pack(&mut buf, &header, &records[start..], self.key.as_ref());
                let Some((n, len)) = packed else {
                    self.buf = buf;
                    return;
                };
                if self.socket.send_to(&buf[..len], self.peers[peer]).is_ok() {
                    shared.sent(peer, len, n);
                }
                self.buf = buf;
                if n == 0 {
                    break;
                }
                start += n;
            }
        }
    }

    /// Queues a worker's report in its family's batch.
    fn queue(&mut self, report: &SyncReport) {
        match report {
            SyncReport::V4(e) => self.pending.push(Record::from(*e)),
            SyncReport::V6(e) => self.pending6.push(Record6::from(*e)),
        }
    }

    /// Nothing waits to be sent.
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.pending6.is_empty()
    }

    fn send_control(&mut self, kind: MessageKind, to: To, shared: &Shared) {
        for peer in self.targets(to) {
            let header = self.header(peer, kind, kind == MessageKind::ResyncDone);
            let mut buf = std::mem::take(&mut self.buf);
            if let Ok(b) = Builder::new(&mut buf, &header) {
                let len = b.finish(self.key.as_ref()).len();
                if self.socket.send_to(&buf[..len], self.peers[peer]).is_ok() {
                    shared.sent(peer, len, 0);
                }
            }
            self.buf = buf;
        }
    }
}

/// The sync thread's own view of one peer.
struct PeerLink {
    gate: PeerGate,
    dumps: DumpLimiter,
    /// This peer said its dump is done (since this node last asked).
    done: bool,
    last_request: Option<Instant>,
}

/// The peer a datagram from `from` is checked by: the one at that address
/// and port, else one at that address (its gate says `wrong_port`), else
/// the first (its gate says `unknown_peer`); the format is checked before
/// either, as for one peer. The flag says whether the peer is the sender
/// for sure (its counters take the datagram's drops).
fn gate_of(peers: &[SocketAddrV4], from: SocketAddr) -> (usize, bool) {
    let SocketAddr::V4(from) = from else {
        return (0, false);
    };
    if let Some(i) = peers.iter().position(|p| *p == from) {
        return (i, true);
    }
    (
        peers.iter().position(|p| p.ip() == from.ip()).unwrap_or(0),
        false,
    )
}

/// What a round hands the workers: installs and removals, by worker.
struct ToWorkers {
    install: Vec<Vec<SyncEvent>>,
    install6: Vec<Vec<SyncEvent6>>,
    remove: Vec<Vec<SyncEvent>>,
    remove6: Vec<Vec<SyncEvent6>>,
}

impl ToWorkers {
    fn new(workers: usize) -> ToWorkers {
        ToWorkers {
            install: vec![Vec::new(); workers],
            install6: vec![Vec::new(); workers],
            remove: vec![Vec::new(); workers],
            remove6: vec![Vec::new(); workers],
        }
    }

    /// Sends what was collected (installs before removals) and counts it.
    fn send(&mut self, workers: &[Sender<Command>], counters: &SyncCounters) {
        fn each<E>(
            lists: &mut [Vec<E>],
            workers: &[Sender<Command>],
            counters: &SyncCounters,
            make: fn(Vec<E>) -> Command,
        ) {
            for (w, events) in lists.iter_mut().enumerate() {
                if !events.is_empty() {
                    counters
                        .received_records
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    let _ = workers[w].send(make(std::mem::take(events)));
                }
            }
        }
        each(&mut self.install, workers, counters, Command::InstallConns);
        each(
            &mut self.install6,
            workers,
            counters,
            Command::InstallConns6,
        );
        each(&mut self.remove, workers, counters, Command::RemoveConns);
        each(&mut self.remove6, workers, counters, Command::RemoveConns6);
    }
}

/// The records of an accepted connections datagram from `peer`, checked
/// and sorted by owning worker.
fn take_records(
    packet: &Packet<&[u8]>,
    filter: &RecordFilter,
    owners: &RssModel,
    out: &mut ToWorkers,
    shared: &Shared,
    peer: usize,
) {
    let counters = &shared.counters;
    let pc = &shared.peers[peer].counters;
    let refused = |e: RecordError| {
        counters.records_dropped[e as usize].fetch_add(1, Ordering::Relaxed);
        pc.dropped_records.fetch_add(1, Ordering::Relaxed);
    };
    let capped = |c: bool| {
        if c {
            counters.ttl_capped.fetch_add(1, Ordering::Relaxed);
        }
        pc.received_records.fetch_add(1, Ordering::Relaxed);
    };
    if packet.family() == Family::Ipv6 {
        // The same filter rules, by the service's IPv6 VIP and the real
        // server's IPv6 endpoint.
        for r in packet.records6() {
            match r.and_then(|r| filter.check6(&r)) {
                Ok(a) => {
                    capped(a.capped);
                    let ev = a.record.event();
                    let w = owners.worker_of6(ev.client.ip);
                    if a.record.removed {
                        out.remove6[w].push(ev);
                    } else {
                        out.install6[w].push(ev);
                    }
                }
                Err(e) => refused(e),
            }
        }
        return;
    }
    for r in packet.records() {
        match r.and_then(|r| filter.check(&r)) {
            Ok(a) => {
                capped(a.capped);
                let ev = a.record.event();
                let w = owners.worker_of(ev.client.ip);
                if a.record.removed {
                    out.remove[w].push(ev);
                } else {
                    out.install[w].push(ev);
                }
            }
            Err(e) => refused(e),
        }
    }
}

fn sync_loop(
    settings: HaSettings,
    socket: UdpSocket,
    collectors: Vec<SyncCollector>,
    workers: Vec<Sender<Command>>,
    shared: &Shared,
) {
    let Ok(send_socket) = socket.try_clone() else {
        return;
    };
    let started = Instant::now();
    let cluster = settings.is_cluster();
    let join_timeout = match settings.mode {
        SyncMode::Active { join_timeout } => join_timeout,
        SyncMode::Pair { .. } => Duration::MAX,
    };
    let mut tx = Outbox {
        socket: send_socket,
        peers: settings.peers.clone(),
        seqs: vec![0; settings.peers.len()],
        node_id: settings.node_id,
        boot: boot_id(),
        key: settings.key.clone(),
        buf: vec![0u8; MAX_DATAGRAM_LEN],
        pending: Vec::new(),
        pending6: Vec::new(),
    };
    let counters = &shared.counters;
    let mut rx_buf = vec![0u8; 2048];
    // Each peer is its configured address and port; its id and boot are
    // what its (authenticated, with a key) datagrams say.
    let mut links: Vec<PeerLink> = settings
        .peers
        .iter()
        .map(|&p| PeerLink {
            gate: PeerGate::new(settings.node_id, p, settings.key.clone()),
            dumps: DumpLimiter::new(DUMP_MIN_INTERVAL),
            done: false,
            last_request: None,
        })
        .collect();
    let mut filter = RecordFilter::new(settings.services.clone(), settings.timeouts);
    let mut out = ToWorkers::new(workers.len());
    // A record goes to the worker whose queue the NICs' RSS delivers its
    // client's packets to.
    let owners = RssModel::new(workers.len());
    while !shared.stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        // A pair's master sends and answers, its backup installs and
        // asks; a cluster node does all four.
        let master = shared.master.load(Ordering::Relaxed);
        let (sending, installing) = (cluster || master, cluster || !master);
        if let Some(services) = shared.services.lock().ok().and_then(|mut s| s.take()) {
            filter.set_services(services);
        }
        // Outgoing: what the workers reported (a backup's workers report
        // nothing; drain anyway so buffers circulate).
        for c in &collectors {
            c.drain(|ev| {
                if sending {
                    tx.queue(ev);
                }
            });
        }
        if !tx.is_idle() {
            tx.send_records(To::All, false, shared);
        }
        // A node without its peers' full picture asks for it.
        if installing {
            for (i, link) in links.iter_mut().enumerate() {
                if !link.done
                    && link
                        .last_request
                        .is_none_or(|t| t.elapsed() >= RESYNC_RETRY)
                {
                    tx.send_control(MessageKind::ResyncRequest, To::Peer(i), shared);
                    link.last_request = Some(Instant::now());
                }
            }
        }
        // Incoming, until the interval is used up.
        while let Ok((n, from)) = socket.recv_from(&mut rx_buf) {
            let (i, sure) = gate_of(&settings.peers, from);
            let Some(link) = links.get_mut(i) else {
                counters.drop(SyncError::UnknownPeer);
                continue;
            };
            let peer = &shared.peers[i];
            let (packet, admitted) = match link.gate.admit(from, &rx_buf[..n]) {
                Ok(p) => p,
                Err(e) => {
                    counters.drop(e);
                    if sure {
                        peer.counters
                            .dropped_datagrams
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
            };
            if let (Some(run), Ok(mut p)) = (link.gate.run(), peer.run.lock()) {
                *p = Some(PeerInfo {
                    sender: run.sender,
                    boot: run.boot,
                });
            }
            if let Ok(mut t) = peer.last_heard.lock() {
                *t = Some(Instant::now());
            }
            counters.received_datagrams.fetch_add(1, Ordering::Relaxed);
            counters
                .missed
                .fetch_add(admitted.missed, Ordering::Relaxed);
            let pc = &peer.counters;
            pc.received_datagrams.fetch_add(1, Ordering::Relaxed);
            pc.received_bytes.fetch_add(n as u64, Ordering::Relaxed);
            pc.missed.fetch_add(admitted.missed, Ordering::Relaxed);
            if admitted.restarted {
                counters.peer_restarts.fetch_add(1, Ordering::Relaxed);
            }
            let master = shared.master.load(Ordering::Relaxed);
            let (sending, installing) = (cluster || master, cluster || !master);
            match packet.kind() {
                MessageKind::ResyncRequest if sending => {
                    if link.dumps.allow(Instant::now()) {
                        answer_resync(&workers, &mut tx, i, shared);
                    } else {
                        counters.drop(SyncError::DumpRateLimited);
                        pc.dropped_datagrams.fetch_add(1, Ordering::Relaxed);
                    }
                }
                MessageKind::ResyncDone if installing => {
                    link.done = true;
                    peer.done.store(true, Ordering::Relaxed);
                    counters.resyncs.fetch_add(1, Ordering::Relaxed);
                }
                MessageKind::Connections if installing => {
                    take_records(&packet, &filter, &owners, &mut out, shared, i);
                }
                // A master ignores the other's records (split brain: the
                // other side will be told to back off by keepalived).
                _ => {}
            }
        }
        out.send(&workers, counters);
        if !cluster && shared.master.load(Ordering::Relaxed) {
            // A new master has what it has; a later demotion asks again.
            for (link, peer) in links.iter_mut().zip(&shared.peers) {
                link.done = false;
                link.last_request = None;
                peer.done.store(false, Ordering::Relaxed);
            }
        }
        let joined = if cluster {
            links.iter().all(|l| l.done) || started.elapsed() >= join_timeout
        } else {
            shared.master.load(Ordering::Relaxed) || links.iter().all(|l| l.done)
        };
        if cluster {
            // Sticky: a node that joined keeps announcing.
            if joined {
                shared.joined.store(true, Ordering::Relaxed);
            }
        } else {
            shared.joined.store(joined, Ordering::Relaxed);
        }
        if let Some(left) = settings.interval.checked_sub(round.elapsed()) {
            std::thread::sleep(left);
        }
    }
}

/// Sends every live connection of every worker (a cluster node's workers:
/// their local ones) to peer `peer`, then "done".
fn answer_resync(workers: &[Sender<Command>], tx: &mut Outbox, peer: usize, shared: &Shared) {
    let (reply_tx, reply_rx) = std::sync::mpsc::channel();
    for w in workers {
        let _ = w.send(Command::DumpSync {
            reply: reply_tx.clone(),
        });
    }
    drop(reply_tx);
    let deadline = Instant::now() + Duration::from_secs(2);
    for _ in 0..workers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match reply_rx.recv_timeout(left) {
            Ok(reports) => reports.iter().for_each(|r| tx.queue(r)),
            Err(_) => break,
        }
    }
    tx.send_records(To::Peer(peer), true, shared);
    tx.send_control(MessageKind::ResyncDone, To::Peer(peer), shared);
    shared.counters.resyncs.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::sync::{sync_channel, SyncQueue};
    use crate::ha::sync::Packet;
    use crate::lb::service::{ForwardMethod, Protocol, SchedulerKind, ServiceKey, VirtualService};
    use crate::lb::tcp_state::State;
    use crate::lb::xmit::{Endpoint, Endpoint6};
    use std::net::Ipv4Addr;
    use std::sync::mpsc::{channel, Receiver};

    fn free_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn ev(port: u16) -> SyncEvent {
        SyncEvent {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            client: Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), port),
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
            real: Endpoint::new(Ipv4Addr::new(10, 1, 0, 11), 8080),
            timeout_s: 900,
            local: None,
        }
    }

    /// The service of `ev`'s records: 203.0.113.100:80 to 10.1.0.11:8080.
    fn services() -> Arc<ServiceTable> {
        let vs = VirtualService::new(
            "web",
            ServiceKey {
                vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 80),
                protocol: Protocol::Tcp,
            },
            ForwardMethod::Nat,
            SchedulerKind::Rr,
            [(Endpoint::new(Ipv4Addr::new(10, 1, 0, 11), 8080), 1)],
        );
        let vs6 = VirtualService::new6(
            "web6",
            Endpoint6::new("2001:db8::10".parse().unwrap(), 80),
            Protocol::Tcp,
            ForwardMethod::Nat,
            SchedulerKind::Rr,
            [(Endpoint6::new("2001:db8:2::11".parse().unwrap(), 8080), 1)],
        );
        Arc::new(ServiceTable::new(vec![vs, vs6]))
    }

    fn ev6(port: u16) -> SyncEvent6 {
        SyncEvent6 {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            client: Endpoint6::new("2001:db8:1::7".parse().unwrap(), port),
            vip: Endpoint6::new("2001:db8::10".parse().unwrap(), 80),
            real: Endpoint6::new("2001:db8:2::11".parse().unwrap(), 8080),
            timeout_s: 600,
            local: None,
        }
    }

    fn settings(node: u32, master: bool, listen: u16, peer: u16) -> HaSettings {
        HaSettings {
            node_id: node,
            mode: SyncMode::Pair {
                initial_master: master,
            },
            listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, listen),
            peers: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, peer)],
            interval: Duration::from_millis(5),
            key: None,
            services: services(),
            timeouts: Timeouts::default(),
        }
    }

    fn key() -> SyncKey {
        SyncKey::new(b"the pair's shared secret").unwrap()
    }

    /// A datagram as a peer would send it.
    fn datagram(
        kind: MessageKind,
        sender: u32,
        seq: u64,
        evs: &[SyncEvent],
        key: Option<&SyncKey>,
    ) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
        let header = Header {
            kind,
            resync: false,
            sender,
            boot: 10,
            seq,
        };
        let mut b = Builder::new(&mut buf, &header).unwrap();
        for e in evs {
            b.push(&Record::from(*e)).unwrap();
        }
        b.finish(key).to_vec()
    }

    /// Waits (bounded) until `f` holds of the status' `sync` part.
    fn wait_status(ha: &Ha, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = ha.status()["sync"].clone();
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what}: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the next InstallConns on a fake worker's channel.
    fn installs(rx: &Receiver<Command>, want: usize) -> Vec<SyncEvent> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Command::InstallConns(evs)) => got.extend(evs),
                Ok(Command::DumpSync { reply }) => {
                    let _ = reply.send(Vec::new());
                }
                _ => {}
            }
        }
        got
    }

    /// A master and a backup syncing with each other over loopback: the
    /// master's report queue, the backup's (fake) worker's commands; the
    /// master's (fake) worker answers a resync with `resync` alone. The
    /// backup's own queue comes last, to be held as long as the backup.
    fn master_and_backup(resync: SyncReport) -> (Ha, Ha, SyncQueue, Receiver<Command>, SyncQueue) {
        let (pm, pb) = (free_port(), free_port());
        let (queue, collector) = sync_channel();
        let (mw_tx, mw_rx) = channel();
        let master = Ha::start(settings(1, true, pm, pb), vec![collector], vec![mw_tx]).unwrap();
        let (bq, bcollector) = sync_channel();
        let (bw_tx, bw_rx) = channel();
        let backup = Ha::start(settings(2, false, pb, pm), vec![bcollector], vec![bw_tx]).unwrap();
        std::thread::spawn(move || {
            while let Ok(cmd) = mw_rx.recv() {
                if let Command::DumpSync { reply } = cmd {
                    let _ = reply.send(vec![resync]);
                }
            }
        });
        (master, backup, queue, bw_rx, bq)
    }

    #[test]
    fn the_masters_reports_reach_the_backups_worker() {
        // The backup asks for a resync; the master's (fake) worker has one.
        let (master, backup, mut queue, bw_rx, _bq) = master_and_backup(ev(1).into());
        for p in 2..102 {
            queue.push(ev(p));
        }
        queue.flush();
        let got = installs(&bw_rx, 101);
        assert_eq!(got.len(), 101, "100 reports and 1 from the resync");
        assert!(got.contains(&ev(1)) && got.contains(&ev(101)));
        let status = backup.status();
        assert_eq!(status["role"], "backup");
        assert!(status["sync"]["received_records"].as_u64().unwrap() >= 101);
        assert!(master.status()["sync"]["sent_datagrams"].as_u64().unwrap() >= 3);
    }

    #[test]
    fn ipv6_reports_reach_the_backups_worker_in_their_own_datagrams() {
        // The resync brings one IPv6 connection; nothing for IPv4.
        let (master, backup, mut queue, bw_rx, _bq) = master_and_backup(ev6(1).into());
        // 20 IPv6 reports (two datagrams: 16 + 4), one IPv4, and one IPv6
        // for a service the backup does not have.
        for p in 2..22 {
            queue.push(ev6(p));
        }
        queue.push(ev(7));
        let mut stranger = ev6(99);
        stranger.vip.port = 443;
        queue.push(stranger);
        queue.flush();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        while (v4.is_empty() || v6.len() < 21) && Instant::now() < deadline {
            match bw_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Command::InstallConns(evs)) => v4.extend(evs),
                Ok(Command::InstallConns6(evs)) => v6.extend(evs),
                _ => {}
            }
        }
        assert_eq!(v4, [ev(7)]);
        assert_eq!(v6.len(), 21, "20 reports and 1 from the resync");
        assert!(v6.contains(&ev6(1)) && v6.contains(&ev6(21)));
        let status = backup.status();
        assert_eq!(status["sync"]["received_records"], 22);
        assert_eq!(status["sync"]["records_dropped"]["unknown_service"], 1);
        // Resync request and done aside: 2 IPv6 + 1 IPv4 + 1 resync's.
        assert!(master.status()["sync"]["sent_datagrams"].as_u64().unwrap() >= 4);
    }

    #[test]
    fn foreign_and_malformed_datagrams_are_dropped_and_counted() {
        let (pb, pm) = (free_port(), free_port());
        let (_q, c) = sync_channel();
        let (w, _wr) = channel();
        let backup = Ha::start(settings(2, false, pb, pm), vec![c], vec![w]).unwrap();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb);
        s.send_to(b"GET / HTTP/1.0\r\n\r\n", to).unwrap();
        s.send_to(b"RVS", to).unwrap();
        let mut bad_version = vec![0u8; 20];
        bad_version[..4].copy_from_slice(b"RVSS");
        bad_version[4] = 9;
        s.send_to(&bad_version, to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let d = &backup.status()["sync"]["dropped"];
            let total: u64 = d
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            if total >= 3 {
                assert!(d["foreign_magic"].as_u64().unwrap() >= 1, "{d}");
                assert!(d["unsupported_version"].as_u64().unwrap() >= 1, "{d}");
                break;
            }
            assert!(Instant::now() < deadline, "not counted: {d}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_spoofed_first_datagram_from_the_peers_ip_but_another_port_is_dropped_and_counted() {
        let (pb, pm) = (free_port(), free_port());
        let (_q, c) = sync_channel();
        let (w, wr) = channel();
        let backup = Ha::start(settings(2, false, pb, pm), vec![c], vec![w]).unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb);
        // Same address as the peer, another port, another id: dropped,
        // and it pins nothing.
        let spoofer = UdpSocket::bind("127.0.0.1:0").unwrap();
        spoofer
            .send_to(
                &datagram(MessageKind::Connections, 4242, 1, &[ev(10)], None),
                to,
            )
            .unwrap();
        wait_status(&backup, "wrong_port not counted", |s| {
            s["dropped"]["wrong_port"] == 1
        });
        // The real peer, with its own id, is heard afterwards.
        let peer = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, pm)).unwrap();
        peer.send_to(
            &datagram(MessageKind::Connections, 1, 1, &[ev(11)], None),
            to,
        )
        .unwrap();
        assert_eq!(installs(&wr, 1), vec![ev(11)]);
        assert_eq!(backup.status()["sync"]["peer_node_id"], 1);
    }

    #[test]
    fn a_forged_record_is_capped_or_dropped_by_the_backup() {
        let (pb, pm) = (free_port(), free_port());
        let (_q, c) = sync_channel();
        let (w, wr) = channel();
        let backup = Ha::start(settings(2, false, pb, pm), vec![c], vec![w]).unwrap();
        let peer = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, pm)).unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb);
        let forever = SyncEvent {
            timeout_s: u32::MAX,
            ..ev(20)
        };
        let elsewhere = SyncEvent {
            vip: Endpoint::new(Ipv4Addr::new(203, 0, 113, 100), 443),
            ..ev(21)
        };
        peer.send_to(
            &datagram(MessageKind::Connections, 1, 1, &[forever, elsewhere], None),
            to,
        )
        .unwrap();
        let got = installs(&wr, 1);
        assert_eq!(
            got,
            vec![SyncEvent {
                timeout_s: 900,
                ..forever
            }]
        );
        let s = wait_status(&backup, "not counted", |s| {
            s["records_dropped"]["unknown_service"] == 1
        });
        assert_eq!(s["ttl_capped"], 1);
    }

    #[test]
    fn a_keyed_backup_drops_unsigned_and_replayed_datagrams() {
        let (pb, pm) = (free_port(), free_port());
        let (_q, c) = sync_channel();
        let (w, wr) = channel();
        let s = HaSettings {
            key: Some(key()),
            ..settings(2, false, pb, pm)
        };
        let backup = Ha::start(s, vec![c], vec![w]).unwrap();
        let peer = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, pm)).unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb);
        let signed = datagram(MessageKind::Connections, 1, 1, &[ev(30)], Some(&key()));
        peer.send_to(
            &datagram(MessageKind::Connections, 1, 1, &[ev(31)], None),
            to,
        )
        .unwrap();
        peer.send_to(&signed, to).unwrap();
        peer.send_to(&signed, to).unwrap();
        assert_eq!(installs(&wr, 2), vec![ev(30)], "only the signed one, once");
        let st = wait_status(&backup, "not counted", |s| {
            s["dropped"]["bad_mac"] == 1 && s["dropped"]["replay"] == 1
        });
        assert_eq!(st["authenticated"], true);
    }

    #[test]
    fn resync_requests_are_rate_limited_per_peer() {
        let (pm, pb) = (free_port(), free_port());
        let (_q, c) = sync_channel();
        let (w, wr) = channel();
        let master = Ha::start(settings(1, true, pm, pb), vec![c], vec![w]).unwrap();
        std::thread::spawn(move || {
            while let Ok(cmd) = wr.recv() {
                if let Command::DumpSync { reply } = cmd {
                    let _ = reply.send(vec![ev(1).into()]);
                }
            }
        });
        let peer = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb)).unwrap();
        peer.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pm);
        for seq in 1..=20 {
            peer.send_to(&datagram(MessageKind::ResyncRequest, 2, seq, &[], None), to)
                .unwrap();
        }
        let s = wait_status(&master, "not limited", |s| {
            s["dropped"]["dump_rate_limited"] == 19
        });
        assert_eq!(s["resyncs"], 1, "one dump answered");
        // What the peer got: one dump (its record) and one done marker.
        let mut buf = [0u8; 2048];
        let mut kinds = Vec::new();
        while let Ok(n) = peer.recv(&mut buf) {
            kinds.push(Packet::new_checked(&buf[..n]).unwrap().kind());
        }
        assert_eq!(
            kinds,
            vec![MessageKind::Connections, MessageKind::ResyncDone]
        );
    }

    // ------------------------------------------------------ [cluster]

    fn cluster_settings(node: u32, listen: u16, peers: &[u16], join_ms: u64) -> HaSettings {
        HaSettings {
            mode: SyncMode::Active {
                join_timeout: Duration::from_millis(join_ms),
            },
            peers: peers
                .iter()
                .map(|&p| SocketAddrV4::new(Ipv4Addr::LOCALHOST, p))
                .collect(),
            ..settings(node, false, listen, 0)
        }
    }

    /// A fake worker: answers a dump with `dump`, hands every other
    /// command on to the receiver returned.
    fn fake_worker(dump: Vec<SyncReport>) -> (Sender<Command>, Receiver<Command>) {
        let (tx, rx) = channel();
        let (out_tx, out_rx) = channel();
        std::thread::spawn(move || {
            while let Ok(cmd) = rx.recv() {
                match cmd {
                    Command::DumpSync { reply } => {
                        let _ = reply.send(dump.clone());
                    }
                    other => {
                        if out_tx.send(other).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        (tx, out_rx)
    }

    /// A cluster node on `listen` with `peers`, its worker's dump `dump`:
    /// the node, its report queue, what its worker is told.
    fn node(
        id: u32,
        listen: u16,
        peers: &[u16],
        join_ms: u64,
        dump: Vec<SyncReport>,
    ) -> (Ha, SyncQueue, Receiver<Command>) {
        let (queue, collector) = sync_channel();
        let (w, told) = fake_worker(dump);
        let ha = Ha::start(
            cluster_settings(id, listen, peers, join_ms),
            vec![collector],
            vec![w],
        )
        .unwrap();
        (ha, queue, told)
    }

    /// Waits (bounded) until `f` holds of the whole status.
    fn wait_for(ha: &Ha, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = ha.status();
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what}: {s}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn three_active_nodes_each_install_the_others_records() {
        let ports = [free_port(), free_port(), free_port()];
        let others =
            |i: usize| -> Vec<u16> { (0..3).filter(|&j| j != i).map(|j| ports[j]).collect() };
        let mut nodes: Vec<_> = (0..3)
            .map(|i| node(i as u32 + 1, ports[i], &others(i), 3000, Vec::new()))
            .collect();
        for (i, (_, queue, _)) in nodes.iter_mut().enumerate() {
            queue.push(ev(100 + i as u16));
            queue.flush();
        }
        for (i, (ha, _, told)) in nodes.iter().enumerate() {
            let mut got: Vec<u16> = installs(told, 2).iter().map(|e| e.client.port).collect();
            got.sort_unstable();
            let want: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| 100 + j as u16).collect();
            assert_eq!(got, want, "node {}", i + 1);
            let s = ha.status();
            assert_eq!(s["role"], "active");
            assert_eq!(s["cluster"]["peers"].as_array().unwrap().len(), 2);
        }
    }

    #[test]
    fn a_starting_node_installs_every_peers_dump_and_then_has_joined() {
        let (pn, p1, p2) = (free_port(), free_port(), free_port());
        let (_a, _qa, _ta) = node(1, p1, &[pn, p2], 3000, vec![ev(10).into()]);
        let (_b, _qb, _tb) = node(2, p2, &[pn, p1], 3000, vec![ev6(20).into()]);
        // A long join timeout: only the two dumps can make it join.
        let (n, _qn, told) = node(3, pn, &[p1, p2], 60_000, Vec::new());
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        while (v4.is_empty() || v6.is_empty()) && Instant::now() < deadline {
            match told.recv_timeout(Duration::from_millis(50)) {
                Ok(Command::InstallConns(evs)) => v4.extend(evs),
                Ok(Command::InstallConns6(evs)) => v6.extend(evs),
                _ => {}
            }
        }
        assert_eq!((v4, v6), (vec![ev(10)], vec![ev6(20)]));
        let s = wait_for(&n, "not joined", |s| s["joined"] == true);
        assert!(n.is_joined() && n.view().is_joined());
        for p in s["cluster"]["peers"].as_array().unwrap() {
            assert_eq!(p["resync_done"], true, "{p}");
            assert!(p["received_datagrams"].as_u64().unwrap() >= 2, "{p}");
            assert!(p["received_bytes"].as_u64().unwrap() >= 2 * 48, "{p}");
            assert!(p["sent_datagrams"].as_u64().unwrap() >= 1, "{p}");
            assert!(p["last_heard_ms_ago"].is_u64(), "{p}");
        }
    }

    #[test]
    fn a_node_whose_peer_is_absent_joins_when_the_join_timeout_passes() {
        let (pn, p1, absent) = (free_port(), free_port(), free_port());
        let (_a, _qa, _ta) = node(1, p1, &[pn, absent], 3000, Vec::new());
        let started = Instant::now();
        let (n, _qn, _told) = node(3, pn, &[p1, absent], 400, Vec::new());
        let s = wait_for(&n, "the present peer's done", |s| {
            s["cluster"]["peers"][0]["resync_done"] == true
        });
        assert!(
            started.elapsed() >= Duration::from_millis(400) || s["joined"] == false,
            "joined before the timeout with a peer missing: {s}"
        );
        let s = wait_for(&n, "never joined", |s| s["joined"] == true);
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(s["cluster"]["peers"][1]["resync_done"], false);
        assert_eq!(s["cluster"]["peers"][1]["last_heard_ms_ago"], Value::Null);
    }

    #[test]
    fn a_removed_record_reaches_the_worker_as_a_removal() {
        let (pn, p1) = (free_port(), free_port());
        let (_n, _q, told) = node(2, pn, &[p1], 3000, Vec::new());
        let peer = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p1)).unwrap();
        let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
        let header = Header {
            kind: MessageKind::Connections,
            resync: false,
            sender: 1,
            boot: 10,
            seq: 1,
        };
        let mut b = Builder::new(&mut buf, &header).unwrap();
        b.push(&Record {
            removed: true,
            ..Record::from(ev(40))
        })
        .unwrap();
        b.push(&Record::from(ev(41))).unwrap();
        let bytes = b.finish(None).to_vec();
        peer.send_to(&bytes, SocketAddrV4::new(Ipv4Addr::LOCALHOST, pn))
            .unwrap();
        let (mut removed, mut installed) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        while (removed.is_empty() || installed.is_empty()) && Instant::now() < deadline {
            match told.recv_timeout(Duration::from_millis(50)) {
                Ok(Command::RemoveConns(evs)) => removed.extend(evs),
                Ok(Command::InstallConns(evs)) => installed.extend(evs),
                _ => {}
            }
        }
        assert_eq!(
            removed.iter().map(|e| e.client.port).collect::<Vec<_>>(),
            [40]
        );
        assert_eq!(installed, [ev(41)]);
    }

    /// The figure `docs/sync-protocol.md` ("Traffic", cluster) states:
    /// 1,000 new connections a second, 3 records each (new, established,
    /// closing), make 3,000 IPv4 records a second; packed in full
    /// datagrams they are 82 datagrams and 111,936 bytes of UDP payload
    /// to **each** peer (81 of 37 records in 1,380 bytes, one of 3 in
    /// 156), so a node with P peers sends P times that.
    #[test]
    fn one_second_of_a_thousand_new_connections_costs_112_kb_per_peer() {
        let peers: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<SocketAddrV4> = peers
            .iter()
            .map(|s| match s.local_addr().unwrap() {
                SocketAddr::V4(a) => a,
                SocketAddr::V6(_) => unreachable!(),
            })
            .collect();
        let shared = Shared {
            master: AtomicBool::new(true),
            joined: AtomicBool::new(true),
            since: Mutex::new(Instant::now()),
            stop: AtomicBool::new(false),
            counters: SyncCounters::default(),
            services: Mutex::new(None),
            peers: addrs.iter().map(|_| PeerShared::default()).collect(),
        };
        let mut tx = Outbox {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            seqs: vec![0; addrs.len()],
            peers: addrs,
            node_id: 1,
            boot: 1,
            key: Some(key()),
            buf: vec![0u8; MAX_DATAGRAM_LEN],
            pending: Vec::new(),
            pending6: Vec::new(),
        };
        for i in 0..3000u16 {
            tx.queue(&ev(i).into());
        }
        tx.send_records(To::All, false, &shared);
        for p in &shared.peers {
            let c = &p.counters;
            assert_eq!(c.sent_records.load(Ordering::Relaxed), 3000);
            assert_eq!(c.sent_datagrams.load(Ordering::Relaxed), 82);
            assert_eq!(c.sent_bytes.load(Ordering::Relaxed), 81 * 1380 + 156);
        }
        assert_eq!(
            shared.counters.sent_datagrams.load(Ordering::Relaxed),
            3 * 82
        );
    }

    #[test]
    fn a_cluster_node_is_active_and_has_no_role_to_set() {
        let (pn, p1) = (free_port(), free_port());
        let (n, _q, _told) = node(2, pn, &[p1], 3000, Vec::new());
        assert!(n.is_cluster() && n.is_master());
        assert!(!n.set_master(false));
        assert_eq!(n.status()["role"], "active");
    }

    #[test]
    fn role_changes_are_reported() {
        let (a, b) = (free_port(), free_port());
        let (_q, c) = sync_channel();
        let (w, _wr) = channel();
        let ha = Ha::start(settings(1, false, a, b), vec![c], vec![w]).unwrap();
        assert!(!ha.is_master());
        assert!(ha.set_master(true));
        assert!(!ha.set_master(true), "no change the second time");
        assert_eq!(ha.status()["role"], "master");
    }
}
