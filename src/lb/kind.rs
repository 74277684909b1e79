//! The names an operator picks a virtual service's behaviour by: its
//! protocol, scheduler and forwarding method. They live here, in the load
//! balancer's core, because the data plane acts on them; the config parses
//! into them and `rvsadm` prints them.

use std::fmt;
use std::str::FromStr;

/// A value of a keyword field (`protocol`, `scheduler`, ...) that is not one
/// of the accepted names; the message lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseKeywordError(pub(crate) String);

impl fmt::Display for ParseKeywordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseKeywordError {}

/// Finds `s` among `all` by `name`, or says which names are accepted.
pub(crate) fn keyword<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, ParseKeywordError> {
    all.iter().copied().find(|&v| name(v) == s).ok_or_else(|| {
        let names: Vec<String> = all.iter().map(|&v| format!("{:?}", name(v))).collect();
        ParseKeywordError(format!(
            "unknown value {s:?}: expected one of {}",
            names.join(", ")
        ))
    })
}

/// The transport protocol of a virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `"tcp"`
    Tcp,
    /// `"udp"`
    Udp,
}

impl Protocol {
    /// Every protocol, in the order messages list them.
    pub const ALL: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

    /// The name used in the file and by `rvsadm`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// The protocol for an IP protocol number, if rvs balances it.
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl FromStr for Protocol {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a virtual server picks a real server for a new connection; the
/// names and meanings are IPVS's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// `"rr"`: round robin.
    Rr,
    /// `"wrr"`: weighted round robin.
    Wrr,
    /// `"lc"`: least connections.
    Lc,
    /// `"wlc"`: weighted least connections.
    Wlc,
    /// `"sed"`: shortest expected delay.
    Sed,
    /// `"nq"`: never queue.
    Nq,
    /// `"sh"`: source hashing.
    Sh,
    /// `"mh"`: Maglev hashing (consistent; see `mh_table_size`).
    Mh,
}

impl SchedulerKind {
    /// Every scheduler, in the order messages list them.
    pub const ALL: [SchedulerKind; 8] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Mh,
    ];

    /// The name used in the file and by `rvsadm`.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
        }
    }
}

impl SchedulerKind {
    /// True for the kinds that need a hash table built by control.
    pub fn needs_table(self) -> bool {
        matches!(self, SchedulerKind::Sh | SchedulerKind::Mh)
    }
}

impl FromStr for SchedulerKind {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a packet for a virtual server reaches the chosen real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// `"nat"`: the destination is rewritten to the real server, and its
    /// replies (which must come back through rvs) get the VIP as source.
    Nat,
    /// `"dr"`: direct routing; only the destination MAC changes, so the
    /// real server is on a connected subnet and keeps the virtual port.
    Dr,
    /// `"tun"`: the packet goes inside an IPv4-in-IPv4 header to the real
    /// server, which keeps the virtual port.
    Tun,
    /// `"fullnat"`: both ends are rewritten (client → VIP becomes local
    /// address → real server, and back), so real servers need no route
    /// through rvs; the service names its `local_addresses`.
    FullNat,
}

impl ForwardMethod {
    /// Every forwarding method, in the order messages list them.
    pub const ALL: [ForwardMethod; 4] = [
        ForwardMethod::Nat,
        ForwardMethod::Dr,
        ForwardMethod::Tun,
        ForwardMethod::FullNat,
    ];

    /// The name used in the file and by `rvsadm`.
    pub fn name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "nat",
            ForwardMethod::Dr => "dr",
            ForwardMethod::Tun => "tun",
            ForwardMethod::FullNat => "fullnat",
        }
    }

    /// True for the methods where the real server sees the VIP and port as
    /// the client sent them, so no port translation is possible.
    pub fn keeps_virtual_port(self) -> bool {
        matches!(self, ForwardMethod::Dr | ForwardMethod::Tun)
    }

    /// True for the methods whose replies come back through rvs (NAT and
    /// FullNAT), so the balancer sees both directions.
    pub fn sees_replies(self) -> bool {
        matches!(self, ForwardMethod::Nat | ForwardMethod::FullNat)
    }
}

impl FromStr for ForwardMethod {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for ForwardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
