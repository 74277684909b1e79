//! The clients of a stream server that no client can stall: the control
//! socket and the metrics endpoint both serve through it.
//!
//! Why this shape: a server that reads one client at a time, even with a
//! timeout, is held by a client that sends nothing (one timeout each) or a
//! byte at a time (forever). Here every socket is non-blocking and one
//! `poll(2)` (through `rustix`, so no `unsafe`) watches them all, so a
//! server thread only ever waits for whichever client is ready. Each
//! client has a deadline: its request must arrive whole within
//! `request_timeout` of its connection, and its answer must be taken
//! within `answer_timeout`, else it is closed and counted. The number of
//! clients is capped: one more is closed at once and counted. Answers are
//! written in bounded chunks as the client takes them, so a big answer
//! (`rvsadm conns` with 100,000 connections) never blocks the thread.
//!
//! [`Clients`] is the bookkeeping (phases, buffers, deadlines, counters)
//! over any `Read + Write` stream, so it is tested with in-memory streams;
//! [`wait`] is the `poll(2)` over a listener and the clients.

use rustix::event::{PollFd, PollFlags, Timespec};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A client's number, unique for the life of its server.
pub type ClientId = u64;

/// The bounds a server holds its clients to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Clients served at once; one more is closed at once (`refused`).
    pub max_clients: usize,
    /// Longest request accepted, in bytes (terminator included).
    pub max_request: usize,
    /// The whole request must arrive within this of the connection.
    pub request_timeout: Duration,
    /// The whole answer must be taken within this of its being ready.
    pub answer_timeout: Duration,
}

/// Connections a server accepts in one pass, so accepting cannot starve
/// its clients.
pub const ACCEPT_BURST: usize = 64;

/// Most bytes written to one client in one pass, so one fast reader of a
/// big answer does not keep the others waiting.
const WRITE_CHUNK: usize = 256 * 1024;

/// How a server's clients fared, since it started. Shared with the threads
/// that report them (`rvsadm stats`, metrics), hence atomics.
#[derive(Debug, Default)]
pub struct ClientCounters {
    accepted: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
    denied: AtomicU64,
    bad_requests: AtomicU64,
    answered: AtomicU64,
}

/// A copy of [`ClientCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// Connections taken in (within the cap).
    pub accepted: u64,
    /// Connections closed at once because the cap was reached.
    pub refused: u64,
    /// Clients closed because their request or answer missed its deadline.
    pub timed_out: u64,
    /// Requests refused for the client's access level.
    pub denied: u64,
    /// Requests that were too long or did not parse.
    pub bad_requests: u64,
    /// Answers written whole.
    pub answered: u64,
}

impl ClientCounts {
    /// The counters by name, as `rvsadm stats` shows them.
    pub fn to_json(&self) -> Value {
        json!({
            "accepted": self.accepted,
            "refused": self.refused,
            "timed_out": self.timed_out,
            "denied": self.denied,
            "bad_requests": self.bad_requests,
            "answered": self.answered,
        })
    }

    /// (name, value) of every counter, in a fixed order (metrics labels).
    pub fn named(&self) -> [(&'static str, u64); 6] {
        [
            ("accepted", self.accepted),
            ("refused", self.refused),
            ("timed_out", self.timed_out),
            ("denied", self.denied),
            ("bad_request", self.bad_requests),
            ("answered", self.answered),
        ]
    }
}

impl ClientCounters {
    /// The counters now.
    pub fn get(&self) -> ClientCounts {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientCounts {
            accepted: n(&self.accepted),
            refused: n(&self.refused),
            timed_out: n(&self.timed_out),
            denied: n(&self.denied),
            bad_requests: n(&self.bad_requests),
            answered: n(&self.answered),
        }
    }

    /// Counts a request refused for the client's access level.
    pub fn count_denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request that was too long or did not parse.
    pub fn count_bad_request(&self) {
        self.bad_requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where the end of a request is in what arrived so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Not yet whole.
    Incomplete,
    /// Whole: the request is the first this many bytes.
    Complete(usize),
    /// Longer than allowed without being whole.
    TooLong,
}

/// A request that ends at its first newline (the control socket's JSON
/// line), at most `max` bytes with the newline.
pub fn line_frame(buf: &[u8], max: usize) -> Framing {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i < max => Framing::Complete(i + 1),
        Some(_) => Framing::TooLong,
        None if buf.len() >= max => Framing::TooLong,
        None => Framing::Incomplete,
    }
}

/// An HTTP request head, ended by an empty line (CRLF or bare LF), at most
/// `max` bytes.
pub fn http_head_frame(buf: &[u8], max: usize) -> Framing {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match end {
        Some(n) if n <= max => Framing::Complete(n),
        Some(_) => Framing::TooLong,
        None if buf.len() >= max => Framing::TooLong,
        None => Framing::Incomplete,
    }
}

/// Where a client is in its one exchange.
#[derive(Debug)]
enum Phase {
    /// Its request is arriving.
    Reading,
    /// Its request was handed out; the answer is being made.
    Waiting,
    /// Its answer is being written.
    Writing {
        out: Vec<u8>,
        sent: usize,
        more: Option<Box<dyn Chunks>>,
    },
}

/// An answer made a chunk at a time, as the client takes it, so a big one
/// is neither built whole in memory nor serialised in one go.
pub trait Chunks: Send + std::fmt::Debug {
    /// Appends the next part of the answer to `out`, about `hint` bytes
    /// (more if one piece is bigger); false once the answer is complete.
    fn fill(&mut self, out: &mut Vec<u8>, hint: usize) -> bool;
}

/// A whole answer, as one chunk.
#[derive(Debug)]
struct Whole(Option<Vec<u8>>);

impl Chunks for Whole {
    fn fill(&mut self, out: &mut Vec<u8>, _hint: usize) -> bool {
        if let Some(bytes) = self.0.take() {
            out.extend_from_slice(&bytes);
        }
        false
    }
}

/// One client: its stream, what the server knows of it (`tag`), its phase
/// and its deadline.
#[derive(Debug)]
struct Client<S, T> {
    stream: S,
    tag: T,
    phase: Phase,
    buf: Vec<u8>,
    deadline: Option<Instant>,
}

/// What reading a client gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// More is needed (or the client is not reading).
    Pending,
    /// A whole request (terminator included); the client now waits for
    /// its answer.
    Request(Vec<u8>),
    /// The request is longer than allowed; the client waits for an error.
    TooLong,
    /// The client went away or failed: it is closed.
    Closed,
}

/// Which way a client is waited on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Its request is arriving.
    Read,
    /// Its answer is being written.
    Write,
}

/// A server's clients.
#[derive(Debug)]
pub struct Clients<S, T> {
    map: BTreeMap<ClientId, Client<S, T>>,
    next: ClientId,
    limits: Limits,
    counters: std::sync::Arc<ClientCounters>,
}

impl<S: Read + Write, T> Clients<S, T> {
    /// No clients yet, held to `limits`, counted in `counters`.
    pub fn new(limits: Limits, counters: std::sync::Arc<ClientCounters>) -> Clients<S, T> {
        Clients {
            map: BTreeMap::new(),
            next: 0,
            limits,
            counters,
        }
    }

    /// The counters.
    pub fn counters(&self) -> &ClientCounters {
        &self.counters
    }

    /// Clients being served.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no client is being served.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Takes in a new client (its request due by `now + request_timeout`),
    /// or, at the cap, drops it (closing it) and counts it refused.
    pub fn admit(&mut self, stream: S, tag: T, now: Instant) -> Option<ClientId> {
        if self.map.len() >= self.limits.max_clients {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let id = self.next;
        self.next += 1;
        self.map.insert(
            id,
            Client {
                stream,
                tag,
                phase: Phase::Reading,
                buf: Vec::new(),
                deadline: Some(now + self.limits.request_timeout),
            },
        );
        Some(id)
    }

    /// What the server knows of client `id`.
    pub fn tag(&self, id: ClientId) -> Option<&T> {
        self.map.get(&id).map(|c| &c.tag)
    }

    /// Reads what client `id` has sent, without blocking, until its
    /// request is whole by `frame` (see [`line_frame`]).
    pub fn read(&mut self, id: ClientId, frame: fn(&[u8], usize) -> Framing) -> ReadOutcome {
        let max = self.limits.max_request;
        let Some(c) = self.map.get_mut(&id) else {
            return ReadOutcome::Closed;
        };
        if !matches!(c.phase, Phase::Reading) {
            return ReadOutcome::Pending;
        }
        let mut chunk = [0u8; 4096];
        loop {
            match frame(&c.buf, max) {
                Framing::Complete(n) => {
                    c.buf.truncate(n);
                    c.phase = Phase::Waiting;
                    c.deadline = None;
                    return ReadOutcome::Request(std::mem::take(&mut c.buf));
                }
                Framing::TooLong => {
                    c.buf = Vec::new();
                    c.phase = Phase::Waiting;
                    c.deadline = None;
                    self.counters.count_bad_request();
                    return ReadOutcome::TooLong;
                }
                Framing::Incomplete => {}
            }
            // Never read past what a request may hold.
            let room = (max + 1).saturating_sub(c.buf.len()).min(chunk.len());
            match c.stream.read(&mut chunk[..room.max(1)]) {
                Ok(0) => {
                    self.map.remove(&id);
                    return ReadOutcome::Closed;
                }
                Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Pending,
                Err(_) => {
                    self.map.remove(&id);
                    return ReadOutcome::Closed;
                }
            }
        }
    }

    /// Starts writing `answer` to client `id` (due by `now +
    /// answer_timeout`) and writes what it takes now.
    pub fn respond(&mut self, id: ClientId, answer: Vec<u8>, now: Instant) {
        self.respond_chunks(id, Box::new(Whole(Some(answer))), now);
    }

    /// Starts writing the answer `chunks` makes (due by `now +
    /// answer_timeout`) and writes what the client takes now.
    pub fn respond_chunks(&mut self, id: ClientId, chunks: Box<dyn Chunks>, now: Instant) {
        let timeout = self.limits.answer_timeout;
        if let Some(c) = self.map.get_mut(&id) {
            c.phase = Phase::Writing {
                out: Vec::new(),
                sent: 0,
                more: Some(chunks),
            };
            c.deadline = Some(now + timeout);
            self.write(id);
        }
    }

    /// Writes what client `id` takes of its answer now, at most
    /// `WRITE_CHUNK` bytes (made as needed); a client whose answer is all
    /// written is closed.
    pub fn write(&mut self, id: ClientId) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        let Phase::Writing { out, sent, more } = &mut c.phase else {
            return;
        };
        let mut budget = WRITE_CHUNK;
        while budget > 0 {
            if *sent == out.len() {
                let Some(source) = more else {
                    break;
                };
                out.clear();
                *sent = 0;
                if !source.fill(out, WRITE_CHUNK) {
                    *more = None;
                }
                continue;
            }
            let stop = (*sent + budget).min(out.len());
            match c.stream.write(&out[*sent..stop]) {
                Ok(0) => {
                    self.map.remove(&id);
                    return;
                }
                Ok(n) => {
                    *sent += n;
                    budget -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.map.remove(&id);
                    return;
                }
            }
        }
        if *sent == out.len() && more.is_none() {
            let _ = c.stream.flush();
            self.counters.answered.fetch_add(1, Ordering::Relaxed);
            self.map.remove(&id);
        }
    }

    /// Closes every client past its deadline at `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let late: Vec<ClientId> = self
            .map
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(&id, _)| id)
            .collect();
        // Counted before the close, so whoever sees the close sees the count.
        self.counters
            .timed_out
            .fetch_add(late.len() as u64, Ordering::Relaxed);
        for id in &late {
            self.map.remove(id);
        }
        late.len()
    }

    /// The earliest deadline of any client.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.values().filter_map(|c| c.deadline).min()
    }

    /// Closes client `id` without an answer.
    pub fn close(&mut self, id: ClientId) {
        self.map.remove(&id);
    }

    /// The clients waited on, and which way.
    pub fn interests(&self) -> impl Iterator<Item = (ClientId, &S, Interest)> {
        self.map.iter().filter_map(|(&id, c)| match c.phase {
            Phase::Reading => Some((id, &c.stream, Interest::Read)),
            Phase::Writing { .. } => Some((id, &c.stream, Interest::Write)),
            Phase::Waiting => None,
        })
    }
}

/// What one [`wait`] found ready.
#[derive(Debug, Default)]
pub struct Ready {
    /// The listener has connections to accept.
    pub listener: bool,
    /// The extra descriptor (a waker) is readable.
    pub extra: bool,
    /// Clients with something to read (or that hung up).
    pub readable: Vec<ClientId>,
    /// Clients that can take more of their answer.
    pub writable: Vec<ClientId>,
}

/// Waits, at most `timeout` and no later than the clients' next deadline,
/// until the listener, `extra` or a client is ready.
pub fn wait<L: AsFd, S: Read + Write + AsFd, T>(
    listener: &L,
    extra: Option<&dyn AsFd>,
    clients: &Clients<S, T>,
    timeout: Duration,
    now: Instant,
) -> io::Result<Ready> {
    let timeout = match clients.next_deadline() {
        Some(d) => timeout.min(d.saturating_duration_since(now)),
        None => timeout,
    };
    let mut fds = Vec::with_capacity(clients.len() + 2);
    let mut ids = Vec::with_capacity(clients.len());
    fds.push(PollFd::new(listener, PollFlags::IN));
    if let Some(e) = extra {
        fds.push(PollFd::from_borrowed_fd(e.as_fd(), PollFlags::IN));
    }
    let base = fds.len();
    for (id, stream, interest) in clients.interests() {
        let flags = match interest {
            Interest::Read => PollFlags::IN,
            Interest::Write => PollFlags::OUT,
        };
        fds.push(PollFd::new(stream, flags));
        ids.push((id, interest));
    }
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(Ready::default()),
        Err(e) => return Err(e.into()),
    }
    let mut ready = Ready {
        listener: !fds[0].revents().is_empty(),
        extra: extra.is_some() && !fds[1].revents().is_empty(),
        ..Ready::default()
    };
    for (fd, (id, interest)) in fds[base..].iter().zip(ids) {
        if !fd.revents().is_empty() {
            match interest {
                Interest::Read => ready.readable.push(id),
                Interest::Write => ready.writable.push(id),
            }
        }
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Arc;

    /// An in-memory stream: reads what the test queued (then WouldBlock,
    /// or EOF once `eof`), takes at most `room` bytes per write.
    #[derive(Debug, Default)]
    struct Fake {
        input: VecDeque<u8>,
        eof: bool,
        written: Vec<u8>,
        room: usize,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(self.input.len());
            for b in buf.iter_mut().take(n) {
                *b = self.input.pop_front().unwrap_or(0);
            }
            Ok(n)
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn fake(input: &[u8], room: usize) -> Fake {
        Fake {
            input: input.iter().copied().collect(),
            room,
            ..Fake::default()
        }
    }

    const LIMITS: Limits = Limits {
        max_clients: 2,
        max_request: 16,
        request_timeout: Duration::from_secs(1),
        answer_timeout: Duration::from_secs(2),
    };

    fn clients() -> Clients<Fake, ()> {
        Clients::new(LIMITS, Arc::default())
    }

    #[test]
    fn a_line_is_whole_at_its_newline() {
        assert_eq!(line_frame(b"{\"cmd\"", 16), Framing::Incomplete);
        assert_eq!(line_frame(b"{}\nmore", 16), Framing::Complete(3));
        assert_eq!(line_frame(&[b'x'; 16], 16), Framing::TooLong);
        assert_eq!(line_frame(b"0123456789abcdef\n", 16), Framing::TooLong);
    }

    #[test]
    fn an_http_head_ends_at_an_empty_line() {
        assert_eq!(
            http_head_frame(b"GET / HTTP/1.1\r\n", 64),
            Framing::Incomplete
        );
        assert_eq!(
            http_head_frame(b"GET / HTTP/1.1\r\n\r\n", 64),
            Framing::Complete(18)
        );
        assert_eq!(http_head_frame(b"GET /\n\n", 64), Framing::Complete(7));
        assert_eq!(http_head_frame(&[b'a'; 64], 64), Framing::TooLong);
    }

    #[test]
    fn a_request_sent_in_pieces_is_handed_out_whole() {
        let mut c = clients();
        let id = c.admit(fake(b"{\"cmd\":", 0), (), Instant::now()).unwrap();
        assert_eq!(c.read(id, line_frame), ReadOutcome::Pending);
        c.map.get_mut(&id).unwrap().stream.input.extend(b"1}\n");
        assert_eq!(
            c.read(id, line_frame),
            ReadOutcome::Request(b"{\"cmd\":1}\n".to_vec())
        );
        assert_eq!(c.interests().count(), 0, "waiting for its answer");
    }

    #[test]
    fn clients_beyond_the_cap_are_refused_and_counted() {
        let mut c = clients();
        let now = Instant::now();
        assert!(c.admit(fake(b"", 0), (), now).is_some());
        assert!(c.admit(fake(b"", 0), (), now).is_some());
        assert!(c.admit(fake(b"", 0), (), now).is_none());
        let n = c.counters().get();
        assert_eq!((n.accepted, n.refused), (2, 1));
    }

    #[test]
    fn a_silent_client_is_closed_at_its_request_deadline() {
        let mut c = clients();
        let t0 = Instant::now();
        let id = c.admit(fake(b"", 0), (), t0).unwrap();
        assert_eq!(c.next_deadline(), Some(t0 + LIMITS.request_timeout));
        assert_eq!(c.expire(t0 + Duration::from_millis(999)), 0);
        assert_eq!(c.expire(t0 + LIMITS.request_timeout), 1);
        assert!(c.tag(id).is_none());
        assert_eq!(c.counters().get().timed_out, 1);
    }

    #[test]
    fn a_client_trickling_bytes_still_meets_one_deadline() {
        let mut c = clients();
        let t0 = Instant::now();
        let id = c.admit(fake(b"{", 0), (), t0).unwrap();
        assert_eq!(c.read(id, line_frame), ReadOutcome::Pending);
        // More bytes do not move the deadline.
        assert_eq!(c.next_deadline(), Some(t0 + LIMITS.request_timeout));
        assert_eq!(c.expire(t0 + LIMITS.request_timeout), 1);
    }

    #[test]
    fn a_client_waiting_for_its_answer_has_no_deadline() {
        let mut c = clients();
        let t0 = Instant::now();
        let id = c.admit(fake(b"{}\n", 0), (), t0).unwrap();
        assert!(matches!(c.read(id, line_frame), ReadOutcome::Request(_)));
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.expire(t0 + Duration::from_secs(60)), 0);
    }

    #[test]
    fn a_big_answer_is_written_as_the_client_takes_it() {
        let mut c = clients();
        let t0 = Instant::now();
        let id = c.admit(fake(b"{}\n", 100), (), t0).unwrap();
        let _ = c.read(id, line_frame);
        c.respond(id, vec![7u8; 250], t0);
        assert_eq!(c.map[&id].stream.written.len(), 100, "what fit");
        assert_eq!(c.interests().next().map(|i| i.2), Some(Interest::Write));
        assert_eq!(c.next_deadline(), Some(t0 + LIMITS.answer_timeout));
        c.map.get_mut(&id).unwrap().stream.room = 1000;
        c.write(id);
        assert!(c.tag(id).is_none(), "closed once all is written");
        assert_eq!(c.counters().get().answered, 1);
    }

    #[test]
    fn one_pass_writes_at_most_a_chunk() {
        let mut c = clients();
        let id = c
            .admit(fake(b"{}\n", usize::MAX), (), Instant::now())
            .unwrap();
        let _ = c.read(id, line_frame);
        c.respond(id, vec![1u8; WRITE_CHUNK * 3], Instant::now());
        assert_eq!(c.map[&id].stream.written.len(), WRITE_CHUNK);
        c.write(id);
        assert_eq!(c.map[&id].stream.written.len(), 2 * WRITE_CHUNK);
        c.write(id);
        assert!(c.tag(id).is_none());
    }

    /// Counts down from `left`, a chunk of `size` bytes at a time.
    #[derive(Debug)]
    struct Countdown {
        left: u8,
        size: usize,
    }

    impl Chunks for Countdown {
        fn fill(&mut self, out: &mut Vec<u8>, _hint: usize) -> bool {
            out.extend(std::iter::repeat_n(self.left, self.size));
            self.left -= 1;
            self.left > 0
        }
    }

    #[test]
    fn an_answer_in_chunks_is_made_as_the_client_takes_it() {
        let mut c = clients();
        let id = c.admit(fake(b"{}\n", 10), (), Instant::now()).unwrap();
        let _ = c.read(id, line_frame);
        c.respond_chunks(id, Box::new(Countdown { left: 3, size: 8 }), Instant::now());
        assert_eq!(c.map[&id].stream.written, [3, 3, 3, 3, 3, 3, 3, 3, 2, 2]);
        c.map.get_mut(&id).unwrap().stream.room = 100;
        c.write(id);
        assert!(c.tag(id).is_none(), "closed once all is written");
        assert_eq!(c.counters().get().answered, 1);
    }

    #[test]
    fn an_answer_not_taken_in_time_is_dropped_and_counted() {
        let mut c = clients();
        let t0 = Instant::now();
        let id = c.admit(fake(b"{}\n", 0), (), t0).unwrap();
        let _ = c.read(id, line_frame);
        c.respond(id, vec![0u8; 10], t0);
        assert_eq!(c.expire(t0 + LIMITS.answer_timeout), 1);
        assert_eq!(c.counters().get().timed_out, 1);
    }

    #[test]
    fn a_request_too_long_is_counted_and_awaits_its_error() {
        let mut c = clients();
        let id = c.admit(fake(&[b'x'; 40], 0), (), Instant::now()).unwrap();
        assert_eq!(c.read(id, line_frame), ReadOutcome::TooLong);
        assert_eq!(c.counters().get().bad_requests, 1);
        assert!(c.tag(id).is_some());
    }

    #[test]
    fn a_client_that_hangs_up_is_closed() {
        let mut c = clients();
        let mut f = fake(b"{", 0);
        f.eof = true;
        let id = c.admit(f, (), Instant::now()).unwrap();
        assert_eq!(c.read(id, line_frame), ReadOutcome::Closed);
        assert!(c.is_empty());
    }
}
