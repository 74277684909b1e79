//! The bindgen output over `shim.h` (see build.rs). Only the `dpdk` module
//! uses these items; everything above it sees safe wrappers.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all,
    missing_docs
)]
include!(concat!(env!("OUT_DIR"), "/dpdk_bindings.rs"));
