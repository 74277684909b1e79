//! File descriptors a child process must not inherit.
//!
//! The EAL and its drivers open descriptors without `O_CLOEXEC` (hugepage
//! files, VFIO and UIO devices, event fds, `net_tap`'s queues). A health
//! check's script (`control::health::script`) is a child of rvsd: were it
//! to inherit them, a script that outlives rvsd (or merely runs long)
//! would hold the NIC's VFIO group open, and a restarted rvsd could not
//! take the device. Rust's own descriptors are close-on-exec already.
#![allow(unsafe_code)]

use std::fs;

/// Marks every open descriptor above stderr close-on-exec, so the next
/// `exec` of a child drops them. Run just before spawning: a descriptor a
/// driver opens later is caught by the next call. Errors are ignored: a
/// descriptor closed meanwhile has nothing left to leak.
pub fn close_on_exec_all() {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD and F_SETFD read and set one descriptor's flags
        // and touch no memory; an fd closed since it was listed (the
        // directory's own one included) makes them fail with EBADF, which
        // is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_descriptor_opened_without_cloexec_is_marked() {
        let file = fs::File::open("/proc/self/status").unwrap();
        let fd = file.as_raw_fd();
        // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        close_on_exec_all();
        // SAFETY: reading the flags of a descriptor this test owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
