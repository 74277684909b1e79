//! Running closures on EAL worker lcores.

use super::{eal::Eal, ffi, DpdkError};
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch`, handed to exactly one
    // lcore, so it is reclaimed exactly once here.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    // A panic must not unwind into C.
    catch_unwind(AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Starts `job` on the (idle) EAL worker `lcore`; its return value is what
/// [`wait`] later returns (-1 if it panicked).
pub fn launch(
    _eal: &Eal,
    lcore: u32,
    job: impl FnOnce() -> i32 + Send + 'static,
) -> Result<(), DpdkError> {
    let boxed: Box<Job> = Box::new(Box::new(job));
    let arg = Box::into_raw(boxed) as *mut c_void;
    // SAFETY: EAL initialised; the trampoline takes ownership of `arg` only
    // if the launch succeeds.
    let rc = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so the trampoline never saw `arg`.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
        return Err(DpdkError::from_code(
            format!("cannot launch a worker on lcore {lcore}"),
            rc,
        ));
    }
    Ok(())
}

/// Waits for the job on `lcore` to finish and returns its result.
pub fn wait(_eal: &Eal, lcore: u32) -> i32 {
    // SAFETY: EAL initialised; waiting on an idle lcore returns at once.
    unsafe { ffi::rte_eal_wait_lcore(lcore) }
}
