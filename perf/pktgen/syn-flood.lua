-- syn-flood.lua: a SYN flood from many sources against 198.18.0.101:80
-- while established connections on 198.18.0.100:80 keep carrying traffic.
-- Pair with rvsd-nat.toml (or, without the established traffic,
-- rvsd-dr.toml / rvsd-tun.toml with RVS_PKTGEN_MODE); run it with
-- run-profile, which makes its pcap files (see perf/pktgen/README.md):
--
--   PKTGEN="pktgen -l 0-2 -n 4 -a <A port 0> -a <A port 1> -- -P -m 1.0 -m 2.1" \
--       perf/pktgen/run-profile syn-flood nat
--
-- What rvs promises under a flood: each SYN to a service makes a half-open
-- connection (SYN_RECV); when the table is full a new one evicts the
-- half-open connection nearest its expiry among those near its slot, never
-- an ESTABLISHED one, so established connections live on. This profile
-- shows whether they do:
-- 1. NAT only: the SYN phase opens RVS_PKTGEN_FLOWS established flows (the
--    first frames of port 0's file), then port 1 sends their replies
--    (198.19.0.10:8080 -> clients) at RVS_PKTGEN_BG_PPS (10% of line rate)
--    as background traffic, which rvsd translates and port 0 receives:
--    RVS_PKTGEN_BG_SECONDS (5) s of that alone.
-- 2. The flood: port 0 goes on through its file, bare SYNs from
--    RVS_PKTGEN_NEW distinct sources (198.18.128.1-198.18.255.250 x ports
--    from 1024), at RVS_PKTGEN_PPS (default: as fast as pktgen paces a pcap
--    file) for RVS_PKTGEN_SECONDS (30) s, the background still running.
--    pktgen repeats the file when it ends: a source seen again while its
--    connection is still half-open makes no new connection, so rvsd's
--    "connections created" is the number that counts, not the SYNs sent.
-- 3. NAT only: the background alone again.
-- Why a file of sources and not pktgen's random bits: pktgen writes random
-- bits after the checksums (a random address breaks the IPv4 checksum rvsd
-- checks), 23.03 does not apply them at all in range mode, and 24.07.1's
-- transmit path no longer calls the function that applies them
-- (pktgen_rnd_bits_apply has no caller in its app/). A file works with
-- every release.
--
-- rvsd's counters are reported for each part: connections created, in the
-- table, and drops by reason. table_full counts SYNs that found no
-- half-open connection to evict near their slot; no_connection counts
-- background replies whose connection was lost, and must stay 0.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")

C.main(function()
    local mode = C.env_choice("RVS_PKTGEN_MODE", "nat", { "nat", "dr", "tun" })
    local seconds = C.env_num("RVS_PKTGEN_SECONDS", 30)
    local bg_seconds = C.env_num("RVS_PKTGEN_BG_SECONDS", 5)
    local size = 64
    local flood_pps = C.offered_pps(size)
    local bg_pps = math.min(C.env_num("RVS_PKTGEN_BG_PPS", C.line_pps(size) / 10), C.pktgen_max_pps(size))
    local background = mode == "nat" and bg_pps > 0

    C.begin("syn-flood", mode)
    C.stop_all()
    local row = C.csv(C.RESULT_COLUMNS)
    local bg = { key = "bg", name = "background", tx = C.SERVER, rx = C.CLIENT, frame = size, egress = size }
    local flood = { key = "flood", name = "SYN flood", tx = C.CLIENT, rx = C.SERVER, frame = size,
        egress = C.egress_frame(mode, size) }

    local function background_alone(label)
        C.say("-- background alone (%s): replies of the established flows, %.0f frames/s, %d s", label, bg_pps, bg_seconds)
        local r, d = C.run_ports({ bg }, bg_pps, bg_seconds)
        C.report("bg_" .. label, bg.name, r[1], size, size)
        C.report_rvsd("bg_" .. label, d)
        row(C.result_row("syn-flood", mode, "background " .. label, r[1], size, size, d))
    end

    if background then
        C.open_flows(size)
        background_alone("before")
    else
        C.say("-- no background traffic (mode %s: replies do not pass rvsd)", mode)
    end

    C.say("-- SYN flood: %.0f SYN/s -> %s:80 from %d distinct sources, %d s%s", flood_pps, C.VIP_NEW, C.NEW, seconds,
        background and string.format(", background %.0f frames/s", bg_pps) or "")
    local flows = { flood }
    if background then
        flows[2] = bg
    end
    local res, d = C.run_ports(flows, flood_pps, seconds, { [C.SERVER] = bg_pps })
    C.say("-- during the flood")
    for i, f in ipairs(flows) do
        C.report(f.key, f.name, res[i], f.frame, f.egress)
        row(C.result_row("syn-flood", mode, f.name .. " during", res[i], f.frame, f.egress, d))
    end
    C.report_rvsd("flood", d)
    if d then
        C.say("   rvsd created %d connections from %d distinct sources in the file (%d SYNs sent); %d no_connection, %d table_full",
            d.conns_created, C.NEW, res[1].offered, d.drops.no_connection or 0, d.drops.table_full or 0)
    end
    if background then
        background_alone("after")
    end
    C.finish()
end)
