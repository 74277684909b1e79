-- dr.lua: established-flow throughput through rvsd with direct routing,
-- one-way, RVS_PKTGEN_FLOWS connections. Pair with rvsd-dr.toml; see
-- perf/pktgen/README.md.
--
--   PKTGEN="pktgen -l 0-2 -n 4 -a <A port 0> -a <A port 1> -- -P -m 1.0 -m 2.1" \
--   RVS_PKTGEN_RVSD_STATS="ssh B rvsadm --json stats" perf/pktgen/run-profile dr
--
-- run-profile makes the pcap files (make-pcaps.py): port 0 sends one bare SYN
-- per flow, then ACK-only frames over the same flows, in the file's order.
--
-- 1. SYN phase: port 0 sends one bare SYN per flow to 198.18.0.100:80; rvsd
--    creates the connection and forwards the frame with a new Ethernet header
--    (to the real server 198.19.0.10's MAC, i.e. port 1); the IP header,
--    TTL included, is untouched, as with IPVS's DR.
-- 2. ACK phase: port 0 sends ACK-only frames over the same flows at
--    RVS_PKTGEN_PPS frames per second (or RVS_PKTGEN_RATE percent of line rate); port 1 counts what rvsd
--    forwards. With DR the real servers answer clients directly, so nothing
--    comes back through rvsd: port 1 only receives.
-- 3. RVS_PKTGEN_SECONDS (10) seconds measured, with rvsd's counters (created,
--    forwarded, drops by reason, no_connection) over the same window.
--
-- Settings (environment): RVS_PKTGEN_SIZE (64), RVS_PKTGEN_RATE (100),
-- RVS_PKTGEN_SECONDS, and those listed in common.lua.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")
C.main(function()
    C.run_established("dr", "dr")
end)
