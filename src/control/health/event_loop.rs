//! The thread that runs every probe: one event loop over non-blocking
//! sockets and a timer heap, as keepalived's checkers are one thread.
//!
//! Why one loop: a probe spends nearly all its life waiting (for a
//! handshake, an answer, or its timeout), and waiting costs nothing in an
//! event loop, whereas a thread per probe cost 1,005 threads for 1,000
//! servers. Each probe is a state machine (`check::Check`) resumed by its
//! socket's readiness events; the loop's work is a few system calls per
//! probe, so 10,000 servers checked every second take a small part of one
//! core, and one silent server never delays another (its probe just waits
//! in the heap for its deadline).
//!
//! Why epoll through `mio` rather than poll(2) or a pool of blocking
//! threads: the standard library has no non-blocking connect nor any
//! readiness call, and `unsafe` lives only in `src/dpdk`; `mio` gives both
//! behind a safe API (`socket2` alone gives the connect but no readiness,
//! and a libc poll(2) wrapper would need `unsafe` here). poll(2) would
//! also rescan every socket in flight on each wake-up (10,000 when that
//! many servers are silent), epoll only the ready ones; a fixed pool of
//! blocking threads would hold a thread per probe waiting for its timeout,
//! so a pool of N could run at most N silent checks per timeout.
//!
//! Timing: a target's probes start on a fixed grid (each start is the
//! previous scheduled start plus the interval, so a late wake-up does not
//! drift the schedule; a start later than a tenth of the interval moves
//! the grid rather than bunch the next probes), a probe's deadline is its actual start plus its
//! timeout, and a probe still running at its next slot pushes that slot to
//! its end (probes of one target never overlap). A probe at its deadline
//! first looks at its socket once more: a loop that fell behind (a busy
//! host) may not have taken its answer's event yet, and only a server that
//! did not answer in time fails. The heap's lazy entries
//! are checked against the target's current state when they fire, so
//! removing a target or finishing a probe early needs no heap surgery.

use super::check::Check;
use super::probe::{StartError, Step};
use super::CheckResult;
use crate::control::config::HealthCheckConfig;
use crate::warn;
use mio::{Events, Interest, Poll, Token, Waker};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The waker's token; probes use their target's id.
const WAKER: Token = Token(usize::MAX);
/// Readiness events taken per wake-up.
const EVENTS: usize = 1024;
/// Most probes started per turn of the loop: a loop that fell behind
/// (a busy host) takes the answers of the probes in flight between
/// batches of starts, so their latencies stay true.
const STARTS_PER_TURN: usize = 256;
/// Shortest time between two warnings that probes could not start for
/// lack of local resources.
const LOCAL_WARN_EVERY: Duration = Duration::from_secs(10);

/// A target to check from now on.
#[derive(Clone, Debug)]
pub(super) struct Job {
    /// Its id, in reports.
    pub id: u64,
    /// Where probes go.
    pub endpoint: SocketAddr,
    /// How (never `none`).
    pub check: HealthCheckConfig,
    /// When its first probe starts.
    pub first: Instant,
    /// Its virtual server's name (a `script` check is told it).
    pub name: String,
}

/// A probe result for the checker.
#[derive(Debug)]
pub(super) struct Report {
    /// The target's id.
    pub id: u64,
    /// What the probe found.
    pub result: CheckResult,
}

/// What the checker tells the loop.
enum Command {
    /// Start checking `add`, stop checking `remove` (ids).
    Apply { add: Vec<Job>, remove: Vec<u64> },
    /// End the thread.
    Stop,
}

/// The checker's handle on the loop thread.
pub(super) struct LoopHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl LoopHandle {
    /// Starts the loop thread, which sends its results to `reports` and
    /// holds a clone of `alive` while it runs.
    pub(super) fn start(reports: Sender<Report>, alive: Arc<()>) -> io::Result<LoopHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rvs-health".into())
            .spawn(move || {
                let _alive = alive;
                EventLoop {
                    poll,
                    inbox,
                    reports,
                    targets: HashMap::new(),
                    timers: BinaryHeap::new(),
                    last_local_warning: None,
                    unbindable: HashSet::new(),
                }
                .run();
            })?;
        Ok(LoopHandle {
            commands,
            waker,
            thread: Some(thread),
        })
    }

    fn send(&self, command: Command) {
        // A loop that ended (it never does before `Stop`) drops commands.
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Starts checking `add` and stops checking `remove`, in one message.
    pub(super) fn apply(&self, add: Vec<Job>, remove: Vec<u64>) {
        if !add.is_empty() || !remove.is_empty() {
            self.send(Command::Apply { add, remove });
        }
    }

    /// Stops the loop and waits up to `within` for its thread; the loop
    /// never blocks, so it ends at its next wake-up (at once).
    pub(super) fn stop(&mut self, within: Duration) {
        self.send(Command::Stop);
        let deadline = Instant::now() + within;
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// The start of a target's next probe, after one scheduled at `slot`
/// that started at `started`: one interval after the slot, so a start a
/// little late (less than a tenth of the interval) does not drift the
/// schedule; one interval after the actual start, less that tenth, when it
/// was later (a loop that fell behind spaces the probes again instead of
/// catching up in a burst); and never before `now` (a probe longer than
/// the interval is followed at once).
fn next_slot(slot: Instant, started: Instant, interval: Duration, now: Instant) -> Instant {
    let slack = interval / 10;
    (slot + interval).max(started + interval - slack).max(now)
}

/// One target in the loop.
struct Checked {
    endpoint: SocketAddr,
    check: HealthCheckConfig,
    name: String,
    /// The scheduled start of the next probe, or of the one in flight.
    next: Instant,
    probe: Option<Check>,
}

/// The loop's state, owned by its thread.
struct EventLoop {
    poll: Poll,
    inbox: Receiver<Command>,
    reports: Sender<Report>,
    targets: HashMap<u64, Checked>,
    /// (when, target id): a probe to start or a deadline to enforce;
    /// entries that no longer match the target's state are skipped.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    last_local_warning: Option<Instant>,
    /// Source addresses probes could not bind, each said once (again
    /// after a probe bound it).
    unbindable: HashSet<Ipv4Addr>,
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = self
                .timers
                .peek()
                .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Not expected from epoll_wait with valid arguments;
                    // do not spin if it happens.
                    warn!("health checks: waiting for events failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let mut woken = false;
            for event in events.iter() {
                if event.token() == WAKER {
                    woken = true;
                    continue;
                }
                let id = event.token().0 as u64;
                let Some(t) = self.targets.get_mut(&id) else {
                    continue;
                };
                let Some(p) = t.probe.as_mut() else {
                    continue;
                };
                // The clock is read per probe: cheap (vDSO), and a long
                // batch does not stretch the latencies it reports.
                let now = Instant::now();
                if let Step::Done(result) = p.advance(now) {
                    self.finish(id, Some(result), now);
                }
            }
            if woken && !self.take_commands(Instant::now()) {
                return;
            }
            self.fire_timers();
        }
    }

    /// Applies every queued command; false on `Stop` (or when the
    /// checker is gone).
    fn take_commands(&mut self, now: Instant) -> bool {
        loop {
            match self.inbox.try_recv() {
                Ok(Command::Apply { add, remove }) => {
                    for id in remove {
                        if let Some(mut t) = self.targets.remove(&id) {
                            if let Some(p) = t.probe.as_mut() {
                                let _ = self.poll.registry().deregister(p.source());
                            }
                        }
                    }
                    for job in add {
                        let first = job.first.max(now);
                        self.timers.push(Reverse((first, job.id)));
                        self.targets.insert(
                            job.id,
                            Checked {
                                endpoint: job.endpoint,
                                check: job.check,
                                name: job.name,
                                next: first,
                                probe: None,
                            },
                        );
                    }
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    /// Fails the probes past their deadline and starts those due, at most
    /// `STARTS_PER_TURN` (the rest are still due at the next turn, whose
    /// wait is then zero).
    fn fire_timers(&mut self) {
        let mut started = 0;
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            let now = Instant::now();
            if at > now || started == STARTS_PER_TURN {
                break;
            }
            self.timers.pop();
            let Some(t) = self.targets.get_mut(&id) else {
                continue;
            };
            match &mut t.probe {
                Some(p) if now >= p.deadline() => {
                    // Its answer may be waiting in a batch of events not
                    // taken yet (a loop that fell behind): look first, so
                    // only a server that did not answer in time fails.
                    let result = match p.advance(now) {
                        Step::Done(r) => r,
                        Step::Pending => p.expire(now),
                    };
                    self.finish(id, Some(result), now);
                }
                Some(_) => {}
                None if now >= t.next => {
                    started += 1;
                    self.start(id, now);
                }
                None => {}
            }
        }
    }

    /// Starts a probe of target `id`.
    fn start(&mut self, id: u64, now: Instant) {
        let Some(t) = self.targets.get_mut(&id) else {
            return;
        };
        let source = t.check.source_address;
        match Check::start(t.endpoint, &t.check, &t.name, now) {
            Ok(mut p) => {
                if let Some(a) = source {
                    self.unbindable.remove(&a);
                }
                let registered = self.poll.registry().register(
                    p.source(),
                    Token(id as usize),
                    Interest::READABLE | Interest::WRITABLE,
                );
                match registered {
                    Ok(()) => {
                        self.timers.push(Reverse((p.deadline(), id)));
                        t.probe = Some(p);
                    }
                    Err(e) => {
                        self.local_shortage(&e, now);
                        self.finish(id, None, now);
                    }
                }
            }
            Err(StartError::Failed(result)) => self.finish(id, Some(result), now),
            Err(StartError::Local(e)) => {
                match source {
                    Some(a) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                        self.source_unavailable(a, &e)
                    }
                    _ => self.local_shortage(&e, now),
                }
                self.finish(id, None, now);
            }
        }
    }

    /// Ends target `id`'s probe (if any): reports `result` (none when the
    /// probe could not run for lack of local resources) and schedules the
    /// next probe (`next_slot`).
    fn finish(&mut self, id: u64, result: Option<CheckResult>, now: Instant) {
        let Some(t) = self.targets.get_mut(&id) else {
            return;
        };
        let started = result.as_ref().map_or(now, |r| r.started);
        // Closing the socket (dropping the probe) takes it out of the
        // epoll set: no deregistration call needed.
        t.probe = None;
        t.next = next_slot(t.next, started, t.check.interval, now);
        self.timers.push(Reverse((t.next, id)));
        if let Some(result) = result {
            // The checker gone means a `Stop` is on its way.
            let _ = self.reports.send(Report { id, result });
        }
    }

    /// Says once per address that probes from `source_address` cannot
    /// leave (it is not an address of this host, or no local port is left
    /// on it): they are skipped, the servers keep their state.
    fn source_unavailable(&mut self, source: Ipv4Addr, e: &io::Error) {
        if self.unbindable.insert(source) {
            warn!(
                "health checks: cannot send from source_address {source} ({e}): is it an \
                 address of this host? Probes from it are skipped, not counted against the \
                 servers, until it can be bound"
            );
        }
    }

    /// Says, at most every `LOCAL_WARN_EVERY`, that probes are skipped for
    /// lack of sockets, ports or memory on this host.
    fn local_shortage(&mut self, e: &io::Error, now: Instant) {
        if self
            .last_local_warning
            .is_none_or(|at| now.duration_since(at) >= LOCAL_WARN_EVERY)
        {
            self.last_local_warning = Some(now);
            warn!("health checks: a probe could not start on this host ({e}); skipped, not counted against the server");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_slot;
    use std::time::{Duration, Instant};

    const SECOND: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_probe_started_on_time_is_followed_one_interval_after_its_slot() {
        let t = Instant::now();
        assert_eq!(next_slot(t, t, SECOND, t + ms(3)), t + SECOND);
    }

    #[test]
    fn a_slightly_late_start_keeps_the_grid() {
        let t = Instant::now();
        assert_eq!(next_slot(t, t + ms(40), SECOND, t + ms(45)), t + SECOND);
    }

    #[test]
    fn a_much_later_start_moves_the_grid_instead_of_bunching_the_next_probe() {
        let t = Instant::now();
        let started = t + ms(700);
        assert_eq!(
            next_slot(t, started, SECOND, started + ms(5)),
            started + ms(900)
        );
    }

    #[test]
    fn a_probe_longer_than_the_interval_is_followed_at_once() {
        let t = Instant::now();
        let now = t + ms(2500);
        assert_eq!(next_slot(t, t, SECOND, now), now);
    }
}
