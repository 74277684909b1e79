//! Prometheus metrics at `control.metrics_listen`, `GET /metrics`.
//!
//! Why a snapshot at scrape time: the numbers already exist as the
//! workers' published counters (`StatsCell`s), the service table and the
//! health checker's statuses. Copying them into a registry of live metric
//! objects every tick would be work for nothing between scrapes, so a
//! scrape asks the caller for a [`MetricsSnapshot`] and a
//! `prometheus-client` [`Collector`] turns it into the exposition (the
//! OpenMetrics text format, which Prometheus reads). Nothing here touches a
//! worker, and a scrape never blocks the control loop: it runs on the
//! metrics thread, calling the caller's snapshot function there. That
//! thread serves every client from one `poll(2)` (`control::clients`):
//! per-client deadlines, a cap, answers written as the client takes them,
//! so slow clients (slowloris) cannot starve the scrapes.
//!
//! The same thread serves the status page (`GET /`, `/status`,
//! `/status.json`: see `control::status`) from the same snapshots.
//!
//! Names are prefixed `rvs_`; labels are `virtual_server` (its name),
//! `address` (VIP:port), `protocol`, `real_server` (RIP:port), `reason`
//! and `lcore`. Counters carry the `_total` suffix the format adds.

use super::clients::{
    self, http_head_frame, ClientCounters, ClientCounts, Clients, Limits, ReadOutcome as ClientRead,
};
use super::health::TargetStatus;
use super::report::{count_overloaded, sum_real_servers, sum_refused, PoolUsage, WorkerSnapshot};
use super::status::{self, Rates};
use crate::dataplane::stats::{DropReason, RealServerCounters, WorkerStats};
use crate::lb::limits::LimitRefusal;
use crate::lb::service::ServiceTable;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The content type of the exposition `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long a client may take to send its whole request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to read its whole answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once; one more gets a 503 at once.
const MAX_CLIENTS: usize = 128;
/// Longest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How often the server thread looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

const LIMITS: Limits = Limits {
    max_clients: MAX_CLIENTS,
    max_request: MAX_REQUEST,
    request_timeout: REQUEST_TIMEOUT,
    answer_timeout: ANSWER_TIMEOUT,
};

/// What one scrape reports, gathered by the caller.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// The service table in force (with its draining services and servers).
    pub services: Arc<ServiceTable>,
    /// Each worker's published counters.
    pub workers: Vec<WorkerSnapshot>,
    /// Up (true) or down per service, per real server, in table order;
    /// missing entries count as up.
    pub health: Vec<Vec<bool>>,
    /// The weight in force per service, per real server (the file's or
    /// `rvsadm weight`'s); missing entries mean the table's.
    pub weights: Vec<Vec<u32>>,
    /// The health checker's statuses, for the probe latency histograms
    /// (`HealthView::statuses`).
    pub health_checks: Vec<TargetStatus>,
    /// The `rvsadm ha status` document (`RoleView::status`); `Null` when
    /// unknown.
    pub ha: serde_json::Value,
    /// The packet-buffer pools' use (none without DPDK).
    pub pools: Vec<PoolUsage>,
    /// How the clients of the control socket (`"control"`) and of this
    /// endpoint (`"metrics"`) fared; empty when unknown.
    pub clients: Vec<(&'static str, ClientCounts)>,
    /// Per service, per real server: (taken out by the passive check now,
    /// times taken out); missing entries: never.
    pub passive: Vec<Vec<(bool, u64)>>,
    /// The announcer's status (`control::announce`); `None` when not
    /// announcing.
    pub announce: Option<crate::control::announce::AnnounceStatus>,
}

/// The caller's snapshot function, called once per scrape on the metrics
/// thread.
pub type SnapshotSource = Arc<dyn Fn() -> MetricsSnapshot + Send + Sync>;

// ------------------------------------------------------------ exposition

/// Turns snapshots into expositions; remembers each worker's poll counts
/// of the previous scrape, so `rvs_worker_busy_ratio` is the share of busy
/// polls since then (since start at the first scrape).
#[derive(Debug, Default)]
pub struct Renderer {
    polls: HashMap<u32, Polls>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Polls {
    busy: u64,
    idle: u64,
    ratio: f64,
}

impl Renderer {
    /// The exposition of `snapshot`, in the OpenMetrics text format.
    pub fn render(&mut self, snapshot: MetricsSnapshot) -> String {
        let ratios = snapshot
            .workers
            .iter()
            .map(|w| (w.lcore, self.busy_ratio(w.lcore, &w.stats)))
            .collect();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector { snapshot, ratios }));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    fn busy_ratio(&mut self, lcore: u32, s: &WorkerStats) -> f64 {
        let last = self.polls.entry(lcore).or_default();
        // A counter that went back means a restarted worker: start over.
        let (b0, i0) = if s.busy_polls < last.busy || s.idle_polls < last.idle {
            (0, 0)
        } else {
            (last.busy, last.idle)
        };
        let (busy, idle) = (s.busy_polls - b0, s.idle_polls - i0);
        if busy + idle > 0 {
            last.ratio = busy as f64 / (busy + idle) as f64;
            last.busy = s.busy_polls;
            last.idle = s.idle_polls;
        }
        last.ratio
    }
}

/// The exposition of one snapshot (busy ratios since start).
pub fn render(snapshot: MetricsSnapshot) -> String {
    Renderer::default().render(snapshot)
}

/// A label set: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;

/// The samples of a JSON object of counts by reason (`{"bad_mac": 3}`),
/// one per reason, labelled `reason`; none when it is not an object.
fn by_reason(counts: &serde_json::Value) -> Vec<(Labels, u64)> {
    counts
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(reason, v)| (vec![("reason", reason.clone())], v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Encodes a whole snapshot on each scrape.
#[derive(Debug)]
struct SnapshotCollector {
    snapshot: MetricsSnapshot,
    ratios: Vec<(u32, f64)>,
}

/// One metric family: a descriptor, then a sample per label set.
fn family<V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    rows: &[(Labels, V)],
    mut sample: impl FnMut(&mut MetricEncoder, &V) -> fmt::Result,
) -> fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in rows {
        let mut e = metric.encode_family(labels)?;
        sample(&mut e, value)?;
    }
    Ok(())
}

fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, V)],
) -> fmt::Result {
    family(encoder, name, help, MetricType::Gauge, rows, |e, v| {
        e.encode_gauge(v)
    })
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> fmt::Result {
    family(encoder, name, help, MetricType::Counter, rows, |e, v| {
        e.encode_counter::<NoLabelSet, u64, u64>(v, None)
    })
}

impl SnapshotCollector {
    fn real_servers(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let s = &self.snapshot;
        let totals = sum_real_servers(&s.workers);
        let mut flat = totals.iter();
        // Per real server rows, and per virtual server sums.
        let mut rs_rows: Vec<(Labels, RealServerCounters, bool, u32, bool)> = Vec::new();
        let mut vs_rows: Vec<(Labels, RealServerCounters, bool)> = Vec::new();
        for (v, vs) in s.services.services().iter().enumerate() {
            let base: Labels = vec![
                ("virtual_server", vs.name.clone()),
                ("address", vs.vip_addr().to_string()),
                ("protocol", vs.key.protocol.name().to_string()),
            ];
            let mut sum = RealServerCounters::default();
            for (r, rs) in vs.real_servers.iter().enumerate() {
                let c = flat.next().copied().unwrap_or_default();
                sum.add(&c);
                let up = s
                    .health
                    .get(v)
                    .and_then(|h| h.get(r))
                    .copied()
                    .unwrap_or(true);
                let weight = s
                    .weights
                    .get(v)
                    .and_then(|w| w.get(r))
                    .copied()
                    .unwrap_or(rs.weight);
                let draining = s.services.is_server_draining(v as u16, r as u16);
                let mut labels = base.clone();
                labels.push((
                    "real_server",
                    vs.real_addr(r as u16)
                        .map_or_else(String::new, |a| a.to_string()),
                ));
                rs_rows.push((labels, c, up, weight, draining));
            }
            vs_rows.push((base, sum, s.services.is_draining(v as u16)));
        }

        type Pick = fn(&RealServerCounters) -> u64;
        let counter_kinds: [(&str, &str, Pick); 5] = [
            (
                "connections",
                "Connections scheduled to it since start.",
                |c| c.conns,
            ),
            (
                "packets_in",
                "Packets from clients to the real servers.",
                |c| c.packets_in,
            ),
            (
                "packets_out",
                "Packets from the real servers to clients (NAT only).",
                |c| c.packets_out,
            ),
            ("bytes_in", "Bytes from clients to the real servers.", |c| {
                c.bytes_in
            }),
            (
                "bytes_out",
                "Bytes from the real servers to clients (NAT only).",
                |c| c.bytes_out,
            ),
        ];

        // Virtual servers.
        let rows = |pick: &dyn Fn(&RealServerCounters) -> u64| -> Vec<(Labels, u64)> {
            vs_rows
                .iter()
                .map(|(l, c, _)| (l.clone(), pick(c)))
                .collect()
        };
        gauges(
            encoder,
            "rvs_virtual_server_active_connections",
            "Established TCP connections of the virtual server's real servers.",
            &rows(&|c| u64::from(c.active)),
        )?;
        gauges(
            encoder,
            "rvs_virtual_server_inactive_connections",
            "Other live connections (handshake, closing, UDP) of the virtual server's real \
             servers.",
            &rows(&|c| u64::from(c.inactive)),
        )?;
        for (kind, help, pick) in counter_kinds {
            counters(
                encoder,
                &format!("rvs_virtual_server_{kind}"),
                help,
                &rows(&pick),
            )?;
        }
        gauges(
            encoder,
            "rvs_virtual_server_draining",
            "1 when a reload removed the virtual server and its connections drain.",
            &vs_rows
                .iter()
                .map(|(l, _, d)| (l.clone(), u64::from(*d)))
                .collect::<Vec<_>>(),
        )?;

        // Priority groups (`lb::priority`).
        let table = &s.services;
        gauges(
            encoder,
            "rvs_virtual_server_active_priority",
            "The priority group taking the virtual server's new connections; -1 when no real \
             server is live.",
            &vs_rows
                .iter()
                .enumerate()
                .map(|(v, (l, ..))| {
                    let p = table.active_priority(v as u16).map_or(-1, i64::from);
                    (l.clone(), p)
                })
                .collect::<Vec<_>>(),
        )?;
        counters(
            encoder,
            "rvs_virtual_server_priority_changes",
            "Times the virtual server's active priority group changed.",
            &vs_rows
                .iter()
                .enumerate()
                .map(|(v, (l, ..))| (l.clone(), table.priority_changes(v as u16)))
                .collect::<Vec<_>>(),
        )?;
        gauges(
            encoder,
            "rvs_real_server_priority",
            "The real server's priority group (0 is the best).",
            &table
                .services()
                .iter()
                .flat_map(|vs| vs.real_servers.iter().map(|rs| u64::from(rs.priority)))
                .zip(&rs_rows)
                .map(|(p, (l, ..))| (l.clone(), p))
                .collect::<Vec<_>>(),
        )?;

        // What each virtual server's admission limits refused, by reason.
        let refused = sum_refused(&s.workers);
        let refused_rows: Vec<(Labels, u64)> = vs_rows
            .iter()
            .enumerate()
            .flat_map(|(v, (l, _, _))| {
                let counts = refused.get(v).copied().unwrap_or_default();
                LimitRefusal::ALL.iter().map(move |r| {
                    let mut labels = l.clone();
                    labels.push(("reason", r.name().to_string()));
                    (labels, counts[*r as usize])
                })
            })
            .collect();
        counters(
            encoder,
            "rvs_virtual_server_refused",
            "New connections the virtual server's admission limits refused, by reason.",
            &refused_rows,
        )?;

        // Real servers.
        let rows = |pick: &dyn Fn(&RealServerCounters) -> u64| -> Vec<(Labels, u64)> {
            rs_rows
                .iter()
                .map(|(l, c, ..)| (l.clone(), pick(c)))
                .collect()
        };
        // `values[i]` beside the i-th real server's labels (0 past its end).
        let by_row = |values: &[u64]| -> Vec<(Labels, u64)> {
            rs_rows
                .iter()
                .enumerate()
                .map(|(i, (l, ..))| (l.clone(), values.get(i).copied().unwrap_or(0)))
                .collect()
        };
        gauges(
            encoder,
            "rvs_real_server_active_connections",
            "Established TCP connections to the real server.",
            &rows(&|c| u64::from(c.active)),
        )?;
        gauges(
            encoder,
            "rvs_real_server_inactive_connections",
            "Other live connections (handshake, closing, UDP) to the real server.",
            &rows(&|c| u64::from(c.inactive)),
        )?;
        for (kind, help, pick) in counter_kinds {
            counters(
                encoder,
                &format!("rvs_real_server_{kind}"),
                help,
                &rows(&pick),
            )?;
        }
        gauges(
            encoder,
            "rvs_real_server_up",
            "1 when the real server passes its health checks (or is not checked), 0 when down.",
            &rs_rows
                .iter()
                .map(|(l, _, up, ..)| (l.clone(), u64::from(*up)))
                .collect::<Vec<_>>(),
        )?;
        gauges(
            encoder,
            "rvs_real_server_weight",
            "The weight in force (0: no new connections).",
            &rs_rows
                .iter()
                .map(|(l, _, _, w, _)| (l.clone(), u64::from(*w)))
                .collect::<Vec<_>>(),
        )?;
        gauges(
            encoder,
            "rvs_real_server_draining",
            "1 when a reload removed the real server and its connections drain.",
            &rs_rows
                .iter()
                .map(|(l, .., d)| (l.clone(), u64::from(*d)))
                .collect::<Vec<_>>(),
        )?;
        let handshake_kinds: [(&str, &str, Pick); 4] = [
            (
                "handshakes",
                "TCP handshakes forwarded to the real server (NAT: client SYNs that made a \
                 connection, and the SYN proxy's SYNs).",
                |c| c.handshakes,
            ),
            (
                "handshake_ok",
                "Forwarded handshakes the real server completed (its SYN-ACK within the \
                 service's syn_timeout_ms).",
                |c| c.handshake_ok,
            ),
            (
                "handshake_timeouts",
                "Forwarded handshakes with no SYN-ACK within the service's syn_timeout_ms.",
                |c| c.handshake_timeouts,
            ),
            (
                "handshake_resets",
                "Forwarded handshakes the real server reset before its SYN-ACK.",
                |c| c.handshake_resets,
            ),
        ];
        for (kind, help, pick) in handshake_kinds {
            counters(
                encoder,
                &format!("rvs_real_server_{kind}"),
                help,
                &rows(&pick),
            )?;
        }
        let passive_downs: Vec<u64> = s
            .services
            .services()
            .iter()
            .enumerate()
            .flat_map(|(v, vs)| {
                (0..vs.real_servers.len()).map(move |r| {
                    s.passive
                        .get(v)
                        .and_then(|p| p.get(r))
                        .map_or(0, |&(_, n)| n)
                })
            })
            .collect();
        counters(
            encoder,
            "rvs_real_server_passive_down",
            "Times the passive check took the real server out (too many failed handshakes).",
            &by_row(&passive_downs),
        )?;
        let overloaded = count_overloaded(&s.workers);
        gauges(
            encoder,
            "rvs_real_server_overloaded_workers",
            "Workers holding the real server at its upper_threshold (no new connections there).",
            &by_row(&overloaded),
        )?;
        // In the rows' order: services, then their real servers.
        let effective = s
            .services
            .services()
            .iter()
            .enumerate()
            .flat_map(|(v, vs)| {
                (0..vs.real_servers.len())
                    .map(move |r| u64::from(s.services.effective_weight(v as u16, r as u16)))
            });
        gauges(
            encoder,
            "rvs_real_server_effective_weight",
            "The weight new connections see: the weight in force, ramped during a slow start, \
             0 when down or draining.",
            &rs_rows
                .iter()
                .zip(effective)
                .map(|((l, ..), w)| (l.clone(), w))
                .collect::<Vec<_>>(),
        )
    }

    fn health_checks(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        // Only targets checked at least once (a `none` check never is).
        let rows: Vec<(Labels, &TargetStatus)> = self
            .snapshot
            .health_checks
            .iter()
            .filter(|t| t.latency.count > 0)
            .map(|t| {
                let vs = self
                    .snapshot
                    .services
                    .services()
                    .get(usize::from(t.target.vs));
                let address = vs.map_or_else(String::new, |vs| vs.vip_addr().to_string());
                let labels: Labels = vec![
                    ("virtual_server", t.target.name.clone()),
                    ("address", address),
                    ("real_server", t.target.endpoint.to_string()),
                    ("check", t.target.check.kind.name().to_string()),
                ];
                (labels, t)
            })
            .collect();
        family(
            encoder,
            "rvs_health_check_duration_seconds",
            "How long health checks of the real server took (failed ones included).",
            MetricType::Histogram,
            &rows,
            |e, t| {
                e.encode_histogram::<NoLabelSet>(
                    t.latency.sum,
                    t.latency.count,
                    &t.latency.buckets(),
                    None,
                )
            },
        )?;
        counters(
            encoder,
            "rvs_health_checks_failed",
            "Health checks of the real server that failed.",
            &rows
                .iter()
                .map(|(l, t)| (l.clone(), t.failed))
                .collect::<Vec<_>>(),
        )?;
        gauges(
            encoder,
            "rvs_health_check_cert_expiry_timestamp_seconds",
            "When the real server's TLS certificate expires (notAfter, Unix time), as its last tls or https check read it.",
            &rows
                .iter()
                .filter_map(|(l, t)| {
                    let at = t.last.as_ref()?.cert_not_after?;
                    let secs = match at.duration_since(std::time::UNIX_EPOCH) {
                        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
                    };
                    Some((l.clone(), secs))
                })
                .collect::<Vec<_>>(),
        )
    }

    fn workers(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let workers = &self.snapshot.workers;
        let lcore = |w: &WorkerSnapshot| -> Labels { vec![("lcore", w.lcore.to_string())] };
        let per = |pick: fn(&WorkerStats) -> u64| -> Vec<(Labels, u64)> {
            workers.iter().map(|w| (lcore(w), pick(&w.stats))).collect()
        };
        counters(
            encoder,
            "rvs_worker_rx_packets",
            "Frames the worker received.",
            &per(|s| s.rx_packets),
        )?;
        counters(
            encoder,
            "rvs_worker_tx_packets",
            "Frames the worker handed to a device.",
            &per(|s| s.tx_packets),
        )?;
        counters(
            encoder,
            "rvs_worker_rx_bytes",
            "Bytes of frames the worker received.",
            &per(|s| s.rx_bytes),
        )?;
        counters(
            encoder,
            "rvs_worker_tx_bytes",
            "Bytes of frames the worker handed to a device.",
            &per(|s| s.tx_bytes),
        )?;
        counters(
            encoder,
            "rvs_worker_connections_created",
            "Connections the worker created.",
            &per(|s| s.conns_created),
        )?;
        counters(
            encoder,
            "rvs_worker_resets_sent",
            "TCP resets the worker sent (every server down, or a connection's server down).",
            &per(|s| s.resets_sent),
        )?;
        counters(
            encoder,
            "rvs_worker_synproxy_synacks_sent",
            "SYN proxy: SYNs answered with a cookie SYN-ACK (no state made; a SYN-ACK that cannot be routed back is also counted as a drop, e.g. no_route).",
            &per(|s| s.synproxy_synacks_sent),
        )?;
        counters(
            encoder,
            "rvs_worker_synproxy_cookies_accepted",
            "SYN proxy: cookie ACKs accepted, each opening a connection to a real server.",
            &per(|s| s.synproxy_cookies_accepted),
        )?;
        counters(
            encoder,
            "rvs_worker_synproxy_syns_resent",
            "SYN proxy: SYNs sent again to a real server that had not answered yet.",
            &per(|s| s.synproxy_syns_resent),
        )?;
        counters(
            encoder,
            "rvs_worker_synproxy_acks_sent",
            "SYN proxy: ACKs sent to real servers answering their SYN-ACKs.",
            &per(|s| s.synproxy_acks_sent),
        )?;
        counters(
            encoder,
            "rvs_worker_synproxy_segments_kept",
            "SYN proxy: client segments kept until their real server answered.",
            &per(|s| s.synproxy_segments_kept),
        )?;
        counters(
            encoder,
            "rvs_worker_fragments_forwarded",
            "Later IPv4 fragments forwarded after their first fragment's connection.",
            &per(|s| s.fragments_forwarded),
        )?;
        counters(
            encoder,
            "rvs_worker_fragments_queued",
            "Later IPv4 fragments that came before their first and waited for it.",
            &per(|s| s.fragments_queued),
        )?;
        counters(
            encoder,
            "rvs_worker_nat64_to_ipv4",
            "NAT64: IPv6 packets and ICMPv6 errors translated to IPv4 (client to real server).",
            &per(|s| s.nat64_to_ipv4),
        )?;
        counters(
            encoder,
            "rvs_worker_nat64_to_ipv6",
            "NAT64: IPv4 packets and ICMP errors translated to IPv6 (real server to client).",
            &per(|s| s.nat64_to_ipv6),
        )?;
        counters(
            encoder,
            "rvs_worker_midflow_scheduled",
            "Cluster: connections opened by a TCP segment other than a SYN (a flow another node carried; sh/mh services by NAT, DR or TUN).",
            &per(|s| s.midflow_scheduled),
        )?;
        gauges(
            encoder,
            "rvs_worker_local_connections",
            "Live connections that carried a packet on this node (not only installed by sync).",
            &per(|s| s.local_conns),
        )?;
        counters(
            encoder,
            "rvs_worker_sync_conflicts",
            "Sync records refused: a connection carried here goes to another real server (cluster).",
            &per(|s| s.sync_conflicts),
        )?;
        counters(
            encoder,
            "rvs_worker_sync_removed_connections",
            "Connections removed by a peer's REMOVED sync records.",
            &per(|s| s.conns_sync_removed),
        )?;
        let carried = |pick: fn(&WorkerStats) -> Vec<(&'static str, u64)>, label: &'static str| {
            workers
                .iter()
                .flat_map(|w| {
                    pick(&w.stats).into_iter().map(move |(what, n)| {
                        let mut l = lcore(w);
                        l.push((label, what.to_string()));
                        (l, n)
                    })
                })
                .collect::<Vec<_>>()
        };
        counters(
            encoder,
            "rvs_worker_client_addr_inserted",
            "Client addresses carried to real servers: PROXY v2 headers (first, and again in a retransmission) and TOA options inserted.",
            &carried(
                |s| {
                    let c = &s.client_addr;
                    vec![
                        ("proxy-v2", c.proxy_v2_inserted),
                        ("proxy-v2-again", c.proxy_v2_reinserted),
                        ("toa", c.toa_inserted),
                    ]
                },
                "mode",
            ),
        )?;
        counters(
            encoder,
            "rvs_worker_client_addr_skipped",
            "Segments a PROXY v2 header or TOA option should have grown and did not, by reason (a skipped PROXY header also drops its segment).",
            &carried(
                |s| {
                    let c = &s.client_addr;
                    vec![
                        ("no_room", c.skipped_no_room),
                        ("too_big", c.skipped_too_big),
                        ("header_full", c.skipped_header_full),
                        ("fragment", c.skipped_fragment),
                    ]
                },
                "reason",
            ),
        )?;
        counters(
            encoder,
            "rvs_worker_nd_solicits_answered",
            "Neighbour solicitations for own IPv6 addresses and IPv6 VIPs answered.",
            &per(|s| s.nd_solicits_answered),
        )?;
        counters(
            encoder,
            "rvs_worker_nd_learned",
            "IPv6 neighbour entries learned or refreshed from neighbour discovery.",
            &per(|s| s.nd_learned),
        )?;
        counters(
            encoder,
            "rvs_worker_nd_solicits_sent",
            "Neighbour solicitations sent to resolve IPv6 next hops.",
            &per(|s| s.nd_solicits_sent),
        )?;
        counters(
            encoder,
            "rvs_worker_nd_adverts_announced",
            "Unsolicited neighbour advertisements sent for own IPv6 addresses and VIPs.",
            &per(|s| s.nd_adverts_announced),
        )?;
        counters(
            encoder,
            "rvs_worker_icmpv6_echo_answered",
            "ICMPv6 echo requests to own IPv6 addresses and VIPs answered.",
            &per(|s| s.icmpv6_echo_answered),
        )?;
        counters(
            encoder,
            "rvs_worker_icmpv6_errors_sent",
            "ICMPv6 errors sent (time exceeded, packet too big, unreachable).",
            &per(|s| s.icmpv6_errors_sent),
        )?;
        counters(
            encoder,
            "rvs_worker_busy_polls",
            "Polls that received at least one frame.",
            &per(|s| s.busy_polls),
        )?;
        counters(
            encoder,
            "rvs_worker_idle_polls",
            "Polls that received nothing.",
            &per(|s| s.idle_polls),
        )?;
        counters(
            encoder,
            "rvs_worker_connections_evicted",
            "Live connections the worker evicted from its full table to admit new ones, by kind: unproven_tcp (no client proven: half-open, or established by packets no real server answered) and udp.",
            &workers
                .iter()
                .flat_map(|w| {
                    [
                        ("unproven_tcp", w.stats.conns_evicted_unproven_tcp),
                        ("udp", w.stats.conns_evicted_udp),
                    ]
                    .map(|(kind, n)| {
                        let mut l = lcore(w);
                        l.push(("kind", kind.to_string()));
                        (l, n)
                    })
                })
                .collect::<Vec<_>>(),
        )?;
        counters(
            encoder,
            "rvs_worker_connections_refused",
            "New connections the worker refused because its table was full of protected connections (the table_full drops).",
            &per(|s| s.drops[DropReason::TableFull as usize]),
        )?;
        gauges(
            encoder,
            "rvs_worker_connections",
            "Connections in the worker's tables (IPv4 and IPv6).",
            &workers
                .iter()
                .map(|w| (lcore(w), w.connections))
                .collect::<Vec<_>>(),
        )?;
        let fill = |pick: fn(&WorkerSnapshot) -> u64| -> Vec<(Labels, u64)> {
            workers.iter().map(|w| (lcore(w), pick(w))).collect()
        };
        gauges(
            encoder,
            "rvs_worker_conn_table_capacity",
            "Connections the worker's table holds at most (conn_table_size).",
            &fill(|w| w.fill.conn_capacity),
        )?;
        gauges(
            encoder,
            "rvs_worker_neighbor_queue_frames",
            "Frames the worker holds waiting for a next hop's ARP answer.",
            &fill(|w| w.fill.neighbor_queue_frames),
        )?;
        gauges(
            encoder,
            "rvs_worker_neighbor_queue_capacity",
            "Frames the worker's neighbour queue can hold at most.",
            &fill(|w| w.fill.neighbor_queue_capacity),
        )?;
        gauges(
            encoder,
            "rvs_worker_fragment_queue_frames",
            "Later IPv4 fragments the worker holds waiting for their first fragment.",
            &fill(|w| w.fill.fragment_queue_frames),
        )?;
        gauges(
            encoder,
            "rvs_worker_fragment_queue_capacity",
            "Fragments the worker's fragment queue can hold at most.",
            &fill(|w| w.fill.fragment_queue_capacity),
        )?;
        // FullNAT's local ports, per (local address, protocol), summed
        // over the workers (each owns its own addresses).
        let mut local: std::collections::BTreeMap<(std::net::IpAddr, &str), [u64; 3]> =
            std::collections::BTreeMap::new();
        for w in workers {
            for u in &w.local {
                let e = local.entry((u.addr, u.protocol.name())).or_default();
                e[0] += u.in_use;
                e[1] += u.capacity;
                e[2] += u.exhausted;
            }
        }
        let local_rows = |i: usize| -> Vec<(Labels, u64)> {
            local
                .iter()
                .map(|((addr, proto), v)| {
                    let labels: Labels = vec![
                        ("address", addr.to_string()),
                        ("protocol", proto.to_string()),
                    ];
                    (labels, v[i])
                })
                .collect()
        };
        gauges(
            encoder,
            "rvs_local_ports_in_use",
            "FullNAT local ports held by connections, per local address and protocol.",
            &local_rows(0),
        )?;
        gauges(
            encoder,
            "rvs_local_ports_capacity",
            "FullNAT local ports of the range, per local address and protocol.",
            &local_rows(1),
        )?;
        counters(
            encoder,
            "rvs_local_ports_exhausted",
            "New FullNAT connections that found no free local port, per local address and protocol.",
            &local_rows(2),
        )?;
        gauges(
            encoder,
            "rvs_worker_busy_ratio",
            "Share of the worker's polls that received frames, since the previous scrape.",
            &self
                .ratios
                .iter()
                .map(|(l, r)| -> (Labels, f64) { (vec![("lcore", l.to_string())], *r) })
                .collect::<Vec<_>>(),
        )?;

        // Drops by reason, summed over the workers; every reason listed.
        let mut total = WorkerStats::default();
        for w in workers {
            total.add(&w.stats);
        }
        counters(
            encoder,
            "rvs_drops",
            "Frames dropped, by reason, summed over the workers.",
            &DropReason::ALL
                .iter()
                .map(|r| -> (Labels, u64) {
                    (
                        vec![("reason", r.name().to_string())],
                        total.drops[*r as usize],
                    )
                })
                .collect::<Vec<_>>(),
        )
    }
}

impl SnapshotCollector {
    /// The packet-buffer pools: their size and the buffers in use.
    fn pools(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let pools = &self.snapshot.pools;
        let rows = |pick: fn(&PoolUsage) -> u64| -> Vec<(Labels, u64)> {
            pools
                .iter()
                .map(|p| (vec![("pool", p.name.clone())], pick(p)))
                .collect()
        };
        gauges(
            encoder,
            "rvs_mempool_mbufs",
            "Packet buffers in the pool.",
            &rows(|p| p.size),
        )?;
        gauges(
            encoder,
            "rvs_mempool_mbufs_in_use",
            "Packet buffers taken from the pool (rings, queues, workers).",
            &rows(|p| p.in_use),
        )
    }
}

impl SnapshotCollector {
    /// The HA role and the sync counters, when `[ha]` is configured.
    fn ha(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let ha = &self.snapshot.ha;
        if ha["configured"] != serde_json::Value::Bool(true) {
            return Ok(());
        }
        let none: Labels = Vec::new();
        gauges(
            encoder,
            "rvs_ha_master",
            "1 while this balancer is the HA master, 0 while backup.",
            &[(none.clone(), u64::from(ha["role"] == "master"))],
        )?;
        gauges(
            encoder,
            "rvs_ha_seconds_in_role",
            "Seconds since this balancer took its HA role.",
            &[(none.clone(), ha["seconds_in_role"].as_u64().unwrap_or(0))],
        )?;
        let sync = &ha["sync"];
        let n = |k: &str| sync[k].as_u64().unwrap_or(0);
        let kinds: [(&str, &str, &str); 5] = [
            (
                "rvs_ha_sync_sent_records",
                "Connection records sent to the peer.",
                "sent_records",
            ),
            (
                "rvs_ha_sync_received_records",
                "Connection records from the peer handed to the workers.",
                "received_records",
            ),
            (
                "rvs_ha_sync_missed_datagrams",
                "Sync datagrams missed, from sequence gaps.",
                "missed_datagrams",
            ),
            (
                "rvs_ha_sync_bad_records",
                "Sync records skipped (unknown protocol or state).",
                "bad_records",
            ),
            (
                "rvs_ha_sync_resyncs",
                "Full resyncs answered (master) or completed (backup).",
                "resyncs",
            ),
        ];
        for (name, help, field) in kinds {
            counters(encoder, name, help, &[(none.clone(), n(field))])?;
        }
        let dropped = by_reason(&sync["dropped"]);
        counters(
            encoder,
            "rvs_ha_sync_dropped_datagrams",
            "Sync datagrams dropped, by reason.",
            &dropped,
        )?;
        self.ha_sync_records(encoder, sync)
    }

    /// The sync's record-level counters: records dropped by reason,
    /// timeouts capped, peer restarts.
    fn ha_sync_records(
        &self,
        encoder: &mut DescriptorEncoder,
        sync: &serde_json::Value,
    ) -> fmt::Result {
        let none: Labels = Vec::new();
        let n = |k: &str| sync[k].as_u64().unwrap_or(0);
        let records = by_reason(&sync["records_dropped"]);
        counters(
            encoder,
            "rvs_ha_sync_dropped_records",
            "Sync records dropped, by reason (unknown protocol, state, service or real server).",
            &records,
        )?;
        counters(
            encoder,
            "rvs_ha_sync_ttl_capped_records",
            "Sync records whose timeout was lowered to the local timeout of their state.",
            &[(none.clone(), n("ttl_capped"))],
        )?;
        counters(
            encoder,
            "rvs_ha_sync_peer_restarts",
            "New runs (boots) of the peer after the first one heard.",
            &[(none, n("peer_restarts"))],
        )?;
        self.cluster(encoder)
    }

    /// A `[cluster]` node's join state and each peer's traffic, labelled
    /// by the peer's `IP:PORT` (nothing for a pair or a standalone rvsd).
    fn cluster(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let cluster = &self.snapshot.ha["cluster"];
        let Some(peers) = cluster["peers"].as_array() else {
            return Ok(());
        };
        gauges(
            encoder,
            "rvs_cluster_joined",
            "1 once this cluster node has every peer's dump or its join timeout passed.",
            &[(Vec::new(), u64::from(cluster["joined"] == true))],
        )?;
        let per = |field: &str| -> Vec<(Labels, u64)> {
            peers
                .iter()
                .map(|p| {
                    let peer = p["address"].as_str().unwrap_or_default().to_string();
                    (vec![("peer", peer)], p[field].as_u64().unwrap_or(0))
                })
                .collect()
        };
        let kinds: [(&str, &str, &str); 8] = [
            (
                "rvs_cluster_peer_sent_datagrams",
                "Sync datagrams sent to the peer.",
                "sent_datagrams",
            ),
            (
                "rvs_cluster_peer_sent_bytes",
                "Bytes of sync datagrams (UDP payload) sent to the peer.",
                "sent_bytes",
            ),
            (
                "rvs_cluster_peer_sent_records",
                "Connection records sent to the peer.",
                "sent_records",
            ),
            (
                "rvs_cluster_peer_received_datagrams",
                "Sync datagrams accepted from the peer.",
                "received_datagrams",
            ),
            (
                "rvs_cluster_peer_received_bytes",
                "Bytes of sync datagrams (UDP payload) accepted from the peer.",
                "received_bytes",
            ),
            (
                "rvs_cluster_peer_received_records",
                "Connection records of the peer handed to the workers.",
                "received_records",
            ),
            (
                "rvs_cluster_peer_dropped_datagrams",
                "Datagrams from the peer's address and port dropped (any reason).",
                "dropped_datagrams",
            ),
            (
                "rvs_cluster_peer_dropped_records",
                "Records of the peer dropped by the filter (unknown service, server...).",
                "dropped_records",
            ),
        ];
        for (name, help, field) in kinds {
            counters(encoder, name, help, &per(field))?;
        }
        Ok(())
    }
}

impl SnapshotCollector {
    /// The announcer's gauges and failures, when announcing.
    fn announce(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let Some(a) = &self.snapshot.announce else {
            return Ok(());
        };
        let none: Labels = Vec::new();
        gauges(
            encoder,
            "rvs_announced_vips",
            "VIPs in the include files bird2 announces from.",
            &[(none.clone(), a.announced.len() as u64)],
        )?;
        gauges(
            encoder,
            "rvs_draining",
            "1 while rvsadm drain withdraws every VIP, else 0.",
            &[(none.clone(), u64::from(a.draining))],
        )?;
        gauges(
            encoder,
            "rvs_announce_interface_up",
            "1 while the liveness interface bird2's routes go through is up.",
            &[(none.clone(), u64::from(a.interface_up))],
        )?;
        counters(
            encoder,
            "rvs_announce_failures",
            "Include files not written, bird2 not reached or refusing configure.",
            &[(none, a.failures)],
        )
    }
}

impl SnapshotCollector {
    fn clients(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let rows: Vec<(Labels, u64)> = self
            .snapshot
            .clients
            .iter()
            .flat_map(|&(endpoint, counts)| {
                counts.named().map(|(outcome, n)| {
                    (
                        vec![
                            ("endpoint", endpoint.to_string()),
                            ("outcome", outcome.to_string()),
                        ],
                        n,
                    )
                })
            })
            .collect();
        counters(
            encoder,
            "rvs_control_clients",
            "Clients of the control socket (endpoint=\"control\") and the metrics endpoint \
             (endpoint=\"metrics\") by outcome: accepted, refused (at the cap), timed_out, \
             denied (access level), bad_request, answered.",
            &rows,
        )
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.real_servers(&mut encoder)?;
        self.health_checks(&mut encoder)?;
        self.workers(&mut encoder)?;
        self.pools(&mut encoder)?;
        self.ha(&mut encoder)?;
        self.announce(&mut encoder)?;
        self.clients(&mut encoder)
    }
}

// ------------------------------------------------------------ HTTP

/// The metrics endpoint's server thread; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<ClientCounters>,
}

impl MetricsServer {
    /// The address it listens on (the port, when `serve` was given 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How its clients fared (accepted, refused at the cap, timed out).
    pub fn counters(&self) -> Arc<ClientCounters> {
        self.counters.clone()
    }
}

impl Drop for MetricsServer {
    /// Stops within `STOP_POLL`, closing its clients.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the metrics thread keeps between requests: the busy ratios'
/// previous polls and the status page's recent counters.
#[derive(Debug, Default)]
struct Pages {
    metrics: Renderer,
    rates: Rates,
}

/// Serves `GET /metrics` (and the status page: `/`, `/status`,
/// `/status.json`) on `listen` from a thread of its own, each answer
/// built from `source()`. Fails only when the address cannot be bound.
pub fn serve(listen: SocketAddr, source: SnapshotSource) -> io::Result<MetricsServer> {
    serve_counted(listen, source, Arc::default())
}

/// `serve`, counting its clients in `counters`.
///
/// One thread, one `poll(2)` over the listener and every client
/// (`control::clients`): a slow client (a slowloris sending its head a
/// byte at a time, or one that reads its answer slowly) holds one of
/// `MAX_CLIENTS` slots until its deadline and nothing else; one more
/// client than the cap gets a 503 at once.
pub fn serve_counted(
    listen: SocketAddr,
    source: SnapshotSource,
    counters: Arc<ClientCounters>,
) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let clients = Clients::new(LIMITS, counters.clone());
    let thread = std::thread::Builder::new()
        .name("rvs-metrics".into())
        .spawn(move || event_loop(&listener, clients, &thread_stop, &source))?;
    Ok(MetricsServer {
        addr,
        stop,
        thread: Some(thread),
        counters,
    })
}

fn event_loop(
    listener: &TcpListener,
    mut clients: Clients<TcpStream, ()>,
    stop: &AtomicBool,
    source: &SnapshotSource,
) {
    let mut pages = Pages::default();
    while !stop.load(Ordering::Relaxed) {
        let ready = match clients::wait(listener, None, &clients, STOP_POLL, Instant::now()) {
            Ok(r) => r,
            Err(_) => {
                std::thread::sleep(STOP_POLL);
                continue;
            }
        };
        let now = Instant::now();
        if ready.listener {
            accept(listener, &mut clients, now);
        }
        for id in ready.readable {
            let answer = match clients.read(id, http_head_frame) {
                ClientRead::Request(head) => match String::from_utf8(head) {
                    Ok(head) => answer(&head, source, &mut pages),
                    Err(_) => {
                        clients.counters().count_bad_request();
                        response("400 Bad Request", "text/plain", b"bad request\n", true)
                    }
                },
                ClientRead::TooLong => response(
                    "431 Request Header Fields Too Large",
                    "text/plain",
                    b"request head too large\n",
                    true,
                ),
                ClientRead::Pending | ClientRead::Closed => continue,
            };
            clients.respond(id, answer, now);
        }
        for id in ready.writable {
            clients.write(id);
        }
        clients.expire(Instant::now());
    }
}

/// Takes in the waiting connections; past the cap each gets a 503 (if its
/// socket takes it at once) and is closed.
fn accept(listener: &TcpListener, clients: &mut Clients<TcpStream, ()>, now: Instant) {
    for _ in 0..clients::ACCEPT_BURST {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        if clients.len() >= MAX_CLIENTS {
            let busy = response("503 Service Unavailable", "text/plain", b"busy\n", true);
            let _ = (&stream).write(&busy);
        }
        clients.admit(stream, (), now);
    }
}

/// The whole HTTP answer to the request `head`.
fn answer(head: &str, source: &SnapshotSource, pages: &mut Pages) -> Vec<u8> {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let page = match path {
        "/metrics" => Page::Metrics,
        "/" | "/status" | "/status.html" => Page::StatusHtml,
        "/status.json" => Page::StatusJson,
        _ => {
            return response(
                "404 Not Found",
                "text/plain",
                b"not found: try /metrics, /status or /status.json\n",
                true,
            )
        }
    };
    let with_body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => {
            return response(
                "405 Method Not Allowed",
                "text/plain",
                b"only GET and HEAD\n",
                true,
            )
        }
    };
    let snapshot = source();
    let now = Instant::now();
    let (content_type, body) = match page {
        Page::Metrics => (CONTENT_TYPE, pages.metrics.render(snapshot)),
        Page::StatusHtml | Page::StatusJson => {
            let base = pages.rates.sample(now, status::counters(&snapshot));
            let built = status::build(&snapshot, base.as_ref(), now);
            if page == Page::StatusHtml {
                (status::HTML_CONTENT_TYPE, status::html(&built))
            } else {
                (
                    status::JSON_CONTENT_TYPE,
                    status::to_json(&built).to_string(),
                )
            }
        }
    };
    response("200 OK", content_type, body.as_bytes(), with_body)
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Metrics,
    StatusHtml,
    StatusJson,
}

fn response(status: &str, content_type: &str, body: &[u8], with_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control::config::{HealthCheckConfig, HealthCheckKind};
    use crate::control::health::{HealthState, LatencyHistogram, Target};
    use crate::lb::service::{ForwardMethod, Protocol, SchedulerKind, ServiceKey, VirtualService};
    use crate::lb::xmit::Endpoint;
    use std::io::Read;
    use std::net::Ipv4Addr;
    use std::net::SocketAddrV4;

    fn table() -> ServiceTable {
        let ep = |s: &str, p| Endpoint::new(s.parse().unwrap(), p);
        ServiceTable::with_draining(
            vec![VirtualService::new(
                "web",
                ServiceKey {
                    vip: ep("203.0.113.100", 80),
                    protocol: Protocol::Tcp,
                },
                ForwardMethod::Nat,
                SchedulerKind::Wrr,
                [
                    (ep("10.1.0.11", 8080), 3),
                    (ep("10.1.0.12", 8080), 1),
                    (ep("10.1.0.13", 8080), 1),
                ],
            )],
            vec![false],
            vec![vec![false, false, true]],
        )
    }

    pub(crate) fn worker(lcore: u32, conns: [u64; 3], busy: u64, idle: u64) -> WorkerSnapshot {
        let mut stats = WorkerStats {
            rx_packets: 100,
            tx_packets: 90,
            busy_polls: busy,
            idle_polls: idle,
            ..Default::default()
        };
        stats.drop(DropReason::NoService);
        stats.drop(DropReason::NoService);
        stats.drop(DropReason::BadChecksum);
        WorkerSnapshot {
            lcore,
            local: Vec::new(),
            stats,
            real_servers: conns
                .iter()
                .map(|&c| RealServerCounters {
                    active: c as u32,
                    inactive: 1,
                    conns: c * 10,
                    packets_in: c * 100,
                    packets_out: c * 90,
                    bytes_in: c * 1000,
                    bytes_out: c * 9000,
                    handshakes: c * 10,
                    handshake_ok: c * 7,
                    handshake_timeouts: c,
                    handshake_resets: c * 2,
                })
                .collect(),
            connections: conns.iter().sum(),
            fill: crate::dataplane::stats::TableFill {
                conn_capacity: 1000,
                neighbor_queue_frames: u64::from(lcore),
                neighbor_queue_capacity: 256,
                ..Default::default()
            },
            refused: vec![[1, 2, 3, 4]],
            overloaded: vec![true, false, false],
        }
    }

    fn status(rs: u16, port: u16, samples: &[u64]) -> TargetStatus {
        let mut latency = LatencyHistogram::default();
        for &ms in samples {
            latency.observe(Duration::from_millis(ms));
        }
        TargetStatus {
            target: Target {
                vs: 0,
                rs,
                endpoint: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 11 + rs as u8), port).into(),
                check: HealthCheckConfig {
                    kind: HealthCheckKind::Tcp,
                    ..HealthCheckConfig::default()
                },
                name: "web".into(),
            },
            state: HealthState::new(),
            checks: samples.len() as u64,
            failed: 1,
            last: None,
            latency,
            last_change: None,
        }
    }

    /// A snapshot of every kind of figure (shared with `status`'s tests):
    /// `web` (203.0.113.100:80/tcp, wrr, NAT) over 10.1.0.11..13:8080, two
    /// workers, the second server down, the third draining, HA master.
    pub(crate) fn snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            services: Arc::new(table()),
            workers: vec![worker(1, [3, 1, 0], 30, 70), worker(2, [6, 2, 1], 50, 50)],
            health: vec![vec![true, false, true]],
            weights: vec![vec![5]],
            health_checks: vec![status(0, 8080, &[1, 3, 2000]), status(1, 8080, &[])],
            ha: serde_json::json!({
                "role": "master", "configured": true, "seconds_in_role": 12,
                "sync": {"sent_records": 7, "received_records": 0, "missed_datagrams": 1,
                         "bad_records": 0, "resyncs": 1,
                         "dropped": {"foreign": 2, "malformed": 0},
                         "records_dropped": {"unknown_service": 3}, "ttl_capped": 4,
                         "peer_restarts": 1}
            }),
            pools: vec![PoolUsage {
                name: "rvs_mbufs".into(),
                size: 8191,
                in_use: 1500,
            }],
            clients: vec![(
                "control",
                ClientCounts {
                    accepted: 9,
                    refused: 2,
                    ..ClientCounts::default()
                },
            )],
            passive: vec![vec![(false, 0), (true, 2)]],
            announce: None,
        }
    }

    /// The sample line of `name` whose labels contain every one of `labels`.
    fn sample<'a>(text: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
        text.lines().find(|l| {
            l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want))
        })
    }

    fn value(text: &str, name: &str, labels: &[&str]) -> f64 {
        let line =
            sample(text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Asserts that the sample `name` with `labels` has the value `want`.
    #[track_caller]
    fn assert_value(text: &str, name: &str, labels: &[&str], want: f64) {
        assert_eq!(value(text, name, labels), want, "{name} {labels:?}");
    }

    const RS11: &str = "real_server=\"10.1.0.11:8080\"";
    const RS12: &str = "real_server=\"10.1.0.12:8080\"";
    const RS13: &str = "real_server=\"10.1.0.13:8080\"";

    #[test]
    fn fullnat_local_ports_are_gauges_and_a_counter_per_local_address() {
        use crate::lb::local_pool::LocalUsage;
        let mut snap = snapshot();
        let usage = |addr: std::net::IpAddr, in_use, exhausted| LocalUsage {
            addr,
            protocol: crate::lb::service::Protocol::Tcp,
            in_use,
            capacity: 64512,
            exhausted,
        };
        let v4 = std::net::Ipv4Addr::new(10, 2, 0, 100).into();
        let v6 = "2001:db8:2::100"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .into();
        snap.workers[0].local = vec![usage(v4, 3, 1), usage(v6, 2, 5)];
        snap.workers[1].local = vec![usage(v4, 4, 0)];
        let text = render(snap);
        let lip = ["address=\"10.2.0.100\"", "protocol=\"tcp\""];
        assert_value(&text, "rvs_local_ports_in_use", &lip, 7.0);
        assert_value(&text, "rvs_local_ports_capacity", &lip, 129024.0);
        assert_value(&text, "rvs_local_ports_exhausted_total", &lip, 1.0);
        let lip6 = ["address=\"2001:db8:2::100\"", "protocol=\"tcp\""];
        assert_value(&text, "rvs_local_ports_in_use", &lip6, 2.0);
        assert_value(&text, "rvs_local_ports_exhausted_total", &lip6, 5.0);
    }

    #[test]
    fn real_server_metrics_sum_the_workers() {
        let text = render(snapshot());
        assert_eq!(
            sample(&text, "rvs_real_server_active_connections", &[RS11]),
            Some(
                "rvs_real_server_active_connections{virtual_server=\"web\",\
                 address=\"203.0.113.100:80\",protocol=\"tcp\",\
                 real_server=\"10.1.0.11:8080\"} 9"
            )
        );
        assert_value(&text, "rvs_real_server_inactive_connections", &[RS12], 2.0);
        assert_value(&text, "rvs_real_server_connections_total", &[RS11], 90.0);
        assert_value(&text, "rvs_real_server_handshakes_total", &[RS11], 90.0);
        assert_value(
            &text,
            "rvs_real_server_handshake_resets_total",
            &[RS11],
            18.0,
        );
        assert_value(
            &text,
            "rvs_real_server_handshake_timeouts_total",
            &[RS11],
            9.0,
        );
        assert_value(&text, "rvs_real_server_handshake_ok_total", &[RS11], 63.0);
        assert_value(&text, "rvs_real_server_passive_down_total", &[RS12], 2.0);
        assert_value(&text, "rvs_real_server_passive_down_total", &[RS11], 0.0);
        assert_value(&text, "rvs_real_server_packets_in_total", &[RS12], 300.0);
        assert_value(&text, "rvs_real_server_packets_out_total", &[RS12], 270.0);
        assert_value(&text, "rvs_real_server_bytes_in_total", &[RS11], 9000.0);
        assert_value(&text, "rvs_real_server_bytes_out_total", &[RS11], 81000.0);
        assert!(text.contains("# TYPE rvs_real_server_connections counter"));
        assert!(text.contains("# TYPE rvs_real_server_active_connections gauge"));
    }

    #[test]
    fn virtual_server_metrics_sum_their_real_servers() {
        let text = render(snapshot());
        let web = ["virtual_server=\"web\""];
        assert_eq!(
            value(&text, "rvs_virtual_server_active_connections", &web),
            13.0
        );
        assert_eq!(
            value(&text, "rvs_virtual_server_connections_total", &web),
            130.0
        );
        assert_eq!(value(&text, "rvs_virtual_server_draining", &web), 0.0);
    }

    #[test]
    fn virtual_server_refusals_are_summed_over_workers_by_reason() {
        let text = render(snapshot());
        let web = "virtual_server=\"web\"";
        let total = |reason: &str| {
            value(
                &text,
                "rvs_virtual_server_refused_total",
                &[web, &format!("reason=\"{reason}\"")],
            )
        };
        // Two workers, each [1, 2, 3, 4].
        assert_eq!(total("acl_denied"), 2.0);
        assert_eq!(total("rate_limited"), 4.0);
        assert_eq!(total("client_limit"), 6.0);
        assert_eq!(total("rs_overloaded"), 8.0);
    }

    #[test]
    fn health_weight_and_draining_are_gauges() {
        let text = render(snapshot());
        assert_value(&text, "rvs_real_server_up", &[RS11], 1.0);
        assert_value(&text, "rvs_real_server_up", &[RS12], 0.0);
        // The weight in force, else the table's.
        assert_value(&text, "rvs_real_server_weight", &[RS11], 5.0);
        assert_value(&text, "rvs_real_server_weight", &[RS12], 1.0);
        assert_value(&text, "rvs_real_server_draining", &[RS13], 1.0);
        assert_value(&text, "rvs_real_server_draining", &[RS11], 0.0);
    }

    #[test]
    fn priority_groups_are_gauges_and_their_changes_a_counter() {
        let mut snap = snapshot();
        let mut services = snap.services.services().to_vec();
        services[0].real_servers[1].priority = 1;
        services[0].real_servers[2].priority = 1;
        let table = ServiceTable::new(services)
            .with_server_state(|_, r| crate::lb::service::ServerState {
                down: r == 0,
                weight: None,
                ramp: None,
            })
            .with_priority_changes(vec![4]);
        snap.services = Arc::new(table);
        let text = render(snap);
        let web = "virtual_server=\"web\"";
        assert_value(&text, "rvs_virtual_server_active_priority", &[web], 1.0);
        assert_value(
            &text,
            "rvs_virtual_server_priority_changes_total",
            &[web],
            4.0,
        );
        assert_value(&text, "rvs_real_server_priority", &[RS11], 0.0);
        assert_value(&text, "rvs_real_server_priority", &[RS12], 1.0);
    }

    #[test]
    fn no_live_server_is_active_priority_minus_one() {
        let mut snap = snapshot();
        let table =
            (*snap.services)
                .clone()
                .with_server_state(|_, _| crate::lb::service::ServerState {
                    down: true,
                    weight: None,
                    ramp: None,
                });
        snap.services = Arc::new(table);
        let text = render(snap);
        let web = "virtual_server=\"web\"";
        assert_value(&text, "rvs_virtual_server_active_priority", &[web], -1.0);
    }

    #[test]
    fn the_effective_weight_shows_a_slow_start_s_ramp_and_draining() {
        let ramp = crate::lb::slow_start::Ramp {
            elapsed: Duration::from_secs(4),
            duration: Duration::from_secs(8),
        };
        let mut snap = snapshot();
        snap.services =
            Arc::new(
                table().with_server_state(|_, rs| crate::lb::service::ServerState {
                    ramp: (rs == 0).then_some(ramp),
                    ..Default::default()
                }),
            );
        let text = render(snap);
        let name = "rvs_real_server_effective_weight";
        assert_value(&text, name, &[RS11], 2.0); // round(3 x 4 / 8)
        assert_value(&text, name, &[RS12], 1.0);
        assert_value(&text, name, &[RS13], 0.0);
    }

    #[test]
    fn overloaded_real_servers_count_the_workers_holding_them() {
        let text = render(snapshot());
        assert_value(&text, "rvs_real_server_overloaded_workers", &[RS11], 2.0);
        assert_value(&text, "rvs_real_server_overloaded_workers", &[RS12], 0.0);
    }

    #[test]
    fn drops_are_summed_over_workers_for_every_reason() {
        let text = render(snapshot());
        assert_value(&text, "rvs_drops_total", &["reason=\"no_service\""], 4.0);
        assert_value(&text, "rvs_drops_total", &["reason=\"bad_checksum\""], 2.0);
        for r in DropReason::ALL {
            let label = format!("reason=\"{}\"", r.name());
            assert!(
                sample(&text, "rvs_drops_total", &[&label]).is_some(),
                "{label}"
            );
        }
    }

    #[test]
    fn a_tls_checks_certificate_expiry_is_a_timestamp_gauge() {
        let mut snap = snapshot();
        assert!(!render(snap.clone()).contains("rvs_health_check_cert_expiry"));
        snap.health_checks[0].last = Some(crate::control::health::CheckResult {
            ok: true,
            detail: String::new(),
            latency: Duration::from_millis(1),
            started: Instant::now(),
            cert_not_after: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            weight: None,
        });
        let text = render(snap);
        assert!(text.contains("# TYPE rvs_health_check_cert_expiry_timestamp_seconds gauge"));
        assert_value(
            &text,
            "rvs_health_check_cert_expiry_timestamp_seconds",
            &[RS11],
            1.8e9,
        );
        assert!(sample(
            &text,
            "rvs_health_check_cert_expiry_timestamp_seconds",
            &[RS12]
        )
        .is_none());
    }

    #[test]
    fn health_check_latency_is_a_histogram() {
        let text = render(snapshot());
        assert!(text.contains("# TYPE rvs_health_check_duration_seconds histogram"));
        let name = "rvs_health_check_duration_seconds_bucket";
        assert_eq!(value(&text, name, &[RS11, "le=\"0.001\""]), 1.0);
        assert_eq!(value(&text, name, &[RS11, "le=\"0.005\""]), 2.0);
        assert_eq!(value(&text, name, &[RS11, "le=\"1.0\""]), 2.0);
        assert_eq!(value(&text, name, &[RS11, "le=\"+Inf\""]), 3.0);
        assert_value(
            &text,
            "rvs_health_check_duration_seconds_count",
            &[RS11],
            3.0,
        );
        let sum = value(&text, "rvs_health_check_duration_seconds_sum", &[RS11]);
        assert!((sum - 2.004).abs() < 1e-9, "{sum}");
        // A server not checked yet has no histogram.
        assert!(sample(&text, "rvs_health_check_duration_seconds_count", &[RS12]).is_none());
    }

    #[test]
    fn table_fill_is_a_gauge_per_worker() {
        let text = render(snapshot());
        assert!(text.contains("# TYPE rvs_worker_conn_table_capacity gauge"));
        assert_value(
            &text,
            "rvs_worker_conn_table_capacity",
            &["lcore=\"1\""],
            1000.0,
        );
        assert_value(
            &text,
            "rvs_worker_neighbor_queue_frames",
            &["lcore=\"2\""],
            2.0,
        );
        assert_value(
            &text,
            "rvs_worker_neighbor_queue_capacity",
            &["lcore=\"2\""],
            256.0,
        );
    }

    #[test]
    fn mbufs_in_use_are_a_gauge_per_pool() {
        let text = render(snapshot());
        assert_value(
            &text,
            "rvs_mempool_mbufs_in_use",
            &["pool=\"rvs_mbufs\""],
            1500.0,
        );
        assert_value(&text, "rvs_mempool_mbufs", &["pool=\"rvs_mbufs\""], 8191.0);
    }

    #[test]
    fn worker_metrics_carry_the_lcore() {
        let text = render(snapshot());
        assert_value(
            &text,
            "rvs_worker_rx_packets_total",
            &["lcore=\"2\""],
            100.0,
        );
        assert_value(&text, "rvs_worker_tx_packets_total", &["lcore=\"1\""], 90.0);
        assert_value(&text, "rvs_worker_busy_ratio", &["lcore=\"1\""], 0.3);
        assert_value(&text, "rvs_worker_busy_ratio", &["lcore=\"2\""], 0.5);
        assert_value(&text, "rvs_worker_connections", &["lcore=\"2\""], 9.0);
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn evictions_and_refusals_are_counted_per_worker() {
        let mut snap = snapshot();
        snap.workers[0].stats.conns_evicted_unproven_tcp = 7;
        snap.workers[1].stats.conns_evicted_udp = 5;
        snap.workers[1].stats.drop(DropReason::TableFull);
        let text = render(snap);
        let evicted = "rvs_worker_connections_evicted_total";
        assert_eq!(
            value(&text, evicted, &["lcore=\"1\"", "kind=\"unproven_tcp\""]),
            7.0
        );
        assert_eq!(value(&text, evicted, &["lcore=\"1\"", "kind=\"udp\""]), 0.0);
        assert_eq!(value(&text, evicted, &["lcore=\"2\"", "kind=\"udp\""]), 5.0);
        let refused = "rvs_worker_connections_refused_total";
        assert_eq!(value(&text, refused, &["lcore=\"1\""]), 0.0);
        assert_eq!(value(&text, refused, &["lcore=\"2\""]), 1.0);
    }

    #[test]
    fn busy_ratio_covers_the_time_since_the_previous_scrape() {
        let mut r = Renderer::default();
        let mut s = snapshot();
        s.workers = vec![worker(1, [0; 3], 10, 90)];
        let first = r.render(s.clone());
        assert_eq!(
            value(&first, "rvs_worker_busy_ratio", &["lcore=\"1\""]),
            0.1
        );
        // Since then: 40 busy and 10 idle polls.
        s.workers = vec![worker(1, [0; 3], 50, 100)];
        let second = r.render(s.clone());
        assert_eq!(
            value(&second, "rvs_worker_busy_ratio", &["lcore=\"1\""]),
            0.8
        );
        // No poll published since: the last ratio stands.
        let third = r.render(s);
        assert_eq!(
            value(&third, "rvs_worker_busy_ratio", &["lcore=\"1\""]),
            0.8
        );
    }

    #[test]
    fn announcer_gauges_and_failures_are_exported_when_announcing() {
        let mut snap = snapshot();
        assert!(!render(snap.clone()).contains("rvs_announce"));
        snap.announce = Some(crate::control::announce::AnnounceStatus {
            enabled: true,
            draining: true,
            announced: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
            interface_up: false,
            failures: 3,
            ..Default::default()
        });
        let text = render(snap);
        assert_value(&text, "rvs_announced_vips", &[], 2.0);
        assert_value(&text, "rvs_draining", &[], 1.0);
        assert_value(&text, "rvs_announce_interface_up", &[], 0.0);
        assert_value(&text, "rvs_announce_failures_total", &[], 3.0);
    }

    #[test]
    fn ha_role_and_sync_counters_are_exported_when_configured() {
        let text = render(snapshot());
        assert_value(&text, "rvs_ha_master", &[], 1.0);
        assert_value(&text, "rvs_ha_sync_sent_records_total", &[], 7.0);
        assert_value(
            &text,
            "rvs_ha_sync_dropped_datagrams_total",
            &["reason=\"foreign\""],
            2.0,
        );
        assert_value(
            &text,
            "rvs_ha_sync_dropped_records_total",
            &["reason=\"unknown_service\""],
            3.0,
        );
        assert_value(&text, "rvs_ha_sync_ttl_capped_records_total", &[], 4.0);
        assert_value(&text, "rvs_ha_sync_peer_restarts_total", &[], 1.0);
        let mut standalone = snapshot();
        standalone.ha = serde_json::json!({"role": "standalone", "configured": false});
        assert!(!render(standalone).contains("rvs_ha_"));
        assert!(
            !text.contains("rvs_cluster_"),
            "a pair has no cluster metrics"
        );
    }

    #[test]
    fn a_cluster_nodes_join_and_per_peer_traffic_are_exported() {
        let mut s = snapshot();
        s.ha["role"] = "active".into();
        s.ha["cluster"] = serde_json::json!({
            "joined": true,
            "join_timeout_ms": 3000,
            "peers": [
                {"address": "192.168.100.2:8848", "sent_bytes": 1380, "received_records": 37},
                {"address": "192.168.100.3:8848", "sent_bytes": 48, "received_records": 0},
            ],
        });
        let text = render(s);
        assert_value(&text, "rvs_cluster_joined", &[], 1.0);
        assert_value(
            &text,
            "rvs_cluster_peer_sent_bytes_total",
            &["peer=\"192.168.100.2:8848\""],
            1380.0,
        );
        assert_value(
            &text,
            "rvs_cluster_peer_received_records_total",
            &["peer=\"192.168.100.3:8848\""],
            0.0,
        );
    }

    /// Every metric family name the exposition of `snapshot()` declares,
    /// with the sample names its type adds (`_total`, `_bucket`, ...).
    fn exported_names() -> std::collections::BTreeSet<String> {
        let text = render(snapshot());
        let mut names = std::collections::BTreeSet::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut words = rest.split(' ');
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        }
        names
    }

    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dpdk-config/grafana-rvs.json");
        let text = std::fs::read_to_string(path).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(exprs.len() >= 10, "only {} queries", exprs.len());
        let exported = exported_names();
        let mut referenced = 0;
        for expr in &exprs {
            for name in metric_names(expr) {
                referenced += 1;
                assert!(
                    exported.contains(&name),
                    "the dashboard queries {name} (in `{expr}`), which rvsd does not export; \
                     it exports {exported:?}"
                );
            }
        }
        assert!(referenced >= exprs.len(), "every query names a metric");
    }

    /// Every `expr` string of the dashboard (panels' targets, templating).
    fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        ("query", serde_json::Value::String(e)) if e.contains("rvs_") => {
                            out.push(e.clone())
                        }
                        ("query", serde_json::Value::Object(q)) => {
                            if let Some(e) = q.get("query").and_then(|e| e.as_str()) {
                                out.push(e.to_string());
                            }
                        }
                        _ => collect_exprs(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
            _ => {}
        }
    }

    /// The `rvs_...` identifiers in a PromQL expression, outside quoted
    /// strings (label values).
    fn metric_names(expr: &str) -> Vec<String> {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
        let mut names = Vec::new();
        let mut current = String::new();
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in expr.chars().chain([' ']) {
            match quote {
                Some(q) if c == q && prev != '\\' => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None if word(c) => current.push(c),
                None => {}
            }
            if !word(c) || quote.is_some() {
                if current.starts_with("rvs_") {
                    names.push(current.clone());
                }
                current.clear();
            }
            prev = c;
        }
        names
    }

    #[test]
    fn metric_names_are_read_outside_label_values() {
        assert_eq!(
            metric_names(
                "histogram_quantile(0.99, sum by (le) (rate(rvs_a_bucket{x=\"rvs_b\"}[$__rate_interval]))) / rvs_c"
            ),
            ["rvs_a_bucket", "rvs_c"]
        );
        assert!(!exported_names().contains("rvs_no_such_metric"));
        assert!(exported_names().contains("rvs_health_check_duration_seconds_bucket"));
        assert!(exported_names().contains("rvs_drops_total"));
    }

    #[test]
    fn the_status_page_is_served_beside_the_metrics() {
        let server = local_server();
        for path in ["/", "/status"] {
            let answer = http(server.local_addr(), &format!("GET {path} HTTP/1.1\r\n\r\n"));
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
            assert!(head.contains("Content-Type: text/html"), "{head}");
            assert!(body.contains("10.1.0.12:8080"), "{body}");
        }
        let answer = http(server.local_addr(), "GET /status.json HTTP/1.1\r\n\r\n");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Type: application/json"), "{head}");
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            doc["virtual_servers"][0]["real_servers"][1]["health"],
            "down"
        );
        // The first request had no earlier sample; this one has.
        assert!(doc["interval_s"].as_f64().is_some(), "{doc}");
    }

    /// Sends `request` to `addr` and returns the whole answer.
    fn http(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn local_server() -> MetricsServer {
        let source: SnapshotSource = Arc::new(snapshot);
        serve("127.0.0.1:0".parse().unwrap(), source).unwrap()
    }

    #[test]
    fn scrape_over_tcp_returns_the_exposition() {
        let server = local_server();
        let answer = http(
            server.local_addr(),
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains(&format!("Content-Type: {CONTENT_TYPE}")),
            "{head}"
        );
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert_eq!(value(body, "rvs_real_server_up", &[RS12]), 0.0);
        assert_eq!(
            value(body, "rvs_real_server_active_connections", &[RS11]),
            9.0
        );
        assert!(body.contains("rvs_drops_total{reason=\"no_service\"} 4\n"));
        assert!(body.ends_with("# EOF\n"));
    }

    #[test]
    fn other_paths_are_not_found_and_other_methods_not_allowed() {
        let server = local_server();
        let answer = http(server.local_addr(), "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
        let answer = http(server.local_addr(), "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
        let answer = http(server.local_addr(), "HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n"), "no body for HEAD");
    }

    #[test]
    fn a_silent_client_does_not_block_other_scrapes() {
        let server = local_server();
        // Connects and says nothing.
        let _silent = TcpStream::connect(server.local_addr()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        let answer = http(server.local_addr(), "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK"));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn client_outcomes_are_counters_per_endpoint() {
        let text = render(snapshot());
        let v = |o: &str| {
            value(
                &text,
                "rvs_control_clients_total",
                &["endpoint=\"control\"", &format!("outcome=\"{o}\"")],
            )
        };
        assert_eq!(
            (v("accepted"), v("refused"), v("timed_out")),
            (9.0, 2.0, 0.0)
        );
    }

    #[test]
    fn slow_clients_do_not_starve_scrapes() {
        let server = local_server();
        // Eight slowloris clients, each a byte of its head at a time.
        let mut slow: Vec<TcpStream> = (0..8)
            .map(|_| TcpStream::connect(server.local_addr()).unwrap())
            .collect();
        for s in &mut slow {
            s.write_all(b"G").unwrap();
        }
        for _ in 0..5 {
            for s in &mut slow {
                let _ = s.write_all(b"E");
            }
            let start = Instant::now();
            let answer = http(server.local_addr(), "GET /metrics HTTP/1.1\r\n\r\n");
            assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
        }
        assert!(server.counters().get().answered >= 5);
    }

    #[test]
    fn a_client_silent_past_its_deadline_is_closed_and_counted() {
        let server = local_server();
        let mut silent = TcpStream::connect(server.local_addr()).unwrap();
        silent
            .set_read_timeout(Some(REQUEST_TIMEOUT + Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(silent.read(&mut buf).unwrap_or(0), 0, "closed");
        assert_eq!(server.counters().get().timed_out, 1);
    }

    #[test]
    fn dropping_the_server_frees_its_port() {
        let server = local_server();
        let addr = server.local_addr();
        let start = Instant::now();
        drop(server);
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(TcpListener::bind(addr).is_ok(), "the port is free again");
    }

    #[test]
    fn an_address_in_use_is_an_error() {
        let server = local_server();
        let source: SnapshotSource = Arc::new(MetricsSnapshot::default);
        assert!(serve(server.local_addr(), source).is_err());
    }
}
