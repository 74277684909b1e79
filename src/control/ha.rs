//! High availability at run time: the balancer's role (master or backup,
//! set by keepalived through `rvsadm ha`), gratuitous ARPs when it becomes
//! master, and the connection sync with the peer over UDP on the
//! management network (`ha::sync` is the format, `docs/sync-protocol.md`
//! the specification).
//!
//! The sync runs on its own thread, every `sync_interval`: it takes the
//! events the workers reported (`dataplane::sync`), packs them into
//! datagrams of up to 37 IPv4 records (version 3) or 16 IPv6 records
//! (version 4; one family per datagram), signed when `[ha] sync_key_file` is
//! set, and sends them to the peer while this balancer is master; it
//! receives the peer's datagrams, checks them (`ha::peer::PeerGate`: the
//! format, the configured peer's address and port, the MAC, the boot and
//! the sequence number; every drop counted by reason), checks each record
//! against this balancer's own services and timeouts (`ha::filter`) and
//! hands it to the worker that owns its client while this balancer is
//! backup. A backup asks for a full resync when it starts and until the
//! master says it is done; a master answers a request with every live
//! connection of every worker, at most once per [`DUMP_MIN_INTERVAL`].

use crate::dataplane::sync::{SyncCollector, SyncEvent, SyncEvent6, SyncReport};
use crate::dataplane::worker::Command;
use crate::ha::filter::RecordFilter;
use crate::ha::key::SyncKey;
use crate::ha::peer::{DumpLimiter, PeerGate};
use crate::ha::sync::{
    Builder, Builder6, Error as SyncError, Family, Header, MessageKind, Record, Record6,
    RecordError, MAX_DATAGRAM_LEN,
};
use crate::lb::service::ServiceTable;
use crate::lb::tcp_state::Timeouts;
use crate::net::rss::RssModel;
use serde_json::{json, Value};
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a backup repeats its resync request until the master is done.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// The shortest time between two full dumps to the peer: requests in
/// between are refused and counted (`dump_rate_limited`); the backup
/// repeats its request every [`RESYNC_RETRY`] until one is answered.
pub const DUMP_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// What the HA runtime needs from the config.
#[derive(Clone, Debug)]
pub struct HaSettings {
    /// This balancer's id in sync datagrams.
    pub node_id: u32,
    /// Start as master (else backup).
    pub initial_master: bool,
    /// Where sync datagrams are received.
    pub listen: SocketAddrV4,
    /// Where they are sent, and the only source (address and port) they
    /// are accepted from.
    pub peer: SocketAddrV4,
    /// How often the master sends a batch.
    pub interval: Duration,
    /// The pair's shared key (`sync_key_file`): every datagram signed and
    /// checked. `None`: sync trusts the management network.
    pub key: Option<SyncKey>,
    /// The services records are checked against (updated on reload with
    /// [`Ha::set_services`]).
    pub services: Arc<ServiceTable>,
    /// The timeouts record lifetimes are capped at.
    pub timeouts: Timeouts,
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

/// The peer's current run as the status shows it.
#[derive(Clone, Copy, Debug, Default)]
struct PeerInfo {
    sender: u32,
    boot: u64,
}

struct Shared {
    master: AtomicBool,
    since: Mutex<Instant>,
    stop: AtomicBool,
    counters: SyncCounters,
    /// A reload's services, picked up by the sync thread.
    services: Mutex<Option<Arc<ServiceTable>>>,
    peer: Mutex<Option<PeerInfo>>,
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
        let shared = Arc::new(Shared {
            master: AtomicBool::new(settings.initial_master),
            since: Mutex::new(Instant::now()),
            stop: AtomicBool::new(false),
            counters: SyncCounters::default(),
            services: Mutex::new(None),
            peer: Mutex::new(None),
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

    /// True while master.
    pub fn is_master(&self) -> bool {
        self.shared.master.load(Ordering::Relaxed)
    }

    /// Sets the role; returns whether it changed.
    pub fn set_master(&self, master: bool) -> bool {
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
    /// threads (the status page).
    pub fn view(&self) -> HaView {
        HaView {
            settings: self.settings.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// What other threads may read of the HA runtime: the role and the sync
/// counters (`Ha::view`).
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
            .finish()
    }
}

impl HaView {
    /// True while master.
    pub fn is_master(&self) -> bool {
        self.shared.master.load(Ordering::Relaxed)
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
        let peer = self.shared.peer.lock().ok().and_then(|p| *p);
        let authenticated = self.settings.key.is_some();
        json!({
            "role": if self.is_master() { "master" } else { "backup" },
            "configured": true,
            "detail": format!("node {} syncing with {} ({}), {} for {} s",
                self.settings.node_id, self.settings.peer,
                if authenticated { "authenticated" } else { "unauthenticated" },
                if self.is_master() { "master" } else { "backup" }, since),
            "node_id": self.settings.node_id,
            "peer": self.settings.peer.to_string(),
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
        })
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

/// Packs events into datagrams, signs and sends them.
struct Outbox {
    socket: UdpSocket,
    peer: SocketAddrV4,
    node_id: u32,
    boot: u64,
    seq: u64,
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
    fn header(&mut self, kind: MessageKind, resync: bool) -> Header {
        self.seq += 1;
        Header {
            kind,
            resync,
            sender: self.node_id,
            boot: self.boot,
            seq: self.seq,
        }
    }

    /// Sends `pending` and `pending6` in as many full datagrams as
    /// needed (IPv4 ones first; each family in its own).
    fn send_records(&mut self, resync: bool, counters: &SyncCounters) {
        let mut v4 = std::mem::take(&mut self.pending);
        self.send_batch(&v4, resync, counters);
        v4.clear();
        self.pending = v4;
        let mut v6 = std::mem::take(&mut self.pending6);
        self.send_batch(&v6, resync, counters);
        v6.clear();
        self.pending6 = v6;
    }

    /// Sends `records` of one family in as many full datagrams as needed.
    fn send_batch<R: Pack>(&mut self, records: &[R], resync: bool, counters: &SyncCounters) {
        let mut start = 0;
        while start < records.len() {
            let header = self.header(MessageKind::Connections, resync);
            let mut buf = std::mem::take(&mut self.buf);
            let packed = R::pack(&mut buf, &header, &records[start..], self.key.as_ref());
            let Some((n, len)) = packed else {
                self.buf = buf;
                return;
            };
            if self.socket.send_to(&buf[..len], self.peer).is_ok() {
                counters.sent_datagrams.fetch_add(1, Ordering::Relaxed);
                counters.sent_records.fetch_add(n as u64, Ordering::Relaxed);
            }
            self.buf = buf;
            if n == 0 {
                break;
            }
            start += n;
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

    fn send_control(&mut self, kind: MessageKind, counters: &SyncCounters) {
        let header = self.header(kind, kind == MessageKind::ResyncDone);
        let mut buf = std::mem::take(&mut self.buf);
        if let Ok(b) = Builder::new(&mut buf, &header) {
            let len = b.finish(self.key.as_ref()).len();
            if self.socket.send_to(&buf[..len], self.peer).is_ok() {
                counters.sent_datagrams.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.buf = buf;
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
    let mut tx = Outbox {
        socket: send_socket,
        peer: settings.peer,
        node_id: settings.node_id,
        boot: boot_id(),
        seq: 0,
        key: settings.key.clone(),
        buf: vec![0u8; MAX_DATAGRAM_LEN],
        pending: Vec::new(),
        pending6: Vec::new(),
    };
    let counters = &shared.counters;
    let mut rx_buf = vec![0u8; 2048];
    // The peer is the configured address and port; its id and boot are
    // what its (authenticated, with a key) datagrams say.
    let mut gate = PeerGate::new(settings.node_id, settings.peer, settings.key.clone());
    let mut filter = RecordFilter::new(settings.services.clone(), settings.timeouts);
    let mut dumps = DumpLimiter::new(DUMP_MIN_INTERVAL);
    let mut resynced = false;
    let mut last_request: Option<Instant> = None;
    let mut per_worker: Vec<Vec<SyncEvent>> = vec![Vec::new(); workers.len()];
    let mut per_worker6: Vec<Vec<SyncEvent6>> = vec![Vec::new(); workers.len()];
    // A record goes to the worker whose queue the NICs' RSS delivers its
    // client's packets to.
    let owners = RssModel::new(workers.len());
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let master = shared.master.load(Ordering::Relaxed);
        if let Some(services) = shared.services.lock().ok().and_then(|mut s| s.take()) {
            filter.set_services(services);
        }
        // Outgoing: what the workers reported (a backup's workers report
        // nothing; drain anyway so buffers circulate).
        for c in &collectors {
            c.drain(|ev| {
                if master {
                    tx.queue(ev);
                }
            });
        }
        if !tx.is_idle() {
            tx.send_records(false, counters);
        }
        // A backup that has no full picture yet asks for one.
        if !master && !resynced && last_request.is_none_or(|t| t.elapsed() >= RESYNC_RETRY) {
            tx.send_control(MessageKind::ResyncRequest, counters);
            last_request = Some(Instant::now());
        }
        // Incoming, until the interval is used up.
        while let Ok((n, from)) = socket.recv_from(&mut rx_buf) {
            let (packet, admitted) = match gate.admit(from, &rx_buf[..n]) {
                Ok(p) => p,
                Err(e) => {
                    counters.drop(e);
                    continue;
                }
            };
            if let (Some(run), Ok(mut p)) = (gate.run(), shared.peer.lock()) {
                *p = Some(PeerInfo {
                    sender: run.sender,
                    boot: run.boot,
                });
            }
            counters.received_datagrams.fetch_add(1, Ordering::Relaxed);
            counters
                .missed
                .fetch_add(admitted.missed, Ordering::Relaxed);
            if admitted.restarted {
                counters.peer_restarts.fetch_add(1, Ordering::Relaxed);
            }
            let master = shared.master.load(Ordering::Relaxed);
            match packet.kind() {
                MessageKind::ResyncRequest if master => {
                    if dumps.allow(Instant::now()) {
                        answer_resync(&workers, &mut tx, counters);
                    } else {
                        counters.drop(SyncError::DumpRateLimited);
                    }
                }
                MessageKind::ResyncDone if !master => {
                    resynced = true;
                    counters.resyncs.fetch_add(1, Ordering::Relaxed);
                }
                MessageKind::Connections if !master && packet.family() == Family::Ipv6 => {
                    // The same filter rules, by the service's IPv6 VIP and
                    // the real server's IPv6 endpoint.
                    for r in packet.records6() {
                        match r.and_then(|r| filter.check6(&r)) {
                            Ok(a) => {
                                if a.capped {
                                    counters.ttl_capped.fetch_add(1, Ordering::Relaxed);
                                }
                                let ev = a.record.event();
                                let w = owners.worker_of6(ev.client.ip);
                                per_worker6[w].push(ev);
                            }
                            Err(e) => {
                                counters.records_dropped[e as usize]
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                MessageKind::Connections if !master => {
                    for r in packet.records() {
                        match r.and_then(|r| filter.check(&r)) {
                            Ok(a) => {
                                if a.capped {
                                    counters.ttl_capped.fetch_add(1, Ordering::Relaxed);
                                }
                                let ev = a.record.event();
                                let w = owners.worker_of(ev.client.ip);
                                per_worker[w].push(ev);
                            }
                            Err(e) => {
                                counters.records_dropped[e as usize]
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                // A master ignores the other's records (split brain: the
                // other side will be told to back off by keepalived).
                _ => {}
            }
        }
        for (w, events) in per_worker.iter_mut().enumerate() {
            if !events.is_empty() {
                counters
                    .received_records
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let _ = workers[w].send(Command::InstallConns(std::mem::take(events)));
            }
        }
        for (w, events) in per_worker6.iter_mut().enumerate() {
            if !events.is_empty() {
                counters
                    .received_records
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let _ = workers[w].send(Command::InstallConns6(std::mem::take(events)));
            }
        }
        if master {
            // A new master has what it has; a later demotion asks again.
            resynced = false;
            last_request = None;
        }
        if let Some(left) = settings.interval.checked_sub(started.elapsed()) {
            std::thread::sleep(left);
        }
    }
}

/// Sends every live connection of every worker, then "done".
fn answer_resync(workers: &[Sender<Command>], tx: &mut Outbox, counters: &SyncCounters) {
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
    tx.send_records(true, counters);
    tx.send_control(MessageKind::ResyncDone, counters);
    counters.resyncs.fetch_add(1, Ordering::Relaxed);
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
            initial_master: master,
            listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, listen),
            peer: SocketAddrV4::new(Ipv4Addr::LOCALHOST, peer),
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
