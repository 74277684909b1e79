-- dry-run.lua: runs a profile against a stand-in for pktgen, without NICs.
--
--   lua5.4 perf/pktgen/dry-run.lua perf/pktgen/established-nat.lua
--   RVS_PKTGEN_MODE=tun lua5.4 perf/pktgen/dry-run.lua perf/pktgen/frame-sizes.lua
--
-- It is NOT pktgen and measures nothing. It provides the few pktgen Lua
-- functions the profiles call, prints every CLI command they send
-- ("pktgen> ..."), refuses commands outside the grammar of pktgen's CLI
-- (app/cli-functions.c: 23.x by default, the 24.10.2+ TCP-flag syntax with
-- RVS_DRYRUN_PKTGEN=24.10), and fakes the two ports' counters the way
-- pktgen keeps them (refreshed once a second) with an ideal forwarder in
-- between (limited to the line rate of the frames it sends, which TUN makes
-- 20 bytes longer), optionally capped at RVS_DRYRUN_MPPS frames per second
-- in total.
-- Time is simulated: a 10-minute profile runs in seconds. What it shows:
-- that a profile runs to its end, which commands it gives pktgen and in
-- which order, and what its report looks like. Results go to
-- RVS_PKTGEN_OUT (default: a temporary directory).
--
-- Settings: RVS_DRYRUN_PKTGEN (23 | 24.10), RVS_DRYRUN_MPPS (no cap),
-- RVS_DRYRUN_QUIET=1 (do not print the commands), and the profiles' own.

local profile = arg and arg[1]
if not profile then
    io.stderr:write("usage: lua5.4 perf/pktgen/dry-run.lua PROFILE.lua\n")
    os.exit(2)
end

local version = os.getenv("RVS_DRYRUN_PKTGEN") or "23"
local cap = tonumber(os.getenv("RVS_DRYRUN_MPPS") or "")
local quiet = os.getenv("RVS_DRYRUN_QUIET") == "1"
local link_gbps = tonumber(os.getenv("RVS_PKTGEN_LINK_GBPS") or "") or 10
local tun = profile:match("tun%.lua$") ~= nil or os.getenv("RVS_PKTGEN_MODE") == "tun"

-- The CLI grammar the profiles may use -------------------------------------------
-- Tokens: %d integer, %f number, %4 IPv4 address, %m MAC address, %P port
-- list, a|b|c one of the words, anything else literally.

local function is_port_list(s)
    return s == "all" or s:match("^[%d,%-]+$") ~= nil
end

local token = {
    ["%d"] = function(s) return s:match("^%d+$") ~= nil end,
    ["%f"] = function(s) return tonumber(s) ~= nil end,
    ["%4"] = function(s) return s:match("^%d+%.%d+%.%d+%.%d+$") ~= nil end,
    ["%m"] = function(s) return s:match("^%x%x:%x%x:%x%x:%x%x:%x%x:%x%x$") ~= nil end,
    ["%P"] = is_port_list,
    ["%s"] = function(s) return #s > 0 end,
}

local SMMI = "start|min|max|inc|minimum|maximum|increment"
local FLAG = "urg|ack|psh|rst|syn|fin|all"
local grammar = {
    "start %P", "stop %P",
    "set %P count|size|rate|burst|sport|dport|ttl %d",
    "set %P type ipv4|ipv6", "set %P proto udp|tcp|icmp",
    "set %P rnd %d %d %s",
    "range %P proto tcp|udp",
    "range %P dst|src mac " .. SMMI .. " %m",
    "range %P dst|src ip " .. SMMI .. " %4",
    "range %P dst|src port " .. SMMI .. " %d",
    "range %P size " .. SMMI .. " %d",
    "range %P ttl " .. SMMI .. " %d",
    "enable|disable %P range|random|latency|process|pcap|capture",
}
if version == "23" then
    grammar[#grammar + 1] = "set %P tcp flag set|clr " .. FLAG
    grammar[#grammar + 1] = "range %P tcp flag set|clr " .. FLAG
else
    -- 24.10.2 and later: one comma-separated list that replaces the flags
    grammar[#grammar + 1] = "set %P tcp flag|flags %s"
    grammar[#grammar + 1] = "range %P tcp flag|flags %s"
end

local function words(s)
    local out = {}
    for w in s:gmatch("%S+") do
        out[#out + 1] = w
    end
    return out
end

local function matches(pattern, argv)
    local pat = words(pattern)
    if #pat ~= #argv then
        return false
    end
    for i, p in ipairs(pat) do
        local check = token[p]
        if check then
            if not check(argv[i]) then
                return false
            end
        else
            local ok = false
            for alt in p:gmatch("[^|]+") do
                if alt == argv[i] then
                    ok = true
                end
            end
            if not ok then
                return false
            end
        end
    end
    return true
end

local function valid(line)
    local argv = words(line)
    for _, g in ipairs(grammar) do
        if matches(g, argv) then
            return true
        end
    end
    return false
end

-- The fake ports --------------------------------------------------------------------

local ports = {}
for p = 0, 1 do
    ports[p] = {
        sending = false, count = 0, sent_run = 0, rate = 100, size = 64, range_size = 64,
        range = false, tx = 0, rx = 0, acc = 0,
        snap = { tx = 0, rx = 0 }, prev = { tx = 0, rx = 0 }, rate_stats = { tx = 0, rx = 0 },
    }
end
local now_ms = 0

local function each_port(list, fn)
    if list == "all" then
        for p = 0, 1 do
            fn(ports[p])
        end
        return
    end
    for item in list:gmatch("[^,]+") do
        local a, b = item:match("^(%d+)%-(%d+)$")
        if a then
            for p = tonumber(a), tonumber(b) do
                if ports[p] then
                    fn(ports[p])
                end
            end
        elseif ports[tonumber(item)] then
            fn(ports[tonumber(item)])
        end
    end
end

local function apply(line)
    local argv = words(line)
    local cmd, list = argv[1], argv[2]
    if cmd == "set" and argv[3] == "size" then
        each_port(list, function(p) p.size = tonumber(argv[4]) end)
    elseif cmd == "set" and argv[3] == "count" then
        each_port(list, function(p) p.count = tonumber(argv[4]) end)
    elseif cmd == "range" and argv[3] == "size" and argv[4] == "start" then
        each_port(list, function(p) p.range_size = tonumber(argv[5]) end)
    elseif (cmd == "enable" or cmd == "disable") and argv[3] == "range" then
        each_port(list, function(p) p.range = (cmd == "enable") end)
    elseif cmd == "stop" then
        each_port(list, function(p) p.sending = false end)
    elseif cmd == "start" then
        each_port(list, function(p) p.sending = true; p.sent_run = 0 end)
    end
end

local function frame_size(p)
    if p.range then
        return p.range_size
    end
    return p.size
end

local function step(ms)
    -- frames each sending port puts on the wire in `ms`
    local out = {}
    local total = 0
    for i = 0, 1 do
        local p = ports[i]
        out[i] = 0
        if p.sending then
            local pps = link_gbps * 1e9 / ((frame_size(p) + 20) * 8) * p.rate / 100
            p.acc = p.acc + pps * ms / 1000
            local n = math.floor(p.acc)
            p.acc = p.acc - n
            if p.count > 0 and p.sent_run + n >= p.count then
                n = p.count - p.sent_run
                p.sending = false
            end
            p.sent_run = p.sent_run + n
            p.tx = p.tx + n
            out[i] = n
            total = total + n
        end
    end
    -- the ideal forwarder: everything to the other port, up to the cap and
    -- to the line rate of the frames it sends (TUN: 20 bytes longer)
    local keep = 1
    if cap and total > 0 then
        local room = cap * 1e6 * ms / 1000
        if total > room then
            keep = room / total
        end
    end
    for i = 0, 1 do
        local n = out[i] * keep
        local grow = (tun and i == 0) and 20 or 0
        local line = link_gbps * 1e9 / ((frame_size(ports[i]) + grow + 20) * 8) * ms / 1000
        if n > line then
            n = line
        end
        ports[1 - i].rx = ports[1 - i].rx + math.floor(n)
    end
    now_ms = now_ms + ms
    if now_ms % 1000 == 0 then
        for i = 0, 1 do
            local p = ports[i]
            p.prev = p.snap
            p.snap = { tx = p.tx, rx = p.rx }
            p.rate_stats = { tx = p.snap.tx - p.prev.tx, rx = p.snap.rx - p.prev.rx }
        end
    end
end

-- The pktgen Lua functions the profiles call ------------------------------------

pktgen = {}

function pktgen.load(path)
    local f = assert(io.open(path, "r"))
    local lines = {}
    for line in f:lines() do
        lines[#lines + 1] = line
    end
    f:close()
    for _, line in ipairs(lines) do
        if line:match("%S") and not line:match("^%s*#") then
            if not valid(line) then
                error("load command failed: not a pktgen " .. version .. " command: " .. line)
            end
        end
    end
    for _, line in ipairs(lines) do
        if not quiet and line:match("%S") then
            print("pktgen> " .. line)
        end
        apply(line)
    end
end

function pktgen.start(list)
    if not quiet then
        print("pktgen> (lua) start " .. list)
    end
    apply("start " .. list)
end

function pktgen.stop(list)
    if not quiet then
        print("pktgen> (lua) stop " .. list)
    end
    apply("stop " .. list)
end

function pktgen.set(list, what, value)
    assert(what == "count" or what == "rate", "profiles only set count and rate from Lua")
    if not quiet then
        print(string.format("pktgen> (lua) set %s %s %s", list, what, tostring(value)))
    end
    each_port(tostring(list), function(p)
        if what == "count" then
            p.count = value
        else
            p.rate = tonumber(value)
        end
    end)
end

function pktgen.delay(ms)
    assert(math.type == nil or math.type(ms) == "integer", "pktgen.delay takes integer milliseconds")
    for _ = 1, ms // 10 do
        step(10)
    end
end

function pktgen.portStats(list, kind)
    local t = { n = 0 }
    each_port(list, function(p)
        local id = (p == ports[0]) and 0 or 1
        local s = (kind == "rate") and p.rate_stats or p.snap
        t[id] = { opackets = s.tx, ipackets = s.rx, imissed = 0, rx_nombuf = 0, ierrors = 0, oerrors = 0 }
        t.n = t.n + 1
    end)
    return t
end

function pktgen.screen(state)
    assert(state == "on" or state == "off")
end

if not os.getenv("RVS_PKTGEN_OUT") then
    -- the profiles read RVS_PKTGEN_OUT through os.getenv
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local getenv = os.getenv
    os.getenv = function(name)
        if name == "RVS_PKTGEN_OUT" then
            return dir
        end
        return getenv(name)
    end
end

dofile(profile)
print(string.format("dry-run: %s ran to its end (%.0f simulated seconds, pktgen %s grammar)",
    profile, now_ms / 1000, version))
