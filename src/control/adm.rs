//! How `rvsadm` prints rvsd's documents for people: the virtual server
//! list in ipvsadm's `-Ln` layout (so operators read it at a glance), and
//! the counters as aligned name/value lines. Pure functions over the JSON
//! documents of `report`, so the layout is unit-tested.

use serde_json::Value;
use std::fmt::Write;

/// ipvsadm's word for a forwarding method.
fn forward_word(method: &str) -> &str {
    match method {
        "nat" => "Masq",
        "dr" => "Route",
        "tun" => "Tunnel",
        "fullnat" => "FullNat",
        other => other,
    }
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The list, as `ipvsadm -Ln` prints it (plus a Health column).
pub fn format_list(doc: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "rvs Virtual Server");
    let _ = writeln!(out, "Prot LocalAddress:Port Scheduler Flags");
    let _ = writeln!(
        out,
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Prio Health"
    );
    let empty = Vec::new();
    for vs in doc["virtual_servers"].as_array().unwrap_or(&empty) {
        let proto = vs["protocol"].as_str().unwrap_or("?").to_uppercase();
        let mut flags = String::new();
        let persist = num(&vs["persistence_timeout_s"]);
        if persist > 0 {
            let _ = write!(flags, " persistent {persist}");
        }
        // Only a service with several priority groups names the active one.
        let rss = vs["real_servers"].as_array().unwrap_or(&empty);
        let first = rss.first().map(|r| num(&r["priority"]));
        if rss.iter().any(|r| Some(num(&r["priority"])) != first) {
            let active = vs["active_priority"]
                .as_u64()
                .map_or_else(|| "none".to_string(), |p| p.to_string());
            let _ = write!(
                flags,
                " priority-group {active} ({})",
                vs["priority_reason"].as_str().unwrap_or("?")
            );
        }
        if let Some(locals) = vs["local_addresses"].as_array() {
            let locals: Vec<&str> = locals.iter().filter_map(Value::as_str).collect();
            let range = &vs["local_port_range"];
            let _ = write!(
                flags,
                " local {} ports {}-{}",
                locals.join(","),
                num(&range[0]),
                num(&range[1])
            );
        }
        let _ = writeln!(
            out,
            "{proto:<4} {} {}{flags}",
            vs["address"].as_str().unwrap_or("?"),
            vs["scheduler"].as_str().unwrap_or("?"),
        );
        let fwd = forward_word(vs["forward"].as_str().unwrap_or("?"));
        for rs in vs["real_servers"].as_array().unwrap_or(&empty) {
            let health = match (rs["health"].as_str(), rs["health_reason"].as_str()) {
                (Some(h), Some(why)) => format!("{h} ({why})"),
                (Some(h), None) => h.to_string(),
                (None, _) => "?".to_string(),
            };
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<9} {:<4} {}{}",
                rs["address"].as_str().unwrap_or("?"),
                fwd,
                num(&rs["weight"]),
                num(&rs["active_conns"]),
                num(&rs["inactive_conns"]),
                num(&rs["priority"]),
                health,
                slow_start(rs),
            );
        }
    }
    out
}

/// A ramping real server's slow start, after its health:
/// ` (slow start 4/10, 3.2s of 8s)`, its effective weight of its weight;
/// empty when it does not ramp.
fn slow_start(rs: &Value) -> String {
    let ramp = &rs["slow_start"];
    if !ramp.is_object() {
        return String::new();
    }
    format!(
        " (slow start {}/{}, {:.1}s of {}s)",
        num(&rs["effective_weight"]),
        num(&rs["weight"]),
        ramp["elapsed_s"].as_f64().unwrap_or(0.0),
        num(&ramp["duration_s"]),
    )
}

/// The counters: totals, then each worker's, one `name value` per line,
/// drops only when non-zero.
pub fn format_stats(doc: &Value) -> String {
    let mut out = String::new();
    let mut section = |title: String, v: &Value| {
        let _ = writeln!(out, "{title}");
        if let Some(map) = v.as_object() {
            for (k, x) in map {
                if k == "drops" || k == "lcore" {
                    continue;
                }
                match x.as_f64().filter(|_| x.is_f64()) {
                    Some(f) => {
                        let _ = writeln!(out, "  {k:<24} {f:.3}");
                    }
                    None => {
                        let _ = writeln!(out, "  {k:<24} {}", num(x));
                    }
                }
            }
            if let Some(drops) = map.get("drops").and_then(Value::as_object) {
                let total: u64 = drops.values().map(num).sum();
                let _ = writeln!(out, "  {:<24} {total}", "drops");
                for (k, x) in drops.iter().filter(|(_, x)| num(x) > 0) {
                    let _ = writeln!(out, "    {k:<22} {}", num(x));
                }
            }
        }
    };
    section("total".to_string(), &doc["total"]);
    if let Some(workers) = doc["workers"].as_array() {
        for w in workers {
            section(format!("worker on lcore {}", num(&w["lcore"])), w);
        }
    }
    if let Some(clients) = doc["clients"].as_object() {
        for (endpoint, counts) in clients {
            section(format!("{endpoint} clients"), counts);
        }
    }
    if let Some(pools) = doc["mempools"].as_array() {
        for p in pools {
            let _ = writeln!(out, "mempool {}", p["name"].as_str().unwrap_or("?"));
            let _ = writeln!(out, "  {:<24} {}", "size", num(&p["size"]));
            let _ = writeln!(out, "  {:<24} {}", "in_use", num(&p["in_use"]));
        }
    }
    out
}

/// Connections, like `ipvsadm -Lnc`.
pub fn format_conns(doc: &Value) -> String {
    let empty = Vec::new();
    let list = doc["connections"].as_array().unwrap_or(&empty);
    let text = |c: &Value, k: &str| c[k].as_str().unwrap_or("?").to_string();
    // The address columns are as wide as their longest entry (22, an
    // IPv4 address and port, at least): IPv6 ones are longer.
    let width = |k: &str| {
        list.iter()
            .map(|c| text(c, k).len())
            .max()
            .unwrap_or(0)
            .max(22)
    };
    let (wc, wv) = (width("client"), width("virtual_server"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pro expire state       {:<wc$} {:<wv$} destination",
        "source", "virtual"
    );
    for c in list {
        let s = num(&c["expires_in_s"]);
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<wc$} {:<wv$} {}",
            c["protocol"].as_str().unwrap_or("?").to_uppercase(),
            s / 60,
            s % 60,
            c["state"].as_str().unwrap_or("?"),
            text(c, "client"),
            text(c, "virtual_server"),
            text(c, "real_server"),
        );
        if let Some(local) = c["local"].as_str() {
            // FullNAT: the local end the real server sees, on the same line.
            out.pop();
            let _ = writeln!(out, " via {local}");
        }
    }
    out
}

/// The HA role, and the sync's counters when syncing: every non-zero
/// drop by reason.
pub fn format_ha(doc: &Value) -> String {
    let mut out = format!(
        "role: {}\n{}\n",
        doc["role"].as_str().unwrap_or("?"),
        doc["detail"].as_str().unwrap_or("")
    );
    let sync = &doc["sync"];
    if sync.is_object() {
        let n = |k: &str| sync[k].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "sync: sent {} datagrams ({} records), received {} ({} records), {} missed, {} resyncs, \
             {} timeouts capped, {} peer restarts\n",
            n("sent_datagrams"),
            n("sent_records"),
            n("received_datagrams"),
            n("received_records"),
            n("missed_datagrams"),
            n("resyncs"),
            n("ttl_capped"),
            n("peer_restarts"),
        ));
        for (title, key) in [
            ("datagrams dropped", "dropped"),
            ("records dropped", "records_dropped"),
        ] {
            let nonzero: Vec<String> = sync[key]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            v.as_u64().filter(|&v| v > 0).map(|v| format!("{k} {v}"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !nonzero.is_empty() {
                out.push_str(&format!("{title}: {}\n", nonzero.join(", ")));
            }
        }
    }
    out
}

/// `drain` and `announce status`: the message (after a drain on/off),
/// `draining` or `announcing`, the VIPs announced, the connections still
/// carried here, the liveness interface and bird2's last reply.
pub fn format_announce(doc: &Value) -> String {
    let mut out = String::new();
    if let Some(m) = doc["message"].as_str() {
        let _ = writeln!(out, "{m}");
    }
    let _ = writeln!(out, "{}", doc["state"].as_str().unwrap_or("?"));
    let vips: Vec<&str> = doc["announced"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "announced: {}",
        if vips.is_empty() {
            "none".to_string()
        } else {
            vips.join(" ")
        }
    );
    let _ = writeln!(
        out,
        "remaining connections: {}",
        num(&doc["remaining_connections"])
    );
    let _ = writeln!(
        out,
        "liveness interface: {} {}",
        doc["interface"].as_str().unwrap_or("?"),
        if doc["interface_up"].as_bool() == Some(true) {
            "up"
        } else {
            "down"
        }
    );
    let _ = writeln!(
        out,
        "bird: {}{}, {} failures",
        doc["bird_last_reply"].as_str().unwrap_or("no reply yet"),
        if doc["pending"].as_bool() == Some(true) {
            " (change pending)"
        } else {
            ""
        },
        num(&doc["failures"])
    );
    out
}

/// A command's plain acknowledgement (weight, reload), with any message.
pub fn format_ok(doc: &Value) -> String {
    match doc["message"].as_str() {
        Some(m) => format!("{m}\n"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ha_status_shows_each_sync_drop_by_reason() {
        let doc = json!({"role": "backup", "detail": "node 2 syncing",
            "sync": {"sent_datagrams": 0, "received_datagrams": 9, "ttl_capped": 4,
                     "dropped": {"bad_mac": 3, "replay": 0, "wrong_port": 1},
                     "records_dropped": {"unknown_service": 2}}});
        let text = format_ha(&doc);
        assert!(text.contains("received 9 "), "{text}");
        assert!(text.contains("4 timeouts capped"), "{text}");
        assert!(
            text.contains("datagrams dropped: bad_mac 3, wrong_port 1\n"),
            "{text}"
        );
        assert!(
            text.contains("records dropped: unknown_service 2\n"),
            "{text}"
        );
    }

    #[test]
    fn drain_status_says_draining_the_vips_and_the_connections_left() {
        let doc = json!({"state": "draining", "announced": [], "remaining_connections": 42,
                         "interface": "rvs-live", "interface_up": false,
                         "bird_last_reply": "0003 Reconfigured", "failures": 0,
                         "pending": false});
        let text = format_announce(&doc);
        assert!(text.starts_with("draining\n"), "{text}");
        assert!(text.contains("announced: none\n"), "{text}");
        assert!(text.contains("remaining connections: 42\n"), "{text}");
        assert!(
            text.contains("liveness interface: rvs-live down\n"),
            "{text}"
        );
    }

    #[test]
    fn announce_status_lists_the_vips_and_birds_last_reply() {
        let doc = json!({"state": "announcing", "announced": ["192.0.2.1", "2001:db8::1"],
                         "remaining_connections": 0, "interface": "rvs-live",
                         "interface_up": true, "bird_last_reply": "8002 syntax error",
                         "failures": 3, "pending": true});
        let text = format_announce(&doc);
        assert!(
            text.contains("announced: 192.0.2.1 2001:db8::1\n"),
            "{text}"
        );
        assert!(text.contains("liveness interface: rvs-live up\n"), "{text}");
        assert!(
            text.contains("bird: 8002 syntax error (change pending), 3 failures\n"),
            "{text}"
        );
    }

    #[test]
    fn list_reads_like_ipvsadm() {
        let doc = json!({"virtual_servers": [{
            "name": "web", "address": "203.0.113.100:80", "protocol": "tcp",
            "scheduler": "wrr", "forward": "nat", "persistence_timeout_s": 0,
            "real_servers": [{"address": "10.1.0.11:8080", "weight": 3, "health": "up",
                              "active_conns": 12, "inactive_conns": 4}]
        }]});
        let text = format_list(&doc);
        assert!(text.contains("TCP  203.0.113.100:80 wrr\n"), "{text}");
        assert!(text.contains("  -> 10.1.0.11:8080"), "{text}");
        let line = text.lines().last().unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            ["->", "10.1.0.11:8080", "Masq", "3", "12", "4", "0", "up"]
        );
    }

    #[test]
    fn list_names_the_active_priority_group_of_a_grouped_service() {
        let doc = json!({"virtual_servers": [{
            "name": "web", "address": "203.0.113.100:80", "protocol": "tcp",
            "scheduler": "wrr", "forward": "nat", "persistence_timeout_s": 0,
            "active_priority": 1,
            "priority_reason": "group 0 has 1 live of min_active 2",
            "real_servers": [
                {"address": "10.1.0.11:8080", "weight": 1, "health": "up", "priority": 0},
                {"address": "10.1.0.21:8080", "weight": 1, "health": "up", "priority": 1}]
        }]});
        let text = format_list(&doc);
        assert!(
            text.contains("TCP  203.0.113.100:80 wrr priority-group 1 (group 0 has 1 live"),
            "{text}"
        );
        let line = text.lines().last().unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            ["->", "10.1.0.21:8080", "Masq", "1", "0", "0", "1", "up"]
        );
    }

    #[test]
    fn a_ramping_server_shows_its_slow_start_after_its_health() {
        let doc = json!({"virtual_servers": [{
            "name": "web", "address": "203.0.113.100:80", "protocol": "tcp",
            "scheduler": "wlc", "forward": "nat", "persistence_timeout_s": 0,
            "real_servers": [{"address": "10.1.0.11:8080", "weight": 10,
                              "effective_weight": 4, "health": "up", "priority": 0,
                              "slow_start": {"elapsed_s": 3.2, "duration_s": 8},
                              "active_conns": 1, "inactive_conns": 0},
                             {"address": "10.1.0.12:8080", "weight": 10,
                              "effective_weight": 10, "health": "up", "slow_start": null,
                              "active_conns": 9, "inactive_conns": 0}]
        }]});
        let text = format_list(&doc);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[4]
                .ends_with(" 10     1          0         0    up (slow start 4/10, 3.2s of 8s)"),
            "{text}"
        );
        assert!(lines[5].ends_with(" up"), "{text}");
    }

    #[test]
    fn a_server_the_passive_check_took_out_reads_down_passive() {
        let doc = json!({"virtual_servers": [{
            "name": "web", "address": "203.0.113.100:80", "protocol": "tcp",
            "scheduler": "rr", "forward": "nat", "persistence_timeout_s": 0,
            "real_servers": [{"address": "10.1.0.11:8080", "weight": 1, "health": "down",
                              "health_reason": "passive", "active_conns": 0,
                              "inactive_conns": 0}]
        }]});
        let text = format_list(&doc);
        assert!(
            text.lines().last().unwrap().ends_with("down (passive)"),
            "{text}"
        );
    }

    #[test]
    fn conns_read_like_ipvsadm_lnc() {
        let doc = json!({"connections": [{"protocol": "tcp", "expires_in_s": 899,
            "state": "ESTABLISHED", "client": "198.51.100.7:40000",
            "virtual_server": "203.0.113.100:80", "real_server": "10.1.0.11:8080"}]});
        let text = format_conns(&doc);
        let cols: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "TCP",
                "14:59",
                "ESTABLISHED",
                "198.51.100.7:40000",
                "203.0.113.100:80",
                "10.1.0.11:8080"
            ]
        );
    }

    #[test]
    fn ipv6_conns_widen_their_columns_and_keep_them_aligned() {
        let doc = json!({"connections": [
            {"protocol": "tcp", "expires_in_s": 60, "state": "ESTABLISHED",
             "client": "198.51.100.7:40000", "virtual_server": "203.0.113.100:80",
             "real_server": "10.1.0.11:8080"},
            {"protocol": "udp", "expires_in_s": 299, "state": "UDP",
             "client": "[2001:db8:1::7]:40000", "virtual_server": "[2001:db8:100::1]:53",
             "real_server": "[2001:db8:2::11]:53"}]});
        let text = format_conns(&doc);
        let lines: Vec<&str> = text.lines().collect();
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "UDP",
                "04:59",
                "UDP",
                "[2001:db8:1::7]:40000",
                "[2001:db8:100::1]:53",
                "[2001:db8:2::11]:53"
            ]
        );
        let at = |l: &str, what: &str| l.find(what).unwrap();
        assert_eq!(at(lines[0], "virtual"), at(lines[1], "203.0.113.100"));
        assert_eq!(at(lines[1], "10.1.0.11"), at(lines[2], "[2001:db8:2::11]"));
    }

    #[test]
    fn persistence_shows_as_a_flag() {
        let doc = json!({"virtual_servers": [{
            "address": "203.0.113.100:443", "protocol": "tcp", "scheduler": "sh",
            "forward": "dr", "persistence_timeout_s": 300, "real_servers": []
        }]});
        assert!(format_list(&doc).contains("TCP  203.0.113.100:443 sh persistent 300"));
    }

    #[test]
    fn stats_lists_totals_and_nonzero_drops() {
        let doc = json!({"total": {"rx_packets": 5, "drops": {"no_service": 2, "truncated": 0}},
                         "workers": [{"lcore": 1, "rx_packets": 5, "drops": {}}]});
        let text = format_stats(&doc);
        assert!(text.contains("rx_packets"));
        assert!(text.contains("no_service"));
        assert!(!text.contains("truncated"));
        assert!(text.contains("worker on lcore 1"));
    }

    #[test]
    fn stats_show_the_table_fill_as_a_ratio_and_each_mempool() {
        let doc = json!({"total": {"conn_fill": 0.25, "conn_capacity": 1000},
                         "workers": [],
                         "mempools": [{"name": "rvs_mbufs", "size": 8191, "in_use": 700}]});
        let text = format_stats(&doc);
        assert!(text.contains("conn_fill                0.250"), "{text}");
        assert!(text.contains("mempool rvs_mbufs"), "{text}");
        assert!(text.contains("in_use                   700"), "{text}");
    }

    #[test]
    fn stats_show_the_control_and_metrics_clients() {
        let doc = json!({"total": {}, "workers": [],
                         "clients": {"control": {"accepted": 3, "timed_out": 1},
                                     "metrics": {"refused": 2}}});
        let text = format_stats(&doc);
        assert!(text.contains("control clients\n"), "{text}");
        assert!(text.contains("  timed_out"), "{text}");
        assert!(text.contains("metrics clients\n"), "{text}");
    }
}
