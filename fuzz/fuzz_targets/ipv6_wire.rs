//! Arbitrary bytes through the IPv6 and ICMPv6 wire views (extension
//! walk, checksum patches, neighbour discovery): no panic, and the
//! contract of `rvs::wire::fuzz::check_ipv6`.
//! `cargo +nightly fuzz run ipv6_wire` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rvs::wire::fuzz::check_ipv6(data);
});
