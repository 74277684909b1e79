-- dr.lua: established-flow throughput through rvsd with direct routing,
-- one-way, 1,032,176 connections. Pair with rvsd-dr.toml; see
-- perf/pktgen/README.md.
--
--   sudo pktgen -l 0-4 -n 4 -a <A port 0> -a <A port 1> -- -P \
--       -m "[1:2].0,[3:4].1" -f perf/pktgen/dr.lua
--
-- 1. SYN phase: port 0 sends one bare SYN per flow to 198.18.0.100:80; rvsd
--    creates the connection and forwards the frame unchanged but for the
--    destination MAC (the real server 198.19.0.10's, i.e. port 1) and TTL - 1.
-- 2. ACK phase: port 0 sends ACK-only frames over the same flows at
--    RVS_PKTGEN_RATE (100) percent of line rate; port 1 counts what rvsd
--    forwards. With DR the real servers answer clients directly, so nothing
--    comes back through rvsd: port 1 only receives.
-- 3. 2 s warm-up, then RVS_PKTGEN_SECONDS (10) seconds measured.
--
-- Settings (environment): RVS_PKTGEN_SIZE (64), RVS_PKTGEN_RATE (100),
-- RVS_PKTGEN_SECONDS, and those listed in common.lua.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")
C.run_established("dr", "dr")
