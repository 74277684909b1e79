-- established-nat.lua: established-flow throughput through rvsd with NAT,
-- both directions, RVS_PKTGEN_FLOWS connections (4096 by default). Pair with rvsd-nat.toml; see perf/pktgen/README.md.
--
--   PKTGEN="pktgen -l 0-2 -n 4 -a <A port 0> -a <A port 1> -- -P -m 1.0 -m 2.1" \
--   RVS_PKTGEN_RVSD_STATS="ssh B rvsadm --json stats" perf/pktgen/run-profile established-nat
--
-- run-profile makes the pcap files (make-pcaps.py): port 0 sends one bare SYN
-- per flow, then ACK-only frames over the same flows, in the file's order.
--
-- 1. SYN phase: port 0 sends one bare SYN per flow (clients -> 198.18.0.100:80,
--    RVS_PKTGEN_SYN_PPS, default 10% of line rate); rvsd creates each connection (SYN_RECV), rewrites the
--    destination to 198.19.0.10:8080 and sends it to port 1, which counts it.
-- 2. ACK phase: port 0 keeps sending ACK-only frames over the same flows
--    (client -> VIP, which rvsd rewrites to the real server and port 1
--    receives) while port 1 plays the real server, sending ACK-only replies
--    198.19.0.10:8080 -> client (which rvsd rewrites to come from the VIP and
--    port 0 receives). The first ACK moves each connection to ESTABLISHED.
-- 3. RVS_PKTGEN_SECONDS (10) seconds measured, with rvsd's counters (created,
--    forwarded, drops by reason, no_connection) over the same window: offered and
--    delivered frames per second in each direction, against line rate.
--
-- Settings (environment): RVS_PKTGEN_SIZE (64), RVS_PKTGEN_RATE (100),
-- RVS_PKTGEN_DIRECTIONS (both | forward | reply), RVS_PKTGEN_SECONDS, and
-- those listed in common.lua.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")
C.main(function()
    C.run_established("established-nat", "nat")
end)
