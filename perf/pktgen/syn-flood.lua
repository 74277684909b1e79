-- syn-flood.lua: a SYN flood at line rate against 198.18.0.101:80 while
-- established connections on 198.18.0.100:80 keep carrying traffic. Pair
-- with rvsd-nat.toml (or, without the established traffic, rvsd-dr.toml /
-- rvsd-tun.toml with RVS_PKTGEN_MODE); see perf/pktgen/README.md.
--
--   sudo pktgen -l 0-4 -n 4 -a <A port 0> -a <A port 1> -- -P \
--       -m "[1:2].0,[3:4].1" -f perf/pktgen/syn-flood.lua
--
-- What rvs promises under a flood: each SYN to a service makes a half-open
-- connection (SYN_RECV); when the table is full a new one evicts the
-- half-open connection nearest its expiry among those near its slot, never
-- an ESTABLISHED one, so established connections live on. This profile
-- shows whether they do:
-- 1. NAT only: the 1,032,176 established flows are opened (SYN phase), then
--    port 1 sends their replies (198.19.0.10:8080 -> clients) at
--    RVS_PKTGEN_BG_PCT (10) percent of line rate, which rvsd translates and
--    port 0 receives: 5 s of that alone as the baseline.
-- 2. The flood: port 0 sends bare SYNs at RVS_PKTGEN_RATE (100) percent of
--    line rate, 64 B, to 198.18.0.101:80 from source addresses walking
--    198.18.128.1-198.18.255.254 (one step per frame) and random source
--    ports (RVS_PKTGEN_RANDOM_PORTS=0 walks 1024-65534 instead), for
--    RVS_PKTGEN_SECONDS (30) seconds. Port 1 counts the SYNs rvsd forwards
--    to the eight real servers; port 0 keeps counting the background
--    replies that get through.
-- 3. NAT only: 5 s of the background alone again.
-- Source addresses are walked, not random: pktgen's random bit masks are
-- written after the checksums are computed, and a random source address
-- would break the IPv4 header checksum, which rvsd checks (it drops such
-- frames as bad_checksum). The source port is outside that checksum.
--
-- Read on machine B meanwhile: conns_created climbing at the forwarded SYN
-- rate, connections pinned at conn_table_size once full, drops table_full
-- (a SYN that found no half-open connection to evict near its slot) and
-- no_connection (background replies whose connection was lost: must stay 0).
--
-- Settings (environment): RVS_PKTGEN_MODE (nat), RVS_PKTGEN_SECONDS (30),
-- RVS_PKTGEN_RATE (100), RVS_PKTGEN_BG_PCT (10; 0: no background),
-- RVS_PKTGEN_RANDOM_PORTS (1), and those listed in common.lua.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")

local mode = C.env_choice("RVS_PKTGEN_MODE", "nat", { "nat", "dr", "tun" })
local seconds = C.env_num("RVS_PKTGEN_SECONDS", 30)
local rate = C.env_num("RVS_PKTGEN_RATE", 100)
local bg_pct = C.env_num("RVS_PKTGEN_BG_PCT", 10)
local random_ports = C.env_num("RVS_PKTGEN_RANDOM_PORTS", 1) ~= 0
local size = 64
if mode ~= "nat" then
    -- DR and TUN send nothing back through rvsd, and pktgen sends one
    -- stream per port: the flood has port 0 to itself.
    bg_pct = 0
end

C.begin("syn-flood", mode)
C.reset()
local row = C.csv(C.RESULT_COLUMNS)
local bg = { name = "background", tx = C.SERVER, rx = C.CLIENT, frame = size, egress = size }
local flood = { name = "SYN flood", tx = C.CLIENT, rx = C.SERVER, frame = size,
    egress = C.egress_frame(mode, size) }

local function background_alone(label)
    C.say("-- background alone (%s): replies of the established flows at %g%% of line rate, 5 s", label, bg_pct)
    local r = C.measure({ bg }, 5, 2)
    C.report(bg.name, r[1], size, size)
    row(C.result_row("syn-flood", mode, "background " .. label, r[1], size, size))
end

if bg_pct > 0 then
    C.establish("nat", size)
    C.set_rate(C.SERVER, bg_pct)
    pktgen.start(tostring(C.SERVER))
    background_alone("before")
else
    C.say("-- no background traffic (mode %s, or RVS_PKTGEN_BG_PCT=0)", mode)
end

C.client_new(size)
C.random_src_port(C.CLIENT, random_ports)
C.say("-- SYN flood: %g%% of line rate, %d B, -> %s:%d from %s..%s (stepped) x %s source ports, %d s",
    rate, size, C.VIP_NEW, C.VPORT, C.NEW_CLIENTS[1], C.NEW_CLIENTS[2],
    random_ports and "random" or string.format("%d..%d (stepped)", C.SPORTS[1], C.SPORTS[2]), seconds)
C.set_rate(C.CLIENT, rate)
pktgen.start(tostring(C.CLIENT))
local flows = { flood }
if bg_pct > 0 then
    flows[2] = bg
end
local res = C.measure(flows, seconds, 1)
pktgen.stop(tostring(C.CLIENT))
C.random_src_port(C.CLIENT, false)
C.say("-- during the flood")
for i, f in ipairs(flows) do
    C.report(f.name, res[i], f.frame, f.egress)
    row(C.result_row("syn-flood", mode, f.name .. " during", res[i], f.frame, f.egress))
end

if bg_pct > 0 then
    C.wait(2000)
    background_alone("after")
end
C.stop_all()
C.say("   on machine B: 'rvsadm stats': conns_created, connections (full table: %s), drops " ..
    "table_full and no_connection; 'rvsadm -Ln': InActConn of the \"new\" servers", "conn_table_size")
C.finish()
