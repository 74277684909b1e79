//! How a TCP handshake the balancer forwarded to a real server ended, as
//! the passive checks count it (`control::passive` judges the counts).
//!
//! Why here and this way: a real server that resets real clients while
//! it still accepts the health check's connection, or that stops
//! answering SYNs between two active checks, shows it first on the data
//! path. The worker already holds the connection's cache line for every
//! packet, so it decides the handshake's outcome from that line alone:
//! one flag bit (`Conn::awaits_syn_ack`) says the SYN went to the server
//! and nothing decided the handshake yet, and the line's creation time
//! gives its age. No timer: a handshake times out when a packet (typically
//! the client's retransmitted SYN, a second after the first) or the
//! connection's end (expiry, eviction, reuse) meets it still waiting and
//! older than the service's `syn_timeout_ms`. Each handshake ends at most
//! once: the outcome clears the flag.
//!
//! Only where the balancer sees the replies (NAT, and the SYN proxy, whose
//! own SYN to the server is the attempt): DR and TUN replies bypass it.

use super::conn::Direction;
use super::tcp_state::TcpFlags;

/// The default of `syn_timeout_ms`: a client's first SYN retransmission
/// comes after one second (RFC 6298's initial RTO), the classic sign of a
/// SYN nobody answered.
pub const DEFAULT_SYN_TIMEOUT_MS: u32 = 1000;

/// How a forwarded handshake ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The server's SYN-ACK came within the timeout.
    Ok,
    /// The server reset the connection before its SYN-ACK.
    Reset,
    /// No SYN-ACK within `syn_timeout_ms` of the first SYN.
    TimedOut,
}

/// The outcome a packet going `dir` with `flags` decides for a handshake
/// still waiting for its SYN-ACK, `age_ms` after the first SYN; `None`
/// when it decides nothing. A client's reset before the timeout abandons
/// the handshake: `Some(None)` (the caller stops waiting, counts nothing).
///
/// Time first: past the timeout the handshake has timed out, whichever
/// packet tells (a late SYN-ACK included), so the outcome does not depend
/// on which side's packet comes first.
#[inline]
pub fn decide(
    dir: Direction,
    flags: TcpFlags,
    age_ms: u32,
    timeout_ms: u32,
) -> Option<Option<Handshake>> {
    if age_ms >= timeout_ms {
        return Some(Some(Handshake::TimedOut));
    }
    let rst = flags.contains(TcpFlags::RST);
    match dir {
        Direction::Reply if rst => Some(Some(Handshake::Reset)),
        Direction::Reply if flags.contains(TcpFlags::SYN_ACK) => Some(Some(Handshake::Ok)),
        Direction::Original if rst => Some(None),
        _ => None,
    }
}

/// The outcome of a handshake still waiting when its connection ends
/// (expired, evicted, reused), `age_ms` after the first SYN: timed out
/// when older than the timeout, else abandoned (`None`).
#[inline]
pub fn at_end(age_ms: u32, timeout_ms: u32) -> Option<Handshake> {
    (age_ms >= timeout_ms).then_some(Handshake::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u32 = 1000;

    #[test]
    fn a_syn_ack_within_the_timeout_is_a_completed_handshake() {
        assert_eq!(
            decide(Direction::Reply, TcpFlags::SYN_ACK, 3, T),
            Some(Some(Handshake::Ok))
        );
    }

    #[test]
    fn a_server_reset_before_its_syn_ack_is_a_reset_handshake() {
        for flags in [TcpFlags::RST, TcpFlags::RST_ACK] {
            assert_eq!(
                decide(Direction::Reply, flags, 1, T),
                Some(Some(Handshake::Reset))
            );
        }
    }

    #[test]
    fn a_client_packet_past_the_timeout_times_the_handshake_out() {
        assert_eq!(
            decide(Direction::Original, TcpFlags::SYN, T, T),
            Some(Some(Handshake::TimedOut))
        );
    }

    #[test]
    fn a_syn_ack_past_the_timeout_is_still_a_timeout() {
        assert_eq!(
            decide(Direction::Reply, TcpFlags::SYN_ACK, T + 500, T),
            Some(Some(Handshake::TimedOut))
        );
    }

    #[test]
    fn a_client_segment_within_the_timeout_decides_nothing() {
        assert_eq!(decide(Direction::Original, TcpFlags::SYN, T - 1, T), None);
        assert_eq!(decide(Direction::Original, TcpFlags::ACK, 5, T), None);
    }

    #[test]
    fn a_client_reset_within_the_timeout_abandons_the_handshake() {
        assert_eq!(decide(Direction::Original, TcpFlags::RST, 5, T), Some(None));
    }

    #[test]
    fn a_connection_ending_while_waiting_times_out_only_past_the_timeout() {
        assert_eq!(at_end(T, T), Some(Handshake::TimedOut));
        assert_eq!(at_end(T - 1, T), None);
    }
}
