//! The device behind an interface: a PCI function or a DPDK virtual device.
//!
//! rvsd hands each interface's device to the EAL itself (`-a` for PCI,
//! `--vdev` for a virtual device) and finds the port again by its ethdev
//! name, so both forms are reduced here to one canonical name: the PCI
//! address in its full lowercase form (`0000:03:00.0`, as DPDK names the
//! port) or the virtual device's name (the spec up to the first comma).

use std::fmt;
use std::str::FromStr;

/// Where an interface's packets come from and go to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// A PCI function bound to a DPDK-compatible driver, normalised to
    /// `DDDD:BB:DD.F` with lowercase hex digits.
    Pci(String),
    /// A DPDK virtual device, such as `net_af_packet0,iface=veth1` or
    /// `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`.
    Vdev {
        /// The whole spec as written, given to the EAL's `--vdev`.
        spec: String,
        /// The spec up to its first comma (`net_pcap0`): the ethdev name
        /// DPDK gives the port.
        name: String,
    },
}

impl Device {
    /// The name DPDK gives the port (`rte_eth_dev_get_port_by_name`): the
    /// normalised PCI address or the vdev name. Two interfaces may not
    /// share it.
    pub fn port_name(&self) -> &str {
        match self {
            Device::Pci(addr) => addr,
            Device::Vdev { name, .. } => name,
        }
    }

    /// The EAL arguments that make DPDK probe this device.
    pub fn eal_args(&self) -> [&str; 2] {
        match self {
            Device::Pci(addr) => ["-a", addr],
            Device::Vdev { spec, .. } => ["--vdev", spec],
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Pci(addr) => f.write_str(addr),
            Device::Vdev { spec, .. } => f.write_str(spec),
        }
    }
}

/// Why a string names no device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDeviceError(String);

impl fmt::Display for ParseDeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDeviceError {}

/// The prefix of every DPDK network virtual device driver.
const VDEV_PREFIX: &str = "net_";

impl FromStr for Device {
    type Err = ParseDeviceError;

    /// Accepts `DDDD:BB:DD.F` or `BB:DD.F` (hex, any case), or a vdev spec
    /// `net_NAME[,key=value...]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with(VDEV_PREFIX) {
            let name = s.split(',').next().unwrap_or_default();
            let valid = name.len() > VDEV_PREFIX.len()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(ParseDeviceError(format!(
                    "invalid virtual device name {name:?}: expected net_DRIVER followed by an \
                     instance, like net_pcap0 (letters, digits and _ only)"
                )));
            }
            if s.chars().any(char::is_whitespace) {
                return Err(ParseDeviceError(format!(
                    "invalid virtual device spec {s:?}: it may not contain whitespace"
                )));
            }
            return Ok(Device::Vdev {
                spec: s.to_string(),
                name: name.to_string(),
            });
        }
        normalize_pci(s).map(Device::Pci).ok_or_else(|| {
            ParseDeviceError(format!(
                "invalid device {s:?}: expected a PCI address like 0000:03:00.0 or 03:00.0, \
                 or a DPDK virtual device spec like net_af_packet0,iface=veth1"
            ))
        })
    }
}

/// The canonical `dddd:bb:dd.f` form of a PCI address written as
/// `DDDD:BB:DD.F` or `BB:DD.F`; None when `s` is not one (including a
/// device above 0x1f or a function above 7, which PCI does not have).
pub fn normalize_pci(s: &str) -> Option<String> {
    fn hex(part: &str, digits: usize) -> Option<u32> {
        (part.len() == digits && part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(part, 16).ok())
            .flatten()
    }
    let (rest, function) = s.rsplit_once('.')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, device) = match parts.as_slice() {
        [bus, device] => (0, hex(bus, 2)?, hex(device, 2)?),
        [domain, bus, device] => (hex(domain, 4)?, hex(bus, 2)?, hex(device, 2)?),
        _ => return None,
    };
    let function = hex(function, 1)?;
    if device > 0x1f || function > 7 {
        return None;
    }
    Some(format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pci(s: &str) -> Device {
        Device::Pci(s.to_string())
    }

    #[test]
    fn full_pci_address_is_kept() {
        assert_eq!("0000:03:00.0".parse(), Ok(pci("0000:03:00.0")));
    }

    #[test]
    fn pci_address_is_lowercased() {
        assert_eq!("0000:AF:1F.7".parse(), Ok(pci("0000:af:1f.7")));
    }

    #[test]
    fn short_pci_address_gets_domain_zero() {
        assert_eq!("03:00.1".parse(), Ok(pci("0000:03:00.1")));
    }

    #[test]
    fn pci_address_out_of_pci_ranges_is_refused() {
        for bad in [
            "0000:03:20.0",
            "0000:03:00.8",
            "03:0.0",
            "0:03:00.0",
            "0000:03:00",
            "0000:03:00.0.1",
            "g0:00.0",
            "+3:00.0",
            "",
        ] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vdev_name_is_the_spec_up_to_the_first_comma() {
        let d: Device = "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
            .parse()
            .unwrap();
        assert_eq!(
            d,
            Device::Vdev {
                spec: "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap".into(),
                name: "net_pcap0".into()
            }
        );
        assert_eq!(d.port_name(), "net_pcap0");
    }

    #[test]
    fn vdev_without_arguments_is_its_own_name() {
        let d: Device = "net_ring0".parse().unwrap();
        assert_eq!(d.port_name(), "net_ring0");
    }

    #[test]
    fn vdev_without_a_driver_name_is_refused() {
        for bad in [
            "net_",
            "net_,iface=x",
            "net_a b",
            "net_a-b",
            "net_x,iface=a b",
        ] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
    }

    #[test]
    fn other_names_are_refused() {
        for bad in ["eth0", "veth1", "af_packet0", "NET_pcap0"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
    }

    #[test]
    fn eal_args_probe_the_device() {
        assert_eq!(pci("0000:03:00.0").eal_args(), ["-a", "0000:03:00.0"]);
        let v: Device = "net_af_packet0,iface=veth1".parse().unwrap();
        assert_eq!(v.eal_args(), ["--vdev", "net_af_packet0,iface=veth1"]);
    }
}
