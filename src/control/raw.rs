//! The file as TOML sees it: every section and key the format allows, with
//! leaves kept as TOML primitives (strings, integers, arrays) and their spans.
//!
//! Why two models: serde stops at the first error, but an operator wants
//! every problem at once. So serde only checks what only it can (syntax,
//! unknown keys, TOML types), and every value that needs parsing (addresses,
//! ranges, devices) is converted by `validate`, which keeps going after a
//! bad value and can name its line through the span kept here. Required keys
//! are `Option` for the same reason: a missing key is reported with the rest.
//!
//! Nothing outside `control` sees these types; the typed `Config` has no
//! spans and no strings where a value has a type.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A value and where it was written.
pub(super) type S<T> = Spanned<T>;

/// The whole file; `deny_unknown_fields` refuses any other section.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub dpdk: Option<S<RawDpdk>>,
    pub dataplane: Option<RawDataplane>,
    #[serde(default)]
    pub interface: Array<S<RawInterface>>,
    #[serde(default)]
    pub route: Array<S<RawRoute>>,
    #[serde(default)]
    pub neighbor: Array<S<RawNeighbor>>,
    pub control: Option<RawControl>,
    pub timeouts: Option<RawTimeouts>,
    #[serde(default)]
    pub virtual_server: Array<S<RawVirtualServer>>,
    pub ha: Option<S<RawHa>>,
    pub cluster: Option<S<RawCluster>>,
}

/// `[dpdk]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDpdk {
    pub eal_args: Option<S<Array<S<String>>>>,
    pub workers: Option<S<Array<S<Int>>>>,
}

/// `[dataplane]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    pub burst_size: Option<S<Int>>,
    pub conn_table_size: Option<S<Int>>,
    pub idle_sleep_us: Option<S<Int>>,
}

/// `[[interface]]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterface {
    pub name: Option<S<String>>,
    pub device: Option<S<String>>,
    pub addresses: Option<S<Array<S<String>>>>,
    pub mac: Option<S<String>>,
    pub rss: Option<S<String>>,
}

/// `[[route]]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: Option<S<String>>,
    pub via: Option<S<String>>,
    pub interface: Option<S<String>>,
}

/// `[[neighbor]]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbor {
    pub address: Option<S<String>>,
    pub mac: Option<S<String>>,
    pub interface: Option<S<String>>,
}

/// `[control]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub socket: Option<S<String>>,
    pub metrics_listen: Option<S<String>>,
    pub socket_group: Option<S<String>>,
}

/// `[timeouts]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub tcp_established_s: Option<S<Int>>,
    pub tcp_fin_wait_s: Option<S<Int>>,
    pub tcp_time_wait_s: Option<S<Int>>,
    pub tcp_syn_s: Option<S<Int>>,
    pub udp_s: Option<S<Int>>,
    pub proof_packets: Option<S<Int>>,
    pub proof_ms: Option<S<Int>>,
}

/// `[[virtual_server]]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVirtualServer {
    pub name: Option<S<String>>,
    pub address: Option<S<String>>,
    pub protocol: Option<S<String>>,
    pub scheduler: Option<S<String>>,
    pub forward: Option<S<String>>,
    pub persistence_timeout_s: Option<S<Int>>,
    pub mh_table_size: Option<S<Int>>,
    pub expire_nodest_conn: Option<S<bool>>,
    pub sorry_server: Option<S<String>>,
    pub syn_proxy: Option<S<bool>>,
    // FullNAT (`validate::fullnat`).
    pub local_addresses: Option<S<Array<S<String>>>>,
    pub local_port_range: Option<S<Array<S<Int>>>>,
    pub client_address: Option<S<String>>,
    pub health_check: Option<S<RawHealthCheck>>,
    #[serde(default)]
    pub real_server: Array<S<RawRealServer>>,
    // Admission limits (`validate::limits`).
    pub allow: Option<S<Array<S<String>>>>,
    pub deny: Option<S<Array<S<String>>>>,
    pub new_conn_rate: Option<S<Int>>,
    pub new_conn_burst: Option<S<Int>>,
    pub max_conns_per_client: Option<S<Int>>,
    pub client_prefix_len: Option<S<Int>>,
    pub slow_start_s: Option<S<Int>>,
    pub passive_check: Option<S<RawPassiveCheck>>,
    // Announcing (`validate::quorum`).
    pub quorum: Option<S<Int>>,
    // Priority groups (`validate::priority`).
    #[serde(default)]
    pub priority_group: Array<S<RawPriorityGroup>>,
}

/// `[[virtual_server.priority_group]]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPriorityGroup {
    pub priority: Option<S<Int>>,
    pub min_active: Option<S<Int>>,
}

/// `[virtual_server.passive_check]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPassiveCheck {
    pub enabled: Option<S<bool>>,
    pub window_s: Option<S<Int>>,
    pub min_attempts: Option<S<Int>>,
    pub max_failure_percent: Option<S<Int>>,
    pub syn_timeout_ms: Option<S<Int>>,
}

/// `[virtual_server.health_check]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub interval_ms: Option<S<Int>>,
    pub timeout_ms: Option<S<Int>>,
    pub rise: Option<S<Int>>,
    pub fall: Option<S<Int>>,
    pub http_path: Option<S<String>>,
    pub http_expect_status: Option<S<Int>>,
    // tls and https checks (`validate::tls`).
    pub http_expect_body: Option<S<String>>,
    pub tls_sni: Option<S<String>>,
    pub tls_verify: Option<S<bool>>,
    pub tls_ca_file: Option<S<String>>,
    pub tls_expiry_warn_days: Option<S<Int>>,
    // The kinds udp, dns, icmp and script (`validate::health_kinds`).
    pub source_address: Option<S<String>>,
    pub udp_payload: Option<S<String>>,
    pub udp_expect: Option<S<String>>,
    pub dns_name: Option<S<String>>,
    pub dns_type: Option<S<String>>,
    pub dns_expect_rcode: Option<S<String>>,
    pub dns_expect_answer: Option<S<bool>>,
    pub script: Option<S<Array<S<String>>>>,
    pub script_dynamic_weight: Option<S<bool>>,
}

/// `[[virtual_server.real_server]]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRealServer {
    pub address: Option<S<String>>,
    pub weight: Option<S<Int>>,
    pub upper_threshold: Option<S<Int>>,
    pub lower_threshold: Option<S<Int>>,
    pub priority: Option<S<Int>>,
    pub backup: Option<S<bool>>,
    pub slow_start_s: Option<S<Int>>,
}

/// `[ha]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHa {
    pub node_id: Option<S<Int>>,
    pub initial_state: Option<S<String>>,
    pub sync_listen: Option<S<String>>,
    pub sync_peer: Option<S<String>>,
    pub floating_addresses: Option<S<Array<S<String>>>>,
    pub garp_count: Option<S<Int>>,
    pub garp_interval_ms: Option<S<Int>>,
    pub sync_interval_ms: Option<S<Int>>,
    pub sync_key_file: Option<S<String>>,
}

/// `[cluster]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub node_id: Option<S<Int>>,
    pub sync_listen: Option<S<String>>,
    pub peers: Option<S<Array<S<String>>>>,
    pub sync_interval_ms: Option<S<Int>>,
    pub sync_key_file: Option<S<String>>,
    pub join_timeout_ms: Option<S<Int>>,
    pub announce: Option<S<bool>>,
    pub bird_socket: Option<S<String>>,
    pub bird_include: Option<S<String>>,
    pub bird_include6: Option<S<String>>,
    pub liveness_interface: Option<S<String>>,
}

/// A TOML integer of any sign and size TOML allows; ranges are checked
/// by `validate` so that `-1` gets a range message, not a type error.
#[derive(Debug, Clone, Copy)]
pub(super) struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }
        }
        d.deserialize_any(IntVisitor)
    }
}

/// A TOML array; like `Vec<T>`, but a wrong type reads "expected an
/// array" rather than serde's "expected a sequence".
#[derive(Debug)]
pub(super) struct Array<T>(pub Vec<T>);

impl<T> Default for Array<T> {
    fn default() -> Self {
        Array(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArrayVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ArrayVisitor<T> {
            type Value = Array<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Array<T>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Array(items))
            }
        }
        d.deserialize_seq(ArrayVisitor(PhantomData))
    }
}
