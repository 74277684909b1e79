//! The configuration rules, one behaviour per test: each bad file names the
//! field path (and line) an operator has to fix.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::wire::{Ipv4Cidr, MacAddr};

const DPDK: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n";
const EXT: &str = "[[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\"]\n";
const INT: &str = "[[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\naddresses = [\"10.1.0.1/24\"]\n";

/// The valid sections of the INTERFACE.md example, plus the `int`
/// interface its neighbour refers to.
const FULL: &str = r#"[dpdk]
eal_args = ["-l", "0-1", "--in-memory"]  # given to the EAL as they are
workers = [1]                # lcores that run poll-mode workers

[dataplane]
burst_size = 32
conn_table_size = 1048576    # connections per worker, fixed at start
idle_sleep_us = 0            # 0: busy poll; >0: sleep this long after an empty poll

[[interface]]
name = "ext"
device = "0000:03:00.0"
addresses = ["10.0.0.1/24"]  # own addresses: ARP and ICMP echo answered

[[interface]]
name = "int"
device = "net_af_packet0,iface=veth1"
addresses = ["10.1.0.1/24", "192.0.2.1/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "10.0.0.254"
interface = "ext"

[[neighbor]]                 # optional static ARP entry; others are learned
address = "10.1.0.11"
mac = "02:00:00:00:01:0b"
interface = "int"

[timeouts]                   # IPVS defaults
tcp_established_s = 900
tcp_fin_wait_s = 120
tcp_syn_s = 120
udp_s = 300

[[virtual_server]]
name = "web"
address = "10.0.0.100:80"
protocol = "tcp"             # tcp | udp
scheduler = "wrr"            # rr wrr lc wlc sh mh (and more)
forward = "nat"              # nat | dr | tun | fullnat
persistence_timeout_s = 0    # like ipvsadm -p; 0 = off

  [virtual_server.health_check]
  type = "tcp"               # tcp | http | none
  interval_ms = 1000
  timeout_ms = 1000
  rise = 2                   # successes before a down server is up again
  fall = 3                   # failures before an up server is down
  http_path = "/"            # for type = "http"
  http_expect_status = 200

  [[virtual_server.real_server]]
  address = "10.1.0.11:8080" # DR and TUN keep the virtual port
  weight = 1

[control]
socket = "/run/rvs/rvsd.sock"
metrics_listen = "127.0.0.1:9469"   # Prometheus text format at /metrics
"#;

fn cat(parts: &[&str]) -> String {
    parts.concat()
}

fn errors(text: &str) -> Vec<ConfigError> {
    match Config::from_toml_str(text) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(ConfigErrors(errors)) => {
            assert!(!errors.is_empty(), "an Err must hold at least one error");
            errors
        }
    }
}

/// The single error `text` has.
fn one_error(text: &str) -> ConfigError {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors.into_iter().next().unwrap()
}

/// The one-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

/// The one-based line of the last occurrence of `needle`.
fn last_line_of(text: &str, needle: &str) -> usize {
    let at = text
        .rfind(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

fn ok(text: &str) -> Config {
    Config::from_toml_str(text).unwrap_or_else(|e| panic!("expected valid, got:\n{e}"))
}

fn assert_error(e: &ConfigError, field: &str, line: Option<usize>, contains: &str) {
    assert_eq!(e.field, field, "{e}");
    assert_eq!(e.line, line, "{e}");
    assert!(
        e.message.contains(contains),
        "{e:?} should mention {contains:?}"
    );
}

// ------------------------------------------------------------ whole file

#[test]
fn full_example_parses_to_typed_values() {
    let c = ok(FULL);
    assert_eq!(c.dpdk.eal_args, ["-l", "0-1", "--in-memory"]);
    assert_eq!(c.dpdk.workers, [1]);
    assert_eq!(
        c.dataplane,
        DataplaneConfig {
            burst_size: 32,
            conn_table_size: 1_048_576,
            idle_sleep: Duration::ZERO,
        }
    );
    assert_eq!(c.interfaces.len(), 2);
    assert_eq!(c.interfaces[0].name, "ext");
    assert_eq!(c.interfaces[0].device, Device::Pci("0000:03:00.0".into()));
    assert_eq!(
        c.interfaces[0].addresses,
        ["10.0.0.1/24".parse::<Ipv4Cidr>().unwrap()]
    );
    assert_eq!(
        c.interfaces[1].device,
        Device::Vdev {
            spec: "net_af_packet0,iface=veth1".into(),
            name: "net_af_packet0".into()
        }
    );
    assert_eq!(c.interfaces[1].addresses.len(), 2);
    assert_eq!(
        c.routes,
        [RouteConfig {
            prefix: "0.0.0.0/0".parse().unwrap(),
            via: Ipv4Addr::new(10, 0, 0, 254),
            interface: 0,
            interface_name: "ext".into(),
        }]
    );
    assert_eq!(
        c.neighbors,
        [NeighborConfig {
            address: Ipv4Addr::new(10, 1, 0, 11),
            mac: MacAddr([2, 0, 0, 0, 1, 0x0b]),
            interface: 1,
            interface_name: "int".into(),
        }]
    );
    assert_eq!(c.control.socket, PathBuf::from("/run/rvs/rvsd.sock"));
    assert_eq!(
        c.control.metrics_listen,
        "127.0.0.1:9469".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.timeouts, TimeoutsConfig::default());
    assert_eq!(
        c.virtual_servers,
        [VirtualServerConfig {
            name: "web".into(),
            address: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 100), 80).into(),
            protocol: Protocol::Tcp,
            scheduler: SchedulerKind::Wrr,
            forward: ForwardMethod::Nat,
            persistence_timeout: None,
            mh_table_size: 65537,
            expire_nodest_conn: true,
            sorry_server: None,
            syn_proxy: false,
            client_address: None,
            slow_start: Duration::ZERO,
            health_check: HealthCheckConfig {
                kind: HealthCheckKind::Tcp,
                interval: Duration::from_millis(1000),
                timeout: Duration::from_millis(1000),
                rise: 2,
                fall: 3,
                http_path: "/".into(),
                http_expect_status: 200,
                ..HealthCheckConfig::default()
            },
            real_servers: vec![RealServerConfig {
                address: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 11), 8080).into(),
                weight: 1,
                thresholds: Default::default(),
                priority: 0,
                slow_start: None,
            }],
            limits: Default::default(),
            priority_groups: Vec::new(),
            passive_check: Default::default(),
            local: Default::default(),
            quorum: 1,
        }]
    );
}

#[test]
fn omitted_sections_take_their_defaults() {
    let c = ok(&cat(&["[dpdk]\nworkers = [1]\n", EXT]));
    assert!(c.dpdk.eal_args.is_empty());
    assert_eq!(c.dataplane, DataplaneConfig::default());
    assert_eq!(c.dataplane.burst_size, 32);
    assert_eq!(c.dataplane.conn_table_size, 1 << 20);
    assert_eq!(c.dataplane.idle_sleep, Duration::ZERO);
    assert!(c.routes.is_empty());
    assert!(c.neighbors.is_empty());
    assert!(c.virtual_servers.is_empty());
    assert_eq!(c.timeouts, TimeoutsConfig::default());
    assert_eq!(c.control, ControlConfig::default());
    assert_eq!(c.control.socket, PathBuf::from("/run/rvs/rvsd.sock"));
    assert_eq!(
        c.control.metrics_listen,
        "127.0.0.1:9469".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn omitted_keys_in_present_sections_take_their_defaults() {
    let c = ok(&cat(&[
        DPDK,
        "[dataplane]\nidle_sleep_us = 50\n[control]\nsocket = \"/tmp/rvs.sock\"\n",
        EXT,
    ]));
    assert_eq!(c.dataplane.burst_size, DataplaneConfig::DEFAULT_BURST_SIZE);
    assert_eq!(c.dataplane.idle_sleep, Duration::from_micros(50));
    assert_eq!(c.control.socket, PathBuf::from("/tmp/rvs.sock"));
    assert_eq!(
        c.control.metrics_listen,
        ControlConfig::DEFAULT_METRICS_LISTEN
    );
}

#[test]
fn every_semantic_error_is_reported_not_just_the_first() {
    let text = cat(&[
        "[dpdk]\nworkers = [200]\n[dataplane]\nburst_size = 0\n",
        EXT,
        "[[route]]\nprefix = \"10.9.0.1/16\"\nvia = \"10.0.0.254\"\ninterface = \"nope\"\n",
        "[control]\nsocket = \"rvsd.sock\"\n",
    ]);
    let fields: Vec<String> = errors(&text).into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "dpdk.workers[0]",
            "dataplane.burst_size",
            "route[0].prefix",
            "route[0].interface",
            "control.socket"
        ]
    );
}

#[test]
fn errors_display_one_line_each_with_line_numbers() {
    let text = cat(&[
        DPDK,
        EXT,
        "[dataplane]\nburst_size = 0\nidle_sleep_us = -1\n",
    ]);
    let shown = Config::from_toml_str(&text).unwrap_err().to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[0].starts_with("line 9: dataplane.burst_size: "),
        "{shown}"
    );
    assert!(
        lines[1].starts_with("line 10: dataplane.idle_sleep_us: "),
        "{shown}"
    );
}

#[test]
fn load_reads_a_file() {
    let dir = std::env::temp_dir().join(format!("rvs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rvs.toml");
    std::fs::write(&path, FULL).unwrap();
    let loaded = Config::load(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(loaded.unwrap(), ok(FULL));
}

#[test]
fn load_of_a_missing_file_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/rvs.toml")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_error(&e.0[0], "/nonexistent/rvs.toml", None, "cannot read");
}

#[test]
fn every_example_in_dpdk_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dpdk-config");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = Config::load(&path) {
                panic!("{}:\n{e}", path.display());
            }
            checked.push(path);
        }
    }
    assert!(
        checked.iter().any(|p| p.ends_with("pci-example.toml")),
        "{checked:?}"
    );
}

#[test]
fn pci_example_describes_two_ports_and_two_workers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dpdk-config/pci-example.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.dpdk.workers, [1, 2]);
    let devices: Vec<&Device> = c.interfaces.iter().map(|i| &i.device).collect();
    assert_eq!(
        devices,
        [
            &Device::Pci("0000:03:00.0".into()),
            &Device::Pci("0000:03:00.1".into())
        ]
    );
    assert_eq!(c.dataplane.idle_sleep, Duration::ZERO);
}

#[test]
fn pci_example_has_a_nat_virtual_server_with_two_real_servers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dpdk-config/pci-example.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.timeouts, TimeoutsConfig::default());
    assert_eq!(c.virtual_servers.len(), 1);
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.forward, ForwardMethod::Nat);
    assert_eq!(vs.health_check.kind, HealthCheckKind::Http);
    assert_eq!(vs.health_check.http_path, "/healthz");
    let real: Vec<(std::net::SocketAddr, u32)> = vs
        .real_servers
        .iter()
        .map(|r| (r.address, r.weight))
        .collect();
    assert_eq!(
        real,
        [
            ("10.1.0.11:8080".parse().unwrap(), 2),
            ("10.1.0.12:8080".parse().unwrap(), 1)
        ]
    );
}

// --------------------------------------------------- TOML syntax and types

#[test]
fn unknown_key_names_its_path_and_line() {
    let text = cat(&[DPDK, EXT, "[dataplane]\nburst_sise = 3\n"]);
    assert_eq!(line_of(&text, "burst_sise"), 9);
    let e = one_error(&text);
    assert_error(
        &e,
        "dataplane.burst_sise",
        Some(9),
        "unknown field `burst_sise`",
    );
    assert!(e
        .to_string()
        .starts_with("line 9: dataplane.burst_sise: unknown field `burst_sise`, expected"));
}

#[test]
fn unknown_key_in_second_interface_names_its_index() {
    let text = cat(&[DPDK, EXT, INT, "adresses = []\n"]);
    let e = one_error(&text);
    assert_error(
        &e,
        "interface[1].adresses",
        Some(line_of(&text, "adresses =")),
        "unknown field",
    );
}

#[test]
fn unknown_section_is_an_error() {
    let text = cat(&[DPDK, EXT, "[timeout]\nudp_s = 300\n"]);
    let e = one_error(&text);
    assert_error(
        &e,
        "timeout",
        Some(line_of(&text, "[timeout]")),
        "unknown field `timeout`",
    );
}

#[test]
fn unknown_array_of_tables_is_an_error() {
    let text = cat(&[DPDK, EXT, "[[virtual_servers]]\nname = \"web\"\n"]);
    let e = one_error(&text);
    assert_error(
        &e,
        "virtual_servers[0]",
        Some(line_of(&text, "[[virtual_servers]]")),
        "unknown field",
    );
}

#[test]
fn wrong_type_names_the_key_and_line() {
    let text = cat(&[DPDK, EXT, "[dataplane]\nburst_size = \"32\"\n"]);
    let e = one_error(&text);
    assert_error(&e, "dataplane.burst_size", Some(9), "expected an integer");
}

#[test]
fn wrong_type_in_an_array_names_the_element() {
    let text = cat(&["[dpdk]\nworkers = [1, \"2\"]\n", EXT]);
    let e = one_error(&text);
    assert_error(&e, "dpdk.workers[1]", Some(2), "expected an integer");
}

#[test]
fn string_where_an_array_belongs_says_array() {
    let text = cat(&["[dpdk]\neal_args = \"-l 0-1\"\nworkers = [1]\n", EXT]);
    let e = one_error(&text);
    assert_error(&e, "dpdk.eal_args", Some(2), "expected an array");
}

#[test]
fn syntax_error_gives_its_line() {
    let text = cat(&[DPDK, EXT, "[dataplane\nburst_size = 3\n"]);
    let e = one_error(&text);
    assert_eq!(e.line, Some(line_of(&text, "[dataplane")), "{e}");
    assert_eq!(e.field, "toml");
    assert!(!e.message.contains('\n'), "{e:?}");
}

#[test]
fn duplicate_key_is_an_error() {
    let text = cat(&[DPDK, "workers = [2]\n", EXT]);
    let e = one_error(&text);
    assert_error(&e, "dpdk.workers", Some(4), "duplicate key");
}

// ---------------------------------------------------------------- [dpdk]

#[test]
fn missing_dpdk_section_is_an_error() {
    assert_error(&one_error(EXT), "dpdk", None, "missing required section");
}

#[test]
fn missing_workers_is_an_error_at_the_dpdk_table() {
    let text = cat(&["\n[dpdk]\neal_args = []\n", EXT]);
    assert_error(&one_error(&text), "dpdk.workers", Some(2), "missing");
}

#[test]
fn empty_workers_is_an_error() {
    let text = cat(&["[dpdk]\nworkers = []\n", EXT]);
    assert_error(&one_error(&text), "dpdk.workers", Some(2), "at least one");
}

#[test]
fn worker_lcore_must_be_below_128() {
    let text = cat(&["[dpdk]\nworkers = [1, 128]\n", EXT]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[1]",
        Some(2),
        "out of range",
    );
}

#[test]
fn negative_worker_lcore_is_out_of_range() {
    let text = cat(&["[dpdk]\nworkers = [-1]\n", EXT]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[0]",
        Some(2),
        "-1 is out of range",
    );
}

#[test]
fn duplicate_worker_lcore_is_an_error() {
    let text = cat(&["[dpdk]\nworkers = [1, 2, 1]\n", EXT]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[2]",
        Some(2),
        "duplicate lcore 1 (also dpdk.workers[0])",
    );
}

#[test]
fn worker_outside_the_core_list_is_an_error() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1, 2]\n",
        EXT,
    ]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[1]",
        Some(3),
        "not in the EAL core list -l 0-1",
    );
}

#[test]
fn worker_on_the_main_lcore_is_an_error() {
    let text = cat(&["[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [0]\n", EXT]);
    assert_error(&one_error(&text), "dpdk.workers[0]", Some(3), "main lcore");
}

#[test]
fn main_lcore_is_the_lowest_of_an_attached_core_list() {
    let text = cat(&["[dpdk]\neal_args = [\"-l2-4\"]\nworkers = [2]\n", EXT]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[0]",
        Some(3),
        "lcore 2 is the EAL main lcore",
    );
    ok(&cat(&[
        "[dpdk]\neal_args = [\"-l2-4\"]\nworkers = [3, 4]\n",
        EXT,
    ]));
}

#[test]
fn explicit_main_lcore_frees_the_lowest_for_a_worker() {
    ok(&cat(&[
        "[dpdk]\neal_args = [\"-l\", \"0-2\", \"--main-lcore\", \"2\"]\nworkers = [0, 1]\n",
        EXT,
    ]));
}

#[test]
fn worker_on_an_explicit_main_lcore_is_an_error() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"--main-lcore=3\"]\nworkers = [3]\n",
        EXT,
    ]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[0]",
        Some(3),
        "--main-lcore",
    );
}

#[test]
fn main_lcore_outside_the_core_list_is_an_error() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"-l\", \"0-2\", \"--main-lcore\", \"5\"]\nworkers = [1]\n",
        EXT,
    ]);
    assert_error(
        &one_error(&text),
        "dpdk.eal_args[3]",
        Some(2),
        "not in the core list",
    );
}

#[test]
fn lcores_option_is_read_as_a_core_list() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"--lcores=0,1@3\"]\nworkers = [2]\n",
        EXT,
    ]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[0]",
        Some(3),
        "not in the EAL core list --lcores",
    );
    ok(&cat(&[
        "[dpdk]\neal_args = [\"--lcores\", \"0,1@3\"]\nworkers = [1]\n",
        EXT,
    ]));
}

#[test]
fn core_mask_is_read_as_a_core_list() {
    let text = cat(&["[dpdk]\neal_args = [\"-c\", \"0x5\"]\nworkers = [1]\n", EXT]);
    assert_error(
        &one_error(&text),
        "dpdk.workers[0]",
        Some(3),
        "not in the EAL core list -c 0x5",
    );
    ok(&cat(&[
        "[dpdk]\neal_args = [\"-c\", \"0x5\"]\nworkers = [2]\n",
        EXT,
    ]));
}

#[test]
fn malformed_core_list_is_an_error_on_its_value() {
    let text = cat(&["[dpdk]\neal_args = [\"-l\", \"0-x\"]\nworkers = [1]\n", EXT]);
    assert_error(&one_error(&text), "dpdk.eal_args[1]", Some(2), "-l \"0-x\"");
}

#[test]
fn core_option_without_a_value_is_an_error() {
    let text = cat(&["[dpdk]\neal_args = [\"-l\"]\nworkers = [1]\n", EXT]);
    assert_error(
        &one_error(&text),
        "dpdk.eal_args[0]",
        Some(2),
        "needs a value",
    );
}

#[test]
fn two_core_list_options_are_an_error() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"-l\", \"0-1\", \"-c\", \"3\"]\nworkers = [1]\n",
        EXT,
    ]);
    assert_error(
        &one_error(&text),
        "dpdk.eal_args[3]",
        Some(2),
        "only one of -l, -c and --lcores",
    );
}

#[test]
fn without_a_core_list_any_worker_lcore_is_accepted() {
    ok(&cat(&[
        "[dpdk]\neal_args = [\"--in-memory\"]\nworkers = [0, 5]\n",
        EXT,
    ]));
}

#[test]
fn vdev_arg_naming_an_interface_device_is_an_error() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"--vdev\", \"net_pcap0,rx_pcap=x\"]\nworkers = [1]\n",
        EXT,
    ]);
    assert_error(
        &one_error(&text),
        "dpdk.eal_args[1]",
        Some(2),
        "interface[0] \"ext\"",
    );
}

#[test]
fn allow_arg_naming_an_interface_device_is_an_error_in_any_pci_form() {
    let iface = "[[interface]]\nname = \"ext\"\ndevice = \"0000:03:00.0\"\n";
    let text = cat(&["[dpdk]\neal_args = [\"-a03:00.0\"]\nworkers = [1]\n", iface]);
    assert_error(
        &one_error(&text),
        "dpdk.eal_args[0]",
        Some(2),
        "-a 0000:03:00.0 names the device of interface[0]",
    );
}

#[test]
fn block_arg_naming_an_interface_device_is_an_error() {
    let iface = "[[interface]]\nname = \"ext\"\ndevice = \"03:00.0\"\n";
    let text = cat(&[
        "[dpdk]\neal_args = [\"--block=0000:03:00.0\"]\nworkers = [1]\n",
        iface,
    ]);
    assert_error(&one_error(&text), "dpdk.eal_args[0]", Some(2), "-b");
}

#[test]
fn device_args_for_other_devices_are_accepted() {
    ok(&cat(&[
        "[dpdk]\neal_args = [\"-a\", \"0000:00:1f.0\", \"--vdev\", \"net_null0\"]\nworkers = [1]\n",
        EXT,
    ]));
}

#[test]
fn in_memory_with_no_huge_is_an_error() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"--no-huge\", \"--in-memory\"]\nworkers = [1]\n",
        EXT,
    ]);
    assert_error(
        &one_error(&text),
        "dpdk.eal_args[1]",
        Some(2),
        "--no-huge --no-shconf",
    );
    ok(&cat(&[
        "[dpdk]\neal_args = [\"--no-huge\", \"--no-shconf\"]\nworkers = [1]\n",
        EXT,
    ]));
}

// ----------------------------------------------------------- [dataplane]

#[test]
fn burst_size_must_be_1_to_256() {
    for bad in ["0", "257"] {
        let text = cat(&[DPDK, EXT, "[dataplane]\nburst_size = ", bad, "\n"]);
        assert_error(
            &one_error(&text),
            "dataplane.burst_size",
            Some(line_of(&text, "burst_size")),
            "1 to 256",
        );
    }
    let c = ok(&cat(&[DPDK, EXT, "[dataplane]\nburst_size = 256\n"]));
    assert_eq!(c.dataplane.burst_size, 256);
}

#[test]
fn conn_table_size_must_be_1_to_2_pow_28() {
    for bad in ["0", "268435457", "-5"] {
        let text = cat(&[DPDK, EXT, "[dataplane]\nconn_table_size = ", bad, "\n"]);
        assert_error(
            &one_error(&text),
            "dataplane.conn_table_size",
            Some(line_of(&text, "conn_table_size")),
            "out of range",
        );
    }
    let c = ok(&cat(&[
        DPDK,
        EXT,
        "[dataplane]\nconn_table_size = 268435456\n",
    ]));
    assert_eq!(c.dataplane.conn_table_size, 1 << 28);
}

#[test]
fn idle_sleep_us_must_be_at_most_one_second() {
    let text = cat(&[DPDK, EXT, "[dataplane]\nidle_sleep_us = 1000001\n"]);
    assert_error(
        &one_error(&text),
        "dataplane.idle_sleep_us",
        Some(line_of(&text, "idle_sleep_us")),
        "0 to 1000000",
    );
    let c = ok(&cat(&[DPDK, EXT, "[dataplane]\nidle_sleep_us = 1000000\n"]));
    assert_eq!(c.dataplane.idle_sleep, Duration::from_secs(1));
}

// ---------------------------------------------------------- [[interface]]

#[test]
fn at_least_one_interface_is_required() {
    assert_error(&one_error(DPDK), "interface", None, "at least one");
}

#[test]
fn interface_name_is_required() {
    let text = cat(&[DPDK, "[[interface]]\ndevice = \"net_ring0\"\n"]);
    assert_error(&one_error(&text), "interface[0].name", Some(4), "missing");
}

#[test]
fn interface_name_must_not_be_empty() {
    let text = cat(&[DPDK, "[[interface]]\nname = \"\"\ndevice = \"net_ring0\"\n"]);
    assert_error(&one_error(&text), "interface[0].name", Some(5), "empty");
}

#[test]
fn interface_name_allows_only_letters_digits_and_punctuation() {
    let text = cat(&[
        DPDK,
        "[[interface]]\nname = \"e xt\"\ndevice = \"net_ring0\"\n",
    ]);
    assert_error(&one_error(&text), "interface[0].name", Some(5), "' '");
    ok(&cat(&[
        DPDK,
        "[[interface]]\nname = \"Ext_1.v-2\"\ndevice = \"net_ring0\"\n",
    ]));
}

#[test]
fn interface_name_is_at_most_32_characters() {
    let long = "x".repeat(33);
    let text = cat(&[
        DPDK,
        "[[interface]]\nname = \"",
        &long,
        "\"\ndevice = \"net_ring0\"\n",
    ]);
    assert_error(
        &one_error(&text),
        "interface[0].name",
        Some(5),
        "longer than 32",
    );
}

#[test]
fn duplicate_interface_name_is_an_error() {
    let int = INT.replace("\"int\"", "\"ext\"");
    let text = cat(&[DPDK, EXT, &int]);
    let e = one_error(&text);
    assert_error(
        &e,
        "interface[1].name",
        Some(9),
        "duplicate interface name \"ext\" (also interface[0])",
    );
}

#[test]
fn interface_device_is_required() {
    let text = cat(&[DPDK, "[[interface]]\nname = \"ext\"\n"]);
    assert_error(&one_error(&text), "interface[0].device", Some(4), "missing");
}

#[test]
fn interface_device_must_be_pci_or_net_vdev() {
    let text = cat(&[DPDK, "[[interface]]\nname = \"ext\"\ndevice = \"eth0\"\n"]);
    assert_error(
        &one_error(&text),
        "interface[0].device",
        Some(6),
        "PCI address",
    );
}

#[test]
fn pci_device_is_normalised() {
    let text = cat(&[
        DPDK,
        "[[interface]]\nname = \"ext\"\ndevice = \"AF:1e.3\"\n",
    ]);
    assert_eq!(
        ok(&text).interfaces[0].device,
        Device::Pci("0000:af:1e.3".into())
    );
}

#[test]
fn duplicate_device_is_an_error() {
    let text = cat(&[DPDK, EXT, INT.replace("net_pcap1", "net_pcap0").as_str()]);
    let e = one_error(&text);
    assert_eq!(line_of(&text, "device = \"net_pcap0,rx_pcap=in1"), 10);
    assert_eq!(
        e.to_string(),
        "line 10: interface[1].device: duplicate device \"net_pcap0\" (also used by interface[0] \"ext\")"
    );
}

#[test]
fn duplicate_vdev_name_with_other_arguments_is_an_error() {
    let int = INT.replace("net_pcap1,rx_pcap=in1.pcap", "net_pcap0,iface=other");
    let text = cat(&[DPDK, EXT, &int]);
    assert_error(
        &one_error(&text),
        "interface[1].device",
        Some(line_of(&text, "iface=other")),
        "duplicate device \"net_pcap0\"",
    );
}

#[test]
fn same_pci_device_in_short_and_long_form_is_a_duplicate() {
    let a = "[[interface]]\nname = \"a\"\ndevice = \"0000:03:00.0\"\n";
    let b = "[[interface]]\nname = \"b\"\ndevice = \"03:00.0\"\n";
    let text = cat(&[DPDK, a, b]);
    assert_error(
        &one_error(&text),
        "interface[1].device",
        Some(9),
        "duplicate device \"0000:03:00.0\"",
    );
}

#[test]
fn interface_without_addresses_is_valid() {
    let text = cat(&[
        DPDK,
        "[[interface]]\nname = \"ext\"\ndevice = \"net_ring0\"\n",
    ]);
    assert!(ok(&text).interfaces[0].addresses.is_empty());
}

#[test]
fn malformed_interface_address_names_its_index() {
    let text = cat(&[
        DPDK,
        EXT.replace("[\"10.0.0.1/24\"]", "[\"10.0.0.1/24\", \"10.0.0.2\"]")
            .as_str(),
    ]);
    assert_error(
        &one_error(&text),
        "interface[0].addresses[1]",
        Some(7),
        "invalid IPv4 prefix",
    );
}

#[test]
fn unspecified_interface_address_is_an_error() {
    let text = cat(&[DPDK, EXT.replace("10.0.0.1/24", "0.0.0.0/8").as_str()]);
    assert_error(
        &one_error(&text),
        "interface[0].addresses[0]",
        Some(7),
        "0.0.0.0",
    );
}

#[test]
fn multicast_interface_address_is_an_error() {
    let text = cat(&[DPDK, EXT.replace("10.0.0.1/24", "224.0.0.1/4").as_str()]);
    assert_error(
        &one_error(&text),
        "interface[0].addresses[0]",
        Some(7),
        "multicast",
    );
}

#[test]
fn broadcast_interface_address_is_an_error() {
    let text = cat(&[
        DPDK,
        EXT.replace("10.0.0.1/24", "255.255.255.255/32").as_str(),
    ]);
    assert_error(
        &one_error(&text),
        "interface[0].addresses[0]",
        Some(7),
        "255.255.255.255",
    );
}

#[test]
fn address_on_two_interfaces_is_an_error() {
    let text = cat(&[
        DPDK,
        EXT,
        INT.replace("10.1.0.1/24", "10.0.0.1/16").as_str(),
    ]);
    assert_error(
        &one_error(&text),
        "interface[1].addresses[0]",
        Some(line_of(&text, "10.0.0.1/16")),
        "already assigned at interface[0].addresses[0]",
    );
}

// -------------------------------------------------------------- [[route]]

const ROUTE: &str =
    "[[route]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.1.0.254\"\ninterface = \"int\"\n";

#[test]
fn route_is_resolved_to_its_interface_index() {
    let c = ok(&cat(&[DPDK, EXT, INT, ROUTE]));
    assert_eq!(c.routes[0].interface, 1);
    assert_eq!(c.routes[0].interface_name, "int");
    assert_eq!(c.routes[0].prefix, "10.9.0.0/16".parse().unwrap());
}

#[test]
fn route_prefix_must_have_no_host_bits() {
    let text = cat(&[DPDK, EXT, INT, &ROUTE.replace("10.9.0.0/16", "10.9.0.1/16")]);
    assert_error(
        &one_error(&text),
        "route[0].prefix",
        Some(line_of(&text, "prefix =")),
        "the network is 10.9.0.0/16",
    );
}

#[test]
fn route_prefix_must_parse() {
    let text = cat(&[DPDK, EXT, INT, &ROUTE.replace("10.9.0.0/16", "10.9.0.0")]);
    assert_error(
        &one_error(&text),
        "route[0].prefix",
        Some(line_of(&text, "prefix =")),
        "invalid IPv4 prefix",
    );
}

#[test]
fn route_via_must_be_in_a_connected_subnet_of_its_interface() {
    let text = cat(&[DPDK, EXT, INT, &ROUTE.replace("10.1.0.254", "10.0.0.254")]);
    let e = one_error(&text);
    assert_error(
        &e,
        "route[0].via",
        Some(line_of(&text, "via =")),
        "not in a connected subnet of interface \"int\" (10.1.0.0/24)",
    );
}

#[test]
fn route_via_must_be_an_address() {
    let text = cat(&[DPDK, EXT, INT, &ROUTE.replace("10.1.0.254", "gateway")]);
    assert_error(
        &one_error(&text),
        "route[0].via",
        Some(line_of(&text, "via =")),
        "invalid IPv4 address \"gateway\"",
    );
}

#[test]
fn route_to_an_unknown_interface_is_an_error() {
    let text = cat(&[DPDK, EXT, ROUTE]);
    let e = one_error(&text);
    assert_eq!(
        e.to_string(),
        "line 11: route[0].interface: unknown interface \"int\" (declared: ext)"
    );
}

#[test]
fn route_fields_are_required() {
    let text = cat(&[DPDK, EXT, "[[route]]\n"]);
    let fields: Vec<String> = errors(&text).into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        ["route[0].prefix", "route[0].via", "route[0].interface"]
    );
}

#[test]
fn duplicate_route_prefix_is_an_error() {
    let text = cat(&[DPDK, EXT, INT, ROUTE, ROUTE]);
    assert_error(
        &one_error(&text),
        "route[1].prefix",
        Some(last_line_of(&text, "prefix =")),
        "duplicate route for 10.9.0.0/16 (also route[0])",
    );
}

#[test]
fn route_via_is_not_checked_against_an_interface_whose_address_is_broken() {
    let int = INT.replace("10.1.0.1/24", "10.1.0.1/99");
    let errors = errors(&cat(&[DPDK, EXT, &int, ROUTE]));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "interface[1].addresses[0]");
}

// ----------------------------------------------------------- [[neighbor]]

const NEIGHBOR: &str =
    "[[neighbor]]\naddress = \"10.1.0.11\"\nmac = \"02:00:00:00:01:0b\"\ninterface = \"int\"\n";

#[test]
fn neighbor_address_must_be_in_a_connected_subnet_of_its_interface() {
    let text = cat(&[DPDK, EXT, INT, &NEIGHBOR.replace("10.1.0.11", "10.0.0.11")]);
    assert_error(
        &one_error(&text),
        "neighbor[0].address",
        Some(line_of(&text, "10.0.0.11")),
        "not in a connected subnet",
    );
}

#[test]
fn neighbor_on_an_interface_without_addresses_is_an_error() {
    let int = "[[interface]]\nname = \"int\"\ndevice = \"net_ring0\"\n";
    let text = cat(&[DPDK, EXT, int, NEIGHBOR]);
    assert_error(
        &one_error(&text),
        "neighbor[0].address",
        Some(line_of(&text, "10.1.0.11")),
        "it has no addresses",
    );
}

#[test]
fn neighbor_mac_must_be_unicast() {
    for (mac, kind) in [
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "broadcast"),
        ("00:00:00:00:00:00", "all zero"),
    ] {
        let text = cat(&[DPDK, EXT, INT, &NEIGHBOR.replace("02:00:00:00:01:0b", mac)]);
        assert_error(
            &one_error(&text),
            "neighbor[0].mac",
            Some(line_of(&text, "mac =")),
            kind,
        );
    }
}

#[test]
fn neighbor_mac_must_parse() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        &NEIGHBOR.replace("02:00:00:00:01:0b", "02:00:00:00:01"),
    ]);
    assert_error(
        &one_error(&text),
        "neighbor[0].mac",
        Some(line_of(&text, "mac =")),
        "invalid MAC address",
    );
}

#[test]
fn neighbor_on_an_unknown_interface_is_an_error() {
    let text = cat(&[DPDK, EXT, NEIGHBOR]);
    assert_error(
        &one_error(&text),
        "neighbor[0].interface",
        Some(line_of(&text, "interface = \"int\"")),
        "unknown interface \"int\" (declared: ext)",
    );
}

#[test]
fn duplicate_neighbor_on_one_interface_is_an_error() {
    let text = cat(&[DPDK, EXT, INT, NEIGHBOR, NEIGHBOR]);
    assert_error(
        &one_error(&text),
        "neighbor[1].address",
        Some(last_line_of(&text, "address =")),
        "duplicate neighbour 10.1.0.11 on interface \"int\" (also neighbor[0])",
    );
}

#[test]
fn neighbor_is_resolved_to_its_interface_index() {
    let c = ok(&cat(&[DPDK, EXT, INT, NEIGHBOR]));
    assert_eq!(c.neighbors[0].interface, 1);
    assert_eq!(c.neighbors[0].mac, MacAddr([2, 0, 0, 0, 1, 0x0b]));
}

// ------------------------------------------------------------- [control]

#[test]
fn control_socket_must_be_absolute() {
    let text = cat(&[DPDK, EXT, "[control]\nsocket = \"run/rvsd.sock\"\n"]);
    assert_error(
        &one_error(&text),
        "control.socket",
        Some(line_of(&text, "socket =")),
        "absolute",
    );
}

#[test]
fn metrics_listen_must_be_a_socket_address() {
    let text = cat(&[
        DPDK,
        EXT,
        "[control]\nmetrics_listen = \"localhost:9469\"\n",
    ]);
    assert_error(
        &one_error(&text),
        "control.metrics_listen",
        Some(line_of(&text, "metrics_listen")),
        "IP:PORT",
    );
}

#[test]
fn metrics_listen_may_be_ipv6() {
    let c = ok(&cat(&[
        DPDK,
        EXT,
        "[control]\nmetrics_listen = \"[::1]:9000\"\n",
    ]));
    assert_eq!(
        c.control.metrics_listen,
        "[::1]:9000".parse::<SocketAddr>().unwrap()
    );
}

// ----------------------------------------------------------- robustness

#[test]
fn odd_input_is_refused_without_panicking() {
    let huge = "9".repeat(400);
    let deep = "a = ".to_string() + &"[".repeat(2000);
    let odd: Vec<String> = vec![
        String::new(),
        " ".into(),
        "\n\n\n".into(),
        "\u{0}\u{1}\u{7f}\u{feff}".into(),
        String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x9c, 0x80, 0xc3]).into_owned(),
        "[dpdk".into(),
        "[[interface]".into(),
        "[dpdk]\nworkers = [".into(),
        "[dpdk]\nworkers = 1".into(),
        "[dpdk]\nworkers = [1.5]".into(),
        "[dpdk]\nworkers = [true]".into(),
        "[dpdk]\nworkers = [[1]]".into(),
        "[dpdk]\nworkers = [{a = 1}]".into(),
        format!("[dpdk]\nworkers = [{huge}]"),
        "[dpdk]\nworkers = [9223372036854775807]".into(),
        "[dpdk]\nworkers = [-9223372036854775808]".into(),
        "[dataplane]\nburst_size = -9223372036854775808\nconn_table_size = 9223372036854775807".into(),
        "[dataplane]\nidle_sleep_us = 1979-05-27T07:32:00Z".into(),
        "[dataplane]\nidle_sleep_us = inf".into(),
        "[dataplane]\nidle_sleep_us = nan".into(),
        "dpdk = 1".into(),
        "interface = 1".into(),
        "interface = [1, 2]".into(),
        "interface = [{}]".into(),
        "[interface]\nname = \"x\"".into(),
        "[[dpdk]]".into(),
        "[[interface]]\nname = 1\ndevice = []\naddresses = \"x\"".into(),
        "[[interface]]\naddresses = [\"1.2.3.4/33\", \"\", \"1.2.3.4/-1\", \"/\"]".into(),
        "[[interface]]\ndevice = \"net_\u{1F600}\"".into(),
        "[[interface]]\nname = \"\u{1F600}\"\ndevice = \"::.\"".into(),
        "[[route]]\nprefix = \"\"\nvia = \"\"\ninterface = \"\"".into(),
        "[[neighbor]]\naddress = \"1\"\nmac = \"::::::\"\ninterface = \"\"".into(),
        "[control]\nsocket = \"\"\nmetrics_listen = \"\"".into(),
        "[dpdk]\neal_args = [\"-l\", \"99999999999999999999\", \"-c\", \"0xffffffffffffffffffffffffffffffffff\", \"--lcores\", \"(\", \"--main-lcore\"]\nworkers=[1]".into(),
        "[dpdk]\neal_args = [\"-l\", \"-\", \"-l\", \",\", \"-c\", \"0x\", \"-a\", \"\", \"--vdev\"]\nworkers=[1]".into(),
        "a.b.c.d.e = 1".into(),
        "\"\" = 1".into(),
        "x = \"\"\"\nunterminated".into(),
        deep,
        "[dpdk]\n\u{0}".into(),
        "virtual_server = 1".into(),
        "[virtual_server]\nname = \"x\"".into(),
        "[[virtual_server]]\n[[virtual_server.health_check]]".into(),
        "[[virtual_server]]\nreal_server = {address = 1}".into(),
        "[[virtual_server]]\naddress = \"1.2.3.4:99999\"\nforward = \"\"\nscheduler = \"\u{1F600}\"".into(),
        "[[virtual_server]]\nscheduler = \"mh\"\nmh_table_size = 9223372036854775807".into(),
        "[[virtual_server]]\nscheduler = \"mh\"\nmh_table_size = 16777215".into(),
        "[[virtual_server]]\npersistence_timeout_s = -9223372036854775808".into(),
        "[[virtual_server]]\n[virtual_server.health_check]\nhttp_path = \"\"\ntype = \"http\"".into(),
        "[[virtual_server.real_server]]\naddress = \"1.2.3.4:5\"".into(),
        "[timeouts]\nudp_s = 1.5".into(),
    ];
    for text in &odd {
        if let Err(e) = Config::from_toml_str(text) {
            assert!(!e.0.is_empty());
            for error in &e.0 {
                assert!(!error.to_string().contains('\n'), "{error:?} for {text:?}");
            }
        }
    }
}

#[test]
fn every_truncation_of_a_valid_file_is_handled() {
    for end in 0..FULL.len() {
        let _ = Config::from_toml_str(&FULL[..end]);
    }
}

#[test]
fn every_single_byte_change_of_a_valid_file_is_handled() {
    let bytes = FULL.as_bytes();
    for at in 0..bytes.len() {
        for replacement in [b'"', b'[', b']', b'=', b'\n', b'#', b',', b'0', b'.', b'{'] {
            let mut changed = bytes.to_vec();
            changed[at] = replacement;
            let text = String::from_utf8(changed).expect("ascii stays utf-8");
            if let Err(e) = Config::from_toml_str(&text) {
                assert!(!e.0.is_empty());
            }
        }
    }
}

#[test]
fn eal_cross_checks_still_run_when_another_worker_is_bad() {
    let text = cat(&[
        "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [0, 500]\n",
        EXT,
    ]);
    let mut fields: Vec<String> = errors(&text).into_iter().map(|e| e.field).collect();
    fields.sort();
    assert_eq!(fields, ["dpdk.workers[0]", "dpdk.workers[1]"]);
}

#[test]
fn interface_mac_is_optional_and_parsed() {
    let c = ok(&cat(&[DPDK, EXT]));
    assert_eq!(c.interfaces[0].mac, None);
    let with_mac = cat(&[DPDK, EXT, "mac = \"02:00:00:00:00:01\"\n"]);
    assert_eq!(
        ok(&with_mac).interfaces[0].mac,
        Some(MacAddr([2, 0, 0, 0, 0, 1]))
    );
}

#[test]
fn interface_mac_must_be_unicast() {
    let text = cat(&[DPDK, EXT, "mac = \"ff:ff:ff:ff:ff:ff\"\n"]);
    let e = one_error(&text);
    assert_error(
        &e,
        "interface[0].mac",
        Some(line_of(&text, "mac =")),
        "broadcast",
    );
}

#[test]
fn interface_mac_must_parse() {
    let text = cat(&[DPDK, EXT, "mac = \"02:00:00\"\n"]);
    let e = one_error(&text);
    assert_error(&e, "interface[0].mac", Some(line_of(&text, "mac =")), "MAC");
}

#[test]
fn interface_rss_is_optional_and_left_to_startup() {
    let c = ok(&cat(&[DPDK, EXT]));
    assert_eq!(c.interfaces[0].rss, None);
}

#[test]
fn interface_rss_names_the_client_side() {
    let out = ok(&cat(&[DPDK, EXT, "rss = \"client-source\"\n"]));
    assert_eq!(out.interfaces[0].rss, Some(ClientSide::Source));
    let inside = ok(&cat(&[DPDK, EXT, "rss = \"client-destination\"\n"]));
    assert_eq!(inside.interfaces[0].rss, Some(ClientSide::Destination));
}

#[test]
fn interface_rss_must_be_a_known_side() {
    let text = cat(&[DPDK, EXT, "rss = \"symmetric\"\n"]);
    let e = one_error(&text);
    assert_error(
        &e,
        "interface[0].rss",
        Some(line_of(&text, "rss =")),
        "\"client-source\", \"client-destination\"",
    );
}

// ------------------------------------------------------------ [timeouts]

#[test]
fn timeouts_are_parsed_to_durations_and_omitted_keys_default() {
    let c = ok(&cat(&[
        DPDK,
        EXT,
        "[timeouts]\ntcp_established_s = 3600\nudp_s = 30\n",
    ]));
    assert_eq!(
        c.timeouts,
        TimeoutsConfig {
            tcp_established: Duration::from_secs(3600),
            tcp_fin_wait: Duration::from_secs(120),
            tcp_syn: Duration::from_secs(120),
            udp: Duration::from_secs(30),
            ..TimeoutsConfig::default()
        }
    );
}

#[test]
fn proof_keys_set_the_input_only_proof() {
    let c = ok(&cat(&[
        DPDK,
        EXT,
        "[timeouts]\nproof_packets = 3\nproof_ms = 250\n",
    ]));
    assert_eq!(c.timeouts.proof_packets, 3);
    assert_eq!(c.timeouts.proof, Duration::from_millis(250));
    let t = crate::startup::timeouts(&c);
    assert_eq!((t.proof_packets(), t.proof_ms()), (3, 250));
}

#[test]
fn proof_packets_must_be_at_least_one() {
    let text = cat(&[DPDK, EXT, "[timeouts]\nproof_packets = 0\n"]);
    assert_error(
        &one_error(&text),
        "timeouts.proof_packets",
        Some(line_of(&text, "proof_packets")),
        "out of range",
    );
}

#[test]
fn omitted_timeouts_are_the_ipvs_defaults() {
    let t = ok(&cat(&[DPDK, EXT])).timeouts;
    assert_eq!(t.tcp_established, Duration::from_secs(900));
    assert_eq!(t.tcp_fin_wait, Duration::from_secs(120));
    assert_eq!(t.tcp_syn, Duration::from_secs(120));
    assert_eq!(t.udp, Duration::from_secs(300));
}

#[test]
fn every_timeout_must_be_at_least_one_second() {
    for key in [
        "tcp_established_s",
        "tcp_fin_wait_s",
        "tcp_time_wait_s",
        "tcp_syn_s",
        "udp_s",
    ] {
        let text = cat(&[DPDK, EXT, "[timeouts]\n", key, " = 0\n"]);
        assert_error(
            &one_error(&text),
            &format!("timeouts.{key}"),
            Some(line_of(&text, key)),
            "0 is out of range: must be 1 to 604800",
        );
    }
}

#[test]
fn timeout_is_at_most_a_week() {
    let text = cat(&[DPDK, EXT, "[timeouts]\nudp_s = 604801\n"]);
    assert_error(
        &one_error(&text),
        "timeouts.udp_s",
        Some(line_of(&text, "udp_s")),
        "out of range",
    );
    let c = ok(&cat(&[DPDK, EXT, "[timeouts]\nudp_s = 604800\n"]));
    assert_eq!(c.timeouts.udp, Duration::from_secs(604_800));
}

#[test]
fn unknown_key_in_timeouts_is_an_error() {
    let text = cat(&[DPDK, EXT, "[timeouts]\ntcp_fin_s = 60\n"]);
    assert_error(
        &one_error(&text),
        "timeouts.tcp_fin_s",
        Some(line_of(&text, "tcp_fin_s")),
        "unknown field `tcp_fin_s`",
    );
}

// ----------------------------------------------------- [[virtual_server]]

/// A NAT virtual server on the `ext` subnet, without real servers.
const VS: &str =
    "[[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\nforward = \"nat\"\n";
/// A real server on the `int` subnet, with a port translation.
const RS: &str = "[[virtual_server.real_server]]\naddress = \"10.1.0.11:8080\"\n";

/// `VS` with `forward` replaced.
fn vs_forward(forward: &str) -> String {
    VS.replace("\"nat\"", &format!("{forward:?}"))
}

/// A real server at `address`.
fn rs(address: &str) -> String {
    RS.replace("10.1.0.11:8080", address)
}

#[test]
fn virtual_server_keys_parse_to_typed_values() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        "[[virtual_server]]\nname = \"dns\"\naddress = \"10.0.0.53:53\"\nprotocol = \"udp\"\n\
         scheduler = \"mh\"\nforward = \"tun\"\npersistence_timeout_s = 300\n\
         mh_table_size = 251\n",
        &rs("10.1.0.11:53"),
        "weight = 7\n",
    ]);
    let vs = &ok(&text).virtual_servers[0];
    assert_eq!(vs.name, "dns");
    assert_eq!(
        vs.address,
        "10.0.0.53:53".parse::<std::net::SocketAddr>().unwrap()
    );
    assert_eq!(vs.protocol, Protocol::Udp);
    assert_eq!(vs.scheduler, SchedulerKind::Mh);
    assert_eq!(vs.forward, ForwardMethod::Tun);
    assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(300)));
    assert_eq!(vs.mh_table_size, 251);
    assert_eq!(
        vs.real_servers,
        [RealServerConfig {
            address: "10.1.0.11:53".parse().unwrap(),
            weight: 7,
            thresholds: Default::default(),
            priority: 0,
            slow_start: None,
        }]
    );
}

#[test]
fn virtual_server_omitted_keys_take_their_defaults() {
    let vs = &ok(&cat(&[DPDK, EXT, VS])).virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Tcp);
    assert_eq!(vs.protocol, VirtualServerConfig::DEFAULT_PROTOCOL);
    assert_eq!(vs.scheduler, SchedulerKind::Wlc);
    assert_eq!(vs.scheduler, VirtualServerConfig::DEFAULT_SCHEDULER);
    assert_eq!(vs.persistence_timeout, None);
    assert_eq!(vs.mh_table_size, 65537);
    assert_eq!(vs.health_check, HealthCheckConfig::default());
}

#[test]
fn virtual_server_without_real_servers_is_valid() {
    let c = ok(&cat(&[DPDK, EXT, VS]));
    assert!(c.virtual_servers[0].real_servers.is_empty());
}

#[test]
fn virtual_servers_keep_file_order() {
    let second = VS.replace("\"web\"", "\"b\"").replace(":80", ":81");
    let c = ok(&cat(&[DPDK, EXT, VS, &second]));
    let names: Vec<&str> = c.virtual_servers.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["web", "b"]);
}

#[test]
fn virtual_server_name_address_and_forward_are_required() {
    let text = cat(&[DPDK, EXT, "[[virtual_server]]\nscheduler = \"rr\"\n"]);
    let header = line_of(&text, "[[virtual_server]]");
    let errors = errors(&text);
    let got: Vec<(&str, Option<usize>)> =
        errors.iter().map(|e| (e.field.as_str(), e.line)).collect();
    assert_eq!(
        got,
        [
            ("virtual_server[0].name", Some(header)),
            ("virtual_server[0].forward", Some(header)),
            ("virtual_server[0].address", Some(header)),
        ]
    );
    assert!(errors.iter().all(|e| e.message.contains("missing")));
}

#[test]
fn virtual_server_name_must_not_be_empty() {
    let text = cat(&[DPDK, EXT, &VS.replace("\"web\"", "\"\"")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].name",
        Some(line_of(&text, "name = \"\"")),
        "must not be empty",
    );
}

#[test]
fn virtual_server_name_allows_only_letters_digits_and_punctuation() {
    let text = cat(&[DPDK, EXT, &VS.replace("\"web\"", "\"web/1\"")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].name",
        Some(line_of(&text, "web/1")),
        "'/'",
    );
}

#[test]
fn duplicate_virtual_server_name_is_an_error() {
    let second = VS.replace(":80", ":81");
    let text = cat(&[DPDK, EXT, VS, &second]);
    assert_error(
        &one_error(&text),
        "virtual_server[1].name",
        Some(last_line_of(&text, "name =")),
        "duplicate virtual server name \"web\" (also virtual_server[0])",
    );
}

#[test]
fn duplicate_virtual_server_address_and_protocol_is_an_error() {
    let second = VS.replace("\"web\"", "\"web2\"");
    let text = cat(&[DPDK, EXT, VS, &second]);
    assert_error(
        &one_error(&text),
        "virtual_server[1].address",
        Some(last_line_of(&text, "address =")),
        "duplicate virtual server 10.0.0.100:80/tcp (also virtual_server[0])",
    );
}

#[test]
fn same_vip_and_port_with_another_protocol_is_valid() {
    let udp = VS.replace("\"web\"", "\"web-udp\"") + "protocol = \"udp\"\n";
    let c = ok(&cat(&[DPDK, EXT, VS, &udp]));
    assert_eq!(c.virtual_servers[1].protocol, Protocol::Udp);
}

#[test]
fn virtual_server_address_must_be_an_address_and_port() {
    // IPv6 ("[2001:db8::10]:80") is valid: `tests_ipv6_services`.
    for bad in [
        "10.0.0.100",
        "10.0.0.100:http",
        "web:80",
        "10.0.0.100:65536",
    ] {
        let text = cat(&[DPDK, EXT, &VS.replace("10.0.0.100:80", bad)]);
        assert_error(
            &one_error(&text),
            "virtual_server[0].address",
            Some(line_of(&text, "address =")),
            "expected IPv4:PORT like 10.0.0.100:80",
        );
    }
}

#[test]
fn virtual_server_port_must_not_be_zero() {
    let text = cat(&[DPDK, EXT, &VS.replace(":80", ":0")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].address",
        Some(line_of(&text, "address =")),
        "the port must not be 0",
    );
}

#[test]
fn vip_must_not_be_unspecified_broadcast_or_multicast() {
    for (ip, what) in [
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("239.1.2.3", "multicast"),
    ] {
        let text = cat(&[DPDK, EXT, &VS.replace("10.0.0.100", ip)]);
        assert_error(
            &one_error(&text),
            "virtual_server[0].address",
            Some(line_of(&text, "address =")),
            what,
        );
    }
}

#[test]
fn vip_must_not_be_an_interface_address() {
    let text = cat(&[DPDK, EXT, &VS.replace("10.0.0.100", "10.0.0.1")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].address",
        Some(line_of(&text, "address =")),
        "10.0.0.1 is the balancer's own address on interface[0] \"ext\"",
    );
}

#[test]
fn vip_outside_every_connected_subnet_is_valid() {
    // Routed to the balancer by the upstream router: no ARP needed.
    ok(&cat(&[
        DPDK,
        EXT,
        &VS.replace("10.0.0.100", "198.51.100.7"),
    ]));
}

#[test]
fn unknown_protocol_lists_the_accepted_values() {
    let text = cat(&[DPDK, EXT, VS, "protocol = \"sctp\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].protocol",
        Some(line_of(&text, "protocol =")),
        "unknown value \"sctp\": expected one of \"tcp\", \"udp\"",
    );
}

#[test]
fn unknown_scheduler_lists_the_accepted_values() {
    let text = cat(&[DPDK, EXT, VS, "scheduler = \"random\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].scheduler",
        Some(line_of(&text, "scheduler =")),
        "expected one of \"rr\", \"wrr\", \"lc\", \"wlc\", \"sed\", \"nq\", \"sh\", \"mh\"",
    );
}

#[test]
fn every_scheduler_name_parses_to_its_kind() {
    for kind in SchedulerKind::ALL {
        let text = cat(&[DPDK, EXT, VS, "scheduler = \"", kind.name(), "\"\n"]);
        assert_eq!(ok(&text).virtual_servers[0].scheduler, kind);
    }
}

#[test]
fn unknown_forward_lists_the_accepted_values() {
    let text = cat(&[DPDK, EXT, &vs_forward("masq")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].forward",
        Some(line_of(&text, "forward =")),
        "unknown value \"masq\": expected one of \"nat\", \"dr\", \"tun\"",
    );
}

#[test]
fn keywords_are_case_sensitive() {
    let text = cat(&[DPDK, EXT, &vs_forward("NAT")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].forward",
        Some(line_of(&text, "forward =")),
        "unknown value \"NAT\"",
    );
}

#[test]
fn persistence_timeout_zero_is_off() {
    let text = cat(&[DPDK, EXT, VS, "persistence_timeout_s = 0\n"]);
    assert_eq!(ok(&text).virtual_servers[0].persistence_timeout, None);
}

#[test]
fn persistence_timeout_must_be_0_to_a_week() {
    for bad in ["-1", "604801"] {
        let text = cat(&[DPDK, EXT, VS, "persistence_timeout_s = ", bad, "\n"]);
        assert_error(
            &one_error(&text),
            "virtual_server[0].persistence_timeout_s",
            Some(line_of(&text, "persistence_timeout_s")),
            "must be 0 to 604800",
        );
    }
}

#[test]
fn mh_table_size_only_applies_to_the_mh_scheduler() {
    let text = cat(&[DPDK, EXT, VS, "scheduler = \"wrr\"\nmh_table_size = 251\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].mh_table_size",
        Some(line_of(&text, "mh_table_size")),
        "only applies to scheduler = \"mh\" (this virtual server's is \"wrr\")",
    );
}

#[test]
fn mh_table_size_must_be_prime() {
    let text = cat(&[DPDK, EXT, VS, "scheduler = \"mh\"\nmh_table_size = 65536\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].mh_table_size",
        Some(line_of(&text, "mh_table_size")),
        "65536 is not a prime; the Maglev table size must be one, e.g. 65537",
    );
}

#[test]
fn mh_table_size_must_be_251_to_2_pow_24() {
    for bad in ["241", "16777259"] {
        let text = cat(&[
            DPDK,
            EXT,
            VS,
            "scheduler = \"mh\"\nmh_table_size = ",
            bad,
            "\n",
        ]);
        assert_error(
            &one_error(&text),
            "virtual_server[0].mh_table_size",
            Some(line_of(&text, "mh_table_size")),
            "must be 251 to 16777216",
        );
    }
}

#[test]
fn mh_table_size_must_hold_100_entries_per_real_server() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        VS,
        "scheduler = \"mh\"\nmh_table_size = 251\n",
        &rs("10.1.0.11:80"),
        &rs("10.1.0.12:80"),
        &rs("10.1.0.13:80"),
    ]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].mh_table_size",
        Some(line_of(&text, "mh_table_size")),
        "251 is below 100 entries per real server × 3 real servers = 300, too few for even \
         shares; set mh_table_size to a prime of at least 300, e.g. 307",
    );
}

#[test]
fn default_mh_table_size_must_hold_100_entries_per_real_server() {
    let mut text = cat(&[DPDK, EXT, INT, VS, "scheduler = \"mh\"\n"]);
    for port in 1..=656 {
        text += &rs(&format!("10.1.0.11:{port}"));
    }
    assert_error(
        &one_error(&text),
        "virtual_server[0].mh_table_size",
        Some(line_of(&text, "[[virtual_server]]")),
        "the default 65537 is below 100 entries per real server × 656 real servers = 65600",
    );
}

#[test]
fn is_prime_knows_small_and_large_primes() {
    let primes: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
    assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
    assert!(is_prime(65537));
    assert!(is_prime(4_294_967_291)); // the largest u32 prime
    assert!(!is_prime(65535));
    assert!(!is_prime(u32::MAX));
    assert!(!is_prime(65521 * 3));
}

#[test]
fn unknown_key_in_virtual_server_is_an_error() {
    let text = cat(&[DPDK, EXT, VS, "persistence_s = 60\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].persistence_s",
        Some(line_of(&text, "persistence_s")),
        "unknown field `persistence_s`",
    );
}

// ----------------------------------------- [virtual_server.health_check]

const HC: &str = "[virtual_server.health_check]\n";

/// `VS` with a health check holding `keys`.
fn vs_hc(keys: &str) -> String {
    cat(&[DPDK, EXT, VS, HC, keys])
}

#[test]
fn absent_health_check_is_tcp_with_keepalived_like_timings() {
    let hc = ok(&cat(&[DPDK, EXT, VS])).virtual_servers[0]
        .health_check
        .clone();
    assert_eq!(
        hc,
        HealthCheckConfig {
            kind: HealthCheckKind::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            http_path: "/".into(),
            http_expect_status: 200,
            ..HealthCheckConfig::default()
        }
    );
}

#[test]
fn health_check_keys_parse_to_typed_values_and_omitted_ones_default() {
    let text =
        vs_hc("type = \"http\"\ninterval_ms = 250\nhttp_path = \"/healthz?full=1\"\nfall = 5\n");
    let hc = &ok(&text).virtual_servers[0].health_check;
    assert_eq!(hc.kind, HealthCheckKind::Http);
    assert_eq!(hc.interval, Duration::from_millis(250));
    assert_eq!(hc.timeout, Duration::from_millis(1000));
    assert_eq!(hc.rise, 2);
    assert_eq!(hc.fall, 5);
    assert_eq!(hc.http_path, "/healthz?full=1");
    assert_eq!(hc.http_expect_status, 200);
}

#[test]
fn absent_health_check_of_a_udp_service_is_none() {
    let text = cat(&[
        DPDK,
        EXT,
        &VS.replace("forward", "protocol = \"udp\"\nforward"),
    ]);
    let vs = &ok(&text).virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Udp);
    assert_eq!(
        vs.health_check,
        HealthCheckConfig {
            kind: HealthCheckKind::None,
            ..HealthCheckConfig::default()
        }
    );
    assert_eq!(
        vs.health_check,
        HealthCheckConfig::default_for(Protocol::Udp)
    );
}

#[test]
fn omitted_health_check_type_of_a_udp_service_is_none() {
    let text = cat(&[
        DPDK,
        EXT,
        &VS.replace("forward", "protocol = \"udp\"\nforward"),
        HC,
        "interval_ms = 500\n",
    ]);
    let hc = &ok(&text).virtual_servers[0].health_check;
    assert_eq!(hc.kind, HealthCheckKind::None);
    assert_eq!(hc.interval, Duration::from_millis(500));
}

#[test]
fn udp_service_may_ask_for_a_tcp_check() {
    let text = cat(&[
        DPDK,
        EXT,
        &VS.replace("forward", "protocol = \"udp\"\nforward"),
        HC,
        "type = \"tcp\"\n",
    ]);
    assert_eq!(
        ok(&text).virtual_servers[0].health_check.kind,
        HealthCheckKind::Tcp
    );
}

#[test]
fn omitted_health_check_type_of_a_tcp_service_is_tcp() {
    let hc = &ok(&vs_hc("rise = 1\n")).virtual_servers[0].health_check;
    assert_eq!(hc.kind, HealthCheckKind::Tcp);
    assert_eq!(
        HealthCheckConfig::default_for(Protocol::Tcp),
        HealthCheckConfig::default()
    );
}

#[test]
fn health_check_type_none_is_accepted() {
    let hc = &ok(&vs_hc("type = \"none\"\n")).virtual_servers[0].health_check;
    assert_eq!(hc.kind, HealthCheckKind::None);
}

#[test]
fn unknown_health_check_type_lists_the_accepted_values() {
    let text = vs_hc("type = \"ping\"\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.type",
        Some(line_of(&text, "type =")),
        "unknown value \"ping\": expected one of \"tcp\", \"http\", \"none\", \"udp\", \"dns\", \
         \"icmp\", \"script\"",
    );
}

#[test]
fn health_check_interval_must_be_at_least_1_ms() {
    let text = vs_hc("interval_ms = 0\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.interval_ms",
        Some(line_of(&text, "interval_ms")),
        "must be 1 to 3600000",
    );
}

#[test]
fn health_check_timeout_must_be_at_least_1_ms() {
    let text = vs_hc("timeout_ms = 0\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.timeout_ms",
        Some(line_of(&text, "timeout_ms")),
        "must be 1 to 3600000",
    );
}

#[test]
fn health_check_rise_must_be_at_least_1() {
    let text = vs_hc("rise = 0\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.rise",
        Some(line_of(&text, "rise")),
        "must be 1 to 1000",
    );
}

#[test]
fn health_check_fall_must_be_at_least_1() {
    let text = vs_hc("fall = -3\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.fall",
        Some(line_of(&text, "fall")),
        "must be 1 to 1000",
    );
}

#[test]
fn http_path_must_start_with_a_slash() {
    let text = vs_hc("type = \"http\"\nhttp_path = \"healthz\"\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.http_path",
        Some(line_of(&text, "http_path")),
        "must start with '/'",
    );
}

#[test]
fn http_path_must_not_contain_spaces_or_control_characters() {
    for bad in ["/a b", "/a\\r\\nHost: x", "/a\\t"] {
        let text = vs_hc(&format!("type = \"http\"\nhttp_path = \"{bad}\"\n"));
        assert_error(
            &one_error(&text),
            "virtual_server[0].health_check.http_path",
            Some(line_of(&text, "http_path")),
            "cannot go into an HTTP request line",
        );
    }
}

#[test]
fn http_fields_are_accepted_and_unused_with_other_types() {
    let text = vs_hc("type = \"tcp\"\nhttp_path = \"not checked\"\n");
    let hc = &ok(&text).virtual_servers[0].health_check;
    assert_eq!(hc.kind, HealthCheckKind::Tcp);
    assert_eq!(hc.http_path, "not checked");
}

#[test]
fn http_expect_status_must_be_100_to_599() {
    for bad in ["99", "600"] {
        let text = vs_hc(&format!("type = \"http\"\nhttp_expect_status = {bad}\n"));
        assert_error(
            &one_error(&text),
            "virtual_server[0].health_check.http_expect_status",
            Some(line_of(&text, "http_expect_status")),
            "must be 100 to 599",
        );
    }
    let text = vs_hc("type = \"http\"\nhttp_expect_status = 204\n");
    assert_eq!(
        ok(&text).virtual_servers[0].health_check.http_expect_status,
        204
    );
}

#[test]
fn unknown_key_in_health_check_is_an_error() {
    let text = vs_hc("path = \"/\"\n");
    assert_error(
        &one_error(&text),
        "virtual_server[0].health_check.path",
        Some(line_of(&text, "path =")),
        "unknown field `path`",
    );
}

// ------------------------------------------ [[virtual_server.real_server]]

#[test]
fn real_server_weight_defaults_to_1() {
    let c = ok(&cat(&[DPDK, EXT, INT, VS, RS]));
    assert_eq!(c.virtual_servers[0].real_servers[0].weight, 1);
    assert_eq!(RealServerConfig::DEFAULT_WEIGHT, 1);
}

#[test]
fn real_server_weight_0_drains_and_65535_is_the_most() {
    let c = ok(&cat(&[
        DPDK,
        EXT,
        INT,
        VS,
        RS,
        "weight = 0\n",
        &rs("10.1.0.12:8080"),
        "weight = 65535\n",
    ]));
    let weights: Vec<u32> = c.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.weight)
        .collect();
    assert_eq!(weights, [0, 65535]);
}

#[test]
fn real_server_weight_must_be_0_to_65535() {
    for bad in ["-1", "65536"] {
        let text = cat(&[DPDK, EXT, INT, VS, RS, "weight = ", bad, "\n"]);
        assert_error(
            &one_error(&text),
            "virtual_server[0].real_server[0].weight",
            Some(line_of(&text, "weight")),
            "must be 0 to 65535",
        );
    }
}

#[test]
fn real_server_address_is_required() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        VS,
        "[[virtual_server.real_server]]\nweight = 2\n",
    ]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "[[virtual_server.real_server]]")),
        "missing required field",
    );
}

#[test]
fn real_server_address_must_be_ipv4_and_port() {
    let text = cat(&[DPDK, EXT, INT, VS, &rs("10.1.0.11")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "10.1.0.11")),
        "expected IPv4:PORT like 10.1.0.11:8080",
    );
}

#[test]
fn real_server_port_must_not_be_zero() {
    let text = cat(&[DPDK, EXT, INT, VS, &rs("10.1.0.11:0")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "10.1.0.11")),
        "the port must not be 0",
    );
}

#[test]
fn real_server_must_not_be_unspecified_broadcast_or_multicast() {
    for (ip, what) in [
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("224.0.0.5", "multicast"),
    ] {
        let text = cat(&[DPDK, EXT, INT, VS, &rs(&format!("{ip}:8080"))]);
        assert_error(
            &one_error(&text),
            "virtual_server[0].real_server[0].address",
            Some(line_of(&text, ip)),
            what,
        );
    }
}

#[test]
fn real_server_must_not_be_the_balancers_own_address() {
    let text = cat(&[DPDK, EXT, INT, VS, &rs("10.1.0.1:8080")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "10.1.0.1:")),
        "own address on interface[1] \"int\"; the balancer cannot be its own real server",
    );
}

#[test]
fn duplicate_real_server_in_one_virtual_server_is_an_error() {
    let text = cat(&[DPDK, EXT, INT, VS, RS, RS]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[1].address",
        Some(last_line_of(&text, "10.1.0.11")),
        "duplicate real server 10.1.0.11:8080 (also virtual_server[0].real_server[0])",
    );
}

#[test]
fn same_real_server_in_two_virtual_servers_is_valid() {
    let second = VS.replace("\"web\"", "\"web2\"").replace(":80", ":81");
    let c = ok(&cat(&[DPDK, EXT, INT, VS, RS, &second, RS]));
    assert_eq!(
        c.virtual_servers[0].real_servers,
        c.virtual_servers[1].real_servers
    );
}

#[test]
fn real_server_errors_name_their_virtual_server_and_index() {
    let second = VS.replace("\"web\"", "\"web2\"").replace(":80", ":81");
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        VS,
        RS,
        &second,
        &rs("10.1.0.12:8080"),
        &rs("10.1.0.13:8080"),
        "weight = 70000\n",
    ]);
    let e = one_error(&text);
    assert_eq!(
        e.to_string(),
        format!(
            "line {}: virtual_server[1].real_server[1].weight: 70000 is out of range: must be 0 \
             to 65535",
            line_of(&text, "weight = 70000")
        )
    );
}

#[test]
fn nat_real_server_may_translate_the_port() {
    let c = ok(&cat(&[DPDK, EXT, INT, VS, RS]));
    assert_eq!(c.virtual_servers[0].real_servers[0].address.port(), 8080);
}

#[test]
fn dr_real_server_must_keep_the_virtual_port() {
    let text = cat(&[DPDK, EXT, INT, &vs_forward("dr"), RS]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "10.1.0.11:8080")),
        "forward = \"dr\" keeps the virtual port: the real server's port must be 80 (the \
         virtual server's), not 8080",
    );
    ok(&cat(&[
        DPDK,
        EXT,
        INT,
        &vs_forward("dr"),
        &rs("10.1.0.11:80"),
    ]));
}

#[test]
fn tun_real_server_must_keep_the_virtual_port() {
    let text = cat(&[DPDK, EXT, INT, &vs_forward("tun"), RS]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "10.1.0.11:8080")),
        "forward = \"tun\" keeps the virtual port",
    );
}

#[test]
fn dr_real_server_must_be_on_a_connected_subnet() {
    // Even when a route covers it: DR only changes the MAC.
    let text = cat(&[DPDK, EXT, INT, ROUTE, &vs_forward("dr"), &rs("10.9.0.5:80")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "10.9.0.5")),
        "forward = \"dr\" only changes the MAC, so the real server must be on a connected \
         subnet; 10.9.0.5 is not (connected: 10.0.0.0/24, 10.1.0.0/24)",
    );
}

#[test]
fn nat_real_server_must_be_connected_or_routed() {
    let text = cat(&[DPDK, EXT, INT, VS, &rs("10.9.0.5:8080")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "10.9.0.5")),
        "real server 10.9.0.5 is unreachable: not in a connected subnet (connected: \
         10.0.0.0/24, 10.1.0.0/24) and no [[route]] covers it",
    );
}

#[test]
fn nat_real_server_covered_by_a_route_is_valid() {
    ok(&cat(&[DPDK, EXT, INT, ROUTE, VS, &rs("10.9.0.5:8080")]));
}

#[test]
fn tun_real_server_must_be_connected_or_routed() {
    let text = cat(&[DPDK, EXT, INT, &vs_forward("tun"), &rs("192.0.2.9:80")]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].address",
        Some(line_of(&text, "192.0.2.9")),
        "unreachable",
    );
}

#[test]
fn tun_real_server_behind_the_default_route_is_valid() {
    let default = "[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"\ninterface = \"ext\"\n";
    ok(&cat(&[
        DPDK,
        EXT,
        INT,
        default,
        &vs_forward("tun"),
        &rs("192.0.2.9:80"),
    ]));
}

#[test]
fn reachability_is_not_checked_when_a_route_is_broken() {
    let broken = ROUTE.replace("10.9.0.0/16", "10.9.0.0/99");
    let errors = errors(&cat(&[DPDK, EXT, INT, &broken, VS, &rs("10.9.0.5:8080")]));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "route[0].prefix");
}

#[test]
fn reachability_is_not_checked_when_an_interface_address_is_broken() {
    let int = INT.replace("10.1.0.1/24", "10.1.0.1/99");
    let errors = errors(&cat(&[
        DPDK,
        EXT,
        &int,
        &vs_forward("dr"),
        &rs("10.1.0.11:80"),
    ]));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field, "interface[1].addresses[0]");
}

#[test]
fn unknown_key_in_real_server_is_an_error() {
    let text = cat(&[DPDK, EXT, INT, VS, RS, "wieght = 3\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].real_server[0].wieght",
        Some(line_of(&text, "wieght")),
        "unknown field `wieght`",
    );
}

#[test]
fn every_virtual_server_error_is_reported_not_just_the_first() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        "[[virtual_server]]\nname = \"\"\naddress = \"10.0.0.1:80\"\nforward = \"masq\"\n",
        HC,
        "rise = 0\n",
        &rs("10.1.0.11:0"),
    ]);
    let fields: Vec<String> = errors(&text).into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "virtual_server[0].name",
            "virtual_server[0].address",
            "virtual_server[0].forward",
            "virtual_server[0].health_check.rise",
            "virtual_server[0].real_server[0].address",
        ]
    );
}

// ------------------------------- syn_proxy

#[test]
fn syn_proxy_defaults_to_off() {
    assert!(!ok(&cat(&[DPDK, EXT, VS])).virtual_servers[0].syn_proxy);
    const { assert!(!VirtualServerConfig::DEFAULT_SYN_PROXY) };
}

#[test]
fn syn_proxy_may_be_turned_on_for_nat() {
    let text = cat(&[DPDK, EXT, VS, "syn_proxy = true\n"]);
    assert!(ok(&text).virtual_servers[0].syn_proxy);
}

#[test]
fn syn_proxy_is_refused_for_dr_and_tun_saying_why() {
    for forward in ["dr", "tun"] {
        let text = cat(&[DPDK, EXT, &vs_forward(forward), "syn_proxy = true\n"]);
        let e = one_error(&text);
        assert_error(
            &e,
            "virtual_server[0].syn_proxy",
            Some(line_of(&text, "syn_proxy")),
            "a SYN proxy needs forward = \"nat\"",
        );
        assert!(e.message.contains("bypass"), "{}", e.message);
    }
}

#[test]
fn syn_proxy_is_refused_for_udp() {
    let text = cat(&[DPDK, EXT, VS, "protocol = \"udp\"\nsyn_proxy = true\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].syn_proxy",
        Some(line_of(&text, "syn_proxy")),
        "UDP has no handshake",
    );
}

#[test]
fn syn_proxy_off_is_accepted_for_dr() {
    let text = cat(&[DPDK, EXT, &vs_forward("dr"), "syn_proxy = false\n"]);
    assert!(!ok(&text).virtual_servers[0].syn_proxy);
}

// ------------------------------- expire_nodest_conn and sorry_server

#[test]
fn expire_nodest_conn_defaults_to_true() {
    let vs = &ok(&cat(&[DPDK, EXT, VS])).virtual_servers[0];
    assert!(vs.expire_nodest_conn);
    const { assert!(VirtualServerConfig::DEFAULT_EXPIRE_NODEST_CONN) };
}

#[test]
fn expire_nodest_conn_may_be_turned_off() {
    let text = cat(&[DPDK, EXT, VS, "expire_nodest_conn = false\n"]);
    assert!(!ok(&text).virtual_servers[0].expire_nodest_conn);
}

#[test]
fn expire_nodest_conn_must_be_a_boolean() {
    let text = cat(&[DPDK, EXT, VS, "expire_nodest_conn = \"yes\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].expire_nodest_conn",
        Some(line_of(&text, "expire_nodest_conn")),
        "expected a boolean",
    );
}

#[test]
fn sorry_server_defaults_to_none() {
    assert_eq!(
        ok(&cat(&[DPDK, EXT, VS])).virtual_servers[0].sorry_server,
        None
    );
}

#[test]
fn sorry_server_is_parsed() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        VS,
        "sorry_server = \"10.1.0.99:8080\"\n",
        RS,
    ]);
    let vs = &ok(&text).virtual_servers[0];
    assert_eq!(
        vs.sorry_server,
        Some(SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 99), 8080).into())
    );
    assert_eq!(vs.real_servers.len(), 1);
}

#[test]
fn sorry_server_must_be_ipv4_and_port() {
    let text = cat(&[DPDK, EXT, INT, VS, "sorry_server = \"10.1.0.99\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "expected IPv4:PORT like 10.1.0.99:8080",
    );
}

#[test]
fn sorry_server_port_must_not_be_zero() {
    let text = cat(&[DPDK, EXT, INT, VS, "sorry_server = \"10.1.0.99:0\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "the port must not be 0",
    );
}

#[test]
fn sorry_server_must_not_be_multicast() {
    let text = cat(&[DPDK, EXT, INT, VS, "sorry_server = \"224.0.0.5:80\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "multicast",
    );
}

#[test]
fn sorry_server_must_not_be_the_balancers_own_address() {
    let text = cat(&[DPDK, EXT, INT, VS, "sorry_server = \"10.1.0.1:8080\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "own address on interface[1] \"int\"; the balancer cannot be its own sorry server",
    );
}

#[test]
fn dr_sorry_server_must_keep_the_virtual_port() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        &vs_forward("dr"),
        "sorry_server = \"10.1.0.99:8080\"\n",
    ]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "forward = \"dr\" keeps the virtual port: the sorry server's port must be 80",
    );
    ok(&cat(&[
        DPDK,
        EXT,
        INT,
        &vs_forward("dr"),
        "sorry_server = \"10.1.0.99:80\"\n",
    ]));
}

#[test]
fn tun_sorry_server_must_keep_the_virtual_port() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        &vs_forward("tun"),
        "sorry_server = \"10.1.0.99:8080\"\n",
    ]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "forward = \"tun\" keeps the virtual port",
    );
}

#[test]
fn nat_sorry_server_must_be_connected_or_routed() {
    let text = cat(&[DPDK, EXT, INT, VS, "sorry_server = \"10.9.0.5:8080\"\n"]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "sorry server 10.9.0.5 is unreachable",
    );
    ok(&cat(&[
        DPDK,
        EXT,
        INT,
        ROUTE,
        VS,
        "sorry_server = \"10.9.0.5:8080\"\n",
    ]));
}

#[test]
fn dr_sorry_server_must_be_on_a_connected_subnet() {
    let text = cat(&[
        DPDK,
        EXT,
        INT,
        ROUTE,
        &vs_forward("dr"),
        "sorry_server = \"10.9.0.5:80\"\n",
    ]);
    assert_error(
        &one_error(&text),
        "virtual_server[0].sorry_server",
        Some(line_of(&text, "sorry_server")),
        "forward = \"dr\" only changes the MAC",
    );
}

// ------------------------------------------------------------------ [ha]

/// The required keys of `[ha]`, appended after `EXT` and `INT`.
const HA: &str =
    "[ha]\nnode_id = 1\nsync_listen = \"192.168.100.1:8848\"\nsync_peer = \"192.168.100.2:8848\"\n";

/// A file with `[ha]` holding `HA`'s keys and `extra` lines.
fn ha_file(extra: &str) -> String {
    cat(&[DPDK, EXT, INT, HA, extra])
}

/// A file whose `[ha]` is `keys` alone.
fn ha_only(keys: &str) -> String {
    cat(&[DPDK, EXT, INT, "[ha]\n", keys])
}

#[test]
fn absent_ha_section_is_standalone() {
    assert_eq!(ok(&cat(&[DPDK, EXT])).ha, None);
    assert_eq!(ok(FULL).ha, None);
}

#[test]
fn full_ha_section_parses_to_typed_values() {
    let c = ok(&ha_file(
        "initial_state = \"master\"\nfloating_addresses = [\"10.1.0.1/24\"]\ngarp_count = 3\n\
         garp_interval_ms = 500\nsync_interval_ms = 20\n",
    ));
    let ha = c.ha.unwrap();
    assert_eq!(
        ha,
        HaConfig {
            node_id: 1,
            initial_state: HaState::Master,
            sync_listen: "192.168.100.1:8848".parse().unwrap(),
            sync_peer: "192.168.100.2:8848".parse().unwrap(),
            floating_addresses: vec!["10.1.0.1/24".parse().unwrap()],
            garp_count: 3,
            garp_interval: Duration::from_millis(500),
            sync_interval: Duration::from_millis(20),
            sync_key_file: None,
            sync_key: None,
        }
    );
    assert!(ha.starts_as_master());
    assert_eq!(ha.floating_ips(), [Ipv4Addr::new(10, 1, 0, 1)]);
}

/// A key file of `content` and `mode` in a fresh directory.
fn sync_key_file(name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("rvs-cfg-key-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("sync.key");
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn ha_sync_key_file_loads_a_private_key() {
    let p = sync_key_file("ok", b"00112233445566778899aabbccddeeff\n", 0o600);
    let ha = ok(&ha_file(&format!("sync_key_file = \"{}\"\n", p.display())))
        .ha
        .unwrap();
    assert_eq!(ha.sync_key_file.as_deref(), Some(p.as_path()));
    assert_eq!(
        ha.sync_key,
        crate::ha::key::SyncKey::new(b"00112233445566778899aabbccddeeff")
    );
}

#[test]
fn ha_sync_key_file_readable_by_others_is_an_error_naming_the_field() {
    let p = sync_key_file("open", b"00112233445566778899aabbccddeeff", 0o644);
    let e = errors(&ha_file(&format!("sync_key_file = \"{}\"\n", p.display())));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "ha.sync_key_file");
    assert!(e[0].message.contains("chmod 600"), "{}", e[0]);
}

#[test]
fn ha_sync_key_file_missing_or_short_is_an_error() {
    let e = errors(&ha_file("sync_key_file = \"/nonexistent/rvs.key\"\n"));
    assert_eq!(e[0].field, "ha.sync_key_file");
    let p = sync_key_file("short", b"short", 0o600);
    let e = errors(&ha_file(&format!("sync_key_file = \"{}\"\n", p.display())));
    assert_eq!(e[0].field, "ha.sync_key_file");
    assert!(e[0].message.contains("shorter than 16"), "{}", e[0]);
}

#[test]
fn omitted_ha_keys_take_their_defaults() {
    let ha = ok(&ha_file("")).ha.unwrap();
    assert_eq!(ha.initial_state, HaState::Backup);
    assert_eq!(ha.initial_state, HaConfig::DEFAULT_INITIAL_STATE);
    assert!(!ha.starts_as_master());
    assert!(ha.floating_addresses.is_empty());
    assert_eq!(ha.garp_count, 5);
    assert_eq!(ha.garp_interval, Duration::from_millis(200));
    assert_eq!(ha.sync_interval, Duration::from_millis(5));
}

#[test]
fn ha_state_names_round_trip() {
    for state in HaState::ALL {
        assert_eq!(state.name().parse::<HaState>(), Ok(state));
        assert_eq!(state.to_string(), state.name());
    }
}

#[test]
fn ha_without_node_id_is_an_error() {
    let text =
        ha_only("sync_listen = \"192.168.100.1:8848\"\nsync_peer = \"192.168.100.2:8848\"\n");
    assert_error(
        &one_error(&text),
        "ha.node_id",
        Some(line_of(&text, "[ha]")),
        "missing required field",
    );
}

#[test]
fn ha_node_id_zero_is_an_error() {
    let text = ha_only(
        "node_id = 0\nsync_listen = \"192.168.100.1:8848\"\nsync_peer = \"192.168.100.2:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.node_id",
        Some(line_of(&text, "node_id")),
        "0 is out of range: must be 1 to 4294967295",
    );
}

#[test]
fn ha_node_id_above_u32_is_an_error() {
    let text = ha_only(
        "node_id = 4294967296\nsync_listen = \"192.168.100.1:8848\"\n\
         sync_peer = \"192.168.100.2:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.node_id",
        Some(line_of(&text, "node_id")),
        "out of range",
    );
}

#[test]
fn ha_unknown_initial_state_lists_the_accepted_values() {
    let text = ha_file("initial_state = \"active\"\n");
    assert_error(
        &one_error(&text),
        "ha.initial_state",
        Some(line_of(&text, "initial_state")),
        "unknown value \"active\": expected one of \"backup\", \"master\"",
    );
}

#[test]
fn ha_without_sync_addresses_is_an_error() {
    let text = ha_only("node_id = 1\n");
    let errors = errors(&text);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["ha.sync_listen", "ha.sync_peer"]);
    for e in &errors {
        assert_error(
            e,
            &e.field,
            Some(line_of(&text, "[ha]")),
            "missing required field",
        );
    }
}

#[test]
fn ha_unparsable_sync_listen_is_an_error() {
    let text = ha_only(
        "node_id = 1\nsync_listen = \"192.168.100.1\"\nsync_peer = \"192.168.100.2:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.sync_listen",
        Some(line_of(&text, "sync_listen")),
        "invalid address \"192.168.100.1\": expected IPv4:PORT like 192.168.100.1:8848",
    );
}

#[test]
fn ha_ipv6_sync_peer_is_an_error() {
    let text =
        ha_only("node_id = 1\nsync_listen = \"192.168.100.1:8848\"\nsync_peer = \"[::1]:8848\"\n");
    assert_error(
        &one_error(&text),
        "ha.sync_peer",
        Some(line_of(&text, "sync_peer")),
        "expected IPv4:PORT",
    );
}

#[test]
fn ha_sync_port_zero_is_an_error() {
    let text = ha_only(
        "node_id = 1\nsync_listen = \"192.168.100.1:0\"\nsync_peer = \"192.168.100.2:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.sync_listen",
        Some(line_of(&text, "sync_listen")),
        "the port must not be 0",
    );
}

#[test]
fn ha_unspecified_sync_listen_is_an_error() {
    let text = ha_only(
        "node_id = 1\nsync_listen = \"0.0.0.0:8848\"\nsync_peer = \"192.168.100.2:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.sync_listen",
        Some(line_of(&text, "sync_listen")),
        "0.0.0.0 is not a unicast address",
    );
}

#[test]
fn ha_broadcast_sync_peer_is_an_error() {
    let text = ha_only(
        "node_id = 1\nsync_listen = \"192.168.100.1:8848\"\nsync_peer = \"255.255.255.255:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.sync_peer",
        Some(line_of(&text, "sync_peer")),
        "255.255.255.255 is not a unicast address",
    );
}

#[test]
fn ha_multicast_sync_peer_is_an_error() {
    let text = ha_only(
        "node_id = 1\nsync_listen = \"192.168.100.1:8848\"\nsync_peer = \"224.0.0.81:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.sync_peer",
        Some(line_of(&text, "sync_peer")),
        "a multicast address is not a unicast address",
    );
}

#[test]
fn ha_sync_peer_equal_to_sync_listen_is_an_error() {
    let text = ha_only(
        "node_id = 1\nsync_listen = \"192.168.100.1:8848\"\nsync_peer = \"192.168.100.1:8848\"\n",
    );
    assert_error(
        &one_error(&text),
        "ha.sync_peer",
        Some(line_of(&text, "sync_peer")),
        "192.168.100.1:8848 is also ha.sync_listen",
    );
}

#[test]
fn ha_sync_on_one_host_with_two_ports_is_valid() {
    let text =
        ha_only("node_id = 2\nsync_listen = \"127.0.0.1:8849\"\nsync_peer = \"127.0.0.1:8848\"\n");
    let ha = ok(&text).ha.unwrap();
    assert_eq!(ha.sync_listen.port(), 8849);
    assert_eq!(ha.sync_peer.port(), 8848);
}

#[test]
fn ha_floating_address_not_on_any_interface_is_an_error() {
    let text = ha_file("floating_addresses = [\"10.1.0.1/24\", \"10.1.0.254/24\"]\n");
    assert_error(
        &one_error(&text),
        "ha.floating_addresses[1]",
        Some(line_of(&text, "floating_addresses")),
        "10.1.0.254/24 is not one of the [[interface]] addresses (interface addresses: \
         10.0.0.1/24, 10.1.0.1/24)",
    );
}

#[test]
fn ha_floating_address_with_another_prefix_is_an_error() {
    let text = ha_file("floating_addresses = [\"10.1.0.1/16\"]\n");
    assert_error(
        &one_error(&text),
        "ha.floating_addresses[0]",
        Some(line_of(&text, "floating_addresses")),
        "10.1.0.1/16 differs from the address of interface[1] \"int\" (10.1.0.1/24)",
    );
}

#[test]
fn ha_duplicate_floating_address_is_an_error() {
    let text = ha_file("floating_addresses = [\"10.1.0.1/24\", \"10.1.0.1/24\"]\n");
    assert_error(
        &one_error(&text),
        "ha.floating_addresses[1]",
        Some(line_of(&text, "floating_addresses")),
        "duplicate floating address 10.1.0.1/24 (also ha.floating_addresses[0])",
    );
}

#[test]
fn ha_unparsable_floating_address_is_an_error() {
    let text = ha_file("floating_addresses = [\"10.1.0.1\"]\n");
    assert_error(
        &one_error(&text),
        "ha.floating_addresses[0]",
        Some(line_of(&text, "floating_addresses")),
        "invalid IPv4 prefix \"10.1.0.1\": expected ADDRESS/LEN",
    );
}

#[test]
fn ha_floating_addresses_not_an_array_is_an_error() {
    let text = ha_file("floating_addresses = \"10.1.0.1/24\"\n");
    assert_error(
        &one_error(&text),
        "ha.floating_addresses",
        Some(line_of(&text, "floating_addresses")),
        "an array",
    );
}

#[test]
fn ha_garp_count_out_of_range_is_an_error() {
    for n in [0, 101] {
        let text = ha_file(&format!("garp_count = {n}\n"));
        assert_error(
            &one_error(&text),
            "ha.garp_count",
            Some(line_of(&text, "garp_count")),
            &format!("{n} is out of range: must be 1 to 100"),
        );
    }
    assert_eq!(ok(&ha_file("garp_count = 1\n")).ha.unwrap().garp_count, 1);
    assert_eq!(
        ok(&ha_file("garp_count = 100\n")).ha.unwrap().garp_count,
        100
    );
}

#[test]
fn ha_garp_interval_out_of_range_is_an_error() {
    for n in [9, 10_001] {
        let text = ha_file(&format!("garp_interval_ms = {n}\n"));
        assert_error(
            &one_error(&text),
            "ha.garp_interval_ms",
            Some(line_of(&text, "garp_interval_ms")),
            &format!("{n} is out of range: must be 10 to 10000"),
        );
    }
    let ha = ok(&ha_file("garp_interval_ms = 10\n")).ha.unwrap();
    assert_eq!(ha.garp_interval, Duration::from_millis(10));
}

#[test]
fn ha_sync_interval_out_of_range_is_an_error() {
    for n in [0, 1001] {
        let text = ha_file(&format!("sync_interval_ms = {n}\n"));
        assert_error(
            &one_error(&text),
            "ha.sync_interval_ms",
            Some(line_of(&text, "sync_interval_ms")),
            &format!("{n} is out of range: must be 1 to 1000"),
        );
    }
    let ha = ok(&ha_file("sync_interval_ms = 1000\n")).ha.unwrap();
    assert_eq!(ha.sync_interval, Duration::from_secs(1));
}

#[test]
fn unknown_key_in_ha_is_an_error() {
    let text = ha_file("sync_peers = \"192.168.100.3:8848\"\n");
    assert_error(
        &one_error(&text),
        "ha.sync_peers",
        Some(line_of(&text, "sync_peers")),
        "unknown field `sync_peers`",
    );
}

#[test]
fn every_ha_error_is_reported_not_just_the_first() {
    let text = ha_only(
        "node_id = 0\ninitial_state = \"primary\"\nsync_listen = \"192.168.100.1:8848\"\n\
         sync_peer = \"192.168.100.1:8848\"\nfloating_addresses = [\"10.9.0.1/24\"]\n\
         garp_count = 0\ngarp_interval_ms = 0\nsync_interval_ms = 0\n",
    );
    let fields: Vec<String> = errors(&text).into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "ha.node_id",
            "ha.initial_state",
            "ha.sync_peer",
            "ha.floating_addresses[0]",
            "ha.garp_count",
            "ha.garp_interval_ms",
            "ha.sync_interval_ms",
        ]
    );
}

#[test]
fn ha_floating_address_check_is_skipped_when_an_interface_address_is_broken() {
    let text = cat(&[
        DPDK,
        "[[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\n\
         addresses = [\"10.0.0.1\"]\n",
        HA,
        "floating_addresses = [\"10.0.0.1/24\"]\n",
    ]);
    assert_error(
        &one_error(&text),
        "interface[0].addresses[0]",
        Some(line_of(&text, "addresses")),
        "invalid IPv4 prefix",
    );
}

#[test]
fn nat_example_ha_section_validates_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dpdk-config/nat.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("# [ha]\n")
        .expect("nat.toml has a commented-out [ha]");
    let mut uncommented = text[..start].to_string();
    for line in text[start..].lines() {
        let Some(line) = line.strip_prefix("# ") else {
            break;
        };
        uncommented.push_str(line);
        uncommented.push('\n');
    }
    let ha = ok(&uncommented).ha.expect("[ha] uncommented");
    assert_eq!(ha.node_id, 1);
    assert_eq!(ha.initial_state, HaState::Backup);
    assert_eq!(ha.sync_listen.port(), HaConfig::CUSTOMARY_SYNC_PORT);
    assert_eq!(ha.floating_ips(), [Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(ha.garp_count, HaConfig::DEFAULT_GARP_COUNT);
}

#[test]
fn a_worker_on_the_main_lcore_is_refused_naming_it() {
    let dpdk = ok(&cat(&[DPDK, EXT])).dpdk;
    let e = dpdk.check_lcores(1, |_| true).unwrap_err();
    assert_eq!(
        e,
        "dpdk.workers: lcore 1 is the EAL's main lcore, which runs the control thread"
    );
}

#[test]
fn a_worker_on_an_lcore_the_eal_did_not_enable_is_refused() {
    let dpdk = ok(&cat(&[DPDK, EXT])).dpdk;
    let e = dpdk.check_lcores(0, |l| l != 1).unwrap_err();
    assert!(e.starts_with("dpdk.workers: lcore 1 is not enabled"), "{e}");
    assert_eq!(dpdk.check_lcores(0, |_| true), Ok(()));
}

// The keys of tls and https checks.
mod tls_keys;
