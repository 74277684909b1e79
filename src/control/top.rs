//! `rvsadm top`: the live view operators keep open during an incident.
//! Every interval rvsadm asks rvsd for `list`, `stats` and `ha status`
//! (a [`Sample`]), and draws a [`frame`] from the newest sample and the
//! one before: rates per virtual and real server (new connections and
//! packets per second), connections, health, weights, drops by reason and
//! the HA role. Rates are differences of rvsd's cumulative counters over
//! the time between the two answers, so they need no state in rvsd.
//!
//! Pure functions over the JSON documents of `report`, so the layout is
//! unit-tested; the terminal handling (clearing, keys) is the binary's.

use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;

/// One look at rvsd: its answers to `list`, `stats` and `ha status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// `rvsadm --json list`.
    pub list: Value,
    /// `rvsadm --json stats`.
    pub stats: Value,
    /// `rvsadm --json ha status`.
    pub ha: Value,
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Per real server cumulative counters (`conns`, `packets_in`,
/// `packets_out`), keyed by virtual server address, protocol and real
/// server address.
fn per_server(list: &Value) -> HashMap<(String, String, String), [u64; 3]> {
    let mut out = HashMap::new();
    let empty = Vec::new();
    for vs in list["virtual_servers"].as_array().unwrap_or(&empty) {
        for rs in vs["real_servers"].as_array().unwrap_or(&empty) {
            out.insert(
                (
                    vs["address"].as_str().unwrap_or("").to_string(),
                    vs["protocol"].as_str().unwrap_or("").to_string(),
                    rs["address"].as_str().unwrap_or("").to_string(),
                ),
                [
                    num(&rs["conns"]),
                    num(&rs["packets_in"]),
                    num(&rs["packets_out"]),
                ],
            );
        }
    }
    out
}

/// A rate with one decimal, or a dash without an earlier sample.
fn rate(now: u64, then: Option<u64>, secs: Option<f64>) -> String {
    match (then, secs) {
        (Some(t), Some(s)) if s > 0.0 => format!("{:.1}", now.saturating_sub(t) as f64 / s),
        _ => "-".to_string(),
    }
}

/// One screen of `rvsadm top`: `cur` now, `prev` the sample before and
/// the seconds between them (`None` on the first screen: rates are
/// dashes). `title` is the first line's left part (rvsadm puts the
/// socket and the interval there).
pub fn frame(title: &str, prev: Option<(&Sample, f64)>, cur: &Sample) -> String {
    let mut o = String::new();
    let secs = prev.map(|(_, s)| s);
    let ha = &cur.ha;
    let _ = writeln!(
        o,
        "{title}  HA: {}{}",
        ha["role"].as_str().unwrap_or("?"),
        match ha["detail"].as_str() {
            Some(d) if ha["configured"] == Value::Bool(true) => format!(" ({d})"),
            _ => String::new(),
        }
    );
    if let Some(sync) = ha["sync"].as_object() {
        let dropped: u64 = sync
            .get("dropped")
            .and_then(Value::as_object)
            .map_or(0, |m| m.values().map(num).sum());
        let _ = writeln!(
            o,
            "sync: sent {} records, received {}, missed {} datagrams, dropped {}, resyncs {}",
            sync.get("sent_records").map_or(0, num),
            sync.get("received_records").map_or(0, num),
            sync.get("missed_datagrams").map_or(0, num),
            dropped,
            sync.get("resyncs").map_or(0, num),
        );
    }
    let total = &cur.stats["total"];
    let old_total = prev.map(|(p, _)| &p.stats["total"]);
    let then = |k: &str| old_total.and_then(|t| t[k].as_u64());
    let _ = writeln!(
        o,
        "total: rx {} pkt/s  tx {} pkt/s  new {} conn/s  connections {}  workers {}",
        rate(num(&total["rx_packets"]), then("rx_packets"), secs),
        rate(num(&total["tx_packets"]), then("tx_packets"), secs),
        rate(num(&total["conns_created"]), then("conns_created"), secs),
        num(&total["connections"]),
        cur.stats["workers"].as_array().map_or(0, Vec::len),
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<34} {:>6} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "VIRTUAL SERVER / -> REAL SERVER",
        "WEIGHT",
        "HEALTH",
        "ACTIVE",
        "INACT",
        "CONN/S",
        "PKT/S IN",
        "PKT/S OUT"
    );
    let before = prev.map(|(p, _)| per_server(&p.list));
    let empty = Vec::new();
    for vs in cur.list["virtual_servers"].as_array().unwrap_or(&empty) {
        let (vaddr, proto) = (
            vs["address"].as_str().unwrap_or("?"),
            vs["protocol"].as_str().unwrap_or("?"),
        );
        let rss = vs["real_servers"].as_array().unwrap_or(&empty);
        let mut sums = [0u64; 3];
        let mut old_sums: Option<[u64; 3]> = before.as_ref().map(|_| [0; 3]);
        let (mut active, mut inactive) = (0, 0);
        let mut lines = String::new();
        for rs in rss {
            let raddr = rs["address"].as_str().unwrap_or("?");
            let now = [
                num(&rs["conns"]),
                num(&rs["packets_in"]),
                num(&rs["packets_out"]),
            ];
            let old = before.as_ref().and_then(|b| {
                b.get(&(vaddr.to_string(), proto.to_string(), raddr.to_string()))
                    .copied()
            });
            for i in 0..3 {
                sums[i] += now[i];
            }
            // A server new since the last sample counts from zero.
            if let Some(s) = old_sums.as_mut() {
                let o = old.unwrap_or([0; 3]);
                for i in 0..3 {
                    s[i] += o[i];
                }
            }
            active += num(&rs["active_conns"]);
            inactive += num(&rs["inactive_conns"]);
            let old = old.or(before.as_ref().map(|_| [0; 3]));
            let _ = writeln!(
                lines,
                "  -> {:<29} {:>6} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}{}",
                raddr,
                num(&rs["weight"]),
                rs["health"].as_str().unwrap_or("?"),
                num(&rs["active_conns"]),
                num(&rs["inactive_conns"]),
                rate(now[0], old.map(|o| o[0]), secs),
                rate(now[1], old.map(|o| o[1]), secs),
                rate(now[2], old.map(|o| o[2]), secs),
                if rs["draining"] == Value::Bool(true) {
                    "  draining"
                } else {
                    ""
                },
            );
        }
        let name = format!(
            "{} {vaddr} {}",
            proto.to_uppercase(),
            vs["name"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            o,
            "{:<34} {:>6} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}  {} {}{}",
            name,
            "",
            "",
            active,
            inactive,
            rate(sums[0], old_sums.map(|s| s[0]), secs),
            rate(sums[1], old_sums.map(|s| s[1]), secs),
            rate(sums[2], old_sums.map(|s| s[2]), secs),
            vs["scheduler"].as_str().unwrap_or("?"),
            vs["forward"].as_str().unwrap_or("?"),
            if vs["draining"] == Value::Bool(true) {
                " draining"
            } else {
                ""
            },
        );
        o.push_str(&lines);
    }
    let _ = writeln!(o);
    let drops = total["drops"].as_object();
    let old_drops = old_total.map(|t| &t["drops"]);
    let all: u64 = drops.map_or(0, |m| m.values().map(num).sum());
    let old_all: Option<u64> = old_drops
        .and_then(Value::as_object)
        .map(|m| m.values().map(num).sum());
    let _ = writeln!(
        o,
        "drops: {} /s, {all} since start",
        rate(all, old_all, secs)
    );
    if let Some(m) = drops {
        let mut any = false;
        for (reason, v) in m.iter().filter(|(_, v)| num(v) > 0) {
            any = true;
            let _ = writeln!(
                o,
                "  {reason:<24} {:>10} /s {:>14} since start",
                rate(num(v), old_drops.and_then(|d| d[reason].as_u64()), secs),
                num(v)
            );
        }
        if !any {
            let _ = writeln!(o, "  (none)");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(conns: u64, packets_in: u64, rx: u64, no_service: u64) -> Sample {
        Sample {
            list: json!({"virtual_servers": [{
            "name": "web", "address": "198.51.100.100:80", "protocol": "tcp",
            "scheduler": "wrr", "forward": "nat", "draining": false,
            "real_servers": [
                {"address": "10.1.0.11:8080", "weight": 3, "health": "up",
                 "active_conns": 4, "inactive_conns": 1, "conns": conns,
                 "packets_in": packets_in, "packets_out": packets_in / 2},
                {"address": "10.1.0.12:8080", "weight": 1, "health": "down",
                 "active_conns": 0, "inactive_conns": 0, "conns": 7,
                 "packets_in": 70, "packets_out": 35, "draining": true}
            ]}]}),
            stats: json!({"workers": [{"lcore": 1}], "total": {
                "rx_packets": rx, "tx_packets": rx, "conns_created": conns + 7,
                "connections": 5, "drops": {"no_service": no_service, "truncated": 0}}}),
            ha: json!({"role": "backup", "configured": true,
                       "detail": "node 2 syncing with 192.168.100.1:8848, backup for 3 s",
                       "sync": {"sent_records": 0, "received_records": 12,
                                "missed_datagrams": 0, "resyncs": 1, "dropped": {}}}),
        }
    }

    /// The columns of the line starting (after spaces) with `start`.
    fn cols(text: &str, start: &str) -> Vec<String> {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{text}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    #[test]
    fn rates_come_from_two_samples_over_their_time() {
        let (a, b) = (sample(10, 100, 1000, 2), sample(30, 300, 3000, 6));
        let text = frame("rvsadm top", Some((&a, 2.0)), &b);
        assert_eq!(
            cols(&text, "-> 10.1.0.11:8080"),
            [
                "->",
                "10.1.0.11:8080",
                "3",
                "up",
                "4",
                "1",
                "10.0",
                "100.0",
                "50.0"
            ]
        );
        assert_eq!(
            cols(&text, "TCP 198.51.100.100:80"),
            [
                "TCP",
                "198.51.100.100:80",
                "web",
                "4",
                "1",
                "10.0",
                "100.0",
                "50.0",
                "wrr",
                "nat"
            ]
        );
        assert!(text.contains("total: rx 1000.0 pkt/s  tx 1000.0 pkt/s  new 10.0 conn/s"));
        assert_eq!(
            cols(&text, "no_service"),
            ["no_service", "2.0", "/s", "6", "since", "start"]
        );
        assert!(!text.contains("truncated"), "zero drops are left out");
    }

    #[test]
    fn the_first_frame_shows_dashes_for_rates() {
        let text = frame("rvsadm top", None, &sample(10, 100, 1000, 0));
        let rs = cols(&text, "-> 10.1.0.11:8080");
        assert_eq!(&rs[6..], ["-", "-", "-"]);
        assert!(
            text.contains("drops: - /s, 0 since start\n  (none)"),
            "{text}"
        );
    }

    #[test]
    fn health_draining_and_the_ha_role_are_shown() {
        let (a, b) = (sample(10, 100, 1000, 0), sample(10, 100, 1000, 0));
        let text = frame("rvsadm top", Some((&a, 1.0)), &b);
        let rs = cols(&text, "-> 10.1.0.12:8080");
        assert_eq!(rs[3], "down");
        assert_eq!(rs.last().unwrap(), "draining");
        assert!(text.lines().next().unwrap().contains("HA: backup (node 2"));
        assert!(text.contains("sync: sent 0 records, received 12"));
    }

    #[test]
    fn a_server_new_since_the_last_sample_counts_from_zero() {
        let a = Sample {
            list: json!({"virtual_servers": []}),
            ..sample(0, 0, 0, 0)
        };
        let b = sample(4, 8, 0, 0);
        let text = frame("t", Some((&a, 2.0)), &b);
        assert_eq!(
            &cols(&text, "-> 10.1.0.11:8080")[6..],
            ["2.0", "4.0", "2.0"]
        );
    }
}
