//! Log lines on stderr, one event a line: `rvsd: LEVEL: message`.
//!
//! rvsd runs under systemd or a test harness that timestamps stderr, so the
//! line carries only the level and the event. Never called per packet.

use std::fmt;
use std::io::Write;

/// How much an event matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something degraded or unusual, but rvsd goes on.
    Warn,
    /// A normal state change worth recording.
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        })
    }
}

/// Writes one log line (whole, so lines from threads never interleave).
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let line = format!("rvsd: {level}: {args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Info, format_args!($($arg)*)) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Warn, format_args!($($arg)*)) };
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Error, format_args!($($arg)*)) };
}
