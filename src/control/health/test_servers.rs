//! Servers on 127.0.0.1 for the probes' tests, each on a thread of its
//! own: TCP ones until their [`Stop`] is dropped, UDP ones until their
//! flag is set.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Stops a test server's thread when dropped.
pub(super) struct Stop(pub Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Serves each connection accepted on `l` with `handle` (blocking, with
/// a 2 s read timeout), one at a time, until the result is dropped.
pub(super) fn serve_on(l: TcpListener, handle: impl Fn(TcpStream) + Send + 'static) -> Stop {
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    handle(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Stop(stop)
}

/// [`serve_on`] a fresh port; the port and the guard.
pub(super) fn serve(handle: impl Fn(TcpStream) + Send + 'static) -> (u16, Stop) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (port, serve_on(l, handle))
}

/// A UDP socket bound on 127.0.0.1 (it answers nothing: no port
/// unreachable either) and its address.
pub(super) fn udp_bound() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

/// A UDP server whose `answer` turns each datagram into the datagrams
/// sent back (none, one, or a stray one first), until the flag is set.
pub(super) fn udp_responder(
    answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, Arc<AtomicBool>) {
    let (s, addr) = udp_bound();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                for d in answer(&buf[..n]) {
                    let _ = s.send_to(&d, from);
                }
            }
        }
    });
    (addr, stop)
}
