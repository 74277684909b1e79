//! What the tests of the validation parts share: the top of a file with
//! one NAT virtual server `web`, and the one error a refused file has.

use crate::control::config::Config;

/// A file's top up to its NAT virtual server `web` on 10.0.0.100:80,
/// whose keys and real servers a test appends.
pub(super) const HEAD: &str = "[dpdk]\nworkers = [1]\n\
    [[interface]]\nname = \"ext\"\ndevice = \"net_pcap0,rx_pcap=in.pcap\"\n\
    addresses = [\"10.0.0.1/24\"]\n\
    [[virtual_server]]\nname = \"web\"\naddress = \"10.0.0.100:80\"\nforward = \"nat\"\n";

/// The field and message of the one error `text` is refused with.
pub(super) fn the_error(text: &str) -> (String, String) {
    let e = Config::from_toml_str(text).expect_err("should be refused");
    assert_eq!(e.0.len(), 1, "{e}");
    (e.0[0].field.clone(), e.0[0].message.clone())
}
