//! The control socket `rvsadm` talks to: a Unix stream socket, one JSON
//! request line in, one JSON document line out.
//!
//! The control thread polls it between its other chores (non-blocking
//! accept), so a client never holds up the workers; each exchange has a
//! read timeout so a silent client cannot hold up the control thread
//! either. The socket file is created owner read/write only (0600: root
//! runs rvsd and rvsadm), in a directory created if missing, and removed
//! on shutdown. A stale file left by a crashed rvsd is replaced; a live
//! rvsd on the same path is refused.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the control thread waits for a client's request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// A bound control socket.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path`, replacing a stale socket file, refusing when another
    /// process listens there.
    pub fn bind(path: &Path) -> std::io::Result<ControlSocket> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running rvsd", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves every client waiting now: reads its request, answers with
    /// `handle(request)`. Never blocks longer than a request's timeout.
    pub fn serve_pending(&self, mut handle: impl FnMut(&Value) -> Value) {
        while let Ok((stream, _)) = self.listener.accept() {
            let answer = match read_request(&stream) {
                Ok(req) => handle(&req),
                Err(e) => json!({ "error": e }),
            };
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
            let _ = writeln!(stream, "{answer}");
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read_request(stream: &UnixStream) -> Result<Value, String> {
    stream
        .set_nonblocking(false)
        .and_then(|_| stream.set_read_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(stream, MAX_REQUEST))
        .read_line(&mut line)
        .map_err(|e| format!("reading the request: {e}"))?;
    serde_json::from_str(line.trim()).map_err(|e| format!("request is not JSON: {e}"))
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

    #[test]
    fn answers_a_request_and_removes_its_file() {
        let dir = temp_path("a");
        let path = dir.join("rvsd.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let client = std::thread::spawn({
            let path = path.clone();
            move || ask(&path, &json!({"cmd": "ping"}), Duration::from_secs(5))
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut served = false;
        while !served && std::time::Instant::now() < deadline {
            sock.serve_pending(|req| {
                served = true;
                json!({"echo": req["cmd"]})
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(client.join().unwrap().unwrap(), json!({"echo": "ping"}));
        drop(sock);
        assert!(!path.exists());
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn a_live_socket_is_not_taken_over() {
        let path = temp_path("b.sock");
        let _first = ControlSocket::bind(&path).unwrap();
        assert!(ControlSocket::bind(&path).is_err());
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let path = temp_path("c.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves the file behind
        assert!(path.exists());
        let sock = ControlSocket::bind(&path);
        assert!(sock.is_ok());
    }
}
