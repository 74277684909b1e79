//! The worker's poll loop.
//!
//! One iteration: read the clock once, receive a burst from every port,
//! let the worker decide each frame, queue transmissions per output port,
//! flush every port's queue, and publish counters when due. Nothing here
//! allocates after start: the burst vectors are sized once.

use super::io::{Clock, Frame, PacketIo};
use super::stats::{DropReason, StatsCell};
use super::worker::{Verdict, Worker};
use std::sync::atomic::{AtomicBool, Ordering};
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
}

/// Runs `worker` over `io` until `stop` becomes true, then publishes the
/// final counters. Transmit bursts still queued are flushed before return.
pub fn run<I: PacketIo, C: Clock>(
    worker: &mut Worker,
    io: &mut I,
    clock: &C,
    stop: &AtomicBool,
    cell: &StatsCell,
    params: PollParams,
) {
    let burst = params.burst_size.max(1);
    let ports = io.port_count();
    let mut rx: Vec<I::Frame> = Vec::with_capacity(burst);
    let mut tx: Vec<Vec<I::Frame>> = (0..ports).map(|_| Vec::with_capacity(burst)).collect();
    let mut last_publish = clock.now_ns();

    while !stop.load(Ordering::Relaxed) {
        let now = clock.now_ns();
        let received = poll_once(worker, io, now, &mut rx, &mut tx);
        if received == 0 {
            worker.stats.idle_polls += 1;
            if !params.idle_sleep.is_zero() {
                std::thread::sleep(params.idle_sleep);
            }
        } else {
            worker.stats.busy_polls += 1;
        }
        if now.wrapping_sub(last_publish) >= params.publish_interval_ns {
            cell.publish(&worker.stats);
            last_publish = now;
        }
    }
    cell.publish(&worker.stats);
}

/// One pass over every port; returns the number of frames received.
pub fn poll_once<I: PacketIo>(
    worker: &mut Worker,
    io: &mut I,
    now: u64,
    rx: &mut Vec<I::Frame>,
    tx: &mut [Vec<I::Frame>],
) -> usize {
    let mut received = 0;
    for port in 0..io.port_count() {
        io.rx_burst(port, rx);
        received += rx.len();
        for mut frame in rx.drain(..) {
            match worker.handle(port, frame.data_mut(), now) {
                Verdict::Transmit(out) => {
                    let Some(queue) = tx.get_mut(out) else {
                        continue;
                    };
                    worker.stats.tx_packets += 1;
                    worker.stats.tx_bytes += frame.data().len() as u64;
                    queue.push(frame);
                    if queue.len() == queue.capacity() {
                        flush(worker, io, out, queue);
                    }
                }
                Verdict::Consumed | Verdict::Drop(_) => {}
            }
        }
    }
    for (port, queue) in tx.iter_mut().enumerate() {
        if !queue.is_empty() {
            flush(worker, io, port, queue);
        }
    }
    received
}

/// Sends a port's queue; what the device refuses is dropped and counted.
fn flush<I: PacketIo>(worker: &mut Worker, io: &mut I, port: usize, queue: &mut Vec<I::Frame>) {
    io.tx_burst(port, queue);
    for frame in queue.drain(..) {
        worker.stats.tx_packets -= 1;
        worker.stats.tx_bytes -= frame.data().len() as u64;
        worker.stats.drop(DropReason::TxFull);
    }
}
