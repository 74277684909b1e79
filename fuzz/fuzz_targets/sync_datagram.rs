//! Arbitrary sync datagrams through the HA receive path (the format, the
//! peer's address and port, the MAC, boot and replay checks, each record
//! against the local services and timeouts): no panic, every datagram and
//! record accounted. `cargo +nightly fuzz run sync_datagram` (see
//! fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::ha::fuzz::{parse_only, run_datagrams};

fuzz_target!(|data: &[u8]| {
    run_datagrams(data);
    parse_only(data);
});
