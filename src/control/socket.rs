//! The control socket `rvsadm` talks to: a Unix stream socket, one JSON
//! request line in, one JSON document line out.
//!
//! No client can stall it (issue 17: 200 silent clients once meant no
//! answer for 205 s). A thread of its own does only the I/O: one `poll(2)`
//! over the listener and every client (`control::clients`), a deadline per
//! client (the request whole within `REQUEST_TIMEOUT` of connecting, the
//! answer taken within `ANSWER_TIMEOUT`), a cap on clients
//! (`MAX_CLIENTS`), answers written in chunks as the client takes them.
//! A whole request is parsed there, checked against the peer's access
//! level (`control::access`, from `SO_PEERCRED`), and handed to the
//! control thread through a channel; the control thread answers between
//! its chores (`serve_pending`, or as soon as one arrives: `wait`) and
//! the I/O thread writes the answer. So the control loop never reads or
//! writes a client socket, and a big answer is serialised off it.
//!
//! The socket file is created owner read/write only (0600), or, with
//! `control.socket_group`, owned by that group with mode 0660 (its members
//! get the read-only level), in a directory created if missing, and
//! removed on shutdown. A stale socket left by a crashed rvsd is replaced;
//! a socket with a live listener is refused ("another rvsd is running"),
//! and so is anything that is not a socket (a regular file, a directory,
//! a FIFO): rvsd never deletes what is not its own.

use super::access::{self, Level};
use super::clients::{self, line_frame, ClientCounters, ClientId, Clients, Limits, ReadOutcome};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A client's whole request must arrive within this of its connecting.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A client must take its whole answer within this (a `conns` answer of
/// 100,000 connections is about 25 MB).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients served at once; one more is closed at once and counted.
pub const MAX_CLIENTS: usize = 256;
/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;
/// How often the I/O thread looks at its stop flag when nothing happens.
const STOP_POLL: Duration = Duration::from_millis(100);

const LIMITS: Limits = Limits {
    max_clients: MAX_CLIENTS,
    max_request: MAX_REQUEST,
    request_timeout: REQUEST_TIMEOUT,
    answer_timeout: ANSWER_TIMEOUT,
};

/// A request handed to the control thread: which client, and what it asks.
type Request = (ClientId, Value);

/// A bound control socket, served by its I/O thread.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    requests: Receiver<Request>,
    answers: Sender<Request>,
    /// Wakes the I/O thread when an answer is ready or on stop.
    waker: UnixStream,
    /// A request `wait` took off the channel, for `serve_pending`.
    held: RefCell<VecDeque<Request>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<ClientCounters>,
}

/// Why the socket path cannot be used.
fn refuse(path: &Path, why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("control.socket {}: {why}", path.display()),
    )
}

/// Makes `path` free for a new socket: nothing there, or a stale socket
/// (no listener) removed. Anything else is refused, naming what is there.
pub fn clear_path(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refuse(path, e)),
    };
    let ft = meta.file_type();
    if ft.is_socket() {
        if UnixStream::connect(path).is_ok() {
            return Err(refuse(
                path,
                "another rvsd is running (a listener answers there)",
            ));
        }
        return std::fs::remove_file(path).map_err(|e| refuse(path, e));
    }
    let what = super::file::kind_name(&ft);
    Err(refuse(
        path,
        format!("{what} is there, not a socket: refusing to replace it"),
    ))
}

impl ControlSocket {
    /// Binds `path` owner-only (0600), replacing a stale socket, refusing
    /// anything else there (see `clear_path`), and starts its I/O thread.
    pub fn bind(path: &Path) -> std::io::Result<ControlSocket> {
        ControlSocket::bind_with(path, None, Arc::default())
    }

    /// Binds `path` like `bind`; with `group` (a group id) the file is
    /// that group's, mode 0660, and its members get the read-only level.
    /// `counters` count the clients.
    pub fn bind_with(
        path: &Path,
        group: Option<u32>,
        counters: Arc<ClientCounters>,
    ) -> std::io::Result<ControlSocket> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                std::io::Error::other(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        clear_path(path)?;
        let listener = UnixListener::bind(path)?;
        let mode = match group {
            Some(gid) => {
                std::os::unix::fs::chown(path, None, Some(gid))
                    .map_err(|e| refuse(path, format!("cannot give it to group {gid}: {e}")))?;
                0o660
            }
            None => 0o600,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        listener.set_nonblocking(true)?;
        let (waker, wake_rx) = UnixStream::pair()?;
        waker.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let (req_tx, requests) = mpsc::channel();
        let (answers, ans_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let own_uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
        let io = Io {
            listener,
            clients: Clients::new(LIMITS, counters.clone()),
            requests: req_tx,
            answers: ans_rx,
            wake_rx,
            stop: stop.clone(),
            own_uid,
            group_access: group.is_some(),
        };
        let thread = std::thread::Builder::new()
            .name("rvs-control-io".into())
            .spawn(move || io.run())?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            requests,
            answers,
            waker,
            held: RefCell::new(VecDeque::new()),
            stop,
            thread: Some(thread),
            counters,
        })
    }

    /// The clients' counters.
    pub fn counters(&self) -> Arc<ClientCounters> {
        self.counters.clone()
    }

    /// Answers every request that arrived whole, with `handle(request)`.
    /// Never touches a client socket: the I/O thread writes the answers.
    pub fn serve_pending(&self, mut handle: impl FnMut(&Value) -> Value) {
        let mut served = false;
        loop {
            let next = self.held.borrow_mut().pop_front();
            let Some((id, request)) = next.or_else(|| self.requests.try_recv().ok()) else {
                break;
            };
            let answer = handle(&request);
            let _ = self.answers.send((id, answer));
            served = true;
        }
        if served {
            let _ = (&self.waker).write(&[1]);
        }
    }

    /// Waits at most `timeout` for a request; true when one is pending
    /// (for `serve_pending`).
    pub fn wait(&self, timeout: Duration) -> bool {
        if !self.held.borrow().is_empty() {
            return true;
        }
        match self.requests.recv_timeout(timeout) {
            Ok(r) => {
                self.held.borrow_mut().push_back(r);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            // The I/O thread is gone: do not spin.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = (&self.waker).write(&[1]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The I/O thread's state.
struct Io {
    listener: UnixListener,
    clients: Clients<UnixStream, Option<Level>>,
    requests: Sender<Request>,
    answers: Receiver<Request>,
    wake_rx: UnixStream,
    stop: Arc<AtomicBool>,
    own_uid: u32,
    group_access: bool,
}

impl Io {
    fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            let ready = match clients::wait(
                &self.listener,
                Some(&self.wake_rx),
                &self.clients,
                STOP_POLL,
                Instant::now(),
            ) {
                Ok(r) => r,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let now = Instant::now();
            if ready.extra {
                let mut sink = [0u8; 256];
                while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
            }
            while let Ok((id, answer)) = self.answers.try_recv() {
                self.clients
                    .respond_chunks(id, Box::new(JsonLine::new(answer)), now);
            }
            if ready.listener {
                self.accept(now);
            }
            for id in ready.readable {
                self.read(id, now);
            }
            for id in ready.writable {
                self.clients.write(id);
            }
            self.clients.expire(Instant::now());
        }
    }

    /// Takes in the waiting connections, each with its peer's level.
    fn accept(&mut self, now: Instant) {
        for _ in 0..clients::ACCEPT_BURST {
            let Ok((stream, _)) = self.listener.accept() else {
                return;
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let level = rustix::net::sockopt::socket_peercred(&stream)
                .ok()
                .and_then(|c| access::level_of(c.uid.as_raw(), self.own_uid, self.group_access));
            self.clients.admit(stream, level, now);
        }
    }

    /// Reads client `id`; a whole request allowed at its level goes to the
    /// control thread, anything else is answered here with an error.
    fn read(&mut self, id: ClientId, now: Instant) {
        let error = match self.clients.read(id, line_frame) {
            ReadOutcome::Request(bytes) => match parse_request(&bytes) {
                Ok(request) => {
                    let level = self.clients.tag(id).copied().flatten();
                    match access::check(level, &request) {
                        Ok(()) => {
                            if self.requests.send((id, request)).is_err() {
                                self.clients.close(id);
                            }
                            return;
                        }
                        Err(e) => {
                            self.clients.counters().count_denied();
                            e
                        }
                    }
                }
                Err(e) => {
                    self.clients.counters().count_bad_request();
                    e
                }
            },
            ReadOutcome::TooLong => format!("request longer than {MAX_REQUEST} bytes"),
            ReadOutcome::Pending | ReadOutcome::Closed => return,
        };
        self.clients
            .respond(id, line_of(&json!({ "error": error })), now);
    }
}

/// An answer serialised a piece at a time as the client takes it (so a
/// `conns` answer of 100,000 connections never holds the I/O thread):
/// an object's members in order, each array member an element at a time;
/// the same bytes as `line_of`.
#[derive(Debug)]
struct JsonLine {
    members: Vec<(String, Value)>,
    /// The answer when it is not an object: written whole.
    whole: Option<Value>,
    at: usize,
    elem: usize,
    in_array: bool,
    opened: bool,
}

impl JsonLine {
    fn new(answer: Value) -> JsonLine {
        let (members, whole) = match answer {
            Value::Object(map) => (map.into_iter().collect(), None),
            other => (Vec::new(), Some(other)),
        };
        JsonLine {
            members,
            whole,
            at: 0,
            elem: 0,
            in_array: false,
            opened: false,
        }
    }
}

impl clients::Chunks for JsonLine {
    fn fill(&mut self, out: &mut Vec<u8>, hint: usize) -> bool {
        if let Some(v) = self.whole.take() {
            out.extend_from_slice(&line_of(&v));
            return false;
        }
        let start = out.len();
        if !self.opened {
            out.push(b'{');
            self.opened = true;
        }
        while out.len() - start < hint {
            let Some((key, value)) = self.members.get(self.at) else {
                out.extend_from_slice(b"}\n");
                return false;
            };
            let items = match (self.in_array, value) {
                (true, Value::Array(items)) => items,
                // Members do not change: cannot happen; move on.
                (true, _) => {
                    self.in_array = false;
                    self.at += 1;
                    continue;
                }
                (false, _) => {
                    if self.at > 0 {
                        out.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *out, key);
                    out.push(b':');
                    if value.is_array() {
                        out.push(b'[');
                        self.in_array = true;
                        self.elem = 0;
                    } else {
                        let _ = serde_json::to_writer(&mut *out, value);
                        self.at += 1;
                    }
                    continue;
                }
            };
            match items.get(self.elem) {
                Some(item) => {
                    if self.elem > 0 {
                        out.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *out, item);
                    self.elem += 1;
                }
                None => {
                    out.push(b']');
                    self.in_array = false;
                    self.at += 1;
                }
            }
        }
        true
    }
}

/// An answer as the line written to the client.
fn line_of(answer: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(answer).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

/// Parses one request line (newline included or not): a JSON object.
/// Never panics, whatever the bytes; the error says what is wrong.
pub fn parse_request(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "request is not UTF-8".to_string())?;
    let value: Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("request is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("request is not a JSON object".into());
    }
    Ok(value)
}

/// What the fuzz target (`fuzz/fuzz_targets/control_request.rs`) and the
/// seeded run in the tests drive: arbitrary bytes through the request
/// framing, the parser and the access check. The contract: no panic, a
/// whole request ends at its first newline, a parsed request needs one
/// level, admin may run anything, no level runs nothing.
pub fn fuzz_request(data: &[u8]) {
    let bytes = match line_frame(data, MAX_REQUEST) {
        clients::Framing::Complete(n) => {
            assert!(n <= data.len() && data[n - 1] == b'\n');
            assert!(!data[..n - 1].contains(&b'\n'));
            &data[..n]
        }
        clients::Framing::TooLong => return,
        clients::Framing::Incomplete => data,
    };
    if let Ok(request) = parse_request(bytes) {
        let need = access::required(&request);
        assert!(access::check(Some(Level::Admin), &request).is_ok());
        assert!(access::check(None, &request).is_err());
        assert_eq!(
            access::check(Some(Level::ReadOnly), &request).is_ok(),
            need == Level::ReadOnly
        );
    }
}

/// Sends `request` to the rvsd listening on `path` and returns its answer
/// (what `rvsadm` does).
pub fn ask(path: &Path, request: &Value, timeout: Duration) -> Result<Value, String> {
    let mut stream = UnixStream::connect(path)
        .map_err(|e| format!("cannot reach rvsd at {}: {e}", path.display()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    writeln!(stream, "{request}").map_err(|e| format!("sending to rvsd: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("reading rvsd's answer: {e}"))?;
    serde_json::from_str(line.trim()).map_err(|e| format!("rvsd's answer is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rvs-sock-test-{}-{name}", std::process::id()))
    }

    /// Serves `sock` with an echo until `done` or 5 s.
    fn serve_until(sock: &ControlSocket, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() && Instant::now() < deadline {
            if sock.wait(Duration::from_millis(20)) {
                sock.serve_pending(|req| json!({"echo": req["cmd"]}));
            }
        }
    }

    fn ask_in_thread(path: &Path) -> std::thread::JoinHandle<(Result<Value, String>, Duration)> {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let r = ask(&path, &json!({"cmd": "list"}), Duration::from_secs(5));
            (r, t0.elapsed())
        })
    }

    #[test]
    fn answers_a_request_and_removes_its_file() {
        let dir = temp_path("a");
        let path = dir.join("rvsd.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let client = ask_in_thread(&path);
        serve_until(&sock, || client.is_finished());
        assert_eq!(client.join().unwrap().0.unwrap(), json!({"echo": "list"}));
        drop(sock);
        assert!(!path.exists());
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn a_live_socket_is_not_taken_over() {
        let path = temp_path("b.sock");
        let _first = ControlSocket::bind(&path).unwrap();
        let err = ControlSocket::bind(&path).unwrap_err().to_string();
        assert!(err.contains("another rvsd is running"), "{err}");
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let path = temp_path("c.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves the file behind
        assert!(path.exists());
        let sock = ControlSocket::bind(&path);
        assert!(sock.is_ok());
    }

    #[test]
    fn a_regular_file_at_the_path_is_refused_and_kept() {
        let path = temp_path("d.toml");
        std::fs::write(&path, "precious").unwrap();
        let err = ControlSocket::bind(&path).unwrap_err().to_string();
        assert!(err.contains("control.socket"), "{err}");
        assert!(err.contains("a regular file"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_directory_or_fifo_at_the_path_is_refused() {
        let dir = temp_path("e-dir");
        std::fs::create_dir_all(&dir).unwrap();
        let err = ControlSocket::bind(&dir).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        let fifo = temp_path("e.fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = ControlSocket::bind(&fifo).unwrap_err().to_string();
            assert!(err.contains("a FIFO"), "{err}");
            assert!(fifo.exists());
            let _ = std::fs::remove_file(&fifo);
        }
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn silent_and_trickling_clients_do_not_delay_an_answer() {
        let path = temp_path("f.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let silent: Vec<UnixStream> = (0..50)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        let mut slow = UnixStream::connect(&path).unwrap();
        slow.write_all(b"{\"cmd\"").unwrap();
        let client = ask_in_thread(&path);
        serve_until(&sock, || client.is_finished());
        let (answer, took) = client.join().unwrap();
        assert_eq!(answer.unwrap(), json!({"echo": "list"}));
        assert!(took < Duration::from_secs(1), "{took:?}");
        drop(silent);
    }

    #[test]
    fn a_big_answer_read_by_nobody_does_not_delay_another_client() {
        let path = temp_path("i.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        // Asks for a big answer and never reads it.
        let mut hog = UnixStream::connect(&path).unwrap();
        hog.write_all(b"{\"cmd\":\"conns\"}\n").unwrap();
        let big = json!({"connections": vec!["x".repeat(200); 100_000]});
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut served = false;
        while !served && Instant::now() < deadline {
            if sock.wait(Duration::from_millis(20)) {
                sock.serve_pending(|_| {
                    served = true;
                    big.clone()
                });
            }
        }
        assert!(served);
        let client = ask_in_thread(&path);
        serve_until(&sock, || client.is_finished());
        let (answer, took) = client.join().unwrap();
        assert_eq!(answer.unwrap(), json!({"echo": "list"}));
        assert!(took < Duration::from_secs(1), "{took:?}");
        drop(hog);
    }

    #[test]
    fn a_client_silent_past_its_deadline_is_closed_and_counted() {
        let path = temp_path("g.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let mut silent = UnixStream::connect(&path).unwrap();
        silent
            .set_read_timeout(Some(REQUEST_TIMEOUT + Duration::from_secs(2)))
            .unwrap();
        let t0 = Instant::now();
        let mut buf = [0u8; 8];
        assert_eq!(silent.read(&mut buf).unwrap_or(0), 0, "closed by rvsd");
        assert!(t0.elapsed() >= REQUEST_TIMEOUT - Duration::from_millis(100));
        let n = sock.counters().get();
        assert_eq!((n.accepted, n.timed_out), (1, 1));
    }

    #[test]
    fn a_request_that_is_not_json_is_answered_with_an_error() {
        let path = temp_path("h.sock");
        let _sock = ControlSocket::bind(&path).unwrap();
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"hello\n").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert!(line.contains("not JSON"), "{line}");
        assert_eq!(_sock.counters().get().bad_requests, 1);
    }

    #[test]
    fn an_answer_made_in_chunks_is_the_same_json_line() {
        use clients::Chunks;
        let answers = [
            json!({"connections": [{"a": 1}, {"b": [2, 3]}, "x"], "empty": [], "n": 5,
                   "z": {"k": [1]}}),
            json!({}),
            json!([1, 2]),
            json!({"only": []}),
        ];
        for answer in answers {
            for hint in [1, 3, 1000] {
                let mut chunks = JsonLine::new(answer.clone());
                let mut out = Vec::new();
                let mut rounds = 0;
                while chunks.fill(&mut out, hint) {
                    rounds += 1;
                    assert!(rounds < 1000);
                }
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(line_of(&answer)).unwrap(),
                    "hint {hint}"
                );
            }
        }
    }

    #[test]
    fn the_request_parser_takes_json_objects_only() {
        assert_eq!(
            parse_request(b"{\"cmd\":\"list\"}\n"),
            Ok(json!({"cmd": "list"}))
        );
        assert!(parse_request(b"[1]\n").is_err());
        assert!(parse_request(b"\xff\xfe\n").is_err());
        assert!(parse_request(b"").is_err());
    }

    #[test]
    fn the_fuzz_corpus_runs_clean() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/control_request");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            fuzz_request(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 5, "corpus at {}", dir.display());
    }

    #[test]
    fn seeded_fuzz_run_never_panics() {
        let seeds: [&[u8]; 4] = [
            b"{\"cmd\":\"list\"}\n",
            b"{\"cmd\":\"ha\",\"action\":\"status\"}\n",
            b"{\"cmd\":\"weight\",\"service\":\"203.0.113.1:80/tcp\",\"weight\":1}\n",
            b"{\"cmd\":\"conns\",\"limit\":100000}\n",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 6) {
                let r = next();
                let at = (r >> 8) as usize % (input.len() + 1);
                match r % 4 {
                    0 if at < input.len() => input[at] = (r >> 32) as u8,
                    1 => input.insert(at, (r >> 40) as u8),
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.truncate(at),
                }
            }
            fuzz_request(&input);
        }
    }
}
