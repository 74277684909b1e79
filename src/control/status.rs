//! The status page operators open in a browser beside `/metrics`: `GET /`
//! (or `/status`) is a read-only HTML page, `GET /status.json` the same
//! figures as JSON.
//!
//! Why it lives on the metrics thread: it shows what a scrape shows (the
//! same [`MetricsSnapshot`]: the service table in force, the workers'
//! published counters, the health checker's statuses, the HA role), so it
//! needs no new path into the control loop and never blocks it. Rates per
//! second need two snapshots: [`Rates`] keeps the last few samples of the
//! cumulative counters with their times, and each page divides the
//! difference to a sample at least [`RATE_WINDOW`] old (or the oldest one
//! it has) by the time between them.
//!
//! The page is plain HTML with inline CSS: no script, nothing fetched from
//! anywhere, a `<meta http-equiv="refresh">` to redraw it every two
//! seconds. Every string it prints goes through [`escape`]: names come
//! from the config file and reasons from the network.
//!
//! Built in two pure steps, both unit-tested without DPDK: [`build`] turns
//! a snapshot (and the previous counters) into a [`StatusPage`], then
//! [`html`] or [`to_json`] prints it.

use super::metrics::MetricsSnapshot;
use super::report::sum_real_servers;
use crate::dataplane::stats::{DropReason, RealServerCounters, WorkerStats};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The content type of the HTML page.
pub const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";
/// The content type of `/status.json`.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// How often the page asks the browser to reload it, in seconds.
pub const REFRESH_S: u32 = 2;
/// Rates are computed against the newest sample at least this old.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Samples older than this are forgotten.
const SAMPLE_MAX_AGE: Duration = Duration::from_secs(60);
/// Samples kept at most.
const SAMPLES: usize = 16;

/// The cumulative counters rates are computed from, by key (see `key`).
pub type Counters = HashMap<String, u64>;

/// One real server's line on the page.
#[derive(Clone, Debug, PartialEq)]
pub struct RealServerStatus {
    /// `RIP:PORT`.
    pub address: String,
    /// The weight in force.
    pub weight: u32,
    /// Passes its health checks (or is not checked).
    pub up: bool,
    /// Why it is in its state: the reason of its last up/down change, or
    /// what else is known.
    pub reason: String,
    /// Seconds since that change, when there was one.
    pub changed_s_ago: Option<u64>,
    /// A reload removed it; its connections drain.
    pub draining: bool,
    /// Its counters summed over the workers.
    pub counters: RealServerCounters,
    /// Packets per second, both ways (`None` until two samples exist).
    pub packets_per_s: Option<f64>,
    /// New connections per second.
    pub conns_per_s: Option<f64>,
    /// Its priority group (`lb::priority`).
    pub priority: u8,
}

/// One virtual server's table on the page.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServerStatus {
    /// Its name in the config.
    pub name: String,
    /// `VIP:PORT`.
    pub address: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Its scheduler's name.
    pub scheduler: String,
    /// Its forwarding method's name.
    pub forward: String,
    /// A reload removed it; its connections drain.
    pub draining: bool,
    /// Its real servers' counters summed.
    pub counters: RealServerCounters,
    /// Packets per second, both ways.
    pub packets_per_s: Option<f64>,
    /// New connections per second.
    pub conns_per_s: Option<f64>,
    /// Its real servers, in table order.
    pub real_servers: Vec<RealServerStatus>,
    /// The priority group taking new connections (`None`: no live
    /// server) and why, when its servers have more than one priority.
    pub priority_group: Option<(Option<u8>, String)>,
}

/// One drop reason's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct DropStatus {
    /// The reason's name (`DropReason::name`).
    pub reason: &'static str,
    /// Frames dropped for it since start, over all workers.
    pub total: u64,
    /// Per second.
    pub per_s: Option<f64>,
}

/// Everything the page shows, computed once and printed as HTML or JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPage {
    /// The `rvsadm ha status` document (role, detail, sync counters).
    pub ha: Value,
    /// Seconds the rates cover (`None`: no earlier sample yet).
    pub interval_s: Option<f64>,
    /// Frames received and sent, over all workers.
    pub rx_packets: u64,
    /// Frames handed to devices.
    pub tx_packets: u64,
    /// Received frames per second.
    pub rx_per_s: Option<f64>,
    /// Sent frames per second.
    pub tx_per_s: Option<f64>,
    /// Connections in the workers' tables.
    pub connections: u64,
    /// Workers running.
    pub workers: usize,
    /// The virtual servers.
    pub virtual_servers: Vec<VirtualServerStatus>,
    /// Every drop reason, in `DropReason::ALL` order.
    pub drops: Vec<DropStatus>,
    /// The fixed resources and how full they are.
    pub resources: Resources,
}

/// The fixed resources of the workers, summed: what fills before anyone
/// is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Connections the tables hold at most.
    pub conn_capacity: u64,
    /// Packet buffers in the pools.
    pub mbufs: u64,
    /// Packet buffers taken from the pools.
    pub mbufs_in_use: u64,
    /// Frames waiting for a next hop's ARP answer.
    pub neighbor_queue_frames: u64,
}

/// The recent samples of the cumulative counters, kept by the metrics
/// thread between page views.
#[derive(Debug, Default)]
pub struct Rates {
    samples: VecDeque<(Instant, Counters)>,
}

impl Rates {
    /// Records `now`'s counters and returns the earlier sample rates are
    /// computed against, with the seconds since: the newest one at least
    /// `RATE_WINDOW` old, else the oldest one.
    pub fn sample(&mut self, now: Instant, counters: Counters) -> Option<(Counters, f64)> {
        self.samples.retain(|(t, _)| {
            now.checked_duration_since(*t)
                .is_some_and(|age| age <= SAMPLE_MAX_AGE)
        });
        let base = self
            .samples
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= RATE_WINDOW)
            .or_else(|| self.samples.front())
            .filter(|(t, _)| now.duration_since(*t) > Duration::ZERO)
            .map(|(t, c)| (c.clone(), now.duration_since(*t).as_secs_f64()));
        if self.samples.len() >= SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((now, counters));
        base
    }
}

fn key(parts: &[&str]) -> String {
    parts.join("|")
}

/// The cumulative counters of `snap` that the page shows rates of.
pub fn counters(snap: &MetricsSnapshot) -> Counters {
    let mut out = Counters::new();
    let totals = sum_real_servers(&snap.workers);
    let mut flat = totals.iter();
    for vs in snap.services.services() {
        let vs_addr = vs.vip_addr().to_string();
        for r in 0..vs.real_servers.len() {
            let c = flat.next().copied().unwrap_or_default();
            let rs_addr = vs
                .real_addr(r as u16)
                .map_or_else(String::new, |a| a.to_string());
            let id = [vs.name.as_str(), &vs_addr, &rs_addr];
            out.insert(key(&[&id[..], &["packets"]].concat()), packets(&c));
            out.insert(key(&[&id[..], &["conns"]].concat()), c.conns);
        }
    }
    let total = total_stats(&snap.workers);
    out.insert("rx".into(), total.rx_packets);
    out.insert("tx".into(), total.tx_packets);
    for r in DropReason::ALL {
        out.insert(key(&["drop", r.name()]), total.drops[r as usize]);
    }
    out
}

fn packets(c: &RealServerCounters) -> u64 {
    c.packets_in + c.packets_out
}

fn total_stats(workers: &[super::report::WorkerSnapshot]) -> WorkerStats {
    let mut total = WorkerStats::default();
    for w in workers {
        total.add(&w.stats);
    }
    total
}

/// `(now - then) / secs` for counter `k`; a counter that went back (a
/// reload reshaped the table) counts as zero.
fn rate(now: u64, base: Option<&(Counters, f64)>, k: &str) -> Option<f64> {
    let (then, secs) = base?;
    let then = then.get(k)?;
    Some(now.saturating_sub(*then) as f64 / secs)
}

/// The page's figures: `snap` now, `base` the earlier counters and the
/// seconds since (from `Rates::sample`), `now` the time of `snap` (for
/// "changed N s ago").
pub fn build(snap: &MetricsSnapshot, base: Option<&(Counters, f64)>, now: Instant) -> StatusPage {
    let totals = sum_real_servers(&snap.workers);
    let mut flat = totals.iter();
    let mut virtual_servers = Vec::new();
    for (v, vs) in snap.services.services().iter().enumerate() {
        let vs_addr = vs.vip_addr().to_string();
        let mut sum = RealServerCounters::default();
        let mut real_servers = Vec::new();
        for (r, rs) in vs.real_servers.iter().enumerate() {
            let c = flat.next().copied().unwrap_or_default();
            sum.add(&c);
            let rs_addr = vs
                .real_addr(r as u16)
                .map_or_else(String::new, |a| a.to_string());
            let id = [vs.name.as_str(), &vs_addr, &rs_addr];
            let up = snap
                .health
                .get(v)
                .and_then(|h| h.get(r))
                .copied()
                .unwrap_or(true);
            let weight = snap
                .weights
                .get(v)
                .and_then(|w| w.get(r))
                .copied()
                .unwrap_or(rs.weight);
            let checked = snap
                .health_checks
                .iter()
                .find(|t| usize::from(t.target.vs) == v && usize::from(t.target.rs) == r);
            let (reason, changed_s_ago) = match checked {
                Some(t) => match &t.last_change {
                    Some(ch) => (
                        ch.reason.clone(),
                        Some(now.saturating_duration_since(ch.at).as_secs()),
                    ),
                    None => (
                        format!(
                            "{} check: no change since start ({} checks, {} failed)",
                            t.target.check.kind.name(),
                            t.checks,
                            t.failed
                        ),
                        None,
                    ),
                },
                None => ("not health-checked".to_string(), None),
            };
            real_servers.push(RealServerStatus {
                address: rs_addr.clone(),
                weight,
                up,
                reason,
                changed_s_ago,
                draining: snap.services.is_server_draining(v as u16, r as u16),
                counters: c,
                packets_per_s: rate(packets(&c), base, &key(&[&id[..], &["packets"]].concat())),
                conns_per_s: rate(c.conns, base, &key(&[&id[..], &["conns"]].concat())),
                priority: rs.priority,
            });
        }
        let sum_rate = |pick: fn(&RealServerStatus) -> Option<f64>| -> Option<f64> {
            real_servers.iter().map(pick).sum()
        };
        virtual_servers.push(VirtualServerStatus {
            name: vs.name.clone(),
            address: vs_addr,
            protocol: vs.key.protocol.name().to_string(),
            scheduler: vs.scheduler.name().to_string(),
            forward: vs.forward.name().to_string(),
            draining: snap.services.is_draining(v as u16),
            counters: sum,
            packets_per_s: sum_rate(|r| r.packets_per_s).or(base.map(|_| 0.0)),
            conns_per_s: sum_rate(|r| r.conns_per_s).or(base.map(|_| 0.0)),
            real_servers,
            priority_group: snap
                .services
                .priority_selection(v as u16)
                .filter(|s| s.is_grouped())
                .map(|s| (s.active, s.reason())),
        });
    }
    let total = total_stats(&snap.workers);
    StatusPage {
        ha: snap.ha.clone(),
        interval_s: base.map(|(_, s)| *s),
        rx_packets: total.rx_packets,
        tx_packets: total.tx_packets,
        rx_per_s: rate(total.rx_packets, base, "rx"),
        tx_per_s: rate(total.tx_packets, base, "tx"),
        connections: snap.workers.iter().map(|w| w.connections).sum(),
        workers: snap.workers.len(),
        resources: Resources {
            conn_capacity: snap.workers.iter().map(|w| w.fill.conn_capacity).sum(),
            mbufs: snap.pools.iter().map(|p| p.size).sum(),
            mbufs_in_use: snap.pools.iter().map(|p| p.in_use).sum(),
            neighbor_queue_frames: snap
                .workers
                .iter()
                .map(|w| w.fill.neighbor_queue_frames)
                .sum(),
        },
        virtual_servers,
        drops: DropReason::ALL
            .iter()
            .map(|&r| {
                let total = total.drops[r as usize];
                DropStatus {
                    reason: r.name(),
                    total,
                    per_s: rate(total, base, &key(&["drop", r.name()])),
                }
            })
            .collect(),
    }
}

// ------------------------------------------------------------ printing

/// `part` as a percentage of `whole` (0 without a whole).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// `s` made safe for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A rate as the page prints it: one decimal under 100, none above; a dash
/// before two samples exist.
pub fn format_rate(r: Option<f64>) -> String {
    match r {
        None => "–".to_string(),
        Some(x) if x < 100.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.0}"),
    }
}

const STYLE: &str = "\
body{font:14px/1.4 'DejaVu Sans',Arial,sans-serif;margin:16px 24px;color:#1b1f24;background:#f6f7f9}\
h1{font-size:20px;margin:0 0 4px}\
h2{font-size:16px;margin:18px 0 6px}\
.sub{color:#57606a;margin-bottom:10px}\
table{border-collapse:collapse;background:#fff;margin-bottom:8px;min-width:60%}\
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;white-space:nowrap}\
th{background:#eaeef2}\
th.title{background:#d0d7de;font-size:15px}\
td.l,th.l{text-align:left}\
td.reason{text-align:left;white-space:normal;max-width:420px;color:#57606a;font-size:12px}\
.up{background:#dafbe1;color:#116329;font-weight:bold}\
.down{background:#ffebe9;color:#a40e26;font-weight:bold}\
.drain{color:#9a6700}\
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:bold}\
.master{background:#dafbe1;color:#116329}\
.backup{background:#fff8c5;color:#9a6700}\
.standalone{background:#eaeef2;color:#1b1f24}\
.zero{color:#8c959f}";

/// The page as HTML: a summary line (HA role and sync, totals), a table
/// per virtual server with its real servers, and the drops by reason.
pub fn html(page: &StatusPage) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <title>rvs status</title><style>{STYLE}</style></head><body>\n"
    );
    let role = page.ha["role"].as_str().unwrap_or("unknown");
    let role_class = match role {
        "master" | "backup" | "standalone" => role,
        _ => "standalone",
    };
    let _ = writeln!(
        o,
        "<h1>rvs status <span class=\"badge {role_class}\" id=\"ha-role\">{}</span></h1>",
        escape(role)
    );
    let _ = writeln!(
        o,
        "<div class=\"sub\" id=\"ha-detail\">HA: {}{}</div>",
        escape(page.ha["detail"].as_str().unwrap_or("")),
        sync_summary(&page.ha)
    );
    let _ = writeln!(
        o,
        "<div class=\"sub\" id=\"totals\">{} worker(s) &middot; {} connection(s) in the tables \
         &middot; rx {} frames ({}/s) &middot; tx {} frames ({}/s) &middot; {}</div>",
        page.workers,
        page.connections,
        page.rx_packets,
        format_rate(page.rx_per_s),
        page.tx_packets,
        format_rate(page.tx_per_s),
        match page.interval_s {
            Some(s) => format!("rates over the last {s:.1} s"),
            None => "rates from the next refresh on".to_string(),
        }
    );
    let r = &page.resources;
    let _ = writeln!(
        o,
        "<div class=\"sub\" id=\"resources\">connection tables {:.1}% full ({} of {}) \
         &middot; mbufs in use {} of {} &middot; {} frame(s) waiting for ARP</div>",
        percent(page.connections, r.conn_capacity),
        page.connections,
        r.conn_capacity,
        r.mbufs_in_use,
        r.mbufs,
        r.neighbor_queue_frames
    );
    o.push_str("<h2>Virtual servers</h2>\n");
    if page.virtual_servers.is_empty() {
        o.push_str("<p>No virtual server configured.</p>\n");
    }
    for vs in &page.virtual_servers {
        virtual_server(&mut o, vs);
    }
    drops(&mut o, page);
    o.push_str("</body></html>\n");
    o
}

/// " · sync: sent N records, received M, missed K datagrams", when syncing.
fn sync_summary(ha: &Value) -> String {
    let sync = &ha["sync"];
    if !sync.is_object() {
        return String::new();
    }
    let n = |k: &str| sync[k].as_u64().unwrap_or(0);
    let dropped: u64 = sync["dropped"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    let records_dropped: u64 = sync["records_dropped"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    format!(
        " &middot; sync: sent {} records, received {}, {} datagrams missed, {} dropped, {} resyncs, \
         {} records dropped, {} timeouts capped",
        n("sent_records"),
        n("received_records"),
        n("missed_datagrams"),
        dropped,
        n("resyncs"),
        records_dropped,
        n("ttl_capped")
    )
}

fn virtual_server(o: &mut String, vs: &VirtualServerStatus) {
    let _ = writeln!(
        o,
        "<table class=\"vs\" data-name=\"{}\">\n<tr><th class=\"l title\" colspan=\"9\">{} \
         &mdash; {}/{} &middot; {} &middot; {}{}{}</th></tr>",
        escape(&vs.name),
        escape(&vs.name),
        escape(&vs.address),
        escape(&vs.protocol),
        escape(&vs.scheduler),
        escape(&vs.forward),
        if vs.draining { " (draining)" } else { "" },
        vs.priority_group
            .as_ref()
            .map(|(active, why)| format!(
                " &middot; <span class=\"prio\">priority group {} ({})</span>",
                active.map_or_else(|| "none".to_string(), |p| p.to_string()),
                escape(why)
            ))
            .unwrap_or_default(),
    );
    let _ = writeln!(
        o,
        "<tr><th class=\"l\">Real server</th><th class=\"l\">Health</th>\
         <th class=\"l\">Last change</th><th>Weight</th><th>Active</th><th>Inactive</th>\
         <th>Conns</th><th>Conns/s</th><th>Pkts/s</th></tr>"
    );
    for rs in &vs.real_servers {
        let (class, word) = if rs.up {
            ("up", "up")
        } else {
            ("down", "down")
        };
        let ago = rs
            .changed_s_ago
            .map(|s| format!(" ({s} s ago)"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr class=\"rs\" data-address=\"{addr}\"><td class=\"l\">{addr}{prio}{drain}</td>\
             <td class=\"l {class}\">{word}</td><td class=\"reason\">{reason}{ago}</td>\
             <td class=\"weight\">{weight}</td><td class=\"active\">{active}</td>\
             <td class=\"inactive\">{inactive}</td><td class=\"conns\">{conns}</td>\
             <td>{cps}</td><td>{pps}</td></tr>",
            addr = escape(&rs.address),
            prio = if vs.priority_group.is_some() {
                format!(" <span class=\"prio\">(priority {})</span>", rs.priority)
            } else {
                String::new()
            },
            drain = if rs.draining {
                " <span class=\"drain\">(draining)</span>"
            } else {
                ""
            },
            reason = escape(&rs.reason),
            weight = rs.weight,
            active = rs.counters.active,
            inactive = rs.counters.inactive,
            conns = rs.counters.conns,
            cps = format_rate(rs.conns_per_s),
            pps = format_rate(rs.packets_per_s),
        );
    }
    let _ = writeln!(
        o,
        "<tr class=\"total\"><th class=\"l\" colspan=\"4\">total</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th></tr>\n</table>",
        vs.counters.active,
        vs.counters.inactive,
        vs.counters.conns,
        format_rate(vs.conns_per_s),
        format_rate(vs.packets_per_s),
    );
}

fn drops(o: &mut String, page: &StatusPage) {
    let total: u64 = page.drops.iter().map(|d| d.total).sum();
    let _ = writeln!(
        o,
        "<h2>Drops by reason ({total} in all)</h2>\n<table class=\"drops\">\
         <tr><th class=\"l\">Reason</th><th>Since start</th><th>Per second</th></tr>"
    );
    for d in page.drops.iter().filter(|d| d.total > 0) {
        let _ = writeln!(
            o,
            "<tr data-reason=\"{r}\"><td class=\"l\">{r}</td><td>{}</td><td>{}</td></tr>",
            d.total,
            format_rate(d.per_s),
            r = escape(d.reason),
        );
    }
    o.push_str("</table>\n");
    // The reasons that never dropped anything, on one line.
    let zero: Vec<String> = page
        .drops
        .iter()
        .filter(|d| d.total == 0)
        .map(|d| format!("<span data-reason=\"{r}\">{r}</span>", r = escape(d.reason)))
        .collect();
    if !zero.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"zero\">None dropped for: {}</p>",
            zero.join(", ")
        );
    }
}

/// The page as `/status.json`: the same figures, rates `null` before two
/// samples exist.
pub fn to_json(page: &StatusPage) -> Value {
    let vss: Vec<Value> = page
        .virtual_servers
        .iter()
        .map(|vs| {
            let rss: Vec<Value> = vs
                .real_servers
                .iter()
                .map(|rs| {
                    json!({
                        "address": rs.address,
                        "weight": rs.weight,
                        "health": if rs.up { "up" } else { "down" },
                        "reason": rs.reason,
                        "changed_s_ago": rs.changed_s_ago,
                        "draining": rs.draining,
                        "active_conns": rs.counters.active,
                        "inactive_conns": rs.counters.inactive,
                        "conns": rs.counters.conns,
                        "packets_in": rs.counters.packets_in,
                        "packets_out": rs.counters.packets_out,
                        "packets_per_s": rs.packets_per_s,
                        "conns_per_s": rs.conns_per_s,
                        "priority": rs.priority,
                    })
                })
                .collect();
            json!({
                "name": vs.name,
                "address": vs.address,
                "protocol": vs.protocol,
                "scheduler": vs.scheduler,
                "forward": vs.forward,
                "draining": vs.draining,
                "active_conns": vs.counters.active,
                "inactive_conns": vs.counters.inactive,
                "conns": vs.counters.conns,
                "packets_per_s": vs.packets_per_s,
                "conns_per_s": vs.conns_per_s,
                "active_priority": vs.priority_group.as_ref().and_then(|(a, _)| *a),
                "priority_reason": vs.priority_group.as_ref().map(|(_, why)| why.clone()),
                "real_servers": rss,
            })
        })
        .collect();
    let drops: serde_json::Map<String, Value> = page
        .drops
        .iter()
        .map(|d| {
            (
                d.reason.to_string(),
                json!({ "total": d.total, "per_s": d.per_s }),
            )
        })
        .collect();
    json!({
        "ha": page.ha,
        "interval_s": page.interval_s,
        "workers": page.workers,
        "connections": page.connections,
        "resources": {
            "conn_capacity": page.resources.conn_capacity,
            "mbufs": page.resources.mbufs,
            "mbufs_in_use": page.resources.mbufs_in_use,
            "neighbor_queue_frames": page.resources.neighbor_queue_frames,
        },
        "rx_packets": page.rx_packets,
        "tx_packets": page.tx_packets,
        "rx_per_s": page.rx_per_s,
        "tx_per_s": page.tx_per_s,
        "virtual_servers": vss,
        "drops": drops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::health::LastChange;
    use crate::control::metrics::tests::{snapshot, worker};

    /// The text of the first element whose opening tag contains `marker`,
    /// up to the next `<`.
    fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
        let at = html
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker} in\n{html}"));
        let rest = &html[at..];
        let start = rest.find('>').unwrap() + 1;
        let end = rest[start..].find('<').unwrap() + start;
        &rest[start..end]
    }

    /// The `<tr>` of real server `addr`.
    fn row<'a>(html: &'a str, addr: &str) -> &'a str {
        let at = html
            .find(&format!("data-address=\"{addr}\""))
            .unwrap_or_else(|| panic!("no row for {addr} in\n{html}"));
        let end = html[at..].find("</tr>").unwrap() + at;
        &html[at..end]
    }

    fn page() -> StatusPage {
        build(&snapshot(), None, Instant::now())
    }

    #[test]
    fn each_real_server_shows_weight_health_and_connections() {
        let html = html(&page());
        let rs11 = row(&html, "10.1.0.11:8080");
        assert_eq!(text_after(rs11, "class=\"weight\""), "5");
        assert_eq!(text_after(rs11, "class=\"l up\""), "up");
        // Summed over the two workers.
        assert_eq!(text_after(rs11, "class=\"active\""), "9");
        assert_eq!(text_after(rs11, "class=\"inactive\""), "2");
        assert_eq!(text_after(rs11, "class=\"conns\""), "90");
        let rs12 = row(&html, "10.1.0.12:8080");
        assert_eq!(text_after(rs12, "class=\"l down\""), "down");
        assert_eq!(text_after(rs12, "class=\"weight\""), "1");
        assert!(row(&html, "10.1.0.13:8080").contains("(draining)"));
    }

    #[test]
    fn a_grouped_service_shows_its_active_group_and_each_priority() {
        let mut snap = snapshot();
        let mut services = snap.services.services().to_vec();
        services[0].real_servers[2].priority = 1;
        snap.services = std::sync::Arc::new(
            crate::lb::service::ServiceTable::new(services).with_server_state(|_, r| {
                crate::lb::service::ServerState {
                    down: r < 2,
                    weight: None,
                    ramp: None,
                }
            }),
        );
        let page = build(&snap, None, Instant::now());
        let html = html(&page);
        assert!(
            html.contains("priority group 1 (group 0 has 0 live"),
            "{html}"
        );
        assert!(row(&html, "10.1.0.13:8080").contains("(priority 1)"));
        let json = to_json(&page);
        let vs = &json["virtual_servers"][0];
        assert_eq!(vs["active_priority"], 1, "{json}");
        assert_eq!(vs["real_servers"][2]["priority"], 1, "{json}");
    }

    #[test]
    fn a_service_of_one_group_shows_no_priorities() {
        let page = page();
        assert_eq!(page.virtual_servers[0].priority_group, None);
        assert!(!html(&page).contains("priority"));
    }

    #[test]
    fn the_page_refreshes_itself_and_loads_nothing() {
        let html = html(&page());
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"2\">"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src="));
        assert!(!html.contains("href="));
    }

    #[test]
    fn names_from_the_config_are_escaped() {
        use crate::lb::service::{
            ForwardMethod, Protocol, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
        };
        use crate::lb::xmit::Endpoint;
        let ep = |s: &str, p| Endpoint::new(s.parse().unwrap(), p);
        let mut snap = snapshot();
        snap.services = std::sync::Arc::new(ServiceTable::new(vec![VirtualService::new(
            "<script>alert('x')</script>&",
            ServiceKey {
                vip: ep("203.0.113.100", 80),
                protocol: Protocol::Tcp,
            },
            ForwardMethod::Nat,
            SchedulerKind::Wrr,
            [(ep("10.1.0.11", 8080), 1)],
        )]));
        snap.ha["detail"] = "peer \"<b>\"".into();
        let html = html(&build(&snap, None, Instant::now()));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
        assert!(html.contains("peer &quot;&lt;b&gt;&quot;"));
    }

    #[test]
    fn health_shows_the_reason_of_the_last_change() {
        let mut snap = snapshot();
        let now = Instant::now();
        snap.health_checks[1].last_change = Some(LastChange {
            up: false,
            reason: "connect to 10.1.0.12:8080 failed: Connection refused (2 failures in a row)"
                .into(),
            at: now - Duration::from_secs(7),
        });
        let page = build(&snap, None, now);
        let rs12 = &page.virtual_servers[0].real_servers[1];
        assert!(rs12.reason.starts_with("connect to 10.1.0.12:8080 failed"));
        assert_eq!(rs12.changed_s_ago, Some(7));
        let html = html(&page);
        assert!(row(&html, "10.1.0.12:8080").contains("(7 s ago)"));
        // Checked, never changed: says so; not checked at all: says so.
        let rs11 = &page.virtual_servers[0].real_servers[0];
        assert_eq!(
            rs11.reason,
            "tcp check: no change since start (3 checks, 1 failed)"
        );
        assert_eq!(
            page.virtual_servers[0].real_servers[2].reason,
            "not health-checked"
        );
    }

    #[test]
    fn rates_are_the_difference_of_two_samples_over_their_time() {
        let mut rates = Rates::default();
        let t0 = Instant::now();
        let mut snap = snapshot();
        assert!(rates.sample(t0, counters(&snap)).is_none());
        let first = build(&snap, None, t0);
        assert_eq!(first.virtual_servers[0].real_servers[0].conns_per_s, None);
        assert_eq!(format_rate(first.rx_per_s), "–");
        // Two seconds later: 20 more connections to 10.1.0.11 on lcore 1
        // (10 per connection counted), 200 more packets in, 180 out.
        snap.workers[0] = worker(1, [5, 1, 0], 30, 70);
        snap.workers[0].stats.rx_packets += 400;
        snap.workers[0].stats.drops[DropReason::NoService as usize] += 10;
        let t1 = t0 + Duration::from_secs(2);
        let base = rates.sample(t1, counters(&snap)).unwrap();
        assert_eq!(base.1, 2.0);
        let page = build(&snap, Some(&base), t1);
        let rs11 = &page.virtual_servers[0].real_servers[0];
        assert_eq!(rs11.conns_per_s, Some(10.0));
        assert_eq!(rs11.packets_per_s, Some(190.0));
        assert_eq!(page.virtual_servers[0].conns_per_s, Some(10.0));
        assert_eq!(page.rx_per_s, Some(200.0));
        let no_service = page
            .drops
            .iter()
            .find(|d| d.reason == "no_service")
            .unwrap();
        assert_eq!((no_service.total, no_service.per_s), (14, Some(5.0)));
        assert_eq!(page.interval_s, Some(2.0));
    }

    #[test]
    fn rates_use_a_sample_at_least_a_second_old_when_there_is_one() {
        let mut rates = Rates::default();
        let t0 = Instant::now();
        let c = counters(&snapshot());
        rates.sample(t0, c.clone());
        rates.sample(t0 + Duration::from_millis(1500), c.clone());
        let (_, secs) = rates
            .sample(t0 + Duration::from_millis(1800), c.clone())
            .unwrap();
        assert_eq!(secs, 1.8, "the 0.3 s old sample is too recent");
        // Only recent samples: the oldest one.
        let mut rates = Rates::default();
        rates.sample(t0, c.clone());
        let (_, secs) = rates.sample(t0 + Duration::from_millis(200), c).unwrap();
        assert!((secs - 0.2).abs() < 1e-9);
    }

    #[test]
    fn drops_and_the_ha_role_are_on_the_page() {
        let html = html(&page());
        assert_eq!(text_after(&html, "id=\"ha-role\""), "master");
        assert!(html.contains("sync: sent 7 records"), "{html}");
        let no_service = &html[html.find("data-reason=\"no_service\"").unwrap()..];
        assert!(no_service
            .starts_with("data-reason=\"no_service\"><td class=\"l\">no_service</td><td>4</td>"));
        for r in DropReason::ALL {
            assert!(html.contains(&format!("data-reason=\"{}\"", r.name())));
        }
    }

    #[test]
    fn the_json_document_carries_the_same_figures() {
        let p = page();
        let doc = to_json(&p);
        let rs = &doc["virtual_servers"][0]["real_servers"];
        assert_eq!(rs[0]["address"], "10.1.0.11:8080");
        assert_eq!(rs[0]["weight"], 5);
        assert_eq!(rs[0]["active_conns"], 9);
        assert_eq!(rs[1]["health"], "down");
        assert_eq!(doc["drops"]["no_service"]["total"], 4);
        assert_eq!(doc["ha"]["role"], "master");
        assert_eq!(doc["interval_s"], Value::Null);
        assert_eq!(doc["resources"]["conn_capacity"], 2000);
        assert_eq!(doc["resources"]["mbufs_in_use"], 1500);
    }

    #[test]
    fn table_fill_mbufs_and_the_neighbour_queue_are_on_the_page() {
        let html = html(&page());
        let line = text_after(&html, "id=\"resources\"");
        assert!(
            line.starts_with("connection tables 0.7% full (13 of 2000)"),
            "{line}"
        );
        assert!(line.contains("mbufs in use 1500 of 8191"), "{line}");
        assert!(line.contains("3 frame(s) waiting for ARP"), "{line}");
    }
}
