//! Ethernet ports: lookup, configuration with one queue pair per worker,
//! RSS on the client's address (see `net::rss`), start, stop and close.

use super::ring::{RingConsumer, RingInner, RingProducer};
use super::{eal::Eal, ffi, mempool::Mempool, DpdkError};
use crate::net::rss::{ClientSide, RssModel, KEY_LEN};
use crate::wire::MacAddr;
use std::ffi::CString;
use std::fmt;
use std::sync::Arc;

/// Receive and transmit ring sizes asked for (the driver may adjust them).
const RX_DESCRIPTORS: u16 = 1024;
const TX_DESCRIPTORS: u16 = 1024;

/// How a port's queues are spread over workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssMode {
    /// One queue: nothing to spread.
    SingleQueue,
    /// The NIC hashes the IPv4 source (an outside port) with the model's
    /// key and RETA: queue = the client's owner.
    ClientSource,
    /// The NIC hashes the IPv4 destination (an inside port, where NAT
    /// replies arrive) with the model's key and RETA.
    ClientDestination,
    /// Several queues, but the NIC cannot be told to pick the owner's: the
    /// workers find the owner in software and hand packets over through
    /// the redirect rings. The device still spreads by its own hash when
    /// it has one, which shares that work out.
    Unsupported(RssUnsupported),
}

impl RssMode {
    fn for_side(side: ClientSide) -> RssMode {
        match side {
            ClientSide::Source => RssMode::ClientSource,
            ClientSide::Destination => RssMode::ClientDestination,
        }
    }
}

/// Why a port cannot steer by the client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssUnsupported {
    /// The device has no RSS at all (`net_af_packet`, `net_pcap`,
    /// `net_ring`).
    NoRss,
    /// The device hashes, but not IPv4 on one address only
    /// (`RTE_ETH_RSS_IPV4` with `L3_SRC_ONLY` / `L3_DST_ONLY`).
    NoAddressOnlyHash,
    /// The device's Toeplitz key is shorter than `KEY_LEN` bytes (0: it
    /// does not say), so it cannot take the model's key.
    KeySize(u8),
    /// The device's redirection table has a size no table can make agree
    /// with the model's (see `RssModel::reta_for_device`).
    RetaSize(u16),
    /// `rte_eth_dev_rss_reta_update` failed with this errno.
    RetaUpdateFailed(i32),
}

impl fmt::Display for RssUnsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RssUnsupported::NoRss => f.write_str("the device has no RSS"),
            RssUnsupported::NoAddressOnlyHash => {
                f.write_str("no RSS on the IPv4 source or destination address alone")
            }
            RssUnsupported::KeySize(0) => f.write_str("the device does not say its RSS key size"),
            RssUnsupported::KeySize(n) => write!(f, "RSS key of {n} bytes, {KEY_LEN} needed"),
            RssUnsupported::RetaSize(n) => write!(
                f,
                "redirection table of {n} entries (a power of two >= {} needed)",
                crate::net::rss::RETA_SIZE
            ),
            RssUnsupported::RetaUpdateFailed(errno) => {
                let e = DpdkError {
                    context: "redirection table update failed".into(),
                    errno,
                };
                write!(f, "{e}")
            }
        }
    }
}

/// What a port reports about itself after start.
#[derive(Clone, Debug)]
pub struct PortInfo {
    /// The DPDK driver's name (e.g. `net_af_packet`).
    pub driver: String,
    /// The MAC address in use.
    pub mac: MacAddr,
    /// Queue pairs configured (one per worker).
    pub queues: u16,
    /// How traffic is spread over those queues.
    pub rss: RssMode,
    /// True when the device could not take the configured MAC, so rvs
    /// answers for it in software and the port runs promiscuous.
    pub mac_in_software: bool,
}

/// Link state, for the startup log and stats.
#[derive(Clone, Copy, Debug)]
pub struct LinkStatus {
    /// True when the link is up.
    pub up: bool,
    /// Speed in Mbit/s as the driver reports it (0 when unknown).
    pub speed_mbps: u32,
}

/// Hardware counters of a port.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped because no rx descriptor was free.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive buffer allocation failures.
    pub rx_nombuf: u64,
}

/// An ethdev port owned by rvsd: stopped and closed on drop.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    started: bool,
    /// Rings a ring-backed port reads and writes, kept alive as long as it.
    _rings: Vec<Arc<RingInner>>,
}

impl Port {
    /// Finds the port the EAL created for `device_name` (a vdev name such as
    /// `net_pcap0`, or a PCI address such as `0000:03:00.0`).
    pub fn by_name(_eal: &Eal, device_name: &str) -> Result<Port, DpdkError> {
        let cname = CString::new(device_name)
            .map_err(|_| DpdkError::new(format!("device name {device_name:?} has a NUL byte")))?;
        let mut id: u16 = 0;
        // SAFETY: EAL initialised; name is a valid C string; id is writable.
        let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::from_code(
                format!("no DPDK port for device {device_name:?} (did the EAL probe it?)"),
                rc,
            ));
        }
        Ok(Port {
            id,
            name: device_name.to_string(),
            started: false,
            _rings: Vec::new(),
        })
    }

    /// Creates a port named `name` whose single rx queue reads `rx` and
    /// whose single tx queue writes `tx` (DPDK's ring driver): a device
    /// with no wire, for benchmarks that generate traffic in-process.
    pub fn from_rings(
        _eal: &Eal,
        name: &str,
        rx: RingConsumer,
        tx: RingProducer,
        socket: u32,
    ) -> Result<Port, DpdkError> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new(format!("device name {name:?} has a NUL byte")))?;
        let mut rx_rings = [rx.0.as_ptr()];
        let mut tx_rings = [tx.0.as_ptr()];
        // SAFETY: EAL initialised; the arrays hold one live ring each, which
        // the port keeps alive through `_rings`; DPDK copies the name.
        let rc = unsafe {
            ffi::rte_eth_from_rings(
                cname.as_ptr(),
                rx_rings.as_mut_ptr(),
                1,
                tx_rings.as_mut_ptr(),
                1,
                socket,
            )
        };
        if rc < 0 {
            return Err(DpdkError::from_rte_errno(format!(
                "cannot create ring device {name:?}"
            )));
        }
        Ok(Port {
            id: rc as u16,
            name: name.to_string(),
            started: false,
            _rings: vec![rx.0, tx.0],
        })
    }

    /// The port's MTU (largest IPv4 packet it sends); 1500 when the driver
    /// does not say.
    pub fn mtu(&self) -> u16 {
        let mut mtu: u16 = 0;
        // SAFETY: valid port; mtu is writable.
        let rc = unsafe { ffi::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        if rc != 0 || mtu == 0 {
            1500
        } else {
            mtu
        }
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    fn dev_info(&self) -> Result<ffi::rte_eth_dev_info, DpdkError> {
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: the port id is valid; info is writable.
        let rc = unsafe { ffi::rte_eth_dev_info_get(self.id, &mut info) };
        if rc != 0 {
            return Err(DpdkError::from_code(
                format!("cannot read device info of {}", self.name),
                rc,
            ));
        }
        Ok(info)
    }

    /// Configures `queues` rx/tx queue pairs (queue i belongs to worker i),
    /// RSS on the client's address (the IPv4 address `side` names, with
    /// `model`'s key and redirection table) when there are several and the
    /// device can, an optional MAC address, and starts the port.
    ///
    /// The hash types asked for are `RTE_ETH_RSS_IPV4` alone with
    /// `L3_SRC_ONLY` or `L3_DST_ONLY`, not the TCP and UDP types: in
    /// DPDK's input-set rules a type given without `L4_*_ONLY` hashes both
    /// of its ports, so `NONFRAG_IPV4_TCP` would put the ports back in
    /// (mlx5 and ice do so), while `IPV4` alone hashes TCP and UDP packets
    /// on their addresses too. Devices that do not list `IPV4` with
    /// `L3_SRC_ONLY` / `L3_DST_ONLY` in `flow_type_rss_offloads` (i40e and
    /// ixgbe, as far as we know their drivers) fall back to software
    /// ownership; the start-up log says which way each port went.
    pub fn configure_and_start(
        &mut self,
        queues: u16,
        pool: &Mempool,
        mac: Option<MacAddr>,
        side: ClientSide,
        model: &RssModel,
    ) -> Result<PortInfo, DpdkError> {
        let info = self.dev_info()?;
        let driver = if info.driver_name.is_null() {
            String::from("?")
        } else {
            // SAFETY: DPDK returns a NUL-terminated static driver name.
            unsafe { std::ffi::CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(DpdkError::new(format!(
                "device {} ({driver}) supports {} rx / {} tx queues, but {queues} workers need one each",
                self.name, info.max_rx_queues, info.max_tx_queues
            )));
        }
        if let Some(&q) = model.reta().iter().find(|&&q| q >= queues) {
            return Err(DpdkError::new(format!(
                "the RSS model of {} sends clients to queue {q}, but it has {queues}",
                self.name
            )));
        }

        let mut conf = ffi::rte_eth_conf::default();
        // The model's key, zero-padded to a longer device key (i40e and ice
        // take 52 bytes): the hash of a 4-byte address reads only the first
        // 8 key bytes, so the padding changes nothing.
        let mut key = vec![0u8; usize::from(info.hash_key_size).max(KEY_LEN)];
        key[..KEY_LEN].copy_from_slice(model.key());
        let mut reta = None;
        let rss = if queues <= 1 {
            RssMode::SingleQueue
        } else {
            match client_rss(&info, side, model) {
                Ok((hf, table)) => {
                    conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                    conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                    conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
                    conf.rx_adv_conf.rss_conf.rss_hf = hf;
                    reta = Some(table);
                    RssMode::for_side(side)
                }
                Err(why) => {
                    // Still spread by the device's own hash when it has one
                    // (its default key): the redirect work is then shared.
                    // SAFETY: pure function returning a constant.
                    let any_hf = unsafe { ffi::rvs_rss_hf_ipv4_tcp_udp() };
                    let hf = any_hf & info.flow_type_rss_offloads;
                    if hf != 0 {
                        conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                        conf.rx_adv_conf.rss_conf.rss_hf = hf;
                    }
                    RssMode::Unsupported(why)
                }
            }
        };

        // SAFETY: valid port, conf initialised; the key outlives the call
        // (DPDK copies it during configure).
        let rc = unsafe { ffi::rte_eth_dev_configure(self.id, queues, queues, &conf) };
        if rc != 0 {
            return Err(DpdkError::from_code(
                format!("cannot configure {} with {queues} queue pair(s)", self.name),
                rc,
            ));
        }
        let (mut nb_rx, mut nb_tx) = (RX_DESCRIPTORS, TX_DESCRIPTORS);
        // SAFETY: valid, configured port; both counts writable.
        let rc = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rx, &mut nb_tx) };
        if rc != 0 {
            return Err(DpdkError::from_code(
                format!("cannot fit ring sizes for {}", self.name),
                rc,
            ));
        }
        // SAFETY: valid port.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..queues {
            // SAFETY: valid configured port, q < queues, the pool outlives
            // the port (rvsd drops ports first); NULL conf = driver defaults.
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    nb_rx,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(DpdkError::from_code(
                    format!("cannot set up rx queue {q} of {}", self.name),
                    rc,
                ));
            }
            // SAFETY: as above.
            let rc =
                unsafe { ffi::rte_eth_tx_queue_setup(self.id, q, nb_tx, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(DpdkError::from_code(
                    format!("cannot set up tx queue {q} of {}", self.name),
                    rc,
                ));
            }
        }
        let mut mac_in_software = false;
        if let Some(mac) = mac {
            let mut addr = ffi::rte_ether_addr { addr_bytes: mac.0 };
            // SAFETY: valid port; addr readable.
            let rc = unsafe { ffi::rte_eth_dev_default_mac_addr_set(self.id, &mut addr) };
            if rc == -libc::ENOTSUP {
                // Software devices such as net_pcap keep a fixed address:
                // receive everything and let the worker filter on `mac`.
                // SAFETY: valid port. A device that cannot do promiscuous
                // mode (pcap files) receives everything anyway.
                unsafe { ffi::rte_eth_promiscuous_enable(self.id) };
                mac_in_software = true;
            } else if rc != 0 {
                return Err(DpdkError::from_code(
                    format!("cannot set MAC {mac} on {}", self.name),
                    rc,
                ));
            }
        }
        // SAFETY: valid, fully configured port.
        let rc = unsafe { ffi::rte_eth_dev_start(self.id) };
        if rc != 0 {
            return Err(DpdkError::from_code(
                format!("cannot start {}", self.name),
                rc,
            ));
        }
        self.started = true;
        let rss = match reta {
            Some(table) => match self.update_reta(&table) {
                Ok(()) => rss,
                Err(errno) => RssMode::Unsupported(RssUnsupported::RetaUpdateFailed(errno)),
            },
            None => rss,
        };
        let mac = match mac {
            Some(mac) if mac_in_software => mac,
            _ => self.mac()?,
        };
        Ok(PortInfo {
            driver,
            mac,
            queues,
            rss,
            mac_in_software,
        })
    }

    /// Programs the device's redirection table with `table` (as long as
    /// the device's); the errno when the device refuses.
    fn update_reta(&self, table: &[u16]) -> Result<(), i32> {
        let group = ffi::RTE_ETH_RETA_GROUP_SIZE as usize;
        let mut conf: Vec<ffi::rte_eth_rss_reta_entry64> = table
            .chunks(group)
            .map(|chunk| {
                let mut entry = ffi::rte_eth_rss_reta_entry64 {
                    mask: if chunk.len() == group {
                        u64::MAX
                    } else {
                        (1u64 << chunk.len()) - 1
                    },
                    ..Default::default()
                };
                entry.reta[..chunk.len()].copy_from_slice(chunk);
                entry
            })
            .collect();
        let size = u16::try_from(table.len()).map_err(|_| libc::EINVAL)?;
        // SAFETY: valid port; `conf` holds size / 64 (rounded up) groups,
        // each with its mask of entries to write; DPDK only reads it.
        let rc = unsafe { ffi::rte_eth_dev_rss_reta_update(self.id, conf.as_mut_ptr(), size) };
        if rc == 0 {
            Ok(())
        } else {
            Err(-rc)
        }
    }

    /// The MAC address the port uses.
    pub fn mac(&self) -> Result<MacAddr, DpdkError> {
        let mut addr = ffi::rte_ether_addr::default();
        // SAFETY: valid port; addr writable.
        let rc = unsafe { ffi::rte_eth_macaddr_get(self.id, &mut addr) };
        if rc != 0 {
            return Err(DpdkError::from_code(
                format!("cannot read the MAC of {}", self.name),
                rc,
            ));
        }
        Ok(MacAddr(addr.addr_bytes))
    }

    /// Receives all multicast frames (IPv6 neighbour discovery's
    /// solicited-node groups, whose MACs depend on the addresses asked
    /// for); false when the device cannot (software devices such as
    /// `net_af_packet` and `net_pcap` receive them anyway).
    pub fn enable_all_multicast(&self) -> bool {
        // SAFETY: valid port.
        unsafe { ffi::rte_eth_allmulticast_enable(self.id) == 0 }
    }

    /// The link state, without waiting for autonegotiation.
    pub fn link(&self) -> LinkStatus {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: valid port; link writable.
        let rc = unsafe { ffi::rte_eth_link_get_nowait(self.id, &mut link) };
        if rc != 0 {
            return LinkStatus {
                up: false,
                speed_mbps: 0,
            };
        }
        LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
        }
    }

    /// The device's own counters.
    pub fn stats(&self) -> PortStats {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid port; s writable.
        if unsafe { ffi::rte_eth_stats_get(self.id, &mut s) } != 0 {
            return PortStats::default();
        }
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}

/// The hash types and the device RETA that make `info`'s device hash the
/// `side` address with `model`, or why it cannot.
fn client_rss(
    info: &ffi::rte_eth_dev_info,
    side: ClientSide,
    model: &RssModel,
) -> Result<(u64, Vec<u16>), RssUnsupported> {
    // SAFETY: pure functions returning constants.
    let (ipv4, only) = unsafe {
        (
            ffi::rvs_rss_hf_ipv4(),
            match side {
                ClientSide::Source => ffi::rvs_rss_l3_src_only(),
                ClientSide::Destination => ffi::rvs_rss_l3_dst_only(),
            },
        )
    };
    let hf = ipv4 | only;
    if info.flow_type_rss_offloads == 0 {
        return Err(RssUnsupported::NoRss);
    }
    if info.flow_type_rss_offloads & hf != hf {
        return Err(RssUnsupported::NoAddressOnlyHash);
    }
    // IPv6 clients hashed the same way (one address, same key) when the
    // device can: `RssModel::hash_client6`. Without it IPv6 packets land
    // on the queue the device's default picks (queue 0, usually).
    // SAFETY: pure function returning a constant.
    let ipv6 = unsafe { ffi::rvs_rss_hf_ipv6() };
    let hf = if info.flow_type_rss_offloads & ipv6 == ipv6 {
        hf | ipv6
    } else {
        hf
    };
    if usize::from(info.hash_key_size) < KEY_LEN {
        return Err(RssUnsupported::KeySize(info.hash_key_size));
    }
    let table = model
        .reta_for_device(usize::from(info.reta_size))
        .ok_or(RssUnsupported::RetaSize(info.reta_size))?;
    Ok((hf, table))
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: valid port; workers using its queues have finished (rvsd
        // waits for every lcore before dropping ports).
        unsafe {
            if self.started {
                ffi::rte_eth_dev_stop(self.id);
            }
            ffi::rte_eth_dev_close(self.id);
        }
    }
}
