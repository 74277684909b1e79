//! Arbitrary bytes through the worker's per-packet path (ARP, ICMP, NAT,
//! DR, TUN, hand-over between workers): no panic, every frame accounted.
//! `cargo +nightly fuzz run worker_frames` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::dataplane::fuzz::{fuzz_worker, run_frames};

fuzz_target!(|data: &[u8]| {
    let workers = if data.first().is_some_and(|b| b & 0x80 != 0) { 2 } else { 1 };
    run_frames(&mut fuzz_worker(workers), data);
});
