//! The workers as the control thread sees them: one command channel each
//! and the cell each publishes its counters in. The control thread never
//! touches a worker's state any other way, so this is all the control
//! plane needs to run (and to be tested) without DPDK: a test's "worker"
//! is the receiving end of a channel.

use super::report::WorkerSnapshot;
use crate::dataplane::stats::StatsCell;
use crate::dataplane::worker::{Command, ConnInfo};
use std::sync::mpsc::{self, Sender};
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

/// What the workers behind `cells` last published.
pub fn snapshots(cells: &[(u32, Arc<StatsCell>)]) -> Vec<WorkerSnapshot> {
    cells
        .iter()
        .map(|(lcore, cell)| WorkerSnapshot {
            lcore: *lcore,
            stats: cell.snapshot(),
            real_servers: cell.real_servers(),
            connections: cell.connections(),
        })
        .collect()
}
