//! EAL initialisation and cleanup.

use super::{ffi, DpdkError};
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is up; dropping it runs `rte_eal_cleanup`.
///
/// Only one may exist per process: DPDK cannot be initialised twice.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises the EAL with `args` (argv[0] included).
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new("the EAL is already initialised"));
        }
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| DpdkError::new("an EAL argument contains a NUL byte"))?;
        // The EAL may permute argv and keep pointers into it for the life of
        // the process, so both the strings and the array are leaked.
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        argv.push(std::ptr::null_mut());
        let argv = argv.leak();
        let argc = (argv.len() - 1) as c_int;
        // SAFETY: argv is a NULL-terminated array of argc valid C strings that
        // live for the rest of the process.
        let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            INITIALISED.store(false, Ordering::SeqCst);
            return Err(DpdkError::from_rte_errno("EAL initialisation failed"));
        }
        Ok(Eal { _private: () })
    }

    /// The lcore the EAL runs this (control) thread on.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL initialised.
        unsafe { ffi::rte_get_main_lcore() }
    }

    /// True when the EAL arguments enabled `lcore`.
    pub fn lcore_enabled(&self, lcore: u32) -> bool {
        // SAFETY: EAL initialised; any lcore id is accepted.
        unsafe { ffi::rte_lcore_is_enabled(lcore) != 0 }
    }

    /// The NUMA socket of `lcore` (0 on single-socket machines).
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: EAL initialised; any lcore id is accepted.
        unsafe { ffi::rte_lcore_to_socket_id(lcore) }
    }

    /// Number of ethdev ports the EAL probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL initialised.
        unsafe { ffi::rte_eth_dev_count_avail() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, after every DPDK object rvs made was released
        // (callers drop ports and mempools before the Eal).
        unsafe {
            ffi::rte_eal_cleanup();
        }
    }
}
