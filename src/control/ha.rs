//! High availability at run time: the balancer's role (master or backup,
//! set by keepalived through `rvsadm ha`), gratuitous ARPs when it becomes
//! master, and the connection sync with the peer over UDP on the
//! management network (`ha::sync` is the format, `docs/sync-protocol.md`
//! the specification).
//!
//! The sync runs on its own thread, every `sync_interval`: it takes the
//! events the workers reported (`dataplane::sync`), packs them into
//! datagrams of up to 49 records and sends them to the peer while this
//! balancer is master; it receives the peer's datagrams, checks them
//! (foreign, malformed and self-sent ones are dropped and counted by
//! reason) and hands each record to the worker that owns its client while
//! this balancer is backup. A backup asks for a full resync when it starts
//! and until the master says it is done; a master answers a request with
//! every live connection of every worker.

use crate::dataplane::sync::{SyncCollector, SyncEvent};
use crate::dataplane::worker::Command;
use crate::ha::sync::{
    Builder, Error as SyncError, Header, MessageKind, Packet, Record, SeqCheck, SeqTracker,
    MAX_DATAGRAM_LEN,
};
use crate::net::rss::RssModel;
use serde_json::{json, Value};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a backup repeats its resync request until the master is done.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// What the HA runtime needs from the config.
#[derive(Clone, Debug)]
pub struct HaSettings {
    /// This balancer's id in sync datagrams.
    pub node_id: u32,
    /// Start as master (else backup).
    pub initial_master: bool,
    /// Where sync datagrams are received.
    pub listen: SocketAddrV4,
    /// Where they are sent.
    pub peer: SocketAddrV4,
    /// How often the master sends a batch.
    pub interval: Duration,
}

/// Counters of the sync, for `rvsadm ha status` and metrics.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Datagrams sent.
    pub sent_datagrams: AtomicU64,
    /// Records sent.
    pub sent_records: AtomicU64,
    /// Datagrams received and accepted.
    pub received_datagrams: AtomicU64,
    /// Records handed to the workers.
    pub received_records: AtomicU64,
    /// Datagrams dropped, by `ha::sync::Error` reason.
    pub dropped: [AtomicU64; SyncError::COUNT],
    /// Records skipped (unknown protocol or state).
    pub bad_records: AtomicU64,
    /// Datagrams missed, from sequence gaps.
    pub missed: AtomicU64,
    /// Full resyncs answered (master) or completed (backup).
    pub resyncs: AtomicU64,
}

struct Shared {
    master: AtomicBool,
    since: Mutex<Instant>,
    stop: AtomicBool,
    counters: SyncCounters,
}

/// The running HA: the role and the sync thread.
pub struct Ha {
    settings: HaSettings,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
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
        let dropped: serde_json::Map<String, Value> = SyncError::ALL
            .iter()
            .map(|e| {
                (
                    e.name().to_string(),
                    json!(c.dropped[*e as usize].load(Ordering::Relaxed)),
                )
            })
            .collect();
        json!({
            "role": if self.is_master() { "master" } else { "backup" },
            "configured": true,
            "detail": format!("node {} syncing with {}, {} for {} s",
                self.settings.node_id, self.settings.peer,
                if self.is_master() { "master" } else { "backup" }, since),
            "node_id": self.settings.node_id,
            "peer": self.settings.peer.to_string(),
            "seconds_in_role": since,
            "sync": {
                "sent_datagrams": c.sent_datagrams.load(Ordering::Relaxed),
                "sent_records": c.sent_records.load(Ordering::Relaxed),
                "received_datagrams": c.received_datagrams.load(Ordering::Relaxed),
                "received_records": c.received_records.load(Ordering::Relaxed),
                "missed_datagrams": c.missed.load(Ordering::Relaxed),
                "bad_records": c.bad_records.load(Ordering::Relaxed),
                "resyncs": c.resyncs.load(Ordering::Relaxed),
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

/// Packs events into datagrams and sends them.
struct Outbox {
    socket: UdpSocket,
    peer: SocketAddrV4,
    node_id: u32,
    seq: u32,
    buf: Vec<u8>,
    pending: Vec<Record>,
}

impl Outbox {
    fn header(&mut self, kind: MessageKind, resync: bool) -> Header {
        self.seq = self.seq.wrapping_add(1);
        Header {
            kind,
            resync,
            sender: self.node_id,
            seq: self.seq,
        }
    }

    /// Sends `pending` in as many full datagrams as needed.
    fn send_records(&mut self, resync: bool, counters: &SyncCounters) {
        let mut start = 0;
        while start < self.pending.len() {
            let header = self.header(MessageKind::Connections, resync);
            let mut buf = std::mem::take(&mut self.buf);
            let (n, len) = {
                let Ok(mut b) = Builder::new(&mut buf, &header) else {
                    self.buf = buf;
                    return;
                };
                let mut n = 0;
                for r in &self.pending[start..] {
                    if b.push(r).is_err() {
                        break;
                    }
                    n += 1;
                }
                (n, b.finish().len())
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
        self.pending.clear();
    }

    fn send_control(&mut self, kind: MessageKind) {
        let header = self.header(kind, kind == MessageKind::ResyncDone);
        let mut buf = std::mem::take(&mut self.buf);
        if let Ok(b) = Builder::new(&mut buf, &header) {
            let len = b.finish().len();
            let _ = self.socket.send_to(&buf[..len], self.peer);
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
        seq: 0,
        buf: vec![0u8; MAX_DATAGRAM_LEN],
        pending: Vec::new(),
    };
    let counters = &shared.counters;
    let mut rx_buf = vec![0u8; 2048];
    let mut seq = SeqTracker::new();
    // The peer's node id, learned from its first datagram: the config names
    // the peer by address; a datagram from that address with another id
    // afterwards is someone else's.
    let mut peer_id: Option<u32> = None;
    let mut resynced = false;
    let mut last_request: Option<Instant> = None;
    let mut per_worker: Vec<Vec<SyncEvent>> = vec![Vec::new(); workers.len()];
    // A record goes to the worker whose queue the NICs' RSS delivers its
    // client's packets to.
    let owners = RssModel::new(workers.len());
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let master = shared.master.load(Ordering::Relaxed);
        // Outgoing: what the workers reported (a backup's workers report
        // nothing; drain anyway so buffers circulate).
        for c in &collectors {
            c.drain(|ev| {
                if master {
                    tx.pending.push(Record::from(*ev));
                }
            });
        }
        if !tx.pending.is_empty() {
            tx.send_records(false, counters);
        }
        // A backup that has no full picture yet asks for one.
        if !master && !resynced && last_request.is_none_or(|t| t.elapsed() >= RESYNC_RETRY) {
            tx.send_control(MessageKind::ResyncRequest);
            last_request = Some(Instant::now());
        }
        // Incoming, until the interval is used up.
        while let Ok((n, from)) = socket.recv_from(&mut rx_buf) {
            let from_peer = matches!(from, SocketAddr::V4(a) if a.ip() == settings.peer.ip());
            let packet = match Packet::new_checked(&rx_buf[..n]) {
                Ok(p) => p,
                Err(e) => {
                    counters.dropped[e as usize].fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if packet.sender() == settings.node_id {
                counters.dropped[SyncError::FromSelf as usize].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if !from_peer || peer_id.is_some_and(|id| id != packet.sender()) {
                counters.dropped[SyncError::UnknownPeer as usize].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            peer_id = Some(packet.sender());
            counters.received_datagrams.fetch_add(1, Ordering::Relaxed);
            if let SeqCheck::Gap(n) = seq.observe(packet.seq()) {
                counters.missed.fetch_add(u64::from(n), Ordering::Relaxed);
            }
            let master = shared.master.load(Ordering::Relaxed);
            match packet.kind() {
                MessageKind::ResyncRequest if master => {
                    answer_resync(&workers, &mut tx, counters);
                }
                MessageKind::ResyncDone if !master => {
                    resynced = true;
                    counters.resyncs.fetch_add(1, Ordering::Relaxed);
                }
                MessageKind::Connections if !master => {
                    for r in packet.records() {
                        match r {
                            Ok(r) => {
                                let ev = r.event();
                                let w = owners.worker_of(ev.client.ip);
                                per_worker[w].push(ev);
                            }
                            Err(_) => {
                                counters.bad_records.fetch_add(1, Ordering::Relaxed);
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
            Ok(events) => tx.pending.extend(events.into_iter().map(Record::from)),
            Err(_) => break,
        }
    }
    tx.send_records(true, counters);
    tx.send_control(MessageKind::ResyncDone);
    counters.resyncs.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::sync::sync_channel;
    use crate::lb::service::Protocol;
    use crate::lb::tcp_state::State;
    use crate::lb::xmit::Endpoint;
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
        }
    }

    fn settings(node: u32, master: bool, listen: u16, peer: u16) -> HaSettings {
        HaSettings {
            node_id: node,
            initial_master: master,
            listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, listen),
            peer: SocketAddrV4::new(Ipv4Addr::LOCALHOST, peer),
            interval: Duration::from_millis(5),
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

    #[test]
    fn the_masters_reports_reach_the_backups_worker() {
        let (pm, pb) = (free_port(), free_port());
        let (mut queue, collector) = sync_channel();
        let (mw_tx, mw_rx) = channel();
        let master = Ha::start(settings(1, true, pm, pb), vec![collector], vec![mw_tx]).unwrap();
        let (_bq, bcollector) = sync_channel();
        let (bw_tx, bw_rx) = channel();
        let backup = Ha::start(settings(2, false, pb, pm), vec![bcollector], vec![bw_tx]).unwrap();
        // The backup asks for a resync; the master's (fake) worker has none.
        std::thread::spawn(move || {
            while let Ok(cmd) = mw_rx.recv() {
                if let Command::DumpSync { reply } = cmd {
                    let _ = reply.send(vec![ev(1)]);
                }
            }
        });
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
    fn another_sender_id_from_the_peers_address_is_refused() {
        let (pb, pm) = (free_port(), free_port());
        let (_q, c) = sync_channel();
        let (w, wr) = channel();
        let backup = Ha::start(settings(2, false, pb, pm), vec![c], vec![w]).unwrap();
        // "The peer" is whoever sends from the peer address: bind it.
        let peer = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, pm)).unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb);
        let datagram = |sender: u32, port: u16| {
            let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
            let header = Header {
                kind: MessageKind::Connections,
                resync: false,
                sender,
                seq: 1,
            };
            let mut b = Builder::new(&mut buf, &header).unwrap();
            b.push(&Record::from(ev(port))).unwrap();
            b.finish().to_vec()
        };
        peer.send_to(&datagram(1, 10), to).unwrap();
        assert_eq!(
            installs(&wr, 1).len(),
            1,
            "the first sender id is the peer's"
        );
        peer.send_to(&datagram(4242, 11), to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while backup.status()["sync"]["dropped"]["unknown_peer"] != 1 {
            assert!(Instant::now() < deadline, "{}", backup.status());
            std::thread::sleep(Duration::from_millis(20));
        }
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
