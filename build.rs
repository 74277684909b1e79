//! Generates the DPDK bindings and compiles the C shim.
//!
//! DPDK is found with pkg-config (Debian's `libdpdk-dev`). bindgen sees only
//! `src/dpdk/shim.h` and an allowlist of what rvs calls, so the generated file
//! stays small and a DPDK upgrade breaks the build where rvs actually depends
//! on it. DPDK's fast-path functions are `static inline` and have no symbol to
//! link against: the shim (`src/dpdk/shim.c`) wraps each in an exported
//! function. With the `dpdk` feature off nothing here runs, so the pure core
//! builds on machines without DPDK.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/dpdk/shim.h");
    println!("cargo:rerun-if-changed=src/dpdk/shim.c");
    if env::var_os("CARGO_FEATURE_DPDK").is_none() {
        return;
    }

    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "DPDK not found via pkg-config ({e}).\n\
                 Install it with `apt-get install libdpdk-dev pkg-config`, \
                 or build the pure core with `--no-default-features`."
            )
        });

    // Compiler flags from pkg-config, minus any -march: the build must not
    // tie the binary to the build machine's CPU (Debian's file says corei7,
    // which we keep as the baseline through the explicit flag below).
    let mut cflags: Vec<String> = Vec::new();
    for path in &dpdk.include_paths {
        cflags.push(format!("-I{}", path.display()));
    }
    for (k, v) in &dpdk.defines {
        match v {
            Some(v) => cflags.push(format!("-D{k}={v}")),
            None => cflags.push(format!("-D{k}")),
        }
    }
    // `-include rte_config.h` is not reported by the pkg-config crate's
    // include paths; DPDK headers need it first.
    cflags.push("-include".into());
    cflags.push("rte_config.h".into());
    // SSE4.2 is DPDK 22.11's x86_64 baseline (its headers refuse less).
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        cflags.push("-msse4.2".into());
    }

    // Debian's libdpdk.pc lists the core libraries only; drivers are
    // plugins the EAL loads at run time. rte_eth_from_rings (the ring
    // device over rings rvs creates, for benchmarks and software
    // redirection) lives in the ring driver, so link that one by name; the
    // plugin the EAL loads is the same file, so it is not loaded twice.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let mut shim = cc::Build::new();
    shim.file("src/dpdk/shim.c").opt_level(3).warnings(true);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("rvs_dpdk_shim");

    let started = std::time::Instant::now();
    let bindings = bindgen::Builder::default()
        .header("src/dpdk/shim.h")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rvs_.*")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|wait_lcore|mp_wait_lcore)")
        .allowlist_function("rte_(get_main_lcore|lcore_is_enabled|lcore_count|lcore_to_socket_id|socket_id|strerror|get_tsc_hz)")
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free|rte_mempool_avail_count|rte_pktmbuf_free_bulk")
        .allowlist_function("rte_ring_(create|free)|rte_eth_from_rings")
        .allowlist_function(
            "rte_eth_(dev_count_avail|dev_get_port_by_name|dev_info_get|dev_configure|\
             rx_queue_setup|tx_queue_setup|dev_start|dev_stop|dev_close|macaddr_get|\
             link_get_nowait|stats_get|promiscuous_enable|allmulticast_enable|dev_socket_id|\
             dev_set_mtu|dev_get_mtu|dev_rss_hash_conf_get|dev_rss_reta_update|\
             dev_adjust_nb_rx_tx_desc|dev_default_mac_addr_set)",
        )
        .allowlist_type("rte_mbuf|rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_eth_link|rte_ether_addr|rte_eth_rxconf|rte_eth_txconf|rte_eth_rss_reta_entry64")
        .allowlist_var("RTE_ETH_.*|RTE_MAX_ETHPORTS|RTE_PKTMBUF_HEADROOM|RTE_MBUF_DEFAULT_BUF_SIZE|RTE_MAX_LCORE|SOCKET_ID_ANY|RING_F_SP_ENQ|RING_F_SC_DEQ")
        .opaque_type("rte_arp_ipv4|rte_arp_hdr")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen could not generate the DPDK bindings");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("dpdk_bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("could not write the DPDK bindings");
    println!(
        "cargo:warning=rvs: DPDK {} bindings generated in {} ms",
        dpdk.version,
        started.elapsed().as_millis()
    );
}
