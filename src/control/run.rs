//! The control thread's loop: every tick it answers `rvsadm` on the control
//! socket, sends a gratuitous ARP round when one is due, applies the
//! health checks' results, tells bird2 what to announce, handles signals (SIGHUP reloads, the others
//! stop) and logs link changes. The binary supplies the signals and reads
//! the ports' links; one tick is a plain function, tested without DPDK.

use super::answer::answer;
use super::socket::ControlSocket;
use super::state::ControlState;
use crate::info;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::time::Instant;

/// Whether the loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Another tick.
    Continue,
    /// A stop signal: leave the loop.
    Stop,
}

/// The links the loop watches: each interface's name, the state last seen,
/// and how to read them now (the binary asks its DPDK ports).
pub struct LinkWatch<'a> {
    names: Vec<String>,
    up: Vec<bool>,
    read: Box<dyn Fn() -> Vec<bool> + 'a>,
}

impl<'a> LinkWatch<'a> {
    /// Watches interfaces `names` whose links `read` returns, in the same
    /// order; their state now is the starting point.
    pub fn new(names: Vec<String>, read: impl Fn() -> Vec<bool> + 'a) -> LinkWatch<'a> {
        let up = read();
        LinkWatch {
            names,
            up,
            read: Box::new(read),
        }
    }

    /// Reads the links, logs each one that changed, and returns the changes
    /// as (interface index, up).
    pub fn poll(&mut self) -> Vec<(usize, bool)> {
        let mut changes = Vec::new();
        for (i, (seen, up)) in self.up.iter_mut().zip((self.read)()).enumerate() {
            if *seen != up {
                let name = self.names.get(i).map_or("?", String::as_str);
                info!("interface {name}: link {}", if up { "up" } else { "down" });
                *seen = up;
                changes.push((i, up));
            }
        }
        changes
    }
}

/// One pass of the loop; `signals` are those received since the last.
pub fn tick(
    state: &mut ControlState,
    socket: Option<&ControlSocket>,
    links: &mut LinkWatch<'_>,
    signals: impl IntoIterator<Item = i32>,
) -> Flow {
    if let Some(sock) = socket {
        sock.serve_pending(|req| answer(req, state));
    }
    state.tick(Instant::now());
    state.poll_health();
    state.poll_passive(Instant::now());
    state.poll_announce(Instant::now());
    for sig in signals {
        if on_signal(state, sig) == Flow::Stop {
            return Flow::Stop;
        }
    }
    links.poll();
    Flow::Continue
}

/// Installs the handlers of the signals the loop understands (see
/// `on_signal`). rvsd does it first of all, so a SIGTERM during a slow EAL
/// start is not lost.
pub fn signals() -> std::io::Result<Signals> {
    Signals::new([SIGTERM, SIGINT, SIGHUP])
}

/// SIGHUP reloads the config file (a refused file is logged and the
/// running config kept); any other signal stops rvsd.
pub fn on_signal(state: &mut ControlState, sig: i32) -> Flow {
    if sig == SIGHUP {
        info!("SIGHUP: reloading {}", state.config_path().display());
        let _ = state.reload();
        Flow::Continue
    } else {
        info!("signal {sig}: stopping");
        Flow::Stop
    }
}
