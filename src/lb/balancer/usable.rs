//! Whether a connection a packet found may carry it, for either table:
//! the one check `Balancer::still_usable` and `still_usable6` share (a
//! bare SYN on a closing connection starts afresh; a connection whose real
//! server is down ends with `expire_nodest_conn`).

use super::Counters;
use crate::lb::conn::{ConnAddr, ConnId, ConnTableOf, Direction};
use crate::lb::service::ServiceTable;
use crate::lb::tcp_state::{self, TcpFlags};

/// How a packet whose connection it ended is answered (each family turns
/// it into its own decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// A client's TCP packet other than a SYN: a reset, so it reconnects.
    Reset,
    /// A real server's TCP packet: dropped, as of no connection.
    Drop,
}

/// Connection `id` of `conns`, found in direction `dir` by a packet with
/// TCP flags `tcp` (`None`: not TCP), unless this packet ends it (the
/// connection removed and forgotten by `counters`): `None` to schedule
/// the packet afresh (a bare SYN on a closing connection, or UDP and SYNs
/// whose server is down), `Some(Err(..))` for other TCP whose server is
/// down.
#[inline]
pub(super) fn still_usable_in<A: ConnAddr>(
    conns: &mut ConnTableOf<A>,
    counters: &mut Counters,
    services: &ServiceTable,
    id: ConnId,
    dir: Direction,
    tcp: Option<TcpFlags>,
    now: u64,
) -> Option<Result<(ConnId, Direction), Ended>> {
    let c = conns.get(id);
    let (vs, rs) = (c.vs, c.rs);
    if tcp.is_some_and(|flags| tcp_state::should_restart(c.state(), dir, flags)) {
        let old = conns.remove(id);
        counters.forget(&old, now);
        return None;
    }
    if services.is_down(vs, rs) && services.get(vs).expire_nodest_conn {
        let old = conns.remove(id);
        counters.forget(&old, now);
        if tcp.is_some_and(|flags| !flags.is_bare_syn()) {
            return Some(Err(if dir == Direction::Original {
                Ended::Reset
            } else {
                Ended::Drop
            }));
        }
        return None;
    }
    Some(Ok((id, dir)))
}
