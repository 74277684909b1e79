//! Ethernet ports: lookup, configuration with one queue pair per worker,
//! symmetric RSS, start, stop and close.

use super::ring::{RingConsumer, RingInner, RingProducer};
use super::{eal::Eal, ffi, mempool::Mempool, DpdkError};
use crate::wire::MacAddr;
use std::ffi::CString;
use std::sync::Arc;

/// A 40-byte Toeplitz key made of one repeated 16-bit pattern. With such a
/// key the hash of (src, dst) equals the hash of (dst, src), so both
/// directions of a connection land on the same queue, hence the same worker
/// (Woo and Park, "Scalable TCP Session Monitoring with Symmetric RSS").
const SYMMETRIC_RSS_KEY: [u8; 40] = {
    let mut key = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        key[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    key
};

/// Receive and transmit ring sizes asked for (the driver may adjust them).
const RX_DESCRIPTORS: u16 = 1024;
const TX_DESCRIPTORS: u16 = 1024;

/// How a port's queues are spread over workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssMode {
    /// One queue: nothing to spread.
    SingleQueue,
    /// Symmetric Toeplitz RSS over IPv4/TCP/UDP.
    Symmetric,
    /// Several queues but the device hashes nothing (no RSS support).
    Unsupported,
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
    /// symmetric RSS when there are several and the device can hash, an
    /// optional MAC address, and starts the port.
    pub fn configure_and_start(
        &mut self,
        queues: u16,
        pool: &Mempool,
        mac: Option<MacAddr>,
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

        let mut conf = ffi::rte_eth_conf::default();
        let mut key = SYMMETRIC_RSS_KEY;
        // SAFETY: pure function returning a constant.
        let wanted_hf = unsafe { ffi::rvs_rss_hf_ipv4_tcp_udp() };
        let rss = if queues <= 1 {
            RssMode::SingleQueue
        } else if info.flow_type_rss_offloads & wanted_hf != 0
            && (info.hash_key_size == 0 || info.hash_key_size as usize == key.len())
        {
            conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            conf.rx_adv_conf.rss_conf.rss_hf = wanted_hf & info.flow_type_rss_offloads;
            RssMode::Symmetric
        } else {
            RssMode::Unsupported
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
