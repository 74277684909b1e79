//! Answers `rvsadm`'s requests: one JSON request in, one JSON document out
//! (the keys INTERFACE.md and `control::adm` rely on: `ok`, `message`,
//! `error`, and the documents of `control::report`).

use super::report;
use super::state::ControlState;
use serde_json::{json, Value};
use std::time::Duration;

/// How long `conns` waits for the workers' answers.
const CONNS_TIMEOUT: Duration = Duration::from_secs(1);
/// The most connections `conns` lists, whatever the request's limit.
const CONNS_MAX: u64 = 100_000;
/// The connections `conns` lists when the request gives no limit.
const CONNS_DEFAULT: u64 = 100;

/// Answers one request. Never panics on what the client sent: a bad
/// request gets `{"error": ...}` naming what is wrong.
pub fn answer(request: &Value, state: &mut ControlState) -> Value {
    match request["cmd"].as_str() {
        Some("list") => {
            let mut list = report::list(state.snapshot(), &state.workers().snapshots());
            report::add_passive(&mut list, &state.passive_table());
            list
        }
        Some("stats") => {
            let mut stats = report::stats(&state.workers().snapshots());
            report::add_pools(&mut stats, &state.pools());
            stats["clients"] = state.client_stats();
            stats
        }
        Some("weight") => weight(request, state),
        Some("conns") => conns(request, state),
        Some("reload") => match state.reload() {
            Ok(summary) => json!({ "ok": true, "message": format!("reloaded: {summary}") }),
            Err(e) => json!({ "error": format!("reload refused, running config kept:\n{e}") }),
        },
        Some("ha") => ha(request, state),
        Some("drain") => drain(request, state),
        Some("announce") => match request["action"].as_str() {
            Some("status") => state
                .announce_status()
                .unwrap_or_else(|e| json!({ "error": e })),
            _ => json!({ "error": "announce needs status" }),
        },
        Some(other) => json!({ "error": format!("unknown command {other:?}") }),
        None => json!({ "error": "request has no \"cmd\"" }),
    }
}

/// `{"cmd":"weight","service":"VIP:PORT/PROTO","real_server":"RIP:PORT","weight":N}`.
fn weight(request: &Value, state: &mut ControlState) -> Value {
    let weight = match request["weight"].as_u64() {
        Some(w) if w <= 65535 => w as u32,
        _ => return json!({ "error": "weight must be 0 to 65535" }),
    };
    let service = request["service"].as_str().unwrap_or("");
    let real = request["real_server"].as_str().unwrap_or("");
    match state.set_weight(service, real, weight) {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "error": e }),
    }
}

/// `{"cmd":"conns","limit":N}`: up to N connections of every worker.
fn conns(request: &Value, state: &ControlState) -> Value {
    let limit = request["limit"]
        .as_u64()
        .unwrap_or(CONNS_DEFAULT)
        .min(CONNS_MAX) as usize;
    let list: Vec<Value> = state
        .workers()
        .dump_conns(limit, CONNS_TIMEOUT)
        .iter()
        .map(|c| {
            let mut doc = json!({
                "protocol": c.protocol,
                // Either family: `[2001:db8::7]:40000` for IPv6.
                "client": c.client.to_string(),
                "virtual_server": c.virtual_server.to_string(),
                "real_server": c.real_server.to_string(),
                "state": c.state,
                "expires_in_s": c.expires_in_s,
                "packets_in": c.packets_in,
                "packets_out": c.packets_out,
                "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out,
            });
            if let Some(l) = c.local {
                // FullNAT: the end the real server sees.
                doc["local"] = json!(l.to_string());
            }
            doc
        })
        .collect();
    json!({ "connections": list })
}

/// `{"cmd":"ha","action":"status"|"master"|"backup"}`.
fn ha(request: &Value, state: &mut ControlState) -> Value {
    match request["action"].as_str() {
        Some("status") => state.role().status(),
        Some(a @ ("master" | "backup")) => match state.set_master(a == "master") {
            Ok(changed) => json!({
                "ok": true,
                "message": format!("{}{a}", if changed { "now " } else { "already " })
            }),
            Err(e) => json!({ "error": e }),
        },
        Some(a) => json!({ "error": format!("ha {a}: expected master, backup or status") }),
        None => json!({ "error": "ha needs master, backup or status" }),
    }
}

/// `{"cmd":"drain","action":"on"|"off"|"status"}`: withdraw every VIP
/// while forwarding goes on, announce again, or the state with the
/// connections still carried here.
fn drain(request: &Value, state: &mut ControlState) -> Value {
    let on = match request["action"].as_str() {
        Some("on") => true,
        Some("off") => false,
        Some("status") => {
            return state
                .announce_status()
                .unwrap_or_else(|e| json!({ "error": e }))
        }
        Some(a) => return json!({ "error": format!("drain {a}: expected on, off or status") }),
        None => return json!({ "error": "drain needs on, off or status" }),
    };
    match state.drain(on) {
        Ok(changed) => {
            let mut doc = state
                .announce_status()
                .unwrap_or_else(|e| json!({ "error": e }));
            doc["ok"] = json!(true);
            doc["message"] = json!(match (on, changed) {
                (true, true) => "draining: every VIP withdrawn, forwarding goes on",
                (true, false) => "already draining",
                (false, true) => "announcing again",
                (false, false) => "already announcing",
            });
            doc
        }
        Err(e) => json!({ "error": e }),
    }
}
