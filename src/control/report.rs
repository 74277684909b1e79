//! The documents rvsd reports: the virtual server list (`rvsadm list`,
//! the schema of INTERFACE.md) and the worker counters (`rvsadm stats`, the
//! `stats:` line at stop). Built from immutable snapshots the workers
//! published, so making one never touches a worker.

use crate::dataplane::stats::{RealServerCounters, RefusalCounts, TableFill, WorkerStats};
use crate::lb::limits::LimitRefusal;
use crate::lb::service::{ServiceTable, VirtualService};
use serde_json::{json, Value};

/// One worker's published counters, as the control side reads them.
#[derive(Clone, Debug, Default)]
pub struct WorkerSnapshot {
    /// The lcore it runs on.
    pub lcore: u32,
    /// Its packet counters.
    pub stats: WorkerStats,
    /// Per real server (services in order, their servers in order).
    pub real_servers: Vec<RealServerCounters>,
    /// Connections in its table.
    pub connections: u64,
    /// How full its connection table and neighbour queue are.
    pub fill: TableFill,
    /// Per virtual server (in order), new connections its limits refused.
    pub refused: Vec<RefusalCounts>,
    /// Per real server (as `real_servers`), held at its upper threshold.
    pub overloaded: Vec<bool>,
    /// FullNAT: its local ports, per (local address, protocol) it owns.
    pub local: Vec<crate::lb::local_pool::LocalUsage>,
}

/// One packet-buffer pool's use: read on the control side from the
/// pool itself (DPDK counts free buffers in its ring and lcore caches).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// The pool's name (`rvs_mbufs`).
    pub name: String,
    /// Buffers in the pool.
    pub size: u64,
    /// Buffers taken from it: in rings, queues, a worker's hands.
    pub in_use: u64,
}

/// Reads the packet-buffer pools at the moment of the call; the binary
/// supplies it (the pools are DPDK's), tests and the pure core none.
pub type PoolSource = std::sync::Arc<dyn Fn() -> Vec<PoolUsage> + Send + Sync>;

/// Adds `"mempools": [{"name", "size", "in_use"}]` to a `stats` document.
pub fn add_pools(stats: &mut Value, pools: &[PoolUsage]) {
    stats["mempools"] = pools
        .iter()
        .map(|p| json!({ "name": p.name, "size": p.size, "in_use": p.in_use }))
        .collect();
}

/// How many workers hold each real server (flat, as `real_servers`) at its
/// upper threshold.
pub fn count_overloaded(workers: &[WorkerSnapshot]) -> Vec<u64> {
    let mut total: Vec<u64> = Vec::new();
    for w in workers {
        if total.len() < w.overloaded.len() {
            total.resize(w.overloaded.len(), 0);
        }
        for (t, &o) in total.iter_mut().zip(&w.overloaded) {
            *t += u64::from(o);
        }
    }
    total
}

/// Sums the workers' per virtual server refusals.
pub fn sum_refused(workers: &[WorkerSnapshot]) -> Vec<RefusalCounts> {
    let mut total: Vec<RefusalCounts> = Vec::new();
    for w in workers {
        if total.len() < w.refused.len() {
            total.resize(w.refused.len(), RefusalCounts::default());
        }
        for (t, r) in total.iter_mut().zip(&w.refused) {
            for (a, b) in t.iter_mut().zip(r) {
                *a += b;
            }
        }
    }
    total
}

/// Refusal counts as a JSON object by reason name.
pub fn refused_json(counts: &RefusalCounts) -> Value {
    let m: serde_json::Map<String, Value> = LimitRefusal::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(counts[*r as usize])))
        .collect();
    Value::Object(m)
}

/// Sums the workers' per real server counters.
pub fn sum_real_servers(workers: &[WorkerSnapshot]) -> Vec<RealServerCounters> {
    let mut total: Vec<RealServerCounters> = Vec::new();
    for w in workers {
        if total.len() < w.real_servers.len() {
            total.resize(w.real_servers.len(), RealServerCounters::default());
        }
        for (t, r) in total.iter_mut().zip(&w.real_servers) {
            t.add(r);
        }
    }
    total
}

/// The virtual server list: `{"virtual_servers":[...]}` as INTERFACE.md
/// specifies for `rvsadm --json list`, plus `conns` (connections scheduled
/// since start) per real server. Services and servers a reload removed are
/// listed while they drain, marked `"draining": true`. Health and weights
/// come from the snapshot the workers run (`ServiceTable::is_down`,
/// `ServiceTable::weight`).
pub fn list(services: &ServiceTable, workers: &[WorkerSnapshot]) -> Value {
    let totals = sum_real_servers(workers);
    let refused = sum_refused(workers);
    let overloaded = count_overloaded(workers);
    let mut flat = totals
        .iter()
        .zip(overloaded.iter().chain(std::iter::repeat(&0)));
    let vss: Vec<Value> = services
        .services()
        .iter()
        .enumerate()
        .map(|(v, vs)| {
            let rss: Vec<Value> = vs
                .real_servers
                .iter()
                .enumerate()
                .map(|(r, rs)| {
                    let (c, over) = flat.next().map(|(c, &o)| (*c, o)).unwrap_or_default();
                    json!({
                        "address": vs.real_addr(r as u16).map_or_else(String::new, |a| a.to_string()),
                        "overloaded": over > 0,
                        "weight": services.weight(v as u16, r as u16),
                        "effective_weight": services.effective_weight(v as u16, r as u16),
                        "slow_start": services.slow_start(v as u16, r as u16).map(|ramp| json!({
                            "elapsed_s": (ramp.elapsed.as_secs_f64() * 10.0).round() / 10.0,
                            "duration_s": ramp.duration.as_secs(),
                            "progress": (ramp.progress() * 100.0).round() / 100.0,
                        })),
                        "health": if services.is_down(v as u16, r as u16) { "down" } else { "up" },
                        "draining": services.is_server_draining(v as u16, r as u16),
                        "priority": rs.priority,
                        "active_conns": c.active,
                        "inactive_conns": c.inactive,
                        "conns": c.conns,
                        "packets_in": c.packets_in,
                        "packets_out": c.packets_out,
                        "bytes_in": c.bytes_in,
                        "bytes_out": c.bytes_out,
                        "handshakes": c.handshakes,
                        "handshake_ok": c.handshake_ok,
                        "handshake_timeouts": c.handshake_timeouts,
                        "handshake_resets": c.handshake_resets,
                    })
                })
                .collect();
            let mut doc = json!({
                "name": vs.name,
                "address": vs.vip_addr().to_string(),
                "protocol": vs.key.protocol.name(),
                "scheduler": vs.scheduler.name(),
                "forward": vs.forward.name(),
                "persistence_timeout_s": vs.persistence.map_or(0, |d| d.as_secs()),
                "slow_start_s": vs.slow_start.as_secs(),
                "draining": services.is_draining(v as u16),
                "refused": refused_json(&refused.get(v).copied().unwrap_or_default()),
                "active_priority": services.active_priority(v as u16),
                "priority_reason": services
                    .priority_selection(v as u16)
                    .map(|s| s.reason())
                    .unwrap_or_default(),
                "priority_changes": services.priority_changes(v as u16),
                "real_servers": rss,
            });
            if vs.forward == crate::lb::service::ForwardMethod::FullNat {
                let v4 = vs.local.addresses.iter().map(|a| a.to_string());
                let v6 = vs.local.addresses6.iter().map(|a| a.to_string());
                let locals: Vec<String> = v4.chain(v6).collect();
                doc["local_addresses"] = json!(locals);
                doc["local_port_range"] = json!([vs.local.ports.0, vs.local.ports.1]);
            }
            doc
        })
        .collect();
    json!({ "virtual_servers": vss })
}

/// Adds the passive checks' view to a `list` document: each real server
/// gets `passive_downs` (times the passive check took it out), and one
/// down because of it `"health_reason": "passive"` (`passive` per
/// service, per real server: taken out now, times; missing: never).
pub fn add_passive(list: &mut Value, passive: &[Vec<(bool, u64)>]) {
    let Some(vss) = list["virtual_servers"].as_array_mut() else {
        return;
    };
    for (vs, p) in vss.iter_mut().zip(passive) {
        let Some(rss) = vs["real_servers"].as_array_mut() else {
            continue;
        };
        for (rs, &(down, downs)) in rss.iter_mut().zip(p) {
            rs["passive_downs"] = json!(downs);
            if down && rs["health"] == "down" {
                rs["health_reason"] = json!("passive");
            }
        }
    }
}

/// Handshakes forwarded and their outcomes, summed over `servers`, as
/// members of a worker's `stats` object (the passive checks' counts).
fn add_handshakes(servers: &[RealServerCounters], v: &mut Value) {
    let mut sum = RealServerCounters::default();
    for c in servers {
        sum.add(c);
    }
    v["handshakes"] = json!(sum.handshakes);
    v["handshake_ok"] = json!(sum.handshake_ok);
    v["handshake_timeouts"] = json!(sum.handshake_timeouts);
    v["handshake_resets"] = json!(sum.handshake_resets);
}

/// The line rvsd logs for each virtual service at start.
pub fn describe(vs: &VirtualService) -> String {
    format!(
        "virtual server {}: {}/{} {} {} with {} real server(s)",
        vs.name,
        vs.vip_addr(),
        vs.key.protocol,
        vs.scheduler,
        vs.forward,
        vs.real_servers.len()
    )
}

/// Worker counters: each worker's, and their total.
pub fn stats(workers: &[WorkerSnapshot]) -> Value {
    let mut total = WorkerStats::default();
    let mut fill = TableFill::default();
    let mut conns = 0;
    let mut servers: Vec<RealServerCounters> = Vec::new();
    let per: Vec<Value> = workers
        .iter()
        .map(|w| {
            total.add(&w.stats);
            fill.add(&w.fill);
            conns += w.connections;
            let mut v = w.stats.to_json();
            v["lcore"] = json!(w.lcore);
            v["connections"] = json!(w.connections);
            w.fill.add_to_json(w.connections, &mut v);
            add_handshakes(&w.real_servers, &mut v);
            servers.extend_from_slice(&w.real_servers);
            if !w.local.is_empty() {
                v["local_ports"] = local_ports_json(&w.local);
            }
            v
        })
        .collect();
    let mut t = total.to_json();
    t["connections"] = json!(conns);
    add_handshakes(&servers, &mut t);
    fill.add_to_json(conns, &mut t);
    let all: Vec<_> = workers
        .iter()
        .flat_map(|w| w.local.iter().copied())
        .collect();
    if !all.is_empty() {
        t["local_ports"] = local_ports_json(&all);
    }
    json!({ "workers": per, "total": t })
}

/// FullNAT's local ports by `"ADDRESS/PROTOCOL"`: in use, capacity and
/// exhausted (new connections that found none), summed over `usage`.
fn local_ports_json(usage: &[crate::lb::local_pool::LocalUsage]) -> Value {
    let mut m = serde_json::Map::new();
    for u in usage {
        let key = format!("{}/{}", u.addr, u.protocol);
        let e = m
            .entry(key)
            .or_insert_with(|| json!({"in_use": 0, "capacity": 0, "exhausted": 0}));
        for (k, v) in [
            ("in_use", u.in_use),
            ("capacity", u.capacity),
            ("exhausted", u.exhausted),
        ] {
            e[k] = json!(e[k].as_u64().unwrap_or(0) + v);
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::service::{
        ForwardMethod, Protocol, SchedulerKind, ServerState, ServiceKey, VirtualService,
    };
    use crate::lb::xmit::Endpoint;

    fn table() -> ServiceTable {
        let ep = |s: &str, p| Endpoint::new(s.parse().unwrap(), p);
        let key = ServiceKey {
            vip: ep("203.0.113.100", 80),
            protocol: Protocol::Tcp,
        };
        let servers = [(ep("10.1.0.11", 8080), 3), (ep("10.1.0.12", 8080), 1)];
        ServiceTable::new(vec![VirtualService::new(
            "web",
            key,
            ForwardMethod::Nat,
            SchedulerKind::Wrr,
            servers,
        )])
    }

    fn worker(lcore: u32, conns: [u64; 2]) -> WorkerSnapshot {
        WorkerSnapshot {
            lcore,
            local: Vec::new(),
            stats: WorkerStats {
                rx_packets: 10,
                ..Default::default()
            },
            real_servers: conns
                .iter()
                .map(|&c| RealServerCounters {
                    conns: c,
                    active: c as u32,
                    ..Default::default()
                })
                .collect(),
            connections: conns.iter().sum(),
            fill: TableFill {
                conn_capacity: 100,
                neighbor_queue_frames: 1,
                neighbor_queue_capacity: 256,
                ..Default::default()
            },
            refused: vec![[1, 0, 2, 0]],
            overloaded: vec![lcore == 2, false],
        }
    }

    #[test]
    fn a_real_server_is_listed_overloaded_when_any_worker_holds_it_so() {
        let v = list(&table(), &[worker(1, [3, 1]), worker(2, [6, 2])]);
        let rss = &v["virtual_servers"][0]["real_servers"];
        assert_eq!(rss[0]["overloaded"], true);
        assert_eq!(rss[1]["overloaded"], false);
    }

    #[test]
    fn list_sums_each_virtual_servers_refusals_by_reason() {
        let v = list(&table(), &[worker(1, [3, 1]), worker(2, [6, 2])]);
        let refused = &v["virtual_servers"][0]["refused"];
        assert_eq!(refused["acl_denied"], 2);
        assert_eq!(refused["client_limit"], 4);
        assert_eq!(refused["rate_limited"], 0);
        assert_eq!(refused["rs_overloaded"], 0);
    }

    #[test]
    fn list_follows_the_interface_schema_and_sums_workers() {
        let t = table();
        let v = list(&t, &[worker(1, [3, 1]), worker(2, [6, 2])]);
        let vs = &v["virtual_servers"][0];
        assert_eq!(vs["name"], "web");
        assert_eq!(vs["address"], "203.0.113.100:80");
        assert_eq!(vs["protocol"], "tcp");
        assert_eq!(vs["scheduler"], "wrr");
        assert_eq!(vs["forward"], "nat");
        let rs = &vs["real_servers"];
        assert_eq!(rs[0]["address"], "10.1.0.11:8080");
        assert_eq!(rs[0]["weight"], 3);
        assert_eq!(rs[0]["health"], "up");
        assert_eq!(rs[0]["active_conns"], 9);
        assert_eq!(rs[1]["conns"], 3);
        for key in [
            "inactive_conns",
            "packets_in",
            "packets_out",
            "bytes_in",
            "bytes_out",
        ] {
            assert!(rs[0].get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn list_shows_health_and_run_time_weights() {
        let t = table().with_server_state(|_, rs| ServerState {
            down: rs == 1,
            weight: (rs == 0).then_some(0),
            ramp: None,
        });
        let v = list(&t, &[]);
        let rs = &v["virtual_servers"][0]["real_servers"];
        assert_eq!(rs[0]["weight"], 0);
        assert_eq!(rs[0]["health"], "up");
        assert_eq!(rs[1]["health"], "down");
        assert_eq!(rs[1]["weight"], 1);
        assert_eq!(rs[1]["effective_weight"], 0);
        assert!(rs[1]["slow_start"].is_null());
    }

    #[test]
    fn list_shows_a_slow_start_s_effective_weight_and_progress() {
        let ramp = crate::lb::slow_start::Ramp {
            elapsed: std::time::Duration::from_millis(2000),
            duration: std::time::Duration::from_secs(8),
        };
        let t = table().with_server_state(|_, rs| ServerState {
            ramp: (rs == 0).then_some(ramp),
            ..ServerState::default()
        });
        let v = list(&t, &[]);
        let rs = &v["virtual_servers"][0]["real_servers"][0];
        assert_eq!(rs["weight"], 3);
        assert_eq!(rs["effective_weight"], 1, "round(3 x 2 / 8)");
        assert_eq!(rs["slow_start"]["elapsed_s"], 2.0);
        assert_eq!(rs["slow_start"]["duration_s"], 8);
        assert_eq!(rs["slow_start"]["progress"], 0.25);
    }

    #[test]
    fn list_shows_each_servers_handshakes_and_a_passive_down() {
        let t = table().with_server_state(|_, rs| ServerState {
            down: rs == 1,
            weight: None,
            ramp: None,
        });
        let mut w = worker(1, [3, 1]);
        w.real_servers[1].handshakes = 25;
        w.real_servers[1].handshake_resets = 20;
        let mut v = list(&t, &[w]);
        add_passive(&mut v, &[vec![(false, 0), (true, 1)]]);
        let rs = &v["virtual_servers"][0]["real_servers"];
        assert_eq!(rs[1]["handshakes"], 25);
        assert_eq!(rs[1]["handshake_resets"], 20);
        assert_eq!(rs[1]["health"], "down");
        assert_eq!(rs[1]["health_reason"], "passive");
        assert_eq!(rs[1]["passive_downs"], 1);
        assert!(rs[0].get("health_reason").is_none());
    }

    #[test]
    fn stats_sum_the_handshakes_of_every_real_server() {
        let mut a = worker(1, [1, 0]);
        a.real_servers[0].handshake_timeouts = 2;
        let mut b = worker(2, [0, 1]);
        b.real_servers[1].handshake_timeouts = 3;
        let v = stats(&[a, b]);
        assert_eq!(v["workers"][0]["handshake_timeouts"], 2);
        assert_eq!(v["total"]["handshake_timeouts"], 5);
    }

    #[test]
    fn stats_totals_every_worker() {
        let v = stats(&[worker(1, [1, 0]), worker(2, [0, 1])]);
        assert_eq!(v["total"]["rx_packets"], 20);
        assert_eq!(v["total"]["connections"], 2);
        assert_eq!(v["workers"][1]["lcore"], 2);
    }

    #[test]
    fn stats_show_each_workers_table_fill_and_the_total() {
        let v = stats(&[worker(1, [10, 0]), worker(2, [0, 30])]);
        assert_eq!(v["workers"][0]["conn_capacity"], 100);
        assert_eq!(v["workers"][0]["conn_fill"], 0.1);
        assert_eq!(v["workers"][1]["neighbor_queue_frames"], 1);
        assert_eq!(v["total"]["conn_capacity"], 200);
        assert_eq!(v["total"]["conn_fill"], 0.2);
        assert_eq!(v["total"]["neighbor_queue_capacity"], 512);
    }

    #[test]
    fn stats_list_the_mempools_in_use() {
        let mut v = stats(&[]);
        add_pools(
            &mut v,
            &[PoolUsage {
                name: "rvs_mbufs".into(),
                size: 8191,
                in_use: 1200,
            }],
        );
        assert_eq!(v["mempools"][0]["name"], "rvs_mbufs");
        assert_eq!(v["mempools"][0]["in_use"], 1200);
        assert_eq!(v["mempools"][0]["size"], 8191);
    }
}
