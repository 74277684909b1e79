//! The worker's poll loop.
//!
//! One iteration: read the clock once, receive a burst from every port,
//! hand each frame to the worker (which sends, keeps or drops it), flush
//! every port's transmit batch, let the worker do its timed chores, and
//! publish counters when due. Nothing here allocates after start: the
//! burst vectors are sized once.

use super::io::{Clock, Frame, Output, PacketIo};
use super::stats::{DropReason, StatsCell, WorkerStats};
use super::worker::{Command, Worker};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// How the loop behaves; fixed for the life of a worker.
#[derive(Clone, Copy, Debug)]
pub struct PollParams {
    /// Frames received per port per poll (and tx batch size).
    pub burst_size: usize,
    /// Sleep after a poll that received nothing; zero busy-polls.
    pub idle_sleep: Duration,
    /// How often counters are published to the control thread.
    pub publish_interval_ns: u64,
    /// Workers in all (for the hand-over batches); 1 when alone.
    pub workers: usize,
}

/// Transmit batches, one per port, that flush to the device when full.
pub struct Sink<'a, I: PacketIo> {
    io: &'a mut I,
    tx: &'a mut [Vec<I::Frame>],
    /// Hand-over batches to other workers, `[worker][port]`.
    handover: &'a mut [Vec<Vec<I::Frame>>],
    stats: &'a mut WorkerStats,
}

impl<I: PacketIo> Output<I::Frame> for Sink<'_, I> {
    #[inline]
    fn send(&mut self, port: usize, frame: I::Frame) {
        let Some(queue) = self.tx.get_mut(port) else {
            self.stats.drop(DropReason::BadPort);
            return;
        };
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += frame.data().len() as u64;
        queue.push(frame);
        if queue.len() == queue.capacity() {
            flush(self.io, self.stats, port, queue);
        }
    }

    fn alloc(&mut self, len: usize) -> Option<I::Frame> {
        self.io.alloc(len)
    }

    #[inline]
    fn redirect(&mut self, worker: usize, port: usize, frame: I::Frame) {
        let Some(queue) = self.handover.get_mut(worker).and_then(|w| w.get_mut(port)) else {
            self.stats.drop(DropReason::RedirectFull);
            return;
        };
        self.stats.redirected += 1;
        queue.push(frame);
        if queue.len() == queue.capacity() {
            flush_handover(self.io, self.stats, worker, port, queue);
        }
    }
}

/// Runs `worker` over `io` until `stop` becomes true, then publishes the
/// final counters. Transmit batches still queued are flushed before return.
pub fn run<I: PacketIo, C: Clock>(
    worker: &mut Worker<I::Frame>,
    io: &mut I,
    clock: &C,
    stop: &AtomicBool,
    cell: &StatsCell,
    commands: Option<&Receiver<Command>>,
    params: PollParams,
) {
    let burst = params.burst_size.max(1);
    let ports = io.port_count();
    let mut rx: Vec<Vec<I::Frame>> = (0..ports).map(|_| Vec::with_capacity(burst)).collect();
    let mut tx: Vec<Vec<I::Frame>> = (0..ports).map(|_| Vec::with_capacity(burst)).collect();
    let mut handover: Vec<Vec<Vec<I::Frame>>> = (0..params.workers)
        .map(|_| (0..ports).map(|_| Vec::with_capacity(burst)).collect())
        .collect();
    let mut last_publish = clock.now_ns();

    while !stop.load(Ordering::Relaxed) {
        let now = clock.now_ns();
        if let Some(rx) = commands {
            while let Ok(cmd) = rx.try_recv() {
                let mut stats = WorkerStats::default();
                let mut sink = Sink {
                    io: &mut *io,
                    tx: &mut tx,
                    handover: &mut handover,
                    stats: &mut stats,
                };
                worker.command(cmd, now, &mut sink);
                worker.stats.add(&stats);
            }
        }
        let received = poll_once(worker, io, now, &mut rx, &mut tx, &mut handover);
        if received == 0 {
            worker.stats.idle_polls += 1;
            if !params.idle_sleep.is_zero() {
                std::thread::sleep(params.idle_sleep);
            }
        } else {
            worker.stats.busy_polls += 1;
        }
        if now.wrapping_sub(last_publish) >= params.publish_interval_ns {
            worker.publish(cell);
            last_publish = now;
        }
    }
    worker.publish(cell);
}

/// One pass over every port: every port's device queue first, decided
/// together, then what other workers handed over, port by port. `rx`
/// holds one burst vector per port. Returns the number of frames
/// received.
pub fn poll_once<I: PacketIo>(
    worker: &mut Worker<I::Frame>,
    io: &mut I,
    now: u64,
    rx: &mut [Vec<I::Frame>],
    tx: &mut [Vec<I::Frame>],
    handover: &mut [Vec<Vec<I::Frame>>],
) -> usize {
    debug_assert_eq!(rx.len(), io.port_count(), "one rx burst per port");
    let mut received = 0;
    let mut stats = WorkerStats::default();
    // Every port's device queue first, decided together (the worker warms
    // its caches for all of them at once), then what other workers handed
    // over, port by port.
    for (port, burst) in rx.iter_mut().enumerate().take(io.port_count()) {
        io.rx_burst(port, burst);
        received += burst.len();
    }
    if received > 0 {
        let mut sink = Sink {
            io: &mut *io,
            tx: &mut *tx,
            handover: &mut *handover,
            stats: &mut stats,
        };
        worker.handle_bursts(rx, now, &mut sink);
    }
    for (port, burst) in rx.iter_mut().enumerate().take(io.port_count()) {
        io.redirect_rx(port, burst);
        if burst.is_empty() {
            continue;
        }
        received += burst.len();
        let mut sink = Sink {
            io: &mut *io,
            tx: &mut *tx,
            handover: &mut *handover,
            stats: &mut stats,
        };
        worker.handle_burst_from_peer(port, burst, now, &mut sink);
    }
    {
        let mut sink = Sink {
            io: &mut *io,
            tx: &mut *tx,
            handover: &mut *handover,
            stats: &mut stats,
        };
        worker.tick(now, &mut sink);
    }
    for (port, queue) in tx.iter_mut().enumerate() {
        if !queue.is_empty() {
            flush(io, &mut stats, port, queue);
        }
    }
    for (w, queues) in handover.iter_mut().enumerate() {
        for (port, queue) in queues.iter_mut().enumerate() {
            if !queue.is_empty() {
                flush_handover(io, &mut stats, w, port, queue);
            }
        }
    }
    worker.stats.add(&stats);
    received
}

/// Hands a batch to another worker; what its ring refuses is dropped.
fn flush_handover<I: PacketIo>(
    io: &mut I,
    stats: &mut WorkerStats,
    worker: usize,
    port: usize,
    queue: &mut Vec<I::Frame>,
) {
    io.redirect_tx(worker, port, queue);
    for _frame in queue.drain(..) {
        stats.redirected -= 1;
        stats.drop(DropReason::RedirectFull);
    }
}

/// Sends a port's batch; what the device refuses is dropped and counted.
fn flush<I: PacketIo>(io: &mut I, stats: &mut WorkerStats, port: usize, queue: &mut Vec<I::Frame>) {
    io.tx_burst(port, queue);
    for frame in queue.drain(..) {
        stats.tx_packets -= 1;
        stats.tx_bytes -= frame.data().len() as u64;
        stats.drop(DropReason::TxFull);
    }
}
