//! A liveness TUN interface: a network device that exists exactly as long
//! as the process holding its file descriptor.
//!
//! Why a TUN: BIRD's static routes can go `via "<interface>"`; such a route
//! is reachable only while that interface is up. rvsd holds one
//! non-persistent TUN device open for its whole life, so when rvsd dies,
//! even by `kill -9`, the kernel closes the descriptor, destroys the
//! device, BIRD's device protocol sees it go and the routes through it are
//! withdrawn over BGP at once, with no timer involved. Up and down (while
//! rvsd lives) are the administrative flag, set with `SIOCSIFFLAGS`.
//!
//! No packet is ever read or written on the device: it carries no traffic.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The clone device TUN interfaces are made from.
const CLONE_DEVICE: &str = "/dev/net/tun";

/// Longest interface name the kernel takes (IFNAMSIZ less the NUL).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// An open, non-persistent TUN interface; dropping it (or the process
/// ending in any way) destroys the interface. Not `Clone`: one owner.
#[derive(Debug)]
pub struct LivenessTun {
    /// The TUN descriptor that keeps the device alive.
    _device: File,
    /// An `AF_INET` datagram socket, the handle `SIOCSIFFLAGS` needs.
    control: OwnedFd,
    name: String,
}

/// Why `name` cannot name a network interface, if it cannot: 1 to
/// `MAX_NAME_LEN` bytes, not `.` or `..`, without `/`, `:`, NUL or
/// whitespace (the kernel's `dev_valid_name`).
pub fn invalid_name(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Some(format!(
            "an interface name has 1 to {MAX_NAME_LEN} bytes, {name:?} has {}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is not an interface name"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Some(format!(
            "{name:?}: an interface name has no '/', ':', NUL or whitespace"
        ));
    }
    None
}

/// An `ifreq` naming `name` (checked by `invalid_name`), the rest zero.
fn request(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct (a name array and a union of
    // integers, sockaddrs and a pointer); all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

impl LivenessTun {
    /// Creates TUN interface `name` (without packet information headers),
    /// down. Fails when the name is invalid, `/dev/net/tun` cannot be
    /// opened (no CAP_NET_ADMIN, no tun module) or the name is taken by
    /// another device or another process's TUN.
    pub fn create(name: &str) -> io::Result<LivenessTun> {
        if let Some(why) = invalid_name(name) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        }
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open(CLONE_DEVICE)
            .map_err(|e| io::Error::new(e.kind(), format!("{CLONE_DEVICE}: {e}")))?;
        let mut req = request(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is and
        // which outlives the call; the descriptor is open (owned by
        // `device`).
        let rc = unsafe { libc::ioctl(device.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
        }
        let control = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::DGRAM,
            None,
        )
        .map_err(io::Error::from)?;
        Ok(LivenessTun {
            _device: device,
            control,
            name: name.to_string(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's flags now (`SIOCGIFFLAGS`).
    fn flags(&self) -> io::Result<libc::c_short> {
        let mut req = request(&self.name);
        // SAFETY: SIOCGIFFLAGS fills `ifru_flags` of the ifreq it is
        // given, which lives across the call; the socket is open.
        let rc = unsafe { libc::ioctl(self.control.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just wrote the flags member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_flags })
    }

    /// True while the interface is administratively up.
    pub fn is_up(&self) -> io::Result<bool> {
        Ok(self.flags()? & libc::IFF_UP as libc::c_short != 0)
    }

    /// Brings the interface up or down (`SIOCSIFFLAGS`), other flags kept.
    pub fn set_up(&self, up: bool) -> io::Result<()> {
        let flags = self.flags()?;
        let want = if up {
            flags | libc::IFF_UP as libc::c_short
        } else {
            flags & !(libc::IFF_UP as libc::c_short)
        };
        if want == flags {
            return Ok(());
        }
        let mut req = request(&self.name);
        req.ifr_ifru.ifru_flags = want;
        // SAFETY: SIOCSIFFLAGS reads the ifreq it is given, which lives
        // across the call; the socket is open.
        let rc = unsafe { libc::ioctl(self.control.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("{} {}: {e}", self.name, if up { "up" } else { "down" }),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_takes_are_valid() {
        assert_eq!(invalid_name("rvs-live"), None);
        assert_eq!(invalid_name("a23456789012345"), None);
    }

    #[test]
    fn empty_long_and_odd_names_are_refused() {
        for bad in ["", "a234567890123456", ".", "..", "a/b", "a:b", "a b"] {
            assert!(invalid_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn an_invalid_name_is_refused_before_any_system_call() {
        let e = LivenessTun::create("no/slash").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
