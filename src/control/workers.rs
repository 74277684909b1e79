//! The workers as the control thread sees them: one command channel each
//! and the cell each publishes its counters in. The control thread never
//! touches a worker's state any other way, so this is all the control
//! plane needs to run (and to be tested) without DPDK: a test's "worker"
//! is the receiving end of a channel.

use super::report::WorkerSnapshot;
use crate::dataplane::stats::StatsCell;
use crate::dataplane::sync::{sync_channel, SyncCollector, SyncQueue};
use crate::dataplane::worker::{Command, ConnInfo};
use crate::lb::service::ServiceTable;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workers' command channels and stats cells, in worker order.
#[derive(Clone, Debug, Default)]
pub struct Workers {
    senders: Vec<Sender<Command>>,
    cells: Vec<(u32, Arc<StatsCell>)>,
}

impl Workers {
    /// `senders[i]` and `cells[i]` (with its lcore) belong to worker `i`.
    pub fn new(senders: Vec<Sender<Command>>, cells: Vec<(u32, Arc<StatsCell>)>) -> Workers {
        Workers { senders, cells }
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// The command channels (what the HA sync hands records through).
    pub fn senders(&self) -> &[Sender<Command>] {
        &self.senders
    }

    /// The stats cells with their lcores (what the metrics thread reads).
    pub fn cells(&self) -> &[(u32, Arc<StatsCell>)] {
        &self.cells
    }

    /// Makes room in every worker's stats cell for `real_servers` servers'
    /// and `services` virtual servers' counters: called before a table
    /// with that many reaches them (a reload), so no counters go missing.
    pub fn reserve(&self, real_servers: usize, services: usize) {
        for (_, cell) in &self.cells {
            cell.reserve(real_servers, services);
        }
    }

    /// Sends `make()` to every worker. A worker that has gone (it stopped)
    /// is skipped: the control thread outlives the workers at shutdown.
    pub fn broadcast(&self, make: impl Fn() -> Command) {
        for tx in &self.senders {
            let _ = tx.send(make());
        }
    }

    /// Sends `command` to the first worker only (gratuitous ARPs: every
    /// worker has the same addresses, one announcing is enough).
    pub fn send_first(&self, command: Command) {
        if let Some(tx) = self.senders.first() {
            let _ = tx.send(command);
        }
    }

    /// Connections that carried a packet on this node (not only installed
    /// by sync), summed over the workers' last published counters
    /// (`WorkerStats::local_conns`): what `rvsadm drain` reports.
    pub fn local_conns(&self) -> u64 {
        self.cells
            .iter()
            .map(|(_, c)| c.snapshot().local_conns)
            .sum()
    }

    /// What every worker last published.
    pub fn snapshots(&self) -> Vec<WorkerSnapshot> {
        snapshots(&self.cells)
    }

    /// Up to `limit` connections, asked of every worker, each answer
    /// awaited until `timeout` after the question (a busy or stopped worker
    /// is left out rather than holding up the control thread).
    pub fn dump_conns(&self, limit: usize, timeout: Duration) -> Vec<ConnInfo> {
        let (tx, rx) = mpsc::channel();
        self.broadcast(|| Command::DumpConns {
            limit,
            reply: tx.clone(),
        });
        drop(tx);
        let deadline = Instant::now() + timeout;
        let mut conns = Vec::new();
        for _ in 0..self.senders.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(batch) => conns.extend(batch),
                Err(_) => break,
            }
        }
        conns.truncate(limit);
        conns
    }
}

/// What one worker takes to its lcore: where its commands arrive, where
/// it publishes its counters, and (with `[ha]`) where it reports
/// connections for the sync.
#[derive(Debug)]
pub struct WorkerEnds {
    /// Commands from the control thread.
    pub commands: Receiver<Command>,
    /// Its stats cell.
    pub cell: Arc<StatsCell>,
    /// Its sync queue, when HA is configured.
    pub sync: Option<SyncQueue>,
}

/// Real servers later reloads may add beyond the first table's: the room
/// each stats cell keeps for them from the start. A reload that adds more
/// grows the cells first (`Workers::reserve`).
pub const RELOAD_HEADROOM: usize = 1024;

/// Makes the channels and stats cells of workers on `lcores`, in worker
/// order: the control side (`Workers`, and the sync collectors when
/// `sync`) and each worker's ends. Each cell has room for the real servers
/// of `services` and `RELOAD_HEADROOM` more.
pub fn connect(
    lcores: &[u32],
    services: &ServiceTable,
    sync: bool,
) -> (Workers, Vec<SyncCollector>, Vec<WorkerEnds>) {
    let real_servers: usize = services
        .services()
        .iter()
        .map(|s| s.real_servers.len())
        .sum::<usize>()
        + RELOAD_HEADROOM;
    let mut workers = Workers::default();
    let mut collectors = Vec::new();
    let mut ends = Vec::with_capacity(lcores.len());
    for &lcore in lcores {
        let (tx, commands) = mpsc::channel();
        let cell = Arc::new(
            StatsCell::new(real_servers).with_service_room(services.len() + RELOAD_HEADROOM),
        );
        workers.senders.push(tx);
        workers.cells.push((lcore, cell.clone()));
        let sync = sync.then(|| {
            let (queue, collector) = sync_channel();
            collectors.push(collector);
            queue
        });
        ends.push(WorkerEnds {
            commands,
            cell,
            sync,
        });
    }
    (workers, collectors, ends)
}

/// What the workers behind `cells` last published.
pub fn snapshots(cells: &[(u32, Arc<StatsCell>)]) -> Vec<WorkerSnapshot> {
    cells
        .iter()
        .map(|(lcore, cell)| WorkerSnapshot {
            lcore: *lcore,
            stats: cell.snapshot(),
            real_servers: cell.real_servers(),
            connections: cell.connections(),
            fill: cell.fill(),
            refused: cell.refused(),
            overloaded: cell.overloaded(),
            local: cell.local_usage(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_pairs_each_worker_with_its_channel_and_cell() {
        let (workers, collectors, ends) = connect(&[3, 5], &ServiceTable::default(), true);
        assert_eq!(workers.len(), 2);
        assert_eq!(collectors.len(), 2);
        workers.send_first(Command::Garp);
        assert!(matches!(ends[0].commands.try_recv(), Ok(Command::Garp)));
        assert!(ends[1].commands.try_recv().is_err());
        assert!(ends.iter().all(|e| e.sync.is_some()));
        let lcores: Vec<u32> = workers.cells().iter().map(|(l, _)| *l).collect();
        assert_eq!(lcores, vec![3, 5]);
        assert!(Arc::ptr_eq(&workers.cells()[1].1, &ends[1].cell));
    }

    #[test]
    fn without_ha_workers_get_no_sync_queue() {
        let (_, collectors, ends) = connect(&[1], &ServiceTable::default(), false);
        assert!(collectors.is_empty());
        assert!(ends[0].sync.is_none());
    }

    #[test]
    fn dump_conns_leaves_out_a_worker_that_does_not_answer() {
        let (workers, _, _ends) = connect(&[1], &ServiceTable::default(), false);
        let t = Instant::now();
        assert!(workers.dump_conns(10, Duration::from_millis(50)).is_empty());
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
