-- conn-rate.lua: the new-connection rate rvsd sustains. Bare SYNs from
-- tuples it has never seen, at a set rate, stepped up until the rate of
-- SYNs rvsd forwards (each one a connection it created) stops following the
-- offered rate. Pair with rvsd-nat.toml (or rvsd-dr.toml / rvsd-tun.toml
-- with RVS_PKTGEN_MODE); see perf/pktgen/README.md.
--
--   sudo pktgen -l 0-4 -n 4 -a <A port 0> -a <A port 1> -- -P \
--       -m "[1:2].0,[3:4].1" -f perf/pktgen/conn-rate.lua
--
-- Port 0 sends 64-byte SYNs to 198.18.0.101:80 (eight real servers, wlc),
-- the source stepping through 198.18.128.1-198.18.255.254 x ports
-- 1024-65534 (2.1 billion tuples before the first repeats, far more than a
-- run sends), so every SYN is a new connection. For each step: 1 s warm-up,
-- RVS_PKTGEN_SECONDS (4) s measured, then a pause of RVS_PKTGEN_GAP (12) s,
-- longer than rvsd-*.toml's tcp_syn_s = 10, so the step's half-open
-- connections expire before the next. Port 1 counts the SYNs rvsd forwards:
-- forwarded per second = connections created per second, which
-- 'rvsadm stats' (conns_created) or rvs-watch.py on machine B shows too.
--
-- A step of R conn/s fills the table with about 5 x R half-open
-- connections; past conn_table_size (8 Mi: R > 1.6 M/s) each new one evicts
-- an old half-open one, so the upper steps measure creation plus eviction,
-- the SYN-flood regime.
--
-- Stops after two steps in a row deliver less than 95% of what was offered
-- (RVS_PKTGEN_ALL_STEPS=1 runs every step). Rates above line rate are sent
-- at line rate (14.88 Mpps at 64 B on 10GbE). In mode tun the inside link
-- carries 84-byte frames: at most 12.02 Mpps on 10GbE.
--
-- Settings (environment): RVS_PKTGEN_MODE (nat), RVS_PKTGEN_STEPS (conn/s,
-- comma-separated), RVS_PKTGEN_SECONDS (4), RVS_PKTGEN_GAP (12),
-- RVS_PKTGEN_ALL_STEPS (0), and those listed in common.lua.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")

local mode = C.env_choice("RVS_PKTGEN_MODE", "nat", { "nat", "dr", "tun" })
local steps = C.env_list("RVS_PKTGEN_STEPS", {
    100e3, 250e3, 500e3, 1e6, 1.5e6, 2e6, 3e6, 4e6, 5e6, 6e6, 8e6, 10e6, 12e6, 14.88e6,
})
local seconds = C.env_num("RVS_PKTGEN_SECONDS", 4)
local gap = C.env_num("RVS_PKTGEN_GAP", 12)
local all_steps = C.env_num("RVS_PKTGEN_ALL_STEPS", 0) ~= 0
local size = 64
local line = C.line_pps(size)
local egress_line = C.line_pps(C.egress_frame(mode, size))

C.begin("conn-rate", mode)
C.reset()
C.client_new(size)
C.say("-- new connections: SYNs -> %s:%d, %d B, steps of %d s (+1 s warm-up), %d s apart",
    C.VIP_NEW, C.VPORT, size, seconds, gap)

local row = C.csv({ "profile", "mode", "target_cps", "offered_cps", "forwarded_cps", "followed_pct",
    "pktgen_imissed_pps" })
local flow = { name = "SYN", tx = C.CLIENT, rx = C.SERVER }
local results = {}
local short = 0
for i, target in ipairs(steps) do
    local pct = 100 * target / line
    if pct > 100 then
        pct = 100
    end
    C.say("-- step %d: %.3f M conn/s (%.2f%% of line rate)", i, target / 1e6, pct)
    C.set_rate(C.CLIENT, pct)
    pktgen.start(tostring(C.CLIENT))
    local r = C.measure({ flow }, seconds, 1)[1]
    pktgen.stop(tostring(C.CLIENT))
    local followed = 0
    if r.offered > 0 then
        followed = 100 * r.delivered / r.offered
    end
    C.say("   offered %.3f M SYN/s, rvsd forwarded %.3f M/s (%.1f%%)%s", r.offered / 1e6,
        r.delivered / 1e6, followed,
        r.missed > 0 and string.format(", pktgen's NIC dropped %.3f M/s itself", r.missed / 1e6) or "")
    row({ "conn-rate", mode, target, r.offered, r.delivered, followed, r.missed })
    results[#results + 1] = { target = target, r = r, followed = followed }
    if followed < 95 then
        short = short + 1
    else
        short = 0
    end
    if short >= 2 and not all_steps then
        C.say("   two steps in a row below 95%%: stopping (RVS_PKTGEN_ALL_STEPS=1 runs them all)")
        break
    end
    if i < #steps then
        C.wait(1000 * gap)
    end
end
C.stop_all()

local knee, best = nil, 0
for _, e in ipairs(results) do
    if e.followed >= 99 and (knee == nil or e.r.offered > knee.r.offered) then
        knee = e
    end
    if e.r.delivered > best then
        best = e.r.delivered
    end
end
C.say("-- summary (%s)", mode)
C.say("   %12s %12s %12s %9s", "target/s", "offered/s", "forwarded/s", "followed")
for _, e in ipairs(results) do
    C.say("   %12.0f %12.0f %12.0f %8.1f%%", e.target, e.r.offered, e.r.delivered, e.followed)
end
if knee then
    C.say("   rvsd followed (>= 99%%) up to %.3f M conn/s offered; most forwarded: %.3f M conn/s",
        knee.r.offered / 1e6, best / 1e6)
else
    C.say("   rvsd followed no step to 99%%; most forwarded: %.3f M conn/s", best / 1e6)
end
if best > 0.97 * egress_line then
    C.say("   NOTE: %.3f M/s is the inside link's line rate for %d B frames: the link, not rvsd, " ..
        "was the limit", egress_line / 1e6, C.egress_frame(mode, size))
end
C.finish()
