//! Packets waiting for a neighbour's MAC address.
//!
//! When the next hop of a packet has no ARP entry the worker asks for it
//! (an ARP request) and parks the packet here, like a kernel's neighbour
//! queue: at most [`FRAMES_PER_NEIGHBOR`] packets per address, at most
//! `capacity` addresses at once, all slots allocated at start. The reply
//! releases them; an address that stays silent is asked again every
//! [`RETRY_NS`] and given up after [`GIVE_UP_NS`], its packets dropped and
//! counted. A full queue drops the new packet (counted), never an older one.
//! The same queue serves IPv6 next hops resolved by neighbour solicitation
//! (`PendingQueue<F, Ipv6Addr>`).

use crate::net::neigh::NeighAddr;
use std::net::Ipv4Addr;

/// Packets kept per unresolved address (Linux's default `unres_qlen` is
/// larger; a balancer resolves a handful of real servers and gateways).
pub const FRAMES_PER_NEIGHBOR: usize = 4;
/// Interval between ARP requests for one unresolved address.
pub const RETRY_NS: u64 = 1_000_000_000;
/// How long an address may stay unresolved before its packets are dropped.
pub const GIVE_UP_NS: u64 = 3_000_000_000;

struct Slot<F, A> {
    /// The unspecified address marks a free slot.
    ip: A,
    port: u16,
    since_ns: u64,
    last_request_ns: u64,
    frames: [Option<F>; FRAMES_PER_NEIGHBOR],
}

/// What `park` did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Parked<F> {
    /// Kept; the caller should send an ARP request now (first packet for
    /// this address, or the retry interval has passed).
    AskNow,
    /// Kept; a request is already out.
    Waiting,
    /// Not kept: this address's queue or the whole table is full.
    Full(F),
}

/// The parked packets of one worker.
pub struct PendingQueue<F, A = Ipv4Addr> {
    slots: Vec<Slot<F, A>>,
}

impl<F, A: NeighAddr> std::fmt::Debug for PendingQueue<F, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.slots.iter().filter(|s| s.ip != A::EMPTY).count();
        write!(f, "PendingQueue({used}/{} addresses)", self.slots.len())
    }
}

impl<F, A: NeighAddr> PendingQueue<F, A> {
    /// Room for `capacity` unresolved addresses.
    pub fn new(capacity: usize) -> PendingQueue<F, A> {
        PendingQueue {
            slots: (0..capacity.max(1))
                .map(|_| Slot {
                    ip: A::EMPTY,
                    port: 0,
                    since_ns: 0,
                    last_request_ns: 0,
                    frames: std::array::from_fn(|_| None),
                })
                .collect(),
        }
    }

    /// Parks `frame` until `ip` (reached through `port`) is resolved.
    pub fn park(&mut self, ip: A, port: u16, frame: F, now: u64) -> Parked<F> {
        let idx = match self.slots.iter().position(|s| s.ip == ip) {
            Some(i) => i,
            None => match self.slots.iter().position(|s| s.ip == A::EMPTY) {
                Some(i) => {
                    let s = &mut self.slots[i];
                    s.ip = ip;
                    s.port = port;
                    s.since_ns = now;
                    s.last_request_ns = 0;
                    i
                }
                None => return Parked::Full(frame),
            },
        };
        let s = &mut self.slots[idx];
        let Some(free) = s.frames.iter_mut().find(|f| f.is_none()) else {
            return Parked::Full(frame);
        };
        *free = Some(frame);
        if s.last_request_ns == 0 || now.saturating_sub(s.last_request_ns) >= RETRY_NS {
            s.last_request_ns = now.max(1);
            Parked::AskNow
        } else {
            Parked::Waiting
        }
    }

    /// Takes every packet parked for `ip` (it has just been resolved).
    pub fn release(&mut self, ip: A, mut each: impl FnMut(u16, F)) {
        if ip == A::EMPTY {
            return;
        }
        if let Some(s) = self.slots.iter_mut().find(|s| s.ip == ip) {
            for f in s.frames.iter_mut() {
                if let Some(frame) = f.take() {
                    each(s.port, frame);
                }
            }
            s.ip = A::EMPTY;
        }
    }

    /// True when packets wait for `ip` (an answer about it is awaited).
    pub fn contains(&self, ip: A) -> bool {
        ip != A::EMPTY && self.slots.iter().any(|s| s.ip == ip)
    }

    /// Timed chores: addresses due for another ARP request go to `ask`;
    /// those past [`GIVE_UP_NS`] lose their packets to `give_up`.
    pub fn tick(&mut self, now: u64, mut ask: impl FnMut(A, u16), mut give_up: impl FnMut(F)) {
        for s in self.slots.iter_mut().filter(|s| s.ip != A::EMPTY) {
            if now.saturating_sub(s.since_ns) >= GIVE_UP_NS {
                for f in s.frames.iter_mut() {
                    if let Some(frame) = f.take() {
                        give_up(frame);
                    }
                }
                s.ip = A::EMPTY;
            } else if now.saturating_sub(s.last_request_ns) >= RETRY_NS {
                s.last_request_ns = now.max(1);
                ask(s.ip, s.port);
            }
        }
    }

    /// Frames parked now (the neighbour queue's fill, for stats).
    pub fn frames(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.frames.iter().filter(|f| f.is_some()).count())
            .sum()
    }

    /// Frames it can park at most: every address slot full.
    pub fn frame_capacity(&self) -> usize {
        self.slots.len() * FRAMES_PER_NEIGHBOR
    }

    /// True when nothing is parked (lets the worker skip `tick`).
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.ip == A::EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
    const B: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 12);
    const S: u64 = 1_000_000_000;

    #[test]
    fn frames_counts_what_is_parked_against_the_capacity() {
        let mut q: PendingQueue<u32> = PendingQueue::new(2);
        assert_eq!(
            (q.frames(), q.frame_capacity()),
            (0, 2 * FRAMES_PER_NEIGHBOR)
        );
        q.park(A, 0, 1, 0);
        q.park(A, 0, 2, 0);
        q.park(B, 1, 3, 0);
        assert_eq!(q.frames(), 3);
        q.release(A, |_, _| {});
        assert_eq!(q.frames(), 1);
    }

    #[test]
    fn first_packet_asks_then_waits() {
        let mut q = PendingQueue::new(4);
        assert_eq!(q.park(A, 1, 'a', 10), Parked::AskNow);
        assert_eq!(q.park(A, 1, 'b', 20), Parked::Waiting);
        let mut out = Vec::new();
        q.release(A, |p, f| out.push((p, f)));
        assert_eq!(out, vec![(1, 'a'), (1, 'b')]);
        assert!(q.is_empty());
    }

    #[test]
    fn per_address_queue_is_bounded() {
        let mut q = PendingQueue::new(4);
        for i in 0..FRAMES_PER_NEIGHBOR {
            assert_ne!(q.park(A, 0, i, 0), Parked::Full(i));
        }
        assert_eq!(q.park(A, 0, 99, 0), Parked::Full(99));
    }

    #[test]
    fn address_table_is_bounded() {
        let mut q = PendingQueue::new(1);
        q.park(A, 0, 1, 0);
        assert_eq!(q.park(B, 0, 2, 0), Parked::Full(2));
    }

    #[test]
    fn silent_address_is_asked_again_then_given_up() {
        let mut q = PendingQueue::new(2);
        q.park(A, 3, 'x', S);
        let mut asked = Vec::new();
        let mut dropped = Vec::new();
        q.tick(S + S / 2, |ip, p| asked.push((ip, p)), |f| dropped.push(f));
        assert!(asked.is_empty(), "not before the retry interval");
        q.tick(2 * S + 1, |ip, p| asked.push((ip, p)), |f| dropped.push(f));
        assert_eq!(asked, vec![(A, 3)]);
        q.tick(
            S + GIVE_UP_NS,
            |ip, p| asked.push((ip, p)),
            |f| dropped.push(f),
        );
        assert_eq!(dropped, vec!['x']);
        assert!(q.is_empty());
    }

    #[test]
    fn releasing_an_unknown_address_does_nothing() {
        let mut q: PendingQueue<u8> = PendingQueue::new(2);
        q.release(A, |_, _| panic!("nothing parked"));
    }

    #[test]
    fn ipv6_next_hops_park_and_release_like_ipv4() {
        let a: std::net::Ipv6Addr = "2001:db8:1::11".parse().unwrap();
        let mut q: PendingQueue<char, std::net::Ipv6Addr> = PendingQueue::new(1);
        assert_eq!(q.park(a, 2, 'a', 10), Parked::AskNow);
        assert_eq!(
            q.park("2001:db8:1::12".parse().unwrap(), 2, 'b', 10),
            Parked::Full('b')
        );
        let mut out = Vec::new();
        q.release(a, |p, f| out.push((p, f)));
        assert_eq!(out, vec![(2, 'a')]);
        assert!(q.is_empty());
    }
}
