//! BIRD's control socket: ask bird2 to re-read its configuration.
//!
//! BIRD's CLI speaks a line protocol over a Unix stream socket (the one
//! `birdc` uses, `bird -s`). Every reply line starts with a four-digit code
//! followed by `-` when more lines of the reply follow or by a space on the
//! reply's last line; a line starting with a space continues the previous
//! code, and one starting with `+` is a spontaneous message. The classes
//! (BIRD's `doc/reply_codes`): `0xxx` the action completed, `1xxx` table
//! entries, `2xxx` table headings, `8xxx` run-time errors, `9xxx` parse
//! errors. On connecting, BIRD greets with `0001 BIRD <version> ready.`;
//! `configure` answers `0002-Reading configuration from ...` then `0003
//! Reconfigured`, `0004 Reconfiguration in progress` or `0005 ...
//! queueing`, and a configuration error as `8002 <file>:<line>:<col>
//! <message>`.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The longest reply line kept (a config error names a file and a line);
/// longer ones are cut, so a confused peer cannot grow memory.
const MAX_LINE: usize = 4096;
/// The most lines read for one reply before giving up on it.
const MAX_LINES: usize = 256;

/// One line of a BIRD CLI reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `NNNN-text` (`last` false) or `NNNN text` (`last` true).
    Code { code: u16, last: bool, text: String },
    /// ` text`: more of the previous code's text.
    Continuation(String),
    /// `+NNNN text`: a spontaneous message, not part of the reply.
    Spontaneous(String),
}

/// Reads one reply line (without its newline); `None` when it is none of
/// BIRD's forms.
pub fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix('+') {
        return Some(Line::Spontaneous(rest.to_string()));
    }
    if let Some(rest) = line.strip_prefix(' ') {
        return Some(Line::Continuation(rest.to_string()));
    }
    let digits = line.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = digits.parse().ok()?;
    let last = match line.as_bytes().get(4) {
        Some(b' ') | None => true,
        Some(b'-') => false,
        Some(_) => return None,
    };
    Some(Line::Code {
        code,
        last,
        text: line.get(5..).unwrap_or("").to_string(),
    })
}

/// A whole reply: the code of its last line and every line's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The last line's code: what the command came to.
    pub code: u16,
    /// The text of each line, in order (continuations included).
    pub text: Vec<String>,
}

impl Reply {
    /// True when the code says the command completed: class `0xxx`, but
    /// for 0006 (reconfiguration ignored: BIRD is shutting down) and 0016
    /// (access restricted: a restricted CLI may not configure).
    pub fn is_success(&self) -> bool {
        self.code < 1000 && !matches!(self.code, 6 | 16)
    }

    /// The reply on one line: `NNNN text; text`.
    pub fn summary(&self) -> String {
        format!("{:04} {}", self.code, self.text.join("; "))
    }
}

/// Gathers reply lines until the last one (a code followed by a space).
#[derive(Debug, Default)]
pub struct ReplyReader {
    text: Vec<String>,
}

impl ReplyReader {
    /// Takes one line: `Ok(Some(reply))` when it ends the reply, an error
    /// when it is not BIRD's protocol.
    pub fn push(&mut self, line: &str) -> Result<Option<Reply>, String> {
        let line: String = line.chars().take(MAX_LINE).collect();
        match parse_line(&line) {
            Some(Line::Code { code, last, text }) => {
                self.text.push(text);
                Ok(last.then(|| Reply {
                    code,
                    text: std::mem::take(&mut self.text),
                }))
            }
            Some(Line::Continuation(text)) => {
                self.text.push(text);
                Ok(None)
            }
            Some(Line::Spontaneous(_)) => Ok(None),
            None => Err(format!("not a BIRD reply line: {line:?}")),
        }
    }
}

/// Reads one whole reply from `input`.
fn read_reply(input: &mut impl BufRead) -> io::Result<Reply> {
    let mut reader = ReplyReader::default();
    let mut line = String::new();
    for _ in 0..MAX_LINES {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "BIRD closed the connection mid-reply",
            ));
        }
        if let Some(reply) = reader
            .push(&line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        {
            return Ok(reply);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("BIRD's reply is longer than {MAX_LINES} lines"),
    ))
}

/// Connects to BIRD's control socket at `socket`, reads the greeting, runs
/// `command` and returns its reply; every read and write gives up after
/// `timeout`. An error is a connection or protocol failure; a reply with a
/// failure code is `Ok` (see `Reply::is_success`).
pub fn command(socket: &Path, command: &str, timeout: Duration) -> io::Result<Reply> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", socket.display())))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut input = BufReader::new(stream.try_clone()?);
    let greeting = read_reply(&mut input)?;
    if greeting.code != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("BIRD greeted with {}", greeting.summary()),
        ));
    }
    (&stream).write_all(format!("{command}\n").as_bytes())?;
    read_reply(&mut input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(lines: &[&str]) -> Reply {
        let mut r = ReplyReader::default();
        for (i, l) in lines.iter().enumerate() {
            match r.push(l).unwrap() {
                Some(reply) => {
                    assert_eq!(i, lines.len() - 1, "ended early at {l:?}");
                    return reply;
                }
                None => continue,
            }
        }
        panic!("no last line in {lines:?}");
    }

    #[test]
    fn a_dash_after_the_code_means_more_lines_follow() {
        assert_eq!(
            parse_line("0002-Reading configuration from /etc/bird.conf\n"),
            Some(Line::Code {
                code: 2,
                last: false,
                text: "Reading configuration from /etc/bird.conf".into()
            })
        );
    }

    #[test]
    fn a_space_after_the_code_ends_the_reply() {
        assert_eq!(
            parse_line("0003 Reconfigured"),
            Some(Line::Code {
                code: 3,
                last: true,
                text: "Reconfigured".into()
            })
        );
    }

    #[test]
    fn a_successful_configure_ends_with_its_reconfigured_code() {
        let r = reply_of(&[
            "0002-Reading configuration from /etc/bird.conf",
            "0003 Reconfigured",
        ]);
        assert_eq!(r.code, 3);
        assert!(r.is_success());
        assert_eq!(
            r.summary(),
            "0003 Reading configuration from /etc/bird.conf; Reconfigured"
        );
    }

    #[test]
    fn reconfiguration_in_progress_or_queued_is_success() {
        for code in [
            "0004 Reconfiguration in progress",
            "0005 Reconfiguration already in progress, queueing",
            "0020 Configuration OK",
        ] {
            assert!(reply_of(&[code]).is_success(), "{code}");
        }
    }

    #[test]
    fn a_config_error_is_a_failure_and_keeps_its_message() {
        let r = reply_of(&[
            "0002-Reading configuration from /etc/bird.conf",
            "8002 /run/rvs/bird-vips.conf:1:5 syntax error",
        ]);
        assert!(!r.is_success());
        assert!(r.summary().contains("syntax error"), "{}", r.summary());
    }

    #[test]
    fn parse_errors_shutdown_and_restricted_access_are_failures() {
        for line in [
            "9001 Parse error",
            "0006 Reconfiguration ignored, shutting down",
            "0016 Access restricted",
            "1000 a table entry",
        ] {
            assert!(!reply_of(&[line]).is_success(), "{line}");
        }
    }

    #[test]
    fn continuation_lines_belong_to_the_reply_and_spontaneous_ones_do_not() {
        let r = reply_of(&[
            "+0099 spontaneous",
            "0002-first",
            " more of it",
            "0003 Reconfigured",
        ]);
        assert_eq!(r.text, ["first", "more of it", "Reconfigured"]);
    }

    #[test]
    fn a_line_that_is_not_birds_protocol_is_an_error() {
        let mut r = ReplyReader::default();
        assert!(r.push("HTTP/1.1 200 OK").is_err());
        assert!(r.push("12a4 x").is_err());
        assert!(r.push("0003x").is_err());
    }

    #[test]
    fn a_greeting_then_a_reply_are_read_from_a_socket() {
        let dir = std::env::temp_dir().join(format!("rvs-bird-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bird.ctl");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut cmd = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut cmd)
                .unwrap();
            s.write_all(b"0002-Reading configuration from /x\n0003 Reconfigured\n")
                .unwrap();
            cmd
        });
        let reply = command(&path, "configure", Duration::from_secs(5)).unwrap();
        assert_eq!(server.join().unwrap(), "configure\n");
        assert_eq!(reply.code, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_socket_is_an_error_naming_the_path() {
        let e = command(
            Path::new("/nonexistent/bird.ctl"),
            "configure",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/bird.ctl"), "{e}");
    }
}
