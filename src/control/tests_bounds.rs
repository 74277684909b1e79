//! The configuration's bounds, one behaviour per test: what the workers'
//! fixed-width indexes, the kernel's socket addresses and the data path
//! cannot take is refused at validation, naming the field.

use super::*;

const DPDK: &str = "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n";
const EXT: &str = "[[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\naddresses = [\"10.0.0.1/24\"]\n";
const INT: &str = "[[interface]]\nname = \"int\"\ndevice = \"net_pcap1,rx_pcap=in1.pcap\"\naddresses = [\"10.1.0.1/24\"]\n";
const VS: &str =
    "[[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\nforward = \"nat\"\n";

fn errors(text: &str) -> Vec<ConfigError> {
    match Config::from_toml_str(text) {
        Ok(_) => panic!("expected errors"),
        Err(ConfigErrors(errors)) => errors,
    }
}

/// `n` real servers on the `int` subnet (10.1.0.0/24 and beyond: the
/// addresses need not be reachable for the count to be refused first).
fn servers(n: usize) -> String {
    let mut s = String::with_capacity(n * 40);
    for i in 0..n {
        s.push_str(&format!(
            "[[virtual_server.real_server]]\naddress = \"10.1.{}.{}:{}\"\n",
            (i >> 8) & 0xff,
            i & 0xff,
            1 + (i >> 16)
        ));
    }
    s
}

#[test]
fn a_real_server_on_loopback_is_refused() {
    let text = [
        DPDK,
        EXT,
        INT,
        VS,
        "[[virtual_server.real_server]]\naddress = \"127.0.0.1:8080\"\n",
    ]
    .concat();
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "virtual_server[0].real_server[0].address");
    assert!(e[0].message.contains("loopback"), "{}", e[0]);
}

#[test]
fn a_real_server_anywhere_in_127_0_0_0_8_is_refused() {
    let text = [
        DPDK,
        EXT,
        INT,
        VS,
        "[[virtual_server.real_server]]\naddress = \"127.45.6.7:8080\"\n",
    ]
    .concat();
    assert!(errors(&text)[0].message.contains("127.0.0.0/8"));
}

#[test]
fn a_control_socket_path_longer_than_sun_path_is_refused() {
    let long = format!("/run/{}.sock", "r".repeat(100));
    let text = [DPDK, EXT, &format!("[control]\nsocket = \"{long}\"\n")].concat();
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "control.socket");
    assert!(e[0].message.contains("at most 107"), "{}", e[0]);
    assert_eq!(e[0].line, Some(9));
}

#[test]
fn a_control_socket_path_of_107_bytes_is_valid() {
    let path = format!("/{}", "r".repeat(106));
    let text = [DPDK, EXT, &format!("[control]\nsocket = \"{path}\"\n")].concat();
    let c = Config::from_toml_str(&text).unwrap();
    assert_eq!(c.control.socket.as_os_str().len(), 107);
}

#[test]
fn more_real_servers_than_a_16_bit_index_names_are_refused_with_the_limit() {
    let n = VirtualServerConfig::MAX_REAL_SERVERS + 2;
    let text = [DPDK, EXT, INT, VS, &servers(n)].concat();
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{:?}", &e[..e.len().min(3)]);
    assert_eq!(e[0].field, "virtual_server[0].real_server[65535]");
    assert!(e[0].message.contains("65537 real servers"), "{}", e[0]);
    assert!(e[0].message.contains("at most 65535"), "{}", e[0]);
}

#[test]
fn a_key_without_a_value_still_says_what_is_wrong() {
    let text = [DPDK, EXT, "[dataplane]\nburst_size =\n"].concat();
    let e = errors(&text);
    assert_eq!(e[0].field, "dataplane.burst_size");
    assert!(!e[0].message.is_empty());
}
