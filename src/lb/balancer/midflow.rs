//! Mid-flow packets: a TCP segment of a connection this balancer never saw
//! open (issue 20, an active-active cluster behind ECMP).
//!
//! When a router's ECMP moves a flow to another node (a node joined or
//! left the multipath route, or its hash changed), the new node meets
//! segments of a connection it has no entry for. Sync among the nodes
//! normally installs the entry first; when the segment wins that race,
//! refusing it (`Refusal::NoConnection`, what a lone balancer does, as
//! IPVS) costs the client a retransmission at best. With the mid-flow
//! setting on ([`Balancer::set_midflow`], the cluster's), such a segment
//! is scheduled as a new flow and opens its connection directly in
//! ESTABLISHED, provided the choice is the one every other node made:
//! - the service's scheduler is consistent: `sh` or `mh`, whose tables
//!   are built from the configuration alone and pick by the client's
//!   address, so every node with the same config and the same servers up
//!   picks the same server (`rr`, `wrr` and the least-connection family
//!   depend on each node's own history and would send the segment to a
//!   server that does not know the connection);
//! - it forwards by NAT, DR or TUN: FullNAT's local address and port are
//!   chosen per node and the server knows the connection by them; a SYN
//!   proxy's sequence translation and a `client_address` mode's header or
//!   option are armed at the handshake, which this node never saw;
//! - the segment is a synchronized connection's: ACK set, SYN and RST
//!   clear (a reset for an unknown connection has nothing to end; a SYN
//!   is a new connection anyway; a segment without ACK, FIN or null scan,
//!   is no established connection's).
//!
//! Everything else is refused as before. The admission limits (allow and
//! deny lists, per-client limit, rate) apply as to a SYN. The connection
//! starts unproven, like any packet-made one: a blind ACK flood fills only
//! entries a full table sheds first. It is reported to sync as a new one,
//! so the other nodes learn it. All of this is on the miss path: a hit
//! never looks at the setting.

use super::Balancer;
use crate::lb::conn::ConnInit;
use crate::lb::sched::Kind;
use crate::lb::service::{ForwardMethod, ServiceId};
use crate::lb::tcp_state::{State, TcpFlags, Timeouts};

/// How a new connection opens: by the client's SYN (the handshake is
/// tracked), or by a segment met in mid-flow (already established).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Opening {
    /// A bare SYN, or the SYN proxy's cookie ACK standing for one.
    Handshake,
    /// A mid-flow segment under [`Balancer::set_midflow`].
    MidFlow,
}

impl Opening {
    /// Sets a new connection's starting state: ESTABLISHED with its
    /// timeout for a mid-flow opening; a handshake's stays NONE (its SYN
    /// moves it on).
    pub(super) fn apply(self, init: &mut ConnInit, timeouts: &Timeouts) {
        if self == Opening::MidFlow {
            init.state = State::Established;
            init.timeout_ns = timeouts.tcp(State::Established);
        }
    }
}

/// True for the segment flags of a synchronized connection: ACK set, SYN
/// and RST clear.
#[inline]
fn in_flow(flags: TcpFlags) -> bool {
    flags.0 & (TcpFlags::ACK.0 | TcpFlags::SYN.0 | TcpFlags::RST.0) == TcpFlags::ACK.0
}

impl Balancer {
    /// Turns mid-flow scheduling on or off (off by default): whether a
    /// TCP segment other than a SYN, for no known connection, may open one
    /// (see the module doc for which). rvsd turns it on for a `[cluster]`
    /// node, whose peers schedule alike; a lone balancer or an HA pair
    /// keeps IPVS's rule (only a SYN opens a connection).
    pub fn set_midflow(&mut self, on: bool) {
        self.midflow = on;
    }

    /// The same balancer with mid-flow scheduling `on` (the worker's
    /// builder; see [`Balancer::set_midflow`]).
    pub fn with_midflow(mut self, on: bool) -> Balancer {
        self.set_midflow(on);
        self
    }

    /// Whether mid-flow scheduling is on.
    pub fn midflow(&self) -> bool {
        self.midflow
    }

    /// Connections (both families) opened by a mid-flow segment since the
    /// balancer was made: the worker publishes it as `midflow_scheduled`.
    pub fn midflow_scheduled(&self) -> u64 {
        self.midflow_scheduled
    }

    /// How a TCP segment with `flags` that is not a bare SYN, for no
    /// known connection of service `vs`, may open one: `None` when it may
    /// not (refused as no connection).
    #[inline]
    pub(super) fn midflow_opening(&self, vs: ServiceId, flags: TcpFlags) -> Option<Opening> {
        (self.midflow && in_flow(flags) && self.schedules_alike(vs)).then_some(Opening::MidFlow)
    }

    /// True when every node with the same configuration opens a
    /// connection of service `vs` the same way: a consistent scheduler,
    /// NAT, DR or TUN, no state armed at the handshake.
    fn schedules_alike(&self, vs: ServiceId) -> bool {
        let service = self.services.get(vs);
        let consistent = self
            .scheds
            .get(usize::from(vs))
            .is_some_and(|s| matches!(s.kind(), Kind::Sh | Kind::Mh));
        let forward = matches!(
            service.forward,
            ForwardMethod::Nat | ForwardMethod::Dr | ForwardMethod::Tun
        );
        consistent && forward && !service.syn_proxy && service.client_address.is_none()
    }

    /// Counts a connection a mid-flow segment opened.
    #[inline]
    pub(super) fn count_opening(&mut self, opening: Opening) {
        if opening == Opening::MidFlow {
            self.midflow_scheduled += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_ack_without_syn_or_rst_is_in_flow() {
        let ack = TcpFlags::ACK;
        assert!(in_flow(ack));
        assert!(in_flow(TcpFlags::FIN_ACK));
        assert!(in_flow(ack | TcpFlags::PSH));
        assert!(!in_flow(TcpFlags::RST_ACK));
        assert!(!in_flow(TcpFlags::RST));
        assert!(!in_flow(TcpFlags::SYN_ACK));
        assert!(!in_flow(TcpFlags::SYN));
        assert!(!in_flow(TcpFlags::FIN));
        assert!(!in_flow(TcpFlags::NONE));
    }
}
