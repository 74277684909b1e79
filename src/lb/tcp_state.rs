//! TCP connection state as a director tracks it, with IPVS's states,
//! transitions and timeouts (the semantics of Linux's
//! `net/netfilter/ipvs/ip_vs_proto_tcp.c`, written out here as a table per
//! state so it reads as a specification).
//!
//! A director is not an endpoint: it only watches segments go by, so the
//! state is a coarse guess whose one job is to pick a timeout and to say
//! whether the connection counts as *active* (ESTABLISHED) or *inactive*
//! (anything else) for the least-connection schedulers.
//!
//! Three tables, as in IPVS:
//! - *input*: a client → virtual server segment on a connection whose replies
//!   pass through the director (NAT);
//! - *output*: a real server → client segment (only NAT sees those);
//! - *input only*: a client → virtual server segment on a connection whose
//!   replies bypass the director (DR, TUN). A connection starts in this mode
//!   when the caller says so and leaves it for good on its first reply
//!   segment, exactly like IPVS's `IP_VS_CONN_F_NOOUTPUT`.
//!
//! The flags pick the column in IPVS's order of precedence: RST, then SYN,
//! then FIN, then ACK. A segment with none of those four moves the
//! connection to CLOSE (IPVS does the same).
//!
//! Where rvs differs from IPVS on purpose: a bare SYN (no ACK, no RST) from
//! the client on a connection in any closing state (FIN_WAIT, TIME_WAIT,
//! CLOSE, CLOSE_WAIT, LAST_ACK) is a *new* connection that reuses the client
//! port ([`should_restart`]). The caller removes the old entry and schedules
//! anew in the same packet's handling, so the first SYN is forwarded, never
//! dropped (IPVS's `conn_reuse_mode` drops it and the client retries a
//! second later).
//!
//! Timeouts are nanoseconds, the unit of the `now` the worker passes in.

use super::conn::Direction;
use std::time::Duration;

/// The states of IPVS's TCP tracking, with IPVS's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// No segment seen yet (a connection just created).
    None = 0,
    /// Handshake completed: the only *active* state.
    Established = 1,
    /// A SYN seen from the real server side first.
    SynSent = 2,
    /// The client's SYN seen (the state a SYN flood fills the table with).
    SynRecv = 3,
    /// One side sent FIN.
    FinWait = 4,
    /// Both sides sent FIN.
    TimeWait = 5,
    /// Reset, or otherwise finished.
    Close = 6,
    /// The client sent FIN first (NAT).
    CloseWait = 7,
    /// A FIN followed by an ACK from the other side of a CLOSE_WAIT.
    LastAck = 8,
    /// Set explicitly by control paths (IPVS: FTP data connections).
    Listen = 9,
    /// IPVS's "secure TCP" SYN-ACK state; reachable here only from a
    /// connection installed in it (e.g. by HA sync).
    SynAck = 10,
}

/// Number of [`State`]s.
pub const STATE_COUNT: usize = 11;

impl State {
    /// Every state, in numbering order.
    pub const ALL: [State; STATE_COUNT] = [
        State::None,
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::SynAck,
    ];

    /// The state's name as `ipvsadm -lc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            State::None => "NONE",
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::FinWait => "FIN_WAIT",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::SynAck => "SYNACK",
        }
    }

    /// The state for a stored number (HA sync); `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<State> {
        State::ALL.get(usize::from(v)).copied()
    }

    /// Counts as an *active* connection for lc/wlc: ESTABLISHED only.
    #[inline]
    pub fn is_active(self) -> bool {
        self == State::Established
    }

    /// Half-open: the handshake has not completed. These are the entries a
    /// full table may evict to make room (never an established one).
    #[inline]
    pub fn is_embryonic(self) -> bool {
        matches!(
            self,
            State::None | State::SynSent | State::SynRecv | State::SynAck
        )
    }

    /// One side or both have finished (or the connection was reset).
    #[inline]
    pub fn is_closing(self) -> bool {
        matches!(
            self,
            State::FinWait | State::TimeWait | State::Close | State::CloseWait | State::LastAck
        )
    }
}

/// The TCP header's flags byte (offset 13), bits as on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flags.
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// SYN and ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags(0x12);
    /// FIN and ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags(0x11);
    /// RST and ACK.
    pub const RST_ACK: TcpFlags = TcpFlags(0x14);

    /// True when every bit of `other` is set.
    #[inline]
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// A bare SYN: SYN set, ACK and RST clear (a connection opening).
    #[inline]
    pub fn is_bare_syn(self) -> bool {
        self.0 & (Self::SYN.0 | Self::ACK.0 | Self::RST.0) == Self::SYN.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// Which flag drives the transition: IPVS's precedence RST > SYN > FIN > ACK.
#[derive(Clone, Copy)]
enum Event {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

#[inline]
fn event(flags: TcpFlags) -> Option<Event> {
    if flags.contains(TcpFlags::RST) {
        Some(Event::Rst)
    } else if flags.contains(TcpFlags::SYN) {
        Some(Event::Syn)
    } else if flags.contains(TcpFlags::FIN) {
        Some(Event::Fin)
    } else if flags.contains(TcpFlags::ACK) {
        Some(Event::Ack)
    } else {
        None
    }
}

// No transition enters NONE or SYNACK.
use State::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// Next state per current state (rows, in numbering order) and event
/// (columns: SYN, FIN, ACK, RST).
type Table = [[State; 4]; STATE_COUNT];

/// Client → virtual server, replies pass through the director (NAT).
#[rustfmt::skip]
const INPUT: Table = [
    //          SYN  FIN  ACK  RST
    /* NONE */ [SR,  CL,  CL,  CL],
    /* ES   */ [ES,  CW,  ES,  CL],
    /* SS   */ [ES,  SS,  SS,  CL],
    /* SR   */ [SR,  TW,  ES,  SR],
    /* FW   */ [SR,  TW,  FW,  CL],
    /* TW   */ [SR,  TW,  TW,  CL],
    /* CL   */ [SR,  CL,  CL,  CL],
    /* CW   */ [SR,  CW,  CW,  CL],
    /* LA   */ [SR,  LA,  CL,  LA],
    /* LI   */ [SR,  LI,  LI,  LI],
    /* SA   */ [SR,  TW,  ES,  SR],
];

/// Real server → client (seen by NAT only).
#[rustfmt::skip]
const OUTPUT: Table = [
    //          SYN  FIN  ACK  RST
    /* NONE */ [SS,  TW,  ES,  CL],
    /* ES   */ [ES,  FW,  ES,  CL],
    /* SS   */ [SS,  SS,  SS,  SS],
    /* SR   */ [SR,  TW,  ES,  CL],
    /* FW   */ [SS,  FW,  FW,  CL],
    /* TW   */ [SS,  TW,  TW,  TW],
    /* CL   */ [SS,  CL,  CL,  CL],
    /* CW   */ [SS,  TW,  CW,  CL],
    /* LA   */ [SS,  LA,  LA,  CL],
    /* LI   */ [LI,  LI,  ES,  CL],
    /* SA   */ [SR,  TW,  ES,  CL],
];

/// Client → virtual server when replies bypass the director (DR, TUN): the
/// client's FIN on an established connection means FIN_WAIT, since the
/// server's answer is never seen.
#[rustfmt::skip]
const INPUT_ONLY: Table = [
    //          SYN  FIN  ACK  RST
    /* NONE */ [SR,  CL,  CL,  CL],
    /* ES   */ [ES,  FW,  ES,  CL],
    /* SS   */ [ES,  SS,  SS,  CL],
    /* SR   */ [SR,  TW,  ES,  SR],
    /* FW   */ [SR,  FW,  FW,  CL],
    /* TW   */ [SR,  TW,  TW,  CL],
    /* CL   */ [SR,  CL,  CL,  CL],
    /* CW   */ [SR,  CW,  CW,  CL],
    /* LA   */ [SR,  LA,  CL,  LA],
    /* LI   */ [SR,  LI,  LI,  LI],
    /* SA   */ [SR,  TW,  ES,  CL],
];

/// The state after a segment with `flags` travelling in `dir`.
/// `input_only` selects the DR/TUN table for client segments; it has no
/// effect on a reply segment.
#[inline]
pub fn next_state(state: State, dir: Direction, flags: TcpFlags, input_only: bool) -> State {
    let Some(ev) = event(flags) else {
        return State::Close;
    };
    let table = match (dir, input_only) {
        (Direction::Original, false) => &INPUT,
        (Direction::Original, true) => &INPUT_ONLY,
        (Direction::Reply, _) => &OUTPUT,
    };
    table[state as usize][ev as usize]
}

/// True when a segment starts a *new* connection on the tuple of an old one:
/// a bare SYN from the client while the old connection is closing. The
/// caller removes the old entry (adjusting its server's counters) and
/// schedules the segment as a new connection.
#[inline]
pub fn should_restart(state: State, dir: Direction, flags: TcpFlags) -> bool {
    dir == Direction::Original && flags.is_bare_syn() && state.is_closing()
}

/// Whether a connection counted as active before and after a segment, so
/// the caller can move it between its real server's active and inactive
/// counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Counted as active before the segment.
    pub was_active: bool,
    /// Counts as active after it.
    pub now_active: bool,
}

impl Transition {
    /// The connection moved between active and inactive.
    #[inline]
    pub fn changed(self) -> bool {
        self.was_active != self.now_active
    }
}

const SEC: u64 = 1_000_000_000;

/// IPVS's default TCP timeouts in seconds, indexed by [`State`].
const IPVS_TCP_S: [u64; STATE_COUNT] = [
    2,   // NONE
    900, // ESTABLISHED
    120, // SYN_SENT
    60,  // SYN_RECV
    120, // FIN_WAIT
    120, // TIME_WAIT
    10,  // CLOSE
    60,  // CLOSE_WAIT
    30,  // LAST_ACK
    120, // LISTEN
    120, // SYNACK
];

/// IPVS's default UDP timeout in seconds.
const IPVS_UDP_S: u64 = 300;

/// How long a connection lives after its last packet, per state, in
/// nanoseconds. `Default` gives IPVS's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    tcp: [u64; STATE_COUNT],
    udp: u64,
    /// Client packets that prove an input-only connection (with its age).
    proof_packets: u32,
    /// Milliseconds an input-only connection must have lived to be proven.
    proof_ms: u32,
}

/// Default of the input-only proof's packet count: more than a blind
/// sender's SYN-then-ACK, fewer than a short request's.
pub const DEFAULT_PROOF_PACKETS: u32 = 8;
/// Default of the input-only proof's minimum age: a second, longer than a
/// spoofing sender's burst of packets to one tuple, shorter than a real
/// download.
pub const DEFAULT_PROOF_MS: u32 = 1000;

impl Default for Timeouts {
    fn default() -> Self {
        let mut tcp = [0; STATE_COUNT];
        for (t, s) in tcp.iter_mut().zip(IPVS_TCP_S) {
            *t = s * SEC;
        }
        Timeouts {
            tcp,
            udp: IPVS_UDP_S * SEC,
            proof_packets: DEFAULT_PROOF_PACKETS,
            proof_ms: DEFAULT_PROOF_MS,
        }
    }
}

/// The `[timeouts]` section's values; `None` keeps IPVS's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeoutOverrides {
    /// `tcp_established_s`: ESTABLISHED (default 900 s).
    pub tcp_established: Option<Duration>,
    /// `tcp_fin_wait_s`: FIN_WAIT (default 120 s), like `ipvsadm --set`'s
    /// `tcpfin`.
    pub tcp_fin_wait: Option<Duration>,
    /// `tcp_time_wait_s`: TIME_WAIT (default 120 s).
    pub tcp_time_wait: Option<Duration>,
    /// `tcp_syn_s`: every half-open state, SYN_SENT, SYN_RECV and SYNACK.
    /// When absent each keeps its IPVS default (120 s, 60 s, 120 s); when
    /// given, all three take it, so a SYN flood's entries (SYN_RECV) expire
    /// after exactly this long.
    pub tcp_syn: Option<Duration>,
    /// `udp_s`: UDP, and any other non-TCP protocol (default 300 s).
    pub udp: Option<Duration>,
    /// `proof_packets`: client packets that, with `proof`, prove an
    /// input-only (DR, TUN) connection (default [`DEFAULT_PROOF_PACKETS`]).
    pub proof_packets: Option<u32>,
    /// `proof_ms`: the age an input-only connection must reach to be
    /// proven (default [`DEFAULT_PROOF_MS`]).
    pub proof: Option<Duration>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Timeouts {
    /// IPVS's defaults with the configured values applied.
    pub fn with_overrides(o: TimeoutOverrides) -> Timeouts {
        let mut t = Timeouts::default();
        if let Some(d) = o.tcp_established {
            t.set_tcp(State::Established, d);
        }
        if let Some(d) = o.tcp_fin_wait {
            t.set_tcp(State::FinWait, d);
        }
        if let Some(d) = o.tcp_time_wait {
            t.set_tcp(State::TimeWait, d);
        }
        if let Some(d) = o.tcp_syn {
            for s in [State::SynSent, State::SynRecv, State::SynAck] {
                t.set_tcp(s, d);
            }
        }
        if let Some(d) = o.udp {
            t.udp = ns(d);
        }
        if let Some(n) = o.proof_packets {
            t.proof_packets = n;
        }
        if let Some(d) = o.proof {
            t.proof_ms = u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        }
        t
    }

    /// Client packets that, with [`Timeouts::proof_ms`], prove an
    /// input-only connection.
    #[inline]
    pub fn proof_packets(&self) -> u32 {
        self.proof_packets
    }

    /// Milliseconds an input-only connection must have lived to be proven.
    #[inline]
    pub fn proof_ms(&self) -> u32 {
        self.proof_ms
    }

    /// Sets one TCP state's timeout.
    pub fn set_tcp(&mut self, state: State, d: Duration) {
        self.tcp[state as usize] = ns(d);
    }

    /// Sets the UDP (non-TCP) timeout.
    pub fn set_udp(&mut self, d: Duration) {
        self.udp = ns(d);
    }

    /// A TCP state's timeout in nanoseconds.
    #[inline]
    pub fn tcp(&self, state: State) -> u64 {
        self.tcp[state as usize]
    }

    /// The UDP (non-TCP) timeout in nanoseconds.
    #[inline]
    pub fn udp(&self) -> u64 {
        self.udp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Original as IN, Reply as OUT};
    use State::{None as NO, SynAck as SA};

    const S: TcpFlags = TcpFlags::SYN;
    const SA_: TcpFlags = TcpFlags::SYN_ACK;
    const A: TcpFlags = TcpFlags::ACK;
    const FA: TcpFlags = TcpFlags::FIN_ACK;
    const R: TcpFlags = TcpFlags::RST;

    /// Runs segments through the tracker from NONE, returning each state.
    fn run(input_only: bool, segs: &[(Direction, TcpFlags)]) -> Vec<State> {
        let mut s = State::None;
        let mut io = input_only;
        segs.iter()
            .map(|&(d, f)| {
                s = next_state(s, d, f, io);
                if d == OUT {
                    io = false;
                }
                s
            })
            .collect()
    }

    #[test]
    fn handshake_seen_both_ways_is_established() {
        assert_eq!(run(false, &[(IN, S), (OUT, SA_), (IN, A)]), [SR, SR, ES]);
    }

    #[test]
    fn client_closing_first_goes_close_wait_then_time_wait() {
        let st = run(
            false,
            &[
                (IN, S),
                (OUT, SA_),
                (IN, A),
                (IN, FA),
                (OUT, A),
                (OUT, FA),
                (IN, A),
            ],
        );
        assert_eq!(st[3..], [CW, CW, TW, TW]);
    }

    #[test]
    fn server_closing_first_goes_fin_wait_then_time_wait() {
        let st = run(
            false,
            &[
                (IN, S),
                (OUT, SA_),
                (IN, A),
                (OUT, FA),
                (IN, A),
                (IN, FA),
                (OUT, A),
            ],
        );
        assert_eq!(st[3..], [FW, FW, TW, TW]);
    }

    #[test]
    fn rst_from_either_side_closes_an_established_connection() {
        for d in [IN, OUT] {
            assert_eq!(next_state(ES, d, R, false), CL);
            assert_eq!(next_state(ES, d, TcpFlags::RST_ACK, false), CL);
        }
    }

    #[test]
    fn client_rst_during_handshake_keeps_syn_recv() {
        // IPVS ignores a client RST in SYN_RECV; the server's RST closes.
        assert_eq!(next_state(SR, IN, R, false), SR);
        assert_eq!(next_state(SR, OUT, R, false), CL);
    }

    #[test]
    fn segment_without_syn_fin_ack_rst_closes() {
        assert_eq!(next_state(ES, IN, TcpFlags::NONE, false), CL);
        assert_eq!(next_state(ES, IN, TcpFlags::PSH, false), CL);
    }

    #[test]
    fn input_only_handshake_and_close_for_dr() {
        let st = run(true, &[(IN, S), (IN, A), (IN, FA), (IN, A)]);
        assert_eq!(st, [SR, ES, FW, FW]);
    }

    #[test]
    fn input_only_client_fin_is_fin_wait_not_close_wait() {
        assert_eq!(next_state(ES, IN, FA, true), FW);
        assert_eq!(next_state(ES, IN, FA, false), CW);
    }

    #[test]
    fn input_only_rst_closes() {
        assert_eq!(run(true, &[(IN, S), (IN, A), (IN, R)]), [SR, ES, CL]);
    }

    #[test]
    fn bare_syn_on_closing_states_restarts() {
        for s in [FW, TW, CL, CW, LA] {
            assert!(should_restart(s, IN, S), "{s:?}");
        }
    }

    #[test]
    fn syn_does_not_restart_open_states_replies_or_syn_ack() {
        for s in [NO, ES, SS, SR, LI, SA] {
            assert!(!should_restart(s, IN, S), "{s:?}");
        }
        assert!(!should_restart(TW, OUT, S));
        assert!(!should_restart(TW, IN, SA_));
        assert!(!should_restart(TW, IN, S | R));
    }

    #[test]
    fn default_timeouts_are_ipvs_defaults() {
        let t = Timeouts::default();
        let s = |n: u64| n * SEC;
        assert_eq!(t.tcp(NO), s(2));
        assert_eq!(t.tcp(ES), s(900));
        assert_eq!(t.tcp(SS), s(120));
        assert_eq!(t.tcp(SR), s(60));
        assert_eq!(t.tcp(FW), s(120));
        assert_eq!(t.tcp(TW), s(120));
        assert_eq!(t.tcp(CL), s(10));
        assert_eq!(t.tcp(CW), s(60));
        assert_eq!(t.tcp(LA), s(30));
        assert_eq!(t.tcp(LI), s(120));
        assert_eq!(t.tcp(SA), s(120));
        assert_eq!(t.udp(), s(300));
    }

    #[test]
    fn overrides_apply_to_their_states_only() {
        let t = Timeouts::with_overrides(TimeoutOverrides {
            tcp_established: Some(Duration::from_secs(7)),
            tcp_fin_wait: Some(Duration::from_secs(8)),
            tcp_syn: Some(Duration::from_secs(9)),
            udp: Some(Duration::from_secs(10)),
            ..Default::default()
        });
        assert_eq!(t.tcp(ES), 7 * SEC);
        assert_eq!(t.tcp(FW), 8 * SEC);
        for st in [SS, SR, SA] {
            assert_eq!(t.tcp(st), 9 * SEC);
        }
        assert_eq!(t.udp(), 10 * SEC);
        assert_eq!(t.tcp(TW), 120 * SEC);
        assert_eq!(t.tcp(CL), 10 * SEC);
        assert_eq!(
            Timeouts::with_overrides(TimeoutOverrides::default()),
            Timeouts::default()
        );
    }

    #[test]
    fn the_time_wait_override_applies_to_time_wait_only() {
        let t = Timeouts::with_overrides(TimeoutOverrides {
            tcp_time_wait: Some(Duration::from_secs(2)),
            ..Default::default()
        });
        assert_eq!(t.tcp(TW), 2 * SEC);
        assert_eq!(t.tcp(FW), Timeouts::default().tcp(FW));
        assert_eq!(t.tcp(CL), Timeouts::default().tcp(CL));
    }

    #[test]
    fn only_established_is_active() {
        for s in State::ALL {
            assert_eq!(s.is_active(), s == ES);
            assert_eq!(State::from_u8(s as u8), Some(s));
        }
        assert_eq!(State::from_u8(11), None);
    }
}
