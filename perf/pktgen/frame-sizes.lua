-- frame-sizes.lua: the established-flow test of established-nat.lua / dr.lua /
-- tun.lua repeated for each frame size, 64 to 1518 bytes, at full offered
-- load. Pair with the rvsd config of RVS_PKTGEN_MODE; see
-- perf/pktgen/README.md.
--
--   sudo env RVS_PKTGEN_MODE=nat pktgen -l 0-4 -n 4 -a <A port 0> -a <A port 1> \
--       -- -P -m "[1:2].0,[3:4].1" -f perf/pktgen/frame-sizes.lua
--
-- The 1,032,176 connections are opened once (SYN phase at 64 B); then for
-- each size the ACK streams run RVS_PKTGEN_SECONDS (10) seconds after a 2 s
-- warm-up, with a pause between sizes. NAT sends in both directions unless
-- RVS_PKTGEN_DIRECTIONS says otherwise; DR and TUN one way. In mode tun the
-- largest size is 1498 B (a 1518-byte frame would not fit a 1500-byte MTU
-- once wrapped), and the inside link's ceiling is that of frames 20 bytes
-- longer. At the end a table: size, line rate, offered, delivered, loss.
--
-- Settings (environment): RVS_PKTGEN_MODE (nat | dr | tun),
-- RVS_PKTGEN_SIZES (64,128,256,512,1024,1280,1518), RVS_PKTGEN_RATE (100),
-- RVS_PKTGEN_SECONDS (10), RVS_PKTGEN_DIRECTIONS (NAT: both | forward |
-- reply), and those listed in common.lua. Connections live 900 s
-- (tcp_established_s): a sweep must finish within that.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")

local mode = C.env_choice("RVS_PKTGEN_MODE", "nat", { "nat", "dr", "tun" })
local sizes = C.env_list("RVS_PKTGEN_SIZES", { 64, 128, 256, 512, 1024, 1280, 1518 })
local seconds = C.env_num("RVS_PKTGEN_SECONDS", 10)
local rate = C.env_num("RVS_PKTGEN_RATE", 100)
local directions = "forward"
if mode == "nat" then
    directions = C.env_choice("RVS_PKTGEN_DIRECTIONS", "both", { "both", "forward", "reply" })
end

C.begin("frame-sizes", mode)
if mode == "tun" then
    local kept, seen = {}, {}
    for _, s in ipairs(sizes) do
        local t = s
        if t > 1498 then
            C.say("   tun: %d B would exceed the MTU once wrapped; measuring 1498 B instead", s)
            t = 1498
        end
        if not seen[t] then
            kept[#kept + 1] = t
            seen[t] = true
        end
    end
    sizes = kept
end

C.reset()
C.establish(mode, 64)

local row = C.csv(C.RESULT_COLUMNS)
local summary = {}
for _, size in ipairs(sizes) do
    C.resize(C.CLIENT, size)
    if mode == "nat" then
        C.resize(C.SERVER, size)
    end
    C.say("-- %d B frames at %g%% of line rate (%s), %d s after a 2 s warm-up", size, rate, directions, seconds)
    local flows = C.start_established(mode, size, rate, directions)
    local res = C.measure(flows, seconds, 2)
    C.stop_all()
    for i, f in ipairs(flows) do
        C.report(f.name, res[i], f.frame, f.egress)
        row(C.result_row("frame-sizes", mode, f.name, res[i], f.frame, f.egress))
        summary[#summary + 1] = { size = size, flow = f, r = res[i] }
    end
end

C.say("-- summary (%s): Mpps; '%% line' is delivered against the line rate of the frames rvsd sends", mode)
C.say("   %6s  %-11s %9s %9s %9s %7s %8s", "frame", "flow", "line", "offered", "delivered", "% line", "loss %")
for _, e in ipairs(summary) do
    local line_out = C.line_pps(e.flow.egress)
    C.say("   %6d  %-11s %9.3f %9.3f %9.3f %7.1f %8.3f", e.size, e.flow.name, line_out / 1e6,
        e.r.offered / 1e6, e.r.delivered / 1e6, 100 * e.r.delivered / line_out, C.loss_pct(e.r))
end
C.finish()
