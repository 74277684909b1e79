//! Arbitrary bytes through the control socket's request framing, parser
//! and access check: no panic, and the levels hold (admin runs anything,
//! no level nothing, read-only exactly the read-only commands).
//! `cargo +nightly fuzz run control_request fuzz/corpus/control_request`
//! (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::control::socket::fuzz_request;

fuzz_target!(|data: &[u8]| {
    fuzz_request(data);
});
