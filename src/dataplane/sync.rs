//! Connection synchronisation lives with the balancer that reports it
//! ([`crate::lb::sync`]); this path stays for the control side's callers.

pub use crate::lb::sync::*;
