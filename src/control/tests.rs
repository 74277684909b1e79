//! The configuration rules, one behaviour per test: each bad file names the
//! field path (and line) an operator has to fix.

use std::net::{Ipv4Addr, SocketAddr};
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
    let text = cat(&[DPDK, EXT, "[timeouts]\nudp_s = 300\n"]);
    let e = one_error(&text);
    assert_error(
        &e,
        "timeouts",
        Some(line_of(&text, "[timeouts]")),
        "unknown field `timeouts`",
    );
}

#[test]
fn virtual_servers_are_not_accepted_yet() {
    let text = cat(&[DPDK, EXT, "[[virtual_server]]\nname = \"web\"\n"]);
    let e = one_error(&text);
    assert_error(
        &e,
        "virtual_server[0]",
        Some(line_of(&text, "[[virtual_server]]")),
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
