//! Per-worker counters and how the control thread reads them.
//!
//! A worker counts in plain integers it owns (no atomics on the per-packet
//! path) and every few milliseconds copies them into its [`StatsCell`] with
//! relaxed stores, which are plain moves on x86. The control thread reads
//! the cell whenever it likes and never stalls the worker; a snapshot may be
//! a few milliseconds old, never torn within one counter.

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a worker dropped a frame. Every drop has one, counted and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the headers it claims to carry.
    Truncated,
    /// Header fields that make no sense (bad IHL, lying lengths, odd ARP).
    Malformed,
    /// IPv4 header or ICMP checksum wrong.
    BadChecksum,
    /// Unicast to a MAC address that is not the port's.
    OtherMac,
    /// Neither ARP nor IPv4 (IPv6, LLDP, ...).
    UnsupportedEthertype,
    /// An ARP request for an address that is not ours.
    ArpNotForUs,
    /// IPv4 to an address that is neither ours nor a service.
    NoService,
    /// IPv4 to one of our addresses but not something we answer.
    UnsupportedProtocol,
    /// A fragment addressed to us (we answer unfragmented echo only).
    Fragment,
    /// The device's transmit queue was full.
    TxFull,
    /// TTL 0 or 1: a router must not forward it.
    TtlExpired,
    /// No route to the destination (or to the real server).
    NoRoute,
    /// The next hop did not answer ARP in time, or its queue was full.
    NeighborUnresolved,
    /// TCP that is not a SYN for a service with no connection (or a
    /// reply from a real server that matches no connection).
    NoConnection,
    /// The connection table was full and nothing could be reclaimed.
    TableFull,
    /// Every real server of the service has weight 0 or is down.
    NoRealServer,
    /// Too big to encapsulate, and rvs could not answer with ICMP.
    TooBig,
    /// The ring to the worker that owns the flow was full.
    RedirectFull,
    /// Received on, or to be sent to, a port the worker does not have.
    BadPort,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 19] = [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::OtherMac,
        DropReason::UnsupportedEthertype,
        DropReason::ArpNotForUs,
        DropReason::NoService,
        DropReason::UnsupportedProtocol,
        DropReason::Fragment,
        DropReason::TxFull,
        DropReason::TtlExpired,
        DropReason::NoRoute,
        DropReason::NeighborUnresolved,
        DropReason::NoConnection,
        DropReason::TableFull,
        DropReason::NoRealServer,
        DropReason::TooBig,
        DropReason::RedirectFull,
        DropReason::BadPort,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The name used in logs, `stats:` JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::OtherMac => "other_mac",
            DropReason::UnsupportedEthertype => "unsupported_ethertype",
            DropReason::ArpNotForUs => "arp_not_for_us",
            DropReason::NoService => "no_service",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::Fragment => "fragment",
            DropReason::TxFull => "tx_full",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoRoute => "no_route",
            DropReason::NeighborUnresolved => "neighbor_unresolved",
            DropReason::NoConnection => "no_connection",
            DropReason::TableFull => "table_full",
            DropReason::NoRealServer => "no_real_server",
            DropReason::TooBig => "too_big",
            DropReason::RedirectFull => "redirect_full",
            DropReason::BadPort => "bad_port",
        }
    }
}

/// What one worker has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes of frames received.
    pub rx_bytes: u64,
    /// Frames handed to a device for sending.
    pub tx_packets: u64,
    /// Bytes of frames handed to a device.
    pub tx_bytes: u64,
    /// ARP requests for our addresses answered.
    pub arp_requests_answered: u64,
    /// Neighbour entries learned or refreshed from ARP.
    pub arp_learned: u64,
    /// ICMP echo requests to our addresses answered.
    pub icmp_echo_answered: u64,
    /// Packets forwarded to or from real servers.
    pub forwarded: u64,
    /// Connections created.
    pub conns_created: u64,
    /// ARP requests rvs sent to resolve next hops.
    pub arp_requests_sent: u64,
    /// ICMP errors about a connection translated and forwarded.
    pub icmp_errors_forwarded: u64,
    /// ICMP "fragmentation needed" sent for packets too big to tunnel.
    pub frag_needed_sent: u64,
    /// Packets handed to the worker that owns their connection.
    pub redirected: u64,
    /// TCP resets sent (every server down, or a connection's server down).
    pub resets_sent: u64,
    /// Connections installed from the peer's sync (standby).
    pub conns_synced: u64,
    /// Sync events not reported to the peer because the control thread
    /// fell behind (set from the balancer when counters are published).
    pub sync_lost: u64,
    /// Polls that received at least one frame.
    pub busy_polls: u64,
    /// Polls that received nothing.
    pub idle_polls: u64,
    /// Live TCP connections no client had proven (half-open, or
    /// established by packets no real server answered) evicted to make
    /// room in a full table (set from the balancer when counters are
    /// published).
    pub conns_evicted_unproven_tcp: u64,
    /// Live UDP flows evicted to make room in a full table, unproven ones
    /// (no reply seen) first (set from the balancer when counters are
    /// published).
    pub conns_evicted_udp: u64,
    /// Drops, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

const SCALARS: usize = 20;
const CELLS: usize = SCALARS + DropReason::COUNT;

impl WorkerStats {
    /// Counts a dropped frame.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Total of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds another worker's counters (for the totals).
    pub fn add(&mut self, other: &WorkerStats) {
        let mut a = self.to_cells();
        for (x, y) in a.iter_mut().zip(other.to_cells()) {
            *x += y;
        }
        *self = WorkerStats::from_cells(&a);
    }

    fn to_cells(self) -> [u64; CELLS] {
        let mut c = [0u64; CELLS];
        c[..SCALARS].copy_from_slice(&[
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.arp_requests_answered,
            self.arp_learned,
            self.icmp_echo_answered,
            self.forwarded,
            self.conns_created,
            self.arp_requests_sent,
            self.icmp_errors_forwarded,
            self.frag_needed_sent,
            self.redirected,
            self.resets_sent,
            self.conns_synced,
            self.sync_lost,
            self.busy_polls,
            self.idle_polls,
            self.conns_evicted_unproven_tcp,
            self.conns_evicted_udp,
        ]);
        c[SCALARS..].copy_from_slice(&self.drops);
        c
    }

    fn from_cells(c: &[u64; CELLS]) -> WorkerStats {
        let mut drops = [0u64; DropReason::COUNT];
        drops.copy_from_slice(&c[SCALARS..]);
        WorkerStats {
            rx_packets: c[0],
            rx_bytes: c[1],
            tx_packets: c[2],
            tx_bytes: c[3],
            arp_requests_answered: c[4],
            arp_learned: c[5],
            icmp_echo_answered: c[6],
            forwarded: c[7],
            conns_created: c[8],
            arp_requests_sent: c[9],
            icmp_errors_forwarded: c[10],
            frag_needed_sent: c[11],
            redirected: c[12],
            resets_sent: c[13],
            conns_synced: c[14],
            sync_lost: c[15],
            busy_polls: c[16],
            idle_polls: c[17],
            conns_evicted_unproven_tcp: c[18],
            conns_evicted_udp: c[19],
            drops,
        }
    }

    /// The counters as the JSON object of the `stats:` log line.
    pub fn to_json(&self) -> Value {
        let drops: Map<String, Value> = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), json!(self.drops[*r as usize])))
            .collect();
        json!({
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "arp_requests_answered": self.arp_requests_answered,
            "arp_learned": self.arp_learned,
            "icmp_echo_answered": self.icmp_echo_answered,
            "forwarded": self.forwarded,
            "conns_created": self.conns_created,
            "arp_requests_sent": self.arp_requests_sent,
            "icmp_errors_forwarded": self.icmp_errors_forwarded,
            "frag_needed_sent": self.frag_needed_sent,
            "redirected": self.redirected,
            "resets_sent": self.resets_sent,
            "conns_synced": self.conns_synced,
            "sync_lost": self.sync_lost,
            "busy_polls": self.busy_polls,
            "idle_polls": self.idle_polls,
            "conns_evicted_unproven_tcp": self.conns_evicted_unproven_tcp,
            "conns_evicted_udp": self.conns_evicted_udp,
            "drops": drops,
        })
    }
}

pub use crate::lb::balancer::RealServerCounters;

const RS_CELLS: usize = 7;

/// Where a worker publishes its counters for the control thread.
#[derive(Debug)]
pub struct StatsCell {
    cells: [AtomicU64; CELLS],
    /// Per real server (services in order, their servers in order), then
    /// the connection count.
    lb: Vec<AtomicU64>,
}

impl Default for StatsCell {
    fn default() -> Self {
        StatsCell::new(0)
    }
}

impl StatsCell {
    /// A cell with room for `real_servers` servers' counters.
    pub fn new(real_servers: usize) -> StatsCell {
        StatsCell {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
            lb: (0..real_servers * RS_CELLS + 1)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Copies the worker's counters in (worker side).
    pub fn publish(&self, stats: &WorkerStats) {
        for (cell, v) in self.cells.iter().zip(stats.to_cells()) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// Copies the per real server counters and the connection count in
    /// (worker side); servers beyond the cell's room are left out.
    pub fn publish_lb<'a>(
        &self,
        servers: impl Iterator<Item = &'a RealServerCounters>,
        conns: usize,
    ) {
        let mut cells = self.lb.chunks_exact(RS_CELLS);
        for (c, cell) in servers.zip(&mut cells) {
            let v = [
                u64::from(c.active),
                u64::from(c.inactive),
                c.conns,
                c.packets_in,
                c.packets_out,
                c.bytes_in,
                c.bytes_out,
            ];
            for (a, x) in cell.iter().zip(v) {
                a.store(x, Ordering::Relaxed);
            }
        }
        if let Some(last) = self.lb.last() {
            last.store(conns as u64, Ordering::Relaxed);
        }
    }

    /// The last published per real server counters (control side).
    pub fn real_servers(&self) -> Vec<RealServerCounters> {
        self.lb
            .chunks_exact(RS_CELLS)
            .map(|c| {
                let v: Vec<u64> = c.iter().map(|a| a.load(Ordering::Relaxed)).collect();
                RealServerCounters {
                    active: v[0] as u32,
                    inactive: v[1] as u32,
                    conns: v[2],
                    packets_in: v[3],
                    packets_out: v[4],
                    bytes_in: v[5],
                    bytes_out: v[6],
                }
            })
            .collect()
    }

    /// The last published number of connections in the worker's table.
    pub fn connections(&self) -> u64 {
        self.lb.last().map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// The last published counters (control side).
    pub fn snapshot(&self) -> WorkerStats {
        let mut c = [0u64; CELLS];
        for (v, cell) in c.iter_mut().zip(&self.cells) {
            *v = cell.load(Ordering::Relaxed);
        }
        WorkerStats::from_cells(&c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counters_read_back_unchanged() {
        let mut s = WorkerStats {
            rx_packets: 7,
            tx_bytes: 99,
            icmp_echo_answered: 3,
            ..Default::default()
        };
        s.drop(DropReason::BadChecksum);
        s.drop(DropReason::TxFull);
        let cell = StatsCell::default();
        cell.publish(&s);
        assert_eq!(cell.snapshot(), s);
    }

    #[test]
    fn totals_add_every_counter() {
        let mut a = WorkerStats {
            rx_packets: 1,
            ..Default::default()
        };
        a.drop(DropReason::NoService);
        let mut b = a;
        b.drop(DropReason::NoService);
        a.add(&b);
        assert_eq!(a.rx_packets, 2);
        assert_eq!(a.drops[DropReason::NoService as usize], 3);
        assert_eq!(a.total_drops(), 3);
    }

    #[test]
    fn json_names_every_drop_reason() {
        let v = WorkerStats::default().to_json();
        for r in DropReason::ALL {
            assert_eq!(v["drops"][r.name()], 0, "{}", r.name());
        }
    }
}
