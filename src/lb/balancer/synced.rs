//! What HA sync and `rvsadm conns` do alike for either connection table:
//! a connection as a sync event or as a `ConnInfo`, and the install of a
//! reported connection (the timeout capped to the local one, a known
//! connection brought to the reported state, a new one inserted and
//! counted). Written once over the family (`ConnEntry`, `ConnAddr`) for
//! `Balancer::event`/`event6`, `dump`/`dump6` and `install`/`install6`,
//! which keep what differs: how a service and real server are found by
//! address, the reply key, FullNAT's local port.

use super::{ConnInfo, Counters};
use crate::lb::conn::{ConnAddr, ConnEntry, ConnId, ConnInit, ConnTableOf, FlowKeyOf};
use crate::lb::service::Protocol;
use crate::lb::sync::SyncEventOf;
use crate::lb::tcp_state::{self, Timeouts, Transition};
use crate::lb::xmit::EndpointOf;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Connection `c` as the peer needs it, going to `real`; `fullnat` says
/// whether its service forwards by FullNAT (the record then carries the
/// local end its replies come to). `None` for a protocol sync does not
/// carry.
pub(super) fn sync_event<E: ConnEntry>(
    c: &E,
    real: EndpointOf<E::Addr>,
    fullnat: bool,
    now: u64,
) -> Option<SyncEventOf<E::Addr>> {
    let protocol = Protocol::from_number(c.proto())?;
    let o = c.original_key();
    Some(SyncEventOf {
        protocol,
        // UDP has no states; the format's convention is ESTABLISHED.
        state: if protocol == Protocol::Udp {
            tcp_state::State::Established
        } else {
            c.state()
        },
        input_only: c.is_input_only(),
        client: EndpointOf::new(o.src, o.src_port),
        vip: EndpointOf::new(o.dst, o.dst_port),
        real,
        timeout_s: (c.expires_ns.saturating_sub(now) / 1_000_000_000) as u32,
        local: fullnat.then(|| {
            let r = c.reply_key();
            EndpointOf::new(r.dst, r.dst_port)
        }),
    })
}

/// Connection `c` as `rvsadm conns` shows it: `real` its real server
/// (`0.0.0.0:0` when the snapshot no longer has it), `fullnat` as for
/// [`sync_event`].
pub(super) fn conn_info<E: ConnEntry>(
    c: &E,
    real: Option<SocketAddr>,
    fullnat: bool,
    now: u64,
) -> ConnInfo
where
    SocketAddr: From<(E::Addr, u16)>,
{
    let o = c.original_key();
    ConnInfo {
        protocol: if c.proto() == 6 { "tcp" } else { "udp" },
        client: SocketAddr::from((o.src, o.src_port)),
        virtual_server: SocketAddr::from((o.dst, o.dst_port)),
        real_server: real.unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))),
        local: fullnat.then(|| {
            let r = c.reply_key();
            SocketAddr::from((r.dst, r.dst_port))
        }),
        state: c.state_name(),
        expires_in_s: c.expires_ns.saturating_sub(now) / 1_000_000_000,
        packets_in: u64::from(c.packets_in),
        packets_out: u64::from(c.packets_out),
        bytes_in: c.bytes_in(),
        bytes_out: c.bytes_out(),
    }
}

/// The connection a reported event makes for server `rs` of service `vs`:
/// proven (what the active balancer had is not a flood's), its timeout
/// never longer than a connection in that state lives here (the sync
/// thread caps and counts first; this holds for any caller).
pub(super) fn synced_init<A>(
    ev: &SyncEventOf<A>,
    vs: u16,
    rs: u16,
    timeouts: &Timeouts,
) -> ConnInit {
    let local_ns = match ev.protocol {
        Protocol::Tcp => timeouts.tcp(ev.state),
        _ => timeouts.udp(),
    };
    ConnInit {
        vs,
        rs,
        input_only: ev.input_only,
        state: ev.state,
        timeout_ns: (u64::from(ev.timeout_s) * 1_000_000_000).min(local_ns),
        proven: true,
    }
}

impl Counters {
    /// Installs a reported connection into `conns` under its `(original,
    /// reply)` keys: one already known by `original` is brought to
    /// `init`'s state and timeout, or replaced when it names another
    /// service or real server (the client reused the port of a connection
    /// the peer has since scheduled afresh) unless `cluster` and it is
    /// local (it keeps its server; the record is a counted conflict);
    /// otherwise it is inserted, not local, and counted. Returns the new
    /// connection's id (`None` when it was known, refused or could not be
    /// inserted), for the caller's per-family chores.
    pub(super) fn install_synced<A: ConnAddr>(
        &mut self,
        conns: &mut ConnTableOf<A>,
        timeouts: &Timeouts,
        (original, reply): (FlowKeyOf<A>, FlowKeyOf<A>),
        init: ConnInit,
        cluster: bool,
        now: u64,
    ) -> Option<ConnId> {
        let mut known = conns.lookup(&original, now, |c| self.forget(c, now));
        if let Some((id, _)) = known {
            let c = conns.get(id);
            if (c.vs, c.rs) != (init.vs, init.rs) {
                if cluster && !c.is_synced() {
                    // This node carries the flow to its own server: a
                    // peer's record must not move it mid-flow.
                    self.conflicts += 1;
                    return None;
                }
                let old = conns.remove(id);
                self.forget(&old, now);
                known = None;
            }
        }
        if let Some((id, _)) = known {
            let c = conns.get_mut(id);
            let was_active = c.is_active();
            let before = c.state();
            let (cvs, crs) = (c.vs, c.rs);
            let t = c.set_state(init.state, now, timeouts);
            c.expires_ns = now.saturating_add(init.timeout_ns);
            let c = *c;
            self.client_state_changed(&c, before);
            self.account(
                cvs,
                crs,
                Transition {
                    was_active,
                    now_active: t.now_active,
                },
            );
            return None;
        }
        let id = conns
            .insert(original, reply, init, now, |c| self.forget(c, now))
            .ok()?;
        conns.get_mut(id).mark_synced();
        self.synced += 1;
        self.created(conns.get(id));
        Some(id)
    }

    /// Removes the connection known by `original` for a REMOVED record
    /// naming `(vs, rs)`: only with that service and real server, and in
    /// `cluster` mode only when not local. True when it went.
    pub(super) fn remove_synced<A: ConnAddr>(
        &mut self,
        conns: &mut ConnTableOf<A>,
        original: FlowKeyOf<A>,
        (vs, rs): (u16, u16),
        cluster: bool,
        now: u64,
    ) -> bool {
        let Some((id, _)) = conns.lookup(&original, now, |c| self.forget(c, now)) else {
            return false;
        };
        let c = conns.get(id);
        if (c.vs, c.rs) != (vs, rs) || (cluster && !c.is_synced()) {
            return false;
        }
        let old = conns.remove(id);
        self.forget(&old, now);
        true
    }
}
