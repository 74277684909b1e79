//! Connection synchronisation, the worker's side: what an active balancer's
//! workers report about their connections (new, and each change of TCP
//! state), and how a standby's worker installs what it is told.
//!
//! A worker's balancer writes events into a buffer it owns (a plain push
//! into reserved capacity); between bursts the worker hands a non-empty
//! buffer to the control thread and takes an empty one back, over two
//! bounded channels whose slots are allocated when they are made. The
//! buffers circulate, so reporting costs no allocation, no lock and no
//! atomic on the packet path; when the control thread falls behind and no
//! empty buffer is there, events are counted as lost (`sync_lost` in the
//! worker's counters) rather than blocking the worker or growing a queue.
//! The control thread encodes the events into sync datagrams (`ha::sync`)
//! for the peer.
//!
//! IPv4 and IPv6 connections share the circulation: a buffer holds
//! [`SyncReport`]s, each one family's event, and the control thread packs
//! each family into its own datagrams (the format keeps a datagram's
//! records of one family).

use crate::lb::service::Protocol;
use crate::lb::tcp_state::State;
use crate::lb::xmit::EndpointOf;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

/// One connection's state as the peer needs it to take the connection
/// over: who, to which service and real server (by address: indexes
/// differ between two balancers' configs), in which state, for how long.
/// Over the addresses of one family: [`SyncEvent`] (IPv4) or
/// [`SyncEvent6`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncEventOf<A> {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// TCP state (UDP: `State::Established` by convention).
    pub state: State,
    /// The service forwards by DR or TUN: replies bypass the balancer.
    pub input_only: bool,
    /// The client's address and port.
    pub client: EndpointOf<A>,
    /// The virtual service's address and port.
    pub vip: EndpointOf<A>,
    /// The real server it goes to.
    pub real: EndpointOf<A>,
    /// Seconds the connection lives without further packets.
    pub timeout_s: u32,
    /// FullNAT: the local address and port the real server sees (the
    /// standby installs the connection with the same, and takes the port
    /// out of its own pool). NAT64's IPv4 local end is IPv4-mapped.
    pub local: Option<EndpointOf<A>>,
}

/// One IPv4 connection's state as the peer needs it.
pub type SyncEvent = SyncEventOf<Ipv4Addr>;

/// One IPv6 connection's state as the peer needs it.
pub type SyncEvent6 = SyncEventOf<Ipv6Addr>;

/// What a worker hands the control thread: one connection's event, of
/// either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncReport {
    /// An IPv4 connection.
    V4(SyncEvent),
    /// An IPv6 connection.
    V6(SyncEvent6),
}

impl From<SyncEvent> for SyncReport {
    fn from(e: SyncEvent) -> SyncReport {
        SyncReport::V4(e)
    }
}

impl From<SyncEvent6> for SyncReport {
    fn from(e: SyncEvent6) -> SyncReport {
        SyncReport::V6(e)
    }
}

/// Events a buffer holds before it is handed over.
pub const BUFFER_EVENTS: usize = 1024;
/// Buffers circulating per worker.
pub const BUFFERS: usize = 4;

/// A worker's end of the circulation.
#[derive(Debug)]
pub struct SyncQueue {
    buf: Vec<SyncReport>,
    full: SyncSender<Vec<SyncReport>>,
    empty: Receiver<Vec<SyncReport>>,
    /// Events dropped because no empty buffer came back in time.
    pub lost: u64,
}

/// The control thread's end: full buffers in, empty ones back.
#[derive(Debug)]
pub struct SyncCollector {
    /// Buffers the worker filled.
    pub full: Receiver<Vec<SyncReport>>,
    /// Where emptied buffers go back.
    pub empty: SyncSender<Vec<SyncReport>>,
}

impl SyncCollector {
    /// Takes every filled buffer, hands each event to `each`, and returns
    /// the buffers empty.
    pub fn drain(&self, mut each: impl FnMut(&SyncReport)) {
        while let Ok(mut buf) = self.full.try_recv() {
            for ev in &buf {
                each(ev);
            }
            buf.clear();
            // Never blocks: the channel has a slot for every buffer.
            let _ = self.empty.try_send(buf);
        }
    }
}

/// A queue for a worker and its collector for the control thread, with
/// [`BUFFERS`] buffers of [`BUFFER_EVENTS`] allocated now, and channels
/// with a slot for each (bounded: their storage is allocated here, and a
/// send never waits).
pub fn sync_channel() -> (SyncQueue, SyncCollector) {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel(BUFFERS);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel(BUFFERS);
    for _ in 1..BUFFERS {
        let _ = empty_tx.try_send(Vec::with_capacity(BUFFER_EVENTS));
    }
    (
        SyncQueue {
            buf: Vec::with_capacity(BUFFER_EVENTS),
            full: full_tx,
            empty: empty_rx,
            lost: 0,
        },
        SyncCollector {
            full: full_rx,
            empty: empty_tx,
        },
    )
}

impl SyncQueue {
    /// Records an event (on the packet path: a push into reserved
    /// capacity, nothing else); when the buffer is full the event is
    /// counted as lost. Buffers are handed over between bursts
    /// ([`SyncQueue::flush`]); one holds more events than a poll makes.
    #[inline]
    pub fn push(&mut self, ev: impl Into<SyncReport>) {
        if self.buf.len() == self.buf.capacity() {
            self.lost += 1;
            return;
        }
        self.buf.push(ev.into());
    }

    /// Hands the current buffer over when it holds anything and an empty
    /// one can replace it (between bursts). Never blocks or allocates.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Ok(fresh) = self.empty.try_recv() {
            let full = std::mem::replace(&mut self.buf, fresh);
            match self.full.try_send(full) {
                Ok(()) => {}
                // Cannot happen (a slot per buffer), but never wait.
                Err(TrySendError::Full(mut back)) => {
                    self.lost += back.len() as u64;
                    back.clear();
                    self.buf = back;
                }
                // The control thread is gone (shutting down): keep going.
                Err(TrySendError::Disconnected(mut back)) => {
                    back.clear();
                    self.buf = back;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::xmit::{Endpoint, Endpoint6};

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

    #[test]
    fn events_reach_the_collector_and_buffers_come_back() {
        let (mut q, c) = sync_channel();
        for p in 0..10 {
            q.push(ev(p));
        }
        q.flush();
        let mut seen = Vec::new();
        c.drain(|e| {
            if let SyncReport::V4(e) = e {
                seen.push(e.client.port)
            }
        });
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        // The buffer came back: many more rounds never lose an event.
        for round in 0..20 {
            for p in 0..100 {
                q.push(ev(p));
            }
            q.flush();
            let mut n = 0;
            c.drain(|_| n += 1);
            assert_eq!(n, 100, "round {round}");
        }
        assert_eq!(q.lost, 0);
    }

    #[test]
    fn events_of_both_families_share_the_circulation_in_order() {
        let (mut q, c) = sync_channel();
        let v6 = SyncEvent6 {
            protocol: Protocol::Udp,
            state: State::Established,
            input_only: true,
            client: Endpoint6::new("2001:db8:1::7".parse().unwrap(), 5353),
            vip: Endpoint6::new("2001:db8:100::1".parse().unwrap(), 53),
            real: Endpoint6::new("2001:db8:2::11".parse().unwrap(), 53),
            timeout_s: 300,
            local: None,
        };
        q.push(ev(1));
        q.push(v6);
        q.push(ev(2));
        q.flush();
        let mut seen = Vec::new();
        c.drain(|e| seen.push(*e));
        assert_eq!(
            seen,
            vec![
                SyncReport::V4(ev(1)),
                SyncReport::V6(v6),
                SyncReport::V4(ev(2))
            ]
        );
    }

    #[test]
    fn a_collector_that_falls_behind_costs_counted_events_not_a_stall() {
        let (mut q, c) = sync_channel();
        let total = BUFFER_EVENTS * (BUFFERS + 2);
        for p in 0..total {
            q.push(ev(p as u16));
            if p % BUFFER_EVENTS == BUFFER_EVENTS - 1 {
                q.flush(); // between bursts
            }
        }
        assert!(q.lost > 0);
        let mut n = 0;
        c.drain(|_| n += 1);
        assert_eq!(n as u64 + q.lost + q.buf.len() as u64, total as u64);
    }
}
