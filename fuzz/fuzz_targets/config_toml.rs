//! Arbitrary text through the TOML loader (parse and validate): no panic,
//! every refusal names its field. `cargo +nightly fuzz run config_toml`
//! (see fuzz/README.md; the corpus starts from dpdk-config/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::control::fuzz::check_toml;

fuzz_target!(|data: &[u8]| {
    check_toml(data);
});
