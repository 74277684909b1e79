//! What the DPDK wrappers share: DPDK's errors as values, and the TSC clock.

use super::{eal, ffi};
use std::ffi::CStr;
use std::fmt;

/// A failed DPDK call: what rvs was doing and DPDK's reason.
#[derive(Debug, Clone)]
pub struct DpdkError {
    /// What was attempted, naming the interface, lcore or object involved.
    pub context: String,
    /// DPDK's (positive) errno value, 0 when DPDK gave none.
    pub errno: i32,
}

impl DpdkError {
    /// Builds an error from a DPDK return code (negative errno) or, when the
    /// code is not negative, from `rte_errno`.
    pub(crate) fn from_code(context: impl Into<String>, code: i32) -> Self {
        let errno = if code < 0 { -code } else { last_errno() };
        DpdkError {
            context: context.into(),
            errno,
        }
    }

    /// Builds an error from the current `rte_errno`.
    pub(crate) fn from_rte_errno(context: impl Into<String>) -> Self {
        DpdkError {
            context: context.into(),
            errno: last_errno(),
        }
    }

    /// Builds an error that DPDK did not report itself (a limit rvs checks).
    pub(crate) fn new(context: impl Into<String>) -> Self {
        DpdkError {
            context: context.into(),
            errno: 0,
        }
    }
}

fn last_errno() -> i32 {
    // SAFETY: reads this thread's rte_errno; no preconditions.
    unsafe { ffi::rvs_errno() }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errno == 0 {
            return write!(f, "{}", self.context);
        }
        // SAFETY: rte_strerror accepts any value and returns a pointer to a
        // NUL-terminated string in static or per-lcore storage.
        let msg = unsafe { CStr::from_ptr(ffi::rte_strerror(self.errno)) };
        write!(
            f,
            "{}: {} (errno {})",
            self.context,
            msg.to_string_lossy(),
            self.errno
        )
    }
}

impl std::error::Error for DpdkError {}

/// The TSC, the cheapest monotonic clock on the per-poll path.
#[derive(Clone, Copy, Debug)]
pub struct TscClock {
    hz: u64,
}

impl TscClock {
    /// Reads the TSC frequency the EAL calibrated; call after EAL init.
    pub fn new(_eal: &eal::Eal) -> Self {
        // SAFETY: the EAL is initialised (witnessed by `_eal`).
        let hz = unsafe { ffi::rte_get_tsc_hz() }.max(1);
        TscClock { hz }
    }
}

impl crate::dataplane::io::Clock for TscClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        // SAFETY: rdtsc has no preconditions.
        let cycles = unsafe { ffi::rvs_rdtsc() };
        ((cycles as u128 * 1_000_000_000) / self.hz as u128) as u64
    }
}
