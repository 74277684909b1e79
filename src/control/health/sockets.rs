//! The sockets probes use, opened from a check's `source_address` when it
//! has one: bound before they connect, so the probe leaves from that
//! address whatever the route says. A source this host does not hold fails
//! the bind with `EADDRNOTAVAIL`, which the checker treats as its own
//! problem (a probe skipped), not the server's.
//!
//! Also [`Fd`]: any descriptor (a raw ICMP socket, a pidfd) as a `mio`
//! event source, for the probes `mio` has no type for.

use mio::event::Source;
use mio::net::{TcpStream, UdpSocket};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

/// A non-blocking TCP connection to `endpoint` in progress, from `source`
/// (any port) when given.
pub(super) fn tcp_connect(endpoint: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(endpoint);
    };
    let endpoint = ipv4_only(endpoint)?;
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(&fd, &SocketAddrV4::new(source, 0))?;
    match rustix::net::connect(&fd, &endpoint) {
        Ok(()) | Err(Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(fd)))
}

/// A non-blocking UDP socket connected to `endpoint` (so the kernel
/// reports an ICMP port unreachable as `ECONNREFUSED` and drops datagrams
/// from anyone else), bound to `source` (any port) when given.
pub(super) fn udp_connect(endpoint: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<UdpSocket> {
    let local = match (endpoint, source) {
        (SocketAddr::V6(_), None) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
        (_, source) => {
            ipv4_only(endpoint)?;
            SocketAddr::from((source.unwrap_or(Ipv4Addr::UNSPECIFIED), 0))
        }
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.set_nonblocking(true)?;
    socket.connect(endpoint)?;
    Ok(UdpSocket::from_std(socket))
}

/// `endpoint` when it is IPv4: a check's `source_address` is an IPv4
/// address, which an IPv6 probe cannot leave from. The error is the
/// checker's own problem (the probe is skipped, the server not failed),
/// as for a source this host lacks.
fn ipv4_only(endpoint: SocketAddr) -> io::Result<SocketAddrV4> {
    match endpoint {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "an IPv4 source_address cannot probe an IPv6 real server",
        )),
    }
}

/// A non-blocking raw ICMP socket (CAP_NET_RAW), bound to `source` when
/// given; it receives every ICMP message for this host, IP header first.
pub(super) fn icmp_raw(source: Option<Ipv4Addr>) -> io::Result<Fd> {
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::RAW,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(rustix::net::ipproto::ICMP),
    )?;
    if let Some(source) = source {
        rustix::net::bind(&fd, &SocketAddrV4::new(source, 0))?;
    }
    Ok(Fd(fd))
}

/// An owned descriptor registered with `mio` by number.
#[derive(Debug)]
pub(super) struct Fd(pub OwnedFd);

impl Source for Fd {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).deregister(registry)
    }
}
